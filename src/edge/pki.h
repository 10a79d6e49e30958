/* The edge's certificates, made with GnuTLS (all keys ECDSA P-256, all
 * signatures ECDSA-SHA256):
 *
 *   DIR/ca.pem, ca.key                 the edge CA. Connectors trust it with
 *                                      `--cacert DIR/ca.pem` (cloudflared
 *                                      then uses only this CA for the edge).
 *   DIR/tunnel-server.pem, .key        the certificate the edge presents on
 *                                      :7844, signed by the edge CA, with the
 *                                      names cloudflared verifies
 *                                      (quic.cftunnel.com for QUIC,
 *                                      h2.cftunnel.com for HTTP/2, the old
 *                                      cftunnel.com, probe.cftunnel.com for
 *                                      ≥ 2026.5 prechecks), the edge's own
 *                                      names (localhost, 127.0.0.1, ::1) and
 *                                      the zone and *.zone for visitors.
 *   DIR/origin-ca.pem, .key            the origin CA, a separate root so that
 *                                      trusting origin certificates never
 *                                      means trusting the tunnel server.
 *   origin certificates                ZONE and *.ZONE, 10 years, signed by
 *                                      the origin CA; returned as PEM text
 *                                      (the CERTIFICATE and PRIVATE KEY blocks
 *                                      of cert.pem), not written by this module.
 *
 * Private keys are written as unencrypted PKCS#8 ("PRIVATE KEY"): cert.pem
 * may only hold PRIVATE KEY, CERTIFICATE and ARGO TUNNEL TOKEN blocks, and
 * cloudflared rejects "EC PRIVATE KEY". Key files are mode 0600, certificates
 * 0644. Errors: WR_ERR_CRYPTO (GnuTLS failed), WR_ERR_IO (a file), WR_ERR_INVAL
 * (a bad request, e.g. an unparsable IP), WR_ERR_EXISTS (a file to create
 * exists); |err| gets a sentence naming the file or step. */
#ifndef WR_EDGE_PKI_H
#define WR_EDGE_PKI_H
#include <stddef.h>
#include <time.h>

#define WR_PKI_CA_CERT "ca.pem"
#define WR_PKI_CA_KEY "ca.key"
#define WR_PKI_SERVER_CERT "tunnel-server.pem"
#define WR_PKI_SERVER_KEY "tunnel-server.key"
#define WR_PKI_ORIGIN_CA_CERT "origin-ca.pem"
#define WR_PKI_ORIGIN_CA_KEY "origin-ca.key"

/* Lifetimes in days. The CAs outlive what they sign; a leaf never outlives
 * its issuer (wr_pki_issue clamps). The tunnel-server certificate stays
 * within the 825 days some TLS clients accept even under private roots;
 * wr_pki_issue_tunnel_server renews it. */
#define WR_PKI_CA_DAYS (20 * 365)
#define WR_PKI_SERVER_DAYS 825
#define WR_PKI_ORIGIN_DAYS (10 * 365)

/* The names every tunnel-server certificate carries besides the zone. */
extern const char *const wr_pki_tunnel_server_dns[]; /* NULL-terminated */
extern const char *const wr_pki_tunnel_server_ips[]; /* NULL-terminated */

/* A certificate and its private key as PEM text (malloc'd). */
typedef struct wr_pem_pair {
  char *cert;
  char *key;
} wr_pem_pair;
/* Frees both strings (wiping the key) and sets them to NULL. */
void wr_pem_pair_free(wr_pem_pair *p);

typedef struct wr_pki_req {
  const char *common_name;   /* required */
  const char *organization;  /* NULL: "Warren" */
  const char *const *dns;    /* subjectAltName dNSNames, n_dns of them */
  size_t n_dns;
  const char *const *ips;    /* textual IPv4/IPv6 addresses, n_ips of them */
  size_t n_ips;
  unsigned days;             /* validity from |now| */
  int is_ca;                 /* CA:TRUE, keyCertSign; else a TLS leaf */
  int client_auth;           /* leaves: add clientAuth to the serverAuth EKU */
  time_t now;                /* 0: time(NULL); notBefore is 5 minutes earlier for clock skew */
} wr_pki_req;

/* Makes a fresh P-256 key and a certificate for |req|, signed by |issuer|
 * (NULL: self-signed, which requires req->is_ca). Returns WR_OK,
 * WR_ERR_INVAL or WR_ERR_CRYPTO. */
int wr_pki_issue(const wr_pem_pair *issuer, const wr_pki_req *req, wr_pem_pair *out, char *err,
                 size_t errlen);

/* Reads DIR/|cert_name| and DIR/|key_name| and checks that the key belongs
 * to the certificate. WR_ERR_IO, WR_ERR_CRYPTO. */
int wr_pki_load_pair(const char *dir, const char *cert_name, const char *key_name, wr_pem_pair *out,
                     char *err, size_t errlen);

/* Creates the edge CA, the tunnel-server certificate for |zone| and the
 * origin CA in |dir| (which must exist). Refuses (WR_ERR_EXISTS) to replace
 * any of the six files. */
int wr_pki_init_dir(const char *dir, const char *zone, char *err, size_t errlen);

/* Issues a new tunnel-server certificate from DIR's edge CA and replaces
 * DIR/tunnel-server.{pem,key} (renewal). */
int wr_pki_issue_tunnel_server(const char *dir, const char *zone, char *err, size_t errlen);

/* Issues an origin certificate for |zone| and *.|zone| from DIR's origin CA,
 * valid WR_PKI_ORIGIN_DAYS. Nothing is written. */
int wr_pki_issue_origin_cert(const char *dir, const char *zone, wr_pem_pair *out, char *err,
                             size_t errlen);

#endif
