/* Fuzzes the tunnel token decoder (base64, then JSON) and checks the round
 * trip (cred_roundtrip.h): a token that decodes re-encodes to one that
 * decodes the same, and encoding is canonical. */
#include <stdint.h>

#include "lib/credentials.h"
#include "cred_roundtrip.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cred_round_trip(wr_token_parse, wr_token_encode, data, size);
  return 0;
}
