/* Allocator injection (STYLE.md 1.6): codecs and core objects take a
 * const wr_mem * so tests can fail the Nth allocation. NULL means the
 * default malloc-based allocator. */
#ifndef WR_MEM_H
#define WR_MEM_H
#include <stddef.h>

typedef struct wr_mem {
  void *(*malloc)(size_t size, void *user);
  void (*free)(void *ptr, void *user);
  void *(*calloc)(size_t n, size_t size, void *user);
  void *(*realloc)(void *ptr, size_t size, void *user);
  void *user;
} wr_mem;

/* The libc allocator. */
const wr_mem *wr_mem_default(void);

void *wr_malloc(const wr_mem *mem, size_t size);
void *wr_calloc(const wr_mem *mem, size_t n, size_t size);
void *wr_realloc(const wr_mem *mem, void *ptr, size_t size);
void wr_free(const wr_mem *mem, void *ptr);
/* Copies |len| bytes of |s| into a new NUL-terminated string. */
char *wr_strndup(const wr_mem *mem, const char *s, size_t len);

/* Outside the codecs, Warren aborts on out-of-memory (as h2o and Redis do):
 * these never return NULL. */
void *wr_xmalloc(size_t size);
void *wr_xcalloc(size_t n, size_t size);
void *wr_xrealloc(void *ptr, size_t size);
char *wr_xstrdup(const char *s);
char *wr_xstrndup(const char *s, size_t len);

/* Fixes glibc's malloc thresholds for a long-running server process (call
 * once, first thing in main): free memory at the heap's top is given back
 * to the kernel only beyond WR_MALLOC_TRIM bytes, and blocks of
 * WR_MALLOC_MMAP bytes or more get their own mapping. glibc's defaults
 * (128 KiB, adjusted upwards only after a large mapped block is freed)
 * shrank and regrew the heap with brk(2) every few requests under load:
 * each shrink flushes the TLB of every CPU the process runs on, and with
 * the store and worker threads that was 20 % of an edge's time with a
 * thousand connectors registered. The cost: up to WR_MALLOC_TRIM bytes
 * of a past burst stay mapped. */
#define WR_MALLOC_TRIM (4u << 20)
#define WR_MALLOC_MMAP (1u << 20)
void wr_malloc_tune(void);

#endif
