#include "lib/mem.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *def_malloc(size_t size, void *user) { (void)user; return malloc(size); }
static void def_free(void *ptr, void *user) { (void)user; free(ptr); }
static void *def_calloc(size_t n, size_t size, void *user) { (void)user; return calloc(n, size); }
static void *def_realloc(void *ptr, size_t size, void *user) { (void)user; return realloc(ptr, size); }

static const wr_mem default_mem = {def_malloc, def_free, def_calloc, def_realloc, NULL};

const wr_mem *wr_mem_default(void) { return &default_mem; }

void *wr_malloc(const wr_mem *mem, size_t size) {
  if (!mem) mem = &default_mem;
  return mem->malloc(size, mem->user);
}
void *wr_calloc(const wr_mem *mem, size_t n, size_t size) {
  if (!mem) mem = &default_mem;
  return mem->calloc(n, size, mem->user);
}
void *wr_realloc(const wr_mem *mem, void *ptr, size_t size) {
  if (!mem) mem = &default_mem;
  return mem->realloc(ptr, size, mem->user);
}
void wr_free(const wr_mem *mem, void *ptr) {
  if (!mem) mem = &default_mem;
  mem->free(ptr, mem->user);
}
char *wr_strndup(const wr_mem *mem, const char *s, size_t len) {
  char *p = wr_malloc(mem, len + 1);
  if (!p) return NULL;
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}

static void oom(size_t size) {
  fprintf(stderr, "warren: out of memory allocating %zu bytes\n", size);
  abort();
}
void *wr_xmalloc(size_t size) {
  void *p = malloc(size ? size : 1);
  if (!p) oom(size);
  return p;
}
void *wr_xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) oom(n * size);
  return p;
}
void *wr_xrealloc(void *ptr, size_t size) {
  void *p = realloc(ptr, size ? size : 1);
  if (!p) oom(size);
  return p;
}
char *wr_xstrdup(const char *s) { return wr_xstrndup(s, strlen(s)); }
char *wr_xstrndup(const char *s, size_t len) {
  char *p = wr_xmalloc(len + 1);
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}

void wr_malloc_tune(void) {
  (void)mallopt(M_TRIM_THRESHOLD, (int)WR_MALLOC_TRIM);
  (void)mallopt(M_MMAP_THRESHOLD, (int)WR_MALLOC_MMAP);
}
