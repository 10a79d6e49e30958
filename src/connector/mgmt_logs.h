/* The connector's management log stream (cloudflared 2023.7.3
 * management/logger.go and session.go): while someone streams, every log
 * line of this process (lib/log.h's sink) becomes a log event and goes to
 * each streaming session whose filters (level, event types, sampling) it
 * passes.
 *
 * Lines may be logged on any thread: the sink copies them into a bounded
 * queue under a mutex and wakes the loop (uv_async); sessions are served on
 * the loop only. When the queue is full, or a session's peer cannot keep
 * up (its send callback says so), lines are dropped, as cloudflared's
 * session drops what its 30-event window cannot hold: logging never waits
 * for a slow reader.
 *
 * One streaming session at a time, as cloudflared: a second actor is
 * refused (close 4002), the same actor's new session replaces its old one.
 *
 * Objects: wr_mgmt_logs (one per connector process; owns the queue, the
 * async handle and the sink registration) and wr_mgmt_session (one per
 * /logs WebSocket, owned by whoever serves that WebSocket, which frees it
 * before it goes away). */
#ifndef WR_CONNECTOR_MGMT_LOGS_H
#define WR_CONNECTOR_MGMT_LOGS_H
#include <stddef.h>

#include <uv.h>

/* Close codes cloudflared's management service uses (management/service.go). */
#define WR_MGMT_CLOSE_NORMAL 1000
#define WR_MGMT_CLOSE_UNSUPPORTED 1003
#define WR_MGMT_CLOSE_INVALID_COMMAND 4001
#define WR_MGMT_CLOSE_LIMIT 4002

/* Lines held for the loop at most. */
#define WR_MGMT_QUEUE_MAX 256

typedef struct wr_mgmt_logs wr_mgmt_logs;
typedef struct wr_mgmt_session wr_mgmt_session;

typedef struct wr_mgmt_session_ops {
  /* One text message (a "logs" event) for the peer. Returns 0 when queued,
   * non-zero when the peer is too far behind (the event is dropped). */
  int (*send)(void *user, const char *json, size_t len);
  /* The session must end with this close code and reason (a protocol
   * error, or another session took over). Called at most once; the owner
   * still frees the session. */
  void (*close)(void *user, unsigned code, const char *reason);
} wr_mgmt_session_ops;

/* Starts the registry on |loop| and installs the log sink (inactive until
 * a session streams). Out-of-memory aborts. */
wr_mgmt_logs *wr_mgmt_logs_new(uv_loop_t *loop);
/* Removes the sink; sessions must be freed first. The async handle closes
 * through the loop (run it once more before uv_loop_close). NULL: no-op. */
void wr_mgmt_logs_free(wr_mgmt_logs *m);

/* A session for |actor| (the token's actor.id), not streaming yet. */
wr_mgmt_session *wr_mgmt_session_new(wr_mgmt_logs *m, const char *actor,
                                     const wr_mgmt_session_ops *ops, void *user);
/* One text message from the peer (a client event). start_streaming starts
 * (or restarts with new filters), stop_streaming stops; anything else
 * ends the session through ops->close (1003), as does a second actor
 * (4002). */
void wr_mgmt_session_message(wr_mgmt_session *s, const char *json, size_t len);
/* 1 while the session streams. */
int wr_mgmt_session_streaming(const wr_mgmt_session *s);
void wr_mgmt_session_free(wr_mgmt_session *s);

/* Delivers the queued lines now (the loop does it by itself; tests call
 * this to avoid running the loop). */
void wr_mgmt_logs_flush(wr_mgmt_logs *m);

#endif
