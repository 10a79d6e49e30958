/* warren tail [TUNNEL]: cloudflared 2023.7.3's `tail`. Gets a management
 * token from the API (--token skips that), opens the management log stream
 * of one of the tunnel's connectors through the edge
 * (connector/mgmt_tail.h) and prints every log event on stdout, as
 * cloudflared prints them (--output default|json), until SIGINT/SIGTERM or
 * the stream ends. Errors go to stderr through the log. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cfapi/tunnels.h"
#include "cmd/commands.h"
#include "cmd/edge_dial_opts.h"
#include "cmd/mgmt_int.h"
#include "cmd/stop_signals.h"
#include "connector/mgmt_tail.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "proto/mgmt_event.h"

typedef struct tail_run {
  wr__stop_signals stop;
  wr_mgmt_tail *t;
  int json;
  int failed;
} tail_run;

static void on_log(void *user, const wr_mgmt_log *l) {
  tail_run *r = user;
  wr_buf b;
  wr_buf_init(&b, 8u * 1024u * 1024u, NULL);
  if (wr_mgmt_log_format(l, r->json, &b) == WR_OK) {
    fwrite(b.data, 1, b.len, stdout);
    fflush(stdout);
  }
  wr_buf_free(&b);
}

static void on_end(void *user, int ok, const char *why) {
  tail_run *r = user;
  if (!ok) {
    wr_error("%s", why ? why : "the management stream failed");
    r->failed = 1;
  }
  wr__stop_signals_close(&r->stop);
  wr_mgmt_tail_free(r->t);
  r->t = NULL;
}

static void on_signal(uv_signal_t *h, int signum) {
  tail_run *r = h->data;
  (void)signum;
  wr_debug("closing management connection");
  if (r->t) wr_mgmt_tail_stop(r->t);
}

/* --level, --event, --sample as cloudflared's parseFilters. Returns 0, or
 * -1 after saying why. */
static int parse_filters(wr_opts *o, wr_mgmt_filters *f) {
  const char *lv = wr_opts_get(o, "level"), *sm = wr_opts_get(o, "sample");
  char *const *evs = NULL, *end = NULL;
  size_t nev = wr_opts_list(o, "event", &evs);
  double s = sm ? strtod(sm, &end) : 1.0;
  wr_mgmt_filters_none(f);
  if (lv && lv[0] && (f->level = wr_mgmt_level_parse(lv)) < 0) {
    wr_error("invalid --level filter provided, please use one of the following Log Levels: "
             "debug, info, warn, error");
    return -1;
  }
  for (size_t i = 0; i < nev; i++) {
    int t = wr_mgmt_event_parse(evs[i]);
    if (t < 0) {
      wr_error("invalid --event filter provided, please use one of the following EventTypes: "
               "cloudflared, http, tcp, udp");
      return -1;
    }
    f->events |= 1u << t;
  }
  if ((sm && (!end || *end)) || !(s > 0.0 && s <= 1.0)) {
    wr_error("invalid --sample value provided, please make sure it is in the range (0.0 .. 1.0)");
    return -1;
  }
  f->sampling = s;
  return 0;
}

/* The management token: --token, else from the API for TUNNEL. */
static int get_token(wr__mg_ctx *c, wr_opts *o, int argc, char **argv, char **tok) {
  wr_cfapi_error e;
  wr_uuid tid;
  const char *given = wr_opts_get(o, "token");
  if (given && given[0]) {
    *tok = strdup(given);
    return WR_OK;
  }
  if (argc < 1 || !argv[0][0]) {
    wr_error("unable to construct management request URL: no tunnel ID provided");
    return WR_ERR_INVAL;
  }
  if (wr__mg_find_id(c, argv[0], &tid, &e) != WR_OK || wr__mg_client(c, &e) != WR_OK ||
      wr_cfapi_get_management_token(c->api, &tid, tok, &e) != WR_OK) {
    wr_error("unable to acquire management token for requested tunnel id: %s", e.msg);
    return WR_ERR_INVAL;
  }
  return WR_OK;
}

int wr_cmd_tail(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr_mgmt_filters f;
  wr_mgmt_tail_config cfg;
  tail_run r;
  char err[512], *tok = NULL;
  const char *out = wr_opts_get(o, "output");
  uv_loop_t *loop = uv_default_loop();
  (void)cmd;
  if (wr__mg_begin(&c, o, "tail") != WR_OK) return WR_EXIT_FAIL;
  memset(&r, 0, sizeof(r));
  if (out && strcmp(out, "json") == 0)
    r.json = 1;
  else if (out && out[0] && strcmp(out, "default") != 0)
    wr_error("invalid --output value provided, please make sure it is one of: default, json");
  if (parse_filters(o, &f) != 0 || get_token(&c, o, argc, argv, &tok) != WR_OK) {
    wr__mg_end(&c);
    return WR_EXIT_FAIL;
  }
  memset(&cfg, 0, sizeof(cfg));
  cfg.dial = wr__edge_dial_from_opts(loop, o, "management-hostname");
  cfg.token = tok;
  cfg.filters = &f;
  cfg.on_log = on_log;
  cfg.on_end = on_end;
  cfg.user = &r;
  int rv = wr_mgmt_tail_start(&cfg, &r.t, err, sizeof(err));
  explicit_bzero(tok, strlen(tok));
  free(tok);
  wr__mg_end(&c);
  if (rv != WR_OK) {
    wr_error("unable to construct management request URL: %s", err);
    return WR_EXIT_FAIL;
  }
  wr__stop_signals_start(loop, &r.stop, on_signal, &r);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return r.failed ? WR_EXIT_FAIL : WR_EXIT_OK;
}
