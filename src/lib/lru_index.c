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
  uint32_t p = x->slot[s].prev, n = x->slot[s].next;
  if (p) x->slot[p - 1].next = n; else x->head = n;
  if (n) x->slot[n - 1].prev = p; else x->tail = p;
  x->slot[s].prev = x->slot[s].next = 0;
}

static void lru_append(wr_lru_index *x, uint32_t s) {
  x->slot[s].prev = x->tail;
  x->slot[s].next = 0;
  if (x->tail) x->slot[x->tail - 1].next = s + 1; else x->head = s + 1;
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
  x->slot = wr_xcalloc(nslots, sizeof(wr_lru_slot));
}

void wr_lru_index_free(wr_lru_index *x) {
  free(x->bucket);
  free(x->slot);
  memset(x, 0, sizeof(*x));
}

static uint32_t find_hashed(const wr_lru_index *x, const char *key, uint32_t h) {
  for (uint32_t e = x->bucket[h & x->mask]; e; e = x->slot[e - 1].chain)
    if (x->slot[e - 1].hash == h && strcmp(key_of(x, e - 1), key) == 0) return e - 1;
  return WR_LRU_NONE;
}

uint32_t wr_lru_index_find(const wr_lru_index *x, const char *key) {
  return find_hashed(x, key, wr_hash_str(key));
}

uint32_t wr_lru_index_get(wr_lru_index *x, const char *key, int *fresh) {
  uint32_t h = wr_hash_str(key), s = find_hashed(x, key, h);
  *fresh = s == WR_LRU_NONE;
  if (*fresh) {
    if (x->used < x->nslots) {
      s = x->used++;
    } else { /* the least recent, out of its old key's chain */
      s = x->head - 1;
      uint32_t *pp = &x->bucket[x->slot[s].hash & x->mask];
      while (*pp != s + 1) pp = &x->slot[*pp - 1].chain;
      *pp = x->slot[s].chain;
      lru_unlink(x, s);
    }
    uint32_t *b = &x->bucket[h & x->mask];
    x->slot[s].hash = h;
    x->slot[s].chain = *b;
    *b = s + 1;
    lru_append(x, s);
  } else if (x->tail != s + 1) {
    lru_unlink(x, s);
    lru_append(x, s);
  }
  return s;
}
