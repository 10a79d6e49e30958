/* String hashing for the edge's in-memory tables (routes, certificates,
 * connections by id and by tunnel, the Access host cache): 32-bit FNV-1a.
 * Not for anything an attacker may steer into collisions at will; those
 * tables use siphash (lib/siphash.h). Pure, callable from anywhere. */
#ifndef WR_LIB_HASH_H
#define WR_LIB_HASH_H
#include <stdint.h>

/* FNV-1a of the NUL-terminated |s|. */
static inline uint32_t wr_hash_str(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

/* The same over |s| lower-cased (ASCII): for keys compared without case. */
static inline uint32_t wr_hash_str_nocase(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) {
    uint8_t ch = (uint8_t)*s;
    h = (h ^ (ch >= 'A' && ch <= 'Z' ? ch + 32 : ch)) * 16777619u;
  }
  return h;
}

#endif
