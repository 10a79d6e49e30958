/* HTTP/2 on the HTTPS visitor front (visitor_int.h): an nghttp2 server
 * session on a connection whose TLS handshake chose ALPN h2.
 *
 *   TLS plaintext ──mem_recv──> session ──HEADERS──> stream vconn (sub)
 *                                        ──DATA────> its input
 *   stream vconn output (HTTP/1.1 head + raw body) ──> HEADERS + DATA
 *
 * Each request runs on a stream vconn: the request is rebuilt as an
 * HTTP/1.1 head (pseudo-headers into the request line and Host, cookies
 * joined, "Transfer-Encoding: chunked" when the length is unknown) and
 * goes through exactly the machinery of an HTTP/1.1 request: the rate
 * limit, the Access gate, 421 on a Host that is not the SNI, routing, the
 * ConnectRequest with X-Forwarded-For / Cf-Connecting-IP, the inspector,
 * the counters and the edge's own pages. Its output, an HTTP/1.1 response
 * head and the body unframed (visitor_proxy.c never chunks for a stream
 * vconn), is parsed back into HEADERS and DATA here.
 *
 * Flow control ties the two sides together without buffering a body:
 * request DATA is consumed (WINDOW_UPDATE) only once the stream vconn
 * passed it to the tunnel stream, so the visitor can never have more than
 * one stream window (64 KiB) buffered per stream; response bytes return
 * their tunnel (QUIC) credit only once they left as DATA frames, and no
 * frames are made while the socket's backlog is above OUT_HIGH.
 *
 * Limits, after the 2019 and 2023-2024 HTTP/2 advisories. An abusive
 * connection gets GOAWAY ENHANCE_YOUR_CALM and is closed; every other
 * connection goes on being served:
 *   - at most MAX_STREAMS concurrent streams (SETTINGS; nghttp2 refuses more);
 *   - rapid reset (CVE-2023-44487): RST_STREAM frames from the visitor in a
 *     leaky bucket (RESET_BURST, draining RESET_RATE/s), and a stream the
 *     visitor cancels before its request was processed opens no tunnel
 *     stream at all;
 *   - CONTINUATION floods (CVE-2024-27316 and kin): at most MAX_CONT
 *     CONTINUATION frames per header block;
 *   - SETTINGS / PING / PRIORITY floods and empty DATA / HEADERS /
 *     CONTINUATION frames (CVE-2019-9512, -9515, -9518): leaky buckets;
 *     nghttp2 also ends a session that owes more than MAX_OUTBOUND_ACK
 *     acknowledgements (a peer that does not read) or sends more than
 *     MAX_SETTINGS entries in one SETTINGS frame;
 *   - header lists (and HPACK bombs): a request whose decoded fields pass
 *     HEAD_MAX is answered 431 without keeping them; past HPACK_BOMB the
 *     connection is ended. The dynamic table stays at 4096 bytes.
 * Protocol errors found by nghttp2 end the connection with its GOAWAY.
 *
 * Lifetimes: a vh2s lives from the stream's first HEADERS to nghttp2's
 * on_stream_close; its stream vconn may end earlier (response complete,
 * the rest of the body drains from |out|) or later (closing: the vconn
 * forgets the vh2s first). Nothing is sent from inside a session callback
 * (mem_send runs from wr__vh2_process only), and stream vconns are only
 * kicked from callbacks, never run. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nghttp2/nghttp2.h>

#include "edge/visitor_int.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/h2trailer.h"
#include "proto/h2head.h"

#define MAX_STREAMS 100
#define STREAM_WINDOW 65535u           /* the default: what a stream vconn buffers */
#define CONN_WINDOW (1u << 20)
#define HEAD_MAX WR__VSUB_HEAD_MAX
#define HPACK_BOMB (16u * HEAD_MAX)    /* decoded bytes of one header block */
#define OUT_HIGH (256u * 1024u)        /* unwritten output that holds back frames */
#define MAX_CONT 4                     /* CONTINUATIONs per header block (16 KiB each) */
#define RESET_BURST 500                /* a browser leaving a page cancels a few hundred */
#define RESET_RATE 100
#define CTRL_BURST 500                 /* SETTINGS, PING, PRIORITY */
#define CTRL_RATE 50
#define EMPTY_BURST 100                /* DATA / HEADERS / CONTINUATION without payload */
#define EMPTY_RATE 10
#define MAX_OUTBOUND_ACK 100
#define MAX_SETTINGS 32

/* A leaky bucket: |level| in thousandths of an event, draining |rate| a
 * second; over |burst| events it overflows. */
typedef struct bucket {
  uint64_t level, stamp;
} bucket;

typedef struct vh2s vh2s;

typedef struct vh2 {
  nghttp2_session *s;
  vconn *c;
  vh2s *streams;
  size_t nstreams;
  bucket resets, ctrl, empty;
  size_t cont;        /* CONTINUATIONs in the current header block */
  int calm;           /* GOAWAY ENHANCE_YOUR_CALM queued: input is dropped */
  int dead;           /* the session failed: nothing more to send */
} vh2;

struct vh2s {
  vh2s *prev, *next;
  vh2 *h;
  int32_t id;
  wr_h2req req;       /* the request while its header block arrives */
  vsub x;             /* the request's stream vconn and response (visitor_sub.c) */
};

static int bucket_hit(bucket *b, uint64_t now, uint64_t burst, uint64_t rate) {
  uint64_t drained = (now - b->stamp) * rate;
  b->level = b->level > drained ? b->level - drained : 0;
  b->stamp = now;
  b->level += 1000;
  return b->level > burst * 1000;
}

/* Ends an abusive connection: GOAWAY ENHANCE_YOUR_CALM, input dropped. */
static void calm(vh2 *h, const char *why) {
  if (h->calm) return;
  h->calm = 1;
  wr_info("visitor %" PRIu64 " (%s): HTTP/2 %s: GOAWAY ENHANCE_YOUR_CALM", h->c->id, h->c->ip, why);
  nghttp2_session_terminate_session(h->s, NGHTTP2_ENHANCE_YOUR_CALM);
}

static void kick_conn(vh2 *h) { wr__vconn_kick(h->c); }

/* ---- streams ------------------------------------------------------------------------- */

static const vsub_ops h2_ops;

static vh2s *stream_new(vh2 *h, int32_t id) {
  vh2s *x = wr_xcalloc(1, sizeof(*x));
  x->h = h;
  x->id = id;
  wr_h2req_init(&x->req, HEAD_MAX);
  wr__vsub_init(&x->x, &h2_ops, x);
  WR_LIST_INSERT_HEAD(h->streams, x);
  h->nstreams++;
  return x;
}

static void stream_free(vh2 *h, vh2s *x) {
  WR_LIST_REMOVE(h->streams, x);
  h->nstreams--;
  wr_h2req_free(&x->req);
  wr__vsub_free(&x->x); /* an unfinished request: its tunnel stream is reset */
  free(x);
}

static vh2s *stream_of(vh2 *h, int32_t id) {
  return nghttp2_session_get_stream_user_data(h->s, id);
}

/* Answers from here, before any stream vconn exists (431, 400; counted by
 * wr__vsub_start). */
static void respond_bare(vh2 *h, vh2s *x, int status) {
  char st[8];
  snprintf(st, sizeof(st), "%d", status);
  nghttp2_nv nv[2] = {
      {(uint8_t *)":status", (uint8_t *)st, 7, strlen(st), NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)"content-length", (uint8_t *)"0", 14, 1, NGHTTP2_NV_FLAG_NONE},
  };
  nghttp2_submit_response(h->s, x->id, nv, 2, NULL);
}

/* ---- request: header block -> stream vconn (visitor_sub.c) ------------------------- */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  vh2 *h = ud;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  vh2s *x = stream_new(h, f->hd.stream_id);
  nghttp2_session_set_stream_user_data(s, f->hd.stream_id, x);
  return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud) {
  vh2 *h = ud;
  (void)flags;
  vh2s *x = stream_of(h, f->hd.stream_id);
  if (!x || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0; /* trailers are dropped */
  wr_h2req_field(&x->req, name, nl, value, vl);
  if (x->req.size > HPACK_BOMB) {
    calm(h, "header block decodes past its limit (HPACK bomb)");
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  return 0;
}

static void stream_start(vh2 *h, vh2s *x, int eos) {
  if (h->calm) return; /* ending: nothing new starts */
  vconn *c = h->c;
  c->v->stats.h2_streams++;
  vsub_parent p = {.id = c->id, .ip = c->ip, .sni = c->sni, .src = c->src, .retry_at = c->retry_at};
  int status = wr__vsub_start(&x->x, c->v, &p, &x->req, eos, STREAM_WINDOW);
  if (status) respond_bare(h, x, status);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  vh2 *h = ud;
  (void)s;
  vh2s *x = f->hd.stream_id ? stream_of(h, f->hd.stream_id) : NULL;
  int eos = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (f->hd.type) {
    case NGHTTP2_HEADERS:
      if (!x) break;
      if (f->headers.cat == NGHTTP2_HCAT_REQUEST)
        stream_start(h, x, eos);
      else if (eos)
        wr__vsub_input_end(&x->x);
      break;
    case NGHTTP2_DATA:
      if (x && eos) wr__vsub_input_end(&x->x);
      break;
    default:
      break;
  }
  return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud) {
  vh2 *h = ud;
  (void)flags;
  vh2s *x = stream_of(h, id);
  if (!x) {
    nghttp2_session_consume(s, id, len); /* nobody takes these bytes */
    return 0;
  }
  wr__vsub_input(&x->x, data, len);
  return 0;
}

/* Counts the frames the advisories abuse, before their payload is read. */
static int on_begin_frame(nghttp2_session *s, const nghttp2_frame_hd *hd, void *ud) {
  vh2 *h = ud;
  (void)s;
  uint64_t now = uv_now(h->c->v->loop);
  int empty = hd->length == 0 && !(hd->flags & (NGHTTP2_FLAG_END_STREAM | NGHTTP2_FLAG_END_HEADERS));
  switch (hd->type) {
    case NGHTTP2_HEADERS:
      h->cont = 0;
      break;
    case NGHTTP2_CONTINUATION:
      if (++h->cont > MAX_CONT) calm(h, "CONTINUATION flood");
      break;
    case NGHTTP2_RST_STREAM:
      if (bucket_hit(&h->resets, now, RESET_BURST, RESET_RATE)) calm(h, "rapid reset (RST_STREAM flood)");
      break;
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PING:
    case NGHTTP2_PRIORITY:
      if (!(hd->flags & NGHTTP2_FLAG_ACK) && bucket_hit(&h->ctrl, now, CTRL_BURST, CTRL_RATE))
        calm(h, "SETTINGS/PING/PRIORITY flood");
      break;
    default:
      break;
  }
  if (empty && (hd->type == NGHTTP2_DATA || hd->type == NGHTTP2_HEADERS ||
                hd->type == NGHTTP2_CONTINUATION) &&
      bucket_hit(&h->empty, now, EMPTY_BURST, EMPTY_RATE))
    calm(h, "empty frame flood");
  return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud) {
  vh2 *h = ud;
  (void)code;
  vh2s *x = stream_of(h, id);
  if (!x) return 0;
  nghttp2_session_set_stream_user_data(s, id, NULL);
  stream_free(h, x); /* an unfinished request: its tunnel stream is reset */
  return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  vh2 *h = ud;
  if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR) {
    /* Counted as sent: ours and the ones nghttp2 makes for protocol errors. */
    if (f->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM)
      h->c->v->stats.h2_goaway_calm++;
    else
      h->c->v->stats.h2_goaway_error++;
  }
  /* Our response ended while the visitor still sends its body: RFC 9113
   * 8.1 says stop it with NO_ERROR rather than keep the stream open. */
  if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
      (f->hd.flags & NGHTTP2_FLAG_END_STREAM) && f->hd.stream_id &&
      nghttp2_session_get_stream_remote_close(s, f->hd.stream_id) == 0)
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
  return 0;
}

/* ---- response: the stream vconn's HTTP/1.1 output -> HEADERS + DATA ----------------- */

static ssize_t data_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud) {
  vh2s *x = src->ptr;
  (void)id;
  (void)ud;
  size_t have = wr__vsub_pending(&x->x);
  size_t n = wr__vsub_take(&x->x, buf, len);
  if (n == have && x->x.done) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (x->x.trl.n && wr_h2_submit_trailer(s, x->id, &x->x.trl) == 0)
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    return (ssize_t)n;
  }
  return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
}

/* The response head at the front of |out|: HEADERS (1xx ones too).
 * Returns 1 when submitted, 0 to wait for more, -1 for a head that cannot
 * be forwarded. */
static int submit_head(vh2s *x) {
  wr_h2resp rh; /* about 80 KiB: on the loop thread's stack */
  nghttp2_nv nv[WR_H2RESP_MAX_FIELDS + 1];
  size_t used = 0, n = 0;
  int rv = wr__vsub_head(&x->x, &rh, &used);
  if (rv <= 0) return rv;
  nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)rh.status_text, 7,
                         strlen(rh.status_text), NGHTTP2_NV_FLAG_NONE};
  for (size_t i = 0; i < rh.nfields; i++)
    nv[n++] = (nghttp2_nv){(uint8_t *)rh.fields[i].name, (uint8_t *)rh.fields[i].value,
                           rh.fields[i].name_len, rh.fields[i].value_len, NGHTTP2_NV_FLAG_NONE};
  if (rh.status < 200) {
    rv = nghttp2_submit_headers(x->h->s, NGHTTP2_FLAG_NONE, x->id, NULL, nv, n, NULL);
  } else {
    /* Complete without body or trailers: END_STREAM on the HEADERS. */
    nghttp2_data_provider dp = {.source.ptr = x, .read_callback = data_read};
    rv = nghttp2_submit_response(x->h->s, x->id, nv, n, wr__vsub_bare(&x->x, used) ? NULL : &dp);
    x->x.head_sent = 1;
  }
  x->x.out_off += used;
  return rv == 0 ? 1 : -1;
}

/* Submits what |out| holds: the head once complete, then lets DATA go. */
static void h2_pump(vsub *sx) {
  vh2s *x = sx->owner;
  vh2 *h = x->h;
  while (!sx->head_sent) {
    int rv = submit_head(x);
    if (rv == 0) return;
    if (rv < 0) {
      wr_debug("visitor %" PRIu64 ": HTTP/2 stream %d: response head not forwardable", h->c->id, x->id);
      nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, x->id, NGHTTP2_INTERNAL_ERROR);
      sx->head_sent = sx->done = 1;
      wr__vsub_drop_sc(sx);
      kick_conn(h);
      return;
    }
  }
  nghttp2_session_resume_data(h->s, x->id);
  kick_conn(h);
}

static void h2_consume(vsub *sx, uint64_t n) {
  vh2s *x = sx->owner;
  nghttp2_session_consume(x->h->s, x->id, (size_t)n);
  kick_conn(x->h); /* WINDOW_UPDATE */
}

static void h2_closed(vsub *sx, int reset) {
  vh2s *x = sx->owner;
  if (reset) {
    sx->done = 1;
    nghttp2_submit_rst_stream(x->h->s, NGHTTP2_FLAG_NONE, x->id, NGHTTP2_INTERNAL_ERROR);
  }
  kick_conn(x->h);
}

static const vsub_ops h2_ops = {"HTTP/2", h2_pump, h2_consume, h2_closed};

/* ---- the connection ------------------------------------------------------------------ */

static nghttp2_session_callbacks *callbacks(void) {
  static nghttp2_session_callbacks *cbs;
  if (cbs) return cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0) abort();
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  return cbs;
}

static nghttp2_option *options(void) {
  static nghttp2_option *opt;
  if (opt) return opt;
  if (nghttp2_option_new(&opt) != 0) abort();
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_outbound_ack(opt, MAX_OUTBOUND_ACK);
  nghttp2_option_set_max_settings(opt, MAX_SETTINGS);
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
  /* nghttp2's own rapid-reset and CONTINUATION guards stay as a backstop
   * behind ours (which answer ENHANCE_YOUR_CALM first). */
  nghttp2_option_set_stream_reset_rate_limit(opt, 2 * RESET_BURST, 2 * RESET_RATE);
  nghttp2_option_set_max_continuations(opt, 2 * MAX_CONT);
  return opt;
}

void wr__vh2_start(vconn *c) {
  vh2 *h = wr_xcalloc(1, sizeof(*h));
  h->c = c;
  h->resets.stamp = h->ctrl.stamp = h->empty.stamp = uv_now(c->v->loop);
  if (nghttp2_session_server_new2(&h->s, callbacks(), h, options()) != 0) abort();
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, HEAD_MAX},
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}, /* WebSocket over HTTP/2 */
  };
  nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
  nghttp2_session_set_local_window_size(h->s, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
  c->h2 = h;
  c->state = VC_H2;
  c->v->stats.h2_conns++;
}

static size_t backlog(vconn *c) {
  return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + (c->pend ? c->pend->len : 0);
}

int wr__vh2_want_read(vconn *c) {
  vh2 *h = c->h2;
  return h && !h->calm && !h->dead && nghttp2_session_want_read(h->s) && backlog(c) < OUT_HIGH;
}

/* Frames for the visitor, as long as the socket keeps up. */
static void output(vh2 *h) {
  vconn *c = h->c;
  /* A failed write closes |c| and frees |h|: |c| is checked first. */
  while (!c->closed && !h->dead && backlog(c) < OUT_HIGH) {
    const uint8_t *p;
    ssize_t n = nghttp2_session_mem_send(h->s, &p);
    if (n < 0) {
      wr_debug("visitor %" PRIu64 " (%s): HTTP/2 send: %s", c->id, c->ip, nghttp2_strerror((int)n));
      h->dead = 1;
      break;
    }
    if (n == 0) break;
    wr__vconn_write(c, p, (size_t)n, 0);
  }
}

/* Input that broke the session: a last GOAWAY if it can still be made. */
static void recv_failed(vh2 *h, int err) {
  vconn *c = h->c;
  wr_debug("visitor %" PRIu64 " (%s): HTTP/2: %s", c->id, c->ip, nghttp2_strerror(err));
  if (err == NGHTTP2_ERR_FLOODED || err == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
    calm(h, nghttp2_strerror(err));
  } else if (!h->calm) {
    nghttp2_session_terminate_session(h->s, err == NGHTTP2_ERR_BAD_CLIENT_MAGIC
                                                 ? NGHTTP2_PROTOCOL_ERROR
                                                 : NGHTTP2_INTERNAL_ERROR);
  }
  h->calm = 1; /* nothing more is read */
}

static void arm_idle(vh2 *h) {
  vconn *c = h->c;
  if (h->nstreams == 0) {
    if (c->tmode != T_IDLE) wr__vconn_arm(c, T_IDLE, c->v->idle_timeout_ms);
    wr__visitor_idle_enter(c); /* may be closed to make room, as idle HTTP/1.1 is */
    return;
  }
  wr__visitor_idle_leave(c);
  if (c->tmode == T_IDLE) { /* a live stream is never cut by the idle timer */
    uv_timer_stop(&c->timer);
    c->tmode = T_NONE;
  }
}

void wr__vh2_process(vconn *c) {
  vh2 *h = c->h2;
  if (!h) return;
  if (h->calm || h->dead) {
    wr_buf_reset(&c->in);
  } else if (c->in.len) {
    ssize_t n = nghttp2_session_mem_recv(h->s, c->in.data, c->in.len);
    if (n < 0) {
      recv_failed(h, (int)n);
      wr_buf_reset(&c->in);
    } else {
      wr_buf_consume(&c->in, (size_t)n);
    }
  }
  output(h);
  if (c->closed) return;
  /* Over: GOAWAY sent (ours or after the visitor's) and nothing left to
   * send, or the session failed. Then close_notify and FIN. */
  int want_write = !h->dead && nghttp2_session_want_write(h->s);
  if (h->dead || (!want_write && (h->calm || !nghttp2_session_want_read(h->s)))) {
    wr__vconn_finish(c);
    return;
  }
  arm_idle(h);
}

void wr__vh2_idle(vconn *c) {
  vh2 *h = c->h2;
  nghttp2_session_terminate_session(h->s, NGHTTP2_NO_ERROR);
  h->calm = 1; /* reads nothing more; ends once GOAWAY is out */
  wr__vh2_process(c);
}

void wr__vh2_free(vconn *c) {
  vh2 *h = c->h2;
  if (!h) return;
  c->h2 = NULL;
  while (h->streams) stream_free(h, h->streams);
  nghttp2_session_del(h->s); /* calls no callback that reaches the streams */
  free(h);
}
