/* Cap'n Proto codec: framing, pointers of every kind, limits, builder bytes. */
#include <stdlib.h>
#include <string.h>

#include "capnp_support.h"
#include "lib/err.h"
#include "proto/capnp.h"
#include "unit.h"

/* Bootstrap(q0) exactly as cloudflared writes it (protocol.md 3.5). */
static const char bootstrap_hex[] =
    "00000000 05000000 00000000 01000100 08000000 00000000"
    "00000000 01000100 00000000 00000000 00000000 00000000";

/* Finish(q0, releaseResultCaps=false). */
static const char finish_hex[] =
    "00000000 04000000 00000000 01000100 04000000 00000000 00000000 01000000 00000000 01000000";

/* ConnectRequest{dest=tunnel.com, http, [key=1234]} without the preamble. */
static const char connect_hex[] =
    "00000000 0b000000 00000000 01000200 00000000 00000000 05000000 5a000000"
    "09000000 17000000 74756e6e 656c2e63 6f6d0000 00000000 04000000 00000200"
    "05000000 22000000 05000000 2a000000 6b657900 00000000 31323334 00000000";

static void test_decode_bootstrap(void **state) {
  (void)state;
  size_t n, used = 0;
  uint8_t *b = unit_hex(bootstrap_hex, &n);
  wr_capnp_msg m;
  wr_capnp_struct root, boot;
  assert_int_equal(n, 48);
  assert_int_equal(wr_capnp_msg_init(&m, b, n, NULL, &used), 0);
  assert_int_equal(used, 48);
  assert_int_equal(m.nsegs, 1);
  assert_int_equal(wr_capnp_root(&m, &root), 0);
  assert_int_equal(root.data_size, 8);
  assert_int_equal(root.nptrs, 1);
  assert_int_equal(wr_capnp_u16(&root, 0), 8); /* Message.which = bootstrap */
  assert_int_equal(wr_capnp_ptr_kind(&root, 0), WR_CAPNP_PTR_STRUCT);
  assert_int_equal(wr_capnp_get_struct(&root, 0, &boot), 0);
  assert_false(boot.is_null);
  assert_int_equal(wr_capnp_u32(&boot, 0), 0);
  assert_int_equal(wr_capnp_ptr_kind(&boot, 0), WR_CAPNP_PTR_NULL);
  /* Reads past the data section and pointer section give defaults. */
  assert_int_equal(wr_capnp_u64(&boot, 8), 0);
  assert_int_equal(wr_capnp_ptr_kind(&boot, 5), WR_CAPNP_PTR_NULL);
  assert_int_equal(m.err, 0);
  free(b);
}

static void test_build_bootstrap_and_finish_bytes(void **state) {
  (void)state;
  wr_capnp_builder b;
  wr_capnp_bstruct root, inner;

  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_capnp_init_root(&b, 1, 1, &root), 0);
  wr_capnp_set_u16(&root, 0, 8);
  assert_int_equal(wr_capnp_new_struct(&root, 0, 1, 1, &inner), 0);
  wr_capnp_set_u32(&inner, 0, 0);
  unit_capnp_assert_built(&b, bootstrap_hex);

  wr_capnp_builder_init(&b, NULL, 0);
  wr_capnp_init_root(&b, 1, 1, &root);
  wr_capnp_set_u16(&root, 0, 4);
  wr_capnp_new_struct(&root, 0, 1, 0, &inner);
  wr_capnp_set_bool(&inner, 32, 1); /* releaseResultCaps=false, stored inverted */
  unit_capnp_assert_built(&b, finish_hex);
}

static void test_connect_request_text_and_composite(void **state) {
  (void)state;
  size_t n;
  uint8_t *buf = unit_hex(connect_hex, &n);
  wr_capnp_msg m;
  wr_capnp_struct root, md;
  wr_capnp_list l;
  const char *s;
  size_t slen;
  assert_int_equal(wr_capnp_msg_init(&m, buf, n, NULL, NULL), 0);
  assert_int_equal(wr_capnp_root(&m, &root), 0);
  assert_int_equal(wr_capnp_u16(&root, 0), 0);
  assert_int_equal(wr_capnp_get_text(&root, 0, &s, &slen), 0);
  assert_int_equal(slen, 10);
  assert_memory_equal(s, "tunnel.com", 10);
  assert_int_equal(wr_capnp_get_list(&root, 1, &l), 0);
  assert_int_equal(l.elem, WR_CAPNP_ELEM_COMPOSITE);
  assert_int_equal(l.count, 1);
  assert_int_equal(wr_capnp_list_struct(&l, 0, &md), 0);
  assert_int_equal(wr_capnp_get_text(&md, 0, &s, &slen), 0);
  assert_string_equal(s, "key");
  assert_int_equal(wr_capnp_get_text(&md, 1, &s, &slen), 0);
  assert_string_equal(s, "1234");
  /* Index past the end is an error, not a read out of bounds. */
  assert_int_equal(wr_capnp_list_struct(&l, 1, &md), WR_ERR_BOUNDS);
  free(buf);

  /* The builder lays it out exactly as capnproto2 does. */
  wr_capnp_builder b;
  wr_capnp_bstruct r, e;
  wr_capnp_blist bl;
  wr_capnp_builder_init(&b, NULL, 0);
  wr_capnp_init_root(&b, 1, 2, &r);
  wr_capnp_set_text(&r, 0, "tunnel.com", 10);
  wr_capnp_new_struct_list(&r, 1, 1, 0, 2, &bl);
  wr_capnp_blist_struct(&bl, 0, &e);
  wr_capnp_set_text(&e, 0, "key", 3);
  wr_capnp_set_text(&e, 1, "1234", 4);
  unit_capnp_assert_built(&b, connect_hex);
}

static void test_framing_partial_and_padding(void **state) {
  (void)state;
  size_t n, total = 0;
  uint8_t *b = unit_hex(bootstrap_hex, &n);
  wr_capnp_msg m;
  for (size_t i = 0; i < n; i++) assert_int_equal(wr_capnp_msg_init(&m, b, i, NULL, NULL), WR_AGAIN);
  assert_int_equal(wr_capnp_frame_size(b, 8, NULL, &total), WR_AGAIN);
  assert_int_equal(total, 48); /* known as soon as the table is complete */
  free(b);

  /* Two segments: table is 4 + 8 = 12 bytes, padded to 16. */
  uint8_t two[16 + 16] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
  assert_int_equal(wr_capnp_frame_size(two, sizeof(two), NULL, &total), 0);
  assert_int_equal(total, 32);
  assert_int_equal(wr_capnp_msg_init(&m, two, sizeof(two), NULL, NULL), 0);
  assert_int_equal(m.nsegs, 2);
  assert_ptr_equal(m.seg[1], two + 24);

  /* Too many segments, too many bytes. */
  uint8_t big[8] = {0x00, 0x02, 0, 0}; /* 513 segments */
  assert_int_equal(wr_capnp_frame_size(big, sizeof(big), NULL, &total), WR_ERR_LIMIT);
  uint8_t huge[8] = {0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f};
  assert_int_equal(wr_capnp_frame_size(huge, sizeof(huge), NULL, &total), WR_ERR_LIMIT);
  wr_capnp_limits lim = {.max_bytes = 40};
  b = unit_hex(bootstrap_hex, &n);
  assert_int_equal(wr_capnp_frame_size(b, n, &lim, &total), WR_ERR_LIMIT);
  free(b);
}

/* Segment 0 holds only a far pointer to a landing pad in segment 1. */
static void test_far_pointers(void **state) {
  (void)state;
  /* single far: seg0 = [far -> seg1 word 0]; seg1 = [struct ptr off 0 {1,0}, data] */
  uint8_t single[16 + 8 + 16] = {
      1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,  /* 2 segs: 1 word, 2 words */
      0x02, 0, 0, 0, 1, 0, 0, 0,                       /* far, pad at seg1 word 0 */
      0, 0, 0, 0, 1, 0, 0, 0,                          /* struct {1,0} offset 0 */
      0x2a, 0, 0, 0, 0, 0, 0, 0};
  wr_capnp_msg m;
  wr_capnp_struct root;
  assert_int_equal(wr_capnp_msg_init(&m, single, sizeof(single), NULL, NULL), 0);
  assert_int_equal(wr_capnp_root(&m, &root), 0);
  assert_int_equal(wr_capnp_u32(&root, 0), 42);

  /* double far: seg0 = [far(B=1) -> seg1 word 0]; seg1 = [far -> seg2 word 0,
   * tag struct {1,0}]; seg2 = [data] */
  uint8_t dbl[4 + 12 + 8 + 16 + 8] = {
      2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0,
      0x06, 0, 0, 0, 1, 0, 0, 0,           /* double far, pad seg1 word 0 */
      0x02, 0, 0, 0, 2, 0, 0, 0,           /* far to seg2 word 0 */
      0, 0, 0, 0, 1, 0, 0, 0,              /* tag: struct {1,0} */
      0x07, 0, 0, 0, 0, 0, 0, 0};
  assert_int_equal(wr_capnp_msg_init(&m, dbl, sizeof(dbl), NULL, NULL), 0);
  assert_int_equal(wr_capnp_root(&m, &root), 0);
  assert_int_equal(wr_capnp_u32(&root, 0), 7);

  /* Far pointer into a segment that does not exist. */
  single[12 + 8] = 0x02;
  single[12 + 12] = 9;
  assert_int_equal(wr_capnp_msg_init(&m, single, sizeof(single), NULL, NULL), 0);
  assert_int_equal(wr_capnp_root(&m, &root), WR_ERR_BOUNDS);
}

static void test_bounds_and_kinds(void **state) {
  (void)state;
  wr_capnp_msg m;
  wr_capnp_struct root, s;
  wr_capnp_list l;
  const char *t;
  size_t tl;
  const uint8_t *d;
  /* Root struct claiming 4 data words in a 2-word segment. */
  uint8_t oob[8 + 16] = {0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0};
  assert_int_equal(wr_capnp_msg_init(&m, oob, sizeof(oob), NULL, NULL), 0);
  assert_int_equal(wr_capnp_root(&m, &root), WR_ERR_BOUNDS);
  assert_int_equal(m.err, WR_ERR_BOUNDS);

  /* Negative offset before the segment start. */
  uint8_t neg[8 + 8] = {0, 0, 0, 0, 1, 0, 0, 0, 0xf8, 0xff, 0xff, 0xff, 1, 0, 0, 0};
  assert_int_equal(wr_capnp_msg_init(&m, neg, sizeof(neg), NULL, NULL), 0);
  assert_int_equal(wr_capnp_root(&m, &root), WR_ERR_BOUNDS);

  /* root {0,1} whose pointer is a text list of 3 bytes without NUL. */
  uint8_t nonul[8 + 24] = {0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
                           1, 0, 0, 0, 0x1a, 0, 0, 0, 'a', 'b', 'c'};
  assert_int_equal(wr_capnp_msg_init(&m, nonul, sizeof(nonul), NULL, NULL), 0);
  assert_int_equal(wr_capnp_root(&m, &root), 0);
  assert_int_equal(wr_capnp_get_data(&root, 0, &d, &tl), 0);
  assert_int_equal(tl, 3);
  assert_int_equal(wr_capnp_get_text(&root, 0, &t, &tl), WR_ERR_PROTO);
  assert_string_equal(t, "");
  /* The error is sticky: later reads fail too. */
  assert_int_equal(wr_capnp_get_data(&root, 0, &d, &tl), WR_ERR_PROTO);

  /* A list where a struct is expected, and vice versa. */
  nonul[8 + 16 + 2] = 'c';
  assert_int_equal(wr_capnp_msg_init(&m, nonul, sizeof(nonul), NULL, NULL), 0);
  assert_int_equal(wr_capnp_root(&m, &root), 0);
  assert_int_equal(wr_capnp_get_struct(&root, 0, &s), WR_ERR_PROTO);

  /* Oversized list: a byte list claiming 2^29-1 elements. */
  uint8_t biglist[8 + 16] = {0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
                             1, 0, 0, 0, 0xfa, 0xff, 0xff, 0xff};
  assert_int_equal(wr_capnp_msg_init(&m, biglist, sizeof(biglist), NULL, NULL), 0);
  assert_int_equal(wr_capnp_root(&m, &root), 0);
  assert_int_equal(wr_capnp_get_list(&root, 0, &l), WR_ERR_BOUNDS);

  /* Composite list whose tag claims more elements than its word count. */
  uint8_t comp[8 + 32] = {0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
                          1, 0, 0, 0, 0x0f, 0, 0, 0, /* composite, 1 word */
                          0x0c, 0, 0, 0, 1, 0, 0, 0, /* tag: 3 elements of {1,0} */
                          0, 0, 0, 0, 0, 0, 0, 0};
  assert_int_equal(wr_capnp_msg_init(&m, comp, sizeof(comp), NULL, NULL), 0);
  assert_int_equal(wr_capnp_root(&m, &root), 0);
  assert_int_equal(wr_capnp_get_list(&root, 0, &l), WR_ERR_BOUNDS);

  /* A capability pointer. */
  uint8_t cap[8 + 16] = {0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3, 0, 0, 0, 5, 0, 0, 0};
  uint32_t idx = 0;
  assert_int_equal(wr_capnp_msg_init(&m, cap, sizeof(cap), NULL, NULL), 0);
  assert_int_equal(wr_capnp_root(&m, &root), 0);
  assert_int_equal(wr_capnp_ptr_kind(&root, 0), WR_CAPNP_PTR_CAP);
  assert_int_equal(wr_capnp_get_cap(&root, 0, &idx), 0);
  assert_int_equal(idx, 5);
}

/* A struct whose only pointer points at itself: every hop is legal, so only
 * the nesting and traversal limits can stop a recursive reader. */
static void test_pointer_loop_hits_limits(void **state) {
  (void)state;
  uint8_t loop[8 + 16] = {0, 0, 0, 0, 2, 0, 0, 0,
                          0, 0, 0, 0, 0, 0, 1, 0,               /* root -> word1 {0,1} */
                          0xfc, 0xff, 0xff, 0xff, 0, 0, 1, 0};  /* word1 -> itself */
  wr_capnp_msg m;
  wr_capnp_struct s, next;
  assert_int_equal(wr_capnp_msg_init(&m, loop, sizeof(loop), NULL, NULL), 0);
  assert_int_equal(wr_capnp_root(&m, &s), 0);
  int rv = 0, hops = 0;
  while (rv == 0 && hops < 1000) {
    rv = wr_capnp_get_struct(&s, 0, &next);
    s = next;
    hops++;
  }
  assert_int_equal(rv, WR_ERR_LIMIT);
  assert_int_equal(hops, WR_CAPNP_MAX_DEPTH + 1);

  /* With a generous depth, the traversal budget stops it instead. */
  wr_capnp_limits lim = {.max_depth = 1000000, .traversal_words = 100};
  assert_int_equal(wr_capnp_msg_init(&m, loop, sizeof(loop), &lim, NULL), 0);
  assert_int_equal(wr_capnp_root(&m, &s), 0);
  rv = 0;
  hops = 0;
  while (rv == 0 && hops < 1000) {
    rv = wr_capnp_get_struct(&s, 0, &next);
    s = next;
    hops++;
  }
  assert_int_equal(rv, WR_ERR_LIMIT);
  assert_true(hops < 200);
}

/* Build a message with every kind of field, decode it, compare values. */
static void test_builder_round_trip(void **state) {
  (void)state;
  wr_capnp_builder b;
  wr_capnp_bstruct root, child, empty, e;
  wr_capnp_blist texts, structs;
  const uint8_t *out;
  size_t len;
  static const uint8_t blob[5] = {1, 2, 3, 4, 5};

  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_capnp_init_root(&b, 2, 7, &root), 0);
  wr_capnp_set_u8(&root, 0, 0xab);
  wr_capnp_set_u16(&root, 2, 0xbeef);
  wr_capnp_set_u32(&root, 4, 0xdeadbeef);
  wr_capnp_set_u64(&root, 8, 0x0123456789abcdefULL);
  wr_capnp_set_bool(&root, 1, 1);
  wr_capnp_new_struct(&root, 0, 1, 0, &child);
  wr_capnp_set_u32(&child, 0, 99);
  wr_capnp_set_text(&root, 1, "hello", 5);
  wr_capnp_set_data(&root, 2, blob, sizeof(blob));
  wr_capnp_new_pointer_list(&root, 3, 2, &texts);
  wr_capnp_blist_set_text(&texts, 0, "a", 1);
  wr_capnp_blist_set_text(&texts, 1, "bcd", 3);
  wr_capnp_new_struct_list(&root, 4, 0, 1, 1, &structs); /* empty, non-null */
  wr_capnp_new_struct(&root, 5, 0, 0, &empty);
  wr_capnp_set_cap(&root, 6, 3);
  /* Writing outside the declared sizes is an error, not memory corruption. */
  wr_capnp_set_u64(&child, 8, 1);
  assert_int_equal(b.err, WR_ERR_INVAL);
  b.err = 0;
  assert_int_equal(wr_capnp_blist_struct(&structs, 0, &e), WR_ERR_INVAL);
  b.err = 0;
  assert_int_equal(wr_capnp_builder_finish(&b, &out, &len), 0);

  wr_capnp_msg m;
  wr_capnp_struct r, s;
  wr_capnp_list l;
  const char *t;
  const uint8_t *d;
  size_t n;
  uint32_t capi;
  assert_int_equal(wr_capnp_msg_init(&m, out, len, NULL, NULL), 0);
  assert_int_equal(wr_capnp_root(&m, &r), 0);
  assert_int_equal(wr_capnp_u8(&r, 0), 0xab);
  assert_int_equal(wr_capnp_bool(&r, 1), 1);
  assert_int_equal(wr_capnp_u16(&r, 2), 0xbeef);
  assert_int_equal(wr_capnp_u32(&r, 4), 0xdeadbeef);
  assert_true(wr_capnp_u64(&r, 8) == 0x0123456789abcdefULL);
  assert_int_equal(wr_capnp_get_struct(&r, 0, &s), 0);
  assert_int_equal(wr_capnp_u32(&s, 0), 99);
  assert_int_equal(wr_capnp_get_text(&r, 1, &t, &n), 0);
  assert_string_equal(t, "hello");
  assert_int_equal(wr_capnp_get_data(&r, 2, &d, &n), 0);
  assert_int_equal(n, 5);
  assert_memory_equal(d, blob, 5);
  assert_int_equal(wr_capnp_get_list(&r, 3, &l), 0);
  assert_int_equal(l.count, 2);
  assert_int_equal(wr_capnp_list_text(&l, 1, &t, &n), 0);
  assert_string_equal(t, "bcd");
  assert_int_equal(wr_capnp_get_list(&r, 4, &l), 0);
  assert_false(l.is_null);
  assert_int_equal(l.count, 0);
  assert_int_equal(wr_capnp_get_struct(&r, 5, &s), 0);
  assert_false(s.is_null);
  assert_int_equal(s.data_size + s.nptrs, 0);
  assert_int_equal(wr_capnp_get_cap(&r, 6, &capi), 0);
  assert_int_equal(capi, 3);
  assert_int_equal(m.err, 0);
  wr_capnp_builder_free(&b);
}

static void test_builder_limits_and_oom(void **state) {
  (void)state;
  wr_capnp_builder b;
  wr_capnp_bstruct root;
  static char big[4096];
  memset(big, 'x', sizeof(big));
  wr_capnp_builder_init(&b, NULL, 256);
  wr_capnp_init_root(&b, 0, 1, &root);
  assert_int_equal(wr_capnp_set_text(&root, 0, big, sizeof(big)), WR_ERR_LIMIT);
  wr_capnp_builder_free(&b);
  /* A limit smaller than the segment table must refuse, not wrap around. */
  for (size_t max = 1; max < 16; max++) {
    wr_capnp_builder_init(&b, NULL, max);
    assert_int_equal(wr_capnp_init_root(&b, 100, 0, &root), WR_ERR_LIMIT);
    wr_capnp_builder_free(&b);
  }

  /* Fail each allocation in turn: always a clean error, never a leak. */
  for (long i = 0; i < 8; i++) {
    unit_failmem fm;
    unit_failmem_init(&fm, i);
    wr_capnp_builder_init(&b, &fm.mem, 0);
    wr_capnp_init_root(&b, 1, 1, &root);
    wr_capnp_set_text(&root, 0, big, 2000);
    const uint8_t *out;
    size_t len;
    int rv = wr_capnp_builder_finish(&b, &out, &len);
    assert_true(rv == 0 || rv == WR_ERR_NOMEM);
    wr_capnp_builder_free(&b);
    assert_int_equal(fm.live, 0);
  }
}

/* Every captured stream must split into whole framed messages. */
static void test_vectors_frame_cleanly(void **state) {
  (void)state;
  static const char *const rpc_streams[] = {
      "quic/control.register.from-connector.bin", "quic/control.register.from-edge.bin"};
  for (size_t v = 0; v < 2; v++) {
    size_t n, off = 0, used;
    int msgs = 0;
    uint8_t *buf = unit_read_vector(rpc_streams[v], &n);
    while (off < n) {
      wr_capnp_msg m;
      wr_capnp_struct root;
      assert_int_equal(wr_capnp_msg_init(&m, buf + off, n - off, NULL, &used), 0);
      assert_int_equal(wr_capnp_root(&m, &root), 0);
      assert_true(wr_capnp_u16(&root, 0) <= 13);
      off += used;
      msgs++;
    }
    assert_int_equal(off, n);
    assert_true(msgs >= 3);
    free(buf);
  }
}

int main(void) {
  return UNIT_RUN_NAME(
      "capnp", NULL, NULL,
      UNIT_TESTS(test_decode_bootstrap, test_build_bootstrap_and_finish_bytes,
                 test_connect_request_text_and_composite, test_framing_partial_and_padding,
                 test_far_pointers, test_bounds_and_kinds, test_pointer_loop_hits_limits,
                 test_builder_round_trip, test_builder_limits_and_oom, test_vectors_frame_cleanly));
}
