"""A disk error in the middle of an LMDB commit. When the write of the meta page fails, LMDB
marks its environment unusable (every later transaction: MDB_PANIC) although the file on
disk is still consistent (the data pages were synced, the previous meta page is intact).
The queue must reopen the store and go on, not refuse every submission until restarted.

The error is injected with an LD_PRELOAD shim (built here) that makes the next pwrite() on
the O_DSYNC descriptor (LMDB's meta-page fd) fail with EIO once SIGUSR2 arms it."""
import os
import shutil
import signal
import smtplib
import subprocess

import pytest

from conftest import wait_for
from pop3_helpers import add_user, messages

USER, SENDER = "alice@example.test", "sender@client.test"

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/types.h>
#include <unistd.h>

static volatile sig_atomic_t armed;
static unsigned char dsync[4096];

static void arm(int sig) { (void)sig; armed = 1; }

__attribute__((constructor)) static void init(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = arm;
    sigaction(SIGUSR2, &sa, NULL);
}

static int track(int fd, int flags)
{
    if (fd >= 0 && fd < (int)sizeof dsync)
        dsync[fd] = (flags & O_DSYNC) != 0;
    return fd;
}

int open(const char *path, int flags, ...)
{
    static int (*real)(const char *, int, ...);
    if (!real)
        real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
    va_list ap;
    va_start(ap, flags);
    mode_t mode = (flags & O_CREAT) ? va_arg(ap, mode_t) : 0;
    va_end(ap);
    return track(real(path, flags, mode), flags);
}

static ssize_t fail_or(int fd, const void *buf, size_t n, off_t off, const char *name)
{
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real)
        real = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, name);
    if (armed && fd >= 0 && fd < (int)sizeof dsync && dsync[fd]) {
        armed = 0;
        errno = EIO;
        return -1;
    }
    return real(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) { return fail_or(fd, buf, n, off, "pwrite"); }
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return fail_or(fd, buf, n, off, "pwrite64"); }
"""


@pytest.fixture
def shim(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler for the fault-injection shim")
    src, lib = tmp_path / "eio_shim.c", tmp_path / "eio_shim.so"
    src.write_text(SHIM)
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(src), "-ldl"], check=True,
                   capture_output=True, timeout=60)
    lib.chmod(0o755)
    return lib


def message(tag):
    return f"From: <{SENDER}>\r\nSubject: {tag}\r\nMessage-ID: <{tag}@client.test>\r\n\r\nbody of {tag}\r\n"


def send(pm, text):
    """(code, text) of the reply to the end of DATA."""
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        try:
            s.sendmail(SENDER, [USER], text)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
    return 250, ""


def test_queue_reopens_its_store_after_a_failed_meta_write(pm, shim, monkeypatch, tmp_path):
    add_user(pm, USER, "secret")
    pm.configure(queue={"retry_min": 1, "retry_max": 1}, smtpd={"submit_timeout": 5})
    os.chmod(tmp_path, 0o755)  # the queue drops to its own user and must reach the shim
    monkeypatch.setenv("LD_PRELOAD", str(shim))
    pm.start("queue")
    monkeypatch.delenv("LD_PRELOAD")
    pm.start("smtpd")
    before = [message(f"before{i}") for i in range(2)]
    for text in before:
        assert send(pm, text)[0] == 250
    pm.procs["queue"].send_signal(signal.SIGUSR2)  # the next meta-page write fails with EIO
    failed_code, failed_text = send(pm, message("failed"))
    # The failed commit itself: a temporary error (or, if the queue retried it on the reopened
    # store, a 250), never a lost acknowledgement.
    assert failed_code in (250, 451, 452), (failed_code, failed_text)
    # Intake works again without a restart, and nothing acknowledged was lost.
    after = [message(f"after{i}") for i in range(3)]
    for text in after:
        code, reply = send(pm, text)
        assert code == 250, (code, reply)
    assert pm.procs["queue"].poll() is None
    assert "event=store_reopened" in pm.log("queue")
    want = {f"before{i}" for i in range(2)} | {f"after{i}" for i in range(3)}
    if failed_code == 250:
        want.add("failed")
    assert len(pm.queue_list()) == len(want)
    pm.start("delivery")

    def tags():
        return {p.read_bytes().split(b"Message-ID: <", 1)[1].split(b"@")[0].decode() for p in messages(pm, USER)}
    wait_for(lambda: want <= tags(), 30, what="every acknowledged message delivered")
    wait_for(lambda: not pm.queue_list(), 30, what="an empty queue")
    assert tags() == want
    # The store on disk is sound: a restarted queue loads it without complaint.
    pm.stop("queue")
    pm.start("queue")
    loaded = [line for line in pm.log("queue").splitlines() if "event=store_loaded" in line]
    assert len(loaded) == 2 and "messages=0 corrupt=0" in loaded[-1], loaded
