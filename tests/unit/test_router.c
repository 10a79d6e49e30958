/* The edge router: longest-prefix match, the flow hash table, the UDP/IP
 * and destination-unreachable builders, and the router's answers to
 * packets it cannot route (with a real store and tunnel server, no
 * connector). */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edge/router.h"
#include "edge/store_async.h"
#include "edge/router_int.h"
#include "edge/store.h"
#include "edge/tunnel_server.h"
#include "lib/err.h"
#include "proto/ippacket.h"
#include "proto/udppacket.h"

static wr_ipaddr ip(const char *s) {
  wr_ipaddr a;
  memset(&a, 0, sizeof(a));
  assert_int_equal(wr_ipaddr_parse(s, &a), 0);
  return a;
}

static wr_ip_route row(const char *net, const char *tunnel) {
  wr_ip_route r;
  memset(&r, 0, sizeof(r));
  snprintf(r.network, sizeof(r.network), "%s", net);
  snprintf(r.tunnel_id, sizeof(r.tunnel_id), "%s", tunnel);
  snprintf(r.id, sizeof(r.id), "route-%s", tunnel);
  return r;
}

static const char *look(const wr__rtable *t, const char *addr) {
  wr_ipaddr a = ip(addr);
  const wr__rt_route *r = wr__rtable_lookup(t, &a);
  return r ? r->route.tunnel_id : "-";
}

static void test_lpm(void **state) {
  (void)state;
  wr_ip_route rows[] = {row("10.0.0.0/8", "A"),      row("10.99.0.0/24", "B"),
                        row("10.99.0.5/32", "C"),    row("0.0.0.0/0", "D"),
                        row("fd00::/8", "E"),        row("fd99::/64", "F"),
                        row("10.99.0.0/24", "dup"),  row("not a network", "bad"),
                        row("192.168.1.77/16", "G")};
  wr__rtable t;
  assert_int_equal(wr__rtable_build(&t, rows, sizeof(rows) / sizeof(rows[0])), WR_OK);
  assert_int_equal(t.nroutes, 8); /* the unparsable row is skipped */
  assert_string_equal(look(&t, "10.99.0.5"), "C");
  assert_string_equal(look(&t, "10.99.0.6"), "B"); /* the first of a duplicate network */
  assert_string_equal(look(&t, "10.98.0.1"), "A");
  assert_string_equal(look(&t, "11.0.0.1"), "D");
  assert_string_equal(look(&t, "192.168.200.1"), "G"); /* host bits cleared */
  assert_string_equal(look(&t, "fd99::5"), "F");
  assert_string_equal(look(&t, "fd98::5"), "E");
  assert_string_equal(look(&t, "2001:db8::1"), "-"); /* no IPv6 default */
  wr__rtable_free(&t);

  /* Many routes: every /24 of 10.0.0.0/16 plus hosts, each found. */
  size_t n = 256 + 256;
  wr_ip_route *many = calloc(n, sizeof(*many));
  char net[64], tun[40];
  for (size_t i = 0; i < 256; i++) {
    snprintf(net, sizeof(net), "10.0.%zu.0/24", i);
    snprintf(tun, sizeof(tun), "net%zu", i);
    many[i] = row(net, tun);
    snprintf(net, sizeof(net), "10.0.%zu.9", i);
    snprintf(tun, sizeof(tun), "host%zu", i);
    many[256 + i] = row(net, tun);
  }
  wr__rtable_build(&t, many, n);
  assert_int_equal(t.nlevels[0], 2);
  for (size_t i = 0; i < 256; i++) {
    char a[32], want[40];
    snprintf(a, sizeof(a), "10.0.%zu.8", i);
    snprintf(want, sizeof(want), "net%zu", i);
    assert_string_equal(look(&t, a), want);
    snprintf(a, sizeof(a), "10.0.%zu.9", i);
    snprintf(want, sizeof(want), "host%zu", i);
    assert_string_equal(look(&t, a), want);
  }
  assert_string_equal(look(&t, "10.1.0.9"), "-");
  wr__rtable_free(&t);
  free(many);

  wr__rtable_build(&t, NULL, 0);
  assert_string_equal(look(&t, "10.0.0.1"), "-");
  wr__rtable_free(&t);
}

typedef struct item {
  wr__hent h;
  int v;
} item;

static void test_flow_table(void **state) {
  (void)state;
  wr__htab h;
  wr__htab_init(&h);
  enum { N = 3000 };
  item *items = calloc(N, sizeof(*items));
  wr_ipaddr src = ip("10.98.0.1"), dst = ip("10.99.0.5"), src6 = ip("fd98::1");
  uint8_t key[WR__KEY_MAX];
  for (int i = 0; i < N; i++) {
    size_t kl = wr__flow_key(key, i % 2 ? WR_ROUTER_UDP : WR_ROUTER_ICMP, i % 3 ? &src : &src6,
                             (uint16_t)i, &dst, 53);
    assert_null(wr__htab_get(&h, key, kl));
    items[i].v = i;
    wr__htab_put(&h, &items[i].h, key, kl);
  }
  assert_int_equal(h.n, N);
  for (int i = 0; i < N; i++) {
    size_t kl = wr__flow_key(key, i % 2 ? WR_ROUTER_UDP : WR_ROUTER_ICMP, i % 3 ? &src : &src6,
                             (uint16_t)i, &dst, 53);
    item *it = (item *)wr__htab_get(&h, key, kl);
    assert_non_null(it);
    assert_int_equal(it->v, i);
    /* The same ports under the other kind are another flow. */
    kl = wr__flow_key(key, i % 2 ? WR_ROUTER_ICMP : WR_ROUTER_UDP, i % 3 ? &src : &src6,
                      (uint16_t)i, &dst, 53);
    assert_null(wr__htab_get(&h, key, kl));
  }
  for (int i = 0; i < N; i += 2) wr__htab_del(&h, &items[i].h);
  assert_int_equal(h.n, N / 2);
  for (int i = 0; i < N; i++) {
    size_t kl = wr__flow_key(key, i % 2 ? WR_ROUTER_UDP : WR_ROUTER_ICMP, i % 3 ? &src : &src6,
                             (uint16_t)i, &dst, 53);
    wr__hent *e = wr__htab_get(&h, key, kl);
    if (i % 2)
      assert_ptr_equal(e, &items[i].h);
    else
      assert_null(e);
  }
  wr__htab_free(&h);
  free(items);
}

/* The sum over pseudo-header + UDP of a correct datagram folds to 0xffff. */
static void check_udp(const uint8_t *pkt, int n, const char *src, const char *dst,
                      const char *payload) {
  wr_ip_packet p;
  wr_udp u;
  assert_true(n > 0);
  assert_int_equal(wr_ip_decode(pkt, (size_t)n, &p), 0);
  assert_int_equal(p.truncated, 0);
  assert_int_equal(wr_udp_decode(&p, &u), 0);
  wr_ipaddr s = ip(src), d = ip(dst);
  assert_true(wr_ipaddr_equal(&p.src, &s));
  assert_true(wr_ipaddr_equal(&p.dst, &d));
  assert_int_equal(u.sport, 9053);
  assert_int_equal(u.dport, 40000);
  assert_int_equal(u.payload_len, strlen(payload));
  assert_memory_equal(u.payload, payload, strlen(payload));
  assert_int_equal(u.checksum, wr_udp_checksum(&s, &d, p.payload, p.payload_len));
  if (p.version == 4) assert_int_equal(wr_inet_checksum(pkt, 20), 0);
}

static void test_udp_builder(void **state) {
  (void)state;
  uint8_t pkt[256];
  wr_ipaddr a = ip("10.99.0.5"), b = ip("10.98.0.1"), a6 = ip("fd99::5"), b6 = ip("fd98::1");
  int n = wr_udp_build(&a, 9053, &b, 40000, 64, (const uint8_t *)"echo:hi", 7, pkt, sizeof(pkt));
  assert_int_equal(n, 20 + 8 + 7);
  check_udp(pkt, n, "10.99.0.5", "10.98.0.1", "echo:hi");
  /* A known datagram: 10.99.0.5:9053 -> 10.98.0.1:40000 "echo:hi"; its
   * checksum computed independently with RFC 768's algorithm in Python. */
  assert_int_equal(pkt[26] << 8 | pkt[27], 0xba2c);
  n = wr_udp_build(&a6, 9053, &b6, 40000, 64, (const uint8_t *)"echo:hi", 7, pkt, sizeof(pkt));
  assert_int_equal(n, 40 + 8 + 7);
  check_udp(pkt, n, "fd99::5", "fd98::1", "echo:hi");
  n = wr_udp_build(&a, 9053, &b, 40000, 64, NULL, 0, pkt, sizeof(pkt));
  check_udp(pkt, n, "10.99.0.5", "10.98.0.1", "");
  assert_int_equal(wr_udp_build(&a, 1, &b6, 2, 64, NULL, 0, pkt, sizeof(pkt)), WR_ERR_INVAL);
  assert_int_equal(wr_udp_build(&a, 1, &b, 2, 64, (const uint8_t *)"x", 1, pkt, 28), WR_ERR_LIMIT);
  assert_int_equal(wr_udp_build(&a, 1, &b, 2, 64, NULL, 1, pkt, sizeof(pkt)), WR_ERR_INVAL);

  /* Decoder refusals. */
  wr_ip_packet p;
  wr_udp u;
  n = wr_udp_build(&a, 9053, &b, 40000, 64, (const uint8_t *)"echo:hi", 7, pkt, sizeof(pkt));
  pkt[24] = 0, pkt[25] = 4; /* UDP length 4 < 8 */
  assert_int_equal(wr_ip_decode(pkt, (size_t)n, &p), 0);
  assert_int_equal(wr_udp_decode(&p, &u), WR_ERR_PROTO);
  pkt[25] = 200; /* longer than the packet */
  assert_int_equal(wr_udp_decode(&p, &u), WR_ERR_TRUNC);
  p.protocol = 6;
  assert_int_equal(wr_udp_decode(&p, &u), WR_ERR_UNSUPPORTED);
}

static void test_unreachable_builder(void **state) {
  (void)state;
  uint8_t req[128], out[1500];
  wr_ipaddr c = ip("10.98.0.1"), h = ip("10.77.0.5"), r = ip("192.0.0.8");
  int n = wr_icmp_build_echo(&c, &h, 64, WR_ICMPV4_ECHO_REQUEST, 7, 1, (const uint8_t *)"ping", 4,
                             req, sizeof(req));
  wr_ip_packet p, q;
  wr_icmp m;
  assert_int_equal(wr_ip_decode(req, (size_t)n, &p), 0);
  int k = wr_icmp_build_unreachable(&p, &r, WR_ICMPV4_UNREACH_NET, out, sizeof(out));
  assert_int_equal(k, 20 + 8 + n);
  assert_int_equal(wr_ip_icmp_decode(out, (size_t)k, &q, &m), 0);
  assert_true(wr_ipaddr_equal(&q.src, &r));
  assert_true(wr_ipaddr_equal(&q.dst, &c));
  assert_int_equal(m.type, 3);
  assert_int_equal(m.code, 0);
  assert_memory_equal(m.body + 4, req, (size_t)n);
  assert_true(wr_icmp_checksum_ok(&q, &m));
  /* Never an error about an error. */
  assert_int_equal(wr_ip_decode(out, (size_t)k, &q), 0);
  assert_int_equal(wr_icmp_build_unreachable(&q, &r, 0, out, sizeof(out)), WR_ERR_UNSUPPORTED);
  assert_int_equal(wr_icmp_build_unreachable(&p, &c, 0, out, 40), WR_ERR_LIMIT);
  wr_ipaddr r6 = ip("fe80::1");
  assert_int_equal(wr_icmp_build_unreachable(&p, &r6, 0, out, sizeof(out)), WR_ERR_INVAL);

  wr_ipaddr c6 = ip("fd98::1"), h6 = ip("fd77::5");
  n = wr_icmp_build_echo(&c6, &h6, 64, WR_ICMPV6_ECHO_REQUEST, 7, 1, (const uint8_t *)"ping", 4,
                         req, sizeof(req));
  assert_int_equal(wr_ip_decode(req, (size_t)n, &p), 0);
  k = wr_icmp_build_unreachable(&p, &h6, WR_ICMPV6_UNREACH_ADDR, out, sizeof(out));
  assert_int_equal(k, 40 + 8 + n);
  assert_int_equal(wr_ip_icmp_decode(out, (size_t)k, &q, &m), 0);
  assert_int_equal(m.type, 1);
  assert_int_equal(m.code, 3);
  assert_true(wr_icmp_checksum_ok(&q, &m));
}

/* ---- the router without a connector ------------------------------------------------ */

typedef struct sink {
  int n;
  uint8_t last[1500];
  size_t last_len;
} sink;

static int sink_send(void *user, const uint8_t *pkt, size_t len) {
  sink *s = user;
  s->n++;
  s->last_len = len < sizeof(s->last) ? len : sizeof(s->last);
  memcpy(s->last, pkt, s->last_len);
  return WR_OK;
}

static void expect_unreach(sink *s, int n, uint8_t type, uint8_t code) {
  wr_ip_packet q;
  wr_icmp m;
  assert_int_equal(s->n, n);
  assert_int_equal(wr_ip_icmp_decode(s->last, s->last_len, &q, &m), 0);
  assert_int_equal(m.type, type);
  assert_int_equal(m.code, code);
}

static int deny_all(void *user, const wr_router_ingress *in, const wr_ipaddr *src,
                    const wr_router_target *t) {
  return 0;
}

static void no_op(uv_timer_t *t) { (void)t; }

static void test_router_answers(void **state) {
  (void)state;
  char dir[] = "/tmp/wr-router-XXXXXX", path[256], err[256];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/warren.db", dir);
  wr_store *st;
  assert_int_equal(wr_store_open(path, WR_STORE_CREATE, &st, err, sizeof(err)), WR_OK);
  wr_account acct;
  assert_int_equal(wr_store_account_create(st, "test", "acct", &acct), WR_OK);
  wr_tunnel tun;
  uint8_t secret[32] = {1};
  assert_int_equal(wr_store_tunnel_create(st, "test", acct.id, "net", secret, 32, &tun), WR_OK);
  wr_ip_route rt;
  assert_int_equal(wr_store_ip_route_add(st, "test", acct.id, "10.99.0.0/24", tun.id, NULL, NULL, &rt),
                   WR_OK);
  wr_tunnel_server *ts;
  wr_tunnel_server_config tcfg = {.store = st};
  assert_int_equal(wr_tunnel_server_new(&tcfg, &ts), WR_OK);
  uv_loop_t loop;
  uv_loop_init(&loop);
  wr_router *r;
  wr_router_config rcfg = {.loop = &loop, .store = st, .ts = ts};
  assert_int_equal(wr_router_new(&rcfg, &r), WR_OK);
  sink s = {0};
  wr_router_ingress *in;
  wr_router_ingress_config icfg = {.name = "test", .account_id = acct.id, .send = sink_send, .user = &s};
  assert_int_equal(wr_router_ingress_add(r, &icfg, &in), WR_OK);
  assert_int_equal(wr_router_get_stats(r)->routes, 1);

  uint8_t pkt[128];
  wr_ipaddr c = ip("10.98.0.1"), routed = ip("10.99.0.5"), other = ip("10.77.0.5");
  int n = wr_icmp_build_echo(&c, &other, 64, 8, 1, 1, NULL, 0, pkt, sizeof(pkt));
  assert_int_equal(wr_router_input(r, in, pkt, (size_t)n), WR_ERR_NOTFOUND);
  expect_unreach(&s, 1, 3, 0);
  n = wr_icmp_build_echo(&c, &routed, 64, 8, 1, 1, NULL, 0, pkt, sizeof(pkt));
  assert_int_equal(wr_router_input(r, in, pkt, (size_t)n), WR_ERR_IO); /* no connector */
  expect_unreach(&s, 2, 3, 1);
  n = wr_udp_build(&c, 40000, &routed, 53, 64, (const uint8_t *)"q", 1, pkt, sizeof(pkt));
  assert_int_equal(wr_router_input(r, in, pkt, (size_t)n), WR_ERR_IO);
  expect_unreach(&s, 3, 3, 1);
  /* Malformed, and ICMP that is not an echo request: dropped silently. */
  assert_int_equal(wr_router_input(r, in, pkt, 10), WR_ERR_PROTO);
  n = wr_icmp_build_echo(&c, &routed, 64, 0, 1, 1, NULL, 0, pkt, sizeof(pkt));
  assert_int_equal(wr_router_input(r, in, pkt, (size_t)n), WR_ERR_UNSUPPORTED);
  assert_int_equal(s.n, 3);
  /* A multicast destination is never answered. */
  wr_ipaddr mc = ip("224.0.0.251");
  n = wr_udp_build(&c, 5353, &mc, 5353, 1, NULL, 0, pkt, sizeof(pkt));
  assert_int_equal(wr_router_input(r, in, pkt, (size_t)n), WR_ERR_NOTFOUND);
  assert_int_equal(s.n, 3);
  /* The policy hook. */
  wr_router_set_policy(r, deny_all, NULL);
  n = wr_icmp_build_echo(&c, &routed, 64, 8, 1, 1, NULL, 0, pkt, sizeof(pkt));
  assert_int_equal(wr_router_input(r, in, pkt, (size_t)n), WR_ERR_DENIED);
  expect_unreach(&s, 4, 3, 13);
  /* Garbage datagrams from a connector. */
  wr_router_datagram(r, "nobody", 2, (const uint8_t *)"\x07", 1);
  wr_router_datagram(r, "nobody", 3, pkt, 0);
  const wr_router_stats *rs = wr_router_get_stats(r);
  assert_int_equal(rs->drops[WR_ROUTER_DROP_NO_ROUTE], 2);
  assert_int_equal(rs->drops[WR_ROUTER_DROP_TUNNEL_DOWN], 2);
  assert_int_equal(rs->drops[WR_ROUTER_DROP_MALFORMED], 1);
  assert_int_equal(rs->drops[WR_ROUTER_DROP_POLICY], 1);
  assert_int_equal(rs->drops[WR_ROUTER_DROP_DATAGRAM], 2);
  assert_int_equal(rs->unreachables, 4);

  /* A new route applies at the next reload. */
  wr_router_set_policy(r, NULL, NULL);
  assert_int_equal(wr_store_ip_route_add(st, "test", acct.id, "10.77.0.0/16", tun.id, NULL, NULL, &rt),
                   WR_OK);
  assert_int_equal(wr_router_reload(r), WR_OK);
  n = wr_icmp_build_echo(&c, &other, 64, 8, 1, 1, NULL, 0, pkt, sizeof(pkt));
  assert_int_equal(wr_router_input(r, in, pkt, (size_t)n), WR_ERR_IO);

  wr_router_ingress_remove(r, in);
  wr_router_free(r);
  uv_run(&loop, UV_RUN_DEFAULT);

  /* With a store thread the periodic reloads read there: a route added
   * applies once the read is back, and a router freed with a read out
   * drops its answer. */
  wr_store_async *a;
  assert_int_equal(wr_store_async_new(&loop, path, &a, err, sizeof(err)), WR_OK);
  rcfg.async = a;
  rcfg.refresh_ms = 10;
  assert_int_equal(wr_router_new(&rcfg, &r), WR_OK);
  assert_int_equal(wr_router_ingress_add(r, &icfg, &in), WR_OK);
  assert_int_equal(wr_router_get_stats(r)->routes, 2); /* read at once */
  assert_int_equal(wr_store_ip_route_add(st, "test", acct.id, "10.55.0.0/16", tun.id, NULL, NULL, &rt),
                   WR_OK);
  wr_router_routes_changed(r);
  uv_timer_t alive; /* the router's timer does not keep the loop running */
  uv_timer_init(&loop, &alive);
  uv_timer_start(&alive, no_op, 60000, 0);
  for (int i = 0; i < 400 && wr_router_get_stats(r)->routes != 3; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    usleep(5000);
  }
  assert_int_equal(wr_router_get_stats(r)->routes, 3);
  wr_router_routes_changed(r);
  usleep(20000);
  uv_run(&loop, UV_RUN_NOWAIT); /* a tick: a read goes out */
  wr_router_ingress_remove(r, in);
  wr_router_free(r);
  wr_store_async_free(a);
  uv_close((uv_handle_t *)&alive, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  wr_tunnel_server_free(ts);
  wr_store_close(st);
  unlink(path);
  char side[300];
  snprintf(side, sizeof(side), "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof(side), "%s-shm", path);
  unlink(side);
  rmdir(dir);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_TESTS(test_lpm, test_flow_table, test_udp_builder, test_unreachable_builder,
                             test_router_answers));
}
