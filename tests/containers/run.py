#!/usr/bin/python3
"""`make test-containers`: the compose stack of deploy/compose.yaml on a real engine (podman).

Builds the base image (cached), the Postmesh and HAProxy images, brings the stack up under its
own project name with 3 smtpd replicas behind HAProxy on 127.0.0.1 high ports, then:
mail from several source addresses (127.0.0.2, .3, .4 and 127.0.0.1), every replica served
some, smtpd logged the real client addresses (PROXY v2), the mail read back over POP3 from
pop3d and over IMAPS from imapd, one smtpd killed (the others keep accepting), the queue
restarted (nothing accepted is lost), the health checks (`postmesh ping`) and one metrics
endpoint. Everything the project made is removed at the end, on failure too; the base image
stays cached.

Why a second HAProxy on the host network: podman publishes a port with DNAT, and a connection
from 127.0.0.1 is masqueraded to the network's gateway (so every client would look like
10.89.x.1), while one from 127.0.0.2 cannot be forwarded at all (a loopback source is martian
on the bridge). A real client from outside keeps its address through the DNAT; to show that
here, the same haproxy.cfg runs a second time with network_mode host, bound to 127.0.0.1,
resolving the replicas through the project network's DNS (aardvark-dns on its gateway).
The published port is exercised too (from 127.0.0.1: smtpd then logs the gateway).
"""
import imaplib
import json
import os
import poplib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROJECT = os.environ.get("POSTMESH_CT_PROJECT", "postmesh-ct")
IMAGE = "localhost/postmesh:latest"
HAPROXY_IMAGE = "localhost/postmesh-haproxy:latest"
BUILD_IMAGE = "localhost/postmesh-build:cache"
COMPOSE = os.path.join(ROOT, "deploy", "compose.yaml")
DEADLINE = time.monotonic() + float(os.environ.get("POSTMESH_CT_BUDGET", "1140"))  # 19 min
# The names of the services resolve through the network's DNS: aardvark-dns with netavark
# (what a fresh machine's podman picks), the dnsname plugin where podman already runs on CNI;
# both are only Recommends of podman, which --no-install-recommends leaves out.
PACKAGES = ["podman", "runc", "podman-compose", "haproxy", "debootstrap", "swaks", "ldnsutils",
            "netavark", "aardvark-dns", "golang-github-containernetworking-plugin-dnsname", "iptables"]
DOMAIN = "postmesh.test"
USER, PASSWORD = "alice@" + DOMAIN, "ct-secret-42"
SOURCES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
T0 = time.monotonic()
ENV = dict(os.environ)
WORK = tempfile.mkdtemp(prefix="postmesh-ct.")
LIST = {}  # `postmesh services --json` of the image built (common/services.def): what the stack runs


def log(msg):
    print("[%6.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


class Failure(Exception):
    pass


def left():
    return DEADLINE - time.monotonic()


def run(cmd, check=True, timeout=None, quiet=False, **kw):
    timeout = min(timeout or 300, max(5, left()))
    p = subprocess.run(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise Failure("%s: exit %d\n%s" % (" ".join(cmd), p.returncode, p.stdout[-4000:]))
    if not quiet and p.returncode != 0:
        log("(exit %d) %s" % (p.returncode, " ".join(cmd)))
    return p


def wait_for(what, fn, timeout):
    end = min(time.monotonic() + timeout, DEADLINE)
    last = None
    while time.monotonic() < end:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - polled until the deadline
            last = e
        time.sleep(0.5)
    raise Failure("timed out waiting for %s (last: %r)" % (what, last))


def compose(*args, timeout=300, check=True):
    return run(["podman-compose", "-p", PROJECT, "-f", COMPOSE] + list(args), timeout=timeout, check=check,
               cwd=ROOT)


# ------------------------------------------------------------------ setup
def ensure_packages():
    missing = [p for p in PACKAGES
               if "install ok installed" not in subprocess.run(
                   ["dpkg-query", "-W", "-f=${Status}", p], stdout=subprocess.PIPE,
                   stderr=subprocess.DEVNULL, text=True).stdout]
    if not missing:
        return
    if os.geteuid() != 0:
        raise Failure("missing packages %s (run as root to install)" % " ".join(missing))
    log("installing " + " ".join(missing))
    env = dict(ENV, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing, env=env, check=True)
    # Debian's haproxy package enables its daemon: this machine must not keep one running.
    subprocess.run(["systemctl", "disable", "--now", "haproxy"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)


def containers_conf():
    """The engine's default ulimits (nofile 1048576, a large nproc) exceed this machine's hard
    limits, and runc then refuses to start any container: pin them to what we may set."""
    import resource
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
    path = os.path.join(WORK, "containers.conf")
    with open(path, "w") as f:
        f.write('[containers]\ndefault_ulimits = ["nofile=%d:%d", "nproc=%d:%d"]\n' % (nofile, nofile, nproc, nproc))
    ENV["CONTAINERS_CONF"] = path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


PORTS = {}


def choose_ports():
    for name in ["SMTP", "SMTPS", "SUBMISSION", "POP3", "POP3S", "IMAP", "IMAPS", "METRICS"]:
        PORTS[name] = free_port()
        ENV["POSTMESH_%s_PORT" % name] = str(PORTS[name])
    for name in ["SMTP", "POP3", "POP3S", "IMAP", "IMAPS"]:  # the host-network HAProxy's
        PORTS["EDGE_" + name] = free_port()
    ENV["POSTMESH_BIND"] = "127.0.0.1"


def image_services():
    """The list of services the image was built with: its own `postmesh services --json`
    (stdout alone: the engine may warn on stderr)."""
    cmd = ["podman", "run", "--rm", "--entrypoint", "postmesh", IMAGE, "services", "--json"]
    p = subprocess.run(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=min(120, max(5, left())))
    if p.returncode != 0:
        raise Failure("%s: exit %d\n%s" % (" ".join(cmd), p.returncode, p.stderr[-2000:]))
    return json.loads(p.stdout)


def supervised():
    """The services `postmesh run` starts, in its order: each has its own container (compose)."""
    rows = [s for s in LIST["services"] if s["start"]]
    return [s["name"] for s in sorted(rows, key=lambda s: s["start"])]


def build_images():
    t = time.monotonic()
    run(["sh", os.path.join(ROOT, "scripts", "container-base.sh")], timeout=900)
    log("base image ready (%.0fs)" % (time.monotonic() - t))
    t = time.monotonic()
    # The build stage gets a tag of its own: it keeps its layers (the -dev packages) alive as
    # the cache of the next run while the images this run replaced are pruned.
    run(["podman", "build", "-q", "--target", "build", "-f", "deploy/container/Containerfile", "-t", BUILD_IMAGE,
         "."], cwd=ROOT, timeout=900)
    run(["podman", "build", "-q", "-f", "deploy/container/Containerfile", "-t", IMAGE, "."], cwd=ROOT, timeout=900)
    run(["podman", "build", "-q", "-f", "deploy/container/haproxy.Containerfile", "-t", HAPROXY_IMAGE,
         "deploy/container"], cwd=ROOT, timeout=600)
    for kind in ["build", "runtime", "haproxy"]:
        run(["podman", "image", "prune", "-f", "--filter", "label=io.postmesh.image=" + kind], check=False, quiet=True)
    log("images built (%.0fs)" % (time.monotonic() - t))
    LIST.update(image_services())
    users = {s["user"]: s["uid"] for s in LIST["services"] if s["user"]}
    groups = {g["name"]: g["gid"] for g in LIST["groups"]}
    # What the runtime image must not carry, and the accounts of the list with their pinned ids.
    p = run(["podman", "run", "--rm", "--entrypoint", "/bin/sh", IMAGE, "-c",
             "for t in gcc cc make swaks python3 pytest valgrind; do command -v $t; done; "
             "ls /usr/local/bin; ls /var/lib/postmesh; " +
             "".join("echo user=%s:$(id -u %s); " % (u, u) for u in users) +
             "".join("getent group %s; " % g for g in groups)], check=False)
    out = p.stdout.split()
    if any(x.startswith("/") and os.path.basename(x) in ("gcc", "cc", "make", "swaks", "python3", "pytest",
                                                          "valgrind") for x in out):
        raise Failure("runtime image carries build or test tools:\n" + p.stdout)
    if "sandbox_probe" in p.stdout or any("user=%s:%d" % (u, uid) not in out for u, uid in users.items()) or \
            any("%s:x:%d:" % (g, gid) not in p.stdout for g, gid in groups.items()):
        raise Failure("runtime image content unexpected:\n" + p.stdout)


# ------------------------------------------------------------------ teardown
def cleanup():
    """Everything of the project: containers (with their anonymous volumes), its volumes and
    networks. Safe to call when nothing is there."""
    if shutil.which("podman-compose") and os.path.exists(COMPOSE):
        subprocess.run(["podman-compose", "-p", PROJECT, "-f", COMPOSE, "down", "-v", "-t", "3"], env=ENV,
                       cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180, check=False)
    label = "label=io.podman.compose.project=" + PROJECT
    for _ in range(3):  # a restart policy may bring one back while we remove the others
        ids = subprocess.run(["podman", "ps", "-aq", "--filter", label], env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True).stdout.split()
        if not ids:
            break
        subprocess.run(["podman", "rm", "-f", "-v", "-t", "0"] + ids, env=ENV, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    vols = subprocess.run(["podman", "volume", "ls", "-q", "--filter", "name=^%s_" % PROJECT], env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.split()
    vols = [v for v in vols if v.startswith(PROJECT + "_")]
    if vols:
        subprocess.run(["podman", "volume", "rm", "-f"] + vols, env=ENV, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    nets = subprocess.run(["podman", "network", "ls", "-q", "--format", "{{.Name}}"], env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.split()
    nets = [n for n in nets if n.startswith(PROJECT + "_")]
    if nets:
        subprocess.run(["podman", "network", "rm", "-f"] + nets, env=ENV, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)


def leftovers():
    label = "label=io.podman.compose.project=" + PROJECT
    c = subprocess.run(["podman", "ps", "-aq", "--filter", label], env=ENV, stdout=subprocess.PIPE,
                       text=True).stdout.split()
    v = [x for x in subprocess.run(["podman", "volume", "ls", "-q"], env=ENV, stdout=subprocess.PIPE,
                                   text=True).stdout.split() if x.startswith(PROJECT + "_")]
    n = [x for x in subprocess.run(["podman", "network", "ls", "--format", "{{.Name}}"], env=ENV,
                                   stdout=subprocess.PIPE, text=True).stdout.split() if x.startswith(PROJECT + "_")]
    return c + v + n


# ------------------------------------------------------------------ the stack
def containers(service):
    p = run(["podman", "ps", "-a", "--filter", "label=io.podman.compose.project=" + PROJECT,
             "--filter", "label=com.docker.compose.service=" + service, "--format", "{{.Names}} {{.State}}"])
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def logs(name):
    return run(["podman", "logs", name], check=False, quiet=True).stdout


def running(name):
    p = run(["podman", "inspect", name, "--format", "{{.State.Status}}"], check=False, quiet=True)
    return p.stdout.strip() == "running"


def bring_up():
    log("setup: keys, TLS pair, users file")
    compose("run", "--rm", "--no-deps", "setup", "sh", "-c",
            "/bin/sh /etc/postmesh/setup.sh && printf '%%s\\n' '%s' | postmesh user add %s" % (PASSWORD, USER))
    log("up")
    compose("up", "-d", timeout=400)
    smtpds = containers("smtpd")
    if len(smtpds) != 3:
        raise Failure("expected 3 smtpd replicas, got %s" % smtpds)
    for svc in supervised():
        if svc != "smtpd" and len(containers(svc)) != 1:  # smtpd: the replicas above
            raise Failure("service %s: %s" % (svc, containers(svc)))
    # Every bus client connected to the queue (workers log it once the queue answers).
    for name in smtpds:
        wait_for(name + " connected to the queue", lambda n=name: "event=queue_shard_up" in logs(n)
                 or "event=queue_connected" in logs(n), 60)
    log("stack up: %s" % ", ".join(smtpds))


def gateway():
    p = run(["podman", "network", "inspect", PROJECT + "_mesh"])
    net = json.loads(p.stdout)[0]
    return net["subnets"][0]["gateway"]


def start_edge():
    """The same haproxy.cfg on the host network: binds 127.0.0.1, asks the project network's
    DNS, so client addresses reach the replicas unchanged (see the module comment)."""
    with open(os.path.join(ROOT, "deploy", "compose", "haproxy.cfg")) as f:
        cfg = f.read()
    gw = gateway()
    cfg = cfg.replace("parse-resolv-conf", "nameserver mesh %s:53" % gw)
    binds = {":25": PORTS["EDGE_SMTP"], ":110": PORTS["EDGE_POP3"], ":995": PORTS["EDGE_POP3S"],
             ":143": PORTS["EDGE_IMAP"], ":993": PORTS["EDGE_IMAPS"]}
    for old, port in binds.items():
        cfg = cfg.replace("bind %s\n" % old, "bind 127.0.0.1:%d\n" % port)
    for old in [":465", ":587"]:
        cfg = cfg.replace("bind %s\n" % old, "bind 127.0.0.1:%d\n" % free_port())
    # Only the short names resolve through aardvark-dns from the host.
    path = os.path.join(WORK, "haproxy-edge.cfg")
    with open(path, "w") as f:
        f.write(cfg)
    os.chmod(path, 0o644)
    run(["podman", "run", "-d", "--name", PROJECT + "_edge", "--network", "host",
         "--label", "io.podman.compose.project=" + PROJECT, "--cap-drop", "ALL",
         "--cap-add", "NET_BIND_SERVICE", "--cap-add", "SETUID", "--cap-add", "SETGID", "--cap-add", "SYS_CHROOT",
         "-v", path + ":/etc/haproxy/haproxy.cfg:ro", HAPROXY_IMAGE])


# ------------------------------------------------------------------ mail
def swaks(port, source, subject, expect="250"):
    cmd = ["swaks", "--server", "127.0.0.1", "--port", str(port), "--to", USER, "--from", "sender@example.org",
           "--h-Subject", subject, "--body", "container test " + subject, "--timeout", "20"]
    if source:
        cmd += ["--local-interface", source]
    p = run(cmd, check=False, quiet=True, timeout=60)
    m = re.findall(r"^<[-*~]*\s+(\d{3})[ -]", p.stdout, re.M)
    # The reply to the end of DATA is the one before QUIT's 221.
    code = m[-2] if len(m) >= 2 else (m[-1] if m else "")
    return p.returncode == 0 and code.startswith(expect), p.stdout


def send_batch(tag, count, sources, port, accepted):
    for i in range(count):
        src = sources[i % len(sources)]
        subject = "%s-%d" % (tag, i)
        end = time.monotonic() + 30
        while True:
            ok, out = swaks(port, src, subject)
            if ok:
                accepted.append(subject)
                break
            if time.monotonic() > end:
                raise Failure("mail %s from %s not accepted:\n%s" % (subject, src, out[-1500:]))
            time.sleep(0.5)


def pop3_subjects():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    pop = poplib.POP3_SSL("127.0.0.1", PORTS["EDGE_POP3S"], context=ctx, timeout=20)
    try:
        pop.user(USER)
        pop.pass_(PASSWORD)
        subjects = set()
        for i in range(1, len(pop.list()[1]) + 1):
            for line in pop.top(i, 0)[1]:
                line = line.decode("utf-8", "replace")
                if line.lower().startswith("subject:"):
                    subjects.add(line.split(":", 1)[1].strip())
        return subjects
    finally:
        pop.quit()


def imap_subjects():
    """The Subject: of every message in INBOX, read over IMAPS from imapd through HAProxy."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    imap = imaplib.IMAP4_SSL("127.0.0.1", PORTS["EDGE_IMAPS"], ssl_context=ctx, timeout=20)
    try:
        imap.login(USER, PASSWORD)
        imap.select("INBOX", readonly=True)
        typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = set()
        for item in data if typ == "OK" else []:
            if isinstance(item, tuple):
                for line in item[1].decode("utf-8", "replace").splitlines():
                    if line.lower().startswith("subject:"):
                        subjects.add(line.split(":", 1)[1].strip())
        return subjects
    except imaplib.IMAP4.error:
        return set()  # an empty mailbox: FETCH 1:* is a BAD
    finally:
        try:
            imap.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def queued_clients(name):
    """(client address, count) of each `event=queued` of one smtpd container."""
    out = {}
    for m in re.finditer(r"event=queued .*?client=\"?([0-9a-f.:\[\]]+?)(?::\d+)?\"? ", logs(name)):
        out[m.group(1)] = out.get(m.group(1), 0) + 1
    return out


def health(name):
    return run(["podman", "healthcheck", "run", name], check=False, quiet=True).returncode == 0


# ------------------------------------------------------------------ main
def test_config():
    """deploy/compose/postmesh.conf as it is, but for its recursive resolvers: the test sends
    nothing off this host, so the resolver asks one that is not there (127.0.0.1 inside its
    container: refused at once). smtpd still verifies SPF/DKIM/DMARC on port 25 through the
    resolver container (every answer a temperror), which is what shows it can reach it."""
    with open(os.path.join(ROOT, "deploy", "compose", "postmesh.conf")) as f:
        text = f.read()
    text, n = re.subn(r"nameservers\s*=\s*\[[^\]]*\];", 'nameservers = [ "127.0.0.1:53" ];', text)
    if n != 1:
        raise Failure("deploy/compose/postmesh.conf: no resolver.nameservers line to replace")
    path = os.path.join(WORK, "postmesh.conf")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(WORK, 0o755)
    os.chmod(path, 0o644)
    ENV["POSTMESH_COMPOSE_CONFIG"] = path


def main():
    ensure_packages()
    containers_conf()
    test_config()
    cleanup()  # what a run killed without its trap may have left
    choose_ports()
    build_images()
    bring_up()
    start_edge()
    accepted = []
    smtpds = containers("smtpd")

    # 1. Through the host-network HAProxy from three source addresses, and once through the
    #    published port (masqueraded by the engine: the gateway is what smtpd sees there).
    wait_for("HAProxy to find the replicas", lambda: swaks(PORTS["EDGE_SMTP"], SOURCES[0], "probe")[0], 60)
    accepted.append("probe")
    send_batch("edge", 12, SOURCES, PORTS["EDGE_SMTP"], accepted)
    send_batch("published", 2, ["127.0.0.1"], PORTS["SMTP"], accepted)
    log("%d messages accepted" % len(accepted))

    per = {n: queued_clients(n) for n in smtpds}
    for n, clients in per.items():
        if not clients:
            raise Failure("replica %s served no mail: %s" % (n, per))
    seen = set().union(*[set(c) for c in per.values()])
    for src in SOURCES:
        if src not in seen:
            raise Failure("smtpd never logged client %s (PROXY): %s" % (src, per))
    gw = gateway()
    if gw not in seen:
        raise Failure("mail through the published port not logged as from the gateway %s: %s" % (gw, per))
    log("each replica served mail; client addresses logged: %s" % sorted(seen))

    # 2. POP3 from pop3d (through HAProxy: PROXY on 995 too).
    wait_for("all mail in the mailbox", lambda: set(accepted) <= pop3_subjects(), 90)
    log("POP3: %d messages read back" % len(accepted))
    # The same store over IMAPS from imapd (through HAProxy, PROXY v2 on 993).
    wait_for("all mail over IMAP", lambda: set(accepted) <= imap_subjects(), 60)
    log("IMAP: %d messages read back" % len(accepted))

    # 3. Health checks (`postmesh ping SERVICE`) answer in every service's container.
    for svc in supervised():
        for n in containers(svc):
            wait_for("health of " + n, lambda n=n: health(n), 30)
    log("health checks pass")

    # 4. Metrics from the queue's published metrics port.
    body = wait_for("queue metrics", lambda: urllib.request.urlopen(
        "http://127.0.0.1:%d/metrics" % PORTS["METRICS"], timeout=5).read().decode(), 30)
    if not re.search(r"^postmesh_\w+(\{[^}]*\})? [0-9.e+-]+$", body, re.M):
        raise Failure("no postmesh_ metric in /metrics:\n" + body[:1000])
    log("metrics: %d lines of Prometheus text" % len(body.splitlines()))

    # 5. One replica killed: the others keep accepting, with no client-visible error.
    victim = smtpds[1]
    run(["podman", "kill", "-s", "KILL", victim])
    log("killed " + victim)
    before = len(accepted)
    for i in range(9):
        ok, out = swaks(PORTS["EDGE_SMTP"], SOURCES[i % 3], "afterkill-%d" % i)
        if not ok:
            raise Failure("mail refused after a replica was killed:\n" + out[-1500:])
        accepted.append("afterkill-%d" % i)
    log("%d more accepted with %s down" % (len(accepted) - before, victim))

    # 6. The queue restarted: nothing acknowledged is lost (mail sent just before included).
    send_batch("before-restart", 3, SOURCES, PORTS["EDGE_SMTP"], accepted)
    qname = containers("queue")[0]
    run(["podman", "restart", "-t", "30", qname], timeout=90)
    wait_for("queue running again", lambda: running(qname), 60)
    send_batch("after-restart", 3, SOURCES, PORTS["EDGE_SMTP"], accepted)
    got = wait_for("every accepted message in the mailbox",
                   lambda: (lambda s: s if set(accepted) <= s else None)(pop3_subjects()), 120)
    log("queue restarted; all %d accepted messages in the mailbox (%d there)" % (len(accepted), len(got)))


def on_signal(sig, frame):
    raise Failure("signal %d" % sig)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    rc = 0
    try:
        main()
    except (Failure, subprocess.TimeoutExpired) as e:
        rc = 1
        print("test-containers: FAILED: %s" % e, file=sys.stderr)
        for svc in ["queue", "smtpd", "delivery", "pop3d", "imapd", "haproxy"]:
            try:
                for n in containers(svc):
                    print("---- %s (last lines)\n%s" % (n, "\n".join(logs(n).splitlines()[-15:])), file=sys.stderr)
            except Exception:  # noqa: BLE001 - the report must not hide the failure
                pass
    finally:
        cleanup()
        rest = leftovers()
        if rest:
            print("test-containers: left behind: %s" % rest, file=sys.stderr)
            rc = 1
        shutil.rmtree(WORK, ignore_errors=True)
    log("test-containers: %s (total %.0fs)" % ("ok" if rc == 0 else "FAILED", time.monotonic() - T0))
    sys.exit(rc)
