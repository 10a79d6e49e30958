/* The edge's side of `tunnel login`; see login.h for the flow. This file
 * owns the object's lifetime, the periodic sweep of expired state, and the
 * dispatch of a request to its page; the pages themselves and their state
 * live in the files login_int.h lists. */
#include "edge/login.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge/login_int.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/strpack.h"

#define SOURCE_FREE_FAILURES 10 /* default of source_throttle.free_failures */

void wr__login_sweep(wr_login *l) {
  uint64_t now = wr__login_now(l);
  wr__login_sessions_sweep(l, now);
  wr__login_deliveries_sweep(l, now);
}

static void on_sweep(uv_timer_t *t) {
  wr_login *l = t->data;
  uint64_t now = wr__login_now(l);
  wr__login_sweep(l);
  /* Whole-table walks: here, every few seconds, not per request. */
  wr_throttle_sweep(l->accounts, now, wr__login_on_unlocked, l);
  wr_throttle_sweep(l->sources, now, wr__login_on_unlocked, l);
}

/* ---- store calls ---------------------------------------------------------------------- */

typedef struct store_call {
  wr_login *l;
  wr__login_store_fn fn;
  wr__login_store_done done;
  void *arg;
} store_call;

static void call_run(wr_store *st, void *arg) {
  store_call *c = arg;
  c->fn(st, c->arg);
}

static void call_done(void *arg, int status) {
  store_call *c = arg;
  c->done(c->l, c->arg, status);
  free(c);
}

int wr__login_store_call(wr_login *l, wr__login_store_fn fn, wr__login_store_done done, void *arg) {
  if (!l->async) {
    fn(l->store, arg);
    done(l, arg, WR_OK);
    return WR_OK;
  }
  store_call *c = wr_xcalloc(1, sizeof(*c));
  *c = (store_call){l, fn, done, arg};
  int rv = wr_store_async_owner_submit(l->async, &l->owner, call_run, call_done, c);
  if (rv != WR_OK) free(c);
  return rv;
}

login_session *wr__login_store_session(wr_login *l, wr_httpd_req *req, const char *sid, int status, int busy,
                                       int signed_in) {
  /* Not busy any more, also when it expired meanwhile (the sweep keeps a
   * busy session: it would stay forever). */
  if (busy && !l->closing) wr__login_session_job_done(l, sid);
  login_session *s = l->closing ? NULL : wr__login_session_find(l, sid);
  if (l->closing || status != WR_OK) {
    wr_httpd_respond_simple(req, 503, "text/plain", "the edge is shutting down\n", 26);
    return NULL;
  }
  if (!s || (signed_in && !s->signed_in)) {
    wr__login_simple_page(l, req, 403, "Session expired", "Your sign-in session expired; please start again.", 1);
    return NULL;
  }
  return s;
}

/* wr_login_free ran and the last store job, pool job and handle is back. */
static void login_release(wr_owner *o) {
  wr_login *l = WR_OWNER_OBJ(o, wr_login, owner);
  wr_throttle_free(l->accounts);
  wr_throttle_free(l->sources);
  wr_fairq_free(l->checks);
  free(l->strs);
  free(l);
}

void wr__login_handle_closed(uv_handle_t *h) {
  wr_login *l = h->data;
  if ((void *)h != (void *)&l->sweep_timer) {
    /* A waiter's timer is the first member of the waiter. */
    free(h);
  }
  wr_owner_drop(&l->owner); /* may free |l| */
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static void method_not_allowed(wr_httpd_req *req, const char *allow) {
  const wr_http_header hs[] = {
      {"Allow", 5, allow, strlen(allow)},
      {"Content-Type", 12, "text/plain", 10},
  };
  wr_httpd_respond(req, 405, hs, 2, "method not allowed\n", 19);
}

/* The pages under WR_LOGIN_PATH: the path after it, the method they take
 * (GET also answers HEAD), and the page. */
typedef struct login_route {
  const char *sub;
  int post;
  void (*page)(wr_login *l, wr_httpd_req *req);
} login_route;

static const login_route login_routes[] = {
    {"", 0, wr__login_page_main},
    {"/", 0, wr__login_page_main},
    {"/signin", 1, wr__login_page_signin},
    {"/authorize", 1, wr__login_page_authorize},
    {"/signout", 1, wr__login_page_signout},
    {"/done", 0, wr__login_page_done},
    {"/cert.pem", 0, wr__login_page_download},
};

int wr_login_handle(wr_login *l, wr_httpd_req *req) {
  const char *p = req->path;
  size_t base = strlen(WR_LOGIN_PATH);
  if (!l || l->closing) return 0;
  if (strncmp(p, WR_LOGIN_TRANSFER_PREFIX, strlen(WR_LOGIN_TRANSFER_PREFIX)) == 0 || wr__login_root_key(p)) {
    /* HEAD must not consume the certificate: GET only. */
    if (strcmp(req->method, "GET") != 0) method_not_allowed(req, "GET");
    else wr__login_page_poll(l, req, p[1] == 'a' ? p + strlen(WR_LOGIN_TRANSFER_PREFIX) : p + 1);
    return 1;
  }
  if (strncmp(p, WR_LOGIN_PATH, base) != 0 || (p[base] != '\0' && p[base] != '/')) return 0;
  wr__login_sweep(l);
  for (size_t i = 0; i < sizeof(login_routes) / sizeof(login_routes[0]); i++) {
    const login_route *rt = &login_routes[i];
    if (strcmp(p + base, rt->sub) != 0) continue;
    int ok = rt->post ? strcmp(req->method, "POST") == 0
                      : strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (ok) rt->page(l, req);
    else method_not_allowed(req, rt->post ? "POST" : "GET, HEAD");
    return 1;
  }
  wr__login_simple_page(l, req, 404, "Not found", "There is no such page.", 1);
  return 1;
}

/* ---- lifetime ------------------------------------------------------------------------- */

int wr_login_new(const wr_login_config *cfg, wr_login **out) {
  wr_login *l;
  const char *url;
  int rv;
  *out = NULL;
  if (!cfg || !cfg->loop || !cfg->store || !cfg->data_dir || !*cfg->data_dir) return WR_ERR_INVAL;
  l = wr_xcalloc(1, sizeof(*l));
  wr_owner_init(&l->owner, login_release);
  l->loop = cfg->loop;
  l->store = cfg->store;
  l->async = cfg->async;
  url = cfg->public_url && *cfg->public_url ? cfg->public_url : "http://127.0.0.1:8081";
  const wr_strcopy strs[] = {{cfg->data_dir, &l->data_dir}, {url, &l->public_url}};
  l->strs = wr_strpack(strs, sizeof(strs) / sizeof(strs[0]));
  for (size_t n = strlen(l->public_url); n > 0 && l->public_url[n - 1] == '/'; n--) l->public_url[n - 1] = '\0';
  l->secure = strncasecmp(url, "https://", 8) == 0;
  l->poll_hold_ms = cfg->poll_hold_ms ? cfg->poll_hold_ms : 50000;
  l->ttl_ms = cfg->ttl_ms ? cfg->ttl_ms : 600000;
  l->max_sessions = cfg->max_sessions ? cfg->max_sessions : 1024;
  l->max_pending = cfg->max_pending ? cfg->max_pending : 1024;
  l->max_waiters = cfg->max_waiters ? cfg->max_waiters : 256;
  l->max_sessions_per_source = cfg->max_sessions_per_source ? cfg->max_sessions_per_source : 16;
  l->now_ms = cfg->now_ms;
  l->now_user = cfg->now_user;
  wr_throttle_config scfg = cfg->source_throttle;
  if (!scfg.free_failures) scfg.free_failures = SOURCE_FREE_FAILURES;
  wr_fairq_config qcfg = {.max_running = cfg->max_hashing, .max_queued = cfg->max_queued,
                          .per_source_running = cfg->source_running,
                          .per_source_queued = cfg->source_queued};
  if ((rv = wr_throttle_new(&cfg->account_throttle, &l->accounts)) != WR_OK ||
      (rv = wr_throttle_new(&scfg, &l->sources)) != WR_OK || (rv = wr_fairq_new(&qcfg, &l->checks)) != WR_OK) {
    wr_owner_close(&l->owner); /* nothing is held yet: login_release runs now */
    return rv;
  }
  /* Enough rows for a burst of real lockouts; a flood past that is a
   * count in the log, not a full disk. */
  l->audit_rl.burst = 100;
  l->audit_rl.every_ms = 1000;
  wr_owner_timer_init(&l->owner, l->loop, &l->sweep_timer, l); /* held until its close callback */
  /* Expired secrets leave memory even when no request comes. */
  uint64_t every = l->ttl_ms / 4 < 30000 ? (l->ttl_ms / 4 ? l->ttl_ms / 4 : 1) : 30000;
  uv_timer_start(&l->sweep_timer, on_sweep, every, every);
  uv_unref((uv_handle_t *)&l->sweep_timer);
  *out = l;
  return WR_OK;
}

void wr_login_free(wr_login *l) {
  if (!l || l->closing) return;
  l->closing = 1;
  wr__login_transfer_close(l);
  while (l->sessions) wr__login_session_destroy(l, l->sessions);
  wr__login_jobs_cancel(l);
  l->store = NULL;
  wr_owner_close(&l->owner); /* the sweep timer holds it still */
  uv_close((uv_handle_t *)&l->sweep_timer, wr__login_handle_closed);
}

void wr_login_get_stats(const wr_login *l, wr_login_stats *st) {
  *st = l->stats;
  wr_fairq_counts(l->checks, &st->running, &st->waiting);
}
