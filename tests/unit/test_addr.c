/* HOST:PORT parsing, resolving and formatting (net/addr.h). */
#include "unit.h"

#include <arpa/inet.h>
#include <string.h>
#include <uv.h>

#include "net/addr.h"

static void test_split(void **state) {
  char host[64];
  unsigned port;
  (void)state;
  assert_int_equal(wr_addr_split("127.0.0.1:7844", host, sizeof(host), &port), 0);
  assert_string_equal(host, "127.0.0.1");
  assert_int_equal(port, 7844);
  assert_int_equal(wr_addr_split("[::1]:0", host, sizeof(host), &port), 0);
  assert_string_equal(host, "::1");
  assert_int_equal(port, 0);
  assert_int_equal(wr_addr_split("localhost:2000", host, sizeof(host), &port), 0);
  assert_string_equal(host, "localhost");
  assert_int_equal(wr_addr_split(":8080", host, sizeof(host), &port), 0);
  assert_string_equal(host, "");
  /* Refused: no port, bad port, unbracketed IPv6, host too long. */
  assert_int_equal(wr_addr_split("localhost", host, sizeof(host), &port), -1);
  assert_int_equal(wr_addr_split("a:", host, sizeof(host), &port), -1);
  assert_int_equal(wr_addr_split("a:65536", host, sizeof(host), &port), -1);
  assert_int_equal(wr_addr_split("a:80x", host, sizeof(host), &port), -1);
  assert_int_equal(wr_addr_split("::1:80", host, sizeof(host), &port), -1);
  assert_int_equal(wr_addr_split("abcdefgh:1", host, 8, &port), -1);
}

static void test_resolve_and_format(void **state) {
  struct sockaddr_storage ss[4];
  char err[128], out[64];
  (void)state;
  assert_int_equal(wr_addr_resolve("--edge", "127.0.0.1:7844", SOCK_DGRAM, 0, ss, 4, err,
                                   sizeof(err)),
                   1);
  wr_addr_format(&ss[0], out, sizeof(out));
  assert_string_equal(out, "127.0.0.1:7844");
  assert_int_equal(wr_addr_resolve("--metrics", "[::1]:9", SOCK_STREAM, 1, ss, 4, err,
                                   sizeof(err)),
                   1);
  wr_addr_format(&ss[0], out, sizeof(out));
  assert_string_equal(out, "[::1]:9");
  /* localhost comes from /etc/hosts; with prefer_v4 the IPv4 one is first. */
  int n = wr_addr_resolve("--metrics", "localhost:0", SOCK_STREAM, 1, ss, 4, err, sizeof(err));
  assert_true(n >= 1);
  assert_int_equal(ss[0].ss_family, AF_INET);
  assert_int_equal(wr_addr_resolve("--edge", "nope", SOCK_DGRAM, 0, ss, 4, err, sizeof(err)), -1);
  assert_string_equal(err, "--edge \"nope\" is not HOST:PORT");
}

static void test_ip_text(void **state) {
  static const uint8_t v4[4] = {192, 0, 2, 7};
  static const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 1};
  static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
  char out[64];
  (void)state;
  wr_addr_ip_text(v4, sizeof(v4), out, sizeof(out));
  assert_string_equal(out, "192.0.2.7");
  wr_addr_ip_text(mapped, sizeof(mapped), out, sizeof(out));
  assert_string_equal(out, "198.51.100.1"); /* v4-mapped: as IPv4 */
  wr_addr_ip_text(v6, sizeof(v6), out, sizeof(out));
  assert_string_equal(out, "2001:db8::1");
  wr_addr_ip_text(v6, 5, out, sizeof(out));
  assert_string_equal(out, "");
  /* wr_addr_ip16: the 16-byte form of a socket address. */
  struct sockaddr_in s4;
  struct sockaddr_in6 s6;
  uint8_t ip16[16];
  uv_ip4_addr("198.51.100.1", 7844, &s4);
  assert_int_equal(wr_addr_ip16((struct sockaddr *)&s4, ip16), 0);
  assert_memory_equal(ip16, mapped, 16);
  uv_ip6_addr("2001:db8::1", 7844, &s6);
  assert_int_equal(wr_addr_ip16((struct sockaddr *)&s6, ip16), 0);
  assert_memory_equal(ip16, v6, 16);
  assert_int_equal(wr_addr_ip16(NULL, ip16), -1);
  assert_memory_equal(ip16, (uint8_t[16]){0}, 16);
}

/* wr_addr_source_key of |ip| (IPv4 or IPv6) with |port|, into |key|. */
static void source_key_of(const char *ip, int port, uint8_t *key) {
  struct sockaddr_storage ss;
  if (strchr(ip, ':'))
    assert_int_equal(uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss), 0);
  else
    assert_int_equal(uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss), 0);
  assert_int_equal(wr_addr_source_key((struct sockaddr *)&ss, key), 0);
}

static void test_source_key(void **state) {
  (void)state;
  uint8_t a[WR_ADDR_SOURCE_KEY_LEN], b[WR_ADDR_SOURCE_KEY_LEN];
  char name[WR_ADDR_SOURCE_NAME_MAX];
  struct sockaddr_in s4;
  struct sockaddr_in6 s6;
  static const struct {
    const char *a, *b;
    int port_a, port_b, same;
  } pairs[] = {
      /* The same host arriving v4-mapped on an IPv6 socket is the same source. */
      {"127.0.0.2", "::ffff:127.0.0.2", 1, 2, 1},
      {"127.0.0.2", "127.0.0.3", 1, 1, 0},
      /* IPv6: one source per /64, whatever the interface half. */
      {"2001:db8:1:2::1", "2001:db8:1:2:ffff:eeee:dddd:9", 1, 1, 1},
      {"2001:db8:1:2::1", "2001:db8:1:3::1", 1, 1, 0},
      /* ::/64 is not the IPv4 space. */
      {"::2", "0.0.0.2", 1, 1, 0},
  };
  for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
    source_key_of(pairs[i].a, pairs[i].port_a, a);
    source_key_of(pairs[i].b, pairs[i].port_b, b);
    if (pairs[i].same) assert_memory_equal(a, b, sizeof(a));
    else assert_memory_not_equal(a, b, sizeof(a));
  }
  static const struct {
    const char *ip, *name;
  } names[] = {{"127.0.0.2", "127.0.0.2"}, {"2001:db8:1:2::1", "2001:db8:1:2::/64"}};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    source_key_of(names[i].ip, 1, a);
    wr_addr_source_name(a, name, sizeof(name));
    assert_string_equal(name, names[i].name);
  }
  /* Same source, as the tunnel server's unregistered-connection cap asks. */
  uv_ip4_addr("127.0.0.2", 1, &s4);
  uv_ip6_addr("::ffff:127.0.0.2", 2, &s6);
  assert_true(wr_addr_same_source((struct sockaddr *)&s4, (struct sockaddr *)&s6));
  assert_false(wr_addr_same_source((struct sockaddr *)&s4, NULL));
  struct sockaddr other = {.sa_family = AF_UNIX};
  assert_false(wr_addr_same_source(&other, &other));
  assert_int_equal(wr_addr_source_key(&other, a), -1);
}

int main(void) {
  return UNIT_RUN(NULL, NULL, UNIT_TESTS(test_source_key, test_split, test_resolve_and_format,
                                         test_ip_text));
}
