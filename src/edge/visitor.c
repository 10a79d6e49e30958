/* The edge's visitor front; see visitor.h. This file is its HTTP/1.1
 * connection front: the listener, accepting (through the limits of
 * visitor_limits.c), reading and parsing request heads, keep-alive and
 * pipelining, the timeouts, output gathering and closing; and the visitor
 * object's lifetime. The other parts are listed in visitor_int.h.
 *
 * One vconn per accepted TCP connection. It serves one request at a time:
 *
 *   VC_HEAD ──parse──> VC_PROXY ──response and request body done──> VC_HEAD
 *      │                  │  (local answers: 404, 502, ... go straight back)
 *      └──────────────────┴──> VC_CLOSING (flush, shutdown, linger) ──> freed
 *
 * While proxying (visitor_proxy.c), two half machines run side by side:
 * the request body (visitor -> stream, enum rb_state) and the response
 * (stream -> visitor, enum rs_state).
 *
 * Lifetimes: the vconn owns its libuv handles and is freed from the last
 * close callback. Work that would open new streams or parse the next
 * request is never done from inside a QUIC callback: it goes through the
 * zero-delay |kick| timer.
 *
 * Output is gathered per connection and written once per loop iteration
 * (the |flusher| check handle): a response head and the body packets that
 * arrived with it become one write(2) instead of one each. */
#include "edge/visitor.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/access.h"
#include "edge/visitor_int.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/read_gate.h"
#include "proto/http1.h"

#define VIN_MAX (64u * 1024u)          /* visitor bytes buffered (head + pipelined) */
#define LINGER_MS 2000                 /* after our FIN, wait this long for the visitor's */
#define PROXY_IDLE_MIN_MS 100000       /* Cloudflare's 100 s origin timeout */
#define PEND_MAX (64u * 1024u)         /* output gathered before it goes out at once */

#define DEF_HEADER_TIMEOUT_MS 10000
#define STORE_WAIT_MS 30000 /* a head waiting for the store thread */
#define DEF_IDLE_TIMEOUT_MS 60000
#define DEF_ROUTE_TTL_MS 1000

static void vc_process(vconn *c);
static void vc_finish(vconn *c);

/* ---- timers, reading, writing --------------------------------------------- */

static void timer_cb(uv_timer_t *t);

vreq *wr__vconn_req(vconn *c) {
  if (!c->r) {
    c->r = wr_xcalloc(1, sizeof(*c->r));
    c->r->sid = -1;
  }
  return c->r;
}

void wr__vconn_arm(vconn *c, int mode, uint64_t ms) {
  if (c->closed) return;
  c->tmode = mode;
  uv_timer_start(&c->timer, timer_cb, ms, 0);
}

void wr__vconn_activity(vconn *c) {
  if (c->state == VC_PROXY) wr__vconn_arm(c, T_PROXY, c->v->proxy_idle_ms);
}

static void kick_cb(uv_timer_t *t) { vc_process(t->data); }

void wr__vconn_kick(vconn *c) {
  if (!c->closed) uv_timer_start(&c->kick, kick_cb, 0, 0);
}

static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *buf) {
  vconn *c = h->data;
  (void)sz;
  /* TLS: ciphertext is copied into the session at once. */
  if (c->tls_mode || (!c->in.data && c->state == VC_HEAD)) {
    *buf = uv_buf_init((char *)c->v->idle_rbuf, sizeof(c->v->idle_rbuf));
    return;
  }
  if (wr_buf_reserve(&c->in, WR__VISITOR_READ_CHUNK) != WR_OK) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init((char *)c->in.data + c->in.len, WR__VISITOR_READ_CHUNK);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void vc_update_reading(vconn *c) {
  int want = 0;
  if (c->sub) { /* no socket: its input is its stream's DATA */
    if (!c->closed) wr__vsub_update(c);
    return;
  }
  if (c->closed || c->peer_eof) {
    want = 0;
  } else if (c->state == VC_TLS) {
    want = !c->tls_wait;
  } else if (c->state == VC_HEAD) {
    want = c->in.len < VIN_MAX;
  } else if (c->state == VC_ROUTE) {
    want = 0; /* the head is parsed again once its route is known */
  } else if (c->state == VC_H2) {
    want = c->in.len < VIN_MAX && wr__vh2_want_read(c);
  } else if (c->state == VC_PROXY) {
    want = !c->r->stream_blocked && c->in.len < VIN_MAX &&
           !(c->r->discard && c->r->discarded > WR__VISITOR_DISCARD_MAX);
  } else {
    want = c->shut; /* lingering: read and drop until the visitor's FIN */
  }
  /* Records already in the session come before more from the socket. */
  if (want && c->tls_mode && c->state != VC_TLS && c->state != VC_CLOSING && wr__vtls_backlog(c)) {
    wr__vconn_kick(c);
    want = 0;
  }
  c->reading = wr_read_gate((uv_stream_t *)&c->tcp, c->reading, want, alloc_cb, read_cb);
}

/* |w| is out in full: counts it and returns its stream credit. */
static void written(vconn *c, const wreq *w) {
  c->v->stats.bytes_out += w->len;
  if (w->credit && w->gen == c->gen && c->r && c->r->st) wr_tunnel_stream_consume(c->r->st, w->credit);
  wr__vconn_activity(c);
  if (c->h2) wr__vconn_kick(c); /* frames held back for the backlog may go now */
}

static void write_cb(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  vconn *c = w->c;
  c->writes--;
  if (!c->closed) {
    if (status < 0) {
      wr_debug("visitor %" PRIu64 " (%s): write failed: %s", c->id, c->ip, uv_strerror(status));
      wr__vconn_close_now(c);
    } else {
      written(c, w);
    }
  }
  free(w);
}

/* Hands the gathered output of |c| to the socket: written at once with
 * uv_try_write when nothing is queued before it, and only what the socket
 * did not take goes to uv_write. Its stream credit then goes back to QUIC in
 * this iteration, not one loop turn later from write_cb, and a write that
 * completes at once costs no epoll_ctl: libuv 1.44 re-arms the socket's
 * watcher whenever a uv_write completes, which was one epoll_ctl per request
 * on a keep-alive connection. */
static void vc_flush(vconn *c) {
  wreq *w = c->pend;
  if (!w) return;
  c->pend = NULL;
  if (c->closed) {
    free(w);
    return;
  }
  if (c->tls_mode && !(w = wr__vtls_wrap(c, w))) return;
  size_t off = 0;
  if (c->writes == 0) {
    uv_buf_t tb = uv_buf_init((char *)w->data, (unsigned)w->len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &tb, 1);
    if (n > 0) off = (size_t)n;
    if (off == w->len) {
      written(c, w);
      free(w);
      return;
    }
  }
  uv_buf_t ub = uv_buf_init((char *)w->data + off, (unsigned)(w->len - off));
  int rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, write_cb);
  if (rv != 0) {
    free(w);
    wr_debug("visitor %" PRIu64 " (%s): write failed: %s", c->id, c->ip, uv_strerror(rv));
    wr__vconn_close_now(c);
    return;
  }
  c->writes++;
}

static void undirty(vconn *c) {
  if (!c->is_dirty) return;
  for (vconn **pp = &c->v->dirty; *pp; pp = &(*pp)->dirty_next)
    if (*pp == c) {
      *pp = c->dirty_next;
      break;
    }
  c->is_dirty = 0;
}

static void nudge_cb(uv_idle_t *h) { (void)h; }

static void flusher_cb(uv_check_t *h) {
  wr_visitor *v = h->data;
  uv_idle_stop(&v->nudge);
  while (v->dirty) {
    vconn *c = v->dirty;
    v->dirty = c->dirty_next;
    c->is_dirty = 0;
    vc_flush(c);
  }
}

/* Queues a + b + d for the visitor; |credit| stream bytes are returned to
 * QUIC once they were written. On failure the connection is closed. */
void wr__vconn_write3(vconn *c, const void *a, size_t alen, const void *b, size_t blen,
                      const void *d, size_t dlen, size_t credit) {
  if (c->closed || c->shut) return;
  if (c->sub) {
    wr__vsub_write(c, a, alen, b, blen, d, dlen, credit);
    return;
  }
  size_t n = alen + blen + dlen;
  wreq *w = c->pend;
  /* Credit belongs to one stream generation; a large batch goes out now. */
  if (w && (w->gen != c->gen || w->len + n > PEND_MAX)) {
    vc_flush(c);
    if (c->closed) return;
    w = NULL;
  }
  if (!w || w->len + n > w->cap) {
    size_t len = w ? w->len : 0, cap = len + n < 4096 ? 4096 : len + n;
    if (w && cap < 2 * w->cap) cap = 2 * w->cap;
    wreq *nw = wr_xrealloc(w, sizeof(*nw) + cap);
    if (!w) {
      memset(nw, 0, sizeof(*nw));
      nw->c = c;
      nw->gen = c->gen;
    }
    nw->cap = cap;
    w = c->pend = nw;
  }
  if (alen) memcpy(w->data + w->len, a, alen);
  if (blen) memcpy(w->data + w->len + alen, b, blen);
  if (dlen) memcpy(w->data + w->len + alen + blen, d, dlen);
  w->len += n;
  w->credit += credit;
  if (!c->is_dirty) {
    /* Output queued from a timer callback must not wait for poll(2). */
    if (!c->v->dirty) uv_idle_start(&c->v->nudge, nudge_cb);
    c->is_dirty = 1;
    c->dirty_next = c->v->dirty;
    c->v->dirty = c;
  }
}

/* ---- closing ------------------------------------------------------------------- */

static void visitor_maybe_free(wr_visitor *v) {
  if (!v->closing || v->listener_open || v->aux_open || v->conns || v->subs) return;
  wr__visitor_routes_detach(v);
  wr__visitor_routes_free(v);
  wr__visitor_limits_free(v);
  free(v);
}

void wr__vconn_wait(vconn *c) {
  if (c->waiting) return;
  wr_visitor *v = c->v;
  /* A whole head waiting for the edge's own store (route, Access) is not
   * the visitor's delay: the header timeout (408) gives way to a bound on
   * the edge (503). */
  if (c->state == VC_ROUTE && c->tmode != T_STORE) wr__vconn_arm(c, T_STORE, STORE_WAIT_MS);
  c->wprev = NULL;
  c->wnext = v->waiting;
  if (v->waiting) v->waiting->wprev = c;
  v->waiting = c;
  c->waiting = 1;
}

void wr__vconn_unwait(vconn *c) {
  if (!c->waiting) return;
  if (c->wprev)
    c->wprev->wnext = c->wnext;
  else
    c->v->waiting = c->wnext;
  if (c->wnext) c->wnext->wprev = c->wprev;
  c->wprev = c->wnext = NULL;
  c->waiting = 0;
}

void wr__visitor_wake_waiting(wr_visitor *v, int (*pick)(const vconn *c)) {
  /* Detach the list first: a kicked connection only runs later (its kick
   * timer), but one that waits again must not be seen twice here. */
  vconn *list = v->waiting;
  v->waiting = NULL;
  for (vconn *c = list, *next; c; c = next) {
    next = c->wnext;
    c->wprev = c->wnext = NULL;
    c->waiting = 0;
    if (c->closed || (pick && !pick(c))) {
      if (!c->closed) wr__vconn_wait(c);
      continue;
    }
    if (c->state == VC_ROUTE) c->state = VC_HEAD;
    wr__vconn_kick(c);
  }
}

static void close_cb(uv_handle_t *h) {
  vconn *c = h->data;
  if (--c->handles > 0) return;
  wr_visitor *v = c->v;
  wr__vconn_unwait(c);
  vconn **head = c->sub ? &v->subs : &v->conns;
  WR_LIST_REMOVE(*head, c);
  if (!c->sub) v->stats.active_conns--;
  wr_buf_free(&c->in);
  wr_buf_free(&c->rhead);
  wr_buf_free(&c->rtrail);
  wr__vtls_free(c);
  free(c->pend);
  free(c->access_jwt);
  free(c->r);
  free(c);
  visitor_maybe_free(v);
}

/* Closes at once, dropping unwritten output; with |reset| the visitor gets
 * a TCP reset instead of a FIN. */
static void vc_close(vconn *c, int reset) {
  if (c->closed) return;
  wr__vconn_release_stream(c, 0);
  undirty(c);
  free(c->pend);
  c->pend = NULL;
  c->closed = 1;
  c->reading = 0;
  if (c->h2) wr__vh2_free(c); /* its streams first: they share the slot's source */
  wr__visitor_slot_release(c);
  if (c->sub)
    wr__vsub_closed(c, reset);
  else if (reset)
    uv_tcp_close_reset(&c->tcp, close_cb);
  else
    uv_close((uv_handle_t *)&c->tcp, close_cb);
  uv_close((uv_handle_t *)&c->timer, close_cb);
  uv_close((uv_handle_t *)&c->kick, close_cb);
}

void wr__vconn_close_now(vconn *c) { vc_close(c, 0); }

/* A broken response: the visitor must see that it is incomplete. A chunked
 * or Content-Length body simply stops before its end; a close-delimited one
 * (HTTP/1.0) can only say so with a TCP reset. */
void wr__vconn_abort(vconn *c, const char *why) {
  wr__vconn_req(c);
  wr_warn("visitor %" PRIu64 " (%s): %s %s%s: response broken after %" PRIu64
          " bytes: %s tunnel=%s connection=%s stream=%" PRId64,
          c->id, c->ip, c->r->method, c->r->host, c->r->target, c->r->down, why, c->r->tunnel_id,
          c->r->conn_id[0] ? c->r->conn_id : "-", c->r->sid);
  if ((c->r->resp == RS_EOF || c->sub) && !c->closed) { /* h2: RST_STREAM */
    vc_close(c, 1);
    return;
  }
  vc_finish(c);
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  vconn *c = req->data;
  if (c->closed) return;
  c->shut_done = 1;
  if (status < 0 || c->peer_eof) {
    wr__vconn_close_now(c);
    return;
  }
  wr__vconn_arm(c, T_LINGER, LINGER_MS);
  vc_update_reading(c);
}

/* Graceful end of the connection: what was written goes out, then our FIN,
 * then we wait (bounded) for the visitor's FIN so that a close with unread
 * input does not turn into a reset that destroys the last response. */
static void vc_finish(vconn *c) {
  if (c->closed || c->state == VC_CLOSING) return;
  wr__vconn_release_stream(c, 0);
  if (c->sub) { /* the response is complete: END_STREAM once it drained */
    wr__vsub_done(c);
    vc_close(c, 0);
    return;
  }
  if (c->h2) wr__vh2_free(c);
  wr__visitor_idle_leave(c);
  c->state = VC_CLOSING;
  wr_buf_reset(&c->in);
  uv_timer_stop(&c->kick);
  /* Flushing to a visitor that does not read is bounded too. */
  wr__vconn_arm(c, T_LINGER, c->v->idle_timeout_ms);
  /* What was gathered goes out before our FIN, and close_notify. */
  undirty(c);
  vc_flush(c);
  if (c->closed) return;
  if (c->tls_up) {
    wr__vtls_bye(c);
    undirty(c);
    vc_flush(c);
    if (c->closed) return;
  }
  c->shutreq.data = c;
  if (uv_shutdown(&c->shutreq, (uv_stream_t *)&c->tcp, shutdown_cb) != 0) {
    wr__vconn_close_now(c);
    return;
  }
  c->shut = 1;
  vc_update_reading(c);
}

void wr__vconn_finish(vconn *c) { vc_finish(c); }

/* The request is over (answered, or the connection is ending). */
void wr__vconn_end_request(vconn *c, int close) {
  wr_visitor *v = c->v;
  wr__vconn_req(c);
  if (c->r->status || c->r->method[0])
    wr_debug("visitor %" PRIu64 " %s \"%s %s%s %s\" %d tunnel=%s connection=%s "
             "stream=%" PRId64 " up=%" PRIu64 " down=%" PRIu64 " %" PRIu64 "ms",
             c->id, c->ip, c->r->method[0] ? c->r->method : "-", c->r->host, c->r->target,
             c->sub ? c->sops->proto : c->r->minor ? "HTTP/1.1" : "HTTP/1.0", c->r->status,
             c->r->tunnel_id[0] ? c->r->tunnel_id : "-", c->r->conn_id[0] ? c->r->conn_id : "-",
             c->r->sid, c->r->up, c->r->down, uv_now(v->loop) - c->r->t0);
  if (c->r->tunnel_id[0] && (c->r->status || c->r->method[0])) {
    uint64_t now = uv_now(v->loop);
    wr_tunnel_stats_add(v->tunnel_stats, c->r->tunnel_id, c->r->status, c->r->up, c->r->down, now - c->r->t0);
    wr_inspect_end(v->inspect, c->r->insp, c->r->status, c->r->up, c->r->down, now);
  }
  int clean = (c->r->resp == RS_DONE && wr__vconn_body_complete(c)) || c->r->resp == RS_PIPE;
  wr__vconn_release_stream(c, clean ? -1 : 0);
  int keep = !close && !c->sub && c->r->keep_alive && !(c->peer_eof && c->in.len == 0);
  memset(c->r, 0, sizeof(*c->r));
  c->r->sid = -1;
  /* The response head buffer is needed again only by the next request:
   * an idle keep-alive connection holds no buffer (2 KB each before). */
  wr_buf_free(&c->rhead);
  wr_buf_free(&c->rtrail);
  if (!keep) {
    vc_finish(c);
    return;
  }
  c->state = VC_HEAD;
  c->tmode = T_NONE;
  c->scanned = 0;
  if (c->in.len == 0) wr_buf_free(&c->in); /* idle: give the buffer back */
  wr__vconn_kick(c);
}

/* ---- the connection's main loop ------------------------------------------------- */

/* 1 once the buffered bytes may hold a whole head (a blank line) or are
 * over the limit: only then is the parser run (it parses from the start). */
static int head_ready(vconn *c) {
  if (c->in.len > WR_HTTP1_DEFAULT_MAX_HEAD) return 1;
  size_t from = c->scanned > 3 ? c->scanned - 3 : 0;
  for (size_t i = from; i + 1 < c->in.len; i++) {
    if (c->in.data[i] == '\n' &&
        (c->in.data[i + 1] == '\n' ||
         (i + 2 < c->in.len && c->in.data[i + 1] == '\r' && c->in.data[i + 2] == '\n')))
      return 1;
    if (c->in.data[i] == '\r' && c->in.data[i + 1] != '\n') return 1; /* bare CR: let it fail */
  }
  c->scanned = c->in.len;
  return 0;
}

/* Answers a head that never became a request (malformed, too large, too
 * slow) and closes. */
static void reject_head(vconn *c, int status, const char *msg) {
  wr__vconn_req(c);
  memset(c->r, 0, sizeof(*c->r));
  c->r->sid = -1;
  c->r->t0 = uv_now(c->v->loop);
  wr__vconn_local(c, status, msg, 1);
}

static void vc_process(vconn *c) {
  wr_visitor *v = c->v;
  if (c->state == VC_TLS && wr__vtls_step(c) != WR_OK) {
    if (!c->closed) vc_update_reading(c);
    return;
  }
  if (c->tls_up && c->state != VC_CLOSING) wr__vtls_drain(c);
  if (c->state == VC_H2) {
    wr__vh2_process(c);
    if (!c->closed) vc_update_reading(c);
    return;
  }
  while (!c->closed && c->state == VC_HEAD) {
    if (c->in.len == 0 && c->sub) break; /* cannot happen: it starts with its head */
    if (c->in.len == 0) {
      if (c->peer_eof) {
        vc_finish(c); /* earlier answers still flush */
        return;
      }
      if (c->tmode != T_IDLE) wr__vconn_arm(c, T_IDLE, v->idle_timeout_ms);
      wr__visitor_idle_enter(c);
      free(c->r); /* idle: no request state held (see vconn.r) */
      c->r = NULL;
      break;
    }
    wr__vconn_req(c);
    if (c->tmode != T_HEADER) wr__vconn_arm(c, T_HEADER, v->header_timeout_ms);
    int rv = WR_AGAIN;
    wr_http_header hdrs[WR__VISITOR_MAX_REQ_HEADERS];
    wr_http1_head h;
    size_t used = 0;
    if (head_ready(c))
      rv = wr_http1_parse_request(c->in.data, c->in.len, NULL, hdrs, WR__VISITOR_MAX_REQ_HEADERS,
                                  &h, &used);
    if (rv == WR_AGAIN) {
      if (c->peer_eof) vc_finish(c);
      break;
    }
    c->scanned = 0;
    if (rv == WR_ERR_LIMIT) {
      reject_head(c, 431, "The request header is too large.");
      return;
    }
    if (rv != WR_OK) {
      reject_head(c, 400, "The request is malformed.");
      return;
    }
    wr__vconn_start_request(c, &h, used);
  }
  if (!c->closed && c->state == VC_PROXY) wr__vconn_proxy_step(c);
  vc_update_reading(c);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  vconn *c = s->data;
  if (c->closed) return;
  if (nread > 0) {
    c->v->stats.bytes_in += (uint64_t)nread;
    if (c->state == VC_CLOSING) return; /* lingering: dropped */
    wr__visitor_idle_leave(c);
    if (c->tls_mode) {
      if (wr__vtls_input(c, (const uint8_t *)buf->base, (size_t)nread) != WR_OK) return;
    } else if (buf->base == (char *)c->v->idle_rbuf) {
      if (wr_buf_append(&c->in, buf->base, (size_t)nread) != WR_OK) {
        wr__vconn_close_now(c);
        return;
      }
    } else {
      c->in.len += (size_t)nread;
    }
    wr__vconn_activity(c);
    vc_process(c);
    return;
  }
  if (nread == 0) return;
  if (nread != UV_EOF) {
    wr_debug("visitor %" PRIu64 " (%s): read failed: %s", c->id, c->ip,
             uv_strerror((int)nread));
    wr__vconn_close_now(c);
    return;
  }
  if (c->tls_mode) wr__vtls_input_eof(c);
  c->peer_eof = 1;
  vc_update_reading(c);
  if (c->state == VC_TLS) {
    wr__vconn_close_now(c); /* gone before the handshake ended */
    return;
  }
  if (c->state == VC_CLOSING) {
    if (c->shut_done) wr__vconn_close_now(c); /* else shutdown_cb closes */
    return;
  }
  if (c->state == VC_HEAD) {
    vc_process(c);
    return;
  }
  if (c->state == VC_H2) { /* no more frames can come: what is read is served, then the end */
    vc_process(c);
    if (!c->closed) vc_finish(c);
    return;
  }
  /* Proxying. A visitor that half-closes after a complete request still
   * gets its answer; one that leaves mid-body or ends a pipe ends it all. */
  if (c->r->body == RB_PIPE || c->r->websocket) {
    wr__vconn_end_request(c, 1);
  } else if (wr__vconn_body_complete(c) ||
             (c->r->body == RB_LENGTH && c->in.len >= c->r->body_left)) {
    c->r->keep_alive = 0;
    vc_process(c);
  } else {
    wr_debug("visitor %" PRIu64 " (%s): went away during the request body", c->id, c->ip);
    wr__vconn_close_now(c);
  }
}

static void timer_cb(uv_timer_t *t) {
  vconn *c = t->data;
  if (c->closed) return;
  switch (c->tmode) {
    case T_IDLE:
      if (c->h2) {
        wr__vh2_idle(c);
        break;
      }
      /* fall through */
    case T_LINGER:
    case T_HANDSHAKE:
      wr__vconn_close_now(c);
      break;
    case T_HEADER:
      reject_head(c, 408, "The request header did not arrive in time.");
      break;
    case T_STORE:
      wr__vconn_unwait(c);
      reject_head(c, 503, "The edge could not look up this host in time. Try again.");
      break;
    case T_PROXY:
      c->r->keep_alive = 0;
      wr__vconn_fail(c, 504, "The connector did not answer in time.");
      break;
    default:
      break;
  }
}

/* ---- listener and API ---------------------------------------------------------- */

void wr__visitor_ip_text(const struct sockaddr *sa, char *out, size_t size) {
  snprintf(out, size, "0.0.0.0");
  if (sa->sa_family == AF_INET) {
    uv_ip4_name((const struct sockaddr_in *)sa, out, size);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
      inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, (socklen_t)size);
    else
      uv_ip6_name(s6, out, size);
  }
}

vconn *wr__vconn_sub_new(wr_visitor *v, const vsub_parent *up, size_t in_max) {
  vconn *c = wr_xcalloc(1, sizeof(*c));
  c->v = v;
  c->sub = 1;
  c->id = up->id; /* its log lines name the connection */
  wr__vconn_req(c);
  uv_timer_init(v->loop, &c->timer);
  uv_timer_init(v->loop, &c->kick);
  c->timer.data = c->kick.data = c;
  c->handles = 2;
  wr_buf_init(&c->in, in_max, NULL);
  wr_buf_init(&c->rhead, WR__VISITOR_RESP_HEAD_MAX, NULL);
  snprintf(c->ip, sizeof(c->ip), "%s", up->ip);
  snprintf(c->sni, sizeof(c->sni), "%s", up->sni);
  c->tls_mode = 1; /* HTTP/2 and HTTP/3 are only served over TLS */
  c->src = up->src; /* no slot of its own: the connection holds it */
  c->retry_at = up->retry_at;
  c->state = VC_HEAD;
  WR_LIST_INSERT_HEAD(v->subs, c);
  return c;
}

/* A refused connection only ever had its TCP handle. */
static void refused_close_cb(uv_handle_t *h) { free(h->data); }

/* Sets up an admitted connection and starts serving it. */
static void vc_start(wr_visitor *v, vconn *c, vsrc *s, const struct sockaddr_storage *ss) {
  c->id = ++v->next_id;
  wr__vconn_req(c);
  uv_timer_init(v->loop, &c->timer);
  uv_timer_init(v->loop, &c->kick);
  c->timer.data = c->kick.data = c;
  c->handles = 3;
  wr_buf_init(&c->in, VIN_MAX + WR__VISITOR_READ_CHUNK, NULL);
  wr_buf_init(&c->rhead, WR__VISITOR_RESP_HEAD_MAX, NULL);
  wr_buf_init(&c->rtrail, WR__VISITOR_RESP_HEAD_MAX, NULL);
  WR_LIST_INSERT_HEAD(v->conns, c);
  v->stats.active_conns++;
  v->stats.conns_accepted++;
  wr__visitor_slot_take(c, s);
  uv_tcp_nodelay(&c->tcp, 1);
  wr__visitor_ip_text((const struct sockaddr *)ss, c->ip, sizeof(c->ip));
  c->state = VC_HEAD;
  if (v->certs) wr__vtls_start(c);
  vc_process(c);
}

static void on_connection(uv_stream_t *srv, int status) {
  wr_visitor *v = srv->data;
  if (status < 0) {
    wr_warn("visitor listener: %s", uv_strerror(status));
    return;
  }
  if (v->closing) return;
  vconn *c = wr_xcalloc(1, sizeof(*c));
  c->v = v;
  uv_tcp_init(v->loop, &c->tcp);
  c->tcp.data = c;
  struct sockaddr_storage ss;
  int sslen = sizeof(ss);
  if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0 ||
      uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) != 0) {
    uv_close((uv_handle_t *)&c->tcp, refused_close_cb); /* gone already */
    return;
  }
  vsrc *s = wr__visitor_source_get(v, (struct sockaddr *)&ss);
  if (!wr__visitor_admit(v, s)) {
    /* A reset frees the socket at once: no FIN_WAIT or TIME_WAIT kept for
     * a source that is over its limit. */
    if (uv_tcp_close_reset(&c->tcp, refused_close_cb) != 0)
      uv_close((uv_handle_t *)&c->tcp, refused_close_cb);
    return;
  }
  vc_start(v, c, s, &ss);
}

static void listener_close_cb(uv_handle_t *h) {
  wr_visitor *v = h->data;
  v->listener_open = 0;
  visitor_maybe_free(v);
}

static void aux_close_cb(uv_handle_t *h) {
  wr_visitor *v = h->data;
  if (--v->aux_open > 0) return;
  visitor_maybe_free(v);
}

/* The aux handles: the output flusher, its nudge, the quiet-source timer. */
static void aux_open(wr_visitor *v) {
  uv_check_init(v->loop, &v->flusher);
  uv_idle_init(v->loop, &v->nudge);
  uv_timer_init(v->loop, &v->quiet_timer);
  v->flusher.data = v->nudge.data = v->quiet_timer.data = v;
  v->aux_open = 3;
  uv_check_start(&v->flusher, flusher_cb);
  uv_unref((uv_handle_t *)&v->flusher); /* it alone must not keep the loop running */
  uv_unref((uv_handle_t *)&v->quiet_timer); /* nor this one */
}

/* Closes the listener and the aux handles; the visitor is freed once they
 * and every connection are gone. */
static void handles_close(wr_visitor *v) {
  uv_close((uv_handle_t *)&v->listener, listener_close_cb);
  uv_close((uv_handle_t *)&v->flusher, aux_close_cb);
  uv_close((uv_handle_t *)&v->nudge, aux_close_cb);
  uv_close((uv_handle_t *)&v->quiet_timer, aux_close_cb);
}

/* Connections that wait for the store thread (Access) or a signing job
 * (certificates) are woken when those are back. 0 or UV_ENOBUFS. */
static int watch_reads(wr_visitor *v) {
  if (v->access && wr_access_watch(v->access, wr__visitor_access_ready, v) != WR_OK) return UV_ENOBUFS;
  if (v->certs && wr_certs_watch(v->certs, wr__vtls_cert_ready, v) != WR_OK) return UV_ENOBUFS;
  return 0;
}

/* HTTP/3 on UDP, on the address and port the TCP listener got (port 0: its
 * pick). 0 or UV_EADDRINUSE. */
static int listen_h3(wr_visitor *v) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getsockname(&v->listener, (struct sockaddr *)&ss, &len) != 0 ||
      wr__vh3_listen(v, (struct sockaddr *)&ss) != WR_OK)
    return UV_EADDRINUSE;
  return 0;
}

int wr_visitor_listen(uv_loop_t *loop, const wr_visitor_config *cfg, const struct sockaddr *addr,
                      wr_visitor **out) {
  *out = NULL;
  if (!cfg || !cfg->store || !cfg->ts || !addr) return WR_ERR_INVAL;
  wr_visitor *v = wr_xcalloc(1, sizeof(*v));
  v->loop = loop;
  v->store = cfg->store;
  v->store_async = cfg->store_async;
  v->ts = cfg->ts;
  v->inspect = cfg->inspect;
  v->tunnel_stats = cfg->tunnel_stats;
  v->certs = cfg->certs;
  v->zones = cfg->zones;
  v->https_port = cfg->https_port;
  v->access = cfg->access;
  v->acme = cfg->certs ? NULL : cfg->acme;
  snprintf(v->scheme, sizeof(v->scheme), "%s",
           cfg->scheme && strcmp(cfg->scheme, "https") == 0 ? "https" : "http");
  if (cfg->mgmt_hostname && cfg->mgmt_key && cfg->mgmt_keylen &&
      cfg->mgmt_keylen <= sizeof(v->mgmt_key)) {
    snprintf(v->mgmt_host, sizeof(v->mgmt_host), "%s", cfg->mgmt_hostname);
    memcpy(v->mgmt_key, cfg->mgmt_key, cfg->mgmt_keylen);
    v->mgmt_keylen = cfg->mgmt_keylen;
  }
  v->header_timeout_ms = cfg->header_timeout_ms ? cfg->header_timeout_ms : DEF_HEADER_TIMEOUT_MS;
  v->idle_timeout_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : DEF_IDLE_TIMEOUT_MS;
  v->proxy_idle_ms = v->idle_timeout_ms > PROXY_IDLE_MIN_MS ? v->idle_timeout_ms : PROXY_IDLE_MIN_MS;
  v->route_ttl_ms = cfg->route_ttl_ms ? cfg->route_ttl_ms : DEF_ROUTE_TTL_MS;
  if (wr__visitor_limits_init(v, cfg) != WR_OK) {
    free(v);
    return WR_ERR_IO;
  }
  if (uv_tcp_init(loop, &v->listener) != 0) {
    wr__visitor_limits_free(v);
    free(v);
    return WR_ERR_IO;
  }
  v->listener.data = v;
  v->listener_open = 1;
  aux_open(v);
  int rv = uv_tcp_bind(&v->listener, addr, 0);
  if (rv == 0) rv = uv_listen((uv_stream_t *)&v->listener, 511, on_connection);
  if (rv == 0) rv = watch_reads(v);
  if (rv == 0 && cfg->http3 && v->certs) rv = listen_h3(v);
  if (rv != 0) {
    wr_warn("visitor listener: %s", uv_strerror(rv));
    wr_access_unwatch(v->access, v);
    wr_certs_unwatch(v->certs, v);
    v->closing = 1;
    handles_close(v);
    return WR_ERR_IO;
  }
  *out = v;
  return WR_OK;
}

int wr_visitor_addr(wr_visitor *v, struct sockaddr_storage *ss) {
  int len = sizeof(*ss);
  return uv_tcp_getsockname(&v->listener, (struct sockaddr *)ss, &len) == 0 ? WR_OK : WR_ERR_IO;
}

const wr_visitor_stats *wr_visitor_get_stats(const wr_visitor *v) { return &v->stats; }

void wr_visitor_free(wr_visitor *v) {
  if (!v || v->closing) return;
  v->closing = 1;
  wr_access_unwatch(v->access, v);
  wr_certs_unwatch(v->certs, v);
  wr__vh3_close(v);
  for (vconn *c = v->conns; c; c = c->next) wr__vconn_close_now(c);
  handles_close(v);
}
