"""Static checks of deploy/: the compose stack and the Kubernetes manifests are complete and
consistent (no cluster and no engine needed; `make test-containers` runs the compose stack).

Every service has an image, a command, the config mounted, probes (health checks) and
resource limits; every ConfigMap, Secret, PVC and Service a manifest names exists; the YAML
parses; the kustomization lists every file; the config files load with the real parser
(`postmesh -c FILE keys where` loads and validates the whole file and touches no state);
each role's Secret holds its own key and only the public keys it needs.
"""
import base64
import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import BIN, REPO
from services_list import bus_keys, groups, row, supervised, users

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
# What `postmesh keys where` says each role with a bus key needs besides its own pair.
NEEDS = {
    "queue": {"smtpd", "mta", "delivery", "bouncer", "cli"},
    "resolver": {"smtpd", "mta"},
    "smtpd": {"queue", "resolver"},
    "mta": {"queue", "resolver"},
    "delivery": {"queue"},
    "bouncer": {"queue"},
    "cli": {"queue"},
}
# What each service needs when it starts as root and drops (docs/containers.md), from its row
# of `postmesh services`: the drop itself, plus owning and reaching a store (the queue's own
# chroot, the mta's; a store shared through a group: delivery and pop3d share the Maildirs), plus the
# privileged ports of a front end (one that runs sandboxes). The same in compose and Kubernetes.
DROP = {"SETUID", "SETGID", "SYS_CHROOT", "KILL"}


def caps(svc):
    s = row(svc)
    return (DROP | ({"CHOWN", "DAC_OVERRIDE"} if s["chroot"] == "queue" else set())
            | ({"CHOWN"} if s["chroot"] == "mta" else set())   # its own writable chroot (MTA-STS cache)
            | ({"CHOWN", "FOWNER", "DAC_OVERRIDE"} if s["group"] else set())
            | ({"NET_BIND_SERVICE"} if s["privsep"] == "sandboxes" else set()))


def roles():
    """Every service that runs in its own container: those `postmesh run` starts."""
    return supervised()


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def k8s_docs():
    docs = []
    for p in sorted(K8S.glob("*.yaml")):
        if p.name != "kustomization.yaml":
            docs += [(p.name, d) for d in load_all(p)]
    return docs


def postmesh_check_config(path):
    return subprocess.run([str(BIN / "postmesh"), "-c", str(path), "keys", "where"], capture_output=True,
                          text=True, timeout=10)


# ------------------------------------------------------------------ compose
def mount_source(m):
    """The source of a short-syntax volume ("${VAR:-default}:/target:ro" included)."""
    return re.match(r"^(\$\{[^}]*\}|[^:]+):", m).group(1)


def test_compose_services_are_complete():
    c = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = c["services"]
    assert set(roles()) | {"haproxy", "setup"} <= set(services), sorted(services)
    declared_volumes = set(c.get("volumes") or {})
    declared_networks = set(c.get("networks") or {})
    for name, s in services.items():
        assert s.get("image"), name
        assert s.get("command"), name
        assert s.get("deploy", {}).get("resources", {}).get("limits"), "%s: no resource limits" % name
        mounts = s.get("volumes", [])
        if name != "haproxy":
            assert any(m.endswith(":/etc/postmesh/postmesh.conf:ro") for m in mounts), "%s: no config mount" % name
        if name in roles() or name == "haproxy":
            hc = s.get("healthcheck") or {}
            # A string (CMD-SHELL): podman-compose 1.0.3 mangles the list form (see compose.yaml).
            assert isinstance(hc.get("test"), str), "%s: no health check" % name
            if name in roles():
                assert hc["test"] == "postmesh ping %s" % name, name
                assert s["command"] == ["postmesh-%s" % name], name
                assert s.get("environment", {}).get("POSTMESH_SERVICE") == name
        for m in mounts:
            src = mount_source(m)
            if src.startswith("./"):
                assert (DEPLOY / src).exists(), "%s mounts missing %s" % (name, src)
            elif src.startswith("${"):
                default = re.match(r"\$\{\w+:-([^}]+)\}", src).group(1)
                assert (DEPLOY / default).exists(), "%s mounts missing %s" % (name, default)
            else:
                assert src in declared_volumes, "%s: volume %s not declared" % (name, src)
        for n in s.get("networks", []):
            assert n in declared_networks, "%s: network %s not declared" % (name, n)
    for svc in roles():
        assert services[svc]["cap_drop"] == ["ALL"] and set(services[svc]["cap_add"]) == caps(svc), svc
    assert services["smtpd"]["deploy"]["replicas"] == 3
    assert "ports" not in services["smtpd"], "replicas must not publish ports (HAProxy does)"
    published = {p.rsplit(":", 1)[1] for p in services["haproxy"]["ports"]}
    assert {"25", "465", "587", "110", "995"} <= published


def test_compose_keys_each_service_mounts_only_its_own_role():
    """Each bus service mounts the keys volume of its role only; the volume with every key
    (keys-all) is the setup container's alone."""
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    for name, s in services.items():
        keys = [mount_source(m) for m in s.get("volumes", []) if mount_source(m).startswith("keys-")]
        if name == "setup":
            assert "keys-all" in keys
        elif name in NEEDS:
            assert keys == ["keys-%s" % name], (name, keys)
        else:
            assert keys == [], (name, keys)
    setup = (DEPLOY / "compose" / "setup.sh").read_text()
    for role, pubs in NEEDS.items():
        line = re.search(r"^copy_role %s( .*)?$" % role, setup, re.M)
        assert line, role
        assert set((line.group(1) or "").split()) == pubs, role


def test_haproxy_config_sends_proxy_v2_and_discovers_by_dns(tmp_path):
    cfg = (DEPLOY / "compose" / "haproxy.cfg").read_text()
    assert "send-proxy-v2" in cfg and "parse-resolv-conf" in cfg
    assert re.search(r"server-template smtpd \d+ smtpd:25", cfg)
    if not shutil.which("haproxy"):
        pytest.skip("haproxy not installed (make test-containers installs it and runs this config)")
    r = subprocess.run(["haproxy", "-c", "-f", str(DEPLOY / "compose" / "haproxy.cfg")], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------------ kubernetes
def test_kustomization_lists_every_file():
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(k["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == files, (sorted(listed - files), sorted(files - listed))
    for gen in k.get("configMapGenerator", []):
        for f in gen["files"]:
            assert (K8S / f.split("=")[-1]).exists(), f
    others = {p.name for p in K8S.iterdir()} - files - {"kustomization.yaml"}
    gen_files = {f.split("=")[-1] for g in k.get("configMapGenerator", []) for f in g["files"]}
    assert others <= gen_files | {"keys.sh"}, sorted(others)


def pod_specs():
    for fname, d in k8s_docs():
        if d["kind"] in ("Deployment", "StatefulSet"):
            yield fname, d, d["spec"]["template"]["spec"]


def test_k8s_every_workload_is_complete():
    seen = set()
    for fname, d, spec in pod_specs():
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert d["spec"]["selector"]["matchLabels"].items() <= labels.items(), d["metadata"]["name"]
        assert labels.get("app.kubernetes.io/part-of") == "postmesh"
        for c in spec["containers"]:
            where = "%s/%s" % (d["metadata"]["name"], c["name"])
            svc = c["command"][0].removeprefix("postmesh-")
            seen.add(svc)
            assert c["image"] and c["imagePullPolicy"] == "IfNotPresent", where
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            assert env.get("POSTMESH_SERVICE") == svc, where
            cfgdir = os.path.dirname(env["POSTMESH_CONFIG"])
            assert any(m["mountPath"] == cfgdir for m in c["volumeMounts"]), where
            # readiness follows the bus; liveness only the process, or a queue outage would
            # get every front end and worker restarted in a loop
            assert c["readinessProbe"]["exec"]["command"] == ["postmesh", "ping", svc], where
            assert c["livenessProbe"]["exec"]["command"] == ["postmesh", "ping", "--live", svc], where
            assert c["resources"]["requests"] and c["resources"]["limits"], where
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            pod_sc = spec.get("securityContext", {})
            if pod_sc.get("runAsNonRoot"):
                assert pod_sc["runAsUser"] == users()[row(svc)["user"]], where
                assert not sc["capabilities"].get("add"), where
            else:
                # Started as root to drop per process: the capabilities of that drop, exactly.
                assert set(sc["capabilities"]["add"]) == caps(svc), where
    assert seen == set(roles()), sorted(seen)


def test_k8s_references_exist():
    docs = k8s_docs()
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    have = {(d["kind"], d["metadata"]["name"]) for _, d in docs}
    have |= {("ConfigMap", g["name"]) for g in k.get("configMapGenerator", [])}
    pods = []
    for fname, d, spec in pod_specs():
        claims = {t["metadata"]["name"] for t in d["spec"].get("volumeClaimTemplates", [])}
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            for m in c["volumeMounts"]:
                assert m["name"] in vols or m["name"] in claims, (d["metadata"]["name"], m["name"])
        for v in vols.values():
            if "configMap" in v:
                assert ("ConfigMap", v["configMap"]["name"]) in have, v
            if "secret" in v:
                assert ("Secret", v["secret"]["secretName"]) in have, v
            if "persistentVolumeClaim" in v:
                assert ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]) in have, v
        if d["kind"] == "StatefulSet":
            assert ("Service", d["spec"]["serviceName"]) in have, d["metadata"]["name"]
        pods.append((d["spec"]["template"]["metadata"]["labels"], spec))
    for _, d in docs:
        if d["kind"] == "Service":
            sel = d["spec"]["selector"]
            matching = [spec for labels, spec in pods if sel.items() <= labels.items()]
            assert matching, "Service %s selects no Pod" % d["metadata"]["name"]
            ports = {p["name"] for spec in matching for c in spec["containers"] for p in c.get("ports", [])}
            for p in d["spec"]["ports"]:
                assert p["targetPort"] in ports, (d["metadata"]["name"], p)
            if d["spec"].get("type") == "LoadBalancer":
                assert d["spec"]["externalTrafficPolicy"] == "Local", d["metadata"]["name"]
        if d["kind"] in ("PodDisruptionBudget", "NetworkPolicy"):
            sel = d["spec"].get("selector", d["spec"].get("podSelector")).get("matchLabels", {})
            assert any(sel.items() <= labels.items() for labels, _ in pods), d["metadata"]["name"]
        if d["kind"] == "HorizontalPodAutoscaler":
            ref = d["spec"]["scaleTargetRef"]
            assert (ref["kind"], ref["name"]) in have, ref
    kinds = {kind for kind, _ in have}
    for kind in ["StatefulSet", "Deployment", "Service", "Secret", "ConfigMap", "PersistentVolumeClaim",
                 "PodDisruptionBudget", "NetworkPolicy", "HorizontalPodAutoscaler", "Namespace"]:
        assert kind in kinds, kind


def test_k8s_bus_ports_only_from_our_pods():
    pols = [d for _, d in k8s_docs() if d["kind"] == "NetworkPolicy"]
    assert any(p["spec"]["podSelector"] == {} and p["spec"].get("ingress") is None for p in pols), "no default deny"
    for p in pols:
        for rule in p["spec"].get("ingress", []):
            ports = {x["port"] for x in rule.get("ports", [])}
            if ports & {7701, 7702, 7703}:
                assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "postmesh"}}}]


def test_k8s_one_secret_per_role_with_its_key_and_needed_publics():
    assert set(NEEDS) == set(bus_keys())
    secrets = {d["metadata"]["name"]: d for _, d in k8s_docs() if d["kind"] == "Secret"}
    for role, pubs in NEEDS.items():
        s = secrets["postmesh-keys-" + role]
        assert set(s["stringData"]) == {role + ".key", role + ".pub"} | {p + ".pub" for p in pubs}, role
    # Each workload mounts the Secret of its own role and no other key Secret.
    for fname, d, spec in pod_specs():
        for c in spec["containers"]:
            svc = c["command"][0].removeprefix("postmesh-")
            vols = {v["name"]: v for v in spec["volumes"]}
            keys = [vols[m["name"]]["secret"]["secretName"] for m in c["volumeMounts"]
                    if "secret" in vols.get(m["name"], {}) and
                    vols[m["name"]]["secret"]["secretName"].startswith("postmesh-keys-")]
            assert keys == (["postmesh-keys-" + svc] if row(svc)["bus_key"] else []), (svc, keys)


def test_keys_sh_makes_each_role_its_own_secret(tmp_path):
    out = tmp_path / "overlay"
    r = subprocess.run(["sh", str(K8S / "keys.sh"), str(out)], env=dict(os.environ, POSTMESH=str(BIN / "postmesh")),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    docs = {d["metadata"]["name"]: d for d in load_all(out / "secrets.yaml")}
    for role, pubs in NEEDS.items():
        data = docs["postmesh-keys-" + role]["data"]
        assert set(data) == {role + ".key", role + ".pub"} | {p + ".pub" for p in pubs}, role
        key = base64.b64decode(data[role + ".key"]).decode().splitlines()
        assert len(key) == 2 and all(len(x) == 40 for x in key), role
        assert base64.b64decode(data[role + ".pub"]).decode().strip() == key[0], role
    # Every role's public key in the queue's Secret is that role's own.
    for p in NEEDS["queue"]:
        assert docs["postmesh-keys-queue"]["data"][p + ".pub"] == docs["postmesh-keys-" + p]["data"][p + ".pub"]
    assert docs["postmesh-tls"]["type"] == "kubernetes.io/tls"
    k = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert (out / k["resources"][0]).resolve() == K8S.resolve()
    assert oct((out / "secrets.yaml").stat().st_mode & 0o777) == "0o600"


# ------------------------------------------------------------------ configs and image
@pytest.mark.parametrize("path", [DEPLOY / "compose" / "postmesh.conf", K8S / "postmesh.conf",
                                  DEPLOY / "local" / "postmesh.conf"], ids=lambda p: str(p.relative_to(DEPLOY)))
def test_config_files_load(path):
    r = postmesh_check_config(path)
    assert r.returncode == 0, r.stderr


def test_config_files_are_for_containers():
    for path in [DEPLOY / "compose" / "postmesh.conf", K8S / "postmesh.conf"]:
        text = path.read_text()
        assert re.search(r'^state_dir\s*=\s*"/', text, re.M), path
        assert 'listen      = "tcp://*:7701"' in text and 'listen      = "tcp://*:7703"' in text, path
        compose = path.parent.name == "compose"
        for svc in roles():
            section = re.search(r"^%s = \{(.*?)^\};" % svc, text, re.M | re.S).group(1)
            # every service answers its health check; in compose only the queue's is
            # scraped from outside its container, the others listen on loopback only
            where = "0\\.0\\.0\\.0" if not compose or svc == "queue" else "127\\.0\\.0\\.1"
            assert re.search(r'^\s*metrics\s*=\s*"%s:\d+"' % where, section, re.M), (path, svc)
        bus_and_listeners = re.sub(r"^\s*metrics\s*=.*$", "", re.sub(r"#.*", "", text), flags=re.M)
        assert "127.0.0.1" not in bus_and_listeners, path


def test_containerfile_and_ignore():
    cf = (DEPLOY / "container" / "Containerfile").read_text()
    assert re.search(r"^FROM .* AS build$", cf, re.M) and len(re.findall(r"^FROM ", cf, re.M)) == 2
    runtime = cf.split("# ---------------------------------------------------------------- runtime")[1]
    assert "HEALTHCHECK" in runtime and "postmesh ping" in runtime
    assert "POSTMESH_CONFIG" in runtime
    assert "POSTMESH_NO_TEST_HOOKS" in cf and "strip" in cf
    assert not re.search(r"\b(gcc|make|libc6-dev|-dev)\b", runtime.split("COPY --from=build")[0].split("RUN", 1)[1]
                         .split("&& rm")[0].replace("libevent-openssl", "")), "build tools in the runtime stage"
    assert "install-deps.sh --users" in runtime
    ignore = (REPO / ".containerignore").read_text().split()
    for pat in [".git", "var", "build*/"]:
        assert pat in ignore, pat
    assert (DEPLOY / "container" / "Containerfile.dockerignore").read_text() == (REPO / ".containerignore").read_text()


def test_pinned_ids_match_install_deps():
    """The image makes its users with install-deps.sh, which reads them from the list."""
    r = subprocess.run(["sh", str(REPO / "scripts" / "install-deps.sh"), "--accounts"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    made = {line.split()[1]: int(line.split()[2]) for line in r.stdout.splitlines()}
    assert made == {**groups(), **users()}
    cf = (DEPLOY / "container" / "Containerfile").read_text()
    # the list goes into the image where the script looks for it: ../common/ beside itself
    script = re.search(r"^COPY scripts/install-deps.sh (\S+)/scripts/install-deps.sh$", cf, re.M)
    assert script and re.search(r"^COPY common/services.def %s/common/services.def$" % re.escape(script.group(1)),
                                cf, re.M), cf
    assert "sh %s/scripts/install-deps.sh --users" % script.group(1) in cf
