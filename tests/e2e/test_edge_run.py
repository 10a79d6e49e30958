"""warren-edge run: the connector-facing QUIC listener, and the visitor
front's limits against one abusive source.

The real-cloudflared case runs only when CLOUDFLARED=/path/to/cloudflared is
given (CI has no cloudflared); it runs inside a fresh network namespace with
only loopback, because cloudflared 2023.7.3 looks up update and SRV records at
start even with --edge and --no-autoupdate."""
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

from conftest import WARREN, WARREN_EDGE, free_port, run, wait_for


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


# --- --metrics: /metrics, /ready, /healthcheck ----------------------------------------------


def http_get(port, path, host=None, timeout=5):
    """(status, headers, body text) of GET |path| on 127.0.0.1:|port|."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode(errors="replace")
    finally:
        conn.close()


def scrape(port):
    """The samples of /metrics as {'name{labels}': value}, after checking the
    content type and that every sample follows its # TYPE line."""
    status, headers, text = http_get(port, "/metrics")
    assert status == 200, text
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert kind in ("counter", "gauge"), line
            assert not kind == "counter" or name.endswith("_total"), line
            typed.add(name)
        elif line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            assert key.split("{")[0] in typed, f"sample without # TYPE: {line}"
            samples[key] = float(value)
    return samples


def test_run_serves_metrics_ready_and_healthcheck(edge_dir, procs, tmp_path):
    d, creds = edge_dir
    r = run([WARREN_EDGE, "route", "dns", "--data-dir", str(d), "hello", "hello.example.test"])
    assert r.returncode == 0, r.stderr
    udp, http_port, metrics = free_port(kind=2), free_port(), free_port()
    edge = procs([WARREN_EDGE, "run", "--data-dir", str(d), "--tunnel-listen", f"127.0.0.1:{udp}",
                  "--http-listen", f"127.0.0.1:{http_port}", "--api-listen", "127.0.0.1:0",
                  "--metrics", f"127.0.0.1:{metrics}"], name="warren-edge")
    assert edge.wait_output(f"Starting metrics server on 127.0.0.1:{metrics}/metrics", 30) is not None

    status, headers, body = http_get(metrics, "/ready")
    assert status == 200 and headers["Content-Type"] == "application/json", body
    assert json.loads(body) == {"status": 200, "registeredConnections": 0}
    assert http_get(metrics, "/healthcheck")[::2] == (200, "OK\n")
    assert http_get(metrics, "/nothing-here")[0] == 404
    m = scrape(metrics)
    assert m["warren_edge_connector_connections"] == 0
    assert any(k.startswith("warren_edge_build_info{") for k in m)
    # Every family is the edge's or the standard process collector's.
    assert all(k.startswith(("warren_edge_", "process_")) for k in m), sorted(m)

    tid = json.loads(creds.read_text())["TunnelID"]
    procs([WARREN, "tunnel", "--no-autoupdate", "--edge", f"127.0.0.1:{udp}", "--cacert", str(d / "ca.pem"),
           "--protocol", "quic", "--credentials-file", str(creds), "--metrics", f"127.0.0.1:{free_port()}",
           "--hello-world", "run", tid], name="warren")
    assert wait_for(lambda: scrape(metrics)["warren_edge_connector_connections"] == 1, 30)
    before = scrape(metrics)
    assert before[f'warren_edge_tunnel_connector_connections{{tunnel_id="{tid}"}}'] == 1
    assert before["warren_edge_tunnels_connected"] == 1
    assert before["warren_edge_registrations_total"] >= 1
    assert json.loads(http_get(metrics, "/ready")[2])["registeredConnections"] == 1

    status, _, body = http_get(http_port, "/", host="hello.example.test")
    assert status == 200, body
    assert http_get(http_port, "/", host="nothere.example.test")[0] == 404
    after = scrape(metrics)
    assert after["warren_edge_visitor_requests_total"] == before["warren_edge_visitor_requests_total"] + 2
    for cls in ("2xx", "4xx"):
        key = f'warren_edge_visitor_responses_total{{code_class="{cls}"}}'
        assert after[key] == before[key] + 1, cls
    assert after["warren_edge_visitor_no_route_total"] == before["warren_edge_visitor_no_route_total"] + 1
    assert after["warren_edge_visitor_connections_accepted_total"] >= before[
        "warren_edge_visitor_connections_accepted_total"] + 2
    assert after["warren_edge_visitor_received_bytes_total"] > before["warren_edge_visitor_received_bytes_total"]
    assert after["warren_edge_visitor_sent_bytes_total"] > before["warren_edge_visitor_sent_bytes_total"] + len(body)
    # The API and the login pages run (--api-listen), so their families are there.
    assert 'warren_edge_api_responses_total{code_class="2xx"}' in after
    assert 'warren_edge_login_signins_total{result="failure"}' in after
    # No DNS server was asked for: no DNS figures.
    assert not any(k.startswith("warren_edge_dns_") for k in after)


def assert_run_usage_errors(d, cases):
    """Each (extra flags, needle) of |cases|: `warren-edge run` with a minimal
    valid command line plus the flags exits 2 and says |needle| on stderr."""
    base = [WARREN_EDGE, "run", "--data-dir", str(d), "--tunnel-listen", "127.0.0.1:0",
            "--http-listen", "127.0.0.1:0", "--api-listen", ""]
    for extra, needle in cases:
        r = run(base + extra)
        assert r.returncode == 2 and needle in r.stderr, r.stderr


def test_run_flag_errors(edge_dir, tmp_path):
    d, _ = edge_dir
    bad = tmp_path / "bad.yml"
    bad.write_text("metrics: [1, 2]\n")
    assert_run_usage_errors(d, [
        (["--metrics", "nohostport"], '--metrics "nohostport" is not HOST:PORT'),
        (["--loglevel", "loud"], 'unknown --loglevel "loud"'),
        (["--https-listen", "nohostport"], '--https-listen "nohostport" is not HOST:PORT'),
        (["--config", str(tmp_path / "missing.yml")], "missing.yml"),
        (["--config", str(bad)], "bad.yml:1"),
    ])


def test_run_reads_its_flags_from_config(edge_dir, procs, tmp_path):
    d, _ = edge_dir
    metrics = free_port()
    cfg = tmp_path / "edge.yml"
    cfg.write_text(f"data-dir: {d}\ntunnel-listen: 127.0.0.1:0\nhttp-listen: 127.0.0.1:0\n"
                   f"api-listen: ''\nmetrics: 127.0.0.1:{metrics}\nloglevel: debug\n"
                   "ingress:\n  - service: http_status:404\nno-such-flag: 1\n")
    # The command line wins over the file.
    p = procs([WARREN_EDGE, "run", "--config", str(cfg), "--loglevel", "info"], name="warren-edge")
    assert p.wait_output(f"Starting metrics server on 127.0.0.1:{metrics}/metrics", 30) is not None, p.output()
    assert wait_for(lambda: http_get(metrics, "/healthcheck")[0] == 200, 10)
    out = p.output()
    assert "Serving the API" not in out  # api-listen '' from the file
    assert 'unknown key "no-such-flag"; ignored' in out
    assert '"ingress" is a connector setting, not an edge one; ignored' in out
    assert " DBG " not in out


CLOUDFLARED = os.environ.get("CLOUDFLARED")


@pytest.mark.skipif(not CLOUDFLARED or os.geteuid() != 0 or not shutil.which("ip"),
                    reason="needs CLOUDFLARED=/path/to/cloudflared, root and iproute2")
def test_real_cloudflared_registers_and_wrong_secret_is_refused(edge_dir, tmp_path):
    d, creds = edge_dir
    tid = json.load(open(creds))["TunnelID"]
    ns = "wr" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    edge = good = None
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
        # A failed assertion above must not leave the edge or cloudflared running.
        for p in (good, edge):
            if p and p.poll() is None:
                p.kill()
                p.wait(10)
        subprocess.run(["ip", "netns", "del", ns])


# --- visitor limits ------------------------------------------------------------------

def _peek_closed(s):
    """True once the edge closed |s| (EOF or reset), without blocking."""
    try:
        return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _responses(s, want):
    """Reads responses to pipelined requests on |s| until |want| arrived or
    the edge closed; returns [(status, headers dict)]."""
    buf, out = b"", []
    s.settimeout(10)
    while len(out) < want:
        while b"\r\n\r\n" not in buf:
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                return out
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
        n = int(hdrs.get("content-length", "0"))
        while len(buf) < n:
            data = s.recv(65536)
            if not data:
                return out
            buf += data
        buf = buf[n:]
        out.append((int(lines[0].split(" ")[1]), hdrs))
    return out


def test_a_flooding_source_cannot_lock_others_out(edge_dir, procs, tmp_path):
    """One address opens connections as fast as it can and pipelines
    requests; it holds its 5 connections, gets 429s, and another address is
    served through the tunnel all along."""
    d, creds = edge_dir
    r = run([WARREN_EDGE, "route", "dns", "--data-dir", str(d), "hello", "hello.example.test"])
    assert r.returncode == 0, r.stderr
    udp, port, metrics = free_port(socket.SOCK_DGRAM), free_port(), free_port()
    # The limits come from edge.yml, as an operator would set them.
    cfg = tmp_path / "edge.yml"
    cfg.write_text("max-visitor-conns: 20\nmax-conns-per-source: 5\n"
                   "requests-per-second-per-source: 5\nrequest-burst-per-source: 10\n")
    edge = procs([WARREN_EDGE, "run", "--config", str(cfg), "--data-dir", str(d),
                  "--tunnel-listen", f"127.0.0.1:{udp}", "--http-listen", f"127.0.0.1:{port}",
                  "--api-listen", "127.0.0.1:0"])
    assert edge.wait_output("Serving visitors on", 30) is not None
    tid = json.load(open(creds))["TunnelID"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = str(tmp_path)
    procs([WARREN, "tunnel", "--no-autoupdate", "--edge", f"127.0.0.1:{udp}", "--cacert", str(d / "ca.pem"),
           "--protocol", "quic", "--credentials-file", str(creds), "--metrics", f"127.0.0.1:{metrics}",
           "--hello-world", "run", tid], env=env, stop_timeout=30)

    def ready():
        try:
            c = http.client.HTTPConnection("127.0.0.1", metrics, timeout=1)
            c.request("GET", "/ready")
            return c.getresponse().status == 200
        except OSError:
            return False
    assert wait_for(ready, timeout=30)

    held, attempts, stop = [], [0], threading.Event()

    def flood():
        while not stop.is_set():
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            attempts[0] += 1
            try:
                s.connect(("127.0.0.1", port))
            except OSError:
                # Refused connections are reset at once; under load the
                # reset can beat connect()'s return (or the listen queue
                # is full): that is a refusal too.
                s.close()
                continue
            held.append(s)
            for old in [x for x in held if _peek_closed(x)]:
                held.remove(old)
                old.close()
    t = threading.Thread(target=flood)
    t0 = time.monotonic()
    t.start()
    try:
        assert wait_for(lambda: attempts[0] >= 200, timeout=60)
        # Meanwhile another address: served through the tunnel, repeatedly.
        for _ in range(5):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=("127.0.0.3", 0))
            c.request("GET", "/", headers={"Host": "hello.example.test"})
            resp = c.getresponse()
            body = resp.read()
            assert resp.status == 200, body[:300]
            assert re.search(rb"<html|<!doctype html", body, re.I), body[:300]
            c.close()
    finally:
        stop.set()
        t.join()
    # The flood holds exactly its 5 connections; every other one was refused.
    assert wait_for(lambda: sum(not _peek_closed(s) for s in held) == 5, timeout=10)
    live = [s for s in held if not _peek_closed(s)]
    # Pipelined requests past its rate: 429 with Retry-After, then closed.
    req = b"GET / HTTP/1.1\r\nHost: hello.example.test\r\n\r\n"
    live[0].sendall(req * 30)
    got = _responses(live[0], 30)
    assert 0 < len(got) < 30, got
    limited = [h for st, h in got if st == 429]
    assert limited and all(int(h["retry-after"]) >= 1 for h in limited), got
    assert limited[-1].get("connection") == "close", got
    for s in held:
        s.close()
    # Warnings are rate-limited (one per 10 s): not one line per refusal.
    out = edge.output()
    refusals = out.count("refusing connections from 127.0.0.2")
    assert 1 <= refusals <= 2 + (time.monotonic() - t0) // 10, (refusals, attempts[0])
    assert edge.stop(10) == 0


def test_run_visitor_limit_flag_errors(edge_dir):
    d, _ = edge_dir
    assert_run_usage_errors(d, [
        (["--max-visitor-conns", "0"], "--max-visitor-conns must be at least 1"),
        (["--max-conns-per-source", "-1"], "--max-conns-per-source must be at least 0"),
        (["--requests-per-second-per-source", "many"], "invalid value"),
    ])
