/* QUIC transport: one connection. Creation (client; server from a client
 * Initial), ngtcp2 settings and transport parameters, the connection-ID,
 * handshake and Stateless Reset callbacks, reading packets, writing them
 * (CONNECTION_CLOSE here, application data through quic_stream.c), timers,
 * and the close state machine: set_state makes every transition. See
 * quic.h for the contract and quic_int.h for how the QUIC files divide the
 * work.
 *
 * Ownership of server connections: a connection created from a client
 * Initial has no owner until its handshake completes (quic.h,
 * wr_quic_accept_cb). Until then none of the owner's callbacks can fire for
 * it (c->cbs is empty, c->user NULL) and the endpoint frees it itself; the
 * owner's on_accept runs from cb_handshake_completed, before any stream
 * event of the same datagram. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include "lib/err.h"
#include "net/quic_int.h"

static uint64_t cfg_u64(uint64_t v, uint64_t def) { return v ? v : def; }

/* --- lifecycle (all state transitions happen here) ---------------------- */

/* Moves |c| to |st|. Entering any of the closed states delivers on_close
 * exactly once, with c->msg and the given parameters. */
static void set_state(wr_quic_conn *c, wr_quic_state st, int local, int app,
                      int idle, uint64_t code, int err) {
  if (c->state == WR_QUIC_CLOSED) return;
  c->state = st;
  if (st >= WR_QUIC_CLOSING && !c->closed_notified) {
    wr_quic_close_info info = {.local = local, .app = app, .idle = idle, .code = code,
                               .err = err, .reset = c->got_reset, .msg = c->msg};
    c->closed_notified = 1;
    /* Kept for an owner installed later (wr_quic_conn_server_accept). A
     * connection without an owner has no on_close: nobody is told. */
    c->close_ci = info;
    if (c->cbs.on_close) c->cbs.on_close(c, &info, c->user);
  }
}

/* Delivers an on_close that happened before the owner was installed, from
 * a public call where callbacks may fire. */
static void deliver_due_close(wr_quic_conn *c) {
  if (!c->close_cb_due) return;
  c->close_cb_due = 0;
  if (c->cbs.on_close) c->cbs.on_close(c, &c->close_ci, c->user);
}

static wr_quic_tstamp close_period(wr_quic_conn *c, wr_quic_tstamp now) {
  return now + 3 * ngtcp2_conn_get_pto(c->conn);
}

/* Starts a local close because of library error |liberr|. The
 * CONNECTION_CLOSE itself goes out with the next wr_quic_conn_write. */
static void close_on_error(wr_quic_conn *c, int liberr, wr_quic_tstamp now) {
  int err = WR_ERR_CRYPTO;
  uint64_t code;

  if (c->state >= WR_QUIC_CLOSING) return;
  if (!wr__quic_tls_close_error(c, liberr)) {
    ngtcp2_connection_close_error_set_transport_error_liberr(&c->ccerr, liberr,
                                                             NULL, 0);
    err = c->cb_failed ? WR_ERR_INTERNAL : WR_ERR_PROTO;
    snprintf(c->msg, sizeof(c->msg), "QUIC error: %s%s",
             ngtcp2_strerror(liberr),
             c->cb_failed ? " (application callback failed)" : "");
  }
  code = c->ccerr.error_code;
  c->close_pkt_pending = 1;
  c->close_deadline = close_period(c, now);
  set_state(c, WR_QUIC_CLOSING, 1, 0, 0, code, err);
}

/* --- ngtcp2 callbacks ------------------------------------------------------ */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
  return ((wr_quic_conn *)ref->user_data)->conn;
}

static void cb_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx) {
  (void)ctx;
  wr__quic_random(dest, len);
}

/* The stateless reset token of |cid|: derived from the server's static key
 * so that a restarted server can reset connections it forgot; random when
 * there is no key (a client never sends resets). */
static int reset_token(const wr_quic_conn *c, const ngtcp2_cid *cid, uint8_t *token) {
  if (!c->reset_key_len) {
    wr__quic_random(token, NGTCP2_STATELESS_RESET_TOKENLEN);
    return 0;
  }
  return ngtcp2_crypto_generate_stateless_reset_token(token, c->reset_key, c->reset_key_len,
                                                      cid) == 0 ? 0 : -1;
}

static int cb_new_cid(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token,
                      size_t cidlen, void *user) {
  wr_quic_conn *c = user;
  (void)conn;
  /* Random IDs: nothing in them links connections together. */
  wr__quic_random(cid->data, cidlen);
  cid->datalen = cidlen;
  if (reset_token(c, cid, token) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  if (c->ep && wr__quic_ep_cid_add(c, cid, 0) != WR_OK) return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int cb_remove_cid(ngtcp2_conn *conn, const ngtcp2_cid *cid, void *user) {
  wr_quic_conn *c = user;
  (void)conn;
  if (c->ep) wr__quic_ep_cid_remove(c, cid);
  return 0;
}

static int cb_recv_stateless_reset(ngtcp2_conn *conn, const ngtcp2_pkt_stateless_reset *sr,
                                   void *user) {
  wr_quic_conn *c = user;
  (void)conn;
  (void)sr;
  c->got_reset = 1;
  return 0;
}

static int cb_handshake_completed(ngtcp2_conn *conn, void *user) {
  wr_quic_conn *c = user;
  (void)conn;
  if (wr__quic_tls_handshake_done(c) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  /* A server connection gets its owner here, before the stream frames that
   * may follow in this same datagram are processed (ngtcp2 handles
   * buffered 1-RTT packets after this callback). */
  if (!c->adopted) wr__quic_ep_adopt(c);
  /* Deferred: the application hears about it after read_pkt returns, so
   * it may call anything (including wr_quic_conn_write) from it. */
  c->hs_done_pending = 1;
  /* A server's handshake is confirmed once complete (RFC 9001 4.1.2);
   * ngtcp2 0.12 calls handshake_confirmed only on the client. */
  if (c->role == WR_QUIC_SERVER) c->hs_confirmed = 1;
  return 0;
}

static int cb_handshake_confirmed(ngtcp2_conn *conn, void *user) {
  wr_quic_conn *c = user;
  (void)conn;
  c->hs_confirmed = 1;
  return 0;
}

static void set_callbacks(ngtcp2_callbacks *cb, wr_quic_role role) {
  memset(cb, 0, sizeof(*cb));
  wr__quic_tls_callbacks(cb, role);
  wr__quic_stream_callbacks(cb);
  cb->rand = cb_rand;
  cb->get_new_connection_id = cb_new_cid;
  cb->remove_connection_id = cb_remove_cid;
  cb->handshake_completed = cb_handshake_completed;
  cb->handshake_confirmed = cb_handshake_confirmed;
  cb->recv_stateless_reset = cb_recv_stateless_reset;
}

/* --- construction --------------------------------------------------------- */

/* Largest UDP payload we send to |remote| when the caller did not choose.
 * Internet paths get 1452 (quic-go's limit; fits a 1500-byte MTU for IPv4
 * and IPv6). A loopback peer gets 65488 (lo's 65536-byte MTU minus IPv6 and
 * UDP headers): on loopback the cost of a packet is almost all per-packet
 * kernel work, so 45x fewer packets roughly doubled bulk throughput
 * (bench/README.md), and ngtcp2 0.12's congestion window, capped near
 * 2.89 x initial window, scales with the packet size. The peer's
 * max_udp_payload_size transport parameter still bounds it (cloudflared:
 * 1452). */
static size_t default_payload(const struct sockaddr *remote) {
  if (remote->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)remote;
    if ((ntohl(a->sin_addr.s_addr) >> 24) == 127) return WR_QUIC_LOOPBACK_PAYLOAD;
  } else if (remote->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)remote;
    if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr)) return WR_QUIC_LOOPBACK_PAYLOAD;
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127)
      return WR_QUIC_LOOPBACK_PAYLOAD;
  }
  return WR_QUIC_INTERNET_PAYLOAD;
}

static void fill_settings(ngtcp2_settings *s, const wr_quic_config *cfg,
                          size_t max_payload, wr_quic_tstamp now) {
  ngtcp2_settings_default(s);
  s->initial_ts = now;
  s->handshake_timeout = cfg_u64(cfg->handshake_timeout_ms, 5000) * WR_QUIC_MS;
  s->max_window = cfg_u64(cfg->max_conn_window, 15u << 20);
  s->max_stream_window = cfg_u64(cfg->max_stream_window, 6u << 20);
  /* cloudflared's peer limit is a 1350-byte DATAGRAM frame and UDP payloads
   * of up to 1280 bytes ride in them, so packets must reach ~1400 bytes
   * from the first datagram on. ngtcp2 0.12 would cap packets at 1200
   * until PMTUD succeeds and silently be unable to carry such datagrams;
   * send up to max_payload (see default_payload) from the start instead. */
  s->max_tx_udp_payload_size = max_payload;
  s->no_tx_udp_payload_size_shaping = 1;
  s->no_pmtud = 1;
  wr__quic_trace_settings(s);
}

static void fill_params(ngtcp2_transport_params *p, const wr_quic_config *cfg) {
  uint64_t sw = cfg_u64(cfg->stream_window, 512u << 10);
  ngtcp2_transport_params_default(p);
  p->initial_max_stream_data_bidi_local = sw;
  p->initial_max_stream_data_bidi_remote = sw;
  p->initial_max_stream_data_uni = sw;
  p->initial_max_data = cfg_u64(cfg->conn_window, 768u << 10);
  p->initial_max_streams_bidi = cfg_u64(cfg->max_streams_bidi, 1ULL << 60);
  /* Unidirectional streams are unused by the tunnel protocol (protocol.md
   * 1.3); HTTP/3 needs a few (control and QPACK streams). */
  p->initial_max_streams_uni = cfg->max_streams_uni;
  p->max_idle_timeout = cfg_u64(cfg->idle_timeout_ms, 5000) * WR_QUIC_MS;
  p->max_datagram_frame_size = WR_QUIC_MAX_DATAGRAM_FRAME;
}

static wr_quic_conn *conn_alloc(wr_quic_role role, wr_quic_tls *tls,
                                const wr_quic_config *cfg,
                                const wr_quic_path *path,
                                const wr_quic_callbacks *cbs, void *user) {
  wr_quic_conn *c;
  if (path->locallen > sizeof(c->local) || path->remotelen > sizeof(c->remote))
    return NULL;
  c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->role = role;
  c->state = WR_QUIC_HANDSHAKE;
  c->tls = tls;
  if (cbs) c->cbs = *cbs;
  c->user = user;
  c->adopted = 1;
  c->send_queue_cap = cfg->stream_send_queue ? cfg->stream_send_queue : 1u << 20;
  c->dgram_queue_cap = cfg->datagram_queue ? cfg->datagram_queue : 256;
  c->max_udp_payload = cfg->max_udp_payload ? cfg->max_udp_payload : default_payload(path->remote);
  c->idle_ms = cfg_u64(cfg->idle_timeout_ms, 5000);
  c->uni_streams = cfg->max_streams_uni > 0;
  /* The tunnel protocol grants 2^60 bidi streams (the default): nothing to
   * give back, so its streams skip that work; HTTP/3's 100 need it. */
  c->bidi_credit = cfg_u64(cfg->max_streams_bidi, 1ULL << 60) < (1ULL << 59);
  if (role == WR_QUIC_SERVER) {
    c->sni_pick = cfg->sni_pick;
    c->sni_release = cfg->sni_release;
    c->sni_arg = cfg->sni_arg;
  }
  if (role == WR_QUIC_SERVER && cfg->reset_key && cfg->reset_key_len >= 16 &&
      cfg->reset_key_len <= sizeof(c->reset_key)) {
    memcpy(c->reset_key, cfg->reset_key, cfg->reset_key_len);
    c->reset_key_len = cfg->reset_key_len;
  }
  memcpy(&c->local, path->local, path->locallen);
  c->locallen = path->locallen;
  memcpy(&c->remote, path->remote, path->remotelen);
  c->remotelen = path->remotelen;
  c->ref.get_conn = get_conn;
  c->ref.user_data = c;
  return c;
}

static void make_path(wr_quic_conn *c, ngtcp2_path *path) {
  memset(path, 0, sizeof(*path));
  ngtcp2_addr_init(&path->local, (ngtcp2_sockaddr *)&c->local, c->locallen);
  ngtcp2_addr_init(&path->remote, (ngtcp2_sockaddr *)&c->remote, c->remotelen);
}

/* The steps both constructors end with, once c->conn is made: the TLS
 * session and the keepalive (|keepalive_ms| 0: none). On failure frees
 * everything |c| holds, and |c|. */
static int conn_finish(wr_quic_conn *c, const wr_quic_config *cfg, uint64_t keepalive_ms,
                       wr_quic_conn **out) {
  int rv = wr__quic_tls_session_new(c, cfg);
  if (rv != WR_OK) goto fail_session;
  if (keepalive_ms) ngtcp2_conn_set_keep_alive_timeout(c->conn, keepalive_ms * WR_QUIC_MS);
  *out = c;
  return WR_OK;

fail_session:
  if (c->session) gnutls_deinit(c->session);
  ngtcp2_conn_del(c->conn);
  free(c);
  return rv;
}

int wr_quic_conn_client_new(wr_quic_tls *tls, const wr_quic_config *cfg,
                            const wr_quic_path *path,
                            const wr_quic_callbacks *cbs, void *user,
                            wr_quic_tstamp now, wr_quic_conn **out) {
  ngtcp2_callbacks cb;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_cid dcid, scid;
  ngtcp2_path npath;
  wr_quic_conn *c;

  if (!tls || !cfg || !path || !path->local || !path->remote || !out ||
      tls->role != WR_QUIC_CLIENT)
    return WR_ERR_INVAL;
  c = conn_alloc(WR_QUIC_CLIENT, tls, cfg, path, cbs, user);
  if (!c) return WR_ERR_NOMEM;
  dcid.datalen = WR_QUIC_SCID_LEN;
  wr__quic_random(dcid.data, dcid.datalen);
  scid.datalen = WR_QUIC_SCID_LEN;
  wr__quic_random(scid.data, scid.datalen);
  set_callbacks(&cb, WR_QUIC_CLIENT);
  fill_settings(&settings, cfg, c->max_udp_payload, now);
  fill_params(&params, cfg);
  make_path(c, &npath);
  if (ngtcp2_conn_client_new(&c->conn, &dcid, &scid, &npath, NGTCP2_PROTO_VER_V1,
                             &cb, &settings, &params, wr__quic_mem(), c) != 0) {
    free(c);
    return WR_ERR_NOMEM;
  }
  /* cloudflared: PING when idle for 1 s (protocol.md 1.3). */
  return conn_finish(c, cfg, cfg->keepalive_ms == UINT64_MAX ? 0 : cfg_u64(cfg->keepalive_ms, 1000), out);
}

int wr__quic_server_conn_new(wr_quic_tls *tls, const wr_quic_config *cfg,
                             const wr_quic_path *path, const ngtcp2_pkt_hd *hd,
                             const ngtcp2_cid *odcid, wr_quic_tstamp now,
                             wr_quic_conn **out) {
  ngtcp2_callbacks cb;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_cid scid;
  ngtcp2_path npath;
  wr_quic_conn *c;

  c = conn_alloc(WR_QUIC_SERVER, tls, cfg, path, NULL, NULL);
  if (!c) return WR_ERR_NOMEM;
  /* Initial retransmissions still carry this DCID (ep_find). */
  c->odcid = hd->dcid;
  scid.datalen = WR_QUIC_SCID_LEN;
  wr__quic_random(scid.data, scid.datalen);
  set_callbacks(&cb, WR_QUIC_SERVER);
  fill_settings(&settings, cfg, c->max_udp_payload, now);
  fill_params(&params, cfg);
  if (odcid) {
    /* RFC 9000 7.3: after a Retry the client checks that
     * original_destination_connection_id is the DCID of its very first
     * Initial and retry_source_connection_id the SCID of our Retry (the
     * DCID it uses now). The validated token also tells ngtcp2 the
     * address is proven: no 3x amplification limit for it. */
    params.original_dcid = *odcid;
    params.retry_scid = hd->dcid;
    params.retry_scid_present = 1;
    settings.token = hd->token;
  } else {
    params.original_dcid = hd->dcid;
  }
  params.stateless_reset_token_present = 1;
  if (reset_token(c, &scid, params.stateless_reset_token) != 0) {
    free(c);
    return WR_ERR_CRYPTO;
  }
  make_path(c, &npath);
  if (ngtcp2_conn_server_new(&c->conn, &hd->scid, &scid, &npath, hd->version, &cb,
                             &settings, &params, wr__quic_mem(), c) != 0) {
    free(c);
    return WR_ERR_NOMEM;
  }
  return conn_finish(c, cfg, cfg->keepalive_ms == UINT64_MAX ? 0 : cfg->keepalive_ms, out);
}

int wr_quic_conn_server_accept(wr_quic_tls *tls, const wr_quic_config *cfg,
                               const wr_quic_path *path, const uint8_t *pkt,
                               size_t len, const wr_quic_callbacks *cbs,
                               void *user, wr_quic_tstamp now,
                               wr_quic_conn **out) {
  ngtcp2_pkt_hd hd;
  wr_quic_conn *c;
  int rv;

  if (!tls || !cfg || !path || !path->local || !path->remote || !out ||
      tls->role != WR_QUIC_SERVER)
    return WR_ERR_INVAL;
  if (ngtcp2_accept(&hd, pkt, len) != 0) return WR_ERR_PROTO;
  rv = wr__quic_server_conn_new(tls, cfg, path, &hd, NULL, now, &c);
  if (rv != WR_OK) return rv;
  /* The first packet is processed with no callbacks installed: whatever it
   * does to the connection, the caller's code does not run before it has
   * the connection in hand. */
  wr_quic_conn_read(c, path->remote, path->remotelen, pkt, len, now);
  if (c->state == WR_QUIC_CLOSED) {
    wr_quic_conn_free(c);
    return WR_ERR_PROTO;
  }
  if (cbs) c->cbs = *cbs;
  c->user = user;
  c->close_cb_due = c->closed_notified;
  *out = c;
  return WR_OK;
}

void wr_quic_conn_free(wr_quic_conn *c) {
  if (!c) return;
  wr__quic_streams_free(c);
  /* ngtcp2_conn_del first: it may still reference the session. */
  ngtcp2_conn_del(c->conn);
  if (c->session) gnutls_deinit(c->session);
  if (c->sni_ref && c->sni_release) c->sni_release(c->sni_arg, c->sni_ref);
  free(c->close_pkt);
  free(c);
}

/* --- I/O -------------------------------------------------------------------- */

static void after_events(wr_quic_conn *c) {
  if (c->hs_done_pending && c->state == WR_QUIC_HANDSHAKE) {
    c->hs_done_pending = 0;
    wr__quic_tls_session_drop(c);
    set_state(c, WR_QUIC_ESTABLISHED, 0, 0, 0, 0, WR_OK);
    if (c->cbs.on_handshake_done) c->cbs.on_handshake_done(c, c->user);
  }
}

/* A packet arrived in the closing period. RFC 9000 10.2.1: answer with our
 * CONNECTION_CLOSE again, but less and less often (after the 1st, 2nd, 4th,
 * 8th... packet), and never with more than 3x the bytes received
 * meanwhile: the address of a connection refused during its handshake was
 * never validated and may be a victim's (RFC 9000 8.1). */
static void closing_rx(wr_quic_conn *c, size_t len) {
  c->closing_rx_pkts++;
  c->closing_rx_bytes += len;
  if (c->close_pkt && (c->closing_rx_pkts & (c->closing_rx_pkts - 1)) == 0 &&
      3 * c->closing_rx_bytes >= c->closing_tx_bytes + c->close_pktlen)
    c->close_resend = 1;
}

/* ngtcp2 entered the draining state: the peer sent a CONNECTION_CLOSE or a
 * Stateless Reset. */
static void peer_closed(wr_quic_conn *c, wr_quic_tstamp now) {
  const ngtcp2_connection_close_error *e;
  ngtcp2_connection_close_error ce;
  int app, err;
  ngtcp2_conn_get_connection_close_error(c->conn, &ce);
  e = &ce;
  if (c->got_reset) {
    snprintf(c->msg, sizeof(c->msg),
             "peer sent a stateless reset (it no longer knows this connection)");
    c->close_deadline = close_period(c, now);
    set_state(c, WR_QUIC_DRAINING, 0, 0, 0, 0, WR_ERR_IO);
    return;
  }
  app = e->type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION;
  err = (app || e->error_code == NGTCP2_NO_ERROR) ? WR_OK
        : (e->error_code & ~0xffULL) == NGTCP2_CRYPTO_ERROR ? WR_ERR_CRYPTO
                                                            : WR_ERR_PROTO;
  snprintf(c->msg, sizeof(c->msg),
           "peer closed the connection: %s error 0x%" PRIx64 "%s%s%s%s%.*s",
           app ? "application" : "transport", e->error_code,
           err == WR_ERR_CRYPTO ? " (TLS alert " : "",
           err == WR_ERR_CRYPTO ? wr__quic_alert_name(e->error_code) : "",
           err == WR_ERR_CRYPTO ? ")" : "", e->reasonlen ? ": " : "",
           (int)(e->reasonlen > 100 ? 100 : e->reasonlen),
           e->reason ? (const char *)e->reason : "");
  c->close_deadline = close_period(c, now);
  after_events(c);
  set_state(c, WR_QUIC_DRAINING, 0, app, 0, e->error_code, err);
}

int wr_quic_conn_read(wr_quic_conn *c, const struct sockaddr *remote,
                      socklen_t remotelen, const uint8_t *data, size_t len,
                      wr_quic_tstamp now) {
  ngtcp2_path path;
  struct sockaddr_storage from;
  int rv;

  if (c->state == WR_QUIC_CLOSED || c->state == WR_QUIC_DRAINING)
    return WR_ERR_INVAL;
  c->now = now;
  if (c->state == WR_QUIC_CLOSING) {
    closing_rx(c, len);
    return WR_OK;
  }
  if (remotelen > sizeof(from)) return WR_ERR_INVAL;
  memcpy(&from, remote, remotelen);
  memset(&path, 0, sizeof(path));
  ngtcp2_addr_init(&path.local, (ngtcp2_sockaddr *)&c->local, c->locallen);
  ngtcp2_addr_init(&path.remote, (ngtcp2_sockaddr *)&from, remotelen);
  c->trace_rx += len;
  rv = ngtcp2_conn_read_pkt(c->conn, &path, NULL, data, len, now);
  switch (rv) {
  case 0:
    after_events(c);
    break;
  case NGTCP2_ERR_DRAINING:
    peer_closed(c, now);
    break;
  case NGTCP2_ERR_DROP_CONN:
  case NGTCP2_ERR_RETRY:
    snprintf(c->msg, sizeof(c->msg), "connection dropped: %s",
             ngtcp2_strerror(rv));
    set_state(c, WR_QUIC_CLOSED, 1, 0, 0, 0, WR_ERR_PROTO);
    break;
  default:
    /* Anything else is fatal for the connection (ngtcp2 docs: write a
     * CONNECTION_CLOSE and stop). */
    close_on_error(c, rv, now);
    break;
  }
  return WR_OK;
}

/* wr_quic_conn_close was called: enter the closing state now, from a call
 * where on_close may fire. */
static void start_app_close(wr_quic_conn *c, wr_quic_tstamp now) {
  c->close_pkt_pending = 1;
  c->close_deadline = close_period(c, now);
  snprintf(c->msg, sizeof(c->msg),
           "connection closed locally: application error 0x%" PRIx64,
           c->ccerr.error_code);
  set_state(c, WR_QUIC_CLOSING, 1, 1, 0, c->ccerr.error_code, WR_OK);
}

/* In the closing state: our CONNECTION_CLOSE once (kept for answers), then
 * a copy of it whenever closing_rx asked for one. */
static void write_closing(wr_quic_conn *c, uint8_t *buf, size_t cap, size_t *len,
                          wr_quic_tstamp now) {
  ngtcp2_path_storage ps;
  ngtcp2_ssize n;
  if (c->close_pkt_pending) {
    c->close_pkt_pending = 0;
    ngtcp2_path_storage_zero(&ps);
    n = ngtcp2_conn_write_connection_close(c->conn, &ps.path, NULL, buf, cap,
                                           &c->ccerr, now);
    if (n <= 0) return; /* nothing to say (e.g. no keys yet) */
    free(c->close_pkt);
    c->close_pkt = malloc((size_t)n);
    if (c->close_pkt) {
      memcpy(c->close_pkt, buf, (size_t)n);
      c->close_pktlen = (size_t)n;
    }
    *len = (size_t)n;
    c->closing_tx_bytes += (size_t)n;
  } else if (c->close_resend && c->close_pkt && c->close_pktlen <= cap) {
    c->close_resend = 0;
    memcpy(buf, c->close_pkt, c->close_pktlen);
    *len = c->close_pktlen;
    c->closing_tx_bytes += c->close_pktlen;
  }
}

int wr_quic_conn_write(wr_quic_conn *c, uint8_t *buf, size_t cap, size_t *len,
                       wr_quic_tstamp now) {
  ngtcp2_path_storage ps;
  ngtcp2_ssize n;

  *len = 0;
  deliver_due_close(c);
  if (c->state == WR_QUIC_CLOSED || c->state == WR_QUIC_DRAINING) return WR_OK;
  if (c->app_close_requested && c->state < WR_QUIC_CLOSING) start_app_close(c, now);
  if (c->state == WR_QUIC_CLOSING) {
    write_closing(c, buf, cap, len, now);
    return WR_OK;
  }

  /* Datagrams stay Internet-sized even to a loopback peer until the
   * handshake is confirmed: a datagram with an Initial packet is padded to
   * the whole buffer (the client's first one, and the one that acknowledges
   * the server's Initial after the handshake completed), the server answers
   * with as much, and pacing at the initial 333 ms RTT then held the rest of
   * the server's flight back for ~130 ms. And the receiver's ngtcp2 sizes its
   * decryption buffer, kept for the connection's life, to the largest
   * packet: a 64 KiB padded datagram cost every registered connection 64 KiB
   * of edge memory. */
  if (!c->hs_confirmed && cap > WR_QUIC_INTERNET_PAYLOAD) cap = WR_QUIC_INTERNET_PAYLOAD;
  ngtcp2_path_storage_zero(&ps);
  n = wr__quic_write_app(c, &ps.path, buf, cap, now);
  if (n < 0) {
    close_on_error(c, (int)n, now);
    /* Emit the CONNECTION_CLOSE in this same call. */
    (void)wr_quic_conn_write(c, buf, cap, len, now);
    return WR_ERR_PROTO;
  }
  if (n > 0) {
    /* Follow the path ngtcp2 chose (it may be validating a new one). */
    if (ps.path.remote.addrlen > 0 &&
        ps.path.remote.addrlen <= sizeof(c->remote)) {
      memcpy(&c->remote, ps.path.remote.addr, ps.path.remote.addrlen);
      c->remotelen = ps.path.remote.addrlen;
    }
    ngtcp2_conn_update_pkt_tx_time(c->conn, now);
  }
  *len = (size_t)n;
  after_events(c);
  wr__quic_trace(c, (size_t)n, now);
  return WR_OK;
}

wr_quic_tstamp wr_quic_conn_expiry(wr_quic_conn *c) {
  switch (c->state) {
  case WR_QUIC_CLOSED:
    return 0; /* reap now */
  case WR_QUIC_CLOSING:
  case WR_QUIC_DRAINING:
    return c->close_deadline;
  default: {
    wr_quic_tstamp e = ngtcp2_conn_get_expiry(c->conn);
    return c->owner_deadline && c->owner_deadline < e ? c->owner_deadline : e;
  }
  }
}

int wr_quic_conn_handle_expiry(wr_quic_conn *c, wr_quic_tstamp now) {
  int rv;
  deliver_due_close(c);
  if (c->state == WR_QUIC_CLOSED) return WR_OK;
  c->now = now;
  if (c->owner_deadline && now >= c->owner_deadline && c->state < WR_QUIC_CLOSING) {
    c->owner_deadline = 0;
    (void)wr_quic_conn_close(c, c->owner_code, c->owner_reason);
    return WR_OK;
  }
  if (c->state == WR_QUIC_CLOSING || c->state == WR_QUIC_DRAINING) {
    if (now >= c->close_deadline) set_state(c, WR_QUIC_CLOSED, 1, 0, 0, 0, WR_OK);
    return WR_OK;
  }
  rv = ngtcp2_conn_handle_expiry(c->conn, now);
  if (rv == 0) return WR_OK;
  if (rv == NGTCP2_ERR_IDLE_CLOSE) {
    snprintf(c->msg, sizeof(c->msg), "idle timeout: nothing received for %" PRIu64 " ms",
             c->idle_ms);
    set_state(c, WR_QUIC_CLOSED, 1, 0, 1, 0, WR_ERR_IO);
  } else if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
    snprintf(c->msg, sizeof(c->msg), "QUIC handshake timed out");
    set_state(c, WR_QUIC_CLOSED, 1, 0, 0, 0, WR_ERR_IO);
  } else {
    close_on_error(c, rv, now);
  }
  return WR_OK;
}

int wr_quic_conn_close(wr_quic_conn *c, uint64_t app_code, const char *reason) {
  size_t rl = reason ? strlen(reason) : 0;
  if (c->state >= WR_QUIC_CLOSING || c->app_close_requested) return WR_ERR_INVAL;
  if (rl > sizeof(c->close_reason)) rl = sizeof(c->close_reason);
  if (rl) memcpy(c->close_reason, reason, rl);
  ngtcp2_connection_close_error_set_application_error(&c->ccerr, app_code,
                                                      c->close_reason, rl);
  c->app_close_requested = 1;
  wr__quic_kick(c);
  return WR_OK;
}

void wr_quic_conn_set_deadline(wr_quic_conn *c, uint64_t after_ms, uint64_t app_code,
                               const char *reason) {
  c->owner_deadline = after_ms ? c->now + after_ms * WR_QUIC_MS : 0;
  c->owner_code = app_code;
  snprintf(c->owner_reason, sizeof(c->owner_reason), "%s", reason ? reason : "");
  wr__quic_kick(c); /* the endpoint re-arms its timer from the new expiry */
}

wr_quic_state wr_quic_conn_state(const wr_quic_conn *c) { return c->state; }
wr_quic_role wr_quic_conn_role(const wr_quic_conn *c) { return c->role; }
void *wr_quic_conn_user(const wr_quic_conn *c) { return c->user; }
void wr_quic_conn_set_user(wr_quic_conn *c, void *user) { c->user = user; }
const char *wr_quic_conn_alpn(const wr_quic_conn *c) { return c->alpn; }
const char *wr_quic_conn_sni(const wr_quic_conn *c) { return c->sni; }
const char *wr_quic_conn_group(const wr_quic_conn *c) { return c->group; }
const struct sockaddr *wr_quic_conn_remote(const wr_quic_conn *c,
                                           socklen_t *len) {
  if (len) *len = c->remotelen;
  return (const struct sockaddr *)&c->remote;
}

