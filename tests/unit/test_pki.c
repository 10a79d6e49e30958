/* Edge PKI: the CA, tunnel-server and origin certificates verify, carry the
 * names cloudflared checks, and have the lifetimes and files promised. */
#include "unit.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "edge/pki.h"
#include "lib/err.h"
#include "lib/file.h"

#define DAY 86400

static gnutls_x509_crt_t load_crt(const char *pem) {
  gnutls_x509_crt_t crt;
  gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
  assert_int_equal(gnutls_x509_crt_init(&crt), 0);
  assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
  return crt;
}

/* Verifies |leaf| against |ca| exactly as a TLS client would (chain + time). */
static unsigned verify_chain(const char *leaf_pem, const char *ca_pem) {
  gnutls_x509_crt_t leaf = load_crt(leaf_pem), ca = load_crt(ca_pem);
  unsigned status = 0xffffffff;
  assert_int_equal(gnutls_x509_crt_list_verify(&leaf, 1, &ca, 1, NULL, 0, 0, &status), 0);
  gnutls_x509_crt_deinit(leaf);
  gnutls_x509_crt_deinit(ca);
  return status;
}

static int has_eku(gnutls_x509_crt_t crt, const char *oid) {
  for (unsigned i = 0;; i++) {
    char buf[128];
    size_t len = sizeof(buf);
    int rc = gnutls_x509_crt_get_key_purpose_oid(crt, i, buf, &len, NULL);
    if (rc < 0) return 0;
    if (strcmp(buf, oid) == 0) return 1;
  }
}

static int has_ip(gnutls_x509_crt_t crt, const char *text) {
  unsigned char bin[16];
  int v6 = strchr(text, ':') != NULL;
  assert_int_equal(inet_pton(v6 ? AF_INET6 : AF_INET, text, bin), 1);
  return gnutls_x509_crt_check_ip(crt, bin, v6 ? 16 : 4, 0) != 0;
}

/* The certificate |pem| (the caller deinits it), checked first: valid for
 * every name of |names| and none of |not_names|, holding every address of
 * |ips| (each list NULL-terminated; NULL: none), for TLS servers, and for
 * TLS clients when |client| is 1, not when 0 (-1: not checked). */
static gnutls_x509_crt_t load_leaf(const char *pem, const char *const *names,
                                   const char *const *not_names, const char *const *ips,
                                   int client) {
  gnutls_x509_crt_t crt = load_crt(pem);
  for (; names && *names; names++) assert_true(gnutls_x509_crt_check_hostname(crt, *names));
  for (; not_names && *not_names; not_names++)
    assert_false(gnutls_x509_crt_check_hostname(crt, *not_names));
  for (; ips && *ips; ips++) assert_true(has_ip(crt, *ips));
  assert_true(has_eku(crt, GNUTLS_KP_TLS_WWW_SERVER));
  if (client >= 0) assert_int_equal(has_eku(crt, GNUTLS_KP_TLS_WWW_CLIENT), client);
  return crt;
}

static char *make_tmpdir(void) {
  char tmpl[32];
  assert_non_null(unit_tmpdir(tmpl, sizeof(tmpl), "wr-pki"));
  return strdup(tmpl);
}

static void test_ca_and_leaf_verify(void **state) {
  char err[256];
  wr_pem_pair ca = {0}, leaf = {0}, other_ca = {0};
  const char *dns[] = {"app.example.test"};
  const char *ips[] = {"192.0.2.1"};
  wr_pki_req careq = {.common_name = "Test CA", .is_ca = 1, .days = 365};
  wr_pki_req req = {.common_name = "leaf", .dns = dns, .n_dns = 1, .ips = ips, .n_ips = 1, .days = 30};
  (void)state;

  assert_int_equal(wr_pki_issue(NULL, &careq, &ca, err, sizeof(err)), WR_OK);
  assert_non_null(strstr(ca.cert, "-----BEGIN CERTIFICATE-----"));
  /* PKCS#8, never "EC PRIVATE KEY": cert.pem may only carry PRIVATE KEY. */
  assert_non_null(strstr(ca.key, "-----BEGIN PRIVATE KEY-----"));
  assert_int_equal(wr_pki_issue(&ca, &req, &leaf, err, sizeof(err)), WR_OK);
  assert_int_equal(verify_chain(leaf.cert, ca.cert), 0);

  /* A different CA must not verify the leaf. */
  assert_int_equal(wr_pki_issue(NULL, &careq, &other_ca, err, sizeof(err)), WR_OK);
  assert_int_not_equal(verify_chain(leaf.cert, other_ca.cert), 0);

  gnutls_x509_crt_t crt = load_leaf(leaf.cert, (const char *const[]){"app.example.test", NULL},
                                    (const char *const[]){"other.example.test", NULL},
                                    (const char *const[]){"192.0.2.1", NULL}, 0);
  unsigned ca_flag = 99;
  assert_int_equal(gnutls_x509_crt_get_basic_constraints(crt, NULL, &ca_flag, NULL), 0);
  assert_int_equal(ca_flag, 0);
  assert_int_equal(gnutls_x509_crt_get_pk_algorithm(crt, NULL), GNUTLS_PK_ECDSA);
  gnutls_x509_crt_deinit(crt);

  wr_pem_pair_free(&ca);
  wr_pem_pair_free(&leaf);
  wr_pem_pair_free(&other_ca);
  assert_null(ca.cert);
  assert_null(ca.key);
}

static void test_bad_requests(void **state) {
  char err[256];
  wr_pem_pair p = {0}, ca = {0};
  const char *bad_ip[] = {"not-an-ip"};
  wr_pki_req leaf_self = {.common_name = "x", .days = 1};
  wr_pki_req careq = {.common_name = "CA", .is_ca = 1, .days = 10};
  wr_pki_req badip = {.common_name = "x", .ips = bad_ip, .n_ips = 1, .days = 1};
  wr_pki_req nocn = {.days = 1, .is_ca = 1};
  (void)state;
  assert_int_equal(wr_pki_issue(NULL, &leaf_self, &p, err, sizeof(err)), WR_ERR_INVAL);
  assert_int_equal(wr_pki_issue(NULL, &nocn, &p, err, sizeof(err)), WR_ERR_INVAL);
  assert_int_equal(wr_pki_issue(NULL, &careq, &ca, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_pki_issue(&ca, &badip, &p, err, sizeof(err)), WR_ERR_INVAL);
  assert_non_null(strstr(err, "not-an-ip"));
  /* An issuer whose key is not its certificate's is refused. */
  wr_pem_pair other = {0}, mixed;
  assert_int_equal(wr_pki_issue(NULL, &careq, &other, err, sizeof(err)), WR_OK);
  mixed.cert = ca.cert;
  mixed.key = other.key;
  wr_pki_req leaf = {.common_name = "leaf", .days = 1};
  assert_int_equal(wr_pki_issue(&mixed, &leaf, &p, err, sizeof(err)), WR_ERR_CRYPTO);
  assert_null(p.cert);
  wr_pem_pair_free(&ca);
  wr_pem_pair_free(&other);
}

/* A leaf asked to outlive its CA gets the CA's notAfter. */
static void test_leaf_clamped_to_issuer(void **state) {
  char err[256];
  wr_pem_pair ca = {0}, leaf = {0};
  wr_pki_req careq = {.common_name = "short CA", .is_ca = 1, .days = 10};
  wr_pki_req req = {.common_name = "long leaf", .days = 1000};
  (void)state;
  assert_int_equal(wr_pki_issue(NULL, &careq, &ca, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_pki_issue(&ca, &req, &leaf, err, sizeof(err)), WR_OK);
  gnutls_x509_crt_t c = load_crt(ca.cert), l = load_crt(leaf.cert);
  assert_true(gnutls_x509_crt_get_expiration_time(l) <= gnutls_x509_crt_get_expiration_time(c));
  gnutls_x509_crt_deinit(c);
  gnutls_x509_crt_deinit(l);
  wr_pem_pair_free(&ca);
  wr_pem_pair_free(&leaf);
}

static void check_mode(const char *dir, const char *name, mode_t want) {
  char path[512];
  struct stat st;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, want);
}

static void test_init_dir(void **state) {
  char err[256];
  char *dir = make_tmpdir();
  wr_pem_pair ca = {0}, server = {0}, origin_ca = {0};
  (void)state;
  assert_int_equal(wr_pki_init_dir(dir, "example.test", err, sizeof(err)), WR_OK);
  check_mode(dir, WR_PKI_CA_CERT, 0644);
  check_mode(dir, WR_PKI_CA_KEY, 0600);
  check_mode(dir, WR_PKI_SERVER_CERT, 0644);
  check_mode(dir, WR_PKI_SERVER_KEY, 0600);
  check_mode(dir, WR_PKI_ORIGIN_CA_CERT, 0644);
  check_mode(dir, WR_PKI_ORIGIN_CA_KEY, 0600);

  assert_int_equal(wr_pki_load_pair(dir, WR_PKI_CA_CERT, WR_PKI_CA_KEY, &ca, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_pki_load_pair(dir, WR_PKI_SERVER_CERT, WR_PKI_SERVER_KEY, &server, err, sizeof(err)),
                   WR_OK);
  assert_int_equal(
      wr_pki_load_pair(dir, WR_PKI_ORIGIN_CA_CERT, WR_PKI_ORIGIN_CA_KEY, &origin_ca, err, sizeof(err)),
      WR_OK);
  /* A mismatched pair is detected. */
  wr_pem_pair bad = {0};
  assert_int_equal(wr_pki_load_pair(dir, WR_PKI_CA_CERT, WR_PKI_SERVER_KEY, &bad, err, sizeof(err)),
                   WR_ERR_CRYPTO);
  assert_null(bad.cert);

  assert_int_equal(verify_chain(server.cert, ca.cert), 0);
  /* The two roots are independent. */
  assert_int_not_equal(verify_chain(server.cert, origin_ca.cert), 0);

  gnutls_x509_crt_t crt =
      load_leaf(server.cert,
                (const char *const[]){"quic.cftunnel.com", "h2.cftunnel.com", "cftunnel.com",
                                      "probe.cftunnel.com", "localhost", "example.test",
                                      "anything.example.test", NULL},
                (const char *const[]){"example.org", "a.b.example.test", NULL},
                (const char *const[]){"127.0.0.1", "::1", NULL}, -1);
  gnutls_x509_crt_deinit(crt);

  /* init refuses to replace an existing CA. */
  assert_int_equal(wr_pki_init_dir(dir, "example.test", err, sizeof(err)), WR_ERR_EXISTS);
  assert_non_null(strstr(err, "ca.key"));

  /* Renewal replaces the server certificate, still under the same CA. */
  assert_int_equal(wr_pki_issue_tunnel_server(dir, "example.test", err, sizeof(err)), WR_OK);
  wr_pem_pair renewed = {0};
  assert_int_equal(
      wr_pki_load_pair(dir, WR_PKI_SERVER_CERT, WR_PKI_SERVER_KEY, &renewed, err, sizeof(err)), WR_OK);
  assert_string_not_equal(renewed.cert, server.cert);
  assert_int_equal(verify_chain(renewed.cert, ca.cert), 0);

  wr_pem_pair_free(&renewed);
  wr_pem_pair_free(&ca);
  wr_pem_pair_free(&server);
  wr_pem_pair_free(&origin_ca);
  unit_rm_rf(dir);
  free(dir);
}

static void test_origin_cert(void **state) {
  char err[256];
  char *dir = make_tmpdir();
  wr_pem_pair origin = {0}, origin_ca = {0}, edge_ca = {0};
  time_t now = time(NULL);
  (void)state;
  assert_int_equal(wr_pki_init_dir(dir, "example.test", err, sizeof(err)), WR_OK);
  assert_int_equal(wr_pki_issue_origin_cert(dir, "example.test", &origin, err, sizeof(err)), WR_OK);
  assert_non_null(strstr(origin.key, "-----BEGIN PRIVATE KEY-----"));
  assert_int_equal(
      wr_pki_load_pair(dir, WR_PKI_ORIGIN_CA_CERT, WR_PKI_ORIGIN_CA_KEY, &origin_ca, err, sizeof(err)),
      WR_OK);
  assert_int_equal(wr_pki_load_pair(dir, WR_PKI_CA_CERT, WR_PKI_CA_KEY, &edge_ca, err, sizeof(err)),
                   WR_OK);
  assert_int_equal(verify_chain(origin.cert, origin_ca.cert), 0);
  assert_int_not_equal(verify_chain(origin.cert, edge_ca.cert), 0);

  gnutls_x509_crt_t crt =
      load_leaf(origin.cert, (const char *const[]){"example.test", "www.example.test", NULL},
                (const char *const[]){"quic.cftunnel.com", NULL}, NULL, 1);
  /* Ten years (3650 days) from now, give or take the test's own runtime. */
  time_t exp = gnutls_x509_crt_get_expiration_time(crt);
  assert_true(exp >= now + 3650L * DAY - 60 && exp <= now + 3650L * DAY + 60);
  time_t act = gnutls_x509_crt_get_activation_time(crt);
  assert_true(act <= now && act >= now - 3600);
  gnutls_x509_crt_deinit(crt);

  wr_pem_pair_free(&origin);
  wr_pem_pair_free(&origin_ca);
  wr_pem_pair_free(&edge_ca);
  unit_rm_rf(dir);
  free(dir);
}

static void test_missing_dir(void **state) {
  char err[256];
  wr_pem_pair p = {0};
  (void)state;
  assert_int_equal(wr_pki_issue_origin_cert("/nonexistent-wr-dir", "example.test", &p, err, sizeof(err)),
                   WR_ERR_IO);
  assert_non_null(strstr(err, "/nonexistent-wr-dir/origin-ca.pem"));
}

int main(void) {
  return UNIT_RUN_NAME(
      "pki", NULL, NULL,
      UNIT_TESTS(test_ca_and_leaf_verify, test_bad_requests, test_leaf_clamped_to_issuer,
                 test_init_dir, test_origin_cert, test_missing_dir));
}
