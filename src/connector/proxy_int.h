/* Internals of the connector's data-stream proxy (connector/proxy.h), shared
 * by its files and not an interface for other modules:
 *   proxy.c           the wr_proxy object, its public API and the lifetime of
 *                     a stream (creation, holds, states, release)
 *   proxy_dispatch.c  reading the preamble and the ConnectRequest, parsing
 *                     `dest`, routing to a service, the answers made locally
 *                     (http_status, hello_world)
 *   proxy_stream.c    the edge side of a stream: writes with backpressure,
 *                     FIN and RESET, ConnectResponse and error answers, and
 *                     the raw two-way pipe of a websocket after 101
 *   proxy_origin.c    the origin side: dialing, TLS credentials, the
 *                     keep-alive pool and its idle timer, wr_conn callbacks
 *   proxy_http.c      HTTP translation: request head and body towards the
 *                     origin, response head and body back to the edge
 *   rpc_server.c      RPC streams: the CloudflaredServer capability on
 *                     edge-opened ones, unregisterUdpSession on ours
 *   origin_h2.c       HTTP/2 to origins (originRequest.http2Origin): the
 *                     sessions on origin connections that selected "h2",
 *                     their streams, response trailers
 *   proxy_tcp.c       TCP pipes: warp-routing `tcp` streams and stream
 *                     origins (tcp://, ssh://, ...) behind a WebSocket the
 *                     connector terminates
 *
 * Objects and owners:
 *   wr_proxy   owns every pstream (list), every origin connection (list,
 *              plus an MRU idle list for the keep-alive pool), the TLS
 *              credentials cache and the idle timer.
 *   pstream    one edge-opened QUIC stream. Created on its first event,
 *              freed when QUIC closes it (on_stream_close) or the whole
 *              QUIC connection goes (on_conn_close). It may own one origin.
 *   origin     one wr_conn to an origin. Owned by its stream while
 *              dialing/active, by the pool while idle, by its HTTP/2
 *              session (O_H2) once it selected "h2". wr_conn_close() is
 *              asynchronous: the origin is freed in its on_close callback,
 *              never inside another of its callbacks (STYLE 2.1 #8).
 *   oh2        an HTTP/2 session on an origin in state O_H2 (origin_h2.c),
 *              shared by the streams it carries (oh2s, one per request,
 *              owned by the session). Freed with its origin.
 * A stream is held (busy count) while one of our functions runs for it, so
 * a QUIC close arriving in the middle only marks it (zombie) and the last
 * holder frees it.
 *
 * Flow control (STYLE 2.1 #9): request body bytes are not consumed (QUIC
 * credit) until the origin socket took them (write queue at or below
 * WR_CONN_LOW_WATER, else on_drain); origin reads pause while the QUIC
 * stream refuses bytes (WR_AGAIN) and resume on on_stream_writable.
 *
 * Functions that answer or end a stream leave it in ST_DONE; callers check
 * s->state after a call that may have done so. Nothing here returns an
 * error for the caller to report: a failure is answered on the stream. */
#ifndef WR_CONNECTOR_PROXY_INT_H
#define WR_CONNECTOR_PROXY_INT_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "connector/mgmt_logs.h"
#include "connector/proxy.h"
#include "connector/rpc_server.h"
#include "lib/buf.h"
#include "net/conn.h"
#include "net/tls.h"
#include "proto/connect.h"
#include "proto/http1.h"
#include "proto/httpmeta.h"
#include "proto/rpc_session.h"

/* Bytes buffered before the ConnectRequest decodes (preamble included). */
#define WR__PROXY_HEAD_MAX (256u * 1024u)
/* Request body bytes held while the origin is not ready. QUIC flow control
 * (the stream window) keeps this far lower; this is the backstop. */
#define WR__PROXY_HELD_MAX (16u * 1024u * 1024u)
/* Response bytes buffered until the origin's head is complete. */
#define WR__PROXY_RBUF_MAX (WR_HTTP1_DEFAULT_MAX_HEAD + 256u * 1024u)
/* Stream bytes the QUIC send queue refused (at most about one origin read
 * arrives after reads pause). */
#define WR__PROXY_OUT_MAX (8u * 1024u * 1024u)
#define WR__PROXY_ARENA_MAX (1024u * 1024u)

/* The prefix of every error about the origin, as cloudflared words it. */
#define WR__PROXY_UNREACHABLE                                                                \
  "Unable to reach the origin service. The service may be down or it may not be responding " \
  "to traffic from warren"

typedef struct pstream pstream;
typedef struct origin origin;
typedef struct tcp_pipe tcp_pipe;
typedef struct mgmt_ws mgmt_ws;
typedef struct oh2 oh2;
typedef struct oh2s oh2s;

/* --- origin connections ---------------------------------------------------- */

enum origin_state {
  O_CONNECTING = 0, /* wr_conn_connect in progress; owned by a stream */
  O_ACTIVE,         /* carrying a stream's request; owned by it */
  O_IDLE,           /* in the keep-alive pool */
  O_H2,             /* carries an HTTP/2 session (o->h2) for many streams */
  O_CLOSING         /* wr_conn_close called; freed by on_close */
};

struct origin {
  wr_proxy *p;
  wr_conn *conn;
  char *key; /* pool key: scheme/host/port or unix path, TLS parameters */
  int state;
  pstream *s;
  int reused;
  int want_h2; /* the dial offered ALPN h2 (http2Origin) */
  oh2 *h2;     /* O_H2: the session; freed when the connection closes */
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

/* Stream states; transitions happen in wr__proxy_set_state. */
enum stream_state {
  ST_HEAD = 0,  /* reading the preamble and the ConnectRequest */
  ST_DIAL,      /* origin connection being dialed */
  ST_WAIT_RESP, /* request head sent, body streaming, waiting for the response head */
  ST_BODY,      /* ConnectResponse sent, streaming the response body */
  ST_PIPE,      /* websocket after 101: raw bytes both ways */
  ST_RPC,       /* an RPC stream (rpc_server.c): Cap'n Proto RPC both ways */
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
  /* Another transport (proxy.h wr_edge_stream_ops) instead of QUIC: calls
   * go to ops with ot; NULL once the transport forgot the stream. */
  const wr_edge_stream_ops *ops;
  void *ot;
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
  const wr_ingress *ing; /* the rules current when the stream opened (a reload
                          * does not change them under it); |rule| is one of them */
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
  /* RPC streams (rpc_server.c) */
  wr_rpc_session *rpc;
  int rpc_client; /* we opened it (unregisterUdpSession) */
  uint8_t rpc_session_id[16];
  char *rpc_message;
  oh2s *h2s;     /* the request runs on an HTTP/2 origin session instead
                  * of |o| (origin_h2.c); the session owns it */
  tcp_pipe *tcp; /* a TCP pipe (proxy_tcp.c) instead of HTTP; owned */
  mgmt_ws *mws;  /* the management /logs WebSocket (proxy_mgmt.c); owned */
};

/* How many streams use a set of ingress rules (see wr_proxy_set_ingress). */
typedef struct ing_ref {
  const wr_ingress *ing;
  size_t users;
} ing_ref;

struct wr_proxy {
  uv_loop_t *loop;
  const wr_ingress *ing;
  ing_ref *refs; /* [0] the current rules, then replaced ones still in use */
  size_t nrefs;
  void (*ingress_unused)(void *user, const wr_ingress *ing);
  void *ingress_user;
  const char *const *tag_names; /* "Cf-Warp-Tag-NAME" of each --tag (owned) */
  const char *const *tag_values;
  size_t ntags;
  char tag[WR_UUID_STR_LEN + 1];
  char *version;
  wr_proxy_stats stats;
  pstream *streams;
  size_t nstreams;
  origin *origins;
  origin *idle;
  oh2 *h2conns; /* HTTP/2 sessions on origins (origin_h2.c) */
  creds_ent *creds;
  uv_timer_t timer;
  wr_rpc_services svc;
  char *mgmt_host;     /* the management hostname (proxy_mgmt.c); NULL: none */
  char *mgmt_label;    /* --label for /host_details */
  wr_mgmt_logs *mgmt;  /* the log stream registry, with mgmt_host */
  char *strs;          /* the one block holding version, mgmt_host, mgmt_label: free only it
                        (lib/strpack.h) */
  size_t handles; /* the timer + every origin not yet freed */
  int dying;
  struct wr_access_verifier *access; /* originRequest.access; made when first needed */
};

/* --- proxy.c: stream lifetime ---------------------------------------------- */

/* A new stream object on |c| (linked into the proxy). */
pstream *wr__proxy_stream_new(wr_proxy *p, wr_quic_conn *c, int64_t sid);
/* Unlinks and frees a stream QUIC never knew (its open failed). */
void wr__proxy_stream_drop(pstream *s);

/* The one place stream states change (and the tcp_active / concurrent
 * counters with them). */
void wr__proxy_set_state(pstream *s, int st);
/* Holds |s| across a call that may release it; the last unhold of a
 * released stream frees it. */
void wr__proxy_hold(pstream *s);
void wr__proxy_unhold(pstream *s);
/* One of the proxy's libuv handles (timer, origin) is gone; the last one
 * frees a dying proxy. */
void wr__proxy_handle_done(wr_proxy *p);

/* 1 while the stream's transport (QUIC or another) still knows it. */
int wr__proxy_live(const pstream *s);

/* --- proxy_dispatch.c: the start of a stream ------------------------------- */

/* s->req is decoded (have_req): routes the request. */
void wr__proxy_dispatch(pstream *s);

/* Bytes while s->state is ST_HEAD: the preamble and the ConnectRequest,
 * then the request is routed; bytes after it go on as body. */
void wr__proxy_head_input(pstream *s, const uint8_t *data, size_t len, int fin);

/* --- rpc_server.c: RPC streams --------------------------------------------- */

/* The head of an edge-opened stream was the RPC signature: |rest| (the
 * bytes after it) and what follows are Cap'n Proto RPC. */
void wr__proxy_rpc_start(pstream *s, const uint8_t *rest, size_t len, int fin);
/* Bytes of an RPC stream (either direction's opener). */
void wr__proxy_rpc_input(pstream *s, const uint8_t *data, size_t len, int fin);

/* --- proxy_stream.c: the edge side ----------------------------------------- */

/* Returns QUIC credit for |n| request bytes. */
void wr__proxy_consume(pstream *s, size_t n);
/* STOP_SENDING(0) unless the edge already ended its side. */
void wr__proxy_stop_sending(pstream *s);
/* Drops body bytes that will never reach the origin, returning their credit. */
void wr__proxy_drop_held(pstream *s);
/* Keeps edge bytes in |held| until the origin side takes them. When they
 * do not fit, returns their credit, resets the stream (wr__proxy_reset) and
 * returns WR_ERR_NOMEM (the caller stops); else WR_OK. */
int wr__proxy_hold_input(pstream *s, const uint8_t *data, size_t len);
/* Queues |len| bytes towards the edge; what QUIC refuses waits in s->out
 * and origin reads pause until wr__proxy_flush. */
void wr__proxy_emit(pstream *s, const uint8_t *data, size_t len);
/* FIN after everything queued. */
void wr__proxy_finish(pstream *s);
/* The stream is writable again: queued bytes (and a pending FIN) go out. */
void wr__proxy_flush(pstream *s);
/* Ends our side with RESET_STREAM(0) and STOP_SENDING(0); ST_DONE. */
void wr__proxy_reset(pstream *s);
/* Rejects a stream as cloudflared does for bytes it cannot read: a reset,
 * no response; |why| goes to the debug log. */
void wr__proxy_reject(pstream *s, const char *why);
/* Our answer is complete: FIN after the queued bytes, STOP_SENDING, held
 * bytes dropped, the origin released (|reuse|: to the pool), ST_DONE. */
void wr__proxy_complete(pstream *s, int reuse);
/* Sends preamble + |r| in one write. Returns WR_OK or WR_ERR_INTERNAL
 * (nothing sent). */
int wr__proxy_send_response(pstream *s, const wr_connect_response *r);
/* Sends ConnectResponse{HttpStatus, HttpHeader:*} and counts the status.
 * Returns WR_OK (sent, or the stream was reset: see s->state) or the error
 * of the metadata encoding, when nothing was sent. */
int wr__proxy_send_head(pstream *s, int status, const wr_http_header *hs, size_t n);
/* The request's first header field named |name|, case-insensitively (Go's
 * Header.Get), or NULL; it lives as long as the stream's request head
 * (proxy_http.c). */
const wr_http_header *wr__proxy_field(const pstream *s, const char *name);
/* Failure: before the response, ConnectResponse{error, metadata null} and
 * FIN (cloudflared 2023.7.3); after it, RESET_STREAM(0). Logged, counted. */
void wr__proxy_respond_error(pstream *s, const char *msg);
void wr__proxy_respond_errorf(pstream *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A complete response produced here: head, |body|, FIN. */
void wr__proxy_respond_local(pstream *s, int status, const wr_http_header *hs, size_t n,
                             const uint8_t *body, size_t blen);
/* The origin answered 101: from now on raw bytes both ways. */
void wr__proxy_pipe_start(pstream *s);
/* The edge ended its side of a pipe (FIN): the first EOF ends both
 * directions (an origin EOF ends it with wr__proxy_complete). */
void wr__proxy_pipe_edge_fin(pstream *s);

/* --- proxy_mgmt.c: the management service ---------------------------------- */

/* 1 when the request's host (port ignored) is the management hostname. */
int wr__proxy_mgmt_host(const pstream *s);
/* Serves a management request for the %-decoded |path|. */
void wr__proxy_mgmt_start(pstream *s, const char *path);
/* Stream bytes of the /logs WebSocket (s->mws). */
void wr__proxy_mgmt_edge_input(pstream *s, const uint8_t *data, size_t len, int fin);
/* Ends the stream's log session and frees s->mws (the stream goes). */
void wr__proxy_mgmt_free(pstream *s);

/* --- proxy_origin.c: origin connections ------------------------------------ */

/* Gets a connection for the stream's rule: a pooled one (then the request
 * goes out now) or a new dial (on_connect continues). Returns WR_OK, or an
 * error after answering the stream. */
int wr__proxy_dial(pstream *s, int allow_pool);
/* Dials |t| for the stream, never pooled (TCP pipes); on_connect goes to
 * proxy_tcp.c. Returns WR_OK (ST_DIAL) or an error (nothing answered). */
int wr__proxy_dial_to(pstream *s, const wr_conn_target *t);
/* The stream lets go of its origin: back to the pool (with |reuse|, when
 * the connection can be reused) or closed; the QUIC credit still owed for
 * bytes the origin took is returned. No-op without an origin. */
void wr__proxy_detach(pstream *s, int reuse);
void wr__proxy_origin_close(origin *o);
/* The pool key of a rule's origin (allocated). */
char *wr__proxy_origin_key(const wr_ingress_rule *r);
/* Arms the idle timer for the earliest idle deadline (pool and HTTP/2
 * sessions). */
void wr__proxy_timer_rearm(wr_proxy *p);
/* Frees the TLS credentials cache (the proxy's last step). */
void wr__proxy_creds_free(wr_proxy *p);

/* --- proxy_http.c: HTTP translation ---------------------------------------- */

/* An HTTP or websocket request routed to an http(s)/unix origin: frames
 * the body, writes the request head and dials. Answers the stream on
 * failure. */
void wr__proxy_http_start(pstream *s);
/* Request body bytes from the edge (after the ConnectRequest). */
void wr__proxy_body_input(pstream *s, const uint8_t *data, size_t len, int fin);
/* The origin connection is up: the request head goes out, held body
 * bytes follow. */
void wr__proxy_origin_ready(pstream *s);
/* Bytes from the origin, and its EOF (|status| WR_OK) or error. */
void wr__proxy_origin_input(pstream *s, const uint8_t *data, size_t len);
void wr__proxy_origin_eof(pstream *s, int status, const char *msg);
/* Gives request bytes to the origin. Returns WR_OK or an error (the stream
 * was answered). */
int wr__proxy_origin_write(pstream *s, const void *data, size_t len);
/* Returns the credit of bytes the origin took once its write queue is at
 * or below WR_CONN_LOW_WATER. */
void wr__proxy_return_credit(pstream *s);

/* The fields of the request towards the origin, Host first, as
 * build_request_head writes them (|clen| holds a Content-Length text).
 * Returns an array the caller frees (*n entries), or NULL after answering
 * the stream (a field Go's transport refuses to write). */
wr_http_header *wr__proxy_request_fields(pstream *s, size_t *n, char clen[24]);
/* Response trailers from the origin: to the edge over a transport that
 * carries them (the HTTP/2 transport's ops->trailers), dropped over QUIC,
 * as cloudflared does. */
void wr__proxy_send_trailers(pstream *s, const wr_http_header *hs, size_t n);

/* --- origin_h2.c: HTTP/2 to origins ------------------------------------------ */

/* 1 when the stream's request goes to its origin over HTTP/2 if the origin
 * selects it: http2Origin on a TLS origin, not a WebSocket. */
int wr__oh2_wanted(const pstream *s);
/* Puts the stream's request on a live HTTP/2 session to its origin that can
 * open a stream. Returns WR_OK (sent, or answered on failure) or
 * WR_ERR_NOTFOUND (no such session: dial). */
int wr__oh2_attach(pstream *s);
/* The new connection |o| selected "h2": it becomes an HTTP/2 session
 * (O_H2) and |s| its first request. */
void wr__oh2_start(origin *o, pstream *s);
/* Events of an O_H2 origin's connection. */
void wr__oh2_conn_read(origin *o, const uint8_t *data, size_t len);
void wr__oh2_conn_eof(origin *o, int status, const char *msg);
void wr__oh2_conn_drain(origin *o);
/* The connection is gone: the session is freed. */
void wr__oh2_conn_closed(origin *o);
/* Request body bytes (in s->held) or the edge's FIN (s->edge_fin) arrived. */
void wr__oh2_body(pstream *s);
/* The tunnel stream takes bytes again: the origin may send more. */
void wr__oh2_resume(pstream *s);
/* The stream lets go of its HTTP/2 request (RST_STREAM CANCEL unless it
 * ended). No-op without one. */
void wr__oh2_detach(pstream *s);
/* The earliest idle deadline of a session without streams (uv_now ms; 0:
 * none), and closing the sessions whose deadline passed. */
uint64_t wr__oh2_next_deadline(const wr_proxy *p);
void wr__oh2_expire(wr_proxy *p, uint64_t now);

/* --- proxy_tcp.c: TCP pipes ---------------------------------------------------- */

/* A `tcp` ConnectRequest with warp-routing on: dials `dest` (host:port as
 * Go's net.Dial reads it) and acknowledges with an empty ConnectResponse. */
void wr__proxy_tcp_warp_start(pstream *s);
/* A request routed to a stream origin: dials the rule's host:port, answers
 * 101 and terminates the WebSocket. */
void wr__proxy_tcp_ws_start(pstream *s);
/* Stream bytes from the edge after the ConnectRequest. */
void wr__proxy_tcp_edge_input(pstream *s, const uint8_t *data, size_t len, int fin);
/* Origin events for a stream with s->tcp. */
void wr__proxy_tcp_connected(pstream *s, int status, const char *msg);
void wr__proxy_tcp_origin_input(pstream *s, const uint8_t *data, size_t len);
void wr__proxy_tcp_origin_eof(pstream *s, int status, const char *msg);
/* Frees s->tcp (stream teardown). */
void wr__proxy_tcp_free(pstream *s);

#endif
