/* What every libFuzzer target in tests/fuzz shares: the prototypes of the
 * entry points (the build wants a prototype before each definition) and
 * CHECK, which says which check failed and where, then traps, so that
 * libFuzzer keeps the input that broke it.
 *
 * Header-only on purpose: each target is one translation unit linked against
 * libwarren.a, and this is test scaffolding, not library code. */
#ifndef WR_FUZZ_H
#define WR_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional: libFuzzer calls it once before the first input when defined. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK(c)                                                                   \
  do {                                                                             \
    if (!(c)) {                                                                    \
      fprintf(stderr, "%s: check failed: %s (line %d)\n", __FILE__, #c, __LINE__); \
      __builtin_trap();                                                            \
    }                                                                              \
  } while (0)

#endif
