"""`warren tunnel run --protocol auto` against an edge whose UDP port drops
every datagram (an nftables rule in a network namespace of this module's
own, loopback only; the edge answers HTTP/2 on TCP): the connector tries
QUIC, falls back to HTTP/2 after --retries failed dials, says so, and
serves within 60 s."""
import subprocess
import time

import pytest

import test_tunnel as tt
from test_http2_warren import Tunnel

pytestmark = pytest.mark.skipif(
    subprocess.run(["sh", "-c", "command -v nft"], capture_output=True).returncode != 0,
    reason="needs nft")

base = tt.base
env = tt.env
origin = tt.origin


def drop_udp(port):
    """Every UDP datagram to |port| is dropped (this namespace only)."""
    rules = ("add table inet wrtest\n"
             "add chain inet wrtest input { type filter hook input priority 0; }\n"
             f"add rule inet wrtest input udp dport {port} drop\n")
    subprocess.run(["nft", "-f", "-"], input=rules.encode(), check=True)


def test_auto_falls_back_to_http2_when_udp_is_dropped(netns_lo_module, base, env, origin):
    start = time.monotonic()
    t = Tunnel(base, env, origin, "auto", ready_timeout=60, before_connector=drop_udp)
    try:
        assert time.monotonic() - start < 60
        assert t.main.p.wait_output("switching to the fallback protocol http2", 5) is not None
        assert t.main.p.wait_output("protocol=http2", 5) is not None, t.main.p.tail()
        r, data = tt.request(t.port, "GET", "/echo/after-fallback")
        assert tt.echo_json(r, data)["target"] == "/echo/after-fallback"
    finally:
        t.close()
