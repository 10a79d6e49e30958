/* The connector's HTTP/2 server session; see h2_transport.h. */
#include "connector/h2_transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <nghttp2/nghttp2.h>

#include "connector/h2_request.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/h2trailer.h"

#define WINDOW (1u << 20)
#define MAX_HEADERS 256
#define HEAD_BYTES_MAX (256u * 1024u)

/* One HTTP/2 stream the edge opened. */
typedef struct h2s {
  wr_h2 *h;
  int32_t id;
  int kind;            /* enum wr_h2_kind, once the headers are complete */
  int dispatched;
  wr_http_header *hs;  /* request headers; strings in |hbuf| by offset */
  size_t nhs;
  wr_buf hbuf;
  wr_proxy_stream *ps; /* proxied streams; NULL once the proxy let go */
  wr_buf out;          /* response body bytes nghttp2 has not taken yet */
  wr_buf body;         /* a configuration update's request body */
  int fin;             /* our side ends after |out| */
  int responded;       /* HEADERS submitted */
  int deferred;        /* the data source said DEFERRED */
  int want_writable;   /* the proxy saw WR_AGAIN */
  int writable_pending;
  int stop;            /* the proxy will not read more (STOP_SENDING) */
  int edge_done;       /* the edge ended its side */
  wr_fields trl;       /* response trailers: a trailing HEADERS frame after |out| */
  struct h2s *next, *prev;
} h2s;

struct wr_h2 {
  wr_h2_config cfg;
  nghttp2_session *ng;
  h2s *streams;
  size_t nstreams;
  h2s *control;
  int control_seen;
  int in_ng;    /* inside nghttp2 (recv or send): no session_send now */
  int kicked;
  int blocked;  /* cfg.send said WR_AGAIN */
  int broken;
};

static void kick(wr_h2 *h) {
  if (h->kicked || h->in_ng) return;
  h->kicked = 1;
  if (h->cfg.kick) h->cfg.kick(h->cfg.user);
}

/* --- streams ------------------------------------------------------------------- */

static h2s *stream_new(wr_h2 *h, int32_t id) {
  h2s *st = wr_xcalloc(1, sizeof(*st));
  st->h = h;
  st->id = id;
  st->hs = wr_xcalloc(MAX_HEADERS, sizeof(*st->hs));
  wr_buf_init(&st->hbuf, HEAD_BYTES_MAX, NULL);
  wr_buf_init(&st->out, WR_H2_STREAM_BUF + 64u * 1024u, NULL);
  wr_buf_init(&st->body, WR_H2_CONFIG_MAX, NULL);
  wr_fields_init(&st->trl, HEAD_BYTES_MAX);
  WR_LIST_INSERT_HEAD(h->streams, st);
  h->nstreams++;
  return st;
}

static void stream_free(h2s *st) {
  wr_h2 *h = st->h;
  WR_LIST_REMOVE(h->streams, st);
  h->nstreams--;
  if (h->control == st) h->control = NULL;
  free(st->hs);
  wr_buf_free(&st->hbuf);
  wr_buf_free(&st->out);
  wr_buf_free(&st->body);
  wr_fields_free(&st->trl);
  free(st);
}

static h2s *stream_get(wr_h2 *h, int32_t id) {
  return nghttp2_session_get_stream_user_data(h->ng, id);
}

/* --- the response body: a data source fed from st->out ------------------------------ */

static ssize_t read_cb(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                       uint32_t *flags, nghttp2_data_source *src, void *user) {
  h2s *st = src->ptr;
  size_t n = st->out.len < len ? st->out.len : len;
  (void)ng;
  (void)id;
  (void)user;
  if (n) {
    memcpy(buf, st->out.data, n);
    wr_buf_consume(&st->out, n);
  }
  if (st->want_writable && st->out.len <= WR_H2_STREAM_BUF / 2) {
    st->want_writable = 0;
    st->writable_pending = 1; /* told after session_send returns */
  }
  if (st->out.len == 0 && st->fin) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (st->trl.n && wr_h2_submit_trailer(ng, st->id, &st->trl) == 0)
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM; /* Go's server: trailers after the body */
    return (ssize_t)n;
  }
  if (n == 0) {
    st->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  return (ssize_t)n;
}

static void resume(h2s *st) {
  if (st->deferred && st->responded) {
    st->deferred = 0;
    nghttp2_session_resume_data(st->h->ng, st->id);
  }
  kick(st->h);
}

/* Submits the response head with the data source behind it. */
static int submit_head(h2s *st, const wr_http_header *hs, size_t n) {
  nghttp2_nv *nv = wr_xcalloc(n + 1, sizeof(*nv));
  nghttp2_data_provider prd;
  int rv;
  for (size_t i = 0; i < n; i++)
    nv[i] = (nghttp2_nv){(uint8_t *)hs[i].name, (uint8_t *)hs[i].value, hs[i].name_len,
                         hs[i].value_len, NGHTTP2_NV_FLAG_NONE};
  prd.source.ptr = st;
  prd.read_callback = read_cb;
  rv = nghttp2_submit_response(st->h->ng, st->id, nv, n, &prd);
  free(nv);
  if (rv != 0) return WR_ERR_INTERNAL;
  st->responded = 1;
  kick(st->h);
  return WR_OK;
}

/* Appends up to what the stream buffer holds. Returns WR_OK or WR_AGAIN. */
static int stream_write(h2s *st, const uint8_t *data, size_t len, int fin, size_t *acc) {
  size_t room = st->out.len < WR_H2_STREAM_BUF ? WR_H2_STREAM_BUF - st->out.len : 0;
  size_t n = len < room ? len : room;
  *acc = 0;
  if (n && wr_buf_append(&st->out, data, n) != WR_OK) return WR_ERR_NOMEM;
  *acc = n;
  if (n == len && fin) st->fin = 1;
  if (n || st->fin) resume(st);
  if (n < len) {
    st->want_writable = 1;
    return WR_AGAIN;
  }
  return WR_OK;
}

/* --- the proxy's view of a stream (wr_edge_stream_ops) ------------------------------- */

static int op_write(void *t, const uint8_t *data, size_t len, int fin, size_t *acc) {
  h2s *st = t;
  if (st->fin) return WR_ERR_INVAL;
  return stream_write(st, data, len, fin, acc);
}

static void op_consume(void *t, size_t n) {
  h2s *st = t;
  nghttp2_session_consume(st->h->ng, st->id, n);
  kick(st->h);
}

static void op_reset(void *t) {
  h2s *st = t;
  st->fin = 1;
  wr_buf_reset(&st->out);
  nghttp2_submit_rst_stream(st->h->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
  kick(st->h);
}

static void op_stop_sending(void *t) {
  h2s *st = t;
  st->stop = 1;
}

static int op_respond(void *t, const wr_connect_response *r) {
  h2s *st = t;
  size_t cap = r->nmeta + 5;
  wr_http_header *hs;
  wr_buf arena;
  int n, rv;
  if (st->responded) return WR_ERR_INVAL;
  hs = wr_xcalloc(cap, sizeof(*hs));
  wr_buf_init(&arena, 4u << 20, NULL);
  n = wr_h2c_response_head(r, &arena, hs, cap);
  rv = n < 0 ? n : submit_head(st, hs, (size_t)n);
  wr_buf_free(&arena);
  free(hs);
  return rv;
}

/* httpguts.ValidTrailerHeader: the names Go's server will not send as
 * trailers ("If-*" included). */
static int bad_trailer(const char *name, size_t len) {
  static const char *const bad[] = {
      "authorization", "cache-control", "connection", "content-encoding", "content-length",
      "content-range", "content-type", "expect", "host", "keep-alive", "max-forwards", "pragma",
      "proxy-authenticate", "proxy-authorization", "proxy-connection", "range", "realm", "te",
      "trailer", "transfer-encoding", "www-authenticate"};
  if (len >= 3 && strncasecmp(name, "if-", 3) == 0) return 1;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (len == strlen(bad[i]) && strncasecmp(name, bad[i], len) == 0) return 1;
  return 0;
}

static void op_trailers(void *t, const wr_http_header *hs, size_t n) {
  h2s *st = t;
  if (!st->responded || st->fin) return; /* Go: "before status written. Ignoring" */
  for (size_t i = 0; i < n; i++)
    if (!bad_trailer(hs[i].name, hs[i].name_len) &&
        wr_fields_add(&st->trl, hs[i].name, hs[i].name_len, hs[i].value, hs[i].value_len, 1) ==
            WR_ERR_LIMIT)
      break;
}

static void op_forget(void *t) {
  h2s *st = t;
  st->ps = NULL;
}

static const wr_edge_stream_ops proxy_ops = {
    .write = op_write,
    .consume = op_consume,
    .reset = op_reset,
    .stop_sending = op_stop_sending,
    .respond = op_respond,
    .trailers = op_trailers,
    .forget = op_forget,
};

/* --- requests ------------------------------------------------------------------------ */

static void start_proxy(h2s *st, int end_stream) {
  wr_h2 *h = st->h;
  wr_meta *meta = wr_xcalloc(st->nhs + 4, sizeof(*meta));
  wr_connect_request req;
  wr_buf arena;
  wr_buf_init(&arena, HEAD_BYTES_MAX * 3, NULL);
  int rv = wr_h2c_request_build(st->hs, st->nhs, st->kind, !end_stream, &arena, meta,
                               st->nhs + 4, &req);
  if (rv != WR_OK) {
    wr_debug("HTTP/2 stream %d: cannot read the request: %s", st->id, wr_strerror(rv));
    op_reset(st);
  } else {
    st->ps = wr_proxy_stream_start(h->cfg.proxy, &proxy_ops, st, st->id, &req);
    if (st->ps && end_stream) wr_proxy_stream_input(st->ps, NULL, 0, 1);
  }
  free(meta);
  wr_buf_free(&arena);
}

static void start_control(h2s *st) {
  wr_h2 *h = st->h;
  static const wr_http_header ok[] = {{":status", 7, "200", 3}};
  if (h->control_seen) {
    wr_debug("HTTP/2 stream %d: a second control stream; refused", st->id);
    op_reset(st);
    return;
  }
  h->control_seen = 1;
  h->control = st;
  submit_head(st, ok, 1);
  if (h->cfg.on_control_open) h->cfg.on_control_open(h->cfg.user);
}

/* A configuration update's body is complete: apply it and answer. */
static void finish_config(h2s *st) {
  const wr_rpc_services *svc = wr_proxy_services(st->h->cfg.proxy);
  static const wr_http_header ok[] = {{":status", 7, "200", 3},
                                      {"content-type", 12, "application/json", 16}};
  json_error_t jerr;
  json_t *doc = json_loadb((const char *)st->body.data, st->body.len, 0, &jerr);
  json_t *ver = doc ? json_object_get(doc, "version") : NULL;
  json_t *conf = doc ? json_object_get(doc, "config") : NULL;
  char err[512] = "", out[128];
  int32_t applied = 0;
  if (!doc || !json_is_integer(ver)) {
    snprintf(err, sizeof(err), "malformed configuration update");
  } else if (!svc->update_config) {
    snprintf(err, sizeof(err), "updateConfiguration is not supported by this connector");
  } else {
    char *cj = conf ? json_dumps(conf, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    applied = svc->update_config(svc->config_user, (int32_t)json_integer_value(ver),
                                 (const uint8_t *)(cj ? cj : "null"), cj ? strlen(cj) : 4, err,
                                 sizeof(err));
    free(cj);
  }
  json_decref(doc);
  size_t acc;
  int n = snprintf(out, sizeof(out), "{\"lastAppliedVersion\":%d,\"err\":%s}", (int)applied,
                   err[0] ? "{}" : "null");
  if (err[0]) wr_warn("configuration update refused: %s", err);
  submit_head(st, ok, 2);
  stream_write(st, (const uint8_t *)out, (size_t)n, 1, &acc);
}

/* The request head is complete. */
static void dispatch(h2s *st, int end_stream) {
  st->dispatched = 1;
  st->kind = wr_h2c_request_kind(st->hs, st->nhs);
  switch (st->kind) {
  case WR_H2_CONTROL:
    start_control(st);
    if (end_stream && st->h->cfg.on_control_data)
      st->h->cfg.on_control_data(st->h->cfg.user, NULL, 0, 1);
    break;
  case WR_H2_CONFIG:
    if (end_stream) finish_config(st);
    break;
  default:
    start_proxy(st, end_stream);
    break;
  }
}

/* The edge ended its side of |st| (END_STREAM). */
static void edge_end(h2s *st) {
  wr_h2 *h = st->h;
  if (st->edge_done) return;
  st->edge_done = 1;
  if (st->kind == WR_H2_CONFIG)
    finish_config(st);
  else if (st == h->control && h->cfg.on_control_data)
    h->cfg.on_control_data(h->cfg.user, NULL, 0, 1);
  else if (st->ps)
    wr_proxy_stream_input(st->ps, NULL, 0, 1);
}

/* --- nghttp2 callbacks ------------------------------------------------------------------ */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user) {
  wr_h2 *h = user;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  h2s *st = stream_new(h, f->hd.stream_id);
  nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st);
  return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user) {
  h2s *st = stream_get(user, f->hd.stream_id);
  (void)ng;
  (void)flags;
  if (!st || st->dispatched) return 0; /* trailers: not used */
  if (st->nhs >= MAX_HEADERS ||
      wr_buf_reserve(&st->hbuf, namelen + valuelen + 2) != WR_OK)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
  /* Offsets now, pointers once the head is complete (hbuf may move). */
  wr_http_header_stash(&st->hs[st->nhs++], &st->hbuf, name, namelen, value, valuelen);
  return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user) {
  h2s *st = stream_get(user, f->hd.stream_id);
  int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  (void)ng;
  if (!st) return 0;
  if (f->hd.type == NGHTTP2_HEADERS && !st->dispatched) {
    wr_http_headers_resolve(st->hs, st->nhs, &st->hbuf);
    dispatch(st, end);
    if (end) st->edge_done = 1;
    return 0;
  }
  if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && end) edge_end(st);
  return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *user) {
  wr_h2 *h = user;
  h2s *st = stream_get(h, id);
  (void)flags;
  if (st && st->ps) {
    wr_proxy_stream_input(st->ps, data, len, 0);
    return 0;
  }
  if (st && st == h->control && h->cfg.on_control_data)
    h->cfg.on_control_data(h->cfg.user, data, len, 0);
  else if (st && st->kind == WR_H2_CONFIG && wr_buf_append(&st->body, data, len) != WR_OK)
    nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
  /* Not the proxy's: taken at once. */
  if (st)
    nghttp2_session_consume(ng, id, len);
  else
    nghttp2_session_consume_connection(ng, len);
  return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *user) {
  h2s *st = stream_get(user, f->hd.stream_id);
  if (!st || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
  /* Our answer is complete and the proxy will not read the rest of the
   * request: tell the edge to stop (Go's server does the same). */
  if (st->stop && !nghttp2_session_get_stream_remote_close(ng, st->id))
    nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user) {
  wr_h2 *h = user;
  h2s *st = stream_get(h, id);
  (void)ng;
  if (!st) return 0;
  if (st == h->control && !st->edge_done && h->cfg.on_control_data) {
    st->edge_done = 1;
    h->cfg.on_control_data(h->cfg.user, NULL, 0, 1);
  }
  if (st->ps) {
    wr_proxy_stream *ps = st->ps;
    st->ps = NULL;
    if (code != NGHTTP2_NO_ERROR)
      wr_debug("HTTP/2 stream %d closed with error %u", id, (unsigned)code);
    wr_proxy_stream_gone(ps); /* an unfinished request's origin is closed */
  }
  nghttp2_session_set_stream_user_data(h->ng, id, NULL);
  stream_free(st);
  return 0;
}

static ssize_t send_cb(nghttp2_session *ng, const uint8_t *data, size_t len, int flags,
                       void *user) {
  wr_h2 *h = user;
  (void)ng;
  (void)flags;
  int rv = h->cfg.send(h->cfg.user, data, len);
  if (rv == WR_OK) return (ssize_t)len;
  if (rv == WR_AGAIN) {
    h->blocked = 1;
    return NGHTTP2_ERR_WOULDBLOCK;
  }
  h->broken = 1;
  return NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* --- public --------------------------------------------------------------------------- */

int wr_h2_new(const wr_h2_config *cfg, wr_h2 **out) {
  nghttp2_session_callbacks *cb;
  nghttp2_option *opt;
  wr_h2 *h;
  *out = NULL;
  if (!cfg || !cfg->proxy || !cfg->send) return WR_ERR_INVAL;
  h = wr_xcalloc(1, sizeof(*h));
  h->cfg = *cfg;
  if (nghttp2_session_callbacks_new(&cb) != 0) {
    free(h);
    return WR_ERR_NOMEM;
  }
  nghttp2_session_callbacks_set_send_callback(cb, send_cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  int rv = nghttp2_session_server_new2(&h->ng, cb, h, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) {
    free(h);
    return WR_ERR_NOMEM;
  }
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, WINDOW},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 0xffffffffu},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 1048896u},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WINDOW},
  };
  nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
  nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, WINDOW);
  *out = h;
  return WR_OK;
}

/* Tells the proxy about streams whose buffers drained. Returns 1 if any. */
static int report_writable(wr_h2 *h) {
  int any = 0;
  for (h2s *st = h->streams; st; st = st->next) {
    if (!st->writable_pending) continue;
    st->writable_pending = 0;
    if (st->ps) {
      any = 1;
      wr_proxy_stream_writable(st->ps);
    }
  }
  return any;
}

int wr_h2_flush(wr_h2 *h) {
  if (h->in_ng) return WR_OK;
  h->kicked = 0;
  h->blocked = 0;
  for (int round = 0; round < 64 && !h->broken; round++) {
    h->in_ng = 1;
    int rv = nghttp2_session_send(h->ng);
    h->in_ng = 0;
    if (rv != 0) {
      h->broken = 1;
      break;
    }
    if (h->blocked || !report_writable(h)) break;
  }
  h->kicked = 0;
  return h->broken ? WR_ERR_IO : WR_OK;
}

int wr_h2_feed(wr_h2 *h, const uint8_t *data, size_t len) {
  h->in_ng = 1;
  ssize_t n = nghttp2_session_mem_recv(h->ng, data, len);
  h->in_ng = 0;
  if (n < 0) {
    wr_debug("HTTP/2: %s", nghttp2_strerror((int)n));
    wr_h2_flush(h);
    return WR_ERR_PROTO;
  }
  return wr_h2_flush(h) == WR_OK ? WR_OK : WR_ERR_IO;
}

int wr_h2_done(const wr_h2 *h) {
  return !nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng);
}

int wr_h2_control_write(wr_h2 *h, const uint8_t *data, size_t len) {
  h2s *st = h->control;
  if (!st || st->fin) return WR_ERR_INVAL;
  /* RPC messages are small and few: the stream buffer's limit does not
   * apply. */
  if (wr_buf_append(&st->out, data, len) != WR_OK) return WR_ERR_LIMIT;
  resume(st);
  return WR_OK;
}

void wr_h2_control_end(wr_h2 *h) {
  size_t acc;
  if (h->control && !h->control->fin) stream_write(h->control, NULL, 0, 1, &acc);
}

void wr_h2_goaway(wr_h2 *h) {
  nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->ng),
                        NGHTTP2_NO_ERROR, NULL, 0);
  kick(h);
}

size_t wr_h2_streams(const wr_h2 *h) { return h->nstreams; }

void wr_h2_free(wr_h2 *h) {
  if (!h) return;
  for (h2s *st = h->streams; st; st = st->next) {
    if (st->ps) {
      wr_proxy_stream *ps = st->ps;
      st->ps = NULL;
      wr_proxy_stream_gone(ps);
    }
  }
  nghttp2_session_del(h->ng);
  while (h->streams) stream_free(h->streams);
  free(h);
}
