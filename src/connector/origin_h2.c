/* HTTP/2 to origins (see proxy_int.h and docs/grpc.md): what Go's
 * transport does for cloudflared with originRequest.http2Origin. A TLS dial
 * for such a rule offers ALPN "h2,http/1.1" (proxy_origin.c); when the
 * origin selects h2, the connection becomes an O_H2 origin carrying an
 * nghttp2 client session here, shared by the requests to that origin while
 * it can open streams. HTTP/1.1 otherwise, as before.
 *
 * A request: HEADERS from the ConnectRequest (the same fields as the
 * HTTP/1.1 head, minus the connection-specific ones), the body from
 * s->held as a data source; the response head becomes the ConnectResponse,
 * DATA the body, a trailing HEADERS the trailers (wr__proxy_send_trailers).
 *
 * Flow control, end to end: request bytes nghttp2 took (the origin's
 * window allowed them) give their credit back to the edge once the
 * connection's write queue is low; response bytes are consumed (the
 * origin's window reopened) only once the tunnel stream accepted them, so a
 * slow visitor holds one origin stream's window, not the connection.
 *
 * nghttp2 is never re-entered: calls made while it runs our callbacks
 * (h->in_ng) only mark the session for a flush at the end. The session is
 * freed with its connection (on_close), never inside an nghttp2 call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nghttp2/nghttp2.h>

#include "connector/proxy_int.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"

#define STREAM_WINDOW (4u << 20) /* Go's transportDefaultStreamFlow */
#define CONN_WINDOW (64u << 20)
#define SEND_HIGH (256u * 1024u) /* TLS bytes queued before we stop framing */
#define MAX_RESP_HEADERS 256
#define RESP_HEAD_MAX (256u * 1024u)

struct oh2 {
  wr_proxy *p;
  origin *o; /* NULL once its connection is gone */
  nghttp2_session *ng;
  oh2 *next, *prev; /* p->h2conns */
  size_t nstreams;
  oh2s *streams;
  uint64_t deadline; /* no streams: uv_now() ms when it closes (0: never) */
  int in_ng, want_flush, goaway, broken;
};

struct oh2s {
  oh2 *h;
  pstream *s; /* NULL once the stream let go */
  int32_t id;
  oh2s *next, *prev; /* h->streams */
  wr_buf hb;         /* header names and values of the head or trailers */
  wr_http_header *hs;
  size_t n;
  int status;
  int head_done;
  int deferred; /* the data source said DEFERRED */
  int ended;    /* END_STREAM or RST seen: nothing more comes */
  size_t unacked; /* response bytes the edge has not taken (s->paused) */
};

static void flush(oh2 *h);

/* --- sessions --------------------------------------------------------------------- */

static int can_take(const oh2 *h) {
  if (!h->o || h->goaway || h->broken || h->o->state != O_H2) return 0;
  uint32_t max = nghttp2_session_get_remote_settings(h->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return h->nstreams < max;
}

static void set_idle(oh2 *h) {
  const uint64_t t = h->o ? h->o->idle_timeout_ms : 0;
  h->deadline = h->nstreams == 0 && t ? uv_now(h->p->loop) + t : 0;
  if (h->deadline) wr__proxy_timer_rearm(h->p);
}

static void stream_unlink(oh2s *x) {
  oh2 *h = x->h;
  WR_LIST_REMOVE(h->streams, x);
  h->nstreams--;
  wr_buf_free(&x->hb);
  free(x->hs);
  free(x);
  set_idle(h);
}

/* The stream's pstream goes back to the plain state (no HTTP/2 request). */
static void let_go(oh2s *x) {
  pstream *s = x->s;
  if (!s) return;
  x->s = NULL;
  s->h2s = NULL;
  s->ready = 0;
  wr__proxy_consume(s, s->credit_owed);
  s->credit_owed = 0;
  s->paused = 0;
}

/* --- request ------------------------------------------------------------------------- */

static ssize_t body_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *user) {
  oh2s *x = src->ptr;
  pstream *s = x->s;
  (void)ng;
  (void)id;
  (void)user;
  if (!s) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  size_t n = s->held.len < len ? s->held.len : len;
  if (s->rb == RB_LENGTH && n > s->rb_left) n = (size_t)s->rb_left;
  if (n) {
    memcpy(buf, s->held.data, n);
    wr_buf_consume(&s->held, n);
    s->body_sent += n;
    s->credit_owed += n; /* returned once the connection's queue is low */
    if (s->rb == RB_LENGTH) s->rb_left -= n;
  }
  if ((s->rb == RB_LENGTH && s->rb_left == 0) || (s->edge_fin && s->held.len == 0)) {
    s->rb_done = 1;
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
  }
  if (n == 0) {
    x->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  return (ssize_t)n;
}

/* Go's HTTP/2 client leaves these out (RFC 9113 8.2.2); TE only as
 * "trailers", the one value HTTP/2 allows. */
static int connection_specific(const wr_http_header *h) {
  static const char *const drop[] = {"host", "connection", "keep-alive", "proxy-connection",
                                     "transfer-encoding", "upgrade", "content-length"};
  for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
    if (h->name_len == strlen(drop[i]) && strncasecmp(h->name, drop[i], h->name_len) == 0)
      return 1;
  if (h->name_len == 2 && strncasecmp(h->name, "te", 2) == 0)
    return !(h->value_len == 8 && strncasecmp(h->value, "trailers", 8) == 0);
  return 0;
}

/* HEADERS for the stream's request: pseudo fields, then the request's own
 * fields in lower case. Returns the nghttp2 stream id or < 0. */
static int32_t submit_request(oh2 *h, oh2s *x) {
  pstream *s = x->s;
  char clen[24];
  size_t n = 0;
  wr_http_header *f = wr__proxy_request_fields(s, &n, clen);
  if (!f) return -1;
  nghttp2_nv *nv = wr_xcalloc(n + 4, sizeof(*nv));
  wr_buf names;
  size_t k = 0;
  wr_buf_init(&names, WR__PROXY_ARENA_MAX, NULL);
#define NV(nm, nl, v, vl) \
  nv[k++] = (nghttp2_nv){(uint8_t *)(nm), (uint8_t *)(v), (nl), (vl), NGHTTP2_NV_FLAG_NONE}
  NV(":method", 7, s->hm.method, s->hm.method_len);
  NV(":scheme", 7, "https", 5);
  NV(":authority", 10, f[0].value, f[0].value_len); /* Host comes first */
  NV(":path", 5, s->target, strlen(s->target));
  /* Lower-cased names go to |names|; offsets first (it may move). */
  size_t *off = wr_xcalloc(n + 1, sizeof(*off));
  for (size_t i = 1; i < n; i++) {
    if (connection_specific(&f[i])) continue;
    if (s->rb == RB_LENGTH && f[i].name_len == 14 &&
        strncasecmp(f[i].name, "content-length", 14) == 0)
      continue;
    off[i] = names.len + 1;
    for (size_t j = 0; j < f[i].name_len; j++) {
      char c = f[i].name[j];
      uint8_t lc = (uint8_t)(c >= 'A' && c <= 'Z' ? c + 32 : c);
      wr_buf_append(&names, &lc, 1);
    }
  }
  for (size_t i = 1; i < n; i++)
    if (off[i]) NV(names.data + off[i] - 1, f[i].name_len, f[i].value, f[i].value_len);
  if (s->rb == RB_LENGTH) NV("content-length", 14, clen, strlen(clen));
#undef NV
  nghttp2_data_provider prd = {.source.ptr = x, .read_callback = body_read};
  int32_t id = nghttp2_submit_request(h->ng, NULL, nv, k, s->rb == RB_NONE ? NULL : &prd, x);
  free(off);
  free(nv);
  free(f);
  wr_buf_free(&names);
  return id;
}

static void attach(oh2 *h, pstream *s) {
  oh2s *x = wr_xcalloc(1, sizeof(*x));
  x->h = h;
  x->s = s;
  wr_buf_init(&x->hb, RESP_HEAD_MAX, NULL);
  x->hs = wr_xcalloc(MAX_RESP_HEADERS, sizeof(*x->hs));
  WR_LIST_INSERT_HEAD(h->streams, x);
  h->nstreams++;
  h->deadline = 0;
  s->h2s = x;
  s->o = NULL;
  s->ready = 1;
  wr__proxy_set_state(s, ST_WAIT_RESP);
  wr_buf_reset(&s->req_head);
  if (s->rb == RB_NONE) wr__proxy_drop_held(s);
  x->id = submit_request(h, x);
  if (x->id < 0) {
    if (x->s) { /* not answered yet: nghttp2 refused */
      let_go(x);
      wr__proxy_respond_errorf(s, WR__PROXY_UNREACHABLE ": http2: %s",
                               nghttp2_strerror(x->id));
    }
    stream_unlink(x);
    return;
  }
  flush(h);
}

/* --- response ------------------------------------------------------------------------- */

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user) {
  oh2s *x = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
  (void)flags;
  (void)user;
  if (!x || !x->s || f->hd.type != NGHTTP2_HEADERS) return 0;
  if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
    x->status = 0;
    for (size_t i = 0; i < vlen && i < 3; i++) x->status = x->status * 10 + (value[i] - '0');
    return 0;
  }
  if (nlen && name[0] == ':') return 0;
  if (x->n >= MAX_RESP_HEADERS || wr_buf_reserve(&x->hb, nlen + vlen) != WR_OK)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
  /* Offsets now, pointers once the block is complete (hb may move). */
  wr_http_header_stash(&x->hs[x->n++], &x->hb, name, nlen, value, vlen);
  return 0;
}

static void block_done(oh2s *x) { wr_http_headers_resolve(x->hs, x->n, &x->hb); }

static void block_reset(oh2s *x) {
  x->n = 0;
  wr_buf_reset(&x->hb);
}

/* The response head: the ConnectResponse. A "Trailer" field only declares
 * trailer names (Go's transport removes it). */
static void head_done(oh2s *x) {
  pstream *s = x->s;
  size_t k = 0;
  block_done(x);
  for (size_t i = 0; i < x->n; i++)
    if (!(x->hs[i].name_len == 7 && strncasecmp(x->hs[i].name, "trailer", 7) == 0))
      x->hs[k++] = x->hs[i];
  x->head_done = 1;
  if (wr__proxy_send_head(s, x->status, x->hs, k) != WR_OK) {
    wr__proxy_respond_errorf(s, WR__PROXY_UNREACHABLE ": malformed HTTP response");
    return;
  }
  block_reset(x);
  if (s->state != ST_DONE) wr__proxy_set_state(s, ST_BODY);
}

/* The origin's END_STREAM: the answer is complete. */
static void response_end(oh2s *x) {
  pstream *s = x->s;
  x->ended = 1;
  if (s->state != ST_BODY) return;
  let_go(x);
  wr__proxy_complete(s, 0);
}

static void headers_frame(oh2s *x, int end) {
  pstream *s = x->s;
  if (!x->head_done) {
    if (x->status >= 100 && x->status < 200) { /* 100 Continue, 103: read past */
      block_reset(x);
      return;
    }
    head_done(x);
  } else if (end) {
    block_done(x);
    wr__proxy_send_trailers(s, x->hs, x->n);
    block_reset(x);
  }
  if (end && x->s) response_end(x);
}

/* The origin reset the stream or it failed. */
static void stream_failed(oh2s *x, uint32_t code) {
  pstream *s = x->s;
  x->ended = 1;
  if (!s) return;
  let_go(x);
  if (s->state == ST_WAIT_RESP || s->state == ST_DIAL)
    wr__proxy_respond_errorf(s, WR__PROXY_UNREACHABLE ": stream error: stream ID %d; %s",
                             (int)x->id, nghttp2_http2_strerror(code));
  else if (s->state != ST_DONE)
    wr__proxy_reset(s);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user) {
  oh2 *h = user;
  if (f->hd.type == NGHTTP2_GOAWAY) {
    h->goaway = 1;
    return 0;
  }
  oh2s *x = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
  if (!x || !x->s) return 0;
  pstream *s = x->s;
  int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  wr__proxy_hold(s);
  if (f->hd.type == NGHTTP2_HEADERS)
    headers_frame(x, end);
  else if (f->hd.type == NGHTTP2_DATA && end && x->head_done)
    response_end(x);
  else if (f->hd.type == NGHTTP2_RST_STREAM)
    stream_failed(x, f->rst_stream.error_code);
  wr__proxy_unhold(s);
  return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *user) {
  oh2s *x = nghttp2_session_get_stream_user_data(ng, id);
  (void)flags;
  (void)user;
  if (!x || !x->s || x->s->state != ST_BODY) {
    nghttp2_session_consume(ng, id, len);
    return 0;
  }
  pstream *s = x->s;
  s->resp_any = 1;
  wr__proxy_hold(s);
  wr__proxy_emit(s, data, len);
  /* Bytes the stream queued (s->paused) are consumed once it drains. */
  if (x->s && s->paused)
    x->unacked += len;
  else
    nghttp2_session_consume(ng, id, len);
  wr__proxy_unhold(s);
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user) {
  oh2s *x = nghttp2_session_get_stream_user_data(ng, id);
  (void)user;
  if (!x) return 0;
  nghttp2_session_set_stream_user_data(ng, id, NULL);
  if (x->s) { /* closed before the answer was complete */
    pstream *s = x->s;
    wr__proxy_hold(s);
    stream_failed(x, code ? code : NGHTTP2_INTERNAL_ERROR);
    wr__proxy_unhold(s);
  }
  if (x->unacked) nghttp2_session_consume_connection(ng, x->unacked);
  stream_unlink(x);
  return 0;
}

/* --- the connection -------------------------------------------------------------------- */

static void session_fail(oh2 *h, const char *why);

/* Hands nghttp2's output to the connection until its queue passes the
 * high mark (on_drain continues), then gives request credit back. */
static void flush(oh2 *h) {
  if (h->in_ng) {
    h->want_flush = 1;
    return;
  }
  while (h->o && !h->broken && wr_conn_write_queued(h->o->conn) < SEND_HIGH) {
    const uint8_t *data;
    h->in_ng = 1;
    ssize_t n = nghttp2_session_mem_send(h->ng, &data);
    h->in_ng = 0;
    if (n < 0) {
      session_fail(h, nghttp2_strerror((int)n));
      return;
    }
    if (n == 0) break;
    if (wr_conn_write(h->o->conn, data, (size_t)n) != WR_OK) {
      session_fail(h, "write: broken pipe");
      return;
    }
  }
  h->want_flush = 0;
  if (!h->o || wr_conn_write_queued(h->o->conn) > WR_CONN_LOW_WATER) return;
  for (oh2s *x = h->streams; x; x = x->next)
    if (x->s && x->s->credit_owed) {
      wr__proxy_consume(x->s, x->s->credit_owed);
      x->s->credit_owed = 0;
    }
  if (h->nstreams == 0 && h->goaway && h->o) wr__proxy_origin_close(h->o);
}

/* The connection cannot go on: every request on it fails; the origin is
 * closed (the session goes with it). */
static void session_fail(oh2 *h, const char *why) {
  h->broken = 1;
  for (oh2s *x = h->streams; x; x = x->next) {
    pstream *s = x->s;
    if (!s) continue;
    wr__proxy_hold(s);
    let_go(x);
    if (s->state == ST_WAIT_RESP)
      wr__proxy_respond_errorf(s, WR__PROXY_UNREACHABLE ": %s", why);
    else if (s->state != ST_DONE)
      wr__proxy_reset(s);
    wr__proxy_unhold(s);
  }
  if (h->o) wr__proxy_origin_close(h->o);
}

void wr__oh2_conn_read(origin *o, const uint8_t *data, size_t len) {
  oh2 *h = o->h2;
  h->in_ng = 1;
  ssize_t n = nghttp2_session_mem_recv(h->ng, data, len);
  h->in_ng = 0;
  if (n < 0) {
    wr_debug("origin %s: HTTP/2: %s", o->key, nghttp2_strerror((int)n));
    h->want_flush = 1; /* a GOAWAY for the origin, if nghttp2 made one */
  }
  flush(h);
  if (n < 0) session_fail(h, "http2: the origin broke the protocol");
}

void wr__oh2_conn_eof(origin *o, int status, const char *msg) {
  session_fail(o->h2, status == WR_OK ? "EOF" : (msg && msg[0] ? msg : wr_strerror(status)));
}

void wr__oh2_conn_drain(origin *o) { flush(o->h2); }

void wr__oh2_conn_closed(origin *o) {
  oh2 *h = o->h2;
  wr_proxy *p = h->p;
  h->o = NULL;
  o->h2 = NULL;
  session_fail(h, "connection closed");
  while (h->streams) stream_unlink(h->streams);
  WR_LIST_REMOVE(p->h2conns, h);
  nghttp2_session_del(h->ng);
  free(h);
}

/* --- the proxy's calls ------------------------------------------------------------------ */

int wr__oh2_wanted(const pstream *s) {
  return s->rule && s->rule->origin.http2_origin && s->rule->service.tls && !s->ws;
}

static oh2 *session_new(wr_proxy *p, origin *o) {
  nghttp2_session_callbacks *cb;
  nghttp2_option *opt;
  oh2 *h = wr_xcalloc(1, sizeof(*h));
  h->p = p;
  h->o = o;
  if (nghttp2_session_callbacks_new(&cb) != 0) abort(); /* out of memory, as wr_x* */
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  if (nghttp2_option_new(&opt) != 0) abort();
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_send_header_block_length(opt, WR__PROXY_ARENA_MAX);
  if (nghttp2_session_client_new2(&h->ng, cb, h, opt) != 0) abort();
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, RESP_HEAD_MAX},
  };
  nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
  nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
  WR_LIST_INSERT_HEAD(p->h2conns, h);
  return h;
}

int wr__oh2_attach(pstream *s) {
  char *key = NULL;
  for (oh2 *h = s->p->h2conns; h; h = h->next) {
    if (!can_take(h)) continue;
    if (!key) key = wr__proxy_origin_key(s->rule);
    if (strcmp(h->o->key, key) != 0) continue;
    free(key);
    attach(h, s);
    return WR_OK;
  }
  free(key);
  return WR_ERR_NOTFOUND;
}

void wr__oh2_start(origin *o, pstream *s) {
  o->state = O_H2;
  o->s = NULL;
  o->h2 = session_new(o->p, o);
  attach(o->h2, s);
}

void wr__oh2_body(pstream *s) {
  oh2s *x = s->h2s;
  if (!x || x->id <= 0) return;
  if (x->deferred) {
    x->deferred = 0;
    nghttp2_session_resume_data(x->h->ng, x->id);
  }
  flush(x->h);
}

void wr__oh2_resume(pstream *s) {
  oh2s *x = s->h2s;
  if (!x || !x->unacked) return;
  nghttp2_session_consume(x->h->ng, x->id, x->unacked);
  x->unacked = 0;
  flush(x->h);
}

void wr__oh2_detach(pstream *s) {
  oh2s *x = s->h2s;
  if (!x) return;
  oh2 *h = x->h;
  let_go(x);
  if (x->id <= 0 || !h->o) return;
  if (x->unacked) nghttp2_session_consume(h->ng, x->id, x->unacked);
  x->unacked = 0;
  if (!x->ended) nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, x->id, NGHTTP2_CANCEL);
  flush(h);
}

uint64_t wr__oh2_next_deadline(const wr_proxy *p) {
  uint64_t min = 0;
  for (const oh2 *h = p->h2conns; h; h = h->next)
    if (h->o && h->deadline && (!min || h->deadline < min)) min = h->deadline;
  return min;
}

void wr__oh2_expire(wr_proxy *p, uint64_t now) {
  for (oh2 *h = p->h2conns; h; h = h->next)
    if (h->o && h->deadline && h->deadline <= now && h->nstreams == 0) {
      h->deadline = 0;
      wr__proxy_origin_close(h->o);
    }
}
