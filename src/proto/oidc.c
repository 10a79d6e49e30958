/* OpenID Connect relying party codecs and the pending-flow table; see
 * oidc.h. */
#include "proto/oidc.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "proto/jwt.h"

static void seterr(char *err, size_t errlen, const char *msg) {
  if (err && errlen) snprintf(err, errlen, "%s", msg);
}

/* Parses |len| bytes of JSON object; NULL with |err| set otherwise. */
static json_t *parse_object(const char *json, size_t len, char *err, size_t errlen, int *rv) {
  json_error_t e;
  *rv = WR_ERR_PROTO;
  if (len > WR_OIDC_DOC_MAX) {
    *rv = WR_ERR_LIMIT;
    seterr(err, errlen, "the document is too long");
    return NULL;
  }
  json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &e);
  if (!json_is_object(doc)) {
    json_decref(doc);
    seterr(err, errlen, "the document is not a JSON object");
    return NULL;
  }
  *rv = WR_OK;
  return doc;
}

/* An http(s) URL member: a string of printable ASCII without spaces. */
static int url_member(const json_t *doc, const char *name, char **out, char *err, size_t errlen) {
  const char *s = json_string_value(json_object_get(doc, name));
  char msg[160];
  size_t n = s ? json_string_length(json_object_get(doc, name)) : 0;
  int ok = s && n && n <= WR_OIDC_URL_MAX && strlen(s) == n &&
           (!strncmp(s, "https://", 8) || !strncmp(s, "http://", 7));
  for (size_t i = 0; ok && i < n; i++)
    if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f) ok = 0;
  if (!ok) {
    snprintf(msg, sizeof(msg), "%s must be an http(s) URL", name);
    seterr(err, errlen, msg);
    return -1;
  }
  *out = wr_xstrdup(s);
  return 0;
}

void wr_oidc_endpoints_free(wr_oidc_endpoints *e) {
  if (!e) return;
  free(e->issuer);
  free(e->authorization_endpoint);
  free(e->token_endpoint);
  free(e->jwks_uri);
  memset(e, 0, sizeof(*e));
}

int wr_oidc_discovery_parse(const char *json, size_t len, wr_oidc_endpoints *out, char *err, size_t errlen) {
  int rv;
  memset(out, 0, sizeof(*out));
  json_t *doc = parse_object(json, len, err, errlen, &rv);
  if (!doc) return rv;
  if (url_member(doc, "issuer", &out->issuer, err, errlen) != 0 ||
      url_member(doc, "authorization_endpoint", &out->authorization_endpoint, err, errlen) != 0 ||
      url_member(doc, "token_endpoint", &out->token_endpoint, err, errlen) != 0 ||
      url_member(doc, "jwks_uri", &out->jwks_uri, err, errlen) != 0) {
    wr_oidc_endpoints_free(out);
    rv = WR_ERR_PROTO;
  }
  json_decref(doc);
  return rv;
}

int wr_oidc_token_parse(const char *json, size_t len, char **id_token, char *err, size_t errlen) {
  int rv;
  *id_token = NULL;
  json_t *doc = parse_object(json, len, err, errlen, &rv);
  if (!doc) return rv;
  json_t *tok = json_object_get(doc, "id_token"), *e = json_object_get(doc, "error");
  if (json_is_string(tok) && json_string_length(tok) > 0 && json_string_length(tok) <= WR_JWT_MAX_LEN &&
      strlen(json_string_value(tok)) == json_string_length(tok)) {
    *id_token = wr_xstrdup(json_string_value(tok));
  } else if (json_is_string(e)) {
    char msg[320];
    const char *d = json_string_value(json_object_get(doc, "error_description"));
    snprintf(msg, sizeof(msg), "the provider refused the code: %.100s%s%.160s", json_string_value(e), d ? ": " : "",
             d ? d : "");
    for (char *p = msg; *p; p++)
      if ((unsigned char)*p < ' ' || (unsigned char)*p == 0x7f) *p = '?';
    seterr(err, errlen, msg);
    rv = WR_ERR_DENIED;
  } else {
    seterr(err, errlen, tok ? "id_token must be a string of at most 16 KiB" : "the answer has no id_token");
    rv = tok && json_is_string(tok) ? WR_ERR_LIMIT : WR_ERR_PROTO;
  }
  json_decref(doc);
  return rv;
}

/* ---- requests ---------------------------------------------------------------------- */

int wr_oidc_pkce_challenge(const char *verifier, char out[WR_OIDC_SECRET_LEN + 1]) {
  uint8_t h[32];
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, verifier, strlen(verifier), h) != 0) return WR_ERR_CRYPTO;
  return wr_b64url_encode(h, sizeof(h), out, WR_OIDC_SECRET_LEN + 1) == WR_OIDC_SECRET_LEN ? WR_OK : WR_ERR_CRYPTO;
}

/* Long enough for every parameter the flows send (URLs, a code, the
 * secrets); a longer value makes a truncated, refused request. */
#define PARAMS_MAX (64u * 1024u)

static char *take(wr_buf *b) {
  char *s = wr_xstrdup(wr_buf_cstr(b));
  if (b->data) explicit_bzero(b->data, b->len);
  wr_buf_free(b);
  return s;
}

/* Appends "&name=<value percent-encoded>" (or '?' / nothing first). */
static void add_param(wr_buf *b, const char *sep, const char *name, const char *value) {
  static const char hex[] = "0123456789ABCDEF";
  wr_buf_append_str(b, sep);
  wr_buf_append_str(b, name);
  wr_buf_append_str(b, "=");
  for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
      wr_buf_append(b, p, 1);
    } else {
      char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      wr_buf_append(b, esc, 3);
    }
  }
}

/* "openid" first unless |scopes| names it. */
static char *scope_value(const char *scopes) {
  const char *s = scopes && *scopes ? scopes : "openid email profile";
  size_t n = strlen(s);
  for (const char *p = s; (p = strstr(p, "openid")) != NULL; p += 6)
    if ((p == s || p[-1] == ' ') && (p[6] == '\0' || p[6] == ' ')) return wr_xstrdup(s);
  char *out = wr_xmalloc(n + 8);
  snprintf(out, n + 8, "openid %s", s);
  return out;
}

char *wr_oidc_authorize_url(const char *auth_url, const char *client_id, const char *redirect_uri,
                            const char *scopes, const char *state, const char *nonce, const char *challenge) {
  wr_buf b;
  char *scope = scope_value(scopes);
  wr_buf_init(&b, PARAMS_MAX, NULL);
  wr_buf_append_str(&b, auth_url);
  add_param(&b, strchr(auth_url, '?') ? "&" : "?", "response_type", "code");
  add_param(&b, "&", "client_id", client_id);
  add_param(&b, "&", "redirect_uri", redirect_uri);
  add_param(&b, "&", "scope", scope);
  add_param(&b, "&", "state", state);
  add_param(&b, "&", "nonce", nonce);
  add_param(&b, "&", "code_challenge", challenge);
  add_param(&b, "&", "code_challenge_method", "S256");
  free(scope);
  return take(&b);
}

char *wr_oidc_token_body(const char *code, const char *redirect_uri, const char *client_id,
                         const char *client_secret, const char *verifier) {
  wr_buf b;
  wr_buf_init(&b, PARAMS_MAX, NULL);
  add_param(&b, "", "grant_type", "authorization_code");
  add_param(&b, "&", "code", code);
  add_param(&b, "&", "redirect_uri", redirect_uri);
  add_param(&b, "&", "client_id", client_id);
  add_param(&b, "&", "client_secret", client_secret);
  add_param(&b, "&", "code_verifier", verifier);
  return take(&b);
}

/* Compares without an early exit (the nonce is a secret of the flow). */
static int same_secret(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  unsigned char d = la != lb;
  for (size_t i = 0; i < la && i < lb; i++) d |= (unsigned char)(a[i] ^ b[i]);
  return d == 0;
}

int wr_oidc_claims_check(const json_t *claims, const char *nonce, const char *email_claim, char *email, size_t cap,
                         char *err, size_t errlen) {
  const char *n = json_string_value(json_object_get(claims, "nonce"));
  json_t *ev = json_object_get(claims, "email_verified");
  json_t *e = json_object_get(claims, email_claim && *email_claim ? email_claim : "email");
  const char *es = json_string_value(e), *at = es ? strchr(es, '@') : NULL;
  if (!n || !nonce || !*nonce || !same_secret(n, nonce)) {
    seterr(err, errlen, "the id_token's nonce is not this sign-in's");
    return WR_ERR_DENIED;
  }
  if (!es || !at || at == es || !at[1] || strchr(at + 1, '@') || strlen(es) != json_string_length(e) ||
      strlen(es) >= cap) {
    seterr(err, errlen, "the id_token has no usable email claim");
    return WR_ERR_DENIED;
  }
  for (const char *p = es; *p; p++)
    if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
      seterr(err, errlen, "the id_token's email is not printable ASCII");
      return WR_ERR_DENIED;
    }
  if (json_is_false(ev)) {
    seterr(err, errlen, "the provider says the email is not verified");
    return WR_ERR_DENIED;
  }
  snprintf(email, cap, "%s", es);
  return WR_OK;
}

/* ---- pending flows ------------------------------------------------------------------ */

typedef struct slot {
  wr_oidc_flow f;
  uint64_t expires; /* 0: free */
  uint64_t started;
} slot;

struct wr_oidc_states {
  slot *slots;
  size_t max, count;
  uint64_t ttl_ms;
};

wr_oidc_states *wr_oidc_states_new(size_t max, uint64_t ttl_ms) {
  wr_oidc_states *st = wr_xcalloc(1, sizeof(*st));
  st->max = max ? max : 1;
  st->ttl_ms = ttl_ms;
  st->slots = wr_xcalloc(st->max, sizeof(slot));
  return st;
}

static void slot_clear(wr_oidc_states *st, slot *s) {
  free(s->f.ctx);
  explicit_bzero(s, sizeof(*s));
  st->count--;
}

void wr_oidc_states_free(wr_oidc_states *st) {
  if (!st) return;
  for (size_t i = 0; i < st->max; i++)
    if (st->slots[i].expires) slot_clear(st, &st->slots[i]);
  free(st->slots);
  free(st);
}

size_t wr_oidc_states_count(const wr_oidc_states *st) { return st->count; }

static int random_secret(char out[WR_OIDC_SECRET_LEN + 1]) {
  uint8_t b[32];
  if (wr_random_bytes(b, sizeof(b)) != 0) return WR_ERR_CRYPTO;
  int n = wr_b64url_encode(b, sizeof(b), out, WR_OIDC_SECRET_LEN + 1);
  explicit_bzero(b, sizeof(b));
  return n == WR_OIDC_SECRET_LEN ? WR_OK : WR_ERR_CRYPTO;
}

/* A free slot: expired flows go first, then the oldest. */
static slot *free_slot(wr_oidc_states *st, uint64_t now_ms) {
  slot *oldest = NULL, *empty = NULL;
  for (size_t i = 0; i < st->max; i++) {
    slot *s = &st->slots[i];
    if (s->expires && s->expires <= now_ms) slot_clear(st, s);
    if (!s->expires) {
      if (!empty) empty = s;
    } else if (!oldest || s->started < oldest->started) {
      oldest = s;
    }
  }
  if (empty) return empty;
  slot_clear(st, oldest);
  return oldest;
}

int wr_oidc_states_begin(wr_oidc_states *st, uint64_t now_ms, const char *ctx, wr_oidc_flow *out) {
  memset(out, 0, sizeof(*out));
  if (random_secret(out->state) != WR_OK || random_secret(out->nonce) != WR_OK ||
      random_secret(out->verifier) != WR_OK || random_secret(out->binding) != WR_OK ||
      wr_oidc_pkce_challenge(out->verifier, out->challenge) != WR_OK) {
    explicit_bzero(out, sizeof(*out));
    return WR_ERR_CRYPTO;
  }
  slot *s = free_slot(st, now_ms);
  s->f = *out;
  s->f.ctx = wr_xstrdup(ctx ? ctx : "");
  s->started = now_ms;
  s->expires = now_ms + st->ttl_ms + 1; /* never 0 */
  st->count++;
  return WR_OK;
}

const char *wr_oidc_states_ctx(const wr_oidc_states *st, const char *state) {
  if (!state || strlen(state) != WR_OIDC_SECRET_LEN) return NULL;
  for (size_t i = 0; i < st->max; i++) {
    const slot *s = &st->slots[i];
    if (s->expires && same_secret(s->f.state, state)) return s->f.ctx;
  }
  return NULL;
}

int wr_oidc_states_take(wr_oidc_states *st, const char *state, const char *binding, uint64_t now_ms,
                        wr_oidc_flow *out) {
  memset(out, 0, sizeof(*out));
  if (!state || strlen(state) != WR_OIDC_SECRET_LEN) return WR_ERR_NOTFOUND;
  for (size_t i = 0; i < st->max; i++) {
    slot *s = &st->slots[i];
    if (!s->expires || !same_secret(s->f.state, state)) continue;
    int rv = s->expires <= now_ms || !binding || !same_secret(s->f.binding, binding) ? WR_ERR_DENIED : WR_OK;
    *out = s->f;
    s->f.ctx = NULL; /* moved to |out| */
    slot_clear(st, s);
    return rv;
  }
  return WR_ERR_NOTFOUND;
}
