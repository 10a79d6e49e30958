/* Fuzzes the cert.pem reader (a port of Go's encoding/pem scanning plus the
 * token JSON) and checks that a certificate we accept re-encodes to one we
 * accept with the same values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/credentials.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wr_origin_cert c, back;
  char err[512];
  if (wr_origin_cert_parse((const char *)data, size, &c, err, sizeof(err)) != 0) return 0;
  char *pem = wr_origin_cert_encode(&c, NULL, NULL);
  if (!pem) abort();
  if (wr_origin_cert_parse(pem, strlen(pem), &back, err, sizeof(err)) != 0) abort();
  if (memcmp(&c, &back, sizeof(c)) != 0) abort();
  free(pem);
  return 0;
}
