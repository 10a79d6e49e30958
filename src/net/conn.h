/* A byte stream on libuv: TCP (host name or address), a unix socket, either
 * optionally wrapped in TLS (net/tls.h). The connector uses it for origins,
 * the edge for visitors. Writes are copied, so callers need not keep their
 * buffers; backpressure is visible through wr_conn_write_queued() and the
 * on_drain callback.
 *
 * Ownership: wr_conn_close() starts closing; on_close fires once on a later
 * loop iteration and the conn is freed right after it returns. No other
 * callback fires after wr_conn_close(). */
#ifndef WR_NET_CONN_H
#define WR_NET_CONN_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "net/tls.h"

typedef struct wr_conn wr_conn;

typedef struct wr_conn_callbacks {
  /* Connected (and TLS handshake done), or failed: |status| WR_OK or an
   * error with a human |msg| in Go's style where it matters, e.g.
   * "dial tcp 127.0.0.1:1: connect: connection refused",
   * "dial tcp: lookup nosuch.invalid: no such host", "i/o timeout",
   * "tls: certificate signed by unknown authority". After a failure the conn
   * is closed by the caller (wr_conn_close). */
  void (*on_connect)(wr_conn *c, int status, const char *msg, void *user);
  /* Plaintext bytes (valid during the call only). */
  void (*on_read)(wr_conn *c, const uint8_t *data, size_t len, void *user);
  /* The peer ended its side: |status| WR_OK for a clean EOF (TLS:
   * close_notify or EOF), else WR_ERR_IO (reset, ...) / WR_ERR_CRYPTO. No
   * more on_read after this. */
  void (*on_eof)(wr_conn *c, int status, const char *msg, void *user);
  /* wr_conn_write_queued() dropped to or below the low-water mark
   * (WR_CONN_LOW_WATER) after having been above it. May be NULL. */
  void (*on_drain)(wr_conn *c, void *user);
  void (*on_close)(wr_conn *c, void *user);
} wr_conn_callbacks;

#define WR_CONN_LOW_WATER (64u * 1024u)

typedef struct wr_conn_target {
  const char *host;       /* TCP: name or address literal (no brackets) */
  uint16_t port;
  const char *unix_path;  /* instead of host/port */
  wr_tls_creds *tls;      /* NULL: plain; else a client session is used */
  const char *server_name; /* TLS SNI (NULL: host, unless it is an IP) */
  const char *verify_name; /* NULL: server_name or host */
  const char *alpn;        /* TLS: protocols offered, comma-separated
                            * ("h2,http/1.1"); NULL: no ALPN */
  uint64_t connect_timeout_ms; /* 0: 30 s; covers resolve + connect + TLS */
  uint64_t tcp_keepalive_s;    /* 0: off */
  /* TCP: the local address to bind before connecting (port 0: any), e.g.
   * --edge-bind-address; copied. Addresses of another family are skipped.
   * NULL: the kernel chooses. */
  const struct sockaddr *local_addr;
} wr_conn_target;

/* Starts connecting. Returns WR_OK (on_connect will fire), WR_ERR_INVAL,
 * WR_ERR_NOMEM. Strings of |t| are copied. */
int wr_conn_connect(uv_loop_t *loop, const wr_conn_target *t, const wr_conn_callbacks *cbs,
                    void *user, wr_conn **out);
/* Accepts one pending connection from a listening uv_tcp_t or uv_pipe_t
 * |server|; |tls| non-NULL runs a TLS server session (on_connect fires when
 * its handshake completes; plain: on_connect fires from the next loop
 * iteration). */
int wr_conn_accept(uv_stream_t *server, wr_tls_creds *tls, const wr_conn_callbacks *cbs,
                   void *user, wr_conn **out);

/* Queues |len| bytes (copied). Returns WR_OK or WR_ERR_INVAL (closing or
 * shut down). */
int wr_conn_write(wr_conn *c, const uint8_t *data, size_t len);
/* Plaintext bytes accepted by wr_conn_write and not yet taken by the
 * kernel. */
size_t wr_conn_write_queued(const wr_conn *c);
/* Half-close after queued bytes (TCP shutdown; TLS close_notify first). */
int wr_conn_shutdown(wr_conn *c);
/* Stop / resume on_read delivery (backpressure towards the peer). */
void wr_conn_read_stop(wr_conn *c);
void wr_conn_read_start(wr_conn *c);
/* Closes now (queued bytes are dropped); see ownership above. Idempotent. */
void wr_conn_close(wr_conn *c);

/* The protocol the TLS peer selected by ALPN ("h2", ...), or "" (plain,
 * no ALPN, or before on_connect). */
const char *wr_conn_alpn(const wr_conn *c);

void *wr_conn_user(const wr_conn *c);
void wr_conn_set_user(wr_conn *c, void *user);
void wr_conn_set_callbacks(wr_conn *c, const wr_conn_callbacks *cbs);
/* The peer's address (accepted TCP conns; family AF_UNSPEC otherwise). */
int wr_conn_peer(const wr_conn *c, struct sockaddr_storage *ss);

#endif
