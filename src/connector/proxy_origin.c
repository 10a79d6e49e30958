/* The origin side of the proxy (see proxy_int.h): dialing an origin for a
 * stream's rule, the TLS client credentials cache, the keep-alive pool with
 * its idle timer, and the wr_conn callbacks, which hold the stream and hand
 * the events to the HTTP translation (proxy_http.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/proxy_int.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/mem.h"

/* Go's MaxIdleConnsPerHost default when keepAliveConnections is 0. */
#define DEFAULT_IDLE_PER_HOST 2

/* --- TLS credentials cache ------------------------------------------------------- */

static wr_tls_creds *get_creds(wr_proxy *p, const char *ca, int no_verify, char *err,
                               size_t errlen) {
  creds_ent *e;
  wr_tls_client_config cc;
  wr_tls_creds *cr = NULL;
  for (e = p->creds; e; e = e->next)
    if (e->no_verify == no_verify && strcmp(e->ca, ca) == 0) return e->creds;
  memset(&cc, 0, sizeof(cc));
  cc.ca_file = ca[0] ? ca : NULL;
  cc.no_verify = no_verify;
  if (wr_tls_creds_client(&cc, &cr, err, errlen) != WR_OK) return NULL;
  e = wr_xcalloc(1, sizeof(*e));
  e->ca = wr_xstrdup(ca);
  e->no_verify = no_verify;
  e->creds = cr;
  e->next = p->creds;
  p->creds = e;
  return cr;
}

void wr__proxy_creds_free(wr_proxy *p) {
  creds_ent *e, *n;
  for (e = p->creds; e; e = n) {
    n = e->next;
    wr_tls_creds_free(e->creds);
    free(e->ca);
    free(e);
  }
  p->creds = NULL;
}

/* --- origin pool ------------------------------------------------------------------ */

static void idle_unlink(wr_proxy *p, origin *o) {
  if (o->idle_prev)
    o->idle_prev->idle_next = o->idle_next;
  else if (p->idle == o)
    p->idle = o->idle_next;
  if (o->idle_next) o->idle_next->idle_prev = o->idle_prev;
  o->idle_next = o->idle_prev = NULL;
}

void wr__proxy_origin_close(origin *o) {
  if (o->state == O_CLOSING) return;
  if (o->state == O_IDLE) idle_unlink(o->p, o);
  o->state = O_CLOSING;
  o->s = NULL;
  wr_conn_close(o->conn);
}

static void timer_cb(uv_timer_t *t);

static void timer_rearm(wr_proxy *p) {
  uint64_t now = uv_now(p->loop), min = wr__oh2_next_deadline(p);
  origin *o;
  if (p->dying) return;
  for (o = p->idle; o; o = o->idle_next)
    if (o->deadline && (!min || o->deadline < min)) min = o->deadline;
  if (!min) {
    uv_timer_stop(&p->timer);
    return;
  }
  uv_timer_start(&p->timer, timer_cb, min > now ? min - now : 0, 0);
}

static void timer_cb(uv_timer_t *t) {
  wr_proxy *p = t->data;
  uint64_t now = uv_now(p->loop);
  origin *o = p->idle, *next;
  for (; o; o = next) {
    next = o->idle_next;
    if (o->deadline && o->deadline <= now) wr__proxy_origin_close(o);
  }
  wr__oh2_expire(p, now);
  timer_rearm(p);
}

void wr__proxy_timer_rearm(wr_proxy *p) { timer_rearm(p); }

static void pool_put(wr_proxy *p, origin *o) {
  origin *x, *last = NULL;
  int n = 0;
  o->state = O_IDLE;
  o->s = NULL;
  o->deadline = o->idle_timeout_ms ? uv_now(p->loop) + o->idle_timeout_ms : 0;
  o->idle_prev = NULL;
  o->idle_next = p->idle;
  if (p->idle) p->idle->idle_prev = o;
  p->idle = o;
  for (x = p->idle; x; x = x->idle_next)
    if (strcmp(x->key, o->key) == 0) {
      n++;
      last = x;
    }
  if (n > o->max_idle && last) wr__proxy_origin_close(last); /* the least recently used */
  timer_rearm(p);
}

static origin *pool_take(wr_proxy *p, const char *key) {
  origin *o;
  for (o = p->idle; o; o = o->idle_next)
    if (strcmp(o->key, key) == 0) {
      idle_unlink(p, o);
      o->state = O_ACTIVE;
      o->reused = 1;
      return o;
    }
  return NULL;
}

void wr__proxy_detach(pstream *s, int reuse) {
  origin *o = s->o;
  wr_proxy *p = s->p;
  wr__oh2_detach(s);
  if (!o) return;
  s->o = NULL;
  s->ready = 0;
  wr__proxy_consume(s, s->credit_owed);
  s->credit_owed = 0;
  o->s = NULL;
  if (reuse && !p->dying && o->state == O_ACTIVE && o->max_idle > 0) {
    if (s->paused) wr_conn_read_start(o->conn);
    s->paused = 0;
    pool_put(p, o);
  } else {
    s->paused = 0;
    wr__proxy_origin_close(o);
  }
}

/* --- origin callbacks ------------------------------------------------------------- */

static void o_on_connect(wr_conn *c, int status, const char *msg, void *user) {
  origin *o = user;
  pstream *s = o->s;
  if (!s) return;
  wr__proxy_hold(s);
  if (s->tcp) {
    if (status == WR_OK) o->state = O_ACTIVE;
    wr__proxy_tcp_connected(s, status, msg);
  } else if (status != WR_OK) {
    char why[512];
    snprintf(why, sizeof(why), "%s", msg && msg[0] ? msg : wr_strerror(status));
    wr__proxy_respond_errorf(s, WR__PROXY_UNREACHABLE ": %s", why);
  } else if (o->want_h2 && strcmp(wr_conn_alpn(c), "h2") == 0) {
    wr__oh2_start(o, s);
  } else {
    o->state = O_ACTIVE;
    wr__proxy_origin_ready(s);
  }
  wr__proxy_unhold(s);
}

static void o_on_read(wr_conn *c, const uint8_t *data, size_t len, void *user) {
  origin *o = user;
  pstream *s = o->s;
  if (o->h2) {
    wr__oh2_conn_read(o, data, len);
    return;
  }
  if (!s) {
    /* Bytes on an idle pooled connection: the origin is confused. */
    if (o->state == O_IDLE) wr__proxy_origin_close(o);
    return;
  }
  wr__proxy_hold(s);
  if (s->tcp)
    wr__proxy_tcp_origin_input(s, data, len);
  else
    wr__proxy_origin_input(s, data, len);
  wr__proxy_unhold(s);
}

static void o_on_eof(wr_conn *c, int status, const char *msg, void *user) {
  origin *o = user;
  pstream *s = o->s;
  if (o->h2) {
    wr__oh2_conn_eof(o, status, msg);
    return;
  }
  if (!s) {
    wr__proxy_origin_close(o);
    return;
  }
  wr__proxy_hold(s);
  if (s->tcp)
    wr__proxy_tcp_origin_eof(s, status, msg);
  else
    wr__proxy_origin_eof(s, status, msg);
  wr__proxy_unhold(s);
}

static void o_on_drain(wr_conn *c, void *user) {
  origin *o = user;
  pstream *s = o->s;
  if (o->h2) {
    wr__oh2_conn_drain(o);
    return;
  }
  if (!s) return;
  wr__proxy_hold(s);
  wr__proxy_return_credit(s);
  wr__proxy_unhold(s);
}

static void o_on_close(wr_conn *c, void *user) {
  origin *o = user;
  wr_proxy *p = o->p;
  if (o->h2) wr__oh2_conn_closed(o);
  WR_LIST_REMOVE(p->origins, o);
  free(o->key);
  free(o);
  wr__proxy_handle_done(p);
}

static const wr_conn_callbacks origin_cbs = {
    .on_connect = o_on_connect,
    .on_read = o_on_read,
    .on_eof = o_on_eof,
    .on_drain = o_on_drain,
    .on_close = o_on_close,
};

/* --- dialing ------------------------------------------------------------------------ */

char *wr__proxy_origin_key(const wr_ingress_rule *r) {
  const wr_origin_request *o = &r->origin;
  wr_buf b;
  char *k;
  wr_buf_init(&b, WR__PROXY_ARENA_MAX, NULL);
  if (r->service.kind == WR_SVC_UNIX)
    wr_buf_printf(&b, "unix|%s", r->service.path);
  else
    wr_buf_printf(&b, "tcp|%s|%u", r->service.host, (unsigned)r->service.port);
  if (r->service.tls)
    wr_buf_printf(&b, "|tls|%s|%d|%s", o->ca_pool, o->no_tls_verify, o->origin_server_name);
  k = wr_xstrdup(wr_buf_cstr(&b));
  wr_buf_free(&b);
  return k;
}

/* The name the origin's certificate must carry: originServerName, else for
 * a socket path (no host in it) the host the request was for; NULL: the
 * host dialed. */
static const char *tls_server_name(const pstream *s, char sni[256]) {
  const wr_origin_request *orq = &s->rule->origin;
  if (orq->origin_server_name[0]) return orq->origin_server_name;
  if (s->rule->service.kind != WR_SVC_UNIX) return NULL;
  size_t hl = s->hm.host ? s->hm.host_len : 0;
  const char *colon = hl ? memchr(s->hm.host, ':', hl) : NULL;
  if (colon && s->hm.host[0] != '[') hl = (size_t)(colon - s->hm.host);
  snprintf(sni, 256, "%.*s", (int)hl, hl ? s->hm.host : "localhost");
  return sni;
}

/* Where and how to connect for the stream's rule. Returns WR_OK, or
 * WR_ERR_CRYPTO when the TLS credentials do not load (|err| says why, or
 * is empty). */
static int dial_target(pstream *s, wr_conn_target *t, char sni[256], char *err, size_t errlen) {
  const wr_ingress_rule *r = s->rule;
  const wr_origin_request *orq = &r->origin;
  memset(t, 0, sizeof(*t));
  if (r->service.kind == WR_SVC_UNIX) {
    t->unix_path = r->service.path;
  } else {
    t->host = r->service.host;
    t->port = r->service.port;
  }
  if (r->service.tls) {
    err[0] = '\0';
    t->tls = get_creds(s->p, orq->ca_pool, orq->no_tls_verify, err, errlen);
    if (!t->tls) return WR_ERR_CRYPTO;
    t->server_name = tls_server_name(s, sni);
    if (wr__oh2_wanted(s)) t->alpn = "h2,http/1.1"; /* Go's ForceAttemptHTTP2 */
  }
  t->connect_timeout_ms =
      (uint64_t)(orq->connect_timeout_ns > 0 ? orq->connect_timeout_ns : 0) / 1000000u;
  if (r->service.tls && orq->tls_timeout_ns > 0)
    t->connect_timeout_ms += (uint64_t)orq->tls_timeout_ns / 1000000u;
  t->tcp_keepalive_s =
      (uint64_t)(orq->tcp_keepalive_ns > 0 ? orq->tcp_keepalive_ns : 0) / 1000000000u;
  return WR_OK;
}

static origin *origin_new(pstream *s, char *key) {
  origin *o = wr_xcalloc(1, sizeof(*o));
  o->p = s->p;
  o->key = key;
  o->state = O_CONNECTING;
  o->s = s;
  if (!s->rule || s->tcp) return o; /* a TCP pipe: never pooled (max_idle 0) */
  const wr_origin_request *orq = &s->rule->origin;
  o->max_idle =
      orq->keepalive_connections > 0 ? orq->keepalive_connections : DEFAULT_IDLE_PER_HOST;
  o->idle_timeout_ms =
      orq->keepalive_timeout_ns > 0 ? (uint64_t)orq->keepalive_timeout_ns / 1000000u : 0;
  return o;
}

/* Starts the connection of a new origin |o| for |s|. Returns WR_OK or the
 * error of wr_conn_connect (|o| freed). */
static int origin_connect(pstream *s, origin *o, const wr_conn_target *t) {
  wr_proxy *p = s->p;
  int rv = wr_conn_connect(p->loop, t, &origin_cbs, o, &o->conn);
  if (rv != WR_OK) {
    free(o->key);
    free(o);
    return rv;
  }
  WR_LIST_INSERT_HEAD(p->origins, o);
  p->handles++;
  s->o = o;
  wr__proxy_set_state(s, ST_DIAL);
  return WR_OK;
}

int wr__proxy_dial_to(pstream *s, const wr_conn_target *t) {
  return origin_connect(s, origin_new(s, wr_xstrdup("")), t);
}

int wr__proxy_dial(pstream *s, int allow_pool) {
  wr_proxy *p = s->p;
  char *key, sni[256], err[512];
  origin *o;
  wr_conn_target t;
  int rv;

  if (allow_pool && wr__oh2_wanted(s) && wr__oh2_attach(s) == WR_OK) return WR_OK;
  key = wr__proxy_origin_key(s->rule);
  o = allow_pool ? pool_take(p, key) : NULL;
  if (o) {
    free(key);
    o->s = s;
    s->o = o;
    wr__proxy_origin_ready(s);
    return WR_OK;
  }
  if (dial_target(s, &t, sni, err, sizeof(err)) != WR_OK) {
    free(key);
    wr__proxy_respond_errorf(s, WR__PROXY_UNREACHABLE ": %s",
                             err[0] ? err : "cannot load TLS credentials");
    return WR_ERR_CRYPTO;
  }
  o = origin_new(s, key);
  o->want_h2 = t.alpn != NULL;
  rv = origin_connect(s, o, &t);
  if (rv != WR_OK)
    wr__proxy_respond_errorf(s, WR__PROXY_UNREACHABLE ": dial: %s", wr_strerror(rv));
  return rv;
}
