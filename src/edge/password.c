/* PBKDF2-HMAC-SHA256 password hashes; see password.h. */
#include "edge/password.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "lib/encoding.h"
#include "lib/err.h"

static void set_err(char *err, size_t errlen, const char *msg) {
  if (err && errlen) snprintf(err, errlen, "%s", msg);
}

int wr_password_check_policy(const char *pw, size_t len, char *err, size_t errlen) {
  char msg[128];
  if (!pw || len < WR_PASSWORD_MIN_LEN) {
    snprintf(msg, sizeof(msg), "the password is too short: use at least %d characters",
             WR_PASSWORD_MIN_LEN);
    set_err(err, errlen, msg);
    return WR_ERR_INVAL;
  }
  if (len > WR_PASSWORD_MAX_LEN) {
    snprintf(msg, sizeof(msg), "the password is too long: the limit is %d bytes", WR_PASSWORD_MAX_LEN);
    set_err(err, errlen, msg);
    return WR_ERR_INVAL;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)pw[i];
    /* A password typed into a form cannot hold these; a file that does is
     * more likely a mistake (a stray CR, a binary file) than a choice. */
    if ((c < 0x20 && c != '\t') || c == 0x7f) {
      set_err(err, errlen, "the password contains control characters (a stray newline or CR?)");
      return WR_ERR_INVAL;
    }
  }
  return WR_OK;
}

/* PBKDF2 into |out| (|outlen| bytes). WR_OK or WR_ERR_CRYPTO. */
static int derive(const char *pw, size_t len, const uint8_t *salt, size_t salt_len, unsigned iter,
                  uint8_t *out, size_t outlen) {
  /* gnutls_datum_t has no const; neither buffer is written. */
  gnutls_datum_t key = {(unsigned char *)(uintptr_t)pw, (unsigned)len};
  gnutls_datum_t s = {(unsigned char *)(uintptr_t)salt, (unsigned)salt_len};
  static const char empty[1] = "";
  if (len == 0) key.data = (unsigned char *)(uintptr_t)empty;
  return gnutls_pbkdf2(GNUTLS_MAC_SHA256, &key, &s, iter, out, outlen) == 0 ? WR_OK : WR_ERR_CRYPTO;
}

int wr_password_hash(const char *pw, size_t len, unsigned iterations,
                     char out[WR_PASSWORD_ENCODED_MAX]) {
  uint8_t salt[WR_PASSWORD_SALT_LEN], dk[WR_PASSWORD_HASH_LEN];
  char salt64[WR_BASE64_ENCODED_SIZE(WR_PASSWORD_SALT_LEN)];
  char dk64[WR_BASE64_ENCODED_SIZE(WR_PASSWORD_HASH_LEN)];
  int rv;
  out[0] = '\0';
  if (iterations == 0) iterations = WR_PASSWORD_ITERATIONS;
  if (!pw || iterations < WR_PASSWORD_MIN_ITERATIONS || iterations > WR_PASSWORD_MAX_ITERATIONS ||
      len > WR_PASSWORD_MAX_LEN)
    return WR_ERR_INVAL;
  if (wr_random_bytes(salt, sizeof(salt)) != WR_OK) return WR_ERR_CRYPTO;
  if ((rv = derive(pw, len, salt, sizeof(salt), iterations, dk, sizeof(dk))) != WR_OK) goto out;
  if (wr_base64_encode(salt, sizeof(salt), salt64, sizeof(salt64), 0) < 0 ||
      wr_base64_encode(dk, sizeof(dk), dk64, sizeof(dk64), 0) < 0) {
    rv = WR_ERR_INTERNAL;
    goto out;
  }
  snprintf(out, WR_PASSWORD_ENCODED_MAX, WR_PASSWORD_SCHEME "$%u$%s$%s", iterations, salt64, dk64);
  rv = WR_OK;
out:
  gnutls_memset(dk, 0, sizeof(dk));
  return rv;
}

/* Splits "scheme$iter$salt$hash". Returns WR_OK or WR_ERR_INVAL. */
static int parse(const char *enc, unsigned *iter, uint8_t *salt, size_t *salt_len, uint8_t *dk,
                 size_t *dk_len) {
  const char *p, *salt_s, *dk_s;
  char *end;
  unsigned long long it;
  int n;
  static const char prefix[] = WR_PASSWORD_SCHEME "$";
  if (!enc || strncmp(enc, prefix, sizeof(prefix) - 1) != 0) return WR_ERR_INVAL;
  p = enc + sizeof(prefix) - 1;
  if (*p < '1' || *p > '9') return WR_ERR_INVAL; /* digits only, no sign or leading zero */
  errno = 0;
  it = strtoull(p, &end, 10);
  if (errno || *end != '$' || it < WR_PASSWORD_MIN_ITERATIONS || it > WR_PASSWORD_MAX_ITERATIONS)
    return WR_ERR_INVAL;
  salt_s = end + 1;
  if (!(p = strchr(salt_s, '$'))) return WR_ERR_INVAL;
  dk_s = p + 1;
  if (strchr(dk_s, '$')) return WR_ERR_INVAL;
  n = wr_base64_decode(salt_s, (size_t)(p - salt_s), salt, *salt_len, 0);
  if (n < 8) return WR_ERR_INVAL; /* includes the error codes */
  *salt_len = (size_t)n;
  n = wr_base64_decode(dk_s, strlen(dk_s), dk, *dk_len, 0);
  if (n < 16) return WR_ERR_INVAL;
  *dk_len = (size_t)n;
  *iter = (unsigned)it;
  return WR_OK;
}

/* Equal lengths assumed by the callers' bounds; the loop never exits early. */
static int ct_equal(const uint8_t *a, const uint8_t *b, size_t n) {
  uint8_t d = 0;
  for (size_t i = 0; i < n; i++) d |= a[i] ^ b[i];
  return d == 0;
}

int wr_password_verify(const char *pw, size_t len, const char *encoded) {
  uint8_t salt[64], want[64], got[64];
  size_t salt_len = sizeof(salt), want_len = sizeof(want);
  unsigned iter = 0;
  int rv;
  if (!pw || len > WR_PASSWORD_MAX_LEN) return WR_ERR_DENIED;
  if (parse(encoded, &iter, salt, &salt_len, want, &want_len) != WR_OK) return WR_ERR_INVAL;
  if ((rv = derive(pw, len, salt, salt_len, iter, got, want_len)) != WR_OK) goto out;
  rv = ct_equal(got, want, want_len) ? WR_OK : WR_ERR_DENIED;
out:
  gnutls_memset(got, 0, sizeof(got));
  gnutls_memset(want, 0, sizeof(want));
  return rv;
}

int wr_password_verify_dummy(const char *pw, size_t len) {
  static const uint8_t salt[WR_PASSWORD_SALT_LEN] = "warren-dummy-slt";
  uint8_t got[WR_PASSWORD_HASH_LEN];
  if (pw && len <= WR_PASSWORD_MAX_LEN)
    (void)derive(pw, len, salt, sizeof(salt), WR_PASSWORD_ITERATIONS, got, sizeof(got));
  gnutls_memset(got, 0, sizeof(got));
  return WR_ERR_DENIED;
}
