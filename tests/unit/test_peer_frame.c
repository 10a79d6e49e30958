/* Edge-to-edge forwarding frames (proto/peer_frame.h): round trips, partial
 * input, and the lengths each type allows. */
#include <string.h>

#include "lib/err.h"
#include "proto/peer_frame.h"
#include "unit.h"

static void test_round_trip(void **state) {
  (void)state;
  uint8_t buf[128];
  size_t n = 0, used = 0;
  wr_peer_frame f;
  wr_peer_frame_head(buf, WR_PEER_OPEN, 36);
  memcpy(buf + 4, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", 36);
  n = 40;
  wr_peer_frame_head(buf + n, WR_PEER_DATA, 3);
  memcpy(buf + n + 4, "abc", 3);
  n += 7;
  wr_peer_frame_code(buf + n, WR_PEER_RESET, 0x10cull);
  n += 12;
  assert_int_equal(wr_peer_frame_parse(buf, n, &f, &used), WR_OK);
  assert_int_equal(f.type, WR_PEER_OPEN);
  assert_int_equal(used, 40);
  assert_memory_equal(f.payload, "aaaaaaaa", 8);
  assert_int_equal(wr_peer_frame_parse(buf + 40, n - 40, &f, &used), WR_OK);
  assert_int_equal(f.type, WR_PEER_DATA);
  assert_int_equal(f.len, 3);
  assert_memory_equal(f.payload, "abc", 3);
  assert_int_equal(wr_peer_frame_parse(buf + 47, n - 47, &f, &used), WR_OK);
  assert_int_equal(f.type, WR_PEER_RESET);
  assert_int_equal(f.code, 0x10c);
  assert_int_equal(used, 12);
}

static void test_partial_and_bad(void **state) {
  (void)state;
  uint8_t buf[16];
  size_t used = 0;
  wr_peer_frame f;
  wr_peer_frame_head(buf, WR_PEER_DATA, 3);
  memcpy(buf + 4, "abc", 3);
  for (size_t i = 0; i < 7; i++) assert_int_equal(wr_peer_frame_parse(buf, i, &f, &used), WR_ERR_TRUNC);
  /* DATA must carry 1..WR_PEER_FRAME_MAX bytes; FIN none; OPEN a UUID. */
  wr_peer_frame_head(buf, WR_PEER_DATA, 0);
  assert_int_equal(wr_peer_frame_parse(buf, 4, &f, &used), WR_ERR_PROTO);
  wr_peer_frame_head(buf, WR_PEER_DATA, WR_PEER_FRAME_MAX + 1);
  assert_int_equal(wr_peer_frame_parse(buf, 4, &f, &used), WR_ERR_PROTO);
  wr_peer_frame_head(buf, WR_PEER_FIN, 1);
  assert_int_equal(wr_peer_frame_parse(buf, 5, &f, &used), WR_ERR_PROTO);
  wr_peer_frame_head(buf, WR_PEER_OPEN, 35);
  assert_int_equal(wr_peer_frame_parse(buf, 4, &f, &used), WR_ERR_PROTO);
  wr_peer_frame_head(buf, 9, 0);
  assert_int_equal(wr_peer_frame_parse(buf, 4, &f, &used), WR_ERR_PROTO);
  wr_peer_frame_head(buf, WR_PEER_FIN, 0);
  assert_int_equal(wr_peer_frame_parse(buf, 4, &f, &used), WR_OK);
  assert_int_equal(used, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_partial_and_bad),
  };
  return cmocka_run_group_tests_name("peer_frame", tests, NULL, NULL);
}
