/* HTML escaping; see html.h. */
#include "lib/html.h"

#include <stdint.h>
#include <string.h>

#include "lib/err.h"

#define REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD */

/* Length of the valid UTF-8 sequence at |p| (at most |n| bytes), or 0 if
 * the byte there does not start one. Overlong forms, surrogates and code
 * points above U+10FFFF are invalid (RFC 3629). */
static size_t utf8_len(const unsigned char *p, size_t n) {
  unsigned char c = p[0];
  size_t len;
  uint32_t cp, min;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
  else return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

/* The replacement text of the ASCII byte |c|, or NULL to copy it. */
static const char *ascii_escape(unsigned char c) {
  switch (c) {
  case '&': return "&amp;";
  case '<': return "&lt;";
  case '>': return "&gt;";
  case '"': return "&quot;";
  case '\'': return "&#39;";
  case '\t': case '\n': case '\r': return NULL;
  default: return c < 0x20 || c == 0x7F ? REPLACEMENT : NULL;
  }
}

int wr_html_escape_n(wr_buf *b, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, run = 0; /* |run| bytes before |i| to copy as they are */
  int rv = WR_OK;
  while (i < n && rv == WR_OK) {
    size_t len = utf8_len(p + i, n - i);
    const char *rep = len == 0 ? REPLACEMENT : len == 1 ? ascii_escape(p[i]) : NULL;
    if (!rep) {
      i += len;
      run += len;
      continue;
    }
    if (run) rv = wr_buf_append(b, p + i - run, run);
    run = 0;
    if (rv == WR_OK) rv = wr_buf_append_str(b, rep);
    i++;
  }
  if (rv == WR_OK && run) rv = wr_buf_append(b, p + i - run, run);
  return rv;
}

int wr_html_escape(wr_buf *b, const char *s) { return s ? wr_html_escape_n(b, s, strlen(s)) : WR_OK; }

long wr_html_escape_to(char *out, size_t cap, const char *s) {
  wr_buf b;
  long rv = -1;
  if (!cap) return -1;
  out[0] = '\0';
  wr_buf_init(&b, cap - 1, NULL);
  if (wr_html_escape(&b, s) == WR_OK) {
    memcpy(out, b.data ? (const char *)b.data : "", b.len);
    out[b.len] = '\0';
    rv = (long)b.len;
  }
  wr_buf_free(&b);
  return rv;
}
