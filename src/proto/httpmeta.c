#include "proto/httpmeta.h"

#include <stdint.h>
#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"

#define HEADER_PREFIX WR_HTTPMETA_KEY_HEADER ":"
#define HEADER_PREFIX_LEN (sizeof(HEADER_PREFIX) - 1)

/* ---- header blocks stored as offsets ----------------------------------------- */

void wr_http_header_stash(wr_http_header *h, wr_buf *b, const uint8_t *name, size_t nlen, const uint8_t *value,
                          size_t vlen) {
  *h = (wr_http_header){(const char *)(uintptr_t)b->len, nlen, (const char *)(uintptr_t)(b->len + nlen), vlen};
  wr_buf_append(b, name, nlen);
  wr_buf_append(b, value, vlen);
}

void wr_http_headers_resolve(wr_http_header *hs, size_t n, const wr_buf *b) {
  for (size_t i = 0; i < n; i++) {
    hs[i].name = (const char *)b->data + (uintptr_t)hs[i].name;
    hs[i].value = (const char *)b->data + (uintptr_t)hs[i].value;
  }
}

/* ---- small string helpers ------------------------------------------------- */

static int is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int wr_httpmeta_is_token(const char *s, size_t len) {
  if (len == 0) return 0;
  for (size_t i = 0; i < len; i++)
    if (!is_tchar((unsigned char)s[i])) return 0;
  return 1;
}

static int tchars_only(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (!is_tchar((unsigned char)s[i])) return 0;
  return 1;
}

/* Byte |i| of |s| in canonical form, given that |s| is all token chars.
 * The case of a byte depends only on whether the previous one is '-', which
 * canonicalisation never changes, so this works byte by byte (and lets the
 * base64 encoder below canonicalise on the fly). */
static unsigned char canon_byte(const char *s, size_t i) {
  unsigned char c = (unsigned char)s[i];
  int upper = i == 0 || s[i - 1] == '-';
  if (upper && c >= 'a' && c <= 'z') return (unsigned char)(c - ('a' - 'A'));
  if (!upper && c >= 'A' && c <= 'Z') return (unsigned char)(c + ('a' - 'A'));
  return c;
}

void wr_httpmeta_canonical_key(const char *in, size_t len, char *out) {
  if (!tchars_only(in, len)) {
    if (out != in && len) memmove(out, in, len);
    return;
  }
  /* Walk backwards so that |out| == |in| works: canon_byte(i) reads
   * in[i - 1], which is still original when written from the end. */
  for (size_t i = len; i-- > 0;) out[i] = (char)canon_byte(in, i);
}

static int ieq(const char *a, size_t alen, const char *b) {
  size_t blen = strlen(b);
  if (alen != blen) return 0;
  for (size_t i = 0; i < alen; i++) {
    unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
    if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
    if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
    if (x != y) return 0;
  }
  return 1;
}

static int contains(const char *hay, size_t hlen, const char *needle) {
  size_t nlen = strlen(needle);
  for (size_t i = 0; i + nlen <= hlen; i++)
    if (memcmp(hay + i, needle, nlen) == 0) return 1;
  return 0;
}

/* Room for |n| bytes at the end of |a|; the caller reserved it already, so
 * a->data does not move while a function fills its results in. */
static char *arena_take(wr_buf *a, size_t n) {
  char *p = (char *)a->data + a->len;
  a->len += n;
  return p;
}

/* ---- request: edge side --------------------------------------------------- */

/* Go's net/http/httputil ReverseProxy hop-by-hop list. */
static const char *const hop_headers[] = {
    "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
    "Te",         "Trailer",          "Transfer-Encoding", "Upgrade"};

/* 1 if some Connection header of |hdrs| lists |name| as a token. */
static int named_by_connection(const wr_http_header *hdrs, size_t n, const char *name,
                               size_t name_len) {
  for (size_t i = 0; i < n; i++) {
    if (!ieq(hdrs[i].name, hdrs[i].name_len, "connection")) continue;
    const char *v = hdrs[i].value;
    size_t vlen = hdrs[i].value_len, start = 0;
    for (size_t j = 0; j <= vlen; j++) {
      if (j < vlen && v[j] != ',') continue;
      size_t a = start, b = j;
      while (a < b && (v[a] == ' ' || v[a] == '\t')) a++;
      while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
      if (b - a == name_len && name_len > 0) {
        int same = 1;
        for (size_t k = 0; k < name_len && same; k++) {
          unsigned char x = (unsigned char)v[a + k], y = (unsigned char)name[k];
          if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
          if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
          same = x == y;
        }
        if (same) return 1;
      }
      start = j + 1;
    }
  }
  return 0;
}

static int drop_request_header(const wr_http_header *h, const wr_http_header *hdrs, size_t n,
                               unsigned flags) {
  if (h->name_len > 0 && h->name[0] == ':') return 1; /* HTTP/2 pseudo-header */
  if (ieq(h->name, h->name_len, "host")) return 1;
  if ((flags & WR_HTTPMETA_REQ_WEBSOCKET) &&
      (ieq(h->name, h->name_len, "connection") || ieq(h->name, h->name_len, "upgrade")))
    return 0;
  for (size_t i = 0; i < sizeof(hop_headers) / sizeof(hop_headers[0]); i++)
    if (ieq(h->name, h->name_len, hop_headers[i])) return 1;
  return named_by_connection(hdrs, n, h->name, h->name_len);
}

/* Go's ReverseProxy drops TE as hop-by-hop but sets "Te: trailers" again
 * when the client's TE lists "trailers" (a gRPC origin needs it). */
static int te_trailers(const wr_http_header *hdrs, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (ieq(hdrs[i].name, hdrs[i].name_len, "te") &&
        named_by_connection(&(wr_http_header){"Connection", 10, hdrs[i].value,
                                               hdrs[i].value_len},
                            1, "trailers", 8))
      return 1;
  return 0;
}

/* A header name we can put after "HttpHeader:" and have cloudflared split
 * back out. */
static int encodable_name(const char *name, size_t len) {
  return len > 0 && memchr(name, ':', len) == NULL;
}

/* Writes "HttpHeader:<canonical name>\0" into the (reserved) arena. */
static void put_header_key(wr_buf *arena, const char *name, size_t len, wr_meta *m) {
  char *k = arena_take(arena, HEADER_PREFIX_LEN + len + 1);
  memcpy(k, HEADER_PREFIX, HEADER_PREFIX_LEN);
  wr_httpmeta_canonical_key(name, len, k + HEADER_PREFIX_LEN);
  k[HEADER_PREFIX_LEN + len] = '\0';
  m->key = k;
  m->key_len = HEADER_PREFIX_LEN + len;
}

static void set_meta(wr_meta *m, const char *key, const char *val, size_t val_len) {
  m->key = key;
  m->key_len = strlen(key);
  m->val = val;
  m->val_len = val_len;
}

int wr_httpmeta_req_encode(const char *method, size_t method_len, const char *host,
                           size_t host_len, const wr_http_header *hdrs, size_t n,
                           unsigned flags, wr_buf *arena, wr_meta *out, size_t cap) {
  if (!wr_httpmeta_is_token(method, method_len)) return WR_ERR_INVAL;
  /* Pass 1: decide, validate and size everything before touching outputs. */
  size_t count = 2, bytes = 0;
  for (size_t i = 0; i < n; i++) {
    if (drop_request_header(&hdrs[i], hdrs, n, flags)) continue;
    if (!encodable_name(hdrs[i].name, hdrs[i].name_len)) return WR_ERR_INVAL;
    count++;
    bytes += HEADER_PREFIX_LEN + hdrs[i].name_len + 1;
  }
  if (flags & WR_HTTPMETA_REQ_CHUNKED) count++;
  int te = te_trailers(hdrs, n);
  if (te) count++;
  if (count > cap) return WR_ERR_LIMIT;
  int rv = wr_buf_reserve(arena, bytes);
  if (rv != WR_OK) return rv;

  size_t o = 0;
  set_meta(&out[o++], WR_HTTPMETA_KEY_METHOD, method, method_len);
  set_meta(&out[o++], WR_HTTPMETA_KEY_HOST, host_len ? host : "", host_len);
  for (size_t i = 0; i < n; i++) {
    if (drop_request_header(&hdrs[i], hdrs, n, flags)) continue;
    put_header_key(arena, hdrs[i].name, hdrs[i].name_len, &out[o]);
    out[o].val = hdrs[i].value_len ? hdrs[i].value : "";
    out[o].val_len = hdrs[i].value_len;
    o++;
  }
  if (te) set_meta(&out[o++], HEADER_PREFIX "Te", "trailers", 8);
  if (flags & WR_HTTPMETA_REQ_CHUNKED)
    set_meta(&out[o++], HEADER_PREFIX "Transfer-Encoding", "chunked", 7);
  return (int)o;
}

/* ---- headers out of metadata (both decoders) ------------------------------ */

/* cloudflared: strings.Contains(key, "HttpHeader") then strings.Split(key,
 * ":") must give exactly 2 parts. Sets |*name| to the second part.
 * Returns 1 for a header key, 0 for another key, WR_ERR_PROTO if malformed. */
static int header_key(const wr_meta *m, const char **name, size_t *name_len) {
  if (!contains(m->key, m->key_len, WR_HTTPMETA_KEY_HEADER)) return 0;
  const char *colon = memchr(m->key, ':', m->key_len);
  if (!colon) return WR_ERR_PROTO;
  size_t off = (size_t)(colon - m->key) + 1;
  if (memchr(m->key + off, ':', m->key_len - off)) return WR_ERR_PROTO;
  *name = m->key + off;
  *name_len = m->key_len - off;
  return 1;
}

static int collect_headers(const wr_meta *meta, size_t n, wr_buf *arena, wr_http_header *out,
                           size_t cap, size_t *count) {
  const char *name;
  size_t name_len, c = 0, bytes = 0;
  *count = 0;
  for (size_t i = 0; i < n; i++) {
    int rv = header_key(&meta[i], &name, &name_len);
    if (rv < 0) return rv;
    if (rv == 0) continue;
    c++;
    bytes += name_len + 1;
  }
  if (c > cap) return WR_ERR_LIMIT;
  if (arena) {
    int rv = wr_buf_reserve(arena, bytes);
    if (rv != WR_OK) return rv;
  }
  c = 0;
  for (size_t i = 0; i < n; i++) {
    if (header_key(&meta[i], &name, &name_len) != 1) continue;
    if (arena) {
      char *cn = arena_take(arena, name_len + 1);
      wr_httpmeta_canonical_key(name, name_len, cn);
      cn[name_len] = '\0';
      name = cn;
    }
    out[c].name = name;
    out[c].name_len = name_len;
    out[c].value = meta[i].val;
    out[c].value_len = meta[i].val_len;
    c++;
  }
  *count = c;
  return WR_OK;
}

/* ---- request: connector side ---------------------------------------------- */

int wr_httpmeta_req_decode(const wr_meta *meta, size_t n, wr_buf *arena, wr_http_header *out,
                           size_t cap, wr_httpmeta_request *req) {
  memset(req, 0, sizeof(*req));
  size_t mlen, hlen;
  const char *method = wr_meta_find_last(meta, n, WR_HTTPMETA_KEY_METHOD, &mlen);
  const char *host = wr_meta_find_last(meta, n, WR_HTTPMETA_KEY_HOST, &hlen);
  /* http.NewRequest: "" means GET; anything else must be a token. */
  if (!method || mlen == 0) {
    method = "GET";
    mlen = 3;
  } else if (!wr_httpmeta_is_token(method, mlen)) {
    return WR_ERR_PROTO;
  }
  size_t count;
  int rv = collect_headers(meta, n, arena, out, cap, &count);
  if (rv != WR_OK) return rv;
  req->method = method;
  req->method_len = mlen;
  req->host = host;
  req->host_len = host ? hlen : 0;
  req->nheaders = count;
  return WR_OK;
}

/* ---- response ------------------------------------------------------------- */

int wr_httpmeta_resp_encode(int status, const wr_http_header *hdrs, size_t n, wr_buf *arena,
                            wr_meta *out, size_t cap) {
  if (status < 100 || status > 999) return WR_ERR_INVAL;
  size_t bytes = 4; /* "NNN\0" */
  for (size_t i = 0; i < n; i++) {
    if (!encodable_name(hdrs[i].name, hdrs[i].name_len)) return WR_ERR_INVAL;
    bytes += HEADER_PREFIX_LEN + hdrs[i].name_len + 1;
  }
  if (n + 1 > cap) return WR_ERR_LIMIT;
  int rv = wr_buf_reserve(arena, bytes);
  if (rv != WR_OK) return rv;
  char *st = arena_take(arena, 4);
  st[0] = (char)('0' + status / 100);
  st[1] = (char)('0' + status / 10 % 10);
  st[2] = (char)('0' + status % 10);
  st[3] = '\0';
  set_meta(&out[0], WR_HTTPMETA_KEY_STATUS, st, 3);
  for (size_t i = 0; i < n; i++) {
    put_header_key(arena, hdrs[i].name, hdrs[i].name_len, &out[i + 1]);
    out[i + 1].val = hdrs[i].value_len ? hdrs[i].value : "";
    out[i + 1].val_len = hdrs[i].value_len;
  }
  return (int)(n + 1);
}

int wr_httpmeta_resp_decode(const wr_meta *meta, size_t n, wr_buf *arena, wr_http_header *out,
                            size_t cap, wr_httpmeta_response *resp) {
  memset(resp, 0, sizeof(*resp));
  size_t slen;
  const char *s = wr_meta_find_last(meta, n, WR_HTTPMETA_KEY_STATUS, &slen);
  if (!s || slen != 3) return WR_ERR_PROTO;
  for (int i = 0; i < 3; i++)
    if (s[i] < '0' || s[i] > '9') return WR_ERR_PROTO;
  int status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
  if (status < 100) return WR_ERR_PROTO;
  size_t count;
  int rv = collect_headers(meta, n, arena, out, cap, &count);
  if (rv != WR_OK) return rv;
  resp->status = status;
  resp->nheaders = count;
  return WR_OK;
}

/* ---- HTTP/2 serialized response headers ----------------------------------- */

static int has_iprefix(const char *s, size_t len, const char *prefix) {
  size_t plen = strlen(prefix);
  return len >= plen && ieq(s, plen, prefix);
}

int wr_httpmeta_h2_is_control_header(const char *name, size_t len) {
  if (ieq(name, len, "sec-websocket-accept") || ieq(name, len, "connection") ||
      ieq(name, len, "upgrade"))
    return 0;
  return has_iprefix(name, len, ":") || has_iprefix(name, len, "cf-int-") ||
         has_iprefix(name, len, "cf-cloudflared-");
}

/* Appends RawStdEncoding(|s|) to |out|, canonicalising |s| as a header name
 * on the fly if |canon| (in 48-byte slices: no copy of the whole name). */
static int append_b64(wr_buf *out, const char *s, size_t len, int canon) {
  size_t need = len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
  int rv = wr_buf_reserve(out, need); /* and room for the encoder's NUL */
  if (rv != WR_OK) return rv;
  char *o = (char *)out->data + out->len, *end = o + need + 1;
  size_t i = 0;
  do {
    uint8_t slice[48]; /* a multiple of 3: the slices' encodings concatenate */
    size_t n = len - i < sizeof(slice) ? len - i : sizeof(slice);
    for (size_t k = 0; k < n; k++) slice[k] = canon ? canon_byte(s, i + k) : (uint8_t)s[i + k];
    o += wr_base64_encode(slice, n, o, (size_t)(end - o), 0);
    i += n;
  } while (i < len);
  out->len += need;
  return WR_OK;
}

int wr_httpmeta_h2_serialize(const wr_http_header *hdrs, size_t n, unsigned flags, wr_buf *out) {
  size_t start = out->len;
  int rv = WR_OK;
  for (size_t i = 0; i < n; i++) {
    const wr_http_header *h = &hdrs[i];
    if ((flags & WR_HTTPMETA_H2_SKIP_CONTROL) &&
        wr_httpmeta_h2_is_control_header(h->name, h->name_len))
      continue;
    if (out->len > start && (rv = wr_buf_append(out, ";", 1)) != WR_OK) goto out;
    if ((rv = append_b64(out, h->name, h->name_len, tchars_only(h->name, h->name_len))) != WR_OK)
      goto out;
    if ((rv = wr_buf_append(out, ":", 1)) != WR_OK) goto out;
    if ((rv = append_b64(out, h->value, h->value_len, 0)) != WR_OK) goto out;
  }
out:
  if (rv != WR_OK) out->len = start; /* leave no half-written value behind */
  return rv;
}

/* Go's RawStdEncoding, non-strict: CR/LF skipped, '=' refused, non-zero
 * unused bits accepted. */
#define GO_RAW (WR_BASE64_NOPAD | WR_BASE64_GO)

/* Calls |fn| on each non-empty ';'-separated pair, split at its ':'.
 * Returns WR_ERR_PROTO for a pair without exactly one ':'. */
typedef int (*pair_fn)(const char *name, size_t nlen, const char *val, size_t vlen, void *ctx);

static int each_pair(const char *s, size_t len, pair_fn fn, void *ctx) {
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && s[i] != ';') continue;
    const char *p = s + start;
    size_t plen = i - start;
    start = i + 1;
    if (plen == 0) continue;
    const char *colon = memchr(p, ':', plen);
    if (!colon) return WR_ERR_PROTO;
    size_t nlen = (size_t)(colon - p);
    if (memchr(colon + 1, ':', plen - nlen - 1)) return WR_ERR_PROTO;
    int rv = fn(p, nlen, colon + 1, plen - nlen - 1, ctx);
    if (rv != WR_OK) return rv;
  }
  return WR_OK;
}

typedef struct deser_ctx {
  size_t count, bytes;     /* pass 1 */
  wr_buf *arena;           /* pass 2 */
  wr_http_header *out;
  size_t o;
} deser_ctx;

static int deser_measure(const char *n, size_t nlen, const char *v, size_t vlen, void *ctx) {
  deser_ctx *c = ctx;
  int a = wr_base64_decode(n, nlen, NULL, 0, GO_RAW), b = wr_base64_decode(v, vlen, NULL, 0, GO_RAW);
  if (a < 0 || b < 0) return WR_ERR_PROTO;
  c->count++;
  c->bytes += (size_t)a + (size_t)b + 2;
  return WR_OK;
}

static int deser_fill(const char *n, size_t nlen, const char *v, size_t vlen, void *ctx) {
  deser_ctx *c = ctx;
  wr_http_header *h = &c->out[c->o++];
  uint8_t *p = (uint8_t *)c->arena->data + c->arena->len;
  size_t room = c->arena->cap - c->arena->len; /* reserved by the measuring pass */
  size_t a = (size_t)wr_base64_decode(n, nlen, p, room, GO_RAW);
  p[a] = '\0';
  uint8_t *q = p + a + 1;
  size_t b = (size_t)wr_base64_decode(v, vlen, q, room - a - 1, GO_RAW);
  q[b] = '\0';
  c->arena->len += a + b + 2;
  h->name = (const char *)p;
  h->name_len = a;
  h->value = (const char *)q;
  h->value_len = b;
  return WR_OK;
}

int wr_httpmeta_h2_deserialize(const char *s, size_t len, wr_buf *arena, wr_http_header *out,
                               size_t cap) {
  deser_ctx c = {0};
  if (len == 0) return 0; /* Go: the empty value means no headers */
  int rv = each_pair(s, len, deser_measure, &c);
  if (rv != WR_OK) return rv;
  if (c.count > cap) return WR_ERR_LIMIT;
  if ((rv = wr_buf_reserve(arena, c.bytes)) != WR_OK) return rv;
  c.arena = arena;
  c.out = out;
  rv = each_pair(s, len, deser_fill, &c);
  if (rv != WR_OK) return rv;
  return (int)c.o;
}
