/* The connector's data streams; see proxy.h.
 *
 * Objects and owners:
 *   wr_proxy   owns every pstream (list), every origin connection (list,
 *              plus an MRU idle list for the keep-alive pool), the TLS
 *              credentials cache and the idle timer.
 *   pstream    one edge-opened QUIC stream. Created on its first event,
 *              freed when QUIC closes it (on_stream_close) or the whole
 *              QUIC connection goes (on_conn_close). It may own one origin.
 *   origin     one wr_conn to an origin. Owned by its stream while
 *              dialing/active, by the pool while idle. wr_conn_close() is
 *              asynchronous: the origin is freed in its on_close callback,
 *              never inside another of its callbacks (STYLE 2.1 #8).
 * A stream is held (busy count) while one of our functions runs for it, so
 * a QUIC close arriving in the middle only marks it (zombie) and the last
 * holder frees it.
 *
 * Flow control (STYLE 2.1 #9): request body bytes are not consumed (QUIC
 * credit) until the origin socket took them (write queue at or below
 * WR_CONN_LOW_WATER, else on_drain); origin reads pause while the QUIC
 * stream refuses bytes (WR_AGAIN) and resume on on_stream_writable. */
#include "connector/proxy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "connector/hello_world.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/conn.h"
#include "net/tls.h"
#include "proto/connect.h"
#include "proto/http1.h"
#include "proto/httpmeta.h"
#include "proto/preamble.h"

#ifndef WR_VERSION
#define WR_VERSION "DEV"
#endif

/* Bytes buffered before the ConnectRequest decodes (preamble included). */
#define HEAD_MAX (256u * 1024u)
/* Request body bytes held while the origin is not ready. QUIC flow control
 * (the stream window) keeps this far lower; this is the backstop. */
#define HELD_MAX (16u * 1024u * 1024u)
/* Response bytes buffered until the origin's head is complete. */
#define RBUF_MAX (WR_HTTP1_DEFAULT_MAX_HEAD + 256u * 1024u)
/* Stream bytes the QUIC send queue refused (at most about one origin read
 * arrives after reads pause). */
#define OUT_MAX (8u * 1024u * 1024u)
#define ARENA_MAX (1024u * 1024u)
/* Go's MaxIdleConnsPerHost default when keepAliveConnections is 0. */
#define DEFAULT_IDLE_PER_HOST 2

#define UNREACHABLE_PREFIX                                                                   \
  "Unable to reach the origin service. The service may be down or it may not be responding " \
  "to traffic from warren"

#define WARP_DISABLED_MSG                                                                    \
  "warren received a request from WARP client, but your configuration has disabled ingress " \
  "from WARP clients. To enable this, set \"warp-routing:\\n\\t enabled: true\" in your "     \
  "config.yaml"

typedef struct pstream pstream;
typedef struct origin origin;

/* --- origin connections ---------------------------------------------------- */

enum origin_state {
  O_CONNECTING = 0, /* wr_conn_connect in progress; owned by a stream */
  O_ACTIVE,         /* carrying a stream's request; owned by it */
  O_IDLE,           /* in the keep-alive pool */
  O_CLOSING         /* wr_conn_close called; freed by on_close */
};

struct origin {
  wr_proxy *p;
  wr_conn *conn;
  char *key; /* pool key: scheme/host/port or unix path, TLS parameters */
  int state;
  pstream *s;
  int reused;
  int max_idle;
  uint64_t idle_timeout_ms; /* 0: none */
  uint64_t deadline;        /* uv_now() ms when idle ends (0: never) */
  origin *next, *prev;           /* p->origins */
  origin *idle_next, *idle_prev; /* p->idle (MRU first) */
};

typedef struct creds_ent {
  char *ca;
  int no_verify;
  wr_tls_creds *creds;
  struct creds_ent *next;
} creds_ent;

/* --- streams --------------------------------------------------------------- */

/* Stream states; transitions happen in stream_set_state. */
enum stream_state {
  ST_HEAD = 0,  /* reading the preamble and the ConnectRequest */
  ST_DIAL,      /* origin connection being dialed */
  ST_WAIT_RESP, /* request head sent, body streaming, waiting for the response head */
  ST_BODY,      /* ConnectResponse sent, streaming the response body */
  ST_PIPE,      /* websocket after 101: raw bytes both ways */
  ST_DONE       /* our side finished (FIN queued or reset); waiting for QUIC's close */
};

/* How the request body goes to the origin. */
enum req_body {
  RB_NONE = 0, /* no body: stream bytes are consumed and dropped */
  RB_LENGTH,   /* Content-Length: exactly rb_left more bytes */
  RB_CHUNKED,  /* re-chunked towards the origin until the edge's FIN */
  RB_PIPE      /* websocket: raw bytes, once the origin answered 101 */
};

struct pstream {
  wr_proxy *p;
  wr_quic_conn *qc; /* NULL once QUIC forgot the stream */
  int64_t sid;
  pstream *next, *prev;
  int state;
  int busy, zombie;
  /* request */
  wr_buf hbuf; /* preamble + ConnectRequest; |req| strings point here: never
                * appended to after the decode */
  int have_req;
  wr_connect_request req;
  wr_buf arena; /* canonical request header names */
  wr_http_header *hdrs;
  wr_httpmeta_request hm;
  char *target; /* path + query for the request line */
  const wr_ingress_rule *rule;
  int ws;
  int counted; /* in stats.concurrent_requests */
  int piping;  /* in stats.tcp_active */
  /* edge -> origin */
  int rb;
  uint64_t rb_left;
  int rb_done;
  int ready;   /* the request head went to a connected origin */
  int hold;    /* keep body bytes in |held| (websocket before 101) */
  wr_buf held; /* body bytes not yet given to the origin nor consumed */
  size_t credit_owed;
  uint64_t body_sent;
  int edge_fin;
  wr_buf req_head; /* request head as sent, kept for one retry */
  int retried;
  origin *o;
  /* origin -> edge */
  wr_buf rbuf;
  wr_http_header *rh;
  int resp_started;
  int resp_any;
  int body_mode; /* wr_http1_body */
  uint64_t body_left;
  wr_http1_chunked chunked;
  int resp_keepalive;
  int extra;
  wr_buf out; /* bytes the QUIC send queue refused */
  int fin_pending, fin_sent;
  int paused;
};

struct wr_proxy {
  uv_loop_t *loop;
  const wr_ingress *ing;
  char tag[WR_UUID_STR_LEN + 1];
  char *version;
  wr_proxy_stats stats;
  pstream *streams;
  size_t nstreams;
  origin *origins;
  origin *idle;
  creds_ent *creds;
  uv_timer_t timer;
  size_t handles; /* the timer + every origin not yet freed */
  int dying;
};

static void stream_set_state(pstream *s, int st);
static void stream_flush(pstream *s);
static void origin_ready(pstream *s);
static void origin_detach(pstream *s, int reuse);
static void body_input(pstream *s, const uint8_t *data, size_t len, int fin);
static void resp_body(pstream *s, const uint8_t *data, size_t len);
static int dial_origin(pstream *s, int allow_pool);
static void proxy_handle_done(wr_proxy *p);

/* --- small helpers ----------------------------------------------------------- */

static int name_is(const wr_http_header *h, const char *name) {
  size_t n = strlen(name);
  return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

static int status_class(int status) {
  return status >= 100 && status < 600 ? status / 100 : 0;
}

/* Go's httpguts.ValidHeaderFieldValue: no control bytes but HTAB. */
static int valid_value(const char *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
  }
  return 1;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Splits |dest| (cloudflared's URL, normally absolute; a relative "/p"
 * works too) as Go's url.Parse + RequestURI: |target| is path and query for
 * the request line, |path| the %-decoded path ingress rules match. The
 * URL's scheme and host are not used: the origin's replace them (and with
 * no HttpHost, Go sends the origin's host). Returns WR_OK or WR_ERR_PROTO
 * for a bad %-escape (url.Parse fails: the stream is reset). */
static int parse_dest(const char *d, size_t len, char **target, char **path) {
  size_t i = 0, p0, q0, end;
  const char *hash = memchr(d, '#', len);
  char *t, *m;
  size_t ti = 0, mi = 0;
  if (hash) len = (size_t)(hash - d);
  /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
  if (len && ((d[0] >= 'a' && d[0] <= 'z') || (d[0] >= 'A' && d[0] <= 'Z'))) {
    size_t j = 1;
    while (j < len && (((d[j] | 0x20) >= 'a' && (d[j] | 0x20) <= 'z') ||
                       (d[j] >= '0' && d[j] <= '9') || d[j] == '+' || d[j] == '-' ||
                       d[j] == '.'))
      j++;
    if (len - j >= 3 && d[j] == ':' && d[j + 1] == '/' && d[j + 2] == '/') {
      i = j + 3;
      while (i < len && d[i] != '/' && d[i] != '?') i++;
    }
  }
  p0 = i;
  q0 = p0;
  while (q0 < len && d[q0] != '?') q0++;
  end = len;
  /* Go writes URL.RequestURI(): the path re-escaped (spaces, controls and
   * non-ASCII bytes as %XX), the query as sent. SP/CTL/DEL are escaped in
   * the query too so the request line stays valid. */
  t = wr_xmalloc(3 * (end - p0) + 2);
  if (q0 == p0 || d[p0] != '/') t[ti++] = '/';
  for (i = p0; i < end; i++) {
    unsigned char ch = (unsigned char)d[i];
    if (ch <= 0x20 || ch == 0x7f || (ch >= 0x80 && i < q0)) {
      static const char hex[] = "0123456789ABCDEF";
      t[ti++] = '%';
      t[ti++] = hex[ch >> 4];
      t[ti++] = hex[ch & 15];
    } else {
      t[ti++] = (char)ch;
    }
  }
  t[ti] = '\0';
  m = wr_xmalloc((q0 - p0) + 1);
  for (i = p0; i < q0; i++) {
    if (d[i] == '%') {
      int hi = i + 2 < q0 ? hexval((unsigned char)d[i + 1]) : -1;
      int lo = i + 2 < q0 ? hexval((unsigned char)d[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        free(t);
        free(m);
        return WR_ERR_PROTO;
      }
      m[mi++] = (char)(hi << 4 | lo);
      i += 2;
    } else {
      m[mi++] = d[i];
    }
  }
  m[mi] = '\0';
  *target = t;
  *path = m;
  return WR_OK;
}

/* --- stream lifetime --------------------------------------------------------- */

static void stream_free(pstream *s) {
  if (s->have_req) wr_connect_request_free(NULL, &s->req);
  wr_buf_free(&s->hbuf);
  wr_buf_free(&s->arena);
  wr_buf_free(&s->held);
  wr_buf_free(&s->req_head);
  wr_buf_free(&s->rbuf);
  wr_buf_free(&s->out);
  free(s->hdrs);
  free(s->rh);
  free(s->target);
  free(s);
}

static void hold(pstream *s) { s->busy++; }

static void unhold(pstream *s) {
  if (--s->busy == 0 && s->zombie) stream_free(s);
}

static void request_end(pstream *s) {
  if (s->counted) {
    s->counted = 0;
    s->p->stats.concurrent_requests--;
  }
  if (s->piping) {
    s->piping = 0;
    s->p->stats.tcp_active--;
  }
}

/* QUIC is done with the stream (or the proxy goes): drop the origin, unlink,
 * free now or when the last holder returns. No QUIC call after this. */
static void stream_release(pstream *s) {
  wr_proxy *p = s->p;
  s->qc = NULL;
  if (s->o) origin_detach(s, 0);
  request_end(s);
  s->state = ST_DONE;
  if (s->prev)
    s->prev->next = s->next;
  else
    p->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = NULL;
  p->nstreams--;
  if (s->busy)
    s->zombie = 1;
  else
    stream_free(s);
}

static pstream *stream_new(wr_proxy *p, wr_quic_conn *c, int64_t sid) {
  pstream *s = wr_xcalloc(1, sizeof(*s));
  s->p = p;
  s->qc = c;
  s->sid = sid;
  wr_buf_init(&s->hbuf, HEAD_MAX, NULL);
  wr_buf_init(&s->arena, ARENA_MAX, NULL);
  wr_buf_init(&s->held, HELD_MAX, NULL);
  wr_buf_init(&s->req_head, ARENA_MAX, NULL);
  wr_buf_init(&s->rbuf, RBUF_MAX, NULL);
  wr_buf_init(&s->out, OUT_MAX, NULL);
  s->next = p->streams;
  if (p->streams) p->streams->prev = s;
  p->streams = s;
  p->nstreams++;
  return s;
}

/* The one place stream states change. */
static void stream_set_state(pstream *s, int st) {
  if (s->state == st) return;
  if (st == ST_PIPE && !s->piping) {
    s->piping = 1;
    s->p->stats.tcp_active++;
    s->p->stats.tcp_total++;
  }
  if (st == ST_DONE) request_end(s);
  s->state = st;
}

/* --- QUIC side ----------------------------------------------------------------- */

static void q_consume(pstream *s, size_t n) {
  if (s->qc && n) wr_quic_stream_consume(s->qc, s->sid, n);
}

static void q_stop_sending(pstream *s) {
  if (s->qc && !s->edge_fin) wr_quic_stream_stop_sending(s->qc, s->sid, 0);
  s->edge_fin = 1;
}

/* Drops body bytes that will never reach the origin and returns their
 * credit. */
static void drop_held(pstream *s) {
  q_consume(s, s->held.len);
  wr_buf_reset(&s->held);
}

/* Ends our side with RESET_STREAM(0) (and STOP_SENDING(0) on the read side):
 * undecodable requests, and failures after the response started. */
static void stream_reset(pstream *s) {
  if (s->qc && !s->fin_sent) wr_quic_stream_reset(s->qc, s->sid, 0);
  q_stop_sending(s);
  s->fin_sent = 1;
  s->fin_pending = 0;
  wr_buf_reset(&s->out);
  drop_held(s);
  if (s->o) origin_detach(s, 0);
  stream_set_state(s, ST_DONE);
}

/* The stream cannot take our bytes any more (the edge stopped it). */
static void stream_broken(pstream *s) {
  s->fin_sent = 1;
  s->fin_pending = 0;
  wr_buf_reset(&s->out);
  if (s->o) origin_detach(s, 0);
  q_stop_sending(s);
  drop_held(s);
  stream_set_state(s, ST_DONE);
}

static void origin_pause(pstream *s) {
  if (s->o && !s->paused) {
    s->paused = 1;
    wr_conn_read_stop(s->o->conn);
  }
}

static void origin_resume(pstream *s) {
  if (s->paused) {
    s->paused = 0;
    if (s->o) wr_conn_read_start(s->o->conn);
  }
}

/* Queues |len| bytes on the stream; what the QUIC send queue refuses waits
 * in s->out and origin reads pause. */
static void emit(pstream *s, const uint8_t *data, size_t len) {
  size_t acc = 0;
  int rv;
  if (!s->qc || s->fin_sent || len == 0) return;
  if (s->out.len == 0) {
    rv = wr_quic_stream_write(s->qc, s->sid, data, len, 0, &acc);
    if (rv != WR_OK && rv != WR_AGAIN) {
      stream_broken(s);
      return;
    }
  }
  if (acc < len) {
    if (wr_buf_append(&s->out, data + acc, len - acc) != WR_OK) {
      stream_reset(s);
      return;
    }
    origin_pause(s);
  }
}

/* FIN after everything queued. */
static void finish(pstream *s) {
  size_t acc;
  if (!s->qc || s->fin_sent) return;
  if (s->out.len) {
    s->fin_pending = 1;
    return;
  }
  if (wr_quic_stream_write(s->qc, s->sid, NULL, 0, 1, &acc) != WR_OK) {
    stream_broken(s);
    return;
  }
  s->fin_sent = 1;
}

static void stream_flush(pstream *s) {
  size_t acc = 0;
  int rv;
  if (!s->qc || s->fin_sent) return;
  if (s->out.len) {
    rv = wr_quic_stream_write(s->qc, s->sid, s->out.data, s->out.len, s->fin_pending, &acc);
    if (rv != WR_OK && rv != WR_AGAIN) {
      stream_broken(s);
      return;
    }
    wr_buf_consume(&s->out, acc);
    if (s->out.len) return;
    if (s->fin_pending) {
      s->fin_pending = 0;
      s->fin_sent = 1;
    }
  } else if (s->fin_pending) {
    s->fin_pending = 0;
    finish(s);
  }
  if (s->state == ST_BODY || s->state == ST_PIPE) origin_resume(s);
}

/* Writes preamble + ConnectResponse in one stream write (protocol.md 4.1). */
static int send_connect_response(pstream *s, const wr_connect_response *r) {
  wr_buf b;
  uint8_t pre[WR_PREAMBLE_DATA_LEN];
  int rv;
  wr_buf_init(&b, ARENA_MAX, NULL);
  if (wr_preamble_write(WR_PREAMBLE_DATA, pre, sizeof(pre)) != WR_PREAMBLE_DATA_LEN ||
      (rv = wr_buf_append(&b, pre, sizeof(pre))) != WR_OK ||
      (rv = wr_connect_response_encode(r, NULL, &b)) != WR_OK) {
    wr_buf_free(&b);
    return WR_ERR_INTERNAL;
  }
  s->resp_started = 1;
  emit(s, b.data, b.len);
  wr_buf_free(&b);
  return WR_OK;
}

/* Failure before the response: ConnectResponse{error, metadata null}, FIN
 * (cloudflared 2023.7.3). After the response started: RESET_STREAM(0). */
static void respond_error(pstream *s, const char *msg) {
  wr_connect_response r;
  s->p->stats.request_errors++;
  if (s->state != ST_HEAD || s->have_req)
    wr_error("Request failed error=\"%s\" dest=%.*s%s%s", msg,
             s->have_req ? (int)s->req.dest_len : 0, s->have_req ? s->req.dest : "",
             s->rule ? " originService=" : "", s->rule ? s->rule->service.display : "");
  if (s->o) origin_detach(s, 0);
  if (s->resp_started) {
    stream_reset(s);
    return;
  }
  memset(&r, 0, sizeof(r));
  r.error = msg;
  r.error_len = strlen(msg);
  r.has_meta = 0;
  if (send_connect_response(s, &r) != WR_OK) {
    stream_reset(s);
    return;
  }
  finish(s);
  q_stop_sending(s);
  drop_held(s);
  stream_set_state(s, ST_DONE);
}

static void respond_errorf(pstream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void respond_errorf(pstream *s, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  respond_error(s, msg);
}

/* A response produced here (http_status, hello_world). */
static void respond_local(pstream *s, int status, const wr_http_header *hs, size_t n,
                          const uint8_t *body, size_t blen) {
  wr_buf arena;
  wr_meta *meta = wr_xcalloc(n + 1, sizeof(*meta));
  wr_connect_response r;
  int m;
  wr_buf_init(&arena, ARENA_MAX, NULL);
  m = wr_httpmeta_resp_encode(status, hs, n, &arena, meta, n + 1);
  if (m < 0) {
    free(meta);
    wr_buf_free(&arena);
    respond_errorf(s, "invalid response: %s", wr_strerror(m));
    return;
  }
  memset(&r, 0, sizeof(r));
  r.error = "";
  r.has_meta = 1;
  r.meta = meta;
  r.nmeta = (size_t)m;
  s->p->stats.responses_by_code[status_class(status)]++;
  if (send_connect_response(s, &r) != WR_OK) {
    free(meta);
    wr_buf_free(&arena);
    stream_reset(s);
    return;
  }
  free(meta);
  wr_buf_free(&arena);
  emit(s, body, blen);
  finish(s);
  q_stop_sending(s);
  drop_held(s);
  stream_set_state(s, ST_DONE);
}

static void serve_hello(pstream *s) {
  wr_buf page;
  wr_hello_request hr;
  wr_http_header hs[3];
  char clen[24], date[64];
  time_t now = time(NULL);
  struct tm tm;
  int head = s->hm.method_len == 4 && memcmp(s->hm.method, "HEAD", 4) == 0;
  wr_buf_init(&page, 4u * 1024u * 1024u, NULL);
  memset(&hr, 0, sizeof(hr));
  hr.method = s->hm.method;
  hr.method_len = s->hm.method_len;
  hr.host = s->hm.host;
  hr.host_len = s->hm.host_len;
  hr.path = s->target;
  hr.path_len = strlen(s->target);
  hr.headers = s->hdrs;
  hr.nheaders = s->hm.nheaders;
  hr.version = s->p->version;
  if (wr_hello_world_page(&hr, &page) != WR_OK) {
    wr_buf_free(&page);
    respond_error(s, "hello_world: request too large to echo");
    return;
  }
  snprintf(clen, sizeof(clen), "%zu", page.len);
  gmtime_r(&now, &tm);
  strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  hs[0] = (wr_http_header){"Content-Type", 12, WR_HELLO_WORLD_CONTENT_TYPE,
                           strlen(WR_HELLO_WORLD_CONTENT_TYPE)};
  hs[1] = (wr_http_header){"Content-Length", 14, clen, strlen(clen)};
  hs[2] = (wr_http_header){"Date", 4, date, strlen(date)};
  respond_local(s, 200, hs, 3, head ? NULL : page.data, head ? 0 : page.len);
  wr_buf_free(&page);
}

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

/* --- origin pool ------------------------------------------------------------------ */

static void idle_unlink(wr_proxy *p, origin *o) {
  if (o->idle_prev)
    o->idle_prev->idle_next = o->idle_next;
  else if (p->idle == o)
    p->idle = o->idle_next;
  if (o->idle_next) o->idle_next->idle_prev = o->idle_prev;
  o->idle_next = o->idle_prev = NULL;
}

static void origin_close(origin *o) {
  if (o->state == O_CLOSING) return;
  if (o->state == O_IDLE) idle_unlink(o->p, o);
  o->state = O_CLOSING;
  o->s = NULL;
  wr_conn_close(o->conn);
}

static void timer_cb(uv_timer_t *t);

static void timer_rearm(wr_proxy *p) {
  uint64_t now = uv_now(p->loop), min = 0;
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
    if (o->deadline && o->deadline <= now) origin_close(o);
  }
  timer_rearm(p);
}

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
  if (n > o->max_idle && last) origin_close(last); /* the least recently used */
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

/* The stream lets go of its origin: back to the pool or closed. */
static void origin_detach(pstream *s, int reuse) {
  origin *o = s->o;
  wr_proxy *p = s->p;
  if (!o) return;
  s->o = NULL;
  s->ready = 0;
  q_consume(s, s->credit_owed);
  s->credit_owed = 0;
  o->s = NULL;
  if (reuse && !p->dying && o->state == O_ACTIVE && o->max_idle > 0) {
    if (s->paused) wr_conn_read_start(o->conn);
    s->paused = 0;
    pool_put(p, o);
  } else {
    s->paused = 0;
    origin_close(o);
  }
}

/* --- origin callbacks ------------------------------------------------------------- */

static void maybe_return_credit(pstream *s) {
  if (s->credit_owed && s->o && wr_conn_write_queued(s->o->conn) <= WR_CONN_LOW_WATER) {
    q_consume(s, s->credit_owed);
    s->credit_owed = 0;
  }
}

/* Gives request bytes to the origin. Returns WR_OK or an error (the stream
 * was answered / reset). */
static int origin_write(pstream *s, const void *data, size_t len) {
  if (!s->o) return WR_ERR_INVAL;
  if (wr_conn_write(s->o->conn, data, len) != WR_OK) {
    respond_errorf(s, UNREACHABLE_PREFIX ": write: broken pipe");
    return WR_ERR_IO;
  }
  return WR_OK;
}

static int retryable(pstream *s) {
  static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "TRACE"};
  if (!s->o || !s->o->reused || s->resp_any || s->retried) return 0;
  if (s->rb != RB_NONE && !(s->rb == RB_PIPE && s->hold)) return 0;
  for (size_t i = 0; i < 4; i++)
    if (s->hm.method_len == strlen(idem[i]) && memcmp(s->hm.method, idem[i], s->hm.method_len) == 0)
      return 1;
  return 0;
}

/* The origin failed before its response head (EOF, reset, bad head). A
 * pooled connection the origin closed while idle is retried once on a
 * fresh one, as Go's transport does for replayable requests. */
static void fail_before_response(pstream *s, const char *why) {
  if (retryable(s)) {
    origin_detach(s, 0);
    s->retried = 1;
    wr_buf_reset(&s->rbuf);
    stream_set_state(s, ST_DIAL);
    dial_origin(s, 0); /* on failure it answered the stream */
    return;
  }
  respond_errorf(s, UNREACHABLE_PREFIX ": %s", why);
}

static void response_done(pstream *s) {
  int reuse = s->resp_keepalive && !s->extra && !s->ws &&
              (s->rb == RB_NONE || s->rb_done) && s->held.len == 0;
  finish(s);
  q_stop_sending(s);
  drop_held(s);
  origin_detach(s, reuse);
  stream_set_state(s, ST_DONE);
}

/* The origin's response head: ConnectResponse{HttpStatus, HttpHeader:*}. */
static void send_response_head(pstream *s, const wr_http1_head *h) {
  wr_http_header *hs = wr_xcalloc(h->nheaders + 1, sizeof(*hs));
  wr_meta *meta = wr_xcalloc(h->nheaders + 2, sizeof(*meta));
  wr_buf arena;
  wr_connect_response r;
  size_t n = 0;
  int m;
  for (size_t i = 0; i < h->nheaders; i++) {
    if (name_is(&h->headers[i], "Transfer-Encoding")) continue;
    if (h->body == WR_HTTP1_BODY_CHUNKED && name_is(&h->headers[i], "Content-Length")) continue;
    hs[n++] = h->headers[i];
  }
  wr_buf_init(&arena, ARENA_MAX, NULL);
  m = wr_httpmeta_resp_encode(h->status, hs, n, &arena, meta, n + 1);
  free(hs);
  if (m < 0) {
    free(meta);
    wr_buf_free(&arena);
    respond_errorf(s, UNREACHABLE_PREFIX ": malformed HTTP response");
    return;
  }
  memset(&r, 0, sizeof(r));
  r.error = "";
  r.has_meta = 1;
  r.meta = meta;
  r.nmeta = (size_t)m;
  s->p->stats.responses_by_code[status_class(h->status)]++;
  if (send_connect_response(s, &r) != WR_OK) stream_reset(s);
  free(meta);
  wr_buf_free(&arena);
}

static void on_response_head(pstream *s, const wr_http1_head *h) {
  wr_buf_reset(&s->req_head);
  send_response_head(s, h);
  if (s->state == ST_DONE) return;
  if (h->status == 101) {
    /* Switching protocols: from now on a raw byte pipe both ways. */
    stream_set_state(s, ST_PIPE);
    s->rb = RB_PIPE;
    s->hold = 0;
    s->resp_keepalive = 0;
    if (s->held.len) {
      size_t n = s->held.len;
      if (origin_write(s, s->held.data, n) != WR_OK) return;
      s->credit_owed += n;
      wr_buf_reset(&s->held);
      maybe_return_credit(s);
    }
    if (s->edge_fin && s->state == ST_PIPE) {
      /* The edge already ended: first EOF ends both. */
      wr_conn_shutdown(s->o->conn);
      finish(s);
      stream_set_state(s, ST_DONE);
    }
    return;
  }
  if (s->ws) {
    /* A websocket request answered without 101: pass it on like http. */
    s->rb = RB_NONE;
    s->hold = 0;
    drop_held(s);
  }
  stream_set_state(s, ST_BODY);
  s->body_mode = h->body;
  s->body_left = h->content_length;
  s->resp_keepalive = h->keep_alive;
  wr_http1_chunked_init(&s->chunked);
  if (h->body == WR_HTTP1_BODY_NONE || (h->body == WR_HTTP1_BODY_LENGTH && h->content_length == 0))
    response_done(s);
}

/* Response bytes while waiting for the head. */
static void resp_head_input(pstream *s, const uint8_t *data, size_t len) {
  wr_http1_head h;
  size_t consumed, from = s->rbuf.len > 3 ? s->rbuf.len - 3 : 0;
  int rv;
  if (wr_buf_append(&s->rbuf, data, len) != WR_OK) {
    fail_before_response(s, "net/http: server response headers exceeded the limit; aborted");
    return;
  }
  /* The parser starts over on every call: wait for the blank line (or for
   * more than a head may hold) so an origin dribbling bytes costs linear
   * time, not quadratic. */
  if (s->rbuf.len <= WR_HTTP1_DEFAULT_MAX_HEAD &&
      !memmem(s->rbuf.data + from, s->rbuf.len - from, "\r\n\r\n", 4))
    return;
  for (;;) {
    if (!s->rh) s->rh = wr_xcalloc(WR_HTTP1_DEFAULT_MAX_HEADERS, sizeof(*s->rh));
    memset(&h, 0, sizeof(h));
    rv = wr_http1_parse_response(s->rbuf.data, s->rbuf.len, s->hm.method, NULL, s->rh,
                                 WR_HTTP1_DEFAULT_MAX_HEADERS, &h, &consumed);
    if (rv == WR_AGAIN) return;
    if (rv == WR_ERR_LIMIT) {
      fail_before_response(s, "net/http: server response headers exceeded the limit; aborted");
      return;
    }
    if (rv != WR_OK) {
      fail_before_response(s, "malformed HTTP response");
      return;
    }
    if (h.status >= 100 && h.status < 200 && h.status != 101) {
      /* 100 Continue, 103 Early Hints: Go's transport reads past them. */
      wr_buf_consume(&s->rbuf, consumed);
      continue;
    }
    break;
  }
  /* Bytes after a response without body: the origin pipelines or is
   * confused; either way the connection is not reused. */
  if (h.status != 101 && s->rbuf.len > consumed &&
      (h.body == WR_HTTP1_BODY_NONE ||
       (h.body == WR_HTTP1_BODY_LENGTH && h.content_length == 0)))
    s->extra = 1;
  on_response_head(s, &h);
  /* The head's strings pointed into rbuf; what follows it is body. */
  if (s->state == ST_BODY || s->state == ST_PIPE) {
    wr_buf rest = s->rbuf;
    wr_buf_init(&s->rbuf, RBUF_MAX, NULL);
    if (rest.len > consumed) {
      if (s->state == ST_PIPE)
        emit(s, rest.data + consumed, rest.len - consumed);
      else
        resp_body(s, rest.data + consumed, rest.len - consumed);
    }
    wr_buf_free(&rest);
  } else {
    wr_buf_reset(&s->rbuf);
  }
}

static void resp_body(pstream *s, const uint8_t *data, size_t len) {
  size_t off = 0;
  switch (s->body_mode) {
  case WR_HTTP1_BODY_LENGTH: {
    size_t n = len < s->body_left ? len : (size_t)s->body_left;
    emit(s, data, n);
    s->body_left -= n;
    if (n < len) s->extra = 1;
    if (s->body_left == 0 && s->state == ST_BODY) response_done(s);
    return;
  }
  case WR_HTTP1_BODY_CHUNKED:
    while (off < len && s->state == ST_BODY) {
      size_t consumed = 0, doff = 0, dlen = 0;
      int rv = wr_http1_chunked_decode(&s->chunked, data + off, len - off, &consumed, &doff, &dlen);
      if (rv != WR_OK) {
        wr_error("Request failed error=\"origin sent a malformed chunked body\" dest=%.*s",
                 (int)s->req.dest_len, s->req.dest);
        s->p->stats.request_errors++;
        stream_reset(s);
        return;
      }
      if (dlen) emit(s, data + off + doff, dlen);
      off += consumed;
      if (s->chunked.done) {
        if (off < len) s->extra = 1;
        if (s->state == ST_BODY) response_done(s);
        return;
      }
      if (consumed == 0) break;
    }
    return;
  case WR_HTTP1_BODY_EOF:
    emit(s, data, len);
    return;
  default:
    s->extra = 1;
    return;
  }
}

static void o_on_connect(wr_conn *c, int status, const char *msg, void *user) {
  origin *o = user;
  pstream *s = o->s;
  if (!s) return;
  hold(s);
  if (status != WR_OK) {
    char why[512];
    snprintf(why, sizeof(why), "%s", msg && msg[0] ? msg : wr_strerror(status));
    respond_errorf(s, UNREACHABLE_PREFIX ": %s", why);
  } else {
    o->state = O_ACTIVE;
    origin_ready(s);
  }
  unhold(s);
}

static void o_on_read(wr_conn *c, const uint8_t *data, size_t len, void *user) {
  origin *o = user;
  pstream *s = o->s;
  if (!s) {
    /* Bytes on an idle pooled connection: the origin is confused. */
    if (o->state == O_IDLE) origin_close(o);
    return;
  }
  hold(s);
  s->resp_any = 1;
  switch (s->state) {
  case ST_WAIT_RESP:
    resp_head_input(s, data, len);
    break;
  case ST_BODY:
    resp_body(s, data, len);
    break;
  case ST_PIPE:
    emit(s, data, len);
    break;
  default:
    break; /* ST_DONE: the edge is not listening any more */
  }
  unhold(s);
}

static void o_on_eof(wr_conn *c, int status, const char *msg, void *user) {
  origin *o = user;
  pstream *s = o->s;
  if (!s) {
    origin_close(o);
    return;
  }
  hold(s);
  switch (s->state) {
  case ST_WAIT_RESP:
    fail_before_response(s, status == WR_OK ? "EOF" : (msg && msg[0] ? msg : wr_strerror(status)));
    break;
  case ST_BODY:
    if (s->body_mode == WR_HTTP1_BODY_EOF && status == WR_OK) {
      s->resp_keepalive = 0;
      response_done(s);
    } else {
      /* Died mid-body: the edge must see a broken response. */
      wr_error("Request failed error=\"origin closed the connection before the end of the "
               "response body%s%s\" dest=%.*s",
               status == WR_OK ? "" : ": ", status == WR_OK ? "" : (msg ? msg : ""),
               (int)s->req.dest_len, s->req.dest);
      s->p->stats.request_errors++;
      stream_reset(s);
    }
    break;
  case ST_PIPE:
    /* First EOF ends both directions. */
    finish(s);
    q_stop_sending(s);
    drop_held(s);
    origin_detach(s, 0);
    stream_set_state(s, ST_DONE);
    break;
  default:
    origin_detach(s, 0);
    break;
  }
  unhold(s);
}

static void o_on_drain(wr_conn *c, void *user) {
  origin *o = user;
  pstream *s = o->s;
  if (!s) return;
  hold(s);
  maybe_return_credit(s);
  unhold(s);
}

static void o_on_close(wr_conn *c, void *user) {
  origin *o = user;
  wr_proxy *p = o->p;
  if (o->prev)
    o->prev->next = o->next;
  else
    p->origins = o->next;
  if (o->next) o->next->prev = o->prev;
  free(o->key);
  free(o);
  proxy_handle_done(p);
}

static const wr_conn_callbacks origin_cbs = {
    .on_connect = o_on_connect,
    .on_read = o_on_read,
    .on_eof = o_on_eof,
    .on_drain = o_on_drain,
    .on_close = o_on_close,
};

/* --- request to the origin ---------------------------------------------------------- */

/* Request head to the origin, as cloudflared's proxy + Go's transport write
 * it. Returns WR_OK or answers the stream with an error and returns < 0. */
static int build_request_head(pstream *s) {
  const wr_origin_request *orq = &s->rule->origin;
  size_t n = 0, cap = s->hm.nheaders + 10;
  wr_http_header *out = wr_xcalloc(cap, sizeof(*out));
  const char *host;
  size_t host_len;
  char clen[24];
  int override = orq->http_host_header[0] != '\0';
  int rv;

  if (override) {
    host = orq->http_host_header;
    host_len = strlen(host);
  } else if (s->hm.host) {
    host = s->hm.host;
    host_len = s->hm.host_len;
  } else if (s->rule->service.kind == WR_SVC_HTTP) {
    host = s->rule->service.authority;
    host_len = strlen(host);
  } else {
    host = "localhost";
    host_len = 9;
  }
  out[n++] = (wr_http_header){"Host", 4, host, host_len};
  for (size_t i = 0; i < s->hm.nheaders; i++) {
    const wr_http_header *h = &s->hdrs[i];
    if (name_is(h, "Host") || name_is(h, "Content-Length") || name_is(h, "Transfer-Encoding") ||
        name_is(h, "Trailer") || name_is(h, "Connection") ||
        name_is(h, "Cf-Cloudflared-Proxy-Connection-Upgrade") || name_is(h, "Cf-Trace-Id"))
      continue;
    if (s->ws && (name_is(h, "Upgrade") || name_is(h, "Sec-Websocket-Version"))) continue;
    if (override && name_is(h, "X-Forwarded-Host")) continue;
    if (!wr_httpmeta_is_token(h->name, h->name_len)) {
      free(out);
      respond_errorf(s, UNREACHABLE_PREFIX ": net/http: invalid header field name \"%.*s\"",
                     (int)h->name_len, h->name);
      return WR_ERR_PROTO;
    }
    if (!valid_value(h->value, h->value_len)) {
      free(out);
      respond_errorf(s, UNREACHABLE_PREFIX ": net/http: invalid header field value for \"%.*s\"",
                     (int)h->name_len, h->name);
      return WR_ERR_PROTO;
    }
    out[n++] = *h;
  }
  if (s->ws) {
    out[n++] = (wr_http_header){"Connection", 10, "Upgrade", 7};
    out[n++] = (wr_http_header){"Upgrade", 7, "websocket", 9};
    out[n++] = (wr_http_header){"Sec-Websocket-Version", 21, "13", 2};
  } else {
    out[n++] = (wr_http_header){"Connection", 10, "keep-alive", 10};
  }
  if (override)
    out[n++] = (wr_http_header){"X-Forwarded-Host", 16, s->hm.host ? s->hm.host : "",
                                s->hm.host ? s->hm.host_len : 0};
  out[n++] = (wr_http_header){"Cf-Warp-Tag-Id", 14, s->p->tag, strlen(s->p->tag)};
  if (s->rb == RB_LENGTH) {
    snprintf(clen, sizeof(clen), "%llu", (unsigned long long)s->rb_left);
    out[n++] = (wr_http_header){"Content-Length", 14, clen, strlen(clen)};
  } else if (s->rb == RB_CHUNKED) {
    out[n++] = (wr_http_header){"Transfer-Encoding", 17, "chunked", 7};
  }
  wr_buf_reset(&s->req_head);
  rv = wr_http1_write_request_head(&s->req_head, s->hm.method, s->hm.method_len, s->target,
                                   strlen(s->target), out, n);
  free(out);
  if (rv != WR_OK) {
    respond_errorf(s, UNREACHABLE_PREFIX ": net/http: invalid request (%s)", wr_strerror(rv));
    return rv;
  }
  return WR_OK;
}

static char *origin_key(const wr_ingress_rule *r) {
  const wr_origin_request *o = &r->origin;
  wr_buf b;
  char *k;
  wr_buf_init(&b, ARENA_MAX, NULL);
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

/* Gets a connection for the stream's rule: a pooled one (then the request
 * goes out now) or a new dial (on_connect continues). Returns WR_OK, or an
 * error after answering the stream. */
static int dial_origin(pstream *s, int allow_pool) {
  wr_proxy *p = s->p;
  const wr_ingress_rule *r = s->rule;
  const wr_origin_request *orq = &r->origin;
  char *key = origin_key(r);
  origin *o = allow_pool ? pool_take(p, key) : NULL;
  wr_conn_target t;
  char err[512];
  char sni[256];
  int rv;

  if (o) {
    free(key);
    o->s = s;
    s->o = o;
    origin_ready(s);
    return WR_OK;
  }
  memset(&t, 0, sizeof(t));
  if (r->service.kind == WR_SVC_UNIX) {
    t.unix_path = r->service.path;
  } else {
    t.host = r->service.host;
    t.port = r->service.port;
  }
  if (r->service.tls) {
    err[0] = '\0';
    t.tls = get_creds(p, orq->ca_pool, orq->no_tls_verify, err, sizeof(err));
    if (!t.tls) {
      free(key);
      respond_errorf(s, UNREACHABLE_PREFIX ": %s", err[0] ? err : "cannot load TLS credentials");
      return WR_ERR_CRYPTO;
    }
    if (orq->origin_server_name[0]) {
      t.server_name = orq->origin_server_name;
    } else if (r->service.kind == WR_SVC_UNIX) {
      /* No host in a socket path: verify the name the request was for. */
      size_t hl = s->hm.host ? s->hm.host_len : 0;
      const char *colon = hl ? memchr(s->hm.host, ':', hl) : NULL;
      if (colon && s->hm.host[0] != '[') hl = (size_t)(colon - s->hm.host);
      snprintf(sni, sizeof(sni), "%.*s", (int)hl, hl ? s->hm.host : "localhost");
      t.server_name = sni;
    }
  }
  t.connect_timeout_ms = (uint64_t)(orq->connect_timeout_ns > 0 ? orq->connect_timeout_ns : 0) /
                         1000000u;
  if (r->service.tls && orq->tls_timeout_ns > 0)
    t.connect_timeout_ms += (uint64_t)orq->tls_timeout_ns / 1000000u;
  t.tcp_keepalive_s =
      (uint64_t)(orq->tcp_keepalive_ns > 0 ? orq->tcp_keepalive_ns : 0) / 1000000000u;

  o = wr_xcalloc(1, sizeof(*o));
  o->p = p;
  o->key = key;
  o->state = O_CONNECTING;
  o->s = s;
  o->max_idle = orq->keepalive_connections > 0 ? orq->keepalive_connections
                                               : DEFAULT_IDLE_PER_HOST;
  o->idle_timeout_ms =
      orq->keepalive_timeout_ns > 0 ? (uint64_t)orq->keepalive_timeout_ns / 1000000u : 0;
  rv = wr_conn_connect(p->loop, &t, &origin_cbs, o, &o->conn);
  if (rv != WR_OK) {
    free(o->key);
    free(o);
    respond_errorf(s, UNREACHABLE_PREFIX ": dial: %s", wr_strerror(rv));
    return rv;
  }
  o->next = p->origins;
  if (p->origins) p->origins->prev = o;
  p->origins = o;
  p->handles++;
  s->o = o;
  stream_set_state(s, ST_DIAL);
  return WR_OK;
}

/* Forwards request body bytes with the request's framing. */
static void body_forward(pstream *s, const uint8_t *data, size_t len) {
  char line[24];
  switch (s->rb) {
  case RB_LENGTH: {
    size_t n = len < s->rb_left ? len : (size_t)s->rb_left;
    if (n && origin_write(s, data, n) != WR_OK) return;
    s->rb_left -= n;
    s->body_sent += n;
    s->credit_owed += n;
    q_consume(s, len - n); /* beyond Content-Length: dropped */
    if (s->rb_left == 0) s->rb_done = 1;
    break;
  }
  case RB_CHUNKED: {
    size_t ln = wr_http1_chunk_header(len, line);
    if (origin_write(s, line, ln) != WR_OK || origin_write(s, data, len) != WR_OK ||
        origin_write(s, "\r\n", 2) != WR_OK)
      return;
    s->body_sent += len;
    s->credit_owed += len;
    break;
  }
  case RB_PIPE:
    if (origin_write(s, data, len) != WR_OK) return;
    s->body_sent += len;
    s->credit_owed += len;
    break;
  default:
    q_consume(s, len);
    return;
  }
  maybe_return_credit(s);
}

/* The edge finished the request body (FIN) and the origin is ready. */
static void body_end(pstream *s) {
  switch (s->rb) {
  case RB_LENGTH:
    if (!s->rb_done) {
      unsigned long long want = s->body_sent + s->rb_left, got = s->body_sent;
      respond_errorf(s, UNREACHABLE_PREFIX ": http: ContentLength=%llu with Body length %llu",
                     want, got);
    }
    break;
  case RB_CHUNKED:
    if (!s->rb_done) {
      s->rb_done = 1;
      origin_write(s, WR_HTTP1_LAST_CHUNK, strlen(WR_HTTP1_LAST_CHUNK));
    }
    break;
  case RB_PIPE:
    if (s->state == ST_PIPE && s->o) {
      /* First EOF ends both: let the queued bytes out, FIN the stream. */
      wr_conn_shutdown(s->o->conn);
      finish(s);
      stream_set_state(s, ST_DONE);
    }
    break;
  default:
    break;
  }
}

static void body_input(pstream *s, const uint8_t *data, size_t len, int fin) {
  if (len) {
    if (s->state == ST_DONE || s->rb == RB_NONE || s->rb_done) {
      q_consume(s, len);
    } else if (!s->ready || s->hold) {
      if (wr_buf_append(&s->held, data, len) != WR_OK) {
        q_consume(s, len);
        stream_reset(s);
        return;
      }
    } else {
      body_forward(s, data, len);
    }
  }
  if (fin && !s->edge_fin) {
    s->edge_fin = 1;
    if (s->ready && !s->hold && s->state != ST_DONE) body_end(s);
  }
}

/* The request head goes out on a connected origin; held body bytes follow. */
static void origin_ready(pstream *s) {
  if (!s->o) return;
  stream_set_state(s, ST_WAIT_RESP);
  if (wr_conn_write(s->o->conn, s->req_head.data, s->req_head.len) != WR_OK) {
    fail_before_response(s, "write: broken pipe");
    return;
  }
  s->ready = 1;
  s->hold = s->rb == RB_PIPE;
  if (!s->hold && s->held.len) {
    wr_buf h = s->held;
    wr_buf_init(&s->held, HELD_MAX, NULL);
    body_forward(s, h.data, h.len);
    wr_buf_free(&h);
  }
  if (s->edge_fin && !s->hold && s->state == ST_WAIT_RESP) body_end(s);
}

/* --- dispatch ------------------------------------------------------------------------ */

static int parse_content_length(const char *v, size_t n, uint64_t *out) {
  uint64_t x = 0;
  size_t i = 0;
  if (n && v[0] == '+') i = 1;
  if (i == n || n - i > 18) return WR_ERR_PROTO;
  for (; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return WR_ERR_PROTO;
    x = x * 10 + (uint64_t)(v[i] - '0');
  }
  *out = x;
  return WR_OK;
}

/* Rejects a stream as cloudflared does for bytes it cannot read:
 * RESET_STREAM(0) and STOP_SENDING(0), no response. */
static void reject(pstream *s, const char *why) {
  wr_debug("data stream %lld reset: %s", (long long)s->sid, why);
  stream_reset(s);
}

static void dispatch(pstream *s) {
  wr_proxy *p = s->p;
  size_t nmeta = s->req.nmeta;
  char *mpath = NULL;
  int idx, rv;

  s->hdrs = wr_xcalloc(nmeta + 1, sizeof(*s->hdrs));
  rv = wr_httpmeta_req_decode(s->req.meta, nmeta, &s->arena, s->hdrs, nmeta + 1, &s->hm);
  if (rv != WR_OK) {
    reject(s, "malformed request metadata");
    return;
  }
  if (parse_dest(s->req.dest, s->req.dest_len, &s->target, &mpath) != WR_OK) {
    reject(s, "bad dest URL");
    return;
  }
  p->stats.total_requests++;
  p->stats.concurrent_requests++;
  s->counted = 1;

  if (s->req.type == WR_CONNECT_TCP) {
    free(mpath);
    if (!p->ing || !p->ing->warp.enabled)
      respond_error(s, WARP_DISABLED_MSG);
    else
      respond_error(s, "warp-routing (TCP streams) is not supported by warren yet");
    return;
  }
  if (s->req.type != WR_CONNECT_HTTP && s->req.type != WR_CONNECT_WEBSOCKET) {
    free(mpath);
    respond_errorf(s, "unsupported error type: %u", (unsigned)s->req.type);
    return;
  }
  s->ws = s->req.type == WR_CONNECT_WEBSOCKET;
  idx = p->ing ? wr_ingress_match(p->ing, s->hm.host ? s->hm.host : "", mpath) : WR_ERR_NOTFOUND;
  free(mpath);
  if (idx < 0) {
    respond_error(s, "No ingress rules were defined");
    return;
  }
  s->rule = &p->ing->rules[idx];

  switch (s->rule->service.kind) {
  case WR_SVC_HTTP_STATUS:
    respond_local(s, s->rule->service.status, NULL, 0, NULL, 0);
    return;
  case WR_SVC_HELLO_WORLD:
    serve_hello(s);
    return;
  case WR_SVC_HTTP:
  case WR_SVC_UNIX:
    break;
  case WR_SVC_STREAM:
    respond_errorf(s, "%s origins (TCP over WebSocket) are not supported by warren yet",
                   s->rule->service.display);
    return;
  case WR_SVC_BASTION:
    respond_error(s, "bastion mode is not supported by warren yet");
    return;
  default:
    respond_error(s, "socks-proxy is not supported by warren yet");
    return;
  }

  /* Body framing as cloudflared's buildHTTPRequest + Go's transport. */
  if (s->ws) {
    s->rb = RB_PIPE;
  } else {
    const char *cl = NULL, *te = NULL;
    size_t cll = 0, tel = 0;
    uint64_t n = 0;
    for (size_t i = 0; i < s->hm.nheaders; i++) { /* Header.Get: the first value */
      if (!cl && name_is(&s->hdrs[i], "Content-Length")) {
        cl = s->hdrs[i].value;
        cll = s->hdrs[i].value_len;
      }
      if (!te && name_is(&s->hdrs[i], "Transfer-Encoding")) {
        te = s->hdrs[i].value;
        tel = s->hdrs[i].value_len;
      }
    }
    if (cl && cll && parse_content_length(cl, cll, &n) != WR_OK) {
      reject(s, "bad Content-Length");
      return;
    }
    if (n > 0) {
      s->rb = RB_LENGTH;
      s->rb_left = n;
    } else if (te) {
      char tmp[256];
      snprintf(tmp, sizeof(tmp), "%.*s", (int)tel, te);
      for (char *c = tmp; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
      s->rb = strstr(tmp, "chunked") ? RB_CHUNKED : RB_NONE;
    } else {
      s->rb = RB_NONE;
    }
  }
  if (s->rb == RB_NONE) drop_held(s);
  if (build_request_head(s) != WR_OK) return;
  stream_set_state(s, ST_DIAL);
  dial_origin(s, 1);
}

/* Bytes while reading the preamble and ConnectRequest. */
static void head_input(pstream *s, const uint8_t *data, size_t len, int fin) {
  size_t room = HEAD_MAX - s->hbuf.len, take = len < room ? len : room, pre = 0, consumed = 0;
  int rv;
  if (take && wr_buf_append(&s->hbuf, data, take) != WR_OK) {
    reject(s, "out of memory");
    return;
  }
  rv = wr_preamble_classify(s->hbuf.data, s->hbuf.len, &pre, NULL);
  if (rv == WR_AGAIN) {
    if (fin) reject(s, "stream ended inside the preamble");
    return;
  }
  if (rv != WR_PREAMBLE_DATA) {
    reject(s, rv == WR_PREAMBLE_RPC ? "RPC stream from the edge is not supported"
                                    : "unknown stream signature");
    return;
  }
  rv = wr_connect_request_decode_alloc(s->hbuf.data + pre, s->hbuf.len - pre, NULL, NULL, 0,
                                       &s->req, &consumed);
  if (rv == WR_AGAIN) {
    if (fin || s->hbuf.len >= HEAD_MAX)
      reject(s, fin ? "stream ended inside the ConnectRequest" : "ConnectRequest too large");
    return;
  }
  if (rv != WR_OK) {
    reject(s, "undecodable ConnectRequest");
    return;
  }
  s->have_req = 1;
  {
    size_t head = pre + consumed;
    size_t rest1 = s->hbuf.len - head; /* body bytes already in hbuf */
    q_consume(s, head);
    dispatch(s);
    /* The rest are body bytes (hbuf is not touched again: the request's
     * strings point into it). */
    if (s->qc) {
      if (rest1) body_input(s, s->hbuf.data + head, rest1, 0);
      if (take < len || fin) body_input(s, data + take, len - take, fin);
    }
  }
}

/* --- public API ------------------------------------------------------------------------ */

int wr_proxy_new(const wr_proxy_config *cfg, wr_proxy **out) {
  wr_proxy *p;
  if (!cfg || !cfg->loop || !out) return WR_ERR_INVAL;
  p = wr_xcalloc(1, sizeof(*p));
  p->loop = cfg->loop;
  p->ing = cfg->ingress;
  wr_uuid_format(&cfg->connector_id, p->tag);
  p->version = wr_xstrdup(cfg->version ? cfg->version : WR_VERSION);
  uv_timer_init(p->loop, &p->timer);
  p->timer.data = p;
  p->handles = 1;
  *out = p;
  return WR_OK;
}

static void proxy_final_free(wr_proxy *p) {
  creds_ent *e, *n;
  for (e = p->creds; e; e = n) {
    n = e->next;
    wr_tls_creds_free(e->creds);
    free(e->ca);
    free(e);
  }
  free(p->version);
  free(p);
}

static void proxy_handle_done(wr_proxy *p) {
  if (--p->handles == 0 && p->dying) proxy_final_free(p);
}

static void timer_close_cb(uv_handle_t *h) { proxy_handle_done(h->data); }

void wr_proxy_free(wr_proxy *p) {
  origin *o, *n;
  if (!p) return;
  p->dying = 1;
  while (p->streams) stream_release(p->streams);
  for (o = p->origins; o; o = n) {
    n = o->next;
    origin_close(o);
  }
  uv_timer_stop(&p->timer);
  uv_close((uv_handle_t *)&p->timer, timer_close_cb);
}

void wr_proxy_set_ingress(wr_proxy *p, const wr_ingress *ing) { p->ing = ing; }

int wr_proxy_on_stream_open(wr_proxy *p, wr_quic_conn *c, int64_t sid) {
  pstream *s;
  if (p->dying) return 0;
  s = stream_new(p, c, sid);
  wr_quic_stream_set_user(c, sid, s);
  return 0;
}

int wr_proxy_on_stream_data(wr_proxy *p, wr_quic_conn *c, int64_t sid, const uint8_t *data,
                            size_t len, int fin, void *suser) {
  pstream *s = suser;
  if (p->dying) return 0;
  if (!s) {
    s = stream_new(p, c, sid);
    wr_quic_stream_set_user(c, sid, s);
  }
  hold(s);
  if (s->state == ST_HEAD)
    head_input(s, data, len, fin);
  else
    body_input(s, data, len, fin);
  unhold(s);
  return 0;
}

int wr_proxy_on_stream_reset(wr_proxy *p, wr_quic_conn *c, int64_t sid, uint64_t code,
                             void *suser) {
  pstream *s = suser;
  if (!s || p->dying) return 0;
  hold(s);
  drop_held(s);
  if (s->state == ST_DONE) {
    /* Our response is complete or failed already (a RESET after our
     * STOP_SENDING is the normal end): nothing to undo. */
    s->edge_fin = 1;
  } else {
    s->edge_fin = 1; /* no STOP_SENDING for a side the edge reset */
    wr_debug("data stream %lld: the edge reset it (code %llu); aborting the origin request",
             (long long)sid, (unsigned long long)code);
    stream_reset(s);
  }
  unhold(s);
  return 0;
}

void wr_proxy_on_stream_writable(wr_proxy *p, wr_quic_conn *c, int64_t sid, void *suser) {
  pstream *s = suser;
  if (!s || p->dying) return;
  hold(s);
  stream_flush(s);
  unhold(s);
}

void wr_proxy_on_stream_close(wr_proxy *p, wr_quic_conn *c, int64_t sid, void *suser) {
  pstream *s = suser;
  if (!s || p->dying) return;
  stream_release(s);
}

void wr_proxy_on_conn_close(wr_proxy *p, wr_quic_conn *c) {
  pstream *s, *n;
  for (s = p->streams; s; s = n) {
    n = s->next;
    if (s->qc == c) stream_release(s);
  }
}

size_t wr_proxy_active(const wr_proxy *p) { return p->nstreams; }

const wr_proxy_stats *wr_proxy_get_stats(const wr_proxy *p) { return &p->stats; }
