/* Fixed-width integers read from and written to byte buffers in a given
 * byte order: network order (big-endian) for IP, UDP, TCP, DNS and the
 * tunnel's datagrams; little-endian for Cap'n Proto, WireGuard and SipHash.
 *
 * Each function touches exactly its 2, 4 or 8 bytes at |p|, which the caller
 * has checked are there (no bounds are known here); |p| need not be aligned.
 * The wider ones are one unaligned load or store and at most a byte swap
 * (memcpy), as Cap'n Proto decoding reads a word per pointer. Pure, no
 * allocation, callable from anywhere. */
#ifndef WR_LIB_BYTES_H
#define WR_LIB_BYTES_H
#include <stdint.h>
#include <string.h>

#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define WR__BE32(v) (v)
#define WR__BE64(v) (v)
#define WR__LE32(v) __builtin_bswap32(v)
#define WR__LE64(v) __builtin_bswap64(v)
#else
#define WR__BE32(v) __builtin_bswap32(v)
#define WR__BE64(v) __builtin_bswap64(v)
#define WR__LE32(v) (v)
#define WR__LE64(v) (v)
#endif

static inline uint16_t wr_get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static inline void wr_put_be16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static inline uint32_t wr_get_be32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return WR__BE32(v);
}

static inline uint64_t wr_get_be64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return WR__BE64(v);
}

static inline uint32_t wr_get_le32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return WR__LE32(v);
}

static inline uint64_t wr_get_le64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return WR__LE64(v);
}

static inline void wr_put_be32(uint8_t *p, uint32_t v) {
  v = WR__BE32(v);
  memcpy(p, &v, 4);
}

static inline void wr_put_be64(uint8_t *p, uint64_t v) {
  v = WR__BE64(v);
  memcpy(p, &v, 8);
}

static inline void wr_put_le32(uint8_t *p, uint32_t v) {
  v = WR__LE32(v);
  memcpy(p, &v, 4);
}

static inline void wr_put_le64(uint8_t *p, uint64_t v) {
  v = WR__LE64(v);
  memcpy(p, &v, 8);
}

#endif
