/* The failure throttle (src/edge/throttle.c) on virtual time: backoff
 * growth and cap, lockout and its end (success, forgetting), pending
 * attempts, spraying over many accounts from one source, the table bound
 * and what eviction keeps, allocation failures, source keys, and the token
 * bucket for audit rows. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/throttle.h"
#include "lib/err.h"
#include "unit.h"

#define SEC 1000u
#define MIN (60u * SEC)

static wr_throttle *make(size_t max_keys) {
  wr_throttle_config cfg = {.max_keys = max_keys, .seed = {1, 2, 3}};
  wr_throttle *t = NULL;
  assert_int_equal(wr_throttle_new(&cfg, &t), WR_OK);
  return t;
}

/* The fixture of the tests of one unbounded throttle: make(0) in *state,
 * freed after the test. */
UNIT_STATE_FIXTURE(unbounded, make(0), wr_throttle_free)

/* Records a failure at |now| and returns what it said. */
static wr_throttle_info fail_at(wr_throttle *t, const char *key, uint64_t now) {
  wr_throttle_info info;
  wr_throttle_record(t, key, now, WR_THROTTLE_FAILURE, &info);
  return info;
}

static size_t nkeys(const wr_throttle *t) {
  wr_throttle_stats st;
  wr_throttle_get_stats(t, &st);
  return st.keys;
}

/* Four free failures, then 1 s, 2 s, 4 s ... doubling up to 15 min, where it
 * stays; the lockout is reported once, when it begins. */
static void test_backoff_growth_and_cap(void **state) {
  wr_throttle *t = *state;
  uint64_t now = 1000000;
  wr_throttle_info info;
  for (int i = 1; i <= 4; i++) {
    assert_int_equal(wr_throttle_check(t, "u:alice", now), 0);
    info = fail_at(t, "u:alice", now);
    assert_int_equal(info.events, 0);
    assert_int_equal(info.failures, i);
    assert_int_equal(info.wait_ms, 0);
    now += 10;
  }
  info = fail_at(t, "u:alice", now);
  assert_int_equal(info.events, WR_THROTTLE_LOCKED);
  assert_int_equal(info.failures, 5);
  assert_int_equal(info.wait_ms, 1 * SEC);
  assert_int_equal(info.locked_since, now);
  uint64_t locked_at = now;
  /* Refused until the delay is over, then one more try. */
  assert_int_equal(wr_throttle_check(t, "u:alice", now), 1 * SEC);
  assert_int_equal(wr_throttle_check(t, "u:alice", now + 999), 1);
  assert_int_equal(wr_throttle_check(t, "u:alice", now + 1000), 0);
  /* Other keys are not affected. */
  assert_int_equal(wr_throttle_check(t, "u:bob", now), 0);

  uint64_t want = 2 * SEC;
  for (int i = 6; i <= 30; i++) {
    now += wr_throttle_check(t, "u:alice", now);
    assert_int_equal(wr_throttle_check(t, "u:alice", now), 0);
    info = fail_at(t, "u:alice", now);
    assert_int_equal(info.events, 0); /* the same lockout */
    assert_int_equal(info.locked_since, locked_at);
    assert_int_equal(info.wait_ms, want);
    want = want * 2 > 15 * MIN ? 15 * MIN : want * 2;
  }
  assert_int_equal(info.wait_ms, 15 * MIN);
  /* Far past any shift width: still the cap. */
  for (int i = 0; i < 100; i++) {
    now += 15 * MIN;
    info = fail_at(t, "u:alice", now);
  }
  assert_int_equal(info.wait_ms, 15 * MIN);
  assert_int_equal(info.failures, 130);
}

/* A success forgets the key (and ends its lockout); failures start over. */
static void test_success_resets(void **state) {
  wr_throttle *t = *state;
  uint64_t now = 5000;
  wr_throttle_info info;
  for (int i = 0; i < 3; i++) fail_at(t, "u:alice", now);
  wr_throttle_record(t, "u:alice", now, WR_THROTTLE_SUCCESS, &info);
  assert_int_equal(info.events, 0);
  assert_int_equal(nkeys(t), 0);
  for (int i = 0; i < 4; i++) assert_int_equal(fail_at(t, "u:alice", now).events, 0);
  assert_int_equal(fail_at(t, "u:alice", now).events, WR_THROTTLE_LOCKED);
  assert_true(wr_throttle_check(t, "u:alice", now) > 0);
  now += 7;
  wr_throttle_record(t, "u:alice", now, WR_THROTTLE_SUCCESS, &info);
  assert_int_equal(info.events, WR_THROTTLE_UNLOCKED);
  assert_int_equal(info.failures, 5);
  assert_int_equal(info.locked_since, now - 7);
  assert_int_equal(wr_throttle_check(t, "u:alice", now), 0);
  assert_int_equal(nkeys(t), 0);
  /* A neutral outcome changes nothing; a success for an unknown key is a no-op. */
  fail_at(t, "s:192.0.2.1", now);
  wr_throttle_record(t, "s:192.0.2.1", now, WR_THROTTLE_NEUTRAL, &info);
  assert_int_equal(info.failures, 1);
  wr_throttle_record(t, "u:nobody", now, WR_THROTTLE_SUCCESS, &info);
  assert_int_equal(info.events, 0);
  assert_int_equal(nkeys(t), 1);
}

typedef struct swept {
  int n;
  char key[64];
  wr_throttle_info info;
} swept;

static void on_swept(void *user, const char *key, const wr_throttle_info *info) {
  swept *s = user;
  s->n++;
  snprintf(s->key, sizeof(s->key), "%s", key);
  s->info = *info;
}

/* Failures are forgotten an hour after the last one (and its delay): a
 * lockout then ends by time, which the sweep reports. */
static void test_forgetting_and_sweep(void **state) {
  wr_throttle *t = *state;
  uint64_t now = 1;
  swept s = {0};
  for (int i = 0; i < 4; i++) fail_at(t, "u:typo", now);
  assert_int_equal(wr_throttle_failures(t, "u:typo", now + 60 * MIN - 1), 4);
  assert_int_equal(wr_throttle_failures(t, "u:typo", now + 60 * MIN), 0); /* stale */
  assert_int_equal(wr_throttle_failures(t, "u:never", now), 0);
  /* Not yet. */
  assert_int_equal(wr_throttle_sweep(t, now + 60 * MIN - 1, on_swept, &s), 0);
  /* A fifth failure after an hour of quiet is a first one. */
  assert_int_equal(fail_at(t, "u:typo", now + 60 * MIN).failures, 1);

  for (int i = 0; i < 7; i++) fail_at(t, "u:locked", now); /* delay 4 s */
  assert_int_equal(wr_throttle_check(t, "u:locked", now), 4 * SEC);
  assert_int_equal(wr_throttle_sweep(t, now + 4 * SEC + 60 * MIN - 1, on_swept, &s), 0);
  assert_int_equal(s.n, 0);
  /* u:typo (last failure at 60 min) stays; u:locked goes, reported. */
  assert_int_equal(wr_throttle_sweep(t, now + 4 * SEC + 60 * MIN, on_swept, &s), 1);
  assert_int_equal(s.n, 1);
  assert_string_equal(s.key, "u:locked");
  assert_int_equal(s.info.events, WR_THROTTLE_UNLOCKED);
  assert_int_equal(s.info.failures, 7);
  assert_int_equal(s.info.locked_since, now);
  assert_int_equal(nkeys(t), 1);

  /* Without a sweep, the next failure of a stale locked key reports the
   * end of the old lockout and counts as a first failure. */
  for (int i = 0; i < 5; i++) fail_at(t, "u:again", now);
  wr_throttle_info info = fail_at(t, "u:again", now + 2 * 60 * MIN);
  assert_int_equal(info.events, WR_THROTTLE_UNLOCKED);
  assert_int_equal(info.failures, 1);
  assert_int_equal(info.locked_since, now);
  assert_int_equal(wr_throttle_check(t, "u:again", now + 2 * 60 * MIN), 0);
}

/* Attempts in flight count: many started at once cannot all slip past a
 * key's last free failures, and a locked key runs one at a time. */
static void test_pending_attempts(void **state) {
  wr_throttle *t = *state;
  uint64_t now = 100;
  wr_throttle_info info;
  for (int i = 0; i < 5; i++) {
    assert_int_equal(wr_throttle_check(t, "u:alice", now), 0);
    assert_int_equal(wr_throttle_begin(t, "u:alice", now), WR_OK);
  }
  /* Five running could make five failures: the sixth waits. */
  assert_int_equal(wr_throttle_check(t, "u:alice", now), 1 * SEC);
  for (int i = 0; i < 5; i++) wr_throttle_end(t, "u:alice", now, WR_THROTTLE_FAILURE, &info);
  assert_int_equal(info.failures, 5);
  assert_int_equal(wr_throttle_check(t, "u:alice", now), 1 * SEC);
  now += SEC;
  assert_int_equal(wr_throttle_check(t, "u:alice", now), 0);
  assert_int_equal(wr_throttle_begin(t, "u:alice", now), WR_OK);
  assert_true(wr_throttle_check(t, "u:alice", now) > 0);
  /* A pending key is never swept, however old. */
  assert_int_equal(wr_throttle_sweep(t, now + 100 * 60 * MIN, NULL, NULL), 0);
  wr_throttle_end(t, "u:alice", now, WR_THROTTLE_SUCCESS, &info);
  assert_int_equal(info.events, WR_THROTTLE_UNLOCKED);
  assert_int_equal(nkeys(t), 0);
  /* A cancelled attempt leaves no trace. */
  assert_int_equal(wr_throttle_begin(t, "u:bob", now), WR_OK);
  wr_throttle_end(t, "u:bob", now, WR_THROTTLE_NEUTRAL, NULL);
  assert_int_equal(nkeys(t), 0);
  /* An end without a begin records the outcome alone. */
  wr_throttle_end(t, "u:carol", now, WR_THROTTLE_FAILURE, &info);
  assert_int_equal(info.failures, 1);
}

/* One source trying one password on many accounts: no account locks, the
 * source does (a table with the source policy of the login pages). */
static void test_spraying_locks_the_source(void **state) {
  (void)state;
  wr_throttle_config scfg = {.free_failures = 10, .seed = {9}};
  wr_throttle *accounts = make(0), *sources = NULL;
  assert_int_equal(wr_throttle_new(&scfg, &sources), WR_OK);
  uint64_t now = 42;
  int locked_at = 0;
  for (int i = 1; i <= 40 && !locked_at; i++) {
    char key[64];
    snprintf(key, sizeof(key), "u:user%d@example.test", i);
    if (wr_throttle_check(sources, "198.51.100.7", now) || wr_throttle_check(accounts, key, now)) break;
    assert_int_equal(fail_at(accounts, key, now).events, 0);
    if (fail_at(sources, "198.51.100.7", now).events & WR_THROTTLE_LOCKED) locked_at = i;
    now += 50;
  }
  assert_int_equal(locked_at, 10);
  assert_int_equal(wr_throttle_check(sources, "198.51.100.7", now), 1 * SEC - 50);
  /* Another source is free. */
  assert_int_equal(wr_throttle_check(sources, "203.0.113.1", now), 0);
  /* A success from the source (the sprayer's own account) is neutral for
   * the source: the caller records NEUTRAL, and the delay stays. */
  wr_throttle_record(sources, "198.51.100.7", now, WR_THROTTLE_NEUTRAL, NULL);
  assert_true(wr_throttle_check(sources, "198.51.100.7", now) > 0);
  wr_throttle_free(accounts);
  wr_throttle_free(sources);
}

/* The table holds max_keys; one-off failures make room before lockouts,
 * and pending keys are never dropped. */
static void test_bound_and_eviction(void **state) {
  (void)state;
  wr_throttle *t = make(4);
  wr_throttle_stats st;
  uint64_t now = 7;
  char key[32];
  for (int i = 0; i < 5; i++) fail_at(t, "u:victim", now);
  assert_true(wr_throttle_check(t, "u:victim", now) > 0);
  /* A guesser churns through fresh keys. */
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof(key), "u:rand%d", i);
    fail_at(t, key, now + (uint64_t)i);
    assert_true(nkeys(t) <= 4);
  }
  wr_throttle_get_stats(t, &st);
  assert_int_equal(st.keys, 4);
  assert_int_equal(st.evicted, 1000 - 3);
  assert_int_equal(st.evicted_locked, 0);
  assert_true(wr_throttle_check(t, "u:victim", now) > 0);
  /* The most recent ones stayed (least recently used went first). */
  assert_int_equal(fail_at(t, "u:rand999", now + 2000).failures, 2);

  /* Only locked keys left: the least recently used locked one goes. */
  for (int k = 0; k < 4; k++) {
    snprintf(key, sizeof(key), "u:lock%d", k);
    for (int i = 0; i < 5; i++) fail_at(t, key, now + 3000 + (uint64_t)k);
  }
  wr_throttle_get_stats(t, &st);
  assert_int_equal(st.keys, 4);
  assert_int_equal(st.evicted_locked, 1); /* u:victim, the oldest, for u:lock3 */
  assert_int_equal(wr_throttle_check(t, "u:victim", now + 3000), 0);
  assert_true(wr_throttle_check(t, "u:lock0", now + 3000) > 0);
  wr_throttle_free(t);

  /* Pending keys stay: a full table of them refuses a new one. */
  t = make(2);
  assert_int_equal(wr_throttle_begin(t, "a", 1), WR_OK);
  assert_int_equal(wr_throttle_begin(t, "b", 1), WR_OK);
  assert_int_equal(wr_throttle_begin(t, "c", 1), WR_ERR_LIMIT);
  wr_throttle_record(t, "c", 1, WR_THROTTLE_FAILURE, NULL); /* dropped, no harm */
  assert_int_equal(nkeys(t), 2);
  wr_throttle_end(t, "a", 1, WR_THROTTLE_FAILURE, NULL);
  wr_throttle_end(t, "b", 1, WR_THROTTLE_FAILURE, NULL);
  assert_int_equal(wr_throttle_begin(t, "c", 1), WR_OK);
  wr_throttle_end(t, "c", 1, WR_THROTTLE_FAILURE, NULL);
  assert_int_equal(nkeys(t), 2);
  wr_throttle_free(t);
}

/* Many keys in a small table: every lookup still finds its own key (no
 * mix-ups between keys sharing a bucket), and long keys are cut the same
 * way each time. */
static void test_many_keys(void **state) {
  (void)state;
  wr_throttle *t = make(3000);
  char key[WR_THROTTLE_KEY_MAX + 40];
  for (int i = 0; i < 3000; i++) {
    snprintf(key, sizeof(key), "u:%d", i);
    for (int k = 0; k <= i % 6; k++) fail_at(t, key, 1);
  }
  for (int i = 0; i < 3000; i++) {
    snprintf(key, sizeof(key), "u:%d", i);
    assert_int_equal(wr_throttle_check(t, key, 1) > 0, i % 6 >= 4);
  }
  memset(key, 'x', sizeof(key) - 1);
  key[sizeof(key) - 1] = '\0';
  for (int i = 0; i < 5; i++) fail_at(t, key, 1);
  assert_true(wr_throttle_check(t, key, 1) > 0);
  wr_throttle_free(t);
}

/* Every allocation failing in turn: creation fails cleanly, and a record
 * that cannot allocate is dropped without harm. */
static void test_allocation_failures(void **state) {
  (void)state;
  for (long i = 0;; i++) {
    unit_failmem fm;
    unit_failmem_init(&fm, i);
    wr_throttle_config cfg = {.mem = &fm.mem, .max_keys = 8, .seed = {1}};
    wr_throttle *t = NULL;
    int rv = wr_throttle_new(&cfg, &t);
    if (rv != WR_OK) {
      assert_int_equal(rv, WR_ERR_NOMEM);
      assert_null(t);
      assert_int_equal(fm.live, 0);
      continue;
    }
    wr_throttle_info info;
    for (int k = 0; k < 6; k++) wr_throttle_record(t, "u:a", 1, WR_THROTTLE_FAILURE, &info);
    int begun = wr_throttle_begin(t, "u:b", 1);
    assert_true(begun == WR_OK || begun == WR_ERR_NOMEM);
    if (begun == WR_OK) wr_throttle_end(t, "u:b", 1, WR_THROTTLE_FAILURE, NULL);
    wr_throttle_free(t);
    assert_int_equal(fm.live, 0);
    if (fm.calls <= i) break; /* nothing failed: every step was covered */
  }
}

static void test_config(void **state) {
  (void)state;
  wr_throttle *t = NULL;
  wr_throttle_config bad = {.base_delay_ms = 5000, .max_delay_ms = 1000};
  assert_int_equal(wr_throttle_new(&bad, &t), WR_ERR_INVAL);
  assert_null(t);
  wr_throttle_config one = {.free_failures = 1, .base_delay_ms = 250, .max_delay_ms = 1000};
  assert_int_equal(wr_throttle_new(&one, &t), WR_OK);
  assert_int_equal(fail_at(t, "k", 0).wait_ms, 250);
  assert_int_equal(fail_at(t, "k", 250).wait_ms, 500);
  assert_int_equal(fail_at(t, "k", 750).wait_ms, 1000);
  assert_int_equal(fail_at(t, "k", 1750).wait_ms, 1000);
  wr_throttle_free(t);
  assert_int_equal(wr_throttle_new(NULL, &t), WR_OK); /* defaults, random seed */
  wr_throttle_free(t);
  wr_throttle_free(NULL);
}

static void source_of(const char *ip, char out[WR_THROTTLE_SOURCE_MAX]) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  if (strchr(ip, ':')) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
  }
  wr_throttle_source_key(&ss, out);
}

static void test_source_keys(void **state) {
  (void)state;
  char k[WR_THROTTLE_SOURCE_MAX], k2[WR_THROTTLE_SOURCE_MAX];
  source_of("192.0.2.45", k);
  assert_string_equal(k, "192.0.2.45");
  source_of("192.0.2.46", k2);
  assert_string_not_equal(k, k2); /* IPv4: each address */
  source_of("::ffff:192.0.2.45", k2);
  assert_string_equal(k2, "192.0.2.45"); /* mapped: the same source */
  source_of("2001:db8:1:2:aaaa:bbbb:cccc:dddd", k);
  assert_string_equal(k, "2001:db8:1:2::/64");
  source_of("2001:db8:1:2::1", k2);
  assert_string_equal(k, k2); /* IPv6: the /64 */
  source_of("2001:db8:1:3::1", k2);
  assert_string_not_equal(k, k2);
  source_of("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", k);
  assert_string_equal(k, "ffff:ffff:ffff:ffff::/64");
  struct sockaddr_storage none;
  memset(&none, 0, sizeof(none));
  wr_throttle_source_key(&none, k);
  assert_string_equal(k, "?");
}

static void test_ratelimit(void **state) {
  (void)state;
  wr_ratelimit r = {.burst = 3, .every_ms = 1000};
  assert_int_equal(wr_ratelimit_take(&r, 50), 1);
  assert_int_equal(wr_ratelimit_take(&r, 50), 1);
  assert_int_equal(wr_ratelimit_take(&r, 50), 1);
  assert_int_equal(wr_ratelimit_take(&r, 50), 0);
  assert_int_equal(wr_ratelimit_take(&r, 1049), 0);
  assert_int_equal(wr_ratelimit_take(&r, 1050), 1);
  assert_int_equal(wr_ratelimit_take(&r, 1051), 0);
  assert_int_equal(wr_ratelimit_take_dropped(&r), 3);
  assert_int_equal(wr_ratelimit_take_dropped(&r), 0);
  /* A long quiet refills to the burst, not beyond. */
  for (int i = 0; i < 3; i++) assert_int_equal(wr_ratelimit_take(&r, 1000000), 1);
  assert_int_equal(wr_ratelimit_take(&r, 1000000), 0);
}

int main(void) {
  return UNIT_RUN(
      NULL, NULL,
      UNIT_FIXTURE(unbounded_setup, unbounded_teardown, test_backoff_growth_and_cap,
                   test_success_resets, test_forgetting_and_sweep, test_pending_attempts),
      UNIT_TESTS(test_spraying_locks_the_source, test_bound_and_eviction, test_many_keys,
                 test_allocation_failures, test_config, test_source_keys, test_ratelimit));
}
