#!/usr/bin/env python3
"""Edges on PostgreSQL: requests/s through one edge with its store in SQLite
and in PostgreSQL, through a second edge that forwards to the first, how
long a route deleted through one edge's API keeps serving on the other, and
three edges: the connector on A and C, wrk through B (which forwards), and
A killed with kill -9 halfway through the run (B's streams to A start again
on C; the figure is how many requests wrk saw fail).

    python3 bench/multi_edge.py        (release binaries in build/, or WARREN_BUILD)

Needs wrk and Debian's postgresql (tests/tools/pg_tmp.sh starts a throw-away
server). The origin is the connector's hello_world service. Prints a
Markdown table and writes bench/results/multi_edge.json. Knobs:
BENCH_WRK_SECONDS (5), BENCH_WRK_CONNECTIONS (50), BENCH_PROPAGATIONS (5)."""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from common import free_port, stop_popens, wait_until  # noqa: E402  (shared with the e2e tests)
BUILD = os.environ.get("WARREN_BUILD", os.path.join(ROOT, "build"))
EDGE, WARREN = os.path.join(BUILD, "warren-edge"), os.path.join(BUILD, "warren")
PG_TMP = os.path.join(ROOT, "tests", "tools", "pg_tmp.sh")
SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "5"))
CONNS = int(os.environ.get("BENCH_WRK_CONNECTIONS", "50"))
PROPAGATIONS = int(os.environ.get("BENCH_PROPAGATIONS", "5"))
ZONE = "example.test"
HOST = f"hello.{ZONE}"


def check(cmd, env):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=120)
    if r.returncode != 0:
        sys.exit(f"{cmd}: {r.stderr}")
    return r.stdout


def get(port, host=HOST):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def wait(pred, timeout):
    return wait_until(pred, timeout, 0.01)


def wrk(port):
    r = subprocess.run(["wrk", "-t2", f"-c{CONNS}", f"-d{SECONDS}s", "-H", f"Host: {HOST}",
                        f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                       timeout=SECONDS + 60)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     r.stdout)
    return {"rps": float(m.group(1)) if m else 0.0, "non2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": sum(int(x) for x in sock.groups()) if sock else 0}


class Edge:
    def __init__(self, d, env, log):
        self.udp, self.http, self.api, self.peer = (free_port(socket.SOCK_DGRAM), free_port(),
                                                    free_port(), free_port())
        self.p = subprocess.Popen(
            [EDGE, "run", "--data-dir", d, "--tunnel-listen", f"127.0.0.1:{self.udp}",
             "--http-listen", f"127.0.0.1:{self.http}", "--api-listen", f"127.0.0.1:{self.api}",
             "--peer-listen", f"127.0.0.1:{self.peer}", "--requests-per-second-per-source", "0",
             "--loglevel", "warn"],
            env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        if not wait(lambda: get(self.http, "nosuch." + ZONE) == 404, 30):
            sys.exit(f"edge did not start: {log}")

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(20)


def setup(work, store):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = work
    if store:
        env["WARREN_STORE"] = store
    else:
        env.pop("WARREN_STORE", None)
    d = os.path.join(work, "edge-a")
    creds = os.path.join(work, "hello.json")
    check([EDGE, "init", "--data-dir", d, "--zone", ZONE], env)
    check([EDGE, "tunnel", "create", "--data-dir", d, "--out", creds, "hello"], env)
    check([EDGE, "route", "dns", "--data-dir", d, "hello", HOST], env)
    return env, d, creds


def connector(work, env, d, creds, *edges):
    tid = json.load(open(creds))["TunnelID"]
    args = []
    for e in edges:
        args += ["--edge", f"127.0.0.1:{e.udp}"]
    return subprocess.Popen(
        [WARREN, "tunnel", "--no-autoupdate", *args, "--cacert",
         os.path.join(d, "ca.pem"), "--protocol", "quic", "--credentials-file", creds,
         "--hello-world", "--loglevel", "warn", "run", tid],
        env=env, stdout=open(os.path.join(work, "connector.log"), "wb"), stderr=subprocess.STDOUT,
        start_new_session=True)


def token(d):
    text = open(os.path.join(d, "cert.pem")).read()
    m = re.search(r"-----BEGIN ARGO TUNNEL TOKEN-----\n(.*?)-----END", text, re.S)
    j = json.loads(base64.b64decode("".join(m.group(1).split())))
    return j["zoneID"], j["apiToken"]


def api(edge, method, path, tok, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{edge.api}/client/v4{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {tok}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["result"]


def three_edges(w, env, d, creds, a, b, procs):
    """A third edge C; the connector on A and C; wrk through B, which
    forwards; A killed (kill -9) halfway through the run."""
    shutil.copytree(d, os.path.join(w, "edge-c"))
    cc = Edge(os.path.join(w, "edge-c"), env, os.path.join(w, "edge-c.log"))
    conn = connector(w, env, d, creds, a, cc)
    procs += [conn, cc.p]
    # B forwards once its heartbeat read where the tunnel lives (A and C).
    wait(lambda: get(b.http) == 200, 30)
    time.sleep(2)
    killer = threading.Timer(SECONDS / 2, lambda: os.killpg(a.p.pid, signal.SIGKILL))
    killer.start()
    r = wrk(b.http)
    killer.join()
    r["a_killed"] = a.p.wait(10) is not None
    return r


def main():
    res = {}
    work = tempfile.mkdtemp(prefix="wr-bench-multi.")
    dsn = check([PG_TMP, "start"], os.environ).strip()
    procs = []
    try:
        # One edge, SQLite.
        w = os.path.join(work, "sqlite")
        os.makedirs(w)
        env, d, creds = setup(w, None)
        a = Edge(d, env, os.path.join(w, "edge.log"))
        c = connector(w, env, d, creds, a)
        procs += [c, a.p]
        wait(lambda: get(a.http) == 200, 30)
        res["sqlite"] = wrk(a.http)
        c.send_signal(signal.SIGTERM)
        c.wait(20)
        a.stop()
        # Two edges, PostgreSQL: through the edge with the connection, and
        # through the other one (forwarded).
        w = os.path.join(work, "pg")
        os.makedirs(w)
        check(["psql", dsn, "-X", "-q", "-c", "CREATE DATABASE bench"], os.environ)
        env, d, creds = setup(w, f"{dsn} dbname=bench")
        shutil.copytree(d, os.path.join(w, "edge-b"))
        a = Edge(d, env, os.path.join(w, "edge-a.log"))
        b = Edge(os.path.join(w, "edge-b"), env, os.path.join(w, "edge-b.log"))
        c = connector(w, env, d, creds, a)
        procs += [c, a.p, b.p]
        wait(lambda: get(a.http) == 200 and get(b.http) == 200, 30)
        res["postgres"] = wrk(a.http)
        res["postgres_forwarded"] = wrk(b.http)
        # Propagation: a route added through B, deleted through A; how long
        # until B answers 404.
        zone, tok = token(d)
        tid = json.load(open(creds))["TunnelID"]
        times = []
        for i in range(PROPAGATIONS):
            host = f"p{i}.{ZONE}"
            api(b, "PUT", f"/zones/{zone}/tunnels/{tid}/routes",
                tok, {"type": "dns", "user_hostname": host, "overwrite_existing": True})
            wait(lambda: get(b.http, host) == 200, 10)
            rec = api(a, "GET", f"/zones/{zone}/dns_records?name={host}", tok)[0]
            t0 = time.monotonic()
            api(a, "DELETE", f"/zones/{zone}/dns_records/{rec['id']}", tok)
            wait(lambda: get(b.http, host) == 404, 15)
            times.append((time.monotonic() - t0) * 1000)
        res["propagation_ms"] = sorted(times)
        c.send_signal(signal.SIGTERM)
        c.wait(20)
        res["three_edges_kill"] = three_edges(w, env, d, creds, a, b, procs)
    finally:
        stop_popens(procs, 20)
        subprocess.run([PG_TMP, "stop", dsn], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    med = res["propagation_ms"][len(res["propagation_ms"]) // 2]
    print("| path | requests/s | non-2xx |\n|---|---|---|")
    for k in ("sqlite", "postgres", "postgres_forwarded"):
        print(f"| {k} | {res[k]['rps']:.0f} | {res[k]['non2xx']} |")
    k = res["three_edges_kill"]
    print(f"| three edges, forwarded, A killed halfway | {k['rps']:.0f} | {k['non2xx']}"
          f" (+{k['socket_errors']} socket errors) |")
    print(f"\nroute deletion through edge A seen on edge B: median {med:.0f} ms, max "
          f"{max(res['propagation_ms']):.0f} ms over {len(res['propagation_ms'])} deletions")
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "multi_edge.json"), "w") as f:
        json.dump({"wrk_seconds": SECONDS, "wrk_connections": CONNS, **res}, f, indent=2)


if __name__ == "__main__":
    main()
