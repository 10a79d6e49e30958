/* Fuzzes the IPv4/IPv6 + ICMP decoder and the reply builders the connector
 * runs on edge-supplied packets: whatever decodes gets a time-exceeded reply
 * (and echo requests an echo reply), and each reply must itself decode, carry
 * correct checksums and quote / echo the right bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ippacket.h"
#include "fuzz.h"

static uint8_t out[70000 + 100];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wr_ip_packet ip, rip;
  wr_icmp icmp, ricmp;
  if (size > 70000) return 0;
  int rv = wr_ip_icmp_decode(data, size, &ip, &icmp);
  if (ip.version == 0) return 0; /* the IP header did not decode */
  if (ip.payload < data || ip.payload + ip.payload_len > data + size) abort();

  /* Time exceeded from a router of the same family. */
  wr_ipaddr router = {.version = ip.version, .b = {10, 0, 0, 1}};
  int n = wr_icmp_build_time_exceeded(&ip, &router, out, sizeof(out));
  if (n < 0) abort();
  if (wr_ip_icmp_decode(out, (size_t)n, &rip, &ricmp) != 0) abort();
  if (!wr_icmp_checksum_ok(&rip, &ricmp) || rip.ttl != 255) abort();
  if (!wr_ipaddr_equal(&rip.dst, &ip.src) || !wr_ipaddr_equal(&rip.src, &router)) abort();
  size_t quote = size < (ip.version == 4 ? WR_ICMPV4_QUOTE_MAX : WR_ICMPV6_QUOTE_MAX)
                     ? size
                     : (ip.version == 4 ? WR_ICMPV4_QUOTE_MAX : WR_ICMPV6_QUOTE_MAX);
  if (ricmp.body_len != 4 + quote || memcmp(ricmp.body + 4, data, quote) != 0) abort();

  if (rv != 0 || !wr_icmp_is_echo(ip.version, icmp.type)) return 0;
  if (icmp.data + icmp.data_len != icmp.msg + icmp.msg_len) abort();
  n = wr_icmp_build_echo_reply(&ip.dst, &ip.src, icmp.echo_id, icmp.echo_seq, icmp.data,
                               icmp.data_len, out, sizeof(out));
  if (n < 0) return 0; /* only a packet near 64 KiB can fail to fit */
  if (wr_ip_icmp_decode(out, (size_t)n, &rip, &ricmp) != 0) abort();
  if (!wr_icmp_checksum_ok(&rip, &ricmp) || ricmp.echo_id != icmp.echo_id ||
      ricmp.echo_seq != icmp.echo_seq || ricmp.data_len != icmp.data_len ||
      (icmp.data_len && memcmp(ricmp.data, icmp.data, icmp.data_len) != 0))
    abort();
  /* The bare ping-socket message round-trips too. */
  n = wr_icmp_msg_build_echo(ip.version, icmp.type, icmp.echo_id, icmp.echo_seq, icmp.data,
                             icmp.data_len, out, sizeof(out));
  if (n >= 0 && wr_icmp_decode_msg(ip.version, out, (size_t)n, &ricmp) != 0) abort();
  return 0;
}
