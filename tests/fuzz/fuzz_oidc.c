/* Fuzzes the OpenID Connect parsers of a provider's answers (src/proto/
 * oidc.c): the first input byte picks the discovery document or the token
 * response parser. What they return is checked against their contracts:
 * a discovery document that parses has four http(s) URLs; a token answer
 * that parses has a non-empty id_token. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/oidc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_url(const char *s) { return s && (!strncmp(s, "https://", 8) || !strncmp(s, "http://", 7)); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  if (size < 1) return 0;
  const char *json = (const char *)data + 1;
  if (data[0] & 1) {
    wr_oidc_endpoints e;
    int rv = wr_oidc_discovery_parse(json, size - 1, &e, err, sizeof(err));
    if (rv == WR_OK) {
      if (!is_url(e.issuer) || !is_url(e.authorization_endpoint) || !is_url(e.token_endpoint) || !is_url(e.jwks_uri))
        abort();
      wr_oidc_endpoints_free(&e);
    } else if (e.issuer || e.jwks_uri) {
      abort();
    }
  } else {
    char *tok = NULL;
    int rv = wr_oidc_token_parse(json, size - 1, &tok, err, sizeof(err));
    if ((rv == WR_OK) != (tok != NULL) || (tok && !*tok)) abort();
    free(tok);
  }
  return 0;
}
