/* HTTP/2 header conventions; see h2_request.h. */
#include "connector/h2_request.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/err.h"

static int name_is(const wr_http_header *h, const char *name) {
  size_t n = strlen(name);
  return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

static int value_is(const wr_http_header *h, const char *v) {
  size_t n = strlen(v);
  return h->value_len == n && memcmp(h->value, v, n) == 0;
}

/* Go's Header.Get: the first value of |name|, or NULL. */
static const wr_http_header *get(const wr_http_header *hs, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (name_is(&hs[i], name)) return &hs[i];
  return NULL;
}

int wr_h2c_request_kind(const wr_http_header *hs, size_t n) {
  const wr_http_header *up = get(hs, n, WR_H2_UPGRADE_HEADER);
  const wr_http_header *src = get(hs, n, WR_H2_SRC_HEADER);
  if (up && value_is(up, "update-configuration")) return WR_H2_CONFIG;
  if (up && value_is(up, "websocket")) return WR_H2_WEBSOCKET;
  if (src && src->value_len) return WR_H2_TCP;
  if (up && value_is(up, "control-stream")) return WR_H2_CONTROL;
  return WR_H2_HTTP;
}

/* --- request ------------------------------------------------------------------ */

/* Appends |len| bytes (room reserved by the caller) and returns where. */
static const char *put(wr_buf *a, const char *s, size_t len) {
  const char *at = (const char *)a->data + a->len;
  wr_buf_append(a, s, len);
  return at;
}

static const char *pseudo(const wr_http_header *hs, size_t n, const char *name, size_t *len) {
  const wr_http_header *h = get(hs, n, name);
  *len = h ? h->value_len : 0;
  return h ? h->value : "";
}

/* An HttpHeader:<Canonical-Name> entry for |h|. */
static void header_entry(wr_buf *a, const wr_http_header *h, wr_meta *m) {
  char *key = (char *)a->data + a->len;
  put(a, "HttpHeader:", 11);
  put(a, h->name, h->name_len);
  wr_httpmeta_canonical_key(key + 11, h->name_len, key + 11);
  m->key = key;
  m->key_len = 11 + h->name_len;
  m->val = h->value;
  m->val_len = h->value_len;
}

/* Go's server joins the Cookie fields HTTP/2 splits into one "a; b". */
static size_t add_cookie(const wr_http_header *hs, size_t n, wr_buf *a, wr_meta *m) {
  const char *start = NULL;
  size_t vl = 0;
  for (size_t i = 0; i < n; i++) {
    if (!name_is(&hs[i], "cookie")) continue;
    if (!start) start = (const char *)a->data + a->len;
    else put(a, "; ", 2);
    put(a, hs[i].value, hs[i].value_len);
    vl = (size_t)((const char *)a->data + a->len - start);
  }
  if (!start) return 0;
  m->key = "HttpHeader:Cookie";
  m->key_len = 17;
  m->val = start;
  m->val_len = vl;
  return 1;
}

static size_t request_room(const wr_http_header *hs, size_t n) {
  size_t need = 64;
  for (size_t i = 0; i < n; i++) need += hs[i].name_len + 2 * hs[i].value_len + 16;
  return need;
}

/* dest: scheme://authority/path (cloudflared fills http / localhost:8080). */
static void build_dest(wr_buf *arena, const char *scheme, size_t sl, const char *auth, size_t al,
                       const char *path, size_t pl, wr_connect_request *out) {
  out->dest = (const char *)arena->data + arena->len;
  put(arena, sl ? scheme : "http", sl ? sl : 4);
  put(arena, "://", 3);
  put(arena, al ? auth : "localhost:8080", al ? al : 14);
  put(arena, pl ? path : "/", pl ? pl : 1);
  out->dest_len = (size_t)((const char *)arena->data + arena->len - out->dest);
}

/* The user's headers as metadata, less the pseudo-headers, Host and Cookie
 * (sent apart) and, for WebSocket, the upgrade marker. Returns how many. */
static size_t user_headers(const wr_http_header *hs, size_t n, int kind, wr_buf *arena,
                           wr_meta *meta) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const wr_http_header *h = &hs[i];
    if (!h->name_len || h->name[0] == ':' || name_is(h, "host") || name_is(h, "cookie")) continue;
    if (kind == WR_H2_WEBSOCKET && name_is(h, WR_H2_UPGRADE_HEADER)) continue;
    header_entry(arena, h, &meta[k++]);
  }
  return k;
}

int wr_h2c_request_build(const wr_http_header *hs, size_t n, int kind, int body_unknown,
                        wr_buf *arena, wr_meta *meta, size_t cap, wr_connect_request *out) {
  size_t al, sl, pl, ml, k = 0;
  const char *auth = pseudo(hs, n, ":authority", &al), *scheme = pseudo(hs, n, ":scheme", &sl);
  const char *path = pseudo(hs, n, ":path", &pl), *method = pseudo(hs, n, ":method", &ml);
  if (!al) auth = pseudo(hs, n, "host", &al);
  wr_buf_reset(arena);
  if (cap < n + 4) return WR_ERR_LIMIT;
  if (wr_buf_reserve(arena, request_room(hs, n)) != WR_OK) return WR_ERR_LIMIT;
  memset(out, 0, sizeof(*out));
  out->has_meta = 1;
  out->meta = meta;
  if (kind == WR_H2_TCP) {
    if (!al) return WR_ERR_PROTO;
    out->type = WR_CONNECT_TCP;
    out->dest = auth;
    out->dest_len = al;
    return WR_OK; /* cloudflared reads no metadata for TCP over HTTP/2 */
  }
  out->type = kind == WR_H2_WEBSOCKET ? WR_CONNECT_WEBSOCKET : WR_CONNECT_HTTP;
  build_dest(arena, scheme, sl, auth, al, path, pl, out);
  meta[k++] = (wr_meta){WR_HTTPMETA_KEY_METHOD, 10, ml ? method : "GET", ml ? ml : 3};
  if (al) meta[k++] = (wr_meta){WR_HTTPMETA_KEY_HOST, 8, auth, al};
  k += user_headers(hs, n, kind, arena, &meta[k]);
  k += add_cookie(hs, n, arena, &meta[k]);
  if (kind == WR_H2_HTTP && body_unknown && !get(hs, n, "content-length"))
    meta[k++] = (wr_meta){"HttpHeader:Transfer-Encoding", 28, "chunked", 7};
  out->nmeta = k;
  return WR_OK;
}

/* --- response ------------------------------------------------------------------ */

static int error_head(wr_http_header *out, size_t cap) {
  if (cap < 2) return WR_ERR_LIMIT;
  out[0] = (wr_http_header){":status", 7, "502", 3};
  out[1] = (wr_http_header){WR_HTTPMETA_H2_RESPONSE_META, strlen(WR_HTTPMETA_H2_RESPONSE_META),
                            WR_H2_META_CLOUDFLARED, strlen(WR_H2_META_CLOUDFLARED)};
  return 2;
}

static size_t response_room(const wr_connect_response *r) {
  size_t need = 256;
  for (size_t i = 0; i < r->nmeta; i++) need += 3 * (r->meta[i].key_len + r->meta[i].val_len) + 8;
  return need;
}

int wr_h2c_response_head(const wr_connect_response *r, wr_buf *arena, wr_http_header *out,
                        size_t cap) {
  wr_httpmeta_response resp = {200, 0};
  size_t k = 0, nu;
  wr_http_header *user;
  int rv;
  wr_buf_reset(arena);
  if (r->error_len) return error_head(out, cap);
  if (cap < 5) return WR_ERR_LIMIT;
  if (wr_buf_reserve(arena, response_room(r)) != WR_OK) return WR_ERR_LIMIT;
  user = out + 5; /* decoded user headers, below the ones we emit */
  if (r->has_meta && r->nmeta) {
    rv = wr_httpmeta_resp_decode(r->meta, r->nmeta, arena, user, cap - 5, &resp);
    if (rv != WR_OK) return rv;
  }
  nu = resp.nheaders;
  char *st = (char *)arena->data + arena->len;
  int sl = snprintf(st, 4, "%03d", resp.status == 101 ? 200 : resp.status);
  arena->len += 4;
  const char *ser = (const char *)arena->data + arena->len;
  size_t before = arena->len;
  if ((rv = wr_httpmeta_h2_serialize(user, nu, WR_HTTPMETA_H2_SKIP_CONTROL, arena)) != WR_OK)
    return rv;
  size_t serlen = arena->len - before;
  const wr_http_header *cl = get(user, nu, "content-length");
  const wr_http_header *tr = get(user, nu, "cf-int-cloudflared-tracing");
  wr_http_header cl_h = cl ? *cl : (wr_http_header){0}, tr_h = tr ? *tr : (wr_http_header){0};
  out[k++] = (wr_http_header){":status", 7, st, (size_t)sl};
  out[k++] = (wr_http_header){WR_HTTPMETA_H2_RESPONSE_HEADERS,
                              strlen(WR_HTTPMETA_H2_RESPONSE_HEADERS), ser, serlen};
  out[k++] = (wr_http_header){WR_HTTPMETA_H2_RESPONSE_META, strlen(WR_HTTPMETA_H2_RESPONSE_META),
                              WR_H2_META_ORIGIN, strlen(WR_H2_META_ORIGIN)};
  if (cl) out[k++] = (wr_http_header){"content-length", 14, cl_h.value, cl_h.value_len};
  if (tr) out[k++] = (wr_http_header){"cf-int-cloudflared-tracing", 26, tr_h.value, tr_h.value_len};
  return (int)k;
}
