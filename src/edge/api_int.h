/* Internals of the REST API (edge/api.h), shared by its files:
 *   api.c          router, authentication, envelope, query and path parsing
 *   api_tunnels.c  /accounts/{a}/cfd_tunnel...
 *   api_zones.c    /zones/{z}/tunnels/{t}/routes and /zones/{z}/dns_records
 *   api_teamnet.c  /accounts/{a}/teamnet/routes... and virtual_networks
 *   api_audit.c    /accounts/{a}/audit_logs
 *   api_devices.c  /accounts/{a}/devices... (WireGuard devices)
 *   api_quick.c    POST /tunnel (quick tunnels) and their expiry
 *   api_access.c   /accounts/{a}/access/... (Access apps, policies, groups,
 *                  service tokens)
 *   api_async.c    requests served on the store thread
 * Every handler answers its request exactly once, through wr__api_ok or
 * wr__api_err (or wr__api_store_err); the router answers 500 if one did
 * not.
 *
 * Threads. With a store thread (wr_api_config.async), a /client/v4
 * request is parsed and its source checked on the loop, then authenticated
 * and handled on the store thread (api_async.c): handlers use c->store,
 * never c->api->store, and reach loop objects only through wr__api_on_loop
 * (a call run on the loop while the handler waits) or the deferred
 * wr__api_route_event / wr__api_access_changed (run on the loop before the
 * answer is sent). Everything else in wr_api is read-only after
 * wr_api_new, or touched on the loop only (stats, throttles). */
#ifndef WR_EDGE_API_INT_H
#define WR_EDGE_API_INT_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "edge/api.h"
#include "edge/throttle.h"
#include "edge/store_async.h"

/* Error codes in errors[].code (cloudflared shows them, never switches on
 * them; the HTTP status is what it acts on). */
#define WR_API_CODE_INTERNAL 1000
#define WR_API_CODE_INVALID 1001
#define WR_API_CODE_NOTFOUND 1003
#define WR_API_CODE_CONFLICT 1013
#define WR_API_CODE_LIMIT 1015
#define WR_API_CODE_NO_ROUTE 7003
#define WR_API_CODE_RATE_LIMIT 971
#define WR_API_CODE_AUTH 10000
#define WR_API_CODE_METHOD 10405

#define WR_API_MAX_SEGS 12
#define WR_API_MAX_PARAMS 32
#define WR_API_PER_PAGE_MAX 1000

struct wr_api {
  wr_store *store;         /* the loop's: quick tunnels, wr_api_call */
  wr_store_async *async;   /* NULL: every request on the loop */
  wr_tunnel_server *ts;
  size_t max_tunnels;
  size_t max_routes;
  char *cname_domain; /* NULL: cfargotunnel.<zone> */
  char *location;     /* NULL: as stored */
  void (*on_route)(void *user, int op, const char *hostname, const char *tunnel_id);
  void *route_user;
  void (*on_access_change)(void *user);
  void *access_user;
  wr_api_stats stats; /* for --metrics */
  wr_throttle *tokens;    /* invalid tokens per source */
  wr_ratelimit audit_rl;  /* api.lock / api.unlock rows */
  uint64_t next_sweep;    /* when the token throttle is next swept */
  uint64_t (*now_ms)(void *user);
  void *now_user;
  char *data_dir;    /* NULL: no WireGuard key, device configs are null */
  char *wg_endpoint; /* NULL: DATA_DIR/wireguard-endpoint */
  /* Quick tunnels (api_quick.c); off when quick_account is NULL. */
  char *quick_account;
  char *quick_zone;
  char *strs; /* the one block holding the strings of wr_api_config kept above
               * (cname_domain to quick_zone): free only it (lib/strpack.h) */
  size_t quick_max;
  int64_t quick_idle_s;
  unsigned quick_url_port;
  wr_throttle *quick_rl; /* creations per source */
  int quick_sweeping;    /* a sweep is on the store thread */
  int stopping;          /* wr_api_stop or _free: hooks are not called any more */
  /* Requests and the quick-tunnel sweep on the store thread (loop
   * thread): wr_api_free closes it; its release frees the API. */
  wr_owner jobs;
};

/* Tells the on_route hook, if any, now (loop thread). */
static inline void wr__api_route_notify(const struct wr_api *a, int op, const char *host,
                                        const char *tunnel_id) {
  if (a->on_route) a->on_route(a->route_user, op, host, tunnel_id);
}

/* A route event held for the loop (wr__api_route_event on the store
 * thread). */
typedef struct wr__api_route_ev {
  int op;
  char host[WR_STORE_HOST_MAX + 1]; /* "" for none */
  char tunnel_id[WR_STORE_UUID_LEN + 1];
} wr__api_route_ev;

typedef struct wr__api_kv {
  char *name;
  char *value;
} wr__api_kv;

/* One request being served. */
typedef struct wr__api_ctx {
  wr_api *api;
  wr_store *store;      /* the store of this thread: use this one */
  int on_worker;        /* handled on the store thread */
  wr_httpd_req *req;    /* NULL once answered */
  const char *method;
  /* Path segments after /client/v4, each percent-decoded once (a CIDR sent
   * escaped twice is still escaped once here). */
  char *segs[WR_API_MAX_SEGS];
  size_t nsegs;
  wr__api_kv params[WR_API_MAX_PARAMS]; /* the query, decoded */
  size_t nparams;
  wr_api_token token;   /* the authenticated token */
  char actor[WR_STORE_EMAIL_MAX + 16];
  json_t *body;         /* parsed by wr__api_body */
  const char *retry_after; /* Retry-After of the answer, or NULL */
  char retry_buf[24];      /* where a handler may keep retry_after's text */
  /* wr_api_call: the answer is kept here instead of sent. */
  int capture;
  int captured_status;
  json_t *captured;
  /* On the store thread: what the loop does before the answer goes out. */
  wr__api_route_ev *route_evs;
  size_t nroute_evs;
  int access_changed;
  int token_denied;     /* the bearer token is not valid: count it on the loop */
  char source[WR_THROTTLE_SOURCE_MAX]; /* the client's throttle key */
  uint64_t now;         /* when the request arrived (the API's clock) */
} wr__api_ctx;

/* The on_route hook for a change the handler made: told at once on the
 * loop, or held and told on the loop before the answer is sent. */
void wr__api_route_event(wr__api_ctx *c, int op, const char *host, const char *tunnel_id);
/* Loop thread: tells the hooks what the store thread held for them in
 * |arg| (a wr__api_ctx), unless the API is stopping. */
void wr__api_deliver(void *arg);
/* The on_access_change hook, likewise. */
void wr__api_access_changed(wr__api_ctx *c);
/* Runs fn(arg) on the loop thread: at once on the loop, else from the
 * store thread while the handler waits. Returns 0, or -1 when the edge is
 * stopping (fn did not run). */
int wr__api_on_loop(wr__api_ctx *c, void (*fn)(void *arg), void *arg);

/* ---- answers ---- */

/* 200 with |result| (stolen; NULL sends null) and |info| (stolen; NULL: no
 * result_info). */
void wr__api_ok(wr__api_ctx *c, json_t *result, json_t *info);
/* An error answer; the message is printf-formatted. */
void wr__api_err(wr__api_ctx *c, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The error answer for a store result |rv| (the store's message, prefixed
 * by |what| when not NULL). */
void wr__api_store_err(wr__api_ctx *c, int rv, const char *what);
/* Checks a store read of one object by ID: |rv| is what the store returned
 * and |account_id| the object's account (read only when |rv| is WR_OK).
 * Returns 0 when the object was read and is the token's account's (account
 * IDs compared ignoring case). Otherwise answers and returns -1: another
 * account's object is 404 with the printf-formatted message (as if it did
 * not exist), a store error is wr__api_store_err(c, rv, NULL). A handler
 * calls it wherever it may answer (loop or store thread). */
int wr__api_owned(wr__api_ctx *c, int rv, const char *account_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 405 for the path. */
void wr__api_method(wr__api_ctx *c, const char *allowed);
/* A collection's path: GET runs |list|, POST runs |create|, any other
 * method is answered 405 "GET, POST". From a handler (loop or store
 * thread); cannot fail. */
void wr__api_collection(wr__api_ctx *c, void (*list)(wr__api_ctx *c), void (*create)(wr__api_ctx *c));
/* A collection whose path has |nsegs| segments, and its items one segment
 * deeper (c->segs[nsegs] names the item): serves the collection
 * (wr__api_collection), answers 404 for any other depth (wr__api_no_route)
 * and 405 for an item method not in |item_methods| (with |item_methods| as Allow).
 * Returns 1 when the caller is to serve the item, 0 when the request was
 * answered. From a handler (loop or store thread); cannot fail. */
int wr__api_resource(wr__api_ctx *c, size_t nsegs, void (*list)(wr__api_ctx *c),
                     void (*create)(wr__api_ctx *c), const char *item_methods);
/* 404 "no such endpoint: METHOD PATH": no handler serves the path. From a
 * handler (loop or store thread); cannot fail. */
void wr__api_no_route(wr__api_ctx *c);

/* ---- request parts ---- */

/* The decoded query parameter |name| (first occurrence), or NULL. An empty
 * value is returned as "". */
const char *wr__api_param(const wr__api_ctx *c, const char *name);
/* A boolean parameter: -1 absent, 0 false, 1 true; -2 after answering 400
 * for another value. */
int wr__api_param_bool(wr__api_ctx *c, const char *name);
/* An RFC 3339 time parameter into *out (0 when absent). Returns 0, or -1
 * after answering 400. */
int wr__api_param_time(wr__api_ctx *c, const char *name, int64_t *out);
/* Paging: page/per_page. |paged| is 0 when neither is given (then every row
 * is returned: cloudflared before 2024.3 sends no page). |def_per_page| is
 * the page size when only page is given. Returns 0, or -1 after answering
 * 400. */
int wr__api_paging(wr__api_ctx *c, size_t def_per_page, size_t *page, size_t *per_page, int *paged);
/* result_info for a page of |count| rows out of |total|. */
json_t *wr__api_result_info(size_t page, size_t per_page, size_t count, size_t total);
/* The body as a JSON object; NULL after answering 400 (no body, not JSON,
 * not an object). */
json_t *wr__api_body(wr__api_ctx *c);
/* String member |key| of |obj|: NULL when absent or null; answers 400 and
 * sets *bad when present with another type. */
const char *wr__api_json_str(wr__api_ctx *c, json_t *obj, const char *key, int *bad);
/* Percent-decodes |in| in place ('+' is kept). Returns 0, or -1 for a bad
 * escape or a NUL byte. */
int wr__api_unescape(char *in);

/* Splits the path |rest| (after /client/v4) into c->segs and c->req->query
 * into c->params, each percent-decoded. Returns 0, or -1 after answering
 * 400 (bad escape, too many parameters) or 404 (too many segments). */
int wr__api_parse_target(wr__api_ctx *c, const char *rest);
/* Frees what parsing and the handlers put in |c| (not |c| itself). */
void wr__api_ctx_free(wr__api_ctx *c);

/* ---- the request path (api.c), for api_async.c ---- */

/* Sends |env| (stolen) to |req| with |status| (and Retry-After
 * |retry_after| when not NULL), counting it. Loop thread. */
void wr__api_send(wr_api *a, wr_httpd_req *req, int status, json_t *env, const char *retry_after);
/* Authentication, loop part: the source's delay and the Authorization
 * field, whose token goes to |token| (WR_API_BEARER_MAX + 1 bytes).
 * Returns 0, or -1 after answering. */
#define WR_API_BEARER_MAX 1024
int wr__api_auth_pre(wr__api_ctx *c, char *token);
/* Store part: checks |token| (zeroed after) and sets c->token and
 * c->actor. Returns 0, or -1 after answering (403 for a token that is not
 * valid, with c->token_denied set). */
int wr__api_auth_token(wr__api_ctx *c, char *token);
/* Loop part after a denied token: counts it against c->source. */
void wr__api_token_failed(wr__api_ctx *c);
/* Routes an authenticated request to its handler. */
void wr__api_route(wr__api_ctx *c);
/* Serves an authenticated-to-be /client/v4 request whose target is
 * parsed, on the store thread (api_async.c); owns and frees |c| (a
 * wr_xcalloc'd copy) and answers c->req. |token| is zeroed. A NULL
 * |token|: the request is a quick tunnel's POST /tunnel, past
 * wr__api_quick_pre, served by wr__api_quick without a token. */
void wr__api_submit(wr__api_ctx *c, char *token);

/* ---- formatting ---- */

/* RFC 3339 UTC ("2024-01-01T00:00:00Z") of Unix seconds; null for 0. */
json_t *wr__api_time(int64_t t);
/* Parses RFC 3339 (fractions and offsets allowed). Returns 0 or -1. */
int wr__api_parse_time(const char *s, int64_t *out);

/* ---- the resource handlers (segs[0] is "accounts" or "zones") ---- */
void wr__api_tunnels(wr__api_ctx *c);  /* segs: accounts {a} cfd_tunnel ... */
void wr__api_zones(wr__api_ctx *c);    /* segs: zones {z} ... */
void wr__api_https(wr__api_ctx *c);    /* segs: zones {z} settings|custom_certificates ... */
/* Loads zone segs[1] and checks the token may use it; 0, or -1 after
 * answering (api_zones.c). */
int wr__api_load_zone(wr__api_ctx *c, wr_zone *z);
void wr__api_teamnet(wr__api_ctx *c);  /* segs: accounts {a} teamnet ... */
void wr__api_audit(wr__api_ctx *c);    /* segs: accounts {a} audit_logs */
/* POST .../cfd_tunnel/{t}/management[/{resource}] for the loaded tunnel
 * |t| (api_mgmt.c): a management token for `tail`. */
void wr__api_mgmt_token(wr__api_ctx *c, const wr_tunnel *t);
void wr__api_devices(wr__api_ctx *c);  /* segs: accounts {a} devices ... */
/* POST /tunnel, outside /client/v4 (api_quick.c). The loop part: the
 * method, whether quick tunnels are on, c->source, c->actor and c->now.
 * Returns 0, or -1 after answering. */
int wr__api_quick_pre(wr__api_ctx *c);
/* The store part, after wr__api_quick_pre: on the store thread or on the
 * loop (no store thread); the source's throttle is read and counted on
 * the loop (wr__api_on_loop). Answers c->req. */
void wr__api_quick(wr__api_ctx *c);
void wr__api_access(wr__api_ctx *c);   /* segs: accounts {a} access ... (api_access.c) */

#endif
