/* Per-thread scratch buffers (src/lib/thread_buf.c): one buffer per kind
 * and thread, lent to one user at a time (a nested user gets NULL), the
 * same buffer again once given back, another thread's its own, and a
 * thread's buffers freed when it exits (ASan's leak check fails otherwise). */
#include <pthread.h>
#include <string.h>

#include "lib/thread_buf.h"
#include "unit.h"

static void test_lent_one_at_a_time(void **state) {
  (void)state;
  uint8_t *a = wr_tbuf_take(WR_TBUF_QUIC_READ, 4096), *b, *w;
  assert_non_null(a);
  memset(a, 0xab, 4096); /* all of it is ours */
  assert_null(wr_tbuf_take(WR_TBUF_QUIC_READ, 4096)); /* nested: lent already */
  w = wr_tbuf_take(WR_TBUF_QUIC_WRITE, 8192); /* another kind: its own buffer */
  assert_non_null(w);
  assert_ptr_not_equal(w, a);
  wr_tbuf_give(WR_TBUF_QUIC_READ, w); /* not that kind's buffer: ignored */
  assert_null(wr_tbuf_take(WR_TBUF_QUIC_READ, 4096));
  wr_tbuf_give(WR_TBUF_QUIC_READ, NULL);
  assert_null(wr_tbuf_take(WR_TBUF_QUIC_READ, 4096));
  wr_tbuf_give(WR_TBUF_QUIC_READ, a);
  b = wr_tbuf_take(WR_TBUF_QUIC_READ, 4096); /* the same one again */
  assert_ptr_equal(b, a);
  wr_tbuf_give(WR_TBUF_QUIC_READ, b);
  wr_tbuf_give(WR_TBUF_QUIC_WRITE, w);
  assert_null(wr_tbuf_take(WR_TBUF_KINDS, 16));
}

static void *other_thread(void *arg) {
  uint8_t **out = arg;
  uint8_t *b = wr_tbuf_take(WR_TBUF_QUIC_READ, 4096);
  uint8_t *c = wr_tbuf_take(WR_TBUF_CONN_READ, 1024);
  if (b) memset(b, 1, 4096);
  if (c) memset(c, 2, 1024);
  out[0] = b;
  out[1] = c;
  /* Exits with both buffers taken: the thread's exit frees them. */
  return NULL;
}

static void test_each_thread_its_own(void **state) {
  (void)state;
  uint8_t *got[2] = {NULL, NULL};
  uint8_t *mine = wr_tbuf_take(WR_TBUF_QUIC_READ, 4096);
  pthread_t t;
  assert_non_null(mine);
  assert_int_equal(pthread_create(&t, NULL, other_thread, got), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_non_null(got[0]); /* not NULL although this thread's is lent */
  assert_non_null(got[1]);
  assert_ptr_not_equal(got[0], mine);
  wr_tbuf_give(WR_TBUF_QUIC_READ, got[0]); /* another thread's: ignored */
  assert_null(wr_tbuf_take(WR_TBUF_QUIC_READ, 4096));
  wr_tbuf_give(WR_TBUF_QUIC_READ, mine);
}

int main(void) {
  return UNIT_RUN(NULL, NULL, UNIT_TESTS(test_lent_one_at_a_time, test_each_thread_its_own));
}
