/* TLS over memory buffers with GnuTLS 3.7. See tls.h for the contract.
 *
 * GnuTLS never sees a socket: its push callback appends ciphertext to |out|
 * and its pull callback takes ciphertext from |in| (EAGAIN when empty, 0 once
 * the owner reported EOF), in the style of curl's lib/vtls/gtls.c. Sessions
 * are GNUTLS_NONBLOCK, which also keeps GnuTLS from installing its own
 * handshake timeout (that would call a pull_timeout on a non-socket). */
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "lib/err.h"

/* Origins may be old: TLS 1.2 stays allowed next to 1.3. */
#define TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* Visitors of a zone whose minimum is TLS 1.3. */
#define TLS_PRIORITY_13 "NORMAL:-VERS-ALL:+VERS-TLS1.3"
/* cloudflared's CurvePreferences for the edge: P-256 only. */
#define TLS_PRIORITY_P256 TLS_PRIORITY ":-GROUP-ALL:+GROUP-SECP256R1"

struct wr_tls_creds {
  gnutls_certificate_credentials_t cred;
  gnutls_priority_t prio;
  gnutls_priority_t prio13; /* servers: TLS 1.3 only */
  int server;
  int no_verify;
  int require_client; /* servers: mutual TLS */
};

/* A byte queue that consumes from the front without moving memory on every
 * call; it compacts only when it needs room. */
typedef struct bq {
  uint8_t *p;
  size_t off, len, cap;
} bq;

struct wr_tls {
  gnutls_session_t s;
  wr_tls_creds *creds;
  bq in, out;
  int eof;           /* transport EOF fed */
  int hs_done;
  int push_nomem;    /* the push callback could not grow |out| */
  char *verify_name; /* GnuTLS keeps the pointer we pass it, so we own it */
  char errmsg[256];
  char alpn[64];
};

/* --- helpers ----------------------------------------------------------- */

static void tls_err(wr_tls *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tls_err(wr_tls *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->errmsg, sizeof(t->errmsg), fmt, ap);
  va_end(ap);
}

static int bq_append(bq *q, const uint8_t *data, size_t n) {
  if (q->cap - q->off - q->len < n) {
    if (q->off) {
      memmove(q->p, q->p + q->off, q->len);
      q->off = 0;
    }
    if (q->cap - q->len < n) {
      size_t cap = q->cap ? q->cap : 16384;
      while (cap - q->len < n) cap *= 2;
      uint8_t *p = realloc(q->p, cap);
      if (!p) return WR_ERR_NOMEM;
      q->p = p;
      q->cap = cap;
    }
  }
  memcpy(q->p + q->off + q->len, data, n);
  q->len += n;
  return WR_OK;
}

static void bq_consume(bq *q, size_t n) {
  if (n > q->len) n = q->len;
  q->off += n;
  q->len -= n;
  if (!q->len) q->off = 0;
}

static int is_ip_literal(const char *s) {
  unsigned char b[16];
  return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

/* --- credentials --------------------------------------------------------- */

static int creds_new(int server, const char *prio, wr_tls_creds **out, char *err,
                     size_t errlen) {
  wr_tls_creds *c = calloc(1, sizeof(*c));
  int rv;
  if (!c) return WR_ERR_NOMEM;
  c->server = server;
  if (gnutls_certificate_allocate_credentials(&c->cred) != 0) {
    rv = WR_ERR_NOMEM;
    goto fail_cred;
  }
  rv = gnutls_priority_init(&c->prio, prio, NULL);
  if (rv != 0) {
    wr_set_err(err, errlen, "TLS priority %s: %s", prio, gnutls_strerror(rv));
    rv = WR_ERR_CRYPTO;
    goto fail_prio;
  }
  *out = c;
  return WR_OK;

fail_prio:
  gnutls_certificate_free_credentials(c->cred);
fail_cred:
  free(c);
  return rv;
}

static int creds_client(const wr_tls_client_config *cfg, const char *prio, wr_tls_creds **out,
                        char *err, size_t errlen);

int wr_tls_load_key_file(void *cred, const char *cert_file, const char *key_file, char *err, size_t errlen) {
  int rv = gnutls_certificate_set_x509_key_file(cred, cert_file, key_file, GNUTLS_X509_FMT_PEM);
  if (rv >= 0) return WR_OK;
  wr_set_err(err, errlen, "cannot load certificate %s / key %s: %s", cert_file, key_file, gnutls_strerror(rv));
  return WR_ERR_CRYPTO;
}

int wr_tls_load_ca_file(void *cred, const char *ca_file, char *err, size_t errlen) {
  int rv = gnutls_certificate_set_x509_trust_file(cred, ca_file, GNUTLS_X509_FMT_PEM);
  if (rv > 0) return WR_OK;
  wr_set_err(err, errlen, "cannot load CA certificates from %s: %s", ca_file,
             rv == 0 ? "no certificates found" : gnutls_strerror(rv));
  return WR_ERR_CRYPTO;
}

int wr_tls_creds_client(const wr_tls_client_config *cfg, wr_tls_creds **out, char *err,
                        size_t errlen) {
  return creds_client(cfg, TLS_PRIORITY, out, err, errlen);
}

int wr_tls_creds_client_p256(const wr_tls_client_config *cfg, wr_tls_creds **out, char *err,
                             size_t errlen) {
  return creds_client(cfg, TLS_PRIORITY_P256, out, err, errlen);
}

static int creds_client(const wr_tls_client_config *cfg, const char *prio, wr_tls_creds **out,
                        char *err, size_t errlen) {
  wr_tls_creds *c;
  int rv;
  if (!cfg || !out) return WR_ERR_INVAL;
  if ((rv = creds_new(0, prio, &c, err, errlen)) != WR_OK) return rv;
  c->no_verify = cfg->no_verify != 0;
  if ((cfg->cert_file && cfg->key_file &&
       (rv = wr_tls_load_key_file(c->cred, cfg->cert_file, cfg->key_file, err, errlen)) != WR_OK) ||
      (cfg->ca_file && (rv = wr_tls_load_ca_file(c->cred, cfg->ca_file, err, errlen)) != WR_OK)) {
    wr_tls_creds_free(c);
    return rv;
  }
  if (!cfg->ca_file && !c->no_verify) {
    /* An empty system store is not an error here: like Go, every
     * verification then fails with "signed by unknown authority". */
    rv = gnutls_certificate_set_x509_system_trust(c->cred);
    if (rv >= 0 && cfg->extra_ca_pem) {
      gnutls_datum_t d = {(unsigned char *)cfg->extra_ca_pem, (unsigned)cfg->extra_ca_pem_len};
      rv = gnutls_certificate_set_x509_trust_mem(c->cred, &d, GNUTLS_X509_FMT_PEM);
    }
    if (rv < 0) {
      wr_set_err(err, errlen, "cannot load the system CA certificates: %s", gnutls_strerror(rv));
      wr_tls_creds_free(c);
      return WR_ERR_CRYPTO;
    }
  }
  *out = c;
  return WR_OK;
}

int wr_tls_creds_server(const wr_tls_server_config *cfg, wr_tls_creds **out, char *err,
                        size_t errlen) {
  wr_tls_creds *c;
  int rv;
  if (!cfg || !out || !cfg->cert_file || !cfg->key_file) return WR_ERR_INVAL;
  if ((rv = creds_new(1, TLS_PRIORITY, &c, err, errlen)) != WR_OK) return rv;
  if ((rv = wr_tls_load_key_file(c->cred, cfg->cert_file, cfg->key_file, err, errlen)) != WR_OK ||
      (cfg->client_ca_file && (rv = wr_tls_load_ca_file(c->cred, cfg->client_ca_file, err, errlen)) != WR_OK)) {
    wr_tls_creds_free(c);
    return rv;
  }
  c->require_client = cfg->client_ca_file != NULL;
  *out = c;
  return WR_OK;
}

int wr_tls_creds_server_mem(const char *cert_pem, const char *key_pem, wr_tls_creds **out,
                            char *err, size_t errlen) {
  wr_tls_creds *c;
  int rv;
  if (!cert_pem || !key_pem || !out) return WR_ERR_INVAL;
  if ((rv = creds_new(1, TLS_PRIORITY, &c, err, errlen)) != WR_OK) return rv;
  gnutls_datum_t cd = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
  gnutls_datum_t kd = {(unsigned char *)key_pem, (unsigned)strlen(key_pem)};
  rv = gnutls_certificate_set_x509_key_mem(c->cred, &cd, &kd, GNUTLS_X509_FMT_PEM);
  if (rv < 0) {
    wr_set_err(err, errlen, "cannot load the certificate and key: %s", gnutls_strerror(rv));
    wr_tls_creds_free(c);
    return WR_ERR_CRYPTO;
  }
  *out = c;
  return WR_OK;
}

void *wr_tls_creds_native(wr_tls_creds *c) { return c ? c->cred : NULL; }

void wr_tls_creds_free(wr_tls_creds *c) {
  if (!c) return;
  if (c->prio13) gnutls_priority_deinit(c->prio13);
  gnutls_priority_deinit(c->prio);
  gnutls_certificate_free_credentials(c->cred);
  free(c);
}

/* --- transport callbacks ------------------------------------------------- */

static ssize_t tls_push(gnutls_transport_ptr_t ptr, const void *data, size_t len) {
  wr_tls *t = ptr;
  if (bq_append(&t->out, data, len) != WR_OK) {
    t->push_nomem = 1;
    gnutls_transport_set_errno(t->s, ENOMEM);
    return -1;
  }
  return (ssize_t)len;
}

static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len) {
  wr_tls *t = ptr;
  if (!t->in.len) {
    if (t->eof) return 0;
    gnutls_transport_set_errno(t->s, EAGAIN);
    return -1;
  }
  if (len > t->in.len) len = t->in.len;
  memcpy(data, t->in.p + t->in.off, len);
  bq_consume(&t->in, len);
  return (ssize_t)len;
}

/* --- sessions -------------------------------------------------------------- */

static int session_new(wr_tls_creds *creds, unsigned flags, wr_tls **out) {
  wr_tls *t = calloc(1, sizeof(*t));
  int rv;
  if (!t) return WR_ERR_NOMEM;
  t->creds = creds;
  /* No resumption: tickets would cost a round of crypto and bytes for
   * nothing, as sessions are never resumed. */
  if (gnutls_init(&t->s, flags | GNUTLS_NONBLOCK | GNUTLS_NO_TICKETS) != 0) {
    free(t);
    return WR_ERR_NOMEM;
  }
  if ((rv = gnutls_priority_set(t->s, creds->prio)) != 0 ||
      (rv = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, creds->cred)) != 0) {
    gnutls_deinit(t->s);
    free(t);
    return rv == GNUTLS_E_MEMORY_ERROR ? WR_ERR_NOMEM : WR_ERR_CRYPTO;
  }
  if (creds->server && creds->require_client) {
    /* The client's chain is verified during the handshake, which fails
     * without a certificate or with one the anchors did not sign. */
    gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
    gnutls_session_set_verify_cert(t->s, NULL, 0);
  }
  gnutls_transport_set_ptr(t->s, t);
  gnutls_transport_set_push_function(t->s, tls_push);
  gnutls_transport_set_pull_function(t->s, tls_pull);
  *out = t;
  return WR_OK;
}

/* Offers the comma-separated protocols of |alpn| in that order. */
static int set_client_alpn(wr_tls *t, const char *alpn) {
  gnutls_datum_t p[8];
  unsigned n = 0;
  for (const char *a = alpn; *a && n < 8;) {
    size_t len = strcspn(a, ",");
    if (len == 0 || len > 255) return WR_ERR_INVAL;
    p[n++] = (gnutls_datum_t){(unsigned char *)(uintptr_t)a, (unsigned)len};
    a += len;
    if (*a == ',') a++;
  }
  return gnutls_alpn_set_protocols(t->s, p, n, 0) == 0 ? WR_OK : WR_ERR_INVAL;
}

int wr_tls_client_new(wr_tls_creds *creds, const char *server_name, const char *verify_name,
                      const char *alpn, wr_tls **out) {
  wr_tls *t;
  int rv;
  if (!creds || creds->server || !out) return WR_ERR_INVAL;
  if ((rv = session_new(creds, GNUTLS_CLIENT, &t)) != WR_OK) return rv;
  if (server_name && *server_name && !is_ip_literal(server_name) &&
      gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, server_name, strlen(server_name)) != 0) {
    rv = WR_ERR_NOMEM;
    goto fail;
  }
  if (alpn && *alpn && (rv = set_client_alpn(t, alpn)) != WR_OK) goto fail;
  if (!creds->no_verify) {
    const char *name = verify_name && *verify_name ? verify_name : server_name;
    /* Without any name only the chain is verified. IP literals are matched
     * against IP SANs by GnuTLS. */
    if (name && *name && !(t->verify_name = strdup(name))) {
      rv = WR_ERR_NOMEM;
      goto fail;
    }
    gnutls_session_set_verify_cert(t->s, t->verify_name, 0);
  }
  *out = t;
  return WR_OK;

fail:
  wr_tls_free(t);
  return rv;
}

int wr_tls_server_new(wr_tls_creds *creds, wr_tls **out) {
  if (!creds || !creds->server || !out) return WR_ERR_INVAL;
  return session_new(creds, GNUTLS_SERVER, out);
}

int wr_tls_server_new_opts(wr_tls_creds *creds, int tls13_only, const char *alpn, wr_tls **out) {
  wr_tls *t;
  int rv;
  if (!creds || !creds->server || !out) return WR_ERR_INVAL;
  /* Made on first use: most zones never ask for it. */
  if (tls13_only && !creds->prio13 &&
      gnutls_priority_init(&creds->prio13, TLS_PRIORITY_13, NULL) != 0) {
    creds->prio13 = NULL;
    return WR_ERR_CRYPTO;
  }
  if ((rv = session_new(creds, GNUTLS_SERVER, &t)) != WR_OK) return rv;
  if (tls13_only && gnutls_priority_set(t->s, creds->prio13) != 0) {
    rv = WR_ERR_CRYPTO;
    goto fail;
  }
  if (alpn && *alpn) {
    /* A comma-separated list, in the server's order of preference. */
    gnutls_datum_t p[4];
    unsigned n = 0;
    for (const char *s = alpn; *s && n < 4;) {
      size_t l = strcspn(s, ",");
      p[n++] = (gnutls_datum_t){(unsigned char *)s, (unsigned)l};
      s += l + (s[l] == ',');
    }
    if (gnutls_alpn_set_protocols(t->s, p, n, GNUTLS_ALPN_SERVER_PRECEDENCE) != 0) {
      rv = WR_ERR_INVAL;
      goto fail;
    }
  }
  *out = t;
  return WR_OK;

fail:
  wr_tls_free(t);
  return rv;
}

void wr_tls_free(wr_tls *t) {
  if (!t) return;
  gnutls_deinit(t->s);
  free(t->in.p);
  free(t->out.p);
  free(t->verify_name);
  free(t);
}

int wr_tls_feed(wr_tls *t, const uint8_t *data, size_t len) {
  if (t->eof) return WR_ERR_INVAL;
  /* A peer cannot make us buffer more than this however we are driven. */
  if (len > WR_TLS_MAX_UNREAD - t->in.len) return WR_ERR_LIMIT;
  return bq_append(&t->in, data, len);
}

void wr_tls_feed_eof(wr_tls *t) { t->eof = 1; }

/* --- error messages ---------------------------------------------------------- */

/* Go's crypto/tls alert texts, so logs read like cloudflared's. */
static const char *alert_text(int a) {
  switch (a) {
  case 0: return "close notify";
  case 10: return "unexpected message";
  case 20: return "bad record MAC";
  case 21: return "decryption failed";
  case 22: return "record overflow";
  case 30: return "decompression failure";
  case 40: return "handshake failure";
  case 42: return "bad certificate";
  case 43: return "unsupported certificate";
  case 44: return "revoked certificate";
  case 45: return "expired certificate";
  case 46: return "unknown certificate";
  case 47: return "illegal parameter";
  case 48: return "unknown certificate authority";
  case 49: return "access denied";
  case 50: return "error decoding message";
  case 51: return "error decrypting message";
  case 70: return "protocol version not supported";
  case 71: return "insufficient security level";
  case 80: return "internal error";
  case 86: return "inappropriate fallback";
  case 90: return "user canceled";
  case 100: return "no renegotiation";
  case 109: return "missing extension";
  case 110: return "unsupported extension";
  case 112: return "unrecognized name";
  case 115: return "unknown PSK identity";
  case 116: return "certificate required";
  case 120: return "no application protocol";
  default: return NULL;
  }
}

/* Appends the certificate's DNS or IP SANs (|want_ip|) to |buf| as
 * "a, b"; returns how many. */
static int san_list(gnutls_x509_crt_t crt, int want_ip, char *buf, size_t cap) {
  size_t used = 0;
  int n = 0;
  buf[0] = '\0';
  for (unsigned i = 0;; i++) {
    char name[256], txt[INET6_ADDRSTRLEN];
    size_t len = sizeof(name) - 1;
    int type = gnutls_x509_crt_get_subject_alt_name(crt, i, name, &len, NULL);
    const char *s = NULL;
    if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) break;
    if (type < 0) continue; /* too long or odd: skip, keep listing */
    if (!want_ip && type == GNUTLS_SAN_DNSNAME) {
      name[len] = '\0';
      s = name;
    } else if (want_ip && type == GNUTLS_SAN_IPADDRESS && (len == 4 || len == 16)) {
      s = inet_ntop(len == 4 ? AF_INET : AF_INET6, name, txt, sizeof(txt));
    }
    if (!s) continue;
    int w = snprintf(buf + used, cap - used, "%s%s", n ? ", " : "", s);
    if (w < 0 || (size_t)w >= cap - used) break;
    used += (size_t)w;
    n++;
  }
  return n;
}

/* Go 1.20+ wording: "tls: failed to verify certificate: x509: ...". */
static void verify_error(wr_tls *t) {
  static const char pre[] = "tls: failed to verify certificate: x509: ";
  unsigned st = gnutls_session_get_verify_cert_status(t->s);
  const char *name = t->verify_name ? t->verify_name : "";
  if (st & (GNUTLS_CERT_EXPIRED | GNUTLS_CERT_NOT_ACTIVATED)) {
    tls_err(t, "%scertificate has expired or is not yet valid", pre);
  } else if (st & GNUTLS_CERT_UNEXPECTED_OWNER) {
    /* Go checks the name before the chain, and so do we. */
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(t->s, &n);
    gnutls_x509_crt_t crt;
    char list[160] = "";
    int ip = is_ip_literal(name), have = 0;
    if (n && gnutls_x509_crt_init(&crt) == 0) {
      if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0)
        have = san_list(crt, ip, list, sizeof(list));
      gnutls_x509_crt_deinit(crt);
    }
    if (have)
      tls_err(t, "%scertificate is valid for %s, not %s", pre, list, name);
    else if (ip)
      tls_err(t, "%scannot validate certificate for %s because it doesn't contain any IP SANs",
              pre, name);
    else
      tls_err(t, "%scertificate is not valid for any names, but wanted to match %s", pre, name);
  } else if (st & GNUTLS_CERT_SIGNER_NOT_FOUND) {
    tls_err(t, "%scertificate signed by unknown authority", pre);
  } else {
    gnutls_datum_t d = {NULL, 0};
    gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &d, 0);
    tls_err(t, "tls: failed to verify certificate: %s", d.data ? (char *)d.data : "unknown");
    gnutls_free(d.data);
  }
}

/* Sets errmsg for GnuTLS error |rv| and returns the wr error. */
static int fail(wr_tls *t, int rv, const char *what) {
  if (rv == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
    verify_error(t);
  } else if (rv == GNUTLS_E_FATAL_ALERT_RECEIVED) {
    int a = (int)gnutls_alert_get(t->s);
    const char *txt = alert_text(a);
    if (txt) tls_err(t, "remote error: tls: %s", txt);
    else tls_err(t, "remote error: tls: alert(%d)", a);
  } else if (rv == GNUTLS_E_PREMATURE_TERMINATION ||
             (rv == GNUTLS_E_UNEXPECTED_PACKET_LENGTH && t->eof && !t->in.len)) {
    /* The second case is an EOF inside a record: GnuTLS reports the short
     * record, but the cause is the transport ending. */
    tls_err(t, "tls: unexpected EOF during %s", what);
    if (t->hs_done) return WR_ERR_TRUNC;
  } else if (t->push_nomem || rv == GNUTLS_E_MEMORY_ERROR) {
    tls_err(t, "tls: out of memory");
    return WR_ERR_NOMEM;
  } else {
    tls_err(t, "tls: %s: %s", what, gnutls_strerror(rv));
  }
  return WR_ERR_CRYPTO;
}

/* --- handshake and records ------------------------------------------------ */

int wr_tls_handshake(wr_tls *t) {
  int rv;
  if (t->hs_done) return WR_OK;
  do {
    rv = gnutls_handshake(t->s);
    /* Warning alerts and interruptions are not failures: go on. */
  } while (rv < 0 && rv != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(rv));
  if (rv == GNUTLS_E_AGAIN) return WR_AGAIN;
  if (rv < 0) {
    /* GnuTLS leaves the alert to us; Go sends one too (e.g. "bad
     * certificate"), and the peer's log then says why. */
    if (rv != GNUTLS_E_FATAL_ALERT_RECEIVED && rv != GNUTLS_E_PREMATURE_TERMINATION)
      gnutls_alert_send_appropriate(t->s, rv);
    return fail(t, rv, "handshake");
  }
  t->hs_done = 1;
  gnutls_datum_t p;
  if (gnutls_alpn_get_selected_protocol(t->s, &p) == 0 && p.size < sizeof(t->alpn)) {
    memcpy(t->alpn, p.data, p.size);
    t->alpn[p.size] = '\0';
  }
  return WR_OK;
}

int wr_tls_read(wr_tls *t, uint8_t *buf, size_t cap, size_t *n, int *eof) {
  *n = 0;
  *eof = 0;
  if (!t->hs_done) return WR_ERR_INVAL;
  for (;;) {
    size_t before = t->in.len;
    ssize_t rv = gnutls_record_recv(t->s, buf, cap);
    if (rv > 0) {
      *n = (size_t)rv;
      return WR_OK;
    }
    if (rv == 0) {
      *eof = 1;
      return WR_OK;
    }
    if (rv == GNUTLS_E_AGAIN) {
      /* GnuTLS also says AGAIN after a post-handshake message (a TLS 1.3
       * NewSessionTicket or KeyUpdate); there may be records behind it. */
      if (t->in.len != before || gnutls_record_check_pending(t->s)) continue;
      return WR_AGAIN;
    }
    if (rv == GNUTLS_E_REHANDSHAKE) {
      /* TLS 1.2 renegotiation request: refuse politely, keep reading. */
      gnutls_alert_send(t->s, GNUTLS_AL_WARNING, GNUTLS_A_NO_RENEGOTIATION);
      continue;
    }
    if (!gnutls_error_is_fatal((int)rv)) continue;
    int err = fail(t, (int)rv, "read");
    if (err == WR_ERR_CRYPTO && rv != GNUTLS_E_FATAL_ALERT_RECEIVED)
      gnutls_alert_send_appropriate(t->s, (int)rv);
    return err;
  }
}

int wr_tls_write(wr_tls *t, const uint8_t *data, size_t len) {
  if (!t->hs_done) return WR_ERR_INVAL;
  while (len) {
    ssize_t rv = gnutls_record_send(t->s, data, len);
    if (rv == GNUTLS_E_INTERRUPTED) continue;
    /* Our push never blocks, so AGAIN would be a bug, not a retry. */
    if (rv <= 0) return fail(t, rv ? (int)rv : GNUTLS_E_INTERNAL_ERROR, "write");
    data += rv;
    len -= (size_t)rv;
  }
  return WR_OK;
}

int wr_tls_bye(wr_tls *t) {
  int rv;
  if (!t->hs_done) return WR_ERR_INVAL;
  /* SHUT_WR only sends close_notify; it never waits for the peer's. */
  rv = gnutls_bye(t->s, GNUTLS_SHUT_WR);
  return rv < 0 ? fail(t, rv, "close") : WR_OK;
}

size_t wr_tls_pending(wr_tls *t, const uint8_t **data) {
  *data = t->out.p + t->out.off;
  return t->out.len;
}

void wr_tls_sent(wr_tls *t, size_t n) { bq_consume(&t->out, n); }

int wr_tls_has_unread(wr_tls *t) {
  return t->in.len > 0 || (t->hs_done && gnutls_record_check_pending(t->s) > 0);
}

const char *wr_tls_version(const wr_tls *t) {
  if (!t->hs_done) return "";
  gnutls_protocol_t v = gnutls_protocol_get_version(t->s);
  return v == GNUTLS_TLS1_3 ? "TLS1.3" : v == GNUTLS_TLS1_2 ? "TLS1.2" : "TLS";
}

const char *wr_tls_errmsg(const wr_tls *t) { return t->errmsg[0] ? t->errmsg : "no error"; }

const char *wr_tls_alpn(const wr_tls *t) { return t->alpn; }
