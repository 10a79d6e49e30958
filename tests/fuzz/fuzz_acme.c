/* Fuzzes the parsers of ACME server answers (src/proto/acme.c): the first
 * input byte picks directory, order, authorization (http-01 or dns-01) or
 * problem document. A parsed answer must hold NUL-terminated fields within
 * their bounds and, for a challenge, a token that is base64url. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/acme.h"
#include "fuzz.h"

static void directory(const char *body, size_t len) {
  wr_acme_directory d;
  if (wr_acme_parse_directory(body, len, &d) == WR_OK &&
      (!d.new_nonce[0] || strlen(d.new_order) > WR_ACME_URL_MAX))
    abort();
}

static void order(const char *body, size_t len) {
  wr_acme_order o;
  if (wr_acme_parse_order(body, len, &o) == WR_OK &&
      (o.n_authz == 0 || o.n_authz > WR_ACME_MAX_AUTHZ || !o.finalize[0]))
    abort();
}

static void authz(const char *body, size_t len, const char *type) {
  wr_acme_authz a;
  if (wr_acme_parse_authz(body, len, type, &a) == WR_OK &&
      (!wr_acme_token_valid(a.token) || !a.chall_url[0]))
    abort();
}
static void authz_http(const char *body, size_t len) { authz(body, len, "http-01"); }
static void authz_dns(const char *body, size_t len) { authz(body, len, "dns-01"); }

static void problem(const char *body, size_t len) {
  wr_acme_problem p;
  wr_acme_parse_problem(body, len, &p);
  if (strlen(p.detail) >= sizeof(p.detail)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const fuzz_case cases[] = {directory, order, authz_http, authz_dns, problem};
  return FUZZ_PICK(cases, data, size);
}
