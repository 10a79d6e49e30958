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

/* Targets that fuzz several decoders with one input: the first byte picks
 * the case, which runs on the rest (|in|, |n| bytes, not NUL-terminated). */
typedef void (*fuzz_case)(const char *in, size_t n);

/* Runs cases[data[0] % n_cases] on the bytes after the first; an empty
 * input runs nothing. Returns 0 (libFuzzer's "carry on"). */
static inline int fuzz_pick(const fuzz_case *cases, size_t n_cases, const uint8_t *data,
                            size_t size) {
  if (size < 1) return 0;
  cases[data[0] % n_cases]((const char *)data + 1, size - 1);
  return 0;
}
#define FUZZ_PICK(cases, data, size) \
  fuzz_pick((cases), sizeof(cases) / sizeof((cases)[0]), (data), (size))

#endif
