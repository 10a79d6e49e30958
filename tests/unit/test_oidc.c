/* OpenID Connect relying-party codecs (src/proto/oidc.c): the pending-flow
 * table (state single use, browser binding, expiry, bounded size), PKCE S256
 * (RFC 7636 appendix B's vector), the authorize URL and token request,
 * nonce and email checks on id_token claims, discovery and token response
 * parsing. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/oidc.h"

static void test_state_single_use_and_binding(void **state) {
  (void)state;
  wr_oidc_states *st = wr_oidc_states_new(8, 1000);
  wr_oidc_flow a, b, got;
  assert_int_equal(wr_oidc_states_begin(st, 100, "{\"host\":\"a\"}", &a), WR_OK);
  assert_int_equal(wr_oidc_states_begin(st, 100, "ctx-b", &b), WR_OK);
  assert_int_equal(strlen(a.state), WR_OIDC_SECRET_LEN);
  /* Every secret is fresh. */
  assert_string_not_equal(a.state, b.state);
  assert_string_not_equal(a.nonce, b.nonce);
  assert_string_not_equal(a.verifier, b.verifier);
  assert_string_not_equal(a.state, a.nonce);
  assert_int_equal(wr_oidc_states_count(st), 2);
  /* The right state from another browser: refused, and the flow is gone. */
  assert_int_equal(wr_oidc_states_take(st, a.state, b.binding, 200, &got), WR_ERR_DENIED);
  free(got.ctx);
  assert_int_equal(wr_oidc_states_take(st, a.state, a.binding, 200, &got), WR_ERR_NOTFOUND);
  /* No binding at all: refused. */
  assert_int_equal(wr_oidc_states_take(st, b.state, NULL, 200, &got), WR_ERR_DENIED);
  free(got.ctx);
  assert_int_equal(wr_oidc_states_count(st), 0);
  /* The good case carries the context, nonce and verifier; then it is used. */
  assert_int_equal(wr_oidc_states_begin(st, 100, "{\"host\":\"a\"}", &a), WR_OK);
  /* Looking ahead at its context uses nothing up. */
  assert_string_equal(wr_oidc_states_ctx(st, a.state), "{\"host\":\"a\"}");
  assert_string_equal(wr_oidc_states_ctx(st, a.state), "{\"host\":\"a\"}");
  assert_null(wr_oidc_states_ctx(st, "nope"));
  assert_null(wr_oidc_states_ctx(st, NULL));
  assert_int_equal(wr_oidc_states_take(st, a.state, a.binding, 200, &got), WR_OK);
  assert_null(wr_oidc_states_ctx(st, a.state));
  assert_string_equal(got.ctx, "{\"host\":\"a\"}");
  assert_string_equal(got.nonce, a.nonce);
  assert_string_equal(got.verifier, a.verifier);
  free(got.ctx);
  assert_int_equal(wr_oidc_states_take(st, a.state, a.binding, 200, &got), WR_ERR_NOTFOUND);
  /* Unknown and malformed states. */
  assert_int_equal(wr_oidc_states_take(st, "nope", a.binding, 200, &got), WR_ERR_NOTFOUND);
  assert_int_equal(wr_oidc_states_take(st, NULL, a.binding, 200, &got), WR_ERR_NOTFOUND);
  wr_oidc_states_free(st);
}

static void test_state_expiry_and_bound(void **state) {
  (void)state;
  wr_oidc_states *st = wr_oidc_states_new(4, 1000);
  wr_oidc_flow f[6], got;
  assert_int_equal(wr_oidc_states_begin(st, 0, "x", &f[0]), WR_OK);
  /* Expired: refused even with the right binding. */
  assert_int_equal(wr_oidc_states_take(st, f[0].state, f[0].binding, 1001, &got), WR_ERR_DENIED);
  free(got.ctx);
  /* A full table drops the oldest flow. */
  for (int i = 0; i < 6; i++) assert_int_equal(wr_oidc_states_begin(st, (uint64_t)(10 + i), "x", &f[i]), WR_OK);
  assert_int_equal(wr_oidc_states_count(st), 4);
  assert_int_equal(wr_oidc_states_take(st, f[0].state, f[0].binding, 20, &got), WR_ERR_NOTFOUND);
  assert_int_equal(wr_oidc_states_take(st, f[1].state, f[1].binding, 20, &got), WR_ERR_NOTFOUND);
  assert_int_equal(wr_oidc_states_take(st, f[5].state, f[5].binding, 20, &got), WR_OK);
  free(got.ctx);
  /* Full again; expired flows are dropped before the oldest live one. */
  assert_int_equal(wr_oidc_states_begin(st, 16, "x", &f[5]), WR_OK);
  assert_int_equal(wr_oidc_states_count(st), 4);
  assert_int_equal(wr_oidc_states_begin(st, 1013, "x", &f[0]), WR_OK); /* f[2], started at 12, expired */
  assert_int_equal(wr_oidc_states_count(st), 4);
  assert_int_equal(wr_oidc_states_take(st, f[2].state, f[2].binding, 1012, &got), WR_ERR_NOTFOUND);
  assert_int_equal(wr_oidc_states_take(st, f[3].state, f[3].binding, 1012, &got), WR_OK);
  free(got.ctx);
  wr_oidc_states_free(st);
}

static void test_pkce_and_requests(void **state) {
  (void)state;
  char ch[WR_OIDC_SECRET_LEN + 1];
  /* RFC 7636 appendix B. */
  assert_int_equal(wr_oidc_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", ch), WR_OK);
  assert_string_equal(ch, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
  wr_oidc_flow f;
  wr_oidc_states *st = wr_oidc_states_new(2, 1000);
  assert_int_equal(wr_oidc_states_begin(st, 0, "", &f), WR_OK);
  assert_int_equal(wr_oidc_pkce_challenge(f.verifier, ch), WR_OK);
  assert_string_equal(ch, f.challenge);
  wr_oidc_states_free(st);

  char *u = wr_oidc_authorize_url("https://idp.test/auth?x=1", "cid", "http://team.test:8/cdn-cgi/access/callback",
                                  "email profile", "S", "N", "C");
  assert_string_equal(u, "https://idp.test/auth?x=1&response_type=code&client_id=cid&redirect_uri="
                         "http%3A%2F%2Fteam.test%3A8%2Fcdn-cgi%2Faccess%2Fcallback&scope=openid%20email%20profile"
                         "&state=S&nonce=N&code_challenge=C&code_challenge_method=S256");
  free(u);
  u = wr_oidc_authorize_url("https://idp.test/auth", "c", "r", "openid email", "S", "N", "C");
  assert_non_null(strstr(u, "/auth?response_type=code&"));
  assert_non_null(strstr(u, "&scope=openid%20email&"));
  free(u);
  u = wr_oidc_token_body("a b&c", "r", "cid", "s+e", "V");
  assert_string_equal(u, "grant_type=authorization_code&code=a%20b%26c&redirect_uri=r&client_id=cid&client_secret=s%2Be"
                         "&code_verifier=V");
  free(u);
}

static void test_claims(void **state) {
  (void)state;
  char email[64], err[160];
  json_t *c = json_pack("{s:s,s:s,s:b}", "nonce", "N1", "email", "alice@example.test", "email_verified", 1);
  assert_int_equal(wr_oidc_claims_check(c, "N1", NULL, email, sizeof(email), err, sizeof(err)), WR_OK);
  assert_string_equal(email, "alice@example.test");
  /* Another flow's nonce, or none. */
  assert_int_equal(wr_oidc_claims_check(c, "N2", NULL, email, sizeof(email), err, sizeof(err)), WR_ERR_DENIED);
  assert_non_null(strstr(err, "nonce"));
  assert_int_equal(wr_oidc_claims_check(c, "", NULL, email, sizeof(email), err, sizeof(err)), WR_ERR_DENIED);
  json_object_del(c, "nonce");
  assert_int_equal(wr_oidc_claims_check(c, "N1", NULL, email, sizeof(email), err, sizeof(err)), WR_ERR_DENIED);
  json_object_set_new(c, "nonce", json_string("N1"));
  /* Another claim name, a bad email, an unverified one, too long. */
  json_object_set_new(c, "upn", json_string("bob@corp.test"));
  assert_int_equal(wr_oidc_claims_check(c, "N1", "upn", email, sizeof(email), err, sizeof(err)), WR_OK);
  assert_string_equal(email, "bob@corp.test");
  json_object_set_new(c, "email", json_string("no-at-sign"));
  assert_int_equal(wr_oidc_claims_check(c, "N1", NULL, email, sizeof(email), err, sizeof(err)), WR_ERR_DENIED);
  json_object_set_new(c, "email", json_string("a@b@c"));
  assert_int_equal(wr_oidc_claims_check(c, "N1", NULL, email, sizeof(email), err, sizeof(err)), WR_ERR_DENIED);
  json_object_set_new(c, "email", json_string("a@b.test"));
  json_object_set_new(c, "email_verified", json_false());
  assert_int_equal(wr_oidc_claims_check(c, "N1", NULL, email, sizeof(email), err, sizeof(err)), WR_ERR_DENIED);
  json_object_del(c, "email_verified");
  assert_int_equal(wr_oidc_claims_check(c, "N1", NULL, email, 5, err, sizeof(err)), WR_ERR_DENIED);
  json_decref(c);
}

static void test_documents(void **state) {
  (void)state;
  wr_oidc_endpoints e;
  char err[200], *tok;
  const char *good = "{\"issuer\":\"https://idp.test\",\"authorization_endpoint\":\"https://idp.test/a\","
                     "\"token_endpoint\":\"https://idp.test/t\",\"jwks_uri\":\"http://idp.test/k\",\"x\":[1]}";
  assert_int_equal(wr_oidc_discovery_parse(good, strlen(good), &e, err, sizeof(err)), WR_OK);
  assert_string_equal(e.issuer, "https://idp.test");
  assert_string_equal(e.jwks_uri, "http://idp.test/k");
  wr_oidc_endpoints_free(&e);
  const char *bad[] = {"[]", "{", "{\"issuer\":\"https://i\"}",
                       "{\"issuer\":\"ftp://i\",\"authorization_endpoint\":\"https://a\",\"token_endpoint\":\"https://t\","
                       "\"jwks_uri\":\"https://k\"}",
                       "{\"issuer\":\"https://i\",\"authorization_endpoint\":\"https://a b\",\"token_endpoint\":\"https://t\","
                       "\"jwks_uri\":\"https://k\"}",
                       "{\"issuer\":1}", "{\"a\":1,\"a\":2}"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(wr_oidc_discovery_parse(bad[i], strlen(bad[i]), &e, err, sizeof(err)), WR_ERR_PROTO);
    assert_null(e.issuer);
  }
  const char *t = "{\"access_token\":\"x\",\"id_token\":\"a.b.c\",\"token_type\":\"Bearer\"}";
  assert_int_equal(wr_oidc_token_parse(t, strlen(t), &tok, err, sizeof(err)), WR_OK);
  assert_string_equal(tok, "a.b.c");
  free(tok);
  t = "{\"error\":\"invalid_grant\",\"error_description\":\"bad\\ncode\"}";
  assert_int_equal(wr_oidc_token_parse(t, strlen(t), &tok, err, sizeof(err)), WR_ERR_DENIED);
  assert_null(tok);
  assert_non_null(strstr(err, "invalid_grant: bad?code"));
  t = "{\"id_token\":5}";
  assert_int_equal(wr_oidc_token_parse(t, strlen(t), &tok, err, sizeof(err)), WR_ERR_PROTO);
  assert_int_equal(wr_oidc_token_parse("x", 1, &tok, err, sizeof(err)), WR_ERR_PROTO);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_state_single_use_and_binding), cmocka_unit_test(test_state_expiry_and_bound),
      cmocka_unit_test(test_pkce_and_requests),            cmocka_unit_test(test_claims),
      cmocka_unit_test(test_documents),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
