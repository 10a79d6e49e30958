#!/usr/bin/python3
"""Warren's benchmark harness. Python standard library only.

  bench.py path NAME --out FILE [--cloudflared PATH] [--build DIR] [--ws-echo BIN]
                [--latency BIN]
      Runs every measurement for one path and writes its figures as JSON.
      NAME is direct (visitor -> nginx), warren (visitor -> warren-edge ->
      QUIC -> warren -> nginx) or cloudflared (the same with cloudflared as
      the connector; run it inside a loopback-only network namespace).
  bench.py cold NAME --ws-echo BIN [--build DIR] [--repeats N] [--cloudflared PATH]
      Only the cold step (first 100 MB download on a fresh tunnel, N times):
      for A/B runs of two builds in the same moment.
  bench.py report [PART.json...] --md FILE --json FILE [--readme FILE]
                [--private FILE]
      Merges the per-path files, adds the ratios to the direct path, writes
      the Markdown table and the JSON file (and the table into the README
      between its <!-- bench:latest --> markers). --private adds the
      private-path section from bench/private.py's JSON (README markers
      <!-- bench:private -->).

scripts/bench.sh (`make bench`) drives both; bench/README.md says what each
figure means and which ones are approximations."""
import argparse
import base64
import datetime
import json
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import common  # noqa: E402  (shared with the e2e tests)
import origins  # noqa: E402
from common import Poller, free_port, raise_nofile, recv_head  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")
ZONE = "bench.test"
WEB, WS = f"web.{ZONE}", f"ws.{ZONE}"
SMALL, BIG = 1024, 100 * 1000 * 1000  # "1 KiB", "100 MB"
# The -http2 paths are the same connectors with --protocol http2; they
# measure only requests/s and the 100 MB transfers, to keep the run short.
PATHS = ["direct", "warren", "cloudflared", "warren-http2", "cloudflared-http2"]
GIB = 1 << 30

# Knobs (environment, so `make bench BENCH_WRK_SECONDS=5` works too).
def _env(name, default, cast=int):
    v = os.environ.get(name)
    return cast(v) if v not in (None, "") else default

S = {
    "wrk_seconds": _env("BENCH_WRK_SECONDS", 10),
    "wrk_warmup_seconds": _env("BENCH_WRK_WARMUP", 2),
    "wrk_connections": _env("BENCH_WRK_CONNECTIONS", 50),
    "wrk_threads": _env("BENCH_WRK_THREADS", 2),
    "wrk_retries": _env("BENCH_WRK_RETRIES", 2),
    "transfer_repeats": _env("BENCH_TRANSFER_REPEATS", 2),
    # Cold: the first 100 MB download on a freshly registered tunnel (each
    # repeat restarts the connector: a new QUIC connection); median shown.
    "cold_repeats": _env("BENCH_COLD_REPEATS", 3),
    "ws_seconds": _env("BENCH_WS_SECONDS", 5),
    "ws_connections": _env("BENCH_WS_CONNECTIONS", 8),
    "ws_window": _env("BENCH_WS_WINDOW", 32),
    "ws_message_bytes": _env("BENCH_WS_BYTES", 64),
    "idle_visitor_connections": _env("BENCH_IDLE_CONNS", 2000),
    "extra_tunnels": _env("BENCH_TUNNELS", 20),
    "restart_cap_seconds": _env("BENCH_RESTART_CAP", 60),
    "quiet_wait_seconds": _env("BENCH_QUIET_WAIT", 30),
    # Open-loop latency at a fixed rate both paths sustain (bench/latency.c).
    "lat_rate": _env("BENCH_LAT_RATE", 2000),
    "lat_connections": _env("BENCH_LAT_CONNECTIONS", 50),
    "lat_seconds": _env("BENCH_LAT_SECONDS", 10),
    "lat_warmup_seconds": 2,
    "nginx_workers": 1,
}


def log(*a):
    print(f"[bench {time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)


# --- /proc ----------------------------------------------------------------------

def rss(pid):
    """VmRSS in bytes (all threads of the process)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def private_and_pss(pid):
    """(private bytes, PSS bytes) from /proc/PID/smaps_rollup: private is what
    only this process holds (USS); RSS also counts every shared-library page
    it touched, which other processes share."""
    priv = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Private_Clean", "Private_Dirty"):
                    priv += int(v.split()[0]) * 1024
                elif k == "Pss":
                    pss = int(v.split()[0]) * 1024
    except OSError:
        pass
    return priv, pss


def version_rss(binary):
    """Peak RSS of `BINARY --version`: the dynamic libraries and runtime a
    process pays for before it does any work. Measured by GNU time: a child
    forked from Python would count Python's pages too (ru_maxrss spans the
    exec)."""
    try:
        r = subprocess.run(["/usr/bin/time", "-f", "%M", binary, "--version"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           timeout=30)
        return int(r.stderr.strip().splitlines()[-1]) * 1024
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def cpu_ticks(pid):
    """utime + stime of the whole process, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])  # fields 14 and 15
    except (OSError, IndexError, ValueError):
        return 0


def busy_ticks():
    """Non-idle CPU ticks of the whole machine (/proc/stat: everything but
    idle and iowait; softirq time is in it because the kernel also counts
    softirq work done in a task's context in that task's stime)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]) - v[3] - v[4]


def wait_quiet(max_wait):
    """Waits (up to |max_wait| s) until other jobs use less than 25 % of the
    machine over one second; returns the busy fraction last seen."""
    deadline = time.monotonic() + max_wait
    cores = os.cpu_count() or 1
    while True:
        b0 = busy_ticks()
        time.sleep(1.0)
        frac = (busy_ticks() - b0) / CLK / cores
        if frac < 0.25 or time.monotonic() >= deadline:
            return frac
        log(f"machine {frac * 100:.0f} % busy with other jobs; waiting")


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Sampler(Poller):
    """Peak VmRSS of named pids, sampled every 20 ms in a thread."""

    def __init__(self, pids):
        super().__init__()
        self.pids = {k: v for k, v in pids.items() if v}
        self.peak = {k: rss(p) for k, p in self.pids.items()}

    def poll(self):
        for k, p in self.pids.items():
            self.peak[k] = max(self.peak[k], rss(p))


# --- processes ------------------------------------------------------------------

class Proc(common.Proc):
    """A started program; every one still running is in Proc.ALL."""
    ALL = []

    def __init__(self, args, logpath, env=None, name=None):
        super().__init__(args, logpath, env=env, name=name)
        self.started = time.monotonic()
        Proc.ALL.append(self)

    def wait_output(self, needle, timeout, start=0):
        """Offset of |needle| in the log, or None (see find_output)."""
        return self.find_output(needle, timeout, start, interval=0.005)

    def stop(self, timeout=15, sig=signal.SIGTERM):
        super().stop(timeout, sig)
        if self in Proc.ALL:
            Proc.ALL.remove(self)
        return self.p.returncode

    @classmethod
    def stop_all(cls):
        for p in reversed(list(cls.ALL)):
            p.stop(10)


def check(cmd, env=None):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd}: rc={r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def stripped_size(path, work):
    tmp = os.path.join(work, "stripped")
    try:
        subprocess.run(["strip", "-o", tmp, path], check=True, capture_output=True, timeout=60)
        n = os.path.getsize(tmp)
        os.unlink(tmp)
        return n
    except (OSError, subprocess.SubprocessError):
        return None


# --- HTTP helpers ---------------------------------------------------------------

def read_response(sock):
    """Reads one Content-Length response; returns (status, body)."""
    head, body = recv_head(sock, "the head").split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    while len(body) < length:
        got = sock.recv(max(65536, length - len(body)))
        if not got:
            raise ConnectionError("closed in the body")
        body += got
    return status, body


def get(port, host, path="/1k.bin", timeout=2.0):
    """Status of one GET on a fresh connection, or None on a socket error."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            return read_response(s)[0]
    except (OSError, ValueError, IndexError):
        return None


def wait_get(port, host, path="/1k.bin", timeout=30.0, interval=0.01):
    """Polls until a GET answers 200; returns the monotonic time it did or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get(port, host, path, timeout=1.0) == 200:
            return time.monotonic()
        time.sleep(interval)
    return None


# --- the origin -------------------------------------------------------------------

# The part of nginx's configuration every bench origin shares (https.py's
# too); each adds its http-level lines and its server block, then "}}".
NGINX_HEAD = """\
worker_processes {workers};
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
{user}
events {{ worker_connections 16384; }}
http {{
  access_log off;
  keepalive_requests 100000000; keepalive_timeout 600s;
  client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;
  default_type application/octet-stream;
"""

NGINX_CONF = NGINX_HEAD + """\
  log_format up '$request_length $request_time $status';
  sendfile on; tcp_nopush on; tcp_nodelay on;
  types {{ text/plain txt; }}
  client_max_body_size 200m;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {d}/www;
    # Uploads: the mirror subrequest makes nginx read the whole body before
    # it answers (a plain `return 200` answers at once and discards the body
    # afterwards, so a visitor's upload would not be timed to its end). The
    # static handler refuses POST to the file www/up with 405; error_page turns that into 200 ok.
    location = /up {{
      client_body_buffer_size 128m;
      mirror /null; mirror_request_body on;
      error_page 405 =200 /ok.txt;
    }}
    location = /ok.txt {{ access_log {d}/up.log up; }}
    location = /null {{ internal; return 204; }}
  }}
}}
"""


class NginxOrigin:
    """One nginx under WORK/origin serving www/1k.bin from a config template
    (formatted with d=, port=, user= and the caller's fields); the base of
    this harness's origin and of https.py's."""

    def __init__(self, work):
        self.d = os.path.join(work, "origin")
        os.makedirs(os.path.join(self.d, "www"))
        os.makedirs(os.path.join(self.d, "tmp"))
        os.chmod(work, 0o755)
        os.chmod(self.d, 0o755)
        with open(os.path.join(self.d, "www", "1k.bin"), "wb") as f:
            f.write(os.urandom(SMALL))
        self.port = free_port()
        self.conf = os.path.join(self.d, "nginx.conf")
        self.nginx = None

    def write_conf(self, template, **fields):
        with open(self.conf, "w") as f:
            f.write(template.format(d=self.d, port=self.port,
                                    user="user root root;" if os.geteuid() == 0 else "",
                                    **fields))

    def start_nginx(self):
        self.nginx = Proc(["nginx", "-e", os.path.join(self.d, "error.log"), "-p", self.d,
                           "-c", self.conf], os.path.join(self.d, "nginx.out"), name="nginx")
        if wait_get(self.port, WEB, timeout=10) is None:
            raise RuntimeError("nginx did not answer; see " + self.d)
        return self.worker()

    def worker(self):
        kids = children(self.nginx.pid)
        return kids[0] if kids else None


class Origin(NginxOrigin):
    """nginx serving 1k.bin and 100m.bin plus an upload sink, and ws_echo."""

    def __init__(self, work, ws_echo):
        super().__init__(work)
        for fn in ("ok.txt", "up"):  # /up must exist for the 405 below
            with open(os.path.join(self.d, "www", fn), "wb") as f:
                f.write(b"ok\n")
        self.big = os.path.join(self.d, "www", "100m.bin")
        chunk = os.urandom(1 << 20)
        with open(self.big, "wb") as f:
            left = BIG
            while left:
                n = min(left, len(chunk))
                f.write(chunk[:n])
                left -= n
        self.ws_port = free_port()
        self.write_conf(NGINX_CONF, workers=S["nginx_workers"])
        self.ws_echo = ws_echo
        self.ws = None

    def start(self):
        self.start_nginx()
        self.ws = Proc([self.ws_echo, self.ws_port], os.path.join(self.d, "ws_echo.log"),
                       name="ws_echo")
        if self.ws.wait_output("ready", 10) is None:
            raise RuntimeError("ws_echo did not start")

    def uploaded_lengths(self):
        try:
            with open(os.path.join(self.d, "up.log")) as f:
                return [int(line.split()[0]) for line in f if line.strip()]
        except OSError:
            return []


# --- edge + connector -------------------------------------------------------------

class Tunnel:
    """warren-edge with the bench tunnel (and the extra ones for the per-GiB
    figure) and one connector, warren or cloudflared, for it."""

    def __init__(self, work, build, connector, origin, env, protocol="quic"):
        self.work, self.build, self.connector_bin, self.origin = work, build, connector, origin
        self.protocol = protocol
        self.edge_bin = os.path.join(build, "warren-edge")
        self.env = env
        self.d = os.path.join(work, "edge")
        self.udp = free_port(socket.SOCK_DGRAM)
        self.http = free_port()
        self.creds, self.ids = {}, {}
        check([self.edge_bin, "init", "--data-dir", self.d, "--zone", ZONE], env)
        names = ["bench"] + [f"t{i}" for i in range(S["extra_tunnels"])]
        for n in names:
            c = os.path.join(work, f"{n}.json")
            check([self.edge_bin, "tunnel", "create", "--data-dir", self.d, "--out", c, n], env)
            self.creds[n] = c
            with open(c) as f:
                self.ids[n] = json.load(f)["TunnelID"]
        check([self.edge_bin, "route", "dns", "--data-dir", self.d, "bench", WEB], env)
        check([self.edge_bin, "route", "dns", "--data-dir", self.d, "bench", WS], env)
        self.config = os.path.join(work, "config.yml")
        with open(self.config, "w") as f:
            f.write(f"tunnel: {self.ids['bench']}\ncredentials-file: {self.creds['bench']}\n"
                    f"ingress:\n  - hostname: {WS}\n    service: http://127.0.0.1:{origin.ws_port}\n"
                    f"  - service: http://127.0.0.1:{origin.port}\n")
        self.edge = self.conn = None
        self.metrics = None
        self.n_edge = 0
        self.edge_args = []  # more `warren-edge run` options (bench/memory.py)

    def start_edge(self):
        """Starts the edge; returns (spawn time, time it logged 'Listening')."""
        self.n_edge += 1
        t0 = time.monotonic()
        self.edge = Proc([self.edge_bin, "run", "--data-dir", self.d,
                          "--tunnel-listen", f"127.0.0.1:{self.udp}",
                          "--http-listen", f"127.0.0.1:{self.http}",
                          "--api-listen", "127.0.0.1:0",
                          # Every load generator here is one source (127.0.0.1):
                          # the per-source limits would measure themselves.
                          "--max-conns-per-source", "0",
                          "--requests-per-second-per-source", "0", *self.edge_args],
                         os.path.join(self.work, f"edge-{self.n_edge}.log"), env=self.env,
                         name="warren-edge")
        if self.edge.wait_output("Listening for connectors", 30) is None:
            raise RuntimeError("edge did not start; see " + self.edge.log)
        t1 = time.monotonic()
        if self.edge.wait_output("Serving visitors on", 30) is None:
            raise RuntimeError("edge did not serve visitors; see " + self.edge.log)
        return t0, t1

    def connector_args(self, name, metrics, service):
        return [self.connector_bin, "tunnel", "--no-autoupdate", "--edge", f"127.0.0.1:{self.udp}",
                "--cacert", os.path.join(self.d, "ca.pem"), "--protocol", self.protocol,
                "--credentials-file", self.creds[name], "--metrics", f"127.0.0.1:{metrics}",
                "--grace-period", "1s", *service, "run", self.ids[name]]

    def start_connector(self):
        self.metrics = free_port()
        self.conn = Proc(self.connector_args("bench", self.metrics, ["--config", self.config]),
                         os.path.join(self.work, "connector.log"), env=self.env, name="connector")

    def ready(self, port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = common.recv_to_eof(s)
            body = data.split(b"\r\n\r\n", 1)[1]
            return int(json.loads(body).get("readyConnections", 0))
        except (OSError, ValueError, IndexError, AttributeError):
            return 0

    def wait_ready(self, port, proc, want=1, timeout=30):
        """Waits for |want| registered connections (at least one after |timeout|).
        Both warren and cloudflared open one HA connection per edge address,
        so with the single --edge address here a connector holds one."""
        deadline = time.monotonic() + timeout
        n = 0
        while time.monotonic() < deadline:
            n = self.ready(port)
            if n >= want:
                return n
            if not proc.alive():
                raise RuntimeError(f"connector exited; see {proc.log}")
            time.sleep(0.05)
        if n == 0:
            raise RuntimeError(f"connector not ready after {timeout}s; see {proc.log}")
        return n


# --- load ----------------------------------------------------------------------------

def parse_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v if u == "ms" else v * 1000 if u == "s" else v * 60000


def wrk(port, host, seconds, path="/1k.bin"):
    url = f"http://127.0.0.1:{port}{path}"
    r = subprocess.run(["wrk", f"-t{S['wrk_threads']}", f"-c{S['wrk_connections']}",
                        f"-d{seconds}s", "--latency", "--timeout", "5s", "-H", f"Host: {host}", url],
                       capture_output=True, text=True, timeout=seconds + 60)
    out = r.stdout
    res = {"raw": out}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    res["requests"] = int(m.group(1)) if m else 0
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+(\S+)", out, re.M)
        res[f"p{pct}_ms"] = parse_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return res


def latency_cmd(binary, port, host, path="/1k.bin"):
    return [binary, "-p", str(port), "-H", host, "-u", path, "-c", str(S["lat_connections"]),
            "-r", str(S["lat_rate"]), "-d", str(S["lat_seconds"]), "-w", str(S["lat_warmup_seconds"])]


def fixed_rate(binary, port, host, path="/1k.bin"):
    """Open-loop latency (bench/latency.c): requests due on a fixed schedule,
    each timed from its due time; returns the tool's JSON line as a dict."""
    cmd = latency_cmd(binary, port, host, path)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=S["lat_seconds"] + S["lat_warmup_seconds"] + 60)
        lines = r.stdout.strip().splitlines()
        res = json.loads(lines[-1]) if r.returncode == 0 and lines else None
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        return {"error": f"{type(e).__name__}: {e}", "cmd": cmd}
    if res is None:
        return {"error": f"rc {r.returncode}: {r.stderr.strip()[:300]}", "cmd": cmd}
    res["cmd"] = cmd
    return res


def curl_transfer(port, host, upload_file=None):
    """One 100 MB download (or upload of |upload_file|); returns a dict."""
    url = f"http://127.0.0.1:{port}/" + ("up" if upload_file else "100m.bin")
    cmd = ["curl", "-sS", "-o", "/dev/null", "--max-time", "180", "-H", f"Host: {host}",
           "-w", "%{json}"]
    if upload_file:
        cmd += ["-X", "POST", "-H", "Expect:", "-T", upload_file]
    cmd.append(url)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=200)
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = {}
    size = j.get("size_upload" if upload_file else "size_download", 0)
    t = j.get("time_total", 0) or 0
    ok = r.returncode == 0 and j.get("http_code") == 200 and size >= BIG
    return {"ok": ok, "bytes": size, "seconds": t, "MBps": size / t / 1e6 if t else 0.0,
            "code": j.get("http_code"), "curl_rc": r.returncode, "err": r.stderr.strip()[:300]}


def cold_downloads(port, host, tun, n):
    """The first 100 MB download on a freshly registered tunnel, |n| times.
    Before each but the first the connector is restarted, so that every
    download meets a new QUIC connection (congestion window, flow-control
    windows and RTT estimate from scratch) after one 1 KiB request that
    shows the route works. For direct (tun None): the first downloads
    through a fresh nginx, for comparison."""
    res = []
    for i in range(n):
        if i and tun:
            tun.conn.stop(30)
            tun.start_connector()
            tun.wait_ready(tun.metrics, tun.conn)
        if wait_get(port, host, timeout=30) is None:
            raise RuntimeError("no 200 before the cold download")
        res.append(curl_transfer(port, host))
    return res


def median(xs, key="MBps"):
    ok = sorted(x[key] for x in xs or [] if x.get("ok"))
    if not ok:
        return None
    m = len(ok) // 2
    return ok[m] if len(ok) % 2 else (ok[m - 1] + ok[m]) / 2


def ws_handshake(port, host):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(origins.ws_upgrade_request(host, key, "/echo"))
    head = recv_head(s, "the WebSocket handshake", step=1)
    want = origins.ws_accept(key)
    text = head.decode("latin-1")
    if " 101 " not in text.split("\r\n")[0] or want not in text:
        raise ConnectionError(f"bad WebSocket handshake: {text!r}")
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def ws_bench(port, host):
    """Echo round trips per second: |conns| connections, each keeping
    |window| binary messages of |size| bytes in flight; every echoed byte is
    checked against what was sent."""
    conns, window, size = S["ws_connections"], S["ws_window"], S["ws_message_bytes"]
    assert size < 126
    payload = bytes((i * 7 + 3) & 0xFF for i in range(size))
    mask = b"\x5a\xa5\x3c\xc3"
    cframe = bytes([0x82, 0x80 | size]) + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    sframe = bytes([0x82, size]) + payload
    fl = len(sframe)
    expect = sframe * ((1 << 20) // fl + 2)
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(conns):
        s = ws_handshake(port, host)
        st = {"sock": s, "pos": 0}
        socks.append(st)
        sel.register(s, selectors.EVENT_READ, st)
        s.sendall(cframe * window)
    warm = 1.0
    t_start = time.monotonic()
    t_measure = t_start + warm
    t_end = t_measure + S["ws_seconds"]
    counted = 0
    measuring = False
    errors = 0
    while True:
        now = time.monotonic()
        if not measuring and now >= t_measure:
            measuring, counted, t_measure = True, 0, now
        if now >= t_end:
            break
        for key, _ in sel.select(0.2):
            st = key.data
            data = st["sock"].recv(1 << 20)
            if not data:
                raise ConnectionError("WebSocket connection closed during the echo test")
            pos = st["pos"]
            if data != expect[pos:pos + len(data)]:
                errors += 1
                raise ConnectionError("WebSocket echo returned different bytes")
            done = (pos + len(data)) // fl
            st["pos"] = (pos + len(data)) % fl
            if done:
                counted += done
                st["sock"].sendall(cframe * done)
    elapsed = time.monotonic() - t_measure
    for st in socks:
        try:
            st["sock"].close()
        except OSError:
            pass
    sel.close()
    return {"msgs_per_s": counted / elapsed if elapsed > 0 else 0.0, "messages": counted,
            "seconds": elapsed, "errors": errors}


def open_many(port, n, request_host=None, what="connection"):
    """|n| connections to |port|; with |request_host|, each sends one GET
    and reads its answer (then stays open, kept alive). Stops at the first
    that fails (logged as |what|). Returns (sockets, failures)."""
    socks, fails = [], 0
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if request_host:
                s.sendall(f"GET /1k.bin HTTP/1.1\r\nHost: {request_host}\r\n\r\n".encode())
                st, _ = read_response(s)
                if st != 200:
                    fails += 1
            socks.append(s)
        except (OSError, ValueError) as e:
            fails += 1
            log(f"{what} {len(socks)}: {e}")
            break
    return socks, fails


def still_open(socks):
    """How many of |socks| are still open (a closed one reads as EOF at once)."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    closed = len(sel.select(0))
    sel.close()
    return len(socks) - closed


def idle_visitors(port, host, pid_of, n):
    """Opens |n| keep-alive connections that each carried one 1 KiB request
    and stay open; returns the RSS growth of the processes in |pid_of|."""
    time.sleep(1.0)
    before = {k: rss(p) for k, p in pid_of.items() if p}
    t0 = time.monotonic()
    socks, fails = open_many(port, n, host, "idle connection")
    opened = time.monotonic() - t0
    time.sleep(1.0)
    after = {k: rss(p) for k, p in pid_of.items() if p}
    held = still_open(socks)
    for s in socks:
        s.close()
    res = {"opened": len(socks), "held": held, "failed": fails, "open_seconds": opened}
    for k in before:
        d = after[k] - before[k]
        res[f"{k}_rss_delta"] = d
        res[f"{k}_bytes_per_conn"] = d / held if held else None
        res[f"{k}_per_gib"] = (GIB * held / d) if d > 0 and held else None
    return res


# --- one path ----------------------------------------------------------------------------

def run_path(name, args):
    raise_nofile()
    work = tempfile.mkdtemp(prefix=f"warren-bench-{name}-")
    log(f"path {name}: work dir {work}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = os.path.join(work, "home")
    os.makedirs(env["HOME"])
    out = {"path": name, "work_dir": work}
    out["machine_busy_before"] = wait_quiet(S["quiet_wait_seconds"])
    origin = Origin(work, args.ws_echo)
    tun = None
    protocol = "http2" if name.endswith("-http2") else "quic"
    full = protocol == "quic"  # the http2 paths: requests/s and transfers only
    out["protocol"] = protocol
    try:
        origin.start()
        if name == "direct":
            port, host, ws_port, ws_host = origin.port, WEB, origin.ws_port, WS
        else:
            connector = (args.cloudflared if name.startswith("cloudflared")
                         else os.path.join(args.build, "warren"))
            out["connector_binary"] = connector
            out["connector_binary_bytes"] = os.path.getsize(connector)
            out["connector_stripped_bytes"] = stripped_size(connector, work)
            tun = Tunnel(work, args.build, connector, origin, env, protocol)
            tun.start_edge()
            t = time.monotonic()
            tun.start_connector()
            tun.wait_ready(tun.metrics, tun.conn)
            out["connector_ready_s"] = time.monotonic() - t
            time.sleep(2.0)  # any further HA connections
            out["connections_at_start"] = tun.ready(tun.metrics)
            if wait_get(tun.http, WEB, timeout=10) is None:
                raise RuntimeError("no 200 through the tunnel; see " + work)
            port, host, ws_port, ws_host = tun.http, WEB, tun.http, WS
        # 0. cold: the first 100 MB download on a fresh tunnel (what a user meets)
        out["download_cold"] = cold_downloads(port, host, tun, S["cold_repeats"])
        log(f"{name}: cold download MB/s", [round(d["MBps"], 1) for d in out["download_cold"]])
        pids = {"origin": origin.worker()}
        if tun:
            pids.update(edge=tun.edge.pid, connector=tun.conn.pid)

        # 1. idle RSS
        time.sleep(1.0)
        for k, p in pids.items():
            out[f"rss_idle_{k}"] = rss(p)
        if tun:
            out["private_idle_connector"], out["pss_idle_connector"] = private_and_pss(tun.conn.pid)
            out["version_rss_connector"] = version_rss(connector)
        log(f"{name}: idle RSS", {k: out[f'rss_idle_{k}'] for k in pids})

        # 2. idle visitor connections the front holds
        front = {"edge": pids["edge"]} if tun else {"origin": pids["origin"]}
        if tun:
            front["connector"] = pids["connector"]
        if full:
            iv = idle_visitors(port, host, front, S["idle_visitor_connections"])
            out["idle_visitors"] = iv
            log(f"{name}: idle visitors", iv)

        # 3. 1 KiB requests
        wrk(port, host, S["wrk_warmup_seconds"])
        # Other jobs on this machine skew the figure: when more than 10 % of
        # the machine went to anything else, measure again (up to
        # BENCH_WRK_RETRIES more times) and keep the quietest run.
        attempts = []
        for attempt in range(1 + S["wrk_retries"]):
            c0 = {k: cpu_ticks(p) for k, p in pids.items()}
            b0, k0 = busy_ticks(), children_cpu_s()
            t0 = time.monotonic()
            with Sampler(pids) as smp:
                w = wrk(port, host, S["wrk_seconds"])
            wall = time.monotonic() - t0
            c1 = {k: cpu_ticks(p) for k, p in pids.items()}
            b1, k1 = busy_ticks(), children_cpu_s()
            ours = sum(c1[k] - c0[k] for k in pids) / CLK + (k1 - k0)
            a = {"wrk": w, "cpu": {k: (c1[k] - c0[k]) / CLK for k in pids}, "peak": dict(smp.peak),
                 "machine_busy_s": (b1 - b0) / CLK, "wrk_cpu_s": k1 - k0,
                 "other_cpu_s": (b1 - b0) / CLK - ours}
            attempts.append(a)
            quiet = a["other_cpu_s"] <= 0.1 * (os.cpu_count() or 1) * wall
            log(f"{name}: wrk attempt {attempt + 1}: {w['rps']:.0f} req/s, other CPU "
                f"{a['other_cpu_s']:.2f} s{'' if quiet else ' (busy machine)'}")
            if quiet:
                break
        a = min(attempts, key=lambda x: x["other_cpu_s"])
        w = a["wrk"]
        out["wrk"] = w
        out["wrk_attempts"] = [{"rps": x["wrk"]["rps"], "other_cpu_s": x["other_cpu_s"]} for x in attempts]
        # CPU the machine spent on anything but this path and wrk (other
        # jobs, this harness's sampler): a noise indicator.
        out["machine_busy_s_1k"] = a["machine_busy_s"]
        out["wrk_cpu_s_1k"] = a["wrk_cpu_s"]
        out["other_cpu_s_1k"] = a["other_cpu_s"]
        for k in pids:
            out[f"rss_load_1k_{k}"] = max(x["peak"].get(k, 0) for x in attempts)
            out[f"cpu_s_{k}"] = a["cpu"][k]
            out[f"cpu_s_per_10k_{k}"] = a["cpu"][k] / w["requests"] * 10000 if w["requests"] else None
        log(f"{name}: wrk {w['rps']:.0f} req/s p50 {w['p50_ms']} ms p99 {w['p99_ms']} ms "
            f"non2xx {w['non2xx']} sockerr {w['socket_errors']}")

        # 3b. the same request at a fixed rate, open loop: wrk's closed loop
        # at saturation only restates its throughput as latency (Little's law).
        if args.latency and full:
            c0 = {k: cpu_ticks(p) for k, p in pids.items()}
            b0, k0 = busy_ticks(), children_cpu_s()
            lat = fixed_rate(args.latency, port, host)
            c1 = {k: cpu_ticks(p) for k, p in pids.items()}
            b1, k1 = busy_ticks(), children_cpu_s()
            ours = sum(c1[k] - c0[k] for k in pids) / CLK + (k1 - k0)
            lat["other_cpu_s"] = (b1 - b0) / CLK - ours  # noise, as for wrk
            out["latency"] = lat
            log(f"{name}: fixed rate", {k: v for k, v in lat.items() if k != "cmd"})

        # 4. 100 MB transfers
        with Sampler(pids) as smp:
            downs = [curl_transfer(port, host) for _ in range(S["transfer_repeats"])]
            n_up = len(origin.uploaded_lengths())
            ups = [curl_transfer(port, host, upload_file=origin.big) for _ in range(S["transfer_repeats"])]
        lens = origin.uploaded_lengths()[n_up:]
        for u, ln in zip(ups, lens + [0] * len(ups)):
            u["origin_request_length"] = ln
            u["ok"] = u["ok"] and ln >= BIG
        out["download"], out["upload"] = downs, ups
        for k in pids:
            out[f"rss_load_100m_{k}"] = smp.peak.get(k, 0)
        log(f"{name}: download MB/s", [round(d["MBps"], 1) for d in downs],
            "upload MB/s", [round(u["MBps"], 1) for u in ups],
            "ok", [d["ok"] for d in downs + ups])

        # 5.–8. the quic paths only
        if full:
            # 5. WebSocket echo
            with Sampler(pids) as smp:
                try:
                    out["ws"] = ws_bench(ws_port, ws_host)
                except (OSError, ConnectionError) as e:
                    out["ws"] = {"msgs_per_s": None, "error": str(e)}
            for k in pids:
                out[f"rss_load_ws_{k}"] = smp.peak.get(k, 0)
            log(f"{name}: ws", out["ws"])

            # 6. idle again
            time.sleep(2.0)
            for k, p in pids.items():
                out[f"rss_after_{k}"] = rss(p)

            # 7. restart to first successful request
            if tun:
                mark = len(tun.conn.output())
                tun.edge.stop(30)
                t0, t_listen = tun.start_edge()
                t_ok = wait_get(tun.http, WEB, timeout=S["restart_cap_seconds"])
                out["restart"] = {"from_spawn_s": (t_ok - t0) if t_ok else None,
                                  "from_listening_s": (t_ok - t_listen) if t_ok else None,
                                  "edge_startup_s": t_listen - t0,
                                  "cap_s": S["restart_cap_seconds"]}
                out["restart"]["connector_log_after"] = tun.conn.output()[mark:][-1500:]
            else:
                origin.nginx.stop(30)
                t0 = time.monotonic()
                origin.nginx = Proc(["nginx", "-e", os.path.join(origin.d, "error.log"), "-p",
                                     origin.d, "-c", origin.conf],
                                    os.path.join(origin.d, "nginx.out"), name="nginx")
                t_ok = wait_get(origin.port, WEB, timeout=S["restart_cap_seconds"])
                out["restart"] = {"from_spawn_s": (t_ok - t0) if t_ok else None}
            log(f"{name}: restart", {k: v for k, v in out["restart"].items() if k != "connector_log_after"})

            # 8. registered tunnels the edge holds (fresh edge after the restart)
            if tun and S["extra_tunnels"] > 0:
                want = max(1, out.get("connections_at_start") or 1)
                tun.wait_ready(tun.metrics, tun.conn, want=want, timeout=30)
                time.sleep(1.0)
                base = rss(tun.edge.pid)
                extra = []
                t0 = time.monotonic()
                for i in range(S["extra_tunnels"]):
                    m = free_port()
                    svc = ["--hello-world"]
                    p = Proc(tun.connector_args(f"t{i}", m, svc), os.path.join(work, f"extra-{i}.log"),
                             env=env, name=f"extra-{i}")
                    extra.append((m, p))
                conns = [tun.wait_ready(m, p, want=want, timeout=60) for m, p in extra]
                time.sleep(1.0)
                conns = [tun.ready(m) for m, _ in extra]
                reg_s = time.monotonic() - t0
                time.sleep(1.0)
                after = rss(tun.edge.pid)
                d = after - base
                n = len(extra)
                out["tunnels"] = {"tunnels": n, "connections": sum(conns), "edge_rss_before": base,
                                  "edge_rss_after": after, "edge_rss_delta": d,
                                  "bytes_per_tunnel": d / n, "per_gib": GIB * n / d if d > 0 else None,
                                  "register_all_s": reg_s,
                                  "connector_rss_each": [rss(p.pid) for _, p in extra][:3]}
                log(f"{name}: tunnels", out["tunnels"])
                for _, p in reversed(extra):
                    p.stop(15)
        out["ok"] = True
    except Exception as e:  # reported in the JSON and on stderr; the run goes on with other paths
        import traceback
        traceback.print_exc()
        out["ok"] = False
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        if tun and tun.conn:
            tun.conn.stop(30)
        Proc.stop_all()
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    if out["ok"] and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if out["ok"] else 1


def serve(args):
    """Sets up one path and keeps it running (for perf/callgrind): prints one
    JSON line with its ports and pids, then waits for SIGTERM or SIGINT."""
    raise_nofile()
    work = tempfile.mkdtemp(prefix=f"warren-bench-serve-{args.name}-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = os.path.join(work, "home")
    os.makedirs(env["HOME"])
    origin = Origin(work, args.ws_echo)
    origin.start()
    info = {"work_dir": work, "origin_port": origin.port, "ws_port": origin.ws_port,
            "origin_pid": origin.worker(), "web_host": WEB, "ws_host": WS,
            "big_file": origin.big}
    if args.name != "direct":
        connector = args.cloudflared if args.name == "cloudflared" else os.path.join(args.build, "warren")
        saved = S["extra_tunnels"]
        S["extra_tunnels"] = 0
        tun = Tunnel(work, args.build, connector, origin, env)
        S["extra_tunnels"] = saved
        tun.start_edge()
        tun.start_connector()
        tun.wait_ready(tun.metrics, tun.conn, timeout=120)
        if wait_get(tun.http, WEB, timeout=60) is None:
            raise RuntimeError("no 200 through the tunnel; see " + work)
        info.update(http_port=tun.http, edge_pid=tun.edge.pid, connector_pid=tun.conn.pid,
                    edge_log=tun.edge.log, connector_log=tun.conn.log)
    if args.latency:
        info["latency_cmd"] = latency_cmd(args.latency, info.get("http_port", origin.port), WEB)
    print(json.dumps(info), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    while not done.wait(0.5):
        pass
    Proc.stop_all()
    shutil.rmtree(work, ignore_errors=True)
    return 0


def cold(args):
    """Only the cold step, for A/B runs of two builds: origin, edge and
    connector, then --repeats first downloads on a fresh tunnel each; prints
    one JSON line with every figure and the median."""
    raise_nofile()
    work = tempfile.mkdtemp(prefix=f"warren-bench-cold-{args.name}-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = os.path.join(work, "home")
    os.makedirs(env["HOME"])
    S["extra_tunnels"] = 0
    out = {"path": args.name, "build": args.build}
    try:
        origin = Origin(work, args.ws_echo)
        origin.start()
        tun = None
        port = origin.port
        if args.name != "direct":
            connector = args.cloudflared if args.name == "cloudflared" else os.path.join(args.build, "warren")
            tun = Tunnel(work, args.build, connector, origin, env)
            tun.start_edge()
            tun.start_connector()
            tun.wait_ready(tun.metrics, tun.conn, timeout=60)
            port = tun.http
        runs = cold_downloads(port, WEB, tun, args.repeats)
        out.update(cold=[round(x["MBps"], 1) for x in runs], ok=all(x["ok"] for x in runs),
                   median=median(runs))
    finally:
        Proc.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out), flush=True)
    return 0 if out.get("ok") else 1


# --- report -----------------------------------------------------------------------------

def machine_info(cloudflared=None, iperf3=False):
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except OSError:
        pass

    def ver(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return None
    rev = os.environ.get("BENCH_WARREN_REV") or ver(["git", "-C", ROOT, "describe", "--always", "--dirty"])
    info = {"cpu_model": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "memory_bytes": mem, "os": ver(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
            "warren_rev": rev, "nginx": (ver(["nginx", "-v"]) or "").replace("nginx version: ", ""), "wrk": (ver(["wrk", "-v"]) or "").split(" Copyright")[0].split(" [")[0],
            "curl": ver(["curl", "--version"]), "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    if cloudflared:
        info["cloudflared"] = ver([cloudflared, "--version"])
    if iperf3:
        info["iperf3"] = (ver(["iperf3", "--version"]) or "").split(" (")[0]
    return info


def best(xs, key="MBps"):
    ok = [x[key] for x in xs or [] if x.get("ok")]
    return max(ok) if ok else None


# (key, label, unit, higher is better?, extractor)
def rows():
    def g(*path):
        def f(p):
            v = p
            for k in path:
                if not isinstance(v, dict) or k not in v:
                    return None
                v = v[k]
            return v
        return f

    def mib(k):
        return lambda p: p.get(k) / (1 << 20) if p.get(k) else None

    def cpu_total(p):
        ks = [k for k in ("cpu_s_per_10k_edge", "cpu_s_per_10k_connector", "cpu_s_per_10k_origin")
              if p.get(k) is not None]
        return sum(p[k] for k in ks) if ks else None

    def front_per_gib(p):
        iv = p.get("idle_visitors") or {}
        return iv.get("edge_per_gib", iv.get("origin_per_gib"))

    def front_bytes(p):
        iv = p.get("idle_visitors") or {}
        return iv.get("edge_bytes_per_conn", iv.get("origin_bytes_per_conn"))

    return [
        ("download_cold_MBps", "100 MB download, cold: first on a fresh tunnel (median)", "MB/s",
         True, lambda p: median(p.get("download_cold"))),
        ("download_MBps", "100 MB download, warm: after the 1 KiB load (best of runs)", "MB/s", True,
         lambda p: best(p.get("download"))),
        ("rps_1k", "1 KiB GET, 50 conns", "req/s", True, g("wrk", "rps")),
        ("p50_ms", "  latency p50", "ms", False, g("wrk", "p50_ms")),
        ("p99_ms", "  latency p99", "ms", False, g("wrk", "p99_ms")),
        ("errors_1k", "  non-2xx + socket errors", "count", False,
         lambda p: (p["wrk"]["non2xx"] + p["wrk"]["socket_errors"]) if p.get("wrk") else None),
        ("lat_rps", f"1 KiB GET at fixed {S['lat_rate']:,} req/s, {S['lat_connections']} conns "
         "(open loop)", "req/s", True, g("latency", "achieved_rps")),
        ("lat_p50_ms", "  latency p50", "ms", False, g("latency", "p50_ms")),
        ("lat_p99_ms", "  latency p99", "ms", False, g("latency", "p99_ms")),
        ("lat_p999_ms", "  latency p99.9", "ms", False, g("latency", "p999_ms")),
        ("lat_errors", "  non-2xx + socket errors", "count", False,
         lambda p: (p["latency"]["non2xx"] + p["latency"]["errors"])
         if "errors" in (p.get("latency") or {}) else None),
        ("upload_MBps", "100 MB upload (best of runs)", "MB/s", True, lambda p: best(p.get("upload"))),
        ("ws_msgs_per_s", "WebSocket echo, 64 B messages", "msg/s", True, g("ws", "msgs_per_s")),
        ("restart_s", "restart -> first 200 (edge; nginx for direct)", "s", False,
         g("restart", "from_spawn_s")),
        ("rss_idle_connector", "connector RSS idle", "MiB", False, mib("rss_idle_connector")),
        ("private_idle_connector", "&nbsp;&nbsp;of which private (USS)", "MiB", False,
         mib("private_idle_connector")),
        ("pss_idle_connector", "&nbsp;&nbsp;PSS", "MiB", False, mib("pss_idle_connector")),
        ("version_rss_connector", "connector `--version` RSS (libraries alone)", "MiB", False,
         mib("version_rss_connector")),
        ("rss_load_1k_connector", "connector RSS peak, 1 KiB load", "MiB", False, mib("rss_load_1k_connector")),
        ("rss_load_100m_connector", "connector RSS peak, 100 MB transfers", "MiB", False,
         mib("rss_load_100m_connector")),
        ("rss_after_connector", "connector RSS idle after load", "MiB", False, mib("rss_after_connector")),
        ("rss_idle_edge", "edge RSS idle", "MiB", False, mib("rss_idle_edge")),
        ("rss_load_1k_edge", "edge RSS peak, 1 KiB load", "MiB", False, mib("rss_load_1k_edge")),
        ("rss_load_100m_edge", "edge RSS peak, 100 MB transfers", "MiB", False, mib("rss_load_100m_edge")),
        ("rss_after_edge", "edge RSS idle after load", "MiB", False, mib("rss_after_edge")),
        ("rss_idle_origin", "origin (nginx worker) RSS idle", "MiB", False, mib("rss_idle_origin")),
        ("cpu_10k_edge", "edge CPU per 10k requests", "s", False, g("cpu_s_per_10k_edge")),
        ("cpu_10k_connector", "connector CPU per 10k requests", "s", False, g("cpu_s_per_10k_connector")),
        ("cpu_10k_origin", "origin CPU per 10k requests", "s", False, g("cpu_s_per_10k_origin")),
        ("cpu_10k_total", "edge+connector+origin CPU per 10k", "s", False, cpu_total),
        ("idle_conn_bytes", "front RSS per idle visitor conn", "bytes", False, front_bytes),
        ("idle_conns_per_gib", "idle visitor conns per GiB (front)", "conns", True, front_per_gib),
        ("tunnel_bytes", "edge RSS per registered tunnel", "bytes", False,
         g("tunnels", "bytes_per_tunnel")),
        ("tunnels_per_gib", "registered tunnels per GiB (edge)", "tunnels", True, g("tunnels", "per_gib")),
        ("other_cpu", "other CPU on the machine during 1 KiB test (noise)", "s", None, g("other_cpu_s_1k")),
        ("connector_binary_mb", "connector binary size, stripped", "MB", False,
         lambda p: p.get("connector_stripped_bytes") / 1e6 if p.get("connector_stripped_bytes") else None),
    ]


def fmt(v, unit):
    if v is None:
        return "—"
    if unit in ("req/s", "msg/s", "conns", "tunnels", "bytes", "count"):
        return f"{v:,.0f}"
    if unit in ("ms", "s") and v < 0.1:
        return f"{v:.4f}"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    if r is None:
        return "—"
    if r >= 10:
        return f"{r:.0f}×"
    if r >= 0.1:
        return f"{r * 100:.0f} %"
    return f"{r * 100:.1f} %"


def report(args):
    parts = {}
    for fn in args.parts:
        with open(fn) as f:
            p = json.load(f)
        parts[p["path"]] = p
    order = [n for n in PATHS if n in parts]
    direct = parts.get("direct", {})
    cf = parts.get("cloudflared")
    priv = None
    if args.private:
        with open(args.private) as f:
            priv = json.load(f)
    info = machine_info(parts.get("cloudflared", {}).get("connector_binary")
                        or (priv or {}).get("cloudflared"), iperf3=priv is not None)
    table = []
    for key, label, unit, higher, f in rows():
        vals = {n: (f(parts[n]) if parts[n].get("ok", True) or True else None) for n in order}
        rec = {"label": label.strip(), "unit": unit, "higher_is_better": higher}
        for n in order:
            rec[n] = vals[n]
            if n != "direct" and higher is not None:
                rec[f"{n}_vs_direct"] = ratio(vals[n], vals.get("direct"))
        if "warren" in vals and cf is not None and higher is not None:
            rec["warren_vs_cloudflared"] = ratio(vals["warren"], vals.get("cloudflared"))
        table.append((key, label, unit, rec))
    wp = parts.get("warren", {})
    added = None
    if wp.get("wrk") and direct.get("wrk") and wp["wrk"].get("p99_ms") is not None:
        added = wp["wrk"]["p99_ms"] - direct["wrk"]["p99_ms"]
    result = {"machine": info, "settings": S, "figures": {k: r for k, _, _, r in table},
              "p99_added_ms": {n: (parts[n]["wrk"]["p99_ms"] - direct["wrk"]["p99_ms"])
                               for n in order if n != "direct" and parts[n].get("wrk")
                               and direct.get("wrk")},
              "p99_added_fixed_rate_ms": {
                  n: parts[n]["latency"]["p99_ms"] - direct["latency"]["p99_ms"]
                  for n in order if n != "direct"
                  and (parts[n].get("latency") or {}).get("p99_ms") is not None
                  and (direct.get("latency") or {}).get("p99_ms") is not None},
              "paths": parts}
    # Markdown
    cols = ["figure", "unit", "direct"]
    for n in order:
        if n != "direct":
            cols += [n, f"{n} / direct"]
    if cf is not None and "warren" in parts:
        cols.append("warren / cloudflared")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for key, label, unit, rec in table:
        row = [label.strip() if not label.startswith("  ") else "&nbsp;&nbsp;" + label.strip(), unit,
               fmt(rec.get("direct"), unit)]
        for n in order:
            if n != "direct":
                row += [fmt(rec.get(n), unit), fmt_ratio(rec.get(f"{n}_vs_direct"))]
        if cf is not None and "warren" in parts:
            row.append(fmt_ratio(rec.get("warren_vs_cloudflared")))
        lines.append("| " + " | ".join(row) + " |")
    m = info
    head = [f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_bytes'] / GIB:.0f} GiB, "
            f"kernel {m['kernel']}, {m['os']}; {m['date']}; warren {m['warren_rev']}"
            + (f"; {m['cloudflared']}" if m.get("cloudflared") else "") + ".",
            f"Tools: {m['nginx']} ({S['nginx_workers']} worker), {m['wrk']}, "
            f"{(m['curl'] or '').split(' (')[0]}.",
            f"Load: wrk -t{S['wrk_threads']} -c{S['wrk_connections']} -d{S['wrk_seconds']}s "
            f"(after {S['wrk_warmup_seconds']} s warm-up); {S['transfer_repeats']} × 100 MB each way "
            f"with curl; WebSocket {S['ws_connections']} conns × {S['ws_window']} in flight for "
            f"{S['ws_seconds']} s; {S['idle_visitor_connections']} idle visitor conns; "
            f"{S['extra_tunnels']} extra tunnels; open-loop latency at {S['lat_rate']:,} req/s over "
            f"{S['lat_connections']} conns for {S['lat_seconds']} s (after "
            f"{S['lat_warmup_seconds']} s warm-up)."]
    if not parts:  # a private-path-only run (BENCH_PRIVATE=only)
        head = head[:1]
    psec = []
    if priv is not None:
        import private  # bench/private.py, next to this file
        psec = private.section_lines(priv)
        result["private"] = {"figures": private.figures(priv), "raw": priv}
        head.append(f"Private path tools: {info.get('iperf3') or 'iperf3 ?'}, ping (iputils).")
    notes = []
    for n in order:
        p = parts[n]
        if not p.get("ok"):
            notes.append(f"- **{n} failed**: {p.get('error')}")
        busy = p.get("machine_busy_before")
        if busy is not None and busy >= 0.25:
            notes.append(f"- {n}: other jobs kept the machine {busy * 100:.0f} % busy when this path "
                         "started (waited the limit): its figures are noisy")
        att = p.get("wrk_attempts") or []
        if len(att) > 1:
            notes.append(f"- {n}: 1 KiB test run {len(att)} times on a busy machine (req/s "
                         + ", ".join(f"{a['rps']:.0f}" for a in att) + "); the quietest is shown")
        for x in (p.get("download_cold") or []) + (p.get("download") or []) + (p.get("upload") or []):
            if not x.get("ok"):
                notes.append(f"- {n}: a 100 MB transfer failed: code {x.get('code')} curl rc "
                             f"{x.get('curl_rc')} {x.get('err')} ({x.get('bytes')} bytes, origin "
                             f"read {x.get('origin_request_length', '-')})")
        iv = p.get("idle_visitors") or {}
        if iv and iv.get("held") != iv.get("opened") or iv.get("failed"):
            notes.append(f"- {n}: idle visitor connections: opened {iv.get('opened')}, still open "
                         f"{iv.get('held')}, failed {iv.get('failed')}")
        r = p.get("restart") or {}
        if "from_spawn_s" in r and r["from_spawn_s"] is None:
            notes.append(f"- {n}: no successful request within {r.get('cap_s')} s of the edge restart")
        lat = p.get("latency") or {}
        if lat.get("error"):
            notes.append(f"- {n}: fixed-rate latency test failed: {lat['error']}")
        elif lat and lat.get("achieved_rps", 0) < 0.95 * lat.get("rate", 0):
            notes.append(f"- {n}: the fixed-rate test did not keep up ({lat['achieved_rps']:.0f} of "
                         f"{lat['rate']:g} req/s, {lat.get('unfinished', 0)} unanswered): its "
                         "latencies show a queue, not the path's latency")
        if lat.get("other_cpu_s") is not None and lat["other_cpu_s"] > 0.1 * (os.cpu_count() or 1) * (
                S["lat_seconds"] + S["lat_warmup_seconds"]):
            notes.append(f"- {n}: other jobs used at least {lat['other_cpu_s']:.1f} s of CPU during the "
                         "fixed-rate test: its tail (p99, p99.9) is noisy")
        if (p.get("ws") or {}).get("error"):
            notes.append(f"- {n}: WebSocket echo failed: {p['ws']['error']}")
        t = p.get("tunnels") or {}
        if t:
            notes.append(f"- {n}: the {t.get('tunnels')} extra tunnels registered {t.get('connections')} "
                         f"connections in {t.get('register_all_s', 0):.1f} s; the bench tunnel "
                         f"held {p.get('connections_at_start')} (one per --edge address)")
    for n, v in result["p99_added_ms"].items():
        notes.append(f"- {n}: p99 added over direct: {v:.2f} ms")
    for n, v in result["p99_added_fixed_rate_ms"].items():
        notes.append(f"- {n}: p99 added over direct at fixed rate: {v:.2f} ms")
    http = ["", *lines, "", "Ratios: the path's figure divided by the direct path's (for RSS, CPU "
            "and bytes lower is better). Method and caveats: bench/README.md.", "", *notes] if parts else []
    md = "\n".join(["# Warren benchmark (`make bench`)", "", *head, *http, "", *psec, ""])
    os.makedirs(os.path.dirname(os.path.abspath(args.md)), exist_ok=True)
    with open(args.md, "w") as f:
        f.write(md)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1, default=str)
    if args.readme and os.path.exists(args.readme):
        with open(args.readme) as f:
            text = f.read()
        # Each section is replaced only when this run measured it.
        sections = []
        if parts:
            sections.append(("latest", ["", *head, "", *lines, "", *notes, ""]))
        if psec:
            sections.append(("private", ["", head[0], "", *psec, ""]))
        for name, body in sections:
            a, b = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
            if a in text and b in text:
                text = text.split(a)[0] + a + "\n" + "\n".join(body) + "\n" + b + text.split(b, 1)[1]
        with open(args.readme, "w") as f:
            f.write(text)
    print(md)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("path")
    p.add_argument("name", choices=PATHS)
    p.add_argument("--out", required=True)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--ws-echo", required=True)
    p.add_argument("--cloudflared")
    p.add_argument("--latency", help="bench/latency.c binary (the fixed-rate test; skipped without)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs) on success")
    v = sub.add_parser("serve")
    v.add_argument("name", choices=["direct", "warren", "cloudflared"])
    v.add_argument("--build", default=os.path.join(ROOT, "build"))
    v.add_argument("--ws-echo", required=True)
    v.add_argument("--cloudflared")
    v.add_argument("--latency", help="bench/latency.c binary: the JSON line then has the "
                   "fixed-rate command for this path (latency_cmd)")
    c = sub.add_parser("cold")
    c.add_argument("name", choices=["direct", "warren", "cloudflared"])
    c.add_argument("--build", default=os.path.join(ROOT, "build"))
    c.add_argument("--ws-echo", required=True)
    c.add_argument("--cloudflared")
    c.add_argument("--repeats", type=int, default=3)
    r = sub.add_parser("report")
    r.add_argument("parts", nargs="*")
    r.add_argument("--md", required=True)
    r.add_argument("--json", required=True)
    r.add_argument("--readme")
    r.add_argument("--private", help="bench/private.py's JSON: adds the private-path section")
    args = ap.parse_args()
    if args.cmd == "path":
        log("load average before:", open("/proc/loadavg").read().strip())
        if args.name.startswith("cloudflared") and not args.cloudflared:
            ap.error(f"path {args.name} needs --cloudflared PATH")

        def on_signal(sig, frame):
            Proc.stop_all()
            sys.exit(128 + sig)
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        return run_path(args.name, args)
    if args.cmd == "serve":
        return serve(args)
    if args.cmd == "cold":
        return cold(args)
    return report(args)


if __name__ == "__main__":
    sys.exit(main())
