#!/usr/bin/python3
"""Edge memory per connection: the growth of warren-edge's RSS over N
connections of one kind, divided by N. Python standard library only; uses
bench.py's origin, edge and connector set-up.

  memory.py visitors [--n 10000] [--build DIR] [--ws-echo BIN]
      N visitor connections to the edge's HTTP listener, in two states:
      "new" (accepted, nothing sent yet: waiting for a request head) and
      "idle" (served one 1 KiB request through the tunnel, kept alive).
  memory.py registered [--n 50] [--per-connector 4] [--build DIR]
      N registered tunnel connections: N / per-connector warren processes,
      each its own tunnel, each given the edge's address per-connector times
      (warren opens one connection per --edge entry, up to
      --ha-connections).
  memory.py ... --json FILE   also writes the figures as JSON
  memory.py ... --edge-wrap "heaptrack -o /tmp/edge"
      runs `warren-edge run` under that command (a profile of where the
      memory goes; the RSS figures are then the wrapper's)

RSS is read from /proc/PID/status (VmRSS) after the connections settled,
before and after; the delta includes what the allocator keeps and the
kernel's pages, so it is what the machine pays, not the sum of the
structures. Repeat and compare runs made at the same moment: other load
changes nothing here but the time it takes. Never asserted in tests."""
import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from bench import (WEB, Origin, Proc, Tunnel, check, log, open_many, raise_nofile,  # noqa: E402
                   rss, still_open, wait_get)


def settle():
    time.sleep(1.5)


def setup(args, work, extra_tunnels=0):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = os.path.join(work, "home")
    os.makedirs(env["HOME"], exist_ok=True)
    bench.S["extra_tunnels"] = extra_tunnels
    origin = Origin(work, args.ws_echo)
    origin.start()
    tun = Tunnel(work, args.build, os.path.join(args.build, "warren"), origin, env)
    if args.edge_wrap:
        wrap = os.path.join(work, "edge-wrap.sh")
        with open(wrap, "w") as f:
            f.write(f'#!/bin/sh\nexec {args.edge_wrap} {tun.edge_bin} "$@"\n')
        os.chmod(wrap, 0o755)
        tun.edge_bin = wrap
    return env, origin, tun


def visitors(args, work):
    env, origin, tun = setup(args, work)
    tun.edge_args = ["--max-visitor-conns", str(2 * args.n + 100)]
    tun.start_edge()
    tun.start_connector()
    tun.wait_ready(tun.metrics, tun.conn)
    if wait_get(tun.http, WEB, timeout=30) is None:
        raise RuntimeError("no 200 through the tunnel")
    pid = tun.edge.pid
    out = {"n": args.n}
    for kind, host in (("new", None), ("idle", WEB)):
        settle()
        before = rss(pid)
        t0 = time.monotonic()
        socks, fails = open_many(tun.http, args.n, host)
        opened_s = time.monotonic() - t0
        settle()
        after = rss(pid)
        held = still_open(socks)
        for s in socks:
            s.close()
        d = after - before
        out[kind] = {"opened": len(socks), "held": held, "failed": fails, "open_seconds": opened_s,
                     "rss_before": before, "rss_after": after, "rss_delta": d,
                     "bytes_per_conn": d / held if held else None}
        log(f"visitors {kind}: {held} held, edge RSS +{d / 1024:.0f} KiB = "
            f"{d / held if held else 0:.0f} bytes each")
    return out


def registered(args, work):
    per = args.per_connector
    nproc = (args.n + per - 1) // per
    env, origin, tun = setup(args, work, extra_tunnels=nproc)
    tun.start_edge()
    settle()
    pid = tun.edge.pid
    before = rss(pid)
    procs = []
    t0 = time.monotonic()
    for i in range(nproc):
        m = bench.free_port()
        a = tun.connector_args(f"t{i}", m, ["--hello-world"])
        k = a.index("--edge")
        del a[k:k + 2]
        edges = []
        for _ in range(per):
            edges += ["--edge", f"127.0.0.1:{tun.udp}"]
        a = a[:2] + edges + ["--ha-connections", str(per)] + a[2:]
        procs.append((m, Proc(a, os.path.join(work, f"conn-{i}.log"), env=env, name=f"conn-{i}")))
    for m, p in procs:
        tun.wait_ready(m, p, want=per, timeout=120)
    reg_s = time.monotonic() - t0
    settle()
    conns = sum(tun.ready(m) for m, _ in procs)
    after = rss(pid)
    d = after - before
    out = {"n": args.n, "connectors": nproc, "per_connector": per, "connections": conns,
           "register_seconds": reg_s, "rss_before": before, "rss_after": after, "rss_delta": d,
           "bytes_per_conn": d / conns if conns else None}
    log(f"registered: {conns} connections from {nproc} connectors, edge RSS +{d / 1024:.0f} KiB = "
        f"{d / conns if conns else 0:.0f} bytes each")
    for _, p in reversed(procs):
        p.stop(15)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["visitors", "registered"])
    ap.add_argument("--n", type=int)
    ap.add_argument("--per-connector", type=int, default=4)
    ap.add_argument("--build", default=os.path.join(bench.ROOT, "build"))
    ap.add_argument("--ws-echo", help="bench/ws_echo.c binary (default: build/bench/ws_echo, built "
                    "if missing)")
    ap.add_argument("--json")
    ap.add_argument("--edge-wrap", help="a command to run warren-edge under (heaptrack, valgrind)")
    args = ap.parse_args()
    if args.n is None:
        args.n = 10000 if args.kind == "visitors" else 50
    if not args.ws_echo:
        args.ws_echo = os.path.join(args.build, "bench", "ws_echo")
        if not os.path.exists(args.ws_echo):
            os.makedirs(os.path.dirname(args.ws_echo), exist_ok=True)
            check(["cc", "-O2", "-o", args.ws_echo, os.path.join(bench.ROOT, "bench", "ws_echo.c")])
    raise_nofile()

    def on_signal(sig, frame):
        Proc.stop_all()
        sys.exit(128 + sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    work = tempfile.mkdtemp(prefix=f"warren-memory-{args.kind}-")
    try:
        out = visitors(args, work) if args.kind == "visitors" else registered(args, work)
        out["kind"] = args.kind
    finally:
        Proc.stop_all()
    print(json.dumps(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
