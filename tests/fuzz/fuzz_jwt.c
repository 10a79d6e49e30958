/* Fuzzes the JWT verifier and the JWK set parser (src/proto/jwt.c): the
 * first input byte picks which; a token is checked against a set holding a
 * real key, so inputs that reach the signature check are exercised too. A
 * token that verifies must have been signed by that key: the fuzzer cannot
 * forge one, so a WR_OK is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/jwt.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static wr_jwt_key *key;
  static wr_jwks *set;
  if (!key) {
    if (wr_jwt_key_generate(2048, &key) != WR_OK) abort();
    set = wr_jwks_from_keys(&key, 1);
  }
  if (size < 1) return 0;
  char err[256];
  if (data[0] & 1) {
    wr_jwks *s = NULL;
    if (wr_jwks_parse((const char *)data + 1, size - 1, &s) == WR_OK) {
      if (wr_jwks_count(s) > WR_JWKS_MAX_KEYS) abort();
      wr_jwks_free(s);
    } else if (s) {
      abort();
    }
    return 0;
  }
  const char *auds[] = {"aud"};
  wr_jwt_expect w = {.now = 1700000000, .auds = auds, .naud = 1, .iss = NULL};
  json_t *claims = NULL;
  int rv = wr_jwt_verify(set, (const char *)data + 1, size - 1, &w, &claims, err, sizeof(err));
  if (rv == WR_OK) abort();
  if (claims) abort();
  return 0;
}
