/* Fuzzes the tunnel token decoder (base64, then JSON) and checks the round
 * trip: a token that decodes re-encodes to one that decodes the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/credentials.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wr_credentials c, back;
  char err[256];
  if (wr_token_parse((const char *)data, size, &c, err, sizeof(err)) != 0) return 0;
  char *tok = wr_token_encode(&c);
  if (!tok) abort();
  if (wr_token_parse(tok, strlen(tok), &back, err, sizeof(err)) != 0) abort();
  if (strcmp(c.account_tag, back.account_tag) != 0 || c.secret_len != back.secret_len ||
      memcmp(c.secret, back.secret, c.secret_len) != 0 || !back.has_tunnel_id ||
      (c.has_tunnel_id && memcmp(c.tunnel_id.b, back.tunnel_id.b, 16) != 0) ||
      strcmp(c.endpoint, back.endpoint) != 0)
    abort();
  /* Encoding is canonical: a second round gives the same text. */
  char *again = wr_token_encode(&back);
  if (!again || strcmp(tok, again) != 0) abort();
  free(again);
  free(tok);
  return 0;
}
