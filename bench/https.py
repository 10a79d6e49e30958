#!/usr/bin/env python3
"""The HTTPS visitor front against nginx with TLS, on loopback, h2load as the
client for both:

  direct   nginx, TLS (HTTP/1.1 and HTTP/2) serving the 1 KiB file itself
  warren   warren-edge --https-listen -> QUIC -> warren tunnel run -> nginx
           (plain HTTP, the same file)

Rows: 1 KiB GET requests/s over HTTP/1.1 (BENCH_H1_CONNS connections, one
request at a time each) and over HTTP/2 (BENCH_H2_CONNS connections x
BENCH_H2_STREAMS streams), and TLS handshakes/s (new connections with one
request each, BENCH_HS_BATCH at a time, for BENCH_HS_SECONDS). Both sides
use P-256 ECDSA certificates and TLS 1.3 (what each negotiates by default).
HTTP/3 (warren only: Debian's nginx and h2load have none) is measured with
tests/tools/h3client: BENCH_H3_REQUESTS requests on one connection,
BENCH_H3_STREAMS at a time.
h2load runs one thread: client and server share the machine's cores, so the
ratio is the figure to read, not the absolute numbers.

  /usr/bin/python3 bench/https.py --build build --out bench/results/https.json \\
      [--readme bench/README.md]

Writes the JSON (settings, machine, raw h2load output per run) and, with
--readme, the table between the README's <!-- bench:https --> markers."""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import bench as B  # the harness's processes, tunnel and machine helpers

S = {
    "seconds": B._env("BENCH_HTTPS_SECONDS", 10),
    "warmup": B._env("BENCH_HTTPS_WARMUP", 2),
    "h1_conns": B._env("BENCH_H1_CONNS", 50),
    "h2_conns": B._env("BENCH_H2_CONNS", 10),
    "h2_streams": B._env("BENCH_H2_STREAMS", 10),
    "hs_batch": B._env("BENCH_HS_BATCH", 100),
    "hs_seconds": B._env("BENCH_HS_SECONDS", 10),
    "h3_requests": B._env("BENCH_H3_REQUESTS", 20000),
    "h3_streams": B._env("BENCH_H3_STREAMS", 10),
}

NGINX = B.NGINX_HEAD + """\
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    listen 127.0.0.1:{tls} ssl http2 backlog=4096;
    ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off; ssl_session_tickets off;
    root {d}/www;
  }}
}}
"""


class Origin(B.NginxOrigin):
    """One nginx: plain HTTP for the tunnel, TLS for the direct path."""

    def __init__(self, work):
        super().__init__(work)
        B.check(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", os.path.join(self.d, "key.pem"), "-out",
                 os.path.join(self.d, "cert.pem"), "-days", "2", "-subj", f"/CN={B.WEB}",
                 "-addext", f"subjectAltName=DNS:{B.WEB}"])
        self.tls, self.ws_port = B.free_port(), B.free_port()
        self.write_conf(NGINX, workers=1, tls=self.tls)

    def start(self):
        self.start_nginx()


def h2load(port, extra, timeout):
    url = f"https://{B.WEB}:{port}/1k.bin"
    r = subprocess.run(["h2load", "-t1", "--connect-to", f"127.0.0.1:{port}", *extra, url],
                       capture_output=True, text=True, timeout=timeout)
    out = r.stdout + r.stderr
    res = {"raw": out}
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    if m:
        res["seconds"] = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
        res["rps"] = float(m.group(3))
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored", out)
    if m:
        res["requests"], res["succeeded"] = int(m.group(1)), int(m.group(3))
        res["failed"] = int(m.group(4)) + int(m.group(5))
    m = re.search(r"status codes: (\d+) 2xx", out)
    res["ok"] = int(m.group(1)) if m else 0
    return res


def rate(port, h1):
    conns = S["h1_conns"] if h1 else S["h2_conns"]
    args = (["--h1", "-m1"] if h1 else [f"-m{S['h2_streams']}"]) + [f"-c{conns}"]
    h2load(port, args + [f"-D{S['warmup']}"], S["warmup"] + 60)
    return h2load(port, args + [f"-D{S['seconds']}"], S["seconds"] + 60)


def handshakes(port):
    """New TLS connections with one request each, |hs_batch| at a time."""
    n = S["hs_batch"]
    runs, conns, secs = [], 0, 0.0
    deadline = time.monotonic() + S["hs_seconds"]
    while time.monotonic() < deadline:
        r = h2load(port, ["--h1", "-m1", f"-c{n}", f"-n{n}"], 60)
        runs.append(r)
        conns += r.get("succeeded", 0)
        secs += r.get("seconds", 0.0)
    return {"handshakes_per_s": conns / secs if secs else 0.0, "connections": conns,
            "failed": sum(r.get("failed", 0) for r in runs), "runs": [r["raw"] for r in runs]}


def h3_rate(build, port, ca):
    """1 KiB GETs over HTTP/3 with h3client (one connection); {} without it."""
    exe = os.path.join(build, "tests", "h3client")
    if not os.path.exists(exe):
        return {}
    res = {}
    for n in (max(1, S["h3_requests"] // 10), S["h3_requests"]):  # warm-up, then the run
        r = subprocess.run([exe, "--connect", f"127.0.0.1:{port}", "--ca", ca, "--repeat", str(n),
                            "--parallel", str(S["h3_streams"]), f"https://{B.WEB}:{port}/1k.bin"],
                           capture_output=True, text=True, timeout=600)
        res = {"raw": r.stdout + r.stderr}
        m = re.search(r"(\d+) requests, (\d+) 2xx in ([\d.]+) s: (\d+) req/s", r.stdout)
        if m:
            res.update(requests=int(m.group(1)), ok=int(m.group(2)), seconds=float(m.group(3)),
                       rps=float(m.group(4)), failed=int(m.group(1)) - int(m.group(2)))
    B.log(f"  h3 {res.get('rps', 0):.0f} req/s")
    return res


def measure(port):
    out = {"h1": rate(port, True), "h2": rate(port, False), "tls": handshakes(port)}
    B.log(f"  h1 {out['h1'].get('rps', 0):.0f} req/s, h2 {out['h2'].get('rps', 0):.0f} req/s, "
          f"{out['tls']['handshakes_per_s']:.0f} handshakes/s")
    return out


def run(args):
    B.raise_nofile()
    work = tempfile.mkdtemp(prefix="warren-bench-https-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = os.path.join(work, "home")
    os.makedirs(env["HOME"])
    origin = Origin(work)
    tun = None
    res = {"settings": S, "machine": B.machine_info()}
    try:
        origin.start()
        B.log(f"https: direct (nginx TLS on {origin.tls})")
        res["direct"] = measure(origin.tls)
        tun = B.Tunnel(work, args.build, os.path.join(args.build, "warren"), origin, env)
        tport = B.free_port()
        tun.edge_args = ["--https-listen", f"127.0.0.1:{tport}"]
        tun.start_edge()
        tun.start_connector()
        tun.wait_ready(tun.metrics, tun.conn)
        if B.wait_get(tun.http, B.WEB, timeout=10) is None:
            raise RuntimeError("no 200 through the tunnel; see " + work)
        B.log(f"https: warren (warren-edge --https-listen {tport})")
        res["warren"] = measure(tport)
        res["warren"]["h3"] = h3_rate(args.build, tport, os.path.join(tun.d, "ca.pem"))
    finally:
        for p in (tun and tun.conn, tun and tun.edge, origin.nginx):
            if p:
                p.stop()
    if not args.keep:
        subprocess.run(["rm", "-rf", work])
    return res


ROWS = [
    ("1 KiB GET over HTTP/1.1, {h1_conns} TLS connections", "req/s", lambda r: r["h1"].get("rps")),
    ("  failed requests", "count", lambda r: r["h1"].get("failed")),
    ("1 KiB GET over HTTP/2, {h2_conns} connections x {h2_streams} streams", "req/s",
     lambda r: r["h2"].get("rps")),
    ("  failed requests", "count", lambda r: r["h2"].get("failed")),
    ("TLS handshakes (new connection + one request, {hs_batch} at a time)", "/s",
     lambda r: r["tls"]["handshakes_per_s"]),
    ("  failed connections", "count", lambda r: r["tls"]["failed"]),
    ("1 KiB GET over HTTP/3, 1 connection x {h3_streams} streams (h3client; nginx here has no HTTP/3)",
     "req/s", lambda r: r.get("h3", {}).get("rps")),
    ("  failed requests", "count", lambda r: r.get("h3", {}).get("failed")),
]


def table(res):
    m = res["machine"]
    lines = [f"HTTPS front, {time.strftime('%Y-%m-%d')}, {m.get('cpu_model', '?')} ({m.get('cores', '?')} cores), "
             f"h2load 1 thread, {S['seconds']} s per rate; nginx 1 worker.", "",
             "| | unit | nginx TLS (direct) | warren-edge HTTPS → warren → nginx | ratio |",
             "|---|---|---|---|---|"]
    for label, unit, f in ROWS:
        d, w = f(res["direct"]), f(res["warren"])
        ratio = f"{w / d:.2f}" if unit != "count" and d else ""
        fmt = (lambda v: "" if v is None else f"{v:,.0f}")
        lines.append(f"| {label.format(**S)} | {unit} | {fmt(d)} | {fmt(w)} | {ratio} |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--readme")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    res = run(args)
    lines = table(res)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    if args.readme:
        with open(args.readme) as f:
            text = f.read()
        a, b = "<!-- bench:https -->", "<!-- /bench:https -->"
        if a in text and b in text:
            text = text.split(a)[0] + a + "\n\n" + "\n".join(lines) + "\n\n" + b + text.split(b, 1)[1]
            with open(args.readme, "w") as f:
                f.write(text)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
