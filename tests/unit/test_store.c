/* Edge store: schema migrations, the typed objects, validation of names and
 * routes, and the audit row every change writes. Each test gets a fresh
 * database in its own temporary directory. The suite runs on SQLite and,
 * when WARREN_TEST_PG names a server (tests/tools/pg_tmp.sh), again on
 * PostgreSQL with a fresh database per test. */
#include "unit.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "edge/store.h"
#include "lib/err.h"
#include "lib/file.h"

typedef struct fixture {
  char dir[64];
  char path[256]; /* a SQLite file or a PostgreSQL connection string */
  wr_store *s;
  wr_account acct;
  wr_zone zone;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  if (unit_store_new("wr-store", f->dir, sizeof(f->dir), f->path, sizeof(f->path), &f->s) != 0) return -1;
  if (wr_store_account_create(f->s, "test", "example.test", &f->acct) != WR_OK) return -1;
  if (wr_store_zone_create(f->s, "test", f->acct.id, "example.test", &f->zone) != WR_OK) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  return unit_store_drop(f->s, f->dir, f);
}

static size_t audit_count(wr_store *s) {
  wr_audit *rows;
  size_t n;
  assert_int_equal(wr_store_audit_list(s, NULL, 0, &rows, &n), WR_OK);
  wr_store_audit_free(rows, n);
  return n;
}

static void assert_err_contains(wr_store *s, const char *needle) {
  if (!strstr(wr_store_errmsg(s), needle))
    fail_msg("error \"%s\" does not contain \"%s\"", wr_store_errmsg(s), needle);
}

/* --- schema ------------------------------------------------------------------ */

static void test_migrations_idempotent(void **state) {
  fixture *f = *state;
  char err[256];
  size_t before;
  assert_int_equal(wr_store_schema_version(f->s), WR_STORE_SCHEMA_VERSION);
  before = audit_count(f->s);
  wr_store_close(f->s);
  for (int i = 0; i < 2; i++) {
    /* Reopening applies nothing and loses nothing. */
    assert_int_equal(wr_store_open(f->path, 0, &f->s, err, sizeof(err)), WR_OK);
    assert_int_equal(wr_store_schema_version(f->s), WR_STORE_SCHEMA_VERSION);
    assert_int_equal(audit_count(f->s), before);
    wr_account a;
    assert_int_equal(wr_store_account_get(f->s, f->acct.id, &a), WR_OK);
    assert_string_equal(a.name, "example.test");
    wr_store_close(f->s);
  }
  /* The file is in WAL mode (persistent), checked from outside. */
  sqlite3 *db;
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  /* A newer schema than this build knows is refused, not downgraded. */
  assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  assert_int_equal(wr_store_open(f->path, 0, &f->s, err, sizeof(err)), WR_ERR_UNSUPPORTED);
  assert_null(f->s);
  assert_non_null(strstr(err, "99"));
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  char sql[64];
  snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", WR_STORE_SCHEMA_VERSION);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  assert_int_equal(wr_store_open(f->path, 0, &f->s, err, sizeof(err)), WR_OK);
}

static void test_open_errors(void **state) {
  fixture *f = *state;
  char err[256], path[160];
  wr_store *s = (wr_store *)1;
  snprintf(path, sizeof(path), "%s/missing.db", f->dir);
  assert_int_equal(wr_store_open(path, 0, &s, err, sizeof(err)), WR_ERR_NOTFOUND);
  assert_null(s);
  assert_non_null(strstr(err, "missing.db"));
  assert_false(wr_file_exists(path));
  snprintf(path, sizeof(path), "%s/junk.db", f->dir);
  assert_int_equal(wr_file_write(path, "this is not sqlite, not at all, no.......................................................................", 100, 0600, 0), WR_OK);
  assert_int_equal(wr_store_open(path, 0, &s, err, sizeof(err)), WR_ERR_STORE);
  assert_non_null(strstr(err, "not a SQLite database"));
  unlink(path);

  /* A migration that fails half-way leaves the file as it was: version 0
   * and none of the tables the step created before failing. */
  sqlite3 *db;
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "CREATE TABLE routes (x)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  assert_int_equal(wr_store_open(path, 0, &s, err, sizeof(err)), WR_ERR_STORE);
  assert_non_null(strstr(err, "migration to schema version 1"));
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM pragma_user_version),"
                                          " (SELECT count(*) FROM sqlite_master WHERE name = 'accounts')",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(st, 0), 0);
  assert_int_equal(sqlite3_column_int(st, 1), 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

/* --- names --------------------------------------------------------------------- */

static void test_dns_names(void **state) {
  static const struct {
    const char *in;
    int wildcard;
    const char *out;     /* NULL: must fail */
    const char *reason;  /* part of the message when failing */
  } cases[] = {
      {"App.Example.TEST.", 0, "app.example.test", NULL},
      {"*.example.test", 1, "*.example.test", NULL},
      {"_acme.example.test", 0, "_acme.example.test", NULL},
      {"xn--bcher-kva.example", 0, "xn--bcher-kva.example", NULL},
      {"test", 0, "test", NULL},
      {"*.example.test", 0, NULL, "wildcard"},
      {"a.*.example.test", 1, NULL, "first label"},
      {"*", 1, NULL, "domain after"},
      {"", 0, NULL, "empty"},
      {"app.example.test:8080", 0, NULL, "port"},
      {"https://app.example.test", 0, NULL, "URL"},
      {"app.example.test/x", 0, NULL, "path"},
      {"bücher.example", 0, NULL, "punycode"},
      {"a..b", 0, NULL, "empty label"},
      {"-a.b", 0, NULL, "'-'"},
      {"a b.c", 0, NULL, "' '"},
      {"127.0.0.1", 0, NULL, "IP address"},
      {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b", 0, NULL, "63"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char out[WR_STORE_HOST_MAX + 1] = "", err[256] = "";
    int rv = wr_store_check_dns_name(cases[i].in, cases[i].wildcard, out, err, sizeof(err));
    if (cases[i].out) {
      if (rv != WR_OK) fail_msg("\"%s\" refused: %s", cases[i].in, err);
      assert_string_equal(out, cases[i].out);
    } else {
      if (rv != WR_ERR_INVAL) fail_msg("\"%s\" accepted", cases[i].in);
      if (!strstr(err, cases[i].reason)) fail_msg("\"%s\": \"%s\" lacks \"%s\"", cases[i].in, err, cases[i].reason);
    }
  }
  char big[300];
  memset(big, 'a', sizeof(big));
  for (size_t i = 50; i < sizeof(big); i += 50) big[i] = '.';
  big[sizeof(big) - 1] = '\0';
  char out[WR_STORE_HOST_MAX + 1], err[256];
  assert_int_equal(wr_store_check_dns_name(big, 0, out, err, sizeof(err)), WR_ERR_INVAL);
  assert_non_null(strstr(err, "253"));
}

static void test_tunnel_names(void **state) {
  char err[256], long_name[80];
  (void)state;
  memset(long_name, 'x', 65);
  long_name[65] = '\0';
  assert_int_equal(wr_store_check_tunnel_name("my-tunnel", err, sizeof(err)), WR_OK);
  assert_int_equal(wr_store_check_tunnel_name("tünnel ✓", err, sizeof(err)), WR_OK);
  assert_int_equal(wr_store_check_tunnel_name(long_name + 1, err, sizeof(err)), WR_OK); /* 64 */
  assert_int_equal(wr_store_check_tunnel_name(long_name, err, sizeof(err)), WR_ERR_INVAL);
  assert_non_null(strstr(err, "64"));
  assert_int_equal(wr_store_check_tunnel_name("", err, sizeof(err)), WR_ERR_INVAL);
  assert_non_null(strstr(err, "empty"));
  assert_int_equal(wr_store_check_tunnel_name("a/b", err, sizeof(err)), WR_ERR_INVAL);
  assert_non_null(strstr(err, "'/'"));
  assert_int_equal(wr_store_check_tunnel_name("a\nb", err, sizeof(err)), WR_ERR_INVAL);
  assert_null(strchr(err, '\n')); /* the message never echoes control bytes */
  assert_int_equal(wr_store_check_tunnel_name("\xff\xfe", err, sizeof(err)), WR_ERR_INVAL);
  assert_int_equal(wr_store_check_tunnel_name("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", err, sizeof(err)),
                   WR_ERR_INVAL);
  assert_non_null(strstr(err, "UUID"));
}

/* --- accounts, zones, users, tokens ------------------------------------------------ */

static void test_accounts_and_zones(void **state) {
  fixture *f = *state;
  wr_account a, b;
  wr_zone z, *zones;
  size_t n, before = audit_count(f->s);

  assert_int_equal(strlen(f->acct.id), 32);
  assert_int_equal(wr_store_account_default(f->s, &a), WR_OK);
  assert_string_equal(a.id, f->acct.id);
  assert_int_equal(wr_store_account_get(f->s, "0123456789abcdef0123456789abcdef", &a), WR_ERR_NOTFOUND);
  assert_int_equal(wr_store_account_create(f->s, "test", "", &a), WR_ERR_INVAL);

  assert_int_equal(wr_store_zone_create(f->s, "test", f->acct.id, "EXAMPLE.test", &z), WR_ERR_EXISTS);
  assert_err_contains(f->s, "already exists");
  assert_int_equal(wr_store_zone_create(f->s, "test", f->acct.id, "bad zone", &z), WR_ERR_INVAL);
  assert_int_equal(wr_store_zone_create(f->s, "test", f->acct.id, "*.wild.test", &z), WR_ERR_INVAL);
  assert_int_equal(wr_store_zone_create(f->s, "test", "0123456789abcdef0123456789abcdef", "x.test", &z),
                   WR_ERR_NOTFOUND);
  assert_int_equal(audit_count(f->s), before); /* failures leave no audit rows */

  assert_int_equal(wr_store_zone_create(f->s, "test", f->acct.id, "second.test", &z), WR_OK);
  unit_assert_last_audit(f->s, "test", "zone.create", z.id);
  assert_int_equal(wr_store_zone_list(f->s, f->acct.id, &zones, &n), WR_OK);
  assert_int_equal(n, 2);
  assert_string_equal(zones[0].name, "example.test");
  assert_string_equal(zones[1].name, "second.test");
  free(zones);

  assert_int_equal(wr_store_account_create(f->s, "test", "other", &b), WR_OK);
  unit_assert_last_audit(f->s, "test", "account.create", b.id);
  assert_int_equal(wr_store_account_default(f->s, &a), WR_ERR_INVAL);
  assert_err_contains(f->s, "several accounts");
}

static void test_users_and_tokens(void **state) {
  fixture *f = *state;
  wr_user u, u2;
  wr_api_token k, v;
  char token[WR_STORE_TOKEN_LEN + 1], token2[WR_STORE_TOKEN_LEN + 1];

  assert_int_equal(wr_store_user_create(f->s, "test", f->acct.id, "no-at-sign", NULL, 0, &u), WR_ERR_INVAL);
  assert_int_equal(wr_store_user_create(f->s, "test", f->acct.id, "a@bad domain", NULL, 0, &u), WR_ERR_INVAL);
  assert_int_equal(wr_store_user_create(f->s, "test", f->acct.id, "admin@example.test", NULL, 0, &u), WR_OK);
  unit_assert_last_audit(f->s, "test", "user.create", u.id);
  assert_false(u.has_password);
  assert_int_equal(wr_store_user_create(f->s, "test", f->acct.id, "ADMIN@example.test", NULL, 0, &u2),
                   WR_ERR_EXISTS);
  assert_int_equal(wr_store_user_get_by_email(f->s, "Admin@Example.Test", &u2), WR_OK);
  assert_string_equal(u2.id, u.id);

  assert_int_equal(wr_store_token_create(f->s, "test", u.id, f->zone.id, token, &k), WR_OK);
  unit_assert_last_audit(f->s, "test", "token.create", k.id);
  assert_int_equal(strlen(token), WR_STORE_TOKEN_LEN);
  assert_int_equal(strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                   WR_STORE_TOKEN_LEN);
  assert_int_equal(wr_store_token_create(f->s, "test", u.id, NULL, token2, NULL), WR_OK);
  assert_string_not_equal(token, token2);

  assert_int_equal(wr_store_token_verify(f->s, token, &v), WR_OK);
  assert_string_equal(v.id, k.id);
  assert_string_equal(v.user_id, u.id);
  assert_string_equal(v.account_id, f->acct.id);
  assert_string_equal(v.zone_id, f->zone.id);
  assert_int_equal(wr_store_token_verify(f->s, token2, &v), WR_OK);
  assert_string_equal(v.zone_id, "");
  token2[0] ^= 1;
  assert_int_equal(wr_store_token_verify(f->s, token2, &v), WR_ERR_DENIED);
  assert_int_equal(wr_store_token_verify(f->s, "", &v), WR_ERR_DENIED);

  assert_int_equal(wr_store_token_revoke(f->s, "test", k.id), WR_OK);
  unit_assert_last_audit(f->s, "test", "token.revoke", k.id);
  assert_int_equal(wr_store_token_verify(f->s, token, &v), WR_ERR_DENIED);
  assert_int_equal(wr_store_token_revoke(f->s, "test", k.id), WR_ERR_INVAL);

  /* Only the hash is stored: the token text appears nowhere in the files. */
  wr_store_close(f->s);
  f->s = NULL;
  static const char *const files[] = {"warren.db", "warren.db-wal"};
  for (size_t i = 0; i < 2; i++) {
    char p[160], *data = NULL;
    size_t len = 0;
    snprintf(p, sizeof(p), "%s/%s", f->dir, files[i]);
    if (wr_file_read(p, 64 << 20, &data, &len) != WR_OK) continue;
    assert_null(memmem(data, len, token, WR_STORE_TOKEN_LEN));
    free(data);
  }
  char err[256];
  assert_int_equal(wr_store_open(f->path, 0, &f->s, err, sizeof(err)), WR_OK);
}

/* --- tunnels ---------------------------------------------------------------------- */

static void test_tunnel_create_get_list_delete(void **state) {
  fixture *f = *state;
  wr_tunnel t, t2, got, *list;
  size_t n, removed = 99;
  char upper[WR_STORE_UUID_LEN + 1];
  int64_t now = 1700000000;
  wr_store_set_clock(f->s, unit_fixed_clock, &now);

  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "web", NULL, 0, &t), WR_OK);
  unit_assert_last_audit(f->s, "test", "tunnel.create", t.id);
  assert_int_equal(strlen(t.id), 36);
  assert_int_equal(t.secret_len, 32);
  assert_int_equal(t.created_at, now);
  assert_int_equal(t.deleted_at, 0);
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "api", NULL, 0, &t2), WR_OK);
  assert_int_equal(t2.secret_len, 32);
  assert_memory_not_equal(t.secret, t2.secret, 32);

  /* Lookups: by ID in any case, by name, and resolve for either. */
  for (size_t i = 0; i <= WR_STORE_UUID_LEN; i++) upper[i] = (char)(t.id[i] >= 'a' && t.id[i] <= 'f' ? t.id[i] - 32 : t.id[i]);
  assert_int_equal(wr_store_tunnel_get(f->s, upper, &got), WR_OK);
  assert_string_equal(got.id, t.id);
  assert_string_equal(got.name, "web");
  assert_int_equal(got.secret_len, 32);
  assert_memory_equal(got.secret, t.secret, 32);
  assert_int_equal(wr_store_tunnel_find(f->s, f->acct.id, "web", &got), WR_OK);
  assert_string_equal(got.id, t.id);
  assert_int_equal(wr_store_tunnel_resolve(f->s, f->acct.id, t.id, &got), WR_OK);
  assert_int_equal(wr_store_tunnel_resolve(f->s, f->acct.id, "api", &got), WR_OK);
  assert_string_equal(got.id, t2.id);
  assert_int_equal(wr_store_tunnel_resolve(f->s, f->acct.id, "nope", &got), WR_ERR_NOTFOUND);
  assert_err_contains(f->s, "nope");
  assert_int_equal(wr_store_tunnel_get(f->s, "not-a-uuid", &got), WR_ERR_INVAL);
  assert_int_equal(wr_store_tunnel_get(f->s, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", &got), WR_ERR_NOTFOUND);

  /* Duplicates and bad names fail without an audit row. */
  size_t before = audit_count(f->s);
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "web", NULL, 0, &got), WR_ERR_EXISTS);
  assert_err_contains(f->s, t.id);
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "a/b", NULL, 0, &got), WR_ERR_INVAL);
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "", NULL, 0, &got), WR_ERR_INVAL);
  uint8_t short_secret[16] = {0};
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "s", short_secret, 16, &got), WR_ERR_INVAL);
  assert_int_equal(wr_store_tunnel_create(f->s, "test", "0123456789abcdef0123456789abcdef", "x", NULL, 0, &got),
                   WR_ERR_NOTFOUND);
  assert_int_equal(audit_count(f->s), before);

  /* A client-chosen secret (the API's create) is stored as given. */
  uint8_t secret[40];
  for (size_t i = 0; i < sizeof(secret); i++) secret[i] = (uint8_t)i;
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "given", secret, sizeof(secret), &got),
                   WR_OK);
  assert_int_equal(wr_store_tunnel_get(f->s, got.id, &got), WR_OK);
  assert_int_equal(got.secret_len, 40);
  assert_memory_equal(got.secret, secret, 40);

  wr_tunnel_filter flt = {.account_id = f->acct.id};
  assert_int_equal(wr_store_tunnel_list(f->s, &flt, &list, &n), WR_OK);
  assert_int_equal(n, 3);
  assert_string_equal(list[0].name, "web");
  free(list);
  flt.name = "api";
  assert_int_equal(wr_store_tunnel_list(f->s, &flt, &list, &n), WR_OK);
  assert_int_equal(n, 1);
  assert_string_equal(list[0].id, t2.id);
  free(list);
  flt.name = NULL;
  flt.limit = 1;
  flt.offset = 1;
  assert_int_equal(wr_store_tunnel_list(f->s, &flt, &list, &n), WR_OK);
  assert_int_equal(n, 1);
  assert_string_equal(list[0].name, "api");
  free(list);

  /* Soft delete: gone from lists and names, still readable by ID. */
  now += 60;
  assert_int_equal(wr_store_tunnel_delete(f->s, "test", t.id, &removed), WR_OK);
  unit_assert_last_audit(f->s, "test", "tunnel.delete", t.id);
  assert_int_equal(removed, 0);
  assert_int_equal(wr_store_tunnel_get(f->s, t.id, &got), WR_OK);
  assert_int_equal(got.deleted_at, now);
  assert_int_equal(wr_store_tunnel_find(f->s, f->acct.id, "web", &got), WR_ERR_NOTFOUND);
  assert_int_equal(wr_store_tunnel_resolve(f->s, f->acct.id, t.id, &got), WR_ERR_NOTFOUND);
  assert_err_contains(f->s, "deleted");
  assert_int_equal(wr_store_tunnel_delete(f->s, "test", t.id, NULL), WR_ERR_INVAL);
  assert_err_contains(f->s, "already deleted");
  flt = (wr_tunnel_filter){.account_id = f->acct.id};
  assert_int_equal(wr_store_tunnel_list(f->s, &flt, &list, &n), WR_OK);
  assert_int_equal(n, 2);
  free(list);
  flt.include_deleted = 1;
  assert_int_equal(wr_store_tunnel_list(f->s, &flt, &list, &n), WR_OK);
  assert_int_equal(n, 3);
  free(list);
  /* The name is free again once its tunnel is deleted. */
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "web", NULL, 0, &got), WR_OK);
  assert_string_not_equal(got.id, t.id);
}

static void test_connections(void **state) {
  fixture *f = *state;
  wr_tunnel t, got;
  wr_conn_rec c = {0}, *list;
  size_t n, closed;
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "web", NULL, 0, &t), WR_OK);
  size_t before = audit_count(f->s);
  unit_conn_rec(&c, "11111111-1111-4111-8111-111111111111", t.id,
                "22222222-2222-4222-8222-222222222222", 0, "local");
  assert_int_equal(wr_store_conn_open(f->s, &c), WR_OK);
  assert_int_equal(wr_store_conn_open(f->s, &c), WR_ERR_EXISTS);
  c.id[0] = '3';
  c.conn_index = 1;
  assert_int_equal(wr_store_conn_open(f->s, &c), WR_OK);
  assert_int_equal(wr_store_tunnel_get(f->s, t.id, &got), WR_OK);
  assert_int_equal(got.active_conns, 2);
  assert_int_equal(wr_store_conn_close(f->s, c.id), WR_OK);
  assert_int_equal(wr_store_conn_close(f->s, c.id), WR_ERR_NOTFOUND);
  assert_int_equal(wr_store_conn_list(f->s, t.id, 1, &list, &n), WR_OK);
  assert_int_equal(n, 1);
  assert_string_equal(list[0].client_version, "2023.7.3");
  assert_string_equal(list[0].features, "[\"serialized_headers\"]");
  free(list);
  assert_int_equal(wr_store_conn_list(f->s, t.id, 0, &list, &n), WR_OK);
  assert_int_equal(n, 2);
  free(list);
  assert_int_equal(wr_store_conn_close_all(f->s, &closed), WR_OK);
  assert_int_equal(closed, 1);
  assert_int_equal(wr_store_tunnel_get(f->s, t.id, &got), WR_OK);
  assert_int_equal(got.active_conns, 0);
  /* Bad rows are refused. */
  snprintf(c.features, sizeof(c.features), "not json");
  c.id[0] = '4';
  assert_int_equal(wr_store_conn_open(f->s, &c), WR_ERR_INVAL);
  snprintf(c.tunnel_id, sizeof(c.tunnel_id), "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
  assert_int_equal(wr_store_conn_open(f->s, &c), WR_ERR_NOTFOUND);
  /* Connection events are operational history, not audited changes. */
  assert_int_equal(audit_count(f->s), before);
}

/* --- edges sharing the store (schema 6) ------------------------------------------- */

static void conn_on_edge(fixture *f, const char *tunnel, const char *id, const char *edge) {
  wr_conn_rec c = {0};
  snprintf(c.id, sizeof(c.id), "%s", id);
  snprintf(c.tunnel_id, sizeof(c.tunnel_id), "%s", tunnel);
  snprintf(c.client_id, sizeof(c.client_id), "22222222-2222-4222-8222-222222222222");
  snprintf(c.edge_id, sizeof(c.edge_id), "%s", edge);
  assert_int_equal(wr_store_conn_open(f->s, &c), WR_OK);
}

static void test_edges(void **state) {
  fixture *f = *state;
  int64_t now = 1000000;
  wr_store_set_clock(f->s, unit_fixed_clock, &now);
  wr_tunnel t;
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "web", NULL, 0, &t), WR_OK);
  wr_edge_rec a = {.id = "aaaaaaaa-0000-4000-8000-000000000001", .peer_addr = "127.0.0.1:1001"};
  wr_edge_rec b = {.id = "bbbbbbbb-0000-4000-8000-000000000002", .peer_addr = "127.0.0.1:1002"};
  char(*closed)[WR_STORE_UUID_LEN + 1];
  size_t nclosed, n, expired;
  assert_int_equal(wr_store_edge_beat(f->s, &a, NULL, 0, &closed, &nclosed), WR_OK);
  assert_int_equal(wr_store_edge_beat(f->s, &b, NULL, 0, &closed, &nclosed), WR_OK);
  wr_edge_rec *edges;
  assert_int_equal(wr_store_edge_list(f->s, &edges, &n), WR_OK);
  assert_int_equal(n, 2);
  assert_string_equal(edges[1].peer_addr, "127.0.0.1:1002");
  free(edges);
  const char live_b[1][WR_STORE_UUID_LEN + 1] = {"b0000000-0000-4000-8000-000000000001"};
  conn_on_edge(f, t.id, "a0000000-0000-4000-8000-000000000001", a.id);
  conn_on_edge(f, t.id, live_b[0], b.id);
  /* Seen from A: the tunnel is also on B; from B, on A. */
  wr_edge_route *routes;
  assert_int_equal(wr_store_edge_routes(f->s, a.id, now - 10, &routes, &n), WR_OK);
  assert_int_equal(n, 1);
  assert_string_equal(routes[0].tunnel_id, t.id);
  assert_string_equal(routes[0].edge_id, b.id);
  assert_string_equal(routes[0].peer_addr, "127.0.0.1:1002");
  free(routes);
  /* B's connection closed by someone else (cleanup): its beat says so. */
  assert_int_equal(wr_store_conn_close(f->s, live_b[0]), WR_OK);
  assert_int_equal(wr_store_edge_beat(f->s, &b, live_b, 1, &closed, &nclosed), WR_OK);
  assert_int_equal(nclosed, 1);
  assert_string_equal(closed[0], live_b[0]);
  free(closed);
  /* B stops beating: it expires, with its connections; A does not. */
  now += 30;
  assert_int_equal(wr_store_edge_beat(f->s, &a, NULL, 0, &closed, &nclosed), WR_OK);
  conn_on_edge(f, t.id, "b0000000-0000-4000-8000-000000000002", b.id);
  assert_int_equal(wr_store_edge_expire(f->s, now - 15, &expired), WR_OK);
  assert_int_equal(expired, 1);
  assert_int_equal(wr_store_edge_routes(f->s, a.id, 0, &routes, &n), WR_OK);
  assert_int_equal(n, 0);
  free(routes);
  /* B comes back (its row was gone): its live connection is its own again. */
  const char live_b2[1][WR_STORE_UUID_LEN + 1] = {"b0000000-0000-4000-8000-000000000002"};
  assert_int_equal(wr_store_edge_beat(f->s, &b, live_b2, 1, &closed, &nclosed), WR_OK);
  assert_int_equal(nclosed, 0);
  assert_int_equal(wr_store_edge_routes(f->s, a.id, now - 10, &routes, &n), WR_OK);
  assert_int_equal(n, 1);
  free(routes);
  /* A clean stop removes the row and closes the edge's connections. */
  assert_int_equal(wr_store_edge_remove(f->s, b.id), WR_OK);
  assert_int_equal(wr_store_edge_routes(f->s, a.id, 0, &routes, &n), WR_OK);
  assert_int_equal(n, 0);
  free(routes);
  assert_int_equal(wr_store_edge_list(f->s, &edges, &n), WR_OK);
  assert_int_equal(n, 1);
  free(edges);
  wr_store_set_clock(f->s, NULL, NULL);
}

/* A connection of connector |client| (index |idx|) on edge |edge|, opened
 * under |lim|: the result of wr_store_conn_open_limited. */
static int limited_conn(fixture *f, const char *tunnel, unsigned n, const char *client,
                        unsigned idx, const char *edge, wr_conn_limits *lim) {
  wr_conn_rec c = {0};
  snprintf(c.id, sizeof(c.id), "c0000000-0000-4000-8000-%012u", n);
  snprintf(c.tunnel_id, sizeof(c.tunnel_id), "%s", tunnel);
  snprintf(c.client_id, sizeof(c.client_id), "%s", client);
  snprintf(c.edge_id, sizeof(c.edge_id), "%s", edge);
  c.conn_index = idx;
  return wr_store_conn_open_limited(f->s, &c, lim);
}

/* The per-tunnel limits count every beating edge's open connections. */
static void test_conn_limits_across_edges(void **state) {
  fixture *f = *state;
  int64_t now = 1000000;
  wr_store_set_clock(f->s, unit_fixed_clock, &now);
  wr_tunnel t, other;
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "web", NULL, 0, &t), WR_OK);
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "api", NULL, 0, &other), WR_OK);
  wr_edge_rec a = {.id = "aaaaaaaa-0000-4000-8000-000000000001", .peer_addr = "127.0.0.1:1001"};
  wr_edge_rec b = {.id = "bbbbbbbb-0000-4000-8000-000000000002", .peer_addr = "127.0.0.1:1002"};
  char(*closed)[WR_STORE_UUID_LEN + 1];
  size_t nclosed, expired;
  assert_int_equal(wr_store_edge_beat(f->s, &a, NULL, 0, &closed, &nclosed), WR_OK);
  assert_int_equal(wr_store_edge_beat(f->s, &b, NULL, 0, &closed, &nclosed), WR_OK);
  const char *x = "11111111-0000-4000-8000-000000000001";
  const char *y = "22222222-0000-4000-8000-000000000002";
  wr_conn_limits lim = {.max_connectors = 1, .max_per_connector = 2, .fresh_since = now - 10};
  /* X takes index 0 through A and index 1 through B: B counts A's. */
  assert_int_equal(limited_conn(f, t.id, 1, x, 0, a.id, &lim), WR_OK);
  assert_int_equal(lim.connectors, 0);
  assert_int_equal(limited_conn(f, t.id, 2, x, 1, b.id, &lim), WR_OK);
  assert_int_equal(lim.connectors, 1);
  assert_int_equal(lim.mine, 1);
  /* A third index of X is over its limit, through either edge; nothing is
   * recorded. */
  assert_int_equal(limited_conn(f, t.id, 3, x, 2, a.id, &lim), WR_ERR_LIMIT);
  assert_int_equal(lim.mine, 2);
  assert_err_contains(f->s, "already has 2 connections");
  /* X again on index 1 (it reconnects through A before B noticed): the
   * connection it replaces does not count. */
  assert_int_equal(limited_conn(f, t.id, 4, x, 1, a.id, &lim), WR_OK);
  assert_int_equal(lim.mine, 1);
  assert_int_equal(wr_store_conn_close(f->s, "c0000000-0000-4000-8000-000000000002"), WR_OK);
  /* Another connector Y is one too many for the tunnel, seen from B, but
   * not for another tunnel. */
  assert_int_equal(limited_conn(f, t.id, 5, y, 0, b.id, &lim), WR_ERR_LIMIT);
  assert_int_equal(lim.connectors, 1);
  assert_int_equal(lim.mine, 0);
  assert_err_contains(f->s, "already has 1 connectors");
  assert_int_equal(limited_conn(f, other.id, 6, y, 0, b.id, &lim), WR_OK);
  wr_conn_rec *list;
  size_t n;
  assert_int_equal(wr_store_conn_list(f->s, t.id, 1, &list, &n), WR_OK);
  assert_int_equal(n, 2);
  free(list);
  /* A stops beating: its connections no longer count for B, even before
   * they expire; then they expire. */
  now += 30;
  lim.fresh_since = now - 10;
  assert_int_equal(wr_store_edge_beat(f->s, &b, NULL, 0, &closed, &nclosed), WR_OK);
  assert_int_equal(limited_conn(f, t.id, 7, y, 0, b.id, &lim), WR_OK);
  assert_int_equal(lim.connectors, 0);
  assert_int_equal(wr_store_edge_expire(f->s, now - 15, &expired), WR_OK);
  assert_int_equal(expired, 1);
  /* A limit of 0 is none. */
  wr_conn_limits none = {.fresh_since = now - 10};
  assert_int_equal(limited_conn(f, t.id, 8, x, 0, b.id, &none), WR_OK);
  assert_int_equal(none.connectors, 1);
  wr_store_set_clock(f->s, NULL, NULL);
}

/* One edge of test_conn_limits_racing: its own store handle, beating, and
 * in each round registering a new connector of that round's tunnel at the
 * same moment as the other edges. */
enum { RACE_EDGES = 4, RACE_ROUNDS = 8 };

typedef struct racer {
  const char *path;
  const char (*tunnels)[WR_STORE_UUID_LEN + 1];
  unsigned edge;
  pthread_barrier_t *go;
  int ok[RACE_ROUNDS], other;
  char err[WR_STORE_ERRMSG_MAX];
} racer;


static int race_one(wr_store *s, const racer *r, const char *edge_id, unsigned round) {
  wr_conn_rec c = {.conn_index = 0};
  snprintf(c.id, sizeof(c.id), "d0000000-0000-4000-8000-%06u%06u", r->edge, round);
  snprintf(c.client_id, sizeof(c.client_id), "c1000000-0000-4000-8000-%06u%06u", r->edge, round);
  snprintf(c.tunnel_id, sizeof(c.tunnel_id), "%s", r->tunnels[round]);
  snprintf(c.edge_id, sizeof(c.edge_id), "%s", edge_id);
  wr_conn_limits lim = {.max_connectors = 1, .max_per_connector = 4,
                        .fresh_since = (int64_t)time(NULL) - 60};
  return wr_store_conn_open_limited(s, &c, &lim);
}

static void *race_thread(void *arg) {
  racer *r = arg;
  wr_store *s = NULL;
  char e[256];
  wr_edge_rec me = {0};
  snprintf(me.id, sizeof(me.id), "eeeeeeee-0000-4000-8000-%012u", r->edge);
  int rv = wr_store_open(r->path, 0, &s, e, sizeof(e));
  char(*closed)[WR_STORE_UUID_LEN + 1] = NULL;
  size_t nclosed = 0;
  if (rv == WR_OK) rv = wr_store_edge_beat(s, &me, NULL, 0, &closed, &nclosed);
  else snprintf(r->err, sizeof(r->err), "%s", e);
  if (rv != WR_OK && s) snprintf(r->err, sizeof(r->err), "%s", wr_store_errmsg(s));
  for (unsigned i = 0; i < RACE_ROUNDS; i++) {
    pthread_barrier_wait(r->go); /* every round, so no edge waits for one that failed */
    if (rv != WR_OK) continue;
    int got = race_one(s, r, me.id, i);
    r->ok[i] = got == WR_OK;
    if (got != WR_OK && got != WR_ERR_LIMIT) {
      rv = got;
      snprintf(r->err, sizeof(r->err), "%s", wr_store_errmsg(s));
    }
  }
  r->other = rv != WR_OK;
  wr_store_close(s);
  return NULL;
}

/* Edges registering new connectors of one tunnel at the same moment, each
 * on its own connection to the store, with a limit of one connector: the
 * count and the insert are one step, so exactly one gets in each time. */
static void test_conn_limits_racing(void **state) {
  fixture *f = *state;
  char tunnels[RACE_ROUNDS][WR_STORE_UUID_LEN + 1];
  for (unsigned i = 0; i < RACE_ROUNDS; i++) {
    wr_tunnel t;
    char name[16];
    snprintf(name, sizeof(name), "race-%u", i);
    assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, name, NULL, 0, &t), WR_OK);
    memcpy(tunnels[i], t.id, sizeof(tunnels[i]));
  }
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, RACE_EDGES);
  racer r[RACE_EDGES];
  pthread_t th[RACE_EDGES];
  for (unsigned i = 0; i < RACE_EDGES; i++) {
    r[i] = (racer){.path = f->path, .tunnels = (const char(*)[WR_STORE_UUID_LEN + 1])tunnels,
                   .edge = i + 1, .go = &go};
    assert_int_equal(pthread_create(&th[i], NULL, race_thread, &r[i]), 0);
  }
  for (unsigned i = 0; i < RACE_EDGES; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
  pthread_barrier_destroy(&go);
  for (unsigned i = 0; i < RACE_EDGES; i++)
    if (r[i].other) fail_msg("edge %u: %s", r[i].edge, r[i].err);
  for (unsigned k = 0; k < RACE_ROUNDS; k++) {
    int ok = 0;
    for (unsigned i = 0; i < RACE_EDGES; i++) ok += r[i].ok[k];
    if (ok != 1) fail_msg("round %u: %d connectors got in, the limit is 1", k, ok);
    wr_conn_rec *list;
    size_t n;
    assert_int_equal(wr_store_conn_list(f->s, tunnels[k], 1, &list, &n), WR_OK);
    assert_int_equal(n, 1);
    free(list);
  }
}

/* --- routes ------------------------------------------------------------------------- */

static void test_routes(void **state) {
  fixture *f = *state;
  wr_tunnel a, b;
  wr_route r, *list;
  wr_route_change ch = (wr_route_change)-1;
  size_t n, removed = 0;
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "a", NULL, 0, &a), WR_OK);
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "b", NULL, 0, &b), WR_OK);
  size_t before = audit_count(f->s);

  /* Refused: the apex, names outside the zone, ports, URLs. No audit rows. */
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, a.id, "example.test", 0, &r, &ch), WR_ERR_INVAL);
  assert_err_contains(f->s, "zone apex");
  assert_int_equal(wr_store_route_dns_add(f->s, "test", f->zone.id, a.id, "Example.Test.", 0, &r, &ch),
                   WR_ERR_INVAL);
  assert_err_contains(f->s, "zone apex");
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, a.id, "app.example.org", 0, &r, &ch), WR_ERR_INVAL);
  assert_err_contains(f->s, "not inside zone example.test");
  assert_int_equal(wr_store_route_dns_add(f->s, "test", f->zone.id, a.id, "notexample.test", 0, &r, &ch),
                   WR_ERR_INVAL);
  assert_err_contains(f->s, "not inside zone example.test");
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, a.id, "app.example.test:443", 0, &r, &ch),
                   WR_ERR_INVAL);
  assert_err_contains(f->s, "port");
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, a.id, "https://app.example.test", 0, &r, &ch),
                   WR_ERR_INVAL);
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                                          "app.example.test", 0, &r, &ch),
                   WR_ERR_NOTFOUND);
  assert_int_equal(audit_count(f->s), before);

  /* New, canonicalised. */
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, a.id, "App.Example.Test.", 0, &r, &ch), WR_OK);
  assert_int_equal(ch, WR_ROUTE_NEW);
  assert_string_equal(wr_route_change_name(ch), "new");
  assert_string_equal(r.hostname, "app.example.test");
  assert_string_equal(r.tunnel_id, a.id);
  assert_string_equal(r.tunnel_name, "a");
  assert_string_equal(r.zone_id, f->zone.id);
  assert_string_equal(r.zone_name, "example.test");
  unit_assert_last_audit(f->s, "test", "route.create", "app.example.test");
  assert_int_equal(audit_count(f->s), before + 1);

  /* Same tunnel again: unchanged, nothing audited. */
  assert_int_equal(wr_store_route_dns_add(f->s, "test", f->zone.id, a.id, "app.example.test", 0, &r, &ch), WR_OK);
  assert_int_equal(ch, WR_ROUTE_UNCHANGED);
  assert_int_equal(audit_count(f->s), before + 1);

  /* Another tunnel: refused unless overwriting. */
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, b.id, "app.example.test", 0, &r, &ch), WR_ERR_EXISTS);
  assert_err_contains(f->s, "already routed to tunnel a");
  assert_int_equal(wr_store_route_get(f->s, "app.example.test", &r), WR_OK);
  assert_string_equal(r.tunnel_id, a.id);
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, b.id, "app.example.test", 1, &r, &ch), WR_OK);
  assert_int_equal(ch, WR_ROUTE_UPDATED);
  assert_string_equal(r.tunnel_id, b.id);
  unit_assert_last_audit(f->s, "test", "route.update", "app.example.test");

  /* Wildcards are names inside the zone too. */
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, a.id, "*.example.test", 0, &r, &ch), WR_OK);
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, a.id, "deep.sub.example.test", 0, &r, &ch), WR_OK);
  assert_int_equal(wr_store_route_list(f->s, f->acct.id, NULL, &list, &n), WR_OK);
  assert_int_equal(n, 3);
  assert_string_equal(list[0].hostname, "*.example.test");
  free(list);
  assert_int_equal(wr_store_route_list(f->s, NULL, a.id, &list, &n), WR_OK);
  assert_int_equal(n, 2);
  free(list);

  /* Deleting a tunnel removes its routes, and the audit row names them. */
  assert_int_equal(wr_store_tunnel_delete(f->s, "test", a.id, &removed), WR_OK);
  assert_int_equal(removed, 2);
  wr_audit *rows;
  assert_int_equal(wr_store_audit_list(f->s, f->acct.id, 1, &rows, &n), WR_OK);
  assert_string_equal(rows[0].action, "tunnel.delete");
  assert_non_null(strstr(rows[0].detail, "deep.sub.example.test"));
  assert_non_null(strstr(rows[0].detail, "*.example.test"));
  wr_store_audit_free(rows, n);
  assert_int_equal(wr_store_route_get(f->s, "*.example.test", &r), WR_ERR_NOTFOUND);
  assert_int_equal(wr_store_route_list(f->s, f->acct.id, NULL, &list, &n), WR_OK);
  assert_int_equal(n, 1);
  assert_string_equal(list[0].tunnel_id, b.id);
  free(list);
  /* A deleted tunnel takes no new routes. */
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, a.id, "x.example.test", 0, &r, &ch), WR_ERR_INVAL);
  assert_err_contains(f->s, "deleted");

  assert_int_equal(wr_store_route_delete(f->s, "test", "APP.example.test"), WR_OK);
  unit_assert_last_audit(f->s, "test", "route.delete", "app.example.test");
  assert_int_equal(wr_store_route_delete(f->s, "test", "app.example.test"), WR_ERR_NOTFOUND);
}

/* With several zones, the most specific one wins, and another account's
 * zone is not ours to route in. */
static void test_routes_multi_zone(void **state) {
  fixture *f = *state;
  wr_account other;
  wr_zone sub, foreign;
  wr_tunnel t;
  wr_route r;
  wr_route_change ch;
  assert_int_equal(wr_store_zone_create(f->s, "test", f->acct.id, "sub.example.test", &sub), WR_OK);
  assert_int_equal(wr_store_account_create(f->s, "test", "other", &other), WR_OK);
  assert_int_equal(wr_store_zone_create(f->s, "test", other.id, "foreign.test", &foreign), WR_OK);
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "t", NULL, 0, &t), WR_OK);
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, t.id, "a.sub.example.test", 0, &r, &ch), WR_OK);
  assert_string_equal(r.zone_id, sub.id);
  assert_int_equal(wr_store_route_dns_add(f->s, "test", f->zone.id, t.id, "b.sub.example.test", 0, &r, &ch),
                   WR_ERR_INVAL);
  assert_err_contains(f->s, "more specific zone sub.example.test");
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, t.id, "sub.example.test", 0, &r, &ch), WR_ERR_INVAL);
  assert_err_contains(f->s, "zone apex");
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, t.id, "x.foreign.test", 0, &r, &ch), WR_ERR_INVAL);
  assert_err_contains(f->s, "another account");
  assert_int_equal(wr_store_route_dns_add(f->s, "test", foreign.id, t.id, "x.foreign.test", 0, &r, &ch),
                   WR_ERR_INVAL);
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, t.id, "x.nowhere.test", 0, &r, &ch), WR_ERR_INVAL);
  assert_err_contains(f->s, "any zone of this account: example.test, sub.example.test");
}

/* --- audit ------------------------------------------------------------------------- */

static void test_audit(void **state) {
  fixture *f = *state;
  wr_audit *rows;
  size_t n;
  int64_t now = 1800000000;
  wr_store_set_clock(f->s, unit_fixed_clock, &now);
  /* setup() created the account and the zone: both were audited. */
  assert_int_equal(wr_store_audit_list(f->s, NULL, 0, &rows, &n), WR_OK);
  assert_int_equal(n, 2);
  assert_string_equal(rows[0].action, "zone.create");
  assert_string_equal(rows[0].target_type, "zone");
  assert_string_equal(rows[0].target_id, f->zone.id);
  assert_string_equal(rows[0].account_id, f->acct.id);
  assert_string_equal(rows[0].detail, "{\"name\":\"example.test\"}");
  assert_string_equal(rows[1].action, "account.create");
  assert_true(rows[0].id > rows[1].id);
  wr_store_audit_free(rows, n);

  assert_int_equal(wr_store_audit_append(f->s, "test", f->acct.id, "edge.init", "edge", "example.test",
                                         "{\"zone\":\"example.test\"}"),
                   WR_OK);
  assert_int_equal(wr_store_audit_list(f->s, f->acct.id, 1, &rows, &n), WR_OK);
  assert_int_equal(n, 1);
  assert_string_equal(rows[0].action, "edge.init");
  assert_int_equal(rows[0].at, now);
  wr_store_audit_free(rows, n);
  assert_int_equal(wr_store_audit_append(f->s, "test", NULL, "x", "edge", "y", "[1]"), WR_ERR_INVAL);
  assert_int_equal(wr_store_audit_append(f->s, "test", NULL, "x", "edge", "y", "{bad"), WR_ERR_INVAL);
  assert_int_equal(wr_store_audit_append(f->s, "", NULL, "x", "edge", "y", NULL), WR_ERR_INVAL);
  assert_int_equal(wr_store_audit_append(f->s, "ok", NULL, "edge.start", "edge", "-", NULL), WR_OK);
  /* Edge-wide rows are listed without an account filter only. */
  assert_int_equal(wr_store_audit_list(f->s, f->acct.id, 0, &rows, &n), WR_OK);
  assert_int_equal(n, 3);
  wr_store_audit_free(rows, n);
  assert_int_equal(audit_count(f->s), 4);
}

/* Two handles on one file, as the CLI next to a running edge. */
static void test_two_handles(void **state) {
  fixture *f = *state;
  wr_store *s2;
  wr_tunnel t, got;
  char err[256];
  assert_int_equal(wr_store_open(f->path, 0, &s2, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_store_tunnel_create(s2, "test", f->acct.id, "from-cli", NULL, 0, &t), WR_OK);
  assert_int_equal(wr_store_tunnel_get(f->s, t.id, &got), WR_OK);
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "from-cli", NULL, 0, &got), WR_ERR_EXISTS);
  wr_store_close(s2);
}

/* Per-account limits checked with the insert: tunnels (live ones only),
 * new DNS routes (re-pointing one is no new route), IP routes. */
static void test_account_limits(void **state) {
  fixture *f = *state;
  wr_tunnel a, b, c;
  wr_route r;
  wr_route_change ch;
  wr_ip_route ip;
  assert_int_equal(wr_store_tunnel_create_ex(f->s, "test", f->acct.id, "a", NULL, 0, 0, 2, &a), WR_OK);
  assert_int_equal(wr_store_tunnel_create_ex(f->s, "test", f->acct.id, "b", NULL, 0, 0, 2, &b), WR_OK);
  assert_int_equal(wr_store_tunnel_create_ex(f->s, "test", f->acct.id, "c", NULL, 0, 0, 2, &c),
                   WR_ERR_LIMIT);
  assert_err_contains(f->s, "already has 2 tunnels, the limit");
  size_t removed = 0;
  assert_int_equal(wr_store_tunnel_delete(f->s, "test", b.id, &removed), WR_OK);
  assert_int_equal(wr_store_tunnel_create_ex(f->s, "test", f->acct.id, "c", NULL, 0, 0, 2, &c), WR_OK);

  assert_int_equal(wr_store_route_dns_add_max(f->s, "test", NULL, a.id, "one.example.test", 0, 1, &r, &ch),
                   WR_OK);
  assert_int_equal(wr_store_route_dns_add_max(f->s, "test", NULL, a.id, "two.example.test", 0, 1, &r, &ch),
                   WR_ERR_LIMIT);
  assert_err_contains(f->s, "already has 1 hostname routes, the limit");
  assert_int_equal(wr_store_route_dns_add_max(f->s, "test", NULL, c.id, "one.example.test", 1, 1, &r, &ch),
                   WR_OK);
  assert_int_equal(ch, WR_ROUTE_UPDATED);
  assert_int_equal(wr_store_route_get(f->s, "two.example.test", &r), WR_ERR_NOTFOUND);

  assert_int_equal(wr_store_ip_route_add_max(f->s, "test", f->acct.id, "10.1.0.0/16", a.id, NULL, NULL, 1, &ip),
                   WR_OK);
  assert_int_equal(wr_store_ip_route_add_max(f->s, "test", f->acct.id, "10.2.0.0/16", a.id, NULL, NULL, 1, &ip),
                   WR_ERR_LIMIT);
  assert_err_contains(f->s, "already has 1 IP routes, the limit");
}

/* --- PostgreSQL only ------------------------------------------------------- */

/* Reopening applies nothing; a newer schema than this build knows is
 * refused, not downgraded (the version lives in warren_schema). */
static void test_pg_migrations(void **state) {
  fixture *f = *state;
  char err[256];
  size_t before = audit_count(f->s);
  wr_store_close(f->s);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(wr_store_open(f->path, 0, &f->s, err, sizeof(err)), WR_OK);
    assert_int_equal(wr_store_schema_version(f->s), WR_STORE_SCHEMA_VERSION);
    assert_int_equal(audit_count(f->s), before);
    wr_store_close(f->s);
  }
  assert_int_equal(unit_pg_exec(f->path, "UPDATE warren_schema SET version = 99"), 0);
  f->s = (wr_store *)1;
  assert_int_equal(wr_store_open(f->path, 0, &f->s, err, sizeof(err)), WR_ERR_UNSUPPORTED);
  assert_null(f->s);
  assert_non_null(strstr(err, "99"));
  char sql[64];
  snprintf(sql, sizeof(sql), "UPDATE warren_schema SET version = %d", WR_STORE_SCHEMA_VERSION);
  assert_int_equal(unit_pg_exec(f->path, sql), 0);
  assert_int_equal(wr_store_open(f->path, 0, &f->s, err, sizeof(err)), WR_OK);
}

typedef struct opener {
  const char *dsn;
  int rv;
  int version;
  char err[256];
} opener;

static void *open_thread(void *arg) {
  opener *o = arg;
  wr_store *s = NULL;
  o->rv = wr_store_open(o->dsn, WR_STORE_CREATE, &s, o->err, sizeof(o->err));
  if (o->rv == WR_OK) o->version = wr_store_schema_version(s);
  wr_store_close(s);
  return NULL;
}

/* Several edges starting together on one empty database: the schema lock
 * makes them migrate one after the other, so every one opens it. */
static void test_pg_concurrent_migrations(void **state) {
  (void)state;
  char dsn[256];
  enum { N = 4 };
  opener o[N];
  pthread_t th[N];
  assert_int_equal(unit_pg_new_db(dsn, sizeof(dsn)), 0);
  for (int i = 0; i < N; i++) {
    o[i] = (opener){.dsn = dsn, .rv = -1};
    assert_int_equal(pthread_create(&th[i], NULL, open_thread, &o[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    if (o[i].rv != WR_OK) fail_msg("opener %d: %s", i, o[i].err);
    assert_int_equal(o[i].version, WR_STORE_SCHEMA_VERSION);
  }
}

/* No server: an error that names the target without its password. */
static void test_pg_open_errors(void **state) {
  fixture *f = *state;
  char err[256];
  wr_store *s = (wr_store *)1;
  assert_int_equal(wr_store_open("host=/nonexistent port=5432 user=u password=hunter2 dbname=x",
                                 0, &s, err, sizeof(err)),
                   WR_ERR_STORE);
  assert_null(s);
  assert_non_null(strstr(err, "/nonexistent"));
  assert_null(strstr(err, "hunter2"));
  assert_int_equal(wr_store_open("postgresql://u:hunter2@127.0.0.1:1/x", 0, &s, err, sizeof(err)),
                   WR_ERR_STORE);
  assert_null(strstr(err, "hunter2"));
  /* A half-done migration leaves nothing: the first step fails on a table
   * that is in the way, and the schema stays at version 0. */
  char dsn[256];
  assert_int_equal(unit_pg_new_db(dsn, sizeof(dsn)), 0);
  assert_int_equal(unit_pg_exec(dsn, "CREATE TABLE routes (x integer)"), 0);
  assert_int_equal(wr_store_open(dsn, 0, &s, err, sizeof(err)), WR_ERR_STORE);
  assert_non_null(strstr(err, "migration to schema version 1"));
  /* Had the first tables of the step stayed, this open would fail on them. */
  assert_int_equal(unit_pg_exec(dsn, "DROP TABLE routes"), 0);
  assert_int_equal(wr_store_open(dsn, 0, &s, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_store_schema_version(s), WR_STORE_SCHEMA_VERSION);
  wr_store_close(s);
  (void)f;
}

/* The server drops the connection (a restart, a failover): the next call
 * fails as "unavailable", writes nothing, and the one after reconnects. */
static void test_pg_connection_lost(void **state) {
  fixture *f = *state;
  wr_tunnel t;
  size_t before = audit_count(f->s);
  assert_false(wr_store_unavailable(f->s));
  assert_int_equal(unit_pg_exec(f->path, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                         " WHERE datname = current_database()"
                                         " AND pid <> pg_backend_pid()"),
                   0);
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "lost", NULL, 0, &t),
                   WR_ERR_STORE);
  assert_true(wr_store_unavailable(f->s));
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "back", NULL, 0, &t), WR_OK);
  assert_false(wr_store_unavailable(f->s));
  assert_int_equal(wr_store_tunnel_get(f->s, t.id, &t), WR_OK);
  assert_string_equal(t.name, "back");
  assert_int_equal(audit_count(f->s), before + 1);
  /* An ordinary error is not "unavailable". */
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "back", NULL, 0, &t),
                   WR_ERR_EXISTS);
  assert_false(wr_store_unavailable(f->s));
}

/* A SQLite store copied into an empty PostgreSQL one reads the same, and
 * new rows after the copy get fresh ids. */
static void test_pg_copy_from_sqlite(void **state) {
  fixture *f = *state;
  char path[160], err[256], dsn[256];
  wr_store *src, *dst;
  wr_account a;
  wr_zone z;
  wr_tunnel t, got;
  size_t rows, n_src;
  snprintf(path, sizeof(path), "%s/src.db", f->dir);
  assert_int_equal(wr_store_open(path, WR_STORE_CREATE, &src, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_store_account_create(src, "test", "copied", &a), WR_OK);
  assert_int_equal(wr_store_zone_create(src, "test", a.id, "copied.test", &z), WR_OK);
  assert_int_equal(wr_store_tunnel_create(src, "test", a.id, "t1", NULL, 0, &t), WR_OK);
  n_src = audit_count(src);
  /* Not into a store that has accounts already. */
  assert_int_equal(wr_store_copy(src, f->s, &rows), WR_ERR_EXISTS);
  assert_int_equal(unit_pg_new_db(dsn, sizeof(dsn)), 0);
  assert_int_equal(wr_store_open(dsn, 0, &dst, err, sizeof(err)), WR_OK);
  if (wr_store_copy(src, dst, &rows) != WR_OK) fail_msg("copy: %s", wr_store_errmsg(dst));
  assert_int_equal(rows, 3 + n_src); /* account, zone, tunnel, audit rows */
  assert_int_equal(wr_store_tunnel_get(dst, t.id, &got), WR_OK);
  assert_string_equal(got.name, "t1");
  assert_int_equal(got.secret_len, t.secret_len);
  assert_memory_equal(got.secret, t.secret, t.secret_len);
  assert_int_equal(audit_count(dst), n_src);
  /* Serial ids continue after the copied ones. */
  assert_int_equal(wr_store_tunnel_create(dst, "test", a.id, "t2", NULL, 0, &got), WR_OK);
  unit_assert_last_audit(dst, "test", "tunnel.create", got.id);
  assert_int_equal(audit_count(dst), n_src + 1);
  wr_store_close(dst);
  wr_store_close(src);
}

int main(void) {
  /* Both backends run these, the PostgreSQL one on fresh databases. */
#define COMMON                                                                               \
  UNIT_TESTS(test_dns_names, test_tunnel_names),                                             \
      UNIT_FIXTURE(setup, teardown, test_accounts_and_zones, test_users_and_tokens,          \
                   test_tunnel_create_get_list_delete, test_connections, test_edges,         \
                   test_conn_limits_across_edges, test_conn_limits_racing, test_routes,      \
                   test_routes_multi_zone,                                                   \
                   test_audit, test_two_handles, test_account_limits)
  const unit_tests sqlite_tests[] = {
      UNIT_FIXTURE(setup, teardown, test_migrations_idempotent, test_open_errors), COMMON};
  const unit_tests pg_tests[] = {
      UNIT_FIXTURE(setup, teardown, test_pg_migrations),
      UNIT_TESTS(test_pg_concurrent_migrations),
      UNIT_FIXTURE(setup, teardown, test_pg_open_errors, test_pg_connection_lost,
                   test_pg_copy_from_sqlite),
      COMMON};
#undef COMMON
  return unit_run_store_backends("store", sqlite_tests, sizeof(sqlite_tests) / sizeof(unit_tests),
                                 pg_tests, sizeof(pg_tests) / sizeof(unit_tests));
}
