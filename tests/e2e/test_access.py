"""Access end to end: an application and its policies made through the API,
then visitors through the edge's visitor front to a warren connector and a
local origin that echoes the headers it got.

- no identity: 401 for a client that does not ask for HTML, 302 to the
  team domain's sign-in page for a browser;
- a service token: the origin answers and sees Cf-Access-Jwt-Assertion, an
  RS256 JWT that verifies (here, with python3-cryptography) against the JWK
  set at /cdn-cgi/access/certs, with the app's aud and the token's
  common_name;
- a denied email: 403; the browser flow with the edge's own users (form,
  /cdn-cgi/access/authorized, the CF_Authorization cookie), logout;
- the connector with originRequest.access.required refuses requests
  without a token, with a forged one, and accepts the edge's."""
import base64
import http.client
import json
import os
import re
import socket
import time
import urllib.parse

import pytest

from common import QuietHandler, read_cert, serve_http
from conftest import WARREN, WARREN_EDGE, free_port, run, wait_for

cryptography = pytest.importorskip("cryptography")
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402

ZONE = "example.test"
APP = f"app.{ZONE}"
GUARDED = f"guarded.{ZONE}"
PASSWORD = "correct horse battery"
SECRET_B64 = base64.b64encode(bytes(range(32))).decode()


class EchoHandler(QuietHandler):
    """Answers every request with the request's headers as JSON."""

    def do_GET(self):
        self.reply(json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode(),
                   content_type="application/json")


@pytest.fixture
def origin():
    with serve_http(EchoHandler) as srv:
        yield srv.server_address[1]


class Edge:
    def __init__(self, d, api, http, udp, proc, zone, account, token):
        self.dir, self.api, self.http, self.udp, self.proc = d, api, http, udp, proc
        self.zone, self.account, self.token = zone, account, token

    def call(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.api, timeout=15)
        h = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c.request(method, "/client/v4" + path, body=data, headers=h)
        r = c.getresponse()
        j = json.loads(r.read())
        c.close()
        return r.status, j

    def ok(self, method, path, body=None):
        status, j = self.call(method, path, body)
        assert status == 200 and j["success"], (method, path, status, j)
        return j["result"]

    def acct(self, rest):
        return f"/accounts/{self.account}{rest}"


def visit(port, host, path="/", headers=None, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    h = {"Host": host}
    h.update(headers or {})
    c.request(method, path, headers=h)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_jwt(token, jwks, aud, iss):
    """Checks an RS256 JWT against a JWK set independently of the edge."""
    h64, p64, s64 = token.split(".")
    header = json.loads(b64url(h64))
    assert header["alg"] == "RS256"
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    pub = rsa.RSAPublicNumbers(int.from_bytes(b64url(key["e"]), "big"),
                               int.from_bytes(b64url(key["n"]), "big")).public_key()
    pub.verify(b64url(s64), f"{h64}.{p64}".encode(), padding.PKCS1v15(), hashes.SHA256())
    claims = json.loads(b64url(p64))
    assert aud in claims["aud"], claims
    assert claims["iss"] == iss, claims
    assert claims["iat"] <= time.time() + 60 < claims["exp"] + 60, claims
    assert claims["type"] == "app"
    return claims


@pytest.fixture
def edge(tmp_path, procs):
    d = tmp_path / "edge"
    r = run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", ZONE])
    assert r.returncode == 0, r.stderr
    for email in ("alice@example.test", "mallory@example.test"):
        r = run([WARREN_EDGE, "user", "add", "--data-dir", str(d), email], env={"WARREN_EDGE_PASSWORD": PASSWORD})
        assert r.returncode == 0, r.stderr
    api, httpp, udp = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    p = procs.start([WARREN_EDGE, "run", "--data-dir", str(d), "--tunnel-listen", f"127.0.0.1:{udp}",
                     "--http-listen", f"127.0.0.1:{httpp}", "--api-listen", f"127.0.0.1:{api}"], name="warren-edge")
    assert p.wait_output("Listening for connectors", 30) is not None, p.tail()

    def up():
        try:
            with socket.create_connection(("127.0.0.1", api), timeout=0.2):
                return True
        except OSError:
            return False
    assert wait_for(up, 30), p.tail()
    zone, account, token = read_cert(d / "cert.pem")
    return Edge(d, api, httpp, udp, p, zone, account, token)


def start_connector(edge, procs, tmp_path, origin_port, access=None):
    """A tunnel routed for APP and GUARDED, served by warren with a config
    whose GUARDED rule has originRequest.access = |access|."""
    t = edge.ok("POST", edge.acct("/cfd_tunnel"), {"name": "acc", "tunnel_secret": SECRET_B64})
    for host in (APP, GUARDED):
        edge.ok("PUT", f"/zones/{edge.zone}/tunnels/{t['id']}/routes",
                {"type": "dns", "user_hostname": host, "overwrite_existing": True})
    creds = tmp_path / "acc.json"
    creds.write_text(json.dumps({"AccountTag": edge.account, "TunnelSecret": SECRET_B64, "TunnelID": t["id"]}))
    guarded = {"hostname": GUARDED, "service": f"http://127.0.0.1:{origin_port}"}
    if access:
        guarded["originRequest"] = {"access": access}
    cfg = tmp_path / "config.yml"
    cfg.write_text(json.dumps({"tunnel": t["id"], "credentials-file": str(creds), "ingress": [
        guarded, {"hostname": APP, "service": f"http://127.0.0.1:{origin_port}"}, {"service": "http_status:404"}]}))
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = str(home)
    env["WARREN_ACCESS_CERTS_URL"] = f"http://127.0.0.1:{edge.api}/cdn-cgi/access/certs"
    env["WARREN_ACCESS_ISSUER"] = f"http://127.0.0.1:{edge.api}"
    conn = procs.start([WARREN, "tunnel", "--no-autoupdate", "--config", str(cfg), "--edge", f"127.0.0.1:{edge.udp}",
                        "--cacert", str(edge.dir / "ca.pem"), "--protocol", "quic", "--metrics",
                        f"127.0.0.1:{free_port()}", "run", t["id"]], name="warren", env=env, stop_timeout=30)
    assert wait_for(lambda: len(edge.ok("GET", edge.acct(f"/cfd_tunnel/{t['id']}/connections"))) == 1, 30), conn.tail()
    return conn


def make_app(edge, domain=APP):
    app = edge.ok("POST", edge.acct("/access/apps"),
                  {"name": "app", "domain": domain, "type": "self_hosted", "session_duration": "1h"})
    assert app["domain"] == domain and len(app["aud"]) == 64 and app["session_duration"] == "1h"
    return app


def test_api_shapes_and_errors(edge):
    app = make_app(edge)
    assert edge.ok("GET", edge.acct(f"/access/apps/{app['id']}"))["aud"] == app["aud"]
    assert [a["id"] for a in edge.ok("GET", edge.acct("/access/apps"))] == [app["id"]]
    status, j = edge.call("POST", edge.acct("/access/apps"), {"name": "dup", "domain": APP})
    assert status == 409, j
    status, j = edge.call("POST", edge.acct(f"/access/apps/{app['id']}/policies"),
                          {"name": "p", "decision": "maybe", "include": [{"everyone": {}}]})
    assert status == 400 and "decision" in j["errors"][0]["message"], j
    status, j = edge.call("POST", edge.acct(f"/access/apps/{app['id']}/policies"),
                          {"name": "p", "decision": "allow", "include": [{"ip": {"ip": "300.1.1.1"}}]})
    assert status == 400, j
    grp = edge.ok("POST", edge.acct("/access/groups"),
                  {"name": "staff", "include": [{"email_domain": {"domain": "example.test"}}]})
    pol = edge.ok("POST", edge.acct(f"/access/apps/{app['id']}/policies"),
                  {"name": "staff", "decision": "allow", "include": [{"group": {"id": grp["id"]}}]})
    assert pol["decision"] == "allow" and pol["include"] == [{"group": {"id": grp["id"]}}]
    tok = edge.ok("POST", edge.acct("/access/service_tokens"), {"name": "ci"})
    assert tok["client_id"].endswith(".access") and len(tok["client_secret"]) == 64
    # The secret is in the create answer only.
    assert "client_secret" not in edge.ok("GET", edge.acct(f"/access/service_tokens/{tok['id']}"))
    # Changes are audited.
    logs = edge.ok("GET", edge.acct("/audit_logs?action=access."))
    assert {"access.app.create", "access.policy.create", "access.group.create",
            "access.service_token.create"} <= {r["action"] for r in logs}
    # Key rotation: a new key; the old one stays in the store, published.
    _, _, certs = visit(edge.api, f"127.0.0.1:{edge.api}", path="/cdn-cgi/access/certs")
    old_kid = json.loads(certs)["keys"][0]["kid"]
    rot = edge.ok("POST", edge.acct("/access/keys/rotate"))
    assert rot["kid"] != old_kid and rot["published_keys"] == 2, rot
    # Deleting the app deletes its policies.
    edge.ok("DELETE", edge.acct(f"/access/apps/{app['id']}"))
    status, _ = edge.call("GET", edge.acct(f"/access/apps/{app['id']}/policies/{pol['id']}"))
    assert status == 404


def test_service_token_identity_and_jwt(edge, procs, tmp_path, origin):
    start_connector(edge, procs, tmp_path, origin)
    # Before any app, the host is open.
    status, _, body = visit(edge.http, APP)
    assert status == 200 and "cf-access-jwt-assertion" not in json.loads(body)["headers"]
    app = make_app(edge)
    tok = edge.ok("POST", edge.acct("/access/service_tokens"), {"name": "ci"})
    edge.ok("POST", edge.acct(f"/access/apps/{app['id']}/policies"),
            {"name": "ci", "decision": "non_identity", "include": [{"service_token": {"token_id": tok["id"]}}]})
    time.sleep(1.2)  # the gate caches a host's apps for a second
    status, hdrs, _ = visit(edge.http, APP)
    assert status == 401 and hdrs["cf-access-aud"] == app["aud"], (status, hdrs)
    status, hdrs, _ = visit(edge.http, APP, headers={"Accept": "text/html"})
    assert status == 302 and "/cdn-cgi/access/login/" + APP in hdrs["location"], hdrs
    # A wrong secret is no identity; a forged assertion from the visitor is dropped.
    status, _, _ = visit(edge.http, APP, headers={"CF-Access-Client-Id": tok["client_id"],
                                                 "CF-Access-Client-Secret": "0" * 64})
    assert status == 401
    status, _, body = visit(edge.http, APP, path="/x?y=1", headers={
        "CF-Access-Client-Id": tok["client_id"], "CF-Access-Client-Secret": tok["client_secret"],
        "Cf-Access-Jwt-Assertion": "forged"})
    assert status == 200, body
    seen = json.loads(body)
    assert seen["path"] == "/x?y=1"
    jwt = seen["headers"]["cf-access-jwt-assertion"]
    assert jwt != "forged"
    status, _, certs = visit(edge.http, APP, path="/cdn-cgi/access/certs")
    assert status == 200
    jwks = json.loads(certs)
    assert jwks["keys"] and jwks["public_cert"]["kid"] == jwks["keys"][0]["kid"]
    assert "BEGIN CERTIFICATE" in jwks["public_certs"][0]["cert"]
    claims = verify_jwt(jwt, jwks, app["aud"], f"http://127.0.0.1:{edge.api}")
    assert claims["common_name"] == tok["client_id"]
    # The team domain serves the same keys.
    status, _, team_certs = visit(edge.api, f"127.0.0.1:{edge.api}", path="/cdn-cgi/access/certs")
    assert status == 200 and json.loads(team_certs)["keys"] == jwks["keys"]


def test_browser_sign_in_and_denied_email(edge, procs, tmp_path, origin):
    start_connector(edge, procs, tmp_path, origin)
    app = make_app(edge)
    edge.ok("POST", edge.acct(f"/access/apps/{app['id']}/policies"),
            {"name": "nope", "decision": "deny", "include": [{"email": {"email": "mallory@example.test"}}]})
    edge.ok("POST", edge.acct(f"/access/apps/{app['id']}/policies"),
            {"name": "staff", "decision": "allow", "include": [{"email_domain": {"domain": "example.test"}}]})

    def sign_in(email, password=PASSWORD):
        status, hdrs, _ = visit(edge.http, APP, path="/page", headers={"Accept": "text/html"})
        assert status == 302, status
        login = urllib.parse.urlsplit(hdrs["location"])
        assert login.netloc == f"127.0.0.1:{edge.api}"
        status, fh, form = visit(edge.api, login.netloc, path=f"{login.path}?{login.query}")
        assert status == 200 and b'name="password"' in form
        # The form is tied to this browser's pre-session cookie by its csrf field.
        presession = fh["set-cookie"].split(";")[0]
        csrf = re.search(rb'name="csrf" value="([^"]+)"', form).group(1).decode()
        q = urllib.parse.parse_qs(login.query)
        fields = {"kid": q["kid"][0], "redirect_url": q["redirect_url"][0], "email": email, "password": password}

        def post(cookie, token):
            c = http.client.HTTPConnection("127.0.0.1", edge.api, timeout=30)
            h = {"Content-Type": "application/x-www-form-urlencoded"}
            if cookie:
                h["Cookie"] = cookie
            c.request("POST", login.path, body=urllib.parse.urlencode({**fields, "csrf": token}), headers=h)
            r = c.getresponse()
            page = r.read()
            c.close()
            return r.status, r.getheader("Location"), page
        # Without the cookie, or with another browser's: refused before any password check.
        for cookie in (None, "CF_Access_Presession=" + "A" * 43):
            status, _, page = post(cookie, csrf)
            assert status == 403 and b"This form has expired" in page, (status, page)
        status, loc, _ = post(presession, csrf)
        return status, loc

    status, _ = sign_in("alice@example.test", "wrong password!")
    assert status == 403
    status, loc = sign_in("alice@example.test")
    assert status == 302, status
    back = urllib.parse.urlsplit(loc)
    assert back.netloc == APP and back.path == "/cdn-cgi/access/authorized"
    status, hdrs, _ = visit(edge.http, APP, path=f"{back.path}?{back.query}")
    assert status == 302 and hdrs["location"] == f"http://{APP}/page", hdrs
    cookie = hdrs["set-cookie"].split(";")[0]
    assert cookie.startswith("CF_Authorization=") and "HttpOnly" in hdrs["set-cookie"]
    status, _, body = visit(edge.http, APP, path="/page", headers={"Cookie": f"a=b; {cookie}"})
    assert status == 200, body
    jwt = json.loads(body)["headers"]["cf-access-jwt-assertion"]
    _, _, certs = visit(edge.http, APP, path="/cdn-cgi/access/certs")
    claims = verify_jwt(jwt, json.loads(certs), app["aud"], f"http://127.0.0.1:{edge.api}")
    assert claims["email"] == "alice@example.test" and claims["sub"]
    # A tampered cookie is no identity.
    status, _, _ = visit(edge.http, APP, headers={"Cookie": cookie[:-4] + "AAAA"})
    assert status == 401
    # Logout clears the cookie.
    status, hdrs, _ = visit(edge.http, APP, path="/cdn-cgi/access/logout", headers={"Cookie": cookie})
    assert status == 200 and "Max-Age=0" in hdrs["set-cookie"]
    # mallory signs in but a deny policy matches.
    status, loc = sign_in("mallory@example.test")
    assert status == 302
    back = urllib.parse.urlsplit(loc)
    _, hdrs, _ = visit(edge.http, APP, path=f"{back.path}?{back.query}")
    cookie = hdrs["set-cookie"].split(";")[0]
    status, _, body = visit(edge.http, APP, headers={"Cookie": cookie})
    assert status == 403 and b"denied" in body
    logs = edge.ok("GET", edge.acct("/audit_logs?action=access."))
    assert {"access.login", "access.deny"} <= {r["action"] for r in logs}


def connector_log(procs):
    return "".join(p.tail() for p in procs.procs if p.name == "warren")


def test_connector_requires_the_edges_token(edge, procs, tmp_path, origin):
    app = make_app(edge, GUARDED)
    other = make_app(edge, "other." + ZONE)
    tok = edge.ok("POST", edge.acct("/access/service_tokens"), {"name": "ci"})
    for a in (app, other):
        edge.ok("POST", edge.acct(f"/access/apps/{a['id']}/policies"),
                {"name": "ci", "decision": "non_identity", "include": [{"any_valid_service_token": {}}]})
    start_connector(edge, procs, tmp_path, origin,
                    access={"required": True, "teamName": "warren", "audTag": [app["aud"]]})
    creds = {"CF-Access-Client-Id": tok["client_id"], "CF-Access-Client-Secret": tok["client_secret"]}

    # Through the edge with a service token: the edge's JWT is accepted (the
    # connector fetches the keys when first needed, so the first request
    # may be refused while they load).
    def served():
        status, _, body = visit(edge.http, GUARDED, headers=creds)
        return status == 200 and "cf-access-jwt-assertion" in json.loads(body)["headers"]
    assert wait_for(served, 15), "the connector never accepted the edge's token"

    # Reaching the connector another way: a route without an Access app on
    # the edge (APP stays open) cannot help, since the rule is GUARDED's.
    # Send requests for GUARDED that bypass the gate: delete the app, so the
    # edge forwards without a token, then with forged ones.
    _, _, body = visit(edge.http, GUARDED, headers=creds)
    good = json.loads(body)["headers"]["cf-access-jwt-assertion"]
    edge.ok("DELETE", edge.acct(f"/access/apps/{app['id']}"))
    time.sleep(1.2)  # the gate's cache of the host's apps
    status, _, body = visit(edge.http, GUARDED)
    assert status == 403 and b"Access" in body, (status, body)
    # A visitor's own assertion is dropped by the edge, forged or not.
    h64, p64, s64 = good.split(".")
    claims = json.loads(b64url(p64))
    claims["email"] = "admin@example.test"
    forged_p = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    status, _, _ = visit(edge.http, GUARDED, headers={"Cf-Access-Jwt-Assertion": f"{h64}.{forged_p}.{s64}"})
    assert status == 403
    # A valid token of the edge for another audience: a new app on the
    # same host has a new aud tag, which the rule does not list.
    again = make_app(edge, GUARDED)
    assert again["aud"] != app["aud"]
    edge.ok("POST", edge.acct(f"/access/apps/{again['id']}/policies"),
            {"name": "ci", "decision": "non_identity", "include": [{"any_valid_service_token": {}}]})
    time.sleep(1.2)
    status, _, body = visit(edge.http, GUARDED, headers=creds)
    assert status == 403 and b"Access" in body, (status, body)
    assert "audience" in connector_log(procs)


def test_dashboard_lists_apps_and_policies(edge):
    """A signed-in operator sees the account's Access applications on the
    dashboard with their audience tag and policies; without a session the
    page sends the browser to the sign-in."""
    app = make_app(edge)
    edge.ok("POST", edge.acct(f"/access/apps/{app['id']}/policies"),
            {"name": "staff-only", "decision": "allow", "include": [{"email_domain": {"domain": "example.test"}}]})

    def get(path, cookie=None, body=None):
        c = http.client.HTTPConnection("127.0.0.1", edge.api, timeout=15)
        h = {"Connection": "close"}
        if cookie:
            h["Cookie"] = cookie
        if body is not None:
            h["Content-Type"] = "application/x-www-form-urlencoded"
        c.request("POST" if body is not None else "GET", path, body=body, headers=h)
        r = c.getresponse()
        text = r.read().decode(errors="replace")
        c.close()
        return r.status, r.getheader("Location") or "", r.getheader("Set-Cookie") or "", text

    status, loc, _, _ = get("/dashboard/access")
    assert status in (302, 303) and "/argotunnel" in loc
    _, _, pre, form = get("/argotunnel")
    csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    body = urllib.parse.urlencode({"csrf": csrf, "email": "alice@example.test", "password": PASSWORD})
    status, _, cookie, _ = get("/argotunnel/signin", cookie=pre.split(";", 1)[0], body=body)
    assert status in (302, 303) and "warren_login=" in cookie, (status, cookie)
    status, _, _, page = get("/dashboard/access", cookie=cookie.split(";", 1)[0])
    assert status == 200
    row = page.split('<tr class="access-app">', 1)[1].split("</tr>", 1)[0]
    assert APP in row and app["aud"] in row and "allow: staff-only" in row, row
