/* The dashboard's traffic pages (dash_int.h): live charts of a tunnel
 * (drawn by dash.js from stats.json), the traffic inspector's list and
 * record pages, and replay.
 *
 * A replay is one plain HTTP/1.1 exchange with the edge's own visitor
 * listener, with the recorded Host, so the request is routed through the
 * tunnel as any visitor's is (and inspected again). It runs on libuv's
 * worker pool with blocking socket calls bounded by REPLAY_TIMEOUT_S:
 * never on the loop thread. Only the status line is parsed; the rest of
 * the answer is read (up to REPLAY_READ_MAX) and dropped. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "edge/dash_int.h"
#include "lib/err.h"
#include "lib/html.h"
#include "lib/log.h"
#include "lib/mem.h"

#define REPLAY_TIMEOUT_S 15
#define REPLAY_READ_MAX (64u * 1024 * 1024)
#define LIST_MAX 200

/* A page of one inspector record: the record is the loop's, its tunnel's
 * account is read from the store on the page's thread. */
typedef struct rec_call {
  dash_req *q;
  uint64_t id;
  char tunnel_id[sizeof(((wr_inspect_rec *)0)->tunnel_id)];
  void (*page)(dash_req *q, const wr_inspect_rec *r); /* on the loop */
} rec_call;

static const wr_inspect_rec *rec_get(rec_call *c) {
  return c->q->d->inspect ? wr_inspect_get(c->q->d->inspect, c->id) : NULL;
}

static void rec_tunnel(void *arg) {
  rec_call *c = arg;
  const wr_inspect_rec *r = rec_get(c);
  if (r) snprintf(c->tunnel_id, sizeof(c->tunnel_id), "%s", r->tunnel_id);
}

static void rec_missing(dash_req *q) {
  wr__dash_error(q, 404, "No such request: the inspector keeps the last requests of each tunnel only.");
}

static void rec_page(void *arg) {
  rec_call *c = arg;
  const wr_inspect_rec *r = rec_get(c);
  if (r) c->page(c->q, r);
  else rec_missing(c->q);
}

/* Runs |page| on the loop with the record |id| of the query or form, if it
 * exists and its tunnel is the user's account's; answers 404 otherwise
 * (and nothing when the edge is stopping: then the answer is 503). */
static void with_own_record(dash_req *q, const char *data, size_t len,
                            void (*page)(dash_req *q, const wr_inspect_rec *r)) {
  char idtext[24];
  char *end = NULL;
  rec_call c = {.q = q, .page = page};
  wr_tunnel t;
  if (wr__dash_form_get(data, len, "id", idtext, sizeof(idtext)) > 0) c.id = strtoull(idtext, &end, 10);
  if (c.id && end && !*end && wr__dash_on_loop(q, rec_tunnel, &c) != 0) return;
  int own = 0;
  if (c.id && end && !*end && c.tunnel_id[0] && wr_store_tunnel_get(q->store, c.tunnel_id, &t) == WR_OK) {
    explicit_bzero(t.secret, sizeof(t.secret));
    own = strcasecmp(t.account_id, q->user.account_id) == 0;
  }
  if (!own) rec_missing(q);
  else wr__dash_on_loop(q, rec_page, &c);
}

static void when(wr_buf *b, int64_t ms) {
  char s[40] = "";
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  if (gmtime_r(&t, &tm)) strftime(s, sizeof(s), "%H:%M:%S", &tm);
  wr_buf_printf(b, "%s.%03d", s, (int)(ms % 1000));
}

static void replay_form(dash_req *q, wr_buf *b, const wr_inspect_rec *r) {
  wr_buf_append_str(b, "<form class=\"inline\" method=\"post\" action=\"" WR_DASH_PATH "/inspect/replay\">");
  wr__dash_csrf(q, b);
  wr_buf_printf(b, "<input type=\"hidden\" name=\"id\" value=\"%" PRIu64 "\"><button class=\"replay\" type=\"submit\">Replay</button></form>", r->id);
}

static void replay_outcome(wr_buf *b, const wr_inspect_rec *r) {
  if (r->replayed == 1) wr_buf_append_str(b, "<span class=\"replay-result\">replaying…</span>");
  if (r->replayed != 2) return;
  wr_buf_append_str(b, "<span class=\"replay-result\">replayed: ");
  if (r->replay_status) wr_buf_printf(b, "%d in %" PRIu64 " ms", r->replay_status, r->replay_ms);
  else wr_html_escape(b, r->replay_error);
  wr_buf_append_str(b, "</span>");
}

static void inspector_table(dash_req *q, wr_buf *b, const char *tunnel_id) {
  const wr_inspect_rec **list = wr_xcalloc(LIST_MAX, sizeof(*list));
  size_t n = wr_inspect_list(q->d->inspect, tunnel_id, list, LIST_MAX);
  wr_buf_append_str(b, "<table id=\"inspector\"><thead><tr><th>Time (UTC)</th><th>Request</th><th>Status</th>"
                       "<th class=\"num\">Time</th><th class=\"num\">Up</th><th class=\"num\">Down</th><th></th>"
                       "</tr></thead><tbody>\n");
  for (size_t i = 0; i < n; i++) {
    const wr_inspect_rec *r = list[i];
    wr_buf_printf(b, "<tr class=\"request\" data-id=\"%" PRIu64 "\"><td>", r->id);
    when(b, r->started_ms);
    wr_buf_printf(b, "</td><td><a class=\"detail\" href=\"" WR_DASH_PATH "/inspect?id=%" PRIu64 "\"><span class=\"method\">", r->id);
    wr_html_escape(b, r->method);
    wr_buf_append_str(b, "</span> <span class=\"path\">");
    wr_html_escape(b, r->target);
    wr_buf_printf(b, "</span></a></td><td class=\"status s%d\">%d</td><td class=\"num\">", r->status / 100, r->status);
    if (r->done) wr_buf_printf(b, "%" PRIu64 " ms", r->duration_ms);
    else wr_buf_append_str(b, "…");
    wr_buf_printf(b, "</td><td class=\"num\">%" PRIu64 "</td><td class=\"num\">%" PRIu64 "</td><td>", r->up, r->down);
    replay_form(q, b, r);
    replay_outcome(b, r);
    wr_buf_append_str(b, "</td></tr>\n");
  }
  wr_buf_append_str(b, "</tbody></table>\n");
  if (!n) wr_buf_append_str(b, "<p id=\"no-requests\">No requests recorded yet.</p>\n");
  free(list);
}

static void chart(wr_buf *b, const char *key, const char *label) {
  wr_buf_printf(b, "<div class=\"chart\"><div>%s <span class=\"now\" id=\"now-%s\">-</span></div>"
                   "<canvas id=\"chart-%s\"></canvas></div>", label, key, key);
}

/* The inspector's part of the traffic page: its records are the loop's. */
typedef struct inspector_call {
  dash_req *q;
  wr_buf *b;
  const char *tunnel_id;
} inspector_call;

static void inspector_part(void *arg) {
  inspector_call *c = arg;
  if (!c->q->d->inspect)
    wr_buf_append_str(c->b, "<p id=\"inspector-off\">The inspector is off (<code>--inspect-requests 0</code>).</p>\n");
  else
    inspector_table(c->q, c->b, c->tunnel_id);
}

/* GET /dashboard/traffic[?tunnel=ID]: on the store thread (the tunnels
 * through the API), the inspector's table built on the loop. */
void wr__dash_traffic(dash_req *q) {
  wr_buf b;
  char tid[80] = "", path[256], err[512];
  json_t *env = NULL;
  wr__dash_form_get(q->req->query, strlen(q->req->query), "tunnel", tid, sizeof(tid));
  wr__dash_begin(q, &b, "Traffic", "traffic");
  if (!tid[0] || !wr__dash_id_ok(tid)) {
    json_t *t, *list;
    size_t i;
    snprintf(path, sizeof(path), "/accounts/%s/cfd_tunnel", q->user.account_id);
    list = wr__dash_api(q, "GET", path, "is_deleted=false", NULL, &env, err, sizeof(err));
    wr_buf_append_str(&b, "<p>Pick a tunnel:</p><ul id=\"traffic-tunnels\">");
    json_array_foreach(list, i, t) {
      wr_buf_append_str(&b, "<li><a href=\"" WR_DASH_PATH "/traffic?tunnel=");
      wr__dash_jstr(&b, t, "id");
      wr_buf_append_str(&b, "\">");
      wr__dash_jstr(&b, t, "name");
      wr_buf_append_str(&b, "</a></li>");
    }
    wr_buf_append_str(&b, "</ul>\n");
    json_decref(env);
    wr__dash_send(q, &b);
    return;
  }
  /* The API's own check that the tunnel is the user's. */
  snprintf(path, sizeof(path), "/accounts/%s/cfd_tunnel/%s", q->user.account_id, tid);
  json_t *t = wr__dash_api(q, "GET", path, NULL, NULL, &env, err, sizeof(err));
  if (!t) {
    wr_buf_append_str(&b, "<p class=\"error\">");
    wr_html_escape(&b, err);
    wr_buf_append_str(&b, "</p>\n");
    json_decref(env);
    wr__dash_send(q, &b);
    return;
  }
  wr_buf_append_str(&b, "<h2>Tunnel <span id=\"tunnel-name\">");
  wr__dash_jstr(&b, t, "name");
  wr_buf_append_str(&b, "</span></h2>\n<div id=\"charts\" class=\"charts\" data-tunnel=\"");
  wr_html_escape(&b, tid);
  wr_buf_append_str(&b, "\">");
  chart(&b, "rps", "Requests/s");
  chart(&b, "errors", "Errors/s (5xx)");
  chart(&b, "bytes", "Bytes/s");
  chart(&b, "latency", "Latency (ms, mean)");
  wr_buf_append_str(&b, "</div><p class=\"note\">Requests since the edge started: <span id=\"total-requests\">-</span></p>\n"
                        "<h2>Traffic inspector</h2>\n");
  json_decref(env);
  inspector_call c = {q, &b, tid};
  if (wr__dash_on_loop(q, inspector_part, &c) != 0) { /* stopping: unanswered is 503 */
    wr_buf_free(&b);
    return;
  }
  wr__dash_send(q, &b);
}

static void pre_text(wr_buf *b, const char *id, const char *text, size_t len, int cut) {
  wr_buf_printf(b, "<pre id=\"%s\">", id);
  wr_html_escape_n(b, text ? text : "", text ? len : 0);
  wr_buf_append_str(b, "</pre>");
  if (cut) wr_buf_append_str(b, "<p class=\"note\">(cut at the inspector's limit)</p>");
}

static void body_section(wr_buf *b, const char *title, const char *id, const wr_inspect_body *body, int on) {
  wr_buf_printf(b, "<h2>%s</h2>", title);
  if (!on) {
    wr_buf_printf(b, "<p class=\"note\">%" PRIu64 " bytes; bodies are not kept (start the edge with "
                     "<code>--inspect-bodies</code>).</p>", body->total);
    return;
  }
  pre_text(b, id, (const char *)body->data, body->len, body->len < body->total);
}

/* GET /dashboard/inspect?id=N */
static void inspect_page(dash_req *q, const wr_inspect_rec *r) {
  wr_buf b;
  wr__dash_begin(q, &b, "Request", "traffic");
  wr_buf_append_str(&b, "<p><a href=\"" WR_DASH_PATH "/traffic?tunnel=");
  wr_html_escape(&b, r->tunnel_id);
  wr_buf_append_str(&b, "\">Back to the tunnel's traffic</a></p>\n<p id=\"request-line\"><b>");
  wr_html_escape(&b, r->method);
  wr_buf_append_str(&b, "</b> ");
  wr_html_escape(&b, r->host);
  wr_html_escape(&b, r->target);
  wr_buf_printf(&b, " → <span id=\"status\" class=\"s%d\">%d</span>", r->status / 100, r->status);
  if (r->done) wr_buf_printf(&b, " in %" PRIu64 " ms", r->duration_ms);
  wr_buf_append_str(&b, " (");
  when(&b, r->started_ms);
  wr_buf_append_str(&b, " UTC) ");
  replay_form(q, &b, r);
  replay_outcome(&b, r);
  wr_buf_append_str(&b, "</p>\n<h2>Request headers</h2>");
  pre_text(&b, "request-headers", r->req_headers.data, r->req_headers.len, r->req_headers.cut);
  body_section(&b, "Request body", "request-body", &r->req_body, wr_inspect_bodies(q->d->inspect));
  wr_buf_append_str(&b, "<h2>Response headers</h2>");
  pre_text(&b, "response-headers", r->resp_headers.data, r->resp_headers.len, r->resp_headers.cut);
  body_section(&b, "Response body", "response-body", &r->resp_body, wr_inspect_bodies(q->d->inspect));
  wr__dash_send(q, &b);
}

void wr__dash_inspect(dash_req *q) { with_own_record(q, q->req->query, strlen(q->req->query), inspect_page); }

/* ---- replay --------------------------------------------------------------------------- */

typedef struct replay_job {
  uv_work_t work;
  wr_dash *d;
  uint64_t id;
  struct sockaddr_storage addr;
  wr_buf request;   /* the whole request, head and body */
  int status;       /* result: 0 with |error| */
  uint64_t ms;
  char error[160];
} replay_job;

static int replay_exchange(replay_job *j) {
  struct timeval tv = {.tv_sec = REPLAY_TIMEOUT_S};
  socklen_t alen = j->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  int fd = socket(j->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return snprintf(j->error, sizeof(j->error), "socket: %s", strerror(errno)), -1;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int rv = -1;
  if (connect(fd, (struct sockaddr *)&j->addr, alen) != 0) {
    snprintf(j->error, sizeof(j->error), "connecting to the visitor listener: %s", strerror(errno));
    goto out;
  }
  for (size_t off = 0; off < j->request.len;) {
    ssize_t w = send(fd, j->request.data + off, j->request.len - off, MSG_NOSIGNAL);
    if (w <= 0) {
      snprintf(j->error, sizeof(j->error), "sending: %s", w < 0 ? strerror(errno) : "closed");
      goto out;
    }
    off += (size_t)w;
  }
  char head[64];
  size_t got = 0, total = 0;
  char buf[16384];
  ssize_t r;
  while ((r = recv(fd, buf, sizeof(buf), 0)) > 0 && total < REPLAY_READ_MAX) {
    size_t take = (size_t)r < sizeof(head) - 1 - got ? (size_t)r : sizeof(head) - 1 - got;
    memcpy(head + got, buf, take);
    got += take;
    total += (size_t)r;
  }
  head[got] = '\0';
  int code = 0;
  if (got >= 12 && strncmp(head, "HTTP/1.", 7) == 0 && sscanf(head + 9, "%3d", &code) == 1 && code >= 100) {
    j->status = code;
    rv = 0;
  } else {
    snprintf(j->error, sizeof(j->error), "%s", r < 0 ? "no answer in time" : "no valid HTTP answer");
  }
out:
  close(fd);
  return rv;
}

static void replay_work(uv_work_t *w) {
  replay_job *j = w->data;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  replay_exchange(j);
  clock_gettime(CLOCK_MONOTONIC, &b);
  j->ms = (uint64_t)((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000);
}

static void replay_done(uv_work_t *w, int status) {
  replay_job *j = w->data;
  wr_dash *d = j->d;
  if (status == UV_ECANCELED) snprintf(j->error, sizeof(j->error), "cancelled"), j->status = 0;
  if (!d->jobs.closing) {
    wr_inspect_replay_result(d->inspect, j->id, j->status, j->ms, j->error);
    wr_info("dashboard: replay of request %" PRIu64 ": %d%s%s", j->id, j->status, j->error[0] ? " " : "", j->error);
  }
  wr_buf_free(&j->request);
  free(j);
  wr_owner_drop(&d->jobs); /* may free |d| */
}

/* The request of |r| as bytes, or -1 with |why|. */
static int replay_build(const wr_inspect_rec *r, wr_buf *out, const char **why) {
  wr_http_header hs[WR__DASH_REPLAY_MAX_HEADERS];
  if (r->req_body.total && r->req_body.len < r->req_body.total) {
    *why = "Its body was not kept whole (start the edge with --inspect-bodies; bodies over the cap cannot be replayed).";
    return -1;
  }
  char *text = r->req_headers.data ? wr_xstrdup(r->req_headers.data) : NULL;
  size_t n = text ? wr__dash_replay_headers(text, hs, WR__DASH_REPLAY_MAX_HEADERS) : 0;
  wr_buf_init(out, 256u * 1024 + r->req_body.len, NULL);
  wr_buf_printf(out, "%s %s HTTP/1.1\r\nHost: %s\r\n", r->method, r->target, r->host);
  for (size_t i = 0; i < n; i++)
    wr_buf_printf(out, "%.*s: %.*s\r\n", (int)hs[i].name_len, hs[i].name, (int)hs[i].value_len, hs[i].value);
  if (r->req_body.len || strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0)
    wr_buf_printf(out, "Content-Length: %zu\r\n", r->req_body.len);
  wr_buf_append_str(out, "Connection: close\r\n\r\n");
  if (r->req_body.len) wr_buf_append(out, r->req_body.data, r->req_body.len);
  free(text);
  return 0;
}

/* POST /dashboard/inspect/replay (form: csrf, id) */
static void replay_page(dash_req *q, const wr_inspect_rec *r) {
  wr_dash *d = q->d;
  const char *why = NULL;
  char back[128];
  snprintf(back, sizeof(back), WR_DASH_PATH "/traffic?tunnel=%s", r->tunnel_id);
  if (!d->visitor_addr.ss_family) {
    wr__dash_redirect(q, back, "error", "Replay needs the edge's visitor listener.");
    return;
  }
  replay_job *j = wr_xcalloc(1, sizeof(*j));
  if (replay_build(r, &j->request, &why) != 0) {
    free(j);
    wr__dash_redirect(q, back, "error", why);
    return;
  }
  j->d = d;
  j->id = r->id;
  j->addr = d->visitor_addr;
  /* A listener on every address is dialed on loopback. */
  if (j->addr.ss_family == AF_INET && ((struct sockaddr_in *)&j->addr)->sin_addr.s_addr == htonl(INADDR_ANY))
    ((struct sockaddr_in *)&j->addr)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (j->addr.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&j->addr)->sin6_addr))
    ((struct sockaddr_in6 *)&j->addr)->sin6_addr = in6addr_loopback;
  j->work.data = j;
  wr_inspect_replay_result(d->inspect, r->id, -1, 0, NULL);
  uint64_t id = r->id;
  if (uv_queue_work(d->loop, &j->work, replay_work, replay_done) != 0) {
    wr_buf_free(&j->request);
    free(j);
    wr__dash_redirect(q, back, "error", "The replay could not be started.");
    return;
  }
  wr_owner_hold(&d->jobs);
  char msg[64];
  snprintf(msg, sizeof(msg), "Replaying request %" PRIu64 ".", id);
  wr__dash_redirect(q, back, "msg", msg);
}

void wr__dash_replay(dash_req *q) {
  with_own_record(q, (const char *)q->req->body, q->req->body_len, replay_page);
}
