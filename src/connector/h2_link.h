/* One HTTP/2 connection to the edge (protocol.md 7.1): TCP to the edge's
 * port, TLS client handshake (SNI h2.cftunnel.com, no ALPN) within the dial
 * timeout (cloudflared: 15 s), then the HTTP/2 server session of
 * connector/h2_transport.h on it. The socket and TLS are net/conn's; this
 * file is the glue: bytes both ways, backpressure (nghttp2 stops producing
 * while more than WR_H2_LINK_HIGH bytes wait for the socket, and goes on
 * when it drained), and the deferred flushes the session asks for.
 *
 * Ownership: wr_h2_link_close() starts closing (idempotent); on_close fires
 * once, from a later loop iteration, after every handle is closed; the
 * owner frees the link after that (wr_h2_link_free, not from inside a
 * callback of the link). A connection that fails or ends closes itself and
 * reports on_close with the reason. */
#ifndef WR_CONNECTOR_H2_LINK_H
#define WR_CONNECTOR_H2_LINK_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "connector/proxy.h"
#include "net/tls.h"

#define WR_H2_LINK_HIGH (1u << 20)
#define WR_H2_SNI "h2.cftunnel.com"

typedef struct wr_h2_link wr_h2_link;

typedef struct wr_h2_link_config {
  uv_loop_t *loop;
  wr_tls_creds *creds;          /* trust anchors for the edge (borrowed) */
  const struct sockaddr *edge;  /* address and port */
  const char *sni;              /* NULL: WR_H2_SNI */
  const struct sockaddr *local; /* --edge-bind-address, or NULL (not kept) */
  uint64_t timeout_ms;          /* TCP + TLS; 0: 15000 */
  wr_proxy *proxy;              /* borrowed */
  /* TLS is up and the HTTP/2 session runs. */
  void (*on_up)(void *user);
  /* The control stream (h2_transport.h). */
  void (*on_control_open)(void *user);
  void (*on_control_data)(void *user, const uint8_t *data, size_t len, int fin);
  /* Closed; |msg| says why (dial error, EOF, protocol error, "" when the
   * owner closed it). */
  void (*on_close)(void *user, int status, const char *msg);
  void *user;
} wr_h2_link_config;

/* Starts dialing. Returns WR_OK (on_up or on_close follows) or an error
 * (nothing to free). */
int wr_h2_link_dial(const wr_h2_link_config *cfg, wr_h2_link **out);
/* The control stream's response body (our RPC bytes). */
int wr_h2_link_control_write(wr_h2_link *l, const uint8_t *data, size_t len);
void wr_h2_link_control_end(wr_h2_link *l);
/* Starts closing (GOAWAY when the session is up, then the socket). */
void wr_h2_link_close(wr_h2_link *l, const char *why);
/* Closes at once without reporting (the owner is going away): the link
 * frees itself once its handles closed. Not from inside its callbacks. */
void wr_h2_link_abort(wr_h2_link *l);
/* Frees a link whose on_close fired. NULL is a no-op. */
void wr_h2_link_free(wr_h2_link *l);

#endif
