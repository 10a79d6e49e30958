/* WebSocket framing; see wsframe.h. */
#include "proto/wsframe.h"

#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "lib/encoding.h"

void wr_ws_decoder_init(wr_ws_decoder *d, int from_client) {
  memset(d, 0, sizeof(*d));
  d->want_masked = from_client ? 1 : 0;
  d->head_need = 2;
}

static int is_control(int op) { return op >= 0x8; }

/* The head is complete: checks it and sets up the payload. */
static int head_done(wr_ws_decoder *d) {
  const uint8_t *h = d->head;
  uint64_t len = h[1] & 0x7f;
  size_t p = 2;
  d->opcode = h[0] & 0x0f;
  if (len == 126) {
    len = ((uint64_t)h[2] << 8) | h[3];
    p = 4;
  } else if (len == 127) {
    if (h[2] & 0x80) return -1;
    len = 0;
    for (int i = 0; i < 8; i++) len = (len << 8) | h[2 + i];
    p = 10;
  }
  if (d->masked) memcpy(d->key, h + p, 4);
  if (is_control(d->opcode) && len > sizeof(d->ctl)) return -1;
  d->left = len;
  d->off = 0;
  d->ctl_len = 0;
  d->in_payload = 1;
  return 0;
}

/* Checks the first two bytes and works out the head's full length. */
static int head_start(wr_ws_decoder *d) {
  uint8_t b0 = d->head[0], b1 = d->head[1];
  int op = b0 & 0x0f, fin = (b0 & 0x80) != 0;
  if (b0 & 0x70) return -1; /* RSV bits: no extension was negotiated */
  if (op > WR_WS_OP_BINARY && op < WR_WS_OP_CLOSE) return -1;
  if (op > WR_WS_OP_PONG) return -1;
  if (is_control(op) && !fin) return -1;
  d->fin = fin;
  d->masked = (b1 & 0x80) != 0;
  if (d->masked != d->want_masked) return -1;
  size_t need = 2 + (d->masked ? 4u : 0u);
  if ((b1 & 0x7f) == 126) need += 2;
  if ((b1 & 0x7f) == 127) need += 8;
  d->head_need = need;
  return 0;
}

/* Reads head bytes; returns bytes used or -1. */
static long read_head(wr_ws_decoder *d, const uint8_t *in, size_t len) {
  size_t used = 0;
  while (used < len && d->head_len < d->head_need) {
    d->head[d->head_len++] = in[used++];
    if (d->head_len == 2 && head_start(d) != 0) return -1;
  }
  if (d->head_len == d->head_need && d->head_len >= 2 && head_done(d) != 0) return -1;
  return (long)used;
}

static void next_frame(wr_ws_decoder *d) {
  d->in_payload = 0;
  d->head_len = 0;
  d->head_need = 2;
}

static wr_ws_event_kind control_kind(int op) {
  if (op == WR_WS_OP_PING) return WR_WS_EV_PING;
  if (op == WR_WS_OP_PONG) return WR_WS_EV_PONG;
  return WR_WS_EV_CLOSE;
}

int wr_ws_decode(wr_ws_decoder *d, const uint8_t *in, size_t len, uint8_t *out, size_t *used,
                 wr_ws_event *ev) {
  size_t n;
  memset(ev, 0, sizeof(*ev));
  *used = 0;
  if (!d->in_payload) {
    long r = read_head(d, in, len);
    if (r < 0) return -1;
    *used = (size_t)r;
    if (!d->in_payload) return 0;
    in += r;
    len -= (size_t)r;
  }
  n = d->left < len ? (size_t)d->left : len;
  if (is_control(d->opcode)) {
    memcpy(d->ctl + d->ctl_len, in, n);
    if (d->masked) wr_ws_mask(d->ctl + d->ctl_len, n, d->key, d->off);
    d->ctl_len += n;
  } else if (n) {
    memcpy(out, in, n);
    if (d->masked) wr_ws_mask(out, n, d->key, d->off);
    ev->kind = WR_WS_EV_DATA;
    ev->data = out;
    ev->len = n;
  }
  if (ev->kind == WR_WS_EV_DATA || !is_control(d->opcode)) ev->opcode = d->opcode;
  d->off += n;
  d->left -= n;
  *used += n;
  if (d->left == 0) {
    if (is_control(d->opcode)) {
      ev->kind = control_kind(d->opcode);
      ev->data = d->ctl;
      ev->len = d->ctl_len;
    } else if (d->fin) {
      ev->kind = WR_WS_EV_DATA;
      ev->data = out;
      ev->len = n;
      ev->end = 1;
    }
    next_frame(d);
  }
  return 0;
}

size_t wr_ws_frame_head(uint8_t out[WR_WS_HEAD_MAX], int opcode, uint64_t len,
                        const uint8_t *mask_key) {
  size_t p = 2;
  out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
  if (len < 126) {
    out[1] = (uint8_t)len;
  } else if (len <= 0xffff) {
    out[1] = 126;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    p = 4;
  } else {
    out[1] = 127;
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    p = 10;
  }
  if (mask_key) {
    out[1] |= 0x80;
    memcpy(out + p, mask_key, 4);
    p += 4;
  }
  return p;
}

void wr_ws_mask(uint8_t *data, size_t n, const uint8_t key[4], uint64_t offset) {
  for (size_t i = 0; i < n; i++) data[i] ^= key[(offset + i) & 3];
}

int wr_ws_accept(const char *key, size_t len, char out[WR_WS_ACCEPT_LEN]) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  uint8_t in[256 + sizeof(guid)], digest[20];
  if (len > 256) return -1;
  memcpy(in, key, len);
  memcpy(in + len, guid, sizeof(guid) - 1);
  if (gnutls_hash_fast(GNUTLS_DIG_SHA1, in, len + sizeof(guid) - 1, digest) != 0) return -1;
  return wr_base64_encode(digest, sizeof(digest), out, WR_WS_ACCEPT_LEN, WR_BASE64_PAD) < 0 ? -1
                                                                                             : 0;
}
