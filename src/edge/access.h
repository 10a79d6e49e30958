/* Cloudflare Access at the edge: the identity check every visitor request to
 * a hostname covered by an Access application passes before it reaches a
 * tunnel, the application tokens (RS256 JWTs, proto/jwt.h) handed to
 * origins, the signing keys and their publication, and the sign-in pages.
 * docs/access.md describes the behaviour for users; in short:
 *
 *   - An application covers "host" or "host/path" (a path prefix that ends
 *     at a '/' or the end of the path); the longest matching domain wins.
 *   - Identity: service token headers CF-Access-Client-Id and
 *     CF-Access-Client-Secret (a token of the app's account), else an
 *     application token in the CF_Authorization cookie or the
 *     Cf-Access-Token header (signed by this edge, aud = the app's tag,
 *     not expired).
 *   - Policies (edge/access_policy.h) decide: bypass (served without a
 *     token), allow (served with Cf-Access-Jwt-Assertion), deny (403), or
 *     sign in first: browsers get 302 to the team domain's sign-in page,
 *     other clients 401 (with CF-Access-Aud and CF-Access-Domain).
 *   - Sign-in (access_login.c, on the team domain: the API listener) checks
 *     an edge user's email and password on libuv's worker pool, then sends
 *     the browser to https?://<app host>/cdn-cgi/access/authorized with the
 *     new token, where the visitor front sets the CF_Authorization cookie
 *     and redirects back. /cdn-cgi/access/logout clears the cookie.
 *   - Keys: one current RSA-2048 key signs; keys live in the store, so
 *     every edge of one store signs alike. A rotation (API POST
 *     /accounts/{a}/access/keys/rotate, or wr_access_rotate) adds a new
 *     current key; retired keys stay published at /cdn-cgi/access/certs for
 *     WR_ACCESS_KEY_KEEP_S so tokens signed with them still verify, then
 *     are pruned. Keys are re-read from the store every
 *     WR_ACCESS_RELOAD_MS.
 *   - Every decision is logged (info: who, app, verdict, policy) and
 *     counted; denials and sign-ins write audit rows (access.deny,
 *     access.login), rate-limited so a flood cannot fill the audit log.
 *
 * Threading: the loop thread only. Store reads for a host are cached for
 * WR_ACCESS_CACHE_MS (a policy change takes effect within that time); with
 * a store thread every store call runs there: the gate's reads of a
 * host's apps (wr_access_prefetch) and of service tokens
 * (wr_access_prefetch_token), the team domain's pages (they wait for the
 * host's read), the sign-in's user read, audit rows and the periodic key
 * reload. Only wr_access_new and wr_access_rotate (start-up, the API) use
 * the store on the caller's thread. */
#ifndef WR_EDGE_ACCESS_H
#define WR_EDGE_ACCESS_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "edge/store.h"
#include "edge/store_async.h"
#include "net/httpd.h"

#define WR_ACCESS_CACHE_MS 1000
#define WR_ACCESS_RELOAD_MS 60000
#define WR_ACCESS_KEY_KEEP_S (31 * 86400) /* longer than the longest session (720h) */
#define WR_ACCESS_COOKIE "CF_Authorization"

typedef struct wr_access wr_access;

typedef struct wr_access_gate_config {
  uv_loop_t *loop;         /* required: the worker pool for password checks */
  wr_store *store;         /* required */
  /* The team domain: the URL (scheme://host[:port]) of the sign-in pages
   * (the API listener) and the "iss" of every token. Required. */
  const char *team_domain;
  /* Optional: the gate reads a host's applications on this store thread
   * (wr_access_prefetch); NULL: on the loop thread. */
  wr_store_async *async;
} wr_access_gate_config;

/* Loads the signing keys (making the first one when the store has none).
 * Returns WR_OK, WR_ERR_INVAL, WR_ERR_CRYPTO or a store error. */
int wr_access_new(const wr_access_gate_config *cfg, wr_access **out);
/* Pending sign-ins are answered 503; the object is freed once their
 * worker jobs are back (keep running the loop). NULL is a no-op. */
void wr_access_free(wr_access *a);

/* Replaces the team domain (once the API listener's address is known). */
void wr_access_set_team_domain(wr_access *a, const char *url);
/* The team domain (the tokens' "iss"). */
const char *wr_access_team_domain(const wr_access *a);

/* A new current key (the old ones are retired and stay published).
 * Blocks for the key generation (tens of milliseconds). */
int wr_access_rotate(wr_access *a, const char *actor);

/* /cdn-cgi/access/certs: {"keys":[JWK...],"public_cert":{kid,cert},
 * "public_certs":[{kid,cert}...]} (current key first). Owned by |a|, valid
 * until the next call into |a|. */
const char *wr_access_certs(wr_access *a);

/* One visitor request, as the gate sees it. */
typedef struct wr_access_req {
  const char *host;          /* canonical (lower case, no port) */
  const char *path;          /* the path of the target (no query) */
  size_t path_len;
  const char *client_id, *client_secret; /* service token headers or NULL */
  const char *token;         /* CF_Authorization cookie / Cf-Access-Token, or NULL */
  int family;                /* AF_INET / AF_INET6 / 0 */
  uint8_t ip[16];
  const char *ip_text;       /* for logs */
} wr_access_req;

enum wr_access_outcome {
  WR_ACCESS_PASS = 0,     /* not covered, or bypass: forward as it is */
  WR_ACCESS_FORWARD,      /* allowed: forward with |jwt| */
  WR_ACCESS_LOGIN,        /* no identity: sign in (302) or 401 */
  WR_ACCESS_FORBIDDEN,    /* 403 */
  WR_ACCESS_ERROR         /* the store failed: 502, fail closed */
};

typedef struct wr_access_decision {
  int outcome;              /* enum wr_access_outcome */
  char *jwt;                /* FORWARD: Cf-Access-Jwt-Assertion (free it) */
  char aud[72];             /* the app's tag ("" when not covered) */
  char app_domain[320];     /* the app's domain */
  char login_url[1024];     /* LOGIN: the sign-in page, without redirect_url */
  char why[160];            /* for logs and pages */
} wr_access_decision;

/* Makes sure the applications of |host| are in the cache before
 * wr_access_check: WR_OK (cached and fresh, or cached and |stale_ok|, or no
 * store thread: wr_access_check reads the store itself, or cached but
 * expired: the last answer serves while the store thread reads it again,
 * so a change reaches the gate one store read after WR_ACCESS_CACHE_MS),
 * WR_AGAIN (not cached: a read is on the store thread, or every cache
 * slot |host| may use waits for one; the watchers are called when a read
 * is back: ask again then, with |stale_ok|), or WR_ERR_LIMIT (the store
 * thread's queue is full: answer as for a store error). */
int wr_access_prefetch(wr_access *a, const char *host, int stale_ok);
/* With a store thread: makes sure the service token |client_id| /
 * |secret| has been checked before wr_access_check needs it (the apps of
 * |host| are prefetched; no app: nothing to check). WR_OK, WR_AGAIN (a
 * read is on the store thread: the watchers are called when it is back;
 * ask again then with |stale_ok|), WR_ERR_LIMIT (queue full). A check is
 * kept WR_ACCESS_CACHE_MS, by a hash of id and secret. */
int wr_access_prefetch_token(wr_access *a, const char *host, const char *client_id, const char *secret,
                             int stale_ok);
/* Forgets every host's cached applications (the API changed some): the
 * next visitor of each host waits for a fresh read. */
void wr_access_invalidate(wr_access *a);
/* Called (on the loop) each time a read of wr_access_prefetch is back.
 * At most 8 watchers; wr_access_unwatch before |user| goes away. */
int wr_access_watch(wr_access *a, void (*cb)(void *user), void *user);
void wr_access_unwatch(wr_access *a, void *user);

/* Decides for |q|. Never fails open: a store error is WR_ACCESS_ERROR.
 * With a store thread, |q->host| must have been prefetched (WR_OK) in the
 * same loop iteration; its cached applications are used as they are. */
void wr_access_check(wr_access *a, const wr_access_req *q, wr_access_decision *d);

/* /cdn-cgi/access/authorized on an app host: verifies |token| for one of
 * |host|'s apps. Returns WR_OK with the session length in *max_age, or
 * WR_ERR_DENIED. */
int wr_access_authorized(wr_access *a, const char *host, const char *token, int64_t *max_age);

/* The team domain's pages on the API listener: /cdn-cgi/access/login[/...]
 * (GET form, POST sign-in) and /cdn-cgi/access/certs. Returns 1 when it
 * answered (now or later), 0 for another path. */
int wr_access_handle_httpd(wr_access *a, wr_httpd_req *req);

/* The CLI hand-off (`warren access login`, after cloudflared's transfer
 * service): /cdn-cgi/access/cli on an app host, once the browser holds a
 * valid token for the app tagged |aud| there, leaves
 * {"app_token": <that token>} under |key| (the CLI's random name, 16..88
 * characters of base64); the CLI fetches it once from
 * /cdn-cgi/access/transfer/<key>. At most WR_ACCESS_TRANSFERS are held,
 * each for WR_ACCESS_TRANSFER_MS (the oldest goes first).
 * wr_access_cli_token: WR_OK after storing, WR_ERR_DENIED (no valid token
 * for that app), WR_ERR_INVAL (a bad key). wr_access_transfer_take:
 * WR_OK with *body malloc'd, or WR_ERR_NOTFOUND. */
#define WR_ACCESS_TRANSFERS 256
#define WR_ACCESS_TRANSFER_MS (10u * 60u * 1000u)
int wr_access_cli_token(wr_access *a, const char *host, const char *aud, const char *token, const char *key);
int wr_access_transfer_take(wr_access *a, const char *key, char **body);

typedef struct wr_access_stats {
  uint64_t allowed, bypassed, denied, login_needed, errors;
  uint64_t signins_ok, signins_failed;
} wr_access_stats;
const wr_access_stats *wr_access_get_stats(const wr_access *a);

#endif
