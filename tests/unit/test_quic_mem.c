/* The ngtcp2_mem of QUIC connections (src/net/quic_mem.c): small blocks and
 * calloc on the C heap, large malloc/realloc on pages of their own that
 * stay out of RSS until touched, go back to the kernel when freed (a
 * reused run reads as zeros) and keep their contents through realloc. */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "net/quic_int.h"
#include "unit.h"

static size_t page(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* Pages of [p, p + len) resident now (p page-aligned). */
static size_t resident(void *p, size_t len) {
  unsigned char vec[64];
  size_t n = (len + page() - 1) / page(), k = 0;
  assert_true(n <= sizeof(vec));
  assert_int_equal(mincore(p, len, vec), 0);
  for (size_t i = 0; i < n; i++) k += vec[i] & 1;
  return k;
}

static void test_small_and_calloc(void **state) {
  (void)state;
  const ngtcp2_mem *m = wr__quic_mem();
  uint8_t *p = m->malloc(100, m->user_data);
  assert_non_null(p);
  assert_int_equal((uintptr_t)p & 15, 0);
  memset(p, 7, 100);
  m->free(p, m->user_data);
  m->free(NULL, m->user_data);
  /* calloc stays on the heap whatever its size, and is zeroed. */
  uint8_t *z = m->calloc(3, 4000, m->user_data);
  assert_non_null(z);
  assert_int_equal((uintptr_t)z & 15, 0);
  for (size_t i = 0; i < 12000; i++) assert_int_equal(z[i], 0);
  m->free(z, m->user_data);
  assert_null(m->calloc(SIZE_MAX / 2, 4, m->user_data));
}

static void test_large_untouched_pages_not_resident(void **state) {
  (void)state;
  const ngtcp2_mem *m = wr__quic_mem();
  size_t len = 8 * page() - 16;
  uint8_t *p = m->malloc(len, m->user_data);
  assert_non_null(p);
  uint8_t *base = p - 16;
  assert_int_equal((uintptr_t)base % page(), 0);
  memset(p, 1, 100); /* what ngtcp2 does with a pool block: uses its start */
  assert_int_equal(resident(base, 8 * page()), 1);
  memset(p, 2, len);
  assert_int_equal(resident(base, 8 * page()), 8);
  m->free(p, m->user_data);
  assert_int_equal(resident(base, 8 * page()), 0);
  /* The run is reused, and reads as zeros. */
  uint8_t *q = m->malloc(len, m->user_data);
  assert_ptr_equal(q, p);
  for (size_t i = 0; i < len; i++) assert_int_equal(q[i], 0);
  m->free(q, m->user_data);
}

static void test_realloc_keeps_contents(void **state) {
  (void)state;
  const ngtcp2_mem *m = wr__quic_mem();
  uint8_t *p = m->realloc(NULL, 1000, m->user_data);
  assert_non_null(p);
  for (size_t i = 0; i < 1000; i++) p[i] = (uint8_t)i;
  p = m->realloc(p, 3000, m->user_data); /* heap to heap */
  assert_non_null(p);
  p = m->realloc(p, 20000, m->user_data); /* heap to pages */
  assert_non_null(p);
  assert_int_equal(((uintptr_t)p - 16) % page(), 0);
  for (size_t i = 0; i < 1000; i++) assert_int_equal(p[i], (uint8_t)i);
  memset(p + 1000, 9, 19000);
  p = m->realloc(p, 200000, m->user_data); /* pages to a mapping of its own */
  assert_non_null(p);
  for (size_t i = 0; i < 1000; i++) assert_int_equal(p[i], (uint8_t)i);
  assert_int_equal(p[19999], 9);
  p = m->realloc(p, 500, m->user_data); /* back to the heap */
  assert_non_null(p);
  for (size_t i = 0; i < 500; i++) assert_int_equal(p[i], (uint8_t)i);
  m->free(p, m->user_data);
  assert_null(m->malloc(SIZE_MAX - 8, m->user_data));
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_TESTS(test_small_and_calloc, test_large_untouched_pages_not_resident,
                             test_realloc_keeps_contents));
}
