/* edge/db.h on SQLite: the embedded default. One file, WAL mode, foreign
 * keys on, defensive mode, a busy timeout for the CLI next to a running
 * edge. The schema version is PRAGMA user_version. */
#include "edge/db.h"
#include "edge/db_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/mem.h"

/* How long a writer waits for another process's transaction (the CLI while
 * `warren-edge run` holds the store) before giving up with "busy". */
#define BUSY_TIMEOUT_MS 5000

typedef struct db_sqlite {
  wr_db base;
  sqlite3 *h;
} db_sqlite;

typedef struct stmt_sqlite {
  wr_db_stmt base;
  sqlite3_stmt *h;
} stmt_sqlite;

#define H(db) (((db_sqlite *)(db))->h)
#define SH(st) (((stmt_sqlite *)(st))->h)

/* Records the connection's last error, classified for the store. */
static int lasterr(wr_db *db) {
  int ext = sqlite3_extended_errcode(H(db));
  wr_db_errkind k;
  switch (ext) {
  case SQLITE_CONSTRAINT_UNIQUE:
  case SQLITE_CONSTRAINT_PRIMARYKEY:
    k = WR_DB_E_UNIQUE;
    break;
  case SQLITE_CONSTRAINT_FOREIGNKEY:
    k = WR_DB_E_FOREIGN;
    break;
  case SQLITE_NOTADB:
    k = WR_DB_E_NOTADB;
    break;
  default:
    k = (ext & 0xff) == SQLITE_CONSTRAINT ? WR_DB_E_CONSTRAINT : WR_DB_E_OTHER;
    break;
  }
  return wr__db_err(db, k, "%s", sqlite3_errmsg(H(db)));
}

static void s_close(wr_db *db) {
  sqlite3_close_v2(H(db));
  free(db);
}

static int s_prepare(wr_db *db, const char *sql, wr_db_stmt **out) {
  stmt_sqlite *st = wr_xcalloc(1, sizeof(*st));
  st->base.db = db;
  if (sqlite3_prepare_v2(H(db), sql, -1, &st->h, NULL) != SQLITE_OK) {
    free(st);
    return lasterr(db);
  }
  *out = &st->base;
  return 0;
}

static int bound(wr_db_stmt *st, int rc) { return rc == SQLITE_OK ? 0 : lasterr(st->db); }

static int s_bind_text(wr_db_stmt *st, int i, const char *v) {
  return bound(st, v ? sqlite3_bind_text(SH(st), i, v, -1, SQLITE_TRANSIENT)
                     : sqlite3_bind_null(SH(st), i));
}
static int s_bind_int64(wr_db_stmt *st, int i, int64_t v) {
  return bound(st, sqlite3_bind_int64(SH(st), i, v));
}
static int s_bind_null(wr_db_stmt *st, int i) { return bound(st, sqlite3_bind_null(SH(st), i)); }
static int s_bind_blob(wr_db_stmt *st, int i, const void *p, size_t len) {
  return bound(st, sqlite3_bind_blob64(SH(st), i, p, len, SQLITE_TRANSIENT));
}

static int s_step(wr_db_stmt *st) {
  int rc = sqlite3_step(SH(st));
  if (rc == SQLITE_ROW) return WR_DB_ROW;
  if (rc == SQLITE_DONE) {
    st->db->changes = sqlite3_changes(H(st->db));
    return WR_DB_DONE;
  }
  lasterr(st->db);
  return WR_DB_ERROR;
}

static int s_col_is_null(wr_db_stmt *st, int i) {
  return sqlite3_column_type(SH(st), i) == SQLITE_NULL;
}
static int64_t s_col_int64(wr_db_stmt *st, int i) { return sqlite3_column_int64(SH(st), i); }
static const char *s_col_text(wr_db_stmt *st, int i) {
  return (const char *)sqlite3_column_text(SH(st), i);
}
static const void *s_col_blob(wr_db_stmt *st, int i) { return sqlite3_column_blob(SH(st), i); }
static size_t s_col_bytes(wr_db_stmt *st, int i) { return (size_t)sqlite3_column_bytes(SH(st), i); }

static int s_col_count(wr_db_stmt *st) { return sqlite3_column_count(SH(st)); }
static const char *s_col_name(wr_db_stmt *st, int i) { return sqlite3_column_name(SH(st), i); }
static int s_col_kind(wr_db_stmt *st, int i) {
  switch (sqlite3_column_type(SH(st), i)) {
  case SQLITE_NULL:
    return WR_DB_T_NULL;
  case SQLITE_INTEGER:
    return WR_DB_T_INT;
  case SQLITE_BLOB:
    return WR_DB_T_BLOB;
  default: /* text; the schema has no REAL columns */
    return WR_DB_T_TEXT;
  }
}
static int s_after_copy(wr_db *db, const char *table) {
  (void)db;
  (void)table;
  return 0;
}

static void s_finalize(wr_db_stmt *st) {
  sqlite3_finalize(SH(st));
  free(st);
}

static int s_exec(wr_db *db, const char *sql) {
  return sqlite3_exec(H(db), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : lasterr(db);
}

/* BEGIN IMMEDIATE takes the write lock up front, so two writers queue on the
 * busy timeout instead of deadlocking when both try to upgrade a read lock. */
static int s_begin(wr_db *db) { return s_exec(db, "BEGIN IMMEDIATE"); }
static int s_commit(wr_db *db) { return s_exec(db, "COMMIT"); }
static void s_rollback(wr_db *db) {
  if (!sqlite3_get_autocommit(H(db))) sqlite3_exec(H(db), "ROLLBACK", NULL, NULL, NULL);
}
/* BEGIN IMMEDIATE already serialises migrators. */
static int s_schema_lock(wr_db *db) {
  (void)db;
  return 0;
}

static int s_schema_version(wr_db *db, int *v) {
  sqlite3_stmt *st;
  int rc;
  if (sqlite3_prepare_v2(H(db), "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
    return lasterr(db);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *v = sqlite3_column_int(st, 0);
  else if (rc == SQLITE_DONE) wr__db_err(db, WR_DB_E_OTHER, "no result");
  else lasterr(db);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : -1;
}

static int s_set_schema_version(wr_db *db, int v) {
  /* PRAGMA takes no parameters; the value is our own constant. */
  char sql[64];
  snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
  return s_exec(db, sql);
}

static char *s_ddl(const char *ddl) { return wr_xstrdup(ddl); }

static const wr_db_ops sqlite_ops = {
    .name = "sqlite",
    .close = s_close,
    .prepare = s_prepare,
    .bind_text = s_bind_text,
    .bind_int64 = s_bind_int64,
    .bind_null = s_bind_null,
    .bind_blob = s_bind_blob,
    .step = s_step,
    .col_is_null = s_col_is_null,
    .col_int64 = s_col_int64,
    .col_text = s_col_text,
    .col_blob = s_col_blob,
    .col_bytes = s_col_bytes,
    .col_count = s_col_count,
    .col_name = s_col_name,
    .col_kind = s_col_kind,
    .finalize = s_finalize,
    .exec = s_exec,
    .begin = s_begin,
    .commit = s_commit,
    .rollback = s_rollback,
    .schema_lock = s_schema_lock,
    .schema_version = s_schema_version,
    .set_schema_version = s_set_schema_version,
    .after_copy = s_after_copy,
    .ddl = s_ddl,
};

/* The store holds tunnel secrets: a new file is created owner-only. SQLite
 * gives its -wal and -shm files the mode of the database file. An empty
 * file is a valid empty database. */
static int create_file(const char *path, char *err, size_t errlen) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) close(fd);
  else if (errno != EEXIST) {
    snprintf(err, errlen, "cannot create store %s: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

int wr__db_sqlite_open(const char *path, unsigned flags, wr_db **out, wr_db_errkind *kind,
                       char *err, size_t errlen) {
  struct stat sb;
  db_sqlite *d;
  int oflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX;
  *kind = WR_DB_E_OTHER;
  if (!(flags & WR_DB_CREATE) && stat(path, &sb) != 0) {
    *kind = WR_DB_E_NOTFOUND;
    snprintf(err, errlen, "no store at %s: %s", path, strerror(errno));
    return -1;
  }
  if (flags & WR_DB_CREATE) {
    if (create_file(path, err, errlen) != 0) return -1;
    oflags |= SQLITE_OPEN_CREATE;
  }
  d = wr_xcalloc(1, sizeof(*d));
  d->base.ops = &sqlite_ops;
  if (sqlite3_open_v2(path, &d->h, oflags, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "cannot open store %s: %s", path,
             d->h ? sqlite3_errmsg(d->h) : "out of memory");
    goto fail;
  }
  sqlite3_extended_result_codes(d->h, 1);
  sqlite3_busy_timeout(d->h, BUSY_TIMEOUT_MS);
  /* Defensive mode stops SQL from corrupting the file (writable_schema and
   * friends); the store never needs those. */
  sqlite3_db_config(d->h, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
  /* WAL lets the running edge read while the CLI writes; NORMAL sync is
   * durable across process crashes in WAL mode and much cheaper than FULL.
   * foreign_keys must be set outside a transaction, so it comes first. */
  if (sqlite3_exec(d->h,
                   "PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
                   NULL, NULL, NULL) != SQLITE_OK) {
    int code = sqlite3_errcode(d->h);
    if (code == SQLITE_NOTADB) *kind = WR_DB_E_NOTADB;
    snprintf(err, errlen, "cannot use %s as a store: %s", path,
             code == SQLITE_NOTADB ? "it is not a SQLite database" : sqlite3_errmsg(d->h));
    goto fail;
  }
  *kind = WR_DB_E_NONE;
  *out = &d->base;
  return 0;
fail:
  sqlite3_close_v2(d->h);
  free(d);
  return -1;
}
