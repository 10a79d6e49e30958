/* The edge's visitor front end to end (world: visitor_world.h): GET, HEAD
 * and ports, wildcard routes, request bodies (length, chunked, Expect:
 * 100-continue), chunked responses, no route, no connector, connector
 * errors, resets mid-body, keep-alive and pipelining, bad requests, the
 * header timeout, early responses, large bodies both ways, WebSocket, and
 * the tunnel's connector connections (a re-registration replacing the old
 * one, requests spread over two, one lost with a request in flight).
 * Connection and rate limits are in test_visitor_limits.c. Most cases are
 * data: a request and its expected answer (req_case), which check_exchange
 * sends and checks. */
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

/* ---- one request and its answer, as data ------------------------------------------ */

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* A flag of the response that a case checks (ANY: not checked). */
typedef enum { ANY, NO, YES } want_flag;

/* One request on a visitor connection and what must come of it: the
 * response, and what the fake connector saw of the request (obs). Fields
 * left unset are not checked. */
typedef struct req_case {
  const char *what;                /* the case, for the test log */
  const char *req;                 /* NULL: only read the next response */
  int head_req;                    /* a HEAD: the response has no body */
  int status;
  const char *body;                /* the whole body */
  const char *body_has[2];         /* strings in the body (an error page) */
  struct {
    const char *name, *val;
  } hdr[2];                        /* response headers */
  want_flag chunked, has_cl, complete, conn_close;
  int within_s;                    /* answered in less than this many seconds */
  const char *dest;                /* what the connector saw: the dest, */
  struct {
    const char *key, *val;         /* val NULL: absent */
    int n;                         /* how many (0: not counted) */
  } meta[5];                       /* metadata, */
  const char *echo;                /* and the whole request body (/echo) */
} req_case;

static const req_case hello_ok = {.req = "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
                                  .status = 200};

static void check_flag(want_flag want, int got) {
  if (want != ANY) assert_int_equal(got != 0, want == YES);
}

static void check_resp(const req_case *c, resp *r) {
  assert_int_equal(r->status, c->status);
  if (c->body) assert_true(body_is(r, c->body));
  if (c->body_has[0]) r->body[r->body_len] = '\0';
  for (size_t i = 0; i < NELEMS(c->body_has) && c->body_has[i]; i++)
    assert_non_null(strstr((char *)r->body, c->body_has[i]));
  for (size_t i = 0; i < NELEMS(c->hdr) && c->hdr[i].name; i++) {
    char v[64];
    assert_non_null(find_header(r->head, c->hdr[i].name, v, sizeof(v)));
    assert_string_equal(v, c->hdr[i].val);
  }
  check_flag(c->chunked, r->chunked);
  check_flag(c->has_cl, r->has_cl);
  check_flag(c->complete, r->complete);
  check_flag(c->conn_close, r->conn_close);
}

static void check_seen(const req_case *c) {
  if (!c->dest && !c->meta[0].key && !c->echo) return;
  pthread_mutex_lock(&mu);
  if (c->dest) assert_string_equal(obs.dest, c->dest);
  for (size_t i = 0; i < NELEMS(c->meta) && c->meta[i].key; i++) {
    if (c->meta[i].n) assert_int_equal(seen_meta_count(c->meta[i].key), c->meta[i].n);
    if (c->meta[i].val)
      assert_string_equal(seen_meta(c->meta[i].key), c->meta[i].val);
    else
      assert_null(seen_meta(c->meta[i].key));
  }
  if (c->echo) {
    assert_true(obs.body_done);
    assert_int_equal(obs.body_len, strlen(c->echo));
    assert_memory_equal(obs.body, c->echo, obs.body_len);
  }
  pthread_mutex_unlock(&mu);
}

/* Sends c->req on |cl| (on a fresh connection when |cl| is NULL), reads
 * the response and checks it, and what the connector saw, against |c|. */
static void check_exchange(client *cl, const req_case *c) {
  resp r;
  struct timespec ts0, ts1;
  clock_gettime(CLOCK_MONOTONIC, &ts0);
  if (!cl) {
    exchange(c->req, &r, c->head_req);
  } else {
    if (c->req) client_sends(cl, c->req);
    assert_int_equal(read_resp(cl, &r, c->head_req, 0), 0);
  }
  clock_gettime(CLOCK_MONOTONIC, &ts1);
  if (c->within_s) assert_true(ts1.tv_sec - ts0.tv_sec < c->within_s);
  check_resp(c, &r);
  vis_resp_free(&r);
  check_seen(c);
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_get(void **state) {
  (void)state;
  check_exchange(
      NULL,
      &(const req_case){
          .req = "GET /index.html HTTP/1.1\r\nHost: app.example.test\r\nUser-Agent: curl/7.88.1\r\n"
                 "Accept: */*\r\nX-Forwarded-For: 6.6.6.6\r\nCf-Connecting-IP: 6.6.6.6\r\n"
                 "X-Forwarded-Proto: gopher\r\n\r\n",
          .status = 200,
          .complete = YES,
          .body = "hello from origin\n",
          .hdr = {{"Content-Type", "text/plain"}, {"Content-Length", "18"}},
          .dest = "http://app.example.test/index.html",
          .meta = {{"HttpMethod", "GET"},
                   {"HttpHost", "app.example.test"},
                   {"HttpHeader:X-Forwarded-For", "127.0.0.1", 1},
                   {"HttpHeader:Cf-Connecting-Ip", "127.0.0.1", 1},
                   {"HttpHeader:X-Forwarded-Proto", "http", 1}},
      });

  pthread_mutex_lock(&mu);
  assert_int_equal(obs.type, WR_CONNECT_HTTP);

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

/* Requests each on a fresh connection: routing, request bodies, response
 * framing, and the edge's own error answers. A row: what it is; the
 * request; the answer; what the connector saw. */
static const req_case fresh_cases[] = {
    {.what = "host with a port and upper case routes; HEAD gets the head only",
     .req = "HEAD /hello HTTP/1.1\r\nHost: APP.example.test:8080\r\n\r\n", .head_req = 1,
     .status = 200, .hdr = {{"Content-Length", "18"}},
     .dest = "http://app.example.test/hello",
     .meta = {{"HttpMethod", "HEAD"}, {"HttpHost", "app.example.test:8080"}}},
    {.what = "wildcard route",
     .req = "GET /hello?x=1 HTTP/1.1\r\nHost: deep.sub.w.example.test\r\n\r\n",
     .status = 200, .body = "hello from origin\n",
     .dest = "http://deep.sub.w.example.test/hello?x=1"},
    {.what = "POST with a repeated Content-Length: forwarded once, normalised",
     .req = "POST /echo HTTP/1.1\r\nHost: app.example.test\r\nContent-Type: text/plain\r\n"
            "Content-Length: 10, 10\r\n\r\nhello body",
     .status = 200, .body = "hello body",
     .meta = {{"HttpMethod", "POST"},
              {"HttpHeader:Content-Length", "10", 1},
              {"HttpHeader:Transfer-Encoding", NULL}},
     .echo = "hello body"},
    {.what = "POST chunked, with a chunk extension and a trailer",
     .req = "POST /echo HTTP/1.1\r\nHost: app.example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
     .status = 200, .body = "hello world",
     .meta = {{"HttpHeader:Transfer-Encoding", "chunked"}, {"HttpHeader:Content-Length", NULL}},
     .echo = "hello world"},
    {.what = "response without a length: chunked",
     .req = "GET /nocl HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
     .status = 200, .chunked = YES, .has_cl = NO, .complete = YES, .body = "part one, part two"},
    {.what = "response without a length to HTTP/1.0: close-delimited",
     .req = "GET /nocl HTTP/1.0\r\nHost: app.example.test\r\n\r\n",
     .status = 200, .chunked = NO, .complete = YES, .body = "part one, part two"},
    {.what = "no connector: a 502 at once",
     .req = "GET / HTTP/1.1\r\nHost: dead.example.test\r\n\r\n",
     .status = 502, .body_has = {"No connector is connected for tunnel", t2.id}, .within_s = 2},
    {.what = "connector error",
     .req = "GET /err HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
     .status = 502, .body_has = {"origin exploded"}},
};

static void test_fresh_requests(void **state) {
  (void)state;
  for (size_t i = 0; i < NELEMS(fresh_cases); i++) {
    print_message("case: %s\n", fresh_cases[i].what);
    check_exchange(NULL, &fresh_cases[i]);
  }
}

static void test_expect_continue(void **state) {
  client *cl = *state;
  resp r;
  client_sends(cl, "PUT /echo HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 4\r\n"
                    "Expect: 100-continue\r\n\r\n");
  assert_int_equal(read_resp(cl, &r, 0, 1), 0);
  assert_int_equal(r.status, 100);
  vis_resp_free(&r);
  check_exchange(cl, &(const req_case){.req = "data",
                                       .status = 200,
                                       .body = "data",
                                       .meta = {{"HttpHeader:Expect", NULL}}});
}

static void test_no_route(void **state) {
  client *cl = *state;
  check_exchange(cl, &(const req_case){.req = "GET / HTTP/1.1\r\nHost: nope.example.test\r\n\r\n",
                                       .status = 404,
                                       .body_has = {"no route for host nope.example.test"}});
  /* The connection stays usable. */
  check_exchange(cl, &hello_ok);
}

static void test_reset_mid_body(void **state) {
  client *cl = *state;
  check_exchange(cl, &(const req_case){
                         .req = "GET /reset HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
                         .status = 200, .chunked = YES,
                         .complete = NO, /* no terminating chunk */
                         .body = "partial"});
  assert_true(cl->eof);
  client_close(cl);

  /* Content-Length body that ends short: the connection closes early. */
  resp r;
  client_open(cl);
  send_expect(cl, &r, "GET /short HTTP/1.1\r\nHost: app.example.test\r\n\r\n", 200);
  assert_false(r.complete);
  assert_int_equal(r.body_len, 10);
  vis_resp_free(&r);
}

static void test_keepalive(void **state) {
  client *cl = *state;
  static const req_case kept[] = {
      {.req = "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
       .status = 200, .complete = YES, .conn_close = NO, .body = "hello from origin\n"},
      {.req = "GET /nocl HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
       .status = 200, .complete = YES, .conn_close = NO, .body = "part one, part two"},
      {.req = "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
       .status = 200, .complete = YES, .conn_close = NO, .body = "hello from origin\n"},
      /* Connection: close is honoured. */
      {.req = "GET /hello HTTP/1.1\r\nHost: app.example.test\r\nConnection: close\r\n\r\n",
       .status = 200, .conn_close = YES},
  };
  for (size_t i = 0; i < NELEMS(kept); i++) check_exchange(cl, &kept[i]);
  assert_true(server_closed(cl));
}

static void test_pipelined(void **state) {
  client *cl = *state;
  client_sends(cl,
               "GET /nocl HTTP/1.1\r\nHost: app.example.test\r\n\r\n"
               "POST /echo HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 3\r\n\r\nabc"
               "GET /hello HTTP/1.1\r\nHost: nope.example.test\r\n\r\n"
               "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n");
  static const req_case answers[] = {
      {.status = 200, .body = "part one, part two"},
      {.status = 200, .body = "abc"},
      {.status = 404},
      {.status = 200, .body = "hello from origin\n"},
  };
  for (size_t i = 0; i < NELEMS(answers); i++) check_exchange(cl, &answers[i]);
}

static void test_bad_requests(void **state) {
  (void)state;
  client cl;
  client_open(&cl);
  check_exchange(&cl, &(const req_case){.req = "POST /echo HTTP/1.1\r\nHost: app.example.test\r\n"
                                               "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
                                               "\r\n0\r\n\r\n",
                                        .status = 400,
                                        .conn_close = YES});
  assert_true(server_closed(&cl));
  client_close(&cl);

  /* 40 KiB of header. */
  size_t big = 40 * 1024;
  char *req = malloc(big + 128);
  int n = snprintf(req, 128, "GET / HTTP/1.1\r\nHost: app.example.test\r\nX-Big: ");
  memset(req + n, 'a', big);
  memcpy(req + n + big, "\r\n\r\n", 5);
  client_open(&cl);
  check_exchange(&cl, &(const req_case){.req = req, .status = 431});
  client_close(&cl);
  free(req);

  /* No Host on 1.1, a bad Host, a CONNECT. */
  static const req_case bad[] = {
      {.req = "GET / HTTP/1.1\r\n\r\n", .status = 400},
      {.req = "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", .status = 400},
      {.req = "GET / HTTP/1.1\r\nHost: app.example.test:80x\r\n\r\n", .status = 400},
      {.req = "CONNECT app.example.test:443 HTTP/1.1\r\nHost: app.example.test:443\r\n\r\n",
       .status = 400},
  };
  for (size_t i = 0; i < NELEMS(bad); i++) check_exchange(NULL, &bad[i]);
}

static void test_header_timeout(void **state) {
  client *cl = *state;
  /* A head that never ends. */
  check_exchange(cl, &(const req_case){.req = "GET / HTTP/1.1\r\nHost: app.exa", .status = 408});
  assert_true(server_closed(cl));
}

static void test_early_response(void **state) {
  client *cl = *state;
  char head[256];
  snprintf(head, sizeof(head),
           "POST /early HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: %u\r\n\r\n",
           EARLY_BODY);
  client_sends(cl, head);
  uint8_t *body = calloc(1, EARLY_BODY);
  client_send(cl, body, EARLY_BODY);
  free(body);
  check_exchange(cl, &(const req_case){.status = 200, .body = "early"});
  /* The rest of the body was dropped; the connection goes on. */
  check_exchange(cl, &(const req_case){
                         .req = "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
                         .status = 200, .body = "hello from origin\n"});
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
  on_loop(start_fc1);
  assert_int_equal(wait_flag(&w.fc[1].registered), 1);
  assert_int_equal(wait_flag(&w.fc[0].closed), 1);
  on_loop(probe);
  assert_int_equal(probe_live, 1);
  assert_int_equal(probe_open, 1);
  int before = served(1);
  check_exchange(NULL, &hello_ok);
  assert_int_equal(served(1), before + 1);
}

/* Two live connections of the tunnel share the requests. */
static void test_spread(void **state) {
  (void)state;
  on_loop(start_fc2);
  assert_int_equal(wait_flag(&w.fc[2].registered), 1);
  on_loop(probe);
  assert_int_equal(probe_live, 2);
  int a = served(1), b = served(2);
  for (int i = 0; i < 6; i++) check_exchange(NULL, &hello_ok);
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
  check_exchange(&cl, &(const req_case){.status = 502,
                                        .body_has = {"connection to the connector was lost"}});
  /* Same visitor connection, next request: the other connector connection. */
  check_exchange(&cl, &hello_ok);
  client_close(&cl);
  on_loop(probe);
  assert_int_equal(probe_live, 1);
  assert_int_equal(probe_open, 1);
}

int main(void) {
  return UNIT_RUN(
      vis_group_setup, group_teardown,
      UNIT_TESTS(test_get, test_fresh_requests, test_bad_requests),
      UNIT_FIXTURE(client_setup, client_teardown, test_expect_continue, test_no_route,
                   test_reset_mid_body, test_keepalive, test_pipelined, test_header_timeout,
                   test_early_response, test_big_bodies, test_websocket),
      /* These three change the tunnel's connector connections: last. */
      UNIT_TESTS(test_replace_registration, test_spread, test_connector_lost));
}
