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

#define P "warren_edge_"

struct wr_edge_metrics {
  wr_metricsd *d;
  wr_edge_metrics_config cfg;
  double start_time;  /* Unix seconds */
  uint64_t start_ns;  /* uv_hrtime at start: uptime never jumps with the wall clock */
  int ready;
  char reason[128];   /* why not ready */
  wr_owner pings; /* /ready pings on the store thread; its release frees m */
};

/* ---- the page as one table ------------------------------------------------
 * /metrics is the families below in order. Each row names where its figures
 * come from (a subsystem's stats struct, NULL when the subsystem does not
 * run: its rows are left out) and how they are written. */

/* The figures' sources. */
enum src {
  S_EDGE,    /* the wr_edge_metrics itself: always */
  S_TS,      /* wr_tunnel_server_stats: always */
  S_QUIC,    /* wr_quic_endpoint_stats of the tunnel port */
  S_VISITOR, /* wr_visitor_stats of the HTTP front */
  S_HTTPS,   /* wr_visitor_stats of the HTTPS front */
  S_TRAFFIC, /* per-tunnel traffic: the wr_tunnel_stats */
  S_DNS,     /* wr_dns_stats */
  S_ACME,    /* wr_acme_stats */
  S_API,     /* wr_api_stats */
  S_LOGIN,   /* wr_login_stats */
  S_ACCESS,  /* wr_access_stats */
  S_ROUTER,  /* wr_router_stats */
  S_TCP,     /* wr_tcpstack_stats of the private TCP stack */
  S_TCPGLUE, /* wr_private_tcp_stats: its glue to data streams */
  S_WG,      /* wr_wg_stats: the WireGuard protocol's counters */
  S_WGI,     /* wr_wg_ingress_stats: the ingress's own */
  S_CLUSTER, /* wr_cluster_stats */
  S_PEER,    /* wr_peer_stats */
  S_NOTIFY,  /* wr_db_notify_stats */
  NSRC
};

/* How a row is written. */
enum kind {
  K_COUNTER, /* one unlabelled sample: the uint64_t at |off| */
  K_GAUGE,
  K_CLASS,   /* by status class: the uint64_t[6] at |off| (by_class) */
  K_BY_KIND, /* by private-traffic kind: the uint64_t[WR_ROUTER_NKINDS] at |off|, a |type| */
  K_LABEL,   /* split by |label|: the |series|, a |type| */
  K_FN,      /* |fn| writes it (shapes of their own, fields that are not uint64_t) */
};

/* One series of a K_LABEL row: the label's value and the uint64_t at |off|. */
typedef struct series {
  const char *value;
  size_t off;
} series;

typedef struct family {
  enum src src;
  enum kind kind;
  const char *name, *help;
  size_t off;
  const char *type, *label;
  const series *series; /* up to a NULL value */
  void (*fn)(wr_edge_metrics *m, const void *const src[NSRC], wr_buf *b);
} family;

/* offsetof a uint64_t field (or of the first of a uint64_t array): another
 * type does not compile (distinct pointer types compared). */
#define U64(st, f) (offsetof(st, f) + 0 * sizeof(&((st *)0)->f == (uint64_t *)0))
#define U64S(st, f) (offsetof(st, f) + 0 * sizeof(&((st *)0)->f[0] == (uint64_t *)0))

#define COUNTER(s, st, f, n, h) {.src = s, .kind = K_COUNTER, .name = P n, .help = h, .off = U64(st, f)}
#define GAUGE(s, st, f, n, h) {.src = s, .kind = K_GAUGE, .name = P n, .help = h, .off = U64(st, f)}
#define CLASS(s, st, f, n, h) {.src = s, .kind = K_CLASS, .name = P n, .help = h, .off = U64S(st, f)}
#define BY_KIND(f, t, n, h) \
  {.src = S_ROUTER, .kind = K_BY_KIND, .name = P n, .help = h, .off = U64S(wr_router_stats, f), .type = t}
#define LABEL(s, n, t, h, l, ...) \
  {.src = s, .kind = K_LABEL, .name = P n, .help = h, .type = t, .label = l, .series = (const series[]){__VA_ARGS__, {NULL, 0}}}
#define FN(s, f) {.src = s, .kind = K_FN, .fn = f}
#define SERIES(st, v, f) {v, U64(st, f)}

static void build_info(wr_edge_metrics *m, const void *const src[NSRC], wr_buf *b) {
  wr_prom_family(b, P "build_info", "gauge", "Build and version information");
  wr_prom_u64(b, P "build_info",
              (const char *const[]){"revision", WR_GIT_REV, "version", WR_VERSION, NULL}, 1);
  wr_prom_family(b, P "uptime_seconds", "gauge", "Seconds since the edge started");
  wr_prom_f64(b, P "uptime_seconds", NULL, (double)(uv_hrtime() - m->start_ns) / 1e9);
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
static void connections(wr_edge_metrics *m, const void *const src[NSRC], wr_buf *b) {
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
static void tunnel_traffic(wr_edge_metrics *m, const void *const src[NSRC], wr_buf *b) {
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
  const wr_tunnel_counters *rows = wr_tunnel_stats_all(src[S_TRAFFIC], &n);
  if (n > cap) n = cap;
  for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
    wr_prom_family(b, fams[f].name, "counter", fams[f].help);
    for (size_t i = 0; i < n; i++)
      wr_prom_u64(b, fams[f].name, (const char *const[]){"tunnel_id", rows[i].tunnel_id, NULL},
                  *(const uint64_t *)((const char *)&rows[i] + fams[f].off));
  }
}

/* ---- the rows that are not uint64_t fields or have shapes of their own ---- */

static void quic_open(wr_edge_metrics *m, const void *const src[NSRC], wr_buf *b) {
  const wr_quic_endpoint_stats *q = src[S_QUIC];
  wr_prom_gauge(b, P "quic_connections", "QUIC connections on the tunnel port", q->conns);
  wr_prom_gauge(b, P "quic_half_open", "QUIC connections whose handshake has not completed",
                q->half_open);
}

static void dns_rcodes(wr_edge_metrics *m, const void *const src[NSRC], wr_buf *b) {
  static const char *const rcodes[6] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"};
  const wr_dns_stats *d = src[S_DNS];
  wr_prom_family(b, P "dns_responses_total", "counter", "DNS responses sent, by rcode");
  for (int i = 0; i < 6; i++)
    wr_prom_u64(b, P "dns_responses_total", (const char *const[]){"rcode", rcodes[i], NULL},
                d->rcodes[i]);
  wr_prom_u64(b, P "dns_responses_total", (const char *const[]){"rcode", "other", NULL},
              d->rcode_other);
}

static void login_waiting(wr_edge_metrics *m, const void *const src[NSRC], wr_buf *b) {
  const wr_login_stats *l = src[S_LOGIN];
  wr_prom_gauge(b, P "login_checks_waiting", "Password checks waiting for a turn", l->waiting);
}

static void router_drops(wr_edge_metrics *m, const void *const src[NSRC], wr_buf *b) {
  const wr_router_stats *s = src[S_ROUTER];
  wr_prom_family(b, P "private_drops_total", "counter",
                 "Private-network packets and datagrams dropped, by reason");
  for (int d = 0; d < WR_ROUTER_NDROPS; d++)
    wr_prom_u64(b, P "private_drops_total",
                (const char *const[]){"reason", wr_router_drop_name(d), NULL}, s->drops[d]);
}

static void wireguard_drops(wr_edge_metrics *m, const void *const src[NSRC], wr_buf *b) {
  const wr_wg_stats *w = src[S_WG];
  const wr_wg_ingress_stats *s = src[S_WGI];
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

static void notify_up(wr_edge_metrics *m, const void *const src[NSRC], wr_buf *b) {
  const wr_db_notify_stats *s = src[S_NOTIFY];
  wr_prom_gauge(b, P "store_notifications_up", "1 while listening for the store's notifications",
                (uint64_t)s->up);
}

/* ---- the table -------------------------------------------------------------- */

#define TS wr_tunnel_server_stats
#define QS wr_quic_endpoint_stats
#define VS wr_visitor_stats
#define TCP wr_tcpstack_stats
#define GLUE wr_private_tcp_stats

static const family families[] = {
    FN(S_EDGE, build_info),
    FN(S_EDGE, connections),
    COUNTER(S_TS, TS, registrations, "registrations_total",
            "registerConnection calls that registered a connection"),
    COUNTER(S_TS, TS, refusals, "registrations_refused_total",
            "registerConnection calls that were refused (bad credentials, deleted tunnel, limits, "
            "malformed)"),
    COUNTER(S_TS, TS, unregistrations, "unregistrations_total",
            "Registered connections taken out of service (unregistered, lost, replaced, tunnel deleted)"),
    COUNTER(S_TS, TS, unregistered_refused, "unregistered_refused_total",
            "QUIC connections closed after the handshake: too many were waiting to register"),
    COUNTER(S_TS, TS, unregistered_closed, "unregistered_closed_total",
            "QUIC connections that ended without registering (deadline passed, refused, or gone)"),

    FN(S_QUIC, quic_open),
    COUNTER(S_QUIC, QS, accepted, "quic_accepted_total", "QUIC connections created from a client Initial"),
    COUNTER(S_QUIC, QS, retries, "quic_retries_total", "Retry packets sent (address validation under load)"),
    COUNTER(S_QUIC, QS, dropped, "quic_dropped_total", "New-connection Initials dropped at the half-open caps"),
    COUNTER(S_QUIC, QS, bad_tokens, "quic_bad_tokens_total", "Initials with an invalid or expired Retry token"),
    COUNTER(S_QUIC, QS, resets, "quic_stateless_resets_total", "Stateless Resets sent"),
    COUNTER(S_QUIC, QS, rate_limited, "quic_rate_limited_total",
            "Stateless answers (reset, Retry, close) withheld by their rate limits"),

    GAUGE(S_VISITOR, VS, active_conns, "visitor_connections", "Open visitor connections"),
    COUNTER(S_VISITOR, VS, conns_accepted, "visitor_connections_accepted_total", "Visitor connections accepted"),
    COUNTER(S_VISITOR, VS, conns_refused, "visitor_connections_refused_total",
            "Visitor connections closed at once by a connection limit (all kinds)"),
    LABEL(S_VISITOR, "visitor_refusals_total", "counter", "Visitor connections refused, by limit", "limit",
          SERIES(VS, "per_source", refused_per_source), SERIES(VS, "reserve", refused_reserve),
          SERIES(VS, "full", refused_full)),
    COUNTER(S_VISITOR, VS, evicted_idle, "visitor_evicted_idle_total",
            "Idle keep-alive visitor connections closed to make room for others"),
    COUNTER(S_VISITOR, VS, rate_limited, "visitor_rate_limited_total",
            "Visitor requests answered 429 because their source was over its rate"),
    COUNTER(S_VISITOR, VS, rate_limited_closed, "visitor_rate_limited_closed_total",
            "Visitor connections closed for sending on after a 429"),
    GAUGE(S_VISITOR, VS, sources, "visitor_sources", "Visitor source addresses tracked for the per-source limits"),
    COUNTER(S_VISITOR, VS, requests, "visitor_requests_total", "Visitor requests answered"),
    CLASS(S_VISITOR, VS, responses_by_class, "visitor_responses_total", "Visitor responses by status class"),
    COUNTER(S_VISITOR, VS, no_route, "visitor_no_route_total", "Visitor requests for a hostname with no route (404)"),
    COUNTER(S_VISITOR, VS, no_connector, "visitor_no_connector_total",
            "Visitor requests whose tunnel had no live connector connection (502)"),
    COUNTER(S_VISITOR, VS, bytes_in, "visitor_received_bytes_total", "Bytes read from visitors"),
    COUNTER(S_VISITOR, VS, bytes_out, "visitor_sent_bytes_total", "Bytes written to visitors"),
    GAUGE(S_VISITOR, VS, active_streams, "data_streams", "Open data streams to connectors (one per proxied request)"),

    /* The HTTPS front (edge/visitor_tls.c): its own connections, requests and
     * handshakes; the visitor_* families above are the plain HTTP front's. */
    GAUGE(S_HTTPS, VS, active_conns, "https_connections", "Open HTTPS visitor connections"),
    COUNTER(S_HTTPS, VS, requests, "https_requests_total", "HTTPS visitor requests answered"),
    CLASS(S_HTTPS, VS, responses_by_class, "https_responses_total", "HTTPS visitor responses by status class"),
    LABEL(S_HTTPS, "tls_handshakes_total", "counter",
          "TLS handshakes on the HTTPS front, by result (refused: no or unknown SNI)", "result",
          SERIES(VS, "ok", tls_handshakes), SERIES(VS, "refused", tls_refused), SERIES(VS, "failed", tls_failed)),
    COUNTER(S_HTTPS, VS, h2_conns, "https_h2_connections_total", "HTTPS connections that chose HTTP/2 (ALPN h2)"),
    COUNTER(S_HTTPS, VS, h2_streams, "https_h2_streams_total", "Requests received over HTTP/2"),
    LABEL(S_HTTPS, "https_h2_goaways_total", "counter",
          "HTTP/2 connections ended by the edge with an error GOAWAY, by reason "
          "(enhance_your_calm: a flood or abuse limit; error: a protocol violation)",
          "reason", SERIES(VS, "enhance_your_calm", h2_goaway_calm), SERIES(VS, "error", h2_goaway_error)),
    COUNTER(S_HTTPS, VS, h3_conns, "https_h3_connections_total",
            "HTTP/3 (QUIC) connections that completed the handshake"),
    COUNTER(S_HTTPS, VS, h3_streams, "https_h3_streams_total", "Requests received over HTTP/3"),
    COUNTER(S_HTTPS, VS, h3_closed_error, "https_h3_errors_total",
            "HTTP/3 connections closed by the edge with an error (protocol, QPACK or an abuse limit)"),

    FN(S_TRAFFIC, tunnel_traffic),

    LABEL(S_DNS, "dns_queries_total", "counter", "DNS queries received, by transport", "transport",
          SERIES(wr_dns_stats, "udp", queries_udp), SERIES(wr_dns_stats, "tcp", queries_tcp)),
    FN(S_DNS, dns_rcodes),
    COUNTER(S_DNS, wr_dns_stats, truncated, "dns_truncated_total", "UDP responses sent truncated (TC set)"),
    COUNTER(S_DNS, wr_dns_stats, dropped, "dns_dropped_total",
            "DNS queries not answered (malformed, a response, or the send buffer was full)"),
    GAUGE(S_DNS, wr_dns_stats, tcp_conns, "dns_tcp_connections", "Open DNS TCP connections"),

    COUNTER(S_ACME, wr_acme_stats, issued, "acme_certificates_total",
            "Certificates obtained from the ACME CA (renewals included)"),
    COUNTER(S_ACME, wr_acme_stats, failed, "acme_failures_total", "ACME orders that failed (each is retried later)"),
    COUNTER(S_ACME, wr_acme_stats, challenges, "acme_challenge_answers_total",
            "HTTP-01 and DNS-01 answers given to the CA"),

    CLASS(S_API, wr_api_stats, responses_by_class, "api_responses_total",
          "REST API (/client/v4) answers by status class"),
    COUNTER(S_API, wr_api_stats, tokens_throttled, "api_tokens_throttled_total",
            "API requests answered 429 because their source sent too many invalid tokens"),

    LABEL(S_LOGIN, "login_signins_total", "counter", "Sign-ins on the login page, by result", "result",
          SERIES(wr_login_stats, "success", signins_ok), SERIES(wr_login_stats, "failure", signins_failed)),
    COUNTER(S_LOGIN, wr_login_stats, checks, "login_password_checks_total", "Password checks run (PBKDF2)"),
    COUNTER(S_LOGIN, wr_login_stats, throttled, "login_throttled_total",
            "Sign-ins refused by the failure throttle, without a password check"),
    COUNTER(S_LOGIN, wr_login_stats, refused, "login_queue_refused_total",
            "Sign-ins refused because their source had too many checks waiting"),
    COUNTER(S_LOGIN, wr_login_stats, locks, "login_lockouts_total", "Lockouts begun (of an email or of a source)"),
    FN(S_LOGIN, login_waiting),

    LABEL(S_ACCESS, "access_decisions_total", "counter", "Access gate decisions on covered hosts, by verdict",
          "verdict", SERIES(wr_access_stats, "allow", allowed), SERIES(wr_access_stats, "bypass", bypassed),
          SERIES(wr_access_stats, "deny", denied), SERIES(wr_access_stats, "sign_in", login_needed),
          SERIES(wr_access_stats, "error", errors)),
    LABEL(S_ACCESS, "access_signins_total", "counter", "Access sign-ins, by result", "result",
          SERIES(wr_access_stats, "success", signins_ok), SERIES(wr_access_stats, "failure", signins_failed)),

    /* Private traffic: one series per flow kind (icmp, udp, tcp) or drop
     * reason, a fixed label set. */
    BY_KIND(flows, "gauge", "private_flows", "Open private-network flows, by kind"),
    BY_KIND(flows_total, "counter", "private_flows_total", "Private-network flows opened, by kind"),
    BY_KIND(packets_in, "counter", "private_packets_in_total",
            "Packets from private-network clients towards connectors, by kind"),
    BY_KIND(bytes_in, "counter", "private_bytes_in_total",
            "Bytes from private-network clients towards connectors, by kind"),
    BY_KIND(packets_out, "counter", "private_packets_out_total",
            "Packets from connectors to private-network clients, by kind"),
    BY_KIND(bytes_out, "counter", "private_bytes_out_total",
            "Bytes from connectors to private-network clients, by kind"),
    FN(S_ROUTER, router_drops),
    COUNTER(S_ROUTER, wr_router_stats, unreachables, "private_unreachables_total",
            "ICMP destination unreachable sent by the edge"),
    GAUGE(S_ROUTER, wr_router_stats, routes, "private_routes", "IP routes in the router's tables"),
    LABEL(S_ROUTER, "private_datagrams_total", "counter",
          "QUIC datagrams exchanged with connectors, by datagram version", "version",
          {"2", U64S(wr_router_stats, datagrams)},
          {"3", U64S(wr_router_stats, datagrams) + sizeof(uint64_t)}),

    /* The TCP stack behind the router's TCP hook and its glue to data streams:
     * the router counts TCP packets in by kind; these say what became of them. */
    GAUGE(S_TCP, TCP, flows_active, "private_tcp_connections",
          "Private-network TCP connections open in the edge's stack"),
    COUNTER(S_TCP, TCP, flows_total, "private_tcp_connections_total",
            "Private-network TCP connections accepted (client SYNs)"),
    COUNTER(S_TCP, TCP, refused, "private_tcp_refused_total",
            "Client SYNs answered with RST: no data stream could be opened"),
    COUNTER(S_TCP, TCP, limited, "private_tcp_limited_total", "Client SYNs over the TCP connection caps"),
    COUNTER(S_TCP, TCP, malformed, "private_tcp_malformed_total",
            "TCP packets dropped as malformed (header, checksum, fragment)"),
    COUNTER(S_TCP, TCP, foreign, "private_tcp_foreign_total",
            "TCP packets of a known connection arriving from another ingress"),
    COUNTER(S_TCP, TCP, packets_in, "private_tcp_segments_in_total", "TCP segments from clients"),
    COUNTER(S_TCP, TCP, packets_out, "private_tcp_segments_out_total", "TCP segments to clients"),
    COUNTER(S_TCP, TCP, bytes_in, "private_tcp_payload_in_bytes_total", "TCP payload bytes from clients"),
    COUNTER(S_TCP, TCP, bytes_out, "private_tcp_payload_out_bytes_total", "TCP payload bytes to clients"),
    COUNTER(S_TCP, TCP, out_dropped, "private_tcp_output_dropped_total",
            "TCP segments the stack produced with no ingress to take them"),
    COUNTER(S_TCPGLUE, GLUE, streams_opened, "private_tcp_streams_total",
            "Data streams opened for private TCP connections"),
    COUNTER(S_TCPGLUE, GLUE, connector_refused, "private_tcp_connector_refused_total",
            "Private TCP connections the connector could not dial (error ConnectResponse)"),
    COUNTER(S_TCPGLUE, GLUE, connector_resets, "private_tcp_connector_resets_total",
            "Private TCP streams the connector reset or lost before their end"),
    COUNTER(S_TCPGLUE, GLUE, bad_responses, "private_tcp_bad_responses_total",
            "Private TCP streams with a malformed or missing response head"),
    COUNTER(S_TCPGLUE, GLUE, client_resets, "private_tcp_client_resets_total",
            "Private TCP connections the client reset or stopped answering"),

    /* The WireGuard ingress: the protocol's counters and the ingress's own. */
    GAUGE(S_WGI, wr_wg_ingress_stats, devices, "wireguard_devices", "Active WireGuard devices (peers)"),
    GAUGE(S_WGI, wr_wg_ingress_stats, devices_online, "wireguard_devices_online",
          "WireGuard devices with a session made in the last 180 seconds"),
    COUNTER(S_WG, wr_wg_stats, handshakes, "wireguard_handshakes_total",
            "WireGuard sessions made (either side initiating)"),
    COUNTER(S_WG, wr_wg_stats, initiations_received, "wireguard_initiations_received_total",
            "Handshake initiations that passed mac1 (and mac2 under load)"),
    COUNTER(S_WG, wr_wg_stats, initiations_sent, "wireguard_initiations_sent_total",
            "Handshake initiations the edge sent"),
    COUNTER(S_WG, wr_wg_stats, cookies_sent, "wireguard_cookies_sent_total",
            "Cookie replies sent instead of a handshake (under load)"),
    COUNTER(S_WG, wr_wg_stats, rx_bytes, "wireguard_rx_bytes_total", "Authenticated transport bytes from devices"),
    COUNTER(S_WG, wr_wg_stats, tx_bytes, "wireguard_tx_bytes_total", "Transport bytes sent to devices"),
    COUNTER(S_WG, wr_wg_stats, rx_packets, "wireguard_rx_packets_total",
            "Authenticated transport packets from devices"),
    COUNTER(S_WG, wr_wg_stats, tx_packets, "wireguard_tx_packets_total", "Transport packets sent to devices"),
    COUNTER(S_WGI, wr_wg_ingress_stats, reloads, "wireguard_reloads_total", "Device list reloads from the store"),
    FN(S_WG, wireguard_drops),

    /* Edges sharing the store: heartbeats, forwarding, notifications. */
    COUNTER(S_CLUSTER, wr_cluster_stats, beats, "cluster_heartbeats_total", "Heartbeats written to the shared store"),
    COUNTER(S_CLUSTER, wr_cluster_stats, beat_failures, "cluster_heartbeat_failures_total",
            "Heartbeats that failed (store unreachable)"),
    COUNTER(S_CLUSTER, wr_cluster_stats, marked_down, "cluster_edges_marked_down_total",
            "Other edges put last because a forward to them failed"),
    COUNTER(S_CLUSTER, wr_cluster_stats, expired, "cluster_edges_expired_total",
            "Other edges this edge expired after their heartbeat stopped"),
    COUNTER(S_CLUSTER, wr_cluster_stats, remote_closed, "cluster_connections_closed_total",
            "Connections closed here because the store had them closed"),
    GAUGE(S_CLUSTER, wr_cluster_stats, peers, "cluster_peers", "Other live edges holding tunnel connections"),
    GAUGE(S_CLUSTER, wr_cluster_stats, remote_tunnels, "cluster_remote_tunnels",
          "Tunnels reachable only through other edges"),
    COUNTER(S_PEER, wr_peer_stats, forwarded, "forwarded_streams_total", "Streams forwarded to another edge"),
    COUNTER(S_PEER, wr_peer_stats, forward_failed, "forwarded_failed_total", "Forwarded streams no edge could take"),
    COUNTER(S_PEER, wr_peer_stats, retried, "forwarded_retried_total",
            "Forwarded streams sent again to another edge (unreachable, refused, or lost before "
            "the answer)"),
    COUNTER(S_PEER, wr_peer_stats, reused, "forwarded_reused_total",
            "Forwarded streams that ran on a connection kept from an earlier one"),
    COUNTER(S_PEER, wr_peer_stats, served, "peer_streams_total", "Streams other edges forwarded here, opened"),
    COUNTER(S_PEER, wr_peer_stats, refused, "peer_refused_total",
            "Streams other edges forwarded here, refused (no live connection here)"),
    COUNTER(S_NOTIFY, wr_db_notify_stats, received, "store_notifications_total",
            "Change notifications received from the store"),
    FN(S_NOTIFY, notify_up),
};

static const char *const class_names[6] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};

/* The uint64_t at |off| in |s|. */
static uint64_t u64_at(const void *s, size_t off) { return *(const uint64_t *)((const char *)s + off); }

static void render_family(const family *f, wr_edge_metrics *m, const void *const src[NSRC], wr_buf *b) {
  const void *s = src[f->src];
  switch (f->kind) {
  case K_COUNTER:
    wr_prom_counter(b, f->name, f->help, u64_at(s, f->off));
    break;
  case K_GAUGE:
    wr_prom_gauge(b, f->name, f->help, u64_at(s, f->off));
    break;
  case K_CLASS: /* every class written (zeros too): rate() over a class works from the first scrape */
    wr_prom_family(b, f->name, "counter", f->help);
    for (int c = 1; c <= 5; c++)
      wr_prom_u64(b, f->name, (const char *const[]){"code_class", class_names[c], NULL},
                  u64_at(s, f->off + (size_t)c * sizeof(uint64_t)));
    break;
  case K_BY_KIND:
    wr_prom_family(b, f->name, f->type, f->help);
    for (int k = 0; k < WR_ROUTER_NKINDS; k++)
      wr_prom_u64(b, f->name, (const char *const[]){"kind", wr_router_kind_name(k), NULL},
                  u64_at(s, f->off + (size_t)k * sizeof(uint64_t)));
    break;
  case K_LABEL: {
    wr_prom_series v[8];
    size_t n = 0;
    for (; n < WR_PROM_NSERIES(v) && f->series[n].value; n++)
      v[n] = (wr_prom_series){f->series[n].value, u64_at(s, f->series[n].off)};
    wr_prom_by_label(b, f->name, f->type, f->help, f->label, v, n);
    break;
  }
  case K_FN:
    f->fn(m, src, b);
    break;
  }
}

/* ---- the whole page --------------------------------------------------------- */

void wr_edge_metrics_render(wr_edge_metrics *m, wr_buf *b) {
  const wr_edge_metrics_config *c = &m->cfg;
  wr_quic_endpoint_stats q;
  wr_login_stats l;
  const void *src[NSRC] = {[S_EDGE] = m, [S_TS] = wr_tunnel_server_get_stats(c->ts)};
  if (c->ep) {
    wr_quic_endpoint_get_stats(c->ep, &q);
    src[S_QUIC] = &q;
  }
  if (c->visitor) src[S_VISITOR] = wr_visitor_get_stats(c->visitor);
  if (c->https) src[S_HTTPS] = wr_visitor_get_stats(c->https);
  src[S_TRAFFIC] = c->tunnel_stats;
  if (c->dns) src[S_DNS] = wr_dns_get_stats(c->dns);
  if (c->acme) src[S_ACME] = wr_acme_get_stats(c->acme);
  if (c->api) src[S_API] = wr_api_get_stats(c->api);
  if (c->login) {
    wr_login_get_stats(c->login, &l);
    src[S_LOGIN] = &l;
  }
  if (c->access) src[S_ACCESS] = wr_access_get_stats(c->access);
  if (c->router) src[S_ROUTER] = wr_router_get_stats(c->router);
  if (c->private_tcp) {
    src[S_TCP] = wr_private_tcp_stack_stats(c->private_tcp);
    src[S_TCPGLUE] = wr_private_tcp_get_stats(c->private_tcp);
  }
  if (c->wireguard) {
    src[S_WG] = wr_wg_ingress_wg_stats(c->wireguard);
    src[S_WGI] = wr_wg_ingress_get_stats(c->wireguard);
  }
  if (c->cluster) src[S_CLUSTER] = wr_cluster_get_stats(c->cluster);
  if (c->peer) src[S_PEER] = wr_peer_get_stats(c->peer);
  if (c->notify) src[S_NOTIFY] = wr_db_notify_get_stats(c->notify);

  for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
    if (src[families[i].src]) render_family(&families[i], m, src, b);
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
static void metrics_release(wr_owner *o) { free(WR_OWNER_OBJ(o, wr_edge_metrics, pings)); }

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
  wr_owner_init(&m->pings, metrics_release);
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
  wr_owner_close(&m->pings); /* frees it, now or after the last ping */
}
