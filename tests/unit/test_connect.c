/* ConnectRequest / ConnectResponse codec (src/proto/connect.c): every
 * data-stream vector in tests/vectors/quic/ and every data-stream dump in
 * golden-encodings.md, re-encoding to the same bytes, malformed input and
 * allocation failures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "lib/err.h"
#include "proto/connect.h"
#include "proto/preamble.h"
#include "proto/stream_head.h"
#include "unit.h"

static const uint8_t data_sig[8] = {0x0a, 0x36, 0xcd, 0x12, 0xa1, 0x3e, 0x30, 0x31};

#define MAXM 64

/* ---- helpers ------------------------------------------------------------ */

static int str_is(const char *s, size_t len, const char *want) {
  return len == strlen(want) && memcmp(s, want, len) == 0 && s[len] == '\0';
}

#define assert_str(s, len, want)                                                         \
  do {                                                                                   \
    if (!str_is((s), (len), (want)))                                                     \
      fail_msg("got '%.*s' (%zu), want '%s'", (int)(len), (s) ? (s) : "", (size_t)(len), \
               (want));                                                                  \
  } while (0)

static void assert_meta(const wr_meta *m, const char *key, const char *val) {
  assert_str(m->key, m->key_len, key);
  assert_str(m->val, m->val_len, val);
}

typedef struct meta_want {
  const char *key, *val;
} meta_want;

/* |n| entries in |m|, equal in order to |want| (which ends at a NULL key). */
static void assert_metas(const wr_meta *m, size_t n, const meta_want *want) {
  size_t i = 0;
  while (want[i].key) i++;
  assert_int_equal(n, i);
  for (i = 0; i < n; i++) assert_meta(&m[i], want[i].key, want[i].val);
}

#define ASSERT_METAS(m, n, ...) \
  assert_metas((m), (n), (const meta_want[]){__VA_ARGS__, {NULL, NULL}})

static void assert_req_equal(const wr_connect_request *a, const wr_connect_request *b) {
  assert_int_equal(a->dest_len, b->dest_len);
  assert_memory_equal(a->dest, b->dest, a->dest_len);
  assert_int_equal(a->type, b->type);
  assert_int_equal(a->has_meta, b->has_meta);
  assert_true(wr_meta_equal(a->meta, a->nmeta, b->meta, b->nmeta));
}

static void assert_resp_equal(const wr_connect_response *a, const wr_connect_response *b) {
  assert_int_equal(a->error_len, b->error_len);
  assert_memory_equal(a->error, b->error, a->error_len);
  assert_int_equal(a->has_meta, b->has_meta);
  assert_true(wr_meta_equal(a->meta, a->nmeta, b->meta, b->nmeta));
}

/* A decoded message: a ConnectRequest (|is_req|) or a ConnectResponse, its
 * entries in |meta|; for data-stream vectors also the raw bytes and where
 * the message and the body after it are. */
typedef struct stream {
  uint8_t *raw;
  size_t raw_len;
  const uint8_t *msg; /* after the preamble */
  size_t msg_len;     /* framed message length (consumed) */
  const uint8_t *body;
  size_t body_len;
  int is_req;
  wr_meta meta[MAXM];
  union {
    wr_connect_request req;
    wr_connect_response resp;
  };
} stream;

/* Decodes |len| bytes at |in| into s->req (|is_req|) or s->resp; returns the
 * decoder's result and sets |*used|. */
static int msg_decode(stream *s, int is_req, const uint8_t *in, size_t len, size_t *used) {
  s->is_req = is_req;
  return is_req ? wr_connect_request_decode(in, len, NULL, &s->req, s->meta, MAXM, used)
                : wr_connect_response_decode(in, len, NULL, &s->resp, s->meta, MAXM, used);
}

/* Encodes |s|'s message, checks the bytes equal |want| (the Go layout) when
 * given, and that decoding them gives the message back. */
static void check_reencode(const stream *s, const uint8_t *want, size_t want_len) {
  wr_buf out;
  stream back;
  size_t used = 0;
  wr_buf_init(&out, 1 << 20, NULL);
  assert_int_equal(s->is_req ? wr_connect_request_encode(&s->req, NULL, &out)
                             : wr_connect_response_encode(&s->resp, NULL, &out),
                   0);
  if (want) {
    assert_int_equal(out.len, want_len);
    assert_memory_equal(out.data, want, want_len);
  }
  assert_int_equal(msg_decode(&back, s->is_req, out.data, out.len, &used), 0);
  assert_int_equal(used, out.len);
  if (s->is_req) assert_req_equal(&s->req, &back.req);
  else assert_resp_equal(&s->resp, &back.resp);
  wr_buf_free(&out);
}

static void check_req_reencode(const wr_connect_request *q, const uint8_t *want, size_t want_len) {
  stream s = {.is_req = 1, .req = *q};
  check_reencode(&s, want, want_len);
}

static void check_resp_reencode(const wr_connect_response *r, const uint8_t *want,
                                size_t want_len) {
  stream s = {.is_req = 0, .resp = *r};
  check_reencode(&s, want, want_len);
}

/* Decodes the message at |msg| (|len| bytes, maybe followed by a body) into
 * |s| (|is_req|), fails the test if that fails (|what| names the input), and
 * checks that encoding it gives the same bytes back. Sets s->msg, s->msg_len
 * and the body after the message. */
static void msg_open(stream *s, const char *what, int is_req, const uint8_t *msg, size_t len) {
  size_t used = 0;
  int rv = msg_decode(s, is_req, msg, len, &used);
  if (rv != 0) fail_msg("%s: decode failed: %s", what, wr_strerror(rv));
  s->msg = msg;
  s->msg_len = used;
  s->body = msg + used;
  s->body_len = len - used;
  /* Encoding the decoded value gives cloudflared's exact bytes back. */
  check_reencode(s, msg, used);
}

/* A data-stream vector: preamble checked, message decoded, body located. */
static void open_stream(stream *s, const char *name, int is_req) {
  memset(s, 0, sizeof(*s));
  s->raw = unit_read_vector(name, &s->raw_len);
  assert_true(s->raw_len >= 8);
  assert_memory_equal(s->raw, data_sig, 8);
  msg_open(s, name, is_req, s->raw + 8, s->raw_len - 8);
}

static void close_stream(stream *s) { free(s->raw); }

/* Opens the request vector |name|, whose destination must be |dest| and
 * type |type|. */
static void open_request(stream *s, const char *name, const char *dest,
                         enum wr_connect_type type) {
  open_stream(s, name, 1);
  assert_str(s->req.dest, s->req.dest_len, dest);
  assert_int_equal(s->req.type, type);
}

/* Opens the response vector |name|, which must carry no error. */
static void open_response(stream *s, const char *name) {
  open_stream(s, name, 0);
  assert_int_equal(s->resp.error_len, 0);
}

static void assert_body(const stream *s, const char *want) {
  assert_int_equal(s->body_len, strlen(want));
  assert_memory_equal(s->body, want, s->body_len);
}

/* ---- captured vectors -------------------------------------------------- */

static void test_http_get(void **state) {
  (void)state;
  stream s;
  open_request(&s, "quic/http-get.from-edge.bin", "http://app.example.test/index.html", WR_CONNECT_HTTP);
  assert_int_equal(s.req.has_meta, 1);
  ASSERT_METAS(s.req.meta, s.req.nmeta,
               {"HttpMethod", "GET"},
               {"HttpHost", "app.example.test"},
               {"HttpHeader:User-Agent", "curl/7.88.1"},
               {"HttpHeader:Accept", "*/*"});
  assert_int_equal(s.msg_len, 288);
  assert_int_equal(s.body_len, 0);
  close_stream(&s);

  open_response(&s, "quic/http-get.from-connector.bin");
  assert_string_equal(s.resp.error, "");
  assert_int_equal(s.resp.has_meta, 1);
  ASSERT_METAS(s.resp.meta, s.resp.nmeta,
               {"HttpStatus", "200"},
               {"HttpHeader:Date", "Sun, 22 Nov 2026 02:00:23 GMT"},
               {"HttpHeader:Content-Type", "text/html"},
               {"HttpHeader:Content-Length", "18"},
               {"HttpHeader:Last-Modified", "Sun, 22 Nov 2026 01:59:36 GMT"},
               {"HttpHeader:Server", "SimpleHTTP/0.6 Python/3.11.7"});
  assert_body(&s, "hello from origin\n");
  close_stream(&s);
}

static void test_http_404(void **state) {
  (void)state;
  stream s;
  open_request(&s, "quic/http-404-no-rule.from-edge.bin", "http://nope.example.test/", WR_CONNECT_HTTP);
  ASSERT_METAS(s.req.meta, s.req.nmeta,
               {"HttpMethod", "GET"},
               {"HttpHost", "nope.example.test"},
               {"HttpHeader:User-Agent", "curl/7.88.1"},
               {"HttpHeader:Accept", "*/*"});
  assert_int_equal(s.body_len, 0);
  close_stream(&s);

  open_response(&s, "quic/http-404-no-rule.from-connector.bin");
  ASSERT_METAS(s.resp.meta, s.resp.nmeta, {"HttpStatus", "404"});
  assert_int_equal(s.body_len, 0);
  close_stream(&s);
}

static void test_http_post(void **state) {
  (void)state;
  stream s;
  open_request(&s, "quic/http-post.from-edge.bin", "http://app.example.test/x", WR_CONNECT_HTTP);
  ASSERT_METAS(s.req.meta, s.req.nmeta,
               {"HttpMethod", "POST"},
               {"HttpHost", "app.example.test"},
               {"HttpHeader:Accept", "*/*"},
               {"HttpHeader:Content-Type", "text/plain"},
               {"HttpHeader:Content-Length", "10"},
               {"HttpHeader:User-Agent", "curl/7.88.1"},
               {"HttpHeader:Content-Length", "10"}); /* repeated by the edge */
  size_t cl_len = 0;
  const char *cl = wr_meta_find_last(s.req.meta, s.req.nmeta, "HttpHeader:Content-Length", &cl_len);
  assert_non_null(cl);
  assert_str(cl, cl_len, "10");
  assert_body(&s, "hello body");
  close_stream(&s);

  open_response(&s, "quic/http-post-501.from-connector.bin");
  ASSERT_METAS(s.resp.meta, s.resp.nmeta,
               {"HttpStatus", "501"},
               {"HttpHeader:Server", "SimpleHTTP/0.6 Python/3.11.7"},
               {"HttpHeader:Date", "Sun, 22 Nov 2026 02:00:23 GMT"},
               {"HttpHeader:Connection", "close"},
               {"HttpHeader:Content-Type", "text/html;charset=utf-8"},
               {"HttpHeader:Content-Length", "357"});
  assert_int_equal(s.body_len, 357);
  assert_memory_equal(s.body, "<!DOCTYPE HTML>\n", 16);
  assert_memory_equal(s.body + 357 - 8, "</html>\n", 8);
  close_stream(&s);
}

static void test_websocket(void **state) {
  (void)state;
  stream s;
  open_request(&s, "quic/websocket.from-edge.bin", "http://ws.example.test/chat", WR_CONNECT_WEBSOCKET);
  ASSERT_METAS(s.req.meta, s.req.nmeta,
               {"HttpMethod", "GET"},
               {"HttpHost", "ws.example.test"},
               {"HttpHeader:Upgrade", "websocket"},
               {"HttpHeader:Connection", "Upgrade"},
               {"HttpHeader:Sec-Websocket-Key", "WTSl10wFwrcxLjHkjO+sNA=="},
               {"HttpHeader:Sec-Websocket-Version", "13"});
  /* One masked client text frame: FIN|text, MASK|16, key 01 02 03 04. */
  assert_int_equal(s.body_len, 2 + 4 + 16);
  assert_int_equal(s.body[0], 0x81);
  assert_int_equal(s.body[1], 0x90);
  uint8_t unmasked[16];
  for (int i = 0; i < 16; i++) unmasked[i] = s.body[6 + i] ^ s.body[2 + i % 4];
  assert_memory_equal(unmasked, "ping over tunnel", 16);
  close_stream(&s);

  open_response(&s, "quic/websocket.from-connector.bin");
  ASSERT_METAS(s.resp.meta, s.resp.nmeta,
               {"HttpStatus", "101"},
               {"HttpHeader:Upgrade", "websocket"},
               {"HttpHeader:Connection", "Upgrade"},
               {"HttpHeader:Sec-Websocket-Accept", "aMTmmpmyPg3lA7WDb6W1Cb+dsuM="});
  assert_int_equal(s.body_len, 18); /* unmasked server frame echoing the text */
  assert_memory_equal(s.body, "\x81\x10ping over tunnel", 18);
  close_stream(&s);
}

static void test_tcp(void **state) {
  (void)state;
  stream s;
  open_request(&s, "quic/tcp.from-edge.bin", "127.0.0.1:9000", WR_CONNECT_TCP);
  assert_int_equal(s.req.has_meta, 0);
  assert_int_equal(s.req.nmeta, 0);
  assert_body(&s, "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8082\r\n"
                  "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n");
  close_stream(&s);

  /* The TCP ack: no error and an empty but non-null metadata list. */
  open_response(&s, "quic/tcp.from-connector.bin");
  assert_int_equal(s.resp.has_meta, 1);
  assert_int_equal(s.resp.nmeta, 0);
  assert_int_equal(s.msg_len, 40);
  assert_true(s.body_len > 17);
  assert_memory_equal(s.body, "HTTP/1.0 200 OK\r\n", 17);
  assert_memory_equal(s.body + s.body_len - 18, "hello from origin\n", 18);
  close_stream(&s);
}

static void test_tcp_errors(void **state) {
  (void)state;
  stream s;
  open_request(&s, "quic/tcp-bad-dest.from-edge.bin", "tcp://127.0.0.1:9000", WR_CONNECT_TCP);
  assert_int_equal(s.req.has_meta, 0);
  assert_int_equal(s.body_len, 0);
  close_stream(&s);

  /* Errors before the response: error text and a null metadata list. */
  open_stream(&s, "quic/tcp-dial-error.from-connector.bin", 0);
  assert_str(s.resp.error, s.resp.error_len,
             "dial tcp: address tcp://127.0.0.1:9000: too many colons in address");
  assert_int_equal(s.resp.has_meta, 0);
  assert_int_equal(s.resp.nmeta, 0);
  assert_int_equal(s.body_len, 0);
  close_stream(&s);
}

/* ---- golden-encodings.md ----------------------------------------------- */

/* Which golden dumps are data-stream messages; 1 for a ConnectRequest. */
static int golden_is_data(const char *title, int *is_req) {
  *is_req = strncmp(title, "DATA STREAM ConnectRequest", 26) == 0;
  return *is_req || strncmp(title, "DATA STREAM ConnectResponse", 27) == 0;
}

/* The dump titled |title| (a data-stream message): the preamble, then one
 * message that is the whole rest and re-encodes to the same bytes. */
static void golden_open(const golden_set *g, const char *title, stream *s) {
  const golden_entry *e = golden_get(g, title);
  int is_req;
  memset(s, 0, sizeof(*s));
  assert_true(golden_is_data(title, &is_req));
  assert_int_equal(e->len, golden_title_len(e));
  assert_memory_equal(e->bytes, data_sig, 8);
  msg_open(s, title, is_req, e->bytes + 8, e->len - 8);
  assert_int_equal(s->body_len, 0);
}

static void test_golden(void **state) {
  (void)state;
  golden_set g = golden_load();
  stream s;
  size_t seen = 0;
  for (size_t i = 0; i < g.n; i++) {
    int is_req;
    if (!golden_is_data(g.e[i].title, &is_req)) continue;
    golden_open(&g, g.e[i].title, &s);
    seen++;
  }
  assert_int_equal(seen, 8);

  golden_open(&g, "DATA STREAM ConnectRequest{dest=tunnel.com", &s);
  assert_str(s.req.dest, s.req.dest_len, "tunnel.com");
  assert_int_equal(s.req.type, WR_CONNECT_HTTP);
  ASSERT_METAS(s.req.meta, s.req.nmeta, {"key", "1234"});

  golden_open(&g, "DATA STREAM ConnectRequest{dest=http://example.com/", &s);
  assert_str(s.req.dest, s.req.dest_len, "http://example.com/");
  ASSERT_METAS(s.req.meta, s.req.nmeta,
               {"HttpMethod", "GET"},
               {"HttpHost", "example.com"},
               {"HttpHeader:Accept", "*/*"});

  golden_open(&g, "DATA STREAM ConnectRequest{dest=10.0.0.1:22", &s);
  assert_str(s.req.dest, s.req.dest_len, "10.0.0.1:22");
  assert_int_equal(s.req.type, WR_CONNECT_TCP);
  ASSERT_METAS(s.req.meta, s.req.nmeta, {"FlowID", "f1"});

  golden_open(&g, "DATA STREAM ConnectRequest{dest=x,", &s);
  assert_str(s.req.dest, s.req.dest_len, "x");
  assert_int_equal(s.req.type, WR_CONNECT_WEBSOCKET);
  assert_int_equal(s.req.has_meta, 0);

  golden_open(&g, "DATA STREAM ConnectResponse{error='',metadata=[HttpStatus=200]}", &s);
  assert_int_equal(s.resp.error_len, 0);
  ASSERT_METAS(s.resp.meta, s.resp.nmeta, {"HttpStatus", "200"});

  golden_open(&g, "DATA STREAM ConnectResponse{error='',metadata=[] ", &s);
  assert_int_equal(s.resp.has_meta, 1);
  assert_int_equal(s.resp.nmeta, 0);

  golden_open(&g, "DATA STREAM ConnectResponse{error='something happened'}", &s);
  assert_str(s.resp.error, s.resp.error_len, "something happened");
  assert_int_equal(s.resp.has_meta, 0);

  golden_open(&g, "DATA STREAM ConnectResponse{error='',metadata=nil}", &s);
  assert_int_equal(s.resp.error_len, 0);
  assert_int_equal(s.resp.has_meta, 0);
  golden_free(&g);
}

/* Null vs empty metadata, built from scratch, give protocol.md's bytes. */
static void test_null_vs_empty(void **state) {
  (void)state;
  size_t n;
  wr_meta dummy;
  /* protocol.md 4.9, without the preamble. */
  uint8_t *want = unit_hex("0000000004000000 0000000000000200 0000000000000000"
                           "0100000007000000 0000000000000200", &n);
  wr_connect_response r = {"", 0, 1, &dummy, 0};
  check_resp_reencode(&r, want, n);
  r.meta = NULL; /* a NULL array with has_meta is still an empty list */
  check_resp_reencode(&r, want, n);
  free(want);

  want = unit_hex("0000000003000000 0000000000000200 0000000000000000 0000000000000000", &n);
  wr_connect_response nul = {"", 0, 0, NULL, 0};
  check_resp_reencode(&nul, want, n);
  free(want);

  want = unit_hex("0000000006000000 0000000000000200 050000009a000000 0000000000000000"
                  "736f6d657468696e 672068617070656e 6564000000000000", &n);
  wr_connect_response err = {"something happened", 18, 0, NULL, 0};
  check_resp_reencode(&err, want, n);
  free(want);

  /* Request with null metadata vs an empty list. */
  wr_connect_request q = {"x", 1, WR_CONNECT_WEBSOCKET, 0, NULL, 0};
  check_req_reencode(&q, NULL, 0);
  q.has_meta = 1;
  check_req_reencode(&q, NULL, 0);
}

static void test_encode_inval(void **state) {
  (void)state;
  wr_buf out;
  wr_meta m = {"k", 1, "v", 1};
  wr_buf_init(&out, 1 << 20, NULL);
  wr_connect_request q = {"x", 1, 0, 0, &m, 1}; /* entries but "null" list */
  assert_int_equal(wr_connect_request_encode(&q, NULL, &out), WR_ERR_INVAL);
  q.has_meta = 1;
  q.meta = NULL;
  assert_int_equal(wr_connect_request_encode(&q, NULL, &out), WR_ERR_INVAL);
  wr_connect_response r = {"", 0, 0, &m, 1};
  assert_int_equal(wr_connect_response_encode(&r, NULL, &out), WR_ERR_INVAL);
  assert_int_equal(out.len, 0);
  /* Output over the buffer's maximum: WR_ERR_LIMIT, buffer unchanged. */
  wr_buf small;
  wr_buf_init(&small, 16, NULL);
  q.meta = &m;
  assert_int_equal(wr_connect_request_encode(&q, NULL, &small), WR_ERR_LIMIT);
  assert_int_equal(small.len, 0);
  wr_buf_free(&small);
  wr_buf_free(&out);
}

/* The allocating decoder and the caller-array bound. */
static void test_alloc_and_limits(void **state) {
  (void)state;
  size_t len, used;
  uint8_t *raw = unit_read_vector("quic/http-post.from-edge.bin", &len);
  wr_connect_request a, b;
  wr_meta meta[7];
  assert_int_equal(wr_connect_request_decode_alloc(raw + 8, len - 8, NULL, NULL, 0, &a, &used), 0);
  assert_int_equal(a.nmeta, 7);
  assert_int_equal(wr_connect_request_decode(raw + 8, len - 8, NULL, &b, meta, 7, &used), 0);
  assert_req_equal(&a, &b);
  wr_connect_request_free(NULL, &a);
  assert_null(a.meta);
  /* One slot short: refused, not truncated. */
  assert_int_equal(wr_connect_request_decode(raw + 8, len - 8, NULL, &b, meta, 6, &used),
                   WR_ERR_LIMIT);
  assert_int_equal(wr_connect_request_decode_alloc(raw + 8, len - 8, NULL, NULL, 6, &a, &used),
                   WR_ERR_LIMIT);
  assert_int_equal(wr_connect_request_decode(raw + 8, len - 8, NULL, &b, NULL, 0, &used),
                   WR_ERR_LIMIT);
  free(raw);

  /* Allocation failures in the allocating decoder leave nothing behind. */
  raw = unit_read_vector("quic/http-get.from-connector.bin", &len);
  wr_connect_response r;
  unit_failmem fm;
  unit_failmem_init(&fm, 0);
  assert_int_equal(wr_connect_response_decode_alloc(raw + 8, len - 8, NULL, &fm.mem, 0, &r, &used),
                   WR_ERR_NOMEM);
  assert_int_equal(fm.live, 0);
  unit_failmem_init(&fm, -1);
  assert_int_equal(wr_connect_response_decode_alloc(raw + 8, len - 8, NULL, &fm.mem, 0, &r, &used),
                   0);
  assert_int_equal(r.nmeta, 6);
  assert_int_equal(fm.live, 1);
  wr_connect_response_free(&fm.mem, &r);
  assert_int_equal(fm.live, 0);
  /* Empty non-null list: has_meta without an allocation. */
  free(raw);
  raw = unit_read_vector("quic/tcp.from-connector.bin", &len);
  unit_failmem_init(&fm, 0);
  assert_int_equal(wr_connect_response_decode_alloc(raw + 8, len - 8, NULL, &fm.mem, 0, &r, &used),
                   0);
  assert_int_equal(r.has_meta, 1);
  assert_null(r.meta);
  assert_int_equal(fm.calls, 0);
  wr_connect_response_free(&fm.mem, &r);
  free(raw);
}

static void test_meta_get(void **state) {
  (void)state;
  wr_meta m[3] = {{"HttpHost", 8, "a", 1}, {"HttpMethod", 10, "GET", 3}, {"HttpHost", 8, "b", 1}};
  size_t n = 0;
  const char *v = wr_meta_find_last(m, 3, "HttpHost", &n);
  assert_non_null(v);
  assert_int_equal(n, 1);
  assert_int_equal(v[0], 'b'); /* last one wins, as MetadataMap */
  assert_null(wr_meta_find_last(m, 3, "HttpHos", NULL));
  assert_null(wr_meta_find_last(m, 0, "HttpHost", NULL));
  assert_non_null(wr_meta_find_last(m, 3, "HttpMethod", NULL));
}

/* ---- malformed input ----------------------------------------------------- */

static const char *const all_vectors[] = {
    "quic/http-get.from-edge.bin",        "quic/http-get.from-connector.bin",
    "quic/http-404-no-rule.from-edge.bin", "quic/http-404-no-rule.from-connector.bin",
    "quic/http-post.from-edge.bin",       "quic/http-post-501.from-connector.bin",
    "quic/websocket.from-edge.bin",       "quic/websocket.from-connector.bin",
    "quic/tcp.from-edge.bin",             "quic/tcp.from-connector.bin",
    "quic/tcp-bad-dest.from-edge.bin",    "quic/tcp-dial-error.from-connector.bin",
};

static int is_request_vector(const char *name) { return strstr(name, "from-edge") != NULL; }

/* Every proper prefix of a message needs more bytes; nothing is read past
 * the given length (ASan checks that on the heap copy). */
static void test_truncated(void **state) {
  (void)state;
  for (size_t v = 0; v < sizeof(all_vectors) / sizeof(all_vectors[0]); v++) {
    stream s;
    int is_req = is_request_vector(all_vectors[v]);
    open_stream(&s, all_vectors[v], is_req);
    for (size_t cut = 0; cut < s.msg_len; cut++) {
      uint8_t *copy = malloc(cut ? cut : 1);
      stream d;
      size_t used;
      memcpy(copy, s.msg, cut);
      assert_int_equal(msg_decode(&d, is_req, copy, cut, &used), WR_AGAIN);
      free(copy);
    }
    close_stream(&s);
  }
}

/* Decodes |msg| both ways; any result is fine as long as it is a defined
 * code, and a successful decode must survive an encode/decode round trip. */
static int decode_any(const uint8_t *msg, size_t len, int is_req) {
  stream s;
  size_t used = 0;
  int rv = msg_decode(&s, is_req, msg, len, &used);
  if (rv == 0) {
    assert_true(used <= len);
    check_reencode(&s, NULL, 0);
  }
  return rv;
}

static void test_corrupt_every_byte(void **state) {
  (void)state;
  static const uint8_t xors[] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff};
  for (size_t v = 0; v < sizeof(all_vectors) / sizeof(all_vectors[0]); v++) {
    stream s;
    int is_req = is_request_vector(all_vectors[v]);
    open_stream(&s, all_vectors[v], is_req);
    size_t total = s.msg_len;
    uint8_t *copy = malloc(total);
    for (size_t i = 0; i < total; i++) {
      for (size_t x = 0; x < sizeof(xors); x++) {
        memcpy(copy, s.msg, total);
        copy[i] ^= xors[x];
        int rv = decode_any(copy, total, is_req);
        assert_true(rv == 0 || (rv < 0 && rv >= WR_ERR_INTERNAL));
      }
    }
    free(copy);
    close_stream(&s);
  }
}

static void expect_req_error(const char *hex, int want) {
  size_t n, used;
  uint8_t *msg = unit_hex(hex, &n);
  wr_connect_request q;
  wr_meta meta[MAXM];
  assert_int_equal(wr_connect_request_decode(msg, n, NULL, &q, meta, MAXM, &used), want);
  free(msg);
}

static void test_malformed(void **state) {
  (void)state;
  /* The golden {dest=tunnel.com, [key=1234]} request, then variations. */
  const char *ok = "000000000b000000 0000000001000200 0000000000000000 050000005a000000"
                   "0900000017000000 74756e6e656c2e63 6f6d000000000000 0400000000000200"
                   "0500000022000000 050000002a000000 6b65790000000000 3132333400000000";
  expect_req_error(ok, 0);
  /* dest without its NUL ("tunnel.com" + 'X'). */
  expect_req_error("000000000b000000 0000000001000200 0000000000000000 050000005a000000"
                   "0900000017000000 74756e6e656c2e63 6f6d580000000000 0400000000000200"
                   "0500000022000000 050000002a000000 6b65790000000000 3132333400000000",
                   WR_ERR_PROTO);
  /* metadata key with an embedded NUL. */
  expect_req_error("000000000b000000 0000000001000200 0000000000000000 050000005a000000"
                   "0900000017000000 74756e6e656c2e63 6f6d000000000000 0400000000000200"
                   "0500000022000000 050000002a000000 6b00790000000000 3132333400000000",
                   WR_ERR_PROTO);
  /* dest as a 16-bit list (wrong element size for Text). */
  expect_req_error("000000000b000000 0000000001000200 0000000000000000 050000005b000000"
                   "0900000017000000 74756e6e656c2e63 6f6d000000000000 0400000000000200"
                   "0500000022000000 050000002a000000 6b65790000000000 3132333400000000",
                   WR_ERR_PROTO);
  /* dest pointing at a struct. */
  expect_req_error("000000000b000000 0000000001000200 0000000000000000 0400000001000000"
                   "0900000017000000 74756e6e656c2e63 6f6d000000000000 0400000000000200"
                   "0500000022000000 050000002a000000 6b65790000000000 3132333400000000",
                   WR_ERR_PROTO);
  /* dest offset past the end of the segment. */
  expect_req_error("000000000b000000 0000000001000200 0000000000000000 050100005a000000"
                   "0900000017000000 74756e6e656c2e63 6f6d000000000000 0400000000000200"
                   "0500000022000000 050000002a000000 6b65790000000000 3132333400000000",
                   WR_ERR_BOUNDS);
  /* metadata tag claims 5 elements of {0,2} in a 2-word list. */
  expect_req_error("000000000b000000 0000000001000200 0000000000000000 050000005a000000"
                   "0900000017000000 74756e6e656c2e63 6f6d000000000000 1400000000000200"
                   "0500000022000000 050000002a000000 6b65790000000000 3132333400000000",
                   WR_ERR_BOUNDS);
  /* metadata as a list of bits (cannot be read as structs). */
  expect_req_error("000000000b000000 0000000001000200 0000000000000000 050000005a000000"
                   "0900000011000000 74756e6e656c2e63 6f6d000000000000 0400000000000200"
                   "0500000022000000 050000002a000000 6b65790000000000 3132333400000000",
                   WR_ERR_PROTO);
  /* Root pointer is a list. */
  expect_req_error("0000000002000000 0100000002000000 0000000000000000", WR_ERR_PROTO);
  /* Segment table claims more words than the limit allows. */
  expect_req_error("00000000ffffff7f 0000000000000000", WR_ERR_LIMIT);
  /* 2 segments with a missing padding word: incomplete. */
  expect_req_error("0100000001000000 01000000", WR_AGAIN);
  /* A root struct whose only pointer is the root pointer itself: dest is
   * then a struct pointer. */
  expect_req_error("0000000001000000 fcffffff00000100", WR_ERR_PROTO);

  /* Oversize metadata list: 2000 empty entries (bigger than the default
   * bound of the allocating decoder). */
  {
    size_t count = 2000, words = 4 + 1 + count * 2; /* root ptr, {1,2}, tag, elements */
    size_t n = 8 + words * 8;
    uint8_t *m = calloc(1, n);
    m[4] = (uint8_t)words;
    m[5] = (uint8_t)(words >> 8);
    /* root -> {1,2} at word 1 */
    uint8_t root[8] = {0, 0, 0, 0, 1, 0, 2, 0};
    memcpy(m + 8, root, 8);
    /* ptr1 (word 3) -> composite list right after it, count*2 words */
    uint64_t lp = 1 | (uint64_t)7 << 32 | (uint64_t)(count * 2) << 35;
    for (int i = 0; i < 8; i++) m[8 + 3 * 8 + i] = (uint8_t)(lp >> (8 * i));
    uint64_t tag = (uint64_t)count << 2 | (uint64_t)2 << 48;
    for (int i = 0; i < 8; i++) m[8 + 4 * 8 + i] = (uint8_t)(tag >> (8 * i));
    wr_connect_request q;
    wr_meta meta[MAXM];
    size_t used;
    assert_int_equal(wr_connect_request_decode(m, n, NULL, &q, meta, MAXM, &used), WR_ERR_LIMIT);
    assert_int_equal(wr_connect_request_decode_alloc(m, n, NULL, NULL, 0, &q, &used), WR_ERR_LIMIT);
    assert_int_equal(wr_connect_request_decode_alloc(m, n, NULL, NULL, 4000, &q, &used), 0);
    assert_int_equal(q.nmeta, count);
    assert_int_equal(q.meta[1999].key_len, 0);
    wr_connect_request_free(NULL, &q);
    free(m);
  }
}

/* ---- allocation failures -------------------------------------------------- */

/* Encodes |s|'s message with the 1st, 2nd, ... allocation failing until a
 * run succeeds: each failure is WR_ERR_NOMEM with nothing written, and the
 * success gives |want| (when given); nothing is left allocated. */
static void check_encode_failmem(const stream *s, const uint8_t *want, size_t want_len) {
  int ok = 0;
  for (long n = 0; n < 100 && !ok; n++) {
    unit_failmem fm;
    wr_buf out;
    unit_failmem_init(&fm, n);
    wr_buf_init(&out, 1 << 20, &fm.mem);
    int rv = s->is_req ? wr_connect_request_encode(&s->req, &fm.mem, &out)
                       : wr_connect_response_encode(&s->resp, &fm.mem, &out);
    if (rv == 0) {
      ok = 1;
      if (want) {
        assert_int_equal(out.len, want_len);
        assert_memory_equal(out.data, want, want_len);
      }
    } else {
      assert_int_equal(rv, WR_ERR_NOMEM);
      assert_int_equal(out.len, 0);
    }
    wr_buf_free(&out);
    assert_int_equal(fm.live, 0);
  }
  assert_true(ok);
}

static void test_encode_failmem(void **state) {
  (void)state;
  stream s;
  open_stream(&s, "quic/http-get.from-connector.bin", 0);
  check_encode_failmem(&s, s.msg, s.msg_len);
  close_stream(&s);
  open_stream(&s, "quic/websocket.from-edge.bin", 1);
  check_encode_failmem(&s, NULL, 0);
  close_stream(&s);
}

/* proto/stream_head: preamble + ConnectResponse, fed one byte at a time,
 * with payload after it; a wrong preamble; a malformed response. */
static void test_stream_head(void **state) {
  wr_buf b;
  wr_buf_init(&b, 1 << 16, NULL);
  uint8_t pre[WR_PREAMBLE_DATA_LEN];
  assert_int_equal(wr_preamble_write(WR_PREAMBLE_DATA, pre, sizeof(pre)), WR_PREAMBLE_DATA_LEN);
  wr_buf_append(&b, pre, sizeof(pre));
  wr_connect_response in = {.error = "nope", .error_len = 4, .has_meta = 1};
  assert_int_equal(wr_connect_response_encode(&in, NULL, &b), WR_OK);
  size_t head_len = b.len;
  wr_buf_append(&b, "payload", 7);
  wr_connect_response cr;
  size_t used = 99;
  int bad = 1;
  for (size_t n = 0; n < head_len; n++) {
    assert_int_equal(wr_stream_head_decode(b.data, n, &cr, &used, &bad), WR_AGAIN);
    assert_int_equal(bad, 0);
  }
  assert_int_equal(wr_stream_head_decode(b.data, b.len, &cr, &used, &bad), WR_OK);
  assert_int_equal(used, head_len);
  assert_int_equal(cr.error_len, 4);
  assert_memory_equal(cr.error, "nope", 4);
  wr_connect_response_free(NULL, &cr);
  b.data[0] ^= 0xff;
  assert_int_equal(wr_stream_head_decode(b.data, b.len, &cr, &used, &bad), WR_ERR_PROTO);
  assert_int_equal(bad, 1);
  b.data[0] ^= 0xff;
  memset(b.data + 8, 0xff, 8); /* a segment table no decoder accepts */
  int rv = wr_stream_head_decode(b.data, b.len, &cr, &used, &bad);
  assert_true(rv != WR_OK && rv != WR_AGAIN);
  assert_int_equal(bad, 0);
  wr_buf_free(&b);
}

/* A stream's request head with |method| (NULL: no HttpMethod) and |type|. */
static void request_head(wr_buf *b, const char *method, uint16_t type) {
  uint8_t pre[WR_PREAMBLE_DATA_LEN];
  assert_int_equal(wr_preamble_write(WR_PREAMBLE_DATA, pre, sizeof(pre)), WR_PREAMBLE_DATA_LEN);
  b->len = 0;
  wr_buf_append(b, pre, sizeof(pre));
  wr_meta m[2] = {{.key = "HttpHost", .key_len = 8, .val = "x", .val_len = 1},
                  {.key = "HttpMethod", .key_len = 10, .val = method,
                   .val_len = method ? strlen(method) : 0}};
  wr_connect_request q = {.dest = "http://x/", .dest_len = 9, .type = type, .has_meta = 1,
                          .meta = m, .nmeta = method ? 2 : 1};
  assert_int_equal(wr_connect_request_encode(&q, NULL, b), WR_OK);
}

/* Which forwarded requests may be sent twice: idempotent HTTP methods of
 * HTTP and WebSocket streams; nothing incomplete, TCP, or malformed. */
static void test_request_idempotent(void **state) {
  wr_buf b;
  wr_buf_init(&b, 1 << 16, NULL);
  const char *yes[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", NULL};
  const char *no[] = {"POST", "PATCH", "CONNECT", "get", "GETX"};
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    request_head(&b, yes[i], WR_CONNECT_HTTP);
    assert_int_equal(wr_stream_request_idempotent(b.data, b.len), 1);
  }
  for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
    request_head(&b, no[i], WR_CONNECT_HTTP);
    assert_int_equal(wr_stream_request_idempotent(b.data, b.len), 0);
  }
  request_head(&b, "GET", WR_CONNECT_WEBSOCKET);
  assert_int_equal(wr_stream_request_idempotent(b.data, b.len), 1);
  request_head(&b, "GET", WR_CONNECT_TCP);
  assert_int_equal(wr_stream_request_idempotent(b.data, b.len), 0);
  request_head(&b, "GET", WR_CONNECT_HTTP);
  assert_int_equal(wr_stream_request_idempotent(b.data, b.len - 1), 0); /* incomplete */
  b.data[0] ^= 0xff;
  assert_int_equal(wr_stream_request_idempotent(b.data, b.len), 0); /* not a data stream */
  assert_int_equal(wr_stream_request_idempotent(NULL, 0), 0);
  wr_buf_free(&b);
}

int main(void) {
  return UNIT_RUN(
      NULL, NULL,
      UNIT_TESTS(test_http_get, test_http_404, test_http_post, test_websocket, test_tcp,
                 test_tcp_errors, test_golden, test_null_vs_empty, test_encode_inval,
                 test_alloc_and_limits, test_meta_get, test_truncated, test_corrupt_every_byte,
                 test_malformed, test_encode_failmem, test_stream_head, test_request_idempotent));
}
