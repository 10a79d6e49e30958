/* Freed heap memory goes back to the kernel once the process is idle.
 *
 * glibc keeps what a burst of work freed inside its heap: only the top of
 * the heap is ever returned, and only beyond WR_MALLOC_TRIM (lib/mem.h),
 * so after eight 100 MB downloads through four connections a connector
 * kept 5 MiB of free heap resident (13.0 MiB; 8.1 MiB once trimmed).
 * Trimming while busy would cost page faults and TLB flushes on every
 * burst (why wr_malloc_tune raised the threshold), so a timer looks every
 * WR_IDLE_TRIM_MS at the CPU time the process (all its threads) used since
 * its last look. When that was under 1 % of a core and the heap holds at
 * least WR_IDLE_TRIM_MIN free bytes, it calls malloc_trim(0), which returns
 * the free pages anywhere in the heap; then not again until the process
 * was busy in between.
 *
 * Everything runs on the loop's thread. The timer does not keep the loop
 * alive. */
#ifndef WR_NET_IDLE_TRIM_H
#define WR_NET_IDLE_TRIM_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define WR_IDLE_TRIM_MS 5000u
#define WR_IDLE_TRIM_MIN ((size_t)1 << 20)

typedef struct wr_idle_trim wr_idle_trim;

/* Starts watching on |loop|. Returns NULL (no trimming, nothing else
 * changes) when memory is short. */
wr_idle_trim *wr_idle_trim_start(uv_loop_t *loop);

/* Stops watching; the memory goes with the timer's close callback, so the
 * loop must run once more (as every owner's free does). NULL: a no-op. */
void wr_idle_trim_free(wr_idle_trim *t);

/* The decision, without I/O. |cpu_us|: CPU time used over the last
 * |interval_us|; |heap_free|: returns the free bytes the heap holds (called
 * only when the process was idle and has not trimmed since it was last
 * busy); |*trimmed|: 1 after a trim until a busy interval (kept by the
 * caller, 0 at first). Returns 1 when the caller should trim now. Needs
 * glibc 2.33 or later (mallinfo2). */
int wr_idle_trim_due(uint64_t cpu_us, uint64_t interval_us, size_t (*heap_free)(void),
                     int *trimmed);

#endif
