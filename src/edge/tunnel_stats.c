/* Per-tunnel visitor traffic counters; see tunnel_stats.h. A flat array,
 * since the dashboard reads every row, indexed by tunnel id so that a
 * request finds its row, or takes the least recently counted one, in O(1)
 * (lib/lru_index.h): bench-scale spreads requests over 1,000 tunnels. */
#include "edge/tunnel_stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/lru_index.h"
#include "lib/mem.h"

struct wr_tunnel_stats {
  wr_tunnel_counters *rows;
  size_t max;
  wr_lru_index index; /* over rows[].tunnel_id; rows 0 .. used - 1 are counted */
};

wr_tunnel_stats *wr_tunnel_stats_new(size_t max_tunnels) {
  wr_tunnel_stats *s = wr_xcalloc(1, sizeof(*s));
  s->max = max_tunnels ? max_tunnels : WR_TUNNEL_STATS_DEFAULT_MAX;
  s->rows = wr_xcalloc(s->max, sizeof(*s->rows));
  wr_lru_index_init(&s->index, s->rows[0].tunnel_id, sizeof(*s->rows), (uint32_t)s->max);
  return s;
}

void wr_tunnel_stats_free(wr_tunnel_stats *s) {
  if (!s) return;
  wr_lru_index_free(&s->index);
  free(s->rows);
  free(s);
}

static wr_tunnel_counters *row_for(wr_tunnel_stats *s, const char *id) {
  int fresh;
  wr_tunnel_counters *r = &s->rows[wr_lru_index_get(&s->index, id, &fresh)];
  if (fresh) {
    memset(r, 0, sizeof(*r));
    snprintf(r->tunnel_id, sizeof(r->tunnel_id), "%s", id);
  }
  return r;
}

void wr_tunnel_stats_add(wr_tunnel_stats *s, const char *tunnel_id, int status, uint64_t up,
                         uint64_t down, uint64_t ms) {
  if (!s || !tunnel_id || !*tunnel_id) return;
  wr_tunnel_counters *r = row_for(s, tunnel_id);
  r->requests++;
  if (status <= 0 || status >= 500) r->errors++;
  r->bytes_in += up;
  r->bytes_out += down;
  r->latency_ms_sum += ms;
}

const wr_tunnel_counters *wr_tunnel_stats_get(const wr_tunnel_stats *s, const char *tunnel_id) {
  if (!s || !tunnel_id) return NULL;
  uint32_t i = wr_lru_index_find(&s->index, tunnel_id);
  return i == WR_LRU_NONE ? NULL : &s->rows[i];
}

const wr_tunnel_counters *wr_tunnel_stats_all(const wr_tunnel_stats *s, size_t *n) {
  *n = s ? wr_lru_index_used(&s->index) : 0;
  return s ? s->rows : NULL;
}
