"""warren-edge run --dns-listen: the edge answers for its zone with `dig`.

`route dns` makes HOSTNAME a CNAME to <tunnel-uuid>.cfargotunnel.<zone>,
and that name resolves to the edge's public address (by default the host of
--http-listen), so `dig app.example.test A` returns the CNAME and the A
record together. UDP and TCP (dig +tcp) on the same port; other zones are
REFUSED; unknown names NXDOMAIN with the SOA. The RFC 2136 + TSIG push to a
real Knot DNS is tested by tests/unit/test_dns.c (test_update_knot), which
starts knotd itself."""
import re
import shutil
import socket
import subprocess

import pytest

from common import ok
from conftest import WARREN_EDGE, free_port, run, wait_for

pytestmark = pytest.mark.skipif(not shutil.which("dig"), reason="needs dig (package dnsutils)")

ZONE = "example.test"


def dig(port, name, rtype="A", tcp=False):
    """Runs dig against 127.0.0.1:port; returns (status, flags, sections) where
    sections maps ANSWER/AUTHORITY/ADDITIONAL to lists of (name, type, data)."""
    args = ["dig", "@127.0.0.1", "-p", str(port), "+norec", "+time=2", "+tries=1", name, rtype]
    if tcp:
        args.append("+tcp")
    r = subprocess.run(args, capture_output=True, text=True, timeout=15)
    out = r.stdout
    m = re.search(r"status: (\w+)", out)
    status = m.group(1) if m else None
    m = re.search(r";; flags: ([a-z ]+);", out)
    flags = set(m.group(1).split()) if m else set()
    sections, cur = {}, None
    for line in out.splitlines():
        h = re.match(r";; (\w+) SECTION:", line)
        if h:
            cur = h.group(1)
            sections[cur] = []
            continue
        if not line.strip() or line.startswith(";"):
            if not line.strip():
                cur = None
            continue
        if cur:
            f = line.split(None, 4)
            sections[cur].append((f[0].lower(), f[3], f[4]))
    return status, flags, sections


@pytest.fixture
def edge(tmp_path, procs):
    d = tmp_path / "edge"
    ok(run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", ZONE]))
    r = ok(run([WARREN_EDGE, "tunnel", "create", "--data-dir", str(d), "--out", str(tmp_path / "t.json"), "hello"]))
    tid = re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", r.stdout + r.stderr).group(0)
    ok(run([WARREN_EDGE, "route", "dns", "--data-dir", str(d), "hello", "app." + ZONE]))
    # One port free for both UDP and TCP.
    for _ in range(20):
        port = free_port(socket.SOCK_DGRAM)
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
            break
        except OSError:
            continue
    p = procs([WARREN_EDGE, "run", "--data-dir", str(d),
               "--tunnel-listen", f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
               "--http-listen", f"127.0.0.1:{free_port()}",
               "--api-listen", f"127.0.0.1:{free_port()}",
               "--dns-listen", f"127.0.0.1:{port}"])
    assert wait_for(lambda: dig(port, ZONE, "SOA")[0] is not None or not p.alive(), timeout=15), \
        "the DNS server did not answer"
    assert p.alive(), p.output()
    return {"dir": d, "port": port, "tid": tid, "proc": p}


def test_routed_hostname_resolves_to_the_edge(edge):
    port, tid = edge["port"], edge["tid"]
    target = f"{tid}.cfargotunnel.{ZONE}."
    for tcp in (False, True):
        status, flags, s = dig(port, "app." + ZONE, "A", tcp=tcp)
        assert status == "NOERROR"
        assert "aa" in flags and "qr" in flags
        assert s["ANSWER"] == [("app." + ZONE + ".", "CNAME", target), (target, "A", "127.0.0.1")]
    # the target name by itself; AAAA: none configured (NODATA with the SOA)
    status, _, s = dig(port, target, "A")
    assert status == "NOERROR" and s["ANSWER"] == [(target, "A", "127.0.0.1")]
    status, _, s = dig(port, target, "AAAA")
    assert status == "NOERROR" and "ANSWER" not in s
    assert s["AUTHORITY"][0][1] == "SOA"


def test_apex_negative_and_other_zones(edge):
    port = edge["port"]
    status, flags, s = dig(port, ZONE, "SOA")
    assert status == "NOERROR" and "aa" in flags
    assert s["ANSWER"][0][:2] == (ZONE + ".", "SOA")
    assert s["ANSWER"][0][2].startswith(f"ns1.{ZONE}. hostmaster.{ZONE}. ")
    status, _, s = dig(port, ZONE, "NS", tcp=True)
    assert s["ANSWER"] == [(ZONE + ".", "NS", f"ns1.{ZONE}.")]
    assert (f"ns1.{ZONE}.", "A", "127.0.0.1") in s["ADDITIONAL"]
    status, flags, s = dig(port, "nope." + ZONE, "A")
    assert status == "NXDOMAIN" and "aa" in flags
    assert s["AUTHORITY"][0][:2] == (ZONE + ".", "SOA")
    status, flags, s = dig(port, "example.org", "A")
    assert status == "REFUSED" and "aa" not in flags


def test_new_routes_and_deleted_tunnels(edge, tmp_path):
    d, port = edge["dir"], edge["port"]
    r = run([WARREN_EDGE, "tunnel", "create", "--data-dir", str(d), "--out", str(tmp_path / "t2.json"), "two"])
    assert r.returncode == 0, r.stderr
    r = run([WARREN_EDGE, "route", "dns", "--data-dir", str(d), "two", "api." + ZONE])
    assert r.returncode == 0, r.stderr
    # the server's cache lives about a second
    assert wait_for(lambda: dig(port, "api." + ZONE)[0] == "NOERROR", timeout=10)
    _, _, s = dig(port, "api." + ZONE)
    assert s["ANSWER"][0][1] == "CNAME" and s["ANSWER"][1] == (s["ANSWER"][0][2], "A", "127.0.0.1")
    r = run([WARREN_EDGE, "tunnel", "delete", "--data-dir", str(d), "two"])
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: dig(port, "api." + ZONE)[0] == "NXDOMAIN", timeout=10)
    # the first tunnel is untouched
    assert dig(port, "app." + ZONE)[0] == "NOERROR"
