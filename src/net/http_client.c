/* One-shot HTTP/1.1 client on a private libuv loop. See http_client.h.
 *
 * One exchange is a small state machine driven by wr_conn callbacks:
 * connect (resolve, TCP, TLS) -> write the request -> read the head ->
 * read the body -> done. Every failure, and the timeout, goes through
 * finish(), which records the first error, stops the timer and closes the
 * conn; uv_run() returns once libuv has released both handles, and only
 * then are the TLS credentials freed (the conn's session uses them until
 * its close callback).
 *
 * Out-of-memory aborts (wr_x*), as everywhere outside the codecs. */
#include "net/http_client.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#include "lib/buf.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "net/conn.h"
#include "net/tls.h"
#include "proto/http1.h"

#define MAX_HEADERS WR_HTTP1_DEFAULT_MAX_HEADERS
#define ERRMAX 512

typedef enum hc_state {
  HC_CONNECTING, /* wr_conn_connect in flight: resolve, TCP connect, TLS handshake */
  HC_HEAD,       /* request queued; reading the status line and fields */
  HC_BODY,       /* head parsed; reading the body (length, chunked or to EOF) */
  HC_DONE,       /* complete or failed; the conn and timer are closing */
} hc_state;

typedef struct hc {
  const wr_http_request *req;
  wr_http_response *resp;
  wr_url url;
  hc_state state;
  uv_loop_t loop;
  uv_timer_t timer;
  wr_conn *conn;
  wr_tls_creds *creds;
  wr_buf out;        /* the serialised request, until connected */
  wr_buf rx;         /* bytes of the head (and what followed it) */
  wr_buf body;
  wr_http1_body framing;
  uint64_t remaining; /* WR_HTTP1_BODY_LENGTH: bytes still expected */
  wr_http1_chunked chunked;
  size_t max_body;
  int rv;
  char err[ERRMAX];
  wr_url via;                 /* req->connect_to, parsed */
} hc;

/* --- URLs ------------------------------------------------------------------ */

int wr_url_parse(const char *url, wr_url *out) {
  const char *p, *auth, *auth_end, *host, *host_end, *port = NULL;
  memset(out, 0, sizeof(*out));
  if (!url) return WR_ERR_INVAL;
  if (strncasecmp(url, "http://", 7) == 0) {
    p = url + 7;
  } else if (strncasecmp(url, "https://", 8) == 0) {
    p = url + 8;
    out->https = 1;
  } else {
    return WR_ERR_INVAL;
  }
  auth = p;
  auth_end = auth + strcspn(auth, "/?#");
  if (auth_end == auth || memchr(auth, '@', (size_t)(auth_end - auth))) return WR_ERR_INVAL;
  if ((size_t)(auth_end - auth) >= sizeof(out->authority)) return WR_ERR_INVAL;
  memcpy(out->authority, auth, (size_t)(auth_end - auth));
  if (*auth == '[') {
    host = auth + 1;
    host_end = memchr(host, ']', (size_t)(auth_end - host));
    if (!host_end) return WR_ERR_INVAL;
    if (host_end + 1 < auth_end) {
      if (host_end[1] != ':') return WR_ERR_INVAL;
      port = host_end + 2;
    }
  } else {
    host = auth;
    host_end = memchr(auth, ':', (size_t)(auth_end - auth));
    if (host_end) port = host_end + 1;
    else host_end = auth_end;
  }
  if (host_end == host || (size_t)(host_end - host) >= sizeof(out->host)) return WR_ERR_INVAL;
  memcpy(out->host, host, (size_t)(host_end - host));
  for (const char *c = out->host; *c; c++)
    if ((unsigned char)*c <= ' ' || *c == 0x7f) return WR_ERR_INVAL;
  out->port = out->https ? 443 : 80;
  if (port && port < auth_end) {
    unsigned long v = 0;
    for (const char *c = port; c < auth_end; c++) {
      if (!isdigit((unsigned char)*c) || (v = v * 10 + (unsigned long)(*c - '0')) > 65535)
        return WR_ERR_INVAL;
    }
    if (v == 0) return WR_ERR_INVAL;
    out->port = (uint16_t)v;
  }
  if (strchr(auth_end, '#')) return WR_ERR_INVAL; /* a fragment is never sent; refuse rather than guess */
  out->path = auth_end;
  return WR_OK;
}

int wr_url_escape(const char *s, wr_url_escape_mode mode, char *out, size_t cap) {
  size_t n = 0;
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    int keep = isalnum(*c) || *c == '-' || *c == '_' || *c == '.' || *c == '~';
    if (!keep && mode == WR_URL_SEGMENT) keep = *c && strchr("$&+:=@", *c) != NULL;
    if (!keep && mode == WR_URL_PATH) keep = *c && strchr("$&+,/:;=@", *c) != NULL;
    if (keep || (mode == WR_URL_QUERY && *c == ' ')) {
      if (n + 1 >= cap) return WR_ERR_LIMIT;
      out[n++] = *c == ' ' ? '+' : (char)*c;
    } else {
      if (n + 3 >= cap) return WR_ERR_LIMIT;
      out[n++] = '%';
      wr_hex_byte(*c, 1, out + n);
      n += 2;
    }
  }
  if (n >= cap) return WR_ERR_LIMIT;
  out[n] = '\0';
  return (int)n;
}

/* --- errors ------------------------------------------------------------------ */

/* Go's url.Error: `Get "URL": reason` (the method with only its first letter
 * upper-case, the URL quoted as %q does for printable text). */
static void set_err(hc *h, int rv, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(hc *h, int rv, const char *fmt, ...) {
  char reason[ERRMAX], op[16];
  size_t i;
  va_list ap;
  wr_buf b;
  if (h->rv != WR_OK) return; /* the first error wins */
  h->rv = rv;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  for (i = 0; h->req->method[i] && i < sizeof(op) - 1; i++)
    op[i] = (char)(i ? tolower((unsigned char)h->req->method[i]) : toupper((unsigned char)h->req->method[i]));
  op[i] = '\0';
  wr_buf_init(&b, 4 * ERRMAX, NULL);
  wr_buf_printf(&b, "%s \"", op);
  for (const char *c = h->req->url; *c; c++) {
    if (*c == '"' || *c == '\\') wr_buf_append(&b, "\\", 1);
    wr_buf_append(&b, c, 1);
  }
  wr_buf_printf(&b, "\": %s", reason);
  snprintf(h->err, sizeof(h->err), "%s", wr_buf_cstr(&b));
  wr_buf_free(&b);
}

/* --- lifecycle --------------------------------------------------------------- */

static void finish(hc *h) {
  if (h->state == HC_DONE) return;
  h->state = HC_DONE;
  uv_timer_stop(&h->timer);
  if (h->conn) wr_conn_close(h->conn); /* conn pointer stays valid until on_close */
}

static void fail(hc *h, int rv, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(hc *h, int rv, const char *fmt, ...) {
  char msg[ERRMAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  set_err(h, rv, "%s", msg);
  finish(h);
}

static void on_timeout(uv_timer_t *t) {
  hc *h = t->data;
  if (h->state == HC_BODY)
    fail(h, WR_ERR_IO,
         "context deadline exceeded (Client.Timeout or context cancellation while reading body)");
  else
    fail(h, WR_ERR_IO, "context deadline exceeded (Client.Timeout exceeded while awaiting headers)");
}

/* --- response ------------------------------------------------------------------- */

static void body_done(hc *h) {
  wr_http_response *r = h->resp;
  /* Hand the body buffer over, NUL-terminated. */
  wr_buf_cstr(&h->body);
  if (!h->body.data) {
    r->body = wr_xcalloc(1, 1);
    r->body_len = 0;
  } else {
    r->body = h->body.data;
    r->body_len = h->body.len;
    h->body.data = NULL;
  }
  wr_buf_init(&h->body, 0, NULL);
  finish(h);
}

static int body_append(hc *h, const uint8_t *data, size_t len) {
  if (len == 0) return 0;
  if (h->body.len + len > h->max_body) {
    fail(h, WR_ERR_LIMIT, "response body larger than %zu bytes", h->max_body);
    return -1;
  }
  wr_buf_append(&h->body, data, len); /* bounded by max_body above; aborts on OOM */
  return 0;
}

static void feed_body(hc *h, const uint8_t *data, size_t len) {
  switch (h->framing) {
  case WR_HTTP1_BODY_NONE:
    body_done(h); /* bytes after a bodiless response are ignored (we close) */
    return;
  case WR_HTTP1_BODY_LENGTH: {
    size_t take = len < h->remaining ? len : (size_t)h->remaining;
    if (body_append(h, data, take) != 0) return;
    h->remaining -= take;
    if (h->remaining == 0) body_done(h);
    return;
  }
  case WR_HTTP1_BODY_EOF:
    body_append(h, data, len);
    return;
  case WR_HTTP1_BODY_CHUNKED:
    while (len > 0 && h->state == HC_BODY) {
      size_t used = 0, off = 0, dlen = 0;
      int rv = wr_http1_chunked_decode(&h->chunked, data, len, &used, &off, &dlen);
      if (rv != WR_OK) {
        fail(h, WR_ERR_PROTO, "malformed chunked encoding");
        return;
      }
      if (body_append(h, data + off, dlen) != 0) return;
      if (h->chunked.done) {
        body_done(h);
        return;
      }
      if (used == 0) break;
      data += used;
      len -= used;
    }
    return;
  }
}

/* Copies the parsed head out of the receive buffer so the fields survive it. */
static void keep_head(hc *h, const wr_http1_head *hd, size_t head_len) {
  wr_http_response *r = h->resp;
  const char *base = (const char *)h->rx.data;
  r->head = wr_xmalloc(head_len + 1);
  memcpy(r->head, base, head_len);
  r->head[head_len] = '\0';
  r->headers = wr_xcalloc(hd->nheaders ? hd->nheaders : 1, sizeof(*r->headers));
  r->nheaders = hd->nheaders;
  for (size_t i = 0; i < hd->nheaders; i++) {
    r->headers[i] = hd->headers[i];
    r->headers[i].name = r->head + (hd->headers[i].name - base);
    r->headers[i].value = r->head + (hd->headers[i].value - base);
  }
  /* Terminate names (at their ':') and values (at the OWS/CRLF after them)
   * so callers get C strings; nothing parses this copy again. */
  for (size_t i = 0; i < hd->nheaders; i++) {
    r->head[(hd->headers[i].name - base) + hd->headers[i].name_len] = '\0';
    r->head[(hd->headers[i].value - base) + hd->headers[i].value_len] = '\0';
  }
  r->status = hd->status;
}

static void parse_head(hc *h) {
  wr_http_header hdrs[MAX_HEADERS];
  wr_http1_head hd;
  size_t consumed = 0;
  for (;;) {
    int rv = wr_http1_parse_response(h->rx.data, h->rx.len, h->req->method, NULL, hdrs,
                                     MAX_HEADERS, &hd, &consumed);
    if (rv == WR_AGAIN) return;
    if (rv == WR_ERR_LIMIT) {
      fail(h, WR_ERR_LIMIT, "net/http: server response headers exceeded %u bytes; aborted",
           WR_HTTP1_DEFAULT_MAX_HEAD);
      return;
    }
    if (rv != WR_OK) {
      size_t n = strcspn((const char *)h->rx.data, "\r\n");
      fail(h, WR_ERR_PROTO,
           "net/http: HTTP/1.x transport connection broken: malformed HTTP response \"%.*s\"",
           (int)(n > 80 ? 80 : n), (const char *)h->rx.data);
      return;
    }
    if (hd.status >= 100 && hd.status < 200 && hd.status != 101) {
      wr_buf_consume(&h->rx, consumed); /* 100 Continue and friends: skip */
      continue;
    }
    break;
  }
  keep_head(h, &hd, consumed);
  h->framing = hd.body;
  h->remaining = hd.content_length;
  if (h->framing == WR_HTTP1_BODY_LENGTH && hd.content_length > h->max_body) {
    fail(h, WR_ERR_LIMIT, "response body larger than %zu bytes", h->max_body);
    return;
  }
  wr_http1_chunked_init(&h->chunked);
  h->state = HC_BODY;
  wr_buf_consume(&h->rx, consumed);
  if (h->framing == WR_HTTP1_BODY_NONE || (h->framing == WR_HTTP1_BODY_LENGTH && h->remaining == 0)) {
    body_done(h);
    return;
  }
  if (h->rx.len) feed_body(h, h->rx.data, h->rx.len);
  wr_buf_reset(&h->rx);
}

/* --- conn callbacks ------------------------------------------------------------- */

static void on_connect(wr_conn *c, int status, const char *msg, void *user) {
  hc *h = user;
  if (h->state == HC_DONE) return;
  if (status != WR_OK) {
    int rv = status == WR_ERR_CRYPTO || (msg && strncmp(msg, "tls:", 4) == 0) ? WR_ERR_CRYPTO : WR_ERR_IO;
    fail(h, rv, "%s", msg && *msg ? msg : wr_strerror(status));
    return;
  }
  h->state = HC_HEAD;
  if (wr_conn_write(c, h->out.data, h->out.len) != WR_OK) fail(h, WR_ERR_IO, "write: connection closed");
  wr_buf_free(&h->out);
}

static void on_read(wr_conn *c, const uint8_t *data, size_t len, void *user) {
  hc *h = user;
  (void)c;
  if (h->state == HC_HEAD) {
    if (wr_buf_append(&h->rx, data, len) != WR_OK) {
      fail(h, WR_ERR_LIMIT, "net/http: server response headers exceeded %u bytes; aborted",
           WR_HTTP1_DEFAULT_MAX_HEAD);
      return;
    }
    parse_head(h);
  } else if (h->state == HC_BODY) {
    feed_body(h, data, len);
  }
}

static void on_eof(wr_conn *c, int status, const char *msg, void *user) {
  hc *h = user;
  (void)c;
  if (h->state == HC_HEAD) {
    if (status != WR_OK) fail(h, WR_ERR_IO, "%s", msg && *msg ? msg : "read: connection reset by peer");
    else if (h->rx.len == 0) fail(h, WR_ERR_IO, "EOF");
    else fail(h, WR_ERR_IO, "unexpected EOF");
  } else if (h->state == HC_BODY) {
    if (h->framing == WR_HTTP1_BODY_EOF && status == WR_OK) body_done(h);
    else if (status != WR_OK && msg && *msg) fail(h, WR_ERR_IO, "%s", msg);
    else fail(h, WR_ERR_IO, "unexpected EOF");
  }
}

static void on_close(wr_conn *c, void *user) {
  hc *h = user;
  (void)c;
  h->conn = NULL;
}

static const wr_conn_callbacks conn_cbs = {
    .on_connect = on_connect, .on_read = on_read, .on_eof = on_eof, .on_close = on_close};

/* --- request --------------------------------------------------------------------- */

static int forbidden_field(const wr_http_header *f) {
  static const char *const names[] = {"host", "content-length", "connection", "transfer-encoding"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (f->name_len == strlen(names[i]) && strncasecmp(f->name, names[i], f->name_len) == 0)
      return 1;
  return 0;
}

static int build_request(hc *h) {
  const wr_http_request *req = h->req;
  wr_http_header hdrs[MAX_HEADERS];
  size_t n = 0;
  char clen[24];
  int has_ua = 0, rv;
  const char *target = *h->url.path ? h->url.path : "/";
  int needs_len = req->body || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0 ||
                  strcmp(req->method, "PATCH") == 0;

  if (req->nheaders + 4 > MAX_HEADERS) return WR_ERR_INVAL;
  hdrs[n++] = (wr_http_header){"Host", 4, h->url.authority, strlen(h->url.authority)};
  for (size_t i = 0; i < req->nheaders; i++) {
    if (forbidden_field(&req->headers[i])) return WR_ERR_INVAL;
    has_ua |= req->headers[i].name_len == 10 && strncasecmp(req->headers[i].name, "user-agent", 10) == 0;
    hdrs[n++] = req->headers[i];
  }
  if (!has_ua) hdrs[n++] = (wr_http_header){"User-Agent", 10, "Go-http-client/1.1", 18};
  if (needs_len) {
    snprintf(clen, sizeof(clen), "%zu", req->body ? req->body_len : 0);
    hdrs[n++] = (wr_http_header){"Content-Length", 14, clen, strlen(clen)};
  }
  hdrs[n++] = (wr_http_header){"Connection", 10, "close", 5};
  rv = wr_http1_write_request_head(&h->out, req->method, strlen(req->method), target, strlen(target),
                                   hdrs, n);
  if (rv != WR_OK) return rv == WR_ERR_NOMEM ? rv : WR_ERR_INVAL;
  if (req->body && req->body_len) wr_buf_append(&h->out, req->body, req->body_len);
  return WR_OK;
}

/* The URL, the request's bytes and req->connect_to; 0, or -1 after setting
 * the error. */
static int prepare(hc *h) {
  const char *ct = h->req->connect_to;
  char u[300];
  int rv;
  if (wr_url_parse(h->req->url, &h->url) != WR_OK) {
    set_err(h, WR_ERR_INVAL, "unsupported or malformed URL (expected http:// or https://HOST[:PORT]/PATH)");
    return -1;
  }
  if ((rv = build_request(h)) != WR_OK) {
    set_err(h, rv, "invalid request (bad method, path or header field)");
    return -1;
  }
  if (!ct) return 0;
  snprintf(u, sizeof(u), "http://%s/", ct);
  if (strlen(ct) > 260 || wr_url_parse(u, &h->via) != WR_OK) {
    set_err(h, WR_ERR_INVAL, "connect_to must be HOST:PORT, not %.100s", ct);
    return -1;
  }
  return 0;
}

/* With req->connect_to: connect there while TLS names the URL's host. */
static void connect_via(hc *h, wr_conn_target *t) {
  if (!h->req->connect_to) return;
  t->host = h->via.host;
  t->port = h->via.port;
  t->server_name = h->url.host;
}

int wr_http_do(const wr_http_request *req, wr_http_response *resp, char *err, size_t errlen) {
  hc h;
  int rv;
  char tlserr[256];

  memset(resp, 0, sizeof(*resp));
  if (err && errlen) err[0] = '\0';
  if (!req || !req->method || !req->url) return WR_ERR_INVAL;
  memset(&h, 0, sizeof(h));
  h.req = req;
  h.resp = resp;
  h.max_body = req->max_body ? req->max_body : WR_HTTP_CLIENT_DEFAULT_MAX_BODY;
  wr_buf_init(&h.out, SIZE_MAX / 2, NULL);
  wr_buf_init(&h.rx, WR_HTTP1_DEFAULT_MAX_HEAD + 64 * 1024, NULL);
  wr_buf_init(&h.body, h.max_body + 1, NULL);

  if (prepare(&h) != 0) goto out;
  if (h.url.https) {
    const char *ca = req->ca_file;
    if (!ca || !*ca) ca = getenv("SSL_CERT_FILE");
    wr_tls_client_config tc = {.ca_file = ca && *ca ? ca : NULL};
    if (wr_tls_creds_client(&tc, &h.creds, tlserr, sizeof(tlserr)) != WR_OK) {
      set_err(&h, WR_ERR_CRYPTO, "%s", tlserr);
      goto out;
    }
  }

  if (uv_loop_init(&h.loop) != 0) {
    set_err(&h, WR_ERR_IO, "cannot start an event loop");
    goto out;
  }
  uint64_t timeout = req->timeout_ms ? req->timeout_ms : WR_HTTP_CLIENT_DEFAULT_TIMEOUT_MS;
  uv_timer_init(&h.loop, &h.timer);
  h.timer.data = &h;
  uv_timer_start(&h.timer, on_timeout, timeout, 0);
  /* Our timer owns the deadline (Go's Client.Timeout covers the dial too);
   * the conn's own connect timeout is only a backstop. */
  wr_conn_target t = {.host = h.url.host, .port = h.url.port, .tls = h.creds,
                      .connect_timeout_ms = timeout + 1000};
  connect_via(&h, &t);
  rv = wr_conn_connect(&h.loop, &t, &conn_cbs, &h, &h.conn);
  if (rv != WR_OK) {
    h.conn = NULL;
    fail(&h, rv, "cannot start connecting: %s", wr_strerror(rv));
  }
  uv_run(&h.loop, UV_RUN_DEFAULT); /* returns after finish(): the timer is stopped, the conn closed */
  uv_close((uv_handle_t *)&h.timer, NULL);
  uv_run(&h.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&h.loop) != 0 && h.rv == WR_OK)
    set_err(&h, WR_ERR_INTERNAL, "event loop still busy after the request");

out:
  wr_tls_creds_free(h.creds);
  wr_buf_free(&h.out);
  wr_buf_free(&h.rx);
  wr_buf_free(&h.body);
  if (h.rv == WR_OK && !resp->body) set_err(&h, WR_ERR_INTERNAL, "request ended without a response");
  if (h.rv != WR_OK && err && errlen) snprintf(err, errlen, "%s", h.err);
  return h.rv;
}

void wr_http_response_free(wr_http_response *resp) {
  if (!resp) return;
  free(resp->body);
  free(resp->headers);
  free(resp->head);
  memset(resp, 0, sizeof(*resp));
}

const char *wr_http_response_header(const wr_http_response *resp, const char *name) {
  size_t nl = strlen(name);
  const wr_http_header *found = NULL;
  for (size_t i = 0; i < resp->nheaders; i++)
    if (resp->headers[i].name_len == nl && strncasecmp(resp->headers[i].name, name, nl) == 0)
      found = &resp->headers[i];
  return found ? found->value : NULL;
}
