/* Fixed-width integers read from and written to byte buffers in a given
 * byte order: network order (big-endian) for IP, UDP, TCP, DNS and the
 * tunnel's datagrams; little-endian for Cap'n Proto, WireGuard and SipHash.
 *
 * Each function touches exactly its 2, 4 or 8 bytes at |p|, which the caller
 * has checked are there (no bounds are known here); |p| need not be aligned.
 * The wider ones are one unaligned load or store and at most a byte swap
 * (memcpy), as Cap'n Proto decoding reads a word per pointer. Pure, no
 * allocation, callable from anywhere. The functions: wr_get_be16, wr_put_be16
 * and, made by WR__BYTES_ACCESSORS below, wr_get_/wr_put_ be32, be64, le32
 * and le64. */
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

/* One load (wr_get_<order><bits>) and one store (wr_put_<order><bits>) per
 * width and byte order; WR__<ORDER><bits> swaps to or from host order. */
#define WR__BYTES_ACCESSORS(order, ORDER, bits)                                        \
  static inline uint##bits##_t wr_get_##order##bits(const uint8_t *p) {               \
    uint##bits##_t v;                                                                  \
    memcpy(&v, p, sizeof(v));                                                          \
    return WR__##ORDER##bits(v);                                                       \
  }                                                                                    \
  static inline void wr_put_##order##bits(uint8_t *p, uint##bits##_t v) {             \
    v = WR__##ORDER##bits(v);                                                          \
    memcpy(p, &v, sizeof(v));                                                          \
  }

WR__BYTES_ACCESSORS(be, BE, 32)
WR__BYTES_ACCESSORS(be, BE, 64)
WR__BYTES_ACCESSORS(le, LE, 32)
WR__BYTES_ACCESSORS(le, LE, 64)

#endif
