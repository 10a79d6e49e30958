/* A lifecycle owner: an object that waits for its libuv handles' close
 * callbacks, worker-pool jobs or store jobs before it frees itself.
 *
 * The object embeds a wr_owner, counts each piece of outstanding work with
 * wr_owner_hold (a handle it initialised, a job it queued) and ends it
 * with wr_owner_drop (from the close callback, the job's done callback).
 * Where it would free itself it calls wr_owner_close instead: |release|
 * then runs on the loop thread as soon as the owner is closing and nothing
 * is outstanding (at once when nothing is). |release| is the object's own
 * free, or a check of what else it waits for.
 *
 * The caller's side of the contract: one drop per hold, never more (checked
 * by assert). A hold while closing is allowed only while another hold is
 * still out (so release has not run yet); release runs exactly once as long
 * as nothing holds after it.
 *
 * Handles: wr_owner_close_handle closes a held handle and drops its hold
 * from the close callback (it points the handle's ->data at the owner:
 * after uv_close only the close callback reads it; a stream's cancelled
 * write callbacks must get their object from the request, not the
 * handle). wr_owner_handle_closed is that close callback, for a handle
 * whose ->data is the owner.
 *
 * Loop thread only; nothing here fails or allocates. The struct's fields
 * are the owner's to read (e.g. pending > 1: something besides X is still
 * open), never to write. Cf. libuv's uv_close + close_cb (src/unix/core.c)
 * and nginx's ngx_pool_cleanup_add. */
#ifndef WR_NET_OWNER_H
#define WR_NET_OWNER_H
#include <stddef.h>

#include <uv.h>

typedef struct wr_owner {
  size_t pending; /* holds not yet dropped */
  int closing;    /* wr_owner_close ran */
  void (*release)(struct wr_owner *o);
} wr_owner;

/* The object of type |type| that embeds the owner |o| as |member|: for a
 * release callback. */
#define WR_OWNER_OBJ(o, type, member) ((type *)(void *)((char *)(o) - offsetof(type, member)))

/* Sets |o| up with |release| (not NULL), nothing pending, not closing.
 * No callbacks run. */
void wr_owner_init(wr_owner *o, void (*release)(wr_owner *o));
/* Counts one more piece of outstanding work. Callable from callbacks. */
void wr_owner_hold(wr_owner *o);
/* Ends a hold: when |o| is closing and nothing is outstanding any more,
 * release runs (and may free |o|: do not touch the object after). Callable
 * from callbacks (last, when release frees what they use). */
void wr_owner_drop(wr_owner *o);
/* The object is going away: release runs once nothing is outstanding
 * (here already when nothing is; then the object may be gone on return).
 * A second call does nothing. Callable from callbacks, also from the done
 * callback of a job |o| holds (it counts until that callback dropped it). */
void wr_owner_close(wr_owner *o);
/* uv_timer_init(|loop|, |t|) (which cannot fail), t->data = |data| (for
 * the timer's callbacks), and a hold of |o| on the timer, which
 * wr_owner_close_handle ends. No callbacks run. */
void wr_owner_timer_init(wr_owner *o, uv_loop_t *loop, uv_timer_t *t, void *data);
/* uv_close(|h|) for a handle |o| holds: sets h->data to |o|, and the close
 * callback drops the hold (release may run there). |h| must be open and
 * not closing. Callable from callbacks, including |h|'s own. */
void wr_owner_close_handle(wr_owner *o, uv_handle_t *h);
/* The close callback of wr_owner_close_handle: wr_owner_drop(h->data).
 * For a uv_close of one's own when h->data is the owner already. */
void wr_owner_handle_closed(uv_handle_t *h);
#endif
