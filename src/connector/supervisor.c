/* HA connections of the connector; see supervisor.h. */
#include "connector/supervisor.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/cloudflare_roots.h"
#include "connector/h2_link.h"
#include "connector/registration.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/addr.h"
#include "net/owner.h"
#include "net/quic.h"

/* Slot states. */
enum {
  SL_IDLE = 0,      /* not started, or waiting for the retry timer */
  SL_CONNECTING,    /* QUIC handshake */
  SL_REGISTERING,   /* registerConnection sent */
  SL_REGISTERED,
  SL_UNREGISTERING, /* shutdown: unregisterConnection sent */
  SL_CLOSING,       /* wr_quic_conn_close called; waiting for on_close */
  SL_DEAD           /* on_close seen; the endpoint is freed by the reap timer */
};

/* Why the last connection of a slot ended: picks the retry delay. */
enum { END_NONE = 0, END_RESET, END_UNREACHABLE, END_REFUSED };

#define QUIC_START_CONN_WINDOW (768u << 10)  /* net/quic.h's defaults */
#define QUIC_START_STREAM_WINDOW (512u << 10)
#define FIRST_HANDSHAKE_MS 5000   /* cloudflared's HandshakeIdleTimeout */
#define RECONNECT_HANDSHAKE_MS 1500
#define UNREACHABLE_BASE_MS 100
#define UNREACHABLE_CAP_MS 500
#define REFUSED_BASE_MS 1000
#define REFUSED_CAP_MS 32000

typedef struct slot {
  wr_supervisor *sup;
  unsigned index;
  unsigned addr;           /* index in edges[] this slot dials */
  int state;
  int end;                 /* END_* of the last connection */
  int registered_once;
  int unreg_pending;       /* unregisterConnection sent, answer not seen yet */
  unsigned failures;       /* consecutive, for the backoff */
  unsigned attempts;       /* numPreviousAttempts sent to the edge */
  wr_quic_endpoint *ep;
  wr_quic_conn *conn;
  wr_h2_link *h2;          /* instead of ep/conn on an HTTP/2 connection */
  wr_registration *reg;
  uv_timer_t timer;        /* retry and reap */
  char conn_id[WR_UUID_STR_LEN + 1];
  char location[64];
  char edge[64];           /* "127.0.0.1:7844" for logs */
  uint8_t edge_ip[16];     /* originLocalIp over HTTP/2 */
} slot;

struct wr_supervisor {
  uv_loop_t *loop;
  wr_credentials cred;
  struct sockaddr_storage edges[WR_SUPERVISOR_MAX_CONNS];
  size_t nedges;
  unsigned nslots;
  slot slots[WR_SUPERVISOR_MAX_CONNS];
  wr_quic_tls *tls;
  wr_tls_creds *h2_creds;  /* the edge's trust anchors for HTTP/2 (TLS over TCP) */
  int protocol;            /* WR_PROTOCOL_* asked for */
  int proto;               /* the transport new connections use: QUIC or HTTP2 */
  unsigned retries;        /* --retries: QUIC failures before the fallback */
  char *ca_file;
  wr_uuid connector_id;
  char *local_config;
  size_t local_config_len;
  char **features;
  size_t nfeatures;
  struct sockaddr_storage bind_addr;
  int has_bind;
  uint64_t dial_timeout_ms, rpc_timeout_ms, max_conn_window, max_stream_window;
  wr_proxy *proxy;
  wr_dgram_mux *mux;
  void (*on_fatal)(void *, const char *);
  void (*on_change)(void *);
  void (*on_stopped)(void *);
  void *user;

  int any_registered;      /* some slot registered at least once */
  int others_started;
  int stopping;
  int stopped_notified;
  int fatal;
  uint64_t registrations;
  uv_timer_t grace;        /* shutdown: bounds the wait for in-flight streams */
  uv_timer_t poll;         /* shutdown: checks whether everything drained */
  wr_owner owner;          /* holds the timers; its release frees |s| */
};

static void slot_connect(slot *sl);
static void maybe_finish_shutdown(wr_supervisor *s);
static void supervisor_release(wr_owner *o);

static int slot_has_conn(const slot *sl) { return sl->conn != NULL || sl->h2 != NULL; }

/* Closes the slot's connection, whichever transport it is (on_close of it
 * follows). */
static void slot_close_conn(slot *sl, const char *why) {
  if (sl->h2)
    wr_h2_link_close(sl->h2, why);
  else if (sl->conn)
    wr_quic_conn_close(sl->conn, 0, why);
}

static void notify_change(wr_supervisor *s) {
  if (s->on_change) s->on_change(s->user);
}

static uint64_t jitter(uint64_t max_ms) {
  uint8_t r[2];
  if (max_ms == 0 || wr_random_bytes(r, sizeof(r)) != 0) return 0;
  return ((uint64_t)r[0] << 8 | r[1]) % (max_ms + 1);
}

/* The delay before the next dial of |sl|, from how its last connection
 * ended (see supervisor.h). */
static uint64_t retry_delay(slot *sl) {
  unsigned f = sl->failures > 10 ? 10 : sl->failures;
  uint64_t d;
  switch (sl->end) {
  case END_RESET:
    return jitter(100);
  case END_REFUSED:
    d = (uint64_t)REFUSED_BASE_MS << f;
    if (d > REFUSED_CAP_MS) d = REFUSED_CAP_MS;
    return d / 2 + jitter(d / 2);
  default:
    d = (uint64_t)UNREACHABLE_BASE_MS << f;
    if (d > UNREACHABLE_CAP_MS) d = UNREACHABLE_CAP_MS;
    return d / 2 + jitter(d / 2);
  }
}

/* ---- timers: reap the dead connection, then dial again -------------------- */

/* A slot whose edge stopped answering moves to an address no other slot
 * uses, when there is one (more addresses than HA connections), as
 * cloudflared takes a different address from its pool: an edge that died
 * for good then no longer costs the connector a connection. With every
 * address taken it keeps its own (it may come back). */
static void slot_move_addr(slot *sl) {
  wr_supervisor *s = sl->sup;
  for (size_t k = 1; k < s->nedges; k++) {
    unsigned cand = (unsigned)((sl->addr + k) % s->nedges);
    unsigned i = 0;
    while (i < s->nslots && (i == sl->index || s->slots[i].addr != cand)) i++;
    if (i < s->nslots) continue; /* taken */
    char to[64];
    wr_addr_format(&s->edges[cand], to, sizeof(to));
    wr_info("Connection connIndex=%u moves from %s to %s", sl->index, sl->edge, to);
    sl->addr = cand;
    memcpy(sl->edge, to, sizeof(sl->edge));
    return;
  }
}

static void slot_timer_cb(uv_timer_t *t) {
  slot *sl = t->data;
  wr_supervisor *s = sl->sup;
  if (sl->state == SL_DEAD) {
    /* Runs outside every QUIC callback: the place to free (STYLE 2.1). */
    wr_registration_free(sl->reg);
    sl->reg = NULL;
    wr_quic_endpoint_free(sl->ep);
    sl->ep = NULL;
    sl->conn = NULL;
    wr_h2_link_free(sl->h2);
    sl->h2 = NULL;
    sl->state = SL_IDLE;
    if (s->stopping) {
      maybe_finish_shutdown(s);
      return;
    }
    if (sl->end == END_UNREACHABLE) slot_move_addr(sl);
    uint64_t d = retry_delay(sl);
    if (sl->end != END_RESET)
      wr_info("Retrying connection connIndex=%u to %s in %llums", sl->index, sl->edge,
              (unsigned long long)d);
    uv_timer_start(&sl->timer, slot_timer_cb, d, 0);
    return;
  }
  if (sl->state == SL_REGISTERING && slot_has_conn(sl)) {
    wr_error("Registration of connIndex=%u with %s timed out after %llums", sl->index, sl->edge,
             (unsigned long long)s->rpc_timeout_ms);
    sl->end = END_UNREACHABLE;
    sl->state = SL_CLOSING;
    slot_close_conn(sl, "registration timed out");
    return;
  }
  if (sl->state == SL_IDLE && !s->stopping) slot_connect(sl);
}

/* ---- registration events ---------------------------------------------------- */

static void start_others(wr_supervisor *s) {
  if (s->others_started) return;
  s->others_started = 1;
  for (unsigned i = 1; i < s->nslots; i++) {
    /* cloudflared spaces them 1 s apart; 100 ms is enough to avoid a burst. */
    uv_timer_start(&s->slots[i].timer, slot_timer_cb, 100 * i, 0);
  }
}

/* Connection 0 could not reach its edge before any connection registered:
 * with several edge addresses the other connections start now instead of
 * waiting for it, so that one edge being down does not keep the
 * connector off the others (each still dials its own address). */
static void first_unreachable(slot *sl) {
  wr_supervisor *s = sl->sup;
  if (sl->index == 0 && sl->end == END_UNREACHABLE && !s->any_registered && s->nedges > 1 &&
      !s->stopping)
    start_others(s);
}

static void on_registered(wr_registration *r, void *user, const wr_registration_result *res) {
  slot *sl = user;
  wr_supervisor *s = sl->sup;
  (void)r;
  if (sl->state == SL_REGISTERING) uv_timer_stop(&sl->timer); /* the rpc timeout */
  if (res->ok) {
    sl->state = SL_REGISTERED;
    sl->registered_once = 1;
    sl->failures = 0;
    sl->end = END_NONE;
    s->any_registered = 1;
    s->registrations++;
    snprintf(sl->conn_id, sizeof(sl->conn_id), "%s", res->conn_id);
    snprintf(sl->location, sizeof(sl->location), "%s", res->location);
    if (s->stopping) {
      /* Registered while shutting down: leave at once. */
      if (wr_registration_unregister(sl->reg) == WR_OK) sl->unreg_pending = 1;
      sl->state = SL_UNREGISTERING;
    } else {
      start_others(s);
    }
    notify_change(s);
    return;
  }
  sl->end = END_REFUSED;
  wr_error("Register tunnel error from server side connIndex=%u error=\"%s\"", sl->index,
           res->cause);
  if (!res->should_retry && !res->dup_conn && !s->any_registered && !s->fatal) {
    s->fatal = 1;
    if (s->on_fatal) s->on_fatal(s->user, res->cause);
  }
  sl->failures++;
  if (slot_has_conn(sl) && sl->state != SL_CLOSING) {
    sl->state = SL_CLOSING;
    slot_close_conn(sl, "registration refused");
  }
}

static void on_unregistered(wr_registration *r, void *user, int ok) {
  slot *sl = user;
  if (!sl->unreg_pending) return;
  sl->unreg_pending = 0;
  char ip[INET6_ADDRSTRLEN];
  wr_registration_edge_ip(r, ip, sizeof(ip));
  wr_info("Unregistered tunnel connection connIndex=%u event=0 ip=%s%s", sl->index, ip,
          ok ? "" : " (the edge did not answer)");
  maybe_finish_shutdown(sl->sup);
}

/* ---- QUIC events ------------------------------------------------------------ */

static int is_control(slot *sl, int64_t sid) {
  return sl->reg && sid == wr_registration_stream_id(sl->reg);
}

/* Edge-opened streams, and the RPC streams the proxy opened itself
 * (unregisterUdpSession; they carry the proxy's stream pointer). The
 * control stream has none. */
static int is_proxy_stream(int64_t sid, void *suser) { return (sid & 1) || suser != NULL; }

/* What every registration of |sl| sends, whichever the transport. */
static void registration_config(slot *sl, wr_registration_config *rc) {
  wr_supervisor *s = sl->sup;
  memset(rc, 0, sizeof(*rc));
  rc->cred = &s->cred;
  rc->connector_id = s->connector_id;
  rc->conn_index = (uint8_t)sl->index;
  rc->num_previous_attempts = (uint8_t)(sl->attempts > 255 ? 255 : sl->attempts);
  rc->extra_features = (const char *const *)s->features;
  rc->nextra_features = s->nfeatures;
  rc->local_config = s->local_config;
  rc->local_config_len = s->local_config_len;
  rc->on_registered = on_registered;
  rc->on_unregistered = on_unregistered;
  rc->user = sl;
}

static int h_reg_write(void *io, const uint8_t *data, size_t len) {
  slot *sl = io;
  return sl->h2 ? wr_h2_link_control_write(sl->h2, data, len) : WR_ERR_INVAL;
}

static void h_reg_fin(void *io) {
  slot *sl = io;
  if (sl->h2) wr_h2_link_control_end(sl->h2);
}

/* --protocol auto (protocol.md 1.5): QUIC that keeps failing before any
 * connection ever registered gives way to HTTP/2 for every connection from
 * now on, as cloudflared's fallback. cloudflared would then stay on HTTP/2;
 * here HTTP/2 failing as often hands back to QUIC, so an edge that comes
 * back with QUIC only is not missed. */
static void maybe_fall_back(slot *sl) {
  wr_supervisor *s = sl->sup;
  if (s->protocol != WR_PROTOCOL_AUTO || s->any_registered || s->stopping ||
      sl->end != END_UNREACHABLE || sl->failures < s->retries)
    return;
  if (s->proto == WR_PROTOCOL_QUIC) {
    wr_warn("Connection connIndex=%u failed %u times over quic; switching to the fallback "
            "protocol http2",
            sl->index, sl->failures);
    s->proto = WR_PROTOCOL_HTTP2;
  } else {
    wr_warn("Connection connIndex=%u failed %u times over http2 too; trying quic again",
            sl->index, sl->failures);
    s->proto = WR_PROTOCOL_QUIC;
  }
  for (unsigned i = 0; i < s->nslots; i++) s->slots[i].failures = 0;
}

static void q_handshake_done(wr_quic_conn *c, void *user) {
  slot *sl = user;
  wr_supervisor *s = sl->sup;
  wr_registration_config rc;
  registration_config(sl, &rc);
  int rv = wr_registration_start(c, &rc, &sl->reg);
  if (rv != WR_OK) {
    wr_error("connIndex=%u: cannot start registration: %s", sl->index, wr_strerror(rv));
    sl->end = END_REFUSED;
    sl->state = SL_CLOSING;
    wr_quic_conn_close(c, 0, "registration failed");
    return;
  }
  sl->state = SL_REGISTERING;
  if (s->rpc_timeout_ms) uv_timer_start(&sl->timer, slot_timer_cb, s->rpc_timeout_ms, 0);
}

static int q_stream_open(wr_quic_conn *c, int64_t sid, void *user) {
  slot *sl = user;
  if (!(sid & 1)) return 0; /* client-initiated: only our control stream */
  return wr_proxy_on_stream_open(sl->sup->proxy, c, sid);
}

static int q_stream_data(wr_quic_conn *c, int64_t sid, const uint8_t *data, size_t len, int fin,
                         void *user, void *suser) {
  slot *sl = user;
  if (is_control(sl, sid)) {
    wr_quic_stream_consume(c, sid, len);
    return wr_registration_stream_data(sl->reg, sid, data, len, fin);
  }
  if (!is_proxy_stream(sid, suser)) {
    wr_quic_stream_consume(c, sid, len);
    return 0;
  }
  return wr_proxy_on_stream_data(sl->sup->proxy, c, sid, data, len, fin, suser);
}

static int q_stream_reset(wr_quic_conn *c, int64_t sid, uint64_t code, void *user, void *suser) {
  slot *sl = user;
  if (!is_proxy_stream(sid, suser)) return 0;
  return wr_proxy_on_stream_reset(sl->sup->proxy, c, sid, code, suser);
}

static void q_stream_writable(wr_quic_conn *c, int64_t sid, void *user, void *suser) {
  slot *sl = user;
  if (is_proxy_stream(sid, suser)) wr_proxy_on_stream_writable(sl->sup->proxy, c, sid, suser);
}

static void q_stream_close(wr_quic_conn *c, int64_t sid, int has_code, uint64_t code, void *user,
                           void *suser) {
  slot *sl = user;
  (void)has_code;
  (void)code;
  if (is_proxy_stream(sid, suser)) wr_proxy_on_stream_close(sl->sup->proxy, c, sid, suser);
}

/* Datagrams count once the connection registered, as cloudflared starts
 * its muxer with the connection's Serve. */
static int q_datagram(wr_quic_conn *c, const uint8_t *data, size_t len, void *user) {
  slot *sl = user;
  if (!sl->sup->mux || (sl->state != SL_REGISTERED && sl->state != SL_UNREGISTERING)) return 0;
  return wr_dgram_mux_input(sl->sup->mux, c, data, len);
}

static void q_close(wr_quic_conn *c, const wr_quic_close_info *info, void *user) {
  slot *sl = user;
  wr_supervisor *s = sl->sup;
  int was_registered = sl->state == SL_REGISTERED;
  wr_proxy_on_conn_close(s->proxy, c);
  if (s->mux) wr_dgram_mux_conn_gone(s->mux, c);
  if (info->reset)
    sl->end = END_RESET; /* the edge restarted: come back at once */
  else if (sl->end != END_REFUSED)
    sl->end = END_UNREACHABLE;
  if (sl->end == END_UNREACHABLE) sl->failures++;
  sl->attempts++;
  maybe_fall_back(sl);
  first_unreachable(sl);
  if (!s->stopping || info->err != WR_OK)
    WR_LOG(was_registered ? WR_LOG_WARN : WR_LOG_DEBUG, "Connection connIndex=%u to %s ended: %s",
           sl->index, sl->edge, info->msg);
  sl->state = SL_DEAD;
  sl->conn_id[0] = '\0';
  /* Free the endpoint from a timer: freeing it here would close the socket
   * before our CONNECTION_CLOSE leaves. */
  uv_timer_start(&sl->timer, slot_timer_cb, 0, 0);
  if (was_registered) notify_change(s);
}

/* ---- HTTP/2 events (connector/h2_link.h) ----------------------------------------- */

/* The edge opened the control stream: the registration runs over it. */
static void h_control_open(void *user) {
  slot *sl = user;
  wr_supervisor *s = sl->sup;
  wr_registration_config rc;
  registration_config(sl, &rc);
  rc.io_write = h_reg_write;
  rc.io_fin = h_reg_fin;
  rc.io = sl;
  rc.protocol = "http2";
  rc.origin_local_ip = sl->edge_ip;
  rc.origin_local_ip_len = 16;
  int rv = wr_registration_start(NULL, &rc, &sl->reg);
  if (rv != WR_OK) {
    wr_error("connIndex=%u: cannot start registration: %s", sl->index, wr_strerror(rv));
    sl->end = END_REFUSED;
    sl->state = SL_CLOSING;
    slot_close_conn(sl, "registration failed");
    return;
  }
  sl->state = SL_REGISTERING;
  if (s->rpc_timeout_ms) uv_timer_start(&sl->timer, slot_timer_cb, s->rpc_timeout_ms, 0);
}

static void h_control_data(void *user, const uint8_t *data, size_t len, int fin) {
  slot *sl = user;
  if (sl->reg) wr_registration_input(sl->reg, data, len, fin);
}

static void h_close(void *user, int status, const char *msg) {
  slot *sl = user;
  wr_supervisor *s = sl->sup;
  int was_registered = sl->state == SL_REGISTERED;
  if (sl->end != END_REFUSED) sl->end = END_UNREACHABLE;
  if (sl->end == END_UNREACHABLE) sl->failures++;
  sl->attempts++;
  maybe_fall_back(sl);
  first_unreachable(sl);
  if (!s->stopping || status != WR_OK)
    WR_LOG(was_registered ? WR_LOG_WARN : WR_LOG_DEBUG, "Connection connIndex=%u to %s ended: %s",
           sl->index, sl->edge, msg && msg[0] ? msg : "closed");
  sl->state = SL_DEAD;
  sl->conn_id[0] = '\0';
  uv_timer_start(&sl->timer, slot_timer_cb, 0, 0); /* reap: frees the link */
  if (was_registered) notify_change(s);
}

/* After a dial: connecting, or on |rv| != WR_OK the failure counted and the
 * next attempt scheduled. */
static void dialed(slot *sl, int rv) {
  if (rv != WR_OK) {
    wr_error("connIndex=%u: cannot dial %s: %s", sl->index, sl->edge, wr_strerror(rv));
    sl->failures++;
    sl->end = END_UNREACHABLE;
    first_unreachable(sl);
    uv_timer_start(&sl->timer, slot_timer_cb, retry_delay(sl), 0);
    return;
  }
  sl->state = SL_CONNECTING;
}

static void slot_connect_h2(slot *sl) {
  wr_supervisor *s = sl->sup;
  wr_h2_link_config lc;
  const struct sockaddr_storage *edge = &s->edges[sl->addr];
  memset(&lc, 0, sizeof(lc));
  lc.loop = s->loop;
  lc.creds = s->h2_creds;
  lc.edge = (const struct sockaddr *)edge;
  lc.local = s->has_bind ? (const struct sockaddr *)&s->bind_addr : NULL;
  lc.proxy = s->proxy;
  lc.on_control_open = h_control_open;
  lc.on_control_data = h_control_data;
  lc.on_close = h_close;
  lc.user = sl;
  wr_addr_ip16((const struct sockaddr *)edge, sl->edge_ip);
  sl->end = END_NONE;
  dialed(sl, wr_h2_link_dial(&lc, &sl->h2));
}

static const wr_quic_callbacks quic_cbs = {
    .on_handshake_done = q_handshake_done,
    .on_stream_open = q_stream_open,
    .on_stream_data = q_stream_data,
    .on_stream_reset = q_stream_reset,
    .on_stream_writable = q_stream_writable,
    .on_stream_close = q_stream_close,
    .on_datagram = q_datagram,
    .on_close = q_close,
};

static void slot_connect(slot *sl) {
  wr_supervisor *s = sl->sup;
  if (s->proto == WR_PROTOCOL_HTTP2) {
    slot_connect_h2(sl);
    return;
  }
  const struct sockaddr *edge =
      (const struct sockaddr *)&s->edges[sl->addr];
  wr_quic_config qc;
  memset(&qc, 0, sizeof(qc));
  qc.ca_file = s->ca_file;
  uint64_t first = s->dial_timeout_ms ? s->dial_timeout_ms : FIRST_HANDSHAKE_MS;
  qc.handshake_timeout_ms =
      sl->attempts && first > RECONNECT_HANDSHAKE_MS ? RECONNECT_HANDSHAKE_MS : first;
  qc.local_addr = s->has_bind ? (const struct sockaddr *)&s->bind_addr : NULL;
  qc.max_conn_window = s->max_conn_window;
  qc.max_stream_window = s->max_stream_window;
  /* A ceiling below the default start windows lowers those too. */
  if (s->max_conn_window && s->max_conn_window < QUIC_START_CONN_WINDOW)
    qc.conn_window = s->max_conn_window;
  if (s->max_stream_window && s->max_stream_window < QUIC_START_STREAM_WINDOW)
    qc.stream_window = s->max_stream_window;
  sl->end = END_NONE;
  dialed(sl, wr_quic_endpoint_client(s->loop, s->tls, &qc, edge, &quic_cbs, sl, &sl->ep, &sl->conn));
}

/* A supervisor holding its own copy of |cfg| and its settings, no
 * connection yet. */
static wr_supervisor *supervisor_new(const wr_supervisor_config *cfg) {
  const wr_supervisor_edge *e = cfg->edge;
  wr_supervisor *s = wr_xcalloc(1, sizeof(*s));
  wr_owner_init(&s->owner, supervisor_release);
  s->loop = cfg->loop;
  s->cred = *e->cred;
  s->nedges = e->nedges > WR_SUPERVISOR_MAX_CONNS ? WR_SUPERVISOR_MAX_CONNS : e->nedges;
  memcpy(s->edges, e->edges, s->nedges * sizeof(s->edges[0]));
  unsigned want = e->ha_connections ? e->ha_connections : WR_SUPERVISOR_MAX_CONNS;
  unsigned ha = want > WR_SUPERVISOR_MAX_CONNS ? WR_SUPERVISOR_MAX_CONNS : want;
  if (ha > s->nedges) ha = (unsigned)s->nedges; /* one connection per address */
  if (ha < want) /* cloudflared's line and level (supervisor.initialize) */
    wr_info("You requested %u HA connections but I can give you at most %u.", want, ha);
  s->nslots = ha;
  s->ca_file = e->ca_file ? wr_xstrdup(e->ca_file) : NULL;
  s->connector_id = cfg->connector_id;
  if (e->local_config) {
    s->local_config = wr_xstrdup(e->local_config);
    s->local_config_len = strlen(e->local_config);
  }
  if (cfg->nextra_features) {
    s->features = wr_xcalloc(cfg->nextra_features, sizeof(char *));
    for (size_t i = 0; i < cfg->nextra_features; i++)
      s->features[i] = wr_xstrdup(cfg->extra_features[i]);
    s->nfeatures = cfg->nextra_features;
  }
  if (e->bind_addr) {
    s->bind_addr = *e->bind_addr;
    s->has_bind = 1;
  }
  s->dial_timeout_ms = e->dial_timeout_ms;
  s->rpc_timeout_ms = e->rpc_timeout_ms;
  s->max_conn_window = e->max_conn_window;
  s->max_stream_window = e->max_stream_window;
  s->proxy = cfg->proxy;
  s->mux = cfg->mux;
  s->protocol = e->protocol;
  s->proto = e->protocol == WR_PROTOCOL_HTTP2 ? WR_PROTOCOL_HTTP2 : WR_PROTOCOL_QUIC;
  s->retries = e->retries ? e->retries : 5;
  s->on_fatal = cfg->on_fatal;
  s->on_change = cfg->on_change;
  s->on_stopped = cfg->on_stopped;
  s->user = cfg->user;
  return s;
}

/* ---- public ------------------------------------------------------------------ */

int wr_supervisor_start(const wr_supervisor_config *cfg, wr_supervisor **out, char *err,
                        size_t errlen) {
  *out = NULL;
  const wr_supervisor_edge *e = cfg ? cfg->edge : NULL;
  if (!e || !cfg->loop || !e->cred || !e->edges || !e->nedges || !cfg->proxy)
    return WR_ERR_INVAL;
  wr_supervisor *s = supervisor_new(cfg);

  /* Without --cacert: the system store and Cloudflare's roots, as
   * cloudflared's CreateTunnelConfig. */
  size_t roots_len = 0;
  const char *roots = s->ca_file ? NULL : wr_cloudflare_roots_pem(&roots_len);
  wr_quic_config qc;
  memset(&qc, 0, sizeof(qc));
  qc.ca_file = s->ca_file;
  qc.extra_ca_pem = roots;
  qc.extra_ca_pem_len = roots_len;
  int rv = wr_quic_tls_new(WR_QUIC_CLIENT, &qc, &s->tls, err, errlen);
  if (rv == WR_OK && s->protocol != WR_PROTOCOL_QUIC) {
    wr_tls_client_config tc;
    memset(&tc, 0, sizeof(tc));
    tc.ca_file = s->ca_file;
    tc.extra_ca_pem = roots;
    tc.extra_ca_pem_len = roots_len;
    rv = wr_tls_creds_client_p256(&tc, &s->h2_creds, err, errlen);
  }
  if (rv != WR_OK) {
    wr_supervisor_free(s);
    return rv;
  }
  wr_owner_timer_init(&s->owner, s->loop, &s->grace, s);
  wr_owner_timer_init(&s->owner, s->loop, &s->poll, s);
  for (unsigned i = 0; i < s->nslots; i++) {
    slot *sl = &s->slots[i];
    sl->sup = s;
    sl->index = i;
    sl->addr = (unsigned)(i % s->nedges);
    wr_addr_format(&s->edges[sl->addr], sl->edge, sizeof(sl->edge));
    wr_owner_timer_init(&s->owner, s->loop, &sl->timer, sl);
  }
  slot_connect(&s->slots[0]);
  *out = s;
  return WR_OK;
}

unsigned wr_supervisor_ready(const wr_supervisor *s) {
  unsigned n = 0;
  for (unsigned i = 0; i < s->nslots; i++) n += s->slots[i].state == SL_REGISTERED;
  return n;
}

uint64_t wr_supervisor_registrations(const wr_supervisor *s) { return s->registrations; }

unsigned wr_supervisor_nslots(const wr_supervisor *s) { return s->nslots; }

const char *wr_supervisor_conn_id(const wr_supervisor *s, unsigned i, const char **location) {
  if (i >= s->nslots) return "";
  if (location) *location = s->slots[i].location;
  return s->slots[i].state == SL_REGISTERED ? s->slots[i].conn_id : "";
}

/* ---- shutdown --------------------------------------------------------------------- */

static void close_all(wr_supervisor *s) {
  for (unsigned i = 0; i < s->nslots; i++) {
    slot *sl = &s->slots[i];
    uv_timer_stop(&sl->timer);
    if (sl->state == SL_DEAD) {
      uv_timer_start(&sl->timer, slot_timer_cb, 0, 0); /* reap */
      continue;
    }
    if (!slot_has_conn(sl) || sl->state == SL_CLOSING || sl->state == SL_IDLE) continue;
    if (sl->reg) wr_registration_close(sl->reg);
    sl->state = SL_CLOSING;
    slot_close_conn(sl, "");
  }
}

static void maybe_finish_shutdown(wr_supervisor *s) {
  if (!s->stopping || s->stopped_notified) return;
  int waiting_unreg = 0, open = 0;
  for (unsigned i = 0; i < s->nslots; i++) {
    slot *sl = &s->slots[i];
    if (sl->state != SL_IDLE) open++;
    if (sl->state == SL_UNREGISTERING && sl->unreg_pending) waiting_unreg++;
  }
  if (!open) {
    s->stopped_notified = 1;
    uv_timer_stop(&s->grace);
    uv_timer_stop(&s->poll);
    if (s->on_stopped) s->on_stopped(s->user);
    return;
  }
  /* Everything answered and drained: close now instead of waiting for the
   * grace period. */
  if (!waiting_unreg && wr_proxy_active(s->proxy) == 0) close_all(s);
}

static void poll_cb(uv_timer_t *t) { maybe_finish_shutdown(t->data); }

static void grace_cb(uv_timer_t *t) {
  wr_supervisor *s = t->data;
  size_t n = wr_proxy_active(s->proxy);
  if (n) wr_warn("Grace period over: aborting %zu request(s) still in flight", n);
  close_all(s);
}

void wr_supervisor_shutdown(wr_supervisor *s, uint64_t grace_ms) {
  if (s->stopping) {
    close_all(s);
    return;
  }
  s->stopping = 1;
  for (unsigned i = 0; i < s->nslots; i++) {
    slot *sl = &s->slots[i];
    if (sl->state == SL_IDLE) {
      uv_timer_stop(&sl->timer);
    } else if (sl->state == SL_REGISTERED) {
      sl->state = SL_UNREGISTERING;
      if (wr_registration_unregister(sl->reg) == WR_OK) sl->unreg_pending = 1;
    } else if (sl->state == SL_CONNECTING || sl->state == SL_REGISTERING) {
      sl->state = SL_CLOSING;
      slot_close_conn(sl, "");
    }
  }
  notify_change(s);
  uv_timer_start(&s->grace, grace_cb, grace_ms, 0);
  uv_timer_start(&s->poll, poll_cb, 50, 50);
  maybe_finish_shutdown(s);
}

/* Freeing takes two loop iterations: libuv runs close callbacks newest
 * first, so the endpoints closed in wr_supervisor_free release their
 * connections (and GnuTLS sessions) in the same pass as the poll timer's
 * callback; the other timers are closed from there and finish one pass
 * later, after which the TLS credentials can go. */
static void supervisor_release(wr_owner *o) {
  wr_supervisor *s = WR_OWNER_OBJ(o, wr_supervisor, owner);
  if (s->tls) wr_quic_tls_free(s->tls);
  wr_tls_creds_free(s->h2_creds);
  free(s);
}

static void first_stage_closed(uv_handle_t *h) {
  wr_supervisor *s = h->data;
  for (unsigned i = 0; i < s->nslots; i++)
    wr_owner_close_handle(&s->owner, (uv_handle_t *)&s->slots[i].timer);
  wr_owner_close_handle(&s->owner, (uv_handle_t *)&s->grace);
  wr_owner_drop(&s->owner); /* the poll timer */
}

void wr_supervisor_free(wr_supervisor *s) {
  if (!s) return;
  for (unsigned i = 0; i < s->nslots; i++) {
    slot *sl = &s->slots[i];
    if (sl->conn && sl->state != SL_DEAD) wr_proxy_on_conn_close(s->proxy, sl->conn);
    if (sl->h2) wr_h2_link_abort(sl->h2); /* frees itself once its handles closed */
    sl->h2 = NULL;
    wr_registration_free(sl->reg);
    sl->reg = NULL;
    if (sl->ep) wr_quic_endpoint_free(sl->ep);
    sl->ep = NULL;
    sl->conn = NULL;
  }
  free(s->ca_file);
  free(s->local_config);
  for (size_t i = 0; i < s->nfeatures; i++) free(s->features[i]);
  free(s->features);
  /* Frees |s| at once when start failed before the timers existed. */
  if (s->owner.pending) uv_close((uv_handle_t *)&s->poll, first_stage_closed);
  wr_owner_close(&s->owner);
}
