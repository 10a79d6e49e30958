/* The store (SQLite or PostgreSQL, edge/db.h): open/close, schema and migrations, errors, statement
 * helpers and transactions. The rest of the store lives in store_*.c; see
 * store_int.h for who owns what. */

#include "edge/store.h"
#include "edge/store_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

/* --- schema -------------------------------------------------------------- */

/* A migration that starts with this runs on PostgreSQL only; on SQLite it
 * is an empty step (the version still moves on). */
#define PG_ONLY "-- postgres only\n"

/* The access_objects table (named |name|, its kinds |kinds|) and its
 * indexes, as migration 5 made them; 8 rebuilds the table with more kinds
 * and the same indexes. Like the migrations, never edit these. */
#define ACCESS_OBJECTS_TABLE(name, kinds)                                                          \
  "CREATE TABLE " name " ("                                                                        \
  "  id TEXT PRIMARY KEY CHECK (length(id) = 36),"                                                 \
  "  account_id TEXT NOT NULL REFERENCES accounts(id),"                                            \
  "  kind TEXT NOT NULL CHECK (kind IN (" kinds ")),"                                               \
  "  parent_id TEXT,"                                                                              \
  "  lookup TEXT,"                                                                                 \
  "  secret_hash BLOB CHECK (secret_hash IS NULL OR length(secret_hash) = 32),"                    \
  "  doc TEXT NOT NULL CHECK (json_valid(doc)),"                                                   \
  "  created_at INTEGER NOT NULL,"                                                                 \
  "  updated_at INTEGER NOT NULL);"
#define ACCESS_OBJECTS_INDEXES                                                                     \
  "CREATE UNIQUE INDEX access_objects_lookup ON access_objects(kind, lookup) WHERE lookup IS NOT NULL;" \
  "CREATE INDEX access_objects_account ON access_objects(account_id, kind, created_at);"          \
  "CREATE INDEX access_objects_parent ON access_objects(parent_id) WHERE parent_id IS NOT NULL;"

/* Migrations, oldest first: migrations[i] takes a store from user_version i
 * to i + 1. Append new steps; never edit a released one. Ids are TEXT so the
 * API can hand them out as they are; times are Unix seconds. */
static const char *const migrations[] = {
    /* 1: the initial schema. */
    "CREATE TABLE accounts ("
    "  id TEXT PRIMARY KEY CHECK (length(id) = 32),"
    "  name TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"

    "CREATE TABLE zones ("
    "  id TEXT PRIMARY KEY CHECK (length(id) = 32),"
    "  account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  name TEXT NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX zones_account ON zones(account_id);"

    "CREATE TABLE users ("
    "  id TEXT PRIMARY KEY CHECK (length(id) = 32),"
    "  account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  email TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    "  password_hash TEXT,"
    "  is_service INTEGER NOT NULL DEFAULT 0 CHECK (is_service IN (0, 1)),"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX users_account ON users(account_id);"

    /* Only the SHA-256 of a token is kept: a leaked database grants nothing. */
    "CREATE TABLE api_tokens ("
    "  id TEXT PRIMARY KEY CHECK (length(id) = 32),"
    "  user_id TEXT NOT NULL REFERENCES users(id),"
    "  token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),"
    "  zone_id TEXT REFERENCES zones(id),"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER);"
    "CREATE INDEX api_tokens_user ON api_tokens(user_id);"

    /* Tunnels are soft-deleted (cloudflared shows deleted_at and refuses to
     * delete twice), so a name is unique only among live tunnels. */
    "CREATE TABLE tunnels ("
    "  id TEXT PRIMARY KEY CHECK (length(id) = 36),"
    "  account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  name TEXT NOT NULL,"
    "  secret BLOB NOT NULL CHECK (length(secret) BETWEEN 32 AND 256),"
    "  created_at INTEGER NOT NULL,"
    "  deleted_at INTEGER,"
    "  config_src TEXT NOT NULL DEFAULT 'local' CHECK (config_src IN ('local', 'cloudflare')),"
    "  remote_config TEXT CHECK (remote_config IS NULL OR json_valid(remote_config)),"
    "  config_version INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX tunnels_live_name ON tunnels(account_id, name) WHERE deleted_at IS NULL;"

    "CREATE TABLE connections ("
    "  id TEXT PRIMARY KEY CHECK (length(id) = 36),"
    "  tunnel_id TEXT NOT NULL REFERENCES tunnels(id),"
    "  conn_index INTEGER NOT NULL CHECK (conn_index BETWEEN 0 AND 255),"
    "  client_id TEXT NOT NULL,"
    "  client_version TEXT NOT NULL DEFAULT '',"
    "  arch TEXT NOT NULL DEFAULT '',"
    "  features TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(features)),"
    "  origin_ip TEXT NOT NULL DEFAULT '',"
    "  edge_location TEXT NOT NULL DEFAULT '',"
    "  opened_at INTEGER NOT NULL,"
    "  closed_at INTEGER);"
    "CREATE INDEX connections_tunnel ON connections(tunnel_id, closed_at);"

    "CREATE TABLE routes ("
    "  id TEXT PRIMARY KEY CHECK (length(id) = 36),"
    "  account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  zone_id TEXT NOT NULL REFERENCES zones(id),"
    "  hostname TEXT NOT NULL UNIQUE,"
    "  tunnel_id TEXT NOT NULL REFERENCES tunnels(id),"
    "  type TEXT NOT NULL DEFAULT 'dns' CHECK (type = 'dns'),"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX routes_tunnel ON routes(tunnel_id);"

    "CREATE TABLE ip_routes ("
    "  id TEXT PRIMARY KEY CHECK (length(id) = 36),"
    "  account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  network TEXT NOT NULL,"
    "  tunnel_id TEXT NOT NULL REFERENCES tunnels(id),"
    "  virtual_network_id TEXT,"
    "  comment TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  deleted_at INTEGER);"
    "CREATE UNIQUE INDEX ip_routes_live ON ip_routes(account_id, network, ifnull(virtual_network_id, ''))"
    "  WHERE deleted_at IS NULL;"
    "CREATE INDEX ip_routes_tunnel ON ip_routes(tunnel_id);"

    "CREATE TABLE audit_log ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  at INTEGER NOT NULL,"
    "  account_id TEXT,"
    "  actor TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  target_type TEXT NOT NULL,"
    "  target_id TEXT NOT NULL,"
    "  detail TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail)));"
    "CREATE INDEX audit_log_account ON audit_log(account_id, id);",

    /* 2: virtual networks for IP routes (ip_routes.virtual_network_id names
     * one); each account has one default network. */
    "CREATE TABLE virtual_networks ("
    "  id TEXT PRIMARY KEY CHECK (length(id) = 36),"
    "  account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  name TEXT NOT NULL,"
    "  comment TEXT NOT NULL DEFAULT '',"
    "  is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),"
    "  created_at INTEGER NOT NULL,"
    "  deleted_at INTEGER);"
    "CREATE UNIQUE INDEX virtual_networks_live_name ON virtual_networks(account_id, name)"
    "  WHERE deleted_at IS NULL;"
    "CREATE UNIQUE INDEX virtual_networks_default ON virtual_networks(account_id)"
    "  WHERE is_default = 1 AND deleted_at IS NULL;"
    "CREATE INDEX ip_routes_vnet ON ip_routes(virtual_network_id);"
    "CREATE INDEX routes_account ON routes(account_id);"
    "CREATE INDEX tunnels_account ON tunnels(account_id, created_at);"
    "CREATE INDEX tunnels_deleted ON tunnels(deleted_at) WHERE deleted_at IS NOT NULL;",

    /* 3: WireGuard devices. |host| is the device's host number in the
     * account's address pools (edge/store.h); it is never reused, revoked
     * devices included, so the unique index covers every row. Names and
     * public keys are unique among active devices only. */
    "CREATE TABLE devices ("
    "  id TEXT PRIMARY KEY CHECK (length(id) = 36),"
    "  account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  vnet_id TEXT NOT NULL DEFAULT '',"
    "  name TEXT NOT NULL,"
    "  public_key TEXT NOT NULL CHECK (length(public_key) = 44),"
    "  host INTEGER NOT NULL CHECK (host >= 2),"
    "  allowed TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER,"
    "  last_handshake INTEGER NOT NULL DEFAULT 0,"
    "  rx_bytes INTEGER NOT NULL DEFAULT 0,"
    "  tx_bytes INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX devices_host ON devices(account_id, host);"
    "CREATE UNIQUE INDEX devices_live_name ON devices(account_id, name) WHERE revoked_at IS NULL;"
    "CREATE UNIQUE INDEX devices_live_key ON devices(public_key) WHERE revoked_at IS NULL;",
    /* 4: per-zone HTTPS options (edge/zone_settings.h). */
    "CREATE TABLE zone_settings ("
    "  zone_id TEXT PRIMARY KEY REFERENCES zones(id),"
    "  always_use_https INTEGER NOT NULL DEFAULT 0,"
    "  hsts_enabled INTEGER NOT NULL DEFAULT 0,"
    "  hsts_max_age INTEGER NOT NULL DEFAULT 0 CHECK (hsts_max_age >= 0),"
    "  hsts_include_subdomains INTEGER NOT NULL DEFAULT 0,"
    "  hsts_preload INTEGER NOT NULL DEFAULT 0,"
    "  hsts_nosniff INTEGER NOT NULL DEFAULT 0,"
    "  min_tls_version TEXT NOT NULL DEFAULT '1.2' CHECK (min_tls_version IN ('1.2', '1.3')),"
    "  modified_on INTEGER NOT NULL);",

    /* 5: Access (edge/store_access.h): applications, their policies, groups
     * and service tokens as JSON documents of one table (the API's shapes,
     * docs/access.md); |lookup| is an app's domain or a token's client_id,
     * unique per kind. Token secrets are kept as SHA-256 only. Signing keys
     * stay published after they are retired, until pruned. */
    ACCESS_OBJECTS_TABLE("access_objects", "'app', 'policy', 'group', 'service_token'")
    ACCESS_OBJECTS_INDEXES
    "CREATE TABLE access_keys ("
    "  kid TEXT PRIMARY KEY,"
    "  pem TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  retired_at INTEGER);",

    /* 6: edges sharing the store (edge/cluster.h): each running edge's row,
     * refreshed by its heartbeat, and which edge serves each connection,
     * so that a visitor reaching one edge can be forwarded to the edge
     * that holds the tunnel's connection. */
    "CREATE TABLE edges ("
    "  id TEXT PRIMARY KEY CHECK (length(id) = 36),"
    "  tunnel_addr TEXT NOT NULL DEFAULT '',"
    "  visitor_addr TEXT NOT NULL DEFAULT '',"
    "  peer_addr TEXT NOT NULL DEFAULT '',"
    "  started_at INTEGER NOT NULL,"
    "  heartbeat_at INTEGER NOT NULL);"
    "ALTER TABLE connections ADD COLUMN edge_id TEXT;"
    "CREATE INDEX connections_edge ON connections(edge_id) WHERE closed_at IS NULL;",

    /* 7: PostgreSQL only: every statement that changes what running edges
     * cache notifies channel warren_changes with the table's name, so that
     * edges sharing the store hear of it at once (edge/db_notify.h); their
     * periodic reloads remain the fallback. Statement triggers: one
     * notification per statement, and PostgreSQL folds repeats within a
     * transaction. Not the edges table: heartbeats would wake every edge
     * every second. */
    PG_ONLY
    "CREATE FUNCTION warren_notify_change() RETURNS trigger LANGUAGE plpgsql AS"
    " $f$ BEGIN PERFORM pg_notify('warren_changes', TG_TABLE_NAME); RETURN NULL; END $f$;"
    "CREATE TRIGGER tunnels_changed AFTER INSERT OR UPDATE OR DELETE ON tunnels"
    "  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_change();"
    "CREATE TRIGGER connections_changed AFTER INSERT OR UPDATE OR DELETE ON connections"
    "  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_change();"
    "CREATE TRIGGER routes_changed AFTER INSERT OR UPDATE OR DELETE ON routes"
    "  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_change();"
    "CREATE TRIGGER ip_routes_changed AFTER INSERT OR UPDATE OR DELETE ON ip_routes"
    "  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_change();"
    "CREATE TRIGGER virtual_networks_changed AFTER INSERT OR UPDATE OR DELETE ON virtual_networks"
    "  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_change();"
    "CREATE TRIGGER devices_changed AFTER INSERT OR UPDATE OR DELETE ON devices"
    "  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_change();"
    "CREATE TRIGGER zone_settings_changed AFTER INSERT OR UPDATE OR DELETE ON zone_settings"
    "  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_change();"
    "CREATE TRIGGER access_objects_changed AFTER INSERT OR UPDATE OR DELETE ON access_objects"
    "  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_change();",

    /* 8: Access identity providers ("identity_provider") join the kinds of
     * access_objects. A CHECK cannot be changed in place in SQLite, so the
     * table is rebuilt (the same statements run on PostgreSQL). */
    ACCESS_OBJECTS_TABLE("access_objects_v6",
                         "'app', 'policy', 'group', 'service_token', 'identity_provider'")
    "INSERT INTO access_objects_v6 (id, account_id, kind, parent_id, lookup, secret_hash, doc, created_at, updated_at)"
    "  SELECT id, account_id, kind, parent_id, lookup, secret_hash, doc, created_at, updated_at FROM access_objects;"
    "DROP TABLE access_objects;"
    "ALTER TABLE access_objects_v6 RENAME TO access_objects;"
    ACCESS_OBJECTS_INDEXES,

    /* 9: PostgreSQL only: 8 rebuilt access_objects, and its change
     * notification (7) went with the old table. */
    PG_ONLY
    "CREATE TRIGGER access_objects_changed AFTER INSERT OR UPDATE OR DELETE ON access_objects"
    "  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_change();",
};
#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))
_Static_assert(N_MIGRATIONS == WR_STORE_SCHEMA_VERSION, "a migration per schema version");

/* --- errors and small helpers --------------------------------------------- */

__attribute__((format(printf, 3, 4))) int wr__store_serr(wr_store *s, int rv, const char *fmt,
                                                         ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
  va_end(ap);
  s->unavailable = 0;
  return rv;
}

/* Turns the connection's last database error into our code and message.
 * Constraint violations become the codes callers act on; the friendly
 * checks before each write mean these mostly appear under races. */
int wr__store_dberr(wr_store *s, const char *what) {
  int rv;
  switch (wr_db_errkind_last(s->db)) {
  case WR_DB_E_UNIQUE:
    rv = WR_ERR_EXISTS;
    break;
  case WR_DB_E_FOREIGN:
    rv = WR_ERR_NOTFOUND;
    break;
  case WR_DB_E_CONSTRAINT:
    rv = WR_ERR_INVAL;
    break;
  default:
    rv = WR_ERR_STORE;
    break;
  }
  wr__store_serr(s, rv, "%s: %s", what, wr_db_errmsg(s->db));
  s->unavailable = wr_db_errkind_last(s->db) == WR_DB_E_DOWN;
  return rv;
}

/* Copies |in| for an error message, bounded and with control bytes shown as
 * '?', so a hostile name cannot forge terminal output or log lines. */
const char *wr__store_quote(const char *in, char *buf, size_t size) {
  return wr_log_safe(in, buf, size);
}

int64_t wr__store_now(wr_store *s) {
  return s->now ? s->now(s->now_user) : (int64_t)time(NULL);
}

int wr__store_new_hex_id(wr_store *s, char out[WR_STORE_ID_LEN + 1]) {
  uint8_t b[WR_STORE_ID_LEN / 2];
  if (wr_random_bytes(b, sizeof(b)) != WR_OK)
    return wr__store_serr(s, WR_ERR_CRYPTO, "cannot draw random bytes for a new id");
  wr_hex_encode(b, sizeof(b), out);
  return WR_OK;
}

int wr__store_new_uuid(wr_store *s, char out[WR_STORE_UUID_LEN + 1]) {
  wr_uuid u;
  if (wr_uuid_random(&u) != WR_OK)
    return wr__store_serr(s, WR_ERR_CRYPTO, "cannot draw a random UUID");
  wr_uuid_format(&u, out);
  return WR_OK;
}

/* Canonical lower-case form of a UUID argument, or WR_ERR_INVAL. */
int wr__store_canon_uuid(wr_store *s, const char *in, char out[WR_STORE_UUID_LEN + 1],
                         const char *what) {
  wr_uuid u;
  char b[80];
  if (!in || wr_uuid_parse(in, strlen(in), &u) != WR_OK)
    return wr__store_serr(s, WR_ERR_INVAL, "%s \"%s\" is not a UUID", what,
                          wr__store_quote(in ? in : "", b, sizeof(b)));
  wr_uuid_format(&u, out);
  return WR_OK;
}

int wr__store_utf8_ok(const char *str, size_t len) {
  json_t *j = json_stringn(str, len); /* jansson validates UTF-8 */
  if (!j) return 0;
  json_decref(j);
  return 1;
}

int wr__store_has_ctl(const char *str) {
  for (; *str; str++)
    if ((unsigned char)*str < 0x20 || *str == 0x7f) return 1;
  return 0;
}

/* A short free-text field (account names, actors): 1..max bytes of UTF-8
 * without control characters. */
int wr__store_check_text(wr_store *s, const char *what, const char *v, size_t max) {
  char b[80];
  if (!v || !*v) return wr__store_serr(s, WR_ERR_INVAL, "%s must not be empty", what);
  size_t len = strlen(v);
  if (len > max)
    return wr__store_serr(s, WR_ERR_INVAL, "%s \"%s\" is %zu bytes long; the limit is %zu", what,
                          wr__store_quote(v, b, sizeof(b)), len, max);
  if (wr__store_has_ctl(v) || !wr__store_utf8_ok(v, len))
    return wr__store_serr(s, WR_ERR_INVAL,
                          "%s \"%s\" must be UTF-8 text without control characters", what,
                          wr__store_quote(v, b, sizeof(b)));
  return WR_OK;
}

void wr__store_copy_str(char *dst, size_t size, const char *src) {
  snprintf(dst, size, "%s", src ? src : "");
}

void wr__store_col_copy(wr_db_stmt *st, int i, char *dst, size_t size) {
  wr__store_copy_str(dst, size, wr_db_col_text(st, i));
}

void wr__store_read_cols(wr_db_stmt *st, const wr__store_col *cols, size_t ncols, void *row) {
  for (size_t i = 0; i < ncols; i++) {
    unsigned char *f = (unsigned char *)row + cols[i].off;
    int c = (int)i, v;
    int64_t i64;
    unsigned u;
    switch (cols[i].kind) {
    case WR__COL_TEXT:
      wr__store_col_copy(st, c, (char *)f, cols[i].size);
      break;
    case WR__COL_INT64:
      i64 = wr_db_col_int64(st, c);
      memcpy(f, &i64, sizeof(i64));
      break;
    case WR__COL_INT:
    case WR__COL_BOOL:
      v = (int)wr_db_col_int64(st, c);
      if (cols[i].kind == WR__COL_BOOL) v = v != 0;
      memcpy(f, &v, sizeof(v));
      break;
    case WR__COL_UINT:
      u = (unsigned)wr_db_col_int64(st, c);
      memcpy(f, &u, sizeof(u));
      break;
    case WR__COL_NOTNULL:
      v = !wr_db_col_is_null(st, c);
      memcpy(f, &v, sizeof(v));
      break;
    case WR__COL_SKIP:
      break;
    }
  }
}

/* Makes room for one more element (amortised doubling). */
void *wr__store_grow(void *arr, size_t n, size_t *cap, size_t size) {
  if (n < *cap) return arr;
  *cap = *cap ? *cap * 2 : 8;
  return wr_xrealloc(arr, *cap * size);
}

void *wr__store_rows(wr_store *s, wr_db_stmt *st, const char *what, size_t size,
                     wr__store_row_fn read, size_t *n, int *rv) {
  unsigned char *rows = NULL;
  size_t cnt = 0, cap = 0;
  int rc;
  while ((rc = wr_db_step(st)) == WR_DB_ROW) {
    rows = wr__store_grow(rows, cnt, &cap, size);
    memset(rows + cnt * size, 0, size);
    read(st, rows + cnt++ * size);
  }
  *rv = WR_OK;
  if (rc != WR_DB_DONE) {
    *rv = wr__store_dberr(s, what);
    free(rows);
    rows = NULL;
    cnt = 0;
  }
  wr_db_finalize(st);
  *n = cnt;
  return rows;
}

/* --- statements ----------------------------------------------------------- */

/* Binds parameters 1..n from |fmt|: 's' text (NULL binds NULL), 'i' int64,
 * 'b' blob (pointer, size_t length). Every value reaches the database as a
 * bound parameter; SQL text is never built from data. */
static int bindv(wr_db_stmt *st, const char *fmt, va_list ap) {
  int rc = 0;
  for (int i = 1; *fmt && rc == 0; fmt++, i++) {
    switch (*fmt) {
    case 's':
      rc = wr_db_bind_text(st, i, va_arg(ap, const char *));
      break;
    case 'i':
      rc = wr_db_bind_int64(st, i, va_arg(ap, int64_t));
      break;
    case 'b': {
      const void *p = va_arg(ap, const void *);
      size_t len = va_arg(ap, size_t);
      rc = wr_db_bind_blob(st, i, p, len);
      break;
    }
    default:
      rc = -1;
      break;
    }
  }
  return rc;
}

/* Prepares |sql| and binds |fmt| arguments. On failure *st is NULL. */
static int vprepf(wr_store *s, wr_db_stmt **st, const char *sql, const char *fmt, va_list ap) {
  *st = NULL;
  if (wr_db_prepare(s->db, sql, st) != 0) return wr__store_dberr(s, "prepare");
  if (bindv(*st, fmt, ap) != 0) {
    int r = wr__store_dberr(s, "bind");
    wr_db_finalize(*st);
    *st = NULL;
    return r;
  }
  return WR_OK;
}

int wr__store_prepf(wr_store *s, wr_db_stmt **st, const char *sql, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rv = vprepf(s, st, sql, fmt, ap);
  va_end(ap);
  return rv;
}

void *wr__store_list(wr_store *s, int *rv, size_t *n, const char *what, size_t size,
                     wr__store_row_fn read, const char *sql, const char *fmt, ...) {
  wr_db_stmt *st;
  va_list ap;
  *n = 0;
  va_start(ap, fmt);
  *rv = vprepf(s, &st, sql, fmt, ap);
  va_end(ap);
  return *rv == WR_OK ? wr__store_rows(s, st, what, size, read, n, rv) : NULL;
}

/* The query of wr__store_one and wr__store_agg: its first row read into
 * |out| (|read| NULL: not read). WR_OK, WR_ERR_NOTFOUND without a message,
 * or the error of preparing or stepping. */
static int vone(wr_store *s, const char *what, wr__store_row_fn read, void *out, const char *sql,
                const char *fmt, va_list ap) {
  wr_db_stmt *st;
  int rv = vprepf(s, &st, sql, fmt, ap);
  if (rv != WR_OK) return rv;
  rv = wr__store_step_row(s, st, what);
  if (rv == WR_OK && read) read(st, out);
  wr_db_finalize(st);
  return rv;
}

int wr__store_one(wr_store *s, const char *what, wr__store_row_fn read, void *out,
                  const char *missing, const char *key, const char *sql, const char *fmt, ...) {
  va_list ap;
  char b[80];
  va_start(ap, fmt);
  int rv = vone(s, what, read, out, sql, fmt, ap);
  va_end(ap);
  if (rv == WR_ERR_NOTFOUND && missing)
    wr__store_serr(s, rv, missing, wr__store_quote(key ? key : "", b, sizeof(b)));
  return rv;
}

int wr__store_get_uuid(wr_store *s, const char *id, const char *id_what, const char *what,
                       wr__store_row_fn read, void *out, const char *missing, const char *sql) {
  char canon[WR_STORE_UUID_LEN + 1];
  int rv;
  if ((rv = wr__store_canon_uuid(s, id, canon, id_what)) != WR_OK) return rv;
  return wr__store_one(s, what, read, out, missing, canon, sql, "s", canon);
}

int wr__store_agg(wr_store *s, const char *what, const char *none, wr__store_row_fn read,
                  void *out, const char *sql, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rv = vone(s, what, read, out, sql, fmt, ap);
  va_end(ap);
  if (rv == WR_ERR_NOTFOUND) rv = wr__store_serr(s, WR_ERR_STORE, "%s: no result", none ? none : what);
  return rv;
}

void wr__store_read_int64(wr_db_stmt *st, void *n) { *(int64_t *)n = wr_db_col_int64(st, 0); }

/* Runs a statement that returns no rows; |changes| (may be NULL) gets the
 * number of rows it changed. */
int wr__store_execf(wr_store *s, int *changes, const char *what, const char *sql, const char *fmt,
                    ...) {
  wr_db_stmt *st = NULL;
  va_list ap;
  int rv = WR_OK, rc;
  if (wr_db_prepare(s->db, sql, &st) != 0) return wr__store_dberr(s, what);
  va_start(ap, fmt);
  rc = bindv(st, fmt, ap);
  va_end(ap);
  if (rc != 0 || wr_db_step(st) != WR_DB_DONE) {
    rv = wr__store_dberr(s, what);
    goto out;
  }
  if (changes) *changes = wr_db_changes(s->db);
out:
  wr_db_finalize(st);
  return rv;
}

/* Steps a prepared query expecting at most one row: WR_OK with the row
 * current, WR_ERR_NOTFOUND (message left to the caller), or WR_ERR_STORE. */
int wr__store_step_row(wr_store *s, wr_db_stmt *st, const char *what) {
  int rc = wr_db_step(st);
  if (rc == WR_DB_ROW) return WR_OK;
  if (rc == WR_DB_DONE) return WR_ERR_NOTFOUND;
  return wr__store_dberr(s, what);
}


int wr__store_xact_lock(wr_store *s, int space, const char *key, const char *what) {
  if (strcmp(wr_db_backend(s->db), "postgres") != 0) return WR_OK;
  /* The two-key form (a space, the key's hash): apart from the schema's
   * one-key lock. */
  return wr__store_agg(s, what, NULL, NULL, NULL,
                       "SELECT pg_advisory_xact_lock(?::integer, hashtext(lower(?)))", "is",
                       (int64_t)space, key);
}

int wr__store_account_cap(wr_store *s, const char *account_id, size_t max, const char *count_sql,
                          const char *what) {
  char none[64];
  int64_t n = 0;
  int rv;
  if (!max) return WR_OK;
  rv = wr__store_xact_lock(s, WR__STORE_LOCK_ACCOUNT, account_id, "lock the account");
  if (rv != WR_OK) return rv;
  snprintf(none, sizeof(none), "count %s", what);
  rv = wr__store_agg(s, what, none, wr__store_read_int64, &n, count_sql, "s", account_id);
  if (rv != WR_OK) return rv;
  if ((size_t)n >= max)
    return wr__store_serr(s, WR_ERR_LIMIT, "this account already has %zu %s, the limit of this edge",
                          (size_t)n, what);
  return WR_OK;
}

int wr__store_tx_begin(wr_store *s) {
  if (wr_db_begin(s->db) != 0) return wr__store_dberr(s, "begin transaction");
  return WR_OK;
}

/* Commits on success, rolls back otherwise; returns the final result. The
 * message of the first error is kept. */
int wr__store_tx_end(wr_store *s, int rv) {
  if (rv == WR_OK) {
    if (wr_db_commit(s->db) == 0) return WR_OK;
    rv = wr__store_dberr(s, "commit");
  }
  wr_db_rollback(s->db);
  return rv;
}

/* --- open / close ------------------------------------------------------------ */

static int user_version(wr_store *s, int *v) {
  if (wr_db_schema_version(s->db, v) != 0) return wr__store_dberr(s, "read schema version");
  return WR_OK;
}

/* Applies the missing migrations and the new schema version in one
 * transaction: a crash or a failing step leaves the old schema intact.
 * Under the schema lock, so edges starting together on one PostgreSQL
 * migrate one after the other. */
static int migrate(wr_store *s) {
  int v = 0, rv;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if (wr_db_schema_lock(s->db) != 0) {
    rv = wr__store_dberr(s, "lock the schema");
    goto out;
  }
  if ((rv = user_version(s, &v)) != WR_OK) goto out;
  if (v > N_MIGRATIONS) {
    rv = wr__store_serr(s, WR_ERR_UNSUPPORTED,
                        "the store has schema version %d but this warren-edge knows only up to %d; "
                        "use a newer warren-edge",
                        v, N_MIGRATIONS);
    goto out;
  }
  int pg = strcmp(wr_db_backend(s->db), "postgres") == 0;
  for (int i = v; i < N_MIGRATIONS; i++) {
    const char *m = migrations[i];
    if (strncmp(m, PG_ONLY, strlen(PG_ONLY)) == 0) {
      if (!pg) continue;
      m += strlen(PG_ONLY);
    }
    char *ddl = wr_db_ddl(s->db, m);
    int rc = wr_db_exec(s->db, ddl);
    free(ddl);
    if (rc != 0) {
      char what[64];
      snprintf(what, sizeof(what), "migration to schema version %d", i + 1);
      rv = wr__store_dberr(s, what);
      goto out;
    }
  }
  if (v < N_MIGRATIONS && wr_db_set_schema_version(s->db, N_MIGRATIONS) != 0)
    rv = wr__store_dberr(s, "set schema version");
out:
  return wr__store_tx_end(s, rv);
}

/* |path| is a SQLite file or a PostgreSQL connection string (edge/db.h). */
int wr_store_open(const char *path, unsigned flags, wr_store **out, char *err, size_t errlen) {
  wr_store *s = wr_xcalloc(1, sizeof(*s));
  wr_db_errkind kind;
  char msg[WR_STORE_ERRMSG_MAX], shown[256];
  int rv;
  *out = NULL;
  if (wr_db_open(path, (flags & WR_STORE_CREATE) ? WR_DB_CREATE : 0, &s->db, &kind, msg,
                 sizeof(msg)) != 0) {
    rv = wr__store_serr(s, kind == WR_DB_E_NOTFOUND ? WR_ERR_NOTFOUND : WR_ERR_STORE, "%s", msg);
    goto fail;
  }
  if ((rv = migrate(s)) != WR_OK) {
    wr__store_copy_str(msg, sizeof(msg), s->errmsg);
    wr__store_serr(s, rv, "store %s: %s", wr_db_target_redact(path, shown, sizeof(shown)), msg);
    goto fail;
  }
  *out = s;
  return WR_OK;

fail:
  wr_db_close(s->db);
  if (err && errlen) snprintf(err, errlen, "%s", s->errmsg);
  free(s);
  return rv;
}

void wr_store_close(wr_store *s) {
  if (!s) return;
  wr_db_close(s->db);
  free(s);
}

const char *wr_store_errmsg(const wr_store *s) { return s->errmsg; }

int wr_store_unavailable(const wr_store *s) { return s->unavailable; }

int wr_store_schema_version(wr_store *s) {
  int v = -1;
  return user_version(s, &v) == WR_OK ? v : -1;
}

void wr_store_set_clock(wr_store *s, int64_t (*now)(void *user), void *user) {
  s->now = now;
  s->now_user = user;
}
int wr_store_ping(wr_store *s) {
  int rv = wr__store_one(s, "read the store", NULL, NULL, NULL, NULL,
                         "SELECT 1 FROM accounts LIMIT 1", "");
  /* An empty table still proves the database answers. */
  return rv == WR_ERR_NOTFOUND ? WR_OK : rv;
}
