/* Per-tunnel visitor traffic counters: requests, errors, bytes each way
 * and latency, kept by the visitor front at the end of each request and
 * read by the dashboard's live charts (edge/dash.h polls them; rates are
 * the differences between two reads) and by --metrics.
 *
 * Bounded: at most |max_tunnels| tunnels are counted (default
 * WR_TUNNEL_STATS_DEFAULT_MAX); past that, the tunnel counted least
 * recently is dropped for a new one (its counters start again from zero if
 * it comes back). Loop thread only. */
#ifndef WR_EDGE_TUNNEL_STATS_H
#define WR_EDGE_TUNNEL_STATS_H
#include <stddef.h>
#include <stdint.h>

#define WR_TUNNEL_STATS_DEFAULT_MAX 1024

typedef struct wr_tunnel_stats wr_tunnel_stats;

typedef struct wr_tunnel_counters {
  char tunnel_id[40];
  uint64_t requests;   /* answered, by the origin or by the edge */
  uint64_t errors;     /* of those, status 5xx (or no status: the request broke) */
  uint64_t bytes_in;   /* request body bytes sent up the tunnel */
  uint64_t bytes_out;  /* response body bytes sent to visitors */
  uint64_t latency_ms_sum; /* sum of request durations */
} wr_tunnel_counters;

/* max_tunnels 0: the default. Aborts on out-of-memory. */
wr_tunnel_stats *wr_tunnel_stats_new(size_t max_tunnels);
void wr_tunnel_stats_free(wr_tunnel_stats *s);
/* One request of |tunnel_id| ended. NULL |s| is a no-op. */
void wr_tunnel_stats_add(wr_tunnel_stats *s, const char *tunnel_id, int status, uint64_t up,
                         uint64_t down, uint64_t ms);
/* The counters of |tunnel_id|, or NULL when it has none. */
const wr_tunnel_counters *wr_tunnel_stats_get(const wr_tunnel_stats *s, const char *tunnel_id);
/* Every counted tunnel: *n of them at the returned array (valid until the
 * next add). */
const wr_tunnel_counters *wr_tunnel_stats_all(const wr_tunnel_stats *s, size_t *n);

#endif
