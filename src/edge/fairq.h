/* Fair admission of costly jobs (password checks, edge/login.h) by source.
 *
 * A fixed number of jobs run at once (|max_running|). Past that, jobs wait
 * in a bounded queue and are started round-robin by source, so one source
 * that sends a flood gets one turn in as many as every other waiting
 * source. Each source may have |per_source_running| jobs running and
 * |per_source_queued| more waiting; past that its new jobs are refused.
 * When the whole queue (|max_queued|) is full, a new job from a source that
 * has nothing running or waiting still gets in: the newest waiting job of
 * the source with the most work is pushed out to make room. A flood from
 * one source (or a few) thus costs everyone else at most a short wait,
 * never a refusal.
 *
 * Each job also has a score, how suspect it is (for sign-ins: the recent
 * failures of its source). Among the sources whose turn it could be, the
 * one whose next job has the lowest score goes first (round-robin among
 * equals), and a full queue of single jobs from distinct sources pushes out
 * its highest-scored waiting job for a newcomer with a lower score. Many
 * sources that keep failing (a spraying botnet) thus queue behind, and make
 * room for, sources without failures. Only a full queue of jobs scored no
 * higher than the newcomer's refuses it.
 *
 * Sans-I/O and allocation-free after wr_fairq_new: jobs embed a
 * wr_fairq_item, and the per-source records come from a pool sized for the
 * most sources that can have work at once (max_running + max_queued + 1).
 * Not thread-safe: one owner thread. */
#ifndef WR_EDGE_FAIRQ_H
#define WR_EDGE_FAIRQ_H
#include <stddef.h>

#include "lib/mem.h"

#define WR_FAIRQ_KEY_MAX 64 /* a source key (edge/throttle.h) fits */

typedef struct wr_fairq wr_fairq;
typedef struct wr_fairq_src wr_fairq_src;

/* Embed one in each job. The queue owns the fields while the item is in
 * it (from an accepted push until wr_fairq_done, or until it was dropped or
 * removed). */
typedef struct wr_fairq_item {
  struct wr_fairq_item *next; /* private */
  wr_fairq_src *src;          /* private */
  unsigned score;             /* as given to wr_fairq_push */
  int running;                /* 1 once the item may run */
} wr_fairq_item;

/* Zero fields take the defaults. */
typedef struct wr_fairq_config {
  const wr_mem *mem;            /* NULL: libc */
  unsigned max_running;         /* default 4 */
  unsigned max_queued;          /* default 64 */
  unsigned per_source_running;  /* default 1 */
  unsigned per_source_queued;   /* default 2 */
} wr_fairq_config;

/* Returns WR_OK or WR_ERR_NOMEM; *out is NULL on failure. */
int wr_fairq_new(const wr_fairq_config *cfg, wr_fairq **out);
/* Frees the queue; items still in it are forgotten (not touched). NULL is
 * a no-op. */
void wr_fairq_free(wr_fairq *q);

/* Offers |it| from source |key| (cut at WR_FAIRQ_KEY_MAX - 1 bytes) with
 * |score| (0: nothing suspect; higher waits longer). Returns:
 *   WR_OK         it runs now (it->running is 1): call wr_fairq_done when it ends;
 *   WR_AGAIN      it waits: wr_fairq_next hands it out when its turn comes;
 *   WR_ERR_LIMIT  refused: its source has all the work it may have, or the
 *                 queue is full of sources with one job each, none scored
 *                 higher. |it| is not in the queue.
 * *dropped (never NULL) is set to a waiting item of another source that was
 * pushed out to make room for |it|, or NULL: that item is no longer in the
 * queue and its owner must be told (refused as with WR_ERR_LIMIT). */
int wr_fairq_push(wr_fairq *q, const char *key, unsigned score, wr_fairq_item *it,
                  wr_fairq_item **dropped);

/* A running item ended: frees its slot. Then call wr_fairq_next until it
 * returns NULL to start the jobs that may now run. */
void wr_fairq_done(wr_fairq *q, wr_fairq_item *it);

/* The next waiting item allowed to run (lowest score first, round-robin
 * over sources among equals), now marked running, or NULL if none may run
 * yet. */
wr_fairq_item *wr_fairq_next(wr_fairq *q);

/* Takes a waiting item out without running it (its owner gave up). A
 * running item is ended as with wr_fairq_done. */
void wr_fairq_remove(wr_fairq *q, wr_fairq_item *it);

/* The items of source |key| running and waiting now (0 for a source the
 * queue does not know): tells a refusal for the source's own share from a
 * queue full of others. */
unsigned wr_fairq_source_work(wr_fairq *q, const char *key);

/* Items running and waiting now. */
void wr_fairq_counts(const wr_fairq *q, unsigned *running, unsigned *queued);

#endif
