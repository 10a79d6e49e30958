/* HTTP/3 beside the HTTPS visitor front (visitor_int.h): a QUIC server
 * endpoint (net/quic.h, the same machinery as the connectors' endpoint)
 * on UDP at the HTTPS front's address and port, ALPN "h3", certificates by
 * SNI from the front's certificate module (an unknown name: the handshake
 * is refused with unrecognized_name), and an nghttp3 server per connection.
 *
 *   QUIC stream bytes ──nghttp3_conn_read_stream──> header block, DATA
 *        ──> the request's stream vconn (visitor_sub.c), as HTTP/2 does:
 *        rate limit, Access, 421, routing, ConnectRequest, inspector, ...
 *   stream vconn output ──> HEADERS (nghttp3_conn_submit_response) + DATA
 *        (read_data) + trailers ──nghttp3_conn_writev_stream──> QUIC
 *
 * Flow control: request body bytes return their QUIC credit only once the
 * stream vconn passed them to the tunnel stream (the QUIC stream window is
 * fixed at STREAM_WINDOW, what a stream vconn buffers); response bytes
 * return their tunnel credit as nghttp3 takes them, and nghttp3 is only
 * asked for more while the QUIC stream's send queue has room (the stream is
 * blocked in nghttp3 after a short write until on_stream_writable).
 * The QUIC layer copies what it is given, so bytes handed to it are
 * acknowledged to nghttp3 at once; body bytes given to nghttp3 live in
 * |lent| chunks until then.
 *
 * Limits: MAX_STREAMS concurrent request streams (QUIC stream credit), the
 * QPACK dynamic table (QPACK_TABLE) and blocked streams (QPACK_BLOCKED),
 * header sections (HEAD_MAX: 431; a section decoding past HEAD_BOMB ends
 * the connection with H3_EXCESSIVE_LOAD), streams reset by the visitor in
 * a leaky bucket (rapid reset: RESET_BURST, draining RESET_RATE/s; over it
 * the connection ends with H3_EXCESSIVE_LOAD). A frame or QPACK error ends
 * its stream or connection with the error code nghttp3 names.
 *
 * Connections count in the front's connection limits (per source and in
 * total) like TCP ones. Nothing here blocks: the certificate choice takes
 * what the route cache knows; for a name it has not seen yet the lookup
 * starts and the client's first Initial is dropped unanswered (its
 * retransmission, about a second later, finds the answer).
 *
 * Lifetimes: a vh3 lives from the QUIC endpoint's on_accept to its
 * on_close (or wr__vh3_close); a vh3s from the first bytes of a request
 * stream to nghttp3's stream_close or the connection's end. Nothing is
 * written from inside nghttp3's callbacks: output is pulled after
 * nghttp3_conn_read_stream returns (|reading| defers it). */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp3/nghttp3.h>

#include "edge/visitor_int.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/h3quic.h"
#include "net/quic.h"

#define ALPN "h3"
#define MAX_STREAMS 100
#define MAX_UNI 16                    /* control, QPACK and a few others (grease) */
#define STREAM_WINDOW (256u * 1024u)  /* per request stream: what a stream vconn buffers */
#define CONN_WINDOW (4u << 20)
#define HEAD_MAX WR__VSUB_HEAD_MAX
#define HEAD_BOMB (16u * HEAD_MAX)    /* decoded bytes of one header section */
#define QPACK_TABLE 4096
#define QPACK_BLOCKED 16
#define LEND_MAX (64u * 1024u)        /* body bytes handed to nghttp3 at once */
#define RESET_BURST 500
#define RESET_RATE 100

typedef struct vh3 vh3;
typedef struct vh3s vh3s;

typedef struct lent {
  struct lent *next;
  size_t len, acked;
  uint8_t data[];
} lent;

struct vh3 {
  vh3 *prev, *next;
  wr_visitor *v;
  wr_quic_conn *q;
  nghttp3_conn *h3;
  vh3s *streams;
  uint64_t id;
  char ip[INET6_ADDRSTRLEN];
  char sni[WR_STORE_HOST_MAX + 1];
  vsrc *src;
  int held;            /* holds a connection slot */
  int reading;         /* inside nghttp3_conn_read_stream: no output now */
  int dead;            /* closing: nothing more is read or written */
  int bound;           /* our control and QPACK streams are open */
  uint64_t reset_level, reset_stamp; /* rapid-reset bucket (thousandths) */
};

struct vh3s {
  vh3s *prev, *next;
  vh3 *h;
  int64_t id;
  wr_h2req req;        /* the request while its header section arrives */
  int started;         /* the header section was complete */
  vsub x;
  lent *lhead, *ltail; /* body bytes nghttp3 holds, oldest first */
  int cancel_counted;  /* the visitor's cancel of it went into the rapid-reset bucket */
};

typedef struct vh3front {
  wr_quic_tls *tls;
  wr_quic_endpoint *ep;
  vh3 *conns;
  uv_timer_t reaper;   /* frees |tls| after the endpoint freed its connections */
} vh3front;

static void flush(vh3 *h);

/* Ends the connection with an HTTP/3 error (RFC 9114 8.1). */
static void conn_fail(vh3 *h, uint64_t code, const char *why) {
  if (h->dead) return;
  h->dead = 1;
  h->v->stats.h3_closed_error++;
  wr_info("visitor %" PRIu64 " (%s): HTTP/3 %s: closing (0x%" PRIx64 ")", h->id, h->ip, why, code);
  wr_quic_conn_close(h->q, code, why);
}

/* ---- streams ------------------------------------------------------------------------- */

extern const vsub_ops wr__vh3_ops;

static vh3s *stream_new(vh3 *h, int64_t id) {
  vh3s *x = wr_xcalloc(1, sizeof(*x));
  x->h = h;
  x->id = id;
  wr_h2req_init(&x->req, HEAD_MAX);
  wr__vsub_init(&x->x, &wr__vh3_ops, x);
  WR_LIST_INSERT_HEAD(h->streams, x);
  nghttp3_conn_set_stream_user_data(h->h3, id, x);
  return x;
}

static void stream_free(vh3 *h, vh3s *x) {
  WR_LIST_REMOVE(h->streams, x);
  wr_h2req_free(&x->req);
  wr__vsub_free(&x->x); /* an unfinished request: its tunnel stream is reset */
  while (x->lhead) {
    lent *l = x->lhead;
    x->lhead = l->next;
    free(l);
  }
  free(x);
}

/* Answers from here, before any stream vconn exists (431, 400; counted by
 * wr__vsub_start). */
static void respond_bare(vh3 *h, vh3s *x, int status) {
  char st[8];
  snprintf(st, sizeof(st), "%d", status);
  nghttp3_nv nv[2] = {
      {(uint8_t *)":status", (uint8_t *)st, 7, strlen(st), NGHTTP3_NV_FLAG_NONE},
      {(uint8_t *)"content-length", (uint8_t *)"0", 14, 1, NGHTTP3_NV_FLAG_NONE},
  };
  nghttp3_conn_submit_response(h->h3, x->id, nv, 2, NULL);
}

/* ---- nghttp3 callbacks: the request --------------------------------------------------- */

static int on_begin_headers(nghttp3_conn *conn, int64_t id, void *ud, void *sud) {
  vh3 *h = ud;
  (void)conn;
  if (!sud) stream_new(h, id);
  return 0;
}

static int on_recv_header(nghttp3_conn *conn, int64_t id, int32_t token, nghttp3_rcbuf *name,
                          nghttp3_rcbuf *value, uint8_t flags, void *ud, void *sud) {
  vh3 *h = ud;
  vh3s *x = sud;
  (void)conn;
  (void)id;
  (void)token;
  (void)flags;
  if (!x || x->started) return 0;
  nghttp3_vec n = nghttp3_rcbuf_get_buf(name), val = nghttp3_rcbuf_get_buf(value);
  wr_h2req_field(&x->req, n.base, n.len, val.base, val.len);
  if (x->req.size > HEAD_BOMB) {
    conn_fail(h, NGHTTP3_H3_EXCESSIVE_LOAD, "header section decodes past its limit (QPACK bomb)");
    return NGHTTP3_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static int on_end_headers(nghttp3_conn *conn, int64_t id, int fin, void *ud, void *sud) {
  vh3 *h = ud;
  vh3s *x = sud;
  (void)conn;
  (void)id;
  if (!x || x->started || h->dead) return 0;
  x->started = 1;
  h->v->stats.h3_streams++;
  vsub_parent p = {.id = h->id, .ip = h->ip, .sni = h->sni, .src = h->src};
  int status = wr__vsub_start(&x->x, h->v, &p, &x->req, fin, STREAM_WINDOW);
  if (status) respond_bare(h, x, status);
  return 0;
}

static int on_recv_data(nghttp3_conn *conn, int64_t id, const uint8_t *data, size_t len, void *ud,
                        void *sud) {
  vh3 *h = ud;
  vh3s *x = sud;
  (void)conn;
  if (!x) {
    wr_quic_stream_consume(h->q, id, len); /* nobody takes these bytes */
    return 0;
  }
  wr__vsub_input(&x->x, data, len);
  return 0;
}

static int on_deferred_consume(nghttp3_conn *conn, int64_t id, size_t n, void *ud, void *sud) {
  vh3 *h = ud;
  (void)conn;
  (void)sud;
  wr_quic_stream_consume(h->q, id, n);
  return 0;
}

static int on_end_stream(nghttp3_conn *conn, int64_t id, void *ud, void *sud) {
  vh3s *x = sud;
  (void)conn;
  (void)id;
  (void)ud;
  if (x) wr__vsub_input_end(&x->x);
  return 0;
}

static int on_stream_close(nghttp3_conn *conn, int64_t id, uint64_t code, void *ud, void *sud) {
  vh3 *h = ud;
  vh3s *x = sud;
  (void)conn;
  (void)id;
  (void)code;
  if (x) stream_free(h, x);
  return 0;
}

static int on_acked(nghttp3_conn *conn, int64_t id, uint64_t n, void *ud, void *sud) {
  vh3s *x = sud;
  (void)conn;
  (void)id;
  (void)ud;
  while (x && n && x->lhead) {
    lent *l = x->lhead;
    size_t k = l->len - l->acked < n ? l->len - l->acked : (size_t)n;
    l->acked += k;
    n -= k;
    if (l->acked < l->len) break;
    WR_FIFO_POP(x->lhead, x->ltail, next);
    free(l);
  }
  return 0;
}

static int on_stop_sending(nghttp3_conn *conn, int64_t id, uint64_t code, void *ud, void *sud) {
  vh3 *h = ud;
  (void)conn;
  (void)sud;
  wr_quic_stream_stop_sending(h->q, id, code);
  return 0;
}

static int on_reset_stream(nghttp3_conn *conn, int64_t id, uint64_t code, void *ud, void *sud) {
  vh3 *h = ud;
  (void)conn;
  (void)sud;
  wr_quic_stream_reset(h->q, id, code);
  return 0;
}

/* ---- the response --------------------------------------------------------------------- */

/* The trailers as a HEADERS frame after the last DATA (nghttp3 copies
 * the fields). */
static int submit_trailers(vh3s *x) {
  const wr_fields *t = &x->x.trl;
  wr_http_header *hs = wr_xcalloc(t->n + 1, sizeof(*hs));
  nghttp3_nv *nv = wr_xcalloc(t->n + 1, sizeof(*nv));
  wr_fields_list(t, hs);
  for (size_t i = 0; i < t->n; i++)
    nv[i] = (nghttp3_nv){(uint8_t *)(uintptr_t)hs[i].name, (uint8_t *)(uintptr_t)hs[i].value,
                         hs[i].name_len, hs[i].value_len, NGHTTP3_NV_FLAG_NONE};
  int rv = nghttp3_conn_submit_trailers(x->h->h3, x->id, nv, t->n);
  free(nv);
  free(hs);
  return rv;
}

static nghttp3_ssize read_data(nghttp3_conn *conn, int64_t id, nghttp3_vec *vec, size_t veccnt,
                               uint32_t *flags, void *ud, void *sud) {
  vh3s *x = sud;
  (void)conn;
  (void)id;
  (void)ud;
  if (!x || veccnt == 0) return NGHTTP3_ERR_CALLBACK_FAILURE;
  size_t have = wr__vsub_pending(&x->x), want = have < LEND_MAX ? have : LEND_MAX;
  nghttp3_ssize nvec = 0;
  if (want) {
    lent *l = wr_xmalloc(sizeof(*l) + want);
    l->acked = 0;
    l->len = wr__vsub_take(&x->x, l->data, want);
    WR_FIFO_PUSH(x->lhead, x->ltail, l, next);
    vec[0] = (nghttp3_vec){l->data, l->len};
    nvec = 1;
  }
  if (want == have && x->x.done) {
    *flags |= NGHTTP3_DATA_FLAG_EOF;
    if (x->x.trl.n && submit_trailers(x) == 0) *flags |= NGHTTP3_DATA_FLAG_NO_END_STREAM;
    return nvec;
  }
  return nvec ? nvec : NGHTTP3_ERR_WOULDBLOCK;
}

/* The response head at the front of |out|: HEADERS (1xx ones too).
 * Returns 1 when submitted, 0 to wait for more, -1 for a head that cannot
 * be forwarded. */
static int submit_head(vh3s *x) {
  wr_h2resp rh; /* about 80 KiB: on the loop thread's stack */
  nghttp3_nv nv[WR_H2RESP_MAX_FIELDS + 1];
  size_t used = 0, n = 0;
  int rv = wr__vsub_head(&x->x, &rh, &used);
  if (rv <= 0) return rv;
  nv[n++] = (nghttp3_nv){(uint8_t *)":status", (uint8_t *)rh.status_text, 7,
                         strlen(rh.status_text), NGHTTP3_NV_FLAG_NONE};
  for (size_t i = 0; i < rh.nfields; i++)
    nv[n++] = (nghttp3_nv){(uint8_t *)rh.fields[i].name, (uint8_t *)rh.fields[i].value,
                           rh.fields[i].name_len, rh.fields[i].value_len, NGHTTP3_NV_FLAG_NONE};
  if (rh.status < 200) {
    rv = nghttp3_conn_submit_info(x->h->h3, x->id, nv, n);
  } else {
    nghttp3_data_reader dr = {read_data};
    rv = nghttp3_conn_submit_response(x->h->h3, x->id, nv, n,
                                      wr__vsub_bare(&x->x, used) ? NULL : &dr);
    x->x.head_sent = 1;
  }
  x->x.out_off += used;
  return rv == 0 ? 1 : -1;
}

static void h3_pump(vsub *sx) {
  vh3s *x = sx->owner;
  vh3 *h = x->h;
  if (h->dead) return;
  while (!sx->head_sent) {
    int rv = submit_head(x);
    if (rv == 0) return;
    if (rv < 0) {
      wr_debug("visitor %" PRIu64 ": HTTP/3 stream %" PRId64 ": response head not forwardable",
               h->id, x->id);
      sx->head_sent = sx->done = 1;
      nghttp3_conn_shutdown_stream_write(h->h3, x->id);
      wr_quic_stream_reset(h->q, x->id, NGHTTP3_H3_INTERNAL_ERROR);
      wr__vsub_drop_sc(sx);
      flush(h);
      return;
    }
  }
  nghttp3_conn_resume_stream(h->h3, x->id);
  flush(h);
}

static void h3_consume(vsub *sx, uint64_t n) {
  vh3s *x = sx->owner;
  if (!x->h->dead) wr_quic_stream_consume(x->h->q, x->id, (size_t)n);
}

static void h3_closed(vsub *sx, int reset) {
  vh3s *x = sx->owner;
  vh3 *h = x->h;
  if (!reset || h->dead) return;
  sx->done = 1;
  nghttp3_conn_shutdown_stream_write(h->h3, x->id);
  wr_quic_stream_reset(h->q, x->id, NGHTTP3_H3_INTERNAL_ERROR);
  wr_quic_stream_stop_sending(h->q, x->id, NGHTTP3_H3_INTERNAL_ERROR);
}

const vsub_ops wr__vh3_ops = {"HTTP/3", h3_pump, h3_consume, h3_closed};

/* ---- the connection ------------------------------------------------------------------- */

/* Moves what nghttp3 has to send into the QUIC streams, as they take it. */
static void flush(vh3 *h) {
  if (h->reading || h->dead) return;
  for (int guard = 0; guard < 4096; guard++) {
    int rv = wr_h3_quic_write_batch(h->h3, h->q);
    if (rv < 0) {
      conn_fail(h, nghttp3_err_infer_quic_app_error_code(rv), nghttp3_strerror(rv));
      return;
    }
    if (rv == 0) return;
  }
}

static const nghttp3_callbacks *callbacks(void) {
  static const nghttp3_callbacks cbs = {
      .acked_stream_data = on_acked,
      .stream_close = on_stream_close,
      .recv_data = on_recv_data,
      .deferred_consume = on_deferred_consume,
      .begin_headers = on_begin_headers,
      .recv_header = on_recv_header,
      .end_headers = on_end_headers,
      .stop_sending = on_stop_sending,
      .end_stream = on_end_stream,
      .reset_stream = on_reset_stream,
  };
  return &cbs;
}

static void conn_free(vh3front *f, vh3 *h) {
  WR_LIST_REMOVE(f->conns, h);
  while (h->streams) stream_free(h, h->streams);
  nghttp3_conn_del(h->h3);
  if (h->held) {
    h->v->stats.active_conns--;
    wr__visitor_src_drop(h->v, h->src);
  }
  free(h);
}

/* The server's control and QPACK streams, bound before the first request
 * is read: a request can arrive in the datagram that completes the
 * handshake, before on_handshake_done (answering it needs the QPACK
 * encoder stream). Returns 0, or -1 with the connection closing. */
static int bind_streams(vh3 *h) {
  int64_t ctrl, enc, dec;
  if (h->bound) return 0;
  if (h->dead || wr_quic_stream_open_uni(h->q, NULL, &ctrl) != WR_OK ||
      wr_quic_stream_open_uni(h->q, NULL, &enc) != WR_OK ||
      wr_quic_stream_open_uni(h->q, NULL, &dec) != WR_OK ||
      nghttp3_conn_bind_control_stream(h->h3, ctrl) != 0 ||
      nghttp3_conn_bind_qpack_streams(h->h3, enc, dec) != 0) {
    conn_fail(h, NGHTTP3_H3_INTERNAL_ERROR, "cannot open the control and QPACK streams");
    return -1;
  }
  h->bound = 1;
  wr_debug("visitor %" PRIu64 " (%s): HTTP/3 for %s", h->id, h->ip, h->sni);
  return 0;
}

static void q_handshake_done(wr_quic_conn *q, void *user) {
  vh3 *h = user;
  (void)q;
  if (bind_streams(h) == 0) flush(h);
}

static int q_stream_data(wr_quic_conn *q, int64_t sid, const uint8_t *data, size_t len, int fin,
                         void *user, void *suser) {
  vh3 *h = user;
  (void)suser;
  if (h->dead || bind_streams(h) != 0) {
    wr_quic_stream_consume(q, sid, len);
    return 0;
  }
  h->reading = 1;
  nghttp3_ssize n = nghttp3_conn_read_stream(h->h3, sid, data, len, fin);
  h->reading = 0;
  if (n < 0) {
    conn_fail(h, nghttp3_err_infer_quic_app_error_code((int)n), nghttp3_strerror((int)n));
    return 0;
  }
  if (n) wr_quic_stream_consume(q, sid, (size_t)n);
  flush(h);
  return 0;
}

/* The visitor reset a stream: rapid reset is counted, the request ends. */
static vh3s *stream_find(vh3 *h, int64_t sid) {
  vh3s *x = h->streams;
  while (x && x->id != sid) x = x->next;
  return x;
}

/* A request the visitor cancelled goes into the rapid-reset bucket (once
 * per stream); returns 1 when that ends the connection. */
static int count_cancel(vh3 *h, vh3s *x) {
  if (x) {
    if (x->cancel_counted) return 0;
    x->cancel_counted = 1;
  }
  uint64_t now = uv_now(h->v->loop), drained = (now - h->reset_stamp) * RESET_RATE;
  h->reset_level = (h->reset_level > drained ? h->reset_level - drained : 0) + 1000;
  h->reset_stamp = now;
  if (h->reset_level <= RESET_BURST * 1000ull) return 0;
  conn_fail(h, NGHTTP3_H3_EXCESSIVE_LOAD, "rapid reset (RESET_STREAM flood)");
  return 1;
}

static int q_stream_reset(wr_quic_conn *q, int64_t sid, uint64_t code, void *user, void *suser) {
  vh3 *h = user;
  (void)suser;
  if (h->dead) return 0;
  vh3s *x = stream_find(h, sid);
  if (count_cancel(h, x)) return 0;
  /* A request cancelled (RESET_STREAM, as on HTTP/2 RST_STREAM) gets no
   * answer either: our side is reset too, so the stream closes and its
   * QUIC stream credit returns. */
  nghttp3_conn_shutdown_stream_read(h->h3, sid);
  if ((sid & 2) == 0 /* bidirectional (RFC 9000 2.1) */) {
    nghttp3_conn_shutdown_stream_write(h->h3, sid);
    wr_quic_stream_reset(q, sid, NGHTTP3_H3_REQUEST_CANCELLED);
  }
  if (x) wr__vsub_drop_sc(&x->x); /* its tunnel stream is reset, or never opened */
  (void)code;
  return 0;
}

static void q_stream_writable(wr_quic_conn *q, int64_t sid, void *user, void *suser) {
  vh3 *h = user;
  (void)q;
  (void)suser;
  if (h->dead) return;
  nghttp3_conn_unblock_stream(h->h3, sid);
  flush(h);
}

static void q_stream_close(wr_quic_conn *q, int64_t sid, int has_code, uint64_t code, void *user,
                           void *suser) {
  vh3 *h = user;
  (void)q;
  (void)suser;
  if (h->dead) return;
  /* A request whose body was complete is cancelled with STOP_SENDING
   * alone (RESET_STREAM has nothing left to stop): ngtcp2 then resets our
   * side with the visitor's code, and only the close tells. */
  if (has_code && code == NGHTTP3_H3_REQUEST_CANCELLED) {
    vh3s *x = stream_find(h, sid); /* only then: a walk of the connection's streams */
    if (x && count_cancel(h, x)) return;
  }
  int rv = nghttp3_conn_close_stream(h->h3, sid, has_code ? code : NGHTTP3_H3_NO_ERROR);
  if (rv == NGHTTP3_ERR_H3_CLOSED_CRITICAL_STREAM)
    conn_fail(h, nghttp3_err_infer_quic_app_error_code(rv), "a critical stream was closed");
}

/* nghttp3 refuses frames naming streams the visitor may not open yet
 * (PRIORITY_UPDATE): it follows QUIC's stream credit. */
static void q_peer_streams(wr_quic_conn *q, uint64_t max, void *user) {
  vh3 *h = user;
  (void)q;
  if (!h->dead) nghttp3_conn_set_max_client_streams_bidi(h->h3, max);
}

static void q_close(wr_quic_conn *q, const wr_quic_close_info *ci, void *user) {
  vh3 *h = user;
  (void)q;
  wr_debug("visitor %" PRIu64 " (%s): HTTP/3 connection over: %s", h->id, h->ip, ci->msg ? ci->msg : "");
  h->dead = 1;
  conn_free(h->v->h3, h);
}

static const wr_quic_callbacks qcbs = {
    .on_handshake_done = q_handshake_done,
    .on_stream_data = q_stream_data,
    .on_stream_reset = q_stream_reset,
    .on_stream_writable = q_stream_writable,
    .on_stream_close = q_stream_close,
    .on_peer_streams = q_peer_streams,
    .on_close = q_close,
};

static void q_accept(wr_quic_endpoint *ep, wr_quic_conn *q, void *ep_user) {
  wr_visitor *v = ep_user;
  vh3front *f = v->h3;
  (void)ep;
  vh3 *h = wr_xcalloc(1, sizeof(*h));
  h->v = v;
  h->q = q;
  h->id = ++v->next_id;
  h->reset_stamp = uv_now(v->loop);
  snprintf(h->sni, sizeof(h->sni), "%s", wr_quic_conn_sni(q));
  socklen_t len = 0;
  const struct sockaddr *sa = wr_quic_conn_remote(q, &len);
  wr__visitor_ip_text(sa, h->ip, sizeof(h->ip));
  nghttp3_settings st;
  nghttp3_settings_default(&st);
  st.max_field_section_size = HEAD_MAX;
  st.qpack_max_dtable_capacity = QPACK_TABLE;
  st.qpack_encoder_max_dtable_capacity = QPACK_TABLE;
  st.qpack_blocked_streams = QPACK_BLOCKED;
  if (nghttp3_conn_server_new(&h->h3, callbacks(), &st, NULL, h) != 0) abort();
  nghttp3_conn_set_max_client_streams_bidi(h->h3, wr_quic_peer_streams_max(q));
  WR_LIST_INSERT_HEAD(f->conns, h);
  wr_quic_conn_set_user(q, h);
  vsrc *s = wr__visitor_source_get(v, sa);
  if (v->closing || !wr__visitor_admit(v, s)) {
    conn_fail(h, NGHTTP3_H3_EXCESSIVE_LOAD, "connection refused by the limits");
    return;
  }
  h->src = s;
  h->held = 1;
  wr__visitor_src_hold(v, s);
  v->stats.active_conns++;
  v->stats.conns_accepted++;
  v->stats.h3_conns++;
  v->stats.tls_handshakes++;
}

/* ---- certificates by SNI (net/quic.h sni_pick) ----------------------------------------- */

/* As the TLS front chooses (visitor_tls.c), without waiting: uploaded, else
 * for a routed name, ACME, else issued by the edge CA if it is already in
 * memory. A name whose route is being looked up on the store thread, or
 * whose certificate is being signed on the worker pool (queued first), is
 * asked for again later: the client's Initial is dropped and its
 * retransmission finds the answer. */
static void *pick_cert(void *arg, const char *sni, void **cred, int *later) {
  wr_visitor *v = arg;
  char tid[WR_STORE_UUID_LEN + 1];
  wr_cert *c = NULL;
  *cred = NULL;
  if (!sni[0] || wr__visitor_mgmt_host(v, sni)) return NULL; /* its WebSocket is HTTP/1.1 */
  if (!(c = wr_certs_uploaded(v->certs, sni))) {
    int rv = wr__visitor_route_lookup(v, sni, 1, tid);
    if (rv == WR_AGAIN) {
      *later = 1;
      return NULL;
    }
    if (rv == WR_OK && !(c = wr_certs_acme(v->certs, sni)) &&
        !(c = wr_certs_issued_cached(v->certs, sni)) && wr_certs_prepare(v->certs, sni, 1) == WR_AGAIN) {
      *later = 1;
      return NULL;
    }
  }
  if (!c) {
    v->stats.tls_refused++;
    return NULL;
  }
  *cred = wr_tls_creds_native(wr_cert_creds(c));
  return c;
}

static void release_cert(void *arg, void *ref) {
  (void)arg;
  wr_cert_release(ref);
}

int wr__vh3_listen(wr_visitor *v, const struct sockaddr *addr) {
  char err[256] = "";
  vh3front *f = wr_xcalloc(1, sizeof(*f));
  wr_quic_config cfg = {.alpn = ALPN,
                        .idle_timeout_ms = v->proxy_idle_ms,
                        .handshake_timeout_ms = v->header_timeout_ms,
                        .keepalive_ms = 0,
                        .stream_window = STREAM_WINDOW,
                        .max_stream_window = STREAM_WINDOW,
                        .conn_window = CONN_WINDOW,
                        .max_conn_window = 4 * CONN_WINDOW,
                        .max_streams_bidi = MAX_STREAMS,
                        .max_streams_uni = MAX_UNI,
                        .sni_pick = pick_cert,
                        .sni_release = release_cert,
                        .sni_arg = v};
  int rv = wr_quic_tls_new(WR_QUIC_SERVER, &cfg, &f->tls, err, sizeof(err));
  if (rv != WR_OK) {
    wr_warn("HTTP/3: %s", err);
    free(f);
    return rv;
  }
  v->h3 = f;
  rv = wr_quic_endpoint_server(v->loop, f->tls, &cfg, addr, &qcbs, q_accept, v, &f->ep);
  if (rv != WR_OK) {
    wr_quic_tls_free(f->tls);
    free(f);
    v->h3 = NULL;
    return rv;
  }
  struct sockaddr_storage ss;
  if (wr_quic_endpoint_addr(f->ep, &ss) == WR_OK)
    v->h3_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                               : ((struct sockaddr_in6 *)&ss)->sin6_port);
  return WR_OK;
}

static void reaped_cb(uv_handle_t *t) {
  vh3front *f = t->data;
  wr_quic_tls_free(f->tls);
  free(f);
}

static void reap_cb(uv_timer_t *t) { uv_close((uv_handle_t *)t, reaped_cb); }

void wr__vh3_close(wr_visitor *v) {
  vh3front *f = v->h3;
  if (!f) return;
  v->h3 = NULL;
  v->h3_port = 0;
  /* The endpoint frees its connections without callbacks: ours go first. */
  while (f->conns) conn_free(f, f->conns);
  wr_quic_endpoint_free(f->ep);
  /* The endpoint frees its connections (and their TLS sessions) in libuv
   * close callbacks of this loop iteration; the shared credentials go on
   * the next one. */
  uv_timer_init(v->loop, &f->reaper);
  f->reaper.data = f;
  uv_timer_start(&f->reaper, reap_cb, 0, 0);
}
