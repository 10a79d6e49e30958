/* The edge's --metrics server; see edge_metrics.h. */
#include "edge/edge_metrics.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge/access.h"
#include "edge/acme.h"
#include "edge/store_async.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/prom.h"
#include "net/metricsd.h"

#ifndef WR_VERSION
#define WR_VERSION "0.0.0"
#endif
#ifndef WR_GIT_REV
#define WR_GIT_REV "unknown"
#endif

#define P "warren_edge_"

struct wr_edge_metrics {
  wr_metricsd *d;
  wr_edge_metrics_config cfg;
  double start_time;  /* Unix seconds */
  uint64_t start_ns;  /* uv_hrtime at start: uptime never jumps with the wall clock */
  int ready;
  char reason[128];   /* why not ready */
  wr_store_async_owner pings; /* /ready pings on the store thread; its release frees m */
};

static const char *const class_names[6] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};

/* One counter family of responses by status class, every class written
 * (zeros too) so that rate() over a class works from the first scrape. */
static void by_class(wr_buf *b, const char *name, const char *help, const uint64_t counts[6]) {
  wr_prom_family(b, name, "counter", help);
  for (int c = 1; c <= 5; c++)
    wr_prom_u64(b, name, (const char *const[]){"code_class", class_names[c], NULL}, counts[c]);
}

/* ---- connector connections per tunnel ------------------------------------ */

typedef struct tunnel_ids {
  char (*ids)[WR_STORE_UUID_LEN + 1];
  size_t n, cap;
} tunnel_ids;

static void collect_tunnel(void *user, const wr_tunnel_conn_info *info) {
  tunnel_ids *t = user;
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 64;
    t->ids = wr_xrealloc(t->ids, t->cap * sizeof(*t->ids));
  }
  memcpy(t->ids[t->n++], info->tunnel_id, sizeof(*t->ids));
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

/* The registered-connection gauges: the total, the number of tunnels with
 * at least one, and one series per tunnel for the first |cap| tunnels in
 * ID order (a stable choice, so a series does not come and go between
 * scrapes while the set of tunnels stays the same). */
/* Private traffic: one series per flow kind (icmp, udp, tcp) or drop
 * reason, a fixed label set. */
static void by_kind(wr_buf *b, const char *name, const char *type, const char *help,
                    const uint64_t v[WR_ROUTER_NKINDS]) {
  wr_prom_family(b, name, type, help);
  for (int k = 0; k < WR_ROUTER_NKINDS; k++)
    wr_prom_u64(b, name, (const char *const[]){"kind", wr_router_kind_name(k), NULL}, v[k]);
}

static void render_router(const wr_router_stats *s, wr_buf *b) {
  by_kind(b, P "private_flows", "gauge", "Open private-network flows, by kind", s->flows);
  by_kind(b, P "private_flows_total", "counter", "Private-network flows opened, by kind",
          s->flows_total);
  by_kind(b, P "private_packets_in_total", "counter",
          "Packets from private-network clients towards connectors, by kind", s->packets_in);
  by_kind(b, P "private_bytes_in_total", "counter",
          "Bytes from private-network clients towards connectors, by kind", s->bytes_in);
  by_kind(b, P "private_packets_out_total", "counter",
          "Packets from connectors to private-network clients, by kind", s->packets_out);
  by_kind(b, P "private_bytes_out_total", "counter",
          "Bytes from connectors to private-network clients, by kind", s->bytes_out);
  wr_prom_family(b, P "private_drops_total", "counter",
                 "Private-network packets and datagrams dropped, by reason");
  for (int d = 0; d < WR_ROUTER_NDROPS; d++)
    wr_prom_u64(b, P "private_drops_total",
                (const char *const[]){"reason", wr_router_drop_name(d), NULL}, s->drops[d]);
  wr_prom_counter(b, P "private_unreachables_total",
                  "ICMP destination unreachable sent by the edge", s->unreachables);
  wr_prom_gauge(b, P "private_routes", "IP routes in the router's tables", s->routes);
  const wr_prom_series versions[] = {{"2", s->datagrams[0]}, {"3", s->datagrams[1]}};
  wr_prom_by_label(b, P "private_datagrams_total", "counter",
                   "QUIC datagrams exchanged with connectors, by datagram version", "version",
                   versions, WR_PROM_NSERIES(versions));
}

/* The TCP stack behind the router's TCP hook and its glue to data streams:
 * the router counts TCP packets in by kind; these say what became of them. */
static void render_private_tcp(const wr_tcpstack_stats *t, const wr_private_tcp_stats *g,
                               wr_buf *b) {
  wr_prom_gauge(b, P "private_tcp_connections",
                "Private-network TCP connections open in the edge's stack", t->flows_active);
  wr_prom_counter(b, P "private_tcp_connections_total",
                  "Private-network TCP connections accepted (client SYNs)", t->flows_total);
  wr_prom_counter(b, P "private_tcp_refused_total",
                  "Client SYNs answered with RST: no data stream could be opened", t->refused);
  wr_prom_counter(b, P "private_tcp_limited_total", "Client SYNs over the TCP connection caps",
                  t->limited);
  wr_prom_counter(b, P "private_tcp_malformed_total",
                  "TCP packets dropped as malformed (header, checksum, fragment)", t->malformed);
  wr_prom_counter(b, P "private_tcp_foreign_total",
                  "TCP packets of a known connection arriving from another ingress", t->foreign);
  wr_prom_counter(b, P "private_tcp_segments_in_total", "TCP segments from clients", t->packets_in);
  wr_prom_counter(b, P "private_tcp_segments_out_total", "TCP segments to clients", t->packets_out);
  wr_prom_counter(b, P "private_tcp_payload_in_bytes_total", "TCP payload bytes from clients",
                  t->bytes_in);
  wr_prom_counter(b, P "private_tcp_payload_out_bytes_total", "TCP payload bytes to clients",
                  t->bytes_out);
  wr_prom_counter(b, P "private_tcp_output_dropped_total",
                  "TCP segments the stack produced with no ingress to take them", t->out_dropped);
  wr_prom_counter(b, P "private_tcp_streams_total",
                  "Data streams opened for private TCP connections", g->streams_opened);
  wr_prom_counter(b, P "private_tcp_connector_refused_total",
                  "Private TCP connections the connector could not dial (error ConnectResponse)",
                  g->connector_refused);
  wr_prom_counter(b, P "private_tcp_connector_resets_total",
                  "Private TCP streams the connector reset or lost before their end",
                  g->connector_resets);
  wr_prom_counter(b, P "private_tcp_bad_responses_total",
                  "Private TCP streams with a malformed or missing response head",
                  g->bad_responses);
  wr_prom_counter(b, P "private_tcp_client_resets_total",
                  "Private TCP connections the client reset or stopped answering",
                  g->client_resets);
}

/* The WireGuard ingress: the protocol's counters and the ingress's own. */
/* Edges sharing the store: heartbeats, forwarding, notifications. */
static void render_cluster(const wr_edge_metrics_config *c, wr_buf *b) {
  if (c->cluster) {
    const wr_cluster_stats *s = wr_cluster_get_stats(c->cluster);
    wr_prom_counter(b, P "cluster_heartbeats_total", "Heartbeats written to the shared store",
                    s->beats);
    wr_prom_counter(b, P "cluster_heartbeat_failures_total",
                    "Heartbeats that failed (store unreachable)", s->beat_failures);
    wr_prom_counter(b, P "cluster_edges_marked_down_total",
                    "Other edges put last because a forward to them failed", s->marked_down);
    wr_prom_counter(b, P "cluster_edges_expired_total",
                    "Other edges this edge expired after their heartbeat stopped", s->expired);
    wr_prom_counter(b, P "cluster_connections_closed_total",
                    "Connections closed here because the store had them closed", s->remote_closed);
    wr_prom_gauge(b, P "cluster_peers", "Other live edges holding tunnel connections", s->peers);
    wr_prom_gauge(b, P "cluster_remote_tunnels", "Tunnels reachable only through other edges",
                  s->remote_tunnels);
  }
  if (c->peer) {
    const wr_peer_stats *s = wr_peer_get_stats(c->peer);
    wr_prom_counter(b, P "forwarded_streams_total", "Streams forwarded to another edge",
                    s->forwarded);
    wr_prom_counter(b, P "forwarded_failed_total", "Forwarded streams no edge could take",
                    s->forward_failed);
    wr_prom_counter(
        b, P "forwarded_retried_total",
        "Forwarded streams sent again to another edge (unreachable, refused, or lost before "
        "the answer)",
        s->retried);
    wr_prom_counter(b, P "forwarded_reused_total",
                    "Forwarded streams that ran on a connection kept from an earlier one",
                    s->reused);
    wr_prom_counter(b, P "peer_streams_total", "Streams other edges forwarded here, opened",
                    s->served);
    wr_prom_counter(b, P "peer_refused_total",
                    "Streams other edges forwarded here, refused (no live connection here)",
                    s->refused);
  }
  if (c->notify) {
    const wr_db_notify_stats *s = wr_db_notify_get_stats(c->notify);
    wr_prom_counter(b, P "store_notifications_total",
                    "Change notifications received from the store", s->received);
    wr_prom_gauge(b, P "store_notifications_up", "1 while listening for the store's notifications",
                  (uint64_t)s->up);
  }
}

static void render_wireguard(wr_wg_ingress *g, wr_buf *b) {
  const wr_wg_stats *w = wr_wg_ingress_wg_stats(g);
  const wr_wg_ingress_stats *s = wr_wg_ingress_get_stats(g);
  wr_prom_gauge(b, P "wireguard_devices", "Active WireGuard devices (peers)", s->devices);
  wr_prom_gauge(b, P "wireguard_devices_online",
                "WireGuard devices with a session made in the last 180 seconds", s->devices_online);
  wr_prom_counter(b, P "wireguard_handshakes_total",
                  "WireGuard sessions made (either side initiating)", w->handshakes);
  wr_prom_counter(b, P "wireguard_initiations_received_total",
                  "Handshake initiations that passed mac1 (and mac2 under load)",
                  w->initiations_received);
  wr_prom_counter(b, P "wireguard_initiations_sent_total", "Handshake initiations the edge sent",
                  w->initiations_sent);
  wr_prom_counter(b, P "wireguard_cookies_sent_total",
                  "Cookie replies sent instead of a handshake (under load)", w->cookies_sent);
  wr_prom_counter(b, P "wireguard_rx_bytes_total", "Authenticated transport bytes from devices",
                  w->rx_bytes);
  wr_prom_counter(b, P "wireguard_tx_bytes_total", "Transport bytes sent to devices", w->tx_bytes);
  wr_prom_counter(b, P "wireguard_rx_packets_total", "Authenticated transport packets from devices",
                  w->rx_packets);
  wr_prom_counter(b, P "wireguard_tx_packets_total", "Transport packets sent to devices",
                  w->tx_packets);
  wr_prom_counter(b, P "wireguard_reloads_total", "Device list reloads from the store", s->reloads);
  wr_prom_family(b, P "wireguard_drops_total", "counter",
                 "WireGuard datagrams and packets dropped, by reason");
  for (int d = 1; d < WR_WG_NDROPS; d++)
    wr_prom_u64(b, P "wireguard_drops_total",
                (const char *const[]){"reason", wr_wg_drop_name((enum wr_wg_drop)d), NULL},
                w->drops[d]);
  for (int d = 0; d < WR_WG_INGRESS_NDROPS; d++)
    wr_prom_u64(b, P "wireguard_drops_total",
                (const char *const[]){"reason",
                                      wr_wg_ingress_drop_name((enum wr_wg_ingress_drop)d), NULL},
                s->drops[d]);
  wr_prom_u64(b, P "wireguard_drops_total", (const char *const[]){"reason", "staged", NULL},
              w->staged_dropped);
}

static void render_connections(wr_edge_metrics *m, wr_buf *b) {
  tunnel_ids t = {0};
  size_t distinct = 0, cap = m->cfg.max_tunnel_series;
  wr_tunnel_server_each(m->cfg.ts, collect_tunnel, &t);
  if (t.n) qsort(t.ids, t.n, sizeof(*t.ids), cmp_id);
  for (size_t i = 0; i < t.n; i++) distinct += i == 0 || strcmp(t.ids[i], t.ids[i - 1]) != 0;

  wr_prom_gauge(b, P "connector_connections", "Registered connector connections (all tunnels)",
                t.n);
  wr_prom_gauge(b, P "tunnels_connected",
                "Tunnels with at least one registered connector connection", distinct);
  char help[160];
  snprintf(help, sizeof(help),
           "Registered connector connections per tunnel (the first %zu tunnels by ID; "
           "warren_edge_tunnels_connected counts them all)",
           cap);
  wr_prom_family(b, P "tunnel_connector_connections", "gauge", help);
  for (size_t i = 0, shown = 0; i < t.n && shown < cap;) {
    size_t j = i;
    while (j < t.n && strcmp(t.ids[j], t.ids[i]) == 0) j++;
    wr_prom_u64(b, P "tunnel_connector_connections",
                (const char *const[]){"tunnel_id", t.ids[i], NULL}, j - i);
    shown++;
    i = j;
  }
  free(t.ids);
}

/* Visitor traffic per tunnel (edge/tunnel_stats.h), for the first |cap|
 * tunnels the edge counted. */
/* The HTTPS front (edge/visitor_tls.c): its own connections, requests and
 * handshakes; the visitor_* families above are the plain HTTP front's. */
static void render_https(wr_buf *b, const wr_visitor_stats *v) {
  wr_prom_gauge(b, P "https_connections", "Open HTTPS visitor connections", v->active_conns);
  wr_prom_counter(b, P "https_requests_total", "HTTPS visitor requests answered", v->requests);
  by_class(b, P "https_responses_total", "HTTPS visitor responses by status class",
           v->responses_by_class);
  const wr_prom_series handshakes[] = {
      {"ok", v->tls_handshakes}, {"refused", v->tls_refused}, {"failed", v->tls_failed}};
  wr_prom_by_label(b, P "tls_handshakes_total", "counter",
                   "TLS handshakes on the HTTPS front, by result (refused: no or unknown SNI)",
                   "result", handshakes, WR_PROM_NSERIES(handshakes));
  wr_prom_counter(b, P "https_h2_connections_total",
                  "HTTPS connections that chose HTTP/2 (ALPN h2)", v->h2_conns);
  wr_prom_counter(b, P "https_h2_streams_total", "Requests received over HTTP/2", v->h2_streams);
  const wr_prom_series goaways[] = {{"enhance_your_calm", v->h2_goaway_calm},
                                    {"error", v->h2_goaway_error}};
  wr_prom_by_label(b, P "https_h2_goaways_total", "counter",
                   "HTTP/2 connections ended by the edge with an error GOAWAY, by reason "
                   "(enhance_your_calm: a flood or abuse limit; error: a protocol violation)",
                   "reason", goaways, WR_PROM_NSERIES(goaways));
  wr_prom_counter(b, P "https_h3_connections_total",
                  "HTTP/3 (QUIC) connections that completed the handshake", v->h3_conns);
  wr_prom_counter(b, P "https_h3_streams_total", "Requests received over HTTP/3", v->h3_streams);
  wr_prom_counter(
      b, P "https_h3_errors_total",
      "HTTP/3 connections closed by the edge with an error (protocol, QPACK or an abuse limit)",
      v->h3_closed_error);
}

static void render_tunnel_traffic(wr_edge_metrics *m, wr_buf *b) {
  static const struct {
    const char *name, *help;
    size_t off;
  } fams[] = {
      {P "tunnel_requests_total", "Visitor requests answered, per tunnel", offsetof(wr_tunnel_counters, requests)},
      {P "tunnel_errors_total", "Visitor requests answered 5xx or broken, per tunnel", offsetof(wr_tunnel_counters, errors)},
      {P "tunnel_request_bytes_total", "Request body bytes sent up the tunnel", offsetof(wr_tunnel_counters, bytes_in)},
      {P "tunnel_response_bytes_total", "Response body bytes sent to visitors", offsetof(wr_tunnel_counters, bytes_out)},
      {P "tunnel_request_milliseconds_total", "Sum of visitor request durations, per tunnel",
       offsetof(wr_tunnel_counters, latency_ms_sum)},
  };
  size_t n = 0, cap = m->cfg.max_tunnel_series;
  const wr_tunnel_counters *rows = wr_tunnel_stats_all(m->cfg.tunnel_stats, &n);
  if (n > cap) n = cap;
  for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
    wr_prom_family(b, fams[f].name, "counter", fams[f].help);
    for (size_t i = 0; i < n; i++)
      wr_prom_u64(b, fams[f].name, (const char *const[]){"tunnel_id", rows[i].tunnel_id, NULL},
                  *(const uint64_t *)((const char *)&rows[i] + fams[f].off));
  }
}

/* ---- the whole page --------------------------------------------------------- */

void wr_edge_metrics_render(wr_edge_metrics *m, wr_buf *b) {
  const wr_tunnel_server_stats *ts = wr_tunnel_server_get_stats(m->cfg.ts);

  wr_prom_family(b, P "build_info", "gauge", "Build and version information");
  wr_prom_u64(b, P "build_info",
              (const char *const[]){"revision", WR_GIT_REV, "version", WR_VERSION, NULL}, 1);
  wr_prom_family(b, P "uptime_seconds", "gauge", "Seconds since the edge started");
  wr_prom_f64(b, P "uptime_seconds", NULL, (double)(uv_hrtime() - m->start_ns) / 1e9);

  render_connections(m, b);
  wr_prom_counter(b, P "registrations_total",
                  "registerConnection calls that registered a connection", ts->registrations);
  wr_prom_counter(
      b, P "registrations_refused_total",
      "registerConnection calls that were refused (bad credentials, deleted tunnel, limits, "
      "malformed)",
      ts->refusals);
  wr_prom_counter(
      b, P "unregistrations_total",
      "Registered connections taken out of service (unregistered, lost, replaced, tunnel deleted)",
      ts->unregistrations);
  wr_prom_counter(b, P "unregistered_refused_total",
                  "QUIC connections closed after the handshake: too many were waiting to register",
                  ts->unregistered_refused);
  wr_prom_counter(
      b, P "unregistered_closed_total",
      "QUIC connections that ended without registering (deadline passed, refused, or gone)",
      ts->unregistered_closed);

  if (m->cfg.ep) {
    wr_quic_endpoint_stats q;
    wr_quic_endpoint_get_stats(m->cfg.ep, &q);
    wr_prom_gauge(b, P "quic_connections", "QUIC connections on the tunnel port", q.conns);
    wr_prom_gauge(b, P "quic_half_open", "QUIC connections whose handshake has not completed",
                  q.half_open);
    wr_prom_counter(b, P "quic_accepted_total", "QUIC connections created from a client Initial",
                    q.accepted);
    wr_prom_counter(b, P "quic_retries_total", "Retry packets sent (address validation under load)",
                    q.retries);
    wr_prom_counter(b, P "quic_dropped_total",
                    "New-connection Initials dropped at the half-open caps", q.dropped);
    wr_prom_counter(b, P "quic_bad_tokens_total", "Initials with an invalid or expired Retry token",
                    q.bad_tokens);
    wr_prom_counter(b, P "quic_stateless_resets_total", "Stateless Resets sent", q.resets);
    wr_prom_counter(b, P "quic_rate_limited_total",
                    "Stateless answers (reset, Retry, close) withheld by their rate limits",
                    q.rate_limited);
  }

  if (m->cfg.visitor) {
    const wr_visitor_stats *v = wr_visitor_get_stats(m->cfg.visitor);
    wr_prom_gauge(b, P "visitor_connections", "Open visitor connections", v->active_conns);
    wr_prom_counter(b, P "visitor_connections_accepted_total", "Visitor connections accepted",
                    v->conns_accepted);
    wr_prom_counter(b, P "visitor_connections_refused_total",
                    "Visitor connections closed at once by a connection limit (all kinds)",
                    v->conns_refused);
    const wr_prom_series refusals[] = {{"per_source", v->refused_per_source},
                                       {"reserve", v->refused_reserve},
                                       {"full", v->refused_full}};
    wr_prom_by_label(b, P "visitor_refusals_total", "counter",
                     "Visitor connections refused, by limit", "limit", refusals,
                     WR_PROM_NSERIES(refusals));
    wr_prom_counter(b, P "visitor_evicted_idle_total",
                    "Idle keep-alive visitor connections closed to make room for others",
                    v->evicted_idle);
    wr_prom_counter(b, P "visitor_rate_limited_total",
                    "Visitor requests answered 429 because their source was over its rate",
                    v->rate_limited);
    wr_prom_counter(b, P "visitor_rate_limited_closed_total",
                    "Visitor connections closed for sending on after a 429",
                    v->rate_limited_closed);
    wr_prom_gauge(b, P "visitor_sources",
                  "Visitor source addresses tracked for the per-source limits", v->sources);
    wr_prom_counter(b, P "visitor_requests_total", "Visitor requests answered", v->requests);
    by_class(b, P "visitor_responses_total", "Visitor responses by status class",
             v->responses_by_class);
    wr_prom_counter(b, P "visitor_no_route_total",
                    "Visitor requests for a hostname with no route (404)", v->no_route);
    wr_prom_counter(b, P "visitor_no_connector_total",
                    "Visitor requests whose tunnel had no live connector connection (502)",
                    v->no_connector);
    wr_prom_counter(b, P "visitor_received_bytes_total", "Bytes read from visitors", v->bytes_in);
    wr_prom_counter(b, P "visitor_sent_bytes_total", "Bytes written to visitors", v->bytes_out);
    wr_prom_gauge(b, P "data_streams", "Open data streams to connectors (one per proxied request)",
                  v->active_streams);
  }
  if (m->cfg.https) render_https(b, wr_visitor_get_stats(m->cfg.https));
  if (m->cfg.tunnel_stats) render_tunnel_traffic(m, b);

  if (m->cfg.dns) {
    static const char *const rcodes[6] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"};
    const wr_dns_stats *d = wr_dns_get_stats(m->cfg.dns);
    const wr_prom_series transports[] = {{"udp", d->queries_udp}, {"tcp", d->queries_tcp}};
    wr_prom_by_label(b, P "dns_queries_total", "counter", "DNS queries received, by transport",
                     "transport", transports, WR_PROM_NSERIES(transports));
    wr_prom_family(b, P "dns_responses_total", "counter", "DNS responses sent, by rcode");
    for (int i = 0; i < 6; i++)
      wr_prom_u64(b, P "dns_responses_total", (const char *const[]){"rcode", rcodes[i], NULL},
                  d->rcodes[i]);
    wr_prom_u64(b, P "dns_responses_total", (const char *const[]){"rcode", "other", NULL},
                d->rcode_other);
    wr_prom_counter(b, P "dns_truncated_total", "UDP responses sent truncated (TC set)",
                    d->truncated);
    wr_prom_counter(b, P "dns_dropped_total",
                    "DNS queries not answered (malformed, a response, or the send buffer was full)",
                    d->dropped);
    wr_prom_gauge(b, P "dns_tcp_connections", "Open DNS TCP connections", d->tcp_conns);
  }

  if (m->cfg.acme) {
    const wr_acme_stats *s = wr_acme_get_stats(m->cfg.acme);
    wr_prom_counter(b, P "acme_certificates_total",
                    "Certificates obtained from the ACME CA (renewals included)", s->issued);
    wr_prom_counter(b, P "acme_failures_total", "ACME orders that failed (each is retried later)",
                    s->failed);
    wr_prom_counter(b, P "acme_challenge_answers_total",
                    "HTTP-01 and DNS-01 answers given to the CA", s->challenges);
  }

  if (m->cfg.api) {
    const wr_api_stats *a = wr_api_get_stats(m->cfg.api);
    by_class(b, P "api_responses_total", "REST API (/client/v4) answers by status class",
             a->responses_by_class);
    wr_prom_counter(b, P "api_tokens_throttled_total",
                    "API requests answered 429 because their source sent too many invalid tokens",
                    a->tokens_throttled);
  }

  if (m->cfg.login) {
    wr_login_stats l;
    wr_login_get_stats(m->cfg.login, &l);
    const wr_prom_series signins[] = {{"success", l.signins_ok}, {"failure", l.signins_failed}};
    wr_prom_by_label(b, P "login_signins_total", "counter", "Sign-ins on the login page, by result",
                     "result", signins, WR_PROM_NSERIES(signins));
    wr_prom_counter(b, P "login_password_checks_total", "Password checks run (PBKDF2)", l.checks);
    wr_prom_counter(b, P "login_throttled_total",
                    "Sign-ins refused by the failure throttle, without a password check",
                    l.throttled);
    wr_prom_counter(b, P "login_queue_refused_total",
                    "Sign-ins refused because their source had too many checks waiting", l.refused);
    wr_prom_counter(b, P "login_lockouts_total", "Lockouts begun (of an email or of a source)",
                    l.locks);
    wr_prom_gauge(b, P "login_checks_waiting", "Password checks waiting for a turn", l.waiting);
  }

  if (m->cfg.access) {
    const wr_access_stats *x = wr_access_get_stats(m->cfg.access);
    const wr_prom_series verdicts[] = {{"allow", x->allowed},
                                       {"bypass", x->bypassed},
                                       {"deny", x->denied},
                                       {"sign_in", x->login_needed},
                                       {"error", x->errors}};
    wr_prom_by_label(b, P "access_decisions_total", "counter",
                     "Access gate decisions on covered hosts, by verdict", "verdict", verdicts,
                     WR_PROM_NSERIES(verdicts));
    const wr_prom_series signins[] = {{"success", x->signins_ok}, {"failure", x->signins_failed}};
    wr_prom_by_label(b, P "access_signins_total", "counter", "Access sign-ins, by result", "result",
                     signins, WR_PROM_NSERIES(signins));
  }

  if (m->cfg.router) render_router(wr_router_get_stats(m->cfg.router), b);
  if (m->cfg.private_tcp)
    render_private_tcp(wr_private_tcp_stack_stats(m->cfg.private_tcp),
                       wr_private_tcp_get_stats(m->cfg.private_tcp), b);
  if (m->cfg.wireguard) render_wireguard(m->cfg.wireguard, b);
  render_cluster(&m->cfg, b);

  wr_prom_process(b, m->start_time);
}


/* Ready while the edge says it serves and the store answers (|store_err|,
 * the ping's error, is NULL); the reason tells an operator which of the
 * two it is. */
static int ready_body(wr_edge_metrics *m, wr_buf *b, const char *store_err) {
  size_t conns = wr_tunnel_server_count(m->cfg.ts, NULL);
  char reason[WR_STORE_ERRMSG_MAX + 32] = "";
  if (!m->ready)
    snprintf(reason, sizeof(reason), "%s", m->reason);
  else if (store_err)
    snprintf(reason, sizeof(reason), "store unreachable: %s", store_err);
  int status = reason[0] ? 503 : 200;
  wr_buf_printf(b, "{\"status\":%d,\"registeredConnections\":%zu", status, conns);
  if (reason[0]) {
    /* Store messages may quote anything: keep the JSON valid. */
    wr_buf_append_str(b, ",\"reason\":\"");
    for (const char *p = reason; *p; p++) {
      unsigned char ch = (unsigned char)*p;
      if (ch == '"' || ch == '\\') wr_buf_printf(b, "\\%c", ch);
      else if (ch < 0x20) wr_buf_printf(b, "\\u%04x", ch);
      else wr_buf_append(b, p, 1);
    }
    wr_buf_append_str(b, "\"");
  }
  wr_buf_append_str(b, "}\n");
  return status;
}

int wr_edge_metrics_ready(wr_edge_metrics *m, wr_buf *b) {
  int ping = m->ready ? wr_store_ping(m->cfg.store) : WR_OK;
  return ready_body(m, b, ping == WR_OK ? NULL : wr_store_errmsg(m->cfg.store));
}

/* /ready with a store thread: the ping runs there, the answer on the loop. */
typedef struct ready_job {
  wr_edge_metrics *m;
  wr_httpd_req *req;
  int rv;
  char err[WR_STORE_ERRMSG_MAX];
} ready_job;

static void ready_answer(wr_edge_metrics *m, wr_httpd_req *req, const char *store_err) {
  wr_buf b;
  wr_buf_init(&b, WR_METRICSD_READY_MAX, NULL);
  int status = ready_body(m, &b, store_err);
  wr_metricsd_ready_done(req, status, &b);
  wr_buf_free(&b);
}

static void ping_run(wr_store *s, void *arg) {
  ready_job *j = arg;
  j->rv = wr_store_ping(s);
  if (j->rv != WR_OK) snprintf(j->err, sizeof(j->err), "%s", wr_store_errmsg(s));
}

static void ping_done(void *arg, int status) {
  ready_job *j = arg;
  wr_edge_metrics *m = j->m;
  if (m->pings.closing) { /* the server is gone: the answer only frees the request */
    wr_buf b;
    wr_buf_init(&b, WR_METRICSD_READY_MAX, NULL);
    wr_metricsd_ready_done(j->req, 503, &b);
    wr_buf_free(&b);
  } else {
    ready_answer(m, j->req, status != WR_OK ? "the store thread is stopping" : j->rv != WR_OK ? j->err : NULL);
  }
  free(j);
}

static void ready_start_cb(void *user, wr_httpd_req *req) {
  wr_edge_metrics *m = user;
  if (!m->ready) {
    ready_answer(m, req, NULL);
    return;
  }
  ready_job *j = wr_xcalloc(1, sizeof(*j));
  j->m = m;
  j->req = req;
  if (wr_store_async_owner_submit(m->cfg.async, &m->pings, ping_run, ping_done, j) != WR_OK) {
    free(j);
    ready_answer(m, req, "the store thread is busy");
  }
}

/* wr_edge_metrics_free ran and no ping is out any more. */
static void metrics_release(wr_store_async_owner *o) { free((char *)o - offsetof(wr_edge_metrics, pings)); }

static void render_cb(void *user, wr_buf *b) { wr_edge_metrics_render(user, b); }
static int ready_cb(void *user, wr_buf *b) { return wr_edge_metrics_ready(user, b); }

int wr_edge_metrics_start(uv_loop_t *loop, const char *addr, const wr_edge_metrics_config *cfg,
                          wr_edge_metrics **out, char *err, size_t errlen) {
  *out = NULL;
  if (!cfg || !cfg->store || !cfg->ts) {
    snprintf(err, errlen, "metrics: the store and the tunnel server are required");
    return WR_ERR_INVAL;
  }
  wr_edge_metrics *m = wr_xcalloc(1, sizeof(*m));
  wr_store_async_owner_init(&m->pings, metrics_release);
  m->cfg = *cfg;
  if (!m->cfg.max_tunnel_series) m->cfg.max_tunnel_series = WR_EDGE_METRICS_MAX_TUNNEL_SERIES;
  m->start_time = (double)time(NULL);
  m->start_ns = uv_hrtime();
  snprintf(m->reason, sizeof(m->reason), "starting");
  wr_metricsd_handlers h = {.render = render_cb, .ready = ready_cb, .user = m};
  if (cfg->async) h.ready_start = ready_start_cb;
  int rv = wr_metricsd_start(loop, addr, &h, &m->d, err, errlen);
  if (rv != WR_OK) {
    free(m);
    return rv;
  }
  *out = m;
  return WR_OK;
}

void wr_edge_metrics_set_ready(wr_edge_metrics *m, int ready, const char *reason) {
  if (!m) return;
  m->ready = ready;
  snprintf(m->reason, sizeof(m->reason), "%s", ready ? "" : reason ? reason : "not serving");
}

const char *wr_edge_metrics_addr(const wr_edge_metrics *m) { return wr_metricsd_addr(m->d); }

void wr_edge_metrics_free(wr_edge_metrics *m) {
  if (!m) return;
  wr_metricsd_free(m->d);
  m->d = NULL;
  wr_store_async_owner_close(&m->pings); /* frees it, now or after the last ping */
}
