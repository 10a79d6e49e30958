"""Live logs: `warren tail` against a warren-edge and a warren connector.
The connector streams its own log lines (management service on
--management-hostname) through the edge, which admits only requests with a
management token it signed (POST .../cfd_tunnel/{id}/management)."""
import json
import os
import socket
import subprocess
import time

import pytest

import urllib.request

from common import read_cert, recv_to_eof
from conftest import WARREN, WARREN_EDGE, free_port, run, wait_for

CLOUDFLARED = os.environ.get("CLOUDFLARED") or "/opt/cfd/cloudflared"

ZONE = "tail.test"
MGMT = "management.argotunnel.com"


@pytest.fixture
def setup(tmp_path, procs):
    return make_setup(tmp_path, procs, WARREN)


def make_setup(tmp_path, procs, connector, protocol="quic", extra=()):
    d = tmp_path / "edge"
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    assert run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", ZONE]).returncode == 0
    creds = tmp_path / "t.json"
    r = run([WARREN_EDGE, "tunnel", "create", "--data-dir", str(d), "--out", str(creds), "logs"])
    assert r.returncode == 0, r.stderr
    assert run([WARREN_EDGE, "route", "dns", "--data-dir", str(d), "logs",
                f"app.{ZONE}"]).returncode == 0
    tid = json.loads(creds.read_text())["TunnelID"]
    api, http, udp = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    edge = procs.start([WARREN_EDGE, "run", "--data-dir", str(d),
                        "--tunnel-listen", f"127.0.0.1:{udp}",
                        "--http-listen", f"127.0.0.1:{http}",
                        "--api-listen", f"127.0.0.1:{api}"], name="warren-edge", env=env)
    assert edge.wait_output("Serving visitors", 30) is not None, edge.tail()
    # The API listener starts last (after Access's first signing key).
    assert edge.wait_output("Serving the API on", 30) is not None, edge.tail()
    conn = procs.start([connector, "tunnel", "--no-autoupdate", "--edge", f"127.0.0.1:{udp}",
                        "--cacert", str(d / "ca.pem"), "--protocol", protocol,
                        "--credentials-file", str(creds), "--hello-world", "--loglevel", "info",
                        *extra, "run", tid], name="connector", env=env, stop_timeout=30)
    assert conn.wait_output("Registered tunnel connection", 30) is not None, conn.tail()

    class S:
        pass
    s = S()
    s.dir, s.env, s.tid, s.api, s.http, s.conn, s.edge = d, env, tid, api, http, conn, edge
    s.udp = udp
    s.base = ["--origincert", str(d / "cert.pem"), "--api-url", f"http://127.0.0.1:{api}/client/v4"]
    return s


def visit(s, path="/"):
    with socket.create_connection(("127.0.0.1", s.http), timeout=10) as c:
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: app.{ZONE}\r\nConnection: close\r\n\r\n".encode())
        return recv_to_eof(c)


def start_tail(procs, s, *args, name="tail"):
    return procs.start([WARREN, "tail", *s.base, "--edge-url", f"http://127.0.0.1:{s.http}",
                        *args, s.tid], name=name, env=s.env)


def wait_line(p, needle, visit_fn, timeout=20):
    """Visits until |needle| shows in the tail's output."""
    def seen():
        visit_fn()
        return needle in p.output()
    return wait_for(seen, timeout=timeout, interval=0.3)


def test_tail_sees_connector_logs(setup, procs):
    s = setup
    t = start_tail(procs, s)
    # Debug lines reach tail although the connector logs at info.
    assert wait_line(t, "HTTP/1.1", lambda: visit(s, "/tail-probe")), t.tail()
    line = next(l for l in t.output().splitlines() if "/tail-probe" in l)
    f = line.split(" ")
    assert f[1] == "debug" and f[2] == "http", line
    assert "/tail-probe" not in s.conn.output()  # the console keeps its level
    t.signal(2)
    assert t.wait(10) == 0


def test_tail_filters_and_json(setup, procs):
    s = setup
    t = start_tail(procs, s, "--event", "http", "--output", "json")
    assert wait_line(t, "/only-http", lambda: visit(s, "/only-http")), t.tail()
    events = [json.loads(l) for l in t.output().splitlines() if l.startswith("{")]
    assert events and all(e.get("event") == "http" for e in events), events
    t.signal(2)
    t.wait(10)
    # A level above every request line: none of them shows.
    t2 = start_tail(procs, s, "--level", "warn", name="tail-warn")
    time.sleep(1)
    for _ in range(5):
        visit(s, "/hidden")
    time.sleep(1)
    assert "/hidden" not in t2.output()
    t2.signal(2)
    t2.wait(10)


def test_tail_over_http2_connection(tmp_path, procs):
    s = make_setup(tmp_path, procs, WARREN, protocol="http2")
    t = start_tail(procs, s, "--level", "debug")
    assert wait_line(t, "/over-h2", lambda: visit(s, "/over-h2")), (t.tail(), s.conn.tail())
    t.signal(15)
    assert t.wait(10) == 0


def features(s):
    """The features the tunnel's connector announced, as the API lists them."""
    _, acct, token = read_cert(s.dir / "cert.pem")
    rq = urllib.request.Request(
        f"http://127.0.0.1:{s.api}/client/v4/accounts/{acct}/cfd_tunnel/{s.tid}/connections",
        headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(rq, timeout=10) as r:
        clients = json.loads(r.read())["result"]
    return {f for c in clients for f in c["features"]}


def test_management_logs_announced_only_with_the_service(setup, tmp_path, procs):
    assert "management_logs" in features(setup)
    s = make_setup(tmp_path / "off", procs, WARREN, extra=["--management-hostname", ""])
    assert "management_logs" not in features(s) and "serialized_headers" in features(s)
    # Without the service the management hostname is not answered by it.
    r = run([WARREN, "tail", *s.base, "--edge-url", f"http://127.0.0.1:{s.http}", s.tid],
            env=s.env, timeout=30)
    assert r.returncode != 0, r.stdout


def test_bad_token_is_refused(setup, procs):
    s = setup
    r = run([WARREN, "tail", "--edge-url", f"http://127.0.0.1:{s.http}", "--token",
             "eyJhbGciOiJIUzI1NiJ9.eyJ0dW4iOnsiaWQiOiJ4IiwiYWNjb3VudF90YWciOiJ5In0sImFjdG9yIjp7ImlkIjoieiJ9LCJleHAiOjk5OTk5OTk5OTk5fQ.AAAA",
             s.tid], env=s.env, timeout=30)
    assert r.returncode != 0
    assert "1001" in r.stderr and "access_token" in r.stderr, r.stderr
    # Without any token the edge says so as cloudflared's middleware does.
    with socket.create_connection(("127.0.0.1", s.http), timeout=10) as c:
        c.sendall(f"GET /logs HTTP/1.1\r\nHost: {MGMT}\r\nConnection: close\r\n\r\n".encode())
        data = c.recv(65536)
    assert data.startswith(b"HTTP/1.1 400"), data
    assert b'"code":1001' in data


@pytest.mark.skipif(not os.path.exists(CLOUDFLARED) or os.geteuid() != 0,
                    reason="needs cloudflared (/opt/cfd/cloudflared or CLOUDFLARED=) and root")
def test_warren_tail_against_cloudflared_connector(tmp_path, procs, netns_lo):
    s = make_setup(tmp_path, procs, CLOUDFLARED)
    t = start_tail(procs, s)
    assert wait_line(t, "/cfd-probe", lambda: visit(s, "/cfd-probe"), timeout=40), \
        (t.tail(), s.conn.tail())


def tls_proxy(cert, key, port, target):
    """TLS on 127.0.0.1:|port| in front of the plain-HTTP 127.0.0.1:|target|
    (the edge's visitor front), for cloudflared's wss:// dial."""
    import ssl
    import threading
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)

    def pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve():
        while True:
            try:
                c, _ = srv.accept()
                t = ctx.wrap_socket(c, server_side=True)
            except OSError:
                continue
            u = socket.create_connection(("127.0.0.1", target))
            threading.Thread(target=pump, args=(t, u), daemon=True).start()
            threading.Thread(target=pump, args=(u, t), daemon=True).start()
    threading.Thread(target=serve, daemon=True).start()
    return srv


@pytest.mark.skipif(not os.path.exists(CLOUDFLARED) or os.geteuid() != 0,
                    reason="needs cloudflared (/opt/cfd/cloudflared or CLOUDFLARED=) and root")
def test_cloudflared_tail_against_warren_edge(tmp_path, procs, netns_lo):
    # cloudflared's tail dials wss://<management hostname>:443; "localhost"
    # resolves without DNS, and a TLS front on :443 (trusted through
    # SSL_CERT_FILE) passes the WebSocket to the edge's visitor port. The
    # edge and the connector use the same management hostname.
    s = make_setup(tmp_path, procs, WARREN, extra=["--management-hostname", "localhost"])
    s.edge.stop()
    edge = procs.start([WARREN_EDGE, "run", "--data-dir", str(s.dir),
                        "--tunnel-listen", f"127.0.0.1:{s.udp}",
                        "--http-listen", f"127.0.0.1:{s.http}",
                        "--api-listen", f"127.0.0.1:{s.api}",
                        "--management-hostname", "localhost"], name="warren-edge-2", env=s.env)
    assert edge.wait_output("Serving visitors", 30) is not None, edge.tail()
    assert edge.wait_output("Serving the API on", 30) is not None, edge.tail()
    assert wait_for(lambda: "management_logs" in features(s), timeout=30)
    ca = tmp_path / "tls"
    ca.mkdir()
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", str(ca / "key.pem"), "-out", str(ca / "cert.pem")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    srv = tls_proxy(str(ca / "cert.pem"), str(ca / "key.pem"), 443, s.http)
    try:
        _, acct, token = read_cert(s.dir / "cert.pem")
        rq = urllib.request.Request(
            f"http://127.0.0.1:{s.api}/client/v4/accounts/{acct}/cfd_tunnel/{s.tid}/management",
            data=b'{"resources":["logs"]}', method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(rq, timeout=10) as resp:
            mtoken = json.loads(resp.read())["result"]
        env = dict(s.env, SSL_CERT_FILE=str(ca / "cert.pem"))
        t = procs.start([CLOUDFLARED, "tail", "--management-hostname", "localhost",
                         "--token", mtoken, "--output", "json", s.tid], name="cloudflared-tail",
                        env=env)
        assert wait_line(t, "/cfd-tail", lambda: visit(s, "/cfd-tail"), timeout=40), \
            (t.tail(), s.conn.tail())
        t.signal(2)
    finally:
        srv.close()
