/* The connector's HTTP/2 side: the header conventions (connector/h2_request.h:
 * request type, ConnectRequest from HTTP/2 headers, response head with the
 * serialized user headers, protocol.md 7.3-7.4) and the HTTP/2 server
 * session (connector/h2_transport.h) fed the captured edge bytes of
 * cloudflared 2023.7.3's HTTP/2 vector with a fake origin in the same loop;
 * the responses are compared with the captured connector's by decoded
 * values (status, deserialized user headers, meta, bodies), not bytes. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "connector/h2_request.h"
#include "connector/h2_transport.h"
#include "connector/ingress.h"
#include "connector/proxy.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/err.h"
#include "proto/httpmeta.h"
#include "unit.h"

#define H(n, v) {n, sizeof(n) - 1, v, sizeof(v) - 1}

/* ---- request type ----------------------------------------------------------------- */

static void test_kind(void **state) {
  (void)state;
  wr_http_header ctl[] = {H(":method", "GET"), H("cf-cloudflared-proxy-connection-upgrade",
                                                  "control-stream")};
  wr_http_header ws[] = {H("Cf-Cloudflared-Proxy-Connection-Upgrade", "websocket")};
  wr_http_header ws_case[] = {H("cf-cloudflared-proxy-connection-upgrade", "Websocket")};
  wr_http_header cfg[] = {H("cf-cloudflared-proxy-connection-upgrade", "update-configuration"),
                          H("cf-cloudflared-proxy-src", "x")};
  wr_http_header tcp[] = {H("cf-cloudflared-proxy-src", "1.2.3.4"),
                          H("cf-cloudflared-proxy-connection-upgrade", "control-stream")};
  wr_http_header tcp_empty[] = {H("cf-cloudflared-proxy-src", "")};
  wr_http_header ws_tcp[] = {H("cf-cloudflared-proxy-src", "1"),
                             H("cf-cloudflared-proxy-connection-upgrade", "websocket")};
  assert_int_equal(wr_h2c_request_kind(ctl, 2), WR_H2_CONTROL);
  assert_int_equal(wr_h2c_request_kind(ws, 1), WR_H2_WEBSOCKET);
  assert_int_equal(wr_h2c_request_kind(ws_case, 1), WR_H2_HTTP); /* values compare exactly */
  assert_int_equal(wr_h2c_request_kind(cfg, 2), WR_H2_CONFIG);   /* checked first */
  assert_int_equal(wr_h2c_request_kind(tcp, 2), WR_H2_TCP);      /* before control-stream */
  assert_int_equal(wr_h2c_request_kind(tcp_empty, 1), WR_H2_HTTP);
  assert_int_equal(wr_h2c_request_kind(ws_tcp, 2), WR_H2_WEBSOCKET);
  assert_int_equal(wr_h2c_request_kind(NULL, 0), WR_H2_HTTP);
}

/* ---- ConnectRequest from HTTP/2 headers ---------------------------------------------- */

static const char *meta_val(const wr_connect_request *r, const char *key) {
  static char buf[512];
  for (size_t i = 0; i < r->nmeta; i++)
    if (r->meta[i].key_len == strlen(key) && !memcmp(r->meta[i].key, key, r->meta[i].key_len)) {
      snprintf(buf, sizeof(buf), "%.*s", (int)r->meta[i].val_len, r->meta[i].val);
      return buf;
    }
  return NULL;
}

static void test_request_build(void **state) {
  (void)state;
  wr_http_header get[] = {H(":authority", "app.example.test"), H(":method", "GET"),
                          H(":path", "/index.html?q=1"), H(":scheme", "https"),
                          H("accept", "*/*"), H("cookie", "a=1"), H("x-forwarded-proto", "https"),
                          H("cookie", "b=2")};
  wr_meta meta[16];
  wr_connect_request r;
  wr_buf arena;
  wr_buf_init(&arena, 1 << 20, NULL);
  assert_int_equal(wr_h2c_request_build(get, 8, WR_H2_HTTP, 0, &arena, meta, 16, &r), WR_OK);
  assert_int_equal(r.type, WR_CONNECT_HTTP);
  assert_int_equal(r.dest_len, strlen("https://app.example.test/index.html?q=1"));
  assert_memory_equal(r.dest, "https://app.example.test/index.html?q=1", r.dest_len);
  assert_string_equal(meta_val(&r, "HttpMethod"), "GET");
  assert_string_equal(meta_val(&r, "HttpHost"), "app.example.test");
  assert_string_equal(meta_val(&r, "HttpHeader:Accept"), "*/*");
  assert_string_equal(meta_val(&r, "HttpHeader:X-Forwarded-Proto"), "https");
  assert_string_equal(meta_val(&r, "HttpHeader:Cookie"), "a=1; b=2");
  assert_null(meta_val(&r, "HttpHeader:Transfer-Encoding"));
  assert_null(meta_val(&r, "HttpHeader::path"));

  /* A body of unknown length is streamed (chunked towards the origin). */
  wr_http_header post[] = {H(":authority", "a.test"), H(":method", "POST"), H(":path", "/up"),
                           H(":scheme", "https")};
  assert_int_equal(wr_h2c_request_build(post, 4, WR_H2_HTTP, 1, &arena, meta, 16, &r), WR_OK);
  assert_string_equal(meta_val(&r, "HttpHeader:Transfer-Encoding"), "chunked");
  wr_http_header post_cl[] = {H(":authority", "a.test"), H(":method", "POST"),
                              H(":path", "/up"), H("content-length", "5")};
  assert_int_equal(wr_h2c_request_build(post_cl, 4, WR_H2_HTTP, 1, &arena, meta, 16, &r), WR_OK);
  assert_null(meta_val(&r, "HttpHeader:Transfer-Encoding"));
  assert_string_equal(meta_val(&r, "HttpHeader:Content-Length"), "5");

  /* WebSocket: the upgrade header is stripped. */
  wr_http_header ws[] = {H(":authority", "ws.example.test"), H(":method", "GET"),
                         H(":path", "/ws"), H(":scheme", "https"),
                         H("sec-websocket-key", "BLaGadlPy87luQpjWTPcWQ=="),
                         H("cf-cloudflared-proxy-connection-upgrade", "websocket")};
  assert_int_equal(wr_h2c_request_build(ws, 6, WR_H2_WEBSOCKET, 1, &arena, meta, 16, &r), WR_OK);
  assert_int_equal(r.type, WR_CONNECT_WEBSOCKET);
  assert_string_equal(meta_val(&r, "HttpHeader:Sec-Websocket-Key"), "BLaGadlPy87luQpjWTPcWQ==");
  assert_null(meta_val(&r, "HttpHeader:Cf-Cloudflared-Proxy-Connection-Upgrade"));
  assert_null(meta_val(&r, "HttpHeader:Transfer-Encoding"));

  /* Raw TCP: the destination is :authority. */
  wr_http_header tcp[] = {H(":authority", "10.0.0.5:22"), H(":method", "CONNECT"),
                          H("cf-cloudflared-proxy-src", "1")};
  assert_int_equal(wr_h2c_request_build(tcp, 3, WR_H2_TCP, 1, &arena, meta, 16, &r), WR_OK);
  assert_int_equal(r.type, WR_CONNECT_TCP);
  assert_memory_equal(r.dest, "10.0.0.5:22", 11);
  wr_http_header tcp_bad[] = {H(":method", "CONNECT"), H("cf-cloudflared-proxy-src", "1")};
  assert_int_equal(wr_h2c_request_build(tcp_bad, 2, WR_H2_TCP, 1, &arena, meta, 16, &r),
                   WR_ERR_PROTO);
  wr_buf_free(&arena);
}

/* ---- response head ------------------------------------------------------------------- */

static const wr_http_header *find(const wr_http_header *hs, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (hs[i].name_len == strlen(name) && !memcmp(hs[i].name, name, hs[i].name_len))
      return &hs[i];
  return NULL;
}

static void assert_value(const wr_http_header *h, const char *v) {
  assert_non_null(h);
  assert_int_equal(h->value_len, strlen(v));
  assert_memory_equal(h->value, v, h->value_len);
}

static void test_response_head(void **state) {
  (void)state;
  wr_buf arena, marena;
  wr_meta meta[8];
  wr_http_header out[16];
  wr_http_header user[] = {H("Content-Type", "text/html; charset=utf-8"),
                           H("Content-Length", "18"), H("Cf-Int-Cloudflared-Tracing", "t1"),
                           H("Cf-Cloudflared-Secret", "no")};
  wr_connect_response r;
  wr_buf_init(&arena, 1 << 20, NULL);
  wr_buf_init(&marena, 1 << 20, NULL);
  memset(&r, 0, sizeof(r));
  r.error = "";
  r.has_meta = 1;
  r.meta = meta;
  r.nmeta = (size_t)wr_httpmeta_resp_encode(200, user, 1, &marena, meta, 8);
  int n = wr_h2c_response_head(&r, &arena, out, 16);
  assert_true(n >= 3);
  assert_value(find(out, n, ":status"), "200");
  /* protocol.md 7.4's example, unpadded standard base64. */
  assert_value(find(out, n, "cf-cloudflared-response-headers"),
               "Q29udGVudC1UeXBl:dGV4dC9odG1sOyBjaGFyc2V0PXV0Zi04");
  assert_value(find(out, n, "cf-cloudflared-response-meta"), "{\"src\":\"origin\"}");
  assert_null(find(out, n, "content-length"));

  /* Content-Length and the tracing header also as real headers; control
   * headers are not serialized. */
  wr_buf_reset(&marena);
  r.nmeta = (size_t)wr_httpmeta_resp_encode(200, user, 4, &marena, meta, 8);
  n = wr_h2c_response_head(&r, &arena, out, 16);
  assert_value(find(out, n, "content-length"), "18");
  assert_value(find(out, n, "cf-int-cloudflared-tracing"), "t1");
  const wr_http_header *ser = find(out, n, "cf-cloudflared-response-headers");
  wr_http_header back[8];
  wr_buf darena;
  wr_buf_init(&darena, 1 << 20, NULL);
  assert_int_equal(wr_httpmeta_h2_deserialize(ser->value, ser->value_len, &darena, back, 8), 2);
  assert_string_equal(back[0].name, "Content-Type");
  assert_string_equal(back[1].name, "Content-Length");
  wr_buf_free(&darena);

  /* 101 becomes 200 (HTTP/2 has no 101). */
  wr_http_header up[] = {H("Upgrade", "websocket"), H("Connection", "Upgrade")};
  wr_buf_reset(&marena);
  r.nmeta = (size_t)wr_httpmeta_resp_encode(101, up, 2, &marena, meta, 8);
  n = wr_h2c_response_head(&r, &arena, out, 16);
  assert_value(find(out, n, ":status"), "200");
  assert_value(find(out, n, "cf-cloudflared-response-headers"),
               "VXBncmFkZQ:d2Vic29ja2V0;Q29ubmVjdGlvbg:VXBncmFkZQ");

  /* A TCP acknowledgement (no metadata): 200, empty serialized headers. */
  r.nmeta = 0;
  n = wr_h2c_response_head(&r, &arena, out, 16);
  assert_value(find(out, n, ":status"), "200");
  assert_value(find(out, n, "cf-cloudflared-response-headers"), "");

  /* An error: 502 from cloudflared, nothing else. */
  r.error = "Unable to reach the origin service";
  r.error_len = strlen(r.error);
  r.has_meta = 0;
  n = wr_h2c_response_head(&r, &arena, out, 16);
  assert_int_equal(n, 2);
  assert_value(find(out, n, ":status"), "502");
  assert_value(find(out, n, "cf-cloudflared-response-meta"), "{\"src\":\"cloudflared\"}");
  wr_buf_free(&arena);
  wr_buf_free(&marena);
}

/* ---- the session against the captured edge bytes ----------------------------------------- */

typedef struct origin_conn {
  uv_tcp_t tcp;
  char req[8192];
  size_t len;
  int answered;
} origin_conn;

typedef struct vctx {
  uv_loop_t loop;
  uv_tcp_t server;
  uint16_t port;
  uv_timer_t poll, guard;
  wr_proxy *proxy;
  wr_ingress *ing;
  wr_h2 *h2;
  wr_buf sent;      /* what the connector sent */
  wr_buf control;   /* control stream request body received */
  int control_open, control_fin;
  int timed_out;
} vctx;

static void oc_closed(uv_handle_t *h) { free(h->data); }

static void oc_write_done(uv_write_t *w, int status) {
  (void)status;
  free(w->data);
  free(w);
}

static void oc_write(origin_conn *oc, const char *data, size_t len) {
  uv_write_t *w = malloc(sizeof(*w));
  char *copy = malloc(len);
  memcpy(copy, data, len);
  w->data = copy;
  uv_buf_t b = uv_buf_init(copy, (unsigned)len);
  uv_write(w, (uv_stream_t *)&oc->tcp, &b, 1, oc_write_done);
}

static void oc_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
  (void)h;
  b->base = malloc(s);
  b->len = s;
}

/* The vector's origin: a SimpleHTTP-like page, and a WebSocket endpoint
 * that answers with one text frame. */
static void oc_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  origin_conn *oc = st->data;
  if (n < 0) {
    free(b->base);
    uv_close((uv_handle_t *)st, oc_closed);
    return;
  }
  if (oc->len + (size_t)n < sizeof(oc->req) - 1) {
    memcpy(oc->req + oc->len, b->base, (size_t)n);
    oc->len += (size_t)n;
    oc->req[oc->len] = '\0';
  }
  free(b->base);
  while (strstr(oc->req, "\r\n\r\n")) {
    char *end = strstr(oc->req, "\r\n\r\n") + 4;
    if (strstr(oc->req, "Upgrade: websocket")) {
      static const char ws[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: p0rr9XRITXzkhJW8Dr6/ALVhB/Q=\r\n\r\n"
                               "\x81\nws over h2";
      oc_write(oc, ws, sizeof(ws) - 1);
    } else if (strncmp(oc->req, "GET /trailers ", 14) == 0) {
      static const char tr[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                               "Trailer: Grpc-Status\r\n\r\n5\r\nhello\r\n0\r\n"
                               "Grpc-Status: 0\r\nX-Trailer:  two words \r\n"
                               "Content-Type: text/bad\r\n\r\n";
      oc_write(oc, tr, sizeof(tr) - 1);
    } else {
      static const char page[] = "HTTP/1.1 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.11.7\r\n"
                                 "Content-Type: text/html\r\nContent-Length: 18\r\n\r\n"
                                 "hello from origin\n";
      oc_write(oc, page, sizeof(page) - 1);
    }
    size_t rest = oc->len - (size_t)(end - oc->req);
    memmove(oc->req, end, rest + 1);
    oc->len = rest;
  }
}

static void on_origin_conn(uv_stream_t *server, int status) {
  vctx *c = server->data;
  origin_conn *oc = calloc(1, sizeof(*oc));
  (void)status;
  uv_tcp_init(&c->loop, &oc->tcp);
  oc->tcp.data = oc;
  if (uv_accept(server, (uv_stream_t *)&oc->tcp) != 0) {
    uv_close((uv_handle_t *)&oc->tcp, oc_closed);
    return;
  }
  uv_read_start((uv_stream_t *)&oc->tcp, oc_alloc, oc_read);
}

static int v_send(void *user, const uint8_t *data, size_t len) {
  vctx *c = user;
  return wr_buf_append(&c->sent, data, len);
}

static void v_kick(void *user) { (void)user; } /* the poll timer flushes */

static void v_control_open(void *user) { ((vctx *)user)->control_open++; }

static void v_control_data(void *user, const uint8_t *data, size_t len, int fin) {
  vctx *c = user;
  if (len) wr_buf_append(&c->control, data, len);
  if (fin) c->control_fin = 1;
}

static void poll_cb(uv_timer_t *t) {
  vctx *c = t->data;
  wr_h2_flush(c->h2);
}

static void guard_cb(uv_timer_t *t) {
  vctx *c = t->data;
  c->timed_out = 1;
  uv_stop(&c->loop);
}

/* The loop, the fake origin listening on loopback (c->port) and a proxy
 * over |yaml|, whose "%u" are the origin's port. */
static void origin_and_proxy(vctx *c, const char *yaml) {
  char text[512], err[256] = "";
  wr_config *cfg = NULL;
  assert_int_equal(uv_loop_init(&c->loop), 0);
  c->port = unit_tcp_listen(&c->loop, &c->server, c, on_origin_conn);
  snprintf(text, sizeof(text), yaml, c->port, c->port);
  assert_int_equal(wr_config_parse(text, strlen(text), "config.yml", &cfg, err, sizeof(err)), 0);
  assert_int_equal(wr_ingress_parse(cfg, &c->ing, err, sizeof(err)), 0);
  wr_config_free(cfg);
  wr_proxy_config pc;
  memset(&pc, 0, sizeof(pc));
  pc.loop = &c->loop;
  pc.ingress = c->ing;
  assert_int_equal(wr_proxy_new(&pc, &c->proxy), WR_OK);
}

/* The connector's HTTP/2 session over |p|, sending with |send| to |user|. */
static wr_h2 *h2_over(wr_proxy *p, int (*send)(void *, const uint8_t *, size_t),
                      void (*open)(void *), void (*data)(void *, const uint8_t *, size_t, int),
                      void *user) {
  wr_h2_config hc;
  wr_h2 *h;
  memset(&hc, 0, sizeof(hc));
  hc.proxy = p;
  hc.send = send;
  hc.kick = v_kick;
  hc.on_control_open = open;
  hc.on_control_data = data;
  hc.user = user;
  assert_int_equal(wr_h2_new(&hc, &h), WR_OK);
  return h;
}

/* --- decoding the connector's frames --- */

typedef struct resp {
  int32_t id;
  char status[8];
  char headers[2048]; /* cf-cloudflared-response-headers */
  char meta[128];
  char clen[16];
  uint8_t body[256];
  size_t blen;
  int ended;
} resp;

static resp *resp_for(resp *rs, int32_t id) {
  for (int i = 0; i < 8; i++) {
    if (rs[i].id == id) return &rs[i];
    if (rs[i].id == 0) {
      rs[i].id = id;
      return &rs[i];
    }
  }
  fail_msg("too many streams");
  return NULL;
}

static void copy_field(char *dst, size_t cap, const nghttp2_nv *nv) {
  snprintf(dst, cap, "%.*s", (int)nv->valuelen, nv->value);
}

static void decode_headers(nghttp2_hd_inflater *inf, const uint8_t *p, size_t n, resp *r) {
  while (n > 0) {
    nghttp2_nv nv;
    int fl = 0;
    ssize_t used = nghttp2_hd_inflate_hd2(inf, &nv, &fl, p, n, 1);
    assert_true(used >= 0);
    p += used;
    n -= (size_t)used;
    if (fl & NGHTTP2_HD_INFLATE_EMIT) {
      const char *name = (const char *)nv.name;
#define IS(s) (nv.namelen == strlen(s) && !memcmp(name, s, nv.namelen))
      if (IS(":status")) copy_field(r->status, sizeof(r->status), &nv);
      if (IS("cf-cloudflared-response-headers")) copy_field(r->headers, sizeof(r->headers), &nv);
      if (IS("cf-cloudflared-response-meta")) copy_field(r->meta, sizeof(r->meta), &nv);
      if (IS("content-length")) copy_field(r->clen, sizeof(r->clen), &nv);
#undef IS
    }
    if (fl & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inf);
      break;
    }
  }
}

/* Walks the frames of |buf| (after |skip| bytes) into |rs|. */
static void decode_frames(const uint8_t *buf, size_t len, size_t skip, resp *rs) {
  nghttp2_hd_inflater *inf;
  assert_int_equal(nghttp2_hd_inflate_new(&inf), 0);
  for (size_t off = skip; off + 9 <= len;) {
    size_t flen = (size_t)buf[off] << 16 | (size_t)buf[off + 1] << 8 | buf[off + 2];
    uint8_t type = buf[off + 3], flags = buf[off + 4];
    int32_t id = (int32_t)(((uint32_t)buf[off + 5] << 24 | (uint32_t)buf[off + 6] << 16 |
                            (uint32_t)buf[off + 7] << 8 | buf[off + 8]) & 0x7fffffffu);
    const uint8_t *p = buf + off + 9;
    assert_true(off + 9 + flen <= len);
    if (type == NGHTTP2_HEADERS) decode_headers(inf, p, flen, resp_for(rs, id));
    if (type == NGHTTP2_DATA && id != 1) {
      resp *r = resp_for(rs, id);
      assert_true(r->blen + flen <= sizeof(r->body));
      memcpy(r->body + r->blen, p, flen);
      r->blen += flen;
    }
    if ((type == NGHTTP2_HEADERS || type == NGHTTP2_DATA) && (flags & NGHTTP2_FLAG_END_STREAM))
      resp_for(rs, id)->ended = 1;
    off += 9 + flen;
  }
  nghttp2_hd_inflate_del(inf);
}

/* The user headers of a response, deserialized, as "Name=value\n" lines
 * without the ones that vary from run to run. */
static void user_headers(const resp *r, char *out, size_t cap) {
  wr_http_header hs[32];
  wr_buf a;
  wr_buf_init(&a, 1 << 20, NULL);
  int n = wr_httpmeta_h2_deserialize(r->headers, strlen(r->headers), &a, hs, 32);
  assert_true(n >= 0);
  out[0] = '\0';
  static const char *const order[] = {"Content-Type", "Content-Length", "Server", "Upgrade",
                                      "Connection", "Sec-Websocket-Accept"};
  for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++)
    for (int i = 0; i < n; i++)
      if (!strcmp(hs[i].name, order[k]))
        snprintf(out + strlen(out), cap - strlen(out), "%s=%s\n", hs[i].name, hs[i].value);
  wr_buf_free(&a);
}

static int stream_done(const resp *rs, int32_t id) {
  for (int i = 0; i < 8; i++)
    if (rs[i].id == id) return rs[i].ended;
  return 0;
}

/* Runs the loop until stream |id| of what the connector sent has ended. */
static void run_until_ended(vctx *c, int32_t id) {
  for (int i = 0; i < 400 && !c->timed_out; i++) {
    resp rs[8];
    memset(rs, 0, sizeof(rs));
    wr_h2_flush(c->h2);
    decode_frames(c->sent.data, c->sent.len, 0, rs);
    if (stream_done(rs, id)) return;
    uv_run(&c->loop, UV_RUN_ONCE);
  }
  fail_msg("stream %d did not end", id);
}

/* Offset of the first DATA frame of stream |id| in the edge's bytes. */
static size_t first_data(const uint8_t *buf, size_t len, size_t skip, int32_t id) {
  for (size_t off = skip; off + 9 <= len;) {
    size_t flen = (size_t)buf[off] << 16 | (size_t)buf[off + 1] << 8 | buf[off + 2];
    if (buf[off + 3] == NGHTTP2_DATA && buf[off + 8] == id) return off;
    off += 9 + flen;
  }
  return len;
}

/* Origin connections still open at the end. */
static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, h->type == UV_TCP ? oc_closed : NULL);
}

/* Starts c's poll timer (|cb| every |ms| ms) and its 10-second guard. */
static void v_timers(vctx *c, uv_timer_cb cb, uint64_t ms) {
  uv_timer_init(&c->loop, &c->poll);
  uv_timer_init(&c->loop, &c->guard);
  c->poll.data = c->guard.data = c;
  uv_timer_start(&c->poll, cb, ms, ms);
  uv_timer_start(&c->guard, guard_cb, 10000, 0);
}

/* Frees c's proxy (its HTTP/2 session is gone already), closes the timers,
 * the origin's listener and connections, checks that the loop closes and
 * frees the rules. */
static void v_finish(vctx *c) {
  wr_proxy_free(c->proxy);
  uv_close((uv_handle_t *)&c->poll, NULL);
  uv_close((uv_handle_t *)&c->guard, NULL);
  uv_close((uv_handle_t *)&c->server, NULL);
  for (int i = 0; i < 20; i++) uv_run(&c->loop, UV_RUN_NOWAIT);
  uv_walk(&c->loop, close_walk, NULL);
  unit_loop_finish(&c->loop);
  wr_ingress_free(c->ing);
}

static void test_vector(void **state) {
  (void)state;
  vctx c;
  size_t elen, clen;
  uint8_t *edge = unit_read_vector("http2/connection.from-edge.bin", &elen);
  uint8_t *conn = unit_read_vector("http2/connection.from-connector.bin", &clen);

  memset(&c, 0, sizeof(c));
  wr_buf_init(&c.sent, 16u << 20, NULL);
  wr_buf_init(&c.control, 1 << 20, NULL);
  origin_and_proxy(&c, "ingress:\n  - hostname: app.example.test\n    service: http://127.0.0.1:%u\n"
                       "  - hostname: ws.example.test\n    service: http://127.0.0.1:%u\n"
                       "  - service: http_status:404\n");
  c.h2 = h2_over(c.proxy, v_send, v_control_open, v_control_data, &c);
  v_timers(&c, poll_cb, 2);

  /* Everything up to the WebSocket's first DATA frame (the edge sent that
   * after our 200), then the rest. */
  size_t cut = first_data(edge, elen, 24, 7);
  assert_true(cut < elen);
  assert_int_equal(wr_h2_feed(c.h2, edge, cut), WR_OK);
  run_until_ended(&c, 5);
  for (int i = 0; i < 200; i++) {
    resp rs[8];
    memset(rs, 0, sizeof(rs));
    decode_frames(c.sent.data, c.sent.len, 0, rs);
    resp *w = resp_for(rs, 7);
    if (w->blen >= 12 || c.timed_out) break;
    uv_run(&c.loop, UV_RUN_ONCE);
  }
  assert_int_equal(wr_h2_feed(c.h2, edge + cut, elen - cut), WR_OK);
  run_until_ended(&c, 7);

  /* The control stream: opened once, its request body is the edge's RPC bytes. */
  assert_int_equal(c.control_open, 1);
  assert_int_equal(c.control.len, 96 + 152 + 80);
  assert_int_equal(c.control.data[0], 0);

  resp got[8], want[8];
  memset(got, 0, sizeof(got));
  memset(want, 0, sizeof(want));
  decode_frames(c.sent.data, c.sent.len, 0, got);
  decode_frames(conn, clen, 0, want);
  for (int32_t id = 3; id <= 7; id += 2) {
    resp *g = resp_for(got, id), *w = resp_for(want, id);
    char gu[1024], wu[1024];
    assert_string_equal(g->status, w->status);
    assert_string_equal(g->meta, w->meta);
    assert_string_equal(g->clen, w->clen);
    user_headers(g, gu, sizeof(gu));
    user_headers(w, wu, sizeof(wu));
    assert_string_equal(gu, wu);
    assert_int_equal(g->blen, w->blen);
    assert_memory_equal(g->body, w->body, g->blen);
    assert_true(g->ended);
  }
  assert_string_equal(resp_for(got, 1)->status, "200");

  wr_h2_free(c.h2);
  v_finish(&c);
  wr_buf_free(&c.sent);
  wr_buf_free(&c.control);
  free(edge);
  free(conn);
  assert_false(c.timed_out);
}

/* ---- configuration update and control stream, from an nghttp2 client ----------------------- */

typedef struct cli {
  nghttp2_session *ng;
  wr_buf out;        /* client -> connector */
  char status[8][8]; /* by stream id / 2 */
  wr_buf body[8];
  int32_t last_version;
  char last_json[256];
  int refuse;
} cli;

static ssize_t cli_send(nghttp2_session *ng, const uint8_t *d, size_t n, int fl, void *u) {
  (void)ng;
  (void)fl;
  return wr_buf_append(&((cli *)u)->out, d, n) == WR_OK ? (ssize_t)n : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int cli_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                      size_t nl, const uint8_t *value, size_t vl, uint8_t fl, void *u) {
  (void)ng;
  (void)fl;
  if (nl == 7 && !memcmp(name, ":status", 7))
    snprintf(((cli *)u)->status[f->hd.stream_id / 2], 8, "%.*s", (int)vl, value);
  return 0;
}

static int cli_data(nghttp2_session *ng, uint8_t fl, int32_t id, const uint8_t *d, size_t n,
                    void *u) {
  (void)ng;
  (void)fl;
  wr_buf_append(&((cli *)u)->body[id / 2], d, n);
  return 0;
}

static ssize_t cli_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                        uint32_t *flags, nghttp2_data_source *src, void *u) {
  const char *json = src->ptr;
  size_t n = strlen(json);
  (void)ng;
  (void)id;
  (void)u;
  assert_true(n <= len);
  memcpy(buf, json, n);
  *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

static int32_t update_config(void *user, int32_t version, const uint8_t *json, size_t len,
                             char *err, size_t errlen) {
  cli *c = user;
  c->last_version = version;
  snprintf(c->last_json, sizeof(c->last_json), "%.*s", (int)len, (const char *)json);
  if (c->refuse) {
    snprintf(err, errlen, "refused");
    return version - 1;
  }
  return version;
}

static int c_send(void *user, const uint8_t *data, size_t len) {
  cli *c = user;
  return nghttp2_session_mem_recv(c->ng, data, len) == (ssize_t)len ? WR_OK : WR_ERR_PROTO;
}

static int ctl_opened;
static wr_buf ctl_in;
static void c_ctl_open(void *u) {
  (void)u;
  ctl_opened++;
}
static void c_ctl_data(void *u, const uint8_t *d, size_t n, int fin) {
  (void)u;
  (void)fin;
  if (n) wr_buf_append(&ctl_in, d, n);
}

#define NV(n, v) {(uint8_t *)n, (uint8_t *)v, sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE}

static int32_t cli_post(cli *c, const char *upgrade, const char *json) {
  nghttp2_nv nv[] = {NV(":method", "POST"), NV(":path", "/"), NV(":scheme", "https"),
                     NV(":authority", "localhost:8080"),
                     {(uint8_t *)"cf-cloudflared-proxy-connection-upgrade", (uint8_t *)upgrade,
                      39, strlen(upgrade), NGHTTP2_NV_FLAG_NONE}};
  nghttp2_data_provider prd = {{.ptr = (void *)json}, cli_body};
  return nghttp2_submit_request(c->ng, NULL, nv, 5, json ? &prd : NULL, NULL);
}

/* Zeroes |c| and makes its buffers; before the connector's session, which
 * may send at once. */
static void cli_init(cli *c) {
  memset(c, 0, sizeof(*c));
  wr_buf_init(&c->out, 1 << 20, NULL);
  for (int i = 0; i < 8; i++) wr_buf_init(&c->body[i], 1 << 20, NULL);
}

/* c's nghttp2 client session, with |on_header| and |on_frame| (NULL: none)
 * and its SETTINGS queued. */
static void cli_session(cli *c, nghttp2_on_header_callback on_header,
                        nghttp2_on_frame_recv_callback on_frame) {
  nghttp2_session_callbacks *cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_send_callback(cb, cli_send);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cli_data);
  assert_int_equal(nghttp2_session_client_new(&c->ng, cb, c), 0);
  nghttp2_session_callbacks_del(cb);
  nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, NULL, 0);
}

/* Ends c's session and frees its buffers; after the connector is gone. */
static void cli_free(cli *c) {
  nghttp2_session_del(c->ng);
  wr_buf_free(&c->out);
  for (int i = 0; i < 8; i++) wr_buf_free(&c->body[i]);
}

/* Moves the client's bytes to the connector and back. */
static void pump(cli *c, wr_h2 *h) {
  assert_int_equal(nghttp2_session_send(c->ng), 0);
  if (c->out.len) {
    assert_int_equal(wr_h2_feed(h, c->out.data, c->out.len), WR_OK);
    wr_buf_reset(&c->out);
  }
  assert_int_equal(wr_h2_flush(h), WR_OK);
  assert_int_equal(nghttp2_session_send(c->ng), 0);
}

static void test_config_and_control(void **state) {
  (void)state;
  uv_loop_t loop;
  cli c;
  wr_proxy *p;
  wr_h2 *h;
  cli_init(&c);
  wr_buf_init(&ctl_in, 1 << 20, NULL);
  assert_int_equal(uv_loop_init(&loop), 0);
  wr_rpc_services svc;
  memset(&svc, 0, sizeof(svc));
  svc.update_config = update_config;
  svc.config_user = &c;
  wr_proxy_config pc;
  memset(&pc, 0, sizeof(pc));
  pc.loop = &loop;
  pc.services = &svc;
  assert_int_equal(wr_proxy_new(&pc, &p), WR_OK);
  h = h2_over(p, c_send, c_ctl_open, c_ctl_data, &c);
  cli_session(&c, cli_header, NULL);

  /* The control stream: 200 at once; bytes both ways on its bodies. */
  int32_t ctl = cli_post(&c, "control-stream", NULL);
  assert_int_equal(ctl, 1);
  pump(&c, h);
  assert_int_equal(ctl_opened, 1);
  assert_string_equal(c.status[0], "200");
  assert_int_equal(wr_h2_control_write(h, (const uint8_t *)"rpc-out", 7), WR_OK);
  pump(&c, h);
  assert_int_equal(c.body[0].len, 7);
  assert_memory_equal(c.body[0].data, "rpc-out", 7);

  /* A configuration update, applied and refused. */
  int32_t id = cli_post(&c, "update-configuration",
                        "{\"version\":3,\"config\":{\"ingress\":[{\"service\":\"http_status:404\"}]}}");
  pump(&c, h);
  pump(&c, h);
  assert_int_equal(c.last_version, 3);
  assert_string_equal(c.last_json, "{\"ingress\":[{\"service\":\"http_status:404\"}]}");
  assert_string_equal(c.status[id / 2], "200");
  assert_int_equal(c.body[id / 2].len, strlen("{\"lastAppliedVersion\":3,\"err\":null}"));
  assert_memory_equal(c.body[id / 2].data, "{\"lastAppliedVersion\":3,\"err\":null}",
                      c.body[id / 2].len);
  c.refuse = 1;
  id = cli_post(&c, "update-configuration", "{\"version\":5,\"config\":{}}");
  pump(&c, h);
  pump(&c, h);
  assert_memory_equal(c.body[id / 2].data, "{\"lastAppliedVersion\":4,\"err\":{}}",
                      c.body[id / 2].len);

  wr_h2_free(h);
  wr_proxy_free(p);
  unit_loop_finish(&loop);
  cli_free(&c);
  wr_buf_free(&ctl_in);
}

/* ---- response trailers: cloudflared's trailing HEADERS frame ----------------------------- */

static char trl_seen[512];
static int trl_end, trl_heads;

static int tr_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t nl, const uint8_t *value, size_t vl, uint8_t fl, void *u) {
  if (f->headers.cat != NGHTTP2_HCAT_HEADERS) return cli_header(ng, f, name, nl, value, vl, fl, u);
  snprintf(trl_seen + strlen(trl_seen), sizeof(trl_seen) - strlen(trl_seen), "%.*s=%.*s\n",
           (int)nl, name, (int)vl, value);
  return 0;
}

static void tick_cb(uv_timer_t *t) { (void)t; }

static int tr_frame(nghttp2_session *ng, const nghttp2_frame *f, void *u) {
  (void)ng;
  (void)u;
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_HEADERS) {
    trl_heads++;
    trl_end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  }
  return 0;
}

/* An origin's chunked trailer section reaches the edge after the body as
 * a HEADERS frame with END_STREAM, names in lower case, without the names
 * Go's server refuses as trailers (Content-Type). */
static void test_origin_trailers(void **state) {
  (void)state;
  vctx v;
  cli c;
  memset(&v, 0, sizeof(v));
  cli_init(&c);
  origin_and_proxy(&v, "ingress:\n  - service: http://127.0.0.1:%u\n");
  wr_h2 *h = h2_over(v.proxy, c_send, c_ctl_open, c_ctl_data, &c);
  cli_session(&c, tr_header, tr_frame);

  nghttp2_nv nv[] = {NV(":method", "GET"), NV(":path", "/trailers"), NV(":scheme", "https"),
                     NV(":authority", "app.example.test")};
  int32_t id = nghttp2_submit_request(c.ng, NULL, nv, 4, NULL, NULL);
  assert_int_equal(id, 1);
  /* The loop wakes at least every millisecond; the guard ends a hang. */
  v_timers(&v, tick_cb, 1);
  while (!trl_heads && !v.timed_out) {
    pump(&c, h);
    uv_run(&v.loop, UV_RUN_ONCE);
  }
  pump(&c, h);
  assert_string_equal(c.status[0], "200");
  assert_int_equal(c.body[0].len, 5);
  assert_memory_equal(c.body[0].data, "hello", 5);
  assert_int_equal(trl_heads, 1);
  assert_true(trl_end);
  assert_string_equal(trl_seen, "grpc-status=0\nx-trailer=two words\n");

  wr_h2_free(h);
  v_finish(&v);
  cli_free(&c);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_TESTS(test_kind, test_request_build, test_response_head, test_vector,
                             test_config_and_control, test_origin_trailers));
}
