"""SEARCH and UID SEARCH with the keys of the issue (ALL UNSEEN SEEN FLAGGED FROM TO SUBJECT BODY
TEXT SINCE BEFORE ON LARGER SMALLER UID, sequence sets, NOT, OR, parenthesised lists) and a few
more the RFC defines (RFC 3501 6.4.4)."""
import pytest

from imap_helpers import command, imap, search, shared_imap  # noqa: F401

DAY = 86400
T0 = 1_700_006_400          # 15-Nov-2023 00:00:00 +0000


def msg(frm, to, subject, body, extra=b""):
    return (b"From: " + frm + b"\r\nTo: " + to + b"\r\nSubject: " + subject + b"\r\n" + extra +
            b"Date: Wed, 15 Nov 2023 12:00:00 +0000\r\n\r\n" + body)


MESSAGES = [   # (content, internal date)
    (msg(b"Alice Example <alice@a.test>", b"bob@b.test", b"Quarterly report", b"numbers inside\r\n"), T0),
    (msg(b"carol@c.test", b"Dave <dave@d.test>", b"lunch?", b"Shall we have LUNCH today\r\n"), T0 + DAY + 3600),
    (msg(b"bob@b.test", b"alice@a.test", b"Re: Quarterly report", b"x" * 3000 + b"\r\n",
         extra=b"X-Mailer: Tester 1.0\r\n"), T0 + 2 * DAY + 60),
    (msg(b"eve@e.test", b"carol@c.test", b"=?utf-8?q?caf=C3=A9?=", b"hidden word: zebra\r\n"), T0 + 3 * DAY),
    (msg(b"Dave <dave@d.test>", b"bob@b.test", b"misc", b"nothing\r\n"), T0 + 3 * DAY + 7200),
]


def fill(imap):
    for content, date in MESSAGES:
        imap.put(content, mtime=date)
    c = imap.login(select="INBOX")
    c.store("1,3", "+FLAGS", r"(\Seen)")
    c.store("2", "+FLAGS", r"(\Flagged \Seen)")
    c.store("5", "+FLAGS", r"(\Answered \Deleted)")
    imap.c = c
    return imap


@pytest.fixture
def box(imap):
    yield fill(imap)
    imap.c.logout()


@pytest.fixture(scope="module")
def shared_box(shared_imap):
    yield fill(shared_imap)
    shared_imap.c.logout()


def sized(pred):
    return [i for i, (content, _) in enumerate(MESSAGES, 1) if pred(len(content))]


@pytest.mark.parametrize("criteria, expected", [
    (("ALL",), [1, 2, 3, 4, 5]),
    (("SEEN",), [1, 2, 3]),
    (("UNSEEN",), [4, 5]),
    (("FLAGGED",), [2]),
    (("UNFLAGGED",), [1, 3, 4, 5]),
    (("ANSWERED",), [5]),
    (("DELETED",), [5]),
    (("UNDELETED",), [1, 2, 3, 4]),
    (("FROM", "alice"), [1]),                 # display name and address both count
    (("FROM", '"Dave"'), [5]),
    (("FROM", "B.TEST"), [3]),                # case-insensitive substring
    (("TO", "bob@b.test"), [1, 5]),
    (("SUBJECT", '"quarterly REPORT"'), [1, 3]),
    (("SUBJECT", "Re:"), [3]),
    (("BODY", "lunch"), [2]),
    (("BODY", "Quarterly"), []),             # BODY is the text only
    (("TEXT", "Quarterly"), [1, 3]),          # TEXT has the header too
    (("TEXT", "zebra"), [4]),
    (("HEADER", "X-Mailer", "tester"), [3]),
    (("SINCE", "17-Nov-2023"), [3, 4, 5]),    # dates are INTERNALDATE's, whole days
    (("BEFORE", "16-Nov-2023"), [1]),
    (("ON", "18-Nov-2023"), [4, 5]),
    (("SINCE", "16-Nov-2023", "BEFORE", "18-Nov-2023"), [2, 3]),
    (("LARGER", "2000"), [3]),
    (("LARGER", str(len(MESSAGES[1][0]) - 1)), sized(lambda n: n > len(MESSAGES[1][0]) - 1)),
    (("SMALLER", str(len(MESSAGES[1][0]))), sized(lambda n: n < len(MESSAGES[1][0]))),
    (("1:3",), [1, 2, 3]),
    (("2,4:*",), [2, 4, 5]),
    (("*",), [5]),
    (("UID", "2:3"), [2, 3]),
    (("UID", "4:*"), [4, 5]),
    (("NOT", "SEEN"), [4, 5]),
    (("NOT", "FROM", "bob"), [1, 2, 4, 5]),
    (("OR", "FROM", "carol", "TO", "carol"), [2, 4]),
    (("OR", "FLAGGED", "OR", "ANSWERED", "LARGER", "2000"), [2, 3, 5]),
    (("(FROM", "dave", "SUBJECT", "misc)"), [5]),
    (("SEEN", "NOT", "(SUBJECT", "lunch)"), [1, 3]),
    (("1:4", "UNSEEN"), [4]),
    (("NOT", "1:3"), [4, 5]),
    (("FROM", "nobody"), []),
])
def test_search_keys(shared_box, criteria, expected):
    assert search(shared_box.c, *criteria) == expected


def test_uid_search_returns_uids(box):
    c = box.c
    c.store("5", "-FLAGS", r"(\Deleted)")
    c.store("1", "+FLAGS", r"(\Deleted)")
    c.expunge()                          # sequence numbers shift; UIDs do not
    assert search(c, "ALL") == [1, 2, 3, 4]
    assert search(c, "ALL", uid=True) == [2, 3, 4, 5]
    assert search(c, "FLAGGED", uid=True) == [2]
    assert search(c, "UID", "3:5", "UNSEEN", uid=True) == [4, 5]
    assert search(c, "2", uid=True) == [3]             # a sequence set is still sequence numbers
    assert search(c, "UID", "1", uid=True) == []       # expunged
    assert search(c, "UID", "2,5") == [1, 4]


def test_search_new_old_recent(box):
    c = box.c
    assert search(c, "RECENT") == [1, 2, 3, 4, 5]
    assert search(c, "NEW") == [4, 5]                  # RECENT and UNSEEN
    assert search(c, "OLD") == []
    c2 = box.login(select="INBOX")
    assert search(c2, "RECENT") == [] and search(c2, "OLD") == [1, 2, 3, 4, 5]
    c2.logout()


def test_search_charset_and_errors(box):
    c = box.c
    assert search(c, "CHARSET", "UTF-8", "SUBJECT", "misc") == [5]
    typ, data = command(c, "SEARCH", "CHARSET", "X-NO-SUCH-CHARSET", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[-1]
    for bad in (("FROBNICATE",), ("SINCE", "32-Foo-2023"), ("LARGER", "x"), ("OR", "SEEN")):
        typ, data = command(c, "SEARCH", *bad)
        assert typ == "BAD", (bad, data)
    assert search(c, "ALL") == [1, 2, 3, 4, 5]


def test_search_sees_a_new_delivery(box):
    box.deliver(msg(b"late@l.test", b"alice@example.test", b"late one", b"arrived later\r\n"))
    c = box.c
    c.noop()
    assert search(c, "SUBJECT", "late") == [6]
    assert search(c, "UID", "6") == [6]


def test_search_utf8_literal_matches_encoded_word(shared_box):
    c = shared_box.c
    c.literal = "caf\u00e9".encode()                 # sent as a synchronizing literal
    typ, data = c.search("UTF-8", "SUBJECT")
    assert typ == "OK" and data == [b"4"]
