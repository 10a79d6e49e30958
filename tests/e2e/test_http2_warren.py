"""warren's connector over HTTP/2 against warren-edge: `--protocol http2`
runs the HTTP cases of test_http2.py (GET with Host kept, 1 MiB POST,
chunked upload, 100 MB download, WebSocket echo, 404 from the connector,
unknown host, origin refused, many requests on one connection).
test_http2_fallback.py has `--protocol auto`."""
import pytest

import test_tunnel as tt
from conftest import ProcSet, free_port
from test_http2 import (test_404_from_the_connector_passes_through,  # noqa: F401
                        test_chunked_upload_of_unknown_length, test_get_keeps_request_line_and_host,
                        test_large_download_with_checksum, test_many_requests_share_the_connection,
                        test_origin_refused_is_502, test_post_1mib,
                        test_unknown_host_is_404_from_the_edge, test_websocket_echo)

base = tt.base
env = tt.env
origin = tt.origin


class WarrenConnector(tt.Connector):
    """`warren tunnel run` with a chosen --protocol."""

    def __init__(self, procs, edge, tunnel, service_args, env, protocol, name):
        self.metrics = free_port()
        self.args = [tt.CONNECTOR, "tunnel", "--no-autoupdate",
                     "--edge", f"127.0.0.1:{edge.udp}", "--cacert", edge.ca,
                     "--protocol", protocol, "--credentials-file", edge.creds[tunnel],
                     "--metrics", f"127.0.0.1:{self.metrics}", "--grace-period", "5s",
                     *service_args, "run", edge.ids[tunnel]]
        self.p = procs.start(self.args, name=name, env=env, stop_timeout=30)


class Tunnel:
    def __init__(self, base, env, origin, protocol, ready_timeout=30, before_connector=None):
        self.procs = ProcSet(base)
        try:
            self.edge = tt.Edge(base, self.procs, env)
            self.edge.udp = free_port()
            if before_connector:
                before_connector(self.edge.udp)
            self.edge.start()
            self.port = self.edge.http
            self.main = WarrenConnector(self.procs, self.edge, "main",
                                        ["--config", tt.main_config(base, origin)], env,
                                        protocol, f"warren-{protocol}")
            self.main.wait_ready(ready_timeout)
        except BaseException:
            self.procs.close()
            raise

    def close(self):
        try:
            rc = self.main.p.stop(30)
            assert rc == 0, f"warren exited {rc}:\n{self.main.p.tail()}"
            rc = self.edge.p.stop(30)
            assert rc == 0, f"edge exited {rc}:\n{self.edge.p.tail()}"
        finally:
            self.procs.close()


@pytest.fixture(scope="module")
def tunnel(base, env, origin):
    t = Tunnel(base, env, origin, "http2")
    yield t
    t.close()


def test_warren_registers_over_http2(tunnel):
    assert tunnel.main.p.wait_output("protocol=http2", 10) is not None, tunnel.main.p.tail()
    assert tunnel.edge.p.wait_output("protocol=http2 datagrams=none", 10) is not None
