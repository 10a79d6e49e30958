"""Edge discovery without --edge: warren looks up the SRV records of
argotunnel.com as cloudflared does, takes two regions, spreads its HA
connections over them and serves. Everything stays on this machine: the
test runs in a network namespace of its own with a Knot DNS server on its
127.0.0.1:53 holding a fake argotunnel.com zone, and each connector sees a
resolv.conf naming that server (bind-mounted over /etc/resolv.conf in a
mount namespace of the connector's own). Every region address 127.0.0.x
is rewritten by nftables to the one edge on 127.0.0.1, so four distinct
addresses reach one warren-edge."""
import os
import shutil
import subprocess

import pytest

import test_tunnel as tt
from conftest import ProcSet, free_port, wait_for

KNOTD = "/usr/sbin/knotd"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(KNOTD) or not shutil.which("nft")
    or not shutil.which("unshare") or not shutil.which("dig"),
    reason="needs root, knot, dig, nft and unshare")

base = tt.base
env = tt.env
origin = tt.origin

REGION1 = ["127.0.0.2", "127.0.0.3"]
REGION2 = ["127.0.0.4", "127.0.0.5"]
US1, US2 = ["127.0.0.6"], ["127.0.0.7"]


def zone(port):
    lines = ["$ORIGIN argotunnel.com.", "$TTL 60",
             "@ SOA ns1 hostmaster 1 3600 600 604800 60", "@ NS ns1", "ns1 A 127.0.0.1",
             # Priorities decide the region order, not the order in the answer.
             f"_v2-origintunneld._tcp SRV 2 1 {port} region2.v2",
             f"_v2-origintunneld._tcp SRV 1 1 {port} region1.v2",
             f"_us-v2-origintunneld._tcp SRV 1 1 {port} us-region1.v2",
             f"_us-v2-origintunneld._tcp SRV 2 1 {port} us-region2.v2",
             # IPv6 addresses that are unreachable here: auto keeps IPv4,
             # the family the system resolver sorts first.
             "region1.v2 AAAA fd00::12", "region2.v2 AAAA fd00::22"]
    lines += [f"region1.v2 A {a}" for a in REGION1] + [f"region2.v2 A {a}" for a in REGION2]
    lines += [f"us-region1.v2 A {a}" for a in US1] + [f"us-region2.v2 A {a}" for a in US2]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def dns(netns_lo_module, base):
    """knotd on 127.0.0.1:53 of the namespace, and a resolv.conf naming it."""
    d = base / "knot"
    d.mkdir()
    (d / "knot.conf").write_text(
        f"server:\n  listen: 127.0.0.1@53\n  rundir: {d}\n"
        f"database:\n  storage: {d}\n"
        f"log:\n  - target: {d}/knot.log\n    any: info\n"
        f"zone:\n  - domain: argotunnel.com\n    storage: {d}\n    file: argotunnel.com.zone\n")
    return d


@pytest.fixture(scope="module")
def edge(netns_lo_module, base, env, dns):
    procs = ProcSet(base)
    try:
        e = tt.Edge(base, procs, env)
        e.udp = free_port()
        e.start()
        e.procs = procs
        (dns / "argotunnel.com.zone").write_text(zone(e.udp))
        procs.start([KNOTD, "-c", str(dns / "knot.conf")], name="knotd")
        (dns / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:2\n")
        rules = ("add table ip wrdisc\n"
                 "add chain ip wrdisc out { type nat hook output priority -100; }\n"
                 "add rule ip wrdisc out ip daddr 127.0.0.2-127.0.0.9 dnat to 127.0.0.1\n")
        subprocess.run(["nft", "-f", "-"], input=rules.encode(), check=True)
        assert wait_for(lambda: subprocess.run(
            ["dig", "@127.0.0.1", "+short", "+time=1", "SRV", "_v2-origintunneld._tcp.argotunnel.com"],
            capture_output=True, text=True).stdout.strip() != "", timeout=10), "knotd did not come up"
        yield e
    finally:
        subprocess.run(["nft", "delete", "table", "ip", "wrdisc"], capture_output=True)
        procs.close()


class DiscoveringConnector(tt.Connector):
    """`warren tunnel run` without --edge, /etc/resolv.conf replaced by the
    test's in a private mount namespace."""

    def __init__(self, procs, edge, dns, env, extra, name, protocol="quic"):
        self.metrics = free_port()
        self.args = ["unshare", "-m", "sh", "-c",
                     f"mount --bind {dns / 'resolv.conf'} /etc/resolv.conf && exec \"$@\"", "sh",
                     tt.CONNECTOR, "tunnel", "--no-autoupdate", "--cacert", edge.ca,
                     "--protocol", protocol, "--credentials-file", edge.creds["main"],
                     "--metrics", f"127.0.0.1:{self.metrics}", "--grace-period", "1s",
                     *extra, "run", edge.ids["main"]]
        self.p = procs.start(self.args, name=name, env=env, stop_timeout=30)


def dialled(p, n):
    """The addresses of 'Edge discovery: connIndex=i will dial A:P' lines."""
    out = []
    for i in range(n):
        needle = f"Edge discovery: connIndex={i} will dial "
        at = p.wait_output(needle, 10)
        assert at is not None, p.tail()
        out.append(p.output()[at:].split()[0].rsplit(":", 1)[0].strip("[]"))
    return out


def test_srv_discovery_spreads_over_two_regions_and_serves(edge, dns, env, origin, base):
    procs = ProcSet(base)
    try:
        c = DiscoveringConnector(procs, edge, dns, env,
                                 ["--config", tt.main_config(base, origin)], "warren-discover")
        addrs = dialled(c.p, 4)
        # Two per region, alternating, region 1 (priority 1) first.
        assert addrs[0::2] in (REGION1, REGION1[::-1]), addrs
        assert addrs[1::2] in (REGION2, REGION2[::-1]), addrs
        assert wait_for(lambda: c.ready_connections() == 4, timeout=30), c.p.tail()
        r, data = tt.request(edge.http, "GET", "/echo/discovered")
        assert tt.echo_json(r, data)["target"] == "/echo/discovered"
        assert c.p.stop(30) == 0, c.p.tail()
    finally:
        procs.close()


def test_region_and_ip_version(edge, dns, env, origin, base):
    procs = ProcSet(base)
    try:
        # --region us: the us-v2-origintunneld records, one address each.
        c = DiscoveringConnector(procs, edge, dns, env,
                                 ["--config", tt.main_config(base, origin), "--region", "us"],
                                 "warren-us", protocol="http2")
        assert dialled(c.p, 2) == US1 + US2
        assert wait_for(lambda: c.ready_connections() == 2, timeout=30), c.p.tail()
        assert c.p.stop(30) == 0, c.p.tail()
        # --edge-ip-version 6: only the AAAA addresses (unreachable here).
        c = DiscoveringConnector(procs, edge, dns, env,
                                 ["--config", tt.main_config(base, origin),
                                  "--edge-ip-version", "6"], "warren-v6")
        assert dialled(c.p, 2) == ["fd00::12", "fd00::22"]
        c.p.stop(30)
    finally:
        procs.close()


# Startup failures: (arguments after --config, process name, cloudflared's
# message); each exits 1.
DISCOVERY_FAILURES = [
    # No records for this region.
    (["--region", "eu"], "warren-eu", "Error looking up Cloudflare edge IPs"),
    (["--edge-ip-version", "5"], "warren-bad-version", "invalid value for edge-ip-version: 5"),
    (["--edge-ip-version", "6", "--edge-bind-address", "127.0.0.1"], "warren-bad-bind",
     "IPv4 bind address is specified, but edge-ip-version is IPv6"),
]


def test_discovery_failures_are_reported(edge, dns, env, origin, base):
    procs = ProcSet(base)
    try:
        for extra, name, message in DISCOVERY_FAILURES:
            c = DiscoveringConnector(procs, edge, dns, env,
                                     ["--config", tt.main_config(base, origin)] + extra, name)
            assert c.p.wait(30) == 1
            assert c.p.wait_output(message, 1) is not None, c.p.tail()
    finally:
        procs.close()


@pytest.mark.parametrize("protocol", ["http2", "quic"])
def test_edge_bind_address(edge, dns, env, origin, base, protocol):
    """--edge-bind-address is the source of the connections over either
    transport (here with --edge: the same dial path)."""
    procs = ProcSet(base)
    try:
        c = DiscoveringConnector(procs, edge, dns, env,
                                 ["--config", tt.main_config(base, origin), "--ha-connections",
                                  "1", "--edge", f"127.0.0.1:{edge.udp}",
                                  "--edge-bind-address", "127.0.0.42"],
                                 f"warren-bind-{protocol}", protocol=protocol)
        assert wait_for(lambda: c.ready_connections() == 1, timeout=30), c.p.tail()
        # The connector's socket (TCP, or QUIC's UDP) has the bound source.
        out = subprocess.run(["ss", "-H", "-tuna", "src", "127.0.0.42"],
                             capture_output=True, text=True).stdout
        assert "127.0.0.42:" in out, out
        r, data = tt.request(edge.http, "GET", "/echo/bound")
        assert tt.echo_json(r, data)["target"] == "/echo/bound"
        assert c.p.stop(30) == 0, c.p.tail()
    finally:
        procs.close()
