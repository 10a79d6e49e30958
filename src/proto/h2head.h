/* HTTP/2 <-> HTTP/1.1 message heads, for a front that serves HTTP/2
 * visitors with an HTTP/1.1 machinery (edge/visitor_h2.c). Sans I/O, no
 * nghttp2 types: the caller feeds decoded fields and maps the results.
 *
 * Request: the fields of one header block (RFC 9113 8.3: pseudo-fields
 * first, validated by the HTTP/2 library) become an HTTP/1.1 head:
 *   ":method :path HTTP/1.1" (CONNECT: ":authority" as the target),
 *   "Host: :authority" (a "host" field is dropped when :authority is
 *   present), the other fields in order, the "cookie" fields joined with
 *   "; " into one (RFC 9113 8.2.3), and "Transfer-Encoding: chunked" when
 *   a body follows without "content-length".
 * Response: an HTTP/1.1 response head becomes the ":status" and fields of
 * HEADERS, names lower-cased, hop-by-hop fields dropped (RFC 9113 8.2.2).
 *
 * Ownership: a wr_h2req owns its buffers (wr_h2req_free); a wr_h2resp's
 * values point into the parsed bytes, its names into the struct. Neither
 * calls back; both are callable from anywhere. */
#ifndef WR_PROTO_H2HEAD_H
#define WR_PROTO_H2HEAD_H
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "proto/httpmeta.h" /* wr_http_header */

#define WR_H2REQ_METHOD_MAX 31
#define WR_H2REQ_AUTHORITY_MAX 271

typedef struct wr_h2req {
  char method[WR_H2REQ_METHOD_MAX + 1];
  char authority[WR_H2REQ_AUTHORITY_MAX + 1];
  wr_buf path, fields, cookie;
  size_t size;      /* decoded bytes so far (RFC 9113 6.5.2: name + value + 32 each) */
  size_t max;       /* the head's limit */
  int too_large;    /* |size| or the head passed |max|: answer 431 */
  int bad;          /* a pseudo-field too long for its slot: answer 400 */
  int has_length;   /* a content-length field was seen */
} wr_h2req;

/* An empty request whose rebuilt head may take |max| bytes. */
void wr_h2req_init(wr_h2req *r, size_t max);
void wr_h2req_free(wr_h2req *r);
/* One decoded field, in block order. Never fails: past the limit the field
 * is only counted (too_large) so that the block can still be decoded. */
void wr_h2req_field(wr_h2req *r, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl);
/* The HTTP/1.1 head into |out| (appended); |eos|: no body follows.
 * Returns WR_OK, WR_ERR_LIMIT (too large: 431) or WR_ERR_PROTO (no
 * method, or neither path nor authority, or a pseudo-field too long: 400);
 * on failure |out| is unspecified. */
int wr_h2req_head(wr_h2req *r, int eos, wr_buf *out);

#define WR_H2RESP_MAX_FIELDS 300
#define WR_H2RESP_NAMES_MAX (64u * 1024u)

typedef struct wr_h2resp {
  int status;
  char status_text[12]; /* ":status" value */
  size_t nfields;
  wr_http_header fields[WR_H2RESP_MAX_FIELDS]; /* lower-case names, no hop-by-hop */
  int no_body;          /* status and method say no body follows */
  char names[WR_H2RESP_NAMES_MAX];
} wr_h2resp;

/* Parses the HTTP/1.1 response head at the start of |buf| (|method| of
 * the request it answers, may be NULL) into |out|; *used is its length.
 * Returns WR_OK, WR_AGAIN (incomplete), WR_ERR_LIMIT or WR_ERR_PROTO
 * (including a 101, which HTTP/2 cannot carry). */
int wr_h2resp_from_http1(const uint8_t *buf, size_t len, const char *method, wr_h2resp *out,
                         size_t *used);

#endif
