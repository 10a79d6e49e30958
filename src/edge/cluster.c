/* Edges sharing one store; see cluster.h. */
#include "edge/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

typedef struct beat_job beat_job;

struct wr_cluster {
  wr_cluster_config cfg; /* strings point into the copies below */
  wr_edge_rec me;
  uv_timer_t timer;
  int timer_on;
  beat_job *job;         /* in flight, or NULL */
  wr_edge_route *routes; /* other edges' tunnels, by tunnel id */
  size_t nroutes;
  unsigned rr;
  /* Edges (ids) that could not be reached, or whose connection died under
   * a stream, since the beat that listed them: tried last. A new run of an
   * edge has a new id, so it is not held against it. */
  char (*down)[WR_STORE_UUID_LEN + 1];
  size_t ndown, down_cap;
  int warned;            /* the last beat failed and said so */
  int64_t swept_at;      /* the last beat that read deleted tunnels */
  wr_cluster_stats st;
};

struct beat_job {
  wr_cluster *c; /* NULL: the cluster stopped; just free */
  wr_edge_rec me;
  int64_t ttl_s;
  char (*live)[WR_STORE_UUID_LEN + 1];
  size_t nlive, live_cap;
  /* results, from the store thread */
  int rv;
  char errmsg[WR_STORE_ERRMSG_MAX];
  char (*closed)[WR_STORE_UUID_LEN + 1];
  size_t nclosed, expired;
  wr_edge_route *routes;
  size_t nroutes;
  int64_t submitted;                    /* when the beat was queued (Unix s) */
  int64_t deleted_since;                /* tunnels deleted since then ... */
  char (*deleted)[WR_STORE_UUID_LEN + 1]; /* ... (read on the store thread) */
  size_t ndeleted;
};

/* ---- the job ------------------------------------------------------------------------ */

static void beat_run(wr_store *s, void *arg) {
  beat_job *j = arg;
  int64_t now = (int64_t)time(NULL);
  j->rv = wr_store_edge_beat(s, &j->me, (const char(*)[WR_STORE_UUID_LEN + 1])j->live, j->nlive,
                             &j->closed, &j->nclosed);
  if (j->rv == WR_OK) j->rv = wr_store_edge_expire(s, now - j->ttl_s, &j->expired);
  if (j->rv == WR_OK) j->rv = wr_store_edge_routes(s, j->me.id, now - j->ttl_s, &j->routes, &j->nroutes);
  /* Tunnels deleted through another edge or the CLI: a minute of overlap
   * for clocks and slow transactions, as the tunnel server's sweeper. */
  if (j->rv == WR_OK)
    j->rv = wr_store_tunnel_deleted_since(s, j->deleted_since - 60, &j->deleted, &j->ndeleted);
  if (j->rv != WR_OK) snprintf(j->errmsg, sizeof(j->errmsg), "%s", wr_store_errmsg(s));
}

static void job_free(beat_job *j) {
  free(j->deleted);
  free(j->live);
  free(j->closed);
  free(j->routes);
  free(j);
}

static size_t count_peers(const wr_edge_route *r, size_t n) {
  size_t peers = 0;
  for (size_t i = 0; i < n; i++) {
    int seen = 0;
    for (size_t k = 0; k < i && !seen; k++) seen = strcmp(r[k].edge_id, r[i].edge_id) == 0;
    peers += !seen;
  }
  return peers;
}

static int is_down(const wr_cluster *c, const char *edge_id) {
  for (size_t i = 0; i < c->ndown; i++)
    if (strcmp(c->down[i], edge_id) == 0) return 1;
  return 0;
}

/* Installs a beat's routes: the rows of an earlier run of this edge (same
 * peer address, not yet expired) go, and edges marked down stay so only
 * while the store still lists them. */
static void set_routes(wr_cluster *c, wr_edge_route *r, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (!c->me.peer_addr[0] || strcmp(r[i].peer_addr, c->me.peer_addr) != 0) r[k++] = r[i];
  free(c->routes);
  c->routes = r;
  c->nroutes = k;
  size_t kd = 0;
  for (size_t i = 0; i < c->ndown; i++) {
    int listed = 0;
    for (size_t j = 0; j < k && !listed; j++) listed = strcmp(r[j].edge_id, c->down[i]) == 0;
    if (listed) memcpy(c->down[kd++], c->down[i], sizeof(c->down[0]));
  }
  c->ndown = kd;
}

/* wr_peer's report: the edges at |addr| are tried last from now on. */
static void on_peer_down(void *user, const char *addr) {
  wr_cluster *c = user;
  for (size_t i = 0; i < c->nroutes; i++) {
    if (strcmp(c->routes[i].peer_addr, addr) != 0 || is_down(c, c->routes[i].edge_id)) continue;
    if (c->ndown == c->down_cap) {
      c->down_cap = c->down_cap ? c->down_cap * 2 : 4;
      c->down = wr_xrealloc(c->down, c->down_cap * sizeof(*c->down));
    }
    memcpy(c->down[c->ndown++], c->routes[i].edge_id, sizeof(c->down[0]));
    c->st.marked_down++;
    wr_info("edge %s at %s is unreachable: forwarding elsewhere first", c->routes[i].edge_id, addr);
  }
}

static void beat_done(void *arg, int status) {
  beat_job *j = arg;
  wr_cluster *c = j->c;
  if (!c) {
    job_free(j);
    return;
  }
  c->job = NULL;
  if (status != WR_OK || j->rv != WR_OK) {
    c->st.beat_failures++;
    /* Once per outage: the store thread's own errors say the rest. Routes
     * learnt before stay: forwarding to a live edge does not need the store. */
    if (!c->warned)
      wr_warn("edge heartbeat failed: %s", wr_store_async_why(status, j->errmsg));
    c->warned = 1;
    job_free(j);
    return;
  }
  if (c->warned) wr_info("edge heartbeat: the store answers again");
  c->warned = 0;
  c->st.beats++;
  if (j->expired) {
    c->st.expired += j->expired;
    wr_info("expired %zu edge%s that stopped beating; their connections are closed", j->expired,
            j->expired == 1 ? "" : "s");
  }
  c->swept_at = j->submitted;
  for (size_t i = 0; i < j->ndeleted; i++) {
    if (!wr_tunnel_server_count(c->cfg.ts, j->deleted[i])) continue;
    size_t k = wr_tunnel_server_close_tunnel(c->cfg.ts, j->deleted[i], NULL, "tunnel deleted");
    wr_info("tunnel %s was deleted: closed %zu connection%s", j->deleted[i], k, k == 1 ? "" : "s");
  }
  for (size_t i = 0; i < j->nclosed; i++)
    if (wr_tunnel_server_close_conn(c->cfg.ts, j->closed[i], "closed in the store")) {
      c->st.remote_closed++;
      wr_info("connection %s was closed in the store (by another edge or the CLI): closed it",
              j->closed[i]);
    }
  set_routes(c, j->routes, j->nroutes);
  j->routes = NULL;
  c->st.remote_tunnels = 0;
  for (size_t i = 0; i < c->nroutes; i++)
    c->st.remote_tunnels += i == 0 || strcmp(c->routes[i].tunnel_id, c->routes[i - 1].tunnel_id) != 0;
  c->st.peers = count_peers(c->routes, c->nroutes);
  job_free(j);
}

static void collect_live(void *user, const wr_tunnel_conn_info *info) {
  beat_job *j = user;
  if (j->nlive == j->live_cap) {
    j->live_cap = j->live_cap ? j->live_cap * 2 : 16;
    j->live = wr_xrealloc(j->live, j->live_cap * sizeof(*j->live));
  }
  memcpy(j->live[j->nlive++], info->conn_id, sizeof(j->live[0]));
}

static void on_timer(uv_timer_t *t) {
  wr_cluster *c = t->data;
  if (c->job) return; /* the store is slow: one beat at a time */
  beat_job *j = wr_xcalloc(1, sizeof(*j));
  j->c = c;
  j->me = c->me;
  j->ttl_s = c->cfg.ttl_s;
  j->submitted = (int64_t)time(NULL);
  j->deleted_since = c->swept_at ? c->swept_at : c->me.started_at;
  wr_tunnel_server_each(c->cfg.ts, collect_live, j);
  if (wr_store_async_submit(c->cfg.store_async, beat_run, beat_done, j) != WR_OK) {
    job_free(j);
    return;
  }
  c->job = j;
}

/* ---- the forwarder ------------------------------------------------------------------ */

/* The first route of |tunnel_id| and how many there are. */
static size_t find_routes(const wr_cluster *c, const char *tunnel_id, size_t *first) {
  size_t lo = 0, hi = c->nroutes;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcasecmp(c->routes[mid].tunnel_id, tunnel_id) < 0) lo = mid + 1;
    else hi = mid;
  }
  size_t n = 0;
  while (lo + n < c->nroutes && strcasecmp(c->routes[lo + n].tunnel_id, tunnel_id) == 0) n++;
  *first = lo;
  return n;
}

static int fw_reachable(void *user, const char *tunnel_id) {
  wr_cluster *c = user;
  size_t first;
  return c->cfg.peer && find_routes(c, tunnel_id, &first) > 0;
}

static int fw_open(void *user, const char *tunnel_id, const wr_tunnel_stream_callbacks *cbs,
                   void *cb_user, wr_tunnel_stream **out) {
  wr_cluster *c = user;
  size_t first, n = c->cfg.peer ? find_routes(c, tunnel_id, &first) : 0;
  const char *addrs[WR_PEER_MAX_ADDRS];
  size_t k = 0;
  *out = NULL;
  if (!n) return WR_ERR_NOTFOUND;
  /* Spread streams over the edges that have the tunnel; the others are
   * the fallbacks if the first cannot be reached, those marked down last. */
  unsigned start = c->rr++;
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < n && k < WR_PEER_MAX_ADDRS; i++) {
      const wr_edge_route *r = &c->routes[first + (start + i) % n];
      if (is_down(c, r->edge_id) != pass) continue;
      int dup = 0;
      for (size_t x = 0; x < k && !dup; x++) dup = strcmp(addrs[x], r->peer_addr) == 0;
      if (!dup) addrs[k++] = r->peer_addr;
    }
  return wr_peer_open_stream(c->cfg.peer, addrs, k, tunnel_id, cbs, cb_user, out);
}

static const wr_tunnel_forwarder forwarder = {.reachable = fw_reachable, .open_stream = fw_open};

/* ---- lifecycle --------------------------------------------------------------------- */

int wr_cluster_new(const wr_cluster_config *cfg, wr_cluster **out) {
  *out = NULL;
  if (!cfg || !cfg->loop || !cfg->store_async || !cfg->ts || !cfg->id) return WR_ERR_INVAL;
  wr_cluster *c = wr_xcalloc(1, sizeof(*c));
  c->cfg = *cfg;
  if (!c->cfg.beat_ms) c->cfg.beat_ms = WR_CLUSTER_BEAT_MS;
  if (c->cfg.ttl_s <= 0) c->cfg.ttl_s = WR_CLUSTER_TTL_S;
  snprintf(c->me.id, sizeof(c->me.id), "%s", cfg->id);
  snprintf(c->me.tunnel_addr, sizeof(c->me.tunnel_addr), "%s", cfg->tunnel_addr ? cfg->tunnel_addr : "");
  snprintf(c->me.visitor_addr, sizeof(c->me.visitor_addr), "%s",
           cfg->visitor_addr ? cfg->visitor_addr : "");
  snprintf(c->me.peer_addr, sizeof(c->me.peer_addr), "%s", cfg->peer_addr ? cfg->peer_addr : "");
  c->me.started_at = (int64_t)time(NULL);
  c->cfg.id = c->me.id;
  c->cfg.tunnel_addr = c->me.tunnel_addr;
  c->cfg.visitor_addr = c->me.visitor_addr;
  c->cfg.peer_addr = c->me.peer_addr;
  uv_timer_init(cfg->loop, &c->timer);
  c->timer.data = c;
  c->timer_on = 1;
  uv_timer_start(&c->timer, on_timer, 0, c->cfg.beat_ms);
  wr_tunnel_server_set_forwarder(cfg->ts, &forwarder, c);
  if (c->cfg.peer) wr_peer_set_on_down(c->cfg.peer, on_peer_down, c);
  *out = c;
  return WR_OK;
}

void wr_cluster_poke(wr_cluster *c) {
  if (c && c->timer_on) on_timer(&c->timer);
}

const wr_cluster_stats *wr_cluster_get_stats(const wr_cluster *c) { return &c->st; }

void wr_cluster_stop(wr_cluster *c) {
  if (!c || !c->timer_on) return;
  c->timer_on = 0;
  uv_close((uv_handle_t *)&c->timer, NULL);
  if (c->job) c->job->c = NULL;
  c->job = NULL;
  wr_tunnel_server_set_forwarder(c->cfg.ts, NULL, NULL);
  if (c->cfg.peer) wr_peer_set_on_down(c->cfg.peer, NULL, NULL);
}

void wr_cluster_leave(wr_cluster *c, wr_store *store) {
  if (!c) return;
  if (store && wr_store_edge_remove(store, c->me.id) != WR_OK)
    wr_warn("removing this edge from the store: %s", wr_store_errmsg(store));
  free(c->routes);
  free(c->down);
  free(c);
}
