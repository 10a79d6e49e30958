/* The connector's TCP pipes (connector/proxy_tcp.c) over real QUIC on
 * 127.0.0.1 in one libuv loop, as tests/unit/test_proxy.c does: a QUIC
 * server plays the edge and opens data streams, the QUIC client hands its
 * stream events to wr_proxy, and the origins are in-test TCP servers
 * (fixture: proxy_fixture.h).
 * Covered: the captured warp-routing vectors (the ack and the dial error
 * byte for byte), dial errors, half-close in both orders, a PROXY v2
 * header with the visitor from the ConnectRequest, and a stream origin
 * reached through a WebSocket the connector terminates (101, frames both
 * ways, ping, Close as half-close). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wsframe.h"
#include "proxy_fixture.h"

UNIT_QPAIR_RUN_UNTIL(ctx)

enum { O_ECHO = 0, O_BANNER, O_RECORD };

/* The raw origins (proxy_fixture.h), the QUIC pair and the proxy; |warp| is
 * the warp-routing block. */
static void tcp_ctx_start(ctx *c, const char *warp) {
  char yaml[2048];
  static const origin_spec origins[] = {
      [O_ECHO] = {"echo", M_ECHO, 0, 0},
      [O_BANNER] = {"banner", M_BANNER, 0, 0},
      [O_RECORD] = {"record", M_RECORD, 0, 0},
  };

  ctx_begin(c, origins, sizeof(origins) / sizeof(origins[0]));
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
  ctx_proxy_start(c, yaml, NULL);
}

/* ---- streams from the edge ---------------------------------------------------------- */

/* preamble + ConnectRequest{dest, type, meta} (+ |body|). |kv|: NULL-ended
 * key/value metadata pairs as given (edge_send adds HttpHeader: to them). */
static estream *edge_send_kv(ctx *c, int type, const char *dest, const char *const *kv,
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

static int watch_len(ctx *c) { return c->watch->resp.len >= c->want_len; }
static int watch_fin(ctx *c) { return c->watch->got_fin; }

static void wait_len(ctx *c, estream *e, size_t n) {
  c->watch = e;
  c->want_len = n;
  run_until(c, watch_len, 10000);
}

/* The ConnectResponse; *used = preamble + message bytes. */
static void decode_ack(const estream *e, wr_connect_response *r, size_t *used) {
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
  tcp_ctx_start(&c, WARP_ON);
  snprintf(dest, sizeof(dest), "127.0.0.1:%u", c.origins[O_ECHO].port);
  estream *e = edge_send_kv(&c, WR_CONNECT_TCP, dest, NULL, body, blen, 1);
  wait_closed(&c, e);
  assert_true(e->got_fin);
  assert_false(e->got_reset);
  decode_ack(e, &r, &used);
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
  tcp_ctx_start(&c, WARP_ON);
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
  estream *e = edge_send_kv(c, WR_CONNECT_TCP, dest, NULL, NULL, 0, 1);
  wait_closed(c, e);
  decode_ack(e, &r, &used);
  if (strcmp(r.error, want) != 0) fail_msg("dest %s: got \"%s\", want \"%s\"", dest, r.error, want);
  assert_int_equal(r.has_meta, 0);
  assert_int_equal(e->resp.len, used);
  wr_connect_response_free(NULL, &r);
  es_free(e);
}

static void test_dial_errors(void **state) {
  ctx c;
  (void)state;
  tcp_ctx_start(&c, WARP_ON);
  expect_error(&c, "127.0.0.1:1", "dial tcp 127.0.0.1:1: connect: connection refused");
  expect_error(&c, "127.0.0.1", "dial tcp: address 127.0.0.1: missing port in address");
  expect_error(&c, "127.0.0.1:99999", "dial tcp: address 99999: invalid port");
  ctx_stop(&c);
  tcp_ctx_start(&c, "");
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
  tcp_ctx_start(&c, WARP_ON);
  snprintf(dest, sizeof(dest), "127.0.0.1:%u", c.origins[O_BANNER].port);
  estream *e = edge_send_kv(&c, WR_CONNECT_TCP, dest, NULL, NULL, 0, 0);
  c.watch = e;
  run_until(&c, watch_fin, 10000);
  decode_ack(e, &r, &used);
  assert_int_equal(e->resp.len - used, 6);
  assert_memory_equal(e->resp.data + used, "banner", 6);
  wr_connect_response_free(NULL, &r);
  edge_write(e, "after your FIN", 14, 1);
  wait_closed(&c, e);
  assert_false(e->got_reset);
  assert_int_equal(c.origins[O_BANNER].raw.len, 14);
  assert_memory_equal(c.origins[O_BANNER].raw.data, "after your FIN", 14);
  es_free(e);
  ctx_stop(&c);
}

static int record_has(ctx *c) { return c->origins[O_RECORD].raw.len >= c->want_len; }

/* warp-routing proxyProtocol v2: the visitor comes from the request's
 * Cf-Connecting-IP metadata. */
static void test_warp_proxy_v2(void **state) {
  ctx c;
  char dest[64];
  static const char *const kv[] = {"Cf-Connecting-IP", "198.51.100.7", NULL};
  (void)state;
  tcp_ctx_start(&c, "warp-routing:\n  enabled: true\n  proxyProtocol: v2\n");
  snprintf(dest, sizeof(dest), "127.0.0.1:%u", c.origins[O_RECORD].port);
  estream *e = edge_send_kv(&c, WR_CONNECT_TCP, dest, kv, "data", 4, 0);
  c.want_len = 28 + 4;
  run_until(&c, record_has, 10000);
  const uint8_t *g = c.origins[O_RECORD].raw.data;
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
  tcp_ctx_start(&c, "");
  wr_buf_init(&f, 1u << 20, NULL);
  masked(&f, WR_WS_OP_BINARY, "hello", 5);
  masked(&f, WR_WS_OP_PING, "p", 1);
  estream *e = edge_send_kv(&c, WR_CONNECT_WEBSOCKET, "https://ssh.test/", kv, f.data, f.len, 0);
  /* 101 + the handshake fields, then the echo as a server frame and the pong. */
  c.watch = e;
  c.want_len = 1;
  run_until(&c, watch_len, 10000);
  decode_ack(e, &r, &used);
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
  tcp_ctx_start(&c, "");
  estream *e = edge_send_kv(&c, WR_CONNECT_WEBSOCKET, "https://dead.test/", dead, NULL, 0, 0);
  wait_closed(&c, e);
  decode_ack(e, &r, &used);
  assert_string_equal(r.error, "dial tcp 127.0.0.1:1: connect: connection refused");
  wr_connect_response_free(NULL, &r);
  es_free(e);
  e = edge_send_kv(&c, WR_CONNECT_WEBSOCKET, "https://pp.test/", pp, NULL, 0, 0);
  char want[128];
  snprintf(want, sizeof(want), "PROXY TCP6 2001:db8::5 ::ffff:127.0.0.1 0 %u\r\n",
           c.origins[O_RECORD].port);
  c.want_len = strlen(want);
  run_until(&c, record_has, 10000);
  assert_int_equal(c.origins[O_RECORD].raw.len, strlen(want));
  assert_memory_equal(c.origins[O_RECORD].raw.data, want, strlen(want));
  edge_write(e, NULL, 0, 1);
  wait_closed(&c, e);
  es_free(e);
  ctx_stop(&c);
}

int main(void) {
  return UNIT_RUN(proxy_group_setup, proxy_group_teardown,
                  UNIT_TESTS(test_vector_tcp, test_vector_bad_dest, test_dial_errors,
                             test_origin_half_close_first, test_warp_proxy_v2,
                             test_websocket_stream_origin, test_stream_origin_errors_and_proxy_v1));
}
