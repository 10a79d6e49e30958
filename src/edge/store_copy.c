/* wr_store_copy: every row of one store into another, empty one (an edge's
 * SQLite file into PostgreSQL). Both handles are open, so both schemas are
 * at this build's version; rows go over column by column as the source
 * returns them, in one transaction on the target. */
#include "edge/store.h"
#include "edge/store_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "lib/err.h"
#include "lib/mem.h"

/* Every table of the schema, parents before the rows that reference them.
 * A migration that adds a table adds it here. */
static const char *const tables[] = {
    "accounts", "zones",    "users",            "api_tokens", "tunnels", "connections",
    "routes",   "virtual_networks", "ip_routes", "audit_log", "devices",
    "zone_settings", "access_objects", "access_keys",
};

/* "INSERT INTO t (c1, ...) VALUES (?, ...)" for the source row's columns. */
static char *insert_sql(wr_db_stmt *src, const char *table) {
  int n = wr_db_col_count(src);
  size_t cap = 64 + strlen(table), len;
  for (int i = 0; i < n; i++) cap += strlen(wr_db_col_name(src, i)) + 8;
  char *sql = wr_xcalloc(1, cap);
  len = (size_t)snprintf(sql, cap, "INSERT INTO %s (", table);
  for (int i = 0; i < n; i++)
    len += (size_t)snprintf(sql + len, cap - len, "%s\"%s\"", i ? ", " : "", wr_db_col_name(src, i));
  len += (size_t)snprintf(sql + len, cap - len, ") VALUES (");
  for (int i = 0; i < n; i++) len += (size_t)snprintf(sql + len, cap - len, "%s?", i ? ", " : "");
  snprintf(sql + len, cap - len, ")");
  return sql;
}

static int bind_col(wr_db_stmt *dst, int i, wr_db_stmt *src) {
  switch (wr_db_col_kind(src, i)) {
  case WR_DB_T_NULL:
    return wr_db_bind_null(dst, i + 1);
  case WR_DB_T_INT:
    return wr_db_bind_int64(dst, i + 1, wr_db_col_int64(src, i));
  case WR_DB_T_BLOB:
    return wr_db_bind_blob(dst, i + 1, wr_db_col_blob(src, i), wr_db_col_bytes(src, i));
  default:
    return wr_db_bind_text(dst, i + 1, wr_db_col_text(src, i));
  }
}

/* Copies one table in the source's insertion order. */
static int copy_table(wr_store *from, wr_store *to, const char *table, size_t *rows) {
  char sql[128], what[96];
  wr_db_stmt *src, *dst = NULL;
  int rv, rc;
  snprintf(what, sizeof(what), "copy %s", table);
  snprintf(sql, sizeof(sql), "SELECT * FROM %s ORDER BY rowid", table);
  if ((rv = wr__store_prepf(from, &src, sql, "")) != WR_OK)
    return wr__store_serr(to, rv, "%s: %s", what, from->errmsg);
  while ((rc = wr_db_step(src)) == WR_DB_ROW) {
    char *ins = insert_sql(src, table);
    rc = wr_db_prepare(to->db, ins, &dst);
    free(ins);
    for (int i = 0; rc == 0 && i < wr_db_col_count(src); i++) rc = bind_col(dst, i, src);
    if (rc != 0 || wr_db_step(dst) != WR_DB_DONE) {
      rv = wr__store_dberr(to, what);
      goto out;
    }
    wr_db_finalize(dst);
    dst = NULL;
    (*rows)++;
  }
  if (rc != WR_DB_DONE) {
    wr__store_dberr(from, what);
    rv = wr__store_serr(to, WR_ERR_STORE, "%s", from->errmsg);
  } else if (wr_db_after_copy(to->db, table) != 0)
    rv = wr__store_dberr(to, what);
out:
  wr_db_finalize(dst);
  wr_db_finalize(src);
  return rv;
}

int wr_store_copy(wr_store *from, wr_store *to, size_t *rows) {
  wr_account *accts;
  size_t n;
  int rv;
  *rows = 0;
  if ((rv = wr_store_account_list(to, &accts, &n)) != WR_OK) return rv;
  free(accts);
  if (n > 0)
    return wr__store_serr(to, WR_ERR_EXISTS,
                          "the target store already has accounts; copy into an empty one");
  if ((rv = wr__store_tx_begin(to)) != WR_OK) return rv;
  for (size_t i = 0; rv == WR_OK && i < sizeof(tables) / sizeof(tables[0]); i++)
    rv = copy_table(from, to, tables[i], rows);
  return wr__store_tx_end(to, rv);
}
