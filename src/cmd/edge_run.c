/* `warren-edge run`: today it serves the connector side only. It listens
 * for QUIC on --tunnel-listen with the tunnel-server certificate and
 * registers connectors (warren or the real cloudflared) against the store.
 * The visitor front, API and DNS server arrive with issues #3 and #4. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cmd/commands.h"
#include "edge/store.h"
#include "edge/tunnel_server.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/quic.h"

/* Parses HOST:PORT or [V6]:PORT into |out|. Returns 0 or -1. */
static int parse_listen(const char *s, struct sockaddr_storage *out) {
  char host[128];
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host)) return -1;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port < 0 || port > 65535) return -1;
  if (host[0] == '[') {
    size_t n = strlen(host);
    if (host[n - 1] != ']') return -1;
    host[n - 1] = '\0';
    return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)out) == 0 ? 0 : -1;
  }
  return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0 ? 0 : -1;
}

typedef struct edge_run {
  uv_signal_t sigint, sigterm;
  wr_quic_endpoint *ep;
  int stopping;
} edge_run;

static void on_signal(uv_signal_t *h, int signum) {
  edge_run *r = h->data;
  if (r->stopping) {
    wr_warn("second signal: exiting now");
    exit(1);
  }
  r->stopping = 1;
  wr_info("received %s, shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
  uv_stop(h->loop);
}

int wr_cmd_edge_run(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  (void)argv;
  const char *dir = wr_opts_get(o, "data-dir");
  const char *listen = wr_opts_get(o, "tunnel-listen");
  const char *lvl = wr_opts_get(o, "loglevel");
  char err[512], path[4096], cert[4096], key[4096];
  struct sockaddr_storage addr;
  wr_store *store = NULL;
  wr_tunnel_server *ts = NULL;
  wr_quic_tls *tls = NULL;
  wr_log_level level;
  edge_run r = {0};
  uv_loop_t *loop = uv_default_loop();
  int rv = WR_EXIT_FAIL;

  if (argc > 0) {
    fprintf(stderr, "%s run: unexpected argument \"%s\"\n", o->prog, argv[0]);
    return WR_EXIT_USAGE;
  }
  if (lvl && wr_log_parse_level(lvl, &level) == 0) wr_log_set_level(level);
  if (!dir || !*dir) {
    fprintf(stderr, "%s run: pass --data-dir DIR (or set WARREN_EDGE_DATA_DIR)\n", o->prog);
    return WR_EXIT_USAGE;
  }
  if (parse_listen(listen, &addr) != 0) {
    fprintf(stderr, "%s run: --tunnel-listen \"%s\" is not HOST:PORT\n", o->prog, listen);
    return WR_EXIT_USAGE;
  }
  snprintf(path, sizeof(path), "%s/warren.db", dir);
  if (wr_store_open(path, 0, &store, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s run: %s (run `warren-edge init --data-dir %s --zone ZONE` first?)\n",
            o->prog, err, dir);
    goto out;
  }
  snprintf(cert, sizeof(cert), "%s/tunnel-server.pem", dir);
  snprintf(key, sizeof(key), "%s/tunnel-server.key", dir);
  wr_quic_config qcfg = {.cert_file = cert, .key_file = key};
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
  uv_signal_init(loop, &r.sigint);
  uv_signal_init(loop, &r.sigterm);
  r.sigint.data = r.sigterm.data = &r;
  uv_signal_start(&r.sigint, on_signal, SIGINT);
  uv_signal_start(&r.sigterm, on_signal, SIGTERM);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&r.sigint, NULL);
  uv_close((uv_handle_t *)&r.sigterm, NULL);
  rv = WR_EXIT_OK;
out:
  if (r.ep) wr_quic_endpoint_free(r.ep);
  uv_run(loop, UV_RUN_NOWAIT); /* let close callbacks run */
  wr_tunnel_server_free(ts);
  if (tls) wr_quic_tls_free(tls);
  wr_store_close(store);
  uv_loop_close(loop);
  return rv;
}
