/* `warren-edge run`: listens for QUIC on --tunnel-listen with the
 * tunnel-server certificate and registers connectors (warren or the real
 * cloudflared) against the store; serves visitors over HTTP/1.1 on
 * --http-listen, proxying each request to a live connector of the tunnel
 * its Host is routed to; and, when asked, the REST API and login pages
 * (--api-listen), the authoritative DNS server (--dns-listen), RFC 2136
 * pushes to another DNS server (--dns-update-*), a TUN device whose packets
 * are routed through the tunnels by `route ip` (--tun), WireGuard devices
 * (--wireguard-listen), and the metrics, readiness
 * and health endpoints (--metrics). --config names a YAML file whose keys
 * are these flags' names (the command line and environment win).
 *
 * This file only turns flags into wr_edge_options (checking their syntax),
 * handles the signals and runs the loop; edge/edge.h owns the subsystems,
 * their start order and their shutdown. Every flag is checked before
 * anything starts. */
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cmd/commands.h"
#include "cmd/stop_signals.h"
#include "edge/edge.h"
#include "edge/visitor.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/addr.h"

typedef struct edge_run {
  wr_edge *edge;
  wr__stop_signals stop;
  int stopping;
  char keybuf[1024]; /* --dns-update-key split into its parts; wiped after start */
} edge_run;

/* ---- flags -> wr_edge_options --------------------------------------------------- */

/* Parses a numeric HOST:PORT or [V6]:PORT into |out|. Returns 0 or -1. */
static int parse_listen(const char *s, struct sockaddr_storage *out) {
  char host[128];
  unsigned port;
  if (!s || wr_addr_split(s, host, sizeof(host), &port) != 0) return -1;
  if (strchr(host, ':'))
    return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0 ? 0 : -1;
  return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0 ? 0 : -1;
}

/* The listener flag |flag| into |l|. A |required| one must parse; an
 * optional one that is unset or empty stays off. Returns 0, or -1 after
 * printing why. */
static int listen_flag(const wr_opts *o, const char *flag, int required, wr_edge_listen *l) {
  const char *s = wr_opts_get(o, flag);
  l->text = s;
  if (!required && (!s || !*s)) return 0;
  if (parse_listen(s, &l->addr) == 0) return 0;
  fprintf(stderr, "%s run: --%s \"%s\" is not HOST:PORT\n", o->prog, flag, s ? s : "");
  return -1;
}

/* --metrics: only the shape here; the host (a name is fine) resolves when
 * the server starts. */
static int metrics_flag(const wr_opts *o, wr_edge_options *eo) {
  const char *metrics = wr_opts_get(o, "metrics");
  char host[256];
  unsigned port;
  eo->metrics = metrics;
  if (!metrics || !*metrics || wr_addr_split(metrics, host, sizeof(host), &port) == 0) return 0;
  fprintf(stderr, "%s run: --metrics \"%s\" is not HOST:PORT\n", o->prog, metrics);
  return -1;
}

/* The visitor limit flags. 0 turns a per-source limit off; the total must
 * stay a number. Returns 0, or -1 after printing why. */
static int visitor_limits(const wr_opts *o, wr_edge_options *eo) {
  static const struct {
    const char *flag;
    size_t off;
    int zero_is_off;
  } rows[] = {
      {"max-visitor-conns", offsetof(wr_edge_options, max_visitor_conns), 0},
      {"max-conns-per-source", offsetof(wr_edge_options, max_conns_per_source), 1},
      {"requests-per-second-per-source",
       offsetof(wr_edge_options, requests_per_second_per_source), 1},
      {"request-burst-per-source", offsetof(wr_edge_options, request_burst_per_source), 0},
  };
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    const char *s = wr_opts_get(o, rows[i].flag);
    if (!s) continue;
    long long n = strtoll(s, NULL, 10); /* the CLI checked it is an integer */
    if (n < 0 || (n == 0 && !rows[i].zero_is_off)) {
      fprintf(stderr, "%s run: --%s must be at least %d\n", o->prog, rows[i].flag,
              rows[i].zero_is_off ? 0 : 1);
      return -1;
    }
    *(size_t *)((char *)eo + rows[i].off) = n ? (size_t)n : WR_VISITOR_OFF;
  }
  return 0;
}

/* --max-half-open and --max-half-open-per-source: the caps on QUIC
 * handshakes in progress (the edge derives the Retry thresholds). Returns
 * 0, or -1 after saying what is wrong. */
static int half_open_limits(const wr_opts *o, wr_edge_options *eo) {
  static const char *const names[2] = {"max-half-open", "max-half-open-per-source"};
  unsigned *dst[2] = {&eo->max_half_open, &eo->max_half_open_per_source};
  for (int i = 0; i < 2; i++) {
    const char *s = wr_opts_get(o, names[i]);
    char *end = NULL;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (s && (*end || v < 1 || v > 1000000)) {
      fprintf(stderr, "%s run: --%s must be between 1 and 1000000\n", o->prog, names[i]);
      return -1;
    }
    *dst[i] = (unsigned)v;
  }
  return 0;
}

/* --tun NAME and what it serves: --tun-account, --tun-vnet (checked when
 * the edge starts: they name store rows) and --tun-mtu. Returns 0, or -1
 * after saying what is wrong. */
static int tun_flags(const wr_opts *o, wr_edge_options *eo) {
  eo->tun.name = wr_opts_get(o, "tun");
  eo->tun.account = wr_opts_get(o, "tun-account");
  eo->tun.vnet = wr_opts_get(o, "tun-vnet");
  const char *mtu = wr_opts_get(o, "tun-mtu");
  char *end = NULL;
  long long v = mtu ? strtoll(mtu, &end, 10) : 0;
  if (mtu && (*end || v < 1280 || v > 9000)) {
    fprintf(stderr, "%s run: --tun-mtu must be between 1280 and 9000\n", o->prog);
    return -1;
  }
  eo->tun.mtu = (unsigned)v;
  if (eo->tun.name && strlen(eo->tun.name) > 15) {
    fprintf(stderr, "%s run: --tun \"%s\": a device name has at most 15 characters\n", o->prog,
            eo->tun.name);
    return -1;
  }
  return 0;
}

/* --dns-update-key "[ALG:]NAME:SECRET" into its parts (in |buf|). */
static int split_tsig(const char *spec, char *buf, size_t buflen, const char **alg,
                      const char **name, const char **secret) {
  if (strlen(spec) >= buflen) return -1;
  strcpy(buf, spec);
  char *a = buf, *b = strchr(a, ':'), *c;
  if (!b) return -1;
  *b++ = '\0';
  c = strchr(b, ':');
  if (c) {
    *c++ = '\0';
    *alg = a;
    *name = b;
    *secret = c;
  } else {
    *alg = "hmac-sha256";
    *name = a;
    *secret = b;
  }
  return **name && **secret ? 0 : -1;
}

/* --dns-update-server, -zone and -key. Returns 0, or -1 after printing
 * why. */
static int dns_update_flags(const wr_opts *o, wr_edge_options *eo, char *keybuf, size_t keylen) {
  const char *server = wr_opts_get(o, "dns-update-server");
  if (!server || !*server) {
    if (wr_opts_isset(o, "dns-update-zone") || wr_opts_isset(o, "dns-update-key"))
      wr_warn("--dns-update-zone and --dns-update-key do nothing without --dns-update-server");
    return 0;
  }
  const char *zone = wr_opts_get(o, "dns-update-zone"), *spec = wr_opts_get(o, "dns-update-key");
  if (!zone || !*zone) {
    fprintf(stderr, "%s run: --dns-update-server needs --dns-update-zone\n", o->prog);
    return -1;
  }
  if (spec && *spec &&
      split_tsig(spec, keybuf, keylen, &eo->dns_update.key_algorithm, &eo->dns_update.key_name,
                 &eo->dns_update.key_secret) != 0) {
    fprintf(stderr, "%s run: --dns-update-key is not [ALGORITHM:]NAME:SECRET\n", o->prog);
    return -1;
  }
  eo->dns_update.server = server;
  eo->dns_update.zone = zone;
  return 0;
}

/* --quick-tunnels-*. Returns 0, or -1 after printing why. */
static int quick_flags(const wr_opts *o, wr_edge_options *eo) {
  const char *ps = wr_opts_get(o, "quick-tunnels-per-source"), *mx = wr_opts_get(o, "quick-tunnels-max");
  const char *idle = wr_opts_get(o, "quick-tunnels-idle");
  long long per = ps ? atoll(ps) : 5, max = mx ? atoll(mx) : 100, ns = 0;
  eo->quick.account = wr_opts_get(o, "quick-tunnels-account");
  eo->management_hostname = wr_opts_get(o, "management-hostname");
  eo->quick.zone = wr_opts_get(o, "quick-tunnels-zone");
  if (per < 1 || max < 1 || (idle && (wr_parse_duration(idle, &ns) != 0 || ns < 1000000000LL))) {
    fprintf(stderr,
            "%s run: --quick-tunnels-per-source and --quick-tunnels-max must be at least 1, "
            "--quick-tunnels-idle at least 1s\n",
            o->prog);
    return -1;
  }
  eo->quick.per_source = (unsigned)per;
  eo->quick.max = (size_t)max;
  eo->quick.idle_s = idle ? ns / 1000000000LL : 0;
  return 0;
}

/* --loglevel. Returns 0, or -1 after printing why. */
static int log_level_flag(const wr_opts *o) {
  const char *lvl = wr_opts_get(o, "loglevel");
  char who[128];
  if (!lvl || !*lvl) return 0;
  snprintf(who, sizeof(who), "%s run", o->prog);
  return wr_cli_set_loglevel(lvl, who);
}

/* --wireguard-listen, and two knobs for tests from the environment:
 * WARREN_EDGE_WG_COOKIE_THRESHOLD (handshakes a second before cookies) and
 * WARREN_EDGE_WG_REKEY_MS (the age at which the edge renews a session the
 * client made). Returns 0, or -1 after printing why. */
static int wireguard_flags(const wr_opts *o, wr_edge_options *eo) {
  if (listen_flag(o, "wireguard-listen", 0, &eo->wireguard.listen) != 0) return -1;
  const char *c = getenv("WARREN_EDGE_WG_COOKIE_THRESHOLD");
  const char *r = getenv("WARREN_EDGE_WG_REKEY_MS");
  if (c && *c) eo->wireguard.cookie_threshold = (unsigned)strtoul(c, NULL, 10);
  if (r && *r) eo->wireguard.rekey_responder_ms = strtoull(r, NULL, 10);
  return 0;
}

/* --inspect-requests and --inspect-bodies. Returns 0, or -1 after
 * printing why. */
static int inspect_flags(const wr_opts *o, wr_edge_options *eo) {
  const char *n = wr_opts_get(o, "inspect-requests");
  long long v = n ? strtoll(n, NULL, 10) : 0; /* the CLI checked it is an integer */
  if (v < 0 || v > 10000) {
    fprintf(stderr, "%s run: --inspect-requests must be between 0 and 10000\n", o->prog);
    return -1;
  }
  eo->inspect.requests = (size_t)v;
  eo->inspect.bodies = wr_opts_bool(o, "inspect-bodies");
  eo->no_http3 = wr_opts_bool(o, "no-http3");
  return 0;
}

/* --acme-directory and its companions. Returns 0, or -1 after printing why. */
static int acme_flags(const wr_opts *o, wr_edge_options *eo) {
  const char *ch = wr_opts_get(o, "acme-challenge");
  eo->acme.directory = wr_opts_get(o, "acme-directory");
  eo->acme.email = wr_opts_get(o, "acme-email");
  eo->acme.ca_file = wr_opts_get(o, "acme-ca-file");
  if (ch && strcmp(ch, "http-01") != 0 && strcmp(ch, "dns-01") != 0) {
    fprintf(stderr, "%s run: --acme-challenge takes http-01 or dns-01, not \"%s\"\n", o->prog, ch);
    return -1;
  }
  eo->acme.dns01 = ch && strcmp(ch, "dns-01") == 0;
  if (!eo->acme.directory || !*eo->acme.directory) return 0;
  if (!(eo->https.text && *eo->https.text)) {
    fprintf(stderr, "%s run: --acme-directory needs --https-listen (the certificates are for it)\n",
            o->prog);
    return -1;
  }
  if (eo->acme.dns01 && !(eo->dns.text && *eo->dns.text)) {
    fprintf(stderr, "%s run: --acme-challenge dns-01 needs --dns-listen\n", o->prog);
    return -1;
  }
  return 0;
}

/* Every flag into |eo|, in the order they are checked. Returns WR_EXIT_OK
 * or the exit code after printing why. */
static int edge_options(const wr_opts *o, wr_edge_options *eo, char *keybuf, size_t keylen) {
  memset(eo, 0, sizeof(*eo));
  if (log_level_flag(o) != 0) return WR_EXIT_USAGE;
  eo->data_dir = wr_opts_get(o, "data-dir");
  eo->access_team_domain = wr_opts_get(o, "access-team-domain");
  eo->store = wr_opts_get(o, "store");
  eo->peer_advertise = wr_opts_get(o, "peer-advertise");
  if (!eo->data_dir || !*eo->data_dir) {
    fprintf(stderr, "%s run: pass --data-dir DIR (or set WARREN_EDGE_DATA_DIR)\n", o->prog);
    return WR_EXIT_USAGE;
  }
  if (listen_flag(o, "tunnel-listen", 1, &eo->tunnel) != 0 ||
      listen_flag(o, "http-listen", 1, &eo->http) != 0 ||
      listen_flag(o, "https-listen", 0, &eo->https) != 0 ||
      listen_flag(o, "dns-listen", 0, &eo->dns) != 0 ||
      listen_flag(o, "peer-listen", 0, &eo->peer) != 0 || metrics_flag(o, eo) != 0 ||
      visitor_limits(o, eo) != 0 || half_open_limits(o, eo) != 0 || tun_flags(o, eo) != 0 ||
      wireguard_flags(o, eo) != 0 || quick_flags(o, eo) != 0 ||
      inspect_flags(o, eo) != 0 || acme_flags(o, eo) != 0)
    return WR_EXIT_USAGE;
  /* These two have always been run-time failures (exit 1), not usage. */
  if (listen_flag(o, "api-listen", 0, &eo->api) != 0 ||
      dns_update_flags(o, eo, keybuf, keylen) != 0)
    return WR_EXIT_FAIL;
  return WR_EXIT_OK;
}

/* --config FILE: its keys are run's flag names, merged underneath the
 * command line and the environment. Only a file named on the command line
 * is read: the connector's default locations (~/.cloudflared) hold
 * cloudflared's configuration, not the edge's. Returns 0, or -1 after
 * printing why. */
static int load_edge_config(wr_opts *o) {
  wr_config *cfg = NULL;
  char err[512];
  const char *path = wr_opts_get(o, "config");
  if (!wr_opts_isset(o, "config") || !path || !*path) return 0;
  if (wr_config_load(path, &cfg, err, sizeof(err)) != WR_OK ||
      wr_config_apply_opts(cfg, o, err, sizeof(err)) != WR_OK) {
    fprintf(stderr, "%s run: %s\n", o->prog, err);
    wr_config_free(cfg);
    return -1;
  }
  /* The connector's structured sections mean nothing to the edge. */
  static const char *const connector_keys[] = {"tunnel", "ingress", "warp-routing", "originRequest"};
  for (size_t i = 0; i < sizeof(connector_keys) / sizeof(connector_keys[0]); i++) {
    const wr_ynode *n = wr_ynode_get(cfg->root, connector_keys[i], cfg->is_json);
    if (n)
      wr_config_warn(cfg, n->line, NULL, "\"%s\" is a connector setting, not an edge one; ignored",
                     connector_keys[i]);
  }
  for (size_t i = 0; i < cfg->n_warnings; i++) wr_warn("%s", cfg->warnings[i]);
  wr_config_free(cfg);
  return 0;
}

/* ---- running ---------------------------------------------------------------------- */

/* Signals stay here rather than in the edge: their disposition is the
 * process's (as SIGPIPE's in main), and a second signal ends the process. */
static void on_signal(uv_signal_t *h, int signum) {
  edge_run *r = h->data;
  if (r->stopping) {
    wr_warn("second signal: exiting now");
    exit(1);
  }
  r->stopping = 1;
  wr_edge_begin_shutdown(r->edge);
  wr_info("received %s, shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
  uv_stop(h->loop);
}

/* Starts the edge, serves until SIGINT or SIGTERM, drains and frees it. */
static int serve(const wr_opts *o, const wr_edge_options *eo, edge_run *r) {
  uv_loop_t *loop = uv_default_loop();
  char err[512];
  /* SIGINT and SIGTERM wait while the edge starts (listeners may already be
   * up while signing keys are made): the handlers below take them, so an
   * early stop is a clean one. Threads started meanwhile keep them blocked. */
  sigset_t stop, old;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, &old);
  int rv = wr_edge_new(loop, eo, &r->edge, err, sizeof(err));
  explicit_bzero(r->keybuf, sizeof(r->keybuf)); /* the updater has its copy */
  if (rv == WR_ERR_STORE)
    fprintf(stderr, "%s run: %s (run `warren-edge init --data-dir %s --zone ZONE` first?)\n",
            o->prog, err, eo->data_dir);
  else if (rv != WR_OK && *err)
    fprintf(stderr, "%s run: %s\n", o->prog, err);
  if (rv != WR_OK) {
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    uv_loop_close(loop);
    return WR_EXIT_FAIL;
  }
  wr__stop_signals_start(loop, &r->stop, on_signal, r);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  wr__stop_signals_close(&r->stop);
  wr_edge_drain(r->edge);
  wr_edge_free(r->edge);
  uv_loop_close(loop);
  return WR_EXIT_OK;
}

int wr_cmd_edge_run(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  if (argc > 0) {
    fprintf(stderr, "%s run: unexpected argument \"%s\"\n", o->prog, argv[0]);
    return WR_EXIT_USAGE;
  }
  if (load_edge_config(o) != 0) return WR_EXIT_USAGE;
  edge_run r = {0};
  wr_edge_options eo;
  int rv = edge_options(o, &eo, r.keybuf, sizeof(r.keybuf));
  if (rv == WR_EXIT_OK) rv = serve(o, &eo, &r);
  explicit_bzero(r.keybuf, sizeof(r.keybuf));
  return rv;
}
