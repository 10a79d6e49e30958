/* Stream preambles: classification of edge-opened streams, writers. */
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/preamble.h"
#include "unit.h"

static void test_captured_data_stream(void **state) {
  (void)state;
  size_t n, used = 99;
  uint8_t ver[2] = {0, 0};
  uint8_t *b = unit_read_vector("quic/http-get.from-edge.bin", &n);
  assert_int_equal(wr_preamble_classify(b, n, &used, ver), WR_PREAMBLE_DATA);
  assert_int_equal(used, 8);
  assert_memory_equal(ver, "01", 2);
  /* The connector answers with the same preamble. */
  free(b);
  b = unit_read_vector("quic/http-get.from-connector.bin", &n);
  assert_int_equal(wr_preamble_classify(b, n, &used, NULL), WR_PREAMBLE_DATA);
  assert_int_equal(used, 8);
  free(b);
}

static void test_captured_rpc_stream(void **state) {
  (void)state;
  size_t n, used = 99;
  uint8_t *b = unit_read_vector("quic/rpc.register-udp-session.from-edge.bin", &n);
  assert_int_equal(wr_preamble_classify(b, n, &used, NULL), WR_PREAMBLE_RPC);
  assert_int_equal(used, 6);
  /* No version bytes: the Cap'n Proto segment table follows at once. */
  assert_memory_equal(b + 6, "\x00\x00\x00\x00", 4);
  free(b);
}

static void test_every_prefix_needs_more(void **state) {
  (void)state;
  uint8_t data[8], rpc[6];
  size_t used;
  assert_int_equal(wr_preamble_write(WR_PREAMBLE_DATA, data, sizeof(data)), 8);
  assert_int_equal(wr_preamble_write(WR_PREAMBLE_RPC, rpc, sizeof(rpc)), 6);
  assert_int_equal(wr_preamble_classify(NULL, 0, &used, NULL), WR_AGAIN);
  for (size_t i = 0; i < 8; i++) {
    used = 99;
    assert_int_equal(wr_preamble_classify(data, i, &used, NULL), WR_AGAIN);
    assert_int_equal(used, 0);
  }
  for (size_t i = 0; i < 6; i++)
    assert_int_equal(wr_preamble_classify(rpc, i, &used, NULL), WR_AGAIN);
  assert_int_equal(wr_preamble_classify(rpc, 6, &used, NULL), WR_PREAMBLE_RPC);
  assert_int_equal(wr_preamble_classify(data, 8, &used, NULL), WR_PREAMBLE_DATA);
}

static void test_any_version_accepted(void **state) {
  (void)state;
  uint8_t b[10] = {0x0A, 0x36, 0xCD, 0x12, 0xA1, 0x3E, 'x', 0xff, 1, 2};
  uint8_t ver[2];
  size_t used;
  assert_int_equal(wr_preamble_classify(b, sizeof(b), &used, ver), WR_PREAMBLE_DATA);
  assert_int_equal(used, 8);
  assert_int_equal(ver[0], 'x');
  assert_int_equal(ver[1], 0xff);
}

static void test_unknown_signature(void **state) {
  (void)state;
  size_t used = 99;
  /* Rejected as soon as a byte cannot start either signature. */
  const uint8_t first[] = {0x00};
  assert_int_equal(wr_preamble_classify(first, 1, &used, NULL), WR_ERR_PROTO);
  assert_int_equal(used, 0);
  const uint8_t mid[] = {0x0A, 0x36, 0xCD, 0x13};
  assert_int_equal(wr_preamble_classify(mid, sizeof(mid), &used, NULL), WR_ERR_PROTO);
  const uint8_t last[] = {0x52, 0xBB, 0x82, 0x5C, 0xDB, 0x66, 0, 0};
  assert_int_equal(wr_preamble_classify(last, sizeof(last), &used, NULL), WR_ERR_PROTO);
  /* The data signature's version bytes must not be mistaken for more
   * signature: a 6-byte data signature alone is incomplete. */
  const uint8_t datasig[] = {0x0A, 0x36, 0xCD, 0x12, 0xA1, 0x3E};
  assert_int_equal(wr_preamble_classify(datasig, 6, &used, NULL), WR_AGAIN);
}

static void test_writer(void **state) {
  (void)state;
  uint8_t b[8];
  memset(b, 0xee, sizeof(b));
  assert_int_equal(wr_preamble_write(WR_PREAMBLE_DATA, b, 8), 8);
  assert_memory_equal(b, "\x0A\x36\xCD\x12\xA1\x3E" "01", 8);
  memset(b, 0xee, sizeof(b));
  assert_int_equal(wr_preamble_write(WR_PREAMBLE_RPC, b, 8), 6);
  assert_memory_equal(b, "\x52\xBB\x82\x5C\xDB\x65\xee", 7);
  assert_int_equal(wr_preamble_write(WR_PREAMBLE_DATA, b, 7), WR_ERR_LIMIT);
  assert_int_equal(wr_preamble_write(WR_PREAMBLE_RPC, b, 5), WR_ERR_LIMIT);
  assert_int_equal(wr_preamble_write((enum wr_preamble_kind)7, b, 8), WR_ERR_INVAL);
}

int main(void) {
  return UNIT_RUN(
      NULL, NULL,
      UNIT_TESTS(test_captured_data_stream, test_captured_rpc_stream, test_every_prefix_needs_more,
                 test_any_version_accepted, test_unknown_signature, test_writer));
}
