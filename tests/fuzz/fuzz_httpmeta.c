/* Fuzzes the two parsers that read peer-controlled HTTP metadata:
 * 1. Cf-Cloudflared-Response-Headers deserialization (the whole input as the
 *    header value); whatever parses re-serializes and parses back to the
 *    same headers (names canonicalised).
 * 2. ConnectRequest / ConnectResponse metadata -> HTTP (the input as lines
 *    "key=value"); whatever parses is encoded again and must parse back. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "proto/httpmeta.h"
#include "fuzz.h"

#define MAXH 256

static int same_bytes(const char *a, size_t alen, const char *b, size_t blen) {
  return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void check_h2(const char *s, size_t len) {
  static wr_http_header h[MAXH], g[MAXH];
  wr_buf arena, out, arena2;
  wr_buf_init(&arena, 1 << 20, NULL);
  wr_buf_init(&out, 1 << 20, NULL);
  wr_buf_init(&arena2, 1 << 20, NULL);
  int n = wr_httpmeta_h2_deserialize(s, len, &arena, h, MAXH);
  if (n < 0) goto out;
  if (wr_httpmeta_h2_serialize(h, (size_t)n, 0, &out) != 0) abort();
  if (wr_httpmeta_h2_deserialize((const char *)out.data, out.len, &arena2, g, MAXH) != n) abort();
  for (int i = 0; i < n; i++) {
    char canon[4096];
    if (h[i].name_len > sizeof(canon)) continue;
    wr_httpmeta_canonical_key(h[i].name, h[i].name_len, canon);
    if (!same_bytes(canon, h[i].name_len, g[i].name, g[i].name_len)) abort();
    if (!same_bytes(h[i].value, h[i].value_len, g[i].value, g[i].value_len)) abort();
  }
out:
  wr_buf_free(&arena);
  wr_buf_free(&out);
  wr_buf_free(&arena2);
}

static void check_meta(const char *s, size_t len) {
  static wr_meta m[MAXH], m2[MAXH + 1];
  static wr_http_header h[MAXH], g[MAXH];
  size_t n = 0, start = 0;
  for (size_t i = 0; i <= len && n < MAXH; i++) {
    if (i < len && s[i] != '\n') continue;
    const char *line = s + start;
    size_t llen = i - start;
    const char *eq = memchr(line, '=', llen);
    size_t klen = eq ? (size_t)(eq - line) : llen;
    m[n].key = line;
    m[n].key_len = klen;
    m[n].val = eq ? eq + 1 : line + llen;
    m[n].val_len = eq ? llen - klen - 1 : 0;
    n++;
    start = i + 1;
  }
  wr_buf arena, arena2;
  wr_buf_init(&arena, 1 << 20, NULL);
  wr_buf_init(&arena2, 1 << 20, NULL);

  wr_httpmeta_request req;
  if (wr_httpmeta_req_decode(m, n, &arena, h, MAXH, &req) == 0) {
    if (!wr_httpmeta_is_token(req.method, req.method_len)) abort();
    /* Encoding may drop hop-by-hop headers, but what it keeps must parse. */
    int k = wr_httpmeta_req_encode(req.method, req.method_len, req.host, req.host_len, h,
                                   req.nheaders, WR_HTTPMETA_REQ_CHUNKED, &arena2, m2, MAXH + 1);
    wr_httpmeta_request req2;
    if (k >= 0 && wr_httpmeta_req_decode(m2, (size_t)k, NULL, g, MAXH, &req2) != 0) abort();
  }
  wr_buf_reset(&arena);
  wr_buf_reset(&arena2);
  wr_httpmeta_response resp, resp2;
  if (wr_httpmeta_resp_decode(m, n, &arena, h, MAXH, &resp) == 0) {
    if (resp.status < 100 || resp.status > 999) abort();
    int k = wr_httpmeta_resp_encode(resp.status, h, resp.nheaders, &arena2, m2, MAXH + 1);
    if (k >= 0) {
      if (wr_httpmeta_resp_decode(m2, (size_t)k, NULL, g, MAXH, &resp2) != 0) abort();
      if (resp2.status != resp.status || resp2.nheaders != resp.nheaders) abort();
    }
  }
  wr_buf_free(&arena);
  wr_buf_free(&arena2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  check_h2((const char *)data, size);
  check_meta((const char *)data, size);
  return 0;
}
