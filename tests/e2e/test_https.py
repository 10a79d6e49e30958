"""The HTTPS visitor front (--https-listen) through a real tunnel: certificates
by SNI (issued by the edge CA, or uploaded with `warren-edge cert add`), the
unrecognized_name refusal, 421 on a Host that is not the SNI, and the
per-zone options (always_use_https, HSTS, minimum TLS version) set with
`warren-edge zone set`. curl is the client, as a visitor's would be."""
import json
import os
import socket
import shutil
import ssl
import tempfile
import subprocess
import threading
import urllib.error
import urllib.request
import time
from http.server import ThreadingHTTPServer

import pytest

from browser import Chromium, find_chromium
from common import QuietHandler, read_cert
from conftest import WARREN, WARREN_EDGE, free_port, run, wait_for

ZONE = "example.test"
HOST = "app." + ZONE


class Origin(QuietHandler):
    def do_GET(self):
        self.reply(f"origin saw {self.path} host={self.headers.get('Host')}".encode())


class BigBacklogServer(ThreadingHTTPServer):
    # Many streams at once become as many origin connections at once: the
    # default backlog of 5 would drop SYNs and stall them for seconds.
    request_queue_size = 256
    daemon_threads = True


@pytest.fixture
def setup(tmp_path, procs):
    yield from edge_env(tmp_path, procs, Origin)


def edge_env(tmp_path, procs, handler, extra=()):
    """An edge with --https-listen and a connector serving |handler| (a
    BaseHTTPRequestHandler class) at https://HOST; yields the env dict."""
    d = tmp_path / "edge"
    assert run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", ZONE]).returncode == 0
    creds = tmp_path / "t.json"
    r = run([WARREN_EDGE, "tunnel", "create", "--data-dir", str(d), "--out", str(creds), "t"])
    assert r.returncode == 0, r.stderr
    r = run([WARREN_EDGE, "route", "dns", "--data-dir", str(d), "t", HOST])
    assert r.returncode == 0, r.stderr
    origin = BigBacklogServer(("127.0.0.1", 0), handler)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    udp, http_port, https_port, api = free_port(kind=socket.SOCK_DGRAM), free_port(), free_port(), free_port()
    metrics = free_port()
    edge = procs([WARREN_EDGE, "run", "--data-dir", str(d), "--tunnel-listen", f"127.0.0.1:{udp}",
                  "--http-listen", f"127.0.0.1:{http_port}", "--https-listen", f"127.0.0.1:{https_port}",
                  "--api-listen", f"127.0.0.1:{api}", "--metrics", f"127.0.0.1:{metrics}", *extra],
                 name="warren-edge")
    assert edge.wait_output(f"Serving visitors on https://127.0.0.1:{https_port}", 30) is not None
    tid = json.loads(creds.read_text())["TunnelID"]
    procs([WARREN, "tunnel", "--no-autoupdate", "--edge", f"127.0.0.1:{udp}", "--cacert", str(d / "ca.pem"),
           "--credentials-file", str(creds), "--url", f"http://127.0.0.1:{origin.server_address[1]}",
           "run", tid], name="warren")
    env = {"d": d, "http": http_port, "https": https_port, "api": api, "metrics": metrics}
    assert wait_for(lambda: curl(env, HOST, "/")[0] == 200, 30)
    yield env
    origin.shutdown()


def curl(env, host, path, cacert=None, extra=()):
    """(status, headers text, body, stderr) of curl over HTTPS to |host|;
    status 0 when the TLS handshake (or anything else) failed."""
    with tempfile.TemporaryDirectory() as t:
        hf, bf = os.path.join(t, "h"), os.path.join(t, "b")
        r = subprocess.run(["curl", "-sS", "-D", hf, "-o", bf, "--max-time", "10",
                            "--cacert", str(cacert or env["d"] / "ca.pem"),
                            "--resolve", f"{host}:{env['https']}:127.0.0.1", *extra,
                            f"https://{host}:{env['https']}{path}"], capture_output=True, text=True)
        if r.returncode != 0:
            return 0, "", "", r.stderr
        head, body = open(hf).read(), open(bf).read()
    return int(head.split()[1]), head, body, r.stderr


def test_edge_ca_certificate_and_origin_answer(setup):
    status, head, body, _ = curl(setup, HOST, "/hello?x=1")
    assert status == 200
    assert body == f"origin saw /hello?x=1 host={HOST}:{setup['https']}"
    # The certificate is the edge CA's, for this name only.
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{setup['https']}",
                        "-servername", HOST, "-CAfile", str(setup["d"] / "ca.pem"), "-alpn", "h2,http/1.1"],
                       # the edge's first HTTP/2 frames may be printed too: binary
                       input="", capture_output=True, text=True, errors="replace", timeout=20)
    assert "Verify return code: 0 (ok)" in r.stdout
    assert "ALPN protocol: h2" in r.stdout  # preferred over http/1.1
    assert "Warren Edge CA" in r.stdout


def test_unknown_sni_refused_with_unrecognized_name(setup):
    status, _, _, err = curl(setup, "nope." + ZONE, "/")
    assert status == 0
    assert "unrecognized name" in err
    # Python's client sees the same alert, never a certificate.
    ctx = ssl.create_default_context(cafile=str(setup["d"] / "ca.pem"))
    with socket.create_connection(("127.0.0.1", setup["https"]), timeout=10) as s:
        with pytest.raises(ssl.SSLError) as e:
            ctx.wrap_socket(s, server_hostname="other.tenant.test")
    assert "UNRECOGNIZED_NAME" in str(e.value)
    # Both refusals and the fixture's handshakes are counted on /metrics.
    with urllib.request.urlopen(f"http://127.0.0.1:{setup['metrics']}/metrics", timeout=10) as r:
        text = r.read().decode()
    counts = {ln.split('"')[1]: int(ln.split()[-1]) for ln in text.splitlines()
              if ln.startswith("warren_edge_tls_handshakes_total{")}
    assert counts["refused"] >= 2 and counts["ok"] >= 1, counts
    assert "warren_edge_https_requests_total " in text


def test_host_not_sni_is_421(setup):
    status, _, _, _ = curl(setup, HOST, "/", extra=("-H", "Host: other." + ZONE))
    assert status == 421


def test_uploaded_certificate_wins(setup, tmp_path):
    key, pem = tmp_path / "up.key", tmp_path / "up.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(pem), "-days", "30", "-subj", "/CN=Operator",
                    "-addext", f"subjectAltName=DNS:*.{ZONE}"], check=True, capture_output=True)
    r = run([WARREN_EDGE, "cert", "add", "--data-dir", str(setup["d"]), "--cert", str(pem), "--key", str(key)])
    assert r.returncode == 0, r.stderr
    cid = r.stdout.split()[2]
    keyfile = setup["d"] / "certs" / f"{cid}.key"
    assert os.stat(keyfile).st_mode & 0o777 == 0o600
    assert key.read_text() not in r.stdout + r.stderr
    listed = json.loads(run([WARREN_EDGE, "cert", "list", "--data-dir", str(setup["d"]), "-o", "json"]).stdout)
    assert [c["hosts"] for c in listed] == [[f"*.{ZONE}"]]
    # Served instead of the edge CA's: only the operator's cert verifies now.
    assert wait_for(lambda: curl(setup, HOST, "/", cacert=pem)[0] == 200, 10)
    assert curl(setup, HOST, "/")[0] == 0
    # Deleted: the edge CA's again.
    assert run([WARREN_EDGE, "cert", "delete", "--data-dir", str(setup["d"]), cid]).returncode == 0
    assert not keyfile.exists()
    assert wait_for(lambda: curl(setup, HOST, "/")[0] == 200, 10)


def zone_set(setup, *flags):
    r = run([WARREN_EDGE, "zone", "set", "--data-dir", str(setup["d"]), ZONE, *flags, "-o", "json"])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_always_use_https_and_hsts(setup):
    plain = lambda: subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "-H", f"Host: {HOST}",
                                    f"http://127.0.0.1:{setup['http']}/p?q=1"], capture_output=True, text=True).stdout
    assert plain().startswith("HTTP/1.1 200")
    s = zone_set(setup, "--always-use-https", "on", "--hsts", "on", "--hsts-max-age", "600",
                 "--hsts-include-subdomains", "on")
    assert s["always_use_https"] is True and s["strict_transport_security"]["max_age"] == 600
    assert wait_for(lambda: plain().startswith("HTTP/1.1 301"), 10)
    assert f"Location: https://{HOST}:{setup['https']}/p?q=1" in plain()
    # curl speaks HTTP/2 here: field names arrive in lower case.
    assert wait_for(lambda: "strict-transport-security: max-age=600; includesubdomains" in curl(setup, HOST, "/")[1].lower(), 10)


def test_min_tls_13_refuses_tls12_client(setup):
    assert curl(setup, HOST, "/", extra=("--tls-max", "1.2"))[0] == 200
    zone_set(setup, "--min-tls-version", "1.3")
    assert wait_for(lambda: curl(setup, HOST, "/", extra=("--tls-max", "1.2"))[0] == 0, 10)
    assert curl(setup, HOST, "/")[0] == 200


def api(env, method, path, body=None):
    zone, _, token = read_cert(env["d"] / "cert.pem")
    req = urllib.request.Request(f"http://127.0.0.1:{env['api']}/client/v4/zones/{zone}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_api_zone_settings_and_custom_certificates(setup, tmp_path):
    st, j = api(setup, "GET", "/settings/always_use_https")
    assert st == 200 and j["result"]["value"] == "off"
    st, j = api(setup, "PATCH", "/settings/security_header",
                {"value": {"strict_transport_security": {"enabled": True, "max_age": 300}}})
    assert st == 200 and j["result"]["value"]["strict_transport_security"]["max_age"] == 300
    assert api(setup, "PATCH", "/settings/min_tls_version", {"value": "1.1"})[0] == 400
    assert wait_for(lambda: "strict-transport-security: max-age=300" in curl(setup, HOST, "/")[1].lower(), 10)
    key, pem = tmp_path / "k", tmp_path / "c"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(pem), "-days", "30", "-subj", "/CN=Op",
                    "-addext", f"subjectAltName=DNS:{HOST}"], check=True, capture_output=True)
    st, j = api(setup, "POST", "/custom_certificates", {"certificate": pem.read_text(), "private_key": key.read_text()})
    assert st == 200, j
    cid = j["result"]["id"]
    assert j["result"]["hosts"] == [HOST] and "private_key" not in j["result"]
    assert [c["id"] for c in api(setup, "GET", "/custom_certificates")[1]["result"]] == [cid]
    assert wait_for(lambda: curl(setup, HOST, "/", cacert=pem)[0] == 200, 10)
    assert api(setup, "DELETE", f"/custom_certificates/{cid}")[0] == 200
    assert api(setup, "GET", f"/custom_certificates/{cid}")[0] == 404


@pytest.mark.skipif(not find_chromium() or not shutil.which("certutil"),
                    reason="needs chromium and certutil (libnss3-tools)")
def browser_trusting_edge_ca(setup, tmp_path):
    """A headless Chromium that trusts the edge CA and resolves HOST to 127.0.0.1."""
    # Chromium on Linux trusts what the NSS database in $HOME/.pki/nssdb says.
    home = tmp_path / "browser-home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "warren-edge-ca",
                    "-i", str(setup["d"] / "ca.pem")], check=True, capture_output=True)
    return Chromium(tmp_path, args=[f"--host-resolver-rules=MAP {HOST} 127.0.0.1"], env={"HOME": str(home)})


def test_browser_loads_page_over_https_trusting_the_edge_ca(setup, tmp_path):
    with browser_trusting_edge_ca(setup, tmp_path) as b:
        page = b.new_page()
        page.goto(f"https://{HOST}:{setup['https']}/from-browser")
        assert page.eval("document.body.innerText") == f"origin saw /from-browser host={HOST}:{setup['https']}"
        # ALPN chose HTTP/2 (visitor_h2.c).
        assert page.eval("performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
        assert page.eval("location.protocol") == "https:"
