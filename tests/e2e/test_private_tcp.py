"""TCP services behind a connector, reached with `warren access tcp`:
client -> warren access tcp (local port) -> WebSocket -> warren-edge
(--http-listen) -> QUIC -> warren (tcp:// ingress rules) -> a TCP origin.

The origins are Python threads in this process: an echo server that
answers a half-close with its own (after echoing everything), and a server
that reports the PROXY protocol header it received. The access client's
request (Host, handshake, service-token headers) is checked against a
fake edge that records it."""
import base64
import hashlib
import json
import os
import socket
import struct
import threading
import time

import pytest

import test_tunnel as tt
from common import recv_to_eof
from conftest import WARREN, ProcSet, free_port, wait_for
from test_tunnel import Connector, Edge

ZONE = "example.test"
TUNNELS = {"tcp": ["echo", "pp1", "pp2", "gone"]}
MIB = 1024 * 1024


def host(name):
    return f"{name}.{ZONE}"


# --- origins -----------------------------------------------------------------------------

class Server:
    """A TCP server on 127.0.0.1 with one thread per connection."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.seen = []
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            with c:
                self.handler(self, c)
        except OSError:
            pass

    def close(self):
        self.stopping = True
        self.sock.close()


def echo_handler(srv, c):
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.shutdown(socket.SHUT_WR)  # our half-close comes after the client's


def proxy_header_handler(srv, c):
    """Reads a PROXY v1 line or a v2 header, reports it (hex) and closes."""
    data = b""
    while True:
        d = c.recv(4096)
        if not d:
            break
        data += d
        if data.startswith(b"PROXY ") and b"\r\n" in data:
            data = data[:data.index(b"\r\n") + 2]
            break
        if data.startswith(b"\r\n\r\n\x00\r\nQUIT\n") and len(data) >= 16:
            n = 16 + struct.unpack(">H", data[14:16])[0]
            if len(data) >= n:
                data = data[:n]
                break
    srv.seen.append(data)
    c.sendall(data.hex().encode() + b"\n")


# --- fixtures ----------------------------------------------------------------------------

# The module's directory and process environment, as test_tunnel's.
base = tt.base
env = tt.env


class Setup:
    def __init__(self, base, env):
        self.base, self.env = base, env
        self.procs = ProcSet(base)
        self.echo = Server(echo_handler)
        self.pp = Server(proxy_header_handler)
        gone = socket.socket()
        gone.bind(("127.0.0.1", 0))
        self.gone_port = gone.getsockname()[1]
        gone.close()
        try:
            self.edge = Edge(base, self.procs, env, tunnels=TUNNELS)
            self.edge.start()
            cfg = base / "config.yml"
            cfg.write_text(f"""\
ingress:
  - hostname: {host("echo")}
    service: tcp://127.0.0.1:{self.echo.port}
  - hostname: {host("pp1")}
    service: tcp://127.0.0.1:{self.pp.port}
    originRequest:
      proxyProtocol: v1
  - hostname: {host("pp2")}
    service: ssh://127.0.0.1:{self.pp.port}
    originRequest:
      proxyProtocol: v2
  - hostname: {host("gone")}
    service: rdp://127.0.0.1:{self.gone_port}
  - service: http_status:404
""")
            self.conn = Connector(self.procs, self.edge, "tcp", ["--config", cfg], env,
                                  name="warren-tcp")
            self.conn.wait_ready()
            self.access = {}
            for name in ("echo", "pp1", "pp2", "gone"):
                port = free_port()
                p = self.procs.start([WARREN, "access", "tcp", "--hostname", host(name),
                                      "--url", f"127.0.0.1:{port}",
                                      "--edge-url", f"http://127.0.0.1:{self.edge.http}",
                                      "--loglevel", "debug"],
                                     name=f"access-{name}", env=env)
                assert p.wait_output("Start Websocket listener", 10) is not None, p.output()
                self.access[name] = port
        except BaseException:
            self.close()
            raise

    def close(self):
        """Stops everything; the connector and the access clients must exit 0
        on SIGTERM (a sanitizer report or a leak makes them exit otherwise)."""
        bad = []
        try:
            for p in list(self.procs.procs):
                if p.name.startswith("access-") or p.name == "warren-tcp":
                    rc = p.stop(30)
                    if rc != 0:
                        bad.append(f"{p.name} exited {rc} on SIGTERM:\n{p.tail()}")
        finally:
            self.procs.close()
            self.echo.close()
            self.pp.close()
        return bad


@pytest.fixture(scope="module")
def setup(base, env):
    s = Setup(base, env)
    yield s
    bad = s.close()
    assert not bad, "\n\n".join(bad)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.settimeout(30)
    return s


# --- through the edge ------------------------------------------------------------------------

def test_echo_both_ways(setup):
    with connect(setup.access["echo"]) as s:
        for msg in (b"hello", b"x" * 70000, b"\x00\xff binary \r\n"):
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                d = s.recv(65536)
                assert d, "connection ended early"
                got += d
            assert got == msg


def test_half_close_gets_the_answer(setup):
    """The client shuts down its side; the origin still answers, then ends."""
    with connect(setup.access["echo"]) as s:
        s.sendall(b"last words")
        s.shutdown(socket.SHUT_WR)
        assert recv_to_eof(s) == b"last words"


def test_5mb_both_ways_checksum(setup):
    data = os.urandom(5 * MIB)
    with connect(setup.access["echo"]) as s:
        t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
        t.start()
        got = recv_to_eof(s)
        t.join()
    assert len(got) == len(data)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


def test_concurrent_connections(setup):
    results = {}

    def one(i):
        with connect(setup.access["echo"]) as s:
            msg = f"conn {i} ".encode() * 100
            s.sendall(msg)
            s.shutdown(socket.SHUT_WR)
            results[i] = recv_to_eof(s) == msg

    ts = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert results == {i: True for i in range(20)}


def test_proxy_protocol_v1(setup):
    with connect(setup.access["pp1"]) as s:
        line = bytes.fromhex(recv_to_eof(s).decode().strip())
    assert line == f"PROXY TCP4 127.0.0.1 127.0.0.1 0 {setup.pp.port}\r\n".encode(), line


def test_proxy_protocol_v2(setup):
    with connect(setup.access["pp2"]) as s:
        h = bytes.fromhex(recv_to_eof(s).decode().strip())
    want = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack(">H", 12) +
            socket.inet_aton("127.0.0.1") + socket.inet_aton("127.0.0.1") +
            struct.pack(">HH", 0, setup.pp.port))
    assert h == want, h.hex()


def test_origin_down_closes_the_local_connection(setup):
    with connect(setup.access["gone"]) as s:
        assert recv_to_eof(s) == b""
    p = [p for p in setup.procs.procs if p.name == "access-gone"][0]
    assert wait_for(lambda: "connection refused" in setup.conn.p.output(), 10), \
        setup.conn.p.tail()
    assert p.alive()


# --- the client's request ----------------------------------------------------------------------

def recv_masked(s, n):
    """A masked client frame with |n| (< 126) payload bytes from s: its first
    two bytes and the payload unmasked."""
    fr = b""
    while len(fr) < 6 + n:
        fr += s.recv(100)
    key = fr[2:6]
    return fr[0], fr[1], bytes(b ^ key[i % 4] for i, b in enumerate(fr[6:6 + n]))


def test_access_request_and_frames(tmp_path, env):
    """A fake edge checks the upgrade request (Host, handshake, service token
    headers), answers 101 and trades one frame each way."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    edge_port = srv.getsockname()[1]
    port = free_port()
    procs = ProcSet(tmp_path)
    try:
        p = procs.start([WARREN, "access", "ssh", "--hostname", "app.example.test",
                         "--url", f"127.0.0.1:{port}", "--id", "tok-id",
                         "--service-token-secret", "tok-secret", "--destination", "10.0.0.5:22",
                         "--edge-url", f"http://127.0.0.1:{edge_port}"], name="access", env=env)
        assert p.wait_output("Start Websocket listener", 10) is not None, p.output()
        cli = connect(port)
        srv.settimeout(10)
        e, _ = srv.accept()
        e.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            d = e.recv(4096)
            assert d
            head += d
        lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
        assert lines[0] == "GET / HTTP/1.1"
        fields = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            fields[k.lower()] = v.strip()
        assert fields["host"] == "app.example.test"
        assert fields["upgrade"].lower() == "websocket"
        assert fields["sec-websocket-version"] == "13"
        assert fields["cf-access-client-id"] == "tok-id"
        assert fields["cf-access-client-secret"] == "tok-secret"
        assert fields["cf-access-jump-destination"] == "10.0.0.5:22"
        accept = base64.b64encode(hashlib.sha1(
            (fields["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()
        ).digest()).decode()
        e.sendall((f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        # server -> client: an unmasked binary frame reaches the local socket
        e.sendall(b"\x82\x05hello")
        assert cli.recv(100) == b"hello"
        # client -> server: a masked binary frame
        cli.sendall(b"abc")
        b0, b1, payload = recv_masked(e, 3)
        assert b0 == 0x82 and b1 == 0x80 | 3
        assert payload == b"abc"
        # a local EOF goes out as a Close frame
        cli.shutdown(socket.SHUT_WR)
        b0, b1, payload = recv_masked(e, 2)
        assert b0 == 0x88 and b1 == 0x80 | 2
        assert payload == b"\x03\xe8"
        # our Close shuts the local side down: the client sees EOF
        e.sendall(b"\x88\x02\x03\xe8")
        assert recv_to_eof(cli) == b""
        cli.close()
        e.close()
    finally:
        procs.close()
        srv.close()


def read_head(sock):
    head = b""
    while b"\r\n\r\n" not in head:
        d = sock.recv(4096)
        assert d, head
        head += d
    lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
    return lines[0], {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}


def test_access_sends_the_stored_token(tmp_path, env):
    """Without a service token, `access tcp` finds the hostname's Access
    application (a HEAD answered 401 with CF-Access-Aud and CF-Access-Domain,
    as a warren-edge answers) and sends the token `access login` stored for
    it in ~/.cloudflared/<domain>-<aud>-token as Cf-Access-Token."""
    aud = "ab" * 32
    home = tmp_path / "home"
    (home / ".cloudflared").mkdir(parents=True)
    claims = base64.urlsafe_b64encode(json.dumps({"exp": int(time.time()) + 3600}).encode()).rstrip(b"=").decode()
    token = f"eyJhbGciOiJSUzI1NiJ9.{claims}.c2ln"
    (home / ".cloudflared" / f"app.example.test-{aud}-token").write_text(token)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(2)
    srv.settimeout(10)
    port = free_port()
    procs = ProcSet(tmp_path)
    try:
        p = procs.start([WARREN, "access", "tcp", "--hostname", "app.example.test", "--url", f"127.0.0.1:{port}",
                         "--edge-url", f"http://127.0.0.1:{srv.getsockname()[1]}"], name="access",
                        env={**env, "HOME": str(home)})
        e, _ = srv.accept()
        e.settimeout(10)
        first, fields = read_head(e)
        assert first == "HEAD / HTTP/1.1" and fields["host"] == "app.example.test", (first, fields)
        e.sendall(f"HTTP/1.1 401 Unauthorized\r\nCF-Access-Aud: {aud}\r\nCF-Access-Domain: app.example.test\r\n"
                  "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
        e.close()
        assert p.wait_output("Start Websocket listener", 10) is not None, p.output()
        cli = connect(port)
        e, _ = srv.accept()
        e.settimeout(10)
        first, fields = read_head(e)
        assert first == "GET / HTTP/1.1" and fields["upgrade"].lower() == "websocket"
        assert fields["cf-access-token"] == token
        cli.close()
        e.close()
    finally:
        procs.close()
        srv.close()
