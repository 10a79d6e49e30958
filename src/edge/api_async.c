/* REST API requests served on the store thread (api_int.h, "Threads").
 *
 * The loop parses the request and checks its source (api.c); one job on
 * the store thread then checks the token and runs the handler against the
 * worker's wr_store, with the answer captured as JSON instead of sent.
 * Back on the loop, done() counts a denied token, tells the route and
 * Access hooks what changed, and sends the captured answer. The request
 * (wr_httpd_req) is only read on the worker: the httpd keeps it, and does
 * not touch it, until it is answered, which happens on the loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/api_int.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

typedef struct api_job {
  wr__api_ctx c;
  wr_httpd_req *req; /* the request to answer (c.req is cleared when captured) */
  int quick;         /* POST /tunnel: no token */
  char token[WR_API_BEARER_MAX + 1];
} api_job;

/* The whole request, on the store thread. */
static void job_run(wr_store *s, void *arg) {
  api_job *j = arg;
  wr__api_ctx *c = &j->c;
  c->store = s;
  c->on_worker = 1;
  if (j->quick) wr__api_quick(c);
  else if (wr__api_auth_token(c, j->token) == 0) wr__api_route(c);
  if (c->req) wr__api_err(c, 500, WR_API_CODE_INTERNAL, "internal error: the request was not answered");
  c->on_worker = 0;
  c->store = NULL; /* the worker's: no use on the loop */
}

/* A clear answer for a request the store thread did not take or run. */
static void answer_busy(api_job *j, const char *why) {
  wr__api_ctx *c = &j->c;
  c->capture = 0;
  c->req = j->req;
  c->retry_after = "1";
  wr__api_err(c, 503, WR_API_CODE_INTERNAL, "%s; try again", why);
}

void wr__api_deliver(void *arg) {
  wr__api_ctx *c = arg;
  for (size_t i = 0; i < c->nroute_evs && !c->api->stopping; i++) {
    const wr__api_route_ev *e = &c->route_evs[i];
    wr__api_route_notify(c->api, e->op, e->host[0] ? e->host : NULL, e->tunnel_id);
  }
  if (c->access_changed && !c->api->stopping && c->api->on_access_change)
    c->api->on_access_change(c->api->access_user);
  c->nroute_evs = 0;
  c->access_changed = 0;
}

static void job_done(void *arg, int status) {
  api_job *j = arg;
  wr__api_ctx *c = &j->c;
  if (status != WR_OK) {
    answer_busy(j, "the edge is stopping");
  } else {
    if (c->token_denied) wr__api_token_failed(c);
    wr__api_deliver(c);
    json_t *env = c->captured;
    c->captured = NULL;
    wr__api_send(c->api, j->req, c->captured_status, env, c->retry_after);
  }
  explicit_bzero(j->token, sizeof(j->token));
  wr__api_ctx_free(c);
  free(j);
}

/* Requests on the store thread: the owner also counts the quick-tunnel
 * sweep (quick_sweeping), which WR_API_STORE_JOBS_MAX does not cap. */
static size_t requests_out(const wr_api *a) { return a->jobs.pending - (a->quick_sweeping ? 1 : 0); }

void wr__api_submit(wr__api_ctx *c, char *token) {
  api_job *j = wr_xcalloc(1, sizeof(*j));
  j->c = *c;
  free(c);
  j->req = j->c.req;
  j->c.capture = 1;
  j->quick = !token;
  if (token) {
    memcpy(j->token, token, sizeof(j->token));
    explicit_bzero(token, WR_API_BEARER_MAX + 1);
  }
  wr_api *a = j->c.api;
  int rv = requests_out(a) >= WR_API_STORE_JOBS_MAX ? WR_ERR_LIMIT
                                                     : wr_store_async_owner_submit(a->async, &a->jobs, job_run, job_done, j);
  if (rv == WR_OK) return;
  /* Too many requests wait already, the queue is full (the store is
   * stalled) or going away: the client hears so at once. */
  wr_warn("api: %s %s: %s", j->c.method, j->req->path,
          rv == WR_ERR_LIMIT ? "too many requests wait on the store thread" : "the store thread is stopping");
  answer_busy(j, rv == WR_ERR_LIMIT ? "the edge's store is busy" : "the edge is stopping");
  explicit_bzero(j->token, sizeof(j->token));
  wr__api_ctx_free(&j->c);
  free(j);
}

void wr__api_route_event(wr__api_ctx *c, int op, const char *host, const char *tunnel_id) {
  if (!c->on_worker) {
    wr__api_route_notify(c->api, op, host, tunnel_id);
    return;
  }
  if (!c->api->on_route) return;
  c->route_evs = wr_xrealloc(c->route_evs, (c->nroute_evs + 1) * sizeof(*c->route_evs));
  wr__api_route_ev *e = &c->route_evs[c->nroute_evs++];
  memset(e, 0, sizeof(*e));
  e->op = op;
  if (host) snprintf(e->host, sizeof(e->host), "%s", host);
  if (tunnel_id) snprintf(e->tunnel_id, sizeof(e->tunnel_id), "%s", tunnel_id);
}

void wr__api_access_changed(wr__api_ctx *c) {
  if (c->on_worker) c->access_changed = 1;
  else if (c->api->on_access_change) c->api->on_access_change(c->api->access_user);
}

int wr__api_on_loop(wr__api_ctx *c, void (*fn)(void *arg), void *arg) {
  if (!c->on_worker) {
    fn(arg);
    return 0;
  }
  return wr_store_async_on_loop(c->api->async, fn, arg) == WR_OK ? 0 : -1;
}
