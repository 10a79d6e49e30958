/* Edges sharing one store (schema 6, store.h): the edge rows, their
 * heartbeat and expiry, and which tunnels other edges serve. */
#include "edge/store.h"
#include "edge/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

static int addr_ok(const char *a) { return memchr(a, '\0', WR_STORE_ADDR_MAX + 1) != NULL; }

/* The row of |e|: refreshed, or inserted when missing (*inserted). */
static int beat_row(wr_store *s, const wr_edge_rec *e, const char *id, int64_t now, int *inserted) {
  int changes = 0;
  int rv = wr__store_execf(s, &changes, "edge heartbeat",
                           "UPDATE edges SET heartbeat_at = ?, tunnel_addr = ?, visitor_addr = ?,"
                           " peer_addr = ? WHERE id = ?",
                           "issss", now, e->tunnel_addr, e->visitor_addr, e->peer_addr, id);
  *inserted = 0;
  if (rv != WR_OK || changes) return rv;
  *inserted = 1;
  return wr__store_execf(s, NULL, "register edge",
                         "INSERT INTO edges(id, tunnel_addr, visitor_addr, peer_addr, started_at,"
                         " heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)",
                         "ssssii", id, e->tunnel_addr, e->visitor_addr, e->peer_addr,
                         e->started_at ? e->started_at : now, now);
}

/* Live connection |cid| of edge |id|: reopened (after an expiry) when
 * |reopen|, and *closed set when the store has it closed all the same. */
static int check_live(wr_store *s, const char *id, const char *cid, int reopen, int *closed) {
  int64_t closed_at = 0;
  int rv;
  *closed = 0;
  if (reopen && (rv = wr__store_execf(s, NULL, "reopen connection",
                                      "UPDATE connections SET closed_at = NULL WHERE id = ?"
                                      " AND edge_id = ?",
                                      "ss", cid, id)) != WR_OK)
    return rv;
  rv = wr__store_one(s, "read connection", wr__store_read_int64, &closed_at, NULL, NULL,
                     "SELECT coalesce(closed_at, 0) FROM connections WHERE id = ?", "s", cid);
  if (rv == WR_OK) *closed = closed_at != 0;
  else if (rv == WR_ERR_NOTFOUND) rv = WR_OK; /* not recorded (yet): nothing to say */
  return rv;
}

int wr_store_edge_beat(wr_store *s, const wr_edge_rec *e, const char (*live)[WR_STORE_UUID_LEN + 1],
                       size_t nlive, char (**closed)[WR_STORE_UUID_LEN + 1], size_t *nclosed) {
  char id[WR_STORE_UUID_LEN + 1];
  int64_t now = wr__store_now(s);
  int rv, inserted = 0;
  size_t n = 0;
  char(*out)[WR_STORE_UUID_LEN + 1] = NULL;
  *closed = NULL;
  *nclosed = 0;
  if ((rv = wr__store_canon_uuid(s, e->id, id, "edge ID")) != WR_OK) return rv;
  if (!addr_ok(e->tunnel_addr) || !addr_ok(e->visitor_addr) || !addr_ok(e->peer_addr))
    return wr__store_serr(s, WR_ERR_INVAL, "an edge address is too long");
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = beat_row(s, e, id, now, &inserted)) != WR_OK) goto out;
  if (nlive) out = calloc(nlive, sizeof(*out));
  if (nlive && !out) {
    rv = wr__store_serr(s, WR_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < nlive && rv == WR_OK; i++) {
    int c = 0;
    rv = check_live(s, id, live[i], inserted, &c);
    if (rv == WR_OK && c) memcpy(out[n++], live[i], sizeof(out[0]));
  }
out:
  rv = wr__store_tx_end(s, rv);
  if (rv != WR_OK || !n) {
    free(out);
    return rv;
  }
  *closed = out;
  *nclosed = n;
  return WR_OK;
}

int wr_store_edge_expire(wr_store *s, int64_t before, size_t *expired) {
  wr_db_stmt *st = NULL;
  char(*ids)[WR_STORE_UUID_LEN + 1] = NULL;
  size_t n = 0, cap = 0;
  int rv, rc;
  if (expired) *expired = 0;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr__store_prepf(s, &st, "SELECT id FROM edges WHERE heartbeat_at < ?", "i", before)) !=
      WR_OK)
    goto out;
  while ((rc = wr_db_step(st)) == WR_DB_ROW) {
    ids = wr__store_grow(ids, n, &cap, sizeof(*ids));
    wr__store_col_copy(st, 0, ids[n++], sizeof(ids[0]));
  }
  if (rc != WR_DB_DONE) rv = wr__store_dberr(s, "read edges");
  for (size_t i = 0; i < n && rv == WR_OK; i++) {
    rv = wr__store_execf(s, NULL, "close a stale edge's connections",
                         "UPDATE connections SET closed_at = ? WHERE edge_id = ? AND closed_at IS NULL",
                         "is", wr__store_now(s), ids[i]);
    if (rv == WR_OK)
      rv = wr__store_execf(s, NULL, "remove a stale edge", "DELETE FROM edges WHERE id = ?", "s",
                           ids[i]);
  }
  if (rv == WR_OK && expired) *expired = n;
out:
  wr_db_finalize(st);
  free(ids);
  return wr__store_tx_end(s, rv);
}

int wr_store_edge_remove(wr_store *s, const char *id) {
  char canon[WR_STORE_UUID_LEN + 1];
  int rv;
  if ((rv = wr__store_canon_uuid(s, id, canon, "edge ID")) != WR_OK) return rv;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  rv = wr__store_execf(s, NULL, "close the edge's connections",
                       "UPDATE connections SET closed_at = ? WHERE edge_id = ? AND closed_at IS NULL",
                       "is", wr__store_now(s), canon);
  if (rv == WR_OK)
    rv = wr__store_execf(s, NULL, "remove the edge", "DELETE FROM edges WHERE id = ?", "s", canon);
  return wr__store_tx_end(s, rv);
}

static const wr__store_col edge_cols[] = {
    WR__COL(WR__COL_TEXT, wr_edge_rec, id),
    WR__COL(WR__COL_TEXT, wr_edge_rec, tunnel_addr),
    WR__COL(WR__COL_TEXT, wr_edge_rec, visitor_addr),
    WR__COL(WR__COL_TEXT, wr_edge_rec, peer_addr),
    WR__COL(WR__COL_INT64, wr_edge_rec, started_at),
    WR__COL(WR__COL_INT64, wr_edge_rec, heartbeat_at),
};
WR__STORE_ROW_READER(read_edge, edge_cols)

int wr_store_edge_list(wr_store *s, wr_edge_rec **out, size_t *n) {
  int rv;
  *out = wr__store_list(
      s, &rv, n, "read edges", sizeof(**out), read_edge,
      "SELECT id, tunnel_addr, visitor_addr, peer_addr, started_at, heartbeat_at"
      " FROM edges ORDER BY started_at, id",
      "");
  return rv;
}

static const wr__store_col edge_route_cols[] = {
    WR__COL(WR__COL_TEXT, wr_edge_route, tunnel_id),
    WR__COL(WR__COL_TEXT, wr_edge_route, edge_id),
    WR__COL(WR__COL_TEXT, wr_edge_route, peer_addr),
};
WR__STORE_ROW_READER(read_edge_route, edge_route_cols)

int wr_store_edge_routes(wr_store *s, const char *self, int64_t fresh_since, wr_edge_route **out,
                         size_t *n) {
  int rv;
  *out = wr__store_list(
      s, &rv, n, "read the edges' tunnels", sizeof(**out), read_edge_route,
      "SELECT DISTINCT c.tunnel_id, e.id, e.peer_addr FROM connections c"
      " JOIN edges e ON e.id = c.edge_id"
      " WHERE c.closed_at IS NULL AND e.id <> ? AND e.heartbeat_at >= ?"
      " AND e.peer_addr <> '' ORDER BY c.tunnel_id, e.id",
      "si", self ? self : "", fresh_since);
  return rv;
}
