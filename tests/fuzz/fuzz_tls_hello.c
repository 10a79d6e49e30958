/* Fuzzes what the HTTPS front reads from visitors before any TLS session
 * exists (src/proto/tls_hello.c): the ClientHello's server name, whole and
 * cut at every point the first byte picks, and the certificate-name rules
 * applied to the name found. A prefix may only ask for more or fail; the
 * name found must be valid and match itself. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/err.h"
#include "proto/tls_hello.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  char sni[256], part[256];
  if (len < 1) return 0;
  size_t cut = data[0];
  data++;
  len--;
  int rv = wr_tls_hello_sni(data, len, sni, sizeof(sni));
  if (rv == WR_OK && sni[0]) {
    CHECK(wr_tls_name_valid(sni, 0));
    CHECK(wr_tls_name_match(sni, sni));
    char wild[260];
    const char *dot = strchr(sni, '.');
    if (dot) {
      wild[0] = '*';
      memcpy(wild + 1, dot, strlen(dot) + 1);
      (void)wr_tls_name_match(wild, sni);
    }
  }
  if (cut < len) {
    int prv = wr_tls_hello_sni(data, cut, part, sizeof(part));
    CHECK(prv == WR_AGAIN || prv == WR_ERR_PROTO || prv == WR_OK);
    if (rv == WR_OK && prv == WR_OK) CHECK(strcmp(sni, part) == 0);
  }
  /* The input as a certificate name against a host. */
  char name[300];
  size_t n = len < sizeof(name) - 1 ? len : sizeof(name) - 1;
  memcpy(name, data, n);
  name[n] = '\0';
  (void)wr_tls_name_valid(name, 1);
  (void)wr_tls_name_match(name, "app.example.test");
  return 0;
}
