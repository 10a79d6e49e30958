/* The start of a data stream (see proxy_int.h): the 8-byte preamble and the
 * ConnectRequest are read (the bytes may come in any split), `dest` gives
 * the request target and the path ingress rules match, and the request is
 * routed: to an origin (proxy_http.c), to an answer made here (http_status,
 * hello_world), or refused with the reason cloudflared gives. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "connector/hello_world.h"
#include "connector/proxy_int.h"
#include "connector/access_verify.h"
#include "lib/log.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "proto/preamble.h"

#define WARP_DISABLED_MSG                                                                    \
  "warren received a request from WARP client, but your configuration has disabled ingress " \
  "from WARP clients. To enable this, set \"warp-routing:\\n\\t enabled: true\" in your "     \
  "config.yaml"

/* --- dest ---------------------------------------------------------------------- */

/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
static int scheme_char(char c, int first) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
  return !first && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.');
}

/* Where the path of |d| starts: after "scheme://authority" when the URL is
 * absolute, else at 0. */
static size_t dest_path_start(const char *d, size_t len) {
  size_t i = 0, j = 0;
  while (j < len && scheme_char(d[j], j == 0)) j++;
  if (j > 0 && len - j >= 3 && d[j] == ':' && d[j + 1] == '/' && d[j + 2] == '/') {
    i = j + 3;
    while (i < len && d[i] != '/' && d[i] != '?') i++;
  }
  return i;
}

/* Go writes URL.RequestURI(): the path re-escaped (spaces, controls and
 * non-ASCII bytes as %XX), the query as sent. SP/CTL/DEL are escaped in
 * the query too so the request line stays valid. [p0, end) is path and
 * query, the query starting at q0. */
static char *request_uri(const char *d, size_t p0, size_t q0, size_t end) {
  char *t = wr_xmalloc(3 * (end - p0) + 2);
  size_t ti = 0;
  if (q0 == p0 || d[p0] != '/') t[ti++] = '/';
  for (size_t i = p0; i < end; i++) {
    unsigned char ch = (unsigned char)d[i];
    if (ch <= 0x20 || ch == 0x7f || (ch >= 0x80 && i < q0)) {
      t[ti++] = '%';
      wr_hex_byte(ch, 1, t + ti);
      ti += 2;
    } else {
      t[ti++] = (char)ch;
    }
  }
  t[ti] = '\0';
  return t;
}

/* The %-decoded path in [p0, q0), or NULL for a bad %-escape or a %00
 * (which would cut the path ingress rules match short). */
static char *decoded_path(const char *d, size_t p0, size_t q0) {
  char *m = wr_xmalloc((q0 - p0) + 1);
  if (wr_pct_decode(d + p0, q0 - p0, 0, m, (q0 - p0) + 1) < 0) {
    free(m);
    return NULL;
  }
  return m;
}

/* Splits |dest| (cloudflared's URL, normally absolute; a relative "/p"
 * works too) as Go's url.Parse + RequestURI: |target| is path and query for
 * the request line, |path| the %-decoded path ingress rules match. The
 * URL's scheme and host are not used: the origin's replace them (and with
 * no HttpHost, Go sends the origin's host). Returns WR_OK or WR_ERR_PROTO
 * for a bad %-escape (url.Parse fails: the stream is reset). */
static int parse_dest(const char *d, size_t len, char **target, char **path) {
  const char *hash = memchr(d, '#', len);
  size_t p0, q0;
  if (hash) len = (size_t)(hash - d);
  p0 = dest_path_start(d, len);
  q0 = p0;
  while (q0 < len && d[q0] != '?') q0++;
  char *t = request_uri(d, p0, q0, len);
  char *m = decoded_path(d, p0, q0);
  if (!m) {
    free(t);
    return WR_ERR_PROTO;
  }
  *target = t;
  *path = m;
  return WR_OK;
}

/* --- answers made here ---------------------------------------------------------- */

static void serve_hello(pstream *s) {
  wr_buf page;
  wr_hello_request hr;
  wr_http_header hs[3];
  char clen[24], date[64];
  time_t now = time(NULL);
  struct tm tm;
  int head = s->hm.method_len == 4 && memcmp(s->hm.method, "HEAD", 4) == 0;
  wr_buf_init(&page, 4u * 1024u * 1024u, NULL);
  memset(&hr, 0, sizeof(hr));
  hr.method = s->hm.method;
  hr.method_len = s->hm.method_len;
  hr.host = s->hm.host;
  hr.host_len = s->hm.host_len;
  hr.path = s->target;
  hr.path_len = strlen(s->target);
  hr.headers = s->hdrs;
  hr.nheaders = s->hm.nheaders;
  hr.version = s->p->version;
  if (wr_hello_world_page(&hr, &page) != WR_OK) {
    wr_buf_free(&page);
    wr__proxy_respond_error(s, "hello_world: request too large to echo");
    return;
  }
  snprintf(clen, sizeof(clen), "%zu", page.len);
  gmtime_r(&now, &tm);
  strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  hs[0] = (wr_http_header){"Content-Type", 12, WR_HELLO_WORLD_CONTENT_TYPE,
                           strlen(WR_HELLO_WORLD_CONTENT_TYPE)};
  hs[1] = (wr_http_header){"Content-Length", 14, clen, strlen(clen)};
  hs[2] = (wr_http_header){"Date", 4, date, strlen(date)};
  wr__proxy_respond_local(s, 200, hs, 3, head ? NULL : page.data, head ? 0 : page.len);
  wr_buf_free(&page);
}

/* --- routing -------------------------------------------------------------------- */

/* originRequest.access.required: 1 when the request may go on, else 0
 * after answering 403 (connector/access_verify.h). */
static int access_ok(pstream *s) {
  const wr_access_config *acc = &s->rule->origin.access;
  char err[256];
  if (!acc->required) return 1;
  const wr_http_header *jwt = wr__proxy_field(s, "Cf-Access-Jwt-Assertion");
  const char *tok = jwt ? jwt->value : NULL;
  size_t len = jwt ? jwt->value_len : 0;
  if (!s->p->access) s->p->access = wr_access_verifier_new(s->p->loop);
  if (wr_access_verifier_check(s->p->access, acc, tok, len, err, sizeof(err)) == WR_OK) return 1;
  wr_info("access: refused %.*s%s: %s", s->hm.host ? (int)s->hm.host_len : 0, s->hm.host ? s->hm.host : "",
          s->target ? s->target : "", err);
  static const char body[] = "Forbidden: this origin requires a valid Cloudflare Access token\n";
  wr_http_header h[1] = {{"Content-Type", 12, "text/plain; charset=utf-8", 25}};
  wr__proxy_respond_local(s, 403, h, 1, (const uint8_t *)body, sizeof(body) - 1);
  return 0;
}

/* Serves the stream by the kind of service its rule names. */
static void route(pstream *s) {
  const wr_service *svc = &s->rule->service;
  if (!access_ok(s)) return;
  switch (svc->kind) {
  case WR_SVC_HTTP_STATUS:
    wr__proxy_respond_local(s, svc->status, NULL, 0, NULL, 0);
    return;
  case WR_SVC_HELLO_WORLD:
    serve_hello(s);
    return;
  case WR_SVC_HTTP:
  case WR_SVC_UNIX:
    wr__proxy_http_start(s);
    return;
  case WR_SVC_STREAM:
    wr__proxy_tcp_ws_start(s);
    return;
  case WR_SVC_BASTION:
    wr__proxy_respond_error(s, "bastion mode is not supported by warren yet");
    return;
  default:
    wr__proxy_respond_error(s, "socks-proxy is not supported by warren yet");
    return;
  }
}

/* Answers the ConnectRequest types that are not HTTP or websocket. Returns
 * 1 when it did. */
static int refuse_type(pstream *s) {
  const wr_ingress *ing = s->ing;
  if (s->req.type == WR_CONNECT_TCP) {
    if (!ing || !ing->warp.enabled)
      wr__proxy_respond_error(s, WARP_DISABLED_MSG);
    else
      wr__proxy_tcp_warp_start(s);
    return 1;
  }
  if (s->req.type != WR_CONNECT_HTTP && s->req.type != WR_CONNECT_WEBSOCKET) {
    wr__proxy_respond_errorf(s, "unsupported error type: %u", (unsigned)s->req.type);
    return 1;
  }
  return 0;
}

void wr__proxy_dispatch(pstream *s) {
  wr_proxy *p = s->p;
  size_t nmeta = s->req.nmeta;
  char *mpath = NULL;
  int idx, rv;

  if (s->req.type == WR_CONNECT_TCP) {
    /* Raw TCP: cloudflared reads neither HTTP metadata nor a URL from it. */
    p->stats.total_requests++;
    p->stats.concurrent_requests++;
    s->counted = 1;
    refuse_type(s);
    return;
  }
  s->hdrs = wr_xcalloc(nmeta + 1, sizeof(*s->hdrs));
  rv = wr_httpmeta_req_decode(s->req.meta, nmeta, &s->arena, s->hdrs, nmeta + 1, &s->hm);
  if (rv != WR_OK) {
    wr__proxy_reject(s, "malformed request metadata");
    return;
  }
  if (parse_dest(s->req.dest, s->req.dest_len, &s->target, &mpath) != WR_OK) {
    wr__proxy_reject(s, "bad dest URL");
    return;
  }
  p->stats.total_requests++;
  p->stats.concurrent_requests++;
  s->counted = 1;
  if (refuse_type(s)) {
    free(mpath);
    return;
  }
  s->ws = s->req.type == WR_CONNECT_WEBSOCKET;
  /* The management hostname comes before every ingress rule, as
   * cloudflared's internal rules do. */
  if (wr__proxy_mgmt_host(s)) {
    wr__proxy_mgmt_start(s, mpath);
    free(mpath);
    return;
  }
  idx = s->ing ? wr_ingress_match(s->ing, s->hm.host ? s->hm.host : "", mpath) : WR_ERR_NOTFOUND;
  free(mpath);
  if (idx < 0) {
    wr__proxy_respond_error(s, "No ingress rules were defined");
    return;
  }
  s->rule = &s->ing->rules[idx];
  /* cloudflared's request line at debug, an "http" event for `tail`. */
  WR_LOG_EV(WR_LOG_DEBUG, WR_LOG_EV_HTTP, "%.*s %.*s HTTP/1.1 ingressRule=%d", (int)s->hm.method_len,
            s->hm.method ? s->hm.method : "", (int)s->req.dest_len, s->req.dest, idx);
  route(s);
}

/* --- the head of the stream ---------------------------------------------------------- */

void wr__proxy_head_input(pstream *s, const uint8_t *data, size_t len, int fin) {
  size_t room = WR__PROXY_HEAD_MAX - s->hbuf.len, take = len < room ? len : room, pre = 0,
         consumed = 0;
  int rv;
  if (take && wr_buf_append(&s->hbuf, data, take) != WR_OK) {
    wr__proxy_reject(s, "out of memory");
    return;
  }
  rv = wr_preamble_classify(s->hbuf.data, s->hbuf.len, &pre, NULL);
  if (rv == WR_AGAIN) {
    if (fin) wr__proxy_reject(s, "stream ended inside the preamble");
    return;
  }
  if (rv == WR_PREAMBLE_RPC) {
    /* Bytes after the signature: those in hbuf, then the rest of |data|. */
    size_t rest = s->hbuf.len - pre;
    wr__proxy_consume(s, pre);
    wr__proxy_rpc_start(s, s->hbuf.data + pre, rest, fin && take == len);
    if (take < len && s->state == ST_RPC) wr__proxy_rpc_input(s, data + take, len - take, fin);
    return;
  }
  if (rv != WR_PREAMBLE_DATA) {
    wr__proxy_reject(s, "unknown stream signature");
    return;
  }
  rv = wr_connect_request_decode_alloc(s->hbuf.data + pre, s->hbuf.len - pre, NULL, NULL, 0,
                                       &s->req, &consumed);
  if (rv == WR_AGAIN) {
    if (fin || s->hbuf.len >= WR__PROXY_HEAD_MAX)
      wr__proxy_reject(s, fin ? "stream ended inside the ConnectRequest"
                              : "ConnectRequest too large");
    return;
  }
  if (rv != WR_OK) {
    wr__proxy_reject(s, "undecodable ConnectRequest");
    return;
  }
  s->have_req = 1;
  size_t head = pre + consumed;
  size_t rest1 = s->hbuf.len - head; /* body bytes already in hbuf */
  wr__proxy_consume(s, head);
  wr__proxy_dispatch(s);
  /* The rest are body bytes (hbuf is not touched again: the request's
   * strings point into it). */
  if (wr__proxy_live(s)) {
    if (rest1) wr__proxy_body_input(s, s->hbuf.data + head, rest1, 0);
    if (take < len || fin) wr__proxy_body_input(s, data + take, len - take, fin);
  }
}
