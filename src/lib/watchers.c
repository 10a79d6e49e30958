/* See watchers.h. */
#include "lib/watchers.h"

#include <string.h>

#include "lib/err.h"

int wr_watchers_add(wr_watcher *w, size_t n, void (*cb)(void *user), void *user) {
  for (size_t i = 0; i < n; i++)
    if (!w[i].cb) {
      w[i].cb = cb;
      w[i].user = user;
      return WR_OK;
    }
  return WR_ERR_LIMIT;
}

void wr_watchers_remove(wr_watcher *w, size_t n, void *user) {
  for (size_t i = 0; i < n; i++)
    if (w[i].user == user) memset(&w[i], 0, sizeof(w[i]));
}

void wr_watchers_notify(const wr_watcher *w, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (w[i].cb) w[i].cb(w[i].user);
}
