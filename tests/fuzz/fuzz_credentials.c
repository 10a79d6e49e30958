/* Fuzzes the tunnel credentials JSON parser. Beyond "no crash, no leak"
 * (ASan), it checks the round trip (cred_roundtrip.h): whatever parses must
 * serialise, and the serialisation must parse back to the same credentials. */
#include <stdint.h>

#include "lib/credentials.h"
#include "cred_roundtrip.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cred_round_trip(wr_credentials_parse, wr_credentials_to_json, data, size);
  return 0;
}
