/* Fuzzes the HTTP/1 codec (src/proto/http1.c). The first byte picks small
 * limits, the request method a response answers and a split point; the rest
 * is parsed as a request head, a response head and a chunked body.
 * Checked: return codes stay in the documented set; parsed strings lie in
 * the consumed bytes; a parsed head written back with the serialiser parses
 * to the same values; shorter prefixes of a good head are WR_AGAIN; the
 * chunked decoder gives the same verdict, data and length however the input
 * is split, and re-encoding the data decodes to the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "proto/http1.h"
#include "fuzz.h"

#define CAP 128

static int head_rv_ok(int rv) {
  return rv == WR_OK || rv == WR_AGAIN || rv == WR_ERR_PROTO || rv == WR_ERR_LIMIT;
}

static int same(const char *a, size_t an, const char *b, size_t bn) {
  return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static void check_inside(const uint8_t *buf, size_t used, const char *p, size_t n) {
  CHECK(n == 0 || ((const uint8_t *)p >= buf && (const uint8_t *)p + n <= buf + used));
}

static void check_fields(const wr_http1_head *a, const wr_http1_head *b) {
  CHECK(a->nheaders == b->nheaders);
  for (size_t i = 0; i < a->nheaders; i++) {
    CHECK(same(a->headers[i].name, a->headers[i].name_len, b->headers[i].name,
               b->headers[i].name_len));
    CHECK(same(a->headers[i].value, a->headers[i].value_len, b->headers[i].value,
               b->headers[i].value_len));
  }
}

static void fuzz_request(const uint8_t *d, size_t n, const wr_http1_limits *lim) {
  static wr_http_header hdrs[CAP], hdrs2[CAP];
  wr_http1_head h, h2;
  size_t used = 0, used2;
  int rv = wr_http1_parse_request(d, n, lim, hdrs, CAP, &h, &used);
  CHECK(head_rv_ok(rv));
  if (rv != WR_OK) return;
  CHECK(used <= n);
  check_inside(d, used, h.method, h.method_len);
  check_inside(d, used, h.target, h.target_len);
  for (size_t i = 0; i < h.nheaders; i++) {
    check_inside(d, used, h.headers[i].name, h.headers[i].name_len);
    check_inside(d, used, h.headers[i].value, h.headers[i].value_len);
  }
  CHECK(h.minor == 0 || h.minor == 1);
  CHECK(h.body != WR_HTTP1_BODY_EOF);
  /* Exactly the head is needed: one byte less is incomplete. */
  CHECK(wr_http1_parse_request(d, used - 1, lim, hdrs2, CAP, &h2, &used2) == WR_AGAIN);
  /* Written back (as HTTP/1.1), it parses to the same request. */
  if (h.minor != 1) return;
  wr_buf b;
  wr_buf_init(&b, 1u << 20, NULL);
  CHECK(wr_http1_write_request_head(&b, h.method, h.method_len, h.target, h.target_len, h.headers,
                                    h.nheaders) == WR_OK);
  wr_http1_limits big = {.max_head = 1u << 20, .max_headers = CAP};
  CHECK(wr_http1_parse_request(b.data, b.len, &big, hdrs2, CAP, &h2, &used2) == WR_OK);
  CHECK(used2 == b.len);
  CHECK(same(h.method, h.method_len, h2.method, h2.method_len));
  CHECK(same(h.target, h.target_len, h2.target, h2.target_len));
  check_fields(&h, &h2);
  CHECK(h.body == h2.body && h.content_length == h2.content_length &&
        h.keep_alive == h2.keep_alive && h.upgrade == h2.upgrade &&
        h.websocket == h2.websocket && h.expect_continue == h2.expect_continue);
  CHECK(same(h.host, h.host_len, h2.host, h2.host_len));
  wr_buf_free(&b);
}

static void fuzz_response(const uint8_t *d, size_t n, const char *method,
                          const wr_http1_limits *lim) {
  static wr_http_header hdrs[CAP], hdrs2[CAP];
  wr_http1_head h, h2;
  size_t used = 0, used2;
  int rv = wr_http1_parse_response(d, n, method, lim, hdrs, CAP, &h, &used);
  CHECK(head_rv_ok(rv));
  if (rv != WR_OK) return;
  CHECK(used <= n && h.status >= 100 && h.status <= 999);
  check_inside(d, used, h.reason, h.reason_len);
  CHECK(wr_http1_parse_response(d, used - 1, method, lim, hdrs2, CAP, &h2, &used2) == WR_AGAIN);
  if (h.body == WR_HTTP1_BODY_EOF) CHECK(!h.keep_alive);
  wr_buf b;
  static char reason[WR_HTTP1_DEFAULT_MAX_HEAD + 1];
  CHECK(h.reason_len < sizeof(reason));
  memcpy(reason, h.reason, h.reason_len);
  reason[h.reason_len] = '\0';
  wr_buf_init(&b, 1u << 20, NULL);
  CHECK(wr_http1_write_response_head(&b, h.status, reason, h.headers, h.nheaders) == WR_OK);
  wr_http1_limits big = {.max_head = 1u << 20, .max_headers = CAP};
  CHECK(wr_http1_parse_response(b.data, b.len, method, &big, hdrs2, CAP, &h2, &used2) == WR_OK);
  CHECK(used2 == b.len && h2.status == h.status);
  CHECK(same(h.reason, h.reason_len, h2.reason, h2.reason_len));
  check_fields(&h, &h2);
  if (h.minor == 1)
    CHECK(h.body == h2.body && h.content_length == h2.content_length &&
          h.keep_alive == h2.keep_alive);
  wr_buf_free(&b);
}

typedef struct chunk_run {
  int rv, done;
  size_t used;
  wr_buf data;
} chunk_run;

/* Decodes |d| offered in pieces of at most |step| bytes. */
static void chunk_decode(const uint8_t *d, size_t n, size_t step, chunk_run *r) {
  wr_http1_chunked c;
  wr_http1_chunked_init(&c);
  wr_buf_init(&r->data, 1u << 20, NULL);
  r->rv = WR_OK;
  r->used = 0;
  size_t avail = 0; /* bytes of |d| offered so far */
  while (!c.done) {
    if (r->used == avail) {
      if (avail == n) break;
      avail = avail + step < n ? avail + step : n;
    }
    size_t used, off, len;
    int rv = wr_http1_chunked_decode(&c, d + r->used, avail - r->used, &used, &off, &len);
    CHECK(rv == WR_OK || rv == WR_ERR_PROTO || rv == WR_ERR_LIMIT);
    CHECK(used <= avail - r->used);
    if (rv != WR_OK) {
      r->rv = rv;
      break;
    }
    CHECK(off + len <= used);
    CHECK(wr_buf_append(&r->data, d + r->used + off, len) == WR_OK);
    r->used += used;
    CHECK(used > 0 || c.done || r->used == avail);
  }
  r->done = c.done;
}

static void fuzz_chunked(const uint8_t *d, size_t n, size_t step) {
  chunk_run a, b;
  chunk_decode(d, n, n ? n : 1, &a);
  chunk_decode(d, n, step ? step : 1, &b);
  CHECK(a.rv == b.rv && a.done == b.done);
  if (a.rv == WR_OK) {
    CHECK(a.used == b.used && a.data.len == b.data.len &&
          (a.data.len == 0 || memcmp(a.data.data, b.data.data, a.data.len) == 0));
  }
  if (a.done) {
    /* Re-encode as one chunk (if any data) and decode again. */
    wr_buf e;
    char line[20];
    chunk_run c;
    wr_buf_init(&e, 1u << 21, NULL);
    if (a.data.len) {
      size_t l = wr_http1_chunk_header(a.data.len, line);
      CHECK(wr_buf_append(&e, line, l) == WR_OK && wr_buf_append(&e, a.data.data, a.data.len) == WR_OK &&
            wr_buf_append(&e, "\r\n", 2) == WR_OK);
    }
    CHECK(wr_buf_append_str(&e, WR_HTTP1_LAST_CHUNK) == WR_OK);
    chunk_decode(e.data, e.len, 7, &c);
    CHECK(c.rv == WR_OK && c.done && c.used == e.len && c.data.len == a.data.len &&
          (a.data.len == 0 || memcmp(c.data.data, a.data.data, a.data.len) == 0));
    wr_buf_free(&c.data);
    wr_buf_free(&e);
  }
  wr_buf_free(&a.data);
  wr_buf_free(&b.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const methods[] = {NULL, "GET", "HEAD", "CONNECT"};
  if (size < 1) return 0;
  uint8_t ctl = data[0];
  /* Copy so that reads past the end are caught even by the fuzzer's own
   * buffer (libFuzzer's is exact-size already; this keeps it explicit). */
  size_t n = size - 1;
  uint8_t *d = malloc(n ? n : 1);
  if (!d) return 0;
  memcpy(d, data + 1, n);
  wr_http1_limits small = {.max_head = 64 + (ctl & 0x3f) * 16u, .max_headers = 1 + (ctl & 7)};
  const wr_http1_limits *lim = (ctl & 0x80) ? &small : NULL;
  fuzz_request(d, n, lim);
  fuzz_response(d, n, methods[(ctl >> 4) & 3], lim);
  fuzz_chunked(d, n, 1 + (ctl & 0x0f));
  free(d);
  return 0;
}
