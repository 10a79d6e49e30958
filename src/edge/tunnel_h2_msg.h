/* Translation between a QUIC-shaped data stream head and cloudflared's
 * HTTP/2 conventions (protocol.md 7.1, 7.3, 7.4). Pure functions, no I/O:
 * edge/tunnel_h2.c uses them on every request.
 *
 * Request: a ConnectRequest (proto/connect.h) becomes the header block of an
 * HTTP/2 request the edge sends the connector:
 *   http       :method HttpMethod, :scheme/:path from dest, :authority
 *              HttpHost, every HttpHeader:<Name> as a lower-case field;
 *   websocket  the same plus cf-cloudflared-proxy-connection-upgrade:
 *              websocket;
 *   tcp        GET, :authority dest (host:port), :path /, plus
 *              cf-cloudflared-proxy-src (cloudflared only checks that it is
 *              there) and cf-trace-id when the request had one.
 * Fields HTTP/2 forbids (Connection, Keep-Alive, Proxy-Connection,
 * Transfer-Encoding, Upgrade, TE other than "trailers", Host) are left out,
 * and so is every visitor header named cf-cloudflared-*: those select the
 * request type on the connector (a visitor must not turn its request into a
 * configuration update or a TCP stream).
 *
 * Response: the connector's response header block becomes data preamble +
 * ConnectResponse, as a QUIC connector would send it: Cf-Cloudflared-
 * Response-Meta {"src":"cloudflared"} is an error response (cloudflared
 * failed before the origin answered; the error text says so); otherwise
 * HttpStatus (200 back to 101 for a websocket) and one HttpHeader:<Name>
 * per pair of Cf-Cloudflared-Response-Headers (unpadded base64 name:value
 * pairs joined by ';'); a tcp stream's success is the empty, non-null
 * metadata list. */
#ifndef WR_EDGE_TUNNEL_H2_MSG_H
#define WR_EDGE_TUNNEL_H2_MSG_H
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "lib/buf.h"
#include "proto/connect.h"

/* A request header block; fields[i] point into |store|. */
typedef struct wr_h2_request {
  nghttp2_nv *nv;
  size_t nnv;
  char *store;
} wr_h2_request;

/* Builds the header block for |req|. |src| is the value of
 * cf-cloudflared-proxy-src for tcp requests (NULL: "edge"). Returns WR_OK,
 * WR_ERR_UNSUPPORTED (unknown ConnectionType), WR_ERR_PROTO (a header name
 * HTTP/2 cannot carry) or WR_ERR_NOMEM. */
int wr_h2_request_build(const wr_connect_request *req, const char *src, wr_h2_request *out);
void wr_h2_request_free(wr_h2_request *r);

/* What the connector's response header block said. */
typedef struct wr_h2_response_head {
  int status;               /* :status, 0 if absent */
  const char *user_headers; /* cf-cloudflared-response-headers (NULL: absent) */
  size_t user_headers_len;
  int cloudflared_error;    /* response-meta names cloudflared as the source */
} wr_h2_response_head;

/* Whether a cf-cloudflared-response-meta value names cloudflared as the
 * responder. */
int wr_h2_meta_is_cloudflared(const char *val, size_t len);

/* Appends data preamble + ConnectResponse for a response of a request of
 * |type| (enum wr_connect_type) to |out|. Returns WR_OK, WR_ERR_PROTO
 * (malformed serialized headers or no status: nothing appended) or
 * WR_ERR_NOMEM / WR_ERR_LIMIT. */
int wr_h2_response_to_connect(int type, const wr_h2_response_head *h, wr_buf *out);

/* Decodes Cf-Cloudflared-Response-Headers: calls |fn| for each pair
 * (decoded name and value, valid during the call). Empty pairs are
 * skipped. Returns WR_OK, WR_ERR_PROTO (a pair without exactly one ':', bad
 * base64) or the first non-zero return of |fn|. */
int wr_h2_user_headers_each(const char *s, size_t len,
                            int (*fn)(void *user, const char *name, size_t nlen,
                                      const char *val, size_t vlen),
                            void *user);

#endif
