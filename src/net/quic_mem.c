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
 * WR_QUIC_MEM_PAGED bytes or more gets whole pages of its own: the pages
 * ngtcp2 never touches stay out of RSS. calloc stays on the C heap: a calloc'd
 * object (the 8 KB ngtcp2_conn) is written whole, and rounding it up to
 * pages would cost more than it saves.
 *
 * Page runs of up to RUN_MAX_PAGES come from 1 MiB mappings carved in
 * order, and go back to a free list per run length (never unmapped: one
 * mapping per MiB of peak use, instead of one per block, keeps the count
 * of kernel mappings low); longer runs are mappings of their own. Every
 * block starts with a 16-byte header (its size, its run length; 0 for a C
 * heap block), so free and realloc know where it came from. Thread-safe
 * (one mutex, taken only for page runs).
 *
 * A freed run keeps its pages while the runs kept so make up at most
 * WR_QUIC_MEM_DIRTY_PAGES pages in all, and is reused first: ngtcp2
 * allocates and frees 8 KiB chunks for every stretch of out-of-order stream data (its
 * reorder buffer), and giving those back to the kernel at once would cost
 * a madvise(2), a TLB flush and fresh page faults per chunk after every
 * lost packet. Beyond that bound a freed run's pages go back to the kernel
 * (MADV_DONTNEED). The mappings are marked MADV_NOHUGEPAGE: with
 * transparent huge pages set to "always", khugepaged would otherwise make
 * a 2 MiB stretch with one touched page resident whole. Under ASan, the
 * bytes of a run past its block and every freed run are poisoned, so a use
 * after free or an overflow inside a run is still reported. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ngtcp2/ngtcp2.h>

#include "net/quic_int.h"

#if defined(__SANITIZE_ADDRESS__)
#define QM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QM_ASAN 1
#endif
#endif
#ifdef QM_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define HDR 16u
#define RUN_MAX_PAGES 16u
#define SLAB_MIN ((size_t)1 << 20)

typedef struct {
  size_t size;  /* what the caller asked for */
  size_t pages; /* 0: C heap block; else pages of its run */
} blk_hdr;

/* Freed runs of one length. */
typedef struct {
  void **runs;
  size_t n, cap;
} run_stack;

static struct {
  pthread_mutex_t mu;
  size_t page, slab_bytes;
  uint8_t *cur, *end;  /* unused part of the newest slab */
  run_stack dirty[RUN_MAX_PAGES + 1]; /* pages kept: reused first */
  run_stack clean[RUN_MAX_PAGES + 1]; /* pages given back */
  size_t dirty_pages;
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
  if (p == MAP_FAILED) return NULL;
  (void)madvise(p, bytes, MADV_NOHUGEPAGE);
  return p;
}

static int stack_push(run_stack *s, void *run) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 64;
    void **n = realloc(s->runs, cap * sizeof(*n));
    if (!n) return -1;
    s->runs = n;
    s->cap = cap;
  }
  s->runs[s->n++] = run;
  return 0;
}

/* A run of |pages| (<= RUN_MAX_PAGES); NULL if out of memory. Its
 * contents are undefined (a kept run holds what its last user wrote).
 * Called with pool.mu held. */
static void *run_get(size_t pages) {
  size_t bytes = pages * pool.page;
  uint8_t *p;
  if (pool.dirty[pages].n > 0) {
    pool.dirty_pages -= pages;
    return pool.dirty[pages].runs[--pool.dirty[pages].n];
  }
  if (pool.clean[pages].n > 0) return pool.clean[pages].runs[--pool.clean[pages].n];
  if ((size_t)(pool.end - pool.cur) < bytes) {
    /* The old slab's tail stays unused: address space only, never touched. */
    uint8_t *slab = map_pages(pool.slab_bytes);
    if (!slab) return NULL;
    pool.cur = slab;
    pool.end = slab + pool.slab_bytes;
  }
  p = pool.cur;
  pool.cur += bytes;
  return p;
}

/* Keeps a freed run for reuse: with its pages while the kept ones stay
 * within WR_QUIC_MEM_DIRTY_PAGES, else after giving them back to the kernel.
 * Called with pool.mu held. */
static void run_put(void *base, size_t pages) {
  if (pool.dirty_pages + pages <= WR_QUIC_MEM_DIRTY_PAGES &&
      stack_push(&pool.dirty[pages], base) == 0) {
    pool.dirty_pages += pages;
  } else {
    (void)madvise(base, pages * pool.page, MADV_DONTNEED);
    /* Out of memory for the list: the run's address space is lost, its
     * memory is not. */
    (void)stack_push(&pool.clean[pages], base);
  }
  POISON(base, pages * pool.page);
}

static void *paged_alloc(size_t size) {
  size_t pages;
  void *base;
  if (size > SIZE_MAX / 2) return NULL;
  pthread_mutex_lock(&pool.mu);
  if (!pool.page) {
    pool.page = (size_t)sysconf(_SC_PAGESIZE);
    pool.slab_bytes = RUN_MAX_PAGES * pool.page > SLAB_MIN ? RUN_MAX_PAGES * pool.page : SLAB_MIN;
  }
  pages = (size + HDR + pool.page - 1) / pool.page;
  base = pages <= RUN_MAX_PAGES ? run_get(pages) : map_pages(pages * pool.page);
  pthread_mutex_unlock(&pool.mu);
  if (!base) return NULL;
  UNPOISON(base, HDR + size);
  POISON((uint8_t *)base + HDR + size, pages * pool.page - HDR - size);
  return hdr_init(base, size, pages);
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
    /* No poison may outlive the mapping: the address can be mapped again. */
    UNPOISON(h, pages * pool.page);
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
