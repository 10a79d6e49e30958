#include "proto/metadata.h"

#include <string.h>

const char *wr_meta_find_last(const wr_meta *meta, size_t n, const char *key, size_t *val_len) {
  size_t klen = strlen(key);
  for (size_t i = n; i-- > 0;) {
    if (meta[i].key_len == klen && memcmp(meta[i].key, key, klen) == 0) {
      if (val_len) *val_len = meta[i].val_len;
      return meta[i].val;
    }
  }
  if (val_len) *val_len = 0;
  return NULL;
}

int wr_meta_equal(const wr_meta *a, size_t na, const wr_meta *b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++)
    if (a[i].key_len != b[i].key_len || memcmp(a[i].key, b[i].key, a[i].key_len) ||
        a[i].val_len != b[i].val_len || memcmp(a[i].val, b[i].val, a[i].val_len))
      return 0;
  return 1;
}
