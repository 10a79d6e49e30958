/* HTTP translation for the proxy (see proxy_int.h): the ConnectRequest
 * becomes an HTTP/1.1 request to the origin as cloudflared's proxy and Go's
 * transport write it (head, then the body re-framed as it streams in), and
 * the origin's response becomes a ConnectResponse plus the decoded body
 * streamed back. A pooled connection that fails before its response head
 * is retried once on a fresh one for replayable requests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "connector/proxy_int.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

#define HEAD_TOO_LARGE "net/http: server response headers exceeded the limit; aborted"

static void resp_body(pstream *s, const uint8_t *data, size_t len);

static int name_is(const wr_http_header *h, const char *name) {
  size_t n = strlen(name);
  return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* Go's httpguts.ValidHeaderFieldValue: no control bytes but HTAB. */
static int valid_value(const char *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
  }
  return 1;
}

/* --- request framing ------------------------------------------------------------------ */

static int parse_content_length(const char *v, size_t n, uint64_t *out) {
  uint64_t x = 0;
  size_t i = 0;
  if (n && v[0] == '+') i = 1;
  if (i == n || n - i > 18) return WR_ERR_PROTO;
  for (; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return WR_ERR_PROTO;
    x = x * 10 + (uint64_t)(v[i] - '0');
  }
  *out = x;
  return WR_OK;
}

const wr_http_header *wr__proxy_field(const pstream *s, const char *name) {
  for (size_t i = 0; i < s->hm.nheaders; i++)
    if (name_is(&s->hdrs[i], name)) return &s->hdrs[i];
  return NULL;
}

/* Whether a Transfer-Encoding value asks for chunked (its first 255 bytes,
 * case-insensitively, as a substring). */
static int te_chunked(const wr_http_header *te) {
  char tmp[256];
  snprintf(tmp, sizeof(tmp), "%.*s", (int)te->value_len, te->value);
  for (char *c = tmp; *c; c++)
    if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
  return strstr(tmp, "chunked") != NULL;
}

/* Body framing as cloudflared's buildHTTPRequest + Go's transport. Returns
 * WR_OK or WR_ERR_PROTO for a bad Content-Length. */
static int request_framing(pstream *s) {
  const wr_http_header *cl, *te;
  uint64_t n = 0;
  if (s->ws) {
    s->rb = RB_PIPE;
    return WR_OK;
  }
  cl = wr__proxy_field(s, "Content-Length");
  te = wr__proxy_field(s, "Transfer-Encoding");
  if (cl && cl->value_len && parse_content_length(cl->value, cl->value_len, &n) != WR_OK)
    return WR_ERR_PROTO;
  if (n > 0) {
    s->rb = RB_LENGTH;
    s->rb_left = n;
  } else {
    s->rb = te && te_chunked(te) ? RB_CHUNKED : RB_NONE;
  }
  return WR_OK;
}

/* --- request head ----------------------------------------------------------------------- */

/* The Host the origin sees: httpHostHeader, else the request's, else (as
 * Go does without one) the origin URL's authority, else "localhost". */
static wr_http_header request_host(const pstream *s) {
  const char *override = s->rule->origin.http_host_header;
  if (override[0]) return (wr_http_header){"Host", 4, override, strlen(override)};
  if (s->hm.host) return (wr_http_header){"Host", 4, s->hm.host, s->hm.host_len};
  if (s->rule->service.kind == WR_SVC_HTTP)
    return (wr_http_header){"Host", 4, s->rule->service.authority,
                            strlen(s->rule->service.authority)};
  return (wr_http_header){"Host", 4, "localhost", 9};
}

/* Request fields that do not go to the origin as they came: framing and
 * connection fields (set again below), cloudflared's own, and the websocket
 * handshake fields Go's transport writes itself. */
static int dropped_field(const pstream *s, const wr_http_header *h, int override) {
  static const char *const drop[] = {"Host",       "Content-Length",
                                     "Transfer-Encoding", "Trailer",
                                     "Connection", "Cf-Cloudflared-Proxy-Connection-Upgrade",
                                     "Cf-Trace-Id"};
  for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
    if (name_is(h, drop[i])) return 1;
  if (s->ws && (name_is(h, "Upgrade") || name_is(h, "Sec-Websocket-Version"))) return 1;
  return override && name_is(h, "X-Forwarded-Host");
}

/* Appends the request's fields that go to the origin to |out| (*n
 * entries). Returns WR_OK, or WR_ERR_PROTO after answering the stream
 * (a field Go's transport refuses to write). */
static int copy_request_fields(pstream *s, int override, wr_http_header *out, size_t *n) {
  for (size_t i = 0; i < s->hm.nheaders; i++) {
    const wr_http_header *h = &s->hdrs[i];
    if (dropped_field(s, h, override)) continue;
    if (!wr_httpmeta_is_token(h->name, h->name_len)) {
      wr__proxy_respond_errorf(s,
                               WR__PROXY_UNREACHABLE
                               ": net/http: invalid header field name \"%.*s\"",
                               (int)h->name_len, h->name);
      return WR_ERR_PROTO;
    }
    if (!valid_value(h->value, h->value_len)) {
      wr__proxy_respond_errorf(s,
                               WR__PROXY_UNREACHABLE
                               ": net/http: invalid header field value for \"%.*s\"",
                               (int)h->name_len, h->name);
      return WR_ERR_PROTO;
    }
    out[(*n)++] = *h;
  }
  return WR_OK;
}

/* The fields the proxy adds after the request's own: connection handling,
 * X-Forwarded-Host when Host was overridden, Cf-Warp-Tag-Id, the body
 * framing (|clen| holds the Content-Length text). Returns the new count. */
static size_t add_request_fields(const pstream *s, int override, wr_http_header *out, size_t n,
                                 char clen[24]) {
  if (s->ws) {
    out[n++] = (wr_http_header){"Connection", 10, "Upgrade", 7};
    out[n++] = (wr_http_header){"Upgrade", 7, "websocket", 9};
    out[n++] = (wr_http_header){"Sec-Websocket-Version", 21, "13", 2};
  } else {
    out[n++] = (wr_http_header){"Connection", 10, "keep-alive", 10};
  }
  if (override)
    out[n++] = (wr_http_header){"X-Forwarded-Host", 16, s->hm.host ? s->hm.host : "",
                                s->hm.host ? s->hm.host_len : 0};
  for (size_t i = 0; i < s->p->ntags; i++) /* names are "Cf-Warp-Tag-NAME" already */
    out[n++] = (wr_http_header){s->p->tag_names[i], strlen(s->p->tag_names[i]),
                                s->p->tag_values[i], strlen(s->p->tag_values[i])};
  out[n++] = (wr_http_header){"Cf-Warp-Tag-Id", 14, s->p->tag, strlen(s->p->tag)};
  if (s->rb == RB_LENGTH) {
    snprintf(clen, 24, "%llu", (unsigned long long)s->rb_left);
    out[n++] = (wr_http_header){"Content-Length", 14, clen, strlen(clen)};
  } else if (s->rb == RB_CHUNKED) {
    out[n++] = (wr_http_header){"Transfer-Encoding", 17, "chunked", 7};
  }
  return n;
}

wr_http_header *wr__proxy_request_fields(pstream *s, size_t *n, char clen[24]) {
  int override = s->rule->origin.http_host_header[0] != '\0';
  wr_http_header *out = wr_xcalloc(s->hm.nheaders + s->p->ntags + 10, sizeof(*out));
  *n = 0;
  out[(*n)++] = request_host(s);
  if (copy_request_fields(s, override, out, n) != WR_OK) {
    free(out);
    return NULL;
  }
  *n = add_request_fields(s, override, out, *n, clen);
  return out;
}

/* Request head to the origin into s->req_head. Returns WR_OK or answers
 * the stream with an error and returns < 0. */
static int build_request_head(pstream *s) {
  size_t n = 0;
  char clen[24];
  int rv;
  wr_http_header *out = wr__proxy_request_fields(s, &n, clen);
  if (!out) return WR_ERR_PROTO;
  wr_buf_reset(&s->req_head);
  rv = wr_http1_write_request_head(&s->req_head, s->hm.method, s->hm.method_len, s->target,
                                   strlen(s->target), out, n);
  free(out);
  if (rv != WR_OK) {
    wr__proxy_respond_errorf(s, WR__PROXY_UNREACHABLE ": net/http: invalid request (%s)",
                             wr_strerror(rv));
    return rv;
  }
  return WR_OK;
}

void wr__proxy_http_start(pstream *s) {
  if (request_framing(s) != WR_OK) {
    wr__proxy_reject(s, "bad Content-Length");
    return;
  }
  if (s->rb == RB_NONE) wr__proxy_drop_held(s);
  if (build_request_head(s) != WR_OK) return;
  wr__proxy_set_state(s, ST_DIAL);
  wr__proxy_dial(s, 1);
}

/* --- request body ------------------------------------------------------------------------ */

void wr__proxy_return_credit(pstream *s) {
  if (s->credit_owed && s->o && wr_conn_write_queued(s->o->conn) <= WR_CONN_LOW_WATER) {
    wr__proxy_consume(s, s->credit_owed);
    s->credit_owed = 0;
  }
}

int wr__proxy_origin_write(pstream *s, const void *data, size_t len) {
  if (!s->o) return WR_ERR_INVAL;
  if (wr_conn_write(s->o->conn, data, len) != WR_OK) {
    wr__proxy_respond_errorf(s, WR__PROXY_UNREACHABLE ": write: broken pipe");
    return WR_ERR_IO;
  }
  return WR_OK;
}

/* Forwards request body bytes with the request's framing. */
static void body_forward(pstream *s, const uint8_t *data, size_t len) {
  char line[24];
  switch (s->rb) {
  case RB_LENGTH: {
    size_t n = len < s->rb_left ? len : (size_t)s->rb_left;
    if (n && wr__proxy_origin_write(s, data, n) != WR_OK) return;
    s->rb_left -= n;
    s->body_sent += n;
    s->credit_owed += n;
    wr__proxy_consume(s, len - n); /* beyond Content-Length: dropped */
    if (s->rb_left == 0) s->rb_done = 1;
    break;
  }
  case RB_CHUNKED: {
    size_t ln = wr_http1_chunk_header(len, line);
    if (wr__proxy_origin_write(s, line, ln) != WR_OK ||
        wr__proxy_origin_write(s, data, len) != WR_OK ||
        wr__proxy_origin_write(s, "\r\n", 2) != WR_OK)
      return;
    s->body_sent += len;
    s->credit_owed += len;
    break;
  }
  case RB_PIPE:
    if (wr__proxy_origin_write(s, data, len) != WR_OK) return;
    s->body_sent += len;
    s->credit_owed += len;
    break;
  default:
    wr__proxy_consume(s, len);
    return;
  }
  wr__proxy_return_credit(s);
}

/* The edge finished the request body (FIN) and the origin is ready. */
static void body_end(pstream *s) {
  switch (s->rb) {
  case RB_LENGTH:
    if (!s->rb_done) {
      unsigned long long want = s->body_sent + s->rb_left, got = s->body_sent;
      wr__proxy_respond_errorf(
          s, WR__PROXY_UNREACHABLE ": http: ContentLength=%llu with Body length %llu", want, got);
    }
    break;
  case RB_CHUNKED:
    if (!s->rb_done) {
      s->rb_done = 1;
      wr__proxy_origin_write(s, WR_HTTP1_LAST_CHUNK, strlen(WR_HTTP1_LAST_CHUNK));
    }
    break;
  case RB_PIPE:
    wr__proxy_pipe_edge_fin(s);
    break;
  default:
    break;
  }
}

void wr__proxy_body_input(pstream *s, const uint8_t *data, size_t len, int fin) {
  if (s->mws) {
    wr__proxy_mgmt_edge_input(s, data, len, fin);
    return;
  }
  if (s->tcp) {
    wr__proxy_tcp_edge_input(s, data, len, fin);
    return;
  }
  if (s->h2s) { /* an HTTP/2 origin pulls the body from |held| */
    if (len && (s->rb == RB_NONE || s->rb_done || wr_buf_append(&s->held, data, len) != WR_OK))
      wr__proxy_consume(s, len);
    if (fin) s->edge_fin = 1;
    wr__oh2_body(s);
    return;
  }
  if (len) {
    if (s->state == ST_DONE || s->rb == RB_NONE || s->rb_done) {
      wr__proxy_consume(s, len);
    } else if (!s->ready || s->hold) {
      if (wr__proxy_hold_input(s, data, len) != WR_OK) return;
    } else {
      body_forward(s, data, len);
    }
  }
  if (fin && !s->edge_fin) {
    s->edge_fin = 1;
    if (s->ready && !s->hold && s->state != ST_DONE) body_end(s);
  }
}

/* --- before the response ------------------------------------------------------------------ */

static int retryable(pstream *s) {
  static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "TRACE"};
  if (!s->o || !s->o->reused || s->resp_any || s->retried) return 0;
  if (s->rb != RB_NONE && !(s->rb == RB_PIPE && s->hold)) return 0;
  for (size_t i = 0; i < 4; i++)
    if (s->hm.method_len == strlen(idem[i]) && memcmp(s->hm.method, idem[i], s->hm.method_len) == 0)
      return 1;
  return 0;
}

/* The origin failed before its response head (EOF, reset, bad head). A
 * pooled connection the origin closed while idle is retried once on a
 * fresh one, as Go's transport does for replayable requests. */
static void fail_before_response(pstream *s, const char *why) {
  if (retryable(s)) {
    wr__proxy_detach(s, 0);
    s->retried = 1;
    wr_buf_reset(&s->rbuf);
    wr__proxy_set_state(s, ST_DIAL);
    wr__proxy_dial(s, 0); /* on failure it answered the stream */
    return;
  }
  wr__proxy_respond_errorf(s, WR__PROXY_UNREACHABLE ": %s", why);
}

void wr__proxy_origin_ready(pstream *s) {
  if (!s->o) return;
  wr__proxy_set_state(s, ST_WAIT_RESP);
  if (wr_conn_write(s->o->conn, s->req_head.data, s->req_head.len) != WR_OK) {
    fail_before_response(s, "write: broken pipe");
    return;
  }
  s->ready = 1;
  s->hold = s->rb == RB_PIPE;
  if (!s->hold && s->held.len) {
    wr_buf h = s->held;
    wr_buf_init(&s->held, WR__PROXY_HELD_MAX, NULL);
    body_forward(s, h.data, h.len);
    wr_buf_free(&h);
  }
  if (s->edge_fin && !s->hold && s->state == ST_WAIT_RESP) body_end(s);
}

/* --- response ---------------------------------------------------------------------------- */

static void response_done(pstream *s) {
  int reuse = s->resp_keepalive && !s->extra && !s->ws &&
              (s->rb == RB_NONE || s->rb_done) && s->held.len == 0;
  wr__proxy_complete(s, reuse);
}

/* The origin's response head: ConnectResponse{HttpStatus, HttpHeader:*},
 * without the fields of the origin's framing. */
static void send_response_head(pstream *s, const wr_http1_head *h) {
  wr_http_header *hs = wr_xcalloc(h->nheaders + 1, sizeof(*hs));
  size_t n = 0;
  for (size_t i = 0; i < h->nheaders; i++) {
    if (name_is(&h->headers[i], "Transfer-Encoding") || name_is(&h->headers[i], "Trailer"))
      continue; /* Go's reader takes them out of resp.Header */
    if (h->body == WR_HTTP1_BODY_CHUNKED && name_is(&h->headers[i], "Content-Length")) continue;
    hs[n++] = h->headers[i];
  }
  if (wr__proxy_send_head(s, h->status, hs, n) != WR_OK)
    wr__proxy_respond_errorf(s, WR__PROXY_UNREACHABLE ": malformed HTTP response");
  free(hs);
}

static void on_response_head(pstream *s, const wr_http1_head *h) {
  wr_buf_reset(&s->req_head);
  send_response_head(s, h);
  if (s->state == ST_DONE) return;
  if (h->status == 101) {
    wr__proxy_pipe_start(s);
    return;
  }
  if (s->ws) {
    /* A websocket request answered without 101: pass it on like http. */
    s->rb = RB_NONE;
    s->hold = 0;
    wr__proxy_drop_held(s);
  }
  wr__proxy_set_state(s, ST_BODY);
  s->body_mode = h->body;
  s->body_left = h->content_length;
  s->resp_keepalive = h->keep_alive;
  wr_http1_chunked_init(&s->chunked);
  if (h->body == WR_HTTP1_BODY_NONE || (h->body == WR_HTTP1_BODY_LENGTH && h->content_length == 0))
    response_done(s);
}

/* Parses the head in s->rbuf, reading past 1xx interim responses.
 * Returns WR_OK (*h, *consumed set), WR_AGAIN, or an error after failing
 * the request. */
static int parse_response_head(pstream *s, wr_http1_head *h, size_t *consumed) {
  for (;;) {
    if (!s->rh) s->rh = wr_xcalloc(WR_HTTP1_DEFAULT_MAX_HEADERS, sizeof(*s->rh));
    memset(h, 0, sizeof(*h));
    int rv = wr_http1_parse_response(s->rbuf.data, s->rbuf.len, s->hm.method, NULL, s->rh,
                                     WR_HTTP1_DEFAULT_MAX_HEADERS, h, consumed);
    if (rv == WR_AGAIN) return rv;
    if (rv != WR_OK) {
      fail_before_response(s, rv == WR_ERR_LIMIT ? HEAD_TOO_LARGE : "malformed HTTP response");
      return rv;
    }
    if (h->status >= 100 && h->status < 200 && h->status != 101) {
      /* 100 Continue, 103 Early Hints: Go's transport reads past them. */
      wr_buf_consume(&s->rbuf, *consumed);
      continue;
    }
    return WR_OK;
  }
}

/* Response bytes while waiting for the head. */
static void resp_head_input(pstream *s, const uint8_t *data, size_t len) {
  wr_http1_head h;
  size_t consumed, from = s->rbuf.len > 3 ? s->rbuf.len - 3 : 0;
  if (wr_buf_append(&s->rbuf, data, len) != WR_OK) {
    fail_before_response(s, HEAD_TOO_LARGE);
    return;
  }
  /* The parser starts over on every call: wait for the blank line (or for
   * more than a head may hold) so an origin dribbling bytes costs linear
   * time, not quadratic. */
  if (s->rbuf.len <= WR_HTTP1_DEFAULT_MAX_HEAD &&
      !memmem(s->rbuf.data + from, s->rbuf.len - from, "\r\n\r\n", 4))
    return;
  if (parse_response_head(s, &h, &consumed) != WR_OK) return;
  /* Bytes after a response without body: the origin pipelines or is
   * confused; either way the connection is not reused. */
  if (h.status != 101 && s->rbuf.len > consumed &&
      (h.body == WR_HTTP1_BODY_NONE ||
       (h.body == WR_HTTP1_BODY_LENGTH && h.content_length == 0)))
    s->extra = 1;
  on_response_head(s, &h);
  /* The head's strings pointed into rbuf; what follows it is body. */
  if (s->state == ST_BODY || s->state == ST_PIPE) {
    wr_buf rest = s->rbuf;
    wr_buf_init(&s->rbuf, WR__PROXY_RBUF_MAX, NULL);
    if (rest.len > consumed) {
      if (s->state == ST_PIPE)
        wr__proxy_emit(s, rest.data + consumed, rest.len - consumed);
      else
        resp_body(s, rest.data + consumed, rest.len - consumed);
    }
    wr_buf_free(&rest);
  } else {
    wr_buf_reset(&s->rbuf);
  }
}

/* The chunked body's trailer section (checked by the decoder: "name:
 * value" lines, then the empty line) goes on as trailers, as Go's reader
 * puts it in resp.Trailer for cloudflared's copyTrailers. */
static void send_chunked_trailers(pstream *s) {
  wr_http_header hs[WR_HTTP1_DEFAULT_MAX_HEADERS];
  const char *p = (const char *)s->rbuf.data, *end = p + s->rbuf.len;
  size_t n = 0;
  while (p < end && n < WR_HTTP1_DEFAULT_MAX_HEADERS) {
    const char *eol = memchr(p, '\r', (size_t)(end - p)), *colon;
    if (!eol || eol == p) break; /* the final empty line */
    colon = memchr(p, ':', (size_t)(eol - p));
    if (!colon) break;
    const char *v = colon + 1, *ve = eol;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    hs[n++] = (wr_http_header){p, (size_t)(colon - p), v, (size_t)(ve - v)};
    p = eol + 2;
  }
  wr__proxy_send_trailers(s, hs, n);
  wr_buf_reset(&s->rbuf);
}

/* A chunked response body: the data runs go to the edge; the trailer
 * section, the last bytes the decoder counts in c->trailer, is kept in
 * s->rbuf (idle while the body streams). */
static void resp_body_chunked(pstream *s, const uint8_t *data, size_t len) {
  size_t off = 0;
  while (off < len && s->state == ST_BODY) {
    size_t consumed = 0, doff = 0, dlen = 0, tr = s->chunked.trailer;
    int rv = wr_http1_chunked_decode(&s->chunked, data + off, len - off, &consumed, &doff, &dlen);
    tr = rv == WR_OK ? s->chunked.trailer - tr : 0;
    if (tr && wr_buf_append(&s->rbuf, data + off + consumed - tr, tr) != WR_OK) rv = WR_ERR_LIMIT;
    if (rv != WR_OK) {
      wr_error("Request failed error=\"origin sent a malformed chunked body\" dest=%.*s",
               (int)s->req.dest_len, s->req.dest);
      s->p->stats.request_errors++;
      wr__proxy_reset(s);
      return;
    }
    if (dlen) wr__proxy_emit(s, data + off + doff, dlen);
    off += consumed;
    if (s->chunked.done) {
      if (off < len) s->extra = 1;
      if (s->state == ST_BODY) send_chunked_trailers(s);
      if (s->state == ST_BODY) response_done(s);
      return;
    }
    if (consumed == 0) break;
  }
}

static void resp_body(pstream *s, const uint8_t *data, size_t len) {
  switch (s->body_mode) {
  case WR_HTTP1_BODY_LENGTH: {
    size_t n = len < s->body_left ? len : (size_t)s->body_left;
    wr__proxy_emit(s, data, n);
    s->body_left -= n;
    if (n < len) s->extra = 1;
    if (s->body_left == 0 && s->state == ST_BODY) response_done(s);
    return;
  }
  case WR_HTTP1_BODY_CHUNKED:
    resp_body_chunked(s, data, len);
    return;
  case WR_HTTP1_BODY_EOF:
    wr__proxy_emit(s, data, len);
    return;
  default:
    s->extra = 1;
    return;
  }
}

void wr__proxy_origin_input(pstream *s, const uint8_t *data, size_t len) {
  s->resp_any = 1;
  switch (s->state) {
  case ST_WAIT_RESP:
    resp_head_input(s, data, len);
    break;
  case ST_BODY:
    resp_body(s, data, len);
    break;
  case ST_PIPE:
    wr__proxy_emit(s, data, len);
    break;
  default:
    break; /* ST_DONE: the edge is not listening any more */
  }
}

/* The origin ended (|status| WR_OK) or failed while sending the body. */
static void body_eof(pstream *s, int status, const char *msg) {
  if (s->body_mode == WR_HTTP1_BODY_EOF && status == WR_OK) {
    s->resp_keepalive = 0;
    response_done(s);
    return;
  }
  /* Died mid-body: the edge must see a broken response. */
  wr_error("Request failed error=\"origin closed the connection before the end of the "
           "response body%s%s\" dest=%.*s",
           status == WR_OK ? "" : ": ", status == WR_OK ? "" : (msg ? msg : ""),
           (int)s->req.dest_len, s->req.dest);
  s->p->stats.request_errors++;
  wr__proxy_reset(s);
}

void wr__proxy_origin_eof(pstream *s, int status, const char *msg) {
  switch (s->state) {
  case ST_WAIT_RESP:
    fail_before_response(s, status == WR_OK ? "EOF"
                                            : (msg && msg[0] ? msg : wr_strerror(status)));
    break;
  case ST_BODY:
    body_eof(s, status, msg);
    break;
  case ST_PIPE:
    wr__proxy_complete(s, 0); /* the first EOF ends both directions */
    break;
  default:
    wr__proxy_detach(s, 0);
    break;
  }
}

/* --- trailers ------------------------------------------------------------------------------ */

void wr__proxy_send_trailers(pstream *s, const wr_http_header *hs, size_t n) {
  if (!n || s->state == ST_DONE || s->fin_sent) return;
  if (s->ops && s->ops->trailers)
    s->ops->trailers(s->ot, hs, n);
  else
    wr_debug("data stream %lld: %zu response trailers dropped (QUIC carries none)",
             (long long)s->sid, n);
}
