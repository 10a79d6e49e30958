/* A lifecycle owner: see owner.h. */
#include "net/owner.h"

#include <assert.h>

void wr_owner_init(wr_owner *o, void (*release)(wr_owner *o)) { *o = (wr_owner){.release = release}; }

void wr_owner_hold(wr_owner *o) {
  assert(!o->closing || o->pending > 0); /* released already: too late */
  o->pending++;
}

void wr_owner_drop(wr_owner *o) {
  assert(o->pending > 0); /* one drop per hold */
  if (--o->pending == 0 && o->closing) o->release(o);
}

void wr_owner_close(wr_owner *o) {
  if (o->closing) return;
  o->closing = 1;
  if (!o->pending) o->release(o);
}

void wr_owner_timer_init(wr_owner *o, uv_loop_t *loop, uv_timer_t *t, void *data) {
  uv_timer_init(loop, t);
  t->data = data;
  wr_owner_hold(o);
}

void wr_owner_handle_closed(uv_handle_t *h) { wr_owner_drop(h->data); }

void wr_owner_close_handle(wr_owner *o, uv_handle_t *h) {
  h->data = o;
  uv_close(h, wr_owner_handle_closed);
}
