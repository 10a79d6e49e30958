/* The round trip both credential codecs are fuzzed for (fuzz_credentials.c:
 * the credentials file's JSON; fuzz_token.c: the token, base64 of JSON):
 * whatever parses must encode; the encoding must parse back to the same
 * credentials (a missing TunnelID comes back as the zero UUID, which is what
 * cloudflared writes too) and encode again to the same text. Any break
 * aborts, so libFuzzer keeps the input. Header-only, as fuzz.h. */
#ifndef WR_FUZZ_CRED_ROUNDTRIP_H
#define WR_FUZZ_CRED_ROUNDTRIP_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/credentials.h"

typedef int (*cred_parse_fn)(const char *in, size_t len, wr_credentials *out, char *err,
                             size_t errlen);
typedef char *(*cred_encode_fn)(const wr_credentials *c);

static int cred_same(const wr_credentials *c, const wr_credentials *back) {
  static const wr_uuid zero;
  const wr_uuid *id = c->has_tunnel_id ? &c->tunnel_id : &zero;
  return strcmp(c->account_tag, back->account_tag) == 0 && c->secret_len == back->secret_len &&
         memcmp(c->secret, back->secret, c->secret_len) == 0 && back->has_tunnel_id &&
         memcmp(id->b, back->tunnel_id.b, 16) == 0 && strcmp(c->endpoint, back->endpoint) == 0;
}

static void cred_round_trip(cred_parse_fn parse, cred_encode_fn encode, const uint8_t *data,
                            size_t size) {
  wr_credentials c, back;
  char err[256];
  if (parse((const char *)data, size, &c, err, sizeof(err)) != 0) return;
  char *text = encode(&c);
  if (!text) abort();
  if (parse(text, strlen(text), &back, err, sizeof(err)) != 0 || !cred_same(&c, &back)) abort();
  char *again = encode(&back);
  if (!again || strcmp(text, again) != 0) abort();
  free(again);
  free(text);
}

#endif
