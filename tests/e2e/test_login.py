"""Login: `warren-edge user ...`, and the login pages of
`warren-edge run --api-listen` driven in headless Chromium (tests/e2e/browser.py)
while a poller plays the waiting `tunnel login` CLI.

The browser tests need Debian's chromium (scripts/install-deps.sh installs it;
CHROMIUM=/path overrides)."""
import base64
import hashlib
import json
import os
import re
import socket
import sqlite3
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import browser
from common import failed, ok
from conftest import WARREN_EDGE, free_port, run, wait_for

ZONE = "example.test"
PASSWORD = "correct horse battery staple"


def edge(*args, data_dir, env=None, input=None):
    return run([WARREN_EDGE, "--data-dir", str(data_dir)] + list(args), env=env, input=input)


def pem_blocks(text):
    return re.findall(r"-----BEGIN ([A-Z ]+)-----\n(.*?)-----END \1-----", text, re.S)


def cert_token(text):
    """The ARGO TUNNEL TOKEN of a cert.pem, as cloudflared reads it (§1.4)."""
    blocks = pem_blocks(text)
    kinds = [k for k, _ in blocks]
    assert kinds.count("ARGO TUNNEL TOKEN") == 1, kinds
    assert set(kinds) <= {"ARGO TUNNEL TOKEN", "CERTIFICATE", "PRIVATE KEY"}, kinds
    tok = json.loads(base64.b64decode("".join(dict(blocks)["ARGO TUNNEL TOKEN"].split())))
    assert re.fullmatch(r"[0-9a-f]{32}", tok["zoneID"]) and re.fullmatch(r"[0-9a-f]{32}", tok["accountID"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{40}", tok["apiToken"])
    assert not tok.get("endpoint")
    return tok


def token_state(data_dir, token):
    """'live', 'revoked' or None, from the store (tokens are kept as SHA-256)."""
    h = hashlib.sha256(token.encode()).digest()
    db = sqlite3.connect(str(data_dir / "warren.db"))
    try:
        row = db.execute("SELECT revoked_at FROM api_tokens WHERE token_hash = ?", (h,)).fetchone()
    finally:
        db.close()
    return None if row is None else ("revoked" if row[0] else "live")


def zone_id(data_dir, name=ZONE):
    db = sqlite3.connect(str(data_dir / "warren.db"))
    try:
        return db.execute("SELECT id FROM zones WHERE name = ?", (name,)).fetchone()[0]
    finally:
        db.close()


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "edge"
    ok(run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", ZONE]))
    pw = tmp_path / "alice.pw"
    pw.write_text(PASSWORD + "\n")
    ok(edge("user", "add", "alice@example.test", "--password-file", str(pw), data_dir=d))
    ok(edge("user", "add", "--service", "ci@example.test", data_dir=d))
    return d


# --- warren-edge user ------------------------------------------------------------------


def test_user_add_password_sources_and_errors(data_dir, tmp_path):
    # Environment and standard input ("-"), as scripts pass them.
    ok(edge("user", "add", "bob@example.test", data_dir=data_dir, env={"WARREN_EDGE_PASSWORD": PASSWORD}))
    ok(edge("user", "add", "carol@example.test", "--password-file", "-", data_dir=data_dir, input=PASSWORD + "\r\n"))
    failed(edge("user", "add", "bob@example.test", data_dir=data_dir, env={"WARREN_EDGE_PASSWORD": PASSWORD}),
           "already exists")
    failed(edge("user", "add", "dave@example.test", data_dir=data_dir, env={"WARREN_EDGE_PASSWORD": "short"}),
           "at least 8")
    # No password from anywhere and no terminal (run() has no tty).
    failed(edge("user", "add", "erin@example.test", data_dir=data_dir, env={"WARREN_EDGE_PASSWORD": ""}),
           "--password-file", "WARREN_EDGE_PASSWORD")
    failed(edge("user", "add", "frank@example.test", "--password-file", str(tmp_path / "missing"), data_dir=data_dir),
           "cannot read --password-file")
    failed(edge("user", "add", "not-an-email", data_dir=data_dir, env={"WARREN_EDGE_PASSWORD": PASSWORD}),
           "not an email address")
    failed(edge("user", "add", "--service", "svc@example.test", "--password-file", "-", data_dir=data_dir),
           "service users have no password")
    failed(edge("user", "add", "x@example.test", "--out", str(tmp_path / "c.pem"), data_dir=data_dir,
                env={"WARREN_EDGE_PASSWORD": PASSWORD}), "--out is for service users")

    # The store holds a slow salted hash, never the password.
    db = sqlite3.connect(str(data_dir / "warren.db"))
    rows = dict(db.execute("SELECT email, password_hash FROM users").fetchall())
    db.close()
    assert re.fullmatch(r"pbkdf2-sha256\$600000\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}", rows["bob@example.test"])
    assert rows["bob@example.test"] != rows["carol@example.test"]
    assert rows["ci@example.test"] is None
    assert all(PASSWORD not in (v or "") for v in rows.values())

    r = ok(edge("user", "list", "-o", "json", data_dir=data_dir))
    users = {u["email"]: u for u in json.loads(r.stdout)}
    assert users["alice@example.test"]["kind"] == "user" and users["alice@example.test"]["has_password"]
    assert users["ci@example.test"]["kind"] == "service" and not users["ci@example.test"]["has_password"]
    assert users["ci@example.test"]["live_tokens"] == 1
    assert users["admin@example.test"]["live_tokens"] == 1
    r = ok(edge("user", "list", data_dir=data_dir))
    assert re.search(r"ci@example\.test\s+service\s+no\s+1", r.stdout), r.stdout
    assert re.search(r"alice@example\.test\s+user\s+yes\s+0", r.stdout), r.stdout

    # passwd: for people, not for service users.
    ok(edge("user", "passwd", "admin@example.test", data_dir=data_dir, env={"WARREN_EDGE_PASSWORD": PASSWORD}))
    failed(edge("user", "passwd", "ci@example.test", data_dir=data_dir, env={"WARREN_EDGE_PASSWORD": PASSWORD}),
           "service user")
    failed(edge("user", "passwd", "nobody@example.test", data_dir=data_dir, env={"WARREN_EDGE_PASSWORD": PASSWORD}),
           "no user with email")

    r = ok(edge("audit", "-o", "json", data_dir=data_dir))
    actions = [e["action"] for e in json.loads(r.stdout)]
    assert "user.create" in actions and "user.password" in actions


def prompted_add(data_dir, email, answers):
    """Runs `user add` on a pseudo-terminal, answering its prompts. Returns
    (exit code, everything the terminal showed)."""
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(WARREN_EDGE, [WARREN_EDGE, "--data-dir", str(data_dir), "user", "add", email])
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + 30
    try:
        for prompt, answer in answers:
            while prompt not in out and time.monotonic() < deadline:
                out += os.read(fd, 1024)
            os.write(fd, answer)
        while True:
            d = os.read(fd, 1024)
            if not d:
                break
            out += d
    except OSError:  # EIO once the child closed the terminal
        pass
    _, st = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(st), out.decode(errors="replace")


def test_user_add_prompts_on_a_terminal(data_dir):
    code, shown = prompted_add(data_dir, "tty@example.test", [
        (b"Password for tty@example.test: ", b"typed secret 1\n"), (b"Repeat the password: ", b"typed secret 1\n")])
    assert code == 0 and "Added user tty@example.test" in shown, shown
    assert "typed secret" not in shown  # no echo
    code, shown = prompted_add(data_dir, "tty2@example.test", [
        (b"Password for tty2@example.test: ", b"typed secret 1\n"), (b"Repeat the password: ", b"typed secret 2\n")])
    assert code == 1 and "the two passwords differ" in shown, shown
    r = ok(edge("user", "list", "-o", "json", data_dir=data_dir))
    emails = [u["email"] for u in json.loads(r.stdout)]
    assert "tty@example.test" in emails and "tty2@example.test" not in emails


def test_service_user_cert_pem_and_roll_token(data_dir, tmp_path):
    out = tmp_path / "ci.pem"
    r = ok(edge("user", "add", "--service", "deploy@example.test", "--out", str(out), data_dir=data_dir))
    assert "cannot log in" in r.stdout
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    old = cert_token(out.read_text())
    assert old["zoneID"] == zone_id(data_dir)
    assert token_state(data_dir, old["apiToken"]) == "live"
    failed(edge("user", "add", "--service", "d2@example.test", "--out", str(out), data_dir=data_dir), "already exists")

    # Rolling revokes every live token and writes the new one.
    r = ok(edge("user", "roll-token", "deploy@example.test", "--out", str(out), data_dir=data_dir))
    assert "Revoked 1 API token of deploy@example.test" in r.stdout and "log in again" in r.stdout
    new = cert_token(out.read_text())
    assert token_state(data_dir, old["apiToken"]) == "revoked"
    assert token_state(data_dir, new["apiToken"]) == "live"

    # Without --out the token is printed once.
    r = ok(edge("user", "roll-token", "ci@example.test", data_dir=data_dir))
    printed = r.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{40}", printed)
    assert token_state(data_dir, printed) == "live"
    failed(edge("user", "roll-token", "ghost@example.test", data_dir=data_dir), "no user with email")
    failed(edge("user", "roll-token", "ci@example.test", "--zone", "nope.test", data_dir=data_dir), "no zone nope.test")

    r = ok(edge("audit", "-o", "json", data_dir=data_dir))
    rolls = [e for e in json.loads(r.stdout) if e["action"] == "token.roll"]
    assert rolls and rolls[0]["detail"]["revoked"] == 1


# --- the login pages in a browser ------------------------------------------------------


@pytest.fixture
def edge_api(data_dir, procs):
    """`warren-edge run` with the API (and login pages) on a free port."""
    api = free_port()
    p = procs([WARREN_EDGE, "run", "--data-dir", str(data_dir),
               "--tunnel-listen", f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
               "--http-listen", f"127.0.0.1:{free_port()}",
               "--api-listen", f"127.0.0.1:{api}"], name="warren-edge")

    def up():
        try:
            socket.create_connection(("127.0.0.1", api), timeout=0.5).close()
            return True
        except OSError:
            return False
    assert wait_for(up, timeout=15), p.tail()
    return f"http://127.0.0.1:{api}", p


def get(url, timeout=10, headers=None):
    """(status, body bytes, headers) without raising on 4xx/5xx."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


class Poller(threading.Thread):
    """Polls like cloudflared's login (§1.3): up to |tries| GETs with a 60 s
    timeout; a non-200 below 500 or an empty 200 means "again at once"."""

    def __init__(self, url, tries=10):
        super().__init__(daemon=True)
        self.url, self.tries = url, tries
        self.statuses, self.body, self.error = [], None, None

    def run(self):
        for _ in range(self.tries):
            try:
                status, body, _ = get(self.url, timeout=60)
            except OSError as e:
                self.error = e
                return
            self.statuses.append(status)
            if status >= 500:
                self.error = f"status {status}"
                return
            if status == 200 and body:
                self.body = body.decode()
                return


def new_key():
    """A key shaped like cloudflared's: 32 bytes, URL-safe base64 with '='."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def login_url(base, key):
    callback = f"{base}/argotunnel/transfer/{key}"
    return f"{base}/argotunnel?aud=&callback={urllib.parse.quote(callback, safe='')}"


@pytest.mark.skipif(not browser.find_chromium(), reason="needs chromium (scripts/install-deps.sh)")
def test_browser_login_end_to_end(data_dir, edge_api, tmp_path):
    base, edge_proc = edge_api
    key = new_key()
    status, body, _ = get(f"{base}/argotunnel")
    assert status == 200 and b'id="signin"' in body, \
        f"the login page is not served on --api-listen (status {status}): {body[:200]!r}"

    poller = Poller(f"{base}/argotunnel/transfer/{key}")
    poller.start()

    with browser.Chromium(tmp_path) as b:
        page = b.new_page()
        page.goto(login_url(base, key))
        assert page.exists("#signin")
        assert page.text("#request") == key[:8]

        # A wrong password, then a service user: refused with the same words.
        page.fill("#email", "alice@example.test")
        page.fill("#password", "not the password")
        page.click_and_wait("#submit")
        assert page.text("#error") == "Wrong email or password."
        assert page.eval("document.querySelector('#email').value") == "alice@example.test"
        page.fill("#email", "ci@example.test")
        page.fill("#password", PASSWORD)
        page.click_and_wait("#submit")
        assert page.text("#error") == "Wrong email or password."

        # The right one leads to the zone picker.
        page.fill("#email", "alice@example.test")
        page.fill("#password", PASSWORD)
        page.click_and_wait("#submit")
        assert page.exists("#authorize"), page.eval("document.body.innerText")
        assert page.text("#user") == "alice@example.test"
        assert poller.body is None  # nothing before the zone is picked
        page.click(f'[id="zone-{ZONE}"]')
        page.click_and_wait("#authorize-button")
        assert page.exists("#success"), page.eval("document.body.innerText")
        assert page.text("#zone") == ZONE
        assert page.exists("#cli")

        # The waiting CLI got cert.pem, without using up its tries.
        poller.join(30)
        assert not poller.is_alive() and poller.error is None, (poller.statuses, poller.error)
        assert poller.statuses[-1] == 200 and len(poller.statuses) <= 2, poller.statuses
        tok = cert_token(poller.body)
        assert tok["zoneID"] == zone_id(data_dir)
        assert token_state(data_dir, tok["apiToken"]) == "live"
        kinds = [k for k, _ in pem_blocks(poller.body)]
        assert kinds == ["CERTIFICATE", "PRIVATE KEY", "ARGO TUNNEL TOKEN"], kinds

        # Exactly once: a second poll is held with nothing to give.
        with pytest.raises(OSError):
            get(f"{base}/argotunnel/transfer/{key}", timeout=2)

        # The page's download is the same cert.pem.
        name, data = page.download("#download")
        assert name == "cert.pem"
        assert data.decode() == poller.body

    # Nothing secret in the edge's log.
    log = edge_proc.output()
    assert PASSWORD not in log and tok["apiToken"] not in log and "PRIVATE KEY" not in log
    assert "alice@example.test signed in" in log

    r = ok(edge("audit", "-o", "json", data_dir=data_dir))
    logins = [e for e in json.loads(r.stdout) if e["action"] == "user.login"]
    assert logins and logins[-1]["actor"] == "login:alice@example.test" and logins[-1]["detail"]["via"] == "cli"

    # Rolling her token makes this cert.pem useless (the API then says to log in again).
    r = ok(edge("user", "roll-token", "alice@example.test", data_dir=data_dir))
    assert "Revoked 1 API token" in r.stdout
    assert token_state(data_dir, tok["apiToken"]) == "revoked"
    status, body, _ = get(f"{base}/client/v4/accounts/{tok['accountID']}/cfd_tunnel",
                          headers={"Authorization": f"Bearer {tok['apiToken']}"})
    if status != 404:  # the REST API is served next to the login pages
        assert status in (401, 403) or b'"success":false' in body.replace(b" ", b""), (status, body[:300])


@pytest.mark.skipif(not browser.find_chromium(), reason="needs chromium (scripts/install-deps.sh)")
def test_browser_download_only(data_dir, edge_api, tmp_path):
    """The way for the real cloudflared, whose poll cannot reach the edge:
    open the page without a callback, sign in, pick, download."""
    base, _ = edge_api
    with browser.Chromium(tmp_path) as b:
        page = b.new_page()
        page.goto(f"{base}/argotunnel")
        page.fill("#email", "alice@example.test")
        page.fill("#password", PASSWORD)
        page.click_and_wait("#submit")
        page.click_and_wait("#authorize-button")
        assert page.exists("#success") and not page.exists("#cli")
        name, data = page.download("#download")
        assert name == "cert.pem"
        tok = cert_token(data.decode())
        assert token_state(data_dir, tok["apiToken"]) == "live"
        # Signing out forgets the certificate.
        page.click_and_wait("#signout button")
        assert page.exists("#signin")
        page.goto(f"{base}/argotunnel/cert.pem")
        assert "no certificate" in page.eval("document.body.innerText")


# --- guessing: a brute-force burst against a real edge ------------------------------------


class Form:
    """One browser session on the login pages, from a chosen source address
    (any 127.0.0.0/8 address reaches the edge's 127.0.0.1 listener)."""

    def __init__(self, base, source):
        u = urllib.parse.urlsplit(base)
        self.host, self.port, self.source = u.hostname, u.port, source
        self.cookie = self.csrf = None

    def request(self, method, path, body=None):
        import http.client
        c = http.client.HTTPConnection(self.host, self.port, timeout=120, source_address=(self.source, 0))
        headers = {"Connection": "close"}
        if self.cookie:
            headers["Cookie"] = f"warren_login={self.cookie}"
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            text = r.read().decode(errors="replace")
            m = re.search(r"warren_login=([A-Za-z0-9_-]+)", r.getheader("Set-Cookie") or "")
            if m:
                self.cookie = m.group(1)
            m = re.search(r'name="csrf" value="([^"]+)"', text)
            if m:
                self.csrf = m.group(1)
            return r.status, text, r
        finally:
            c.close()

    def sign_in(self, email, password):
        if not self.csrf:
            status, text, _ = self.request("GET", "/argotunnel")
            assert status == 200, (status, text[:300])
        body = urllib.parse.urlencode({"csrf": self.csrf, "email": email, "password": password})
        return self.request("POST", "/argotunnel/signin", body)


def page_error(text):
    m = re.search(r'<p id="error" class="error">([^<]*)</p>', text)
    return m.group(1) if m else None


def test_brute_force_is_throttled_and_others_still_sign_in(data_dir, edge_api):
    """200 wrong passwords for alice from 10 parallel sessions at 127.0.0.1:
    alice's email locks (even her right password is refused at once, with
    Retry-After), nobody gets 503, the flood beyond the source's share of
    password checks is turned away at once, and bob signs in from
    127.0.0.2 meanwhile. The audit log has the lockout."""
    base, edge_proc = edge_api
    ok(edge("user", "add", "bob@example.test", data_dir=data_dir, env={"WARREN_EDGE_PASSWORD": PASSWORD}))

    statuses, errors, lock = [], [], threading.Lock()
    def attacker(n):
        form = Form(base, "127.0.0.1")
        for i in range(20):
            try:
                status, text, _ = form.sign_in("alice@example.test", f"guess-{n}-{i}")
            except OSError as e:
                with lock:
                    errors.append(repr(e))
                continue
            with lock:
                statuses.append((status, page_error(text)))

    threads = [threading.Thread(target=attacker, args=(n,), daemon=True) for n in range(10)]
    for t in threads:
        t.start()
    # A user elsewhere signs in to another account once the flood is under way.
    assert wait_for(lambda: len(statuses) + len(errors) >= 20, timeout=120)
    user_status, user_text, _ = Form(base, "127.0.0.2").sign_in("bob@example.test", PASSWORD)
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:5]

    assert user_status == 303, (user_status, page_error(user_text))
    codes = [s for s, _ in statuses]
    assert len(codes) == 200
    assert set(codes) <= {403, 429}, sorted(set(codes))
    wrong = [e for s, e in statuses if s == 403]
    locked = [e for s, e in statuses if s == 429 and e and e.startswith("Too many failed sign-ins; try again in")]
    turned_away = [e for s, e in statuses if s == 429 and e and "from your network" in e]
    assert all(e == "Wrong email or password." for e in wrong), set(wrong)
    assert len(wrong) + len(locked) + len(turned_away) == 200
    # Far fewer password checks than guesses: 5 free ones, then one per delay.
    assert 5 <= len(wrong) < 40, len(wrong)
    assert locked, "the email was never locked"

    # Locked: her right password too, from anywhere, answered 429 at once.
    for source in ("127.0.0.1", "127.0.0.3"):
        status, text, r = Form(base, source).sign_in("alice@example.test", PASSWORD)
        assert status == 429, (status, page_error(text))
        assert page_error(text).startswith("Too many failed sign-ins; try again in"), page_error(text)
        assert int(r.getheader("Retry-After")) >= 1
    # An email without a user gets the same answer after as many failures.
    form = Form(base, "127.0.0.4")
    answers = [form.sign_in("nobody@example.test", "guess")[0] for _ in range(5)]
    status, text, r = form.sign_in("nobody@example.test", PASSWORD)
    assert answers == [403] * 5 and status == 429, (answers, status)
    assert page_error(text).startswith("Too many failed sign-ins; try again in")
    # Bob, from elsewhere, still signs in.
    assert Form(base, "127.0.0.2").sign_in("bob@example.test", PASSWORD)[0] == 303

    r = ok(edge("audit", "-o", "json", data_dir=data_dir))
    rows = json.loads(r.stdout)
    alice = [e for e in rows if e["action"] == "login.lock" and e["target_type"] == "email"
             and e["target_id"] == "alice@example.test"]
    assert alice, [e["action"] for e in rows]
    assert alice[0]["actor"] == "edge" and alice[0]["detail"]["source"] == "127.0.0.1"
    assert alice[0]["detail"]["failures"] == 5 and alice[0]["account_id"]
    assert any(e["action"] == "login.lock" and e["target_id"] == "nobody@example.test" for e in rows)
    log = edge_proc.output()
    assert "failed sign-ins for alice@example.test" in log and PASSWORD not in log
