/* Fuzzes the edge router's two inputs from outside: IP packets from an
 * ingress's clients and QUIC datagrams from connectors. The first byte
 * picks which; the router runs against a real store with routes (one
 * routed network, one not) and no connector, so every packet ends in a
 * drop or an ICMP error. Each ICMP error the router writes must decode,
 * with correct checksums, and quote the packet it answers. Nothing may be
 * fatal. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edge/router.h"
#include "edge/store.h"
#include "edge/tunnel_server.h"
#include "lib/err.h"
#include "proto/ippacket.h"
#include "proto/udppacket.h"
#include "fuzz.h"

static wr_router *router;
static wr_router_ingress *ingress;
static const uint8_t *cur;
static size_t cur_len;

static int check_send(void *user, const uint8_t *pkt, size_t len) {
  wr_ip_packet ip;
  wr_icmp icmp;
  (void)user;
  if (wr_ip_icmp_decode(pkt, len, &ip, &icmp) != 0) abort();
  if (!wr_icmp_checksum_ok(&ip, &icmp)) abort();
  if (icmp.body_len < 4 || icmp.body_len - 4 > cur_len) abort();
  if (memcmp(icmp.body + 4, cur, icmp.body_len - 4) != 0) abort();
  return WR_OK;
}

static void setup(void) {
  static uv_loop_t loop;
  char dir[] = "/tmp/fuzz-router-XXXXXX", path[128], err[256];
  if (!mkdtemp(dir)) abort();
  snprintf(path, sizeof(path), "%s/warren.db", dir);
  wr_store *st;
  wr_account a;
  wr_tunnel t;
  wr_ip_route r;
  uint8_t secret[32] = {1};
  wr_tunnel_server *ts;
  if (wr_store_open(path, WR_STORE_CREATE, &st, err, sizeof(err)) != WR_OK ||
      wr_store_account_create(st, "fuzz", "acct", &a) != WR_OK ||
      wr_store_tunnel_create(st, "fuzz", a.id, "t", secret, 32, &t) != WR_OK ||
      wr_store_ip_route_add(st, "fuzz", a.id, "10.0.0.0/8", t.id, NULL, NULL, &r) != WR_OK ||
      wr_store_ip_route_add(st, "fuzz", a.id, "fd00::/8", t.id, NULL, NULL, &r) != WR_OK)
    abort();
  wr_tunnel_server_config tcfg = {.store = st};
  uv_loop_init(&loop);
  wr_router_config rcfg = {.loop = &loop, .store = st};
  if (wr_tunnel_server_new(&tcfg, &ts) != WR_OK) abort();
  rcfg.ts = ts;
  if (wr_router_new(&rcfg, &router) != WR_OK) abort();
  wr_router_ingress_config icfg = {.name = "fuzz", .account_id = a.id, .send = check_send};
  if (wr_router_ingress_add(router, &icfg, &ingress) != WR_OK) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!router) setup();
  if (size < 1 || size > 70000) return 0;
  cur = data + 1;
  cur_len = size - 1;
  if (data[0] & 1)
    wr_router_datagram(router, "fuzz", data[0] & 2 ? 3 : 2, data + 1, size - 1);
  else
    wr_router_input(router, ingress, data + 1, size - 1);
  /* The UDP decoder on whatever decodes as IP. */
  wr_ip_packet ip;
  wr_udp u;
  if (wr_ip_decode(data + 1, size - 1, &ip) == 0 && wr_udp_decode(&ip, &u) == 0 &&
      (u.payload < data || u.payload + u.payload_len > data + size))
    abort();
  return 0;
}
