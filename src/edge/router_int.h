/* The router's internals, shared by router*.c and the unit tests. */
#ifndef WR_EDGE_ROUTER_INT_H
#define WR_EDGE_ROUTER_INT_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "edge/router.h"
#include "edge/store.h"
#include "lib/encoding.h"
#include "proto/ippacket.h"

/* ---- longest-prefix match (router_table.c) ------------------------------------ */

/* One route of a table. */
typedef struct wr__rt_route {
  wr_router_route route;
  wr_store_cidr cidr; /* route.network, parsed */
} wr__rt_route;

/* The routes of one prefix length of one family, sorted by masked address
 * (memcmp), for binary search. */
typedef struct wr__rt_level {
  unsigned bits;
  size_t n;
  uint8_t (*keys)[16]; /* masked prefixes, sorted */
  uint32_t *route;     /* index into routes[] of keys[i] */
} wr__rt_level;

/* The IP routes of one virtual network. Levels are ordered longest prefix
 * first, so the first hit is the longest match. */
typedef struct wr__rtable {
  wr__rt_route *routes;
  size_t nroutes;
  wr__rt_level *levels[2]; /* [0] IPv4, [1] IPv6 */
  size_t nlevels[2];
} wr__rtable;

/* Builds |t| from |rows| (duplicates of one network: the first row wins).
 * Rows whose network does not parse are skipped. Returns WR_OK. */
int wr__rtable_build(wr__rtable *t, const wr_ip_route *rows, size_t n);
/* The longest-prefix route for |dst|, or NULL. */
const wr__rt_route *wr__rtable_lookup(const wr__rtable *t, const wr_ipaddr *dst);
void wr__rtable_free(wr__rtable *t);

/* ---- hash table of flows and clients (router_flow.c) --------------------------- */

#define WR__KEY_MAX 40

/* An entry embedded in its owner; the key bytes are the owner's. */
typedef struct wr__hent {
  struct wr__hent *next;
  uint64_t hash;
  size_t klen;
  uint8_t key[WR__KEY_MAX];
} wr__hent;

typedef struct wr__htab {
  wr__hent **b;
  size_t nb; /* power of two */
  size_t n;
  uint64_t k0, k1;
} wr__htab;

void wr__htab_init(wr__htab *h);
void wr__htab_free(wr__htab *h); /* the bucket array only */
/* Sets |e|'s key and inserts it (the caller checked it is not there). */
void wr__htab_put(wr__htab *h, wr__hent *e, const void *key, size_t klen);
wr__hent *wr__htab_get(const wr__htab *h, const void *key, size_t klen);
void wr__htab_del(wr__htab *h, wr__hent *e);

/* Flow keys: kind, IP version, then addresses and ports/echo id. */
size_t wr__flow_key(uint8_t out[WR__KEY_MAX], int kind, const wr_ipaddr *src, uint16_t sport,
                    const wr_ipaddr *dst, uint16_t dport);

/* ---- the router's objects ---------------------------------------------------- */

struct wr_router_ingress {
  wr_router_ingress *next;
  char *name;
  char account_id[WR_STORE_ID_LEN + 1];
  char vnet_want[WR_STORE_UUID_LEN + 1]; /* as configured ("" = default) */
  char vnet_id[WR_STORE_UUID_LEN + 1];   /* resolved at the last reload */
  wr_router_send_fn send;
  void *user;
  wr_ipaddr router_v4, router_v6;
  wr__rtable table;
};

/* A client: one source address of one ingress, for the per-client cap. */
typedef struct wr__client {
  wr__hent h; /* key: ingress pointer + address */
  size_t nflows;
} wr__client;

enum { WR__UDP_REGISTERING = 0, WR__UDP_READY, WR__UDP_FAILED };

typedef struct wr__rpc_call wr__rpc_call;

typedef struct wr__flow {
  wr__hent fwd;             /* wr__flow_key */
  wr__hent sid;             /* UDP: the session id */
  struct wr__flow *prev, *next; /* least recently used first */
  int kind;                 /* enum wr_router_kind */
  wr_router_ingress *in;
  wr__client *client;
  wr_ipaddr src, dst;
  uint16_t sport, dport;    /* ICMP: the echo id in sport */
  char conn_id[WR_STORE_UUID_LEN + 1];
  char tunnel_id[WR_STORE_UUID_LEN + 1];
  uint64_t last_ms;
  /* UDP */
  int state;
  int v3;                   /* datagram v3 connection: registered by datagram */
  uint64_t reg_sent_ms;     /* v3: when the registration datagram last went */
  wr_uuid session;          /* v2 session id / v3 request id */
  wr__rpc_call *reg;        /* the registration in flight */
  uint8_t **queue;          /* packets (UDP payloads) waiting for the session */
  size_t *qlen;
  size_t nqueue;
} wr__flow;

typedef struct wr__router_reload wr__router_reload;

struct wr_router {
  wr_router_config cfg;
  uv_timer_t *timer;        /* the tick: idle flows, route refresh */
  uint64_t refreshed_ms;
  int reload_pending;
  wr__router_reload *reload; /* a read on the store thread (cfg.async) */
  wr_router_ingress *ingresses;
  wr__htab flows, sessions, clients;
  wr__flow *lru_head, *lru_tail;
  size_t nflows;
  wr__rpc_call *calls;      /* RPC streams in flight */
  wr_router_tcp_fn tcp_fn;
  void *tcp_user;
  wr_router_tcp_forget_fn tcp_forget;
  wr_router_policy_fn policy_fn;
  void *policy_user;
  unsigned rr;
  uint64_t down_logged_ms;
  char down_logged[WR_STORE_UUID_LEN + 1];
  wr_router_stats stats;
};

/* router.c */
uint64_t wr__router_now(const wr_router *r);
void wr__router_drop(wr_router *r, enum wr_router_drop d);
/* Picks a live connection of |tunnel_id| (round robin). */
int wr__router_pick_conn(wr_router *r, const char *tunnel_id, wr_tunnel_conn_info *out);

/* router_flow.c */
int wr__flow_icmp(wr_router *r, wr_router_ingress *in, const wr_ip_packet *ip,
                  const wr_icmp *icmp, const wr_router_target *t);
int wr__flow_udp(wr_router *r, wr_router_ingress *in, const wr_ip_packet *ip, const uint8_t *pkt,
                 size_t len, const wr_router_target *t);
/* Ends flows idle for longer than their timeout. */
void wr__flows_expire(wr_router *r, uint64_t now);
/* Ends every flow of |in| (NULL: all), and every RPC call when |in| is NULL. */
void wr__flows_end_all(wr_router *r, wr_router_ingress *in);
void wr__flows_datagram(wr_router *r, const char *conn_id, int version, const uint8_t *data,
                        size_t len);

#endif
