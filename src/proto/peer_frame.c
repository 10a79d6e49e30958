/* Edge-to-edge forwarding frames; see peer_frame.h. */
#include "proto/peer_frame.h"

#include "lib/err.h"

int wr_peer_frame_parse(const uint8_t *p, size_t len, wr_peer_frame *out, size_t *used) {
  if (len < WR_PEER_FRAME_HEAD) return WR_ERR_TRUNC;
  size_t n = ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
  int type = p[0];
  int ok;
  switch (type) {
  case WR_PEER_OPEN: ok = n == 36; break;
  case WR_PEER_DATA: ok = n >= 1 && n <= WR_PEER_FRAME_MAX; break;
  case WR_PEER_FIN: ok = n == 0; break;
  case WR_PEER_RESET:
  case WR_PEER_STOP: ok = n == 8; break;
  default: ok = 0; break;
  }
  if (!ok) return WR_ERR_PROTO;
  if (len - WR_PEER_FRAME_HEAD < n) return WR_ERR_TRUNC;
  out->type = type;
  out->payload = p + WR_PEER_FRAME_HEAD;
  out->len = n;
  out->code = 0;
  if (type == WR_PEER_RESET || type == WR_PEER_STOP)
    for (size_t i = 0; i < 8; i++) out->code = (out->code << 8) | out->payload[i];
  *used = WR_PEER_FRAME_HEAD + n;
  return WR_OK;
}

void wr_peer_frame_head(uint8_t head[WR_PEER_FRAME_HEAD], int type, size_t len) {
  head[0] = (uint8_t)type;
  head[1] = (uint8_t)(len >> 16);
  head[2] = (uint8_t)(len >> 8);
  head[3] = (uint8_t)len;
}

void wr_peer_frame_code(uint8_t out[WR_PEER_FRAME_HEAD + 8], int type, uint64_t code) {
  wr_peer_frame_head(out, type, 8);
  for (int i = 0; i < 8; i++) out[WR_PEER_FRAME_HEAD + i] = (uint8_t)(code >> (56 - 8 * i));
}
