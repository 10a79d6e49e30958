"""warren-edge device add | config | list | revoke | allow, and the API's devices.

The printed configuration is loaded into a real WireGuard interface: a
wireguard-go device in a network namespace of the test's own (only `lo`),
configured with `wg setconf` from exactly what `device add` printed minus the
wg-quick-only keys (Address, DNS), then read back with `wg show`."""
import base64
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request

import pytest

from conftest import WARREN_EDGE, free_port, run, wait_for

ENDPOINT = "127.0.0.1:51820"


def edge(d, *args, input=None):
    return run([WARREN_EDGE, "--data-dir", str(d), *args], input=input)


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "edge"
    r = run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", "example.test"])
    assert r.returncode == 0, r.stderr
    return d


def conf_keys(text):
    """The key = value lines of a wg-quick file, by section."""
    out, sec = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            sec = line
            continue
        k, _, v = line.partition("=")
        out[(sec, k.strip())] = v.strip()
    return out


def wg_pubkey(priv):
    r = subprocess.run(["wg", "pubkey"], input=priv + "\n", capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_add_needs_an_endpoint_and_creates_nothing_without_one(data_dir):
    r = edge(data_dir, "device", "add", "laptop")
    assert r.returncode == 1
    assert "--endpoint HOST:PORT" in r.stderr and "wireguard-endpoint" in r.stderr
    r = edge(data_dir, "device", "list", "-o", "json")
    assert r.returncode == 0 and json.loads(r.stdout) == []
    r = edge(data_dir, "device", "add", "laptop", "--endpoint", "no-port")
    assert r.returncode == 1 and "HOST:PORT" in r.stderr


def test_add_prints_a_config_wireguard_accepts(data_dir, tmp_path):
    r = edge(data_dir, "device", "add", "laptop", "--endpoint", ENDPOINT)
    assert r.returncode == 0, r.stderr
    conf = r.stdout
    keys = conf_keys(conf)
    priv = keys[("[Interface]", "PrivateKey")]
    assert len(base64.b64decode(priv)) == 32
    assert keys[("[Peer]", "Endpoint")] == ENDPOINT
    assert keys[("[Peer]", "PersistentKeepalive")] == "25"
    assert keys[("[Interface]", "MTU")] == "1280"
    assert "DNS" not in {k for _, k in keys}
    v4, v6 = [a.strip() for a in keys[("[Interface]", "Address")].split(",")]
    assert v4 == "100.96.0.2/32" and re.match(r"^fd[0-9a-f:]+::2/128$", v6)
    # The stored public key is the one of the printed private key, and the
    # edge's public key is the one of DATA_DIR/wireguard.key.
    devs = json.loads(edge(data_dir, "device", "list", "-o", "json").stdout)
    assert len(devs) == 1 and devs[0]["name"] == "laptop"
    assert devs[0]["public_key"] == wg_pubkey(priv)
    key_file = data_dir / "wireguard.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert keys[("[Peer]", "PublicKey")] == wg_pubkey(key_file.read_text().strip())
    # The same key next time.
    r2 = edge(data_dir, "device", "add", "phone", "--endpoint", ENDPOINT)
    assert conf_keys(r2.stdout)[("[Peer]", "PublicKey")] == keys[("[Peer]", "PublicKey")]
    assert conf_keys(r2.stdout)[("[Interface]", "Address")].startswith("100.96.0.3/32, ")
    load_into_wireguard(conf, tmp_path, priv, keys)


def load_into_wireguard(conf, tmp_path, priv, keys):
    """wg setconf on a wireguard-go interface, then wg show must agree."""
    if not shutil.which("wireguard-go") or not os.path.exists("/dev/net/tun") or os.geteuid() != 0:
        pytest.skip("needs root, /dev/net/tun and wireguard-go")
    ns = f"wrdev{os.getpid()}"
    ifname = f"wrd{os.getpid() % 1000000}"
    stripped = tmp_path / "wg.conf"
    stripped.write_text("".join(l + "\n" for l in conf.splitlines()
                                if l.split("=")[0].strip() not in ("Address", "DNS", "MTU")))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    proc = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        env = dict(os.environ, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD="1")
        # wireguard-go's control socket is /var/run/wireguard/NAME.sock in
        # every namespace: the name must be unique on the machine.
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "wireguard-go", "-f", ifname], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sock = f"/var/run/wireguard/{ifname}.sock"
        assert wait_for(lambda: os.path.exists(sock), 10), "wireguard-go did not start"
        wg = ["ip", "netns", "exec", ns, "wg"]
        r = subprocess.run(wg + ["setconf", ifname, str(stripped)], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        dump = subprocess.run(wg + ["show", ifname, "dump"], capture_output=True, text=True, timeout=10)
        assert dump.returncode == 0, dump.stderr
        iface, peer = [l.split("\t") for l in dump.stdout.strip().splitlines()]
        assert iface[0] == priv
        assert peer[0] == keys[("[Peer]", "PublicKey")]
        assert peer[2] == ENDPOINT
        assert peer[-1] == "25"
    finally:
        if proc:
            proc.terminate()
            proc.wait(10)
        subprocess.run(["ip", "netns", "del", ns])


def test_brought_key_qr_revoke_policy_and_audit(data_dir):
    priv = subprocess.run(["wg", "genkey"], capture_output=True, text=True).stdout.strip()
    pub = wg_pubkey(priv)
    (data_dir / "wireguard-endpoint").write_text("vpn.example.test:51820\n")
    r = edge(data_dir, "device", "add", "phone", "--public-key", pub, "--allow", "10.0.0.0/8, 10.1.0.0/16")
    assert r.returncode == 0, r.stderr
    keys = conf_keys(r.stdout)
    assert ("[Interface]", "PrivateKey") not in keys
    assert f"the private key of {pub}" in r.stdout
    assert keys[("[Peer]", "Endpoint")] == "vpn.example.test:51820"
    # The same key again is refused: each device has its own.
    r = edge(data_dir, "device", "add", "tablet", "--public-key", pub)
    assert r.returncode == 1 and "already belongs" in r.stderr
    # --qr: a block of UTF-8 half blocks, no key text.
    r = edge(data_dir, "device", "config", "phone", "--qr")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) > 10 and all(len(l) == len(lines[0]) for l in lines)
    assert set("".join(lines)) <= set(" \u2580\u2584\u2588") and "\u2588" in r.stdout
    # Policy.
    r = edge(data_dir, "device", "allow", "phone", "192.168.0.0/16")
    assert r.returncode == 0 and "192.168.0.0/16" in r.stdout
    r = edge(data_dir, "device", "allow", "phone", "nonsense")
    assert r.returncode == 1 and "CIDR" in r.stderr
    devs = json.loads(edge(data_dir, "device", "list", "-o", "json").stdout)
    assert devs[0]["allowed"] == ["192.168.0.0/16"]
    # Revoke: listed as revoked, audited, gone from --active.
    r = edge(data_dir, "device", "revoke", "phone")
    assert r.returncode == 0, r.stderr
    assert edge(data_dir, "device", "revoke", "phone").returncode == 1
    devs = json.loads(edge(data_dir, "device", "list", "-o", "json").stdout)
    assert devs[0]["revoked_at"] is not None
    assert json.loads(edge(data_dir, "device", "list", "--active", "-o", "json").stdout) == []
    table = edge(data_dir, "device", "list").stdout
    assert "phone" in table and "REVOKED" in table
    audit = json.loads(edge(data_dir, "audit", "-o", "json").stdout)
    actions = [(a["action"], a["target_id"]) for a in audit]
    for act in ("device.create", "device.policy", "device.revoke"):
        assert (act, devs[0]["id"]) in actions
    # The freed key may be used again.
    assert edge(data_dir, "device", "add", "phone", "--public-key", pub).returncode == 0


def test_devices_through_the_api(data_dir, procs):
    api_port = free_port()
    p = procs.start([WARREN_EDGE, "run", "--data-dir", str(data_dir), "--tunnel-listen", f"127.0.0.1:{free_port()}",
                     "--http-listen", f"127.0.0.1:{free_port()}", "--api-listen", f"127.0.0.1:{api_port}"],
                    name="warren-edge")
    cert = (data_dir / "cert.pem").read_text()
    block = re.search(r"-----BEGIN ARGO TUNNEL TOKEN-----\n(.*?)-----END", cert, re.S).group(1)
    tok = json.loads(base64.b64decode("".join(block.split())))
    base = f"http://127.0.0.1:{api_port}/client/v4/accounts/{tok['accountID']}/devices"

    def call(method, url, body=None):
        req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {tok['apiToken']}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def up():
        try:
            return call("GET", base)[0] == 200
        except OSError:
            return False
    assert wait_for(up, 30), p.tail()
    st, j = call("POST", base, {"name": "laptop", "endpoint": ENDPOINT})
    assert st == 200 and j["success"], j
    dev = j["result"]
    assert dev["ipv4"] == "100.96.0.2"
    assert wg_pubkey(dev["private_key"]) == dev["public_key"]
    keys = conf_keys(dev["config"])
    assert keys[("[Interface]", "PrivateKey")] == dev["private_key"]
    assert keys[("[Peer]", "PublicKey")] == wg_pubkey((data_dir / "wireguard.key").read_text().strip())
    # The CLI sees it; the API revokes it; both audit.
    assert "laptop" in edge(data_dir, "device", "list").stdout
    st, j = call("DELETE", f"{base}/{dev['id']}")
    assert st == 200 and j["result"]["revoked_at"]
    st, j = call("GET", f"{base}?active=true")
    assert st == 200 and j["result"] == []
    audit = json.loads(edge(data_dir, "audit", "-o", "json").stdout)
    mine = [a["action"] for a in audit if a["target_id"] == dev["id"]]
    assert mine == ["device.create", "device.revoke"]
    assert all(a["actor"].startswith("api:") for a in audit if a["target_id"] == dev["id"])
