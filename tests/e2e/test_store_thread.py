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

import pytest

from common import read_cert, recv_head
from conftest import edge_with_hello, free_port, run_edge_and_hello

ZONE = "example.test"
DELAY_MS = 3000  # each store-thread call; long next to a loopback round trip


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
    d, creds, tid, _ = edge_with_hello(tmp_path, env, ZONE, ("hello", "other"))
    http = run_edge_and_hello(procs, d, creds, tid, env, ["--api-listen", api_listen],
                              edge_env={**env, "WARREN_TEST_STORE_DELAY_MS": str(DELAY_MS)},
                              connector_args=["--metrics", f"127.0.0.1:{free_port()}"])
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
