/* A thin SQL database interface under the store (edge/store_int.h): one
 * connection, statements with positional parameters, rows stepped one by
 * one, transactions. Two backends behind a vtable: SQLite (db_sqlite.c, the
 * embedded default, a file path) and PostgreSQL (db_pg.c, libpq, a
 * "postgres://" / "postgresql://" URI or a "key=value" connection string).
 *
 * The store writes one SQL text for both engines. Parameters are written
 * "?" or "?N" (SQLite's forms); the PostgreSQL backend rewrites them to
 * "$N" and sends every value as a typed parameter (text, int8, bytea), so
 * SQL is never built from data. Schema text (migrations) is written for
 * SQLite and translated by wr_db_ddl for PostgreSQL (types, an insertion
 * order "rowid" column, json_valid).
 *
 * Not thread-safe: one thread uses a wr_db at a time (the store thread or
 * the loop, edge/store.h). Functions returning int give 0 on success and
 * -1 on failure, with the reason in wr_db_errmsg / wr_db_errkind, unless
 * they say otherwise. */
#ifndef WR_EDGE_DB_H
#define WR_EDGE_DB_H

#include <stddef.h>
#include <stdint.h>

typedef struct wr_db wr_db;
typedef struct wr_db_stmt wr_db_stmt;

/* wr_db_step results. */
#define WR_DB_DONE 0
#define WR_DB_ROW 1
#define WR_DB_ERROR (-1)

/* What went wrong, for mapping to the store's error codes. */
typedef enum wr_db_errkind {
  WR_DB_E_NONE = 0,
  WR_DB_E_UNIQUE,     /* unique or primary key violation */
  WR_DB_E_FOREIGN,    /* foreign key violation */
  WR_DB_E_CONSTRAINT, /* another constraint (CHECK, NOT NULL) */
  WR_DB_E_NOTFOUND,   /* SQLite: no file at the path (and no WR_DB_CREATE) */
  WR_DB_E_NOTADB,     /* the target exists but is not a database of ours */
  WR_DB_E_DOWN,       /* the server cannot be reached or the connection broke */
  WR_DB_E_OTHER,
} wr_db_errkind;

/* wr_db_open flags. */
#define WR_DB_CREATE 1u /* SQLite: create the file (owner-only) if missing */

/* 1 if |target| names a PostgreSQL database rather than a SQLite file. */
int wr_db_target_is_pg(const char *target);

/* Opens |target|. On failure returns -1 with a message in |err| and the
 * kind in *kind (may be NULL); *out is NULL. */
int wr_db_open(const char *target, unsigned flags, wr_db **out, wr_db_errkind *kind, char *err,
               size_t errlen);
void wr_db_close(wr_db *db);

/* |target| for messages and logs: a PostgreSQL password is replaced by
 * "***". Returns |buf|. */
const char *wr_db_target_redact(const char *target, char *buf, size_t size);

/* "sqlite" or "postgres". */
const char *wr_db_backend(const wr_db *db);
const char *wr_db_errmsg(const wr_db *db);
wr_db_errkind wr_db_errkind_last(const wr_db *db);

/* Statements. Parameters are 1-based; text is copied. */
int wr_db_prepare(wr_db *db, const char *sql, wr_db_stmt **out);
int wr_db_bind_text(wr_db_stmt *st, int i, const char *v); /* NULL binds NULL */
int wr_db_bind_int64(wr_db_stmt *st, int i, int64_t v);
/* NULL of whatever type the statement needs there (bind_text(NULL) is a
 * NULL of type text, which PostgreSQL will not put in an integer column). */
int wr_db_bind_null(wr_db_stmt *st, int i);
int wr_db_bind_blob(wr_db_stmt *st, int i, const void *p, size_t len);
/* WR_DB_ROW with a row current, WR_DB_DONE, or WR_DB_ERROR. */
int wr_db_step(wr_db_stmt *st);
/* Columns of the current row, 0-based. Text and blobs stay valid until the
 * next step or finalize; NULL reads as 0 / NULL / 0 bytes. */
int wr_db_col_is_null(wr_db_stmt *st, int i);
int64_t wr_db_col_int64(wr_db_stmt *st, int i);
const char *wr_db_col_text(wr_db_stmt *st, int i);
const void *wr_db_col_blob(wr_db_stmt *st, int i);
size_t wr_db_col_bytes(wr_db_stmt *st, int i);
/* What a column of the current row holds, for copying rows whose shape
 * the caller does not know (wr_store_copy). */
#define WR_DB_T_NULL 0
#define WR_DB_T_INT 1
#define WR_DB_T_TEXT 2
#define WR_DB_T_BLOB 3
int wr_db_col_count(wr_db_stmt *st);
const char *wr_db_col_name(wr_db_stmt *st, int i);
int wr_db_col_kind(wr_db_stmt *st, int i);
void wr_db_finalize(wr_db_stmt *st);

/* Rows changed by the last statement stepped to completion. */
int wr_db_changes(wr_db *db);
/* Runs |sql|, one or more statements without parameters or results. */
int wr_db_exec(wr_db *db, const char *sql);

/* Transactions. begin takes the write lock up front where the engine has
 * one (SQLite's BEGIN IMMEDIATE). */
int wr_db_begin(wr_db *db);
int wr_db_commit(wr_db *db);
/* Rolls back if a transaction is open; never fails. */
void wr_db_rollback(wr_db *db);

/* Schema bookkeeping, inside the caller's transaction. schema_lock makes
 * concurrent migrators queue (PostgreSQL: a transaction-scoped advisory
 * lock; SQLite's write lock already does this). */
int wr_db_schema_lock(wr_db *db);
int wr_db_schema_version(wr_db *db, int *version);
int wr_db_set_schema_version(wr_db *db, int version);
/* After rows with explicit values went into |table| (a plain identifier):
 * PostgreSQL moves its serial sequences past them; SQLite needs nothing. */
int wr_db_after_copy(wr_db *db, const char *table);
/* |ddl| written for SQLite, as this backend runs it. Returns a malloc'd
 * string the caller frees. */
char *wr_db_ddl(const wr_db *db, const char *ddl);

#endif
