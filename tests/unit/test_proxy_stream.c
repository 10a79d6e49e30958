/* The connector's data-stream proxy (connector/proxy.h) over real QUIC on
 * 127.0.0.1, streams (fixture: proxy_fixture.h): WebSocket upgrade + echo
 * (and the origin ending or refusing it), an edge reset aborting the origin
 * request, large transfers both ways, backpressure both ways, the captured
 * cloudflared websocket vector, and freeing the proxy with requests in
 * flight. Plain HTTP requests are in test_proxy.c. */
#include <stdlib.h>
#include <string.h>

#include "proxy_fixture.h"

UNIT_QPAIR_RUN_UNTIL(ctx)

static int echo_seen(ctx *c) {
  estream *e = c->watch;
  return e->resp.len >= 16 && memmem(e->resp.data, e->resp.len, "ping over tunnel", 16) != NULL &&
         memmem(e->resp.data, e->resp.len, "second", 6) != NULL;
}

static int first_echo(ctx *c) {
  estream *e = c->watch;
  return e->resp.len && memmem(e->resp.data, e->resp.len, "ping over tunnel", 16) != NULL;
}

static void test_websocket_echo(void **state) {
  ctx c;
  resp r;
  static const char *const kv[] = {"Connection", "Upgrade", "Upgrade", "websocket",
                                   "Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==",
                                   "Sec-Websocket-Version", "13", NULL};
  (void)state;
  ctx_start(&c, M_WS);
  estream *e = edge_send(&c, WR_CONNECT_WEBSOCKET, "https://app.example.test/ws", "GET",
                         "app.example.test", kv, "ping over tunnel", 16, 0);
  c.watch = e;
  run_until(&c, first_echo, 20000);
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].key, "HttpStatus");
  assert_string_equal(r.r.meta[0].val, "101");
  assert_string_equal(meta_get(&r, "HttpHeader:Upgrade"), "websocket");
  assert_string_equal(meta_get(&r, "HttpHeader:Sec-Websocket-Accept"),
                      "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  resp_free(&r);
  edge_write(e, "second", 6, 0);
  run_until(&c, echo_seen, 20000);
  assert_int_equal(wr_proxy_get_stats(c.proxy)->tcp_active, 1);
  /* The edge ends: the connector ends too. */
  edge_write(e, NULL, 0, 1);
  wait_closed(&c, e);
  assert_true(e->got_fin);
  assert_false(e->got_reset);
  torigin *o = &c.origins[O_APP];
  ASSERT_HEAD_HAS(o, "GET /ws HTTP/1.1\r\n", "Connection: Upgrade\r\n", "Upgrade: websocket\r\n",
                  "Sec-Websocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
                  "Sec-Websocket-Version: 13\r\n");
  assert_false(head_has(o, "keep-alive"));
  const wr_proxy_stats *st = wr_proxy_get_stats(c.proxy);
  assert_int_equal(st->tcp_active, 0);
  assert_int_equal(st->tcp_total, 1);
  assert_int_equal(st->responses_by_code[1], 1);
  es_free(e);
  ctx_stop(&c);
}

/* A websocket upgrade's request headers. */
static const char *const ws_kv[] = {"Connection", "Upgrade", "Upgrade", "websocket",
                                    "Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", NULL};

static int origin_closed_one(ctx *c) { return c->origins[O_APP].closes >= 1; }

/* The origin ends the websocket: the stream gets FIN. */
static void test_websocket_origin_ends(void **state) {
  ctx c;
  (void)state;
  ctx_start(&c, M_WS);
  estream *e = edge_send(&c, WR_CONNECT_WEBSOCKET, "/ws", "GET", "app.example.test", ws_kv,
                         "ping over tunnel", 16, 0);
  c.watch = e;
  run_until(&c, first_echo, 20000);
  assert_non_null(c.origins[O_APP].conns);
  wr_conn_close(c.origins[O_APP].conns->conn);
  run_until(&c, origin_closed_one, 20000);
  wait_closed(&c, e);
  assert_true(e->got_fin);
  es_free(e);
  ctx_stop(&c);
}

/* A websocket request the origin answers without 101 passes on like http. */
static void test_websocket_refused(void **state) {
  ctx c;
  resp r;
  (void)state;
  ctx_start(&c, M_INFO);
  estream *e = edge_send(&c, WR_CONNECT_WEBSOCKET, "/ws", "GET", "app.example.test", ws_kv,
                         "ignored", 7, 1);
  wait_closed(&c, e);
  assert_true(e->got_fin);
  decode_resp(e, &r);
  assert_resp(&r, "200", "hello from app");
  resp_free(&r);
  assert_int_equal(wr_proxy_get_stats(c.proxy)->tcp_total, 0);
  es_free(e);
  ctx_stop(&c);
}

static int origin_gone(ctx *c) {
  return c->origins[O_APP].accepts == 1 && c->origins[O_APP].closes == 1;
}
static int origin_has_request(ctx *c) { return c->origins[O_APP].last_head.len > 0; }

/* Starts |c| with an origin that never answers and sends it a GET (with FIN
 * if |fin|); returns once the origin has the request. */
static estream *start_hanging(ctx *c, int fin) {
  ctx_start(c, M_HANG);
  estream *e =
      edge_send(c, WR_CONNECT_HTTP, "/slow", "GET", "app.example.test", NULL, NULL, 0, fin);
  run_until(c, origin_has_request, 20000);
  return e;
}

/* The edge gives up on |e| (with a RESET_STREAM first when |reset|) and
 * STOP_SENDING; once |origin_done| holds, the proxy must be idle with no
 * request in flight. Frees |e| and stops |c|. */
static void edge_gives_up(ctx *c, estream *e, int reset, int (*origin_done)(ctx *)) {
  if (reset) wr_quic_stream_reset(c->sconn, e->sid, 0);
  wr_quic_stream_stop_sending(c->sconn, e->sid, 0);
  run_until(c, origin_done, 20000);
  run_until(c, proxy_idle, 20000);
  assert_int_equal(wr_proxy_get_stats(c->proxy)->concurrent_requests, 0);
  es_free(e);
  ctx_stop(c);
}

static void test_edge_reset_aborts_origin(void **state) {
  ctx c;
  (void)state;
  estream *e = start_hanging(&c, 0);
  edge_gives_up(&c, e, 1, origin_gone);
}

#define BIG (24u * 1024u * 1024u)

static void test_big_download(void **state) {
  ctx c;
  resp r;
  (void)state;
  ctx_start(&c, M_BIG);
  c.origins[O_APP].big_len = BIG;
  estream *e = get_resp(&c, "/big", "app.example.test", &r);
  assert_string_equal(r.r.meta[0].val, "200");
  assert_int_equal(r.body_len, BIG);
  for (size_t i = 0; i < r.body_len; i++)
    if (r.body[i] != pattern(i)) fail_msg("byte %zu differs", i);
  resp_free(&r);
  es_free(e);
  ctx_stop(&c);
}

/* A POST of |total| generated bytes (Content-Length), sent as flow control
 * allows (gen_more), then FIN. */
static estream *post_generated(ctx *c, uint64_t total) {
  char clen[32];
  snprintf(clen, sizeof(clen), "%llu", (unsigned long long)total);
  const char *kv[] = {"Content-Length", clen, NULL};
  estream *e = edge_send(c, WR_CONNECT_HTTP, "/up", "POST", "app.example.test", kv, NULL, 0, 0);
  e->gen_total = total;
  e->gen_fin = 1;
  e->generating = 1;
  gen_more(e);
  return e;
}

static void test_big_upload(void **state) {
  ctx c;
  resp r;
  (void)state;
  ctx_start(&c, M_SINK);
  estream *e = post_generated(&c, BIG);
  wait_closed(&c, e);
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].val, "200");
  char want[64];
  snprintf(want, sizeof(want), "%u 1", BIG);
  assert_int_equal(r.body_len, strlen(want));
  assert_memory_equal(r.body, want, strlen(want));
  resp_free(&r);
  es_free(e);
  ctx_stop(&c);
}

static int big_stalled(ctx *c) {
  tconn *t = c->origins[O_APP].conns;
  return t && t->big_sent > 0 && wr_conn_write_queued(t->conn) >= 256 * 1024;
}

static void settle(ctx *c, uint64_t ms) { unit_qpair_run_for(&c->q, ms); }

/* Runs the loop until |*counter| stopped moving for 150 ms (at most 15 s
 * under load); returns its value. Kernel socket buffers on loopback absorb
 * a few MB before a stalled reader stops the flow. */
static uint64_t settle_stable(ctx *c, const uint64_t *counter) {
  uint64_t last = *counter;
  for (int i = 0; i < 100; i++) {
    settle(c, 150);
    if (*counter == last) break;
    last = *counter;
  }
  return last;
}

/* A visitor that does not read: the connector stops reading the origin, so
 * the origin can only get about one window (+ socket buffers) ahead. Then
 * the edge gives up with STOP_SENDING: the origin request is aborted. */
static void test_backpressure_download(void **state) {
  ctx c;
  (void)state;
  ctx_start(&c, M_BIG);
  c.origins[O_APP].big_len = 256u * 1024u * 1024u;
  c.edge_hold = 1;
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "/big", "GET", "app.example.test", NULL, NULL, 0, 1);
  run_until(&c, big_stalled, 20000);
  tconn *t = c.origins[O_APP].conns;
  assert_non_null(t);
  uint64_t sent = settle_stable(&c, &t->big_sent);
  assert_true(sent < 24u * 1024u * 1024u);
  assert_true(e->resp.len < 4u * 1024u * 1024u);
  settle(&c, 300);
  assert_true(t->big_sent < 24u * 1024u * 1024u);
  /* The visitor goes away. */
  edge_gives_up(&c, e, 0, origin_closed_one);
}

static int gen_stalled(ctx *c) { return c->watch->gen_sent > 0 && c->watch->generating; }

/* An origin that does not read: QUIC credit is not returned, so the edge
 * cannot push much more than the stream window (+ socket buffers). */
static void test_backpressure_upload(void **state) {
  ctx c;
  (void)state;
  ctx_start(&c, M_STALL);
  estream *e = post_generated(&c, 256u * 1024u * 1024u);
  c.watch = e;
  run_until(&c, gen_stalled, 20000);
  uint64_t sent = settle_stable(&c, &e->gen_sent);
  assert_true(sent < 24u * 1024u * 1024u);
  settle(&c, 300);
  if (e->gen_sent >= 24u * 1024u * 1024u)
    fail_msg("upload went on: %llu then %llu", (unsigned long long)sent,
             (unsigned long long)e->gen_sent);
  /* The visitor gives up: RESET_STREAM aborts the origin request. */
  e->generating = 0;
  wr_quic_stream_reset(c.sconn, e->sid, 0);
  run_until(&c, proxy_idle, 20000);
  /* The stalled origin sees the connector's close once it reads again. */
  assert_non_null(c.origins[O_APP].conns);
  wr_conn_read_start(c.origins[O_APP].conns->conn);
  run_until(&c, origin_closed_one, 20000);
  assert_int_equal(wr_proxy_get_stats(c.proxy)->concurrent_requests, 0);
  es_free(e);
  ctx_stop(&c);
}

static size_t ws_frame_len;
static const uint8_t *ws_frame;

static int frame_echoed(ctx *c) {
  estream *e = c->watch;
  return e->resp.len >= ws_frame_len &&
         memmem(e->resp.data, e->resp.len, ws_frame, ws_frame_len) != NULL;
}

/* cloudflared's edge websocket stream: upgrade, 101 first in the metadata,
 * then the client's frame passes through untouched. */
static void test_vector_websocket(void **state) {
  ctx c;
  resp r, want;
  size_t n, wn, used;
  wr_connect_request cr;
  (void)state;
  ctx_start(&c, M_WS);
  uint8_t *req = unit_read_vector("quic/websocket.from-edge.bin", &n);
  uint8_t *ref = unit_read_vector("quic/websocket.from-connector.bin", &wn);
  assert_int_equal(wr_connect_request_decode_alloc(req + 8, n - 8, NULL, NULL, 0, &cr, &used),
                   WR_OK);
  assert_int_equal(cr.type, WR_CONNECT_WEBSOCKET);
  wr_connect_request_free(NULL, &cr);
  ws_frame = req + 8 + used;
  ws_frame_len = n - 8 - used;
  assert_true(ws_frame_len > 0);
  estream *e = edge_raw(&c, req, n, 0);
  c.watch = e;
  run_until(&c, frame_echoed, 20000);
  decode_resp(e, &r);
  decode_bytes(ref, wn, &want);
  assert_string_equal(want.r.meta[0].key, "HttpStatus");
  assert_string_equal(want.r.meta[0].val, "101");
  assert_string_equal(r.r.meta[0].key, "HttpStatus");
  assert_string_equal(r.r.meta[0].val, "101");
  assert_non_null(meta_get(&want, "HttpHeader:Sec-Websocket-Accept"));
  assert_non_null(meta_get(&r, "HttpHeader:Sec-Websocket-Accept"));
  resp_free(&r);
  resp_free(&want);
  ASSERT_HEAD_HAS(&c.origins[O_APP], "GET /chat HTTP/1.1\r\n", "Host: ws.example.test\r\n",
                  "Sec-Websocket-Key: WTSl10wFwrcxLjHkjO+sNA==\r\n");
  edge_write(e, NULL, 0, 1);
  wait_closed(&c, e);
  free(req);
  free(ref);
  es_free(e);
  ctx_stop(&c);
}

/* Freeing the proxy with requests in flight closes their origins. */
static void test_free_in_flight(void **state) {
  ctx c;
  (void)state;
  estream *e = start_hanging(&c, 1);
  assert_int_equal(wr_proxy_active(c.proxy), 1);
  es_free(e);
  ctx_stop(&c); /* asserts every origin connection got closed */
}

int main(void) {
  return UNIT_RUN(
      proxy_group_setup, proxy_group_teardown,
      UNIT_TESTS(test_websocket_echo, test_websocket_origin_ends, test_websocket_refused,
                 test_edge_reset_aborts_origin, test_big_download, test_big_upload,
                 test_backpressure_download, test_backpressure_upload, test_vector_websocket,
                 test_free_in_flight));
}
