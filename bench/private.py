#!/usr/bin/python3
"""The private-path part of Warren's benchmark: a client reaching a private
host through warren-edge's TUN ingress and a connector with warp-routing
(client -> TUN -> warren-edge -> QUIC -> connector -> private host), against
the same client reaching the connector's namespace directly over the veth
that also carries the tunnel (the baseline, measured in the same run).

  private.py run --out FILE [--build DIR] [--connectors warren,cloudflared]
                 [--cloudflared PATH] [--keep]
      Sets up, for each connector in turn, two network namespaces (below),
      measures and writes every figure and raw output as JSON.
  private.py flows udp|icmp N SRC DST [PORT]      (inside the edge namespace)
      Opens N UDP flows (distinct source ports) or N ICMP echo flows
      (distinct echo ids) from SRC to DST, waits for every reply, prints
      `ready OK-COUNT`, and holds them open until stdin closes.
  private.py udp-echo ADDR PORT                   (inside the connector namespace)

bench.py's report renders this file's JSON (section_lines, figures);
scripts/bench.sh runs it after the HTTP paths (BENCH_PRIVATE). bench/README.md
says what each figure means.

The namespaces (the same shape as tests/e2e/test_private_net.py):
  edge       warren-edge --tun wrb0; the client is the namespace itself: its
             lo holds 10.98.0.1 and the flow sources 10.98.1.x / 10.98.2.x;
             10.99.0.0/24 goes to wrb0 and is routed to the tunnel
  connector  the connector with warp-routing; the private host 10.99.0.5 on
             its lo, with iperf3 -s and a UDP echo server
  veth       10.200.0.1 (edge) <-> 10.200.0.2 (connector): the tunnel's QUIC
             runs over it, and the direct baseline targets 10.200.0.2
Nothing leaves the machine."""
import argparse
import json
import os
import resource
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the shared process and /proc helpers)

from bench import GIB, Proc, log, rss  # noqa: E402
import netns  # noqa: E402  (tests/e2e/netns.py, on the path bench set)

HERE = os.path.abspath(__file__)
PY = "/usr/bin/python3"
EDGE_VETH, CONN_VETH = "10.200.0.1", "10.200.0.2"
PRIVATE_HOST, PRIVATE_NET, CLIENT = "10.99.0.5", "10.99.0.0/24", "10.98.0.1"
TUN = "wrb0"
ECHO_PORT = 9053
FLOWS_PER_SOURCE = 1000  # below the edge's per-client flow cap (1024)
API, METRICS, CONN_METRICS = 18081, 18082, 18090


def _env(name, default, cast=int):
    return bench._env(name, default, cast)


S = {
    "ping_count": _env("BENCH_PING_COUNT", 200),
    "ping_interval_s": _env("BENCH_PING_INTERVAL", 0.01, float),
    "iperf_seconds": _env("BENCH_IPERF_SECONDS", 5),
    "udp_rates": _env("BENCH_UDP_RATES", "10M 100M 500M", str).split(),
    # The other direction (iperf3 -R: private host -> client, the connector
    # sending datagrams to the edge).
    "udp_reverse_rates": _env("BENCH_UDP_REVERSE_RATES", "100M 500M", str).split(),
    "udp_len": _env("BENCH_UDP_LEN", 1200),
    "flows": _env("BENCH_PRIVATE_FLOWS", 4000),
    "tun_mtu": 1280,  # warren-edge's default
}


# --- namespaces ---------------------------------------------------------------------

def sh(ns, *args, check=True, timeout=60):
    return netns.sh(ns, *args, check=check, timeout=timeout)


def flow_sources(kind, n):
    """Source addresses for |n| flows of |kind|: FLOWS_PER_SOURCE each, so no
    client hits the edge's per-client cap."""
    net = "10.98.1" if kind == "udp" else "10.98.2"
    return [f"{net}.{i + 1}" for i in range(max(1, -(-n // FLOWS_PER_SOURCE)))]


class Net(netns.Namespaces):
    """The edge and connector namespaces, their veth, and the processes
    started in them (Proc: stopped by Proc.stop_all)."""

    def __init__(self, work):
        super().__init__(work, ("wrbe", "wrbc"), tag=f"{os.getpid() % 100000}")
        self.edge, self.conn = self.names
        self.work = work
        # ICMP echo flows use unprivileged ping sockets on both sides.
        self.allow_ping(self.edge, self.conn)
        self.link(self.edge, "vbe" + self.tag, f"{EDGE_VETH}/24", self.conn, "vbc" + self.tag, f"{CONN_VETH}/24")
        self.lo_addrs(self.edge, *[f"{a}/32" for a in [CLIENT] + flow_sources("udp", S["flows"]) +
                                   flow_sources("icmp", S["flows"])])
        self.lo_addrs(self.conn, f"{PRIVATE_HOST}/32")

    def start(self, ns, args, name, env=None):
        return Proc(["ip", "netns", "exec", ns, *args], os.path.join(self.work, f"{name}.log"),
                    env=env, name=name)


def metrics(net, ns, port):
    return sh(ns, "curl", "-s", "--max-time", "5", f"http://127.0.0.1:{port}/metrics",
              check=False).stdout


def metric(text, name):
    for ln in text.splitlines():
        if ln.startswith(name + " ") or ln.startswith(name + "{"):
            try:
                return float(ln.rsplit(" ", 1)[1])
            except ValueError:
                return None
    return None


def setup(net, build, connector_bin, env):
    """Edge with the TUN device and the route, servers on the private host,
    the connector with warp-routing; returns (edge Proc, connector Proc)."""
    edge_bin, warren = os.path.join(build, "warren-edge"), os.path.join(build, "warren")
    d = os.path.join(net.work, "edge")
    creds = os.path.join(net.work, "net.json")
    bench.check([edge_bin, "init", "--data-dir", d, "--zone", "bench.test"], env)
    bench.check([edge_bin, "tunnel", "create", "--data-dir", d, "--out", creds, "net"], env)
    with open(creds) as f:
        tid = json.load(f)["TunnelID"]
    edge = net.start(net.edge, [edge_bin, "run", "--data-dir", d, "--tunnel-listen", f"{EDGE_VETH}:7844",
                                "--http-listen", "127.0.0.1:18080", "--api-listen", f"127.0.0.1:{API}",
                                "--tun", TUN, "--metrics", f"127.0.0.1:{METRICS}"], "warren-edge", env)
    if edge.wait_output(f"Routing private traffic from TUN device {TUN}", 30) is None:
        raise RuntimeError("edge did not open the TUN device; see " + edge.log)
    # The API listener starts last (after Access's first signing key).
    if edge.wait_output("Serving the API on", 30) is None:
        raise RuntimeError("edge did not serve its API; see " + edge.log)
    sh(net.edge, "ip", "route", "add", PRIVATE_NET, "dev", TUN, "src", CLIENT)
    api_env = dict(env, TUNNEL_API_URL=f"http://127.0.0.1:{API}/client/v4", NO_AUTOUPDATE="true")
    r = subprocess.run(["ip", "netns", "exec", net.edge, warren, "tunnel", "--origincert",
                        os.path.join(d, "cert.pem"), "route", "ip", "add", PRIVATE_NET, tid],
                       capture_output=True, text=True, env=api_env, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("route ip add: " + r.stdout + r.stderr)
    deadline = time.monotonic() + 15
    while metric(metrics(net, net.edge, METRICS), "warren_edge_private_routes") != 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the edge's router did not load the route")
        time.sleep(0.2)

    net.start(net.conn, ["iperf3", "-s", "-p", "5201"], "iperf3-server")
    echo = net.start(net.conn, [PY, HERE, "udp-echo", PRIVATE_HOST, str(ECHO_PORT)], "udp-echo")
    if echo.wait_output("ready", 10) is None:
        raise RuntimeError("udp echo server did not start")

    cfg = os.path.join(net.work, "connector.yml")
    with open(cfg, "w") as f:
        f.write("warp-routing:\n  enabled: true\ningress:\n  - service: http_status:404\n")
    conn = net.start(net.conn, [connector_bin, "tunnel", "--no-autoupdate", "--edge", f"{EDGE_VETH}:7844",
                                "--cacert", os.path.join(d, "ca.pem"), "--protocol", "quic",
                                "--config", cfg, "--credentials-file", creds,
                                "--metrics", f"127.0.0.1:{CONN_METRICS}",
                                "run", "--icmpv4-src", CONN_VETH, tid], "connector", env)
    if conn.wait_output("Registered tunnel connection", 40) is None:
        raise RuntimeError("connector did not register; see " + conn.log)
    return edge, conn


# --- measurements ---------------------------------------------------------------------

def pct(xs, p):
    """Nearest-rank percentile of |xs| (sorted copy)."""
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


def ping(net, host):
    """ping_count echoes from the edge namespace to |host|; every echo's RTT
    (ping's own time=, ms), p50 and p99."""
    n = S["ping_count"]
    r = sh(net.edge, "ping", "-n", "-c", n, "-i", S["ping_interval_s"], "-W", 2, host, check=False,
           timeout=n * max(S["ping_interval_s"], 0.01) + 60)
    rtts = []
    for ln in r.stdout.splitlines():
        if " time=" in ln:
            rtts.append(float(ln.split(" time=")[1].split()[0]))
    res = {"sent": n, "received": len(rtts), "rtts_ms": rtts}
    if rtts:
        res.update(p50_ms=statistics.median(rtts), p99_ms=pct(rtts, 99), min_ms=min(rtts),
                   mean_ms=statistics.fmean(rtts))
    else:
        res["error"] = (r.stdout + r.stderr).strip()[-300:]
    return res


def iperf3(net, host, extra):
    """One iperf3 test from the edge namespace; returns the figures or an
    error (iperf3's control connection is TCP, so no TCP means no test)."""
    cmd = ["iperf3", "-c", host, "-p", "5201", "-t", S["iperf_seconds"], "-J",
           "--connect-timeout", "5000", *extra]
    try:
        r = sh(net.edge, *cmd, check=False, timeout=S["iperf_seconds"] + 40)
    except subprocess.TimeoutExpired:
        return {"error": "iperf3 timed out", "cmd": cmd}
    try:
        j = json.loads(r.stdout)
    except ValueError:
        return {"error": f"rc {r.returncode}: {(r.stdout + r.stderr).strip()[-300:]}", "cmd": cmd}
    if j.get("error"):
        return {"error": j["error"], "cmd": cmd}
    end = j.get("end", {})
    res = {"cmd": [str(c) for c in cmd], "sums": {k: v for k, v in end.items() if k.startswith("sum")}}
    if "-u" in extra:
        s = end.get("sum", {})
        res.update(sent_Mbps=(end.get("sum_sent") or s).get("bits_per_second", 0) / 1e6,
                   Mbps=(end.get("sum_received") or s).get("bits_per_second", 0) / 1e6,
                   lost_percent=s.get("lost_percent"), packets=s.get("packets"),
                   lost_packets=s.get("lost_packets"), jitter_ms=s.get("jitter_ms"))
    else:
        res.update(Mbps=end.get("sum_received", {}).get("bits_per_second", 0) / 1e6,
                   sent_Mbps=end.get("sum_sent", {}).get("bits_per_second", 0) / 1e6,
                   retransmits=end.get("sum_sent", {}).get("retransmits"))
    return res


def throughput(net, host):
    out = {"tcp_up": iperf3(net, host, []), "tcp_down": iperf3(net, host, ["-R"]), "udp": {},
           "udp_down": {}}
    for rate in S["udp_rates"]:
        out["udp"][rate] = iperf3(net, host, ["-u", "-b", rate, "-l", S["udp_len"]])
    for rate in S["udp_reverse_rates"]:
        out["udp_down"][rate] = iperf3(net, host, ["-u", "-b", rate, "-l", S["udp_len"], "-R"])
    return out


def flows(net, pids):
    """Opens the ICMP flows, then the UDP flows, through the edge; returns
    the edge's and the connector's RSS growth per flow of each kind. ICMP
    first: its flows are small, and heap freed by the UDP sessions' RPC
    streams would hide them."""
    n = S["flows"]
    time.sleep(1.0)
    res = {"flows": n}
    base = {k: rss(p) for k, p in pids.items()}
    holders = []
    try:
        for kind in ("icmp", "udp"):
            ok = 0
            srcs = flow_sources(kind, n)
            for i, src in enumerate(srcs):
                count = min(FLOWS_PER_SOURCE, n - i * FLOWS_PER_SOURCE)
                p = subprocess.Popen(["ip", "netns", "exec", net.edge, PY, HERE, "flows", kind,
                                      str(count), src, PRIVATE_HOST, str(ECHO_PORT)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                holders.append(p)
                line = p.stdout.readline().split()
                ok += int(line[1]) if len(line) == 2 and line[0] == "ready" else 0
            time.sleep(1.0)
            now = {k: rss(p) for k, p in pids.items()}
            res[f"{kind}_ok"] = ok
            for k in pids:
                d = now[k] - base[k]
                res[f"{kind}_{k}_rss_delta"] = d
                res[f"{kind}_{k}_bytes_per_flow"] = d / ok if ok else None
                res[f"{kind}_{k}_per_gib"] = GIB * ok / d if ok and d > 0 else None
            base = now
    finally:
        for p in holders:
            try:
                p.stdin.close()
                p.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                p.kill()
    return res


def measure(net, edge, conn, direct):
    out = {}
    # The first echo sets the ICMP flow up at the edge and the connector; the
    # figures are of echoes on a live flow.
    sh(net.edge, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", PRIVATE_HOST, check=False)
    if direct:
        out["direct_ping"] = ping(net, CONN_VETH)
    out["ping"] = ping(net, PRIVATE_HOST)
    log("private: ping", {k: v for k, v in out["ping"].items() if k != "rtts_ms"})
    pids = {"edge": edge.pid, "connector": conn.pid}
    out["rss_idle_edge"], out["rss_idle_connector"] = rss(edge.pid), rss(conn.pid)
    out["flows"] = flows(net, pids)
    log("private: flows", out["flows"])
    if direct:
        out["direct_throughput"] = throughput(net, CONN_VETH)
    out["throughput"] = throughput(net, PRIVATE_HOST)
    log("private: throughput", json.dumps({k: v for k, v in out["throughput"].items()}, default=str)[:800])
    out["edge_metrics"] = [ln for ln in metrics(net, net.edge, METRICS).splitlines()
                           if ln.startswith("warren_edge_private")]
    return out


def run(args):
    bench.raise_nofile()
    out = {"settings": S, "connectors": {}, "ok": True}
    if "cloudflared" in args.connectors:
        out["cloudflared"] = args.cloudflared
    for name in args.connectors:
        binary = args.cloudflared if name == "cloudflared" else os.path.join(args.build, "warren")
        if not binary or not os.path.exists(binary):
            out["connectors"][name] = {"ok": False, "error": f"no binary for {name}"}
            continue
        work = tempfile.mkdtemp(prefix=f"warren-bench-private-{name}-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
        env["HOME"] = os.path.join(work, "home")
        os.makedirs(env["HOME"])
        log(f"private {name}: work dir {work}")
        res = {"work_dir": work, "machine_busy_before": bench.wait_quiet(bench.S["quiet_wait_seconds"])}
        net = None
        try:
            net = Net(work)
            res["ns_tag"] = net.tag
            edge, conn = setup(net, args.build, binary, env)
            first = "direct" not in out
            res.update(measure(net, edge, conn, direct=first))
            if first:
                out["direct"] = {"ping": res.pop("direct_ping"),
                                 "throughput": res.pop("direct_throughput")}
            res["ok"] = True
        except Exception as e:  # in the JSON; the other connector still runs
            import traceback
            traceback.print_exc()
            res.update(ok=False, error=f"{type(e).__name__}: {e}")
            out["ok"] = False
        finally:
            Proc.stop_all()
            if net:
                net.close()
        out["connectors"][name] = res
        if res["ok"] and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return 0 if out["ok"] else 1


# --- helpers run inside the namespaces --------------------------------------------------

def _nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def open_flows(kind, n, src, dst, port):
    """N sockets, one flow each; returns the sockets that got their reply."""
    _nofile(n + 64)
    socks = []
    for i in range(n):
        if kind == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        else:  # an unprivileged ping socket: the kernel picks the echo id (its "port")
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        s.bind((src, 0))
        s.setblocking(False)
        socks.append(s)
    echo = struct.pack("!BBHHH", 8, 0, 0, 0, 1) + b"warren-bench"
    pending = {s.fileno(): s for s in socks}
    for attempt in range(3):
        for s in list(pending.values()):
            try:
                if kind == "udp":
                    s.sendto(b"flow", (dst, port))
                else:
                    s.sendto(echo, (dst, 0))
            except OSError:
                pass
            time.sleep(0.0005)  # the edge queues a flow's packets while it registers
        poll = select.poll()  # not select(): descriptors pass 1024 here
        for fd in pending:
            poll.register(fd, select.POLLIN)
        deadline = time.monotonic() + 3
        while pending and time.monotonic() < deadline:
            for fd, _ in poll.poll(200):
                poll.unregister(fd)
                try:
                    pending[fd].recv(2048)
                    del pending[fd]
                except OSError:
                    pass
        if not pending:
            break
    return len(socks) - len(pending), socks


def flows_main(args):
    ok, socks = open_flows(args.kind, args.n, args.src, args.dst, args.port)
    print(f"ready {ok}", flush=True)
    sys.stdin.read()  # hold the flows until the harness closes stdin
    for s in socks:
        s.close()
    return 0


def udp_echo_main(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args.addr, args.port))
    print("ready", flush=True)
    while True:
        d, a = s.recvfrom(65535)
        s.sendto(d, a)


# --- report ------------------------------------------------------------------------------

def _g(d, *path):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _tp(p, *path):
    """A throughput figure, or NOT_MEASURED when iperf3 could not run it."""
    t = _g(p, "throughput", *path[:-1])
    if isinstance(t, dict) and t.get("error"):
        return NOT_MEASURED
    return _g(t, path[-1])


NOT_MEASURED = "not measured"


def rows(st):
    """(key, label, unit, higher is better?, extractor of a connector's or the
    direct baseline's result, which has the same shape for what it measures);
    |st| the run's settings."""
    r = [("ping_p50", "ping RTT p50", "ms", False, lambda p: _g(p, "ping", "p50_ms")),
         ("ping_p99", "&nbsp;&nbsp;p99", "ms", False, lambda p: _g(p, "ping", "p99_ms")),
         ("ping_loss", "&nbsp;&nbsp;lost", "count", False,
          lambda p: (p["ping"]["sent"] - p["ping"]["received"]) if p.get("ping") else None),
         ("tcp_up", "TCP upload (iperf3, client -> private host)", "Mbit/s", True,
          lambda p: _tp(p, "tcp_up", "Mbps")),
         ("tcp_down", "TCP download (iperf3 -R)", "Mbit/s", True,
          lambda p: _tp(p, "tcp_down", "Mbps"))]
    for way, what, rates in (("udp", "client -> private host", st["udp_rates"]),
                             ("udp_down", "private host -> client (-R)", st.get("udp_reverse_rates", []))):
        for rate in rates:
            r.append((f"{way}_{rate}", f"UDP {what}, {rate}bit/s offered, {st['udp_len']} B "
                      "datagrams: received", "Mbit/s", True,
                      lambda p, rate=rate, way=way: _tp(p, way, rate, "Mbps")))
            r.append((f"{way}_{rate}_loss", "&nbsp;&nbsp;lost", "%", False,
                      lambda p, rate=rate, way=way: _tp(p, way, rate, "lost_percent")))
    for kind, label in (("udp", "UDP flows"), ("icmp", "ICMP echo flows")):
        r.append((f"{kind}_flow_edge_bytes", f"edge RSS per {label[:-1]}", "bytes", False,
                  lambda p, kind=kind: _g(p, "flows", f"{kind}_edge_bytes_per_flow")))
        r.append((f"{kind}_flows_per_gib", f"{label} per GiB (edge)", "flows", True,
                  lambda p, kind=kind: _g(p, "flows", f"{kind}_edge_per_gib")))
        r.append((f"{kind}_flow_conn_bytes", f"connector RSS per {label[:-1]}", "bytes", False,
                  lambda p, kind=kind: _g(p, "flows", f"{kind}_connector_bytes_per_flow")))
    r.append(("rss_idle_edge", "edge RSS (TUN, one tunnel) before the flows", "MiB", False,
              lambda p: p["rss_idle_edge"] / (1 << 20) if p.get("rss_idle_edge") else None))
    r.append(("rss_idle_connector", "connector RSS before the flows", "MiB", False,
              lambda p: p["rss_idle_connector"] / (1 << 20) if p.get("rss_idle_connector") else None))
    return r


def _fmt(v, unit):
    if v is None or v == NOT_MEASURED:
        return v or "—"
    if unit == "%":
        return f"{v:.2f}"
    if unit == "flows":
        return f"{v:,.0f}"
    return bench.fmt(v, unit)


def figures(priv):
    """The table as a dict (for latest.json): per row the direct value, each
    connector's, its ratio to direct and the added RTT."""
    names = list(priv.get("connectors", {}))
    direct = priv.get("direct") or {}
    out = {}

    def num(v):
        return None if v == NOT_MEASURED else v
    for key, label, unit, higher, f in rows(priv.get("settings", S)):
        rec = {"label": label.replace("&nbsp;", "").strip(), "unit": unit, "higher_is_better": higher,
               "direct": f(direct)}
        for n in names:
            rec[n] = f(priv["connectors"][n])
            if higher is not None and unit not in ("count", "%"):
                rec[f"{n}_vs_direct"] = bench.ratio(num(rec[n]), num(rec["direct"]))
        out[key] = rec
    for n in names:
        for q in ("p50", "p99"):
            a, b = _g(priv["connectors"][n], "ping", f"{q}_ms"), _g(direct, "ping", f"{q}_ms")
            if a is not None and b is not None:
                out.setdefault("ping_added_ms", {}).setdefault(n, {})[q] = a - b
    return out


def _why_missing(p, which):
    t = _g(p, "throughput", which) or {}
    return t.get("error")


def section_lines(priv):
    """The Markdown section: heading, what ran, the table and notes."""
    names = list(priv.get("connectors", {}))
    fig = figures(priv)
    cols = ["figure", "unit", "direct (veth)"]
    for n in names:
        cols += [n, f"{n} / direct"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for key, label, unit, higher, _ in rows(priv.get("settings", S)):
        rec = fig[key]
        row = [label, unit, _fmt(rec["direct"], unit)]
        for n in names:
            row += [_fmt(rec[n], unit), bench.fmt_ratio(rec.get(f"{n}_vs_direct"))]
        lines.append("| " + " | ".join(row) + " |")
    st = priv.get("settings", S)
    head = ["### Private network path (TUN → warren-edge → QUIC → connector → private host)", "",
            f"Ping: {st['ping_count']} echoes {st['ping_interval_s'] * 1000:g} ms apart; iperf3 "
            f"{st['iperf_seconds']} s per test, UDP at {', '.join(st['udp_rates'])} bit/s (and "
            f"{', '.join(st.get('udp_reverse_rates', [])) or 'none'} the other way) with "
            f"{st['udp_len']}-byte datagrams; {st['flows']} ICMP echo flows, then {st['flows']} UDP "
            f"flows held open; TUN MTU {st['tun_mtu']}. Direct: the same client to the connector's "
            "namespace over the veth that carries the tunnel."]
    notes = []
    for n in names:
        p = priv["connectors"][n]
        if not p.get("ok"):
            notes.append(f"- **{n} failed**: {p.get('error')}")
            continue
        added = fig.get("ping_added_ms", {}).get(n)
        if added:
            notes.append(f"- {n}: ping RTT added over direct: p50 {added['p50']:.3f} ms, "
                         f"p99 {added['p99']:.3f} ms")
        for which, what in (("tcp_up", "TCP"), ("udp", "UDP")):
            err = _why_missing(p, which) if which != "udp" else next(
                (v.get("error") for way in ("udp", "udp_down")
                 for v in (_g(p, "throughput", way) or {}).values() if v.get("error")), None)
            if err:
                notes.append(f"- {n}: {what} throughput not measured: iperf3 said \"{err}\" (iperf3's "
                             "control connection is TCP)")
        fl = p.get("flows") or {}
        for kind in ("udp", "icmp"):
            if fl and fl.get(f"{kind}_ok") != fl.get("flows"):
                notes.append(f"- {n}: {fl.get(f'{kind}_ok')} of {fl.get('flows')} {kind.upper()} flows "
                             "got their reply; the per-flow figures divide by those that did")
            for who in ("edge", "connector"):
                if fl and fl.get(f"{kind}_ok") and (fl.get(f"{kind}_{who}_rss_delta") or 0) <= 0:
                    notes.append(f"- {n}: the {who}'s RSS did not grow with the {kind.upper()} flows "
                                 "(they fit in memory it already had): no per-GiB figure")
        busy = p.get("machine_busy_before")
        if busy is not None and busy >= 0.25:
            notes.append(f"- {n}: other jobs kept the machine {busy * 100:.0f} % busy when it started: "
                         "its figures are noisy")
    return head + [""] + lines + [""] + notes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--build", default=os.path.join(bench.ROOT, "build"))
    r.add_argument("--connectors", default="warren", type=lambda s: [x for x in s.split(",") if x])
    r.add_argument("--cloudflared")
    r.add_argument("--keep", action="store_true")
    f = sub.add_parser("flows")
    f.add_argument("kind", choices=["udp", "icmp"])
    f.add_argument("n", type=int)
    f.add_argument("src")
    f.add_argument("dst")
    f.add_argument("port", type=int, nargs="?", default=ECHO_PORT)
    e = sub.add_parser("udp-echo")
    e.add_argument("addr")
    e.add_argument("port", type=int)
    args = ap.parse_args()
    if args.cmd == "flows":
        return flows_main(args)
    if args.cmd == "udp-echo":
        return udp_echo_main(args)

    def on_signal(sig, frame):
        Proc.stop_all()
        sys.exit(128 + sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
