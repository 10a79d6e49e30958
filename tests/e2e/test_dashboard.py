"""The dashboard (/dashboard on --api-listen) and its traffic inspector,
driven by clicks in headless Chromium (tests/e2e/browser.py): the redirect
to the sign-in and back, a tunnel with its live connection, a DNS route
created and deleted with the forms, a forged POST refused (CSRF), and a
request made with curl through the tunnel shown in the inspector (its
credentials redacted, its body kept with --inspect-bodies) and replayed
to the origin."""
import http.server
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

import browser
from common import QuietHandler, ok
from conftest import WARREN, WARREN_EDGE, free_port, run, wait_for

ZONE = "example.test"
PASSWORD = "correct horse battery staple"


class Origin(http.server.ThreadingHTTPServer):
    """Records every request (method, path, body) it answers."""
    daemon_threads = True

    def __init__(self):
        self.seen = []
        outer = self

        class H(QuietHandler):
            def handle_one(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                outer.seen.append((self.command, self.path, body))
                self.reply(b"origin saw " + body)

            do_GET = do_POST = handle_one
        super().__init__(("127.0.0.1", 0), H)


def post(url, data, headers=None):
    req = urllib.request.Request(url, data=data.encode(), headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture
def stack(tmp_path, procs):
    d = tmp_path / "edge"
    ok(run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", ZONE]))
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    ok(run([WARREN_EDGE, "--data-dir", str(d), "user", "add", "alice@example.test", "--password-file", str(pw)]))
    creds = tmp_path / "t1.json"
    ok(run([WARREN_EDGE, "tunnel", "create", "--data-dir", str(d), "--out", str(creds), "t1"]))
    tid = json.loads(creds.read_text())["TunnelID"]
    ok(run([WARREN_EDGE, "route", "dns", "--data-dir", str(d), "t1", f"app.{ZONE}"]))
    origin = Origin()
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    udp, http_port, api, metrics = free_port(socket.SOCK_DGRAM), free_port(), free_port(), free_port()
    edge = procs([WARREN_EDGE, "run", "--data-dir", str(d), "--tunnel-listen", f"127.0.0.1:{udp}",
                  "--http-listen", f"127.0.0.1:{http_port}", "--api-listen", f"127.0.0.1:{api}",
                  "--metrics", f"127.0.0.1:{metrics}", "--inspect-bodies"], name="warren-edge")
    assert edge.wait_output("and the dashboard on", 30) is not None, edge.tail()
    conn = procs([WARREN, "tunnel", "--no-autoupdate", "--edge", f"127.0.0.1:{udp}",
                  "--cacert", str(d / "ca.pem"), "--protocol", "quic", "--credentials-file", str(creds),
                  "--url", f"http://127.0.0.1:{origin.server_address[1]}", "run", tid], name="warren")

    def served():
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Host: app.{ZONE}",
                            f"http://127.0.0.1:{http_port}/ready-check"], capture_output=True, text=True)
        return r.stdout == "200"
    assert wait_for(served, timeout=30), conn.tail()
    yield {"base": f"http://127.0.0.1:{api}", "http": http_port, "tid": tid, "origin": origin,
           "metrics": f"http://127.0.0.1:{metrics}/metrics"}
    origin.shutdown()
    origin.server_close()


@pytest.mark.skipif(not browser.find_chromium(), reason="needs chromium (scripts/install-deps.sh)")
def test_dashboard_end_to_end(stack, tmp_path):
    base, origin = stack["base"], stack["origin"]
    # Without a session: nothing changes, pages send the browser to the sign-in.
    assert post(f"{base}/dashboard/tunnels/create", "name=evil") == 403
    with browser.Chromium(tmp_path) as b:
        page = b.new_page()
        page.goto(f"{base}/dashboard")
        assert "/argotunnel?next=%2Fdashboard" in page.url()
        assert page.exists("#signin")
        page.fill("#email", "alice@example.test")
        page.fill("#password", PASSWORD)
        page.click_and_wait("#submit")
        assert page.url() == f"{base}/dashboard"
        assert page.text("#user") == "alice@example.test"

        # The tunnel, healthy, with its connection.
        row = 'tr.tunnel[data-name="t1"]'
        assert page.text(f"{row} .status") == "healthy"
        assert page.text(f"{row} .conn .protocol") == "quic"
        assert page.text(f"{row} .conn .origin-ip") == "127.0.0.1"
        assert page.text(f"{row} .conn .version")
        assert page.text(f"{row} .conn .edge")

        # A DNS route, created and deleted with the forms.
        page.click_and_wait("#nav-routes")
        assert page.exists('tr.dns-route[data-host="app.example.test"]')
        page.fill("#dns-hostname", "web")
        page.click_and_wait("#create-dns-button")
        assert "Routed web" in page.text("#msg")
        assert page.exists('tr.dns-route[data-host="web.example.test"]')
        page.eval("window.confirm = () => true")
        page.click_and_wait('tr.dns-route[data-host="web.example.test"] button.delete-route')
        assert page.text("#msg") == "Deleted the DNS route."
        assert not page.exists('tr.dns-route[data-host="web.example.test"]')
        assert page.exists('tr.dns-route[data-host="app.example.test"]')

        # A forged POST (the session's cookie, no token) is refused and changes nothing.
        status = page.eval("fetch('/dashboard/tunnels/create', {method: 'POST', headers: "
                           "{'Content-Type': 'application/x-www-form-urlencoded'}, "
                           "body: 'csrf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&name=evil'}).then(r => r.status)")
        assert status == 403
        page.click_and_wait("#nav-tunnels")
        assert not page.exists('tr.tunnel[data-name="evil"]')

        # A visitor request through the tunnel, in the inspector.
        r = subprocess.run(["curl", "-s", "-H", f"Host: app.{ZONE}", "-H", "Authorization: Bearer s3cret-token",
                            "-H", "Cookie: session=s3cret-cookie", "--data-binary", "hello-body",
                            f"http://127.0.0.1:{stack['http']}/echo?x=1"], capture_output=True, text=True)
        assert r.stdout == "origin saw hello-body"
        page.click_and_wait(f'{row} a.traffic')
        assert page.exists("#charts")
        req = 'tr.request:first-child'
        assert page.text(f"{req} .path") == "/echo?x=1"
        assert page.text(f"{req} .method") == "POST"
        assert page.text(f"{req} .status") == "200"
        page.click_and_wait(f"{req} a.detail")
        headers = page.text("#request-headers")
        assert "Authorization: [redacted]" in headers and "Cookie: [redacted]" in headers
        assert "s3cret" not in page.eval("document.body.innerHTML")
        assert page.text("#request-body") == "hello-body"
        assert page.text("#response-body") == "origin saw hello-body"

        # Replay: the origin sees the request again; the result is recorded.
        page.click_and_wait("button.replay")
        assert "Replaying request" in page.text("#msg")
        assert wait_for(lambda: [s for s in origin.seen if s == ("POST", "/echo?x=1", b"hello-body")][1:], 15)

        def recorded():
            page.goto(page.url())
            return "replayed: 200" in (page.eval("document.body.textContent") or "")
        assert wait_for(recorded, timeout=15)
        # The live charts polled the counters.
        assert wait_for(lambda: page.text("#total-requests") not in (None, "-", "0"), timeout=10)

    # The same per-tunnel counters on --metrics: the readiness probes, the
    # curl request and its replay at least.
    with urllib.request.urlopen(stack["metrics"], timeout=10) as r:
        text = r.read().decode()
    line = [ln for ln in text.splitlines()
            if ln.startswith(f'warren_edge_tunnel_requests_total{{tunnel_id="{stack["tid"]}"}} ')]
    assert line and int(line[0].split()[-1]) >= 3, text[-2000:]
