"""A small headless-Chromium driver for the e2e tests, Python stdlib only.

Starts Debian's chromium with --headless=new --remote-debugging-port=0 and
speaks the Chrome DevTools Protocol (CDP) to it over one WebSocket (a
minimal RFC 6455 client below: masked client frames, fragmented and
extended-length server frames, ping/pong, close). Pages are driven through
a flattened session to a new target, so browser-level commands (downloads)
and page commands share the connection.

    with Chromium(tmp_path) as b:
        page = b.new_page()
        page.goto("http://127.0.0.1:8081/argotunnel")
        page.fill("#email", "alice@example.test")
        page.click_and_wait("#submit")
        page.text("#error")
"""
import base64
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.parse

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium():
    exe = os.environ.get("CHROMIUM")
    if exe:
        return exe
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class WebSocketError(Exception):
    pass


class WebSocket:
    """A blocking WebSocket client for ws:// URLs (enough for CDP)."""

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, url, timeout=30):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "ws":
            raise WebSocketError(f"only ws:// is supported, not {url}")
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path + (f"?{u.query}" if u.query else "")
        req = (f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise WebSocketError("connection closed during the handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise WebSocketError(f"handshake refused: {lines[0]}")
        fields = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
        want = base64.b64encode(hashlib.sha1((key + self.GUID).encode()).digest()).decode()
        if fields.get("sec-websocket-accept") != want:
            raise WebSocketError("bad Sec-WebSocket-Accept")

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise WebSocketError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self, timeout=None):
        """The next text message (fragments joined)."""
        self.sock.settimeout(timeout)
        message, first_op = b"", None
        while True:
            b0, b1 = self._read(2)
            fin, op = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if op == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if op == 0xA:  # pong
                continue
            if op == 0x8:
                raise WebSocketError("closed by the peer")
            if op in (0x1, 0x2):
                first_op, message = op, payload
            elif op == 0x0 and first_op is not None:
                message += payload
            if fin and first_op is not None:
                return message.decode()

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class CDPError(Exception):
    pass


class Chromium:
    """A headless Chromium with its own profile in |workdir|."""

    def __init__(self, workdir, timeout=30, args=None, env=None):
        """|args|: extra command-line arguments; |env|: merged into os.environ."""
        self.workdir = str(workdir)
        self.timeout = timeout
        self.extra_args = list(args or [])
        self.env = dict(os.environ, **(env or {}))
        self.profile = os.path.join(self.workdir, "chromium-profile")
        self.downloads = os.path.join(self.workdir, "downloads")
        os.makedirs(self.profile, exist_ok=True)
        os.makedirs(self.downloads, exist_ok=True)
        self.proc = None
        self.ws = None
        self.next_id = 0
        self.events = []

    def __enter__(self):
        exe = find_chromium()
        if not exe:
            raise RuntimeError("no chromium found (apt-get install chromium, or set CHROMIUM)")
        args = [exe, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu",
                "--disable-dev-shm-usage", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--metrics-recording-only",
                "--password-store=basic", "--use-mock-keychain", *self.extra_args, "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.log = open(os.path.join(self.workdir, "chromium.log"), "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, env=self.env,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        # With port 0 Chromium writes "PORT\n/devtools/browser/ID" here.
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                with open(port_file) as f:
                    lines = f.read().split("\n")
                if len(lines) >= 2 and lines[0] and lines[1]:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not start; see {self.log.name}")
            time.sleep(0.05)
        self.ws = WebSocket(f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}", timeout=self.timeout)
        self.call("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": self.downloads,
                                                  "eventsEnabled": True})
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.ws:
            try:
                self.call("Browser.close", timeout=5)
            except Exception:
                pass
            self.ws.close()
            self.ws = None
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def call(self, method, params=None, session=None, timeout=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"{method}: no answer")
            m = json.loads(self.ws.recv(timeout=left))
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise CDPError(f"{method}: {m['error']}")
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def wait_event(self, method, pred=lambda m: True, timeout=None):
        """Returns the first queued or new event |method| for which pred(event) holds."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, m in enumerate(self.events):
                if m.get("method") == method and pred(m):
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"no {method} event within the timeout")
            m = json.loads(self.ws.recv(timeout=left))
            if "method" in m:
                self.events.append(m)

    def new_page(self):
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.call("Page.enable")
        page.call("Runtime.enable")
        return page


class Page:
    def __init__(self, browser, session):
        self.b = browser
        self.session = session

    def call(self, method, params=None):
        return self.b.call(method, params, session=self.session)

    def _drop_events(self, method):
        self.b.events = [m for m in self.b.events
                         if not (m.get("method") == method and m.get("sessionId") == self.session)]

    def wait_load(self, timeout=None):
        self.b.wait_event("Page.loadEventFired", lambda m: m.get("sessionId") == self.session, timeout)

    def goto(self, url):
        self._drop_events("Page.loadEventFired")
        r = self.call("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise CDPError(f"navigating to {url}: {r['errorText']}")
        self.wait_load()

    def eval(self, expression):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise CDPError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def exists(self, selector):
        return self.eval(f"document.querySelector({json.dumps(selector)}) !== null")

    def text(self, selector):
        return self.eval(f"(e => e ? e.textContent : null)(document.querySelector({json.dumps(selector)}))")

    def fill(self, selector, value):
        """Sets an input's value as typing would (with an input event)."""
        ok = self.eval(f"(e => {{ if (!e) return false; e.focus(); e.value = {json.dumps(value)};"
                       f" e.dispatchEvent(new Event('input', {{bubbles: true}})); return true; }})"
                       f"(document.querySelector({json.dumps(selector)}))")
        if not ok:
            raise CDPError(f"no element {selector}")

    def click(self, selector):
        ok = self.eval(f"(e => {{ if (!e) return false; e.click(); return true; }})"
                       f"(document.querySelector({json.dumps(selector)}))")
        if not ok:
            raise CDPError(f"no element {selector}")

    def click_and_wait(self, selector):
        """Clicks (a submit button, a link) and waits for the next page load."""
        self._drop_events("Page.loadEventFired")
        self.click(selector)
        self.wait_load()

    def url(self):
        return self.eval("location.href")

    def download(self, selector, timeout=None):
        """Clicks a download link; returns the bytes of the finished file."""
        self.b.events = [m for m in self.b.events if not m.get("method", "").startswith("Browser.download")]
        self.click(selector)
        begin = self.b.wait_event("Browser.downloadWillBegin", timeout=timeout)
        guid = begin["params"]["guid"]
        done = self.b.wait_event("Browser.downloadProgress",
                                 lambda m: m["params"]["guid"] == guid and
                                 m["params"]["state"] in ("completed", "canceled"), timeout)
        if done["params"]["state"] != "completed":
            raise CDPError("download canceled")
        name = begin["params"].get("suggestedFilename") or guid
        with open(os.path.join(self.b.downloads, name), "rb") as f:
            return name, f.read()
