/* nghttp3 over our QUIC streams: the edge's HTTP/3 visitor front and the
 * h3client test tool both move nghttp3's output into wr_quic streams this
 * way. */
#ifndef WR_NET_H3QUIC_H
#define WR_NET_H3QUIC_H

#include <nghttp3/nghttp3.h>

#include "net/quic.h"

/* Moves one batch of what |h3| has to send (nghttp3_conn_writev_stream)
 * into the QUIC stream it names on |q|, and tells |h3| how far it got. The
 * QUIC layer copies what it takes and keeps it until acked, so the bytes
 * taken count as both written and acked for nghttp3. A stream whose send
 * queue is full (WR_AGAIN) is blocked until on_stream_writable; one the
 * QUIC layer refused otherwise has its write side shut down. No allocation
 * of its own; nothing of |h3| or |q| is kept. Callable from |q|'s
 * callbacks, not from inside an nghttp3 call on |h3| (its callbacks
 * included: nghttp3 is not reentrant). Returns 1 when a batch was moved
 * (call again), 0 when |h3| has nothing to send, or nghttp3's negative
 * error code (a connection error: |h3| is unusable). */
int wr_h3_quic_write_batch(nghttp3_conn *h3, wr_quic_conn *q);

#endif
