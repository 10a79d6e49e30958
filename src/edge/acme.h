/* ACME certificates for the HTTPS visitor front (RFC 8555; the messages are
 * proto/acme.h). With `warren-edge run --acme-directory URL`, every
 * hostname with a DNS route on the edge (exact names; wildcard routes keep
 * the edge CA's certificates) gets a certificate from that CA, as
 * Cloudflare's Universal SSL covers every proxied hostname, and keeps it
 * renewed.
 *
 *   scan      every scan_ms, a store-thread job lists the routed hostnames
 *             and reads the expiry of each one's certificate on disk; a
 *             name without one, or past 2/3 of its certificate's lifetime,
 *             needs an order.
 *   order     one at a time, on a libuv worker thread (uv_queue_work; the
 *             loop never waits): account (newAccount with the account key
 *             DIR/acme/account.key, P-256, 0600, made on first use), order,
 *             one challenge per authorization, finalize with a fresh
 *             P-256 key, download. Requests go through the blocking
 *             net/http_client.h on that thread, verified against ca_file
 *             (or the system store); badNonce is retried once.
 *   store     DIR/acme/certs/<host>.key (0600, written first) and
 *             <host>.pem (the chain, 0644); edge/certs.h serves them, in
 *             the SNI order uploaded > ACME > edge CA.
 *   failure   logged with the CA's problem detail; the name is tried again
 *             after retry_ms, doubling per failure up to 6 hours.
 *
 * Challenges: HTTP-01 is answered by the plain-HTTP visitor front at
 * /.well-known/acme-challenge/<token> before routing and Access
 * (wr_acme_http01); DNS-01 by the edge's DNS server as a TXT record at
 * _acme-challenge.<host> (wr_acme_dns01). Both lookups are cheap and
 * thread-safe (a mutex around a small table), so the loop thread calls
 * them while the worker publishes and withdraws answers.
 *
 * Keys are never logged. Everything but the two lookups is called on the
 * loop's thread. */
#ifndef WR_EDGE_ACME_H
#define WR_EDGE_ACME_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "edge/store.h"
#include "edge/store_async.h"
#include "proto/acme.h"

#define WR_ACME_DATA_DIR "acme"
#define WR_ACME_ACCOUNT_KEY "acme/account.key"
#define WR_ACME_CHALLENGE_PATH "/.well-known/acme-challenge/"

typedef struct wr_acme wr_acme;

typedef struct wr_acme_config {
  const char *data_dir;      /* required */
  const char *directory;     /* required: the CA's directory URL */
  const char *email;         /* optional account contact */
  const char *ca_file;       /* optional PEM trust anchors for the CA's HTTPS; NULL: system */
  int dns01;                 /* 1: DNS-01 challenges, 0: HTTP-01 */
  wr_store *store;           /* routes */
  wr_store_async *async;     /* optional: the scan's store reads run there; NULL: on the loop */
  uint64_t scan_ms;          /* 0: 60000 (the first scan runs at once) */
  uint64_t retry_ms;         /* first retry after a failure; 0: 60000 */
  uint64_t poll_ms;          /* while the CA validates or issues; 0: 1000 */
} wr_acme_config;

typedef struct wr_acme_stats {
  uint64_t issued;           /* certificates obtained (renewals included) */
  uint64_t failed;           /* orders that failed */
  uint64_t challenges;       /* HTTP-01 and DNS-01 answers given */
} wr_acme_stats;

/* Checks |cfg| (the directory URL, the CA file) and starts the scans.
 * WR_OK, WR_ERR_CONFIG (|err| says why). */
int wr_acme_start(uv_loop_t *loop, const wr_acme_config *cfg, wr_acme **out, char *err,
                  size_t errlen);
/* Stops scanning and asks an order in flight to give up at its next step;
 * freed once the timer is closed and the worker returned (run the loop). */
void wr_acme_free(wr_acme *a);
const wr_acme_stats *wr_acme_get_stats(const wr_acme *a);

/* The key authorization for HTTP-01 |token| into |out|: WR_OK, or
 * WR_ERR_NOTFOUND when no order waits on that token. Any thread. */
int wr_acme_http01(wr_acme *a, const char *token, char *out, size_t cap);
/* The TXT values published for |name| (lower case, no trailing dot; e.g.
 * "_acme-challenge.app.example.test"), at most |max|. Any thread. */
size_t wr_acme_dns01(wr_acme *a, const char *name, char (*out)[WR_ACME_THUMB_LEN + 1],
                     size_t max);

#endif
