/* User-space TCP on lwIP (see tcpstack.h for the contract and why lwIP
 * runs without its tcpip thread here).
 *
 * Ownership of pcbs: a flow owns its pcb from the SYN until both directions
 * ended (then tcp_close hands it to lwIP, which finishes the close and frees
 * it without telling us: the flow stays in the table as a "ghost" that only
 * remembers the tuple's ingress) or until lwIP reports it gone through the
 * err callback (RST, timeout, final ACK after a tx-only shutdown).
 *
 * Events: lwIP callbacks only record what happened in the flow and put it on
 * the dirty list; deliver() runs the owner's callbacks after every lwIP call
 * returned, so owner code never re-enters lwIP from inside it. */
/* lwIP first: its lwipopts.h defines TCP_MSS (a size), which
 * <netinet/tcp.h> (through uv.h) defines again as a socket option. The
 * lwIP values that depend on it are captured before it goes. */
#include <lwip/init.h>
#include <lwip/ip.h>
#include <lwip/netif.h>
#include <lwip/pbuf.h>
#include <lwip/priv/tcp_priv.h>
#include <lwip/tcp.h>
#include <lwip/timeouts.h>
enum { SND_QUEUELEN = TCP_SND_QUEUELEN };
#undef TCP_MSS

#include "edge/tcpstack.h"

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/bytes.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/siphash.h"

#define TIMER_MS 50

typedef struct tuple {
  uint8_t version;
  uint8_t src[16], dst[16]; /* client, destination */
  uint16_t sport, dport;
} tuple;

enum fstate { FS_OPEN = 0, FS_GHOST, FS_DEAD };

struct wr_tcpflow {
  wr_tcpstack *s;
  struct wr_tcpflow *hnext;  /* hash chain */
  struct wr_tcpflow *dnext;  /* dirty list */
  struct wr_tcpflow *gnext;  /* ghost list (expiry order) */
  struct client *client;
  tuple t;
  void *ingress;
  void *user;
  struct tcp_pcb *pcb;       /* NULL once lwIP freed it or we handed it over */
  enum fstate state;
  uint64_t expire;           /* ghost: uv_now when forgotten */
  wr_buf rx;                 /* client bytes not yet taken by on_data */
  size_t unconsumed;         /* taken, window not yet reopened */
  unsigned dirty : 1, syn_rcvd : 1, established : 1, rx_fin : 1, fin_done : 1,
      rx_blocked : 1, tx_shut : 1, fin_sent : 1, want_writable : 1, gone : 1,
      in_ghosts : 1;
  int reason;                /* when gone */
};

typedef struct client {
  struct client *next;
  void *ingress;
  wr_ipaddr addr;
  size_t flows;
} client;

typedef struct listener {
  struct listener *next;
  uint16_t port;
  struct tcp_pcb *pcb;
  size_t handshakes;         /* flows in SYN_RCVD on this port */
} listener;

struct wr_tcpstack {
  wr_tcpstack_config cfg;
  uv_timer_t timer;
  struct netif netif;
  uint64_t k0, k1;
  wr_tcpflow **tab;
  size_t tab_n, nflows, nlive;
  client **ctab;
  size_t ctab_n;
  listener *listeners;
  wr_tcpflow *dirty, **dirty_tail;
  wr_tcpflow *ghosts, **ghosts_tail;
  void *cur_ingress;         /* during wr_tcpstack_input: for replies to no flow */
  void *mute_ingress;        /* during wr_tcpstack_forget_ingress: send it nothing */
  int delivering, freeing;
  uint8_t obuf[65535];       /* output packet, linearized */
  wr_tcpstack_stats st;
};

static wr_tcpstack *g_stack; /* lwIP is process-global */
static int g_lwip_ready;

/* ---- tables --------------------------------------------------------------- */

static uint64_t tuple_hash(const wr_tcpstack *s, const tuple *t) {
  return wr_siphash24(s->k0, s->k1, (const uint8_t *)t, sizeof(*t));
}

static int tuple_eq(const tuple *a, const tuple *b) { return memcmp(a, b, sizeof(*a)) == 0; }

static wr_tcpflow **flow_slot(wr_tcpstack *s, const tuple *t) {
  wr_tcpflow **pp = &s->tab[tuple_hash(s, t) & (s->tab_n - 1)];
  while (*pp && !tuple_eq(&(*pp)->t, t)) pp = &(*pp)->hnext;
  return pp;
}

static void flow_grow(wr_tcpstack *s) {
  size_t n = s->tab_n * 2;
  wr_tcpflow **tab = calloc(n, sizeof(*tab));
  if (!tab) return; /* longer chains, still correct */
  for (size_t i = 0; i < s->tab_n; i++) {
    wr_tcpflow *f = s->tab[i], *next;
    for (; f; f = next) {
      next = f->hnext;
      size_t b = tuple_hash(s, &f->t) & (n - 1);
      f->hnext = tab[b];
      tab[b] = f;
    }
  }
  free(s->tab);
  s->tab = tab;
  s->tab_n = n;
}

static client *client_get(wr_tcpstack *s, void *ingress, const wr_ipaddr *a, int create) {
  uint8_t key[sizeof(void *) + sizeof(*a)];
  memcpy(key, &ingress, sizeof(void *));
  memcpy(key + sizeof(void *), a, sizeof(*a));
  client **pp = &s->ctab[wr_siphash24(s->k0, s->k1, key, sizeof(key)) & (s->ctab_n - 1)];
  for (client *c = *pp; c; c = c->next)
    if (c->ingress == ingress && wr_ipaddr_equal(&c->addr, a)) return c;
  if (!create) return NULL;
  client *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->ingress = ingress;
  c->addr = *a;
  c->next = *pp;
  *pp = c;
  return c;
}

static void client_unref(wr_tcpstack *s, client *c) {
  if (!c || --c->flows) return;
  uint8_t key[sizeof(void *) + sizeof(c->addr)];
  memcpy(key, &c->ingress, sizeof(void *));
  memcpy(key + sizeof(void *), &c->addr, sizeof(c->addr));
  client **pp = &s->ctab[wr_siphash24(s->k0, s->k1, key, sizeof(key)) & (s->ctab_n - 1)];
  while (*pp != c) pp = &(*pp)->next;
  *pp = c->next;
  free(c);
}

/* ---- addresses ------------------------------------------------------------- */

static void to_lwip(const uint8_t *b, uint8_t version, ip_addr_t *out) {
  memset(out, 0, sizeof(*out));
  if (version == 4) {
    IP_SET_TYPE_VAL(*out, IPADDR_TYPE_V4);
    memcpy(&ip_2_ip4(out)->addr, b, 4);
  } else {
    IP_SET_TYPE_VAL(*out, IPADDR_TYPE_V6);
    memcpy(ip_2_ip6(out)->addr, b, 16);
  }
}

/* The interface answers for |dst| (see tcpstack.h: fields written directly
 * so that pcbs bound to other destinations survive). */
static void netif_take(wr_tcpstack *s, const tuple *t) {
  if (t->version == 4) {
    memcpy(&ip_2_ip4(&s->netif.ip_addr)->addr, t->dst, 4);
  } else {
    memcpy(ip_2_ip6(&s->netif.ip6_addr[0])->addr, t->dst, 16);
    ip6_addr_clear_zone(ip_2_ip6(&s->netif.ip6_addr[0]));
    s->netif.ip6_addr_state[0] = IP6_ADDR_PREFERRED;
  }
}

/* ---- dirty list and delivery ------------------------------------------------- */

static void mark(wr_tcpflow *f) {
  if (f->dirty) return;
  f->dirty = 1;
  f->dnext = NULL;
  *f->s->dirty_tail = f;
  f->s->dirty_tail = &f->dnext;
}

static void detach_pcb(wr_tcpflow *f) {
  struct tcp_pcb *p = f->pcb;
  if (!p) return;
  tcp_arg(p, NULL);
  tcp_recv(p, NULL);
  tcp_sent(p, NULL);
  tcp_err(p, NULL);
  f->pcb = NULL;
}

static listener *listener_find(wr_tcpstack *s, uint16_t port) {
  for (listener *l = s->listeners; l; l = l->next)
    if (l->port == port) return l;
  return NULL;
}

/* A handshake on |port| ended (completed or failed): the listener goes
 * with the last one, so listeners exist only while SYNs are in progress. */
static void handshake_done(wr_tcpflow *f) {
  if (!f->syn_rcvd) return;
  f->syn_rcvd = 0;
  wr_tcpstack *s = f->s;
  listener **pp = &s->listeners;
  while (*pp && (*pp)->port != f->t.dport) pp = &(*pp)->next;
  listener *l = *pp;
  if (!l || --l->handshakes) return;
  *pp = l->next;
  tcp_accept(l->pcb, NULL);
  tcp_close(l->pcb);
  free(l);
}

/* The flow leaves the live set: caps, listener, table (unless ghost). */
static void flow_release(wr_tcpflow *f, enum fstate to) {
  wr_tcpstack *s = f->s;
  handshake_done(f);
  if (f->state == FS_OPEN) {
    s->nlive--;
    s->st.flows_active--;
    client_unref(s, f->client);
    f->client = NULL;
  }
  if (f->state == FS_GHOST || to == FS_DEAD) {
    wr_tcpflow **pp = flow_slot(s, &f->t);
    if (*pp == f) *pp = f->hnext;
    s->nflows--;
  }
  if (to == FS_GHOST) {
    f->expire = uv_now(s->cfg.loop) + s->cfg.linger_ms;
    f->gnext = NULL;
    *s->ghosts_tail = f;
    s->ghosts_tail = &f->gnext;
  }
  if (to == FS_GHOST) f->in_ghosts = 1;
  f->state = to;
  wr_buf_free(&f->rx);
  /* Freed by deliver(), or by the ghost sweep if still on its list. */
  if (to == FS_DEAD && !f->in_ghosts) mark(f);
}

/* Both directions ended: hand the pcb to lwIP (it sends the last bytes and
 * FIN, then frees it) and keep the tuple as a ghost. */
static void finish(wr_tcpflow *f) {
  struct tcp_pcb *p = f->pcb;
  if (p) {
    if (f->unconsumed) tcp_recved(p, (u16_t)f->unconsumed); /* else tcp_close sends RST */
    f->unconsumed = 0;
    detach_pcb(f);
    if (tcp_close(p) != ERR_OK) tcp_abort(p);
  }
  void *u = f->user;
  flow_release(f, FS_GHOST);
  f->s->cfg.cbs.on_close(u, WR_TCPFLOW_CLOSED);
}

/* Delivers buffered client bytes and the FIN. Returns 0 if |f| went away. */
static int deliver_rx(wr_tcpflow *f) {
  const wr_tcpstack_callbacks *cb = &f->s->cfg.cbs;
  while (f->rx.len && !f->rx_blocked && f->state == FS_OPEN) {
    /* The bytes offered count as delivered during the call, so that the
     * owner may wr_tcpflow_consume() what it took from inside on_data; what
     * it left is taken back after. */
    size_t avail = f->rx.len;
    f->unconsumed += avail;
    size_t n = cb->on_data(f->user, f->rx.data, avail);
    if (f->state != FS_OPEN) return 0;
    if (n > avail) n = avail;
    size_t back = avail - n;
    f->unconsumed = f->unconsumed > back ? f->unconsumed - back : 0;
    wr_buf_consume(&f->rx, n);
    if (f->rx.len) f->rx_blocked = 1;
  }
  if (f->state != FS_OPEN) return 0;
  if (f->rx_fin && !f->rx.len && !f->fin_done) {
    f->fin_done = 1;
    cb->on_data(f->user, NULL, 0);
    if (f->state != FS_OPEN) return 0;
  }
  return 1;
}

static void process(wr_tcpflow *f) {
  wr_tcpstack *s = f->s;
  if (f->state != FS_OPEN) return;
  if (f->established && f->syn_rcvd) handshake_done(f);
  if (!deliver_rx(f)) return;
  if (f->gone) {
    void *u = f->user;
    int why = f->reason;
    flow_release(f, FS_DEAD);
    s->cfg.cbs.on_close(u, why);
    return;
  }
  if (f->want_writable && f->established && f->pcb && tcp_sndbuf(f->pcb) > 0 &&
      tcp_sndqueuelen(f->pcb) < SND_QUEUELEN) {
    f->want_writable = 0;
    if (s->cfg.cbs.on_writable) s->cfg.cbs.on_writable(f->user);
    if (f->state != FS_OPEN) return;
  }
  if (f->fin_done && f->tx_shut) {
    finish(f);
  } else if (f->tx_shut && !f->fin_sent && f->established && f->pcb) {
    f->fin_sent = 1;
    tcp_shutdown(f->pcb, 0, 1);
    tcp_output(f->pcb);
  }
}

/* Runs the owner's callbacks for every flow lwIP touched. Not re-entrant:
 * calls made from inside a callback mark flows and return. */
static void deliver(wr_tcpstack *s) {
  if (s->delivering) return;
  s->delivering = 1;
  while (s->dirty) {
    wr_tcpflow *f = s->dirty;
    s->dirty = f->dnext;
    if (!s->dirty) s->dirty_tail = &s->dirty;
    f->dirty = 0;
    if (f->state == FS_DEAD) {
      free(f);
      continue;
    }
    process(f);
  }
  s->delivering = 0;
}

/* ---- lwIP callbacks: record and mark ------------------------------------------ */

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err) {
  wr_tcpflow *f = arg;
  if (!f) {
    if (p) pbuf_free(p);
    return ERR_OK;
  }
  if (!p) {
    f->rx_fin = 1;
  } else {
    if (wr_buf_reserve(&f->rx, p->tot_len) != WR_OK) return ERR_MEM; /* lwIP retries */
    pbuf_copy_partial(p, f->rx.data + f->rx.len, p->tot_len, 0);
    f->rx.len += p->tot_len;
    f->s->st.bytes_in += p->tot_len;
    pbuf_free(p);
  }
  mark(f);
  return ERR_OK;
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len) {
  wr_tcpflow *f = arg;
  if (f && f->want_writable) mark(f);
  return ERR_OK;
}

/* The pcb is already freed when this runs. */
static void on_err(void *arg, err_t err) {
  wr_tcpflow *f = arg;
  if (!f) return;
  f->pcb = NULL;
  f->gone = 1;
  f->reason = err == ERR_RST ? WR_TCPFLOW_RESET
              : err == ERR_CLSD ? WR_TCPFLOW_CLOSED
              : err == ERR_ABRT ? WR_TCPFLOW_TIMEOUT
                                : WR_TCPFLOW_ERROR;
  if (err == ERR_CLSD && !f->rx_fin) f->reason = WR_TCPFLOW_RESET;
  mark(f);
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err) {
  wr_tcpflow *f = arg;
  if (!f || !pcb || err != ERR_OK) return ERR_OK;
  f->established = 1; /* a FIN the owner asked for goes out in process() */
  mark(f);
  return ERR_OK;
}

/* ---- the interface --------------------------------------------------------------- */

static int flow_of_packet(wr_tcpstack *s, const uint8_t *p, size_t len, tuple *t);

static void emit(wr_tcpstack *s, struct pbuf *p) {
  uint8_t *buf = s->obuf;
  if (s->freeing) return; /* tot_len is 16 bits: it fits */
  size_t len = pbuf_copy_partial(p, buf, p->tot_len, 0);
  void *ingress = NULL;
  tuple t;
  if (flow_of_packet(s, buf, len, &t) == 0) {
    /* In the table the client is the source: swap. */
    tuple k = t;
    memcpy(k.src, t.dst, 16);
    memcpy(k.dst, t.src, 16);
    k.sport = t.dport;
    k.dport = t.sport;
    wr_tcpflow *f = *flow_slot(s, &k);
    ingress = f ? f->ingress : s->cur_ingress;
  }
  if (!ingress || ingress == s->mute_ingress) {
    s->st.out_dropped++;
    return;
  }
  s->st.packets_out++;
  s->cfg.cbs.output(s->cfg.user, buf, len, ingress);
}

static err_t out4(struct netif *n, struct pbuf *p, const ip4_addr_t *a) {
  emit(n->state, p);
  return ERR_OK;
}

static err_t out6(struct netif *n, struct pbuf *p, const ip6_addr_t *a) {
  emit(n->state, p);
  return ERR_OK;
}

static err_t netif_setup(struct netif *n) {
  n->name[0] = 'w';
  n->name[1] = 'r';
  n->output = out4;
  n->output_ip6 = out6;
  n->mtu = ((wr_tcpstack *)n->state)->cfg.mtu;
  n->flags = NETIF_FLAG_LINK_UP;
  return ERR_OK;
}

static void on_timer(uv_timer_t *t) {
  wr_tcpstack *s = t->data;
  sys_check_timeouts();
  uint64_t now = uv_now(s->cfg.loop);
  while (s->ghosts && s->ghosts->expire <= now) {
    wr_tcpflow *f = s->ghosts;
    s->ghosts = f->gnext;
    if (!s->ghosts) s->ghosts_tail = &s->ghosts;
    f->in_ghosts = 0;
    if (f->state == FS_DEAD)
      free(f); /* replaced by a new connection already */
    else
      flow_release(f, FS_DEAD);
  }
  deliver(s);
}

int wr_tcpstack_new(const wr_tcpstack_config *cfg, wr_tcpstack **out) {
  if (!cfg || !out || !cfg->loop || !cfg->cbs.output || !cfg->cbs.on_flow ||
      !cfg->cbs.on_data || !cfg->cbs.on_close)
    return WR_ERR_INVAL;
  if (g_stack) return WR_ERR_EXISTS;
  wr_tcpstack *s = calloc(1, sizeof(*s));
  if (!s) return WR_ERR_NOMEM;
  s->cfg = *cfg;
  if (!s->cfg.max_flows) s->cfg.max_flows = WR_TCPSTACK_MAX_FLOWS;
  if (!s->cfg.max_flows_per_client) s->cfg.max_flows_per_client = WR_TCPSTACK_MAX_FLOWS_PER_CLIENT;
  if (!s->cfg.mtu) s->cfg.mtu = WR_TCPSTACK_MTU;
  if (s->cfg.mtu < 1280) s->cfg.mtu = 1280;
  if (!s->cfg.linger_ms) s->cfg.linger_ms = WR_TCPSTACK_LINGER_MS;
  uint8_t key[16];
  wr_random_bytes(key, sizeof(key));
  wr_siphash_key(key, &s->k0, &s->k1);
  s->tab_n = 1024;
  s->ctab_n = 1024;
  s->tab = calloc(s->tab_n, sizeof(*s->tab));
  s->ctab = calloc(s->ctab_n, sizeof(*s->ctab));
  if (!s->tab || !s->ctab) {
    free(s->tab);
    free(s->ctab);
    free(s);
    return WR_ERR_NOMEM;
  }
  s->dirty_tail = &s->dirty;
  s->ghosts_tail = &s->ghosts;
  if (!g_lwip_ready) {
    lwip_init();
    g_lwip_ready = 1;
  }
  ip4_addr_t a, m, g;
  IP4_ADDR(&a, 10, 255, 255, 254); /* replaced before every packet */
  IP4_ADDR(&m, 0, 0, 0, 0);
  IP4_ADDR(&g, 0, 0, 0, 0);
  if (!netif_add(&s->netif, &a, &m, &g, s, netif_setup, ip_input)) {
    free(s->tab);
    free(s->ctab);
    free(s);
    return WR_ERR_NOMEM;
  }
  netif_set_default(&s->netif);
  netif_set_up(&s->netif);
  netif_set_link_up(&s->netif);
  s->netif.rs_count = 0; /* no router solicitations */
  uv_timer_init(cfg->loop, &s->timer);
  s->timer.data = s;
  uv_timer_start(&s->timer, on_timer, TIMER_MS, TIMER_MS);
  uv_unref((uv_handle_t *)&s->timer);
  g_stack = s;
  *out = s;
  return WR_OK;
}

static void timer_closed(uv_handle_t *h) { free(h->data); }

void wr_tcpstack_free(wr_tcpstack *s) {
  if (!s) return;
  s->freeing = 1;
  for (wr_tcpflow *f = s->ghosts, *n; f; f = n) {
    n = f->gnext;
    if (f->state == FS_DEAD) free(f); /* not in the table any more */
  }
  /* Dead flows wait on the dirty list, out of the table. */
  for (wr_tcpflow *f = s->dirty, *n; f; f = n) {
    n = f->dnext;
    if (f->state == FS_DEAD) free(f);
  }
  for (size_t i = 0; i < s->tab_n; i++) {
    while (s->tab[i]) {
      wr_tcpflow *f = s->tab[i];
      struct tcp_pcb *p = f->pcb;
      detach_pcb(f);
      if (p) tcp_abort(p);
      s->tab[i] = f->hnext;
      client_unref(s, f->client);
      wr_buf_free(&f->rx);
      free(f);
    }
  }
  /* Handed-over pcbs (closing, TIME_WAIT) and listeners still reference the
   * interface: drop them all, lwIP is ours alone. */
  while (tcp_active_pcbs) tcp_abort(tcp_active_pcbs);
  while (tcp_tw_pcbs) tcp_abort(tcp_tw_pcbs);
  while (s->listeners) {
    listener *l = s->listeners;
    s->listeners = l->next;
    tcp_close(l->pcb);
    free(l);
  }
  for (size_t i = 0; i < s->ctab_n; i++)
    for (client *c = s->ctab[i], *n; c; c = n) {
      n = c->next;
      free(c);
    }
  netif_remove(&s->netif);
  free(s->tab);
  free(s->ctab);
  g_stack = NULL;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, timer_closed);
}

const wr_tcpstack_stats *wr_tcpstack_get_stats(const wr_tcpstack *s) { return &s->st; }

/* ---- input ------------------------------------------------------------------------ */

static uint32_t sum16(uint32_t acc, const uint8_t *p, size_t n) {
  for (; n > 1; p += 2, n -= 2) acc += (uint32_t)p[0] << 8 | p[1];
  if (n) acc += (uint32_t)p[0] << 8;
  return acc;
}

/* Decodes |p| as an unfragmented IP packet carrying a TCP segment and fills
 * |t| from its header (src/dst as on the wire). Returns 0 or -1. */
static int flow_of_packet(wr_tcpstack *s, const uint8_t *p, size_t len, tuple *t) {
  wr_ip_packet ip;
  if (wr_ip_decode(p, len, &ip) != 0 || ip.truncated || ip.is_fragment || ip.protocol != 6 ||
      ip.payload_len < 20)
    return -1;
  const uint8_t *tcp = ip.payload;
  size_t off = (size_t)(tcp[12] >> 4) * 4;
  if (off < 20 || off > ip.payload_len) return -1;
  memset(t, 0, sizeof(*t));
  t->version = ip.version;
  size_t alen = ip.version == 4 ? 4 : 16;
  memcpy(t->src, ip.src.b, alen);
  memcpy(t->dst, ip.dst.b, alen);
  t->sport = wr_get_be16(tcp);
  t->dport = wr_get_be16(tcp + 2);
  return 0;
}

static int tcp_checksum_ok(const uint8_t *p, size_t len) {
  wr_ip_packet ip;
  if (wr_ip_decode(p, len, &ip) != 0) return 0;
  size_t alen = ip.version == 4 ? 4 : 16;
  uint32_t acc = sum16(0, ip.src.b, alen);
  acc = sum16(acc, ip.dst.b, alen);
  acc += 6 + (uint32_t)ip.payload_len;
  acc = sum16(acc, ip.payload, ip.payload_len);
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return acc == 0xffff;
}

/* Lets lwIP process the packet as addressed to its interface. */
static void feed(wr_tcpstack *s, const tuple *t, const uint8_t *pkt, size_t len) {
  struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_RAM);
  if (!p) return;
  pbuf_take(p, pkt, (u16_t)len);
  netif_take(s, t);
  if (s->netif.input(p, &s->netif) != ERR_OK) pbuf_free(p);
}

static void refuse(wr_tcpstack *s, const tuple *t, const uint8_t *tcp) {
  ip_addr_t local, remote;
  to_lwip(t->dst, t->version, &local);
  to_lwip(t->src, t->version, &remote);
  uint32_t seq = wr_get_be32(tcp + 4);
  tcp_rst(NULL, 0, seq + 1, &local, &remote, t->dport, t->sport);
}

/* The SYN_RCVD pcb lwIP just made for |t| (it inherited the listener's
 * NULL argument). */
static struct tcp_pcb *find_new_pcb(const tuple *t) {
  ip_addr_t local, remote;
  to_lwip(t->dst, t->version, &local);
  to_lwip(t->src, t->version, &remote);
  for (struct tcp_pcb *p = tcp_active_pcbs; p; p = p->next)
    if (p->state == SYN_RCVD && !p->callback_arg && p->local_port == t->dport &&
        p->remote_port == t->sport && ip_addr_cmp(&p->local_ip, &local) &&
        ip_addr_cmp(&p->remote_ip, &remote))
      return p;
  return NULL;
}

static listener *listener_get(wr_tcpstack *s, uint16_t port) {
  listener *l = listener_find(s, port);
  if (l) return l;
  l = calloc(1, sizeof(*l));
  if (!l) return NULL;
  struct tcp_pcb *p = tcp_new_ip_type(IPADDR_TYPE_ANY);
  /* REUSEADDR: established connections keep this local port after the
   * listener closed; the next listener must bind beside them. */
  if (p) ip_set_option(p, SOF_REUSEADDR);
  if (!p || tcp_bind(p, IP_ANY_TYPE, port) != ERR_OK) {
    if (p) tcp_abort(p);
    free(l);
    return NULL;
  }
  l->pcb = tcp_listen(p);
  if (!l->pcb) {
    tcp_abort(p);
    free(l);
    return NULL;
  }
  tcp_accept(l->pcb, on_accept);
  l->port = port;
  l->next = s->listeners;
  s->listeners = l;
  return l;
}

/* A SYN for a tuple with no live flow. */
static int new_flow(wr_tcpstack *s, const tuple *t, const uint8_t *tcp, const uint8_t *pkt,
                    size_t len, void *ingress) {
  wr_ipaddr src = {.version = t->version}, dst = {.version = t->version};
  memcpy(src.b, t->src, sizeof(src.b));
  memcpy(dst.b, t->dst, sizeof(dst.b));
  client *c = client_get(s, ingress, &src, 1);
  if (!c || s->nlive >= s->cfg.max_flows || c->flows >= s->cfg.max_flows_per_client) {
    s->st.limited++;
    if (c && !c->flows) {
      c->flows = 1;
      client_unref(s, c);
    }
    refuse(s, t, tcp);
    return WR_ERR_LIMIT;
  }
  wr_tcpflow **slot = flow_slot(s, t);
  if (*slot) flow_release(*slot, FS_DEAD); /* a ghost of an earlier connection */
  wr_tcpflow *f = calloc(1, sizeof(*f));
  listener *l = f ? listener_get(s, t->dport) : NULL;
  if (!l) {
    free(f);
    c->flows++;
    client_unref(s, c);
    return WR_ERR_NOMEM;
  }
  f->s = s;
  f->t = *t;
  f->ingress = ingress;
  f->client = c;
  c->flows++;
  wr_buf_init(&f->rx, 1u << 20, NULL); /* one window in practice */
  slot = flow_slot(s, t);
  *slot = f;
  s->nflows++;
  s->nlive++;
  s->st.flows_active++;
  l->handshakes++;
  f->syn_rcvd = 1;
  if (s->cfg.cbs.on_flow(s->cfg.user, f, ingress, &src, t->sport, &dst, t->dport, &f->user)) {
    s->st.refused++;
    flow_release(f, FS_DEAD);
    refuse(s, t, tcp);
    return WR_ERR_DENIED;
  }
  s->st.flows_total++;
  feed(s, t, pkt, len);
  struct tcp_pcb *p = find_new_pcb(t);
  if (!p) {
    f->gone = 1;
    f->reason = WR_TCPFLOW_ERROR;
    mark(f);
    return WR_OK;
  }
  f->pcb = p;
  tcp_arg(p, f);
  tcp_recv(p, on_recv);
  tcp_sent(p, on_sent);
  tcp_err(p, on_err);
  if (s->nflows > s->tab_n) flow_grow(s);
  return WR_OK;
}

static int input(wr_tcpstack *s, const uint8_t *pkt, size_t len, void *ingress) {
  tuple t;
  if (flow_of_packet(s, pkt, len, &t) != 0 || !tcp_checksum_ok(pkt, len)) {
    s->st.malformed++;
    return WR_ERR_PROTO;
  }
  wr_ip_packet ip;
  wr_ip_decode(pkt, len, &ip);
  const uint8_t *tcp = ip.payload;
  uint8_t flags = tcp[13];
  s->st.packets_in++;
  wr_tcpflow *f = *flow_slot(s, &t);
  if (f && f->ingress != ingress) {
    s->st.foreign++;
    return WR_ERR_EXISTS;
  }
  int syn = (flags & 0x17) == 0x02; /* SYN without ACK, RST, FIN */
  if (syn && (!f || f->state == FS_GHOST)) return new_flow(s, &t, tcp, pkt, len, ingress);
  /* Established flows, handed-over pcbs and strays (lwIP answers RST). */
  feed(s, &t, pkt, len);
  return WR_OK;
}

int wr_tcpstack_input(wr_tcpstack *s, const uint8_t *pkt, size_t len, void *ingress) {
  if (len > 65535) {
    s->st.malformed++;
    return WR_ERR_PROTO;
  }
  s->cur_ingress = ingress;
  int rv = input(s, pkt, len, ingress);
  s->cur_ingress = NULL;
  deliver(s);
  return rv;
}

/* ---- flows ------------------------------------------------------------------------- */

size_t wr_tcpflow_write(wr_tcpflow *f, const uint8_t *data, size_t len) {
  if (f->state != FS_OPEN || !f->pcb || f->tx_shut || !f->established) {
    if (f->state == FS_OPEN && !f->tx_shut) f->want_writable = 1; /* on_writable once established */
    return 0;
  }
  size_t room = tcp_sndbuf(f->pcb);
  if (tcp_sndqueuelen(f->pcb) >= SND_QUEUELEN) room = 0;
  size_t n = len < room ? len : room;
  if (n > 0xffff) n = 0xffff;
  if (n && tcp_write(f->pcb, data, (u16_t)n, TCP_WRITE_FLAG_COPY) != ERR_OK) n = 0;
  if (n < len) f->want_writable = 1;
  if (n) {
    f->s->st.bytes_out += n;
    tcp_output(f->pcb);
  }
  deliver(f->s);
  return n;
}

size_t wr_tcpflow_unacked(const wr_tcpflow *f) {
  if (f->state != FS_OPEN || !f->pcb) return 0;
  return (size_t)(TCP_SND_BUF - tcp_sndbuf(f->pcb));
}

void wr_tcpflow_consume(wr_tcpflow *f, size_t n) {
  if (n > f->unconsumed) n = f->unconsumed;
  if (!n || f->state != FS_OPEN) return;
  f->unconsumed -= n;
  if (f->pcb) tcp_recved(f->pcb, (u16_t)n);
  deliver(f->s);
}

void wr_tcpflow_resume(wr_tcpflow *f) {
  if (f->state != FS_OPEN || !f->rx_blocked) return;
  f->rx_blocked = 0;
  mark(f);
  deliver(f->s);
}

void wr_tcpflow_shutdown_write(wr_tcpflow *f) {
  if (f->state != FS_OPEN || f->tx_shut) return;
  f->tx_shut = 1;
  mark(f); /* process() sends the FIN, or closes if the client's came already */
  deliver(f->s);
}

void wr_tcpstack_forget_ingress(wr_tcpstack *s, void *ingress) {
  if (!s || !ingress) return;
  s->mute_ingress = ingress;
  for (size_t i = 0; i < s->tab_n; i++) {
    for (wr_tcpflow *f = s->tab[i], *next; f; f = next) {
      next = f->hnext;
      if (f->ingress != ingress) continue;
      if (f->state == FS_GHOST) {
        flow_release(f, FS_DEAD); /* leaves the table; the ghost sweep frees it */
        continue;
      }
      if (f->state != FS_OPEN || f->gone) continue;
      struct tcp_pcb *p = f->pcb;
      detach_pcb(f);
      if (p) tcp_abort(p); /* its RST is muted */
      f->gone = 1;
      f->reason = WR_TCPFLOW_ERROR;
      mark(f);
    }
  }
  deliver(s); /* process() ends the marked flows with on_close */
  s->mute_ingress = NULL;
}

void wr_tcpflow_abort(wr_tcpflow *f) {
  if (f->state != FS_OPEN) return;
  struct tcp_pcb *p = f->pcb;
  detach_pcb(f);
  if (p) tcp_abort(p); /* RST goes out now: the tuple is still in the table */
  flow_release(f, FS_DEAD);
  deliver(f->s);
}
