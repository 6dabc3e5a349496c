"""Folders: CREATE / DELETE / RENAME on the Maildir++ layout, SUBSCRIBE / UNSUBSCRIBE, LIST with
SPECIAL-USE (RFC 6154) and the RFC 5258 options clients send, LSUB, and the special-use folders
made at first login."""
import pytest

from imap_helpers import imap, make_message, parse  # noqa: F401

SPECIAL = {"Sent": r"\Sent", "Drafts": r"\Drafts", "Trash": r"\Trash", "Junk": r"\Junk", "Archive": r"\Archive"}


def listing(c, *args, cmd="LIST"):
    """LIST/LSUB (args as sent) -> {name: set of attributes (lower case)}."""
    typ, data = c._simple_command(cmd, *args)
    assert typ == "OK", data
    typ, data = c._untagged_response(typ, data, cmd)
    out = {}
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            item = item[0] + b"\r\n" + item[1]
        attrs, sep, name = parse(item)[:3]
        assert sep == b"/", item
        name = name.decode() if isinstance(name, bytes) else str(name)
        out[name] = {str(a).lower() for a in attrs}
    return out


def test_special_use_folders_at_first_login(imap):
    c = imap.login()
    folders = listing(c, '""', '"*"')
    assert "INBOX" in folders
    for name, flag in SPECIAL.items():
        assert flag.lower() in folders[name], (name, folders[name])
    subscribed = listing(c, '""', '"*"', cmd="LSUB")
    assert set(SPECIAL) <= set(subscribed)
    # RFC 6154 LIST (SPECIAL-USE): only those; RETURN (SPECIAL-USE) on an ordinary LIST
    only = listing(c, "(SPECIAL-USE)", '""', '"*"')
    assert set(only) == set(SPECIAL)
    ret = listing(c, '""', '"*"', "RETURN", "(SPECIAL-USE)")
    assert ret["Sent"] >= {r"\sent"}
    c.logout()


def test_special_use_folders_on_disk(imap):
    imap.postmesh_only()          # Dovecot creates them lazily, Postmesh at first login (the plan)
    c = imap.login()
    c.logout()
    md = imap.maildir()
    for name in SPECIAL:
        for sub in ("cur", "new", "tmp"):
            assert (md / f".{name}" / sub).is_dir()
        assert (md / f".{name}" / "maildirfolder").exists()
    subs = (md / "subscriptions").read_text().split("\n")
    assert set(SPECIAL) <= set(subs)


def test_create_nested_and_layout(imap):
    c = imap.login()
    assert c.create("Work")[0] == "OK"
    assert c.create("Work/Projects")[0] == "OK"
    assert c.create("Lists/Debian/")[0] == "OK"     # a trailing separator is allowed (RFC 3501 6.3.3)
    md = imap.maildir()
    assert (md / ".Work" / "cur").is_dir() and (md / ".Work.Projects" / "new").is_dir()
    assert (md / ".Work.Projects" / "maildirfolder").exists()
    assert (md / ".Lists.Debian" / "tmp").is_dir()
    folders = listing(c, '""', '"*"')
    assert {"Work", "Work/Projects", "Lists/Debian"} <= set(folders)
    assert r"\haschildren" in folders["Work"]
    assert r"\hasnochildren" in folders["Work/Projects"]
    top = listing(c, '""', '"%"')
    assert "Work" in top and "Work/Projects" not in top
    assert set(listing(c, '""', '"Work/%"')) == {"Work/Projects"}
    typ, data = c.create("Work")
    assert typ == "NO" and b"ALREADYEXISTS" in data[0]
    typ, data = c.create("inbox")
    assert typ == "NO"
    c.logout()


@pytest.mark.parametrize("name", ["a.b", "..", "~x", "bad%", "bad*"])
def test_create_refuses_names_the_layout_cannot_hold(imap, name):
    if "%" in name or "*" in name:
        imap.postmesh_only()      # Dovecot stores these; the plan refuses LIST's wildcards
    c = imap.login()
    typ, data = c.create(f'"{name}"')
    assert typ in ("NO", "BAD"), data
    md = imap.maildir()
    made = {p.name for p in md.iterdir() if p.name.startswith(".")} if md.exists() else set()
    assert made <= {f".{s}" for s in SPECIAL}, made
    c.logout()


def test_delete(imap):
    c = imap.login()
    c.create("Old")
    imap.put(make_message("in old"), folder="Old")
    typ, data = c.status("Old", "(MESSAGES)")
    assert b"MESSAGES 1" in data[0]
    assert c.delete("Old")[0] == "OK"
    assert not (imap.maildir() / ".Old").exists()
    assert "Old" not in listing(c, '""', '"*"')
    typ, data = c.delete("Old")
    assert typ == "NO"
    typ, data = c.delete("INBOX")
    assert typ == "NO"
    c.logout()


def test_delete_selected_folder_and_select_it_again(imap):
    c = imap.login()
    c.create("Temp")
    c.select("Temp")
    c.close()
    assert c.delete("Temp")[0] == "OK"
    typ, _ = c.select("Temp")
    assert typ == "NO"
    c.logout()


def test_rename_moves_children_and_messages(imap):
    c = imap.login()
    c.create("A")
    c.create("A/B")
    imap.put(make_message("kept"), folder="A/B")
    assert c.rename("A", "Z")[0] == "OK"
    folders = listing(c, '""', '"*"')
    assert "Z" in folders and "Z/B" in folders and "A" not in folders and "A/B" not in folders
    md = imap.maildir()
    assert (md / ".Z.B").is_dir() and not (md / ".A.B").exists()
    typ, data = c.select("Z/B")
    assert typ == "OK" and data == [b"1"]
    c.close()
    typ, data = c.rename("NoSuch", "Other")
    assert typ == "NO"
    c.create("Y")
    typ, data = c.rename("Z", "Y")
    assert typ == "NO"                  # the new name exists
    c.logout()


def test_subscribe_unsubscribe_lsub(imap):
    c = imap.login()
    c.create("Reading")
    assert "Reading" not in listing(c, '""', '"*"', cmd="LSUB")
    assert c.subscribe("Reading")[0] == "OK"
    assert "Reading" in listing(c, '""', '"*"', cmd="LSUB")
    sub = listing(c, "(SUBSCRIBED)", '""', '"*"')   # RFC 5258 selection option
    assert "Reading" in sub and r"\subscribed" in sub["Reading"]
    ret = listing(c, '""', '"*"', "RETURN", "(SUBSCRIBED)")
    assert r"\subscribed" in ret["Reading"]
    assert r"\subscribed" not in ret["INBOX"] or "INBOX" in sub
    assert c.unsubscribe("Reading")[0] == "OK"
    assert "Reading" not in listing(c, '""', '"*"', cmd="LSUB")
    c.logout()


def test_list_return_children_and_reference(imap):
    c = imap.login()
    c.create("P/Q")
    got = listing(c, '""', '"P"', "RETURN", "(CHILDREN)")
    assert r"\haschildren" in got["P"]
    got = listing(c, '"P/"', '"%"')               # reference + pattern
    assert set(got) == {"P/Q"}
    typ, data = c.list('""', '""')                 # the hierarchy delimiter (RFC 3501 6.3.8)
    attrs, sep, name = parse(data[0])
    assert typ == "OK" and [str(a).lower() for a in attrs] == [r"\noselect"] and sep == b"/" and name == b""
    assert listing(c, '""', '"NoSuch*"') == {}
    c.logout()


def test_list_inbox_any_case(imap):
    c = imap.login()
    assert "INBOX" in listing(c, '""', '"inbox"')
    assert c.select("iNbOx")[0] == "OK"
    c.logout()


def test_delete_folder_with_children_keeps_them(imap):
    # RFC 3501 6.3.4: only a \Noselect name with inferiors may not be deleted; DELETE of a
    # selectable one removes its messages and MUST NOT remove the inferior names
    c = imap.login()
    c.create("Parent")
    c.create("Parent/Child")
    imap.put(make_message("in parent"), folder="Parent")
    imap.put(make_message("in child"), folder="Parent/Child")
    typ, data = c.delete("Parent")
    assert typ == "OK", data
    folders = listing(c, '""', '"*"')
    assert "Parent/Child" in folders
    if "Parent" in folders and not folders["Parent"] & {r"\noselect", r"\nonexistent"}:
        typ, data = c.status("Parent", "(MESSAGES)")      # listed as a hole, or kept but emptied
        assert typ == "NO" or b"MESSAGES 0" in data[0], data
    typ, data = c.select("Parent/Child")
    assert typ == "OK" and data == [b"1"]
    c.logout()
