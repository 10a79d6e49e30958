#include "edge/store.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/mem.h"

/* How long a writer waits for another process's transaction (the CLI while
 * `warren-edge run` holds the store) before giving up with "busy". */
#define BUSY_TIMEOUT_MS 5000

struct wr_store {
  sqlite3 *db;
  int64_t (*now)(void *user);
  void *now_user;
  char errmsg[WR_STORE_ERRMSG_MAX];
};

/* --- schema -------------------------------------------------------------- */

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
};
#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))
_Static_assert(N_MIGRATIONS == WR_STORE_SCHEMA_VERSION, "a migration per schema version");

/* --- errors and small helpers --------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int serr(wr_store *s, int rv, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
  va_end(ap);
  return rv;
}

/* Turns the connection's last SQLite error into our code and message.
 * Constraint violations become the codes callers act on; the friendly
 * checks before each write mean these mostly appear under races. */
static int dberr(wr_store *s, const char *what) {
  int ext = sqlite3_extended_errcode(s->db), rv;
  switch (ext) {
  case SQLITE_CONSTRAINT_UNIQUE:
  case SQLITE_CONSTRAINT_PRIMARYKEY:
    rv = WR_ERR_EXISTS;
    break;
  case SQLITE_CONSTRAINT_FOREIGNKEY:
    rv = WR_ERR_NOTFOUND;
    break;
  default:
    rv = (ext & 0xff) == SQLITE_CONSTRAINT ? WR_ERR_INVAL : WR_ERR_STORE;
    break;
  }
  return serr(s, rv, "%s: %s", what, sqlite3_errmsg(s->db));
}

/* Copies |in| for an error message, bounded and with control bytes shown as
 * '?', so a hostile name cannot forge terminal output or log lines. */
static const char *q(const char *in, char *buf, size_t size) {
  size_t i = 0;
  for (; in[i] && i + 4 < size; i++)
    buf[i] = ((unsigned char)in[i] < 0x20 || in[i] == 0x7f) ? '?' : in[i];
  if (in[i]) {
    memcpy(buf + i, "...", 3);
    i += 3;
  }
  buf[i] = '\0';
  return buf;
}

static int64_t now_s(wr_store *s) {
  return s->now ? s->now(s->now_user) : (int64_t)time(NULL);
}

static int new_hex_id(wr_store *s, char out[WR_STORE_ID_LEN + 1]) {
  uint8_t b[WR_STORE_ID_LEN / 2];
  if (wr_random_bytes(b, sizeof(b)) != WR_OK)
    return serr(s, WR_ERR_CRYPTO, "cannot draw random bytes for a new id");
  wr_hex_encode(b, sizeof(b), out);
  return WR_OK;
}

static int new_uuid(wr_store *s, char out[WR_STORE_UUID_LEN + 1]) {
  wr_uuid u;
  if (wr_uuid_random(&u) != WR_OK) return serr(s, WR_ERR_CRYPTO, "cannot draw a random UUID");
  wr_uuid_format(&u, out);
  return WR_OK;
}

/* Canonical lower-case form of a UUID argument, or WR_ERR_INVAL. */
static int canon_uuid(wr_store *s, const char *in, char out[WR_STORE_UUID_LEN + 1],
                      const char *what) {
  wr_uuid u;
  char b[80];
  if (!in || wr_uuid_parse(in, strlen(in), &u) != WR_OK)
    return serr(s, WR_ERR_INVAL, "%s \"%s\" is not a UUID", what, q(in ? in : "", b, sizeof(b)));
  wr_uuid_format(&u, out);
  return WR_OK;
}

static int utf8_ok(const char *str, size_t len) {
  json_t *j = json_stringn(str, len); /* jansson validates UTF-8 */
  if (!j) return 0;
  json_decref(j);
  return 1;
}

static int has_ctl(const char *str) {
  for (; *str; str++)
    if ((unsigned char)*str < 0x20 || *str == 0x7f) return 1;
  return 0;
}

/* A short free-text field (account names, actors): 1..max bytes of UTF-8
 * without control characters. */
static int check_text(wr_store *s, const char *what, const char *v, size_t max) {
  char b[80];
  if (!v || !*v) return serr(s, WR_ERR_INVAL, "%s must not be empty", what);
  size_t len = strlen(v);
  if (len > max)
    return serr(s, WR_ERR_INVAL, "%s \"%s\" is %zu bytes long; the limit is %zu", what,
                q(v, b, sizeof(b)), len, max);
  if (has_ctl(v) || !utf8_ok(v, len))
    return serr(s, WR_ERR_INVAL, "%s \"%s\" must be UTF-8 text without control characters", what,
                q(v, b, sizeof(b)));
  return WR_OK;
}

static void copy_str(char *dst, size_t size, const char *src) {
  snprintf(dst, size, "%s", src ? src : "");
}

static void col_copy(sqlite3_stmt *st, int i, char *dst, size_t size) {
  copy_str(dst, size, (const char *)sqlite3_column_text(st, i));
}

/* Makes room for one more element (amortised doubling). */
static void *grow(void *arr, size_t n, size_t *cap, size_t size) {
  if (n < *cap) return arr;
  *cap = *cap ? *cap * 2 : 8;
  return wr_xrealloc(arr, *cap * size);
}
/* Appends a zeroed element to a result array and evaluates to its address. */
#define PUSH(arr, n, cap)                                                                          \
  ((arr) = grow((arr), (n), &(cap), sizeof(*(arr))), memset(&(arr)[(n)], 0, sizeof(*(arr))),       \
   &(arr)[(n)++])

/* --- statements ----------------------------------------------------------- */

/* Binds parameters 1..n from |fmt|: 's' text (NULL binds NULL), 'i' int64,
 * 'b' blob (pointer, size_t length). Every value reaches SQLite as a bound
 * parameter; SQL text is never built from data. */
static int bindv(sqlite3_stmt *st, const char *fmt, va_list ap) {
  int rc = SQLITE_OK;
  for (int i = 1; *fmt && rc == SQLITE_OK; fmt++, i++) {
    switch (*fmt) {
    case 's': {
      const char *v = va_arg(ap, const char *);
      rc = v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
      break;
    }
    case 'i':
      rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
      break;
    case 'b': {
      const void *p = va_arg(ap, const void *);
      size_t len = va_arg(ap, size_t);
      rc = sqlite3_bind_blob64(st, i, p, len, SQLITE_TRANSIENT);
      break;
    }
    default:
      rc = SQLITE_MISUSE;
      break;
    }
  }
  return rc;
}

/* Prepares |sql| and binds |fmt| arguments. On failure *st is NULL. */
static int prepf(wr_store *s, sqlite3_stmt **st, const char *sql, const char *fmt, ...) {
  va_list ap;
  int rc;
  *st = NULL;
  if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) return dberr(s, "prepare");
  va_start(ap, fmt);
  rc = bindv(*st, fmt, ap);
  va_end(ap);
  if (rc != SQLITE_OK) {
    int r = dberr(s, "bind");
    sqlite3_finalize(*st);
    *st = NULL;
    return r;
  }
  return WR_OK;
}

/* Runs a statement that returns no rows; |changes| (may be NULL) gets the
 * number of rows it changed. */
static int execf(wr_store *s, int *changes, const char *what, const char *sql, const char *fmt, ...) {
  sqlite3_stmt *st = NULL;
  va_list ap;
  int rv = WR_OK, rc;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return dberr(s, what);
  va_start(ap, fmt);
  rc = bindv(st, fmt, ap);
  va_end(ap);
  if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
    rv = dberr(s, what);
    goto out;
  }
  if (changes) *changes = sqlite3_changes(s->db);
out:
  sqlite3_finalize(st);
  return rv;
}

/* Steps a prepared query expecting at most one row: WR_OK with the row
 * current, WR_ERR_NOTFOUND (message left to the caller), or WR_ERR_STORE. */
static int step_row(wr_store *s, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) return WR_OK;
  if (rc == SQLITE_DONE) return WR_ERR_NOTFOUND;
  return dberr(s, what);
}

/* BEGIN IMMEDIATE takes the write lock up front, so two writers queue on the
 * busy timeout instead of deadlocking when both try to upgrade a read lock. */
static int tx_begin(wr_store *s) {
  if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    return dberr(s, "begin transaction");
  return WR_OK;
}

/* Commits on success, rolls back otherwise; returns the final result. The
 * message of the first error is kept. */
static int tx_end(wr_store *s, int rv) {
  if (rv == WR_OK) {
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) return WR_OK;
    rv = dberr(s, "commit");
  }
  if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  return rv;
}

/* --- audit ----------------------------------------------------------------- */

#define AUDIT_ACTOR_MAX (sizeof(((wr_audit *)0)->actor) - 1)
#define AUDIT_ACTION_MAX (sizeof(((wr_audit *)0)->action) - 1)
#define AUDIT_TTYPE_MAX (sizeof(((wr_audit *)0)->target_type) - 1)
#define AUDIT_TID_MAX (sizeof(((wr_audit *)0)->target_id) - 1)

/* Writes one audit row inside the caller's transaction. Takes ownership of
 * |detail| (a JSON object; NULL means jansson could not build it, which only
 * happens for invalid UTF-8 and is reported as such). */
static int audit_insert(wr_store *s, const char *actor, const char *account_id, const char *action,
                        const char *ttype, const char *tid, json_t *detail) {
  int rv;
  char *text = NULL;
  if ((rv = check_text(s, "audit actor", actor, AUDIT_ACTOR_MAX)) != WR_OK) goto out;
  if (strlen(action) > AUDIT_ACTION_MAX || strlen(ttype) > AUDIT_TTYPE_MAX ||
      strlen(tid) > AUDIT_TID_MAX) {
    rv = serr(s, WR_ERR_INVAL, "audit action, target type or target id is too long");
    goto out;
  }
  if (!detail || !json_is_object(detail) ||
      !(text = json_dumps(detail, JSON_COMPACT | JSON_ENSURE_ASCII))) {
    rv = serr(s, WR_ERR_INVAL, "audit detail for %s is not a JSON object of UTF-8 text", action);
    goto out;
  }
  rv = execf(s, NULL, "write audit row",
             "INSERT INTO audit_log(at, account_id, actor, action, target_type, target_id, detail)"
             " VALUES (?, ?, ?, ?, ?, ?, ?)",
             "issssss", now_s(s), account_id && *account_id ? account_id : NULL, actor, action, ttype, tid,
             text);
out:
  free(text);
  json_decref(detail);
  return rv;
}

int wr_store_audit_append(wr_store *s, const char *actor, const char *account_id,
                          const char *action, const char *target_type, const char *target_id,
                          const char *detail_json) {
  json_error_t jerr;
  json_t *detail;
  int rv;
  if (!action || !*action || !target_type || !target_id)
    return serr(s, WR_ERR_INVAL, "audit rows need an action, a target type and a target id");
  detail = json_loads(detail_json ? detail_json : "{}", JSON_REJECT_DUPLICATES, &jerr);
  if (!detail || !json_is_object(detail)) {
    json_decref(detail);
    return serr(s, WR_ERR_INVAL, "audit detail is not a JSON object: %s",
                detail ? "not an object" : jerr.text);
  }
  if ((rv = tx_begin(s)) != WR_OK) {
    json_decref(detail);
    return rv;
  }
  rv = audit_insert(s, actor, account_id, action, target_type, target_id, detail);
  return tx_end(s, rv);
}

int wr_store_audit_list(wr_store *s, const char *account_id, size_t limit, wr_audit **out,
                        size_t *n) {
  wr_audit_filter f = {.account_id = account_id, .limit = limit};
  return wr_store_audit_query(s, &f, out, n, NULL);
}

void wr_store_audit_free(wr_audit *rows, size_t n) {
  if (!rows) return;
  for (size_t i = 0; i < n; i++) free(rows[i].detail);
  free(rows);
}

/* --- open / close ------------------------------------------------------------ */

static int user_version(wr_store *s, int *v) {
  sqlite3_stmt *st = NULL;
  int rv = prepf(s, &st, "PRAGMA user_version", "");
  if (rv != WR_OK) return rv;
  rv = step_row(s, st, "read schema version");
  if (rv == WR_OK) *v = sqlite3_column_int(st, 0);
  else if (rv == WR_ERR_NOTFOUND) rv = serr(s, WR_ERR_STORE, "read schema version: no result");
  sqlite3_finalize(st);
  return rv;
}

/* Applies the missing migrations and the new user_version in one
 * transaction: a crash or a failing step leaves the old schema intact. */
static int migrate(wr_store *s) {
  int v = 0, rv;
  char sql[64];
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  if ((rv = user_version(s, &v)) != WR_OK) goto out;
  if (v > N_MIGRATIONS) {
    rv = serr(s, WR_ERR_UNSUPPORTED,
              "the store has schema version %d but this warren-edge knows only up to %d; "
              "use a newer warren-edge",
              v, N_MIGRATIONS);
    goto out;
  }
  for (int i = v; i < N_MIGRATIONS; i++) {
    if (sqlite3_exec(s->db, migrations[i], NULL, NULL, NULL) != SQLITE_OK) {
      char what[64];
      snprintf(what, sizeof(what), "migration to schema version %d", i + 1);
      rv = dberr(s, what);
      goto out;
    }
  }
  if (v < N_MIGRATIONS) {
    /* PRAGMA takes no parameters; the value is our own constant. */
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", N_MIGRATIONS);
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
      rv = dberr(s, "set schema version");
  }
out:
  return tx_end(s, rv);
}

int wr_store_open(const char *path, unsigned flags, wr_store **out, char *err, size_t errlen) {
  struct stat st;
  wr_store *s = wr_xcalloc(1, sizeof(*s));
  int oflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, rv;
  *out = NULL;
  if (!(flags & WR_STORE_CREATE) && stat(path, &st) != 0) {
    rv = serr(s, WR_ERR_NOTFOUND, "no store at %s: %s", path, strerror(errno));
    goto fail_open;
  }
  if (flags & WR_STORE_CREATE) {
    /* The store holds tunnel secrets: create it owner-only. SQLite gives its
     * -wal and -shm files the mode of the database file. An empty file is a
     * valid empty database. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
    else if (errno != EEXIST) {
      rv = serr(s, WR_ERR_STORE, "cannot create store %s: %s", path, strerror(errno));
      goto fail_open;
    }
    oflags |= SQLITE_OPEN_CREATE;
  }
  if (sqlite3_open_v2(path, &s->db, oflags, NULL) != SQLITE_OK) {
    rv = serr(s, WR_ERR_STORE, "cannot open store %s: %s", path,
              s->db ? sqlite3_errmsg(s->db) : "out of memory");
    goto fail_db;
  }
  sqlite3_extended_result_codes(s->db, 1);
  sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
  /* Defensive mode stops SQL from corrupting the file (writable_schema and
   * friends); the store never needs those. */
  sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
  /* WAL lets the running edge read while the CLI writes; NORMAL sync is
   * durable across process crashes in WAL mode and much cheaper than FULL.
   * foreign_keys must be set outside a transaction, so it comes first. */
  if (sqlite3_exec(s->db,
                   "PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
                   NULL, NULL, NULL) != SQLITE_OK) {
    int code = sqlite3_errcode(s->db);
    rv = serr(s, WR_ERR_STORE, "cannot use %s as a store: %s", path,
              code == SQLITE_NOTADB ? "it is not a SQLite database" : sqlite3_errmsg(s->db));
    goto fail_db;
  }
  if ((rv = migrate(s)) != WR_OK) {
    char msg[WR_STORE_ERRMSG_MAX];
    copy_str(msg, sizeof(msg), s->errmsg);
    serr(s, rv, "store %s: %s", path, msg);
    goto fail_db;
  }
  *out = s;
  return WR_OK;

fail_db:
  sqlite3_close_v2(s->db);
fail_open:
  if (err && errlen) snprintf(err, errlen, "%s", s->errmsg);
  free(s);
  return rv;
}

void wr_store_close(wr_store *s) {
  if (!s) return;
  sqlite3_close_v2(s->db);
  free(s);
}

const char *wr_store_errmsg(const wr_store *s) { return s->errmsg; }

int wr_store_schema_version(wr_store *s) {
  int v = -1;
  return user_version(s, &v) == WR_OK ? v : -1;
}

void wr_store_set_clock(wr_store *s, int64_t (*now)(void *user), void *user) {
  s->now = now;
  s->now_user = user;
}

/* --- names ------------------------------------------------------------------- */

int wr_store_check_dns_name(const char *name, int allow_wildcard, char out[WR_STORE_HOST_MAX + 1],
                            char *err, size_t errlen) {
  char b[80], canon[WR_STORE_HOST_MAX + 2];
  size_t len = strlen(name), start = 0;
  int all_digits = 1;
#define BAD(...) (snprintf(err, errlen, __VA_ARGS__), WR_ERR_INVAL)
  if (len == 0) return BAD("the name is empty");
  if (strstr(name, "://"))
    return BAD("\"%s\" is a URL; give only the hostname, e.g. app.example.com", q(name, b, sizeof(b)));
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)name[i] >= 0x80)
      return BAD("\"%s\" is not ASCII; use its punycode (xn--) form", q(name, b, sizeof(b)));
  if (strchr(name, ':'))
    return BAD("\"%s\" must be a hostname without a port", q(name, b, sizeof(b)));
  if (strchr(name, '/'))
    return BAD("\"%s\" must be a hostname without a path", q(name, b, sizeof(b)));
  if (name[len - 1] == '.') len--; /* the root label is implied */
  if (len == 0) return BAD("the name is empty");
  if (len > WR_STORE_HOST_MAX)
    return BAD("\"%s\" is %zu bytes long; DNS names have at most %d", q(name, b, sizeof(b)), len,
               WR_STORE_HOST_MAX);
  for (size_t i = 0; i < len; i++) canon[i] = (char)tolower((unsigned char)name[i]);
  canon[len] = '\0';
  for (size_t i = 0; i <= len; i++) {
    if (i < len && canon[i] != '.') continue;
    size_t llen = i - start;
    const char *label = canon + start;
    if (llen == 0) return BAD("\"%s\" has an empty label", q(name, b, sizeof(b)));
    if (llen > 63)
      return BAD("\"%s\" has a label longer than 63 bytes", q(name, b, sizeof(b)));
    if (llen == 1 && label[0] == '*') {
      if (!allow_wildcard) return BAD("\"%s\" must not be a wildcard", q(name, b, sizeof(b)));
      if (start != 0)
        return BAD("\"%s\": '*' is only allowed as the whole first label", q(name, b, sizeof(b)));
      if (i == len) return BAD("\"%s\": a wildcard needs a domain after it", q(name, b, sizeof(b)));
    } else {
      all_digits = 1;
      for (size_t k = 0; k < llen; k++) {
        unsigned char c = (unsigned char)label[k];
        if (!(islower(c) || isdigit(c) || c == '-' || c == '_')) {
          if (isprint(c))
            return BAD("\"%s\" contains '%c', which is not allowed in a DNS name",
                       q(name, b, sizeof(b)), c);
          return BAD("\"%s\" contains the byte 0x%02x, which is not allowed in a DNS name",
                     q(name, b, sizeof(b)), c);
        }
        all_digits &= isdigit(c) != 0;
      }
      if (label[0] == '-' || label[llen - 1] == '-')
        return BAD("\"%s\" has a label that starts or ends with '-'", q(name, b, sizeof(b)));
    }
    start = i + 1;
  }
  /* The last label was checked last: a numeric top label means an address. */
  if (all_digits) return BAD("\"%s\" is an IP address, not a DNS name", q(name, b, sizeof(b)));
#undef BAD
  memcpy(out, canon, len + 1);
  return WR_OK;
}

int wr_store_check_tunnel_name(const char *name, char *err, size_t errlen) {
  char b[80];
  wr_uuid u;
  size_t len = name ? strlen(name) : 0;
  if (len == 0) return snprintf(err, errlen, "the tunnel name must not be empty"), WR_ERR_INVAL;
  if (len > WR_STORE_NAME_MAX)
    return snprintf(err, errlen, "tunnel name \"%s\" is %zu bytes long; the limit is %d",
                    q(name, b, sizeof(b)), len, WR_STORE_NAME_MAX),
           WR_ERR_INVAL;
  if (strchr(name, '/'))
    return snprintf(err, errlen, "tunnel name \"%s\" must not contain '/'", q(name, b, sizeof(b))),
           WR_ERR_INVAL;
  if (has_ctl(name) || !utf8_ok(name, len))
    return snprintf(err, errlen, "tunnel name \"%s\" must be UTF-8 text without control characters",
                    q(name, b, sizeof(b))),
           WR_ERR_INVAL;
  if (wr_uuid_parse(name, len, &u) == WR_OK)
    return snprintf(err, errlen,
                    "tunnel name \"%s\" looks like a tunnel ID (a UUID); choose another name", name),
           WR_ERR_INVAL;
  return WR_OK;
}

/* "inside" means a proper subdomain: |host| ends in "." |zone|. */
static int host_in_zone(const char *host, const char *zone) {
  size_t hl = strlen(host), zl = strlen(zone);
  return hl > zl + 1 && host[hl - zl - 1] == '.' && strcmp(host + hl - zl, zone) == 0;
}

/* --- accounts ------------------------------------------------------------------ */

int wr_store_account_create(wr_store *s, const char *actor, const char *name, wr_account *out) {
  wr_account a = {0};
  int rv;
  if ((rv = check_text(s, "account name", name, WR_STORE_NAME_MAX)) != WR_OK) return rv;
  if ((rv = new_hex_id(s, a.id)) != WR_OK) return rv;
  copy_str(a.name, sizeof(a.name), name);
  a.created_at = now_s(s);
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  rv = execf(s, NULL, "create account", "INSERT INTO accounts(id, name, created_at) VALUES (?, ?, ?)",
             "ssi", a.id, a.name, a.created_at);
  if (rv == WR_OK)
    rv = audit_insert(s, actor, a.id, "account.create", "account", a.id,
                      json_pack("{s:s}", "name", name));
  rv = tx_end(s, rv);
  if (rv == WR_OK && out) *out = a;
  return rv;
}

static void read_account(sqlite3_stmt *st, wr_account *a) {
  col_copy(st, 0, a->id, sizeof(a->id));
  col_copy(st, 1, a->name, sizeof(a->name));
  a->created_at = sqlite3_column_int64(st, 2);
}

int wr_store_account_get(wr_store *s, const char *id, wr_account *out) {
  sqlite3_stmt *st;
  char b[80];
  int rv = prepf(s, &st, "SELECT id, name, created_at FROM accounts WHERE id = lower(?)", "s", id);
  if (rv != WR_OK) return rv;
  rv = step_row(s, st, "read account");
  if (rv == WR_OK) read_account(st, out);
  else if (rv == WR_ERR_NOTFOUND) serr(s, rv, "no account with id %s", q(id, b, sizeof(b)));
  sqlite3_finalize(st);
  return rv;
}

int wr_store_account_default(wr_store *s, wr_account *out) {
  sqlite3_stmt *st;
  int rv = prepf(s, &st, "SELECT id, name, created_at FROM accounts ORDER BY created_at, id LIMIT 2", "");
  if (rv != WR_OK) return rv;
  rv = step_row(s, st, "read accounts");
  if (rv == WR_ERR_NOTFOUND) {
    serr(s, rv, "the store has no account");
  } else if (rv == WR_OK) {
    wr_account first;
    read_account(st, &first);
    rv = step_row(s, st, "read accounts");
    if (rv == WR_ERR_NOTFOUND) {
      *out = first;
      rv = WR_OK;
    } else if (rv == WR_OK) {
      char second[WR_STORE_ID_LEN + 1];
      col_copy(st, 0, second, sizeof(second));
      rv = serr(s, WR_ERR_INVAL, "the store has several accounts (%s, %s, ...); say which one",
                first.id, second);
    }
  }
  sqlite3_finalize(st);
  return rv;
}

int wr_store_account_list(wr_store *s, wr_account **out, size_t *n) {
  sqlite3_stmt *st;
  wr_account *rows = NULL;
  size_t cnt = 0, cap = 0;
  int rv, rc;
  *out = NULL;
  *n = 0;
  rv = prepf(s, &st, "SELECT id, name, created_at FROM accounts ORDER BY created_at, id", "");
  if (rv != WR_OK) return rv;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) read_account(st, PUSH(rows, cnt, cap));
  if (rc != SQLITE_DONE) {
    rv = dberr(s, "read accounts");
    free(rows);
  } else {
    *out = rows;
    *n = cnt;
  }
  sqlite3_finalize(st);
  return rv;
}

int wr_store_ping(wr_store *s) {
  sqlite3_stmt *st;
  int rv = prepf(s, &st, "SELECT 1 FROM accounts LIMIT 1", "");
  if (rv != WR_OK) return rv;
  rv = step_row(s, st, "read the store");
  sqlite3_finalize(st);
  /* An empty table still proves the database answers. */
  return rv == WR_ERR_NOTFOUND ? WR_OK : rv;
}

/* --- zones ---------------------------------------------------------------------- */

static void read_zone(sqlite3_stmt *st, wr_zone *z) {
  col_copy(st, 0, z->id, sizeof(z->id));
  col_copy(st, 1, z->account_id, sizeof(z->account_id));
  col_copy(st, 2, z->name, sizeof(z->name));
  z->created_at = sqlite3_column_int64(st, 3);
}

int wr_store_zone_create(wr_store *s, const char *actor, const char *account_id, const char *name,
                         wr_zone *out) {
  wr_zone z = {0};
  wr_account a;
  sqlite3_stmt *st = NULL;
  char msg[WR_STORE_ERRMSG_MAX];
  int rv;
  if (wr_store_check_dns_name(name ? name : "", 0, z.name, msg, sizeof(msg)) != WR_OK)
    return serr(s, WR_ERR_INVAL, "zone: %s", msg);
  if ((rv = new_hex_id(s, z.id)) != WR_OK) return rv;
  z.created_at = now_s(s);
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_account_get(s, account_id, &a)) != WR_OK) goto out;
  copy_str(z.account_id, sizeof(z.account_id), a.id);
  if ((rv = prepf(s, &st, "SELECT account_id FROM zones WHERE name = ?", "s", z.name)) != WR_OK)
    goto out;
  rv = step_row(s, st, "read zones");
  if (rv == WR_OK) {
    rv = serr(s, WR_ERR_EXISTS, "zone %s already exists (account %s)", z.name,
              (const char *)sqlite3_column_text(st, 0));
    goto out;
  }
  if (rv != WR_ERR_NOTFOUND) goto out;
  rv = execf(s, NULL, "create zone",
             "INSERT INTO zones(id, account_id, name, created_at) VALUES (?, ?, ?, ?)", "sssi", z.id,
             z.account_id, z.name, z.created_at);
  if (rv == WR_OK)
    rv = audit_insert(s, actor, z.account_id, "zone.create", "zone", z.id,
                      json_pack("{s:s}", "name", z.name));
out:
  sqlite3_finalize(st);
  rv = tx_end(s, rv);
  if (rv == WR_OK && out) *out = z;
  return rv;
}

int wr_store_zone_get(wr_store *s, const char *id, wr_zone *out) {
  sqlite3_stmt *st;
  char b[80];
  int rv = prepf(s, &st, "SELECT id, account_id, name, created_at FROM zones WHERE id = lower(?)",
                 "s", id);
  if (rv != WR_OK) return rv;
  rv = step_row(s, st, "read zone");
  if (rv == WR_OK) read_zone(st, out);
  else if (rv == WR_ERR_NOTFOUND) serr(s, rv, "no zone with id %s", q(id, b, sizeof(b)));
  sqlite3_finalize(st);
  return rv;
}

int wr_store_zone_list(wr_store *s, const char *account_id, wr_zone **out, size_t *n) {
  sqlite3_stmt *st;
  wr_zone *rows = NULL;
  size_t cnt = 0, cap = 0;
  int rv, rc;
  *out = NULL;
  *n = 0;
  rv = prepf(s, &st,
             "SELECT id, account_id, name, created_at FROM zones"
             " WHERE (?1 IS NULL OR account_id = ?1) ORDER BY name",
             "s", account_id);
  if (rv != WR_OK) return rv;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) read_zone(st, PUSH(rows, cnt, cap));
  if (rc != SQLITE_DONE) {
    rv = dberr(s, "read zones");
    free(rows);
  } else {
    *out = rows;
    *n = cnt;
  }
  sqlite3_finalize(st);
  return rv;
}

/* --- users and tokens -------------------------------------------------------------- */

static int check_email(wr_store *s, const char *email) {
  char b[80], canon[WR_STORE_HOST_MAX + 1], msg[WR_STORE_ERRMSG_MAX];
  const char *at;
  int rv;
  if ((rv = check_text(s, "email", email, WR_STORE_EMAIL_MAX)) != WR_OK) return rv;
  at = strrchr(email, '@');
  if (!at || at == email || strchr(email, ' '))
    return serr(s, WR_ERR_INVAL, "\"%s\" is not an email address (want name@domain)",
                q(email, b, sizeof(b)));
  if (wr_store_check_dns_name(at + 1, 0, canon, msg, sizeof(msg)) != WR_OK)
    return serr(s, WR_ERR_INVAL, "email \"%s\": the domain is not valid: %s", q(email, b, sizeof(b)),
                msg);
  return WR_OK;
}

static void read_user(sqlite3_stmt *st, wr_user *u) {
  col_copy(st, 0, u->id, sizeof(u->id));
  col_copy(st, 1, u->account_id, sizeof(u->account_id));
  col_copy(st, 2, u->email, sizeof(u->email));
  u->has_password = sqlite3_column_type(st, 3) != SQLITE_NULL;
  u->is_service = sqlite3_column_int(st, 4);
  u->created_at = sqlite3_column_int64(st, 5);
}

#define USER_SELECT "SELECT id, account_id, email, password_hash, is_service, created_at FROM users "

int wr_store_user_get_by_email(wr_store *s, const char *email, wr_user *out) {
  sqlite3_stmt *st;
  char b[80];
  int rv = prepf(s, &st, USER_SELECT "WHERE email = ?", "s", email);
  if (rv != WR_OK) return rv;
  rv = step_row(s, st, "read user");
  if (rv == WR_OK) read_user(st, out);
  else if (rv == WR_ERR_NOTFOUND) serr(s, rv, "no user with email %s", q(email, b, sizeof(b)));
  sqlite3_finalize(st);
  return rv;
}

int wr_store_user_create(wr_store *s, const char *actor, const char *account_id, const char *email,
                         const char *password_hash, int is_service, wr_user *out) {
  wr_user u = {0}, old;
  wr_account a;
  int rv;
  if ((rv = check_email(s, email)) != WR_OK) return rv;
  if (password_hash && (rv = check_text(s, "password hash", password_hash, 512)) != WR_OK) return rv;
  if ((rv = new_hex_id(s, u.id)) != WR_OK) return rv;
  copy_str(u.email, sizeof(u.email), email);
  u.has_password = password_hash != NULL;
  u.is_service = is_service != 0;
  u.created_at = now_s(s);
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_account_get(s, account_id, &a)) != WR_OK) goto out;
  copy_str(u.account_id, sizeof(u.account_id), a.id);
  rv = wr_store_user_get_by_email(s, email, &old);
  if (rv == WR_OK) {
    rv = serr(s, WR_ERR_EXISTS, "a user with email %s already exists", old.email);
    goto out;
  }
  if (rv != WR_ERR_NOTFOUND) goto out;
  rv = execf(s, NULL, "create user",
             "INSERT INTO users(id, account_id, email, password_hash, is_service, created_at)"
             " VALUES (?, ?, ?, ?, ?, ?)",
             "ssssii", u.id, u.account_id, u.email, password_hash, (int64_t)u.is_service,
             u.created_at);
  if (rv == WR_OK)
    rv = audit_insert(s, actor, u.account_id, "user.create", "user", u.id,
                      json_pack("{s:s,s:b}", "email", u.email, "is_service", u.is_service));
out:
  rv = tx_end(s, rv);
  if (rv == WR_OK && out) *out = u;
  return rv;
}

static int token_hash(wr_store *s, const char *token, uint8_t out[32]) {
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), out) != 0)
    return serr(s, WR_ERR_CRYPTO, "SHA-256 is not available");
  return WR_OK;
}

int wr_store_token_create(wr_store *s, const char *actor, const char *user_id, const char *zone_id,
                          char token[WR_STORE_TOKEN_LEN + 1], wr_api_token *out) {
  /* base64url's alphabet: safe in headers, URLs and shells. */
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  uint8_t rnd[WR_STORE_TOKEN_LEN], hash[32];
  wr_api_token k = {0};
  sqlite3_stmt *st = NULL;
  char b[80];
  int rv;
  if ((rv = new_hex_id(s, k.id)) != WR_OK) return rv;
  if (wr_random_bytes(rnd, sizeof(rnd)) != WR_OK)
    return serr(s, WR_ERR_CRYPTO, "cannot draw random bytes for a token");
  /* 64 symbols: the low 6 bits of each byte are uniform; 240 bits in all. */
  for (size_t i = 0; i < WR_STORE_TOKEN_LEN; i++) token[i] = alphabet[rnd[i] & 63];
  token[WR_STORE_TOKEN_LEN] = '\0';
  memset(rnd, 0, sizeof(rnd));
  if ((rv = token_hash(s, token, hash)) != WR_OK) goto out_notx;
  k.created_at = now_s(s);
  if ((rv = tx_begin(s)) != WR_OK) goto out_notx;
  if ((rv = prepf(s, &st, "SELECT id, account_id FROM users WHERE id = lower(?)", "s", user_id)) != WR_OK)
    goto out;
  if ((rv = step_row(s, st, "read user")) != WR_OK) {
    if (rv == WR_ERR_NOTFOUND) serr(s, rv, "no user with id %s", q(user_id ? user_id : "", b, sizeof(b)));
    goto out;
  }
  col_copy(st, 0, k.user_id, sizeof(k.user_id));
  col_copy(st, 1, k.account_id, sizeof(k.account_id));
  if (zone_id) {
    wr_zone z;
    if ((rv = wr_store_zone_get(s, zone_id, &z)) != WR_OK) goto out;
    if (strcmp(z.account_id, k.account_id) != 0) {
      rv = serr(s, WR_ERR_INVAL, "zone %s belongs to another account than user %s", z.name, k.user_id);
      goto out;
    }
    copy_str(k.zone_id, sizeof(k.zone_id), z.id);
  }
  rv = execf(s, NULL, "create API token",
             "INSERT INTO api_tokens(id, user_id, token_hash, zone_id, created_at) VALUES (?, ?, ?, ?, ?)",
             "ssbsi", k.id, k.user_id, hash, sizeof(hash), zone_id ? k.zone_id : NULL, k.created_at);
  if (rv == WR_OK)
    rv = audit_insert(s, actor, k.account_id, "token.create", "token", k.id,
                      json_pack("{s:s,s:s?}", "user_id", k.user_id, "zone_id",
                                zone_id ? k.zone_id : NULL));
out:
  sqlite3_finalize(st);
  rv = tx_end(s, rv);
out_notx:
  if (rv != WR_OK) memset(token, 0, WR_STORE_TOKEN_LEN + 1);
  else if (out) *out = k;
  return rv;
}

#define TOKEN_SELECT                                                                               \
  "SELECT k.id, k.user_id, u.account_id, ifnull(k.zone_id, ''), k.created_at, ifnull(k.revoked_at, 0)" \
  " FROM api_tokens k JOIN users u ON u.id = k.user_id "

static void read_token(sqlite3_stmt *st, wr_api_token *k) {
  col_copy(st, 0, k->id, sizeof(k->id));
  col_copy(st, 1, k->user_id, sizeof(k->user_id));
  col_copy(st, 2, k->account_id, sizeof(k->account_id));
  col_copy(st, 3, k->zone_id, sizeof(k->zone_id));
  k->created_at = sqlite3_column_int64(st, 4);
  k->revoked_at = sqlite3_column_int64(st, 5);
}

int wr_store_token_verify(wr_store *s, const char *token, wr_api_token *out) {
  uint8_t hash[32];
  sqlite3_stmt *st;
  wr_api_token k;
  int rv;
  /* Lookup by hash: the database never compares secrets, so there is no
   * timing oracle on the token itself. */
  if (!token || !*token || strlen(token) > 1024) return serr(s, WR_ERR_DENIED, "invalid API token");
  if ((rv = token_hash(s, token, hash)) != WR_OK) return rv;
  if ((rv = prepf(s, &st, TOKEN_SELECT "WHERE k.token_hash = ?", "b", hash, sizeof(hash))) != WR_OK)
    return rv;
  rv = step_row(s, st, "read API token");
  if (rv == WR_OK) {
    read_token(st, &k);
    if (k.revoked_at) rv = serr(s, WR_ERR_DENIED, "invalid API token");
    else if (out) *out = k;
  } else if (rv == WR_ERR_NOTFOUND) {
    rv = serr(s, WR_ERR_DENIED, "invalid API token");
  }
  sqlite3_finalize(st);
  return rv;
}

int wr_store_token_revoke(wr_store *s, const char *actor, const char *token_id) {
  sqlite3_stmt *st = NULL;
  wr_api_token k;
  char b[80];
  int rv;
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  if ((rv = prepf(s, &st, TOKEN_SELECT "WHERE k.id = lower(?)", "s", token_id)) != WR_OK) goto out;
  rv = step_row(s, st, "read API token");
  if (rv == WR_ERR_NOTFOUND) serr(s, rv, "no API token with id %s", q(token_id, b, sizeof(b)));
  if (rv != WR_OK) goto out;
  read_token(st, &k);
  if (k.revoked_at) {
    rv = serr(s, WR_ERR_INVAL, "API token %s is already revoked", k.id);
    goto out;
  }
  rv = execf(s, NULL, "revoke API token", "UPDATE api_tokens SET revoked_at = ? WHERE id = ?", "is",
             now_s(s), k.id);
  if (rv == WR_OK)
    rv = audit_insert(s, actor, k.account_id, "token.revoke", "token", k.id,
                      json_pack("{s:s}", "user_id", k.user_id));
out:
  sqlite3_finalize(st);
  return tx_end(s, rv);
}

/* --- tunnels ---------------------------------------------------------------------- */

#define TUNNEL_SELECT                                                                              \
  "SELECT t.id, t.account_id, t.name, t.secret, t.created_at, ifnull(t.deleted_at, 0),"           \
  " t.config_src = 'cloudflare',"                                                                  \
  " (SELECT count(*) FROM connections c WHERE c.tunnel_id = t.id AND c.closed_at IS NULL)"         \
  " FROM tunnels t "

static void read_tunnel(sqlite3_stmt *st, wr_tunnel *t) {
  const void *secret = sqlite3_column_blob(st, 3);
  size_t slen = (size_t)sqlite3_column_bytes(st, 3);
  memset(t, 0, sizeof(*t));
  col_copy(st, 0, t->id, sizeof(t->id));
  col_copy(st, 1, t->account_id, sizeof(t->account_id));
  col_copy(st, 2, t->name, sizeof(t->name));
  /* The CHECK constraint bounds the length; clamp anyway so a hand-edited
   * file cannot overflow the struct. */
  if (slen > sizeof(t->secret)) slen = sizeof(t->secret);
  if (secret) memcpy(t->secret, secret, slen);
  t->secret_len = secret ? slen : 0;
  t->created_at = sqlite3_column_int64(st, 4);
  t->deleted_at = sqlite3_column_int64(st, 5);
  t->remote_managed = sqlite3_column_int(st, 6);
  t->active_conns = (unsigned)sqlite3_column_int64(st, 7);
}

int wr_store_tunnel_get(wr_store *s, const char *id, wr_tunnel *out) {
  char canon[WR_STORE_UUID_LEN + 1];
  sqlite3_stmt *st;
  int rv;
  if ((rv = canon_uuid(s, id, canon, "tunnel ID")) != WR_OK) return rv;
  if ((rv = prepf(s, &st, TUNNEL_SELECT "WHERE t.id = ?", "s", canon)) != WR_OK) return rv;
  rv = step_row(s, st, "read tunnel");
  if (rv == WR_OK) read_tunnel(st, out);
  else if (rv == WR_ERR_NOTFOUND) serr(s, rv, "no tunnel with ID %s", canon);
  sqlite3_finalize(st);
  return rv;
}

int wr_store_tunnel_find(wr_store *s, const char *account_id, const char *name, wr_tunnel *out) {
  sqlite3_stmt *st;
  char b[80];
  int rv = prepf(s, &st, TUNNEL_SELECT "WHERE t.account_id = lower(?) AND t.name = ? AND t.deleted_at IS NULL",
                 "ss", account_id, name);
  if (rv != WR_OK) return rv;
  rv = step_row(s, st, "read tunnel");
  if (rv == WR_OK) read_tunnel(st, out);
  else if (rv == WR_ERR_NOTFOUND) serr(s, rv, "no tunnel named \"%s\"", q(name, b, sizeof(b)));
  sqlite3_finalize(st);
  return rv;
}

int wr_store_tunnel_resolve(wr_store *s, const char *account_id, const char *ref, wr_tunnel *out) {
  wr_uuid u;
  wr_tunnel t;
  char b[80];
  int rv;
  if (!ref || !*ref) return serr(s, WR_ERR_INVAL, "no tunnel name or ID given");
  if (wr_uuid_parse(ref, strlen(ref), &u) != WR_OK) return wr_store_tunnel_find(s, account_id, ref, out);
  rv = wr_store_tunnel_get(s, ref, &t);
  if (rv == WR_OK && (t.deleted_at || strcmp(t.account_id, account_id) != 0))
    rv = serr(s, WR_ERR_NOTFOUND, "no tunnel with ID %s%s", q(ref, b, sizeof(b)),
              t.deleted_at ? " (it was deleted)" : "");
  if (rv == WR_OK) *out = t;
  return rv;
}

int wr_store_tunnel_create(wr_store *s, const char *actor, const char *account_id, const char *name,
                           const uint8_t *secret, size_t secret_len, wr_tunnel *out) {
  return wr_store_tunnel_create_ex(s, actor, account_id, name, secret, secret_len, 0, out);
}

int wr_store_tunnel_create_ex(wr_store *s, const char *actor, const char *account_id,
                              const char *name, const uint8_t *secret, size_t secret_len,
                              int remote_managed, wr_tunnel *out) {
  wr_tunnel t;
  wr_account a;
  char msg[WR_STORE_ERRMSG_MAX];
  int rv;
  memset(&t, 0, sizeof(t));
  if (wr_store_check_tunnel_name(name, msg, sizeof(msg)) != WR_OK)
    return serr(s, WR_ERR_INVAL, "%s", msg);
  if (secret) {
    if (secret_len < WR_STORE_SECRET_MIN || secret_len > WR_STORE_SECRET_MAX)
      return serr(s, WR_ERR_INVAL, "a tunnel secret must be %d to %d bytes long, not %zu",
                  WR_STORE_SECRET_MIN, WR_STORE_SECRET_MAX, secret_len);
    memcpy(t.secret, secret, secret_len);
    t.secret_len = secret_len;
  } else {
    /* As cloudflared's `tunnel create`: 32 bytes from the CSPRNG. */
    t.secret_len = 32;
    if (wr_random_bytes(t.secret, t.secret_len) != WR_OK)
      return serr(s, WR_ERR_CRYPTO, "cannot draw random bytes for the tunnel secret");
  }
  if ((rv = new_uuid(s, t.id)) != WR_OK) goto out_notx;
  copy_str(t.name, sizeof(t.name), name);
  t.created_at = now_s(s);
  if ((rv = tx_begin(s)) != WR_OK) goto out_notx;
  if ((rv = wr_store_account_get(s, account_id, &a)) != WR_OK) goto out;
  copy_str(t.account_id, sizeof(t.account_id), a.id);
  {
    wr_tunnel old;
    rv = wr_store_tunnel_find(s, a.id, name, &old);
    if (rv == WR_OK) {
      rv = serr(s, WR_ERR_EXISTS, "a tunnel named \"%s\" already exists (ID %s)", old.name, old.id);
      goto out;
    }
    if (rv != WR_ERR_NOTFOUND) goto out;
  }
  t.remote_managed = remote_managed != 0;
  rv = execf(s, NULL, "create tunnel",
             "INSERT INTO tunnels(id, account_id, name, secret, created_at, config_src)"
             " VALUES (?, ?, ?, ?, ?, ?)",
             "sssbis", t.id, t.account_id, t.name, t.secret, t.secret_len, t.created_at,
             t.remote_managed ? "cloudflare" : "local");
  if (rv == WR_OK)
    rv = audit_insert(s, actor, t.account_id, "tunnel.create", "tunnel", t.id,
                      t.remote_managed ? json_pack("{s:s,s:s}", "name", t.name, "config_src", "cloudflare")
                                       : json_pack("{s:s}", "name", t.name));
out:
  rv = tx_end(s, rv);
out_notx:
  if (rv == WR_OK && out) *out = t;
  memset(&t, 0, sizeof(t)); /* do not leave the secret on the stack */
  return rv;
}

/* The WHERE clause of wr_store_tunnel_list and _count; parameters ?1..?8 are
 * bound in the order of format "sisisssi". */
#define TUNNEL_WHERE                                                                               \
  "WHERE t.account_id = lower(?1) AND (?2 OR t.deleted_at IS NULL) AND (?3 IS NULL OR t.name = ?3)" \
  " AND (?4 = 0 OR t.deleted_at IS NOT NULL) AND (?5 IS NULL OR t.id = ?5)"                         \
  " AND (?6 IS NULL OR substr(t.name, 1, length(?6)) = ?6)"                                        \
  " AND (?7 IS NULL OR substr(t.name, 1, length(?7)) <> ?7)"                                       \
  " AND (?8 = 0 OR (t.created_at <= ?8 AND (t.deleted_at IS NULL OR t.deleted_at > ?8)))"

/* Checks |f| and puts its canonical tunnel id (if any) in |id|. */
static int tunnel_filter_check(wr_store *s, const wr_tunnel_filter *f, char id[WR_STORE_UUID_LEN + 1]) {
  if (!f || !f->account_id) return serr(s, WR_ERR_INVAL, "listing tunnels needs an account");
  id[0] = '\0';
  if (f->id) return canon_uuid(s, f->id, id, "tunnel ID");
  return WR_OK;
}

int wr_store_tunnel_list(wr_store *s, const wr_tunnel_filter *f, wr_tunnel **out, size_t *n) {
  sqlite3_stmt *st;
  wr_tunnel *rows = NULL;
  size_t cnt = 0, cap = 0;
  int rv, rc;
  *out = NULL;
  *n = 0;
  char id[WR_STORE_UUID_LEN + 1];
  if ((rv = tunnel_filter_check(s, f, id)) != WR_OK) return rv;
  rv = prepf(s, &st, TUNNEL_SELECT TUNNEL_WHERE " ORDER BY t.created_at, t.rowid LIMIT ?9 OFFSET ?10",
             "sisisssiii", f->account_id, (int64_t)(f->include_deleted || f->only_deleted), f->name,
             (int64_t)(f->only_deleted != 0), id[0] ? id : NULL, f->name_prefix, f->exclude_prefix,
             f->existed_at, f->limit ? (int64_t)f->limit : (int64_t)-1, (int64_t)f->offset);
  if (rv != WR_OK) return rv;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) read_tunnel(st, PUSH(rows, cnt, cap));
  if (rc != SQLITE_DONE) {
    rv = dberr(s, "read tunnels");
    free(rows);
  } else {
    *out = rows;
    *n = cnt;
  }
  sqlite3_finalize(st);
  return rv;
}

int wr_store_tunnel_delete(wr_store *s, const char *actor, const char *id, size_t *routes_removed) {
  wr_tunnel t;
  sqlite3_stmt *st = NULL;
  json_t *hosts = NULL;
  int rv, rc, ip_removed = 0;
  int64_t now = now_s(s);
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_tunnel_get(s, id, &t)) != WR_OK) goto out;
  if (t.deleted_at) {
    rv = serr(s, WR_ERR_INVAL, "tunnel %s (%s) is already deleted", t.name, t.id);
    goto out;
  }
  /* The audit row lists the hostnames that stop resolving, so an operator
   * can see what a delete took down. */
  hosts = json_array();
  if ((rv = prepf(s, &st, "SELECT hostname FROM routes WHERE tunnel_id = ? ORDER BY hostname", "s",
                  t.id)) != WR_OK)
    goto out;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    json_array_append_new(hosts, json_string((const char *)sqlite3_column_text(st, 0)));
  if (rc != SQLITE_DONE) {
    rv = dberr(s, "read routes");
    goto out;
  }
  if ((rv = execf(s, NULL, "delete routes", "DELETE FROM routes WHERE tunnel_id = ?", "s", t.id)) != WR_OK)
    goto out;
  if ((rv = execf(s, &ip_removed, "delete IP routes",
                  "UPDATE ip_routes SET deleted_at = ? WHERE tunnel_id = ? AND deleted_at IS NULL", "is",
                  now, t.id)) != WR_OK)
    goto out;
  if ((rv = execf(s, NULL, "delete tunnel", "UPDATE tunnels SET deleted_at = ? WHERE id = ?", "is", now,
                  t.id)) != WR_OK)
    goto out;
  if (routes_removed) *routes_removed = json_array_size(hosts);
  rv = audit_insert(s, actor, t.account_id, "tunnel.delete", "tunnel", t.id,
                    json_pack("{s:s,s:O,s:i}", "name", t.name, "routes", hosts, "ip_routes_removed",
                              ip_removed));
out:
  json_decref(hosts);
  sqlite3_finalize(st);
  memset(&t, 0, sizeof(t));
  return tx_end(s, rv);
}

/* --- connections ------------------------------------------------------------------- */

static int field_ok(const char *f, size_t size) { return memchr(f, '\0', size) != NULL; }

int wr_store_conn_open(wr_store *s, const wr_conn_rec *c) {
  char id[WR_STORE_UUID_LEN + 1], client[WR_STORE_UUID_LEN + 1];
  wr_tunnel t;
  int rv;
  if ((rv = canon_uuid(s, c->id, id, "connection ID")) != WR_OK) return rv;
  if ((rv = canon_uuid(s, c->client_id, client, "connector ID")) != WR_OK) return rv;
  if (c->conn_index > 255) return serr(s, WR_ERR_INVAL, "connection index %u is over 255", c->conn_index);
  if (!field_ok(c->client_version, sizeof(c->client_version)) || !field_ok(c->arch, sizeof(c->arch)) ||
      !field_ok(c->features, sizeof(c->features)) || !field_ok(c->origin_ip, sizeof(c->origin_ip)) ||
      !field_ok(c->edge_location, sizeof(c->edge_location)))
    return serr(s, WR_ERR_INVAL, "a connection field is not NUL-terminated");
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_tunnel_get(s, c->tunnel_id, &t)) != WR_OK) goto out;
  if (t.deleted_at) {
    rv = serr(s, WR_ERR_INVAL, "tunnel %s is deleted", t.id);
    goto out;
  }
  rv = execf(s, NULL, "record connection",
             "INSERT INTO connections(id, tunnel_id, conn_index, client_id, client_version, arch,"
             " features, origin_ip, edge_location, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             "ssissssssi", id, t.id, (int64_t)c->conn_index, client, c->client_version, c->arch,
             c->features[0] ? c->features : "[]", c->origin_ip, c->edge_location,
             c->opened_at ? c->opened_at : now_s(s));
  if (rv == WR_ERR_EXISTS) serr(s, rv, "connection %s is already recorded", id);
out:
  memset(&t, 0, sizeof(t));
  return tx_end(s, rv);
}

int wr_store_conn_close(wr_store *s, const char *id) {
  char canon[WR_STORE_UUID_LEN + 1];
  int rv, changes = 0;
  if ((rv = canon_uuid(s, id, canon, "connection ID")) != WR_OK) return rv;
  rv = execf(s, &changes, "close connection",
             "UPDATE connections SET closed_at = ? WHERE id = ? AND closed_at IS NULL", "is", now_s(s),
             canon);
  if (rv == WR_OK && changes == 0) rv = serr(s, WR_ERR_NOTFOUND, "no open connection %s", canon);
  return rv;
}

int wr_store_conn_close_all(wr_store *s, size_t *closed) {
  int changes = 0;
  int rv = execf(s, &changes, "close connections",
                 "UPDATE connections SET closed_at = ? WHERE closed_at IS NULL", "i", now_s(s));
  if (rv == WR_OK && closed) *closed = (size_t)changes;
  return rv;
}

int wr_store_conn_list(wr_store *s, const char *tunnel_id, int open_only, wr_conn_rec **out,
                       size_t *n) {
  char canon[WR_STORE_UUID_LEN + 1];
  sqlite3_stmt *st;
  wr_conn_rec *rows = NULL;
  size_t cnt = 0, cap = 0;
  int rv, rc;
  *out = NULL;
  *n = 0;
  if ((rv = canon_uuid(s, tunnel_id, canon, "tunnel ID")) != WR_OK) return rv;
  rv = prepf(s, &st,
             "SELECT id, tunnel_id, conn_index, client_id, client_version, arch, features, origin_ip,"
             " edge_location, opened_at, ifnull(closed_at, 0) FROM connections"
             " WHERE tunnel_id = ? AND (? = 0 OR closed_at IS NULL) ORDER BY opened_at, rowid",
             "si", canon, (int64_t)(open_only != 0));
  if (rv != WR_OK) return rv;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    wr_conn_rec *c = PUSH(rows, cnt, cap);
    col_copy(st, 0, c->id, sizeof(c->id));
    col_copy(st, 1, c->tunnel_id, sizeof(c->tunnel_id));
    c->conn_index = (unsigned)sqlite3_column_int(st, 2);
    col_copy(st, 3, c->client_id, sizeof(c->client_id));
    col_copy(st, 4, c->client_version, sizeof(c->client_version));
    col_copy(st, 5, c->arch, sizeof(c->arch));
    col_copy(st, 6, c->features, sizeof(c->features));
    col_copy(st, 7, c->origin_ip, sizeof(c->origin_ip));
    col_copy(st, 8, c->edge_location, sizeof(c->edge_location));
    c->opened_at = sqlite3_column_int64(st, 9);
    c->closed_at = sqlite3_column_int64(st, 10);
  }
  if (rc != SQLITE_DONE) {
    rv = dberr(s, "read connections");
    free(rows);
  } else {
    *out = rows;
    *n = cnt;
  }
  sqlite3_finalize(st);
  return rv;
}

/* --- routes ------------------------------------------------------------------------- */

const char *wr_route_change_name(wr_route_change c) {
  switch (c) {
  case WR_ROUTE_NEW:
    return "new";
  case WR_ROUTE_UPDATED:
    return "updated";
  case WR_ROUTE_UNCHANGED:
    return "unchanged";
  }
  return "unknown";
}

#define ROUTE_SELECT                                                                               \
  "SELECT r.id, r.account_id, r.zone_id, z.name, r.hostname, r.tunnel_id, t.name, r.created_at"   \
  " FROM routes r JOIN zones z ON z.id = r.zone_id JOIN tunnels t ON t.id = r.tunnel_id "

static void read_route(sqlite3_stmt *st, wr_route *r) {
  memset(r, 0, sizeof(*r));
  col_copy(st, 0, r->id, sizeof(r->id));
  col_copy(st, 1, r->account_id, sizeof(r->account_id));
  col_copy(st, 2, r->zone_id, sizeof(r->zone_id));
  col_copy(st, 3, r->zone_name, sizeof(r->zone_name));
  col_copy(st, 4, r->hostname, sizeof(r->hostname));
  col_copy(st, 5, r->tunnel_id, sizeof(r->tunnel_id));
  col_copy(st, 6, r->tunnel_name, sizeof(r->tunnel_name));
  r->created_at = sqlite3_column_int64(st, 7);
}

int wr_store_route_get(wr_store *s, const char *hostname, wr_route *out) {
  sqlite3_stmt *st;
  char b[80];
  int rv = prepf(s, &st, ROUTE_SELECT "WHERE r.hostname = ?", "s", hostname);
  if (rv != WR_OK) return rv;
  rv = step_row(s, st, "read route");
  if (rv == WR_OK) read_route(st, out);
  else if (rv == WR_ERR_NOTFOUND) serr(s, rv, "no route for %s", q(hostname, b, sizeof(b)));
  sqlite3_finalize(st);
  return rv;
}

/* Finds the zone a hostname belongs to: the most specific zone of the whole
 * edge that contains it, so a delegated sub-zone of another account wins
 * over its parent. |apex| is set when the hostname equals a zone name. */
static int zone_for_host(wr_store *s, const char *host, wr_zone *out, int *apex) {
  wr_zone *zones = NULL;
  size_t n = 0, best_len = 0;
  int rv = wr_store_zone_list(s, NULL, &zones, &n), found = 0;
  *apex = 0;
  if (rv != WR_OK) return rv;
  for (size_t i = 0; i < n; i++) {
    size_t zl = strlen(zones[i].name);
    int eq = strcmp(host, zones[i].name) == 0;
    if ((eq || host_in_zone(host, zones[i].name)) && zl >= best_len) {
      *out = zones[i];
      best_len = zl;
      found = 1;
      *apex = eq;
    }
  }
  free(zones);
  return found ? WR_OK : WR_ERR_NOTFOUND;
}

/* The account's zone names, for "not inside any zone" messages. */
static void account_zone_names(wr_store *s, const char *account_id, char *buf, size_t size) {
  wr_zone *zones = NULL;
  size_t n = 0, used = 0;
  buf[0] = '\0';
  if (wr_store_zone_list(s, account_id, &zones, &n) != WR_OK) return;
  for (size_t i = 0; i < n && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", zones[i].name);
  free(zones);
}

int wr_store_route_dns_add(wr_store *s, const char *actor, const char *zone_id, const char *tunnel_id,
                           const char *hostname, int overwrite, wr_route *out,
                           wr_route_change *change) {
  char host[WR_STORE_HOST_MAX + 1], msg[WR_STORE_ERRMSG_MAX], route_id[WR_STORE_UUID_LEN + 1];
  wr_tunnel t;
  wr_zone z, given = {0};
  wr_route old;
  int rv, apex = 0;
  wr_route_change ch = WR_ROUTE_NEW;
  if (wr_store_check_dns_name(hostname ? hostname : "", 1, host, msg, sizeof(msg)) != WR_OK)
    return serr(s, WR_ERR_INVAL, "hostname: %s", msg);
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_tunnel_get(s, tunnel_id, &t)) != WR_OK) goto out;
  if (t.deleted_at) {
    rv = serr(s, WR_ERR_INVAL, "tunnel %s (%s) is deleted", t.name, t.id);
    goto out;
  }
  if (zone_id) {
    if ((rv = wr_store_zone_get(s, zone_id, &given)) != WR_OK) goto out;
    if (strcmp(given.account_id, t.account_id) != 0) {
      rv = serr(s, WR_ERR_INVAL, "zone %s and tunnel %s belong to different accounts", given.name, t.id);
      goto out;
    }
    if (strcmp(host, given.name) == 0) {
      rv = serr(s, WR_ERR_INVAL,
                "%s is the zone apex of %s: route a name inside the zone, e.g. app.%s", host,
                given.name, given.name);
      goto out;
    }
    if (!host_in_zone(host, given.name)) {
      rv = serr(s, WR_ERR_INVAL, "%s is not inside zone %s", host, given.name);
      goto out;
    }
  }
  rv = zone_for_host(s, host, &z, &apex);
  if (rv == WR_ERR_NOTFOUND) {
    char names[256];
    account_zone_names(s, t.account_id, names, sizeof(names));
    rv = serr(s, WR_ERR_INVAL, "%s is not inside %s%s", host,
              strchr(names, ',') ? "any zone of this account: " : "zone ",
              names[0] ? names : "(the account has no zones)");
    goto out;
  }
  if (rv != WR_OK) goto out;
  if (apex) {
    rv = serr(s, WR_ERR_INVAL, "%s is the zone apex of %s: route a name inside the zone, e.g. app.%s",
              host, z.name, z.name);
    goto out;
  }
  if (strcmp(z.account_id, t.account_id) != 0) {
    rv = serr(s, WR_ERR_INVAL, "%s is in zone %s, which belongs to another account", host, z.name);
    goto out;
  }
  if (zone_id && strcmp(z.id, given.id) != 0) {
    rv = serr(s, WR_ERR_INVAL, "%s belongs to the more specific zone %s, not %s", host, z.name, given.name);
    goto out;
  }

  rv = wr_store_route_get(s, host, &old);
  if (rv == WR_OK) {
    if (strcmp(old.tunnel_id, t.id) == 0 && strcmp(old.zone_id, z.id) == 0) {
      ch = WR_ROUTE_UNCHANGED; /* nothing changes, so nothing to audit */
      goto out;
    }
    if (strcmp(old.account_id, t.account_id) != 0) {
      rv = serr(s, WR_ERR_EXISTS, "%s is routed by another account", host);
      goto out;
    }
    if (!overwrite) {
      rv = serr(s, WR_ERR_EXISTS, "%s is already routed to tunnel %s (%s)", host, old.tunnel_name,
                old.tunnel_id);
      goto out;
    }
    ch = WR_ROUTE_UPDATED;
    rv = execf(s, NULL, "update route", "UPDATE routes SET tunnel_id = ?, zone_id = ? WHERE id = ?",
               "sss", t.id, z.id, old.id);
    if (rv == WR_OK)
      rv = audit_insert(s, actor, t.account_id, "route.update", "route", host,
                        json_pack("{s:s,s:s,s:s,s:s}", "type", "dns", "tunnel_id", t.id,
                                  "previous_tunnel_id", old.tunnel_id, "zone", z.name));
    goto out;
  }
  if (rv != WR_ERR_NOTFOUND) goto out;
  if ((rv = new_uuid(s, route_id)) != WR_OK) goto out;
  rv = execf(s, NULL, "create route",
             "INSERT INTO routes(id, account_id, zone_id, hostname, tunnel_id, type, created_at)"
             " VALUES (?, ?, ?, ?, ?, 'dns', ?)",
             "sssssi", route_id, t.account_id, z.id, host, t.id, now_s(s));
  if (rv == WR_OK)
    rv = audit_insert(s, actor, t.account_id, "route.create", "route", host,
                      json_pack("{s:s,s:s,s:s}", "type", "dns", "tunnel_id", t.id, "zone", z.name));
out:
  memset(&t, 0, sizeof(t));
  rv = tx_end(s, rv);
  if (rv == WR_OK) {
    if (change) *change = ch;
    if (out) rv = wr_store_route_get(s, host, out);
  }
  return rv;
}

int wr_store_route_delete(wr_store *s, const char *actor, const char *hostname) {
  char host[WR_STORE_HOST_MAX + 1], msg[WR_STORE_ERRMSG_MAX];
  wr_route r;
  int rv;
  if (wr_store_check_dns_name(hostname ? hostname : "", 1, host, msg, sizeof(msg)) != WR_OK)
    return serr(s, WR_ERR_INVAL, "hostname: %s", msg);
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_route_get(s, host, &r)) != WR_OK) goto out;
  rv = execf(s, NULL, "delete route", "DELETE FROM routes WHERE id = ?", "s", r.id);
  if (rv == WR_OK)
    rv = audit_insert(s, actor, r.account_id, "route.delete", "route", r.hostname,
                      json_pack("{s:s,s:s}", "type", "dns", "tunnel_id", r.tunnel_id));
out:
  return tx_end(s, rv);
}

int wr_store_route_list(wr_store *s, const char *account_id, const char *tunnel_id, wr_route **out,
                        size_t *n) {
  char canon[WR_STORE_UUID_LEN + 1];
  sqlite3_stmt *st;
  wr_route *rows = NULL;
  size_t cnt = 0, cap = 0;
  int rv, rc;
  *out = NULL;
  *n = 0;
  if (tunnel_id && (rv = canon_uuid(s, tunnel_id, canon, "tunnel ID")) != WR_OK) return rv;
  rv = prepf(s, &st,
             ROUTE_SELECT "WHERE (?1 IS NULL OR r.account_id = lower(?1)) AND (?2 IS NULL OR r.tunnel_id = ?2)"
                          " ORDER BY r.hostname",
             "ss", account_id, tunnel_id ? canon : NULL);
  if (rv != WR_OK) return rv;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) read_route(st, PUSH(rows, cnt, cap));
  if (rc != SQLITE_DONE) {
    rv = dberr(s, "read routes");
    free(rows);
  } else {
    *out = rows;
    *n = cnt;
  }
  sqlite3_finalize(st);
  return rv;
}

/* --- users: passwords, listing, token rolling (edge/login.h) ---------------------- */

int wr_store_user_password_hash(wr_store *s, const char *user_id, char *out, size_t size) {
  sqlite3_stmt *st;
  const char *h;
  char b[80];
  int rv;
  if (size) out[0] = '\0';
  if ((rv = prepf(s, &st, "SELECT password_hash FROM users WHERE id = lower(?)", "s", user_id)) != WR_OK)
    return rv;
  rv = step_row(s, st, "read user");
  if (rv == WR_ERR_NOTFOUND) {
    serr(s, rv, "no user with id %s", q(user_id ? user_id : "", b, sizeof(b)));
  } else if (rv == WR_OK) {
    h = (const char *)sqlite3_column_text(st, 0);
    if (!h) rv = serr(s, WR_ERR_NOTFOUND, "user %s has no password", q(user_id, b, sizeof(b)));
    else if (strlen(h) >= size) rv = serr(s, WR_ERR_LIMIT, "the stored password hash is too long");
    else memcpy(out, h, strlen(h) + 1);
  }
  sqlite3_finalize(st);
  return rv;
}

int wr_store_user_get(wr_store *s, const char *user_id, wr_user *out) {
  sqlite3_stmt *st;
  char b[80];
  int rv = prepf(s, &st, USER_SELECT "WHERE id = lower(?)", "s", user_id);
  if (rv != WR_OK) return rv;
  rv = step_row(s, st, "read user");
  if (rv == WR_OK) read_user(st, out);
  else if (rv == WR_ERR_NOTFOUND) serr(s, rv, "no user with id %s", q(user_id ? user_id : "", b, sizeof(b)));
  sqlite3_finalize(st);
  return rv;
}

int wr_store_user_set_password(wr_store *s, const char *actor, const char *user_id,
                               const char *password_hash) {
  wr_user u;
  int rv;
  if (password_hash && (rv = check_text(s, "password hash", password_hash, 512)) != WR_OK) return rv;
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_user_get(s, user_id, &u)) != WR_OK) goto out;
  rv = execf(s, NULL, "set password", "UPDATE users SET password_hash = ? WHERE id = ?", "ss",
             password_hash, u.id);
  if (rv == WR_OK)
    rv = audit_insert(s, actor, u.account_id, "user.password", "user", u.id,
                      json_pack("{s:s,s:b}", "email", u.email, "set", password_hash != NULL));
out:
  return tx_end(s, rv);
}

int wr_store_user_list(wr_store *s, const char *account_id, wr_user **out, size_t *n) {
  sqlite3_stmt *st;
  wr_user *rows = NULL;
  size_t cnt = 0, cap = 0;
  int rv, rc;
  *out = NULL;
  *n = 0;
  rv = prepf(s, &st, USER_SELECT "WHERE (?1 IS NULL OR account_id = lower(?1)) ORDER BY email", "s",
             account_id);
  if (rv != WR_OK) return rv;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) read_user(st, PUSH(rows, cnt, cap));
  if (rc != SQLITE_DONE) {
    rv = dberr(s, "read users");
    free(rows);
  } else {
    *out = rows;
    *n = cnt;
  }
  sqlite3_finalize(st);
  return rv;
}

int wr_store_token_list(wr_store *s, const char *user_id, int include_revoked, wr_api_token **out,
                        size_t *n) {
  sqlite3_stmt *st;
  wr_api_token *rows = NULL;
  size_t cnt = 0, cap = 0;
  int rv, rc;
  *out = NULL;
  *n = 0;
  rv = prepf(s, &st,
             TOKEN_SELECT "WHERE k.user_id = lower(?) AND (? OR k.revoked_at IS NULL)"
                          " ORDER BY k.created_at, k.id",
             "si", user_id, (int64_t)(include_revoked != 0));
  if (rv != WR_OK) return rv;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) read_token(st, PUSH(rows, cnt, cap));
  if (rc != SQLITE_DONE) {
    rv = dberr(s, "read API tokens");
    free(rows);
  } else {
    *out = rows;
    *n = cnt;
  }
  sqlite3_finalize(st);
  return rv;
}

int wr_store_token_roll(wr_store *s, const char *actor, const char *user_id, const char *zone_id,
                        char token[WR_STORE_TOKEN_LEN + 1], wr_api_token *out, size_t *revoked) {
  wr_user u;
  char msg[WR_STORE_ERRMSG_MAX];
  int rv, changed = 0;
  memset(token, 0, WR_STORE_TOKEN_LEN + 1);
  if (revoked) *revoked = 0;
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_user_get(s, user_id, &u)) != WR_OK) goto out;
  if (zone_id) {
    wr_zone z;
    if ((rv = wr_store_zone_get(s, zone_id, &z)) != WR_OK) goto out;
    if (strcmp(z.account_id, u.account_id) != 0) {
      rv = serr(s, WR_ERR_INVAL, "zone %s belongs to another account than user %s", z.name, u.email);
      goto out;
    }
  }
  rv = execf(s, &changed, "revoke API tokens",
             "UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", "is",
             now_s(s), u.id);
  if (rv == WR_OK)
    rv = audit_insert(s, actor, u.account_id, "token.roll", "user", u.id,
                      json_pack("{s:s,s:i}", "email", u.email, "revoked", changed));
out:
  if ((rv = tx_end(s, rv)) != WR_OK) return rv;
  if (revoked) *revoked = (size_t)changed;
  /* A second transaction: wr_store_token_create has its own. */
  if ((rv = wr_store_token_create(s, actor, u.id, zone_id, token, out)) != WR_OK) {
    snprintf(msg, sizeof(msg), "%s", s->errmsg);
    serr(s, rv, "revoked %d API token%s of %s but could not issue a new one (%s); run it again",
         changed, changed == 1 ? "" : "s", u.email, msg);
  }
  return rv;
}

/* --- schema 2: tunnel queries, connections, virtual networks, IP routes (REST API) --- */

int wr_store_tunnel_count(wr_store *s, const wr_tunnel_filter *f, size_t *n) {
  char id[WR_STORE_UUID_LEN + 1];
  sqlite3_stmt *st;
  int rv;
  *n = 0;
  if ((rv = tunnel_filter_check(s, f, id)) != WR_OK) return rv;
  rv = prepf(s, &st, "SELECT count(*) FROM tunnels t " TUNNEL_WHERE, "sisisssi", f->account_id,
             (int64_t)(f->include_deleted || f->only_deleted), f->name, (int64_t)(f->only_deleted != 0),
             id[0] ? id : NULL, f->name_prefix, f->exclude_prefix, f->existed_at);
  if (rv != WR_OK) return rv;
  rv = step_row(s, st, "count tunnels");
  if (rv == WR_OK) *n = (size_t)sqlite3_column_int64(st, 0);
  else if (rv == WR_ERR_NOTFOUND) rv = serr(s, WR_ERR_STORE, "count tunnels: no result");
  sqlite3_finalize(st);
  return rv;
}

int wr_store_tunnel_conn_times(wr_store *s, const char *tunnel_id, int64_t *active_at,
                               int64_t *inactive_at) {
  char canon[WR_STORE_UUID_LEN + 1];
  sqlite3_stmt *st;
  int rv;
  *active_at = *inactive_at = 0;
  if ((rv = canon_uuid(s, tunnel_id, canon, "tunnel ID")) != WR_OK) return rv;
  rv = prepf(s, &st,
             "SELECT ifnull((SELECT min(opened_at) FROM connections WHERE tunnel_id = ?1 AND closed_at IS NULL), 0),"
             " ifnull((SELECT max(closed_at) FROM connections WHERE tunnel_id = ?1), 0)",
             "s", canon);
  if (rv != WR_OK) return rv;
  rv = step_row(s, st, "read connection times");
  if (rv == WR_OK) {
    *active_at = sqlite3_column_int64(st, 0);
    *inactive_at = *active_at ? 0 : sqlite3_column_int64(st, 1);
  } else if (rv == WR_ERR_NOTFOUND) {
    rv = serr(s, WR_ERR_STORE, "read connection times: no result");
  }
  sqlite3_finalize(st);
  return rv;
}

int wr_store_conn_close_tunnel(wr_store *s, const char *tunnel_id, const char *client_id,
                               size_t *closed) {
  char canon[WR_STORE_UUID_LEN + 1], client[WR_STORE_UUID_LEN + 1];
  int rv, changes = 0;
  if (closed) *closed = 0;
  if ((rv = canon_uuid(s, tunnel_id, canon, "tunnel ID")) != WR_OK) return rv;
  if (client_id && (rv = canon_uuid(s, client_id, client, "connector ID")) != WR_OK) return rv;
  rv = execf(s, &changes, "close connections",
             "UPDATE connections SET closed_at = ?1 WHERE tunnel_id = ?2 AND closed_at IS NULL"
             " AND (?3 IS NULL OR client_id = ?3)",
             "iss", now_s(s), canon, client_id ? client : NULL);
  if (rv == WR_OK && closed) *closed = (size_t)changes;
  return rv;
}

int wr_store_route_count(wr_store *s, const char *account_id, size_t *n) {
  sqlite3_stmt *st;
  int rv;
  *n = 0;
  if ((rv = prepf(s, &st, "SELECT count(*) FROM routes WHERE account_id = lower(?)", "s",
                  account_id ? account_id : "")) != WR_OK)
    return rv;
  rv = step_row(s, st, "count routes");
  if (rv == WR_OK) *n = (size_t)sqlite3_column_int64(st, 0);
  else if (rv == WR_ERR_NOTFOUND) rv = serr(s, WR_ERR_STORE, "count routes: no result");
  sqlite3_finalize(st);
  return rv;
}

int wr_store_tunnel_deleted_since(wr_store *s, int64_t since, char (**ids)[WR_STORE_UUID_LEN + 1],
                                  size_t *n) {
  sqlite3_stmt *st;
  char(*rows)[WR_STORE_UUID_LEN + 1] = NULL;
  size_t cnt = 0, cap = 0;
  int rv, rc;
  *ids = NULL;
  *n = 0;
  rv = prepf(s, &st,
             "SELECT id FROM tunnels WHERE deleted_at IS NOT NULL AND deleted_at >= ? ORDER BY deleted_at",
             "i", since);
  if (rv != WR_OK) return rv;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) col_copy(st, 0, *PUSH(rows, cnt, cap), WR_STORE_UUID_LEN + 1);
  if (rc != SQLITE_DONE) {
    rv = dberr(s, "read deleted tunnels");
    free(rows);
  } else {
    *ids = rows;
    *n = cnt;
  }
  sqlite3_finalize(st);
  return rv;
}

/* --- CIDR ---------------------------------------------------------------------- */

int wr_store_cidr_parse(const char *in, wr_store_cidr *out, char *err, size_t errlen) {
  char addr[INET6_ADDRSTRLEN + 1], b[80];
  const char *slash;
  size_t alen;
  long bits = -1;
  memset(out, 0, sizeof(*out));
  if (!in || !*in) return snprintf(err, errlen, "the network is empty"), WR_ERR_INVAL;
  slash = strchr(in, '/');
  alen = slash ? (size_t)(slash - in) : strlen(in);
  if (alen == 0 || alen >= sizeof(addr))
    return snprintf(err, errlen, "\"%s\" is not a network in CIDR notation (e.g. 10.0.0.0/8)",
                    q(in, b, sizeof(b))),
           WR_ERR_INVAL;
  memcpy(addr, in, alen);
  addr[alen] = '\0';
  if (inet_pton(AF_INET, addr, out->addr) == 1) {
    out->v6 = 0;
  } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
    out->v6 = 1;
  } else {
    return snprintf(err, errlen, "\"%s\" is not a network in CIDR notation (e.g. 10.0.0.0/8)",
                    q(in, b, sizeof(b))),
           WR_ERR_INVAL;
  }
  unsigned max = out->v6 ? 128 : 32;
  if (slash) {
    const char *p = slash + 1;
    if (!*p || strlen(p) > 3) bits = -1;
    else {
      bits = 0;
      for (; *p; p++) {
        if (*p < '0' || *p > '9') {
          bits = -1;
          break;
        }
        bits = bits * 10 + (*p - '0');
      }
    }
    if (bits < 0 || bits > (long)max)
      return snprintf(err, errlen, "\"%s\" has an invalid prefix length (0 to %u)", q(in, b, sizeof(b)),
                      max),
             WR_ERR_INVAL;
  } else {
    bits = (long)max;
  }
  out->bits = (unsigned)bits;
  /* Clear the host bits. */
  for (unsigned i = 0; i < max / 8; i++) {
    unsigned keep = out->bits > i * 8 ? out->bits - i * 8 : 0;
    if (keep >= 8) continue;
    out->addr[i] &= (uint8_t)(0xff00u >> keep);
  }
  return WR_OK;
}

void wr_store_cidr_format(const wr_store_cidr *c, char out[WR_STORE_CIDR_MAX + 1]) {
  char a[INET6_ADDRSTRLEN] = "";
  size_t len;
  inet_ntop(c->v6 ? AF_INET6 : AF_INET, c->addr, a, sizeof(a));
  len = strnlen(a, WR_STORE_CIDR_MAX - 4);
  memcpy(out, a, len);
  snprintf(out + len, 5, "/%u", c->bits > 128 ? 128 : c->bits);
}

int wr_store_cidr_contains(const wr_store_cidr *outer, const wr_store_cidr *inner) {
  if (outer->v6 != inner->v6 || outer->bits > inner->bits) return 0;
  for (unsigned i = 0; i * 8 < outer->bits; i++) {
    unsigned keep = outer->bits - i * 8;
    uint8_t mask = keep >= 8 ? 0xff : (uint8_t)(0xff00u >> keep);
    if ((outer->addr[i] & mask) != (inner->addr[i] & mask)) return 0;
  }
  return 1;
}

/* --- virtual networks -------------------------------------------------------------- */

#define VNET_SELECT                                                                                \
  "SELECT id, account_id, name, comment, is_default, created_at, ifnull(deleted_at, 0)"            \
  " FROM virtual_networks "

static void read_vnet(sqlite3_stmt *st, wr_vnet *v) {
  memset(v, 0, sizeof(*v));
  col_copy(st, 0, v->id, sizeof(v->id));
  col_copy(st, 1, v->account_id, sizeof(v->account_id));
  col_copy(st, 2, v->name, sizeof(v->name));
  col_copy(st, 3, v->comment, sizeof(v->comment));
  v->is_default = sqlite3_column_int(st, 4);
  v->created_at = sqlite3_column_int64(st, 5);
  v->deleted_at = sqlite3_column_int64(st, 6);
}

/* Comments: 0..256 bytes of UTF-8 without control characters. */
static int check_comment(wr_store *s, const char *what, const char *c) {
  if (!c || !*c) return WR_OK;
  return check_text(s, what, c, WR_STORE_COMMENT_MAX);
}

int wr_store_vnet_get(wr_store *s, const char *id, wr_vnet *out) {
  char canon[WR_STORE_UUID_LEN + 1];
  sqlite3_stmt *st;
  int rv;
  if ((rv = canon_uuid(s, id, canon, "virtual network ID")) != WR_OK) return rv;
  if ((rv = prepf(s, &st, VNET_SELECT "WHERE id = ?", "s", canon)) != WR_OK) return rv;
  rv = step_row(s, st, "read virtual network");
  if (rv == WR_OK) read_vnet(st, out);
  else if (rv == WR_ERR_NOTFOUND) serr(s, rv, "no virtual network with ID %s", canon);
  sqlite3_finalize(st);
  return rv;
}

/* The live virtual network |name| of an account: WR_OK, WR_ERR_NOTFOUND
 * (no message), or an error. */
static int vnet_find(wr_store *s, const char *account_id, const char *name, wr_vnet *out) {
  sqlite3_stmt *st;
  int rv = prepf(s, &st, VNET_SELECT "WHERE account_id = lower(?) AND name = ? AND deleted_at IS NULL",
                 "ss", account_id, name);
  if (rv != WR_OK) return rv;
  rv = step_row(s, st, "read virtual network");
  if (rv == WR_OK) read_vnet(st, out);
  sqlite3_finalize(st);
  return rv;
}

static int vnet_find_default(wr_store *s, const char *account_id, wr_vnet *out) {
  sqlite3_stmt *st;
  int rv = prepf(s, &st,
                 VNET_SELECT "WHERE account_id = lower(?) AND is_default = 1 AND deleted_at IS NULL", "s",
                 account_id);
  if (rv != WR_OK) return rv;
  rv = step_row(s, st, "read virtual network");
  if (rv == WR_OK) read_vnet(st, out);
  sqlite3_finalize(st);
  return rv;
}

/* Inserts a virtual network inside the caller's transaction. */
static int vnet_insert(wr_store *s, const char *actor, const char *account_id, const char *name,
                       const char *comment, int is_default, int automatic, wr_vnet *out) {
  wr_vnet v, old;
  wr_account a;
  char msg[WR_STORE_ERRMSG_MAX];
  int rv;
  memset(&v, 0, sizeof(v));
  if (wr_store_check_tunnel_name(name, msg, sizeof(msg)) != WR_OK)
    return serr(s, WR_ERR_INVAL, "virtual network name: %s", msg);
  if ((rv = check_comment(s, "virtual network comment", comment)) != WR_OK) return rv;
  if ((rv = wr_store_account_get(s, account_id, &a)) != WR_OK) return rv;
  rv = vnet_find(s, a.id, name, &old);
  if (rv == WR_OK) return serr(s, WR_ERR_EXISTS, "a virtual network named \"%s\" already exists (ID %s)", old.name, old.id);
  if (rv != WR_ERR_NOTFOUND) return rv;
  rv = vnet_find_default(s, a.id, &old);
  if (rv == WR_ERR_NOTFOUND) is_default = 1; /* an account always has a default */
  else if (rv != WR_OK) return rv;
  if ((rv = new_uuid(s, v.id)) != WR_OK) return rv;
  copy_str(v.account_id, sizeof(v.account_id), a.id);
  copy_str(v.name, sizeof(v.name), name);
  copy_str(v.comment, sizeof(v.comment), comment);
  v.is_default = is_default != 0;
  v.created_at = now_s(s);
  if (v.is_default &&
      (rv = execf(s, NULL, "change default virtual network",
                  "UPDATE virtual_networks SET is_default = 0 WHERE account_id = ? AND is_default = 1", "s",
                  a.id)) != WR_OK)
    return rv;
  rv = execf(s, NULL, "create virtual network",
             "INSERT INTO virtual_networks(id, account_id, name, comment, is_default, created_at)"
             " VALUES (?, ?, ?, ?, ?, ?)",
             "ssssii", v.id, v.account_id, v.name, v.comment, (int64_t)v.is_default, v.created_at);
  if (rv == WR_OK)
    rv = audit_insert(s, actor, a.id, "vnet.create", "vnet", v.id,
                      json_pack("{s:s,s:b,s:b}", "name", v.name, "is_default", v.is_default,
                                "automatic", automatic));
  if (rv == WR_OK && out) *out = v;
  return rv;
}

int wr_store_vnet_create(wr_store *s, const char *actor, const char *account_id, const char *name,
                         const char *comment, int is_default, wr_vnet *out) {
  int rv;
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  rv = vnet_insert(s, actor, account_id, name, comment, is_default, 0, out);
  return tx_end(s, rv);
}

/* The default network inside the caller's transaction, made if missing. */
static int vnet_default_tx(wr_store *s, const char *actor, const char *account_id, wr_vnet *out) {
  int rv = vnet_find_default(s, account_id, out);
  if (rv != WR_ERR_NOTFOUND) return rv;
  rv = vnet_insert(s, actor, account_id, "default", "", 1, 1, out);
  if (rv == WR_ERR_EXISTS) {
    /* A network named "default" exists but is not the default: use a free name. */
    char name[32];
    for (int i = 2; i < 100 && rv == WR_ERR_EXISTS; i++) {
      snprintf(name, sizeof(name), "default-%d", i);
      rv = vnet_insert(s, actor, account_id, name, "", 1, 1, out);
    }
  }
  return rv;
}

int wr_store_vnet_default(wr_store *s, const char *actor, const char *account_id, wr_vnet *out) {
  int rv = vnet_find_default(s, account_id ? account_id : "", out);
  if (rv != WR_ERR_NOTFOUND) return rv;
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  rv = vnet_default_tx(s, actor, account_id ? account_id : "", out);
  return tx_end(s, rv);
}

int wr_store_vnet_list(wr_store *s, const wr_vnet_filter *f, wr_vnet **out, size_t *n) {
  char id[WR_STORE_UUID_LEN + 1] = "";
  sqlite3_stmt *st;
  wr_vnet *rows = NULL;
  size_t cnt = 0, cap = 0;
  int rv, rc;
  *out = NULL;
  *n = 0;
  if (!f || !f->account_id) return serr(s, WR_ERR_INVAL, "listing virtual networks needs an account");
  if (f->id && (rv = canon_uuid(s, f->id, id, "virtual network ID")) != WR_OK) return rv;
  rv = prepf(s, &st,
             VNET_SELECT "WHERE account_id = lower(?1) AND (?2 OR deleted_at IS NULL)"
                         " AND (?3 = 0 OR deleted_at IS NOT NULL) AND (?4 IS NULL OR id = ?4)"
                         " AND (?5 IS NULL OR name = ?5) AND (?6 < 0 OR is_default = ?6)"
                         " ORDER BY created_at, rowid",
             "siissi", f->account_id, (int64_t)(f->include_deleted || f->only_deleted),
             (int64_t)(f->only_deleted != 0), id[0] ? id : NULL, f->name,
             (int64_t)(f->is_default < 0 ? -1 : f->is_default != 0));
  if (rv != WR_OK) return rv;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) read_vnet(st, PUSH(rows, cnt, cap));
  if (rc != SQLITE_DONE) {
    rv = dberr(s, "read virtual networks");
    free(rows);
  } else {
    *out = rows;
    *n = cnt;
  }
  sqlite3_finalize(st);
  return rv;
}

int wr_store_vnet_update(wr_store *s, const char *actor, const char *id, const char *name,
                         const char *comment, int make_default, wr_vnet *out) {
  wr_vnet v, other;
  char msg[WR_STORE_ERRMSG_MAX];
  json_t *detail;
  int rv;
  if (name && wr_store_check_tunnel_name(name, msg, sizeof(msg)) != WR_OK)
    return serr(s, WR_ERR_INVAL, "virtual network name: %s", msg);
  if (comment && (rv = check_comment(s, "virtual network comment", comment)) != WR_OK) return rv;
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_vnet_get(s, id, &v)) != WR_OK) goto out;
  if (v.deleted_at) {
    rv = serr(s, WR_ERR_INVAL, "virtual network %s (%s) is deleted", v.name, v.id);
    goto out;
  }
  if (name && strcmp(name, v.name) != 0) {
    rv = vnet_find(s, v.account_id, name, &other);
    if (rv == WR_OK) {
      rv = serr(s, WR_ERR_EXISTS, "a virtual network named \"%s\" already exists (ID %s)", other.name,
                other.id);
      goto out;
    }
    if (rv != WR_ERR_NOTFOUND) goto out;
  }
  detail = json_object();
  if (name) json_object_set_new(detail, "name", json_string(name));
  if (comment) json_object_set_new(detail, "comment", json_string(comment));
  if (make_default && !v.is_default) {
    json_object_set_new(detail, "is_default", json_true());
    rv = execf(s, NULL, "change default virtual network",
               "UPDATE virtual_networks SET is_default = 0 WHERE account_id = ? AND is_default = 1", "s",
               v.account_id);
    if (rv == WR_OK)
      rv = execf(s, NULL, "change default virtual network",
                 "UPDATE virtual_networks SET is_default = 1 WHERE id = ?", "s", v.id);
    if (rv != WR_OK) {
      json_decref(detail);
      goto out;
    }
  }
  rv = execf(s, NULL, "update virtual network",
             "UPDATE virtual_networks SET name = ifnull(?, name), comment = ifnull(?, comment) WHERE id = ?",
             "sss", name, comment, v.id);
  if (rv == WR_OK) rv = audit_insert(s, actor, v.account_id, "vnet.update", "vnet", v.id, detail);
  else json_decref(detail);
  if (rv == WR_OK) rv = wr_store_vnet_get(s, v.id, &v);
out:
  rv = tx_end(s, rv);
  if (rv == WR_OK && out) *out = v;
  return rv;
}

int wr_store_vnet_delete(wr_store *s, const char *actor, const char *id, int force,
                         size_t *routes_removed) {
  wr_vnet v;
  sqlite3_stmt *st = NULL;
  int rv, removed = 0;
  int64_t nroutes = 0, now = now_s(s);
  if (routes_removed) *routes_removed = 0;
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_vnet_get(s, id, &v)) != WR_OK) goto out;
  if (v.deleted_at) {
    rv = serr(s, WR_ERR_INVAL, "virtual network %s (%s) is already deleted", v.name, v.id);
    goto out;
  }
  if (v.is_default) {
    rv = serr(s, WR_ERR_INVAL,
              "virtual network %s is the account's default; make another one the default first "
              "(cloudflared tunnel vnet update --default OTHER)",
              v.name);
    goto out;
  }
  if ((rv = prepf(s, &st,
                  "SELECT count(*) FROM ip_routes WHERE virtual_network_id = ? AND deleted_at IS NULL", "s",
                  v.id)) != WR_OK)
    goto out;
  if ((rv = step_row(s, st, "count IP routes")) != WR_OK) goto out;
  nroutes = sqlite3_column_int64(st, 0);
  if (nroutes && !force) {
    rv = serr(s, WR_ERR_INVAL,
              "virtual network %s still has %lld IP route%s; delete them first or force the deletion "
              "(cloudflared tunnel vnet delete --force), which deletes them too",
              v.name, (long long)nroutes, nroutes == 1 ? "" : "s");
    goto out;
  }
  if ((rv = execf(s, &removed, "delete IP routes",
                  "UPDATE ip_routes SET deleted_at = ? WHERE virtual_network_id = ? AND deleted_at IS NULL",
                  "is", now, v.id)) != WR_OK)
    goto out;
  if ((rv = execf(s, NULL, "delete virtual network",
                  "UPDATE virtual_networks SET deleted_at = ? WHERE id = ?", "is", now, v.id)) != WR_OK)
    goto out;
  rv = audit_insert(s, actor, v.account_id, "vnet.delete", "vnet", v.id,
                    json_pack("{s:s,s:i,s:b}", "name", v.name, "ip_routes_removed", removed, "force",
                              force != 0));
  if (rv == WR_OK && routes_removed) *routes_removed = (size_t)removed;
out:
  sqlite3_finalize(st);
  return tx_end(s, rv);
}

/* --- IP routes -------------------------------------------------------------------------- */

#define IP_ROUTE_SELECT                                                                            \
  "SELECT r.id, r.account_id, r.network, r.tunnel_id, t.name, ifnull(r.virtual_network_id, ''),"   \
  " ifnull(v.name, ''), r.comment, r.created_at, ifnull(r.deleted_at, 0)"                          \
  " FROM ip_routes r JOIN tunnels t ON t.id = r.tunnel_id"                                         \
  " LEFT JOIN virtual_networks v ON v.id = r.virtual_network_id "

static void read_ip_route(sqlite3_stmt *st, wr_ip_route *r) {
  memset(r, 0, sizeof(*r));
  col_copy(st, 0, r->id, sizeof(r->id));
  col_copy(st, 1, r->account_id, sizeof(r->account_id));
  col_copy(st, 2, r->network, sizeof(r->network));
  col_copy(st, 3, r->tunnel_id, sizeof(r->tunnel_id));
  col_copy(st, 4, r->tunnel_name, sizeof(r->tunnel_name));
  col_copy(st, 5, r->vnet_id, sizeof(r->vnet_id));
  col_copy(st, 6, r->vnet_name, sizeof(r->vnet_name));
  col_copy(st, 7, r->comment, sizeof(r->comment));
  r->created_at = sqlite3_column_int64(st, 8);
  r->deleted_at = sqlite3_column_int64(st, 9);
}

int wr_store_ip_route_get(wr_store *s, const char *id, wr_ip_route *out) {
  char canon[WR_STORE_UUID_LEN + 1];
  sqlite3_stmt *st;
  int rv;
  if ((rv = canon_uuid(s, id, canon, "route ID")) != WR_OK) return rv;
  if ((rv = prepf(s, &st, IP_ROUTE_SELECT "WHERE r.id = ?", "s", canon)) != WR_OK) return rv;
  rv = step_row(s, st, "read IP route");
  if (rv == WR_OK) read_ip_route(st, out);
  else if (rv == WR_ERR_NOTFOUND) serr(s, rv, "no IP route with ID %s", canon);
  sqlite3_finalize(st);
  return rv;
}

int wr_store_ip_route_add(wr_store *s, const char *actor, const char *account_id,
                          const char *network, const char *tunnel_id, const char *vnet_id,
                          const char *comment, wr_ip_route *out) {
  char net[WR_STORE_CIDR_MAX + 1], msg[WR_STORE_ERRMSG_MAX], id[WR_STORE_UUID_LEN + 1];
  wr_store_cidr c;
  wr_tunnel t;
  wr_vnet v;
  sqlite3_stmt *st = NULL;
  int rv;
  if (wr_store_cidr_parse(network, &c, msg, sizeof(msg)) != WR_OK)
    return serr(s, WR_ERR_INVAL, "network: %s", msg);
  wr_store_cidr_format(&c, net);
  if ((rv = check_comment(s, "route comment", comment)) != WR_OK) return rv;
  if ((rv = new_uuid(s, id)) != WR_OK) return rv;
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_tunnel_get(s, tunnel_id, &t)) != WR_OK) goto out;
  if (strcasecmp(t.account_id, account_id ? account_id : "") != 0) {
    rv = serr(s, WR_ERR_NOTFOUND, "no tunnel with ID %s in this account", t.id);
    goto out;
  }
  if (t.deleted_at) {
    rv = serr(s, WR_ERR_INVAL, "tunnel %s (%s) is deleted", t.name, t.id);
    goto out;
  }
  if (vnet_id) {
    if ((rv = wr_store_vnet_get(s, vnet_id, &v)) != WR_OK) goto out;
    if (strcmp(v.account_id, t.account_id) != 0) {
      rv = serr(s, WR_ERR_NOTFOUND, "no virtual network with ID %s in this account", v.id);
      goto out;
    }
    if (v.deleted_at) {
      rv = serr(s, WR_ERR_INVAL, "virtual network %s (%s) is deleted", v.name, v.id);
      goto out;
    }
  } else if ((rv = vnet_default_tx(s, actor, t.account_id, &v)) != WR_OK) {
    goto out;
  }
  if ((rv = prepf(s, &st,
                  IP_ROUTE_SELECT "WHERE r.account_id = ? AND r.network = ? AND r.virtual_network_id = ?"
                                  " AND r.deleted_at IS NULL",
                  "sss", t.account_id, net, v.id)) != WR_OK)
    goto out;
  rv = step_row(s, st, "read IP routes");
  if (rv == WR_OK) {
    wr_ip_route old;
    read_ip_route(st, &old);
    rv = serr(s, WR_ERR_EXISTS,
              "%s in virtual network %s is already routed to tunnel %s (%s); delete that route first",
              net, v.name, old.tunnel_name, old.tunnel_id);
    goto out;
  }
  if (rv != WR_ERR_NOTFOUND) goto out;
  rv = execf(s, NULL, "create IP route",
             "INSERT INTO ip_routes(id, account_id, network, tunnel_id, virtual_network_id, comment, created_at)"
             " VALUES (?, ?, ?, ?, ?, ?, ?)",
             "ssssssi", id, t.account_id, net, t.id, v.id, comment ? comment : "", now_s(s));
  if (rv == WR_OK)
    rv = audit_insert(s, actor, t.account_id, "route.create", "ip_route", id,
                      json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", "ip", "network", net, "tunnel_id",
                                t.id, "virtual_network_id", v.id, "comment", comment ? comment : ""));
out:
  sqlite3_finalize(st);
  memset(&t, 0, sizeof(t));
  rv = tx_end(s, rv);
  if (rv == WR_OK && out) rv = wr_store_ip_route_get(s, id, out);
  return rv;
}

int wr_store_ip_route_list(wr_store *s, const wr_ip_route_filter *f, wr_ip_route **out, size_t *n) {
  char tid[WR_STORE_UUID_LEN + 1] = "", vid[WR_STORE_UUID_LEN + 1] = "", rid[WR_STORE_UUID_LEN + 1] = "";
  sqlite3_stmt *st;
  wr_ip_route *rows = NULL;
  size_t cnt = 0, cap = 0;
  int rv, rc;
  *out = NULL;
  *n = 0;
  if (!f || !f->account_id) return serr(s, WR_ERR_INVAL, "listing IP routes needs an account");
  if (f->tunnel_id && (rv = canon_uuid(s, f->tunnel_id, tid, "tunnel ID")) != WR_OK) return rv;
  if (f->vnet_id && (rv = canon_uuid(s, f->vnet_id, vid, "virtual network ID")) != WR_OK) return rv;
  if (f->id && (rv = canon_uuid(s, f->id, rid, "route ID")) != WR_OK) return rv;
  rv = prepf(s, &st,
             IP_ROUTE_SELECT "WHERE r.account_id = lower(?1) AND (?2 OR r.deleted_at IS NULL)"
                             " AND (?3 = 0 OR r.deleted_at IS NOT NULL) AND (?4 IS NULL OR r.tunnel_id = ?4)"
                             " AND (?5 IS NULL OR r.virtual_network_id = ?5) AND (?6 IS NULL OR r.comment = ?6)"
                             " AND (?7 IS NULL OR r.id = ?7)"
                             " ORDER BY r.created_at, r.rowid",
             "siissss", f->account_id, (int64_t)(f->include_deleted || f->only_deleted),
             (int64_t)(f->only_deleted != 0), tid[0] ? tid : NULL, vid[0] ? vid : NULL, f->comment,
             rid[0] ? rid : NULL);
  if (rv != WR_OK) return rv;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) read_ip_route(st, PUSH(rows, cnt, cap));
  if (rc != SQLITE_DONE) {
    rv = dberr(s, "read IP routes");
    free(rows);
  } else {
    *out = rows;
    *n = cnt;
  }
  sqlite3_finalize(st);
  return rv;
}

int wr_store_ip_route_delete(wr_store *s, const char *actor, const char *account_id,
                             const char *id, wr_ip_route *out) {
  wr_ip_route r;
  int rv;
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_ip_route_get(s, id, &r)) != WR_OK) goto out;
  if (strcasecmp(r.account_id, account_id ? account_id : "") != 0) {
    rv = serr(s, WR_ERR_NOTFOUND, "no IP route with ID %s in this account", r.id);
    goto out;
  }
  if (r.deleted_at) {
    rv = serr(s, WR_ERR_INVAL, "IP route %s (%s) is already deleted", r.id, r.network);
    goto out;
  }
  rv = execf(s, NULL, "delete IP route", "UPDATE ip_routes SET deleted_at = ? WHERE id = ?", "is",
             now_s(s), r.id);
  if (rv == WR_OK)
    rv = audit_insert(s, actor, r.account_id, "route.delete", "ip_route", r.id,
                      json_pack("{s:s,s:s,s:s,s:s}", "type", "ip", "network", r.network, "tunnel_id",
                                r.tunnel_id, "virtual_network_id", r.vnet_id));
out:
  rv = tx_end(s, rv);
  if (rv == WR_OK && out) *out = r;
  return rv;
}

int wr_store_ip_route_count(wr_store *s, const char *account_id, size_t *n) {
  sqlite3_stmt *st;
  int rv;
  *n = 0;
  if ((rv = prepf(s, &st,
                  "SELECT count(*) FROM ip_routes WHERE account_id = lower(?) AND deleted_at IS NULL", "s",
                  account_id ? account_id : "")) != WR_OK)
    return rv;
  rv = step_row(s, st, "count IP routes");
  if (rv == WR_OK) *n = (size_t)sqlite3_column_int64(st, 0);
  else if (rv == WR_ERR_NOTFOUND) rv = serr(s, WR_ERR_STORE, "count IP routes: no result");
  sqlite3_finalize(st);
  return rv;
}

/* --- audit queries ------------------------------------------------------------------------ */

#define AUDIT_WHERE                                                                                \
  " FROM audit_log WHERE (?1 IS NULL OR account_id = lower(?1))"                                   \
  " AND (?2 IS NULL OR action = ?2 OR (substr(?2, -1) = '.' AND substr(action, 1, length(?2)) = ?2))" \
  " AND (?3 = 0 OR at >= ?3) AND (?4 = 0 OR at < ?4)"

int wr_store_audit_query(wr_store *s, const wr_audit_filter *f, wr_audit **out, size_t *n,
                         size_t *total) {
  sqlite3_stmt *st = NULL;
  wr_audit *rows = NULL;
  size_t cnt = 0, cap = 0;
  int rv, rc;
  *out = NULL;
  *n = 0;
  if (total) {
    if ((rv = prepf(s, &st, "SELECT count(*)" AUDIT_WHERE, "ssii", f->account_id, f->action, f->since,
                    f->until)) != WR_OK)
      return rv;
    rv = step_row(s, st, "count audit rows");
    if (rv == WR_ERR_NOTFOUND) rv = serr(s, WR_ERR_STORE, "count audit rows: no result");
    if (rv == WR_OK) *total = (size_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (rv != WR_OK) return rv;
  }
  rv = prepf(s, &st,
             "SELECT id, at, ifnull(account_id, ''), actor, action, target_type, target_id, detail" AUDIT_WHERE
             " ORDER BY id DESC LIMIT ?5 OFFSET ?6",
             "ssiiii", f->account_id, f->action, f->since, f->until,
             f->limit ? (int64_t)f->limit : (int64_t)-1, (int64_t)f->offset);
  if (rv != WR_OK) return rv;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    wr_audit *a = PUSH(rows, cnt, cap);
    a->id = sqlite3_column_int64(st, 0);
    a->at = sqlite3_column_int64(st, 1);
    col_copy(st, 2, a->account_id, sizeof(a->account_id));
    col_copy(st, 3, a->actor, sizeof(a->actor));
    col_copy(st, 4, a->action, sizeof(a->action));
    col_copy(st, 5, a->target_type, sizeof(a->target_type));
    col_copy(st, 6, a->target_id, sizeof(a->target_id));
    a->detail = wr_xstrdup((const char *)sqlite3_column_text(st, 7));
  }
  if (rc != SQLITE_DONE) {
    rv = dberr(s, "read audit log");
    wr_store_audit_free(rows, cnt);
  } else {
    *out = rows;
    *n = cnt;
  }
  sqlite3_finalize(st);
  return rv;
}

/* --- DNS record expiry (called through edge/dns.h) ---------------------------------- */

int wr_store_route_expire(wr_store *s, const char *actor, int64_t unregistered_s, size_t limit,
                          wr_route **removed, size_t *n) {
  sqlite3_stmt *st = NULL;
  wr_route *rows = NULL;
  struct why { int64_t at; int deleted; } *why = NULL;
  size_t cnt = 0, cap = 0, scap = 0;
  int rv, rc;
  *removed = NULL;
  *n = 0;
  if (unregistered_s < 0) return serr(s, WR_ERR_INVAL, "the expiry age must not be negative");
  if ((rv = tx_begin(s)) != WR_OK) return rv;
  /* Columns 0..7 as ROUTE_SELECT (read_route), then why the route goes:
   * the tunnel's deletion time, or when its last connection closed. A
   * tunnel that never connected keeps its routes (create, route, run later
   * is the usual order), and a route added after the last close gets the
   * whole grace period from its creation. */
  rv = prepf(s, &st,
             "SELECT r.id, r.account_id, r.zone_id, z.name, r.hostname, r.tunnel_id, t.name,"
             " r.created_at, ifnull(t.deleted_at, 0),"
             " ifnull((SELECT max(c.closed_at) FROM connections c WHERE c.tunnel_id = r.tunnel_id), 0)"
             " FROM routes r JOIN zones z ON z.id = r.zone_id JOIN tunnels t ON t.id = r.tunnel_id"
             " WHERE t.deleted_at IS NOT NULL"
             "  OR (r.created_at <= ?1"
             "      AND (SELECT max(c.closed_at) FROM connections c WHERE c.tunnel_id = r.tunnel_id) <= ?1"
             "      AND NOT EXISTS (SELECT 1 FROM connections c"
             "                      WHERE c.tunnel_id = r.tunnel_id AND c.closed_at IS NULL))"
             " ORDER BY r.hostname LIMIT ?2",
             "ii", now_s(s) - unregistered_s, limit ? (int64_t)limit : (int64_t)-1);
  if (rv != WR_OK) goto out;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    read_route(st, PUSH(rows, cnt, cap));
    why = grow(why, cnt - 1, &scap, sizeof(*why));
    why[cnt - 1].at = sqlite3_column_int64(st, 8);
    why[cnt - 1].deleted = why[cnt - 1].at != 0;
    if (!why[cnt - 1].deleted) why[cnt - 1].at = sqlite3_column_int64(st, 9);
  }
  if (rc != SQLITE_DONE) {
    rv = dberr(s, "read expired routes");
    goto out;
  }
  sqlite3_finalize(st);
  st = NULL;
  for (size_t i = 0; i < cnt && rv == WR_OK; i++) {
    wr_route *r = &rows[i];
    rv = execf(s, NULL, "delete route", "DELETE FROM routes WHERE id = ?", "s", r->id);
    if (rv == WR_OK)
      rv = audit_insert(s, actor, r->account_id, "route.expire", "route", r->hostname,
                        json_pack("{s:s,s:s,s:s,s:I}", "type", "dns", "tunnel_id", r->tunnel_id,
                                  "reason", why[i].deleted ? "tunnel deleted" : "tunnel unregistered",
                                  "since", (json_int_t)why[i].at));
  }
out:
  sqlite3_finalize(st);
  free(why);
  rv = tx_end(s, rv);
  if (rv == WR_OK) {
    *removed = rows;
    *n = cnt;
  } else {
    free(rows);
  }
  return rv;
}
