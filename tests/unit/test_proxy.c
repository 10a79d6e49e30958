/* The connector's data-stream proxy (connector/proxy.h) over real QUIC on
 * 127.0.0.1, HTTP requests (fixture: proxy_fixture.h): GET with headers and
 * body, Content-Length and chunked request bodies, chunked and EOF-delimited
 * responses, http_status, hello_world, dial errors, an origin dying
 * mid-body, bad preambles, ingress by host and path, httpHostHeader,
 * keep-alive reuse, unix and https origins (caPool, noTLSVerify, untrusted),
 * and the captured cloudflared request vectors (GET, POST). WebSocket and
 * streaming are in test_proxy_stream.c.
 *
 * Most cases are exchanges: rows of what the edge sends (a request without
 * a body), what the answer must be and what the origin must have seen; one
 * procedure (exchange_all) sends, waits and checks them. */
#include <stdlib.h>
#include <string.h>

#include "proxy_fixture.h"

UNIT_QPAIR_RUN_UNTIL(ctx)

/* ---- exchanges ---------------------------------------------------------------- */

/* What a ConnectResponse must be; a field left 0/NULL is not checked. */
typedef struct expect {
  int fin;                 /* the stream ended with FIN, not a reset */
  int reset;               /* the stream is reset (nothing else is checked) */
  const char *error;       /* the error is this ("": none) */
  const char *error_has[2]; /* the error contains these */
  int no_meta;             /* no metadata at all */
  const char *status;      /* the first entry is HttpStatus with this value */
  size_t nmeta;            /* (non-zero) this many entries */
  const char *meta[4][2];  /* "key", "value" pairs; a NULL value: the key is absent */
  const char *body;        /* the body is this ("": empty) */
  size_t body_len;         /* (non-zero) the body is this long */
} expect;

/* A request without a body (edge_send, FIN with it), what its answer must
 * be and, if saw[0] is set, the lines origins[origin]'s last request head
 * must contain (and lacks[], those it must not). */
typedef struct exchange {
  int type; /* WR_CONNECT_* */
  const char *dest, *method, *host;
  const char *const *kv; /* request headers, as edge_send's */
  expect want;
  int origin;
  const char *saw[8], *lacks[5]; /* NULL-ended: the last slot stays NULL */
} exchange;

static void assert_expect(const estream *e, const expect *w) {
  resp r;
  if (w->fin) {
    assert_true(e->got_fin);
    assert_false(e->got_reset);
  }
  decode_resp(e, &r);
  if (w->error) assert_string_equal(r.r.error, w->error);
  for (size_t i = 0; i < 2 && w->error_has[i]; i++)
    assert_non_null(strstr(r.r.error, w->error_has[i]));
  if (w->no_meta) {
    assert_false(r.r.has_meta);
    assert_int_equal(r.r.nmeta, 0);
  }
  if (w->status) {
    assert_string_equal(r.r.meta[0].key, "HttpStatus");
    assert_string_equal(r.r.meta[0].val, w->status);
  }
  if (w->nmeta) assert_int_equal(r.r.nmeta, w->nmeta);
  for (size_t i = 0; i < 4 && w->meta[i][0]; i++) {
    if (w->meta[i][1])
      assert_string_equal(meta_get(&r, w->meta[i][0]), w->meta[i][1]);
    else
      assert_null(meta_get(&r, w->meta[i][0]));
  }
  if (w->body) {
    assert_int_equal(r.body_len, strlen(w->body));
    assert_memory_equal(r.body, w->body, r.body_len);
  }
  if (w->body_len) assert_int_equal(r.body_len, w->body_len);
  resp_free(&r);
}

static estream *exchange_send(ctx *c, const exchange *x) {
  return edge_send(c, x->type, x->dest, x->method, x->host, x->kv, NULL, 0, 1);
}

static void exchange_wait(ctx *c, estream *e, const exchange *x) {
  if (x->want.reset)
    wait_reset(c, e);
  else
    wait_closed(c, e);
}

static void exchange_check(ctx *c, const estream *e, const exchange *x) {
  if (!x->want.reset) assert_expect(e, &x->want);
  /* assert_head reads to a NULL: a row filling every slot would run past. */
  assert_null(x->saw[sizeof(x->saw) / sizeof(x->saw[0]) - 1]);
  assert_null(x->lacks[sizeof(x->lacks) / sizeof(x->lacks[0]) - 1]);
  if (x->saw[0]) assert_head(&c->origins[x->origin], 1, x->saw);
  if (x->lacks[0]) assert_head(&c->origins[x->origin], 0, x->lacks);
}

/* Sends all of |xs| at once, waits until each closed (or is reset), then
 * checks each answer and what the origins saw; frees the streams. */
static void exchange_all(ctx *c, const exchange *xs, size_t n) {
  estream *e[8];
  assert_true(n <= 8);
  for (size_t i = 0; i < n; i++) e[i] = exchange_send(c, &xs[i]);
  for (size_t i = 0; i < n; i++) exchange_wait(c, e[i], &xs[i]);
  for (size_t i = 0; i < n; i++) {
    exchange_check(c, e[i], &xs[i]);
    es_free(e[i]);
  }
}

#define EXCHANGE_ALL(c, xs) exchange_all((c), (xs), sizeof(xs) / sizeof((xs)[0]))

/* A GET of the app origin's "/" that works. */
static const exchange app_get_ok = {WR_CONNECT_HTTP, "/", "GET", "app.example.test",
                                    .want = {.error = "", .status = "200"}};

/* ---- tests -------------------------------------------------------------------- */

static void test_get(void **state) {
  ctx *c = *state;
  resp r;
  static const char *const kv[] = {"User-Agent", "test/1", "Accept", "*/*", "X-Two", "1",
                                   "X-Two", "2", "Cf-Trace-Id", "abc",
                                   "Cf-Cloudflared-Proxy-Connection-Upgrade", "x", NULL};
  static const exchange x = {
      WR_CONNECT_HTTP, "https://app.example.test/some/path?q=1&r=%20", "GET", "app.example.test",
      kv,
      .want = {.fin = 1, .error = "", .status = "200", .body = "hello from app",
               .meta = {{"HttpHeader:Content-Type", "text/plain"},
                        {"HttpHeader:X-Origin", "app"},
                        {"HttpHeader:Content-Length", "14"}}},
      .origin = O_APP,
      .saw = {"GET /some/path?q=1&r=%20 HTTP/1.1\r\n", "Host: app.example.test\r\n",
              "User-Agent: test/1\r\n", "X-Two: 1\r\n", "X-Two: 2\r\n",
              "Connection: keep-alive\r\n",
              "Cf-Warp-Tag-Id: 5e2c1f0a-3b4d-4c6e-8f70-123456789abc\r\n"},
      .lacks = {"Cf-Trace-Id", "Cf-Cloudflared-Proxy-Connection-Upgrade", "Content-Length",
                "Transfer-Encoding"}};
  estream *e = exchange_send(c, &x);
  exchange_wait(c, e, &x);
  exchange_check(c, e, &x);
  decode_resp(e, &r);
  assert_true(r.r.has_meta);
  assert_true(r.r.nmeta >= 4);
  assert_int_equal(meta_count(&r, "HttpHeader:X-Multi"), 2);
  resp_free(&r);

  const wr_proxy_stats *st = wr_proxy_get_stats(c->proxy);
  assert_int_equal(st->total_requests, 1);
  assert_int_equal(st->concurrent_requests, 0);
  assert_int_equal(st->responses_by_code[2], 1);
  assert_int_equal(st->request_errors, 0);
  es_free(e);
}

static void test_post_content_length(void **state) {
  ctx *c = *state;
  uint8_t body[3000];
  static const char *const kv[] = {"Content-Length", "3000", "Content-Type",
                                   "application/octet-stream", NULL};
  for (size_t i = 0; i < sizeof(body); i++) body[i] = pattern(i);
  /* Part of the body with the request, the rest (plus bytes past the
   * length, which must be ignored) in a second write. */
  estream *e = edge_send(c, WR_CONNECT_HTTP, "/upload", "POST", "app.example.test", kv, body,
                         1000, 0);
  edge_write(e, body + 1000, 2000, 0);
  edge_write(e, "EXTRA", 5, 1);
  wait_closed(c, e);
  assert_stream_resp(e, "200", "3000 1");
  torigin *o = &c->origins[O_APP];
  ASSERT_HEAD_HAS(o, "POST /upload HTTP/1.1\r\n", "Content-Length: 3000\r\n",
                  "Content-Type: application/octet-stream\r\n");
  assert_false(head_has(o, "Transfer-Encoding"));
  assert_int_equal(o->last_body.len, 3000);
  assert_memory_equal(o->last_body.data, body, 3000);
  es_free(e);
}

static void test_chunked_request(void **state) {
  ctx *c = *state;
  uint8_t body[5000];
  static const char *const kv[] = {"Transfer-Encoding", "chunked", NULL};
  for (size_t i = 0; i < sizeof(body); i++) body[i] = pattern(i);
  estream *e =
      edge_send(c, WR_CONNECT_HTTP, "/chunks", "PUT", "app.example.test", kv, body, 100, 0);
  edge_write(e, body + 100, 4900, 1);
  wait_closed(c, e);
  assert_stream_resp(e, "200", "5000 1");
  torigin *o = &c->origins[O_APP];
  ASSERT_HEAD_HAS(o, "PUT /chunks HTTP/1.1\r\n", "Transfer-Encoding: chunked\r\n");
  assert_false(head_has(o, "Content-Length"));
  /* The wire carries chunk framing ending in the last chunk. */
  assert_true(o->raw.len > 5000 + o->last_head.len);
  assert_memory_equal(o->raw.data + o->raw.len - 5, "0\r\n\r\n", 5);
  assert_int_equal(o->last_body.len, 5000);
  assert_memory_equal(o->last_body.data, body, 5000);
  es_free(e);
}

static void test_chunked_response(void **state) {
  static const exchange x = {
      WR_CONNECT_HTTP, "/", "GET", "app.example.test",
      .want = {.fin = 1, .status = "200", .body = "abcdefgh",
               .meta = {{"HttpHeader:Transfer-Encoding", NULL},
                        {"HttpHeader:Content-Length", NULL},
                        {"HttpHeader:Content-Type", "text/plain"}}}};
  exchange_all(*state, &x, 1);
}

static void test_eof_delimited_response(void **state) {
  static const exchange x = {
      WR_CONNECT_HTTP, "/", "GET", "app.example.test",
      .want = {.fin = 1, .status = "200", .body = "until the end",
               .meta = {{"HttpHeader:Connection", "close"}}}};
  exchange_all(*state, &x, 1);
}

static void test_http_status(void **state) {
  ctx *c = *state;
  static const exchange x = {
      WR_CONNECT_HTTP, "https://status.test/x", "GET", "status.test",
      .want = {.fin = 1, .error = "", .nmeta = 1, .status = "418", .body = ""}};
  /* Host with a port, and an unknown host: the catch-all 404. */
  static const exchange more[] = {
      {WR_CONNECT_HTTP, "https://status.test:8443/x", "GET", "status.test:8443",
       .want = {.status = "418"}},
      {WR_CONNECT_HTTP, "https://nobody.test/", "GET", "nobody.test", .want = {.status = "404"}}};
  exchange_all(c, &x, 1);
  EXCHANGE_ALL(c, more);
  const wr_proxy_stats *st = wr_proxy_get_stats(c->proxy);
  assert_int_equal(st->responses_by_code[4], 3);
}

static void test_hello_world(void **state) {
  ctx *c = *state;
  resp r;
  static const char *const kv[] = {"X-Evil", "<script>", NULL};
  estream *e = edge_send(c, WR_CONNECT_HTTP, "https://hello.test/greet?x=1", "GET", "hello.test",
                         kv, NULL, 0, 1);
  wait_closed(c, e);
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].val, "200");
  assert_string_equal(meta_get(&r, "HttpHeader:Content-Type"), "text/html; charset=utf-8");
  char *page = strndup((const char *)r.body, r.body_len);
  char clen[32];
  snprintf(clen, sizeof(clen), "%zu", r.body_len);
  assert_string_equal(meta_get(&r, "HttpHeader:Content-Length"), clen);
  unit_assert_contains(page,
                       (const char *const[]){"Congrats", "hello.test", "/greet?x=1", "X-Evil",
                                             "&lt;script&gt;", "9.9.9-test", NULL},
                       (const char *const[]){"<script>", NULL});
  free(page);
  resp_free(&r);
  es_free(e);
}

static void test_dial_error(void **state) {
  ctx *c = *state;
  static const exchange x = {
      WR_CONNECT_HTTP, "https://dead.test/", "GET", "dead.test",
      .want = {.fin = 1, .no_meta = 1, .body = "",
               .error_has = {"Unable to reach the origin service. The service may be down "
                             "or it may not be responding to traffic from warren: ",
                             "connection refused"}}};
  /* A stream origin's dial error is Go's, without the prefix (cloudflared
   * returns EstablishConnection's error as it is); a tcp stream without
   * warp-routing is refused. */
  static const exchange more[] = {
      {WR_CONNECT_HTTP, "https://ssh.test/", "GET", "ssh.test",
       .want = {.error = "dial tcp 127.0.0.1:1: connect: connection refused"}},
      {WR_CONNECT_TCP, "127.0.0.1:9", NULL, NULL, .want = {.error_has = {"warp-routing"}}}};
  exchange_all(c, &x, 1);
  assert_int_equal(wr_proxy_get_stats(c->proxy)->request_errors, 1);
  EXCHANGE_ALL(c, more);
}

static void test_origin_dies_mid_body(void **state) {
  ctx *c = *state;
  estream *e = edge_send(c, WR_CONNECT_HTTP, "/", "GET", "app.example.test", NULL, NULL, 0, 1);
  c->watch = e;
  run_until(c, watch_reset, 20000);
  assert_true(e->got_reset);
  assert_false(e->got_fin);
  wait_closed(c, e);
  assert_int_equal(wr_proxy_get_stats(c->proxy)->request_errors, 1);
  es_free(e);
}

static void test_bad_preamble(void **state) {
  ctx *c = *state;
  estream *e = calloc(1, sizeof(*e));
  static const uint8_t junk[] = "GET / HTTP/1.1\r\n\r\n";
  e->c = c;
  wr_buf_init(&e->resp, (size_t)1 << 30, NULL);
  assert_int_equal(wr_quic_stream_open(c->sconn, e, &e->sid), WR_OK);
  edge_write(e, junk, sizeof(junk) - 1, 0);
  c->watch = e;
  run_until(c, watch_reset, 20000);
  assert_int_equal(e->resp.len, 0);
  wait_closed(c, e);
  es_free(e);

  /* A valid preamble but garbage where the ConnectRequest should be. */
  e = edge_open(c);
  uint8_t bad[40];
  memcpy(bad, wr_preamble_data_sig, 6);
  memcpy(bad + 6, "01", 2);
  memset(bad + 8, 0xff, sizeof(bad) - 8);
  edge_write(e, bad, sizeof(bad), 1);
  c->watch = e;
  run_until(c, watch_reset, 20000);
  assert_int_equal(e->resp.len, 0);
  wait_closed(c, e);
  es_free(e);
}

static void test_split_preamble(void **state) {
  ctx *c = *state;
  wr_buf b;
  uint8_t pre[8];
  wr_meta meta[2] = {{"HttpMethod", 10, "GET", 3}, {"HttpHost", 8, "status.test", 11}};
  wr_connect_request req = {"/", 1, WR_CONNECT_HTTP, 1, meta, 2};
  wr_buf_init(&b, (size_t)1 << 30, NULL);
  wr_preamble_write(WR_PREAMBLE_DATA, pre, 8);
  wr_buf_append(&b, pre, 8);
  assert_int_equal(wr_connect_request_encode(&req, NULL, &b), WR_OK);
  estream *e = edge_open(c);
  /* One byte per loop turn: every split of the read-exactly loop. */
  for (size_t i = 0; i < b.len; i++) {
    edge_write(e, b.data + i, 1, i + 1 == b.len);
    uv_run(&c->q.loop, UV_RUN_NOWAIT);
  }
  wait_closed(c, e);
  assert_stream_status(e, "418");
  wr_buf_free(&b);
  es_free(e);
}

static void test_ingress_host_and_path(void **state) {
  ctx *c = *state;
  static const exchange routed[] = {
      {WR_CONNECT_HTTP, "https://path.test/api/v1", "GET", "path.test",
       .want = {.meta = {{"HttpHeader:X-Origin", "api"}}}, .origin = O_SECOND,
       .saw = {"GET /api/v1 HTTP/1.1\r\n"}},
      {WR_CONNECT_HTTP, "https://path.test/other", "GET", "path.test", .want = {.status = "404"}},
      {WR_CONNECT_HTTP, "https://deep.sub.wild.test/", "GET", "deep.sub.wild.test",
       .want = {.meta = {{"HttpHeader:X-Origin", "alt2"}}}},
      {WR_CONNECT_HTTP, "https://hh.test/x", "GET", "hh.test",
       .want = {.meta = {{"HttpHeader:X-Origin", "alt"}}}, .origin = O_ALT,
       .saw = {"Host: internal.example\r\n", "X-Forwarded-Host: hh.test\r\n"}}};
  /* Matching uses the decoded path; the request line keeps the escapes and
   * escapes what may not appear raw. A bad %-escape fails url.Parse: the
   * stream is reset. So does %00 (lib/encoding's policy): it would cut the
   * matched path short. One at a time. */
  static const exchange escaped[] = {
      {WR_CONNECT_HTTP, "https://path.test/%61pi/a b?q=1 2#frag", "GET", "path.test",
       .want = {.meta = {{"HttpHeader:X-Origin", "api"}}}, .origin = O_SECOND,
       .saw = {"GET /%61pi/a%20b?q=1%202 HTTP/1.1\r\n"}},
      {WR_CONNECT_HTTP, "https://path.test/%zz", "GET", "path.test", .want = {.reset = 1}},
      {WR_CONNECT_HTTP, "https://path.test/api%00/x", "GET", "path.test", .want = {.reset = 1}}};
  EXCHANGE_ALL(c, routed);
  for (size_t i = 0; i < sizeof(escaped) / sizeof(escaped[0]); i++)
    exchange_all(c, &escaped[i], 1);
}

static void test_keepalive_reuse(void **state) {
  ctx *c = *state;
  static const exchange again = {WR_CONNECT_HTTP, "/again", "GET", "app.example.test",
                                 .want = {.status = "200", .body_len = 14}};
  /* A HEAD answer (Content-Length, no body) keeps the connection too. */
  static const exchange head = {
      WR_CONNECT_HTTP, "/head", "HEAD", "app.example.test",
      .want = {.meta = {{"HttpHeader:Content-Length", "14"}}, .body = ""}};
  for (int i = 0; i < 3; i++) exchange_all(c, &again, 1);
  assert_int_equal(c->origins[O_APP].requests, 3);
  assert_int_equal(c->origins[O_APP].accepts, 1);
  exchange_all(c, &head, 1);
  assert_int_equal(c->origins[O_APP].accepts, 1);
}

/* The origin closes an idle pooled connection: the next request gets a
 * fresh one (retried) instead of an error. */
static void test_keepalive_origin_closed(void **state) {
  ctx *c = *state;
  exchange_all(c, &app_get_ok, 1);
  assert_non_null(c->origins[O_APP].conns);
  wr_conn_close(c->origins[O_APP].conns->conn);
  for (int i = 0; i < 5; i++) uv_run(&c->q.loop, UV_RUN_NOWAIT);
  exchange_all(c, &app_get_ok, 1);
  assert_int_equal(c->origins[O_APP].accepts, 2);
}

static int second_closed(ctx *c) { return c->origins[O_SECOND].closes == 1; }

/* keepAliveTimeout closes an idle pooled connection. */
static void test_keepalive_timeout(void **state) {
  ctx *c = *state;
  static const exchange x = {WR_CONNECT_HTTP, "/", "GET", "ka.test",
                             .want = {.meta = {{"HttpHeader:X-Origin", "api"}}}};
  exchange_all(c, &x, 1);
  assert_int_equal(c->origins[O_SECOND].closes, 0);
  uint64_t t0 = uv_now(&c->q.loop);
  run_until(c, second_closed, 5000);
  uv_update_time(&c->q.loop);
  assert_true(uv_now(&c->q.loop) - t0 >= 200);
}

/* A pooled connection the origin drops when the next request arrives:
 * the request (GET, no body) is retried on a fresh connection. */
static void test_keepalive_retry(void **state) {
  ctx *c = *state;
  for (int i = 0; i < 2; i++) exchange_all(c, &app_get_ok, 1);
  assert_int_equal(c->origins[O_APP].accepts, 2);
  assert_int_equal(wr_proxy_get_stats(c->proxy)->request_errors, 0);
}

static void test_unix_origin(void **state) {
  static const exchange x = {WR_CONNECT_HTTP, "https://unix.test/sock", "GET", "unix.test",
                             .want = {.status = "200", .body = "hello from unix",
                                      .meta = {{"HttpHeader:X-Origin", "unix"}}},
                             .origin = O_UNIX, .saw = {"Host: unix.test\r\n"}};
  exchange_all(*state, &x, 1);
}

static void test_https_origins(void **state) {
  ctx *c = *state;
  static const exchange first[] = {
      {WR_CONNECT_HTTP, "https://tls.test/", "GET", "tls.test",
       .want = {.error = "", .status = "200", .body_len = 14,
                .meta = {{"HttpHeader:X-Origin", "tls"}}}},
      {WR_CONNECT_HTTP, "https://tlsnv.test/", "GET", "tlsnv.test",
       .want = {.error = "", .status = "200"}},
      {WR_CONNECT_HTTP, "https://untrusted.test/", "GET", "untrusted.test",
       .want = {.no_meta = 1, .error_has = {"Unable to reach the origin service"}}}};
  /* An IP origin verified under originServerName. */
  static const exchange sni = {WR_CONNECT_HTTP, "https://sni.test/", "GET", "sni.test",
                               .want = {.error = "", .status = "200"}};
  EXCHANGE_ALL(c, first);
  exchange_all(c, &sni, 1);
  /* Second request on tls.test reuses the TLS connection. */
  int before = c->origins[O_TLS].accepts;
  exchange_all(c, &first[0], 1);
  assert_int_equal(c->origins[O_TLS].accepts, before);
}

/* The bytes the real edge sent to cloudflared, fed to the proxy; the
 * ConnectResponse decodes like cloudflared's. */
static void test_vector_http_get(void **state) {
  ctx *c = *state;
  resp r, want;
  size_t wn;
  uint8_t *ref = unit_read_vector("quic/http-get.from-connector.bin", &wn);
  estream *e = edge_vector(c, "quic/http-get.from-edge.bin");
  decode_resp(e, &r);

  decode_bytes(ref, wn, &want);
  /* Same shape: HttpStatus first, then HttpHeader:* only, no error. */
  assert_string_equal(want.r.meta[0].key, "HttpStatus");
  assert_string_equal(r.r.meta[0].key, "HttpStatus");
  assert_string_equal(r.r.meta[0].val, want.r.meta[0].val);
  assert_string_equal(r.r.error, want.r.error);
  assert_int_equal(r.r.has_meta, want.r.has_meta);
  for (size_t i = 1; i < want.r.nmeta; i++)
    assert_int_equal(strncmp(want.r.meta[i].key, "HttpHeader:", 11), 0);
  for (size_t i = 1; i < r.r.nmeta; i++)
    assert_int_equal(strncmp(r.r.meta[i].key, "HttpHeader:", 11), 0);
  assert_non_null(meta_get(&want, "HttpHeader:Content-Length"));
  assert_non_null(meta_get(&r, "HttpHeader:Content-Length"));
  resp_free(&r);
  resp_free(&want);

  torigin *o = &c->origins[O_APP];
  ASSERT_HEAD_HAS(o, "GET /index.html HTTP/1.1\r\n", "Host: app.example.test\r\n",
                  "User-Agent: curl/7.88.1\r\n", "Accept: */*\r\n");
  free(ref);
  es_free(e);
}

/* cloudflared's edge POST (Content-Length given twice, body after the
 * ConnectRequest): the origin gets the body once, framed by its length. */
static void test_vector_http_post(void **state) {
  ctx *c = *state;
  estream *e = edge_vector(c, "quic/http-post.from-edge.bin");
  assert_stream_status(e, "200");
  torigin *o = &c->origins[O_APP];
  ASSERT_HEAD_HAS(o, "POST /x HTTP/1.1\r\n", "Content-Length: 10\r\n");
  wr_buf h = o->last_head;
  char *hs = strndup((const char *)h.data, h.len);
  assert_null(strstr(strstr(hs, "Content-Length") + 1, "Content-Length"));
  free(hs);
  assert_int_equal(o->last_body.len, 10);
  assert_memory_equal(o->last_body.data, "hello body", 10);
  es_free(e);
}

/* Each run gets a fresh ctx (proxy_fixture.h) whose app origin answers in
 * the run's mode. */
int main(void) {
  return UNIT_RUN(
      proxy_group_setup, proxy_group_teardown,
      UNIT_FIXTURE(ctx_setup_info, ctx_teardown, test_get, test_http_status, test_hello_world,
                   test_dial_error, test_bad_preamble, test_split_preamble,
                   test_ingress_host_and_path, test_keepalive_reuse,
                   test_keepalive_origin_closed, test_keepalive_timeout, test_unix_origin,
                   test_https_origins, test_vector_http_get, test_vector_http_post),
      UNIT_FIXTURE(ctx_setup_sink, ctx_teardown, test_post_content_length, test_chunked_request),
      UNIT_FIXTURE(ctx_setup_chunked, ctx_teardown, test_chunked_response),
      UNIT_FIXTURE(ctx_setup_eof_body, ctx_teardown, test_eof_delimited_response),
      UNIT_FIXTURE(ctx_setup_die, ctx_teardown, test_origin_dies_mid_body),
      UNIT_FIXTURE(ctx_setup_once, ctx_teardown, test_keepalive_retry));
}
