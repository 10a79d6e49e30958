/* Access objects in the store (src/edge/store_access.c): documents per
 * account, unique domains and client ids, policies under their app (and
 * deleted with it), the visitor's lookup by host and path prefix, service
 * token checks (hash, expiry), signing keys and their rotation; audit rows. */
#include "unit.h"

#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/store.h"
#include "edge/store_access.h"
#include "lib/err.h"

typedef struct fx {
  char dir[64];
  wr_store *s;
  wr_account a, b;
  int64_t now;
} fx;

static int64_t clock_fn(void *u) { return ((fx *)u)->now; }

static int setup(void **state) {
  fx *f = calloc(1, sizeof(*f));
  if (unit_store_new("wr-sacc", f->dir, sizeof(f->dir), NULL, 0, &f->s) != 0) return -1;
  if (wr_store_account_create(f->s, "t", "a", &f->a) != WR_OK || wr_store_account_create(f->s, "t", "b", &f->b) != WR_OK)
    return -1;
  f->now = 1700000000;
  wr_store_set_clock(f->s, clock_fn, f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  wr_store_close(f->s);
  unit_rm_rf(f->dir);
  free(f);
  return 0;
}

static json_t *app(fx *f, const char *acct, const char *domain, int want) {
  json_t *doc = json_pack("{s:s,s:s,s:s}", "name", domain, "domain", domain, "aud", "tag"), *out = NULL;
  assert_int_equal(wr_store_access_create(f->s, "t", acct, "app", NULL, domain, NULL, doc, &out), want);
  json_decref(doc);
  return out;
}

static void test_objects(void **state) {
  fx *f = *state;
  json_t *a1 = app(f, f->a.id, "app.example.test", WR_OK);
  const char *id = json_string_value(json_object_get(a1, "id"));
  assert_int_equal(strlen(id), 36);
  assert_int_equal(json_integer_value(json_object_get(a1, "created_at")), f->now);
  /* The domain is unique across the edge, whatever the account. */
  assert_null(app(f, f->b.id, "app.example.test", WR_ERR_EXISTS));
  json_t *a2 = app(f, f->a.id, "app.example.test/admin", WR_OK);
  /* Another account cannot see or delete it. */
  json_t *got = NULL;
  assert_int_equal(wr_store_access_get(f->s, f->b.id, "app", NULL, id, &got), WR_ERR_NOTFOUND);
  assert_int_equal(wr_store_access_delete(f->s, "t", f->b.id, "app", NULL, id), WR_ERR_NOTFOUND);
  /* A policy under the app; not under another account's. */
  json_t *pdoc = json_pack("{s:s,s:s,s:[{s:{}}]}", "name", "p", "decision", "allow", "include", "everyone"), *p = NULL;
  assert_int_equal(wr_store_access_create(f->s, "t", f->b.id, "policy", id, NULL, NULL, pdoc, &p), WR_ERR_NOTFOUND);
  assert_int_equal(wr_store_access_create(f->s, "t", f->a.id, "policy", id, NULL, NULL, pdoc, &p), WR_OK);
  json_decref(pdoc);
  json_t *list = NULL;
  assert_int_equal(wr_store_access_list(f->s, f->a.id, "policy", id, &list), WR_OK);
  assert_int_equal(json_array_size(list), 1);
  json_decref(list);
  /* The visitor's lookup finds both apps of the host, each with its policies. */
  json_t *look = NULL;
  assert_int_equal(wr_store_access_for_host(f->s, "app.example.test", &look), WR_OK);
  assert_int_equal(json_array_size(json_object_get(look, "apps")), 2);
  json_decref(look);
  assert_int_equal(wr_store_access_for_host(f->s, "app.example.tes", &look), WR_OK);
  assert_int_equal(json_array_size(json_object_get(look, "apps")), 0);
  json_decref(look);
  /* Update keeps the id and moves updated_at. */
  f->now += 10;
  json_t *upd = json_pack("{s:s,s:s}", "name", "renamed", "domain", "app.example.test"), *u = NULL;
  assert_int_equal(wr_store_access_update(f->s, "t", f->a.id, "app", NULL, id, NULL, upd, &u), WR_OK);
  json_decref(upd);
  assert_string_equal(json_string_value(json_object_get(u, "name")), "renamed");
  assert_int_equal(json_integer_value(json_object_get(u, "updated_at")), f->now);
  json_decref(u);
  /* Deleting the app deletes its policies. */
  assert_int_equal(wr_store_access_delete(f->s, "t", f->a.id, "app", NULL, id), WR_OK);
  assert_int_equal(wr_store_access_get(f->s, f->a.id, "policy", NULL, json_string_value(json_object_get(p, "id")), &got),
                   WR_ERR_NOTFOUND);
  /* Audited. */
  wr_audit *rows = NULL;
  size_t n = 0;
  assert_int_equal(wr_store_audit_list(f->s, f->a.id, 0, &rows, &n), WR_OK);
  int seen_create = 0, seen_delete = 0;
  for (size_t i = 0; i < n; i++) {
    seen_create |= !strcmp(rows[i].action, "access.app.create");
    seen_delete |= !strcmp(rows[i].action, "access.app.delete");
  }
  wr_store_audit_free(rows, n);
  assert_true(seen_create && seen_delete);
  json_decref(p);
  json_decref(a1);
  json_decref(a2);
}

static void test_tokens(void **state) {
  fx *f = *state;
  uint8_t h[32];
  char id[WR_STORE_UUID_LEN + 1], acct[WR_STORE_ID_LEN + 1];
  assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, "s3cret", 6, h), 0);
  json_t *doc = json_pack("{s:s,s:s,s:I}", "name", "ci", "client_id", "cid.access", "expires_at", (json_int_t)f->now + 100),
         *out = NULL;
  assert_int_equal(wr_store_access_create(f->s, "t", f->a.id, "service_token", NULL, "cid.access", h, doc, &out), WR_OK);
  json_decref(doc);
  assert_int_equal(wr_store_access_token_check(f->s, "cid.access", "s3cret", id, acct), WR_OK);
  assert_string_equal(id, json_string_value(json_object_get(out, "id")));
  assert_string_equal(acct, f->a.id);
  assert_int_equal(wr_store_access_token_check(f->s, "cid.access", "s3creT", id, acct), WR_ERR_DENIED);
  assert_int_equal(wr_store_access_token_check(f->s, "nope.access", "s3cret", id, acct), WR_ERR_DENIED);
  f->now += 100;
  assert_int_equal(wr_store_access_token_check(f->s, "cid.access", "s3cret", id, acct), WR_ERR_DENIED);
  json_decref(out);
}

static void test_keys(void **state) {
  fx *f = *state;
  json_t *keys = NULL;
  size_t n = 0;
  assert_int_equal(wr_store_access_key_add(f->s, "t", "k1", "pem1"), WR_OK);
  f->now += 5;
  assert_int_equal(wr_store_access_key_add(f->s, "t", "k2", "pem2"), WR_OK);
  assert_int_equal(wr_store_access_keys(f->s, &keys), WR_OK);
  assert_int_equal(json_array_size(keys), 2);
  /* Newest first; the old one is retired but still listed. */
  assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 0), "kid")), "k2");
  assert_int_equal(json_integer_value(json_object_get(json_array_get(keys, 0), "retired_at")), 0);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(keys, 1), "retired_at")), f->now);
  json_decref(keys);
  assert_int_equal(wr_store_access_keys_prune(f->s, f->now, &n), WR_OK);
  assert_int_equal(n, 0);
  assert_int_equal(wr_store_access_keys_prune(f->s, f->now + 1, &n), WR_OK);
  assert_int_equal(n, 1);
}

int main(void) {
  return UNIT_RUN(NULL, NULL, UNIT_FIXTURE(setup, teardown, test_objects, test_tokens, test_keys));
}
