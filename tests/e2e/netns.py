"""Network namespaces for the private-network tests and benches: namespaces
with lo up, veth pairs between them, addresses on lo, processes started in
them with their output in a log file, and cleanup of all of it. Nothing here
routes off the machine. Used by tests/e2e/test_private_net.py,
test_wireguard.py, bench/private.py and bench/wireguard.py."""
import contextlib
import ctypes
import json
import os
import subprocess
import time
import uuid

CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def loopback_only():
    """Moves the calling thread (and what it starts) into a fresh network
    namespace with only lo up, and back afterwards: for cloudflared, which
    looks names up at start. OSError if the kernel refuses (not root)."""
    libc = ctypes.CDLL(None, use_errno=True)
    old = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        os.close(old)
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
    try:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        yield
    finally:
        libc.setns(old, CLONE_NEWNET)
        os.close(old)

# A UDP echo server on 10.99.0.5:9053 and [fd99::5]:9053 (the private host),
# answering "echo:" + what it got; run with `python3 -c UDP_ECHO`.
UDP_ECHO = """
import socket, threading
def serve(fam, addr):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((addr, 9053))
    while True:
        d, a = s.recvfrom(65535)
        s.sendto(b"echo:" + d, a)
threading.Thread(target=serve, args=(socket.AF_INET6, "fd99::5"), daemon=True).start()
serve(socket.AF_INET, "10.99.0.5")
"""


# Where the tests put warren-edge (--tunnel-listen, on the edge namespace's
# veth towards the connector) and its API.
EDGE_TUNNEL = "10.200.0.1:7844"
EDGE_API = "127.0.0.1:18081"


class CommandFailed(AssertionError):
    """A command in a namespace exited non-zero (an assertion failure in a
    test; an error in a bench)."""


def sh(ns, *args, check=True, timeout=30, env=None):
    """Runs |args| in namespace |ns|; returns the CompletedProcess (text).
    With |check|, a non-zero exit raises CommandFailed."""
    r = subprocess.run(["ip", "netns", "exec", ns, *[str(a) for a in args]], capture_output=True,
                       text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise CommandFailed(f"{ns}: {args}: rc {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def log_of(p):
    """What a process started by Namespaces.start wrote so far."""
    with open(p.logpath, errors="replace") as f:
        return f.read()


def metrics(ns, port):
    """The Prometheus text at 127.0.0.1:|port|/metrics inside |ns| ("" if
    nothing answers)."""
    return sh(ns, "python3", "-c", "import urllib.request;print(urllib.request.urlopen("
              f"'http://127.0.0.1:{port}/metrics').read().decode())", check=False).stdout


class Namespaces:
    """One namespace per prefix in |prefixes| (named prefix + a random tag,
    lo up), the processes started in them, and close() that stops the
    processes (last first) and deletes the namespaces. |logdir| holds one
    NAME.log per process."""

    def __init__(self, logdir, prefixes, tag=None):
        self.tag = tag or uuid.uuid4().hex[:6]
        self.logdir = str(logdir)
        self.procs = []
        self.names = []
        for prefix in prefixes:
            ns = prefix + self.tag
            subprocess.run(["ip", "netns", "add", ns], check=True)
            self.names.append(ns)
            sh(ns, "ip", "link", "set", "lo", "up")

    def link(self, ns1, n1, a1, ns2, n2, a2):
        """A veth pair: |n1| with address |a1| (CIDR) in |ns1|, |n2| with |a2|
        in |ns2|, both up."""
        subprocess.run(["ip", "link", "add", n1, "netns", ns1, "type", "veth", "peer", "name", n2,
                        "netns", ns2], check=True)
        for ns, n, a in ((ns1, n1, a1), (ns2, n2, a2)):
            sh(ns, "ip", "addr", "add", a, "dev", n)
            sh(ns, "ip", "link", "set", n, "up")

    def lo_addrs(self, ns, *cidrs):
        """Adds |cidrs| to |ns|'s lo (no dummy links on this kernel)."""
        for a in cidrs:
            sh(ns, "ip", "addr", "add", a, "dev", "lo")

    def allow_ping(self, *namespaces):
        """Unprivileged ICMP (ping) sockets for every group in |namespaces|."""
        for ns in namespaces:
            sh(ns, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")

    def start(self, ns, args, name, env=None):
        """Starts |args| in |ns| with this environment plus |env|; output to
        NAME.log (p.logpath)."""
        path = os.path.join(self.logdir, f"{name}.log")
        e = dict(os.environ)
        e.update(env or {})
        with open(path, "wb") as log:
            p = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdout=log,
                                 stderr=subprocess.STDOUT, env=e)
        p.logpath = path
        self.procs.append(p)
        return p

    def stop_procs(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def close(self):
        self.stop_procs()
        for ns in self.names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def udp_echo(ns, host, family):
    """Sends "hello-udp" from |ns| to UDP_ECHO at |host| (up to three tries
    3 s apart; |family| is the Python expression, e.g. "socket.AF_INET") and
    returns the answer ("" if none)."""
    code = (f"import socket\ns = socket.socket({family}, socket.SOCK_DGRAM)\ns.settimeout(3)\n"
            f"got = b''\nfor i in range(3):\n"
            f"    s.sendto(b'hello-udp', ('{host}', 9053))\n"
            f"    try:\n        got = s.recv(2048)\n        break\n    except socket.timeout:\n        pass\n"
            f"print(got.decode())\n")
    return sh(ns, "python3", "-c", code, check=False, timeout=30).stdout.strip()


def edge_tunnel(warren_edge, tmp_path):
    """`warren-edge init` in tmp_path/edge and a tunnel "net" whose
    credentials go to tmp_path/net.json. Returns (data dir, credentials
    path, tunnel ID)."""
    d = tmp_path / "edge"
    r = subprocess.run([warren_edge, "init", "--data-dir", str(d), "--zone", "example.test"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    creds = tmp_path / "net.json"
    r = subprocess.run([warren_edge, "tunnel", "create", "--data-dir", str(d), "--out", str(creds), "net"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return d, creds, json.loads(creds.read_text())["TunnelID"]


def route_ip_add(ns, warren, d, tid, home, cidrs):
    """`warren tunnel route ip add CIDR TID` for each of |cidrs|, run in |ns|
    against the edge's API at EDGE_API with the origin cert of data dir |d|."""
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "TUNNEL_API_URL": f"http://{EDGE_API}/client/v4", "NO_AUTOUPDATE": "true"}
    for cidr in cidrs:
        # The edge may still be starting its API listener (it comes after the
        # tunnel port, WireGuard and Access's first signing key): a refused
        # connection is tried again for a while, any other failure is final.
        deadline = time.monotonic() + 30
        while True:
            r = sh(ns, warren, "tunnel", "--origincert", str(d / "cert.pem"), "route", "ip", "add", cidr, tid,
                   env=env, timeout=60, check=False)
            if r.returncode == 0 or "connection refused" not in r.stdout + r.stderr \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.returncode == 0, r.stdout + r.stderr


def connector_args(binary, d, creds, cfg, tid, icmp_srcs, extra=()):
    """The command line of a connector (warren or cloudflared: the same flags)
    for tunnel |tid| at EDGE_TUNNEL over QUIC, trusting data dir |d|'s CA,
    metrics on 127.0.0.1:18090, with `tunnel run` given the ICMP sources
    |icmp_srcs| (IPv4, IPv6): without them cloudflared dials out to find
    one."""
    return [binary, "tunnel", "--no-autoupdate", "--edge", EDGE_TUNNEL, "--cacert", str(d / "ca.pem"),
            "--protocol", "quic", "--config", str(cfg), "--credentials-file", str(creds),
            "--metrics", "127.0.0.1:18090", *extra,
            "run", "--icmpv4-src", icmp_srcs[0], "--icmpv6-src", icmp_srcs[1], tid]
