/* Connectors over TLS + HTTP/2; see tunnel_h2.h. */
#include "edge/tunnel_h2.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nghttp2/nghttp2.h>

#include "edge/tunnel_h2_msg.h"
#include "edge/tunnel_transport.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/conn.h"
#include "net/tls.h"
#include "proto/connect.h"
#include "proto/preamble.h"

#define STREAM_WINDOW (4u << 20)   /* per-stream receive window we grant */
#define CONN_WINDOW (64u << 20)    /* connection window (returned on receipt) */
#define SENDQ_MAX (512u << 10)     /* request body bytes queued per stream */
#define SENDQ_LOW (128u << 10)     /* ... below which a blocked owner may write */
#define CONTROL_MAX (1u << 20)     /* control bytes queued: more is abuse */
#define HEAD_MAX (1u << 20)        /* preamble + ConnectRequest */
#define TCP_HIGH (1u << 20)        /* TLS bytes queued before we stop framing */
#define TRAILERS_MAX 256          /* trailer fields of one response */
#define CLOSE_GRACE_MS 5000        /* GOAWAY sent: the peer has this long to hang up */

typedef struct h2conn h2conn;

/* One data stream: the owner's QUIC-shaped view on one HTTP/2 request. */
typedef struct h2s {
  struct h2s *prev, *next; /* in c->streams */
  h2conn *c;
  wr_tunnel_stream *owner; /* NULL once forgotten or closed */
  int64_t sid;             /* ordinal for logs */
  int32_t id;              /* HTTP/2 stream id; 0 until the request went out */
  int type;                /* enum wr_connect_type */
  wr_buf head;             /* owner bytes until the ConnectRequest is whole */
  wr_buf out;              /* request body waiting for DATA frames */
  int out_fin, deferred, blocked, want_writable;
  int eof_sent, rst_on_eof, rst_sent;
  int dead;                /* never went out and was reset: close in tick */
  /* The response head as it arrives. */
  int status, cfd_error, head_seen, discard, fin_seen, rst_seen;
  char *uh;                /* cf-cloudflared-response-headers */
  size_t uh_len;
  size_t virt;             /* synthesized head bytes not consumed yet */
  wr_buf trl;              /* response trailers: "name\0value\0" pairs */
  size_t ntrl;
} h2s;

struct h2conn {
  h2conn *prev, *next; /* in l->conns */
  wr_tunnel_h2 *l;     /* NULL once the listener is gone */
  wr_conn *conn;
  nghttp2_session *sess;
  wr_tunnel_conn *tc;
  struct sockaddr_storage peer;
  uv_timer_t tick, deadline;
  int handles; /* timers not closed yet, + 1 while |conn| lives */
  int tick_armed, pending, closing, writable_walk;
  const char *why;
  int32_t ctl_id;
  int ctl_status;
  wr_buf ctl_out;
  int ctl_fin, ctl_deferred;
  h2s *streams;
  int64_t next_sid;
};

struct wr_tunnel_h2 {
  wr_tunnel_server *ts;
  uv_loop_t *loop;
  uv_tcp_t *tcp;
  wr_tls_creds *creds;
  h2conn *conns;
  unsigned pending;
  int port;
  int closing;      /* wr_tunnel_h2_free was called: last conn out frees */
  uv_timer_t *reap; /* closed to free |creds| after the last TLS session */
};

static void kick(h2conn *c);
static void l_release(wr_tunnel_h2 *l);
static void conn_close(h2conn *c, const char *why);

/* ---- streams ---------------------------------------------------------------- */

static void s_unlink_free(h2s *s) {
  h2conn *c = s->c;
  if (s->prev)
    s->prev->next = s->next;
  else if (c->streams == s)
    c->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  wr_buf_free(&s->head);
  wr_buf_free(&s->out);
  wr_buf_free(&s->trl);
  free(s->uh);
  free(s);
}

/* The owner hears the end (last event), then forgets us. */
static void s_close_owner(h2s *s) {
  wr_tunnel_stream *o = s->owner;
  s->owner = NULL;
  if (o) wr_tunnel_stream_on_close(o);
}

static ssize_t s_read(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t length,
                      uint32_t *flags, nghttp2_data_source *src, void *user) {
  h2s *s = src->ptr;
  h2conn *c = user;
  size_t n = s->out.len < length ? s->out.len : length;
  if (n) memcpy(buf, s->out.data, n);
  wr_buf_consume(&s->out, n);
  if (!s->out.len && s->out_fin) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    s->eof_sent = 1;
    if (s->rst_on_eof) c->writable_walk = 1;
  } else if (!n) {
    s->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  if (s->blocked && s->out.len < SENDQ_LOW) {
    s->want_writable = 1;
    c->writable_walk = 1;
  }
  return (ssize_t)n;
}

/* The ConnectRequest is whole: the request goes out. */
static int s_submit(h2conn *c, h2s *s, const wr_connect_request *req, int fin) {
  wr_h2_request hr;
  int rv = wr_h2_request_build(req, "edge", &hr);
  if (rv != WR_OK) return rv;
  s->type = req->type;
  nghttp2_data_provider prd = {.source.ptr = s, .read_callback = s_read};
  int32_t id = nghttp2_submit_request(c->sess, NULL, hr.nv, hr.nnv,
                                      fin && !s->out.len ? NULL : &prd, s);
  wr_h2_request_free(&hr);
  if (id < 0) {
    wr_debug("http2 connection %s: request refused by nghttp2: %s", c->why ? c->why : "-",
             nghttp2_strerror(id));
    return WR_ERR_INVAL;
  }
  s->id = id;
  return WR_OK;
}

/* Collects owner bytes until preamble + ConnectRequest are whole. */
static int s_head(h2conn *c, h2s *s, const uint8_t *data, size_t len, int fin) {
  if (wr_buf_append(&s->head, data, len) != WR_OK) return WR_ERR_LIMIT;
  size_t pre = 0;
  int kind = wr_preamble_classify(s->head.data, s->head.len, &pre, NULL);
  if (kind == WR_AGAIN) return fin ? WR_ERR_PROTO : WR_OK;
  if (kind != WR_PREAMBLE_DATA) return WR_ERR_PROTO; /* RPC streams need QUIC */
  wr_connect_request req;
  size_t used = 0;
  int rv = wr_connect_request_decode_alloc(s->head.data + pre, s->head.len - pre, NULL, NULL, 0,
                                           &req, &used);
  if (rv == WR_AGAIN) return fin ? WR_ERR_PROTO : WR_OK;
  if (rv != WR_OK) return rv;
  size_t body = pre + used;
  rv = wr_buf_append(&s->out, s->head.data + body, s->head.len - body);
  s->out_fin = fin;
  if (rv == WR_OK) rv = s_submit(c, s, &req, fin);
  wr_connect_request_free(NULL, &req);
  wr_buf_free(&s->head);
  return rv;
}

/* ---- the transport table ------------------------------------------------------ */

static int t_control_write(void *t, const uint8_t *data, size_t len) {
  h2conn *c = t;
  if (c->ctl_out.len + len > CONTROL_MAX) return WR_ERR_LIMIT;
  int rv = wr_buf_append(&c->ctl_out, data, len);
  if (rv != WR_OK) return rv;
  if (c->ctl_deferred && c->sess) {
    c->ctl_deferred = 0;
    nghttp2_session_resume_data(c->sess, c->ctl_id);
  }
  kick(c);
  return WR_OK;
}

static void t_control_end(void *t) {
  h2conn *c = t;
  c->ctl_fin = 1;
  if (c->ctl_deferred && c->sess) {
    c->ctl_deferred = 0;
    nghttp2_session_resume_data(c->sess, c->ctl_id);
  }
  kick(c);
}

static void t_close(void *t, const char *reason) { conn_close(t, reason); }

static void t_registered(void *t) {
  h2conn *c = t;
  uv_timer_stop(&c->deadline);
  if (c->pending) c->l->pending--;
  c->pending = 0;
}

static const struct sockaddr *t_remote(void *t) {
  h2conn *c = t;
  return (const struct sockaddr *)&c->peer;
}

static int t_stream_open(void *t, wr_tunnel_stream *owner, int64_t *sid, void **sh) {
  h2conn *c = t;
  if (!c->sess || c->closing) return WR_ERR_INVAL;
  h2s *s = wr_xcalloc(1, sizeof(*s));
  s->c = c;
  s->owner = owner;
  s->sid = c->next_sid += 2;
  wr_buf_init(&s->head, HEAD_MAX, NULL);
  wr_buf_init(&s->out, SENDQ_MAX, NULL);
  wr_buf_init(&s->trl, HEAD_MAX, NULL);
  s->next = c->streams;
  if (c->streams) c->streams->prev = s;
  c->streams = s;
  *sid = s->sid;
  *sh = s;
  return WR_OK;
}

static int t_stream_write(void *t, int64_t sid, void *sh, const uint8_t *data, size_t len,
                          int fin, size_t *accepted) {
  h2conn *c = t;
  h2s *s = sh;
  *accepted = 0;
  if (!c->sess || s->dead || s->rst_sent) return WR_ERR_INVAL;
  if (!s->id) {
    int rv = s_head(c, s, data, len, fin);
    if (rv != WR_OK) return rv;
    *accepted = len;
    kick(c);
    return WR_OK;
  }
  size_t room = SENDQ_MAX - s->out.len, take = len < room ? len : room;
  if (take && wr_buf_append(&s->out, data, take) != WR_OK) return WR_ERR_NOMEM;
  *accepted = take;
  if (take == len && fin) s->out_fin = 1;
  if (s->deferred && (take || s->out_fin)) {
    s->deferred = 0;
    nghttp2_session_resume_data(c->sess, s->id);
  }
  kick(c);
  if (take < len) {
    s->blocked = 1;
    return WR_AGAIN;
  }
  return WR_OK;
}

static void t_stream_consume(void *t, int64_t sid, void *sh, size_t n) {
  h2conn *c = t;
  h2s *s = sh;
  size_t v = n < s->virt ? n : s->virt;
  s->virt -= v;
  n -= v;
  if (n && s->id && c->sess) {
    nghttp2_session_consume_stream(c->sess, s->id, n);
    kick(c);
  }
}

static size_t t_stream_queued(void *t, int64_t sid, void *sh) {
  h2s *s = sh;
  return s->out.len + s->head.len;
}

static void t_stream_reset(void *t, int64_t sid, void *sh, uint64_t code) {
  h2conn *c = t;
  h2s *s = sh;
  if (!s->id) {
    s->dead = 1;
  } else if (!s->rst_sent && c->sess) {
    /* QUIC's application codes have no HTTP/2 meaning: an abort is CANCEL. */
    s->rst_sent = 1;
    nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
  }
  kick(c);
}

/* QUIC's STOP_SENDING stops only the peer's half; HTTP/2 can only reset
 * the whole stream, which would cut our request body short. So: once our
 * END_STREAM is out, reset; until then, drop what arrives. */
static void t_stream_stop(void *t, int64_t sid, void *sh, uint64_t code) {
  h2conn *c = t;
  h2s *s = sh;
  s->discard = 1;
  if (!s->id) {
    s->dead = 1;
  } else if (!s->fin_seen && !s->rst_seen) {
    s->rst_on_eof = 1;
    c->writable_walk = 1;
  }
  kick(c);
}

static void t_stream_forget(void *t, int64_t sid, void *sh) {
  h2s *s = sh;
  s->owner = NULL;
}

static const wr_tunnel_transport h2_transport = {
    .name = "http2",
    .datagrams = 0,
    .control_write = t_control_write,
    .control_end = t_control_end,
    .close = t_close,
    .registered = t_registered,
    .remote = t_remote,
    .stream_open = t_stream_open,
    .stream_write = t_stream_write,
    .stream_consume = t_stream_consume,
    .stream_queued = t_stream_queued,
    .stream_reset = t_stream_reset,
    .stream_stop = t_stream_stop,
    .stream_forget = t_stream_forget,
};

/* ---- nghttp2 callbacks ---------------------------------------------------------- */

static ssize_t ctl_read(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t length,
                        uint32_t *flags, nghttp2_data_source *src, void *user) {
  h2conn *c = user;
  size_t n = c->ctl_out.len < length ? c->ctl_out.len : length;
  if (n) memcpy(buf, c->ctl_out.data, n);
  wr_buf_consume(&c->ctl_out, n);
  if (!c->ctl_out.len && c->ctl_fin) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  } else if (!n) {
    c->ctl_deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  return (ssize_t)n;
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user) {
  h2conn *c = user;
  if (f->hd.type != NGHTTP2_HEADERS) return 0;
  int status = nlen == 7 && memcmp(name, ":status", 7) == 0 ? atoi((const char *)value) : -1;
  if (f->hd.stream_id == c->ctl_id) {
    if (status >= 0) c->ctl_status = status;
    return 0;
  }
  h2s *s = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id);
  if (!s) return 0;
  if (s->head_seen) { /* trailers (docs/grpc.md), bounded as a head is */
    if (s->ntrl >= TRAILERS_MAX || wr_buf_reserve(&s->trl, nlen + vlen + 2) != WR_OK)
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
    wr_buf_append(&s->trl, name, nlen);
    wr_buf_append(&s->trl, "", 1);
    wr_buf_append(&s->trl, value, vlen);
    wr_buf_append(&s->trl, "", 1);
    s->ntrl++;
    return 0;
  }
  if (status >= 0) {
    s->status = status;
  } else if (nlen == 31 && memcmp(name, "cf-cloudflared-response-headers", 31) == 0) {
    free(s->uh);
    s->uh = wr_xmalloc(vlen + 1);
    memcpy(s->uh, value, vlen);
    s->uh[vlen] = 0;
    s->uh_len = vlen;
  } else if (nlen == 28 && memcmp(name, "cf-cloudflared-response-meta", 28) == 0) {
    s->cfd_error = wr_h2_meta_is_cloudflared((const char *)value, vlen);
  }
  return 0;
}

static void s_deliver(h2s *s, const uint8_t *data, size_t len, int fin) {
  if (s->owner) {
    wr_tunnel_stream_on_data(s->owner, data, len, fin);
  } else if (len && s->id && s->c->sess) {
    nghttp2_session_consume_stream(s->c->sess, s->id, len);
  }
}

/* The trailers collected in s->trl go to the owner. */
static void s_trailers(h2s *s) {
  wr_http_header *hs = wr_xcalloc(s->ntrl, sizeof(*hs));
  const char *p = (const char *)s->trl.data, *end = p + s->trl.len;
  size_t n = 0;
  while (p < end && n < s->ntrl) {
    size_t nl = strlen(p), vl = strlen(p + nl + 1);
    hs[n++] = (wr_http_header){p, nl, p + nl + 1, vl};
    p += nl + vl + 2;
  }
  wr_tunnel_stream_on_trailers(s->owner, hs, n);
  free(hs);
}

/* The response head is complete: the owner gets it as a QUIC connector
 * would have sent it. */
static void s_head_done(h2conn *c, h2s *s) {
  wr_buf b;
  wr_buf_init(&b, 2u << 20, NULL);
  wr_h2_response_head h = {.status = s->status, .user_headers = s->uh,
                           .user_headers_len = s->uh_len, .cloudflared_error = s->cfd_error};
  s->head_seen = 1;
  int rv = wr_h2_response_to_connect(s->type, &h, &b);
  if (rv != WR_OK) {
    wr_debug("http2 stream %" PRId32 ": undecodable response head (%s)", s->id, wr_strerror(rv));
    s->rst_seen = 1;
    if (!s->rst_sent) {
      s->rst_sent = 1;
      nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
    }
    if (s->owner) wr_tunnel_stream_on_reset(s->owner, 0);
  } else {
    /* An error response has no body worth passing on. */
    s->discard = s->cfd_error;
    s->virt += b.len;
    s_deliver(s, b.data, b.len, 0);
  }
  wr_buf_free(&b);
}

static void control_frame(h2conn *c, const nghttp2_frame *f) {
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_RESPONSE &&
      c->ctl_status != 200) {
    wr_warn("http2 connector answered the control stream with status %d: closing",
            c->ctl_status);
    conn_close(c, "control stream refused");
    return;
  }
  if (f->hd.type == NGHTTP2_RST_STREAM) {
    wr_tunnel_conn_control_reset(c->tc);
    conn_close(c, "control stream reset");
    return;
  }
  if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
      (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
    wr_tunnel_conn_control_data(c->tc, NULL, 0, 1);
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *f, void *user) {
  h2conn *c = user;
  if (f->hd.stream_id == 0) return 0;
  if (f->hd.stream_id == c->ctl_id) {
    if (c->tc) control_frame(c, f);
    return 0;
  }
  h2s *s = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id);
  if (!s) return 0;
  if (f->hd.type == NGHTTP2_HEADERS && !s->head_seen) {
    if (s->status >= 100 && s->status < 200) { /* 100 Continue: wait for the real one */
      s->status = 0;
      return 0;
    }
    s_head_done(c, s);
  }
  if (f->hd.type == NGHTTP2_RST_STREAM && !s->rst_seen) {
    s->rst_seen = 1;
    if (s->owner) wr_tunnel_stream_on_reset(s->owner, f->rst_stream.error_code);
    return 0;
  }
  if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
      (f->hd.flags & NGHTTP2_FLAG_END_STREAM) && s->head_seen && !s->rst_seen && !s->fin_seen) {
    s->fin_seen = 1;
    if (s->ntrl && s->owner && !s->discard) s_trailers(s);
    s_deliver(s, NULL, 0, 1);
  }
  return 0;
}

static int on_data(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *user) {
  h2conn *c = user;
  /* The connection window goes back at once: a slow owner holds its own
   * stream's window only. */
  nghttp2_session_consume_connection(sess, len);
  if (id == c->ctl_id) {
    nghttp2_session_consume_stream(sess, id, len);
    if (c->tc) wr_tunnel_conn_control_data(c->tc, data, len, 0);
    return 0;
  }
  h2s *s = nghttp2_session_get_stream_user_data(sess, id);
  if (!s || s->discard || !s->head_seen || s->rst_seen) {
    nghttp2_session_consume_stream(sess, id, len);
    return 0;
  }
  s_deliver(s, data, len, 0);
  return 0;
}

static int on_stream_close(nghttp2_session *sess, int32_t id, uint32_t code, void *user) {
  h2conn *c = user;
  if (id == c->ctl_id) {
    conn_close(c, "control stream closed");
    return 0;
  }
  h2s *s = nghttp2_session_get_stream_user_data(sess, id);
  if (!s) return 0;
  if (s->owner && !s->fin_seen && !s->rst_seen) {
    s->rst_seen = 1;
    wr_tunnel_stream_on_reset(s->owner, code);
  }
  s_close_owner(s);
  s_unlink_free(s);
  return 0;
}

/* ---- connection ---------------------------------------------------------------- */

static void handle_closed(uv_handle_t *h) {
  h2conn *c = h->data;
  if (--c->handles == 0) free(c);
}

/* Frees what is left once the TLS connection is gone. */
static void conn_finish(h2conn *c) {
  if (c->tc) {
    wr_tunnel_conn *tc = c->tc;
    c->tc = NULL;
    wr_tunnel_conn_gone(tc, c->why ? c->why : "connection closed", 1);
  }
  while (c->streams) {
    h2s *s = c->streams;
    s_close_owner(s);
    s_unlink_free(s);
  }
  if (c->sess) nghttp2_session_del(c->sess);
  c->sess = NULL;
  wr_buf_free(&c->ctl_out);
  wr_tunnel_h2 *l = c->l;
  if (c->pending) l->pending--;
  if (c->prev)
    c->prev->next = c->next;
  else if (l->conns == c)
    l->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  if (l->closing && !l->conns) l_release(l);
  c->pending = 0;
  uv_timer_stop(&c->tick);
  uv_timer_stop(&c->deadline);
  uv_close((uv_handle_t *)&c->tick, handle_closed);
  uv_close((uv_handle_t *)&c->deadline, handle_closed);
}

static void hard_close(h2conn *c) {
  if (c->conn) wr_conn_close(c->conn);
}

static void deadline_cb(uv_timer_t *t) {
  h2conn *c = t->data;
  if (c->closing) {
    hard_close(c);
    return;
  }
  wr_info("http2 connector connection closed: no registration after the handshake");
  c->why = "no registration after the handshake";
  hard_close(c);
}

/* Graceful where possible: GOAWAY goes out, the peer hangs up (or the
 * grace timer does it). */
static void conn_close(h2conn *c, const char *why) {
  if (c->closing) return;
  c->closing = 1;
  if (!c->why) c->why = why;
  if (!c->sess) {
    hard_close(c);
    return;
  }
  nghttp2_session_terminate_session(c->sess, NGHTTP2_NO_ERROR);
  uv_timer_start(&c->deadline, deadline_cb, CLOSE_GRACE_MS, 0);
  kick(c);
}

/* Streams with work outside nghttp2: deferred closes, resets after our
 * END_STREAM, owners waiting to write. */
static void walk_streams(h2conn *c) {
  h2s *s = c->streams;
  while (s) {
    h2s *next = s->next;
    if (s->dead) {
      s_close_owner(s);
      s_unlink_free(s);
    } else {
      if (s->rst_on_eof && s->eof_sent && !s->rst_sent && !s->fin_seen && !s->rst_seen) {
        s->rst_sent = 1;
        nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
      }
      if (s->want_writable) {
        s->want_writable = s->blocked = 0;
        if (s->owner) wr_tunnel_stream_on_writable(s->owner);
      }
    }
    s = next;
  }
}

static void flush(h2conn *c) {
  while (c->conn && c->sess && wr_conn_write_queued(c->conn) < TCP_HIGH) {
    const uint8_t *d;
    ssize_t n = nghttp2_session_mem_send(c->sess, &d);
    if (n < 0) {
      wr_warn("http2 connector connection: %s", nghttp2_strerror((int)n));
      hard_close(c);
      return;
    }
    if (n == 0) break;
    if (wr_conn_write(c->conn, d, (size_t)n) != WR_OK) return;
  }
}

static void tick_cb(uv_timer_t *t) {
  h2conn *c = t->data;
  c->tick_armed = 0;
  if (!c->sess || !c->conn) return;
  /* A walk's callbacks may queue frames, and frames sent may ask for a
   * walk: a few rounds settle it. */
  for (int round = 0; round < 4; round++) {
    flush(c);
    if (!c->sess || !c->conn || !c->writable_walk) break;
    c->writable_walk = 0;
    walk_streams(c);
  }
  if (c->sess && c->conn && c->closing && !nghttp2_session_want_write(c->sess) &&
      !wr_conn_write_queued(c->conn))
    wr_conn_shutdown(c->conn);
}

static void kick(h2conn *c) {
  if (c->tick_armed || !c->conn) return;
  c->tick_armed = 1;
  uv_timer_start(&c->tick, tick_cb, 0, 0);
}

static int start_session(h2conn *c) {
  nghttp2_session_callbacks *cb;
  nghttp2_option *opt;
  if (nghttp2_session_callbacks_new(&cb) != 0) return WR_ERR_NOMEM;
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cb);
    return WR_ERR_NOMEM;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);
  int rv = nghttp2_session_client_new2(&c->sess, cb, c, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) return WR_ERR_NOMEM;
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                 {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW}};
  nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
  nghttp2_session_set_local_window_size(c->sess, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE}
  nghttp2_nv nv[] = {NV(":method", "GET"), NV(":scheme", "https"),
                     NV(":authority", "h2.cftunnel.com"), NV(":path", "/"),
                     NV("cf-cloudflared-proxy-connection-upgrade", "control-stream")};
#undef NV
  nghttp2_data_provider prd = {.source.ptr = c, .read_callback = ctl_read};
  c->ctl_id = nghttp2_submit_request(c->sess, NULL, nv, sizeof(nv) / sizeof(nv[0]), &prd, NULL);
  return c->ctl_id < 0 ? WR_ERR_NOMEM : WR_OK;
}

static void c_on_connect(wr_conn *conn, int status, const char *msg, void *user) {
  h2conn *c = user;
  if (status != WR_OK) {
    wr_debug("http2 connector handshake failed: %s", msg ? msg : wr_strerror(status));
    c->why = "TLS handshake failed";
    hard_close(c);
    return;
  }
  if (c->l->closing || start_session(c) != WR_OK) {
    hard_close(c);
    return;
  }
  if (wr_tunnel_conn_new(c->l->ts, &h2_transport, c, &c->tc) != WR_OK) {
    c->why = "too many connections waiting to register";
    conn_close(c, c->why);
    return;
  }
  if (wr_tunnel_conn_control_open(c->tc) != WR_OK) {
    conn_close(c, "control stream");
    return;
  }
  kick(c);
}

static void c_on_read(wr_conn *conn, const uint8_t *data, size_t len, void *user) {
  h2conn *c = user;
  if (!c->sess) return;
  ssize_t n = nghttp2_session_mem_recv(c->sess, data, len);
  if (n < 0) {
    wr_warn("http2 connector connection: %s", nghttp2_strerror((int)n));
    c->why = "HTTP/2 protocol error";
    hard_close(c);
    return;
  }
  kick(c);
}

static void c_on_eof(wr_conn *conn, int status, const char *msg, void *user) {
  h2conn *c = user;
  if (!c->why) c->why = "connection closed";
  hard_close(c);
}

static void c_on_drain(wr_conn *conn, void *user) { kick(user); }

static void c_on_close(wr_conn *conn, void *user) {
  h2conn *c = user;
  c->conn = NULL;
  conn_finish(c);
  if (--c->handles == 0) free(c);
}

static const wr_conn_callbacks conn_cbs = {
    .on_connect = c_on_connect,
    .on_read = c_on_read,
    .on_eof = c_on_eof,
    .on_drain = c_on_drain,
    .on_close = c_on_close,
};

/* ---- listener ------------------------------------------------------------------ */

static void on_connection(uv_stream_t *server, int status) {
  wr_tunnel_h2 *l = server->data;
  if (status < 0) return;
  if (l->pending >= WR_TUNNEL_H2_MAX_PENDING) {
    /* Accept and drop: leaving it in the backlog would keep waking us. */
    uv_tcp_t *t = wr_xcalloc(1, sizeof(*t));
    uv_tcp_init(l->loop, t);
    if (uv_accept(server, (uv_stream_t *)t) == 0)
      wr_debug("http2 connector refused: %u connections waiting to register", l->pending);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
    return;
  }
  h2conn *c = wr_xcalloc(1, sizeof(*c));
  c->l = l;
  c->next_sid = 1; /* stream 1 is the control stream */
  wr_buf_init(&c->ctl_out, CONTROL_MAX, NULL);
  if (wr_conn_accept(server, l->creds, &conn_cbs, c, &c->conn) != WR_OK) {
    free(c);
    return;
  }
  c->handles = 3;
  uv_timer_init(l->loop, &c->tick);
  uv_timer_init(l->loop, &c->deadline);
  c->tick.data = c->deadline.data = c;
  wr_conn_peer(c->conn, &c->peer);
  c->pending = 1;
  l->pending++;
  c->next = l->conns;
  if (l->conns) l->conns->prev = c;
  l->conns = c;
  uv_timer_start(&c->deadline, deadline_cb, wr_tunnel_server_register_timeout(l->ts), 0);
}

int wr_tunnel_h2_listen(wr_tunnel_server *ts, uv_loop_t *loop, const char *cert_file,
                        const char *key_file, const struct sockaddr *addr, wr_tunnel_h2 **out,
                        char *err, size_t errlen) {
  *out = NULL;
  wr_tunnel_h2 *l = wr_xcalloc(1, sizeof(*l));
  l->ts = ts;
  l->loop = loop;
  wr_tls_server_config tc = {.cert_file = cert_file, .key_file = key_file};
  int rv = wr_tls_creds_server(&tc, &l->creds, err, errlen);
  if (rv != WR_OK) {
    free(l);
    return rv;
  }
  l->reap = wr_xcalloc(1, sizeof(*l->reap));
  uv_timer_init(loop, l->reap);
  l->reap->data = l;
  l->tcp = wr_xcalloc(1, sizeof(*l->tcp));
  uv_tcp_init(loop, l->tcp);
  l->tcp->data = l;
  int uv = uv_tcp_bind(l->tcp, addr, 0);
  if (!uv) uv = uv_listen((uv_stream_t *)l->tcp, 128, on_connection);
  if (uv) {
    snprintf(err, errlen, "TCP: %s", uv_strerror(uv));
    uv_close((uv_handle_t *)l->tcp, (uv_close_cb)free);
    l_release(l);
    return WR_ERR_IO;
  }
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getsockname(l->tcp, (struct sockaddr *)&ss, &len) == 0)
    l->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  *out = l;
  return WR_OK;
}

int wr_tunnel_h2_port(const wr_tunnel_h2 *h) { return h ? h->port : 0; }

/* The TLS sessions of the last connection are freed right after its
 * on_close returns: the credentials go on a later loop iteration. */
static void l_reaped(uv_handle_t *h) {
  wr_tunnel_h2 *l = h->data;
  wr_tls_creds_free(l->creds);
  free(h);
  free(l);
}

static void l_release(wr_tunnel_h2 *l) { uv_close((uv_handle_t *)l->reap, l_reaped); }

void wr_tunnel_h2_free(wr_tunnel_h2 *l) {
  if (!l || l->closing) return;
  l->closing = 1;
  for (h2conn *c = l->conns; c; c = c->next) {
    if (c->tc) {
      wr_tunnel_conn *tc = c->tc;
      c->tc = NULL;
      wr_tunnel_conn_gone(tc, "edge shutting down", 1);
    }
    hard_close(c);
  }
  uv_close((uv_handle_t *)l->tcp, (uv_close_cb)free);
  if (!l->conns) l_release(l);
}
