#!/usr/bin/env python3
"""Soak test: mixed load for a long time against a real warren-edge, warren
connectors and a local origin on loopback, watching the processes' memory and
file descriptors.

    make soak                                   # an hour (SOAK_SECONDS=3600)
    SOAK_SECONDS=600 make soak                  # ten minutes
    scripts/soak.py --seconds 20 --build build/asan --out /tmp/soak

Stdlib only (plus tests/e2e/origins.py, the e2e tests' origin and WebSocket
helpers). Everything runs from one work directory under --out (default
build/soak/run-STAMP/: the edge's data dir, every process's log) and the
report goes to OUT/report.md and OUT/report.json (also copied to
build/soak/latest.{md,json} when --out is the default).

What runs
  - warren-edge (visitor HTTP, API + login pages, QUIC for connectors), with
    its per-source visitor limits lifted when it has them (every visitor
    here is 127.0.0.1), tests/e2e/origins.py as the origin (/echo, /bytes,
    /ws);
  - tunnel "steady" with one connector that is never touched: its RSS and fds
    are watched, as are the edge's;
  - tunnel "churn" with two connector replicas; every --churn-interval seconds
    one of them is stopped and started again, alternately with SIGTERM
    (graceful: it unregisters and drains) and SIGKILL (the edge finds out
    when the QUIC idle timeout of 5 s expires);
  - after every churn event, an "ephemeral" tunnel: created through the API,
    routed, served by a fresh connector (registration), used once, deleted
    with cascade=true (the edge closes its live connections), connector
    stopped;
  - visitors: keep-alive HTTP clients and new-connection clients (GET /echo,
    GET /bytes of assorted sizes, checked by SHA-256; POST bodies echoed back
    with their hash), WebSocket echo sessions (hand-rolled RFC 6455 client,
    several messages of random size and opcode, a ping, the close handshake),
    70 % to the steady tunnel and 30 % to the churn tunnel;
  - API writes with the admin's token from DIR/cert.pem: create a tunnel,
    route DNS, read the record back, delete the record, delete the tunnel,
    list tunnels;
  - sign-in page loads (GET /argotunnel?callback=...), mostly with the session
    cookie of the previous load, one in ten as a new visitor (new sessions
    stay well under the edge's 1024-session cap: they expire after 10 min).

Phases: warm-up (all load, --warmup seconds), a pause in which the idle
baseline is sampled, the load for --seconds with samples every
--sample-interval, then the load stops and the idle state is sampled again.

Verdict (exit status 1 if any fails; 2 for a setup error):
  1. No request failed unexpectedly. Every request to the steady tunnel, every
     API call and sign-in page load must succeed. Requests to the churn tunnel
     may fail only if they overlap [kill - 0.5 s, kill + 10 s] of a SIGKILLed
     replica (its connections stay registered until the edge's QUIC idle
     timeout, 5 s, expires; twice that for sanitizer builds and scheduling).
     A graceful (SIGTERM) restart must not lose any request.
  2. No process died: edge, steady connector, origin, and the churn replicas
     except when we stopped them; every SIGTERMed connector exits 0; at the
     end edge and connectors stop on SIGTERM with status 0 (for ASan builds
     that includes LeakSanitizer's check at exit).
  3. File descriptors return to the idle baseline: after the load stops, each
     watched process's fd count must come back within +-5 of its count at the
     idle baseline (waited for up to 30 s: lingering closes take up to 5 s).
     +-5 allows for the connector's origin keep-alive pool (2 idle per host)
     and a login or API socket the kernel has not finished closing.
  4. RSS does not keep growing: RSS at the end of the load (median of the
     samples in the last 10 % of it) minus RSS at the 25 % mark (median of the
     samples within +-5 % of it) must be below max(8 MiB, 10 % of the latter).
     The first quarter is warm-up for the allocator: glibc keeps freed heap
     around (arenas, fragmentation after peak concurrency), SQLite's page cache
     fills to its 2 MB default as the store grows, GnuTLS and ngtcp2 grow their
     per-connection state to the peak number of reconnects in flight. After
     that, a steady process stays flat within a few MiB; a leak of 200 bytes
     per request at 150 requests/s adds 100 MiB in an hour, 18 MiB in ten
     minutes. The least-squares slope after the 25 % mark is reported too.
     Sanitizer builds (ASan's quarantine and allocator caches make RSS
     meaningless) report RSS but are not judged on it; they have LeakSanitizer
     at exit instead (verdict 2).
"""
import argparse
import base64
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import origins  # noqa: E402  (the e2e origin and its WebSocket helpers)
import common  # noqa: E402
from common import free_port, raise_nofile, read_cert, recv_head  # noqa: E402
from origins import ws_recv, ws_send  # noqa: E402

ZONE = "soak.test"
SECRET = base64.b64encode(bytes(range(32))).decode()
KILL_WINDOW = 10.0  # s after a SIGKILL in which churn-tunnel requests may fail
FD_SLACK = 5
RSS_FLOOR = 8 * 1024 * 1024
RSS_FRACTION = 0.10
BYTES_SIZES = [0, 1, 1000, 16384, 65536, 200000]
POST_SIZES = [0, 10, 4096, 65536]


def now():
    return time.monotonic()


def is_sanitized(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
        return b"__asan_init" in data or b"__tsan_init" in data or b"__msan_init" in data
    except OSError:
        return False


# --- processes ----------------------------------------------------------------

class Proc(common.Proc):
    """A started program with its output in |log|; |expected_exit| says
    whether we asked it to exit."""

    def __init__(self, args, log, env=None, name=None):
        super().__init__(args, log, env=env, name=name)
        self.expected_exit = False  # set before we signal it

    def tail(self, n=30):
        return "\n".join(self.output().splitlines()[-n:])

    def wait_output(self, needle, timeout, start=0):
        """The offset just past |needle| in the log, or None (see find_output)."""
        i = self.find_output(needle, timeout, start)
        return None if i is None else i + len(needle)

    def stop(self, timeout=30):
        """SIGTERM, then SIGKILL after |timeout|; returns the exit status."""
        self.expected_exit = True
        return super().stop(timeout)

    def terminate(self):
        self.expected_exit = True
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)

    def kill(self):
        self.expected_exit = True
        return super().kill()


def proc_sample(pid):
    """(RSS bytes, open fds, threads) of |pid| from /proc, or None if gone."""
    try:
        rss = threads = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return rss, fds, threads
    except (OSError, ValueError):
        return None


# --- the API --------------------------------------------------------------------

class ApiError(Exception):
    pass


class Api:
    def __init__(self, port, zone, account, token):
        self.port, self.zone, self.account, self.token = port, zone, account, token

    def call(self, method, path, body=None, timeout=30):
        """(status, envelope) of one request on a new connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Authorization": f"Bearer {self.token}", "User-Agent": "warren-soak"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, "/client/v4" + path, body=data, headers=headers)
            r = conn.getresponse()
            text = r.read()
        finally:
            conn.close()
        try:
            j = json.loads(text)
        except ValueError:
            raise ApiError(f"{method} {path}: {r.status} not JSON: {text[:200]!r}")
        return r.status, j

    def ok(self, method, path, body=None):
        status, j = self.call(method, path, body)
        if status != 200 or not j.get("success"):
            raise ApiError(f"{method} {path}: {status} {json.dumps(j)[:300]}")
        return j["result"]

    def acct(self, rest=""):
        return f"/accounts/{self.account}{rest}"

    def create_tunnel(self, name):
        return self.ok("POST", self.acct("/cfd_tunnel"), {"name": name, "tunnel_secret": SECRET,
                                                          "config_src": "local"})["id"]

    def route(self, tid, hostname):
        return self.ok("PUT", f"/zones/{self.zone}/tunnels/{tid}/routes",
                       {"type": "dns", "user_hostname": hostname, "overwrite_existing": True})

    def creds(self, tid):
        return {"AccountTag": self.account, "TunnelSecret": SECRET, "TunnelID": tid}


# --- bookkeeping ----------------------------------------------------------------

class Stats:
    """Counts outcomes by kind; keeps failures with their times."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}      # (kind, target) -> [ok, failed]
        self.failures = []    # dicts: kind, target, start, end, error
        self.retries = 0      # keep-alive requests retried on a connection the server had closed
        self.windows = []     # (start, end, why): churn-tunnel failures allowed inside

    def add(self, kind, target, ok, start, error=None):
        end = now()
        with self.lock:
            c = self.counts.setdefault((kind, target), [0, 0])
            c[0 if ok else 1] += 1
            if not ok:
                self.failures.append({"kind": kind, "target": target, "start": start, "end": end,
                                      "error": str(error)[:400]})

    def window(self, start, end, why):
        with self.lock:
            self.windows.append((start, end, why))

    def expected(self, f):
        if f["target"] != "churn":
            return None
        for s, e, why in self.windows:
            if f["start"] <= e and f["end"] >= s:
                return why
        return None


# --- load -----------------------------------------------------------------------

class Load:
    """Shared state of the workers: ports, hosts, phase events."""

    def __init__(self, http_port, api, stats, rate):
        self.http_port = http_port
        self.api = api
        self.stats = stats
        self.rate = rate
        self.running = threading.Event()  # set: work; clear: pause
        self.stop = threading.Event()
        self.idle = {}                    # worker name -> paused and connections closed
        self.idle_lock = threading.Lock()

    def host(self, rng):
        return ("churn", f"churn.{ZONE}") if rng.random() < 0.3 else ("steady", f"steady.{ZONE}")

    def set_idle(self, name, v):
        with self.idle_lock:
            self.idle[name] = v

    def all_idle(self):
        with self.idle_lock:
            return all(self.idle.values())


class Worker(threading.Thread):
    """Loops one(); paced at |per_second| iterations; closes its connections
    when paused (so the idle baseline holds no client sockets)."""

    def __init__(self, load, name, per_second, seed):
        super().__init__(name=name, daemon=True)
        self.load, self.per_second = load, per_second
        self.rng = random.Random(seed)
        self.error = None
        load.set_idle(name, True)

    def one(self):
        raise NotImplementedError

    def close_connections(self):
        pass

    def run(self):
        try:
            interval = 1.0 / self.per_second
            next_t = now()
            while not self.load.stop.is_set():
                if not self.load.running.is_set():
                    self.close_connections()
                    self.load.set_idle(self.name, True)
                    while not self.load.running.wait(0.1):
                        if self.load.stop.is_set():
                            return
                    self.load.set_idle(self.name, False)
                    next_t = now()
                self.one()
                next_t += interval
                d = next_t - now()
                if d > 0:
                    time.sleep(d)
                elif d < -1:
                    next_t = now()  # behind: do not burst to catch up
        except BaseException as e:  # a bug in the script itself
            self.error = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
            self.load.stop.set()
        finally:
            self.close_connections()
            self.load.set_idle(self.name, True)


def check_http(method, path, status, body, sent=None):
    """None if the answer is what the origin gives for |path|, else why not."""
    if status != 200:
        return f"status {status}: {body[:200]!r}"
    if path.startswith("/echo"):
        try:
            j = json.loads(body)
        except ValueError:
            return f"echo answer not JSON: {body[:200]!r}"
        if j.get("method") != method or j.get("target") != path:
            return f"echo says {j.get('method')} {j.get('target')}"
        if sent is not None and (j.get("length") != len(sent)
                                 or j.get("sha256") != hashlib.sha256(sent).hexdigest()):
            return f"request body arrived as {j.get('length')} bytes {j.get('sha256')}"
        return None
    if path.startswith("/bytes"):
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
        n, seed = int(q["n"]), int(q["seed"])
        if len(body) != n or hashlib.sha256(body).hexdigest() != origins.pattern_sha256(n, seed):
            return f"/bytes body wrong: {len(body)} of {n} bytes"
        return None
    return "unexpected path"


class HttpWorker(Worker):
    """Visitor requests; keep-alive (one connection reused) or a new
    connection with "Connection: close" for each request."""

    def __init__(self, load, name, per_second, seed, keep_alive):
        super().__init__(load, name, per_second, seed)
        self.keep_alive = keep_alive
        self.conns = {}
        self.n = 0

    def close_connections(self):
        for c in self.conns.values():
            c.close()
        self.conns.clear()

    def pick(self):
        self.n += 1
        r = self.rng.random()
        if r < 0.6:
            return "GET", f"/echo/{self.name}?i={self.n}", None
        if r < 0.85:
            return "GET", f"/bytes?n={self.rng.choice(BYTES_SIZES)}&seed={self.rng.randrange(4)}", None
        size = self.rng.choice(POST_SIZES)
        return "POST", f"/echo/post?i={self.n}", self.rng.randbytes(size)

    def one(self):
        target, hostname = self.load.host(self.rng)
        method, path, body = self.pick()
        headers = {"Host": hostname}
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        if not self.keep_alive:
            headers["Connection"] = "close"
        start = now()
        for attempt in (0, 1):
            conn = self.conns.get(target) if self.keep_alive else None
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.load.http_port, timeout=30)
            try:
                conn.request(method, path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                status = r.status
                will_close = r.will_close
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                conn.close()
                self.conns.pop(target, None)
                if reused and attempt == 0:
                    # The server closed an idle keep-alive connection as we
                    # reused it: what every HTTP client retries.
                    with self.load.stats.lock:
                        self.load.stats.retries += 1
                    continue
                self.load.stats.add("http-ka" if self.keep_alive else "http-new", target, False,
                                    start, f"{method} {path}: {type(e).__name__}: {e}")
                return
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                self.conns.pop(target, None)
                self.load.stats.add("http-ka" if self.keep_alive else "http-new", target, False,
                                    start, f"{method} {path}: {type(e).__name__}: {e}")
                return
            break
        if self.keep_alive and not will_close:
            self.conns[target] = conn
        else:
            conn.close()
            self.conns.pop(target, None)
        why = check_http(method, path, status, data, body)
        self.load.stats.add("http-ka" if self.keep_alive else "http-new", target, why is None,
                            start, why and f"{method} {path}: {why}")


class WsWorker(Worker):
    """WebSocket echo sessions of a few messages each."""

    def session(self, hostname):
        s = socket.create_connection(("127.0.0.1", self.load.http_port), timeout=30)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(origins.ws_upgrade_request(hostname, key))
            head, rest = recv_head(s, "the handshake", step=4096).split(b"\r\n\r\n", 1)
            if rest:
                raise ValueError("bytes after the 101 before any message")
            lines = head.decode("latin-1").split("\r\n")
            if lines[0].split(" ")[1:2] != ["101"]:
                raise ValueError(f"handshake answer {lines[0]!r}")
            if f"sec-websocket-accept: {origins.ws_accept(key)}".lower() not in head.decode("latin-1").lower():
                raise ValueError("bad Sec-WebSocket-Accept")
            for i in range(self.rng.randint(1, 8)):
                op = self.rng.choice((0x1, 0x2))
                n = self.rng.choice((0, 1, 125, 126, 1000, 4096, 70000))
                msg = (b"x" * n) if op == 0x1 else self.rng.randbytes(n)
                ws_send(s, op, msg)
                got = ws_recv(s)
                if got != (True, op, msg):
                    raise ValueError(f"message {i} came back as op {got[1]} {len(got[2])} bytes")
            ws_send(s, 0x9, b"soak")
            if ws_recv(s) != (True, 0xA, b"soak"):
                raise ValueError("no pong")
            ws_send(s, 0x8, struct.pack("!H", 1000))
            if ws_recv(s) != (True, 0x8, struct.pack("!H", 1000)):
                raise ValueError("no close echo")
            if s.recv(1) != b"":
                raise ValueError("data after the close frame")
        finally:
            s.close()

    def one(self):
        target, hostname = self.load.host(self.rng)
        start = now()
        try:
            self.session(hostname)
            self.load.stats.add("websocket", target, True, start)
        except (OSError, EOFError, ValueError, IndexError) as e:
            self.load.stats.add("websocket", target, False, start, f"{type(e).__name__}: {e}")


class ApiWorker(Worker):
    """One API write cycle per iteration: create, route, read, delete record,
    delete tunnel, list."""

    def __init__(self, load, name, per_second, seed):
        super().__init__(load, name, per_second, seed)
        self.n = 0
        self.writes = 0

    def one(self):
        api = self.load.api
        self.n += 1
        name = f"soak-{os.getpid()}-{self.n}"
        hostname = f"api{self.n}.{ZONE}"
        start = now()
        tid = None
        try:
            tid = api.create_tunnel(name)
            self.writes += 1
            r = api.route(tid, hostname)
            self.writes += 1
            if r.get("name") != hostname:
                raise ApiError(f"route answer {r}")
            recs = api.ok("GET", f"/zones/{api.zone}/dns_records?name={hostname}")
            if len(recs) != 1 or recs[0]["content"] != f"{tid}.cfargotunnel.{ZONE}":
                raise ApiError(f"record of {hostname}: {recs}")
            api.ok("DELETE", f"/zones/{api.zone}/dns_records/{recs[0]['id']}")
            self.writes += 1
            api.ok("DELETE", api.acct(f"/cfd_tunnel/{tid}"))
            self.writes += 1
            tid = None
            rows = api.ok("GET", api.acct(f"/cfd_tunnel?is_deleted=false&name={name}"))
            if rows:
                raise ApiError(f"deleted tunnel {name} still listed")
            self.load.stats.add("api", "api", True, start)
        except (OSError, http.client.HTTPException, ApiError, KeyError, ValueError) as e:
            self.load.stats.add("api", "api", False, start, f"{type(e).__name__}: {e}")
            if tid:
                try:
                    api.call("DELETE", api.acct(f"/cfd_tunnel/{tid}?cascade=true"))
                except (OSError, http.client.HTTPException, ValueError):
                    pass


class LoginWorker(Worker):
    """Sign-in page loads, with the session cookie of the last load except
    for one load in ten (a new visitor)."""

    def __init__(self, load, name, per_second, seed, api_port):
        super().__init__(load, name, per_second, seed)
        self.api_port = api_port
        self.cookie = None

    def one(self):
        if self.cookie is None or self.rng.random() < 0.1:
            self.cookie = None
        key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        base = f"http://127.0.0.1:{self.api_port}"
        callback = f"{base}/argotunnel/transfer/{key}"
        path = f"/argotunnel?aud=&callback={urllib.parse.quote(callback, safe='')}"
        headers = {"Cookie": self.cookie} if self.cookie else {}
        start = now()
        conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=30)
        try:
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            body = r.read()
            if r.status != 200 or b'id="signin"' not in body:
                raise ValueError(f"status {r.status}: {body[:200]!r}")
            sc = r.getheader("Set-Cookie")
            if sc:
                self.cookie = sc.split(";", 1)[0]
            elif not self.cookie:
                raise ValueError("no session cookie for a new visitor")
            self.load.stats.add("login", "login", True, start)
        except (OSError, http.client.HTTPException, ValueError) as e:
            self.load.stats.add("login", "login", False, start, f"{type(e).__name__}: {e}")
        finally:
            conn.close()


# --- the soak ---------------------------------------------------------------------

class Soak:
    def __init__(self, args):
        self.args = args
        self.build = os.path.join(ROOT, args.build) if not os.path.isabs(args.build) else args.build
        self.warren = os.path.join(self.build, "warren")
        self.edge_bin = os.path.join(self.build, "warren-edge")
        self.out = args.out
        self.sanitized = is_sanitized(self.edge_bin)
        self.stats = Stats()
        self.procs = []
        self.problems = []          # verdict failures (strings)
        self.notes = []
        self.samples = []           # {t, phase, edge: (rss, fds, thr), connector: ...}
        self.events = []            # (t, text)
        self.churn = {}             # replica name -> Proc
        self.churn_exits = []       # (replica, signal, status)
        self.t0 = now()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("TUNNEL_") and k not in ("NO_AUTOUPDATE", "NO_TLS_VERIFY")}
        env["HOME"] = os.path.join(self.out, "home")
        os.makedirs(env["HOME"], exist_ok=True)
        if self.sanitized:
            a = env.get("ASAN_OPTIONS", "")
            env["ASAN_OPTIONS"] = (a + ":" if a else "") + "quarantine_size_mb=16"
        self.env = env

    def event(self, text):
        t = now() - self.t0
        self.events.append((round(t, 2), text))
        if self.args.verbose:
            print(f"[{t:8.1f}] {text}", flush=True)

    def start(self, args, name):
        n = sum(1 for p in self.procs if p.name.split("#")[0] == name)
        log = os.path.join(self.out, f"{name}.log" if n == 0 else f"{name}-{n}.log")
        p = Proc(args, log, env=self.env, name=name if n == 0 else f"{name}#{n}")
        self.procs.append(p)
        return p

    def run_cmd(self, args):
        r = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=self.env,
                           timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{args}: {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    # -- setup

    def setup(self):
        d = self.dir = os.path.join(self.out, "edge")
        self.run_cmd([self.edge_bin, "init", "--data-dir", d, "--zone", ZONE])
        self.origin = self.start([sys.executable, os.path.join(ROOT, "tests", "e2e", "origins.py"),
                                  "--http", "127.0.0.1:0"], "origin")
        if self.origin.wait_output("origin ready", 30) is None:
            raise RuntimeError(f"origin did not start: {self.origin.tail()}")
        self.origin_port = int(re.search(r"origin ready http=(\d+)", self.origin.output()).group(1))
        self.udp = free_port(socket.SOCK_DGRAM)
        self.http = free_port()
        self.api_port = free_port()
        self.edge = self.start([self.edge_bin, "run", "--data-dir", d,
                                "--tunnel-listen", f"127.0.0.1:{self.udp}",
                                "--http-listen", f"127.0.0.1:{self.http}",
                                "--api-listen", f"127.0.0.1:{self.api_port}",
                                *self.no_source_limits()], "warren-edge")
        if self.edge.wait_output("Serving visitors on http://", 60) is None:
            raise RuntimeError(f"edge did not start: {self.edge.tail()}")
        deadline = now() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.api_port), timeout=1):
                    break
            except OSError:
                if now() > deadline or not self.edge.alive():
                    raise RuntimeError(f"API not listening: {self.edge.tail()}")
                time.sleep(0.05)
        zone, account, token = read_cert(os.path.join(d, "cert.pem"))
        self.api = Api(self.api_port, zone, account, token)
        self.tunnels = {}
        for name in ("steady", "churn"):
            tid = self.api.create_tunnel(name)
            self.api.route(tid, f"{name}.{ZONE}")
            creds = os.path.join(self.out, f"{name}.json")
            with open(creds, "w") as f:
                json.dump(self.api.creds(tid), f)
            self.tunnels[name] = (tid, creds)
        self.steady = self.connector("steady", "warren-steady")
        for r in ("churn-a", "churn-b"):
            self.churn[r] = self.connector("churn", f"warren-{r}")
        for p in [self.steady] + list(self.churn.values()):
            self.wait_ready(p)
        self.event("setup done: edge, origin, steady connector, two churn replicas")

    def no_source_limits(self):
        """Flags that lift the edge's per-source visitor limits, for the edges
        that have them: all the soak's visitors come from 127.0.0.1, so the
        per-address request rate (default 100/s, answered 429) would be
        measured instead of the edge. The limits themselves are tested
        elsewhere."""
        r = subprocess.run([self.edge_bin, "run", "--help"], capture_output=True, text=True,
                           env=self.env, timeout=30)
        flags = []
        for flag, value in (("--requests-per-second-per-source", "0"),
                            ("--max-conns-per-source", "0")):
            if flag in r.stdout + r.stderr:
                flags += [flag, value]
        if flags:
            self.event(f"edge per-source limits lifted: {' '.join(flags)}")
        return flags

    def connector(self, tunnel, name, creds=None, tid=None):
        if creds is None:
            tid, creds = self.tunnels[tunnel]
        metrics = free_port()
        p = self.start([self.warren, "tunnel", "--no-autoupdate", "--edge", f"127.0.0.1:{self.udp}",
                        "--cacert", os.path.join(self.dir, "ca.pem"), "--protocol", "quic",
                        "--credentials-file", creds, "--metrics", f"127.0.0.1:{metrics}",
                        "--grace-period", "5s", "--url", f"http://127.0.0.1:{self.origin_port}",
                        "run", tid], name)
        p.metrics = metrics
        return p

    def ready(self, p):
        conn = http.client.HTTPConnection("127.0.0.1", p.metrics, timeout=2)
        try:
            conn.request("GET", "/ready")
            r = conn.getresponse()
            body = r.read()
            return r.status == 200 and json.loads(body).get("readyConnections", 0) > 0
        except (OSError, http.client.HTTPException, ValueError):
            return False
        finally:
            conn.close()

    def wait_ready(self, p, timeout=60):
        deadline = now() + timeout
        while not self.ready(p):
            if not p.alive():
                raise RuntimeError(f"{p.name} exited {p.p.returncode}: {p.tail()}")
            if now() > deadline:
                raise RuntimeError(f"{p.name} not ready after {timeout} s: {p.tail()}")
            time.sleep(0.05)

    # -- churn and ephemeral tunnels (one thread)

    def churn_loop(self, load):
        k = 0
        next_t = now() + self.args.churn_interval
        while not load.stop.is_set():
            if not load.running.is_set() or now() < next_t:
                time.sleep(0.1)
                continue
            next_t = now() + self.args.churn_interval
            replica = ("churn-a", "churn-b")[k % 2]
            sig = "TERM" if (k // 2) % 2 == 0 else "KILL"
            k += 1
            p = self.churn[replica]
            if not p.alive():
                self.problems.append(f"churn replica {p.name} died on its own: status "
                                     f"{p.p.returncode}; log {p.log}")
            t = now()
            if sig == "KILL":
                self.stats.window(t - 0.5, t + KILL_WINDOW, f"SIGKILL of {p.name}")
                rc = p.kill()
            else:
                rc = p.stop(30)
                if rc != 0:
                    self.problems.append(f"{p.name} exited {rc} on SIGTERM (graceful restart); "
                                         f"log {p.log}")
            self.churn_exits.append((p.name, sig, rc))
            np = self.connector("churn", f"warren-{replica}")
            self.churn[replica] = np
            try:
                self.wait_ready(np)
            except RuntimeError as e:
                self.problems.append(f"restarted churn replica: {e}")
                load.stop.set()
                return
            self.event(f"churn: SIG{sig} {p.name} (exit {rc}), {np.name} ready after "
                       f"{now() - t:.2f} s")
            self.ephemeral(k)

    def ephemeral(self, k):
        """A tunnel created, served by a new connector and deleted (cascade)."""
        start = now()
        name = f"eph-{k}"
        hostname = f"eph{k}.{ZONE}"
        p = None
        try:
            tid = self.api.create_tunnel(name)
            self.api.route(tid, hostname)
            creds = os.path.join(self.out, f"{name}.json")
            with open(creds, "w") as f:
                json.dump(self.api.creds(tid), f)
            p = self.connector(None, "warren-eph", creds=creds, tid=tid)
            self.wait_ready(p)
            conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=30)
            try:
                conn.request("GET", f"/echo/eph{k}", headers={"Host": hostname})
                r = conn.getresponse()
                why = check_http("GET", f"/echo/eph{k}", r.status, r.read())
            finally:
                conn.close()
            if why:
                raise ApiError(f"request through the ephemeral tunnel: {why}")
            conns = self.api.ok("GET", self.api.acct(f"/cfd_tunnel/{tid}/connections"))
            if len(conns) != 1:
                raise ApiError(f"ephemeral tunnel has {len(conns)} connectors listed")
            self.api.ok("DELETE", self.api.acct(f"/cfd_tunnel/{tid}?cascade=true"))
            if p.wait_output("deleted", 30) is None:
                raise ApiError(f"connector of a deleted tunnel did not hear it: {p.tail(5)}")
            rc = p.stop(30)
            if rc != 0:
                raise ApiError(f"connector of the deleted tunnel exited {rc} on SIGTERM; log {p.log}")
            os.unlink(creds)
            self.stats.add("ephemeral", "ephemeral", True, start)
        except (OSError, http.client.HTTPException, ApiError, RuntimeError, ValueError) as e:
            self.stats.add("ephemeral", "ephemeral", False, start, f"{type(e).__name__}: {e}")
            if p:
                p.kill()

    # -- sampling

    def sample(self, phase):
        s = {"t": round(now() - self.t0, 2), "phase": phase}
        for key, p in (("edge", self.edge), ("connector", self.steady)):
            s[key] = proc_sample(p.pid)
        self.samples.append(s)
        return s

    def sampler(self, load, t_start, t_end):
        while not load.stop.wait(self.args.sample_interval):
            if now() > t_end:
                return
            if load.running.is_set():
                self.sample("load")
            for p in [self.edge, self.steady, self.origin] + list(self.churn.values()):
                if not p.alive() and not p.expected_exit:
                    self.problems.append(f"{p.name} died: status {p.p.returncode}; log {p.log}")
                    p.expected_exit = True  # report once
                    load.stop.set()

    def quiesce(self, load, timeout=30):
        load.running.clear()
        deadline = now() + timeout
        while not load.all_idle() and now() < deadline:
            time.sleep(0.05)

    def wait_fds(self, base, timeout):
        """Polls until both watched processes' fd counts are within FD_SLACK
        of |base|; returns the last sample."""
        deadline = now() + timeout
        while True:
            s = self.sample("idle-end")
            ok = all(s[k] and base[k] and abs(s[k][1] - base[k][1]) <= FD_SLACK
                     for k in ("edge", "connector"))
            if ok or now() > deadline:
                return s
            self.samples.pop()
            time.sleep(0.2)

    # -- the run

    def run(self):
        a = self.args
        self.setup()
        load = self.load = Load(self.http, self.api, self.stats, a.rate)
        per = a.rate
        workers = [
            HttpWorker(load, "ka-1", per * 0.35, 1, True),
            HttpWorker(load, "ka-2", per * 0.35, 2, True),
            HttpWorker(load, "new-1", per * 0.3, 3, False),
            WsWorker(load, "ws-1", max(1.0, per / 30), 4),
            ApiWorker(load, "api-1", a.api_rate, 5),
            LoginWorker(load, "login-1", a.login_rate, 6, self.api_port),
        ]
        for w in workers:
            w.start()
        churn = threading.Thread(target=self.churn_loop, args=(load,), daemon=True)
        churn.start()

        # Warm-up, then the idle baseline.
        load.running.set()
        self.event(f"warm-up for {a.warmup:.0f} s")
        load.stop.wait(a.warmup)
        self.quiesce(load)
        time.sleep(0.5)  # closed client sockets: the server side closes at once
        base = self.sample("idle-start")
        self.event(f"idle baseline: {base}")

        # The load.
        t_start = now()
        t_end = t_start + a.seconds
        self.load_start = t_start - self.t0
        load.running.set()
        self.event(f"load for {a.seconds:.0f} s at ~{a.rate:.0f} HTTP req/s")
        sampler = threading.Thread(target=self.sampler, args=(load, t_start, t_end), daemon=True)
        sampler.start()
        self.sample("load")
        while now() < t_end and not load.stop.is_set():
            time.sleep(0.2)
        self.sample("load")
        self.load_end = now() - self.t0
        self.quiesce(load)
        load.stop.set()
        for w in workers:
            w.join(60)
            if w.error:
                self.problems.append(f"worker {w.name} crashed (a bug in the soak script): {w.error}")
        churn.join(120)
        sampler.join(5)
        # Every churn replica must be up again for the edge's state to settle.
        for p in self.churn.values():
            if p.alive():
                try:
                    self.wait_ready(p, 30)
                except RuntimeError as e:
                    self.problems.append(str(e))
        end = self.wait_fds(base, 30)
        self.event(f"idle end: {end}")
        self.judge(base, end)
        self.shutdown()

    def shutdown(self):
        """SIGTERM to the connectors together (they unregister from the
        edge), then to the edge; each must exit 0."""
        for group in (list(self.churn.values()) + [self.steady], [self.edge]):
            for p in group:
                p.terminate()
            for p in group:
                rc = p.wait_exit(30)
                if rc != 0:
                    self.problems.append(f"{p.name} exited {rc} on SIGTERM at the end; log {p.log}:\n"
                                         f"{p.tail(40)}")
        self.origin.stop(10)

    # -- verdict

    def judge(self, base, end):
        # 1. failures
        self.unexpected, self.expected = [], []
        for f in self.stats.failures:
            why = self.stats.expected(f)
            (self.expected if why else self.unexpected).append(dict(f, allowed=why))
        if self.unexpected:
            self.problems.append(f"{len(self.unexpected)} requests failed unexpectedly; first: "
                                 f"{self.unexpected[0]}")
        total = sum(ok for ok, _ in self.stats.counts.values())
        if total == 0:
            self.problems.append("no request succeeded at all")
        # 3. fds
        self.fd_verdict = {}
        for k in ("edge", "connector"):
            if not base[k] or not end[k]:
                self.problems.append(f"{k}: no /proc sample (process gone?)")
                continue
            d = end[k][1] - base[k][1]
            self.fd_verdict[k] = d
            if abs(d) > FD_SLACK:
                self.problems.append(f"{k}: {end[k][1]} fds after the load vs {base[k][1]} at the "
                                     f"idle baseline ({d:+d}, allowed +-{FD_SLACK})")
        # 4. RSS
        self.rss_verdict = {}
        load = [s for s in self.samples if s["phase"] == "load"]
        if len(load) < 4:
            self.problems.append(f"only {len(load)} samples under load")
            return
        t0, t1 = self.load_start, self.load_end
        span = t1 - t0
        q = t0 + span * 0.25
        for k in ("edge", "connector"):
            pts = [(s["t"], s[k][0]) for s in load if s[k]]
            near = [r for t, r in pts if abs(t - q) <= span * 0.05] or \
                   [min(pts, key=lambda p: abs(p[0] - q))[1]]
            tail = [r for t, r in pts if t >= t1 - span * 0.10] or [pts[-1][1]]
            r25, rend = statistics.median(near), statistics.median(tail)
            after = [(t, r) for t, r in pts if t >= q]
            slope = 0.0
            if len(after) >= 3:
                mt = statistics.mean(t for t, _ in after)
                mr = statistics.mean(r for _, r in after)
                den = sum((t - mt) ** 2 for t, _ in after)
                if den:
                    slope = sum((t - mt) * (r - mr) for t, r in after) / den  # bytes/s
            limit = max(RSS_FLOOR, RSS_FRACTION * r25)
            v = {"rss_25": r25, "rss_end": rend, "growth": rend - r25, "limit": limit,
                 "slope_kib_per_min": round(slope * 60 / 1024, 1), "judged": not self.sanitized}
            self.rss_verdict[k] = v
            if not self.sanitized and rend - r25 > limit:
                self.problems.append(f"{k}: RSS grew {(rend - r25) / 2**20:.1f} MiB from the 25 % mark "
                                     f"({r25 / 2**20:.1f} MiB) to the end ({rend / 2**20:.1f} MiB); "
                                     f"allowed {limit / 2**20:.1f} MiB")

    def report(self, base, end, error=None):
        st = self.stats
        counts = {f"{k}/{t}": {"ok": c[0], "failed": c[1]} for (k, t), c in sorted(st.counts.items())}
        data = {
            "seconds": self.args.seconds, "warmup": self.args.warmup, "rate": self.args.rate,
            "build": self.build, "sanitized": self.sanitized,
            "load_start": getattr(self, "load_start", None), "load_end": getattr(self, "load_end", None),
            "passed": not self.problems and error is None, "problems": self.problems, "error": error,
            "counts": counts, "keepalive_retries": st.retries,
            "failures_unexpected": getattr(self, "unexpected", [])[:100],
            "failures_allowed": getattr(self, "expected", [])[:100],
            "churn": [{"replica": r, "signal": s, "status": c} for r, s, c in self.churn_exits],
            "idle_start": base, "idle_end": end,
            "fd_delta": getattr(self, "fd_verdict", {}), "rss": getattr(self, "rss_verdict", {}),
            "samples": self.samples, "events": self.events,
        }
        with open(os.path.join(self.out, "report.json"), "w") as f:
            json.dump(data, f, indent=1)

        def mib(x):
            return f"{x / 2**20:.1f}" if x is not None else "-"

        def row(s, k):
            v = s.get(k) if s else None
            return (mib(v[0]), str(v[1])) if v else ("-", "-")

        load = [s for s in self.samples if s["phase"] == "load"]
        L = []
        L.append(f"# Soak report: {'PASS' if data['passed'] else 'FAIL'}\n")
        L.append(f"- load: {self.args.seconds:.0f} s after {self.args.warmup:.0f} s of warm-up, "
                 f"~{self.args.rate:.0f} HTTP req/s, churn every {self.args.churn_interval:.0f} s")
        L.append(f"- binaries: {self.build} ({'sanitizers: RSS not judged' if self.sanitized else 'release'})")
        L.append(f"- {len(self.churn_exits)} connector restarts "
                 f"({sum(1 for _, s, _ in self.churn_exits if s == 'KILL')} SIGKILL); "
                 f"keep-alive retries after a server close: {st.retries}")
        if error:
            L.append(f"- setup error: {error}")
        L.append("\n## Requests\n")
        L.append("| kind/target | ok | failed |\n|---|---|---|")
        for k, c in counts.items():
            L.append(f"| {k} | {c['ok']} | {c['failed']} |")
        ok = sum(c["ok"] for c in counts.values())
        L.append(f"\n{ok} ok; {len(getattr(self, 'unexpected', []))} unexpected failures, "
                 f"{len(getattr(self, 'expected', []))} allowed (churn tunnel within "
                 f"{KILL_WINDOW:.0f} s of a SIGKILL)")
        L.append("\n## Memory and file descriptors\n")
        L.append("| sample | edge RSS MiB | edge fds | connector RSS MiB | connector fds |\n|---|---|---|---|---|")
        picks = [("idle baseline (after warm-up)", base)]
        if load:
            picks.append(("first under load", load[0]))
            if hasattr(self, "load_start"):
                q = self.load_start + (self.load_end - self.load_start) * 0.25
                picks.append(("25 % mark", min(load, key=lambda s: abs(s["t"] - q))))
            picks.append(("last under load", load[-1]))
        picks.append(("idle after the load", end))
        for label, s in picks:
            e, c = row(s, "edge"), row(s, "connector")
            L.append(f"| {label} | {e[0]} | {e[1]} | {c[0]} | {c[1]} |")
        for k, v in getattr(self, "rss_verdict", {}).items():
            L.append(f"\n{k}: RSS {mib(v['rss_25'])} MiB at 25 % -> {mib(v['rss_end'])} MiB at the end "
                     f"({(v['growth']) / 2**20:+.1f} MiB, limit {mib(v['limit'])} MiB"
                     f"{'' if v['judged'] else ', not judged'}); slope after 25 %: "
                     f"{v['slope_kib_per_min']} KiB/min")
        for k, d in getattr(self, "fd_verdict", {}).items():
            L.append(f"\n{k}: fds after the load {d:+d} vs the idle baseline (allowed +-{FD_SLACK})")
        L.append("\n## Verdict\n")
        if self.problems:
            L.extend(f"- FAIL: {p}" for p in self.problems)
        else:
            L.append("- all checks passed")
        fails = getattr(self, "unexpected", [])
        if fails:
            L.append("\n## First unexpected failures\n")
            for f in fails[:20]:
                L.append(f"- t={f['start'] - self.t0:.1f}s {f['kind']}/{f['target']}: {f['error']}")
        L.append("\n## Events\n")
        L.extend(f"- {t:.1f} s: {e}" for t, e in self.events[:200])
        text = "\n".join(L) + "\n"
        with open(os.path.join(self.out, "report.md"), "w") as f:
            f.write(text)
        return text


def main():
    env_secs = float(os.environ.get("SOAK_SECONDS", "3600"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=env_secs,
                    help="length of the load (default: $SOAK_SECONDS or 3600)")
    ap.add_argument("--build", default=os.environ.get("WARREN_BUILD", "build"),
                    help="directory with warren and warren-edge (default: $WARREN_BUILD or build)")
    ap.add_argument("--out", help="work and report directory (default build/soak/run-STAMP)")
    ap.add_argument("--rate", type=float, default=150.0, help="visitor HTTP requests/s (default 150)")
    ap.add_argument("--api-rate", type=float, default=1.0, help="API write cycles/s (default 1)")
    ap.add_argument("--login-rate", type=float, default=2.0, help="sign-in page loads/s (default 2)")
    ap.add_argument("--warmup", type=float, help="seconds (default 5 %% of --seconds, 2..60)")
    ap.add_argument("--churn-interval", type=float,
                    help="seconds between connector restarts (default 60, or --seconds/4 if less)")
    ap.add_argument("--sample-interval", type=float,
                    help="seconds between /proc samples (default 10, or --seconds/20 if less, >= 0.5)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if a.seconds <= 0:
        ap.error("--seconds must be positive")
    if a.warmup is None:
        a.warmup = min(60.0, max(2.0, a.seconds * 0.05))
    if a.churn_interval is None:
        a.churn_interval = min(60.0, max(3.0, a.seconds / 4))
    if a.sample_interval is None:
        a.sample_interval = min(10.0, max(0.5, a.seconds / 20))
    default_out = a.out is None
    if default_out:
        a.out = os.path.join(ROOT, "build", "soak", time.strftime("run-%Y%m%d-%H%M%S"))
    os.makedirs(a.out, exist_ok=True)
    a.out = os.path.abspath(a.out)
    raise_nofile()

    s = Soak(a)
    for b in (s.warren, s.edge_bin):
        if not os.access(b, os.X_OK):
            print(f"soak: {b} not found; build it first (make, or make asan)", file=sys.stderr)
            return 2
    error = None
    base = end = None

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        s.run()
        base = next((x for x in s.samples if x["phase"] == "idle-start"), None)
        end = next((x for x in s.samples if x["phase"] == "idle-end"), None)
    except KeyboardInterrupt:
        error = "interrupted"
    except Exception as e:  # setup errors and API failures outside the workers
        error = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    finally:
        if error:
            if hasattr(s, "load"):
                s.load.stop.set()
            for p in s.procs:
                p.kill()
    text = s.report(base, end, error)
    if default_out:
        for ext in ("md", "json"):
            shutil.copyfile(os.path.join(a.out, f"report.{ext}"),
                            os.path.join(ROOT, "build", "soak", f"latest.{ext}"))
    print(text)
    print(f"soak: report in {a.out}/report.md", file=sys.stderr)
    if error:
        return 2
    return 0 if not s.problems else 1


if __name__ == "__main__":
    sys.exit(main())
