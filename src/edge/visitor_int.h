/* Internals of the visitor front (edge/visitor.h), shared by its files and
 * with its unit tests. Not an interface for other modules.
 *
 * The front is split by concept; each file owns one part of a connection's
 * life and calls the others only through the wr__ functions below:
 *   visitor.c         the HTTP/1.1 connection front: listener, accept,
 *                     reading and parsing heads, keep-alive, timeouts,
 *                     output gathering, closing; the object's lifetime
 *   visitor_limits.c  the per-source limits: source table, admission and
 *                     idle eviction, reserved slots, request-rate buckets
 *   visitor_route.c   Host -> tunnel: the request-target, the canonical
 *                     host and the route cache over the store
 *   visitor_proxy.c   one request over a tunnel data stream: ConnectRequest,
 *                     request body, response head and body, WebSocket pipe
 *   visitor_pages.c   answers from the edge itself (404, 429, 502, ...)
 *   visitor_h2.c      HTTP/2 on the HTTPS front (ALPN h2): the nghttp2
 *                     session and its limits; each request runs on a
 *                     stream vconn (|sub|) through the same machinery
 *   visitor_h3.c      HTTP/3 on UDP beside the HTTPS front: the QUIC
 *                     endpoint (ALPN h3, certificates by SNI) and the
 *                     nghttp3 connections; requests run on stream vconns
 *   visitor_sub.c     what HTTP/2 and HTTP/3 streams share: the stream
 *                     vconn's request head and input window, its response
 *                     buffer, head and trailers (vsub) */
#ifndef WR_EDGE_VISITOR_INT_H
#define WR_EDGE_VISITOR_INT_H
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "edge/certs.h"
#include "edge/store.h"
#include "edge/store_async.h"
#include "edge/zone_settings.h"
#include "edge/tunnel_server.h"
#include "edge/visitor.h"
#include "lib/buf.h"
#include "net/addr.h"
#include "net/tls.h"
#include "proto/fields.h"
#include "proto/h2head.h"
#include "proto/http1.h"

/* A source key (net/addr.h: an IPv4 address or an IPv6 /64). */
#define WR__VISITOR_KEY_LEN WR_ADDR_SOURCE_KEY_LEN
#define WR__VISITOR_NAME_MAX WR_ADDR_SOURCE_NAME_MAX

/* ---- sizes shared by the files -------------------------------------------------- */

#define WR__VISITOR_READ_CHUNK (16u * 1024u)      /* one read */
#define WR__VISITOR_RESP_HEAD_MAX (64u * 1024u)   /* connector preamble + ConnectResponse */
#define WR__VISITOR_MAX_REQ_HEADERS WR_HTTP1_DEFAULT_MAX_HEADERS
#define WR__VISITOR_DISCARD_MAX (1u << 20) /* body bytes dropped before giving up on keep-alive */
#define WR__VISITOR_ROUTE_BUCKETS 256

/* ---- states ----------------------------------------------------------------------- */

/* Connection states. */
enum vc_state {
  VC_HEAD = 0, /* waiting for (the rest of) a request head */
  VC_PROXY,    /* a request is being proxied over a data stream */
  VC_ROUTE,    /* the head waits in |in| for its route from the store thread */
  VC_CLOSING,  /* answered for the last time: flushing, then shutdown + linger */
  VC_TLS,      /* HTTPS: reading the ClientHello, waiting for the SNI's route,
                * or in the TLS handshake (visitor_tls.c) */
  VC_H2        /* HTTPS after ALPN h2: the plaintext is an HTTP/2 session
                * (visitor_h2.c) whose requests run on stream vconns */
};

/* Request body, visitor -> connector. */
enum rb_state {
  RB_NONE = 0, /* no body (or websocket before 101) */
  RB_LENGTH,   /* Content-Length: body_left more bytes */
  RB_CHUNKED,  /* chunked coding, de-chunked onto the stream */
  RB_PIPE,     /* websocket after 101: raw bytes until either side ends */
  RB_STREAM,   /* HTTP/2 without Content-Length: raw bytes until the
                * stream's END_STREAM (|in_end|) */
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
enum vc_timer { T_NONE = 0, T_IDLE, T_HEADER, T_PROXY, T_LINGER, T_HANDSHAKE, T_STORE };

/* ---- layout ------------------------------------------------------------------------ */

/* A cached answer of the route lookup (visitor_route.c). */
typedef struct route_ent {
  struct route_ent *next;
  uint64_t expires;
  int found;
  int pending; /* a lookup is on the store thread (store_async) */
  int err;     /* WR_OK or the store error of the last lookup */
  char tunnel_id[WR_STORE_UUID_LEN + 1];
  char host[];
} route_ent;

/* A route lookup on the store thread (visitor_route.c); |v| is NULL once
 * the visitor is gone, and the job then only frees itself. */
typedef struct route_job route_job;

typedef struct vconn vconn;

/* One source (see wr_addr_source_key). About 64 bytes. */
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
  wr_store_async *store_async; /* NULL: route lookups on the loop thread */
  route_job *route_jobs;       /* lookups in flight, linked by next */
  /* Connections whose head (or TLS handshake) waits for a store read: what
   * a finished read wakes, instead of a walk over every connection. */
  vconn *waiting;
  wr_tunnel_server *ts;
  wr_inspect *inspect;        /* NULL: no inspector */
  wr_tunnel_stats *tunnel_stats; /* NULL: no per-tunnel counters */
  wr_certs *certs;             /* HTTPS front: certificates by SNI; NULL: plain HTTP */
  wr_zone_cache *zones;        /* per-zone options, or NULL */
  unsigned https_port;         /* plain front: where always_use_https sends visitors */
  struct wr_access *access;    /* NULL: no Access gate */
  struct wr_acme *acme;        /* plain front: HTTP-01 answers (edge/acme.h), or NULL */
  char scheme[8];
  char mgmt_host[WR_STORE_HOST_MAX + 1]; /* the management hostname (visitor_mgmt.c) */
  uint8_t mgmt_key[32];
  size_t mgmt_keylen;                   /* 0: no management requests */
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
  route_ent *routes[WR__VISITOR_ROUTE_BUCKETS];
  size_t nroutes;
  wr_visitor_stats stats;
  uv_check_t flusher;  /* after each poll: one write per connection with output */
  uv_idle_t nudge;     /* active while output waits: poll must not block then */
  int aux_open;        /* flusher, nudge and quiet_timer not yet closed */
  vconn *dirty;        /* connections with pending output, linked by dirty_next */
  vconn *subs;         /* stream vconns of HTTP/2 and HTTP/3 connections */
  struct vh3front *h3; /* HTTP/3 beside the HTTPS front (visitor_h3.c), or NULL */
  unsigned h3_port;    /* its UDP port, for Alt-Svc; 0: HTTP/3 off */
  /* Reads of connections that hold no input buffer (idle keep-alive, new)
   * land here and are copied out: an idle visitor then costs no 16 KiB
   * buffer. libuv calls alloc_cb and read_cb back to back, so one shared
   * buffer is enough. */
  uint8_t idle_rbuf[WR__VISITOR_READ_CHUNK];
};

/* The request being served; reset between requests. */
typedef struct vreq {
  wr_tunnel_stream *st;
  char tunnel_id[WR_STORE_UUID_LEN + 1];
  char conn_id[WR_STORE_UUID_LEN + 1];
  int64_t sid;
  int stream_blocked; /* last write got WR_AGAIN: wait for on_writable */
  int keep_alive, minor, is_head, websocket;
  int te_trailers;    /* the visitor sent "TE: trailers": chunked responses
                       * end with the connector's trailers (c->rtrail) */
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
  wr_inspect_ref insp; /* the inspector's record of this request */
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
  wr_buf rtrail;      /* the response's trailer section ("Name: value\r\n"...),
                       * written after the last chunk */
  /* The request being served. Allocated when a connection is accepted or
   * its next head starts to arrive, and freed when it goes idle
   * (wr__vconn_go_idle): an idle keep-alive connection holds none (1 KB
   * each). NULL only while idle in VC_HEAD. */
  vreq *r;
  int route_waited;   /* the head in |in| has waited for its route: do not
                       * charge the rate limit twice, take the answer even
                       * if it has expired meanwhile */
  struct wreq *pend;  /* output gathered during this loop iteration */
  char *access_jwt;   /* the current request's Cf-Access-Jwt-Assertion, or NULL */
  int access_waited;  /* the head in |in| has waited (in VC_ROUTE) for its
                       * host's Access applications from the store thread */
  vconn *dirty_next;
  int is_dirty;
  vconn *wprev, *wnext; /* on v->waiting (wr__vconn_wait) */
  int waiting;
  /* HTTPS (visitor_tls.c). */
  int tls_mode;       /* a connection of the HTTPS front */
  int tls_up;         /* handshake done: output is encrypted */
  int tls_wait;       /* VC_TLS: the SNI's route is being looked up */
  int tls_starved;    /* the session holds no complete record: read the socket */
  wr_tls *tls;        /* the session, once the SNI chose its credentials */
  wr_cert *cert;      /* the credentials' reference */
  wr_buf hello;       /* ClientHello bytes read before the session exists */
  char sni[WR_STORE_HOST_MAX + 1];
  /* HTTP/2 (visitor_h2.c). A connection in VC_H2 holds |h2|. A stream
   * vconn (|sub|) serves one HTTP/2 or HTTP/3 request with the HTTP/1.1
   * machinery: no socket, its input is the request rebuilt as an HTTP/1.1
   * head plus the DATA bytes, its output goes to its stream through
   * |sops| (visitor_sub.c). */
  struct vh2 *h2;
  struct vsub *sx;    /* sub: its stream, NULL once either side let go */
  const struct vsub_ops *sops; /* sub: the stream's protocol */
  int sub;
  int in_end;         /* sub: the visitor ended the stream (END_STREAM) */
};

/* One gathered write (visitor.c; visitor_tls.c turns it into ciphertext). */
typedef struct wreq {
  uv_write_t req;
  vconn *c;
  unsigned gen;
  size_t credit;      /* stream bytes to consume once written */
  size_t len, cap;
  uint8_t data[];
} wreq;

/* ---- visitor.c: the connection front ------------------------------------------------ */

/* The request state of |c|, allocated (zeroed, sid -1) if |c| is idle and
 * holds none. Aborts on out-of-memory. */
vreq *wr__vconn_req(vconn *c);
/* Starts the connection timer in |mode| (enum vc_timer) for |ms|. */
void wr__vconn_arm(vconn *c, int mode, uint64_t ms);
/* Traffic while proxying: restarts the proxy idle timer. */
void wr__vconn_activity(vconn *c);
/* Processes the connection from the zero-delay timer, outside the current
 * callback (never parse or open streams from inside a QUIC callback). */
void wr__vconn_kick(vconn *c);
/* Queues a + b + d for the visitor, gathered into one write per loop
 * iteration; |credit| stream bytes go back to QUIC once written. On failure
 * the connection is closed. */
void wr__vconn_write3(vconn *c, const void *a, size_t alen, const void *b, size_t blen,
                      const void *d, size_t dlen, size_t credit);
/* |c| waits for a store read (its state says which): it joins the list
 * that wr__visitor_wake_waiting walks. Idempotent. */
void wr__vconn_wait(vconn *c);
/* Leaves that list (idempotent; also done when |c| is freed). */
void wr__vconn_unwait(vconn *c);
/* Kicks every waiting connection that |pick| (NULL: all) chooses, after
 * taking it off the list; a connection that still cannot go on waits
 * again. */
void wr__visitor_wake_waiting(wr_visitor *v, int (*pick)(const vconn *c));
/* A client's address as text (|size| at least INET6_ADDRSTRLEN) for logs
 * and the Access gate, written into the caller's |out|: an IPv4-mapped
 * IPv6 address as the IPv4 one, an unknown family as "0.0.0.0". Never
 * fails; callable from callbacks. */
void wr__visitor_ip_text(const struct sockaddr *sa, char *out, size_t size);
/* Closes at once (no flush): abandons the stream, releases the slot. */
void wr__vconn_close_now(vconn *c);
/* A broken response (head sent, body cut): logged, and the visitor sees it
 * incomplete (a reset for a close-delimited body). */
void wr__vconn_abort(vconn *c, const char *why);
/* The request is over (answered, or the connection is ending): logs it and
 * goes on with the next one (keep-alive), or ends the connection when
 * |close| or the request said so. */
void wr__vconn_end_request(vconn *c, int close);

static inline void wr__vconn_write(vconn *c, const void *a, size_t alen, size_t credit) {
  wr__vconn_write3(c, a, alen, NULL, 0, NULL, 0, credit);
}

static inline int wr__vconn_body_complete(const vconn *c) {
  return c->r->body == RB_NONE || c->r->body == RB_DONE;
}

/* Graceful end: flush, close_notify (TLS), FIN, linger. */
void wr__vconn_finish(vconn *c);

/* ---- visitor_tls.c: the HTTPS front's TLS layer --------------------------------- */

struct wr__visitor_target;

/* A new connection of an HTTPS front: waits for the ClientHello. */
void wr__vtls_start(vconn *c);
/* The certificates' watcher (wr_certs_watch): wakes the handshakes
 * waiting for a certificate (or a route) to come back. */
void wr__vtls_cert_ready(void *user);
/* Ciphertext read from the visitor. Returns WR_OK, or an error after
 * which the connection is closing. */
int wr__vtls_input(vconn *c, const uint8_t *data, size_t len);
/* The visitor's TCP EOF. */
void wr__vtls_input_eof(vconn *c);
/* VC_TLS: reads the SNI, picks the certificate (uploaded, else ACME, else issued for
 * a routed name, else refuses with unrecognized_name), runs the handshake.
 * Returns WR_OK once it is done (state VC_HEAD), WR_AGAIN, or an error
 * after which the connection is closing. */
int wr__vtls_step(vconn *c);
/* Decrypts what the session holds into c->in, as room allows. */
void wr__vtls_drain(vconn *c);
/* 1 if decrypted bytes may wait in the session: process before reading. */
int wr__vtls_backlog(vconn *c);
/* The gathered plaintext |w| as the ciphertext to write (|w| is consumed);
 * NULL when there is nothing to write or the connection closed. */
wreq *wr__vtls_wrap(vconn *c, wreq *w);
/* Queues close_notify (handshake done only). */
void wr__vtls_bye(vconn *c);
/* Frees the session and the certificate reference (at close). */
void wr__vtls_free(vconn *c);
/* Per-request rules before routing: 421 when Host is not the SNI (HTTPS),
 * 301 to https:// for a zone with always_use_https (HTTP). Returns 1 after
 * consuming the head (|used| bytes) and answering, else 0. */
int wr__vtls_policy(vconn *c, const struct wr__visitor_target *t, size_t used);
/* Adds Alt-Svc (HTTP/3 on) and the zone's HSTS fields to a response head
 * (HTTPS only); returns how many were added (at most 3). */
size_t wr__vtls_resp_fields(vconn *c, wr_http_header *out);

/* ---- visitor_h2.c: HTTP/2 ----------------------------------------------------------- */

/* The handshake chose h2: the connection becomes VC_H2 with an nghttp2
 * server session (settings and limits in visitor_h2.c). */
void wr__vh2_start(vconn *c);
/* VC_H2: feeds c->in to the session and writes what it has to send (as
 * the socket's backlog allows); ends the connection once the session is
 * over (GOAWAY out). Not callable from inside a session callback. */
void wr__vh2_process(vconn *c);
/* 1 while the session takes input (not closing, output not backed up). */
int wr__vh2_want_read(vconn *c);
/* The idle timer fired (no stream open): GOAWAY, then the end. */
void wr__vh2_idle(vconn *c);
/* Closes the stream vconns and frees the session (at the connection's
 * close or finish; idempotent). */
void wr__vh2_free(vconn *c);

/* ---- visitor_sub.c: HTTP/2 and HTTP/3 streams ------------------------------------- */

#define WR__VSUB_HEAD_MAX WR_HTTP1_DEFAULT_MAX_HEAD /* the rebuilt head, as on HTTP/1.1 */
#define WR__VSUB_OUT_MAX (16u << 20) /* a stream's response bytes not yet framed */

/* Where a stream vconn's requests come from: its connection. */
typedef struct vsub_parent {
  uint64_t id;        /* the connection's number, for log lines */
  const char *ip, *sni;
  vsrc *src;          /* the source holding the connection's slot, or NULL */
  uint64_t retry_at;
} vsub_parent;

/* The hooks of a stream vconn's protocol, called by visitor.c in place of
 * socket work: output for the visitor (the HTTP/1.1 response the machinery
 * writes, to be turned into HEADERS and DATA; |credit| tunnel bytes go back
 * once they left as DATA: wr__vsub_take), the input consumed (window
 * updates: wr__vsub_input_acked), the response complete, its trailers, and
 * the vconn closing (|reset| or incomplete: the stream is reset). */
typedef struct vsub_ops {
  const char *proto;  /* "HTTP/2", for log lines */
  void (*pump)(struct vsub *x);       /* |out| grew or |done| was set */
  void (*consume)(struct vsub *x, uint64_t n); /* request bytes to give back */
  void (*closed)(struct vsub *x, int reset);   /* after x->sc was cleared */
} vsub_ops;

/* One request stream of HTTP/2 or HTTP/3: the part both share. Embedded
 * in the protocol's own stream object (vh2s, vh3s). */
typedef struct vsub {
  vconn *sc;          /* the stream vconn, NULL once either let go */
  const vsub_ops *ops;
  void *owner;        /* the protocol's stream object */
  int websocket;      /* an extended CONNECT (RFC 8441 / 9220) */
  size_t head_len;    /* the rebuilt head at the front of sc->in */
  uint64_t in_total, in_acked; /* request body bytes given to sc / given back */
  wr_buf out;         /* from sc: the HTTP/1.1 head, then body bytes */
  size_t out_off;     /* bytes of |out| already framed */
  size_t credit;      /* tunnel credit owed for body bytes in |out| */
  int head_sent;      /* the response's HEADERS submitted */
  int done;           /* sc finished: end the stream once |out| drained */
  wr_fields trl;      /* trailers: a HEADERS frame after the last DATA */
} vsub;

void wr__vsub_init(vsub *x, const vsub_ops *ops, void *owner);
/* Lets go of the stream vconn (it closes and resets its tunnel stream),
 * then frees the buffers. */
void wr__vsub_free(vsub *x);
void wr__vsub_drop_sc(vsub *x);
/* A complete request header block |req| (freed here): rebuilds it as an
 * HTTP/1.1 head into a new stream vconn of |p| that is kicked to run, with
 * room for |window| body bytes; |eos|: no body follows. Returns 0, or the
 * status to answer without a vconn (431, 400): the stream is then marked
 * answered and done and the answer counted in |v|'s stats, and the caller
 * submits the bare response (the status and content-length 0). */
int wr__vsub_start(vsub *x, wr_visitor *v, const vsub_parent *p, wr_h2req *req, int eos,
                   size_t window);
/* Request body bytes for the stream vconn. Returns WR_OK, or an error
 * after which the vconn is closed (more than its window). */
int wr__vsub_input(vsub *x, const uint8_t *data, size_t len);
/* The request ended (END_STREAM / FIN). */
void wr__vsub_input_end(vsub *x);
/* The response head at the front of |out| into |rh| (|used| bytes of it).
 * Returns 1 when it can be submitted, 0 to wait for more (or, for gRPC
 * Trailers-Only, for the end), -1 when it cannot be forwarded. */
int wr__vsub_head(vsub *x, wr_h2resp *rh, size_t *used);
/* Whether the response is complete with its head alone (no body or
 * trailers after the |used| bytes of the head). */
int wr__vsub_bare(const vsub *x, size_t used);
/* Copies up to |len| body bytes of |out| into |buf|, returning their
 * tunnel credit. Returns the count. */
size_t wr__vsub_take(vsub *x, uint8_t *buf, size_t len);
/* Bytes of |out| not framed yet. */
static inline size_t wr__vsub_pending(const vsub *x) { return x->out.len - x->out_off; }

/* Stream vconn side (visitor.c): */
vconn *wr__vconn_sub_new(wr_visitor *v, const vsub_parent *p, size_t in_max);
void wr__vsub_write(vconn *sc, const void *a, size_t alen, const void *b, size_t blen,
                    const void *d, size_t dlen, size_t credit);
void wr__vsub_update(vconn *sc);
void wr__vsub_done(vconn *sc);
/* The response's trailers (the tunnel stream's on_trailers, before the end
 * of the body), without pseudo, framing and connection-specific fields. */
void wr__vsub_trailers(vconn *sc, const wr_http_header *hs, size_t n);
void wr__vsub_closed(vconn *sc, int reset);

/* ---- visitor_h3.c: HTTP/3 ------------------------------------------------------------- */

/* Serves HTTP/3 on UDP |addr| (the HTTPS front's address and port) with
 * ALPN h3 and the front's certificates by SNI. Returns WR_OK or WR_ERR_IO
 * (bind failed), WR_ERR_CRYPTO. */
int wr__vh3_listen(wr_visitor *v, const struct sockaddr *addr);
/* Closes every HTTP/3 connection and the endpoint (at the visitor's end). */
void wr__vh3_close(wr_visitor *v);
/* HTTP/3 stream vconns' protocol (tells them apart from HTTP/2 ones). */
extern const vsub_ops wr__vh3_ops;

/* ---- visitor_proxy.c: the tunnel data stream ------------------------------------- */

/* A complete head is at the front of c->in (|used| bytes; |h| points into
 * it). Routes it and opens the data stream, or answers locally; consumes
 * the head either way. */
void wr__vconn_start_request(vconn *c, const wr_http1_head *h, size_t used);
/* Moves buffered request body bytes to the stream and ends the request
 * once both directions are complete. */
void wr__vconn_proxy_step(vconn *c);
/* Lets go of the data stream: |code| >= 0 aborts what is still open (RESET
 * + STOP_SENDING), -1 ends it normally (FIN if not sent yet). */
void wr__vconn_release_stream(vconn *c, int64_t code);

/* ---- visitor_pages.c: answers from the edge ----------------------------------------- */

/* Counts the response status |status| of the current request. */
void wr__vconn_count_response(vconn *c, int status);
/* Answers the current request with an HTML page for |status| saying |msg|,
 * with |extra| (or NULL) among the headers; closes after it when
 * |force_close|. After the response head went out it can only abort. */
void wr__vconn_local_h(vconn *c, int status, const char *msg, int force_close,
                       const wr_http_header *extra);
void wr__vconn_local(vconn *c, int status, const char *msg, int force_close);
/* Writes an answer made by the edge to the current request and counts its
 * status: Content-Type |ctype|, Content-Length, Cache-Control: no-store, up
 * to 4 of the |nextra| |extra| headers, Connection: close when |close|, then
 * |body| (|blen| bytes; none for HEAD). Does not end the request. Returns
 * WR_OK, or an error when the head could not be written: the connection was
 * closed at once, the caller must leave it alone. */
int wr__vconn_answer(vconn *c, int status, const char *ctype, const wr_http_header *extra,
                     size_t nextra, int close, const char *body, size_t blen);
/* The same, closing after it unless the request keeps the connection alive
 * and its body was read whole, then ending the request (visitor_access.c). */
void wr__vconn_respond(vconn *c, int status, const char *ctype, const wr_http_header *extra,
                       size_t nextra, const char *body, size_t blen);
/* HTTP-01: answers GET /.well-known/acme-challenge/<token> on the plain
 * front from the ACME manager's table (visitor_acme.c). 1 when answered
 * (the head, |used| bytes, consumed), 0 for any other request. */
struct wr__visitor_target;
int wr__visitor_acme_answer(vconn *c, const struct wr__visitor_target *t, size_t used);
/* An error before or after the response head: a page, or a broken response. */
void wr__vconn_fail(vconn *c, int status, const char *msg);

/* ---- visitor_limits.c: per-source limits ------------------------------------------ */

/* Resolves the limits of |cfg| into |v| (defaults, clamps) and makes the
 * source table with a random hash key. Returns WR_OK, or WR_ERR_IO (no
 * randomness; the table is freed again). */
int wr__visitor_limits_init(wr_visitor *v, const wr_visitor_config *cfg);
/* Frees the source table (at the visitor's end). */
void wr__visitor_limits_free(wr_visitor *v);
/* The source entry of peer |sa|, created if new; NULL when the table is
 * full of sources holding connections (then counted and warned about). */
vsrc *wr__visitor_source_get(wr_visitor *v, const struct sockaddr *sa);
/* May a new connection of |s| (NULL: untracked) take a slot? Closes an
 * idle connection to make room when that is what it takes. Returns 1, or 0
 * for a refusal (counted and warned about). */
int wr__visitor_admit(wr_visitor *v, vsrc *s);
/* A connection takes its slot at accept and releases it as it closes. */
void wr__visitor_slot_take(vconn *c, vsrc *s);
/* The same for a connection that is no vconn (HTTP/3): |s| may be NULL. */
void wr__visitor_src_hold(wr_visitor *v, vsrc *s);
void wr__visitor_src_drop(wr_visitor *v, vsrc *s);
void wr__visitor_slot_release(vconn *c);
/* The idle list: connections waiting for a request with nothing unwritten,
 * the candidates for eviction. */
void wr__visitor_idle_enter(vconn *c);
void wr__visitor_idle_leave(vconn *c);
/* Charges a request to its source. Over the rate: consumes the head
 * (|used| bytes), answers 429 with Retry-After (closing a connection that
 * pushes on) and returns 1; else 0. */
int wr__visitor_over_rate(vconn *c, size_t used);

/* ---- visitor_route.c: Host -> tunnel ------------------------------------------------ */

/* Where an origin-form or absolute-form request-target goes: the authority
 * (Host for origin-form; NULL when there is none) and the path (NULL for a
 * form that is not supported). */
typedef struct wr__visitor_target {
  const char *auth, *path;
  size_t auth_len, path_len;
} wr__visitor_target;
void wr__visitor_split_target(const wr_http1_head *h, wr__visitor_target *t);
/* The host part of an authority, lower-cased, without port or trailing dot,
 * into |out|; the same with ":port" (if any) into |auth|. Returns 0, or -1
 * if it is not a DNS name / IP literal with an optional numeric port. */
int wr__visitor_canon_host(const char *a, size_t n, char *out, size_t cap, char *auth,
                           size_t authcap);
/* |host| (canonical) -> tunnel id: the exact route, else the nearest
 * wildcard "*.parent" route. Answers (also "no route") are cached for
 * route_ttl_ms. Returns WR_OK, WR_ERR_NOTFOUND or a store error; with a
 * store thread, WR_AGAIN on a cache miss: the lookup runs there and every
 * connection in VC_ROUTE is kicked when it is done. |stale_ok|: a cached
 * answer that has expired is still taken (a head that already waited). */
int wr__visitor_route_lookup(wr_visitor *v, const char *host, int stale_ok,
                             char tunnel_id[WR_STORE_UUID_LEN + 1]);
/* ---- visitor_mgmt.c: the management hostname ------------------------------------------ */

/* 1 when |host| (canonical) is the management hostname and a key is set. */
int wr__visitor_mgmt_host(const wr_visitor *v, const char *host);
/* Checks the request's access_token and picks its tunnel (c->r->tunnel_id).
 * Returns 0 to proxy the request, or -1 after consuming the head (|used|
 * bytes) and answering. */
int wr__visitor_mgmt_route(vconn *c, const wr__visitor_target *t, size_t used);

/* Lets the lookups in flight finish without the visitor (at its end). */
void wr__visitor_routes_detach(wr_visitor *v);
/* Frees the route cache (at the visitor's end). */
void wr__visitor_routes_free(wr_visitor *v);

/* ---- visitor_access.c: the Access gate ---------------------------------------------- */

/* Before routing: answers /cdn-cgi/access/... and requests Access does not
 * let through (consuming the head, |used| bytes) and returns -1; else
 * returns 0, with c->access_jwt set when the request is to carry a token. */
int wr__visitor_access(vconn *c, const wr_http1_head *h, const wr__visitor_target *t, size_t used);
/* The Access watcher (wr_access_watch): wakes the heads waiting for their
 * host's applications. |user| is the wr_visitor. */
void wr__visitor_access_ready(void *user);

#endif
