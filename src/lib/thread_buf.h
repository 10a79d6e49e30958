/* Scratch buffers lent per thread. Some buffers are large but only used
 * for a moment: a socket read that is parsed before the callback returns,
 * or a batch of QUIC packets written and handed to the kernel in one call.
 * Every connection or endpoint of a thread then shares one buffer of each
 * kind instead of holding its own, and an idle one holds none (50 pooled
 * origin connections used to keep 3.2 MB of read buffers; each QUIC
 * endpoint, one per connection on the connector, 576 KB).
 *
 * A buffer is lent to one user at a time. A user that starts while it is
 * lent (a call nested inside the first user's callbacks) gets NULL and uses
 * a buffer of its own. A thread's buffers are freed when the thread exits
 * (the main thread's stay until the process ends). Thread-safe: each thread
 * has its own; a buffer must be given back on the thread that took it. May
 * be called from any callback. */
#ifndef WR_LIB_THREAD_BUF_H
#define WR_LIB_THREAD_BUF_H
#include <stddef.h>
#include <stdint.h>

typedef enum wr_tbuf_kind {
  WR_TBUF_CONN_READ,  /* net/conn.c: a TCP or TLS read */
  WR_TBUF_QUIC_READ,  /* net/quic_endpoint.c: one UDP datagram */
  WR_TBUF_QUIC_WRITE, /* net/quic_endpoint.c: one connection's sendmmsg batch */
  WR_TBUF_KINDS
} wr_tbuf_kind;

/* Lends this thread's buffer of |kind|, allocating |size| bytes the first
 * time (every call for one kind must pass the same size). Returns NULL
 * when that buffer is lent already or cannot be allocated; the caller then
 * uses its own. */
uint8_t *wr_tbuf_take(wr_tbuf_kind kind, size_t size);

/* Gives back |b| if it is this thread's buffer of |kind|; any other pointer
 * (the caller's own buffer, NULL) is ignored, so a caller gives back
 * whatever it used. */
void wr_tbuf_give(wr_tbuf_kind kind, const void *b);

#endif
