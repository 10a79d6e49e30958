/* HTTP/2 <-> HTTP/1.1 message heads; see h2head.h. */
#include "proto/h2head.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/err.h"
#include "proto/http1.h"

static int ieq(const uint8_t *a, size_t n, const char *b) {
  return strlen(b) == n && strncasecmp((const char *)a, b, n) == 0;
}

void wr_h2req_init(wr_h2req *r, size_t max) {
  memset(r, 0, sizeof(*r));
  r->max = max;
  wr_buf_init(&r->path, max, NULL);
  wr_buf_init(&r->fields, max, NULL);
  wr_buf_init(&r->cookie, max, NULL);
}

void wr_h2req_free(wr_h2req *r) {
  wr_buf_free(&r->path);
  wr_buf_free(&r->fields);
  wr_buf_free(&r->cookie);
}

static void copy_pseudo(char *dst, size_t cap, const uint8_t *v, size_t n, int *bad) {
  if (n >= cap) {
    *bad = 1;
    return;
  }
  memcpy(dst, v, n);
  dst[n] = '\0';
}

static int add_field(wr_buf *b, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl) {
  int rv = wr_buf_append(b, name, nl);
  if (rv == WR_OK) rv = wr_buf_append(b, ": ", 2);
  if (rv == WR_OK) rv = wr_buf_append(b, value, vl);
  if (rv == WR_OK) rv = wr_buf_append(b, "\r\n", 2);
  return rv;
}

/* 1 if the bytes could end a line or a string of the rebuilt head: the
 * HTTP/2 library refuses such fields already; this keeps the head sound
 * whoever feeds it. Names also lose ':' and white space past the first. */
static int unsafe(const uint8_t *p, size_t n, int is_name) {
  for (size_t i = 0; i < n; i++)
    if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0' ||
        (is_name && (p[i] == ' ' || p[i] == '\t' || (i && p[i] == ':'))))
      return 1;
  return is_name && n == 0;
}

void wr_h2req_field(wr_h2req *r, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl) {
  int rv = WR_OK;
  r->size += nl + vl + 32;
  if (r->size > r->max) r->too_large = 1;
  if (r->too_large) return;
  if (unsafe(name, nl, 1) || unsafe(value, vl, 0)) {
    r->bad = 1;
    return;
  }
  if (nl && name[0] == ':') {
    if (ieq(name, nl, ":method"))
      copy_pseudo(r->method, sizeof(r->method), value, vl, &r->bad);
    else if (ieq(name, nl, ":authority"))
      copy_pseudo(r->authority, sizeof(r->authority), value, vl, &r->bad);
    else if (ieq(name, nl, ":path"))
      rv = wr_buf_append(&r->path, value, vl);
    else if (ieq(name, nl, ":protocol"))
      copy_pseudo(r->protocol, sizeof(r->protocol), value, vl, &r->bad);
    /* :scheme is the connection's; :protocol is not offered */
  } else if (ieq(name, nl, "cookie")) {
    if (r->cookie.len) rv = wr_buf_append(&r->cookie, "; ", 2);
    if (rv == WR_OK) rv = wr_buf_append(&r->cookie, value, vl);
  } else if (!(ieq(name, nl, "host") && r->authority[0])) {
    if (ieq(name, nl, "content-length")) r->has_length = 1;
    rv = add_field(&r->fields, name, nl, value, vl);
  }
  if (rv != WR_OK) r->too_large = 1;
}

/* Whether the collected pseudo-fields make a request: a method, a path or
 * an authority, and an extended CONNECT (RFC 8441) only for WebSocket with
 * a path. Sets r->websocket. Returns WR_OK, WR_ERR_LIMIT or WR_ERR_PROTO. */
static int check_request(wr_h2req *r) {
  if (r->too_large) return WR_ERR_LIMIT;
  if (r->bad || !r->method[0] || (!r->path.len && !r->authority[0])) return WR_ERR_PROTO;
  r->websocket = r->protocol[0] != 0;
  if (r->websocket && (strcmp(r->method, "CONNECT") != 0 || strcasecmp(r->protocol, "websocket") != 0 ||
                       !r->path.len))
    return WR_ERR_PROTO;
  return WR_OK;
}

int wr_h2req_head(wr_h2req *r, int eos, wr_buf *out) {
  int ok = check_request(r);
  if (ok != WR_OK) return ok;
  size_t start = out->len;
  /* CONNECT has no :path: its authority is the target. */
  const char *target = r->path.len ? wr_buf_cstr(&r->path) : r->authority;
  int rv = wr_buf_printf(out, "%s %s HTTP/1.1\r\n", r->websocket ? "GET" : r->method, target);
  if (rv == WR_OK && r->authority[0]) rv = wr_buf_printf(out, "Host: %s\r\n", r->authority);
  if (rv == WR_OK && r->fields.len) rv = wr_buf_append(out, r->fields.data, r->fields.len);
  if (rv == WR_OK && r->cookie.len) {
    static const uint8_t name[] = "Cookie";
    rv = add_field(out, name, 6, r->cookie.data, r->cookie.len);
  }
  if (rv == WR_OK && r->websocket) /* any key: the edge does not check the answer's */
    rv = wr_buf_append_str(out, "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                                "Sec-WebSocket-Key: d2FycmVuLWVkZ2UtaDJ3cw==\r\n");
  else if (rv == WR_OK && !eos && !r->has_length)
    rv = wr_buf_append_str(out, "Transfer-Encoding: chunked\r\n");
  if (rv == WR_OK) rv = wr_buf_append_str(out, "\r\n");
  if (rv == WR_OK && out->len - start > r->max) rv = WR_ERR_LIMIT;
  return rv == WR_OK ? WR_OK : WR_ERR_LIMIT;
}

int wr_h2resp_from_http1(const uint8_t *buf, size_t len, const char *method, int websocket,
                         wr_h2resp *out, size_t *used) {
  wr_http_header hd[WR_H2RESP_MAX_FIELDS];
  wr_http1_head h;
  wr_http1_limits lim = {WR_H2RESP_NAMES_MAX * 4, WR_H2RESP_MAX_FIELDS};
  int rv = wr_http1_parse_response(buf, len, method, &lim, hd, WR_H2RESP_MAX_FIELDS, &h, used);
  if (rv != WR_OK) return rv;
  if ((h.status == 101 && !websocket) || h.status > 999) return WR_ERR_PROTO;
  int upgraded = h.status == 101; /* RFC 8441 5: the tunnel is open with 200 */
  out->status = upgraded ? 200 : h.status;
  snprintf(out->status_text, sizeof(out->status_text), "%d", out->status);
  out->no_body = h.body == WR_HTTP1_BODY_NONE;
  size_t n = 0, lo = 0;
  for (size_t i = 0; i < h.nheaders; i++) {
    const wr_http_header *f = &hd[i];
    if (wr_http1_is_hop_by_hop(f->name, f->name_len)) continue;
    if (upgraded && f->name_len == 20 && strncasecmp(f->name, "Sec-WebSocket-Accept", 20) == 0) continue;
    if (f->name_len > sizeof(out->names) - lo) return WR_ERR_LIMIT;
    for (size_t j = 0; j < f->name_len; j++) {
      char ch = f->name[j];
      out->names[lo + j] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    out->fields[n++] = (wr_http_header){out->names + lo, f->name_len, f->value, f->value_len};
    lo += f->name_len;
  }
  out->nfields = n;
  return WR_OK;
}
