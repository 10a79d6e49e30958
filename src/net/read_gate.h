/* Reading a libuv stream exactly while someone wants its bytes.
 *
 * A connection that applies backpressure (a full write queue, a full
 * input buffer, a paused peer) recomputes after each event whether it
 * wants to read, and starts or stops reading to match. libuv keeps no
 * flag a caller can ask, so the connection keeps one (1: uv_read_start in
 * effect) and passes it in; wr_read_gate returns its new value.
 *
 * Loop thread only; allocates nothing. Callable from callbacks, including
 * |s|'s own read callback. */
#ifndef WR_NET_READ_GATE_H
#define WR_NET_READ_GATE_H
#include <uv.h>

/* Starts reading |s| (with |alloc_cb|, |read_cb|) when |want| and not
 * |reading|, stops it when |reading| and not |want|, else does nothing.
 * Returns 1 when |s| reads afterwards, else 0: so a 0 while |want| means
 * uv_read_start failed (the stream is closing or not connected), which
 * the caller may treat as the end of the connection. */
int wr_read_gate(uv_stream_t *s, int reading, int want, uv_alloc_cb alloc_cb, uv_read_cb read_cb);

#endif
