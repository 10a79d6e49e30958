/* An intrusive binary min-heap of timers: each element embeds a
 * wr_heap_node (its key and its place in the heap), so adding, moving and
 * removing one costs O(log n) and finding the earliest O(1), with no
 * allocation per element. The QUIC endpoint files every connection here
 * under its next expiry: a timer run then touches only the connections
 * that are due, not all of them.
 *
 * Not thread-safe; nodes are borrowed (the heap never frees them). */
#ifndef WR_LIB_MINHEAP_H
#define WR_LIB_MINHEAP_H
#include <stddef.h>
#include <stdint.h>

typedef struct wr_heap_node {
  uint64_t key;
  size_t pos; /* 1-based place in the heap; 0: not in it */
} wr_heap_node;

typedef struct wr_heap {
  wr_heap_node **v;
  size_t n, cap;
} wr_heap;

/* Makes room for |n| nodes in all, so that wr_heap_set never allocates
 * while at most |n| are in the heap. Returns 0, or -1 if out of memory
 * (the heap is unchanged). */
int wr_heap_reserve(wr_heap *h, size_t n);
/* Files |node| under |key|: inserts it, or moves it if already in. Returns
 * 0, or -1 if it was not in and no room could be allocated (then it stays
 * out). */
int wr_heap_set(wr_heap *h, wr_heap_node *node, uint64_t key);
/* Takes |node| out; a node not in the heap is left alone. */
void wr_heap_remove(wr_heap *h, wr_heap_node *node);
/* The node with the smallest key, or NULL when empty. */
static inline wr_heap_node *wr_heap_top(const wr_heap *h) { return h->n ? h->v[0] : NULL; }
/* Frees the heap's array (not the nodes); |h| is empty afterwards. */
void wr_heap_free(wr_heap *h);

#endif
