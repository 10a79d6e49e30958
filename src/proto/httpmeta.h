/* HTTP requests and responses as tunnel metadata (protocol.md 4.3, 4.4) and
 * the HTTP/2 transport's serialized response headers (7.4). Sans-I/O.
 *
 * Strings are (pointer, length) pairs and need not be NUL-terminated.
 * Functions that produce new strings (metadata keys, canonical header names,
 * decoded base64) write them into a caller-provided arena (a wr_buf); the
 * returned pointers point into arena->data, and every such function reserves
 * all the room it needs before writing, so the pointers stay valid until the
 * caller next appends to, resets or frees that arena. Reuse one arena per
 * request/response (e.g. from the stream's pool), or call wr_buf_reserve()
 * up front if results of several calls must stay valid together.
 *
 * Where a function takes an output array (|out|, |cap|) it returns the
 * number of entries written, or a negative error code. */
#ifndef WR_HTTPMETA_H
#define WR_HTTPMETA_H
#include <stddef.h>

#include "lib/buf.h"
#include "proto/metadata.h"

/* Metadata keys (cloudflared 2023.7.3). */
#define WR_HTTPMETA_KEY_METHOD "HttpMethod"
#define WR_HTTPMETA_KEY_HOST "HttpHost"
#define WR_HTTPMETA_KEY_HEADER "HttpHeader" /* "HttpHeader:<Name>" */
#define WR_HTTPMETA_KEY_STATUS "HttpStatus"
#define WR_HTTPMETA_KEY_FLOW_ID "FlowID"        /* TCP only */
#define WR_HTTPMETA_KEY_TRACE_ID "cf-trace-id"  /* TCP only, exact case */
/* The HTTP/2 transport's response header carrying the serialized user
 * headers, and the response-meta header (lower case, as HPACK sends them). */
#define WR_HTTPMETA_H2_RESPONSE_HEADERS "cf-cloudflared-response-headers"
#define WR_HTTPMETA_H2_RESPONSE_META "cf-cloudflared-response-meta"

typedef struct wr_http_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} wr_http_header;

/* A header block that arrives one header at a time (nghttp2's on_header)
 * kept in one buffer |b| that may move as it grows. wr_http_header_stash
 * appends |name| and |value| to |b| and records their offsets in |h|; the
 * caller has reserved nlen + vlen bytes (wr_buf_reserve) first, so it
 * cannot fail. wr_http_headers_resolve turns the offsets of |hs| into
 * pointers into |b| once the block is complete (valid until |b| next
 * changes). Both are callable from callbacks. */
void wr_http_header_stash(wr_http_header *h, wr_buf *b, const uint8_t *name, size_t nlen, const uint8_t *value,
                          size_t vlen);
void wr_http_headers_resolve(wr_http_header *hs, size_t n, const wr_buf *b);

/* 1 if |s| is a non-empty RFC 7230 token (what Go accepts as a method or a
 * header name), else 0. */
int wr_httpmeta_is_token(const char *s, size_t len);

/* Go's textproto.CanonicalMIMEHeaderKey: if every byte is a token character,
 * upper-case the first letter and each letter after '-' and lower-case the
 * rest ("content-TYPE" -> "Content-Type"); otherwise (a space, ':', a byte
 * >= 0x80, ...) the name is left unchanged. Writes |len| bytes to |out|,
 * which may be |in|. */
void wr_httpmeta_canonical_key(const char *in, size_t len, char *out);



/* ---- request: edge side (HTTP request -> ConnectRequest metadata) -------- */

/* |flags| for wr_httpmeta_req_encode(). */
#define WR_HTTPMETA_REQ_WEBSOCKET 0x1 /* keep Connection and Upgrade (websocket type) */
#define WR_HTTPMETA_REQ_CHUNKED 0x2   /* body of unknown length follows: add
                                       * HttpHeader:Transfer-Encoding = chunked */

/* Builds the metadata of a ConnectRequest: HttpMethod = |method|, HttpHost =
 * |host|, then one HttpHeader:<Canonical-Name> per header value in the order
 * given. Values and method/host point at the caller's strings; keys are
 * written to |arena|.
 *
 * Dropped, because they describe the eyeball connection rather than the
 * request and the tunnel stream is not HTTP/1 framed (4.4): HTTP/2
 * pseudo-headers (":authority" etc.; pass :authority as |host|), Host (it is
 * HttpHost), the hop-by-hop headers Go's reverse proxy removes (Connection,
 * Proxy-Connection, Keep-Alive, Proxy-Authenticate, Proxy-Authorization, Te,
 * Trailer, Transfer-Encoding, Upgrade) and every header named in a
 * Connection header; as Go's reverse proxy, a TE that lists "trailers"
 * comes back as HttpHeader:Te = "trailers" after the other headers (gRPC
 * origins require it). With WR_HTTPMETA_REQ_WEBSOCKET, Connection and Upgrade
 * are kept, as cloudflared's websocket path expects them. The eyeball's
 * Transfer-Encoding is always dropped (the edge de-chunks the body); pass
 * WR_HTTPMETA_REQ_CHUNKED when the body length is unknown so that
 * cloudflared reads the body until FIN, otherwise it ignores any body
 * without Content-Length. Cf-* headers are not filtered: that is edge policy.
 *
 * Returns the number of entries, WR_ERR_INVAL if |method| is not a token or a
 * kept header name is empty or contains ':' (it could not survive
 * cloudflared's split), WR_ERR_LIMIT if |cap| is too small or |arena| hits
 * its maximum, WR_ERR_NOMEM. */
int wr_httpmeta_req_encode(const char *method, size_t method_len, const char *host,
                           size_t host_len, const wr_http_header *hdrs, size_t n,
                           unsigned flags, wr_buf *arena, wr_meta *out, size_t cap);

/* ---- request: connector side (metadata -> HTTP request) ------------------ */

typedef struct wr_httpmeta_request {
  const char *method; /* last HttpMethod; "GET" if absent or empty (Go's NewRequest) */
  size_t method_len;
  const char *host;   /* last HttpHost; NULL (and 0) if absent */
  size_t host_len;
  size_t nheaders;    /* entries written to the caller's header array */
} wr_httpmeta_request;

/* Reads request metadata as cloudflared's buildHTTPRequest does: every entry
 * whose key *contains* "HttpHeader" is split on ':' and must give exactly 2
 * parts (the second is the header name, canonicalised as Go's Header.Add;
 * it may be empty), and each such entry is one header value, in order.
 * Other keys (FlowID, cf-trace-id, ...) are ignored; use
 * wr_meta_find_last() for them. If |arena| is NULL, names point into the
 * keys and are not canonicalised. Method and host point into |meta|.
 * Returns 0, WR_ERR_PROTO for a malformed header key ("header Key: ...
 * malformed") or a method that is not a token, WR_ERR_LIMIT if |cap| is too
 * small or |arena| hits its maximum, WR_ERR_NOMEM. */
int wr_httpmeta_req_decode(const wr_meta *meta, size_t n, wr_buf *arena, wr_http_header *out,
                           size_t cap, wr_httpmeta_request *req);

/* ---- response: connector side (HTTP response -> ConnectResponse metadata) */

/* Builds [HttpStatus = "<status>", HttpHeader:<Canonical-Name> = value, ...]
 * with the status first, as cloudflared does. No header is filtered (4.3).
 * The status string and keys go to |arena|; values point at the caller's.
 * Returns the number of entries, WR_ERR_INVAL if |status| is outside
 * 100..999 or a header name is empty or contains ':', WR_ERR_LIMIT if |cap|
 * is too small or |arena| hits its maximum, WR_ERR_NOMEM. */
int wr_httpmeta_resp_encode(int status, const wr_http_header *hdrs, size_t n, wr_buf *arena,
                            wr_meta *out, size_t cap);

/* ---- response: edge side (metadata -> HTTP response) --------------------- */

typedef struct wr_httpmeta_response {
  int status;      /* 100..999 */
  size_t nheaders; /* entries written to the caller's header array */
} wr_httpmeta_response;

/* Reads response metadata: the (last) HttpStatus must be exactly 3 ASCII
 * digits in 100..999; header entries follow the same rule as
 * wr_httpmeta_req_decode(). Other keys (e.g. a bare Cf-Int-Cloudflared-Tracing
 * on TCP acks, HEAD's FlowConnectRateLimited) are ignored. |arena| may be
 * NULL as there. Returns 0, WR_ERR_PROTO if HttpStatus is missing or invalid
 * or a header key is malformed, WR_ERR_LIMIT, WR_ERR_NOMEM. */
int wr_httpmeta_resp_decode(const wr_meta *meta, size_t n, wr_buf *arena, wr_http_header *out,
                            size_t cap, wr_httpmeta_response *resp);

/* ---- HTTP/2 transport: Cf-Cloudflared-Response-Headers (7.4) ------------- */

/* cloudflared's "control" test for response header |name| (any case):
 * 1 if its lower-case form starts with ":", "cf-int-" or "cf-cloudflared-"
 * and it is not sec-websocket-accept, connection or upgrade; such headers
 * are not serialized. (cloudflared HEAD also treats "cf-proxy-" as control;
 * 2023.7.3 does not.) */
int wr_httpmeta_h2_is_control_header(const char *name, size_t len);

/* |flags| for wr_httpmeta_h2_serialize(). */
#define WR_HTTPMETA_H2_SKIP_CONTROL 0x1 /* leave out control headers, as
                                         * http2RespWriter.WriteRespHeaders does */

/* Appends the value of Cf-Cloudflared-Response-Headers for |hdrs| to |out|
 * as cloudflared's SerializeHeaders does: base64(name) ":" base64(value) per
 * header value, joined by ";", with Go canonical names (Header.Add) and
 * RFC 4648 standard base64 without padding. With WR_HTTPMETA_H2_SKIP_CONTROL
 * control headers are left out (what goes on the wire; Content-Length and
 * Cf-Int-Cloudflared-Tracing must then also be sent as real HTTP/2 headers by
 * the caller). No headers gives an empty value.
 * Returns 0, WR_ERR_LIMIT if |out| hits its maximum, WR_ERR_NOMEM; on error
 * |out| is left as it was. */
int wr_httpmeta_h2_serialize(const wr_http_header *hdrs, size_t n, unsigned flags, wr_buf *out);

/* Parses a Cf-Cloudflared-Response-Headers value as cloudflared's
 * DeserializeHeaders: split on ';', skip empty pairs, split each pair on ':'
 * into exactly 2 parts, and decode both with Go's RawStdEncoding (no '='
 * padding; CR and LF are skipped; non-zero trailing bits are accepted).
 * Decoded names and values (NUL-terminated for convenience) go to |arena|.
 * Returns the number of headers, WR_ERR_PROTO for a pair without exactly one
 * ':' or bad base64, WR_ERR_LIMIT if |cap| is too small or |arena| hits its
 * maximum, WR_ERR_NOMEM. */
int wr_httpmeta_h2_deserialize(const char *s, size_t len, wr_buf *arena, wr_http_header *out,
                               size_t cap);

#endif
