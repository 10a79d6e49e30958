/* Password hashes (src/edge/password.c): the encoded format, verification,
 * known answers computed with Python's hashlib (an independent PBKDF2), and
 * every way a stored string can be malformed. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/password.h"
#include "lib/encoding.h"
#include "lib/err.h"

/* hashlib.pbkdf2_hmac('sha256', b'correct horse battery', b'0123456789abcdef', 200000) */
static const char kat1[] =
    "pbkdf2-sha256$200000$MDEyMzQ1Njc4OWFiY2RlZg$0/Qbz/gfjeYAg85wBhVSdpg+JIwdzgFrpBxw7guL73w";
/* hashlib.pbkdf2_hmac('sha256', 'pässwörd ✓'.encode(), bytes(range(12)), 250000, 48):
 * UTF-8 input, a 12-byte salt and a 48-byte output are read as stored. */
static const char kat2[] = "pbkdf2-sha256$250000$AAECAwQFBgcICQoL$"
                           "kYcIN8YjZoopLTGZ7DVNIJ7inW/KI+nQq3cbLwO+rpqhh0MlcHcIopJAxJrkIu/X";

static int verify(const char *pw, const char *enc) { return wr_password_verify(pw, strlen(pw), enc); }

static void test_known_answers(void **state) {
  (void)state;
  assert_int_equal(verify("correct horse battery", kat1), WR_OK);
  assert_int_equal(verify("correct horse batterY", kat1), WR_ERR_DENIED);
  assert_int_equal(verify("correct horse battery ", kat1), WR_ERR_DENIED);
  assert_int_equal(verify("", kat1), WR_ERR_DENIED);
  assert_int_equal(verify("p\xc3\xa4sšw", kat2), WR_ERR_DENIED);
  assert_int_equal(verify("p\xc3\xa4ssw\xc3\xb6rd \xe2\x9c\x93", kat2), WR_OK);
}

static void test_hash_format_and_roundtrip(void **state) {
  char a[WR_PASSWORD_ENCODED_MAX], b[WR_PASSWORD_ENCODED_MAX];
  uint8_t raw[64];
  (void)state;
  assert_int_equal(wr_password_hash("s3cret-pass", 11, 0, a), WR_OK);
  assert_int_equal(wr_password_hash("s3cret-pass", 11, 0, b), WR_OK);
  /* scheme$600000$salt$hash, fresh salt each time */
  assert_true(strncmp(a, "pbkdf2-sha256$600000$", 21) == 0);
  assert_string_not_equal(a, b);
  const char *salt = a + 21, *d = strchr(salt, '$');
  assert_non_null(d);
  assert_int_equal(wr_base64_decode(salt, (size_t)(d - salt), raw, sizeof(raw), 0), WR_PASSWORD_SALT_LEN);
  assert_int_equal(wr_base64_decode(d + 1, strlen(d + 1), raw, sizeof(raw), 0), WR_PASSWORD_HASH_LEN);
  assert_null(strchr(a, '='));
  assert_int_equal(verify("s3cret-pass", a), WR_OK);
  assert_int_equal(verify("s3cret-pass", b), WR_OK);
  assert_int_equal(verify("s3cret-pasS", a), WR_ERR_DENIED);
  /* Length counts, not NUL termination: bytes after a NUL matter. */
  assert_int_equal(wr_password_verify("s3cret-pass\0x", 13, a), WR_ERR_DENIED);
  /* An explicit count is recorded. */
  assert_int_equal(wr_password_hash("s3cret-pass", 11, WR_PASSWORD_MIN_ITERATIONS, a), WR_OK);
  assert_true(strncmp(a, "pbkdf2-sha256$200000$", 21) == 0);
  assert_int_equal(verify("s3cret-pass", a), WR_OK);
}

static void test_hash_refuses_bad_arguments(void **state) {
  char out[WR_PASSWORD_ENCODED_MAX];
  char *big = malloc(WR_PASSWORD_MAX_LEN + 1);
  (void)state;
  memset(big, 'a', WR_PASSWORD_MAX_LEN + 1);
  assert_int_equal(wr_password_hash("pw", 2, 1000, out), WR_ERR_INVAL);
  assert_string_equal(out, "");
  assert_int_equal(wr_password_hash("pw", 2, WR_PASSWORD_MAX_ITERATIONS + 1, out), WR_ERR_INVAL);
  assert_int_equal(wr_password_hash(big, WR_PASSWORD_MAX_LEN + 1, 0, out), WR_ERR_INVAL);
  assert_int_equal(wr_password_hash(NULL, 0, 0, out), WR_ERR_INVAL);
  assert_int_equal(wr_password_verify(big, WR_PASSWORD_MAX_LEN + 1, kat1), WR_ERR_DENIED);
  assert_int_equal(wr_password_verify(NULL, 0, kat1), WR_ERR_DENIED);
  free(big);
}

static void test_malformed_hashes(void **state) {
  static const char *const bad[] = {
      "",
      "pbkdf2-sha256",
      "pbkdf2-sha1$200000$MDEyMzQ1Njc4OWFiY2RlZg$0/Qbz/gfjeYAg85wBhVSdpg+JIwdzgFrpBxw7guL73w",
      "PBKDF2-SHA256$200000$MDEyMzQ1Njc4OWFiY2RlZg$0/Qbz/gfjeYAg85wBhVSdpg+JIwdzgFrpBxw7guL73w",
      /* iteration counts: too low (a weakened row), too high (a work bomb),
       * signs, leading zeros, junk */
      "pbkdf2-sha256$1000$MDEyMzQ1Njc4OWFiY2RlZg$0/Qbz/gfjeYAg85wBhVSdpg+JIwdzgFrpBxw7guL73w",
      "pbkdf2-sha256$99999999999$MDEyMzQ1Njc4OWFiY2RlZg$0/Qbz/gfjeYAg85wBhVSdpg+JIwdzgFrpBxw7guL73w",
      "pbkdf2-sha256$+200000$MDEyMzQ1Njc4OWFiY2RlZg$0/Qbz/gfjeYAg85wBhVSdpg+JIwdzgFrpBxw7guL73w",
      "pbkdf2-sha256$0200000$MDEyMzQ1Njc4OWFiY2RlZg$0/Qbz/gfjeYAg85wBhVSdpg+JIwdzgFrpBxw7guL73w",
      "pbkdf2-sha256$200000x$MDEyMzQ1Njc4OWFiY2RlZg$0/Qbz/gfjeYAg85wBhVSdpg+JIwdzgFrpBxw7guL73w",
      "pbkdf2-sha256$$MDEyMzQ1Njc4OWFiY2RlZg$0/Qbz/gfjeYAg85wBhVSdpg+JIwdzgFrpBxw7guL73w",
      /* parts missing or extra */
      "pbkdf2-sha256$200000$MDEyMzQ1Njc4OWFiY2RlZg",
      "pbkdf2-sha256$200000$MDEyMzQ1Njc4OWFiY2RlZg$",
      "pbkdf2-sha256$200000$$0/Qbz/gfjeYAg85wBhVSdpg+JIwdzgFrpBxw7guL73w",
      "pbkdf2-sha256$200000$MDEyMzQ1Njc4OWFiY2RlZg$0/Qbz/gfjeYAg85wBhVSdpg+JIwdzgFrpBxw7guL73w$x",
      /* bad base64, a salt or hash too short to be ours */
      "pbkdf2-sha256$200000$MDEyMzQ1Njc4OWFiY2R!Zg$0/Qbz/gfjeYAg85wBhVSdpg+JIwdzgFrpBxw7guL73w",
      "pbkdf2-sha256$200000$MDEyMzQ1Njc4OWFiY2RlZg$0/Qbz/gfjeYAg85w Bhdpg+JIwdzgFrpBxw7guL73w",
      "pbkdf2-sha256$200000$MDEy$0/Qbz/gfjeYAg85wBhVSdpg+JIwdzgFrpBxw7guL73w",
      "pbkdf2-sha256$200000$MDEyMzQ1Njc4OWFiY2RlZg$0/Qbz/gf",
  };
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int rv = verify("correct horse battery", bad[i]);
    if (rv != WR_ERR_INVAL) fail_msg("case %zu (%s): got %d, want WR_ERR_INVAL", i, bad[i], rv);
  }
  assert_int_equal(wr_password_verify("x", 1, NULL), WR_ERR_INVAL);
}

static void test_dummy_always_denies(void **state) {
  (void)state;
  assert_int_equal(wr_password_verify_dummy("anything", 8), WR_ERR_DENIED);
  assert_int_equal(wr_password_verify_dummy("", 0), WR_ERR_DENIED);
  assert_int_equal(wr_password_verify_dummy(NULL, 0), WR_ERR_DENIED);
}

static void test_policy(void **state) {
  char err[128];
  (void)state;
  assert_int_equal(wr_password_check_policy("short", 5, err, sizeof(err)), WR_ERR_INVAL);
  assert_non_null(strstr(err, "at least 8"));
  assert_int_equal(wr_password_check_policy("long enough", 11, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_password_check_policy("with\ttab ok", 11, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_password_check_policy("newline\nin it", 13, err, sizeof(err)), WR_ERR_INVAL);
  assert_non_null(strstr(err, "control"));
  assert_null(strstr(err, "newline\n")); /* the message never repeats the password */
  assert_int_equal(wr_password_check_policy("nul\0inside", 10, err, sizeof(err)), WR_ERR_INVAL);
  assert_int_equal(wr_password_check_policy("del\x7f char", 9, err, sizeof(err)), WR_ERR_INVAL);
  char *big = malloc(WR_PASSWORD_MAX_LEN + 1);
  memset(big, 'a', WR_PASSWORD_MAX_LEN + 1);
  assert_int_equal(wr_password_check_policy(big, WR_PASSWORD_MAX_LEN, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_password_check_policy(big, WR_PASSWORD_MAX_LEN + 1, err, sizeof(err)), WR_ERR_INVAL);
  free(big);
  assert_int_equal(wr_password_check_policy(NULL, 0, NULL, 0), WR_ERR_INVAL);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_TESTS(test_known_answers, test_hash_format_and_roundtrip,
                             test_hash_refuses_bad_arguments, test_malformed_hashes,
                             test_dummy_always_denies, test_policy));
}
