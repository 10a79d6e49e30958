/* `warren tunnel run [TUNNEL]`: cloudflared's named-tunnel runner.
 *
 * Order of work, as cloudflared: logging, config.yml (flags it sets go
 * under the command line), credentials (--token, --credentials-contents,
 * --credentials-file, else <TunnelID>.json next to the origin cert or in
 * the default directories), ingress rules, then the metrics server (so
 * /ready answers 503 while connecting), the proxy and the HA connections.
 * SIGINT/SIGTERM: graceful shutdown within --grace-period; a second signal
 * exits at once.
 *
 * This file resolves flags, config and environment into
 * wr_connector_options, handles the signals and runs the loop;
 * connector/connector.h owns the proxy, the metrics server and the
 * supervisor. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cmd/commands.h"
#include "cmd/mgmt_int.h"
#include "connector/connector.h"
#include "connector/ingress.h"
#include "connector/supervisor.h"
#include "lib/config.h"
#include "lib/credentials.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/addr.h"

#define ERRLEN 1024

static const char need_tunnel_msg[] =
    "\"warren tunnel run\" requires the ID or name of the tunnel to run as the last command "
    "line argument or in the configuration file.";

typedef struct runner {
  uv_loop_t *loop;
  uv_signal_t sigint, sigterm;
  wr_connector *conn;
  int signals;
} runner;

/* What the flags resolve to; freed by run_free. */
typedef struct run_inputs {
  wr_config *cfg;
  wr_credentials cred;
  struct sockaddr_storage edges[WR_SUPERVISOR_MAX_CONNS];
  size_t nedges;
  wr_ingress *ing;
  char *local_config;
} run_inputs;

/* ---- credentials ------------------------------------------------------------ */

/* Finds <uuid>.json in the directory of --origincert, then in the default
 * directories (cloudflared's credential search). */
static char *find_credentials_file(const wr_opts *o, const char *uuid) {
  char name[64];
  snprintf(name, sizeof(name), "%s.json", uuid);
  const char *oc = wr_opts_get(o, "origincert");
  if (oc && *oc) {
    char *exp = wr_path_expand(oc);
    char *slash = exp ? strrchr(exp, '/') : NULL;
    if (slash) {
      *slash = '\0';
      size_t n = strlen(exp) + strlen(name) + 2;
      char *p = wr_xmalloc(n);
      snprintf(p, n, "%s/%s", exp, name);
      free(exp);
      if (access(p, R_OK) == 0) return p;
      free(p);
    } else {
      free(exp);
    }
  }
  return wr_find_default_file(name);
}

static int load_credentials(const wr_opts *o, const wr_config *cfg, int argc, char **argv,
                            wr_credentials *cred, char *err, size_t errlen) {
  const char *tok = wr_opts_get(o, "token");
  if (tok && *tok) return wr_token_parse(tok, strlen(tok), cred, err, errlen);
  const char *contents = wr_opts_get(o, "credentials-contents");
  if (contents && *contents)
    return wr_credentials_parse(contents, strlen(contents), cred, err, errlen);
  const char *file = wr_opts_get(o, "credentials-file");
  if (file && *file) {
    char *exp = wr_path_expand(file);
    int rv = wr_credentials_load(exp ? exp : file, cred, err, errlen);
    free(exp);
    return rv;
  }
  const char *ref = argc > 0 ? argv[0] : (cfg ? cfg->tunnel : NULL);
  if (!ref || !*ref) {
    snprintf(err, errlen, "%s", need_tunnel_msg);
    return WR_ERR_CONFIG;
  }
  wr_uuid u;
  /* A name is looked up through the management API with cert.pem, as
   * cloudflared's runNamedTunnel does. */
  if (wr_uuid_parse(ref, strlen(ref), &u) != 0 &&
      wr__mg_resolve_tunnel((wr_opts *)o, ref, &u, err, errlen) != WR_OK)
    return WR_ERR_CONFIG;
  char id[WR_UUID_STR_LEN + 1];
  wr_uuid_format(&u, id);
  char *path = find_credentials_file(o, id);
  if (!path) {
    snprintf(err, errlen,
             "tunnel credentials file %s.json not found in the default directories "
             "(~/.cloudflared, ...); pass --credentials-file",
             id);
    return WR_ERR_NOTFOUND;
  }
  int rv = wr_credentials_load(path, cred, err, errlen);
  free(path);
  if (rv == WR_OK && !cred->has_tunnel_id) {
    cred->tunnel_id = u;
    cred->has_tunnel_id = 1;
  }
  return rv;
}

/* ---- edges ------------------------------------------------------------------------ */

static int resolve_edges(const wr_opts *o, struct sockaddr_storage *out, size_t cap, size_t *n,
                         char *err, size_t errlen) {
  char *const *vals;
  size_t nv = wr_opts_list(o, "edge", &vals);
  *n = 0;
  if (nv == 0) {
    snprintf(err, errlen,
             "no --edge given: warren does not discover Cloudflare's edge through DNS yet; "
             "pass --edge HOST:PORT (or TUNNEL_EDGE)");
    return WR_ERR_CONFIG;
  }
  for (size_t i = 0; i < nv && *n < cap; i++) {
    /* Every address of a name counts, up to the connection limit. */
    int k = wr_addr_resolve("--edge", vals[i], SOCK_DGRAM, 0, out + *n, cap - *n, err, errlen);
    if (k < 0) return WR_ERR_CONFIG;
    *n += (size_t)k;
  }
  return WR_OK;
}

/* ---- flags -> options -------------------------------------------------------------- */

/* --loglevel, --logfile and --protocol. Returns 0, or -1 after saying why. */
static int log_and_protocol(const wr_opts *o) {
  wr_log_level level;
  const char *lvl = wr_opts_get(o, "loglevel");
  if (lvl && wr_log_parse_level(lvl, &level) != 0) {
    fprintf(stderr, "unknown --loglevel \"%s\" (debug, info, warn, error, fatal)\n", lvl);
    return -1;
  }
  if (lvl) wr_log_set_level(level);
  const char *logfile = wr_opts_get(o, "logfile");
  if (logfile && *logfile && wr_log_set_file(logfile) != 0) {
    fprintf(stderr, "cannot open --logfile %s\n", logfile);
    return -1;
  }
  const char *proto = wr_opts_get(o, "protocol");
  if (proto && strcmp(proto, "auto") != 0 && strcmp(proto, "quic") != 0) {
    if (strcmp(proto, "http2") == 0 || strcmp(proto, "h2mux") == 0)
      wr_error("--protocol %s: the HTTP/2 transport is not implemented yet; use quic", proto);
    else
      wr_error("--protocol \"%s\": expected auto, quic or http2", proto);
    return -1;
  }
  return 0;
}

static int write_pidfile(const char *path) {
  char buf[32];
  int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
  return wr_file_write(path, buf, (size_t)n, 0644, 0);
}

/* Credentials, edges, ingress rules and the pidfile, in cloudflared's
 * order. Returns 0, or -1 after logging why. */
static int resolve_inputs(const wr_opts *o, int argc, char **argv, run_inputs *in) {
  char err[ERRLEN];
  if (load_credentials(o, in->cfg, argc, argv, &in->cred, err, sizeof(err)) != WR_OK ||
      resolve_edges(o, in->edges, WR_SUPERVISOR_MAX_CONNS, &in->nedges, err, sizeof(err)) !=
          WR_OK ||
      wr_ingress_load(in->cfg, o, &in->ing, err, sizeof(err)) != WR_OK) {
    wr_error("%s", err);
    return -1;
  }
  const char *pidfile = wr_opts_get(o, "pidfile");
  if (pidfile && *pidfile && write_pidfile(pidfile) != 0)
    wr_warn("cannot write --pidfile %s", pidfile);
  return 0;
}

/* The rest of the flags into |co|. */
static void connector_options(const wr_opts *o, run_inputs *in, wr_connector_options *co) {
  long long grace = 30LL * 1000000000LL;
  const char *gp = wr_opts_get(o, "grace-period");
  if (gp && wr_parse_duration(gp, &grace) != 0) grace = 30LL * 1000000000LL;
  const char *ha = wr_opts_get(o, "ha-connections");
  char *const *features;
  in->local_config = wr_ingress_local_config_json(in->ing, o);
  memset(co, 0, sizeof(*co));
  co->cred = &in->cred;
  co->edges = in->edges;
  co->nedges = in->nedges;
  co->ha_connections = ha ? (unsigned)atoi(ha) : 4;
  if (co->ha_connections == 0) co->ha_connections = 1;
  co->ca_file = wr_opts_get(o, "cacert");
  co->ingress = in->ing;
  co->local_config = in->local_config;
  co->nfeatures = wr_opts_list(o, "features", &features);
  co->features = (const char *const *)features;
  co->metrics = wr_opts_get(o, "metrics");
  co->grace_ms = (uint64_t)(grace / 1000000);
  co->icmpv4_src = wr_opts_get(o, "icmpv4-src");
  co->icmpv6_src = wr_opts_get(o, "icmpv6-src");
}

static void run_free(run_inputs *in) {
  free(in->local_config);
  wr_ingress_free(in->ing);
  wr_config_free(in->cfg);
}

/* ---- running ------------------------------------------------------------------------ */

static void on_stopped(void *user) {
  runner *r = user;
  uv_stop(r->loop);
}

/* Signals stay in the command: their disposition is the process's, and a
 * second one ends it. */
static void on_signal(uv_signal_t *h, int signum) {
  runner *r = h->data;
  const char *name = signum == SIGINT ? "interrupt" : "terminated";
  if (r->signals++) {
    wr_warn("Second signal (%s): exiting now", name);
    _exit(wr_connector_failed(r->conn) ? WR_EXIT_FAIL : WR_EXIT_OK);
  }
  wr_info("Initiating graceful shutdown due to signal %s ...", name);
  wr_connector_shutdown(r->conn);
}

/* Starts the connector, serves until it stopped, frees it. Returns the
 * exit code. */
static int serve(wr_connector_options *co) {
  char err[ERRLEN];
  runner r;
  memset(&r, 0, sizeof(r));
  r.loop = uv_default_loop();
  co->on_stopped = on_stopped;
  co->user = &r;
  if (wr_connector_new(r.loop, co, &r.conn, err, sizeof(err)) != WR_OK) {
    wr_error("%s", err);
    return WR_EXIT_FAIL;
  }
  uv_signal_init(r.loop, &r.sigint);
  uv_signal_init(r.loop, &r.sigterm);
  r.sigint.data = r.sigterm.data = &r;
  uv_signal_start(&r.sigint, on_signal, SIGINT);
  uv_signal_start(&r.sigterm, on_signal, SIGTERM);
  uv_run(r.loop, UV_RUN_DEFAULT);

  uv_close((uv_handle_t *)&r.sigint, NULL);
  uv_close((uv_handle_t *)&r.sigterm, NULL);
  int code = wr_connector_failed(r.conn) ? WR_EXIT_FAIL : WR_EXIT_OK;
  wr_connector_free(r.conn); /* also runs the signal handles' close callbacks */
  uv_loop_close(r.loop);
  return code;
}

int wr_cmd_tunnel_run(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  char err[ERRLEN];
  run_inputs in;
  wr_connector_options co;
  int rv;
  (void)cmd;

  memset(&in, 0, sizeof(in));
  if (argc > 1) {
    fprintf(stderr, "%s tunnel run: too many arguments; give one tunnel ID\n", o->prog);
    return WR_EXIT_USAGE;
  }
  rv = wr_config_load_opts(o, &in.cfg, err, sizeof(err));
  if (rv != WR_OK && rv != WR_ERR_NOTFOUND) {
    fprintf(stderr, "%s\n", err);
    return WR_EXIT_FAIL;
  }
  rv = WR_EXIT_FAIL;
  if (log_and_protocol(o) == 0 && resolve_inputs(o, argc, argv, &in) == 0) {
    connector_options(o, &in, &co);
    rv = serve(&co);
  }
  run_free(&in);
  if (rv == WR_EXIT_OK) wr_info("Tunnel server stopped");
  return rv;
}
