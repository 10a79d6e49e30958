"""Network namespaces for the private-network tests and benches: namespaces
with lo up, veth pairs between them, addresses on lo, processes started in
them with their output in a log file, and cleanup of all of it. Nothing here
routes off the machine. Used by tests/e2e/test_private_net.py,
test_wireguard.py, bench/private.py and bench/wireguard.py."""
import os
import subprocess
import uuid

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
