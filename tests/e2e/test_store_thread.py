"""The edge's store calls that sit on the visitor's path run on the store
thread, not on the event loop: with every store-thread call made slow
(WARREN_TEST_STORE_DELAY_MS, a test-only hook), a visitor whose host needs a
route lookup waits, and while it waits other visitors keep being served.

The assertions are about order, never about durations: a request that needs
no store call (a cached route, a bad Host) is answered while the slow lookup
is still unanswered."""
import http.client as http_client
import json
import os
import select
import socket
import subprocess

import pytest

from common import read_cert, recv_head
from conftest import WARREN, WARREN_EDGE, free_port

ZONE = "example.test"
DELAY_MS = 3000  # each store-thread call; long next to a loopback round trip


def check(cmd, env):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, f"{cmd}: rc={r.returncode}\n{r.stdout}\n{r.stderr}"


def send_get(port, hostname):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(f"GET / HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n".encode())
    return s


def status_of(s):
    head = recv_head(s, "response head")
    return int(head.split(b" ", 2)[1])


def answered(s):
    """Whether |s| has bytes (or EOF) to read now, without waiting."""
    return bool(select.select([s], [], [], 0)[0])


@pytest.fixture
def edge(tmp_path, procs):
    return start_edge(tmp_path, procs, "127.0.0.1:0")[0]


def start_edge(tmp_path, procs, api_listen):
    """An edge whose store-thread calls are slow, with a hello-world tunnel
    routed for hello.ZONE and other.ZONE; returns (http port, data dir)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = str(tmp_path)
    d = tmp_path / "edge"
    creds = tmp_path / "hello.json"
    check([WARREN_EDGE, "init", "--data-dir", d, "--zone", ZONE], env)
    check([WARREN_EDGE, "tunnel", "create", "--data-dir", d, "--out", creds, "hello"], env)
    tid = json.loads(creds.read_text())["TunnelID"]
    for h in ("hello", "other"):
        check([WARREN_EDGE, "route", "dns", "--data-dir", d, "hello", f"{h}.{ZONE}"], env)
    udp, http = free_port(socket.SOCK_DGRAM), free_port()
    p = procs.start([WARREN_EDGE, "run", "--data-dir", d, "--tunnel-listen", f"127.0.0.1:{udp}",
                     "--http-listen", f"127.0.0.1:{http}", "--api-listen", api_listen],
                    name="warren-edge", env={**env, "WARREN_TEST_STORE_DELAY_MS": str(DELAY_MS)})
    assert p.wait_output("Serving visitors on http://", 30) is not None, p.tail()
    metrics = free_port()
    c = procs.start([WARREN, "tunnel", "--no-autoupdate", "--edge", f"127.0.0.1:{udp}",
                     "--cacert", d / "ca.pem", "--protocol", "quic", "--credentials-file", creds,
                     "--metrics", f"127.0.0.1:{metrics}", "--hello-world", "run", tid],
                    name="warren-hello", env=env)
    assert c.wait_output("Registered tunnel connection", 30) is not None, c.tail()
    return http, d


def test_visitors_are_served_while_a_route_lookup_is_slow(edge):
    # A host nobody asked for yet: its lookup goes to the (slow) store thread.
    slow = send_get(edge, f"other.{ZONE}")
    # Requests that need no store call are answered meanwhile.
    for target in (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",          # no Host: 400
                   b"GET / HTTP/1.1\r\nHost: bad_host:x\r\nConnection: close\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", edge), timeout=30)
        s.sendall(target)
        assert status_of(s) == 400
        s.close()
        assert not answered(slow), "the slow lookup was answered before the quick requests"
    # The slow one gets its answer in the end: routed, through the connector.
    assert status_of(slow) == 200
    slow.close()


def test_a_cached_route_is_served_while_another_lookup_is_slow(edge):
    # The route cache keeps an answer for a second (visitor.h route_ttl_ms):
    # right after hello's lookup, its route is cached; a visitor for another
    # host then waits on the store thread while hello's visitors are served.
    # Should the cache have expired before the second hello request (a very
    # loaded machine), that request queues behind the slow lookup: try again.
    for _ in range(3):
        first = send_get(edge, f"hello.{ZONE}")
        assert status_of(first) == 200
        first.close()
        slow = send_get(edge, f"other.{ZONE}")
        again = send_get(edge, f"hello.{ZONE}")
        assert status_of(again) == 200
        again.close()
        served_first = not answered(slow)
        assert status_of(slow) == 200
        slow.close()
        if served_first:
            return
    pytest.fail("a cached host was never answered before a slow lookup of another host finished")


def test_the_access_gate_reads_its_apps_on_the_store_thread(tmp_path, procs):
    # An Access application covers other.ZONE: the gate answers an anonymous
    # visitor itself (401: an identity is needed), without a route lookup,
    # once it has read the host's applications. Were that read on the loop
    # (not delayed), the 401 would
    # come before the quick requests below; on the store thread it comes
    # after them.
    api = free_port()
    http, d = start_edge(tmp_path, procs, f"127.0.0.1:{api}")
    _, account, token = read_cert(d / "cert.pem")

    def call(method, path, body):
        c = http_client.HTTPConnection("127.0.0.1", api, timeout=30)
        c.request(method, f"/client/v4/accounts/{account}{path}", body=json.dumps(body),
                  headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        r = json.loads(c.getresponse().read())
        c.close()
        assert r["success"], r
        return r["result"]

    app = call("POST", "/access/apps", {"name": "other", "domain": f"other.{ZONE}"})
    call("POST", f"/access/apps/{app['id']}/policies",
         {"name": "nobody", "decision": "deny", "include": [{"everyone": {}}]})
    slow = send_get(http, f"other.{ZONE}")
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", http), timeout=30)
        s.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")  # no Host: 400
        assert status_of(s) == 400
        s.close()
        assert not answered(slow), "the gate answered before its store read could have come back"
    assert status_of(slow) == 401
    slow.close()


def test_a_connector_registers_through_the_store_thread(tmp_path, procs):
    # registerConnection reads the tunnel and writes the connection's row on
    # the store thread: while a connector's registration waits there, the
    # loop answers visitors; and a deleted tunnel is still refused with its
    # reason.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = str(tmp_path)
    d = tmp_path / "edge"
    creds, gone = tmp_path / "hello.json", tmp_path / "gone.json"
    check([WARREN_EDGE, "init", "--data-dir", d, "--zone", ZONE], env)
    check([WARREN_EDGE, "tunnel", "create", "--data-dir", d, "--out", creds, "hello"], env)
    check([WARREN_EDGE, "tunnel", "create", "--data-dir", d, "--out", gone, "gone"], env)
    check([WARREN_EDGE, "tunnel", "delete", "--data-dir", d, "gone"], env)
    udp, http = free_port(socket.SOCK_DGRAM), free_port()
    p = procs.start([WARREN_EDGE, "run", "--data-dir", d, "--tunnel-listen", f"127.0.0.1:{udp}",
                     "--http-listen", f"127.0.0.1:{http}", "--loglevel", "debug"],
                    name="warren-edge", env={**env, "WARREN_TEST_STORE_DELAY_MS": str(DELAY_MS)})
    assert p.wait_output("Serving visitors on http://", 30) is not None, p.tail()

    def connector(c, name):
        tid = json.loads(c.read_text())["TunnelID"]
        return procs.start([WARREN, "tunnel", "--no-autoupdate", "--edge", f"127.0.0.1:{udp}",
                            "--cacert", d / "ca.pem", "--protocol", "quic", "--credentials-file",
                            c, "--ha-connections", "1", "run", "--hello-world", tid],
                           name=name, env=env)

    c = connector(creds, "warren-hello")
    # The edge took the registration call and handed it to the store
    # thread ...
    assert p.wait_output("checking on the store thread", 30) is not None, p.tail()
    # ... and answers visitors while its answer waits for the store thread.
    s = socket.create_connection(("127.0.0.1", http), timeout=30)
    s.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")  # no Host: 400
    assert status_of(s) == 400
    s.close()
    assert "Registered tunnel connection" not in c.output(), "registered before the store answered"
    assert c.wait_output("Registered tunnel connection", 60) is not None, c.tail()
    g = connector(gone, "warren-gone")
    assert g.wait_output("has been deleted", 60) is not None, g.tail()
    assert "Registered tunnel connection" not in g.output()
