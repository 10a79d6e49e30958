/* The certificates the HTTPS visitor front presents, chosen by SNI in
 * this order:
 *
 *   uploaded   by the operator (`warren-edge cert add`, the API's
 *              custom_certificates): DIR/certs/<id>.pem (chain, 0644) and
 *              DIR/certs/<id>.key (0600). A certificate's names are its
 *              subjectAltName dNSNames (its CN only when it has none);
 *              "*.a.b" covers one label (proto/tls_hello.h). An exact name
 *              wins over a wildcard; among equals, the certificate that
 *              expires last.
 *   ACME       obtained by edge/acme.h from an ACME CA:
 *              DIR/acme/certs/<host>.pem (0644) and <host>.key (0600),
 *              chosen as uploaded ones are; an expired one is skipped.
 *              The HTTPS front asks for one only for a routed name.
 *   issued     for any other routed hostname, by the edge CA (DIR/ca.pem,
 *              ca.key) and kept in memory: a P-256 leaf for that one name
 *              (a wildcard route "*.zone" gets one for "*.zone", which
 *              covers one label), valid 90 days, re-issued after 30.
 *
 * Signing never runs on the event loop once wr_certs_start gave the
 * object a loop: names are queued (wr_certs_prepare) and signed on libuv's
 * worker pool, at most WR__CERTS_SIGNERS at a time, and the watchers are
 * told when each is back. The edge prepares every routed hostname when it
 * starts, when a route is added and when the routes change, so that the
 * handshake's lookup (wr_certs_issued_cached) is a hit; on a miss the
 * HTTPS front asks for the name first in the queue and the visitor waits.
 * wr_certs_issued (signing in the caller) is for programs without a loop.
 *
 * The file functions (wr_certs_add/list/delete) are for the command line
 * and the API; they never print or log key material. The runtime object
 * (wr_certs) notices files added or removed by another process: it rescans
 * DIR/certs when its modification time changed, at most once a second.
 *
 * Lifetimes: wr_certs_pick hands out a reference (wr_cert) that the TLS
 * session holding its credentials keeps until it is freed; the entry's
 * credentials stay alive until the last reference is dropped even when the
 * entry was replaced or evicted meanwhile. All calls on the loop's thread
 * (only the signing itself runs on the worker pool). Errors: WR_ERR_IO (files), WR_ERR_CRYPTO (a
 * certificate or key GnuTLS refused), WR_ERR_INVAL (a bad name or a key
 * that does not belong to the certificate), WR_ERR_NOTFOUND. */
#ifndef WR_EDGE_CERTS_H
#define WR_EDGE_CERTS_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <uv.h>

#include "edge/store.h"
#include "edge/store_async.h"
#include "net/tls.h"

#define WR_CERTS_DIR "certs"
#define WR_CERTS_ACME_DIR "acme/certs"
#define WR_CERTS_ID_LEN 36
#define WR_CERTS_MAX_NAMES 16
#define WR_CERTS_NAME_MAX 253

/* What the list shows of an uploaded certificate. */
typedef struct wr_cert_info {
  char id[WR_CERTS_ID_LEN + 1];
  char names[WR_CERTS_MAX_NAMES][WR_CERTS_NAME_MAX + 1];
  size_t n_names;
  char issuer[256];
  char signature[32];  /* "ECDSAWithSHA256", "SHA256WithRSA", ... */
  time_t not_before, not_after;
  time_t uploaded_at;  /* the key file's mtime */
} wr_cert_info;

/* Checks the PEM chain |cert_pem| and key |key_pem| (the key must belong to
 * the first certificate; every name must be a valid DNS name, wildcards as
 * above) and writes them under DIR/certs (made 0700 if missing). |info|
 * (may be NULL) gets what was stored. |err| says why on failure. */
int wr_certs_add(const char *data_dir, const char *cert_pem, const char *key_pem,
                 wr_cert_info *info, char *err, size_t errlen);
/* The uploaded certificates, by first name. *out is malloc'd (free()). */
int wr_certs_list(const char *data_dir, wr_cert_info **out, size_t *n);
/* The certificates obtained by ACME (DIR/acme/certs), by host; their id
 * is "". *out is malloc'd (free()). */
int wr_certs_list_acme(const char *data_dir, wr_cert_info **out, size_t *n);
/* One uploaded certificate by id. */
int wr_certs_get(const char *data_dir, const char *id, wr_cert_info *out);
/* Removes both files of |id|. WR_ERR_NOTFOUND, WR_ERR_INVAL (not an id). */
int wr_certs_delete(const char *data_dir, const char *id);
/* 1 if one of |info|'s names is |zone| or a name in it. */
int wr_cert_info_in_zone(const wr_cert_info *info, const char *zone);

/* ---- runtime ---------------------------------------------------------------- */

typedef struct wr_certs wr_certs;
typedef struct wr_cert wr_cert; /* a reference: credentials for one handshake */

/* Loads the edge CA of |data_dir| and the uploaded certificates (a bad
 * file is skipped with a warning). */
int wr_certs_open(const char *data_dir, wr_certs **out, char *err, size_t errlen);
/* Queued names are dropped; with signing jobs still running the object is
 * freed when the last is back (keep running the loop). NULL: no-op. */
void wr_certs_free(wr_certs *c);

/* The uploaded certificate for |host| (canonical: lower case, no trailing
 * dot), or NULL. The reference must be released. */
wr_cert *wr_certs_uploaded(wr_certs *c, const char *host);
/* The ACME certificate for |host|, or NULL; DIR/acme/certs is reread as
 * DIR/certs is. The reference must be released. */
wr_cert *wr_certs_acme(wr_certs *c, const char *host);
/* A certificate issued by the edge CA for |host|, from the cache or made
 * now (a P-256 key and one signature: well under a millisecond). NULL on
 * failure (logged). */
wr_cert *wr_certs_issued(wr_certs *c, const char *host);

/* From now on certificates of the edge CA are signed on |loop|'s worker
 * pool (wr_certs_prepare). Call once, before any prepare. Test hook:
 * WARREN_TEST_SIGN_DELAY_MS (read by wr_certs_open) makes every signature
 * take that much longer, on whichever thread it runs. */
void wr_certs_start(wr_certs *c, uv_loop_t *loop);
/* The issued certificate for |host| already in memory: the exact name,
 * else the "*.parent" one; NULL when there is none (nothing is signed
 * here, so it may be called from a handshake callback, e.g. QUIC's). A
 * certificate past its renewal age is returned and its renewal queued.
 * The reference must be released. */
wr_cert *wr_certs_issued_cached(wr_certs *c, const char *host);
/* Makes sure a certificate for |name| (a host name or "*.parent") is in
 * memory or on its way: WR_OK (there is a fresh one), WR_AGAIN (queued or
 * being signed; |urgent| puts it first in the queue: a visitor waits for
 * it), WR_ERR_CRYPTO (signing it failed less than a minute ago),
 * WR_ERR_LIMIT (a non-urgent name and the queue is long), WR_ERR_INVAL
 * (not a valid name, or no wr_certs_start). */
int wr_certs_prepare(wr_certs *c, const char *name, int urgent);
/* Prepares (not urgent) every routed hostname of |store| that has no
 * uploaded or ACME certificate. The routes are read on |async|'s store
 * thread (NULL: now, from |store|); one read at a time. */
void wr_certs_prepare_routes(wr_certs *c, wr_store *store, wr_store_async *async);
/* Called on the loop each time a signing job is back (done or failed).
 * At most 4; unwatch before |user| goes away. */
int wr_certs_watch(wr_certs *c, void (*cb)(void *user), void *user);
void wr_certs_unwatch(wr_certs *c, void *user);

typedef struct wr_certs_stats {
  uint64_t signed_ok, sign_failed; /* jobs on the worker pool */
  uint64_t urgent;                 /* of them, asked for by a waiting handshake */
} wr_certs_stats;
const wr_certs_stats *wr_certs_get_stats(const wr_certs *c);
wr_tls_creds *wr_cert_creds(const wr_cert *r);
/* Whether the reference is an uploaded certificate (1) or issued (0). */
int wr_cert_uploaded(const wr_cert *r);
/* "uploaded", "ACME" or "edge CA", for logs. */
const char *wr_cert_source(const wr_cert *r);
void wr_cert_release(wr_cert *r);

#endif
