/* The built-in Cloudflare roots (connector/cloudflare_roots.h): the
 * generated string is the whole PEM file, every certificate parses, and
 * each is a CloudFlare CA certificate; the TLS and QUIC client credentials
 * accept them next to the system store. */
#include "unit.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>

#include "connector/cloudflare_roots.h"
#include "lib/err.h"
#include "net/quic.h"
#include "net/tls.h"

static void test_roots_parse(void **state) {
  (void)state;
  size_t len = 0;
  const char *pem = wr_cloudflare_roots_pem(&len);
  assert_non_null(pem);
  assert_int_equal(strlen(pem), len);
  gnutls_x509_crt_t crts[8];
  unsigned n = 8;
  gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
  assert_true(gnutls_x509_crt_list_import(crts, &n, &d, GNUTLS_X509_FMT_PEM, 0) >= 0);
  assert_int_equal(n, 3);
  for (unsigned i = 0; i < n; i++) {
    char dn[512];
    size_t dnlen = sizeof(dn);
    assert_int_equal(gnutls_x509_crt_get_dn(crts[i], dn, &dnlen), 0);
    assert_non_null(strstr(dn, "O=CloudFlare\\, Inc."));
    unsigned ca = 0;
    assert_true(gnutls_x509_crt_get_basic_constraints(crts[i], NULL, &ca, NULL) >= 0);
    assert_int_equal(ca, 1);
    gnutls_x509_crt_deinit(crts[i]);
  }
}

static void test_creds_take_them(void **state) {
  (void)state;
  size_t len = 0;
  const char *pem = wr_cloudflare_roots_pem(&len);
  char err[256];
  wr_tls_client_config tc = {.extra_ca_pem = pem, .extra_ca_pem_len = len};
  wr_tls_creds *c = NULL;
  assert_int_equal(wr_tls_creds_client(&tc, &c, err, sizeof(err)), WR_OK);
  wr_tls_creds_free(c);
  wr_quic_config qc = {.extra_ca_pem = pem, .extra_ca_pem_len = len};
  wr_quic_tls *q = NULL;
  assert_int_equal(wr_quic_tls_new(WR_QUIC_CLIENT, &qc, &q, err, sizeof(err)), WR_OK);
  wr_quic_tls_free(q);
}

int main(void) {
  return UNIT_RUN(NULL, NULL, UNIT_TESTS(test_roots_parse, test_creds_take_them));
}
