/* Internals of edge/db.h shared by db.c and its backends (db_sqlite.c,
 * db_pg.c): the vtable and the common head of every handle. */
#ifndef WR_EDGE_DB_INT_H
#define WR_EDGE_DB_INT_H

#include "edge/db.h"

#define WR_DB_ERRMSG_MAX 512

typedef struct wr_db_ops {
  const char *name;
  void (*close)(wr_db *db);
  int (*prepare)(wr_db *db, const char *sql, wr_db_stmt **out);
  int (*bind_text)(wr_db_stmt *st, int i, const char *v);
  int (*bind_int64)(wr_db_stmt *st, int i, int64_t v);
  int (*bind_null)(wr_db_stmt *st, int i);
  int (*bind_blob)(wr_db_stmt *st, int i, const void *p, size_t len);
  int (*step)(wr_db_stmt *st);
  int (*col_is_null)(wr_db_stmt *st, int i);
  int64_t (*col_int64)(wr_db_stmt *st, int i);
  const char *(*col_text)(wr_db_stmt *st, int i);
  const void *(*col_blob)(wr_db_stmt *st, int i);
  size_t (*col_bytes)(wr_db_stmt *st, int i);
  int (*col_count)(wr_db_stmt *st);
  const char *(*col_name)(wr_db_stmt *st, int i);
  int (*col_kind)(wr_db_stmt *st, int i);
  void (*finalize)(wr_db_stmt *st);
  int (*exec)(wr_db *db, const char *sql);
  int (*begin)(wr_db *db);
  int (*commit)(wr_db *db);
  void (*rollback)(wr_db *db);
  int (*schema_lock)(wr_db *db);
  int (*schema_version)(wr_db *db, int *version);
  int (*set_schema_version)(wr_db *db, int version);
  int (*after_copy)(wr_db *db, const char *table);
  char *(*ddl)(const char *ddl);
} wr_db_ops;

/* The head of every backend's handle. */
struct wr_db {
  const wr_db_ops *ops;
  wr_db_errkind kind;
  int changes;
  char errmsg[WR_DB_ERRMSG_MAX];
};

/* The head of every backend's statement. */
struct wr_db_stmt {
  wr_db *db;
};

/* Records an error on |db| and returns -1. */
__attribute__((format(printf, 3, 4))) int wr__db_err(wr_db *db, wr_db_errkind kind,
                                                     const char *fmt, ...);

int wr__db_sqlite_open(const char *path, unsigned flags, wr_db **out, wr_db_errkind *kind,
                       char *err, size_t errlen);
int wr__db_pg_open(const char *conninfo, wr_db **out, wr_db_errkind *kind, char *err,
                   size_t errlen);

#endif
