/* TCP pipes (see proxy_int.h): a warp-routing `tcp` stream, whose `dest`
 * is dialed and then carries raw bytes both ways (protocol.md 4.7), and a
 * request routed to a stream origin (tcp://, ssh://, rdp://, smb://), where
 * the connector dials the rule's host:port, answers 101 and terminates the
 * WebSocket itself: masked client frames in, unmasked binary frames out
 * (protocol.md 4.6; cloudflared's tcpOverWSService + websocket.Conn).
 *
 * Both directions end separately (half-close), which cloudflared 2023.7.3
 * does not do (its stream.Pipe tears both down at the first EOF) but which
 * is what TCP means: in raw mode the edge's FIN becomes shutdown(SHUT_WR)
 * on the origin and the origin's EOF becomes the stream's FIN; in
 * WebSocket mode a Close frame stands for the FIN of its sender's side
 * (an edge ends a WebSocket pipe as a whole at the first FIN, so the
 * half-close has to travel inside it), and the stream's FIN follows once
 * both sides are done. Either way nothing hangs on us: the dial has a
 * timeout (warp-routing connectTimeout, the rule's connectTimeout), and an
 * origin error resets the stream.
 *
 * Flow control is the websocket pipe's: stream bytes are consumed (QUIC
 * credit) only once the origin socket took them; origin reads pause while
 * the QUIC send queue refuses bytes (wr__proxy_emit / wr__proxy_flush).
 *
 * With originRequest.proxyProtocol v1/v2 (or warp-routing's) a PROXY
 * header goes first to the origin: the visitor from Cf-Connecting-IP
 * (WebSocket) or from the ConnectRequest's Cf-Connecting-IP metadata
 * (warp-routing), else UNKNOWN; the destination is the origin dialed. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "connector/proxy_int.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "proto/hostport.h"
#include "proto/proxyproto.h"
#include "proto/wsframe.h"

/* Bytes unmasked per step of the WebSocket decoder. */
#define WS_STEP 16384
/* Close status codes (RFC 6455 7.4.1). */
#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_PROTOCOL 1002

struct tcp_pipe {
  int ws;          /* WebSocket framing towards the edge */
  int pp;          /* WR_PROXYPROTO_* */
  struct sockaddr_storage src; /* the visitor, for the PROXY header */
  struct sockaddr_storage dst; /* the origin, for the PROXY header */
  int edge_done;   /* the edge finished sending (FIN, or a Close frame) */
  int origin_done; /* the origin's EOF came (and went on to the edge) */
  int close_sent;  /* WebSocket: our Close frame is queued */
  wr_ws_decoder dec;
};

void wr__proxy_tcp_free(pstream *s) {
  free(s->tcp);
  s->tcp = NULL;
}

static tcp_pipe *pipe_new(pstream *s, int ws, int pp) {
  tcp_pipe *t = wr_xcalloc(1, sizeof(*t));
  t->ws = ws;
  t->pp = pp;
  t->src.ss_family = AF_UNSPEC;
  t->dst.ss_family = AF_UNSPEC;
  wr_ws_decoder_init(&t->dec, 1);
  s->tcp = t;
  /* Bytes the edge sends before the origin is up wait in s->held. */
  s->hold = 1;
  return t;
}

/* --- the visitor's address ------------------------------------------------------ */

/* Cf-Connecting-IP: a request header (WebSocket) or, for warp-routing, a
 * metadata entry of that name, bare or as HttpHeader:. */
static void visitor_addr(pstream *s, tcp_pipe *t) {
  const char *v = NULL;
  size_t vl = 0;
  for (size_t i = 0; i < s->req.nmeta && !v; i++) {
    const wr_meta *m = &s->req.meta[i];
    const char *k = m->key;
    size_t kl = m->key_len;
    if (kl > 11 && strncasecmp(k, "HttpHeader:", 11) == 0) k += 11, kl -= 11;
    if (kl == 16 && strncasecmp(k, "Cf-Connecting-IP", 16) == 0) v = m->val, vl = m->val_len;
  }
  if (v) wr_proxyproto_addr(v, vl, 0, &t->src);
}

/* --- towards the edge -------------------------------------------------------------- */

/* One server frame (unmasked) towards the edge. */
static void ws_emit(pstream *s, int op, const uint8_t *data, size_t len) {
  uint8_t h[WR_WS_HEAD_MAX];
  size_t hl = wr_ws_frame_head(h, op, len, NULL);
  wr__proxy_emit(s, h, hl);
  if (len) wr__proxy_emit(s, data, len);
}

static void ws_close(pstream *s, unsigned code) {
  uint8_t b[2] = {(uint8_t)(code >> 8), (uint8_t)code};
  if (s->tcp->close_sent) return;
  s->tcp->close_sent = 1;
  ws_emit(s, WR_WS_OP_CLOSE, b, 2);
}

/* Both sides are done: the stream ends; the origin goes now unless bytes
 * for it are still queued (then when QUIC lets go of the stream). */
static void maybe_done(pstream *s) {
  tcp_pipe *t = s->tcp;
  if (!t->edge_done || !t->origin_done || s->state == ST_DONE) return;
  wr__proxy_finish(s);
  if (!s->o || wr_conn_write_queued(s->o->conn) == 0)
    wr__proxy_complete(s, 0);
  else
    wr__proxy_set_state(s, ST_DONE);
}

/* --- edge -> origin -------------------------------------------------------------------- */

static void edge_end(pstream *s) {
  tcp_pipe *t = s->tcp;
  if (t->edge_done) return;
  t->edge_done = 1;
  if (s->o) wr_conn_shutdown(s->o->conn);
  maybe_done(s);
}

/* Gives |n| payload bytes to the origin. Returns WR_OK or an error (the
 * stream was answered). */
static int to_origin(pstream *s, const uint8_t *data, size_t n) {
  if (!n) return WR_OK;
  if (!s->o) return WR_ERR_INVAL;
  if (wr_conn_write(s->o->conn, data, n) != WR_OK) {
    wr__proxy_reset(s);
    return WR_ERR_IO;
  }
  return WR_OK;
}

static void ws_event(pstream *s, const wr_ws_event *ev) {
  switch (ev->kind) {
  case WR_WS_EV_DATA:
    if (!s->tcp->edge_done) to_origin(s, ev->data, ev->len);
    break;
  case WR_WS_EV_PING:
    ws_emit(s, WR_WS_OP_PONG, ev->data, ev->len);
    break;
  case WR_WS_EV_CLOSE:
    edge_end(s);
    break;
  default:
    break;
  }
}

/* Client frames: payloads to the origin, pings answered, Close = the
 * client's FIN. A protocol error ends the pipe with Close 1002. */
static void ws_input(pstream *s, const uint8_t *data, size_t len) {
  uint8_t buf[WS_STEP];
  size_t off = 0;
  while (off < len && s->state == ST_PIPE && !s->tcp->edge_done) {
    size_t n = len - off < WS_STEP ? len - off : WS_STEP, used = 0;
    wr_ws_event ev;
    if (wr_ws_decode(&s->tcp->dec, data + off, n, buf, &used, &ev) != 0) {
      wr_debug("data stream %lld: bad WebSocket frame from the visitor", (long long)s->sid);
      ws_close(s, WS_CLOSE_PROTOCOL);
      wr__proxy_complete(s, 0);
      return;
    }
    off += used;
    ws_event(s, &ev);
  }
}

static void piped_input(pstream *s, const uint8_t *data, size_t len) {
  if (s->tcp->ws)
    ws_input(s, data, len);
  else if (!s->tcp->edge_done)
    to_origin(s, data, len);
  if (s->state == ST_DONE) return;
  s->credit_owed += len;
  wr__proxy_return_credit(s);
}

void wr__proxy_tcp_edge_input(pstream *s, const uint8_t *data, size_t len, int fin) {
  if (len) {
    if (s->state == ST_DONE) {
      wr__proxy_consume(s, len);
    } else if (s->hold) {
      if (wr__proxy_hold_input(s, data, len) != WR_OK) return;
    } else {
      piped_input(s, data, len);
    }
  }
  if (fin && !s->edge_fin) {
    s->edge_fin = 1; /* no STOP_SENDING for a side that ended */
    if (!s->hold && s->state == ST_PIPE) edge_end(s);
  }
}

/* --- origin -> edge -------------------------------------------------------------------- */

void wr__proxy_tcp_origin_input(pstream *s, const uint8_t *data, size_t len) {
  if (s->state != ST_PIPE || s->tcp->origin_done) return;
  if (s->tcp->ws)
    ws_emit(s, WR_WS_OP_BINARY, data, len);
  else
    wr__proxy_emit(s, data, len);
}

void wr__proxy_tcp_origin_eof(pstream *s, int status, const char *msg) {
  tcp_pipe *t = s->tcp;
  if (s->state != ST_PIPE) {
    if (s->state != ST_DONE) wr__proxy_respond_error(s, msg && msg[0] ? msg : "EOF");
    return;
  }
  if (status != WR_OK) {
    wr_debug("data stream %lld: origin failed: %s", (long long)s->sid, msg ? msg : "");
    wr__proxy_reset(s);
    return;
  }
  t->origin_done = 1;
  if (t->ws)
    ws_close(s, WS_CLOSE_NORMAL);
  else
    wr__proxy_finish(s);
  maybe_done(s);
}

/* --- connecting -------------------------------------------------------------------------- */

/* The PROXY header, first on the origin connection. */
static void send_proxy_header(pstream *s) {
  tcp_pipe *t = s->tcp;
  uint8_t h[WR_PROXYPROTO_MAX];
  struct sockaddr_storage dst;
  int n;
  if (!t->pp) return;
  dst = t->dst;
  if (wr_conn_peer(s->o->conn, &dst) != 0 || dst.ss_family == AF_UNSPEC) dst = t->dst;
  n = wr_proxyproto_write(t->pp, &t->src, &dst, h, sizeof(h));
  if (n > 0) wr_conn_write(s->o->conn, h, (size_t)n);
}

/* The acknowledgement: warp-routing's empty ConnectResponse, or the 101
 * cloudflared answers for a stream origin (with the handshake fields only
 * when the request had a Sec-WebSocket-Key). */
static int send_ack(pstream *s) {
  if (!s->tcp->ws) {
    wr_connect_response r;
    memset(&r, 0, sizeof(r));
    r.error = "";
    r.has_meta = 1;
    return wr__proxy_send_response(s, &r);
  }
  const wr_http_header *kf = wr__proxy_field(s, "Sec-WebSocket-Key");
  const char *key = kf ? kf->value : NULL;
  size_t kl = kf ? kf->value_len : 0;
  char accept[WR_WS_ACCEPT_LEN];
  if (!key || !kl) return wr__proxy_send_head(s, 101, NULL, 0);
  if (wr_ws_accept(key, kl, accept) != 0) return WR_ERR_CRYPTO;
  wr_http_header hs[3] = {
      {"Connection", 10, "Upgrade", 7},
      {"Sec-Websocket-Accept", 20, accept, strlen(accept)},
      {"Upgrade", 7, "websocket", 9},
  };
  return wr__proxy_send_head(s, 101, hs, 3);
}

void wr__proxy_tcp_connected(pstream *s, int status, const char *msg) {
  if (status != WR_OK) {
    /* cloudflared returns the dial error as it is (no "Unable to reach"). */
    wr__proxy_respond_error(s, msg && msg[0] ? msg : wr_strerror(status));
    return;
  }
  send_proxy_header(s);
  if (send_ack(s) != WR_OK) {
    wr__proxy_respond_error(s, "cannot encode the response");
    return;
  }
  if (s->state == ST_DONE) return;
  wr__proxy_set_state(s, ST_PIPE);
  s->ready = 1;
  s->hold = 0;
  if (s->held.len) {
    wr_buf h = s->held;
    wr_buf_init(&s->held, WR__PROXY_HELD_MAX, NULL);
    piped_input(s, h.data, h.len);
    wr_buf_free(&h);
  }
  if (s->edge_fin && s->state == ST_PIPE) edge_end(s);
}

static void dial(pstream *s, const char *host, uint16_t port, long long timeout_ns,
                 long long keepalive_ns) {
  wr_conn_target t;
  memset(&t, 0, sizeof(t));
  t.host = host;
  t.port = port;
  t.connect_timeout_ms = timeout_ns > 0 ? (uint64_t)timeout_ns / 1000000u : 0;
  t.tcp_keepalive_s = keepalive_ns > 0 ? (uint64_t)keepalive_ns / 1000000000u : 0;
  wr_proxyproto_addr(host, strlen(host), port, &s->tcp->dst);
  if (wr__proxy_dial_to(s, &t) != WR_OK)
    wr__proxy_respond_errorf(s, "dial tcp %s:%u: cannot start the connection", host,
                             (unsigned)port);
}

void wr__proxy_tcp_warp_start(pstream *s) {
  const wr_warp_routing *w = &s->p->ing->warp;
  char host[256], err[512];
  uint16_t port = 0;
  tcp_pipe *t = pipe_new(s, 0, w->proxy_protocol);
  if (wr_go_split_host_port(s->req.dest, s->req.dest_len, host, sizeof(host), &port, err,
                            sizeof(err)) != 0) {
    wr__proxy_respond_errorf(s, "dial tcp: %s", err);
    return;
  }
  /* As Go dials an empty host: the local system. */
  if (!host[0]) snprintf(host, sizeof(host), "127.0.0.1");
  visitor_addr(s, t);
  WR_LOG_EV(WR_LOG_DEBUG, WR_LOG_EV_TCP, "data stream %lld: tcp proxy stream started dest=%.*s", (long long)s->sid,
           (int)s->req.dest_len, s->req.dest);
  dial(s, host, port, w->connect_timeout_ns, w->tcp_keepalive_ns);
}

void wr__proxy_tcp_ws_start(pstream *s) {
  const wr_ingress_rule *r = s->rule;
  tcp_pipe *t = pipe_new(s, 1, r->origin.proxy_protocol);
  visitor_addr(s, t);
  dial(s, r->service.host, r->service.port, r->origin.connect_timeout_ns,
       r->origin.tcp_keepalive_ns);
}
