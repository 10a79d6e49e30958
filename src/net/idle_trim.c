/* Returning freed heap memory once idle: see idle_trim.h. */
#include "net/idle_trim.h"

#include <malloc.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "lib/log.h"

struct wr_idle_trim {
  uv_timer_t timer;
  uint64_t last_cpu_us;
  int trimmed;
};

int wr_idle_trim_due(uint64_t cpu_us, uint64_t interval_us, size_t (*heap_free)(void),
                     int *trimmed) {
  if (cpu_us * 100 >= interval_us) { /* busy: 1 % of a core or more */
    *trimmed = 0;
    return 0;
  }
  if (*trimmed || heap_free() < WR_IDLE_TRIM_MIN) return 0;
  *trimmed = 1;
  return 1;
}

/* A walk of the free lists under every arena's lock: only asked when a
 * trim may follow. */
static size_t heap_free_bytes(void) { return mallinfo2().fordblks; }

static uint64_t process_cpu_us(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static void on_tick(uv_timer_t *h) {
  wr_idle_trim *t = h->data;
  uint64_t cpu = process_cpu_us();
  uint64_t used = cpu >= t->last_cpu_us ? cpu - t->last_cpu_us : 0;
  t->last_cpu_us = cpu;
  if (wr_idle_trim_due(used, (uint64_t)WR_IDLE_TRIM_MS * 1000u, heap_free_bytes, &t->trimmed)) {
    (void)malloc_trim(0);
    wr_debug("idle: gave the free pages of the heap back to the kernel");
  }
}

wr_idle_trim *wr_idle_trim_start(uv_loop_t *loop) {
  wr_idle_trim *t = calloc(1, sizeof(*t));
  if (!t) return NULL;
  uv_timer_init(loop, &t->timer);
  t->timer.data = t;
  t->last_cpu_us = process_cpu_us();
  uv_timer_start(&t->timer, on_tick, WR_IDLE_TRIM_MS, WR_IDLE_TRIM_MS);
  uv_unref((uv_handle_t *)&t->timer);
  return t;
}

static void on_closed(uv_handle_t *h) { free(h->data); }

void wr_idle_trim_free(wr_idle_trim *t) {
  if (t) uv_close((uv_handle_t *)&t->timer, on_closed);
}
