"""`warren tunnel diag`: the archive holds version, options, config,
credentials, log tail, the connector's /metrics and /ready (from a stand-in
metrics server here) and system facts; no secret (tunnel secret, token,
inline credentials, service token secret) appears anywhere in it, even where
the log or the config repeats one."""
import base64
import json
import os
import subprocess
import tarfile
import uuid

import pytest

from common import QuietHandler, serve_http
from conftest import WARREN, free_port

SECRET = base64.b64encode(os.urandom(32)).decode()
OTHER_SECRET = base64.b64encode(os.urandom(32)).decode()


class Metrics(QuietHandler):
    def do_GET(self):
        body = {"/metrics": b"# TYPE cloudflared_tunnel_ha_connections gauge\n"
                            b"cloudflared_tunnel_ha_connections 4\n",
                "/ready": b'{"status":200,"readyConnections":4,"connectorId":"x"}'}.get(self.path)
        self.reply(body or b"", status=200 if body else 404)


@pytest.fixture
def metrics():
    port = free_port()
    with serve_http(Metrics, port):
        yield f"127.0.0.1:{port}"


def members(path):
    with tarfile.open(path, "r:gz") as tf:
        return {m.name: tf.extractfile(m).read().decode() for m in tf.getmembers() if m.isfile()}


def test_diag_archive(tmp_path, metrics):
    tid = str(uuid.uuid4())
    creds = tmp_path / f"{tid}.json"
    creds.write_text(json.dumps({"AccountTag": "acct1", "TunnelSecret": SECRET, "TunnelID": tid}))
    token = base64.b64encode(json.dumps({"a": "acct1", "t": tid, "s": SECRET}).encode()).decode()
    log = tmp_path / "warren.log"
    log.write_text("INF Starting tunnel\n" + f"DBG oops, printed the token {token}\n" * 3
                   + f"DBG and the secret {SECRET}\nINF Registered tunnel connection\n")
    cfg = tmp_path / "config.yml"
    cfg.write_text(f"tunnel: {tid}\ncredentials-file: {creds}\nlogfile: {log}\n"
                   f"metrics: {metrics}\n"
                   f"service-token-secret: {OTHER_SECRET}\n"
                   "ingress:\n  - hostname: a.example.test\n    service: http://127.0.0.1:1\n"
                   "  - service: http_status:404\n")
    out = tmp_path / "diag.tar.gz"
    r = subprocess.run([WARREN, "tunnel", "--config", str(cfg), "--token", token, "diag",
                        "--diag-file", str(out)], cwd=tmp_path, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout
    files = members(out)
    names = {n.split("/", 1)[1] for n in files}
    assert {"version.txt", "options.txt", "config.yml", "credentials.json", "log.txt",
            "metrics.txt", "ready.json", "system.txt", "errors.txt"} <= names, names
    get = {n.split("/", 1)[1]: v for n, v in files.items()}
    assert get["version.txt"].startswith("warren version ")
    assert "cloudflared_tunnel_ha_connections 4" in get["metrics.txt"]
    assert json.loads(get["ready.json"])["readyConnections"] == 4
    assert "kernel: Linux" in get["system.txt"] and "cpus: " in get["system.txt"]
    assert "memory: " in get["system.txt"] and "/etc/os-release" in get["system.txt"]
    assert "Registered tunnel connection" in get["log.txt"]
    assert f"tunnel: {tid}" in get["config.yml"] and "http_status:404" in get["config.yml"]
    assert "service-token-secret: REDACTED" in get["config.yml"]
    c = json.loads(get["credentials.json"])
    assert c["TunnelID"] == tid and c["TunnelSecret"] == "REDACTED"
    assert "token=REDACTED (command line)" in get["options.txt"]
    assert f"logfile={log} (config file)" in get["options.txt"]
    for name, text in files.items():
        for secret in (SECRET, OTHER_SECRET, token, SECRET.rstrip("=")):
            assert secret not in text, (name, secret)
    # The staging directory is gone.
    assert not [p for p in os.listdir("/tmp") if p.startswith("warren-diag-") and
                os.path.isdir(os.path.join("/tmp", p)) and
                os.stat(os.path.join("/tmp", p)).st_mtime >= os.stat(out).st_mtime - 5]


def test_diag_without_config_or_metrics(tmp_path):
    out = tmp_path / "d.tar.gz"
    env = dict(os.environ, HOME=str(tmp_path))
    r = subprocess.run([WARREN, "tunnel", "diag", "--diag-file", str(out)], cwd=tmp_path, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    get = {n.split("/", 1)[1]: v for n, v in members(out).items()}
    assert "version.txt" in get and "system.txt" in get and "config.yml" not in get
    errors = get["errors.txt"]
    assert "no config file" in errors and "--metrics is not set" in errors
    assert "no --logfile" in errors
