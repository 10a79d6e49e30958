/* The edge's authoritative DNS server (--dns-listen, UDP and TCP on the same
 * address) for the zones in the store, and the cleanup of stale records.
 *
 * Per zone it serves (proto/dnsmsg.h has the answering rules):
 *   <zone>                              SOA, NS (cfg.ns, default ns1.<zone>)
 *   ns1.<zone> (in-zone NS names)       A/AAAA: cfg.addrs
 *   <uuid>.cfargotunnel.<zone>          A/AAAA: cfg.addrs, for each live (not
 *                                       deleted) tunnel of the zone's account
 *   <hostname> of each DNS route        CNAME <uuid>.cfargotunnel.<zone>
 *                                       (chased: `dig app.<zone> A` gets CNAME + A)
 *   _acme-challenge.<name>              TXT while an ACME DNS-01 order waits on it
 * Names at or below cfargotunnel.<zone> are reserved for tunnel targets: a
 * route there is not served. Other zones get REFUSED.
 *
 * Store access, never per query: with a store thread (cfg.async) the zone
 * list and every zone's routes and live tunnels are read there (once
 * before serving, then when a query finds them older than cache_ttl_ms
 * and at once on wr_dns_invalidate), and the snapshots are rebuilt on the
 * loop when the read is back; until then the last snapshots answer.
 * Without one, the store is read on the loop thread: the zone list and
 * one snapshot per zone at most once per cache_ttl_ms, on the first query
 * that needs them, and wr_dns_invalidate drops them at once. Either way a
 * failed read keeps serving the old snapshots.
 * The SOA serial is the Unix time the snapshot was built: it only grows,
 * which is all a resolver or a secondary needs.
 *
 * Bounds: UDP responses obey the 512 / EDNS limits (TC above them) and are
 * sent with uv_udp_try_send, dropped when the socket buffer is full (the
 * client retries); TCP uses RFC 1035 2-byte length framing, at most
 * max_tcp_conns connections, one 64 KiB message buffer each, reading paused
 * while more than 256 KiB of responses wait to be written, closed after
 * tcp_idle_ms without a query. */
#ifndef WR_EDGE_DNS_H
#define WR_EDGE_DNS_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "edge/dns_update.h"
#include "edge/store.h"

typedef struct wr_dns wr_dns;

typedef struct wr_dns_config {
  wr_store *store;            /* zones, routes, tunnels */
  struct wr_store_async *async; /* optional: read them on this store thread */
  struct wr_acme *acme;       /* optional: TXT at _acme-challenge.<name> from its
                                 DNS-01 answers (edge/acme.h), looked up per query */
  const char *const *addrs;   /* the edge's public addresses (IPv4/IPv6 text, not 0.0.0.0 / ::);
                                 the lead passes the --http-listen host by default */
  size_t naddrs;              /* 0: tunnel targets have no A/AAAA (NODATA) */
  const char *const *ns;      /* NS names: "ns1" is relative (ns1.<zone>), "ns.example.net." absolute */
  size_t nns;                 /* 0: {"ns1"} */
  const char *hostmaster;     /* SOA RNAME, relative or absolute; NULL: "hostmaster" */
  uint32_t ttl;               /* record TTL; 0: 300 */
  uint32_t neg_ttl;           /* SOA MINIMUM (negative caching); 0: 60 */
  uint64_t cache_ttl_ms;      /* zone snapshot lifetime; 0: 1000 */
  size_t max_tcp_conns;       /* 0: 256 */
  uint64_t tcp_idle_ms;       /* 0: 10000 */
} wr_dns_config;

typedef struct wr_dns_stats {
  uint64_t queries_udp;
  uint64_t queries_tcp;
  uint64_t rcodes[6];        /* responses with rcode NOERROR..REFUSED */
  uint64_t rcode_other;      /* NOTAUTH, BADVERS */
  uint64_t truncated;        /* UDP responses with TC */
  uint64_t dropped;          /* not answered: malformed, QR set, send buffer full */
  uint64_t tcp_conns;        /* open now */
  uint64_t tcp_refused;      /* closed at once: max_tcp_conns */
  uint64_t tcp_paused;       /* times reading stopped for unwritten responses */
  uint64_t snapshots;        /* zone snapshots built */
  uint64_t store_errors;     /* failed zone list / snapshot reads */
} wr_dns_stats;

/* Checks |cfg| (addresses, NS names) without opening anything. WR_OK or
 * WR_ERR_CONFIG with the reason in |err|. */
int wr_dns_config_check(const wr_dns_config *cfg, char *err, size_t errlen);
/* Binds UDP and TCP on |addr| (port 0: one ephemeral port for both) and
 * starts serving. Errors: WR_ERR_CONFIG (|err| says why), WR_ERR_IO (bind
 * or listen failed; |err| has the libuv error). */
int wr_dns_listen(uv_loop_t *loop, const wr_dns_config *cfg, const struct sockaddr *addr,
                  wr_dns **out, char *err, size_t errlen);
/* The bound address (UDP and TCP share the port). WR_OK or WR_ERR_IO. */
int wr_dns_addr(const wr_dns *d, struct sockaddr_storage *ss);
/* Forgets the cached zone list and snapshots: the next query reads the store. */
void wr_dns_invalidate(wr_dns *d);
const wr_dns_stats *wr_dns_get_stats(const wr_dns *d);
/* Stops serving, closes every connection and frees once libuv has released
 * the handles: run the loop afterwards. Call before closing the store. */
void wr_dns_free(wr_dns *d);

/* --- record cleanup ------------------------------------------------------------ */

typedef struct wr_dns_cleanup_config {
  wr_store *store;
  const char *actor;          /* audit actor; NULL: "edge:dns-cleanup" */
  int64_t unregistered_s;     /* remove after this long unregistered; 0: 86400 (24 h) */
  uint64_t interval_ms;       /* the janitor's period; 0: 60000 */
  wr_dns *dns;                /* optional: invalidated after removals */
  wr_dns_updater *updater;    /* optional: removals are also pushed (unpublish) */
  struct wr_store_async *async; /* optional: the janitor's passes run on this store thread */
} wr_dns_cleanup_config;

/* One pass: removes the routes of deleted tunnels and of tunnels unregistered
 * for cfg->unregistered_s (wr_store_route_expire: one "route.expire" audit
 * row each), logs each removal, invalidates cfg->dns and queues an unpublish
 * per route on cfg->updater. |removed| (may be NULL) gets the count.
 * Errors: the store's (WR_ERR_STORE, WR_ERR_INVAL). */
int wr_dns_cleanup(const wr_dns_cleanup_config *cfg, size_t *removed);

typedef struct wr_dns_janitor wr_dns_janitor;
/* Runs wr_dns_cleanup every interval_ms (the first pass after one interval)
 * on |loop|, its store call on cfg->async when set (one pass at a time). |cfg| is copied; its store, dns and updater must outlive the
 * janitor. WR_OK or WR_ERR_INVAL. */
int wr_dns_janitor_start(uv_loop_t *loop, const wr_dns_cleanup_config *cfg, wr_dns_janitor **out);
/* Stops the timer; freed once libuv released it (run the loop afterwards). */
void wr_dns_janitor_free(wr_dns_janitor *j);

#endif
