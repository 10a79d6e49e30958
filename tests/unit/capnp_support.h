/* Helpers for the suites that check Cap'n Proto bytes (test_capnp.c, test_rpc.c):
 * comparing what a builder made with golden bytes. Linked into every unit
 * test, like unit.c. */
#ifndef WR_UNIT_CAPNP_SUPPORT_H
#define WR_UNIT_CAPNP_SUPPORT_H
#include "proto/capnp.h"

/* Finishes |b|, asserts (cmocka) that its message is exactly the bytes of
 * |hex| (unit_hex's format: the layout capnproto2 writes) and frees |b|,
 * which the caller must not use again. A failed finish or a mismatch fails
 * the test (cmocka leaves it there, |b| not freed). Only on the test's
 * thread, where cmocka's asserts may run; not from a client thread. */
void unit_capnp_assert_built(wr_capnp_builder *b, const char *hex);

#endif
