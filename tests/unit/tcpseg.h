/* Hand-built TCP/IP segments for the unit tests of the edge's TCP stack and
 * its glue: a builder with valid IPv4/IPv6 and TCP checksums, and a parser
 * that checks the checksums of what the stack emits. */
#ifndef WR_TEST_TCPSEG_H
#define WR_TEST_TCPSEG_H
#include <stdint.h>
#include <string.h>

#include "proto/ippacket.h"
#include "unit.h"

#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_PSH 0x08
#define F_ACK 0x10

typedef struct pkt {
  uint8_t b[1600];
  size_t len;
} pkt;

/* Keeps a copy of the packet |p| the stack emitted as out[*n] (|max| slots);
 * fails the test if it does not fit. */
static inline void pkt_record(pkt *out, size_t max, size_t *n, const uint8_t *p, size_t len) {
  assert_true(len <= sizeof(out[0].b));
  assert_true(*n < max);
  memcpy(out[*n].b, p, len);
  out[*n].len = len;
  (*n)++;
}

/* ---- packets ----------------------------------------------------------------- */

static inline uint32_t sum16(uint32_t acc, const uint8_t *p, size_t n) {
  for (; n > 1; p += 2, n -= 2) acc += (uint32_t)p[0] << 8 | p[1];
  if (n) acc += (uint32_t)p[0] << 8;
  return acc;
}

static inline uint16_t fold(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return (uint16_t)~acc;
}

static inline uint16_t tcp_sum(const wr_ipaddr *src, const wr_ipaddr *dst, const uint8_t *seg, size_t n) {
  size_t al = src->version == 4 ? 4 : 16;
  uint32_t acc = sum16(sum16(0, src->b, al), dst->b, al);
  acc += 6 + (uint32_t)n;
  return fold(sum16(acc, seg, n));
}

static inline void put16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void put32(uint8_t *p, uint32_t v) {
  put16(p, v >> 16);
  put16(p + 2, v);
}
static inline uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Builds an IPv4 or IPv6 TCP segment with valid checksums. */
static inline size_t build(pkt *o, const char *src, uint16_t sport, const char *dst, uint16_t dport,
                    uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, const void *data,
                    size_t n) {
  wr_ipaddr s, d;
  assert_int_equal(wr_ipaddr_parse(src, &s), 0);
  assert_int_equal(wr_ipaddr_parse(dst, &d), 0);
  size_t ih = s.version == 4 ? 20 : 40;
  uint8_t *ip = o->b, *tcp = o->b + ih;
  memset(o->b, 0, ih + 20);
  if (s.version == 4) {
    ip[0] = 0x45;
    put16(ip + 2, (uint32_t)(ih + 20 + n));
    ip[6] = 0x40; /* DF */
    ip[8] = 64;
    ip[9] = 6;
    memcpy(ip + 12, s.b, 4);
    memcpy(ip + 16, d.b, 4);
    put16(ip + 10, wr_ipv4_header_checksum(ip, 20));
  } else {
    ip[0] = 0x60;
    put16(ip + 4, (uint32_t)(20 + n));
    ip[6] = 6;
    ip[7] = 64;
    memcpy(ip + 8, s.b, 16);
    memcpy(ip + 24, d.b, 16);
  }
  put16(tcp, sport);
  put16(tcp + 2, dport);
  put32(tcp + 4, seq);
  put32(tcp + 8, ack);
  tcp[12] = 5 << 4;
  tcp[13] = flags;
  put16(tcp + 14, win);
  if (n) memcpy(tcp + 20, data, n);
  put16(tcp + 16, tcp_sum(&s, &d, tcp, 20 + n));
  o->len = ih + 20 + n;
  return o->len;
}

typedef struct seg {
  wr_ip_packet ip;
  uint16_t sport, dport, win;
  uint32_t seq, ack;
  uint8_t flags;
  const uint8_t *data;
  size_t n;
} seg;

/* Decodes an emitted packet and checks its checksums. */
static inline seg parse(const pkt *p) {
  seg g;
  memset(&g, 0, sizeof(g));
  assert_int_equal(wr_ip_decode(p->b, p->len, &g.ip), 0);
  assert_int_equal(g.ip.protocol, 6);
  if (g.ip.version == 4) assert_int_equal(wr_inet_checksum(p->b, 20), 0);
  const uint8_t *t = g.ip.payload;
  uint16_t want = (uint16_t)(t[16] << 8 | t[17]);
  uint8_t tmp[1600];
  memcpy(tmp, t, g.ip.payload_len);
  tmp[16] = tmp[17] = 0;
  assert_int_equal(tcp_sum(&g.ip.src, &g.ip.dst, tmp, g.ip.payload_len), want);
  g.sport = (uint16_t)(t[0] << 8 | t[1]);
  g.dport = (uint16_t)(t[2] << 8 | t[3]);
  g.seq = get32(t + 4);
  g.ack = get32(t + 8);
  g.flags = t[13];
  g.win = (uint16_t)(t[14] << 8 | t[15]);
  size_t off = (size_t)(t[12] >> 4) * 4;
  g.data = t + off;
  g.n = g.ip.payload_len - off;
  return g;
}

#endif
