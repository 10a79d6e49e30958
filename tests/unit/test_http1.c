/* HTTP/1.1 codec (src/proto/http1.c): request/response heads, rejection of
 * every smuggling-relevant malformation, limits, incremental feeding, the
 * chunked decoder at every split position, and serialiser round trips. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/http1.h"
#include "unit.h"

#define CAP 64

/* Copies |len| bytes into an exact-size heap block so ASan sees overreads. */
static uint8_t *dup_exact(const void *s, size_t len) {
  uint8_t *p = malloc(len ? len : 1);
  memcpy(p, s, len);
  return p;
}

static int req_n(const char *s, size_t len, const wr_http1_limits *lim, wr_http1_head *h,
                 size_t *used) {
  static wr_http_header hdrs[CAP];
  uint8_t *b = dup_exact(s, len);
  size_t u = 0;
  int rv = wr_http1_parse_request(b, len, lim, hdrs, CAP, h, &u);
  if (used) *used = u;
  free(b); /* |h| points into |b|: callers only look at scalars after this */
  return rv;
}

static int req(const char *s) {
  wr_http1_head h;
  return req_n(s, strlen(s), NULL, &h, NULL);
}

/* Parses response head |s| into |h| (its headers in a static array). */
static int resp_head(const char *s, const char *method, wr_http1_head *h) {
  static wr_http_header hdrs[CAP];
  size_t u;
  return wr_http1_parse_response((const uint8_t *)s, strlen(s), method, NULL, hdrs, CAP, h, &u);
}

static int resp(const char *s, const char *method) {
  wr_http1_head h;
  return resp_head(s, method, &h);
}

static int str_is(const char *p, size_t n, const char *want) {
  return n == strlen(want) && memcmp(p, want, n) == 0;
}

/* ---- requests ------------------------------------------------------------- */

static void test_simple_get(void **state) {
  (void)state;
  const char *s = "GET /p?q=1 HTTP/1.1\r\nHost:   example.com  \r\nUser-Agent: t\t\r\n"
                  "X-Empty:\r\n\r\n";
  wr_http_header hdrs[8];
  wr_http1_head h;
  size_t used = 0;
  assert_int_equal(wr_http1_parse_request((const uint8_t *)s, strlen(s), NULL, hdrs, 8, &h, &used),
                   WR_OK);
  assert_int_equal(used, strlen(s));
  assert_true(str_is(h.method, h.method_len, "GET"));
  assert_true(str_is(h.target, h.target_len, "/p?q=1"));
  assert_int_equal(h.minor, 1);
  assert_int_equal(h.nheaders, 3);
  assert_ptr_equal(h.headers, hdrs);
  assert_true(str_is(hdrs[0].name, hdrs[0].name_len, "Host"));
  assert_true(str_is(hdrs[0].value, hdrs[0].value_len, "example.com"));
  assert_true(str_is(hdrs[1].value, hdrs[1].value_len, "t"));
  assert_int_equal(hdrs[2].value_len, 0);
  assert_true(str_is(h.host, h.host_len, "example.com"));
  assert_int_equal(h.body, WR_HTTP1_BODY_NONE);
  assert_int_equal(h.keep_alive, 1);
  assert_int_equal(h.upgrade, 0);
  assert_int_equal(h.expect_continue, 0);
  size_t n;
  const char *v = wr_http1_find(&h, "user-AGENT", &n);
  assert_true(v && str_is(v, n, "t"));
  assert_null(wr_http1_find(&h, "Cookie", &n));
  assert_int_equal(n, 0);
  /* Other target forms are kept as sent. */
  assert_int_equal(req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), WR_OK);
  assert_int_equal(req("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), WR_OK);
  assert_int_equal(req("GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n"), WR_OK);
  assert_int_equal(req("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), WR_OK);
  assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n"), WR_OK);
}

static void test_find_last(void **state) {
  (void)state;
  const char *s = "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
  wr_http_header hdrs[8];
  wr_http1_head h;
  size_t used, n;
  assert_int_equal(wr_http1_parse_request((const uint8_t *)s, strlen(s), NULL, hdrs, 8, &h, &used),
                   WR_OK);
  const char *v = wr_http1_find(&h, "X-A", &n);
  assert_true(str_is(v, n, "2"));
}

static void test_pipelined(void **state) {
  (void)state;
  const char *s = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                  "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
                  "GET /c HTTP/1.1\r\n";
  size_t len = strlen(s), used, off;
  wr_http_header hdrs[8];
  wr_http1_head h;
  const uint8_t *b = (const uint8_t *)s;
  assert_int_equal(wr_http1_parse_request(b, len, NULL, hdrs, 8, &h, &used), WR_OK);
  assert_int_equal(used, strlen("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n"));
  assert_int_equal(h.body, WR_HTTP1_BODY_LENGTH);
  assert_int_equal(h.content_length, 3);
  off = used + 3;
  assert_int_equal(wr_http1_parse_request(b + off, len - off, NULL, hdrs, 8, &h, &used), WR_OK);
  assert_true(str_is(h.target, h.target_len, "/b"));
  assert_int_equal(used, strlen("GET /b HTTP/1.1\r\nHost: h\r\n\r\n"));
  off += used;
  assert_int_equal(wr_http1_parse_request(b + off, len - off, NULL, hdrs, 8, &h, &used), WR_AGAIN);
}

static void test_keep_alive_rules(void **state) {
  static const struct {
    const char *req;
    int keep_alive;
  } cases[] = {
      /* HTTP/1.0: close unless asked; Host optional. */
      {"GET / HTTP/1.0\r\n\r\n", 0},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1},
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0},
      /* HTTP/1.1: keep-alive unless closed, in any Connection field. */
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo\r\nConnection: x, CLOSE\r\n\r\n", 0},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", 1},
  };
  (void)state;
  wr_http1_head h;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *s = cases[i].req;
    assert_int_equal(req_n(s, strlen(s), NULL, &h, NULL), WR_OK);
    if (i == 0) assert_int_equal(h.minor, 0);
    if (h.keep_alive != cases[i].keep_alive)
      fail_msg("%s: keep_alive %d, want %d", s, h.keep_alive, cases[i].keep_alive);
  }
}

static void test_upgrade_expect(void **state) {
  (void)state;
  wr_http1_head h;
  const char *s = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
                  "Upgrade: WebSocket\r\nExpect: 100-Continue\r\n\r\n";
  assert_int_equal(req_n(s, strlen(s), NULL, &h, NULL), WR_OK);
  assert_int_equal(h.upgrade, 1);
  assert_int_equal(h.websocket, 1);
  assert_int_equal(h.expect_continue, 1);
  /* Upgrade without the Connection token is not an upgrade. */
  s = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
  assert_int_equal(req_n(s, strlen(s), NULL, &h, NULL), WR_OK);
  assert_int_equal(h.upgrade, 0);
  assert_int_equal(h.websocket, 0);
  s = "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n";
  assert_int_equal(req_n(s, strlen(s), NULL, &h, NULL), WR_OK);
  assert_int_equal(h.upgrade, 1);
  assert_int_equal(h.websocket, 0);
}

static void test_request_bodies(void **state) {
  (void)state;
  wr_http1_head h;
  const char *s = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n";
  assert_int_equal(req_n(s, strlen(s), NULL, &h, NULL), WR_OK);
  assert_int_equal(h.body, WR_HTTP1_BODY_CHUNKED);
  s = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n";
  assert_int_equal(req_n(s, strlen(s), NULL, &h, NULL), WR_OK);
  assert_int_equal(h.body, WR_HTTP1_BODY_CHUNKED);
  s = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
  assert_int_equal(req_n(s, strlen(s), NULL, &h, NULL), WR_OK);
  assert_int_equal(h.body, WR_HTTP1_BODY_NONE);
  /* Equal repeated lengths are one length (RFC 9112 6.3). */
  s = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\n";
  assert_int_equal(req_n(s, strlen(s), NULL, &h, NULL), WR_OK);
  assert_int_equal(h.body, WR_HTTP1_BODY_LENGTH);
  assert_int_equal(h.content_length, 5);
  s = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999\r\n\r\n";
  assert_int_equal(req_n(s, strlen(s), NULL, &h, NULL), WR_OK);
  assert_true(h.content_length == 999999999999999999ull);
  s = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n";
  assert_int_equal(req_n(s, strlen(s), NULL, &h, NULL), WR_OK);
  assert_int_equal(h.content_length, 7);
}

static void test_leading_empty_lines(void **state) {
  (void)state;
  wr_http1_head h;
  size_t used;
  const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
  assert_int_equal(req_n(s, strlen(s), NULL, &h, &used), WR_OK);
  assert_int_equal(used, strlen(s));
  assert_int_equal(req_n("\r\n", 2, NULL, &h, NULL), WR_AGAIN);
  assert_int_equal(req_n("\r", 1, NULL, &h, NULL), WR_AGAIN);
  assert_int_equal(req("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), WR_ERR_PROTO);
  assert_int_equal(req("\r\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), WR_ERR_PROTO);
  /* They count against max_head. */
  wr_http1_limits lim = {.max_head = 64};
  char big[200];
  for (int i = 0; i < 100; i++) memcpy(big + 2 * i, "\r\n", 2);
  assert_int_equal(req_n(big, 64, &lim, &h, NULL), WR_ERR_LIMIT);
  assert_int_equal(req_n(big, 62, &lim, &h, NULL), WR_AGAIN);
}

/* Every malformation that matters for smuggling or injection: WR_ERR_PROTO. */
static void test_request_rejections(void **state) {
  (void)state;
  static const char *const bad[] = {
      /* framing conflicts */
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",
      "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
      /* Content-Length */
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000000\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
      /* line endings and folding */
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n",
      "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
      "GET / HTTP/1.1\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n",
      /* request line */
      "G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
      " GET / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /\r\n\r\n",
      "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
      "GET / http/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
      "GET / HTTP/1.10\r\nHost: a\r\n\r\n",
      "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
      /* field names and values */
      "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX\t: b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fz\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[0m\r\n\r\n",
      /* Host */
      "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
      "GET / HTTP/1.1\r\nX: y\r\n\r\n",
      "GET / HTTP/1.0\r\nHost: a\r\nHOST: a\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int rv = req(bad[i]);
    if (rv != WR_ERR_PROTO) fail_msg("case %zu: got %d for \"%s\"", i, rv, bad[i]);
  }
  /* NUL inside a value (strlen cannot carry it). */
  static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
  wr_http1_head h;
  assert_int_equal(req_n(nul, sizeof(nul) - 1, NULL, &h, NULL), WR_ERR_PROTO);
}

static void test_request_limits(void **state) {
  (void)state;
  wr_http1_head h;
  wr_http_header hdrs[4];
  size_t used;
  char buf[WR_HTTP1_DEFAULT_MAX_HEAD + 64];
  /* An unterminated head: AGAIN up to max_head bytes, then LIMIT. */
  wr_http1_limits lim = {.max_head = 100};
  memset(buf, 'a', sizeof(buf));
  memcpy(buf, "GET /", 5);
  assert_int_equal(req_n(buf, 100, &lim, &h, NULL), WR_AGAIN);
  assert_int_equal(req_n(buf, 101, &lim, &h, NULL), WR_ERR_LIMIT);
  /* The default limit. */
  assert_int_equal(req_n(buf, WR_HTTP1_DEFAULT_MAX_HEAD, NULL, &h, NULL), WR_AGAIN);
  assert_int_equal(req_n(buf, WR_HTTP1_DEFAULT_MAX_HEAD + 1, NULL, &h, NULL), WR_ERR_LIMIT);
  /* A complete head of exactly max_head bytes fits; one byte more does not. */
  const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  lim.max_head = strlen(s);
  assert_int_equal(req_n(s, strlen(s), &lim, &h, &used), WR_OK);
  lim.max_head = strlen(s) - 1;
  assert_int_equal(req_n(s, strlen(s), &lim, &h, &used), WR_ERR_LIMIT);
  /* Field count: limits->max_headers and the caller's |cap|. */
  s = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  lim = (wr_http1_limits){.max_headers = 4};
  assert_int_equal(req_n(s, strlen(s), &lim, &h, NULL), WR_OK);
  lim.max_headers = 3;
  assert_int_equal(req_n(s, strlen(s), &lim, &h, NULL), WR_ERR_LIMIT);
  /* Reported before the head is complete. */
  assert_int_equal(req_n(s, strlen(s) - 2, &lim, &h, NULL), WR_ERR_LIMIT);
  assert_int_equal(wr_http1_parse_request((const uint8_t *)s, strlen(s), NULL, hdrs, 4, &h, &used),
                   WR_OK);
  assert_int_equal(wr_http1_parse_request((const uint8_t *)s, strlen(s), NULL, hdrs, 3, &h, &used),
                   WR_ERR_LIMIT);
  /* Default field limit: 100. */
  char *many = malloc(8192);
  size_t n = (size_t)sprintf(many, "GET / HTTP/1.1\r\nHost: a\r\n");
  for (int i = 0; i < 99; i++) n += (size_t)sprintf(many + n, "X%d: y\r\n", i);
  memcpy(many + n, "\r\n", 2);
  wr_http_header *big = malloc(200 * sizeof(*big));
  assert_int_equal(wr_http1_parse_request((uint8_t *)many, n + 2, NULL, big, 200, &h, &used), WR_OK);
  assert_int_equal(h.nheaders, 100);
  n += (size_t)sprintf(many + n, "Z: 1\r\n\r\n");
  assert_int_equal(wr_http1_parse_request((uint8_t *)many, n, NULL, big, 200, &h, &used),
                   WR_ERR_LIMIT);
  free(big);
  free(many);
}

/* Feeds every prefix of |s| (in exact-size copies): all but the whole must
 * give WR_AGAIN, the whole |want|. */
static void feed_prefixes(const char *s, int is_resp, const char *method, int want) {
  wr_http_header hdrs[CAP];
  wr_http1_head h;
  size_t len = strlen(s), used;
  for (size_t i = 0; i <= len; i++) {
    uint8_t *b = dup_exact(s, i);
    int rv = is_resp ? wr_http1_parse_response(b, i, method, NULL, hdrs, CAP, &h, &used)
                     : wr_http1_parse_request(b, i, NULL, hdrs, CAP, &h, &used);
    free(b);
    if (i < len && rv != WR_AGAIN && rv != want)
      fail_msg("prefix %zu of \"%s\": %d", i, s, rv);
    if (i == len) assert_int_equal(rv, want);
    if (i == len && want == WR_OK) assert_int_equal(used, len);
  }
}

static void test_byte_by_byte(void **state) {
  (void)state;
  feed_prefixes("GET /x HTTP/1.1\r\nHost: a\r\nA: b\r\n\r\n", 0, NULL, WR_OK);
  feed_prefixes("\r\n\r\nPOST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\n", 0, NULL, WR_OK);
  feed_prefixes("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", 1, "GET", WR_OK);
  feed_prefixes("HTTP/1.1 100 Continue\r\n\r\n", 1, "GET", WR_OK);
  feed_prefixes("HTTP/1.1 204\r\n\r\n", 1, "GET", WR_OK);
  /* Malformed input: intermediate answers are WR_AGAIN or the final error. */
  feed_prefixes("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 0, NULL, WR_ERR_PROTO);
  feed_prefixes("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 0, NULL, WR_ERR_PROTO);
}

/* ---- responses ------------------------------------------------------------ */

static void test_responses(void **state) {
  (void)state;
  wr_http_header hdrs[CAP];
  wr_http1_head h;
  size_t used;
  const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
  const uint8_t *b = (const uint8_t *)s;
  size_t len = strlen(s);
  assert_int_equal(wr_http1_parse_response(b, len, "GET", NULL, hdrs, CAP, &h, &used), WR_OK);
  assert_int_equal(used, len - 5);
  assert_int_equal(h.status, 200);
  assert_true(str_is(h.reason, h.reason_len, "OK"));
  assert_int_equal(h.minor, 1);
  assert_int_equal(h.nheaders, 2);
  assert_int_equal(h.body, WR_HTTP1_BODY_LENGTH);
  assert_int_equal(h.content_length, 5);
  assert_int_equal(h.keep_alive, 1);
  assert_null(h.host);
  /* HEAD: no body, but the length is reported. */
  assert_int_equal(wr_http1_parse_response(b, len, "HEAD", NULL, hdrs, CAP, &h, &used), WR_OK);
  assert_int_equal(h.body, WR_HTTP1_BODY_NONE);
  assert_int_equal(h.content_length, 5);
  assert_int_equal(h.keep_alive, 1);
  /* NULL method behaves like GET. */
  assert_int_equal(wr_http1_parse_response(b, len, NULL, NULL, hdrs, CAP, &h, &used), WR_OK);
  assert_int_equal(h.body, WR_HTTP1_BODY_LENGTH);

  /* Framing by status, method and fields: the body kind and, where not
   * -1, whether the connection is reusable. */
  static const struct {
    const char *head, *method;
    int body, keep_alive;
  } framing[] = {
      /* 204, 304: no body even with framing fields. */
      {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "GET", WR_HTTP1_BODY_NONE, -1},
      {"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", "GET",
       WR_HTTP1_BODY_NONE, -1},
      /* No framing: to EOF, not reusable. */
      {"HTTP/1.1 200 OK\r\n\r\nbody until close", "GET", WR_HTTP1_BODY_EOF, 0},
      /* Chunked; chunked wins over Content-Length but the connection is done. */
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", WR_HTTP1_BODY_CHUNKED, 1},
      {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n", "GET",
       WR_HTTP1_BODY_CHUNKED, 0},
      /* HTTP/1.0: Transfer-Encoding ignored. */
      {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", WR_HTTP1_BODY_EOF, 0},
      /* CONNECT 2xx: the tunnel starts, no body; a refusal has one. */
      {"HTTP/1.1 200 Connection established\r\n\r\n", "CONNECT", WR_HTTP1_BODY_NONE, -1},
      {"HTTP/1.1 403 Forbidden\r\nContent-Length: 1\r\n\r\n", "CONNECT", WR_HTTP1_BODY_LENGTH,
       -1},
  };
  for (size_t i = 0; i < sizeof(framing) / sizeof(framing[0]); i++) {
    s = framing[i].head;
    assert_int_equal(resp_head(s, framing[i].method, &h), WR_OK);
    if ((int)h.body != framing[i].body)
      fail_msg("%s: body %d, want %d", s, (int)h.body, framing[i].body);
    if (framing[i].keep_alive >= 0 && h.keep_alive != framing[i].keep_alive)
      fail_msg("%s: keep_alive %d, want %d", s, h.keep_alive, framing[i].keep_alive);
  }

  /* 1xx, then the final response in the same buffer. */
  s = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
  b = (const uint8_t *)s;
  len = strlen(s);
  assert_int_equal(wr_http1_parse_response(b, len, "POST", NULL, hdrs, CAP, &h, &used), WR_OK);
  assert_int_equal(h.status, 100);
  assert_int_equal(h.body, WR_HTTP1_BODY_NONE);
  assert_int_equal(used, strlen("HTTP/1.1 100 Continue\r\n\r\n"));
  size_t off = used;
  assert_int_equal(wr_http1_parse_response(b + off, len - off, "POST", NULL, hdrs, CAP, &h, &used),
                   WR_OK);
  assert_int_equal(h.status, 201);
  assert_int_equal(h.body, WR_HTTP1_BODY_NONE);
  assert_int_equal(off + used, len);

  /* 101 with websocket upgrade. */
  s = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  assert_int_equal(resp_head(s, "GET", &h), WR_OK);
  assert_int_equal(h.body, WR_HTTP1_BODY_NONE);
  assert_int_equal(h.upgrade, 1);
  assert_int_equal(h.websocket, 1);

  /* HTTP/1.0: keep-alive only if asked. */
  s = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n";
  assert_int_equal(resp_head(s, "GET", &h), WR_OK);
  assert_int_equal(h.minor, 0);
  assert_int_equal(h.keep_alive, 1);
  assert_int_equal(h.body, WR_HTTP1_BODY_LENGTH);

  /* Status lines without a reason. */
  s = "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n";
  assert_int_equal(resp_head(s, "GET", &h), WR_OK);
  assert_int_equal(h.status, 404);
  assert_int_equal(h.reason_len, 0);
  assert_int_equal(h.body, WR_HTTP1_BODY_NONE);
  assert_int_equal(resp("HTTP/1.1 599 \r\n\r\n", "GET"), WR_OK);
  assert_int_equal(resp("HTTP/1.1 999 Whatever it is\r\n\r\n", "GET"), WR_OK);
}

static void test_response_rejections(void **state) {
  (void)state;
  static const char *const bad[] = {
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 099 X\r\n\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 2x0 OK\r\n\r\n",
      "HTTP/1.1  200 OK\r\n\r\n",
      "HTTP/1.1 200OK\r\n\r\n",
      "HTTP/1.2 200 OK\r\n\r\n",
      "HTTP/2 200 OK\r\n\r\n",
      "http/1.1 200 OK\r\n\r\n",
      "HTTP/1.1 200 O\x01K\r\n\r\n",
      "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
      "\r\nHTTP/1.1 200 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
      "HTTP/1.1 304 Not Modified\r\nContent-Length: nope\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int rv = resp(bad[i], "GET");
    if (rv != WR_ERR_PROTO) fail_msg("case %zu: got %d for \"%s\"", i, rv, bad[i]);
  }
  /* Limits apply to responses too. */
  wr_http_header hdrs[2];
  wr_http1_head h;
  size_t used;
  const char *s = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  assert_int_equal(wr_http1_parse_response((const uint8_t *)s, strlen(s), "GET", NULL, hdrs, 2, &h,
                                           &used), WR_ERR_LIMIT);
  wr_http1_limits lim = {.max_head = 10};
  assert_int_equal(wr_http1_parse_response((const uint8_t *)s, strlen(s), "GET", &lim, hdrs, 2, &h,
                                           &used), WR_ERR_LIMIT);
}

/* ---- chunked ---------------------------------------------------------------- */

typedef struct chunk_result {
  int rv;
  size_t consumed; /* total */
  int done;
  char data[256];
  size_t data_len;
} chunk_result;

/* Decodes |s| fed in pieces cut at |cuts| (ascending, ending with len);
 * every piece is fully offered (the decoder keeps no bytes: what it does not
 * consume on return is either past the end or not yet needed). */
static chunk_result decode_pieces(const uint8_t *s, size_t len, const size_t *cuts, size_t ncuts) {
  chunk_result r = {0};
  wr_http1_chunked c;
  wr_http1_chunked_init(&c);
  size_t start = 0;
  for (size_t k = 0; k < ncuts && !c.done; k++) {
    size_t end = cuts[k];
    uint8_t *piece = dup_exact(s + start, end - start);
    size_t off = 0;
    while (off < end - start && !c.done) {
      size_t used, doff, dlen;
      int rv = wr_http1_chunked_decode(&c, piece + off, end - start - off, &used, &doff, &dlen);
      if (rv != WR_OK) {
        free(piece);
        r.rv = rv;
        r.consumed += used;
        return r;
      }
      assert_true(used <= end - start - off);
      assert_true(doff + dlen <= used);
      assert_true(r.data_len + dlen <= sizeof(r.data));
      memcpy(r.data + r.data_len, piece + off + doff, dlen);
      r.data_len += dlen;
      r.consumed += used;
      off += used;
      if (used == 0) break;
    }
    free(piece);
    /* Unconsumed bytes of a piece only happen once done. */
    if (!c.done) assert_int_equal(off, end - start);
    start = end;
  }
  r.done = c.done;
  return r;
}

static void check_chunked(const char *s, size_t len, const char *want_data, size_t want_used) {
  const uint8_t *b = (const uint8_t *)s;
  /* Whole, every single split, and one byte at a time. */
  size_t whole = len;
  chunk_result r = decode_pieces(b, len, &whole, 1);
  assert_int_equal(r.rv, WR_OK);
  assert_true(r.done);
  assert_int_equal(r.consumed, want_used);
  assert_int_equal(r.data_len, strlen(want_data));
  assert_memory_equal(r.data, want_data, r.data_len);
  for (size_t k = 0; k <= len; k++) {
    size_t cuts[2] = {k, len};
    r = decode_pieces(b, len, cuts, 2);
    assert_int_equal(r.rv, WR_OK);
    assert_true(r.done);
    assert_int_equal(r.consumed, want_used);
    assert_int_equal(r.data_len, strlen(want_data));
    assert_memory_equal(r.data, want_data, r.data_len);
  }
  size_t *cuts = malloc(len * sizeof(*cuts));
  for (size_t k = 0; k < len; k++) cuts[k] = k + 1;
  r = decode_pieces(b, len, cuts, len);
  free(cuts);
  assert_int_equal(r.rv, WR_OK);
  assert_true(r.done);
  assert_int_equal(r.consumed, want_used);
  assert_int_equal(r.data_len, strlen(want_data));
  assert_memory_equal(r.data, want_data, r.data_len);
}

static int chunked_rv(const char *s, size_t len) {
  chunk_result one, whole;
  size_t *cuts = malloc((len ? len : 1) * sizeof(*cuts));
  for (size_t k = 0; k < len; k++) cuts[k] = k + 1;
  one = decode_pieces((const uint8_t *)s, len, cuts, len);
  whole = decode_pieces((const uint8_t *)s, len, &len, 1);
  free(cuts);
  assert_int_equal(one.rv, whole.rv); /* same verdict whatever the feeding */
  return whole.rv;
}

static void test_chunked_good(void **state) {
  (void)state;
  const char *s = "5\r\nhello\r\n6;name=val;q=\"a b\"\r\n world\r\n0\r\n\r\nNEXT";
  check_chunked(s, strlen(s), "hello world", strlen(s) - 4);
  /* Trailers, upper-case hex, leading zeros, BWS before an extension. */
  s = "A\r\n0123456789\r\n000001 ;ext\r\n!\r\n0;last\r\nTrailer-A: x\r\nB:\r\n\r\nGET";
  check_chunked(s, strlen(s), "0123456789!", strlen(s) - 3);
  s = "0\r\n\r\n";
  check_chunked(s, strlen(s), "", strlen(s));
  /* Data containing CRLF and hex-looking bytes. */
  s = "4\r\n\r\n\r\n\r\n3\r\n0\r\n\r\n0\r\n\r\n";
  check_chunked(s, strlen(s), "\r\n\r\n0\r\n", strlen(s));
}

static void test_chunked_runs(void **state) {
  (void)state;
  const char *s = "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
  wr_http1_chunked c;
  size_t used, doff, dlen;
  wr_http1_chunked_init(&c);
  assert_int_equal(wr_http1_chunked_decode(&c, (const uint8_t *)s, strlen(s), &used, &doff, &dlen),
                   WR_OK);
  /* One data run; the framing after it is consumed up to the next run. */
  assert_int_equal(doff, 3);
  assert_int_equal(dlen, 3);
  assert_int_equal(used, 11);
  assert_false(c.done);
  assert_int_equal(c.remaining, 3);
  const uint8_t *rest = (const uint8_t *)s + used;
  assert_int_equal(wr_http1_chunked_decode(&c, rest, strlen(s) - 11, &used, &doff, &dlen), WR_OK);
  assert_int_equal(doff, 0);
  assert_int_equal(dlen, 3);
  assert_int_equal(used, strlen(s) - 11);
  assert_true(c.done);
  /* Done: nothing more is consumed. */
  assert_int_equal(wr_http1_chunked_decode(&c, rest, 3, &used, &doff, &dlen), WR_OK);
  assert_int_equal(used, 0);
  assert_int_equal(dlen, 0);
  /* Empty input. */
  wr_http1_chunked_init(&c);
  assert_int_equal(wr_http1_chunked_decode(&c, (const uint8_t *)"", 0, &used, &doff, &dlen), WR_OK);
  assert_int_equal(used, 0);
  /* 15 hex digits is the largest size accepted. */
  s = "fffffffffffffff\r\nab";
  assert_int_equal(wr_http1_chunked_decode(&c, (const uint8_t *)s, strlen(s), &used, &doff, &dlen),
                   WR_OK);
  assert_int_equal(used, strlen(s));
  assert_int_equal(dlen, 2);
  assert_true(c.remaining == 0xfffffffffffffffull - 2);
}

static void test_chunked_bad(void **state) {
  (void)state;
  static const char *const bad[] = {
      "g\r\n",                     /* not hex */
      "\r\n",                      /* no size */
      " 5\r\nhello\r\n0\r\n\r\n",  /* leading space */
      "-5\r\n",
      "0x5\r\n",
      "+5\r\n",
      "5\n",                       /* bare LF */
      "5\r\r\n",                   /* bare CR */
      "5 \r\n",                    /* whitespace not followed by ';' */
      "5 x\r\n",
      "5x\r\n",
      "1000000000000000\r\n",      /* 16 hex digits */
      "0000000000000005\r\n",      /* 16 digits even with zeros */
      "ffffffffffffffffff\r\n",    /* overflow */
      "5\r\nhelloX\r\n",           /* no CRLF after data */
      "5\r\nhello\r\r\n",
      "5\r\nhello\n0\r\n\r\n",
      "5;a\x01\r\n",                /* CTL in an extension */
      "5;a\nb\r\n",
      "0\r\n X: a\r\n\r\n",        /* trailer obs-fold */
      "0\r\nX : a\r\n\r\n",        /* trailer whitespace before ':' */
      "0\r\n: a\r\n\r\n",          /* empty trailer name */
      "0\r\nNoColon\r\n\r\n",
      "0\r\nX: a\nY: b\r\n\r\n",   /* bare LF in trailers */
      "0\r\nX: a\x7f\r\n\r\n",
      "0\r\n\rX",                  /* final CR without LF */
      "0\r\n\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int rv = chunked_rv(bad[i], strlen(bad[i]));
    if (rv != WR_ERR_PROTO) fail_msg("case %zu: got %d for \"%s\"", i, rv, bad[i]);
  }
  /* Errors are sticky. */
  wr_http1_chunked c;
  size_t used, doff, dlen;
  wr_http1_chunked_init(&c);
  assert_int_equal(wr_http1_chunked_decode(&c, (const uint8_t *)"z", 1, &used, &doff, &dlen),
                   WR_ERR_PROTO);
  assert_int_equal(wr_http1_chunked_decode(&c, (const uint8_t *)"0\r\n\r\n", 5, &used, &doff,
                                           &dlen), WR_ERR_PROTO);
  assert_int_equal(used, 0);
  assert_false(c.done);
}

static void test_chunked_limits(void **state) {
  (void)state;
  /* A size line up to WR_HTTP1_MAX_CHUNK_LINE bytes (CRLF included). */
  size_t n = WR_HTTP1_MAX_CHUNK_LINE;
  char *s = malloc(n + 64);
  memset(s, 'x', n + 64);
  memcpy(s, "1;", 2);
  memcpy(s + n - 2, "\r\nA\r\n0\r\n\r\n", 10);
  assert_int_equal(chunked_rv(s, n + 8), WR_OK);
  memset(s, 'x', n + 64);
  memcpy(s, "1;", 2);
  memcpy(s + n - 1, "\r\nA\r\n0\r\n\r\n", 10);
  assert_int_equal(chunked_rv(s, n + 9), WR_ERR_LIMIT);
  free(s);
  /* Trailers: WR_HTTP1_DEFAULT_MAX_HEAD bytes in all. */
  size_t t = WR_HTTP1_DEFAULT_MAX_HEAD;
  s = malloc(t + 64);
  size_t o = (size_t)sprintf(s, "0\r\n");
  while (o - 3 < t) o += (size_t)sprintf(s + o, "X: aaaaaaaaaaa\r\n");
  memcpy(s + o, "\r\n", 2);
  o += 2;
  assert_true(o - 3 > t);
  assert_int_equal(chunked_rv(s, o), WR_ERR_LIMIT);
  free(s);
  s = malloc(t + 64);
  o = (size_t)sprintf(s, "0\r\n");
  while (o + 16 + 2 <= t + 3) o += (size_t)sprintf(s + o, "X: aaaaaaaaaaa\r\n");
  memcpy(s + o, "\r\n", 2);
  o += 2;
  assert_true(o - 3 <= t);
  assert_int_equal(chunked_rv(s, o), WR_OK);
  free(s);
}

/* ---- serialisation ------------------------------------------------------- */

static void test_write_response(void **state) {
  (void)state;
  wr_buf b;
  wr_http_header out[8];
  wr_http1_head h;
  size_t used;
  const wr_http_header hs[] = {
      {"Content-Type", 12, "text/plain", 10},
      {"X-Empty", 7, "", 0},
      {"Set-Cookie", 10, "a=b; Path=/\t x", 14},
  };
  wr_buf_init(&b, 4096, NULL);
  assert_int_equal(wr_buf_append_str(&b, "prefix"), WR_OK);
  assert_int_equal(wr_http1_write_response_head(&b, 404, NULL, hs, 3), WR_OK);
  assert_string_equal(wr_buf_cstr(&b), "prefixHTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                                       "X-Empty: \r\nSet-Cookie: a=b; Path=/\t x\r\n\r\n");
  assert_int_equal(wr_http1_parse_response(b.data + 6, b.len - 6, "GET", NULL, out, 8, &h, &used),
                   WR_OK);
  assert_int_equal(used, b.len - 6);
  assert_int_equal(h.status, 404);
  assert_true(str_is(h.reason, h.reason_len, "Not Found"));
  assert_int_equal(h.nheaders, 3);
  for (size_t i = 0; i < 3; i++) {
    assert_true(str_is(out[i].name, out[i].name_len, hs[i].name));
    assert_int_equal(out[i].value_len, hs[i].value_len);
    assert_memory_equal(out[i].value, hs[i].value, hs[i].value_len);
  }
  /* Surrounding whitespace is written as is; the parser trims it. */
  wr_buf_reset(&b);
  const wr_http_header sp[] = {{"X", 1, " a\t", 3}};
  assert_int_equal(wr_http1_write_response_head(&b, 200, NULL, sp, 1), WR_OK);
  assert_string_equal(wr_buf_cstr(&b), "HTTP/1.1 200 OK\r\nX:  a\t\r\n\r\n");
  /* Custom and unknown reasons. */
  wr_buf_reset(&b);
  assert_int_equal(wr_http1_write_response_head(&b, 299, NULL, NULL, 0), WR_OK);
  assert_string_equal(wr_buf_cstr(&b), "HTTP/1.1 299 Unknown\r\n\r\n");
  wr_buf_reset(&b);
  assert_int_equal(wr_http1_write_response_head(&b, 200, "Fine", NULL, 0), WR_OK);
  assert_string_equal(wr_buf_cstr(&b), "HTTP/1.1 200 Fine\r\n\r\n");

  /* Refusals leave |out| unchanged. */
  wr_buf_reset(&b);
  assert_int_equal(wr_buf_append_str(&b, "keep"), WR_OK);
  const wr_http_header crlf[] = {{"X", 1, "a\r\nInjected: 1", 15}};
  const wr_http_header lf[] = {{"X", 1, "a\nb", 3}};
  const wr_http_header nul[] = {{"X", 1, "a\0b", 3}};
  const wr_http_header badname[] = {{"X Y", 3, "a", 1}};
  const wr_http_header colon[] = {{"X:", 2, "a", 1}};
  const wr_http_header empty[] = {{"", 0, "a", 1}};
  assert_int_equal(wr_http1_write_response_head(&b, 200, NULL, crlf, 1), WR_ERR_INVAL);
  assert_int_equal(wr_http1_write_response_head(&b, 200, NULL, lf, 1), WR_ERR_INVAL);
  assert_int_equal(wr_http1_write_response_head(&b, 200, NULL, nul, 1), WR_ERR_INVAL);
  const wr_http_header del[] = {{"X", 1, "a\x7f", 2}};
  assert_int_equal(wr_http1_write_response_head(&b, 200, NULL, del, 1), WR_ERR_INVAL);
  assert_int_equal(wr_http1_write_response_head(&b, 200, NULL, badname, 1), WR_ERR_INVAL);
  assert_int_equal(wr_http1_write_response_head(&b, 200, NULL, colon, 1), WR_ERR_INVAL);
  assert_int_equal(wr_http1_write_response_head(&b, 200, NULL, empty, 1), WR_ERR_INVAL);
  assert_int_equal(wr_http1_write_response_head(&b, 200, "O\r\nK", NULL, 0), WR_ERR_INVAL);
  assert_int_equal(wr_http1_write_response_head(&b, 99, NULL, NULL, 0), WR_ERR_INVAL);
  assert_int_equal(wr_http1_write_response_head(&b, 1000, NULL, NULL, 0), WR_ERR_INVAL);
  assert_string_equal(wr_buf_cstr(&b), "keep");
  wr_buf_free(&b);
  /* Allocation failures: WR_ERR_NOMEM, unchanged, at every step. */
  for (long i = 0;; i++) {
    unit_failmem fm;
    unit_failmem_init(&fm, i);
    wr_buf_init(&b, 1u << 20, &fm.mem);
    int rv = wr_http1_write_response_head(&b, 200, NULL, hs, 3);
    if (rv == WR_OK) {
      assert_true(fm.calls > 1); /* at least one failure was tried */
      wr_buf_free(&b);
      break;
    }
    assert_int_equal(rv, WR_ERR_NOMEM);
    assert_int_equal(b.len, 0);
    wr_buf_free(&b);
    assert_int_equal(fm.live, 0);
  }
  /* A full buffer: WR_ERR_LIMIT, unchanged. */
  wr_buf_init(&b, 30, NULL);
  assert_int_equal(wr_buf_append_str(&b, "keep"), WR_OK);
  assert_int_equal(wr_http1_write_response_head(&b, 200, NULL, hs, 3), WR_ERR_LIMIT);
  assert_string_equal(wr_buf_cstr(&b), "keep");
  wr_buf_free(&b);
}

static void test_write_request(void **state) {
  (void)state;
  wr_buf b;
  wr_http_header out[8];
  wr_http1_head h;
  size_t used;
  const wr_http_header hs[] = {{"Host", 4, "example.com", 11}, {"Content-Length", 14, "3", 1}};
  wr_buf_init(&b, 4096, NULL);
  assert_int_equal(wr_http1_write_request_head(&b, "POST", 4, "/a?b", 4, hs, 2), WR_OK);
  assert_string_equal(wr_buf_cstr(&b),
                      "POST /a?b HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\n");
  assert_int_equal(wr_http1_parse_request(b.data, b.len, NULL, out, 8, &h, &used), WR_OK);
  assert_int_equal(used, b.len);
  assert_true(str_is(h.method, h.method_len, "POST"));
  assert_true(str_is(h.target, h.target_len, "/a?b"));
  assert_true(str_is(h.host, h.host_len, "example.com"));
  assert_int_equal(h.body, WR_HTTP1_BODY_LENGTH);
  assert_int_equal(h.content_length, 3);
  wr_buf_reset(&b);
  assert_int_equal(wr_http1_write_request_head(&b, "GE T", 4, "/", 1, hs, 1), WR_ERR_INVAL);
  assert_int_equal(wr_http1_write_request_head(&b, "", 0, "/", 1, hs, 1), WR_ERR_INVAL);
  assert_int_equal(wr_http1_write_request_head(&b, "GET", 3, "/a b", 4, hs, 1), WR_ERR_INVAL);
  assert_int_equal(wr_http1_write_request_head(&b, "GET", 3, "/a\r\n", 4, hs, 1), WR_ERR_INVAL);
  assert_int_equal(wr_http1_write_request_head(&b, "GET", 3, "", 0, hs, 1), WR_ERR_INVAL);
  const wr_http_header crlf[] = {{"X", 1, "a\r\nb", 4}};
  assert_int_equal(wr_http1_write_request_head(&b, "GET", 3, "/", 1, crlf, 1), WR_ERR_INVAL);
  assert_int_equal(b.len, 0);
  wr_buf_free(&b);
}

static void test_chunk_writer(void **state) {
  (void)state;
  char line[20];
  assert_int_equal(wr_http1_chunk_header(1, line), 3);
  assert_string_equal(line, "1\r\n");
  assert_int_equal(wr_http1_chunk_header(0x1a2b, line), 6);
  assert_string_equal(line, "1a2b\r\n");
  assert_int_equal(wr_http1_chunk_header(UINT64_MAX, line), 18);
  assert_string_equal(line, "ffffffffffffffff\r\n");
  /* Encode pieces, decode them back. */
  const char *pieces[] = {"a", "bcdefghijklmnopq", "rs"};
  wr_buf b;
  wr_buf_init(&b, 4096, NULL);
  for (size_t i = 0; i < 3; i++) {
    size_t n = wr_http1_chunk_header(strlen(pieces[i]), line);
    assert_int_equal(wr_buf_append(&b, line, n), WR_OK);
    assert_int_equal(wr_buf_append_str(&b, pieces[i]), WR_OK);
    assert_int_equal(wr_buf_append_str(&b, "\r\n"), WR_OK);
  }
  assert_int_equal(wr_buf_append_str(&b, WR_HTTP1_LAST_CHUNK), WR_OK);
  check_chunked((const char *)b.data, b.len, "abcdefghijklmnopqrs", b.len);
  wr_buf_free(&b);
}

/* ---- helpers ---------------------------------------------------------------- */

static void test_has_token(void **state) {
  (void)state;
  const char *v = " Keep-Alive ,\tUpgrade,,close ";
  assert_true(wr_http1_has_token(v, strlen(v), "keep-alive"));
  assert_true(wr_http1_has_token(v, strlen(v), "upgrade"));
  assert_true(wr_http1_has_token(v, strlen(v), "CLOSE"));
  assert_false(wr_http1_has_token(v, strlen(v), "keep"));
  assert_false(wr_http1_has_token(v, strlen(v), "alive"));
  assert_false(wr_http1_has_token("closed", 6, "close"));
  assert_false(wr_http1_has_token("clos", 4, "close"));
  assert_true(wr_http1_has_token("close", 5, "close"));
  /* The length bounds the value (no NUL needed). */
  assert_false(wr_http1_has_token("a, close", 5, "close"));
  assert_false(wr_http1_has_token("", 0, "close"));
  assert_false(wr_http1_has_token(NULL, 0, "close"));
  /* An empty token matches an empty element only. */
  assert_true(wr_http1_has_token("a,,b", 4, ""));
  assert_false(wr_http1_has_token("a,b", 3, ""));
}

static void test_hop_by_hop(void **state) {
  (void)state;
  static const char *const hop[] = {"Connection", "keep-alive", "PROXY-CONNECTION",
                                    "Proxy-Authenticate", "proxy-authorization", "TE",
                                    "Trailer", "transfer-encoding", "Upgrade"};
  for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
    assert_true(wr_http1_is_hop_by_hop(hop[i], strlen(hop[i])));
  static const char *const e2e[] = {"Content-Length", "Host", "Trailers", "T", "Connectio",
                                    "Connections", "X-Forwarded-For", "", "Upgrade-Insecure-Requests"};
  for (size_t i = 0; i < sizeof(e2e) / sizeof(e2e[0]); i++)
    assert_false(wr_http1_is_hop_by_hop(e2e[i], strlen(e2e[i])));
  assert_false(wr_http1_is_hop_by_hop("TE-x", 2 + 2)); /* length, not NUL, ends it */
  assert_true(wr_http1_is_hop_by_hop("TE-x", 2));
}

static void test_reason(void **state) {
  (void)state;
  assert_string_equal(wr_http1_reason(200), "OK");
  assert_string_equal(wr_http1_reason(404), "Not Found");
  assert_string_equal(wr_http1_reason(413), "Content Too Large");
  assert_string_equal(wr_http1_reason(431), "Request Header Fields Too Large");
  assert_string_equal(wr_http1_reason(999), "Unknown");
  assert_string_equal(wr_http1_reason(-1), "Unknown");
}

int main(void) {
  return UNIT_RUN(
      NULL, NULL,
      UNIT_TESTS(test_simple_get, test_find_last, test_pipelined, test_keep_alive_rules,
                 test_upgrade_expect, test_request_bodies, test_leading_empty_lines,
                 test_request_rejections, test_request_limits, test_byte_by_byte, test_responses,
                 test_response_rejections, test_chunked_good, test_chunked_runs, test_chunked_bad,
                 test_chunked_limits, test_write_response, test_write_request, test_chunk_writer,
                 test_has_token, test_hop_by_hop, test_reason));
}
