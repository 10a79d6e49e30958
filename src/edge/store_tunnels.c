/* Store: tunnel names, tunnels, tunnel queries and connections. */

#include "edge/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/mem.h"

int wr_store_check_tunnel_name(const char *name, char *err, size_t errlen) {
  char b[80];
  wr_uuid u;
  size_t len = name ? strlen(name) : 0;
  if (len == 0) return snprintf(err, errlen, "the tunnel name must not be empty"), WR_ERR_INVAL;
  if (len > WR_STORE_NAME_MAX)
    return snprintf(err, errlen, "tunnel name \"%s\" is %zu bytes long; the limit is %d",
                    wr__store_quote(name, b, sizeof(b)), len, WR_STORE_NAME_MAX),
           WR_ERR_INVAL;
  if (strchr(name, '/'))
    return snprintf(err, errlen, "tunnel name \"%s\" must not contain '/'",
                    wr__store_quote(name, b, sizeof(b))),
           WR_ERR_INVAL;
  if (wr__store_has_ctl(name) || !wr__store_utf8_ok(name, len))
    return snprintf(err, errlen, "tunnel name \"%s\" must be UTF-8 text without control characters",
                    wr__store_quote(name, b, sizeof(b))),
           WR_ERR_INVAL;
  if (wr_uuid_parse(name, len, &u) == WR_OK)
    return snprintf(err, errlen,
                    "tunnel name \"%s\" looks like a tunnel ID (a UUID); choose another name",
                    name),
           WR_ERR_INVAL;
  return WR_OK;
}

int wr__store_check_name(wr_store *s, const char *what, const char *name) {
  char msg[WR_STORE_ERRMSG_MAX];
  if (wr_store_check_tunnel_name(name, msg, sizeof(msg)) == WR_OK) return WR_OK;
  if (!what) return wr__store_serr(s, WR_ERR_INVAL, "%s", msg);
  return wr__store_serr(s, WR_ERR_INVAL, "%s: %s", what, msg);
}

/* --- tunnels ---------------------------------------------------------------------- */

#define TUNNEL_SELECT                                                                              \
  "SELECT t.id, t.account_id, t.name, t.secret, t.created_at, coalesce(t.deleted_at, 0),"           \
  " t.config_src = 'cloudflare',"                                                                  \
  " (SELECT count(*) FROM connections c WHERE c.tunnel_id = t.id AND c.closed_at IS NULL)"         \
  " FROM tunnels t "

static void read_tunnel(wr_db_stmt *st, void *row) {
  static const wr__store_col cols[] = {
      WR__COL(WR__COL_TEXT, wr_tunnel, id),
      WR__COL(WR__COL_TEXT, wr_tunnel, account_id),
      WR__COL(WR__COL_TEXT, wr_tunnel, name),
      {WR__COL_SKIP, 0, 0}, /* the secret, a blob: below */
      WR__COL(WR__COL_INT64, wr_tunnel, created_at),
      WR__COL(WR__COL_INT64, wr_tunnel, deleted_at),
      WR__COL(WR__COL_INT, wr_tunnel, remote_managed),
      WR__COL(WR__COL_UINT, wr_tunnel, active_conns),
  };
  wr_tunnel *t = row;
  const void *secret = wr_db_col_blob(st, 3);
  size_t slen = wr_db_col_bytes(st, 3);
  memset(t, 0, sizeof(*t));
  wr__store_read_cols(st, cols, sizeof(cols) / sizeof(cols[0]), t);
  /* The CHECK constraint bounds the length; clamp anyway so a hand-edited
   * file cannot overflow the struct. */
  if (slen > sizeof(t->secret)) slen = sizeof(t->secret);
  if (secret) memcpy(t->secret, secret, slen);
  t->secret_len = secret ? slen : 0;
}

int wr_store_tunnel_get(wr_store *s, const char *id, wr_tunnel *out) {
  return wr__store_get_uuid(s, id, "tunnel ID", "read tunnel", read_tunnel, out,
                            "no tunnel with ID %s", TUNNEL_SELECT "WHERE t.id = ?");
}

int wr__store_tunnel_live(wr_store *s, const char *account_id, const char *id, wr_tunnel *out) {
  int rv;
  if ((rv = wr_store_tunnel_get(s, id, out)) != WR_OK) return rv;
  if (account_id && strcasecmp(out->account_id, account_id) != 0)
    return wr__store_serr(s, WR_ERR_NOTFOUND, "no tunnel with ID %s in this account", out->id);
  if (out->deleted_at)
    return wr__store_serr(s, WR_ERR_INVAL, "tunnel %s (%s) is deleted", out->name, out->id);
  return WR_OK;
}

int wr_store_tunnel_find(wr_store *s, const char *account_id, const char *name, wr_tunnel *out) {
  return wr__store_one(
      s, "read tunnel", read_tunnel, out, "no tunnel named \"%s\"", name,
      TUNNEL_SELECT "WHERE t.account_id = lower(?) AND t.name = ? AND t.deleted_at IS NULL", "ss",
      account_id, name);
}

int wr_store_tunnel_resolve(wr_store *s, const char *account_id, const char *ref, wr_tunnel *out) {
  wr_uuid u;
  wr_tunnel t;
  char b[80];
  int rv;
  if (!ref || !*ref) return wr__store_serr(s, WR_ERR_INVAL, "no tunnel name or ID given");
  if (wr_uuid_parse(ref, strlen(ref), &u) != WR_OK)
    return wr_store_tunnel_find(s, account_id, ref, out);
  rv = wr_store_tunnel_get(s, ref, &t);
  if (rv == WR_OK && (t.deleted_at || strcmp(t.account_id, account_id) != 0))
    rv =
        wr__store_serr(s, WR_ERR_NOTFOUND, "no tunnel with ID %s%s",
                       wr__store_quote(ref, b, sizeof(b)), t.deleted_at ? " (it was deleted)" : "");
  if (rv == WR_OK) *out = t;
  return rv;
}

int wr_store_tunnel_create(wr_store *s, const char *actor, const char *account_id, const char *name,
                           const uint8_t *secret, size_t secret_len, wr_tunnel *out) {
  return wr_store_tunnel_create_ex(s, actor, account_id, name, secret, secret_len, 0, 0, out);
}

int wr_store_tunnel_create_ex(wr_store *s, const char *actor, const char *account_id,
                              const char *name, const uint8_t *secret, size_t secret_len,
                              int remote_managed, size_t max_live, wr_tunnel *out) {
  wr_tunnel t;
  wr_account a;
  int rv;
  memset(&t, 0, sizeof(t));
  if ((rv = wr__store_check_name(s, NULL, name)) != WR_OK) return rv;
  if (secret) {
    if (secret_len < WR_STORE_SECRET_MIN || secret_len > WR_STORE_SECRET_MAX)
      return wr__store_serr(s, WR_ERR_INVAL, "a tunnel secret must be %d to %d bytes long, not %zu",
                            WR_STORE_SECRET_MIN, WR_STORE_SECRET_MAX, secret_len);
    memcpy(t.secret, secret, secret_len);
    t.secret_len = secret_len;
  } else {
    /* As cloudflared's `tunnel create`: 32 bytes from the CSPRNG. */
    t.secret_len = 32;
    if (wr_random_bytes(t.secret, t.secret_len) != WR_OK)
      return wr__store_serr(s, WR_ERR_CRYPTO, "cannot draw random bytes for the tunnel secret");
  }
  if ((rv = wr__store_new_uuid(s, t.id)) != WR_OK) goto out_notx;
  wr__store_copy_str(t.name, sizeof(t.name), name);
  t.created_at = wr__store_now(s);
  if ((rv = wr__store_tx_begin(s)) != WR_OK) goto out_notx;
  if ((rv = wr_store_account_get(s, account_id, &a)) != WR_OK) goto out;
  wr__store_copy_str(t.account_id, sizeof(t.account_id), a.id);
  {
    wr_tunnel old;
    rv = wr_store_tunnel_find(s, a.id, name, &old);
    if (rv == WR_OK) {
      rv = wr__store_serr(s, WR_ERR_EXISTS, "a tunnel named \"%s\" already exists (ID %s)",
                          old.name, old.id);
      goto out;
    }
    if (rv != WR_ERR_NOTFOUND) goto out;
  }
  rv = wr__store_account_cap(
      s, a.id, max_live, "SELECT count(*) FROM tunnels WHERE account_id = ? AND deleted_at IS NULL",
      "tunnels");
  if (rv != WR_OK) goto out;
  t.remote_managed = remote_managed != 0;
  rv = wr__store_execf(s, NULL, "create tunnel",
                       "INSERT INTO tunnels(id, account_id, name, secret, created_at, config_src)"
             " VALUES (?, ?, ?, ?, ?, ?)",
             "sssbis", t.id, t.account_id, t.name, t.secret, t.secret_len, t.created_at,
             t.remote_managed ? "cloudflare" : "local");
  if (rv == WR_OK)
    rv = wr__store_audit_insert(
        s, actor, t.account_id, "tunnel.create", "tunnel", t.id,
        t.remote_managed ? json_pack("{s:s,s:s}", "name", t.name, "config_src", "cloudflare")
                         : json_pack("{s:s}", "name", t.name));
out:
  rv = wr__store_tx_end(s, rv);
out_notx:
  if (rv == WR_OK && out) *out = t;
  memset(&t, 0, sizeof(t)); /* do not leave the secret on the stack */
  return rv;
}

/* The WHERE clause of wr_store_tunnel_list and _count; parameters ?1..?8 are
 * bound in the order of format "sisisssi". */
#define TUNNEL_WHERE                                                                                \
  "WHERE t.account_id = lower(?1) AND (?2 <> 0 OR t.deleted_at IS NULL) AND (?3 IS NULL OR t.name = ?3)" \
  " AND (?4 = 0 OR t.deleted_at IS NOT NULL) AND (?5 IS NULL OR t.id = ?5)"                         \
  " AND (?6 IS NULL OR substr(t.name, 1, length(?6)) = ?6)"                                         \
  " AND (?7 IS NULL OR substr(t.name, 1, length(?7)) <> ?7)"                                        \
  " AND (?8 = 0 OR (t.created_at <= ?8 AND (t.deleted_at IS NULL OR t.deleted_at > ?8)))"

/* Checks |f| and puts its canonical tunnel id (if any) in |id|. */
static int tunnel_filter_check(wr_store *s, const wr_tunnel_filter *f,
                               char id[WR_STORE_UUID_LEN + 1]) {
  if (!f || !f->account_id)
    return wr__store_serr(s, WR_ERR_INVAL, "listing tunnels needs an account");
  id[0] = '\0';
  if (f->id) return wr__store_canon_uuid(s, f->id, id, "tunnel ID");
  return WR_OK;
}

int wr_store_tunnel_list(wr_store *s, const wr_tunnel_filter *f, wr_tunnel **out, size_t *n) {
  int rv;
  *out = NULL;
  *n = 0;
  char id[WR_STORE_UUID_LEN + 1];
  if ((rv = tunnel_filter_check(s, f, id)) != WR_OK) return rv;
  *out = wr__store_list(
      s, &rv, n, "read tunnels", sizeof(**out), read_tunnel,
      TUNNEL_SELECT TUNNEL_WHERE " ORDER BY t.created_at, t.rowid LIMIT ?9 OFFSET ?10",
      "sisisssiii", f->account_id, (int64_t)(f->include_deleted || f->only_deleted), f->name,
      (int64_t)(f->only_deleted != 0), id[0] ? id : NULL, f->name_prefix, f->exclude_prefix,
      f->existed_at, f->limit ? (int64_t)f->limit : (int64_t)INT64_MAX, (int64_t)f->offset);
  return rv;
}

int wr_store_tunnel_delete(wr_store *s, const char *actor, const char *id, size_t *routes_removed) {
  wr_tunnel t;
  wr_db_stmt *st = NULL;
  json_t *hosts = NULL;
  int rv, rc, ip_removed = 0;
  int64_t now = wr__store_now(s);
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_tunnel_get(s, id, &t)) != WR_OK) goto out;
  if (t.deleted_at) {
    rv = wr__store_serr(s, WR_ERR_INVAL, "tunnel %s (%s) is already deleted", t.name, t.id);
    goto out;
  }
  /* The audit row lists the hostnames that stop resolving, so an operator
   * can see what a delete took down. */
  hosts = json_array();
  if ((rv = wr__store_prepf(s, &st,
                            "SELECT hostname FROM routes WHERE tunnel_id = ? ORDER BY hostname",
                            "s", t.id)) != WR_OK)
    goto out;
  while ((rc = wr_db_step(st)) == WR_DB_ROW)
    json_array_append_new(hosts, json_string((const char *)wr_db_col_text(st, 0)));
  if (rc != WR_DB_DONE) {
    rv = wr__store_dberr(s, "read routes");
    goto out;
  }
  if ((rv = wr__store_execf(s, NULL, "delete routes", "DELETE FROM routes WHERE tunnel_id = ?", "s",
                            t.id)) != WR_OK)
    goto out;
  if ((rv = wr__store_execf(
           s, &ip_removed, "delete IP routes",
           "UPDATE ip_routes SET deleted_at = ? WHERE tunnel_id = ? AND deleted_at IS NULL", "is",
           now, t.id)) != WR_OK)
    goto out;
  if ((rv = wr__store_execf(s, NULL, "delete tunnel",
                            "UPDATE tunnels SET deleted_at = ? WHERE id = ?", "is", now, t.id)) !=
      WR_OK)
    goto out;
  if (routes_removed) *routes_removed = json_array_size(hosts);
  rv = wr__store_audit_insert(
      s, actor, t.account_id, "tunnel.delete", "tunnel", t.id,
      json_pack("{s:s,s:O,s:i}", "name", t.name, "routes", hosts, "ip_routes_removed", ip_removed));
out:
  json_decref(hosts);
  wr_db_finalize(st);
  memset(&t, 0, sizeof(t));
  return wr__store_tx_end(s, rv);
}

/* --- connections ------------------------------------------------------------------- */

static int field_ok(const char *f, size_t size) { return memchr(f, '\0', size) != NULL; }

/* The tunnel's open connections that count against the limits of a
 * registration of |c| (client |client|): those of |c|'s edge and of the
 * edges beating since lim->fresh_since, bar the one |c| replaces (same
 * client and index). Sets lim->connectors and lim->mine; WR_ERR_LIMIT when
 * |c| is over a limit. Inside conn_open's transaction, under the tunnel's
 * lock. */
static void read_conn_counts(wr_db_stmt *st, void *row) {
  wr_conn_limits *lim = row;
  lim->connectors = (unsigned)wr_db_col_int64(st, 0);
  lim->mine = (unsigned)wr_db_col_int64(st, 1);
}

static int conn_limits(wr_store *s, const wr_conn_rec *c, const char *tunnel, const char *client,
                       wr_conn_limits *lim) {
  int rv = wr__store_xact_lock(s, WR__STORE_LOCK_TUNNEL_CONNS, tunnel,
                               "lock the tunnel's connections");
  if (rv != WR_OK) return rv;
  rv = wr__store_agg(
      s, "count the tunnel's connections", "count connections", read_conn_counts, lim,
      "SELECT count(DISTINCT client_id),"
      " coalesce(sum(CASE WHEN client_id = ? THEN 1 ELSE 0 END), 0)"
      " FROM connections WHERE tunnel_id = ? AND closed_at IS NULL"
      " AND NOT (client_id = ? AND conn_index = ?)"
      " AND (edge_id = ? OR edge_id IN (SELECT id FROM edges WHERE heartbeat_at >= ?))",
      "sssisi", client, tunnel, client, (int64_t)c->conn_index, c->edge_id, lim->fresh_since);
  if (rv != WR_OK) return rv;
  if (!lim->mine && lim->max_connectors && lim->connectors >= lim->max_connectors)
    return wr__store_serr(s, WR_ERR_LIMIT, "tunnel %s already has %u connectors", tunnel,
                          lim->connectors);
  if (lim->max_per_connector && lim->mine >= lim->max_per_connector)
    return wr__store_serr(s, WR_ERR_LIMIT, "connector %s already has %u connections to tunnel %s",
                          client, lim->mine, tunnel);
  return WR_OK;
}

int wr_store_conn_open(wr_store *s, const wr_conn_rec *c) {
  return wr_store_conn_open_limited(s, c, NULL);
}

int wr_store_conn_open_limited(wr_store *s, const wr_conn_rec *c, wr_conn_limits *lim) {
  char id[WR_STORE_UUID_LEN + 1], client[WR_STORE_UUID_LEN + 1];
  wr_tunnel t;
  int rv;
  if ((rv = wr__store_canon_uuid(s, c->id, id, "connection ID")) != WR_OK) return rv;
  if ((rv = wr__store_canon_uuid(s, c->client_id, client, "connector ID")) != WR_OK) return rv;
  if (c->conn_index > 255)
    return wr__store_serr(s, WR_ERR_INVAL, "connection index %u is over 255", c->conn_index);
  if (!field_ok(c->client_version, sizeof(c->client_version)) ||
      !field_ok(c->arch, sizeof(c->arch)) || !field_ok(c->features, sizeof(c->features)) ||
      !field_ok(c->origin_ip, sizeof(c->origin_ip)) ||
      !field_ok(c->edge_location, sizeof(c->edge_location)) ||
      !field_ok(c->edge_id, sizeof(c->edge_id)))
    return wr__store_serr(s, WR_ERR_INVAL, "a connection field is not NUL-terminated");
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_tunnel_get(s, c->tunnel_id, &t)) != WR_OK) goto out;
  if (t.deleted_at) {
    rv = wr__store_serr(s, WR_ERR_INVAL, "tunnel %s is deleted", t.id);
    goto out;
  }
  if (lim && (rv = conn_limits(s, c, t.id, client, lim)) != WR_OK) goto out;
  rv = wr__store_execf(
      s, NULL, "record connection",
      "INSERT INTO connections(id, tunnel_id, conn_index, client_id, client_version, arch,"
      " features, origin_ip, edge_location, opened_at, edge_id)"
      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      "ssissssssis", id, t.id, (int64_t)c->conn_index, client, c->client_version, c->arch,
      c->features[0] ? c->features : "[]", c->origin_ip, c->edge_location,
      c->opened_at ? c->opened_at : wr__store_now(s), c->edge_id[0] ? c->edge_id : NULL);
  if (rv == WR_ERR_EXISTS) wr__store_serr(s, rv, "connection %s is already recorded", id);
out:
  memset(&t, 0, sizeof(t));
  return wr__store_tx_end(s, rv);
}

int wr_store_conn_close(wr_store *s, const char *id) {
  char canon[WR_STORE_UUID_LEN + 1];
  int rv, changes = 0;
  if ((rv = wr__store_canon_uuid(s, id, canon, "connection ID")) != WR_OK) return rv;
  rv = wr__store_execf(s, &changes, "close connection",
                       "UPDATE connections SET closed_at = ? WHERE id = ? AND closed_at IS NULL",
                       "is", wr__store_now(s), canon);
  if (rv == WR_OK && changes == 0)
    rv = wr__store_serr(s, WR_ERR_NOTFOUND, "no open connection %s", canon);
  return rv;
}

int wr_store_conn_close_all(wr_store *s, size_t *closed) {
  int changes = 0;
  int rv = wr__store_execf(s, &changes, "close connections",
                           "UPDATE connections SET closed_at = ? WHERE closed_at IS NULL", "i",
                           wr__store_now(s));
  if (rv == WR_OK && closed) *closed = (size_t)changes;
  return rv;
}

static const wr__store_col conn_cols[] = {
    WR__COL(WR__COL_TEXT, wr_conn_rec, id),
    WR__COL(WR__COL_TEXT, wr_conn_rec, tunnel_id),
    WR__COL(WR__COL_UINT, wr_conn_rec, conn_index),
    WR__COL(WR__COL_TEXT, wr_conn_rec, client_id),
    WR__COL(WR__COL_TEXT, wr_conn_rec, client_version),
    WR__COL(WR__COL_TEXT, wr_conn_rec, arch),
    WR__COL(WR__COL_TEXT, wr_conn_rec, features),
    WR__COL(WR__COL_TEXT, wr_conn_rec, origin_ip),
    WR__COL(WR__COL_TEXT, wr_conn_rec, edge_location),
    WR__COL(WR__COL_INT64, wr_conn_rec, opened_at),
    WR__COL(WR__COL_INT64, wr_conn_rec, closed_at),
    WR__COL(WR__COL_TEXT, wr_conn_rec, edge_id),
};
WR__STORE_ROW_READER(read_conn, conn_cols)

int wr_store_conn_list(wr_store *s, const char *tunnel_id, int open_only, wr_conn_rec **out,
                       size_t *n) {
  char canon[WR_STORE_UUID_LEN + 1];
  int rv;
  *out = NULL;
  *n = 0;
  if ((rv = wr__store_canon_uuid(s, tunnel_id, canon, "tunnel ID")) != WR_OK) return rv;
  *out = wr__store_list(
      s, &rv, n, "read connections", sizeof(**out), read_conn,
      "SELECT id, tunnel_id, conn_index, client_id, client_version, arch, features, origin_ip,"
      " edge_location, opened_at, coalesce(closed_at, 0), coalesce(edge_id, '') FROM connections"
      " WHERE tunnel_id = ? AND (? = 0 OR closed_at IS NULL) ORDER BY opened_at, rowid",
      "si", canon, (int64_t)(open_only != 0));
  return rv;
}

/* --- schema 2: tunnel queries, connections, virtual networks, IP routes (REST API) --- */

int wr_store_tunnel_count(wr_store *s, const wr_tunnel_filter *f, size_t *n) {
  char id[WR_STORE_UUID_LEN + 1];
  int64_t count = 0;
  int rv;
  *n = 0;
  if ((rv = tunnel_filter_check(s, f, id)) != WR_OK) return rv;
  rv = wr__store_agg(s, "count tunnels", NULL, wr__store_read_int64, &count,
                     "SELECT count(*) FROM tunnels t " TUNNEL_WHERE, "sisisssi", f->account_id,
                     (int64_t)(f->include_deleted || f->only_deleted), f->name,
                     (int64_t)(f->only_deleted != 0), id[0] ? id : NULL, f->name_prefix,
                     f->exclude_prefix, f->existed_at);
  if (rv == WR_OK) *n = (size_t)count;
  return rv;
}

/* Into int64_t[2]: when the first open connection opened, and when the
 * last one closed if none is open. */
static void read_conn_times(wr_db_stmt *st, void *row) {
  int64_t *t = row;
  t[0] = wr_db_col_int64(st, 0);
  t[1] = t[0] ? 0 : wr_db_col_int64(st, 1);
}

int wr_store_tunnel_conn_times(wr_store *s, const char *tunnel_id, int64_t *active_at,
                               int64_t *inactive_at) {
  char canon[WR_STORE_UUID_LEN + 1];
  int64_t t[2] = {0, 0};
  int rv;
  *active_at = *inactive_at = 0;
  if ((rv = wr__store_canon_uuid(s, tunnel_id, canon, "tunnel ID")) != WR_OK) return rv;
  rv = wr__store_agg(
      s, "read connection times", NULL, read_conn_times, t,
      "SELECT coalesce((SELECT min(opened_at) FROM connections WHERE tunnel_id = ?1 AND closed_at IS NULL), 0),"
      " coalesce((SELECT max(closed_at) FROM connections WHERE tunnel_id = ?1), 0)",
      "s", canon);
  *active_at = t[0];
  *inactive_at = t[1];
  return rv;
}

int wr_store_conn_close_tunnel(wr_store *s, const char *tunnel_id, const char *client_id,
                               size_t *closed) {
  char canon[WR_STORE_UUID_LEN + 1], client[WR_STORE_UUID_LEN + 1];
  int rv, changes = 0;
  if (closed) *closed = 0;
  if ((rv = wr__store_canon_uuid(s, tunnel_id, canon, "tunnel ID")) != WR_OK) return rv;
  if (client_id && (rv = wr__store_canon_uuid(s, client_id, client, "connector ID")) != WR_OK)
    return rv;
  rv = wr__store_execf(
      s, &changes, "close connections",
      "UPDATE connections SET closed_at = ?1 WHERE tunnel_id = ?2 AND closed_at IS NULL"
      " AND (?3 IS NULL OR client_id = ?3)",
      "iss", wr__store_now(s), canon, client_id ? client : NULL);
  if (rv == WR_OK && closed) *closed = (size_t)changes;
  return rv;
}

static void read_id(wr_db_stmt *st, void *row) {
  wr__store_col_copy(st, 0, row, WR_STORE_UUID_LEN + 1);
}

int wr_store_tunnel_deleted_since(wr_store *s, int64_t since, char (**ids)[WR_STORE_UUID_LEN + 1],
                                  size_t *n) {
  int rv;
  *ids = wr__store_list(
      s, &rv, n, "read deleted tunnels", sizeof(**ids), read_id,
      "SELECT id FROM tunnels WHERE deleted_at IS NOT NULL AND deleted_at >= ? ORDER BY deleted_at",
      "i", since);
  return rv;
}
