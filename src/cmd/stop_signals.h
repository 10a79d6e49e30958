/* SIGINT and SIGTERM on a libuv loop, as every long-running command
 * (tunnel run, edge run, tail, access tcp) watches them to stop. Command
 * layer only; loop thread only. */
#ifndef WR_CMD_STOP_SIGNALS_H
#define WR_CMD_STOP_SIGNALS_H
#include <uv.h>

typedef struct wr__stop_signals {
  uv_signal_t sigint, sigterm;
} wr__stop_signals;

/* Starts watching both signals on |loop|: |cb| is called with the handle
 * that caught one, whose data is |user|. */
void wr__stop_signals_start(uv_loop_t *loop, wr__stop_signals *s, uv_signal_cb cb, void *user);
/* Closes both handles (the loop must run once more to finish); may be
 * called from |cb|. */
void wr__stop_signals_close(wr__stop_signals *s);

#endif
