"""warren-edge run: the connector-facing QUIC listener.

The real-cloudflared case runs only when CLOUDFLARED=/path/to/cloudflared is
given (CI has no cloudflared); it runs inside a fresh network namespace with
only loopback, because cloudflared 2023.7.3 looks up update and SRV records at
start even with --edge and --no-autoupdate."""
import base64
import json
import os
import shutil
import signal
import subprocess
import uuid

import pytest

from conftest import WARREN_EDGE, free_port, run, wait_for


@pytest.fixture
def edge_dir(tmp_path):
    d = tmp_path / "edge"
    r = run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", "example.test"])
    assert r.returncode == 0, r.stderr
    creds = tmp_path / "hello.json"
    r = run([WARREN_EDGE, "tunnel", "create", "--data-dir", str(d), "--out", str(creds), "hello"])
    assert r.returncode == 0, r.stderr
    return d, creds


def test_run_needs_an_initialised_data_dir(tmp_path):
    r = run([WARREN_EDGE, "run", "--data-dir", str(tmp_path / "nope"), "--tunnel-listen", "127.0.0.1:0"])
    assert r.returncode == 1
    assert "warren-edge init" in r.stderr
    r = run([WARREN_EDGE, "run", "--data-dir", str(tmp_path), "--tunnel-listen", "localhost"])
    assert r.returncode == 2
    assert "is not HOST:PORT" in r.stderr


def test_run_listens_and_stops_on_sigterm(edge_dir, procs):
    d, _ = edge_dir
    port = free_port(kind=2)  # SOCK_DGRAM
    p = procs([WARREN_EDGE, "run", "--data-dir", str(d), "--tunnel-listen", f"127.0.0.1:{port}",
               "--http-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"])
    # The UDP port is taken once the edge listens.
    def bound():
        out = subprocess.run(["ss", "-Hlun", f"sport = :{port}"], capture_output=True, text=True).stdout
        return str(port) in out
    assert wait_for(bound, timeout=10)
    p.p.send_signal(signal.SIGTERM)
    assert p.p.wait(10) == 0
    assert "Listening for connectors" in p.output()


CLOUDFLARED = os.environ.get("CLOUDFLARED")


@pytest.mark.skipif(not CLOUDFLARED or os.geteuid() != 0 or not shutil.which("ip"),
                    reason="needs CLOUDFLARED=/path/to/cloudflared, root and iproute2")
def test_real_cloudflared_registers_and_wrong_secret_is_refused(edge_dir, tmp_path):
    d, creds = edge_dir
    tid = json.load(open(creds))["TunnelID"]
    ns = "wr" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        edge = subprocess.Popen(["ip", "netns", "exec", ns, WARREN_EDGE, "run", "--data-dir", str(d),
                                 "--tunnel-listen", "127.0.0.1:7844"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        cf = ["ip", "netns", "exec", ns, CLOUDFLARED, "tunnel", "--no-autoupdate", "--edge", "127.0.0.1:7844",
              "--cacert", str(d / "ca.pem"), "--protocol", "quic", "--metrics", "127.0.0.1:0",
              "--hello-world", "--credentials-file"]
        good = subprocess.Popen(cf + [str(creds), "run", tid], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert wait_for(lambda: "Registered" in run([WARREN_EDGE, "audit", "--data-dir", str(d)]).stdout, 20)
        good.send_signal(signal.SIGTERM)
        out = good.communicate(timeout=40)[0].decode()
        assert "Registered tunnel connection connIndex=0" in out
        assert "location=LOCAL" in out
        audit = run([WARREN_EDGE, "audit", "--data-dir", str(d)]).stdout
        assert "Unregistered" in audit

        bad = tmp_path / "bad.json"
        c = json.load(open(creds))
        c["TunnelSecret"] = base64.b64encode(b"x" * 32).decode()
        bad.write_text(json.dumps(c))
        r = subprocess.run(cf + [str(bad), "run", tid], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1
        assert "invalid account tag or tunnel secret" in r.stdout + r.stderr
        edge.send_signal(signal.SIGTERM)
        edge.wait(10)
    finally:
        subprocess.run(["ip", "netns", "del", ns])
