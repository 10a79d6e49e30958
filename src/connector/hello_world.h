/* The built-in `hello_world` origin (ingress service hello_world, flag
 * --hello-world). cloudflared runs a small local TLS web server for it; the
 * connector here answers in-process instead, with a self-contained HTML page
 * saying the tunnel works and echoing the request it received (method,
 * host, path, headers) and the connector version, so a user can see what
 * the origin would get. Pure: request in, page bytes out. */
#ifndef WR_CONNECTOR_HELLO_WORLD_H
#define WR_CONNECTOR_HELLO_WORLD_H
#include <stddef.h>

#include "lib/buf.h"
#include "proto/httpmeta.h" /* wr_http_header */

#define WR_HELLO_WORLD_CONTENT_TYPE "text/html; charset=utf-8"

typedef struct wr_hello_request {
  const char *method; /* (pointer, length) pairs; need not be NUL-terminated */
  size_t method_len;
  const char *host;   /* may be NULL */
  size_t host_len;
  const char *path;   /* request target: path and query */
  size_t path_len;
  const wr_http_header *headers;
  size_t nheaders;
  const char *version; /* connector version; NULL: WR_VERSION */
} wr_hello_request;

/* Appends the HTML page for |req| to |out|. Every value taken from the
 * request is HTML-escaped. Returns WR_OK, WR_ERR_LIMIT (|out| hit its
 * maximum) or WR_ERR_NOMEM; on error |out| may hold part of the page. */
int wr_hello_world_page(const wr_hello_request *req, wr_buf *out);

#endif
