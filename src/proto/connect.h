/* ConnectRequest / ConnectResponse: the Cap'n Proto message at the start of
 * every QUIC data stream (quic_metadata_protocol.capnp, protocol.md 4.2).
 * Sans-I/O: bytes in, values out.
 *
 * The input of the decoders starts at the Cap'n Proto segment table, i.e.
 * right after the 8-byte data-stream preamble (signature + "01", handled by
 * proto/preamble.h). They report how many bytes the framed message took so
 * the stream body that follows is left untouched.
 *
 * Decoded strings (dest, error, metadata keys and values) point into the
 * input buffer, which must outlive the decoded value. Because Cap'n Proto
 * Text carries its NUL on the wire, every such string is also NUL-terminated
 * (an absent/null Text decodes as the static string "" with length 0).
 *
 *   ConnectRequest  {8,2}: dest Text ptr0, type u16 @0, metadata List(Metadata) ptr1
 *   ConnectResponse {0,2}: error Text ptr0, metadata List(Metadata) ptr1
 *   Metadata        {0,2}: key Text ptr0, val Text ptr1
 *
 * Null versus empty metadata: cloudflared writes a nil Go slice as a null
 * pointer and an empty slice as an empty (non-null) composite list. The TCP
 * ack is {error "", metadata []} (non-null, empty); error responses carry a
 * null list. The |has_meta| field carries that distinction both ways. */
#ifndef WR_CONNECT_H
#define WR_CONNECT_H
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/mem.h"
#include "proto/capnp.h"
#include "proto/metadata.h"

/* ConnectionType (a u16 enum on the wire; other values decode as-is, the
 * connector answers them with an error response). */
enum wr_connect_type {
  WR_CONNECT_HTTP = 0,
  WR_CONNECT_WEBSOCKET = 1,
  WR_CONNECT_TCP = 2
};

/* Upper bound for the metadata count of the allocating decoders when the
 * caller passes 0. A header list larger than this is refused, not truncated. */
#define WR_CONNECT_DEFAULT_MAX_META 1024u

typedef struct wr_connect_request {
  const char *dest;
  size_t dest_len;
  uint16_t type;    /* enum wr_connect_type, or an unknown value */
  int has_meta;     /* 0: metadata pointer is null; 1: a list (maybe empty) */
  wr_meta *meta;    /* decode: the caller's or an allocated array */
  size_t nmeta;
} wr_connect_request;

typedef struct wr_connect_response {
  const char *error; /* "" on success */
  size_t error_len;
  int has_meta;
  wr_meta *meta;
  size_t nmeta;
} wr_connect_response;

/* Decodes a framed ConnectRequest from |buf|. Metadata entries go into the
 * caller's array |meta| of |max_meta| entries (out->meta = meta; it may be
 * NULL when max_meta is 0). On success *consumed is the framed length.
 * |limits| may be NULL (capnp defaults).
 * Returns 0, WR_AGAIN (need more bytes), WR_ERR_LIMIT (message over the
 * capnp limits, or more than |max_meta| metadata entries), WR_ERR_PROTO or
 * WR_ERR_BOUNDS (malformed message: wrong pointer kinds, Text without NUL,
 * pointers outside the segment). */
int wr_connect_request_decode(const uint8_t *buf, size_t len, const wr_capnp_limits *limits,
                              wr_connect_request *out, wr_meta *meta, size_t max_meta,
                              size_t *consumed);

/* As wr_connect_request_decode, but allocates the metadata array with |mem|
 * (NULL means libc); |max_meta| 0 means WR_CONNECT_DEFAULT_MAX_META. Release
 * with wr_connect_request_free(). out->meta is NULL when there are no
 * entries. On error nothing is left allocated. Additional error:
 * WR_ERR_NOMEM. */
int wr_connect_request_decode_alloc(const uint8_t *buf, size_t len,
                                    const wr_capnp_limits *limits, const wr_mem *mem,
                                    size_t max_meta, wr_connect_request *out, size_t *consumed);
/* Frees the metadata array of a request decoded with the _alloc variant. */
void wr_connect_request_free(const wr_mem *mem, wr_connect_request *r);

/* Encodes |r| as a framed single-segment message (the layout cloudflared's
 * Go library produces) and appends it to |out|; the preamble is not written.
 * Empty strings are written as null pointers, as cloudflared does. |mem| is
 * used for the temporary builder (NULL means libc).
 * Returns 0, WR_ERR_INVAL (r->has_meta == 0 with r->nmeta != 0, or nmeta > 0
 * with meta == NULL), WR_ERR_NOMEM, or WR_ERR_LIMIT (message too large or
 * |out| over its maximum). On error |out| is unchanged. */
int wr_connect_request_encode(const wr_connect_request *r, const wr_mem *mem, wr_buf *out);

/* The same three operations for ConnectResponse, with the same errors. */
int wr_connect_response_decode(const uint8_t *buf, size_t len, const wr_capnp_limits *limits,
                               wr_connect_response *out, wr_meta *meta, size_t max_meta,
                               size_t *consumed);
int wr_connect_response_decode_alloc(const uint8_t *buf, size_t len,
                                     const wr_capnp_limits *limits, const wr_mem *mem,
                                     size_t max_meta, wr_connect_response *out,
                                     size_t *consumed);
void wr_connect_response_free(const wr_mem *mem, wr_connect_response *r);
int wr_connect_response_encode(const wr_connect_response *r, const wr_mem *mem, wr_buf *out);

#endif
