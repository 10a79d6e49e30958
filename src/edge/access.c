/* Access at the edge: keys and their publication, the per-request gate and
 * token issuing; see access.h. The sign-in pages are in access_login.c. */
#include "edge/access.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge/access_int.h"
#include "edge/access_policy.h"
#include "edge/store_access.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/hash.h"
#include "lib/log.h"
#include "lib/mem.h"

/* Pending OpenID Connect sign-ins kept (a flood of starts drops the
 * oldest, proto/oidc.h). */
#define MAX_OIDC_FLOWS 4096

uint64_t wr__access_now_ms(const wr_access *a) {
  (void)a;
  return uv_hrtime() / 1000000;
}

/* ---- keys ------------------------------------------------------------------------- */

/* A self-signed certificate of |k| (PEM, malloc'd): Cloudflare publishes
 * public_cert(s) next to the JWKs, and some verifiers read those. */
static char *key_cert(wr_jwt_key *k) {
  gnutls_x509_crt_t crt = NULL;
  gnutls_pubkey_t pub = NULL;
  gnutls_privkey_t priv = wr_jwt_key_gnutls(k);
  gnutls_datum_t out = {0};
  char *pem = NULL;
  uint8_t serial[16];
  time_t now = time(NULL);
  if (wr_random_bytes(serial, sizeof(serial)) != 0) return NULL;
  serial[0] &= 0x7f;
  if (gnutls_x509_crt_init(&crt) != 0 || gnutls_pubkey_init(&pub) != 0) goto out;
  if (gnutls_pubkey_import_privkey(pub, priv, 0, 0) != 0 || gnutls_x509_crt_set_pubkey(crt, pub) != 0 ||
      gnutls_x509_crt_set_version(crt, 3) != 0 || gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) != 0 ||
      gnutls_x509_crt_set_activation_time(crt, now - 3600) != 0 ||
      gnutls_x509_crt_set_expiration_time(crt, now + 10L * 365 * 86400) != 0 ||
      gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, wr_jwt_key_kid(k),
                                    (unsigned)strlen(wr_jwt_key_kid(k))) != 0 ||
      gnutls_x509_crt_privkey_sign(crt, crt, priv, GNUTLS_DIG_SHA256, 0) != 0 ||
      gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out) != 0)
    goto out;
  pem = wr_xstrndup((const char *)out.data, out.size);
out:
  gnutls_free(out.data);
  if (pub) gnutls_pubkey_deinit(pub);
  if (crt) gnutls_x509_crt_deinit(crt);
  return pem;
}

static void keys_clear(wr_access *a) {
  for (size_t i = 0; i < a->nkeys; i++) wr_jwt_key_free(a->keys[i]);
  a->nkeys = 0;
  wr_jwks_free(a->jwks);
  a->jwks = NULL;
  free(a->certs);
  a->certs = NULL;
}

/* The certs document of the loaded keys. */
static char *certs_doc(wr_access *a) {
  json_t *keys = json_array(), *certs = json_array();
  for (size_t i = 0; i < a->nkeys; i++) {
    json_array_append_new(keys, wr_jwt_key_jwk(a->keys[i]));
    char *pem = key_cert(a->keys[i]);
    json_array_append_new(certs, json_pack("{s:s,s:s}", "kid", wr_jwt_key_kid(a->keys[i]), "cert", pem ? pem : ""));
    free(pem);
  }
  json_t *doc = json_pack("{s:o,s:O,s:o}", "keys", keys, "public_cert", json_array_get(certs, 0), "public_certs", certs);
  char *text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  return text;
}

/* Takes the key rows |rows| (stolen) read from the store: WR_OK,
 * WR_ERR_NOTFOUND (none usable: the old keys stay). */
static int keys_apply(wr_access *a, json_t *rows) {
  json_t *r;
  size_t i;
  wr_jwt_key *loaded[WR_JWKS_MAX_KEYS];
  size_t n = 0;
  const char *first = json_string_value(json_object_get(json_array_get(rows, 0), "pem"));
  uint8_t csrf_key[32];
  /* The forms' CSRF key: secret, and the same on every edge of the store. */
  if (!first || gnutls_hmac_fast(GNUTLS_MAC_SHA256, "warren access csrf", 18, first, strlen(first), csrf_key) != 0)
    memset(csrf_key, 0, sizeof(csrf_key));
  json_array_foreach(rows, i, r) {
    const char *pem = json_string_value(json_object_get(r, "pem"));
    wr_jwt_key *k = NULL;
    if (n == WR_JWKS_MAX_KEYS || !pem) break;
    if (wr_jwt_key_import_pem(pem, strlen(pem), &k) == WR_OK) loaded[n++] = k;
    else wr_warn("access: stored signing key %s cannot be read; skipped",
                 json_string_value(json_object_get(r, "kid")));
  }
  json_decref(rows);
  if (!n) return WR_ERR_NOTFOUND;
  keys_clear(a);
  memcpy(a->csrf_key, csrf_key, sizeof(csrf_key));
  explicit_bzero(csrf_key, sizeof(csrf_key));
  memcpy(a->keys, loaded, n * sizeof(loaded[0]));
  a->nkeys = n;
  a->jwks = wr_jwks_from_keys(a->keys, n);
  a->certs = certs_doc(a);
  a->keys_at = wr__access_now_ms(a);
  return a->jwks && a->certs ? WR_OK : WR_ERR_NOMEM;
}

/* Reads the keys from the store now: WR_OK, WR_ERR_NOTFOUND (none), or an error. */
static int keys_load(wr_access *a) {
  json_t *rows = NULL;
  int rv = wr_store_access_keys(a->store, &rows);
  return rv == WR_OK ? keys_apply(a, rows) : rv;
}

/* The periodic reload on the store thread. */
typedef struct keys_job {
  wr_access *a;
  json_t *rows;
  int rv;
} keys_job;

static void keys_run(wr_store *s, void *arg) {
  keys_job *j = arg;
  j->rv = wr_store_access_keys(s, &j->rows);
}

static void keys_done(void *arg, int status) {
  keys_job *j = arg;
  wr_access *a = j->a;
  a->keys_reading = 0;
  if (!a->freeing && status == WR_OK && j->rv == WR_OK) keys_apply(a, j->rows);
  else json_decref(j->rows);
  free(j);
}

int wr_access_rotate(wr_access *a, const char *actor) {
  wr_jwt_key *k = NULL;
  char *pem = NULL;
  int rv = wr_jwt_key_generate(2048, &k);
  if (rv == WR_OK) rv = wr_jwt_key_export_pem(k, &pem);
  if (rv == WR_OK) rv = wr_store_access_key_add(a->store, actor, wr_jwt_key_kid(k), pem);
  if (rv == WR_OK) {
    size_t pruned = 0;
    wr_store_access_keys_prune(a->store, (int64_t)time(NULL) - WR_ACCESS_KEY_KEEP_S, &pruned);
    wr_info("access: new signing key %s%s", wr_jwt_key_kid(k), pruned ? " (old keys pruned)" : "");
    rv = keys_load(a);
  }
  if (pem) {
    explicit_bzero(pem, strlen(pem));
    free(pem);
  }
  wr_jwt_key_free(k);
  return rv;
}

void wr__access_keys_fresh(wr_access *a) {
  if (wr__access_now_ms(a) - a->keys_at < WR_ACCESS_RELOAD_MS || a->keys_reading) return;
  if (a->async) { /* the current keys serve until the read is back */
    keys_job *j = wr_xcalloc(1, sizeof(*j));
    j->a = a;
    if (wr__access_submit(a, keys_run, keys_done, j, sizeof(*j)) != WR_OK) {
      a->keys_at = wr__access_now_ms(a); /* retry later */
      return;
    }
    a->keys_reading = 1;
    a->keys_at = wr__access_now_ms(a); /* a failed read is retried a period later */
    return;
  }
  if (keys_load(a) != WR_OK) a->keys_at = wr__access_now_ms(a); /* keep the old ones; retry later */
}

const char *wr_access_certs(wr_access *a) {
  wr__access_keys_fresh(a);
  return a->certs;
}

const char *wr_access_team_domain(const wr_access *a) { return a->team; }

void wr_access_set_team_domain(wr_access *a, const char *url) {
  free(a->team);
  a->team = wr_xstrdup(url);
  size_t tl = strlen(a->team);
  while (tl && a->team[tl - 1] == '/') a->team[--tl] = '\0';
}

/* ---- the host cache ---------------------------------------------------------------- */

/* The slot of |host|, or NULL. */
static size_t slot_home(const char *host) { return wr_hash_str(host) % WR__ACCESS_CACHE_SLOTS; }

static wr__access_host *slot_find(wr_access *a, const char *host) {
  size_t home = slot_home(host);
  for (size_t k = 0; k < WR__ACCESS_CACHE_PROBE; k++) {
    wr__access_host *e = &a->cache[(home + k) % WR__ACCESS_CACHE_SLOTS];
    if (e->host[0] && strcmp(e->host, host) == 0) return e;
  }
  return NULL;
}

/* A slot for a new host among its probe slots: a free one, else the one
 * that expired first among those not waiting for the store; NULL when all
 * of them wait. */
static wr__access_host *slot_take(wr_access *a, const char *host) {
  wr__access_host *slot = NULL;
  size_t home = slot_home(host);
  for (size_t k = 0; k < WR__ACCESS_CACHE_PROBE; k++) {
    wr__access_host *e = &a->cache[(home + k) % WR__ACCESS_CACHE_SLOTS];
    if (e->pending) continue;
    if (!e->host[0]) {
      slot = e;
      break;
    }
    if (!slot || e->expires < slot->expires) slot = e;
  }
  if (!slot) return NULL;
  json_decref(slot->doc);
  memset(slot, 0, sizeof(*slot));
  snprintf(slot->host, sizeof(slot->host), "%s", host);
  return slot;
}

/* The applications of |host| (wr_store_access_for_host) and, for the
 * team domain's pages, the identity providers of their accounts:
 * "idps": {account id: [provider...]}. On either thread. */
static int read_host(wr_store *s, const char *host, json_t **out) {
  json_t *doc = NULL, *app, *idps = json_object();
  size_t i;
  int rv = wr_store_access_for_host(s, host, &doc);
  json_array_foreach(rv == WR_OK ? json_object_get(doc, "apps") : NULL, i, app) {
    const char *acct = json_string_value(json_object_get(app, "account_id"));
    json_t *list = NULL;
    if (!acct || json_object_get(idps, acct)) continue;
    if ((rv = wr_store_access_list(s, acct, "identity_provider", NULL, &list)) != WR_OK) break;
    json_object_set_new(idps, acct, list);
  }
  if (rv == WR_OK) json_object_set(doc, "idps", idps);
  json_decref(idps);
  if (rv != WR_OK) {
    json_decref(doc);
    doc = NULL;
  }
  *out = doc;
  return rv;
}

json_t *wr__access_host_doc(wr_access *a, const char *host) {
  uint64_t now = wr__access_now_ms(a);
  wr__access_host *slot = slot_find(a, host);
  /* With a store thread the callers prefetched: the cache is the answer. */
  if (a->async) return slot ? slot->doc : NULL;
  if (slot && slot->doc && slot->expires > now) return slot->doc;
  if (!slot) slot = slot_take(a, host);
  json_t *doc = NULL;
  if (read_host(a->store, host, &doc) != WR_OK)
    wr_warn("access: looking up the applications of %s failed: %s", host, wr_store_errmsg(a->store));
  if (!slot) {
    json_decref(a->aside);
    a->aside = doc;
    return doc;
  }
  json_decref(slot->doc);
  slot->doc = doc;
  slot->expires = now + WR_ACCESS_CACHE_MS;
  return doc;
}

json_t *wr__access_idps(wr_access *a, const char *host, const char *account) {
  return json_object_get(json_object_get(wr__access_host_doc(a, host), "idps"), account);
}

/* ---- reads on the store thread ---------------------------------------------------------- */

typedef struct host_job {
  wr_access *a;
  uint64_t gen;
  char host[WR_STORE_HOST_MAX + 1];
  json_t *doc;
  int rv;
  char errmsg[WR_STORE_ERRMSG_MAX];
} host_job;

static void host_job_run(wr_store *s, void *arg) {
  host_job *j = arg;
  j->rv = read_host(s, j->host, &j->doc);
  if (j->rv != WR_OK) snprintf(j->errmsg, sizeof(j->errmsg), "%s", wr_store_errmsg(s));
}

static void host_job_done(void *arg, int status) {
  host_job *j = arg;
  wr_access *a = j->a;
  wr__access_host *slot = slot_find(a, j->host);
  if (slot && slot->pending && slot->gen == j->gen && !a->freeing) {
    if (status != WR_OK || j->rv != WR_OK)
      wr_warn("access: looking up the applications of %s failed: %s", j->host,
              wr_store_async_why(status, j->errmsg));
    json_decref(slot->doc);
    slot->doc = status == WR_OK && j->rv == WR_OK ? j->doc : NULL;
    if (slot->doc) j->doc = NULL;
    slot->pending = 0;
    slot->expires = wr__access_now_ms(a) + WR_ACCESS_CACHE_MS;
  }
  json_decref(j->doc);
  free(j);
  wr__access_read_back(a);
}

void wr__access_read_back(wr_access *a) {
  if (a->freeing) return;
  wr_watchers_notify(a->watchers, WR__ACCESS_WATCHERS);
  wr__access_pages_resume(a);
}

int wr__access_submit(wr_access *a, wr_store_async_fn run, wr_store_async_done done, void *j, size_t size) {
  if (wr_store_async_owner_submit(a->async, &a->jobs, run, done, j) != WR_OK) {
    explicit_bzero(j, size);
    free(j);
    return WR_ERR_LIMIT;
  }
  return WR_OK;
}

int wr_access_prefetch(wr_access *a, const char *host, int stale_ok) {
  wr__access_host *slot = slot_find(a, host);
  /* While a host's applications are read again, the last answer serves:
   * a visitor of a known host never waits behind the store thread. */
  if (slot && slot->pending) return slot->doc ? WR_OK : WR_AGAIN;
  if (slot && (stale_ok || slot->expires > wr__access_now_ms(a))) return WR_OK;
  if (!a->async) return WR_OK;
  /* Every slot this host could use waits for the store: so does the
   * request, until one of those reads is back (the watchers wake it). */
  if (!slot && !(slot = slot_take(a, host))) return WR_AGAIN;
  host_job *j = wr_xcalloc(1, sizeof(*j));
  j->a = a;
  j->gen = ++a->gen;
  snprintf(j->host, sizeof(j->host), "%s", host);
  if (wr__access_submit(a, host_job_run, host_job_done, j, sizeof(*j)) != WR_OK) return WR_ERR_LIMIT;
  slot->pending = 1;
  slot->gen = j->gen;
  return slot->doc ? WR_OK : WR_AGAIN;
}

void wr_access_invalidate(wr_access *a) {
  for (size_t i = 0; i < WR__ACCESS_CACHE_SLOTS; i++) {
    json_decref(a->cache[i].doc);
    memset(&a->cache[i], 0, sizeof(a->cache[i])); /* reads in flight find no slot */
  }
  memset(a->tokens, 0, sizeof(a->tokens)); /* a revoked service token stops at once */
}

int wr_access_watch(wr_access *a, void (*cb)(void *user), void *user) {
  return wr_watchers_add(a->watchers, WR__ACCESS_WATCHERS, cb, user);
}

void wr_access_unwatch(wr_access *a, void *user) {
  if (a) wr_watchers_remove(a->watchers, WR__ACCESS_WATCHERS, user);
}

/* ---- tokens ------------------------------------------------------------------------- */

int64_t wr__access_session_s(json_t *app) {
  const char *s = json_string_value(json_object_get(app, "session_duration"));
  int64_t total = 0, n = 0;
  for (; s && *s; s++) {
    if (*s >= '0' && *s <= '9') n = n * 10 + (*s - '0');
    else {
      total += n * (*s == 'h' ? 3600 : *s == 'm' ? 60 : 1);
      n = 0;
    }
  }
  return total > 0 ? total : 86400;
}

char *wr__access_sign(wr_access *a, json_t *app, json_t *ident) {
  char nonce[33], *tok = NULL;
  uint8_t nb[16];
  int64_t now = (int64_t)time(NULL);
  if (!a->nkeys || wr_random_bytes(nb, sizeof(nb)) != 0) {
    json_decref(ident);
    return NULL;
  }
  wr_hex_encode(nb, sizeof(nb), nonce);
  nonce[32] = '\0';
  json_t *c = json_pack("{s:[O],s:I,s:I,s:I,s:s,s:s,s:s}", "aud", json_object_get(app, "aud"), "iat", (json_int_t)now,
                        "nbf", (json_int_t)now, "exp", (json_int_t)(now + wr__access_session_s(app)), "iss", a->team,
                        "type", "app", "identity_nonce", nonce);
  if (c && ident) json_object_update(c, ident);
  json_decref(ident);
  if (c) wr_jwt_sign(a->keys[0], c, &tok);
  json_decref(c);
  return tok;
}

void wr__access_audit(wr_access *a, const char *account, const char *action, const char *target, json_t *detail) {
  char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
  json_decref(detail);
  /* With a store thread the row is written there; nobody waits for it. */
  if (wr_ratelimit_take(&a->audit_rl, wr__access_now_ms(a)))
    wr_store_async_audit(a->async, a->store, "access", "access", account, NULL, action, "access_app", target, text);
  free(text);
}

/* ---- the gate ------------------------------------------------------------------------- */

/* The app of |apps| whose domain covers host+path best (longest path). */
static json_t *pick_app(json_t *apps, const char *host, const char *path, size_t plen) {
  json_t *best = NULL, *app;
  size_t best_len = 0, i, hl = strlen(host);
  json_array_foreach(apps, i, app) {
    const char *dom = json_string_value(json_object_get(app, "domain"));
    if (!dom || strncmp(dom, host, hl) != 0) continue;
    const char *p = dom + hl; /* "" or "/prefix" */
    size_t l = strlen(p);
    if (l && *p != '/') continue; /* another host that starts alike */
    if (l && (plen < l || memcmp(path, p, l) != 0 || (plen > l && path[l] != '/'))) continue;
    if (!best || l > best_len) {
      best = app;
      best_len = l;
    }
  }
  return best;
}

/* Who the request is; fills |who| and |ident| (the identity claims of a new
 * token, or NULL when |*reuse| is the visitor's own valid token). */
static void identify(wr_access *a, const wr_access_req *q, json_t *app, wr_access_who *who, json_t **ident,
                     json_t **claims, char *tid, char *why, size_t whylen) {
  const char *acct = json_string_value(json_object_get(app, "account_id"));
  char tacct[WR_STORE_ID_LEN + 1];
  *ident = NULL;
  *claims = NULL;
  if (q->client_id && q->client_secret) {
    if (wr__access_token_check(a, q->client_id, q->client_secret, tid, tacct) == WR_OK &&
        acct && strcmp(tacct, acct) == 0) {
      who->token_id = tid;
      *ident = json_pack("{s:s,s:s}", "common_name", q->client_id, "sub", "");
      return;
    }
    snprintf(why, whylen, "invalid service token");
  }
  if (q->token) {
    const char *aud = json_string_value(json_object_get(app, "aud"));
    wr_jwt_expect w = {.now = (int64_t)time(NULL), .auds = &aud, .naud = 1, .iss = a->team};
    char err[160];
    if (wr_jwt_verify(a->jwks, q->token, strlen(q->token), &w, claims, err, sizeof(err)) == WR_OK) {
      const char *email = json_string_value(json_object_get(*claims, "email"));
      if (email && *email) who->email = email;
      return;
    }
    snprintf(why, whylen, "token refused: %.120s", err);
  }
}

static void decide(wr_access *a, const wr_access_req *q, json_t *app, json_t *groups, wr_access_decision *d) {
  wr_access_who who = {.family = q->family};
  char tid[WR_STORE_UUID_LEN + 1] = "";
  json_t *ident = NULL, *claims = NULL;
  wr_access_result res;
  memcpy(who.ip, q->ip, 16);
  identify(a, q, app, &who, &ident, &claims, tid, d->why, sizeof(d->why));
  wr_access_evaluate(json_object_get(app, "policies"), groups, &who, &res);
  const char *name = json_string_value(json_object_get(app, "name")), *acct = json_string_value(json_object_get(app, "account_id"));
  const char *id = who.email ? who.email : who.token_id ? q->client_id : "anonymous";
  switch (res.verdict) {
  case WR_ACCESS_BYPASS:
    d->outcome = WR_ACCESS_PASS;
    a->stats.bypassed++;
    break;
  case WR_ACCESS_ALLOW:
    d->outcome = WR_ACCESS_FORWARD;
    a->stats.allowed++;
    if (claims && !ident) d->jwt = wr_xstrdup(q->token); /* the visitor's own token goes on */
    else d->jwt = wr__access_sign(a, app, ident ? ident : json_object());
    ident = NULL;
    if (!d->jwt) {
      d->outcome = WR_ACCESS_ERROR;
      snprintf(d->why, sizeof(d->why), "cannot sign the application token");
    }
    break;
  case WR_ACCESS_NEED_LOGIN:
    d->outcome = WR_ACCESS_LOGIN;
    a->stats.login_needed++;
    break;
  default:
    d->outcome = WR_ACCESS_FORBIDDEN;
    a->stats.denied++;
    if (!d->why[0]) snprintf(d->why, sizeof(d->why), "%s", res.policy_id[0] ? "a deny policy matched" : "no policy allows");
    wr__access_audit(a, acct, "access.deny", json_string_value(json_object_get(app, "id")),
                     json_pack("{s:s,s:s,s:s,s:s,s:s}", "who", id, "ip", q->ip_text ? q->ip_text : "", "app",
                               name ? name : "", "policy", res.policy_id, "why", d->why));
    break;
  }
  wr_info("access: %s %s%.*s app=%s who=%s ip=%s -> %s%s%s%s", d->outcome == WR_ACCESS_FORBIDDEN ? "deny" : "check",
          q->host, (int)(q->path_len > 200 ? 200 : q->path_len), q->path, name ? name : "?", id,
          q->ip_text ? q->ip_text : "-", res.verdict == WR_ACCESS_BYPASS ? "bypass" : res.verdict == WR_ACCESS_ALLOW ? "allow"
          : res.verdict == WR_ACCESS_NEED_LOGIN ? "sign-in" : "deny", res.policy_id[0] ? " policy=" : "", res.policy_id,
          d->why[0] && d->outcome != WR_ACCESS_FORWARD ? " (see why)" : "");
  json_decref(ident);
  json_decref(claims);
}

void wr_access_check(wr_access *a, const wr_access_req *q, wr_access_decision *d) {
  memset(d, 0, sizeof(*d));
  wr__access_keys_fresh(a);
  json_t *doc = wr__access_host_doc(a, q->host);
  if (!doc) {
    d->outcome = WR_ACCESS_ERROR;
    a->stats.errors++;
    snprintf(d->why, sizeof(d->why), "the edge could not read its Access applications");
    return;
  }
  json_t *app = pick_app(json_object_get(doc, "apps"), q->host, q->path, q->path_len);
  if (!app) return; /* PASS: not covered */
  snprintf(d->aud, sizeof(d->aud), "%s", json_string_value(json_object_get(app, "aud")));
  snprintf(d->app_domain, sizeof(d->app_domain), "%s", json_string_value(json_object_get(app, "domain")));
  snprintf(d->login_url, sizeof(d->login_url), "%s/cdn-cgi/access/login/%s?kid=%s", a->team, q->host, d->aud);
  decide(a, q, app, json_object_get(doc, "groups"), d);
}

int wr_access_authorized(wr_access *a, const char *host, const char *token, int64_t *max_age) {
  json_t *doc = wr__access_host_doc(a, host), *app;
  size_t i;
  wr__access_keys_fresh(a);
  if (!doc) return WR_ERR_DENIED;
  json_array_foreach(json_object_get(doc, "apps"), i, app) {
    const char *aud = json_string_value(json_object_get(app, "aud"));
    wr_jwt_expect w = {.now = (int64_t)time(NULL), .auds = &aud, .naud = 1, .iss = a->team};
    char err[160];
    if (aud && wr_jwt_verify(a->jwks, token, strlen(token), &w, NULL, err, sizeof(err)) == WR_OK) {
      *max_age = wr__access_session_s(app);
      return WR_OK;
    }
  }
  return WR_ERR_DENIED;
}

/* ---- the CLI hand-off ------------------------------------------------------------------ */

static int transfer_key_ok(const char *key) {
  size_t n = strlen(key);
  if (n < 16 || n > 88) return 0;
  for (const char *p = key; *p; p++)
    if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=", *p)) return 0;
  return 1;
}

static void transfer_clear(wr__access_transfer *t) {
  if (t->body) {
    explicit_bzero(t->body, strlen(t->body));
    free(t->body);
  }
  memset(t, 0, sizeof(*t));
}

int wr_access_cli_token(wr_access *a, const char *host, const char *aud, const char *token, const char *key) {
  json_t *doc = wr__access_host_doc(a, host), *app;
  size_t i;
  int ok = 0;
  if (!key || !transfer_key_ok(key)) return WR_ERR_INVAL;
  wr__access_keys_fresh(a);
  json_array_foreach(json_object_get(doc, "apps"), i, app) {
    const char *tag = json_string_value(json_object_get(app, "aud"));
    wr_jwt_expect w = {.now = (int64_t)time(NULL), .auds = &tag, .naud = 1, .iss = a->team};
    char err[160];
    if (tag && aud && !strcmp(tag, aud) && token &&
        wr_jwt_verify(a->jwks, token, strlen(token), &w, NULL, err, sizeof(err)) == WR_OK)
      ok = 1;
  }
  if (!ok) return WR_ERR_DENIED;
  uint64_t now = wr__access_now_ms(a);
  wr__access_transfer *slot = &a->transfers[0];
  for (size_t k = 0; k < WR_ACCESS_TRANSFERS; k++) {
    wr__access_transfer *t = &a->transfers[k];
    if (t->body && (t->expires <= now || !strcmp(t->key, key))) transfer_clear(t);
    if (!t->body ? slot->body != NULL : slot->body && t->expires < slot->expires) slot = t;
  }
  transfer_clear(slot);
  json_t *body = json_pack("{s:s}", "app_token", token);
  slot->body = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  snprintf(slot->key, sizeof(slot->key), "%s", key);
  slot->expires = now + WR_ACCESS_TRANSFER_MS;
  return slot->body ? WR_OK : WR_ERR_NOMEM;
}

int wr_access_transfer_take(wr_access *a, const char *key, char **body) {
  uint64_t now = wr__access_now_ms(a);
  *body = NULL;
  for (size_t k = 0; k < WR_ACCESS_TRANSFERS; k++) {
    wr__access_transfer *t = &a->transfers[k];
    if (!t->body || strcmp(t->key, key) != 0) continue;
    if (t->expires > now) {
      *body = t->body; /* handed over once */
      t->body = NULL;
    }
    transfer_clear(t);
    return *body ? WR_OK : WR_ERR_NOTFOUND;
  }
  return WR_ERR_NOTFOUND;
}

const wr_access_stats *wr_access_get_stats(const wr_access *a) { return &a->stats; }

/* ---- lifecycle ------------------------------------------------------------------------- */

static void access_release(wr_owner *o);

int wr_access_new(const wr_access_gate_config *cfg, wr_access **out) {
  *out = NULL;
  if (!cfg || !cfg->loop || !cfg->store || !cfg->team_domain || !*cfg->team_domain) return WR_ERR_INVAL;
  wr_access *a = wr_xcalloc(1, sizeof(*a));
  wr_owner_init(&a->jobs, access_release);
  a->loop = cfg->loop;
  a->store = cfg->store;
  a->async = cfg->async;
  a->team = wr_xstrdup(cfg->team_domain);
  size_t tl = strlen(a->team);
  while (tl && a->team[tl - 1] == '/') a->team[--tl] = '\0';
  a->audit_rl.burst = 100;
  a->audit_rl.every_ms = 1000;
  wr_throttle_config tc = {.free_failures = 5};
  a->oidc = wr_oidc_states_new(MAX_OIDC_FLOWS, WR_OIDC_FLOW_TTL_MS);
  int rv = wr_throttle_new(&tc, &a->signin_rl);
  if (rv == WR_OK) {
    rv = keys_load(a);
    if (rv == WR_ERR_NOTFOUND) rv = wr_access_rotate(a, "edge");
  }
  if (rv != WR_OK) {
    wr_owner_close(&a->jobs); /* frees |a|: nothing is pending */
    return rv;
  }
  *out = a;
  return WR_OK;
}

static void access_release(wr_owner *o) {
  wr_access *a = WR_OWNER_OBJ(o, wr_access, jobs);
  keys_clear(a);
  for (size_t i = 0; i < WR__ACCESS_CACHE_SLOTS; i++) json_decref(a->cache[i].doc);
  json_decref(a->aside);
  wr_throttle_free(a->signin_rl);
  wr_oidc_states_free(a->oidc);
  for (size_t i = 0; i < WR_ACCESS_TRANSFERS; i++) transfer_clear(&a->transfers[i]);
  free(a->team);
  free(a);
}

void wr_access_free(wr_access *a) {
  if (!a) return;
  a->freeing = 1;
  wr__access_pages_drop(a);
  wr_owner_close(&a->jobs); /* frees |a| now or after its last job */
}
