/* The edge's visitor front end to end (world: visitor_world.h): GET, HEAD
 * and ports, wildcard routes, request bodies (length, chunked, Expect:
 * 100-continue), chunked responses, no route, no connector, connector
 * errors, resets mid-body, keep-alive and pipelining, bad requests, the
 * header timeout, early responses, large bodies both ways, WebSocket, and
 * the tunnel's connector connections (a re-registration replacing the old
 * one, requests spread over two, one lost with a request in flight).
 * Connection and rate limits are in test_visitor_limits.c. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "visitor_world.h"

/* The world's teardown, and the traffic of these tests on the unlimited
 * front: every route/connector failure and enough answers were counted. */
static int group_teardown(void **state) {
  int rv = vis_group_teardown(state);
  int ok = w.final_stats.no_route >= 1 && w.final_stats.no_connector >= 1;
  ok &= w.final_stats.responses_by_class[2] >= 10 && w.final_stats.responses_by_class[4] >= 3;
  if (!ok)
    fprintf(stderr, "teardown: no_route=%llu no_connector=%llu 2xx=%llu 4xx=%llu\n",
            (unsigned long long)w.final_stats.no_route,
            (unsigned long long)w.final_stats.no_connector,
            (unsigned long long)w.final_stats.responses_by_class[2],
            (unsigned long long)w.final_stats.responses_by_class[4]);
  return rv == 0 && ok ? 0 : -1;
}

/* Per-test fixture of the tests that talk over one visitor connection:
 * *state is a client connected to the front (client_open), closed after
 * the test (client_close). */
static int client_setup(void **state) {
  client *cl = calloc(1, sizeof(*cl));
  assert_non_null(cl);
  client_open(cl);
  *state = cl;
  return 0;
}

static int client_teardown(void **state) {
  client *cl = *state;
  client_close(cl);
  free(cl);
  return 0;
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_get(void **state) {
  (void)state;
  resp r;
  exchange("GET /index.html HTTP/1.1\r\nHost: app.example.test\r\nUser-Agent: curl/7.88.1\r\n"
           "Accept: */*\r\nX-Forwarded-For: 6.6.6.6\r\nCf-Connecting-IP: 6.6.6.6\r\n"
           "X-Forwarded-Proto: gopher\r\n\r\n",
           &r, 0);
  assert_int_equal(r.status, 200);
  assert_true(r.complete);
  assert_true(body_is(&r, "hello from origin\n"));
  char v[64];
  assert_non_null(find_header(r.head, "Content-Type", v, sizeof(v)));
  assert_string_equal(v, "text/plain");
  assert_non_null(find_header(r.head, "Content-Length", v, sizeof(v)));
  assert_string_equal(v, "18");
  vis_resp_free(&r);

  pthread_mutex_lock(&mu);
  assert_string_equal(obs.dest, "http://app.example.test/index.html");
  assert_int_equal(obs.type, WR_CONNECT_HTTP);
  assert_string_equal(seen_meta("HttpMethod"), "GET");
  assert_string_equal(seen_meta("HttpHost"), "app.example.test");
  assert_int_equal(seen_meta_count("HttpHeader:X-Forwarded-For"), 1);
  assert_string_equal(seen_meta("HttpHeader:X-Forwarded-For"), "127.0.0.1");
  assert_int_equal(seen_meta_count("HttpHeader:Cf-Connecting-Ip"), 1);
  assert_string_equal(seen_meta("HttpHeader:Cf-Connecting-Ip"), "127.0.0.1");
  assert_int_equal(seen_meta_count("HttpHeader:X-Forwarded-Proto"), 1);
  assert_string_equal(seen_meta("HttpHeader:X-Forwarded-Proto"), "http");

  /* The stream bytes decode like the captured cloudflared-edge GET: same
   * preamble, dest form, type, and the same leading metadata. */
  size_t vlen, used;
  uint8_t *vec = unit_read_vector("quic/http-get.from-edge.bin", &vlen);
  assert_memory_equal(obs.raw, vec, 8);
  wr_connect_request a, b;
  assert_int_equal(wr_connect_request_decode_alloc(vec + 8, vlen - 8, NULL, NULL, 0, &a, &used), 0);
  assert_int_equal(
      wr_connect_request_decode_alloc(obs.raw + 8, obs.raw_len - 8, NULL, NULL, 0, &b, &used), 0);
  assert_int_equal(used, obs.raw_len - 8);
  assert_int_equal(a.type, b.type);
  assert_int_equal(a.dest_len, b.dest_len);
  assert_memory_equal(a.dest, b.dest, a.dest_len);
  assert_true(b.nmeta >= a.nmeta);
  for (size_t i = 0; i < a.nmeta; i++) {
    assert_int_equal(a.meta[i].key_len, b.meta[i].key_len);
    assert_memory_equal(a.meta[i].key, b.meta[i].key, a.meta[i].key_len);
    assert_int_equal(a.meta[i].val_len, b.meta[i].val_len);
    assert_memory_equal(a.meta[i].val, b.meta[i].val, a.meta[i].val_len);
  }
  wr_connect_request_free(NULL, &a);
  wr_connect_request_free(NULL, &b);
  free(vec);
  pthread_mutex_unlock(&mu);
}

static void test_head_and_port(void **state) {
  (void)state;
  resp r;
  /* Host with a port and upper case routes; HEAD gets the head only. */
  exchange("HEAD /hello HTTP/1.1\r\nHost: APP.example.test:8080\r\n\r\n", &r, 1);
  assert_int_equal(r.status, 200);
  char v[64];
  assert_non_null(find_header(r.head, "Content-Length", v, sizeof(v)));
  assert_string_equal(v, "18");
  vis_resp_free(&r);
  pthread_mutex_lock(&mu);
  assert_string_equal(obs.dest, "http://app.example.test/hello");
  assert_string_equal(seen_meta("HttpMethod"), "HEAD");
  assert_string_equal(seen_meta("HttpHost"), "app.example.test:8080");
  pthread_mutex_unlock(&mu);
}

static void test_wildcard_route(void **state) {
  (void)state;
  resp r;
  exchange("GET /hello?x=1 HTTP/1.1\r\nHost: deep.sub.w.example.test\r\n\r\n", &r, 0);
  assert_int_equal(r.status, 200);
  assert_true(body_is(&r, "hello from origin\n"));
  vis_resp_free(&r);
  pthread_mutex_lock(&mu);
  assert_string_equal(obs.dest, "http://deep.sub.w.example.test/hello?x=1");
  pthread_mutex_unlock(&mu);
}

static void test_post_length(void **state) {
  (void)state;
  resp r;
  exchange("POST /echo HTTP/1.1\r\nHost: app.example.test\r\nContent-Type: text/plain\r\n"
           "Content-Length: 10, 10\r\n\r\nhello body",
           &r, 0);
  assert_int_equal(r.status, 200);
  assert_true(body_is(&r, "hello body"));
  vis_resp_free(&r);
  pthread_mutex_lock(&mu);
  assert_string_equal(seen_meta("HttpMethod"), "POST");
  assert_int_equal(seen_meta_count("HttpHeader:Content-Length"), 1);
  assert_string_equal(seen_meta("HttpHeader:Content-Length"), "10"); /* normalised */
  assert_null(seen_meta("HttpHeader:Transfer-Encoding"));
  assert_true(obs.body_done);
  assert_int_equal(obs.body_len, 10);
  assert_memory_equal(obs.body, "hello body", 10);
  pthread_mutex_unlock(&mu);
}

static void test_post_chunked(void **state) {
  (void)state;
  resp r;
  exchange("POST /echo HTTP/1.1\r\nHost: app.example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
           &r, 0);
  assert_int_equal(r.status, 200);
  assert_true(body_is(&r, "hello world"));
  vis_resp_free(&r);
  pthread_mutex_lock(&mu);
  assert_string_equal(seen_meta("HttpHeader:Transfer-Encoding"), "chunked");
  assert_null(seen_meta("HttpHeader:Content-Length"));
  assert_int_equal(obs.body_len, 11);
  assert_memory_equal(obs.body, "hello world", 11);
  pthread_mutex_unlock(&mu);
}

static void test_expect_continue(void **state) {
  client *cl = *state;
  resp r;
  client_sends(cl, "PUT /echo HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 4\r\n"
                    "Expect: 100-continue\r\n\r\n");
  assert_int_equal(read_resp(cl, &r, 0, 1), 0);
  assert_int_equal(r.status, 100);
  vis_resp_free(&r);
  send_expect(cl, &r, "data", 200);
  assert_true(body_is(&r, "data"));
  vis_resp_free(&r);
  pthread_mutex_lock(&mu);
  assert_null(seen_meta("HttpHeader:Expect"));
  pthread_mutex_unlock(&mu);
}

static void test_response_chunked(void **state) {
  (void)state;
  resp r;
  exchange("GET /nocl HTTP/1.1\r\nHost: app.example.test\r\n\r\n", &r, 0);
  assert_int_equal(r.status, 200);
  assert_true(r.chunked);
  assert_false(r.has_cl);
  assert_true(r.complete);
  assert_true(body_is(&r, "part one, part two"));
  vis_resp_free(&r);

  /* HTTP/1.0: close-delimited. */
  client cl;
  client_open(&cl);
  send_expect(&cl, &r, "GET /nocl HTTP/1.0\r\nHost: app.example.test\r\n\r\n", 200);
  assert_false(r.chunked);
  assert_true(r.complete);
  assert_true(body_is(&r, "part one, part two"));
  vis_resp_free(&r);
  client_close(&cl);
}

static void test_no_route(void **state) {
  client *cl = *state;
  resp r;
  send_expect(cl, &r, "GET / HTTP/1.1\r\nHost: nope.example.test\r\n\r\n", 404);
  r.body[r.body_len] = '\0';
  assert_non_null(strstr((char *)r.body, "no route for host nope.example.test"));
  vis_resp_free(&r);
  /* The connection stays usable. */
  send_expect(cl, &r, "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n", 200);
  vis_resp_free(&r);
}

static void test_no_connector(void **state) {
  (void)state;
  resp r;
  struct timespec ts0, ts1;
  clock_gettime(CLOCK_MONOTONIC, &ts0);
  exchange("GET / HTTP/1.1\r\nHost: dead.example.test\r\n\r\n", &r, 0);
  clock_gettime(CLOCK_MONOTONIC, &ts1);
  assert_int_equal(r.status, 502);
  r.body[r.body_len] = '\0';
  assert_non_null(strstr((char *)r.body, "No connector is connected for tunnel"));
  assert_non_null(strstr((char *)r.body, t2.id));
  assert_true(ts1.tv_sec - ts0.tv_sec < 2); /* immediately */
  vis_resp_free(&r);
}

static void test_connector_error(void **state) {
  (void)state;
  resp r;
  exchange("GET /err HTTP/1.1\r\nHost: app.example.test\r\n\r\n", &r, 0);
  assert_int_equal(r.status, 502);
  r.body[r.body_len] = '\0';
  assert_non_null(strstr((char *)r.body, "origin exploded"));
  vis_resp_free(&r);
}

static void test_reset_mid_body(void **state) {
  client *cl = *state;
  resp r;
  send_expect(cl, &r, "GET /reset HTTP/1.1\r\nHost: app.example.test\r\n\r\n", 200);
  assert_true(r.chunked);
  assert_false(r.complete); /* no terminating chunk */
  assert_true(body_is(&r, "partial"));
  assert_true(cl->eof);
  vis_resp_free(&r);
  client_close(cl);

  /* Content-Length body that ends short: the connection closes early. */
  client_open(cl);
  send_expect(cl, &r, "GET /short HTTP/1.1\r\nHost: app.example.test\r\n\r\n", 200);
  assert_false(r.complete);
  assert_int_equal(r.body_len, 10);
  vis_resp_free(&r);
}

static void test_keepalive(void **state) {
  client *cl = *state;
  resp r;
  for (int i = 0; i < 3; i++) {
    send_expect(cl, &r,
                i == 1 ? "GET /nocl HTTP/1.1\r\nHost: app.example.test\r\n\r\n"
                       : "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
                200);
    assert_true(r.complete);
    assert_false(r.conn_close);
    assert_true(body_is(&r, i == 1 ? "part one, part two" : "hello from origin\n"));
    vis_resp_free(&r);
  }
  /* Connection: close is honoured. */
  send_expect(cl, &r, "GET /hello HTTP/1.1\r\nHost: app.example.test\r\nConnection: close\r\n\r\n", 200);
  assert_true(r.conn_close);
  vis_resp_free(&r);
  assert_true(server_closed(cl));
}

static void test_pipelined(void **state) {
  client *cl = *state;
  resp r;
  client_sends(cl,
               "GET /nocl HTTP/1.1\r\nHost: app.example.test\r\n\r\n"
               "POST /echo HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 3\r\n\r\nabc"
               "GET /hello HTTP/1.1\r\nHost: nope.example.test\r\n\r\n"
               "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n");
  read_expect(cl, &r, 200);
  assert_true(body_is(&r, "part one, part two"));
  vis_resp_free(&r);
  read_expect(cl, &r, 200);
  assert_true(body_is(&r, "abc"));
  vis_resp_free(&r);
  read_expect(cl, &r, 404);
  vis_resp_free(&r);
  read_expect(cl, &r, 200);
  assert_true(body_is(&r, "hello from origin\n"));
  vis_resp_free(&r);
}

static void test_bad_requests(void **state) {
  (void)state;
  client cl;
  resp r;
  client_open(&cl);
  send_expect(&cl, &r, "POST /echo HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 5\r\n" "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
  assert_true(r.conn_close);
  vis_resp_free(&r);
  assert_true(server_closed(&cl));
  client_close(&cl);

  /* 40 KiB of header. */
  size_t big = 40 * 1024;
  char *req = malloc(big + 128);
  int n = snprintf(req, 128, "GET / HTTP/1.1\r\nHost: app.example.test\r\nX-Big: ");
  memset(req + n, 'a', big);
  memcpy(req + n + big, "\r\n\r\n", 5);
  client_open(&cl);
  send_expect(&cl, &r, req, 431);
  vis_resp_free(&r);
  client_close(&cl);
  free(req);

  /* No Host on 1.1, a bad Host, a CONNECT. */
  static const char *const bad[] = {
      "GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: app.example.test:80x\r\n\r\n",
      "CONNECT app.example.test:443 HTTP/1.1\r\nHost: app.example.test:443\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    exchange(bad[i], &r, 0);
    assert_int_equal(r.status, 400);
    vis_resp_free(&r);
  }
}

static void test_header_timeout(void **state) {
  client *cl = *state;
  resp r;
  client_sends(cl, "GET / HTTP/1.1\r\nHost: app.exa"); /* and nothing more */
  read_expect(cl, &r, 408);
  vis_resp_free(&r);
  assert_true(server_closed(cl));
}

static void test_early_response(void **state) {
  client *cl = *state;
  resp r;
  char head[256];
  snprintf(head, sizeof(head),
           "POST /early HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: %u\r\n\r\n",
           EARLY_BODY);
  client_sends(cl, head);
  uint8_t *body = calloc(1, EARLY_BODY);
  client_send(cl, body, EARLY_BODY);
  free(body);
  read_expect(cl, &r, 200);
  assert_true(body_is(&r, "early"));
  vis_resp_free(&r);
  /* The rest of the body was dropped; the connection goes on. */
  send_expect(cl, &r, "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n", 200);
  assert_true(body_is(&r, "hello from origin\n"));
  vis_resp_free(&r);
}

/* Bodies are streamed both ways with flow control: 8 MiB down, 8 MiB up. */
static void test_big_bodies(void **state) {
  client *cl = *state;
  resp r;
  send_expect(cl, &r, "GET /big HTTP/1.1\r\nHost: app.example.test\r\n\r\n", 200);
  assert_true(r.complete);
  assert_int_equal(r.body_len, BIG_SIZE);
  for (size_t i = 0; i < BIG_SIZE; i += 4093) assert_int_equal(r.body[i], (uint8_t)(i * 7));
  vis_resp_free(&r);

  char head[256];
  snprintf(head, sizeof(head),
           "POST /sink HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: %u\r\n\r\n", BIG_SIZE);
  client_sends(cl, head);
  uint8_t *body = calloc(1, 1u << 20);
  for (int i = 0; i < 8; i++) client_send(cl, body, 1u << 20);
  free(body);
  read_expect(cl, &r, 200);
  char want[32];
  snprintf(want, sizeof(want), "%u", BIG_SIZE);
  assert_true(body_is(&r, want));
  vis_resp_free(&r);
}

static void test_websocket(void **state) {
  client *cl = *state;
  resp r;
  client_sends(cl, "GET /ws HTTP/1.1\r\nHost: app.example.test\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n");
  assert_int_equal(read_resp(cl, &r, 0, 1), 0);
  assert_int_equal(r.status, 101);
  char v[64];
  assert_non_null(find_header(r.head, "Upgrade", v, sizeof(v)));
  assert_string_equal(v, "websocket");
  vis_resp_free(&r);
  pthread_mutex_lock(&mu);
  assert_int_equal(obs.type, WR_CONNECT_WEBSOCKET);
  assert_string_equal(seen_meta("HttpHeader:Upgrade"), "websocket");
  assert_non_null(seen_meta("HttpHeader:Sec-Websocket-Key"));
  pthread_mutex_unlock(&mu);
  client_sends(cl, "raw bytes both ways");
  while (cl->len < 19) assert_true(client_fill(cl) > 0);
  assert_memory_equal(cl->buf, "raw bytes both ways", 19);
}

static size_t probe_live, probe_open;
static void probe(void) {
  wr_conn_rec *recs = NULL;
  size_t n = 0;
  probe_live = wr_tunnel_server_count(w.ts, t1.id);
  probe_open = wr_store_conn_list(store, t1.id, 1, &recs, &n) == 0 ? n : 999;
  free(recs);
}
static void start_fc1(void) { CHECK_EQ(fconn_start(1, 0), 0); }
static void start_fc2(void) { CHECK_EQ(fconn_start(2, 1), 0); }

static int served(int i) {
  pthread_mutex_lock(&mu);
  int n = w.fc[i].served;
  pthread_mutex_unlock(&mu);
  return n;
}

/* The connector reconnects (same connector id, same connIndex) before the
 * edge noticed the old connection died: the new registration replaces the
 * old one instead of being refused. */
static void test_replace_registration(void **state) {
  (void)state;
  resp r;
  on_loop(start_fc1);
  assert_int_equal(wait_flag(&w.fc[1].registered), 1);
  assert_int_equal(wait_flag(&w.fc[0].closed), 1);
  on_loop(probe);
  assert_int_equal(probe_live, 1);
  assert_int_equal(probe_open, 1);
  int before = served(1);
  exchange("GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n", &r, 0);
  assert_int_equal(r.status, 200);
  vis_resp_free(&r);
  assert_int_equal(served(1), before + 1);
}

/* Two live connections of the tunnel share the requests. */
static void test_spread(void **state) {
  (void)state;
  resp r;
  on_loop(start_fc2);
  assert_int_equal(wait_flag(&w.fc[2].registered), 1);
  on_loop(probe);
  assert_int_equal(probe_live, 2);
  int a = served(1), b = served(2);
  for (int i = 0; i < 6; i++) {
    exchange("GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n", &r, 0);
    assert_int_equal(r.status, 200);
    vis_resp_free(&r);
  }
  assert_true(served(1) - a >= 2);
  assert_true(served(2) - b >= 2);
  assert_int_equal(served(1) - a + served(2) - b, 6);
}

static void close_hang(void) { CHECK_EQ(wr_quic_conn_close(w.hang_fc->conn, 0, "bye"), 0); }

/* A connector connection dies with a request in flight: the visitor gets
 * a 502 at once, and the tunnel's other connection serves the next one. */
static void test_connector_lost(void **state) {
  (void)state;
  client cl;
  resp r;
  client_open(&cl);
  client_sends(&cl, "GET /hang HTTP/1.1\r\nHost: app.example.test\r\n\r\n");
  pthread_mutex_lock(&mu);
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 5;
  while (!w.hang_fc && pthread_cond_timedwait(&cv, &mu, &dl) == 0) {
  }
  int got = w.hang_fc != NULL;
  pthread_mutex_unlock(&mu);
  assert_true(got);
  on_loop(close_hang);
  read_expect(&cl, &r, 502);
  r.body[r.body_len] = '\0';
  assert_non_null(strstr((char *)r.body, "connection to the connector was lost"));
  vis_resp_free(&r);
  /* Same visitor connection, next request: the other connector connection. */
  send_expect(&cl, &r, "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n", 200);
  vis_resp_free(&r);
  client_close(&cl);
  on_loop(probe);
  assert_int_equal(probe_live, 1);
  assert_int_equal(probe_open, 1);
}

int main(void) {
  return UNIT_RUN(
      vis_group_setup, group_teardown,
      UNIT_TESTS(test_get, test_head_and_port, test_wildcard_route, test_post_length,
                 test_post_chunked, test_response_chunked, test_no_connector,
                 test_connector_error, test_bad_requests),
      UNIT_FIXTURE(client_setup, client_teardown, test_expect_continue, test_no_route,
                   test_reset_mid_body, test_keepalive, test_pipelined, test_header_timeout,
                   test_early_response, test_big_bodies, test_websocket),
      /* These three change the tunnel's connector connections: last. */
      UNIT_TESTS(test_replace_registration, test_spread, test_connector_lost));
}
