/* An index over a fixed array of slots keyed by short strings, with the
 * least recently used slot given up for a new key: what the edge's bounded
 * per-tunnel tables (the traffic inspector's rings, the tunnel counters)
 * need, so that a request finds its tunnel's slot in O(1) however many
 * tunnels the visitors spread over, and a new tunnel takes a slot in O(1).
 *
 * The keys live in the caller's own array: slot i's key is the
 * NUL-terminated string at keys + i * stride (a char array member of the
 * caller's struct); its length must stay below that array's size, since
 * the hash is of the key given and the comparison of the key stored. The
 * index keeps a hash per slot, the bucket chains and the LRU order, in two
 * arrays allocated once at init. Hashing is FNV-1a
 * (lib/hash.h): the keys here are ids the edge issued, not strings a
 * visitor chooses.
 *
 * Slots are handed out unused ones first, in order 0, 1, 2, ..., so the
 * used slots are always 0 .. wr_lru_index_used() - 1.
 *
 * Not thread-safe; no I/O; callable from anywhere. */
#ifndef WR_LIB_LRU_INDEX_H
#define WR_LIB_LRU_INDEX_H
#include <stddef.h>
#include <stdint.h>

/* A slot's links, stored as slot + 1 (0: none). */
typedef struct wr_lru_slot {
  uint32_t chain; /* the next slot in its bucket */
  uint32_t hash;  /* of its key */
  uint32_t prev, next; /* the LRU list, least recent first */
} wr_lru_slot;

typedef struct wr_lru_index {
  const char *keys; /* slot i's key: keys + i * stride */
  size_t stride;
  uint32_t nslots, used, mask;
  uint32_t *bucket;  /* mask + 1 chains; each entry: slot + 1, 0 ends */
  wr_lru_slot *slot; /* nslots */
  uint32_t head, tail; /* +1; 0: none */
} wr_lru_index;

#define WR_LRU_NONE UINT32_MAX

/* Sets up |x| over |nslots| (at least 1) slots of |stride| bytes from
 * |keys|, all unused. Aborts on out-of-memory, as the edge does elsewhere. */
void wr_lru_index_init(wr_lru_index *x, const void *keys, size_t stride, uint32_t nslots);
/* Frees the index's arrays (not the caller's slots). */
void wr_lru_index_free(wr_lru_index *x);
/* The slot holding |key|, or WR_LRU_NONE. Does not change the LRU order. */
uint32_t wr_lru_index_find(const wr_lru_index *x, const char *key);
/* The slot of |key|, now the most recently used: its own, or (*fresh set
 * to 1) the least recently used one (an unused one first), unlinked from
 * its old key and indexed under |key|. For a fresh slot the caller must
 * empty it and write |key| as its key before the next call here. */
uint32_t wr_lru_index_get(wr_lru_index *x, const char *key, int *fresh);
/* How many slots were ever handed out: slots 0 .. that - 1. */
static inline uint32_t wr_lru_index_used(const wr_lru_index *x) { return x->used; }

#endif
