/* Fuzzes the QUIC datagram decoders (v2 suffix layout, v3 prefix layout) and
 * the Jaeger trace-identity parser. Beyond "no crash" (ASan/UBSan) it checks
 * round trips: a decoded v2 datagram re-encodes to exactly the input bytes,
 * a decoded v3 datagram re-encodes to bytes that decode to the same value,
 * and a parsed identity formats to a string that parses to the same value. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/datagram.h"
#include "fuzz.h"

static uint8_t out[70000];

static void check_v2(const uint8_t *data, size_t size) {
  wr_dgram d;
  if (wr_dgram_v2_decode(data, size, &d) != 0) return;
  if (d.payload != data || d.payload_len >= size) abort();
  if (wr_dgram_v2_encoded_len(&d) != size) abort();
  int n = wr_dgram_v2_encode(&d, SIZE_MAX, SIZE_MAX, out, sizeof(out));
  if (n < 0 || (size_t)n != size || memcmp(out, data, size) != 0) abort();
  /* One byte less of frame or buffer must be refused, not overrun. */
  if (wr_dgram_v2_encode(&d, size - 1, SIZE_MAX, out, sizeof(out)) >= 0) abort();
  if (wr_dgram_v2_encode(&d, SIZE_MAX, SIZE_MAX, out, size - 1) >= 0) abort();
}

static int same_v3(const wr_dgram_v3 *a, const wr_dgram_v3 *b) {
  if (a->type != b->type || memcmp(a->request_id, b->request_id, 16) != 0) return 0;
  if (a->payload_len != b->payload_len ||
      (a->payload_len && memcmp(a->payload, b->payload, a->payload_len) != 0))
    return 0;
  switch (a->type) {
  case WR_DGRAM_V3_REGISTER:
    return a->ipv6 == b->ipv6 && a->traced == b->traced && a->dst_port == b->dst_port &&
           a->idle_seconds == b->idle_seconds &&
           memcmp(a->dst_addr, b->dst_addr, a->ipv6 ? 16 : 4) == 0;
  case WR_DGRAM_V3_RESPONSE:
    return a->resp_code == b->resp_code && a->err_msg_len == b->err_msg_len &&
           (a->err_msg_len == 0 || memcmp(a->err_msg, b->err_msg, a->err_msg_len) == 0);
  default:
    return 1;
  }
}

static void check_v3(const uint8_t *data, size_t size) {
  wr_dgram_v3 d, e;
  if (wr_dgram_v3_decode(data, size, &d) != 0) return;
  int n = wr_dgram_v3_encode(&d, out, sizeof(out));
  if (n < 0 || (size_t)n > size) abort();
  if (wr_dgram_v3_decode(out, (size_t)n, &e) != 0 || !same_v3(&d, &e)) abort();
}

static void check_trace(const uint8_t *data, size_t size) {
  wr_dgram_trace t, u;
  char s[WR_DGRAM_TRACE_STR_MAX + 1];
  if (wr_dgram_trace_parse((const char *)data, size, &t) == 0) {
    int n = wr_dgram_trace_format(&t, s, sizeof(s));
    if (n < 0 || wr_dgram_trace_parse(s, (size_t)n, &u) != 0) abort();
    if (t.trace_hi != u.trace_hi || t.trace_lo != u.trace_lo || t.span_id != u.span_id ||
        t.flags != u.flags)
      abort();
  }
  if (wr_dgram_trace_unpack(data, size, &t) == 0) {
    uint8_t b[WR_DGRAM_TRACE_LEN];
    wr_dgram_trace_pack(&t, b);
    if (memcmp(b, data, WR_DGRAM_TRACE_LEN) != 0) abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  check_v2(data, size);
  check_v3(data, size);
  check_trace(data, size);
  return 0;
}
