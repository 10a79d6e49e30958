"""`warren access login | token | curl` against a warren-edge.

`access login URL` finds the application (401 with CF-Access-Aud and
CF-Access-Domain), "opens the browser" (a fake xdg-open that records the
URL), and headless Chromium then does what a user does: the app host's
/cdn-cgi/access/cli sends it to the team domain's sign-in form, the user
signs in, and the edge hands the app token to the waiting command
(/cdn-cgi/access/transfer/KEY). The token lands where cloudflared keeps it
(~/.cloudflared/<domain>-<aud>-token, 0600), `access token -app=URL` prints
it, `access curl URL` reaches the origin with it, and a second login reuses
it without a browser."""
import json
import os
import stat
import sys
import time

import pytest

from browser import Chromium, find_chromium
from conftest import WARREN, run, wait_for
from test_access import (APP, PASSWORD, ZONE, edge, make_app, origin, start_connector,  # noqa: F401
                         verify_jwt, visit)


def fake_xdg_open(tmp_path):
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    script = d / "xdg-open"
    script.write_text(f"#!{sys.executable}\nimport sys\nopen({str(tmp_path / 'opened-url')!r}, 'w').write(sys.argv[1])\n")
    script.chmod(0o755)
    return d


def cli_env(tmp_path, edge):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return home, {"HOME": str(home), "PATH": f"{fake_xdg_open(tmp_path)}:/usr/bin:/bin",
                  "WARREN_ACCESS_EDGE_URL": f"http://127.0.0.1:{edge.http}"}


def test_access_login_token_curl(edge, procs, tmp_path, origin):
    if not find_chromium():
        pytest.skip("no chromium")
    start_connector(edge, procs, tmp_path, origin)
    app = make_app(edge)
    edge.ok("POST", edge.acct(f"/access/apps/{app['id']}/policies"),
            {"name": "staff", "decision": "allow", "include": [{"email_domain": {"domain": ZONE}}]})
    home, env = cli_env(tmp_path, edge)
    url = f"http://{APP}:{edge.http}/"
    # No token yet.
    r = run([WARREN, "access", "token", f"-app={url}"], env=env)
    assert r.returncode == 1 and "Please run login command" in r.stderr, r
    login = procs.start([WARREN, "access", "login", url], name="access-login", env=env)
    opened = tmp_path / "opened-url"
    assert wait_for(opened.exists, 30), login.tail()
    cli_url = opened.read_text()
    assert cli_url.startswith(f"http://{APP}:{edge.http}/cdn-cgi/access/cli?aud={app['aud']}&"), cli_url
    assert "edge_token_transfer=true" in cli_url and "&token=" in cli_url
    with Chromium(tmp_path, args=[f"--host-resolver-rules=MAP {APP} 127.0.0.1"]) as b:
        page = b.new_page()
        page.goto(cli_url)
        assert page.exists("input[name=password]"), page.url()
        page.fill("input[name=email]", "alice@example.test")
        page.fill("input[name=password]", PASSWORD)
        page.click_and_wait("button[type=submit]")
        assert "the command line has your token" in page.text("h1"), page.url()
    assert login.wait(60) == 0, login.tail()
    out = login.output()
    assert "Successfully fetched your token:" in out, out
    path = home / ".cloudflared" / f"{APP}-{app['aud']}-token"
    tok = path.read_text()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert tok in out
    _, _, certs = visit(edge.http, APP, path="/cdn-cgi/access/certs")
    claims = verify_jwt(tok, json.loads(certs), app["aud"], f"http://127.0.0.1:{edge.api}")
    assert claims["email"] == "alice@example.test"
    # The hand-off gives the token once.
    status, _, _ = visit(edge.http, APP, path="/cdn-cgi/access/transfer/" + cli_url.rsplit("token=", 1)[1])
    assert status == 404
    # access token prints it as it is stored.
    r = run([WARREN, "access", "token", f"-app={url}"], env=env)
    assert r.returncode == 0 and r.stdout == tok, r
    # access curl: curl's own arguments pass through; the origin gets an app token for alice.
    r = run([WARREN, "access", "curl", url + "echo?x=1", "-s", "-H", "X-Test: 1"], env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert seen["path"] == "/echo?x=1" and seen["headers"]["x-test"] == "1"
    assert verify_jwt(seen["headers"]["cf-access-jwt-assertion"], json.loads(certs), app["aud"],
                      f"http://127.0.0.1:{edge.api}")["email"] == "alice@example.test"
    # A second login reuses the stored token: no browser.
    opened.unlink()
    r = run([WARREN, "access", "login", url], env=env, timeout=60)
    assert r.returncode == 0 and tok in r.stdout and not opened.exists(), r
    # A token the edge does not take (here: not a token of this edge) is dropped, and
    # curl --allow-request then runs without one.
    path.write_text(tok.rsplit(".", 1)[0] + ".AAAA")
    r = run([WARREN, "access", "curl", "--allow-request", url, "-s", "-o", "/dev/null", "-w", "%{http_code}"],
            env=env, timeout=60)
    assert r.returncode == 0 and r.stdout == "401", r
    assert not path.exists()


def test_access_login_without_an_app(edge, procs, tmp_path, origin):
    start_connector(edge, procs, tmp_path, origin)
    _, env = cli_env(tmp_path, edge)
    r = run([WARREN, "access", "login", f"http://{APP}:{edge.http}/"], env=env, timeout=30)
    assert r.returncode == 1 and "failed to find Access application" in r.stderr, r
    r = run([WARREN, "access", "login"], env=env)
    assert r.returncode == 2 and "Please provide the url" in r.stderr, r
    # The hand-off refuses a visitor without a token: sign in first.
    app = make_app(edge)
    time.sleep(1.2)  # the gate caches a host's apps for a second
    status, hdrs, _ = visit(edge.http, APP, path=f"/cdn-cgi/access/cli?aud={app['aud']}&token={'A' * 43}")
    assert status == 302 and "/cdn-cgi/access/login/" + APP in hdrs["location"], hdrs
    assert "redirect_url=http%3A%2F%2F" + APP in hdrs["location"] and "cli%3Faud%3D" in hdrs["location"]
