"""warren's connector over HTTP/2 against warren-edge: `--protocol http2`
runs the HTTP cases of test_http2.py (GET with Host kept, 1 MiB POST,
chunked upload, 100 MB download, WebSocket echo, 404 from the connector,
unknown host, origin refused, many requests on one connection).
test_http2_fallback.py has `--protocol auto`."""
import pytest

import test_tunnel as tt
from test_http2 import H2Tunnel, TunnelRun
from test_http2 import (test_404_from_the_connector_passes_through,  # noqa: F401
                        test_chunked_upload_of_unknown_length, test_get_keeps_request_line_and_host,
                        test_large_download_with_checksum, test_many_requests_share_the_connection,
                        test_origin_refused_is_502, test_post_1mib,
                        test_unknown_host_is_404_from_the_edge, test_websocket_echo)

base = tt.base
env = tt.env
origin = tt.origin


class WarrenConnector(TunnelRun):
    """`warren tunnel run` with a chosen --protocol."""

    def __init__(self, procs, edge, tunnel, service_args, env, protocol, name):
        super().__init__(tt.CONNECTOR, protocol, procs, edge, tunnel, service_args, env, name)


class Tunnel(H2Tunnel):
    """H2Tunnel with warren as the main connector over |protocol|; warren
    must exit 0 on SIGTERM too."""

    def __init__(self, base, env, origin, protocol, ready_timeout=30, before_connector=None):
        self.protocol = protocol
        super().__init__(base, env, origin, ready_timeout, before_connector)

    def start_main(self, service_args, env):
        return WarrenConnector(self.procs, self.edge, "main", service_args, env, self.protocol,
                               f"warren-{self.protocol}")

    def must_exit_0(self):
        return [("warren", self.main.p), ("edge", self.edge.p)]


@pytest.fixture(scope="module")
def tunnel(base, env, origin):
    t = Tunnel(base, env, origin, "http2")
    yield t
    t.close()


def test_warren_registers_over_http2(tunnel):
    assert tunnel.main.p.wait_output("protocol=http2", 10) is not None, tunnel.main.p.tail()
    assert tunnel.edge.p.wait_output("protocol=http2 datagrams=none", 10) is not None
