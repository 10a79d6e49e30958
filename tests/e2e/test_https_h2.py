"""HTTP/2 to visitors on the HTTPS front (ALPN h2, src/edge/visitor_h2.c)
through a real tunnel: curl --http2 for answers, headers and bodies both
ways; h2load for many streams on few connections; python3-h2 for the abuse
cases (rapid reset, CONTINUATION, PING and empty-frame floods, oversized
header lists), each answered with GOAWAY ENHANCE_YOUR_CALM while another
connection goes on being served; and server-sent events seen one by one on
HTTP/2 and HTTP/1.1."""
import hashlib
import json
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from common import QuietHandler
from origins import recv_exact, ws_accept, ws_frame, ws_mask, ws_parse_head
from browser import find_chromium
from test_https import HOST, browser_trusting_edge_ca, curl, edge_env

h2 = pytest.importorskip("h2.connection")
import h2.config  # noqa: E402
import h2.events  # noqa: E402
import hpack  # noqa: E402

ENHANCE_YOUR_CALM = 11

# SSE gates: the origin sends event i+1 only once the test saw event i, so a
# front that buffers the stream makes the test fail (it never sees event i).
SSE_GATES = {}


def ws_read_client_frame(s):
    """(opcode, payload) of the next (masked) client frame on socket s."""
    _fin, op, masked, n = ws_parse_head(recv_exact(s, 2))
    if n == 126:
        n = struct.unpack("!H", recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(s, 8))[0]
    key = recv_exact(s, 4) if masked else b""
    data = recv_exact(s, n)
    return op, (ws_mask(data, key) if masked else data)


def pattern(n):
    return (b"0123456789abcdef" * (n // 16 + 1))[:n]


class Origin(QuietHandler):
    protocol_version = "HTTP/1.1"

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            out = b""
            while True:
                n = int(self.rfile.readline().split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(n)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "1234")
        self.end_headers()

    def do_GET(self):
        if self.path == "/nocontent":
            self.send_response(204)
            self.end_headers()
        elif self.path.startswith("/big/"):
            self.reply(pattern(int(self.path[5:])), content_type="application/octet-stream")
        elif self.path == "/headers":
            self.reply(json.dumps({k.lower(): v for k, v in self.headers.items()}).encode(),
                       content_type="application/json")
        elif self.path == "/ws":
            self.websocket()
        elif self.path.startswith("/sse/"):
            self.sse(SSE_GATES[self.path[5:]])
        elif self.path == "/hold":
            # Answers late: a request the visitor cancels is still open
            # when its cancel arrives, however fast the edge is.
            time.sleep(0.5)
            self.reply(b"held", content_type="text/plain")
        else:
            self.reply(f"origin saw {self.path} host={self.headers.get('Host')}".encode(),
                       content_type="text/plain")

    def do_POST(self):
        body = self.read_body()
        self.reply(f"len={len(body)} sha={hashlib.sha256(body).hexdigest()}".encode(),
                   content_type="text/plain")

    def websocket(self):
        """Echoes WebSocket messages until the close frame."""
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", ws_accept(self.headers["Sec-WebSocket-Key"]))
        self.end_headers()
        self.wfile.flush()
        s = self.connection
        while True:
            op, payload = ws_read_client_frame(s)
            if op == 8:
                s.sendall(ws_frame(8, payload))
                break
            s.sendall(ws_frame(op, payload))
        self.close_connection = True

    def sse(self, gates):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for i, gate in enumerate(gates):
            self.wfile.write(f"id: {i}\ndata: event {i}\n\n".encode())
            self.wfile.flush()
            if not gate.wait(20):
                return
        self.close_connection = True


@pytest.fixture
def setup(tmp_path, procs):
    yield from edge_env(tmp_path, procs, Origin, extra=["--requests-per-second-per-source", "0"])


def curl2(env, path, extra=()):
    return curl(env, HOST, path, extra=("--http2", *extra))


def test_curl_http2_get_and_headers(setup):
    st, head, body, err = curl2(setup, "/hello?x=1")
    assert st == 200, err
    assert head.startswith("HTTP/2 200")
    assert body == f"origin saw /hello?x=1 host={HOST}:{setup['https']}"
    st, head, body, _ = curl2(setup, "/headers", extra=("-H", "Cookie: a=1", "-H", "Cookie: b=2",
                                                         "-H", "X-Forwarded-For: 6.6.6.6"))
    h = json.loads(body)
    assert h["x-forwarded-for"] == "127.0.0.1" and h["cf-connecting-ip"] == "127.0.0.1"
    assert h["x-forwarded-proto"] == "https"
    assert h["cookie"] == "a=1; b=2"
    st, head, body, err = curl2(setup, "/head", extra=("-I",))
    assert st == 200 and "content-length: 1234" in head.lower(), err  # and no DATA: curl would fail
    st, head, body, err = curl2(setup, "/nocontent")
    assert st == 204 and body == "", err
    # HTTP/1.1 is still chosen by a client that only offers it.
    st, head, _, _ = curl(setup, HOST, "/", extra=("--http1.1",))
    assert st == 200 and head.startswith("HTTP/1.1 200")


def test_curl_http2_bodies_both_ways(setup, tmp_path):
    # 3 MB down: many windows' worth, so flow control has to turn over.
    n = 3 * 1024 * 1024
    st, _, body, err = curl2(setup, f"/big/{n}")
    assert st == 200, err
    assert body.encode() == pattern(n)
    # Up, with a length and without one (chunked to the origin), 2 MB each.
    data = pattern(2 * 1024 * 1024)
    f = tmp_path / "up"
    f.write_bytes(data)
    want = f"len={len(data)} sha={hashlib.sha256(data).hexdigest()}"
    st, _, body, err = curl2(setup, "/echo", extra=("--data-binary", f"@{f}"))
    assert (st, body) == (200, want), err
    st, _, body, err = curl2(setup, "/echo", extra=("-T", str(f), "-X", "POST",
                                                     "-H", "Content-Length:"))
    assert (st, body) == (200, want), err


def test_unknown_host_and_421_over_http2(setup):
    st, head, _, _ = curl2(setup, "/", extra=("-H", "Host: other.example.test"))
    assert st == 421 and head.startswith("HTTP/2 421")


@pytest.mark.skipif(not shutil.which("h2load"), reason="needs h2load (nghttp2-client)")
def test_h2load_2000_requests_no_failures(setup):
    r = subprocess.run(["h2load", "-n", "2000", "-c", "10", "-m", "10",
                        "--connect-to", f"127.0.0.1:{setup['https']}",
                        f"https://{HOST}:{setup['https']}/"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2000 succeeded, 0 failed, 0 errored" in r.stdout, r.stdout
    assert "2000 2xx" in r.stdout, r.stdout
    assert "h2" in r.stdout  # "Application protocol: h2"


# ---- raw HTTP/2 clients (python3-h2) --------------------------------------------------

def h2_connect(env):
    ctx = ssl.create_default_context(cafile=str(env["d"] / "ca.pem"))
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", env["https"]), timeout=20)
    s = ctx.wrap_socket(raw, server_hostname=HOST)
    assert s.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    return s, conn


def req_headers(env, path="/"):
    return [(":method", "GET"), (":scheme", "https"), (":authority", f"{HOST}:{env['https']}"),
            (":path", path)]


def flood_gets_goaway(env, s, conn, frames):
    """Sends |frames| (the edge may close the connection meanwhile): the edge
    must end it with GOAWAY ENHANCE_YOUR_CALM and go on serving others."""
    try:
        s.sendall(frames)
    except (ConnectionError, ssl.SSLError):
        pass
    assert read_until_goaway(s, conn) == ENHANCE_YOUR_CALM
    s.close()
    assert_still_serving(env)


def read_until_goaway(s, conn):
    """Reads events until GOAWAY (its error code) or the end (None)."""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return None
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ConnectionTerminated):
                    return ev.error_code
            out = conn.data_to_send()
            if out:
                s.sendall(out)
    except (ConnectionError, ssl.SSLError, h2.exceptions.ProtocolError):
        return None


def raw_frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def assert_still_serving(env):
    st, head, body, err = curl2(env, "/after")
    assert st == 200 and head.startswith("HTTP/2 200"), err


def metric(env, name):
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{env['metrics']}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_rapid_reset_gets_goaway(setup):
    s, conn = h2_connect(setup)
    other_s, other = h2_connect(setup)  # a second, polite connection
    sid = 1
    for _ in range(1000):
        conn.send_headers(sid, req_headers(setup), end_stream=True)
        conn.reset_stream(sid)
        sid += 2
    try:
        s.sendall(conn.data_to_send())
    except (ConnectionError, ssl.SSLError):
        pass
    assert read_until_goaway(s, conn) == ENHANCE_YOUR_CALM
    s.close()
    # The other connection and new ones are served.
    other.send_headers(1, req_headers(setup, "/polite"), end_stream=True)
    other_s.sendall(other.data_to_send())
    got = b""
    while True:
        evs = other.receive_data(other_s.recv(65536))
        other_s.sendall(other.data_to_send())
        got += b"".join(e.data for e in evs if isinstance(e, h2.events.DataReceived))
        if any(isinstance(e, h2.events.StreamEnded) for e in evs):
            break
    assert got.decode().startswith("origin saw /polite")
    other_s.close()
    assert_still_serving(setup)
    assert metric(setup, "warren_edge_https_h2_goaways_total{reason=\"enhance_your_calm\"}") >= 1


def test_continuation_flood_gets_goaway(setup):
    s, conn = h2_connect(setup)
    enc = hpack.Encoder()
    block = enc.encode(req_headers(setup))
    frames = raw_frame(1, 0x1, 1, block)  # HEADERS, END_STREAM, no END_HEADERS
    filler = enc.encode([("x-filler", "a" * 1000)])
    for _ in range(50):
        frames += raw_frame(9, 0, 1, filler)  # CONTINUATION without END_HEADERS
    flood_gets_goaway(setup, s, conn, frames)


def test_ping_flood_gets_goaway(setup):
    s, conn = h2_connect(setup)
    frames = b"".join(raw_frame(6, 0, 0, struct.pack(">Q", i)) for i in range(3000))
    flood_gets_goaway(setup, s, conn, frames)


def test_ping_flood_read_acks_gets_goaway(setup):
    # A client that reads every acknowledgement never fills nghttp2's queue
    # of owed ACKs: the edge's own PING/SETTINGS bucket ends it.
    s, conn = h2_connect(setup)
    code = None
    for batch in range(40):
        for i in range(50):
            conn.ping(struct.pack(">Q", batch * 50 + i))
        try:
            s.sendall(conn.data_to_send())
        except (ConnectionError, ssl.SSLError):
            break
        acks = 0
        while acks < 50 and code is None:
            data = s.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.PingAckReceived):
                    acks += 1
                if isinstance(ev, h2.events.ConnectionTerminated):
                    code = ev.error_code
        if code is not None or acks < 50:
            break
    if code is None:
        code = read_until_goaway(s, conn)
    assert code == ENHANCE_YOUR_CALM
    s.close()
    assert_still_serving(setup)


def test_empty_data_flood_gets_goaway(setup):
    s, conn = h2_connect(setup)
    hdrs = req_headers(setup, "/echo")
    hdrs[0] = (":method", "POST")
    conn.send_headers(1, hdrs)
    s.sendall(conn.data_to_send())
    frames = b"".join(raw_frame(0, 0, 1, b"") for _ in range(500))
    flood_gets_goaway(setup, s, conn, frames)


def test_protocol_error_gets_goaway(setup):
    s, conn = h2_connect(setup)
    s.sendall(raw_frame(0, 0, 0, b"x"))  # DATA on stream 0: a connection error
    assert read_until_goaway(s, conn) == 1  # PROTOCOL_ERROR
    s.close()
    assert metric(setup, "warren_edge_https_h2_goaways_total{reason=\"error\"}") >= 1
    assert_still_serving(setup)


def test_oversized_header_list_is_431_and_connection_goes_on(setup):
    s, conn = h2_connect(setup)
    conn.send_headers(1, req_headers(setup) + [("x-big", "b" * 8000)] * 6, end_stream=True)
    conn.send_headers(3, req_headers(setup, "/small"), end_stream=True)
    s.sendall(conn.data_to_send())
    status, ended = {}, set()
    while len(ended) < 2:
        for ev in conn.receive_data(s.recv(65536)):
            if isinstance(ev, h2.events.ResponseReceived):
                status[ev.stream_id] = dict(ev.headers)[b":status"]
            if isinstance(ev, h2.events.StreamEnded):
                ended.add(ev.stream_id)
        s.sendall(conn.data_to_send())
    assert status == {1: b"431", 3: b"200"}
    s.close()


def test_padded_upload_completes(setup):
    # Padding counts against flow control; it must be given back like data
    # or the upload stalls once the windows are used up.
    s, conn = h2_connect(setup)
    hdrs = req_headers(setup, "/echo")
    hdrs[0] = (":method", "POST")
    conn.send_headers(1, hdrs)
    data = pattern(600 * 1024)  # 600 small frames of 1 KiB + 256 bytes of padding
    off, body, done = 0, b"", False
    while not done:
        while off < len(data):
            n = min(conn.local_flow_control_window(1) - 256, 1024, len(data) - off)  # 600 frames
            if n <= 0:
                break
            conn.send_data(1, data[off:off + n], pad_length=255)
            off += n
        if off == len(data) and not conn.streams[1].state_machine.state.name.endswith("LOCAL"):
            conn.end_stream(1)
        s.sendall(conn.data_to_send())
        for ev in conn.receive_data(s.recv(65536)):
            if isinstance(ev, h2.events.DataReceived):
                body += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, 1)
            if isinstance(ev, h2.events.StreamEnded):
                done = True
        s.sendall(conn.data_to_send())
    assert body.decode() == f"len={len(data)} sha={hashlib.sha256(data).hexdigest()}"
    s.close()


def test_cancelled_stream_leaves_connection_serving(setup):
    gates = [threading.Event() for _ in range(3)]
    SSE_GATES["cancel"] = gates
    s, conn = h2_connect(setup)
    try:
        conn.send_headers(1, req_headers(setup, "/sse/cancel"), end_stream=True)
        s.sendall(conn.data_to_send())
        got = b""
        while b"event 0" not in got:
            for ev in conn.receive_data(s.recv(65536)):
                if isinstance(ev, h2.events.DataReceived):
                    got += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            s.sendall(conn.data_to_send())
        conn.reset_stream(1)  # the visitor leaves mid-stream
        conn.send_headers(3, req_headers(setup, "/next"), end_stream=True)
        s.sendall(conn.data_to_send())
        body, ended = b"", False
        while not ended:
            for ev in conn.receive_data(s.recv(65536)):
                if isinstance(ev, h2.events.DataReceived) and ev.stream_id == 3:
                    body += ev.data
                if isinstance(ev, h2.events.StreamEnded) and ev.stream_id == 3:
                    ended = True
            s.sendall(conn.data_to_send())
        assert body.decode().startswith("origin saw /next")
    finally:
        for g in gates:
            g.set()
        s.close()


def test_websocket_over_http2(setup):
    # RFC 8441: the edge offers extended CONNECT; the connector and origin
    # see an HTTP/1.1 upgrade, the visitor a 200 and DATA frames.
    s, conn = h2_connect(setup)
    while not conn.remote_settings.enable_connect_protocol:
        conn.receive_data(s.recv(65536))
        s.sendall(conn.data_to_send())
    hdrs = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
            (":authority", f"{HOST}:{setup['https']}"), (":path", "/ws"), ("sec-websocket-version", "13")]
    conn.send_headers(1, hdrs)
    s.sendall(conn.data_to_send())
    status, got, ended = None, b"", False
    sent = False
    while not ended:
        for ev in conn.receive_data(s.recv(65536)):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers)[b":status"]
                assert b"sec-websocket-accept" not in dict(ev.headers)
            if isinstance(ev, h2.events.DataReceived):
                got += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, 1)
            if isinstance(ev, h2.events.StreamEnded):
                ended = True
        if status == b"200" and not sent:
            conn.send_data(1, ws_frame(1, b"hello over h2", mask=b"abcd") + ws_frame(8, b"\x03\xe8", mask=b"abcd"))
            sent = True
        s.sendall(conn.data_to_send())
        if ws_frame(8, b"\x03\xe8") in got:
            break
    assert status == b"200"
    assert got.startswith(ws_frame(1, b"hello over h2"))
    s.close()


@pytest.mark.skipif(not find_chromium() or not shutil.which("certutil"),
                    reason="needs chromium and certutil (libnss3-tools)")
def test_browser_websocket_echo(setup, tmp_path):
    with browser_trusting_edge_ca(setup, tmp_path) as b:
        page = b.new_page()
        page.goto(f"https://{HOST}:{setup['https']}/page")
        assert page.eval("performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
        handshakes = metric(setup, 'warren_edge_tls_handshakes_total{result="ok"}')
        assert handshakes >= 1
        got = page.eval(f"""new Promise((res) => {{
            const ws = new WebSocket("wss://{HOST}:{setup['https']}/ws");
            ws.onopen = () => ws.send("from the browser");
            ws.onmessage = (e) => {{ res(e.data); ws.close(); }};
            ws.onerror = () => res("error");
        }})""")
        assert got == "from the browser"
        # No new TLS connection: the WebSocket went over the page's HTTP/2
        # connection (RFC 8441), not a new HTTP/1.1 one.
        assert metric(setup, 'warren_edge_tls_handshakes_total{result="ok"}') == handshakes


# ---- server-sent events ----------------------------------------------------------------

@pytest.mark.parametrize("proto", ["--http2", "--http1.1"])
def test_sse_events_arrive_one_by_one(setup, proto):
    key = proto.strip("-").replace(".", "")
    gates = [threading.Event() for _ in range(5)]
    SSE_GATES[key] = gates
    p = subprocess.Popen(["curl", "-sSN", "--max-time", "60", proto, "--cacert", str(setup["d"] / "ca.pem"),
                          "--resolve", f"{HOST}:{setup['https']}:127.0.0.1", "-D", "/dev/stderr",
                          f"https://{HOST}:{setup['https']}/sse/{key}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = []
        for line in p.stdout:
            line = line.decode().strip()
            if line.startswith("data: "):
                i = int(line.split()[-1])
                seen.append(i)
                gates[i].set()  # only now may the origin send the next one
        assert seen == [0, 1, 2, 3, 4]
        head = p.stderr.read().decode()
        assert ("HTTP/2 200" if key == "http2" else "HTTP/1.1 200") in head
        assert "text/event-stream" in head
    finally:
        for g in gates:
            g.set()
        p.kill()
        p.wait()


def test_access_gate_over_http2(setup):
    """An HTTP/2 stream whose host's Access applications are not cached waits
    for the store thread's read and is woken by it: 401 without an identity."""
    import http.client
    from common import read_cert
    _, account, token = read_cert(setup["d"] / "cert.pem")
    c = http.client.HTTPConnection("127.0.0.1", setup["api"], timeout=30)
    c.request("POST", f"/client/v4/accounts/{account}/access/apps", body=json.dumps({"name": "h2", "domain": HOST}),
              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = json.loads(c.getresponse().read())
    c.close()
    assert r["success"], r
    st, head, _, err = curl2(setup, "/")
    assert st == 401 and head.startswith("HTTP/2 401"), err
    assert f"cf-access-aud: {r['result']['aud']}" in head.lower()
