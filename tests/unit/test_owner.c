/* The lifecycle owner (src/net/owner.c): release runs exactly once, when
 * the owner is closing and nothing is outstanding, whichever comes last;
 * handles closed through it drop their hold in the close callback, and a
 * release that frees the object is safe there (ASan). */
#include <stdlib.h>

#include <uv.h>

#include "net/owner.h"
#include "unit.h"

static int released;
static void count_release(wr_owner *o) {
  (void)o;
  released++;
}

/* Each case runs |ops| on a fresh owner (h: hold, d: drop, c: close) and
 * expects the count of releases in |after| after each step. */
static const struct {
  const char *ops, *after;
} counting_cases[] = {
    {"cc", "11"},           /* nothing pending: the close releases; a second does nothing */
    {"hhdhcdd", "0000001"}, /* drops before the close do nothing; the last one after it releases */
    {"hdc", "001"},         /* a drop before the close never releases; the close then does */
};

static void test_counting(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(counting_cases) / sizeof(counting_cases[0]); i++) {
    const char *ops = counting_cases[i].ops;
    wr_owner o;
    size_t held = 0;
    int closed = 0;
    released = 0;
    wr_owner_init(&o, count_release);
    assert_int_equal(o.pending, 0);
    assert_false(o.closing);
    for (size_t k = 0; ops[k]; k++) {
      if (ops[k] == 'h') {
        wr_owner_hold(&o);
        held++;
      } else if (ops[k] == 'd') {
        wr_owner_drop(&o);
        held--;
      } else {
        wr_owner_close(&o);
        closed = 1;
      }
      assert_int_equal(o.pending, held);
      assert_int_equal(o.closing, closed);
      assert_int_equal(released, counting_cases[i].after[k] - '0');
    }
  }
}

/* An object that owns timers and frees itself in release. The owner is not
 * its first member, as in the real users: a close callback that found the
 * owner through the object's address instead of h->data would be caught. */
typedef struct {
  uv_timer_t a, b;
  int *freed;
  wr_owner owner;
} obj;

static void obj_release(wr_owner *o) {
  obj *x = WR_OWNER_OBJ(o, obj, owner);
  (*x->freed)++;
  free(x);
}

/* An object on |loop| holding its timer a. */
static obj *obj_new(uv_loop_t *loop, int *freed) {
  obj *x = calloc(1, sizeof(*x));
  assert_non_null(x);
  x->freed = freed;
  wr_owner_init(&x->owner, obj_release);
  wr_owner_timer_init(&x->owner, loop, &x->a, x);
  assert_ptr_equal(x->a.data, x);
  assert_int_equal(x->owner.pending, 1);
  return x;
}

/* The world of each loop case: a fresh loop, an object on it holding its
 * timer a, and the count of the object's frees. Teardown: the loop closes
 * cleanly (nothing of the object is left on it). */
typedef struct world {
  uv_loop_t loop;
  int freed;
  obj *x;
} world;

static void world_init(world *w) { w->x = obj_new(&w->loop, &w->freed); }

UNIT_LOOP_FIXTURE(world, world_init)

static void test_handles_on_a_loop(void **state) {
  world *w = *state;
  obj *x = w->x;
  uv_timer_init(&w->loop, &x->b);
  wr_owner_hold(&x->owner);
  /* One through the ready-made pair, one through the bare close callback. */
  wr_owner_close_handle(&x->owner, (uv_handle_t *)&x->a);
  x->b.data = &x->owner;
  uv_close((uv_handle_t *)&x->b, wr_owner_handle_closed);
  wr_owner_close(&x->owner);
  assert_int_equal(w->freed, 0); /* the close callbacks have not run */
  uv_run(&w->loop, UV_RUN_DEFAULT);
  assert_int_equal(w->freed, 1);
}

/* Closing after the handles: the close frees at once. */
static void test_close_after_the_handles(void **state) {
  world *w = *state;
  obj *x = w->x;
  wr_owner_close_handle(&x->owner, (uv_handle_t *)&x->a);
  uv_run(&w->loop, UV_RUN_DEFAULT); /* dropped, but not closing: still here */
  assert_int_equal(w->freed, 0);
  assert_int_equal(x->owner.pending, 0);
  wr_owner_close(&x->owner);
  assert_int_equal(w->freed, 1);
}

/* The handle closed through wr_owner_close_handle is the last hold: the
 * hold lasts until its close callback, so a close in between does not free
 * the object under the pending callback. */
static void test_hold_lasts_until_the_close_callback(void **state) {
  world *w = *state;
  obj *x = w->x;
  wr_owner_close_handle(&x->owner, (uv_handle_t *)&x->a);
  assert_int_equal(x->owner.pending, 1);
  wr_owner_close(&x->owner);
  assert_int_equal(w->freed, 0);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  assert_int_equal(w->freed, 1);
}

int main(void) {
  return UNIT_RUN(NULL, NULL, UNIT_TESTS(test_counting),
                  UNIT_FIXTURE(world_setup, world_teardown, test_handles_on_a_loop,
                               test_close_after_the_handles,
                               test_hold_lasts_until_the_close_callback));
}
