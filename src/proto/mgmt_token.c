/* Management tokens; see mgmt_token.h. */
#include "proto/mgmt_token.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"

#define B64U (WR_BASE64_URL)

/* Appends |s| base64url without padding. */
static int append_b64u(wr_buf *out, const uint8_t *s, size_t n) {
  char *e = malloc(WR_BASE64_ENCODED_SIZE(n));
  int rv;
  if (!e) return WR_ERR_NOMEM;
  rv = wr_base64_encode(s, n, e, WR_BASE64_ENCODED_SIZE(n), B64U);
  rv = rv < 0 ? rv : wr_buf_append_str(out, e);
  free(e);
  return rv;
}

/* Decodes base64url (no padding) [in, in+n) into a malloc'd NUL-terminated
 * buffer; *olen its length. NULL on bad input. */
static uint8_t *b64u_dup(const char *in, size_t n, size_t *olen) {
  /* The decoder reads the standard alphabet: '-' and '_' become '+' and
   * '/', which themselves are not base64url. */
  uint8_t *o = malloc(n + 1);
  char *t = malloc(n + 1);
  int r = WR_ERR_NOMEM;
  if (o && t) {
    r = WR_OK;
    for (size_t i = 0; i < n; i++) {
      t[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
      if (in[i] == '+' || in[i] == '/') r = WR_ERR_PROTO;
    }
    if (r == WR_OK) r = wr_base64_decode(t, n, o, n + 1, WR_BASE64_NOPAD);
  }
  free(t);
  if (r < 0) {
    free(o);
    return NULL;
  }
  o[r] = '\0';
  *olen = (size_t)r;
  return o;
}

static int copy_str(json_t *j, char *dst, size_t cap) {
  const char *s = json_string_value(j);
  if (!s || !s[0] || strlen(s) >= cap) return -1;
  memcpy(dst, s, strlen(s) + 1);
  return 0;
}

/* The claims JSON into |c|. Returns WR_OK or WR_ERR_PROTO. */
static int claims_decode(const uint8_t *js, size_t n, wr_mgmt_claims *c) {
  json_t *root = json_loadb((const char *)js, n, JSON_REJECT_DUPLICATES, NULL), *tun, *actor,
         *v;
  int rv = WR_ERR_PROTO;
  memset(c, 0, sizeof(*c));
  if (!json_is_object(root)) goto out;
  tun = json_object_get(root, "tun");
  actor = json_object_get(root, "actor");
  if (copy_str(json_object_get(tun, "id"), c->tunnel_id, sizeof(c->tunnel_id)) ||
      copy_str(json_object_get(tun, "account_tag"), c->account_tag, sizeof(c->account_tag)) ||
      copy_str(json_object_get(actor, "id"), c->actor_id, sizeof(c->actor_id)))
    goto out;
  c->support = json_is_true(json_object_get(actor, "support"));
  if ((v = json_object_get(root, "iat")) && json_is_number(v)) c->iat = (int64_t)json_number_value(v);
  if ((v = json_object_get(root, "exp")) && json_is_number(v)) {
    /* A real number outside int64's range would be undefined to convert:
     * such a token never expires in range, so it reads as expired. */
    double e = json_number_value(v);
    c->exp = e >= 1.0 && e < 9.2e18 ? (int64_t)e : 0;
  }
  rv = WR_OK;
out:
  json_decref(root);
  return rv;
}

/* Splits and decodes; *alg gets the header's alg (malloc'd). |sig_off| is
 * where the signature starts (after the second dot). */
static int split_parse(const char *tok, size_t len, wr_mgmt_claims *c, char **alg,
                       size_t *sig_off) {
  const char *d1, *d2;
  uint8_t *h = NULL, *p = NULL;
  size_t hl, pl;
  json_t *hj = NULL;
  int rv = WR_ERR_PROTO;
  *alg = NULL;
  if (!tok || len == 0 || len > WR_MGMT_TOKEN_MAX) return WR_ERR_PROTO;
  d1 = memchr(tok, '.', len);
  d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
  if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok))) return WR_ERR_PROTO;
  if (!(h = b64u_dup(tok, (size_t)(d1 - tok), &hl))) goto out;
  if (!(p = b64u_dup(d1 + 1, (size_t)(d2 - d1 - 1), &pl))) goto out;
  hj = json_loadb((const char *)h, hl, JSON_REJECT_DUPLICATES, NULL);
  if (!json_is_object(hj) || !json_string_value(json_object_get(hj, "alg"))) goto out;
  if (claims_decode(p, pl, c) != WR_OK) goto out;
  *alg = strdup(json_string_value(json_object_get(hj, "alg")));
  if (!*alg) {
    rv = WR_ERR_NOMEM;
    goto out;
  }
  *sig_off = (size_t)(d2 + 1 - tok);
  rv = WR_OK;
out:
  json_decref(hj);
  free(h);
  free(p);
  return rv;
}

int wr_mgmt_token_parse(const char *tok, size_t len, wr_mgmt_claims *c) {
  char *alg;
  size_t so;
  int rv = split_parse(tok, len, c, &alg, &so);
  free(alg);
  return rv;
}

int wr_mgmt_token_verify(const char *tok, size_t len, const uint8_t *key, size_t keylen,
                         int64_t now, wr_mgmt_claims *c) {
  char *alg;
  size_t so, sl;
  uint8_t mac[32], *sig;
  unsigned diff = 0;
  int rv = split_parse(tok, len, c, &alg, &so);
  if (rv != WR_OK) return rv;
  rv = WR_ERR_DENIED;
  if (strcmp(alg, "HS256") != 0) goto out;
  if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, keylen, tok, so - 1, mac) != 0) goto out;
  sig = b64u_dup(tok + so, len - so, &sl);
  if (!sig) goto out;
  if (sl == sizeof(mac)) {
    for (size_t i = 0; i < sl; i++) diff |= (unsigned)(sig[i] ^ mac[i]);
  } else {
    diff = 1;
  }
  free(sig);
  if (diff || c->exp == 0 || now >= c->exp) goto out;
  rv = WR_OK;
out:
  free(alg);
  return rv;
}

int wr_mgmt_token_sign(const uint8_t *key, size_t keylen, const wr_mgmt_claims *c, wr_buf *out) {
  static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
  json_t *root;
  char *payload;
  uint8_t mac[32];
  size_t start = out->len;
  int rv;
  if (!c->tunnel_id[0] || !c->account_tag[0] || !c->actor_id[0]) return WR_ERR_INVAL;
  root = json_pack("{s:{s:s,s:s},s:{s:s,s:b},s:I,s:I}", "tun", "id", c->tunnel_id,
                   "account_tag", c->account_tag, "actor", "id", c->actor_id, "support",
                   c->support, "iat", (json_int_t)c->iat, "exp", (json_int_t)c->exp);
  if (!root) return WR_ERR_NOMEM;
  payload = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(root);
  if (!payload) return WR_ERR_NOMEM;
  rv = append_b64u(out, (const uint8_t *)header, sizeof(header) - 1);
  if (rv == WR_OK) rv = wr_buf_append(out, ".", 1);
  if (rv == WR_OK) rv = append_b64u(out, (const uint8_t *)payload, strlen(payload));
  free(payload);
  if (rv == WR_OK &&
      gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, keylen, out->data + start, out->len - start, mac))
    rv = WR_ERR_CRYPTO;
  if (rv == WR_OK) rv = wr_buf_append(out, ".", 1);
  if (rv == WR_OK) rv = append_b64u(out, mac, sizeof(mac));
  if (rv != WR_OK) out->len = start;
  return rv;
}
