/* The connector's TCP pipes (connector/proxy_tcp.c) over real QUIC on
 * 127.0.0.1 in one libuv loop, as tests/unit/test_proxy.c does: a QUIC
 * server plays the edge and opens data streams, the QUIC client hands its
 * stream events to wr_proxy, and the origins are in-test TCP servers.
 * Covered: the captured warp-routing vectors (the ack and the dial error
 * byte for byte), dial errors, half-close in both orders, a PROXY v2
 * header with the visitor from the ConnectRequest, and a stream origin
 * reached through a WebSocket the connector terminates (101, frames both
 * ways, ping, Close as half-close). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "connector/ingress.h"
#include "connector/proxy.h"
#include "edge/pki.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/conn.h"
#include "net/quic.h"
#include "proto/connect.h"
#include "proto/preamble.h"
#include "proto/wsframe.h"
#include "quic_pair.h"
#include "unit.h"

static unit_pki pki;

static int group_setup(void **state) {
  *state = &pki;
  return unit_qpair_pki(&pki, "wr-ptcp");
}

/* ---- origins ------------------------------------------------------------------ */

enum { M_ECHO = 0, /* echoes; its EOF follows ours */
       M_BANNER,   /* sends "banner", shuts down its side, keeps reading */
       M_RECORD    /* records what it reads */
};

typedef struct ctx ctx;
typedef struct torigin torigin;

typedef struct tconn {
  torigin *o;
  wr_conn *conn;
  struct tconn *next;
} tconn;

struct torigin {
  ctx *c;
  int mode;
  uv_tcp_t tcp;
  uint16_t port;
  int accepts, eofs, closes;
  wr_buf got;
  tconn *conns;
};

typedef struct estream {
  ctx *c;
  int64_t sid;
  wr_buf resp;
  int got_fin, got_reset, closed;
} estream;

#define NORIGINS 3
struct ctx {
  unit_qpair q;
  int (*done)(ctx *c);
  estream *watch;
  size_t want_len;
  wr_quic_conn *sconn;
  int s_ready;
  wr_proxy *proxy;
  wr_ingress *ing;
  torigin origins[NORIGINS];
};

static void tc_on_connect(wr_conn *c, int status, const char *msg, void *user) {
  tconn *t = user;
  if (status != WR_OK) {
    wr_conn_close(c);
    return;
  }
  if (t->o->mode == M_BANNER) {
    wr_conn_write(c, (const uint8_t *)"banner", 6);
    wr_conn_shutdown(c);
  }
}

static void tc_on_read(wr_conn *c, const uint8_t *d, size_t n, void *user) {
  tconn *t = user;
  wr_buf_append(&t->o->got, d, n);
  if (t->o->mode == M_ECHO) wr_conn_write(c, d, n);
}

static void tc_on_eof(wr_conn *c, int status, const char *msg, void *user) {
  tconn *t = user;
  t->o->eofs++;
  if (t->o->mode == M_ECHO)
    wr_conn_shutdown(c);
  else
    wr_conn_close(c);
}

static void tc_on_close(wr_conn *c, void *user) {
  tconn *t = user;
  torigin *o = t->o;
  tconn **pp = &o->conns;
  while (*pp && *pp != t) pp = &(*pp)->next;
  if (*pp) *pp = t->next;
  o->closes++;
  free(t);
}

static const wr_conn_callbacks tc_cbs = {tc_on_connect, tc_on_read, tc_on_eof, NULL,
                                         tc_on_close};

static void origin_on_conn(uv_stream_t *server, int status) {
  torigin *o = server->data;
  tconn *t;
  if (status < 0) return;
  t = calloc(1, sizeof(*t));
  t->o = o;
  if (wr_conn_accept(server, NULL, &tc_cbs, t, &t->conn) != WR_OK) {
    free(t);
    return;
  }
  t->next = o->conns;
  o->conns = t;
  o->accepts++;
}

static void origin_start(ctx *c, int idx, int mode) {
  torigin *o = &c->origins[idx];
  memset(o, 0, sizeof(*o));
  o->c = c;
  o->mode = mode;
  wr_buf_init(&o->got, (size_t)1 << 30, NULL);
  o->port = unit_tcp_listen(&c->q.loop, &o->tcp, o, origin_on_conn);
}

/* ---- the loop ---------------------------------------------------------------- */

UNIT_QPAIR_RUN_UNTIL(ctx)

/* ---- QUIC: edge side and connector side ------------------------------------------ */

static void e_hs(wr_quic_conn *qc, void *user) {
  ctx *c = user;
  c->sconn = qc;
  c->s_ready = 1;
}

static int e_data(wr_quic_conn *qc, int64_t sid, const uint8_t *d, size_t n, int fin, void *user,
                  void *suser) {
  estream *e = suser;
  wr_quic_stream_consume(qc, sid, n);
  if (!e) return 0;
  wr_buf_append(&e->resp, d, n);
  if (fin) e->got_fin = 1;
  return 0;
}

static int e_reset(wr_quic_conn *qc, int64_t sid, uint64_t code, void *user, void *suser) {
  estream *e = suser;
  if (e) e->got_reset = 1;
  return 0;
}

static void e_close(wr_quic_conn *qc, int64_t sid, int has_code, uint64_t code, void *user,
                    void *suser) {
  estream *e = suser;
  if (e) e->closed = 1;
}



static int ready_done(ctx *c) { return c->s_ready; }

enum { O_ECHO = 0, O_BANNER, O_RECORD };

/* Origins, the QUIC pair and the proxy; |warp| is the warp-routing block. */
static void ctx_start(ctx *c, const char *warp) {
  char yaml[2048];

  memset(c, 0, sizeof(*c));
  unit_qpair_init(&c->q);
  origin_start(c, O_ECHO, M_ECHO);
  origin_start(c, O_BANNER, M_BANNER);
  origin_start(c, O_RECORD, M_RECORD);
  snprintf(yaml, sizeof(yaml),
           "%s"
           "ingress:\n"
           "  - hostname: ssh.test\n"
           "    service: ssh://127.0.0.1:%u\n"
           "  - hostname: pp.test\n"
           "    service: tcp://127.0.0.1:%u\n"
           "    originRequest:\n"
           "      proxyProtocol: v1\n"
           "  - hostname: dead.test\n"
           "    service: rdp://127.0.0.1:1\n"
           "  - service: http_status:404\n",
           warp, c->origins[O_ECHO].port, c->origins[O_RECORD].port);
  c->ing = unit_ingress_of(yaml);
  c->q.ecbs.on_handshake_done = e_hs;
  c->q.ecbs.on_stream_data = e_data;
  c->q.ecbs.on_stream_reset = e_reset;
  c->q.ecbs.on_stream_close = e_close;
  c->proxy = unit_qpair_proxy_start(&c->q, &pki, c->ing, NULL, c);
  run_until(c, ready_done, 5000);
}

static void ctx_stop(ctx *c) {
  wr_proxy_free(c->proxy);
  unit_qpair_free_endpoints(&c->q);
  for (int i = 0; i < NORIGINS; i++) {
    for (tconn *t = c->origins[i].conns; t; t = t->next) wr_conn_close(t->conn);
    uv_close((uv_handle_t *)&c->origins[i].tcp, NULL);
  }
  unit_qpair_finish(&c->q);
  for (int i = 0; i < NORIGINS; i++) {
    assert_null(c->origins[i].conns);
    wr_buf_free(&c->origins[i].got);
  }
  wr_ingress_free(c->ing);
}

/* ---- streams from the edge ---------------------------------------------------------- */

static estream *edge_raw(ctx *c, const uint8_t *d, size_t n, int fin) {
  estream *e = calloc(1, sizeof(*e));
  size_t acc;
  e->c = c;
  wr_buf_init(&e->resp, (size_t)1 << 30, NULL);
  assert_int_equal(wr_quic_stream_open(c->sconn, e, &e->sid), WR_OK);
  assert_int_equal(wr_quic_stream_write(c->sconn, e->sid, d, n, fin, &acc), WR_OK);
  assert_int_equal(acc, n);
  return e;
}

/* preamble + ConnectRequest{dest, type, meta} (+ |body|). |kv|: NULL-ended
 * key/value metadata pairs as given. */
static estream *edge_send(ctx *c, int type, const char *dest, const char *const *kv,
                          const void *body, size_t body_len, int fin) {
  wr_meta meta[16];
  size_t n = 0;
  wr_buf b;
  for (size_t i = 0; kv && kv[i]; i += 2, n++)
    meta[n] = (wr_meta){kv[i], strlen(kv[i]), kv[i + 1], strlen(kv[i + 1])};
  wr_buf_init(&b, (size_t)1 << 30, NULL);
  unit_edge_request(&b, type, dest, meta, n, body, body_len);
  estream *e = edge_raw(c, b.data, b.len, fin);
  wr_buf_free(&b);
  return e;
}

static void edge_write(estream *e, const void *d, size_t n, int fin) {
  size_t acc;
  assert_int_equal(wr_quic_stream_write(e->c->sconn, e->sid, d, n, fin, &acc), WR_OK);
  assert_int_equal(acc, n);
}

static void es_free(estream *e) {
  wr_buf_free(&e->resp);
  free(e);
}

static int watch_closed(ctx *c) { return c->watch->closed && wr_proxy_active(c->proxy) == 0; }
static int watch_len(ctx *c) { return c->watch->resp.len >= c->want_len; }
static int watch_fin(ctx *c) { return c->watch->got_fin; }

static void wait_len(ctx *c, estream *e, size_t n) {
  c->watch = e;
  c->want_len = n;
  run_until(c, watch_len, 10000);
}

static void wait_closed(ctx *c, estream *e) {
  c->watch = e;
  run_until(c, watch_closed, 10000);
}

/* The ConnectResponse; *used = preamble + message bytes. */
static void decode_resp(const estream *e, wr_connect_response *r, size_t *used) {
  *used = unit_edge_response(e->resp.data, e->resp.len, r);
}

static const char *const WARP_ON = "warp-routing:\n  enabled: true\n";

/* ---- warp-routing -------------------------------------------------------------------- */

/* tcp.from-edge.bin with its dest pointed at the echo origin: the ack is
 * tcp.from-connector.bin's, byte for byte; the raw bytes come back. */
static void test_vector_tcp(void **state) {
  ctx c;
  size_t n, cn, qused, used;
  uint8_t *v = unit_read_vector("quic/tcp.from-edge.bin", &n);
  uint8_t *cv = unit_read_vector("quic/tcp.from-connector.bin", &cn);
  wr_connect_request req;
  wr_connect_response r;
  char dest[64];
  (void)state;
  assert_int_equal(wr_connect_request_decode_alloc(v + 8, n - 8, NULL, NULL, 0, &req, &qused),
                   WR_OK);
  assert_int_equal(req.type, WR_CONNECT_TCP);
  assert_string_equal(req.dest, "127.0.0.1:9000");
  const uint8_t *body = v + 8 + qused;
  size_t blen = n - 8 - qused;
  ctx_start(&c, WARP_ON);
  snprintf(dest, sizeof(dest), "127.0.0.1:%u", c.origins[O_ECHO].port);
  estream *e = edge_send(&c, WR_CONNECT_TCP, dest, NULL, body, blen, 1);
  wait_closed(&c, e);
  assert_true(e->got_fin);
  assert_false(e->got_reset);
  decode_resp(e, &r, &used);
  assert_int_equal(used, 48);
  assert_memory_equal(e->resp.data, cv, 48); /* the captured ack */
  assert_int_equal(r.error_len, 0);
  assert_int_equal(r.has_meta, 1);
  assert_int_equal(r.nmeta, 0);
  assert_int_equal(e->resp.len - used, blen); /* echoed */
  assert_memory_equal(e->resp.data + used, body, blen);
  assert_int_equal(c.origins[O_ECHO].eofs, 1); /* the edge's FIN became the origin's EOF */
  wr_connect_response_free(NULL, &r);
  wr_connect_request_free(NULL, &req);
  es_free(e);
  ctx_stop(&c);
  free(v);
  free(cv);
}

/* tcp-bad-dest.from-edge.bin is answered with tcp-dial-error's bytes. */
static void test_vector_bad_dest(void **state) {
  ctx c;
  size_t n, cn;
  uint8_t *v = unit_read_vector("quic/tcp-bad-dest.from-edge.bin", &n);
  uint8_t *cv = unit_read_vector("quic/tcp-dial-error.from-connector.bin", &cn);
  (void)state;
  ctx_start(&c, WARP_ON);
  estream *e = edge_raw(&c, v, n, 1);
  wait_closed(&c, e);
  assert_true(e->got_fin);
  assert_int_equal(e->resp.len, cn);
  assert_memory_equal(e->resp.data, cv, cn);
  es_free(e);
  ctx_stop(&c);
  free(v);
  free(cv);
}

static void expect_error(ctx *c, const char *dest, const char *want) {
  wr_connect_response r;
  size_t used;
  estream *e = edge_send(c, WR_CONNECT_TCP, dest, NULL, NULL, 0, 1);
  wait_closed(c, e);
  decode_resp(e, &r, &used);
  if (strcmp(r.error, want) != 0) fail_msg("dest %s: got \"%s\", want \"%s\"", dest, r.error, want);
  assert_int_equal(r.has_meta, 0);
  assert_int_equal(e->resp.len, used);
  wr_connect_response_free(NULL, &r);
  es_free(e);
}

static void test_dial_errors(void **state) {
  ctx c;
  (void)state;
  ctx_start(&c, WARP_ON);
  expect_error(&c, "127.0.0.1:1", "dial tcp 127.0.0.1:1: connect: connection refused");
  expect_error(&c, "127.0.0.1", "dial tcp: address 127.0.0.1: missing port in address");
  expect_error(&c, "127.0.0.1:99999", "dial tcp: address 99999: invalid port");
  ctx_stop(&c);
  ctx_start(&c, "");
  expect_error(&c, "127.0.0.1:1",
               "warren received a request from WARP client, but your configuration has disabled "
               "ingress from WARP clients. To enable this, set \"warp-routing:\\n\\t enabled: "
               "true\" in your config.yaml");
  ctx_stop(&c);
}

/* The origin ends its side first: the stream gets its bytes and FIN, and
 * the edge can still send (the origin reads it), then FIN. */
static void test_origin_half_close_first(void **state) {
  ctx c;
  char dest[64];
  wr_connect_response r;
  size_t used;
  (void)state;
  ctx_start(&c, WARP_ON);
  snprintf(dest, sizeof(dest), "127.0.0.1:%u", c.origins[O_BANNER].port);
  estream *e = edge_send(&c, WR_CONNECT_TCP, dest, NULL, NULL, 0, 0);
  c.watch = e;
  run_until(&c, watch_fin, 10000);
  decode_resp(e, &r, &used);
  assert_int_equal(e->resp.len - used, 6);
  assert_memory_equal(e->resp.data + used, "banner", 6);
  wr_connect_response_free(NULL, &r);
  edge_write(e, "after your FIN", 14, 1);
  wait_closed(&c, e);
  assert_false(e->got_reset);
  assert_int_equal(c.origins[O_BANNER].got.len, 14);
  assert_memory_equal(c.origins[O_BANNER].got.data, "after your FIN", 14);
  es_free(e);
  ctx_stop(&c);
}

static int record_has(ctx *c) { return c->origins[O_RECORD].got.len >= c->want_len; }

/* warp-routing proxyProtocol v2: the visitor comes from the request's
 * Cf-Connecting-IP metadata. */
static void test_warp_proxy_v2(void **state) {
  ctx c;
  char dest[64];
  static const char *const kv[] = {"Cf-Connecting-IP", "198.51.100.7", NULL};
  (void)state;
  ctx_start(&c, "warp-routing:\n  enabled: true\n  proxyProtocol: v2\n");
  snprintf(dest, sizeof(dest), "127.0.0.1:%u", c.origins[O_RECORD].port);
  estream *e = edge_send(&c, WR_CONNECT_TCP, dest, kv, "data", 4, 0);
  c.want_len = 28 + 4;
  run_until(&c, record_has, 10000);
  const uint8_t *g = c.origins[O_RECORD].got.data;
  assert_memory_equal(g, "\r\n\r\n\0\r\nQUIT\n", 12);
  static const uint8_t addrs[] = {0x21, 0x11, 0, 12, 198, 51, 100, 7, 127, 0, 0, 1, 0, 0};
  assert_memory_equal(g + 12, addrs, sizeof(addrs));
  assert_int_equal(g[26] << 8 | g[27], c.origins[O_RECORD].port);
  assert_memory_equal(g + 28, "data", 4);
  edge_write(e, NULL, 0, 1);
  wait_closed(&c, e);
  es_free(e);
  ctx_stop(&c);
}

/* ---- stream origins behind a WebSocket ------------------------------------------------- */

static void masked(wr_buf *b, int op, const char *payload, size_t n) {
  static const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
  uint8_t h[WR_WS_HEAD_MAX], tmp[256];
  size_t hl = wr_ws_frame_head(h, op, n, key);
  wr_buf_append(b, h, hl);
  memcpy(tmp, payload, n);
  wr_ws_mask(tmp, n, key, 0);
  wr_buf_append(b, tmp, n);
}

static void test_websocket_stream_origin(void **state) {
  ctx c;
  wr_connect_response r;
  size_t used;
  wr_buf f;
  static const char *const kv[] = {"HttpMethod", "GET", "HttpHost", "ssh.test",
                                   "HttpHeader:Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==",
                                   "HttpHeader:Upgrade", "websocket", NULL};
  (void)state;
  ctx_start(&c, "");
  wr_buf_init(&f, 1u << 20, NULL);
  masked(&f, WR_WS_OP_BINARY, "hello", 5);
  masked(&f, WR_WS_OP_PING, "p", 1);
  estream *e = edge_send(&c, WR_CONNECT_WEBSOCKET, "https://ssh.test/", kv, f.data, f.len, 0);
  /* 101 + the handshake fields, then the echo as a server frame and the pong. */
  c.watch = e;
  c.want_len = 1;
  run_until(&c, watch_len, 10000);
  decode_resp(e, &r, &used);
  assert_int_equal(r.error_len, 0);
  assert_string_equal(wr_meta_find_last(r.meta, r.nmeta, "HttpStatus", NULL), "101");
  assert_string_equal(wr_meta_find_last(r.meta, r.nmeta, "HttpHeader:Sec-Websocket-Accept", NULL),
                      "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert_string_equal(wr_meta_find_last(r.meta, r.nmeta, "HttpHeader:Upgrade", NULL), "websocket");
  wr_connect_response_free(NULL, &r);
  wait_len(&c, e, used + 7 + 3);
  /* Pong and data may come in either order: the pong is answered when the
   * frame is read, the echo when the origin answers. */
  static const uint8_t echo[] = {0x82, 5, 'h', 'e', 'l', 'l', 'o'}, pong[] = {0x8a, 1, 'p'};
  const uint8_t *b = e->resp.data + used;
  int pong_first = b[0] == 0x8a;
  assert_memory_equal(b + (pong_first ? 3 : 0), echo, 7);
  assert_memory_equal(b + (pong_first ? 0 : 7), pong, 3);
  /* Close from the visitor = its FIN: the origin sees EOF, ends its side,
   * and the connector answers Close, then FIN. */
  wr_buf_reset(&f);
  masked(&f, WR_WS_OP_CLOSE, "\x03\xe8", 2);
  edge_write(e, f.data, f.len, 0);
  c.watch = e;
  run_until(&c, watch_fin, 10000);
  static const uint8_t close_frame[] = {0x88, 2, 0x03, 0xe8};
  assert_int_equal(e->resp.len, used + 10 + 4);
  assert_memory_equal(e->resp.data + used + 10, close_frame, 4);
  assert_int_equal(c.origins[O_ECHO].eofs, 1);
  /* Both sides are done: the connector stopped reading (STOP_SENDING), as
   * cloudflared does at the end of a stream; the stream closes. */
  wait_closed(&c, e);
  assert_false(e->got_reset);
  wr_buf_free(&f);
  es_free(e);
  ctx_stop(&c);
}

static void test_stream_origin_errors_and_proxy_v1(void **state) {
  ctx c;
  wr_connect_response r;
  size_t used;
  static const char *const dead[] = {"HttpHost", "dead.test", NULL};
  static const char *const pp[] = {"HttpHost", "pp.test", "HttpHeader:Cf-Connecting-Ip",
                                   "2001:db8::5", NULL};
  (void)state;
  ctx_start(&c, "");
  estream *e = edge_send(&c, WR_CONNECT_WEBSOCKET, "https://dead.test/", dead, NULL, 0, 0);
  wait_closed(&c, e);
  decode_resp(e, &r, &used);
  assert_string_equal(r.error, "dial tcp 127.0.0.1:1: connect: connection refused");
  wr_connect_response_free(NULL, &r);
  es_free(e);
  e = edge_send(&c, WR_CONNECT_WEBSOCKET, "https://pp.test/", pp, NULL, 0, 0);
  char want[128];
  snprintf(want, sizeof(want), "PROXY TCP6 2001:db8::5 ::ffff:127.0.0.1 0 %u\r\n",
           c.origins[O_RECORD].port);
  c.want_len = strlen(want);
  run_until(&c, record_has, 10000);
  assert_int_equal(c.origins[O_RECORD].got.len, strlen(want));
  assert_memory_equal(c.origins[O_RECORD].got.data, want, strlen(want));
  edge_write(e, NULL, 0, 1);
  wait_closed(&c, e);
  es_free(e);
  ctx_stop(&c);
}

int main(void) {
  return UNIT_RUN(group_setup, unit_pki_teardown,
                  UNIT_TESTS(test_vector_tcp, test_vector_bad_dest, test_dial_errors,
                             test_origin_half_close_first, test_warp_proxy_v2,
                             test_websocket_stream_origin, test_stream_origin_errors_and_proxy_v1));
}
