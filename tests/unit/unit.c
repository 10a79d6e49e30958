#include "unit.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/file.h"

uint8_t *unit_read_vector(const char *name, size_t *len) {
  char path[512];
  char *data = NULL;
  snprintf(path, sizeof(path), "tests/vectors/%s", name);
  if (wr_file_read(path, 64 << 20, &data, len) != 0) {
    print_error("cannot read vector %s (run from the repository root)\n", path);
    fail();
  }
  return (uint8_t *)data;
}

uint8_t *unit_hex(const char *hex, size_t *len) {
  size_t n = strlen(hex), o = 0;
  uint8_t *out = malloc(n / 2 + 1);
  int hi = -1;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)hex[i], v = 0;
    if (isspace(c)) continue;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else fail_msg("bad hex digit '%c'", c);
    if (hi < 0) hi = v;
    else out[o++] = (uint8_t)(hi << 4 | v), hi = -1;
  }
  *len = o;
  return out;
}

static void *fm_malloc(size_t size, void *user) {
  unit_failmem *fm = user;
  if (fm->calls++ == fm->fail_at) return NULL;
  void *p = malloc(size);
  if (p) fm->live++;
  return p;
}
static void fm_free(void *ptr, void *user) {
  unit_failmem *fm = user;
  if (ptr) fm->live--;
  free(ptr);
}
static void *fm_calloc(size_t n, size_t size, void *user) {
  unit_failmem *fm = user;
  if (fm->calls++ == fm->fail_at) return NULL;
  void *p = calloc(n, size);
  if (p) fm->live++;
  return p;
}
static void *fm_realloc(void *ptr, size_t size, void *user) {
  unit_failmem *fm = user;
  if (fm->calls++ == fm->fail_at) return NULL;
  void *p = realloc(ptr, size);
  if (p && !ptr) fm->live++;
  return p;
}

void unit_failmem_init(unit_failmem *fm, long fail_at) {
  fm->mem = (wr_mem){fm_malloc, fm_free, fm_calloc, fm_realloc, fm};
  fm->fail_at = fail_at;
  fm->calls = 0;
  fm->live = 0;
}
