"""Access sign-in through an OpenID Connect provider, and the edge's own
sign-in, in headless Chromium.

A local provider (oidc_provider.py: discovery, an authorize endpoint that
approves a fixed user, a token endpoint that checks PKCE, a JWK set) is
registered through the API as an `identity_providers` entry of type oidc.
Chromium goes visitor -> edge (302) -> the team domain's sign-in page ->
the provider -> the edge's callback -> the app host's
/cdn-cgi/access/authorized -> the origin, which sees a
Cf-Access-Jwt-Assertion whose email is the provider's user. Without a
browser: a replayed callback, a callback from another browser (no binding
cookie), a provider that sends another nonce and an email a policy denies
are all refused."""
import http.client
import json
import urllib.parse

import pytest

from browser import Chromium, find_chromium
from test_access import (APP, PASSWORD, ZONE, edge, make_app, origin, start_connector,  # noqa: F401
                         verify_jwt, visit)

pytest.importorskip("cryptography")
from oidc_provider import OIDCProvider  # noqa: E402

EMAIL = "alice@idp.test"


def chromium(tmp_path):
    if not find_chromium():
        pytest.skip("no chromium")
    return Chromium(tmp_path, args=[f"--host-resolver-rules=MAP {APP} 127.0.0.1"])


def make_idp(edge, idp, discovery=True):
    cfg = {"client_id": idp.client_id, "client_secret": idp.client_secret}
    if discovery:
        cfg["discovery_url"] = idp.discovery_url
    else:
        cfg.update(auth_url=idp.issuer + "/authorize", token_url=idp.issuer + "/token",
                   certs_url=idp.issuer + "/jwks", issuer=idp.issuer)
    return edge.ok("POST", edge.acct("/access/identity_providers"), {"name": "Test IdP", "type": "oidc", "config": cfg})


def allow(edge, app, rule):
    edge.ok("POST", edge.acct(f"/access/apps/{app['id']}/policies"),
            {"name": "allow", "decision": "allow", "include": [rule]})


def origin_saw(page):
    return json.loads(page.eval("document.body.innerText"))


def get(port, path, cookie=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def test_identity_provider_api(edge):
    with OIDCProvider(EMAIL) as idp:
        made = make_idp(edge, idp)
        assert made["type"] == "oidc" and made["config"]["client_id"] == idp.client_id
        # The secret is written, never read back.
        assert made["config"]["client_secret"] != idp.client_secret
        got = edge.ok("GET", edge.acct(f"/access/identity_providers/{made['id']}"))
        assert got["config"]["client_secret"] != idp.client_secret and got["config"]["scopes"]
        # An update without a secret keeps it (the sign-in below still works in the other tests).
        cfg = dict(got["config"])
        del cfg["client_secret"]
        edge.ok("PUT", edge.acct(f"/access/identity_providers/{made['id']}"),
                {"name": "renamed", "type": "oidc", "config": cfg})
        for bad in ({"name": "x", "type": "saml", "config": {}},
                    {"name": "x", "type": "oidc", "config": {"client_id": "c", "client_secret": "s"}},
                    {"name": "x", "type": "oidc", "config": {"client_id": "c", "client_secret": "s",
                                                             "discovery_url": "ftp://x"}}):
            status, j = edge.call("POST", edge.acct("/access/identity_providers"), bad)
            assert status == 400, j
        status, j = edge.call("POST", edge.acct("/access/apps"),
                              {"name": "a", "domain": APP, "allowed_idps": ["nope"]})
        assert status == 400 and "allowed_idps" in j["errors"][0]["message"], j
        logs = edge.ok("GET", edge.acct("/audit_logs?action=access."))
        assert {"access.identity_provider.create", "access.identity_provider.update"} <= {r["action"] for r in logs}
        assert idp.client_secret not in json.dumps(logs)


def test_browser_sign_in_with_oidc(edge, procs, tmp_path, origin):
    start_connector(edge, procs, tmp_path, origin)
    with OIDCProvider(EMAIL) as idp:
        made = make_idp(edge, idp)
        app = edge.ok("POST", edge.acct("/access/apps"),
                      {"name": "app", "domain": APP, "session_duration": "1h", "allowed_idps": [made["id"]]})
        allow(edge, app, {"email": {"email": EMAIL}})
        with chromium(tmp_path) as b:
            page = b.new_page()
            page.goto(f"http://{APP}:{edge.http}/page?x=1")
            # The team domain's sign-in page offers the provider.
            assert page.url().startswith(f"http://127.0.0.1:{edge.api}/cdn-cgi/access/login/{APP}"), page.url()
            assert "Sign in with Test IdP" in page.text("a.idp")
            page.click_and_wait("a.idp")
            assert page.url() == f"http://{APP}:{edge.http}/page?x=1", page.url()
            seen = origin_saw(page)
        assert seen["path"] == "/page?x=1"
        _, _, certs = visit(edge.http, APP, path="/cdn-cgi/access/certs")
        claims = verify_jwt(seen["headers"]["cf-access-jwt-assertion"], json.loads(certs), app["aud"],
                            f"http://127.0.0.1:{edge.api}")
        assert claims["email"] == EMAIL and claims["sub"] == "user-1"
        # The edge used discovery, PKCE and the code once.
        assert idp.paths("/.well-known/openid-configuration") and len(idp.paths("/token")) == 1
        token_req = dict(idp.requests)["/token"]
        assert len(token_req["code_verifier"]) == 43
        logs = edge.ok("GET", edge.acct("/audit_logs?action=access.login"))
        assert any(r["metadata"].get("via") == "oidc" and r["metadata"].get("email") == EMAIL for r in logs), logs


def start_flow(edge, app, made):
    """Starts a sign-in without a browser: returns the provider URL and the binding cookie."""
    redirect = urllib.parse.quote(f"http://{APP}/", safe="")
    status, hdrs, body = get(edge.api, f"/cdn-cgi/access/oidc/{made['id']}?host={APP}&kid={app['aud']}"
                                       f"&redirect_url={redirect}")
    assert status == 302, body
    assert "HttpOnly" in hdrs["set-cookie"] and "Path=/cdn-cgi/access/callback" in hdrs["set-cookie"], hdrs
    return hdrs["location"], hdrs["set-cookie"].split(";")[0]


def provider_callback(location):
    """What the provider answers the authorize URL: the edge's callback path."""
    u = urllib.parse.urlsplit(location)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
    c.request("GET", f"{u.path}?{u.query}")
    r = c.getresponse()
    r.read()
    c.close()
    assert r.status == 302
    back = urllib.parse.urlsplit(r.getheader("Location"))
    return f"{back.path}?{back.query}"


def test_oidc_callback_checks(edge):
    with OIDCProvider(EMAIL) as idp:
        made = make_idp(edge, idp, discovery=False)
        app = edge.ok("POST", edge.acct("/access/apps"), {"name": "app", "domain": APP, "auto_redirect_to_identity": True})
        allow(edge, app, {"email_domain": {"domain": "idp.test"}})
        # One provider and auto_redirect_to_identity: the sign-in page goes straight to it.
        status, hdrs, _ = get(edge.api, f"/cdn-cgi/access/login/{APP}?kid={app['aud']}")
        assert status == 302 and hdrs["location"].startswith(f"/cdn-cgi/access/oidc/{made['id']}?"), hdrs
        # Explicit endpoints: no discovery.
        loc, cookie = start_flow(edge, app, made)
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))
        assert loc.startswith(idp.issuer + "/authorize?") and q["code_challenge_method"] == "S256"
        assert q["redirect_uri"] == f"http://127.0.0.1:{edge.api}/cdn-cgi/access/callback"
        assert cookie.startswith("CF_Access_OIDC_")
        cb = provider_callback(loc)
        # Another browser (no binding cookie) cannot finish it, and the flow is then gone.
        status, _, _ = get(edge.api, cb)
        assert status == 403
        status, _, _ = get(edge.api, cb, cookie)
        assert status == 403
        assert not idp.paths("/token") and not idp.paths("/.well-known/openid-configuration")
        # The right browser finishes once; a replay is refused.
        loc, cookie = start_flow(edge, app, made)
        cb = provider_callback(loc)
        status, hdrs, _ = get(edge.api, cb, cookie)
        assert status == 302 and f"//{APP}/cdn-cgi/access/authorized?token=" in hdrs["location"], hdrs
        assert "Max-Age=0" in hdrs.get("set-cookie", ""), hdrs
        status, _, _ = get(edge.api, cb, cookie)
        assert status == 403
        # An id_token with another flow's nonce is refused.
        idp.nonce_override = "not-this-flow"
        loc, cookie = start_flow(edge, app, made)
        status, _, body = get(edge.api, provider_callback(loc), cookie)
        assert status == 403 and b"could not be verified" in body
        # The provider refusing: an error page, no token.
        idp.nonce_override = None
        loc, cookie = start_flow(edge, app, made)
        state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))["state"]
        status, _, body = get(edge.api, f"/cdn-cgi/access/callback?error=access_denied&state={state}", cookie)
        assert status == 403 and b"refused" in body


def test_browser_sign_in_with_the_edges_users(edge, procs, tmp_path, origin):
    start_connector(edge, procs, tmp_path, origin)
    app = make_app(edge)
    allow(edge, app, {"email_domain": {"domain": ZONE}})
    with chromium(tmp_path) as b:
        page = b.new_page()
        page.goto(f"http://{APP}:{edge.http}/hello")
        assert page.exists("input[name=password]"), page.url()
        page.fill("input[name=email]", "alice@example.test")
        page.fill("input[name=password]", "not the password")
        page.click_and_wait("button[type=submit]")
        assert "Wrong email or password" in page.text("[role=alert]")
        page.fill("input[name=email]", "alice@example.test")
        page.fill("input[name=password]", PASSWORD)
        page.click_and_wait("button[type=submit]")
        assert page.url() == f"http://{APP}:{edge.http}/hello", page.url()
        seen = origin_saw(page)
        assert seen["path"] == "/hello"
        # The cookie holds the session: a second visit goes straight through.
        page.goto(f"http://{APP}:{edge.http}/again")
        assert origin_saw(page)["path"] == "/again"
    _, _, certs = visit(edge.http, APP, path="/cdn-cgi/access/certs")
    claims = verify_jwt(seen["headers"]["cf-access-jwt-assertion"], json.loads(certs), app["aud"],
                        f"http://127.0.0.1:{edge.api}")
    assert claims["email"] == "alice@example.test"
