"""gRPC through the tunnel (docs/grpc.md): a grpcio server over TLS
(grpc_origin.py) behind the connector with `originRequest.http2Origin: true`.

The connector speaks HTTP/2 to the origin; over the HTTP/2 transport
(`--protocol http2`) the response trailers (grpc-status, ...) come back to
the edge as cloudflared sends them, and an HTTP/1.1 visitor that sent
`TE: trailers` gets them in the chunked trailer section. Over QUIC they are
dropped, as cloudflared drops them. Most cases use a raw HTTP/1.1 client
speaking gRPC's framing; a grpcio client also calls through the edge's
HTTPS listener over HTTP/2 (skipped if that listener does not offer h2).

WARREN_CONNECTOR=/opt/cfd/cloudflared runs the same cases with the real
cloudflared as the connector (its flags are the same)."""
import concurrent.futures
import os
import re
import socket
import ssl
import struct
import subprocess
import sys

import pytest

import test_tunnel as tt
from conftest import BUILD, ProcSet, free_port
from test_http2_warren import WarrenConnector

HERE = os.path.dirname(os.path.abspath(__file__))
TUNNELS = {"h2": ["grpc"], "quic": ["grpcq"]}
HOST, HOSTQ = tt.host("grpc"), tt.host("grpcq")


class GrpcOrigin:
    def __init__(self, procs, base):
        self.ca, leaf, key = tt.make_certs(base / "certs")
        self.p = procs.start([sys.executable, os.path.join(HERE, "grpc_origin.py"),
                              "--cert", leaf, "--key", key], name="grpc-origin")
        assert self.p.wait_output("grpc ready", 30) is not None, "gRPC origin did not start"
        self.port = int(re.search(r"grpc ready port=(\d+)", self.p.output()).group(1))


class Edge(tt.Edge):
    """The test edge, with the HTTPS listener too (for the grpcio client)."""

    def start(self):
        self.https = free_port()
        self.p = self.procs.start([tt.WARREN_EDGE, "run", "--data-dir", self.dir,
                                   "--tunnel-listen", f"127.0.0.1:{self.udp}",
                                   "--http-listen", f"127.0.0.1:{self.http}",
                                   "--https-listen", f"127.0.0.1:{self.https}",
                                   "--api-listen", "127.0.0.1:0"],
                                  name="warren-edge", env=self.env)
        assert self.p.wait_output("Serving visitors on http://", 30) is not None


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("grpc")
    home = base / "home"
    home.mkdir()
    env = tt.proc_env(home)
    procs = ProcSet(base)
    try:
        origin = GrpcOrigin(procs, base)
        cfg = base / "config.yml"
        cfg.write_text(f"""\
ingress:
  - service: https://127.0.0.1:{origin.port}
    originRequest:
      http2Origin: true
      caPool: {origin.ca}
      originServerName: origin.test
""")
        edge = Edge(base, procs, env, TUNNELS)
        edge.start()
        conns = [WarrenConnector(procs, edge, t, ["--config", str(cfg)], env, proto, f"conn-{t}")
                 for t, proto in (("h2", "http2"), ("quic", "quic"))]
        for c in conns:
            c.wait_ready(60)
        yield {"edge": edge, "origin": origin, "conns": conns}
    finally:
        procs.close()


# --- a gRPC call over HTTP/1.1 --------------------------------------------------------

def frame(msg):
    return b"\0" + struct.pack(">I", len(msg)) + msg


def messages(body):
    out, off = [], 0
    while off < len(body):
        assert body[off] == 0, "compressed gRPC message"
        n = struct.unpack(">I", body[off + 1:off + 5])[0]
        out.append(bytes(body[off + 5:off + 5 + n]))
        off += 5 + n
    return out


def read_chunked(f):
    """The body and the trailer section (lower-case name -> value) of a
    chunked response."""
    body = bytearray()
    while True:
        size = int(f.readline().split(b";")[0], 16)
        if size == 0:
            break
        body += f.read(size)
        assert f.read(2) == b"\r\n"
    trailers = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, v = line.decode().split(":", 1)
        trailers[k.strip().lower()] = v.strip()
    return body, trailers


def call(port, path, msgs, host=HOST, te=True, chunked=False):
    """POSTs gRPC |msgs| over HTTP/1.1: (status, headers, messages, trailers)."""
    body = b"".join(frame(m) for m in msgs)
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/grpc\r\n"
            + ("TE: trailers\r\n" if te else "") + "Connection: close\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        if chunked:  # length unknown to the edge: streamed as it comes
            s.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
            for m in msgs:
                fr = frame(m)
                s.sendall(b"%x\r\n" % len(fr) + fr + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        else:
            s.sendall((head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        f = s.makefile("rb")
        status = int(f.readline().split()[1])
        headers = {}
        while True:
            line = f.readline()
            if line == b"\r\n":
                break
            k, v = line.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        assert headers.get("transfer-encoding") == "chunked", headers
        data, trailers = read_chunked(f)
    return status, headers, messages(data), trailers


def test_unary_call_trailers_reach_the_visitor(world):
    status, headers, msgs, trailers = call(world["edge"].http, "/wr.Test/Echo", [b"hello"])
    assert status == 200
    assert headers["content-type"] == "application/grpc"
    assert msgs == [b"echo:hello"]
    assert trailers == {"grpc-status": "0", "x-trailer": "t1"}


def test_server_streaming_call(world):
    status, _, msgs, trailers = call(world["edge"].http, "/wr.Test/Count", [b"50"])
    assert status == 200
    assert msgs == [b"item-%d" % i for i in range(50)]
    assert trailers == {"grpc-status": "0", "x-count": "50"}


def test_large_stream_both_ways_with_flow_control(world):
    # 16 MiB down: more than the origin's HTTP/2 stream window (4 MiB) and
    # the tunnel stream's, so both windows must be reopened as it drains.
    _, _, msgs, trailers = call(world["edge"].http, "/wr.Test/Big", [b"256"])
    data = b"".join(msgs)
    assert len(msgs) == 256 and len(data) == 256 * 65536
    assert data == bytes(range(251)) * (len(data) // 251) + bytes(range(len(data) % 251))
    assert trailers == {"grpc-status": "0", "x-count": "256"}
    # 8 MiB up, of a length the edge does not know (chunked), in 128 messages.
    big = [bytes([i]) * 65536 for i in range(128)]
    _, _, msgs, trailers = call(world["edge"].http, "/wr.Test/Sum", big, chunked=True)
    assert msgs == [b"128 %d" % (128 * 65536)]
    assert trailers["grpc-status"] == "0"


def test_error_status_in_a_trailers_only_response(world):
    status, headers, msgs, trailers = call(world["edge"].http, "/wr.Test/Fail", [b"x"])
    # gRPC puts the status of a call without messages in the head.
    assert (status, msgs, trailers) == (200, [], {})
    assert headers["grpc-status"] == "5" and headers["grpc-message"] == "no such thing"


def test_no_trailer_section_without_te_trailers(world):
    # Without TE the edge passes none on (the origin then refuses the call:
    # gRPC servers require "te: trailers"), and the visitor gets no trailers.
    status, headers, msgs, trailers = call(world["edge"].http, "/wr.Test/Echo", [b"a"], te=False)
    assert status == 200 and msgs == [] and trailers == {}
    assert headers["grpc-status"] != "0"


def test_concurrent_calls_share_the_origin(world):
    def one(i):
        return call(world["edge"].http, "/wr.Test/Echo", [b"n%d" % i])

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        results = list(ex.map(one, range(64)))
    for i, (status, _, msgs, trailers) in enumerate(results):
        assert status == 200 and msgs == [b"echo:n%d" % i], (i, msgs)
        assert trailers["grpc-status"] == "0"


def test_quic_transport_drops_trailers_as_cloudflared(world):
    # cloudflared's QUIC transport has no trailers (httpResponseAdapter.
    # AddTrailer does nothing): the messages arrive, the status does not.
    status, _, msgs, trailers = call(world["edge"].http, "/wr.Test/Echo", [b"q"], host=HOSTQ)
    assert (status, msgs, trailers) == (200, [b"echo:q"], {})


def test_grpc_calls_over_http3(world):
    # tests/tools/h3client: HTTP/3 (visitor_h3.c) on the HTTPS port; the
    # trailers come as a trailing HEADERS frame, as on HTTP/2.
    exe = os.path.join(BUILD, "tests", "h3client")
    if not os.path.exists(exe):
        pytest.skip("no h3client in the build")
    https = world["edge"].https

    def h3call(path, msg):
        r = subprocess.run([exe, "--connect", f"127.0.0.1:{https}", "--ca", str(world["edge"].ca),
                            "-H", "content-type: application/grpc", "-H", "te: trailers",
                            "--data-hex", frame(msg).hex(), f"https://{HOST}:{https}{path}"],
                           capture_output=True, timeout=60)
        head, _, body = r.stdout.partition(b"\n\n")
        return r.returncode, head.decode(), body, r.stderr.decode()

    rc, head, body, err = h3call("/wr.Test/Echo", b"hello")
    assert rc == 0 and ":status 200" in head, err
    assert messages(body) == [b"echo:hello"]
    assert "trailer grpc-status: 0" in err and "trailer x-trailer: t1" in err, err
    # Trailers-Only: the status in the one HEADERS frame.
    rc, head, body, err = h3call("/wr.Test/Fail", b"x")
    assert rc == 0 and "grpc-status: 5" in head and body == b"", (head, err)


def edge_offers_h2(world):
    ctx = ssl.create_default_context(cafile=str(world["edge"].ca))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", world["edge"].https), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname=HOST) as t:
            return t.selected_alpn_protocol() == "h2"


def test_grpcio_client_through_the_edge(world):
    grpc = pytest.importorskip("grpc")
    if not edge_offers_h2(world):
        pytest.skip("the edge's HTTPS listener does not offer HTTP/2 (ALPN h2)")
    creds = grpc.ssl_channel_credentials(root_certificates=world["edge"].ca.read_bytes())
    opts = [("grpc.ssl_target_name_override", HOST), ("grpc.default_authority", HOST)]
    with grpc.secure_channel(f"127.0.0.1:{world['edge'].https}", creds, options=opts) as ch:
        echo = ch.unary_unary("/wr.Test/Echo")
        resp, c = echo.with_call(b"hi", timeout=30)
        assert resp == b"echo:hi"
        assert ("x-trailer", "t1") in c.trailing_metadata()
        count = ch.unary_stream("/wr.Test/Count")
        it = count(b"7", timeout=30)
        assert list(it) == [b"item-%d" % i for i in range(7)]
        assert ("x-count", "7") in it.trailing_metadata()
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary("/wr.Test/Fail")(b"x", timeout=30)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
