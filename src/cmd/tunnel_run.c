/* `warren tunnel run [TUNNEL]`: cloudflared's named-tunnel runner.
 *
 * Order of work, as cloudflared: logging, config.yml (flags it sets go
 * under the command line), credentials (--token, --credentials-contents,
 * --credentials-file, else <TunnelID>.json next to the origin cert or in
 * the default directories), ingress rules, then the metrics server (so
 * /ready answers 503 while connecting), the proxy and the HA connections.
 * SIGINT/SIGTERM: graceful shutdown within --grace-period; a second signal
 * exits at once. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cmd/commands.h"
#include "cmd/mgmt_int.h"
#include "connector/ingress.h"
#include "connector/metrics.h"
#include "connector/proxy.h"
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
  wr_supervisor *sup;
  long long grace_ns;
  int signals;
  int exit_code;
} runner;

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

/* ---- lifecycle ---------------------------------------------------------------------- */

static void on_fatal(void *user, const char *why) {
  runner *r = user;
  wr_error("Couldn't start tunnel: %s", why);
  r->exit_code = WR_EXIT_FAIL;
  wr_supervisor_shutdown(r->sup, 0);
}

static void on_stopped(void *user) {
  runner *r = user;
  uv_stop(r->loop);
}

static void on_signal(uv_signal_t *h, int signum) {
  runner *r = h->data;
  const char *name = signum == SIGINT ? "interrupt" : "terminated";
  if (r->signals++) {
    wr_warn("Second signal (%s): exiting now", name);
    _exit(r->exit_code);
  }
  wr_info("Initiating graceful shutdown due to signal %s ...", name);
  wr_supervisor_shutdown(r->sup, (uint64_t)(r->grace_ns / 1000000));
}

static int write_pidfile(const char *path) {
  char buf[32];
  int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
  return wr_file_write(path, buf, (size_t)n, 0644, 0);
}

int wr_cmd_tunnel_run(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  char err[ERRLEN];
  wr_config *cfg = NULL;
  wr_ingress *ing = NULL;
  wr_credentials cred;
  wr_proxy *proxy = NULL;
  wr_metrics_server *metrics = NULL;
  struct sockaddr_storage edges[WR_SUPERVISOR_MAX_CONNS];
  size_t nedges = 0;
  char *local_config = NULL;
  runner r;
  wr_log_level level;
  int rv;
  (void)cmd;

  memset(&r, 0, sizeof(r));
  r.exit_code = WR_EXIT_OK;
  if (argc > 1) {
    fprintf(stderr, "%s tunnel run: too many arguments; give one tunnel ID\n", o->prog);
    return WR_EXIT_USAGE;
  }
  rv = wr_config_load_opts(o, &cfg, err, sizeof(err));
  if (rv != WR_OK && rv != WR_ERR_NOTFOUND) {
    fprintf(stderr, "%s\n", err);
    return WR_EXIT_FAIL;
  }
  const char *lvl = wr_opts_get(o, "loglevel");
  if (lvl && wr_log_parse_level(lvl, &level) != 0) {
    fprintf(stderr, "unknown --loglevel \"%s\" (debug, info, warn, error, fatal)\n", lvl);
    goto fail;
  }
  if (lvl) wr_log_set_level(level);
  const char *logfile = wr_opts_get(o, "logfile");
  if (logfile && *logfile && wr_log_set_file(logfile) != 0) {
    fprintf(stderr, "cannot open --logfile %s\n", logfile);
    goto fail;
  }
  const char *proto = wr_opts_get(o, "protocol");
  if (proto && strcmp(proto, "auto") != 0 && strcmp(proto, "quic") != 0) {
    if (strcmp(proto, "http2") == 0 || strcmp(proto, "h2mux") == 0)
      wr_error("--protocol %s: the HTTP/2 transport is not implemented yet; use quic", proto);
    else
      wr_error("--protocol \"%s\": expected auto, quic or http2", proto);
    goto fail;
  }
  memset(&cred, 0, sizeof(cred));
  if (load_credentials(o, cfg, argc, argv, &cred, err, sizeof(err)) != WR_OK) {
    wr_error("%s", err);
    goto fail;
  }
  if (resolve_edges(o, edges, WR_SUPERVISOR_MAX_CONNS, &nedges, err, sizeof(err)) != WR_OK) {
    wr_error("%s", err);
    goto fail;
  }
  if (wr_ingress_load(cfg, o, &ing, err, sizeof(err)) != WR_OK) {
    wr_error("%s", err);
    goto fail;
  }
  const char *pidfile = wr_opts_get(o, "pidfile");
  if (pidfile && *pidfile && write_pidfile(pidfile) != 0)
    wr_warn("cannot write --pidfile %s", pidfile);

  wr_uuid connector_id;
  char idstr[WR_UUID_STR_LEN + 1], tid[WR_UUID_STR_LEN + 1];
  wr_uuid_random(&connector_id);
  wr_uuid_format(&connector_id, idstr);
  wr_uuid_format(&cred.tunnel_id, tid);
  wr_info("Starting tunnel tunnelID=%s", tid);
  wr_info("Version %s", WR_VERSION);
  wr_info("Generated Connector ID: %s", idstr);
  for (size_t i = 0; i < ing->n_rules; i++) {
    const wr_ingress_rule *rule = &ing->rules[i];
    wr_info("ingress rule %zu: hostname=%s path=%s service=%s", i,
            rule->hostname ? rule->hostname : "*", rule->path ? rule->path : "",
            rule->service.display);
  }

  r.loop = uv_default_loop();
  long long grace = 30LL * 1000000000LL;
  const char *gp = wr_opts_get(o, "grace-period");
  if (gp && wr_parse_duration(gp, &grace) != 0) grace = 30LL * 1000000000LL;
  r.grace_ns = grace;

  wr_proxy_config pc;
  memset(&pc, 0, sizeof(pc));
  pc.loop = r.loop;
  pc.ingress = ing;
  pc.connector_id = connector_id;
  if (wr_proxy_new(&pc, &proxy) != WR_OK) {
    wr_error("cannot start the proxy");
    goto fail;
  }
  const char *maddr = wr_opts_get(o, "metrics");
  if (maddr && *maddr &&
      wr_metrics_server_start(r.loop, maddr, proxy, &connector_id, &metrics, err, sizeof(err)) !=
          WR_OK) {
    wr_error("%s", err);
    goto fail;
  }

  local_config = wr_ingress_local_config_json(ing, o);
  char *const *features;
  size_t nfeatures = wr_opts_list(o, "features", &features);
  wr_supervisor_config sc;
  memset(&sc, 0, sizeof(sc));
  sc.loop = r.loop;
  sc.cred = &cred;
  sc.edges = edges;
  sc.nedges = nedges;
  const char *ha = wr_opts_get(o, "ha-connections");
  sc.ha_connections = ha ? (unsigned)atoi(ha) : 4;
  if (sc.ha_connections == 0) sc.ha_connections = 1;
  sc.ca_file = wr_opts_get(o, "cacert");
  sc.connector_id = connector_id;
  sc.local_config = local_config;
  sc.local_config_len = strlen(local_config);
  sc.extra_features = (const char *const *)features;
  sc.nextra_features = nfeatures;
  sc.proxy = proxy;
  sc.on_fatal = on_fatal;
  sc.on_stopped = on_stopped;
  sc.user = &r;
  if (wr_supervisor_start(&sc, &r.sup, err, sizeof(err)) != WR_OK) {
    wr_error("%s", err);
    goto fail;
  }
  if (metrics) wr_metrics_server_set_supervisor(metrics, r.sup);

  uv_signal_init(r.loop, &r.sigint);
  uv_signal_init(r.loop, &r.sigterm);
  r.sigint.data = r.sigterm.data = &r;
  uv_signal_start(&r.sigint, on_signal, SIGINT);
  uv_signal_start(&r.sigterm, on_signal, SIGTERM);
  uv_run(r.loop, UV_RUN_DEFAULT);

  uv_close((uv_handle_t *)&r.sigint, NULL);
  uv_close((uv_handle_t *)&r.sigterm, NULL);
  if (metrics) wr_metrics_server_set_supervisor(metrics, NULL);
  wr_supervisor_free(r.sup);
  wr_metrics_server_free(metrics);
  wr_proxy_free(proxy);
  /* Let every close callback run (sockets, timers, endpoints). */
  for (int i = 0; i < 1000 && uv_run(r.loop, UV_RUN_NOWAIT); i++) {
  }
  uv_loop_close(r.loop);
  free(local_config);
  wr_ingress_free(ing);
  wr_config_free(cfg);
  if (r.exit_code == WR_EXIT_OK) wr_info("Tunnel server stopped");
  return r.exit_code;

fail:
  if (proxy || metrics) {
    wr_metrics_server_free(metrics);
    wr_proxy_free(proxy);
    for (int i = 0; i < 1000 && uv_run(uv_default_loop(), UV_RUN_NOWAIT); i++) {
    }
  }
  free(local_config);
  wr_ingress_free(ing);
  wr_config_free(cfg);
  return WR_EXIT_FAIL;
}
