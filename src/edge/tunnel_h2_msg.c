/* QUIC-shaped stream heads <-> cloudflared's HTTP/2 conventions; see
 * tunnel_h2_msg.h. */
#include "edge/tunnel_h2_msg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "proto/metadata.h"
#include "proto/preamble.h"

#define HDR_PREFIX "HttpHeader:"
#define HDR_PREFIX_LEN (sizeof(HDR_PREFIX) - 1)

/* ---- request -------------------------------------------------------------- */

static int eq(const char *a, size_t alen, const char *lit) {
  return alen == strlen(lit) && strncasecmp(a, lit, alen) == 0;
}

/* Connection-specific fields (RFC 9113 8.2.2), Host (it is :authority) and
 * the cf-cloudflared-* fields a visitor must not choose. */
static int dropped(const char *n, size_t len, const char *v, size_t vlen) {
  static const char *const hop[] = {"connection", "keep-alive", "proxy-connection",
                                    "transfer-encoding", "upgrade", "host", "http2-settings",
                                    NULL};
  for (size_t i = 0; hop[i]; i++)
    if (eq(n, len, hop[i])) return 1;
  if (eq(n, len, "te")) return !eq(v, vlen, "trailers");
  return len >= 15 && strncasecmp(n, "cf-cloudflared-", 15) == 0;
}

/* A field name HTTP/2 can carry once lower-cased: an HTTP token. */
static int token(const char *n, size_t len) {
  if (!len) return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)n[i];
    if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c)) return 0;
  }
  return 1;
}

typedef struct nvb {
  nghttp2_nv *nv;
  size_t n, cap;
  char *store;
  size_t used, size;
} nvb;

/* Copies |s| into the store (sized up front, so pointers stay valid). */
static uint8_t *keep(nvb *b, const char *s, size_t len, int lower) {
  uint8_t *p = (uint8_t *)b->store + b->used;
  for (size_t i = 0; i < len; i++) p[i] = (uint8_t)(lower ? tolower((unsigned char)s[i]) : s[i]);
  p[len] = 0;
  b->used += len + 1;
  return p;
}

static void add(nvb *b, const char *n, size_t nlen, const char *v, size_t vlen) {
  nghttp2_nv *x = &b->nv[b->n++];
  x->name = keep(b, n, nlen, 1);
  x->namelen = nlen;
  x->value = keep(b, v, vlen, 0);
  x->valuelen = vlen;
  x->flags = NGHTTP2_NV_FLAG_NONE;
}

static void adds(nvb *b, const char *n, const char *v, size_t vlen) {
  add(b, n, strlen(n), v, vlen);
}

/* Splits an absolute dest ("https://host/path?q") into scheme, authority
 * and path; a relative one ("/path") has only a path. */
static void split_dest(const char *d, size_t len, const char **scheme, size_t *slen,
                       const char **auth, size_t *alen, const char **path, size_t *plen) {
  *scheme = "https";
  *slen = 5;
  *auth = NULL;
  *alen = 0;
  const char *sep = len > 3 ? strstr(d, "://") : NULL;
  if (sep && (size_t)(sep - d) < len) {
    *scheme = d;
    *slen = (size_t)(sep - d);
    const char *a = sep + 3;
    const char *end = d + len, *p = a;
    while (p < end && *p != '/' && *p != '?') p++;
    *auth = a;
    *alen = (size_t)(p - a);
    d = p;
    len = (size_t)(end - p);
  }
  *path = len ? d : "/";
  *plen = len ? len : 1;
}

static int build_http(const wr_connect_request *req, nvb *b) {
  size_t mlen = 0, hlen = 0;
  const char *method = wr_meta_find_last(req->meta, req->nmeta, "HttpMethod", &mlen);
  const char *host = wr_meta_find_last(req->meta, req->nmeta, "HttpHost", &hlen);
  const char *scheme, *auth, *path;
  size_t slen, alen, plen;
  split_dest(req->dest, req->dest_len, &scheme, &slen, &auth, &alen, &path, &plen);
  if (!method || !mlen) method = "GET", mlen = 3;
  if (!host || !hlen) host = auth, hlen = alen;
  if (!host || !hlen) host = "localhost:8080", hlen = 14;
  adds(b, ":method", method, mlen);
  adds(b, ":scheme", "https", 5);
  adds(b, ":authority", host, hlen);
  adds(b, ":path", path, plen);
  if (path[0] != '/' && !(plen == 1 && path[0] == '*')) return WR_ERR_PROTO;
  for (size_t i = 0; i < req->nmeta; i++) {
    const wr_meta *m = &req->meta[i];
    if (m->key_len <= HDR_PREFIX_LEN || memcmp(m->key, HDR_PREFIX, HDR_PREFIX_LEN) != 0) continue;
    const char *n = m->key + HDR_PREFIX_LEN;
    size_t nlen = m->key_len - HDR_PREFIX_LEN;
    if (!token(n, nlen)) return WR_ERR_PROTO;
    if (dropped(n, nlen, m->val, m->val_len)) continue;
    add(b, n, nlen, m->val, m->val_len);
  }
  if (req->type == WR_CONNECT_WEBSOCKET)
    adds(b, "cf-cloudflared-proxy-connection-upgrade", "websocket", 9);
  return WR_OK;
}

static int build_tcp(const wr_connect_request *req, const char *src, nvb *b) {
  size_t tlen = 0;
  const char *trace = wr_meta_find_last(req->meta, req->nmeta, "cf-trace-id", &tlen);
  if (!req->dest_len) return WR_ERR_PROTO;
  adds(b, ":method", "GET", 3);
  adds(b, ":scheme", "https", 5);
  adds(b, ":authority", req->dest, req->dest_len);
  adds(b, ":path", "/", 1);
  if (!src || !*src) src = "edge";
  adds(b, "cf-cloudflared-proxy-src", src, strlen(src));
  if (trace && tlen) adds(b, "cf-trace-id", trace, tlen);
  return WR_OK;
}

int wr_h2_request_build(const wr_connect_request *req, const char *src, wr_h2_request *out) {
  memset(out, 0, sizeof(*out));
  if (req->type > WR_CONNECT_TCP) return WR_ERR_UNSUPPORTED;
  /* Room for every field the request could produce: its metadata, the
   * pseudo-headers and the cf-cloudflared ones, with a NUL each. */
  size_t size = req->dest_len + 64 + (src ? strlen(src) : 0) + 64;
  for (size_t i = 0; i < req->nmeta; i++) size += req->meta[i].key_len + req->meta[i].val_len + 2;
  size += 128; /* pseudo-header names and fixed values */
  nvb b = {.cap = req->nmeta + 8};
  b.nv = wr_xcalloc(b.cap, sizeof(*b.nv));
  b.store = wr_xmalloc(size);
  b.size = size;
  int rv = req->type == WR_CONNECT_TCP ? build_tcp(req, src, &b) : build_http(req, &b);
  if (rv != WR_OK) {
    free(b.nv);
    free(b.store);
    return rv;
  }
  out->nv = b.nv;
  out->nnv = b.n;
  out->store = b.store;
  return WR_OK;
}

void wr_h2_request_free(wr_h2_request *r) {
  if (!r) return;
  free(r->nv);
  free(r->store);
  memset(r, 0, sizeof(*r));
}

/* ---- response ------------------------------------------------------------- */

int wr_h2_meta_is_cloudflared(const char *val, size_t len) {
  static const char want[] = "\"src\":\"cloudflared\"";
  size_t n = sizeof(want) - 1;
  for (size_t i = 0; i + n <= len; i++)
    if (memcmp(val + i, want, n) == 0) return 1;
  return 0;
}

int wr_h2_user_headers_each(const char *s, size_t len,
                            int (*fn)(void *user, const char *name, size_t nlen,
                                      const char *val, size_t vlen),
                            void *user) {
  size_t i = 0;
  while (i < len) {
    size_t j = i;
    while (j < len && s[j] != ';') j++;
    if (j > i) {
      const char *pair = s + i, *colon = memchr(pair, ':', j - i);
      if (!colon || memchr(colon + 1, ':', (size_t)(s + j - colon - 1))) return WR_ERR_PROTO;
      size_t nl = (size_t)(colon - pair), vl = (size_t)(s + j - colon - 1);
      char *n = wr_xmalloc(nl + 1), *v = wr_xmalloc(vl + 1);
      int a = wr_base64_decode(pair, nl, (uint8_t *)n, nl + 1, WR_BASE64_NOPAD);
      int b = wr_base64_decode(colon + 1, vl, (uint8_t *)v, vl + 1, WR_BASE64_NOPAD);
      int rv = a < 0 || b < 0 || a == 0 ? WR_ERR_PROTO : fn(user, n, (size_t)a, v, (size_t)b);
      free(n);
      free(v);
      if (rv) return rv;
    }
    i = j + 1;
  }
  return WR_OK;
}

/* Decoded pairs, kept as "HttpHeader:<Name>" \0 value \0 in one buffer. */
typedef struct pairs {
  wr_buf text;
  size_t n;
} pairs;

static int keep_pair(void *user, const char *name, size_t nlen, const char *val, size_t vlen) {
  pairs *p = user;
  /* Metadata keys are split on ':' by the consumer: a name with one cannot
   * be carried (cloudflared never produces one). */
  if (memchr(name, ':', nlen) || memchr(name, 0, nlen) || memchr(val, 0, vlen)) return WR_ERR_PROTO;
  int rv = wr_buf_append(&p->text, HDR_PREFIX, HDR_PREFIX_LEN);
  if (!rv) rv = wr_buf_append(&p->text, name, nlen);
  if (!rv) rv = wr_buf_append(&p->text, "", 1);
  if (!rv) rv = wr_buf_append(&p->text, val, vlen);
  if (!rv) rv = wr_buf_append(&p->text, "", 1);
  p->n++;
  return rv;
}

static int encode(const wr_connect_response *r, wr_buf *out) {
  uint8_t pre[WR_PREAMBLE_DATA_LEN];
  int n = wr_preamble_write(WR_PREAMBLE_DATA, pre, sizeof(pre));
  if (n < 0) return n;
  size_t before = out->len;
  int rv = wr_buf_append(out, pre, (size_t)n);
  if (!rv) rv = wr_connect_response_encode(r, NULL, out);
  if (rv) out->len = before;
  return rv;
}

static int error_response(int status, wr_buf *out) {
  char msg[160];
  snprintf(msg, sizeof(msg),
           "cloudflared could not serve the request (it answered HTTP/2 status %d "
           "without details; its log says why)",
           status);
  wr_connect_response r = {.error = msg, .error_len = strlen(msg)};
  return encode(&r, out);
}

int wr_h2_response_to_connect(int type, const wr_h2_response_head *h, wr_buf *out) {
  if (h->cloudflared_error) return error_response(h->status ? h->status : 502, out);
  if (h->status < 100 || h->status > 999) return WR_ERR_PROTO;
  if (type == WR_CONNECT_TCP) {
    if (h->status / 100 != 2) return error_response(h->status, out);
    wr_connect_response r = {.error = "", .has_meta = 1};
    return encode(&r, out);
  }
  pairs p = {.n = 0};
  wr_buf_init(&p.text, 1u << 20, NULL);
  int rv = WR_OK;
  if (h->user_headers) rv = wr_h2_user_headers_each(h->user_headers, h->user_headers_len,
                                                   keep_pair, &p);
  wr_meta *meta = NULL;
  if (rv == WR_OK) {
    char status[8];
    /* HTTP/2 has no 101: cloudflared sends 200 for an accepted upgrade. */
    int st = type == WR_CONNECT_WEBSOCKET && h->status == 200 ? 101 : h->status;
    snprintf(status, sizeof(status), "%d", st);
    meta = wr_xcalloc(p.n + 1, sizeof(*meta));
    meta[0] = (wr_meta){"HttpStatus", 10, status, strlen(status)};
    const char *t = (const char *)p.text.data;
    for (size_t i = 0; i < p.n; i++) {
      size_t kl = strlen(t);
      const char *v = t + kl + 1;
      size_t vl = strlen(v);
      meta[i + 1] = (wr_meta){t, kl, v, vl};
      t = v + vl + 1;
    }
    wr_connect_response r = {.error = "", .has_meta = 1, .meta = meta, .nmeta = p.n + 1};
    rv = encode(&r, out);
  }
  free(meta);
  wr_buf_free(&p.text);
  return rv;
}
