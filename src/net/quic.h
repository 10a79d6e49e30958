/* QUIC transport for both halves (connector = client, edge = server), on
 * ngtcp2 0.12.1 + ngtcp2_crypto_gnutls + GnuTLS 3.7.
 *
 * Two layers:
 *  - wr_quic_conn: sans-socket. The owner feeds received UDP payloads with
 *    wr_quic_conn_read(), pulls packets with wr_quic_conn_write() until it
 *    yields 0 bytes, and drives timers with wr_quic_conn_expiry() /
 *    wr_quic_conn_handle_expiry(). Time is always passed in (`now`, ns), so
 *    tests run on a fake clock.
 *  - wr_quic_endpoint: a thin libuv binding (one uv_udp_t + one uv_timer_t)
 *    that serves many server connections or one client connection.
 *
 * Wire facts this layer pins (protocol.md 1.2, 1.3, 13.3): ALPN
 * "argotunnel" (server refuses a client without it), SNI quic.cftunnel.com,
 * TLS 1.3 with secp256r1 offered first (cloudflared 2023.7.3 offers P-256
 * only), idle timeout 5 s, client keepalive PING after 1 s without traffic,
 * initial_max_streams_bidi 2^60, max_datagram_frame_size 1350.
 *
 * Threading: none. Everything runs on the caller's thread / uv loop.
 * Callbacks are never invoked re-entrantly from inside another public call
 * on a different connection. Inside a callback the owner may call the
 * stream/datagram/close functions of this header, but must not call
 * wr_quic_conn_read/write/handle_expiry or free the connection. */
#ifndef WR_NET_QUIC_H
#define WR_NET_QUIC_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

/* ALPN, SNI and GnuTLS priority defaults. The priority string offers only
 * TLS 1.3 (QUIC requires it), AEADs usable by QUIC (no CCM_8), and puts
 * SECP256R1 first so a GnuTLS client sends its key share for P-256 (what
 * cloudflared and the Cloudflare edge use) and a server always accepts a
 * P-256-only ClientHello; X25519/P-384 stay acceptable for other clients.
 * %DISABLE_TLS13_COMPAT_MODE: QUIC forbids the middlebox-compatibility
 * ChangeCipherSpec (RFC 9001 8.4). */
#define WR_QUIC_ALPN "argotunnel"
#define WR_QUIC_SNI_DEFAULT "quic.cftunnel.com"
#define WR_QUIC_PRIORITY_DEFAULT                                               \
  "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"       \
  "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-SECP256R1:+GROUP-X25519:"              \
  "+GROUP-SECP384R1:%DISABLE_TLS13_COMPAT_MODE"
/* cloudflared 2023.7.3 closes the connection when it receives a DATAGRAM
 * frame whose encoded size exceeds this (protocol.md 1.3). */
#define WR_QUIC_MAX_DATAGRAM_FRAME 1350
/* Default UDP payload sizes of the packets we send (quic_conn.c
 * default_payload). */
#define WR_QUIC_INTERNET_PAYLOAD 1452
#define WR_QUIC_LOOPBACK_PAYLOAD 65488
/* Server connection IDs have this fixed length so short-header packets can
 * be demultiplexed without per-connection state. */
#define WR_QUIC_SCID_LEN 18

/* Nanoseconds, same unit as ngtcp2_tstamp. */
typedef uint64_t wr_quic_tstamp;
#define WR_QUIC_MS ((wr_quic_tstamp)1000000ULL)
#define WR_QUIC_S ((wr_quic_tstamp)1000000000ULL)

typedef enum wr_quic_role { WR_QUIC_CLIENT = 0, WR_QUIC_SERVER = 1 } wr_quic_role;

/* Configuration. Zero fields take the documented default, so
 * `wr_quic_config c = {0};` is a valid cloudflared-compatible config
 * (except the files). Strings are copied where kept. */
typedef struct wr_quic_config {
  const char *sni;       /* client: SNI and verified host name; default WR_QUIC_SNI_DEFAULT */
  const char *alpn;      /* default WR_QUIC_ALPN; "" (client only) sends no ALPN (for tests) */
  const char *ca_file;   /* client: PEM trust anchors; NULL = system trust store */
  const char *extra_ca_pem; /* client, ca_file NULL: PEM anchors besides the system's */
  size_t extra_ca_pem_len;
  const char *cert_file; /* server: PEM chain */
  const char *key_file;  /* server: PEM key */
  const char *priority;  /* GnuTLS priority; default WR_QUIC_PRIORITY_DEFAULT */
  uint64_t idle_timeout_ms;      /* default 5000 */
  uint64_t handshake_timeout_ms; /* default 5000; a server endpoint frees a
                                    half-open connection after this */
  /* PING when nothing was received/sent for this long. Default: 1000 for a
   * client (cloudflared's KeepAlivePeriod), 0 = off for a server. Set to
   * UINT64_MAX to disable on a client. */
  uint64_t keepalive_ms;
  uint64_t stream_window;     /* initial per-stream receive window, default 512 KiB */
  uint64_t conn_window;       /* initial connection receive window, default 768 KiB */
  uint64_t max_stream_window; /* auto-tuning ceiling, default 6 MiB */
  uint64_t max_conn_window;   /* auto-tuning ceiling, default 15 MiB */
  uint64_t max_streams_bidi;  /* peer may open this many; default 2^60 */
  size_t stream_send_queue;   /* per-stream bytes buffered until acked, default 1 MiB */
  size_t datagram_queue;      /* outgoing datagrams waiting, default 256 */
  size_t max_udp_payload;     /* packets we send; 0: 1452, or 65488 to a loopback peer */
  /* Server: the static key stateless reset tokens are derived from (RFC
   * 9000 10.3; HKDF over key and connection ID). With the same key across
   * restarts, a restarted edge answers packets of connections it no longer
   * knows with a Stateless Reset, and connectors reconnect at once instead
   * of waiting for their idle timeout. NULL: a random key per process. */
  const uint8_t *reset_key;
  size_t reset_key_len;       /* 16..64 bytes */
  /* Client: the local address to send from (port 0: any port), e.g.
   * cloudflared's --edge-bind-address; NULL or another family than the
   * remote's: the wildcard address. */
  const struct sockaddr *local_addr;

  /* Server endpoint: defences against handshake floods (RFC 9000 8.1,
   * 21.1). A half-open connection is one whose handshake has not completed:
   * each holds ~90 KB of ngtcp2 and GnuTLS state (quic_endpoint.c explains
   * where it goes) while costing its sender one 1,200-byte datagram. A "source" is
   * an IPv4 address or an IPv6 /64. Above the Retry thresholds a new client
   * must first prove its address with a Retry token (one extra round trip,
   * no state kept until it comes back); beyond the caps new handshakes are
   * dropped, token or not. The caps bound the memory half-open connections
   * can take to about max_half_open x 90 KB. UINT_MAX disables a limit. */
  unsigned retry_half_open;            /* Retry above this many half-open in total; default 100 */
  unsigned retry_half_open_per_source; /* ... or from the sender's source; default 10 */
  unsigned retry_rate;                 /* ... or when this many handshakes began in the current second; default 1000 */
  unsigned max_half_open;              /* drop beyond; default 1000 */
  unsigned max_half_open_per_source;   /* default 50 */
  int retry_always;                    /* every new connection needs a Retry token (tests) */

  /* Unidirectional streams the peer may open (initial_max_streams_uni);
   * default 0: the tunnel protocol uses none (protocol.md 1.3). When
   * non-zero, peer uni streams are reported like bidi ones (on_stream_open,
   * on_stream_data, consume) and wr_quic_stream_open_uni may be used. */
  uint64_t max_streams_uni;
  /* Server: credentials chosen by SNI (HTTP/3 to visitors). When set, the
   * endpoint needs no cert_file/key_file: once the ClientHello is parsed,
   * |sni_pick| gets its server name ("" without one) and returns an opaque
   * reference that holds credentials, with *|cred| set to its
   * gnutls_certificate_credentials_t, or NULL to refuse the handshake with
   * unrecognized_name. A pick that cannot answer yet (the name is being
   * looked up) sets *|later| and returns NULL: the endpoint then drops the
   * half-open connection without a word, and the client's retransmitted
   * Initial (about a second later) starts a new one. The connection hands
   * the reference back to |sni_release| after its TLS session is freed.
   * Both run on the loop's thread inside packet processing and must not
   * block. */
  void *(*sni_pick)(void *arg, const char *sni, void **cred, int *later);
  void (*sni_release)(void *arg, void *ref);
  void *sni_arg;
} wr_quic_config;

#define WR_QUIC_RETRY_HALF_OPEN 100
#define WR_QUIC_RETRY_HALF_OPEN_PER_SOURCE 10
#define WR_QUIC_RETRY_RATE 1000
#define WR_QUIC_MAX_HALF_OPEN 1000
#define WR_QUIC_MAX_HALF_OPEN_PER_SOURCE 50

/* Shared, immutable TLS material (credentials + priority cache) loaded once
 * and used by many connections. */
typedef struct wr_quic_tls wr_quic_tls;

/* Loads credentials for |role| from |cfg| (ca_file for a client,
 * cert_file/key_file for a server). On failure writes a message into
 * |err|/|errlen| (if non-NULL).
 * Returns WR_OK, WR_ERR_NOMEM, WR_ERR_CONFIG (missing file name) or
 * WR_ERR_CRYPTO (GnuTLS rejected a file or the priority string). */
int wr_quic_tls_new(wr_quic_role role, const wr_quic_config *cfg,
                    wr_quic_tls **out, char *err, size_t errlen);
/* Frees |tls|; every connection using it must already be freed. */
void wr_quic_tls_free(wr_quic_tls *tls);

/* Connection lifecycle. Transitions happen in one function (quic_conn.c
 * set_state). */
typedef enum wr_quic_state {
  WR_QUIC_HANDSHAKE = 0, /* TLS handshake in progress; streams may be queued */
  WR_QUIC_ESTABLISHED,   /* handshake completed (on_handshake_done fired) */
  WR_QUIC_CLOSING,       /* we sent CONNECTION_CLOSE; answer peer packets until 3*PTO */
  WR_QUIC_DRAINING,      /* peer sent CONNECTION_CLOSE; stay silent until 3*PTO */
  WR_QUIC_CLOSED         /* terminal: on_close delivered; the owner may free */
} wr_quic_state;

/* How and why a connection ended; passed to on_close. */
typedef struct wr_quic_close_info {
  int local;       /* 1: we closed it (or a local timer/error), 0: the peer */
  int app;         /* 1: application error code space, 0: transport */
  int idle;        /* 1: idle timeout, silently */
  uint64_t code;   /* QUIC error code (application or transport) */
  int err;         /* WR_OK for clean closes, WR_ERR_CRYPTO (TLS/cert/ALPN),
                      WR_ERR_PROTO, WR_ERR_IO (timeouts), ... */
  int reset;       /* 1: the peer sent a Stateless Reset (it lost our state) */
  const char *msg; /* human-readable; valid until the conn is freed */
} wr_quic_close_info;

typedef struct wr_quic_conn wr_quic_conn;

/* Events. Every member may be NULL. |user| is the connection's user
 * pointer, |suser| the stream's. A negative return from the int callbacks
 * closes the connection with INTERNAL_ERROR. */
typedef struct wr_quic_callbacks {
  void (*on_handshake_done)(wr_quic_conn *c, void *user);
  /* A peer-initiated stream appeared (before its first data). */
  int (*on_stream_open)(wr_quic_conn *c, int64_t sid, void *user);
  /* In-order stream bytes. |fin| marks the end. Credit is NOT returned
   * automatically: call wr_quic_stream_consume() as bytes are consumed. */
  int (*on_stream_data)(wr_quic_conn *c, int64_t sid, const uint8_t *data,
                        size_t len, int fin, void *user, void *suser);
  /* Peer sent RESET_STREAM: no more data will arrive on |sid|.
   * A peer STOP_SENDING is not reported: ngtcp2 0.12 answers it with
   * RESET_STREAM by itself and later writes fail (WR_ERR_INVAL). */
  int (*on_stream_reset)(wr_quic_conn *c, int64_t sid, uint64_t app_code,
                         void *user, void *suser);
  /* The send queue of |sid| drained below half after a WR_AGAIN. */
  void (*on_stream_writable)(wr_quic_conn *c, int64_t sid, void *user,
                             void *suser);
  /* Stream fully closed; |app_code| valid if |has_code|. |suser| is freed
   * by its owner here; the stream id is invalid afterwards. */
  void (*on_stream_close)(wr_quic_conn *c, int64_t sid, int has_code,
                          uint64_t app_code, void *user, void *suser);
  int (*on_datagram)(wr_quic_conn *c, const uint8_t *data, size_t len,
                     void *user);
  /* Delivered exactly once, when the connection stops being usable. Every
   * stream of the connection is gone with it: no on_stream_close follows
   * for them, so owners of stream user pointers release them here. Do not
   * free |c| here; free it once wr_quic_conn_state() is WR_QUIC_CLOSED.
   * A connection owned by a wr_quic_endpoint is freed by the endpoint on a
   * later loop iteration: do not use |c| after on_close returns. */
  void (*on_close)(wr_quic_conn *c, const wr_quic_close_info *info, void *user);
  /* The peer may now open bidirectional streams up to |max_streams| in
   * total (cumulative: each of its streams that closed gave one back, as
   * MAX_STREAMS). */
  void (*on_peer_streams)(wr_quic_conn *c, uint64_t max_streams, void *user);
} wr_quic_callbacks;

/* The two ends of a connection's path: our local address and the peer's
 * (each a sockaddr_in or sockaddr_in6 with its length). Borrowed: the
 * functions taking one copy the addresses they keep, so the caller may
 * point into its own buffers and reuse them after the call. */
typedef struct wr_quic_path {
  const struct sockaddr *local;
  socklen_t locallen;
  const struct sockaddr *remote;
  socklen_t remotelen;
} wr_quic_path;

/* Creates a client connection on |path| (from its local to its remote
 * address) and prepares the first Initial (pull it with
 * wr_quic_conn_write). |path| and |cbs| are copied.
 * Returns WR_OK, WR_ERR_NOMEM, WR_ERR_INVAL or WR_ERR_CRYPTO. */
int wr_quic_conn_client_new(wr_quic_tls *tls, const wr_quic_config *cfg,
                            const wr_quic_path *path,
                            const wr_quic_callbacks *cbs, void *user,
                            wr_quic_tstamp now, wr_quic_conn **out);

/* Server side: if |pkt| (received on |path|: from its remote to its local
 * address; |path| is copied) is a client Initial acceptable for a new
 * connection, creates the connection and processes the packet. No
 * callback fires from inside this call: the packet is processed before
 * |cbs| and |user| are installed. A packet that cannot
 * start a connection (bad protection, no CRYPTO frame, ...) leaves nothing
 * behind: the connection is freed and WR_ERR_PROTO returned. A first packet
 * the TLS layer refuses (e.g. no ALPN) returns WR_OK with the connection
 * already in WR_QUIC_CLOSING: write its CONNECTION_CLOSE out as usual;
 * on_close is delivered by the next wr_quic_conn_write or
 * wr_quic_conn_handle_expiry. Returns WR_OK, WR_ERR_PROTO (not a valid
 * first packet: drop it), WR_ERR_NOMEM or WR_ERR_CRYPTO. */
int wr_quic_conn_server_accept(wr_quic_tls *tls, const wr_quic_config *cfg,
                               const wr_quic_path *path, const uint8_t *pkt,
                               size_t len, const wr_quic_callbacks *cbs,
                               void *user, wr_quic_tstamp now,
                               wr_quic_conn **out);

/* Frees the connection and all streams, without sending anything and
 * without callbacks. */
void wr_quic_conn_free(wr_quic_conn *c);

/* Feeds one received UDP payload from |remote|. Events fire from here.
 * Returns WR_OK (also when the packet was dropped or closed the
 * connection: watch wr_quic_conn_state), or WR_ERR_INVAL when closed. */
int wr_quic_conn_read(wr_quic_conn *c, const struct sockaddr *remote,
                      socklen_t remotelen, const uint8_t *data, size_t len,
                      wr_quic_tstamp now);

/* Writes the next packet into |buf| (|cap| >= 1452 recommended) and stores
 * its size in |*len|; |*len| == 0 means nothing more to send right now.
 * Loop until then. Stream data and datagrams are packed together.
 * Returns WR_OK or WR_ERR_* on a fatal error (the connection is closed and
 * on_close delivered; still write out what *len says). */
int wr_quic_conn_write(wr_quic_conn *c, uint8_t *buf, size_t cap, size_t *len,
                       wr_quic_tstamp now);

/* Next time wr_quic_conn_handle_expiry must run; UINT64_MAX if none. */
wr_quic_tstamp wr_quic_conn_expiry(wr_quic_conn *c);
/* Runs timers (loss recovery, keepalive, idle/handshake timeout, end of
 * closing/draining). Call wr_quic_conn_write afterwards. Returns WR_OK. */
int wr_quic_conn_handle_expiry(wr_quic_conn *c, wr_quic_tstamp now);

/* Closes with an application error code (0 = normal, as cloudflared).
 * The CONNECTION_CLOSE goes out with the next wr_quic_conn_write; on_close
 * fires then. Returns WR_OK, or WR_ERR_INVAL if already closing. */
int wr_quic_conn_close(wr_quic_conn *c, uint64_t app_code, const char *reason);

/* Arms (|after_ms| > 0) or clears (0) a deadline on the connection's own
 * timer: when it passes, the connection is closed as by
 * wr_quic_conn_close(c, app_code, reason). For owners that must bound a
 * phase of their protocol that the peer controls, e.g. "a connector
 * registers soon after the handshake", which QUIC's idle timeout does not
 * bound because PINGs keep a silent connection alive. |after_ms| counts
 * from the last packet or timer the connection handled (in a callback:
 * now). |reason| is copied. May be called from the connection's callbacks. */
void wr_quic_conn_set_deadline(wr_quic_conn *c, uint64_t after_ms, uint64_t app_code,
                               const char *reason);

wr_quic_state wr_quic_conn_state(const wr_quic_conn *c);
wr_quic_role wr_quic_conn_role(const wr_quic_conn *c);
void *wr_quic_conn_user(const wr_quic_conn *c);
void wr_quic_conn_set_user(wr_quic_conn *c, void *user);
/* Negotiated ALPN ("" if none yet). */
const char *wr_quic_conn_alpn(const wr_quic_conn *c);
/* Server with sni_pick: the server name the client asked for ("" if none). */
const char *wr_quic_conn_sni(const wr_quic_conn *c);
/* Name of the negotiated key-exchange group ("" before the handshake). */
const char *wr_quic_conn_group(const wr_quic_conn *c);
/* Peer address of the current path. */
const struct sockaddr *wr_quic_conn_remote(const wr_quic_conn *c,
                                           socklen_t *len);

/* --- streams ------------------------------------------------------------ */

/* Opens a local bidirectional stream; |*sid| receives its id (client: 0,
 * 4, 8...; server: 1, 5, 9...). Returns WR_OK, WR_AGAIN (peer's stream
 * limit), WR_ERR_INVAL (closed) or WR_ERR_NOMEM. */
int wr_quic_stream_open(wr_quic_conn *c, void *suser, int64_t *sid);

/* Opens a local unidirectional stream (needs the peer's uni stream
 * credit); as wr_quic_stream_open otherwise. */
int wr_quic_stream_open_uni(wr_quic_conn *c, void *suser, int64_t *sid);

/* The cumulative number of bidirectional streams the peer may open now. */
uint64_t wr_quic_peer_streams_max(wr_quic_conn *c);

/* Queues up to |len| bytes (copied; kept until the peer acks them) and, if
 * |fin| and all bytes fit, the FIN. |*accepted| = bytes taken.
 * Returns WR_OK (all taken), WR_AGAIN (queue full: the rest was not taken;
 * on_stream_writable fires when there is room), WR_ERR_NOTFOUND, WR_ERR_INVAL
 * (FIN already queued, write side reset, or conn closing), WR_ERR_NOMEM. */
int wr_quic_stream_write(wr_quic_conn *c, int64_t sid, const uint8_t *data,
                         size_t len, int fin, size_t *accepted);

/* Returns |n| bytes of receive credit for |sid| and the connection (call as
 * the application consumes data passed to on_stream_data). Returns WR_OK or
 * WR_ERR_NOTFOUND. */
int wr_quic_stream_consume(wr_quic_conn *c, int64_t sid, size_t n);

/* RESET_STREAM with |app_code| (abort our sending side). */
int wr_quic_stream_reset(wr_quic_conn *c, int64_t sid, uint64_t app_code);
/* STOP_SENDING with |app_code| (we will not read more). */
int wr_quic_stream_stop_sending(wr_quic_conn *c, int64_t sid, uint64_t app_code);

/* Bytes queued for |sid| and not yet acknowledged (0 if unknown stream). */
size_t wr_quic_stream_queued(wr_quic_conn *c, int64_t sid);
void *wr_quic_stream_user(wr_quic_conn *c, int64_t sid);
int wr_quic_stream_set_user(wr_quic_conn *c, int64_t sid, void *suser);

/* --- datagrams (RFC 9221) ------------------------------------------------ */

/* Largest payload the peer accepts in one DATAGRAM frame (0 if the peer
 * did not enable datagrams or the handshake has not progressed enough). */
size_t wr_quic_datagram_max(wr_quic_conn *c);
/* Queues one datagram (copied). Returns WR_OK, WR_ERR_LIMIT (larger than
 * wr_quic_datagram_max: refused locally, nothing sent), WR_AGAIN (queue
 * full or peer parameters not known yet), WR_ERR_UNSUPPORTED (peer has no
 * datagram support), WR_ERR_INVAL (closing), WR_ERR_NOMEM. Datagrams are
 * unreliable: one that cannot fit a packet is dropped. */
int wr_quic_datagram_send(wr_quic_conn *c, const uint8_t *data, size_t len);

/* --- libuv binding ------------------------------------------------------- */

typedef struct wr_quic_endpoint wr_quic_endpoint;

/* Server: called for each connection whose handshake completed, before its
 * first event (on_handshake_done); set the connection's user pointer here.
 * It runs inside packet processing: only wr_quic_conn_set_user (and
 * wr_quic_conn_close) may be called on |c| from it.
 *
 * Ownership: until its handshake completes, a server connection belongs to
 * the endpoint alone. It has no user pointer, none of |cbs| fires for it,
 * and the endpoint frees it itself when the handshake fails or times out,
 * so an owner never hears of connections that a forged or abandoned
 * Initial created. From on_accept on, the connection gets |cbs| and the
 * usual contract (on_close exactly once, freed by the endpoint after). */
typedef void (*wr_quic_accept_cb)(wr_quic_endpoint *ep, wr_quic_conn *c,
                                  void *ep_user);

/* Binds a UDP socket on |addr| and accepts connections. Connections get
 * |cbs| and the user pointer set in |on_accept| (default |ep_user|) once
 * their handshake completed (see wr_quic_accept_cb). |cfg| also carries the
 * handshake-flood limits (retry_*, max_half_open*).
 * Returns WR_OK, WR_ERR_IO (bind failed) or WR_ERR_NOMEM. */
int wr_quic_endpoint_server(uv_loop_t *loop, wr_quic_tls *tls,
                            const wr_quic_config *cfg,
                            const struct sockaddr *addr,
                            const wr_quic_callbacks *cbs,
                            wr_quic_accept_cb on_accept, void *ep_user,
                            wr_quic_endpoint **out);

/* Binds an ephemeral UDP port and dials |remote|. |*conn| receives the
 * connection (owned by the endpoint). Returns WR_OK, WR_ERR_IO, WR_ERR_NOMEM
 * or WR_ERR_CRYPTO. */
int wr_quic_endpoint_client(uv_loop_t *loop, wr_quic_tls *tls,
                            const wr_quic_config *cfg,
                            const struct sockaddr *remote,
                            const wr_quic_callbacks *cbs, void *user,
                            wr_quic_endpoint **out, wr_quic_conn **conn);

/* Local address of the endpoint's socket. Returns WR_OK or WR_ERR_IO. */
int wr_quic_endpoint_addr(wr_quic_endpoint *ep, struct sockaddr_storage *ss);

/* Number of live connections (half-open ones included). */
size_t wr_quic_endpoint_nconns(wr_quic_endpoint *ep);

/* Counters of a server endpoint, for tests and metrics. */
typedef struct wr_quic_endpoint_stats {
  size_t conns;            /* live connections, as wr_quic_endpoint_nconns */
  size_t half_open;        /* of which without a completed handshake (no owner yet) */
  size_t sources;          /* sources with half-open connections (tracked entries) */
  uint64_t accepted;       /* connections created from an Initial */
  uint64_t retries;        /* Retry packets sent */
  uint64_t dropped;        /* new-connection Initials dropped at a cap */
  uint64_t bad_tokens;     /* Initials with an invalid or expired Retry token */
  uint64_t resets;         /* Stateless Resets sent */
  uint64_t rate_limited;   /* stateless answers (reset, Retry, close) withheld by rate limits */
} wr_quic_endpoint_stats;
void wr_quic_endpoint_get_stats(const wr_quic_endpoint *ep, wr_quic_endpoint_stats *st);

/* For tests and fuzzers only: handles |data| exactly as if it had arrived
 * on the endpoint's socket from |from| (same demultiplexing, accept path
 * and callbacks; answers go out on the socket to |from|). Must not be
 * called from inside a callback of this endpoint. Returns WR_OK, or
 * WR_ERR_INVAL (closing endpoint, bad address). */
int wr_quic_endpoint_inject(wr_quic_endpoint *ep, const struct sockaddr *from,
                            const uint8_t *data, size_t len);

/* Schedules packet output for all connections on the next loop iteration.
 * Stream/datagram/close calls on a connection owned by an endpoint do this
 * automatically; exposed for completeness. */
void wr_quic_endpoint_kick(wr_quic_endpoint *ep);

/* Messages sent with UDP GSO (several packets in one send); for tests
 * and metrics. */
uint64_t wr_quic_endpoint_gso_sends(const wr_quic_endpoint *ep);

/* Closes the socket and timer, frees every connection (without sending and
 * without callbacks) once libuv has released the handles. Safe from inside
 * callbacks: the work happens in libuv close callbacks. */
void wr_quic_endpoint_free(wr_quic_endpoint *ep);

#endif
