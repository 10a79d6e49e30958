"""Shared fixtures for Warren's end-to-end tests.

Tests start the real binaries (from $WARREN_BUILD, default build/) with
generated files in a per-test temporary directory, on loopback ports picked at
run time, and clean up every process they start."""
import os
import signal
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("WARREN_BUILD", "build"))
WARREN = os.path.join(BUILD, "warren")
WARREN_EDGE = os.path.join(BUILD, "warren-edge")
VECTORS = os.path.join(ROOT, "tests", "vectors")


def free_port(kind=socket.SOCK_STREAM):
    """A port the kernel says is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A started binary; stop() sends SIGTERM, then SIGKILL after a timeout."""

    def __init__(self, args, env=None, cwd=None):
        self.args = args
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  env=env, cwd=cwd, start_new_session=True)

    def stop(self, timeout=10):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        return self.p.returncode

    def output(self):
        return self.p.stdout.read().decode(errors="replace") if self.p.stdout else ""


@pytest.fixture
def procs():
    started = []

    def start(args, **kw):
        p = Proc(args, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


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


def wait_for(pred, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return False
