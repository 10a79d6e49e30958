/* A fixed set of "tell me when it changed" callbacks: the slots an object
 * with a few long-lived listeners (edge/access.c, edge/certs_issue.c)
 * keeps in its own struct, so that adding one never allocates. A slot is
 * free while its cb is NULL; a zeroed array is an empty set. */
#ifndef WR_LIB_WATCHERS_H
#define WR_LIB_WATCHERS_H
#include <stddef.h>

typedef struct wr_watcher {
  void (*cb)(void *user);
  void *user;
} wr_watcher;

/* Puts (|cb|, |user|) in the first free of the |n| slots |w|. Returns
 * WR_OK, or WR_ERR_LIMIT when all are taken (nothing changes). */
int wr_watchers_add(wr_watcher *w, size_t n, void (*cb)(void *user), void *user);
/* Frees every slot of |user| (none: a no-op). */
void wr_watchers_remove(wr_watcher *w, size_t n, void *user);
/* Calls each watcher's cb with its user, in slot order. A cb may remove
 * watchers (its own too): a freed slot is skipped. */
void wr_watchers_notify(const wr_watcher *w, size_t n);

#endif
