/* ACME messages; see acme.h. */
#include "proto/acme.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "proto/jwt.h"

#define COORD 32 /* P-256 coordinate and signature half */

struct wr_acme_key {
  gnutls_privkey_t priv;
  char x[48], y[48]; /* base64url of the public point */
  char thumb[WR_ACME_THUMB_LEN + 1];
};

/* ---- helpers ------------------------------------------------------------------------ */

/* |d| left-padded to |n| bytes into |out| (leading zeros dropped first).
 * -1 if it does not fit. */
static int pad_to(const gnutls_datum_t *d, uint8_t *out, size_t n) {
  size_t len = d->size, off = 0;
  while (len > n && d->data[off] == 0) off++, len--;
  if (len > n) return -1;
  memset(out, 0, n - len);
  memcpy(out + n - len, d->data + off, len);
  return 0;
}

/* base64url (no padding) of |len| bytes, malloc'd; NULL on failure. */
static char *b64url(const uint8_t *in, size_t len) {
  size_t cap = WR_BASE64_ENCODED_SIZE(len);
  char *out = malloc(cap);
  if (out && wr_b64url_encode(in, len, out, cap) < 0) {
    free(out);
    out = NULL;
  }
  return out;
}

static void b64url_sha256(const void *data, size_t len, char out[WR_ACME_THUMB_LEN + 1]) {
  uint8_t dig[32];
  gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, dig);
  wr_b64url_encode(dig, sizeof(dig), out, WR_ACME_THUMB_LEN + 1);
}

int wr_acme_token_valid(const char *s) {
  size_t n = strlen(s);
  return n > 0 && n <= WR_ACME_TOKEN_MAX && strspn(s, WR_ASCII_ALNUM "-_") == n;
}

/* ---- account key --------------------------------------------------------------------- */

/* Fills the public half and the thumbprint from k->priv. */
static int key_finish(wr_acme_key *k) {
  gnutls_pubkey_t pub = NULL;
  gnutls_datum_t x = {0}, y = {0};
  gnutls_ecc_curve_t curve;
  uint8_t bx[COORD], by[COORD];
  char jwk[256];
  int rv = WR_ERR_CRYPTO;
  if (gnutls_pubkey_init(&pub) < 0) return WR_ERR_NOMEM;
  if (gnutls_pubkey_import_privkey(pub, k->priv, 0, 0) < 0) goto out;
  if (gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, &y, GNUTLS_EXPORT_FLAG_NO_LZ) < 0) {
    rv = WR_ERR_UNSUPPORTED;
    goto out;
  }
  if (curve != GNUTLS_ECC_CURVE_SECP256R1 || pad_to(&x, bx, COORD) || pad_to(&y, by, COORD)) {
    rv = WR_ERR_UNSUPPORTED;
    goto out;
  }
  wr_b64url_encode(bx, COORD, k->x, sizeof(k->x));
  wr_b64url_encode(by, COORD, k->y, sizeof(k->y));
  /* RFC 7638: the required members in lexical order, no white space. */
  int n = snprintf(jwk, sizeof(jwk), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                   k->x, k->y);
  b64url_sha256(jwk, (size_t)n, k->thumb);
  rv = WR_OK;
out:
  gnutls_free(x.data);
  gnutls_free(y.data);
  gnutls_pubkey_deinit(pub);
  return rv;
}

static int key_new(wr_acme_key **out) {
  wr_acme_key *k = calloc(1, sizeof(*k));
  if (!k) return WR_ERR_NOMEM;
  if (gnutls_privkey_init(&k->priv) < 0) {
    free(k);
    return WR_ERR_NOMEM;
  }
  *out = k;
  return WR_OK;
}

int wr_acme_key_generate(wr_acme_key **out) {
  wr_acme_key *k;
  int rv = key_new(&k);
  if (rv != WR_OK) return rv;
  if (gnutls_privkey_generate(k->priv, GNUTLS_PK_ECDSA,
                              GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0)
    rv = WR_ERR_CRYPTO;
  if (rv == WR_OK) rv = key_finish(k);
  if (rv != WR_OK) {
    wr_acme_key_free(k);
    return rv;
  }
  *out = k;
  return WR_OK;
}

int wr_acme_key_import_pem(const char *pem, size_t len, wr_acme_key **out) {
  wr_acme_key *k;
  gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
  int rv = key_new(&k);
  if (rv != WR_OK) return rv;
  if (gnutls_privkey_import_x509_raw(k->priv, &d, GNUTLS_X509_FMT_PEM, NULL, 0) < 0)
    rv = WR_ERR_PROTO;
  else if (gnutls_privkey_get_pk_algorithm(k->priv, NULL) != GNUTLS_PK_ECDSA)
    rv = WR_ERR_UNSUPPORTED;
  else
    rv = key_finish(k);
  if (rv != WR_OK) {
    wr_acme_key_free(k);
    return rv;
  }
  *out = k;
  return WR_OK;
}

int wr_acme_key_export_pem(const wr_acme_key *k, char **pem) {
  return wr_privkey_export_pem(k->priv, pem);
}

const char *wr_acme_key_thumbprint(const wr_acme_key *k) { return k->thumb; }

void wr_acme_key_free(wr_acme_key *k) {
  if (!k) return;
  gnutls_privkey_deinit(k->priv);
  free(k);
}

/* ---- requests ------------------------------------------------------------------------ */

/* ES256 over "protected.payload": r and s, 32 bytes each (RFC 7518 §3.4). */
static int sign_es256(const wr_acme_key *k, const char *in, size_t len, uint8_t out[2 * COORD]) {
  gnutls_datum_t data = {(unsigned char *)in, (unsigned)len}, sig = {0}, r = {0}, s = {0};
  int rv = WR_ERR_CRYPTO;
  if (gnutls_privkey_sign_data(k->priv, GNUTLS_DIG_SHA256, 0, &data, &sig) < 0) return rv;
  if (gnutls_decode_rs_value(&sig, &r, &s) == 0 && pad_to(&r, out, COORD) == 0 &&
      pad_to(&s, out + COORD, COORD) == 0)
    rv = WR_OK;
  gnutls_free(sig.data);
  gnutls_free(r.data);
  gnutls_free(s.data);
  return rv;
}

int wr_acme_jws(const wr_acme_key *k, const char *kid, const char *nonce, const char *url,
                const json_t *payload, char **out) {
  char *hdr_text = NULL, *pay_text = NULL, *p64 = NULL, *b64 = NULL, *input = NULL;
  uint8_t sig[2 * COORD];
  char sig64[100];
  json_t *hdr, *jws = NULL;
  int rv = WR_ERR_NOMEM;
  *out = NULL;
  if (!nonce || !url) return WR_ERR_INVAL;
  hdr = json_pack("{s:s,s:s,s:s}", "alg", "ES256", "nonce", nonce, "url", url);
  if (!hdr) return rv;
  if (kid)
    json_object_set_new(hdr, "kid", json_string(kid));
  else
    json_object_set_new(hdr, "jwk", json_pack("{s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256",
                                              "x", k->x, "y", k->y));
  hdr_text = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
  pay_text = payload ? json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS) : strdup("");
  if (!hdr_text || !pay_text) goto out;
  p64 = b64url((const uint8_t *)hdr_text, strlen(hdr_text));
  b64 = b64url((const uint8_t *)pay_text, strlen(pay_text));
  if (!p64 || !b64) goto out;
  size_t n = strlen(p64) + strlen(b64) + 2;
  if (!(input = malloc(n))) goto out;
  snprintf(input, n, "%s.%s", p64, b64);
  if ((rv = sign_es256(k, input, n - 1, sig)) != WR_OK) goto out;
  wr_b64url_encode(sig, sizeof(sig), sig64, sizeof(sig64));
  jws = json_pack("{s:s,s:s,s:s}", "protected", p64, "payload", b64, "signature", sig64);
  rv = WR_ERR_NOMEM;
  if (jws && (*out = json_dumps(jws, JSON_COMPACT))) rv = WR_OK;
out:
  json_decref(hdr);
  json_decref(jws);
  free(hdr_text);
  free(pay_text);
  free(p64);
  free(b64);
  free(input);
  return rv;
}

int wr_acme_key_authorization(const wr_acme_key *k, const char *token, char *out, size_t cap) {
  if (!wr_acme_token_valid(token)) return WR_ERR_INVAL;
  int n = snprintf(out, cap, "%s.%s", token, k->thumb);
  return n < 0 || (size_t)n >= cap ? WR_ERR_LIMIT : WR_OK;
}

int wr_acme_dns01_value(const char *key_authz, char out[WR_ACME_THUMB_LEN + 1]) {
  b64url_sha256(key_authz, strlen(key_authz), out);
  return WR_OK;
}

int wr_acme_csr(const char *const *names, size_t n, char **key_pem, char **csr) {
  gnutls_privkey_t priv = NULL;
  gnutls_pubkey_t pub = NULL;
  gnutls_x509_crq_t crq = NULL;
  gnutls_datum_t der = {0};
  int rv = WR_ERR_CRYPTO;
  *key_pem = *csr = NULL;
  if (n == 0) return WR_ERR_INVAL;
  if (gnutls_privkey_init(&priv) < 0 || gnutls_pubkey_init(&pub) < 0 ||
      gnutls_x509_crq_init(&crq) < 0)
    goto out;
  if (gnutls_privkey_generate(priv, GNUTLS_PK_ECDSA,
                              GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0 ||
      gnutls_pubkey_import_privkey(pub, priv, 0, 0) < 0 ||
      gnutls_x509_crq_set_version(crq, 1) < 0 ||
      gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, names[0],
                                    (unsigned)strlen(names[0])) < 0)
    goto out;
  for (size_t i = 0; i < n; i++)
    if (gnutls_x509_crq_set_subject_alt_name(crq, GNUTLS_SAN_DNSNAME, names[i],
                                             (unsigned)strlen(names[i]), GNUTLS_FSAN_APPEND) < 0)
      goto out;
  if (gnutls_x509_crq_set_pubkey(crq, pub) < 0 ||
      gnutls_x509_crq_privkey_sign(crq, priv, GNUTLS_DIG_SHA256, 0) < 0 ||
      gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, &der) < 0)
    goto out;
  if (!(*csr = b64url(der.data, der.size))) {
    rv = WR_ERR_NOMEM;
    goto out;
  }
  rv = wr_privkey_export_pem(priv, key_pem);
  if (rv != WR_OK) {
    free(*csr);
    *csr = NULL;
  }
out:
  gnutls_free(der.data);
  gnutls_x509_crq_deinit(crq);
  gnutls_pubkey_deinit(pub);
  gnutls_privkey_deinit(priv);
  return rv;
}

/* ---- answers ----------------------------------------------------------------------- */

static const char *const status_names[] = {"pending", "ready",   "processing",  "valid",
                                           "invalid", "expired", "deactivated", "revoked"};

const char *wr_acme_status_name(wr_acme_status s) {
  return (unsigned)s < sizeof(status_names) / sizeof(*status_names) ? status_names[s] : "?";
}

static int parse_status(json_t *o, wr_acme_status *out) {
  const char *s = json_string_value(json_object_get(o, "status"));
  if (!s) return WR_ERR_PROTO;
  for (size_t i = 0; i < sizeof(status_names) / sizeof(*status_names); i++)
    if (strcmp(s, status_names[i]) == 0) {
      *out = (wr_acme_status)i;
      return WR_OK;
    }
  return WR_ERR_PROTO;
}

static int load_object(const char *body, size_t len, json_t **out) {
  if (len > WR_ACME_MAX_BODY) return WR_ERR_LIMIT;
  json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
  if (!json_is_object(j)) {
    json_decref(j);
    return WR_ERR_PROTO;
  }
  *out = j;
  return WR_OK;
}

/* Copies the string member |key| of |o| into |out| (|cap| bytes, NUL
 * included). Missing: WR_ERR_PROTO unless |optional| ("" then). */
static int copy_str(json_t *o, const char *key, char *out, size_t cap, int optional) {
  json_t *v = json_object_get(o, key);
  out[0] = '\0';
  if (!v) return optional ? WR_OK : WR_ERR_PROTO;
  if (!json_is_string(v)) return WR_ERR_PROTO;
  size_t n = json_string_length(v);
  if (n >= cap) return WR_ERR_LIMIT;
  if (memchr(json_string_value(v), '\0', n)) return WR_ERR_PROTO;
  memcpy(out, json_string_value(v), n + 1);
  return WR_OK;
}

/* A URL member: also required to be http(s); a required one may not be
 * "" either. */
static int copy_url(json_t *o, const char *key, char *out, int optional) {
  int rv = copy_str(o, key, out, WR_ACME_URL_MAX + 1, optional);
  if (rv == WR_OK && !out[0] && !optional) rv = WR_ERR_PROTO;
  if (rv == WR_OK && out[0] && strncmp(out, "https://", 8) != 0 && strncmp(out, "http://", 7) != 0)
    rv = WR_ERR_PROTO;
  return rv;
}

int wr_acme_parse_directory(const char *body, size_t len, wr_acme_directory *out) {
  json_t *j;
  int rv = load_object(body, len, &j);
  if (rv != WR_OK) return rv;
  memset(out, 0, sizeof(*out));
  if ((rv = copy_url(j, "newNonce", out->new_nonce, 0)) == WR_OK &&
      (rv = copy_url(j, "newAccount", out->new_account, 0)) == WR_OK)
    rv = copy_url(j, "newOrder", out->new_order, 0);
  json_t *meta = json_object_get(j, "meta");
  out->tos = json_is_object(meta) && json_is_string(json_object_get(meta, "termsOfService"));
  json_decref(j);
  return rv;
}

int wr_acme_parse_order(const char *body, size_t len, wr_acme_order *out) {
  json_t *j, *authz;
  int rv = load_object(body, len, &j);
  if (rv != WR_OK) return rv;
  memset(out, 0, sizeof(*out));
  if ((rv = parse_status(j, &out->status)) != WR_OK ||
      (rv = copy_url(j, "finalize", out->finalize, 0)) != WR_OK ||
      (rv = copy_url(j, "certificate", out->certificate, 1)) != WR_OK)
    goto out;
  authz = json_object_get(j, "authorizations");
  if (!json_is_array(authz) || json_array_size(authz) == 0) {
    rv = WR_ERR_PROTO;
    goto out;
  }
  if (json_array_size(authz) > WR_ACME_MAX_AUTHZ) {
    rv = WR_ERR_LIMIT;
    goto out;
  }
  for (size_t i = 0; i < json_array_size(authz) && rv == WR_OK; i++) {
    json_t *wrap = json_pack("{s:O}", "u", json_array_get(authz, i));
    rv = wrap ? copy_url(wrap, "u", out->authz[i], 0) : WR_ERR_NOMEM;
    if (rv == WR_OK && !out->authz[i][0]) rv = WR_ERR_PROTO;
    json_decref(wrap);
    out->n_authz = i + 1;
  }
out:
  json_decref(j);
  return rv;
}

/* The first challenge of |type| in |arr| into |out|. */
static int pick_challenge(json_t *arr, const char *type, wr_acme_authz *out) {
  if (!json_is_array(arr)) return WR_ERR_PROTO;
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *c = json_array_get(arr, i);
    const char *t = json_string_value(json_object_get(c, "type"));
    if (!json_is_object(c) || !t) return WR_ERR_PROTO;
    if (strcmp(t, type) != 0) continue;
    int rv = parse_status(c, &out->chall_status);
    if (rv == WR_OK) rv = copy_url(c, "url", out->chall_url, 0);
    if (rv == WR_OK) rv = copy_str(c, "token", out->token, sizeof(out->token), 0);
    if (rv == WR_OK && (!out->chall_url[0] || !wr_acme_token_valid(out->token))) rv = WR_ERR_PROTO;
    json_t *err = json_object_get(c, "error");
    if (rv == WR_OK && json_is_object(err) &&
        copy_str(err, "detail", out->chall_error, sizeof(out->chall_error), 1) == WR_ERR_LIMIT)
      snprintf(out->chall_error, sizeof(out->chall_error), "(detail too long)");
    return rv;
  }
  return WR_ERR_NOTFOUND;
}

int wr_acme_parse_authz(const char *body, size_t len, const char *type, wr_acme_authz *out) {
  json_t *j, *id;
  int rv = load_object(body, len, &j);
  if (rv != WR_OK) return rv;
  memset(out, 0, sizeof(*out));
  id = json_object_get(j, "identifier");
  const char *idt = json_string_value(json_object_get(id, "type"));
  if ((rv = parse_status(j, &out->status)) != WR_OK) goto out;
  if (!json_is_object(id) || !idt || strcmp(idt, "dns") != 0) {
    rv = WR_ERR_PROTO;
    goto out;
  }
  if ((rv = copy_str(id, "value", out->identifier, sizeof(out->identifier), 0)) != WR_OK) goto out;
  out->wildcard = json_is_true(json_object_get(j, "wildcard"));
  rv = pick_challenge(json_object_get(j, "challenges"), type, out);
out:
  json_decref(j);
  return rv;
}

int wr_acme_parse_problem(const char *body, size_t len, wr_acme_problem *out) {
  json_t *j;
  int rv = load_object(body, len, &j);
  memset(out, 0, sizeof(*out));
  if (rv != WR_OK) return rv;
  if (copy_str(j, "type", out->type, sizeof(out->type), 1) != WR_OK) out->type[0] = '\0';
  if (copy_str(j, "detail", out->detail, sizeof(out->detail), 1) != WR_OK)
    snprintf(out->detail, sizeof(out->detail), "(no usable detail)");
  json_decref(j);
  return WR_OK;
}
