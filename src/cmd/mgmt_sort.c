/* Go's sort.Slice (pattern-defeating quicksort, Go 1.19 to 1.21, the
 * version cloudflared 2023.7.3 is built with), ported so that `tunnel list
 * --sort-by` and `tunnel info --sort-by` order equal keys exactly as
 * cloudflared does: sort.Slice is not stable, and ties are common (every
 * live tunnel has the same deletedAt, many have the same number of
 * connections). Deterministic: its only "randomness" is an xorshift seeded
 * with the length. See mgmt_int.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/mgmt_int.h"
#include "lib/mem.h"

typedef struct sorter {
  uint8_t *base;
  size_t size;
  uint8_t *tmp;
  wr__mg_less_fn less;
  void *ctx;
} sorter;

static int less(sorter *d, long i, long j) {
  return d->less(d->ctx, d->base + (size_t)i * d->size, d->base + (size_t)j * d->size);
}

static void swap(sorter *d, long i, long j) {
  if (i == j) return;
  uint8_t *a = d->base + (size_t)i * d->size, *b = d->base + (size_t)j * d->size;
  memcpy(d->tmp, a, d->size);
  memcpy(a, b, d->size);
  memcpy(b, d->tmp, d->size);
}

enum { UNKNOWN_HINT, INCREASING_HINT, DECREASING_HINT };

static int bits_len(unsigned long x) {
  int n = 0;
  while (x) n++, x >>= 1;
  return n;
}

static void insertion_sort(sorter *d, long a, long b) {
  for (long i = a + 1; i < b; i++)
    for (long j = i; j > a && less(d, j, j - 1); j--) swap(d, j, j - 1);
}

static void sift_down(sorter *d, long lo, long hi, long first) {
  long root = lo;
  for (;;) {
    long child = 2 * root + 1;
    if (child >= hi) break;
    if (child + 1 < hi && less(d, first + child, first + child + 1)) child++;
    if (!less(d, first + root, first + child)) return;
    swap(d, first + root, first + child);
    root = child;
  }
}

static void heap_sort(sorter *d, long a, long b) {
  long first = a, lo = 0, hi = b - a;
  for (long i = (hi - 1) / 2; i >= 0; i--) sift_down(d, i, hi, first);
  for (long i = hi - 1; i >= 0; i--) {
    swap(d, first, first + i);
    sift_down(d, lo, i, first);
  }
}

static long partition(sorter *d, long a, long b, long pivot, int *already) {
  swap(d, a, pivot);
  long i = a + 1, j = b - 1;
  while (i <= j && less(d, i, a)) i++;
  while (i <= j && !less(d, j, a)) j--;
  if (i > j) {
    swap(d, j, a);
    *already = 1;
    return j;
  }
  swap(d, i, j);
  i++;
  j--;
  for (;;) {
    while (i <= j && less(d, i, a)) i++;
    while (i <= j && !less(d, j, a)) j--;
    if (i > j) break;
    swap(d, i, j);
    i++;
    j--;
  }
  swap(d, j, a);
  *already = 0;
  return j;
}

static long partition_equal(sorter *d, long a, long b, long pivot) {
  swap(d, a, pivot);
  long i = a + 1, j = b - 1;
  for (;;) {
    while (i <= j && !less(d, a, i)) i++;
    while (i <= j && less(d, a, j)) j--;
    if (i > j) break;
    swap(d, i, j);
    i++;
    j--;
  }
  return i;
}

static int partial_insertion_sort(sorter *d, long a, long b) {
  const int max_steps = 5;
  const long shortest_shifting = 50;
  long i = a + 1;
  for (int step = 0; step < max_steps; step++) {
    while (i < b && !less(d, i, i - 1)) i++;
    if (i == b) return 1;
    if (b - a < shortest_shifting) return 0;
    swap(d, i, i - 1);
    if (i - a >= 2)
      for (long j = i - 1; j >= 1; j--) {
        if (!less(d, j, j - 1)) break;
        swap(d, j, j - 1);
      }
    if (b - i >= 2)
      for (long j = i + 1; j < b; j++) {
        if (!less(d, j, j - 1)) break;
        swap(d, j, j - 1);
      }
  }
  return 0;
}

static void break_patterns(sorter *d, long a, long b) {
  long length = b - a;
  if (length >= 8) {
    uint64_t random = (uint64_t)length;
    unsigned long modulus = 1ul << bits_len((unsigned long)length);
    for (long idx = a + (length / 4) * 2 - 1; idx <= a + (length / 4) * 2 + 1; idx++) {
      random ^= random << 13;
      random ^= random >> 17;
      random ^= random << 5;
      long other = (long)((unsigned long)random & (modulus - 1));
      if (other >= length) other -= length;
      swap(d, idx, a + other);
    }
  }
}

static void order2(sorter *d, long *a, long *b, int *swaps) {
  if (less(d, *b, *a)) {
    long t = *a;
    *a = *b;
    *b = t;
    (*swaps)++;
  }
}

static long median(sorter *d, long a, long b, long c, int *swaps) {
  order2(d, &a, &b, swaps);
  order2(d, &b, &c, swaps);
  order2(d, &a, &b, swaps);
  return b;
}

static long median_adjacent(sorter *d, long a, int *swaps) { return median(d, a - 1, a, a + 1, swaps); }

static long choose_pivot(sorter *d, long a, long b, int *hint) {
  const long shortest_ninther = 50;
  const int max_swaps = 4 * 3;
  long l = b - a;
  int swaps = 0;
  long i = a + l / 4 * 1, j = a + l / 4 * 2, k = a + l / 4 * 3;
  if (l >= 8) {
    if (l >= shortest_ninther) {
      i = median_adjacent(d, i, &swaps);
      j = median_adjacent(d, j, &swaps);
      k = median_adjacent(d, k, &swaps);
    }
    j = median(d, i, j, k, &swaps);
  }
  *hint = swaps == 0 ? INCREASING_HINT : swaps == max_swaps ? DECREASING_HINT : UNKNOWN_HINT;
  return j;
}

static void reverse_range(sorter *d, long a, long b) {
  for (long i = a, j = b - 1; i < j; i++, j--) swap(d, i, j);
}

static void pdqsort(sorter *d, long a, long b, int limit) {
  const long max_insertion = 12;
  int was_balanced = 1, was_partitioned = 1;
  for (;;) {
    long length = b - a;
    if (length <= max_insertion) {
      insertion_sort(d, a, b);
      return;
    }
    if (limit == 0) {
      heap_sort(d, a, b);
      return;
    }
    if (!was_balanced) {
      break_patterns(d, a, b);
      limit--;
    }
    int hint;
    long pivot = choose_pivot(d, a, b, &hint);
    if (hint == DECREASING_HINT) {
      reverse_range(d, a, b);
      pivot = (b - 1) - (pivot - a);
      hint = INCREASING_HINT;
    }
    if (was_balanced && was_partitioned && hint == INCREASING_HINT && partial_insertion_sort(d, a, b)) return;
    if (a > 0 && !less(d, a - 1, pivot)) {
      a = partition_equal(d, a, b, pivot);
      continue;
    }
    int already;
    long mid = partition(d, a, b, pivot, &already);
    was_partitioned = already;
    long left = mid - a, right = b - mid, threshold = length / 8;
    if (left < right) {
      was_balanced = left >= threshold;
      pdqsort(d, a, mid, limit);
      a = mid + 1;
    } else {
      was_balanced = right >= threshold;
      pdqsort(d, mid + 1, b, limit);
      b = mid;
    }
  }
}

void wr__mg_sort_slice(void *base, size_t n, size_t size, wr__mg_less_fn fn, void *ctx) {
  sorter d = {base, size, wr_xmalloc(size ? size : 1), fn, ctx};
  pdqsort(&d, 0, (long)n, bits_len((unsigned long)n));
  free(d.tmp);
}

/* The comparator cloudflared passes to sort.Slice for --sort-by. */
typedef struct by_key {
  int (*less)(const void *a, const void *b);
  int invert;
  int unknown; /* the key fell back to the default */
  int used;    /* ... and a comparison happened */
} by_key;

static int less_by_key(void *ctx, const void *a, const void *b) {
  by_key *k = ctx;
  int lt = k->less(a, b);
  k->used |= k->unknown;
  return k->invert ? !lt : lt;
}

int wr__mg_sort_by(void *base, size_t n, size_t size, const wr__mg_sort_key *keys, const char *key, int invert) {
  by_key k = {keys[0].less, invert, key != NULL, 0};
  for (const wr__mg_sort_key *s = keys; key && s->name; s++)
    if (strcmp(s->name, key) == 0) k.less = s->less, k.unknown = 0;
  wr__mg_sort_slice(base, n, size, less_by_key, &k);
  return k.used;
}
