/* Edges that share one store (PostgreSQL) and know each other.
 *
 * Each running edge has an id (a fresh UUID per run) and a row in the
 * store's edges table with the addresses it serves on (connectors,
 * visitors, peer edges); its tunnel server writes that id on the rows of
 * the connections it registers (wr_tunnel_server_config.edge_id). Every
 * |beat_ms| (1 s) a job on the store thread, never on the loop:
 *   - refreshes the edge's heartbeat (re-inserting its row, and re-owning
 *     its live connections, if other edges expired it while the store was
 *     out of reach);
 *   - expires the edges whose heartbeat is older than |ttl_s| (10 s): an
 *     edge killed without a goodbye; their connections are closed;
 *   - reads which tunnels have live connections on other fresh edges, and
 *     where those edges take forwarded streams (edge/peer.h);
 *   - reads the tunnels deleted since the previous beat.
 * Back on the loop: connections of this edge the store says are closed
 * (`tunnel cleanup` or a revocation through another edge or the CLI), and
 * those of deleted tunnels, are closed here too, and the tunnel server's
 * forwarder answers from the
 * table just read: a tunnel without a live connection here is opened
 * through the edges that have one (in turn; an edge that could not be
 * reached, or whose connection died under a stream, last until the store
 * lists it no more). Rows of an earlier run of this edge (its peer
 * address, not yet expired after a kill -9 and a restart) are ignored.
 *
 * A clean stop (wr_cluster_leave) removes the edge's row and closes its
 * connections' rows at once; other edges stop forwarding to it with
 * their next beat.
 *
 * With a SQLite store none of this runs (edge.c does not make one): a
 * SQLite file belongs to one edge.
 *
 * Everything but the job runs on the loop thread. */
#ifndef WR_EDGE_CLUSTER_H
#define WR_EDGE_CLUSTER_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "edge/peer.h"
#include "edge/store.h"
#include "edge/store_async.h"
#include "edge/tunnel_server.h"

#define WR_CLUSTER_BEAT_MS 1000
#define WR_CLUSTER_TTL_S 10

typedef struct wr_cluster wr_cluster;

typedef struct wr_cluster_config {
  uv_loop_t *loop;
  wr_store_async *store_async; /* the beat's store thread */
  wr_tunnel_server *ts;        /* its forwarder is set (and removed at free) */
  wr_peer *peer;               /* how streams reach other edges; NULL: no forwarding */
  const char *id;              /* this edge's id (UUID), as given to the tunnel server */
  const char *tunnel_addr;     /* HOST:PORT, for the row */
  const char *visitor_addr;
  const char *peer_addr;       /* "" or NULL: this edge takes no forwarded streams */
  uint64_t beat_ms;            /* 0: WR_CLUSTER_BEAT_MS */
  int64_t ttl_s;               /* 0: WR_CLUSTER_TTL_S */
} wr_cluster_config;

typedef struct wr_cluster_stats {
  uint64_t beats;         /* heartbeat jobs that completed */
  uint64_t beat_failures; /* ... that failed (the store unreachable) */
  uint64_t expired;       /* other edges this edge expired */
  uint64_t remote_closed; /* connections closed here because the store said so */
  uint64_t peers;         /* other live edges serving tunnels (gauge) */
  uint64_t remote_tunnels; /* tunnels reachable through them (gauge) */
  uint64_t marked_down;   /* edges marked unreachable by a failed forward */
} wr_cluster_stats;

/* Starts beating (the first beat is queued at once). Returns WR_OK or
 * WR_ERR_INVAL (a missing field). */
int wr_cluster_new(const wr_cluster_config *cfg, wr_cluster **out);
const wr_cluster_stats *wr_cluster_get_stats(const wr_cluster *c);
/* Beats now (unless a beat is in flight): the store said tunnels or
 * connections changed. */
void wr_cluster_poke(wr_cluster *c);
/* Stops the timer; a beat in flight is dropped when it returns. Removes
 * the forwarder from the tunnel server. */
void wr_cluster_stop(wr_cluster *c);
/* Removes the edge's row through |store| (the loop thread's, at shutdown,
 * after the tunnel server is gone) and frees |c|. NULL is a no-op. */
void wr_cluster_leave(wr_cluster *c, wr_store *store);

#endif
