"""strace attached to running services, and the parsed result: which syscalls each thread made,
when (wall clock, microseconds, one tracer for every process so the order across processes is
the tracer's), with which fd (path from `-y`, open flags read from /proc at attach time).

Used to check ordering promises that no black-box test can see, e.g. that the queue's data
file was synced before a client got its 250: a SIGKILL leaves the page cache intact, so only
the syscalls show whether a sync happened."""
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conftest import wait_for
from procs import stop_process

STRACE = shutil.which("strace")

# ts syscall(fd<path>, rest) = result <duration>
LINE = re.compile(r'^(\d+\.\d+) (\w+)\((.*)\) += (-?\d+|\?)(?: \w+ \([^)]*\))? <(\d+\.\d+)>$')
FD = re.compile(r'^(-?\d+)(?:<([^>]*)>)?')


@dataclass
class Call:
    pid: int        # process (thread group)
    tid: int
    start: float    # entry time
    end: float      # entry + duration: the call had returned by then
    name: str
    fd: int         # first argument when it is an fd, else None
    path: str       # what -y printed for that fd ("" when none)
    args: str       # the whole argument text (strings escaped as strace prints them)
    result: int


def descendants(pid):
    """pid and every process below it (through /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
    return out


def fd_flags(pid):
    """fd -> (target path, open flags) of a running process."""
    table = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
            info = (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text()
        except OSError:
            continue
        flags = int(re.search(r"^flags:\s+([0-7]+)", info, re.M).group(1), 8)
        table[int(fd.name)] = (target, flags)
    return table


class Tracer:
    """One strace attached to the given processes (each with all its threads), writing one
    file per thread; stop() detaches and leaves them running."""

    SYSCALLS = "write,writev,pwrite64,pwritev,pwritev2,sendto,sendmsg,fsync,fdatasync,syncfs,sync,msync"

    def __init__(self, directory: Path, pids):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pids = list(pids)
        self.fds = {pid: fd_flags(pid) for pid in self.pids}
        self.tgid = {int(t.name): pid for pid in self.pids for t in Path(f"/proc/{pid}/task").iterdir()}
        self.stderr = open(self.dir / "strace.stderr", "wb")
        cmd = [STRACE, "-ff", "-ttt", "-T", "-y", "-s", "512", "-e", f"trace={self.SYSCALLS}",
               "-o", str(self.dir / "t")]
        for pid in self.pids:
            cmd += ["-p", str(pid)]
        self.threads = len(self.tgid)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.stderr)
        # strace announces each thread it has seized; only then is nothing missed.
        wait_for(lambda: self._attached() >= self.threads, 15, what="strace to attach every thread")

    def _attached(self):
        if self.proc.poll() is not None:
            raise AssertionError("strace exited: " + (self.dir / "strace.stderr").read_text())
        text = (self.dir / "strace.stderr").read_text()
        # "Process N attached" or "Process N attached with K threads"
        return sum(int(k or 1) for k in re.findall(r"Process \d+ attached(?: with (\d+) threads)?", text))

    def stop(self):
        stop_process(self.proc, 15, signal.SIGINT)  # strace detaches; the tracees keep running
        self.stderr.close()

    def calls(self):
        """Every traced call of every thread, sorted by entry time."""
        out = []
        for f in self.dir.glob("t.*"):
            tid = int(f.suffix[1:])
            for line in f.read_text(errors="replace").splitlines():
                m = LINE.match(line)
                if not m:
                    continue
                ts, name, args, result, dur = m.groups()
                fm = FD.match(args)
                fd = int(fm.group(1)) if fm and name not in ("sync", "msync") else None
                path = (fm.group(2) or "") if fm else ""
                out.append(Call(self.tgid.get(tid, tid), tid, float(ts), float(ts) + float(dur), name, fd, path,
                                args, int(result) if result != "?" else -1))
        out.sort(key=lambda c: c.start)
        return out

    def open_flags(self, pid, fd):
        return self.fds.get(pid, {}).get(fd, ("", 0))[1]

