/* Fuzzes the tunnel credentials JSON parser. Beyond "no crash, no leak"
 * (ASan), it checks the round trip: whatever parses must serialise, and the
 * serialisation must parse back to the same credentials. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/credentials.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const wr_credentials *a, const wr_credentials *b) {
  return strcmp(a->account_tag, b->account_tag) == 0 && a->secret_len == b->secret_len &&
         memcmp(a->secret, b->secret, a->secret_len) == 0 &&
         memcmp(a->tunnel_id.b, b->tunnel_id.b, 16) == 0 && strcmp(a->endpoint, b->endpoint) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wr_credentials c, back;
  char err[256];
  if (wr_credentials_parse((const char *)data, size, &c, err, sizeof(err)) != 0) return 0;
  char *json = wr_credentials_to_json(&c);
  if (!json) abort();
  if (wr_credentials_parse(json, strlen(json), &back, err, sizeof(err)) != 0) abort();
  /* A missing TunnelID is written as the zero UUID, as cloudflared does. */
  if (!back.has_tunnel_id || !same(&c, &back)) abort();
  free(json);
  return 0;
}
