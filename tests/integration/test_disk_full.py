"""Full disks and a full LMDB map, on real small filesystems (size-limited tmpfs mounts the
test makes; root only): intake answers `452 4.3.1` while full, nothing accepted before is
damaged (it is still delivered byte for byte), the queue keeps dispatching what it has while
full, and intake resumes once space is freed (a filler file deleted, or queued mail
delivered). A full mail store makes delivery defer with 4.3.1 and deliver once space is back."""
import errno
import os
import smtplib
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import wait_for
from pop3_helpers import add_user, maildir, messages

USER, BOB, SENDER = "alice@example.test", "bob@example.test", "sender@client.test"


class SmallFs:
    """A small filesystem mounted at `path` (made now): a size-limited tmpfs, or an ext4 image
    on a loop device (real journalling and fdatasync); unmounted by close()."""

    def __init__(self, path: Path, size_mb: int, kind: str):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        if kind == "tmpfs":
            cmd = ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(path)]
        else:
            image = path.parent / f".{path.name}.ext4"
            with open(image, "wb") as f:
                f.truncate(size_mb << 20)
            r = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], capture_output=True, text=True,
                               timeout=60)
            if r.returncode != 0:
                pytest.skip(f"cannot make an ext4 image: {r.stderr.strip()}")
            cmd = ["mount", "-o", "loop", str(image), str(path)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a {kind}: {r.stderr.strip()}")
        if kind == "ext4":
            (path / "lost+found").rmdir()
            path.chmod(0o755)
        self.filler = path / "filler"

    def fill(self):
        """Writes the filler file until the filesystem refuses even one block."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            chunk = 1 << 20
            while chunk >= 1024:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    chunk //= 2
            os.fsync(fd)
        finally:
            os.close(fd)

    def leave(self, nbytes):
        """Frees nbytes of the filler: space for part of a message, not all of it."""
        os.truncate(self.filler, self.filler.stat().st_size - nbytes)

    def free(self):
        self.filler.unlink(missing_ok=True)

    def close(self):
        subprocess.run(["umount", str(self.path)], capture_output=True, timeout=30)
        if os.path.ismount(self.path):
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=30)


@pytest.fixture(params=["tmpfs", "ext4"])
def small_fs(pm, request):
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    made = []

    def make(path, size_mb):
        fs = SmallFs(path, size_mb, request.param)
        made.append(fs)
        return fs
    yield make
    pm.stop_all()  # nothing may keep the mounts busy
    for fs in made:
        fs.close()


def message(tag, size):
    line = (tag * 70)[:70] + "\r\n"
    body = "".join(f"{i:06d} {line}" for i in range(max(1, size // 80)))
    return f"From: <{SENDER}>\r\nSubject: {tag}\r\nMessage-ID: <{tag}@client.test>\r\n\r\n{body}"


class Client(smtplib.SMTP):
    """smtplib that keeps the reply to DATA: (code, text, queue id)."""
    def data(self, msg):
        code, resp = super().data(msg)
        self.last = (code, resp.decode(), resp.decode().rsplit(" ", 1)[-1] if code == 250 else None)
        return code, resp


def send(pm, text, rcpts=(USER,)):
    with Client("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        try:
            s.sendmail(SENDER, list(rcpts), text)
        except smtplib.SMTPDataError:
            pass
        return s.last


def delivered(pm, user=USER):
    """Message-ID tag -> delivered file content (each tag must appear once)."""
    out = {}
    for path in messages(pm, user):
        data = path.read_bytes()
        tag = data.split(b"Message-ID: <", 1)[1].split(b"@", 1)[0].decode()
        assert tag not in out, f"{tag} delivered twice"
        out[tag] = data
    return out


def assert_intact(pm, sent, user=USER):
    """Every sent tag is in the mailbox once, ending with exactly the bytes that were sent."""
    def all_there():
        got = delivered(pm, user)
        return got if set(sent) <= set(got) else None
    got = wait_for(all_there, 30, what=f"{len(sent)} messages in the mailbox of {user}")
    for tag, text in sent.items():
        assert got[tag].endswith(text.encode()), f"{tag} damaged"
    return got


def restart_queue_loads(pm):
    """Restarts the queue; returns its store_loaded line (messages=N corrupt=N)."""
    pm.stop("queue")
    pm.start("queue")
    return [line for line in pm.log("queue").splitlines() if "event=store_loaded" in line][-1]


def wait_queue_empty(pm, timeout=30):
    def empty():
        assert pm.procs["queue"].poll() is None, "the queue died:\n" + pm.log("queue")[-3000:]
        return not pm.queue_list()
    wait_for(empty, timeout, what="an empty queue")


def setup_mail(pm, **queue):
    add_user(pm, USER, "secret")
    q = {"retry_min": 1, "retry_max": 1, "job_lease": 5}
    q.update(queue)
    pm.configure(queue=q, smtpd={"max_message_size": 10 * 1024 * 1024})


def test_filesystem_full_refuses_intake_keeps_dispatching_and_recovers(pm, small_fs):
    setup_mail(pm)
    fs = small_fs(pm.state / "queue", 16)
    pm.start("queue", "smtpd")
    before = {f"early{i}": message(f"early{i}", 20_000) for i in range(5)}
    for text in before.values():
        assert send(pm, text)[0] == 250
    fs.fill()
    # Full: a message needing new pages is refused with 452 4.3.1, again and again.
    for i in range(3):
        code, text, _ = send(pm, message(f"refused{i}", 300_000))
        assert code == 452 and text.startswith("4.3.1"), (code, text)
    # Nearly full: the first pages of a commit fit, the rest do not. LMDB reports that short
    # write as EIO; it is still "full" (4.3.1), not a store error (4.3.0).
    fs.leave(64 * 1024)
    for i in range(2):
        code, text, _ = send(pm, message(f"short{i}", 300_000))
        assert code == 452 and text.startswith("4.3.1"), (code, text)
    # The refused commits left the store sound: a queue restarted while full loads all five.
    loaded = restart_queue_loads(pm)
    assert "messages=5 corrupt=0" in loaded, loaded
    # Still full: the queue delivers what it has and records it (the freed pages are reused).
    pm.start("delivery")
    assert_intact(pm, before)
    wait_queue_empty(pm)
    code, text, _ = send(pm, message("stillfull", 300_000))
    assert code == 452 and text.startswith("4.3.1"), (code, text)
    # Space back: intake resumes at once, without a restart.
    fs.free()
    after = {f"late{i}": message(f"late{i}", 300_000) for i in range(3)}
    for text in after.values():
        assert send(pm, text)[0] == 250
    got = assert_intact(pm, {**before, **after})
    assert not any(t.startswith(("refused", "short", "stillfull")) for t in got), "a refused message was delivered"
    wait_queue_empty(pm)
    # Nothing was damaged on disk: a restarted queue loads a clean store, and every removal
    # made while full was recorded.
    loaded = restart_queue_loads(pm)
    assert "messages=0 corrupt=0" in loaded, loaded


def test_map_full_refuses_intake_until_queued_mail_is_delivered(pm):
    setup_mail(pm, map_size_mb=1)
    pm.start("queue", "smtpd")
    accepted = {}
    for i in range(30):
        text = message(f"m{i}", 100_000)
        code, reply, _ = send(pm, text)
        if code != 250:
            assert code == 452 and reply.startswith("4.3.1"), (code, reply)
            break
        accepted[f"m{i}"] = text
    else:
        raise AssertionError("a 1 MiB map held 30 messages of 100 KB")
    assert accepted
    code, reply, _ = send(pm, message("again", 100_000))
    assert code == 452 and reply.startswith("4.3.1"), (code, reply)
    # Delivering the queued mail frees the map: every accepted message arrives intact and
    # the queue records it although the map is full.
    pm.start("delivery")
    assert_intact(pm, accepted)
    wait_queue_empty(pm)
    later = {f"later{i}": message(f"later{i}", 100_000) for i in range(len(accepted))}
    for text in later.values():
        code, reply, _ = send(pm, text)
        assert code == 250, (code, reply)
    assert_intact(pm, {**accepted, **later})
    wait_queue_empty(pm)
    loaded = restart_queue_loads(pm)
    assert "messages=0 corrupt=0" in loaded, loaded


def test_mail_store_full_defers_and_delivers_when_space_is_back(pm, small_fs):
    """Alice's mailbox exists, Bob's is made while the store is full (on ext4 even the
    directories need blocks): both recipients defer with 4.3.1, nothing partial is left,
    and both get the message once space is back."""
    setup_mail(pm)
    add_user(pm, BOB, "secret")
    fs = small_fs(pm.state / "mail", 8)
    pm.start("queue", "smtpd", "delivery")
    first = message("first", 20_000)
    assert send(pm, first)[0] == 250
    assert_intact(pm, {"first": first})
    wait_queue_empty(pm)
    fs.fill()
    text = message("big", 200_000)
    code, _, qid = send(pm, text, (USER, BOB))
    assert code == 250
    # The delivery defers with 4.3.1 (a retry every second) and leaves no partial copy.
    def deferred():
        log = pm.log("queue")
        return all(log.count(f"event=rcpt_deferred id={qid} to={u} dsn=4.3.1 ") >= 2 for u in (USER, BOB))
    wait_for(deferred, 20, what="both recipients deferred twice with 4.3.1")
    assert "No space left on device" in pm.cli("queue", "show", qid).stdout
    assert set(delivered(pm)) == {"first"} and not delivered(pm, BOB)
    for user in (USER, BOB):
        tmp = maildir(pm, user) / "tmp"
        assert not (tmp.is_dir() and list(tmp.iterdir())), f"a partial file was left in {tmp}"
    fs.free()
    assert_intact(pm, {"first": first, "big": text})
    assert_intact(pm, {"big": text}, BOB)
    wait_queue_empty(pm)


def test_space_freed_by_a_single_commit_is_reused(pm):
    """LMDB reuses the pages a commit freed only from the second commit after it, and a failed
    transaction commits nothing: when one commit freed the space (here: the one big message
    delivered) and every later transaction needs that space, none would ever succeed. The
    queue must still take the next message once the first is gone."""
    setup_mail(pm, map_size_mb=1)
    pm.start("queue", "smtpd")
    first = message("first", 600_000)
    assert send(pm, first)[0] == 250
    code, text, _ = send(pm, message("refused", 600_000))
    assert code == 452 and text.startswith("4.3.1"), (code, text)
    pm.start("delivery")
    assert_intact(pm, {"first": first})
    wait_queue_empty(pm)
    second = message("second", 600_000)
    code, text, _ = send(pm, second)
    assert code == 250, (code, text)
    got = assert_intact(pm, {"first": first, "second": second})
    assert set(got) == {"first", "second"}
    wait_queue_empty(pm)


def test_map_full_under_concurrent_load_answers_every_message_once(pm):
    """Several clients keep a 1 MiB map full while delivery empties it: group commits then mix
    new messages (some fit, some not) with delivery results and removals. Every 250 is
    delivered intact exactly once, every refusal is 452 4.3.1 and is never delivered, and
    every result and removal reaches the store."""
    setup_mail(pm, map_size_mb=1)
    pm.start("queue", "smtpd")
    results, lock, stop, delivering = {}, threading.Lock(), threading.Event(), threading.Event()

    def client(c):
        for i in range(40):
            if stop.is_set():
                return
            tag = f"c{c}m{i}"
            text = message(tag, 150_000)
            phase = delivering.is_set()
            r = send(pm, text)
            with lock:
                results[tag] = (r, text, phase)

    def count(code, phase):
        with lock:
            return sum(1 for (r, _, p) in results.values() if (r[0] == 250) == (code == 250) and p == phase)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: count(452, False), 30, what="the map to fill")
        pm.start("delivery")
        delivering.set()
        # Intake resumes while delivery frees space (refused until then: the clients keep
        # trying; a few may still be refused while results and new messages share commits).
        wait_for(lambda: count(250, True) >= 3 or not any(t.is_alive() for t in threads), 60,
                 what="intake while delivery runs")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert count(250, True) >= 3, f"{count(250, True)} accepted, {count(452, True)} refused once delivery ran"
    accepted = {tag: text for tag, ((code, _, _), text, _) in results.items() if code == 250}
    refused = {tag: r for tag, (r, _, _) in results.items() if r[0] != 250}
    for tag, (code, text, _) in refused.items():
        assert code == 452 and text.startswith("4.3.1"), (tag, code, text)
    got = assert_intact(pm, accepted)
    wait_queue_empty(pm)
    assert set(got) == set(accepted), f"refused but delivered: {sorted(set(got) - set(accepted))[:5]}"
    # Every delivery result and removal reached the store, also those that shared a failed
    # commit with a refused message.
    loaded = restart_queue_loads(pm)
    assert "messages=0 corrupt=0" in loaded, loaded


def test_whole_state_dir_full_survives_restarts_and_recovers(pm, small_fs):
    """The whole state dir (queue, mail store, keys) on one small filesystem, as with one
    container volume: while it is full, intake answers 452 4.3.1, a restarted queue and
    delivery come up and keep what was queued (delivery defers with 4.3.1), and once space
    is back everything queued is delivered intact and intake resumes."""
    setup_mail(pm)
    fs = small_fs(pm.state, 16)
    pm.start("queue", "smtpd", "delivery")
    sent = {f"d{i}": message(f"d{i}", 20_000) for i in range(3)}
    for text in sent.values():
        assert send(pm, text)[0] == 250
    assert_intact(pm, sent)
    wait_queue_empty(pm)
    pm.stop("delivery")
    queued = {f"q{i}": message(f"q{i}", 20_000) for i in range(3)}
    qids = set()
    for text in queued.values():
        code, _, qid = send(pm, text)
        assert code == 250
        qids.add(qid)
    fs.fill()
    code, text, _ = send(pm, message("refused", 300_000))
    assert code == 452 and text.startswith("4.3.1"), (code, text)
    # Restarts while full: nothing is lost, delivery defers.
    pm.stop("queue")
    pm.start("queue", "delivery")
    assert {r["id"] for r in pm.queue_list()} == qids
    wait_for(lambda: pm.log("queue").count("dsn=4.3.1") >= 3, 20, what="deliveries deferred with 4.3.1")
    assert {r["id"] for r in pm.queue_list()} == qids
    code, text, _ = send(pm, message("refused2", 300_000))
    assert code == 452 and text.startswith("4.3.1"), (code, text)
    fs.free()
    assert_intact(pm, {**sent, **queued})
    late = message("late", 300_000)
    assert send(pm, late)[0] == 250
    got = assert_intact(pm, {**sent, **queued, "late": late})
    assert set(got) == set(sent) | set(queued) | {"late"}
    wait_queue_empty(pm)
