/* The WireGuard ingress; see wg_ingress.h. */
#include "edge/wg_ingress.h"

#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "edge/device_policy.h"
#include "edge/store_async.h"
#include "edge/wg_key.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

#define TICK_MS 100
#define LOG_EVERY_NS 1000000000ull

typedef struct dev dev;
struct dev {
  dev *next;
  wr_wg_ingress *g;
  wr_device d;
  wr_device_policy pol;
  wr_ipaddr v4, v6;
  wr_wg_peer *peer;
  wr_router_ingress *in;
  unsigned gen;
  uint64_t saved_rx, saved_tx, saved_hs;
  uint64_t last_policy_log, last_spoof_log;
};

typedef struct reload_job reload_job;

struct wr_wg_ingress {
  uv_loop_t *loop;
  wr_store *store;
  wr_store_async *async;  /* reads and writes on the store thread; NULL: on the loop */
  reload_job *reload;     /* the device list being read there */
  wr_router *router;
  uv_udp_t udp;
  uv_timer_t timer;
  int open_handles;
  wr_wg *wg;
  dev *devs;
  unsigned gen;
  uint64_t reload_ns, last_reload, last_seen;
  int store_failing;
  char addr[64];
  wr_wg_ingress_stats st;
  uint8_t rbuf[65536];
};

static const char *const DROP_NAMES[WR_WG_INGRESS_NDROPS] = {"spoofed", "policy", "send",
                                                             "no_endpoint"};

const char *wr_wg_ingress_drop_name(enum wr_wg_ingress_drop d) {
  return (unsigned)d < WR_WG_INGRESS_NDROPS ? DROP_NAMES[d] : "unknown";
}

static uint64_t now_ns(void) { return uv_hrtime(); }

static uint64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- endpoints: family, port, address (canonical, so cookies match) ------------ */

/* An endpoint's bytes: the IP version (4 or 6), then the port and the
 * address in network order, as the sockaddr holds them. */
#define EP_PORT 1
#define EP_ADDR 3

/* Where a sockaddr of |family| keeps its port and its address (offsets);
 * returns the address's length, 0 for a family other than IPv4 and IPv6. */
static size_t sa_layout(int family, size_t *port_off, size_t *addr_off) {
  if (family == AF_INET) {
    *port_off = offsetof(struct sockaddr_in, sin_port);
    *addr_off = offsetof(struct sockaddr_in, sin_addr);
    return 4;
  }
  if (family == AF_INET6) {
    *port_off = offsetof(struct sockaddr_in6, sin6_port);
    *addr_off = offsetof(struct sockaddr_in6, sin6_addr);
    return 16;
  }
  return 0;
}

static int ep_from_sockaddr(const struct sockaddr *sa, wr_wg_endpoint *ep) {
  size_t port_off, addr_off, alen = sa_layout(sa->sa_family, &port_off, &addr_off);
  memset(ep, 0, sizeof(*ep));
  if (!alen) return -1;
  ep->addr[0] = alen == 4 ? 4 : 6;
  memcpy(ep->addr + EP_PORT, (const uint8_t *)sa + port_off, 2);
  memcpy(ep->addr + EP_ADDR, (const uint8_t *)sa + addr_off, alen);
  ep->len = (uint8_t)(EP_ADDR + alen);
  ep->src_off = EP_ADDR;
  ep->src_len = alen == 4 ? 4 : 8; /* IPv6: the /64, one host usually holds all of it */
  return 0;
}

static void ep_to_sockaddr(const wr_wg_endpoint *ep, struct sockaddr_storage *ss) {
  size_t port_off, addr_off;
  memset(ss, 0, sizeof(*ss));
  ss->ss_family = ep->addr[0] == 4 ? AF_INET : AF_INET6;
  size_t alen = sa_layout(ss->ss_family, &port_off, &addr_off);
  memcpy((uint8_t *)ss + port_off, ep->addr + EP_PORT, 2);
  memcpy((uint8_t *)ss + addr_off, ep->addr + EP_ADDR, alen);
}

/* ---- the protocol's callbacks --------------------------------------------------- */

static void wg_send(void *user, const wr_wg_endpoint *to, const uint8_t *data, size_t len) {
  wr_wg_ingress *g = user;
  struct sockaddr_storage ss;
  ep_to_sockaddr(to, &ss);
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  if (uv_udp_try_send(&g->udp, &b, 1, (const struct sockaddr *)&ss) < 0)
    g->st.drops[WR_WG_INGRESS_DROP_SEND]++;
}

/* The packet's source is the device's own address (cryptokey routing). */
static int source_ok(const dev *d, const uint8_t *pkt, size_t len) {
  if (pkt[0] >> 4 == 4)
    return len >= 20 && d->v4.version == 4 && memcmp(pkt + 12, d->v4.b, 4) == 0;
  return len >= 40 && d->v6.version == 6 && memcmp(pkt + 8, d->v6.b, 16) == 0;
}

static void wg_receive(void *user, wr_wg_peer *peer, uint8_t *pkt, size_t len) {
  wr_wg_ingress *g = user;
  dev *d = wr_wg_peer_user(peer);
  if (!source_ok(d, pkt, len)) {
    g->st.drops[WR_WG_INGRESS_DROP_SPOOFED]++;
    uint64_t now = now_ns();
    if (now - d->last_spoof_log >= LOG_EVERY_NS) {
      d->last_spoof_log = now;
      wr_warn("wireguard: device %s sent a packet from an address that is not its own: dropped",
              d->d.name);
    }
    return;
  }
  wr_router_input(g->router, d->in, pkt, len);
}

static void wg_event(void *user, wr_wg_peer *peer, enum wr_wg_event ev) {
  (void)user;
  dev *d = wr_wg_peer_user(peer);
  if (ev == WR_WG_EV_ENDPOINT) wr_info("wireguard: device %s roamed", d->d.name);
}

/* The router's send function: one IP packet to the device. */
static int dev_send(void *user, const uint8_t *pkt, size_t len) {
  dev *d = user;
  int rv = wr_wg_send(d->g->wg, d->peer, now_ns(), pkt, len);
  if (rv == WR_OK || rv == WR_AGAIN) return WR_OK;
  if (rv == WR_ERR_NOTFOUND) d->g->st.drops[WR_WG_INGRESS_DROP_NO_ENDPOINT]++;
  return WR_ERR_IO;
}

/* ---- policy ------------------------------------------------------------------------ */

static int policy(void *user, const wr_router_ingress *in, const wr_ipaddr *src,
                  const wr_router_target *t) {
  wr_wg_ingress *g = user;
  (void)src;
  dev *d = wr_router_ingress_user(in, dev_send);
  if (!d) return 1; /* another ingress (TUN): not ours to judge */
  wr_store_cidr net;
  char err[64];
  if (wr_store_cidr_parse(t->route.network, &net, err, sizeof(err)) == WR_OK &&
      wr_device_policy_allows(&d->pol, &net))
    return 1;
  g->st.drops[WR_WG_INGRESS_DROP_POLICY]++;
  uint64_t now = now_ns();
  if (now - d->last_policy_log >= LOG_EVERY_NS) {
    d->last_policy_log = now;
    wr_warn("wireguard: device %s may not reach %s (route %s): refused", d->d.name,
            t->route.network, t->route.id);
  }
  return 0;
}

/* ---- devices ------------------------------------------------------------------------- */

static dev *dev_find(wr_wg_ingress *g, const char *id) {
  for (dev *d = g->devs; d; d = d->next)
    if (strcmp(d->d.id, id) == 0) return d;
  return NULL;
}

typedef struct seen_job {
  char id[WR_STORE_UUID_LEN + 1];
  int64_t hs;
  uint64_t rx, tx;
  int rv;
} seen_job;

static void seen_run(wr_store *s, void *arg) {
  seen_job *j = arg;
  j->rv = wr_store_device_seen(s, j->id, j->hs, j->rx, j->tx);
}

static void seen_done(void *arg, int status) {
  seen_job *j = arg;
  if (status != WR_OK || (j->rv != WR_OK && j->rv != WR_ERR_NOTFOUND))
    wr_debug("wireguard: recording what device %s did failed", j->id);
  free(j);
}

/* Writes what the edge saw of |d| to the store, if anything changed. */
static void dev_save(wr_wg_ingress *g, dev *d) {
  wr_wg_peer_info info;
  wr_wg_peer_get_info(d->peer, &info);
  if (info.rx_bytes == d->saved_rx && info.tx_bytes == d->saved_tx &&
      info.last_handshake == d->saved_hs)
    return;
  int64_t hs = 0;
  if (info.last_handshake) {
    uint64_t ago = now_ns() - info.last_handshake;
    hs = (int64_t)((wall_ns() - ago) / 1000000000ull);
  }
  if (g->async) {
    /* Written on the store thread, nobody waiting: a failed write is
     * logged there and made good by the next change. */
    seen_job *j = wr_xcalloc(1, sizeof(*j));
    *j = (seen_job){.hs = hs, .rx = info.rx_bytes, .tx = info.tx_bytes};
    snprintf(j->id, sizeof(j->id), "%s", d->d.id);
    if (wr_store_async_submit(g->async, seen_run, seen_done, j) != WR_OK) {
      free(j);
      return;
    }
  } else if (wr_store_device_seen(g->store, d->d.id, hs, info.rx_bytes, info.tx_bytes) != WR_OK) {
    return;
  }
  d->saved_rx = info.rx_bytes;
  d->saved_tx = info.tx_bytes;
  d->saved_hs = info.last_handshake;
}

static void dev_remove(wr_wg_ingress *g, dev *d, const char *why) {
  for (dev **pp = &g->devs; *pp; pp = &(*pp)->next)
    if (*pp == d) {
      *pp = d->next;
      break;
    }
  dev_save(g, d);
  if (why) wr_info("wireguard: device %s %s: its sessions end now", d->d.name, why);
  wr_router_ingress_remove(g->router, d->in);
  wr_wg_peer_remove(g->wg, d->peer);
  sodium_memzero(d, sizeof(*d));
  free(d);
  g->st.devices--;
}

static dev *dev_add(wr_wg_ingress *g, const wr_device *w) {
  uint8_t pub[WR_WG_KEY_LEN];
  if (wr_wg_key_from_b64(w->public_key, pub) != WR_OK) {
    wr_warn("wireguard: device %s: bad public key in the store; skipped", w->name);
    return NULL;
  }
  dev *d = wr_xcalloc(1, sizeof(*d));
  d->g = g;
  d->d = *w;
  wr_device_policy_parse(w->allowed, &d->pol);
  if (wr_ipaddr_parse(w->ipv4, &d->v4) != WR_OK) d->v4.version = 0;
  if (wr_ipaddr_parse(w->ipv6, &d->v6) != WR_OK) d->v6.version = 0;
  int rv = wr_wg_peer_add(g->wg, pub, NULL, d, &d->peer);
  if (rv == WR_OK) {
    char name[WR_STORE_NAME_MAX + 8];
    snprintf(name, sizeof(name), "wg:%s", w->name);
    wr_router_ingress_config icfg = {.name = name, .account_id = w->account_id,
                                     .vnet_id = w->vnet_id[0] ? w->vnet_id : NULL,
                                     .send = dev_send, .user = d};
    rv = wr_router_ingress_add(g->router, &icfg, &d->in);
    if (rv != WR_OK) wr_wg_peer_remove(g->wg, d->peer);
  }
  if (rv != WR_OK) {
    wr_warn("wireguard: device %s: %s; skipped", w->name, wr_strerror(rv));
    free(d);
    return NULL;
  }
  d->next = g->devs;
  g->devs = d;
  g->st.devices++;
  return d;
}

/* The stored device changed in a way a live peer cannot follow. */
static int dev_moved(const dev *d, const wr_device *w) {
  return strcmp(d->d.public_key, w->public_key) != 0 || strcmp(d->d.account_id, w->account_id) != 0 ||
         strcmp(d->d.vnet_id, w->vnet_id) != 0 || strcmp(d->d.ipv4, w->ipv4) != 0 ||
         strcmp(d->d.ipv6, w->ipv6) != 0;
}

/* The store's devices |list| become the peers: new ones added, changed
 * ones replaced, missing ones removed. */
static void reload_apply(wr_wg_ingress *g, wr_device *list, size_t n) {
  g->store_failing = 0;
  g->st.reloads++;
  unsigned gen = ++g->gen;
  for (size_t i = 0; i < n; i++) {
    dev *d = dev_find(g, list[i].id);
    if (d && dev_moved(d, &list[i])) {
      dev_remove(g, d, "changed");
      d = NULL;
    }
    if (!d) {
      d = dev_add(g, &list[i]);
    } else if (strcmp(d->d.allowed, list[i].allowed) != 0) {
      memcpy(d->d.allowed, list[i].allowed, sizeof(d->d.allowed));
      wr_device_policy_parse(d->d.allowed, &d->pol);
    }
    if (d) d->gen = gen;
  }
  for (dev *d = g->devs, *next; d; d = next) {
    next = d->next;
    if (d->gen != gen) dev_remove(g, d, "was revoked");
  }
}

static void reload_failed(wr_wg_ingress *g) {
  if (!g->store_failing) wr_warn("wireguard: cannot read the devices from the store");
  g->store_failing = 1;
}

struct reload_job {
  wr_wg_ingress *g; /* NULL once the ingress went away */
  wr_device *list;
  size_t n;
  int rv;
};

static void reload_run(wr_store *s, void *arg) {
  reload_job *j = arg;
  j->rv = wr_store_device_list(s, NULL, 0, &j->list, &j->n);
}

static void reload_done(void *arg, int status) {
  reload_job *j = arg;
  wr_wg_ingress *g = j->g;
  if (g) {
    g->reload = NULL;
    if (status == WR_OK && j->rv == WR_OK) reload_apply(g, j->list, j->n);
    else reload_failed(g);
  }
  if (j->list) sodium_memzero(j->list, j->n * sizeof(*j->list));
  free(j->list);
  free(j);
}

void wr_wg_ingress_reload(wr_wg_ingress *g) {
  wr_device *list = NULL;
  size_t n = 0;
  if (g->async) {
    if (g->reload) return; /* the read out now sees the change too, or the next one does */
    reload_job *j = wr_xcalloc(1, sizeof(*j));
    j->g = g;
    if (wr_store_async_submit(g->async, reload_run, reload_done, j) != WR_OK) {
      free(j);
      reload_failed(g);
      return;
    }
    g->reload = j;
    return;
  }
  if (wr_store_device_list(g->store, NULL, 0, &list, &n) != WR_OK) {
    reload_failed(g);
    return;
  }
  reload_apply(g, list, n);
  free(list);
}

/* ---- I/O ------------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  wr_wg_ingress *g = h->data;
  (void)hint;
  *buf = uv_buf_init((char *)g->rbuf, sizeof(g->rbuf));
}

static void on_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags) {
  wr_wg_ingress *g = u->data;
  (void)flags;
  wr_wg_endpoint ep;
  if (n <= 0 || !from || ep_from_sockaddr(from, &ep) != 0) return;
  wr_wg_input(g->wg, now_ns(), &ep, (const uint8_t *)buf->base, (size_t)n);
}

static void count_online(wr_wg_ingress *g, uint64_t now) {
  uint64_t online = 0;
  for (dev *d = g->devs; d; d = d->next) {
    wr_wg_peer_info info;
    wr_wg_peer_get_info(d->peer, &info);
    online += info.last_handshake && now - info.last_handshake < WR_WG_REJECT_AFTER_TIME;
  }
  g->st.devices_online = online;
}

static void on_tick(uv_timer_t *t) {
  wr_wg_ingress *g = t->data;
  uint64_t now = now_ns();
  wr_wg_set_wall_clock(g->wg, wall_ns(), now);
  wr_wg_tick(g->wg, now);
  if (now - g->last_reload >= g->reload_ns) {
    g->last_reload = now;
    wr_wg_ingress_reload(g);
  }
  if (now - g->last_seen >= WR_WG_INGRESS_SEEN_MS * 1000000ull) {
    g->last_seen = now;
    for (dev *d = g->devs; d; d = d->next) dev_save(g, d);
  }
}

/* ---- life ---------------------------------------------------------------------------- */

int wr_wg_ingress_new(const wr_wg_ingress_config *cfg, wr_wg_ingress **out, char *err,
                      size_t errlen) {
  *out = NULL;
  if (errlen) err[0] = '\0';
  if (!cfg || !cfg->loop || !cfg->store || !cfg->router || !cfg->listen || !cfg->private_key)
    return WR_ERR_INVAL;
  wr_wg_ingress *g = wr_xcalloc(1, sizeof(*g));
  g->loop = cfg->loop;
  g->store = cfg->store;
  g->router = cfg->router;
  g->reload_ns = (cfg->reload_ms ? cfg->reload_ms : WR_WG_INGRESS_RELOAD_MS) * 1000000ull;
  wr_wg_config wc = {.cbs = {wg_send, wg_receive, wg_event}, .user = g,
                     .cookie_threshold = cfg->cookie_threshold,
                     .rekey_responder_ns = cfg->rekey_responder_ms * 1000000ull};
  memcpy(wc.private_key, cfg->private_key, WR_WG_KEY_LEN);
  int rv = wr_wg_new(&wc, &g->wg);
  sodium_memzero(wc.private_key, sizeof(wc.private_key));
  if (rv != WR_OK) {
    snprintf(err, errlen, "the WireGuard key is not usable");
    free(g);
    return rv;
  }
  uv_udp_init(cfg->loop, &g->udp);
  g->udp.data = g;
  g->open_handles = 1;
  int uvrv = uv_udp_bind(&g->udp, cfg->listen, 0);
  if (uvrv == 0) uvrv = uv_udp_recv_start(&g->udp, on_alloc, on_recv);
  if (uvrv != 0) {
    snprintf(err, errlen, "cannot listen for WireGuard (UDP): %s", uv_strerror(uvrv));
    wr_wg_ingress_free(g);
    return WR_ERR_IO;
  }
  struct sockaddr_storage ss;
  int sl = sizeof(ss);
  char host[INET6_ADDRSTRLEN] = "?";
  uv_udp_getsockname(&g->udp, (struct sockaddr *)&ss, &sl);
  if (ss.ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
    snprintf(g->addr, sizeof(g->addr), "[%s]:%u", host,
             ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
  } else {
    uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
    snprintf(g->addr, sizeof(g->addr), "%s:%u", host, ntohs(((struct sockaddr_in *)&ss)->sin_port));
  }
  wr_router_set_policy(g->router, policy, g);
  wr_wg_set_wall_clock(g->wg, wall_ns(), now_ns());
  wr_wg_ingress_reload(g); /* at once, on the loop: before the first packet */
  g->async = cfg->async;
  g->last_reload = g->last_seen = now_ns();
  uv_timer_init(cfg->loop, &g->timer);
  g->timer.data = g;
  g->open_handles++;
  uv_timer_start(&g->timer, on_tick, TICK_MS, TICK_MS);
  *out = g;
  return WR_OK;
}

const char *wr_wg_ingress_addr(const wr_wg_ingress *g) { return g->addr; }

static void closed(uv_handle_t *h) {
  wr_wg_ingress *g = h->data;
  if (--g->open_handles == 0) free(g);
}

void wr_wg_ingress_free(wr_wg_ingress *g) {
  if (!g) return;
  if (g->reload) g->reload->g = NULL;
  g->reload = NULL;
  if (g->router) wr_router_set_policy(g->router, NULL, NULL);
  while (g->devs) dev_remove(g, g->devs, NULL);
  wr_wg_free(g->wg);
  g->wg = NULL;
  uv_udp_recv_stop(&g->udp);
  uv_close((uv_handle_t *)&g->udp, closed);
  if (g->open_handles > 1) uv_close((uv_handle_t *)&g->timer, closed);
}

const wr_wg_ingress_stats *wr_wg_ingress_get_stats(wr_wg_ingress *g) {
  count_online(g, now_ns());
  return &g->st;
}

const wr_wg_stats *wr_wg_ingress_wg_stats(const wr_wg_ingress *g) { return wr_wg_get_stats(g->wg); }
