/* UDP inside IP; see udppacket.h. */
#include "proto/udppacket.h"

#include <string.h>

#include "lib/bytes.h"
#include "lib/err.h"

int wr_udp_decode(const wr_ip_packet *ip, wr_udp *out) {
  memset(out, 0, sizeof(*out));
  if (ip->protocol != WR_IPPROTO_UDP || ip->is_fragment) return WR_ERR_UNSUPPORTED;
  if (ip->payload_len < WR_UDP_HEADER_LEN) return WR_ERR_TRUNC;
  const uint8_t *p = ip->payload;
  size_t ulen = wr_get_be16(p + 4);
  if (ulen < WR_UDP_HEADER_LEN) return WR_ERR_PROTO;
  if (ulen > ip->payload_len) return WR_ERR_TRUNC;
  out->sport = wr_get_be16(p);
  out->dport = wr_get_be16(p + 2);
  out->checksum = wr_get_be16(p + 6);
  out->payload = p + WR_UDP_HEADER_LEN;
  out->payload_len = ulen - WR_UDP_HEADER_LEN;
  return 0;
}

/* One's-complement sum of 16-bit big-endian words, skipping the word at
 * byte offset |skip| (the checksum field); an odd last byte is padded. */
static uint64_t sum(uint64_t acc, const uint8_t *p, size_t len, size_t skip) {
  for (size_t i = 0; i + 1 < len; i += 2)
    if (i != skip) acc += wr_get_be16(p + i);
  if (len & 1) acc += (uint64_t)p[len - 1] << 8;
  return acc;
}

uint16_t wr_udp_checksum(const wr_ipaddr *src, const wr_ipaddr *dst, const uint8_t *udp,
                         size_t len) {
  size_t alen = src->version == 4 ? 4 : 16;
  uint64_t acc = sum(0, src->b, alen, (size_t)-1);
  acc = sum(acc, dst->b, alen, (size_t)-1);
  acc += WR_IPPROTO_UDP + (uint64_t)(len & 0xffff) + (uint64_t)(len >> 16);
  acc = sum(acc, udp, len, 6);
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  uint16_t c = (uint16_t)~acc;
  return c ? c : 0xffff;
}

int wr_udp_build(const wr_ipaddr *src, uint16_t sport, const wr_ipaddr *dst, uint16_t dport,
                 uint8_t ttl, const uint8_t *data, size_t data_len, uint8_t *out, size_t cap) {
  if (src->version != dst->version || (src->version != 4 && src->version != 6))
    return WR_ERR_INVAL;
  if (data_len && !data) return WR_ERR_INVAL;
  int v4 = src->version == 4;
  size_t hlen = v4 ? WR_IPV4_MIN_HEADER_LEN : WR_IPV6_HEADER_LEN;
  size_t ulen = WR_UDP_HEADER_LEN + data_len;
  if (ulen > 0xffff || hlen + ulen > cap || (v4 && hlen + ulen > 0xffff)) return WR_ERR_LIMIT;
  uint8_t *u = out + hlen;
  wr_put_be16(u, sport);
  wr_put_be16(u + 2, dport);
  wr_put_be16(u + 4, (uint16_t)ulen);
  wr_put_be16(u + 6, 0);
  if (data_len) memmove(u + WR_UDP_HEADER_LEN, data, data_len);
  wr_put_be16(u + 6, wr_udp_checksum(src, dst, u, ulen));
  wr_ip_put_header(out, src, dst, WR_IPPROTO_UDP, ttl, ulen);
  return (int)(hlen + ulen);
}
