"""The list of services as `postmesh services --json` gives it (common/services.def): tests
take their lists of services, users, pinned ids and bus keys from here instead of keeping
their own."""
import functools
import json
import subprocess

from conftest import BIN


@functools.lru_cache(maxsize=None)
def document():
    r = subprocess.run([str(BIN / "postmesh"), "services", "--json"], capture_output=True, text=True, timeout=10)
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
