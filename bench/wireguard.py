#!/usr/bin/env python3
"""WireGuard throughput: iperf3 (TCP, one stream) from a wireguard-go client
through warren-edge's WireGuard ingress and a warren connector to a private
host, against wireguard-go to wireguard-go directly between the same two
namespaces (the edge namespace forwarding in between).

  client ns  --veth--  edge ns  --veth--  connector ns
  wireguard-go wgcTAG -> warren-edge --wireguard-listen -> QUIC -> warren -> iperf3 -s (10.99.0.5)
  wireguard-go wgdTAG -----(kernel forwarding)------> wireguard-go wgnTAG -> iperf3 -s (10.55.0.2)

Needs root, wireguard-go, wg, iperf3 and the release binaries (`make`).
Writes a JSON line with both figures (Mbit/s) to --out and prints a summary.

  /usr/bin/python3 bench/wireguard.py --build build --out bench/results/wireguard.json
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "e2e"))
import netns  # noqa: E402  (the namespaces, shared with the e2e tests)
from common import wait_until  # noqa: E402
from netns import log_of, sh  # noqa: E402

SECONDS = int(os.environ.get("BENCH_WG_SECONDS", "10"))


def wait_for(pred, timeout):
    return wait_until(pred, timeout, 0.1)


class Bench(netns.Namespaces):
    # (wireguard-go's control sockets live in /var/run/wireguard, shared by
    # every namespace: interface names must differ across namespaces.)

    def __init__(self, build, work):
        super().__init__(work, ("wbc", "wbe", "wbn"))
        self.c, self.e, self.n = self.names
        tag = self.tag
        self.build, self.work = build, work
        self.link(self.e, "ve" + tag, "10.200.0.1/24", self.n, "vc" + tag, "10.200.0.2/24")
        self.link(self.e, "vx" + tag, "10.201.0.1/24", self.c, "vy" + tag, "10.201.0.2/24")
        self.lo_addrs(self.n, "10.99.0.5/32")
        # For the direct path the edge namespace forwards between the two.
        sh(self.e, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh(self.c, "ip", "route", "add", "10.200.0.0/24", "via", "10.201.0.1")
        sh(self.n, "ip", "route", "add", "10.201.0.0/24", "via", "10.200.0.1")

    def log(self, p):
        return log_of(p)

    def wg_go(self, ns, ifname, conf, addr, routes, mtu=None):
        self.start(ns, ["wireguard-go", "-f", ifname], f"wg-{ns}-{ifname}",
                   env={"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"})
        if not wait_for(lambda: sh(ns, "wg", "show", ifname, check=False).returncode == 0, 10):
            raise RuntimeError("wireguard-go did not start")
        path = os.path.join(self.work, f"{ns}-{ifname}.conf")
        with open(path, "w") as f:
            f.write(conf)
        sh(ns, "wg", "setconf", ifname, path)
        sh(ns, "ip", "addr", "add", addr, "dev", ifname)
        if mtu:
            sh(ns, "ip", "link", "set", ifname, "mtu", mtu)
        sh(ns, "ip", "link", "set", ifname, "up")
        for r in routes:
            sh(ns, "ip", "route", "add", r, "dev", ifname)

    def iperf(self, host):
        r = sh(self.c, "iperf3", "-c", host, "-t", str(SECONDS), "-J", timeout=SECONDS + 60)
        j = json.loads(r.stdout)
        return j["end"]["sum_received"]["bits_per_second"] / 1e6


def through_edge(b):
    edge_bin, warren = os.path.join(b.build, "warren-edge"), os.path.join(b.build, "warren")
    d = os.path.join(b.work, "edge")
    subprocess.run([edge_bin, "init", "--data-dir", d, "--zone", "bench.test"], check=True, capture_output=True)
    creds = os.path.join(b.work, "net.json")
    subprocess.run([edge_bin, "tunnel", "create", "--data-dir", d, "--out", creds, "net"], check=True,
                   capture_output=True)
    edge = b.start(b.e, [edge_bin, "run", "--data-dir", d, "--tunnel-listen", "10.200.0.1:7844",
                         "--http-listen", "127.0.0.1:18080", "--api-listen", "127.0.0.1:18081",
                         "--wireguard-listen", "0.0.0.0:51820", "--loglevel", "warn"], "warren-edge")
    if not wait_for(lambda: ":51820" in sh(b.e, "ss", "-uln", check=False).stdout, 30):
        raise RuntimeError(b.log(edge))
    tid = json.load(open(creds))["TunnelID"]
    env = dict(os.environ, HOME=b.work, TUNNEL_API_URL="http://127.0.0.1:18081/client/v4")
    subprocess.run(["ip", "netns", "exec", b.e, warren, "tunnel", "--origincert", os.path.join(d, "cert.pem"),
                    "route", "ip", "add", "10.99.0.0/24", tid], check=True, capture_output=True, env=env)
    cfg = os.path.join(b.work, "connector.yml")
    with open(cfg, "w") as f:
        f.write("warp-routing:\n  enabled: true\ningress:\n  - service: http_status:404\n")
    conn = b.start(b.n, [warren, "tunnel", "--no-autoupdate", "--edge", "10.200.0.1:7844", "--cacert",
                         os.path.join(d, "ca.pem"), "--protocol", "quic", "--config", cfg,
                         "--credentials-file", creds, "run", tid], "warren")
    if not wait_for(lambda: "Registered tunnel connection" in b.log(conn), 40):
        raise RuntimeError(b.log(conn))
    out = subprocess.run([edge_bin, "device", "add", "--data-dir", d, "--endpoint", "10.201.0.1:51820",
                          "bench"], check=True, capture_output=True, text=True).stdout
    # What wg-quick does with the printed configuration: Address and MTU
    # become `ip addr` / `ip link set mtu`, the rest goes to `wg setconf`.
    kept, addr, mtu = [], None, None
    for ln in out.splitlines():
        k = ln.split("=", 1)[0].strip().lower()
        if k == "address":
            addr = ln.split("=", 1)[1].split(",")[0].strip()
            continue
        if k == "mtu":
            mtu = ln.split("=", 1)[1].strip()
            continue
        kept.append(ln)
    b.wg_go(b.c, "wgc" + b.tag, "\n".join(kept) + "\n", addr, ["10.99.0.0/24"], mtu)
    return b.iperf("10.99.0.5")


def direct(b):
    keys = []
    for _ in range(2):
        priv = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
        pub = subprocess.run(["wg", "pubkey"], input=priv, capture_output=True, text=True, check=True).stdout.strip()
        keys.append((priv, pub))
    b.wg_go(b.n, "wgn" + b.tag, f"[Interface]\nPrivateKey = {keys[1][0]}\nListenPort = 51821\n"
                        f"[Peer]\nPublicKey = {keys[0][1]}\nAllowedIPs = 10.55.0.1/32\n",
            "10.55.0.2/32", ["10.55.0.1/32"])
    b.wg_go(b.c, "wgd" + b.tag, f"[Interface]\nPrivateKey = {keys[0][0]}\n"
                        f"[Peer]\nPublicKey = {keys[1][1]}\nEndpoint = 10.200.0.2:51821\n"
                        f"AllowedIPs = 10.55.0.2/32\n",
            "10.55.0.1/32", ["10.55.0.2/32"])
    return b.iperf("10.55.0.2")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--out")
    a = ap.parse_args()
    for tool in ("wireguard-go", "wg", "iperf3"):
        if not shutil.which(tool):
            raise SystemExit(f"wireguard bench: {tool} missing")
    work = tempfile.mkdtemp(prefix="warren-wgbench.")
    b = Bench(os.path.abspath(a.build), work)
    try:
        iperf_srv = b.start(b.n, ["iperf3", "-s"], "iperf3")
        time.sleep(0.5)
        res = {"seconds": SECONDS}
        res["edge_mbps"] = through_edge(b)
        res["direct_mbps"] = direct(b)
        res["ratio"] = res["edge_mbps"] / res["direct_mbps"] if res["direct_mbps"] else None
        del iperf_srv
    finally:
        b.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"wireguard: through the edge {res['edge_mbps']:.0f} Mbit/s, wireguard-go direct "
          f"{res['direct_mbps']:.0f} Mbit/s ({100 * res['ratio']:.0f} %)")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
