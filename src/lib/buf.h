/* A growable byte buffer with a hard maximum (curl's dynbuf "toobig"):
 * appending past |max| fails with WR_ERR_LIMIT instead of growing.
 *
 * Ownership: the buffer owns |data| (allocated through |mem|, NULL until
 * the first append); callers may read data[0..len) and may move len down
 * themselves, but never free |data| or keep a pointer into it across an
 * append (it may move). Capacity grows by doubling up to max + 1 bytes
 * (one byte is kept for the NUL of wr_buf_cstr) and never shrinks until
 * wr_buf_free.
 * Failure: a failed call leaves the contents exactly as they were (no
 * partial append). WR_ERR_NOMEM is returned when the allocator fails (the
 * default one is libc's, which returns NULL; nothing here aborts), so codecs
 * built on a wr_buf can be tested with a failing allocator.
 * Threads and callbacks: no locking, no callbacks, no I/O; a buffer is
 * used by one thread at a time and every call may be made from anywhere,
 * including the callbacks of whatever fills or drains it. */
#ifndef WR_BUF_H
#define WR_BUF_H
#include <stddef.h>
#include <stdint.h>

#include "lib/mem.h"

typedef struct wr_buf {
  uint8_t *data; /* owned; NULL until something is appended */
  size_t len;    /* bytes held */
  size_t cap;    /* bytes allocated (at most max + 1) */
  size_t max;    /* the most |len| may reach */
  const wr_mem *mem;
} wr_buf;

/* An empty buffer that may hold up to |max| bytes, allocating through
 * |mem| (NULL: the default allocator). Allocates nothing; cannot fail. */
void wr_buf_init(wr_buf *b, size_t max, const wr_mem *mem);
/* Frees the data and leaves an empty buffer with the same max and
 * allocator (usable again). Idempotent. */
void wr_buf_free(wr_buf *b);
/* Empties the buffer, keeping its allocation for reuse. */
void wr_buf_reset(wr_buf *b);
/* Makes room for |extra| more bytes (plus the NUL). Returns WR_OK,
 * WR_ERR_LIMIT (len + extra would pass max; nothing changes) or
 * WR_ERR_NOMEM (nothing changes). */
int wr_buf_reserve(wr_buf *b, size_t extra);
/* Appends |len| bytes from |data| (which must not point into |b|, since
 * the buffer may move). Returns WR_OK, WR_ERR_LIMIT or WR_ERR_NOMEM;
 * on failure nothing is appended. */
int wr_buf_append(wr_buf *b, const void *data, size_t len);
/* wr_buf_append of the C string |s| without its NUL. */
int wr_buf_append_str(wr_buf *b, const char *s);
/* Appends printf output. Returns WR_OK, WR_ERR_LIMIT, WR_ERR_NOMEM, or
 * WR_ERR_INVAL for a format vsnprintf refuses; on failure nothing is
 * appended. */
int wr_buf_printf(wr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops |n| bytes from the front (all of them if n >= len) by moving the
 * rest down: O(len). Cannot fail. */
void wr_buf_consume(wr_buf *b, size_t n);
/* The contents as a C string: writes a NUL at data[len] (not counted in
 * len) and returns data, valid until the next call that changes |b|.
 * Returns "" (a static string) for a buffer that never held anything or
 * whose NUL could not be allocated (out of memory). */
const char *wr_buf_cstr(wr_buf *b);

#endif
