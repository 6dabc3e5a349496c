"""A tiny milter on Debian's python3-milter (libmilter underneath), for smtpd's milter client:
`python3 milter_peer.py PORT LOGFILE [inet6]` (on 127.0.0.1, or ::1). What it does to a message is chosen by a word in the
Subject (or by the recipient for RCPT):
  accept, tempfail, discard, reject-eom (554 with its own reply text), addhdr, chghdr
  (changes the 2nd "X-Multi" and deletes "X-Drop"), inshdr (at the top), replbody,
  quarantine, slow (sleeps 4 s at eom: longer than the test's timeout), progress (3 s, saying
  PROGRESS every second)
and RCPT to reject-rcpt@... is refused 550, to discard-rcpt@... discarded. At connect the
client's address chooses (loopback aliases): 127.0.0.2 rejected with its own reply, .3
tempfail, .4 accept (nothing more is asked), .5 slow (3 s), .6 a little slow (0.6 s), .7 plain
reject, .8 a 421 reply. At HELO the name: reject-helo.test (550 with its own reply),
tempfail-helo.test. Every callback appends one JSON line to LOGFILE, so a test can check what
the milter was told. It has nothing to save: the tests stop it with SIGKILL (libmilter takes
5 s to notice a SIGTERM)."""
import json
import sys
import threading
import time

import Milter

PORT, LOGFILE = int(sys.argv[1]), sys.argv[2]
SPEC = f"inet6:{PORT}@::1" if sys.argv[3:] == ["inet6"] else f"inet:{PORT}@127.0.0.1"
_lock = threading.Lock()


def note(**kv):
    with _lock, open(LOGFILE, "a") as f:
        f.write(json.dumps(kv) + "\n")


class Peer(Milter.Base):
    def __init__(self):
        self.subject = ""
        self.headers = []
        self.bodytext = b""

    def connect(self, hostname, family, hostaddr):
        addr = list(hostaddr) if hostaddr else None
        note(cb="connect", hostname=hostname, family=family, addr=addr, j=self.getsymval("j"),
             daemon=self.getsymval("{daemon_name}"))
        ip = addr[0] if addr else ""
        if ip == "127.0.0.2":
            self.setreply("550", "5.7.1", "milter refuses this client")
            return Milter.REJECT
        if ip == "127.0.0.3":
            return Milter.TEMPFAIL
        if ip == "127.0.0.4":
            return Milter.ACCEPT
        if ip in ("127.0.0.5", "127.0.0.6"):
            time.sleep(3 if ip == "127.0.0.5" else 0.6)
        if ip == "127.0.0.7":
            return Milter.REJECT
        if ip == "127.0.0.8":
            self.setreply("421", "4.7.0", "milter closing this session")
            return Milter.TEMPFAIL
        return Milter.CONTINUE

    def hello(self, name):
        note(cb="helo", name=name, tls=self.getsymval("{tls_version}"))
        if name == "reject-helo.test":
            self.setreply("550", "5.7.1", "milter refuses this HELO")
            return Milter.REJECT
        if name == "tempfail-helo.test":
            return Milter.TEMPFAIL
        return Milter.CONTINUE

    def envfrom(self, sender, *args):
        self.subject, self.headers, self.bodytext = "", [], b""
        note(cb="mail", sender=sender, args=list(args), i=self.getsymval("i"),
             auth=self.getsymval("{auth_authen}"))
        return Milter.CONTINUE

    def envrcpt(self, rcpt, *args):
        note(cb="rcpt", rcpt=rcpt, args=list(args))
        if rcpt.startswith("<reject-rcpt@"):
            self.setreply("550", "5.1.1", "milter says no to this one")
            return Milter.REJECT
        if rcpt.startswith("<discard-rcpt@"):
            return Milter.DISCARD
        return Milter.CONTINUE

    def header(self, name, value):
        self.headers.append((name, value))
        if name.lower() == "subject":
            self.subject = value
        return Milter.CONTINUE

    def eoh(self):
        return Milter.CONTINUE

    def body(self, chunk):
        self.bodytext += chunk
        return Milter.CONTINUE

    def eom(self):
        word = self.subject.split()[0] if self.subject.split() else ""
        note(cb="eom", word=word, headers=self.headers, body=self.bodytext.decode(errors="replace"),
             i=self.getsymval("i"))
        if word == "accept":
            return Milter.ACCEPT
        if word == "tempfail":
            return Milter.TEMPFAIL
        if word == "discard":
            return Milter.DISCARD
        if word == "reject-eom":
            self.setreply("554", "5.7.1", "custom milter rejection")
            return Milter.REJECT
        if word == "addhdr":
            self.addheader("X-Peer-Added", "yes")
        if word == "chghdr":
            self.chgheader("X-Multi", 2, "second-changed")
            self.chgheader("X-Drop", 1, "")
        if word == "inshdr":
            self.addheader("X-Peer-Top", "first", idx=0)
        if word == "replbody":
            self.replacebody(b"replaced by the milter\r\n")
        if word == "quarantine":
            self.quarantine("peer found it suspicious")
        if word == "slow":
            time.sleep(4)
        if word == "progress":  # 3 s in all, over the 2 s timeout, but never 2 s silent
            for _ in range(3):
                time.sleep(1)
                self.progress()
        return Milter.CONTINUE


def main():
    Milter.factory = Peer
    Milter.set_flags(Milter.ADDHDRS + Milter.CHGHDRS + Milter.CHGBODY + Milter.QUARANTINE)
    note(cb="started")
    Milter.runmilter("peer", SPEC, 60)


if __name__ == "__main__":
    main()
