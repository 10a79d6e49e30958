"""deploy/k8s/*.yaml and deploy/Dockerfile: no cluster runs here (and no
kubeconform), so the manifests are parsed with PyYAML and checked for the
fields Kubernetes requires and for what they promise: the connector's
probes on /ready of the --metrics port, its token from a Secret defined
alongside, the edge's data directory on the StatefulSet's claim; every flag
the containers pass is one the program knows."""
import os
import re
import subprocess

import yaml

from conftest import ROOT, WARREN, WARREN_EDGE

K8S = os.path.join(ROOT, "deploy", "k8s")


def docs():
    out = []
    for name in sorted(os.listdir(K8S)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(K8S, name)) as f:
                out += [d for d in yaml.safe_load_all(f) if d]
    return out


def by_kind(kind):
    return {d["metadata"]["name"]: d for d in docs() if d["kind"] == kind}


def test_required_fields():
    for d in docs():
        assert d.get("apiVersion") and d.get("kind"), d
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"])
        if d["kind"] in ("Deployment", "StatefulSet"):
            spec = d["spec"]
            labels = spec["template"]["metadata"]["labels"]
            assert spec["selector"]["matchLabels"].items() <= labels.items()
            for c in spec["template"]["spec"]["containers"]:
                assert c["name"] and c["image"]
                mounts = {m["name"] for m in c.get("volumeMounts", [])}
                vols = {v["name"] for v in spec["template"]["spec"].get("volumes", [])}
                vols |= {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
                assert mounts <= vols, (mounts, vols)


def probe_port(c, probe):
    return c[probe]["httpGet"]["port"]


def test_connector_deployment():
    dep = by_kind("Deployment")["warren"]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    args = c["args"]
    metrics = args[args.index("--metrics") + 1]
    port = int(metrics.rsplit(":", 1)[1])
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/ready"
        assert probe_port(c, probe) == port
    env = {e["name"]: e for e in c["env"]}
    ref = env["TUNNEL_TOKEN"]["valueFrom"]["secretKeyRef"]
    secret = by_kind("Secret")[ref["name"]]
    assert ref["key"] in secret["stringData"]
    assert args[-1] == "run" and "tunnel" in args
    help_text = subprocess.run([WARREN, "tunnel", "run", "--help"], stdout=subprocess.PIPE,
                               text=True, check=True).stdout
    for a in args:
        if a.startswith("--"):
            assert a + " " in help_text or a + "\n" in help_text, a
    for name in env:
        assert f"[${name}]" in help_text or f"${name}," in help_text or f", ${name}]" in help_text, name


def test_edge_statefulset():
    sts = by_kind("StatefulSet")["warren-edge"]
    assert sts["spec"]["serviceName"] in by_kind("Service")
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"]
    c = sts["spec"]["template"]["spec"]["containers"][0]
    args = c["args"]
    data_dir = args[args.index("--data-dir") + 1]
    mount = next(m for m in c["volumeMounts"] if m["name"] == claim["metadata"]["name"])
    assert data_dir.startswith(mount["mountPath"].rstrip("/") + "/")
    metrics_port = int(args[args.index("--metrics") + 1].rsplit(":", 1)[1])
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert probe_port(c, "readinessProbe") == metrics_port == probe_port(c, "livenessProbe")
    init = sts["spec"]["template"]["spec"]["initContainers"][0]
    assert f"--data-dir {data_dir}" in " ".join(init["args"])
    help_text = subprocess.run([WARREN_EDGE, "run", "--help"], stdout=subprocess.PIPE,
                               text=True, check=True).stdout
    for a in args[1:]:
        if a.startswith("--"):
            assert a + " " in help_text, a
    # The store in PostgreSQL when the optional Secret exists, for both
    # containers (init must not re-run: it checks ca.pem, which init writes
    # whatever the store).
    for cont in (c, init):
        env = {e["name"]: e for e in cont["env"]}
        ref = env["WARREN_STORE"]["valueFrom"]["secretKeyRef"]
        assert ref["optional"] is True and ref["key"] == "dsn"
    assert "[$WARREN_STORE]" in help_text
    assert "data/ca.pem" in " ".join(init["args"])


def test_dockerfile_installs_the_debs():
    text = open(os.path.join(ROOT, "deploy", "Dockerfile")).read()
    assert re.search(r"^FROM debian:12-slim$", text, re.M)
    assert "build/deb/warren_${VERSION}_${ARCH}.deb" in text
    assert "build/deb/warren-edge_${VERSION}_${ARCH}.deb" in text
    assert re.search(r"^USER 65532", text, re.M)
    version = open(os.path.join(ROOT, "VERSION")).read().strip()
    for d in docs():
        if d["kind"] in ("Deployment", "StatefulSet"):
            pod = d["spec"]["template"]["spec"]
            for c in pod["containers"] + pod.get("initContainers", []):
                assert c["image"] == f"warren:{version}"
            assert pod["securityContext"]["runAsUser"] == 65532
