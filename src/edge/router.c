/* The edge's router for private traffic; see router.h. This file: the
 * router's life, ingresses, route tables, the input dispatch and the ICMP
 * errors the edge generates. Flows are in router_flow.c, the
 * longest-prefix match in router_table.c. */
#include "edge/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/router_int.h"
#include "edge/store_async.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "proto/udppacket.h"

#define TICK_MS 1000
/* A tunnel that is down is logged again after this long. */
#define DOWN_LOG_MS 10000

static const char *const drop_names[WR_ROUTER_NDROPS] = {
    "malformed", "no_route", "policy", "tunnel_down", "flow_limit", "queue_full",
    "unsupported", "session", "datagram", "send", "tcp"};
static const char *const kind_names[WR_ROUTER_NKINDS] = {"icmp", "udp", "tcp"};

const char *wr_router_drop_name(enum wr_router_drop d) {
  return (unsigned)d < WR_ROUTER_NDROPS ? drop_names[d] : "?";
}
const char *wr_router_kind_name(enum wr_router_kind k) {
  return (unsigned)k < WR_ROUTER_NKINDS ? kind_names[k] : "?";
}

uint64_t wr__router_now(const wr_router *r) { return uv_now(r->cfg.loop); }

void wr__router_drop(wr_router *r, enum wr_router_drop d) {
  if ((unsigned)d < WR_ROUTER_NDROPS) r->stats.drops[d]++;
}

const wr_router_stats *wr_router_get_stats(const wr_router *r) { return &r->stats; }

/* ---- routes ------------------------------------------------------------------------ */

/* What one ingress's table is made of, read from a store (on either
 * thread): its virtual network, resolved from the configured one or the
 * account's default (without creating one: no default means no routes
 * yet), and the account's IP routes. */
typedef struct table_read {
  wr_router_ingress *in; /* whose table it is (async: checked before use) */
  char account_id[WR_STORE_ID_LEN + 1];
  char vnet_want[WR_STORE_UUID_LEN + 1];
  char vnet_id[WR_STORE_UUID_LEN + 1];
  wr_ip_route *rows;
  size_t n;
  int rv;
} table_read;

static void table_read_init(table_read *t, wr_router_ingress *in) {
  memset(t, 0, sizeof(*t));
  t->in = in;
  snprintf(t->account_id, sizeof(t->account_id), "%s", in->account_id);
  snprintf(t->vnet_want, sizeof(t->vnet_want), "%s", in->vnet_want);
}

static int table_read_run(wr_store *s, table_read *t) {
  wr_vnet *v = NULL;
  size_t n = 0;
  wr_vnet_filter f = {.account_id = t->account_id, .is_default = t->vnet_want[0] ? -1 : 1,
                      .id = t->vnet_want[0] ? t->vnet_want : NULL};
  if (wr_store_vnet_list(s, &f, &v, &n) != WR_OK) return t->rv = WR_ERR_STORE;
  if (n) snprintf(t->vnet_id, sizeof(t->vnet_id), "%s", v[0].id);
  free(v);
  if (!n && t->vnet_want[0]) return t->rv = WR_ERR_NOTFOUND;
  wr_ip_route_filter rf = {.account_id = t->account_id};
  if (wr_store_ip_route_list(s, &rf, &t->rows, &t->n) != WR_OK) return t->rv = WR_ERR_STORE;
  return t->rv = WR_OK;
}

/* The ingress's new table from |t| (rows from before virtual networks, ""
 * vnet, belong to the default). */
static void table_apply(wr_router_ingress *in, table_read *t) {
  size_t k = 0;
  int is_default = !in->vnet_want[0];
  snprintf(in->vnet_id, sizeof(in->vnet_id), "%s", t->vnet_id);
  for (size_t i = 0; i < t->n; i++) {
    int mine = in->vnet_id[0] && strcmp(t->rows[i].vnet_id, in->vnet_id) == 0;
    if (mine || (is_default && !t->rows[i].vnet_id[0])) t->rows[k++] = t->rows[i];
  }
  wr__rtable t2;
  wr__rtable_build(&t2, t->rows, k);
  wr__rtable_free(&in->table);
  in->table = t2;
}

static int load_table(wr_router *r, wr_router_ingress *in) {
  table_read t;
  table_read_init(&t, in);
  if (table_read_run(r->cfg.store, &t) == WR_OK) table_apply(in, &t);
  free(t.rows);
  return t.rv;
}

static void reload_warn(wr_router *r, const wr_router_ingress *in, int e, const char *storemsg) {
  wr_warn("router: loading the routes of %s: %s", in->name,
          e == WR_ERR_STORE ? storemsg : wr_strerror(e));
  (void)r;
}

static void reload_total(wr_router *r) {
  uint64_t total = 0;
  for (wr_router_ingress *in = r->ingresses; in; in = in->next) total += in->table.nroutes;
  r->stats.routes = total;
  r->stats.reloads++;
}

int wr_router_reload(wr_router *r) {
  int rv = WR_OK;
  r->reload_pending = 0;
  r->refreshed_ms = wr__router_now(r);
  for (wr_router_ingress *in = r->ingresses; in; in = in->next) {
    int e = load_table(r, in);
    if (e != WR_OK) {
      reload_warn(r, in, e, wr_store_errmsg(r->cfg.store));
      rv = WR_ERR_STORE;
    }
  }
  reload_total(r);
  return rv;
}

void wr_router_routes_changed(wr_router *r) {
  if (r) r->reload_pending = 1;
}

/* ---- reloads on the store thread ----------------------------------------------------- */

struct wr__router_reload {
  wr_router *r; /* NULL once the router went away */
  table_read *items;
  size_t n;
  char errmsg[WR_STORE_ERRMSG_MAX];
};

static void reload_run(wr_store *s, void *arg) {
  wr__router_reload *j = arg;
  for (size_t i = 0; i < j->n; i++)
    if (table_read_run(s, &j->items[i]) == WR_ERR_STORE && !j->errmsg[0])
      snprintf(j->errmsg, sizeof(j->errmsg), "%s", wr_store_errmsg(s));
}

static int ingress_alive(const wr_router *r, const wr_router_ingress *in) {
  for (const wr_router_ingress *x = r->ingresses; x; x = x->next)
    if (x == in) return 1;
  return 0;
}

static void reload_done(void *arg, int status) {
  wr__router_reload *j = arg;
  wr_router *r = j->r;
  for (size_t i = 0; r && i < j->n; i++) {
    table_read *t = &j->items[i];
    /* An ingress removed meanwhile (or another at its address) keeps its table. */
    if (!ingress_alive(r, t->in) || strcmp(t->in->account_id, t->account_id) ||
        strcmp(t->in->vnet_want, t->vnet_want))
      continue;
    if (status == WR_OK && t->rv == WR_OK) table_apply(t->in, t);
    else reload_warn(r, t->in, status == WR_OK ? t->rv : WR_ERR_STORE,
                     wr_store_async_why(status, j->errmsg));
  }
  if (r) {
    r->reload = NULL;
    reload_total(r);
  }
  for (size_t i = 0; i < j->n; i++) free(j->items[i].rows);
  free(j->items);
  free(j);
}

/* Reads every ingress's table on the store thread; the current tables
 * route meanwhile. */
static void reload_async(wr_router *r) {
  if (r->reload) return; /* reload_pending stays: the next tick reads again */
  size_t n = 0;
  for (wr_router_ingress *in = r->ingresses; in; in = in->next) n++;
  wr__router_reload *j = wr_xcalloc(1, sizeof(*j));
  j->r = r;
  j->n = n;
  j->items = wr_xcalloc(n ? n : 1, sizeof(*j->items));
  n = 0;
  for (wr_router_ingress *in = r->ingresses; in; in = in->next) table_read_init(&j->items[n++], in);
  r->reload_pending = 0;
  r->refreshed_ms = wr__router_now(r);
  if (wr_store_async_submit(r->cfg.async, reload_run, reload_done, j) != WR_OK) {
    free(j->items);
    free(j);
    return; /* tried again a refresh period later */
  }
  r->reload = j;
}

static void tick(uv_timer_t *t) {
  wr_router *r = t->data;
  uint64_t now = wr__router_now(r);
  if (r->reload_pending || now - r->refreshed_ms >= r->cfg.refresh_ms) {
    if (r->cfg.async) reload_async(r);
    else wr_router_reload(r);
  }
  wr__flows_expire(r, now);
}

/* ---- life ---------------------------------------------------------------------------- */

static void on_datagram(void *user, const char *conn_id, int version, const uint8_t *data,
                        size_t len) {
  wr_router_datagram(user, conn_id, version, data, len);
}

int wr_router_new(const wr_router_config *cfg, wr_router **out) {
  *out = NULL;
  if (!cfg || !cfg->loop || !cfg->store || !cfg->ts) return WR_ERR_INVAL;
  wr_router *r = wr_xcalloc(1, sizeof(*r));
  r->cfg = *cfg;
  if (!r->cfg.refresh_ms) r->cfg.refresh_ms = WR_ROUTER_REFRESH_MS;
  if (!r->cfg.max_flows) r->cfg.max_flows = WR_ROUTER_MAX_FLOWS;
  if (!r->cfg.max_flows_per_client) r->cfg.max_flows_per_client = WR_ROUTER_MAX_FLOWS_PER_CLIENT;
  if (!r->cfg.icmp_idle_ms) r->cfg.icmp_idle_ms = WR_ROUTER_ICMP_IDLE_MS;
  if (!r->cfg.udp_idle_ms) r->cfg.udp_idle_ms = WR_ROUTER_UDP_IDLE_MS;
  if (!r->cfg.udp_queue) r->cfg.udp_queue = WR_ROUTER_UDP_QUEUE;
  wr__htab_init(&r->flows);
  wr__htab_init(&r->sessions);
  wr__htab_init(&r->clients);
  r->timer = wr_xcalloc(1, sizeof(*r->timer));
  uv_timer_init(cfg->loop, r->timer);
  r->timer->data = r;
  uint64_t every = r->cfg.refresh_ms < TICK_MS ? r->cfg.refresh_ms : TICK_MS;
  uv_timer_start(r->timer, tick, every, every);
  uv_unref((uv_handle_t *)r->timer);
  r->refreshed_ms = wr__router_now(r);
  wr_tunnel_server_set_datagram_handler(cfg->ts, on_datagram, r);
  *out = r;
  return WR_OK;
}

static void free_timer(uv_handle_t *h) { free(h); }

void wr_router_free(wr_router *r) {
  if (!r) return;
  if (r->reload) r->reload->r = NULL;
  wr__flows_end_all(r, NULL);
  wr_tunnel_server_set_datagram_handler(r->cfg.ts, NULL, NULL);
  while (r->ingresses) {
    wr_router_ingress *in = r->ingresses;
    r->ingresses = in->next;
    wr__rtable_free(&in->table);
    free(in->name);
    free(in);
  }
  uv_timer_stop(r->timer);
  uv_close((uv_handle_t *)r->timer, free_timer);
  wr__htab_free(&r->flows);
  wr__htab_free(&r->sessions);
  wr__htab_free(&r->clients);
  free(r);
}

/* ---- ingresses ------------------------------------------------------------------------- */

int wr_router_ingress_add(wr_router *r, const wr_router_ingress_config *cfg,
                          wr_router_ingress **out) {
  *out = NULL;
  if (!cfg || !cfg->account_id || !*cfg->account_id || !cfg->send ||
      strlen(cfg->account_id) > WR_STORE_ID_LEN ||
      (cfg->vnet_id && strlen(cfg->vnet_id) > WR_STORE_UUID_LEN))
    return WR_ERR_INVAL;
  wr_router_ingress *in = wr_xcalloc(1, sizeof(*in));
  in->name = wr_xstrdup(cfg->name ? cfg->name : "ingress");
  snprintf(in->account_id, sizeof(in->account_id), "%s", cfg->account_id);
  snprintf(in->vnet_want, sizeof(in->vnet_want), "%s", cfg->vnet_id ? cfg->vnet_id : "");
  in->send = cfg->send;
  in->user = cfg->user;
  in->router_v4 = cfg->router_v4;
  in->router_v6 = cfg->router_v6;
  int rv = load_table(r, in);
  if (rv != WR_OK) {
    free(in->name);
    free(in);
    return rv;
  }
  in->next = r->ingresses;
  r->ingresses = in;
  r->stats.routes += in->table.nroutes;
  *out = in;
  return WR_OK;
}

void wr_router_ingress_remove(wr_router *r, wr_router_ingress *in) {
  if (!r || !in) return;
  if (r->tcp_forget) r->tcp_forget(r->tcp_user, in);
  wr__flows_end_all(r, in);
  for (wr_router_ingress **pp = &r->ingresses; *pp; pp = &(*pp)->next) {
    if (*pp == in) {
      *pp = in->next;
      break;
    }
  }
  wr__rtable_free(&in->table);
  free(in->name);
  free(in);
}

const char *wr_router_ingress_name(const wr_router_ingress *in) { return in->name; }

int wr_router_output(wr_router *r, wr_router_ingress *in, const uint8_t *pkt, size_t len) {
  int rv = in->send(in->user, pkt, len);
  if (rv != WR_OK) wr__router_drop(r, WR_ROUTER_DROP_SEND);
  return rv;
}

void wr_router_set_tcp_input(wr_router *r, wr_router_tcp_fn fn, void *user) {
  r->tcp_fn = fn;
  r->tcp_user = user;
}

void wr_router_set_tcp_forget(wr_router *r, wr_router_tcp_forget_fn fn) { r->tcp_forget = fn; }

void *wr_router_ingress_user(const wr_router_ingress *in, wr_router_send_fn send) {
  return in && in->send == send ? in->user : NULL;
}

void wr_router_set_policy(wr_router *r, wr_router_policy_fn fn, void *user) {
  r->policy_fn = fn;
  r->policy_user = user;
}

/* ---- lookup ------------------------------------------------------------------------------ */

/* Round robin, preferring connections that carry datagrams (QUIC): an
 * HTTP/2 connection is picked only when the tunnel has no other, and then
 * serves TCP only (UDP and ICMP get unreachable, see datagram_route). */
int wr__router_pick_conn(wr_router *r, const char *tunnel_id, wr_tunnel_conn_info *out) {
  size_t n = wr_tunnel_server_count(r->cfg.ts, tunnel_id);
  if (!n) return WR_ERR_NOTFOUND;
  size_t first = r->rr++ % n;
  for (size_t k = 0; k < n; k++)
    if (wr_tunnel_server_get(r->cfg.ts, tunnel_id, (first + k) % n, out) == WR_OK && out->quic)
      return WR_OK;
  return wr_tunnel_server_get(r->cfg.ts, tunnel_id, first, out);
}

int wr_router_lookup(wr_router *r, const wr_router_ingress *in, const wr_ipaddr *src,
                     const wr_ipaddr *dst, wr_router_target *out) {
  memset(out, 0, sizeof(*out));
  const wr__rt_route *rt = wr__rtable_lookup(&in->table, dst);
  if (!rt) return WR_ERR_NOTFOUND;
  out->route = rt->route;
  snprintf(out->vnet_id, sizeof(out->vnet_id), "%s", in->vnet_id);
  if (r->policy_fn && !r->policy_fn(r->policy_user, in, src, out)) return WR_ERR_DENIED;
  if (wr__router_pick_conn(r, rt->route.tunnel_id, &out->conn) != WR_OK) return WR_ERR_IO;
  return WR_OK;
}

int wr_router_open_stream(wr_router *r, const wr_router_target *t,
                          const wr_tunnel_stream_callbacks *cbs, void *user,
                          wr_tunnel_stream **out) {
  return wr_tunnel_server_open_stream(r->cfg.ts, t->route.tunnel_id, cbs, user, out);
}

/* ---- ICMP errors from the edge -------------------------------------------------------------- */

/* Never answer packets that no host would: multicast or broadcast
 * destinations, unspecified sources (RFC 1122 3.2.2, RFC 4443 2.4 (e)). */
static int answerable(const wr_ip_packet *ip) {
  static const uint8_t zero[16];
  if (ip->version == 4) {
    if ((ip->dst.b[0] & 0xf0) == 0xe0 || memcmp(ip->dst.b, "\xff\xff\xff\xff", 4) == 0) return 0;
    return memcmp(ip->src.b, zero, 4) != 0;
  }
  return ip->dst.b[0] != 0xff && memcmp(ip->src.b, zero, 16) != 0;
}

static uint8_t unreach_code(int v4, enum wr_router_unreach code) {
  static const uint8_t c4[] = {WR_ICMPV4_UNREACH_NET, WR_ICMPV4_UNREACH_HOST,
                               WR_ICMPV4_UNREACH_ADMIN, WR_ICMPV4_UNREACH_PORT};
  static const uint8_t c6[] = {WR_ICMPV6_UNREACH_NO_ROUTE, WR_ICMPV6_UNREACH_ADDR,
                               WR_ICMPV6_UNREACH_ADMIN, WR_ICMPV6_UNREACH_PORT};
  unsigned i = (unsigned)code < 4 ? (unsigned)code : 0;
  return v4 ? c4[i] : c6[i];
}

static void send_unreachable(wr_router *r, wr_router_ingress *in, const wr_ip_packet *ip,
                             enum wr_router_unreach code) {
  uint8_t out[1280];
  if (!answerable(ip)) return;
  int v4 = ip->version == 4;
  const wr_ipaddr *from = v4 ? &in->router_v4 : &in->router_v6;
  if (from->version != ip->version) from = &ip->dst;
  int n = wr_icmp_build_unreachable(ip, from, unreach_code(v4, code), out, sizeof(out));
  if (n <= 0) return;
  r->stats.unreachables++;
  wr_router_output(r, in, out, (size_t)n);
}

static enum wr_router_drop unreach_drop(const char *reason) {
  for (unsigned i = 0; i < WR_ROUTER_NDROPS; i++)
    if (reason && strcmp(reason, drop_names[i]) == 0) return (enum wr_router_drop)i;
  return WR_ROUTER_DROP_NO_ROUTE;
}

void wr_router_unreachable(wr_router *r, wr_router_ingress *in, const uint8_t *pkt, size_t len,
                           enum wr_router_unreach code, const char *reason) {
  wr_ip_packet ip;
  wr__router_drop(r, unreach_drop(reason));
  if (wr_ip_decode(pkt, len, &ip) != 0) return;
  send_unreachable(r, in, &ip, code);
}

/* ---- input --------------------------------------------------------------------------------- */

static void log_down(wr_router *r, const wr_router_target *t, const wr_ip_packet *ip) {
  uint64_t now = wr__router_now(r);
  if (strcmp(r->down_logged, t->route.tunnel_id) == 0 && now - r->down_logged_ms < DOWN_LOG_MS)
    return;
  snprintf(r->down_logged, sizeof(r->down_logged), "%s", t->route.tunnel_id);
  r->down_logged_ms = now;
  char dst[64] = "?";
  wr_ipaddr_format(&ip->dst, dst, sizeof(dst));
  wr_warn("router: %s is routed to tunnel %s (route %s), which has no live connection: "
          "answering host unreachable",
          dst, t->route.tunnel_id, t->route.network);
}

/* Routes |ip|; on failure answers the client and returns why. */
static int route(wr_router *r, wr_router_ingress *in, const wr_ip_packet *ip, wr_router_target *t) {
  int rv = wr_router_lookup(r, in, &ip->src, &ip->dst, t);
  if (rv == WR_OK) return WR_OK;
  if (rv == WR_ERR_NOTFOUND) {
    wr__router_drop(r, WR_ROUTER_DROP_NO_ROUTE);
    send_unreachable(r, in, ip, WR_ROUTER_UNREACH_NET);
  } else if (rv == WR_ERR_DENIED) {
    wr__router_drop(r, WR_ROUTER_DROP_POLICY);
    send_unreachable(r, in, ip, WR_ROUTER_UNREACH_ADMIN);
  } else {
    wr__router_drop(r, WR_ROUTER_DROP_TUNNEL_DOWN);
    log_down(r, t, ip);
    send_unreachable(r, in, ip, WR_ROUTER_UNREACH_HOST);
  }
  return rv;
}

/* route() for UDP and ICMP, which travel as QUIC datagrams: a tunnel whose
 * connections all run over HTTP/2 cannot carry them, so the client hears
 * host unreachable, as for a tunnel without connections. */
static int datagram_route(wr_router *r, wr_router_ingress *in, const wr_ip_packet *ip,
                          wr_router_target *t) {
  int rv = route(r, in, ip, t);
  if (rv != WR_OK || t->conn.quic) return rv;
  wr__router_drop(r, WR_ROUTER_DROP_TUNNEL_DOWN);
  log_down(r, t, ip);
  send_unreachable(r, in, ip, WR_ROUTER_UNREACH_HOST);
  return WR_ERR_UNSUPPORTED;
}

static int input_icmp(wr_router *r, wr_router_ingress *in, const wr_ip_packet *ip) {
  wr_icmp icmp;
  wr_router_target t;
  if (wr_icmp_decode(ip, &icmp) != 0) {
    wr__router_drop(r, WR_ROUTER_DROP_MALFORMED);
    return WR_ERR_PROTO;
  }
  /* Only echo requests travel (what cloudflared proxies); neighbour
   * discovery, router solicitations and errors stay on the client's link. */
  uint8_t req = ip->version == 4 ? WR_ICMPV4_ECHO_REQUEST : WR_ICMPV6_ECHO_REQUEST;
  if (icmp.type != req) {
    wr__router_drop(r, WR_ROUTER_DROP_UNSUPPORTED);
    return WR_ERR_UNSUPPORTED;
  }
  int rv = datagram_route(r, in, ip, &t);
  return rv == WR_OK ? wr__flow_icmp(r, in, ip, &icmp, &t) : rv;
}

static int input_tcp(wr_router *r, wr_router_ingress *in, const wr_ip_packet *ip,
                     const uint8_t *pkt, size_t len) {
  wr_router_target t;
  int rv = route(r, in, ip, &t);
  if (rv != WR_OK) return rv;
  r->stats.packets_in[WR_ROUTER_TCP]++;
  r->stats.bytes_in[WR_ROUTER_TCP] += len;
  if (!r->tcp_fn) {
    wr__router_drop(r, WR_ROUTER_DROP_TCP);
    send_unreachable(r, in, ip, WR_ROUTER_UNREACH_PORT);
    return WR_ERR_UNSUPPORTED;
  }
  r->tcp_fn(r->tcp_user, in, ip, pkt, len);
  return WR_OK;
}

int wr_router_input(wr_router *r, wr_router_ingress *in, const uint8_t *pkt, size_t len) {
  wr_ip_packet ip;
  if (!r || !in || !pkt) return WR_ERR_INVAL;
  if (wr_ip_decode(pkt, len, &ip) != 0 || ip.truncated) {
    wr__router_drop(r, WR_ROUTER_DROP_MALFORMED);
    return WR_ERR_PROTO;
  }
  uint8_t icmp_proto = ip.version == 4 ? WR_IPPROTO_ICMP : WR_IPPROTO_ICMPV6;
  if (ip.protocol == icmp_proto) return input_icmp(r, in, &ip);
  if (ip.protocol == WR_IPPROTO_UDP) {
    wr_router_target t;
    if (ip.is_fragment) {
      wr__router_drop(r, WR_ROUTER_DROP_UNSUPPORTED);
      return WR_ERR_UNSUPPORTED;
    }
    int rv = datagram_route(r, in, &ip, &t);
    return rv == WR_OK ? wr__flow_udp(r, in, &ip, pkt, len, &t) : rv;
  }
  if (ip.protocol == WR_IPPROTO_TCP) return input_tcp(r, in, &ip, pkt, len);
  wr__router_drop(r, WR_ROUTER_DROP_UNSUPPORTED);
  return WR_ERR_UNSUPPORTED;
}

void wr_router_datagram(wr_router *r, const char *conn_id, int version, const uint8_t *data,
                        size_t len) {
  if (r) wr__flows_datagram(r, conn_id, version, data, len);
}
