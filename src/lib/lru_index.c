/* See lru_index.h. Links are stored as slot + 1 so that calloc's zeros
 * mean "none". */
#include "lib/lru_index.h"

#include <stdlib.h>
#include <string.h>

#include "lib/hash.h"
#include "lib/mem.h"

static const char *key_of(const wr_lru_index *x, uint32_t slot) {
  return x->keys + (size_t)slot * x->stride;
}

static void lru_unlink(wr_lru_index *x, uint32_t s) {
  uint32_t p = x->prev[s], n = x->next[s];
  if (p) x->next[p - 1] = n; else x->head = n;
  if (n) x->prev[n - 1] = p; else x->tail = p;
  x->prev[s] = x->next[s] = 0;
}

static void lru_append(wr_lru_index *x, uint32_t s) {
  x->prev[s] = x->tail;
  x->next[s] = 0;
  if (x->tail) x->next[x->tail - 1] = s + 1; else x->head = s + 1;
  x->tail = s + 1;
}

void wr_lru_index_init(wr_lru_index *x, const void *keys, size_t stride, uint32_t nslots) {
  memset(x, 0, sizeof(*x));
  x->keys = keys;
  x->stride = stride;
  x->nslots = nslots;
  uint32_t nb = 8;
  while (nb < 2 * nslots) nb *= 2;
  x->mask = nb - 1;
  x->bucket = wr_xcalloc(nb, sizeof(uint32_t));
  x->chain = wr_xcalloc(nslots, sizeof(uint32_t));
  x->hash = wr_xcalloc(nslots, sizeof(uint32_t));
  x->prev = wr_xcalloc(nslots, sizeof(uint32_t));
  x->next = wr_xcalloc(nslots, sizeof(uint32_t));
}

void wr_lru_index_free(wr_lru_index *x) {
  free(x->bucket);
  free(x->chain);
  free(x->hash);
  free(x->prev);
  free(x->next);
  memset(x, 0, sizeof(*x));
}

uint32_t wr_lru_index_find(const wr_lru_index *x, const char *key) {
  uint32_t h = wr_hash_str(key);
  for (uint32_t e = x->bucket[h & x->mask]; e; e = x->chain[e - 1])
    if (x->hash[e - 1] == h && strcmp(key_of(x, e - 1), key) == 0) return e - 1;
  return WR_LRU_NONE;
}

uint32_t wr_lru_index_get(wr_lru_index *x, const char *key, int *fresh) {
  uint32_t s = wr_lru_index_find(x, key);
  *fresh = s == WR_LRU_NONE;
  if (*fresh) {
    if (x->used < x->nslots) {
      s = x->used++;
    } else { /* the least recent, out of its old key's chain */
      s = x->head - 1;
      uint32_t *pp = &x->bucket[x->hash[s] & x->mask];
      while (*pp != s + 1) pp = &x->chain[*pp - 1];
      *pp = x->chain[s];
      lru_unlink(x, s);
    }
    x->hash[s] = wr_hash_str(key);
    x->chain[s] = x->bucket[x->hash[s] & x->mask];
    x->bucket[x->hash[s] & x->mask] = s + 1;
    lru_append(x, s);
  } else if (x->tail != s + 1) {
    lru_unlink(x, s);
    lru_append(x, s);
  }
  return s;
}
