/* Fair admission of password checks (src/edge/fairq.c): per-source caps,
 * round-robin turns, and a full queue that refuses the source with the
 * most work instead of a newcomer. */
#include <stdio.h>
#include <string.h>

#include "edge/fairq.h"
#include "lib/err.h"
#include "unit.h"

typedef struct job {
  wr_fairq_item it; /* first: items map back to jobs by cast */
  char name[8];
} job;

static wr_fairq *make(unsigned running, unsigned queued, unsigned per_running, unsigned per_queued) {
  wr_fairq_config cfg = {.max_running = running, .max_queued = queued,
                         .per_source_running = per_running, .per_source_queued = per_queued};
  wr_fairq *q = NULL;
  assert_int_equal(wr_fairq_new(&cfg, &q), WR_OK);
  return q;
}

static int push(wr_fairq *q, const char *src, job *j, const char *name, job **dropped) {
  wr_fairq_item *d = NULL;
  snprintf(j->name, sizeof(j->name), "%s", name);
  int rv = wr_fairq_push(q, src, 0, &j->it, &d);
  if (dropped) *dropped = (job *)d;
  else assert_null(d);
  return rv;
}

static const char *next_name(wr_fairq *q) {
  job *j = (job *)wr_fairq_next(q);
  return j ? j->name : "-";
}

/* One source gets one running check and two waiting; others still run. */
static void test_per_source_caps(void **state) {
  (void)state;
  wr_fairq *q = make(4, 64, 1, 2);
  job a[5], b;
  unsigned running, queued;
  assert_int_equal(push(q, "A", &a[0], "a0", NULL), WR_OK);
  assert_true(a[0].it.running);
  assert_int_equal(push(q, "A", &a[1], "a1", NULL), WR_AGAIN);
  assert_int_equal(push(q, "A", &a[2], "a2", NULL), WR_AGAIN);
  assert_int_equal(push(q, "A", &a[3], "a3", NULL), WR_ERR_LIMIT);
  assert_false(a[1].it.running);
  assert_int_equal(wr_fairq_source_work(q, "A"), 3);
  assert_int_equal(wr_fairq_source_work(q, "B"), 0);
  /* Three slots are free: B runs at once, not behind A's queue. */
  assert_int_equal(push(q, "B", &b, "b", NULL), WR_OK);
  wr_fairq_counts(q, &running, &queued);
  assert_int_equal(running, 2);
  assert_int_equal(queued, 2);
  /* Nothing else may run while A's one check runs. */
  assert_string_equal(next_name(q), "-");
  wr_fairq_done(q, &a[0].it);
  assert_string_equal(next_name(q), "a1");
  assert_string_equal(next_name(q), "-");
  wr_fairq_done(q, &b.it);
  wr_fairq_done(q, &a[1].it);
  assert_string_equal(next_name(q), "a2");
  wr_fairq_done(q, &a[2].it);
  wr_fairq_counts(q, &running, &queued);
  assert_int_equal(running + queued, 0);
  /* The source's record is gone: it may queue again. */
  assert_int_equal(push(q, "A", &a[4], "a4", NULL), WR_OK);
  wr_fairq_done(q, &a[4].it);
  wr_fairq_free(q);
}

/* With every slot busy, turns go round the sources: a flooding source
 * gets one turn per round, like everyone else. */
static void test_round_robin(void **state) {
  (void)state;
  wr_fairq *q = make(1, 64, 1, 8);
  job a[6], b[2], c;
  assert_int_equal(push(q, "A", &a[0], "a0", NULL), WR_OK);
  for (int i = 1; i < 6; i++) {
    char n[16];
    snprintf(n, sizeof(n), "a%d", i);
    assert_int_equal(push(q, "A", &a[i], n, NULL), WR_AGAIN);
  }
  assert_int_equal(push(q, "B", &b[0], "b0", NULL), WR_AGAIN);
  assert_int_equal(push(q, "B", &b[1], "b1", NULL), WR_AGAIN);
  assert_int_equal(push(q, "C", &c, "c", NULL), WR_AGAIN);
  const char *want[] = {"b0", "c", "a1", "b1", "a2", "a3", "a4", "a5"};
  wr_fairq_item *cur = &a[0].it;
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    wr_fairq_done(q, cur);
    job *j = (job *)wr_fairq_next(q);
    assert_non_null(j);
    assert_string_equal(j->name, want[i]);
    cur = &j->it;
  }
  wr_fairq_done(q, cur);
  assert_null(wr_fairq_next(q));
  wr_fairq_free(q);
}

/* A full queue: a source that already has work is refused, a newcomer
 * pushes out the newest waiting check of the busiest source; only a queue
 * of single checks from distinct sources refuses newcomers. */
static void test_full_queue_prefers_newcomers(void **state) {
  (void)state;
  wr_fairq *q = make(1, 4, 1, 2);
  job a[4], b, c, d, e, f, *dropped;
  unsigned running, queued;
  assert_int_equal(push(q, "A", &a[0], "a0", NULL), WR_OK);
  assert_int_equal(push(q, "A", &a[1], "a1", NULL), WR_AGAIN);
  assert_int_equal(push(q, "A", &a[2], "a2", NULL), WR_AGAIN);
  assert_int_equal(push(q, "B", &b, "b", NULL), WR_AGAIN);
  assert_int_equal(push(q, "C", &c, "c", NULL), WR_AGAIN);
  /* Full (4 waiting). B already waits: refused. */
  job b2;
  assert_int_equal(push(q, "B", &b2, "b2", &dropped), WR_ERR_LIMIT);
  assert_null(dropped);
  /* D is new: A (three checks) loses its newest waiting one. */
  assert_int_equal(push(q, "D", &d, "d", &dropped), WR_AGAIN);
  assert_ptr_equal(dropped, &a[2]);
  /* E is new: A (still two) loses a1. */
  assert_int_equal(push(q, "E", &e, "e", &dropped), WR_AGAIN);
  assert_ptr_equal(dropped, &a[1]);
  /* F is new, but every waiting source has one check: refused. */
  assert_int_equal(push(q, "F", &f, "f", &dropped), WR_ERR_LIMIT);
  assert_null(dropped);
  wr_fairq_counts(q, &running, &queued);
  assert_int_equal(running, 1);
  assert_int_equal(queued, 4);
  /* Everyone waiting gets a turn, in arrival order. */
  wr_fairq_done(q, &a[0].it);
  const char *want[] = {"b", "c", "d", "e"};
  for (int i = 0; i < 4; i++) {
    job *j = (job *)wr_fairq_next(q);
    assert_non_null(j);
    assert_string_equal(j->name, want[i]);
    assert_null(wr_fairq_next(q));
    wr_fairq_done(q, &j->it);
  }
  assert_null(wr_fairq_next(q));
  wr_fairq_free(q);
}

/* Scores: among waiting sources, the least suspect goes first; a full
 * queue of single jobs makes room for a newcomer by dropping a waiting job
 * scored higher than the newcomer's, never one scored the same or lower. */
static void test_scores(void **state) {
  (void)state;
  wr_fairq *q = make(1, 3, 1, 2);
  job a, b, c, d, e, f, g, *dropped;
  wr_fairq_item *d0;
  assert_int_equal(wr_fairq_push(q, "A", 0, &a.it, &d0), WR_OK);
  assert_int_equal(wr_fairq_push(q, "B", 5, &b.it, &d0), WR_AGAIN);
  assert_int_equal(wr_fairq_push(q, "C", 2, &c.it, &d0), WR_AGAIN);
  assert_int_equal(wr_fairq_push(q, "D", 0, &d.it, &d0), WR_AGAIN);
  /* Full. E (score 2) may only push out B (5). */
  assert_int_equal(wr_fairq_push(q, "E", 2, &e.it, &d0), WR_AGAIN);
  dropped = (job *)d0;
  assert_ptr_equal(dropped, &b);
  assert_int_equal(wr_fairq_source_work(q, "B"), 0);
  /* F (2): nothing waiting is scored above 2. */
  assert_int_equal(wr_fairq_push(q, "F", 2, &f.it, &d0), WR_ERR_LIMIT);
  assert_null(d0);
  /* G (0) pushes out the newest of the 2s: E. */
  assert_int_equal(wr_fairq_push(q, "G", 0, &g.it, &d0), WR_AGAIN);
  assert_ptr_equal(d0, &e.it);
  /* Turns: the 0s (D before G, in arrival order), then C. */
  wr_fairq_done(q, &a.it);
  assert_ptr_equal(wr_fairq_next(q), &d.it);
  wr_fairq_done(q, &d.it);
  assert_ptr_equal(wr_fairq_next(q), &g.it);
  wr_fairq_done(q, &g.it);
  assert_ptr_equal(wr_fairq_next(q), &c.it);
  wr_fairq_done(q, &c.it);
  assert_null(wr_fairq_next(q));
  wr_fairq_free(q);
}

/* Owners that give up take their items out. */
static void test_remove(void **state) {
  (void)state;
  wr_fairq *q = make(1, 8, 1, 4);
  job a0, a1, a2, b;
  unsigned running, queued;
  assert_int_equal(push(q, "A", &a0, "a0", NULL), WR_OK);
  assert_int_equal(push(q, "A", &a1, "a1", NULL), WR_AGAIN);
  assert_int_equal(push(q, "A", &a2, "a2", NULL), WR_AGAIN);
  assert_int_equal(push(q, "B", &b, "b", NULL), WR_AGAIN);
  wr_fairq_remove(q, &a1.it); /* waiting: just gone */
  wr_fairq_remove(q, &a0.it); /* running: like done */
  assert_string_equal(next_name(q), "b");
  wr_fairq_remove(q, &b.it);
  assert_string_equal(next_name(q), "a2");
  wr_fairq_remove(q, &a2.it);
  wr_fairq_remove(q, &a2.it); /* twice: no-op */
  wr_fairq_counts(q, &running, &queued);
  assert_int_equal(running + queued, 0);
  assert_null(wr_fairq_next(q));
  wr_fairq_free(q);
  wr_fairq_free(NULL);
}

/* Many sources over a long run: the counts stay consistent and the pool of
 * source records is never exhausted. */
static void test_churn(void **state) {
  (void)state;
  enum { N = 200 };
  wr_fairq *q = make(3, 10, 1, 2);
  static job jobs[N];
  int in[N] = {0};
  unsigned running, queued;
  for (int round = 0; round < 50; round++) {
    for (int i = 0; i < N; i++) {
      if (in[i]) continue;
      char src[16];
      job *dropped;
      snprintf(src, sizeof(src), "10.0.0.%d", (i * 7 + round) % 23);
      int rv = push(q, src, &jobs[i], "j", &dropped);
      if (rv != WR_ERR_LIMIT) in[i] = 1;
      if (dropped) in[dropped - jobs] = 0;
    }
    /* Finish the running ones, start the next. */
    for (int i = 0; i < N; i++)
      if (in[i] && jobs[i].it.running) {
        wr_fairq_done(q, &jobs[i].it);
        in[i] = 0;
      }
    while (wr_fairq_next(q)) {
    }
    wr_fairq_counts(q, &running, &queued);
    int n = 0;
    for (int i = 0; i < N; i++) n += in[i];
    assert_int_equal((int)(running + queued), n);
    assert_true(running <= 3 && queued <= 10);
  }
  wr_fairq_free(q);
}

static void test_allocation_failures(void **state) {
  (void)state;
  for (long i = 0; i < 2; i++) {
    unit_failmem fm;
    unit_failmem_init(&fm, i);
    wr_fairq_config cfg = {.mem = &fm.mem};
    wr_fairq *q = (wr_fairq *)1;
    assert_int_equal(wr_fairq_new(&cfg, &q), WR_ERR_NOMEM);
    assert_null(q);
    assert_int_equal(fm.live, 0);
  }
}

int main(void) {
  return UNIT_RUN(
      NULL, NULL,
      UNIT_TESTS(test_per_source_caps, test_round_robin, test_full_queue_prefers_newcomers,
                 test_scores, test_remove, test_churn, test_allocation_failures));
}
