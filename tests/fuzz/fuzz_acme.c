/* Fuzzes the parsers of ACME server answers (src/proto/acme.c): the first
 * input byte picks directory, order, authorization (http-01 or dns-01) or
 * problem document. A parsed answer must hold NUL-terminated fields within
 * their bounds and, for a challenge, a token that is base64url. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/acme.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *body = (const char *)data + 1;
  size_t len = size - 1;
  switch (data[0] % 5) {
  case 0: {
    wr_acme_directory d;
    if (wr_acme_parse_directory(body, len, &d) == WR_OK &&
        (!d.new_nonce[0] || strlen(d.new_order) > WR_ACME_URL_MAX))
      abort();
    break;
  }
  case 1: {
    wr_acme_order o;
    if (wr_acme_parse_order(body, len, &o) == WR_OK &&
        (o.n_authz == 0 || o.n_authz > WR_ACME_MAX_AUTHZ || !o.finalize[0]))
      abort();
    break;
  }
  case 2:
  case 3: {
    wr_acme_authz a;
    if (wr_acme_parse_authz(body, len, data[0] % 5 == 2 ? "http-01" : "dns-01", &a) == WR_OK &&
        (!wr_acme_token_valid(a.token) || !a.chall_url[0]))
      abort();
    break;
  }
  default: {
    wr_acme_problem p;
    wr_acme_parse_problem(body, len, &p);
    if (strlen(p.detail) >= sizeof(p.detail)) abort();
  }
  }
  return 0;
}
