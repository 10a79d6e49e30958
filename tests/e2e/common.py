"""Helpers shared by the end-to-end tests, bench/bench.py and scripts/soak.py
(the scripts put tests/e2e on sys.path). Standard library only, no pytest:
the scripts run without it. Fixtures live in conftest.py."""
import base64
import contextlib
import http.server
import json
import os
import random
import re
import resource
import signal
import socket
import subprocess
import threading
import time


def raise_nofile():
    """Raises the soft limit on open files to 65536 (or the hard limit if
    lower): load generators open thousands of sockets, and the processes they
    start inherit the limit. Failing to raise it is not an error."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass


def _ephemeral_floor():
    """The lowest port the kernel hands out on its own (connect(), bind to
    port 0): ports below it are never taken behind a test's back."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_handed_out = set()


def free_port(kind=socket.SOCK_STREAM):
    """A port free on 127.0.0.1 right now, for a process the test starts.

    It is picked below the kernel's ephemeral range: a port from that range
    can be taken between this call and the server's bind by any outgoing
    connection on the machine (a curl, a connector dialling), and a tunnel
    port lost that way made an edge fail to start now and then. A UDP port
    (SOCK_DGRAM) is also free for TCP: every UDP listener here has a TCP twin
    on the same port (the edge's tunnel port serves QUIC and HTTP/2, DNS
    servers answer both). Ports already returned by this process are not
    returned again, so two servers of one test never share one."""
    floor = _ephemeral_floor()
    low = 10000 if floor > 12000 else 1024
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if kind == socket.SOCK_DGRAM else (kind,)
    rnd = random.SystemRandom()
    for _ in range(1000):
        port = rnd.randrange(low, floor)
        if port in _handed_out:
            continue
        try:
            for k in kinds:
                with socket.socket(socket.AF_INET, k) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        _handed_out.add(port)
        return port
    raise OSError(f"no port free for {kinds} below {floor}")


def recv_head(sock, what, step=65536):
    """Reads from |sock| until an HTTP head is complete; returns every byte
    read (with |step| 1, none past the blank line). ConnectionError naming
    |what| if the peer closes first."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        got = sock.recv(step)
        if not got:
            raise ConnectionError(f"closed in {what}: {buf[:200]!r}")
        buf += got
    return buf


def recv_to_eof(sock, step=65536):
    """Every byte |sock| delivers until the peer ends its side."""
    out = bytearray()
    while True:
        got = sock.recv(step)
        if not got:
            return bytes(out)
        out += got


def read_cert(path):
    """(zoneID, accountID, apiToken) from the ARGO TUNNEL TOKEN block of a
    cert.pem; ValueError if there is none."""
    text = open(path).read()
    m = re.search(r"-----BEGIN ARGO TUNNEL TOKEN-----\n(.*?)-----END ARGO TUNNEL TOKEN-----", text, re.S)
    if not m:
        raise ValueError(f"no ARGO TUNNEL TOKEN block in {path}")
    j = json.loads(base64.b64decode("".join(m.group(1).split())))
    return j["zoneID"], j["accountID"], j["apiToken"]


def ok(r):
    """Asserts the finished command r (a CompletedProcess) exited 0."""
    assert r.returncode == 0, f"rc={r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def failed(r, *needles):
    """Asserts r exited 1 and said each of |needles| on stderr."""
    assert r.returncode == 1, f"rc={r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    for n in needles:
        assert n in r.stderr, f"{n!r} not in {r.stderr!r}"
    return r


class Poller:
    """Used as a context manager, calls self.poll() every |interval| seconds
    in a daemon thread until the block ends (e.g. to sample peak memory)."""

    interval = 0.02

    def __init__(self):
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def poll(self):
        raise NotImplementedError

    def _run(self):
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def wait_until(pred, timeout=10.0, interval=0.05):
    """Polls pred() every |interval| s: True once it is true, False when
    |timeout| s pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return False


def stop_popens(procs, timeout):
    """SIGTERM to each subprocess.Popen of |procs| still running, in order;
    SIGKILL to one that has not exited |timeout| s later."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A test origin's request handler: answers with reply(), logs nothing."""

    def reply(self, body, status=200, content_type=None):
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@contextlib.contextmanager
def serve_http(handler, port=0, server=http.server.ThreadingHTTPServer):
    """|handler| served on 127.0.0.1:|port| (0: any free one) by a thread;
    yields the server, shut down and closed on the way out."""
    srv = server(("127.0.0.1", port), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


class Proc:
    """A started program in its own session (so its whole process group can
    be killed), stdin from /dev/null, stdout and stderr appended to |log|.
    Used by bench.py and soak.py; the e2e tests' conftest.Proc builds on it."""

    def __init__(self, args, log, env=None, name=None, cwd=None, mode="ab"):
        self.args = [str(a) for a in args]
        self.name = name or os.path.basename(self.args[0])
        self.log = log
        with open(log, mode) as out:
            self.p = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                      start_new_session=True)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def output(self):
        """The log so far ("" if it cannot be read)."""
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def find_output(self, needle, timeout, start=0, interval=0.02):
        """Offset of |needle| in the log at or after |start|, polling every
        |interval| s; None once the process has exited or |timeout| s passed
        without it."""
        deadline = time.monotonic() + timeout
        while True:
            i = self.output().find(needle, start)
            if i >= 0:
                return i
            if not self.alive() or time.monotonic() > deadline:
                return None
            time.sleep(interval)

    def stop(self, timeout, sig=signal.SIGTERM):
        """Sends |sig|, and SIGKILL to the group after |timeout| s; returns
        the exit status."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
            self.wait_exit(timeout)
        return self.p.returncode

    def wait_exit(self, timeout):
        """The exit status; SIGKILL (status -9) if it takes over |timeout| s."""
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.p.returncode

    def kill(self):
        """SIGKILL to the process group; returns the exit status."""
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self.p.wait()
