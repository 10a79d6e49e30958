"""The per-tunnel limits on connectors (25) and connections per connector
(4) hold across edges sharing one PostgreSQL store: an edge counts the live
connections other edges recorded, and refuses with the reason one edge
alone gives. The limits are lowered through the test-only environment
variables WARREN_TEST_MAX_CONNECTORS and WARREN_TEST_MAX_CONNS_PER_CONNECTOR."""
from conftest import wait_for
from test_multi_edge import connector, live_conns_by_edge, make_cluster
from test_store_pg import pg_server, psql, store  # noqa: F401 (fixtures)

LIMITS = {"WARREN_TEST_MAX_CONNECTORS": "1", "WARREN_TEST_MAX_CONNS_PER_CONNECTOR": "1"}


def refusals(p):
    return [line for line in p.output().splitlines() if "registerConnection refused" in line]


def test_connectors_registered_through_one_edge_count_on_the_other(tmp_path, procs, store):
    cl = make_cluster(tmp_path, procs, store, **LIMITS)
    a, b, tid = cl["a"], cl["b"], cl["tid"]
    first = connector(procs, cl, a, name="first", ha=1)
    assert first.wait_output("Registered tunnel connection", 30) is not None, first.tail()
    # B holds none of the tunnel's connections, yet the tunnel's one
    # connector is the limit: a second one is refused there ...
    reason = (f"tunnel {tid} already has 1 connectors, the limit of this edge; stop one of them"
              " (each `cloudflared tunnel run` is one connector) before starting another")
    second = connector(procs, cl, b, name="second", ha=1)
    assert second.wait_output("Register tunnel error from server side", 30) is not None, second.tail()
    assert f'error="{reason}"' in second.output(), second.tail()
    assert wait_for(lambda: refusals(b.p), 10), b.p.tail()
    assert reason in refusals(b.p)[0]
    # ... with the reason A gives on its own, where the first one is.
    third = connector(procs, cl, a, name="third", ha=1)
    assert third.wait_output("Register tunnel error from server side", 30) is not None, third.tail()
    assert f'error="{reason}"' in third.output(), third.tail()
    third.stop()
    assert list(live_conns_by_edge(store).values()) == ["1"]
    # The refusal says "retry": once the first connector is gone, the
    # second one gets in through B.
    first.stop()
    assert second.wait_output("Registered tunnel connection", 60) is not None, second.tail()
    assert live_conns_by_edge(store) == {f"127.0.0.1:{b.peer}": "1"}


def test_connections_of_one_connector_count_over_all_edges(tmp_path, procs, store):
    cl = make_cluster(tmp_path, procs, store, **LIMITS)
    a, b, tid = cl["a"], cl["b"], cl["tid"]
    # One connection on each edge (index 0 on A first, then index 1 on B):
    # B holds none of the connector's, yet index 1 is one too many, and is
    # refused for good (shouldRetry false).
    c = connector(procs, cl, a, b, ha=2)
    assert c.wait_output("Register tunnel error from server side", 60) is not None, c.tail()
    reason = (f"already has 1 connections to tunnel {tid}, the limit of this edge per connector;"
              " connection index 1 is refused (lower --ha-connections)")
    assert reason in c.output(), c.tail()
    assert wait_for(lambda: refusals(b.p), 10), b.p.tail()
    assert reason in refusals(b.p)[0]
    assert live_conns_by_edge(store) == {f"127.0.0.1:{a.peer}": "1"}
