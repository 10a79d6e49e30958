"""`warren service install [TOKEN]` / `warren service uninstall` into a
temporary root (WARREN_SERVICE_ROOT, for tests only) with a fake systemctl
(WARREN_SYSTEMCTL) that logs its arguments: the unit, the token and config
files it writes, what it asks systemd to do, and what it says when systemd
does not run."""
import base64
import json
import os
import stat
import subprocess
import uuid

import pytest

from conftest import WARREN

SECRET = base64.b64encode(bytes(range(32))).decode()


def creds():
    return {"AccountTag": "acct1", "TunnelSecret": SECRET, "TunnelID": str(uuid.uuid4())}


def token(c):
    return base64.b64encode(json.dumps({"a": c["AccountTag"], "t": c["TunnelID"],
                                        "s": c["TunnelSecret"]}).encode()).decode()


@pytest.fixture
def sysroot(tmp_path):
    root = tmp_path / "root"
    (root / "run" / "systemd" / "system").mkdir(parents=True)
    log = tmp_path / "systemctl.log"
    fake = tmp_path / "systemctl"
    fake.write_text(f"#!/bin/sh\necho \"$*\" >> {log}\n")
    fake.chmod(0o755)
    env = dict(os.environ, WARREN_SERVICE_ROOT=str(root), WARREN_SYSTEMCTL=str(fake),
               HOME=str(tmp_path / "home"))
    return root, log, env


def run(args, env, cwd=None):
    return subprocess.run([WARREN, *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=30)


def calls(log):
    return log.read_text().splitlines() if log.exists() else []


def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_install_with_token(sysroot):
    root, log, env = sysroot
    c = creds()
    r = run(["service", "install", token(c)], env)
    assert r.returncode == 0, r.stderr
    unit = (root / "etc/systemd/system/warren.service").read_text()
    exe = os.path.realpath(WARREN)
    assert f"ExecStart={exe} --no-autoupdate tunnel run --token-file /etc/warren/token" in unit
    assert "WantedBy=multi-user.target" in unit
    assert token(c) not in unit  # unit files are world-readable; the token is not there
    tok = root / "etc/warren/token"
    assert tok.read_text().strip() == token(c)
    assert mode(tok) == 0o600
    assert calls(log) == ["enable warren.service", "daemon-reload", "start warren.service"]

    r = run(["service", "uninstall"], env)
    assert r.returncode == 0, r.stderr
    assert not (root / "etc/systemd/system/warren.service").exists()
    assert not tok.exists()
    assert calls(log)[3:] == ["disable warren.service", "stop warren.service", "daemon-reload"]


def test_install_rejects_a_bad_token(sysroot):
    root, log, env = sysroot
    r = run(["service", "install", "not-a-token"], env)
    assert r.returncode != 0
    assert "token is not valid" in r.stderr
    assert not (root / "etc").exists() and calls(log) == []


def test_install_from_config_copies_config_and_credentials(sysroot, tmp_path):
    root, log, env = sysroot
    c = creds()
    home = tmp_path / "home" / ".cloudflared"
    home.mkdir(parents=True)
    cred = home / f"{c['TunnelID']}.json"
    cred.write_text(json.dumps(c))
    cfg = home / "config.yml"
    cfg.write_text(f"tunnel: {c['TunnelID']}\ncredentials-file: {cred}\n"
                   "ingress:\n  - service: http_status:404\n")
    r = run(["--config", str(cfg), "service", "install"], env)
    assert r.returncode == 0, r.stderr
    unit = (root / "etc/systemd/system/warren.service").read_text()
    assert "--no-autoupdate --config /etc/warren/config.yml tunnel run\n" in unit
    copied = (root / "etc/warren/config.yml").read_text()
    assert f"credentials-file: /etc/warren/{c['TunnelID']}.json" in copied
    assert str(cred) not in copied and "http_status:404" in copied
    assert json.loads((root / f"etc/warren/{c['TunnelID']}.json").read_text()) == c
    assert mode(root / "etc/warren/config.yml") == 0o600
    assert mode(root / f"etc/warren/{c['TunnelID']}.json") == 0o600
    assert calls(log) == ["enable warren.service", "daemon-reload", "start warren.service"]

    # A second install from elsewhere would silently replace the first.
    r = run(["--config", str(cfg), "service", "install"], env)
    assert r.returncode != 0 and "Possible conflicting configuration" in r.stderr

    r = run(["service", "uninstall"], env)
    assert r.returncode == 0, r.stderr
    assert (root / "etc/warren/config.yml").exists()  # as cloudflared: config stays


def test_install_needs_tunnel_and_credentials(sysroot, tmp_path):
    root, log, env = sysroot
    cfg = tmp_path / "config.yml"
    cfg.write_text("url: http://127.0.0.1:1\n")
    r = run(["--config", str(cfg), "service", "install"], env)
    assert r.returncode != 0
    assert "must contain entries for the tunnel to run" in r.stderr
    assert not (root / "etc/systemd").exists() and calls(log) == []


def test_without_systemd_says_what_to_run(sysroot):
    root, log, env = sysroot
    (root / "run/systemd/system").rmdir()
    r = run(["service", "install", token(creds())], env)
    assert r.returncode == 0, r.stderr
    assert "systemd is not running" in r.stdout
    assert "--no-autoupdate tunnel run --token-file /etc/warren/token" in r.stdout
    assert (root / "etc/systemd/system/warren.service").exists()
    assert calls(log) == []
    r = run(["service", "uninstall"], env)
    assert r.returncode == 0 and calls(log) == []
    assert not (root / "etc/systemd/system/warren.service").exists()
