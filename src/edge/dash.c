/* The dashboard: lifetime, dispatch, the sign-in gate, the page frame, the
 * compiled-in assets and stats.json; see dash.h. */
#include "edge/dash.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "edge/dash_int.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/html.h"
#include "lib/log.h"
#include "lib/mem.h"

#include "dash_assets.inc" /* asset_dash_js, asset_dash_css (Makefile) */

static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "connect-src 'self'; img-src 'self'; form-action 'self'; "
                          "frame-ancestors 'none'; base-uri 'none'";

static void respond(wr_httpd_req *req, int status, const char *ctype, const char *location,
                    const void *body, size_t len) {
  wr_http_header hs[8];
  size_t n = 0;
  wr_httpd_page_fields(hs, &n, ctype, csp, "same-origin");
  if (location) hs[n++] = (wr_http_header){"Location", 8, location, strlen(location)};
  wr_httpd_respond(req, status, hs, n, body, len);
}

/* The answer to |q|: sent now on the loop, kept for the loop on the store
 * thread. |ctype| is a literal. */
static void q_respond(dash_req *q, int status, const char *ctype, const char *location,
                      const void *body, size_t len) {
  if (!q->async) {
    respond(q->req, status, ctype, location, body, len);
    return;
  }
  free(q->out_location);
  free(q->out_body);
  q->out_status = status;
  q->out_ctype = ctype;
  q->out_location = location ? wr_xstrdup(location) : NULL;
  q->out_body = wr_xmalloc(len ? len : 1);
  memcpy(q->out_body, body, len);
  q->out_len = len;
}

int wr__dash_on_loop(dash_req *q, void (*fn)(void *arg), void *arg) {
  return wr_store_async_on_loop(q->async, fn, arg) == WR_OK ? 0 : -1;
}

/* ---- the page frame ------------------------------------------------------------------ */

static const struct {
  const char *key, *href, *label;
} nav[] = {
    {"tunnels", WR_DASH_PATH "/tunnels", "Tunnels"}, {"routes", WR_DASH_PATH "/routes", "Routes"},
    {"traffic", WR_DASH_PATH "/traffic", "Traffic"}, {"devices", WR_DASH_PATH "/devices", "Devices"},
    {"access", WR_DASH_PATH "/access", "Access"},    {"users", WR_DASH_PATH "/users", "Users"},
    {"audit", WR_DASH_PATH "/audit", "Audit log"},
};

void wr__dash_csrf(dash_req *q, wr_buf *b) {
  wr_buf_append_str(b, "<input type=\"hidden\" name=\"csrf\" value=\"");
  wr_html_escape(b, q->csrf);
  wr_buf_append_str(b, "\">");
}

/* The ?msg= or ?error= a redirect after an action carries. */
static void flash(dash_req *q, wr_buf *b) {
  static const char *const keys[2] = {"msg", "error"};
  char text[600];
  for (int i = 0; i < 2; i++) {
    if (wr__dash_form_get(q->req->query, strlen(q->req->query), keys[i], text, sizeof(text)) <= 0) continue;
    wr_buf_printf(b, "<p id=\"%s\" class=\"%s\">", keys[i], keys[i]);
    wr_html_escape(b, text);
    wr_buf_append_str(b, "</p>\n");
  }
}

void wr__dash_begin(dash_req *q, wr_buf *b, const char *title, const char *active) {
  wr_buf_init(b, WR__DASH_PAGE_MAX, NULL);
  wr_buf_append_str(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>");
  wr_html_escape(b, title);
  wr_buf_append_str(b, " · Warren</title><link rel=\"stylesheet\" href=\"" WR_DASH_PATH
                       "/assets/dash.css\"><script src=\"" WR_DASH_PATH
                       "/assets/dash.js\" defer></script></head><body>\n<header><b>Warren</b><nav>");
  for (size_t i = 0; i < sizeof(nav) / sizeof(nav[0]); i++)
    wr_buf_printf(b, "<a id=\"nav-%s\" href=\"%s\"%s>%s</a>", nav[i].key, nav[i].href,
                  strcmp(nav[i].key, active) == 0 ? " class=\"active\"" : "", nav[i].label);
  wr_buf_append_str(b, "</nav><span class=\"who\">Signed in as <span id=\"user\">");
  wr_html_escape(b, q->user.email);
  wr_buf_append_str(b, "</span> <form class=\"inline\" method=\"post\" action=\"" WR_LOGIN_PATH "/signout\">");
  wr__dash_csrf(q, b);
  wr_buf_append_str(b, "<button id=\"signout\" type=\"submit\">Sign out</button></form></span></header>\n<main>\n<h1>");
  wr_html_escape(b, title);
  wr_buf_append_str(b, "</h1>\n");
  flash(q, b);
}

void wr__dash_send(dash_req *q, wr_buf *b) {
  wr_buf_append_str(b, "</main></body></html>\n");
  if (b->len >= b->max) wr_warn("dashboard: a page of %s reached its size limit and was cut", q->req->path);
  q_respond(q, 200, "text/html; charset=utf-8", NULL, b->data, b->len);
  wr_buf_free(b);
}

void wr__dash_error(dash_req *q, int status, const char *msg) {
  wr_buf b;
  wr_buf_init(&b, 64 * 1024, NULL);
  wr_buf_append_str(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error · Warren</title>"
                        "<link rel=\"stylesheet\" href=\"" WR_DASH_PATH "/assets/dash.css\"></head><body><main>"
                        "<p id=\"error\" class=\"error\">");
  wr_html_escape(&b, msg);
  wr_buf_append_str(&b, "</p><p><a href=\"" WR_DASH_PATH "\">Back to the dashboard</a></p></main></body></html>\n");
  q_respond(q, status, "text/html; charset=utf-8", NULL, b.data, b.len);
  wr_buf_free(&b);
}

void wr__dash_redirect(dash_req *q, const char *page, const char *key, const char *text) {
  wr_buf loc;
  wr_buf_init(&loc, 4096, NULL);
  wr_buf_append_str(&loc, page);
  if (key && text) {
    wr_buf_printf(&loc, "%s%s=", strchr(page, '?') ? "&" : "?", key);
    wr_pct_encode(&loc, text);
  }
  q_respond(q, 303, "text/plain; charset=utf-8", wr_buf_cstr(&loc), "See other\n", 10);
  wr_buf_free(&loc);
}

json_t *wr__dash_api(dash_req *q, const char *method, const char *path, const char *query,
                     const char *body, json_t **env, char *err, size_t errlen) {
  int status = wr_api_call_store(q->api, q->store, &q->user, method, path, query, body, env);
  json_t *result = *env ? json_object_get(*env, "result") : NULL;
  if (status == 200 && result) return result;
  json_t *e0 = *env ? json_array_get(json_object_get(*env, "errors"), 0) : NULL;
  const char *m = e0 ? json_string_value(json_object_get(e0, "message")) : NULL;
  snprintf(err, errlen, "%s", m ? m : "the request failed");
  return NULL;
}

void wr__dash_jstr(wr_buf *b, json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  wr_html_escape(b, s ? s : "");
}

void wr__dash_jfill(dash_req *q, wr_buf *b, json_t *o, const char *tmpl) {
  const char *p = tmpl, *open, *close;
  while ((open = strchr(p, '{')) && (close = strchr(open, '}'))) {
    char key[64], *dot;
    wr_buf_append(b, p, (size_t)(open - p));
    snprintf(key, sizeof(key), "%.*s", (int)(close - open - 1), open + 1);
    if (!strcmp(key, "@csrf")) {
      wr__dash_csrf(q, b);
    } else if ((dot = strchr(key, '.'))) {
      *dot = '\0';
      wr__dash_jstr(b, json_object_get(o, key), dot + 1);
    } else {
      wr__dash_jstr(b, o, key);
    }
    p = close + 1;
  }
  wr_buf_append_str(b, p);
}

void wr__dash_duration(wr_buf *b, int64_t s) {
  if (s < 0) s = 0;
  if (s >= 86400) wr_buf_printf(b, "%" PRId64 "d %" PRId64 "h", s / 86400, s % 86400 / 3600);
  else if (s >= 3600) wr_buf_printf(b, "%" PRId64 "h %" PRId64 "m", s / 3600, s % 3600 / 60);
  else if (s >= 60) wr_buf_printf(b, "%" PRId64 "m %" PRId64 "s", s / 60, s % 60);
  else wr_buf_printf(b, "%" PRId64 "s", s);
}

/* ---- stats.json ---------------------------------------------------------------------- */

/* A copy of the counters, taken on the loop (they change there). */
typedef struct stats_copy {
  wr_tunnel_stats *stats;
  wr_tunnel_counters *rows;
  size_t n;
} stats_copy;

static void stats_copy_run(void *arg) {
  stats_copy *sc = arg;
  const wr_tunnel_counters *all = wr_tunnel_stats_all(sc->stats, &sc->n);
  sc->rows = sc->n ? wr_xmalloc(sc->n * sizeof(*all)) : NULL;
  if (sc->n) memcpy(sc->rows, all, sc->n * sizeof(*all));
}

/* Counters of the account's tunnels (?tunnel=ID: that one only, if it is
 * the account's), for the charts to difference. */
void wr__dash_stats_json(dash_req *q) {
  char only[64] = "";
  struct timespec ts;
  wr__dash_form_get(q->req->query, strlen(q->req->query), "tunnel", only, sizeof(only));
  clock_gettime(CLOCK_REALTIME, &ts);
  json_t *arr = json_array();
  stats_copy sc = {.stats = q->tunnel_stats};
  if (sc.stats && wr__dash_on_loop(q, stats_copy_run, &sc) != 0) sc.n = 0;
  const wr_tunnel_counters *rows = sc.rows;
  size_t n = sc.n;
  for (size_t i = 0; i < n; i++) {
    wr_tunnel t;
    if (only[0] && strcasecmp(rows[i].tunnel_id, only) != 0) continue;
    /* Another account's tunnels are not shown, not even their counts. */
    if (wr_store_tunnel_get(q->store, rows[i].tunnel_id, &t) != WR_OK ||
        strcasecmp(t.account_id, q->user.account_id) != 0)
      continue;
    explicit_bzero(t.secret, sizeof(t.secret));
    json_array_append_new(arr, json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "tunnel_id", rows[i].tunnel_id,
                                         "requests", (json_int_t)rows[i].requests, "errors",
                                         (json_int_t)rows[i].errors, "bytes_in", (json_int_t)rows[i].bytes_in,
                                         "bytes_out", (json_int_t)rows[i].bytes_out, "latency_ms_sum",
                                         (json_int_t)rows[i].latency_ms_sum));
  }
  free(sc.rows);
  json_t *j = json_pack("{s:I,s:o}", "now_ms", (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
                        "tunnels", arr);
  char *text = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  q_respond(q, text ? 200 : 500, "application/json", NULL, text ? text : "{}", text ? strlen(text) : 2);
  free(text);
}

/* ---- dispatch ------------------------------------------------------------------------ */

typedef struct dash_route {
  const char *sub; /* after /dashboard */
  int post;
  void (*page)(dash_req *q);
} dash_route;

static const dash_route routes[] = {
    {"", 0, wr__dash_tunnels},
    {"/", 0, wr__dash_tunnels},
    {"/tunnels", 0, wr__dash_tunnels},
    {"/routes", 0, wr__dash_routes},
    {"/devices", 0, wr__dash_devices},
    {"/access", 0, wr__dash_access},
    {"/users", 0, wr__dash_users},
    {"/audit", 0, wr__dash_audit},
    {"/traffic", 0, wr__dash_traffic},
    {"/inspect", 0, wr__dash_inspect},
    {"/stats.json", 0, wr__dash_stats_json},
    {"/tunnels/create", 1, wr__dash_tunnel_create},
    {"/tunnels/delete", 1, wr__dash_tunnel_delete},
    {"/routes/dns/create", 1, wr__dash_dns_create},
    {"/routes/dns/delete", 1, wr__dash_dns_delete},
    {"/routes/ip/create", 1, wr__dash_ip_create},
    {"/routes/ip/delete", 1, wr__dash_ip_delete},
    {"/inspect/replay", 1, wr__dash_replay},
};

/* ---- pages on the store thread ---------------------------------------------------------- */

typedef struct page_job {
  dash_req q;
  const dash_route *rt;
} page_job;

static void page_run(wr_store *s, void *arg) {
  page_job *j = arg;
  j->q.store = s;
  j->rt->page(&j->q);
}

static void page_done(void *arg, int status) {
  page_job *j = arg;
  dash_req *q = &j->q;
  if (status == WR_OK && q->out_status)
    respond(q->req, q->out_status, q->out_ctype, q->out_location, q->out_body, q->out_len);
  else
    respond(q->req, 503, "text/plain; charset=utf-8", NULL, "the edge is stopping\n", 21);
  free(q->out_location);
  free(q->out_body);
  explicit_bzero(q->csrf, sizeof(q->csrf));
  free(j);
}

/* Builds the page on the store thread; a full queue is a 503 at once. */
static void page_submit(dash_req *q, const dash_route *rt) {
  page_job *j = wr_xcalloc(1, sizeof(*j));
  j->q = *q;
  j->q.async = q->d->async;
  j->rt = rt;
  if (wr_store_async_owner_submit(q->d->async, &q->d->jobs, page_run, page_done, j) == WR_OK) return;
  wr_warn("dashboard: %s %s: the store thread's queue is full", q->req->method, q->req->path);
  static const char busy[] = "The edge's store is busy; try again in a moment.\n";
  respond(q->req, 503, "text/plain; charset=utf-8", NULL, busy, sizeof(busy) - 1);
  free(j);
}

/* The compiled-in assets: served without a session (they hold nothing
 * secret), cached briefly. */
static int serve_asset(wr_httpd_req *req, const char *sub) {
  const unsigned char *data = NULL;
  size_t len = 0;
  const char *ctype = NULL;
  if (strcmp(sub, "/assets/dash.js") == 0) {
    data = asset_dash_js, len = asset_dash_js_len, ctype = "text/javascript; charset=utf-8";
  } else if (strcmp(sub, "/assets/dash.css") == 0) {
    data = asset_dash_css, len = asset_dash_css_len, ctype = "text/css; charset=utf-8";
  } else {
    return 0;
  }
  const wr_http_header hs[] = {
      {"Content-Type", 12, ctype, strlen(ctype)},
      {"Cache-Control", 13, "max-age=300", 11},
      {"X-Content-Type-Options", 22, "nosniff", 7},
  };
  wr_httpd_respond(req, 200, hs, 3, data, len);
  return 1;
}

/* Without a session: pages go to the sign-in, which comes back here. */
static void to_signin(wr_httpd_req *req, int page) {
  if (!page) {
    respond(req, 403, "text/plain; charset=utf-8", NULL, "sign in first\n", 14);
    return;
  }
  wr_buf loc;
  wr_buf_init(&loc, 4096, NULL);
  wr_buf_append_str(&loc, WR_LOGIN_PATH "?next=");
  /* The target is a local path: the server parsed it as origin-form. */
  wr_pct_encode(&loc, req->target && req->target[0] == '/' && req->target[1] != '/' ? req->target : WR_DASH_PATH);
  respond(req, 303, "text/plain; charset=utf-8", wr_buf_cstr(&loc), "Sign in first\n", 14);
  wr_buf_free(&loc);
}

static int method_ok(wr_httpd_req *req, int post) {
  int ok = post ? strcmp(req->method, "POST") == 0
                : strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
  if (!ok) {
    const char *allow = post ? "POST" : "GET, HEAD";
    const wr_http_header hs[] = {{"Allow", 5, allow, strlen(allow)}};
    wr_httpd_respond(req, 405, hs, 1, "method not allowed\n", 19);
  }
  return ok;
}

static void dispatch(wr_dash *d, wr_httpd_req *req, const dash_route *rt) {
  dash_req q = {.d = d, .req = req, .store = d->store, .api = d->api, .ts = d->ts,
                .tunnel_stats = d->tunnel_stats};
  if (!method_ok(req, rt->post)) return;
  if (!wr_login_session_user(d->login, req, &q.user, q.csrf)) {
    to_signin(req, !rt->post && strcmp(rt->sub, "/stats.json") != 0);
    return;
  }
  if (rt->post) {
    char token[WR_LOGIN_CSRF_LEN + 2];
    int n = req->body_len <= WR__DASH_FORM_MAX
                ? wr__dash_form_get((const char *)req->body, req->body_len, "csrf", token, sizeof(token))
                : -2;
    if (n != WR_LOGIN_CSRF_LEN || !wr_login_csrf_ok(d->login, req, token)) {
      wr_warn("dashboard: %s %s without the session's CSRF token was refused", req->method, req->path);
      wr__dash_error(&q, 403, "This form did not come from your dashboard session (no or a wrong CSRF "
                              "token); nothing was changed. Reload the page and try again.");
      return;
    }
  }
  if (d->async) page_submit(&q, rt);
  else rt->page(&q);
  explicit_bzero(q.csrf, sizeof(q.csrf));
}

int wr_dash_handle(wr_dash *d, wr_httpd_req *req) {
  const size_t base = strlen(WR_DASH_PATH);
  const char *p = req->path;
  if (!d || d->jobs.closing || strncmp(p, WR_DASH_PATH, base) != 0 || (p[base] && p[base] != '/')) return 0;
  if (serve_asset(req, p + base)) return 1;
  for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
    if (strcmp(p + base, routes[i].sub) == 0) {
      dispatch(d, req, &routes[i]);
      return 1;
    }
  respond(req, 404, "text/plain; charset=utf-8", NULL, "no such page\n", 13);
  return 1;
}

/* ---- lifetime ------------------------------------------------------------------------- */

/* wr_dash_free ran and no page or replay is out any more. */
static void dash_release(wr_owner *o) { free(WR_OWNER_OBJ(o, wr_dash, jobs)); }

int wr_dash_new(const wr_dash_config *cfg, wr_dash **out) {
  *out = NULL;
  if (!cfg || !cfg->loop || !cfg->store || !cfg->api || !cfg->login) return WR_ERR_INVAL;
  wr_dash *d = wr_xcalloc(1, sizeof(*d));
  wr_owner_init(&d->jobs, dash_release);
  d->loop = cfg->loop;
  d->store = cfg->store;
  d->async = cfg->async;
  d->api = cfg->api;
  d->login = cfg->login;
  d->ts = cfg->ts;
  d->inspect = cfg->inspect;
  d->tunnel_stats = cfg->tunnel_stats;
  if (cfg->visitor_addr) d->visitor_addr = *cfg->visitor_addr;
  *out = d;
  return WR_OK;
}

void wr_dash_free(wr_dash *d) {
  if (!d || d->jobs.closing) return;
  d->store = NULL;
  d->async = NULL;
  d->api = NULL;
  d->login = NULL;
  d->ts = NULL;
  d->inspect = NULL;
  d->tunnel_stats = NULL;
  wr_owner_close(&d->jobs); /* frees |d| now or after its last job */
}
