/* The LRU index over a caller's slots (src/lib/lru_index.c): unused slots
 * handed out in order, a known key found again, the least recently used
 * slot given up for a new key (and its old key no longer found), touching a
 * slot saving it, and keys colliding in one bucket chain kept apart. */
#include <stdio.h>
#include <stdlib.h>

#include "lib/lru_index.h"
#include "unit.h"

typedef struct slot {
  int payload;
  char key[24];
} slot;

/* An index over |n| fresh slots, and the freshness of the last get. */
typedef struct lru {
  wr_lru_index x;
  slot *s;
  int fresh;
} lru;

static lru *lru_new(uint32_t n) {
  lru *l = calloc(1, sizeof(*l));
  assert_non_null(l);
  l->s = calloc(n, sizeof(slot));
  assert_non_null(l->s);
  wr_lru_index_init(&l->x, l->s[0].key, sizeof(slot), n);
  return l;
}

static void lru_free(lru *l) {
  wr_lru_index_free(&l->x);
  free(l->s);
  free(l);
}

/* Gets |key|, writing it into a fresh slot as the contract asks. */
static uint32_t get(lru *l, const char *key) {
  uint32_t i = wr_lru_index_get(&l->x, key, &l->fresh);
  if (l->fresh) snprintf(l->s[i].key, sizeof(l->s[i].key), "%s", key);
  return i;
}

static void test_order_and_eviction(void **state) {
  (void)state;
  lru *l = lru_new(3);
  assert_int_equal(wr_lru_index_find(&l->x, "a"), WR_LRU_NONE);
  assert_int_equal(get(l, "a"), 0);
  assert_true(l->fresh);
  assert_int_equal(get(l, "b"), 1);
  assert_int_equal(get(l, "c"), 2);
  assert_int_equal(wr_lru_index_used(&l->x), 3);
  assert_int_equal(get(l, "a"), 0); /* a is now the most recent */
  assert_false(l->fresh);
  assert_int_equal(get(l, "d"), 1); /* b was the least recent */
  assert_true(l->fresh);
  assert_int_equal(wr_lru_index_find(&l->x, "b"), WR_LRU_NONE);
  assert_int_equal(wr_lru_index_find(&l->x, "d"), 1);
  assert_int_equal(wr_lru_index_find(&l->x, "a"), 0);
  assert_int_equal(get(l, "e"), 2); /* then c */
  assert_int_equal(get(l, "f"), 0); /* then a */
  assert_int_equal(wr_lru_index_find(&l->x, "a"), WR_LRU_NONE);
  assert_int_equal(wr_lru_index_used(&l->x), 3);
  lru_free(l);
}

/* One slot: every new key takes it. */
static void test_one_slot(void **state) {
  (void)state;
  lru *l = lru_new(1);
  for (int i = 0; i < 5; i++) {
    char k[16];
    snprintf(k, sizeof(k), "k%d", i);
    assert_int_equal(get(l, k), 0);
    assert_true(l->fresh);
    assert_int_equal(get(l, k), 0);
    assert_false(l->fresh);
  }
  assert_int_equal(wr_lru_index_find(&l->x, "k3"), WR_LRU_NONE);
  lru_free(l);
}

/* 200 slots, 5,000 keys in rounds (so each bucket holds several and every
 * slot is given up many times): after each round the last 200 keys, and
 * only they, are found, each in the slot it was handed. */
static void test_many_keys(void **state) {
  (void)state;
  enum { N = 200, KEYS = 5000 };
  static uint32_t at[KEYS];
  lru *l = lru_new(N);
  char k[24];
  for (int i = 0; i < KEYS; i++) {
    snprintf(k, sizeof(k), "tunnel-%d", i);
    at[i] = get(l, k);
    assert_true(l->fresh);
    assert_true(at[i] < N);
    l->s[at[i]].payload = i;
  }
  for (int i = 0; i < KEYS; i++) {
    snprintf(k, sizeof(k), "tunnel-%d", i);
    uint32_t f = wr_lru_index_find(&l->x, k);
    if (i < KEYS - N) {
      assert_int_equal(f, WR_LRU_NONE);
    } else {
      assert_int_equal(f, at[i]);
      assert_int_equal(l->s[f].payload, i);
    }
  }
  lru_free(l);
}

int main(void) {
  return UNIT_RUN(NULL, NULL, UNIT_TESTS(test_order_and_eviction, test_one_slot, test_many_keys));
}
