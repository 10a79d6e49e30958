/* Edge-to-edge forwarding; see peer.h. One "link" per forwarded stream:
 * on the forwarding edge it carries a wr_tunnel_stream of the via
 * connection (client), on the serving edge it feeds a stream opened on a
 * local connector connection (server). */
#include "edge/peer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/tunnel_transport.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/conn.h"
#include "net/owner.h"
#include "net/tls.h"
#include "proto/hostport.h"
#include "proto/peer_frame.h"
#include "proto/stream_head.h"

/* Unparsed input kept at most (a frame and a read's worth). */
#define IN_MAX (2 * (WR_PEER_FRAME_MAX + WR_PEER_FRAME_HEAD) + 65536)
/* The name edges verify in each other's certificates: every
 * tunnel-server certificate carries it (edge/pki.h). */
#define PEER_NAME "cftunnel.com"

typedef struct plink plink;

struct wr_peer {
  uv_loop_t *loop;
  wr_tunnel_server *ts;
  wr_tls_creds *server_creds, *client_creds;
  uv_tcp_t *listener; /* NULL: none */
  wr_tunnel_conn *via;
  plink *links;
  int64_t next_sid;
  int stopping;
  wr_owner owner; /* holds the timers, the listener while open and each link */
  wr_peer_stats st;
  /* wr_peer_open_stream -> stream_open: what the stream is for. */
  const char *const *open_addrs;
  size_t open_naddrs;
  const char *open_tunnel;
  void (*on_down)(void *user, const char *addr);
  void *on_down_user;
  uv_timer_t reap;      /* moves finished client links to idle (a loop turn later) */
  uv_timer_t idle_sweep; /* closes links idle for too long */
  size_t nidle;
};

struct plink {
  plink *prev, *next;
  wr_peer *p;
  int client;      /* 1: forwarding side; 0: serving side */
  wr_conn *conn;   /* NULL between dials */
  int connected;
  int closing;     /* wr_conn_close called on |conn| for good */
  uint8_t *in;     /* unparsed bytes from the connection */
  size_t in_len;
  int read_stopped;
  int write_done;  /* our direction ended (FIN or RESET sent, or STOP received) */
  int read_done;   /* the other direction ended for us (FIN or RESET received, or STOP sent) */
  /* A connection carries one stream after the other: a stream ends
   * cleanly once each side sent its FIN or RESET frame, and the next OPEN
   * may follow. */
  int sent_end;    /* FIN or RESET sent */
  int got_end;     /* FIN or RESET received */
  char tunnel_id[WR_STORE_UUID_LEN + 1];
  /* client */
  wr_tunnel_stream *s; /* NULL once on_close was delivered or forgotten */
  char addrs[WR_PEER_MAX_ADDRS][WR_STORE_ADDR_MAX + 1];
  size_t naddrs, next_addr;
  int redial;          /* the closing connection is followed by the next address */
  int retrying;        /* ... with the stream sent again from its start (retry) */
  int reused;          /* the stream went out on a connection the pool kept */
  int to_idle;         /* finished cleanly: idle once the reap timer ran */
  int idle;            /* between streams, in the pool */
  uint64_t idle_since;
  char addr[WR_STORE_ADDR_MAX + 1]; /* the peer it is connected to */
  uint8_t *pend;       /* frames written before the connection was up */
  size_t pend_len, pend_cap;
  /* Every frame of the stream so far (OPEN included), kept until the
   * serving edge's first byte of the answer, so that the stream can start
   * again on another edge; dropped past WR_PEER_REPLAY_MAX. */
  uint8_t *replay;
  size_t replay_len, replay_cap;
  int replay_off;      /* over the bound: no second attempt */
  int answered;        /* the serving edge sent a byte of the stream (or its FIN) */
  int aborted;         /* the owner reset or stopped its stream */
  int idempotent;      /* the request may be sent twice (stream_head.h) */
  int first_write;     /* the owner's first bytes (the request head) are still to come */
  size_t unconsumed;   /* delivered to the owner, not yet consumed */
  int want_writable;
  /* server */
  wr_tunnel_stream *st; /* the stream on a local connection */
  int opened;
  size_t frame_off;     /* bytes of the current DATA frame already written */
  int blocked;          /* the local stream refused bytes: wait for on_writable */
  size_t held;          /* connector bytes sent on but not yet credited */
  const char *broke;    /* what the client did wrong (logged) */
};

static const wr_conn_callbacks client_cbs, server_cbs;
static const wr_tunnel_stream_callbacks local_cbs;
static void reap_cb(uv_timer_t *t);
static void server_next(plink *l);
static void server_pump(plink *l);

/* ---- common ---------------------------------------------------------------------- */

static void link_insert(wr_peer *p, plink *l) {
  WR_LIST_INSERT_HEAD(p->links, l);
  wr_owner_hold(&p->owner);
}

/* Last, when |p| is being freed: it may go with its last link. */
static void link_unlink_free(plink *l) {
  wr_peer *p = l->p;
  WR_LIST_REMOVE(p->links, l);
  free(l->in);
  free(l->pend);
  free(l->replay);
  free(l);
  wr_owner_drop(&p->owner);
}

static void peer_release(wr_owner *o) {
  wr_peer *p = WR_OWNER_OBJ(o, wr_peer, owner);
  wr_tls_creds_free(p->server_creds);
  wr_tls_creds_free(p->client_creds);
  free(p);
}

static void grow_append(uint8_t **buf, size_t *blen, size_t *cap, const uint8_t *data, size_t len) {
  if (*cap - *blen < len) {
    while (*cap - *blen < len) *cap = *cap ? *cap * 2 : 4096;
    *buf = wr_xrealloc(*buf, *cap);
  }
  memcpy(*buf + *blen, data, len);
  *blen += len;
}

static void replay_drop(plink *l) {
  free(l->replay);
  l->replay = NULL;
  l->replay_len = l->replay_cap = 0;
  l->replay_off = 1;
}

/* Bytes out: to the connection, or (a client still dialling) queued; a
 * client's also kept for a second attempt until the answer starts. */
static void out(plink *l, const uint8_t *data, size_t len) {
  if (l->client && !l->replay_off && !l->answered) {
    if (len > WR_PEER_REPLAY_MAX - l->replay_len) replay_drop(l);
    else grow_append(&l->replay, &l->replay_len, &l->replay_cap, data, len);
  }
  if (l->conn && l->connected) {
    wr_conn_write(l->conn, data, len);
    return;
  }
  grow_append(&l->pend, &l->pend_len, &l->pend_cap, data, len);
}

static void out_data(plink *l, const uint8_t *data, size_t len) {
  while (len) {
    size_t n = len > WR_PEER_FRAME_MAX ? WR_PEER_FRAME_MAX : len;
    uint8_t head[WR_PEER_FRAME_HEAD];
    wr_peer_frame_head(head, WR_PEER_DATA, n);
    out(l, head, sizeof(head));
    out(l, data, n);
    data += n;
    len -= n;
  }
}

static void out_empty(plink *l, int type) {
  uint8_t head[WR_PEER_FRAME_HEAD];
  if (type == WR_PEER_FIN) l->sent_end = 1;
  wr_peer_frame_head(head, type, 0);
  out(l, head, sizeof(head));
}

static void out_code(plink *l, int type, uint64_t code) {
  uint8_t f[WR_PEER_FRAME_HEAD + 8];
  if (type == WR_PEER_RESET) l->sent_end = 1;
  wr_peer_frame_code(f, type, code);
  out(l, f, sizeof(f));
}

static size_t queued(const plink *l) {
  return l->pend_len + (l->conn && l->connected ? wr_conn_write_queued(l->conn) : 0);
}

static void close_link(plink *l) {
  if (l->conn && !l->closing) {
    l->closing = 1;
    wr_conn_close(l->conn);
  }
}

/* Both directions ended: a clean end is a TCP half-close after the queued
 * frames; the other side answers with its own and both close. */
static void maybe_finish(plink *l) {
  if (!l->write_done || !l->read_done || !l->conn || l->closing || l->to_idle || l->idle) return;
  wr_peer *p = l->p;
  if (!l->client && l->sent_end && l->got_end && l->connected && !p->stopping) {
    l->to_idle = 1;
    uv_timer_start(&p->reap, reap_cb, 0, 0);
    return;
  }
  /* Our end is out and the other side's comes next (its FIN, or the
   * RESET that answers our STOP): wait for it, the connection may serve
   * again. */
  if (l->sent_end && !l->got_end && l->connected && !p->stopping) return;
  if (l->client && l->sent_end && l->got_end && l->connected && !p->stopping &&
      p->nidle < WR_PEER_MAX_IDLE) {
    /* Clean: the owner hears on_close from the reap timer (never from
     * inside one of its own calls), and the connection waits for the next
     * stream to that edge. */
    l->to_idle = 1;
    p->nidle++;
    uv_timer_start(&p->reap, reap_cb, 0, 0);
    return;
  }
  if (l->connected) wr_conn_shutdown(l->conn);
  else close_link(l);
}

static void update_reading(plink *l) {
  int stop = l->in_len >= IN_MAX / 2 || l->blocked || l->unconsumed >= WR_PEER_WINDOW;
  if (!l->conn || l->closing || !l->connected || stop == l->read_stopped) return;
  l->read_stopped = stop;
  if (stop) wr_conn_read_stop(l->conn);
  else wr_conn_read_start(l->conn);
}

/* Appends |len| read bytes; 0, or -1 if the peer overran the bound. */
static int in_add(plink *l, const uint8_t *data, size_t len) {
  if (len > IN_MAX - l->in_len) return -1;
  if (!l->in) l->in = wr_xcalloc(1, IN_MAX);
  memcpy(l->in + l->in_len, data, len);
  l->in_len += len;
  return 0;
}

static void in_take(plink *l, size_t n) {
  memmove(l->in, l->in + n, l->in_len - n);
  l->in_len -= n;
}

/* ---- the forwarding side ----------------------------------------------------------- */

static int dial(plink *l) {
  wr_peer *p = l->p;
  while (l->next_addr < l->naddrs) {
    const char *a = l->addrs[l->next_addr++];
    char host[WR_STORE_ADDR_MAX + 1], err[128];
    uint16_t port = 0;
    if (wr_go_split_host_port(a, strlen(a), host, sizeof(host), &port, err, sizeof(err)) != 0 ||
        !port) {
      wr_warn("forwarding tunnel %s: bad peer address %s", l->tunnel_id, a);
      continue;
    }
    wr_conn_target t = {.host = host, .port = port, .tls = p->client_creds,
                        .verify_name = PEER_NAME, .connect_timeout_ms = 5000};
    l->connected = 0;
    l->closing = 0;
    l->read_stopped = 0;
    l->reused = 0;
    snprintf(l->addr, sizeof(l->addr), "%s", a);
    if (wr_conn_connect(p->loop, &t, &client_cbs, l, &l->conn) == WR_OK) return 0;
    l->conn = NULL;
  }
  return -1;
}

/* No edge could be reached: the owner hears a reset and then on_close. */
static void client_give_up(plink *l) {
  l->p->st.forward_failed++;
  wr_warn("forwarding tunnel %s: no edge that serves it could be reached", l->tunnel_id);
  l->read_done = l->write_done = 1;
  if (l->s) wr_tunnel_stream_on_reset(l->s, 0);
}

static void report_down(plink *l) {
  wr_peer *p = l->p;
  if (p->on_down && !p->stopping) p->on_down(p->on_down_user, l->addr);
}

/* The serving edge refused the stream (|refused|: it has no connection of
 * the tunnel, nothing reached a connector) or went away before the first
 * byte of the answer. The stream starts again on the next address with
 * every frame sent so far, if they were all kept, the owner still wants
 * it, and the request may reach a connector twice (an idempotent one)
 * unless refused. Returns 1 if so (the connection is closing; c_close
 * dials). */
static int retry(plink *l, int refused, const char *why) {
  /* An edge that refused on a kept connection refuses on a new one too. */
  if (refused && l->reused && l->next_addr == 0) l->next_addr = 1;
  if (!l->s || l->answered || l->replay_off || l->aborted || l->p->stopping || l->closing ||
      l->next_addr >= l->naddrs || (!refused && !l->idempotent))
    return 0;
  wr_info("forwarding tunnel %s: %s %s before answering (%s); trying the next edge",
          l->tunnel_id, l->addr, refused ? "refused the stream" : "went away", why);
  l->retrying = 1;
  l->redial = 1;
  close_link(l);
  return 1;
}

/* Before a second attempt: the stream as it was when first sent. */
static void rewind_stream(plink *l) {
  l->retrying = 0;
  l->pend_len = 0;
  grow_append(&l->pend, &l->pend_len, &l->pend_cap, l->replay, l->replay_len);
  l->in_len = 0;
  l->got_end = 0;
  l->read_done = 0;
  l->unconsumed = 0;
}

static void c_connect(wr_conn *c, int status, const char *msg, void *user) {
  plink *l = user;
  if (c != l->conn) return;
  if (status != WR_OK) {
    wr_info("forwarding tunnel %s: %s", l->tunnel_id, msg ? msg : wr_strerror(status));
    report_down(l);
    l->redial = 1;
    close_link(l);
    return;
  }
  l->connected = 1;
  if (l->pend_len) wr_conn_write(c, l->pend, l->pend_len);
  l->pend_len = 0;
  update_reading(l);
  maybe_finish(l);
}

/* One frame from the serving edge. Returns 0, or -1 on a protocol error. */
static int client_frame(plink *l, const wr_peer_frame *f) {
  switch (f->type) {
  case WR_PEER_DATA:
    if (l->got_end || l->idle || l->to_idle) return -1;
    if (l->read_done) return 0; /* we sent STOP: the rest is dropped */
    l->answered = 1;
    replay_drop(l);
    l->unconsumed += f->len;
    if (l->s) wr_tunnel_stream_on_data(l->s, f->payload, f->len, 0);
    return 0;
  case WR_PEER_FIN:
  case WR_PEER_RESET:
    if (l->got_end || l->idle || l->to_idle) return -1; /* one end per stream */
    if (f->type == WR_PEER_RESET && retry(l, f->code == WR_PEER_CODE_REFUSED, "reset")) return 0;
    l->answered = 1;
    l->got_end = 1;
    if (l->read_done) return 0;
    l->read_done = 1;
    if (!l->s) return 0;
    if (f->type == WR_PEER_FIN) wr_tunnel_stream_on_data(l->s, NULL, 0, 1);
    else wr_tunnel_stream_on_reset(l->s, f->code);
    return 0;
  case WR_PEER_STOP:
    /* Nothing more is wanted from us: our side ends with a RESET. */
    if (!l->sent_end) out_code(l, WR_PEER_RESET, 0);
    l->write_done = 1;
    return 0;
  default:
    return -1;
  }
}

/* Parses and acts on every complete frame; -1 on a protocol error. */
static int drain_in(plink *l, int (*frame)(plink *l, const wr_peer_frame *f)) {
  size_t off = 0;
  int rv = 0;
  while (!l->blocked && !l->closing && !l->to_idle) {
    wr_peer_frame f;
    size_t used = 0;
    int prv = wr_peer_frame_parse(l->in + off, l->in_len - off, &f, &used);
    if (prv == WR_ERR_TRUNC) break;
    if (prv != WR_OK) {
      rv = -1;
      break;
    }
    if (frame(l, &f) != 0) {
      rv = -1;
      break;
    }
    if (l->blocked) break; /* the frame stays, partly written (frame_off) */
    off += used;
  }
  if (off) in_take(l, off);
  return rv;
}

static void c_read(wr_conn *c, const uint8_t *data, size_t len, void *user) {
  plink *l = user;
  if (c != l->conn || l->closing) return;
  if (in_add(l, data, len) != 0 || drain_in(l, client_frame) != 0) {
    wr_warn("forwarding tunnel %s: the peer edge broke the protocol", l->tunnel_id);
    if (!l->read_done && l->s) wr_tunnel_stream_on_reset(l->s, 0);
    l->read_done = l->write_done = 1;
    close_link(l);
    return;
  }
  update_reading(l);
  maybe_finish(l);
}

static void c_eof(wr_conn *c, int status, const char *msg, void *user) {
  plink *l = user;
  if (c != l->conn) return;
  /* The serving edge went away before its side ended: a lost connection. */
  if (l->s && !l->answered && !l->read_done && !l->reused) report_down(l);
  if (!l->read_done && retry(l, 0, msg && msg[0] ? msg : status ? wr_strerror(status) : "closed")) return;
  if (!l->read_done) {
    l->read_done = 1;
    if (l->s) wr_tunnel_stream_on_reset(l->s, 0);
  }
  l->write_done = 1;
  close_link(l);
}

static void c_drain(wr_conn *c, void *user) {
  plink *l = user;
  if (c != l->conn || !l->want_writable) return;
  l->want_writable = 0;
  if (l->s) wr_tunnel_stream_on_writable(l->s);
}

static void c_close(wr_conn *c, void *user) {
  plink *l = user;
  if (c != l->conn) return;
  l->conn = NULL;
  if (l->idle || l->to_idle) l->p->nidle--;
  l->idle = l->to_idle = 0;
  if (l->redial && !l->p->stopping) {
    l->redial = 0;
    if (l->retrying) rewind_stream(l);
    if (dial(l) == 0) {
      l->p->st.retried++;
      return;
    }
    client_give_up(l);
  }
  wr_tunnel_stream *s = l->s;
  l->s = NULL;
  if (s) wr_tunnel_stream_on_close(s);
  link_unlink_free(l);
}

static const wr_conn_callbacks client_cbs = {
    .on_connect = c_connect, .on_read = c_read, .on_eof = c_eof, .on_drain = c_drain,
    .on_close = c_close};

/* Finished streams' owners hear on_close here, outside their own calls;
 * their connections join the idle pool. */
static void reap_cb(uv_timer_t *t) {
  wr_peer *p = t->data;
  for (plink *l = p->links; l; l = l->next) {
    if (!l->to_idle) continue;
    if (!l->client) {
      l->to_idle = 0;
      server_next(l);
      server_pump(l);
      continue;
    }
    wr_tunnel_stream *s = l->s;
    l->s = NULL;
    l->to_idle = 0;
    l->idle = 1;
    l->idle_since = uv_now(p->loop);
    if (s) wr_tunnel_stream_on_close(s);
  }
}

static void idle_sweep_cb(uv_timer_t *t) {
  wr_peer *p = t->data;
  uint64_t now = uv_now(p->loop);
  for (plink *l = p->links; l; l = l->next)
    if (l->idle && now - l->idle_since >= WR_PEER_IDLE_MS) close_link(l);
}

/* An idle connection to one of |addrs| (in their order), or NULL. */
static plink *take_idle(wr_peer *p, const char *const *addrs, size_t naddrs) {
  for (size_t i = 0; i < naddrs; i++)
    for (plink *l = p->links; l; l = l->next)
      if (l->client && l->idle && !l->closing && l->conn && strcmp(l->addr, addrs[i]) == 0) {
        l->idle = 0;
        p->nidle--;
        return l;
      }
  return NULL;
}

/* ---- the via transport: what the tunnel server calls for forwarded streams ------- */

/* A new stream's state; |addrs| are the edges to try if the first fails.
 * On a connection the pool kept, its own edge comes first, dialled afresh:
 * the edge may have closed the idle connection just as the stream went
 * out on it (the keep-alive race every HTTP client knows), which says
 * nothing about the edge itself. */
static void stream_begin(plink *l, wr_tunnel_stream *s, const char *tunnel_id,
                         const char *const *addrs, size_t naddrs) {
  l->s = s;
  l->read_done = l->write_done = l->sent_end = l->got_end = 0;
  l->unconsumed = 0;
  l->want_writable = 0;
  l->answered = l->aborted = l->idempotent = l->retrying = 0;
  l->first_write = 1;
  free(l->replay);
  l->replay = NULL;
  l->replay_len = l->replay_cap = 0;
  l->replay_off = 0;
  l->next_addr = l->naddrs = 0;
  l->reused = l->conn != NULL;
  if (l->reused) snprintf(l->addrs[l->naddrs++], sizeof(l->addrs[0]), "%s", l->addr);
  for (size_t i = 0; i < naddrs && l->naddrs < WR_PEER_MAX_ADDRS; i++)
    if (!l->conn || strcmp(addrs[i], l->addr) != 0)
      snprintf(l->addrs[l->naddrs++], sizeof(l->addrs[0]), "%s", addrs[i]);
  snprintf(l->tunnel_id, sizeof(l->tunnel_id), "%s", tunnel_id);
  uint8_t head[WR_PEER_FRAME_HEAD];
  wr_peer_frame_head(head, WR_PEER_OPEN, WR_STORE_UUID_LEN);
  out(l, head, sizeof(head));
  out(l, (const uint8_t *)l->tunnel_id, WR_STORE_UUID_LEN);
}

/* A stream on a connection the pool kept: the OPEN goes out at once. If
 * that edge is gone by now, the others are tried (retry). */
static void reuse(plink *l, wr_tunnel_stream *s, const char *tunnel_id) {
  wr_peer *p = l->p;
  stream_begin(l, s, tunnel_id, p->open_addrs, p->open_naddrs);
  update_reading(l);
}

static int v_stream_open(void *t, wr_tunnel_stream *s, int64_t *sid, void **sh) {
  wr_peer *p = t;
  if (p->stopping || !p->open_tunnel) return WR_ERR_INVAL;
  plink *l = take_idle(p, p->open_addrs, p->open_naddrs);
  if (l) {
    reuse(l, s, p->open_tunnel);
    *sid = p->next_sid++;
    *sh = l;
    p->st.forwarded++;
    p->st.reused++;
    return WR_OK;
  }
  l = wr_xcalloc(1, sizeof(*l));
  l->p = p;
  l->client = 1;
  stream_begin(l, s, p->open_tunnel, p->open_addrs, p->open_naddrs);
  if (dial(l) != 0) {
    free(l->pend);
    free(l->replay);
    free(l);
    return WR_ERR_NOTFOUND;
  }
  link_insert(p, l);
  *sid = p->next_sid++;
  *sh = l;
  p->st.forwarded++;
  return WR_OK;
}

static int v_stream_write(void *t, int64_t sid, void *sh, const uint8_t *data, size_t len, int fin,
                          size_t *accepted) {
  plink *l = sh;
  (void)t;
  (void)sid;
  *accepted = 0;
  if (l->write_done) return WR_ERR_INVAL;
  if (len && queued(l) >= WR_PEER_WINDOW) {
    l->want_writable = 1;
    return WR_AGAIN;
  }
  /* The owner's first write is the whole request head (preamble +
   * ConnectRequest; visitor_proxy writes it at once): whether a second
   * attempt may reach a connector is judged on it. */
  if (l->first_write && len) {
    l->first_write = 0;
    l->idempotent = wr_stream_request_idempotent(data, len);
  }
  out_data(l, data, len);
  *accepted = len;
  if (fin) {
    out_empty(l, WR_PEER_FIN);
    l->write_done = 1;
    maybe_finish(l);
  }
  return WR_OK;
}

static void v_stream_consume(void *t, int64_t sid, void *sh, size_t n) {
  plink *l = sh;
  (void)t;
  (void)sid;
  l->unconsumed = n > l->unconsumed ? 0 : l->unconsumed - n;
  update_reading(l);
}

static size_t v_stream_queued(void *t, int64_t sid, void *sh) {
  (void)t;
  (void)sid;
  return queued(sh);
}

static void v_stream_reset(void *t, int64_t sid, void *sh, uint64_t code) {
  plink *l = sh;
  (void)t;
  (void)sid;
  if (l->write_done) return;
  l->aborted = 1;
  out_code(l, WR_PEER_RESET, code);
  l->write_done = 1;
  maybe_finish(l);
}

static void v_stream_stop(void *t, int64_t sid, void *sh, uint64_t code) {
  plink *l = sh;
  (void)t;
  (void)sid;
  if (l->read_done) return;
  l->aborted = 1;
  out_code(l, WR_PEER_STOP, code);
  l->read_done = 1;
  l->unconsumed = 0;
  update_reading(l);
  maybe_finish(l);
}

static void v_stream_forget(void *t, int64_t sid, void *sh) {
  plink *l = sh;
  (void)t;
  (void)sid;
  l->s = NULL;
  l->read_done = l->write_done = 1;
  close_link(l);
}

static int v_control_write(void *t, const uint8_t *data, size_t len) {
  (void)t;
  (void)data;
  (void)len;
  return WR_ERR_INVAL;
}
static void v_noop(void *t) { (void)t; }
static void v_close(void *t, const char *reason) {
  (void)t;
  (void)reason;
}
static const struct sockaddr *v_remote(void *t) {
  static const struct sockaddr none = {.sa_family = AF_UNSPEC};
  (void)t;
  return &none;
}

static const wr_tunnel_transport via_transport = {
    .name = "edge",
    .datagrams = 0,
    .control_write = v_control_write,
    .control_end = v_noop,
    .close = v_close,
    .registered = v_noop,
    .remote = v_remote,
    .stream_open = v_stream_open,
    .stream_write = v_stream_write,
    .stream_consume = v_stream_consume,
    .stream_queued = v_stream_queued,
    .stream_reset = v_stream_reset,
    .stream_stop = v_stream_stop,
    .stream_forget = v_stream_forget,
};

int wr_peer_open_stream(wr_peer *p, const char *const *addrs, size_t naddrs, const char *tunnel_id,
                        const wr_tunnel_stream_callbacks *cbs, void *user, wr_tunnel_stream **out_s) {
  *out_s = NULL;
  if (p->stopping) return WR_ERR_INVAL;
  if (!naddrs || !tunnel_id || strlen(tunnel_id) != WR_STORE_UUID_LEN) return WR_ERR_NOTFOUND;
  p->open_addrs = addrs;
  p->open_naddrs = naddrs;
  p->open_tunnel = tunnel_id;
  int rv = wr_tunnel_server_via_open(p->via, cbs, user, out_s);
  p->open_addrs = NULL;
  p->open_naddrs = 0;
  p->open_tunnel = NULL;
  return rv;
}

/* ---- the serving side ------------------------------------------------------------- */

/* The local stream takes no more of the client's bytes (the connector
 * answered and stopped reading, or the stream is gone): the rest is
 * dropped, and the client is asked to stop sending. Only while our own
 * end has not gone out: a STOP after it could reach the client once it
 * finished this stream and sent the next one on the connection. */
static void server_stop_reading(plink *l) {
  if (l->read_done) return;
  l->read_done = 1;
  l->blocked = 0;
  l->frame_off = 0;
  if (!l->sent_end && !l->got_end) out_code(l, WR_PEER_STOP, 0);
}

/* Writes as much of the current DATA frame as the local stream takes. */
static void server_data(plink *l, const wr_peer_frame *f) {
  while (l->frame_off < f->len) {
    size_t acc = 0;
    int rv = wr_tunnel_stream_write(l->st, f->payload + l->frame_off, f->len - l->frame_off, 0,
                                    &acc);
    if (rv != WR_OK && rv != WR_AGAIN) {
      server_stop_reading(l);
      return;
    }
    l->frame_off += acc;
    if (l->frame_off < f->len && (rv == WR_AGAIN || acc == 0)) {
      l->blocked = 1;
      return;
    }
  }
  l->frame_off = 0;
}

static void server_open(plink *l, const wr_peer_frame *f) {
  wr_peer *p = l->p;
  snprintf(l->tunnel_id, sizeof(l->tunnel_id), "%.*s", (int)f->len, (const char *)f->payload);
  l->opened = 1;
  int rv = wr_tunnel_server_open_stream_local(p->ts, l->tunnel_id, &local_cbs, l, &l->st);
  if (rv == WR_OK) {
    p->st.served++;
    return;
  }
  p->st.refused++;
  l->st = NULL;
  out_code(l, WR_PEER_RESET, WR_PEER_CODE_REFUSED);
  l->write_done = l->read_done = 1;
}

static int server_frame(plink *l, const wr_peer_frame *f) {
  if (!l->opened) {
    /* A STOP may trail the previous stream's end (the client's owner
     * gave up reading just before our FIN reached it): nothing to do. */
    if (f->type == WR_PEER_STOP) return 0;
    if (f->type != WR_PEER_OPEN) {
      l->broke = "a frame before OPEN";
      return -1;
    }
    server_open(l, f);
    return 0;
  }
  if (f->type == WR_PEER_OPEN) {
    l->broke = "OPEN before the previous stream ended";
    return -1;
  }
  if (f->type == WR_PEER_DATA || f->type == WR_PEER_FIN || f->type == WR_PEER_RESET) {
    if (l->got_end) {
      l->broke = "a frame after the stream's end";
      return -1; /* nothing of the client's after its end */
    }
    if (f->type != WR_PEER_DATA) l->got_end = 1;
  }
  if (f->type == WR_PEER_STOP || (f->type == WR_PEER_RESET && !l->read_done)) {
    /* The forwarding edge's owner gave up: so does this stream, and our
     * side ends with a RESET. */
    wr_tunnel_stream *st = l->st;
    l->st = NULL;
    l->read_done = l->write_done = 1;
    if (!l->sent_end) out_code(l, WR_PEER_RESET, 0);
    if (st) wr_tunnel_stream_abandon(st, f->type == WR_PEER_RESET ? (int64_t)f->code : -1);
    return 0;
  }
  if (!l->st || l->read_done) return 0; /* the stream is gone: its bytes are dropped */
  if (f->type == WR_PEER_DATA) {
    server_data(l, f);
    return 0;
  }
  size_t acc;
  l->read_done = 1; /* FIN; a local stream that stopped reading has no use for it */
  (void)wr_tunnel_stream_write(l->st, NULL, 0, 1, &acc);
  return 0;
}

/* The stream ended cleanly both ways: the connection takes the next OPEN
 * (on the reap timer, outside the local stream's callbacks). */
static void server_next(plink *l) {
  wr_tunnel_stream *st = l->st;
  l->st = NULL;
  if (st) wr_tunnel_stream_abandon(st, -1);
  l->opened = 0;
  l->read_done = l->write_done = l->sent_end = l->got_end = 0;
  l->frame_off = 0;
  l->blocked = 0;
  l->held = 0;
  l->tunnel_id[0] = '\0';
}

static void server_pump(plink *l) {
  if (drain_in(l, server_frame) != 0) {
    wr_warn("peer edge: a forwarded stream of tunnel %s broke the protocol: %s",
            l->tunnel_id[0] ? l->tunnel_id : "-", l->broke ? l->broke : "a malformed frame");
    if (l->st) wr_tunnel_stream_abandon(l->st, 0);
    l->st = NULL;
    l->read_done = l->write_done = 1;
    close_link(l);
    return;
  }
  update_reading(l);
  maybe_finish(l);
}

static void s_connect(wr_conn *c, int status, const char *msg, void *user) {
  plink *l = user;
  (void)c;
  if (status != WR_OK) {
    /* A client without an edge certificate, or not TLS at all. */
    wr_info("peer edge: handshake refused: %s", msg ? msg : wr_strerror(status));
    close_link(l);
    return;
  }
  l->connected = 1;
  update_reading(l);
}

static void s_read(wr_conn *c, const uint8_t *data, size_t len, void *user) {
  plink *l = user;
  (void)c;
  if (l->closing) return;
  if (in_add(l, data, len) != 0) {
    close_link(l);
    return;
  }
  server_pump(l);
}

static void s_eof(wr_conn *c, int status, const char *msg, void *user) {
  plink *l = user;
  (void)c;
  (void)status;
  (void)msg;
  if (l->st) wr_tunnel_stream_abandon(l->st, l->read_done ? -1 : 0);
  l->st = NULL;
  close_link(l);
}

/* Connector bytes waiting for the TLS connection to drain get their
 * credit now. */
static void s_drain(wr_conn *c, void *user) {
  plink *l = user;
  (void)c;
  if (l->held && l->st) wr_tunnel_stream_consume(l->st, l->held);
  l->held = 0;
}

static void s_close(wr_conn *c, void *user) {
  plink *l = user;
  (void)c;
  if (l->st) wr_tunnel_stream_abandon(l->st, 0);
  link_unlink_free(l);
}

static const wr_conn_callbacks server_cbs = {
    .on_connect = s_connect, .on_read = s_read, .on_eof = s_eof, .on_drain = s_drain,
    .on_close = s_close};

/* The local connector's side of a served stream. */
static int l_data(void *user, const uint8_t *data, size_t len, int fin) {
  plink *l = user;
  if (len) out_data(l, data, len);
  if (fin) {
    out_empty(l, WR_PEER_FIN);
    l->write_done = 1;
  }
  /* Credit only while the TLS connection keeps up. */
  if (len && wr_conn_write_queued(l->conn) < WR_PEER_WINDOW) wr_tunnel_stream_consume(l->st, len);
  else l->held += len;
  maybe_finish(l);
  return WR_OK;
}

static void l_writable(void *user) {
  plink *l = user;
  if (!l->blocked) return;
  l->blocked = 0;
  server_pump(l);
}

static void l_reset(void *user, uint64_t code) {
  plink *l = user;
  if (l->write_done) return;
  out_code(l, WR_PEER_RESET, code);
  l->write_done = 1;
  maybe_finish(l);
}

/* The local stream is gone (done, or its connection died). */
static void l_close(void *user) {
  plink *l = user;
  l->st = NULL;
  server_stop_reading(l); /* before our RESET: see there */
  if (!l->write_done) {
    out_code(l, WR_PEER_RESET, 0);
    l->write_done = 1;
  }
  maybe_finish(l);
}

static const wr_tunnel_stream_callbacks local_cbs = {
    .on_data = l_data, .on_writable = l_writable, .on_reset = l_reset, .on_close = l_close};

static void on_connection(uv_stream_t *server, int status) {
  wr_peer *p = server->data;
  if (status < 0 || p->stopping) return;
  plink *l = wr_xcalloc(1, sizeof(*l));
  l->p = p;
  if (wr_conn_accept(server, p->server_creds, &server_cbs, l, &l->conn) != WR_OK) {
    free(l);
    return;
  }
  link_insert(p, l);
}

/* ---- lifecycle ------------------------------------------------------------------- */

static void listener_closed(uv_handle_t *h) {
  wr_peer *p = h->data;
  free(h);
  wr_owner_drop(&p->owner);
}

static int creds(wr_peer *p, const wr_peer_config *cfg, char *err, size_t errlen) {
  wr_tls_server_config sc = {.cert_file = cfg->cert_file, .key_file = cfg->key_file,
                             .client_ca_file = cfg->ca_file};
  wr_tls_client_config cc = {.ca_file = cfg->ca_file, .cert_file = cfg->cert_file,
                             .key_file = cfg->key_file};
  int rv = wr_tls_creds_server(&sc, &p->server_creds, err, errlen);
  if (rv == WR_OK) rv = wr_tls_creds_client(&cc, &p->client_creds, err, errlen);
  return rv == WR_ERR_NOMEM ? rv : rv != WR_OK ? WR_ERR_CRYPTO : WR_OK;
}

static int listen_on(wr_peer *p, const struct sockaddr *addr, char *err, size_t errlen) {
  p->listener = wr_xcalloc(1, sizeof(*p->listener));
  uv_tcp_init(p->loop, p->listener);
  p->listener->data = p;
  wr_owner_hold(&p->owner);
  int rc = uv_tcp_bind(p->listener, addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)p->listener, 511, on_connection);
  if (rc != 0) {
    snprintf(err, errlen, "cannot listen for peer edges: %s", uv_strerror(rc));
    return WR_ERR_IO;
  }
  return WR_OK;
}

int wr_peer_new(const wr_peer_config *cfg, wr_peer **out, char *err, size_t errlen) {
  *out = NULL;
  if (!cfg || !cfg->loop || !cfg->ts || !cfg->cert_file || !cfg->key_file || !cfg->ca_file)
    return WR_ERR_INVAL;
  wr_peer *p = wr_xcalloc(1, sizeof(*p));
  p->loop = cfg->loop;
  p->ts = cfg->ts;
  wr_owner_init(&p->owner, peer_release);
  wr_owner_timer_init(&p->owner, p->loop, &p->reap, p);
  wr_owner_timer_init(&p->owner, p->loop, &p->idle_sweep, p);
  uv_timer_start(&p->idle_sweep, idle_sweep_cb, WR_PEER_IDLE_MS / 2, WR_PEER_IDLE_MS / 2);
  uv_unref((uv_handle_t *)&p->idle_sweep);
  int rv = creds(p, cfg, err, errlen);
  if (rv == WR_OK && cfg->listen) rv = listen_on(p, cfg->listen, err, errlen);
  p->via = wr_tunnel_server_via_new(p->ts, &via_transport, p, "edge-peer");
  *out = p;
  if (rv != WR_OK) {
    wr_peer_free(p);
    *out = NULL;
  }
  return rv;
}

int wr_peer_addr(const wr_peer *p, struct sockaddr_storage *ss) {
  int len = sizeof(*ss);
  if (!p->listener) return WR_ERR_NOTFOUND;
  return uv_tcp_getsockname(p->listener, (struct sockaddr *)ss, &len) == 0 ? WR_OK : WR_ERR_IO;
}

const wr_peer_stats *wr_peer_get_stats(const wr_peer *p) { return &p->st; }

void wr_peer_set_on_down(wr_peer *p, void (*fn)(void *user, const char *addr), void *user) {
  p->on_down = fn;
  p->on_down_user = user;
}

void wr_peer_free(wr_peer *p) {
  if (!p || p->stopping) return;
  p->stopping = 1;
  /* Forwarded streams' owners hear on_close now (stream_forget closes
   * each plink's connection). */
  wr_tunnel_server_via_free(p->via);
  p->via = NULL;
  for (plink *l = p->links; l; l = l->next) {
    if (!l->client && l->st) {
      wr_tunnel_stream *st = l->st;
      l->st = NULL;
      wr_tunnel_stream_abandon(st, 0);
    }
    if (l->conn && !l->closing) {
      l->closing = 1;
      wr_conn_close(l->conn);
    }
  }
  if (p->listener) {
    uv_close((uv_handle_t *)p->listener, listener_closed);
    p->listener = NULL;
  }
  wr_owner_close_handle(&p->owner, (uv_handle_t *)&p->reap);
  wr_owner_close_handle(&p->owner, (uv_handle_t *)&p->idle_sweep);
  wr_owner_close(&p->owner); /* frees |p| once the handles closed and the links went */
}
