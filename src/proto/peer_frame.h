/* The frames of edge-to-edge forwarding (edge/peer.h): one data stream of a
 * tunnel per TLS connection between two edges, carried as frames so that
 * each direction can end (FIN) or abort (RESET, STOP) on its own, as a
 * QUIC stream can, which TLS alone cannot express.
 *
 *   frame = type (1 byte) | length (3 bytes, big endian) | payload
 *   OPEN   forwarding edge -> serving edge, first and once: the tunnel id
 *          (36 bytes of UUID text)
 *   DATA   stream bytes, 1..WR_PEER_FRAME_MAX
 *   FIN    the sender's direction ended (empty)
 *   RESET  the sender aborted its direction: 8-byte code (big endian)
 *   STOP   the sender wants no more bytes: 8-byte code
 * Anything else (unknown type, a bad length) is a protocol error: the
 * connection is closed, which ends the stream.
 *
 * Sans-I/O; no allocation. */
#ifndef WR_PROTO_PEER_FRAME_H
#define WR_PROTO_PEER_FRAME_H
#include <stddef.h>
#include <stdint.h>

#define WR_PEER_FRAME_HEAD 4
#define WR_PEER_FRAME_MAX 65536

enum {
  WR_PEER_OPEN = 1,
  WR_PEER_DATA = 2,
  WR_PEER_FIN = 3,
  WR_PEER_RESET = 4,
  WR_PEER_STOP = 5,
};

/* The code of the RESET a serving edge answers an OPEN with when it has
 * no live connection of the tunnel: nothing of the stream reached a
 * connector, so the forwarding edge may try another edge. Above every
 * QUIC error code (those end at 2^62 - 1), so no connector's reset code,
 * passed on, is mistaken for it. */
#define WR_PEER_CODE_REFUSED (UINT64_C(1) << 62)

typedef struct wr_peer_frame {
  int type;
  const uint8_t *payload; /* points into the input */
  size_t len;
  uint64_t code; /* RESET, STOP */
} wr_peer_frame;

/* Parses one frame at the start of |p|. Returns WR_OK with *used bytes
 * taken, WR_ERR_TRUNC (the frame is not complete yet: read more), or
 * WR_ERR_PROTO (unknown type, a length out of bounds for the type). */
int wr_peer_frame_parse(const uint8_t *p, size_t len, wr_peer_frame *out, size_t *used);
/* Writes a frame head for |type| with |len| payload bytes into |head|. */
void wr_peer_frame_head(uint8_t head[WR_PEER_FRAME_HEAD], int type, size_t len);
/* A RESET or STOP frame, whole (head + code): WR_PEER_FRAME_HEAD + 8 bytes. */
void wr_peer_frame_code(uint8_t out[WR_PEER_FRAME_HEAD + 8], int type, uint64_t code);

#endif
