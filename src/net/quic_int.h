/* Internals of the QUIC transport, shared by src/net/quic_*.c and nothing
 * else (the public contract is quic.h). Five files, one concept each:
 *
 *  quic_tls.c       wr_quic_tls (credentials, priority cache); each
 *                   connection's GnuTLS session (ALPN, SNI, certificate
 *                   verification, the server's refusal of a client without
 *                   ALPN); the ngtcp2_crypto callbacks; what a TLS failure
 *                   is called in close info and CONNECTION_CLOSE.
 *  quic_conn.c      one connection: creation (client; server from a client
 *                   Initial), ngtcp2 settings and transport parameters, the
 *                   connection-ID/handshake/reset callbacks, read, write
 *                   (close packets itself, application packets from
 *                   quic_stream.c), timers and the close state machine
 *                   (set_state makes every transition).
 *  quic_stream.c    streams (table, unacked send chunks, receive credit,
 *                   round-robin send queue) and the datagram queue: their
 *                   public API, their ngtcp2 callbacks, and packing both
 *                   into packets (wr__quic_write_app).
 *  quic_endpoint.c  the libuv endpoint: socket, sendmmsg/GSO batching,
 *                   timers (a heap of expiries and a dirty list),
 *                   demultiplexing through the connection-ID index,
 *                   admission control (half-open caps, Retry, stateless
 *                   reset, rate limits) and injection for tests and fuzzers.
 *                   Its own structs (endpoint, CID and source entries) stay
 *                   private to it.
 *  quic_mem.c       the ngtcp2_mem of every connection: ngtcp2's large
 *                   pool blocks on pages of their own, so that what it
 *                   reserves and never touches stays out of RSS.
 *
 * Dependencies between them: conn uses tls (session, callbacks, failure
 * text), stream (callbacks, packing, freeing) and endpoint (CID index,
 * adoption of a server connection); endpoint creates server connections
 * through conn; stream and tls use only the layout below. */
#ifndef WR_NET_QUIC_INT_H
#define WR_NET_QUIC_INT_H
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include "lib/minheap.h"
#include "net/quic.h"

struct wr_quic_tls {
  wr_quic_role role;
  gnutls_certificate_credentials_t cred;
  gnutls_priority_t prio;
};

struct stream;    /* quic_stream.c */
struct dgram;     /* quic_stream.c */
struct src_entry; /* quic_endpoint.c */
struct cid_entry; /* quic_endpoint.c */
struct wr_quic_endpoint;

/* One connection. Each group names the file that writes it; the others
 * only read (or, for cb_failed, also set it from their callbacks). */
struct wr_quic_conn {
  /* quic_conn.c (session: quic_tls.c) */
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

  /* quic_stream.c */
  struct stream **buckets; /* NBUCKETS chains, allocated with the first stream */
  struct stream *sq_head, *sq_tail;
  struct dgram *dq_head, *dq_tail;
  size_t dq_len;
  uint64_t peer_bidi_closed; /* the peer's bidi streams closed: credit given back */

  /* Close handling (quic_conn.c; ccerr and msg for TLS failures: quic_tls.c). */
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
  char tls_msg[200];       /* quic_tls.c: why TLS refused, for msg */

  int hs_done_pending;
  int hs_confirmed;        /* ngtcp2 handshake_confirmed: no Initial or Handshake
                            * packet will be sent any more */
  int cb_failed;           /* an owner callback returned < 0 (any file's callbacks) */
  int got_reset;           /* the peer sent a Stateless Reset */
  uint8_t reset_key[64];   /* server: key for stateless reset tokens */
  size_t reset_key_len;
  char alpn[32];      /* quic_tls.c */
  char want_alpn[32]; /* quic_tls.c; client: the ALPN the server must select */
  char group[32];     /* quic_tls.c */
  char sni[256];      /* quic_tls.c; server with sni_pick: the client's name */
  uint8_t tls_alert;  /* quic_tls.c: the alert our own refusal chose; 0: none */
  void *(*sni_pick)(void *arg, const char *sni, void **cred, int *later); /* from the config */
  int sni_later;      /* sni_pick asked for later: drop silently (quic_endpoint.c) */
  void (*sni_release)(void *arg, void *ref);
  void *sni_arg;
  void *sni_ref;      /* what sni_pick returned, released with the session */
  int uni_streams;    /* config max_streams_uni > 0: track uni streams */
  int bidi_credit;    /* a finite bidi stream limit: closed peer streams give credit back */

  /* libuv binding (quic_endpoint.c) */
  void (*kick)(void *arg, struct wr_quic_conn *c);
  void *kick_arg;
  int ep_dirty; /* on the endpoint's dirty list: flush it at the next pass */
  struct wr_quic_conn *dirty_next;
  struct wr_quic_conn *ep_next, *ep_prev; /* the endpoint's connections */
  wr_heap_node ep_timer;       /* filed under its expiry in the endpoint's heap */
  struct wr_quic_endpoint *ep; /* server connections of an endpoint */
  struct src_entry *src;       /* while half-open: its source's counter */
  struct cid_entry *cids;      /* its entries in the endpoint's CID index */
  int adopted;                 /* has an owner (always, except half-open server conns) */

  /* quic_trace.c (WARREN_QUIC_TRACE) */
  wr_quic_tstamp trace_at;     /* start of the interval; 0: none yet */
  uint64_t trace_tx, trace_rx; /* UDP payload bytes in the interval */
};

/* --- helpers every file uses -------------------------------------------- */

static inline void wr__quic_random(uint8_t *p, size_t n) {
  /* gnutls_rnd only fails when the library is unusable; fall back to
   * zero-free but predictable bytes is worse than aborting. */
  if (gnutls_rnd(GNUTLS_RND_RANDOM, p, n) != 0) abort();
}

/* |c| has something to send: flag it for the endpoint's next pass and wake
 * the endpoint (a no-op for a connection without one). */
static inline void wr__quic_kick(wr_quic_conn *c) {
  if (c->kick) c->kick(c->kick_arg, c);
}

/* --- quic_tls.c ----------------------------------------------------------- */

/* Installs the ngtcp2_crypto_gnutls callbacks a connection of |role| needs
 * (handshake, packet protection, key update, path challenge data, version
 * negotiation) into |cb|. */
void wr__quic_tls_callbacks(ngtcp2_callbacks *cb, wr_quic_role role);

/* Creates c->session for c->role from c->tls and |cfg| (client: SNI, name
 * verification, ALPN to insist on; server: the no-ALPN refusal) and hands
 * it to c->conn, which must exist. Returns WR_OK, WR_ERR_NOMEM or
 * WR_ERR_CRYPTO; on failure c->session may be set, for the caller to
 * gnutls_deinit. */
int wr__quic_tls_session_new(wr_quic_conn *c, const wr_quic_config *cfg);

/* The handshake completed: records the negotiated ALPN and group. Returns
 * 0, or -1 (with c->tls_msg set) when a client's server did not select the
 * ALPN it must. */
int wr__quic_tls_handshake_done(wr_quic_conn *c);

/* A server whose handshake is complete frees c->session (GnuTLS's ~24 KB a
 * connection): ngtcp2 keeps its own copy of the CRYPTO data it may resend
 * and the packet keys, so nothing needs the session afterwards; CRYPTO data
 * that still arrives ends the connection (unexpected_message). A client
 * keeps its session (a server may send NewSessionTicket at any time). Call
 * outside ngtcp2 callbacks. */
void wr__quic_tls_session_drop(wr_quic_conn *c);

/* If |liberr| (an ngtcp2 error that ends the connection) is a TLS failure
 * (NGTCP2_ERR_CRYPTO, or our own refusal recorded in c->tls_msg), sets
 * c->ccerr to the TLS alert and c->msg to a description and returns 1;
 * otherwise touches nothing and returns 0. */
int wr__quic_tls_close_error(wr_quic_conn *c, int liberr);

/* Name of the TLS alert carried by the QUIC error |code| (0x100-0x1ff), or
 * "" for any other code. */
const char *wr__quic_alert_name(uint64_t code);

/* --- quic_conn.c ---------------------------------------------------------- */

/* Creates a server connection on |path| (copied) for the client Initial
 * |hd| without processing it and without callbacks or user (the caller
 * installs them).
 * |odcid|: the client's original DCID recovered from a valid Retry token
 * (then |hd| carries that token and its DCID is our Retry SCID), or NULL.
 * Returns WR_OK, WR_ERR_NOMEM or WR_ERR_CRYPTO. */
int wr__quic_server_conn_new(wr_quic_tls *tls, const wr_quic_config *cfg,
                             const wr_quic_path *path, const ngtcp2_pkt_hd *hd,
                             const ngtcp2_cid *odcid, wr_quic_tstamp now,
                             wr_quic_conn **out);

/* --- quic_stream.c -------------------------------------------------------- */

/* Installs the stream and datagram callbacks into |cb|. */
void wr__quic_stream_callbacks(ngtcp2_callbacks *cb);

/* Frees every stream (with its unacked data) and queued datagram of |c|,
 * without callbacks. */
void wr__quic_streams_free(wr_quic_conn *c);

/* Writes one packet of application data into |buf| (datagrams first, then
 * streams in round-robin order, then control frames), coalescing frames.
 * Called once per packet by wr_quic_conn_write. Returns the packet size, 0
 * (nothing to send now), or a negative ngtcp2 error. */
ngtcp2_ssize wr__quic_write_app(wr_quic_conn *c, ngtcp2_path *path, uint8_t *buf,
                                size_t cap, wr_quic_tstamp now);

/* --- quic_endpoint.c ------------------------------------------------------ */

/* The handshake of a server connection completed: it gets its owner (the
 * endpoint's callbacks and on_accept). Runs inside packet processing,
 * before the stream frames of the same datagram. */
void wr__quic_ep_adopt(wr_quic_conn *c);

/* --- quic_mem.c ----------------------------------------------------------- */

/* Requests of this many bytes or more (ngtcp2's pool blocks: ksl blocks,
 * stream/frame/packet pools, buffers) get pages of their own. */
#define WR_QUIC_MEM_PAGED 4096u
/* Freed runs keep their pages (for reuse without page faults) up to this
 * many pages in all (1 MiB of 4 KiB pages); beyond, they go back to the
 * kernel. */
#define WR_QUIC_MEM_DIRTY_PAGES 256u

/* The allocator every ngtcp2_conn is created with (static; never freed).
 * Its functions fail with NULL on out of memory, as ngtcp2_mem requires,
 * are thread-safe and may run inside any ngtcp2 callback. Blocks from it
 * must be freed through it, never with free(). */
const ngtcp2_mem *wr__quic_mem(void);

/* --- quic_trace.c: diagnostics from the environment ------------------------ */

/* Applies WARREN_QUIC_CC (the congestion controller) to |s|, if set. */
void wr__quic_trace_settings(ngtcp2_settings *s);
/* Counts |tx| bytes written and, every WARREN_QUIC_TRACE ms, logs the
 * congestion and flow-control state of |c|. Does nothing when unset. */
void wr__quic_trace(wr_quic_conn *c, size_t tx, wr_quic_tstamp now);

/* Indexes |cid| for c (which has c->ep) so that packets to it find |c|;
 * |initial_only|: match long-header packets only (the client's first
 * DCID). Returns WR_OK or WR_ERR_NOMEM. */
int wr__quic_ep_cid_add(wr_quic_conn *c, const ngtcp2_cid *cid, int initial_only);

/* ngtcp2 retired |cid| of |c|: drops it from the index. */
void wr__quic_ep_cid_remove(wr_quic_conn *c, const ngtcp2_cid *cid);

#endif
