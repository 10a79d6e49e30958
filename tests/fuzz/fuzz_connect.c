/* Fuzzes the ConnectRequest / ConnectResponse codec (src/proto/connect.c).
 * The input is a data stream: if it starts with the data-stream preamble
 * (signature + "01") that is skipped, as the stream layer would. Each
 * decoder runs on it; whatever decodes must re-encode, decode to the same
 * values, and re-encode to the same bytes (a fixpoint). Seeds: the captured
 * data streams of tests/vectors/quic and the golden data-stream dumps. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "proto/connect.h"
#include "proto/stream_head.h"
#include "fuzz.h"

#define MAXM 64

static const uint8_t data_sig[8] = {0x0a, 0x36, 0xcd, 0x12, 0xa1, 0x3e, 0x30, 0x31};

static void check_request(const wr_connect_request *q) {
  wr_buf b1, b2;
  wr_connect_request r;
  size_t used;
  CHECK(q->dest[q->dest_len] == '\0');
  for (size_t i = 0; i < q->nmeta; i++)
    CHECK(q->meta[i].key[q->meta[i].key_len] == '\0' && q->meta[i].val[q->meta[i].val_len] == '\0');
  wr_buf_init(&b1, 1u << 26, NULL);
  wr_buf_init(&b2, 1u << 26, NULL);
  CHECK(wr_connect_request_encode(q, NULL, &b1) == 0);
  CHECK(wr_connect_request_decode_alloc(b1.data, b1.len, NULL, NULL, 0, &r, &used) == 0);
  CHECK(used == b1.len);
  CHECK(r.type == q->type && r.has_meta == q->has_meta && r.dest_len == q->dest_len &&
        memcmp(r.dest, q->dest, r.dest_len) == 0 && wr_meta_equal(r.meta, r.nmeta, q->meta, q->nmeta));
  CHECK(wr_connect_request_encode(&r, NULL, &b2) == 0);
  CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
  wr_connect_request_free(NULL, &r);
  wr_buf_free(&b1);
  wr_buf_free(&b2);
}

static void check_response(const wr_connect_response *q) {
  wr_buf b1, b2;
  wr_connect_response r;
  size_t used;
  CHECK(q->error[q->error_len] == '\0');
  wr_buf_init(&b1, 1u << 26, NULL);
  wr_buf_init(&b2, 1u << 26, NULL);
  CHECK(wr_connect_response_encode(q, NULL, &b1) == 0);
  CHECK(wr_connect_response_decode_alloc(b1.data, b1.len, NULL, NULL, 0, &r, &used) == 0);
  CHECK(used == b1.len);
  CHECK(r.has_meta == q->has_meta && r.error_len == q->error_len &&
        memcmp(r.error, q->error, r.error_len) == 0 &&
        wr_meta_equal(r.meta, r.nmeta, q->meta, q->nmeta));
  CHECK(wr_connect_response_encode(&r, NULL, &b2) == 0);
  CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
  wr_connect_response_free(NULL, &r);
  wr_buf_free(&b1);
  wr_buf_free(&b2);
}

static int valid_rv(int rv) { return rv == 0 || (rv < 0 && rv >= WR_ERR_INTERNAL); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static wr_meta meta[MAXM];
  wr_capnp_limits lim = {.traversal_words = 1u << 16};
  wr_connect_request q;
  wr_connect_response r;
  size_t used = 0;
  int rv;
  /* The response head as the edge reads it (preamble included). */
  int bad_preamble = 0;
  rv = wr_stream_head_decode(data, size, &r, &used, &bad_preamble);
  CHECK(valid_rv(rv) && (!bad_preamble || rv == WR_ERR_PROTO));
  if (rv == 0) {
    CHECK(used > 8 && used <= size);
    check_response(&r);
    wr_connect_response_free(NULL, &r);
  }
  /* The request head as a forwarding edge judges it: a yes or a no. */
  rv = wr_stream_request_idempotent(data, size);
  CHECK(rv == 0 || rv == 1);
  if (size >= 8 && memcmp(data, data_sig, 8) == 0) {
    data += 8;
    size -= 8;
  }
  rv = wr_connect_request_decode(data, size, &lim, &q, meta, MAXM, &used);
  CHECK(valid_rv(rv));
  if (rv == 0) {
    CHECK(used <= size);
    check_request(&q);
  }
  rv = wr_connect_response_decode(data, size, &lim, &r, meta, MAXM, &used);
  CHECK(valid_rv(rv));
  if (rv == 0) {
    CHECK(used <= size);
    check_response(&r);
  }
  /* The allocating variant agrees with the bounded one when both fit. */
  rv = wr_connect_request_decode_alloc(data, size, &lim, NULL, 0, &q, &used);
  CHECK(valid_rv(rv));
  if (rv == 0) {
    check_request(&q);
    wr_connect_request_free(NULL, &q);
  }
  return 0;
}
