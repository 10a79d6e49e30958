/* Password hashing for edge users (the login pages, edge/login.h).
 *
 * PBKDF2-HMAC-SHA256 (RFC 8018) through gnutls_pbkdf2, with a 16-byte random
 * salt and a 32-byte output, stored as one self-describing string:
 *
 *   pbkdf2-sha256$<iterations>$<salt>$<hash>
 *
 * salt and hash in standard base64 without padding. The default of 600 000
 * iterations follows OWASP's 2023 advice for PBKDF2-SHA256; the count is in
 * the string, so it can be raised later without breaking stored hashes.
 * Verification recomputes the hash and compares in constant time.
 *
 * Hashing takes a few hundred milliseconds on purpose: the running edge calls
 * these functions on a worker thread, never on the loop thread. They touch no
 * global state and are safe to call from any thread. */
#ifndef WR_EDGE_PASSWORD_H
#define WR_EDGE_PASSWORD_H
#include <stddef.h>

#define WR_PASSWORD_SCHEME "pbkdf2-sha256"
#define WR_PASSWORD_ITERATIONS 600000u      /* default for new hashes */
#define WR_PASSWORD_MIN_ITERATIONS 200000u  /* hashes below this are refused */
#define WR_PASSWORD_MAX_ITERATIONS 10000000u /* bounds the work a stored string can ask for */
#define WR_PASSWORD_SALT_LEN 16
#define WR_PASSWORD_HASH_LEN 32
/* Longest encoded string wr_password_hash writes, with the NUL. */
#define WR_PASSWORD_ENCODED_MAX 128
/* What users may choose: at least 8 bytes, at most 1024. */
#define WR_PASSWORD_MIN_LEN 8
#define WR_PASSWORD_MAX_LEN 1024

/* Checks a new password against the policy (length, no NUL or control
 * characters other than tab). Returns WR_OK or WR_ERR_INVAL with a sentence
 * in |err| that does not repeat the password. */
int wr_password_check_policy(const char *pw, size_t len, char *err, size_t errlen);

/* Hashes |len| bytes of |pw| with a fresh salt and |iterations| rounds (0:
 * WR_PASSWORD_ITERATIONS) into |out|. Returns WR_OK, WR_ERR_INVAL (an
 * iteration count outside MIN..MAX, |len| over WR_PASSWORD_MAX_LEN) or
 * WR_ERR_CRYPTO (no randomness, GnuTLS failed). */
int wr_password_hash(const char *pw, size_t len, unsigned iterations,
                     char out[WR_PASSWORD_ENCODED_MAX]);

/* Checks |len| bytes of |pw| against an encoded hash. Returns WR_OK for a
 * match, WR_ERR_DENIED for a mismatch, WR_ERR_INVAL for a string that is not
 * a hash this build understands (unknown scheme, bad base64, iteration count
 * out of bounds) and WR_ERR_CRYPTO if GnuTLS failed. The comparison of the
 * derived keys takes the same time wherever they differ. */
int wr_password_verify(const char *pw, size_t len, const char *encoded);

/* Spends the same time as verifying against a default-strength hash and
 * returns WR_ERR_DENIED: used for unknown users, so that response times do
 * not tell which emails exist. */
int wr_password_verify_dummy(const char *pw, size_t len);

#endif
