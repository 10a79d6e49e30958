/* Key/value metadata pairs as they travel in ConnectRequest and
 * ConnectResponse (Cap'n Proto List(Metadata)). Strings are not owned by the
 * struct: when decoded they point into the message buffer; when encoding they
 * point at the caller's strings. Keys may repeat (one entry per header value). */
#ifndef WR_METADATA_H
#define WR_METADATA_H
#include <stddef.h>

typedef struct wr_meta {
  const char *key;
  size_t key_len;
  const char *val;
  size_t val_len;
} wr_meta;

/* The value of the last entry whose key equals |key| (cloudflared's
 * MetadataMap keeps the last duplicate), or NULL (then *val_len is 0). *val_len is optional. */
const char *wr_meta_find_last(const wr_meta *meta, size_t n, const char *key, size_t *val_len);
/* 1 if the lists |a| (|na| entries) and |b| hold the same keys and values
 * byte for byte, in the same order; else 0. Pure. */
int wr_meta_equal(const wr_meta *a, size_t na, const wr_meta *b, size_t nb);

#endif
