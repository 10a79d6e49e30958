"""The edge's REST API on --api-listen, end to end.

`warren-edge init` writes D/cert.pem for the admin; its ARGO TUNNEL TOKEN
block (zoneID, accountID, apiToken) is what these tests authenticate with,
exactly as cloudflared and warren do. Requests are the ones cloudflared
2023.7.3 sends (../shared/cloudflare-api.md §2.9): the envelope
{success, errors, messages, result[, result_info]}, HTTP 200 and exactly
"application/json" on success, 403 in the same envelope for bad tokens.

The real-cloudflared cases run only when CLOUDFLARED=/path/to/cloudflared is
given, as root, inside a loopback-only network namespace (cloudflared looks
up update and SRV records at start)."""
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid

import pytest

from common import read_cert
from conftest import WARREN, WARREN_EDGE, free_port, run, wait_for

ZONE = "example.test"
ADMIN = f"admin@{ZONE}"
SECRET_B64 = base64.b64encode(bytes(range(32))).decode()


class Api:
    """A client of the edge's /client/v4 with the admin's token."""

    def __init__(self, port, zone, account, token):
        self.port, self.zone, self.account, self.token = port, zone, account, token

    def call(self, method, path, body=None, token=None, raw_auth=None):
        """(status, content type, decoded JSON or text) of one request;
        |path| is relative to /client/v4."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        headers = {"Accept": "application/json;version=1", "User-Agent": "cloudflared/2023.7.3"}
        tok = self.token if token is None else token
        if raw_auth is not None:
            headers["Authorization"] = raw_auth
        elif tok:
            headers["Authorization"] = f"Bearer {tok}"
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, "/client/v4" + path, body=data, headers=headers)
            r = conn.getresponse()
            text = r.read().decode()
            ctype = r.getheader("Content-Type", "")
        finally:
            conn.close()
        if ctype == "application/json":
            j = json.loads(text)
            # The envelope cloudflared decodes, every time.
            assert isinstance(j["success"], bool), j
            assert isinstance(j["errors"], list) and isinstance(j["messages"], list), j
            assert j["messages"] == [], j
            assert "result" in j, j
            assert j["success"] == (r.status == 200), (r.status, j)
            assert (j["errors"] == []) == (r.status == 200), (r.status, j)
            return r.status, ctype, j
        return r.status, ctype, text

    def ok(self, method, path, body=None):
        status, ctype, j = self.call(method, path, body)
        assert status == 200, (method, path, status, j)
        assert ctype == "application/json"
        return j["result"]

    def err(self, method, path, body=None, status=400, **kw):
        st, ctype, j = self.call(method, path, body, **kw)
        assert st == status, (method, path, st, j)
        assert ctype == "application/json", ctype
        return j["errors"][0]["message"]

    def acct(self, rest=""):
        return f"/accounts/{self.account}{rest}"


def start_edge(procs, d, env=None):
    """Starts `warren-edge run` with the API on a free port; returns
    (proc, API port, QUIC port)."""
    api = free_port()
    udp = free_port(socket.SOCK_DGRAM)
    p = procs.start([WARREN_EDGE, "run", "--data-dir", str(d),
                     "--tunnel-listen", f"127.0.0.1:{udp}",
                     "--http-listen", f"127.0.0.1:{free_port()}",
                     "--api-listen", f"127.0.0.1:{api}"], name="warren-edge", env=env)

    def up():
        try:
            with socket.create_connection(("127.0.0.1", api), timeout=0.2):
                return True
        except OSError:
            assert p.alive(), f"warren-edge exited: {p.tail()}"
            return False
    assert wait_for(up, timeout=30), "the API did not start listening"
    return p, api, udp


@pytest.fixture
def edge(tmp_path, procs):
    d = tmp_path / "edge"
    r = run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", ZONE])
    assert r.returncode == 0, r.stderr
    p, port, udp = start_edge(procs, d)
    zone, account, token = read_cert(d / "cert.pem")
    api = Api(port, zone, account, token)
    api.dir, api.proc, api.udp = d, p, udp
    return api


# --- authentication -------------------------------------------------------------


def test_auth_errors_are_403_in_the_envelope(edge):
    status, ctype, j = edge.call("GET", edge.acct("/cfd_tunnel"), token="")
    assert status == 403 and ctype == "application/json"
    assert j["errors"][0]["code"] == 10000
    msg = edge.err("GET", edge.acct("/cfd_tunnel"), token="not-a-token", status=403)
    assert "cloudflared tunnel login" in msg and "warren tunnel login" in msg
    edge.err("GET", edge.acct("/cfd_tunnel"), raw_auth="Basic YTpi", status=403)
    msg = edge.err("GET", "/accounts/" + "0" * 32 + "/cfd_tunnel", status=403)
    assert "not valid for account" in msg
    msg = edge.err("GET", f"/zones/{'0' * 32}/dns_records", status=403)
    assert "not valid for zone" in msg
    assert edge.ok("GET", "/user/tokens/verify")["status"] == "active"
    # Unknown endpoints and methods still answer in the envelope.
    edge.err("GET", edge.acct("/nothing"), status=404)
    edge.err("PUT", edge.acct("/cfd_tunnel"), body={}, status=405)


def test_rolled_token_asks_to_log_in_again(edge, tmp_path):
    new_pem = tmp_path / "new-cert.pem"
    r = run([WARREN_EDGE, "user", "roll-token", "--data-dir", str(edge.dir), "--out", str(new_pem), ADMIN])
    assert r.returncode == 0, r.stderr
    msg = edge.err("GET", edge.acct("/cfd_tunnel"), status=403)
    assert "revoked" in msg and "tunnel login" in msg and "cert.pem" in msg
    _, account, token = read_cert(new_pem)
    assert account == edge.account
    status, _, j = edge.call("GET", edge.acct("/cfd_tunnel"), token=token)
    assert status == 200, j


# --- the calls cloudflared makes ------------------------------------------------------


def test_tunnel_lifecycle_as_cloudflared_calls_it(edge):
    # tunnel create mytun
    t = edge.ok("POST", edge.acct("/cfd_tunnel"), {"name": "mytun", "tunnel_secret": SECRET_B64})
    tid = t["id"]
    assert uuid.UUID(tid) and t["name"] == "mytun" and t["deleted_at"] is None
    assert t["connections"] == []
    msg = edge.err("POST", edge.acct("/cfd_tunnel"), {"name": "mytun", "tunnel_secret": SECRET_B64}, status=409)
    assert "already exists" in msg
    # tunnel list / name lookup / info's uuid check
    rows = edge.ok("GET", edge.acct("/cfd_tunnel?is_deleted=false"))
    assert [x["id"] for x in rows] == [tid]
    assert edge.ok("GET", edge.acct("/cfd_tunnel?is_deleted=false&name=mytun"))[0]["id"] == tid
    assert len(edge.ok("GET", edge.acct(f"/cfd_tunnel?uuid={tid}"))) == 1
    assert edge.ok("GET", edge.acct(f"/cfd_tunnel/{tid}/connections")) == []
    # paging (cloudflared >= 2024.3)
    _, _, j = edge.call("GET", edge.acct("/cfd_tunnel?is_deleted=false&page=1"))
    assert j["result_info"]["total_count"] == 1 and j["result_info"]["count"] == 1
    # tunnel token: base64 of {"a","s","t"} with the client's secret
    tok = edge.ok("GET", edge.acct(f"/cfd_tunnel/{tid}/token"))
    dec = json.loads(base64.b64decode(tok))
    assert dec == {"a": edge.account, "s": SECRET_B64, "t": tid}
    # route dns: new, unchanged, apex refused
    path = f"/zones/{edge.zone}/tunnels/{tid}/routes"
    r = edge.ok("PUT", path, {"type": "dns", "user_hostname": f"app.{ZONE}", "overwrite_existing": False})
    assert r["cname"] == "new" and r["name"] == f"app.{ZONE}"
    assert r["content"] == f"{tid}.cfargotunnel.{ZONE}"
    r = edge.ok("PUT", path, {"type": "dns", "user_hostname": f"app.{ZONE}", "overwrite_existing": False})
    assert r["cname"] == "unchanged"
    assert "apex" in edge.err("PUT", path, {"type": "dns", "user_hostname": ZONE, "overwrite_existing": False})
    recs = edge.ok("GET", f"/zones/{edge.zone}/dns_records?name=app.{ZONE}")
    assert [(x["type"], x["content"]) for x in recs] == [("CNAME", f"{tid}.cfargotunnel.{ZONE}")]
    # route ip add (2023.7.3 form: CIDR escaped twice), show, get
    r = edge.ok("POST", edge.acct("/teamnet/routes/network/10.0.0.0%252F8"), {"tunnel_id": tid, "comment": "c"})
    assert r["network"] == "10.0.0.0/8" and r["tunnel_id"] == tid
    rows = edge.ok("GET", edge.acct("/teamnet/routes?is_deleted=false"))
    assert [(x["network"], x["tunnel_name"]) for x in rows] == [("10.0.0.0/8", "mytun")]
    assert edge.ok("GET", edge.acct("/teamnet/routes/ip/10.1.2.3"))["network"] == "10.0.0.0/8"
    assert edge.ok("GET", edge.acct("/teamnet/routes/ip/192.168.0.1")) == {}
    # tunnel delete: GET, DELETE connections, DELETE (2023.7.3's delete -f)
    assert edge.ok("GET", edge.acct(f"/cfd_tunnel/{tid}"))["deleted_at"] is None
    edge.ok("DELETE", edge.acct(f"/cfd_tunnel/{tid}/connections"))
    t = edge.ok("DELETE", edge.acct(f"/cfd_tunnel/{tid}"))
    assert t["deleted_at"]
    assert edge.ok("GET", edge.acct("/cfd_tunnel?is_deleted=false")) == []
    assert edge.ok("GET", edge.acct("/teamnet/routes?is_deleted=false")) == []
    assert edge.ok("GET", f"/zones/{edge.zone}/dns_records") == []
    assert "already deleted" in edge.err("DELETE", edge.acct(f"/cfd_tunnel/{tid}"))

    # Every change is in the audit log, with the user as actor.
    log = edge.ok("GET", edge.acct("/audit_logs?per_page=1000"))
    mine = [(x["action"], x["resource"]["id"]) for x in log if x["actor"] == f"api:{ADMIN}"]
    for want in [("tunnel.create", tid), ("route.create", f"app.{ZONE}"), ("tunnel.delete", tid),
                 ("tunnel.cleanup", tid)]:
        assert want in mine, (want, mine)
    assert any(a == "route.create" and rid != f"app.{ZONE}" for a, rid in mine)  # the IP route
    # and `warren-edge audit` reads the same rows
    r = run([WARREN_EDGE, "audit", "--data-dir", str(edge.dir)])
    assert r.returncode == 0 and "tunnel.create" in r.stdout


def test_vnets_and_ip_route_delete(edge):
    tid = edge.ok("POST", edge.acct("/cfd_tunnel"), {"name": "net", "tunnel_secret": SECRET_B64})["id"]
    vn = edge.ok("POST", edge.acct("/teamnet/virtual_networks"), {"name": "vn1", "comment": "lab", "is_default": False})
    assert edge.ok("GET", edge.acct("/teamnet/virtual_networks?is_deleted=false&name=vn1"))[0]["id"] == vn["id"]
    edge.ok("POST", edge.acct("/teamnet/routes/network/10.0.0.0%252F8"),
            {"tunnel_id": tid, "comment": "", "virtual_network_id": vn["id"]})
    edge.ok("POST", edge.acct("/teamnet/routes"), {"network": "10.0.0.0/8", "tunnel_id": tid, "comment": ""})
    assert len(edge.ok("GET", edge.acct("/teamnet/routes?is_deleted=false"))) == 2
    # 2023.7.3 deletes by CIDR (+ vnet); >= 2023.10 looks the route up, then deletes by id
    edge.ok("DELETE", edge.acct(f"/teamnet/routes/network/10.0.0.0%252F8?virtual_network_id={vn['id']}"))
    rows = edge.ok("GET", edge.acct("/teamnet/routes?is_deleted=false&network_subset=10.0.0.0%2F8"
                                    "&network_superset=10.0.0.0%2F8&tun_types=cfd_tunnel&page=1"))
    assert len(rows) == 1
    edge.ok("DELETE", edge.acct(f"/teamnet/routes/{rows[0]['id']}"))
    assert edge.ok("GET", edge.acct("/teamnet/routes?is_deleted=false")) == []
    edge.ok("DELETE", edge.acct(f"/teamnet/virtual_networks/{vn['id']}"))


def connected_tunnel(edge, procs, tmp_path, name):
    """Creates tunnel |name| through the API and runs a warren connector for
    it (hello-world origin) until the edge lists its one connection. Returns
    (the tunnel object, the connector's Proc)."""
    assert edge.proc.wait_output("Listening for connectors", 30) is not None
    t = edge.ok("POST", edge.acct("/cfd_tunnel"), {"name": name, "tunnel_secret": SECRET_B64})
    creds = tmp_path / f"{name}.json"
    creds.write_text(json.dumps({"AccountTag": edge.account, "TunnelSecret": SECRET_B64, "TunnelID": t["id"]}))
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = str(home)
    conn = procs.start([WARREN, "tunnel", "--no-autoupdate", "--edge", f"127.0.0.1:{edge.udp}",
                        "--cacert", str(edge.dir / "ca.pem"), "--protocol", "quic",
                        "--credentials-file", str(creds), "--metrics", f"127.0.0.1:{free_port()}",
                        "--hello-world", "run", t["id"]], name="warren", env=env, stop_timeout=30)
    assert wait_for(lambda: len(edge.ok("GET", edge.acct(f"/cfd_tunnel/{t['id']}/connections"))) == 1, 30), \
        conn.tail()
    return t, conn


def test_delete_closes_live_connections(edge, procs, tmp_path):
    """A connected warren connector: delete without cascade is refused;
    with cascade its connection is closed at once and re-registration is
    refused because the tunnel is deleted."""
    t, conn = connected_tunnel(edge, procs, tmp_path, "live")
    connectors = edge.ok("GET", edge.acct(f"/cfd_tunnel/{t['id']}/connections"))
    assert connectors[0]["conns"] and connectors[0]["conns"][0]["colo_name"]
    assert edge.ok("GET", edge.acct("/cfd_tunnel?name=live"))[0]["connections"]
    msg = edge.err("DELETE", edge.acct(f"/cfd_tunnel/{t['id']}"))
    assert "active connection" in msg and "-f" in msg
    t0 = time.monotonic()
    edge.ok("DELETE", edge.acct(f"/cfd_tunnel/{t['id']}?cascade=true"))
    assert edge.ok("GET", edge.acct(f"/cfd_tunnel/{t['id']}/connections")) == []
    # The connector hears it (its connection closes) and is refused on reconnect.
    assert conn.wait_output("deleted", timeout=60) is not None, conn.tail()
    assert time.monotonic() - t0 < 60
    audit = edge.ok("GET", edge.acct("/audit_logs?action=Unregistered"))
    assert audit, "no Unregistered audit row"


def test_delete_by_another_process_closes_connections_within_60s(edge, procs, tmp_path):
    """`warren-edge tunnel delete` writes only the store; the running edge's
    sweeper closes the tunnel's live connections within one interval."""
    t, conn = connected_tunnel(edge, procs, tmp_path, "gone")
    t0 = time.monotonic()
    r = run([WARREN_EDGE, "tunnel", "delete", "--data-dir", str(edge.dir), "gone"])
    assert r.returncode == 0, r.stderr
    assert edge.proc.wait_output(f"tunnel {t['id']} was deleted: closed 1 connection", timeout=60) is not None
    assert conn.wait_output("deleted", timeout=60) is not None, conn.tail()
    assert time.monotonic() - t0 < 60


# --- the real cloudflared ------------------------------------------------------------------

CLOUDFLARED = os.environ.get("CLOUDFLARED")


@pytest.mark.skipif(not CLOUDFLARED or os.geteuid() != 0 or not shutil.which("ip"),
                    reason="needs CLOUDFLARED=/path/to/cloudflared, root and iproute2")
def test_real_cloudflared_management_commands(tmp_path):
    d = tmp_path / "edge"
    r = run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", ZONE])
    assert r.returncode == 0, r.stderr
    home = tmp_path / "home"
    home.mkdir()
    ns = "wr" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    edge = None
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        log = open(tmp_path / "edge.log", "wb")
        edge = subprocess.Popen(["ip", "netns", "exec", ns, WARREN_EDGE, "run", "--data-dir", str(d),
                                 "--tunnel-listen", "127.0.0.1:7844", "--http-listen", "127.0.0.1:8080",
                                 "--api-listen", "127.0.0.1:8081"], stdout=log, stderr=subprocess.STDOUT)
        env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "TUNNEL_API_URL": "http://127.0.0.1:8081/client/v4", "NO_AUTOUPDATE": "true"}

        def cf(*args):
            return subprocess.run(["ip", "netns", "exec", ns, CLOUDFLARED, "tunnel",
                                   "--origincert", str(d / "cert.pem"), *args],
                                  capture_output=True, text=True, env=env, timeout=60)

        assert wait_for(lambda: cf("list").returncode == 0, timeout=30)
        r = cf("create", "mytun")
        assert r.returncode == 0, r.stderr
        tid = re.search(r"Created tunnel mytun with id ([0-9a-f-]{36})", r.stdout + r.stderr).group(1)
        assert (d / f"{tid}.json").exists()
        r = cf("create", "mytun")
        assert r.returncode != 0 and "already exists" in r.stdout + r.stderr
        r = cf("list")
        assert r.returncode == 0 and tid in r.stdout
        r = cf("info", "mytun")
        assert r.returncode == 0 and "does not have any active connection" in r.stdout + r.stderr
        r = cf("route", "dns", "mytun", f"app.{ZONE}")
        assert r.returncode == 0 and f"Added CNAME app.{ZONE}" in r.stdout + r.stderr
        r = cf("route", "dns", "mytun", ZONE)
        assert r.returncode != 0 and "apex" in r.stdout + r.stderr
        r = cf("route", "ip", "add", "10.0.0.0/8", "mytun", "lab")
        assert r.returncode == 0 and "Successfully added route for 10.0.0.0/8" in r.stdout + r.stderr
        r = cf("route", "ip", "show")
        assert r.returncode == 0 and "10.0.0.0/8" in r.stdout
        r = cf("token", "mytun")
        assert r.returncode == 0
        dec = json.loads(base64.b64decode(r.stdout.strip()))
        assert dec["t"] == tid and dec["a"] == read_cert(d / "cert.pem")[1]
        r = cf("delete", "mytun")
        assert r.returncode == 0, r.stdout + r.stderr
        r = cf("list")
        assert tid not in r.stdout
    finally:
        if edge:
            edge.send_signal(signal.SIGTERM)
            try:
                edge.wait(20)
            except subprocess.TimeoutExpired:
                edge.kill()
        subprocess.run(["ip", "netns", "del", ns])
