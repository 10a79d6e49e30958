/* Per-thread scratch buffers: see thread_buf.h. */
#include "lib/thread_buf.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct tbufs {
  uint8_t *buf[WR_TBUF_KINDS];
  unsigned char lent[WR_TBUF_KINDS];
} tbufs;

static _Thread_local tbufs *mine;

static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Runs in a thread that exits with buffers. */
static void free_tbufs(void *p) {
  tbufs *t = p;
  for (int i = 0; i < WR_TBUF_KINDS; i++) free(t->buf[i]);
  free(t);
  mine = NULL;
}

static void key_init(void) { (void)pthread_key_create(&key, free_tbufs); }

uint8_t *wr_tbuf_take(wr_tbuf_kind kind, size_t size) {
  if ((unsigned)kind >= WR_TBUF_KINDS) return NULL;
  if (!mine) {
    if (!(mine = calloc(1, sizeof(*mine)))) return NULL;
    (void)pthread_once(&once, key_init);
    (void)pthread_setspecific(key, mine);
  }
  if (mine->lent[kind]) return NULL;
  if (!mine->buf[kind] && !(mine->buf[kind] = malloc(size))) return NULL;
  mine->lent[kind] = 1;
  return mine->buf[kind];
}

void wr_tbuf_give(wr_tbuf_kind kind, const void *b) {
  if ((unsigned)kind < WR_TBUF_KINDS && mine && b && b == mine->buf[kind]) mine->lent[kind] = 0;
}
