/* The edge process's owner; see edge.h for the order of things and why. */
#include "edge/edge.h"
#include "edge/mgmt_key.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <sodium.h>

#include "edge/api.h"
#include "edge/cluster.h"
#include "edge/db.h"
#include "edge/db_notify.h"
#include "edge/peer.h"
#include "edge/pki.h"
#include "edge/dash.h"
#include "edge/dns.h"
#include "edge/dns_update.h"
#include "edge/edge_metrics.h"
#include "edge/login.h"
#include "edge/access.h"
#include "edge/private_tcp.h"
#include "edge/router.h"
#include "edge/store.h"
#include "edge/store_async.h"
#include "edge/tun.h"
#include "edge/tunnel_h2.h"
#include "edge/wg_ingress.h"
#include "edge/wg_key.h"
#include "edge/tunnel_server.h"
#include "edge/acme.h"
#include "edge/certs.h"
#include "edge/visitor.h"
#include "edge/zone_settings.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/addr.h"
#include "net/httpd.h"
#include "net/idle_trim.h"
#include "net/quic.h"

/* How long wr_edge_drain lets the goodbye packets leave. */
#define DRAIN_FLUSH_MS 100

/* Descriptors the edge needs besides visitor connections: the API's own
 * connection limit (1024), connectors, DNS, the store, logs. */
#define FD_HEADROOM 1280

struct wr_edge {
  uv_loop_t *loop;
  const wr_edge_options *opts; /* only during wr_edge_new */
  char *data_dir;              /* copied from the options */
  char *store_target;          /* --store, copied; NULL: DATA_DIR/warren.db */
  size_t nstarted;             /* rows of subsystems[] that ran start (maybe partly) */

  wr_store *store;
  wr_store_async *store_async;
  /* tunnels: kept for the endpoint's life, which may keep pointers into
   * its config */
  char cert[4096], key[4096];
  uint8_t reset_key[32];
  wr_quic_config qcfg;
  wr_quic_tls *tls;
  wr_tunnel_server *ts;
  wr_quic_endpoint *ep;
  wr_tunnel_h2 *h2; /* HTTP/2 connectors: TCP, same address and port */
  int watching;
  char edge_id[WR_STORE_UUID_LEN + 1]; /* among edges sharing the store; "" alone */
  wr_peer *peer;
  wr_cluster *cluster;
  wr_db_notify *notify;   /* the store's change notifications */

  wr_router *router;
  wr_tun *tun;
  wr_wg_ingress *wg;
  wr_private_tcp *ptcp;        /* TCP to private addresses; NULL if lwIP is taken */
  wr_visitor *visitor;
  wr_inspect *inspect;         /* the dashboard's traffic inspector; NULL: off */
  wr_tunnel_stats *tunnel_stats; /* per-tunnel visitor counters */
  wr_visitor *https;           /* the HTTPS front, if configured */
  wr_certs *certs;             /* its certificates */
  wr_zone_cache *zones;        /* per-zone options for both fronts */
  wr_acme *acme;               /* ACME certificates, if configured */
  wr_dns *dns;
  wr_api *api;
  wr_httpd *api_httpd;         /* the REST API and the login pages */
  uv_timer_t quick_sweep;      /* expires idle quick tunnels */
  int quick_sweeping;
  wr_login *login;
  wr_dash *dash;               /* /dashboard on the API listener */
  wr_access *access;           /* the Access gate and sign-in pages */
  wr_dns_updater *updater;
  wr_dns_janitor *janitor;
  wr_edge_metrics *metrics;
  wr_idle_trim *trim;          /* freed heap back to the kernel when idle */

  uv_timer_t flush;            /* wr_edge_drain's short run */
};

/* An optional listener is off when the operator gave no address. */
static int listen_on(const wr_edge_listen *l) { return l->text && *l->text; }

/* Frees one subsystem's object with |free_fn| (each takes NULL) and
 * forgets it, so a second run of a hook (a drain then a stop) finds NULL. */
#define FREE_CLEAR(free_fn, e, field) \
  do {                                \
    free_fn((e)->field);              \
    (e)->field = NULL;                \
  } while (0)

/* A stop or release hook (the table below) that only does FREE_CLEAR. */
#define FREE_HOOK(hook, free_fn, field) \
  static void hook(wr_edge *e) { FREE_CLEAR(free_fn, e, field); }

/* ---- store ---------------------------------------------------------------------- */

/* --store, or the SQLite file in the data directory. */
static const char *store_path(wr_edge *e, char *path, size_t size) {
  if (e->store_target) return e->store_target;
  snprintf(path, size, "%s/warren.db", e->data_dir);
  return path;
}

static int start_store(wr_edge *e, char *err, size_t errlen) {
  char buf[4096];
  const char *path = store_path(e, buf, sizeof(buf));
  return wr_store_open(path, 0, &e->store, err, errlen) == WR_OK ? WR_OK : WR_ERR_STORE;
}

FREE_HOOK(release_store, wr_store_close, store)

/* The store thread: a second connection for the calls moved off the loop
 * (store.h says which). */
static int start_store_thread(wr_edge *e, char *err, size_t errlen) {
  char buf[4096];
  const char *path = store_path(e, buf, sizeof(buf));
  int rv = wr_store_async_new(e->loop, path, &e->store_async, err, errlen);
  return rv == WR_OK ? WR_OK : rv == WR_ERR_IO ? WR_ERR_IO : WR_ERR_STORE;
}

/* At stop, not release: the handle's close needs the loop that still runs. */
FREE_HOOK(stop_store_thread, wr_store_async_free, store_async)

/* ---- tunnels: the QUIC endpoint and the tunnel server ----------------------------- */

/* The QUIC stateless-reset key lives in DIR/quic-reset.key (created on the
 * first run, mode 0600) so that an edge restarted after a crash can still
 * reset the connections of its previous life and connectors come back at
 * once rather than after their idle timeout. */
static int load_reset_key(const char *dir, uint8_t key[32], char *err, size_t errlen) {
  char path[4096];
  char *data = NULL;
  size_t len = 0;
  snprintf(path, sizeof(path), "%s/quic-reset.key", dir);
  if (wr_file_read(path, 64, &data, &len) == WR_OK && len == 32) {
    memcpy(key, data, 32);
    free(data);
    return WR_OK;
  }
  free(data);
  if (wr_random_bytes(key, 32) != 0 || wr_file_write(path, key, 32, 0600, 0) != WR_OK) {
    snprintf(err, errlen, "cannot create %.400s", path);
    return WR_ERR_IO;
  }
  return WR_OK;
}

/* The caps on QUIC handshakes in progress, and the Retry thresholds that
 * go with them (a tenth of the total, a fifth per source, as the defaults
 * 1000/100 and 50/10). */
static void half_open_limits(const wr_edge_options *o, wr_quic_config *q) {
  if (o->max_half_open) {
    q->max_half_open = o->max_half_open;
    q->retry_half_open = o->max_half_open >= 10 ? o->max_half_open / 10 : 1;
  }
  if (o->max_half_open_per_source) {
    q->max_half_open_per_source = o->max_half_open_per_source;
    q->retry_half_open_per_source =
        o->max_half_open_per_source >= 5 ? o->max_half_open_per_source / 5 : 1;
  }
}

static int start_tunnels(wr_edge *e, char *err, size_t errlen) {
  const wr_edge_options *o = e->opts;
  int rv;
  snprintf(e->cert, sizeof(e->cert), "%s/tunnel-server.pem", e->data_dir);
  snprintf(e->key, sizeof(e->key), "%s/tunnel-server.key", e->data_dir);
  if ((rv = load_reset_key(e->data_dir, e->reset_key, err, errlen)) != WR_OK) return rv;
  e->qcfg = (wr_quic_config){.cert_file = e->cert, .key_file = e->key, .reset_key = e->reset_key,
                             .reset_key_len = sizeof(e->reset_key)};
  half_open_limits(o, &e->qcfg);
  if ((rv = wr_quic_tls_new(WR_QUIC_SERVER, &e->qcfg, &e->tls, err, errlen)) != WR_OK) return rv;
  /* A PostgreSQL store may be shared with other edges: this run gets an
   * id for its row and its connections' (edge/cluster.h). */
  if (e->store_target && wr_db_target_is_pg(e->store_target)) {
    wr_uuid u;
    if (wr_uuid_random(&u) != WR_OK) {
      snprintf(err, errlen, "cannot draw a random edge id");
      return WR_ERR_CRYPTO;
    }
    wr_uuid_format(&u, e->edge_id);
  }
  /* Test-only hooks (tunnel_server.h): the per-tunnel limits, lowered so
   * that a test needs a few connectors rather than 25. */
  const char *mc = getenv("WARREN_TEST_MAX_CONNECTORS");
  const char *mp = getenv("WARREN_TEST_MAX_CONNS_PER_CONNECTOR");
  wr_tunnel_server_config tcfg = {.store = e->store, .store_async = e->store_async,
                                  .edge_id = e->edge_id,
                                  .max_connectors = mc ? (unsigned)strtoul(mc, NULL, 10) : 0,
                                  .max_conns_per_connector =
                                      mp ? (unsigned)strtoul(mp, NULL, 10) : 0};
  if ((rv = wr_tunnel_server_new(&tcfg, &e->ts)) != WR_OK) return rv;
  rv = wr_tunnel_server_listen(e->ts, e->loop, e->tls, &e->qcfg,
                               (const struct sockaddr *)&o->tunnel.addr, &e->ep);
  if (rv != WR_OK) {
    snprintf(err, errlen, "cannot listen on %s (UDP)", o->tunnel.text);
    return rv;
  }
  struct sockaddr_storage bound = o->tunnel.addr;
  char name[64] = "?";
  if (wr_quic_endpoint_addr(e->ep, &bound) == 0) {
    int port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    if (bound.ss_family == AF_INET6) port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    snprintf(name, sizeof(name), "%d", port);
  }
  /* cloudflared's --protocol http2 dials the same port over TCP. */
  struct sockaddr_storage tcp_addr;
  memcpy(&tcp_addr, &o->tunnel.addr, sizeof(tcp_addr));
  if (bound.ss_family == AF_INET6)
    ((struct sockaddr_in6 *)&tcp_addr)->sin6_port = ((struct sockaddr_in6 *)&bound)->sin6_port;
  else
    ((struct sockaddr_in *)&tcp_addr)->sin_port = ((struct sockaddr_in *)&bound)->sin_port;
  char h2err[256] = "";
  rv = wr_tunnel_h2_listen(e->ts, e->loop, e->cert, e->key, (const struct sockaddr *)&tcp_addr,
                           &e->h2, h2err, sizeof(h2err));
  int any_port = o->tunnel.addr.ss_family == AF_INET6
                     ? ((const struct sockaddr_in6 *)&o->tunnel.addr)->sin6_port == 0
                     : ((const struct sockaddr_in *)&o->tunnel.addr)->sin_port == 0;
  if (rv == WR_ERR_IO && any_port) {
    /* Port 0 (tests): UDP's pick may be taken on TCP; any TCP port will do. */
    memcpy(&tcp_addr, &o->tunnel.addr, sizeof(tcp_addr));
    rv = wr_tunnel_h2_listen(e->ts, e->loop, e->cert, e->key, (const struct sockaddr *)&tcp_addr,
                             &e->h2, h2err, sizeof(h2err));
  }
  if (rv != WR_OK) {
    snprintf(err, errlen, "cannot listen on %s (TCP, for HTTP/2 connectors): %s", o->tunnel.text,
             h2err);
    return rv;
  }
  wr_info("Listening for connectors on %s (QUIC, UDP port %s; HTTP/2, TCP port %d)",
          o->tunnel.text, name, wr_tunnel_h2_port(e->h2));
  /* Deleted tunnels (also by other processes sharing the store) lose their
   * live connections within the sweep period; with other edges sharing
   * the store, also at the cluster's next heartbeat (edge/cluster.h). */
  wr_tunnel_server_watch(e->ts, e->loop, 0);
  e->watching = 1;
  return WR_OK;
}

/* Tells every registered connector that this edge is going away
 * (CONNECTION_CLOSE, application code 0): it starts reconnecting at once
 * instead of waiting for its idle timeout, so a restarted edge sees it
 * register again within its backoff's first step. */
static void drain_tunnels(wr_edge *e) {
  if (!e->ts) return;
  wr_tunnel_server_store_on_loop(e->ts);
  wr_tunnel_server_close_all(e->ts, "edge shutting down");
}

static void stop_tunnels(wr_edge *e) {
  if (e->watching) wr_tunnel_server_unwatch(e->ts);
  e->watching = 0;
  FREE_CLEAR(wr_quic_endpoint_free, e, ep);
  FREE_CLEAR(wr_tunnel_h2_free, e, h2);
}

/* After the endpoint's connections are gone: the tunnel server's registry
 * no longer points at any. */
static void release_tunnels(wr_edge *e) {
  FREE_CLEAR(wr_tunnel_server_free, e, ts);
  /* After the tunnel server closed its connections' rows: the edge's own
   * row goes, and any row it left open with it. */
  wr_cluster_leave(e->cluster, e->store);
  e->cluster = NULL;
  FREE_CLEAR(wr_quic_tls_free, e, tls);
}

/* ---- cluster: edges sharing a PostgreSQL store ----------------------------------- */

/* A table changed in the store (a statement of another edge, the CLI or
 * this edge's own API); NULL: anything may have (the listener was down).
 * Each cache reloads now instead of at its next period. */
static void on_store_change(void *user, const char *table) {
  wr_edge *e = user;
  int all = !table;
  if (all || !strcmp(table, "routes")) {
    wr_visitor_invalidate_routes(e->visitor);
    wr_visitor_invalidate_routes(e->https);
    if (e->dns) wr_dns_invalidate(e->dns);
    if (e->certs) wr_certs_prepare_routes(e->certs, e->store, e->store_async);
  }
  /* The heartbeat reads deleted tunnels and closed connections on the
   * store thread. */
  if (all || !strcmp(table, "tunnels") || !strcmp(table, "connections"))
    wr_cluster_poke(e->cluster);
  if ((all || !strcmp(table, "ip_routes") || !strcmp(table, "virtual_networks")) && e->router)
    wr_router_routes_changed(e->router);
  if ((all || !strcmp(table, "devices")) && e->wg) wr_wg_ingress_reload(e->wg);
}

static int start_cluster(wr_edge *e, char *err, size_t errlen) {
  const wr_edge_options *o = e->opts;
  char ca[4096], advertise[WR_STORE_ADDR_MAX + 1] = "";
  if (!e->edge_id[0]) return WR_OK;
  snprintf(ca, sizeof(ca), "%s/%s", e->data_dir, WR_PKI_CA_CERT);
  wr_peer_config pcfg = {.loop = e->loop, .ts = e->ts, .cert_file = e->cert, .key_file = e->key,
                         .ca_file = ca,
                         .listen = listen_on(&o->peer) ? (const struct sockaddr *)&o->peer.addr : NULL};
  int rv = wr_peer_new(&pcfg, &e->peer, err, errlen);
  if (rv != WR_OK) return rv;
  struct sockaddr_storage bound;
  if (o->peer_advertise && *o->peer_advertise)
    snprintf(advertise, sizeof(advertise), "%s", o->peer_advertise);
  else if (wr_peer_addr(e->peer, &bound) == WR_OK)
    wr_addr_format(&bound, advertise, sizeof(advertise));
  wr_cluster_config ccfg = {.loop = e->loop, .store_async = e->store_async, .ts = e->ts,
                            .peer = e->peer, .id = e->edge_id, .tunnel_addr = o->tunnel.text,
                            .visitor_addr = o->http.text, .peer_addr = advertise};
  if ((rv = wr_cluster_new(&ccfg, &e->cluster)) != WR_OK) return rv;
  if ((rv = wr_db_notify_start(e->loop, e->store_target, "warren_changes", on_store_change, e,
                               &e->notify)) != WR_OK)
    return rv;
  if (advertise[0])
    wr_info("Edge %s shares its store with other edges; taking their forwarded streams on %s "
            "(TLS, certificates of %s)", e->edge_id, advertise, ca);
  else
    wr_info("Edge %s shares its store with other edges (forwarding to them; no --peer-listen, so "
            "none forward here)", e->edge_id);
  return WR_OK;
}

/* The forwarder goes and forwarded streams end while their owners exist. */
static void stop_cluster(wr_edge *e) {
  FREE_CLEAR(wr_db_notify_free, e, notify);
  wr_cluster_stop(e->cluster);
  FREE_CLEAR(wr_peer_free, e, peer);
}

/* ---- private traffic: the router and its TUN ingress ------------------------------ */

static int start_router(wr_edge *e, char *err, size_t errlen) {
  (void)err;
  (void)errlen;
  wr_router_config rcfg = {.loop = e->loop, .store = e->store, .async = e->store_async, .ts = e->ts};
  return wr_router_new(&rcfg, &e->router);
}

/* Ends flows (their RPC streams still have their connections) and closes
 * the timer. */
FREE_HOOK(stop_router, wr_router_free, router)

/* --tun-account: an ID or a name; without it the store must hold exactly
 * one account. */
static int tun_account(wr_edge *e, const char *ref, wr_account *out, char *err, size_t errlen) {
  wr_account *all = NULL;
  size_t n = 0, found = 0;
  if (wr_store_account_list(e->store, &all, &n) != WR_OK) {
    snprintf(err, errlen, "cannot read the accounts: %s", wr_store_errmsg(e->store));
    return WR_ERR_STORE;
  }
  for (size_t i = 0; i < n; i++) {
    if (ref && *ref && strcmp(all[i].id, ref) != 0 && strcmp(all[i].name, ref) != 0) continue;
    if (!found++) *out = all[i];
  }
  free(all);
  if (found == 1) return WR_OK;
  if (ref && *ref)
    snprintf(err, errlen, "--tun-account %s: %s", ref,
             found ? "several accounts have that name; give the ID" : "no such account");
  else
    snprintf(err, errlen, "--tun needs --tun-account: the store has %zu accounts", n);
  return WR_ERR_CONFIG;
}

/* --tun-vnet: an ID or a name of the account's virtual networks. */
static int tun_vnet(wr_edge *e, const char *account_id, const char *ref, char *id, size_t idlen,
                    char *err, size_t errlen) {
  id[0] = '\0';
  if (!ref || !*ref) return WR_OK;
  for (int by_name = 0; by_name < 2 && !id[0]; by_name++) {
    wr_vnet *v = NULL;
    size_t n = 0;
    wr_vnet_filter f = {.account_id = account_id, .is_default = -1};
    if (by_name) f.name = ref; else f.id = ref;
    if (wr_store_vnet_list(e->store, &f, &v, &n) == WR_OK && n) snprintf(id, idlen, "%s", v[0].id);
    free(v);
  }
  if (id[0]) return WR_OK;
  snprintf(err, errlen, "--tun-vnet %s: the account has no such virtual network", ref);
  return WR_ERR_CONFIG;
}

static int start_tun(wr_edge *e, char *err, size_t errlen) {
  const wr_edge_options *o = e->opts;
  if (!o->tun.name || !*o->tun.name) return WR_OK;
  wr_account acct;
  char vnet[WR_STORE_UUID_LEN + 1];
  int rv = tun_account(e, o->tun.account, &acct, err, errlen);
  if (rv == WR_OK) rv = tun_vnet(e, acct.id, o->tun.vnet, vnet, sizeof(vnet), err, errlen);
  if (rv != WR_OK) return rv;
  wr_tun_config tcfg = {.name = o->tun.name, .mtu = o->tun.mtu, .router = e->router,
                        .account_id = acct.id, .vnet_id = vnet[0] ? vnet : NULL};
  if ((rv = wr_tun_open(e->loop, &tcfg, &e->tun, err, errlen)) != WR_OK) return rv;
  wr_info("Routing private traffic from TUN device %s (account %s, virtual network %s)",
          wr_tun_name(e->tun), acct.name, vnet[0] ? vnet : "default");
  return WR_OK;
}

FREE_HOOK(stop_tun, wr_tun_free, tun)

/* ---- WireGuard ------------------------------------------------------------------------ */

static int start_wireguard(wr_edge *e, char *err, size_t errlen) {
  const wr_edge_options *o = e->opts;
  if (!listen_on(&o->wireguard.listen)) return WR_OK;
  uint8_t priv[WR_WG_KEY_LEN], pub[WR_WG_KEY_LEN];
  int rv = wr_wg_key_load_or_create(e->data_dir, priv, pub, err, errlen);
  if (rv != WR_OK) return rv;
  wr_wg_ingress_config wcfg = {.loop = e->loop, .store = e->store, .async = e->store_async,
                               .router = e->router,
                               .listen = (const struct sockaddr *)&o->wireguard.listen.addr,
                               .private_key = priv,
                               .cookie_threshold = o->wireguard.cookie_threshold,
                               .rekey_responder_ms = o->wireguard.rekey_responder_ms};
  rv = wr_wg_ingress_new(&wcfg, &e->wg, err, errlen);
  sodium_memzero(priv, sizeof(priv));
  if (rv != WR_OK) {
    if (rv == WR_ERR_IO) {
      char why[256];
      snprintf(why, sizeof(why), "%s", err);
      snprintf(err, errlen, "--wireguard-listen %s: %s", o->wireguard.listen.text, why);
    }
    return rv;
  }
  char b64[WR_WG_KEY_B64_LEN + 1];
  wr_wg_key_to_b64(pub, b64);
  wr_info("Serving WireGuard on %s (UDP), public key %s", wr_wg_ingress_addr(e->wg), b64);
  return WR_OK;
}

FREE_HOOK(stop_wireguard, wr_wg_ingress_free, wg)

/* The user-space TCP stack behind the router's TCP hook. Its row comes after
 * the ingresses so that it stops (and drains) before them: its flows point
 * at their ingress. The stack's MSS follows the TUN device's MTU. lwIP's
 * state is per process: a second edge in the same process (tests) runs
 * without private TCP, whose packets the router then refuses. */
static int start_private_tcp(wr_edge *e, char *err, size_t errlen) {
  (void)err;
  (void)errlen;
  unsigned mtu = e->opts->tun.mtu ? e->opts->tun.mtu : WR_TUN_MTU_DEFAULT;
  wr_private_tcp_config pcfg = {.loop = e->loop, .router = e->router,
                                .mtu = (uint16_t)(mtu > 65535 ? 65535 : mtu)};
  int rv = wr_private_tcp_new(&pcfg, &e->ptcp);
  if (rv == WR_ERR_EXISTS) {
    wr_warn("private TCP is off: another TCP stack runs in this process");
    return WR_OK;
  }
  return rv;
}

FREE_HOOK(stop_private_tcp, wr_private_tcp_free, ptcp)

/* ---- visitors --------------------------------------------------------------------- */

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

/* ---- ACME --------------------------------------------------------------------------- */

static int start_acme(wr_edge *e, char *err, size_t errlen) {
  const wr_edge_options *o = e->opts;
  if (!o->acme.directory || !*o->acme.directory) return WR_OK;
  uint64_t scan_ms = 0, retry_ms = 0, poll_ms = 0;
  /* For tests: the period of the scans and the first retry's wait. */
  const char *t = getenv("WARREN_TEST_ACME_RETRY_MS"), *sc = getenv("WARREN_TEST_ACME_SCAN_MS");
  if (t && *t) retry_ms = strtoull(t, NULL, 10);
  if (sc && *sc) scan_ms = strtoull(sc, NULL, 10);
  wr_acme_config cfg = {.data_dir = e->data_dir, .directory = o->acme.directory,
                        .email = o->acme.email, .ca_file = o->acme.ca_file,
                        .dns01 = o->acme.dns01, .store = e->store, .async = e->store_async,
                        .scan_ms = scan_ms, .retry_ms = retry_ms, .poll_ms = poll_ms};
  int rv = wr_acme_start(e->loop, &cfg, &e->acme, err, errlen);
  if (rv == WR_OK)
    wr_info("Obtaining certificates for routed hostnames from %s (%s)", o->acme.directory,
            o->acme.dns01 ? "dns-01" : "http-01");
  return rv;
}

FREE_HOOK(stop_acme, wr_acme_free, acme)

/* The HTTPS front (before the plain one, which redirects to its port). */
static int start_https(wr_edge *e, wr_visitor_config *vcfg, char *err, size_t errlen) {
  const wr_edge_options *o = e->opts;
  struct sockaddr_storage bound;
  char name[80] = "?";
  int rv = wr_certs_open(e->data_dir, &e->certs, err, errlen);
  if (rv != WR_OK) return rv;
  wr_certs_start(e->certs, e->loop);
  if ((rv = wr_zone_cache_new(e->loop, e->store, e->store_async, 0, &e->zones)) != WR_OK) {
    snprintf(err, errlen, "cannot read the zone settings");
    return rv;
  }
  vcfg->certs = e->certs;
  vcfg->zones = e->zones;
  vcfg->scheme = "https";
  vcfg->http3 = !o->no_http3;
  rv = wr_visitor_listen(e->loop, vcfg, (const struct sockaddr *)&o->https.addr, &e->https);
  vcfg->http3 = 0;
  vcfg->certs = NULL;
  vcfg->scheme = "http";
  if (rv != WR_OK) {
    snprintf(err, errlen, "cannot listen on %s (TCP%s)", o->https.text, o->no_http3 ? "" : ", and UDP for HTTP/3");
    return rv;
  }
  if (wr_visitor_addr(e->https, &bound) == 0) {
    wr_addr_format(&bound, name, sizeof(name));
    vcfg->https_port = ntohs(bound.ss_family == AF_INET
                                 ? ((struct sockaddr_in *)&bound)->sin_port
                                 : ((struct sockaddr_in6 *)&bound)->sin6_port);
  }
  wr_info("Serving visitors on https://%s%s", name, o->no_http3 ? "" : " (and HTTP/3 on UDP)");
  /* Certificates for the routed hostnames are signed now, on the worker
   * pool, so that their first handshakes find them ready. */
  wr_certs_prepare_routes(e->certs, e->store, e->store_async);
  return WR_OK;
}

static int start_visitors(wr_edge *e, char *err, size_t errlen) {
  const wr_edge_options *o = e->opts;
  wr_visitor_config vcfg = {.store = e->store,
                            .store_async = e->store_async,
                            .ts = e->ts,
                            .access = e->access,
                            .acme = e->acme,
                            .scheme = "http",
                            .max_conns = o->max_visitor_conns,
                            .max_conns_per_source = o->max_conns_per_source,
                            .requests_per_second_per_source = o->requests_per_second_per_source,
                            .request_burst_per_source = o->request_burst_per_source};
  uint8_t mkey[WR_MGMT_KEY_LEN];
  char kerr[256];
  if (o->management_hostname && o->management_hostname[0]) {
    if (wr_mgmt_key_load_or_create(e->data_dir, mkey, kerr, sizeof(kerr)) == WR_OK) {
      vcfg.mgmt_hostname = o->management_hostname;
      vcfg.mgmt_key = mkey;
      vcfg.mgmt_keylen = sizeof(mkey);
    } else {
      wr_warn("no management hostname: %s", kerr);
    }
  }
  wr_inspect_config icfg = {.per_tunnel = o->inspect.requests,
                            .body_cap = o->inspect.bodies ? WR_INSPECT_DEFAULT_BODY_CAP : 0};
  wr_inspect_new(&icfg, &e->inspect);
  e->tunnel_stats = wr_tunnel_stats_new(0);
  vcfg.inspect = e->inspect;
  vcfg.tunnel_stats = e->tunnel_stats;
  fit_nofile(&vcfg);
  int rv;
  if (listen_on(&o->https) && (rv = start_https(e, &vcfg, err, errlen)) != WR_OK) {
    explicit_bzero(mkey, sizeof(mkey));
    return rv;
  }
  rv = wr_visitor_listen(e->loop, &vcfg, (const struct sockaddr *)&o->http.addr, &e->visitor);
  explicit_bzero(mkey, sizeof(mkey));
  if (rv != WR_OK) {
    snprintf(err, errlen, "cannot listen on %s (TCP)", o->http.text);
    return rv;
  }
  struct sockaddr_storage bound;
  char name[80] = "?";
  if (wr_visitor_addr(e->visitor, &bound) == 0) wr_addr_format(&bound, name, sizeof(name));
  wr_info("Serving visitors on http://%s", name);
  return WR_OK;
}

/* Also wr_edge_drain's step: the visitors' streams are reset while the
 * QUIC connections still exist. */
static void stop_visitors(wr_edge *e) {
  FREE_CLEAR(wr_visitor_free, e, visitor);
  FREE_CLEAR(wr_visitor_free, e, https);
  FREE_CLEAR(wr_zone_cache_free, e, zones);
}

/* After the loop ran: nothing records into the inspector or the counters
 * any more, and certificates outlived the sessions only through their
 * references. */
static void release_visitors(wr_edge *e) {
  FREE_CLEAR(wr_certs_free, e, certs);
  FREE_CLEAR(wr_inspect_free, e, inspect);
  FREE_CLEAR(wr_tunnel_stats_free, e, tunnel_stats);
}

/* ---- DNS: the authoritative server, RFC 2136 pushes, the janitor ------------------ */

/* The edge's public address, as DNS answers and pushed records give it: the
 * host of the visitor listener. */
static void public_host(const wr_edge *e, char *host, size_t hostlen) {
  const struct sockaddr_storage *a = &e->opts->http.addr;
  if (a->ss_family == AF_INET6)
    uv_ip6_name((const struct sockaddr_in6 *)a, host, hostlen);
  else
    uv_ip4_name((const struct sockaddr_in *)a, host, hostlen);
}

static int start_dns(wr_edge *e, char *err, size_t errlen) {
  const wr_edge_options *o = e->opts;
  if (!listen_on(&o->dns)) return WR_OK;
  char host[INET6_ADDRSTRLEN] = "";
  const char *addrs[1] = {host};
  public_host(e, host, sizeof(host));
  wr_dns_config dcfg = {.store = e->store, .async = e->store_async, .acme = e->acme, .addrs = addrs,
                        .naddrs = 1};
  int rv = wr_dns_listen(e->loop, &dcfg, (const struct sockaddr *)&o->dns.addr, &e->dns, err, errlen);
  if (rv != WR_OK) return rv;
  struct sockaddr_storage bound;
  char name[80] = "?";
  if (wr_dns_addr(e->dns, &bound) == WR_OK) wr_addr_format(&bound, name, sizeof(name));
  wr_info("Serving DNS on %s (UDP and TCP)", name);
  return WR_OK;
}

FREE_HOOK(stop_dns, wr_dns_free, dns)

static int start_updater(wr_edge *e, char *err, size_t errlen) {
  const wr_edge_options *o = e->opts;
  const char *server = o->dns_update.server;
  if (!server || !*server) return WR_OK;
  char host[INET6_ADDRSTRLEN] = "";
  const char *addrs[1] = {host};
  public_host(e, host, sizeof(host));
  wr_dns_update_config ucfg = {.server = server, .zone = o->dns_update.zone,
                               .key_name = o->dns_update.key_name,
                               .algorithm = o->dns_update.key_algorithm,
                               .secret = o->dns_update.key_secret, .addrs = addrs, .naddrs = 1};
  int rv = wr_dns_updater_new(e->loop, &ucfg, &e->updater, err, errlen);
  if (rv != WR_OK) return rv;
  wr_info("Pushing route records to %s (zone %s) with RFC 2136%s", server, o->dns_update.zone,
          o->dns_update.key_name ? ", TSIG-signed" : ", unsigned");
  return WR_OK;
}

/* Cancels what is queued: each cancelled update logs its failure. */
FREE_HOOK(stop_updater, wr_dns_updater_free, updater)

static int start_janitor(wr_edge *e, char *err, size_t errlen) {
  (void)err;
  (void)errlen;
  wr_dns_cleanup_config ccfg = {.store = e->store, .dns = e->dns, .updater = e->updater,
                                .async = e->store_async};
  /* It only refuses a missing store, which the first row guarantees. */
  wr_dns_janitor_start(e->loop, &ccfg, &e->janitor);
  return WR_OK;
}

FREE_HOOK(stop_janitor, wr_dns_janitor_free, janitor)

/* ---- API and login pages ---------------------------------------------------------- */

static void update_done(void *user, int rv, int rcode, const char *msg) {
  (void)user;
  if (rv == WR_OK)
    wr_info("DNS update: %s", msg);
  else
    wr_warn("DNS update failed (rcode %d): %s", rcode, msg);
}

/* API route changes go to the DNS server (its cache) and to the external
 * DNS server as well. */
static void on_route(void *user, int op, const char *hostname, const char *tunnel_id) {
  wr_edge *e = user;
  if (e->dns) wr_dns_invalidate(e->dns);
  if (op == WR_API_ROUTE_SET && e->certs) wr_certs_prepare(e->certs, hostname, 0);
  if (!e->updater) return;
  if (op == WR_API_ROUTE_SET)
    wr_dns_update_publish(e->updater, hostname, tunnel_id, update_done, e);
  else if (op == WR_API_ROUTE_REMOVED)
    wr_dns_update_unpublish(e->updater, hostname, tunnel_id, update_done, e);
  else if (op == WR_API_TUNNEL_DELETED)
    wr_dns_update_unpublish_tunnel(e->updater, tunnel_id, update_done, e);
}

/* The API's listener serves two things: the Cloudflare v4 API under
 * /client/v4 and the login pages cloudflared's `tunnel login` opens. */
static void api_router(wr_httpd *h, wr_httpd_req *req, void *user) {
  static const char not_found[] =
      "{\"success\":false,\"errors\":[{\"code\":7003,\"message\":\"No route for that URI\"}],"
      "\"messages\":[],\"result\":null}";
  wr_edge *e = user;
  (void)h;
  if (e->api && wr_api_handle(e->api, req)) return;
  if (e->login && wr_login_handle(e->login, req)) return;
  if (e->dash && wr_dash_handle(e->dash, req)) return;
  if (e->access && wr_access_handle_httpd(e->access, req)) return;
  wr_httpd_respond_simple(req, 404, "application/json", not_found, sizeof(not_found) - 1);
}

static void on_quick_sweep(uv_timer_t *t) {
  wr_edge *e = t->data;
  if (e->api) wr_api_quick_sweep(e->api);
}

/* The visitor front's port, for the URL quick tunnels are given. */
static unsigned visitor_port(wr_edge *e) {
  struct sockaddr_storage bound;
  if (!e->visitor || wr_visitor_addr(e->visitor, &bound) != 0) return 0;
  if (bound.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&bound)->sin_port);
  return ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
}

/* Quick tunnels: the sweep runs every few seconds (a tenth of the idle
 * time, at most 30 s) so an idle tunnel goes soon after its time. */
static void start_quick_sweep(wr_edge *e) {
  const wr_edge_options *o = e->opts;
  if (!o->quick.account || !*o->quick.account) return;
  uint64_t idle_ms = (uint64_t)(o->quick.idle_s > 0 ? o->quick.idle_s : 300) * 1000;
  uint64_t every = idle_ms / 10 < 30000 ? idle_ms / 10 : 30000;
  if (every < 1000) every = 1000;
  uv_timer_init(e->loop, &e->quick_sweep);
  e->quick_sweep.data = e;
  uv_timer_start(&e->quick_sweep, on_quick_sweep, every, every);
  e->quick_sweeping = 1;
  wr_info("Quick tunnels: POST /tunnel in account %s%s%s", o->quick.account,
          o->quick.zone ? ", zone " : "", o->quick.zone ? o->quick.zone : "");
}

/* The API changed Access objects: the gate reads them again. */
static void on_access_change(void *user) {
  wr_edge *e = user;
  if (e->access) wr_access_invalidate(e->access);
}

static int start_api(wr_edge *e, char *err, size_t errlen) {
  const wr_edge_options *o = e->opts;
  if (!listen_on(&o->api)) return WR_OK;
  struct sockaddr_storage bound;
  char name[80] = "?", public_url[128];
  wr_api_config acfg = {.store = e->store, .async = e->store_async, .ts = e->ts,
                        .on_route = on_route, .route_user = e,
                        .on_access_change = on_access_change, .access_user = e,
                        .data_dir = e->data_dir, .quick_account = o->quick.account,
                        .quick_zone = o->quick.zone, .quick_per_source = o->quick.per_source,
                        .quick_max = o->quick.max, .quick_idle_s = o->quick.idle_s,
                        .quick_url_port = visitor_port(e)};
  int rv = wr_api_new(&acfg, &e->api);
  if (rv != WR_OK) return rv;
  start_quick_sweep(e);
  rv = wr_httpd_listen(e->loop, (const struct sockaddr *)&o->api.addr, NULL, api_router, e,
                       &e->api_httpd);
  if (rv != WR_OK) {
    snprintf(err, errlen, "cannot listen on %s (TCP)", o->api.text);
    return rv;
  }
  if (wr_httpd_addr(e->api_httpd, &bound) == WR_OK) wr_addr_format(&bound, name, sizeof(name));
  snprintf(public_url, sizeof(public_url), "http://%s", name);
  if (e->access && !(o->access_team_domain && *o->access_team_domain)) wr_access_set_team_domain(e->access, public_url);
  wr_login_config lcfg = {.loop = e->loop, .store = e->store, .async = e->store_async,
                          .data_dir = e->data_dir, .public_url = public_url};
  if ((rv = wr_login_new(&lcfg, &e->login)) != WR_OK) return rv;
  struct sockaddr_storage vaddr;
  wr_dash_config dcfg = {.loop = e->loop, .store = e->store, .async = e->store_async,
                         .api = e->api, .login = e->login,
                         .ts = e->ts, .inspect = e->inspect, .tunnel_stats = e->tunnel_stats,
                         .visitor_addr = e->visitor && wr_visitor_addr(e->visitor, &vaddr) == 0 ? &vaddr : NULL};
  if ((rv = wr_dash_new(&dcfg, &e->dash)) != WR_OK) return rv;
  wr_info("Serving the API on %s/client/v4, logins on %s/argotunnel and the dashboard on %s/dashboard",
          public_url, public_url, public_url);
  return WR_OK;
}

/* Logins answer their held polls while the HTTP server still exists. */
static void stop_api(wr_edge *e) {
  if (e->quick_sweeping) uv_close((uv_handle_t *)&e->quick_sweep, NULL);
  e->quick_sweeping = 0;
  FREE_CLEAR(wr_dash_free, e, dash);
  FREE_CLEAR(wr_login_free, e, login);
  FREE_CLEAR(wr_httpd_free, e, api_httpd);
  /* Requests still on the store thread are answered when it stops,
   * without telling hooks whose subsystems are gone by then. */
  if (e->api) wr_api_stop(e->api);
}

/* After the loop ran: no request of the HTTP server can reach it any more. */
FREE_HOOK(release_api, wr_api_free, api)

/* ---- Access ------------------------------------------------------------------------ */

/* Before the visitors, which hold it; the team domain is the API
 * listener's address once it is bound (start_api) unless configured. */
static int start_access(wr_edge *e, char *err, size_t errlen) {
  const wr_edge_options *o = e->opts;
  char team[300];
  if (o->access_team_domain && *o->access_team_domain)
    snprintf(team, sizeof(team), "%s", o->access_team_domain);
  else
    snprintf(team, sizeof(team), "http://%s", listen_on(&o->api) ? o->api.text : o->http.text);
  wr_access_gate_config cfg = {.loop = e->loop, .store = e->store, .team_domain = team, .async = e->store_async};
  int rv = wr_access_new(&cfg, &e->access);
  if (rv != WR_OK) snprintf(err, errlen, "Access: cannot load or make the signing key (%s)", wr_strerror(rv));
  return rv;
}

/* Sign-ins still on the worker pool answer 503 and free it afterwards. */
FREE_HOOK(stop_access, wr_access_free, access)

/* ---- metrics ---------------------------------------------------------------------- */

static int start_metrics(wr_edge *e, char *err, size_t errlen) {
  const char *addr = e->opts->metrics;
  if (!addr || !*addr) return WR_OK;
  wr_edge_metrics_config mcfg = {.store = e->store, .async = e->store_async, .ts = e->ts, .ep = e->ep,
                                 .visitor = e->visitor, .https = e->https, .dns = e->dns, .acme = e->acme, .api = e->api,
                                 .login = e->login, .router = e->router,
                                 .tunnel_stats = e->tunnel_stats,
                                 .private_tcp = e->ptcp, .wireguard = e->wg,
                                 .access = e->access, .cluster = e->cluster, .peer = e->peer,
                                 .notify = e->notify};
  return wr_edge_metrics_start(e->loop, addr, &mcfg, &e->metrics, err, errlen);
}

/* Also wr_edge_drain's first step: the server reads every other subsystem. */
FREE_HOOK(stop_metrics, wr_edge_metrics_free, metrics)

/* After a burst, the heap's free pages go back to the kernel (idle_trim.h). */
static int start_idle_trim(wr_edge *e, char *err, size_t errlen) {
  (void)err;
  (void)errlen;
  e->trim = wr_idle_trim_start(e->loop);
  return WR_OK;
}

FREE_HOOK(stop_idle_trim, wr_idle_trim_free, trim)

/* ---- the table -------------------------------------------------------------------- */

/* One row per subsystem, in start order. Every hook may be NULL and must
 * cope with a row whose start failed half-way:
 *   start    brings it up (logging what it serves); WR_OK or an error with
 *            the reason in |err| ("" for none)
 *   drain    wr_edge_drain, in reverse order: stop taking work, say goodbye
 *   stop     wr_edge_free, in reverse order: close its libuv handles
 *   release  after the loop ran every close callback, in reverse order:
 *            free what is left */
typedef struct subsystem {
  const char *name;
  int (*start)(wr_edge *e, char *err, size_t errlen);
  void (*drain)(wr_edge *e);
  void (*stop)(wr_edge *e);
  void (*release)(wr_edge *e);
} subsystem;

static const subsystem subsystems[] = {
    {"store", start_store, NULL, NULL, release_store},
    {"store-thread", start_store_thread, NULL, stop_store_thread, NULL},
    {"tunnels", start_tunnels, drain_tunnels, stop_tunnels, release_tunnels},
    {"cluster", start_cluster, NULL, stop_cluster, NULL},
    {"router", start_router, NULL, stop_router, NULL},
    {"tun", start_tun, stop_tun, stop_tun, NULL},
    {"wireguard", start_wireguard, stop_wireguard, stop_wireguard, NULL},
    {"private-tcp", start_private_tcp, stop_private_tcp, stop_private_tcp, NULL},
    {"access", start_access, NULL, stop_access, NULL},
    {"acme", start_acme, NULL, stop_acme, NULL},
    {"visitors", start_visitors, stop_visitors, stop_visitors, release_visitors},
    {"dns", start_dns, NULL, stop_dns, NULL},
    {"api", start_api, NULL, stop_api, release_api},
    {"dns-update", start_updater, NULL, stop_updater, NULL},
    {"dns-janitor", start_janitor, NULL, stop_janitor, NULL},
    {"metrics", start_metrics, stop_metrics, stop_metrics, NULL},
    {"idle-trim", start_idle_trim, NULL, stop_idle_trim, NULL},
};

#define NSUBSYSTEMS (sizeof(subsystems) / sizeof(subsystems[0]))

/* ---- lifecycle -------------------------------------------------------------------- */

int wr_edge_new(uv_loop_t *loop, const wr_edge_options *opts, wr_edge **out, char *err,
                size_t errlen) {
  *out = NULL;
  if (errlen) err[0] = '\0';
  if (!loop || !opts || !opts->data_dir || !*opts->data_dir || !listen_on(&opts->tunnel) ||
      !listen_on(&opts->http))
    return WR_ERR_INVAL;
  wr_edge *e = wr_xcalloc(1, sizeof(*e));
  e->loop = loop;
  e->opts = opts;
  e->data_dir = wr_xstrdup(opts->data_dir);
  e->store_target = opts->store && *opts->store ? wr_xstrdup(opts->store) : NULL;
  for (size_t i = 0; i < NSUBSYSTEMS; i++) {
    e->nstarted = i + 1;
    if (errlen) err[0] = '\0'; /* only the failing row's reason, if it gives one */
    int rv = subsystems[i].start ? subsystems[i].start(e, err, errlen) : WR_OK;
    if (rv != WR_OK) {
      /* WR_ERR_STORE means "the store could not be opened" (edge.h). */
      if (rv == WR_ERR_STORE && i > 0) rv = WR_ERR_INTERNAL;
      wr_edge_free(e);
      return rv;
    }
  }
  e->opts = NULL;
  /* Every listener is up: /ready may say so. */
  wr_edge_metrics_set_ready(e->metrics, 1, NULL);
  *out = e;
  return WR_OK;
}

void wr_edge_begin_shutdown(wr_edge *e) { wr_edge_metrics_set_ready(e->metrics, 0, "shutting down"); }

static void flush_done(uv_timer_t *t) { uv_stop(t->loop); }

void wr_edge_drain(wr_edge *e) {
  for (size_t i = e->nstarted; i-- > 0;)
    if (subsystems[i].drain) subsystems[i].drain(e);
  uv_timer_init(e->loop, &e->flush);
  uv_timer_start(&e->flush, flush_done, DRAIN_FLUSH_MS, 0);
  uv_run(e->loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&e->flush, NULL);
}

void wr_edge_free(wr_edge *e) {
  if (!e) return;
  for (size_t i = e->nstarted; i-- > 0;)
    if (subsystems[i].stop) subsystems[i].stop(e);
  /* Every handle is closing: this runs their close callbacks (and the
   * flush timer's, if wr_edge_drain ran). */
  uv_run(e->loop, UV_RUN_DEFAULT);
  for (size_t i = e->nstarted; i-- > 0;)
    if (subsystems[i].release) subsystems[i].release(e);
  free(e->data_dir);
  free(e->store_target);
  free(e);
}
