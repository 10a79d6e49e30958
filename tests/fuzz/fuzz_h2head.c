/* Fuzzes the HTTP/2 <-> HTTP/1.1 heads (src/proto/h2head.c). The input is
 * a list of fields "name\0value\0..." fed as one header block (first byte:
 * END_STREAM and a small limit), then the whole input as an HTTP/1.1
 * response head. Checked: return codes stay in the documented set; a
 * rebuilt request head parses with the HTTP/1.1 parser as one complete head
 * or is refused by it as malformed or too large (never read past); response
 * fields have lower-case names and no hop-by-hop field. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "proto/h2head.h"
#include "proto/http1.h"

#define CHECK(c)                \
  do {                          \
    if (!(c)) __builtin_trap(); \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void request(const uint8_t *data, size_t size) {
  if (size == 0) return;
  int eos = data[0] & 1;
  size_t max = data[0] & 2 ? 256 : WR_HTTP1_DEFAULT_MAX_HEAD;
  wr_h2req r;
  wr_h2req_init(&r, max);
  const uint8_t *p = data + 1, *end = data + size;
  while (p < end) {
    const uint8_t *n0 = memchr(p, 0, (size_t)(end - p));
    if (!n0) break;
    const uint8_t *v = n0 + 1, *v0 = memchr(v, 0, (size_t)(end - v));
    if (!v0) v0 = end;
    wr_h2req_field(&r, p, (size_t)(n0 - p), v, (size_t)(v0 - v));
    p = v0 + 1;
  }
  wr_buf out;
  wr_buf_init(&out, 4 * max, NULL);
  int rv = wr_h2req_head(&r, eos, &out);
  CHECK(rv == WR_OK || rv == WR_ERR_LIMIT || rv == WR_ERR_PROTO);
  if (rv == WR_OK) {
    CHECK(out.len <= max);
    wr_http_header hd[128];
    wr_http1_head h;
    size_t used = 0;
    int prv = wr_http1_parse_request(out.data, out.len, NULL, hd, 128, &h, &used);
    CHECK(prv == WR_OK || prv == WR_ERR_PROTO || prv == WR_ERR_LIMIT);
    if (prv == WR_OK) CHECK(used == out.len);
  }
  wr_buf_free(&out);
  wr_h2req_free(&r);
}

static wr_h2resp rh;

static void response(const uint8_t *data, size_t size) {
  size_t used = 0;
  int rv = wr_h2resp_from_http1(data, size, size && data[0] & 1 ? "HEAD" : "GET", &rh, &used);
  CHECK(rv == WR_OK || rv == WR_AGAIN || rv == WR_ERR_PROTO || rv == WR_ERR_LIMIT);
  if (rv != WR_OK) return;
  CHECK(used <= size && rh.status >= 100 && rh.status <= 999 && rh.status != 101);
  for (size_t i = 0; i < rh.nfields; i++) {
    CHECK(!wr_http1_is_hop_by_hop(rh.fields[i].name, rh.fields[i].name_len));
    for (size_t j = 0; j < rh.fields[i].name_len; j++)
      CHECK(rh.fields[i].name[j] < 'A' || rh.fields[i].name[j] > 'Z');
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  request(data, size);
  response(data, size);
  return 0;
}
