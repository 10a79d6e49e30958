/* WebSocket (RFC 6455) framing, for the two places Warren speaks it itself:
 * the connector terminating a visitor's WebSocket in front of a TCP origin
 * (tcp://, ssh://, rdp://, smb:// rules; it reads masked client frames and
 * writes unmasked server frames, as cloudflared's websocket.Conn does) and
 * `warren access tcp`, the client end (masked frames out, unmasked in).
 *
 * The decoder is incremental and streams data payloads out as they arrive
 * (a frame is never buffered whole); control frames (at most 125 bytes by
 * the RFC) are collected and reported complete. Extensions are not
 * negotiated, so any RSV bit is an error. Pure code: no allocation, no I/O;
 * Sec-WebSocket-Accept uses gnutls' SHA-1. */
#ifndef WR_PROTO_WSFRAME_H
#define WR_PROTO_WSFRAME_H
#include <stddef.h>
#include <stdint.h>

enum {
  WR_WS_OP_CONT = 0x0,
  WR_WS_OP_TEXT = 0x1,
  WR_WS_OP_BINARY = 0x2,
  WR_WS_OP_CLOSE = 0x8,
  WR_WS_OP_PING = 0x9,
  WR_WS_OP_PONG = 0xa
};

/* Longest frame header: 2 + 8 (length) + 4 (mask key). */
#define WR_WS_HEAD_MAX 14
/* Sec-WebSocket-Accept: base64 of a SHA-1, plus NUL. */
#define WR_WS_ACCEPT_LEN 29

typedef enum wr_ws_event_kind {
  WR_WS_EV_NONE = 0, /* the input was used up inside a frame head or payload */
  WR_WS_EV_DATA,     /* a piece of a text/binary/continuation payload */
  WR_WS_EV_PING,     /* a complete control frame; payload in the decoder */
  WR_WS_EV_PONG,
  WR_WS_EV_CLOSE
} wr_ws_event_kind;

typedef struct wr_ws_event {
  wr_ws_event_kind kind;
  const uint8_t *data; /* DATA: in the caller's |out|; control: in the decoder */
  size_t len;
  /* DATA: the frame's opcode (WR_WS_OP_CONT for a continuation) and 1 on
   * the last piece of a frame with FIN set, the end of a message (an empty
   * final frame gives one DATA event of length 0). */
  int opcode;
  int end;
} wr_ws_event;

typedef struct wr_ws_decoder {
  int want_masked; /* 1: frames from a client (must be masked); 0: from a server (must not) */
  /* private */
  uint8_t head[WR_WS_HEAD_MAX];
  size_t head_len, head_need;
  int opcode, in_payload, fin;
  uint8_t key[4];
  int masked;
  uint64_t left, off;
  uint8_t ctl[125];
  size_t ctl_len;
} wr_ws_decoder;

/* Starts a decoder for frames sent by a client (|from_client| 1) or a server. */
void wr_ws_decoder_init(wr_ws_decoder *d, int from_client);

/* Decodes from |in|: *used bytes are taken and at most one event is
 * reported. DATA payload bytes are unmasked into |out|, which must hold
 * |len| bytes. Call again with the rest while *used < |len| or an event
 * came. Returns 0, or -1 for a protocol error (bad opcode or RSV bits,
 * wrong masking, a fragmented or oversized control frame, a 64-bit length
 * with the top bit set); the decoder is unusable afterwards. */
int wr_ws_decode(wr_ws_decoder *d, const uint8_t *in, size_t len, uint8_t *out, size_t *used,
                 wr_ws_event *ev);

/* Writes a frame head (FIN set) for |len| payload bytes into |out|; with
 * |mask_key| non-NULL the frame is masked with it (the caller masks the
 * payload with wr_ws_mask). Returns the head length (2..14). */
size_t wr_ws_frame_head(uint8_t out[WR_WS_HEAD_MAX], int opcode, uint64_t len,
                        const uint8_t *mask_key);

/* XORs |n| bytes with |key|, |offset| being the position of data[0] in the
 * payload. */
void wr_ws_mask(uint8_t *data, size_t n, const uint8_t key[4], uint64_t offset);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2). Returns 0,
 * or -1 if hashing failed. */
int wr_ws_accept(const char *key, size_t len, char out[WR_WS_ACCEPT_LEN]);

#endif
