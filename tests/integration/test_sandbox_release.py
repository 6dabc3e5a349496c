"""The release build (`make install` compiles with -DPOSTMESH_NO_TEST_HOOKS) keeps no test
switch: no binary it installs knows POSTMESH_SECCOMP (turns the sandbox off or to log-only)
or any POSTMESH_TEST_* variable (delivery stall, forbidden-syscall command, probe attacks).

The release objects live next to the build under test ($(BUILD)-release) and are rebuilt by
make only when a source changed, so a repeated run costs a make that finds nothing to do."""
import subprocess
from pathlib import Path

from conftest import BIN, REPO
from services_list import supervised

SWITCHES = (b"POSTMESH_SECCOMP", b"POSTMESH_TEST_")


def switches_in(path):
    data = Path(path).read_bytes()
    return [s.decode() for s in SWITCHES if s in data]


def test_release_binaries_have_no_test_switches():
    # The build under test has them: the check below can see them.
    assert "POSTMESH_TEST_" in switches_in(BIN / "postmesh-delivery")
    assert "POSTMESH_SECCOMP" in switches_in(BIN / "postmesh-queue")
    release = REPO / f"{BIN.parent.name}-release"
    r = subprocess.run(["make", "-s", "-j2", f"BUILD={release.name}", "EXTRA_CFLAGS=-DPOSTMESH_NO_TEST_HOOKS", "all"],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    binaries = sorted((release / "bin").iterdir())
    assert {b.name for b in binaries} >= {f"postmesh-{s}" for s in supervised()} | {"postmesh"}
    found = {b.name: switches_in(b) for b in binaries if switches_in(b)}
    assert not found, found
