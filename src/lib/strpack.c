/* Copies of several strings in one allocation. See strpack.h. */
#include "lib/strpack.h"

#include <string.h>

#include "lib/mem.h"

char *wr_strpack(const wr_strcopy *items, size_t n) {
  size_t size = 0;
  for (size_t i = 0; i < n; i++)
    if (items[i].src) size += strlen(items[i].src) + 1;
  char *block = size ? wr_xmalloc(size) : NULL, *at = block;
  for (size_t i = 0; i < n; i++) {
    *items[i].dst = NULL;
    if (!items[i].src) continue;
    size_t len = strlen(items[i].src) + 1;
    memcpy(at, items[i].src, len);
    *items[i].dst = at;
    at += len;
  }
  return block;
}
