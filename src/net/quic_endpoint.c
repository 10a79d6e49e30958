/* QUIC transport: the libuv endpoint. One UDP socket and one timer serving
 * many server connections or one client connection: receiving, finding a
 * datagram's connection through the connection-ID index, admission control
 * for new ones (half-open caps, Retry, Stateless Reset, rate limits),
 * writing packets out in sendmmsg/GSO batches, timers, freeing closed
 * connections, and injection for tests and fuzzers. See quic.h for the
 * contract and quic_int.h for how the QUIC files divide the work.
 *
 * Where a half-open connection's ~92 KB go (heaptrack, ngtcp2 0.12.1 and
 * GnuTLS 3.7, once the first client Initial was processed): ngtcp2 ~73 KB
 * (ngtcp2_conn_server_new 32 KB: the connection, its object pools and the
 * Initial/Handshake packet number spaces; 22 KB of crypto stream buffers
 * holding the server's first flight with the certificate chain; 18 KB of
 * packet processing state), GnuTLS ~17 KB (session 8 KB, handshake state
 * 9 KB), ours 1.5 KB (3.5 KB before the stream table moved to the first
 * stream). The handshake needs all of it, so none can wait for the
 * handshake to complete; what bounds it is the endpoint's admission
 * control (Retry and caps, ep_accept). */
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <uv.h>

#include "lib/err.h"
#include "lib/thread_buf.h"
#include "net/addr.h"
#include "net/quic_int.h"

/* Retry tokens are accepted for this long after they were made (a client
 * answers a Retry within one round trip). */
#define RETRY_TOKEN_LIFETIME (10 * WR_QUIC_S)

#define EP_BATCH 32
#define EP_WBUF (512u * 1024u)   /* 32 Internet packets or 8 loopback ones */
#define EP_RBUF 65536u           /* the largest UDP datagram */
/* Socket buffers asked for (quic-go asks for 7 MiB): the kernel default
 * (~208 KiB) overflows, and drops packets, before a loopback window of
 * 64 KiB packets is in flight. */
#define EP_SOCKBUF (4 * 1024 * 1024)
/* Sources with half-open connections are kept in a hash table of this many
 * chains; there are at most max_half_open entries. */
#define SRC_NBUCKETS 1024
/* Stateless answers (Stateless Reset, Retry, INVALID_TOKEN close) cost us
 * nothing to keep but are sent to an address nobody validated: each source
 * (hashed into one of SL_SLOTS counters) gets at most this many per second,
 * so the edge cannot be made to pelt one victim. */
#define SL_SLOTS 256
#define RESETS_PER_SOURCE 10
#define RESETS_PER_SECOND 100
#define RETRIES_PER_SOURCE 200

/* Demultiplexing: each connection ID a server connection answers to (the
 * SCIDs ngtcp2 issued and has not retired; for Initials also the client's
 * first DCID) maps to its connection, so finding a packet's connection costs
 * the same with ten connections or thousands (a linear search made every
 * forged packet cost a walk over all of them). */
#define CID_NBUCKETS 4096

typedef struct cid_entry {
  struct cid_entry *hnext; /* bucket chain */
  struct cid_entry *cnext; /* the connection's entries */
  wr_quic_conn *c;
  int initial_only;        /* the client's first DCID: matches long headers only */
  ngtcp2_cid cid;
} cid_entry;

/* A source (IPv4 address or IPv6 /64) with half-open connections. */
typedef struct src_entry {
  struct src_entry *next;
  uint8_t key[16];
  unsigned half_open;
} src_entry;

struct wr_quic_endpoint {
  uv_loop_t *loop;
  uv_udp_t udp;
  uv_timer_t timer;
  wr_quic_role role;
  wr_quic_tls *tls;
  wr_quic_config cfg;
  wr_quic_callbacks cbs;
  wr_quic_accept_cb on_accept;
  void *ep_user;
  wr_quic_conn *conns;      /* every connection (ep_next/ep_prev) */
  size_t nconns;
  /* What a timer run looks at: the connections with something new to
   * send (dirty: a datagram came in, the application wrote, a deadline
   * moved) and the heap of every connection's next expiry, so that a run
   * costs O(due + dirty) rather than a walk of all connections: with a
   * thousand registered connectors, walking them all on every run (each
   * received batch is one) made the busy tunnel's requests wait. */
  wr_quic_conn *dirty;
  wr_heap timers;
  int kicked;               /* the timer is set to run at once */
  struct sockaddr_storage local;
  socklen_t locallen;
  int closing;
  int handles_open;
  int no_gso;               /* the kernel refused UDP_SEGMENT once */
  uint64_t gso_sends;       /* messages that carried several packets */
  uint8_t reset_key[64];    /* server: copy of the stateless reset key */
  uint64_t resets_window;   /* start (ms) of the current rate-limit window */
  unsigned resets_sent;     /* stateless resets sent in that window */
  /* Handshake-flood defences (server). */
  uint8_t token_key[32];    /* Retry tokens: random per endpoint */
  uint64_t hash_seed[2];    /* keys the source hashes: not predictable */
  src_entry *srcs[SRC_NBUCKETS];
  size_t nsrcs;
  cid_entry *cids[CID_NBUCKETS];
  size_t half_open;         /* connections without an owner yet */
  uint64_t hs_window;       /* start (ms) of the current handshake-rate second */
  unsigned hs_in_window;    /* connections created in it */
  struct {
    uint64_t sec;           /* second (loop time / 1000) of the counts */
    unsigned resets, retries;
  } sl[SL_SLOTS];
  wr_quic_endpoint_stats stats;
  /* Datagrams are read into the thread's shared buffer (EP_RBUF) and
   * packets of one connection are written back to back into its other one
   * (EP_WBUF), then handed to the kernel with one sendmmsg(2) per batch
   * instead of one sendmsg(2) each: per-packet system calls were the bulk
   * path's main cost. Both buffers are lent per thread (lib/thread_buf.h),
   * so a connector's endpoints (one per connection) share them; these own
   * ones are only made for a read or write nested in another endpoint's. */
  uint8_t *own_rbuf, *own_wbuf;
};

static wr_quic_tstamp uv_now_ns(void) { return uv_hrtime(); }

static void ep_timer_cb(uv_timer_t *t);

/* --- sources, half-open accounting, rate limits --------------------------- */

/* The key a source is counted under: wr_addr_source_key (net/addr.h). */
static void src_key(const struct sockaddr *sa, uint8_t key[16]) { (void)wr_addr_source_key(sa, key); }

/* Keyed with random seeds so that senders cannot aim at one chain. */
static uint64_t src_hash(const wr_quic_endpoint *ep, const uint8_t key[16]) {
  uint64_t a, b, h;
  memcpy(&a, key, 8);
  memcpy(&b, key + 8, 8);
  h = (a ^ ep->hash_seed[0]) * 0x9e3779b97f4a7c15ULL;
  h = (h ^ (h >> 29) ^ b ^ ep->hash_seed[1]) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 32)) * 0x94d049bb133111ebULL;
  return h ^ (h >> 29);
}

static src_entry *src_find(wr_quic_endpoint *ep, const uint8_t key[16], uint64_t h) {
  src_entry *e = ep->srcs[h % SRC_NBUCKETS];
  while (e && memcmp(e->key, key, 16) != 0) e = e->next;
  return e;
}

/* Counts |c| as half-open (no owner yet) from source |key|. Returns WR_OK
 * or WR_ERR_NOMEM. */
static int half_open_add(wr_quic_endpoint *ep, wr_quic_conn *c, const uint8_t key[16],
                         uint64_t h) {
  src_entry *e = src_find(ep, key, h);
  if (!e) {
    if (!(e = calloc(1, sizeof(*e)))) return WR_ERR_NOMEM;
    memcpy(e->key, key, 16);
    e->next = ep->srcs[h % SRC_NBUCKETS];
    ep->srcs[h % SRC_NBUCKETS] = e;
    ep->nsrcs++;
  }
  e->half_open++;
  ep->half_open++;
  c->src = e;
  return WR_OK;
}

/* |c| got an owner or goes away: it stops counting as half-open. A source
 * entry lives only while it has half-open connections. */
static void half_open_release(wr_quic_endpoint *ep, wr_quic_conn *c) {
  src_entry *e = c->src, **pp;
  if (!e) return;
  c->src = NULL;
  ep->half_open--;
  if (--e->half_open > 0) return;
  for (pp = &ep->srcs[src_hash(ep, e->key) % SRC_NBUCKETS]; *pp && *pp != e; pp = &(*pp)->next) {
  }
  if (*pp) *pp = e->next;
  ep->nsrcs--;
  free(e);
}

/* Keyed like the source hash: clients choose their first DCID. */
static size_t cid_bucket(const wr_quic_endpoint *ep, const uint8_t *id, size_t len) {
  uint64_t h = ep->hash_seed[1] ^ len;
  for (size_t i = 0; i < len; i += 8) {
    uint64_t w = 0;
    memcpy(&w, id + i, len - i < 8 ? len - i : 8);
    h = (h ^ w ^ ep->hash_seed[0]) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
  }
  h *= 0xbf58476d1ce4e5b9ULL;
  return (size_t)((h ^ (h >> 32)) % CID_NBUCKETS);
}

/* Indexes |cid| for |c|. Returns WR_OK or WR_ERR_NOMEM. */
int wr__quic_ep_cid_add(wr_quic_conn *c, const ngtcp2_cid *cid, int initial_only) {
  wr_quic_endpoint *ep = c->ep;
  size_t b = cid_bucket(ep, cid->data, cid->datalen);
  cid_entry *e = calloc(1, sizeof(*e));
  if (!e) return WR_ERR_NOMEM;
  e->c = c;
  e->cid = *cid;
  e->initial_only = initial_only;
  e->hnext = ep->cids[b];
  ep->cids[b] = e;
  e->cnext = c->cids;
  c->cids = e;
  return WR_OK;
}

static void cid_unlink(wr_quic_endpoint *ep, cid_entry *e) {
  cid_entry **pp = &ep->cids[cid_bucket(ep, e->cid.data, e->cid.datalen)];
  while (*pp && *pp != e) pp = &(*pp)->hnext;
  if (*pp) *pp = e->hnext;
}

/* ngtcp2 retired |cid| of |c|. */
void wr__quic_ep_cid_remove(wr_quic_conn *c, const ngtcp2_cid *cid) {
  for (cid_entry **pp = &c->cids; *pp; pp = &(*pp)->cnext) {
    cid_entry *e = *pp;
    if (e->initial_only || !ngtcp2_cid_eq(&e->cid, cid)) continue;
    *pp = e->cnext;
    cid_unlink(c->ep, e);
    free(e);
    return;
  }
}

static wr_quic_conn *cid_lookup(wr_quic_endpoint *ep, const uint8_t *id, size_t len,
                                int long_header) {
  cid_entry *e = ep->cids[cid_bucket(ep, id, len)];
  for (; e; e = e->hnext)
    if (e->cid.datalen == len && memcmp(e->cid.data, id, len) == 0 &&
        (long_header || !e->initial_only))
      return e->c;
  return NULL;
}

/* Frees a connection the endpoint has already unlinked. */
static void ep_conn_free(wr_quic_endpoint *ep, wr_quic_conn *c) {
  while (c->cids) {
    cid_entry *e = c->cids;
    c->cids = e->cnext;
    cid_unlink(ep, e);
    free(e);
  }
  c->ep = NULL;
  half_open_release(ep, c);
  wr_quic_conn_free(c);
}

/* The handshake of an endpoint's server connection completed: from now on
 * it has an owner. Runs inside packet processing (cb_handshake_completed),
 * before the stream frames of the same datagram. */
void wr__quic_ep_adopt(wr_quic_conn *c) {
  wr_quic_endpoint *ep = c->ep;
  c->adopted = 1;
  if (!ep) return;
  half_open_release(ep, c);
  c->cbs = ep->cbs;
  c->user = ep->ep_user;
  if (ep->on_accept) ep->on_accept(ep, c, ep->ep_user);
}

/* May one more stateless answer go to the source hashed to |h|? |retry|:
 * a Retry or an INVALID_TOKEN close, else a Stateless Reset. */
static int stateless_ok(wr_quic_endpoint *ep, uint64_t h, int retry) {
  uint64_t sec = uv_now(ep->loop) / 1000;
  unsigned i = (unsigned)((h >> 40) % SL_SLOTS);
  if (ep->sl[i].sec != sec) {
    ep->sl[i].sec = sec;
    ep->sl[i].resets = ep->sl[i].retries = 0;
  }
  if (retry ? ep->sl[i].retries >= RETRIES_PER_SOURCE : ep->sl[i].resets >= RESETS_PER_SOURCE) {
    ep->stats.rate_limited++;
    return 0;
  }
  if (retry)
    ep->sl[i].retries++;
  else
    ep->sl[i].resets++;
  return 1;
}

static unsigned limit(unsigned v, unsigned def) { return v ? v : def; }

/* |c| has something to send: onto the dirty list, and the timer runs at
 * once (after this loop iteration's other reads: one flush per batch). */
static void ep_mark(wr_quic_endpoint *ep, wr_quic_conn *c) {
  if (!c->ep_dirty) {
    c->ep_dirty = 1;
    c->dirty_next = ep->dirty;
    ep->dirty = c;
  }
  if (!ep->closing && !ep->kicked) {
    ep->kicked = 1;
    uv_timer_start(&ep->timer, ep_timer_cb, 0, 0);
  }
}

static void ep_kick(void *arg, wr_quic_conn *c) { ep_mark(arg, c); }

/* Adds |c| to the endpoint's connections. Returns WR_OK, or WR_ERR_NOMEM
 * when its timer heap cannot grow (|c| is then not added). */
static int ep_link(wr_quic_endpoint *ep, wr_quic_conn *c) {
  if (wr_heap_reserve(&ep->timers, ep->nconns + 1) != 0) return WR_ERR_NOMEM;
  c->ep_prev = NULL;
  c->ep_next = ep->conns;
  if (ep->conns) ep->conns->ep_prev = c;
  ep->conns = c;
  ep->nconns++;
  c->kick = ep_kick;
  c->kick_arg = ep;
  return WR_OK;
}

/* Takes |c| off the endpoint's list, dirty list and timer heap. */
static void ep_unlink(wr_quic_endpoint *ep, wr_quic_conn *c) {
  if (c->ep_prev) c->ep_prev->ep_next = c->ep_next;
  else ep->conns = c->ep_next;
  if (c->ep_next) c->ep_next->ep_prev = c->ep_prev;
  c->ep_next = c->ep_prev = NULL;
  ep->nconns--;
  if (c->ep_dirty) {
    wr_quic_conn **pp = &ep->dirty;
    while (*pp && *pp != c) pp = &(*pp)->dirty_next;
    if (*pp) *pp = c->dirty_next;
    c->ep_dirty = 0;
  }
  wr_heap_remove(&ep->timers, &c->ep_timer);
  c->kick = NULL;
}

/* Kernel UDP GSO limits: segments per send and bytes per send. */
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000

/* Groups |lens| into sends: with GSO (UDP_SEGMENT, Linux 4.18+), a run of
 * equal-sized packets, optionally ended by one shorter packet, leaves in one
 * message that the kernel cuts into datagrams after routing. Internet-sized
 * packets of a bulk transfer then cost one trip through the stack per ~44
 * packets instead of one each. Returns the number of messages. */
static size_t gso_plan(const size_t *lens, size_t n, int gso, size_t *first, size_t *count,
                       size_t *seg) {
  size_t m = 0, i = 0;
  while (i < n) {
    size_t j = i + 1, bytes = lens[i];
    if (gso) {
      while (j < n && j - i < GSO_MAX_SEGS && bytes + lens[j] <= GSO_MAX_BYTES &&
             lens[j] <= lens[i]) {
        bytes += lens[j];
        j++;
        if (lens[j - 1] < lens[i]) break; /* a shorter one ends the run */
      }
    }
    first[m] = i;
    count[m] = j - i;
    seg[m] = lens[i];
    m++;
    i = j;
  }
  return m;
}

/* Sends the |n| packets of lengths |lens| that stand back to back in
 * |wbuf|. */
static void ep_send_batch(wr_quic_endpoint *ep, const struct sockaddr *to, socklen_t tolen,
                          const uint8_t *wbuf, const size_t *lens, size_t n) {
  struct mmsghdr msgs[EP_BATCH];
  struct iovec iov[EP_BATCH];
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } ctl[EP_BATCH];
  size_t first[EP_BATCH], count[EP_BATCH], seg[EP_BATCH], off[EP_BATCH + 1];
  uv_os_fd_t fd;
  size_t done = 0, m;
  if (uv_fileno((uv_handle_t *)&ep->udp, &fd) != 0) return;
  off[0] = 0;
  for (size_t i = 0; i < n; i++) off[i + 1] = off[i] + lens[i];
again:
  m = gso_plan(lens, n, !ep->no_gso, first, count, seg);
  memset(msgs, 0, m * sizeof(msgs[0]));
  for (size_t k = 0; k < m; k++) {
    struct msghdr *h = &msgs[k].msg_hdr;
    iov[k].iov_base = (void *)(wbuf + off[first[k]]);
    iov[k].iov_len = off[first[k] + count[k]] - off[first[k]];
    h->msg_name = (void *)to;
    h->msg_namelen = tolen;
    h->msg_iov = &iov[k];
    h->msg_iovlen = 1;
    if (count[k] > 1) {
      struct cmsghdr *cm;
      uint16_t sz = (uint16_t)seg[k];
      h->msg_control = ctl[k].buf;
      h->msg_controllen = sizeof(ctl[k].buf);
      cm = CMSG_FIRSTHDR(h);
      cm->cmsg_level = SOL_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN(sizeof(sz));
      memcpy(CMSG_DATA(cm), &sz, sizeof(sz));
    }
  }
  while (done < m) {
    int k = sendmmsg(fd, msgs + done, (unsigned)(m - done), 0);
    if (k < 0) {
      if (errno == EINTR) continue;
      /* No GSO here (old kernel, or a device without it): send the
       * packets one by one from now on. */
      if (!ep->no_gso && done == 0 && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT) &&
          m < n) {
        ep->no_gso = 1;
        goto again;
      }
      /* EAGAIN and friends drop the rest; QUIC loss recovery resends. */
      return;
    }
    for (int x = 0; x < k; x++)
      if (count[done + (size_t)x] > 1) ep->gso_sends++;
    done += (size_t)k;
  }
}

static void ep_flush(wr_quic_endpoint *ep, wr_quic_conn *c) {
  wr_quic_tstamp now = uv_now_ns();
  size_t lens[EP_BATCH], n = 0, off = 0;
  size_t pkt = c->max_udp_payload < EP_WBUF ? c->max_udp_payload : EP_WBUF;
  uint8_t *wbuf = wr_tbuf_take(WR_TBUF_QUIC_WRITE, EP_WBUF);
  if (!wbuf && !(wbuf = ep->own_wbuf) && !(wbuf = ep->own_wbuf = malloc(EP_WBUF))) return;
  for (;;) {
    size_t len = 0;
    int rv = wr_quic_conn_write(c, wbuf + off, pkt, &len, now);
    if (len) {
      lens[n++] = len;
      off += len;
    }
    if (n == EP_BATCH || EP_WBUF - off < pkt || (n && (len == 0 || rv != WR_OK))) {
      socklen_t rl;
      const struct sockaddr *to = wr_quic_conn_remote(c, &rl);
      ep_send_batch(ep, to, rl, wbuf, lens, n);
      n = 0;
      off = 0;
    }
    if (len == 0 || rv != WR_OK) break;
  }
  wr_tbuf_give(WR_TBUF_QUIC_WRITE, wbuf);
}

/* Best effort: SO_*BUFFORCE works for root (CAP_NET_ADMIN) past
 * net.core.[rw]mem_max; otherwise the plain option, capped by the kernel. */
static void ep_grow_sockbufs(wr_quic_endpoint *ep) {
  uv_os_fd_t fd;
  int v = EP_SOCKBUF;
  if (uv_fileno((uv_handle_t *)&ep->udp, &fd) != 0) return;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) != 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) != 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

static void ep_rearm(wr_quic_endpoint *ep) {
  wr_heap_node *top = wr_heap_top(&ep->timers);
  wr_quic_tstamp now = uv_now_ns();
  uint64_t ms;
  if (ep->closing) return;
  if (ep->dirty) {
    ep->kicked = 1;
    uv_timer_start(&ep->timer, ep_timer_cb, 0, 0);
    return;
  }
  ep->kicked = 0;
  if (!top || top->key == UINT64_MAX) {
    uv_timer_stop(&ep->timer);
    return;
  }
  ms = top->key <= now ? 0 : (top->key - now + WR_QUIC_MS - 1) / WR_QUIC_MS;
  uv_timer_start(&ep->timer, ep_timer_cb, ms, 0);
}

#define EP_CONN(node) \
  ((wr_quic_conn *)((char *)(node) - offsetof(wr_quic_conn, ep_timer)))

/* One connection's turn: its due timers, then whatever it has to send;
 * then it is filed under its next expiry, or freed once closed. */
static void ep_service(wr_quic_endpoint *ep, wr_quic_conn *c, wr_quic_tstamp now) {
  if (wr_quic_conn_expiry(c) <= now) wr_quic_conn_handle_expiry(c, now);
  ep_flush(ep, c);
  if (c->state == WR_QUIC_CLOSED) {
    ep_unlink(ep, c);
    ep_conn_free(ep, c);
    return;
  }
  /* Room was reserved when |c| was linked: this cannot fail. */
  (void)wr_heap_set(&ep->timers, &c->ep_timer, wr_quic_conn_expiry(c));
}

/* Connections marked while a pass runs (one connection's callbacks
 * writing on another) get further passes, up to this many; then the timer
 * runs again at once. */
#define EP_PASSES 4

static void ep_timer_cb(uv_timer_t *t) {
  wr_quic_endpoint *ep = t->data;
  wr_quic_tstamp now = uv_now_ns();
  wr_heap_node *top;
  /* Due connections join the dirty ones: each is served once per pass. */
  while ((top = wr_heap_top(&ep->timers)) && top->key <= now) {
    wr_quic_conn *c = EP_CONN(top);
    wr_heap_remove(&ep->timers, top);
    if (!c->ep_dirty) {
      c->ep_dirty = 1;
      c->dirty_next = ep->dirty;
      ep->dirty = c;
    }
  }
  for (int pass = 0; pass < EP_PASSES && ep->dirty; pass++) {
    wr_quic_conn *list = ep->dirty;
    ep->dirty = NULL;
    while (list) {
      wr_quic_conn *c = list;
      list = c->dirty_next;
      c->dirty_next = NULL;
      c->ep_dirty = 0;
      ep_service(ep, c, now);
    }
  }
  ep_rearm(ep);
}

static wr_quic_conn *ep_find(wr_quic_endpoint *ep, const uint8_t *data,
                             size_t len) {
  ngtcp2_version_cid vc;
  int rv = ngtcp2_pkt_decode_version_cid(&vc, data, len, WR_QUIC_SCID_LEN);
  if (rv != 0) return NULL;
  if (ep->role == WR_QUIC_CLIENT) return ep->conns;
  return cid_lookup(ep, vc.dcid, vc.dcidlen, vc.version != 0);
}

/* RFC 9000 10.3: a short-header packet for a connection we do not know
 * (typically: this edge restarted) is answered with a Stateless Reset so
 * the peer gives up at once. The reset is shorter than the packet that
 * triggered it (no reset loops) and at most 100 go out per second. */
static void ep_stateless_reset(wr_quic_endpoint *ep, const struct sockaddr *to, socklen_t tolen,
                               const uint8_t *pkt, size_t len) {
  uint8_t out[128], token[NGTCP2_STATELESS_RESET_TOKENLEN], rnd[64], key[16];
  ngtcp2_cid cid;
  uint64_t now_ms = uv_now(ep->loop);
  size_t randlen;
  ngtcp2_ssize n;
  (void)tolen;
  /* The reset (1 header byte, random bytes, 16-byte token) must be smaller
   * than the packet that triggered it, and carry at least
   * NGTCP2_MIN_STATELESS_RESET_RANDLEN random bytes. */
  if (len < 1 + WR_QUIC_SCID_LEN || len < 1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN + 16 + 1) return;
  if (now_ms - ep->resets_window >= 1000) {
    ep->resets_window = now_ms;
    ep->resets_sent = 0;
  }
  if (ep->resets_sent >= RESETS_PER_SECOND) {
    ep->stats.rate_limited++;
    return;
  }
  src_key(to, key);
  if (!stateless_ok(ep, src_hash(ep, key), 0)) return;
  ngtcp2_cid_init(&cid, pkt + 1, WR_QUIC_SCID_LEN);
  if (ngtcp2_crypto_generate_stateless_reset_token(token, ep->cfg.reset_key,
                                                   ep->cfg.reset_key_len, &cid) != 0)
    return;
  randlen = len - 1 - sizeof(token) - 1;
  if (randlen > sizeof(rnd)) randlen = sizeof(rnd);
  wr__quic_random(rnd, randlen);
  n = ngtcp2_pkt_write_stateless_reset(out, sizeof(out), token, rnd, randlen);
  if (n <= 0) return;
  uv_buf_t b = uv_buf_init((char *)out, (unsigned)n);
  (void)uv_udp_try_send(&ep->udp, &b, 1, to);
  ep->resets_sent++;
  ep->stats.resets++;
}

/* RFC 9000 8.1.2: asks the client at |to| to prove its address. The Retry
 * (~140 bytes, answering an Initial of 1,200 or more) carries a token
 * binding the client's address, its original DCID and the new SCID; the
 * endpoint keeps no state until the client comes back with it. */
static void ep_send_retry(wr_quic_endpoint *ep, const struct sockaddr *to, socklen_t tolen,
                          const ngtcp2_pkt_hd *hd, uint64_t h, wr_quic_tstamp now) {
  uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN], out[256];
  ngtcp2_cid scid;
  ngtcp2_ssize tl, n;
  if (!stateless_ok(ep, h, 1)) return;
  scid.datalen = WR_QUIC_SCID_LEN;
  wr__quic_random(scid.data, scid.datalen);
  tl = ngtcp2_crypto_generate_retry_token(token, ep->token_key, sizeof(ep->token_key),
                                          hd->version, (const ngtcp2_sockaddr *)to,
                                          (ngtcp2_socklen)tolen, &scid, &hd->dcid, now);
  if (tl < 0) return;
  n = ngtcp2_crypto_write_retry(out, sizeof(out), hd->version, &hd->scid, &scid, &hd->dcid,
                                token, (size_t)tl);
  if (n <= 0) return;
  uv_buf_t b = uv_buf_init((char *)out, (unsigned)n);
  (void)uv_udp_try_send(&ep->udp, &b, 1, to);
  ep->stats.retries++;
}

/* RFC 9000 8.1.2: an Initial with a Retry token we cannot verify (forged,
 * expired, from another address or a previous process) is closed at once
 * with INVALID_TOKEN, statelessly: the client would not accept a second
 * Retry, and without an answer it would wait for its handshake timeout. */
static void ep_send_invalid_token(wr_quic_endpoint *ep, const struct sockaddr *to,
                                  const ngtcp2_pkt_hd *hd, uint64_t h) {
  uint8_t out[256];
  ngtcp2_ssize n;
  if (!stateless_ok(ep, h, 1)) return;
  n = ngtcp2_crypto_write_connection_close(out, sizeof(out), hd->version, &hd->scid, &hd->dcid,
                                           NGTCP2_INVALID_TOKEN, NULL, 0);
  if (n <= 0) return;
  uv_buf_t b = uv_buf_init((char *)out, (unsigned)n);
  (void)uv_udp_try_send(&ep->udp, &b, 1, to);
}

/* Checks the Retry token of the client Initial |hd| from |from|, if it
 * carries one. Returns 1 with the client's original DCID in |*odcid| (its
 * address is proven), 0 without a Retry token, or -1 when the token is
 * invalid (then answered with INVALID_TOKEN). Any other token would come
 * from a NEW_TOKEN frame, which this server never sends: treated as absent
 * (RFC 9000 8.1.3). */
static int check_token(wr_quic_endpoint *ep, const struct sockaddr *from, socklen_t fromlen,
                       const ngtcp2_pkt_hd *hd, uint64_t h, wr_quic_tstamp now,
                       ngtcp2_cid *odcid) {
  if (hd->token.len == 0 || hd->token.base[0] != NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) return 0;
  if (ngtcp2_crypto_verify_retry_token(odcid, hd->token.base, hd->token.len, ep->token_key,
                                       sizeof(ep->token_key), hd->version,
                                       (const ngtcp2_sockaddr *)from, (ngtcp2_socklen)fromlen,
                                       &hd->dcid, RETRY_TOKEN_LIFETIME, now) != 0) {
    ep->stats.bad_tokens++;
    ep_send_invalid_token(ep, from, hd, h);
    return -1;
  }
  return 1;
}

typedef enum admit_verdict { ADMIT_ACCEPT, ADMIT_RETRY, ADMIT_DROP } admit_verdict;

/* What to do with a new client from source |key| (hash |h|), whose address
 * is proven by a Retry token if |validated|: above the Retry thresholds an
 * unproven client must come back with a token; beyond the caps it is
 * dropped, token or not. */
static admit_verdict admit(wr_quic_endpoint *ep, const uint8_t key[16], uint64_t h,
                           int validated) {
  uint64_t ms = uv_now(ep->loop);
  src_entry *e;
  unsigned src_half;
  if (ms - ep->hs_window >= 1000) {
    ep->hs_window = ms;
    ep->hs_in_window = 0;
  }
  e = src_find(ep, key, h);
  src_half = e ? e->half_open : 0;
  if (!validated &&
      (ep->cfg.retry_always ||
       ep->half_open >= limit(ep->cfg.retry_half_open, WR_QUIC_RETRY_HALF_OPEN) ||
       src_half >= limit(ep->cfg.retry_half_open_per_source, WR_QUIC_RETRY_HALF_OPEN_PER_SOURCE) ||
       ep->hs_in_window >= limit(ep->cfg.retry_rate, WR_QUIC_RETRY_RATE)))
    return ADMIT_RETRY;
  /* A proven address does not lift the caps: a sender with a few real
   * addresses could otherwise still hold unbounded handshake state. */
  if (ep->half_open >= limit(ep->cfg.max_half_open, WR_QUIC_MAX_HALF_OPEN) ||
      src_half >= limit(ep->cfg.max_half_open_per_source, WR_QUIC_MAX_HALF_OPEN_PER_SOURCE)) {
    ep->stats.dropped++;
    return ADMIT_DROP;
  }
  return ADMIT_ACCEPT;
}

/* Counts the new server connection |c| as half-open from source |key| and
 * indexes the IDs packets reach it by: its first SCID (issued in
 * wr__quic_server_conn_new) and, for the client's Initial retransmissions,
 * |dcid|, the DCID the client chose. Returns WR_OK or WR_ERR_NOMEM. */
static int ep_register(wr_quic_endpoint *ep, wr_quic_conn *c, const uint8_t key[16],
                       uint64_t h, const ngtcp2_cid *dcid) {
  ngtcp2_cid ids[8];
  size_t nids = ngtcp2_conn_get_num_scid(c->conn);
  int ok = nids <= 8 && half_open_add(ep, c, key, h) == WR_OK &&
           wr__quic_ep_cid_add(c, dcid, 1) == WR_OK;
  nids = ok ? ngtcp2_conn_get_scid(c->conn, ids) : 0;
  for (size_t i = 0; ok && i < nids; i++) ok = wr__quic_ep_cid_add(c, &ids[i], 0) == WR_OK;
  return ok ? WR_OK : WR_ERR_NOMEM;
}

/* Takes |c| off the endpoint and frees it. */
static void ep_unlink_free(wr_quic_endpoint *ep, wr_quic_conn *c) {
  ep_unlink(ep, c);
  ep_conn_free(ep, c);
}

/* The path from our socket to |remote|: what a connection of |ep| runs on. */
static wr_quic_path ep_path(const wr_quic_endpoint *ep, const struct sockaddr *remote,
                            socklen_t remotelen) {
  wr_quic_path path = {.local = (const struct sockaddr *)&ep->local,
                       .locallen = ep->locallen,
                       .remote = remote,
                       .remotelen = remotelen};
  return path;
}

/* A long-header packet that belongs to no connection: a new client, maybe.
 * Admission control (RFC 9000 8.1, 21.1) decides, before any per-connection
 * state exists, between a new connection, a Retry and a silent drop. The
 * new connection has no owner until its handshake completes
 * (wr__quic_ep_adopt); if its first packet does not even start a handshake
 * (bad protection, no CRYPTO frame) it is freed here and nobody ever hears
 * of it. */
static void ep_accept(wr_quic_endpoint *ep, const struct sockaddr *from, socklen_t fromlen,
                      const uint8_t *pkt, size_t len) {
  wr_quic_tstamp now = uv_now_ns();
  ngtcp2_pkt_hd hd;
  ngtcp2_cid odcid;
  uint8_t key[16];
  uint64_t h;
  int validated;
  wr_quic_path path;
  wr_quic_conn *c;

  /* Only a client Initial of a version we speak, in a datagram of at least
   * 1,200 bytes, can start a connection. No Version Negotiation is sent
   * for other versions (connectors speak v1), so nothing answers them.
   * 0-RTT is never accepted, so 0-RTT ahead of its Initial is dropped. */
  if (ngtcp2_accept(&hd, pkt, len) != 0) return;
  src_key(from, key);
  h = src_hash(ep, key);
  validated = check_token(ep, from, fromlen, &hd, h, now, &odcid);
  if (validated < 0) return;
  switch (admit(ep, key, h, validated)) {
  case ADMIT_RETRY:
    ep_send_retry(ep, from, fromlen, &hd, h, now);
    return;
  case ADMIT_DROP:
    return;
  case ADMIT_ACCEPT:
    break;
  }
  path = ep_path(ep, from, fromlen);
  if (wr__quic_server_conn_new(ep->tls, &ep->cfg, &path, &hd, validated ? &odcid : NULL, now,
                               &c) != WR_OK)
    return;
  c->ep = ep;
  c->adopted = 0;
  if (ep_register(ep, c, key, h, &hd.dcid) != WR_OK || ep_link(ep, c) != WR_OK) {
    ep_conn_free(ep, c);
    return;
  }
  ep->hs_in_window++;
  ep->stats.accepted++;
  /* No owner callback can fire in here: |c| has none yet, and a first
   * Initial cannot complete a handshake. */
  wr_quic_conn_read(c, from, fromlen, pkt, len, now);
  if (c->state == WR_QUIC_CLOSED || c->sni_later) { /* sni_later: see quic.h sni_pick */
    ep_unlink_free(ep, c);
    return;
  }
  /* Answer from the timer (the server's first flight, or the
   * CONNECTION_CLOSE of a refused handshake). */
  ep_mark(ep, c);
}

/* libuv calls ep_recv_cb after each ep_alloc_cb (with nread 0 when there
 * was nothing to read), which gives the buffer back. */
static void ep_alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *buf) {
  wr_quic_endpoint *ep = h->data;
  uint8_t *b = wr_tbuf_take(WR_TBUF_QUIC_READ, EP_RBUF);
  (void)sz;
  if (!b && !(b = ep->own_rbuf)) b = ep->own_rbuf = malloc(EP_RBUF);
  *buf = uv_buf_init((char *)b, b ? EP_RBUF : 0);
}

/* One received datagram (or an injected one, for tests and fuzzers). */
static void ep_input(wr_quic_endpoint *ep, const struct sockaddr *addr, const uint8_t *data,
                     size_t len) {
  wr_quic_conn *c;
  socklen_t alen = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                               : sizeof(struct sockaddr_in);
  c = ep_find(ep, data, len);
  if (c) {
    wr_quic_conn_read(c, addr, alen, data, len, uv_now_ns());
    if (c->sni_later && !c->adopted) { /* a ClientHello in several Initials */
      ep_unlink_free(ep, c);
      return;
    }
  } else if (ep->role == WR_QUIC_SERVER && !(data[0] & 0x80)) {
    ep_stateless_reset(ep, addr, alen, data, len);
    return;
  } else if (ep->role == WR_QUIC_SERVER) {
    ep_accept(ep, addr, alen, data, len);
    return;
  } else {
    return;
  }
  /* Answer from the timer, once per loop iteration: libuv reads up to 32
   * datagrams per wakeup, and one flush after all of them sends one ACK
   * for the batch instead of one per packet. */
  ep_mark(ep, c);
}

static void ep_recv_cb(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf,
                       const struct sockaddr *addr, unsigned flags) {
  wr_quic_endpoint *ep = u->data;
  (void)flags;
  if (nread > 0 && addr && !ep->closing && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6))
    ep_input(ep, addr, (const uint8_t *)buf->base, (size_t)nread);
  wr_tbuf_give(WR_TBUF_QUIC_READ, buf->base);
}

int wr_quic_endpoint_inject(wr_quic_endpoint *ep, const struct sockaddr *from,
                            const uint8_t *data, size_t len) {
  if (!ep || ep->closing || !from || !data || len == 0 || len > EP_RBUF ||
      (from->sa_family != AF_INET && from->sa_family != AF_INET6))
    return WR_ERR_INVAL;
  ep_input(ep, from, data, len);
  return WR_OK;
}

static int ep_new(uv_loop_t *loop, wr_quic_role role, wr_quic_tls *tls,
                  const wr_quic_config *cfg, const struct sockaddr *bind_addr,
                  const wr_quic_callbacks *cbs, wr_quic_endpoint **out) {
  wr_quic_endpoint *ep = calloc(1, sizeof(*ep));
  int namelen;
  if (!ep) return WR_ERR_NOMEM;
  ep->loop = loop;
  ep->role = role;
  ep->tls = tls;
  ep->cfg = *cfg;
  if (cbs) ep->cbs = *cbs;
  if (role == WR_QUIC_SERVER) {
    /* Keep our own copy: the caller's key need not outlive this call. */
    if (cfg->reset_key && cfg->reset_key_len >= 16 && cfg->reset_key_len <= 64) {
      memcpy(ep->reset_key, cfg->reset_key, cfg->reset_key_len);
      ep->cfg.reset_key_len = cfg->reset_key_len;
    } else {
      wr__quic_random(ep->reset_key, 32);
      ep->cfg.reset_key_len = 32;
    }
    ep->cfg.reset_key = ep->reset_key;
    wr__quic_random(ep->token_key, sizeof(ep->token_key));
    wr__quic_random((uint8_t *)ep->hash_seed, sizeof(ep->hash_seed));
  }
  if (uv_udp_init(loop, &ep->udp) != 0) {
    free(ep);
    return WR_ERR_IO;
  }
  uv_timer_init(loop, &ep->timer);
  ep->udp.data = ep;
  ep->timer.data = ep;
  ep->handles_open = 2;
  namelen = sizeof(ep->local);
  if (uv_udp_bind(&ep->udp, bind_addr, 0) != 0 ||
      uv_udp_getsockname(&ep->udp, (struct sockaddr *)&ep->local, &namelen) !=
          0 ||
      uv_udp_recv_start(&ep->udp, ep_alloc_cb, ep_recv_cb) != 0) {
    wr_quic_endpoint_free(ep);
    return WR_ERR_IO;
  }
  ep_grow_sockbufs(ep);

  ep->locallen = (socklen_t)namelen;
  *out = ep;
  return WR_OK;
}

int wr_quic_endpoint_server(uv_loop_t *loop, wr_quic_tls *tls,
                            const wr_quic_config *cfg,
                            const struct sockaddr *addr,
                            const wr_quic_callbacks *cbs,
                            wr_quic_accept_cb on_accept, void *ep_user,
                            wr_quic_endpoint **out) {
  int rv = ep_new(loop, WR_QUIC_SERVER, tls, cfg, addr, cbs, out);
  if (rv != WR_OK) return rv;
  (*out)->on_accept = on_accept;
  (*out)->ep_user = ep_user;
  return WR_OK;
}

int wr_quic_endpoint_client(uv_loop_t *loop, wr_quic_tls *tls,
                            const wr_quic_config *cfg,
                            const struct sockaddr *remote,
                            const wr_quic_callbacks *cbs, void *user,
                            wr_quic_endpoint **out, wr_quic_conn **conn) {
  struct sockaddr_storage any;
  socklen_t rlen;
  wr_quic_path path;
  wr_quic_endpoint *ep;
  wr_quic_conn *c;
  int rv;

  memset(&any, 0, sizeof(any));
  any.ss_family = remote->sa_family;
  if (cfg->local_addr && cfg->local_addr->sa_family == remote->sa_family)
    memcpy(&any, cfg->local_addr,
           remote->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
  rlen = remote->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr_in);
  rv = ep_new(loop, WR_QUIC_CLIENT, tls, cfg, (struct sockaddr *)&any, cbs, &ep);
  if (rv != WR_OK) return rv;
  path = ep_path(ep, remote, rlen);
  rv = wr_quic_conn_client_new(tls, cfg, &path, cbs, user, uv_now_ns(), &c);
  if (rv != WR_OK) {
    wr_quic_endpoint_free(ep);
    return rv;
  }
  if (ep_link(ep, c) != WR_OK) {
    wr_quic_conn_free(c);
    wr_quic_endpoint_free(ep);
    return WR_ERR_NOMEM;
  }
  ep_mark(ep, c); /* the first Initial */
  *out = ep;
  *conn = c;
  return WR_OK;
}

int wr_quic_endpoint_addr(wr_quic_endpoint *ep, struct sockaddr_storage *ss) {
  int n = sizeof(*ss);
  return uv_udp_getsockname(&ep->udp, (struct sockaddr *)ss, &n) == 0
             ? WR_OK
             : WR_ERR_IO;
}

size_t wr_quic_endpoint_nconns(wr_quic_endpoint *ep) { return ep->nconns; }

void wr_quic_endpoint_get_stats(const wr_quic_endpoint *ep, wr_quic_endpoint_stats *st) {
  *st = ep->stats;
  st->conns = ep->nconns;
  st->half_open = ep->half_open;
  st->sources = ep->nsrcs;
}

void wr_quic_endpoint_kick(wr_quic_endpoint *ep) {
  for (wr_quic_conn *c = ep->conns; c; c = c->ep_next) ep_mark(ep, c);
}

static void ep_close_cb(uv_handle_t *h) {
  wr_quic_endpoint *ep = h->data;
  if (--ep->handles_open > 0) return;
  while (ep->conns) {
    wr_quic_conn *c = ep->conns;
    ep_unlink(ep, c);
    ep_conn_free(ep, c);
  }
  wr_heap_free(&ep->timers);
  free(ep->own_wbuf);
  free(ep->own_rbuf);
  free(ep);
}

uint64_t wr_quic_endpoint_gso_sends(const wr_quic_endpoint *ep) { return ep->gso_sends; }

void wr_quic_endpoint_free(wr_quic_endpoint *ep) {
  if (!ep || ep->closing) return;
  ep->closing = 1;
  uv_close((uv_handle_t *)&ep->udp, ep_close_cb);
  uv_close((uv_handle_t *)&ep->timer, ep_close_cb);
}
