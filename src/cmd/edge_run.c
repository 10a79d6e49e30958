/* `warren-edge run`: listens for QUIC on --tunnel-listen with the
 * tunnel-server certificate and registers connectors (warren or the real
 * cloudflared) against the store; serves visitors over HTTP/1.1 on
 * --http-listen, proxying each request to a live connector of the tunnel
 * its Host is routed to; and, when asked, the REST API and login pages
 * (--api-listen), the authoritative DNS server (--dns-listen), RFC 2136
 * pushes to another DNS server (--dns-update-*) and the metrics, readiness
 * and health endpoints (--metrics). --config names a YAML file whose keys
 * are these flags' names (the command line and environment win). */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "cmd/commands.h"
#include "edge/api.h"
#include "edge/dns.h"
#include "edge/edge_metrics.h"
#include "edge/login.h"
#include "edge/store.h"
#include "edge/tunnel_server.h"
#include "edge/visitor.h"
#include "lib/encoding.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/addr.h"
#include "net/httpd.h"
#include "net/quic.h"

/* Parses a numeric HOST:PORT or [V6]:PORT into |out|. Returns 0 or -1. */
static int parse_listen(const char *s, struct sockaddr_storage *out) {
  char host[128];
  unsigned port;
  if (!s || wr_addr_split(s, host, sizeof(host), &port) != 0) return -1;
  if (strchr(host, ':'))
    return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0 ? 0 : -1;
  return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0 ? 0 : -1;
}

#define format_addr wr_addr_format

typedef struct edge_run {
  uv_signal_t sigint, sigterm;
  wr_quic_endpoint *ep;
  wr_visitor *visitor;
  wr_dns *dns;
  wr_dns_janitor *janitor;
  wr_httpd *api_httpd;     /* --api-listen: the REST API and the login pages */
  wr_dns_updater *updater; /* --dns-update-server: RFC 2136 pushes */
  wr_api *api;
  wr_login *login;
  wr_edge_metrics *metrics; /* --metrics */
  int stopping;
} edge_run;

/* Tells every registered connector that this edge is going away
 * (CONNECTION_CLOSE, application code 0): it starts reconnecting at once
 * instead of waiting for its idle timeout, so a restarted edge sees it
 * register again within its backoff's first step. */
static void close_connectors(wr_tunnel_server *ts) {
  size_t n = wr_tunnel_server_count(ts, NULL);
  for (size_t i = 0; i < n; i++) {
    wr_tunnel_conn_info info;
    /* on_close (and so the registry) only changes when the packet is
     * written, on a later loop iteration: the indexes stay valid here. */
    if (wr_tunnel_server_get(ts, NULL, i, &info) == WR_OK)
      wr_quic_conn_close(info.quic, 0, "edge shutting down");
  }
}

static void stop_loop_cb(uv_timer_t *t) { uv_stop(t->loop); }

static void update_done(void *user, int rv, int rcode, const char *msg) {
  (void)user;
  if (rv == WR_OK)
    wr_info("DNS update: %s", msg);
  else
    wr_warn("DNS update failed (rcode %d): %s", rcode, msg);
}

/* API route changes go to the external DNS server as well. */
static void on_route(void *user, int op, const char *hostname, const char *tunnel_id) {
  edge_run *r = user;
  if (r->dns) wr_dns_invalidate(r->dns);
  if (!r->updater) return;
  if (op == WR_API_ROUTE_SET)
    wr_dns_update_publish(r->updater, hostname, tunnel_id, update_done, r);
  else if (op == WR_API_ROUTE_REMOVED)
    wr_dns_update_unpublish(r->updater, hostname, tunnel_id, update_done, r);
  else if (op == WR_API_TUNNEL_DELETED)
    wr_dns_update_unpublish_tunnel(r->updater, tunnel_id, update_done, r);
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

/* --api-listen serves two things: the Cloudflare v4 API under /client/v4
 * and the login pages cloudflared's `tunnel login` opens. */
static void api_router(wr_httpd *h, wr_httpd_req *req, void *user) {
  static const char not_found[] =
      "{\"success\":false,\"errors\":[{\"code\":7003,\"message\":\"No route for that URI\"}],"
      "\"messages\":[],\"result\":null}";
  edge_run *r = user;
  (void)h;
  if (r->api && wr_api_handle(r->api, req)) return;
  if (r->login && wr_login_handle(r->login, req)) return;
  wr_httpd_respond_simple(req, 404, "application/json", not_found, sizeof(not_found) - 1);
}

/* The QUIC stateless-reset key lives in DIR/quic-reset.key (created on the
 * first run, mode 0600) so that an edge restarted after a crash can still
 * reset the connections of its previous life and connectors come back at
 * once rather than after their idle timeout. Returns 0 or -1. */
static int load_reset_key(const char *dir, uint8_t key[32], char *err, size_t errlen) {
  char path[4096];
  char *data = NULL;
  size_t len = 0;
  snprintf(path, sizeof(path), "%s/quic-reset.key", dir);
  if (wr_file_read(path, 64, &data, &len) == WR_OK && len == 32) {
    memcpy(key, data, 32);
    free(data);
    return 0;
  }
  free(data);
  if (wr_random_bytes(key, 32) != 0 || wr_file_write(path, key, 32, 0600, 0) != WR_OK) {
    snprintf(err, errlen, "cannot create %.400s", path);
    return -1;
  }
  return 0;
}

/* The visitor limit flags, into |vc|. 0 turns a per-source limit off; the
 * total must stay a number. Returns 0, or -1 after printing why. */
static int visitor_limits(const wr_opts *o, wr_visitor_config *vc) {
  static const struct {
    const char *flag;
    size_t off;
    int zero_is_off;
  } rows[] = {
      {"max-visitor-conns", offsetof(wr_visitor_config, max_conns), 0},
      {"max-conns-per-source", offsetof(wr_visitor_config, max_conns_per_source), 1},
      {"requests-per-second-per-source",
       offsetof(wr_visitor_config, requests_per_second_per_source), 1},
      {"request-burst-per-source", offsetof(wr_visitor_config, request_burst_per_source), 0},
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
    *(size_t *)((char *)vc + rows[i].off) = n ? (size_t)n : WR_VISITOR_OFF;
  }
  return 0;
}

/* Descriptors the edge needs besides visitor connections: the API's own
 * connection limit (1024), connectors, DNS, the store, logs. */
#define FD_HEADROOM 1280

/* Every visitor connection is a descriptor. When the visitor limit is
 * above what RLIMIT_NOFILE allows, accept(2) would fail before the limit
 * is reached, and the reserve and idle eviction, which work against the
 * limit, would never act: raise the soft limit, and if the hard one is
 * still too low, lower the visitor limit to fit. */
static void fit_nofile(wr_visitor_config *vc) {
  struct rlimit rl;
  size_t want = vc->max_conns + FD_HEADROOM;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
    return;
  rlim_t cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? (rlim_t)want : rl.rlim_max;
  if (cur > rl.rlim_cur) {
    rl.rlim_cur = cur;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur >= want) return;
  size_t fit = rl.rlim_cur > 2 * FD_HEADROOM ? rl.rlim_cur - FD_HEADROOM : rl.rlim_cur / 2;
  wr_warn("the open-file limit is %llu: serving at most %zu visitor connections instead of %zu "
          "(raise it with ulimit -n or LimitNOFILE=)",
          (unsigned long long)rl.rlim_cur, fit, vc->max_conns);
  vc->max_conns = fit;
}

static void on_signal(uv_signal_t *h, int signum) {
  edge_run *r = h->data;
  if (r->stopping) {
    wr_warn("second signal: exiting now");
    exit(1);
  }
  r->stopping = 1;
  wr_edge_metrics_set_ready(r->metrics, 0, "shutting down");
  wr_info("received %s, shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
  uv_stop(h->loop);
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

/* --max-half-open and --max-half-open-per-source: the caps on QUIC
 * handshakes in progress, and the Retry thresholds that go with them (a
 * tenth of the total, a fifth per source, as the defaults 1000/100 and
 * 50/10). Returns 0, or -1 after saying what is wrong. */
static int half_open_limits(wr_opts *o, wr_quic_config *q) {
  static const char *const names[2] = {"max-half-open", "max-half-open-per-source"};
  long long v[2];
  for (int i = 0; i < 2; i++) {
    const char *s = wr_opts_get(o, names[i]);
    char *end = NULL;
    v[i] = s ? strtoll(s, &end, 10) : 0;
    if (s && (*end || v[i] < 1 || v[i] > 1000000)) {
      fprintf(stderr, "%s run: --%s must be between 1 and 1000000\n", o->prog, names[i]);
      return -1;
    }
  }
  if (v[0]) {
    q->max_half_open = (unsigned)v[0];
    q->retry_half_open = v[0] >= 10 ? (unsigned)(v[0] / 10) : 1;
  }
  if (v[1]) {
    q->max_half_open_per_source = (unsigned)v[1];
    q->retry_half_open_per_source = v[1] >= 5 ? (unsigned)(v[1] / 5) : 1;
  }
  return 0;
}

int wr_cmd_edge_run(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  (void)argv;
  if (argc > 0) {
    fprintf(stderr, "%s run: unexpected argument \"%s\"\n", o->prog, argv[0]);
    return WR_EXIT_USAGE;
  }
  if (load_edge_config(o) != 0) return WR_EXIT_USAGE;
  const char *dir = wr_opts_get(o, "data-dir");
  const char *listen = wr_opts_get(o, "tunnel-listen");
  const char *http_listen = wr_opts_get(o, "http-listen");
  const char *dns_listen = wr_opts_get(o, "dns-listen");
  const char *metrics = wr_opts_get(o, "metrics");
  struct sockaddr_storage dns_addr;
  const char *lvl = wr_opts_get(o, "loglevel");
  char err[512], path[4096], cert[4096], key[4096];
  struct sockaddr_storage addr, http_addr;
  wr_store *store = NULL;
  wr_tunnel_server *ts = NULL;
  wr_quic_tls *tls = NULL;
  wr_log_level level;
  edge_run r = {0};
  uv_loop_t *loop = uv_default_loop();
  int rv = WR_EXIT_FAIL;

  if (lvl && *lvl) {
    if (wr_log_parse_level(lvl, &level) != WR_OK) {
      fprintf(stderr, "%s run: unknown --loglevel \"%s\" (debug, info, warn, error, fatal)\n", o->prog,
              lvl);
      return WR_EXIT_USAGE;
    }
    wr_log_set_level(level);
  }
  if (!dir || !*dir) {
    fprintf(stderr, "%s run: pass --data-dir DIR (or set WARREN_EDGE_DATA_DIR)\n", o->prog);
    return WR_EXIT_USAGE;
  }
  if (parse_listen(listen, &addr) != 0) {
    fprintf(stderr, "%s run: --tunnel-listen \"%s\" is not HOST:PORT\n", o->prog, listen);
    return WR_EXIT_USAGE;
  }
  if (!http_listen || parse_listen(http_listen, &http_addr) != 0) {
    fprintf(stderr, "%s run: --http-listen \"%s\" is not HOST:PORT\n", o->prog,
            http_listen ? http_listen : "");
    return WR_EXIT_USAGE;
  }
  if (dns_listen && *dns_listen && parse_listen(dns_listen, &dns_addr) != 0) {
    fprintf(stderr, "%s run: --dns-listen \"%s\" is not HOST:PORT\n", o->prog, dns_listen);
    return WR_EXIT_USAGE;
  }
  if (metrics && *metrics) {
    /* Only the shape here; the host (a name is fine) resolves when the
     * server starts. */
    char mhost[256];
    unsigned mport;
    if (wr_addr_split(metrics, mhost, sizeof(mhost), &mport) != 0) {
      fprintf(stderr, "%s run: --metrics \"%s\" is not HOST:PORT\n", o->prog, metrics);
      return WR_EXIT_USAGE;
    }
  }
  wr_visitor_config vcfg = {.scheme = "http"};
  if (visitor_limits(o, &vcfg) != 0) return WR_EXIT_USAGE;
  snprintf(path, sizeof(path), "%s/warren.db", dir);
  if (wr_store_open(path, 0, &store, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s run: %s (run `warren-edge init --data-dir %s --zone ZONE` first?)\n",
            o->prog, err, dir);
    goto out;
  }
  snprintf(cert, sizeof(cert), "%s/tunnel-server.pem", dir);
  snprintf(key, sizeof(key), "%s/tunnel-server.key", dir);
  uint8_t reset_key[32];
  if (load_reset_key(dir, reset_key, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s run: %s\n", o->prog, err);
    goto out;
  }
  wr_quic_config qcfg = {.cert_file = cert, .key_file = key, .reset_key = reset_key,
                         .reset_key_len = sizeof(reset_key)};
  if (half_open_limits(o, &qcfg) != 0) {
    rv = WR_EXIT_USAGE;
    goto out;
  }
  if (wr_quic_tls_new(WR_QUIC_SERVER, &qcfg, &tls, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s run: %s\n", o->prog, err);
    goto out;
  }
  wr_tunnel_server_config tcfg = {.store = store};
  if (wr_tunnel_server_new(&tcfg, &ts) != 0) goto out;
  if (wr_tunnel_server_listen(ts, loop, tls, &qcfg, (const struct sockaddr *)&addr, &r.ep) != 0) {
    fprintf(stderr, "%s run: cannot listen on %s (UDP)\n", o->prog, listen);
    goto out;
  }
  struct sockaddr_storage bound;
  char name[64] = "?";
  if (wr_quic_endpoint_addr(r.ep, &bound) == 0) {
    int port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    if (bound.ss_family == AF_INET6) port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    snprintf(name, sizeof(name), "%d", port);
  }
  wr_info("Listening for connectors on %s (QUIC, UDP port %s)", listen, name);
  /* Deleted tunnels (also by other processes sharing the store) lose their
   * live connections within the sweep period. */
  wr_tunnel_server_watch(ts, loop, 0);
  vcfg.store = store;
  vcfg.ts = ts;
  fit_nofile(&vcfg);
  if (wr_visitor_listen(loop, &vcfg, (const struct sockaddr *)&http_addr, &r.visitor) != 0) {
    fprintf(stderr, "%s run: cannot listen on %s (TCP)\n", o->prog, http_listen);
    goto out;
  }
  struct sockaddr_storage vbound;
  char vname[80] = "?";
  if (wr_visitor_addr(r.visitor, &vbound) == 0) format_addr(&vbound, vname, sizeof(vname));
  wr_info("Serving visitors on http://%s", vname);
  if (dns_listen && *dns_listen) {
    /* The edge's public address: the host of --http-listen. */
    char host[INET6_ADDRSTRLEN] = "";
    const char *addrs[1] = {host};
    if (http_addr.ss_family == AF_INET6)
      uv_ip6_name((const struct sockaddr_in6 *)&http_addr, host, sizeof(host));
    else
      uv_ip4_name((const struct sockaddr_in *)&http_addr, host, sizeof(host));
    wr_dns_config dcfg = {.store = store, .addrs = addrs, .naddrs = 1};
    if (wr_dns_listen(loop, &dcfg, (const struct sockaddr *)&dns_addr, &r.dns, err, sizeof(err)) != WR_OK) {
      fprintf(stderr, "%s run: %s\n", o->prog, err);
      goto out;
    }
    struct sockaddr_storage dbound;
    char dname[80] = "?";
    if (wr_dns_addr(r.dns, &dbound) == WR_OK) format_addr(&dbound, dname, sizeof(dname));
    wr_info("Serving DNS on %s (UDP and TCP)", dname);
  }
  const char *api_listen = wr_opts_get(o, "api-listen");
  if (api_listen && *api_listen) {
    struct sockaddr_storage api_addr, abound;
    char aname[80] = "?", public_url[128];
    if (parse_listen(api_listen, &api_addr) != 0) {
      fprintf(stderr, "%s run: --api-listen \"%s\" is not HOST:PORT\n", o->prog, api_listen);
      goto out;
    }
    wr_api_config acfg = {.store = store, .ts = ts, .on_route = on_route, .route_user = &r};
    if (wr_api_new(&acfg, &r.api) != WR_OK) goto out;
    if (wr_httpd_listen(loop, (const struct sockaddr *)&api_addr, NULL, api_router, &r,
                        &r.api_httpd) != WR_OK) {
      fprintf(stderr, "%s run: cannot listen on %s (TCP)\n", o->prog, api_listen);
      goto out;
    }
    if (wr_httpd_addr(r.api_httpd, &abound) == WR_OK) format_addr(&abound, aname, sizeof(aname));
    snprintf(public_url, sizeof(public_url), "http://%s", aname);
    wr_login_config lcfg = {.loop = loop, .store = store, .data_dir = dir, .public_url = public_url};
    if (wr_login_new(&lcfg, &r.login) != WR_OK) goto out;
    wr_info("Serving the API on %s/client/v4 and logins on %s/argotunnel", public_url, public_url);
  }
  const char *up_server = wr_opts_get(o, "dns-update-server");
  if (!up_server || !*up_server) {
    if (wr_opts_isset(o, "dns-update-zone") || wr_opts_isset(o, "dns-update-key"))
      wr_warn("--dns-update-zone and --dns-update-key do nothing without --dns-update-server");
  } else {
    const char *zone = wr_opts_get(o, "dns-update-zone"), *spec = wr_opts_get(o, "dns-update-key");
    const char *alg = NULL, *kname = NULL, *secret = NULL;
    char keybuf[1024], host[INET6_ADDRSTRLEN] = "";
    const char *addrs[1] = {host};
    if (!zone || !*zone) {
      fprintf(stderr, "%s run: --dns-update-server needs --dns-update-zone\n", o->prog);
      goto out;
    }
    if (spec && *spec && split_tsig(spec, keybuf, sizeof(keybuf), &alg, &kname, &secret) != 0) {
      fprintf(stderr, "%s run: --dns-update-key is not [ALGORITHM:]NAME:SECRET\n", o->prog);
      goto out;
    }
    if (http_addr.ss_family == AF_INET6)
      uv_ip6_name((const struct sockaddr_in6 *)&http_addr, host, sizeof(host));
    else
      uv_ip4_name((const struct sockaddr_in *)&http_addr, host, sizeof(host));
    wr_dns_update_config ucfg = {.server = up_server, .zone = zone, .key_name = kname,
                                 .algorithm = alg, .secret = secret, .addrs = addrs, .naddrs = 1};
    if (wr_dns_updater_new(loop, &ucfg, &r.updater, err, sizeof(err)) != WR_OK) {
      fprintf(stderr, "%s run: %s\n", o->prog, err);
      goto out;
    }
    explicit_bzero(keybuf, sizeof(keybuf));
    wr_info("Pushing route records to %s (zone %s) with RFC 2136%s", up_server, zone,
            kname ? ", TSIG-signed" : ", unsigned");
  }
  wr_dns_cleanup_config ccfg = {.store = store, .dns = r.dns, .updater = r.updater};
  wr_dns_janitor_start(loop, &ccfg, &r.janitor);
  if (metrics && *metrics) {
    wr_edge_metrics_config mcfg = {.store = store, .ts = ts, .ep = r.ep, .visitor = r.visitor, .dns = r.dns,
                                   .api = r.api, .login = r.login};
    if (wr_edge_metrics_start(loop, metrics, &mcfg, &r.metrics, err, sizeof(err)) != WR_OK) {
      fprintf(stderr, "%s run: %s\n", o->prog, err);
      goto out;
    }
  }
  /* Every listener is up: /ready may say so. */
  wr_edge_metrics_set_ready(r.metrics, 1, NULL);
  uv_signal_init(loop, &r.sigint);
  uv_signal_init(loop, &r.sigterm);
  r.sigint.data = r.sigterm.data = &r;
  uv_signal_start(&r.sigint, on_signal, SIGINT);
  uv_signal_start(&r.sigterm, on_signal, SIGTERM);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&r.sigint, NULL);
  uv_close((uv_handle_t *)&r.sigterm, NULL);
  /* The metrics server reads every subsystem: it goes before them. */
  wr_edge_metrics_free(r.metrics);
  r.metrics = NULL;
  /* Visitors first (their streams are reset while the connections still
   * exist), then the connectors are told; a short run sends the packets. */
  wr_visitor_free(r.visitor);
  r.visitor = NULL;
  close_connectors(ts);
  uv_timer_t flush;
  uv_timer_init(loop, &flush);
  uv_timer_start(&flush, stop_loop_cb, 100, 0);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&flush, NULL);
  rv = WR_EXIT_OK;
out:
  wr_edge_metrics_free(r.metrics);
  /* Visitors first: they abandon their data streams while the QUIC
   * connections still exist; then the endpoint; the tunnel server last. */
  if (r.visitor) wr_visitor_free(r.visitor);
  /* Logins answer their held polls while the HTTP server still exists. */
  wr_login_free(r.login);
  if (r.api_httpd) wr_httpd_free(r.api_httpd);
  wr_dns_janitor_free(r.janitor);
  wr_dns_updater_free(r.updater);
  wr_dns_free(r.dns);
  if (ts) wr_tunnel_server_unwatch(ts);
  if (r.ep) wr_quic_endpoint_free(r.ep);
  uv_run(loop, UV_RUN_DEFAULT); /* every handle is closing: runs their close callbacks */
  wr_api_free(r.api);
  wr_tunnel_server_free(ts);
  if (tls) wr_quic_tls_free(tls);
  wr_store_close(store);
  uv_loop_close(loop);
  return rv;
}
