/* The connector's ICMP proxy; see icmp_proxy.h for what it does and how
 * that follows cloudflared 2023.7.3. */
#include "connector/icmp_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/siphash.h"

/* linux/icmp.h's raw-socket filter; that header clashes with net/if.h. */
#ifndef ICMP_FILTER
#define ICMP_FILTER 1
#endif
struct raw_icmp_filter {
  uint32_t data; /* bit n set: drop ICMP type n */
};

#define NBUCKETS 1024           /* flow hash buckets (chained) */
#define READ_MTU 1500           /* cloudflared reads replies into 1500 bytes */
#define READS_PER_WAKEUP 64     /* bounded work per readable socket */
#define PKT_MAX 65536           /* largest IP packet we handle */
#define OUT_CAP (PKT_MAX + 64)  /* a reply: IP header + the message */

/* How a family's sockets are opened (decided once, at start). */
enum sock_kind { KIND_NONE = 0, KIND_DGRAM, KIND_RAW };

typedef struct flow {
  wr_icmp_flow_key key;
  uint16_t assigned_id;  /* the echo id on the wire (the kernel's, or ours for raw) */
  int fd;
  enum sock_kind kind;
  int closing;           /* removed from the table; memory freed in the close callback */
  uv_poll_t poll;
  wr_icmp_reply_fn fn;
  void *reply_user;
  uint64_t last_active;  /* uv_now of the last request or reply */
  struct flow *hnext;    /* hash chain */
  struct flow *prev, *next; /* all flows */
  wr_icmp_proxy *p;
} flow;

struct wr_icmp_proxy {
  uv_loop_t *loop;
  wr_ipaddr src[2];      /* [0] IPv4, [1] IPv6 */
  char zone6[IF_NAMESIZE];
  unsigned scope6;       /* if_nametoindex(zone6) or 0 */
  enum sock_kind kind[2];
  unsigned max_flows;
  uint64_t idle_ms;
  uint64_t k0, k1;       /* siphash key for the flow table */
  flow *buckets[NBUCKETS];
  flow *all;
  unsigned nflows;
  uint16_t raw_next_id[2];
  uv_timer_t idle_timer;
  wr_icmp_proxy_stats st;
  uint8_t out[OUT_CAP];
  uint8_t in[READ_MTU];
};

static int fam_index(uint8_t version) { return version == 6 ? 1 : 0; }

/* ---- pure parts ---------------------------------------------------------- */

void wr_icmp_flow_key_make(const wr_ip_packet *ip, const wr_icmp *icmp, wr_icmp_flow_key *key) {
  memset(key, 0, sizeof(*key));
  key->src = ip->src;
  key->dst = ip->dst;
  key->echo_id = icmp->echo_id;
}

int wr_icmp_flow_key_equal(const wr_icmp_flow_key *a, const wr_icmp_flow_key *b) {
  return a->echo_id == b->echo_id && wr_ipaddr_equal(&a->src, &b->src) &&
         wr_ipaddr_equal(&a->dst, &b->dst);
}

int wr_icmp_proxy_build_reply(const wr_icmp_flow_key *key, const wr_ipaddr *from,
                              const uint8_t *msg, size_t len, uint8_t *out, size_t cap) {
  wr_icmp m;
  if (from->version != key->src.version) return WR_ERR_PROTO;
  int rv = wr_icmp_decode_msg(from->version, msg, len, &m);
  if (rv) return rv;
  uint8_t want = from->version == 4 ? WR_ICMPV4_ECHO_REPLY : WR_ICMPV6_ECHO_REPLY;
  if (m.type != want) return WR_ERR_PROTO;
  return wr_icmp_build_echo_reply(from, &key->src, key->echo_id, m.echo_seq, m.data, m.data_len,
                                  out, cap);
}

/* ---- source addresses ---------------------------------------------------- */

static void sa_to_ipaddr(const struct sockaddr *sa, wr_ipaddr *out) {
  memset(out, 0, sizeof(*out));
  if (sa->sa_family == AF_INET) {
    out->version = 4;
    memcpy(out->b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    out->version = 6;
    memcpy(out->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
  }
}

/* The address the kernel picks for a UDP "connect" to 192.168.0.1:53, as
 * cloudflared's findLocalAddr; 0.0.0.0 when there is no route. */
int wr_icmp_proxy_detect_src4(wr_ipaddr *out) {
  memset(out, 0, sizeof(*out));
  out->version = 4;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return WR_OK;
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(53)};
  inet_pton(AF_INET, "192.168.0.1", &dst.sin_addr);
  struct sockaddr_storage local;
  socklen_t sl = sizeof(local);
  if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == 0 &&
      getsockname(fd, (struct sockaddr *)&local, &sl) == 0 && local.ss_family == AF_INET)
    sa_to_ipaddr((struct sockaddr *)&local, out);
  close(fd);
  return WR_OK;
}

/* The first address of |family| on interface |name| in getifaddrs order
 * (the kernel's), or NULL. With |match| set, instead returns the entry
 * equal to |match| (any interface) when |name| is NULL. */
static const struct ifaddrs *ifa_find(const struct ifaddrs *list, const char *name, int family,
                                      const wr_ipaddr *match) {
  for (const struct ifaddrs *a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != family) continue;
    if (name && strcmp(a->ifa_name, name) != 0) continue;
    if (match) {
      wr_ipaddr x;
      sa_to_ipaddr(a->ifa_addr, &x);
      if (!wr_ipaddr_equal(&x, match)) continue;
    }
    return a;
  }
  return NULL;
}

static void set_zone(const char *name, char *zone, size_t zone_cap) {
  if (zone_cap == 0) return;
  size_t n = strlen(name);
  if (n >= zone_cap) n = zone_cap - 1;
  memcpy(zone, name, n);
  zone[n] = 0;
}

/* cloudflared's determineICMPv6Src: interfaces in index order; the one
 * holding |src4| wins with its first IPv6 address, else the first
 * interface with any IPv6 address, else ::. The zone is that interface. */
int wr_icmp_proxy_detect_src6(const wr_ipaddr *src4, wr_ipaddr *out, char *zone,
                              size_t zone_cap) {
  memset(out, 0, sizeof(*out));
  out->version = 6;
  if (zone_cap) zone[0] = 0;
  struct ifaddrs *list = NULL;
  struct if_nameindex *ifs = if_nameindex();
  if (!ifs || getifaddrs(&list) != 0) goto out;
  const struct ifaddrs *holder = src4 ? ifa_find(list, NULL, AF_INET, src4) : NULL;
  const struct ifaddrs *pick = holder ? ifa_find(list, holder->ifa_name, AF_INET6, NULL) : NULL;
  for (struct if_nameindex *i = ifs; !pick && i->if_index; i++)
    pick = ifa_find(list, i->if_name, AF_INET6, NULL);
  if (pick) {
    sa_to_ipaddr(pick->ifa_addr, out);
    set_zone(pick->ifa_name, zone, zone_cap);
  }
out:
  if (list) freeifaddrs(list);
  if (ifs) if_freenameindex(ifs);
  return WR_OK;
}

/* --icmpv4-src / --icmpv6-src ("addr%zone" for IPv6), or auto-detected. */
static int resolve_sources(wr_icmp_proxy *p, const wr_icmp_proxy_config *cfg) {
  if (cfg->src4 && *cfg->src4) {
    if (wr_ipaddr_parse(cfg->src4, &p->src[0]) || p->src[0].version != 4) return WR_ERR_INVAL;
  } else {
    wr_icmp_proxy_detect_src4(&p->src[0]);
  }
  if (cfg->src6 && *cfg->src6) {
    char a[64];
    const char *pct = strchr(cfg->src6, '%');
    size_t n = pct ? (size_t)(pct - cfg->src6) : strlen(cfg->src6);
    if (n >= sizeof(a)) return WR_ERR_INVAL;
    memcpy(a, cfg->src6, n);
    a[n] = 0;
    if (wr_ipaddr_parse(a, &p->src[1]) || p->src[1].version != 6) return WR_ERR_INVAL;
    if (pct) set_zone(pct + 1, p->zone6, sizeof(p->zone6));
  } else {
    wr_icmp_proxy_detect_src6(&p->src[0], &p->src[1], p->zone6, sizeof(p->zone6));
  }
  p->scope6 = p->zone6[0] ? if_nametoindex(p->zone6) : 0;
  return WR_OK;
}

/* ---- sockets -------------------------------------------------------------- */

static socklen_t make_sa(const wr_ipaddr *a, unsigned scope, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (a->version == 4) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    memcpy(&s4->sin_addr, a->b, 4);
    return sizeof(*s4);
  }
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
  s6->sin6_family = AF_INET6;
  memcpy(&s6->sin6_addr, a->b, 16);
  s6->sin6_scope_id = scope;
  return sizeof(*s6);
}

/* Raw sockets see every ICMP message of the host: let only echo replies in. */
static void raw_filter(int fd, uint8_t version) {
  if (version == 4) {
    struct raw_icmp_filter f = {.data = ~(1u << WR_ICMPV4_ECHO_REPLY)};
    (void)setsockopt(fd, SOL_RAW, ICMP_FILTER, &f, sizeof(f));
  } else {
    struct icmp6_filter f;
    ICMP6_FILTER_SETBLOCKALL(&f);
    ICMP6_FILTER_SETPASS(WR_ICMPV6_ECHO_REPLY, &f);
    (void)setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof(f));
  }
}

/* Opens a socket of |kind| for IP |version| bound to the proxy's source.
 * For a ping socket the kernel assigns the echo id (the bound "port");
 * returns it in *port. Returns the fd or -1 (errno set). */
static int open_sock(const wr_icmp_proxy *p, uint8_t version, enum sock_kind kind,
                     uint16_t *port) {
  int v6 = version == 6;
  int type = (kind == KIND_RAW ? SOCK_RAW : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
  int fd = socket(v6 ? AF_INET6 : AF_INET, type, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
  if (fd < 0) return -1;
  struct sockaddr_storage ss;
  socklen_t sl = make_sa(&p->src[v6], v6 ? p->scope6 : 0, &ss);
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0) goto fail;
  *port = 0;
  if (kind == KIND_RAW) {
    raw_filter(fd, version);
    return fd;
  }
  sl = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) goto fail;
  *port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
  return fd;
fail:;
  int e = errno;
  close(fd);
  errno = e;
  return -1;
}

/* cloudflared's testPermission: can a socket for |version| be opened? Ping
 * sockets first (ping_group_range), then raw sockets (CAP_NET_RAW). */
static enum sock_kind probe(const wr_icmp_proxy *p, uint8_t version, wr_icmp_sock_mode mode) {
  static const enum sock_kind order[3][2] = {
      {KIND_DGRAM, KIND_RAW}, {KIND_DGRAM, KIND_NONE}, {KIND_RAW, KIND_NONE}};
  char a[48];
  wr_ipaddr_format(&p->src[fam_index(version)], a, sizeof(a));
  for (int i = 0; i < 2; i++) {
    enum sock_kind k = order[mode][i];
    if (k == KIND_NONE) break;
    uint16_t port;
    int fd = open_sock(p, version, k, &port);
    if (fd >= 0) {
      close(fd);
      wr_debug("ICMPv%s proxy uses %s sockets bound to %s", version == 4 ? "4" : "6",
               k == KIND_RAW ? "raw" : "ping", a);
      return k;
    }
    wr_debug("cannot open an ICMPv%s %s socket on %s: %s", version == 4 ? "4" : "6",
             k == KIND_RAW ? "raw" : "ping", a, strerror(errno));
  }
  return KIND_NONE;
}

/* ---- the flow table -------------------------------------------------------- */

static size_t key_bucket(const wr_icmp_proxy *p, const wr_icmp_flow_key *k) {
  uint8_t b[35];
  b[0] = k->src.version;
  memcpy(b + 1, k->src.b, 16);
  memcpy(b + 17, k->dst.b, 16);
  b[33] = (uint8_t)(k->echo_id >> 8);
  b[34] = (uint8_t)k->echo_id;
  return (size_t)(wr_siphash24(p->k0, p->k1, b, sizeof(b)) & (NBUCKETS - 1));
}

static flow *flow_find(const wr_icmp_proxy *p, const wr_icmp_flow_key *k) {
  for (flow *f = p->buckets[key_bucket(p, k)]; f; f = f->hnext)
    if (wr_icmp_flow_key_equal(&f->key, k)) return f;
  return NULL;
}

static void flow_freed(uv_handle_t *h) {
  flow *f = h->data;
  close(f->fd);
  free(f);
}

static void flow_close(wr_icmp_proxy *p, flow *f) {
  flow **pp = &p->buckets[key_bucket(p, &f->key)];
  while (*pp != f) pp = &(*pp)->hnext;
  *pp = f->hnext;
  WR_LIST_REMOVE(p->all, f);
  p->nflows--;
  p->st.flows_closed++;
  f->closing = 1;
  f->p = NULL;
  uv_poll_stop(&f->poll);
  uv_close((uv_handle_t *)&f->poll, flow_freed);
}

/* An echo id for a raw-socket flow: one no other raw flow of the family uses
 * (the kernel does this for ping sockets). */
static uint16_t raw_pick_id(wr_icmp_proxy *p, uint8_t version) {
  for (unsigned tries = 0; tries < 65536; tries++) {
    uint16_t id = p->raw_next_id[fam_index(version)]++;
    int used = 0;
    for (flow *f = p->all; f && !used; f = f->next)
      used = f->kind == KIND_RAW && f->key.dst.version == version && f->assigned_id == id;
    if (!used) return id;
  }
  return 0; /* unreachable: the flow cap is far below 65536 */
}

/* The bare ICMP message read from |f|'s socket, or NULL if it is not for
 * this flow (raw sockets see every echo reply of the host). */
static const uint8_t *read_msg(flow *f, const uint8_t *buf, size_t n, size_t *mlen) {
  if (f->kind != KIND_RAW) {
    *mlen = n;
    return buf;
  }
  size_t off = 0;
  if (f->key.dst.version == 4) { /* raw IPv4 sockets deliver the IP header */
    if (n < WR_IPV4_MIN_HEADER_LEN) return NULL;
    off = (size_t)(buf[0] & 0x0f) * 4;
  }
  if (n < off + WR_ICMP_HEADER_LEN) return NULL;
  if ((uint16_t)((buf[off + 4] << 8) | buf[off + 5]) != f->assigned_id) return NULL;
  *mlen = n - off;
  return buf + off;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  flow *f = h->data;
  wr_icmp_proxy *p = f->p;
  if (!p || status < 0 || !(events & UV_READABLE)) return;
  for (int i = 0; i < READS_PER_WAKEUP && !f->closing; i++) {
    struct sockaddr_storage from;
    socklen_t fl = sizeof(from);
    ssize_t n = recvfrom(f->fd, p->in, sizeof(p->in), 0, (struct sockaddr *)&from, &fl);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        wr_debug("ICMP flow read failed: %s", strerror(errno));
      return;
    }
    wr_ipaddr src;
    sa_to_ipaddr((struct sockaddr *)&from, &src);
    size_t mlen;
    const uint8_t *msg = read_msg(f, p->in, (size_t)n, &mlen);
    /* A raw socket sees every echo reply of the host: only the pinged host's
     * count (a ping socket gets only its own, from wherever they come). */
    if (f->kind == KIND_RAW && !wr_ipaddr_equal(&src, &f->key.dst)) msg = NULL;
    int len = msg ? wr_icmp_proxy_build_reply(&f->key, &src, msg, mlen, p->out, sizeof(p->out))
                  : WR_ERR_PROTO;
    if (len < 0) {
      p->st.reply_dropped++;
      continue;
    }
    f->last_active = uv_now(p->loop);
    p->st.replies++;
    f->fn(f->reply_user, p->out, (size_t)len);
    /* fn may have forgotten this reply_user (f->closing) or freed nothing
     * else: f's memory lives until its close callback. */
  }
}

static int flow_open(wr_icmp_proxy *p, const wr_icmp_flow_key *k, flow **out) {
  uint8_t version = k->dst.version;
  enum sock_kind kind = p->kind[fam_index(version)];
  flow *f = calloc(1, sizeof(*f));
  if (!f) return WR_ERR_NOMEM;
  uint16_t port;
  f->fd = open_sock(p, version, kind, &port);
  if (f->fd < 0) {
    wr_debug("failed to open ICMP socket: %s", strerror(errno));
    free(f);
    return WR_ERR_IO;
  }
  f->assigned_id = kind == KIND_RAW ? raw_pick_id(p, version) : port;
  f->kind = kind;
  f->key = *k;
  f->p = p;
  if (uv_poll_init(p->loop, &f->poll, f->fd) != 0) {
    close(f->fd);
    free(f);
    return WR_ERR_IO;
  }
  f->poll.data = f;
  uv_poll_start(&f->poll, UV_READABLE, on_readable);
  uv_unref((uv_handle_t *)&f->poll); /* flows never keep the loop alive */
  size_t b = key_bucket(p, k);
  f->hnext = p->buckets[b];
  p->buckets[b] = f;
  WR_LIST_INSERT_HEAD(p->all, f);
  p->nflows++;
  p->st.flows_opened++;
  *out = f;
  return WR_OK;
}

/* cloudflared's funnel cleanup: every idle period, close flows without a
 * request or reply for longer than that. */
static void on_idle_tick(uv_timer_t *t) {
  wr_icmp_proxy *p = t->data;
  uint64_t now = uv_now(p->loop);
  flow *next;
  for (flow *f = p->all; f; f = next) {
    next = f->next;
    if (now - f->last_active >= p->idle_ms) flow_close(p, f);
  }
}

/* ---- requests -------------------------------------------------------------- */

static int send_echo(wr_icmp_proxy *p, flow *f, const wr_icmp_action *act) {
  uint8_t version = f->key.dst.version;
  uint8_t type = version == 4 ? WR_ICMPV4_ECHO_REQUEST : WR_ICMPV6_ECHO_REQUEST;
  int n = wr_icmp_msg_build_echo(version, type, f->assigned_id, act->seq, act->data,
                                 act->data_len, p->out, sizeof(p->out));
  if (n < 0) return n;
  struct sockaddr_storage ss;
  socklen_t sl = make_sa(&f->key.dst, 0, &ss);
  f->last_active = uv_now(p->loop);
  if (sendto(f->fd, p->out, (size_t)n, 0, (struct sockaddr *)&ss, sl) < 0) {
    p->st.send_errors++;
    wr_debug("failed to send ICMP echo request: %s", strerror(errno));
    return WR_ERR_IO;
  }
  p->st.echo_sent++;
  return WR_OK;
}

/* The flow for |k|, opened if new; a flow last used by another reply_user
 * (QUIC connection) moves to this one, as cloudflared replaces the funnel
 * of another muxer so replies go to the newest connection. */
static int flow_get(wr_icmp_proxy *p, const wr_icmp_flow_key *k, wr_icmp_reply_fn fn,
                    void *user, flow **out) {
  flow *f = flow_find(p, k);
  if (!f) {
    if (p->nflows >= p->max_flows) {
      p->st.flow_limit++;
      return WR_ERR_LIMIT;
    }
    int rv = flow_open(p, k, &f);
    if (rv) return rv;
  }
  f->fn = fn;
  f->reply_user = user;
  *out = f;
  return WR_OK;
}

int wr_icmp_proxy_classify(const uint8_t *pkt, size_t len, const wr_ipaddr *src4,
                           const wr_ipaddr *src6, wr_icmp_action *act, uint8_t *out, size_t cap) {
  wr_ip_packet ip;
  wr_icmp icmp;
  memset(act, 0, sizeof(*act));
  int rv = wr_ip_icmp_decode(pkt, len, &ip, &icmp);
  if (rv) return rv;
  if (ip.ttl <= 1) { /* the connector is the hop that answers */
    int n = wr_icmp_build_time_exceeded(&ip, ip.version == 4 ? src4 : src6, out, cap);
    if (n < 0) return n;
    act->kind = WR_ICMP_ACT_TIME_EXCEEDED;
    act->reply_len = (size_t)n;
    return WR_OK;
  }
  /* cloudflared decrements the TTL here, in its decoded copy only: the
   * socket sends with the system's TTL. */
  uint8_t req = ip.version == 4 ? WR_ICMPV4_ECHO_REQUEST : WR_ICMPV6_ECHO_REQUEST;
  if (icmp.type != req) return WR_ERR_UNSUPPORTED;
  act->kind = WR_ICMP_ACT_FORWARD;
  wr_icmp_flow_key_make(&ip, &icmp, &act->key);
  act->seq = icmp.echo_seq;
  act->data = icmp.data;
  act->data_len = icmp.data_len;
  return WR_OK;
}

static void count_drop(wr_icmp_proxy *p, int rv) {
  if (rv == WR_ERR_UNSUPPORTED) p->st.not_echo++;
  else p->st.malformed++;
  wr_debug("Dropped an ICMP packet from the edge: %s", wr_strerror(rv));
}

int wr_icmp_proxy_request(wr_icmp_proxy *p, const uint8_t *pkt, size_t len, wr_icmp_reply_fn fn,
                          void *reply_user) {
  wr_icmp_action act;
  p->st.requests++;
  if (p->kind[0] == KIND_NONE && p->kind[1] == KIND_NONE) {
    p->st.no_socket++; /* cloudflared has no ICMP router then: drops all */
    return WR_ERR_UNSUPPORTED;
  }
  int rv = wr_icmp_proxy_classify(pkt, len, &p->src[0], &p->src[1], &act, p->out, sizeof(p->out));
  if (rv) {
    count_drop(p, rv);
    return rv;
  }
  if (act.kind == WR_ICMP_ACT_TIME_EXCEEDED) {
    p->st.time_exceeded++;
    fn(reply_user, p->out, act.reply_len);
    return WR_OK;
  }
  if (p->kind[fam_index(act.key.dst.version)] == KIND_NONE) {
    p->st.no_socket++;
    return WR_ERR_UNSUPPORTED;
  }
  flow *f;
  if ((rv = flow_get(p, &act.key, fn, reply_user, &f))) return rv;
  if ((rv = send_echo(p, f, &act))) return rv;
  /* A host on this machine answers inside sendto: the kernel runs the
   * loopback path in the sender's context. Reading the reply now queues
   * it before the QUIC connection's next flush, so it leaves in the same
   * packet as the ACK of the request instead of after a packet of its
   * own (one packet and one wakeup of the edge less per echo). A remote
   * host costs one recvfrom that finds nothing. */
  on_readable(&f->poll, 0, UV_READABLE);
  return WR_OK;
}

void wr_icmp_proxy_forget(wr_icmp_proxy *p, void *reply_user) {
  if (!p) return;
  flow *next;
  for (flow *f = p->all; f; f = next) {
    next = f->next;
    if (f->reply_user == reply_user) flow_close(p, f);
  }
}

/* ---- life cycle ------------------------------------------------------------- */

static void log_sources(const wr_icmp_proxy *p) {
  char a4[48], a6[48];
  wr_ipaddr_format(&p->src[0], a4, sizeof(a4));
  wr_ipaddr_format(&p->src[1], a6, sizeof(a6));
  wr_info("ICMP proxy will use %s as source for IPv4", a4);
  if (p->zone6[0]) wr_info("ICMP proxy will use %s in zone %s as source for IPv6", a6, p->zone6);
  else wr_info("ICMP proxy will use %s as source for IPv6", a6);
}

int wr_icmp_proxy_new(const wr_icmp_proxy_config *cfg, wr_icmp_proxy **out) {
  *out = NULL;
  if (!cfg || !cfg->loop || cfg->sock_mode > WR_ICMP_SOCK_RAW) return WR_ERR_INVAL;
  wr_icmp_proxy *p = calloc(1, sizeof(*p));
  if (!p) return WR_ERR_NOMEM;
  p->loop = cfg->loop;
  p->max_flows = cfg->max_flows ? cfg->max_flows : WR_ICMP_PROXY_MAX_FLOWS_DEFAULT;
  p->idle_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : WR_ICMP_PROXY_IDLE_MS_DEFAULT;
  int rv = resolve_sources(p, cfg);
  if (rv) {
    free(p);
    return rv;
  }
  uint8_t key[16];
  if (wr_random_bytes(key, sizeof(key)) == 0) wr_siphash_key(key, &p->k0, &p->k1);
  wr_random_bytes(p->raw_next_id, sizeof(p->raw_next_id));
  log_sources(p);
  p->kind[0] = probe(p, 4, cfg->sock_mode);
  p->kind[1] = probe(p, 6, cfg->sock_mode);
  if (p->kind[0] == KIND_NONE && p->kind[1] == KIND_NONE)
    wr_warn("ICMP proxy feature is disabled: cannot open ICMPv4 or ICMPv6 sockets (ping sockets "
            "need the process's group within /proc/sys/net/ipv4/ping_group_range; raw sockets "
            "need CAP_NET_RAW)");
  else if (p->kind[0] == KIND_NONE)
    wr_warn("cannot open ICMPv4 sockets, only the ICMPv6 proxy is enabled (ping sockets need the "
            "process's group within /proc/sys/net/ipv4/ping_group_range)");
  else if (p->kind[1] == KIND_NONE)
    wr_info("cannot open ICMPv6 sockets, only the ICMPv4 proxy is enabled");
  uv_timer_init(p->loop, &p->idle_timer);
  p->idle_timer.data = p;
  uv_timer_start(&p->idle_timer, on_idle_tick, p->idle_ms, p->idle_ms);
  uv_unref((uv_handle_t *)&p->idle_timer); /* never what keeps the loop alive */
  *out = p;
  return WR_OK;
}

static void proxy_freed(uv_handle_t *h) { free(h->data); }

void wr_icmp_proxy_free(wr_icmp_proxy *p) {
  if (!p) return;
  while (p->all) flow_close(p, p->all);
  uv_timer_stop(&p->idle_timer);
  uv_close((uv_handle_t *)&p->idle_timer, proxy_freed);
}

int wr_icmp_proxy_enabled(const wr_icmp_proxy *p, uint8_t version) {
  return (version == 4 || version == 6) && p->kind[fam_index(version)] != KIND_NONE;
}

void wr_icmp_proxy_stats_get(const wr_icmp_proxy *p, wr_icmp_proxy_stats *out) {
  *out = p->st;
  out->flows_active = p->nflows;
}

void wr_icmp_proxy_sources(const wr_icmp_proxy *p, wr_ipaddr *src4, wr_ipaddr *src6) {
  if (src4) *src4 = p->src[0];
  if (src6) *src6 = p->src[1];
}
