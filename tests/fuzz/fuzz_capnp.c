/* Fuzzes the Cap'n Proto reader: frame a message, then walk every pointer
 * reachable from the root (structs, lists of every element size, text, data,
 * capabilities) the way a schema-less reader would. Any out-of-bounds read is
 * caught by ASan; limits keep the walk finite. */
#include <stddef.h>
#include <stdint.h>

#include "proto/capnp.h"
#include "fuzz.h"

static void walk_struct(const wr_capnp_struct *s, int budget);

static void walk_list(const wr_capnp_list *l, int budget) {
  for (uint32_t i = 0; i < l->count && i < 64 && budget > 0; i++, budget--) {
    if (l->elem == WR_CAPNP_ELEM_POINTER) {
      const char *t;
      size_t n;
      (void)wr_capnp_list_text(l, i, &t, &n);
    } else if (l->elem != WR_CAPNP_ELEM_BIT) {
      wr_capnp_struct e;
      if (wr_capnp_list_struct(l, i, &e) == 0) walk_struct(&e, budget - 1);
    }
  }
}

static void walk_struct(const wr_capnp_struct *s, int budget) {
  if (budget <= 0) return;
  volatile uint64_t sink = 0;
  for (uint32_t off = 0; off + 8 <= s->data_size && off < 64; off += 8)
    sink += wr_capnp_u64(s, off) + wr_capnp_u8(s, off) + (uint64_t)wr_capnp_bool(s, off * 8 + 3);
  (void)sink;
  for (uint16_t i = 0; i < s->nptrs && i < 16; i++) {
    int kind = wr_capnp_ptr_kind(s, i);
    if (kind == WR_CAPNP_PTR_STRUCT) {
      wr_capnp_struct c;
      if (wr_capnp_get_struct(s, i, &c) == 0) walk_struct(&c, budget - 1);
    } else if (kind == WR_CAPNP_PTR_LIST) {
      wr_capnp_list l;
      const char *t;
      const uint8_t *d;
      size_t n;
      (void)wr_capnp_get_text(s, i, &t, &n);
      if (s->msg) s->msg->err = 0; /* keep walking after a text mismatch */
      (void)wr_capnp_get_data(s, i, &d, &n);
      if (s->msg) s->msg->err = 0;
      if (wr_capnp_get_list(s, i, &l) == 0) walk_list(&l, budget - 1);
    } else if (kind == WR_CAPNP_PTR_CAP) {
      uint32_t idx;
      (void)wr_capnp_get_cap(s, i, &idx);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static wr_capnp_msg m; /* 6 KiB: keep it off the stack */
  wr_capnp_struct root;
  size_t used;
  wr_capnp_limits lim = {.traversal_words = 1u << 16};
  while (size > 0 && wr_capnp_msg_init(&m, data, size, &lim, &used) == 0) {
    if (wr_capnp_root(&m, &root) == 0) walk_struct(&root, 200);
    data += used;
    size -= used;
    if (used == 0) break;
  }
  return 0;
}
