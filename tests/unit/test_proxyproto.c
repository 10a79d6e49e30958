/* PROXY protocol header codec (src/proto/proxyproto.c) against the
 * examples and layouts of HAProxy's proxy-protocol.txt. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "proto/proxyproto.h"
#include "unit.h"

static struct sockaddr_storage addr(const char *ip, uint16_t port) {
  struct sockaddr_storage ss;
  assert_int_equal(wr_proxyproto_addr(ip, strlen(ip), port, &ss), 0);
  return ss;
}

static void expect_v1(const char *src, uint16_t sp, const char *dst, uint16_t dp,
                      const char *want) {
  struct sockaddr_storage s = addr(src, sp), d = addr(dst, dp);
  uint8_t out[WR_PROXYPROTO_MAX];
  int n = wr_proxyproto_write(WR_PROXYPROTO_V1, &s, &d, out, sizeof(out));
  assert_int_equal(n, (int)strlen(want));
  assert_memory_equal(out, want, strlen(want));
}

/* Section 2.1's examples. */
static void test_v1_spec_examples(void **state) {
  (void)state;
  expect_v1("192.168.0.1", 56324, "192.168.0.11", 443,
            "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
  expect_v1("255.255.255.255", 65535, "255.255.255.255", 65535,
            "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");
  /* The worst case: 104 bytes (section 2.1). */
  const char *w = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  char want[128];
  snprintf(want, sizeof(want), "PROXY TCP6 %s %s 65535 65535\r\n", w, w);
  assert_int_equal(strlen(want), 104);
  expect_v1(w, 65535, w, 65535, want);
  expect_v1("2001:db8::1", 1234, "[2001:db8::2]", 22, "PROXY TCP6 2001:db8::1 2001:db8::2 1234 22\r\n");
}

static void test_v1_unknown_and_mixed(void **state) {
  struct sockaddr_storage u, d = addr("10.0.0.1", 80), s6 = addr("::1", 5);
  uint8_t out[WR_PROXYPROTO_MAX];
  (void)state;
  memset(&u, 0, sizeof(u));
  u.ss_family = AF_UNSPEC;
  int n = wr_proxyproto_write(WR_PROXYPROTO_V1, &u, &d, out, sizeof(out));
  assert_int_equal(n, 15);
  assert_memory_equal(out, "PROXY UNKNOWN\r\n", 15);
  /* One family for both: IPv4 becomes IPv4-mapped IPv6. */
  n = wr_proxyproto_write(WR_PROXYPROTO_V1, &s6, &d, out, sizeof(out));
  const char *want = "PROXY TCP6 ::1 ::ffff:10.0.0.1 5 80\r\n";
  assert_int_equal(n, (int)strlen(want));
  assert_memory_equal(out, want, strlen(want));
  /* Too small a buffer, a bad version. */
  assert_int_equal(wr_proxyproto_write(WR_PROXYPROTO_V1, &s6, &d, out, 10), -1);
  assert_int_equal(wr_proxyproto_write(3, &s6, &d, out, sizeof(out)), -1);
}

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* Section 2.2: signature, 0x21 (v2, PROXY), 0x11 (TCP over IPv4), length
 * 12, src addr, dst addr, src port, dst port, all big-endian. */
static void test_v2_tcp4(void **state) {
  struct sockaddr_storage s = addr("192.168.0.1", 56324), d = addr("192.168.0.11", 443);
  uint8_t out[WR_PROXYPROTO_MAX];
  static const uint8_t tail[] = {0x21, 0x11, 0x00, 0x0c, 192, 168, 0,    1,   192,
                                 168,  0,    11,   0xdc, 0x04, 0x01, 0xbb};
  (void)state;
  int n = wr_proxyproto_write(WR_PROXYPROTO_V2, &s, &d, out, sizeof(out));
  assert_int_equal(n, 28);
  assert_memory_equal(out, sig, 12);
  assert_memory_equal(out + 12, tail, sizeof(tail));
  assert_int_equal(wr_proxyproto_write(WR_PROXYPROTO_V2, &s, &d, out, 27), -1);
}

static void test_v2_tcp6_and_unknown(void **state) {
  struct sockaddr_storage s = addr("2001:db8::1", 1), d = addr("10.1.2.3", 2), u;
  uint8_t out[WR_PROXYPROTO_MAX];
  (void)state;
  int n = wr_proxyproto_write(WR_PROXYPROTO_V2, &s, &d, out, sizeof(out));
  assert_int_equal(n, 16 + 36);
  assert_int_equal(out[12], 0x21);
  assert_int_equal(out[13], 0x21); /* TCP over IPv6 */
  assert_int_equal(out[14], 0);
  assert_int_equal(out[15], 36);
  assert_int_equal(out[16], 0x20);
  assert_int_equal(out[17], 0x01);
  assert_int_equal(out[31], 0x01);
  static const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};
  assert_memory_equal(out + 32, mapped, 16);
  assert_int_equal(out[48] << 8 | out[49], 1);
  assert_int_equal(out[50] << 8 | out[51], 2);
  memset(&u, 0, sizeof(u));
  n = wr_proxyproto_write(WR_PROXYPROTO_V2, &u, &d, out, sizeof(out));
  assert_int_equal(n, 16);
  assert_memory_equal(out, sig, 12);
  assert_int_equal(out[12], 0x21);
  assert_int_equal(out[13], 0x00); /* UNSPEC: the receiver ignores the addresses */
  assert_int_equal(out[14], 0);
  assert_int_equal(out[15], 0);
}

static void test_addr_parse(void **state) {
  struct sockaddr_storage ss;
  (void)state;
  assert_int_equal(wr_proxyproto_addr("1.2.3.4", 7, 9, &ss), 0);
  assert_int_equal(ss.ss_family, AF_INET);
  assert_int_equal(wr_proxyproto_addr("[::1]", 5, 9, &ss), 0);
  assert_int_equal(ss.ss_family, AF_INET6);
  assert_int_equal(wr_proxyproto_addr("1.2.3.4x", 8, 9, &ss), -1);
  assert_int_equal(ss.ss_family, AF_UNSPEC);
  assert_int_equal(wr_proxyproto_addr("", 0, 9, &ss), -1);
  assert_int_equal(wr_proxyproto_addr("1.2.3.4", 3, 9, &ss), -1); /* "1.2" */
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_TESTS(test_v1_spec_examples, test_v1_unknown_and_mixed, test_v2_tcp4,
                             test_v2_tcp6_and_unknown, test_addr_parse));
}
