/* SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
 * 2012), 64-bit output: the keyed hash for tables whose keys the peers
 * choose (source addresses, emails), so that nobody who does not know the
 * key can make entries collide into one chain.
 *
 * Pure function: no allocation, no failure; callable anywhere. The key
 * (k0, k1) should come from wr_random_bytes once per table. */
#ifndef WR_SIPHASH_H
#define WR_SIPHASH_H
#include <stddef.h>
#include <stdint.h>

/* The hash of |len| bytes at |in| (|in| may be NULL when |len| is 0) under
 * the key k0 || k1 (k0 from bytes 0..7 of a 16-byte key, little-endian). */
uint64_t wr_siphash24(uint64_t k0, uint64_t k1, const uint8_t *in, size_t len);
/* Splits a 16-byte key into (k0, k1) as the reference code reads it. */
void wr_siphash_key(const uint8_t key[16], uint64_t *k0, uint64_t *k1);

#endif
