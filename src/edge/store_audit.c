/* Store: audit rows (written inside the caller's transaction) and audit
 * queries. */

#include "edge/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/mem.h"

/* --- audit ----------------------------------------------------------------- */

#define AUDIT_ACTOR_MAX (sizeof(((wr_audit *)0)->actor) - 1)
#define AUDIT_ACTION_MAX (sizeof(((wr_audit *)0)->action) - 1)
#define AUDIT_TTYPE_MAX (sizeof(((wr_audit *)0)->target_type) - 1)
#define AUDIT_TID_MAX (sizeof(((wr_audit *)0)->target_id) - 1)

/* Writes one audit row inside the caller's transaction. Takes ownership of
 * |detail| (a JSON object; NULL means jansson could not build it, which only
 * happens for invalid UTF-8 and is reported as such). */
int wr__store_audit_insert(wr_store *s, const char *actor, const char *account_id,
                           const char *action, const char *ttype, const char *tid, json_t *detail) {
  int rv;
  char *text = NULL;
  if ((rv = wr__store_check_text(s, "audit actor", actor, AUDIT_ACTOR_MAX)) != WR_OK) goto out;
  if (strlen(action) > AUDIT_ACTION_MAX || strlen(ttype) > AUDIT_TTYPE_MAX ||
      strlen(tid) > AUDIT_TID_MAX) {
    rv = wr__store_serr(s, WR_ERR_INVAL, "audit action, target type or target id is too long");
    goto out;
  }
  if (!detail || !json_is_object(detail) ||
      !(text = json_dumps(detail, JSON_COMPACT | JSON_ENSURE_ASCII))) {
    rv = wr__store_serr(s, WR_ERR_INVAL, "audit detail for %s is not a JSON object of UTF-8 text",
                        action);
    goto out;
  }
  rv = wr__store_execf(
      s, NULL, "write audit row",
      "INSERT INTO audit_log(at, account_id, actor, action, target_type, target_id, detail)"
      " VALUES (?, ?, ?, ?, ?, ?, ?)",
      "issssss", wr__store_now(s), account_id && *account_id ? account_id : NULL, actor, action,
      ttype, tid, text);
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
    return wr__store_serr(s, WR_ERR_INVAL,
                          "audit rows need an action, a target type and a target id");
  detail = json_loads(detail_json ? detail_json : "{}", JSON_REJECT_DUPLICATES, &jerr);
  if (!detail || !json_is_object(detail)) {
    json_decref(detail);
    return wr__store_serr(s, WR_ERR_INVAL, "audit detail is not a JSON object: %s",
                          detail ? "not an object" : jerr.text);
  }
  if ((rv = wr__store_tx_begin(s)) != WR_OK) {
    json_decref(detail);
    return rv;
  }
  rv = wr__store_audit_insert(s, actor, account_id, action, target_type, target_id, detail);
  return wr__store_tx_end(s, rv);
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
/* --- audit queries ------------------------------------------------------------------------ */

#define AUDIT_WHERE                                                                                   \
  " FROM audit_log WHERE (?1 IS NULL OR account_id = lower(?1))"                                      \
  " AND (?2 IS NULL OR action = ?2 OR (substr(?2, length(?2), 1) = '.' AND substr(action, 1, length(?2)) = ?2))" \
  " AND (?3 = 0 OR at >= ?3) AND (?4 = 0 OR at < ?4)"

/* The columns of the query below before detail (7), which is strdup'ed. */
static const wr__store_col audit_cols[] = {
    WR__COL(WR__COL_INT64, wr_audit, id),
    WR__COL(WR__COL_INT64, wr_audit, at),
    WR__COL(WR__COL_TEXT, wr_audit, account_id),
    WR__COL(WR__COL_TEXT, wr_audit, actor),
    WR__COL(WR__COL_TEXT, wr_audit, action),
    WR__COL(WR__COL_TEXT, wr_audit, target_type),
    WR__COL(WR__COL_TEXT, wr_audit, target_id),
};

int wr_store_audit_query(wr_store *s, const wr_audit_filter *f, wr_audit **out, size_t *n,
                         size_t *total) {
  wr_db_stmt *st = NULL;
  wr_audit *rows = NULL;
  size_t cnt = 0, cap = 0;
  int rv, rc;
  *out = NULL;
  *n = 0;
  if (total) {
    int64_t count;
    if ((rv = wr__store_agg(s, "count audit rows", NULL, wr__store_read_int64, &count,
                            "SELECT count(*)" AUDIT_WHERE, "ssii", f->account_id, f->action,
                            f->since, f->until)) != WR_OK)
      return rv;
    *total = (size_t)count;
  }
  rv = wr__store_prepf(
      s, &st,
      "SELECT id, at, coalesce(account_id, ''), actor, action, target_type, target_id, detail" AUDIT_WHERE
      " ORDER BY id DESC LIMIT ?5 OFFSET ?6",
      "ssiiii", f->account_id, f->action, f->since, f->until,
      f->limit ? (int64_t)f->limit : (int64_t)INT64_MAX, (int64_t)f->offset);
  if (rv != WR_OK) return rv;
  while ((rc = wr_db_step(st)) == WR_DB_ROW) {
    wr_audit *a = PUSH(rows, cnt, cap);
    wr__store_read_cols(st, audit_cols, sizeof(audit_cols) / sizeof(audit_cols[0]), a);
    a->detail = wr_xstrdup((const char *)wr_db_col_text(st, 7));
  }
  if (rc != WR_DB_DONE) {
    rv = wr__store_dberr(s, "read audit log");
    wr_store_audit_free(rows, cnt);
  } else {
    *out = rows;
    *n = cnt;
  }
  wr_db_finalize(st);
  return rv;
}
