/* The connector's metrics server; see metrics.h. */
#include "connector/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/prom.h"
#include "net/metricsd.h"

struct wr_metrics_server {
  wr_metricsd *d;
  wr_proxy *proxy;
  wr_supervisor *sup;
  wr_dgram_mux *mux;
  wr_icmp_proxy *icmp;
  wr_uuid connector_id;
  double start_time;
};

/* UDP sessions under cloudflared's names (both gauges there), then what
 * only warren counts: datagrams dropped, ICMP flows. */
static void render_datagrams(const wr_metrics_server *m, wr_buf *b) {
  if (m->mux) {
    const wr_dgram_mux_stats *ds = wr_dgram_mux_get_stats(m->mux);
    const wr_udp_sessions_stats *us = wr_udp_sessions_get_stats(wr_dgram_mux_sessions(m->mux));
    wr_prom_gauge(b, "cloudflared_udp_active_sessions",
                  "Concurrent count of UDP sessions that are being proxied to any origin",
                  us->active);
    wr_prom_gauge(b, "cloudflared_udp_total_sessions",
                  "Total count of UDP sessions that have been proxied to any origin",
                  us->registered);
    wr_prom_counter(b, "warren_datagrams_received_total", "QUIC datagrams received from the edge",
                    ds->received);
    const wr_prom_series drops[] = {{"malformed", ds->malformed},
                                    {"unexpected_type", ds->unexpected},
                                    {"unknown_session", us->unknown_session},
                                    {"too_big", us->too_big},
                                    {"send_refused", us->send_dropped + ds->icmp_send_dropped},
                                    {"icmp_disabled", ds->icmp_dropped}};
    wr_prom_by_label(b, "warren_datagrams_dropped_total", "counter", "Datagrams dropped, by reason",
                     "reason", drops, WR_PROM_NSERIES(drops));
  }
  if (m->icmp) {
    wr_icmp_proxy_stats is;
    wr_icmp_proxy_stats_get(m->icmp, &is);
    wr_prom_gauge(b, "warren_icmp_active_flows", "ICMP echo flows with an open socket",
                  is.flows_active);
    wr_prom_counter(b, "warren_icmp_requests_total", "ICMP packets received through the tunnel",
                    is.requests);
    wr_prom_counter(b, "warren_icmp_replies_total",
                    "ICMP echo replies sent back through the tunnel", is.replies);
    wr_prom_counter(b, "warren_icmp_time_exceeded_total",
                    "ICMP time exceeded answered by the connector (TTL 1)", is.time_exceeded);
  }
}

static void render(void *user, wr_buf *b) {
  wr_metrics_server *m = user;
  const wr_proxy_stats *st = wr_proxy_get_stats(m->proxy);
  unsigned ready = m->sup ? wr_supervisor_ready(m->sup) : 0;

  wr_prom_family(b, "build_info", "gauge", "Build and version information");
  wr_prom_u64(b, "build_info",
              (const char *const[]){"goversion", "none", "revision", WR_GIT_REV, "type", "warren",
                                    "version", WR_VERSION, NULL},
              1);
  wr_prom_gauge(b, "cloudflared_tunnel_ha_connections", "Number of active ha connections", ready);
  wr_prom_counter(b, "cloudflared_tunnel_total_requests",
                  "Amount of requests proxied through all the tunnels", st->total_requests);
  wr_prom_gauge(b, "cloudflared_tunnel_concurrent_requests_per_tunnel",
                "Concurrent requests proxied through each tunnel", st->concurrent_requests);
  wr_prom_counter(b, "cloudflared_tunnel_request_errors",
                  "Amount of errors due to proxying request", st->request_errors);
  wr_prom_family(b, "cloudflared_tunnel_response_by_code", "counter",
                 "Count of responses by HTTP status code class");
  for (int c = 1; c <= 5; c++) {
    char cls[4] = {(char)('0' + c), 'x', 'x', '\0'};
    if (st->responses_by_code[c])
      wr_prom_u64(b, "cloudflared_tunnel_response_by_code", (const char *const[]){"status_code", cls, NULL},
                  st->responses_by_code[c]);
  }
  wr_prom_gauge(b, "cloudflared_tcp_active_sessions",
                "Concurrent count of TCP sessions that are being proxied to any origin",
                st->tcp_active);
  wr_prom_counter(b, "cloudflared_tcp_total_sessions",
                  "Total count of TCP sessions that have been proxied to any origin",
                  st->tcp_total);
  wr_prom_family(b, "cloudflared_tunnel_tunnel_register_success", "counter",
                 "Count of successful tunnel registrations");
  wr_prom_u64(b, "cloudflared_tunnel_tunnel_register_success",
              (const char *const[]){"rpcName", "registerConnection", NULL},
              m->sup ? wr_supervisor_registrations(m->sup) : 0);
  wr_prom_family(b, "cloudflared_tunnel_server_locations", "gauge",
                 "Where each tunnel is connected to. 1 means current location, 0 means previous locations.");
  for (unsigned i = 0; m->sup && i < wr_supervisor_nslots(m->sup); i++) {
    const char *loc = "";
    const char *id = wr_supervisor_conn_id(m->sup, i, &loc);
    char idx[16];
    snprintf(idx, sizeof(idx), "%u", i);
    if (*id)
      wr_prom_u64(b, "cloudflared_tunnel_server_locations",
                  (const char *const[]){"connection_id", idx, "edge_location", loc, NULL}, 1);
  }
  render_datagrams(m, b);
  wr_prom_process(b, m->start_time);
}

static int ready(void *user, wr_buf *b) {
  wr_metrics_server *m = user;
  unsigned n = m->sup ? wr_supervisor_ready(m->sup) : 0;
  int status = n ? 200 : 503;
  char id[WR_UUID_STR_LEN + 1];
  wr_uuid_format(&m->connector_id, id);
  wr_buf_printf(b, "{\"status\":%d,\"readyConnections\":%u,\"connectorId\":\"%s\"}\n", status, n,
                id);
  return status;
}

int wr_metrics_server_start(uv_loop_t *loop, const char *addr, wr_proxy *proxy,
                            const wr_uuid *connector_id, wr_metrics_server **out, char *err,
                            size_t errlen) {
  *out = NULL;
  wr_metrics_server *m = wr_xcalloc(1, sizeof(*m));
  m->proxy = proxy;
  m->connector_id = *connector_id;
  m->start_time = (double)time(NULL);
  wr_metricsd_handlers h = {.render = render, .ready = ready, .user = m};
  int rv = wr_metricsd_start(loop, addr, &h, &m->d, err, errlen);
  if (rv != WR_OK) {
    free(m);
    return rv;
  }
  *out = m;
  return WR_OK;
}

void wr_metrics_server_set_datagrams(wr_metrics_server *m, wr_dgram_mux *mux, wr_icmp_proxy *icmp) {
  m->mux = mux;
  m->icmp = icmp;
}

void wr_metrics_server_set_supervisor(wr_metrics_server *m, wr_supervisor *sup) { m->sup = sup; }

const char *wr_metrics_server_addr(const wr_metrics_server *m) { return wr_metricsd_addr(m->d); }

void wr_metrics_server_free(wr_metrics_server *m) {
  if (!m) return;
  wr_metricsd_free(m->d);
  free(m);
}
