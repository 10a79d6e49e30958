/* See xasprintf.h. */
#include "lib/xasprintf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/mem.h"

char *wr_xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) abort();
  char *s = wr_xmalloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}
