"""Private networks through warren-edge's TUN ingress: ping, ping -6, a UDP
echo, and the ICMP errors the edge generates itself.

Two network namespaces the test creates (and deletes):
  edge       warren-edge with --tun wrt0; the client is the namespace
             itself: its lo has 10.98.0.1 and fd98::1, and
             10.99.0.0/24, fd99::/64 (routed to the tunnel) and
             10.77.0.0/24 (routed nowhere) go to wrt0
  connector  the connector (cloudflared 2023.7.3 or warren) with warp-routing
             enabled; the private host's addresses 10.99.0.5 and fd99::5 on
             its lo; ICMP through unprivileged ping sockets (ping_group_range)
The two are linked by a veth pair (10.200.0.1 <-> 10.200.0.2); nothing
leaves the machine.

Each case runs with warren as the connector, and with the real cloudflared
when CLOUDFLARED=/path is given (default /opt/cfd/cloudflared, skipped if
missing): both must behave the same."""
import os
import shutil

import netns
import pytest
from conftest import CLOUDFLARED, CONNECTORS, WARREN, WARREN_EDGE, wait_for
from netns import UDP_ECHO, log_of, sh

CAN_NETNS = os.geteuid() == 0 and shutil.which("ip") and os.path.exists("/dev/net/tun")

pytestmark = pytest.mark.skipif(not CAN_NETNS, reason="needs root, iproute2 and /dev/net/tun")


class Net(netns.Namespaces):
    """The two namespaces and every process started in them."""

    def __init__(self, tmp_path):
        super().__init__(tmp_path, ("wre", "wrc"))
        self.edge, self.conn = self.names
        self.link(self.edge, "ve" + self.tag, "10.200.0.1/24", self.conn, "vc" + self.tag, "10.200.0.2/24")
        self.lo_addrs(self.edge, "10.98.0.1/32", "fd98::1/128")
        self.lo_addrs(self.conn, "10.99.0.5/32", "fd99::5/128")
        self.allow_ping(self.conn)


@pytest.fixture
def net(tmp_path):
    with Net(tmp_path) as n:
        yield n


def setup_edge(net, tmp_path, home):
    """Initialises the store, starts warren-edge with the TUN device and adds
    the IP routes through the API (as `tunnel route ip add` does)."""
    d, creds, tid = netns.edge_tunnel(WARREN_EDGE, tmp_path)
    edge = net.start(net.edge, [WARREN_EDGE, "run", "--data-dir", str(d), "--tunnel-listen", netns.EDGE_TUNNEL,
                                "--http-listen", "127.0.0.1:18080", "--api-listen", netns.EDGE_API,
                                "--tun", "wrt0", "--metrics", "127.0.0.1:18082"], "warren-edge")
    assert wait_for(lambda: "Routing private traffic from TUN device wrt0" in log_of(edge), 30), log_of(edge)
    sh(net.edge, "ip", "route", "add", "10.99.0.0/24", "dev", "wrt0", "src", "10.98.0.1")
    sh(net.edge, "ip", "route", "add", "10.77.0.0/24", "dev", "wrt0", "src", "10.98.0.1")
    sh(net.edge, "ip", "-6", "route", "add", "fd99::/64", "dev", "wrt0", "src", "fd98::1")
    netns.route_ip_add(net.edge, WARREN, d, tid, home, ("10.99.0.0/24", "fd99::/64"))
    # The router reloads its tables from the store within its refresh period.
    assert wait_for(lambda: "warren_edge_private_routes 2" in metrics(net), 10)
    return d, creds, tid, edge


def metrics(net, ns=None, port=18082):
    return netns.metrics(ns or net.edge, port)


def start_connector(net, kind, d, creds, tid, tmp_path, extra=(), warp=True):
    cfg = tmp_path / "connector.yml"
    cfg.write_text(("warp-routing:\n  enabled: true\n" if warp else "") +
                   "ingress:\n  - service: http_status:404\n")
    binary = CLOUDFLARED if kind == "cloudflared" else WARREN
    p = net.start(net.conn, netns.connector_args(binary, d, creds, cfg, tid, ("10.200.0.2", "fd99::5"), extra),
                  kind)
    assert wait_for(lambda: "Registered tunnel connection" in log_of(p), 40), log_of(p)
    return p


def ping(net, *args):
    return sh(net.edge, "ping", "-n", "-c", "2", "-W", "3", *args, check=False, timeout=40)


def udp_echo(net, host, family):
    return netns.udp_echo(net.edge, host, family)


def assert_private_host_answers(net):
    """ping and ping -6 get every reply (IPv4 from the private host itself),
    and the UDP echo answers over IPv4 and IPv6."""
    r = ping(net, "10.99.0.5")
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
    assert "from 10.99.0.5" in r.stdout
    r = ping(net, "-6", "fd99::5")
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
    assert udp_echo(net, "10.99.0.5", "socket.AF_INET") == "echo:hello-udp"
    assert udp_echo(net, "fd99::5", "socket.AF_INET6") == "echo:hello-udp"


@pytest.mark.parametrize("kind", CONNECTORS)
def test_ping_and_udp_through_the_tun(net, tmp_path, home, kind):
    d, creds, tid, edge = setup_edge(net, tmp_path, home)

    # Routed, but the tunnel has no connector yet: host unreachable, and the
    # edge says why.
    r = ping(net, "10.99.0.5")
    assert "Destination Host Unreachable" in r.stdout, r.stdout + r.stderr
    assert wait_for(lambda: "which has no live connection" in log_of(edge), 5)

    # Not routed at all: net unreachable.
    r = ping(net, "10.77.0.5")
    assert "Destination Net Unreachable" in r.stdout, r.stdout + r.stderr

    net.start(net.conn, ["python3", "-c", UDP_ECHO], "udp-echo")
    start_connector(net, kind, d, creds, tid, tmp_path)

    assert_private_host_answers(net)

    # Behaviour is what counts; the metrics must say the same.
    m = metrics(net)
    assert 'warren_edge_private_flows_total{kind="icmp"}' in m
    assert 'warren_edge_private_drops_total{reason="no_route"} 2' in m
    # The connector counts the same flows (cloudflared's UDP names; the ICMP
    # counters are warren's own).
    cm = metrics(net, net.conn, 18090)
    sessions = [ln for ln in cm.splitlines() if ln.startswith("cloudflared_udp_total_sessions ")]
    assert sessions and float(sessions[0].split()[1]) >= 2, cm
    if kind == "warren":
        replies = [ln for ln in cm.splitlines() if ln.startswith("warren_icmp_replies_total ")]
        assert replies and int(replies[0].split()[1]) >= 4, cm


@pytest.mark.parametrize("kind", CONNECTORS)
def test_ttl_exceeded_traceroute_and_mtr(net, tmp_path, home, kind):
    """The connector answers TTL 1 itself with time exceeded from its own
    address (--icmpv4-src / --icmpv6-src), so ping -t 1, traceroute -I and mtr
    show it as the hop before the private host."""
    d, creds, tid, _ = setup_edge(net, tmp_path, home)
    start_connector(net, kind, d, creds, tid, tmp_path)

    r = ping(net, "-t", "1", "10.99.0.5")
    print(r.stdout)
    assert "Time to live exceeded" in r.stdout, r.stdout + r.stderr
    assert "From 10.200.0.2" in r.stdout, r.stdout
    r = ping(net, "-6", "-t", "1", "fd99::5")
    assert "Time exceeded" in r.stdout, r.stdout + r.stderr

    if shutil.which("traceroute"):
        r = sh(net.edge, "traceroute", "-I", "-n", "-q", "1", "-w", "3", "-m", "4", "10.99.0.5",
               check=False, timeout=60)
        print(r.stdout)
        hops = [ln.split() for ln in r.stdout.splitlines()[1:] if ln.strip()]
        assert [h[1] for h in hops[:2]] == ["10.200.0.2", "10.99.0.5"], r.stdout + r.stderr
    if shutil.which("mtr"):
        r = sh(net.edge, "mtr", "-r", "-n", "-c", "2", "10.99.0.5", check=False, timeout=60)
        print(r.stdout)
        assert "10.200.0.2" in r.stdout and "10.99.0.5" in r.stdout, r.stdout + r.stderr


# ---- TCP: curl, a 20 MB download and an upload, a refused port, half-close ----------

# The private host's services: HTTP on 8080 (GET /big: 20 MB of
# deterministic bytes; POST: answers the body's sha256) and, on 9090, a raw
# TCP server that reads to EOF and only then answers (half-close), for both
# 10.99.0.5 and fd99::5.
TCP_SERVERS = """
import hashlib, http.server, socket, socketserver, sys, threading
BIG = hashlib.sha256(b"seed").digest() * (20 * 1024 * 1024 // 32)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, body, ctype="application/octet-stream"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.send(BIG if self.path == "/big" else b"hello from the private host\\n", "text/plain")
    def do_POST(self):
        n = int(self.headers["Content-Length"])
        h, left = hashlib.sha256(), n
        while left:
            d = self.rfile.read(min(left, 65536))
            if not d: break
            h.update(d); left -= len(d)
        self.send((h.hexdigest() + " %d\\n" % (n - left)).encode(), "text/plain")
class S4(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET
class S6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
class Tail(socketserver.StreamRequestHandler):
    def handle(self):
        h, n = hashlib.sha256(), 0
        while True:
            d = self.request.recv(65536)
            if not d: break
            h.update(d); n += len(d)
        self.request.sendall(("after-eof %d %s\\n" % (n, h.hexdigest())).encode())
class T4(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET
    allow_reuse_address = True
class T6(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6
    allow_reuse_address = True
for srv in (S4(("10.99.0.5", 8080), H), S6(("fd99::5", 8080), H),
            T4(("10.99.0.5", 9090), Tail), T6(("fd99::5", 9090), Tail)):
    threading.Thread(target=srv.serve_forever, daemon=True).start()
print("serving", flush=True)
threading.Event().wait()
"""

HALF_CLOSE = """
import hashlib, socket, sys
host, fam = sys.argv[1], socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
data = bytes(range(256)) * 4096
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(30)
s.connect((host, 9090))
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(65536)
    if not d: break
    got += d
want = "after-eof %d %s" % (len(data), hashlib.sha256(data).hexdigest())
print("ok" if got.decode().strip() == want else "bad: %r" % got)
"""

def curl(net, *args, timeout=120):
    return sh(net.edge, "curl", "-sS", "--max-time", "60", *args, check=False, timeout=timeout)


@pytest.mark.parametrize("kind", CONNECTORS)
def test_tcp_through_the_tun(net, tmp_path, home, kind):
    d, creds, tid, edge = setup_edge(net, tmp_path, home)
    srv = net.start(net.conn, ["python3", "-c", TCP_SERVERS], "tcp-servers")
    assert wait_for(lambda: "serving" in log_of(srv), 20), log_of(srv)
    start_connector(net, kind, d, creds, tid, tmp_path)

    # A small page, IPv4 and IPv6.
    for url in ("http://10.99.0.5:8080/", "http://[fd99::5]:8080/"):
        r = curl(net, url)
        assert r.returncode == 0 and r.stdout == "hello from the private host\n", (url, r.stdout, r.stderr)

    # 20 MB down, checksum matching the server's bytes.
    want = sh(net.edge, "python3", "-c", "import hashlib;print(hashlib.sha256("
              "hashlib.sha256(b'seed').digest()*(20*1024*1024//32)).hexdigest())").stdout.strip()
    for url in ("http://10.99.0.5:8080/big", "http://[fd99::5]:8080/big"):
        out = tmp_path / "big.bin"
        r = curl(net, "-o", str(out), url)
        assert r.returncode == 0, (url, r.stderr)
        got = sh(net.edge, "sha256sum", str(out)).stdout.split()[0]
        assert out.stat().st_size == 20 * 1024 * 1024 and got == want, url

    # 8 MB up: the server answers the body's checksum.
    up = tmp_path / "up.bin"
    up.write_bytes(os.urandom(8 * 1024 * 1024))
    up_sum = sh(net.edge, "sha256sum", str(up)).stdout.split()[0]
    r = curl(net, "--data-binary", "@" + str(up), "-H", "Content-Type: application/octet-stream",
             "http://10.99.0.5:8080/up")
    assert r.returncode == 0 and r.stdout.strip() == f"{up_sum} {8 * 1024 * 1024}", (r.stdout, r.stderr)

    # Half-close: the client shuts down its write side and still reads the
    # answer the server sends after EOF. cloudflared 2023.7.3 cannot do this:
    # its stream.Pipe ends the whole stream (and the origin connection) as
    # soon as either direction ends, so there the answer is lost; what the
    # edge must still do is end the client's connection, not leave it hanging.
    for host in ("10.99.0.5", "fd99::5"):
        r = sh(net.edge, "python3", "-c", HALF_CLOSE, host, check=False, timeout=60)
        if kind == "cloudflared":
            assert r.returncode == 0 and r.stdout.strip() in ("ok", "bad: b''"), (host, r.stdout, r.stderr)
        else:
            assert r.stdout.strip() == "ok", (host, r.stdout, r.stderr)

    # Nothing listens on 9999: the connector's dial fails and the client's
    # connection is reset. The edge's stack completes the handshake before
    # the connector answers (as Cloudflare's does), so curl sees the reset
    # after connecting (exit 56, or 55 when the reset comes while curl is
    # still sending its request) rather than a refused connect (7); each is
    # a quick failure, a hang would be exit 28 at --max-time.
    for url in ("http://10.99.0.5:9999/", "http://[fd99::5]:9999/"):
        r = curl(net, url)
        # (curl words exit 7 differently by what the socket reports: "refused",
        # "Couldn't connect to server"; the exit code is what tells a quick
        # failure from a hang.)
        assert r.returncode in (7, 55, 56), (url, r.returncode, r.stderr)

    m = metrics(net)
    assert "warren_edge_private_tcp_connections_total " in m
    assert "warren_edge_private_tcp_connector_refused_total 2" in m, m
    assert "warren_edge_private_tcp_bad_responses_total 0" in m
def datagrams(net, version):
    for line in metrics(net).splitlines():
        if line.startswith('warren_edge_private_datagrams_total{version="%s"}' % version):
            return int(line.split()[-1])
    return None


def test_datagram_v3(net, tmp_path, home):
    """warren with --features support_datagram_v3_2 (how cloudflared HEAD is
    told to use datagram v3): the edge records the feature at registration
    and speaks v3 to it; ping, ping -6, UDP over IPv4 and IPv6, and
    traceroute work, and every datagram was a v3 one."""
    d, creds, tid, edge = setup_edge(net, tmp_path, home)
    net.start(net.conn, ["python3", "-c", UDP_ECHO], "udp-echo")
    p = start_connector(net, "warren", d, creds, tid, tmp_path,
                        extra=["--features", "support_datagram_v3_2",
                               "--features", "support_datagram_v3_1"])
    assert "Using datagram v3" in log_of(p)
    assert wait_for(lambda: "datagrams=v3" in log_of(edge), 10), log_of(edge)
    assert "datagrams=v2" not in log_of(edge)

    assert_private_host_answers(net)

    r = ping(net, "-t", "1", "10.99.0.5")
    assert "Time to live exceeded" in r.stdout and "From 10.200.0.2" in r.stdout, r.stdout + r.stderr
    if shutil.which("traceroute"):
        r = sh(net.edge, "traceroute", "-I", "-n", "-q", "1", "-w", "3", "-m", "4", "10.99.0.5",
               check=False, timeout=60)
        hops = [ln.split() for ln in r.stdout.splitlines()[1:] if ln.strip()]
        assert [h[1] for h in hops[:2]] == ["10.200.0.2", "10.99.0.5"], r.stdout + r.stderr

    # Pings, UDP registrations, responses and payloads: all v3, none v2.
    assert datagrams(net, "3") >= 12, metrics(net)
    assert datagrams(net, "2") == 0, metrics(net)
    m = metrics(net)
    assert 'warren_edge_private_flows_total{kind="udp"} 2' in m, m


def test_datagram_v3_refusal(net, tmp_path, home):
    """A v3 connector that refuses the flow (warp-routing off: "error with
    message") makes the edge answer the client with ICMP administratively
    prohibited, which a connected UDP socket reports as EHOSTUNREACH."""
    d, creds, tid, edge = setup_edge(net, tmp_path, home)
    start_connector(net, "warren", d, creds, tid, tmp_path,
                    extra=["--features", "support_datagram_v3_2"], warp=False)
    code = ("import socket, errno\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.settimeout(5)\ns.connect(('10.99.0.5', 9053))\ns.send(b'x')\n"
            "try:\n    s.recv(100)\n    print('reply')\n"
            "except socket.timeout:\n    print('timeout')\n"
            "except OSError as e:\n    print(errno.errorcode[e.errno])\n")
    out = sh(net.edge, "python3", "-c", code, check=False, timeout=30).stdout.strip()
    assert out == "EHOSTUNREACH", out
    assert wait_for(lambda: "refused by the connector (code 255): warren received a request from WARP"
                    in log_of(edge), 5), log_of(edge)
    assert 'warren_edge_private_drops_total{reason="session"} 1' in metrics(net)
