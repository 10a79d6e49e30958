/* The router's flows (see router.h): ICMP echo flows and UDP sessions, the
 * hash tables that find them, and the datagrams connectors send back. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/router_int.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/siphash.h"
#include "proto/datagram.h"
#include "proto/preamble.h"
#include "proto/rpc_session.h"
#include "proto/tunnelrpc.h"
#include "proto/udppacket.h"

/* What the UDP session asks the connector for (Cloudflare's edge sends the
 * same hint; the vector rpc.register-udp-session.from-edge.bin). */
#define UDP_IDLE_HINT_NS 30000000000LL
#define UDP_MAX_PAYLOAD 1500
/* v3: how long a registration may go unanswered before the next packet of
 * the flow sends it again (datagrams can be lost). */
#define V3_REG_RETRY_MS 1000

/* ---- hash table ---------------------------------------------------------------------- */

void wr__htab_init(wr__htab *h) {
  uint8_t key[16];
  memset(h, 0, sizeof(*h));
  if (wr_random_bytes(key, sizeof(key)) != 0) memset(key, 0x5a, sizeof(key));
  wr_siphash_key(key, &h->k0, &h->k1);
  h->nb = 64;
  h->b = wr_xcalloc(h->nb, sizeof(*h->b));
}

void wr__htab_free(wr__htab *h) {
  free(h->b);
  h->b = NULL;
  h->nb = h->n = 0;
}

static void grow(wr__htab *h) {
  size_t nb = h->nb * 2;
  wr__hent **b = wr_xcalloc(nb, sizeof(*b));
  for (size_t i = 0; i < h->nb; i++) {
    while (h->b[i]) {
      wr__hent *e = h->b[i];
      h->b[i] = e->next;
      e->next = b[e->hash & (nb - 1)];
      b[e->hash & (nb - 1)] = e;
    }
  }
  free(h->b);
  h->b = b;
  h->nb = nb;
}

void wr__htab_put(wr__htab *h, wr__hent *e, const void *key, size_t klen) {
  if (klen > WR__KEY_MAX) klen = WR__KEY_MAX;
  memcpy(e->key, key, klen);
  e->klen = klen;
  e->hash = wr_siphash24(h->k0, h->k1, e->key, klen);
  if (h->n + 1 > h->nb) grow(h);
  size_t i = e->hash & (h->nb - 1);
  e->next = h->b[i];
  h->b[i] = e;
  h->n++;
}

wr__hent *wr__htab_get(const wr__htab *h, const void *key, size_t klen) {
  if (!h->nb || klen > WR__KEY_MAX) return NULL;
  uint64_t hash = wr_siphash24(h->k0, h->k1, key, klen);
  for (wr__hent *e = h->b[hash & (h->nb - 1)]; e; e = e->next)
    if (e->hash == hash && e->klen == klen && memcmp(e->key, key, klen) == 0) return e;
  return NULL;
}

void wr__htab_del(wr__htab *h, wr__hent *e) {
  for (wr__hent **pp = &h->b[e->hash & (h->nb - 1)]; *pp; pp = &(*pp)->next) {
    if (*pp == e) {
      *pp = e->next;
      e->next = NULL;
      h->n--;
      return;
    }
  }
}

size_t wr__flow_key(uint8_t out[WR__KEY_MAX], int kind, const wr_ipaddr *src, uint16_t sport,
                    const wr_ipaddr *dst, uint16_t dport) {
  memset(out, 0, WR__KEY_MAX);
  out[0] = (uint8_t)kind;
  out[1] = src->version;
  out[2] = (uint8_t)(sport >> 8);
  out[3] = (uint8_t)sport;
  out[4] = (uint8_t)(dport >> 8);
  out[5] = (uint8_t)dport;
  memcpy(out + 6, src->b, 16);
  memcpy(out + 22, dst->b, 16);
  return 38;
}

/* ---- clients and flow bookkeeping ------------------------------------------------------- */

static size_t client_key(uint8_t out[WR__KEY_MAX], const wr_router_ingress *in,
                         const wr_ipaddr *src) {
  memset(out, 0, WR__KEY_MAX);
  memcpy(out, &in, sizeof(in));
  out[sizeof(in)] = src->version;
  memcpy(out + sizeof(in) + 1, src->b, 16);
  return sizeof(in) + 17;
}

static void lru_unlink(wr_router *r, wr__flow *f) {
  WR_DLIST_REMOVE(r->lru_head, r->lru_tail, f, prev, next);
}

static void lru_append(wr_router *r, wr__flow *f) {
  WR_DLIST_APPEND(r->lru_head, r->lru_tail, f, prev, next);
}

static void touch(wr_router *r, wr__flow *f) {
  f->last_ms = wr__router_now(r);
  if (r->lru_tail == f) return;
  lru_unlink(r, f);
  lru_append(r, f);
}

/* Creates a flow, or returns NULL (counted) when a cap says no. */
static wr__flow *flow_new(wr_router *r, wr_router_ingress *in, int kind, const wr_ipaddr *src,
                          uint16_t sport, const wr_ipaddr *dst, uint16_t dport,
                          const wr_router_target *t) {
  uint8_t ck[WR__KEY_MAX], fk[WR__KEY_MAX];
  size_t cklen = client_key(ck, in, src);
  wr__hent *ce = wr__htab_get(&r->clients, ck, cklen);
  wr__client *cl = (wr__client *)ce;
  if (r->nflows >= r->cfg.max_flows || (cl && cl->nflows >= r->cfg.max_flows_per_client)) {
    wr__router_drop(r, WR_ROUTER_DROP_FLOW_LIMIT);
    return NULL;
  }
  if (!cl) {
    cl = wr_xcalloc(1, sizeof(*cl));
    wr__htab_put(&r->clients, &cl->h, ck, cklen);
  }
  wr__flow *f = wr_xcalloc(1, sizeof(*f));
  f->kind = kind;
  f->in = in;
  f->client = cl;
  f->src = *src;
  f->dst = *dst;
  f->sport = sport;
  f->dport = dport;
  snprintf(f->conn_id, sizeof(f->conn_id), "%s", t->conn.conn_id);
  snprintf(f->tunnel_id, sizeof(f->tunnel_id), "%s", t->route.tunnel_id);
  size_t fklen = wr__flow_key(fk, kind, src, sport, dst, dport);
  wr__htab_put(&r->flows, &f->fwd, fk, fklen);
  cl->nflows++;
  r->nflows++;
  r->stats.flows[kind]++;
  r->stats.flows_total[kind]++;
  f->last_ms = wr__router_now(r);
  lru_append(r, f);
  return f;
}

static void queue_clear(wr__flow *f) {
  for (size_t i = 0; i < f->nqueue; i++) free(f->queue[i]);
  free(f->queue);
  free(f->qlen);
  f->queue = NULL;
  f->qlen = NULL;
  f->nqueue = 0;
}

static void unregister_session(wr_router *r, wr__flow *f, const char *why);
static void call_detach(wr__rpc_call *c);

/* Forgets the flow. A UDP session that was registered is unregistered
 * with |why| (NULL: not, e.g. when its connection is gone). */
static void flow_end(wr_router *r, wr__flow *f, const char *why) {
  /* v3 has no unregister message: the connector's idle timer ends it. */
  if (f->kind == WR_ROUTER_UDP && f->state == WR__UDP_READY && why && !f->v3)
    unregister_session(r, f, why);
  if (f->reg) call_detach(f->reg);
  f->reg = NULL;
  queue_clear(f);
  wr__htab_del(&r->flows, &f->fwd);
  if (f->kind == WR_ROUTER_UDP) wr__htab_del(&r->sessions, &f->sid);
  lru_unlink(r, f);
  if (--f->client->nflows == 0) {
    wr__htab_del(&r->clients, &f->client->h);
    free(f->client);
  }
  r->nflows--;
  r->stats.flows[f->kind]--;
  free(f);
}

/* One list in order of last use, two timeouts: walk the flows idle for
 * longer than the shorter timeout and end those past their own. */
void wr__flows_expire(wr_router *r, uint64_t now) {
  uint64_t shortest = r->cfg.udp_idle_ms < r->cfg.icmp_idle_ms ? r->cfg.udp_idle_ms
                                                               : r->cfg.icmp_idle_ms;
  for (wr__flow *f = r->lru_head, *next; f && now - f->last_ms >= shortest; f = next) {
    next = f->next;
    uint64_t idle = f->kind == WR_ROUTER_UDP ? r->cfg.udp_idle_ms : r->cfg.icmp_idle_ms;
    if (now - f->last_ms >= idle) flow_end(r, f, "session idle");
  }
}

/* The flow's connection, if it is still registered. */
static int flow_conn(wr_router *r, wr__flow *f, wr_tunnel_conn_info *info) {
  return wr_tunnel_server_find(r->cfg.ts, f->conn_id, info);
}

static int deliver(wr_router *r, wr__flow *f, const uint8_t *pkt, size_t len) {
  r->stats.packets_out[f->kind]++;
  r->stats.bytes_out[f->kind] += len;
  touch(r, f);
  return wr_router_output(r, f->in, pkt, len);
}

/* ---- ICMP ------------------------------------------------------------------------------ */

static int send_dgram(wr_router *r, wr_quic_conn *q, const wr_dgram *d) {
  uint8_t buf[WR_DGRAM_MAX_FRAME];
  int n = q ? wr_dgram_v2_encode(d, WR_DGRAM_MAX_FRAME, SIZE_MAX, buf, sizeof(buf))
            : WR_ERR_UNSUPPORTED; /* a connection without datagrams (HTTP/2) */
  if (n < 0 || wr_quic_datagram_send(q, buf, (size_t)n) != WR_OK) {
    wr__router_drop(r, WR_ROUTER_DROP_SEND);
    return n < 0 ? n : WR_ERR_IO;
  }
  r->stats.datagrams[0]++;
  return WR_OK;
}

static int send_v3(wr_router *r, wr_quic_conn *q, const wr_dgram_v3 *d) {
  uint8_t buf[WR_DGRAM_MAX_FRAME];
  int n = q ? wr_dgram_v3_encode(d, buf, sizeof(buf)) : WR_ERR_UNSUPPORTED;
  if (n < 0 || wr_quic_datagram_send(q, buf, (size_t)n) != WR_OK) {
    wr__router_drop(r, WR_ROUTER_DROP_SEND);
    return n < 0 ? n : WR_ERR_IO;
  }
  r->stats.datagrams[1]++;
  return WR_OK;
}

int wr__flow_icmp(wr_router *r, wr_router_ingress *in, const wr_ip_packet *ip,
                  const wr_icmp *icmp, const wr_router_target *t) {
  uint8_t key[WR__KEY_MAX];
  size_t klen = wr__flow_key(key, WR_ROUTER_ICMP, &ip->src, icmp->echo_id, &ip->dst, 0);
  wr__flow *f = (wr__flow *)wr__htab_get(&r->flows, key, klen);
  if (f && f->in != in) {
    /* Another ingress's client with the same address and echo id: the
     * replies could not tell them apart. */
    wr__router_drop(r, WR_ROUTER_DROP_FLOW_LIMIT);
    return WR_ERR_LIMIT;
  }
  if (!f && !(f = flow_new(r, in, WR_ROUTER_ICMP, &ip->src, icmp->echo_id, &ip->dst, 0, t)))
    return WR_ERR_LIMIT;
  wr_tunnel_conn_info info;
  if (flow_conn(r, f, &info) != WR_OK || strcmp(info.tunnel_id, t->route.tunnel_id) != 0) {
    /* Its connection went away (or the route moved): echo has no session,
     * any live connection of the tunnel will do. */
    info = t->conn;
    snprintf(f->conn_id, sizeof(f->conn_id), "%s", info.conn_id);
    snprintf(f->tunnel_id, sizeof(f->tunnel_id), "%s", t->route.tunnel_id);
  }
  touch(r, f);
  r->stats.packets_in[WR_ROUTER_ICMP]++;
  r->stats.bytes_in[WR_ROUTER_ICMP] += ip->raw_len;
  if (info.datagram_v3) {
    wr_dgram_v3 d3 = {.type = WR_DGRAM_V3_ICMP, .payload = ip->raw, .payload_len = ip->raw_len};
    return send_v3(r, info.quic, &d3);
  }
  wr_dgram d = {.type = WR_DGRAM_IP, .payload = ip->raw, .payload_len = ip->raw_len};
  return send_dgram(r, info.quic, &d);
}

/* The flow an ICMP message from a connector belongs to: an echo reply by
 * its (dst, src, id); an error by the packet it quotes (echo request or
 * UDP). */
static wr__flow *icmp_flow(wr_router *r, const wr_ip_packet *ip, const wr_icmp *icmp) {
  uint8_t key[WR__KEY_MAX];
  size_t klen;
  uint8_t reply = ip->version == 4 ? WR_ICMPV4_ECHO_REPLY : WR_ICMPV6_ECHO_REPLY;
  if (icmp->type == reply) {
    klen = wr__flow_key(key, WR_ROUTER_ICMP, &ip->dst, icmp->echo_id, &ip->src, 0);
    return (wr__flow *)wr__htab_get(&r->flows, key, klen);
  }
  if (icmp->body_len < 4) return NULL;
  wr_ip_packet q;
  if (wr_ip_decode(icmp->body + 4, icmp->body_len - 4, &q) != 0 || q.version != ip->version ||
      q.payload_len < 8)
    return NULL;
  uint16_t a = (uint16_t)(q.payload[0] << 8 | q.payload[1]);
  uint16_t b = (uint16_t)(q.payload[2] << 8 | q.payload[3]);
  uint16_t id = (uint16_t)(q.payload[4] << 8 | q.payload[5]);
  if (q.protocol == WR_IPPROTO_UDP)
    klen = wr__flow_key(key, WR_ROUTER_UDP, &q.src, a, &q.dst, b);
  else if ((q.protocol == WR_IPPROTO_ICMP || q.protocol == WR_IPPROTO_ICMPV6) &&
           wr_icmp_is_echo(q.version, q.payload[0]))
    klen = wr__flow_key(key, WR_ROUTER_ICMP, &q.src, id, &q.dst, 0);
  else
    return NULL;
  return (wr__flow *)wr__htab_get(&r->flows, key, klen);
}

static void datagram_ip(wr_router *r, const uint8_t *p, size_t len) {
  wr_ip_packet ip;
  wr_icmp icmp;
  if (wr_ip_icmp_decode(p, len, &ip, &icmp) != 0 || ip.truncated) {
    wr__router_drop(r, WR_ROUTER_DROP_DATAGRAM);
    return;
  }
  wr__flow *f = icmp_flow(r, &ip, &icmp);
  if (!f) {
    wr__router_drop(r, WR_ROUTER_DROP_DATAGRAM);
    return;
  }
  /* Errors about a UDP flow count as that flow's traffic. */
  deliver(r, f, ip.raw, ip.raw_len);
}

/* ---- UDP sessions: RPC streams ------------------------------------------------------------ */

/* One RPC stream the edge opened: registerUdpSession (for |flow|) or
 * unregisterUdpSession (detached). Shut down and freed once answered, or
 * when the stream dies. */
struct wr__rpc_call {
  wr__rpc_call *prev, *next; /* in r->calls */
  wr_router *r;
  wr__flow *flow;            /* NULL: nobody waits for the answer */
  wr_tunnel_stream *st;
  wr_rpc_session *rpc;
  int done;
};

static void call_unlink(wr__rpc_call *c) {
  wr_router *r = c->r;
  WR_LIST_REMOVE(r->calls, c);
}

/* The end of a call that still has its stream: the session says goodbye as
 * Go's does (Release + Abort), then the stream ends normally. */
static void call_finish(wr__rpc_call *c) {
  call_unlink(c);
  if (c->flow && c->flow->reg == c) c->flow->reg = NULL;
  if (c->rpc) wr_rpc_session_shutdown(c->rpc);
  wr_rpc_session_free(c->rpc);
  if (c->st) wr_tunnel_stream_abandon(c->st, -1);
  free(c);
}

static void call_detach(wr__rpc_call *c) { c->flow = NULL; }

static int call_write(void *user, const uint8_t *data, size_t len) {
  wr__rpc_call *c = user;
  size_t acc = 0;
  if (!c->st) return WR_ERR_INVAL;
  int rv = wr_tunnel_stream_write(c->st, data, len, 0, &acc);
  /* RPC messages are a few hundred bytes: a full queue means a stuck peer. */
  return rv == WR_AGAIN ? WR_ERR_LIMIT : rv;
}

static void flow_flush(wr_router *r, wr__flow *f);

/* The registration's answer: |err| NULL for success. */
static void registered(wr__rpc_call *c, const char *err, size_t errlen) {
  wr__flow *f = c->flow;
  c->done = 1;
  if (!f) return;
  f->reg = NULL;
  if (!err) {
    f->state = WR__UDP_READY;
    flow_flush(c->r, f);
    return;
  }
  char sid[WR_UUID_STR_LEN + 1];
  wr_uuid_format(&f->session, sid);
  wr_info("router: UDP session %s through tunnel %s failed: %.*s", sid, f->tunnel_id,
          (int)(errlen > 200 ? 200 : errlen), err);
  /* The flow stays (and drops) until it idles out, so that a client
   * retrying does not open an RPC stream per packet. */
  f->state = WR__UDP_FAILED;
  wr__router_drop(c->r, WR_ROUTER_DROP_SESSION);
  queue_clear(f);
}

static void on_register_return(wr_rpc_session *s, void *user, uint32_t q,
                               const wr_rpc_return *ret) {
  wr__rpc_call *c = user;
  wr_tunnelrpc_udp_register_results res;
  if (ret->which != WR_RPC_RET_RESULTS) {
    const char *why = ret->exception.reason ? ret->exception.reason : "exception";
    registered(c, why, ret->exception.reason ? ret->exception.reason_len : strlen(why));
    return;
  }
  if (wr_tunnelrpc_udp_register_results_decode(&ret->results, &res) != 0) {
    registered(c, "undecodable answer", 18);
    return;
  }
  registered(c, res.err_len ? res.err : NULL, res.err_len);
}

static void on_unregister_return(wr_rpc_session *s, void *user, uint32_t q,
                                 const wr_rpc_return *ret) {
  wr__rpc_call *c = user;
  c->done = 1;
}

static int call_on_data(void *user, const uint8_t *data, size_t len, int fin) {
  wr__rpc_call *c = user;
  int rv = wr_rpc_session_feed(c->rpc, data, len);
  wr_tunnel_stream_consume(c->st, len);
  if (rv == WR_OK && fin) wr_rpc_session_eof(c->rpc);
  if (c->done || rv != WR_OK || wr_rpc_session_closed(c->rpc)) {
    if (!c->done && c->flow) registered(c, "RPC stream failed", 17);
    call_finish(c);
  }
  return 0;
}

static void call_on_close(void *user) {
  wr__rpc_call *c = user;
  c->st = NULL; /* freed right after this */
  if (!c->done && c->flow) registered(c, "RPC stream closed", 17);
  c->done = 1;
  call_finish(c);
}

static void call_on_reset(void *user, uint64_t code) {
  (void)user;
  (void)code; /* on_close follows */
}

static const wr_tunnel_stream_callbacks call_cbs = {
    .on_data = call_on_data, .on_reset = call_on_reset, .on_close = call_on_close};

typedef struct reg_args {
  const wr__flow *f;
  uint8_t ip[16];
  size_t iplen;
  const char *msg;
} reg_args;

static int fill_register(void *arg, wr_capnp_bstruct *params) {
  reg_args *a = arg;
  wr_tunnelrpc_udp_register_params p = {.session_id = a->f->session.b,
                                        .session_id_len = 16,
                                        .dst_ip = a->ip,
                                        .dst_ip_len = a->iplen,
                                        .dst_port = a->f->dport,
                                        .close_after_idle_ns = UDP_IDLE_HINT_NS,
                                        .trace_context = "",
                                        .trace_context_len = 0};
  return wr_tunnelrpc_udp_register_params_encode(params, &p);
}

static int fill_unregister(void *arg, wr_capnp_bstruct *params) {
  reg_args *a = arg;
  wr_tunnelrpc_udp_unregister_params p = {.session_id = a->f->session.b, .session_id_len = 16,
                                          .message = a->msg, .message_len = strlen(a->msg)};
  return wr_tunnelrpc_udp_unregister_params_encode(params, &p);
}

/* Opens an RPC stream on the flow's connection and calls |method|. */
static wr__rpc_call *call_start(wr_router *r, wr__flow *f, uint16_t method, const char *msg) {
  wr__rpc_call *c = wr_xcalloc(1, sizeof(*c));
  c->r = r;
  if (wr_tunnel_server_open_stream_on(r->cfg.ts, f->conn_id, &call_cbs, c, &c->st) != WR_OK) {
    free(c);
    return NULL;
  }
  WR_LIST_INSERT_HEAD(r->calls, c);
  uint8_t pre[WR_PREAMBLE_RPC_LEN];
  size_t acc;
  wr_preamble_write(WR_PREAMBLE_RPC, pre, sizeof(pre));
  wr_rpc_session_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.max_message = 64 * 1024;
  cfg.write = call_write;
  cfg.user = c;
  reg_args a = {.f = f, .msg = msg ? msg : ""};
  /* Go's net.IP is 16 bytes even for IPv4 (IPv4-mapped): so is the call. */
  memset(a.ip, 0, sizeof(a.ip));
  if (f->dst.version == 4) {
    a.ip[10] = a.ip[11] = 0xff;
    memcpy(a.ip + 12, f->dst.b, 4);
  } else {
    memcpy(a.ip, f->dst.b, 16);
  }
  a.iplen = 16;
  int rv = wr_tunnel_stream_write(c->st, pre, sizeof(pre), 0, &acc);
  if (rv == WR_OK) rv = wr_rpc_session_new(&cfg, &c->rpc);
  if (rv == WR_OK)
    rv = wr_rpc_session_call(c->rpc, WR_TUNNELRPC_SESSION_MANAGER, method,
                             method == WR_TUNNELRPC_REGISTER_UDP_SESSION ? fill_register
                                                                         : fill_unregister,
                             &a,
                             method == WR_TUNNELRPC_REGISTER_UDP_SESSION ? on_register_return
                                                                         : on_unregister_return,
                             c, NULL);
  if (rv != WR_OK) {
    wr_rpc_session_free(c->rpc);
    c->rpc = NULL;
    call_finish(c);
    return NULL;
  }
  return c;
}

static void unregister_session(wr_router *r, wr__flow *f, const char *why) {
  wr__rpc_call *c = call_start(r, f, WR_TUNNELRPC_UNREGISTER_UDP_SESSION, why);
  if (c) c->flow = NULL;
}

/* ---- UDP flows ---------------------------------------------------------------------------- */

static int send_udp(wr_router *r, wr__flow *f, const uint8_t *payload, size_t len) {
  wr_tunnel_conn_info info;
  if (flow_conn(r, f, &info) != WR_OK) {
    /* The session lived on that connection. */
    wr__router_drop(r, WR_ROUTER_DROP_SESSION);
    return WR_ERR_IO;
  }
  r->stats.packets_in[WR_ROUTER_UDP]++;
  r->stats.bytes_in[WR_ROUTER_UDP] += len;
  if (f->v3) {
    wr_dgram_v3 d3 = {.type = WR_DGRAM_V3_PAYLOAD, .payload = payload, .payload_len = len};
    memcpy(d3.request_id, f->session.b, 16);
    return send_v3(r, info.quic, &d3);
  }
  wr_dgram d = {.type = WR_DGRAM_UDP, .payload = payload, .payload_len = len,
                .session_id = f->session};
  return send_dgram(r, info.quic, &d);
}

static void flow_flush(wr_router *r, wr__flow *f) {
  for (size_t i = 0; i < f->nqueue; i++) send_udp(r, f, f->queue[i], f->qlen[i]);
  queue_clear(f);
}

/* v3: the registration datagram for |f| on its connection. */
static int v3_register(wr_router *r, wr__flow *f) {
  wr_tunnel_conn_info info;
  if (flow_conn(r, f, &info) != WR_OK) return WR_ERR_IO;
  uint64_t idle_s = r->cfg.udp_idle_ms / 1000;
  wr_dgram_v3 d = {.type = WR_DGRAM_V3_REGISTER,
                   .ipv6 = f->dst.version == 6,
                   .dst_port = f->dport,
                   .idle_seconds = (uint16_t)(idle_s > 0xffff ? 0xffff : idle_s ? idle_s : 1)};
  memcpy(d.request_id, f->session.b, 16);
  memcpy(d.dst_addr, f->dst.b, f->dst.version == 6 ? 16 : 4);
  f->reg_sent_ms = wr__router_now(r);
  return send_v3(r, info.quic, &d);
}

static wr__flow *udp_flow_new(wr_router *r, wr_router_ingress *in, const wr_ip_packet *ip,
                              const wr_udp *u, const wr_router_target *t) {
  wr__flow *f = flow_new(r, in, WR_ROUTER_UDP, &ip->src, u->sport, &ip->dst, u->dport, t);
  if (!f) return NULL;
  if (wr_uuid_random(&f->session) != 0) {
    flow_end(r, f, NULL);
    return NULL;
  }
  wr__htab_put(&r->sessions, &f->sid, f->session.b, 16);
  f->queue = wr_xcalloc(r->cfg.udp_queue, sizeof(*f->queue));
  f->qlen = wr_xcalloc(r->cfg.udp_queue, sizeof(*f->qlen));
  f->state = WR__UDP_REGISTERING;
  f->v3 = t->conn.datagram_v3;
  if (f->v3) {
    if (v3_register(r, f) == WR_OK) return f;
    wr__router_drop(r, WR_ROUTER_DROP_SESSION);
    flow_end(r, f, NULL);
    return NULL;
  }
  f->reg = call_start(r, f, WR_TUNNELRPC_REGISTER_UDP_SESSION, NULL);
  if (!f->reg) {
    wr__router_drop(r, WR_ROUTER_DROP_SESSION);
    flow_end(r, f, NULL);
    return NULL;
  }
  f->reg->flow = f;
  return f;
}

int wr__flow_udp(wr_router *r, wr_router_ingress *in, const wr_ip_packet *ip, const uint8_t *pkt,
                 size_t len, const wr_router_target *t) {
  wr_udp u;
  if (wr_udp_decode(ip, &u) != 0) {
    wr__router_drop(r, WR_ROUTER_DROP_MALFORMED);
    return WR_ERR_PROTO;
  }
  uint8_t key[WR__KEY_MAX];
  size_t klen = wr__flow_key(key, WR_ROUTER_UDP, &ip->src, u.sport, &ip->dst, u.dport);
  wr__flow *f = (wr__flow *)wr__htab_get(&r->flows, key, klen);
  if (f && f->in != in) {
    wr__router_drop(r, WR_ROUTER_DROP_FLOW_LIMIT);
    return WR_ERR_LIMIT;
  }
  if (f && (f->state == WR__UDP_READY || (f->v3 && f->state == WR__UDP_REGISTERING)) &&
      flow_conn(r, f, &(wr_tunnel_conn_info){0}) != WR_OK) {
    /* Its connection is gone, and the session with it: start over. */
    flow_end(r, f, NULL);
    f = NULL;
  }
  if (!f && !(f = udp_flow_new(r, in, ip, &u, t))) return WR_ERR_LIMIT;
  touch(r, f);
  if (f->state == WR__UDP_READY) return send_udp(r, f, u.payload, u.payload_len);
  if (f->v3 && f->state == WR__UDP_REGISTERING &&
      wr__router_now(r) - f->reg_sent_ms >= V3_REG_RETRY_MS)
    v3_register(r, f); /* the registration or its answer was lost */
  if (f->state == WR__UDP_FAILED || f->nqueue >= r->cfg.udp_queue) {
    wr__router_drop(r, f->state == WR__UDP_FAILED ? WR_ROUTER_DROP_SESSION
                                                  : WR_ROUTER_DROP_QUEUE_FULL);
    return WR_ERR_LIMIT;
  }
  f->queue[f->nqueue] = wr_xmalloc(u.payload_len ? u.payload_len : 1);
  if (u.payload_len) memcpy(f->queue[f->nqueue], u.payload, u.payload_len);
  f->qlen[f->nqueue++] = u.payload_len;
  return WR_OK;
}

/* The UDP flow of session / request id |id| on |conn_id|, or NULL. */
static wr__flow *session_flow(wr_router *r, const char *conn_id, const uint8_t *id) {
  wr__hent *e = wr__htab_get(&r->sessions, id, 16);
  wr__flow *f = e ? (wr__flow *)((char *)e - offsetof(wr__flow, sid)) : NULL;
  /* A session lives on the connection that registered it. */
  return f && strcmp(f->conn_id, conn_id) == 0 ? f : NULL;
}

static void datagram_udp(wr_router *r, const char *conn_id, const uint8_t *id,
                         const uint8_t *payload, size_t len) {
  wr__flow *f = session_flow(r, conn_id, id);
  if (!f || f->state != WR__UDP_READY) {
    wr__router_drop(r, WR_ROUTER_DROP_DATAGRAM);
    return;
  }
  uint8_t pkt[WR_IPV6_HEADER_LEN + WR_UDP_HEADER_LEN + UDP_MAX_PAYLOAD];
  int n = wr_udp_build(&f->dst, f->dport, &f->src, f->sport, WR_UDP_DEFAULT_TTL, payload, len,
                       pkt, sizeof(pkt));
  if (n < 0) {
    wr__router_drop(r, WR_ROUTER_DROP_DATAGRAM);
    return;
  }
  deliver(r, f, pkt, (size_t)n);
}

/* v3: a refused registration. The client hears about it (ICMP
 * unreachable quoting its first queued packet) when the refusal is not a
 * transient shortage on the connector's side. */
static void v3_refused(wr_router *r, wr__flow *f, const wr_dgram_v3 *d) {
  char sid[WR_UUID_STR_LEN + 1];
  wr_uuid_format(&f->session, sid);
  wr_info("router: UDP flow %s through tunnel %s refused by the connector (code %u)%s%.*s", sid,
          f->tunnel_id, d->resp_code, d->err_msg_len ? ": " : "",
          (int)(d->err_msg_len > 200 ? 200 : d->err_msg_len),
          d->err_msg ? (const char *)d->err_msg : "");
  f->state = WR__UDP_FAILED;
  int code = d->resp_code == WR_DGRAM_V3_RESP_DEST_UNREACHABLE  ? WR_ROUTER_UNREACH_HOST
             : d->resp_code == WR_DGRAM_V3_RESP_ERROR_WITH_MSG ? WR_ROUTER_UNREACH_ADMIN
                                                               : -1;
  uint8_t pkt[WR_IPV6_HEADER_LEN + WR_UDP_HEADER_LEN + UDP_MAX_PAYLOAD];
  int n = -1;
  if (code >= 0 && f->nqueue)
    n = wr_udp_build(&f->src, f->sport, &f->dst, f->dport, WR_UDP_DEFAULT_TTL, f->queue[0],
                     f->qlen[0], pkt, sizeof(pkt));
  if (n > 0)
    wr_router_unreachable(r, f->in, pkt, (size_t)n, (enum wr_router_unreach)code, "session");
  else
    wr__router_drop(r, WR_ROUTER_DROP_SESSION);
  queue_clear(f);
}

static void datagram_v3(wr_router *r, const char *conn_id, const uint8_t *data, size_t len) {
  wr_dgram_v3 d;
  if (wr_dgram_v3_decode(data, len, &d) != 0) {
    wr__router_drop(r, WR_ROUTER_DROP_DATAGRAM);
    return;
  }
  r->stats.datagrams[1]++;
  if (d.type == WR_DGRAM_V3_PAYLOAD) {
    datagram_udp(r, conn_id, d.request_id, d.payload, d.payload_len);
  } else if (d.type == WR_DGRAM_V3_ICMP) {
    datagram_ip(r, d.payload, d.payload_len);
  } else if (d.type == WR_DGRAM_V3_RESPONSE) {
    wr__flow *f = session_flow(r, conn_id, d.request_id);
    /* An answer to a registration sent again, or for a flow gone: nothing to do. */
    if (!f || f->state != WR__UDP_REGISTERING) return;
    if (d.resp_code != WR_DGRAM_V3_RESP_OK) {
      v3_refused(r, f, &d);
      return;
    }
    f->state = WR__UDP_READY;
    flow_flush(r, f);
  } else {
    wr__router_drop(r, WR_ROUTER_DROP_DATAGRAM); /* a registration: edges send those */
  }
}

void wr__flows_datagram(wr_router *r, const char *conn_id, int version, const uint8_t *data,
                        size_t len) {
  wr_dgram d;
  if (version == 3) {
    datagram_v3(r, conn_id, data, len);
    return;
  }
  if (wr_dgram_v2_decode(data, len, &d) != 0) {
    wr__router_drop(r, WR_ROUTER_DROP_DATAGRAM);
    return;
  }
  r->stats.datagrams[0]++;
  if (d.type == WR_DGRAM_UDP)
    datagram_udp(r, conn_id, d.session_id.b, d.payload, d.payload_len);
  else if (d.type == WR_DGRAM_IP || d.type == WR_DGRAM_IP_TRACED)
    datagram_ip(r, d.payload, d.payload_len);
  /* WR_DGRAM_SPANS: tracing the edge does not ask for; ignored. */
}

void wr__flows_end_all(wr_router *r, wr_router_ingress *in) {
  for (wr__flow *f = r->lru_head, *next; f; f = next) {
    next = f->next;
    if (!in || f->in == in) flow_end(r, f, in ? "client gone" : NULL);
  }
  if (in) return;
  while (r->calls) {
    wr__rpc_call *c = r->calls;
    c->flow = NULL;
    call_finish(c);
  }
}
