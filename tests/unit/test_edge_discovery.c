/* Edge discovery's pure parts (net/edge_discovery.h): the SRV name per
 * region, --edge-ip-version, the per-region family choice and the spread of
 * HA connections over two regions. The DNS part is tested end to end
 * (tests/e2e/test_edge_discovery.py). */
#include "unit.h"

#include <arpa/inet.h>
#include <string.h>

#include "net/edge_discovery.h"

static void add(wr_edge_region *r, const char *ip) {
  struct sockaddr_storage *ss = &r->addr[r->n++];
  memset(ss, 0, sizeof(*ss));
  if (strchr(ip, ':')) {
    ss->ss_family = AF_INET6;
    inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)ss)->sin6_addr);
  } else {
    ss->ss_family = AF_INET;
    inet_pton(AF_INET, ip, &((struct sockaddr_in *)ss)->sin_addr);
  }
}

static int is(const struct sockaddr_storage *ss, const char *ip) {
  char buf[64];
  const void *a = ss->ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                                           : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
  inet_ntop(ss->ss_family, a, buf, sizeof(buf));
  return strcmp(buf, ip) == 0;
}

static void test_srv_name(void **state) {
  char n[128];
  (void)state;
  assert_int_equal(wr_edge_srv_name(NULL, n, sizeof(n)), 0);
  assert_string_equal(n, "_v2-origintunneld._tcp.argotunnel.com");
  assert_int_equal(wr_edge_srv_name("", n, sizeof(n)), 0);
  assert_string_equal(n, "_v2-origintunneld._tcp.argotunnel.com");
  assert_int_equal(wr_edge_srv_name("us", n, sizeof(n)), 0);
  assert_string_equal(n, "_us-v2-origintunneld._tcp.argotunnel.com");
  assert_int_equal(wr_edge_srv_name("us", n, 10), -1);
}

static void test_ip_version(void **state) {
  int v = -1;
  (void)state;
  assert_int_equal(wr_edge_ip_version_parse("auto", &v), 0);
  assert_int_equal(v, WR_EDGE_IP_AUTO);
  assert_int_equal(wr_edge_ip_version_parse("4", &v), 0);
  assert_int_equal(v, WR_EDGE_IP_V4);
  assert_int_equal(wr_edge_ip_version_parse("6", &v), 0);
  assert_int_equal(v, WR_EDGE_IP_V6);
  assert_int_equal(wr_edge_ip_version_parse("5", &v), -1);
  assert_int_equal(wr_edge_ip_version_parse("", &v), -1);
  assert_int_equal(wr_edge_ip_version_parse(NULL, &v), -1);
}

static void test_filter(void **state) {
  wr_edge_region r = {0};
  (void)state;
  add(&r, "2001:db8::1");
  add(&r, "192.0.2.1");
  add(&r, "2001:db8::2");
  wr_edge_region a = r, f4 = r, f6 = r;
  /* auto: the family of the first address. */
  wr_edge_region_filter(&a, WR_EDGE_IP_AUTO);
  assert_int_equal(a.n, 2);
  assert_true(is(&a.addr[0], "2001:db8::1") && is(&a.addr[1], "2001:db8::2"));
  wr_edge_region_filter(&f4, WR_EDGE_IP_V4);
  assert_int_equal(f4.n, 1);
  assert_true(is(&f4.addr[0], "192.0.2.1"));
  wr_edge_region_filter(&f6, WR_EDGE_IP_V6);
  assert_int_equal(f6.n, 2);
  wr_edge_region e = {0};
  wr_edge_region_filter(&e, WR_EDGE_IP_AUTO);
  assert_int_equal(e.n, 0);
}

static void test_spread(void **state) {
  wr_edge_region r1 = {0}, r2 = {0};
  struct sockaddr_storage out[4];
  (void)state;
  add(&r1, "192.0.2.1");
  add(&r1, "192.0.2.2");
  add(&r1, "192.0.2.3");
  add(&r2, "198.51.100.1");
  add(&r2, "198.51.100.2");
  /* Each time the region with more unused addresses (region 1 on a tie). */
  assert_int_equal(wr_edge_spread(&r1, &r2, out, 4), 4);
  assert_true(is(&out[0], "192.0.2.1") && is(&out[1], "192.0.2.2"));
  assert_true(is(&out[2], "198.51.100.1") && is(&out[3], "192.0.2.3"));
  /* Two and two: alternating. */
  r1.n = 2;
  assert_int_equal(wr_edge_spread(&r1, &r2, out, 4), 4);
  assert_true(is(&out[0], "192.0.2.1") && is(&out[1], "198.51.100.1"));
  assert_true(is(&out[2], "192.0.2.2") && is(&out[3], "198.51.100.2"));
  r1.n = 3;
  /* One address in region 2: region 1 while it has more (or as many). */
  r2.n = 1;
  assert_int_equal(wr_edge_spread(&r1, &r2, out, 4), 4);
  assert_true(is(&out[0], "192.0.2.1") && is(&out[1], "192.0.2.2"));
  assert_true(is(&out[2], "192.0.2.3") && is(&out[3], "198.51.100.1"));
  /* Fewer addresses than connections. */
  r1.n = 1;
  assert_int_equal(wr_edge_spread(&r1, &r2, out, 4), 2);
  r1.n = 0;
  r2.n = 0;
  assert_int_equal(wr_edge_spread(&r1, &r2, out, 4), 0);
}

int main(void) {
  return UNIT_RUN(NULL, NULL, UNIT_TESTS(test_srv_name, test_ip_version, test_filter, test_spread));
}
