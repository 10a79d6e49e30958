/* Minimal IPv4/IPv6 + ICMPv4/ICMPv6 codec for ICMP proxying over QUIC
 * datagrams (protocol.md 6.3). Sans-I/O: decoders point into the caller's
 * bytes, builders write complete packets (checksums included) into the
 * caller's buffer. Multi-byte fields are big-endian on the wire and host
 * order in the structs.
 *
 * The decoder follows what cloudflared 2023.7.3 accepts (gopacket's IPv4 /
 * IPv6 layers followed directly by an ICMP layer, then x/net/icmp):
 * IPv4 options are skipped, IPv6 extension headers are not followed, a
 * fragment carries no ICMP layer, a total length beyond the captured bytes is
 * tolerated (the packet is marked truncated), and checksums are not verified
 * (wr_icmp_checksum_ok() is there for callers that want to). */
#ifndef WR_IPPACKET_H
#define WR_IPPACKET_H
#include <stddef.h>
#include <stdint.h>

#define WR_IPV4_MIN_HEADER_LEN 20
#define WR_IPV6_HEADER_LEN 40
#define WR_ICMP_HEADER_LEN 8 /* type, code, checksum + 4 bytes rest-of-header */
#define WR_IPPROTO_ICMP 1
#define WR_IPPROTO_ICMPV6 58
#define WR_ICMP_DEFAULT_TTL 255 /* TTL / hop limit of packets cloudflared builds */

#define WR_ICMPV4_ECHO_REPLY 0
#define WR_ICMPV4_ECHO_REQUEST 8
#define WR_ICMPV4_TIME_EXCEEDED 11
#define WR_ICMPV6_TIME_EXCEEDED 3
#define WR_ICMPV6_ECHO_REQUEST 128
#define WR_ICMPV6_ECHO_REPLY 129

/* How much of the original packet a time-exceeded message quotes:
 * 576 - 20 - 8 (RFC 1812) and 1280 - 40 - 8 (RFC 4443). */
#define WR_ICMPV4_QUOTE_MAX 548
#define WR_ICMPV6_QUOTE_MAX 1232

/* An IPv4 (|version| 4, address in b[0..3]) or IPv6 (|version| 6) address. */
typedef struct wr_ipaddr {
  uint8_t version;
  uint8_t b[16];
} wr_ipaddr;

/* Parses dotted-quad IPv4 or RFC 4291 IPv6 text (no zone, no brackets).
 * |s| is NUL-terminated. Returns 0 or WR_ERR_PROTO. */
int wr_ipaddr_parse(const char *s, wr_ipaddr *out);
/* Formats |a| as text (IPv6 in RFC 5952 form). Returns the length, or
 * WR_ERR_LIMIT if |cap| (including the NUL; 46 always suffices) is too small,
 * or WR_ERR_INVAL for a version other than 4 or 6. */
int wr_ipaddr_format(const wr_ipaddr *a, char *out, size_t cap);
/* 1 if equal (same version and address bytes), else 0. */
int wr_ipaddr_equal(const wr_ipaddr *a, const wr_ipaddr *b);

typedef struct wr_ip_packet {
  uint8_t version;     /* 4 or 6 */
  uint8_t ttl;         /* IPv4 TTL or IPv6 hop limit */
  uint8_t protocol;    /* IPv4 protocol or IPv6 next header */
  uint8_t is_fragment; /* IPv4 MF flag or non-zero fragment offset */
  uint8_t truncated;   /* the length field claims more bytes than were given */
  size_t header_len;   /* IPv4 IHL * 4, IPv6 40 */
  wr_ipaddr src, dst;
  const uint8_t *payload; /* after the IP header, cut at the length field */
  size_t payload_len;
  const uint8_t *raw;     /* the packet exactly as given: cloudflared quotes */
  size_t raw_len;         /* these bytes in a time-exceeded message */
} wr_ip_packet;

/* Decodes the IP header of |p|. Pointers in |out| point into |p|.
 * Returns 0; WR_ERR_TRUNC if |len| is 0 or shorter than the (minimum) header;
 * WR_ERR_PROTO for a version other than 4 or 6, an IPv4 IHL below 5, or an
 * IPv4 total length below 20 or below the header length. An IPv4 total length
 * of 0 means "the whole buffer" (gopacket's TSO rule). */
int wr_ip_decode(const uint8_t *p, size_t len, wr_ip_packet *out);

typedef struct wr_icmp {
  uint8_t type;
  uint8_t code;
  uint16_t checksum;   /* as on the wire, not verified */
  const uint8_t *msg;  /* whole ICMP message */
  size_t msg_len;
  const uint8_t *body; /* after type/code/checksum (rest-of-header + data) */
  size_t body_len;
  /* Echo request/reply only (wr_icmp_is_echo()): */
  uint16_t echo_id;
  uint16_t echo_seq;
  const uint8_t *data;
  size_t data_len;
} wr_icmp;

/* 1 if |type| is an echo request or reply for IP |version| (4: 8/0,
 * 6: 128/129), else 0. cloudflared proxies only these. */
int wr_icmp_is_echo(uint8_t version, uint8_t type);

/* Decodes a bare ICMP message (e.g. as read from a ping socket) for IP
 * |version| 4 or 6. Returns 0; WR_ERR_TRUNC if shorter than the ICMP header
 * (ICMPv4: 8 bytes, as gopacket; ICMPv6: 4 bytes, or 8 for echo and the
 * error types 1-4, as x/net/icmp); WR_ERR_INVAL for another |version|. */
int wr_icmp_decode_msg(uint8_t version, const uint8_t *p, size_t len, wr_icmp *out);

/* Decodes the ICMP message carried by |ip|. Returns what wr_icmp_decode_msg()
 * returns, or WR_ERR_UNSUPPORTED if |ip| does not carry ICMP for its version
 * (IPv4 protocol 1, IPv6 next header 58) or is a fragment. */
int wr_icmp_decode(const wr_ip_packet *ip, wr_icmp *out);

/* wr_ip_decode() then wr_icmp_decode(): what cloudflared does with each
 * datagram of type 1 / 2. Returns either function's errors. */
int wr_ip_icmp_decode(const uint8_t *p, size_t len, wr_ip_packet *ip, wr_icmp *icmp);

/* Writes the IP header before a payload of |payload_len| bytes of protocol
 * |proto| from |src| to |dst| (same version; the caller has checked the
 * lengths fit): IPv4 without options (WR_IPV4_MIN_HEADER_LEN bytes, ID and
 * fragment fields 0, its checksum filled in) or IPv6 (WR_IPV6_HEADER_LEN
 * bytes, traffic class and flow label 0). Returns the header's length.
 * Never fails; callable from anywhere. */
size_t wr_ip_put_header(uint8_t *out, const wr_ipaddr *src, const wr_ipaddr *dst, uint8_t proto, uint8_t ttl,
                        size_t payload_len);

/* ---- checksums (RFC 1071) ------------------------------------------------- */

/* The Internet checksum of |p|: the one's complement of the one's-complement
 * sum of its 16-bit big-endian words (an odd last byte is padded with zero).
 * Over data that includes a correct checksum field the result is 0. */
uint16_t wr_inet_checksum(const uint8_t *p, size_t len);
/* Checksum to store in an IPv4 header of |hdr_len| bytes; the current bytes
 * 10-11 (the checksum field) are treated as zero. */
uint16_t wr_ipv4_header_checksum(const uint8_t *hdr, size_t hdr_len);
/* Checksum to store in an ICMPv4 message; bytes 2-3 are treated as zero.
 * |len| must be at least 4. */
uint16_t wr_icmpv4_checksum(const uint8_t *msg, size_t len);
/* Checksum to store in an ICMPv6 message, over the IPv6 pseudo-header (src,
 * dst, upper-layer length |len|, next header 58) and the message with bytes
 * 2-3 treated as zero. |len| must be at least 4. */
uint16_t wr_icmpv6_checksum(const uint8_t src[16], const uint8_t dst[16], const uint8_t *msg,
                            size_t len);
/* 1 if |icmp|'s checksum is correct for |ip| (and, for IPv4, the header
 * checksum is correct too), else 0. */
int wr_icmp_checksum_ok(const wr_ip_packet *ip, const wr_icmp *icmp);

/* ---- builders --------------------------------------------------------------
 * All return the packet length written to |out|, WR_ERR_LIMIT if it does not
 * fit in |cap| or in the IP length field (65535), or WR_ERR_INVAL if the
 * addresses are not both IPv4 or both IPv6. The IP header is built as
 * gopacket serializes cloudflared's packets: IPv4 version 4, IHL 5, TOS 0,
 * ID 0, flags/fragment 0, header checksum; IPv6 traffic class and flow label
 * 0. The protocol is ICMP (1) for IPv4 and ICMPv6 (58) for IPv6. */

/* Any ICMP message: header |type|, |code|, checksum, the 4 bytes |rest|
 * (echo id+seq, or unused), then |data|. */
int wr_icmp_build(const wr_ipaddr *src, const wr_ipaddr *dst, uint8_t ttl, uint8_t type,
                  uint8_t code, const uint8_t rest[4], const uint8_t *data, size_t data_len,
                  uint8_t *out, size_t cap);

/* An echo message of |type| (request or reply), code 0. */
int wr_icmp_build_echo(const wr_ipaddr *src, const wr_ipaddr *dst, uint8_t ttl, uint8_t type,
                       uint16_t id, uint16_t seq, const uint8_t *data, size_t data_len,
                       uint8_t *out, size_t cap);

/* The echo reply cloudflared sends back over the tunnel (6.3 step 6):
 * src = the host that replied, dst = the original eyeball source, TTL /
 * hop limit 255, type 0 / 129, the eyeball's original echo |id|. */
int wr_icmp_build_echo_reply(const wr_ipaddr *src, const wr_ipaddr *dst, uint16_t id,
                             uint16_t seq, const uint8_t *data, size_t data_len, uint8_t *out,
                             size_t cap);

/* The time-exceeded reply cloudflared generates for a packet whose TTL / hop
 * limit is <= 1 (6.3 step 3): from |router| to |orig|'s source, TTL 255,
 * ICMPv4 type 11 / ICMPv6 type 3, code 0, 4 zero bytes, then |orig->raw|
 * cut to 548 (IPv4) or 1232 (IPv6) bytes. |router| must have |orig|'s IP
 * version. */
int wr_icmp_build_time_exceeded(const wr_ip_packet *orig, const wr_ipaddr *router, uint8_t *out,
                                size_t cap);

/* A bare echo message for a ping socket (no IP header): ICMPv4 with its
 * checksum, ICMPv6 with checksum 0 (the kernel fills it in, as with
 * x/net/icmp without a pseudo-header). Returns the length, WR_ERR_LIMIT or
 * WR_ERR_INVAL for a |version| other than 4 or 6. */
int wr_icmp_msg_build_echo(uint8_t version, uint8_t type, uint16_t id, uint16_t seq,
                           const uint8_t *data, size_t data_len, uint8_t *out, size_t cap);

/* ---- destination unreachable ----------------------------------------------- */

#define WR_ICMPV4_DEST_UNREACH 3
#define WR_ICMPV6_DEST_UNREACH 1
/* ICMPv4 type 3 codes (RFC 792, RFC 1812) */
#define WR_ICMPV4_UNREACH_NET 0
#define WR_ICMPV4_UNREACH_HOST 1
#define WR_ICMPV4_UNREACH_PORT 3
#define WR_ICMPV4_UNREACH_ADMIN 13
/* ICMPv6 type 1 codes (RFC 4443) */
#define WR_ICMPV6_UNREACH_NO_ROUTE 0
#define WR_ICMPV6_UNREACH_ADMIN 1
#define WR_ICMPV6_UNREACH_ADDR 3
#define WR_ICMPV6_UNREACH_PORT 4

/* The destination-unreachable error a router sends for |orig|: from
 * |router| to |orig|'s source, TTL / hop limit 64, ICMPv4 type 3 / ICMPv6
 * type 1 with |code| (the version's own code: WR_ICMPV4_UNREACH_* or
 * WR_ICMPV6_UNREACH_*), 4 zero bytes, then |orig->raw| cut as in
 * wr_icmp_build_time_exceeded. Never answers an ICMP error (RFC 1122
 * 3.2.2, RFC 4443 2.4 (e)): for an |orig| carrying one (ICMPv4 types 3, 4,
 * 5, 11, 12; ICMPv6 types below 128) returns WR_ERR_UNSUPPORTED; likewise
 * for a fragment other than the first. Returns the length, WR_ERR_LIMIT or
 * WR_ERR_INVAL (|router| of another IP version). */
int wr_icmp_build_unreachable(const wr_ip_packet *orig, const wr_ipaddr *router, uint8_t code,
                              uint8_t *out, size_t cap);

#endif
