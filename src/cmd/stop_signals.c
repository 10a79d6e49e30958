/* SIGINT and SIGTERM for the long-running commands; see stop_signals.h. */
#include "cmd/stop_signals.h"

#include <signal.h>

void wr__stop_signals_start(uv_loop_t *loop, wr__stop_signals *s, uv_signal_cb cb, void *user) {
  uv_signal_init(loop, &s->sigint);
  uv_signal_init(loop, &s->sigterm);
  s->sigint.data = s->sigterm.data = user;
  uv_signal_start(&s->sigint, cb, SIGINT);
  uv_signal_start(&s->sigterm, cb, SIGTERM);
}

void wr__stop_signals_close(wr__stop_signals *s) {
  uv_close((uv_handle_t *)&s->sigint, NULL);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
}
