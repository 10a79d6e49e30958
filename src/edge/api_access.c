/* REST API: /accounts/{a}/access/..., Cloudflare Access applications,
 * their policies, groups, service tokens and identity providers (shapes in
 * docs/access.md).
 * Documents are validated here and stored as they are sent (edge/
 * store_access.h); the visitor gate (edge/access.h) reads them back. */
#include <ctype.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge/access_policy.h"
#include "edge/api_int.h"
#include "edge/store_access.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "proto/jwt.h"

#define PATH_MAX_LEN 512
#define DEFAULT_SESSION "24h"
#define DEFAULT_TOKEN_DURATION "8760h"
#define SECRET_MASK "**********"
#define IDP_URL_MAX 2048

/* Go-style durations of h/m/s units ("24h", "30m", "1h30m", "90s") in
 * seconds; -1 when malformed or over ten years. */
static int64_t parse_duration(const char *s) {
  int64_t total = 0;
  if (!s || !*s) return -1;
  while (*s) {
    if (!isdigit((unsigned char)*s)) return -1;
    int64_t n = 0;
    while (isdigit((unsigned char)*s)) {
      n = n * 10 + (*s++ - '0');
      if (n > 100000000) return -1;
    }
    int64_t unit = *s == 'h' ? 3600 : *s == 'm' ? 60 : *s == 's' ? 1 : 0;
    if (!unit) return -1;
    s++;
    total += n * unit;
  }
  return total > 0 && total <= 10LL * 366 * 86400 ? total : -1;
}

/* Dates of a stored document as RFC 3339 (the API's shape); stolen. */
static json_t *out_doc(json_t *d) {
  static const char *const times[] = {"created_at", "updated_at", "expires_at"};
  for (size_t i = 0; i < 3; i++) {
    json_t *v = json_object_get(d, times[i]);
    if (json_is_integer(v)) json_object_set_new(d, times[i], wr__api_time(json_integer_value(v)));
  }
  json_object_set(d, "uid", json_object_get(d, "id"));
  /* An identity provider's client secret is written, never read back. */
  json_t *cfg = json_object_get(d, "config");
  if (json_is_string(json_object_get(cfg, "client_secret")))
    json_object_set_new(cfg, "client_secret", json_string(SECRET_MASK));
  return d;
}

static json_t *out_list(json_t *arr) {
  size_t i;
  json_t *d;
  json_array_foreach(arr, i, d) out_doc(d);
  return arr;
}

/* Splits "host[/path]" into the canonical "host/path" lookup key. Returns 0,
 * or -1 after answering 400. */
static int canon_domain(wr__api_ctx *c, const char *domain, char *out, size_t cap) {
  char host[WR_STORE_HOST_MAX + 1], err[256], hbuf[WR_STORE_HOST_MAX + 2];
  const char *slash = strchr(domain, '/');
  size_t hl = slash ? (size_t)(slash - domain) : strlen(domain);
  if (!hl || hl >= sizeof(hbuf)) goto bad_host;
  memcpy(hbuf, domain, hl);
  hbuf[hl] = '\0';
  if (wr_store_check_dns_name(hbuf, 0, host, err, sizeof(err)) != WR_OK) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "domain: %s", err);
    return -1;
  }
  size_t pl = slash ? strlen(slash) : 0;
  while (pl > 1 && slash[pl - 1] == '/') pl--; /* "/admin/" is "/admin" */
  if (pl == 1) pl = 0;
  if (pl > PATH_MAX_LEN) goto bad_path;
  for (size_t i = 0; i < pl; i++)
    if ((unsigned char)slash[i] <= ' ' || slash[i] == '?' || slash[i] == '#' || (unsigned char)slash[i] >= 0x7f)
      goto bad_path;
  snprintf(out, cap, "%s%.*s", host, (int)pl, pl ? slash : "");
  return 0;
bad_host:
  wr__api_err(c, 400, WR_API_CODE_INVALID, "domain must be a hostname with an optional path, e.g. app.example.com/admin");
  return -1;
bad_path:
  wr__api_err(c, 400, WR_API_CODE_INVALID, "the path of domain must be printable ASCII without spaces, '?' or '#'");
  return -1;
}

/* Rule lists of a policy or group: include required. Returns 0 or -1
 * after answering. */
static int check_rules(wr__api_ctx *c, json_t *body) {
  static const char *const kinds[] = {"include", "exclude", "require"};
  char err[300];
  json_t *inc = json_object_get(body, "include");
  if (!json_is_array(inc) || json_array_size(inc) == 0) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "include must be a non-empty array of rules");
    return -1;
  }
  for (size_t i = 0; i < 3; i++) {
    if (wr_access_rules_check(json_object_get(body, kinds[i]), kinds[i], err, sizeof(err)) != 0) {
      wr__api_err(c, 400, WR_API_CODE_INVALID, "%s", err);
      return -1;
    }
  }
  return 0;
}

/* The name member, required. */
static const char *need_name(wr__api_ctx *c, json_t *body) {
  int bad = 0;
  const char *name = wr__api_json_str(c, body, "name", &bad);
  if (bad) return NULL;
  if (!name || !*name || strlen(name) > 350) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "name is required (1 to 350 bytes)");
    return NULL;
  }
  return name;
}

/* An app's allowed_idps: identity providers of the account (none: every
 * provider of the account, and the edge's own users). A new reference, or
 * NULL after answering 400. */
static json_t *app_idps(wr__api_ctx *c, json_t *body) {
  json_t *list = json_object_get(body, "allowed_idps"), *v, *got;
  size_t i;
  if (!list || json_is_null(list)) return json_array();
  if (!json_is_array(list) || json_array_size(list) > 32) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "allowed_idps must be an array of identity provider ids");
    return NULL;
  }
  json_array_foreach(list, i, v) {
    const char *id = json_string_value(v);
    if (!id || wr_store_access_get(c->store, c->token.account_id, "identity_provider", NULL, id, &got) != WR_OK) {
      wr__api_err(c, 400, WR_API_CODE_INVALID, "allowed_idps[%zu] is not an identity provider of this account", i);
      return NULL;
    }
    json_decref(got);
  }
  return json_incref(list);
}

/* Builds the stored document of an app from |body|; |aud| the tag to keep.
 * Returns NULL after answering 400. */
static json_t *app_doc(wr__api_ctx *c, json_t *body, const char *aud, char *lookup, size_t cap) {
  int bad = 0;
  const char *name = need_name(c, body), *domain, *type, *sd;
  if (!name) return NULL;
  domain = wr__api_json_str(c, body, "domain", &bad);
  if (!bad) type = wr__api_json_str(c, body, "type", &bad);
  if (!bad) sd = wr__api_json_str(c, body, "session_duration", &bad);
  if (bad) return NULL;
  if (type && strcmp(type, "self_hosted") != 0) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "type %.40s is not supported here (only self_hosted)", type);
    return NULL;
  }
  if (!domain || !*domain) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "domain is required");
    return NULL;
  }
  if (canon_domain(c, domain, lookup, cap) != 0) return NULL;
  if (sd && parse_duration(sd) < 0) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "session_duration must be a duration such as 24h or 30m");
    return NULL;
  }
  json_t *idps = app_idps(c, body);
  if (!idps) return NULL;
  json_t *ar = json_object_get(body, "auto_redirect_to_identity");
  if (ar && !json_is_boolean(ar)) {
    json_decref(idps);
    wr__api_err(c, 400, WR_API_CODE_INVALID, "auto_redirect_to_identity must be a boolean");
    return NULL;
  }
  return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:b}", "type", "self_hosted", "name", name, "domain", lookup,
                   "session_duration", sd ? sd : DEFAULT_SESSION, "aud", aud, "allowed_idps", idps,
                   "auto_redirect_to_identity", json_is_true(ar));
}

static void random_hex(char *out, size_t bytes) {
  uint8_t b[64];
  if (wr_random_bytes(b, bytes) != 0) abort(); /* lib/encoding.h: no randomness is fatal here */
  wr_hex_encode(b, bytes, out);
  out[bytes * 2] = '\0';
}

/* ---- apps -------------------------------------------------------------------------- */

/* Stores |doc| (consumed) as a new object of |kind| (|id| NULL) or as the
 * new body of object |id|, then answers with the stored object or the
 * store's error. |parent| and |lookup| as wr_store_access_create. */
static void doc_write(wr__api_ctx *c, const char *kind, const char *parent, const char *id,
                      const char *lookup, json_t *doc) {
  const char *a = c->token.account_id;
  json_t *out;
  int rv = id ? wr_store_access_update(c->store, c->actor, a, kind, parent, id, lookup, doc, &out)
              : wr_store_access_create(c->store, c->actor, a, kind, parent, lookup, NULL, doc, &out);
  json_decref(doc);
  if (rv != WR_OK) wr__api_store_err(c, rv, NULL);
  else wr__api_ok(c, out_doc(out), NULL);
}

static void app_create(wr__api_ctx *c) {
  json_t *body = wr__api_body(c), *doc;
  char aud[65], lookup[WR_STORE_HOST_MAX + PATH_MAX_LEN + 2];
  if (!body) return;
  random_hex(aud, 32);
  if (!(doc = app_doc(c, body, aud, lookup, sizeof(lookup)))) return;
  doc_write(c, "app", NULL, NULL, lookup, doc);
}

static void app_update(wr__api_ctx *c, const char *id) {
  json_t *body = wr__api_body(c), *old, *doc;
  char lookup[WR_STORE_HOST_MAX + PATH_MAX_LEN + 2];
  wr_store *s = c->store;
  int rv;
  if (!body) return;
  if ((rv = wr_store_access_get(s, c->token.account_id, "app", NULL, id, &old)) != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  /* The aud tag stays: origins verify tokens against it. */
  doc = app_doc(c, body, json_string_value(json_object_get(old, "aud")), lookup, sizeof(lookup));
  json_decref(old);
  if (!doc) return;
  doc_write(c, "app", NULL, id, lookup, doc);
}

/* ---- policies and groups -------------------------------------------------------------- */

static json_t *rules_doc(wr__api_ctx *c, json_t *body, int policy) {
  const char *name = need_name(c, body), *decision = NULL;
  int bad = 0;
  json_t *prec = json_object_get(body, "precedence");
  if (!name) return NULL;
  if (policy) {
    decision = wr__api_json_str(c, body, "decision", &bad);
    if (bad) return NULL;
    if (!wr_access_decision_valid(decision)) {
      wr__api_err(c, 400, WR_API_CODE_INVALID, "decision must be allow, deny, non_identity or bypass");
      return NULL;
    }
    if (prec && !json_is_integer(prec)) {
      wr__api_err(c, 400, WR_API_CODE_INVALID, "precedence must be an integer");
      return NULL;
    }
  }
  if (check_rules(c, body) != 0) return NULL;
  json_t *exc = json_object_get(body, "exclude"), *req = json_object_get(body, "require");
  /* Absent or null lists are stored as []; each value is a new reference. */
  json_t *d = json_pack("{s:s,s:O,s:o,s:o}", "name", name, "include", json_object_get(body, "include"), "exclude",
                        json_is_array(exc) ? json_incref(exc) : json_array(), "require",
                        json_is_array(req) ? json_incref(req) : json_array());
  if (policy) {
    json_object_set_new(d, "decision", json_string(decision));
    json_object_set_new(d, "precedence", json_integer(prec ? json_integer_value(prec) : 1));
  }
  return d;
}

/* POST (|id| NULL) or PUT of a policy or a group. */
static void rules_write(wr__api_ctx *c, const char *kind, const char *parent, const char *id) {
  json_t *body = wr__api_body(c), *doc;
  if (!body || !(doc = rules_doc(c, body, parent != NULL))) return;
  doc_write(c, kind, parent, id, NULL, doc);
}

/* ---- service tokens ------------------------------------------------------------------- */

static void token_create(wr__api_ctx *c) {
  json_t *body = wr__api_body(c), *doc, *out;
  char client_id[80], secret[65], hex[33];
  uint8_t hash[32];
  int bad = 0;
  const char *name, *dur;
  if (!body || !(name = need_name(c, body))) return;
  dur = wr__api_json_str(c, body, "duration", &bad);
  if (bad) return;
  int64_t secs = parse_duration(dur ? dur : DEFAULT_TOKEN_DURATION);
  if (secs < 0) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "duration must be a duration such as 8760h");
    return;
  }
  random_hex(hex, 16);
  snprintf(client_id, sizeof(client_id), "%s.access", hex); /* Cloudflare's client_id shape */
  random_hex(secret, 32);
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, secret, strlen(secret), hash) != 0) {
    wr__api_err(c, 500, WR_API_CODE_INTERNAL, "cannot hash the secret");
    return;
  }
  doc = json_pack("{s:s,s:s,s:s,s:I}", "name", name, "client_id", client_id, "duration",
                  dur ? dur : DEFAULT_TOKEN_DURATION, "expires_at", (json_int_t)(time(NULL) + secs));
  int rv = wr_store_access_create(c->store, c->actor, c->token.account_id, "service_token", NULL, client_id, hash,
                                  doc, &out);
  json_decref(doc);
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, NULL);
  } else {
    /* The secret is in this answer only. */
    json_object_set_new(out, "client_secret", json_string(secret));
    wr__api_ok(c, out_doc(out), NULL);
  }
  explicit_bzero(secret, sizeof(secret));
}

/* ---- identity providers ---------------------------------------------------------- */

/* An http(s) URL member of |cfg| (NULL when absent); |bad| set after
 * answering 400. */
static const char *idp_url(wr__api_ctx *c, json_t *cfg, const char *key, int *bad) {
  const char *u = wr__api_json_str(c, cfg, key, bad);
  if (*bad || !u) return NULL;
  int ok = (!strncmp(u, "https://", 8) || !strncmp(u, "http://", 7)) && strlen(u) <= IDP_URL_MAX;
  for (const char *p = u; ok && *p; p++)
    if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) ok = 0;
  if (!ok) {
    *bad = 1;
    wr__api_err(c, 400, WR_API_CODE_INVALID, "config.%s must be an http(s) URL", key);
  }
  return u;
}

/* scopes: an array of scope tokens (no spaces), or absent. */
static int idp_scopes(wr__api_ctx *c, json_t *cfg) {
  json_t *sc = json_object_get(cfg, "scopes"), *v;
  size_t i;
  if (!sc) return 0;
  int ok = json_is_array(sc) && json_array_size(sc) <= 32;
  json_array_foreach(sc, i, v) {
    const char *t = json_string_value(v);
    if (!t || !*t || strlen(t) > 128 || strpbrk(t, " \t\r\n\"")) ok = 0;
  }
  if (!ok) wr__api_err(c, 400, WR_API_CODE_INVALID, "config.scopes must be an array of scope names");
  return ok ? 0 : -1;
}

static const char *const idp_url_keys[] = {"auth_url", "token_url", "certs_url", "discovery_url", "issuer"};
#define IDP_NURLS (sizeof(idp_url_keys) / sizeof(idp_url_keys[0]))

/* The URL members of |cfg| into |urls| (NULL when absent). Returns 0, or
 * -1 after answering 400 (also when neither the three endpoints nor
 * discovery_url are there). */
static int idp_urls(wr__api_ctx *c, json_t *cfg, const char *urls[IDP_NURLS]) {
  int bad = 0;
  for (size_t i = 0; i < IDP_NURLS && !bad; i++) urls[i] = idp_url(c, cfg, idp_url_keys[i], &bad);
  if (bad) return -1;
  if (!urls[3] && !(urls[0] && urls[1] && urls[2])) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "config needs auth_url, token_url and certs_url, or discovery_url");
    return -1;
  }
  return 0;
}

/* type "oidc" and a config object. Returns 0, or -1 after answering 400. */
static int idp_type_ok(wr__api_ctx *c, json_t *body, json_t *cfg) {
  int bad = 0;
  const char *type = wr__api_json_str(c, body, "type", &bad);
  if (bad) return -1;
  if (!type || strcmp(type, "oidc") != 0) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "type %.40s is not supported here (only oidc)", type ? type : "(none)");
    return -1;
  }
  if (!json_is_object(cfg)) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "config must be an object");
    return -1;
  }
  return 0;
}

/* The stored document of an identity provider: {name, type: "oidc",
 * config: {client_id, client_secret, auth_url, token_url, certs_url |
 * discovery_url, scopes?, email_claim_name?, issuer?, pkce_enabled}}.
 * |old|: the stored one on update (its secret stays when none is sent).
 * NULL after answering 400. */
static json_t *idp_doc(wr__api_ctx *c, json_t *body, json_t *old) {
  const char *name = need_name(c, body), *cid = NULL, *sec = NULL, *claim = NULL, *urls[IDP_NURLS];
  json_t *cfg = json_object_get(body, "config");
  int bad = 0;
  if (!name || idp_type_ok(c, body, cfg) != 0) return NULL;
  cid = wr__api_json_str(c, cfg, "client_id", &bad);
  if (!bad) sec = wr__api_json_str(c, cfg, "client_secret", &bad);
  if (!bad) claim = wr__api_json_str(c, cfg, "email_claim_name", &bad);
  if (bad || idp_urls(c, cfg, urls) != 0 || idp_scopes(c, cfg) != 0) return NULL;
  if (!sec || !strcmp(sec, SECRET_MASK)) sec = json_string_value(json_object_get(json_object_get(old, "config"), "client_secret"));
  if (!cid || !*cid || strlen(cid) > 512 || !sec || !*sec || strlen(sec) > 1024) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "config.client_id and config.client_secret are required");
    return NULL;
  }
  json_t *sc = json_object_get(cfg, "scopes"), *pk = json_object_get(cfg, "pkce_enabled");
  json_t *out = json_pack("{s:s,s:s,s:s}", "client_id", cid, "client_secret", sec, "email_claim_name",
                          claim && *claim ? claim : "email");
  for (size_t i = 0; i < IDP_NURLS; i++)
    if (urls[i]) json_object_set_new(out, idp_url_keys[i], json_string(urls[i]));
  json_object_set_new(out, "scopes", json_is_array(sc) ? json_incref(sc) : json_pack("[s,s,s]", "openid", "email", "profile"));
  /* PKCE (S256) is always used; the member is kept for Cloudflare's shape. */
  json_object_set_new(out, "pkce_enabled", json_boolean(!pk || json_is_true(pk)));
  return json_pack("{s:s,s:s,s:o}", "name", name, "type", "oidc", "config", out);
}

static void idp_write(wr__api_ctx *c, const char *id) {
  json_t *body = wr__api_body(c), *old = NULL, *doc;
  wr_store *s = c->store;
  int rv;
  if (!body) return;
  if (id && (rv = wr_store_access_get(s, c->token.account_id, "identity_provider", NULL, id, &old)) != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  doc = idp_doc(c, body, old);
  json_decref(old);
  if (!doc) return;
  doc_write(c, "identity_provider", NULL, id, NULL, doc);
}

/* ---- signing keys ---------------------------------------------------------------- */

/* POST keys/rotate: a new current signing key for the edge (keys are
 * edge-wide, edge/access.h); the gate reads it within its reload time and
 * the old key stays published. The key generation takes tens of
 * milliseconds: on the store thread when there is one. */
static void keys_rotate(wr__api_ctx *c) {
  wr_jwt_key *k = NULL;
  char *pem = NULL;
  json_t *keys = NULL;
  if (strcmp(c->method, "POST") != 0) {
    wr__api_method(c, "POST");
    return;
  }
  int rv = wr_jwt_key_generate(2048, &k);
  if (rv == WR_OK) rv = wr_jwt_key_export_pem(k, &pem);
  if (rv != WR_OK) {
    wr__api_err(c, 500, WR_API_CODE_INTERNAL, "cannot make a signing key");
  } else if ((rv = wr_store_access_key_add(c->store, c->actor, wr_jwt_key_kid(k), pem)) != WR_OK) {
    wr__api_store_err(c, rv, NULL);
  } else {
    wr_store_access_keys_prune(c->store, (int64_t)time(NULL) - 31 * 86400, NULL);
    wr_store_access_keys(c->store, &keys);
    wr__api_ok(c, json_pack("{s:s,s:o,s:I}", "kid", wr_jwt_key_kid(k), "last_key_rotation_at",
                            wr__api_time((int64_t)time(NULL)), "published_keys", (json_int_t)json_array_size(keys)),
               NULL);
    json_decref(keys);
  }
  if (pem) {
    explicit_bzero(pem, strlen(pem));
    free(pem);
  }
  wr_jwt_key_free(k);
}

/* ---- routing ------------------------------------------------------------------------------ */

/* GET/POST on a collection, GET/PUT/DELETE on an item. */
static void collection(wr__api_ctx *c, const char *kind, const char *parent, const char *id) {
  wr_store *s = c->store;
  const char *a = c->token.account_id, *m = c->method;
  json_t *out;
  int rv;
  if (!id) {
    if (!strcmp(m, "GET")) {
      if (parent && (rv = wr_store_access_get(s, a, "app", NULL, parent, &out)) == WR_OK) json_decref(out);
      else if (parent) { wr__api_store_err(c, rv, NULL); return; }
      if ((rv = wr_store_access_list(s, a, kind, parent, &out)) != WR_OK) { wr__api_store_err(c, rv, NULL); return; }
      size_t n = json_array_size(out);
      { wr__api_ok(c, out_list(out), wr__api_result_info(1, n, n, n)); return; }
    }
    if (strcmp(m, "POST") != 0) { wr__api_method(c, "GET, POST"); return; }
    if (!strcmp(kind, "app")) app_create(c);
    else if (!strcmp(kind, "service_token")) token_create(c);
    else if (!strcmp(kind, "identity_provider")) idp_write(c, NULL);
    else rules_write(c, kind, parent, NULL);
    return;
  }
  if (!strcmp(m, "GET")) {
    if ((rv = wr_store_access_get(s, a, kind, parent, id, &out)) != WR_OK) { wr__api_store_err(c, rv, NULL); return; }
    if (!strcmp(kind, "app")) {
      json_t *pol = NULL;
      if (wr_store_access_list(s, a, "policy", id, &pol) == WR_OK) json_object_set_new(out, "policies", out_list(pol));
    }
    { wr__api_ok(c, out_doc(out), NULL); return; }
  }
  if (!strcmp(m, "DELETE")) {
    if ((rv = wr_store_access_delete(s, c->actor, a, kind, parent, id)) != WR_OK) { wr__api_store_err(c, rv, NULL); return; }
    { wr__api_ok(c, json_pack("{s:s}", "id", id), NULL); return; }
  }
  if (!strcmp(m, "PUT") && strcmp(kind, "service_token") != 0) {
    if (!strcmp(kind, "app")) app_update(c, id);
    else if (!strcmp(kind, "identity_provider")) idp_write(c, id);
    else rules_write(c, kind, parent, id);
    return;
  }
  wr__api_method(c, strcmp(kind, "service_token") ? "GET, PUT, DELETE" : "GET, DELETE");
}

static void dispatch(wr__api_ctx *c);

void wr__api_access(wr__api_ctx *c) {
  /* A write (even a refused one: cheap) drops what the gate cached. The
   * request (and its method) is gone once answered: test first. */
  int write = strcmp(c->method, "GET") != 0;
  dispatch(c);
  if (write) wr__api_access_changed(c);
}

static void dispatch(wr__api_ctx *c) {
  char **s = c->segs;
  size_t n = c->nsegs;
  if (n >= 4 && n <= 5 && !strcmp(s[3], "apps")) { collection(c, "app", NULL, n == 5 ? s[4] : NULL); return; }
  if (n >= 6 && n <= 7 && !strcmp(s[3], "apps") && !strcmp(s[5], "policies"))
    { collection(c, "policy", s[4], n == 7 ? s[6] : NULL); return; }
  if (n == 5 && !strcmp(s[3], "keys") && !strcmp(s[4], "rotate")) {
    keys_rotate(c);
    return;
  }
  if (n >= 4 && n <= 5 && !strcmp(s[3], "groups")) { collection(c, "group", NULL, n == 5 ? s[4] : NULL); return; }
  if (n >= 4 && n <= 5 && !strcmp(s[3], "identity_providers"))
    { collection(c, "identity_provider", NULL, n == 5 ? s[4] : NULL); return; }
  if (n >= 4 && n <= 5 && !strcmp(s[3], "service_tokens"))
    { collection(c, "service_token", NULL, n == 5 ? s[4] : NULL); return; }
  wr__api_no_route(c);
}
