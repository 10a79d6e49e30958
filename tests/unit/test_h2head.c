/* HTTP/2 <-> HTTP/1.1 heads (src/proto/h2head.c): requests rebuilt from
 * header blocks (pseudo-fields, Host, cookies, body framing, limits) parse
 * back with the HTTP/1.1 parser; responses lose hop-by-hop fields and get
 * lower-case names. */
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/h2head.h"
#include "proto/http1.h"
#include "unit.h"

static void field(wr_h2req *r, const char *n, const char *v) {
  wr_h2req_field(r, (const uint8_t *)n, strlen(n), (const uint8_t *)v, strlen(v));
}

static void std_fields(wr_h2req *r, const char *method, const char *path) {
  field(r, ":method", method);
  field(r, ":scheme", "https");
  field(r, ":authority", "app.example.test:8443");
  field(r, ":path", path);
}

static const char *rebuild(wr_h2req *r, int eos, wr_buf *out, int *rv) {
  wr_buf_init(out, 1u << 20, NULL);
  *rv = wr_h2req_head(r, eos, out);
  return wr_buf_cstr(out);
}

/* Rebuilding |r| (|eos|: nothing follows its head) fails with |want|; frees
 * |r|. */
static void expect_refused(wr_h2req *r, int eos, int want) {
  wr_buf out;
  int rv;
  rebuild(r, eos, &out, &rv);
  assert_int_equal(rv, want);
  wr_buf_free(&out);
  wr_h2req_free(r);
}

/* One request rebuilt and parsed back: the HTTP/2 request, its HTTP/1.1
 * text and that text's parse. */
typedef struct roundtrip {
  wr_h2req r;
  wr_buf out;
  int rv;
  wr_http_header hd[16];
  wr_http1_head h;
  size_t used;
} roundtrip;

/* Starts |t|'s request (default head limit) with the four pseudo-fields,
 * then the fields of |kv| (name, value, ..., NULL; NULL: none) in order. */
static void rt_start(roundtrip *t, const char *method, const char *path, const char *const *kv) {
  wr_h2req_init(&t->r, WR_HTTP1_DEFAULT_MAX_HEAD);
  std_fields(&t->r, method, path);
  for (size_t i = 0; kv && kv[i]; i += 2) field(&t->r, kv[i], kv[i + 1]);
}

/* Rebuilds |t|'s request (|eos|: nothing follows its head) and parses the
 * text back into t->h; both must give WR_OK. Returns the text. */
static const char *rt_parse(roundtrip *t, int eos) {
  const char *s = rebuild(&t->r, eos, &t->out, &t->rv);
  assert_int_equal(t->rv, WR_OK);
  assert_int_equal(
      wr_http1_parse_request(t->out.data, t->out.len, NULL, t->hd, 16, &t->h, &t->used), WR_OK);
  return s;
}

static void rt_free(roundtrip *t) {
  wr_buf_free(&t->out);
  wr_h2req_free(&t->r);
}

static void test_get_rebuilt(void **state) {
  (void)state;
  roundtrip t;
  rt_start(&t, "GET", "/a?b=c",
           (const char *const[]){"accept", "*/*", "host", "ignored.example.test", "cookie", "a=1",
                                 "user-agent", "t", "cookie", "b=2", NULL});
  assert_string_equal(rt_parse(&t, 1),
                      "GET /a?b=c HTTP/1.1\r\nHost: app.example.test:8443\r\naccept: */*\r\n"
                      "user-agent: t\r\nCookie: a=1; b=2\r\n\r\n");
  assert_int_equal(t.used, t.out.len);
  assert_int_equal(t.h.body, WR_HTTP1_BODY_NONE);
  rt_free(&t);
}

static void test_body_framing(void **state) {
  (void)state;
  roundtrip t;
  wr_buf out;
  int rv;
  /* A body without a length: chunked for the HTTP/1.1 machinery. */
  rt_start(&t, "POST", "/up", NULL);
  rt_parse(&t, 0);
  assert_int_equal(t.h.body, WR_HTTP1_BODY_CHUNKED);
  rt_free(&t);
  /* With one: kept, no chunked. */
  rt_start(&t, "POST", "/up", (const char *const[]){"content-length", "5", NULL});
  rt_parse(&t, 0);
  assert_int_equal(t.h.body, WR_HTTP1_BODY_LENGTH);
  assert_int_equal(t.h.content_length, 5);
  rt_free(&t);
  /* CONNECT: the authority is the target. */
  wr_h2req r;
  wr_h2req_init(&r, WR_HTTP1_DEFAULT_MAX_HEAD);
  field(&r, ":method", "CONNECT");
  field(&r, ":authority", "db.example.test:5432");
  assert_string_equal(rebuild(&r, 0, &out, &rv),
                      "CONNECT db.example.test:5432 HTTP/1.1\r\nHost: db.example.test:5432\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n");
  wr_buf_free(&out);
  wr_h2req_free(&r);
}

static void test_websocket(void **state) {
  (void)state;
  roundtrip t;
  rt_start(&t, "CONNECT", "/chat",
           (const char *const[]){":protocol", "websocket", "sec-websocket-version", "13", NULL});
  rt_parse(&t, 0);
  assert_int_equal(t.r.websocket, 1);
  assert_true(t.h.websocket);
  assert_int_equal(t.h.body, WR_HTTP1_BODY_NONE);
  assert_memory_equal(t.h.method, "GET", 3);
  rt_free(&t);
  /* Another protocol, or :protocol without CONNECT: 400. */
  rt_start(&t, "CONNECT", "/chat", (const char *const[]){":protocol", "webtransport", NULL});
  expect_refused(&t.r, 0, WR_ERR_PROTO);
  rt_start(&t, "GET", "/chat", (const char *const[]){":protocol", "websocket", NULL});
  expect_refused(&t.r, 0, WR_ERR_PROTO);
}

static void test_request_limits(void **state) {
  (void)state;
  wr_h2req r;
  char *big = malloc(5001);
  memset(big, 'x', 5000);
  big[5000] = '\0';
  wr_h2req_init(&r, 16384);
  std_fields(&r, "GET", "/");
  for (int i = 0; i < 4; i++) field(&r, "x-big", big);
  assert_int_equal(r.too_large, 1);
  expect_refused(&r, 1, WR_ERR_LIMIT);
  /* An over-long method or authority, or no method: 400. */
  wr_h2req_init(&r, 16384);
  field(&r, ":method", big);
  field(&r, ":path", "/");
  expect_refused(&r, 1, WR_ERR_PROTO);
  wr_h2req_init(&r, 16384);
  field(&r, ":path", "/");
  expect_refused(&r, 1, WR_ERR_PROTO);
  /* A line break in a value or a name could forge fields: refused. */
  wr_h2req_init(&r, 16384);
  std_fields(&r, "GET", "/");
  field(&r, "x-a", "1\r\nx-forwarded-for: 1.2.3.4");
  expect_refused(&r, 1, WR_ERR_PROTO);
  wr_h2req_init(&r, 16384);
  std_fields(&r, "GET", "/\r\n");
  expect_refused(&r, 1, WR_ERR_PROTO);
  free(big);
}

static void test_response(void **state) {
  (void)state;
  static wr_h2resp rh;
  const char *s = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                  "Transfer-Encoding: chunked\r\nX-Mixed-Case: V\r\nKeep-Alive: 5\r\n\r\nbody";
  size_t used;
  assert_int_equal(wr_h2resp_from_http1((const uint8_t *)s, strlen(s), "GET", 0, &rh, &used), WR_OK);
  assert_int_equal(used, strlen(s) - 4);
  assert_int_equal(rh.status, 200);
  assert_string_equal(rh.status_text, "200");
  assert_int_equal(rh.nfields, 2);
  assert_memory_equal(rh.fields[0].name, "content-type", 12);
  assert_memory_equal(rh.fields[1].name, "x-mixed-case", 12);
  assert_memory_equal(rh.fields[1].value, "V", 1);
  /* Incomplete, interim and switching protocols. */
  assert_int_equal(wr_h2resp_from_http1((const uint8_t *)s, 20, "GET", 0, &rh, &used), WR_AGAIN);
  const char *c = "HTTP/1.1 100 Continue\r\n\r\n";
  assert_int_equal(wr_h2resp_from_http1((const uint8_t *)c, strlen(c), "POST", 0, &rh, &used), WR_OK);
  assert_int_equal(rh.status, 100);
  const char *u = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  assert_int_equal(wr_h2resp_from_http1((const uint8_t *)u, strlen(u), "GET", 0, &rh, &used), WR_ERR_PROTO);
  /* ... except to a WebSocket over HTTP/2: 200, no accept key. */
  const char *ua = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: x\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
  assert_int_equal(wr_h2resp_from_http1((const uint8_t *)ua, strlen(ua), "GET", 1, &rh, &used), WR_OK);
  assert_int_equal(rh.status, 200);
  assert_int_equal(rh.nfields, 1);
  assert_memory_equal(rh.fields[0].name, "sec-websocket-protocol", 22);
  const char *hd = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n";
  assert_int_equal(wr_h2resp_from_http1((const uint8_t *)hd, strlen(hd), "HEAD", 0, &rh, &used), WR_OK);
  assert_int_equal(rh.no_body, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_get_rebuilt),
      cmocka_unit_test(test_body_framing),
      cmocka_unit_test(test_request_limits),
      cmocka_unit_test(test_websocket),
      cmocka_unit_test(test_response),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
