/* The edge's visitor front (--http-listen): a strict, streaming HTTP/1.1
 * server (proto/http1.h) that routes each request by Host through the DNS
 * routes to one of the tunnel's live connector connections and proxies it
 * over a QUIC data stream (protocol.md 4):
 *   preamble + ConnectRequest{dest = "http://host/target", type http or
 *   websocket, metadata from proto/httpmeta.h} in one write, then the
 *   de-chunked request body and FIN; read the connector's preamble +
 *   ConnectResponse; answer the visitor with the status and headers
 *   (hop-by-hop fields dropped; Content-Length kept, otherwise chunked on
 *   HTTP/1.1, close-delimited on 1.0) and stream the body.
 * Visitor identity: X-Forwarded-For, X-Forwarded-Proto and Cf-Connecting-IP
 * are replaced by the edge's values.
 * Errors: unknown host 404, no live connector 502 (immediately), a
 * ConnectResponse error 502 carrying the reason, a stream reset after the
 * response head: the visitor connection is closed without the terminating
 * chunk (a broken response, never a truncated "complete" one).
 * Keep-alive and pipelining: requests on one connection are served one at a
 * time, in order; bytes of later requests wait (bounded) until the current
 * response is done. Header read timeout and keep-alive idle timeout.
 * Limits per source (an IPv4 address, or an IPv6 /64 since one host owns a
 * whole /64): connections and a request rate (token bucket; over it the
 * answer is 429 with Retry-After, and a connection that keeps sending before
 * that time is closed). Near the total cap, idle keep-alive connections are
 * closed to make room (the oldest, preferring the sources that hold the most)
 * instead of refusing newcomers, and the last reserve_conns slots only go to
 * sources that hold few connections, so that one source at its limit cannot
 * lock others out. */
#ifndef WR_EDGE_VISITOR_H
#define WR_EDGE_VISITOR_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "edge/store.h"
#include "edge/store_async.h"
#include "edge/inspect.h"
#include "edge/tunnel_server.h"
#include "edge/tunnel_stats.h"

typedef struct wr_visitor wr_visitor;

typedef struct wr_visitor_config {
  wr_store *store;            /* routes: hostname -> tunnel (cached, see route_ttl_ms) */
  wr_store_async *store_async; /* optional: route lookups on a cache miss run on
                               * the store thread while the head waits; NULL:
                               * on the loop thread, through |store| */
  wr_tunnel_server *ts;       /* live connections */
  /* HTTPS: TLS by SNI with these certificates (edge/certs.h; borrowed):
   * an unknown name is refused with the unrecognized_name alert, a Host
   * that is not the SNI gets 421, ALPN offers h2 and http/1.1 (edge/visitor_h2.c). NULL: plain
   * HTTP. */
  struct wr_certs *certs;
  struct wr_zone_cache *zones; /* per-zone options (edge/zone_settings.h), or NULL */
  int http3;                  /* HTTPS front: also serve HTTP/3 on UDP at the same
                               * address and port (ALPN h3, the same certificates),
                               * advertised with Alt-Svc on h1/h2 answers */
  unsigned https_port;        /* plain front: the port of the HTTPS front for
                               * always_use_https redirects (443 is left out
                               * of the URL; 0: no redirects) */
  struct wr_access *access;   /* optional: the Access gate (edge/access.h) */
  struct wr_acme *acme;       /* optional, plain front only: answers ACME HTTP-01
                               * challenges (edge/acme.h) before routing */
  const char *scheme;         /* "http" (default) or "https": X-Forwarded-Proto and dest */
  uint64_t header_timeout_ms; /* whole head must arrive within; default 10000 */
  uint64_t idle_timeout_ms;   /* keep-alive idle; default 60000 */
  uint64_t route_ttl_ms;      /* route cache lifetime; default 1000 */
  /* Connection and rate limits, per source as wr_visitor_listen describes.
   * 0 picks the default; WR_VISITOR_OFF turns a limit (or the reserve) off. */
  size_t max_conns;           /* all visitor connections; default 10000. Each is a
                               * descriptor: keep it below RLIMIT_NOFILE */
  size_t max_conns_per_source; /* default 256; a source over it has its new
                               * connections reset at once */
  size_t reserve_conns;       /* the last slots below max_conns, only for sources
                               * holding fewer than WR_VISITOR_RESERVE_BELOW
                               * connections; default max_conns / 10, at most
                               * max_conns - 1 */
  size_t requests_per_second_per_source; /* token bucket refill; default 100,
                               * at most 1000000 */
  size_t request_burst_per_source; /* bucket size; 0 or WR_VISITOR_OFF: twice the
                               * rate; at most 2000000 */
  size_t max_sources;         /* sources tracked at once (about 64 bytes each);
                               * a new one beyond it reuses the longest-quiet
                               * entry, or, when all of them hold connections,
                               * gets only the global limits; 0 or WR_VISITOR_OFF:
                               * 2 x max_conns, at least 1024, at most 2^20 */
  /* The management hostname (`tail`'s WebSocket, edge/visitor_mgmt.c) and
   * the key its tokens are signed with (copied); NULL or no key: the
   * hostname is routed like any other. */
  const char *mgmt_hostname;
  const uint8_t *mgmt_key;
  size_t mgmt_keylen; /* at most 32 */
  /* Optional, borrowed (must outlive the visitor): every request routed
   * to a tunnel is recorded in |inspect| (edge/inspect.h) and counted in
   * |tunnel_stats| (edge/tunnel_stats.h). */
  wr_inspect *inspect;
  wr_tunnel_stats *tunnel_stats;
} wr_visitor_config;

#define WR_VISITOR_OFF ((size_t)-1)
/* Sources holding fewer connections than this may take reserved slots. */
#define WR_VISITOR_RESERVE_BELOW 8

typedef struct wr_visitor_stats {
  uint64_t requests;          /* answered, by any path */
  uint64_t responses_by_class[6]; /* [1]..[5] = 1xx..5xx */
  uint64_t active_conns;
  uint64_t active_streams;
  uint64_t no_route;          /* 404 for unknown hosts */
  uint64_t no_connector;      /* 502 without a live connection */
  /* Connection and byte counters (for --metrics, edge/edge_metrics.h). */
  uint64_t conns_accepted;    /* connections taken in and served */
  uint64_t conns_refused;     /* reset at once: any limit (the kinds below) */
  uint64_t bytes_in;          /* read from visitors */
  uint64_t bytes_out;         /* written to visitors (write completed) */
  /* Limits (counters since start, except the gauge |sources|). */
  uint64_t refused_per_source;  /* connections refused: the source held its limit */
  uint64_t refused_reserve;     /* refused: only reserved slots left and the source
                                 * held WR_VISITOR_RESERVE_BELOW or more */
  uint64_t refused_full;        /* refused: every slot taken, nothing idle to close */
  uint64_t evicted_idle;        /* idle keep-alive connections closed to make room */
  uint64_t rate_limited;        /* requests answered 429 (source over its rate) */
  uint64_t rate_limited_closed; /* connections closed for sending on after a 429 */
  uint64_t untracked_conns;     /* accepted while the source table was full */
  uint64_t sources;             /* sources tracked now */
  /* HTTPS fronts. */
  uint64_t tls_handshakes;      /* completed */
  uint64_t tls_refused;         /* refused before the handshake: no or unknown SNI */
  uint64_t tls_failed;          /* handshakes that failed (versions, ciphers, ...) */
  /* HTTP/2 on HTTPS fronts (ALPN h2). */
  uint64_t h2_conns;            /* connections that chose h2 */
  uint64_t h2_streams;          /* requests received over h2 */
  uint64_t h2_goaway_calm;      /* GOAWAY ENHANCE_YOUR_CALM sent (a flood or abuse
                                 * limit; see docs/https.md) */
  uint64_t h2_goaway_error;     /* GOAWAY with another error code sent (protocol,
                                 * flow-control or compression violations) */
  /* HTTP/3 (UDP, same port as the HTTPS front). */
  uint64_t h3_conns;            /* QUIC connections that completed the handshake */
  uint64_t h3_streams;          /* requests received over h3 */
  uint64_t h3_closed_error;     /* connections we closed with an HTTP/3 error
                                 * (protocol, QPACK, or an abuse limit) */
} wr_visitor_stats;

/* Listens on |addr| with |cfg| (copied; store and ts are borrowed and
 * must outlive the visitor). Returns WR_OK, WR_ERR_INVAL (no store, tunnel
 * server or address) or WR_ERR_IO (bind or listen failed, or no randomness
 * for the source table's hash key); aborts on out-of-memory. */
int wr_visitor_listen(uv_loop_t *loop, const wr_visitor_config *cfg, const struct sockaddr *addr,
                      wr_visitor **out);
int wr_visitor_addr(wr_visitor *v, struct sockaddr_storage *ss);
/* The live counters, owned by |v| and valid until wr_visitor_free; read
 * them on the loop's thread. */
const wr_visitor_stats *wr_visitor_get_stats(const wr_visitor *v);
/* Forgets every cached route answer: the next request of each host asks
 * the store (a route changed, e.g. through another edge). */
void wr_visitor_invalidate_routes(wr_visitor *v);
/* Stops listening, closes every visitor connection and their streams, and
 * frees once libuv released the handles. Call before freeing the tunnel
 * server. */
void wr_visitor_free(wr_visitor *v);

#endif
