/* The store's worker thread (store_async.h). Jobs move from |todo| to
 * |done| under one mutex; the worker signals the loop with uv_async_send,
 * which coalesces, so the loop drains the whole |done| list each time. A
 * job of an owner ends its owner's count after its done callback
 * (deliver), the one place every job passes. */
#include "edge/store_async.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"

typedef struct job {
  struct job *next;
  wr_store_async_fn fn;
  wr_store_async_done done;
  void *arg;
  wr_owner *owner; /* NULL: submitted without one */
} job;

typedef struct jlist {
  job *head, *tail;
} jlist;

/* A call from a job's fn to the loop thread (wr_store_async_on_loop): it
 * lives on the worker's stack while the worker waits for |ran|. */
typedef struct loop_call {
  struct loop_call *next;
  void (*fn)(void *arg);
  void *arg;
  int ran; /* under mu */
} loop_call;

struct wr_store_async {
  uv_loop_t *loop;
  wr_store *store; /* used by the worker only */
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cv;
  uv_async_t wake;
  jlist todo, done; /* under mu */
  loop_call *calls;  /* under mu: waiting for the loop, newest first */
  uv_cond_t call_cv; /* a call ran, or stop */
  size_t pending;   /* submitted, not delivered (loop thread) */
  int stop;         /* under mu */
  int closing;      /* loop thread */
  unsigned delay_ms;
};

static void jl_push(jlist *l, job *j) { WR_FIFO_PUSH(l->head, l->tail, j, next); }

static job *jl_pop(jlist *l) {
  job *j = l->head;
  if (j) WR_FIFO_POP(l->head, l->tail, next);
  return j;
}

static void worker(void *p) {
  wr_store_async *a = p;
  uv_mutex_lock(&a->mu);
  for (;;) {
    while (!a->stop && !a->todo.head) uv_cond_wait(&a->cv, &a->mu);
    if (a->stop) break;
    job *j = jl_pop(&a->todo);
    uv_mutex_unlock(&a->mu);
    if (a->delay_ms) uv_sleep(a->delay_ms);
    j->fn(a->store, j->arg);
    uv_mutex_lock(&a->mu);
    jl_push(&a->done, j);
    uv_async_send(&a->wake);
  }
  uv_mutex_unlock(&a->mu);
}

/* Runs the worker's waiting loop call, if any (one at a time: the
 * worker waits for each). */
static void run_calls(wr_store_async *a) {
  uv_mutex_lock(&a->mu);
  loop_call *c = a->calls;
  a->calls = NULL;
  uv_mutex_unlock(&a->mu);
  for (loop_call *next; c; c = next) {
    next = c->next;
    c->fn(c->arg);
    uv_mutex_lock(&a->mu);
    c->ran = 1; /* |c| may be gone once the lock is released */
    uv_cond_broadcast(&a->call_cv);
    uv_mutex_unlock(&a->mu);
  }
}

const char *wr_store_async_why(int status, const char *errmsg) {
  return status == WR_OK ? errmsg : "the store thread stopped";
}

int wr_store_async_on_loop(wr_store_async *a, void (*fn)(void *arg), void *arg) {
  loop_call c = {.fn = fn, .arg = arg};
  if (!a) { /* already on the loop thread */
    fn(arg);
    return WR_OK;
  }
  uv_mutex_lock(&a->mu);
  if (a->stop) {
    uv_mutex_unlock(&a->mu);
    return WR_ERR_INTERNAL;
  }
  c.next = a->calls;
  a->calls = &c;
  uv_async_send(&a->wake);
  while (!c.ran && !a->stop) uv_cond_wait(&a->call_cv, &a->mu);
  int ran = c.ran;
  uv_mutex_unlock(&a->mu);
  /* Not run at stop: wr_store_async_free drops the list after the join. */
  return ran ? WR_OK : WR_ERR_INTERNAL;
}

/* Hands |j| to its done callback, then ends its owner's count. */
static void deliver(wr_store_async *a, job *j, int status) {
  wr_owner *o = j->owner;
  a->pending--;
  j->done(j->arg, status);
  free(j);
  if (o) wr_owner_drop(o);
}

/* Delivers the finished jobs; their done callbacks may submit more. */
static void wake_cb(uv_async_t *h) {
  wr_store_async *a = h->data;
  run_calls(a);
  uv_mutex_lock(&a->mu);
  jlist l = a->done;
  a->done.head = a->done.tail = NULL;
  uv_mutex_unlock(&a->mu);
  for (job *j; (j = jl_pop(&l));) deliver(a, j, WR_OK);
}

static void close_cb(uv_handle_t *h) { free(h->data); }

static unsigned test_delay(void) {
  const char *s = getenv("WARREN_TEST_STORE_DELAY_MS");
  long v = s ? strtol(s, NULL, 10) : 0;
  return v > 0 && v < 600000 ? (unsigned)v : 0;
}

int wr_store_async_new(uv_loop_t *loop, const char *path, wr_store_async **out, char *err,
                       size_t errlen) {
  *out = NULL;
  wr_store_async *a = wr_xcalloc(1, sizeof(*a));
  a->loop = loop;
  a->delay_ms = test_delay();
  int rv = wr_store_open(path, 0, &a->store, err, errlen);
  if (rv != WR_OK) goto fail_store;
  rv = WR_ERR_IO;
  if (uv_mutex_init(&a->mu) != 0) goto fail_mutex;
  if (uv_cond_init(&a->cv) != 0) goto fail_cond;
  if (uv_cond_init(&a->call_cv) != 0) goto fail_call_cv;
  if (uv_async_init(loop, &a->wake, wake_cb) != 0) goto fail_async;
  a->wake.data = a;
  uv_unref((uv_handle_t *)&a->wake); /* never keeps the loop alive by itself */
  if (uv_thread_create(&a->thread, worker, a) != 0) goto fail_thread;
  *out = a;
  return WR_OK;
fail_thread:
  uv_cond_destroy(&a->call_cv);
  uv_cond_destroy(&a->cv);
  uv_mutex_destroy(&a->mu);
  wr_store_close(a->store);
  snprintf(err, errlen, "cannot start the store thread");
  /* |a| holds the handle: the close callback frees both. */
  uv_close((uv_handle_t *)&a->wake, close_cb);
  return rv;
fail_async:
  uv_cond_destroy(&a->call_cv);
fail_call_cv:
  uv_cond_destroy(&a->cv);
fail_cond:
  uv_mutex_destroy(&a->mu);
fail_mutex:
  wr_store_close(a->store);
  snprintf(err, errlen, "cannot set up the store thread");
fail_store:
  free(a);
  return rv;
}

static int submit(wr_store_async *a, wr_owner *o, wr_store_async_fn fn, wr_store_async_done done,
                  void *arg) {
  if (!a || a->closing || !fn || !done || (o && o->closing)) return WR_ERR_INVAL;
  if (a->pending >= WR_STORE_ASYNC_QUEUE_MAX) return WR_ERR_LIMIT;
  job *j = wr_xcalloc(1, sizeof(*j));
  *j = (job){.fn = fn, .done = done, .arg = arg, .owner = o};
  a->pending++;
  if (o) wr_owner_hold(o);
  uv_mutex_lock(&a->mu);
  jl_push(&a->todo, j);
  uv_cond_signal(&a->cv);
  uv_mutex_unlock(&a->mu);
  return WR_OK;
}

int wr_store_async_submit(wr_store_async *a, wr_store_async_fn fn, wr_store_async_done done,
                          void *arg) {
  return submit(a, NULL, fn, done, arg);
}

int wr_store_async_owner_submit(wr_store_async *a, wr_owner *o, wr_store_async_fn fn,
                                wr_store_async_done done, void *arg) {
  return submit(a, o, fn, done, arg);
}

size_t wr_store_async_pending(const wr_store_async *a) { return a ? a->pending : 0; }

void wr_store_async_free(wr_store_async *a) {
  if (!a || a->closing) return;
  a->closing = 1;
  uv_mutex_lock(&a->mu);
  a->stop = 1;
  uv_cond_signal(&a->cv);
  uv_cond_broadcast(&a->call_cv); /* a job waiting for the loop gives up */
  uv_mutex_unlock(&a->mu);
  uv_thread_join(&a->thread);
  /* The thread is gone: the lists are ours without the lock; a call it
   * left behind was on its stack and is not run. */
  a->calls = NULL;
  for (job *j; (j = jl_pop(&a->done));) deliver(a, j, WR_OK);
  for (job *j; (j = jl_pop(&a->todo));) deliver(a, j, WR_ERR_INTERNAL);
  wr_store_close(a->store);
  a->store = NULL;
  uv_cond_destroy(&a->call_cv);
  uv_cond_destroy(&a->cv);
  uv_mutex_destroy(&a->mu);
  uv_close((uv_handle_t *)&a->wake, close_cb);
}

/* ---- audit rows nobody waits for ------------------------------------------------------ */

typedef struct audit_job {
  char *who, *actor, *account, *email, *action, *ttype, *target, *text;
  int rv;
  char errmsg[WR_STORE_ERRMSG_MAX];
} audit_job;

static char *dup_or_null(const char *s) { return s ? wr_xstrdup(s) : NULL; }

static void audit_run(wr_store *s, void *arg) {
  audit_job *j = arg;
  wr_user u;
  const char *account = j->account;
  if (j->email && wr_store_user_get_by_email(s, j->email, &u) == WR_OK) account = u.account_id;
  j->rv = wr_store_audit_append(s, j->actor, account, j->action, j->ttype, j->target, j->text);
  if (j->rv != WR_OK) snprintf(j->errmsg, sizeof(j->errmsg), "%s", wr_store_errmsg(s));
}

static void audit_free(audit_job *j) {
  char **fields[] = {&j->who, &j->actor, &j->account, &j->email, &j->action, &j->ttype, &j->target, &j->text};
  for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) free(*fields[i]);
  free(j);
}

static void audit_done(void *arg, int status) {
  audit_job *j = arg;
  if (status != WR_OK || j->rv != WR_OK)
    wr_warn("%s: writing the %s audit row failed: %s", j->who, j->action,
            wr_store_async_why(status, j->errmsg));
  audit_free(j);
}

void wr_store_async_audit(wr_store_async *a, wr_store *s, const char *who, const char *actor,
                          const char *account_id, const char *account_email, const char *action,
                          const char *target_type, const char *target_id, const char *detail_json) {
  audit_job *j = wr_xcalloc(1, sizeof(*j));
  *j = (audit_job){.who = wr_xstrdup(who), .actor = wr_xstrdup(actor), .account = dup_or_null(account_id),
                   .email = dup_or_null(account_email), .action = wr_xstrdup(action),
                   .ttype = wr_xstrdup(target_type), .target = dup_or_null(target_id),
                   .text = dup_or_null(detail_json)};
  if (!a) {
    audit_run(s, j);
    audit_done(j, WR_OK);
    return;
  }
  if (wr_store_async_submit(a, audit_run, audit_done, j) != WR_OK) {
    wr_warn("%s: the %s audit row was dropped: the store thread is busy", who, action);
    audit_free(j);
  }
}
