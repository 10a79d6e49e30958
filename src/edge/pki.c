#include "edge/pki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/mem.h"
#include "lib/xasprintf.h"

/* Certificates are backdated a little so a connector whose clock is a few
 * minutes behind the edge's still accepts a freshly issued one. */
#define BACKDATE_SECONDS 300
#define MAX_PEM_FILE (64u * 1024)
#define MAX_IPS 16
/* X.520 ub-common-name / ub-organization-name. */
#define UB_NAME 64

const char *const wr_pki_tunnel_server_dns[] = {
    "quic.cftunnel.com", "h2.cftunnel.com", "cftunnel.com", "probe.cftunnel.com", "localhost", NULL,
};
const char *const wr_pki_tunnel_server_ips[] = {"127.0.0.1", "::1", NULL};

static int gerr(char *err, size_t errlen, int grc, const char *what) {
  snprintf(err, errlen, "%s: %s", what, gnutls_strerror(grc));
  return WR_ERR_CRYPTO;
}

/* Moves a GnuTLS-allocated datum into a NUL-terminated malloc'd string. */
static char *datum_to_str(gnutls_datum_t *d) {
  char *s = wr_xmalloc((size_t)d->size + 1);
  memcpy(s, d->data, d->size);
  s[d->size] = '\0';
  gnutls_memset(d->data, 0, d->size);
  gnutls_free(d->data);
  d->data = NULL;
  d->size = 0;
  return s;
}

static void free_secret(char *s) {
  if (!s) return;
  gnutls_memset(s, 0, strlen(s));
  free(s);
}

void wr_pem_pair_free(wr_pem_pair *p) {
  if (!p) return;
  free(p->cert);
  free_secret(p->key);
  p->cert = NULL;
  p->key = NULL;
}

static int import_crt(gnutls_x509_crt_t *crt, const char *pem, char *err, size_t errlen,
                      const char *what) {
  gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
  int grc = gnutls_x509_crt_init(crt);
  if (grc < 0) return gerr(err, errlen, grc, what);
  if ((grc = gnutls_x509_crt_import(*crt, &d, GNUTLS_X509_FMT_PEM)) < 0) {
    gnutls_x509_crt_deinit(*crt);
    *crt = NULL;
    return gerr(err, errlen, grc, what);
  }
  return WR_OK;
}

static int import_key(gnutls_x509_privkey_t *key, const char *pem, char *err, size_t errlen,
                      const char *what) {
  gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
  int grc = gnutls_x509_privkey_init(key);
  if (grc < 0) return gerr(err, errlen, grc, what);
  if ((grc = gnutls_x509_privkey_import2(*key, &d, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
    gnutls_x509_privkey_deinit(*key);
    *key = NULL;
    return gerr(err, errlen, grc, what);
  }
  return WR_OK;
}

/* 1 if |key| is the private half of |crt|'s public key. */
static int key_matches(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key) {
  unsigned char a[64], b[64];
  size_t alen = sizeof(a), blen = sizeof(b);
  if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, a, &alen) < 0) return 0;
  if (gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, b, &blen) < 0) return 0;
  return alen == blen && memcmp(a, b, alen) == 0;
}

/* Parses the textual addresses of |req| into binary form for the SAN. */
static int parse_ips(const wr_pki_req *req, unsigned char bin[][16], unsigned *lens, char *err,
                     size_t errlen) {
  if (req->n_ips > MAX_IPS)
    return snprintf(err, errlen, "at most %d IP addresses per certificate", MAX_IPS), WR_ERR_INVAL;
  for (size_t i = 0; i < req->n_ips; i++) {
    if (inet_pton(AF_INET, req->ips[i], bin[i]) == 1) {
      lens[i] = 4;
    } else if (inet_pton(AF_INET6, req->ips[i], bin[i]) == 1) {
      lens[i] = 16;
    } else {
      snprintf(err, errlen, "\"%.64s\" is not an IP address", req->ips[i]);
      return WR_ERR_INVAL;
    }
  }
  return WR_OK;
}

/* Sets every field except the signature. */
static int fill_crt(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const wr_pki_req *req,
                    time_t not_after, unsigned char ips[][16], const unsigned *ip_lens, char *err,
                    size_t errlen) {
  const char *org = req->organization ? req->organization : "Warren";
  unsigned char serial[16], kid[64];
  size_t kid_len = sizeof(kid);
  time_t now = req->now ? req->now : time(NULL);
  int grc;
#define TRY(call, what)                                                                            \
  do {                                                                                             \
    if ((grc = (call)) < 0) return gerr(err, errlen, grc, what);                                   \
  } while (0)
  TRY(gnutls_x509_crt_set_version(crt, 3), "set certificate version");
  /* 128 random bits, positive and without a leading zero byte (RFC 5280
   * 4.1.2.2 wants a positive INTEGER of at most 20 bytes). */
  if (wr_random_bytes(serial, sizeof(serial)) != WR_OK)
    return snprintf(err, errlen, "cannot draw random bytes for a serial number"), WR_ERR_CRYPTO;
  serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
  TRY(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)), "set serial number");
  TRY(gnutls_x509_crt_set_activation_time(crt, now - BACKDATE_SECONDS), "set notBefore");
  TRY(gnutls_x509_crt_set_expiration_time(crt, not_after), "set notAfter");
  TRY(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, org,
                                    (unsigned)strlen(org)),
      "set organization");
  TRY(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, req->common_name,
                                    (unsigned)strlen(req->common_name)),
      "set common name");
  TRY(gnutls_x509_crt_set_key(crt, key), "set public key");
  if (req->is_ca) {
    /* pathLen 0: these roots sign leaves only. */
    TRY(gnutls_x509_crt_set_basic_constraints(crt, 1, 0), "set basic constraints");
    TRY(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN |
                                               GNUTLS_KEY_DIGITAL_SIGNATURE),
        "set key usage");
  } else {
    TRY(gnutls_x509_crt_set_basic_constraints(crt, 0, -1), "set basic constraints");
    /* ECDSA keys sign the handshake; there is no key encipherment. */
    TRY(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE), "set key usage");
    TRY(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0), "set serverAuth");
    if (req->client_auth)
      TRY(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0), "set clientAuth");
  }
  for (size_t i = 0; i < req->n_dns; i++)
    TRY(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, req->dns[i],
                                             (unsigned)strlen(req->dns[i]), GNUTLS_FSAN_APPEND),
        "add a DNS name");
  for (size_t i = 0; i < req->n_ips; i++)
    TRY(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ips[i], ip_lens[i],
                                             GNUTLS_FSAN_APPEND),
        "add an IP address");
  TRY(gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, kid, &kid_len), "compute key id");
  TRY(gnutls_x509_crt_set_subject_key_id(crt, kid, kid_len), "set subject key id");
#undef TRY
  return WR_OK;
}

/* The objects one issuance makes; freed together by issue_free. */
typedef struct issue_ctx {
  gnutls_x509_privkey_t key, ikey_x; /* the new key; the issuer's */
  gnutls_x509_crt_t crt, ica, check; /* the new certificate; the issuer's; re-read copy */
  gnutls_privkey_t signer;
  char *err;
  size_t errlen;
} issue_ctx;

static int issue_check_req(const wr_pem_pair *issuer, const wr_pki_req *req, char *err,
                           size_t errlen) {
  if (!req->common_name || !*req->common_name || strlen(req->common_name) > UB_NAME ||
      (req->organization && strlen(req->organization) > UB_NAME) || req->days == 0)
    return snprintf(err, errlen, "a certificate needs a common name of 1..%d bytes and a validity",
                    UB_NAME),
           WR_ERR_INVAL;
  if (!issuer && !req->is_ca)
    return snprintf(err, errlen, "only a CA certificate can be self-signed"), WR_ERR_INVAL;
  return WR_OK;
}

/* Reads the issuer's certificate and key and checks they belong together. */
static int issue_load_issuer(issue_ctx *x, const wr_pem_pair *issuer) {
  int rv;
  if ((rv = import_crt(&x->ica, issuer->cert, x->err, x->errlen, "read the issuer certificate")) !=
      WR_OK)
    return rv;
  if ((rv = import_key(&x->ikey_x, issuer->key, x->err, x->errlen, "read the issuer key")) != WR_OK)
    return rv;
  if (!key_matches(x->ica, x->ikey_x)) {
    snprintf(x->err, x->errlen, "the issuer key does not belong to the issuer certificate");
    return WR_ERR_CRYPTO;
  }
  return WR_OK;
}

/* A new P-256 key and the certificate for it, filled and signed. */
static int issue_sign(issue_ctx *x, const wr_pki_req *req, time_t not_after,
                      unsigned char ips[][16], const unsigned *ip_lens) {
  unsigned char aki[64];
  size_t aki_len = sizeof(aki);
  int rv, grc;
  if ((grc = gnutls_x509_privkey_init(&x->key)) < 0 ||
      (grc = gnutls_x509_privkey_generate2(x->key, GNUTLS_PK_ECDSA,
                                           GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0,
                                           NULL, 0)) < 0)
    return gerr(x->err, x->errlen, grc, "generate a P-256 key");
  if ((grc = gnutls_x509_crt_init(&x->crt)) < 0)
    return gerr(x->err, x->errlen, grc, "create a certificate");
  if ((rv = fill_crt(x->crt, x->key, req, not_after, ips, ip_lens, x->err, x->errlen)) != WR_OK)
    return rv;
  /* authorityKeyIdentifier lets verifiers pick the right CA when several
   * edges' CAs sit in one bundle; a self-signed CA names itself. */
  grc = gnutls_x509_crt_get_subject_key_id(x->ica ? x->ica : x->crt, aki, &aki_len, NULL);
  if (grc >= 0 && (grc = gnutls_x509_crt_set_authority_key_id(x->crt, aki, aki_len)) < 0)
    return gerr(x->err, x->errlen, grc, "set authority key id");
  if ((grc = gnutls_privkey_init(&x->signer)) < 0 ||
      (grc = gnutls_privkey_import_x509(x->signer, x->ikey_x ? x->ikey_x : x->key, 0)) < 0)
    return gerr(x->err, x->errlen, grc, "load the signing key");
  if ((grc = gnutls_x509_crt_privkey_sign(x->crt, x->ica ? x->ica : x->crt, x->signer,
                                          GNUTLS_DIG_SHA256, 0)) < 0)
    return gerr(x->err, x->errlen, grc, "sign the certificate");
  return WR_OK;
}

/* PEM of the certificate into out->cert, checked to chain to its issuer,
 * then the key (PKCS#8) into out->key. On failure |out| is emptied. */
static int issue_export(issue_ctx *x, const char *cn, wr_pem_pair *out) {
  gnutls_datum_t d = {NULL, 0};
  unsigned status = 0;
  int rv, grc;
  if ((grc = gnutls_x509_crt_export2(x->crt, GNUTLS_X509_FMT_PEM, &d)) < 0)
    return gerr(x->err, x->errlen, grc, "encode the certificate");
  out->cert = datum_to_str(&d);
  /* Check our own work: the certificate as encoded must chain to its issuer.
   * It is parsed again because GnuTLS verifies a just-signed, in-memory
   * certificate against stale DER. */
  if ((rv = import_crt(&x->check, out->cert, x->err, x->errlen, "re-read the new certificate")) !=
      WR_OK)
    goto fail;
  if ((grc = gnutls_x509_crt_verify(x->check, x->ica ? &x->ica : &x->check, 1, 0, &status)) < 0 ||
      status != 0) {
    rv = WR_ERR_CRYPTO;
    snprintf(x->err, x->errlen,
             "the new certificate for %s does not verify against its issuer (status 0x%x)", cn,
             status);
    goto fail;
  }
  /* PKCS#8 "PRIVATE KEY": the one key block type cert.pem may carry. */
  if ((grc = gnutls_x509_privkey_export2_pkcs8(x->key, GNUTLS_X509_FMT_PEM, NULL,
                                                GNUTLS_PKCS_PLAIN, &d)) < 0) {
    rv = gerr(x->err, x->errlen, grc, "encode the private key");
    goto fail;
  }
  out->key = datum_to_str(&d);
  return WR_OK;
fail:
  wr_pem_pair_free(out);
  return rv;
}

static void issue_free(issue_ctx *x) {
  /* The abstract key borrows the x509 key (flags 0), so it goes first. */
  if (x->signer) gnutls_privkey_deinit(x->signer);
  if (x->check) gnutls_x509_crt_deinit(x->check);
  if (x->crt) gnutls_x509_crt_deinit(x->crt);
  if (x->key) gnutls_x509_privkey_deinit(x->key);
  if (x->ica) gnutls_x509_crt_deinit(x->ica);
  if (x->ikey_x) gnutls_x509_privkey_deinit(x->ikey_x);
}

int wr_pki_issue(const wr_pem_pair *issuer, const wr_pki_req *req, wr_pem_pair *out, char *err,
                 size_t errlen) {
  issue_ctx x = {.err = err, .errlen = errlen};
  unsigned char ips[MAX_IPS][16];
  unsigned ip_lens[MAX_IPS];
  time_t now = req->now ? req->now : time(NULL), not_after;
  int rv;

  out->cert = out->key = NULL;
  if ((rv = issue_check_req(issuer, req, err, errlen)) != WR_OK) return rv;
  if ((rv = parse_ips(req, ips, ip_lens, err, errlen)) != WR_OK) return rv;
  if (issuer && (rv = issue_load_issuer(&x, issuer)) != WR_OK) goto out;
  not_after = now + (time_t)req->days * 86400;
  /* A leaf never outlives its issuer: verifiers would reject it then anyway. */
  if (x.ica && gnutls_x509_crt_get_expiration_time(x.ica) < not_after)
    not_after = gnutls_x509_crt_get_expiration_time(x.ica);
  if ((rv = issue_sign(&x, req, not_after, ips, ip_lens)) != WR_OK) goto out;
  rv = issue_export(&x, req->common_name, out);
out:
  issue_free(&x);
  return rv;
}

/* --- files ----------------------------------------------------------------- */

static char *join(const char *dir, const char *name) { return wr_xasprintf("%s/%s", dir, name); }

static int read_text(const char *dir, const char *name, char **out, char *err, size_t errlen) {
  char *path = join(dir, name);
  int rv = wr_file_read(path, MAX_PEM_FILE, out, NULL);
  if (rv != WR_OK)
    snprintf(err, errlen, "cannot read %s: %s", path,
             rv == WR_ERR_LIMIT ? "the file is too large" : strerror(errno));
  free(path);
  return rv;
}

int wr_pki_load_pair(const char *dir, const char *cert_name, const char *key_name, wr_pem_pair *out,
                     char *err, size_t errlen) {
  gnutls_x509_crt_t crt = NULL;
  gnutls_x509_privkey_t key = NULL;
  char what[256];
  int rv;
  out->cert = out->key = NULL;
  if ((rv = read_text(dir, cert_name, &out->cert, err, errlen)) != WR_OK) goto fail;
  if ((rv = read_text(dir, key_name, &out->key, err, errlen)) != WR_OK) goto fail;
  snprintf(what, sizeof(what), "%s/%s", dir, cert_name);
  if ((rv = import_crt(&crt, out->cert, err, errlen, what)) != WR_OK) goto fail;
  snprintf(what, sizeof(what), "%s/%s", dir, key_name);
  if ((rv = import_key(&key, out->key, err, errlen, what)) != WR_OK) goto fail;
  if (!key_matches(crt, key)) {
    rv = WR_ERR_CRYPTO;
    snprintf(err, errlen, "%s/%s is not the key of %s/%s", dir, key_name, dir, cert_name);
    goto fail;
  }
  gnutls_x509_crt_deinit(crt);
  gnutls_x509_privkey_deinit(key);
  return WR_OK;
fail:
  if (crt) gnutls_x509_crt_deinit(crt);
  if (key) gnutls_x509_privkey_deinit(key);
  wr_pem_pair_free(out);
  return rv;
}

/* Writes the key (0600) before the certificate (0644), so a certificate on
 * disk always has its key next to it. */
static int write_pair(const char *dir, const char *cert_name, const char *key_name,
                      const wr_pem_pair *p, int exclusive, char *err, size_t errlen) {
  const char *names[2] = {key_name, cert_name};
  const char *data[2] = {p->key, p->cert};
  const mode_t modes[2] = {0600, 0644};
  for (int i = 0; i < 2; i++) {
    char *path = join(dir, names[i]);
    int rv = wr_file_write(path, data[i], strlen(data[i]), modes[i], exclusive);
    if (rv != WR_OK) {
      snprintf(err, errlen, "cannot write %s: %s", path,
               rv == WR_ERR_EXISTS ? "the file already exists" : strerror(errno));
      free(path);
      return rv;
    }
    free(path);
  }
  return WR_OK;
}

/* "PREFIX ZONE" when it fits an X.520 name, else PREFIX alone. */
static void zone_name(char buf[UB_NAME + 1], const char *prefix, const char *zone) {
  int n = snprintf(buf, UB_NAME + 1, "%s %s", prefix, zone);
  if (n < 0 || n > UB_NAME) snprintf(buf, UB_NAME + 1, "%s", prefix);
}

static int issue_server(const wr_pem_pair *ca, const char *zone, wr_pem_pair *out, char *err,
                        size_t errlen) {
  const char *dns[16];
  size_t n_dns = 0, n_ips = 0;
  char cn[UB_NAME + 1], *wild = NULL;
  int rv;
  for (size_t i = 0; wr_pki_tunnel_server_dns[i]; i++) dns[n_dns++] = wr_pki_tunnel_server_dns[i];
  while (wr_pki_tunnel_server_ips[n_ips]) n_ips++;
  wild = wr_xasprintf("*.%s", zone);
  dns[n_dns++] = zone;
  dns[n_dns++] = wild;
  zone_name(cn, "Warren tunnel server", zone);
  wr_pki_req req = {
      .common_name = cn,
      .dns = dns,
      .n_dns = n_dns,
      .ips = wr_pki_tunnel_server_ips,
      .n_ips = n_ips,
      .days = WR_PKI_SERVER_DAYS,
  };
  rv = wr_pki_issue(ca, &req, out, err, errlen);
  free(wild);
  return rv;
}

int wr_pki_init_dir(const char *dir, const char *zone, char *err, size_t errlen) {
  wr_pem_pair ca = {0}, server = {0}, origin = {0};
  char cn[UB_NAME + 1];
  int rv;
  wr_pki_req req = {.common_name = cn, .is_ca = 1, .days = WR_PKI_CA_DAYS};

  zone_name(cn, "Warren Edge CA", zone);
  if ((rv = wr_pki_issue(NULL, &req, &ca, err, errlen)) != WR_OK) goto out;
  if ((rv = write_pair(dir, WR_PKI_CA_CERT, WR_PKI_CA_KEY, &ca, 1, err, errlen)) != WR_OK) goto out;
  if ((rv = issue_server(&ca, zone, &server, err, errlen)) != WR_OK) goto out;
  if ((rv = write_pair(dir, WR_PKI_SERVER_CERT, WR_PKI_SERVER_KEY, &server, 1, err, errlen)) != WR_OK)
    goto out;
  zone_name(cn, "Warren Origin CA", zone);
  if ((rv = wr_pki_issue(NULL, &req, &origin, err, errlen)) != WR_OK) goto out;
  rv = write_pair(dir, WR_PKI_ORIGIN_CA_CERT, WR_PKI_ORIGIN_CA_KEY, &origin, 1, err, errlen);
out:
  wr_pem_pair_free(&origin);
  wr_pem_pair_free(&server);
  wr_pem_pair_free(&ca);
  return rv;
}

int wr_pki_issue_tunnel_server(const char *dir, const char *zone, char *err, size_t errlen) {
  wr_pem_pair ca = {0}, server = {0};
  int rv;
  if ((rv = wr_pki_load_pair(dir, WR_PKI_CA_CERT, WR_PKI_CA_KEY, &ca, err, errlen)) != WR_OK) goto out;
  if ((rv = issue_server(&ca, zone, &server, err, errlen)) != WR_OK) goto out;
  rv = write_pair(dir, WR_PKI_SERVER_CERT, WR_PKI_SERVER_KEY, &server, 0, err, errlen);
out:
  wr_pem_pair_free(&server);
  wr_pem_pair_free(&ca);
  return rv;
}

int wr_pki_issue_origin_cert(const char *dir, const char *zone, wr_pem_pair *out, char *err,
                             size_t errlen) {
  wr_pem_pair ca = {0};
  char *wild = wr_xasprintf("*.%s", zone);
  int rv;
  const char *dns[2] = {zone, wild};
  /* Origin servers may also use it to authenticate to the edge (mTLS), as
   * Cloudflare's origin certificates allow. */
  wr_pki_req req = {.common_name = "Warren Origin Certificate",
                    .dns = dns,
                    .n_dns = 2,
                    .days = WR_PKI_ORIGIN_DAYS,
                    .client_auth = 1};
  out->cert = out->key = NULL;
  rv = wr_pki_load_pair(dir, WR_PKI_ORIGIN_CA_CERT, WR_PKI_ORIGIN_CA_KEY, &ca, err, errlen);
  if (rv == WR_OK) rv = wr_pki_issue(&ca, &req, out, err, errlen);
  wr_pem_pair_free(&ca);
  free(wild);
  return rv;
}
