/* RS256 JWTs and JWK sets (src/proto/jwt.c): sign/verify round trips, every
 * claim check (expiry, not-before, audience, issuer), tampering with each
 * segment, algorithm confusion (none, HS256), unknown keys, JWKS encoding and
 * parsing, PEM round trips and base64url strictness. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/jwt.h"

static wr_jwt_key *key1, *key2;

static int setup(void **state) {
  (void)state;
  if (wr_jwt_key_generate(2048, &key1) != WR_OK) return -1;
  if (wr_jwt_key_generate(2048, &key2) != WR_OK) return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  wr_jwt_key_free(key1);
  wr_jwt_key_free(key2);
  return 0;
}

#define NOW 1700000000

/* A token of the claims |c| (released here) signed by |k|. */
static char *sign_json(wr_jwt_key *k, json_t *c) {
  char *tok = NULL;
  assert_int_equal(wr_jwt_sign(k, c, &tok), WR_OK);
  json_decref(c);
  return tok;
}

static char *sign_claims(wr_jwt_key *k, const char *aud, int64_t exp) {
  return sign_json(k, json_pack("{s:[s],s:s,s:I,s:I,s:s,s:s}", "aud", aud, "email", "a@example.test", "iat",
                                (json_int_t)NOW, "exp", (json_int_t)exp, "iss", "https://team.example.test",
                                "type", "app"));
}

static int verify_with(wr_jwks *set, const char *tok, const char *aud, const char *iss, int64_t now,
                       json_t **claims) {
  const char *auds[1] = {aud};
  wr_jwt_expect w = {.now = now, .auds = auds, .naud = aud ? 1 : 0, .iss = iss};
  char err[256];
  return wr_jwt_verify(set, tok, strlen(tok), &w, claims, err, sizeof(err));
}

/* The fixture of the tests around one token: key1's set and a token signed
 * by key1 for audience "aud1", valid for 10 minutes from NOW. */
typedef struct token_fx {
  wr_jwks *set;
  char *tok;
} token_fx;

static int token_setup(void **state) {
  token_fx *f = malloc(sizeof(*f));
  if (!f) return -1;
  f->set = wr_jwks_from_keys(&key1, 1);
  f->tok = sign_claims(key1, "aud1", NOW + 600);
  *state = f;
  return 0;
}

static int token_teardown(void **state) {
  token_fx *f = *state;
  free(f->tok);
  wr_jwks_free(f->set);
  free(f);
  return 0;
}

static void test_roundtrip(void **state) {
  token_fx *f = *state;
  wr_jwks *set = f->set;
  const char *tok = f->tok;
  json_t *c = NULL;
  assert_int_equal(verify_with(set, tok, "aud1", "https://team.example.test", NOW, &c), WR_OK);
  assert_non_null(c);
  assert_string_equal(json_string_value(json_object_get(c, "email")), "a@example.test");
  json_decref(c);
  /* No audience or issuer asked for: only signature and time. */
  assert_int_equal(verify_with(set, tok, NULL, NULL, NOW, NULL), WR_OK);
}

static void test_claim_checks(void **state) {
  token_fx *f = *state;
  wr_jwks *set = f->set;
  const char *tok = f->tok;
  assert_int_equal(verify_with(set, tok, "other-aud", NULL, NOW, NULL), WR_ERR_DENIED);
  assert_int_equal(verify_with(set, tok, "aud1", "https://evil.example.test", NOW, NULL), WR_ERR_DENIED);
  /* Expired: past exp plus the leeway; within the leeway still valid. */
  assert_int_equal(verify_with(set, tok, "aud1", NULL, NOW + 600 + WR_JWT_LEEWAY_S + 1, NULL), WR_ERR_DENIED);
  assert_int_equal(verify_with(set, tok, "aud1", NULL, NOW + 600 + WR_JWT_LEEWAY_S, NULL), WR_OK);
  /* Issued in the future. */
  assert_int_equal(verify_with(set, tok, "aud1", NULL, NOW - WR_JWT_LEEWAY_S - 10, NULL), WR_ERR_DENIED);
  /* A token without exp is refused; aud as a single string counts too; exp
   * of the wrong type is malformed. */
  const struct {
    json_t *claims; /* released by sign_json */
    int want;
  } other[] = {
      {json_pack("{s:s}", "aud", "aud1"), WR_ERR_DENIED},
      {json_pack("{s:s,s:I}", "aud", "aud1", "exp", (json_int_t)NOW + 5), WR_OK},
      {json_pack("{s:s,s:s}", "aud", "aud1", "exp", "tomorrow"), WR_ERR_PROTO},
  };
  for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
    char *t = sign_json(key1, other[i].claims);
    assert_int_equal(verify_with(set, t, "aud1", NULL, NOW, NULL), other[i].want);
    free(t);
  }
}

static void test_tampering(void **state) {
  token_fx *f = *state;
  wr_jwks *set = f->set;
  const char *tok = f->tok;
  size_t len = strlen(tok);
  char *dot2 = strrchr(tok, '.');
  /* Flip one character of the signature. */
  char *t = strdup(tok);
  size_t si = (size_t)(dot2 - tok) + 10;
  t[si] = t[si] == 'A' ? 'B' : 'A';
  assert_int_equal(verify_with(set, t, "aud1", NULL, NOW, NULL), WR_ERR_DENIED);
  /* Change the payload: same header and signature, another body. */
  char *forged = sign_json(key2, json_pack("{s:[s],s:s,s:I}", "aud", "aud1", "email", "admin@example.test",
                                           "exp", (json_int_t)NOW + 600));
  char *fd1 = strchr(forged, '.'), *fd2 = strrchr(forged, '.'), *d1 = strchr(tok, '.');
  char *mix = malloc(len + strlen(forged) + 1);
  sprintf(mix, "%.*s%.*s%s", (int)(d1 - tok), tok, (int)(fd2 - fd1), fd1, dot2);
  assert_int_equal(verify_with(set, mix, "aud1", NULL, NOW, NULL), WR_ERR_DENIED);
  /* Signed by another key with our kid swapped in: the header differs, so
   * the signature cannot match either. Signed by a key not in the set. */
  assert_int_equal(verify_with(set, forged, "aud1", NULL, NOW, NULL), WR_ERR_NOTFOUND);
  /* Truncated, extra segments, empty. */
  t[0] = '\0';
  assert_int_equal(verify_with(set, t, "aud1", NULL, NOW, NULL), WR_ERR_PROTO);
  snprintf(t, len + 1, "%.*s", (int)(dot2 - tok), tok);
  assert_int_equal(verify_with(set, t, "aud1", NULL, NOW, NULL), WR_ERR_PROTO);
  char *extra = malloc(len + 4);
  sprintf(extra, "%s.x", tok);
  assert_int_equal(verify_with(set, extra, "aud1", NULL, NOW, NULL), WR_ERR_PROTO);
  free(extra);
  free(mix);
  free(forged);
  free(t);
}

/* A token with header |hdr| (JSON), the payload of |tok| and its signature. */
static char *with_header(const char *tok, const char *hdr) {
  char h[256];
  assert_true(wr_b64url_encode((const uint8_t *)hdr, strlen(hdr), h, sizeof(h)) > 0);
  const char *d1 = strchr(tok, '.');
  char *out = malloc(strlen(h) + strlen(d1) + 1);
  sprintf(out, "%s%s", h, d1);
  return out;
}

static void test_algorithms(void **state) {
  token_fx *f = *state;
  wr_jwks *set = f->set;
  const char *tok = f->tok;
  const char *bad[] = {"{\"alg\":\"none\"}", "{\"alg\":\"HS256\"}", "{\"alg\":\"RS512\"}", "{}",
                       "{\"alg\":\"RS256\",\"alg\":\"none\"}", "{\"alg\":\"RS256\",\"kid\":5}",
                       "{\"alg\":\"RS256\",\"crit\":[\"b64\"]}", "[1]"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char *t = with_header(tok, bad[i]);
    assert_int_equal(verify_with(set, t, "aud1", NULL, NOW, NULL), WR_ERR_PROTO);
    free(t);
  }
  /* "alg":"none" with an empty signature, the classic forgery. */
  char *none = with_header(tok, "{\"alg\":\"none\"}");
  *(strrchr(none, '.') + 1) = '\0';
  assert_int_equal(verify_with(set, none, "aud1", NULL, NOW, NULL), WR_ERR_PROTO);
  free(none);
  /* A header without kid is tried against every key. */
  char *nokid = with_header(tok, "{\"alg\":\"RS256\"}");
  assert_int_equal(verify_with(set, nokid, "aud1", NULL, NOW, NULL), WR_ERR_DENIED); /* header is signed */
  free(nokid);
}

static void test_jwks_encode_parse(void **state) {
  (void)state;
  json_t *keys = json_array();
  json_array_append_new(keys, wr_jwt_key_jwk(key1));
  json_array_append_new(keys, wr_jwt_key_jwk(key2));
  /* Keys we do not use are skipped; Cloudflare's extra members ignored. */
  json_array_append_new(keys, json_pack("{s:s,s:s,s:s}", "kty", "EC", "kid", "ec1", "crv", "P-256"));
  json_t *doc = json_pack("{s:o,s:{s:s,s:s}}", "keys", keys, "public_cert", "kid", "x", "cert", "y");
  char *text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  wr_jwks *set = NULL;
  assert_int_equal(wr_jwks_parse(text, strlen(text), &set), WR_OK);
  free(text);
  assert_int_equal(wr_jwks_count(set), 2);
  assert_true(wr_jwks_has_kid(set, wr_jwt_key_kid(key1)));
  assert_true(wr_jwks_has_kid(set, wr_jwt_key_kid(key2)));
  assert_false(wr_jwks_has_kid(set, "nope"));
  assert_int_equal(strlen(wr_jwt_key_kid(key1)), WR_JWT_KID_LEN);
  char *t1 = sign_claims(key1, "a", NOW + 60), *t2 = sign_claims(key2, "a", NOW + 60);
  assert_int_equal(verify_with(set, t1, "a", NULL, NOW, NULL), WR_OK);
  assert_int_equal(verify_with(set, t2, "a", NULL, NOW, NULL), WR_OK);
  free(t1);
  free(t2);
  wr_jwks_free(set);
  const char *bad[] = {"", "[]", "{}", "{\"keys\":{}}", "{\"keys\":[1]}",
                       "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
                       "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"+/+/\",\"e\":\"AQAB\"}]}"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_not_equal(wr_jwks_parse(bad[i], strlen(bad[i]), &set), WR_OK);
    assert_null(set);
  }
  assert_int_equal(wr_jwks_parse("{\"keys\":[]}", 11, &set), WR_OK);
  assert_int_equal(wr_jwks_count(set), 0);
  wr_jwks_free(set);
}

static void test_pem_roundtrip(void **state) {
  (void)state;
  char *pem = NULL;
  wr_jwt_key *back = NULL;
  assert_int_equal(wr_jwt_key_export_pem(key1, &pem), WR_OK);
  assert_non_null(strstr(pem, "BEGIN PRIVATE KEY"));
  assert_int_equal(wr_jwt_key_import_pem(pem, strlen(pem), &back), WR_OK);
  assert_string_equal(wr_jwt_key_kid(back), wr_jwt_key_kid(key1));
  /* A token signed by the imported key verifies with the original's set. */
  wr_jwks *set = wr_jwks_from_keys(&key1, 1);
  char *tok = sign_claims(back, "a", NOW + 60);
  assert_int_equal(verify_with(set, tok, "a", NULL, NOW, NULL), WR_OK);
  free(tok);
  wr_jwks_free(set);
  wr_jwt_key_free(back);
  free(pem);
  assert_int_equal(wr_jwt_key_import_pem("nope", 4, &back), WR_ERR_PROTO);
  assert_null(back);
  assert_int_equal(wr_jwt_key_generate(1024, &back), WR_ERR_INVAL);
}

static void test_b64url(void **state) {
  (void)state;
  uint8_t out[16];
  char enc[32];
  const uint8_t raw[] = {0xfb, 0xff, 0xfe};
  assert_int_equal(wr_b64url_encode(raw, 3, enc, sizeof(enc)), 4);
  assert_string_equal(enc, "-__-");
  assert_int_equal(wr_b64url_decode("-__-", 4, out, sizeof(out)), 3);
  assert_memory_equal(out, raw, 3);
  assert_int_equal(wr_b64url_decode("+//+", 4, out, sizeof(out)), WR_ERR_PROTO);
  assert_int_equal(wr_b64url_decode("QQ==", 4, out, sizeof(out)), WR_ERR_PROTO);
  assert_int_equal(wr_b64url_decode("QQ", 2, out, sizeof(out)), 1);
  assert_int_equal(wr_b64url_decode("QR", 2, out, sizeof(out)), WR_ERR_PROTO); /* stray bits */
}

int main(void) {
  return UNIT_RUN(setup, teardown,
                  UNIT_FIXTURE(token_setup, token_teardown, test_roundtrip, test_claim_checks,
                               test_tampering, test_algorithms),
                  UNIT_TESTS(test_jwks_encode_parse, test_pem_roundtrip, test_b64url));
}
