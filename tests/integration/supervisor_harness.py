"""`postmesh run` in a test: the CLI copied into a private bin dir next to symlinks of the
chosen services (the supervisor finds its services next to itself), stderr of every service
in run.log."""
import re
import shutil
import signal
import subprocess

from conftest import BIN, wait_for


class Supervisor:
    def __init__(self, pm, services):
        self.pm = pm
        self.services = list(services)
        self.bindir = pm.root / "bin"
        self.bindir.mkdir(exist_ok=True)
        if not (self.bindir / "postmesh").exists():
            shutil.copy2(BIN / "postmesh", self.bindir / "postmesh")  # a copy: services are found next to it
        for svc in self.services:
            link = self.bindir / f"postmesh-{svc}"
            if not link.exists():
                link.symlink_to(BIN / f"postmesh-{svc}")
        self.log_path = pm.root / "run.log"
        self.proc = None

    def start(self, timeout=20):
        """Starts `postmesh run` and waits for the supervisor's own event=started."""
        self.pm.write_config()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen([str(self.bindir / "postmesh"), "-c", str(self.pm.conf_path), "run"],
                                         stdout=logf, stderr=subprocess.STDOUT, cwd=self.pm.root)
        wait_for(lambda: self.proc.poll() is not None or
                 re.search(r"svc=postmesh .*event=started", self.log()[offset:]), timeout,
                 what="postmesh run to start")
        assert self.proc.poll() is None, self.log()[-5000:]

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def spawned(self, svc):
        return [int(p) for p in re.findall(rf"svc=postmesh .*event=spawn svc={svc} pid=(\d+)", self.log())]

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None
