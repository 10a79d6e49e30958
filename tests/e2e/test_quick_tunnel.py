"""Quick tunnels: `warren tunnel --url URL` with no credentials asks
--quick-service (a warren-edge API listener run with --quick-tunnels-account)
for a throwaway tunnel, prints its URL and serves URL through it; the real
cloudflared 2023.7.3 does the same against the edge when it is installed.
The edge bounds quick tunnels per source, refuses when the feature is off,
and deletes a quick tunnel and its hostname once its connector is gone."""
import base64
import json
import os
import re
import socket
import urllib.error
import urllib.request

import pytest

from common import QuietHandler, serve_http
from conftest import WARREN, WARREN_EDGE, free_port, run, wait_for

ZONE = "quick.test"
CLOUDFLARED = os.environ.get("CLOUDFLARED") or "/opt/cfd/cloudflared"
URL_RE = re.compile(r"\|\s+(https?://[A-Za-z0-9.:-]+)\s+\|")


class Hello(QuietHandler):
    def do_GET(self):
        self.reply(f"quick origin saw {self.path} host={self.headers.get('Host')}".encode())


@pytest.fixture
def origin():
    with serve_http(Hello) as srv:
        yield srv.server_address[1]


def clean_env(home):
    e = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    e["HOME"] = str(home)
    return e


class QuickEdge:
    def __init__(self, tmp_path, procs, extra=(), enable=True):
        self.dir = tmp_path / "edge"
        self.env = clean_env(tmp_path)
        assert run([WARREN_EDGE, "init", "--data-dir", str(self.dir), "--zone", ZONE],
                   env=self.env).returncode == 0
        self.account = None
        for block in open(self.dir / "cert.pem").read().split("-----BEGIN ARGO TUNNEL TOKEN-----")[1:]:
            self.account = json.loads(base64.b64decode(block.split("-----END")[0]))["accountID"]
        self.udp, self.http, self.api = free_port(socket.SOCK_DGRAM), free_port(), free_port()
        self.ca = self.dir / "ca.pem"
        args = [WARREN_EDGE, "run", "--data-dir", str(self.dir),
                "--tunnel-listen", f"127.0.0.1:{self.udp}", "--http-listen", f"127.0.0.1:{self.http}",
                "--api-listen", f"127.0.0.1:{self.api}"]
        if enable:
            args += ["--quick-tunnels-account", self.account, *extra]
        self.p = procs(args, name="warren-edge", env=self.env)
        assert wait_for(lambda: "Serving the API" in self.p.output(), timeout=30), self.p.output()
        self.service = f"http://127.0.0.1:{self.api}"

    def post(self):
        req = urllib.request.Request(self.service + "/tunnel", data=b"", method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.load(r), r.headers
        except urllib.error.HTTPError as e:
            return e.code, json.load(e), e.headers

    def visit(self, hostname, path="/hi"):
        req = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}", headers={"Host": hostname})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError as e:
            return 0, str(e)


def connector_args(binary, edge, origin_port, metrics):
    return [binary, "tunnel", "--no-autoupdate", "--edge", f"127.0.0.1:{edge.udp}",
            "--cacert", str(edge.ca), "--metrics", f"127.0.0.1:{metrics}",
            "--grace-period", "1s", "--quick-service", edge.service,
            "--url", f"http://127.0.0.1:{origin_port}"]


def banner_url(p):
    m = URL_RE.search(p.output())
    return m.group(1) if m else None


def test_warren_quick_tunnel_reaches_origin(tmp_path, procs, origin):
    edge = QuickEdge(tmp_path, procs)
    c = procs(connector_args(WARREN, edge, origin, free_port()) + ["--protocol", "quic"],
              name="warren", env=edge.env)
    assert wait_for(lambda: banner_url(c) is not None, timeout=30), c.output()
    out = c.output()
    assert "Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):" in out
    url = banner_url(c)
    # warren-edge's visitor front is plain HTTP: the URL printed is the one that works.
    assert url.startswith("http://") and url.endswith(f".{ZONE}:{edge.http}"), url
    hostname = url[len("http://"):].rsplit(":", 1)[0]
    assert wait_for(lambda: edge.visit(hostname)[0] == 200, timeout=30), (edge.visit(hostname), out)
    status, body = edge.visit(hostname, "/quick?x=1")
    assert status == 200 and body == f"quick origin saw /quick?x=1 host={hostname}", body
    # One connection, as cloudflared runs quick tunnels.
    assert wait_for(lambda: "Registered tunnel connection" in c.output(), timeout=10)
    assert "connIndex=1" not in c.output()
    # The connector gone, the hostname no longer reaches an origin.
    assert c.stop(30) == 0, c.output()
    assert edge.visit(hostname)[0] != 200


def test_per_source_limit_and_cap(tmp_path, procs):
    edge = QuickEdge(tmp_path, procs, extra=["--quick-tunnels-per-source", "2"])
    ids = set()
    for _ in range(2):
        status, j, _ = edge.post()
        assert status == 200 and j["success"] is True, j
        r = j["result"]
        assert set(r) >= {"id", "name", "hostname", "account_tag", "secret"}
        assert r["hostname"].endswith("." + ZONE) and r["account_tag"] == edge.account
        assert len(base64.b64decode(r["secret"])) >= 32
        ids.add(r["id"])
    assert len(ids) == 2
    status, j, headers = edge.post()
    assert status == 429 and j["success"] is False, j
    assert "too many quick tunnels" in j["errors"][0]["message"]
    assert int(headers["Retry-After"]) > 0
    # The warren connector says why and exits 1.
    r = run(connector_args(WARREN, edge, 9, free_port()), env=edge.env, timeout=60)
    assert r.returncode == 1 and "too many quick tunnels" in r.stderr + r.stdout, r


def test_total_cap(tmp_path, procs):
    edge = QuickEdge(tmp_path, procs, extra=["--quick-tunnels-max", "1"])
    assert edge.post()[0] == 200
    status, j, _ = edge.post()
    assert status == 429 and "limit" in j["errors"][0]["message"], j


def test_disabled_service_is_refused(tmp_path, procs):
    edge = QuickEdge(tmp_path, procs, enable=False)
    status, j, _ = edge.post()
    assert status == 404 and "quick tunnels are not enabled" in j["errors"][0]["message"], j
    r = run(connector_args(WARREN, edge, 9, free_port()), env=edge.env, timeout=60)
    assert r.returncode == 1 and "quick tunnels are not enabled" in r.stderr + r.stdout, r


def test_idle_quick_tunnel_expires(tmp_path, procs):
    edge = QuickEdge(tmp_path, procs, extra=["--quick-tunnels-idle", "2s"])
    status, j, _ = edge.post()
    assert status == 200
    tid = j["result"]["id"]
    # Never connected: it goes once the idle time has passed (sweeps every second).
    assert wait_for(lambda: f"quick tunnel {j['result']['name']} ({tid}) expired" in edge.p.output(),
                    timeout=30), edge.p.output()
    assert edge.visit(j["result"]["hostname"])[0] == 404


@pytest.mark.skipif(not os.path.exists(CLOUDFLARED) or os.geteuid() != 0,
                    reason="needs cloudflared (/opt/cfd/cloudflared or CLOUDFLARED=) and root")
def test_cloudflared_quick_tunnel_against_warren_edge(tmp_path, procs, netns_lo, origin):
    edge = QuickEdge(tmp_path, procs)
    c = procs(connector_args(CLOUDFLARED, edge, origin, free_port()) + ["--protocol", "quic"],
              name="cloudflared", env=edge.env, stop_timeout=30)
    assert wait_for(lambda: banner_url(c) is not None, timeout=60), c.output()
    # cloudflared always prints https://HOSTNAME; the edge serves it over HTTP.
    url = banner_url(c)
    assert url.startswith("https://") and url.endswith("." + ZONE), url
    hostname = url[len("https://"):]
    assert wait_for(lambda: edge.visit(hostname)[0] == 200, timeout=60), (edge.visit(hostname), c.output())
    status, body = edge.visit(hostname, "/cfd")
    assert status == 200 and body == f"quick origin saw /cfd host={hostname}", body


def test_quick_tunnel_expires_after_its_connector_left(tmp_path, procs, origin):
    # Idle time long enough for the connector to register first; the sweep
    # skips a tunnel while a connection is open.
    edge = QuickEdge(tmp_path, procs, extra=["--quick-tunnels-idle", "12s"])
    c = procs(connector_args(WARREN, edge, origin, free_port()), name="warren", env=edge.env)
    assert wait_for(lambda: "Registered tunnel connection" in c.output(), timeout=30), c.output()
    hostname = banner_url(c)[len("http://"):].rsplit(":", 1)[0]
    assert wait_for(lambda: edge.visit(hostname)[0] == 200, timeout=30)
    # Still there after the idle time while connected.
    assert not wait_for(lambda: "expired" in edge.p.output(), timeout=14)
    assert edge.visit(hostname)[0] == 200
    assert c.stop(30) == 0, c.output()
    assert wait_for(lambda: "expired: no connector" in edge.p.output(), timeout=30), edge.p.output()
    status, body = edge.visit(hostname)
    assert status == 404, body
