"""The real cloudflared 2023.7.3 with `--protocol http2` against warren-edge:
it dials TCP on the --tunnel-listen port (the QUIC port), registers over the
HTTP/2 control stream, and then serves visitors as it does over QUIC: the
HTTP cases of test_tunnel.py (GET with Host kept, 1 MiB POST, a 100 MB
download with checksum, WebSocket echo, 404 from the connector, unknown
host, origin refused).

cloudflared looks up SRV, update and other records at start even with
--edge: the module runs in a network namespace of its own (loopback only),
entered by this thread (subprocesses inherit it) and left at the end.
Skipped without /opt/cfd/cloudflared (or CLOUDFLARED=...) or without root."""
import hashlib
import http.client
import os
import re
import socket

import pytest

import origins
import test_tunnel as tt
from conftest import ProcSet, free_port
from origins import ws_close_handshake, ws_recv, ws_send

CLOUDFLARED = os.environ.get("CLOUDFLARED") or "/opt/cfd/cloudflared"

pytestmark = pytest.mark.skipif(
    not os.access(CLOUDFLARED, os.X_OK) or os.geteuid() != 0,
    reason="needs cloudflared (/opt/cfd/cloudflared or CLOUDFLARED=) and root (network namespace)")


class TunnelRun(tt.Connector):
    """`|binary| tunnel run` over --protocol |protocol| to the edge's tunnel
    port (cloudflared here, warren in test_http2_warren.py)."""

    def __init__(self, binary, protocol, procs, edge, tunnel, service_args, env, name):
        self.metrics = free_port()
        self.args = [binary, "tunnel", "--no-autoupdate",
                     "--edge", f"127.0.0.1:{edge.udp}", "--cacert", edge.ca,
                     "--protocol", protocol, "--credentials-file", edge.creds[tunnel],
                     "--metrics", f"127.0.0.1:{self.metrics}", "--grace-period", "5s",
                     *service_args, "run", edge.ids[tunnel]]
        self.p = procs.start(self.args, name=name, env=env, stop_timeout=30)


class Cloudflared(TunnelRun):
    """cloudflared `tunnel run` over HTTP/2 to the edge's tunnel port."""

    def __init__(self, procs, edge, tunnel, service_args, env, name):
        super().__init__(CLOUDFLARED, "http2", procs, edge, tunnel, service_args, env, name)


class H2Tunnel:
    """The module's edge and main connector (start_main: cloudflared here),
    with the origin behind them. |before_connector(udp_port)| runs before
    the edge starts."""

    def __init__(self, base, env, origin, ready_timeout=30, before_connector=None):
        self.procs = ProcSet(base)
        try:
            # The TCP port must be free too: the edge listens on both.
            self.edge = tt.Edge(base, self.procs, env)
            self.edge.udp = free_port()
            if before_connector:
                before_connector(self.edge.udp)
            self.edge.start()
            self.port = self.edge.http
            self.main = self.start_main(["--config", tt.main_config(base, origin)], env)
            self.main.wait_ready(ready_timeout)
        except BaseException:
            self.procs.close()
            raise

    def start_main(self, service_args, env):
        return Cloudflared(self.procs, self.edge, "main", service_args, env, "cloudflared")

    def must_exit_0(self):
        """The processes close() stops in turn; each must exit 0."""
        return [("edge", self.edge.p)]

    def close(self):
        try:
            for name, p in self.must_exit_0():
                rc = p.stop(30)
                assert rc == 0, f"{name} exited {rc}:\n{p.tail()}"
        finally:
            self.procs.close()


@pytest.fixture(scope="module")
def tunnel(netns_lo_module, base, env, origin):
    t = H2Tunnel(base, env, origin)
    yield t
    t.close()


base = tt.base
env = tt.env
origin = tt.origin


def test_cloudflared_registers_over_http2(tunnel):
    assert tunnel.main.p.wait_output("protocol=http2", 10) is not None, tunnel.main.p.tail()
    assert tunnel.edge.p.wait_output("protocol=http2 datagrams=none", 10) is not None


def test_get_keeps_request_line_and_host(tunnel):
    r, data = tt.request(tunnel.port, "GET", "/echo/a%20b/c?x=1&y=%2F&z",
                         headers={"X-Custom": "v1"})
    echo = tt.echo_json(r, data)
    assert echo["method"] == "GET"
    assert echo["target"] == "/echo/a%20b/c?x=1&y=%2F&z"
    assert tt.header_values(echo, "Host") == [tt.host("app")]
    assert tt.header_values(echo, "X-Custom") == ["v1"]
    assert echo["length"] == 0


def test_post_1mib(tunnel):
    body = origins.pattern(tt.MIB, seed=3)
    r, data = tt.request(tunnel.port, "POST", "/echo/upload", body=body,
                         headers={"Content-Length": str(tt.MIB)}, timeout=120)
    echo = tt.echo_json(r, data)
    assert echo["method"] == "POST"
    assert echo["length"] == tt.MIB
    assert echo["sha256"] == origins.pattern_sha256(tt.MIB, 3)


def test_chunked_upload_of_unknown_length(tunnel):
    data = origins.pattern_bytes(300000, seed=11)
    s = socket.create_connection(("127.0.0.1", tunnel.port), timeout=60)
    try:
        s.sendall(f"POST /echo/chunked HTTP/1.1\r\nHost: {tt.host('app')}\r\n"
                  "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode())
        for i in range(0, len(data), 65536):
            piece = data[i:i + 65536]
            s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        r, body = tt.read_response(s.makefile("rb"), "POST")
        echo = tt.echo_json(r, body)
    finally:
        s.close()
    assert echo["length"] == len(data)
    assert echo["sha256"] == hashlib.sha256(data).hexdigest()


def test_large_download_with_checksum(tunnel):
    size = tt.BIG
    conn = http.client.HTTPConnection("127.0.0.1", tunnel.port, timeout=120)
    try:
        conn.request("GET", f"/bytes?n={size}&seed=7", headers={"Host": tt.host("app")})
        r = conn.getresponse()
        assert r.status == 200
        assert r.getheader("Content-Length") == str(size)
        h, n = hashlib.sha256(), 0
        while True:
            piece = r.read(tt.MIB)
            if not piece:
                break
            h.update(piece)
            n += len(piece)
        assert n == size
        assert h.hexdigest() == origins.pattern_sha256(size, 7)
    finally:
        conn.close()


def test_websocket_echo(tunnel):
    s = socket.create_connection(("127.0.0.1", tunnel.port), timeout=60)
    try:
        key, status, hdrs = tt.ws_handshake(s, tt.host("app"))
        assert status[1] == "101", status
        assert hdrs.get("upgrade", "").lower() == "websocket", hdrs
        assert hdrs.get("sec-websocket-accept") == origins.ws_accept(key), hdrs
        for op in (0x1, 0x2):
            for n in (0, 1, 125, 126, 65535, 65536, tt.MIB):
                msg = b"w" * n if op == 0x1 else origins.pattern_bytes(n, seed=n)
                ws_send(s, op, msg)
                fin, rop, got = ws_recv(s)
                assert (fin, rop, got) == (True, op, msg)
        ws_send(s, 0x9, b"ping!")
        assert ws_recv(s) == (True, 0xA, b"ping!")
        ws_close_handshake(s)
    finally:
        s.close()


def test_404_from_the_connector_passes_through(tunnel):
    r, data = tt.request(tunnel.port, "GET", "/echo", hostname=tt.host("other"))
    assert r.status == 404
    assert b"no route" not in data.lower(), data


def test_unknown_host_is_404_from_the_edge(tunnel):
    r, data = tt.request(tunnel.port, "GET", "/", hostname=tt.host("nothere"))
    assert r.status == 404
    assert "no route" in data.decode(errors="replace").lower()


def test_origin_refused_is_502(tunnel):
    r, data = tt.request(tunnel.port, "GET", "/", hostname=tt.host("refused"))
    assert r.status == 502, data[:300]


def test_many_requests_share_the_connection(tunnel):
    for i in range(50):
        r, data = tt.request(tunnel.port, "GET", f"/echo/n{i}")
        assert tt.echo_json(r, data)["target"] == f"/echo/n{i}"
    # Still one registered HTTP/2 connection (no reconnects).
    assert len(re.findall(r"Registered tunnel connection", tunnel.main.p.output())) == 1
