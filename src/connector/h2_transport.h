/* The connector's side of the HTTP/2 transport (protocol.md 7): the HTTP/2
 * *server* on the TLS connection the connector dialled, with nghttp2 as the
 * engine. Sans-I/O: the owner feeds the plaintext the edge sent
 * (wr_h2_feed) and gets the plaintext to send through cfg.send; the socket
 * and TLS are the owner's (connector/h2_link.h).
 *
 * Every request is the edge's; by its headers (connector/h2_request.h):
 *   control-stream         answered 200 at once; its body carries the
 *                          edge's RPC bytes (on_control_data) and the
 *                          response body ours (wr_h2_control_write): the
 *                          registration runs over it (connector/registration.h);
 *   update-configuration   the JSON body {"version":N,"config":{...}} goes
 *                          to the proxy's update_config service; the answer
 *                          is 200 {"lastAppliedVersion":N,"err":null}, or
 *                          "err":{} when refused, as cloudflared writes it;
 *   http, websocket, tcp   translated into a ConnectRequest and served by
 *                          the proxy (connector/proxy.h) exactly as a QUIC
 *                          data stream, through wr_edge_stream_ops.
 *
 * Settings as Go's http2.Server in cloudflared: MAX_CONCURRENT_STREAMS
 * 2^32-1, 1 MiB stream and connection receive windows, 1 MiB max frame.
 * Flow control: request bytes are acknowledged (WINDOW_UPDATE) only when
 * the proxy consumed them, i.e. once the origin took them; towards the edge
 * each stream buffers at most WR_H2_STREAM_BUF bytes before the proxy sees
 * WR_AGAIN and pauses its origin, resuming when HTTP/2 flow control lets
 * the bytes out.
 *
 * Calls that change what is to be sent (proxy writes from origin
 * callbacks, control writes) do not send at once: they call cfg.kick, and
 * the owner calls wr_h2_flush soon after (from a fresh loop callback, never
 * from inside kick). wr_h2_feed flushes by itself. */
#ifndef WR_CONNECTOR_H2_TRANSPORT_H
#define WR_CONNECTOR_H2_TRANSPORT_H
#include <stddef.h>
#include <stdint.h>

#include "connector/proxy.h"

#define WR_H2_STREAM_BUF (256u * 1024u)
#define WR_H2_CONFIG_MAX (1u << 20) /* a configuration update's body */

typedef struct wr_h2 wr_h2;

typedef struct wr_h2_config {
  wr_proxy *proxy; /* required; borrowed */
  /* Plaintext for the edge. Returns WR_OK (all taken), WR_AGAIN (nothing
   * taken: the socket is full; call wr_h2_flush when it drained) or an
   * error (the connection is broken). */
  int (*send)(void *user, const uint8_t *data, size_t len);
  /* Something waits to be sent: call wr_h2_flush soon (not from here). */
  void (*kick)(void *user);
  /* The edge opened the control stream (once per connection). */
  void (*on_control_open)(void *user);
  /* Bytes of the control stream's request body, and its end (|fin|: the
   * edge closed or reset it). */
  void (*on_control_data)(void *user, const uint8_t *data, size_t len, int fin);
  void *user;
} wr_h2_config;

/* Creates the session and queues our SETTINGS. Returns WR_OK, WR_ERR_INVAL
 * or WR_ERR_NOMEM. */
int wr_h2_new(const wr_h2_config *cfg, wr_h2 **out);
/* Bytes from the edge (client preface first). Returns WR_OK or
 * WR_ERR_PROTO (the connection is unusable: close it; a GOAWAY is queued). */
int wr_h2_feed(wr_h2 *h, const uint8_t *data, size_t len);
/* Sends what is queued (see kick). Returns WR_OK or the error of cfg.send. */
int wr_h2_flush(wr_h2 *h);
/* 1 once neither side has anything more to say (GOAWAY exchanged). */
int wr_h2_done(const wr_h2 *h);
/* Our RPC bytes on the control stream's response body. Returns WR_OK,
 * WR_ERR_INVAL (no control stream, or it ended) or WR_ERR_LIMIT. */
int wr_h2_control_write(wr_h2 *h, const uint8_t *data, size_t len);
/* Ends the control stream's response body. */
void wr_h2_control_end(wr_h2 *h);
/* Queues GOAWAY(NO_ERROR) (a graceful close). */
void wr_h2_goaway(wr_h2 *h);
/* Number of HTTP/2 streams open (control stream included). */
size_t wr_h2_streams(const wr_h2 *h);
/* Lets go of every proxied stream and frees. Nothing is sent. */
void wr_h2_free(wr_h2 *h);

#endif
