/* Access objects and signing keys in the store; see store_access.h. */
#include "edge/store_access.h"

#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/store_int.h"
#include "lib/err.h"

static int kind_ok(const char *k) {
  return k && (!strcmp(k, "app") || !strcmp(k, "policy") || !strcmp(k, "group") || !strcmp(k, "service_token") ||
              !strcmp(k, "identity_provider"));
}

/* The document of the current row (columns: doc, id, created_at,
 * updated_at) with the store's members set; NULL if the stored text is not
 * JSON (cannot happen: the column is checked). */
static json_t *row_doc(wr_db_stmt *st) {
  json_error_t e;
  const char *text = wr_db_col_text(st, 0);
  json_t *d = text ? json_loads(text, 0, &e) : NULL;
  if (!json_is_object(d)) {
    json_decref(d);
    return NULL;
  }
  json_object_set_new(d, "id", json_string(wr_db_col_text(st, 1)));
  json_object_set_new(d, "created_at", json_integer(wr_db_col_int64(st, 2)));
  json_object_set_new(d, "updated_at", json_integer(wr_db_col_int64(st, 3)));
  return d;
}

/* |doc| without the members the store owns, as text. */
static char *doc_text(const json_t *doc) {
  json_t *c = json_deep_copy(doc);
  if (!c) return NULL;
  json_object_del(c, "id");
  json_object_del(c, "created_at");
  json_object_del(c, "updated_at");
  char *t = json_dumps(c, JSON_COMPACT);
  json_decref(c);
  return t;
}

/* Steps |st| to its end, each row made into JSON by |row| (NULL: skipped)
 * and appended to a new array into *out, then finalizes |st|. WR_OK, or
 * the database error (|what| in its message) with *out NULL. */
static int json_rows(wr_store *s, wr_db_stmt *st, const char *what, json_t *(*row)(wr_db_stmt *),
                     json_t **out) {
  json_t *arr = json_array();
  int rc;
  while ((rc = wr_db_step(st)) == WR_DB_ROW) {
    json_t *d = row(st);
    if (d) json_array_append_new(arr, d);
  }
  wr_db_finalize(st);
  if (rc != WR_DB_DONE) {
    json_decref(arr);
    *out = NULL;
    return wr__store_dberr(s, what);
  }
  *out = arr;
  return WR_OK;
}

#define OBJ_SELECT "SELECT doc, id, created_at, updated_at FROM access_objects "

int wr_store_access_get(wr_store *s, const char *account_id, const char *kind, const char *parent,
                        const char *id, json_t **out) {
  wr_db_stmt *st;
  *out = NULL;
  int rv = wr__store_prepf(s, &st,
                           OBJ_SELECT "WHERE id = ? AND account_id = ? AND kind = ? AND (? IS NULL OR parent_id = ?)",
                           "sssss", id, account_id, kind, parent, parent);
  if (rv != WR_OK) return rv;
  rv = wr__store_step_row(s, st, "read access object");
  if (rv == WR_OK && !(*out = row_doc(st))) rv = wr__store_serr(s, WR_ERR_STORE, "a stored %s is not JSON", kind);
  else if (rv == WR_ERR_NOTFOUND)
    wr__store_serr(s, rv, "no %s %.64s in this account", !strcmp(kind, "app") ? "application" : kind, id);
  wr_db_finalize(st);
  return rv;
}

int wr_store_access_list(wr_store *s, const char *account_id, const char *kind, const char *parent,
                         json_t **out) {
  wr_db_stmt *st;
  int rv = wr__store_prepf(s, &st,
                           OBJ_SELECT "WHERE account_id = ? AND kind = ? AND (? IS NULL OR parent_id = ?) "
                                      "ORDER BY created_at, rowid",
                           "ssss", account_id, kind, parent, parent);
  *out = NULL;
  if (rv != WR_OK) return rv;
  return json_rows(s, st, "list access objects", row_doc, out);
}

static json_t *audit_detail(const char *kind, const json_t *doc) {
  json_t *name = json_object_get(doc, "name");
  json_t *d = json_pack("{s:s}", "kind", kind);
  if (json_is_string(name)) json_object_set(d, "name", name);
  json_t *dom = json_object_get(doc, "domain"), *dec = json_object_get(doc, "decision");
  if (json_is_string(dom)) json_object_set(d, "domain", dom);
  if (json_is_string(dec)) json_object_set(d, "decision", dec);
  return d;
}

/* The end of a create or an update whose write returned |rv|: the audit
 * row, the object as stored into *out, and the transaction's end (*out is
 * NULL unless all of it succeeded). */
static int write_end(wr_store *s, int rv, const char *actor, const char *account_id,
                     const char *kind, const char *verb, const char *id, const json_t *doc,
                     json_t **out) {
  char action[48];
  if (rv == WR_OK) {
    snprintf(action, sizeof(action), "access.%s.%s", kind, verb);
    rv = wr__store_audit_insert(s, actor, account_id, action, kind, id, audit_detail(kind, doc));
  }
  if (rv == WR_OK) rv = wr_store_access_get(s, account_id, kind, NULL, id, out);
  rv = wr__store_tx_end(s, rv);
  if (rv != WR_OK && *out) {
    json_decref(*out);
    *out = NULL;
  }
  return rv;
}

/* The insert of a new object (its id into |id|) under app |parent| when
 * not NULL, inside write_obj's transaction. */
static int insert_obj(wr_store *s, const char *account_id, const char *kind, const char *parent,
                      const char *lookup, const uint8_t *secret_hash, const char *text,
                      char id[WR_STORE_UUID_LEN + 1]) {
  json_t *p = NULL;
  char q[128];
  int rv;
  if (parent && (rv = wr_store_access_get(s, account_id, "app", NULL, parent, &p)) != WR_OK) return rv;
  json_decref(p);
  if ((rv = wr__store_new_uuid(s, id)) != WR_OK) return rv;
  int64_t now = wr__store_now(s);
  rv = wr__store_execf(s, NULL, "create access object",
                       "INSERT INTO access_objects (id, account_id, kind, parent_id, lookup, secret_hash, doc, "
                       "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       "sssssbsii", id, account_id, kind, parent, lookup, secret_hash,
                       (size_t)(secret_hash ? WR_STORE_ACCESS_SECRET_HASH_LEN : 0), text, now, now);
  if (rv == WR_ERR_EXISTS)
    rv = wr__store_serr(s, rv, "%s %s is already taken by another %s", !strcmp(kind, "app") ? "domain" : "client_id",
                        wr__store_quote(lookup ? lookup : "", q, sizeof(q)), kind);
  return rv;
}

/* The update of object |id| (of |kind|, under |parent| when not NULL),
 * inside write_obj's transaction. */
static int update_obj(wr_store *s, const char *account_id, const char *kind, const char *parent,
                      const char *lookup, const char *text, const char *id) {
  json_t *old = NULL;
  int rv = wr_store_access_get(s, account_id, kind, parent, id, &old);
  json_decref(old);
  if (rv != WR_OK) return rv;
  rv = wr__store_execf(s, NULL, "update access object",
                       "UPDATE access_objects SET doc = ?, lookup = coalesce(?, lookup), updated_at = ? WHERE id = ?",
                       "ssis", text, lookup, wr__store_now(s), id);
  if (rv == WR_ERR_EXISTS) rv = wr__store_serr(s, rv, "that domain is already taken by another application");
  return rv;
}

/* An update of object |id| (|update| not 0) or a create, in one
 * transaction that write_end closes. */
static int write_obj(wr_store *s, const char *actor, const char *account_id, const char *kind,
                     const char *parent, int update, const char *id, const char *lookup,
                     const uint8_t *secret_hash, const json_t *doc, json_t **out) {
  char new_id[WR_STORE_UUID_LEN + 1] = "";
  char *text = doc_text(doc);
  if (!text) return wr__store_serr(s, WR_ERR_NOMEM, "cannot encode the object");
  int rv = wr__store_tx_begin(s);
  if (rv == WR_OK) {
    rv = update ? update_obj(s, account_id, kind, parent, lookup, text, id)
                : insert_obj(s, account_id, kind, parent, lookup, secret_hash, text, new_id);
    rv = write_end(s, rv, actor, account_id, kind, update ? "update" : "create",
                   update ? id : new_id, doc, out);
  }
  free(text);
  return rv;
}

int wr_store_access_create(wr_store *s, const char *actor, const char *account_id, const char *kind,
                           const char *parent, const char *lookup, const uint8_t *secret_hash,
                           const json_t *doc, json_t **out) {
  *out = NULL;
  if (!kind_ok(kind) || !json_is_object(doc)) return wr__store_serr(s, WR_ERR_INVAL, "bad access object");
  return write_obj(s, actor, account_id, kind, parent, 0, NULL, lookup, secret_hash, doc, out);
}

int wr_store_access_update(wr_store *s, const char *actor, const char *account_id, const char *kind,
                           const char *parent, const char *id, const char *lookup, const json_t *doc,
                           json_t **out) {
  *out = NULL;
  return write_obj(s, actor, account_id, kind, parent, 1, id, lookup, NULL, doc, out);
}

int wr_store_access_delete(wr_store *s, const char *actor, const char *account_id, const char *kind,
                           const char *parent, const char *id) {
  char action[48];
  json_t *old = NULL;
  int rv = wr__store_tx_begin(s);
  if (rv != WR_OK) return rv;
  if ((rv = wr_store_access_get(s, account_id, kind, parent, id, &old)) != WR_OK) goto out;
  if (!strcmp(kind, "app"))
    rv = wr__store_execf(s, NULL, "delete policies", "DELETE FROM access_objects WHERE parent_id = ? AND kind = 'policy'",
                         "s", id);
  if (rv == WR_OK)
    rv = wr__store_execf(s, NULL, "delete access object", "DELETE FROM access_objects WHERE id = ?", "s", id);
  snprintf(action, sizeof(action), "access.%s.delete", kind);
  if (rv == WR_OK) rv = wr__store_audit_insert(s, actor, account_id, action, kind, id, audit_detail(kind, old));
out:
  json_decref(old);
  return wr__store_tx_end(s, rv);
}

/* The policies of app |id|, into its document. */
static int add_policies(wr_store *s, const char *account_id, json_t *app) {
  json_t *pol = NULL;
  int rv = wr_store_access_list(s, account_id, "policy", json_string_value(json_object_get(app, "id")), &pol);
  if (rv == WR_OK) json_object_set_new(app, "policies", pol);
  return rv;
}

static int add_groups(wr_store *s, const char *account_id, json_t *groups) {
  json_t *arr = NULL, *g;
  size_t i;
  int rv = wr_store_access_list(s, account_id, "group", NULL, &arr);
  if (rv != WR_OK) return rv;
  json_array_foreach(arr, i, g) json_object_set(groups, json_string_value(json_object_get(g, "id")), g);
  json_decref(arr);
  return WR_OK;
}

/* An app for wr_store_access_for_host: row_doc with its account (column 4). */
static json_t *app_row(wr_db_stmt *st) {
  json_t *d = row_doc(st);
  if (d) json_object_set_new(d, "account_id", json_string(wr_db_col_text(st, 4)));
  return d;
}

int wr_store_access_for_host(wr_store *s, const char *host, json_t **out) {
  wr_db_stmt *st;
  char prefix[WR_STORE_HOST_MAX + 2];
  snprintf(prefix, sizeof(prefix), "%s/", host);
  *out = NULL;
  /* substr, not LIKE: a host never holds wildcards, but '_' is a LIKE one. */
  int rv = wr__store_prepf(s, &st,
                           "SELECT doc, id, created_at, updated_at, account_id FROM access_objects "
                           "WHERE kind = 'app' AND (lookup = ? OR substr(lookup, 1, length(?)) = ?)",
                           "sss", host, prefix, prefix);
  if (rv != WR_OK) return rv;
  json_t *apps, *groups = json_object(), *a;
  size_t i;
  rv = json_rows(s, st, "look up access apps", app_row, &apps);
  json_array_foreach(apps, i, a) {
    const char *acct = json_string_value(json_object_get(a, "account_id"));
    if (rv == WR_OK) rv = add_policies(s, acct, a);
    if (rv == WR_OK && i == 0) rv = add_groups(s, acct, groups);
  }
  if (rv != WR_OK) {
    json_decref(apps);
    json_decref(groups);
    return rv;
  }
  *out = json_pack("{s:o,s:o}", "apps", apps, "groups", groups);
  return WR_OK;
}

/* The token document's "expires_at" (seconds), or 0: read here rather
 * than with SQLite's json_extract so the SQL is PostgreSQL's too. */
static int64_t doc_expires_at(const char *text) {
  json_t *d = text ? json_loads(text, 0, NULL) : NULL;
  json_t *v = json_object_get(d, "expires_at");
  int64_t exp = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
  json_decref(d);
  return exp;
}

int wr_store_access_token_check(wr_store *s, const char *client_id, const char *secret,
                                char id[WR_STORE_UUID_LEN + 1], char account_id[WR_STORE_ID_LEN + 1]) {
  wr_db_stmt *st;
  uint8_t h[32];
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, secret, strlen(secret), h) != 0)
    return wr__store_serr(s, WR_ERR_CRYPTO, "cannot hash");
  int rv = wr__store_prepf(s, &st,
                           "SELECT id, account_id, secret_hash, doc FROM access_objects "
                           "WHERE kind = 'service_token' AND lookup = ?",
                           "s", client_id);
  if (rv != WR_OK) return rv;
  rv = wr__store_step_row(s, st, "read service token");
  if (rv == WR_OK) {
    const void *stored = wr_db_col_blob(st, 2);
    int64_t exp = doc_expires_at(wr_db_col_text(st, 3));
    if (!stored || (int)wr_db_col_bytes(st, 2) != 32 || gnutls_memcmp(stored, h, 32) != 0 ||
        (exp && exp <= wr__store_now(s))) {
      rv = WR_ERR_DENIED;
    } else {
      wr__store_col_copy(st, 0, id, WR_STORE_UUID_LEN + 1);
      wr__store_col_copy(st, 1, account_id, WR_STORE_ID_LEN + 1);
    }
  } else if (rv == WR_ERR_NOTFOUND) {
    rv = WR_ERR_DENIED;
  }
  wr_db_finalize(st);
  if (rv == WR_ERR_DENIED) wr__store_serr(s, rv, "invalid service token");
  return rv;
}

static json_t *key_row(wr_db_stmt *st) {
  return json_pack("{s:s,s:s,s:I,s:I}", "kid", wr_db_col_text(st, 0), "pem", wr_db_col_text(st, 1),
                   "created_at", (json_int_t)wr_db_col_int64(st, 2), "retired_at",
                   (json_int_t)wr_db_col_int64(st, 3));
}

int wr_store_access_keys(wr_store *s, json_t **out) {
  wr_db_stmt *st;
  *out = NULL;
  int rv = wr__store_prepf(s, &st,
                           "SELECT kid, pem, created_at, coalesce(retired_at, 0) FROM access_keys "
                           "ORDER BY created_at DESC, rowid DESC",
                           "");
  if (rv != WR_OK) return rv;
  return json_rows(s, st, "list access keys", key_row, out);
}

int wr_store_access_key_add(wr_store *s, const char *actor, const char *kid, const char *pem) {
  int rv = wr__store_tx_begin(s);
  if (rv != WR_OK) return rv;
  int64_t now = wr__store_now(s);
  rv = wr__store_execf(s, NULL, "retire access keys", "UPDATE access_keys SET retired_at = ? WHERE retired_at IS NULL",
                       "i", now);
  if (rv == WR_OK)
    rv = wr__store_execf(s, NULL, "add access key", "INSERT INTO access_keys (kid, pem, created_at) VALUES (?, ?, ?)",
                         "ssi", kid, pem, now);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(s, actor, NULL, "access.key.rotate", "access_key", kid, json_pack("{s:s}", "kid", kid));
  return wr__store_tx_end(s, rv);
}

int wr_store_access_keys_prune(wr_store *s, int64_t before, size_t *n) {
  int ch = 0;
  int rv = wr__store_execf(s, &ch, "prune access keys",
                           "DELETE FROM access_keys WHERE retired_at IS NOT NULL AND retired_at < ?", "i", before);
  if (n) *n = rv == WR_OK ? (size_t)ch : 0;
  return rv;
}
