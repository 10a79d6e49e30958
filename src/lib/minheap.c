/* See minheap.h. Positions are stored 1-based so that a zeroed node reads
 * as "not in a heap". */
#include "lib/minheap.h"

#include <stdlib.h>

static void place(wr_heap *h, size_t i, wr_heap_node *node) {
  h->v[i] = node;
  node->pos = i + 1;
}

static void sift_up(wr_heap *h, size_t i) {
  wr_heap_node *node = h->v[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (h->v[parent]->key <= node->key) break;
    place(h, i, h->v[parent]);
    i = parent;
  }
  place(h, i, node);
}

static void sift_down(wr_heap *h, size_t i) {
  wr_heap_node *node = h->v[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= h->n) break;
    if (child + 1 < h->n && h->v[child + 1]->key < h->v[child]->key) child++;
    if (node->key <= h->v[child]->key) break;
    place(h, i, h->v[child]);
    i = child;
  }
  place(h, i, node);
}

int wr_heap_reserve(wr_heap *h, size_t n) {
  if (n <= h->cap) return 0;
  size_t cap = h->cap ? h->cap : 16;
  while (cap < n) cap *= 2;
  wr_heap_node **v = realloc(h->v, cap * sizeof(*v));
  if (!v) return -1;
  h->v = v;
  h->cap = cap;
  return 0;
}

int wr_heap_set(wr_heap *h, wr_heap_node *node, uint64_t key) {
  if (node->pos) {
    uint64_t old = node->key;
    node->key = key;
    if (key < old) sift_up(h, node->pos - 1);
    else if (key > old) sift_down(h, node->pos - 1);
    return 0;
  }
  if (wr_heap_reserve(h, h->n + 1) != 0) return -1;
  node->key = key;
  place(h, h->n++, node);
  sift_up(h, h->n - 1);
  return 0;
}

void wr_heap_remove(wr_heap *h, wr_heap_node *node) {
  if (!node->pos) return;
  size_t i = node->pos - 1;
  wr_heap_node *last = h->v[--h->n];
  node->pos = 0;
  if (i == h->n) return;
  place(h, i, last);
  sift_up(h, i);
  sift_down(h, last->pos - 1);
}

void wr_heap_free(wr_heap *h) {
  free(h->v);
  h->v = NULL;
  h->n = h->cap = 0;
}
