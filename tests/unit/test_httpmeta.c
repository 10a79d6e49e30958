/* HTTP <-> ConnectRequest/ConnectResponse metadata and the HTTP/2
 * transport's serialized response headers (protocol.md 4.3, 4.4, 7.4). */
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "proto/connect.h"
#include "proto/fields.h"
#include "proto/httpmeta.h"
#include "proto/preamble.h"
#include "unit.h"

#define H(n, v) {n, sizeof(n) - 1, v, sizeof(v) - 1}
#define M(k, v) {k, sizeof(k) - 1, v, sizeof(v) - 1}
#define N(a) (sizeof(a) / sizeof((a)[0]))

static void assert_meta(const wr_meta *m, const char *key, const char *val) {
  assert_int_equal(m->key_len, strlen(key));
  assert_memory_equal(m->key, key, m->key_len);
  assert_int_equal(m->val_len, strlen(val));
  if (m->val_len) assert_memory_equal(m->val, val, m->val_len);
}

/* A decoded request head: |method| (case kept), |host| and |nheaders|. */
static void assert_req(const wr_httpmeta_request *r, const char *method, const char *host,
                       size_t nheaders) {
  assert_int_equal(r->method_len, strlen(method));
  assert_memory_equal(r->method, method, r->method_len);
  assert_int_equal(r->host_len, strlen(host));
  assert_memory_equal(r->host, host, r->host_len);
  assert_int_equal(r->nheaders, nheaders);
}

static void assert_header(const wr_http_header *h, const char *name, const char *value) {
  assert_int_equal(h->name_len, strlen(name));
  if (h->name_len) assert_memory_equal(h->name, name, h->name_len);
  assert_int_equal(h->value_len, strlen(value));
  if (h->value_len) assert_memory_equal(h->value, value, h->value_len);
}

static void test_canonical_key(void **state) {
  (void)state;
  static const struct {
    const char *in, *want;
  } cases[] = {
      {"content-type", "Content-Type"},
      {"CONTENT-TYPE", "Content-Type"},
      {"x-Forwarded-FOR", "X-Forwarded-For"},
      {"sec-websocket-key", "Sec-Websocket-Key"}, /* as in the websocket capture */
      {"user-agent", "User-Agent"},
      {"-foo", "-Foo"},
      {"foo--bar", "Foo--Bar"},
      {"1abc-2DEF", "1abc-2def"},
      {"a_b.c~d", "A_b.c~d"},
      /* Not a token: left alone (Go: space, ':', controls, non-ASCII). */
      {"foo bar", "foo bar"},
      {"empty values", "empty values"},
      {"a:b", "a:b"},
      {"x\xc3\xbc", "x\xc3\xbc"},
      {"", ""},
  };
  for (size_t i = 0; i < N(cases); i++) {
    char buf[64];
    size_t n = strlen(cases[i].in);
    memset(buf, 0, sizeof(buf));
    wr_httpmeta_canonical_key(cases[i].in, n, buf);
    assert_string_equal(buf, cases[i].want);
    /* In place. */
    memcpy(buf, cases[i].in, n + 1);
    wr_httpmeta_canonical_key(buf, n, buf);
    assert_string_equal(buf, cases[i].want);
  }
  assert_true(wr_httpmeta_is_token("GET", 3));
  assert_true(wr_httpmeta_is_token("get", 3));
  assert_false(wr_httpmeta_is_token("", 0));
  assert_false(wr_httpmeta_is_token("G T", 3));
  assert_false(wr_httpmeta_is_token("a:b", 3));
}

/* ---- request, edge side ---- */

static void test_req_encode_capture(void **state) {
  wr_buf *arena = *state;
  /* http-get.from-edge.bin carries exactly these entries. */
  const wr_http_header h[] = {H("user-agent", "curl/7.88.1"), H("accept", "*/*")};
  wr_meta m[8];
  assert_int_equal(
      wr_httpmeta_req_encode("GET", 3, "app.example.test", 16, h, N(h), 0, arena, m, N(m)), 4);
  assert_meta(&m[0], "HttpMethod", "GET");
  assert_meta(&m[1], "HttpHost", "app.example.test");
  assert_meta(&m[2], "HttpHeader:User-Agent", "curl/7.88.1");
  assert_meta(&m[3], "HttpHeader:Accept", "*/*");
  assert_ptr_equal(m[2].val, h[0].value); /* values are not copied */
  assert_int_equal(m[2].key[m[2].key_len], '\0');

  /* websocket.from-edge.bin: Upgrade and Connection are kept for websocket. */
  const wr_http_header ws[] = {
      H("Upgrade", "websocket"), H("Connection", "Upgrade"),
      H("sec-websocket-key", "WTSl10wFwrcxLjHkjO+sNA=="), H("Sec-WebSocket-Version", "13")};
  wr_buf_reset(arena);
  assert_int_equal(wr_httpmeta_req_encode("GET", 3, "ws.example.test", 15, ws, N(ws),
                                          WR_HTTPMETA_REQ_WEBSOCKET, arena, m, N(m)),
                   6);
  assert_meta(&m[2], "HttpHeader:Upgrade", "websocket");
  assert_meta(&m[3], "HttpHeader:Connection", "Upgrade");
  assert_meta(&m[4], "HttpHeader:Sec-Websocket-Key", "WTSl10wFwrcxLjHkjO+sNA==");
  assert_meta(&m[5], "HttpHeader:Sec-Websocket-Version", "13");
  /* Without the flag they are hop-by-hop. */
  wr_buf_reset(arena);
  assert_int_equal(wr_httpmeta_req_encode("GET", 3, "ws.example.test", 15, ws, N(ws), 0, arena,
                                          m, N(m)),
                   4);
  assert_meta(&m[2], "HttpHeader:Sec-Websocket-Key", "WTSl10wFwrcxLjHkjO+sNA==");
}

static void test_req_encode_filters(void **state) {
  wr_buf *arena = *state;
  /* An HTTP/2 eyeball request (stream 3 of http2/decoded.txt) plus
   * everything hop-by-hop. */
  const wr_http_header h[] = {
      H(":authority", "app.example.test"), H(":method", "POST"), H(":path", "/index.html"),
      H(":scheme", "https"), H("accept", "*/*"), H("Host", "evil.example"),
      H("connection", "keep-alive, X-Drop-Me"), H("Keep-Alive", "timeout=5"),
      H("x-drop-me", "1"), H("TE", "trailers"), H("Trailer", "X-T"),
      H("Transfer-Encoding", "chunked"), H("Upgrade", "h2c"), H("Proxy-Connection", "x"),
      H("Proxy-Authorization", "Basic Zm9v"), H("Proxy-Authenticate", "x"),
      H("cf-ray", "abc-REF"), H("content-type", "text/plain"), H("accept", "text/html")};
  wr_meta m[32];
  int n = wr_httpmeta_req_encode("POST", 4, "app.example.test", 16, h, N(h),
                                 WR_HTTPMETA_REQ_CHUNKED, arena, m, N(m));
  assert_int_equal(n, 8);
  assert_meta(&m[0], "HttpMethod", "POST");
  assert_meta(&m[1], "HttpHost", "app.example.test");
  assert_meta(&m[2], "HttpHeader:Accept", "*/*");
  assert_meta(&m[3], "HttpHeader:Cf-Ray", "abc-REF");
  assert_meta(&m[4], "HttpHeader:Content-Type", "text/plain");
  assert_meta(&m[5], "HttpHeader:Accept", "text/html"); /* one entry per value */
  /* TE is hop-by-hop, but "trailers" is set again, as Go's reverse proxy
   * does (gRPC origins refuse requests without it). */
  assert_meta(&m[6], "HttpHeader:Te", "trailers");
  assert_meta(&m[7], "HttpHeader:Transfer-Encoding", "chunked");

  /* Any other TE value goes, and "trailers" is found among several. */
  const wr_http_header te[] = {H("te", "gzip"), H("Te", "deflate;q=0.5 ,  trailers")};
  wr_buf_reset(arena);
  assert_int_equal(wr_httpmeta_req_encode("GET", 3, "h", 1, te, 1, 0, arena, m, N(m)), 2);
  wr_buf_reset(arena);
  assert_int_equal(wr_httpmeta_req_encode("GET", 3, "h", 1, te, 2, 0, arena, m, N(m)), 3);
  assert_meta(&m[2], "HttpHeader:Te", "trailers");

  /* Errors: method, header names that cannot survive the ':' split,
   * output space. */
  const wr_http_header colon[] = {H("a:b", "x")};
  const wr_http_header empty[] = {H("", "x")};
  assert_int_equal(wr_httpmeta_req_encode("G T", 3, "h", 1, NULL, 0, 0, arena, m, N(m)),
                   WR_ERR_INVAL);
  assert_int_equal(wr_httpmeta_req_encode("", 0, "h", 1, NULL, 0, 0, arena, m, N(m)),
                   WR_ERR_INVAL);
  assert_int_equal(wr_httpmeta_req_encode("GET", 3, "h", 1, colon, 1, 0, arena, m, N(m)),
                   WR_ERR_INVAL);
  assert_int_equal(wr_httpmeta_req_encode("GET", 3, "h", 1, empty, 1, 0, arena, m, N(m)),
                   WR_ERR_INVAL);
  assert_int_equal(wr_httpmeta_req_encode("GET", 3, "h", 1, h, N(h), 0, arena, m, 6),
                   WR_ERR_LIMIT);
  assert_int_equal(wr_httpmeta_req_encode("GET", 3, "h", 1, h, N(h), 0, arena, m, 7), 7);
  assert_int_equal(wr_httpmeta_req_encode("GET", 3, "", 0, NULL, 0, 0, arena, m, 1),
                   WR_ERR_LIMIT);
  assert_int_equal(wr_httpmeta_req_encode("GET", 3, NULL, 0, NULL, 0, 0, arena, m, 2), 2);
  assert_meta(&m[1], "HttpHost", "");

  /* The arena's limit and allocation failures. */
  wr_buf small;
  wr_buf_init(&small, 20, NULL);
  assert_int_equal(wr_httpmeta_req_encode("GET", 3, "h", 1, h, N(h), 0, &small, m, N(m)),
                   WR_ERR_LIMIT);
  wr_buf_free(&small);
  unit_failmem fm;
  unit_failmem_init(&fm, 0);
  wr_buf_init(&small, 4096, &fm.mem);
  assert_int_equal(wr_httpmeta_req_encode("GET", 3, "h", 1, h, N(h), 0, &small, m, N(m)),
                   WR_ERR_NOMEM);
  assert_int_equal(fm.live, 0);
  wr_buf_free(&small);
}

/* ---- request, connector side ---- */

static void test_req_decode(void **state) {
  (void)state;
  /* http-post.from-edge.bin: note Content-Length appears twice. */
  const wr_meta post[] = {
      M("HttpMethod", "POST"),           M("HttpHost", "app.example.test"),
      M("HttpHeader:Accept", "*/*"),     M("HttpHeader:Content-Type", "text/plain"),
      M("HttpHeader:Content-Length", "10"), M("HttpHeader:User-Agent", "curl/7.88.1"),
      M("HttpHeader:Content-Length", "10")};
  wr_buf arena;
  wr_http_header h[16];
  wr_httpmeta_request req;
  wr_buf_init(&arena, 4096, NULL);
  assert_int_equal(wr_httpmeta_req_decode(post, N(post), &arena, h, N(h), &req), 0);
  assert_req(&req, "POST", "app.example.test", 5);
  assert_header(&h[0], "Accept", "*/*");
  assert_header(&h[1], "Content-Type", "text/plain");
  assert_header(&h[2], "Content-Length", "10");
  assert_header(&h[3], "User-Agent", "curl/7.88.1");
  assert_header(&h[4], "Content-Length", "10");

  /* Last HttpMethod / HttpHost win; names are canonicalised; any key
   * containing "HttpHeader" is a header key (case-sensitive); others are
   * ignored but can be looked up. */
  const wr_meta odd[] = {M("HttpMethod", "GET"),         M("HttpHost", "a"),
                         M("HttpMethod", "get"),         M("HttpHost", "b.example:8443"),
                         M("HttpHeader:x-custom-ONE", "1"), M("XHttpHeaderY:foo", "2"),
                         M("httpheader:ignored", "3"),   M("FlowID", "f1"),
                         M("cf-trace-id", "t"),          M("HttpHeader:", "empty name"),
                         M("FlowID", "f2")};
  wr_buf_reset(&arena);
  assert_int_equal(wr_httpmeta_req_decode(odd, N(odd), &arena, h, N(h), &req), 0);
  assert_req(&req, "get", "b.example:8443", 3); /* case preserved, as Go does */
  assert_header(&h[0], "X-Custom-One", "1");
  assert_header(&h[1], "Foo", "2");
  assert_header(&h[2], "", "empty name");
  size_t vlen;
  const char *v = wr_meta_find_last(odd, N(odd), "FlowID", &vlen);
  assert_non_null(v);
  assert_int_equal(vlen, 2);
  assert_memory_equal(v, "f2", 2);
  assert_null(wr_meta_find_last(odd, N(odd), "flowid", &vlen));
  assert_int_equal(vlen, 0);

  /* Without an arena the names are the raw key parts. */
  assert_int_equal(wr_httpmeta_req_decode(odd, N(odd), NULL, h, N(h), &req), 0);
  assert_header(&h[0], "x-custom-ONE", "1");
  assert_ptr_equal(h[0].name, odd[4].key + 11);

  /* No HttpMethod (or an empty one) means GET; no host is NULL. */
  const wr_meta bare[] = {M("HttpHeader:A", "1")};
  assert_int_equal(wr_httpmeta_req_decode(bare, N(bare), NULL, h, N(h), &req), 0);
  assert_int_equal(req.method_len, 3);
  assert_memory_equal(req.method, "GET", 3);
  assert_null(req.host);
  assert_int_equal(req.host_len, 0);
  const wr_meta emptym[] = {M("HttpMethod", "")};
  assert_int_equal(wr_httpmeta_req_decode(emptym, N(emptym), NULL, h, N(h), &req), 0);
  assert_memory_equal(req.method, "GET", 3);
  assert_int_equal(wr_httpmeta_req_decode(NULL, 0, NULL, NULL, 0, &req), 0);
  assert_int_equal(req.nheaders, 0);

  /* Malformed keys: cloudflared fails the whole request. */
  static const wr_meta bad1[] = {M("HttpHeader:a:b", "x")};
  static const wr_meta bad2[] = {M("HttpHeader", "x")};
  static const wr_meta bad3[] = {M("HttpHeader:ok", "x"), M("a:HttpHeader:b", "x")};
  static const wr_meta bad4[] = {M("HttpMethod", "GE T")};
  static const wr_meta bad5[] = {M("HttpHeader::", "x")};
  assert_int_equal(wr_httpmeta_req_decode(bad1, 1, &arena, h, N(h), &req), WR_ERR_PROTO);
  assert_int_equal(wr_httpmeta_req_decode(bad2, 1, &arena, h, N(h), &req), WR_ERR_PROTO);
  assert_int_equal(wr_httpmeta_req_decode(bad3, 2, &arena, h, N(h), &req), WR_ERR_PROTO);
  assert_int_equal(wr_httpmeta_req_decode(bad4, 1, &arena, h, N(h), &req), WR_ERR_PROTO);
  assert_int_equal(wr_httpmeta_req_decode(bad5, 1, &arena, h, N(h), &req), WR_ERR_PROTO);
  /* Output space. */
  assert_int_equal(wr_httpmeta_req_decode(post, N(post), &arena, h, 4, &req), WR_ERR_LIMIT);
  wr_buf_free(&arena);
  unit_failmem fm;
  unit_failmem_init(&fm, 0);
  wr_buf_init(&arena, 4096, &fm.mem);
  assert_int_equal(wr_httpmeta_req_decode(post, N(post), &arena, h, N(h), &req), WR_ERR_NOMEM);
  wr_buf_free(&arena);
  assert_int_equal(fm.live, 0);
}

static void test_req_round_trip(void **state) {
  (void)state;
  const wr_http_header in[] = {H("accept-encoding", "gzip"), H("X-Multi", "a"),
                               H("x-multi", "b"), H("Content-Length", "24")};
  wr_buf a1, a2;
  wr_meta m[8];
  wr_http_header out[8];
  wr_httpmeta_request req;
  wr_buf_init(&a1, 4096, NULL);
  wr_buf_init(&a2, 4096, NULL);
  int n = wr_httpmeta_req_encode("PUT", 3, "cf.host", 7, in, N(in), 0, &a1, m, N(m));
  assert_int_equal(n, 6);
  assert_int_equal(wr_httpmeta_req_decode(m, (size_t)n, &a2, out, N(out), &req), 0);
  assert_req(&req, "PUT", "cf.host", 4);
  assert_header(&out[0], "Accept-Encoding", "gzip");
  assert_header(&out[1], "X-Multi", "a");
  assert_header(&out[2], "X-Multi", "b");
  assert_header(&out[3], "Content-Length", "24");
  wr_buf_free(&a1);
  wr_buf_free(&a2);
}

/* ---- responses ---- */

static void test_resp_encode_decode(void **state) {
  wr_buf *arena = *state;
  /* http-get.from-connector.bin. */
  const wr_http_header h[] = {H("Date", "Sun, 22 Nov 2026 02:00:23 GMT"),
                              H("content-type", "text/html"), H("Content-Length", "18"),
                              H("Last-Modified", "Sun, 22 Nov 2026 01:59:36 GMT"),
                              H("Server", "SimpleHTTP/0.6 Python/3.11.7")};
  wr_meta m[8];
  assert_int_equal(wr_httpmeta_resp_encode(200, h, N(h), arena, m, N(m)), 6);
  assert_meta(&m[0], "HttpStatus", "200");
  assert_meta(&m[1], "HttpHeader:Date", "Sun, 22 Nov 2026 02:00:23 GMT");
  assert_meta(&m[2], "HttpHeader:Content-Type", "text/html");
  assert_meta(&m[3], "HttpHeader:Content-Length", "18");
  assert_meta(&m[4], "HttpHeader:Last-Modified", "Sun, 22 Nov 2026 01:59:36 GMT");
  assert_meta(&m[5], "HttpHeader:Server", "SimpleHTTP/0.6 Python/3.11.7");

  wr_http_header out[8];
  wr_httpmeta_response resp;
  assert_int_equal(wr_httpmeta_resp_decode(m, 6, NULL, out, N(out), &resp), 0);
  assert_int_equal(resp.status, 200);
  assert_int_equal(resp.nheaders, 5);
  assert_header(&out[1], "Content-Type", "text/html");
  assert_header(&out[4], "Server", "SimpleHTTP/0.6 Python/3.11.7");

  /* websocket.from-connector.bin: 101 and the upgrade headers; a bare
   * tracing key and HEAD's FlowConnectRateLimited are ignored. */
  const wr_meta ws[] = {M("HttpStatus", "101"), M("HttpHeader:Upgrade", "websocket"),
                        M("HttpHeader:Connection", "Upgrade"),
                        M("HttpHeader:Sec-Websocket-Accept", "aMTmmpmyPg3lA7WDb6W1Cb+dsuM="),
                        M("Cf-Int-Cloudflared-Tracing", "x"), M("FlowConnectRateLimited", "true")};
  wr_buf_reset(arena);
  assert_int_equal(wr_httpmeta_resp_decode(ws, N(ws), arena, out, N(out), &resp), 0);
  assert_int_equal(resp.status, 101);
  assert_int_equal(resp.nheaders, 3);
  assert_header(&out[2], "Sec-Websocket-Accept", "aMTmmpmyPg3lA7WDb6W1Cb+dsuM=");

  /* http_status:404 rule: status only. */
  assert_int_equal(wr_httpmeta_resp_encode(404, NULL, 0, arena, m, 1), 1);
  assert_meta(&m[0], "HttpStatus", "404");
  assert_int_equal(wr_httpmeta_resp_decode(m, 1, NULL, out, 0, &resp), 0);
  assert_int_equal(resp.status, 404);
  assert_int_equal(resp.nheaders, 0);
  assert_int_equal(wr_httpmeta_resp_encode(999, NULL, 0, arena, m, 1), 1);
  assert_meta(&m[0], "HttpStatus", "999");
  assert_int_equal(wr_httpmeta_resp_encode(100, NULL, 0, arena, m, 1), 1);
  assert_meta(&m[0], "HttpStatus", "100");

  /* Encoder errors. */
  const wr_http_header colon[] = {H("a:b", "x")};
  assert_int_equal(wr_httpmeta_resp_encode(99, NULL, 0, arena, m, 1), WR_ERR_INVAL);
  assert_int_equal(wr_httpmeta_resp_encode(1000, NULL, 0, arena, m, 1), WR_ERR_INVAL);
  assert_int_equal(wr_httpmeta_resp_encode(200, colon, 1, arena, m, N(m)), WR_ERR_INVAL);
  assert_int_equal(wr_httpmeta_resp_encode(200, h, N(h), arena, m, 5), WR_ERR_LIMIT);
  assert_int_equal(wr_httpmeta_resp_encode(200, NULL, 0, arena, m, 0), WR_ERR_LIMIT);

  /* Decoder errors: status missing or not 3 digits in 100..999. */
  static const char *const bad_status[] = {"20", "2000", "2x0", "099", "000", " 200", "-20", ""};
  for (size_t i = 0; i < N(bad_status); i++) {
    wr_meta s = {"HttpStatus", 10, bad_status[i], strlen(bad_status[i])};
    assert_int_equal(wr_httpmeta_resp_decode(&s, 1, NULL, out, N(out), &resp), WR_ERR_PROTO);
  }
  const wr_meta nostatus[] = {M("HttpHeader:A", "1")};
  assert_int_equal(wr_httpmeta_resp_decode(nostatus, 1, NULL, out, N(out), &resp), WR_ERR_PROTO);
  const wr_meta badkey[] = {M("HttpStatus", "200"), M("HttpHeader:A:B", "1")};
  assert_int_equal(wr_httpmeta_resp_decode(badkey, 2, NULL, out, N(out), &resp), WR_ERR_PROTO);
  assert_int_equal(wr_httpmeta_resp_decode(ws, N(ws), NULL, out, 2, &resp), WR_ERR_LIMIT);
}

/* ---- HTTP/2 serialized response headers ---- */

static void test_h2_spec_example(void **state) {
  (void)state;
  const wr_http_header h[] = {H("Content-Type", "text/html; charset=utf-8")};
  wr_buf out;
  wr_buf_init(&out, 4096, NULL);
  assert_int_equal(wr_httpmeta_h2_serialize(h, 1, WR_HTTPMETA_H2_SKIP_CONTROL, &out), 0);
  assert_string_equal(wr_buf_cstr(&out), "Q29udGVudC1UeXBl:dGV4dC9odG1sOyBjaGFyc2V0PXV0Zi04");
  /* Names are canonicalised while encoding. */
  const wr_http_header lower[] = {H("content-type", "text/html; charset=utf-8")};
  wr_buf_reset(&out);
  assert_int_equal(wr_httpmeta_h2_serialize(lower, 1, WR_HTTPMETA_H2_SKIP_CONTROL, &out), 0);
  assert_string_equal(wr_buf_cstr(&out), "Q29udGVudC1UeXBl:dGV4dC9odG1sOyBjaGFyc2V0PXV0Zi04");
  /* No headers: empty value. */
  wr_buf_reset(&out);
  assert_int_equal(wr_httpmeta_h2_serialize(NULL, 0, WR_HTTPMETA_H2_SKIP_CONTROL, &out), 0);
  assert_int_equal(out.len, 0);
  wr_buf_free(&out);
}

/* cf-cloudflared-response-headers values of http2/decoded.txt. */
static const char h2_stream3[] =
    "RGF0ZQ:U3VuLCAyMiBOb3YgMjAyNiAwMjoxNToyOCBHTVQ;Q29udGVudC1UeXBl:dGV4dC9odG1s;Q29udGVudC1MZW5ndGg:"
    "MTg;TGFzdC1Nb2RpZmllZA:U3VuLCAyMiBOb3YgMjAyNiAwMTo1OTozNiBHTVQ;U2VydmVy:"
    "U2ltcGxlSFRUUC8wLjYgUHl0aG9uLzMuMTEuNw";
static const char h2_stream5[] =
    "TGFzdC1Nb2RpZmllZA:U3VuLCAyMiBOb3YgMjAyNiAwMTo1OTozNiBHTVQ;U2VydmVy:"
    "U2ltcGxlSFRUUC8wLjYgUHl0aG9uLzMuMTEuNw;RGF0ZQ:U3VuLCAyMiBOb3YgMjAyNiAwMjoxNToyOCBHTVQ;"
    "Q29udGVudC1UeXBl:dGV4dC9odG1s;Q29udGVudC1MZW5ndGg:MTg";
static const char h2_stream7[] =
    "U2VjLVdlYnNvY2tldC1BY2NlcHQ:cDBycjlYUklUWHpraEpXOERyNi9BTFZoQi9RPQ;VXBncmFkZQ:d2Vic29ja2V0;"
    "Q29ubmVjdGlvbg:VXBncmFkZQ";

static void check_reserialize(const wr_http_header *h, size_t n, const char *want) {
  wr_buf out;
  wr_buf_init(&out, 4096, NULL);
  assert_int_equal(wr_httpmeta_h2_serialize(h, n, WR_HTTPMETA_H2_SKIP_CONTROL, &out), 0);
  assert_string_equal(wr_buf_cstr(&out), want);
  wr_buf_free(&out);
}

static void test_h2_capture(void **state) {
  wr_buf *arena = *state;
  wr_http_header h[8];
  assert_int_equal(wr_httpmeta_h2_deserialize(h2_stream3, strlen(h2_stream3), arena, h, N(h)), 5);
  assert_header(&h[0], "Date", "Sun, 22 Nov 2026 02:15:28 GMT");
  assert_header(&h[1], "Content-Type", "text/html");
  assert_header(&h[2], "Content-Length", "18");
  assert_header(&h[3], "Last-Modified", "Sun, 22 Nov 2026 01:59:36 GMT");
  assert_header(&h[4], "Server", "SimpleHTTP/0.6 Python/3.11.7");
  assert_int_equal(h[4].value[h[4].value_len], '\0');
  check_reserialize(h, 5, h2_stream3);

  wr_buf_reset(arena);
  assert_int_equal(wr_httpmeta_h2_deserialize(h2_stream5, strlen(h2_stream5), arena, h, N(h)), 5);
  assert_header(&h[0], "Last-Modified", "Sun, 22 Nov 2026 01:59:36 GMT");
  assert_header(&h[4], "Content-Length", "18");
  check_reserialize(h, 5, h2_stream5);

  wr_buf_reset(arena);
  assert_int_equal(wr_httpmeta_h2_deserialize(h2_stream7, strlen(h2_stream7), arena, h, N(h)), 3);
  assert_header(&h[0], "Sec-Websocket-Accept", "p0rr9XRITXzkhJW8Dr6/ALVhB/Q=");
  assert_header(&h[1], "Upgrade", "websocket");
  assert_header(&h[2], "Connection", "Upgrade");
  check_reserialize(h, 3, h2_stream7);

  /* Not enough room for the headers. */
  assert_int_equal(wr_httpmeta_h2_deserialize(h2_stream3, strlen(h2_stream3), arena, h, 4),
                   WR_ERR_LIMIT);
}

static void test_h2_control_headers(void **state) {
  wr_buf *arena = *state;
  static const char *const control[] = {"cf-int-sample-header", "cf-cloudflared-sample-header",
                                        ":sample-pseudo-header", "Cf-Int-Cloudflared-Tracing",
                                        "CF-CLOUDFLARED-RESPONSE-META", ":status"};
  static const char *const user[] = {"mock-header", "another-sample-header", "upgrade",
                                     "connection", "cf-whatever", "Sec-WebSocket-Accept",
                                     "cf-proxy-sample-header", "Cf-Ray", ""};
  for (size_t i = 0; i < N(control); i++)
    assert_true(wr_httpmeta_h2_is_control_header(control[i], strlen(control[i])));
  for (size_t i = 0; i < N(user); i++)
    assert_false(wr_httpmeta_h2_is_control_header(user[i], strlen(user[i])));

  const wr_http_header h[] = {H(":status", "200"), H("Cf-Int-Cloudflared-Tracing", "abc"),
                              H("cf-cloudflared-response-meta", "{}"), H("cf-whatever", "1"),
                              H("Upgrade", "websocket")};
  wr_buf out;
  wr_http_header back[8];
  wr_buf_init(&out, 4096, NULL);
  assert_int_equal(wr_httpmeta_h2_serialize(h, N(h), WR_HTTPMETA_H2_SKIP_CONTROL, &out), 0);
  assert_int_equal(wr_httpmeta_h2_deserialize((const char *)out.data, out.len, arena, back, 8), 2);
  assert_header(&back[0], "Cf-Whatever", "1");
  assert_header(&back[1], "Upgrade", "websocket");
  /* Without the flag everything is serialized. */
  wr_buf_reset(&out);
  wr_buf_reset(arena);
  assert_int_equal(wr_httpmeta_h2_serialize(h, N(h), 0, &out), 0);
  assert_int_equal(wr_httpmeta_h2_deserialize((const char *)out.data, out.len, arena, back, 8), 5);
  assert_header(&back[0], ":status", "200");
  wr_buf_free(&out);
}

/* cloudflared's TestSerializeHeaders: 13 values, including separators and
 * control characters in names and values, survive the round trip. */
static void test_h2_go_round_trip(void **state) {
  wr_buf *arena = *state;
  const wr_http_header h[] = {
      H("Mock-Header-One", "Mock header one value"), H("Mock-Header-One", "three"),
      H("Mock-Header-Two-Long", "Mock header two value\nlong"), H(":;", ":;"), H(":;", ";:"),
      H(":", ":"), H(";", ";"), H(";;", ";;"), H("Empty values", ""), H("Empty values", ""),
      H("", "Empty key"), H("control\tcharacter\b\n", "value\n\b\t"), H(";\v:", ":\v;")};
  wr_buf out;
  wr_http_header back[16];
  wr_buf_init(&out, 4096, NULL);
  assert_int_equal(wr_httpmeta_h2_serialize(h, N(h), 0, &out), 0);
  assert_int_not_equal(out.len, 0);
  assert_int_equal(wr_httpmeta_h2_deserialize((const char *)out.data, out.len, arena, back, 16),
                   13);
  for (size_t i = 0; i < N(h); i++) {
    assert_int_equal(back[i].name_len, h[i].name_len);
    if (h[i].name_len) assert_memory_equal(back[i].name, h[i].name, h[i].name_len);
    assert_int_equal(back[i].value_len, h[i].value_len);
    if (h[i].value_len) assert_memory_equal(back[i].value, h[i].value, h[i].value_len);
  }
  wr_buf_free(&out);
}

static void test_h2_deserialize_edge_cases(void **state) {
  wr_buf *arena = *state;
  wr_http_header h[8];
  assert_int_equal(wr_httpmeta_h2_deserialize("", 0, arena, h, 8), 0);
  assert_int_equal(wr_httpmeta_h2_deserialize(NULL, 0, arena, NULL, 0), 0);
  /* Empty pairs are skipped. */
  static const char s1[] = ";;Zm9v:YmFy;;";
  assert_int_equal(wr_httpmeta_h2_deserialize(s1, strlen(s1), arena, h, 8), 1);
  assert_header(&h[0], "foo", "bar");
  /* An empty name and value decode to empty strings. */
  assert_int_equal(wr_httpmeta_h2_deserialize(":", 1, arena, h, 8), 1);
  assert_header(&h[0], "", "");
  /* Go's non-strict decoder: CR/LF skipped, non-zero trailing bits accepted. */
  static const char s2[] = "Zm9v\r\n:Ym\nFy;Zh:YR";
  assert_int_equal(wr_httpmeta_h2_deserialize(s2, strlen(s2), arena, h, 8), 2);
  assert_header(&h[0], "foo", "bar");
  assert_header(&h[1], "f", "a");
  /* Malformed (TestDeserializeMalformed plus base64 errors). */
  static const char *const bad[] = {
      "malformed data", "bW9jawo=", "bW9jawo=:ZGF0YQo=:bW9jawo=", "::",
      "Zm9vYg==:YQ",    /* padding is not RawStd */
      "Q:YQ",           /* a lone final character */
      "Zm9v:Y*",        /* not base64 */
      "Zm9v:YmFy;x",    /* second pair without ':' */
      "Zm9v YmFy:YQ",   /* space */
  };
  for (size_t i = 0; i < N(bad); i++)
    assert_int_equal(wr_httpmeta_h2_deserialize(bad[i], strlen(bad[i]), arena, h, 8),
                     WR_ERR_PROTO);

  /* Arena limit and allocation failure. */
  wr_buf small;
  wr_buf_init(&small, 10, NULL);
  assert_int_equal(wr_httpmeta_h2_deserialize(h2_stream7, strlen(h2_stream7), &small, h, 8),
                   WR_ERR_LIMIT);
  wr_buf_free(&small);
  unit_failmem fm;
  unit_failmem_init(&fm, 0);
  wr_buf_init(&small, 4096, &fm.mem);
  assert_int_equal(wr_httpmeta_h2_deserialize(h2_stream7, strlen(h2_stream7), &small, h, 8),
                   WR_ERR_NOMEM);
  wr_buf_free(&small);
  /* Serializer: on error the buffer is left as it was. */
  const wr_http_header big[] = {H("X-A", "0123456789"), H("X-B", "0123456789")};
  wr_buf out;
  wr_buf_init(&out, 30, NULL);
  assert_int_equal(wr_buf_append(&out, "keep", 4), 0);
  assert_int_equal(wr_httpmeta_h2_serialize(big, 2, 0, &out), WR_ERR_LIMIT);
  assert_int_equal(out.len, 4);
  wr_buf_free(&out);
  unit_failmem_init(&fm, 0);
  wr_buf_init(&out, 4096, &fm.mem);
  assert_int_equal(wr_httpmeta_h2_serialize(big, 2, 0, &out), WR_ERR_NOMEM);
  assert_int_equal(out.len, 0);
  wr_buf_free(&out);
}

/* ---- the real captured streams: preamble, ConnectRequest/Response, then
 * this module ---- */

/* Skips the preamble and decodes the ConnectRequest of a captured stream. */
static void load_request(const char *name, uint8_t **buf, wr_connect_request *r, wr_meta *m,
                         size_t max) {
  size_t n, used, consumed;
  *buf = unit_read_vector(name, &n);
  assert_int_equal(wr_preamble_classify(*buf, n, &used, NULL), WR_PREAMBLE_DATA);
  assert_int_equal(wr_connect_request_decode(*buf + used, n - used, NULL, r, m, max, &consumed), 0);
}

static void test_capture_streams(void **state) {
  (void)state;
  uint8_t *buf;
  wr_connect_request r;
  wr_meta m[16], mine[16];
  wr_http_header h[16];
  wr_httpmeta_request req;
  wr_buf arena, arena2;
  wr_buf_init(&arena, 4096, NULL);
  wr_buf_init(&arena2, 4096, NULL);

  /* GET: our edge-side encoder produces exactly the captured entries. */
  load_request("quic/http-get.from-edge.bin", &buf, &r, m, N(m));
  assert_int_equal(wr_httpmeta_req_decode(r.meta, r.nmeta, &arena, h, N(h), &req), 0);
  assert_req(&req, "GET", "app.example.test", 2);
  assert_header(&h[0], "User-Agent", "curl/7.88.1");
  assert_header(&h[1], "Accept", "*/*");
  int n = wr_httpmeta_req_encode(req.method, req.method_len, req.host, req.host_len, h,
                                 req.nheaders, 0, &arena2, mine, N(mine));
  assert_int_equal(n, (int)r.nmeta);
  for (size_t i = 0; i < r.nmeta; i++) {
    assert_int_equal(mine[i].key_len, r.meta[i].key_len);
    assert_memory_equal(mine[i].key, r.meta[i].key, r.meta[i].key_len);
    assert_int_equal(mine[i].val_len, r.meta[i].val_len);
    assert_memory_equal(mine[i].val, r.meta[i].val, r.meta[i].val_len);
  }
  free(buf);

  /* Websocket: upgrade headers survive with the websocket flag. */
  wr_buf_reset(&arena);
  wr_buf_reset(&arena2);
  load_request("quic/websocket.from-edge.bin", &buf, &r, m, N(m));
  assert_int_equal(r.type, WR_CONNECT_WEBSOCKET);
  assert_int_equal(wr_httpmeta_req_decode(r.meta, r.nmeta, &arena, h, N(h), &req), 0);
  assert_int_equal(req.nheaders, 4);
  assert_header(&h[0], "Upgrade", "websocket");
  assert_header(&h[1], "Connection", "Upgrade");
  assert_header(&h[2], "Sec-Websocket-Key", "WTSl10wFwrcxLjHkjO+sNA==");
  assert_header(&h[3], "Sec-Websocket-Version", "13");
  n = wr_httpmeta_req_encode(req.method, req.method_len, req.host, req.host_len, h, req.nheaders,
                             WR_HTTPMETA_REQ_WEBSOCKET, &arena2, mine, N(mine));
  assert_int_equal(n, (int)r.nmeta);
  for (size_t i = 0; i < r.nmeta; i++)
    assert_memory_equal(mine[i].key, r.meta[i].key, r.meta[i].key_len);
  free(buf);

  /* Responses. */
  static const struct {
    const char *file;
    int status;
    size_t nheaders;
  } resp[] = {{"quic/http-get.from-connector.bin", 200, 5},
              {"quic/websocket.from-connector.bin", 101, 3},
              {"quic/http-404-no-rule.from-connector.bin", 404, 0},
              {"quic/http-post-501.from-connector.bin", 501, SIZE_MAX}};
  for (size_t i = 0; i < N(resp); i++) {
    size_t len, used, consumed;
    wr_connect_response cr;
    wr_httpmeta_response hr;
    buf = unit_read_vector(resp[i].file, &len);
    assert_int_equal(wr_preamble_classify(buf, len, &used, NULL), WR_PREAMBLE_DATA);
    assert_int_equal(
        wr_connect_response_decode(buf + used, len - used, NULL, &cr, m, N(m), &consumed), 0);
    assert_int_equal(cr.error_len, 0);
    assert_memory_equal(cr.meta[0].key, "HttpStatus", 10); /* always first */
    wr_buf_reset(&arena);
    assert_int_equal(wr_httpmeta_resp_decode(cr.meta, cr.nmeta, &arena, h, N(h), &hr), 0);
    assert_int_equal(hr.status, resp[i].status);
    if (resp[i].nheaders != SIZE_MAX) assert_int_equal(hr.nheaders, resp[i].nheaders);
    free(buf);
  }
  wr_buf_free(&arena);
  wr_buf_free(&arena2);
}

/* Kept trailers (proto/fields.h): names lower-cased on request, NUL and
 * the byte limit refused without a trace, the list in order. */
static void test_fields(void **state) {
  (void)state;
  wr_fields f;
  wr_http_header hs[4];
  wr_fields_init(&f, 32);
  assert_int_equal(wr_fields_add(&f, "Grpc-Status", 11, "0", 1, 1), WR_OK);
  assert_int_equal(wr_fields_add(&f, "X-A", 3, "", 0, 0), WR_OK);
  assert_int_equal(wr_fields_add(&f, "x-\0", 3, "v", 1, 1), WR_ERR_INVAL);
  assert_int_equal(wr_fields_add(&f, "x", 1, "v\0", 2, 1), WR_ERR_INVAL);
  assert_int_equal(wr_fields_add(&f, "x-long", 6, "0123456789", 10, 1), WR_ERR_LIMIT);
  assert_int_equal(f.n, 2);
  wr_fields_list(&f, hs);
  assert_int_equal(hs[0].name_len, 11);
  assert_memory_equal(hs[0].name, "grpc-status", 11);
  assert_int_equal(hs[0].value_len, 1);
  assert_memory_equal(hs[0].value, "0", 1);
  assert_memory_equal(hs[1].name, "X-A", 3); /* kept as given */
  assert_int_equal(hs[1].value_len, 0);
  wr_fields_reset(&f);
  assert_int_equal(f.n, 0);
  assert_int_equal(wr_fields_add(&f, "x-long", 6, "0123456789", 10, 1), WR_OK);
  wr_fields_free(&f);
}

int main(void) {
  return UNIT_RUN(
      NULL, NULL,
      UNIT_TESTS(test_canonical_key),
      UNIT_FIXTURE(unit_buf_setup, unit_buf_teardown, test_req_encode_capture, test_req_encode_filters),
      UNIT_TESTS(test_req_decode, test_req_round_trip),
      UNIT_FIXTURE(unit_buf_setup, unit_buf_teardown, test_resp_encode_decode),
      UNIT_TESTS(test_h2_spec_example),
      UNIT_FIXTURE(unit_buf_setup, unit_buf_teardown, test_h2_capture, test_h2_control_headers,
                   test_h2_go_round_trip, test_h2_deserialize_edge_cases),
      UNIT_TESTS(test_capture_streams, test_fields));
}
