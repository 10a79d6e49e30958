/* Returning freed heap once idle (src/net/idle_trim.c): the decision (busy
 * intervals never trim and re-arm; an idle one trims once, only with enough
 * free heap) and the timer's life on a loop (started, ticking, freed with
 * its close callback: ASan's leak check). */
#include <malloc.h>
#include <stdlib.h>

#include <uv.h>

#include "net/idle_trim.h"
#include "unit.h"

static size_t free_now;
static int asked;
static size_t heap_free_stub(void) {
  asked++;
  return free_now;
}

static void test_decision(void **state) {
  (void)state;
  const uint64_t iv = 5000000; /* 5 s in µs */
  int trimmed = 0;
  /* Busy (1 % of a core or more): never, and the heap is not even asked. */
  free_now = 64u << 20;
  assert_false(wr_idle_trim_due(50000, iv, heap_free_stub, &trimmed));
  assert_false(trimmed);
  assert_int_equal(asked, 0);
  /* Idle, but little free heap: nothing to give back. */
  free_now = WR_IDLE_TRIM_MIN - 1;
  assert_false(wr_idle_trim_due(49999, iv, heap_free_stub, &trimmed));
  assert_false(trimmed);
  assert_int_equal(asked, 1);
  /* Idle with a burst's free heap: once. */
  free_now = WR_IDLE_TRIM_MIN;
  assert_true(wr_idle_trim_due(0, iv, heap_free_stub, &trimmed));
  assert_true(trimmed);
  free_now = 8u << 20;
  assert_false(wr_idle_trim_due(0, iv, heap_free_stub, &trimmed)); /* still idle: done */
  assert_int_equal(asked, 2);
  /* A busy interval re-arms it. */
  assert_false(wr_idle_trim_due(iv, iv, heap_free_stub, &trimmed));
  assert_false(trimmed);
  assert_true(wr_idle_trim_due(10, iv, heap_free_stub, &trimmed));
  assert_int_equal(asked, 3);
}

static void stop_loop(uv_timer_t *t) { uv_stop(t->loop); }

static void test_timer_on_a_loop(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_timer_t wait;
  assert_int_equal(uv_loop_init(&loop), 0);
  wr_idle_trim *t = wr_idle_trim_start(&loop);
  assert_non_null(t);
  /* The timer alone does not keep the loop running. */
  assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
  /* Leave 4 MiB of freed heap and sit idle past one tick (no assertion on
   * memory: the point is that the tick runs cleanly under ASan). */
  void *burst[64];
  for (int i = 0; i < 64; i++) burst[i] = malloc(64 * 1024);
  for (int i = 0; i < 64; i += 2) free(burst[i]);
  uv_timer_init(&loop, &wait);
  uv_timer_start(&wait, stop_loop, WR_IDLE_TRIM_MS + 200, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  for (int i = 1; i < 64; i += 2) free(burst[i]);
  wr_idle_trim_free(t);
  uv_close((uv_handle_t *)&wait, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) { return UNIT_RUN(NULL, NULL, UNIT_TESTS(test_decision, test_timer_on_a_loop)); }
