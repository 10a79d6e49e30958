#include "lib/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"

void wr_buf_init(wr_buf *b, size_t max, const wr_mem *mem) {
  b->data = NULL;
  b->len = b->cap = 0;
  b->max = max;
  b->mem = mem;
}

void wr_buf_free(wr_buf *b) {
  wr_free(b->mem, b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void wr_buf_reset(wr_buf *b) { b->len = 0; }

int wr_buf_reserve(wr_buf *b, size_t extra) {
  if (extra > b->max || b->len > b->max - extra) return WR_ERR_LIMIT;
  size_t need = b->len + extra + 1; /* room for a terminating NUL */
  if (need <= b->cap) return WR_OK;
  size_t ncap = b->cap ? b->cap : 64;
  while (ncap < need) ncap *= 2;
  if (ncap > b->max + 1) ncap = b->max + 1;
  uint8_t *p = wr_realloc(b->mem, b->data, ncap);
  if (!p) return WR_ERR_NOMEM;
  b->data = p;
  b->cap = ncap;
  return WR_OK;
}

int wr_buf_append(wr_buf *b, const void *data, size_t len) {
  int rv = wr_buf_reserve(b, len);
  if (rv != 0) return rv;
  if (len) memcpy(b->data + b->len, data, len);
  b->len += len;
  return WR_OK;
}

int wr_buf_append_str(wr_buf *b, const char *s) { return wr_buf_append(b, s, strlen(s)); }

int wr_buf_printf(wr_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return WR_ERR_INVAL;
  int rv = wr_buf_reserve(b, (size_t)n);
  if (rv != 0) return rv;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return WR_OK;
}

void wr_buf_consume(wr_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

const char *wr_buf_cstr(wr_buf *b) {
  if (wr_buf_reserve(b, 0) != 0 || !b->data) return "";
  b->data[b->len] = '\0';
  return (const char *)b->data;
}
