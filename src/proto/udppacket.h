/* UDP inside IPv4/IPv6 packets, for the edge's router: decode the ports of a
 * client's UDP packet, and build the UDP/IP packet that carries a
 * connector's reply back to the client. Sans-I/O, on top of
 * proto/ippacket.h. Multi-byte fields are big-endian on the wire, host
 * order in the structs. */
#ifndef WR_UDPPACKET_H
#define WR_UDPPACKET_H
#include <stddef.h>
#include <stdint.h>

#include "proto/ippacket.h"

#define WR_IPPROTO_UDP 17
#define WR_IPPROTO_TCP 6
#define WR_UDP_HEADER_LEN 8
#define WR_UDP_DEFAULT_TTL 64

typedef struct wr_udp {
  uint16_t sport, dport;
  uint16_t checksum;      /* as on the wire, not verified */
  const uint8_t *payload; /* points into the packet, cut at the UDP length */
  size_t payload_len;
} wr_udp;

/* Decodes the UDP header of |ip| (wr_ip_decode'd). Returns 0;
 * WR_ERR_UNSUPPORTED if |ip| does not carry UDP or is a fragment (only
 * whole datagrams have both ports and all the payload); WR_ERR_TRUNC if the
 * payload is shorter than 8 bytes or than the UDP length field;
 * WR_ERR_PROTO for a UDP length below 8. */
int wr_udp_decode(const wr_ip_packet *ip, wr_udp *out);

/* The UDP checksum to store for a datagram |udp| (header + payload, bytes
 * 6-7 treated as zero) between |src| and |dst|: over the IPv4 or IPv6
 * pseudo-header. A computed 0 is returned as 0xffff (RFC 768). */
uint16_t wr_udp_checksum(const wr_ipaddr *src, const wr_ipaddr *dst, const uint8_t *udp,
                         size_t len);

/* Builds IPv4 (IHL 5, ID 0, DF clear, header checksum) or IPv6 + UDP
 * (checksum always set: IPv6 requires it) carrying |data| from src:sport
 * to dst:dport with TTL / hop limit |ttl|. Returns the packet length,
 * WR_ERR_LIMIT if it does not fit |cap| or the length fields, or
 * WR_ERR_INVAL if the addresses are not both IPv4 or both IPv6 or |data| is
 * NULL with a non-zero length. */
int wr_udp_build(const wr_ipaddr *src, uint16_t sport, const wr_ipaddr *dst, uint16_t dport,
                 uint8_t ttl, const uint8_t *data, size_t data_len, uint8_t *out, size_t cap);

#endif
