"""WireGuard clients into private networks: wireguard-go -> warren-edge's
WireGuard ingress -> connector -> private host.

Three network namespaces the test creates (and deletes):
  client     wireguard-go (user space) as wgTAG, configured with `wg setconf`
             from exactly what `warren-edge device add` printed, minus the
             wg-quick-only Address line, which the test applies with ip addr
             (and the AllowedIPs as routes, as wg-quick does)
  edge       warren-edge run --wireguard-listen 0.0.0.0:51820
  connector  the connector (warren, or cloudflared 2023.7.3 when present)
             with warp-routing; the private host's 10.99.0.5 and fd99::5
             on its lo, and 10.99.0.1, the connector's ICMP source (inside
             the routed network, so the client's cryptokey routing accepts
             the time-exceeded it sends for TTL 1)
client <-> edge: veth 10.201.0.2 <-> 10.201.0.1; edge <-> connector: veth
10.200.0.1 <-> 10.200.0.2. Nothing leaves the machine."""
import hashlib
import json
import os
import shutil
import time

import netns
import pytest
from conftest import CLOUDFLARED, CONNECTORS, WARREN, WARREN_EDGE, run, wait_for
from netns import UDP_ECHO, log_of, sh

WG_GO = shutil.which("wireguard-go")
WG = shutil.which("wg")
CAN = (os.geteuid() == 0 and shutil.which("ip") and os.path.exists("/dev/net/tun") and WG_GO and WG)

pytestmark = pytest.mark.skipif(not CAN, reason="needs root, iproute2, /dev/net/tun, wireguard-go and wg")

HTTP = """
import hashlib, http.server, socket, threading
BIG = hashlib.sha256(b"seed").digest() * (20 * 1024 * 1024 // 32)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        body = BIG if self.path == "/big" else b"hello from the private host\\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
class S4(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET
class S6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
for srv in (S4(("10.99.0.5", 8080), H), S6(("fd99::5", 8080), H)):
    threading.Thread(target=srv.serve_forever, daemon=True).start()
print("serving", flush=True)
threading.Event().wait()
"""

EDGE_PORT_METRICS = 18182


class Net(netns.Namespaces):
    """The three namespaces and every process started in them."""

    def __init__(self, tmp_path):
        super().__init__(tmp_path, ("wgc", "wge", "wgn"))
        self.client, self.edge, self.conn = self.names
        # wireguard-go's control socket is /var/run/wireguard/NAME.sock, shared
        # by every namespace: the interface name must be unique machine-wide.
        self.wg = "wg" + self.tag
        tag = self.tag
        self.link(self.edge, "ve" + tag, "10.200.0.1/24", self.conn, "vc" + tag, "10.200.0.2/24")
        self.link(self.edge, "vx" + tag, "10.201.0.1/24", self.client, "vy" + tag, "10.201.0.2/24")
        self.lo_addrs(self.conn, "10.99.0.5/32", "10.99.0.1/32", "fd99::5/128")
        self.allow_ping(self.conn, self.client)


@pytest.fixture
def net(tmp_path):
    with Net(tmp_path) as n:
        yield n


def metrics(net):
    return netns.metrics(net.edge, EDGE_PORT_METRICS)


def metric(net, name):
    for ln in metrics(net).splitlines():
        if ln.startswith(name + " "):
            return float(ln.split()[1])
    return None


def setup_edge(net, tmp_path, home, env=None):
    """Store, edge with the WireGuard listener, a tunnel and its IP routes."""
    d, creds, tid = netns.edge_tunnel(WARREN_EDGE, tmp_path)
    edge = net.start(net.edge, [WARREN_EDGE, "run", "--data-dir", str(d), "--tunnel-listen", netns.EDGE_TUNNEL,
                                "--http-listen", "127.0.0.1:18080", "--api-listen", netns.EDGE_API,
                                "--wireguard-listen", "0.0.0.0:51820",
                                "--metrics", f"127.0.0.1:{EDGE_PORT_METRICS}"], "warren-edge", env=env)
    assert wait_for(lambda: "Serving WireGuard on 0.0.0.0:51820" in log_of(edge), 30), log_of(edge)
    # The API listener starts after WireGuard (and after Access has its
    # signing key, made on the first start).
    assert wait_for(lambda: "Serving the API on" in log_of(edge), 30), log_of(edge)
    netns.route_ip_add(net.edge, WARREN, d, tid, home, ("10.99.0.0/24", "fd99::/64"))
    return d, creds, tid, edge


def start_connector(net, kind, d, creds, tid, tmp_path):
    cfg = tmp_path / "connector.yml"
    cfg.write_text("warp-routing:\n  enabled: true\ningress:\n  - service: http_status:404\n")
    binary = CLOUDFLARED if kind == "cloudflared" else WARREN
    p = net.start(net.conn, netns.connector_args(binary, d, creds, cfg, tid, ("10.99.0.1", "fd99::5")), kind)
    assert wait_for(lambda: "Registered tunnel connection" in log_of(p), 40), log_of(p)
    return p


def add_device(net, d, name="laptop"):
    """`warren-edge device add` and its printed configuration."""
    r = run([WARREN_EDGE, "device", "add", "--data-dir", str(d), "--endpoint", "10.201.0.1:51820", name])
    assert r.returncode == 0, r.stderr
    return r.stdout


def start_client(net, conf_text, tmp_path):
    """wireguard-go as wg0, set up from the printed configuration the way
    wg-quick would: `wg setconf` takes everything but Address, MTU (and DNS),
    which become `ip addr` and `ip link set mtu`; AllowedIPs become routes."""
    addresses, allowed, kept, mtu = [], [], [], None
    for ln in conf_text.splitlines():
        key = ln.split("=", 1)[0].strip().lower()
        if key in ("address", "dns", "mtu"):
            if key == "address":
                addresses += [a.strip() for a in ln.split("=", 1)[1].split(",")]
            if key == "mtu":
                mtu = ln.split("=", 1)[1].strip()
            continue
        if key == "allowedips":
            allowed += [a.strip() for a in ln.split("=", 1)[1].split(",")]
        kept.append(ln)
    conf = tmp_path / "wg.conf"
    conf.write_text("\n".join(kept) + "\n")
    p = net.start(net.client, [WG_GO, "-f", net.wg], "wireguard-go",
                  env={"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1", "LOG_LEVEL": "debug"})
    assert wait_for(lambda: sh(net.client, "ip", "link", "show", net.wg, check=False).returncode == 0, 10)
    assert wait_for(lambda: sh(net.client, WG, "show", net.wg, check=False).returncode == 0, 10)
    sh(net.client, WG, "setconf", net.wg, str(conf))
    if mtu:
        sh(net.client, "ip", "link", "set", "dev", net.wg, "mtu", mtu)
    for a in addresses:
        sh(net.client, "ip", "addr", "add", a, "dev", net.wg)
    sh(net.client, "ip", "link", "set", net.wg, "up")
    for a in allowed:
        sh(net.client, "ip", "-6" if ":" in a else "-4", "route", "add", a, "dev", net.wg)
    assert addresses and allowed == ["10.99.0.0/24", "fd99::/64"], conf_text
    return p, addresses


def ping(net, *args, count=2, wait=5):
    return sh(net.client, "ping", "-n", "-c", str(count), "-W", str(wait), *args, check=False, timeout=60)


def udp_echo(net, host, family):
    return netns.udp_echo(net.client, host, family)


def curl(net, *args):
    return sh(net.client, "curl", "-sS", "--max-time", "90", *args, check=False, timeout=120)


@pytest.mark.parametrize("kind", CONNECTORS)
def test_wireguard_client_reaches_the_private_network(net, tmp_path, home, kind):
    d, creds, tid, edge = setup_edge(net, tmp_path, home)
    net.start(net.conn, ["python3", "-c", UDP_ECHO], "udp-echo")
    srv = net.start(net.conn, ["python3", "-c", HTTP], "http")
    assert wait_for(lambda: "serving" in log_of(srv), 20), log_of(srv)
    start_connector(net, kind, d, creds, tid, tmp_path)
    conf = add_device(net, d)
    start_client(net, conf, tmp_path)

    r = ping(net, "10.99.0.5")
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr + log_of(edge)
    r = ping(net, "-6", "fd99::5")
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
    # The largest echo the printed MTU (1280) lets through still fits the
    # tunnel's datagrams: 1252 + 8 + 20 = 1280 bytes.
    r = ping(net, "-s", "1252", "-M", "do", "10.99.0.5")
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr

    # TTL 1: the connector answers with time exceeded from its ICMP source.
    r = ping(net, "-t", "1", "10.99.0.5")
    assert "Time to live exceeded" in r.stdout and "From 10.99.0.1" in r.stdout, r.stdout + r.stderr
    r = sh(net.client, "traceroute", "-I", "-n", "-q", "1", "-w", "3", "-m", "4", "10.99.0.5",
           check=False, timeout=60)
    hops = [ln.split() for ln in r.stdout.splitlines()[1:] if ln.strip()]
    assert [h[1] for h in hops[:2]] == ["10.99.0.1", "10.99.0.5"], r.stdout + r.stderr
    if shutil.which("mtr"):
        r = sh(net.client, "mtr", "-r", "-n", "-c", "2", "10.99.0.5", check=False, timeout=60)
        assert "10.99.0.1" in r.stdout and "10.99.0.5" in r.stdout, r.stdout + r.stderr

    assert udp_echo(net, "10.99.0.5", "socket.AF_INET") == "echo:hello-udp"
    assert udp_echo(net, "fd99::5", "socket.AF_INET6") == "echo:hello-udp"

    for url in ("http://10.99.0.5:8080/", "http://[fd99::5]:8080/"):
        r = curl(net, url)
        assert r.returncode == 0 and r.stdout == "hello from the private host\n", (url, r.stdout, r.stderr)
    want = hashlib.sha256(hashlib.sha256(b"seed").digest() * (20 * 1024 * 1024 // 32)).hexdigest()
    out = tmp_path / "big.bin"
    rx_before = metric(net, "warren_edge_wireguard_rx_bytes_total")
    r = curl(net, "-o", str(out), "http://10.99.0.5:8080/big")
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size == 20 * 1024 * 1024
    assert hashlib.sha256(out.read_bytes()).hexdigest() == want

    assert metric(net, "warren_edge_wireguard_handshakes_total") >= 1
    assert metric(net, "warren_edge_wireguard_devices_online") == 1
    # The client's side of the download is its request and ACKs; how many
    # ACKs depends on the kernel (delayed and stretch ACKs, GRO): at least
    # some hundred packets' worth.
    assert metric(net, "warren_edge_wireguard_rx_bytes_total") - rx_before > 16 * 1024
    assert metric(net, "warren_edge_wireguard_tx_bytes_total") > 20 * 1024 * 1024
    # What the edge saw reaches `device list` within its save period.
    def listed():
        r = run([WARREN_EDGE, "device", "list", "--data-dir", str(d), "-o", "json"])
        devs = json.loads(r.stdout)
        devs = devs.get("result", devs) if isinstance(devs, dict) else devs
        return devs and devs[0].get("last_handshake_at") and devs[0].get("tx_bytes", 0) > 20 * 1024 * 1024
    assert wait_for(listed, 15), run([WARREN_EDGE, "device", "list", "--data-dir", str(d), "-o", "json"]).stdout


def test_revocation_spoofing_and_policy(net, tmp_path, home):
    d, creds, tid, edge = setup_edge(net, tmp_path, home)
    srv = net.start(net.conn, ["python3", "-c", HTTP], "http")
    assert wait_for(lambda: "serving" in log_of(srv), 20), log_of(srv)
    start_connector(net, "warren", d, creds, tid, tmp_path)
    conf = add_device(net, d)
    _, addresses = start_client(net, conf, tmp_path)
    r = ping(net, "10.99.0.5")
    assert r.returncode == 0, r.stdout + r.stderr + log_of(edge)

    # A packet whose inner source is not the device's address: dropped.
    sh(net.client, "ip", "addr", "add", "100.96.7.7/32", "dev", net.wg)
    r = ping(net, "-I", "100.96.7.7", "10.99.0.5", count=1, wait=2)
    assert r.returncode != 0, r.stdout
    assert 'warren_edge_wireguard_drops_total{reason="spoofed"} 1' in metrics(net)
    assert "sent a packet from an address that is not its own" in log_of(edge)

    # Policy: only the IPv6 route. IPv4 is refused with admin prohibited.
    r = run([WARREN_EDGE, "device", "allow", "--data-dir", str(d), "laptop", "fd99::/64"])
    assert r.returncode == 0, r.stdout + r.stderr
    time.sleep(1.0)  # the edge reloads devices every 500 ms
    r = ping(net, "10.99.0.5", count=1, wait=3)
    assert r.returncode != 0 and ("Packet filtered" in r.stdout or "Prohibited" in r.stdout), r.stdout
    assert wait_for(lambda: "may not reach 10.99.0.0/24" in log_of(edge), 5), log_of(edge)
    r = ping(net, "-6", "fd99::5")
    assert r.returncode == 0, r.stdout + r.stderr

    # Revocation: the very next packets are dropped, live session included,
    # and a TCP download in progress stops (its connection in the edge's
    # stack is gone with the device).
    out = tmp_path / "partial.bin"
    dl = net.start(net.client, ["curl", "-sS", "--limit-rate", "200k", "--speed-time", "3",
                                "--speed-limit", "1", "-o", str(out), "http://[fd99::5]:8080/big"], "curl")
    assert wait_for(lambda: out.exists() and out.stat().st_size > 100000, 20)
    assert metric(net, "warren_edge_private_tcp_connections") == 1
    r = run([WARREN_EDGE, "device", "revoke", "--data-dir", str(d), "laptop"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_for(lambda: "device laptop was revoked" in log_of(edge), 2), log_of(edge)
    before = metric(net, 'warren_edge_wireguard_rx_packets_total')
    r = ping(net, "-6", "fd99::5", count=2, wait=2)
    assert r.returncode != 0 and " 100% packet loss" in r.stdout, r.stdout
    assert metric(net, 'warren_edge_wireguard_rx_packets_total') == before
    assert metric(net, "warren_edge_wireguard_devices") == 0
    assert metric(net, "warren_edge_private_tcp_connections") == 0
    assert dl.wait(30) != 0 and out.stat().st_size < 20 * 1024 * 1024


def test_edge_initiates_cookies_and_roaming(net, tmp_path, home):
    """The edge renews a session the client made once it is old (a 2 s
    knob instead of 165 s), so wireguard-go answers an initiation from the
    edge; with cookies forced on (the load threshold at its maximum),
    wireguard-go takes the cookie reply and its retry carries mac2; and a
    client that changes its port is followed."""
    env = {"WARREN_EDGE_WG_REKEY_MS": "2000", "WARREN_EDGE_WG_COOKIE_THRESHOLD": str(2**32 - 1)}
    d, creds, tid, edge = setup_edge(net, tmp_path, home, env=env)
    start_connector(net, "warren", d, creds, tid, tmp_path)
    conf = add_device(net, d)
    client, _ = start_client(net, conf, tmp_path)
    # The first initiation gets a cookie; the retry (after 5 s) gets through.
    r = ping(net, "10.99.0.5", count=1, wait=15)
    assert r.returncode == 0, r.stdout + r.stderr + log_of(edge)
    assert metric(net, "warren_edge_wireguard_cookies_sent_total") >= 1
    assert metric(net, "warren_edge_wireguard_initiations_sent_total") == 0
    time.sleep(2.5)
    r = ping(net, "10.99.0.5", count=3)
    assert r.returncode == 0, r.stdout + r.stderr
    # The edge sent an initiation, and wireguard-go answered it (a second
    # session); traffic went on.
    assert wait_for(lambda: metric(net, "warren_edge_wireguard_initiations_sent_total") >= 1, 5)
    assert wait_for(lambda: metric(net, "warren_edge_wireguard_handshakes_total") >= 2, 10), metrics(net)
    r = ping(net, "10.99.0.5", count=2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Received handshake initiation" in log_of(client), log_of(client)

    # Roaming: the client moves to another UDP port; its next authenticated
    # packet makes that the endpoint the edge answers to.
    sh(net.client, WG, "set", net.wg, "listen-port", "40123")
    r = ping(net, "10.99.0.5", count=2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "device laptop roamed" in log_of(edge)
