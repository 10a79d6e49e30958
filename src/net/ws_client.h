/* The client half of a WebSocket (RFC 6455) over a wr_conn, written once
 * for the two clients Warren has: `warren tail` (connector/mgmt_tail.c)
 * and `warren access tcp` (connector/access_tcp.c). It owns the parts they
 * share: the target URL, the upgrade request with its key, the check of the
 * server's answer (101, Upgrade: websocket, the right
 * Sec-WebSocket-Accept, as gorilla/websocket checks it), masked frames out
 * and the frame decoder in. It does not own the connection nor decide what
 * a failure means: the caller connects (wr_ws_url_target), keeps its own
 * states, routes its wr_conn's on_read to wr_ws_client_read and words its
 * own errors.
 *
 * Single-threaded; every function runs on the loop thread of the
 * connection, callbacks included. Out-of-memory aborts. */
#ifndef WR_NET_WS_CLIENT_H
#define WR_NET_WS_CLIENT_H
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "net/conn.h"
#include "proto/wsframe.h"

/* "scheme://authority/path" or "authority[/path]" (scheme https); schemes
 * http, https, ws, wss (any case). */
typedef struct wr_ws_url {
  char *scheme;    /* lower case */
  char *authority; /* as written: the request's Host */
  char *host;      /* without port or IPv6 brackets */
  uint16_t port;   /* the authority's, or 443 / 80 */
  int tls;         /* https or wss */
  char *path;      /* from the first '/', or "/" */
} wr_ws_url;

/* Parses |u| into |out| (strings owned by |out|). Returns WR_OK or
 * WR_ERR_INVAL (no authority, an unknown scheme, a bad port); |out| is to
 * be freed with wr_ws_url_free either way. */
int wr_ws_url_parse(const char *u, wr_ws_url *out);
void wr_ws_url_free(wr_ws_url *u);

/* A connection target for |where| (its host, port and TLS) whose TLS
 * server name is |server_name|; |creds| are used when |where| is TLS. The
 * target borrows the strings. */
void wr_ws_url_target(const wr_ws_url *where, const char *server_name, wr_tls_creds *creds,
                      wr_conn_target *out);

/* Why a handshake or a stream failed. */
enum {
  WR_WSC_TOO_LARGE = 1, /* the answer's head passed 64 KiB */
  WR_WSC_BAD_HTTP,      /* the answer is not HTTP/1.1 */
  WR_WSC_BAD_HANDSHAKE, /* 101 without Upgrade: websocket or the right accept */
  WR_WSC_BAD_FRAME      /* a frame from the server broke RFC 6455 */
};

/* Each returns 0 to go on, or nonzero once the caller has ended the stream
 * (no more callbacks for the bytes of this read). */
typedef struct wr_ws_client_cbs {
  /* The answer is not 101: its status and the body so far; |complete| is 1
   * once the whole body is there (Content-Length reached, no body, or the
   * server's EOF). Called on every read until the caller ends. */
  int (*on_refused)(void *user, int status, const uint8_t *body, size_t len, int complete);
  /* The upgrade succeeded; frames that came with the answer follow. */
  int (*on_open)(void *user);
  /* A frame event: a piece of a data message, a ping, a pong, a close. */
  int (*on_event)(void *user, const wr_ws_event *ev);
  /* A WR_WSC_* failure; the caller ends the stream. */
  void (*on_fail)(void *user, int why);
} wr_ws_client_cbs;

typedef struct wr_ws_client {
  wr_conn *conn; /* the caller's connection (NULL once closed: sends are dropped) */
  const wr_ws_client_cbs *cbs;
  void *user;
  /* private */
  int open;
  char accept[WR_WS_ACCEPT_LEN];
  wr_buf head; /* the answer's head (and a refusal's body) */
  wr_ws_decoder dec;
} wr_ws_client;

void wr_ws_client_init(wr_ws_client *w, const wr_ws_client_cbs *cbs, void *user);
void wr_ws_client_free(wr_ws_client *w);

/* The upgrade request, into |out|: GET |target| with Host |host|, then
 * "User-Agent: |ua|" when |ua| is not NULL, the upgrade fields with a
 * fresh key (whose answer the client then expects) and |extra| (complete
 * "Name: value\r\n" lines, or NULL). Returns WR_OK or WR_ERR_CRYPTO (no
 * randomness or hash). */
int wr_ws_client_request(wr_ws_client *w, const char *target, const char *host, const char *ua,
                         const char *extra, wr_buf *out);

/* Bytes from the server (|eof| 1, with len 0, when the server ended during
 * the handshake: a refusal's body is then complete). Before the upgrade
 * they are the answer; after it, frames. */
void wr_ws_client_read(wr_ws_client *w, const uint8_t *data, size_t len, int eof);

/* One masked frame to the server. Returns wr_conn_write's result,
 * WR_ERR_CRYPTO (no random mask key) or WR_ERR_INVAL (no connection). */
int wr_ws_client_send(wr_ws_client *w, int opcode, const uint8_t *data, size_t len);

#endif
