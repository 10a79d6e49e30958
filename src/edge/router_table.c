/* Longest-prefix match over a virtual network's IP routes: one sorted array
 * of masked prefixes per prefix length, searched from the longest length
 * down. A lookup is at most 33 (IPv4) or 129 (IPv6) binary searches, in
 * practice a handful: only lengths that have routes get a level. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/router_int.h"
#include "lib/err.h"
#include "lib/mem.h"

static void mask(uint8_t out[16], const uint8_t *addr, unsigned bits) {
  memset(out, 0, 16);
  unsigned full = bits / 8, rem = bits % 8;
  memcpy(out, addr, full);
  if (rem) out[full] = (uint8_t)(addr[full] & (0xff << (8 - rem)));
}

typedef struct sort_item {
  unsigned bits;
  uint8_t key[16];
  uint32_t route;
} sort_item;

/* Longest first, then by prefix bytes, then by row order (the first row of
 * a duplicate network stays first). */
static int cmp_item(const void *a, const void *b) {
  const sort_item *x = a, *y = b;
  if (x->bits != y->bits) return x->bits > y->bits ? -1 : 1;
  int c = memcmp(x->key, y->key, 16);
  if (c) return c;
  return x->route < y->route ? -1 : x->route > y->route;
}

static void build_family(wr__rtable *t, int fam) {
  size_t n = 0;
  for (size_t i = 0; i < t->nroutes; i++) n += t->routes[i].cidr.v6 == fam;
  if (!n) return;
  sort_item *items = wr_xcalloc(n, sizeof(*items));
  size_t k = 0;
  for (size_t i = 0; i < t->nroutes; i++) {
    const wr_store_cidr *c = &t->routes[i].cidr;
    if (c->v6 != fam) continue;
    items[k].bits = c->bits;
    mask(items[k].key, c->addr, c->bits);
    items[k].route = (uint32_t)i;
    k++;
  }
  qsort(items, n, sizeof(*items), cmp_item);
  wr__rt_level *lv = wr_xcalloc(n, sizeof(*lv));
  size_t nl = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && items[j].bits == items[i].bits) j++;
    wr__rt_level *l = &lv[nl++];
    l->bits = items[i].bits;
    l->keys = wr_xcalloc(j - i, sizeof(*l->keys));
    l->route = wr_xcalloc(j - i, sizeof(*l->route));
    for (size_t m = i; m < j; m++) {
      if (l->n && memcmp(l->keys[l->n - 1], items[m].key, 16) == 0) continue; /* duplicate */
      memcpy(l->keys[l->n], items[m].key, 16);
      l->route[l->n++] = items[m].route;
    }
    i = j;
  }
  free(items);
  t->levels[fam] = lv;
  t->nlevels[fam] = nl;
}

int wr__rtable_build(wr__rtable *t, const wr_ip_route *rows, size_t n) {
  memset(t, 0, sizeof(*t));
  t->routes = wr_xcalloc(n ? n : 1, sizeof(*t->routes));
  for (size_t i = 0; i < n; i++) {
    wr__rt_route *r = &t->routes[t->nroutes];
    char err[128];
    if (wr_store_cidr_parse(rows[i].network, &r->cidr, err, sizeof(err)) != WR_OK) continue;
    snprintf(r->route.id, sizeof(r->route.id), "%s", rows[i].id);
    snprintf(r->route.tunnel_id, sizeof(r->route.tunnel_id), "%s", rows[i].tunnel_id);
    snprintf(r->route.network, sizeof(r->route.network), "%s", rows[i].network);
    t->nroutes++;
  }
  build_family(t, 0);
  build_family(t, 1);
  return WR_OK;
}

static long search(const wr__rt_level *l, const uint8_t key[16]) {
  size_t lo = 0, hi = l->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = memcmp(l->keys[mid], key, 16);
    if (c == 0) return (long)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

const wr__rt_route *wr__rtable_lookup(const wr__rtable *t, const wr_ipaddr *dst) {
  if (dst->version != 4 && dst->version != 6) return NULL;
  int fam = dst->version == 6;
  uint8_t key[16];
  for (size_t i = 0; i < t->nlevels[fam]; i++) {
    const wr__rt_level *l = &t->levels[fam][i];
    mask(key, dst->b, l->bits);
    long at = search(l, key);
    if (at >= 0) return &t->routes[l->route[at]];
  }
  return NULL;
}

void wr__rtable_free(wr__rtable *t) {
  for (int f = 0; f < 2; f++) {
    for (size_t i = 0; i < t->nlevels[f]; i++) {
      free(t->levels[f][i].keys);
      free(t->levels[f][i].route);
    }
    free(t->levels[f]);
  }
  free(t->routes);
  memset(t, 0, sizeof(*t));
}
