/* Round-robin admission of jobs by source; see fairq.h. */
#include "edge/fairq.h"

#include <stdint.h>
#include <string.h>

#include "lib/err.h"

/* A source with work: running or waiting items. Sources with work form a
 * ring; among those whose next item has the lowest score, wr_fairq_next
 * serves the one that has waited longest since it arrived or since its
 * last check started or ended: round-robin, with newcomers at the end of
 * the current round. */
struct wr_fairq_src {
  char key[WR_FAIRQ_KEY_MAX];
  unsigned running, queued;
  uint64_t stamp;                     /* q->clock when it arrived or last started/ended a check */
  wr_fairq_item *head, *tail;         /* waiting items, oldest first */
  struct wr_fairq_src *rnext, *rprev; /* the ring; rnext is the free list when unused */
};

struct wr_fairq {
  const wr_mem *mem;
  unsigned max_running, max_queued, per_running, per_queued;
  unsigned running, queued;
  wr_fairq_src *pool;
  size_t npool;
  wr_fairq_src *free_list;
  wr_fairq_src *ring; /* any source with work; NULL: none has */
  uint64_t clock;     /* counts arrivals and turns */
};

int wr_fairq_new(const wr_fairq_config *cfg, wr_fairq **out) {
  static const wr_fairq_config defaults = {0};
  const wr_mem *mem;
  wr_fairq *q;
  *out = NULL;
  if (!cfg) cfg = &defaults;
  mem = cfg->mem ? cfg->mem : wr_mem_default();
  if (!(q = wr_calloc(mem, 1, sizeof(*q)))) return WR_ERR_NOMEM;
  q->mem = mem;
  q->max_running = cfg->max_running ? cfg->max_running : 4;
  q->max_queued = cfg->max_queued ? cfg->max_queued : 64;
  q->per_running = cfg->per_source_running ? cfg->per_source_running : 1;
  q->per_queued = cfg->per_source_queued ? cfg->per_source_queued : 2;
  /* Every source with work has an item, and a newcomer may be added
   * before another's item is dropped. */
  q->npool = (size_t)q->max_running + q->max_queued + 1;
  if (!(q->pool = wr_calloc(mem, q->npool, sizeof(*q->pool)))) {
    wr_free(mem, q);
    return WR_ERR_NOMEM;
  }
  for (size_t i = 0; i < q->npool; i++) {
    q->pool[i].rnext = q->free_list;
    q->free_list = &q->pool[i];
  }
  *out = q;
  return WR_OK;
}

void wr_fairq_free(wr_fairq *q) {
  if (!q) return;
  wr_free(q->mem, q->pool);
  wr_free(q->mem, q);
}

/* Sources with work are few (at most max_running + max_queued): a walk
 * over them is cheaper than keeping an index. */
static wr_fairq_src *src_find(wr_fairq *q, const char *key) {
  wr_fairq_src *s = q->ring;
  if (!s) return NULL;
  do {
    if (strncmp(s->key, key, WR_FAIRQ_KEY_MAX - 1) == 0) return s;
    s = s->rnext;
  } while (s != q->ring);
  return NULL;
}

/* A record for a source that had no work. */
static wr_fairq_src *src_add(wr_fairq *q, const char *key) {
  wr_fairq_src *s = q->free_list;
  if (!s) return NULL; /* cannot happen: the pool is sized for the worst case */
  q->free_list = s->rnext;
  memset(s, 0, sizeof(*s));
  memcpy(s->key, key, strnlen(key, WR_FAIRQ_KEY_MAX - 1));
  s->stamp = q->clock++;
  if (!q->ring) {
    s->rnext = s->rprev = s;
    q->ring = s;
  } else {
    s->rnext = q->ring;
    s->rprev = q->ring->rprev;
    s->rprev->rnext = s;
    q->ring->rprev = s;
  }
  return s;
}

/* Leaves the ring once the source has no work. */
static void src_release(wr_fairq *q, wr_fairq_src *s) {
  if (s->running || s->queued) return;
  if (s->rnext == s) {
    q->ring = NULL;
  } else {
    if (q->ring == s) q->ring = s->rnext;
    s->rprev->rnext = s->rnext;
    s->rnext->rprev = s->rprev;
  }
  s->rnext = q->free_list;
  q->free_list = s;
}

static void enqueue(wr_fairq *q, wr_fairq_src *s, wr_fairq_item *it) {
  it->next = NULL;
  it->src = s;
  it->running = 0;
  if (s->tail) s->tail->next = it;
  else s->head = it;
  s->tail = it;
  s->queued++;
  q->queued++;
}

/* Unlinks waiting |it| from its source. */
static void dequeue(wr_fairq *q, wr_fairq_item *it) {
  wr_fairq_src *s = it->src;
  wr_fairq_item *prev = NULL;
  for (wr_fairq_item *i = s->head; i && i != it; i = i->next) prev = i;
  if (prev) prev->next = it->next;
  else s->head = it->next;
  if (s->tail == it) s->tail = prev;
  it->next = NULL;
  s->queued--;
  q->queued--;
}

static void start(wr_fairq *q, wr_fairq_src *s, wr_fairq_item *it) {
  it->src = s;
  it->next = NULL;
  it->running = 1;
  s->running++;
  s->stamp = q->clock++;
  q->running++;
}

/* The waiting item with the highest score above |score|, or NULL; among
 * equals the newest (it waited least). */
static wr_fairq_item *most_suspect(wr_fairq *q, unsigned score) {
  wr_fairq_item *best = NULL;
  wr_fairq_src *v = q->ring;
  if (!v) return NULL;
  do {
    for (wr_fairq_item *i = v->head; i; i = i->next)
      if (i->score > score && (!best || i->score >= best->score)) best = i;
    v = v->rnext;
  } while (v != q->ring);
  return best;
}

int wr_fairq_push(wr_fairq *q, const char *key, unsigned score, wr_fairq_item *it,
                  wr_fairq_item **dropped) {
  wr_fairq_src *s = src_find(q, key), *victim = NULL;
  wr_fairq_item *out = NULL;
  *dropped = NULL;
  it->score = score;
  if (s && s->running + s->queued >= q->per_running + q->per_queued) return WR_ERR_LIMIT;
  if (q->running < q->max_running && (!s || s->running < q->per_running)) {
    if (!s && !(s = src_add(q, key))) return WR_ERR_LIMIT;
    start(q, s, it);
    return WR_OK;
  }
  if (q->queued >= q->max_queued) {
    /* Full. A source that already has work is the one to refuse. */
    if (s) return WR_ERR_LIMIT;
    unsigned most = 1;
    wr_fairq_src *v = q->ring;
    if (v) do {
        if (v->queued && v->running + v->queued > most) {
          most = v->running + v->queued;
          victim = v;
        }
        v = v->rnext;
      } while (v != q->ring);
    if (victim) out = victim->tail; /* its newest: the one that waited least */
    else if (!(out = most_suspect(q, score))) return WR_ERR_LIMIT;
  }
  if (!s && !(s = src_add(q, key))) return WR_ERR_LIMIT;
  if (out) {
    wr_fairq_src *from = out->src;
    dequeue(q, out);
    out->src = NULL;
    src_release(q, from);
    *dropped = out;
  }
  enqueue(q, s, it);
  return WR_AGAIN;
}

void wr_fairq_done(wr_fairq *q, wr_fairq_item *it) {
  wr_fairq_src *s = it->src;
  if (!s || !it->running) return;
  it->running = 0;
  it->src = NULL;
  s->running--;
  q->running--;
  /* A source whose check just ended goes to the back of the round: sources
   * that arrived while it ran have waited longer. */
  s->stamp = q->clock++;
  src_release(q, s);
}

wr_fairq_item *wr_fairq_next(wr_fairq *q) {
  wr_fairq_src *s = q->ring, *best = NULL;
  wr_fairq_item *it;
  if (!s || q->running >= q->max_running || !q->queued) return NULL;
  do {
    if (s->head && s->running < q->per_running &&
        (!best || s->head->score < best->head->score ||
         (s->head->score == best->head->score && s->stamp < best->stamp)))
      best = s;
    s = s->rnext;
  } while (s != q->ring);
  if (!best) return NULL;
  it = best->head;
  dequeue(q, it);
  start(q, best, it);
  return it;
}

void wr_fairq_remove(wr_fairq *q, wr_fairq_item *it) {
  wr_fairq_src *s = it->src;
  if (!s) return;
  if (it->running) {
    wr_fairq_done(q, it);
    return;
  }
  dequeue(q, it);
  it->src = NULL;
  src_release(q, s);
}

unsigned wr_fairq_source_work(wr_fairq *q, const char *key) {
  wr_fairq_src *s = src_find(q, key);
  return s ? s->running + s->queued : 0;
}

void wr_fairq_counts(const wr_fairq *q, unsigned *running, unsigned *queued) {
  if (running) *running = q->running;
  if (queued) *queued = q->queued;
}
