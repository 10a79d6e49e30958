/* The head of a connector's answer on a data stream (protocol.md 4.1, 4.3):
 * the data-stream preamble (signature + 2 version bytes), then a framed
 * ConnectResponse; what follows is the stream's payload. Sans-I/O: the
 * caller accumulates the stream's first bytes and calls this until it
 * stops returning WR_AGAIN. Shared by the edge's HTTP visitors and its
 * private-network TCP glue so both read a response head the same way. */
#ifndef WR_STREAM_HEAD_H
#define WR_STREAM_HEAD_H
#include <stddef.h>
#include <stdint.h>

#include "proto/connect.h"

/* Decodes the head at the start of |buf|.
 * Returns WR_OK: |*cr| holds the response (free it with
 *   wr_connect_response_free(NULL, cr)) and |*used| is the length of
 *   preamble + response, so the payload starts at buf + *used;
 * WR_AGAIN: the head is not complete yet (fewer than 8 bytes, or a partial
 *   ConnectResponse);
 * WR_ERR_PROTO with |*bad_preamble| = 1: the first 8 bytes are not a data
 *   stream preamble;
 * any other error of wr_connect_response_decode_alloc (|*bad_preamble| 0):
 *   the ConnectResponse is malformed.
 * |*cr| needs no freeing unless WR_OK was returned. */
int wr_stream_head_decode(const uint8_t *buf, size_t len, wr_connect_response *cr, size_t *used,
                          int *bad_preamble);

/* The other direction: whether the request at the start of a data stream
 * (preamble + ConnectRequest, as an edge writes it) may be sent a second
 * time after the first attempt may have reached the connector: an HTTP or
 * WebSocket request whose HttpMethod is idempotent (RFC 9110 9.2.2: GET,
 * HEAD, OPTIONS, TRACE, PUT, DELETE). Returns 1 or 0; 0 also for bytes
 * that are incomplete or not such a request (a TCP stream, a malformed
 * head). */
int wr_stream_request_idempotent(const uint8_t *buf, size_t len);

#endif
