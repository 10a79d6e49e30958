/* Helpers shared by the Cap'n Proto suites: see capnp_support.h. */
#include "capnp_support.h"

#include <stdlib.h>

#include "unit.h"

void unit_capnp_assert_built(wr_capnp_builder *b, const char *hex) {
  size_t n, len;
  const uint8_t *out;
  uint8_t *want = unit_hex(hex, &n);
  assert_int_equal(wr_capnp_builder_finish(b, &out, &len), 0);
  assert_int_equal(len, n);
  assert_memory_equal(out, want, n);
  free(want);
  wr_capnp_builder_free(b);
}
