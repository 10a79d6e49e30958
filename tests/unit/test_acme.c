/* ACME messages (src/proto/acme.c): account keys and thumbprints, JWS
 * requests checked by decoding and verifying them, key authorizations and
 * DNS-01 values, the CSR, and the parsers of directory, order,
 * authorization and problem documents with malformed and oversized
 * inputs. */
#include "unit.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/acme.h"
#include "proto/jwt.h"

static json_t *b64_json(const char *s) {
  uint8_t buf[4096];
  int n = wr_b64url_decode(s, strlen(s), buf, sizeof(buf));
  assert_true(n >= 0);
  return json_loadb((const char *)buf, (size_t)n, 0, NULL);
}

static void test_key_roundtrip(void **state) {
  (void)state;
  wr_acme_key *k = NULL, *k2 = NULL;
  char *pem = NULL;
  assert_int_equal(wr_acme_key_generate(&k), WR_OK);
  assert_int_equal(strlen(wr_acme_key_thumbprint(k)), WR_ACME_THUMB_LEN);
  assert_int_equal(wr_acme_key_export_pem(k, &pem), WR_OK);
  assert_non_null(strstr(pem, "BEGIN PRIVATE KEY"));
  assert_int_equal(wr_acme_key_import_pem(pem, strlen(pem), &k2), WR_OK);
  assert_string_equal(wr_acme_key_thumbprint(k), wr_acme_key_thumbprint(k2));
  assert_int_equal(wr_acme_key_import_pem("nope", 4, &k2), WR_ERR_PROTO);
  free(pem);
  /* An RSA key is not an ES256 account key. */
  wr_jwt_key *rsa;
  assert_int_equal(wr_jwt_key_generate(2048, &rsa), WR_OK);
  assert_int_equal(wr_jwt_key_export_pem(rsa, &pem), WR_OK);
  wr_acme_key *k3 = NULL;
  assert_int_equal(wr_acme_key_import_pem(pem, strlen(pem), &k3), WR_ERR_UNSUPPORTED);
  assert_null(k3);
  free(pem);
  wr_jwt_key_free(rsa);
  wr_acme_key_free(k);
  wr_acme_key_free(k2);
}

/* Verifies |jws|'s ES256 signature with the public point of its jwk or of
 * |k|'s exported key. */
static void verify_sig(const wr_acme_key *k, json_t *jws) {
  const char *p = json_string_value(json_object_get(jws, "protected"));
  const char *b = json_string_value(json_object_get(jws, "payload"));
  const char *s = json_string_value(json_object_get(jws, "signature"));
  uint8_t raw[64];
  assert_int_equal(wr_b64url_decode(s, strlen(s), raw, sizeof(raw)), 64);
  gnutls_datum_t r = {raw, 32}, sv = {raw + 32, 32}, der = {0};
  assert_int_equal(gnutls_encode_rs_value(&der, &r, &sv), 0);
  char *pem;
  assert_int_equal(wr_acme_key_export_pem(k, &pem), WR_OK);
  gnutls_privkey_t priv;
  gnutls_pubkey_t pub;
  gnutls_datum_t pd = {(unsigned char *)pem, (unsigned)strlen(pem)};
  gnutls_privkey_init(&priv);
  gnutls_pubkey_init(&pub);
  assert_int_equal(gnutls_privkey_import_x509_raw(priv, &pd, GNUTLS_X509_FMT_PEM, NULL, 0), 0);
  assert_int_equal(gnutls_pubkey_import_privkey(pub, priv, 0, 0), 0);
  char input[4096];
  int n = snprintf(input, sizeof(input), "%s.%s", p, b);
  gnutls_datum_t data = {(unsigned char *)input, (unsigned)n};
  assert_true(gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &der) >= 0);
  input[0] ^= 1;
  assert_true(gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &der) < 0);
  gnutls_free(der.data);
  gnutls_pubkey_deinit(pub);
  gnutls_privkey_deinit(priv);
  free(pem);
}

static void test_jws(void **state) {
  (void)state;
  wr_acme_key *k;
  char *out;
  assert_int_equal(wr_acme_key_generate(&k), WR_OK);
  /* newAccount: jwk, no kid. */
  json_t *pay = json_pack("{s:b}", "termsOfServiceAgreed", 1);
  assert_int_equal(wr_acme_jws(k, NULL, "nonce1", "https://ca.test/new-acct", pay, &out), WR_OK);
  json_t *jws = json_loads(out, 0, NULL);
  assert_non_null(jws);
  json_t *h = b64_json(json_string_value(json_object_get(jws, "protected")));
  assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
  assert_string_equal(json_string_value(json_object_get(h, "nonce")), "nonce1");
  assert_string_equal(json_string_value(json_object_get(h, "url")), "https://ca.test/new-acct");
  assert_null(json_object_get(h, "kid"));
  json_t *jwk = json_object_get(h, "jwk");
  assert_string_equal(json_string_value(json_object_get(jwk, "crv")), "P-256");
  /* The thumbprint is that of the jwk sent (RFC 7638's member order). */
  char canon[256], thumb[WR_ACME_THUMB_LEN + 1];
  int n = snprintf(canon, sizeof(canon), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                   json_string_value(json_object_get(jwk, "x")),
                   json_string_value(json_object_get(jwk, "y")));
  uint8_t dig[32];
  gnutls_hash_fast(GNUTLS_DIG_SHA256, canon, (size_t)n, dig);
  wr_b64url_encode(dig, 32, thumb, sizeof(thumb));
  assert_string_equal(thumb, wr_acme_key_thumbprint(k));
  json_t *body = b64_json(json_string_value(json_object_get(jws, "payload")));
  assert_true(json_is_true(json_object_get(body, "termsOfServiceAgreed")));
  verify_sig(k, jws);
  json_decref(body);
  json_decref(h);
  json_decref(jws);
  json_decref(pay);
  free(out);
  /* POST-as-GET with kid: empty payload. */
  assert_int_equal(wr_acme_jws(k, "https://ca.test/acct/1", "n2", "https://ca.test/o/1", NULL, &out),
                   WR_OK);
  jws = json_loads(out, 0, NULL);
  assert_string_equal(json_string_value(json_object_get(jws, "payload")), "");
  h = b64_json(json_string_value(json_object_get(jws, "protected")));
  assert_string_equal(json_string_value(json_object_get(h, "kid")), "https://ca.test/acct/1");
  assert_null(json_object_get(h, "jwk"));
  verify_sig(k, jws);
  json_decref(h);
  json_decref(jws);
  free(out);
  assert_int_equal(wr_acme_jws(k, NULL, NULL, "https://x", NULL, &out), WR_ERR_INVAL);
  wr_acme_key_free(k);
}

static void test_key_authorization(void **state) {
  (void)state;
  wr_acme_key *k;
  char ka[WR_ACME_KEYAUTH_MAX + 1], v[WR_ACME_THUMB_LEN + 1];
  assert_int_equal(wr_acme_key_generate(&k), WR_OK);
  assert_int_equal(wr_acme_key_authorization(k, "tok-EN_1", ka, sizeof(ka)), WR_OK);
  assert_int_equal(strncmp(ka, "tok-EN_1.", 9), 0);
  assert_string_equal(ka + 9, wr_acme_key_thumbprint(k));
  assert_int_equal(wr_acme_key_authorization(k, "../etc", ka, sizeof(ka)), WR_ERR_INVAL);
  assert_int_equal(wr_acme_key_authorization(k, "", ka, sizeof(ka)), WR_ERR_INVAL);
  /* base64url(SHA-256("abc")), a known digest. */
  wr_acme_dns01_value("abc", v);
  assert_string_equal(v, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
  wr_acme_key_free(k);
}

static void test_csr(void **state) {
  (void)state;
  const char *names[] = {"app.example.test", "www.example.test"};
  char *key = NULL, *csr = NULL;
  assert_int_equal(wr_acme_csr(names, 2, &key, &csr), WR_OK);
  assert_non_null(strstr(key, "BEGIN PRIVATE KEY"));
  uint8_t der[4096];
  int n = wr_b64url_decode(csr, strlen(csr), der, sizeof(der));
  assert_true(n > 0);
  gnutls_x509_crq_t crq;
  gnutls_datum_t d = {der, (unsigned)n};
  gnutls_x509_crq_init(&crq);
  assert_int_equal(gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_DER), 0);
  assert_int_equal(gnutls_x509_crq_verify(crq, 0), 0);
  char san[256];
  size_t sl = sizeof(san);
  unsigned crit;
  assert_int_equal(gnutls_x509_crq_get_subject_alt_name(crq, 1, san, &sl, NULL, &crit),
                   GNUTLS_SAN_DNSNAME);
  assert_string_equal(san, "www.example.test");
  gnutls_x509_crq_deinit(crq);
  free(key);
  free(csr);
  assert_int_equal(wr_acme_csr(names, 0, &key, &csr), WR_ERR_INVAL);
}

#define DIR_JSON                                                                          \
  "{\"keyChange\":\"https://ca.test/rollover-account-key\",\"meta\":{\"termsOfService\":" \
  "\"data:text/plain,Do%20what%20thou%20wilt\"},\"newAccount\":\"https://ca.test/"       \
  "sign-me-up\",\"newNonce\":\"https://ca.test/nonce-plz\",\"newOrder\":\"https://"      \
  "ca.test/order-plz\",\"revokeCert\":\"https://ca.test/revoke-cert\"}"

static void test_parse_directory(void **state) {
  (void)state;
  wr_acme_directory d;
  assert_int_equal(wr_acme_parse_directory(DIR_JSON, strlen(DIR_JSON), &d), WR_OK);
  assert_string_equal(d.new_nonce, "https://ca.test/nonce-plz");
  assert_string_equal(d.new_account, "https://ca.test/sign-me-up");
  assert_string_equal(d.new_order, "https://ca.test/order-plz");
  assert_true(d.tos);
  const char *bad[] = {"", "[]", "{}", "{\"newNonce\":1,\"newAccount\":\"https://a\",\"newOrder\":\"https://b\"}",
                       "{\"newNonce\":\"ftp://x\",\"newAccount\":\"https://a\",\"newOrder\":\"https://b\"}",
                       "{\"newNonce\":\"https://x\",\"newNonce\":\"https://y\",\"newAccount\":\"https://a\",\"newOrder\":\"https://b\"}"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
    assert_int_equal(wr_acme_parse_directory(bad[i], strlen(bad[i]), &d), WR_ERR_PROTO);
  /* A URL too long to keep is refused, not cut. */
  size_t big = WR_ACME_URL_MAX + 100;
  char *s = malloc(big + 200);
  int n = snprintf(s, big + 200, "{\"newNonce\":\"https://%0*d\",\"newAccount\":\"https://a\",\"newOrder\":\"https://b\"}",
                   (int)big, 0);
  assert_int_equal(wr_acme_parse_directory(s, (size_t)n, &d), WR_ERR_LIMIT);
  free(s);
}

#define ORDER_JSON                                                                         \
  "{\"status\":\"pending\",\"expires\":\"2026-12-07T00:00:00Z\",\"identifiers\":[{\"type\":" \
  "\"dns\",\"value\":\"app.example.test\"}],\"finalize\":\"https://ca.test/finalize-order/"  \
  "x\",\"authorizations\":[\"https://ca.test/authZ/a\",\"https://ca.test/authZ/b\"]}"

static void test_parse_order(void **state) {
  (void)state;
  wr_acme_order o;
  assert_int_equal(wr_acme_parse_order(ORDER_JSON, strlen(ORDER_JSON), &o), WR_OK);
  assert_int_equal(o.status, WR_ACME_PENDING);
  assert_int_equal(o.n_authz, 2);
  assert_string_equal(o.authz[1], "https://ca.test/authZ/b");
  assert_string_equal(o.finalize, "https://ca.test/finalize-order/x");
  assert_string_equal(o.certificate, "");
  const char *valid = "{\"status\":\"valid\",\"finalize\":\"https://f\",\"authorizations\":[\"https://a\"],"
                      "\"certificate\":\"https://ca.test/certZ/1\"}";
  assert_int_equal(wr_acme_parse_order(valid, strlen(valid), &o), WR_OK);
  assert_int_equal(o.status, WR_ACME_VALID);
  assert_string_equal(o.certificate, "https://ca.test/certZ/1");
  const char *bad[] = {
      "{\"status\":\"weird\",\"finalize\":\"https://f\",\"authorizations\":[\"https://a\"]}",
      "{\"status\":\"valid\",\"finalize\":\"https://f\",\"authorizations\":[]}",
      "{\"status\":\"valid\",\"finalize\":\"https://f\",\"authorizations\":[7]}",
      "{\"status\":\"valid\",\"authorizations\":[\"https://a\"]}",
      /* A required URL that is there but empty (a fuzzer's find). */
      "{\"status\":\"pending\",\"finalize\":\"\",\"authorizations\":[\"http://a/1\"]}",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
    assert_int_equal(wr_acme_parse_order(bad[i], strlen(bad[i]), &o), WR_ERR_PROTO);
  char many[4096] = "{\"status\":\"ready\",\"finalize\":\"https://f\",\"authorizations\":[";
  for (int i = 0; i <= WR_ACME_MAX_AUTHZ; i++) strcat(many, i ? ",\"https://a\"" : "\"https://a\"");
  strcat(many, "]}");
  assert_int_equal(wr_acme_parse_order(many, strlen(many), &o), WR_ERR_LIMIT);
}

#define AUTHZ_JSON                                                                           \
  "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"app.example.test\"},"  \
  "\"challenges\":[{\"type\":\"tls-alpn-01\",\"url\":\"https://ca.test/chalZ/1\",\"token\":"    \
  "\"t1\",\"status\":\"pending\"},{\"type\":\"http-01\",\"url\":\"https://ca.test/chalZ/2\","   \
  "\"token\":\"abc_DEF-123\",\"status\":\"pending\"},{\"type\":\"dns-01\",\"url\":\"https://"  \
  "ca.test/chalZ/3\",\"token\":\"dnstok\",\"status\":\"invalid\",\"error\":{\"type\":"         \
  "\"urn:ietf:params:acme:error:dns\",\"detail\":\"no TXT record\"}}],\"expires\":\"x\"}"

static void test_parse_authz(void **state) {
  (void)state;
  wr_acme_authz a;
  assert_int_equal(wr_acme_parse_authz(AUTHZ_JSON, strlen(AUTHZ_JSON), "http-01", &a), WR_OK);
  assert_int_equal(a.status, WR_ACME_PENDING);
  assert_string_equal(a.identifier, "app.example.test");
  assert_string_equal(a.chall_url, "https://ca.test/chalZ/2");
  assert_string_equal(a.token, "abc_DEF-123");
  assert_int_equal(a.chall_status, WR_ACME_PENDING);
  assert_int_equal(wr_acme_parse_authz(AUTHZ_JSON, strlen(AUTHZ_JSON), "dns-01", &a), WR_OK);
  assert_int_equal(a.chall_status, WR_ACME_INVALID);
  assert_string_equal(a.chall_error, "no TXT record");
  assert_int_equal(wr_acme_parse_authz(AUTHZ_JSON, strlen(AUTHZ_JSON), "foo-01", &a), WR_ERR_NOTFOUND);
  /* A token that could escape a path is refused. */
  const char *evil = "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"a.test\"},"
                     "\"challenges\":[{\"type\":\"http-01\",\"url\":\"https://c\",\"token\":\"../x\",\"status\":\"pending\"}]}";
  assert_int_equal(wr_acme_parse_authz(evil, strlen(evil), "http-01", &a), WR_ERR_PROTO);
  const char *ip = "{\"status\":\"pending\",\"identifier\":{\"type\":\"ip\",\"value\":\"1.2.3.4\"},\"challenges\":[]}";
  assert_int_equal(wr_acme_parse_authz(ip, strlen(ip), "http-01", &a), WR_ERR_PROTO);
}

static void test_parse_problem(void **state) {
  (void)state;
  wr_acme_problem p;
  const char *j = "{\"type\":\"urn:ietf:params:acme:error:badNonce\",\"detail\":\"JWS has an invalid anti-replay nonce\",\"status\":400}";
  assert_int_equal(wr_acme_parse_problem(j, strlen(j), &p), WR_OK);
  assert_string_equal(p.type, "urn:ietf:params:acme:error:badNonce");
  assert_string_equal(p.detail, "JWS has an invalid anti-replay nonce");
  assert_int_equal(wr_acme_parse_problem("<html>", 6, &p), WR_ERR_PROTO);
  assert_string_equal(p.detail, "");
  assert_int_equal(wr_acme_token_valid("abc"), 1);
  assert_int_equal(wr_acme_token_valid("a/b"), 0);
  assert_string_equal(wr_acme_status_name(WR_ACME_READY), "ready");
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_TESTS(test_key_roundtrip, test_jws, test_key_authorization, test_csr,
                             test_parse_directory, test_parse_order, test_parse_authz,
                             test_parse_problem));
}
