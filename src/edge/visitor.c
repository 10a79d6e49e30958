/* The edge's visitor front; see visitor.h.
 *
 * One vconn per accepted TCP connection. It serves one request at a time:
 *
 *   VC_HEAD ──parse──> VC_PROXY ──response and request body done──> VC_HEAD
 *      │                  │  (local answers: 404, 502, ... go straight back)
 *      └──────────────────┴──> VC_CLOSING (flush, shutdown, linger) ──> freed
 *
 * While proxying, two half machines run side by side: the request body
 * (visitor -> stream, enum rb) and the response (stream -> visitor, enum rs).
 * Backpressure: visitor reads stop while the stream's send queue is full
 * (WR_AGAIN until on_writable); QUIC receive credit for response bytes is
 * returned only once their uv_write to the visitor completed, so a slow
 * visitor slows the connector instead of growing our memory.
 *
 * Lifetimes: the vconn owns its libuv handles and is freed from the last
 * close callback. The tunnel stream belongs to the tunnel server; the vconn
 * holds it from open until it abandons it (no callbacks after that) or
 * hears on_close (the handle is gone after that). Work that would open new
 * streams or parse the next request is never done from inside a QUIC
 * callback: it goes through the zero-delay |kick| timer.
 *
 * Limits. A connection holds a slot from accept until uv_close (the
 * descriptor is released there, not in the close callback), counted in
 * |nslots| and in its source's |conns|. Sources live in a hash table keyed
 * with SipHash under a random key, so that chosen addresses cannot pile
 * into one chain. A source without connections stays on the |quiet| list
 * until its request bucket is full again (its rate history must survive a
 * reconnect), then is freed; when the table is full the oldest quiet one is
 * reused, and when none is quiet the newcomer is served untracked, under the
 * global limits only. Idle connections (waiting for a request, nothing
 * unwritten) are on the |idle| list, oldest first: under pressure one of
 * them is closed for each newcomer. */
#include "edge/visitor.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge/visitor_int.h"
#include "lib/buf.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "proto/connect.h"
#include "proto/http1.h"
#include "proto/httpmeta.h"
#include "proto/preamble.h"

#define VIN_MAX (64u * 1024u)          /* visitor bytes buffered (head + pipelined) */
#define VREAD_CHUNK (16u * 1024u)      /* one read */
#define RESP_HEAD_MAX (64u * 1024u)    /* connector preamble + ConnectResponse */
#define MAX_REQ_HEADERS WR_HTTP1_DEFAULT_MAX_HEADERS
#define MAX_RESP_HEADERS 256
#define DISCARD_MAX (1u << 20)         /* body bytes dropped before giving up on keep-alive */
#define LINGER_MS 2000                 /* after our FIN, wait this long for the visitor's */
#define PROXY_IDLE_MIN_MS 100000       /* Cloudflare's 100 s origin timeout */
#define ROUTE_BUCKETS 256
#define ROUTE_MAX 4096

#define DEF_HEADER_TIMEOUT_MS 10000
#define DEF_IDLE_TIMEOUT_MS 60000
#define DEF_ROUTE_TTL_MS 1000
#define DEF_MAX_CONNS 10000
/* Per source. 256 connections is ~40 browsers behind one NAT at their six
 * connections per host, while 40 such sources are needed to fill the
 * default 10,000. 100 requests/s sustained with a burst of 200 lets a page
 * with a few hundred assets load at once and a busy NAT keep going, but
 * caps one address at 1 % of what the edge proxies on one core. */
#define DEF_MAX_CONNS_PER_SOURCE 256
#define DEF_RATE_PER_SOURCE 100
#define DEF_RESERVE_DIVISOR 10       /* reserve: the last 10 % of max_conns */
#define MIN_MAX_SOURCES 1024
#define MAX_MAX_SOURCES (1u << 20)   /* ~64 MiB of entries at most */
#define RATE_CLAMP 1000000u          /* rates and bursts: keeps milli-token sums in range */
#define EVICT_SAMPLE 32              /* idle connections weighed per eviction */
#define EVICT_SCAN_MAX 256           /* ... and walked past, when busy ones are in the way */
#define WARN_EVERY_MS 10000          /* one warning per kind per 10 s under a flood */

/* Connection states. */
enum vc_state {
  VC_HEAD = 0, /* waiting for (the rest of) a request head */
  VC_PROXY,    /* a request is being proxied over a data stream */
  VC_CLOSING   /* answered for the last time: flushing, then shutdown + linger */
};

/* Request body, visitor -> connector. */
enum rb_state {
  RB_NONE = 0, /* no body (or websocket before 101) */
  RB_LENGTH,   /* Content-Length: body_left more bytes */
  RB_CHUNKED,  /* chunked coding, de-chunked onto the stream */
  RB_PIPE,     /* websocket after 101: raw bytes until either side ends */
  RB_DONE      /* the whole body was read from the visitor */
};

/* Response, connector -> visitor. */
enum rs_state {
  RS_HEAD = 0, /* collecting preamble + ConnectResponse */
  RS_LENGTH,   /* identity body, resp_left more bytes */
  RS_CHUNKED,  /* body of unknown length, chunk-encoded for the visitor */
  RS_EOF,      /* HTTP/1.0 visitor: body delimited by closing the connection */
  RS_PIPE,     /* websocket after 101 */
  RS_DONE      /* complete (or no body); later stream bytes are dropped */
};

/* What the connection timer measures. */
enum vc_timer { T_NONE = 0, T_IDLE, T_HEADER, T_PROXY, T_LINGER };

typedef struct route_ent {
  struct route_ent *next;
  uint64_t expires;
  int found;
  char tunnel_id[WR_STORE_UUID_LEN + 1];
  char host[];
} route_ent;

typedef struct vconn vconn;

/* One source (see wr__visitor_source_key). About 64 bytes. */
typedef struct vsrc {
  struct vsrc *hnext;         /* hash chain */
  struct vsrc *qprev, *qnext; /* quiet list, while |quiet| */
  uint64_t tokens;            /* request bucket, in thousandths of a request */
  uint64_t stamp;             /* ms: the bucket's last refill (the quiet list's order) */
  uint32_t conns;             /* connections holding a slot */
  uint8_t quiet;              /* no connections: on the quiet list */
  uint8_t key[WR__VISITOR_KEY_LEN];
} vsrc;

/* A warning that must not be logged once per event under a flood. */
typedef struct vwarn {
  uint64_t next;              /* ms: earliest next warning */
  uint64_t held;              /* events since the last warning */
} vwarn;

struct wr_visitor {
  uv_loop_t *loop;
  uv_tcp_t listener;
  int listener_open;
  int closing;
  wr_store *store;
  wr_tunnel_server *ts;
  char scheme[8];
  uint64_t header_timeout_ms, idle_timeout_ms, proxy_idle_ms, route_ttl_ms;
  size_t max_conns;
  size_t max_per_source;      /* WR_VISITOR_OFF: none */
  size_t reserve;             /* < max_conns */
  uint64_t rate, burst;       /* requests/s, bucket size; rate 0: no rate limit */
  size_t max_sources;
  size_t nslots;              /* connections accepted and not closed */
  vsrc **srcs;                /* hash buckets, src_mask + 1 of them */
  size_t src_mask;
  uint64_t sip_k0, sip_k1;
  vsrc *quiet_head, *quiet_tail;
  uv_timer_t quiet_timer;     /* frees quiet sources once their bucket is full */
  vconn *idle_head, *idle_tail;
  vwarn warn_source, warn_full, warn_evict, warn_rate, warn_table;
  vconn *conns;
  uint64_t next_id;
  route_ent *routes[ROUTE_BUCKETS];
  size_t nroutes;
  wr_visitor_stats stats;
  uv_check_t flusher;  /* after each poll: one write per connection with output */
  uv_idle_t nudge;     /* active while output waits: poll must not block then */
  int aux_open;        /* flusher, nudge and quiet_timer not yet closed */
  vconn *dirty;        /* connections with pending output, linked by dirty_next */
  /* Reads of connections that hold no input buffer (idle keep-alive, new)
   * land here and are copied out: an idle visitor then costs no 16 KiB
   * buffer. libuv calls alloc_cb and read_cb back to back, so one shared
   * buffer is enough. */
  uint8_t idle_rbuf[VREAD_CHUNK];
};

/* The request being served; reset between requests. */
typedef struct vreq {
  wr_tunnel_stream *st;
  char tunnel_id[WR_STORE_UUID_LEN + 1];
  char conn_id[WR_STORE_UUID_LEN + 1];
  int64_t sid;
  int stream_blocked; /* last write got WR_AGAIN: wait for on_writable */
  int keep_alive, minor, is_head, websocket;
  char method[32];
  char host[WR_STORE_HOST_MAX + 1];       /* canonical: lower case, no port */
  char authority[WR_STORE_HOST_MAX + 8]; /* host[:port]: HttpHost */
  char target[256];   /* for logs; truncated */
  int body;           /* enum rb_state */
  uint64_t body_left;
  wr_http1_chunked chunked;
  size_t chunk_raw;   /* de-chunked bytes at the front of |in| not yet forwarded */
  int discard;        /* request body bytes are read and dropped */
  uint64_t discarded;
  int resp;           /* enum rs_state */
  uint64_t resp_left;
  int status;         /* sent to the visitor; 0 before the head */
  uint64_t up, down;  /* body bytes each way */
  uint64_t t0;
} vreq;

struct vconn {
  vconn *prev, *next;
  wr_visitor *v;
  uv_tcp_t tcp;
  uv_timer_t timer;   /* the deadline named by |tmode| */
  uv_timer_t kick;    /* zero delay: process outside other callbacks */
  uv_shutdown_t shutreq;
  int handles;        /* libuv handles not yet closed */
  int closed;         /* uv_close called */
  int state;          /* enum vc_state */
  int tmode;          /* enum vc_timer */
  int reading;
  int peer_eof;
  int shut;           /* uv_shutdown issued */
  int shut_done;      /* ... and completed: our FIN is out */
  size_t writes;      /* uv_write requests in flight */
  unsigned gen;       /* changes whenever the stream is released */
  uint64_t id;
  char ip[INET6_ADDRSTRLEN];
  vsrc *src;          /* while holding a slot; NULL: untracked */
  int has_slot;
  int idle;           /* on the visitor's idle list */
  vconn *iprev, *inext;
  uint64_t retry_at;  /* after a 429: a request before this ms closes */
  wr_buf in;          /* visitor bytes not processed yet */
  size_t scanned;     /* head bytes already searched for the blank line */
  wr_buf rhead;       /* preamble + ConnectResponse being collected */
  vreq r;
  struct wreq *pend;  /* output gathered during this loop iteration */
  vconn *dirty_next;
  int is_dirty;
};

typedef struct wreq {
  uv_write_t req;
  vconn *c;
  unsigned gen;
  size_t credit;      /* stream bytes to consume once written */
  size_t len, cap;
  uint8_t data[];
} wreq;

/* Output is gathered per connection and written once per loop iteration:
 * a response head and the body packets that arrived with it become one
 * write(2) instead of one each. */
#define PEND_MAX (64u * 1024u)

static void vc_process(vconn *c);
static void vc_end_request(vconn *c, int close);
static void vc_finish(vconn *c);
static void vc_close_now(vconn *c);
static void pump_body(vconn *c);

static int ieq(const char *a, size_t n, const char *b) {
  return strlen(b) == n && strncasecmp(a, b, n) == 0;
}

/* ---- timers, reading, writing --------------------------------------------- */

static void timer_cb(uv_timer_t *t);

static void vc_arm(vconn *c, int mode, uint64_t ms) {
  if (c->closed) return;
  c->tmode = mode;
  uv_timer_start(&c->timer, timer_cb, ms, 0);
}

static void vc_activity(vconn *c) {
  if (c->state == VC_PROXY) vc_arm(c, T_PROXY, c->v->proxy_idle_ms);
}

static void kick_cb(uv_timer_t *t) { vc_process(t->data); }

static void vc_kick(vconn *c) {
  if (!c->closed) uv_timer_start(&c->kick, kick_cb, 0, 0);
}

static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *buf) {
  vconn *c = h->data;
  (void)sz;
  if (!c->in.data && c->state == VC_HEAD) {
    *buf = uv_buf_init((char *)c->v->idle_rbuf, sizeof(c->v->idle_rbuf));
    return;
  }
  if (wr_buf_reserve(&c->in, VREAD_CHUNK) != WR_OK) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init((char *)c->in.data + c->in.len, VREAD_CHUNK);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static int body_complete(const vconn *c) { return c->r.body == RB_NONE || c->r.body == RB_DONE; }

static void vc_update_reading(vconn *c) {
  int want = 0;
  if (c->closed || c->peer_eof) {
    want = 0;
  } else if (c->state == VC_HEAD) {
    want = c->in.len < VIN_MAX;
  } else if (c->state == VC_PROXY) {
    want = !c->r.stream_blocked && c->in.len < VIN_MAX &&
           !(c->r.discard && c->r.discarded > DISCARD_MAX);
  } else {
    want = c->shut; /* lingering: read and drop until the visitor's FIN */
  }
  if (want && !c->reading) {
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0) c->reading = 1;
  } else if (!want && c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
  }
}

static void write_cb(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  vconn *c = w->c;
  c->writes--;
  if (!c->closed) {
    if (status < 0) {
      wr_debug("visitor %" PRIu64 " (%s): write failed: %s", c->id, c->ip, uv_strerror(status));
      vc_close_now(c);
    } else {
      c->v->stats.bytes_out += w->len;
      if (w->credit && w->gen == c->gen && c->r.st) wr_tunnel_stream_consume(c->r.st, w->credit);
      vc_activity(c);
    }
  }
  free(w);
}

/* Hands the gathered output of |c| to libuv. */
static void vc_flush(vconn *c) {
  wreq *w = c->pend;
  if (!w) return;
  c->pend = NULL;
  if (c->closed) {
    free(w);
    return;
  }
  uv_buf_t ub = uv_buf_init((char *)w->data, (unsigned)w->len);
  int rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, write_cb);
  if (rv != 0) {
    free(w);
    wr_debug("visitor %" PRIu64 " (%s): write failed: %s", c->id, c->ip, uv_strerror(rv));
    vc_close_now(c);
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
static void vc_write3(vconn *c, const void *a, size_t alen, const void *b, size_t blen,
                      const void *d, size_t dlen, size_t credit) {
  if (c->closed || c->shut) return;
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

static void vc_write(vconn *c, const void *a, size_t alen, size_t credit) {
  vc_write3(c, a, alen, NULL, 0, NULL, 0, credit);
}

/* ---- per-source limits ---------------------------------------------------------- */

int wr__visitor_source_key(const struct sockaddr *sa, uint8_t key[WR__VISITOR_KEY_LEN]) {
  memset(key, 0, WR__VISITOR_KEY_LEN);
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    key[10] = key[11] = 0xff;
    memcpy(key + 12, &s4->sin_addr, 4);
    return WR_OK;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    /* A v4-mapped peer is an IPv4 host: the whole address. */
    memcpy(key, s6->sin6_addr.s6_addr, IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) ? 16 : 8);
    return WR_OK;
  }
  return WR_ERR_INVAL;
}

void wr__visitor_source_name(const uint8_t key[WR__VISITOR_KEY_LEN], char *out, size_t cap) {
  char a[INET6_ADDRSTRLEN] = "?";
  static const uint8_t v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!cap) return;
  if (memcmp(key, v4, 12) == 0) {
    inet_ntop(AF_INET, key + 12, a, sizeof(a));
    snprintf(out, cap, "%s", a);
  } else {
    inet_ntop(AF_INET6, key, a, sizeof(a));
    snprintf(out, cap, "%s/64", a);
  }
}

#define SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND                                                                  \
  do {                                                                             \
    v0 += v1; v1 = SIP_ROTL(v1, 13); v1 ^= v0; v0 = SIP_ROTL(v0, 32);              \
    v2 += v3; v3 = SIP_ROTL(v3, 16); v3 ^= v2;                                     \
    v0 += v3; v3 = SIP_ROTL(v3, 21); v3 ^= v0;                                     \
    v2 += v1; v1 = SIP_ROTL(v1, 17); v1 ^= v2; v2 = SIP_ROTL(v2, 32);              \
  } while (0)

/* SipHash-2-4 of a 16-byte key: sources are chosen by the peers. */
static uint64_t src_hash(const wr_visitor *v, const uint8_t key[WR__VISITOR_KEY_LEN]) {
  uint64_t v0 = v->sip_k0 ^ 0x736f6d6570736575ull, v1 = v->sip_k1 ^ 0x646f72616e646f6dull;
  uint64_t v2 = v->sip_k0 ^ 0x6c7967656e657261ull, v3 = v->sip_k1 ^ 0x7465646279746573ull;
  for (int i = 0; i < 2; i++) {
    uint64_t m = 0;
    for (int j = 7; j >= 0; j--) m = (m << 8) | key[8 * i + j];
    v3 ^= m;
    SIP_ROUND;
    SIP_ROUND;
    v0 ^= m;
  }
  uint64_t b = (uint64_t)16 << 56;
  v3 ^= b;
  SIP_ROUND;
  SIP_ROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIP_ROUND;
  SIP_ROUND;
  SIP_ROUND;
  SIP_ROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

/* Milliseconds an empty bucket needs to fill up: a quiet source is freed
 * after that long (0 without a rate limit: nothing to remember). */
static uint64_t bucket_fill_ms(const wr_visitor *v) {
  return v->rate ? (v->burst * 1000 + v->rate - 1) / v->rate : 0;
}

static void bucket_refill(const wr_visitor *v, vsrc *s, uint64_t now) {
  uint64_t cap = v->burst * 1000, el = now > s->stamp ? now - s->stamp : 0;
  s->stamp = now;
  if (!v->rate) return;
  /* |rate| thousandths of a request per millisecond. */
  if (el >= bucket_fill_ms(v) || s->tokens + el * v->rate >= cap)
    s->tokens = cap;
  else
    s->tokens += el * v->rate;
}

/* Takes one request from |s|'s bucket. Returns 1, or 0 with *wait_ms until
 * the next token when the source is over its rate. Untracked: always 1. */
static int bucket_take(wr_visitor *v, vsrc *s, uint64_t now, uint64_t *wait_ms) {
  if (!s || !v->rate) return 1;
  bucket_refill(v, s, now);
  if (s->tokens >= 1000) {
    s->tokens -= 1000;
    return 1;
  }
  *wait_ms = (1000 - s->tokens + v->rate - 1) / v->rate;
  return 0;
}

static void quiet_timer_cb(uv_timer_t *t);

static void quiet_arm(wr_visitor *v) {
  if (v->closing || !v->quiet_head) return;
  uint64_t now = uv_now(v->loop), due = v->quiet_head->stamp + bucket_fill_ms(v);
  uv_timer_start(&v->quiet_timer, quiet_timer_cb, due > now ? due - now : 0, 0);
}

static void quiet_del(wr_visitor *v, vsrc *s) {
  if (!s->quiet) return;
  if (s->qprev)
    s->qprev->qnext = s->qnext;
  else
    v->quiet_head = s->qnext;
  if (s->qnext)
    s->qnext->qprev = s->qprev;
  else
    v->quiet_tail = s->qprev;
  s->qprev = s->qnext = NULL;
  s->quiet = 0;
}

/* |s| has no connections: remember it until its bucket is full. The list
 * stays in |stamp| order because the refill stamps it now. */
static void quiet_add(wr_visitor *v, vsrc *s) {
  if (s->quiet) return;
  bucket_refill(v, s, uv_now(v->loop));
  s->quiet = 1;
  s->qnext = NULL;
  s->qprev = v->quiet_tail;
  if (v->quiet_tail)
    v->quiet_tail->qnext = s;
  else
    v->quiet_head = s;
  v->quiet_tail = s;
  if (v->quiet_head == s) quiet_arm(v);
}

static void src_free(wr_visitor *v, vsrc *s) {
  quiet_del(v, s);
  for (vsrc **pp = &v->srcs[src_hash(v, s->key) & v->src_mask]; *pp; pp = &(*pp)->hnext)
    if (*pp == s) {
      *pp = s->hnext;
      break;
    }
  free(s);
  v->stats.sources--;
}

static void quiet_timer_cb(uv_timer_t *t) {
  wr_visitor *v = t->data;
  uint64_t now = uv_now(v->loop), fill = bucket_fill_ms(v);
  while (v->quiet_head && v->quiet_head->stamp + fill <= now) src_free(v, v->quiet_head);
  quiet_arm(v);
}

/* The entry for |key|, created (quiet, with a full bucket) if new. NULL if
 * the table is full of sources that hold connections. */
static vsrc *src_get(wr_visitor *v, const uint8_t key[WR__VISITOR_KEY_LEN]) {
  size_t b = src_hash(v, key) & v->src_mask;
  for (vsrc *s = v->srcs[b]; s; s = s->hnext)
    if (memcmp(s->key, key, WR__VISITOR_KEY_LEN) == 0) return s;
  if (v->stats.sources >= v->max_sources) {
    /* Reuse the longest-quiet entry: it forgets a little rate history. */
    if (!v->quiet_head) return NULL;
    src_free(v, v->quiet_head);
  }
  vsrc *s = wr_xcalloc(1, sizeof(*s));
  memcpy(s->key, key, WR__VISITOR_KEY_LEN);
  s->tokens = v->burst * 1000;
  s->stamp = uv_now(v->loop);
  s->hnext = v->srcs[b];
  v->srcs[b] = s;
  v->stats.sources++;
  quiet_add(v, s);
  return s;
}

/* 1 if a warning of this kind may be logged now; *more is the count of
 * events not logged since the last one. */
static int warn_due(wr_visitor *v, vwarn *w, uint64_t *more) {
  uint64_t now = uv_now(v->loop);
  if (w->next && now < w->next) {
    w->held++;
    return 0;
  }
  *more = w->held;
  w->held = 0;
  w->next = now + WARN_EVERY_MS;
  return 1;
}

static void idle_enter(vconn *c) {
  wr_visitor *v = c->v;
  if (c->idle || !c->has_slot) return;
  c->idle = 1;
  c->inext = NULL;
  c->iprev = v->idle_tail;
  if (v->idle_tail)
    v->idle_tail->inext = c;
  else
    v->idle_head = c;
  v->idle_tail = c;
}

static void idle_leave(vconn *c) {
  wr_visitor *v = c->v;
  if (!c->idle) return;
  if (c->iprev)
    c->iprev->inext = c->inext;
  else
    v->idle_head = c->inext;
  if (c->inext)
    c->inext->iprev = c->iprev;
  else
    v->idle_tail = c->iprev;
  c->iprev = c->inext = NULL;
  c->idle = 0;
}

static void slot_take(vconn *c, vsrc *s) {
  c->has_slot = 1;
  c->src = s;
  c->v->nslots++;
  if (s && s->conns++ == 0) quiet_del(c->v, s);
}

/* Called as the connection closes: its descriptor is gone from here on. */
static void slot_release(vconn *c) {
  wr_visitor *v = c->v;
  idle_leave(c);
  if (!c->has_slot) return;
  c->has_slot = 0;
  v->nslots--;
  if (c->src && --c->src->conns == 0) quiet_add(v, c->src);
  c->src = NULL;
}

/* The idle connection to close for a newcomer: among the EVICT_SAMPLE
 * oldest, the one whose source holds the most connections (the oldest of
 * those), and only from sources holding at least |min_held|. NULL if none. */
static vconn *pick_victim(wr_visitor *v, size_t min_held) {
  vconn *best = NULL;
  size_t best_held = 0, weighed = 0, walked = 0;
  for (vconn *c = v->idle_head; c && weighed < EVICT_SAMPLE && walked < EVICT_SCAN_MAX;
       c = c->inext) {
    walked++;
    /* The last response may still be on its way out: not idle yet. */
    if (c->writes || c->pend) continue;
    weighed++;
    size_t held = c->src ? c->src->conns : 0;
    if (held < min_held) continue;
    if (!best || held > best_held) {
      best = c;
      best_held = held;
    }
  }
  return best;
}

enum { ADMIT_OK = 0, REFUSE_SOURCE, REFUSE_RESERVE, REFUSE_FULL };

/* May a new connection of |s| (NULL: untracked) take a slot? Closes one
 * idle connection to make room when that is what it takes. */
static int admit(wr_visitor *v, vsrc *s) {
  /* Untracked newcomers are treated as large: no reserve for them. */
  size_t held = s ? s->conns : WR_VISITOR_RESERVE_BELOW;
  if (s && v->max_per_source != WR_VISITOR_OFF && held >= v->max_per_source)
    return REFUSE_SOURCE;
  int small = held < WR_VISITOR_RESERVE_BELOW;
  size_t room = small ? v->max_conns : v->max_conns - v->reserve;
  if (v->nslots < room) return ADMIT_OK;
  /* Under pressure. A large source may only displace connections of
   * sources at least as large as itself (its own included): it cannot
   * push out the visitors the reserve is for. */
  vconn *victim = pick_victim(v, small ? 0 : held);
  if (!victim) return !small && v->nslots < v->max_conns ? REFUSE_RESERVE : REFUSE_FULL;
  v->stats.evicted_idle++;
  uint64_t more = 0;
  if (warn_due(v, &v->warn_evict, &more)) {
    char name[WR__VISITOR_NAME_MAX] = "an untracked source";
    if (victim->src) wr__visitor_source_name(victim->src->key, name, sizeof(name));
    wr_warn("visitor limits: %zu connections open (limit %zu): closed an idle connection of "
            "%s (holding %u) to make room; %" PRIu64 " more since the last warning",
            v->nslots, v->max_conns, name, victim->src ? victim->src->conns : 0, more);
  }
  vc_close_now(victim);
  return ADMIT_OK;
}

/* Logs a refusal, at most once per WARN_EVERY_MS per kind. */
static void warn_refusal(wr_visitor *v, int why, const vsrc *s) {
  char name[WR__VISITOR_NAME_MAX] = "an untracked source";
  uint64_t more = 0;
  vwarn *w = why == REFUSE_SOURCE ? &v->warn_source : &v->warn_full;
  if (!warn_due(v, w, &more)) return;
  if (s) wr__visitor_source_name(s->key, name, sizeof(name));
  if (why == REFUSE_SOURCE)
    wr_warn("visitor limits: refusing connections from %s: it holds %u (the per-source "
            "limit); %" PRIu64 " more refusals of this kind since the last warning",
            name, s ? s->conns : 0, more);
  else
    wr_warn("visitor limits: refusing a connection from %s: %zu connections open (limit %zu, "
            "the last %zu kept for sources holding fewer than %d) and none idle to close; "
            "%" PRIu64 " more refusals of this kind since the last warning",
            name, v->nslots, v->max_conns, v->reserve, WR_VISITOR_RESERVE_BELOW, more);
}

/* ---- closing ------------------------------------------------------------------- */

static void visitor_maybe_free(wr_visitor *v) {
  if (!v->closing || v->listener_open || v->aux_open || v->conns) return;
  for (size_t i = 0; i < ROUTE_BUCKETS; i++) {
    route_ent *e = v->routes[i];
    while (e) {
      route_ent *n = e->next;
      free(e);
      e = n;
    }
  }
  for (size_t i = 0; v->srcs && i <= v->src_mask; i++) {
    vsrc *e = v->srcs[i];
    while (e) {
      vsrc *n = e->hnext;
      free(e);
      e = n;
    }
  }
  free(v->srcs);
  free(v);
}

static void close_cb(uv_handle_t *h) {
  vconn *c = h->data;
  if (--c->handles > 0) return;
  wr_visitor *v = c->v;
  if (c->prev)
    c->prev->next = c->next;
  else
    v->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  v->stats.active_conns--;
  wr_buf_free(&c->in);
  wr_buf_free(&c->rhead);
  free(c->pend);
  free(c);
  visitor_maybe_free(v);
}

/* Lets go of the data stream: |code| >= 0 aborts what is still open (RESET
 * + STOP_SENDING), -1 ends it normally (FIN if not sent yet). */
static void release_stream(vconn *c, int64_t code) {
  if (!c->r.st) return;
  wr_tunnel_stream_abandon(c->r.st, code);
  c->r.st = NULL;
  c->r.stream_blocked = 0;
  c->gen++;
  c->v->stats.active_streams--;
}

static void vc_close_now(vconn *c) {
  if (c->closed) return;
  release_stream(c, 0);
  undirty(c);
  free(c->pend);
  c->pend = NULL;
  c->closed = 1;
  c->reading = 0;
  slot_release(c);
  uv_close((uv_handle_t *)&c->tcp, close_cb);
  uv_close((uv_handle_t *)&c->timer, close_cb);
  uv_close((uv_handle_t *)&c->kick, close_cb);
}

/* A broken response: the visitor must see that it is incomplete. A chunked
 * or Content-Length body simply stops before its end; a close-delimited one
 * (HTTP/1.0) can only say so with a TCP reset. */
static void vc_abort(vconn *c, const char *why) {
  wr_warn("visitor %" PRIu64 " (%s): %s %s%s: response broken after %" PRIu64
          " bytes: %s tunnel=%s connection=%s stream=%" PRId64,
          c->id, c->ip, c->r.method, c->r.host, c->r.target, c->r.down, why, c->r.tunnel_id,
          c->r.conn_id[0] ? c->r.conn_id : "-", c->r.sid);
  if (c->r.resp == RS_EOF && !c->closed) {
    release_stream(c, 0);
    undirty(c);
    free(c->pend);
    c->pend = NULL;
    c->closed = 1;
    c->reading = 0;
    slot_release(c);
    uv_tcp_close_reset(&c->tcp, close_cb);
    uv_close((uv_handle_t *)&c->timer, close_cb);
    uv_close((uv_handle_t *)&c->kick, close_cb);
    return;
  }
  vc_finish(c);
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  vconn *c = req->data;
  if (c->closed) return;
  c->shut_done = 1;
  if (status < 0 || c->peer_eof) {
    vc_close_now(c);
    return;
  }
  vc_arm(c, T_LINGER, LINGER_MS);
  vc_update_reading(c);
}

/* Graceful end of the connection: what was written goes out, then our FIN,
 * then we wait (bounded) for the visitor's FIN so that a close with unread
 * input does not turn into a reset that destroys the last response. */
static void vc_finish(vconn *c) {
  if (c->closed || c->state == VC_CLOSING) return;
  release_stream(c, 0);
  idle_leave(c);
  c->state = VC_CLOSING;
  wr_buf_reset(&c->in);
  uv_timer_stop(&c->kick);
  /* Flushing to a visitor that does not read is bounded too. */
  vc_arm(c, T_LINGER, c->v->idle_timeout_ms);
  /* What was gathered goes out before our FIN. */
  undirty(c);
  vc_flush(c);
  if (c->closed) return;
  c->shutreq.data = c;
  if (uv_shutdown(&c->shutreq, (uv_stream_t *)&c->tcp, shutdown_cb) != 0) {
    vc_close_now(c);
    return;
  }
  c->shut = 1;
  vc_update_reading(c);
}

/* ---- answering ----------------------------------------------------------------- */

static void count_response(vconn *c, int status) {
  wr_visitor_stats *st = &c->v->stats;
  c->r.status = status;
  st->requests++;
  if (status >= 100 && status < 600) st->responses_by_class[status / 100]++;
}

static size_t html_escape(const char *s, char *out, size_t cap) {
  size_t o = 0;
  for (; *s && o + 7 < cap; s++) {
    const char *rep = NULL;
    switch (*s) {
      case '&': rep = "&amp;"; break;
      case '<': rep = "&lt;"; break;
      case '>': rep = "&gt;"; break;
      case '"': rep = "&quot;"; break;
      case '\'': rep = "&#39;"; break;
      default: break;
    }
    if (rep) {
      size_t l = strlen(rep);
      memcpy(out + o, rep, l);
      o += l;
    } else if ((unsigned char)*s >= 0x20 && *s != 0x7f) {
      out[o++] = *s;
    }
  }
  out[o] = '\0';
  return o;
}

/* Answers the current request from the edge itself, with |extra| (or NULL)
 * among the headers. */
static void vc_local_h(vconn *c, int status, const char *msg, int force_close,
                       const wr_http_header *extra) {
  if (c->closed || c->state == VC_CLOSING) return;
  if (c->r.status) { /* the head went out already: it can only break */
    vc_abort(c, msg);
    return;
  }
  release_stream(c, 0);
  int close = force_close || !c->r.keep_alive || !body_complete(c);
  const char *reason = wr_http1_reason(status);
  char esc[1024], body[1536], clen[24];
  html_escape(msg, esc, sizeof(esc));
  int blen = snprintf(body, sizeof(body),
                      "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>\n"
                      "<body><h1>%d %s</h1>\n<p>%s</p>\n<hr><p>warren-edge</p></body></html>\n",
                      status, reason, status, reason, esc);
  if (blen < 0) blen = 0;
  if ((size_t)blen >= sizeof(body)) blen = (int)sizeof(body) - 1;
  snprintf(clen, sizeof(clen), "%d", blen);
  wr_http_header h[5] = {
      {"Content-Type", 12, "text/html; charset=utf-8", 24},
      {"Content-Length", 14, clen, strlen(clen)},
      {"Cache-Control", 13, "no-store", 8},
  };
  size_t nh = 3;
  if (extra) h[nh++] = *extra;
  if (close) h[nh++] = (wr_http_header){"Connection", 10, "close", 5};
  wr_buf hb;
  wr_buf_init(&hb, 4096, NULL);
  if (wr_http1_write_response_head(&hb, status, NULL, h, nh) != WR_OK) {
    wr_buf_free(&hb);
    vc_close_now(c);
    return;
  }
  count_response(c, status);
  vc_write3(c, hb.data, hb.len, body, c->r.is_head ? 0 : (size_t)blen, NULL, 0, 0);
  wr_buf_free(&hb);
  if (status >= 500)
    wr_warn("visitor %" PRIu64 " (%s): %s %s%s: %d %s tunnel=%s connection=%s stream=%" PRId64,
            c->id, c->ip, c->r.method[0] ? c->r.method : "-", c->r.host, c->r.target, status,
            msg, c->r.tunnel_id[0] ? c->r.tunnel_id : "-", c->r.conn_id[0] ? c->r.conn_id : "-",
            c->r.sid);
  vc_end_request(c, close);
}

static void vc_local(vconn *c, int status, const char *msg, int force_close) {
  vc_local_h(c, status, msg, force_close, NULL);
}

/* The request is over (answered, or the connection is ending). */
static void vc_end_request(vconn *c, int close) {
  wr_visitor *v = c->v;
  if (c->r.status || c->r.method[0])
    wr_debug("visitor %" PRIu64 " %s \"%s %s%s HTTP/1.%d\" %d tunnel=%s connection=%s "
             "stream=%" PRId64 " up=%" PRIu64 " down=%" PRIu64 " %" PRIu64 "ms",
             c->id, c->ip, c->r.method[0] ? c->r.method : "-", c->r.host, c->r.target,
             c->r.minor, c->r.status,
             c->r.tunnel_id[0] ? c->r.tunnel_id : "-", c->r.conn_id[0] ? c->r.conn_id : "-",
             c->r.sid, c->r.up, c->r.down, uv_now(v->loop) - c->r.t0);
  int clean = (c->r.resp == RS_DONE && body_complete(c)) || c->r.resp == RS_PIPE;
  release_stream(c, clean ? -1 : 0);
  int keep = !close && c->r.keep_alive && !(c->peer_eof && c->in.len == 0);
  memset(&c->r, 0, sizeof(c->r));
  c->r.sid = -1;
  wr_buf_reset(&c->rhead);
  if (!keep) {
    vc_finish(c);
    return;
  }
  c->state = VC_HEAD;
  c->tmode = T_NONE;
  c->scanned = 0;
  if (c->in.len == 0) wr_buf_free(&c->in); /* idle: give the buffer back */
  vc_kick(c);
}

/* Response and request body both done: next request. */
static void vc_check_done(vconn *c) {
  if (c->closed || c->state != VC_PROXY || c->r.resp != RS_DONE) return;
  if (body_complete(c)) {
    vc_end_request(c, 0);
    return;
  }
  /* The answer is complete while the visitor is still sending its body
   * (the origin did not need it): the connector is done with the stream;
   * read the rest of the body and drop it, so keep-alive survives. */
  release_stream(c, 0);
  if (c->r.discarded > DISCARD_MAX) {
    vc_end_request(c, 1);
  } else if (!c->r.discard) {
    c->r.discard = 1;
    vc_kick(c); /* drain what is buffered */
  }
}

/* An error before or after the response head: a page, or a broken response. */
static void vc_fail(vconn *c, int status, const char *msg) {
  if (c->r.status)
    vc_abort(c, msg);
  else
    vc_local(c, status, msg, 0);
}

/* ---- request body: visitor -> connector --------------------------------------- */

/* Writes body bytes to the stream (or drops them in discard mode).
 * Returns WR_OK or WR_AGAIN (blocked; *acc bytes were taken). */
static int fwd(vconn *c, const uint8_t *p, size_t n, int fin, size_t *acc) {
  *acc = 0;
  if (c->r.discard || !c->r.st) {
    if (c->r.body == RB_PIPE) { /* the pipe's other end is gone */
      vc_end_request(c, 1);
      return WR_AGAIN;
    }
    c->r.discard = 1;
    c->r.discarded += n;
    *acc = n;
    return WR_OK;
  }
  int rv = wr_tunnel_stream_write(c->r.st, p, n, fin, acc);
  c->r.up += *acc;
  if (rv == WR_AGAIN) {
    c->r.stream_blocked = 1;
    return WR_AGAIN;
  }
  if (rv != WR_OK) {
    /* The connector stopped reading (STOP_SENDING once its response was
     * complete, as cloudflared does) or the stream is closing. */
    wr_debug("visitor %" PRIu64 ": stream %" PRId64 " takes no more body (%s); dropping the rest",
             c->id, c->r.sid, wr_strerror(rv));
    if (c->r.body == RB_PIPE) {
      vc_end_request(c, 1);
      return WR_AGAIN;
    }
    c->r.discard = 1;
    c->r.discarded += n - *acc;
    *acc = n;
  }
  return WR_OK;
}

static void body_done(vconn *c) {
  c->r.body = RB_DONE;
  vc_check_done(c);
}

static void pump_body(vconn *c) {
  while (!c->closed && c->state == VC_PROXY && !c->r.stream_blocked) {
    size_t acc = 0;
    int rv;
    if (c->r.discard && c->r.discarded > DISCARD_MAX) {
      c->r.keep_alive = 0;
      if (c->r.resp == RS_DONE) vc_end_request(c, 1);
      return;
    }
    if (c->r.body == RB_LENGTH) {
      size_t n = c->in.len < c->r.body_left ? c->in.len : (size_t)c->r.body_left;
      if (n == 0) return;
      rv = fwd(c, c->in.data, n, n == c->r.body_left, &acc);
      if (c->closed || c->state != VC_PROXY) return;
      wr_buf_consume(&c->in, acc);
      c->r.body_left -= acc;
      if (c->r.body_left == 0) body_done(c);
      if (rv == WR_AGAIN) return;
    } else if (c->r.body == RB_CHUNKED) {
      if (c->r.chunk_raw) {
        size_t n = c->r.chunk_raw < c->in.len ? c->r.chunk_raw : c->in.len;
        if (n == 0) return; /* cannot happen: they sit at the front of |in| */
        rv = fwd(c, c->in.data, n, 0, &acc);
        wr_buf_consume(&c->in, acc);
        c->r.chunk_raw -= acc;
        if (rv == WR_AGAIN) return;
        continue;
      }
      if (c->r.chunked.done) {
        rv = fwd(c, NULL, 0, 1, &acc);
        if (rv == WR_AGAIN) return;
        body_done(c);
        continue;
      }
      size_t used = 0, off = 0, dlen = 0;
      rv = wr_http1_chunked_decode(&c->r.chunked, c->in.data, c->in.len, &used, &off, &dlen);
      if (rv != WR_OK) {
        wr_buf_reset(&c->in);
        c->r.keep_alive = 0;
        if (c->r.status) {
          vc_abort(c, "malformed chunked request body");
        } else {
          c->r.body = RB_DONE; /* nothing more will be read */
          vc_local(c, 400, "The chunked request body is malformed.", 1);
        }
        return;
      }
      if (dlen) {
        rv = fwd(c, c->in.data + off, dlen, 0, &acc);
        size_t rem = dlen - acc;
        /* Keep the unsent data at the front, drop the framing around it. */
        if (rem) memmove(c->in.data + used - rem, c->in.data + off + acc, rem);
        wr_buf_consume(&c->in, used - rem);
        c->r.chunk_raw = rem;
        if (rv == WR_AGAIN) return;
      } else {
        wr_buf_consume(&c->in, used);
        if (used == 0 && !c->r.chunked.done) return; /* need more bytes */
      }
    } else if (c->r.body == RB_PIPE) {
      if (c->in.len == 0) return;
      rv = fwd(c, c->in.data, c->in.len, 0, &acc);
      if (c->closed || c->state != VC_PROXY) return;
      wr_buf_consume(&c->in, acc);
      if (rv == WR_AGAIN) return;
    } else {
      return;
    }
  }
}

/* ---- response: connector -> visitor ----------------------------------------------- */

static void consume_now(vconn *c, size_t n) {
  if (c->r.st && n) wr_tunnel_stream_consume(c->r.st, n);
}

static void resp_body(vconn *c, const uint8_t *data, size_t len, int fin, size_t credit) {
  char ch[24];
  switch (c->r.resp) {
    case RS_LENGTH: {
      size_t n = len < c->r.resp_left ? len : (size_t)c->r.resp_left;
      if (n) vc_write(c, data, n, credit > n ? n : credit);
      if (credit > n) consume_now(c, credit - n);
      if (len > n)
        wr_debug("visitor %" PRIu64 ": stream %" PRId64 " sent %zu bytes past Content-Length",
                 c->id, c->r.sid, len - n);
      c->r.resp_left -= n;
      c->r.down += n;
      if (c->r.resp_left == 0) {
        c->r.resp = RS_DONE;
        vc_check_done(c);
      } else if (fin) {
        vc_abort(c, "the connector ended the body before Content-Length");
      }
      return;
    }
    case RS_CHUNKED:
      if (len) {
        size_t hl = wr_http1_chunk_header(len, ch);
        vc_write3(c, ch, hl, data, len, "\r\n", 2, credit);
        c->r.down += len;
      } else {
        consume_now(c, credit);
      }
      if (fin) {
        vc_write(c, WR_HTTP1_LAST_CHUNK, strlen(WR_HTTP1_LAST_CHUNK), 0);
        c->r.resp = RS_DONE;
        vc_check_done(c);
      }
      return;
    case RS_EOF:
    case RS_PIPE:
      if (len) {
        vc_write(c, data, len, credit);
        c->r.down += len;
      } else {
        consume_now(c, credit);
      }
      if (fin) {
        if (c->r.resp == RS_PIPE) {
          vc_end_request(c, 1); /* either side ending ends the pipe */
        } else {
          c->r.resp = RS_DONE;
          c->r.keep_alive = 0;
          vc_check_done(c);
        }
      }
      return;
    default: /* RS_DONE: a body that must not be forwarded (HEAD, 204, 304) */
      consume_now(c, credit);
      return;
  }
}

/* Builds and sends the visitor's response head from the ConnectResponse
 * metadata. Returns WR_OK or an error after which |why| says what to tell
 * the visitor (502). */
static int send_head(vconn *c, const wr_connect_response *cr, const char **why) {
  wr_http_header in[MAX_RESP_HEADERS], out[MAX_RESP_HEADERS + 4];
  wr_httpmeta_response mr;
  size_t n = 0;
  int rv = wr_httpmeta_resp_decode(cr->meta, cr->nmeta, NULL, in, MAX_RESP_HEADERS, &mr);
  if (rv != WR_OK) {
    *why = "The connector sent an invalid response (bad status or headers).";
    return rv;
  }
  int status = mr.status, has_cl = 0;
  uint64_t cl = 0;
  const char *upg = NULL;
  size_t upg_len = 0;
  for (size_t i = 0; i < mr.nheaders; i++) {
    const wr_http_header *h = &in[i];
    if (ieq(h->name, h->name_len, "Content-Length")) {
      uint64_t x = 0;
      if (h->value_len == 0 || h->value_len > 18) goto bad_cl;
      for (size_t j = 0; j < h->value_len; j++) {
        if (h->value[j] < '0' || h->value[j] > '9') goto bad_cl;
        x = x * 10 + (uint64_t)(h->value[j] - '0');
      }
      if (has_cl && x != cl) goto bad_cl;
      if (has_cl) continue; /* one copy is enough */
      has_cl = 1;
      cl = x;
    }
    if (wr_http1_is_hop_by_hop(h->name, h->name_len)) {
      if (ieq(h->name, h->name_len, "Upgrade")) {
        upg = h->value;
        upg_len = h->value_len;
      }
      continue;
    }
    out[n++] = *h;
  }

  int mode;
  if (status == 101) {
    if (!c->r.websocket) {
      *why = "The connector switched protocols for a request that did not ask to.";
      return WR_ERR_PROTO;
    }
    mode = RS_PIPE;
    /* Content-Length means nothing after 101. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      if (!ieq(out[i].name, out[i].name_len, "Content-Length")) out[k++] = out[i];
    n = k;
    out[n++] = (wr_http_header){"Connection", 10, "Upgrade", 7};
    if (upg && upg_len)
      out[n++] = (wr_http_header){"Upgrade", 7, upg, upg_len};
    else
      out[n++] = (wr_http_header){"Upgrade", 7, "websocket", 9};
  } else if (status < 200) {
    *why = "The connector sent an unexpected interim response.";
    return WR_ERR_PROTO;
  } else if (c->r.is_head || status == 204 || status == 304) {
    mode = RS_DONE;
  } else if (has_cl) {
    mode = cl ? RS_LENGTH : RS_DONE;
  } else if (c->r.minor >= 1) {
    mode = RS_CHUNKED;
    out[n++] = (wr_http_header){"Transfer-Encoding", 17, "chunked", 7};
  } else {
    mode = RS_EOF;
    c->r.keep_alive = 0;
  }
  if (mode != RS_PIPE) {
    if (!c->r.keep_alive)
      out[n++] = (wr_http_header){"Connection", 10, "close", 5};
    else if (c->r.minor == 0)
      out[n++] = (wr_http_header){"Connection", 10, "keep-alive", 10};
  }
  wr_buf hb;
  wr_buf_init(&hb, 256u * 1024u, NULL);
  rv = wr_http1_write_response_head(&hb, status, NULL, out, n);
  if (rv != WR_OK) {
    wr_buf_free(&hb);
    *why = "The connector sent response headers that cannot be forwarded.";
    return rv;
  }
  count_response(c, status);
  vc_write(c, hb.data, hb.len, 0);
  wr_buf_free(&hb);
  c->r.resp = mode;
  c->r.resp_left = cl;
  if (mode == RS_PIPE) {
    c->r.body = RB_PIPE;
    vc_kick(c); /* visitor bytes already buffered go up the pipe */
  }
  return WR_OK;

bad_cl:
  *why = "The connector sent an invalid Content-Length.";
  return WR_ERR_PROTO;
}

/* Bytes for the response head arrived (already appended to rhead). */
static void resp_head(vconn *c, int fin) {
  char msg[600];
  if (c->rhead.len < WR_PREAMBLE_DATA_LEN) {
    if (fin) vc_fail(c, 502, "The connector closed the stream without a response.");
    return;
  }
  size_t pc = 0;
  if (wr_preamble_classify(c->rhead.data, WR_PREAMBLE_DATA_LEN, &pc, NULL) != WR_PREAMBLE_DATA) {
    vc_fail(c, 502, "The connector answered with an invalid stream preamble.");
    return;
  }
  wr_connect_response cr;
  size_t used = 0;
  int rv = wr_connect_response_decode_alloc(c->rhead.data + WR_PREAMBLE_DATA_LEN,
                                            c->rhead.len - WR_PREAMBLE_DATA_LEN, NULL, NULL, 0,
                                            &cr, &used);
  if (rv == WR_AGAIN) {
    if (fin)
      vc_fail(c, 502, "The connector closed the stream before its response was complete.");
    else if (c->rhead.len >= RESP_HEAD_MAX)
      vc_fail(c, 502, "The connector's response head is too large.");
    return;
  }
  if (rv != WR_OK) {
    snprintf(msg, sizeof(msg), "The connector sent an invalid ConnectResponse (%s).",
             wr_strerror(rv));
    vc_fail(c, 502, msg);
    return;
  }
  if (cr.error_len) {
    snprintf(msg, sizeof(msg), "The connector could not serve this request: %.*s",
             (int)(cr.error_len > 500 ? 500 : cr.error_len), cr.error);
    wr_connect_response_free(NULL, &cr);
    vc_local(c, 502, msg, 0);
    return;
  }
  const char *why = NULL;
  rv = send_head(c, &cr, &why);
  wr_connect_response_free(NULL, &cr);
  if (rv != WR_OK) {
    vc_local(c, 502, why, 0);
    return;
  }
  size_t body_off = WR_PREAMBLE_DATA_LEN + used, left = c->rhead.len - body_off;
  if (c->closed || c->state != VC_PROXY) return;
  if (left || fin) {
    /* Body bytes that came with the head: their credit went back already.
     * Copy them out, rhead is reset below. */
    uint8_t *tmp = left ? wr_xmalloc(left) : NULL;
    if (left) memcpy(tmp, c->rhead.data + body_off, left);
    wr_buf_reset(&c->rhead);
    resp_body(c, tmp, left, fin, 0);
    free(tmp);
  } else {
    wr_buf_reset(&c->rhead);
  }
  if (!c->closed && c->state == VC_PROXY && c->r.resp == RS_DONE) vc_check_done(c);
}

/* ---- tunnel stream callbacks ------------------------------------------------------ */

static int st_on_data(void *user, const uint8_t *data, size_t len, int fin) {
  vconn *c = user;
  if (c->closed || c->state != VC_PROXY) return 0;
  vc_activity(c);
  if (c->r.resp == RS_HEAD) {
    size_t room = RESP_HEAD_MAX - c->rhead.len, take = len < room ? len : room;
    if (wr_buf_append(&c->rhead, data, take) != WR_OK) take = 0;
    /* Head bytes are held here, bounded: their credit goes back now. */
    consume_now(c, take);
    if (take < len) {
      consume_now(c, len - take);
      vc_fail(c, 502, "The connector's response head is too large.");
      return 0;
    }
    resp_head(c, fin);
    return 0;
  }
  resp_body(c, data, len, fin, len);
  return 0;
}

static void st_on_writable(void *user) {
  vconn *c = user;
  c->r.stream_blocked = 0;
  vc_kick(c); /* pump outside the QUIC callback */
}

static void st_on_reset(void *user, uint64_t code) {
  vconn *c = user;
  if (c->closed || c->state != VC_PROXY) return;
  switch (c->r.resp) {
    case RS_HEAD:
      vc_fail(c, 502, "The connector reset the stream before responding.");
      break;
    case RS_PIPE:
      vc_end_request(c, 1);
      break;
    case RS_DONE:
      break;
    default:
      vc_abort(c, "the connector reset the stream");
      break;
  }
}

static void st_on_close(void *user) {
  vconn *c = user;
  /* The handle is freed after this returns: forget it first. */
  if (c->r.st) {
    c->r.st = NULL;
    c->r.stream_blocked = 0;
    c->gen++;
    c->v->stats.active_streams--;
  }
  if (c->closed || c->state != VC_PROXY) return;
  switch (c->r.resp) {
    case RS_HEAD:
      vc_fail(c, 502, "The connection to the connector was lost before it responded.");
      break;
    case RS_PIPE:
      vc_end_request(c, 1);
      break;
    case RS_DONE:
      vc_check_done(c);
      vc_kick(c); /* a body still to be read is now dropped */
      break;
    default:
      vc_abort(c, "the data stream closed before the response was complete");
      break;
  }
}

static const wr_tunnel_stream_callbacks st_cbs = {
    .on_data = st_on_data,
    .on_writable = st_on_writable,
    .on_reset = st_on_reset,
    .on_close = st_on_close,
};

/* ---- routing -------------------------------------------------------------------- */

static unsigned hash_str(const char *s) {
  unsigned h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

static void route_purge(wr_visitor *v, uint64_t now, int all) {
  for (size_t i = 0; i < ROUTE_BUCKETS; i++) {
    route_ent **pp = &v->routes[i];
    while (*pp) {
      route_ent *e = *pp;
      if (all || e->expires <= now) {
        *pp = e->next;
        free(e);
        v->nroutes--;
      } else {
        pp = &e->next;
      }
    }
  }
}

/* |host| (canonical) -> tunnel id: the exact route, else the nearest
 * wildcard "*.parent" route. Answers (also "no route") are cached for
 * route_ttl_ms. Returns WR_OK, WR_ERR_NOTFOUND or a store error. */
static int route_lookup(wr_visitor *v, const char *host, char tunnel_id[WR_STORE_UUID_LEN + 1]) {
  uint64_t now = uv_now(v->loop);
  unsigned b = hash_str(host) % ROUTE_BUCKETS;
  route_ent *e;
  for (e = v->routes[b]; e; e = e->next)
    if (strcmp(e->host, host) == 0) break;
  if (e && e->expires > now) {
    if (!e->found) return WR_ERR_NOTFOUND;
    memcpy(tunnel_id, e->tunnel_id, WR_STORE_UUID_LEN + 1);
    return WR_OK;
  }
  wr_route r;
  int rv = wr_store_route_get(v->store, host, &r);
  if (rv == WR_ERR_INVAL) rv = WR_ERR_NOTFOUND;
  for (const char *p = strchr(host, '.'); rv == WR_ERR_NOTFOUND && p && strchr(p + 1, '.');
       p = strchr(p + 1, '.')) {
    char w[WR_STORE_HOST_MAX + 2];
    snprintf(w, sizeof(w), "*%s", p);
    rv = wr_store_route_get(v->store, w, &r);
    if (rv == WR_ERR_INVAL) rv = WR_ERR_NOTFOUND;
  }
  if (rv != WR_OK && rv != WR_ERR_NOTFOUND) {
    wr_warn("route lookup for %s failed: %s", host, wr_store_errmsg(v->store));
    return rv;
  }
  if (!e) {
    if (v->nroutes >= ROUTE_MAX) route_purge(v, now, 0);
    if (v->nroutes >= ROUTE_MAX) route_purge(v, now, 1);
    size_t hl = strlen(host);
    e = wr_xcalloc(1, sizeof(*e) + hl + 1);
    memcpy(e->host, host, hl + 1);
    e->next = v->routes[b];
    v->routes[b] = e;
    v->nroutes++;
  }
  e->found = rv == WR_OK;
  e->expires = now + v->route_ttl_ms;
  if (e->found) memcpy(e->tunnel_id, r.tunnel_id, sizeof(e->tunnel_id));
  if (rv == WR_OK) memcpy(tunnel_id, r.tunnel_id, WR_STORE_UUID_LEN + 1);
  return rv;
}

/* The host part of an authority, lower-cased, without port or trailing dot,
 * into |out|; the same with ":port" (if any) into |auth|. Returns 0, or -1
 * if it is not a DNS name / IP literal with an optional numeric port. */
static int canon_host(const char *a, size_t n, char *out, size_t cap, char *auth,
                      size_t authcap) {
  size_t end = n;
  if (n && a[0] == '[') {
    const char *rb = memchr(a, ']', n);
    if (!rb) return -1;
    end = (size_t)(rb - a) + 1;
    if (end < n && a[end] != ':') return -1;
  } else {
    const char *colon = memchr(a, ':', n);
    if (colon) end = (size_t)(colon - a);
  }
  if (end < n) { /* a port: digits only */
    if (end + 1 == n || n - end - 1 > 5) return -1;
    for (size_t i = end + 1; i < n; i++)
      if (a[i] < '0' || a[i] > '9') return -1;
  }
  size_t port_at = end;
  if (end && a[end - 1] == '.' && a[0] != '[') end--;
  if (end == 0 || end >= cap || end + (n - port_at) >= authcap) return -1;
  for (size_t i = 0; i < end; i++) {
    char ch = a[i];
    if (ch >= 'A' && ch <= 'Z') ch = (char)(ch + 32);
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
             ch == '_' || (a[0] == '[' && (ch == ':' || ch == '[' || ch == ']'));
    if (!ok) return -1;
    out[i] = ch;
  }
  out[end] = '\0';
  /* cloudflared matches ingress hostnames case-sensitively: send the
   * canonical host, with the port the visitor used. */
  snprintf(auth, authcap, "%s%.*s", out, (int)(n - port_at), a + port_at);
  return 0;
}

/* ---- starting a request --------------------------------------------------------- */

static int drop_request_header(const wr_http_header *h, int expect_handled) {
  return ieq(h->name, h->name_len, "X-Forwarded-For") ||
         ieq(h->name, h->name_len, "X-Forwarded-Proto") ||
         ieq(h->name, h->name_len, "Cf-Connecting-IP") ||
         (expect_handled && ieq(h->name, h->name_len, "Expect"));
}

/* Builds preamble + ConnectRequest into |out|. */
static int build_connect(vconn *c, const wr_http1_head *h, const char *path, size_t path_len,
                         int expect_handled, wr_buf *out) {
  wr_visitor *v = c->v;
  wr_http_header fw[MAX_REQ_HEADERS + 3];
  wr_meta meta[MAX_REQ_HEADERS + 8];
  size_t n = 0;
  /* Content-Length goes once, as plain digits ("5, 5" is one length to the
   * parser but a parse error to cloudflared). */
  char clen[24];
  int cl_done = 0;
  snprintf(clen, sizeof(clen), "%llu", (unsigned long long)h->content_length);
  for (size_t i = 0; i < h->nheaders && n < MAX_REQ_HEADERS; i++) {
    const wr_http_header *x = &h->headers[i];
    if (drop_request_header(x, expect_handled)) continue;
    if (ieq(x->name, x->name_len, "Content-Length")) {
      if (cl_done) continue;
      cl_done = 1;
      fw[n++] = (wr_http_header){x->name, x->name_len, clen, strlen(clen)};
      continue;
    }
    fw[n++] = *x;
  }
  size_t iplen = strlen(c->ip);
  fw[n++] = (wr_http_header){"X-Forwarded-For", 15, c->ip, iplen};
  fw[n++] = (wr_http_header){"X-Forwarded-Proto", 17, v->scheme, strlen(v->scheme)};
  fw[n++] = (wr_http_header){"Cf-Connecting-IP", 16, c->ip, iplen};
  unsigned flags = 0;
  if (c->r.websocket) flags |= WR_HTTPMETA_REQ_WEBSOCKET;
  if (c->r.body == RB_CHUNKED) flags |= WR_HTTPMETA_REQ_CHUNKED;

  wr_buf arena, dest;
  wr_buf_init(&arena, 256u * 1024u, NULL);
  wr_buf_init(&dest, 64u * 1024u, NULL);
  int rv = wr_httpmeta_req_encode(h->method, h->method_len, c->r.authority,
                                  strlen(c->r.authority), fw, n, flags, &arena,
                                  meta, sizeof(meta) / sizeof(meta[0]));
  if (rv < 0) goto out;
  size_t nmeta = (size_t)rv;
  rv = wr_buf_printf(&dest, "%s://%s%s%.*s", v->scheme, c->r.host,
                     path_len && path[0] == '/' ? "" : "/", (int)path_len, path);
  if (rv != WR_OK) goto out;
  uint8_t pre[WR_PREAMBLE_DATA_LEN];
  rv = wr_preamble_write(WR_PREAMBLE_DATA, pre, sizeof(pre));
  if (rv < 0) goto out;
  rv = wr_buf_append(out, pre, (size_t)rv);
  if (rv != WR_OK) goto out;
  wr_connect_request req = {
      .dest = (const char *)dest.data,
      .dest_len = dest.len,
      .type = c->r.websocket ? WR_CONNECT_WEBSOCKET : WR_CONNECT_HTTP,
      .has_meta = 1,
      .meta = meta,
      .nmeta = nmeta,
  };
  rv = wr_connect_request_encode(&req, NULL, out);
out:
  wr_buf_free(&arena);
  wr_buf_free(&dest);
  return rv;
}

/* Charges the request to its source. Over the rate: answers 429 with
 * Retry-After and returns 1. The connection stays if the visitor waits that
 * long before its next request; one that sends again sooner while still
 * over the rate is pushing on, and is closed. */
static int over_rate(vconn *c, size_t used) {
  wr_visitor *v = c->v;
  uint64_t now = uv_now(v->loop), wait_ms = 0, more = 0;
  if (bucket_take(v, c->src, now, &wait_ms)) {
    c->retry_at = 0;
    return 0;
  }
  uint64_t secs = wait_ms < 1000 ? 1 : (wait_ms + 999) / 1000;
  int pushing = c->retry_at && now < c->retry_at;
  char ra[24], msg[160], name[WR__VISITOR_NAME_MAX];
  snprintf(ra, sizeof(ra), "%" PRIu64, secs);
  c->retry_at = now + secs * 1000;
  v->stats.rate_limited++;
  if (pushing) v->stats.rate_limited_closed++;
  if (warn_due(v, &v->warn_rate, &more)) {
    wr__visitor_source_name(c->src->key, name, sizeof(name));
    wr_warn("visitor limits: %s is over %" PRIu64 " requests/s (burst %" PRIu64 "): 429%s; "
            "%" PRIu64 " more since the last warning",
            name, v->rate, v->burst, pushing ? " and connection closed" : "", more);
  }
  snprintf(msg, sizeof(msg),
           "Too many requests from your address. Retry in %" PRIu64 " second%s.", secs,
           secs == 1 ? "" : "s");
  wr_http_header h = {"Retry-After", 11, ra, strlen(ra)};
  wr_buf_consume(&c->in, used);
  vc_local_h(c, 429, msg, pushing, &h);
  return 1;
}

/* A complete head is at the front of c->in (|used| bytes). Routes it and
 * opens the data stream, or answers locally. */
static void start_request(vconn *c, const wr_http1_head *h, size_t used) {
  wr_visitor *v = c->v;
  vreq *r = &c->r;
  char msg[512];
  memset(r, 0, sizeof(*r));
  r->sid = -1;
  r->t0 = uv_now(v->loop);
  r->minor = h->minor;
  r->keep_alive = h->keep_alive;
  snprintf(r->method, sizeof(r->method), "%.*s", (int)h->method_len, h->method);
  r->is_head = ieq(h->method, h->method_len, "HEAD");
  r->body = h->body == WR_HTTP1_BODY_LENGTH ? (h->content_length ? RB_LENGTH : RB_NONE)
            : h->body == WR_HTTP1_BODY_CHUNKED ? RB_CHUNKED
                                               : RB_NONE;
  r->body_left = r->body == RB_LENGTH ? h->content_length : 0;
  wr_http1_chunked_init(&r->chunked);
  r->resp = RS_HEAD;
  c->state = VC_PROXY; /* vc_local and friends expect it; undone on every early answer */

  /* Where to: origin-form uses Host, absolute-form its own authority. */
  const char *t = h->target, *auth = NULL, *path = NULL;
  size_t tl = h->target_len, auth_len = 0, path_len = 0;
  size_t skip = tl >= 7 && strncasecmp(t, "http://", 7) == 0    ? 7
                : tl >= 8 && strncasecmp(t, "https://", 8) == 0 ? 8
                                                                : 0;
  if (tl && t[0] == '/') {
    auth = h->host;
    auth_len = h->host_len;
    path = t;
    path_len = tl;
  } else if (skip) {
    size_t i = skip;
    while (i < tl && t[i] != '/' && t[i] != '?' && t[i] != '#') i++;
    auth = t + skip;
    auth_len = i - skip;
    path = t + i;
    path_len = tl - i;
  }
  snprintf(r->target, sizeof(r->target), "%.*s", (int)(path_len ? path_len : tl),
           path_len ? path : t);
  if (over_rate(c, used)) return;
  int bad_host = !auth || canon_host(auth, auth_len, r->host, sizeof(r->host), r->authority,
                                     sizeof(r->authority)) != 0;
  if (ieq(h->method, h->method_len, "CONNECT") || !path || bad_host) {
    wr_buf_consume(&c->in, used);
    r->keep_alive = 0;
    vc_local(c, 400,
             !path ? "This request-target is not supported."
                   : !auth ? "The request has no Host header." : "The Host header is invalid.",
             1);
    return;
  }
  r->websocket = h->websocket && ieq(h->method, h->method_len, "GET") && r->body == RB_NONE;

  int rv = route_lookup(v, r->host, r->tunnel_id);
  if (rv == WR_ERR_NOTFOUND) {
    wr_buf_consume(&c->in, used);
    v->stats.no_route++;
    snprintf(msg, sizeof(msg), "There is no route for host %s on this edge.", r->host);
    vc_local(c, 404, msg, 0);
    return;
  }
  if (rv != WR_OK) {
    wr_buf_consume(&c->in, used);
    vc_local(c, 502, "The edge could not look up the route for this host.", 0);
    return;
  }
  if (wr_tunnel_server_count(v->ts, r->tunnel_id) == 0) {
    wr_buf_consume(&c->in, used);
    v->stats.no_connector++;
    snprintf(msg, sizeof(msg), "No connector is connected for tunnel %s (host %s).",
             r->tunnel_id, r->host);
    vc_local(c, 502, msg, 0);
    return;
  }

  int expect = h->expect_continue && r->body != RB_NONE;
  wr_buf out;
  wr_buf_init(&out, 1u << 20, NULL);
  rv = build_connect(c, h, path, path_len, expect, &out);
  wr_buf_consume(&c->in, used); /* |h| points into c->in: not used below */
  if (rv != WR_OK) {
    wr_buf_free(&out);
    vc_local(c, 400, "The request cannot be forwarded through the tunnel.", 1);
    return;
  }
  rv = wr_tunnel_server_open_stream(v->ts, r->tunnel_id, &st_cbs, c, &r->st);
  if (rv != WR_OK) {
    wr_buf_free(&out);
    if (rv == WR_ERR_NOTFOUND) {
      v->stats.no_connector++;
      snprintf(msg, sizeof(msg), "No connector is connected for tunnel %s (host %s).",
               r->tunnel_id, r->host);
      vc_local(c, 502, msg, 0);
    } else {
      vc_local(c, 503, "The tunnel's connectors are at their stream limit.", 0);
    }
    return;
  }
  v->stats.active_streams++;
  r->sid = wr_tunnel_stream_id(r->st);
  snprintf(r->conn_id, sizeof(r->conn_id), "%s", wr_tunnel_stream_conn_id(r->st));
  /* One write for preamble + ConnectRequest (protocol.md 4.1 hazard). */
  int fin = r->body == RB_NONE && !r->websocket;
  size_t acc = 0;
  rv = wr_tunnel_stream_write(r->st, out.data, out.len, fin, &acc);
  wr_buf_free(&out);
  if (rv != WR_OK) {
    vc_local(c, 502, "The edge could not write the request to the connector.", 0);
    return;
  }
  vc_arm(c, T_PROXY, v->proxy_idle_ms);
  if (expect && r->minor >= 1) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    vc_write(c, cont, sizeof(cont) - 1, 0);
  }
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

static void vc_process(vconn *c) {
  wr_visitor *v = c->v;
  while (!c->closed && c->state == VC_HEAD) {
    if (c->in.len == 0) {
      if (c->peer_eof) {
        vc_finish(c); /* earlier answers still flush */
        return;
      }
      if (c->tmode != T_IDLE) vc_arm(c, T_IDLE, v->idle_timeout_ms);
      idle_enter(c);
      break;
    }
    if (c->tmode != T_HEADER) vc_arm(c, T_HEADER, v->header_timeout_ms);
    int rv = WR_AGAIN;
    wr_http_header hdrs[MAX_REQ_HEADERS];
    wr_http1_head h;
    size_t used = 0;
    if (head_ready(c))
      rv = wr_http1_parse_request(c->in.data, c->in.len, NULL, hdrs, MAX_REQ_HEADERS, &h, &used);
    if (rv == WR_AGAIN) {
      if (c->peer_eof) vc_finish(c);
      break;
    }
    c->scanned = 0;
    if (rv == WR_ERR_LIMIT) {
      memset(&c->r, 0, sizeof(c->r));
      c->r.sid = -1;
      c->r.t0 = uv_now(v->loop);
      vc_local(c, 431, "The request header is too large.", 1);
      return;
    }
    if (rv != WR_OK) {
      memset(&c->r, 0, sizeof(c->r));
      c->r.sid = -1;
      c->r.t0 = uv_now(v->loop);
      vc_local(c, 400, "The request is malformed.", 1);
      return;
    }
    start_request(c, &h, used);
  }
  if (!c->closed && c->state == VC_PROXY) {
    pump_body(c);
    if (!c->closed && c->state == VC_PROXY && c->r.resp == RS_DONE) vc_check_done(c);
  }
  vc_update_reading(c);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  vconn *c = s->data;
  if (c->closed) return;
  if (nread > 0) {
    c->v->stats.bytes_in += (uint64_t)nread;
    if (c->state == VC_CLOSING) return; /* lingering: dropped */
    idle_leave(c);
    if (buf->base == (char *)c->v->idle_rbuf) {
      if (wr_buf_append(&c->in, buf->base, (size_t)nread) != WR_OK) {
        vc_close_now(c);
        return;
      }
    } else {
      c->in.len += (size_t)nread;
    }
    vc_activity(c);
    vc_process(c);
    return;
  }
  if (nread == 0) return;
  if (nread != UV_EOF) {
    wr_debug("visitor %" PRIu64 " (%s): read failed: %s", c->id, c->ip,
             uv_strerror((int)nread));
    vc_close_now(c);
    return;
  }
  c->peer_eof = 1;
  vc_update_reading(c);
  if (c->state == VC_CLOSING) {
    if (c->shut_done) vc_close_now(c); /* else shutdown_cb closes */
    return;
  }
  if (c->state == VC_HEAD) {
    vc_process(c);
    return;
  }
  /* Proxying. A visitor that half-closes after a complete request still
   * gets its answer; one that leaves mid-body or ends a pipe ends it all. */
  if (c->r.body == RB_PIPE || c->r.websocket) {
    vc_end_request(c, 1);
  } else if (body_complete(c) ||
             (c->r.body == RB_LENGTH && c->in.len >= c->r.body_left)) {
    c->r.keep_alive = 0;
    vc_process(c);
  } else {
    wr_debug("visitor %" PRIu64 " (%s): went away during the request body", c->id, c->ip);
    vc_close_now(c);
  }
}

static void timer_cb(uv_timer_t *t) {
  vconn *c = t->data;
  if (c->closed) return;
  switch (c->tmode) {
    case T_IDLE:
    case T_LINGER:
      vc_close_now(c);
      break;
    case T_HEADER:
      memset(&c->r, 0, sizeof(c->r));
      c->r.sid = -1;
      c->r.t0 = uv_now(c->v->loop);
      vc_local(c, 408, "The request header did not arrive in time.", 1);
      break;
    case T_PROXY:
      c->r.keep_alive = 0;
      vc_fail(c, 504, "The connector did not answer in time.");
      break;
    default:
      break;
  }
}

/* ---- listener and API ---------------------------------------------------------- */

static void peer_ip(vconn *c, const struct sockaddr_storage *ss) {
  snprintf(c->ip, sizeof(c->ip), "0.0.0.0");
  if (ss->ss_family == AF_INET) {
    uv_ip4_name((const struct sockaddr_in *)ss, c->ip, sizeof(c->ip));
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
      inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], c->ip, sizeof(c->ip));
    else
      uv_ip6_name(s6, c->ip, sizeof(c->ip));
  }
}

/* A refused connection only ever had its TCP handle. */
static void refused_close_cb(uv_handle_t *h) { free(h->data); }

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
  uint8_t key[WR__VISITOR_KEY_LEN];
  if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0 ||
      uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) != 0) {
    uv_close((uv_handle_t *)&c->tcp, refused_close_cb); /* gone already */
    return;
  }
  vsrc *s = NULL;
  if (wr__visitor_source_key((struct sockaddr *)&ss, key) == WR_OK) s = src_get(v, key);
  if (!s) {
    uint64_t more = 0;
    v->stats.untracked_conns++;
    if (warn_due(v, &v->warn_table, &more))
      wr_warn("visitor limits: %zu sources tracked (the table's limit): a new one gets only "
              "the global limits; %" PRIu64 " more since the last warning",
              (size_t)v->stats.sources, more);
  }
  int why = admit(v, s);
  if (why != ADMIT_OK) {
    v->stats.conns_refused++;
    if (why == REFUSE_SOURCE)
      v->stats.refused_per_source++;
    else if (why == REFUSE_RESERVE)
      v->stats.refused_reserve++;
    else
      v->stats.refused_full++;
    warn_refusal(v, why, s);
    /* A reset frees the socket at once: no FIN_WAIT or TIME_WAIT kept for
     * a source that is over its limit. */
    if (uv_tcp_close_reset(&c->tcp, refused_close_cb) != 0)
      uv_close((uv_handle_t *)&c->tcp, refused_close_cb);
    return;
  }
  c->id = ++v->next_id;
  c->r.sid = -1;
  uv_timer_init(v->loop, &c->timer);
  uv_timer_init(v->loop, &c->kick);
  c->timer.data = c->kick.data = c;
  c->handles = 3;
  wr_buf_init(&c->in, VIN_MAX + VREAD_CHUNK, NULL);
  wr_buf_init(&c->rhead, RESP_HEAD_MAX, NULL);
  c->next = v->conns;
  if (v->conns) v->conns->prev = c;
  v->conns = c;
  v->stats.active_conns++;
  v->stats.conns_accepted++;
  slot_take(c, s);
  uv_tcp_nodelay(&c->tcp, 1);
  peer_ip(c, &ss);
  c->state = VC_HEAD;
  vc_process(c);
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

/* |val| unless 0 (then |def|); WR_VISITOR_OFF stays. */
static size_t or_default(size_t val, size_t def) { return val ? val : def; }

int wr_visitor_listen(uv_loop_t *loop, const wr_visitor_config *cfg, const struct sockaddr *addr,
                      wr_visitor **out) {
  *out = NULL;
  if (!cfg || !cfg->store || !cfg->ts || !addr) return WR_ERR_INVAL;
  wr_visitor *v = wr_xcalloc(1, sizeof(*v));
  v->loop = loop;
  v->store = cfg->store;
  v->ts = cfg->ts;
  snprintf(v->scheme, sizeof(v->scheme), "%s",
           cfg->scheme && strcmp(cfg->scheme, "https") == 0 ? "https" : "http");
  v->header_timeout_ms = cfg->header_timeout_ms ? cfg->header_timeout_ms : DEF_HEADER_TIMEOUT_MS;
  v->idle_timeout_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : DEF_IDLE_TIMEOUT_MS;
  v->proxy_idle_ms = v->idle_timeout_ms > PROXY_IDLE_MIN_MS ? v->idle_timeout_ms : PROXY_IDLE_MIN_MS;
  v->route_ttl_ms = cfg->route_ttl_ms ? cfg->route_ttl_ms : DEF_ROUTE_TTL_MS;
  v->max_conns = or_default(cfg->max_conns, DEF_MAX_CONNS);
  v->max_per_source = or_default(cfg->max_conns_per_source, DEF_MAX_CONNS_PER_SOURCE);
  v->reserve = cfg->reserve_conns == WR_VISITOR_OFF ? 0
               : cfg->reserve_conns           ? cfg->reserve_conns
                                              : v->max_conns / DEF_RESERVE_DIVISOR;
  if (v->max_conns != WR_VISITOR_OFF && v->reserve >= v->max_conns) v->reserve = v->max_conns - 1;
  size_t rate = or_default(cfg->requests_per_second_per_source, DEF_RATE_PER_SOURCE);
  if (rate != WR_VISITOR_OFF) {
    v->rate = rate > RATE_CLAMP ? RATE_CLAMP : rate;
    size_t burst = cfg->request_burst_per_source;
    v->burst = !burst || burst == WR_VISITOR_OFF ? 2 * v->rate : burst;
    if (v->burst > 2 * RATE_CLAMP) v->burst = 2 * RATE_CLAMP;
  }
  /* Every source with a connection must fit, with as much room again for
   * the recently quiet ones whose rate history is still remembered. */
  size_t ms = cfg->max_sources;
  if (!ms || ms == WR_VISITOR_OFF)
    ms = v->max_conns >= MAX_MAX_SOURCES / 2 ? MAX_MAX_SOURCES
         : 2 * v->max_conns < MIN_MAX_SOURCES ? MIN_MAX_SOURCES
                                              : 2 * v->max_conns;
  v->max_sources = ms > MAX_MAX_SOURCES ? MAX_MAX_SOURCES : ms;
  size_t nb = 64;
  while (nb < v->max_sources && nb < MAX_MAX_SOURCES) nb <<= 1;
  v->srcs = wr_xcalloc(nb, sizeof(*v->srcs));
  v->src_mask = nb - 1;
  uint64_t k[2];
  if (wr_random_bytes(k, sizeof(k)) != 0) {
    free(v->srcs);
    free(v);
    return WR_ERR_IO;
  }
  v->sip_k0 = k[0];
  v->sip_k1 = k[1];
  if (uv_tcp_init(loop, &v->listener) != 0) {
    free(v->srcs);
    free(v);
    return WR_ERR_IO;
  }
  v->listener.data = v;
  v->listener_open = 1;
  uv_check_init(loop, &v->flusher);
  uv_idle_init(loop, &v->nudge);
  uv_timer_init(loop, &v->quiet_timer);
  v->flusher.data = v->nudge.data = v->quiet_timer.data = v;
  v->aux_open = 3;
  uv_check_start(&v->flusher, flusher_cb);
  uv_unref((uv_handle_t *)&v->flusher); /* it alone must not keep the loop running */
  uv_unref((uv_handle_t *)&v->quiet_timer); /* nor this one */
  int rv = uv_tcp_bind(&v->listener, addr, 0);
  if (rv == 0) rv = uv_listen((uv_stream_t *)&v->listener, 511, on_connection);
  if (rv != 0) {
    wr_warn("visitor listener: %s", uv_strerror(rv));
    v->closing = 1;
    uv_close((uv_handle_t *)&v->listener, listener_close_cb);
    uv_close((uv_handle_t *)&v->flusher, aux_close_cb);
    uv_close((uv_handle_t *)&v->nudge, aux_close_cb);
    uv_close((uv_handle_t *)&v->quiet_timer, aux_close_cb);
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
  for (vconn *c = v->conns; c; c = c->next) vc_close_now(c);
  uv_close((uv_handle_t *)&v->listener, listener_close_cb);
  uv_close((uv_handle_t *)&v->flusher, aux_close_cb);
  uv_close((uv_handle_t *)&v->nudge, aux_close_cb);
  uv_close((uv_handle_t *)&v->quiet_timer, aux_close_cb);
}
