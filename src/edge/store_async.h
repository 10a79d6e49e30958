/* The store's worker thread: store calls that must not block the event
 * loop run here, on a second connection to the same SQLite file (WAL lets
 * a reader and a writer work side by side; the busy timeout covers two
 * writers).
 *
 * One thread, one wr_store, one FIFO of jobs. A job is fn(store, arg),
 * run on the worker with the worker's wr_store, then done(arg, status) on
 * the loop thread (through a uv_async_t): status is WR_OK when fn ran, or
 * WR_ERR_INTERNAL when the queue was torn down before fn ran. |arg| is
 * owned by the caller; fn and done must not touch loop objects and store
 * objects respectively (fn runs on the other thread). done is called for
 * every submitted job exactly once, also from wr_store_async_free.
 *
 * The queue is bounded (WR_STORE_ASYNC_QUEUE_MAX): submit refuses more
 * with WR_ERR_LIMIT, so a stalled store sheds work instead of growing.
 *
 * Test hook: WARREN_TEST_STORE_DELAY_MS (read once by wr_store_async_new)
 * makes the worker sleep that many milliseconds before every job, so
 * tests can show the loop serving while a store call is in flight. It is
 * for tests only; the loop thread's own store calls are not delayed. */
#ifndef WR_EDGE_STORE_ASYNC_H
#define WR_EDGE_STORE_ASYNC_H
#include <stddef.h>

#include <uv.h>

#include "edge/store.h"
#include "net/owner.h"

#define WR_STORE_ASYNC_QUEUE_MAX 4096

typedef struct wr_store_async wr_store_async;
typedef void (*wr_store_async_fn)(wr_store *s, void *arg);
typedef void (*wr_store_async_done)(void *arg, int status);

/* Opens the store at |path| (which must exist) for the worker and starts
 * the thread. Returns WR_OK, a wr_store_open error, or WR_ERR_IO (the
 * thread or the async handle could not be created), with |err| set. */
int wr_store_async_new(uv_loop_t *loop, const char *path, wr_store_async **out, char *err,
                       size_t errlen);
/* Queues a job. Returns WR_OK, WR_ERR_LIMIT (queue full) or WR_ERR_INVAL
 * (tearing down); on error done is never called. */
int wr_store_async_submit(wr_store_async *a, wr_store_async_fn fn, wr_store_async_done done,
                          void *arg);
/* For a failed job's log line in its done: why it failed. |errmsg| is the
 * store's message its fn kept (wr_store_errmsg), returned when fn ran
 * (|status| WR_OK); else "the store thread stopped". Returns |errmsg| or a
 * static string; any thread, no callbacks. */
const char *wr_store_async_why(int status, const char *errmsg);
/* From a job's fn only (the worker thread): runs fn(arg) on the loop
 * thread, between loop callbacks, and returns once it ran: for the small
 * part of a job that must read or change loop objects (the tunnel
 * server's live connections) in the middle of its store work. The worker
 * waits meanwhile; the loop never waits for the worker, so this cannot
 * deadlock. Returns WR_OK after fn ran, or WR_ERR_INTERNAL when the queue
 * is being torn down (fn did not run and never will). With |a| NULL (a
 * job run at once on the loop thread, for a caller without a store
 * thread) fn runs at once. */
int wr_store_async_on_loop(wr_store_async *a, void (*fn)(void *arg), void *arg);
/* Appends an audit row (wr_store_audit_append's fields; the strings are
 * copied, any of account_id, target_id and detail_json may be NULL) on
 * the store thread |a|, or at once on |s| when |a| is NULL; nobody waits
 * for it, and rows keep their order (the queue is FIFO). When
 * |account_email| is not NULL the row's account is that of the user with
 * that email, if there is one (else account_id). A failure is logged as
 * "WHO: writing the ACTION audit row failed: WHY", a full queue as "WHO:
 * the ACTION audit row was dropped: the store thread is busy". Loop
 * thread only. */
void wr_store_async_audit(wr_store_async *a, wr_store *s, const char *who, const char *actor,
                          const char *account_id, const char *account_email, const char *action,
                          const char *target_type, const char *target_id, const char *detail_json);

/* ---- owners of pending jobs ----------------------------------------------------------
 *
 * An object whose jobs' done callbacks use it (the login pages, the
 * dashboard, the metrics server, the REST API) must outlive those
 * callbacks. It embeds a wr_owner (net/owner.h), submits through
 * wr_store_async_owner_submit, and at its own free calls wr_owner_close
 * instead of freeing itself: its release then runs once, on the loop
 * thread, at once when nothing is pending, else right after the done
 * callback of the last pending job (from a loop callback or from
 * wr_store_async_free). Other work the owner waits for (a worker-pool job,
 * a handle's close callback) is counted with wr_owner_hold and _drop. */

/* wr_store_async_submit for |o|: |o| holds the job until its done callback
 * returned. WR_ERR_INVAL also once |o| is closing. Loop thread, also from
 * a done callback. */
int wr_store_async_owner_submit(wr_store_async *a, wr_owner *o, wr_store_async_fn fn,
                                wr_store_async_done done, void *arg);

/* Jobs submitted and not yet delivered to their done callback. */
size_t wr_store_async_pending(const wr_store_async *a);
/* Stops the worker after its current job, joins it, calls done for every
 * job not yet delivered (WR_OK if it ran, else WR_ERR_INTERNAL), closes
 * the worker's store and frees |a| once the loop has closed the handle. */
void wr_store_async_free(wr_store_async *a);
#endif
