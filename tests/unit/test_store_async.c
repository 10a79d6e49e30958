/* The store thread (edge/store_async.h): jobs run off the loop thread with
 * the worker's own store connection, done callbacks run on the loop, in
 * order, and tearing down delivers every job exactly once. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "edge/store.h"
#include "edge/store_async.h"
#include "lib/err.h"

typedef struct fixture {
  char dir[64];
  char path[256];
  wr_store *s;
  wr_account acct;
  uv_loop_t loop;
} fixture;

typedef struct work {
  fixture *f;
  uv_thread_t loop_thread;
  int ran_off_loop;   /* fn saw a thread other than the loop's */
  int found;          /* fn read the account through the worker's store */
  int done_status;
  int done_calls;
  int order;          /* position among the done callbacks */
} work;

static int done_seen;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  if (unit_store_new("wr-storeasync", f->dir, sizeof(f->dir), f->path, sizeof(f->path), &f->s) != 0)
    return -1;
  if (wr_store_account_create(f->s, "test", "example.test", &f->acct) != WR_OK) return -1;
  if (uv_loop_init(&f->loop) != 0) return -1;
  done_seen = 0;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  unit_loop_finish(&f->loop);
  return unit_store_drop(f->s, f->dir, f);
}

static void job_fn(wr_store *s, void *arg) {
  work *w = arg;
  uv_thread_t self = uv_thread_self();
  w->ran_off_loop = !uv_thread_equal(&self, &w->loop_thread);
  wr_account a;
  w->found = wr_store_account_get(s, w->f->acct.id, &a) == WR_OK &&
             strcmp(a.name, "example.test") == 0;
}

static void job_done(void *arg, int status) {
  work *w = arg;
  w->done_status = status;
  w->done_calls++;
  w->order = done_seen++;
}

static void keep_cb(uv_timer_t *t) { (void)t; }

/* Runs |f|'s loop while |cond| holds. The store's handle does not hold the
 * loop (uv_unref): a timer does, so the loop keeps polling. The timer is on
 * this stack: it is closed, and the close run, before the block ends. */
#define RUN_WHILE(f, cond)                            \
  do {                                                \
    uv_timer_t keep;                                  \
    uv_timer_init(&(f)->loop, &keep);                 \
    uv_timer_start(&keep, keep_cb, 10, 10);           \
    while (cond) uv_run(&(f)->loop, UV_RUN_ONCE);     \
    uv_close((uv_handle_t *)&keep, NULL);             \
    uv_run(&(f)->loop, UV_RUN_NOWAIT);                \
  } while (0)

/* A new wr_store_async on f's store with |n| jobs (job_fn, job_done) of
 * the zeroed |w| submitted from the loop thread. */
static wr_store_async *submit_jobs(fixture *f, work *w, int n) {
  wr_store_async *a;
  char err[256];
  assert_int_equal(wr_store_async_new(&f->loop, f->path, &a, err, sizeof(err)), WR_OK);
  memset(w, 0, (size_t)n * sizeof(*w));
  for (int i = 0; i < n; i++) {
    w[i].f = f;
    w[i].loop_thread = uv_thread_self();
    assert_int_equal(wr_store_async_submit(a, job_fn, job_done, &w[i]), WR_OK);
  }
  return a;
}

static void test_jobs_run_off_the_loop(void **state) {
  fixture *f = *state;
  work w[8];
  wr_store_async *a = submit_jobs(f, w, 8);
  assert_int_equal(wr_store_async_pending(a), 8);
  RUN_WHILE(f, done_seen < 8);
  for (int i = 0; i < 8; i++) {
    assert_true(w[i].ran_off_loop);
    assert_true(w[i].found);
    assert_int_equal(w[i].done_status, WR_OK);
    assert_int_equal(w[i].done_calls, 1);
    assert_int_equal(w[i].order, i); /* FIFO */
  }
  assert_int_equal(wr_store_async_pending(a), 0);
  wr_store_async_free(a);
}

static void test_free_delivers_every_job_once(void **state) {
  fixture *f = *state;
  work w[64];
  wr_store_async *a = submit_jobs(f, w, 64);
  wr_store_async_free(a); /* without running the loop: some ran, some not */
  for (int i = 0; i < 64; i++) {
    assert_int_equal(w[i].done_calls, 1);
    if (w[i].done_status == WR_OK) assert_true(w[i].found);
    else assert_int_equal(w[i].done_status, WR_ERR_INTERNAL);
  }
  assert_int_equal(done_seen, 64);
}

/* wr_store_async_on_loop: a job's fn has a function run on the loop
 * thread, waits for it, and goes on; at teardown the wait ends unrun. */
typedef struct hop {
  wr_store_async *a;
  uv_thread_t loop_thread;
  int on_loop;    /* the loop function saw the loop's thread */
  int loop_runs;  /* times the loop function ran */
  int rv;         /* what wr_store_async_on_loop returned */
  int after;      /* fn went on after the call */
  int done_calls;
} hop;

static void hop_loop_fn(void *arg) {
  hop *h = arg;
  uv_thread_t self = uv_thread_self();
  h->on_loop = uv_thread_equal(&self, &h->loop_thread);
  h->loop_runs++;
}

static void hop_fn(wr_store *s, void *arg) {
  hop *h = arg;
  (void)s;
  h->rv = wr_store_async_on_loop(h->a, hop_loop_fn, h);
  h->after = 1;
}

static void hop_done(void *arg, int status) {
  hop *h = arg;
  (void)status;
  h->done_calls++;
}

static void test_a_job_calls_the_loop(void **state) {
  fixture *f = *state;
  char err[256];
  hop h = {.loop_thread = uv_thread_self(), .rv = -1};
  assert_int_equal(wr_store_async_new(&f->loop, f->path, &h.a, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_store_async_submit(h.a, hop_fn, hop_done, &h), WR_OK);
  RUN_WHILE(f, !h.done_calls);
  assert_int_equal(h.rv, WR_OK);
  assert_int_equal(h.loop_runs, 1);
  assert_true(h.on_loop);
  assert_true(h.after);
  wr_store_async_free(h.a);

  /* The loop never runs: teardown ends the wait (or the job never ran). */
  hop g = {.loop_thread = uv_thread_self(), .rv = -1};
  assert_int_equal(wr_store_async_new(&f->loop, f->path, &g.a, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_store_async_submit(g.a, hop_fn, hop_done, &g), WR_OK);
  wr_store_async_free(g.a);
  assert_int_equal(g.done_calls, 1);
  assert_int_equal(g.loop_runs, 0);
  if (g.after) assert_int_equal(g.rv, WR_ERR_INTERNAL);

  /* Without a store thread (a job run at once on the loop): at once. */
  hop z = {.loop_thread = uv_thread_self()};
  assert_int_equal(wr_store_async_on_loop(NULL, hop_loop_fn, &z), WR_OK);
  assert_int_equal(z.loop_runs, 1);
  assert_true(z.on_loop);
}

static void test_bad_path_and_arguments(void **state) {
  fixture *f = *state;
  wr_store_async *a;
  char err[256], path[256];
  snprintf(path, sizeof(path), "%s/missing.db", f->dir);
  assert_int_equal(wr_store_async_new(&f->loop, path, &a, err, sizeof(err)), WR_ERR_NOTFOUND);
  assert_null(a);
  assert_int_equal(wr_store_async_new(&f->loop, f->path, &a, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_store_async_submit(a, NULL, job_done, NULL), WR_ERR_INVAL);
  assert_int_equal(wr_store_async_submit(a, job_fn, NULL, NULL), WR_ERR_INVAL);
  wr_store_async_free(a);
}

/* A job that holds the worker until the loop opens its gate. */
static void gate_fn(wr_store *s, void *arg) {
  (void)s;
  uv_sem_wait(arg);
}

static void nop_done(void *arg, int status) {
  (void)arg;
  (void)status;
}

/* The rows of |action| in the store, and the account of the last one. */
static size_t audit_rows(fixture *f, const char *action, char account[WR_STORE_ID_LEN + 1]) {
  wr_audit *rows;
  size_t n, found = 0;
  assert_int_equal(wr_store_audit_list(f->s, NULL, 0, &rows, &n), WR_OK);
  for (size_t i = 0; i < n; i++)
    if (!strcmp(rows[i].action, action)) {
      found++;
      memcpy(account, rows[i].account_id, WR_STORE_ID_LEN + 1);
    }
  wr_store_audit_free(rows, n);
  return found;
}

/* An audit row nobody waits for: the call returns while the worker is
 * busy (the loop goes on), and the row is written there afterwards, in
 * the account of the user the email names. Without a store thread it is
 * written at once. */
static void test_audit_rows_are_written_off_the_loop(void **state) {
  fixture *f = *state;
  wr_store_async *a;
  char err[256], account[WR_STORE_ID_LEN + 1];
  wr_user u;
  uv_sem_t gate;
  assert_int_equal(wr_store_user_create(f->s, "test", f->acct.id, "a@example.test", NULL, 0, &u), WR_OK);
  assert_int_equal(wr_store_async_new(&f->loop, f->path, &a, err, sizeof(err)), WR_OK);
  assert_int_equal(uv_sem_init(&gate, 0), 0);
  assert_int_equal(wr_store_async_submit(a, gate_fn, nop_done, &gate), WR_OK);
  wr_store_async_audit(a, f->s, "test", "edge", NULL, "a@example.test", "test.lock", "source", "192.0.2.1",
                       "{\"failures\":10}");
  assert_int_equal(audit_rows(f, "test.lock", account), 0);
  uv_sem_post(&gate);
  RUN_WHILE(f, wr_store_async_pending(a));
  assert_int_equal(audit_rows(f, "test.lock", account), 1);
  assert_string_equal(account, f->acct.id);
  wr_store_async_free(a);
  uv_sem_destroy(&gate);
  wr_store_async_audit(NULL, f->s, "test", "edge", NULL, "nobody@example.test", "test.unlock", "source",
                       "192.0.2.1", NULL);
  assert_int_equal(audit_rows(f, "test.unlock", account), 1);
  assert_string_equal(account, "");
}

/* An owner of jobs (wr_owner): released once, after the done
 * callback of its last job, and only once closed; holds count as jobs. */
typedef struct owned {
  wr_owner o;
  int releases;
  int dones_at_release; /* done callbacks seen when release ran */
} owned;

static owned *owned_of;

static void nop_fn(wr_store *s, void *arg) {
  (void)s;
  (void)arg;
}

static void owned_release(wr_owner *o) {
  owned *w = (owned *)o; /* |o| is the first member */
  w->releases++;
  w->dones_at_release = done_seen;
}

static void owned_done(void *arg, int status) {
  (void)arg;
  (void)status;
  assert_int_equal(owned_of->releases, 0); /* the job still counts in its callback */
  done_seen++;
}

static void test_an_owner_is_released_after_its_last_job(void **state) {
  fixture *f = *state;
  wr_store_async *a;
  char err[256];
  uv_sem_t gate;
  owned w = {0};
  owned_of = &w;
  /* Nothing pending: close releases at once, and only once. */
  wr_owner_init(&w.o, owned_release);
  wr_owner_close(&w.o);
  wr_owner_close(&w.o);
  assert_int_equal(w.releases, 1);

  /* Jobs and a hold pending: close waits for all of them. */
  memset(&w, 0, sizeof(w));
  wr_owner_init(&w.o, owned_release);
  assert_int_equal(wr_store_async_new(&f->loop, f->path, &a, err, sizeof(err)), WR_OK);
  assert_int_equal(uv_sem_init(&gate, 0), 0);
  assert_int_equal(wr_store_async_owner_submit(a, &w.o, gate_fn, owned_done, &gate), WR_OK);
  for (int i = 0; i < 3; i++)
    assert_int_equal(wr_store_async_owner_submit(a, &w.o, gate_fn, owned_done, &gate), WR_OK);
  wr_owner_hold(&w.o);
  assert_int_equal(w.o.pending, 5);
  wr_owner_close(&w.o);
  assert_int_equal(w.releases, 0);
  assert_int_equal(wr_store_async_owner_submit(a, &w.o, gate_fn, owned_done, &gate), WR_ERR_INVAL);
  for (int i = 0; i < 4; i++) uv_sem_post(&gate);
  RUN_WHILE(f, done_seen < 4);
  assert_int_equal(w.releases, 0); /* the hold is still out */
  wr_owner_drop(&w.o);
  assert_int_equal(w.releases, 1);
  assert_int_equal(w.dones_at_release, 4);

  /* Teardown of the store thread delivers the jobs, then releases. */
  done_seen = 0;
  memset(&w, 0, sizeof(w));
  wr_owner_init(&w.o, owned_release);
  for (int i = 0; i < 3; i++)
    assert_int_equal(wr_store_async_owner_submit(a, &w.o, nop_fn, owned_done, NULL), WR_OK);
  wr_owner_close(&w.o);
  wr_store_async_free(a); /* without running the loop: some ran, some not */
  assert_int_equal(w.releases, 1);
  assert_int_equal(w.dones_at_release, 3);
  assert_int_equal(w.o.pending, 0);
  uv_sem_destroy(&gate);
}

int main(void) {
  const unit_tests tests[] = {UNIT_FIXTURE(setup, teardown, test_jobs_run_off_the_loop,
                                           test_free_delivers_every_job_once,
                                           test_a_job_calls_the_loop,
                                           test_bad_path_and_arguments,
                                           test_audit_rows_are_written_off_the_loop,
                                           test_an_owner_is_released_after_its_last_job)};
  return unit_run_store_backends("store_async", tests, 1, tests, 1);
}
