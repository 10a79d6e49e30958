"""A small OpenID Connect provider for the e2e tests (stdlib HTTP server and
python3-cryptography for RS256).

It serves a discovery document, an authorization endpoint that approves a
fixed user at once (no page), a token endpoint that checks the client, the
redirect_uri and the PKCE S256 verifier of the code, and a JWK set. Every
request is recorded in |requests| so a test can assert what the relying
party sent.

    with OIDCProvider(email="alice@idp.test") as idp:
        idp.issuer, idp.client_id, idp.client_secret
"""
import base64
import contextlib
import hashlib
import json
import os
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from common import QuietHandler, serve_http


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OIDCProvider:
    def __init__(self, email, client_id="warren-edge", client_secret="s3cret-of-the-client"):
        self.email, self.client_id, self.client_secret = email, client_id, client_secret
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        self.codes = {}  # code -> the authorize request's parameters
        self.requests = []  # (path, params) of every request
        self.email_verified = True
        self.nonce_override = None  # a test may make the provider send another nonce
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        self.srv = self._stack.enter_context(serve_http(self._handler()))
        self.issuer = f"http://127.0.0.1:{self.srv.server_address[1]}"
        return self

    def __exit__(self, *exc):
        self._stack.close()

    @property
    def discovery_url(self):
        return self.issuer + "/.well-known/openid-configuration"

    def jwks(self):
        pub = self.key.public_key().public_numbers()
        n = pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")
        return {"keys": [{"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                          "n": b64url(n), "e": b64url(pub.e.to_bytes(3, "big"))}]}

    def id_token(self, claims):
        head = b64url(json.dumps({"alg": "RS256", "kid": self.kid, "typ": "JWT"}).encode())
        body = b64url(json.dumps(claims).encode())
        sig = self.key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{b64url(sig)}"

    def paths(self, path):
        return [p for p, _ in self.requests if p == path]

    def _handler(self):
        idp = self

        class Handler(QuietHandler):
            def send_json(self, status, obj):
                self.reply(json.dumps(obj).encode(), status, "application/json")

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(u.query))
                idp.requests.append((u.path, q))
                if u.path == "/.well-known/openid-configuration":
                    self.send_json(200, {"issuer": idp.issuer, "authorization_endpoint": idp.issuer + "/authorize",
                                         "token_endpoint": idp.issuer + "/token", "jwks_uri": idp.issuer + "/jwks",
                                         "response_types_supported": ["code"],
                                         "code_challenge_methods_supported": ["S256"]})
                elif u.path == "/jwks":
                    self.send_json(200, idp.jwks())
                elif u.path == "/authorize":
                    ok = (q.get("response_type") == "code" and q.get("client_id") == idp.client_id and
                          q.get("code_challenge_method") == "S256" and q.get("code_challenge") and
                          "openid" in q.get("scope", "").split() and q.get("state") and q.get("nonce"))
                    if not ok:
                        self.send_json(400, {"error": "invalid_request"})
                        return
                    code = b64url(os.urandom(24))
                    idp.codes[code] = q
                    loc = q["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": q["state"]})
                    self.send_response(302)
                    self.send_header("Location", loc)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_json(404, {"error": "not_found"})

            def do_POST(self):
                u = urllib.parse.urlsplit(self.path)
                n = int(self.headers.get("Content-Length", "0"))
                q = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
                idp.requests.append((u.path, q))
                if u.path != "/token":
                    self.send_json(404, {"error": "not_found"})
                    return
                auth = idp.codes.pop(q.get("code", ""), None)  # a code is good once
                verifier = q.get("code_verifier", "")
                if (not auth or q.get("grant_type") != "authorization_code" or
                        q.get("client_id") != idp.client_id or q.get("client_secret") != idp.client_secret or
                        q.get("redirect_uri") != auth["redirect_uri"] or
                        b64url(hashlib.sha256(verifier.encode()).digest()) != auth["code_challenge"]):
                    self.send_json(400, {"error": "invalid_grant", "error_description": "code, client or verifier"})
                    return
                now = int(time.time())
                claims = {"iss": idp.issuer, "aud": idp.client_id, "sub": "user-1", "email": idp.email,
                          "email_verified": idp.email_verified, "iat": now, "exp": now + 300,
                          "nonce": idp.nonce_override or auth["nonce"]}
                self.send_json(200, {"access_token": "at", "token_type": "Bearer", "expires_in": 300,
                                     "id_token": idp.id_token(claims)})

        return Handler
