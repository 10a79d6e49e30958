"""RFC 2136: routes made through the API are pushed, TSIG-signed, to an
external primary DNS server (a real Knot DNS started here on loopback), for
zones whose DNS lives elsewhere; deleting the tunnel removes them again."""
import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import WARREN_EDGE, free_port, run, wait_for

KNOTD = "/usr/sbin/knotd"
ZONE = "example.org"
KEY = "warren-update"
SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="

pytestmark = pytest.mark.skipif(not os.path.exists(KNOTD) or not shutil.which("dig"),
                                reason="needs knot and dig (scripts/install-deps.sh installs them)")


def dig(port, name, qtype):
    r = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+short", "+time=1", "+tries=2",
                        name, qtype], capture_output=True, text=True, timeout=10)
    return r.stdout.split()


def tcp_listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def knot(tmp_path):
    d = tmp_path / "knot"
    d.mkdir()
    port = free_port(socket.SOCK_DGRAM)  # knotd: UDP queries, TCP updates
    (d / f"{ZONE}.zone").write_text(
        f"$ORIGIN {ZONE}.\n$TTL 300\n@ SOA ns1.{ZONE}. hostmaster.{ZONE}. 1 3600 600 604800 60\n"
        f"@ NS ns1.{ZONE}.\nns1 A 127.0.0.1\n")
    (d / "knot.conf").write_text(
        f"server:\n  listen: 127.0.0.1@{port}\n  rundir: {d}\n"
        f"database:\n  storage: {d}\n"
        f"log:\n  - target: {d}/knot.log\n    any: info\n"
        f"key:\n  - id: {KEY}\n    algorithm: hmac-sha256\n    secret: {SECRET}\n"
        f"acl:\n  - id: up\n    key: {KEY}\n    action: update\n"
        f"template:\n  - id: default\n    storage: {d}\n    zonefile-sync: -1\n"
        f"zone:\n  - domain: {ZONE}\n    file: {ZONE}.zone\n    acl: up\n")
    p = subprocess.Popen([KNOTD, "-c", str(d / "knot.conf")], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: dig(port, ZONE, "SOA") != [] and tcp_listening(port), timeout=10), \
            "knotd did not come up"
        yield port
    finally:
        p.terminate()
        p.wait(10)


def api(url, token, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def test_routes_are_pushed_to_an_external_primary(tmp_path, knot, procs):
    d = tmp_path / "edge"
    assert run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", ZONE]).returncode == 0
    creds = tmp_path / "t.json"
    assert run([WARREN_EDGE, "tunnel", "create", "--data-dir", str(d), "--out", str(creds),
                "app"]).returncode == 0
    tid = json.load(open(creds))["TunnelID"]
    zone_id = account = token = None
    for block in open(d / "cert.pem").read().split("-----BEGIN ARGO TUNNEL TOKEN-----")[1:]:
        j = json.loads(base64.b64decode(block.split("-----END")[0]))
        zone_id, account, token = j["zoneID"], j["accountID"], j["apiToken"]
    port = free_port()
    edge = procs([WARREN_EDGE, "run", "--data-dir", str(d),
                  "--tunnel-listen", f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
                  "--http-listen", f"127.0.0.1:{free_port()}", "--api-listen", f"127.0.0.1:{port}",
                  "--dns-update-server", f"127.0.0.1:{knot}", "--dns-update-zone", ZONE],
                 env=dict(os.environ, WARREN_EDGE_DNS_UPDATE_KEY=f"hmac-sha256:{KEY}:{SECRET}"))
    url = f"http://127.0.0.1:{port}/client/v4"
    assert wait_for(lambda: "Serving the API" in edge.output(), timeout=15), edge.output()

    r = api(url, token, "PUT", f"/zones/{zone_id}/tunnels/{tid}/routes",
            {"type": "dns", "user_hostname": f"app.{ZONE}"})
    assert r["success"] and r["result"]["cname"] == "new"
    target = f"{tid}.cfargotunnel.{ZONE}."
    assert wait_for(lambda: dig(knot, f"app.{ZONE}", "CNAME") == [target], timeout=10), \
        (dig(knot, f"app.{ZONE}", "CNAME"), edge.output())
    assert "127.0.0.1" in dig(knot, target, "A")
    # The secret never reaches the logs.
    assert SECRET not in edge.output()

    r = api(url, token, "DELETE", f"/accounts/{account}/cfd_tunnel/{tid}?cascade=true")
    assert r["success"]
    assert wait_for(lambda: dig(knot, f"app.{ZONE}", "CNAME") == [], timeout=10), edge.output()
    assert wait_for(lambda: dig(knot, target, "A") == [], timeout=10), edge.output()


def test_bad_key_is_refused_at_start(tmp_path):
    d = tmp_path / "edge"
    assert run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", ZONE]).returncode == 0
    r = run([WARREN_EDGE, "run", "--data-dir", str(d), "--tunnel-listen", "127.0.0.1:0",
             "--http-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0",
             "--dns-update-server", "127.0.0.1:53", "--dns-update-zone", ZONE,
             "--dns-update-key", "just-a-name"], timeout=20)
    assert r.returncode == 1 and "--dns-update-key" in r.stderr
