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
 * Hot reload (cloudflared has none): SIGHUP, or a change to the config file
 * (a stat poll, so editors' rename-over and Kubernetes' symlink swaps count),
 * re-reads the file over the command line and environment as at start and
 * rebuilds the ingress rules with their originRequest settings and
 * warp-routing; new streams use them, streams in flight finish with the old
 * ones, connections stay. A file that does not load or validate (or is
 * empty) is refused with cloudflared's "file:line: key: reason" and the old
 * rules keep serving. Other settings (edges, credentials, metrics, ...) need
 * a restart.
 *
 * This file resolves flags, config and environment into
 * wr_connector_options, handles the signals and runs the loop;
 * connector/connector.h owns the proxy, the metrics server and the
 * supervisor. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cmd/commands.h"
#include "cmd/stop_signals.h"
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
#include "net/edge_discovery.h"

#define ERRLEN 1024

static const char need_tunnel_msg[] =
    "\"warren tunnel run\" requires the ID or name of the tunnel to run as the last command "
    "line argument or in the configuration file.";

/* How long the config file must stay unchanged before a reload: editors
 * and `kubectl` write in steps. A bound on churn, not a timing anyone
 * waits for exactly. */
#define RELOAD_SETTLE_MS 300
#define CONFIG_POLL_MS 1000

typedef struct runner {
  uv_loop_t *loop;
  wr__stop_signals stop;
  uv_signal_t sighup;
  uv_fs_poll_t watch;
  uv_timer_t settle;
  int watching;
  wr_connector *conn;
  int signals;
  const wr_opts *opts;     /* the command's bag: flags, environment, config file */
  const char *config_path; /* the file the rules came from, or NULL */
} runner;

/* What the flags resolve to; freed by run_free. */
typedef struct run_inputs {
  wr_config *cfg;
  wr_credentials cred;
  struct sockaddr_storage edges[WR_SUPERVISOR_MAX_CONNS];
  size_t nedges;
  wr_ingress *ing;
  char *local_config;
  char **tag_names, **tag_values; /* --tag, split */
  size_t ntags;
  struct sockaddr_storage bind;   /* --edge-bind-address */
  int has_bind;
  int have_cred;                  /* |cred| is a quick tunnel's: no lookup */
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

/* --edge-ip-version, narrowed by --edge-bind-address as cloudflared's
 * adjustIPVersionByBindAddress. Returns 0, or -1 with |err|. */
static int edge_ip_version(const wr_opts *o, const struct sockaddr_storage *bind, int *out,
                           char *err, size_t errlen) {
  const char *v = wr_opts_get(o, "edge-ip-version");
  if (wr_edge_ip_version_parse(v ? v : "auto", out) != 0) {
    snprintf(err, errlen, "invalid value for edge-ip-version: %s", v);
    return -1;
  }
  if (!bind) return 0;
  int want = bind->ss_family == AF_INET ? WR_EDGE_IP_V4 : WR_EDGE_IP_V6;
  if (*out != WR_EDGE_IP_AUTO && *out != want) {
    snprintf(err, errlen, "%s bind address is specified, but edge-ip-version is %s",
             want == WR_EDGE_IP_V4 ? "IPv4" : "IPv6", want == WR_EDGE_IP_V4 ? "IPv6" : "IPv4");
    return -1;
  }
  *out = want;
  return 0;
}

/* No --edge: SRV discovery (net/edge_discovery.h), one line per address. */
static int discover_edges(const wr_opts *o, int ipv, struct sockaddr_storage *out, size_t cap,
                          size_t *n, char *err, size_t errlen) {
  int k = wr_edge_discover(wr_opts_get(o, "region"), ipv, out, cap, err, errlen);
  if (k < 0) return WR_ERR_CONFIG;
  *n = (size_t)k;
  for (size_t i = 0; i < *n; i++) {
    char a[64];
    wr_addr_format(&out[i], a, sizeof(a));
    wr_info("Edge discovery: connIndex=%zu will dial %s", i, a);
  }
  return WR_OK;
}

static int resolve_edges(const wr_opts *o, const struct sockaddr_storage *bind,
                         struct sockaddr_storage *out, size_t cap, size_t *n, char *err,
                         size_t errlen) {
  char *const *vals;
  size_t nv = wr_opts_list(o, "edge", &vals);
  int ipv;
  *n = 0;
  if (edge_ip_version(o, bind, &ipv, err, errlen) != 0) return WR_ERR_CONFIG;
  if (nv == 0) return discover_edges(o, ipv, out, cap, n, err, errlen);
  for (size_t i = 0; i < nv && *n < cap; i++) {
    /* Every address of a name counts, up to the connection limit. */
    int k = wr_addr_resolve("--edge", vals[i], SOCK_DGRAM, 0, out + *n, cap - *n, err, errlen);
    if (k < 0) return WR_ERR_CONFIG;
    *n += (size_t)k;
  }
  return WR_OK;
}

/* ---- newer flags ------------------------------------------------------------------ */

/* --token-file (TUNNEL_TOKEN_FILE) when --token is not given: its content,
 * trimmed, becomes --token, as cloudflared's runCommand. Returns 0 or -1
 * after saying why. */
static int read_token_file(wr_opts *o) {
  const char *tok = wr_opts_get(o, "token"), *file = wr_opts_get(o, "token-file");
  if ((tok && *tok) || !file || !*file) return 0;
  char *data = NULL;
  size_t len = 0;
  char *exp = wr_path_expand(file);
  int rv = wr_file_read(exp ? exp : file, 64 * 1024, &data, &len);
  int e = errno;
  free(exp);
  if (rv != WR_OK) {
    /* Go's os.ReadFile error text, lower case as Go spells errno names. */
    char why[128];
    snprintf(why, sizeof(why), "%s", rv == WR_ERR_IO ? strerror(e) : wr_strerror(rv));
    why[0] = (char)tolower((unsigned char)why[0]);
    wr_error("Failed to read token file: open %s: %s", file, why);
    free(data);
    return -1;
  }
  size_t a = 0;
  while (a < len && isspace((unsigned char)data[a])) a++;
  while (len > a && isspace((unsigned char)data[len - 1])) len--;
  data[len] = '\0';
  wr_opts_set(o, "token", data + a, WR_SRC_CLI);
  free(data);
  return 0;
}

/* cloudflared's tag.go: NAME is an HTTP header token, VALUE printable. */
static int tag_split(const char *t, size_t *namelen) {
  static const char extra[] = "!#$%&'*+-.^_`|~";
  size_t i = 0;
  while (t[i] && t[i] != '=' && (isalnum((unsigned char)t[i]) || strchr(extra, t[i]))) i++;
  if (i == 0 || t[i] != '=' || !t[i + 1]) return -1;
  for (const char *v = t + i + 1; *v; v++)
    if (!isprint((unsigned char)*v)) return -1;
  *namelen = i;
  return 0;
}

static int parse_tags(const wr_opts *o, run_inputs *in) {
  char *const *vals;
  size_t n = wr_opts_list(o, "tag", &vals);
  if (!n) return 0;
  in->tag_names = wr_xcalloc(n, sizeof(char *));
  in->tag_values = wr_xcalloc(n, sizeof(char *));
  for (size_t i = 0; i < n; i++) {
    size_t nl;
    if (tag_split(vals[i], &nl) != 0) {
      wr_error("Tag parse failure: Cannot parse tag value %s", vals[i]);
      return -1;
    }
    in->tag_names[in->ntags] = wr_xstrndup(vals[i], nl);
    in->tag_values[in->ntags++] = wr_xstrdup(vals[i] + nl + 1);
  }
  return 0;
}

static int parse_bind(const wr_opts *o, run_inputs *in) {
  const char *b = wr_opts_get(o, "edge-bind-address");
  if (!b || !*b) return 0;
  struct sockaddr_in *v4 = (struct sockaddr_in *)&in->bind;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&in->bind;
  memset(&in->bind, 0, sizeof(in->bind));
  if (inet_pton(AF_INET, b, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
  } else if (inet_pton(AF_INET6, b, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
  } else {
    wr_error("invalid --edge-bind-address %s: not an IP address", b);
    return -1;
  }
  in->has_bind = 1;
  return 0;
}

static int check_bind_family(const wr_opts *o, const run_inputs *in) {
  for (size_t i = 0; in->has_bind && i < in->nedges; i++) {
    if (in->edges[i].ss_family != in->bind.ss_family) {
      wr_error("--edge-bind-address %s and the edge address family differ",
               wr_opts_get(o, "edge-bind-address"));
      return -1;
    }
  }
  return 0;
}

/* One warning for each flag set that warren accepts without effect (its
 * wr_flag has a no_effect reason: warren.c's table), in the table's order. */
static void warn_noop_flags(const wr_opts *o) {
  for (size_t i = 0; i < o->n; i++) {
    const wr_flag *f = o->items[i].flag;
    if (f->no_effect && wr_opts_isset(o, f->name)) wr_warn("--%s has no effect in warren: %s", f->name, f->no_effect);
  }
}

/* --output/--log-format, --logfile/--log-directory. Returns 0 or -1. */
static int log_outputs(const wr_opts *o) {
  const char *fmt = wr_opts_get(o, "log-format");
  if (!fmt || !*fmt) fmt = wr_opts_get(o, "output");
  wr_log_set_json(fmt && strcmp(fmt, "json") == 0);
  const char *logfile = wr_opts_get(o, "logfile"), *dir = wr_opts_get(o, "log-directory");
  char path[4096];
  if (logfile && *logfile && dir && *dir)
    wr_error("Your config includes values for both logfile (%s) and log-directory (%s), but they "
             "are incompatible. logfile takes precedence.",
             logfile, dir);
  if (logfile && *logfile) {
    snprintf(path, sizeof(path), "%s", logfile);
  } else if (dir && *dir) {
    if (wr_mkdirs(dir, 0755) != WR_OK) {
      fprintf(stderr, "cannot create --log-directory %s: %s\n", dir, strerror(errno));
      return -1;
    }
    snprintf(path, sizeof(path), "%s/cloudflared.log", dir);
  } else {
    return 0;
  }
  if (wr_log_tee_file(path) != 0) {
    fprintf(stderr, "cannot open log file %s\n", path);
    return -1;
  }
  return 0;
}

/* A duration flag in milliseconds (0 when unset or invalid: checked at parse). */
static uint64_t flag_ms(const wr_opts *o, const char *name) {
  long long ns = 0;
  const char *v = wr_opts_get(o, name);
  if (!v || wr_parse_duration(v, &ns) != 0 || ns < 0) return 0;
  return (uint64_t)(ns / 1000000);
}

static uint64_t flag_u64(const wr_opts *o, const char *name) {
  const char *v = wr_opts_get(o, name);
  long long n = v && wr_opts_isset(o, name) ? atoll(v) : 0;
  return n > 0 ? (uint64_t)n : 0;
}

/* ---- flags -> options -------------------------------------------------------------- */

/* --protocol as WR_PROTOCOL_* (h2mux is http2, as cloudflared upgrades
 * it), or -1. */
static int protocol_of(const wr_opts *o) {
  const char *p = wr_opts_get(o, "protocol");
  if (!p || strcmp(p, "auto") == 0) return WR_PROTOCOL_AUTO;
  if (strcmp(p, "quic") == 0) return WR_PROTOCOL_QUIC;
  if (strcmp(p, "http2") == 0 || strcmp(p, "h2mux") == 0) return WR_PROTOCOL_HTTP2;
  return -1;
}

/* --loglevel, the log's format and files, the no-op flags' warnings and
 * --protocol. Returns 0, or -1 after saying why. */
static int log_and_protocol(const wr_opts *o) {
  const char *lvl = wr_opts_get(o, "loglevel");
  if (lvl && wr_cli_set_loglevel(lvl, NULL) != 0) return -1;
  if (log_outputs(o) != 0) return -1;
  warn_noop_flags(o);
  if (protocol_of(o) < 0) {
    wr_error("--protocol \"%s\": expected auto, quic or http2", wr_opts_get(o, "protocol"));
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
static int resolve_inputs(wr_opts *o, int argc, char **argv, run_inputs *in) {
  char err[ERRLEN];
  if (read_token_file(o) != 0) return -1;
  if (parse_tags(o, in) != 0 || parse_bind(o, in) != 0) return -1;
  if ((!in->have_cred &&
       load_credentials(o, in->cfg, argc, argv, &in->cred, err, sizeof(err)) != WR_OK) ||
      resolve_edges(o, in->has_bind ? &in->bind : NULL, in->edges, WR_SUPERVISOR_MAX_CONNS,
                    &in->nedges, err, sizeof(err)) != WR_OK ||
      wr_ingress_load(in->cfg, o, &in->ing, err, sizeof(err)) != WR_OK) {
    wr_error("%s", err);
    return -1;
  }
  if (check_bind_family(o, in) != 0) return -1;
  const char *pidfile = wr_opts_get(o, "pidfile");
  if (pidfile && *pidfile && write_pidfile(pidfile) != 0)
    wr_warn("cannot write --pidfile %s", pidfile);
  return 0;
}

/* The flags about reaching and registering with the edge into |e|, and
 * the ingress as cloudflared reports it at registration (in->local_config,
 * which the caller frees). */
static void edge_settings(const wr_opts *o, run_inputs *in, wr_supervisor_edge *e) {
  const char *ha = wr_opts_get(o, "ha-connections");
  in->local_config = wr_ingress_local_config_json(in->ing, o);
  e->cred = &in->cred;
  e->edges = in->edges;
  e->nedges = in->nedges;
  e->ha_connections = ha ? (unsigned)atoi(ha) : 4;
  if (e->ha_connections == 0) e->ha_connections = 1;
  e->ca_file = wr_opts_get(o, "cacert");
  e->local_config = in->local_config;
  e->bind_addr = in->has_bind ? &in->bind : NULL;
  e->dial_timeout_ms = wr_opts_isset(o, "dial-edge-timeout") ? flag_ms(o, "dial-edge-timeout") : 0;
  e->rpc_timeout_ms = flag_ms(o, "rpc-timeout");
  e->protocol = protocol_of(o);
  e->retries = (unsigned)flag_u64(o, "retries");
  e->max_conn_window = flag_u64(o, "quic-connection-level-flow-control-limit");
  e->max_stream_window = flag_u64(o, "quic-stream-level-flow-control-limit");
}

/* The rest of the flags into |co|. */
static void connector_options(const wr_opts *o, run_inputs *in, wr_connector_options *co) {
  long long grace = 30LL * 1000000000LL;
  const char *gp = wr_opts_get(o, "grace-period");
  if (gp && wr_parse_duration(gp, &grace) != 0) grace = 30LL * 1000000000LL;
  char *const *features;
  memset(co, 0, sizeof(*co));
  edge_settings(o, in, &co->edge);
  co->ingress = in->ing;
  co->nfeatures = wr_opts_list(o, "features", &features);
  co->features = (const char *const *)features;
  co->metrics = wr_opts_get(o, "metrics");
  co->grace_ms = (uint64_t)(grace / 1000000);
  co->icmpv4_src = wr_opts_get(o, "icmpv4-src");
  co->icmpv6_src = wr_opts_get(o, "icmpv6-src");
  co->tag_names = (const char *const *)in->tag_names;
  co->tag_values = (const char *const *)in->tag_values;
  co->ntags = in->ntags;
  co->management_hostname = wr_opts_get(o, "management-hostname");
  co->label = wr_opts_get(o, "label");
}

static void run_free(run_inputs *in) {
  for (size_t i = 0; i < in->ntags; i++) {
    free(in->tag_names[i]);
    free(in->tag_values[i]);
  }
  free(in->tag_names);
  free(in->tag_values);
  free(in->local_config);
  wr_ingress_free(in->ing);
  wr_config_free(in->cfg);
}

/* ---- running ------------------------------------------------------------------------ */

static void on_stopped(void *user) {
  runner *r = user;
  uv_stop(r->loop);
}

/* ---- hot reload -------------------------------------------------------------------- */

/* Re-reads the config file over the command line and environment and
 * swaps the new ingress rules in, or refuses them and keeps the old. */
static void reload(runner *r, const char *why) {
  char err[ERRLEN];
  wr_config *cfg = NULL;
  wr_ingress *ing = NULL;
  wr_opts n;
  if (!r->config_path) {
    wr_warn("%s: no configuration file to reload (the rules come from the command line)", why);
    return;
  }
  wr_info("Reloading configuration from %s (%s)", r->config_path, why);
  wr_opts_copy_from(&n, r->opts, WR_SRC_ENV);
  int rv = wr_config_load(r->config_path, &cfg, err, sizeof(err));
  if (rv == WR_OK && !cfg->root) {
    snprintf(err, sizeof(err), "%s: the file is empty", r->config_path);
    rv = WR_ERR_CONFIG;
  }
  if (rv == WR_OK) rv = wr_config_apply_opts(cfg, &n, err, sizeof(err));
  if (rv == WR_OK) {
    for (size_t i = 0; i < cfg->n_warnings; i++) wr_warn("%s", cfg->warnings[i]);
    rv = wr_ingress_load(cfg, &n, &ing, err, sizeof(err));
  }
  if (rv != WR_OK) {
    wr_error("Refused the new configuration: %s; the previous configuration keeps serving", err);
  } else {
    wr_connector_set_ingress(r->conn, ing);
    wr_info("Configuration reloaded from %s: %zu ingress rules", r->config_path, ing->n_rules);
  }
  wr_config_free(cfg);
  wr_opts_free(&n);
}

static void on_settled(uv_timer_t *t) { reload(t->data, "the file changed"); }

static void on_config_change(uv_fs_poll_t *h, int status, const uv_stat_t *prev,
                             const uv_stat_t *curr) {
  runner *r = h->data;
  (void)prev;
  (void)curr;
  /* Gone for now (an editor's rename): wait for it to come back. */
  if (status < 0) return;
  uv_timer_start(&r->settle, on_settled, RELOAD_SETTLE_MS, 0);
}

static void on_hup(uv_signal_t *h, int signum) {
  (void)signum;
  reload(h->data, "SIGHUP");
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
  if (r->watching) uv_fs_poll_stop(&r->watch);
  uv_timer_stop(&r->settle);
  wr_connector_shutdown(r->conn);
}

/* Starts the connector, serves until it stopped, frees it. Returns the
 * exit code. */
static int serve(wr_connector_options *co, const wr_opts *o, const wr_config *cfg) {
  char err[ERRLEN];
  runner r;
  memset(&r, 0, sizeof(r));
  r.loop = uv_default_loop();
  r.opts = o;
  r.config_path = cfg ? cfg->source : NULL;
  co->on_stopped = on_stopped;
  co->user = &r;
  if (wr_connector_new(r.loop, co, &r.conn, err, sizeof(err)) != WR_OK) {
    wr_error("%s", err);
    return WR_EXIT_FAIL;
  }
  wr__stop_signals_start(r.loop, &r.stop, on_signal, &r);
  uv_signal_init(r.loop, &r.sighup);
  r.sighup.data = &r;
  uv_signal_start(&r.sighup, on_hup, SIGHUP);
  uv_timer_init(r.loop, &r.settle);
  r.settle.data = &r;
  uv_fs_poll_init(r.loop, &r.watch);
  r.watch.data = &r;
  r.watching =
      r.config_path && uv_fs_poll_start(&r.watch, on_config_change, r.config_path, CONFIG_POLL_MS) == 0;
  uv_run(r.loop, UV_RUN_DEFAULT);

  wr__stop_signals_close(&r.stop);
  uv_close((uv_handle_t *)&r.sighup, NULL);
  uv_close((uv_handle_t *)&r.settle, NULL);
  uv_close((uv_handle_t *)&r.watch, NULL);
  int code = wr_connector_failed(r.conn) ? WR_EXIT_FAIL : WR_EXIT_OK;
  wr_connector_free(r.conn); /* also runs the signal handles' close callbacks */
  uv_loop_close(r.loop);
  return code;
}

/* A quick tunnel's credentials from |service| into in->cred, and the
 * banner. 0, or -1 after saying why. */
static int quick_credentials(wr_opts *o, const char *service, run_inputs *in) {
  char err[ERRLEN], url[1024];
  if (wr__quick_tunnel_request(service, NULL, &in->cred, url, sizeof(url), err, sizeof(err)) != 0) {
    wr_error("%s", err);
    return -1;
  }
  in->have_cred = 1;
  wr__quick_tunnel_banner(url);
  /* cloudflared: quick tunnels are not for production, one connection. */
  wr_opts_set(o, "ha-connections", "1", WR_SRC_CLI);
  return 0;
}

/* Runs the tunnel the flags name, or with |quick_service| a quick tunnel
 * from it. Returns the exit code. */
static int run_tunnel(wr_opts *o, int argc, char **argv, const char *quick_service) {
  char err[ERRLEN];
  run_inputs in;
  wr_connector_options co;
  int rv;

  memset(&in, 0, sizeof(in));
  rv = wr_config_load_opts(o, &in.cfg, err, sizeof(err));
  if (rv != WR_OK && rv != WR_ERR_NOTFOUND) {
    fprintf(stderr, "%s\n", err);
    return WR_EXIT_FAIL;
  }
  rv = WR_EXIT_FAIL;
  if (log_and_protocol(o) == 0 && (!quick_service || quick_credentials(o, quick_service, &in) == 0) &&
      resolve_inputs(o, argc, argv, &in) == 0) {
    connector_options(o, &in, &co);
    rv = serve(&co, o, in.cfg);
  }
  explicit_bzero(&in.cred, sizeof(in.cred));
  run_free(&in);
  if (rv == WR_EXIT_OK) wr_info("Tunnel server stopped");
  return rv;
}

int wr_cmd_tunnel_run(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  if (argc > 1) {
    fprintf(stderr, "%s tunnel run: too many arguments; give one tunnel ID\n", o->prog);
    return WR_EXIT_USAGE;
  }
  return run_tunnel(o, argc, argv, NULL);
}

/* cloudflared's TunnelCommand: --url or --hello-world with a
 * --quick-service (default https://api.trycloudflare.com) asks that
 * service for a quick tunnel. With credentials (--token, --token-file,
 * --credentials-file, --credentials-contents) the named tunnel runs
 * instead: warren does not throw given credentials away. */
int wr_cmd_tunnel(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  static const char *const cred_flags[] = {"token", "token-file", "credentials-file",
                                           "credentials-contents"};
  const char *svc = wr_opts_get(o, "quick-service");
  (void)cmd;
  if (argc > 0 || !(wr_opts_isset(o, "url") || wr_opts_isset(o, "hello-world")))
    return WR_CLI_SHOW_HELP;
  for (size_t i = 0; i < sizeof(cred_flags) / sizeof(cred_flags[0]); i++) {
    const char *v = wr_opts_get(o, cred_flags[i]);
    if (v && *v) return run_tunnel(o, 0, NULL, NULL);
  }
  if (!svc || !*svc) return WR_CLI_SHOW_HELP;
  return run_tunnel(o, 0, NULL, svc);
}
