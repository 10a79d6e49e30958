/* Go's host:port rules for warp-routing dests (src/proto/hostport.c): the
 * captured cloudflared error for a dest with a scheme, and the other
 * branches of net.SplitHostPort / LookupPort. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/hostport.h"
#include "unit.h"

static void ok(const char *in, const char *host, unsigned port) {
  char h[256], err[256] = "";
  uint16_t p = 1;
  if (wr_go_split_host_port(in, strlen(in), h, sizeof(h), &p, err, sizeof(err)) != 0)
    fail_msg("%s: %s", in, err);
  assert_string_equal(h, host);
  assert_int_equal(p, port);
}

static void bad(const char *in, const char *want) {
  char h[256], err[256] = "";
  uint16_t p = 0;
  assert_int_equal(wr_go_split_host_port(in, strlen(in), h, sizeof(h), &p, err, sizeof(err)), -1);
  assert_string_equal(err, want);
}

/* The ConnectResponse error in tcp-dial-error.from-connector.bin is
 * "dial tcp: " + what the split says about tcp-bad-dest's dest. */
static void test_vector_bad_dest(void **state) {
  size_t n;
  uint8_t *v = unit_read_vector("quic/tcp-dial-error.from-connector.bin", &n);
  const char *want = "dial tcp: address tcp://127.0.0.1:9000: too many colons in address";
  char h[64], err[256], msg[300];
  uint16_t p;
  (void)state;
  assert_non_null(memmem(v, n, want, strlen(want)));
  free(v);
  assert_int_equal(wr_go_split_host_port("tcp://127.0.0.1:9000", 20, h, sizeof(h), &p, err,
                                         sizeof(err)),
                   -1);
  snprintf(msg, sizeof(msg), "dial tcp: %s", err);
  assert_string_equal(msg, want);
}

static void test_good(void **state) {
  (void)state;
  ok("127.0.0.1:9000", "127.0.0.1", 9000);
  ok("[::1]:22", "::1", 22);
  ok("[fe80::1%lo]:22", "fe80::1%lo", 22);
  ok("db.internal:5432", "db.internal", 5432);
  ok(":80", "", 80);
  ok("host:", "host", 0); /* Go: an empty port is port 0 */
  ok("host:+80", "host", 80);
  ok("host:0065535", "host", 65535);
  ok("host:ssh", "host", 22); /* /etc/services, as Go reads it */
}

static void test_errors(void **state) {
  (void)state;
  bad("10.0.0.1", "address 10.0.0.1: missing port in address");
  bad("", "missing port in address");
  bad("::1:22", "address ::1:22: too many colons in address");
  bad("[::1]", "address [::1]: missing port in address");
  bad("[::1", "address [::1: missing ']' in address");
  bad("[::1]x:22", "address [::1]x:22: missing port in address");
  bad("[::1]:2:2", "address [::1]:2:2: too many colons in address");
  bad("a[b:1", "address a[b:1: unexpected '[' in address");
  bad("a]b:1", "address a]b:1: unexpected ']' in address");
  bad("host:70000", "address 70000: invalid port");
  bad("host:-1", "address -1: invalid port");
  bad("host:99999999999999", "address 99999999999999: invalid port");
  bad("host:nosuchservice", "lookup tcp/nosuchservice: unknown port");
}

static void test_nul_and_long_host(void **state) {
  char h[8], err[256];
  uint16_t p;
  (void)state;
  assert_int_equal(wr_go_split_host_port("a\0b:80", 6, h, sizeof(h), &p, err, sizeof(err)), -1);
  assert_int_equal(wr_go_split_host_port("verylonghost:80", 15, h, sizeof(h), &p, err,
                                         sizeof(err)),
                   -1);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_TESTS(test_vector_bad_dest, test_good, test_errors, test_nul_and_long_host));
}
