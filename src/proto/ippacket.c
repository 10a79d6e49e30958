#include "proto/ippacket.h"

#include <arpa/inet.h>
#include <string.h>

#include "lib/bytes.h"
#include "lib/err.h"

/* ---- addresses ------------------------------------------------------------ */

int wr_ipaddr_parse(const char *s, wr_ipaddr *out) {
  memset(out, 0, sizeof(*out));
  if (inet_pton(AF_INET, s, out->b) == 1) {
    out->version = 4;
    return WR_OK;
  }
  if (inet_pton(AF_INET6, s, out->b) == 1) {
    out->version = 6;
    return WR_OK;
  }
  return WR_ERR_PROTO;
}

int wr_ipaddr_format(const wr_ipaddr *a, char *out, size_t cap) {
  char tmp[INET6_ADDRSTRLEN];
  if (a->version != 4 && a->version != 6) return WR_ERR_INVAL;
  if (!inet_ntop(a->version == 4 ? AF_INET : AF_INET6, a->b, tmp, sizeof(tmp)))
    return WR_ERR_INVAL;
  size_t n = strlen(tmp);
  if (n + 1 > cap) return WR_ERR_LIMIT;
  memcpy(out, tmp, n + 1);
  return (int)n;
}

static size_t addr_len(uint8_t version) { return version == 4 ? 4 : 16; }

int wr_ipaddr_equal(const wr_ipaddr *a, const wr_ipaddr *b) {
  return a->version == b->version && (a->version == 4 || a->version == 6) &&
         memcmp(a->b, b->b, addr_len(a->version)) == 0;
}

static void addr_set(wr_ipaddr *a, uint8_t version, const uint8_t *p) {
  memset(a, 0, sizeof(*a));
  a->version = version;
  memcpy(a->b, p, addr_len(version));
}

/* ---- decoding ------------------------------------------------------------- */

static int decode_v4(const uint8_t *p, size_t len, wr_ip_packet *out) {
  if (len < WR_IPV4_MIN_HEADER_LEN) return WR_ERR_TRUNC;
  size_t ihl = (size_t)(p[0] & 0x0f) * 4;
  size_t total = wr_get_be16(p + 2);
  /* gopacket: a zero total length comes from TCP segmentation offload and
   * means "all the bytes we have". */
  if (total == 0) total = len > 0xffff ? 0xffff : len;
  if (total < WR_IPV4_MIN_HEADER_LEN || ihl < WR_IPV4_MIN_HEADER_LEN || ihl > total)
    return WR_ERR_PROTO;
  if (total > len) {
    /* Tolerated like gopacket's "truncated" packets, as long as the whole
     * header is there. */
    if (ihl > len) return WR_ERR_TRUNC;
    out->truncated = 1;
    total = len;
  }
  uint16_t frag = wr_get_be16(p + 6);
  out->version = 4;
  out->header_len = ihl;
  out->ttl = p[8];
  out->protocol = p[9];
  out->is_fragment = (frag & 0x2000) != 0 || (frag & 0x1fff) != 0;
  addr_set(&out->src, 4, p + 12);
  addr_set(&out->dst, 4, p + 16);
  out->payload = p + ihl;
  out->payload_len = total - ihl;
  return WR_OK;
}

static int decode_v6(const uint8_t *p, size_t len, wr_ip_packet *out) {
  if (len < WR_IPV6_HEADER_LEN) return WR_ERR_TRUNC;
  size_t plen = wr_get_be16(p + 4);
  if (plen > len - WR_IPV6_HEADER_LEN) {
    out->truncated = 1;
    plen = len - WR_IPV6_HEADER_LEN;
  }
  out->version = 6;
  out->header_len = WR_IPV6_HEADER_LEN;
  out->protocol = p[6];
  out->ttl = p[7];
  addr_set(&out->src, 6, p + 8);
  addr_set(&out->dst, 6, p + 24);
  out->payload = p + WR_IPV6_HEADER_LEN;
  out->payload_len = plen;
  return WR_OK;
}

int wr_ip_decode(const uint8_t *p, size_t len, wr_ip_packet *out) {
  memset(out, 0, sizeof(*out));
  if (len == 0) return WR_ERR_TRUNC;
  int rv;
  switch (p[0] >> 4) {
  case 4: rv = decode_v4(p, len, out); break;
  case 6: rv = decode_v6(p, len, out); break;
  default: return WR_ERR_PROTO;
  }
  if (rv == WR_OK) {
    out->raw = p;
    out->raw_len = len;
  }
  return rv;
}

int wr_icmp_is_echo(uint8_t version, uint8_t type) {
  if (version == 4) return type == WR_ICMPV4_ECHO_REQUEST || type == WR_ICMPV4_ECHO_REPLY;
  if (version == 6) return type == WR_ICMPV6_ECHO_REQUEST || type == WR_ICMPV6_ECHO_REPLY;
  return 0;
}

int wr_icmp_decode_msg(uint8_t version, const uint8_t *p, size_t len, wr_icmp *out) {
  memset(out, 0, sizeof(*out));
  size_t need;
  if (version == 4) {
    need = WR_ICMP_HEADER_LEN; /* gopacket's ICMPv4 layer wants all 8 bytes */
  } else if (version == 6) {
    /* gopacket's ICMPv6 layer wants 4; x/net/icmp then needs the 4-byte
     * rest-of-header for echo and the error messages. */
    need = 4;
    if (len >= 1 && ((p[0] >= 1 && p[0] <= 4) || wr_icmp_is_echo(6, p[0])))
      need = WR_ICMP_HEADER_LEN;
  } else {
    return WR_ERR_INVAL;
  }
  if (len < need) return WR_ERR_TRUNC;
  out->type = p[0];
  out->code = p[1];
  out->checksum = wr_get_be16(p + 2);
  out->msg = p;
  out->msg_len = len;
  out->body = p + 4;
  out->body_len = len - 4;
  if (wr_icmp_is_echo(version, out->type)) {
    out->echo_id = wr_get_be16(p + 4);
    out->echo_seq = wr_get_be16(p + 6);
    out->data = p + WR_ICMP_HEADER_LEN;
    out->data_len = len - WR_ICMP_HEADER_LEN;
  }
  return WR_OK;
}

int wr_icmp_decode(const wr_ip_packet *ip, wr_icmp *out) {
  memset(out, 0, sizeof(*out));
  uint8_t want = ip->version == 4 ? WR_IPPROTO_ICMP : WR_IPPROTO_ICMPV6;
  /* gopacket hands fragments to a fragment layer, never to ICMP. */
  if (ip->protocol != want || ip->is_fragment) return WR_ERR_UNSUPPORTED;
  return wr_icmp_decode_msg(ip->version, ip->payload, ip->payload_len, out);
}

int wr_ip_icmp_decode(const uint8_t *p, size_t len, wr_ip_packet *ip, wr_icmp *icmp) {
  memset(icmp, 0, sizeof(*icmp));
  int rv = wr_ip_decode(p, len, ip);
  if (rv != WR_OK) return rv;
  return wr_icmp_decode(ip, icmp);
}

/* ---- checksums ------------------------------------------------------------ */

/* Adds the big-endian 16-bit words of |p| to |acc|, treating the word at
 * byte offset |skip| (if < len) as zero. 64 bits cannot overflow for any
 * length this module sees. */
static uint64_t sum16(uint64_t acc, const uint8_t *p, size_t len, size_t skip) {
  size_t i = 0;
  for (; i + 1 < len; i += 2)
    if (i != skip) acc += (uint64_t)(p[i] << 8 | p[i + 1]);
  if (i < len && i != skip) acc += (uint64_t)p[i] << 8;
  return acc;
}

static uint16_t fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return (uint16_t)~acc;
}

#define NO_SKIP ((size_t)-1)

uint16_t wr_inet_checksum(const uint8_t *p, size_t len) { return fold(sum16(0, p, len, NO_SKIP)); }

uint16_t wr_ipv4_header_checksum(const uint8_t *hdr, size_t hdr_len) {
  return fold(sum16(0, hdr, hdr_len, 10));
}

uint16_t wr_icmpv4_checksum(const uint8_t *msg, size_t len) { return fold(sum16(0, msg, len, 2)); }

static uint64_t v6_pseudo_sum(const uint8_t src[16], const uint8_t dst[16], size_t len) {
  uint64_t acc = sum16(0, src, 16, NO_SKIP);
  acc = sum16(acc, dst, 16, NO_SKIP);
  acc += (uint64_t)((uint32_t)len >> 16) + (uint64_t)(len & 0xffff);
  return acc + WR_IPPROTO_ICMPV6;
}

uint16_t wr_icmpv6_checksum(const uint8_t src[16], const uint8_t dst[16], const uint8_t *msg,
                            size_t len) {
  return fold(sum16(v6_pseudo_sum(src, dst, len), msg, len, 2));
}

int wr_icmp_checksum_ok(const wr_ip_packet *ip, const wr_icmp *icmp) {
  if (!icmp->msg || icmp->msg_len < 4) return 0;
  if (ip->version == 4) {
    if (!ip->raw || wr_inet_checksum(ip->raw, ip->header_len) != 0) return 0;
    return wr_inet_checksum(icmp->msg, icmp->msg_len) == 0;
  }
  if (ip->version == 6)
    return fold(sum16(v6_pseudo_sum(ip->src.b, ip->dst.b, icmp->msg_len), icmp->msg,
                      icmp->msg_len, NO_SKIP)) == 0;
  return 0;
}

/* ---- builders ------------------------------------------------------------- */

/* Writes the ICMP message (type, code, checksum placeholder, rest, data) at
 * |m|. Data is moved first so callers may stage it inside |out|. */
static void put_icmp(uint8_t *m, uint8_t type, uint8_t code, const uint8_t rest[4],
                     const uint8_t *data, size_t data_len) {
  if (data_len) memmove(m + WR_ICMP_HEADER_LEN, data, data_len);
  m[0] = type;
  m[1] = code;
  m[2] = m[3] = 0;
  memcpy(m + 4, rest, 4);
}

int wr_icmp_build(const wr_ipaddr *src, const wr_ipaddr *dst, uint8_t ttl, uint8_t type,
                  uint8_t code, const uint8_t rest[4], const uint8_t *data, size_t data_len,
                  uint8_t *out, size_t cap) {
  if (src->version != dst->version || (src->version != 4 && src->version != 6))
    return WR_ERR_INVAL;
  if (data_len && !data) return WR_ERR_INVAL;
  size_t msg_len = WR_ICMP_HEADER_LEN + data_len;
  if (data_len > 0xffff) return WR_ERR_LIMIT;
  if (src->version == 4) {
    size_t total = WR_IPV4_MIN_HEADER_LEN + msg_len;
    if (total > 0xffff || total > cap) return WR_ERR_LIMIT;
    uint8_t *m = out + WR_IPV4_MIN_HEADER_LEN;
    put_icmp(m, type, code, rest, data, data_len);
    wr_put_be16(m + 2, wr_icmpv4_checksum(m, msg_len));
    wr_ip_put_header(out, src, dst, WR_IPPROTO_ICMP, ttl, msg_len);
    return (int)total;
  }
  size_t total = WR_IPV6_HEADER_LEN + msg_len;
  if (msg_len > 0xffff || total > cap) return WR_ERR_LIMIT;
  uint8_t *m = out + WR_IPV6_HEADER_LEN;
  put_icmp(m, type, code, rest, data, data_len);
  wr_put_be16(m + 2, wr_icmpv6_checksum(src->b, dst->b, m, msg_len));
  wr_ip_put_header(out, src, dst, WR_IPPROTO_ICMPV6, ttl, msg_len);
  return (int)total;
}

size_t wr_ip_put_header(uint8_t *out, const wr_ipaddr *src, const wr_ipaddr *dst, uint8_t proto, uint8_t ttl,
                        size_t payload_len) {
  if (src->version == 4) {
    out[0] = 0x45; /* version 4, IHL 5 */
    out[1] = 0;    /* TOS */
    wr_put_be16(out + 2, (uint16_t)(WR_IPV4_MIN_HEADER_LEN + payload_len));
    memset(out + 4, 0, 4); /* ID, flags, fragment offset */
    out[8] = ttl;
    out[9] = proto;
    out[10] = out[11] = 0;
    memcpy(out + 12, src->b, 4);
    memcpy(out + 16, dst->b, 4);
    wr_put_be16(out + 10, wr_ipv4_header_checksum(out, WR_IPV4_MIN_HEADER_LEN));
    return WR_IPV4_MIN_HEADER_LEN;
  }
  out[0] = 0x60; /* version 6, traffic class 0, flow label 0 */
  out[1] = out[2] = out[3] = 0;
  wr_put_be16(out + 4, (uint16_t)payload_len);
  out[6] = proto;
  out[7] = ttl;
  memcpy(out + 8, src->b, 16);
  memcpy(out + 24, dst->b, 16);
  return WR_IPV6_HEADER_LEN;
}

int wr_icmp_build_echo(const wr_ipaddr *src, const wr_ipaddr *dst, uint8_t ttl, uint8_t type,
                       uint16_t id, uint16_t seq, const uint8_t *data, size_t data_len,
                       uint8_t *out, size_t cap) {
  uint8_t rest[4];
  wr_put_be16(rest, id);
  wr_put_be16(rest + 2, seq);
  return wr_icmp_build(src, dst, ttl, type, 0, rest, data, data_len, out, cap);
}

int wr_icmp_build_echo_reply(const wr_ipaddr *src, const wr_ipaddr *dst, uint16_t id,
                             uint16_t seq, const uint8_t *data, size_t data_len, uint8_t *out,
                             size_t cap) {
  uint8_t type = src->version == 6 ? WR_ICMPV6_ECHO_REPLY : WR_ICMPV4_ECHO_REPLY;
  return wr_icmp_build_echo(src, dst, WR_ICMP_DEFAULT_TTL, type, id, seq, data, data_len, out,
                            cap);
}

int wr_icmp_build_time_exceeded(const wr_ip_packet *orig, const wr_ipaddr *router, uint8_t *out,
                                size_t cap) {
  static const uint8_t unused[4] = {0, 0, 0, 0};
  if (orig->version != router->version || !orig->raw) return WR_ERR_INVAL;
  int v4 = orig->version == 4;
  size_t quote = orig->raw_len;
  size_t max = v4 ? WR_ICMPV4_QUOTE_MAX : WR_ICMPV6_QUOTE_MAX;
  if (quote > max) quote = max;
  return wr_icmp_build(router, &orig->src, WR_ICMP_DEFAULT_TTL,
                       v4 ? WR_ICMPV4_TIME_EXCEEDED : WR_ICMPV6_TIME_EXCEEDED, 0, unused,
                       orig->raw, quote, out, cap);
}

int wr_icmp_msg_build_echo(uint8_t version, uint8_t type, uint16_t id, uint16_t seq,
                           const uint8_t *data, size_t data_len, uint8_t *out, size_t cap) {
  if (version != 4 && version != 6) return WR_ERR_INVAL;
  if (data_len && !data) return WR_ERR_INVAL;
  if (data_len > 0xffff - WR_ICMP_HEADER_LEN || WR_ICMP_HEADER_LEN + data_len > cap)
    return WR_ERR_LIMIT;
  uint8_t rest[4];
  wr_put_be16(rest, id);
  wr_put_be16(rest + 2, seq);
  put_icmp(out, type, 0, rest, data, data_len);
  if (version == 4) wr_put_be16(out + 2, wr_icmpv4_checksum(out, WR_ICMP_HEADER_LEN + data_len));
  return (int)(WR_ICMP_HEADER_LEN + data_len);
}

/* Whether |ip| carries an ICMP error message, which must never be answered
 * with another one (an ICMP message too short to tell counts as one). */
static int carries_icmp_error(const wr_ip_packet *ip) {
  if (ip->version == 4 && ip->protocol == WR_IPPROTO_ICMP) {
    if (ip->payload_len < 1) return 1;
    uint8_t t = ip->payload[0];
    return t == 3 || t == 4 || t == 5 || t == 11 || t == 12;
  }
  if (ip->version == 6 && ip->protocol == WR_IPPROTO_ICMPV6)
    return ip->payload_len < 1 || ip->payload[0] < 128;
  return 0;
}

/* A fragment other than the first: IPv4 offset non-zero. */
static int later_fragment(const wr_ip_packet *ip) {
  return ip->version == 4 && ip->raw && ip->raw_len >= 8 && (wr_get_be16(ip->raw + 6) & 0x1fff) != 0;
}

int wr_icmp_build_unreachable(const wr_ip_packet *orig, const wr_ipaddr *router, uint8_t code,
                              uint8_t *out, size_t cap) {
  static const uint8_t unused[4] = {0, 0, 0, 0};
  if (orig->version != router->version || !orig->raw) return WR_ERR_INVAL;
  if (carries_icmp_error(orig) || later_fragment(orig)) return WR_ERR_UNSUPPORTED;
  int v4 = orig->version == 4;
  size_t quote = orig->raw_len;
  size_t max = v4 ? WR_ICMPV4_QUOTE_MAX : WR_ICMPV6_QUOTE_MAX;
  if (quote > max) quote = max;
  return wr_icmp_build(router, &orig->src, 64, v4 ? WR_ICMPV4_DEST_UNREACH : WR_ICMPV6_DEST_UNREACH,
                       code, unused, orig->raw, quote, out, cap);
}
