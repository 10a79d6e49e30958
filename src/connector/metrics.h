/* The connector's local HTTP endpoints on --metrics (protocol.md 9):
 *   /metrics      Prometheus text, cloudflared's metric names where they
 *                 apply (cloudflared_udp_* for UDP sessions), warren_*
 *                 for what cloudflared does not export (datagram drops,
 *                 ICMP flows), plus process_* figures read from /proc;
 *   /ready        200 {"status":200,"readyConnections":N,"connectorId":"…"}
 *                 once a connection is registered, 503 (same shape) before;
 *   /healthcheck  "OK\n".
 * Served by net/httpd on the connector's loop. */
#ifndef WR_CONNECTOR_METRICS_H
#define WR_CONNECTOR_METRICS_H
#include <stddef.h>

#include <uv.h>

#include "connector/datagram_mux.h"
#include "connector/icmp_proxy.h"
#include "connector/proxy.h"
#include "connector/supervisor.h"
#include "lib/encoding.h"

typedef struct wr_metrics_server wr_metrics_server;

/* Listens on |addr| ("host:port", host may be a name such as localhost;
 * port 0 picks one). The supervisor may be set later (it is created after
 * the metrics server so that /ready answers 503 during start-up).
 * Returns WR_OK, WR_ERR_CONFIG (bad address; |err| says why) or WR_ERR_IO. */
int wr_metrics_server_start(uv_loop_t *loop, const char *addr, wr_proxy *proxy,
                            const wr_uuid *connector_id, wr_metrics_server **out, char *err,
                            size_t errlen);
void wr_metrics_server_set_supervisor(wr_metrics_server *m, wr_supervisor *sup);
/* The datagram side to export (either may be NULL: its metrics are then
 * left out). Borrowed; unset (NULL, NULL) before freeing them. */
void wr_metrics_server_set_datagrams(wr_metrics_server *m, wr_dgram_mux *mux, wr_icmp_proxy *icmp);
/* "127.0.0.1:PORT" actually bound. */
const char *wr_metrics_server_addr(const wr_metrics_server *m);
void wr_metrics_server_free(wr_metrics_server *m);

#endif
