/* HTML escaping for server-rendered pages (the edge's dashboard and
 * inspector). Every byte of text that did not come from the page's own
 * source (names, hostnames, request paths and headers, bodies) goes
 * through one of these before it reaches a page.
 *
 * The output is safe in element text and in quoted attribute values
 * (both " and ' are escaped); it is not safe in unquoted attributes,
 * inside <script> or <style>, or in URLs (a "javascript:" link survives
 * escaping: build hrefs from checked ids only).
 *
 * Bytes that are not text are made visible instead of passed on: NUL and
 * the C0 controls other than tab, LF and CR, and DEL, become U+FFFD; bytes
 * of invalid UTF-8 do too (one replacement per bad byte). A page therefore
 * stays valid UTF-8 whatever a visitor sent.
 *
 * No I/O, no allocation besides the wr_buf's; the wr_buf's maximum bounds
 * the output (an append past it fails and leaves the buffer as it was
 * before that character). */
#ifndef WR_LIB_HTML_H
#define WR_LIB_HTML_H
#include <stddef.h>

#include "lib/buf.h"

/* Appends |n| bytes of |s| escaped. Returns WR_OK, or WR_ERR_LIMIT /
 * WR_ERR_NOMEM from the buffer (what fit is kept). */
int wr_html_escape_n(wr_buf *b, const char *s, size_t n);
/* The same for the C string |s| (NULL appends nothing). */
int wr_html_escape(wr_buf *b, const char *s);
/* Escapes |s| into |out| (|cap| bytes, NUL-terminated). Returns the length
 * written, or -1 when it did not fit (|out| then holds "" ). */
long wr_html_escape_to(char *out, size_t cap, const char *s);

#endif
