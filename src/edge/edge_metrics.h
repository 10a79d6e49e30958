/* The edge's local status endpoints on `warren-edge run --metrics ADDR`,
 * served like the connector's (net/metricsd.h):
 *   /metrics      Prometheus text 0.0.4, every name prefixed warren_edge_
 *                 (plus the standard process_* figures): build info,
 *                 uptime, registered connector connections (total, and per
 *                 tunnel for at most max_tunnel_series tunnels),
 *                 registrations, unregistrations and refusals, visitor
 *                 connections, requests by status class, bytes, open data
 *                 streams, and, for the subsystems that run, DNS queries by
 *                 rcode, API answers by status class and login sign-ins,
 *                 and private traffic (flows by kind, packets, bytes,
 *                 drops by reason, ICMP unreachables sent, routes), and
 *                 WireGuard (handshakes, cookies, devices and devices
 *                 online, bytes, drops by reason), and visitor traffic per
 *                 tunnel (requests, errors, bytes, summed durations; as
 *                 many tunnels as the connection series).
 *                 Every figure is a counter the subsystems keep (their
 *                 *_get_stats), read when scraped.
 *   /ready        200 {"status":200,"registeredConnections":N} while the
 *                 edge serves (wr_edge_metrics_set_ready) and its store
 *                 answers; otherwise 503 with the same fields and a
 *                 "reason".
 *   /healthcheck  200 "OK".
 * Everything runs on the edge's loop thread, except /ready's store ping
 * with a store thread (cfg->async). */
#ifndef WR_EDGE_EDGE_METRICS_H
#define WR_EDGE_EDGE_METRICS_H
#include <stddef.h>

#include <uv.h>

#include "edge/api.h"
#include "edge/cluster.h"
#include "edge/db_notify.h"
#include "edge/peer.h"
#include "edge/dns.h"
#include "edge/login.h"
#include "edge/private_tcp.h"
#include "edge/router.h"
#include "edge/store.h"
#include "edge/tunnel_server.h"
#include "edge/wg_ingress.h"
#include "edge/tunnel_stats.h"
#include "edge/visitor.h"
#include "lib/buf.h"
#include "net/quic.h"

/* Per-tunnel connection series are capped: the label set must stay bounded
 * however many tunnels connect. The total is always exported. */
#define WR_EDGE_METRICS_MAX_TUNNEL_SERIES 100

typedef struct wr_edge_metrics wr_edge_metrics;

/* The subsystems whose counters are exported; borrowed, and each must
 * outlive the metrics server (free it first). A NULL optional one is left
 * out of /metrics (no families for a subsystem that does not run). */
typedef struct wr_edge_metrics_config {
  wr_store *store;          /* required: /ready reads it (without |async|) */
  /* Optional: /ready pings the store on this store thread, and answers
   * when the ping is back, so a slow store does not stall the loop. */
  struct wr_store_async *async;
  wr_tunnel_server *ts;     /* required */
  wr_quic_endpoint *ep;     /* the tunnel port; may be NULL */
  wr_visitor *visitor;      /* --http-listen; may be NULL */
  wr_visitor *https;        /* --https-listen; may be NULL */
  wr_dns *dns;              /* --dns-listen; may be NULL */
  struct wr_acme *acme;     /* --acme-directory; may be NULL */
  wr_api *api;              /* --api-listen; may be NULL */
  wr_login *login;          /* --api-listen; may be NULL */
  wr_router *router;        /* private traffic; may be NULL */
  wr_private_tcp *private_tcp; /* its TCP stack; may be NULL */
  wr_wg_ingress *wireguard; /* --wireguard-listen; may be NULL */
  struct wr_access *access; /* the Access gate; may be NULL */
  size_t max_tunnel_series; /* 0: WR_EDGE_METRICS_MAX_TUNNEL_SERIES */
  wr_tunnel_stats *tunnel_stats; /* per-tunnel visitor traffic; may be NULL */
  /* Edges sharing a PostgreSQL store; all three NULL otherwise. */
  wr_cluster *cluster;
  wr_peer *peer;
  wr_db_notify *notify;
} wr_edge_metrics_config;

/* Listens on |addr| (HOST:PORT; a name such as localhost is resolved here,
 * so call it at start-up). /ready answers 503 "starting" until
 * wr_edge_metrics_set_ready. Returns WR_OK, WR_ERR_INVAL (a required source
 * missing), WR_ERR_CONFIG (bad address) or WR_ERR_IO (cannot listen), with
 * the reason in |err|. */
int wr_edge_metrics_start(uv_loop_t *loop, const char *addr, const wr_edge_metrics_config *cfg,
                          wr_edge_metrics **out, char *err, size_t errlen);
/* Whether the edge serves: |ready| 1 once every listener is up, 0 with a
 * |reason| (copied; e.g. "shutting down") when it stops. */
void wr_edge_metrics_set_ready(wr_edge_metrics *m, int ready, const char *reason);
/* "127.0.0.1:PORT" actually bound. */
const char *wr_edge_metrics_addr(const wr_edge_metrics *m);
/* Stops serving; the memory goes once libuv released the handles and the
 * /ready pings in flight are back (keep running the loop, and free the
 * store thread after this). NULL is a no-op. */
void wr_edge_metrics_free(wr_edge_metrics *m);

/* What the server answers, exposed for tests: the /metrics text, and the
 * /ready body (returning its status, 200 or 503; the store is pinged on
 * the caller's thread), appended to |out|. */
void wr_edge_metrics_render(wr_edge_metrics *m, wr_buf *out);
int wr_edge_metrics_ready(wr_edge_metrics *m, wr_buf *out);

#endif
