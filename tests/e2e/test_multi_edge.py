"""Several edges on one PostgreSQL store: they register themselves and their
connections in it, forward visitors of tunnels connected elsewhere to the
edge that holds the connection (TLS between edges, certificates of the
shared edge CA), see each other's changes, and survive the loss of one.

The second edge's data directory is a copy of the first's: edges sharing a
store share the edge CA (docs/multi-edge.md)."""
import json
import os
import shutil
import socket
import threading
import time
import urllib.request

import pytest

from conftest import WARREN, WARREN_EDGE, free_port, wait_for
from common import read_cert
from test_store_pg import check, get, pg_server, psql, store  # noqa: F401 (fixtures)

ZONE = "example.test"


def env_for(tmp_path, store):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = str(tmp_path)
    env["WARREN_STORE"] = store
    return env


class Edge:
    """One warren-edge. |host| is its address (any of 127/8); |ports|, when
    given, are the ports of another Edge, so that edges on different
    addresses listen on the same ports, as behind DNS round robin."""

    def __init__(self, procs, d, env, name, host="127.0.0.1", ports=None):
        self.d, self.env, self.name, self.procs, self.host = d, env, name, procs, host
        if ports:
            self.udp, self.http, self.api, self.peer, self.metrics = (
                ports.udp, ports.http, ports.api, ports.peer, ports.metrics)
        else:
            self.udp = free_port(socket.SOCK_DGRAM)
            self.http, self.api, self.peer = free_port(), free_port(), free_port()
            self.metrics = free_port()
        self.start()

    def start(self):
        h = self.host
        self.p = self.procs.start(
            [WARREN_EDGE, "run", "--data-dir", self.d, "--tunnel-listen", f"{h}:{self.udp}",
             "--http-listen", f"{h}:{self.http}", "--api-listen", f"{h}:{self.api}",
             "--peer-listen", f"{h}:{self.peer}", "--metrics", f"{h}:{self.metrics}",
             "--requests-per-second-per-source", "0"], name=self.name, env=self.env)
        assert self.p.wait_output("shares its store with other edges", 30) is not None, self.p.tail()
        assert self.p.wait_output("Serving the API on", 30) is not None, self.p.tail()

    def metric(self, name):
        with urllib.request.urlopen(f"http://{self.host}:{self.metrics}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return None

    def api_call(self, method, path, token):
        req = urllib.request.Request(f"http://{self.host}:{self.api}/client/v4{path}", method=method,
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())["result"]


@pytest.fixture
def cluster(tmp_path, procs, store):
    """Two edges (A, B) on one fresh database, a tunnel `hello` routed to
    hello.ZONE, its credentials file and id."""
    return make_cluster(tmp_path, procs, store)


def make_cluster(tmp_path, procs, store, **extra_env):
    """The cluster fixture, with |extra_env| in every process's environment."""
    env = env_for(tmp_path, store)
    env.update(extra_env)
    a_dir, b_dir = tmp_path / "edge-a", tmp_path / "edge-b"
    creds = tmp_path / "hello.json"
    check([WARREN_EDGE, "init", "--data-dir", a_dir, "--zone", ZONE], env)
    check([WARREN_EDGE, "tunnel", "create", "--data-dir", a_dir, "--out", creds, "hello"], env)
    check([WARREN_EDGE, "route", "dns", "--data-dir", a_dir, "hello", f"hello.{ZONE}"], env)
    shutil.copytree(a_dir, b_dir)
    a = Edge(procs, a_dir, env, "edge-a")
    b = Edge(procs, b_dir, env, "edge-b")
    tid = json.loads(creds.read_text())["TunnelID"]
    return {"a": a, "b": b, "creds": creds, "tid": tid, "env": env, "store": store}


def connector(procs, cl, *edges, name="warren-hello", ha=None):
    args = [WARREN, "tunnel", "--no-autoupdate"]
    for e in edges:
        args += ["--edge", f"{e.host}:{e.udp}"]
    if ha:
        args += ["--ha-connections", str(ha)]
    args += ["--cacert", cl["a"].d / "ca.pem", "--protocol", "quic", "--credentials-file",
             cl["creds"], "--hello-world", "run", cl["tid"]]
    return procs.start(args, name=name, env=cl["env"])


def live_conns_by_edge(store):
    rows = psql(store, "SELECT e.peer_addr, count(*) FROM connections c JOIN edges e"
                       " ON e.id = c.edge_id WHERE c.closed_at IS NULL GROUP BY e.peer_addr")
    return dict(line.split("|") for line in rows.splitlines() if line)


def test_edges_register_and_a_connector_spreads_over_them(cluster, procs):
    a, b, store = cluster["a"], cluster["b"], cluster["store"]
    # Both edges have their row and heartbeat.
    assert wait_for(lambda: psql(store, "SELECT count(*) FROM edges") == "2", 10)
    peers = psql(store, "SELECT peer_addr FROM edges ORDER BY peer_addr").splitlines()
    assert sorted(peers) == sorted([f"127.0.0.1:{a.peer}", f"127.0.0.1:{b.peer}"])
    c = connector(procs, cluster, a, b)
    # One HA connection on each edge, each recorded with its edge.
    assert wait_for(lambda: len(live_conns_by_edge(store)) == 2, 30), (c.tail(), a.p.tail())
    assert set(live_conns_by_edge(store)) == {f"127.0.0.1:{a.peer}", f"127.0.0.1:{b.peer}"}
    for e in (a, b):
        status, body = get(e.http, f"hello.{ZONE}")
        assert status == 200, body
    # A clean stop removes the edge's row and closes its connections' rows.
    b.p.stop()
    assert psql(store, "SELECT count(*) FROM edges") == "1"
    assert list(live_conns_by_edge(store)) == [f"127.0.0.1:{a.peer}"]


def test_a_connector_whose_first_edge_is_down_connects_to_the_others(cluster, procs):
    a, b = cluster["a"], cluster["b"]
    a.p.stop()
    c = connector(procs, cluster, a, b)
    assert c.wait_output("Registered tunnel connection", 30) is not None, c.tail()
    assert get(b.http, f"hello.{ZONE}")[0] == 200
    # When A is back, the connection meant for it registers there.
    a.start()
    assert wait_for(lambda: len(live_conns_by_edge(cluster["store"])) == 2, 60), c.tail()


def test_a_tunnel_connected_to_one_edge_is_served_through_the_other(cluster, procs):
    a, b = cluster["a"], cluster["b"]
    c = connector(procs, cluster, a)
    assert c.wait_output("Registered tunnel connection", 30) is not None, c.tail()
    status, body = get(a.http, f"hello.{ZONE}")
    assert status == 200, body
    # B has no connection of the tunnel: it forwards to A once its
    # heartbeat read where the tunnel lives.
    assert wait_for(lambda: get(b.http, f"hello.{ZONE}")[0] == 200, 10), b.p.tail()
    status, body_b = get(b.http, f"hello.{ZONE}")
    assert status == 200 and body_b == body
    assert b.metric("warren_edge_forwarded_streams_total") >= 1
    assert a.metric("warren_edge_peer_streams_total") >= 1
    assert b.metric("warren_edge_cluster_remote_tunnels") == 1
    # Sequential requests share one connection between the edges.
    for _ in range(5):
        assert get(b.http, f"hello.{ZONE}")[0] == 200
    assert b.metric("warren_edge_forwarded_reused_total") >= 4
    # A request body travels too, through the forwarding edge. The hello
    # page answers without reading it and stops the stream's reading side
    # (as cloudflared does): the body's rest is dropped, the answer arrives
    # whole, and the kept connection between the edges serves the next
    # stream. Several rounds: the connector's STOP races the body's frames.
    payload = os.urandom(300000)
    for _ in range(6):
        req = urllib.request.Request(f"http://127.0.0.1:{b.http}/echo", data=payload,
                                     headers={"Host": f"hello.{ZONE}"}, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
            assert b"/echo" in r.read()
        assert get(b.http, f"hello.{ZONE}")[0] == 200
    assert "broke the protocol" not in a.p.tail()
    # The connector gone: B says so instead of forwarding to nothing.
    c.stop()
    assert wait_for(lambda: get(b.http, f"hello.{ZONE}")[0] == 502, 15), b.p.tail()


def test_a_route_deleted_through_one_edge_stops_serving_on_the_other(cluster, procs):
    a, b = cluster["a"], cluster["b"]
    c = connector(procs, cluster, a, b)
    assert wait_for(lambda: len(live_conns_by_edge(cluster["store"])) == 2, 30), c.tail()
    assert get(b.http, f"hello.{ZONE}")[0] == 200
    # Both edges listen for the store's change notifications.
    assert wait_for(lambda: b.metric("warren_edge_store_notifications_up") == 1, 10), b.p.tail()
    before = b.metric("warren_edge_store_notifications_total")
    zone, _, token = read_cert(a.d / "cert.pem")
    recs = a.api_call("GET", f"/zones/{zone}/dns_records?name=hello.{ZONE}", token)
    assert len(recs) == 1
    a.api_call("DELETE", f"/zones/{zone}/dns_records/{recs[0]['id']}", token)
    assert get(a.http, f"hello.{ZONE}")[0] == 404
    # B learns it from the store within 10 s (its notification, else its
    # cache's expiry).
    assert wait_for(lambda: get(b.http, f"hello.{ZONE}")[0] == 404, 10)
    assert wait_for(lambda: b.metric("warren_edge_store_notifications_total") > before, 10)


def test_a_tunnel_deleted_through_one_edge_disconnects_its_connectors_on_all(cluster, procs):
    a, b, store = cluster["a"], cluster["b"], cluster["store"]
    c = connector(procs, cluster, a, b)
    assert wait_for(lambda: len(live_conns_by_edge(store)) == 2, 30), c.tail()
    _, account, token = read_cert(a.d / "cert.pem")
    a.api_call("DELETE", f"/accounts/{account}/cfd_tunnel/{cluster['tid']}?cascade=true", token)
    # B closes its connection of the deleted tunnel within 10 s, and the
    # connector hears it from both edges.
    assert b.p.wait_output("Unregistered tunnel connection", 10) is not None, b.p.tail()
    assert wait_for(lambda: live_conns_by_edge(store) == {}, 10)
    assert wait_for(lambda: c.output().count("has been deleted") >= 2, 10), c.tail()


def test_kill_9_of_one_edge_under_load_through_the_other_loses_nothing(cluster, procs):
    a, b, store = cluster["a"], cluster["b"], cluster["store"]
    c = connector(procs, cluster, a, b)
    assert wait_for(lambda: len(live_conns_by_edge(store)) == 2, 30), c.tail()
    results, stop = [], threading.Event()

    def load():
        while not stop.is_set():
            results.append(get(b.http, f"hello.{ZONE}")[0])

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    assert wait_for(lambda: len(results) >= 50, 30)
    a.p.kill()
    # The load goes on through B while A is dead ...
    n = len(results)
    assert wait_for(lambda: len(results) >= n + 100, 30)
    # ... and after the store expired A's row and connections.
    assert wait_for(lambda: psql(store, "SELECT count(*) FROM edges") == "1", 30), b.p.tail()
    n = len(results)
    assert wait_for(lambda: len(results) >= n + 50, 30)
    stop.set()
    for w in workers:
        w.join(30)
    assert results and all(s == 200 for s in results), sorted(set(results))
    # A rejoins: its row is back, the connector registers on it again, and
    # visitors are served through it.
    a.start()
    assert wait_for(lambda: psql(store, "SELECT count(*) FROM edges") == "2", 30)
    assert wait_for(lambda: len(live_conns_by_edge(store)) == 2, 60), c.tail()
    assert get(a.http, f"hello.{ZONE}")[0] == 200


def test_forwarding_refuses_a_client_without_an_edge_certificate(cluster):
    b = cluster["b"]
    import ssl
    ctx = ssl.create_default_context(cafile=str(b.d / "ca.pem"))
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", b.peer), timeout=10) as s:
        try:
            with ctx.wrap_socket(s) as t:
                t.sendall(b"\x01\x00\x00\x24" + cluster["tid"].encode())
                assert t.recv(100) == b""
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            pass
    assert b.p.wait_output("peer edge: handshake refused", 10) is not None, b.p.tail()


def test_the_tunnel_limit_holds_for_creations_racing_through_two_edges(cluster):
    """The account's live tunnels stop at the limit (1,000) even when
    creations race through both edges' APIs: the count and the insert are
    one transaction, serialised per account."""
    a, b, store = cluster["a"], cluster["b"], cluster["store"]
    _, account, token = read_cert(a.d / "cert.pem")
    limit, have = 1000, int(psql(store, "SELECT count(*) FROM tunnels WHERE deleted_at IS NULL"))
    # The account is filled to a few below its limit directly in the store.
    psql(store, "INSERT INTO tunnels(id, account_id, name, secret, created_at)"
                f" SELECT gen_random_uuid()::text, '{account}', 'fill-' || i,"
                " decode(repeat('ab', 32), 'hex'), 0"
                f" FROM generate_series(1, {limit - have - 4}) AS i")
    outcomes = []

    def create(edge, i):
        body = json.dumps({"name": f"race-{edge.name}-{i}"}).encode()
        req = urllib.request.Request(
            f"http://{edge.host}:{edge.api}/client/v4/accounts/{account}/cfd_tunnel", data=body,
            method="POST", headers={"Authorization": f"Bearer {token}",
                                    "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                outcomes.append(r.status)
        except urllib.error.HTTPError as e:
            msg = json.loads(e.read())["errors"][0]["message"]
            outcomes.append(e.code)
            assert e.code == 400 and "the limit" in msg, msg

    threads = [threading.Thread(target=create, args=(e, i)) for i in range(20) for e in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(outcomes) == 40
    assert outcomes.count(200) == 4, outcomes
    live = psql(store, f"SELECT count(*) FROM tunnels WHERE account_id = '{account}'"
                       " AND deleted_at IS NULL")
    assert int(live) == limit
