/* Copies of several strings in one allocation.
 *
 * An object that keeps the strings of its options (a data directory, a
 * host name, an email address) copies them with one call and frees them
 * with one free(): the copies lie back to back in a single block, so the
 * constructor has no strdup per field and the destructor no free per
 * field.
 *
 * The caller's side: each field set here points INTO the block. It is
 * never freed or reassigned on its own (free only the block); editing a
 * copy in place within its length (trimming a trailing dot) is fine.
 *
 * Memory: out-of-memory aborts (the policy outside the codecs, mem.h).
 * Touches no shared state: callable from any thread and from callbacks. */
#ifndef WR_LIB_STRPACK_H
#define WR_LIB_STRPACK_H
#include <stddef.h>

/* One string to copy and where its copy's address goes. */
typedef struct wr_strcopy {
  const char *src; /* NULL: *dst is set to NULL */
  char **dst;
} wr_strcopy;

/* Copies the src of each of the |n| |items| into one new block and points
 * its *dst at the copy (NUL-terminated, writable, inside the block; NULL
 * for a NULL src). Returns the block, which the caller owns and releases
 * with free() once no copy is used any more: NULL when every src is NULL.
 * Never fails (aborts on out-of-memory). */
char *wr_strpack(const wr_strcopy *items, size_t n);

#endif
