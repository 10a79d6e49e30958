/* HTTP/1.1 message heads and body framing (RFC 9112). Sans-I/O: bytes in,
 * values out. This is the edge's main attack surface (visitors talk to it
 * directly) and also what the connector uses to read origin responses, so it
 * is strict and bounded:
 *   - a head must fit in limits->max_head bytes (default 32 KiB) and carry at
 *     most limits->max_headers fields (default 100): WR_ERR_LIMIT otherwise
 *     (the edge answers 431);
 *   - lines end in CRLF; a bare CR or bare LF, obs-fold (a line starting with
 *     SP/HTAB), whitespace between a field name and ':', control characters
 *     in values (other than HTAB), non-token methods / field names, and
 *     versions other than HTTP/1.0 and HTTP/1.1 are WR_ERR_PROTO;
 *   - Content-Length must be digits only (at most 18), repeated values must
 *     agree ("5, 5" and two equal fields are one length, as RFC 9112 6.3
 *     allows); a request with both Content-Length and Transfer-Encoding, or a
 *     Transfer-Encoding other than exactly "chunked" (case-insensitive) as the
 *     final coding, is WR_ERR_PROTO (request smuggling defence). As in Go's
 *     net/http and nginx, "chunked" must in fact be the only coding (over all
 *     Transfer-Encoding fields; empty list elements ignored): "gzip, chunked"
 *     is refused on requests and responses alike. A request with
 *     Transfer-Encoding on HTTP/1.0 is WR_ERR_PROTO; on an HTTP/1.0 response
 *     the field is ignored (as Go does);
 *   - a request without Host on HTTP/1.1, or with two Host fields, is
 *     WR_ERR_PROTO;
 *   - the request-target may hold any byte above SP except DEL (obs-text
 *     included, as Go accepts it); the method must be a token;
 *   - a status line may omit the SP after the code ("HTTP/1.1 200", which Go
 *     and curl accept); the code is 3 digits, 100..999.
 * Leading empty lines before a request line are skipped (RFC 9112 2.2); they
 * count against max_head. Responses get no such leniency.
 *
 * A head is parsed from the start on every call: after WR_AGAIN call again
 * with the same bytes plus more. Cost is linear in the (bounded) head, so a
 * caller fed a byte at a time should wait for a CRLF CRLF (or for more than
 * max_head bytes) before calling again, as net/httpd.c does.
 *
 * Parsed strings point into the caller's buffer, which must stay unchanged
 * while they are used. */
#ifndef WR_HTTP1_H
#define WR_HTTP1_H
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "proto/httpmeta.h" /* wr_http_header */

#define WR_HTTP1_DEFAULT_MAX_HEAD (32u * 1024u)
#define WR_HTTP1_DEFAULT_MAX_HEADERS 100u
/* Longest chunk-size line (size, extensions and CRLF) accepted. */
#define WR_HTTP1_MAX_CHUNK_LINE 4096u

typedef struct wr_http1_limits {
  size_t max_head;    /* bytes of request/status line + fields + final CRLF; 0 = default */
  size_t max_headers; /* field lines; 0 = default (also capped by the caller's array) */
} wr_http1_limits;

/* How the body of a message is delimited (RFC 9112 6.3). */
typedef enum wr_http1_body {
  WR_HTTP1_BODY_NONE = 0, /* no body (length 0, HEAD/1xx/204/304 response, no framing on a request) */
  WR_HTTP1_BODY_LENGTH,   /* exactly content_length bytes */
  WR_HTTP1_BODY_CHUNKED,  /* chunked coding: use wr_http1_chunked_* */
  WR_HTTP1_BODY_EOF       /* response only: until the connection closes */
} wr_http1_body;

typedef struct wr_http1_head {
  /* request */
  const char *method;
  size_t method_len;
  const char *target; /* request-target as sent (origin-form "/p?q", absolute-form, "*", authority) */
  size_t target_len;
  /* response */
  int status;         /* 100..999 */
  const char *reason;
  size_t reason_len;
  /* both */
  int minor;          /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
  wr_http_header *headers; /* = the caller's array; names/values point into the input */
  size_t nheaders;
  /* derived */
  wr_http1_body body;
  uint64_t content_length; /* the Content-Length value, 0 if absent; it frames
                            * the body only for WR_HTTP1_BODY_LENGTH (a HEAD
                            * or 304 response may carry one without a body) */
  int keep_alive;     /* 1.1 unless "Connection: close"; 1.0 only with "Connection: keep-alive";
                       * 0 for a response whose body runs to EOF or that has
                       * both Transfer-Encoding and Content-Length */
  int upgrade;        /* Connection has the "upgrade" token and an Upgrade field is present */
  int websocket;      /* upgrade and Upgrade is "websocket" (case-insensitive) */
  int expect_continue;/* request: "Expect: 100-continue" */
  const char *host;   /* request: the Host field value (NULL if absent) */
  size_t host_len;
} wr_http1_head;

/* Parses a request head from the start of |buf|. On WR_OK, *consumed is the
 * length of the head (including the final CRLF and any skipped leading
 * empty lines); body bytes follow. |hdrs| has room for |cap| fields.
 * Returns WR_OK, WR_AGAIN (the head is incomplete; no limit hit yet),
 * WR_ERR_LIMIT (head too large, too many fields, or |cap| too small) or
 * WR_ERR_PROTO (malformed; see above). Line-ending errors (bare CR/LF) and
 * limits are reported as soon as the bytes show them; the other checks run
 * once the head is complete. |limits| may be NULL (defaults). On an error
 * |out| is unspecified. */
int wr_http1_parse_request(const uint8_t *buf, size_t len, const wr_http1_limits *limits,
                           wr_http_header *hdrs, size_t cap, wr_http1_head *out,
                           size_t *consumed);

/* Parses a response head. |req_method| (may be NULL) is the method of the
 * request it answers: HEAD responses, 1xx, 204 and 304 have no body; a 2xx
 * answer to CONNECT neither. Without Content-Length or chunked coding the
 * body runs to EOF. Transfer-Encoding wins over Content-Length here (the
 * response is read, not forwarded raw; RFC 9112 6.3 rule 3). Same returns as
 * wr_http1_parse_request. */
int wr_http1_parse_response(const uint8_t *buf, size_t len, const char *req_method,
                            const wr_http1_limits *limits, wr_http_header *hdrs, size_t cap,
                            wr_http1_head *out, size_t *consumed);

/* 1 if |name| (any case) is a hop-by-hop field that a proxy must not
 * forward: Connection, Keep-Alive, Proxy-Connection, Proxy-Authenticate,
 * Proxy-Authorization, TE, Trailer, Transfer-Encoding, Upgrade. */
int wr_http1_is_hop_by_hop(const char *name, size_t len);

/* 1 if the comma-separated list |value| contains |token| (case-insensitive,
 * whitespace around elements ignored). */
int wr_http1_has_token(const char *value, size_t len, const char *token);

/* The value of the last field named |name| (case-insensitive) or NULL. */
const char *wr_http1_find(const wr_http1_head *h, const char *name, size_t *len);

/* ---- chunked transfer coding (decode) ------------------------------------- */

typedef struct wr_http1_chunked {
  int state;          /* private */
  uint64_t remaining; /* data bytes left in the current chunk */
  size_t line;        /* bytes of the current size/trailer line seen */
  size_t trailer;     /* bytes of trailer section seen, its final CRLF
                       * included: what a call adds to it are the last
                       * bytes that call consumed (how callers keep it) */
  int done;           /* 1 after the last chunk and the trailer section */
} wr_http1_chunked;

void wr_http1_chunked_init(wr_http1_chunked *c);

/* Decodes from |in|/|len|. Consumes framing bytes and at most one run of
 * data bytes: on return, *consumed bytes of |in| were used, of which the
 * data run is in[*data_off .. *data_off + *data_len) (may be empty). Call
 * again with the rest until it consumes nothing or c->done is set. Framing
 * bytes after a data run are consumed in the same call (so c->done can be
 * set by the call that returns the last data); the call stops before a
 * second data run and never consumes past the end of the chunked body.
 * Trailer fields are checked (token name, ':', value without CTLs, no
 * obs-fold), limited to WR_HTTP1_DEFAULT_MAX_HEAD bytes in all, and
 * discarded. Chunk extensions are skipped (only checked for CTLs). Whitespace
 * after the size is accepted only before a ';' (BWS). Returns WR_OK or
 * WR_ERR_PROTO (bad size: not hex, more than 15 hex digits, missing CRLF
 * after data, bare CR/LF, bad trailer) / WR_ERR_LIMIT (size line or trailers
 * too long). Errors are sticky: later calls return WR_ERR_PROTO. */
int wr_http1_chunked_decode(wr_http1_chunked *c, const uint8_t *in, size_t len,
                            size_t *consumed, size_t *data_off, size_t *data_len);

/* ---- serialisation -------------------------------------------------------- */

/* Appends "<status> <reason>" status line (HTTP/1.1), then the fields and
 * the empty line. |reason| NULL uses the standard phrase (or "Unknown").
 * Field names and values are written as given (the caller filters them),
 * but only if a strict parser accepts them: a name that is not a token, a
 * value with a control character other than HTAB (CR, LF, NUL, ...), or a
 * reason with one, is refused with WR_ERR_INVAL (no header injection).
 * Leading/trailing SP/HTAB in a value is written as is (receivers trim it).
 * Returns WR_OK, WR_ERR_INVAL, WR_ERR_LIMIT or WR_ERR_NOMEM (|out| unchanged
 * on error). */
int wr_http1_write_response_head(wr_buf *out, int status, const char *reason,
                                 const wr_http_header *hdrs, size_t n);
/* Appends "<method> <target> HTTP/1.1" and the fields (same rules; the
 * method must be a token and the target non-empty without CTL, SP or DEL). */
int wr_http1_write_request_head(wr_buf *out, const char *method, size_t method_len,
                                const char *target, size_t target_len,
                                const wr_http_header *hdrs, size_t n);
/* Writes a chunk-size line ("1a2b\r\n", lower-case hex) for |n| > 0 into
 * |out| (at least 20 bytes; NUL-terminated). Returns its length without the
 * NUL. The caller appends the data and "\r\n". The
 * last chunk is the constant WR_HTTP1_LAST_CHUNK. */
size_t wr_http1_chunk_header(uint64_t n, char *out);
#define WR_HTTP1_LAST_CHUNK "0\r\n\r\n"

/* The standard reason phrase for |status| ("OK", "Not Found", ...) or
 * "Unknown". */
const char *wr_http1_reason(int status);

#endif
