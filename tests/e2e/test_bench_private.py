"""The private-path benchmark (bench/private.py) runs end to end at a tiny
size and its report renders: every echo and every flow got its answer, the
direct baseline measured, each throughput row either a figure or an honest
"not measured" with iperf3's reason. No figure's value is asserted."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import BUILD, ROOT

CAN = (os.geteuid() == 0 and shutil.which("ip") and shutil.which("iperf3")
       and os.path.exists("/dev/net/tun"))
pytestmark = pytest.mark.skipif(not CAN, reason="needs root, iproute2, iperf3 and /dev/net/tun")

TINY = {"BENCH_PING_COUNT": "5", "BENCH_IPERF_SECONDS": "1", "BENCH_UDP_RATES": "1M",
        "BENCH_UDP_REVERSE_RATES": "1M", "BENCH_PRIVATE_FLOWS": "20", "BENCH_QUIET_WAIT": "0"}


def test_private_bench_runs_and_reports(tmp_path):
    out = tmp_path / "private.json"
    env = dict(os.environ, **TINY)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "private.py"), "run", "--out", str(out),
                        "--build", BUILD, "--connectors", "warren"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert out.exists(), r.stdout + r.stderr
    priv = json.loads(out.read_text())
    w = priv["connectors"]["warren"]
    assert w.get("ok"), w.get("error", "") + r.stderr[-2000:]
    assert priv["direct"]["ping"]["received"] == 5
    assert w["ping"]["received"] == 5
    assert w["flows"]["udp_ok"] == 20 and w["flows"]["icmp_ok"] == 20
    assert priv["direct"]["throughput"]["tcp_up"]["Mbps"] > 0
    for t in (w["throughput"]["tcp_up"], w["throughput"]["udp"]["1M"], w["throughput"]["udp_down"]["1M"]):
        assert ("Mbps" in t and t["Mbps"] > 0) or t.get("error"), t
    # Namespaces are gone.
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"wrbe{w['ns_tag']}" not in ns and f"wrbc{w['ns_tag']}" not in ns

    # The report: its own section, the README's private markers filled and
    # the HTTP section left alone.
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- bench:latest -->\nkeep\n<!-- /bench:latest -->\n"
                      "<!-- bench:private -->\n<!-- /bench:private -->\n")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench.py"), "report",
                        "--md", str(tmp_path / "l.md"), "--json", str(tmp_path / "l.json"),
                        "--readme", str(readme), "--private", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "l.md").read_text()
    assert "### Private network path" in md and "| ping RTT p50 | ms |" in md
    text = readme.read_text()
    assert "keep" in text and "UDP flows per GiB (edge)" in text
    fig = json.loads((tmp_path / "l.json").read_text())["private"]["figures"]
    assert fig["ping_p50"]["warren"] is not None
    tcp = fig["tcp_up"]["warren"]
    assert tcp == "not measured" or tcp > 0
    if tcp == "not measured":
        assert "TCP throughput not measured: iperf3 said" in md
