/* A small HTTP/1.1 server for local endpoints whose requests and answers
 * are small: the --metrics servers of the connector and the edge
 * (net/metricsd.h) and the edge's REST API and login pages. Bodies are
 * buffered (bounded by max_body); for streaming visitors see edge/visitor.h.
 *
 * Keep-alive, pipelined requests answered in order, Content-Length or
 * chunked request bodies, read timeout against slow clients (default 10 s,
 * cloudflared's metrics server value), 400/413/431 for bad input. The
 * handler runs on the loop thread and answers at once (or later, with
 * wr_httpd_respond on the saved request; the connection waits).
 *
 * Timeouts: the first request must arrive completely within read_timeout_ms
 * of the connection opening; later ones within read_timeout_ms of their
 * first byte (or of the previous response, for bytes already buffered).
 * Between requests a keep-alive connection may stay silent for
 * idle_timeout_ms; the same limit applies to a client that stops reading
 * our output. No timer runs while the handler holds a request.
 * Errors (400, 413, 431, 500) and "Connection: close" answers end with a
 * lingering close: the write side is shut down and input is drained for up
 * to 5 s, so that the answer is not lost to a reset. A client that closes
 * (EOF) while the handler holds its request has gone: the request is
 * orphaned (see wr_httpd_respond). Upgrade/CONNECT are not supported (they
 * reach the handler as plain requests). */
#ifndef WR_NET_HTTPD_H
#define WR_NET_HTTPD_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "lib/buf.h"
#include "proto/http1.h"

typedef struct wr_httpd wr_httpd;
typedef struct wr_httpd_req wr_httpd_req;

/* The request as the handler sees it. Strings are NUL-terminated and valid
 * until the response is sent. */
struct wr_httpd_req {
  const char *method;
  const char *target; /* as sent: "/ready?x=1" */
  const char *path;   /* target without the query */
  const char *query;  /* after '?', "" if none */
  const wr_http_header *headers;
  size_t nheaders;
  const uint8_t *body;
  size_t body_len;
  struct sockaddr_storage peer;
  void *conn;         /* private */
};

/* Handler: answer with wr_httpd_respond() now or later. Every request must
 * be answered exactly once, even after the client left or wr_httpd_free():
 * that call is what frees it. */
typedef void (*wr_httpd_handler)(wr_httpd *h, wr_httpd_req *req, void *user);

typedef struct wr_httpd_config {
  size_t max_body;          /* default 1 MiB: larger gets 413 */
  uint64_t read_timeout_ms; /* default 10000: a request must arrive within it */
  uint64_t idle_timeout_ms; /* default 60000: keep-alive idle */
  size_t max_conns;         /* default 1024: more are closed at accept */
} wr_httpd_config;

/* Listens on |addr| (TCP). Returns WR_OK, WR_ERR_IO (bind/listen; errno
 * text in the log) or WR_ERR_NOMEM. */
int wr_httpd_listen(uv_loop_t *loop, const struct sockaddr *addr, const wr_httpd_config *cfg,
                    wr_httpd_handler handler, void *user, wr_httpd **out);
/* The bound address (for port 0). */
int wr_httpd_addr(wr_httpd *h, struct sockaddr_storage *ss);

/* Sends the response to |req|: status line, the given fields, then
 * Content-Length (always added by the server, unless |status| forbids a
 * body: 204, 304) and the body. HEAD requests get the head only. The server
 * frames the message: Content-Length and Transfer-Encoding fields in |hdrs|
 * are dropped, and a Connection field is dropped too, but "close" in it
 * closes the connection after this response. Safe to call from the handler
 * or any later loop callback. Returns WR_OK, or WR_ERR_INVAL when the
 * connection is gone (client disconnected, wr_httpd_free) or the response
 * is invalid (status outside 200..999, a field wr_http1_write_response_head
 * refuses: the client then gets a 500 and the connection closes). In every
 * case |req| is freed: it is invalid after the call, and calling twice is a
 * use after free. */
int wr_httpd_respond(wr_httpd_req *req, int status, const wr_http_header *hdrs, size_t n,
                     const void *body, size_t body_len);
/* Convenience: one Content-Type field. */
int wr_httpd_respond_simple(wr_httpd_req *req, int status, const char *content_type,
                            const void *body, size_t body_len);

/* The fields every page of the edge's own sites (dashboard, login pages)
 * carries, appended to |hs| at *n, which must have room for
 * WR_HTTPD_PAGE_FIELDS more: Content-Type |ctype|, Cache-Control: no-store,
 * Content-Security-Policy |csp|, X-Frame-Options: DENY,
 * X-Content-Type-Options: nosniff and Referrer-Policy |referrer|. The
 * strings are borrowed; callable from any callback. */
#define WR_HTTPD_PAGE_FIELDS 6
void wr_httpd_page_fields(wr_http_header *hs, size_t *n, const char *ctype, const char *csp,
                          const char *referrer);

/* Closes the listener and every connection; frees once libuv released the
 * handles. */
void wr_httpd_free(wr_httpd *h);

#endif
