/* edge/db.h on PostgreSQL through libpq: for several edges sharing one
 * database. Statements are sent with PQexecParams, every value a typed
 * parameter (text, int8, bytea in binary) and results in text form. The
 * schema version lives in a table (warren_schema); migrators queue on a
 * transaction-scoped advisory lock. A broken connection is reset before
 * the next statement that starts outside a transaction. */
#include "edge/db.h"
#include "edge/db_int.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mem.h"

/* Type OIDs from PostgreSQL's catalog (pg_type.dat); stable across
 * releases, and server headers are not needed for four numbers. */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25

/* The advisory lock migrators take: "warr" in ASCII. */
#define SCHEMA_LOCK_KEY 0x77617272

typedef struct db_pg {
  wr_db base;
  PGconn *c;
} db_pg;

typedef struct stmt_pg {
  wr_db_stmt base;
  char *sql;      /* with $N placeholders */
  int nparams;    /* highest $N */
  /* PQexecParams' arrays, nparams each, in one allocation at |vals|. */
  char **vals;    /* owned copies; NULL is SQL NULL */
  int *lens;      /* blob lengths */
  int *fmts;      /* 1 for binary (bytea) */
  Oid *types;
  PGresult *res;  /* after the first step */
  int row, nrows;
  unsigned char *blob; /* the last unescaped bytea column */
  size_t blob_len;
} stmt_pg;

#define C(db) (((db_pg *)(db))->c)

static int ident_char(char c) { return isalnum((unsigned char)c) || c == '_'; }
static int p_exec(wr_db *db, const char *sql);
#define PS(st) ((stmt_pg *)(st))

/* libpq's messages end in a newline; the store adds context before them. */
static int conn_err(wr_db *db, const char *what) {
  char msg[WR_DB_ERRMSG_MAX];
  snprintf(msg, sizeof(msg), "%s", PQerrorMessage(C(db)));
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = 0;
  return wr__db_err(db, PQstatus(C(db)) == CONNECTION_BAD ? WR_DB_E_DOWN : WR_DB_E_OTHER,
                    "%s%s%s", what, *what ? ": " : "", msg);
}

/* Classifies a failed result by its SQLSTATE (class 23 is integrity
 * constraints, class 08 the connection). */
static int result_err(wr_db *db, const PGresult *res) {
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *prim = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  wr_db_errkind k = WR_DB_E_OTHER;
  /* No SQLSTATE: libpq itself failed, which is the connection (the server
   * went away before or while answering). */
  if (!state || !prim || PQstatus(C(db)) == CONNECTION_BAD) {
    conn_err(db, "");
    db->kind = WR_DB_E_DOWN;
    return -1;
  }
  if (!strcmp(state, "23505")) k = WR_DB_E_UNIQUE;
  else if (!strcmp(state, "23503")) k = WR_DB_E_FOREIGN;
  else if (!strncmp(state, "23", 2)) k = WR_DB_E_CONSTRAINT;
  else if (!strncmp(state, "08", 2) || !strncmp(state, "57P", 3)) k = WR_DB_E_DOWN;
  return wr__db_err(db, k, "%s", prim);
}

/* A broken connection (server restarted, network gone) is reset when no
 * transaction is open; a transaction in flight is lost with it anyway. */
static int ensure_conn(wr_db *db) {
  if (PQstatus(C(db)) == CONNECTION_OK) return 0;
  PQreset(C(db));
  return PQstatus(C(db)) == CONNECTION_OK ? 0 : conn_err(db, "the database is unreachable");
}

static void p_close(wr_db *db) {
  PQfinish(C(db));
  free(db);
}

/* Rewrites SQLite's "?" and "?N" as "$N", leaving string literals and
 * quoted identifiers alone. A bare "?" is one more than the highest number
 * so far, as in SQLite. */
static char *translate_params(const char *sql, int *nparams) {
  char *out = wr_xcalloc(1, strlen(sql) * 4 + 1), *o = out;
  int max = 0;
  for (const char *p = sql; *p;) {
    if (*p == '\'' || *p == '"') {
      char q = *p;
      *o++ = *p++;
      while (*p && *p != q) *o++ = *p++;
      if (*p) *o++ = *p++;
      continue;
    }
    if (*p != '?') {
      *o++ = *p++;
      continue;
    }
    p++;
    int n = 0;
    if (isdigit((unsigned char)*p))
      while (isdigit((unsigned char)*p) && n < 1000) n = n * 10 + (*p++ - '0');
    else n = max + 1;
    if (n > max) max = n;
    o += sprintf(o, "$%d", n);
  }
  *o = 0;
  *nparams = max;
  return out;
}

static int p_prepare(wr_db *db, const char *sql, wr_db_stmt **out) {
  stmt_pg *st;
  if (ensure_conn(db) != 0) return -1;
  st = wr_xcalloc(1, sizeof(*st));
  st->base.db = db;
  st->sql = translate_params(sql, &st->nparams);
  if (st->nparams) {
    size_t n = (size_t)st->nparams; /* pointers first, then the 4-byte arrays: all aligned */
    st->vals = wr_xcalloc(n, sizeof(*st->vals) + sizeof(*st->lens) + sizeof(*st->fmts) + sizeof(*st->types));
    st->lens = (int *)(st->vals + n);
    st->fmts = st->lens + n;
    st->types = (Oid *)(st->fmts + n);
    for (int i = 0; i < st->nparams; i++) st->types[i] = OID_TEXT;
  }
  st->row = -1;
  *out = &st->base;
  return 0;
}

/* Sets parameter |i| (1-based) to a copy of |p| (NULL: SQL NULL). */
static int set_param(wr_db_stmt *base, int i, Oid type, int binary, const void *p, size_t len) {
  stmt_pg *st = PS(base);
  if (i < 1 || i > st->nparams || len > 0x7fffffff)
    return wr__db_err(base->db, WR_DB_E_OTHER, "parameter %d out of range", i);
  free(st->vals[i - 1]);
  st->vals[i - 1] = NULL;
  if (p) {
    st->vals[i - 1] = wr_xcalloc(1, len + 1);
    memcpy(st->vals[i - 1], p, len);
  }
  st->lens[i - 1] = (int)len;
  st->fmts[i - 1] = binary;
  st->types[i - 1] = type;
  return 0;
}

static int p_bind_text(wr_db_stmt *st, int i, const char *v) {
  return set_param(st, i, OID_TEXT, 0, v, v ? strlen(v) : 0);
}
static int p_bind_int64(wr_db_stmt *st, int i, int64_t v) {
  char b[24];
  int n = snprintf(b, sizeof(b), "%lld", (long long)v);
  return set_param(st, i, OID_INT8, 0, b, (size_t)n);
}
/* Type 0: the server infers it from where the parameter is used. */
static int p_bind_null(wr_db_stmt *st, int i) { return set_param(st, i, 0, 0, NULL, 0); }
/* An empty blob is still a value, not NULL. */
static int p_bind_blob(wr_db_stmt *st, int i, const void *p, size_t len) {
  return set_param(st, i, OID_BYTEA, 1, p ? p : "", len);
}

static void drop_blob(stmt_pg *st) {
  if (st->blob) PQfreemem(st->blob);
  st->blob = NULL;
  st->blob_len = 0;
}

static int run(wr_db_stmt *base) {
  stmt_pg *st = PS(base);
  wr_db *db = base->db;
  st->res = PQexecParams(C(db), st->sql, st->nparams, st->types,
                         (const char *const *)st->vals, st->lens, st->fmts, 0);
  switch (PQresultStatus(st->res)) {
  case PGRES_TUPLES_OK:
    st->nrows = PQntuples(st->res);
    db->changes = 0;
    return 0;
  case PGRES_COMMAND_OK:
    st->nrows = 0;
    db->changes = atoi(PQcmdTuples(st->res));
    return 0;
  default:
    result_err(db, st->res);
    PQclear(st->res);
    st->res = NULL;
    return -1;
  }
}

static int p_step(wr_db_stmt *base) {
  stmt_pg *st = PS(base);
  drop_blob(st);
  if (!st->res && run(base) != 0) return WR_DB_ERROR;
  if (st->row < st->nrows) st->row++;
  return st->row < st->nrows ? WR_DB_ROW : WR_DB_DONE;
}

static int p_col_is_null(wr_db_stmt *base, int i) {
  stmt_pg *st = PS(base);
  if (!st->res || st->row >= st->nrows || i >= PQnfields(st->res)) return 1;
  return PQgetisnull(st->res, st->row, i);
}

static int64_t p_col_int64(wr_db_stmt *base, int i) {
  stmt_pg *st = PS(base);
  if (p_col_is_null(base, i)) return 0;
  const char *v = PQgetvalue(st->res, st->row, i);
  if (PQftype(st->res, i) == OID_BOOL) return v[0] == 't';
  return strtoll(v, NULL, 10);
}

static const char *p_col_text(wr_db_stmt *base, int i) {
  stmt_pg *st = PS(base);
  return p_col_is_null(base, i) ? NULL : PQgetvalue(st->res, st->row, i);
}

/* bytea arrives escaped in text form ("\x..."); anything else is its text. */
static const void *p_col_blob(wr_db_stmt *base, int i) {
  stmt_pg *st = PS(base);
  if (p_col_is_null(base, i)) return NULL;
  if (PQftype(st->res, i) != OID_BYTEA) return PQgetvalue(st->res, st->row, i);
  drop_blob(st);
  st->blob = PQunescapeBytea((const unsigned char *)PQgetvalue(st->res, st->row, i),
                             &st->blob_len);
  return st->blob;
}

static size_t p_col_bytes(wr_db_stmt *base, int i) {
  stmt_pg *st = PS(base);
  if (p_col_is_null(base, i)) return 0;
  if (PQftype(st->res, i) != OID_BYTEA) return (size_t)PQgetlength(st->res, st->row, i);
  if (!st->blob) p_col_blob(base, i);
  return st->blob_len;
}

static int p_col_count(wr_db_stmt *base) {
  stmt_pg *st = PS(base);
  return st->res ? PQnfields(st->res) : 0;
}
static const char *p_col_name(wr_db_stmt *base, int i) {
  stmt_pg *st = PS(base);
  return st->res ? PQfname(st->res, i) : NULL;
}
static int p_col_kind(wr_db_stmt *base, int i) {
  stmt_pg *st = PS(base);
  if (p_col_is_null(base, i)) return WR_DB_T_NULL;
  switch (PQftype(st->res, i)) {
  case OID_BYTEA:
    return WR_DB_T_BLOB;
  case OID_INT8:
  case OID_BOOL:
  case 21: /* int2 */
  case 23: /* int4 */
    return WR_DB_T_INT;
  default:
    return WR_DB_T_TEXT;
  }
}

/* Sets every serial column's sequence of |table| past its largest value,
 * so rows inserted later do not collide with the copied ones. */
static int p_after_copy(wr_db *db, const char *table) {
  char sql[1024];
  for (const char *p = table; *p; p++)
    if (!ident_char(*p)) return wr__db_err(db, WR_DB_E_OTHER, "bad table name");
  snprintf(sql, sizeof(sql),
           "DO $do$ DECLARE r record; BEGIN FOR r IN SELECT column_name AS c FROM "
           "information_schema.columns WHERE table_schema = current_schema() AND table_name = '%s' "
           "AND column_default LIKE 'nextval(%%' LOOP EXECUTE format('SELECT setval("
           "pg_get_serial_sequence(%%L, %%L), coalesce(max(%%I), 0) + 1, false) FROM %%I', '%s', "
           "r.c, r.c, '%s'); END LOOP; END $do$",
           table, table, table);
  return p_exec(db, sql);
}

static void p_finalize(wr_db_stmt *base) {
  stmt_pg *st = PS(base);
  drop_blob(st);
  PQclear(st->res);
  for (int i = 0; i < st->nparams; i++) free(st->vals[i]);
  free(st->vals); /* and lens, fmts, types: one block */
  free(st->sql);
  free(st);
}

static int p_exec(wr_db *db, const char *sql) {
  PGresult *res;
  int rv = 0;
  if (PQtransactionStatus(C(db)) == PQTRANS_IDLE && ensure_conn(db) != 0) return -1;
  res = PQexec(C(db), sql);
  ExecStatusType s = PQresultStatus(res);
  if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) rv = result_err(db, res);
  PQclear(res);
  return rv;
}

static int p_begin(wr_db *db) {
  if (ensure_conn(db) != 0) return -1;
  return p_exec(db, "BEGIN");
}

/* COMMIT of a failed transaction answers "ROLLBACK" without an error; that
 * must not read as success. */
static int p_commit(wr_db *db) {
  if (PQtransactionStatus(C(db)) == PQTRANS_INERROR)
    return wr__db_err(db, WR_DB_E_OTHER, "the transaction failed and was rolled back");
  return p_exec(db, "COMMIT");
}

static void p_rollback(wr_db *db) {
  PGTransactionStatusType t = PQtransactionStatus(C(db));
  if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR) PQclear(PQexec(C(db), "ROLLBACK"));
}

static int p_schema_lock(wr_db *db) {
  char sql[64];
  snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%d)", SCHEMA_LOCK_KEY);
  return p_exec(db, sql);
}

/* One query so that a missing table is not an error (an error would abort
 * the caller's transaction). */
static int p_schema_version(wr_db *db, int *v) {
  PGresult *res;
  int rv = 0;
  if (PQtransactionStatus(C(db)) == PQTRANS_IDLE && ensure_conn(db) != 0) return -1;
  res = PQexec(C(db), "SELECT to_regclass('warren_schema') IS NOT NULL");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rv = result_err(db, res);
    PQclear(res);
    return rv;
  }
  int exists = PQgetvalue(res, 0, 0)[0] == 't';
  PQclear(res);
  *v = 0;
  if (!exists) return 0;
  res = PQexec(C(db), "SELECT coalesce(max(version), 0) FROM warren_schema");
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
    *v = atoi(PQgetvalue(res, 0, 0));
  else rv = result_err(db, res);
  PQclear(res);
  return rv;
}

static int p_set_schema_version(wr_db *db, int v) {
  char sql[160];
  snprintf(sql, sizeof(sql),
           "CREATE TABLE IF NOT EXISTS warren_schema (version integer NOT NULL);"
           "DELETE FROM warren_schema; INSERT INTO warren_schema VALUES (%d)",
           v);
  return p_exec(db, sql);
}


/* Replaces whole-word occurrences of |from| in |s| (freed) by |to|. */
static char *replace_words(char *s, const char *from, const char *to) {
  size_t fl = strlen(from), tl = strlen(to), n = 0;
  for (const char *p = strstr(s, from); p; p = strstr(p + fl, from)) n++;
  char *out = wr_xcalloc(1, strlen(s) + n * (tl > fl ? tl - fl : 0) + 1), *o = out;
  const char *p = s;
  for (const char *m; (m = strstr(p, from));) {
    int word = (m == s || !ident_char(m[-1]) || !ident_char(from[0])) &&
               (!ident_char(m[fl]) || !ident_char(from[fl - 1]));
    memcpy(o, p, (size_t)(m - p));
    o += m - p;
    memcpy(o, word ? to : from, word ? tl : fl);
    o += word ? tl : fl;
    p = m + fl;
  }
  strcpy(o, p);
  free(s);
  return out;
}

/* Adds "rowid BIGSERIAL" to each CREATE TABLE: queries order ties by
 * SQLite's rowid (insertion order) and this keeps that text working. */
static char *add_rowid(char *s) {
  static const char col[] = "rowid BIGSERIAL, ";
  size_t n = 0;
  for (const char *p = strstr(s, "CREATE TABLE "); p; p = strstr(p + 1, "CREATE TABLE ")) n++;
  char *out = wr_xcalloc(1, strlen(s) + n * strlen(col) + 1), *o = out;
  const char *p = s;
  for (const char *m; (m = strstr(p, "CREATE TABLE ")) && strchr(m, '(');) {
    const char *paren = strchr(m, '(') + 1;
    memcpy(o, p, (size_t)(paren - p));
    o += paren - p;
    memcpy(o, col, strlen(col));
    o += strlen(col);
    p = paren;
  }
  strcpy(o, p);
  free(s);
  return out;
}

/* The SQLite schema text as PostgreSQL runs it. json_valid() is provided
 * as a function so CHECK constraints keep their text. */
static char *p_ddl(const char *ddl) {
  static const char json_valid[] =
      "CREATE OR REPLACE FUNCTION json_valid(t text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE "
      "AS $f$ BEGIN PERFORM t::json; RETURN true; EXCEPTION WHEN others THEN RETURN false; END "
      "$f$;";
  size_t n = strlen(json_valid) + strlen(ddl) + 1;
  char *s = wr_xcalloc(1, n);
  snprintf(s, n, "%s%s", json_valid, ddl);
  s = replace_words(s, "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY");
  s = replace_words(s, "INTEGER", "BIGINT");
  s = replace_words(s, "BLOB", "BYTEA");
  s = replace_words(s, " COLLATE NOCASE", "");
  s = replace_words(s, "ifnull(", "coalesce(");
  return add_rowid(s);
}

static const wr_db_ops pg_ops = {
    .name = "postgres",
    .close = p_close,
    .prepare = p_prepare,
    .bind_text = p_bind_text,
    .bind_int64 = p_bind_int64,
    .bind_null = p_bind_null,
    .bind_blob = p_bind_blob,
    .step = p_step,
    .col_is_null = p_col_is_null,
    .col_int64 = p_col_int64,
    .col_text = p_col_text,
    .col_blob = p_col_blob,
    .col_bytes = p_col_bytes,
    .col_count = p_col_count,
    .col_name = p_col_name,
    .col_kind = p_col_kind,
    .finalize = p_finalize,
    .exec = p_exec,
    .begin = p_begin,
    .commit = p_commit,
    .rollback = p_rollback,
    .schema_lock = p_schema_lock,
    .schema_version = p_schema_version,
    .set_schema_version = p_set_schema_version,
    .after_copy = p_after_copy,
    .ddl = p_ddl,
};

/* NOTICEs (CREATE ... IF NOT EXISTS) are not the edge's business. */
static void quiet(void *arg, const char *msg) {
  (void)arg;
  (void)msg;
}

int wr__db_pg_open(const char *conninfo, wr_db **out, wr_db_errkind *kind, char *err,
                   size_t errlen) {
  db_pg *d = wr_xcalloc(1, sizeof(*d));
  char shown[256];
  d->base.ops = &pg_ops;
  d->c = PQconnectdb(conninfo);
  if (!d->c || PQstatus(d->c) != CONNECTION_OK) {
    const char *m = d->c ? PQerrorMessage(d->c) : "out of memory";
    int n = (int)strcspn(m, "\n");
    *kind = WR_DB_E_DOWN;
    snprintf(err, errlen, "cannot connect to store %s: %.*s",
             wr_db_target_redact(conninfo, shown, sizeof(shown)), n, m);
    PQfinish(d->c);
    free(d);
    return -1;
  }
  PQsetNoticeProcessor(d->c, quiet, NULL);
  *kind = WR_DB_E_NONE;
  *out = &d->base;
  return 0;
}
