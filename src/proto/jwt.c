/* RS256 JWTs and JWK sets; see jwt.h. */
#include "proto/jwt.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"

#define RSA_MAX_BYTES 512 /* 4096-bit modulus */

struct wr_jwt_key {
  gnutls_privkey_t priv;
  gnutls_pubkey_t pub;
  char kid[WR_JWT_KID_LEN + 1];
};

typedef struct jwks_ent {
  gnutls_pubkey_t pub;
  char kid[WR_JWT_KID_LEN * 2 + 1]; /* foreign kids may be longer than ours */
} jwks_ent;

struct wr_jwks {
  jwks_ent keys[WR_JWKS_MAX_KEYS];
  size_t n;
};

/* ---- base64url ------------------------------------------------------------------- */

int wr_b64url_decode(const char *in, size_t len, uint8_t *out, size_t out_size) {
  char tmp[WR_JWT_MAX_LEN];
  if (len > sizeof(tmp)) return WR_ERR_LIMIT;
  for (size_t i = 0; i < len; i++) {
    char ch = in[i];
    /* The standard alphabet's own '+' '/' and padding are not base64url. */
    if (ch == '+' || ch == '/' || ch == '=') return WR_ERR_PROTO;
    tmp[i] = ch == '-' ? '+' : ch == '_' ? '/' : ch;
  }
  return wr_base64_decode(tmp, len, out, out_size, WR_BASE64_NOPAD);
}

int wr_b64url_encode(const uint8_t *in, size_t len, char *out, size_t out_size) {
  return wr_base64_encode(in, len, out, out_size, WR_BASE64_URL);
}

/* A base64url string of |d| as a JSON string; NULL on failure. */
static json_t *b64url_json(const gnutls_datum_t *d) {
  char buf[RSA_MAX_BYTES * 2];
  if (wr_b64url_encode(d->data, d->size, buf, sizeof(buf)) < 0) return NULL;
  return json_string(buf);
}

/* ---- keys ---------------------------------------------------------------------------- */

/* Modulus and exponent without leading zeros. */
static int pub_raw(gnutls_pubkey_t pub, gnutls_datum_t *m, gnutls_datum_t *e) {
  return gnutls_pubkey_export_rsa_raw2(pub, m, e, GNUTLS_EXPORT_FLAG_NO_LZ) == 0 ? WR_OK : WR_ERR_CRYPTO;
}

static int compute_kid(gnutls_pubkey_t pub, char *kid) {
  gnutls_datum_t m = {0}, e = {0};
  uint8_t dig[32];
  gnutls_hash_hd_t h;
  int rv = pub_raw(pub, &m, &e);
  if (rv != WR_OK) return rv;
  rv = WR_ERR_CRYPTO;
  if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) == 0) {
    gnutls_hash(h, m.data, m.size);
    gnutls_hash(h, e.data, e.size);
    gnutls_hash_deinit(h, dig);
    wr_hex_encode(dig, sizeof(dig), kid);
    kid[WR_JWT_KID_LEN] = '\0';
    rv = WR_OK;
  }
  gnutls_free(m.data);
  gnutls_free(e.data);
  return rv;
}

/* Fills pub and kid from priv; checks RSA and the size. */
static int key_finish(wr_jwt_key *k) {
  unsigned bits = 0;
  if (gnutls_privkey_get_pk_algorithm(k->priv, &bits) != GNUTLS_PK_RSA) return WR_ERR_INVAL;
  if (bits < 2048 || bits > RSA_MAX_BYTES * 8) return WR_ERR_INVAL;
  if (gnutls_pubkey_init(&k->pub) != 0) return WR_ERR_NOMEM;
  if (gnutls_pubkey_import_privkey(k->pub, k->priv, 0, 0) != 0) return WR_ERR_CRYPTO;
  return compute_kid(k->pub, k->kid);
}

int wr_jwt_key_generate(unsigned bits, wr_jwt_key **out) {
  *out = NULL;
  if (bits < 2048 || bits > RSA_MAX_BYTES * 8) return WR_ERR_INVAL;
  wr_jwt_key *k = calloc(1, sizeof(*k));
  if (!k) return WR_ERR_NOMEM;
  int rv = WR_ERR_CRYPTO;
  if (gnutls_privkey_init(&k->priv) != 0) goto fail;
  if (gnutls_privkey_generate(k->priv, GNUTLS_PK_RSA, bits, 0) != 0) goto fail;
  if ((rv = key_finish(k)) != WR_OK) goto fail;
  *out = k;
  return WR_OK;
fail:
  wr_jwt_key_free(k);
  return rv;
}

int wr_jwt_key_import_pem(const char *pem, size_t len, wr_jwt_key **out) {
  *out = NULL;
  wr_jwt_key *k = calloc(1, sizeof(*k));
  if (!k) return WR_ERR_NOMEM;
  gnutls_datum_t d = {(unsigned char *)(uintptr_t)pem, (unsigned)len};
  int rv = WR_ERR_PROTO;
  if (len > 1u << 20 || gnutls_privkey_init(&k->priv) != 0) goto fail;
  if (gnutls_privkey_import_x509_raw(k->priv, &d, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN) != 0)
    goto fail;
  if ((rv = key_finish(k)) != WR_OK) goto fail;
  *out = k;
  return WR_OK;
fail:
  wr_jwt_key_free(k);
  return rv;
}

int wr_privkey_export_pem(void *gnutls_priv, char **pem) {
  gnutls_x509_privkey_t x = NULL;
  gnutls_datum_t d = {0};
  int rv = WR_ERR_CRYPTO;
  *pem = NULL;
  if (gnutls_privkey_export_x509((gnutls_privkey_t)gnutls_priv, &x) != 0) return rv;
  if (gnutls_x509_privkey_export2_pkcs8(x, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &d) == 0) {
    *pem = malloc(d.size + 1);
    if (*pem) {
      memcpy(*pem, d.data, d.size);
      (*pem)[d.size] = '\0';
      rv = WR_OK;
    } else {
      rv = WR_ERR_NOMEM;
    }
    gnutls_memset(d.data, 0, d.size);
    gnutls_free(d.data);
  }
  gnutls_x509_privkey_deinit(x);
  return rv;
}

int wr_jwt_key_export_pem(const wr_jwt_key *k, char **pem) { return wr_privkey_export_pem(k->priv, pem); }

const char *wr_jwt_key_kid(const wr_jwt_key *k) { return k->kid; }

void *wr_jwt_key_gnutls(const wr_jwt_key *k) { return k->priv; }

static json_t *pub_jwk(gnutls_pubkey_t pub, const char *kid) {
  gnutls_datum_t m = {0}, e = {0};
  json_t *j = NULL;
  if (pub_raw(pub, &m, &e) != WR_OK) return NULL;
  json_t *n = b64url_json(&m), *ej = b64url_json(&e);
  if (n && ej)
    j = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o}", "kid", kid, "kty", "RSA", "alg", "RS256", "use", "sig", "e",
                  ej, "n", n);
  else {
    json_decref(n);
    json_decref(ej);
  }
  gnutls_free(m.data);
  gnutls_free(e.data);
  return j;
}

json_t *wr_jwt_key_jwk(const wr_jwt_key *k) { return pub_jwk(k->pub, k->kid); }

void wr_jwt_key_free(wr_jwt_key *k) {
  if (!k) return;
  if (k->priv) gnutls_privkey_deinit(k->priv);
  if (k->pub) gnutls_pubkey_deinit(k->pub);
  free(k);
}

/* ---- signing ------------------------------------------------------------------------- */

/* Appends base64url(|s|) to |out| at *pos. */
static int put_b64(char *out, size_t cap, size_t *pos, const uint8_t *s, size_t n) {
  int w = wr_b64url_encode(s, n, out + *pos, cap - *pos);
  if (w < 0) return w;
  *pos += (size_t)w;
  return WR_OK;
}

int wr_jwt_sign(const wr_jwt_key *k, const json_t *claims, char **out) {
  *out = NULL;
  if (!json_is_object(claims)) return WR_ERR_INVAL;
  json_t *hdr = json_pack("{s:s,s:s,s:s}", "alg", "RS256", "kid", k->kid, "typ", "JWT");
  char *h = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
  char *p = json_dumps(claims, JSON_COMPACT);
  json_decref(hdr);
  int rv = WR_ERR_NOMEM;
  size_t cap, pos = 0;
  char *tok = NULL;
  gnutls_datum_t sig = {0};
  if (!h || !p) goto out;
  cap = WR_BASE64_ENCODED_SIZE(strlen(h)) + WR_BASE64_ENCODED_SIZE(strlen(p)) +
        WR_BASE64_ENCODED_SIZE(RSA_MAX_BYTES) + 4;
  if (!(tok = malloc(cap))) goto out;
  if ((rv = put_b64(tok, cap, &pos, (const uint8_t *)h, strlen(h))) != WR_OK) goto out;
  tok[pos++] = '.';
  if ((rv = put_b64(tok, cap, &pos, (const uint8_t *)p, strlen(p))) != WR_OK) goto out;
  gnutls_datum_t data = {(unsigned char *)tok, (unsigned)pos};
  if (gnutls_privkey_sign_data(k->priv, GNUTLS_DIG_SHA256, 0, &data, &sig) != 0) {
    rv = WR_ERR_CRYPTO;
    goto out;
  }
  tok[pos++] = '.';
  if ((rv = put_b64(tok, cap, &pos, sig.data, sig.size)) != WR_OK) goto out;
  *out = tok;
  tok = NULL;
out:
  gnutls_free(sig.data);
  free(tok);
  free(h);
  free(p);
  return rv;
}

/* ---- key sets ------------------------------------------------------------------------- */

/* A base64url member of a JWK into |d| (|cap| bytes). */
static int jwk_b64(json_t *jwk, const char *name, uint8_t *d, size_t cap, size_t *n) {
  json_t *v = json_object_get(jwk, name);
  if (!json_is_string(v)) return WR_ERR_PROTO;
  int r = wr_b64url_decode(json_string_value(v), json_string_length(v), d, cap);
  if (r <= 0) return WR_ERR_PROTO;
  *n = (size_t)r;
  return WR_OK;
}

/* 1 if the JWK is one we verify with; 0 to skip it. */
static int jwk_usable(json_t *jwk) {
  json_t *kty = json_object_get(jwk, "kty"), *alg = json_object_get(jwk, "alg"),
         *use = json_object_get(jwk, "use");
  if (!json_is_string(kty) || strcmp(json_string_value(kty), "RSA") != 0) return 0;
  if (alg && (!json_is_string(alg) || strcmp(json_string_value(alg), "RS256") != 0)) return 0;
  if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0)) return 0;
  return 1;
}

static int jwks_add(wr_jwks *s, json_t *jwk) {
  uint8_t m[RSA_MAX_BYTES + 1], e[16];
  size_t mn, en;
  json_t *kid = json_object_get(jwk, "kid");
  if (!json_is_object(jwk)) return WR_ERR_PROTO;
  if (!jwk_usable(jwk)) return WR_OK;
  if (kid && (!json_is_string(kid) || json_string_length(kid) >= sizeof(s->keys[0].kid))) return WR_ERR_PROTO;
  if (jwk_b64(jwk, "n", m, sizeof(m), &mn) != WR_OK || jwk_b64(jwk, "e", e, sizeof(e), &en) != WR_OK)
    return WR_ERR_PROTO;
  if (mn < 256 || mn > RSA_MAX_BYTES + 1) return WR_ERR_PROTO; /* RSA below 2048 bits is refused */
  if (s->n == WR_JWKS_MAX_KEYS) return WR_ERR_LIMIT;
  jwks_ent *ent = &s->keys[s->n];
  gnutls_datum_t md = {m, (unsigned)mn}, ed = {e, (unsigned)en};
  if (gnutls_pubkey_init(&ent->pub) != 0) return WR_ERR_NOMEM;
  if (gnutls_pubkey_import_rsa_raw(ent->pub, &md, &ed) != 0) {
    gnutls_pubkey_deinit(ent->pub);
    ent->pub = NULL;
    return WR_ERR_PROTO;
  }
  snprintf(ent->kid, sizeof(ent->kid), "%s", kid ? json_string_value(kid) : "");
  s->n++;
  return WR_OK;
}

int wr_jwks_parse(const char *json, size_t len, wr_jwks **out) {
  json_error_t jerr;
  *out = NULL;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr), *keys, *jwk;
  if (!root) return WR_ERR_PROTO;
  wr_jwks *s = calloc(1, sizeof(*s));
  int rv = s ? WR_OK : WR_ERR_NOMEM;
  size_t i;
  keys = json_object_get(root, "keys");
  if (rv == WR_OK && !json_is_array(keys)) rv = WR_ERR_PROTO;
  if (rv == WR_OK) {
    json_array_foreach(keys, i, jwk) {
      if ((rv = jwks_add(s, jwk)) != WR_OK) break;
    }
  }
  json_decref(root);
  if (rv != WR_OK) {
    wr_jwks_free(s);
    return rv;
  }
  *out = s;
  return WR_OK;
}

wr_jwks *wr_jwks_from_keys(wr_jwt_key *const *keys, size_t n) {
  wr_jwks *s = calloc(1, sizeof(*s));
  if (!s) return NULL;
  for (size_t i = 0; i < n && s->n < WR_JWKS_MAX_KEYS; i++) {
    jwks_ent *ent = &s->keys[s->n];
    if (gnutls_pubkey_init(&ent->pub) != 0 ||
        gnutls_pubkey_import_privkey(ent->pub, keys[i]->priv, 0, 0) != 0) {
      if (ent->pub) gnutls_pubkey_deinit(ent->pub);
      ent->pub = NULL;
      wr_jwks_free(s);
      return NULL;
    }
    snprintf(ent->kid, sizeof(ent->kid), "%s", keys[i]->kid);
    s->n++;
  }
  return s;
}

size_t wr_jwks_count(const wr_jwks *s) { return s ? s->n : 0; }

int wr_jwks_has_kid(const wr_jwks *s, const char *kid) {
  for (size_t i = 0; s && i < s->n; i++)
    if (strcmp(s->keys[i].kid, kid) == 0) return 1;
  return 0;
}

void wr_jwks_free(wr_jwks *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) gnutls_pubkey_deinit(s->keys[i].pub);
  free(s);
}

/* ---- verifying ------------------------------------------------------------------------ */

/* Decodes a base64url JSON object segment. */
static json_t *seg_json(const char *s, size_t n) {
  uint8_t buf[WR_JWT_MAX_LEN];
  json_error_t jerr;
  int r = wr_b64url_decode(s, n, buf, sizeof(buf));
  if (r < 0) return NULL;
  json_t *j = json_loadb((const char *)buf, (size_t)r, JSON_REJECT_DUPLICATES, &jerr);
  if (j && !json_is_object(j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

/* A NumericDate claim: -1 absent, 0 present (in *v), -2 of the wrong type. */
static int num_claim(json_t *claims, const char *name, int64_t *v) {
  json_t *j = json_object_get(claims, name);
  if (!j) return -1;
  if (json_is_integer(j)) *v = (int64_t)json_integer_value(j);
  else if (json_is_real(j) && json_real_value(j) > -9e15 && json_real_value(j) < 9e15)
    *v = (int64_t)json_real_value(j);
  else return -2;
  return 0;
}

static int aud_ok(json_t *claims, const wr_jwt_expect *want) {
  json_t *aud = json_object_get(claims, "aud"), *a;
  size_t i;
  if (!want->naud) return 1;
  for (size_t w = 0; w < want->naud; w++) {
    if (json_is_string(aud) && strcmp(json_string_value(aud), want->auds[w]) == 0) return 1;
    if (json_is_array(aud))
      json_array_foreach(aud, i, a) if (json_is_string(a) && strcmp(json_string_value(a), want->auds[w]) == 0) return 1;
  }
  return 0;
}

static int check_claims(json_t *claims, const wr_jwt_expect *want, char *err, size_t errlen) {
  int64_t exp = 0, nbf = 0, iat = 0;
  int e = num_claim(claims, "exp", &exp), n = num_claim(claims, "nbf", &nbf), i = num_claim(claims, "iat", &iat);
  json_t *iss = json_object_get(claims, "iss");
  if (e == -2 || n == -2 || i == -2 || (iss && !json_is_string(iss))) {
    wr_set_err(err, errlen, "a time or issuer claim has the wrong type");
    return WR_ERR_PROTO;
  }
  if (e == -1) {
    wr_set_err(err, errlen, "the token has no exp claim");
    return WR_ERR_DENIED;
  }
  if (want->now > exp + WR_JWT_LEEWAY_S) {
    wr_set_err(err, errlen, "the token expired %lld s ago", (long long)(want->now - exp));
    return WR_ERR_DENIED;
  }
  if ((n == 0 && nbf > want->now + WR_JWT_LEEWAY_S) || (i == 0 && iat > want->now + WR_JWT_LEEWAY_S)) {
    wr_set_err(err, errlen, "the token is not valid yet");
    return WR_ERR_DENIED;
  }
  if (!aud_ok(claims, want)) {
    wr_set_err(err, errlen, "the token is not for this application (audience)");
    return WR_ERR_DENIED;
  }
  if (want->iss && (!iss || strcmp(json_string_value(iss), want->iss) != 0)) {
    wr_set_err(err, errlen, "the token's issuer is not %s", want->iss);
    return WR_ERR_DENIED;
  }
  return WR_OK;
}

/* Splits "h.p.s" into its three segments. */
static int split3(const char *t, size_t len, size_t dots[2]) {
  size_t nd = 0;
  for (size_t i = 0; i < len; i++) {
    if (t[i] == '.') {
      if (nd == 2) return -1;
      dots[nd++] = i;
    }
  }
  return nd == 2 && dots[0] > 0 && dots[1] > dots[0] + 1 && dots[1] + 1 < len ? 0 : -1;
}

/* Header checks: alg RS256 and the kid (or "" without one) into |kid|. */
static int check_header(const char *t, size_t n, char *kid, size_t kidcap, char *err, size_t errlen) {
  json_t *h = seg_json(t, n), *alg, *k;
  int rv = WR_ERR_PROTO;
  if (!h) {
    wr_set_err(err, errlen, "the token's header is not base64url JSON");
    return rv;
  }
  alg = json_object_get(h, "alg");
  k = json_object_get(h, "kid");
  if (!json_is_string(alg) || strcmp(json_string_value(alg), "RS256") != 0)
    wr_set_err(err, errlen, "the token's algorithm is not RS256");
  else if (k && (!json_is_string(k) || json_string_length(k) >= kidcap))
    wr_set_err(err, errlen, "the token's kid is malformed");
  else if (json_object_get(h, "crit"))
    wr_set_err(err, errlen, "the token has critical header extensions");
  else {
    snprintf(kid, kidcap, "%s", k ? json_string_value(k) : "");
    rv = WR_OK;
  }
  json_decref(h);
  return rv;
}

/* Tries the keys that match |kid|. WR_OK, WR_ERR_NOTFOUND, WR_ERR_DENIED. */
static int check_sig(const wr_jwks *set, const char *kid, const char *t, size_t signed_len, const char *s,
                     size_t slen) {
  uint8_t sig[RSA_MAX_BYTES + 8];
  int r = wr_b64url_decode(s, slen, sig, sizeof(sig));
  if (r <= 0) return WR_ERR_PROTO;
  gnutls_datum_t data = {(unsigned char *)(uintptr_t)t, (unsigned)signed_len}, sd = {sig, (unsigned)r};
  int tried = 0;
  for (size_t i = 0; set && i < set->n; i++) {
    if (*kid && strcmp(set->keys[i].kid, kid) != 0) continue;
    tried = 1;
    if (gnutls_pubkey_verify_data2(set->keys[i].pub, GNUTLS_SIGN_RSA_SHA256, 0, &data, &sd) >= 0) return WR_OK;
  }
  return tried ? WR_ERR_DENIED : WR_ERR_NOTFOUND;
}

int wr_jwt_verify(const wr_jwks *set, const char *token, size_t len, const wr_jwt_expect *want,
                  json_t **claims, char *err, size_t errlen) {
  size_t dots[2];
  char kid[sizeof(((jwks_ent *)0)->kid)];
  if (claims) *claims = NULL;
  if (len > WR_JWT_MAX_LEN || split3(token, len, dots) != 0) {
    wr_set_err(err, errlen, "the token is not a compact JWT");
    return WR_ERR_PROTO;
  }
  int rv = check_header(token, dots[0], kid, sizeof(kid), err, errlen);
  if (rv != WR_OK) return rv;
  rv = check_sig(set, kid, token, dots[1], token + dots[1] + 1, len - dots[1] - 1);
  if (rv == WR_ERR_NOTFOUND) {
    wr_set_err(err, errlen, "no key %s in the key set", kid[0] ? kid : "(no kid)");
    return rv;
  }
  if (rv != WR_OK) {
    wr_set_err(err, errlen, rv == WR_ERR_PROTO ? "the signature is not base64url" : "the signature does not verify");
    return rv;
  }
  json_t *c = seg_json(token + dots[0] + 1, dots[1] - dots[0] - 1);
  if (!c) {
    wr_set_err(err, errlen, "the token's payload is not base64url JSON");
    return WR_ERR_PROTO;
  }
  rv = check_claims(c, want, err, errlen);
  if (rv == WR_OK && claims) *claims = c;
  else json_decref(c);
  return rv;
}
