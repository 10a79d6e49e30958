/* edge/db.h: the backend-independent half (dispatch through the vtable,
 * target detection, redaction of passwords for messages). */
#include "edge/db.h"
#include "edge/db_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 3, 4))) int wr__db_err(wr_db *db, wr_db_errkind kind,
                                                     const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(db->errmsg, sizeof(db->errmsg), fmt, ap);
  va_end(ap);
  db->kind = kind;
  return -1;
}

/* A URI scheme libpq knows, or a connection string whose first word is one
 * of the libpq keywords people start one with ("host=... dbname=..."). */
int wr_db_target_is_pg(const char *target) {
  static const char *const keys[] = {"host=", "hostaddr=", "port=", "dbname=", "user=",
                                     "service="};
  if (!target) return 0;
  if (!strncmp(target, "postgres://", 11) || !strncmp(target, "postgresql://", 13)) return 1;
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
    if (!strncmp(target, keys[i], strlen(keys[i]))) return 1;
  return 0;
}

/* Copies |target| with the password blanked: "password=..." in a
 * connection string, "user:...@" in a URI. */
const char *wr_db_target_redact(const char *target, char *buf, size_t size) {
  size_t o = 0;
  const char *p = target ? target : "";
  const char *at = strchr(p, '@'), *scheme = strstr(p, "://");
  if (!size) return buf;
  while (*p && o + 1 < size) {
    if (scheme && at && p > scheme + 2 && p < at && *p == ':') {
      /* user:password@ in a URI */
      o += (size_t)snprintf(buf + o, size - o, ":***");
      p = at;
      continue;
    }
    if (!strncmp(p, "password=", 9) && (p == target || p[-1] == ' ' || p[-1] == '&' ||
                                        p[-1] == '?')) {
      o += (size_t)snprintf(buf + o, size - o, "password=***");
      p += 9;
      while (*p && *p != ' ' && *p != '&') p++;
      continue;
    }
    buf[o++] = *p++;
  }
  buf[o < size ? o : size - 1] = 0;
  return buf;
}

int wr_db_open(const char *target, unsigned flags, wr_db **out, wr_db_errkind *kind, char *err,
               size_t errlen) {
  wr_db_errkind k = WR_DB_E_NONE;
  int rv;
  *out = NULL;
  rv = wr_db_target_is_pg(target) ? wr__db_pg_open(target, out, &k, err, errlen)
                                  : wr__db_sqlite_open(target, flags, out, &k, err, errlen);
  if (kind) *kind = k;
  return rv;
}

void wr_db_close(wr_db *db) {
  if (db) db->ops->close(db);
}

const char *wr_db_backend(const wr_db *db) { return db->ops->name; }
const char *wr_db_errmsg(const wr_db *db) { return db->errmsg; }
wr_db_errkind wr_db_errkind_last(const wr_db *db) { return db->kind; }

int wr_db_prepare(wr_db *db, const char *sql, wr_db_stmt **out) {
  *out = NULL;
  return db->ops->prepare(db, sql, out);
}
int wr_db_bind_text(wr_db_stmt *st, int i, const char *v) {
  return st->db->ops->bind_text(st, i, v);
}
int wr_db_bind_int64(wr_db_stmt *st, int i, int64_t v) {
  return st->db->ops->bind_int64(st, i, v);
}
int wr_db_bind_null(wr_db_stmt *st, int i) { return st->db->ops->bind_null(st, i); }
int wr_db_bind_blob(wr_db_stmt *st, int i, const void *p, size_t len) {
  return st->db->ops->bind_blob(st, i, p, len);
}
int wr_db_step(wr_db_stmt *st) { return st->db->ops->step(st); }
int wr_db_col_is_null(wr_db_stmt *st, int i) { return st->db->ops->col_is_null(st, i); }
int64_t wr_db_col_int64(wr_db_stmt *st, int i) { return st->db->ops->col_int64(st, i); }
const char *wr_db_col_text(wr_db_stmt *st, int i) { return st->db->ops->col_text(st, i); }
const void *wr_db_col_blob(wr_db_stmt *st, int i) { return st->db->ops->col_blob(st, i); }
size_t wr_db_col_bytes(wr_db_stmt *st, int i) { return st->db->ops->col_bytes(st, i); }
int wr_db_col_count(wr_db_stmt *st) { return st->db->ops->col_count(st); }
const char *wr_db_col_name(wr_db_stmt *st, int i) { return st->db->ops->col_name(st, i); }
int wr_db_col_kind(wr_db_stmt *st, int i) { return st->db->ops->col_kind(st, i); }
int wr_db_after_copy(wr_db *db, const char *table) { return db->ops->after_copy(db, table); }
void wr_db_finalize(wr_db_stmt *st) {
  if (st) st->db->ops->finalize(st);
}
int wr_db_changes(wr_db *db) { return db->changes; }
int wr_db_exec(wr_db *db, const char *sql) { return db->ops->exec(db, sql); }
int wr_db_begin(wr_db *db) { return db->ops->begin(db); }
int wr_db_commit(wr_db *db) { return db->ops->commit(db); }
void wr_db_rollback(wr_db *db) { db->ops->rollback(db); }
int wr_db_schema_lock(wr_db *db) { return db->ops->schema_lock(db); }
int wr_db_schema_version(wr_db *db, int *version) {
  return db->ops->schema_version(db, version);
}
int wr_db_set_schema_version(wr_db *db, int version) {
  return db->ops->set_schema_version(db, version);
}
char *wr_db_ddl(const wr_db *db, const char *ddl) { return db->ops->ddl(ddl); }
