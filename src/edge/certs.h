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
 *   issued     for any other routed hostname, on demand by the edge CA
 *              (DIR/ca.pem, ca.key) and kept in memory: a P-256 leaf for
 *              that one name, valid 90 days, re-issued after 30.
 *
 * The file functions (wr_certs_add/list/delete) are for the command line
 * and the API; they never print or log key material. The runtime object
 * (wr_certs) notices files added or removed by another process: it rescans
 * DIR/certs when its modification time changed, at most once a second.
 *
 * Lifetimes: wr_certs_pick hands out a reference (wr_cert) that the TLS
 * session holding its credentials keeps until it is freed; the entry's
 * credentials stay alive until the last reference is dropped even when the
 * entry was replaced or evicted meanwhile. Single-threaded: all calls on
 * the loop's thread. Errors: WR_ERR_IO (files), WR_ERR_CRYPTO (a
 * certificate or key GnuTLS refused), WR_ERR_INVAL (a bad name or a key
 * that does not belong to the certificate), WR_ERR_NOTFOUND. */
#ifndef WR_EDGE_CERTS_H
#define WR_EDGE_CERTS_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>

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
 * file is skipped with a warning). |now| returns seconds (NULL: time()). */
int wr_certs_open(const char *data_dir, wr_certs **out, char *err, size_t errlen);
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
wr_tls_creds *wr_cert_creds(const wr_cert *r);
/* Whether the reference is an uploaded certificate (1) or issued (0). */
int wr_cert_uploaded(const wr_cert *r);
/* "uploaded", "ACME" or "edge CA", for logs. */
const char *wr_cert_source(const wr_cert *r);
void wr_cert_release(wr_cert *r);

#endif
