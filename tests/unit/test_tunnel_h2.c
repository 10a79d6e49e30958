/* HTTP/2 transport of the edge: the QUIC-shaped stream heads <-> cloudflared's
 * HTTP/2 conventions (edge/tunnel_h2_msg.h), checked against the captured
 * HTTP/2 connection of the real cloudflared (tests/vectors/http2). */
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "edge/tunnel_h2_msg.h"
#include "lib/err.h"
#include "proto/connect.h"
#include "proto/metadata.h"
#include "proto/preamble.h"
#include "unit.h"

/* ---- helpers ------------------------------------------------------------------ */

static const char *nv_get(const wr_h2_request *r, const char *name) {
  for (size_t i = 0; i < r->nnv; i++)
    if (r->nv[i].namelen == strlen(name) && memcmp(r->nv[i].name, name, r->nv[i].namelen) == 0)
      return (const char *)r->nv[i].value;
  return NULL;
}

/* Decodes preamble + ConnectResponse. */
static wr_connect_response decode_resp(const wr_buf *b) {
  size_t pre = 0, used = 0;
  wr_connect_response r;
  assert_int_equal(wr_preamble_classify(b->data, b->len, &pre, NULL), WR_PREAMBLE_DATA);
  assert_int_equal(wr_connect_response_decode_alloc(b->data + pre, b->len - pre, NULL, NULL, 0,
                                                    &r, &used),
                   WR_OK);
  assert_int_equal(pre + used, b->len);
  return r;
}

static const char *meta(const wr_connect_response *r, const char *key) {
  size_t n;
  return wr_meta_find_last(r->meta, r->nmeta, key, &n);
}

/* ---- requests ------------------------------------------------------------------ */

static void test_http_request_headers(void **state) {
  (void)state;
  wr_meta m[] = {
      {"HttpMethod", 10, "GET", 3},
      {"HttpHost", 8, "app.example.test", 16},
      {"HttpHeader:Accept", 17, "*/*", 3},
      {"HttpHeader:User-Agent", 21, "curl/7.88.1", 11},
      {"HttpHeader:Connection", 21, "keep-alive", 10},
      {"HttpHeader:Transfer-Encoding", 28, "chunked", 7},
      /* A visitor must not pick the request type on the connector. */
      {"HttpHeader:Cf-Cloudflared-Proxy-Connection-Upgrade", 50, "update-configuration", 20},
      {"HttpHeader:Cf-Cloudflared-Proxy-Src", 35, "1.2.3.4", 7},
  };
  wr_connect_request req = {.dest = "https://app.example.test/index.html", .dest_len = 35,
                            .type = WR_CONNECT_HTTP, .has_meta = 1, .meta = m,
                            .nmeta = sizeof(m) / sizeof(m[0])};
  wr_h2_request h;
  assert_int_equal(wr_h2_request_build(&req, NULL, &h), WR_OK);
  /* As the captured edge's stream 3 (decoded.txt). */
  assert_string_equal(nv_get(&h, ":method"), "GET");
  assert_string_equal(nv_get(&h, ":scheme"), "https");
  assert_string_equal(nv_get(&h, ":authority"), "app.example.test");
  assert_string_equal(nv_get(&h, ":path"), "/index.html");
  assert_string_equal(nv_get(&h, "accept"), "*/*");
  assert_string_equal(nv_get(&h, "user-agent"), "curl/7.88.1");
  assert_null(nv_get(&h, "connection"));
  assert_null(nv_get(&h, "transfer-encoding"));
  assert_null(nv_get(&h, "cf-cloudflared-proxy-connection-upgrade"));
  assert_null(nv_get(&h, "cf-cloudflared-proxy-src"));
  /* Pseudo-headers first (RFC 9113 8.3). */
  for (size_t i = 0; i < 4; i++) assert_int_equal(h.nv[i].name[0], ':');
  assert_int_equal(h.nnv, 6);
  wr_h2_request_free(&h);
}

static void test_websocket_and_tcp_requests(void **state) {
  (void)state;
  wr_meta m[] = {{"HttpMethod", 10, "GET", 3},
                 {"HttpHost", 8, "ws.example.test", 15},
                 {"HttpHeader:Sec-WebSocket-Key", 28, "BLaGadlPy87luQpjWTPcWQ==", 24},
                 {"HttpHeader:Upgrade", 18, "websocket", 9}};
  wr_connect_request req = {.dest = "https://ws.example.test/ws", .dest_len = 26,
                            .type = WR_CONNECT_WEBSOCKET, .has_meta = 1, .meta = m, .nmeta = 4};
  wr_h2_request h;
  assert_int_equal(wr_h2_request_build(&req, NULL, &h), WR_OK);
  assert_string_equal(nv_get(&h, "cf-cloudflared-proxy-connection-upgrade"), "websocket");
  assert_string_equal(nv_get(&h, "sec-websocket-key"), "BLaGadlPy87luQpjWTPcWQ==");
  assert_string_equal(nv_get(&h, ":path"), "/ws");
  assert_null(nv_get(&h, "upgrade"));
  wr_h2_request_free(&h);

  wr_meta t[] = {{"FlowID", 6, "f1", 2}, {"cf-trace-id", 11, "abc:1:0:1", 9}};
  wr_connect_request tcp = {.dest = "10.0.0.5:22", .dest_len = 11, .type = WR_CONNECT_TCP,
                            .has_meta = 1, .meta = t, .nmeta = 2};
  assert_int_equal(wr_h2_request_build(&tcp, "192.0.2.1", &h), WR_OK);
  assert_string_equal(nv_get(&h, ":authority"), "10.0.0.5:22");
  assert_string_equal(nv_get(&h, "cf-cloudflared-proxy-src"), "192.0.2.1");
  assert_string_equal(nv_get(&h, "cf-trace-id"), "abc:1:0:1");
  wr_h2_request_free(&h);

  tcp.type = 7;
  assert_int_equal(wr_h2_request_build(&tcp, NULL, &h), WR_ERR_UNSUPPORTED);
  wr_meta bad[] = {{"HttpHeader:Bad Name", 19, "x", 1}};
  req.type = WR_CONNECT_HTTP;
  req.meta = bad;
  req.nmeta = 1;
  assert_int_equal(wr_h2_request_build(&req, NULL, &h), WR_ERR_PROTO);
}

/* ---- responses, from the captured connector bytes --------------------------------- */

typedef struct capture {
  int status[8];
  char *uh[8];
  char *meta[8];
} capture;

static int cap_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                      size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user) {
  capture *c = user;
  int32_t id = f->hd.stream_id;
  if (id < 1 || id > 7) return 0;
  if (nlen == 7 && memcmp(name, ":status", 7) == 0) c->status[id] = atoi((const char *)value);
  if (nlen == 31 && memcmp(name, "cf-cloudflared-response-headers", 31) == 0)
    c->uh[id] = strndup((const char *)value, vlen);
  if (nlen == 28 && memcmp(name, "cf-cloudflared-response-meta", 28) == 0)
    c->meta[id] = strndup((const char *)value, vlen);
  return 0;
}

static void test_captured_responses(void **state) {
  (void)state;
  capture cap;
  memset(&cap, 0, sizeof(cap));
  nghttp2_session_callbacks *cb;
  nghttp2_session *s;
  assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
  nghttp2_session_callbacks_set_on_header_callback(cb, cap_header);
  assert_int_equal(nghttp2_session_client_new(&s, cb, &cap), 0);
  nghttp2_session_callbacks_del(cb);
  /* The edge's side of the capture: SETTINGS (acknowledged in the capture),
   * streams 1, 3, 5, 7. */
  assert_int_equal(nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0), 0);
  /* Requests: the edge's side of the capture opened streams 1, 3, 5, 7. */
  nghttp2_nv nv[] = {{(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0},
                     {(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0},
                     {(uint8_t *)":authority", (uint8_t *)"h2.cftunnel.com", 10, 15, 0},
                     {(uint8_t *)":path", (uint8_t *)"/", 5, 1, 0}};
  for (int i = 0; i < 4; i++) assert_int_equal(nghttp2_submit_request(s, NULL, nv, 4, NULL, NULL),
                                                1 + 2 * i);
  const uint8_t *out;
  while (nghttp2_session_mem_send(s, &out) > 0) {
  }
  size_t n;
  uint8_t *b = unit_read_vector("http2/connection.from-connector.bin", &n);
  assert_int_equal(nghttp2_session_mem_recv(s, b, n), (ssize_t)n);
  free(b);
  nghttp2_session_del(s);
  assert_int_equal(cap.status[1], 200);

  /* Stream 3: a plain GET answered by the origin. */
  assert_int_equal(wr_h2_meta_is_cloudflared(cap.meta[3], strlen(cap.meta[3])), 0);
  wr_buf out3;
  wr_buf_init(&out3, 1u << 20, NULL);
  wr_h2_response_head h = {.status = cap.status[3], .user_headers = cap.uh[3],
                           .user_headers_len = strlen(cap.uh[3])};
  assert_int_equal(wr_h2_response_to_connect(WR_CONNECT_HTTP, &h, &out3), WR_OK);
  wr_connect_response r = decode_resp(&out3);
  assert_int_equal(r.error_len, 0);
  assert_int_equal(r.nmeta, 6);
  assert_string_equal(r.meta[0].key, "HttpStatus");
  assert_string_equal(r.meta[0].val, "200");
  assert_string_equal(meta(&r, "HttpHeader:Content-Type"), "text/html");
  assert_string_equal(meta(&r, "HttpHeader:Content-Length"), "18");
  assert_string_equal(meta(&r, "HttpHeader:Server"), "SimpleHTTP/0.6 Python/3.11.7");
  wr_connect_response_free(NULL, &r);
  wr_buf_free(&out3);

  /* Stream 7: the WebSocket; 200 on HTTP/2 is the origin's 101. */
  wr_buf out7;
  wr_buf_init(&out7, 1u << 20, NULL);
  h = (wr_h2_response_head){.status = cap.status[7], .user_headers = cap.uh[7],
                            .user_headers_len = strlen(cap.uh[7])};
  assert_int_equal(wr_h2_response_to_connect(WR_CONNECT_WEBSOCKET, &h, &out7), WR_OK);
  r = decode_resp(&out7);
  assert_string_equal(r.meta[0].val, "101");
  assert_string_equal(meta(&r, "HttpHeader:Sec-Websocket-Accept"), "p0rr9XRITXzkhJW8Dr6/ALVhB/Q=");
  assert_string_equal(meta(&r, "HttpHeader:Upgrade"), "websocket");
  wr_connect_response_free(NULL, &r);
  wr_buf_free(&out7);
  for (int i = 0; i < 8; i++) {
    free(cap.uh[i]);
    free(cap.meta[i]);
  }
}

static void test_error_and_tcp_responses(void **state) {
  (void)state;
  wr_buf b;
  wr_buf_init(&b, 1u << 20, NULL);
  const char *m = "{\"src\":\"cloudflared\"}";
  wr_h2_response_head h = {.status = 502, .user_headers = "", .user_headers_len = 0,
                           .cloudflared_error = wr_h2_meta_is_cloudflared(m, strlen(m))};
  assert_int_equal(h.cloudflared_error, 1);
  assert_int_equal(wr_h2_response_to_connect(WR_CONNECT_HTTP, &h, &b), WR_OK);
  wr_connect_response r = decode_resp(&b);
  assert_true(r.error_len > 0);
  assert_int_equal(r.has_meta, 0);
  wr_connect_response_free(NULL, &r);

  /* A 502 from the origin is an ordinary response. */
  wr_buf_reset(&b);
  h.cloudflared_error = wr_h2_meta_is_cloudflared("{\"src\":\"origin\"}", 16);
  assert_int_equal(wr_h2_response_to_connect(WR_CONNECT_HTTP, &h, &b), WR_OK);
  r = decode_resp(&b);
  assert_int_equal(r.error_len, 0);
  assert_string_equal(r.meta[0].val, "502");
  assert_int_equal(r.nmeta, 1);
  wr_connect_response_free(NULL, &r);

  /* TCP: the ack is the empty, non-null list. */
  wr_buf_reset(&b);
  h = (wr_h2_response_head){.status = 200};
  assert_int_equal(wr_h2_response_to_connect(WR_CONNECT_TCP, &h, &b), WR_OK);
  r = decode_resp(&b);
  assert_int_equal(r.error_len, 0);
  assert_int_equal(r.has_meta, 1);
  assert_int_equal(r.nmeta, 0);
  wr_connect_response_free(NULL, &r);

  /* Malformed serialized headers: counted as a protocol error, nothing out. */
  wr_buf_reset(&b);
  h = (wr_h2_response_head){.status = 200, .user_headers = "YQ:Yg:Yw", .user_headers_len = 8};
  assert_int_equal(wr_h2_response_to_connect(WR_CONNECT_HTTP, &h, &b), WR_ERR_PROTO);
  h.user_headers = "YQ";
  h.user_headers_len = 2;
  assert_int_equal(wr_h2_response_to_connect(WR_CONNECT_HTTP, &h, &b), WR_ERR_PROTO);
  h.user_headers = "Y!:Yg";
  h.user_headers_len = 5;
  assert_int_equal(wr_h2_response_to_connect(WR_CONNECT_HTTP, &h, &b), WR_ERR_PROTO);
  /* Empty pairs are skipped. */
  h.user_headers = ";YQ:Yg;;";
  h.user_headers_len = 8;
  assert_int_equal(wr_h2_response_to_connect(WR_CONNECT_HTTP, &h, &b), WR_OK);
  r = decode_resp(&b);
  assert_string_equal(meta(&r, "HttpHeader:a"), "b");
  wr_connect_response_free(NULL, &r);
  wr_buf_free(&b);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_TESTS(test_http_request_headers, test_websocket_and_tcp_requests,
                             test_captured_responses, test_error_and_tcp_responses));
}
