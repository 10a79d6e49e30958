/* The ngtcp2_mem every QUIC connection allocates through (quic_int.h).
 *
 * Why: ngtcp2 0.12 (Debian's libngtcp2 0.12.1) reserves its object pools
 * in large blocks it mostly never uses. Each ngtcp2_ksl takes 8 of its
 * 31-node blocks at its first insert (4-12 KB for one block's worth of
 * use) and the stream, frame and sent-packet pools take 64 objects at a
 * time (7-11 KB); a registered tunnel connection has nine such blocks,
 * 71 KB of its ~80 KB in ngtcp2, of which it touches about one page each
 * (massif, bench/memory.py registered; ngtcp2 1.6.0 cut these units to
 * one block and 16 objects).
 * From malloc those blocks come out of a heap whose pages are already
 * resident, so all of it counts. Here every malloc/realloc of
 * WR_QUIC_MEM_PAGED bytes or more gets whole pages of its own, fresh or
 * given back to the kernel (MADV_DONTNEED) when freed: the pages ngtcp2
 * never touches stay out of RSS. calloc stays on the C heap: a calloc'd
 * object (the 8 KB ngtcp2_conn) is written whole, and rounding it up to
 * pages would cost more than it saves.
 *
 * Page runs of up to RUN_MAX_PAGES come from 1 MiB mappings carved in
 * order, and go back to a free list per run length (never unmapped: one
 * mapping per MiB of peak use, instead of one per block, keeps the count
 * of kernel mappings low); longer runs are mappings of their own. Every
 * block starts with a 16-byte header (its size, its run length; 0 for a C
 * heap block), so free and realloc know where it came from. Thread-safe
 * (one mutex, taken only for page runs). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ngtcp2/ngtcp2.h>

#include "net/quic_int.h"

#define HDR 16u
#define RUN_MAX_PAGES 16u
#define SLAB_BYTES ((size_t)1 << 20)

typedef struct {
  size_t size;  /* what the caller asked for */
  size_t pages; /* 0: C heap block; else pages of its run */
} blk_hdr;

static struct {
  pthread_mutex_t mu;
  size_t page;
  uint8_t *cur, *end; /* unused part of the newest slab */
  void **free_runs[RUN_MAX_PAGES + 1];
  size_t nfree[RUN_MAX_PAGES + 1], capfree[RUN_MAX_PAGES + 1];
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *hdr_init(void *base, size_t size, size_t pages) {
  blk_hdr *h = base;
  h->size = size;
  h->pages = pages;
  return (uint8_t *)base + HDR;
}

static blk_hdr *hdr_of(void *p) { return (blk_hdr *)(void *)((uint8_t *)p - HDR); }

static void *map_pages(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

/* A run of |pages| (<= RUN_MAX_PAGES), zero-filled; NULL if out of memory.
 * Called with pool.mu held. */
static void *run_get(size_t pages) {
  size_t bytes = pages * pool.page;
  uint8_t *p;
  if (pool.nfree[pages] > 0) return pool.free_runs[pages][--pool.nfree[pages]];
  if ((size_t)(pool.end - pool.cur) < bytes) {
    /* The old slab's tail stays unused: address space only, never touched. */
    uint8_t *slab = map_pages(SLAB_BYTES);
    if (!slab) return NULL;
    pool.cur = slab;
    pool.end = slab + SLAB_BYTES;
  }
  p = pool.cur;
  pool.cur += bytes;
  return p;
}

/* Gives the pages of a run back to the kernel and keeps the run for reuse
 * (it reads as zeros again). Called with pool.mu held. */
static void run_put(void *base, size_t pages) {
  madvise(base, pages * pool.page, MADV_DONTNEED);
  if (pool.nfree[pages] == pool.capfree[pages]) {
    size_t cap = pool.capfree[pages] ? 2 * pool.capfree[pages] : 64;
    void **n = realloc(pool.free_runs[pages], cap * sizeof(*n));
    if (!n) return; /* the run's address space is lost, its memory is not */
    pool.free_runs[pages] = n;
    pool.capfree[pages] = cap;
  }
  pool.free_runs[pages][pool.nfree[pages]++] = base;
}

static void *paged_alloc(size_t size) {
  size_t pages;
  void *base;
  if (size > SIZE_MAX / 2) return NULL;
  pthread_mutex_lock(&pool.mu);
  if (!pool.page) pool.page = (size_t)sysconf(_SC_PAGESIZE);
  pages = (size + HDR + pool.page - 1) / pool.page;
  base = pages <= RUN_MAX_PAGES ? run_get(pages) : map_pages(pages * pool.page);
  pthread_mutex_unlock(&pool.mu);
  return base ? hdr_init(base, size, pages) : NULL;
}

static void *m_malloc(size_t size, void *user) {
  void *base;
  (void)user;
  if (size >= WR_QUIC_MEM_PAGED) return paged_alloc(size);
  base = malloc(size + HDR);
  return base ? hdr_init(base, size, 0) : NULL;
}

static void m_free(void *p, void *user) {
  blk_hdr *h;
  size_t pages;
  (void)user;
  if (!p) return;
  h = hdr_of(p);
  pages = h->pages;
  if (!pages) {
    free(h);
  } else if (pages > RUN_MAX_PAGES) {
    munmap(h, pages * pool.page);
  } else {
    pthread_mutex_lock(&pool.mu);
    run_put(h, pages);
    pthread_mutex_unlock(&pool.mu);
  }
}

static void *m_calloc(size_t nmemb, size_t size, void *user) {
  void *base;
  (void)user;
  if (size && nmemb > (SIZE_MAX - HDR) / size) return NULL;
  base = calloc(1, nmemb * size + HDR);
  return base ? hdr_init(base, nmemb * size, 0) : NULL;
}

static void *m_realloc(void *p, size_t size, void *user) {
  blk_hdr *h;
  void *n;
  if (!p) return m_malloc(size, user);
  h = hdr_of(p);
  if (!h->pages && size < WR_QUIC_MEM_PAGED) {
    void *base = realloc(h, size + HDR);
    return base ? hdr_init(base, size, 0) : NULL;
  }
  n = m_malloc(size, user);
  if (!n) return NULL;
  memcpy(n, p, h->size < size ? h->size : size);
  m_free(p, user);
  return n;
}

static const ngtcp2_mem quic_mem = {NULL, m_malloc, m_free, m_calloc, m_realloc};

const ngtcp2_mem *wr__quic_mem(void) { return &quic_mem; }
