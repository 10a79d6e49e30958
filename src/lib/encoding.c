#include "lib/encoding.h"

#include <gnutls/crypto.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int wr_base64_encode(const uint8_t *in, size_t len, char *out, size_t out_size, int flags) {
  const char *b64_alphabet = (flags & WR_BASE64_URL) ? b64_url : b64_std;
  int pad = flags & WR_BASE64_PAD;
  size_t full = (len + 2) / 3 * 4;
  size_t need = pad ? full : (len / 3) * 4 + (len % 3 ? len % 3 + 1 : 0);
  if (need + 1 > out_size) return WR_ERR_LIMIT;
  size_t o = 0, i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64_alphabet[v >> 18];
    out[o++] = b64_alphabet[(v >> 12) & 63];
    out[o++] = b64_alphabet[(v >> 6) & 63];
    out[o++] = b64_alphabet[v & 63];
  }
  if (i < len) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
    out[o++] = b64_alphabet[v >> 18];
    out[o++] = b64_alphabet[(v >> 12) & 63];
    if (i + 1 < len) out[o++] = b64_alphabet[(v >> 6) & 63];
    else if (pad) out[o++] = '=';
    if (pad) out[o++] = '=';
  }
  out[o] = '\0';
  return (int)o;
}

static int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

static int b64_skip(char c, int flags) {
  if (!(flags & WR_BASE64_GO)) return 0;
  if (c == '\r' || c == '\n') return 1;
  return (flags & WR_BASE64_GO_PEM) && (c == ' ' || c == '\t');
}

int wr_base64_decode(const char *in, size_t len, uint8_t *out, size_t out_size, int flags) {
  size_t pads = 0, k = 0;
  while (len > 0 && pads < 2 && (in[len - 1] == '=' || b64_skip(in[len - 1], flags))) {
    if (in[len - 1] == '=') pads++;
    len--;
  }
  for (size_t i = 0; i < len; i++) k += !b64_skip(in[i], flags);
  if (pads && (flags & WR_BASE64_NOPAD)) return WR_ERR_PROTO;
  if ((flags & WR_BASE64_PAD) && (k + pads) % 4 != 0) return WR_ERR_PROTO;
  if (k % 4 == 1) return WR_ERR_PROTO;
  if (pads && (k + pads) % 4 != 0) return WR_ERR_PROTO;
  size_t need = k / 4 * 3 + (k % 4 ? k % 4 - 1 : 0);
  if (out && need > out_size) return WR_ERR_LIMIT;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    if (b64_skip(in[i], flags)) continue;
    int v = b64_value(in[i]);
    if (v < 0) return WR_ERR_PROTO;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (out) out[o] = (uint8_t)(acc >> bits);
      o++;
    }
  }
  /* Leftover bits must be zero, as Go's strict decoder requires. */
  if (!(flags & WR_BASE64_GO) && bits && (acc & ((1u << bits) - 1))) return WR_ERR_PROTO;
  return (int)o;
}

void wr_hex_byte(uint8_t b, int upper, char out[2]) {
  const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  out[0] = digits[b >> 4];
  out[1] = digits[b & 15];
}

void wr_hex_encode(const uint8_t *in, size_t len, char *out) {
  for (size_t i = 0; i < len; i++) wr_hex_byte(in[i], 0, out + 2 * i);
  out[2 * len] = '\0';
}

int wr_hex_digit(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

#define hex_value(c) wr_hex_digit((unsigned char)(c))

int wr_hex_decode(const char *in, size_t len, uint8_t *out, size_t out_size) {
  if (len % 2) return WR_ERR_PROTO;
  if (len / 2 > out_size) return WR_ERR_LIMIT;
  for (size_t i = 0; i < len; i += 2) {
    int hi = hex_value(in[i]), lo = hex_value(in[i + 1]);
    if (hi < 0 || lo < 0) return WR_ERR_PROTO;
    out[i / 2] = (uint8_t)(hi << 4 | lo);
  }
  return (int)(len / 2);
}

void wr_pct_encode(wr_buf *b, const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      wr_buf_append(b, s, 1);
    } else {
      char e[3] = {'%'};
      wr_hex_byte(c, 1, e + 1);
      wr_buf_append(b, e, 3);
    }
  }
}

int wr_pct_decode(const char *in, size_t len, int flags, char *out, size_t out_size) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = in[i];
    if (c == '%') {
      int hi = i + 2 < len ? hex_value(in[i + 1]) : -1;
      int lo = hi < 0 ? -1 : hex_value(in[i + 2]);
      if (hi >= 0 && lo >= 0 && ((hi | lo) != 0 || (flags & WR_PCT_BINARY))) {
        c = (char)(hi << 4 | lo);
        i += 2;
      } else if (!(flags & WR_PCT_LENIENT)) {
        return WR_ERR_PROTO;
      }
    } else if ((flags & WR_PCT_PLUS) && c == '+') {
      c = ' ';
    }
    if (o + 1 >= out_size) return WR_ERR_LIMIT;
    out[o++] = c;
  }
  if (o >= out_size) return WR_ERR_LIMIT;
  out[o] = '\0';
  return (int)o;
}

int wr_uuid_parse(const char *s, size_t len, wr_uuid *out) {
  if (len != WR_UUID_STR_LEN) return WR_ERR_PROTO;
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return WR_ERR_PROTO;
      i++;
      continue;
    }
    int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
    if (hi < 0 || lo < 0) return WR_ERR_PROTO;
    out->b[o++] = (uint8_t)(hi << 4 | lo);
    i += 2;
  }
  return WR_OK;
}

void wr_uuid_format(const wr_uuid *u, char out[WR_UUID_STR_LEN + 1]) {
  char hex[33];
  wr_hex_encode(u->b, 16, hex);
  memcpy(out, hex, 8);
  out[8] = '-';
  memcpy(out + 9, hex + 8, 4);
  out[13] = '-';
  memcpy(out + 14, hex + 12, 4);
  out[18] = '-';
  memcpy(out + 19, hex + 16, 4);
  out[23] = '-';
  memcpy(out + 24, hex + 20, 12);
  out[36] = '\0';
}

int wr_random_bytes(void *out, size_t n) {
  return gnutls_rnd(GNUTLS_RND_KEY, out, n) == 0 ? WR_OK : WR_ERR_CRYPTO;
}

int wr_uuid_random(wr_uuid *out) {
  if (wr_random_bytes(out->b, 16) != 0) return WR_ERR_CRYPTO;
  out->b[6] = (uint8_t)((out->b[6] & 0x0f) | 0x40);
  out->b[8] = (uint8_t)((out->b[8] & 0x3f) | 0x80);
  return WR_OK;
}
