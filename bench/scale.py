#!/usr/bin/env python3
"""`make bench-scale`: one warren-edge under many registered connections and
many visitor connections, from bench/scale_load.c (see its header).

Steps, all on loopback, in one run:
  1. `warren-edge init`, then N tunnels (BENCH_SCALE_TUNNELS, 1000) created and
     routed (t<i>.scale.test) through the edge's API, as cloudflared would.
  2. Tunnel 0 connected (one process), for the whole run.
  3. BENCH_SCALE_ROUNDS (3) rounds of:
     a. BENCH_SCALE_BASE_CONNS (200) visitor connections against tunnel 0
        alone -> requests/s and p99 with one tunnel;
     b. the other N - 1 tunnels connected (one connection each, from a second
        process); in the first round the edge's RSS before and after gives the
        memory per registered connection, and the CPU of both sides over
        BENCH_SCALE_IDLE_SECONDS (5) what idle registered connections cost;
     c. the same visitor load on tunnel 0 while all N are registered (what the
        hostname, tunnel and connection lookups cost with N tunnels), then
        spread over the N hostnames (one QUIC connection per request: no
        batching of streams on a connection);
     d. in the last round, BENCH_SCALE_VISITORS (10000) concurrent visitor
        connections with a request in flight each -> requests/s, p50/p99,
        failures, the edge's peak RSS;
     e. the N - 1 tunnels disconnected.
     Each figure is the median over the rounds, and each ratio to one tunnel
     the median of the ratios within a round: on a shared machine the rounds
     differ far more than the phases of one round.
The 200-connection phases also read the CPU the edge and the connectors'
processes used per 1,000 requests, a steadier figure than requests/s.
Writes bench/results/scale.json and scale.md (or under BENCH_RESULTS).
Nothing here is asserted; the figures are reported."""
import base64
import http.client
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from common import free_port, stop_popens  # noqa: E402  (shared with the e2e tests)
BUILD = os.path.join(ROOT, os.environ.get("WARREN_BUILD", "build"))
RESULTS = os.environ.get("BENCH_RESULTS", os.path.join(ROOT, "bench", "results"))
ZONE = "scale.test"
N_TUNNELS = int(os.environ.get("BENCH_SCALE_TUNNELS", "1000"))
N_VISITORS = int(os.environ.get("BENCH_SCALE_VISITORS", "10000"))
BASE_CONNS = int(os.environ.get("BENCH_SCALE_BASE_CONNS", "200"))
SECONDS = float(os.environ.get("BENCH_SCALE_SECONDS", "10"))
WARMUP = float(os.environ.get("BENCH_SCALE_WARMUP", "3"))
ROUNDS = int(os.environ.get("BENCH_SCALE_ROUNDS", "3"))
IDLE_SECONDS = float(os.environ.get("BENCH_SCALE_IDLE_SECONDS", "5"))


def log(*a):
    print("bench-scale:", *a, flush=True)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Peak:
    """Samples a process's RSS every 100 ms in a thread; .peak in KiB."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop_ = pid, 0, threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.1)

    def stop(self):
        self.stop_.set()
        self.t.join()
        return self.peak


def read_token(cert):
    text = open(cert).read()
    block = text.split("-----BEGIN ARGO TUNNEL TOKEN-----")[1].split("-----END")[0]
    j = json.loads(base64.b64decode("".join(block.split())))
    return j["zoneID"], j["accountID"], j["apiToken"]


class Api:
    def __init__(self, port, token):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method, path, body):
        self.c.request(method, "/client/v4" + path, json.dumps(body), self.h)
        r = self.c.getresponse()
        j = json.loads(r.read())
        if not j.get("success"):
            raise RuntimeError(f"{method} {path}: {j.get('errors')}")
        return j["result"]


def metric(port, name):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/metrics")
        for line in c.getresponse().read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    except OSError:
        pass
    return -1


def wait_connections(port, want, proc, timeout):
    deadline, n = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        n = metric(port, "warren_edge_connector_connections")
        if n >= want:
            return n
        if proc.poll() is not None:
            raise RuntimeError("the connectors' process exited")
        time.sleep(0.25)
    raise RuntimeError(f"{int(n)} of {want} connections registered after {timeout} s")


def median_phase(runs):
    """One phase over the rounds: the median of each figure."""
    out = {}
    for k, v in runs[0].items():
        if isinstance(v, (int, float)):
            out[k] = round(statistics.median(r.get(k, 0) for r in runs), 2)
    return out


def cpu_seconds(pid):
    """User + system CPU seconds |pid| has used so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def visitors(load, port, hosts_file, conns, log_path, cpu_pids=()):
    """One visitor phase. With |cpu_pids| ({name: pid}), also the CPU each
    used in the measured window per 1,000 requests (the pids of a name summed) (<name>_cpu_ms_per_1k):
    a figure the other work on a shared machine disturbs far less than
    requests/s."""
    p = subprocess.Popen([load, "visitors", "--target", f"127.0.0.1:{port}", "--hosts-file",
                          hosts_file, "--conns", str(conns), "--seconds", str(SECONDS),
                          "--warmup", str(WARMUP)],
                         stdout=subprocess.PIPE, stderr=open(log_path, "a"), text=True)
    t0 = time.monotonic()
    cpu = {}
    for mark in (WARMUP, WARMUP + SECONDS):
        time.sleep(max(0.0, t0 + mark - time.monotonic()))
        for name, pids in dict(cpu_pids).items():
            cpu.setdefault(name, []).append(sum(cpu_seconds(pid) for pid in pids))
    try:
        stdout, _ = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    lines = [l for l in stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"visitors printed no result (exit status {p.returncode}); see {log_path}")
    res = json.loads(lines[-1])
    for name, (a, b) in cpu.items():
        if res.get("requests"):
            res[f"{name}_cpu_ms_per_1k"] = round((b - a) * 1e6 / res["requests"], 1)
    return res


def main():
    raise_nofile()
    load = os.path.join(BUILD, "bench", "scale_load")
    edge_bin = os.path.join(BUILD, "warren-edge")
    for b in (load, edge_bin):
        if not os.access(b, os.X_OK):
            sys.exit(f"bench-scale: {b} missing; run make bench-scale")
    work = tempfile.mkdtemp(prefix="warren-scale-")
    procs = []
    try:
        d = os.path.join(work, "edge")
        subprocess.run([edge_bin, "init", "--data-dir", d, "--zone", ZONE], check=True,
                       stdout=subprocess.DEVNULL)
        udp, http, api, met = free_port(socket.SOCK_DGRAM), free_port(), free_port(), free_port()
        edge_log = os.path.join(work, "edge.log")
        edge = subprocess.Popen([edge_bin, "run", "--data-dir", d,
                                 "--tunnel-listen", f"127.0.0.1:{udp}",
                                 "--http-listen", f"127.0.0.1:{http}",
                                 "--api-listen", f"127.0.0.1:{api}",
                                 "--metrics", f"127.0.0.1:{met}",
                                 # One load generator is one source: per-source
                                 # limits would measure themselves.
                                 "--max-conns-per-source", "0",
                                 "--requests-per-second-per-source", "0",
                                 # The default total (10,000) keeps a tenth for
                                 # other sources; this load is all one source.
                                 "--max-visitor-conns", str(2 * N_VISITORS),
                                 "--loglevel", os.environ.get("BENCH_SCALE_EDGE_LOGLEVEL", "warn")],
                                stdout=open(edge_log, "w"), stderr=subprocess.STDOUT)
        procs.append(edge)
        deadline = time.monotonic() + 60
        while metric(met, "warren_edge_connector_connections") < 0:
            if time.monotonic() > deadline or edge.poll() is not None:
                raise RuntimeError(f"edge did not start; see {edge_log}")
            time.sleep(0.1)
        zone, account, token = read_token(os.path.join(d, "cert.pem"))
        a = Api(api, token)
        t0 = time.monotonic()
        creds, hosts = [], []
        for i in range(N_TUNNELS):
            secret = base64.b64encode(secrets.token_bytes(32)).decode()
            t = a.call("POST", f"/accounts/{account}/cfd_tunnel",
                       {"name": f"t{i}", "tunnel_secret": secret, "config_src": "local"})
            host = f"t{i}.{ZONE}"
            a.call("PUT", f"/zones/{zone}/tunnels/{t['id']}/routes",
                   {"type": "dns", "user_hostname": host, "overwrite_existing": False})
            p = os.path.join(work, f"t{i}.json")
            with open(p, "w") as f:
                json.dump({"AccountTag": account, "TunnelSecret": secret, "TunnelID": t["id"]}, f)
            creds.append(p)
            hosts.append(host)
        log(f"{N_TUNNELS} tunnels created and routed in {time.monotonic() - t0:.1f} s")

        def write(name, lines):
            p = os.path.join(work, name)
            with open(p, "w") as f:
                f.write("\n".join(lines) + "\n")
            return p

        one_creds, other_creds = write("one.creds", creds[:1]), write("other.creds", creds[1:])
        one_hosts, all_hosts = write("one.hosts", hosts[:1]), write("all.hosts", hosts)
        ca = os.path.join(d, "ca.pem")
        load_log = os.path.join(work, "load.log")

        def fleet(lst):
            p = subprocess.Popen([load, "connectors", "--edge", f"127.0.0.1:{udp}", "--ca", ca,
                                  "--creds-list", lst], stdout=subprocess.DEVNULL,
                                 stderr=open(load_log, "a"))
            procs.append(p)
            return p

        def stop_fleet(p):
            p.send_signal(signal.SIGTERM)
            p.wait(60)
            deadline = time.monotonic() + 60
            while metric(met, "warren_edge_connector_connections") > 1 and time.monotonic() < deadline:
                time.sleep(0.2)

        res = {"tunnels": N_TUNNELS, "visitors": N_VISITORS, "base_conns": BASE_CONNS,
               "seconds": SECONDS, "rounds": []}
        # Tunnel 0 stays connected throughout. Each round measures it alone,
        # then registers the other N - 1 tunnels (another process) and
        # measures it again among them and the load spread over all N, then
        # unregisters them: the three figures of a round are next to each
        # other in time, so a shared machine's drift hits them alike, and
        # the report takes the median over the rounds.
        f1 = fleet(one_creds)
        wait_connections(met, 1, f1, 60)
        for rnd in range(ROUNDS):
            last = rnd == ROUNDS - 1
            one = visitors(load, http, one_hosts, BASE_CONNS, load_log,
                           {"edge": [edge.pid], "connectors": [f1.pid]})
            log(f"round {rnd + 1}: one tunnel:", one)
            time.sleep(1)
            rss0 = rss_kib(edge.pid)
            t0 = time.monotonic()
            fo = fleet(other_creds)
            wait_connections(met, N_TUNNELS, fo, 300)
            if rnd == 0:
                # Memory per registered connection.
                res["register_seconds"] = round(time.monotonic() - t0, 1)
                time.sleep(2)
                rss1 = rss_kib(edge.pid)
                res["edge_rss_kib_before"], res["edge_rss_kib_registered"] = rss0, rss1
                res["kib_per_connection"] = round((rss1 - rss0) / max(N_TUNNELS - 1, 1), 1)
                # What N idle registered connections cost each side:
                # keep-alives and timers, with no visitor traffic.
                c0 = (cpu_seconds(edge.pid), cpu_seconds(f1.pid) + cpu_seconds(fo.pid))
                time.sleep(IDLE_SECONDS)
                c1 = (cpu_seconds(edge.pid), cpu_seconds(f1.pid) + cpu_seconds(fo.pid))
                idle = max(IDLE_SECONDS, 0.001)
                res["idle_cpu_pct_edge"] = round(100 * (c1[0] - c0[0]) / idle, 1)
                res["idle_cpu_pct_connectors"] = round(100 * (c1[1] - c0[1]) / idle, 1)
                log(f"{N_TUNNELS} connections registered in {res['register_seconds']} s; edge "
                    f"RSS {rss0} -> {rss1} KiB ({res['kib_per_connection']} KiB per connection)")
            # The same load on the one tunnel, now one of N registered (what
            # the hostname, tunnel and connection lookups cost with N
            # tunnels), then spread over all N.
            cpu_pids = {"edge": [edge.pid], "connectors": [f1.pid, fo.pid]}
            ofa = visitors(load, http, one_hosts, BASE_CONNS, load_log, cpu_pids)
            log(f"round {rnd + 1}: 1 tunnel of {N_TUNNELS}:", ofa)
            allt = visitors(load, http, all_hosts, BASE_CONNS, load_log, cpu_pids)
            log(f"round {rnd + 1}: {N_TUNNELS} tunnels:", allt)
            res["rounds"].append({"one_tunnel": one, "one_of_all": ofa, "all_tunnels": allt})
            if last:
                peak = Peak(edge.pid)
                res["crowd"] = visitors(load, http, all_hosts, N_VISITORS, load_log)
                res["edge_rss_kib_peak"] = peak.stop()
                log(f"{N_VISITORS} visitors:", res["crowd"], "edge peak RSS",
                    res["edge_rss_kib_peak"], "KiB")
            stop_fleet(fo)
        res["edge_alive"] = edge.poll() is None
        for phase in ("one_tunnel", "one_of_all", "all_tunnels"):
            res[phase] = median_phase([r[phase] for r in res["rounds"]])
        for phase in ("one_of_all", "all_tunnels"):
            res[phase]["pct_of_one"] = round(statistics.median(
                100 * r[phase]["rps"] / r["one_tunnel"]["rps"] if r["one_tunnel"]["rps"] else 0
                for r in res["rounds"]), 1)

        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, "scale.json"), "w") as f:
            json.dump(res, f, indent=2)
        one, allt, crowd = res["one_tunnel"], res["all_tunnels"], res["crowd"]
        ofa = res["one_of_all"]

        def pct(x):
            return f"{x['pct_of_one']:.0f} % of 1 tunnel alone in the same round"

        def cpu(x):
            return (f"{x.get('edge_cpu_ms_per_1k', 0)} / {x.get('connectors_cpu_ms_per_1k', 0)}")

        md = [
            f"# bench-scale ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, loopback, "
            "edge and load generator on the same machine)",
            "",
            "| figure | value |",
            "|---|---|",
            f"| rounds (each requests/s, p99 and CPU figure: the median over them) | {ROUNDS} |",
            f"| registered connections (one per tunnel, two processes) | {N_TUNNELS} in "
            f"{res['register_seconds']} s |",
            f"| edge RSS per registered connection | {res['kib_per_connection']} KiB |",
            f"| CPU with {N_TUNNELS} idle registered connections, edge / connectors | "
            f"{res['idle_cpu_pct_edge']} % / {res['idle_cpu_pct_connectors']} % of a core |",
            f"| requests/s, {BASE_CONNS} visitor connections, 1 tunnel | {one['rps']:.0f} "
            f"(p99 {one['p99_ms']} ms) |",
            f"| requests/s, {BASE_CONNS} visitor connections, 1 tunnel of {N_TUNNELS} connected | "
            f"{ofa['rps']:.0f} (p99 {ofa['p99_ms']} ms; {pct(ofa)}) |",
            f"| requests/s, {BASE_CONNS} visitor connections spread over {N_TUNNELS} tunnels | "
            f"{allt['rps']:.0f} (p99 {allt['p99_ms']} ms; {pct(allt)}) |",
            f"| requests/s, {N_VISITORS} concurrent visitor connections | {crowd['rps']:.0f} "
            f"(p50 {crowd['p50_ms']} ms, p99 {crowd['p99_ms']} ms; {crowd['connected']} "
            f"connected) |",
            f"| failed requests (all phases) | "
            f"{sum(r[k]['failures'] for r in res['rounds'] for k in r) + crowd['failures']} |",
            f"| edge peak RSS under that load | {res['edge_rss_kib_peak'] / 1024:.0f} MiB |",
            f"| CPU ms per 1,000 requests, edge / connectors: 1 tunnel; 1 of {N_TUNNELS}; "
            f"spread over {N_TUNNELS} | {cpu(one)}; {cpu(ofa)}; {cpu(allt)} |",
        ]
        with open(os.path.join(RESULTS, "scale.md"), "w") as f:
            f.write("\n".join(md) + "\n")
        print("\n".join(md))
    finally:
        stop_popens(reversed(procs), 30)
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            log("work directory kept:", work)


if __name__ == "__main__":
    main()
