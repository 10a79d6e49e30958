"""The edge's store calls that sit on the visitor's path run on the store
thread, not on the event loop: with every store-thread call made slow
(WARREN_TEST_STORE_DELAY_MS, a test-only hook), a visitor whose host needs a
route lookup waits, and while it waits other visitors keep being served.
The same holds for the certificates of the edge CA, signed on the worker pool
(WARREN_TEST_SIGN_DELAY_MS makes each signing slow).

The assertions are about order, never about durations: a request that needs
no store call (a cached route, a bad Host) is answered while the slow lookup
is still unanswered."""
import base64
import http.client as http_client
import json
import os
import re
import select
import socket
import ssl
import subprocess
import urllib.parse

import pytest

from common import read_cert, recv_head, recv_to_eof
from conftest import WARREN, WARREN_EDGE, check, edge_with_hello, free_port, run_edge_and_hello, wait_for

ZONE = "example.test"
DELAY_MS = 3000  # each store-thread call; long next to a loopback round trip


def send_get(port, hostname):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(f"GET / HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n".encode())
    return s


def status_of(s):
    head = recv_head(s, "response head")
    return int(head.split(b" ", 2)[1])


def answered(s):
    """Whether |s| has bytes (or EOF) to read now, without waiting."""
    return bool(select.select([s], [], [], 0)[0])


@pytest.fixture
def edge(tmp_path, procs):
    return start_edge(tmp_path, procs, "127.0.0.1:0")[0]


def start_edge(tmp_path, procs, api_listen, https=None, delays=None, dns=None, quick=False, metrics=None):
    """An edge whose store-thread calls are slow (or as |delays| says), with
    a hello-world tunnel routed for hello.ZONE and other.ZONE; returns
    (http port, data dir). |https|, |dns|: ports for --https-listen and
    --dns-listen; |quick|: quick tunnels on, in the edge's account;
    |metrics|: a port for --metrics."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = str(tmp_path)
    d, creds, tid, _ = edge_with_hello(tmp_path, env, ZONE, ("hello", "other"))
    extra = ["--https-listen", f"127.0.0.1:{https}"] if https else []
    extra += ["--dns-listen", f"127.0.0.1:{dns}"] if dns else []
    extra += ["--quick-tunnels-account", read_cert(d / "cert.pem")[1]] if quick else []
    extra += ["--metrics", f"127.0.0.1:{metrics}"] if metrics else []
    http = run_edge_and_hello(procs, d, creds, tid, env, ["--api-listen", api_listen, *extra],
                              edge_env={**env, **(delays or {"WARREN_TEST_STORE_DELAY_MS": str(DELAY_MS)})},
                              connector_args=["--metrics", f"127.0.0.1:{free_port()}"])
    return http, d


def start_edge_with_api(tmp_path, procs, **kw):
    """start_edge (with |kw|) with its API on a free port: (http port, API
    port, data dir)."""
    api = free_port()
    http, d = start_edge(tmp_path, procs, f"127.0.0.1:{api}", **kw)
    return http, api, d


def add_access_app(call, name, policy):
    """An Access application for name.ZONE with the one |policy|; returns it."""
    app = call("POST", "/access/apps", {"name": name, "domain": f"{name}.{ZONE}"})
    call("POST", f"/access/apps/{app['id']}/policies", policy)
    return app


def api_caller(api, d):
    """call(method, path, body) -> result, on the edge's API for its account."""
    _, account, token = read_cert(d / "cert.pem")

    def call(method, path, body):
        base = "" if path.startswith("/zones/") else f"/accounts/{account}"
        c = http_client.HTTPConnection("127.0.0.1", api, timeout=30)
        c.request(method, f"/client/v4{base}{path}", body=json.dumps(body),
                  headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        r = json.loads(c.getresponse().read())
        c.close()
        assert r["success"], r
        return r["result"]
    return call


def test_visitors_are_served_while_a_route_lookup_is_slow(edge):
    # A host nobody asked for yet: its lookup goes to the (slow) store thread.
    slow = send_get(edge, f"other.{ZONE}")
    # Requests that need no store call are answered meanwhile.
    for target in (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",          # no Host: 400
                   b"GET / HTTP/1.1\r\nHost: bad_host:x\r\nConnection: close\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", edge), timeout=30)
        s.sendall(target)
        assert status_of(s) == 400
        s.close()
        assert not answered(slow), "the slow lookup was answered before the quick requests"
    # The slow one gets its answer in the end: routed, through the connector.
    assert status_of(slow) == 200
    slow.close()


def test_a_cached_route_is_served_while_another_lookup_is_slow(edge):
    # The route cache keeps an answer for a second (visitor.h route_ttl_ms):
    # right after hello's lookup, its route is cached; a visitor for another
    # host then waits on the store thread while hello's visitors are served.
    # Should the cache have expired before the second hello request (a very
    # loaded machine), that request queues behind the slow lookup: try again.
    for _ in range(3):
        first = send_get(edge, f"hello.{ZONE}")
        assert status_of(first) == 200
        first.close()
        slow = send_get(edge, f"other.{ZONE}")
        again = send_get(edge, f"hello.{ZONE}")
        assert status_of(again) == 200
        again.close()
        served_first = not answered(slow)
        assert status_of(slow) == 200
        slow.close()
        if served_first:
            return
    pytest.fail("a cached host was never answered before a slow lookup of another host finished")


def test_the_access_gate_reads_its_apps_on_the_store_thread(tmp_path, procs):
    # An Access application covers other.ZONE: the gate answers an anonymous
    # visitor itself (401: an identity is needed), without a route lookup,
    # once it has read the host's applications. Were that read on the loop
    # (not delayed), the 401 would
    # come before the quick requests below; on the store thread it comes
    # after them.
    http, api, d = start_edge_with_api(tmp_path, procs)
    call = api_caller(api, d)

    add_access_app(call, "other",
                   {"name": "nobody", "decision": "deny", "include": [{"everyone": {}}]})
    slow = send_get(http, f"other.{ZONE}")
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", http), timeout=30)
        s.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")  # no Host: 400
        assert status_of(s) == 400
        s.close()
        assert not answered(slow), "the gate answered before its store read could have come back"
    assert status_of(slow) == 401
    slow.close()


class Handshake:
    """A TLS client driven by hand over a socket, so that the test can look
    at whether the server answered its ClientHello without waiting."""

    def __init__(self, port, name, cafile):
        ctx = ssl.create_default_context(cafile=str(cafile))
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname=name)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.name = name
        self._step()

    def _step(self):
        try:
            self.tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        if self.out.pending:
            self.sock.sendall(self.out.read())
        return done

    def finish(self):
        while not self._step():
            data = self.sock.recv(65536)
            assert data, "the edge closed the connection during the handshake"
            self.inc.write(data)

    def get_status(self):
        self.tls.write(f"GET / HTTP/1.1\r\nHost: {self.name}\r\nConnection: close\r\n\r\n".encode())
        self.sock.sendall(self.out.read())
        head = b""
        while b"\r\n" not in head:
            try:
                head += self.tls.read(65536)
            except ssl.SSLWantReadError:
                data = self.sock.recv(65536)
                assert data, "no answer over TLS"
                self.inc.write(data)
        self.sock.close()
        return int(head.split(b" ", 2)[1])


def https_status(port, name, cafile):
    h = Handshake(port, name, cafile)
    h.finish()
    return h.get_status()


def test_visitors_are_served_while_a_certificate_is_signed(tmp_path, procs):
    # Signing is slow, the store is not: the first handshake for a hostname
    # routed after the edge started waits for its certificate, and while it
    # waits plain visitors and handshakes for a prepared name are served.
    https = free_port()
    http, d = start_edge(tmp_path, procs, "127.0.0.1:0", https=https,
                         delays={"WARREN_TEST_SIGN_DELAY_MS": str(DELAY_MS)})
    ca = d / "ca.pem"
    # hello's certificate was prepared when the edge started (maybe still
    # being signed: then this waits for it).
    assert https_status(https, f"hello.{ZONE}", ca) == 200
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = str(tmp_path)
    check([WARREN_EDGE, "route", "dns", "--data-dir", d, "hello", f"fresh.{ZONE}"], env)
    slow = Handshake(https, f"fresh.{ZONE}", ca)
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", http), timeout=30)
        s.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")  # no Host: 400
        assert status_of(s) == 400
        s.close()
        assert https_status(https, f"hello.{ZONE}", ca) == 200
        assert not answered(slow.sock), "the new name's handshake was answered before the others"
    slow.finish()
    assert slow.get_status() == 200


def raw_request(port, method, path, headers=(), body=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers)
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    s.sendall(head.encode() + b"\r\n" + body)
    return s


def read_all(s):
    """The whole response of a Connection: close request: (status, head, body)."""
    data = recv_to_eof(s)
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head.decode("latin-1"), body.decode("utf-8", "replace")


def header_value(head, name):
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def test_team_domain_pages_read_the_store_on_the_store_thread(tmp_path, procs):
    # The team domain (the API listener) serves the sign-in form, the
    # sign-in POST, the OpenID Connect start and its callback. Each needs
    # the app's host read (apps and identity providers) or a user read:
    # those go to the slow store thread, and while they are out, visitors
    # and the team domain's key set keep being answered.
    http, api, d = start_edge_with_api(tmp_path, procs)
    call = api_caller(api, d)

    def quick_ones_first(slow):
        for _ in range(2):
            s = send_get(http, "")  # an empty Host: 400, no store call
            assert status_of(s) == 400
            s.close()
            status, _, body = read_all(raw_request(api, "GET", "/cdn-cgi/access/certs"))
            assert status == 200 and '"keys"' in body
            assert not answered(slow), "a team-domain page was answered before its store read could be back"

    app = call("POST", "/access/apps", {"name": "other", "domain": f"other.{ZONE}"})
    dead = "http://127.0.0.1:9"  # a provider nobody answers for
    idp = call("POST", "/access/identity_providers",
               {"name": "IdP", "type": "oidc",
                "config": {"client_id": "c", "client_secret": "s", "auth_url": dead + "/authorize",
                           "token_url": dead + "/token", "certs_url": dead + "/jwks"}})
    back = f"redirect_url=http%3A%2F%2Fother.{ZONE}%2F"

    # The sign-in form: the host's apps (just invalidated by the API) are read first.
    slow = raw_request(api, "GET", f"/cdn-cgi/access/login/other.{ZONE}?kid={app['aud']}&{back}")
    quick_ones_first(slow)
    status, head, form = read_all(slow)
    assert status == 200 and "Sign in with IdP" in form, form
    csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    cookie = header_value(head, "Set-Cookie").split(";")[0]

    # The sign-in: the user is read on the store thread.
    body = (f"csrf={csrf}&kid={app['aud']}&{back}&email=nobody%40example.test&password=wrong").encode()
    slow = raw_request(api, "POST", f"/cdn-cgi/access/login/other.{ZONE}",
                       [("Cookie", cookie), ("Content-Type", "application/x-www-form-urlencoded")], body)
    quick_ones_first(slow)
    status, _, page = read_all(slow)
    assert status == 403 and "Wrong email or password" in page, page

    # An OpenID Connect sign-in started, then the apps change (the cache is
    # emptied): the callback waits for the host's read before the state is used.
    status, head, _ = read_all(raw_request(
        api, "GET", f"/cdn-cgi/access/oidc/{idp['id']}?host=other.{ZONE}&kid={app['aud']}&{back}"))
    assert status == 302, head
    state = header_value(head, "Location").split("state=", 1)[1].split("&", 1)[0]
    binding = header_value(head, "Set-Cookie").split(";")[0]
    call("POST", "/access/groups", {"name": "g", "include": [{"everyone": {}}]})
    slow = raw_request(api, "GET", f"/cdn-cgi/access/callback?state={state}&code=abc", [("Cookie", binding)])
    quick_ones_first(slow)
    status, _, page = read_all(slow)
    # The flow was recognised (not "start again"): the provider could not be reached.
    assert status == 403 and "could not be verified" in page, page


def test_the_gate_checks_service_tokens_on_the_store_thread(tmp_path, procs):
    # hello.ZONE takes service tokens only. Once its apps are cached (an
    # anonymous visitor got 401), a visitor with a token waits for the
    # token's read on the store thread while others are answered.
    http, api, d = start_edge_with_api(tmp_path, procs)
    call = api_caller(api, d)

    add_access_app(call, "hello",
                   {"name": "tokens", "decision": "non_identity", "include": [{"any_valid_service_token": {}}]})
    tok = call("POST", "/access/service_tokens", {"name": "ci"})
    anon = send_get(http, f"hello.{ZONE}")
    assert status_of(anon) == 401
    anon.close()
    s = socket.create_connection(("127.0.0.1", http), timeout=30)
    s.sendall(f"GET / HTTP/1.1\r\nHost: hello.{ZONE}\r\nCF-Access-Client-Id: {tok['client_id']}\r\n"
              f"CF-Access-Client-Secret: {tok['client_secret']}\r\nConnection: close\r\n\r\n".encode())
    for _ in range(2):
        q = send_get(http, "")
        assert status_of(q) == 400
        q.close()
        assert not answered(s), "the token was checked before its store read could be back"
    assert status_of(s) == 200
    s.close()


def test_a_connector_registers_through_the_store_thread(tmp_path, procs):
    # registerConnection reads the tunnel and writes the connection's row on
    # the store thread: while a connector's registration waits there, the
    # loop answers visitors; and a deleted tunnel is still refused with its
    # reason.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = str(tmp_path)
    d = tmp_path / "edge"
    creds, gone = tmp_path / "hello.json", tmp_path / "gone.json"
    check([WARREN_EDGE, "init", "--data-dir", d, "--zone", ZONE], env)
    check([WARREN_EDGE, "tunnel", "create", "--data-dir", d, "--out", creds, "hello"], env)
    check([WARREN_EDGE, "tunnel", "create", "--data-dir", d, "--out", gone, "gone"], env)
    check([WARREN_EDGE, "tunnel", "delete", "--data-dir", d, "gone"], env)
    udp, http = free_port(socket.SOCK_DGRAM), free_port()
    p = procs.start([WARREN_EDGE, "run", "--data-dir", d, "--tunnel-listen", f"127.0.0.1:{udp}",
                     "--http-listen", f"127.0.0.1:{http}", "--loglevel", "debug"],
                    name="warren-edge", env={**env, "WARREN_TEST_STORE_DELAY_MS": str(DELAY_MS)})
    assert p.wait_output("Serving visitors on http://", 30) is not None, p.tail()

    def connector(c, name):
        # Each store-thread call takes DELAY_MS here and the edge's periodic
        # work queues too: the registration's answer may take longer than
        # the connector's default 5 s RPC timeout.
        tid = json.loads(c.read_text())["TunnelID"]
        return procs.start([WARREN, "tunnel", "--no-autoupdate", "--edge", f"127.0.0.1:{udp}",
                            "--cacert", d / "ca.pem", "--protocol", "quic", "--credentials-file",
                            c, "--ha-connections", "1", "--rpc-timeout", "60s",
                            "run", "--hello-world", tid],
                           name=name, env=env)

    c = connector(creds, "warren-hello")
    # The edge took the registration call and handed it to the store
    # thread ...
    assert p.wait_output("checking on the store thread", 30) is not None, p.tail()
    # ... and answers visitors while its answer waits for the store thread.
    s = socket.create_connection(("127.0.0.1", http), timeout=30)
    s.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")  # no Host: 400
    assert status_of(s) == 400
    s.close()
    assert "Registered tunnel connection" not in c.output(), "registered before the store answered"
    assert c.wait_output("Registered tunnel connection", 60) is not None, c.tail()
    g = connector(gone, "warren-gone")
    assert g.wait_output("has been deleted", 60) is not None, g.tail()
    assert "Registered tunnel connection" not in g.output()


def dig_status(port, name):
    r = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+norec", "+time=2", "+tries=1", name, "A"],
                       capture_output=True, text=True, timeout=15)
    m = [w for w in r.stdout.split() if w.startswith("NOERROR") or w.startswith("NXDOMAIN")]
    return m[0].rstrip(",") if m else None


def test_dns_answers_while_its_zones_are_read(tmp_path, procs):
    # A route added through the API makes the DNS server read its zones
    # again, on the slow store thread: queries are answered meanwhile from
    # the last read (the new name is not there yet), and the new name
    # resolves once the read is back.
    api, dns = free_port(), free_port(socket.SOCK_DGRAM)
    _, d = start_edge(tmp_path, procs, f"127.0.0.1:{api}", dns=dns)
    assert wait_for(lambda: dig_status(dns, f"hello.{ZONE}") == "NOERROR", timeout=15)
    zone_id = read_cert(d / "cert.pem")[0]
    tid = json.loads((tmp_path / "hello.json").read_text())["TunnelID"]
    api_caller(api, d)("PUT", f"/zones/{zone_id}/tunnels/{tid}/routes",
                       {"type": "dns", "user_hostname": f"new.{ZONE}", "overwrite_existing": True})
    assert dig_status(dns, f"new.{ZONE}") == "NXDOMAIN", "the zones were read again on the loop"
    assert dig_status(dns, f"hello.{ZONE}") == "NOERROR"
    assert wait_for(lambda: dig_status(dns, f"new.{ZONE}") == "NOERROR", timeout=30)


def api_request(api, d, method, path, body=None):
    """Sends a /client/v4 request for the edge's account without waiting for
    the answer; returns the socket (read it with read_all)."""
    _, account, token = read_cert(d / "cert.pem")
    data = json.dumps(body).encode() if body is not None else b""
    return raw_request(api, method, f"/client/v4/accounts/{account}{path}",
                       [("Authorization", f"Bearer {token}"), ("Content-Type", "application/json")], data)


def visitors_go_first(http, pending, what):
    """Sends a visitor that needs no store call (no Host: 400) and one of
    hello, whose route the caller cached just before |pending| was sent;
    asserts the first is answered while |pending| is not; returns whether
    |pending| was still unanswered after the second (False when hello's
    cache expired and its lookup queued behind |pending|)."""
    s = socket.create_connection(("127.0.0.1", http), timeout=30)
    s.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")  # no Host: 400
    assert status_of(s) == 400
    s.close()
    assert not answered(pending), f"{what} answered before a visitor that needs no store call"
    again = send_get(http, f"hello.{ZONE}")
    assert status_of(again) == 200
    again.close()
    return not answered(pending)


def cache_hello(http):
    first = send_get(http, f"hello.{ZONE}")
    assert status_of(first) == 200
    first.close()


def visitors_first_within_tries(http, what, send, check, tries=3):
    """Up to |tries| times: caches hello's route, sends a request that waits
    on the store thread (send() returns its socket), asserts
    visitors_go_first, and checks the answer (check(status, head, body));
    returns once the visitors came first (see visitors_go_first for why it
    may take another try)."""
    for _ in range(tries):
        cache_hello(http)
        pending = send()
        served_first = visitors_go_first(http, pending, what)
        check(*read_all(pending))
        if served_first:
            return
    pytest.fail(f"a cached host was never answered before a slow {what} finished")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_visitors_are_served_while_an_api_call_is_on_the_store_thread(tmp_path, procs, method):
    # The API's handlers run on the (slow) store thread. Were they on the
    # loop (whose own store calls are not delayed), the API would answer
    # before the visitors below; on the store thread the visitors come
    # first: one that needs no store call (no Host: 400) and one for
    # hello, whose route the request just before cached (visitor.h
    # route_ttl_ms). Should that cache expire first (a very loaded
    # machine), hello's lookup queues behind the API call: try again.
    http, api, d = start_edge_with_api(tmp_path, procs)
    for attempt in range(3):
        cache_hello(http)
        name = f"made-while-busy-{attempt}"
        pending = api_request(api, d, method, "/cfd_tunnel", {"name": name} if method == "POST" else None)
        served_first = visitors_go_first(http, pending, "the API")
        # The API call then gets its right answer.
        status, head, body = read_all(pending)
        assert status == 200, body
        assert header_value(head, "Content-Type") == "application/json"
        r = json.loads(body)
        assert r["success"], r
        if method == "GET":
            assert "hello" in [t["name"] for t in r["result"]]
        else:
            assert r["result"]["name"] == name and r["result"]["id"]
            listed = read_all(api_request(api, d, "GET", f"/cfd_tunnel?name={name}"))
            assert [t["id"] for t in json.loads(listed[2])["result"]] == [r["result"]["id"]]
        if served_first:
            return
    pytest.fail("a cached host was never answered before a slow API call finished")


def login_request(api, method, path, cookie=None, body=None):
    """One request to the login pages: (status, text, the session cookie
    after it)."""
    c = http_client.HTTPConnection("127.0.0.1", api, timeout=60)
    headers = {"Connection": "close"}
    if cookie:
        headers["Cookie"] = f"warren_login={cookie}"
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    text = r.read().decode(errors="replace")
    c.close()
    m = re.search(r"warren_login=([A-Za-z0-9_-]+)", r.getheader("Set-Cookie") or "")
    return r.status, text, m.group(1) if m else cookie


def login_form(api):
    """Opens the sign-in form: (session cookie, its CSRF token)."""
    status, text, cookie = login_request(api, "GET", "/argotunnel")
    assert status == 200 and cookie, (status, text[:300])
    return cookie, re.search(r'name="csrf" value="([^"]+)"', text).group(1)


def dash_cookie(api, email, password):
    """Signs |email| in on the login pages; returns the session cookie."""
    cookie, csrf = login_form(api)
    body = urllib.parse.urlencode({"csrf": csrf, "email": email, "password": password})
    status, text, cookie = login_request(api, "POST", "/argotunnel/signin", cookie, body)
    assert status in (200, 303), (status, text[:300])
    return cookie


def add_user(tmp_path, d, email, password):
    pw = tmp_path / "pw"
    pw.write_text(password + "\n")
    check([WARREN_EDGE, "--data-dir", str(d), "user", "add", email, "--password-file", str(pw)],
          {**os.environ, "HOME": str(tmp_path)})


def test_visitors_are_served_while_a_dashboard_page_is_built(tmp_path, procs):
    # The dashboard's tunnels page reads the store (through the API's
    # handlers) on the slow store thread: as for an API call, a visitor
    # that needs no store call and one of a cached host are answered
    # before it, and the page then shows the tunnel.
    http, api, d = start_edge_with_api(tmp_path, procs)
    add_user(tmp_path, d, "alice@example.test", "correct horse battery staple")
    cookie = dash_cookie(api, "alice@example.test", "correct horse battery staple")
    for _ in range(3):
        cache_hello(http)
        pending = raw_request(api, "GET", "/dashboard/tunnels", [("Cookie", f"warren_login={cookie}")])
        served_first = visitors_go_first(http, pending, "the dashboard")
        status, head, body = read_all(pending)
        assert status == 200, (head, body[:300])
        assert "text/html" in header_value(head, "Content-Type")
        assert ">hello<" in body, body[:2000]
        if served_first:
            return
    pytest.fail("a cached host was never answered before a slow dashboard page finished")


def test_visitors_are_served_while_a_quick_tunnel_is_made(tmp_path, procs):
    # POST /tunnel reads the account, its zones and the count of quick
    # tunnels, then writes the tunnel and its route, on the slow store
    # thread: visitors are answered first, and the quick tunnel is made.
    http, api, _ = start_edge_with_api(tmp_path, procs, quick=True)

    def check(status, head, body):
        assert status == 200, body
        r = json.loads(body)
        assert r["success"] and r["result"]["name"].startswith("quick-"), r
        assert r["result"]["hostname"].endswith(f".{ZONE}"), r
    visitors_first_within_tries(
        http, "quick tunnel", lambda: raw_request(api, "POST", "/tunnel", [("Content-Type", "application/json")], b"{}"),
        check)


def test_visitors_are_served_while_a_sign_in_reads_its_user(tmp_path, procs):
    # `tunnel login`'s sign-in reads the user and its password hash on the
    # slow store thread before the password check: visitors are answered
    # first, and the sign-in then succeeds.
    http, api, d = start_edge_with_api(tmp_path, procs)
    add_user(tmp_path, d, "alice@example.test", "correct horse battery staple")

    def send():
        cookie, csrf = login_form(api)
        body = urllib.parse.urlencode({"csrf": csrf, "email": "alice@example.test",
                                       "password": "correct horse battery staple"}).encode()
        return raw_request(api, "POST", "/argotunnel/signin",
                           [("Cookie", f"warren_login={cookie}"),
                            ("Content-Type", "application/x-www-form-urlencoded")], body)

    def check(status, head, _):
        assert status == 303 and header_value(head, "Location") == "/argotunnel", head
        assert "warren_login=" in header_value(head, "Set-Cookie"), head
    visitors_first_within_tries(http, "sign-in", send, check)


def test_visitors_are_served_while_ready_pings_the_store(tmp_path, procs):
    # /ready on --metrics pings the store on the slow store thread: were the
    # ping on the loop (not delayed), /ready would be answered before the
    # visitors; on the store thread they come first, and /ready then says
    # the edge is ready.
    metrics = free_port()
    http, _ = start_edge(tmp_path, procs, "127.0.0.1:0", metrics=metrics)

    def check(status, head, body):
        assert status == 200 and header_value(head, "Content-Type") == "application/json", (head, body)
        assert json.loads(body) == {"status": 200, "registeredConnections": 1}, body
    visitors_first_within_tries(http, "/ready", lambda: raw_request(metrics, "GET", "/ready"), check)


def test_visitors_are_served_while_the_zone_picker_and_authorize_read_the_store(tmp_path, procs):
    # Signed in, `tunnel login`'s zone picker reads the account's zones, and
    # the authorization reads the user and the zone, on the slow store
    # thread: visitors are answered first each time, and the pages are the
    # same (the picker lists the zone, authorizing leads to the success
    # page).
    http, api, d = start_edge_with_api(tmp_path, procs)
    add_user(tmp_path, d, "alice@example.test", "correct horse battery staple")
    cookie = dash_cookie(api, "alice@example.test", "correct horse battery staple")
    session = [("Cookie", f"warren_login={cookie}")]
    pages = []

    def check(status, _, page):
        assert status == 200 and f'id="zone-{ZONE}"' in page, page[:2000]
        pages.append(page)
    visitors_first_within_tries(http, "zone picker", lambda: raw_request(api, "GET", "/argotunnel", session), check)
    csrf = re.search(r'name="csrf" value="([^"]+)"', pages[-1]).group(1)
    zone_id = re.search(rf'id="zone-{re.escape(ZONE)}" value="([^"]+)"', pages[-1]).group(1)
    body = urllib.parse.urlencode({"csrf": csrf, "callback": "", "zone": zone_id}).encode()
    cache_hello(http)
    pending = raw_request(api, "POST", "/argotunnel/authorize",
                          session + [("Content-Type", "application/x-www-form-urlencoded")], body)
    visitors_go_first(http, pending, "the authorization")
    status, head, _ = read_all(pending)
    assert status == 303 and header_value(head, "Location") == "/argotunnel/done", head


def test_visitors_are_served_while_a_traffic_page_is_built(tmp_path, procs):
    # The dashboard's traffic page of a tunnel reads the tunnel (through the
    # API's handlers) on the slow store thread, and the inspector's records
    # on the loop: visitors are answered first, and the page shows the
    # tunnel's charts and inspector; so for a record's page.
    http, api, d = start_edge_with_api(tmp_path, procs)
    add_user(tmp_path, d, "alice@example.test", "correct horse battery staple")
    cookie = dash_cookie(api, "alice@example.test", "correct horse battery staple")
    tid = json.loads((tmp_path / "hello.json").read_text())["TunnelID"]

    session = [("Cookie", f"warren_login={cookie}")]
    pages = []

    def check(status, head, body):
        assert status == 200 and "text/html" in header_value(head, "Content-Type"), (head, body[:300])
        assert '<span id="tunnel-name">hello</span>' in body and f'data-tunnel="{tid}"' in body, body[:3000]
        assert 'id="inspector"' in body, body[:3000]
        pages.append(body)
    visitors_first_within_tries(
        http, "traffic page", lambda: raw_request(api, "GET", f"/dashboard/traffic?tunnel={tid}", session), check)
    # A record's page checks the record's tunnel in the store there too.
    rid = re.search(r'data-id="(\d+)"', pages[-1]).group(1)

    def check_record(status, _, body):
        assert status == 200 and 'id="request-line"' in body and f"hello.{ZONE}" in body, body[:3000]
    visitors_first_within_tries(
        http, "record page", lambda: raw_request(api, "GET", f"/dashboard/inspect?id={rid}", session), check_record)


def test_a_new_certs_api_token_is_written_on_the_store_thread(tmp_path, procs):
    # Once `tunnel login`'s certificate is issued, its API token (and the
    # user.login audit row) are written on the slow store thread, and only
    # then is the cert.pem handed to the polling CLI. An API call sent
    # right after the authorization queues on the store thread behind its
    # reads: the token's write comes after it, so when the API call is
    # answered the cert.pem is not handed out yet (had the token been
    # written on the loop, it would have been, at once after the reads),
    # and a visitor is served while the write is held. The cert.pem's
    # token then works on the API.
    http, api, d = start_edge_with_api(tmp_path, procs)
    add_user(tmp_path, d, "alice@example.test", "correct horse battery staple")
    cookie = dash_cookie(api, "alice@example.test", "correct horse battery staple")
    session = [("Cookie", f"warren_login={cookie}")]
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    callback = f"http://127.0.0.1:{api}/argotunnel/transfer/{key}"
    picker = raw_request(api, "GET", f"/argotunnel?aud=&callback={urllib.parse.quote(callback, safe='')}", session)
    status, _, page = read_all(picker)
    assert status == 200 and f'id="zone-{ZONE}"' in page, page[:2000]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    zone_id = re.search(rf'id="zone-{re.escape(ZONE)}" value="([^"]+)"', page).group(1)

    poll = raw_request(api, "GET", f"/argotunnel/transfer/{key}")
    body = urllib.parse.urlencode({"csrf": csrf, "callback": callback, "zone": zone_id}).encode()
    pending = raw_request(api, "POST", "/argotunnel/authorize",
                          session + [("Content-Type", "application/x-www-form-urlencoded")], body)
    behind = api_request(api, d, "GET", "/cfd_tunnel")
    assert read_all(behind)[0] == 200
    assert not answered(poll), "the cert.pem was handed out before its token's write could have run"
    assert not answered(pending), "the authorization was answered before its token's write could have run"
    s = socket.create_connection(("127.0.0.1", http), timeout=30)
    s.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")  # no Host: 400
    assert status_of(s) == 400
    s.close()
    assert not answered(poll), "the cert.pem was handed out before a visitor was served"

    status, head, pem = read_all(poll)
    assert status == 200 and "BEGIN ARGO TUNNEL TOKEN" in pem, (head, pem[:300])
    status, head, _ = read_all(pending)
    assert status == 303 and header_value(head, "Location") == "/argotunnel/done", head
    cert = tmp_path / "login-cert.pem"
    cert.write_text(pem)
    zone, account, token = read_cert(cert)
    assert zone == zone_id
    r = raw_request(api, "GET", f"/client/v4/accounts/{account}/cfd_tunnel", [("Authorization", f"Bearer {token}")])
    status, _, listed = read_all(r)
    assert status == 200 and json.loads(listed)["success"], listed
