"""UIDs and UIDVALIDITY: stable across sessions and restarts, strictly ascending, never reused,
the same in concurrent sessions while mail is delivered through SMTP; COPY / UID COPY and
MOVE / UID MOVE with COPYUID (RFC 4315, RFC 6851)."""
import re
import threading

from imap_helpers import (ALICE, command, fetch, imap, make_message, parse, search,  # noqa: F401
                          send, untagged)


def uid_map(c):
    return {seq: v["UID"] for seq, v in fetch(c, "1:*", "(UID)").items()}


def copyuid(text: bytes):
    m = re.search(rb"\[COPYUID (\d+) ([0-9:,]+) ([0-9:,]+)\]", text)
    assert m, text
    return int(m.group(1)), expand(m.group(2)), expand(m.group(3))


def expand(uidset: bytes):
    out = []
    for part in uidset.decode().split(","):
        lo, _, hi = part.partition(":")
        lo, hi = int(lo), int(hi or lo)
        out += list(range(min(lo, hi), max(lo, hi) + 1))
    return out


def test_uids_stable_across_sessions_and_restart(imap):
    for i in range(4):
        imap.put(make_message(f"s{i}"))
    c = imap.login(select="INBOX")
    first = uid_map(c)
    validity = c.response("UIDVALIDITY")[1][0]
    c.logout()
    assert list(first.values()) == sorted(first.values()) and len(set(first.values())) == 4
    imap.restart()
    c = imap.login(select="INBOX")
    assert uid_map(c) == first
    assert c.response("UIDVALIDITY")[1][0] == validity
    c.logout()


def test_uids_never_reused_after_expunge(imap):
    for i in range(3):
        imap.put(make_message(f"e{i}"))
    c = imap.login(select="INBOX")
    c.store("3", "+FLAGS", r"(\Deleted)")
    c.expunge()
    c.append("INBOX", None, None, make_message("after"))
    c.noop()
    assert list(uid_map(c).values()) == [1, 2, 4]
    typ, data = c.status("INBOX", "(UIDNEXT)")
    assert b"UIDNEXT 5" in data[0]
    c.logout()


def test_deliveries_while_selected_get_ascending_uids(imap):
    imap.put(make_message("before"))
    a = imap.login(select="INBOX")
    b = imap.login(select="INBOX")
    # several deliveries through SMTP at once while two sessions have the folder selected
    threads = [threading.Thread(target=send, args=(imap.pm, [ALICE], make_message(f"live{i}")))
               for i in range(6)]
    imap.start_mail()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from conftest import wait_for
    wait_for(lambda: len(imap.files()) == 7, 15, interval=0.02, what="7 messages")
    ua, ub = None, None

    def synced(c):
        c.noop()
        m = uid_map(c)
        return m if len(m) == 7 else None
    ua = wait_for(lambda: synced(a), 10, what="session a to see 7")
    ub = wait_for(lambda: synced(b), 10, what="session b to see 7")
    assert ua == ub                               # the same UID for the same message in both
    assert list(ua.values()) == sorted(ua.values()) and len(set(ua.values())) == 7
    assert ua[1] == 1
    # and each UID is the same message in both
    subjects_a = {v["UID"]: v["BODY[HEADER.FIELDS (SUBJECT)]"]
                  for v in fetch(a, "1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])").values()}
    subjects_b = {v["UID"]: v["BODY[HEADER.FIELDS (SUBJECT)]"]
                  for v in fetch(b, "1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])").values()}
    assert subjects_a == subjects_b
    new_uids = list(ua.values())[1:]
    got = fetch(a, f"{new_uids[0]}:*", "(UID)", uid=True)
    assert sorted(v["UID"] for v in got.values()) == new_uids
    assert search(a, "UID", f"{new_uids[0]}:*", uid=True) == new_uids
    typ, data = a.status("INBOX", "(UIDNEXT MESSAGES)")
    st = parse(data[0])[1]
    st = dict(zip(map(str, st[::2]), st[1::2]))
    assert st["MESSAGES"] == 7 and st["UIDNEXT"] > max(new_uids)
    a.logout()
    b.logout()


def test_exists_on_noop_after_delivery(imap):
    r = imap.raw(login=ALICE)
    lines = r.cmd("SELECT INBOX")
    assert b"* 0 EXISTS" in lines
    imap.deliver(make_message("one"))
    imap.deliver(make_message("two"))
    from conftest import wait_for

    seen = []

    def exists():
        seen.extend(r.cmd("NOOP"))
        return b"* 2 EXISTS" in seen
    wait_for(exists, 10, interval=0.02, what="EXISTS 2")
    assert any(re.fullmatch(rb"\* [12] RECENT", l) for l in seen)


def test_copy_and_uid_copy(imap):
    for i in range(3):
        imap.put(make_message(f"c{i}"))
    c = imap.login(select="INBOX")
    c.store("2", "+FLAGS", r"(\Flagged)")
    typ, data = c.copy("2:3", "Archive")
    assert typ == "OK"
    validity, src, dst = copyuid(data[0])
    assert src == [2, 3] and len(dst) == 2
    typ, data = command(c, "UID", "COPY", "1", "Archive")      # imaplib's uid() drops the text
    v2, src2, dst2 = copyuid(data[0])
    assert v2 == validity and src2 == [1] and dst2[0] > max(dst)
    assert len(imap.files()) == 3 and len(imap.files(folder="Archive")) == 3
    typ, data = c.copy("1", "NoSuchFolder")
    assert typ == "NO" and b"[TRYCREATE]" in data[0]
    c.select("Archive")
    got = fetch(c, "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert [v["UID"] for v in got.values()] == dst + dst2
    assert r"\Flagged" in set(got[1]["FLAGS"])    # flags come along (RFC 3501 6.4.7)
    assert got[1]["BODY[HEADER.FIELDS (SUBJECT)]"].startswith(b"Subject: c1")
    assert c.response("UIDVALIDITY")[1][0] == str(validity).encode()
    c.logout()


def test_move_and_uid_move(imap):
    for i in range(4):
        imap.put(make_message(f"m{i}"))
    r = imap.raw(login=ALICE)
    r.cmd("SELECT INBOX")
    lines = r.cmd("MOVE 2:3 Trash", tag="mv1")
    assert lines[-1].startswith(b"mv1 OK")
    # RFC 6851: COPYUID in an untagged OK before the EXPUNGEs (or in the tagged OK)
    ok = [l for l in lines if b"[COPYUID " in l]
    assert len(ok) == 1
    validity, src, dst = copyuid(ok[0])
    assert src == [2, 3] and len(dst) == 2
    expunges = [l for l in untagged(lines) if l.endswith(b" EXPUNGE")]
    assert expunges in ([b"* 2 EXPUNGE", b"* 2 EXPUNGE"], [b"* 3 EXPUNGE", b"* 2 EXPUNGE"])
    if ok[0].startswith(b"* OK"):
        assert lines.index(ok[0]) < lines.index(expunges[0])
    lines = r.cmd("UID MOVE 4 Trash", tag="mv2")
    assert lines[-1].startswith(b"mv2 OK")
    assert [l for l in untagged(lines) if l.endswith(b" EXPUNGE")] == [b"* 2 EXPUNGE"]
    assert len(imap.files()) == 1 and len(imap.files(folder="Trash")) == 3
    lines = r.cmd("UID MOVE 99 Trash", tag="mv3")         # no such UID: OK, nothing moved
    assert lines[-1].split()[1] in (b"OK", b"NO") and not [l for l in untagged(lines) if b"EXPUNGE" in l]
    lines = r.cmd("MOVE 1 NoSuchFolder", tag="mv4")
    assert lines[-1].startswith(b"mv4 NO") and b"[TRYCREATE]" in lines[-1]
    lines = r.cmd("EXAMINE Trash", tag="mv5")
    assert b"* 3 EXISTS" in lines
    if imap.kind == "postmesh":     # read-only: nothing leaves Trash (Dovecot moves it anyway)
        lines = r.cmd("MOVE 1 INBOX", tag="mv6")
        assert lines[-1].split()[1] == b"NO"
        assert len(imap.files(folder="Trash")) == 3


def test_uidlist_files_next_to_the_maildir(imap):
    imap.postmesh_only()          # the plan's per-folder index
    imap.put(make_message("idx"))
    c = imap.login(select="INBOX")
    validity = int(c.response("UIDVALIDITY")[1][0])
    c.select("Sent")
    c.logout()
    md = imap.maildir()
    assert (md / "postmesh-uidlist").is_file() and (md / ".Sent" / "postmesh-uidlist").is_file()
    assert str(validity) in (md / "postmesh-uidlist").read_text()
    assert not (md / "postmesh-uidlist.tmp").exists()


def test_lost_uidlist_gives_a_new_uidvalidity(imap):
    imap.postmesh_only()          # the plan's index file; Dovecot's is dovecot-uidlist
    for i in range(3):
        imap.put(make_message(f"v{i}"))
    c = imap.login(select="INBOX")
    validity = int(c.response("UIDVALIDITY")[1][0])
    c.logout()
    imap.stop()
    (imap.maildir() / "postmesh-uidlist").unlink()
    imap.restart()
    c = imap.login(select="INBOX")
    # UIDs are handed out anew: a client's cache of the old ones must be thrown away, which
    # it does only if UIDVALIDITY changed (RFC 3501 2.3.1.1), even within the same second
    assert int(c.response("UIDVALIDITY")[1][0]) != validity
    assert list(uid_map(c).values()) == sorted(uid_map(c).values())
    c.logout()


def test_concurrent_appends_and_deliveries_get_distinct_uids(imap):
    imap.start_mail()
    errors = []

    def appender(n):
        try:
            c = imap.login()
            for i in range(10):
                typ, data = c.append("INBOX", None, None, make_message(f"app{n}-{i}"))
                assert typ == "OK", data
            c.logout()
        except Exception as e:          # collected: an assert in a thread would be lost
            errors.append(repr(e))

    def deliverer():
        try:
            for i in range(5):
                send(imap.pm, [ALICE], make_message(f"smtp{i}"))
        except Exception as e:
            errors.append(repr(e))
    watcher = imap.login(select="INBOX")
    threads = [threading.Thread(target=appender, args=(n,)) for n in range(3)] + [threading.Thread(target=deliverer)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        watcher.noop()                   # a selected session syncing (new/ -> cur/) meanwhile
        threads[0].join(0.01)
    for t in threads:
        t.join()
    assert errors == []
    from conftest import wait_for
    wait_for(lambda: len(imap.files()) == 35, 15, interval=0.02, what="35 messages")

    def all_seen():
        watcher.noop()
        m = uid_map(watcher)
        return m if len(m) == 35 else None
    uids = list(wait_for(all_seen, 10, what="35 messages in the session").values())
    assert uids == sorted(uids) and len(set(uids)) == 35
    other = imap.login(select="INBOX")
    assert list(uid_map(other).values()) == uids
    subjects = {v["BODY[HEADER.FIELDS (SUBJECT)]"] for v in
                fetch(other, "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])").values()}
    assert len(subjects) == 35
    other.logout()
    watcher.logout()


def test_folder_deleted_and_created_again_never_reuses_uid_and_validity(imap):
    # RFC 3501 2.3.1.1: a new mailbox of the same name keeps counting UIDs or gets a new
    # UIDVALIDITY; a client syncing it (mbsync) would otherwise take the new message for the old
    c = imap.login()
    seen = set()
    for round_ in range(3):           # quickly: within the same second is the hard case
        c.create("Again")
        typ, data = c.append("Again", None, None, make_message(f"round{round_}"))
        validity, uid = (int(x) for x in data[0].split(b"[APPENDUID ")[1].split(b"]")[0].split())
        assert (validity, uid) not in seen, (round_, validity, uid, seen)
        seen.add((validity, uid))
        assert c.delete("Again")[0] == "OK"
    c.logout()
