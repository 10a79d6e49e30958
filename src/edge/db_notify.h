/* PostgreSQL's LISTEN/NOTIFY on the event loop: a dedicated libpq
 * connection that LISTENs on one channel and reports every notification's
 * payload. The connection is made (PQconnectdb, LISTEN) on libuv's worker
 * pool, never on the loop; once up it is non-blocking and read when
 * uv_poll says its socket is readable (PQconsumeInput, PQnotifies). A lost
 * connection is made again after 1 s, 2 s, ... up to 30 s; |fn| then gets
 * a NULL payload once it is back, since notifications sent meanwhile are
 * lost: the owner reloads everything it caches.
 *
 * Notifications are an accelerator: the owner keeps its periodic reloads,
 * which also cover the time the listener is down.
 *
 * Loop thread only. */
#ifndef WR_EDGE_DB_NOTIFY_H
#define WR_EDGE_DB_NOTIFY_H
#include <stdint.h>

#include <uv.h>

typedef struct wr_db_notify wr_db_notify;

/* |payload| is the notification's text, or NULL after a reconnection
 * (anything may have changed). Valid during the call only. */
typedef void (*wr_db_notify_fn)(void *user, const char *payload);

typedef struct wr_db_notify_stats {
  uint64_t received;    /* notifications delivered */
  uint64_t connects;    /* times the LISTEN connection came up */
  uint64_t failures;    /* connection attempts that failed, and connections lost */
  int up;               /* listening now */
} wr_db_notify_stats;

/* Starts connecting to |conninfo| (a libpq connection string, copied) to
 * LISTEN on |channel| (a plain identifier, copied). Returns WR_OK or
 * WR_ERR_INVAL (a channel that is not an identifier). */
int wr_db_notify_start(uv_loop_t *loop, const char *conninfo, const char *channel,
                       wr_db_notify_fn fn, void *user, wr_db_notify **out);
const wr_db_notify_stats *wr_db_notify_get_stats(const wr_db_notify *n);
/* Stops: no callback after this; the memory goes once the loop ran the
 * close callbacks (and a connection attempt in flight finished). NULL is
 * a no-op. */
void wr_db_notify_free(wr_db_notify *n);

#endif
