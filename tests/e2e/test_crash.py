"""Crash-only: warren-edge killed with SIGKILL at random points while API
writes and connector registrations are in flight, restarted on the same data
directory, must come back with an intact store that holds every write it
acknowledged, and serve visitors through its reconnected connectors at once.

Each of ROUNDS rounds: the edge runs for a random 0.05-0.4 s under load (two
API writer threads creating tunnels, routing DNS names to them and deleting
some; a thread starting and stopping connectors so that registrations and
unregistrations hit the store all the time; a steady hello-world connector),
is killed with SIGKILL and started again at once with the same ports. Then:
  - PRAGMA integrity_check and PRAGMA foreign_key_check on DIR/warren.db
    (Python's sqlite3, a read-only connection beside the running edge, so
    the edge itself is what recovers the WAL on start);
  - every write answered 200 before any kill is in the store: created
    tunnels exist, tunnels whose deletion was acknowledged are deleted, and
    acknowledged DNS routes exist unless their tunnel is deleted (a delete
    whose answer was lost in the kill may have committed; that is allowed,
    a lost acknowledged write is not);
  - every connection a connector logged as registered (it logs after the
    edge's answer, which the edge sends after committing the row) is in the
    connections table;
  - a visitor request through the steady connector gets a 200 within
    RESTART_BOUND seconds of starting the new edge process (polled every
    10 ms; the test prints the measured figures).

Why synchronous=NORMAL is enough here: wr_store_open (src/edge/store.c) puts
the store in WAL mode with synchronous=NORMAL. A commit then appends its
frames to the -wal file with write(2) but does not fsync it (the WAL is
synced at checkpoints). When the API answers 200 the transaction is in the
kernel's page cache; a process crash (SIGKILL, abort, OOM kill) does not
touch the page cache, and the next open replays the WAL, so no acknowledged
write can be lost to a process crash, and WAL recovery never leaves a torn
transaction. A power loss or kernel crash can lose the transactions
committed since the last checkpoint (never corrupt the file); closing that
gap would take synchronous=FULL, one fsync per write on the edge's loop
thread. This test checks the process-crash guarantee only.

The bound is generous for sanitizer builds on a loaded two-core machine
(RESTART_BOUND); the goal for a release build is 2 s (measured by hand:
see the printed "restart -> first 200" figures with WARREN_BUILD=build)."""
import http.client
import json
import os
import random
import re
import socket
import sqlite3
import threading
import time

import pytest

from common import read_cert
from conftest import ASAN, WARREN, WARREN_EDGE, free_port, run, wait_for

ZONE = "example.test"
ROUNDS = 10
RESTART_BOUND = 10.0 if ASAN else 2.0
REGISTERED_RE = re.compile(r"Registered tunnel connection connIndex=\d+ connection=([0-9a-f-]{36})")


class Acked:
    """The writes the edge answered with 200 (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.created = {}      # tunnel id -> name
        self.deleted = set()   # tunnel ids
        self.routes = {}       # hostname -> tunnel id
        self.calls = 0         # requests that got no answer (the kill)
        self.lost_answers = 0


class Writer(threading.Thread):
    """Creates a tunnel, routes a name to it and deletes one tunnel in two
    (this one or an older one), forever; records what was acknowledged. A
    delete that got no answer is not retried (the tunnel may be gone)."""

    def __init__(self, ident, api_port, zone, account, token, acked, stop):
        super().__init__(daemon=True)
        self.wid, self.port = ident, api_port
        self.zone, self.account, self.token = zone, account, token
        self.acked, self.stop = acked, stop
        self.rng = random.Random(ident)
        self.n = 0
        self.live = []
        self.error = None

    def call(self, method, path, body=None):
        """The parsed answer of a 200, None when the request failed (edge
        down or killed mid-request), raises on any other answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            data = json.dumps(body).encode() if body is not None else None
            hdrs = {"Authorization": f"Bearer {self.token}"}
            if data:
                hdrs["Content-Type"] = "application/json"
            conn.request(method, "/client/v4" + path, body=data, headers=hdrs)
            r = conn.getresponse()
            text = r.read()
        except (OSError, http.client.HTTPException):
            with self.acked.lock:
                self.acked.lost_answers += 1
            return None
        finally:
            conn.close()
        j = json.loads(text)
        if r.status != 200 or not j["success"]:
            raise AssertionError(f"{method} {path} -> {r.status} {j}")
        return j["result"]

    def run(self):
        try:
            while not self.stop.is_set():
                self.n += 1
                name = f"w{self.wid}-{self.n}"
                t = self.call("POST", f"/accounts/{self.account}/cfd_tunnel",
                              {"name": name, "tunnel_secret": "A" * 43 + "="})
                if t is None:
                    time.sleep(0.02)
                    continue
                with self.acked.lock:
                    self.acked.created[t["id"]] = name
                host = f"{name}.{ZONE}"
                r = self.call("PUT", f"/zones/{self.zone}/tunnels/{t['id']}/routes",
                              {"type": "dns", "user_hostname": host, "overwrite_existing": False})
                if r is not None:
                    with self.acked.lock:
                        self.acked.routes[host] = t["id"]
                # Delete this tunnel, or the oldest live one (the edge allows
                # 1000 live tunnels per account; keep well below).
                self.live.append(t["id"])
                if self.rng.random() < 0.5 or len(self.live) > 40:
                    victim = self.live.pop(-1 if self.rng.random() < 0.5 else 0)
                    d = self.call("DELETE", f"/accounts/{self.account}/cfd_tunnel/{victim}")
                    if d is not None:
                        with self.acked.lock:
                            self.acked.deleted.add(victim)
        except BaseException as e:
            self.error = e


class Registrar(threading.Thread):
    """Starts a connector for the "reg" tunnel, lets it register (or not:
    at most a second), stops it; again and again."""

    def __init__(self, procs, args, stop):
        super().__init__(daemon=True)
        self.procs, self.args, self.stop = procs, args, stop
        self.started = []

    def run(self):
        while not self.stop.is_set():
            p = self.procs.start(self.args, name="warren-reg", stop_timeout=10)
            self.started.append(p)
            p.wait_output("Registered tunnel connection", timeout=1.0)
            time.sleep(random.random() * 0.3)
            p.stop(10)


def crash_report(p):
    """The sanitizer report in |p|'s log if there is one, else its tail."""
    text = p.output()
    i = text.find("==ERROR: ")
    if i >= 0:
        return text[text.rfind("\n", 0, i) + 1:][:6000]
    return p.tail(30)


def registered_ids(procs):
    ids = set()
    for p in procs:
        ids.update(REGISTERED_RE.findall(p.output()))
    return ids


def test_kill9_during_writes_loses_nothing_acknowledged(tmp_path, procs):
    d = tmp_path / "edge"
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = str(home)
    assert run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", ZONE]).returncode == 0
    creds = {}
    for name in ("steady", "reg"):
        creds[name] = tmp_path / f"{name}.json"
        r = run([WARREN_EDGE, "tunnel", "create", "--data-dir", str(d), "--out", str(creds[name]), name])
        assert r.returncode == 0, r.stderr
    r = run([WARREN_EDGE, "route", "dns", "--data-dir", str(d), "steady", f"steady.{ZONE}"])
    assert r.returncode == 0, r.stderr
    zone, account, token = read_cert(d / "cert.pem")
    udp, http_port, api_port = free_port(socket.SOCK_DGRAM), free_port(), free_port()

    def start_edge():
        return procs.start([WARREN_EDGE, "run", "--data-dir", str(d),
                            "--tunnel-listen", f"127.0.0.1:{udp}",
                            "--http-listen", f"127.0.0.1:{http_port}",
                            "--api-listen", f"127.0.0.1:{api_port}"], name="warren-edge", env=env)

    def connector_args(name):
        tid = json.loads(creds[name].read_text())["TunnelID"]
        return [WARREN, "tunnel", "--no-autoupdate", "--edge", f"127.0.0.1:{udp}",
                "--cacert", str(d / "ca.pem"), "--protocol", "quic",
                "--credentials-file", str(creds[name]), "--metrics", "127.0.0.1:0",
                "--grace-period", "1s", "--hello-world", "run", tid]

    def visit():
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=2)
        try:
            conn.request("GET", "/", headers={"Host": f"steady.{ZONE}"})
            r = conn.getresponse()
            r.read()
            return r.status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    edge = start_edge()
    assert edge.wait_output("Serving visitors on http://", 30) is not None, edge.tail()
    steady = procs.start(connector_args("steady"), name="warren-steady", env=env)
    assert wait_for(lambda: visit() == 200, timeout=30), steady.tail()

    acked, stop = Acked(), threading.Event()
    writers = [Writer(i, api_port, zone, account, token, acked, stop) for i in range(2)]
    registrar = Registrar(procs, connector_args("reg"), stop)
    for t in writers + [registrar]:
        t.start()

    rng = random.Random(int(os.environ.get("WARREN_CRASH_SEED", "0")) or None)
    served_after = []
    try:
        for rnd in range(ROUNDS):
            time.sleep(rng.uniform(0.05, 0.4))
            for w in writers:
                assert w.error is None, f"writer failed: {w.error!r}"
            with acked.lock:  # what was acknowledged before this kill
                created, deleted = dict(acked.created), set(acked.deleted)
                routes = dict(acked.routes)
            regs = registered_ids(procs.procs)
            edge.kill()
            t0 = time.monotonic()
            edge = start_edge()
            while visit() != 200:
                assert edge.alive(), (f"round {rnd}: the restarted edge exited with status "
                                      f"{edge.p.returncode}:\n{crash_report(edge)}")
                assert time.monotonic() - t0 < RESTART_BOUND, (
                    f"round {rnd}: no 200 through the reconnected connector within "
                    f"{RESTART_BOUND} s of the restart\n{steady.tail(20)}")
                time.sleep(0.01)
            served_after.append(time.monotonic() - t0)

            db = sqlite3.connect(f"file:{d / 'warren.db'}?mode=ro", uri=True, timeout=30)
            try:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
                assert db.execute("PRAGMA foreign_key_check").fetchall() == []
                # One read transaction: one snapshot of a store that the
                # writers keep changing.
                db.execute("BEGIN")
                rows = dict(db.execute("SELECT id, deleted_at FROM tunnels").fetchall())
                rts = dict(db.execute("SELECT hostname, tunnel_id FROM routes").fetchall())
                conns = {r[0] for r in db.execute("SELECT id FROM connections")}
            finally:
                db.close()
            live = {i for i, deleted_at in rows.items() if deleted_at is None}
            lost = [f"tunnel {n} ({i}) created" for i, n in created.items() if i not in rows]
            lost += [f"tunnel {i} deleted" for i in deleted if i in live]
            # A route goes with its tunnel (possibly deleted by a request
            # whose answer the kill swallowed).
            lost += [f"route {h} -> {i}" for h, i in routes.items() if i in live and rts.get(h) != i]
            lost += [f"registration of connection {c}" for c in regs if c not in conns]
            assert not lost, f"round {rnd}: acknowledged writes lost after kill -9: {lost[:20]}"
    finally:
        stop.set()
        for t in writers + [registrar]:
            t.join(30)
    with acked.lock:
        n_created, n_deleted, n_routes = len(acked.created), len(acked.deleted), len(acked.routes)
    n_regs = len(registered_ids(procs.procs))
    print(f"{ROUNDS} kills; acknowledged: {n_created} tunnels created, {n_deleted} deleted, "
          f"{n_routes} routes, {n_regs} registrations; {acked.lost_answers} requests lost their "
          f"answer to a kill; restart -> first 200: "
          + ", ".join(f"{s:.3f}" for s in served_after) + " s")
    assert n_created > ROUNDS and n_regs > ROUNDS, "too little load to mean anything"
    assert edge.stop(30) == 0, edge.tail()
    assert steady.stop(30) == 0, steady.tail()
