"""ACME certificates for the HTTPS visitor front (--acme-directory), against
Pebble, the ACME test server of Let's Encrypt (Debian package pebble)
started on free ports. Pebble resolves names through the edge's own DNS
server (-dnsserver), so the routed hostname leads it to 127.0.0.1, where the
edge answers HTTP-01 on --http-listen or DNS-01 with a TXT record. curl then
verifies the edge's certificate against Pebble's issuing root (from its
management endpoint), as a visitor trusting that CA would."""
import datetime
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import urllib.request

import pytest

from conftest import WARREN_EDGE, free_port, run, wait_for

ZONE = "example.test"
HOST = "app." + ZONE
PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"

pytestmark = pytest.mark.skipif(not os.path.exists(PEBBLE), reason="pebble is not installed")


def pebble_tls(tmp):
    """A self-signed certificate for Pebble's own HTTPS (127.0.0.1)."""
    cert, key = tmp / "pebble-cert.pem", tmp / "pebble-key.pem"
    r = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=pebble",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
    assert r.returncode == 0, r.stderr
    return cert, key


def self_signed(host, before_days, after_days):
    """A certificate and key (PEM text) for |host|, valid from |before_days|
    ago to |after_days| from now."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=before_days))
            .not_valid_after(now + datetime.timedelta(days=after_days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def start(tmp_path, procs, challenge, pebble_http=None, pebble_env=None, loglevel="info", before=None):
    d = tmp_path / "edge"
    assert run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", ZONE]).returncode == 0
    r = run([WARREN_EDGE, "tunnel", "create", "--data-dir", str(d), "--out", str(tmp_path / "t.json"), "t"])
    assert r.returncode == 0, r.stderr
    r = run([WARREN_EDGE, "route", "dns", "--data-dir", str(d), "t", HOST])
    assert r.returncode == 0, r.stderr
    if before:
        before(d)
    udp, http, https, dns = (free_port(kind=socket.SOCK_DGRAM), free_port(), free_port(),
                             free_port(kind=socket.SOCK_DGRAM))
    acme, mgmt, tls, metrics = free_port(), free_port(), free_port(), free_port()
    cert, key = pebble_tls(tmp_path)
    cfg = tmp_path / "pebble.json"
    cfg.write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{acme}", "managementListenAddress": f"127.0.0.1:{mgmt}",
        "certificate": str(cert), "privateKey": str(key), "httpPort": pebble_http or http, "tlsPort": tls,
        "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
    env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", **(pebble_env or {}))
    pebble = procs([PEBBLE, "-config", str(cfg), "-dnsserver", f"127.0.0.1:{dns}"], env=env,
                   name="pebble")
    assert pebble.wait_output("ACME directory available", 30) is not None, pebble.tail()
    edge_env = dict(os.environ, WARREN_TEST_ACME_RETRY_MS="1000")
    edge = procs([WARREN_EDGE, "run", "--data-dir", str(d), "--tunnel-listen", f"127.0.0.1:{udp}",
                  "--http-listen", f"127.0.0.1:{http}", "--https-listen", f"127.0.0.1:{https}",
                  "--dns-listen", f"127.0.0.1:{dns}", "--api-listen", "", "--metrics", f"127.0.0.1:{metrics}",
                  "--acme-directory", f"https://127.0.0.1:{acme}/dir", "--acme-email", "ops@example.test",
                  "--acme-ca-file", str(cert), "--acme-challenge", challenge, "--loglevel", loglevel], env=edge_env, name="warren-edge")
    return {"d": d, "https": https, "http": http, "mgmt": mgmt, "metrics": metrics, "cert": cert, "edge": edge, "pebble": pebble}


def pebble_root(env, tmp_path):
    ctx = ssl.create_default_context(cafile=str(env["cert"]))
    with urllib.request.urlopen(f"https://127.0.0.1:{env['mgmt']}/roots/0", context=ctx, timeout=10) as r:
        root = tmp_path / "pebble-root.pem"
        root.write_bytes(r.read())
    return root


def curl_https(env, root):
    return subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                           "--cacert", str(root), "--resolve", f"{HOST}:{env['https']}:127.0.0.1",
                           f"https://{HOST}:{env['https']}/"], capture_output=True, text=True)


def served_issuer(env):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{env['https']}", "-servername", HOST],
                       input="", capture_output=True, text=True, timeout=20)
    for line in r.stdout.splitlines():
        if line.strip().startswith("i:") or "issuer=" in line:
            return line
    return r.stdout


def check_obtained(env, tmp_path):
    edge = env["edge"]
    assert edge.wait_output(f"ACME: obtained a certificate for {HOST}", 90) is not None, edge.tail()
    d = env["d"]
    # Keys 0600: the account's and the certificate's; the chain is public.
    for f in (d / "acme" / "account.key", d / "acme" / "certs" / f"{HOST}.key"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert (d / "acme" / "certs" / f"{HOST}.pem").exists()
    root = pebble_root(env, tmp_path)
    # The edge picks up the new files within a second or so.
    assert wait_for(lambda: curl_https(env, root).returncode == 0, 15), curl_https(env, root).stderr
    r = curl_https(env, root)
    # No connector runs: the request is answered 502, over a verified TLS session.
    assert r.stdout == "502", r
    assert "Pebble Intermediate" in served_issuer(env)
    # The edge CA is not what is shown any more.
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "--max-time", "10", "--cacert", str(d / "ca.pem"),
                        "--resolve", f"{HOST}:{env['https']}:127.0.0.1", f"https://{HOST}:{env['https']}/"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    listed = json.loads(run([WARREN_EDGE, "cert", "list", "--data-dir", str(d), "-o", "json"]).stdout)
    acme = [c for c in listed if c["type"] == "acme" and c["hosts"] == [HOST]]
    assert len(acme) == 1 and "Pebble Intermediate" in acme[0]["issuer"], listed
    assert HOST in run([WARREN_EDGE, "cert", "list", "--data-dir", str(d)]).stdout
    with urllib.request.urlopen(f"http://127.0.0.1:{env['metrics']}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert "warren_edge_acme_certificates_total 1" in text, text
    assert "warren_edge_acme_challenge_answers_total 0" not in text
    # Keys never reach the log.
    log = edge.output()
    assert "PRIVATE KEY" not in log
    key = (d / "acme" / "certs" / f"{HOST}.key").read_text()
    assert key.splitlines()[1] not in log


def test_http01_certificate_from_pebble(tmp_path, procs):
    env = start(tmp_path, procs, "http-01")
    check_obtained(env, tmp_path)
    assert "no certificate for" not in env["edge"].output()
    # An uploaded certificate for the name wins over the ACME one.
    cert, key = self_signed(HOST, 1, 30)
    (tmp_path / "up.pem").write_text(cert)
    (tmp_path / "up.key").write_text(key)
    r = run([WARREN_EDGE, "cert", "add", "--data-dir", str(env["d"]), "--cert", str(tmp_path / "up.pem"),
             "--key", str(tmp_path / "up.key")])
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: curl_https(env, tmp_path / "up.pem").returncode == 0, 15)


def test_renewal_at_two_thirds_of_the_lifetime(tmp_path, procs):
    """On start, a name whose certificate has used 2/3 of its lifetime gets a
    new one; a name whose certificate is fresh is left alone."""
    other = "www." + ZONE

    def certs(d):
        r = run([WARREN_EDGE, "route", "dns", "--data-dir", str(d), "t", other])
        assert r.returncode == 0, r.stderr
        cdir = d / "acme" / "certs"
        cdir.mkdir(parents=True)
        for host, before, after in ((HOST, 70, 20), (other, 1, 89)):
            cert, key = self_signed(host, before, after)
            (cdir / f"{host}.pem").write_text(cert)
            (cdir / f"{host}.key").write_text(key)
            (cdir / f"{host}.key").chmod(0o600)

    env = start(tmp_path, procs, "http-01", before=certs)
    check_obtained(env, tmp_path)
    log = env["edge"].output()
    assert f"ordering a certificate for {other}" not in log
    assert log.count("ACME: ordering a certificate for") == 1
    # The fresh one is still served (issued by itself, not Pebble).
    with open(env["d"] / "acme" / "certs" / f"{other}.pem") as f:
        assert "BEGIN CERTIFICATE" in f.read()
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "--max-time", "10",
                        "--cacert", str(env["d"] / "acme" / "certs" / f"{other}.pem"),
                        "--resolve", f"{other}:{env['https']}:127.0.0.1", f"https://{other}:{env['https']}/"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_dns01_certificate_from_pebble(tmp_path, procs):
    env = start(tmp_path, procs, "dns-01", loglevel="debug")
    check_obtained(env, tmp_path)
    assert f"ordering a certificate for {HOST} (dns-01)" in env["edge"].output()
    # Pebble's query for the TXT record was answered by the edge's DNS server.
    assert f"_acme-challenge.{HOST} type 16 -> rcode 0" in env["edge"].output()


def test_failure_is_logged_and_retried(tmp_path, procs):
    """Pebble fetches HTTP-01 answers from a port where nothing listens:
    the edge logs the host and the CA's reason, tries again after a wait
    that grows, and keeps serving the edge CA's certificate meanwhile."""
    env = start(tmp_path, procs, "http-01", pebble_http=free_port(),
                pebble_env={"PEBBLE_WFE_NONCEREJECT": "0"})
    edge = env["edge"]
    at = edge.wait_output(f"ACME: no certificate for {HOST}:", 90)
    assert at is not None, edge.tail()
    line = edge.output()[at:].splitlines()[0]
    assert "authorization invalid" in line and "(attempt 1; next in 1 s)" in line, line
    assert edge.wait_output("(attempt 2; next in 2 s)", 60, at) is not None, edge.tail()
    assert not (env["d"] / "acme" / "certs" / f"{HOST}.pem").exists()
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                        "--cacert", str(env["d"] / "ca.pem"), "--resolve", f"{HOST}:{env['https']}:127.0.0.1",
                        f"https://{HOST}:{env['https']}/"], capture_output=True, text=True)
    assert r.stdout == "502", r


def test_flags_checked(tmp_path):
    d = tmp_path / "edge"
    assert run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", ZONE]).returncode == 0
    base = [WARREN_EDGE, "run", "--data-dir", str(d), "--tunnel-listen", "127.0.0.1:0",
            "--http-listen", "127.0.0.1:0", "--api-listen", "", "--acme-directory", "https://127.0.0.1:1/dir"]
    r = run(base)
    assert r.returncode != 0 and "--acme-directory needs --https-listen" in r.stderr, r.stderr
    r = run(base + ["--https-listen", "127.0.0.1:0", "--acme-challenge", "tls-alpn-01"])
    assert r.returncode != 0 and "--acme-challenge takes http-01 or dns-01" in r.stderr, r.stderr
    r = run(base + ["--https-listen", "127.0.0.1:0", "--acme-challenge", "dns-01"])
    assert r.returncode != 0 and "dns-01 needs --dns-listen" in r.stderr, r.stderr
    r = run(base[:-1] + ["not a url", "--https-listen", "127.0.0.1:0"])
    assert r.returncode != 0 and "--acme-directory needs an http:// or https:// URL" in r.stderr, r.stderr
