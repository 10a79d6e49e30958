/* Per-tunnel visitor traffic counters; see tunnel_stats.h. A flat array:
 * the dashboard reads every row, and a request's lookup is a short scan
 * by a cached index first. */
#include "edge/tunnel_stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mem.h"

struct wr_tunnel_stats {
  wr_tunnel_counters *rows;
  size_t n, max;
  size_t last; /* the row of the previous add: consecutive requests of one tunnel */
  uint64_t tick;
};

wr_tunnel_stats *wr_tunnel_stats_new(size_t max_tunnels) {
  wr_tunnel_stats *s = wr_xcalloc(1, sizeof(*s));
  s->max = max_tunnels ? max_tunnels : WR_TUNNEL_STATS_DEFAULT_MAX;
  s->rows = wr_xcalloc(s->max, sizeof(*s->rows));
  return s;
}

void wr_tunnel_stats_free(wr_tunnel_stats *s) {
  if (!s) return;
  free(s->rows);
  free(s);
}

static wr_tunnel_counters *row_for(wr_tunnel_stats *s, const char *id) {
  if (s->last < s->n && strcmp(s->rows[s->last].tunnel_id, id) == 0) return &s->rows[s->last];
  size_t victim = 0;
  for (size_t i = 0; i < s->n; i++) {
    if (strcmp(s->rows[i].tunnel_id, id) == 0) {
      s->last = i;
      return &s->rows[i];
    }
    if (s->rows[i].used < s->rows[victim].used) victim = i;
  }
  if (s->n < s->max) victim = s->n++;
  wr_tunnel_counters *r = &s->rows[victim];
  memset(r, 0, sizeof(*r));
  snprintf(r->tunnel_id, sizeof(r->tunnel_id), "%s", id);
  s->last = victim;
  return r;
}

void wr_tunnel_stats_add(wr_tunnel_stats *s, const char *tunnel_id, int status, uint64_t up,
                         uint64_t down, uint64_t ms) {
  if (!s || !tunnel_id || !*tunnel_id) return;
  wr_tunnel_counters *r = row_for(s, tunnel_id);
  r->used = ++s->tick;
  r->requests++;
  if (status <= 0 || status >= 500) r->errors++;
  r->bytes_in += up;
  r->bytes_out += down;
  r->latency_ms_sum += ms;
}

const wr_tunnel_counters *wr_tunnel_stats_get(const wr_tunnel_stats *s, const char *tunnel_id) {
  if (!s) return NULL;
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->rows[i].tunnel_id, tunnel_id) == 0) return &s->rows[i];
  return NULL;
}

const wr_tunnel_counters *wr_tunnel_stats_all(const wr_tunnel_stats *s, size_t *n) {
  *n = s ? s->n : 0;
  return s ? s->rows : NULL;
}
