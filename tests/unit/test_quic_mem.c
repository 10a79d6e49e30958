/* The ngtcp2_mem of QUIC connections (src/net/quic_mem.c): small blocks and
 * calloc on the C heap, large malloc/realloc on pages of their own that
 * stay out of RSS until touched; a freed run is kept with its pages and
 * reused first up to WR_QUIC_MEM_DIRTY_PAGES pages in all, beyond which
 * freed runs go back to the kernel; contents survive realloc. */
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
  /* Kept with its pages, and the next run of that length. */
  uint8_t *q = m->malloc(len, m->user_data);
  assert_ptr_equal(q, p);
  assert_int_equal(resident(base, 8 * page()), 8);
  m->free(q, m->user_data);
}

/* Freed runs beyond WR_QUIC_MEM_DIRTY_PAGES go back to the kernel. */
static void test_kept_pages_bounded(void **state) {
  (void)state;
  const ngtcp2_mem *m = wr__quic_mem();
  enum { N = WR_QUIC_MEM_DIRTY_PAGES / 16 + 4 };
  size_t len = 16 * page() - 16;
  uint8_t *p[N];
  size_t given_back = 0, kept = 0;
  for (int i = 0; i < N; i++) {
    p[i] = m->malloc(len, m->user_data);
    assert_non_null(p[i]);
    memset(p[i], 3, len);
  }
  for (int i = 0; i < N; i++) m->free(p[i], m->user_data);
  for (int i = 0; i < N; i++) {
    size_t r = resident(p[i] - 16, 16 * page());
    given_back += r == 0;
    kept += r == 16;
  }
  /* Earlier cases may have left kept runs: at least the last 4 went back. */
  assert_true(given_back >= 4);
  assert_true(kept * 16 <= WR_QUIC_MEM_DIRTY_PAGES);
  assert_int_equal(given_back + kept, N);
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
                             test_kept_pages_bounded, test_realloc_keeps_contents));
}
