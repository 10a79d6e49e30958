/* A formatted string in a new allocation: the "measure, wr_xmalloc,
 * snprintf" steps that building a path or URL takes, in one call. */
#ifndef WR_LIB_XASPRINTF_H
#define WR_LIB_XASPRINTF_H

/* The printf-formatted string in a new NUL-terminated allocation, sized to
 * fit; the caller frees it. Aborts on out-of-memory like wr_xmalloc
 * (lib/mem.h), so it never returns NULL (an invalid format, the only
 * vsnprintf failure, aborts too). Touches no shared state: callable from
 * any thread and from callbacks. */
char *wr_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
