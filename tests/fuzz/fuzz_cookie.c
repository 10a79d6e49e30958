/* Fuzzes the Cookie header parser (src/proto/cookie.c): any bytes; a value
 * found lies inside the input and never holds the separator ';'. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/cookie.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *hdr = (const char *)data, *v = NULL;
  size_t vl = 0;
  if (wr_cookie_find(hdr, size, "CF_Authorization", &v, &vl)) {
    if (v < hdr || v + vl > hdr + size) abort();
    if (memchr(v, ';', vl)) abort();
  }
  return 0;
}
