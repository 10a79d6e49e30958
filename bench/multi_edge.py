#!/usr/bin/env python3
"""Edges on PostgreSQL: requests/s through one edge with its store in SQLite
and in PostgreSQL, through a second edge that forwards to the first, how
long a route deleted through one edge's API keeps serving on the other, and
three edges: the connector on A and C, wrk through B (which forwards), and
A killed with kill -9 halfway through the run (B's streams to A start again
on C; the figure is how many requests wrk saw fail).

    python3 bench/multi_edge.py        (release binaries in build/, or WARREN_BUILD)
    python3 bench/multi_edge.py --three-rr

--three-rr runs only three edges as tests/e2e/test_multi_edge_rr.py sets
them up (127.0.0.2-.4, same ports, one connector on all three): wrk through
each edge, then that test's round-robin visitors with one edge killed
(kill -9); it writes bench/results/multi_edge_rr.md and .json.

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


def get(port, host=HOST, addr="127.0.0.1"):
    req = urllib.request.Request(f"http://{addr}:{port}/", headers={"Host": host})
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


def wrk(port, addr="127.0.0.1"):
    r = subprocess.run(["wrk", "-t2", f"-c{CONNS}", f"-d{SECONDS}s", "-H", f"Host: {HOST}",
                        f"http://{addr}:{port}/"], capture_output=True, text=True,
                       timeout=SECONDS + 60)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     r.stdout)
    return {"rps": float(m.group(1)) if m else 0.0, "non2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": sum(int(x) for x in sock.groups()) if sock else 0}


class Edge:
    """|host|: its address (any of 127/8); |ports|: another Edge whose ports
    it takes (edges on different addresses, as behind DNS round robin)."""

    def __init__(self, d, env, log, host="127.0.0.1", ports=None):
        self.host = host
        if ports:
            self.udp, self.http, self.api, self.peer = ports.udp, ports.http, ports.api, ports.peer
        else:
            self.udp, self.http, self.api, self.peer = (free_port(socket.SOCK_DGRAM), free_port(),
                                                        free_port(), free_port())
        self.p = subprocess.Popen(
            [EDGE, "run", "--data-dir", d, "--tunnel-listen", f"{host}:{self.udp}",
             "--http-listen", f"{host}:{self.http}", "--api-listen", f"{host}:{self.api}",
             "--peer-listen", f"{host}:{self.peer}", "--requests-per-second-per-source", "0",
             "--loglevel", "warn"],
            env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        if not wait(lambda: get(self.http, "nosuch." + ZONE, host) == 404, 30):
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
        args += ["--edge", f"{e.host}:{e.udp}"]
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


def rr_load(edges, kill, before, after):
    """The round-robin visitors of tests/e2e/test_multi_edge_rr.py over the
    edges' addresses for |before| s, then |kill| (kill -9 of an edge), then
    |after| s: requests/s in each part, failures and resent GETs."""
    from test_multi_edge_rr import HOSTS, WORKERS, RoundRobinVisitor, VisitorFailed
    visitors = [RoundRobinVisitor(HOSTS, edges[0].http, HOST, first=i) for i in range(WORKERS)]
    done, times, failures, statuses = threading.Event(), [], [], {}

    def run(v):
        while not done.is_set():
            try:
                st = v.get()
                statuses[st] = statuses.get(st, 0) + 1
                times.append(time.monotonic())
            except VisitorFailed as e:
                failures.append((time.monotonic(), str(e)))

    threads = [threading.Thread(target=run, args=(v,)) for v in visitors]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(before)
    tk = time.monotonic()
    kill()
    time.sleep(after)
    done.set()
    for t in threads:
        t.join(60)
    n_before = sum(1 for t in times if t < tk)
    return {"rps_before": n_before / (tk - t0), "rps_after": (len(times) - n_before) / after,
            "requests": len(times), "failures": len(failures),
            "failures_after_kill": sum(1 for t, _ in failures if t >= tk),
            "first_failures": [f for _, f in failures[:3]],
            "statuses": {str(k): v for k, v in statuses.items()},
            "resent": sum(v.retries for v in visitors)}


def three_rr(work, dsn, procs):
    """Three edges on 127.0.0.2-.4 with the same ports (as behind DNS round
    robin, tests/e2e/test_multi_edge_rr.py), one connector with all three:
    wrk through each edge, then the test's round-robin visitors with the
    first edge killed (kill -9) a third of the way through."""
    from test_multi_edge_rr import HOSTS
    w = os.path.join(work, "rr")
    os.makedirs(w)
    check(["psql", dsn, "-X", "-q", "-c", "CREATE DATABASE rr"], os.environ)
    store = f"{dsn} dbname=rr"
    env, d, creds = setup(w, store)
    dirs = [d]
    for i in (1, 2):
        dirs.append(os.path.join(w, f"edge-{i}"))
        shutil.copytree(d, dirs[i])
    edges = []
    for i, h in enumerate(HOSTS):
        edges.append(Edge(dirs[i], env, os.path.join(w, f"edge-{i}.log"), host=h,
                          ports=edges[0] if edges else None))
        procs.append(edges[-1].p)
    procs.append(connector(w, env, d, creds, *edges))
    live = ["psql", store, "-X", "-At", "-c",
            "SELECT count(DISTINCT edge_id) FROM connections WHERE closed_at IS NULL"]
    if not wait_until(lambda: check(live, os.environ).strip() == "3", 60, 0.5):
        sys.exit("the connector did not connect to all three edges")
    res = {h: wrk(e.http, h) for h, e in zip(HOSTS, edges)}
    res["kill"] = rr_load(edges, lambda: os.killpg(edges[0].p.pid, signal.SIGKILL), SECONDS,
                          2 * SECONDS)
    return res


def report_rr(res, load_start):
    from test_multi_edge_rr import HOSTS, WORKERS
    k = res["kill"]
    build = "release" if os.path.realpath(BUILD) == os.path.join(ROOT, "build") else BUILD
    lines = [
        f"# Three edges on one PostgreSQL: `python3 bench/multi_edge.py --three-rr`", "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {build} build, "
        f"{os.cpu_count()} CPUs, load average {load_start:.2f} at the start and "
        f"{os.getloadavg()[0]:.2f} at the end (the edges, PostgreSQL, the connector and the "
        "clients share the machine).", "",
        f"Edges on {', '.join(HOSTS)} with the same ports, one connector with `--edge` for all "
        "three (one HA connection each), hello_world origin.", "",
        "| run | requests/s | failed |", "|---|---|---|"]
    for h in HOSTS:
        r = res[h]
        lines.append(f"| wrk through {h} ({CONNS} connections, {SECONDS} s) | {r['rps']:,.0f} | "
                     f"{r['non2xx']} non-2xx, {r['socket_errors']} socket errors |")
    lines.append(f"| round-robin visitors ({WORKERS}), all three edges ({SECONDS} s) | "
                 f"{k['rps_before']:,.0f} | {k['failures'] - k['failures_after_kill']} |")
    lines.append(f"| the same after `kill -9` of {HOSTS[0]} ({2 * SECONDS} s) | "
                 f"{k['rps_after']:,.0f} | {k['failures_after_kill']} |")
    lines += ["", f"{k['requests']} requests by the round-robin visitors (statuses "
              f"{k['statuses']}), {k['failures']} failed, {k['resent']} GETs resent once by the "
              "visitor after their connection died before the answer (the client of "
              "tests/e2e/test_multi_edge_rr.py; one Python thread each, so its requests/s are "
              "the client's limit, not the edges')."]
    return "\n".join(lines) + "\n"


def main_rr():
    work = tempfile.mkdtemp(prefix="wr-bench-rr.")
    load_start = os.getloadavg()[0]
    dsn = check([PG_TMP, "start"], os.environ).strip()
    procs = []
    try:
        res = three_rr(work, dsn, procs)
    finally:
        stop_popens(procs, 20)
        subprocess.run([PG_TMP, "stop", dsn], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    md = report_rr(res, load_start)
    print(md)
    out = os.path.join(ROOT, "bench", "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "multi_edge_rr.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out, "multi_edge_rr.json"), "w") as f:
        json.dump({"wrk_seconds": SECONDS, "wrk_connections": CONNS, **res}, f, indent=2)


def main():
    if "--three-rr" in sys.argv[1:]:
        return main_rr()
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
