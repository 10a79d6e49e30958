"""The connector's ICMP proxy against a real kernel, in a network namespace
this test creates: lo holds 10.99.0.1/32 and fd99::1/128, and the proxy
(tests/unit/test_icmp_proxy.c, case test_netns) pings them and checks that
the replies come back through its callback with each client's own echo id
and address, that TTL 1 is answered with time exceeded, and how it picks its
sockets:

  dgram  ping_group_range "0 2147483647": ping sockets (no privilege used)
  auto   ping_group_range "1 0", as root: raw sockets instead
  off    ping_group_range "1 0", as nobody: no socket, everything dropped

Those need root (ip netns) and are skipped otherwise; the namespace is
removed even when a test fails. The last tests check that `warren tunnel run`
hands --icmpv4-src / --icmpv6-src (and TUNNEL_ICMPV4_SRC / TUNNEL_ICMPV6_SRC)
to the proxy, and runs on without it when they are not addresses, as
cloudflared does."""
import os
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT, WARREN

PROG = os.path.join(BUILD, "tests", "test_icmp_proxy")


def sh(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=check)


@pytest.fixture
def netns():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for ip netns")
    name = "wr-icmp-%d" % os.getpid()
    sh("ip", "netns", "add", name)
    try:
        ex = ("ip", "netns", "exec", name)
        sh(*ex, "ip", "link", "set", "lo", "up")
        sh(*ex, "ip", "addr", "add", "10.99.0.1/32", "dev", "lo")
        sh(*ex, "ip", "-6", "addr", "add", "fd99::1/128", "dev", "lo", "nodad")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def run_in(ns, mode, group_range, user=None):
    ex = ["ip", "netns", "exec", ns]
    sh(*ex, "sysctl", "-q", "-w", "net.ipv4.ping_group_range=%s" % group_range)
    cmd = ex + ["env", "WR_ICMP_NETNS=" + mode]
    if user:
        cmd += ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all"]
    cmd.append(PROG)
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "[       OK ] test_netns" in out, out[-6000:]
    return out


def test_ping_sockets(netns):
    out = run_in(netns, "dgram", "0 2147483647")
    assert "ICMPv4 proxy uses ping sockets" in out
    assert "ICMPv6 proxy uses ping sockets" in out
    assert "ICMP proxy will use 0.0.0.0 as source for IPv4" in out


def test_raw_socket_fallback(netns):
    out = run_in(netns, "auto", "1 0")
    assert "cannot open an ICMPv4 ping socket" in out
    assert "ICMPv4 proxy uses raw sockets" in out


def test_no_socket_drops_and_logs_once(netns):
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv")
    out = run_in(netns, "off", "1 0", user=65534)
    assert out.count("ICMP proxy feature is disabled") == 1


def start_connector(procs, tmp_path, args, env_extra=None):
    cred = tmp_path / "cred.json"
    cred.write_text('{"AccountTag":"abc","TunnelSecret":"' + "A" * 43 + '=",'
                    '"TunnelID":"5e551011-0000-4000-8000-000000000001"}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = str(tmp_path)
    env.update(env_extra or {})
    # Nothing listens on the discard port: the connector keeps redialling,
    # which is all this test needs (the proxy is created before any dial).
    return procs.start([WARREN, "tunnel", "run", "--credentials-file", str(cred),
                        "--edge", "127.0.0.1:9", "--url", "http://127.0.0.1:1",
                        "--metrics", "127.0.0.1:0"] + args, name="warren", env=env)


def test_icmp_src_flags(procs, tmp_path):
    p = start_connector(procs, tmp_path, ["--icmpv4-src", "127.0.0.1"],
                        {"TUNNEL_ICMPV6_SRC": "::1%lo"})
    assert p.wait_output("ICMP proxy will use 127.0.0.1 as source for IPv4", 30) is not None
    assert p.wait_output("ICMP proxy will use ::1 in zone lo as source for IPv6", 30) is not None


def test_icmp_src_env(procs, tmp_path):
    p = start_connector(procs, tmp_path, [], {"TUNNEL_ICMPV4_SRC": "127.0.0.2"})
    assert p.wait_output("ICMP proxy will use 127.0.0.2 as source for IPv4", 30) is not None


def test_icmp_src_not_an_address_disables_icmp_only(procs, tmp_path):
    p = start_connector(procs, tmp_path, ["--icmpv4-src", "::1"])
    assert p.wait_output("ICMP proxy feature is disabled", 30) is not None
    assert p.wait_output("Starting metrics server", 30) is not None
    assert p.alive()
