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
