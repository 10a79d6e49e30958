/* The LRU index over a caller's slots (src/lib/lru_index.c): unused slots
 * handed out in order, a known key found again, the least recently used
 * slot given up for a new key (and its old key no longer found), touching a
 * slot saving it, and keys colliding in one bucket chain kept apart. */
#include <stdio.h>
#include <string.h>

#include "lib/lru_index.h"
#include "unit.h"

typedef struct slot {
  int payload;
  char key[24];
} slot;

/* Gets |key|, writing it into a fresh slot as the contract asks. */
static uint32_t get(wr_lru_index *x, slot *s, const char *key, int *fresh) {
  uint32_t i = wr_lru_index_get(x, key, fresh);
  if (*fresh) snprintf(s[i].key, sizeof(s[i].key), "%s", key);
  return i;
}

static void test_order_and_eviction(void **state) {
  (void)state;
  slot s[3] = {0};
  wr_lru_index x;
  int fresh;
  wr_lru_index_init(&x, s[0].key, sizeof(slot), 3);
  assert_int_equal(wr_lru_index_find(&x, "a"), WR_LRU_NONE);
  assert_int_equal(get(&x, s, "a", &fresh), 0);
  assert_true(fresh);
  assert_int_equal(get(&x, s, "b", &fresh), 1);
  assert_int_equal(get(&x, s, "c", &fresh), 2);
  assert_int_equal(wr_lru_index_used(&x), 3);
  assert_int_equal(get(&x, s, "a", &fresh), 0); /* a is now the most recent */
  assert_false(fresh);
  assert_int_equal(get(&x, s, "d", &fresh), 1); /* b was the least recent */
  assert_true(fresh);
  assert_int_equal(wr_lru_index_find(&x, "b"), WR_LRU_NONE);
  assert_int_equal(wr_lru_index_find(&x, "d"), 1);
  assert_int_equal(wr_lru_index_find(&x, "a"), 0);
  assert_int_equal(get(&x, s, "e", &fresh), 2); /* then c */
  assert_int_equal(get(&x, s, "f", &fresh), 0); /* then a */
  assert_int_equal(wr_lru_index_find(&x, "a"), WR_LRU_NONE);
  assert_int_equal(wr_lru_index_used(&x), 3);
  wr_lru_index_free(&x);
}

/* One slot: every new key takes it. */
static void test_one_slot(void **state) {
  (void)state;
  slot s[1] = {0};
  wr_lru_index x;
  int fresh;
  wr_lru_index_init(&x, s[0].key, sizeof(slot), 1);
  for (int i = 0; i < 5; i++) {
    char k[16];
    snprintf(k, sizeof(k), "k%d", i);
    assert_int_equal(get(&x, s, k, &fresh), 0);
    assert_true(fresh);
    assert_int_equal(get(&x, s, k, &fresh), 0);
    assert_false(fresh);
  }
  assert_int_equal(wr_lru_index_find(&x, "k3"), WR_LRU_NONE);
  wr_lru_index_free(&x);
}

/* 200 slots, 5,000 keys in rounds (so each bucket holds several and every
 * slot is given up many times): after each round the last 200 keys, and
 * only they, are found, each in the slot it was handed. */
static void test_many_keys(void **state) {
  (void)state;
  enum { N = 200, KEYS = 5000 };
  static slot s[N];
  static uint32_t at[KEYS];
  wr_lru_index x;
  int fresh;
  char k[24];
  memset(s, 0, sizeof(s));
  wr_lru_index_init(&x, s[0].key, sizeof(slot), N);
  for (int i = 0; i < KEYS; i++) {
    snprintf(k, sizeof(k), "tunnel-%d", i);
    at[i] = get(&x, s, k, &fresh);
    assert_true(fresh);
    assert_true(at[i] < N);
    s[at[i]].payload = i;
  }
  for (int i = 0; i < KEYS; i++) {
    snprintf(k, sizeof(k), "tunnel-%d", i);
    uint32_t f = wr_lru_index_find(&x, k);
    if (i < KEYS - N) {
      assert_int_equal(f, WR_LRU_NONE);
    } else {
      assert_int_equal(f, at[i]);
      assert_int_equal(s[f].payload, i);
    }
  }
  wr_lru_index_free(&x);
}

int main(void) {
  return UNIT_RUN(NULL, NULL, UNIT_TESTS(test_order_and_eviction, test_one_slot, test_many_keys));
}
