"""The list of services as `postmesh services --json` gives it (common/services.def): tests
and scripts take their lists of services, users, pinned ids, chroots, privilege shapes and
bus keys from here instead of keeping their own, so a new row is covered without editing
them."""
import functools
import json
import subprocess

import conftest


@functools.lru_cache(maxsize=None)
def document():
    # conftest.BIN read at the call: scripts/benchlib points it at its own binaries after import.
    r = subprocess.run([str(conftest.BIN / "postmesh"), "services", "--json"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def rows():
    return document()["services"]


def row(name):
    return next(s for s in rows() if s["name"] == name)


def supervised():
    """The services `postmesh run` starts, in its order (binary postmesh-<name>)."""
    return [s["name"] for s in sorted((s for s in rows() if s["start"]), key=lambda s: s["start"])]


def bus_keys():
    """The key names `postmesh keys init` makes, in its order (the cli's included)."""
    return [s["name"] for s in rows() if s["bus_key"]]


def users():
    """{user: pinned uid} of every account a service or helper drops to."""
    return {s["user"]: s["uid"] for s in rows() if s["user"]}


def groups():
    """{group: pinned gid} of the groups services share."""
    return {g["name"]: g["gid"] for g in document()["groups"]}


def profiles():
    """Every name with a seccomp profile of its own (the probe of tests/sandbox drops as it):
    each row that drops to a user, the look-up helpers' included; the cli runs as its caller."""
    return [s["name"] for s in rows() if s["user"]]


def privsep_parents():
    """The supervised services whose process is a root parent of sandboxes or job workers;
    their children log `event=sandbox_started sandbox=<service name>` (privchan.c)."""
    return [name for name in supervised() if row(name)["privsep"] in ("sandboxes", "job-workers")]


def helper_user():
    """The user the look-up helpers of the privsep parents run as (the `helper` row's)."""
    (user,) = {s["user"] for s in rows() if s["privsep"] == "helper"}
    return user
