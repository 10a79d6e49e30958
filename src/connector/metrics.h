/* The connector's local HTTP endpoints on --metrics (protocol.md 9):
 *   /metrics      Prometheus text, cloudflared's metric names where they
 *                 apply, plus process_* figures read from /proc;
 *   /ready        200 {"status":200,"readyConnections":N,"connectorId":"…"}
 *                 once a connection is registered, 503 (same shape) before;
 *   /healthcheck  "OK\n".
 * Served by net/httpd on the connector's loop. */
#ifndef WR_CONNECTOR_METRICS_H
#define WR_CONNECTOR_METRICS_H
#include <stddef.h>

#include <uv.h>

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
/* "127.0.0.1:PORT" actually bound. */
const char *wr_metrics_server_addr(const wr_metrics_server *m);
void wr_metrics_server_free(wr_metrics_server *m);

#endif
