"""Three edges on one PostgreSQL behind DNS round robin: any one of them is
killed (kill -9) under steady load, and restarted, in turn, and visitors
see no failed request.

The edges listen on 127.0.0.2, .3 and .4 (all of 127/8 is local) with the
same ports, as three hosts behind one name would. One connector is given
all three (--edge), so it holds one HA connection on each.

What "visitors see no failed request" means here is what a browser does
with a name that resolves to several addresses, and no more
(RoundRobinVisitor):
  - a new connection goes to the next address of the list; an address
    that refuses the connection is skipped for the next one (as browsers
    fall back over a name's addresses);
  - connections are kept alive, and a worker opens a new one (to the next
    address) every REQUESTS_PER_CONNECTION requests, as pages come and go;
  - a GET whose connection ends or is reset before any byte of the answer
    arrived is sent once more, on a new connection to the next address
    (an idempotent request may be retried automatically, RFC 9110 9.2.2;
    browsers do it for kept-alive connections);
  - anything else is a failure: a second such error, an error after the
    first byte of the answer, a timeout (30 s), or a status other than 200.
"""
import http.client
import io
import json
import shutil
import socket
import threading

import pytest

from conftest import WARREN_EDGE, wait_for
from test_multi_edge import Edge, ZONE, check, connector, env_for
from test_store_pg import pg_server, psql, store  # noqa: F401 (fixtures)

HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
REQUESTS_PER_CONNECTION = 20
WORKERS = 6


class _Counting(io.RawIOBase):
    """A socket's bytes as a file, counting them."""

    def __init__(self, sock):
        self.sock, self.n = sock, 0

    def readable(self):
        return True

    def readinto(self, b):
        k = self.sock.recv_into(b)
        self.n += k
        return k


class _Shim:
    def __init__(self, raw):
        self.raw = raw

    def makefile(self, mode):
        return io.BufferedReader(self.raw)


class VisitorFailed(Exception):
    pass


class RoundRobinVisitor:
    """A client of one hostname resolving to |addrs| (see the module's
    docstring for exactly what it does)."""

    def __init__(self, addrs, port, hostname, first=0):
        self.addrs, self.port, self.hostname = addrs, port, hostname
        self.next = first
        self.sock, self.used = None, 0
        self.retries = 0
        self.by_addr = {a: 0 for a in addrs}

    def _connect(self):
        for _ in range(len(self.addrs)):
            addr = self.addrs[self.next % len(self.addrs)]
            self.next += 1
            try:
                self.sock = socket.create_connection((addr, self.port), timeout=30)
                self.addr, self.used = addr, 0
                return
            except ConnectionRefusedError:
                continue
        raise VisitorFailed("every address refused the connection")

    def _drop(self):
        if self.sock:
            self.sock.close()
        self.sock = None

    def _once(self):
        """One GET; returns (status, None) or (None, error, bytes_seen)."""
        if self.sock is None or self.used >= REQUESTS_PER_CONNECTION:
            self._drop()
            self._connect()
        self.used += 1
        raw = _Counting(self.sock)
        try:
            self.sock.sendall(f"GET / HTTP/1.1\r\nHost: {self.hostname}\r\n\r\n".encode())
            r = http.client.HTTPResponse(_Shim(raw), method="GET")
            r.begin()
            r.read()
        except (OSError, http.client.HTTPException) as e:
            self._drop()
            return None, e, raw.n
        if r.will_close:
            self._drop()
        self.by_addr[self.addr] += 1
        return r.status, None, raw.n

    def get(self):
        status, err, seen = self._once()
        if err is not None and seen == 0 and not isinstance(err, TimeoutError):
            self.retries += 1
            status, err, seen = self._once()
        if err is not None:
            raise VisitorFailed(f"{type(err).__name__}: {err} after {seen} bytes of the answer")
        return status


@pytest.fixture
def three(tmp_path, procs, store):
    env = env_for(tmp_path, store)
    creds = tmp_path / "hello.json"
    d0 = tmp_path / "edge-0"
    check([WARREN_EDGE, "init", "--data-dir", d0, "--zone", ZONE], env)
    check([WARREN_EDGE, "tunnel", "create", "--data-dir", d0, "--out", creds, "hello"], env)
    check([WARREN_EDGE, "route", "dns", "--data-dir", d0, "hello", f"hello.{ZONE}"], env)
    for i in (1, 2):
        shutil.copytree(d0, tmp_path / f"edge-{i}")
    edges = [Edge(procs, d0, env, "edge-0", host=HOSTS[0])]
    for i in (1, 2):
        edges.append(Edge(procs, tmp_path / f"edge-{i}", env, f"edge-{i}", host=HOSTS[i],
                          ports=edges[0]))
    tid = json.loads(creds.read_text())["TunnelID"]
    return {"edges": edges, "a": edges[0], "creds": creds, "tid": tid, "env": env,
            "store": store}


def connected_here(e):
    try:
        return e.metric("warren_edge_connector_connections") == 1
    except OSError:
        return False


class Load:
    """WORKERS RoundRobinVisitors of hello.ZONE over the edges' addresses,
    each in a thread, until stop()."""

    def __init__(self, edges):
        self.visitors = [RoundRobinVisitor(HOSTS, edges[0].http, f"hello.{ZONE}", first=i)
                         for i in range(WORKERS)]
        self.results, self.failures, self.done = [], [], threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(v,)) for v in self.visitors]
        for t in self.threads:
            t.start()

    def run(self, v):
        while not self.done.is_set():
            try:
                self.results.append(v.get())
            except VisitorFailed as e:
                self.failures.append(str(e))

    def served_by(self, host):
        return sum(v.by_addr[host] for v in self.visitors)

    def wait_more(self, n, timeout=60):
        start = len(self.results)
        assert wait_for(lambda: len(self.results) >= start + n, timeout), self.failures[:5]

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(60)
        return sum(v.retries for v in self.visitors)


def kill_and_restart_each(edges, load, connector_on, c):
    """kill -9 of each edge in turn under |load|, then its restart; the
    connector's connection comes back on those of |connector_on|."""
    for e in edges:
        e.p.kill()
        # The load goes on over the two others while this one is dead.
        load.wait_more(100)
        e.start()
        if e in connector_on:
            assert wait_for(lambda: connected_here(e), 60), c.tail()
        # Visitors reach the new run of the edge (which forwards while it
        # has no connection of the tunnel).
        served = load.served_by(e.host)
        assert wait_for(lambda: load.served_by(e.host) > served + 20, 60), load.failures[:5]
        load.wait_more(60)


def test_three_edges_kill_any_and_visitors_see_no_failed_request(three, procs):
    edges, store = three["edges"], three["store"]
    assert wait_for(lambda: psql(store, "SELECT count(*) FROM edges") == "3", 30)
    c = connector(procs, three, *edges)
    # One HA connection on each edge.
    assert wait_for(lambda: all(connected_here(e) for e in edges), 60), c.tail()
    load = Load(edges)
    try:
        load.wait_more(60)
        kill_and_restart_each(edges, load, edges, c)
    finally:
        retried = load.stop()
    assert load.failures == [], load.failures[:5]
    assert load.results and all(s == 200 for s in load.results), sorted(set(load.results))
    # All three serve again, each on its own connection: the connector
    # reconnected each lost connection to the edge's new run.
    assert all(connected_here(e) for e in edges)
    print(f"{len(load.results)} requests, {retried} retried once by the visitor")


def test_an_edge_forwarding_to_a_killed_edge_tries_the_others(three, procs):
    """The connector holds connections on two edges only (--ha-connections
    2): the third forwards every request, and one of its two targets is
    killed in turn, with its row still fresh in the store for a while. The
    connector moves the connection it lost to the edge it had no
    connection on."""
    edges, store = three["edges"], three["store"]
    assert wait_for(lambda: psql(store, "SELECT count(*) FROM edges") == "3", 30)
    c = connector(procs, three, *edges, ha=2)
    holders, forwarder = edges[:2], edges[2]
    assert wait_for(lambda: all(connected_here(e) for e in holders), 60), c.tail()
    assert wait_for(lambda: forwarder.metric("warren_edge_cluster_remote_tunnels") == 1, 30)
    load = Load(edges)
    try:
        load.wait_more(60)
        assert forwarder.metric("warren_edge_forwarded_streams_total") > 0
        # Each holder killed in turn: the connector moves the lost
        # connection to the edge it does not use (first the forwarder,
        # then the first holder's new run), and keeps two connections.
        for dead, spare in ((holders[0], forwarder), (holders[1], holders[0])):
            dead.p.kill()
            load.wait_more(100)
            assert wait_for(lambda: connected_here(spare), 60), c.tail()
            assert c.wait_output("moves from", 5) is not None, c.tail()
            dead.start()
            served = load.served_by(dead.host)
            assert wait_for(lambda: load.served_by(dead.host) > served + 20, 60), load.failures[:5]
            load.wait_more(60)
    finally:
        retried = load.stop()
    assert load.failures == [], load.failures[:5]
    assert load.results and all(s == 200 for s in load.results), sorted(set(load.results))
    # The forwarding edge sent streams again to the live edge, and put the
    # dead one last.
    assert forwarder.metric("warren_edge_forwarded_retried_total") > 0, forwarder.p.tail()
    assert forwarder.metric("warren_edge_cluster_edges_marked_down_total") > 0
    assert forwarder.metric("warren_edge_forwarded_failed_total") == 0
    print(f"{len(load.results)} requests, {retried} retried once by the visitor, "
          f"{forwarder.metric('warren_edge_forwarded_retried_total'):.0f} by the edge")
