/* warren access tcp | rdp | ssh | smb --hostname HOST --url 127.0.0.1:PORT:
 * forwards every connection to the local port to HOST through a WebSocket
 * (connector/access_tcp.h), until SIGINT or SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cmd/commands.h"
#include "cmd/edge_dial_opts.h"
#include "cmd/stop_signals.h"
#include "connector/access_tcp.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

typedef struct run_ctx {
  wr__stop_signals stop;
  wr_access_tcp *a;
} run_ctx;

static void on_signal(uv_signal_t *h, int signum) {
  run_ctx *r = h->data;
  wr_info("access: %s received; stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
  wr_access_tcp_free(r->a);
  r->a = NULL;
  wr__stop_signals_close(&r->stop);
}

static int set_log_level(wr_opts *opts) {
  const char *lv = wr_opts_get(opts, "loglevel");
  wr_log_level level;
  if (!lv) return 0;
  if (wr_log_parse_level(lv, &level) != 0) {
    fprintf(stderr, "%s: unknown log level \"%s\"\n", opts->prog, lv);
    return -1;
  }
  wr_log_set_level(level);
  return 0;
}

int wr_cmd_access_tcp(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv) {
  char err[512] = "";
  char *const *hdrs = NULL;
  wr_access_tcp_config cfg;
  uv_loop_t *loop = uv_default_loop();
  run_ctx r;
  (void)argc;
  (void)argv;
  if (set_log_level(opts) != 0) return WR_EXIT_USAGE;
  if (!wr_opts_get(opts, "hostname")) {
    fprintf(stderr, "%s: access %s: --hostname is required\n", opts->prog, cmd->name);
    return WR_EXIT_USAGE;
  }
  if (!wr_opts_get(opts, "url")) {
    fprintf(stderr,
            "%s: access %s: --url is required (standard input/output is not supported yet)\n",
            opts->prog, cmd->name);
    return WR_EXIT_USAGE;
  }
  memset(&cfg, 0, sizeof(cfg));
  cfg.dial = wr__edge_dial_from_opts(loop, opts, "hostname");
  cfg.listen = wr_opts_get(opts, "url");
  cfg.token_id = wr_opts_get(opts, "service-token-id");
  cfg.token_secret = wr_opts_get(opts, "service-token-secret");
  cfg.destination = wr_opts_get(opts, "destination");
  cfg.n_headers = wr_opts_list(opts, "header", &hdrs);
  cfg.headers = (const char *const *)hdrs;
  /* Without a service token, the token `access login` stored for the
   * application goes along (Cf-Access-Token), as cloudflared sends it. */
  char *stored = NULL, *stored_hdr = NULL, **all = NULL;
  if (!cfg.token_id &&
      (stored = wr_cmd_access_stored_token(cfg.dial.hostname, cfg.dial.edge_url))) {
    size_t hl = strlen(stored) + 32;
    stored_hdr = wr_xmalloc(hl);
    snprintf(stored_hdr, hl, "Cf-Access-Token: %s", stored);
    all = wr_xcalloc(cfg.n_headers + 1, sizeof(char *));
    for (size_t i = 0; i < cfg.n_headers; i++) all[i] = hdrs[i];
    all[cfg.n_headers++] = stored_hdr;
    cfg.headers = (const char *const *)all;
    wr_info("access: sending the stored Access token for %s", cfg.dial.hostname);
  }
  memset(&r, 0, sizeof(r));
  int started = wr_access_tcp_start(&cfg, &r.a, err, sizeof(err));
  free(all);
  free(stored_hdr);
  free(stored);
  if (started != WR_OK) {
    fprintf(stderr, "%s: access %s: %s\n", opts->prog, cmd->name, err);
    uv_run(loop, UV_RUN_DEFAULT); /* let the listener close */
    return WR_EXIT_FAIL;
  }
  wr_info("Start Websocket listener host=%s port=%u", cfg.dial.hostname,
          (unsigned)wr_access_tcp_port(r.a));
  wr__stop_signals_start(loop, &r.stop, on_signal, &r);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return WR_EXIT_OK;
}
