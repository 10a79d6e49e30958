/* cloudflared's HTTP/2 header conventions (protocol.md 7.1, 7.3, 7.4), as
 * pure functions between HTTP/2 header lists and the ConnectRequest /
 * ConnectResponse values the QUIC path uses, so the same request handling
 * (connector/proxy.h) serves both transports:
 *
 *  - the request type, from Cf-Cloudflared-Proxy-Connection-Upgrade and
 *    Cf-Cloudflared-Proxy-Src, in cloudflared's order;
 *  - the ConnectRequest of an edge request: `dest` from :scheme,
 *    :authority and :path (raw TCP: :authority, the host:port to dial),
 *    HttpMethod, HttpHost (:authority) and one HttpHeader:<Canonical-Name>
 *    per header value (Cookie fields joined with "; " as Go's server does);
 *    a body of unknown length (no Content-Length, no END_STREAM on the
 *    HEADERS) adds HttpHeader:Transfer-Encoding = chunked so the body is
 *    streamed to the origin, as Go's server (ContentLength -1) does;
 *  - the response head from a ConnectResponse: status (101 becomes 200; no
 *    HttpStatus at all, a TCP acknowledgement, is 200),
 *    cf-cloudflared-response-headers with the user headers serialized,
 *    content-length and cf-int-cloudflared-tracing also as real headers,
 *    cf-cloudflared-response-meta {"src":"origin"}; an error becomes 502
 *    with {"src":"cloudflared"} and nothing else.
 * Header names given to these functions are HTTP/2's (lower case); names
 * produced are lower case too, as HPACK carries them. */
#ifndef WR_CONNECTOR_H2_REQUEST_H
#define WR_CONNECTOR_H2_REQUEST_H
#include <stddef.h>

#include "lib/buf.h"
#include "proto/connect.h"
#include "proto/httpmeta.h"

enum wr_h2_kind {
  WR_H2_HTTP = 0,
  WR_H2_WEBSOCKET,
  WR_H2_TCP,
  WR_H2_CONTROL, /* the control stream (7.2) */
  WR_H2_CONFIG   /* a configuration update (7.3) */
};

#define WR_H2_UPGRADE_HEADER "cf-cloudflared-proxy-connection-upgrade"
#define WR_H2_SRC_HEADER "cf-cloudflared-proxy-src"
#define WR_H2_META_ORIGIN "{\"src\":\"origin\"}"
#define WR_H2_META_CLOUDFLARED "{\"src\":\"cloudflared\"}"

/* The request type of |hs| (enum wr_h2_kind). Values compare exactly. */
int wr_h2c_request_kind(const wr_http_header *hs, size_t n);

/* The ConnectRequest of a request of |kind| (HTTP, WEBSOCKET or TCP) with
 * headers |hs|. |body_unknown|: the HEADERS frame did not end the stream.
 * Strings go to |arena| (reset first), metadata entries to |meta| (|cap|
 * entries; n + 4 is enough). Returns WR_OK, WR_ERR_PROTO (no :authority
 * for TCP), WR_ERR_LIMIT or WR_ERR_NOMEM. */
int wr_h2c_request_build(const wr_http_header *hs, size_t n, int kind, int body_unknown,
                        wr_buf *arena, wr_meta *meta, size_t cap, wr_connect_request *out);

/* The HTTP/2 response head for |r| into |out| (|cap| entries; the number of
 * response headers + 5 is enough), ":status" first. Strings go to |arena|
 * (reset first). Returns the number of headers or WR_ERR_LIMIT /
 * WR_ERR_NOMEM / WR_ERR_PROTO (undecodable metadata). */
int wr_h2c_response_head(const wr_connect_response *r, wr_buf *arena, wr_http_header *out,
                        size_t cap);

#endif
