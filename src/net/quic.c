/* QUIC transport on ngtcp2 0.12.1 + GnuTLS. See quic.h for the contract.
 *
 * Memory ownership of stream data: ngtcp2 0.x does not copy stream data; it
 * keeps pointers to the application's bytes until they are acknowledged
 * (retransmissions reuse them). So every byte accepted by
 * wr_quic_stream_write() lives in a per-stream chunk list until
 * acked_stream_data_offset says the peer has it, and the list is bounded by
 * cfg.stream_send_queue (backpressure: WR_AGAIN + on_stream_writable).
 *
 * Ownership of server connections: a connection created from a client
 * Initial has no owner until its handshake completes (quic.h,
 * wr_quic_accept_cb). Until then none of the owner's callbacks can fire for
 * it (c->cbs is empty, c->user NULL) and the endpoint frees it itself; the
 * owner's on_accept runs from cb_handshake_completed, before any stream
 * event of the same datagram.
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
#include "net/quic.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "lib/err.h"
#include "lib/mem.h"

#define NBUCKETS 256
#define MAX_VECS 16
/* Retry tokens are accepted for this long after they were made (a client
 * answers a Retry within one round trip). */
#define RETRY_TOKEN_LIFETIME (10 * WR_QUIC_S)
/* Attempts before an unfittable datagram is dropped (datagrams are
 * unreliable; holding one forever would block the queue). */
#define DGRAM_MAX_TRIES 3

struct wr_quic_tls {
  wr_quic_role role;
  gnutls_certificate_credentials_t cred;
  gnutls_priority_t prio;
};

typedef struct chunk {
  struct chunk *next;
  uint64_t off; /* stream offset of data[0] */
  size_t len;
  uint8_t data[];
} chunk;

typedef struct stream {
  int64_t id;
  void *suser;
  struct stream *hnext;  /* hash bucket chain */
  struct stream *qnext;  /* send queue */
  chunk *head, *tail;    /* unacked data, oldest first */
  chunk *send;           /* first chunk with unsent bytes, NULL if none */
  uint64_t ack_off, send_off, write_off;
  uint64_t rx_delivered, rx_consumed;
  unsigned fin_queued : 1, fin_sent : 1, write_shut : 1, blocked : 1,
      in_sendq : 1, want_writable : 1;
} stream;

typedef struct dgram {
  struct dgram *next;
  size_t len;
  int tries;
  uint8_t data[];
} dgram;

struct wr_quic_conn {
  wr_quic_role role;
  wr_quic_state state;
  ngtcp2_conn *conn;
  gnutls_session_t session;
  ngtcp2_crypto_conn_ref ref;
  wr_quic_tls *tls;
  wr_quic_callbacks cbs;
  void *user;

  size_t send_queue_cap, dgram_queue_cap, max_udp_payload;
  uint64_t idle_ms;

  struct sockaddr_storage local, remote;
  socklen_t locallen, remotelen;
  ngtcp2_cid odcid; /* server: client's first DCID (for demux of Initials) */

  stream **buckets; /* NBUCKETS chains, allocated with the first stream */
  stream *sq_head, *sq_tail;
  dgram *dq_head, *dq_tail;
  size_t dq_len;

  /* Close handling. */
  ngtcp2_connection_close_error ccerr;
  int close_pkt_pending;   /* a CONNECTION_CLOSE must go out next write */
  int app_close_requested; /* wr_quic_conn_close: on_close fires at write */
  uint8_t close_reason[128];
  uint8_t *close_pkt;      /* kept to answer packets in the closing period */
  size_t close_pktlen;
  int close_resend;
  uint64_t closing_rx_pkts, closing_rx_bytes, closing_tx_bytes;
  wr_quic_tstamp close_deadline;
  wr_quic_tstamp now;            /* of the last read or expiry handled */
  wr_quic_tstamp owner_deadline; /* wr_quic_conn_set_deadline; 0: none */
  uint64_t owner_code;
  char owner_reason[96];
  int closed_notified;
  int close_cb_due;        /* on_close owed to an owner installed after the close */
  wr_quic_close_info close_ci;
  char msg[320];
  char tls_msg[200];

  int hs_done_pending;
  int cb_failed;
  int got_reset;           /* the peer sent a Stateless Reset */
  uint8_t reset_key[64];   /* server: key for stateless reset tokens */
  size_t reset_key_len;
  char alpn[32];
  char want_alpn[32]; /* client: the ALPN the server must select */
  char group[32];

  /* libuv binding */
  void (*kick)(void *arg);
  void *kick_arg;
  int ep_dirty; /* has something to send: flush it at the next endpoint pass */
  struct wr_quic_conn *ep_next;
  struct wr_quic_endpoint *ep; /* server connections of an endpoint */
  struct src_entry *src;       /* while half-open: its source's counter */
  struct cid_entry *cids;      /* its entries in the endpoint's CID index */
  int adopted;                 /* has an owner (always, except half-open server conns) */
};

static void ep_adopt(wr_quic_conn *c);
static int ep_cid_add(wr_quic_conn *c, const ngtcp2_cid *cid, int initial_only);
static void ep_cid_remove(wr_quic_conn *c, const ngtcp2_cid *cid);

/* --- small helpers ------------------------------------------------------ */

static void fill_random(uint8_t *p, size_t n) {
  /* gnutls_rnd only fails when the library is unusable; fall back to
   * zero-free but predictable bytes is worse than aborting. */
  if (gnutls_rnd(GNUTLS_RND_RANDOM, p, n) != 0) abort();
}

static void conn_kick(wr_quic_conn *c) {
  c->ep_dirty = 1;
  if (c->kick) c->kick(c->kick_arg);
}

static void set_errmsg(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_errmsg(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static uint64_t cfg_u64(uint64_t v, uint64_t def) { return v ? v : def; }

/* --- TLS material ------------------------------------------------------- */

int wr_quic_tls_new(wr_quic_role role, const wr_quic_config *cfg,
                    wr_quic_tls **out, char *err, size_t errlen) {
  wr_quic_tls *t;
  const char *errpos = NULL;
  int rv;

  if (!cfg || !out) return WR_ERR_INVAL;
  if (role == WR_QUIC_SERVER && (!cfg->cert_file || !cfg->key_file)) {
    set_errmsg(err, errlen, "QUIC server needs a certificate and a key file");
    return WR_ERR_CONFIG;
  }
  t = calloc(1, sizeof(*t));
  if (!t) return WR_ERR_NOMEM;
  t->role = role;
  if (gnutls_certificate_allocate_credentials(&t->cred) != 0) {
    rv = WR_ERR_NOMEM;
    goto fail_cred;
  }
  if (role == WR_QUIC_CLIENT) {
    if (cfg->ca_file)
      rv = gnutls_certificate_set_x509_trust_file(t->cred, cfg->ca_file,
                                                  GNUTLS_X509_FMT_PEM);
    else
      rv = gnutls_certificate_set_x509_system_trust(t->cred);
    /* Both return the number of certificates loaded; 0 means the file had
     * none, which would make every handshake fail later, less clearly. */
    if (rv <= 0) {
      set_errmsg(err, errlen, "cannot load CA certificates from %s: %s",
                 cfg->ca_file ? cfg->ca_file : "system store",
                 rv == 0 ? "no certificates found" : gnutls_strerror(rv));
      rv = WR_ERR_CRYPTO;
      goto fail_files;
    }
  } else {
    rv = gnutls_certificate_set_x509_key_file(t->cred, cfg->cert_file,
                                              cfg->key_file,
                                              GNUTLS_X509_FMT_PEM);
    if (rv < 0) {
      set_errmsg(err, errlen, "cannot load certificate %s / key %s: %s",
                 cfg->cert_file, cfg->key_file, gnutls_strerror(rv));
      rv = WR_ERR_CRYPTO;
      goto fail_files;
    }
  }
  rv = gnutls_priority_init(
      &t->prio, cfg->priority ? cfg->priority : WR_QUIC_PRIORITY_DEFAULT,
      &errpos);
  if (rv != 0) {
    set_errmsg(err, errlen, "bad GnuTLS priority string near '%s': %s",
               errpos ? errpos : "?", gnutls_strerror(rv));
    rv = WR_ERR_CRYPTO;
    goto fail_files;
  }
  *out = t;
  return WR_OK;

fail_files:
  gnutls_certificate_free_credentials(t->cred);
fail_cred:
  free(t);
  return rv;
}

void wr_quic_tls_free(wr_quic_tls *tls) {
  if (!tls) return;
  gnutls_priority_deinit(tls->prio);
  gnutls_certificate_free_credentials(tls->cred);
  free(tls);
}

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

static const char *alert_name(uint64_t code) {
  const char *n = NULL;
  if (code >= NGTCP2_CRYPTO_ERROR && code <= NGTCP2_CRYPTO_ERROR + 0xff)
    n = gnutls_alert_get_strname((gnutls_alert_description_t)(code & 0xff));
  return n ? n : "";
}

/* Starts a local close because of library error |liberr|. The
 * CONNECTION_CLOSE itself goes out with the next wr_quic_conn_write. */
static void close_on_error(wr_quic_conn *c, int liberr, wr_quic_tstamp now) {
  int err = WR_ERR_PROTO;
  uint64_t code;

  if (c->state >= WR_QUIC_CLOSING) return;
  if (liberr == NGTCP2_ERR_CRYPTO) {
    uint8_t alert = ngtcp2_conn_get_tls_alert(c->conn);
    unsigned vs = 0;
    ngtcp2_connection_close_error_set_transport_error_tls_alert(&c->ccerr,
                                                                alert, NULL, 0);
    err = WR_ERR_CRYPTO;
    if (c->tls_msg[0]) {
      snprintf(c->msg, sizeof(c->msg), "TLS handshake failed: %s", c->tls_msg);
    } else if (c->role == WR_QUIC_CLIENT &&
               (vs = gnutls_session_get_verify_cert_status(c->session)) != 0) {
      gnutls_datum_t d = {NULL, 0};
      gnutls_certificate_verification_status_print(vs, GNUTLS_CRT_X509, &d, 0);
      snprintf(c->msg, sizeof(c->msg),
               "TLS handshake failed: server certificate verification "
               "failed: %s",
               d.data ? (const char *)d.data : "unknown reason");
      gnutls_free(d.data);
    } else {
      snprintf(c->msg, sizeof(c->msg), "TLS handshake failed (alert %u %s)",
               alert, alert_name(NGTCP2_CRYPTO_ERROR | alert));
    }
  } else if (c->tls_msg[0]) {
    /* Our own TLS-level refusal from a callback (e.g. ALPN check). */
    ngtcp2_connection_close_error_set_transport_error_tls_alert(
        &c->ccerr, GNUTLS_A_NO_APPLICATION_PROTOCOL, NULL, 0);
    err = WR_ERR_CRYPTO;
    snprintf(c->msg, sizeof(c->msg), "TLS handshake failed: %s", c->tls_msg);
  } else {
    ngtcp2_connection_close_error_set_transport_error_liberr(&c->ccerr, liberr,
                                                             NULL, 0);
    if (c->cb_failed) err = WR_ERR_INTERNAL;
    snprintf(c->msg, sizeof(c->msg), "QUIC error: %s%s",
             ngtcp2_strerror(liberr),
             c->cb_failed ? " (application callback failed)" : "");
  }
  code = c->ccerr.error_code;
  c->close_pkt_pending = 1;
  c->close_deadline = close_period(c, now);
  set_state(c, WR_QUIC_CLOSING, 1, 0, 0, code, err);
}

/* --- streams: bookkeeping ------------------------------------------------ */

static stream *stream_find(wr_quic_conn *c, int64_t id) {
  stream *s;
  if (!c->buckets) return NULL;
  s = c->buckets[(uint64_t)id % NBUCKETS];
  while (s && s->id != id) s = s->hnext;
  return s;
}

static stream *stream_add(wr_quic_conn *c, int64_t id, void *suser) {
  stream *s;
  /* Allocated with the first stream, not with the connection: a half-open
   * connection never has one. */
  if (!c->buckets && !(c->buckets = calloc(NBUCKETS, sizeof(*c->buckets)))) return NULL;
  s = calloc(1, sizeof(*s));
  if (!s) return NULL;
  s->id = id;
  s->suser = suser;
  s->hnext = c->buckets[(uint64_t)id % NBUCKETS];
  c->buckets[(uint64_t)id % NBUCKETS] = s;
  return s;
}

static void stream_free_data(stream *s) {
  chunk *k = s->head;
  while (k) {
    chunk *n = k->next;
    free(k);
    k = n;
  }
  s->head = s->tail = s->send = NULL;
}

static void sendq_remove(wr_quic_conn *c, stream *s) {
  stream **pp = &c->sq_head, *prev = NULL;
  if (!s->in_sendq) return;
  while (*pp && *pp != s) {
    prev = *pp;
    pp = &(*pp)->qnext;
  }
  if (*pp) {
    *pp = s->qnext;
    if (c->sq_tail == s) c->sq_tail = prev;
  }
  s->qnext = NULL;
  s->in_sendq = 0;
}

static void sendq_push(wr_quic_conn *c, stream *s) {
  if (s->in_sendq || s->blocked || s->write_shut) return;
  s->qnext = NULL;
  if (c->sq_tail)
    c->sq_tail->qnext = s;
  else
    c->sq_head = s;
  c->sq_tail = s;
  s->in_sendq = 1;
}

static stream *sendq_pop(wr_quic_conn *c) {
  stream *s = c->sq_head;
  if (!s) return NULL;
  c->sq_head = s->qnext;
  if (!c->sq_head) c->sq_tail = NULL;
  s->qnext = NULL;
  s->in_sendq = 0;
  return s;
}

static int stream_has_pending(const stream *s) {
  return !s->write_shut &&
         (s->send_off < s->write_off || (s->fin_queued && !s->fin_sent));
}

static void stream_remove(wr_quic_conn *c, stream *s) {
  stream **pp = &c->buckets[(uint64_t)s->id % NBUCKETS];
  while (*pp && *pp != s) pp = &(*pp)->hnext;
  if (*pp) *pp = s->hnext;
  sendq_remove(c, s);
  stream_free_data(s);
  free(s);
}

/* --- ngtcp2 callbacks ------------------------------------------------------ */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
  return ((wr_quic_conn *)ref->user_data)->conn;
}

static void cb_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx) {
  (void)ctx;
  fill_random(dest, len);
}

/* The stateless reset token of |cid|: derived from the server's static key
 * so that a restarted server can reset connections it forgot; random when
 * there is no key (a client never sends resets). */
static int reset_token(const wr_quic_conn *c, const ngtcp2_cid *cid, uint8_t *token) {
  if (!c->reset_key_len) {
    fill_random(token, NGTCP2_STATELESS_RESET_TOKENLEN);
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
  fill_random(cid->data, cidlen);
  cid->datalen = cidlen;
  if (reset_token(c, cid, token) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  if (c->ep && ep_cid_add(c, cid, 0) != WR_OK) return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int cb_remove_cid(ngtcp2_conn *conn, const ngtcp2_cid *cid, void *user) {
  wr_quic_conn *c = user;
  (void)conn;
  if (c->ep) ep_cid_remove(c, cid);
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
  gnutls_datum_t d = {NULL, 0};
  const char *g;
  (void)conn;
  if (gnutls_alpn_get_selected_protocol(c->session, &d) == 0 &&
      d.size < sizeof(c->alpn)) {
    memcpy(c->alpn, d.data, d.size);
    c->alpn[d.size] = 0;
  }
  /* A server that ignores ALPN lets a GnuTLS client finish without one;
   * the tunnel protocol is only defined for "argotunnel". */
  if (c->want_alpn[0] && strcmp(c->alpn, c->want_alpn) != 0) {
    snprintf(c->tls_msg, sizeof(c->tls_msg),
             "server did not select ALPN '%s'", c->want_alpn);
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  g = gnutls_group_get_name(gnutls_group_get(c->session));
  snprintf(c->group, sizeof(c->group), "%s", g ? g : "");
  /* A server connection gets its owner here, before the stream frames that
   * may follow in this same datagram are processed (ngtcp2 handles
   * buffered 1-RTT packets after this callback). */
  if (!c->adopted) ep_adopt(c);
  /* Deferred: the application hears about it after read_pkt returns, so
   * it may call anything (including wr_quic_conn_write) from it. */
  c->hs_done_pending = 1;
  return 0;
}

static int cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags, int64_t sid,
                               uint64_t offset, const uint8_t *data,
                               size_t len, void *user, void *suser) {
  wr_quic_conn *c = user;
  stream *s = stream_find(c, sid);
  int fin = (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0;
  (void)conn;
  (void)offset;
  (void)suser;
  if (s) s->rx_delivered += len;
  if (c->cbs.on_stream_data &&
      c->cbs.on_stream_data(c, sid, data, len, fin, c->user,
                            s ? s->suser : NULL) < 0) {
    c->cb_failed = 1;
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  if (!c->cbs.on_stream_data) {
    /* Nobody reads: give the credit straight back so the peer never
     * stalls on a stream we ignore. */
    if (s) s->rx_consumed += len;
    ngtcp2_conn_extend_max_stream_offset(c->conn, sid, len);
    ngtcp2_conn_extend_max_offset(c->conn, len);
  }
  return 0;
}

static int cb_acked(ngtcp2_conn *conn, int64_t sid, uint64_t offset,
                    uint64_t len, void *user, void *suser) {
  wr_quic_conn *c = user;
  stream *s = stream_find(c, sid);
  (void)conn;
  (void)suser;
  if (!s) return 0;
  if (offset + len > s->ack_off) s->ack_off = offset + len;
  while (s->head && s->head->off + s->head->len <= s->ack_off) {
    chunk *k = s->head;
    s->head = k->next;
    if (!s->head) s->tail = NULL;
    free(k);
  }
  if (s->want_writable &&
      s->write_off - s->ack_off <= c->send_queue_cap / 2) {
    s->want_writable = 0;
    if (c->cbs.on_stream_writable)
      c->cbs.on_stream_writable(c, sid, c->user, s->suser);
  }
  return 0;
}

static int cb_stream_open(ngtcp2_conn *conn, int64_t sid, void *user) {
  wr_quic_conn *c = user;
  (void)conn;
  if (!ngtcp2_is_bidi_stream(sid)) return 0; /* uni streams are unused */
  if (!stream_add(c, sid, NULL)) return NGTCP2_ERR_CALLBACK_FAILURE;
  if (c->cbs.on_stream_open && c->cbs.on_stream_open(c, sid, c->user) < 0) {
    c->cb_failed = 1;
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static int cb_stream_close(ngtcp2_conn *conn, uint32_t flags, int64_t sid,
                           uint64_t code, void *user, void *suser) {
  wr_quic_conn *c = user;
  stream *s = stream_find(c, sid);
  (void)conn;
  (void)suser;
  if (!s) return 0;
  /* Bytes delivered but never consumed would leak connection credit;
   * the stream is gone, so return it now. */
  if (s->rx_delivered > s->rx_consumed)
    ngtcp2_conn_extend_max_offset(c->conn, s->rx_delivered - s->rx_consumed);
  if (c->cbs.on_stream_close)
    c->cbs.on_stream_close(
        c, sid, (flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) != 0,
        code, c->user, s->suser);
  stream_remove(c, s);
  return 0;
}

static int cb_stream_reset(ngtcp2_conn *conn, int64_t sid, uint64_t final_size,
                           uint64_t code, void *user, void *suser) {
  wr_quic_conn *c = user;
  stream *s = stream_find(c, sid);
  (void)conn;
  (void)final_size;
  (void)suser;
  if (c->cbs.on_stream_reset &&
      c->cbs.on_stream_reset(c, sid, code, c->user, s ? s->suser : NULL) < 0) {
    c->cb_failed = 1;
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static int cb_extend_max_stream_data(ngtcp2_conn *conn, int64_t sid,
                                     uint64_t max_data, void *user,
                                     void *suser) {
  wr_quic_conn *c = user;
  stream *s = stream_find(c, sid);
  (void)conn;
  (void)max_data;
  (void)suser;
  if (s && s->blocked) {
    s->blocked = 0;
    if (stream_has_pending(s)) sendq_push(c, s);
  }
  return 0;
}

static int cb_recv_datagram(ngtcp2_conn *conn, uint32_t flags,
                            const uint8_t *data, size_t len, void *user) {
  wr_quic_conn *c = user;
  (void)conn;
  (void)flags;
  if (c->cbs.on_datagram && c->cbs.on_datagram(c, data, len, c->user) < 0) {
    c->cb_failed = 1;
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

/* Server side: GnuTLS would happily finish a handshake with a client that
 * sent no ALPN at all, but TLS-in-QUIC requires one (RFC 9001 8.1) and
 * cloudflared's edge only speaks "argotunnel". Refuse here, after
 * ClientHello parsing, with no_application_protocol. */
static int server_hello_hook(gnutls_session_t session, unsigned htype,
                             unsigned when, unsigned incoming,
                             const gnutls_datum_t *msg) {
  ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(session);
  wr_quic_conn *c = ref->user_data;
  gnutls_datum_t d = {NULL, 0};
  (void)htype;
  (void)when;
  (void)incoming;
  (void)msg;
  if (gnutls_alpn_get_selected_protocol(session, &d) != 0) {
    snprintf(c->tls_msg, sizeof(c->tls_msg),
             "client offered no ALPN '%s' (no_application_protocol)",
             WR_QUIC_ALPN);
    return GNUTLS_E_NO_APPLICATION_PROTOCOL;
  }
  return 0;
}

static void set_callbacks(ngtcp2_callbacks *cb, wr_quic_role role) {
  memset(cb, 0, sizeof(*cb));
  if (role == WR_QUIC_CLIENT) {
    cb->client_initial = ngtcp2_crypto_client_initial_cb;
    cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
  } else {
    cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  }
  cb->recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
  cb->encrypt = ngtcp2_crypto_encrypt_cb;
  cb->decrypt = ngtcp2_crypto_decrypt_cb;
  cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb->update_key = ngtcp2_crypto_update_key_cb;
  cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  cb->rand = cb_rand;
  cb->get_new_connection_id = cb_new_cid;
  cb->remove_connection_id = cb_remove_cid;
  cb->handshake_completed = cb_handshake_completed;
  cb->recv_stream_data = cb_recv_stream_data;
  cb->acked_stream_data_offset = cb_acked;
  cb->stream_open = cb_stream_open;
  cb->stream_close = cb_stream_close;
  cb->stream_reset = cb_stream_reset;
  cb->extend_max_stream_data = cb_extend_max_stream_data;
  cb->recv_datagram = cb_recv_datagram;
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
}

static void fill_params(ngtcp2_transport_params *p, const wr_quic_config *cfg) {
  uint64_t sw = cfg_u64(cfg->stream_window, 512u << 10);
  ngtcp2_transport_params_default(p);
  p->initial_max_stream_data_bidi_local = sw;
  p->initial_max_stream_data_bidi_remote = sw;
  p->initial_max_stream_data_uni = sw;
  p->initial_max_data = cfg_u64(cfg->conn_window, 768u << 10);
  p->initial_max_streams_bidi = cfg_u64(cfg->max_streams_bidi, 1ULL << 60);
  /* Unidirectional streams are unused by the protocol (protocol.md 1.3). */
  p->initial_max_streams_uni = 0;
  p->max_idle_timeout = cfg_u64(cfg->idle_timeout_ms, 5000) * WR_QUIC_MS;
  p->max_datagram_frame_size = WR_QUIC_MAX_DATAGRAM_FRAME;
}

static wr_quic_conn *conn_alloc(wr_quic_role role, wr_quic_tls *tls,
                                const wr_quic_config *cfg,
                                const struct sockaddr *local,
                                socklen_t locallen,
                                const struct sockaddr *remote,
                                socklen_t remotelen,
                                const wr_quic_callbacks *cbs, void *user) {
  wr_quic_conn *c;
  if (locallen > sizeof(c->local) || remotelen > sizeof(c->remote))
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
  c->max_udp_payload = cfg->max_udp_payload ? cfg->max_udp_payload : default_payload(remote);
  c->idle_ms = cfg_u64(cfg->idle_timeout_ms, 5000);
  if (role == WR_QUIC_SERVER && cfg->reset_key && cfg->reset_key_len >= 16 &&
      cfg->reset_key_len <= sizeof(c->reset_key)) {
    memcpy(c->reset_key, cfg->reset_key, cfg->reset_key_len);
    c->reset_key_len = cfg->reset_key_len;
  }
  memcpy(&c->local, local, locallen);
  c->locallen = locallen;
  memcpy(&c->remote, remote, remotelen);
  c->remotelen = remotelen;
  c->ref.get_conn = get_conn;
  c->ref.user_data = c;
  return c;
}

static void make_path(wr_quic_conn *c, ngtcp2_path *path) {
  memset(path, 0, sizeof(*path));
  ngtcp2_addr_init(&path->local, (ngtcp2_sockaddr *)&c->local, c->locallen);
  ngtcp2_addr_init(&path->remote, (ngtcp2_sockaddr *)&c->remote, c->remotelen);
}

static int session_setup(wr_quic_conn *c, const wr_quic_config *cfg) {
  const char *alpn = cfg->alpn ? cfg->alpn : WR_QUIC_ALPN;
  unsigned flags = GNUTLS_NO_END_OF_EARLY_DATA;
  int rv;

  if (c->role == WR_QUIC_CLIENT)
    flags |= GNUTLS_CLIENT;
  else
    flags |= GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET;
  if (gnutls_init(&c->session, flags) != 0) return WR_ERR_NOMEM;
  if (gnutls_priority_set(c->session, c->tls->prio) != 0) return WR_ERR_CRYPTO;
  rv = c->role == WR_QUIC_CLIENT
           ? ngtcp2_crypto_gnutls_configure_client_session(c->session)
           : ngtcp2_crypto_gnutls_configure_server_session(c->session);
  if (rv != 0) return WR_ERR_CRYPTO;
  gnutls_session_set_ptr(c->session, &c->ref);
  if (gnutls_credentials_set(c->session, GNUTLS_CRD_CERTIFICATE,
                             c->tls->cred) != 0)
    return WR_ERR_CRYPTO;
  if (alpn[0]) {
    gnutls_datum_t d = {(unsigned char *)(uintptr_t)alpn,
                        (unsigned)strlen(alpn)};
    if (gnutls_alpn_set_protocols(c->session, &d, 1, GNUTLS_ALPN_MANDATORY) !=
        0)
      return WR_ERR_CRYPTO;
  }
  if (c->role == WR_QUIC_CLIENT) {
    const char *sni = cfg->sni ? cfg->sni : WR_QUIC_SNI_DEFAULT;
    if (gnutls_server_name_set(c->session, GNUTLS_NAME_DNS, sni,
                               strlen(sni)) != 0)
      return WR_ERR_CRYPTO;
    /* Verify the chain against the CA file and the name against the SNI,
     * as cloudflared does (protocol.md 1.2). */
    gnutls_session_set_verify_cert(c->session, sni, 0);
    snprintf(c->want_alpn, sizeof(c->want_alpn), "%s", alpn);
  } else {
    gnutls_handshake_set_hook_function(c->session, GNUTLS_HANDSHAKE_CLIENT_HELLO,
                                       GNUTLS_HOOK_POST, server_hello_hook);
  }
  ngtcp2_conn_set_tls_native_handle(c->conn, c->session);
  return WR_OK;
}

int wr_quic_conn_client_new(wr_quic_tls *tls, const wr_quic_config *cfg,
                            const struct sockaddr *local, socklen_t locallen,
                            const struct sockaddr *remote, socklen_t remotelen,
                            const wr_quic_callbacks *cbs, void *user,
                            wr_quic_tstamp now, wr_quic_conn **out) {
  ngtcp2_callbacks cb;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_cid dcid, scid;
  ngtcp2_path path;
  wr_quic_conn *c;
  int rv;

  if (!tls || !cfg || !local || !remote || !out || tls->role != WR_QUIC_CLIENT)
    return WR_ERR_INVAL;
  c = conn_alloc(WR_QUIC_CLIENT, tls, cfg, local, locallen, remote, remotelen,
                 cbs, user);
  if (!c) return WR_ERR_NOMEM;
  dcid.datalen = WR_QUIC_SCID_LEN;
  fill_random(dcid.data, dcid.datalen);
  scid.datalen = WR_QUIC_SCID_LEN;
  fill_random(scid.data, scid.datalen);
  set_callbacks(&cb, WR_QUIC_CLIENT);
  fill_settings(&settings, cfg, c->max_udp_payload, now);
  fill_params(&params, cfg);
  make_path(c, &path);
  if (ngtcp2_conn_client_new(&c->conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1,
                             &cb, &settings, &params, NULL, c) != 0) {
    rv = WR_ERR_NOMEM;
    goto fail_conn;
  }
  rv = session_setup(c, cfg);
  if (rv != WR_OK) goto fail_session;
  /* cloudflared: PING when idle for 1 s (protocol.md 1.3). */
  if (cfg->keepalive_ms != UINT64_MAX)
    ngtcp2_conn_set_keep_alive_timeout(
        c->conn, cfg_u64(cfg->keepalive_ms, 1000) * WR_QUIC_MS);
  *out = c;
  return WR_OK;

fail_session:
  if (c->session) gnutls_deinit(c->session);
  ngtcp2_conn_del(c->conn);
fail_conn:
  free(c);
  return rv;
}

/* Creates a server connection for the client Initial |hd| without
 * processing it and without callbacks or user (the caller installs them).
 * |odcid|: the client's original DCID recovered from a valid Retry token
 * (then |hd| carries that token and its DCID is our Retry SCID), or NULL. */
static int server_conn_new(wr_quic_tls *tls, const wr_quic_config *cfg,
                           const struct sockaddr *local, socklen_t locallen,
                           const struct sockaddr *remote, socklen_t remotelen,
                           const ngtcp2_pkt_hd *hd, const ngtcp2_cid *odcid,
                           wr_quic_tstamp now, wr_quic_conn **out) {
  ngtcp2_callbacks cb;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_cid scid;
  ngtcp2_path path;
  wr_quic_conn *c;
  int rv;

  c = conn_alloc(WR_QUIC_SERVER, tls, cfg, local, locallen, remote, remotelen,
                 NULL, NULL);
  if (!c) return WR_ERR_NOMEM;
  /* Initial retransmissions still carry this DCID (ep_find). */
  c->odcid = hd->dcid;
  scid.datalen = WR_QUIC_SCID_LEN;
  fill_random(scid.data, scid.datalen);
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
    rv = WR_ERR_CRYPTO;
    goto fail_conn;
  }
  make_path(c, &path);
  if (ngtcp2_conn_server_new(&c->conn, &hd->scid, &scid, &path, hd->version, &cb,
                             &settings, &params, NULL, c) != 0) {
    rv = WR_ERR_NOMEM;
    goto fail_conn;
  }
  rv = session_setup(c, cfg);
  if (rv != WR_OK) goto fail_session;
  if (cfg->keepalive_ms && cfg->keepalive_ms != UINT64_MAX)
    ngtcp2_conn_set_keep_alive_timeout(c->conn, cfg->keepalive_ms * WR_QUIC_MS);
  *out = c;
  return WR_OK;

fail_session:
  if (c->session) gnutls_deinit(c->session);
  ngtcp2_conn_del(c->conn);
fail_conn:
  free(c);
  return rv;
}

int wr_quic_conn_server_accept(wr_quic_tls *tls, const wr_quic_config *cfg,
                               const struct sockaddr *local, socklen_t locallen,
                               const struct sockaddr *remote,
                               socklen_t remotelen, const uint8_t *pkt,
                               size_t len, const wr_quic_callbacks *cbs,
                               void *user, wr_quic_tstamp now,
                               wr_quic_conn **out) {
  ngtcp2_pkt_hd hd;
  wr_quic_conn *c;
  int rv;

  if (!tls || !cfg || !local || !remote || !out || tls->role != WR_QUIC_SERVER)
    return WR_ERR_INVAL;
  if (ngtcp2_accept(&hd, pkt, len) != 0) return WR_ERR_PROTO;
  rv = server_conn_new(tls, cfg, local, locallen, remote, remotelen, &hd, NULL, now, &c);
  if (rv != WR_OK) return rv;
  /* The first packet is processed with no callbacks installed: whatever it
   * does to the connection, the caller's code does not run before it has
   * the connection in hand. */
  wr_quic_conn_read(c, remote, remotelen, pkt, len, now);
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
  size_t i;
  if (!c) return;
  for (i = 0; c->buckets && i < NBUCKETS; i++) {
    stream *s = c->buckets[i];
    while (s) {
      stream *n = s->hnext;
      stream_free_data(s);
      free(s);
      s = n;
    }
  }
  while (c->dq_head) {
    dgram *d = c->dq_head;
    c->dq_head = d->next;
    free(d);
  }
  /* ngtcp2_conn_del first: it may still reference the session. */
  ngtcp2_conn_del(c->conn);
  gnutls_deinit(c->session);
  free(c->close_pkt);
  free(c->buckets);
  free(c);
}

/* --- I/O -------------------------------------------------------------------- */

static void after_events(wr_quic_conn *c) {
  if (c->hs_done_pending && c->state == WR_QUIC_HANDSHAKE) {
    c->hs_done_pending = 0;
    set_state(c, WR_QUIC_ESTABLISHED, 0, 0, 0, 0, WR_OK);
    if (c->cbs.on_handshake_done) c->cbs.on_handshake_done(c, c->user);
  }
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
    /* RFC 9000 10.2.1: answer with our CONNECTION_CLOSE again, but less
     * and less often (after the 1st, 2nd, 4th, 8th... packet), and never
     * with more than 3x the bytes received meanwhile: the address of a
     * connection refused during its handshake was never validated and may
     * be a victim's (RFC 9000 8.1). */
    c->closing_rx_pkts++;
    c->closing_rx_bytes += len;
    if (c->close_pkt && (c->closing_rx_pkts & (c->closing_rx_pkts - 1)) == 0 &&
        3 * c->closing_rx_bytes >= c->closing_tx_bytes + c->close_pktlen)
      c->close_resend = 1;
    return WR_OK;
  }
  if (remotelen > sizeof(from)) return WR_ERR_INVAL;
  memcpy(&from, remote, remotelen);
  memset(&path, 0, sizeof(path));
  ngtcp2_addr_init(&path.local, (ngtcp2_sockaddr *)&c->local, c->locallen);
  ngtcp2_addr_init(&path.remote, (ngtcp2_sockaddr *)&from, remotelen);
  rv = ngtcp2_conn_read_pkt(c->conn, &path, NULL, data, len, now);
  if (rv == 0) {
    after_events(c);
    return WR_OK;
  }
  switch (rv) {
  case NGTCP2_ERR_DRAINING: {
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
      return WR_OK;
    }
    app = e->type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION;
    err = (app || e->error_code == NGTCP2_NO_ERROR) ? WR_OK
          : (e->error_code & ~0xffULL) == NGTCP2_CRYPTO_ERROR ? WR_ERR_CRYPTO
                                                              : WR_ERR_PROTO;
    snprintf(c->msg, sizeof(c->msg),
             "peer closed the connection: %s error 0x%" PRIx64 "%s%s%s%s%.*s",
             app ? "application" : "transport", e->error_code,
             err == WR_ERR_CRYPTO ? " (TLS alert " : "",
             err == WR_ERR_CRYPTO ? alert_name(e->error_code) : "",
             err == WR_ERR_CRYPTO ? ")" : "", e->reasonlen ? ": " : "",
             (int)(e->reasonlen > 100 ? 100 : e->reasonlen),
             e->reason ? (const char *)e->reason : "");
    c->close_deadline = close_period(c, now);
    after_events(c);
    set_state(c, WR_QUIC_DRAINING, 0, app, 0, e->error_code, err);
    return WR_OK;
  }
  case NGTCP2_ERR_DROP_CONN:
  case NGTCP2_ERR_RETRY:
    snprintf(c->msg, sizeof(c->msg), "connection dropped: %s",
             ngtcp2_strerror(rv));
    set_state(c, WR_QUIC_CLOSED, 1, 0, 0, 0, WR_ERR_PROTO);
    return WR_OK;
  default:
    /* Anything else is fatal for the connection (ngtcp2 docs: write a
     * CONNECTION_CLOSE and stop). */
    close_on_error(c, rv, now);
    return WR_OK;
  }
}

static size_t varint_len(uint64_t n) {
  return n < 64 ? 1 : n < 16384 ? 2 : n < 1073741824 ? 4 : 8;
}

size_t wr_quic_datagram_max(wr_quic_conn *c) {
  const ngtcp2_transport_params *p =
      ngtcp2_conn_get_remote_transport_params(c->conn);
  uint64_t f, n;
  if (!p || p->max_datagram_frame_size == 0) return 0;
  f = p->max_datagram_frame_size;
  if (f > 65535) f = 65535;
  /* Largest n with type(1) + varint(n) + n <= f (RFC 9221 4). */
  n = f > 1 ? f - 2 : 0;
  while (n > 0 && 1 + varint_len(n) + n > f) n--;
  return (size_t)n;
}

int wr_quic_datagram_send(wr_quic_conn *c, const uint8_t *data, size_t len) {
  const ngtcp2_transport_params *p;
  dgram *d;
  if (c->state >= WR_QUIC_CLOSING || c->app_close_requested)
    return WR_ERR_INVAL;
  p = ngtcp2_conn_get_remote_transport_params(c->conn);
  if (!p) return WR_AGAIN;
  if (p->max_datagram_frame_size == 0) return WR_ERR_UNSUPPORTED;
  if (len > wr_quic_datagram_max(c)) return WR_ERR_LIMIT;
  if (c->dq_len >= c->dgram_queue_cap) return WR_AGAIN;
  d = malloc(sizeof(*d) + len);
  if (!d) return WR_ERR_NOMEM;
  d->next = NULL;
  d->len = len;
  d->tries = 0;
  memcpy(d->data, data, len);
  if (c->dq_tail)
    c->dq_tail->next = d;
  else
    c->dq_head = d;
  c->dq_tail = d;
  c->dq_len++;
  conn_kick(c);
  return WR_OK;
}

static void dgram_pop(wr_quic_conn *c) {
  dgram *d = c->dq_head;
  c->dq_head = d->next;
  if (!c->dq_head) c->dq_tail = NULL;
  c->dq_len--;
  free(d);
}

/* Writes one packet of application data (datagrams first, then streams in
 * round-robin order), coalescing frames with the *_FLAG_MORE protocol.
 * Returns the packet size, 0, or a negative ngtcp2 error. */
static ngtcp2_ssize write_one(wr_quic_conn *c, ngtcp2_path *path, uint8_t *buf,
                              size_t cap, wr_quic_tstamp now) {
  size_t dg_budget = c->dq_len;
  size_t st_budget = 0;
  stream *s;
  ngtcp2_ssize nwrite;

  for (s = c->sq_head; s; s = s->qnext) st_budget++;
  for (;;) {
    if (c->dq_head && dg_budget > 0 &&
        c->state == WR_QUIC_ESTABLISHED) {
      dgram *d = c->dq_head;
      ngtcp2_vec v = {d->data, d->len};
      int accepted = 0;
      dg_budget--;
      nwrite = ngtcp2_conn_writev_datagram(
          c->conn, path, NULL, buf, cap, &accepted,
          NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, &v, 1, now);
      if (accepted)
        dgram_pop(c);
      else if (++d->tries >= DGRAM_MAX_TRIES)
        dgram_pop(c);
      if (nwrite == NGTCP2_ERR_WRITE_MORE) continue;
      if (nwrite == NGTCP2_ERR_INVALID_ARGUMENT ||
          nwrite == NGTCP2_ERR_INVALID_STATE) {
        /* Peer limit changed or datagrams not allowed: drop it. */
        if (!accepted && c->dq_head == d) dgram_pop(c);
        continue;
      }
      if (nwrite != 0 || accepted) return nwrite;
      /* Nothing written (congestion / amplification limit): stop. */
      return 0;
    }
    if (c->sq_head && st_budget > 0) {
      ngtcp2_vec vec[MAX_VECS];
      size_t nv = 0, total = 0;
      ngtcp2_ssize ndata = -1;
      uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
      chunk *k;
      st_budget--;
      s = sendq_pop(c);
      for (k = s->send; k && nv < MAX_VECS; k = k->next) {
        uint64_t skip = s->send_off > k->off ? s->send_off - k->off : 0;
        vec[nv].base = k->data + skip;
        vec[nv].len = k->len - skip;
        total += vec[nv].len;
        nv++;
      }
      if (s->fin_queued && s->send_off + total == s->write_off)
        flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
      nwrite = ngtcp2_conn_writev_stream(c->conn, path, NULL, buf, cap, &ndata,
                                         flags, s->id, vec, nv, now);
      if (ndata >= 0) {
        s->send_off += (uint64_t)ndata;
        while (s->send && s->send->off + s->send->len <= s->send_off)
          s->send = s->send->next;
        if ((flags & NGTCP2_WRITE_STREAM_FLAG_FIN) && (size_t)ndata == total)
          s->fin_sent = 1;
      }
      switch (nwrite) {
      case NGTCP2_ERR_STREAM_DATA_BLOCKED:
        s->blocked = 1; /* until extend_max_stream_data */
        continue;
      case NGTCP2_ERR_STREAM_SHUT_WR:
      case NGTCP2_ERR_STREAM_NOT_FOUND:
        s->write_shut = 1;
        continue;
      case NGTCP2_ERR_WRITE_MORE:
        if (stream_has_pending(s)) sendq_push(c, s);
        continue;
      default:
        if (stream_has_pending(s)) sendq_push(c, s);
        if (nwrite < 0) return nwrite;
        if (nwrite == 0) return 0; /* congestion or connection-level limit */
        return nwrite;
      }
    }
    /* Control frames only (ACK, PING, MAX_*), and completes a packet that
     * a WRITE_MORE above left open. */
    return ngtcp2_conn_write_pkt(c->conn, path, NULL, buf, cap, now);
  }
}

int wr_quic_conn_write(wr_quic_conn *c, uint8_t *buf, size_t cap, size_t *len,
                       wr_quic_tstamp now) {
  ngtcp2_path_storage ps;
  ngtcp2_ssize n;

  *len = 0;
  deliver_due_close(c);
  if (c->state == WR_QUIC_CLOSED || c->state == WR_QUIC_DRAINING) return WR_OK;
  if (c->app_close_requested && c->state < WR_QUIC_CLOSING) {
    c->close_pkt_pending = 1;
    c->close_deadline = close_period(c, now);
    snprintf(c->msg, sizeof(c->msg),
             "connection closed locally: application error 0x%" PRIx64,
             c->ccerr.error_code);
    set_state(c, WR_QUIC_CLOSING, 1, 1, 0, c->ccerr.error_code, WR_OK);
  }
  if (c->state == WR_QUIC_CLOSING) {
    if (c->close_pkt_pending) {
      c->close_pkt_pending = 0;
      ngtcp2_path_storage_zero(&ps);
      n = ngtcp2_conn_write_connection_close(c->conn, &ps.path, NULL, buf, cap,
                                             &c->ccerr, now);
      if (n <= 0) return WR_OK; /* nothing to say (e.g. no keys yet) */
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
    return WR_OK;
  }

  /* Handshake packets stay Internet-sized even to a loopback peer: a
   * client Initial is padded to the whole buffer, the server answers with as
   * much, and pacing at the initial 333 ms RTT then held the rest of the
   * server's flight back for ~130 ms. */
  if (c->state == WR_QUIC_HANDSHAKE && cap > WR_QUIC_INTERNET_PAYLOAD)
    cap = WR_QUIC_INTERNET_PAYLOAD;
  ngtcp2_path_storage_zero(&ps);
  n = write_one(c, &ps.path, buf, cap, now);
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
  conn_kick(c);
  return WR_OK;
}

void wr_quic_conn_set_deadline(wr_quic_conn *c, uint64_t after_ms, uint64_t app_code,
                               const char *reason) {
  c->owner_deadline = after_ms ? c->now + after_ms * WR_QUIC_MS : 0;
  c->owner_code = app_code;
  snprintf(c->owner_reason, sizeof(c->owner_reason), "%s", reason ? reason : "");
  conn_kick(c); /* the endpoint re-arms its timer from the new expiry */
}

wr_quic_state wr_quic_conn_state(const wr_quic_conn *c) { return c->state; }
wr_quic_role wr_quic_conn_role(const wr_quic_conn *c) { return c->role; }
void *wr_quic_conn_user(const wr_quic_conn *c) { return c->user; }
void wr_quic_conn_set_user(wr_quic_conn *c, void *user) { c->user = user; }
const char *wr_quic_conn_alpn(const wr_quic_conn *c) { return c->alpn; }
const char *wr_quic_conn_group(const wr_quic_conn *c) { return c->group; }
const struct sockaddr *wr_quic_conn_remote(const wr_quic_conn *c,
                                           socklen_t *len) {
  if (len) *len = c->remotelen;
  return (const struct sockaddr *)&c->remote;
}

/* --- streams: API ------------------------------------------------------------ */

int wr_quic_stream_open(wr_quic_conn *c, void *suser, int64_t *sid) {
  int64_t id;
  int rv;
  if (c->state >= WR_QUIC_CLOSING || c->app_close_requested)
    return WR_ERR_INVAL;
  rv = ngtcp2_conn_open_bidi_stream(c->conn, &id, NULL);
  if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) return WR_AGAIN;
  if (rv != 0) return WR_ERR_NOMEM;
  if (!stream_add(c, id, suser)) {
    ngtcp2_conn_shutdown_stream(c->conn, id, NGTCP2_INTERNAL_ERROR);
    return WR_ERR_NOMEM;
  }
  *sid = id;
  return WR_OK;
}

int wr_quic_stream_write(wr_quic_conn *c, int64_t sid, const uint8_t *data,
                         size_t len, int fin, size_t *accepted) {
  stream *s = stream_find(c, sid);
  size_t room, take;
  *accepted = 0;
  if (!s) return WR_ERR_NOTFOUND;
  if (c->state >= WR_QUIC_CLOSING || s->fin_queued || s->write_shut)
    return WR_ERR_INVAL;
  room = c->send_queue_cap > s->write_off - s->ack_off
             ? c->send_queue_cap - (size_t)(s->write_off - s->ack_off)
             : 0;
  take = len < room ? len : room;
  if (take > 0) {
    chunk *k = malloc(sizeof(*k) + take);
    if (!k) return WR_ERR_NOMEM;
    k->next = NULL;
    k->off = s->write_off;
    k->len = take;
    memcpy(k->data, data, take);
    if (s->tail)
      s->tail->next = k;
    else
      s->head = k;
    s->tail = k;
    if (!s->send) s->send = k;
    s->write_off += take;
    *accepted = take;
  }
  if (take == len && fin) s->fin_queued = 1;
  if (stream_has_pending(s) && !s->blocked) sendq_push(c, s);
  conn_kick(c);
  if (take < len) {
    s->want_writable = 1;
    return WR_AGAIN;
  }
  return WR_OK;
}

int wr_quic_stream_consume(wr_quic_conn *c, int64_t sid, size_t n) {
  stream *s = stream_find(c, sid);
  /* Connection credit is returned even for a stream that just closed:
   * cb_stream_close only returns what was not consumed by then. */
  if (!s) return WR_ERR_NOTFOUND;
  s->rx_consumed += n;
  ngtcp2_conn_extend_max_stream_offset(c->conn, sid, n);
  ngtcp2_conn_extend_max_offset(c->conn, n);
  conn_kick(c);
  return WR_OK;
}

int wr_quic_stream_reset(wr_quic_conn *c, int64_t sid, uint64_t app_code) {
  stream *s = stream_find(c, sid);
  if (!s) return WR_ERR_NOTFOUND;
  s->write_shut = 1;
  sendq_remove(c, s);
  if (ngtcp2_conn_shutdown_stream_write(c->conn, sid, app_code) != 0)
    return WR_ERR_INVAL;
  conn_kick(c);
  return WR_OK;
}

int wr_quic_stream_stop_sending(wr_quic_conn *c, int64_t sid,
                                uint64_t app_code) {
  if (!stream_find(c, sid)) return WR_ERR_NOTFOUND;
  if (ngtcp2_conn_shutdown_stream_read(c->conn, sid, app_code) != 0)
    return WR_ERR_INVAL;
  conn_kick(c);
  return WR_OK;
}

size_t wr_quic_stream_queued(wr_quic_conn *c, int64_t sid) {
  stream *s = stream_find(c, sid);
  return s ? (size_t)(s->write_off - s->ack_off) : 0;
}

void *wr_quic_stream_user(wr_quic_conn *c, int64_t sid) {
  stream *s = stream_find(c, sid);
  return s ? s->suser : NULL;
}

int wr_quic_stream_set_user(wr_quic_conn *c, int64_t sid, void *suser) {
  stream *s = stream_find(c, sid);
  if (!s) return WR_ERR_NOTFOUND;
  s->suser = suser;
  return WR_OK;
}

/* --- libuv binding --------------------------------------------------------- */

#define EP_BATCH 32
#define EP_WBUF (512u * 1024u)   /* 32 Internet packets or 8 loopback ones */
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
  wr_quic_conn *conns;
  size_t nconns;
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
  uint8_t rbuf[65536];
  /* Packets of one connection are written back to back into wbuf
   * (EP_WBUF bytes, allocated at the first write) and handed to the kernel
   * with one sendmmsg(2) per batch instead of one sendmsg(2) each:
   * per-packet system calls were the bulk path's main cost. */
  uint8_t *wbuf;
};

static wr_quic_tstamp uv_now_ns(void) { return uv_hrtime(); }

static void ep_timer_cb(uv_timer_t *t);

/* --- sources, half-open accounting, rate limits --------------------------- */

/* The key a source is counted under: an IPv4 address (as ::ffff:a.b.c.d,
 * so a v4-mapped IPv6 sender is the same source), or the /64 of an IPv6
 * address: one subscriber usually has a whole /64 to send from. */
static void src_key(const struct sockaddr *sa, uint8_t key[16]) {
  memset(key, 0, 16);
  if (sa->sa_family == AF_INET) {
    key[10] = key[11] = 0xff;
    memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    memcpy(key, &a->sin6_addr, IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) ? 16 : 8);
  }
}

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
static int ep_cid_add(wr_quic_conn *c, const ngtcp2_cid *cid, int initial_only) {
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
static void ep_cid_remove(wr_quic_conn *c, const ngtcp2_cid *cid) {
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
static void ep_adopt(wr_quic_conn *c) {
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

static void ep_kick(void *arg) {
  wr_quic_endpoint *ep = arg;
  if (!ep->closing) uv_timer_start(&ep->timer, ep_timer_cb, 0, 0);
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

static void ep_send_batch(wr_quic_endpoint *ep, const struct sockaddr *to, socklen_t tolen,
                          const size_t *lens, size_t n) {
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
    iov[k].iov_base = ep->wbuf + off[first[k]];
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
  if (!ep->wbuf && !(ep->wbuf = malloc(EP_WBUF))) return;
  for (;;) {
    size_t len = 0;
    int rv = wr_quic_conn_write(c, ep->wbuf + off, pkt, &len, now);
    if (len) {
      lens[n++] = len;
      off += len;
    }
    if (n == EP_BATCH || EP_WBUF - off < pkt || (n && (len == 0 || rv != WR_OK))) {
      socklen_t rl;
      const struct sockaddr *to = wr_quic_conn_remote(c, &rl);
      ep_send_batch(ep, to, rl, lens, n);
      n = 0;
      off = 0;
    }
    if (len == 0 || rv != WR_OK) break;
  }
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
  wr_quic_tstamp now = uv_now_ns(), min = UINT64_MAX;
  wr_quic_conn *c;
  uint64_t ms;
  if (ep->closing) return;
  for (c = ep->conns; c; c = c->ep_next) {
    wr_quic_tstamp e = wr_quic_conn_expiry(c);
    if (e < min) min = e;
  }
  if (min == UINT64_MAX) {
    uv_timer_stop(&ep->timer);
    return;
  }
  ms = min <= now ? 0 : (min - now + WR_QUIC_MS - 1) / WR_QUIC_MS;
  uv_timer_start(&ep->timer, ep_timer_cb, ms, 0);
}

/* Runs from the timer callback, i.e. never inside a connection callback:
 * the only place connections are freed (STYLE 2.1 #8). */
static void ep_timer_cb(uv_timer_t *t) {
  wr_quic_endpoint *ep = t->data;
  wr_quic_tstamp now = uv_now_ns();
  wr_quic_conn **pp = &ep->conns;
  while (*pp) {
    wr_quic_conn *c = *pp;
    /* Only connections with a due timer or something new to send are
     * written: a busy edge with many idle connectors must not pay for all
     * of them on every received batch. */
    int due = wr_quic_conn_expiry(c) <= now;
    if (due) wr_quic_conn_handle_expiry(c, now);
    if (due || c->ep_dirty) {
      c->ep_dirty = 0;
      ep_flush(ep, c);
    }
    if (c->state == WR_QUIC_CLOSED) {
      *pp = c->ep_next;
      ep->nconns--;
      ep_conn_free(ep, c);
      continue;
    }
    pp = &c->ep_next;
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
  fill_random(rnd, randlen);
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
  fill_random(scid.data, scid.datalen);
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

/* A long-header packet that belongs to no connection: a new client, maybe.
 * Admission control (RFC 9000 8.1, 21.1) decides, before any per-connection
 * state exists, between a new connection, a Retry and a silent drop. The
 * new connection has no owner until its handshake completes (ep_adopt);
 * if its first packet does not even start a handshake (bad protection, no
 * CRYPTO frame) it is freed here and nobody ever hears of it. */
static void ep_accept(wr_quic_endpoint *ep, const struct sockaddr *from, socklen_t fromlen,
                      const uint8_t *pkt, size_t len) {
  wr_quic_tstamp now = uv_now_ns();
  uint64_t ms = uv_now(ep->loop), h;
  ngtcp2_pkt_hd hd;
  ngtcp2_cid odcid;
  const ngtcp2_cid *validated = NULL;
  uint8_t key[16];
  unsigned src_half;
  src_entry *e;
  wr_quic_conn *c, **pp;

  /* Only a client Initial of a version we speak, in a datagram of at least
   * 1,200 bytes, can start a connection. No Version Negotiation is sent
   * for other versions (connectors speak v1), so nothing answers them.
   * 0-RTT is never accepted, so 0-RTT ahead of its Initial is dropped. */
  if (ngtcp2_accept(&hd, pkt, len) != 0) return;
  src_key(from, key);
  h = src_hash(ep, key);
  if (hd.token.len > 0 && hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
    if (ngtcp2_crypto_verify_retry_token(&odcid, hd.token.base, hd.token.len, ep->token_key,
                                         sizeof(ep->token_key), hd.version,
                                         (const ngtcp2_sockaddr *)from, (ngtcp2_socklen)fromlen,
                                         &hd.dcid, RETRY_TOKEN_LIFETIME, now) != 0) {
      ep->stats.bad_tokens++;
      ep_send_invalid_token(ep, from, &hd, h);
      return;
    }
    validated = &odcid;
  }
  /* Any other token would come from a NEW_TOKEN frame, which this server
   * never sends: treated as absent (RFC 9000 8.1.3). */
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
       ep->hs_in_window >= limit(ep->cfg.retry_rate, WR_QUIC_RETRY_RATE))) {
    ep_send_retry(ep, from, fromlen, &hd, h, now);
    return;
  }
  /* A proven address does not lift the caps: a sender with a few real
   * addresses could otherwise still hold unbounded handshake state. */
  if (ep->half_open >= limit(ep->cfg.max_half_open, WR_QUIC_MAX_HALF_OPEN) ||
      src_half >= limit(ep->cfg.max_half_open_per_source, WR_QUIC_MAX_HALF_OPEN_PER_SOURCE)) {
    ep->stats.dropped++;
    return;
  }
  if (server_conn_new(ep->tls, &ep->cfg, (struct sockaddr *)&ep->local, ep->locallen, from,
                      fromlen, &hd, validated, now, &c) != WR_OK)
    return;
  c->ep = ep;
  c->adopted = 0;
  {
    /* Its first SCID (issued in server_conn_new) and, for the client's
     * Initial retransmissions, the DCID it chose. */
    ngtcp2_cid ids[8];
    size_t nids = ngtcp2_conn_get_num_scid(c->conn);
    int ok = nids <= 8 && half_open_add(ep, c, key, h) == WR_OK &&
             ep_cid_add(c, &hd.dcid, 1) == WR_OK;
    nids = ok ? ngtcp2_conn_get_scid(c->conn, ids) : 0;
    for (size_t i = 0; ok && i < nids; i++) ok = ep_cid_add(c, &ids[i], 0) == WR_OK;
    if (!ok) {
      ep_conn_free(ep, c);
      return;
    }
  }
  c->kick = ep_kick;
  c->kick_arg = ep;
  c->ep_next = ep->conns;
  ep->conns = c;
  ep->nconns++;
  ep->hs_in_window++;
  ep->stats.accepted++;
  /* No owner callback can fire in here: |c| has none yet, and a first
   * Initial cannot complete a handshake. */
  wr_quic_conn_read(c, from, fromlen, pkt, len, now);
  if (c->state == WR_QUIC_CLOSED) {
    for (pp = &ep->conns; *pp && *pp != c; pp = &(*pp)->ep_next) {
    }
    if (*pp) *pp = c->ep_next;
    ep->nconns--;
    ep_conn_free(ep, c);
    return;
  }
  /* Answer from the timer (the server's first flight, or the
   * CONNECTION_CLOSE of a refused handshake). */
  c->ep_dirty = 1;
  ep_kick(ep);
}

static void ep_alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *buf) {
  wr_quic_endpoint *ep = h->data;
  (void)sz;
  *buf = uv_buf_init((char *)ep->rbuf, sizeof(ep->rbuf));
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
  c->ep_dirty = 1;
  ep_kick(ep);
}

static void ep_recv_cb(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf,
                       const struct sockaddr *addr, unsigned flags) {
  wr_quic_endpoint *ep = u->data;
  (void)flags;
  if (nread <= 0 || !addr || ep->closing) return;
  if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6) return;
  ep_input(ep, addr, (const uint8_t *)buf->base, (size_t)nread);
}

int wr_quic_endpoint_inject(wr_quic_endpoint *ep, const struct sockaddr *from,
                            const uint8_t *data, size_t len) {
  if (!ep || ep->closing || !from || !data || len == 0 || len > sizeof(ep->rbuf) ||
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
      fill_random(ep->reset_key, 32);
      ep->cfg.reset_key_len = 32;
    }
    ep->cfg.reset_key = ep->reset_key;
    fill_random(ep->token_key, sizeof(ep->token_key));
    fill_random((uint8_t *)ep->hash_seed, sizeof(ep->hash_seed));
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
  wr_quic_endpoint *ep;
  wr_quic_conn *c;
  int rv;

  memset(&any, 0, sizeof(any));
  any.ss_family = remote->sa_family;
  rlen = remote->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr_in);
  rv = ep_new(loop, WR_QUIC_CLIENT, tls, cfg, (struct sockaddr *)&any, cbs, &ep);
  if (rv != WR_OK) return rv;
  rv = wr_quic_conn_client_new(tls, cfg, (struct sockaddr *)&ep->local,
                               ep->locallen, remote, rlen, cbs, user,
                               uv_now_ns(), &c);
  if (rv != WR_OK) {
    wr_quic_endpoint_free(ep);
    return rv;
  }
  c->kick = ep_kick;
  c->kick_arg = ep;
  ep->conns = c;
  ep->nconns = 1;
  c->ep_dirty = 1; /* the first Initial */
  ep_kick(ep);
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
  for (wr_quic_conn *c = ep->conns; c; c = c->ep_next) c->ep_dirty = 1;
  ep_kick(ep);
}

static void ep_close_cb(uv_handle_t *h) {
  wr_quic_endpoint *ep = h->data;
  if (--ep->handles_open > 0) return;
  while (ep->conns) {
    wr_quic_conn *c = ep->conns;
    ep->conns = c->ep_next;
    ep_conn_free(ep, c);
  }
  free(ep->wbuf);
  free(ep);
}

uint64_t wr_quic_endpoint_gso_sends(const wr_quic_endpoint *ep) { return ep->gso_sends; }

void wr_quic_endpoint_free(wr_quic_endpoint *ep) {
  if (!ep || ep->closing) return;
  ep->closing = 1;
  uv_close((uv_handle_t *)&ep->udp, ep_close_cb);
  uv_close((uv_handle_t *)&ep->timer, ep_close_cb);
}
