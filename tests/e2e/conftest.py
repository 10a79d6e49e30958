"""Shared fixtures for Warren's end-to-end tests.

Tests start the real binaries (from $WARREN_BUILD, default build/) with
generated files in a per-test temporary directory, on loopback ports picked at
run time, and clean up every process they start.

Every started process writes its stdout and stderr to a log file next to the
test's other files (never to a pipe nobody reads, which would block a chatty
process). When a test fails, the tail of the log of every process that was
running for it is added to the failure report."""
import os
import socket
import subprocess
import time

import pytest

import common
from common import free_port  # noqa: F401  (tests import it from here)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("WARREN_BUILD", "build"))
WARREN = os.path.join(BUILD, "warren")
WARREN_EDGE = os.path.join(BUILD, "warren-edge")
VECTORS = os.path.join(ROOT, "tests", "vectors")
# cloudflared for the tests that run it next to warren (CLOUDFLARED=, or the
# copy in /opt/cfd); "" when there is none.
CLOUDFLARED = os.environ.get("CLOUDFLARED") or (
    "/opt/cfd/cloudflared" if os.path.exists("/opt/cfd/cloudflared") else "")
# A test parametrized over the connector it runs: cloudflared (skipped
# without one) and warren.
CONNECTORS = [
    pytest.param("cloudflared", marks=pytest.mark.skipif(not CLOUDFLARED, reason="needs CLOUDFLARED")),
    pytest.param("warren"),
]

# The sanitizer build (make e2e / make check) has a larger memory baseline.
ASAN = "asan" in os.environ.get("WARREN_BUILD", "")

# Tests open a thousand sockets at once (and so do the processes they start,
# which inherit this limit); the usual soft limit of 1024 is too low.
common.raise_nofile()




def log_tail(path, lines=80, chars=12000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - chars))
            text = f.read().decode(errors="replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(text.splitlines()[-lines:])


class Proc(common.Proc):
    """A started binary; stop() sends SIGTERM, then SIGKILL after a timeout.
    Output (stdout and stderr together) goes to the file self.log (a fresh
    one: a temporary file when none is named)."""

    def __init__(self, args, env=None, cwd=None, log=None, name=None):
        name = name or os.path.basename(str(args[0]))
        if log is None:
            import tempfile
            fd, log = tempfile.mkstemp(prefix=name + "-", suffix=".log")
            os.close(fd)
        super().__init__(args, str(log), env=env, name=name, cwd=cwd, mode="wb")

    def signal(self, sig):
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def wait(self, timeout=None):
        return self.p.wait(timeout)

    def stop(self, timeout=10):
        return super().stop(timeout)

    def tail(self, lines=80):
        return log_tail(self.log, lines)

    def wait_output(self, needle, timeout=10.0, start=0):
        """Waits until |needle| appears in the log after offset |start|.
        Returns the offset just past it, or None on timeout or if the process
        exited without writing it."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.output()
            i = text.find(needle, start)
            if i >= 0:
                return i + len(needle)
            if self.p.poll() is not None or time.monotonic() >= deadline:
                text = self.output()
                i = text.find(needle, start)
                return i + len(needle) if i >= 0 else None
            time.sleep(0.005)

    def __repr__(self):
        return f"<Proc {self.name} pid={self.pid} rc={self.p.returncode} log={self.log}>"


# Process sets whose logs go into failure reports. A set stays listed until
# the report of the phase in which it was closed is made, so a fixture that
# fails while starting things (and stops them) still shows their logs.
_OPEN_SETS = []


class ProcSet:
    """Starts processes with logs in |log_dir| and stops them all on close()."""

    def __init__(self, log_dir):
        self.log_dir = str(log_dir)
        self.procs = []
        self.closed = False
        _OPEN_SETS.append(self)

    def start(self, args, name=None, stop_timeout=10, **kw):
        name = name or os.path.basename(str(args[0]))
        n = sum(1 for p in self.procs if p.name.split("#")[0] == name)
        log = os.path.join(self.log_dir, f"{name}.log" if n == 0 else f"{name}-{n}.log")
        p = Proc(args, log=log, name=name if n == 0 else f"{name}#{n}", **kw)
        p.stop_timeout = stop_timeout
        self.procs.append(p)
        return p

    __call__ = start

    def close(self):
        self.closed = True
        for p in reversed(self.procs):
            p.stop(getattr(p, "stop_timeout", 10))


@pytest.fixture
def procs(tmp_path):
    """procs(args, env=..., cwd=..., name=...) starts a process for this test."""
    s = ProcSet(tmp_path)
    yield s
    s.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for s in _OPEN_SETS:
            for p in s.procs:
                state = "running" if p.p.poll() is None else f"exited {p.p.returncode}"
                rep.sections.append((f"log of {p.name} ({state}): {p.log}", p.tail()))
    _OPEN_SETS[:] = [s for s in _OPEN_SETS if not s.closed]


def run(args, env=None, cwd=None, timeout=60, input=None):
    """Runs a command to completion; returns CompletedProcess with text output."""
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run(args, capture_output=True, text=True, env=e, cwd=cwd,
                          timeout=timeout, input=input)


@pytest.fixture
def home(tmp_path):
    """An empty HOME so default-path lookups (~/.cloudflared) are hermetic."""
    h = tmp_path / "home"
    h.mkdir()
    return h


def _loopback_only():
    """A fresh network namespace with only lo up (netns.loopback_only), for
    cloudflared, which looks names up at start; skips where none can be made
    (it needs root)."""
    import netns as netns_mod
    try:
        ctx = netns_mod.loopback_only()
        ctx.__enter__()
    except OSError as e:
        pytest.skip(str(e))
    try:
        yield
    finally:
        ctx.__exit__(None, None, None)


@pytest.fixture
def netns_lo():
    """One test in a namespace with only lo up (see _loopback_only)."""
    yield from _loopback_only()


@pytest.fixture(scope="module")
def netns_lo_module():
    """A whole module in a namespace with only lo up (see _loopback_only)."""
    yield from _loopback_only()


def check(cmd, env):
    """Runs |cmd| (its items as strings) to a zero exit; returns the
    CompletedProcess (text output)."""
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, f"{cmd}: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def edge_with_hello(tmp_path, env, zone, hosts=("hello",)):
    """`warren-edge init` of tmp_path/edge for |zone|, with a tunnel "hello"
    (credentials in tmp_path/hello.json) routed for HOST.|zone| for each of
    |hosts|. Returns (data dir, credentials file, tunnel ID, init's output)."""
    import json
    d, creds = tmp_path / "edge", tmp_path / "hello.json"
    init = check([WARREN_EDGE, "init", "--data-dir", d, "--zone", zone], env).stdout
    check([WARREN_EDGE, "tunnel", "create", "--data-dir", d, "--out", creds, "hello"], env)
    tid = json.loads(creds.read_text())["TunnelID"]
    for h in hosts:
        check([WARREN_EDGE, "route", "dns", "--data-dir", d, "hello", f"{h}.{zone}"], env)
    return d, creds, tid, init


def run_edge_and_hello(procs, d, creds, tid, env, edge_args=(), edge_env=None, connector_args=()):
    """`warren-edge run` of data dir |d| on free loopback ports (plus
    |edge_args|, in |edge_env| or |env|) and a --hello-world connector for
    tunnel |tid| over QUIC, each waited for until it serves. Returns the
    edge's visitor (HTTP) port."""
    udp, http = free_port(socket.SOCK_DGRAM), free_port()
    p = procs.start([WARREN_EDGE, "run", "--data-dir", d, "--tunnel-listen", f"127.0.0.1:{udp}",
                     "--http-listen", f"127.0.0.1:{http}", *edge_args],
                    name="warren-edge", env=edge_env or env)
    assert p.wait_output("Serving visitors on http://", 30) is not None, p.tail()
    c = procs.start([WARREN, "tunnel", "--no-autoupdate", "--edge", f"127.0.0.1:{udp}",
                     "--cacert", d / "ca.pem", "--protocol", "quic", "--credentials-file", creds,
                     *connector_args, "--hello-world", "run", tid], name="warren-hello", env=env)
    assert c.wait_output("Registered tunnel connection", 30) is not None, c.tail()
    return http


wait_for = common.wait_until  # the tests' name for it
