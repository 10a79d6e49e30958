/* Fuzzes the ICMP proxy's two parsers of outside input: the packet from the
 * edge (wr_icmp_proxy_classify: time exceeded or a flow to forward on) and
 * the message read back from a flow's socket (wr_icmp_proxy_build_reply).
 * Whatever they produce must decode again with the addresses and ids the
 * proxy promises. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connector/icmp_proxy.h"
#include "fuzz.h"

static uint8_t out[70000 + 100];

static void classify(const uint8_t *data, size_t size) {
  wr_ipaddr s4 = {4, {192, 0, 2, 2}}, s6 = {6, {0x20, 0x01, 0x0d, 0xb8, [15] = 2}};
  wr_icmp_action act;
  if (wr_icmp_proxy_classify(data, size, &s4, &s6, &act, out, sizeof(out)) != 0) return;
  wr_ip_packet ip;
  wr_icmp icmp;
  if (act.kind == WR_ICMP_ACT_TIME_EXCEEDED) {
    if (act.reply_len > sizeof(out) || wr_ip_icmp_decode(out, act.reply_len, &ip, &icmp) != 0)
      abort();
    if (!wr_ipaddr_equal(&ip.src, ip.version == 4 ? &s4 : &s6) || ip.ttl != 255) abort();
    return;
  }
  if (act.kind != WR_ICMP_ACT_FORWARD) abort();
  if (act.data_len && (act.data < data || act.data + act.data_len > data + size)) abort();
  if (act.key.src.version != act.key.dst.version) abort();
}

static void reply(const uint8_t *data, size_t size, uint8_t version) {
  wr_icmp_flow_key k = {{version, {10, 0, 0, 2}}, {version, {10, 99, 0, 1}}, 0x4242};
  wr_ipaddr from = {version, {10, 99, 0, 1}};
  int n = wr_icmp_proxy_build_reply(&k, &from, data, size, out, sizeof(out));
  if (n < 0) return;
  wr_ip_packet ip;
  wr_icmp icmp;
  if (wr_ip_icmp_decode(out, (size_t)n, &ip, &icmp) != 0) abort();
  if (!wr_ipaddr_equal(&ip.dst, &k.src) || !wr_ipaddr_equal(&ip.src, &from)) abort();
  if (icmp.echo_id != 0x4242 || !wr_icmp_checksum_ok(&ip, &icmp)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 70000) return 0;
  switch (data[0] % 3) {
    case 0: classify(data + 1, size - 1); break;
    case 1: reply(data + 1, size - 1, 4); break;
    default: reply(data + 1, size - 1, 6); break;
  }
  return 0;
}
