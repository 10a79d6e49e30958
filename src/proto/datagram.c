#include "proto/datagram.h"

#include <stdio.h>
#include <string.h>

#include "lib/bytes.h"
#include "lib/encoding.h"
#include "lib/err.h"

/* strconv.ParseUint(s, 16, bits): at least one digit, hex digits only,
 * leading zeros allowed, value must fit in |bits|. */
static int parse_hex_uint(const char *s, size_t len, unsigned bits, uint64_t *out) {
  uint64_t v = 0, max = bits >= 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
  if (len == 0) return WR_ERR_PROTO;
  for (size_t i = 0; i < len; i++) {
    int d = wr_hex_digit((unsigned char)s[i]);
    if (d < 0) return WR_ERR_PROTO;
    if (v > (max >> 4)) return WR_ERR_PROTO; /* v * 16 would exceed max */
    v = v << 4 | (uint64_t)d;
    if (v > max) return WR_ERR_PROTO;
  }
  *out = v;
  return WR_OK;
}

int wr_dgram_trace_parse(const char *s, size_t len, wr_dgram_trace *out) {
  const char *part[4];
  size_t plen[4], n = 0, start = 0;
  if (!s || len == 0) return WR_ERR_PROTO;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || s[i] == ':') {
      if (n == 4) return WR_ERR_PROTO; /* a fifth part */
      part[n] = s + start;
      plen[n] = i - start;
      n++;
      start = i + 1;
    }
  }
  if (n != 4) return WR_ERR_PROTO;
  /* padTracingID: empty is "missing tracing ID"; longer than 32 panics in Go. */
  if (plen[0] == 0 || plen[0] > 32) return WR_ERR_PROTO;
  char padded[32];
  memset(padded, '0', sizeof(padded));
  memcpy(padded + 32 - plen[0], part[0], plen[0]);
  uint64_t hi, lo, span, flags;
  if (parse_hex_uint(padded, 16, 64, &hi) != 0 || parse_hex_uint(padded + 16, 16, 64, &lo) != 0 ||
      parse_hex_uint(part[1], plen[1], 64, &span) != 0 ||
      parse_hex_uint(part[3], plen[3], 8, &flags) != 0)
    return WR_ERR_PROTO;
  out->trace_hi = hi;
  out->trace_lo = lo;
  out->span_id = span;
  out->flags = (uint8_t)flags;
  return WR_OK;
}

int wr_dgram_trace_format(const wr_dgram_trace *t, char *out, size_t cap) {
  int n = snprintf(out, cap, "%016llx%016llx:%llx:0:%x", (unsigned long long)t->trace_hi,
                   (unsigned long long)t->trace_lo, (unsigned long long)t->span_id,
                   (unsigned)t->flags);
  if (n < 0 || (size_t)n >= cap) return WR_ERR_LIMIT;
  return n;
}

void wr_dgram_trace_pack(const wr_dgram_trace *t, uint8_t out[WR_DGRAM_TRACE_LEN]) {
  wr_put_be64(out, t->trace_hi);
  wr_put_be64(out + 8, t->trace_lo);
  wr_put_be64(out + 16, t->span_id);
  out[24] = t->flags;
}

int wr_dgram_trace_unpack(const uint8_t *p, size_t len, wr_dgram_trace *out) {
  if (len < WR_DGRAM_TRACE_LEN) return WR_ERR_TRUNC;
  out->trace_hi = wr_get_be64(p);
  out->trace_lo = wr_get_be64(p + 8);
  out->span_id = wr_get_be64(p + 16);
  out->flags = p[24];
  return WR_OK;
}

/* ---- version 2 ------------------------------------------------------------ */

int wr_dgram_v2_decode(const uint8_t *p, size_t len, wr_dgram *out) {
  memset(out, 0, sizeof(*out));
  if (len < 1) return WR_ERR_TRUNC;
  size_t body = len - 1; /* without the type byte */
  switch (p[len - 1]) {
  case WR_DGRAM_UDP:
    if (body < WR_DGRAM_SESSION_ID_LEN) return WR_ERR_TRUNC;
    out->type = WR_DGRAM_UDP;
    out->payload = p;
    out->payload_len = body - WR_DGRAM_SESSION_ID_LEN;
    memcpy(out->session_id.b, p + out->payload_len, WR_DGRAM_SESSION_ID_LEN);
    return WR_OK;
  case WR_DGRAM_IP:
    out->type = WR_DGRAM_IP;
    out->payload = p;
    out->payload_len = body;
    return WR_OK;
  case WR_DGRAM_IP_TRACED:
  case WR_DGRAM_SPANS:
    if (body < WR_DGRAM_TRACE_LEN) return WR_ERR_TRUNC;
    out->type = (enum wr_dgram_type)p[len - 1];
    out->payload = p;
    out->payload_len = body - WR_DGRAM_TRACE_LEN;
    return wr_dgram_trace_unpack(p + out->payload_len, WR_DGRAM_TRACE_LEN, &out->trace);
  default:
    return WR_ERR_PROTO;
  }
}

/* Bytes between the payload and the type byte. */
static size_t v2_meta_len(enum wr_dgram_type t) {
  switch (t) {
  case WR_DGRAM_UDP: return WR_DGRAM_SESSION_ID_LEN;
  case WR_DGRAM_IP: return 0;
  case WR_DGRAM_IP_TRACED:
  case WR_DGRAM_SPANS: return WR_DGRAM_TRACE_LEN;
  }
  return 0;
}

size_t wr_dgram_v2_encoded_len(const wr_dgram *d) {
  return d->payload_len + v2_meta_len(d->type) + 1;
}

int wr_dgram_v2_encode(const wr_dgram *d, size_t max_frame, size_t max_payload,
                       uint8_t *out, size_t out_cap) {
  if ((unsigned)d->type > WR_DGRAM_SPANS) return WR_ERR_INVAL;
  if (d->payload_len > 0 && !d->payload) return WR_ERR_INVAL;
  if (d->payload_len > max_payload) return WR_ERR_LIMIT;
  size_t meta = v2_meta_len(d->type);
  /* Compare without overflowing: payload_len + meta + 1 <= max_frame. */
  if (max_frame < meta + 1 || d->payload_len > max_frame - meta - 1) return WR_ERR_LIMIT;
  size_t total = d->payload_len + meta + 1;
  if (total > out_cap) return WR_ERR_LIMIT;
  /* memmove: callers may build the payload in place at the start of |out|. */
  if (d->payload_len) memmove(out, d->payload, d->payload_len);
  uint8_t *m = out + d->payload_len;
  if (d->type == WR_DGRAM_UDP) memcpy(m, d->session_id.b, WR_DGRAM_SESSION_ID_LEN);
  else if (meta) wr_dgram_trace_pack(&d->trace, m);
  out[total - 1] = (uint8_t)d->type;
  return (int)total;
}

/* ---- version 3 ------------------------------------------------------------ */

int wr_dgram_v3_decode(const uint8_t *p, size_t len, wr_dgram_v3 *out) {
  memset(out, 0, sizeof(*out));
  if (len < 1) return WR_ERR_TRUNC;
  switch (p[0]) {
  case WR_DGRAM_V3_REGISTER: {
    /* HEAD indexes the header without a length check (a short datagram
     * panics there); we refuse it instead. */
    if (len < WR_DGRAM_V3_REG_V4_LEN) return WR_ERR_TRUNC;
    uint8_t flags = p[1];
    out->type = WR_DGRAM_V3_REGISTER;
    out->ipv6 = (flags & WR_DGRAM_V3_FLAG_IPV6) != 0;
    out->traced = (flags & WR_DGRAM_V3_FLAG_TRACED) != 0;
    out->dst_port = wr_get_be16(p + 2);
    out->idle_seconds = wr_get_be16(p + 4);
    memcpy(out->request_id, p + 6, 16);
    size_t hdr = out->ipv6 ? WR_DGRAM_V3_REG_V6_LEN : WR_DGRAM_V3_REG_V4_LEN;
    if (len < hdr) return WR_ERR_TRUNC;
    memcpy(out->dst_addr, p + 22, out->ipv6 ? 16 : 4);
    if ((flags & WR_DGRAM_V3_FLAG_BUNDLED) && len > hdr) {
      if (len - hdr > WR_DGRAM_V3_MAX_PAYLOAD) return WR_ERR_LIMIT;
      out->payload = p + hdr;
      out->payload_len = len - hdr;
    }
    return WR_OK;
  }
  case WR_DGRAM_V3_PAYLOAD:
    if (len < WR_DGRAM_V3_PAYLOAD_HDR_LEN) return WR_ERR_TRUNC;
    if (len - WR_DGRAM_V3_PAYLOAD_HDR_LEN > WR_DGRAM_V3_MAX_PAYLOAD) return WR_ERR_LIMIT;
    out->type = WR_DGRAM_V3_PAYLOAD;
    memcpy(out->request_id, p + 1, 16);
    out->payload = p + WR_DGRAM_V3_PAYLOAD_HDR_LEN;
    out->payload_len = len - WR_DGRAM_V3_PAYLOAD_HDR_LEN;
    return WR_OK;
  case WR_DGRAM_V3_ICMP:
    if (len - 1 > WR_DGRAM_V3_MAX_PAYLOAD) return WR_ERR_LIMIT;
    if (len == 1) return WR_ERR_PROTO; /* ErrDatagramICMPPayloadMissing */
    out->type = WR_DGRAM_V3_ICMP;
    out->payload = p + 1;
    out->payload_len = len - 1;
    return WR_OK;
  case WR_DGRAM_V3_RESPONSE: {
    if (len < WR_DGRAM_V3_RESP_HDR_LEN) return WR_ERR_TRUNC;
    uint16_t mlen = wr_get_be16(p + 18);
    if (mlen > WR_DGRAM_V3_MAX_ERR_MSG) return WR_ERR_LIMIT;
    if (len - WR_DGRAM_V3_RESP_HDR_LEN < mlen) return WR_ERR_TRUNC;
    out->type = WR_DGRAM_V3_RESPONSE;
    out->resp_code = p[1];
    memcpy(out->request_id, p + 2, 16);
    /* HEAD takes everything after the header as the message; we take the
     * declared length, which is the same for every datagram HEAD writes. */
    out->err_msg = mlen ? p + WR_DGRAM_V3_RESP_HDR_LEN : NULL;
    out->err_msg_len = mlen;
    return WR_OK;
  }
  default:
    return WR_ERR_PROTO;
  }
}

/* Places the |len| bytes at |body| after a |hdr|-byte header in |out| and
 * returns the datagram's length, or WR_ERR_LIMIT (above |max| or |out_cap|)
 * / WR_ERR_INVAL (no bytes for a nonzero length). The body moves first, with
 * memmove: it may already sit inside |out| (at out + hdr, the zero-copy
 * layout HEAD's MarshalPayloadHeaderTo is for, or at out itself). */
static int v3_body(uint8_t *out, size_t out_cap, size_t hdr, const uint8_t *body, size_t len,
                   size_t max) {
  if (len > max) return WR_ERR_LIMIT;
  if (len && !body) return WR_ERR_INVAL;
  if (hdr + len > out_cap) return WR_ERR_LIMIT;
  if (len) memmove(out + hdr, body, len);
  return (int)(hdr + len);
}

static int v3_encode_register(const wr_dgram_v3 *d, uint8_t *out, size_t out_cap) {
  size_t hdr = d->ipv6 ? WR_DGRAM_V3_REG_V6_LEN : WR_DGRAM_V3_REG_V4_LEN;
  int total = v3_body(out, out_cap, hdr, d->payload, d->payload_len, WR_DGRAM_V3_MAX_PAYLOAD);
  if (total < 0) return total;
  uint8_t flags = 0;
  if (d->ipv6) flags |= WR_DGRAM_V3_FLAG_IPV6;
  if (d->traced) flags |= WR_DGRAM_V3_FLAG_TRACED;
  if (d->payload_len) flags |= WR_DGRAM_V3_FLAG_BUNDLED;
  out[0] = WR_DGRAM_V3_REGISTER;
  out[1] = flags;
  wr_put_be16(out + 2, d->dst_port);
  wr_put_be16(out + 4, d->idle_seconds);
  memcpy(out + 6, d->request_id, 16);
  memcpy(out + 22, d->dst_addr, d->ipv6 ? 16 : 4);
  return total;
}

static int v3_encode_payload(const wr_dgram_v3 *d, uint8_t *out, size_t out_cap) {
  int total = v3_body(out, out_cap, WR_DGRAM_V3_PAYLOAD_HDR_LEN, d->payload, d->payload_len,
                      WR_DGRAM_V3_MAX_PAYLOAD);
  if (total < 0) return total;
  out[0] = WR_DGRAM_V3_PAYLOAD;
  memcpy(out + 1, d->request_id, 16);
  return total;
}

static int v3_encode_icmp(const wr_dgram_v3 *d, uint8_t *out, size_t out_cap) {
  if (d->payload_len == 0 || !d->payload) return WR_ERR_INVAL;
  int total = v3_body(out, out_cap, 1, d->payload, d->payload_len, WR_DGRAM_V3_MAX_PAYLOAD);
  if (total < 0) return total;
  out[0] = WR_DGRAM_V3_ICMP;
  return total;
}

static int v3_encode_response(const wr_dgram_v3 *d, uint8_t *out, size_t out_cap) {
  int total = v3_body(out, out_cap, WR_DGRAM_V3_RESP_HDR_LEN, d->err_msg, d->err_msg_len,
                      WR_DGRAM_V3_MAX_ERR_MSG);
  if (total < 0) return total;
  out[0] = WR_DGRAM_V3_RESPONSE;
  out[1] = d->resp_code;
  memcpy(out + 2, d->request_id, 16);
  wr_put_be16(out + 18, (uint16_t)d->err_msg_len);
  return total;
}

int wr_dgram_v3_encode(const wr_dgram_v3 *d, uint8_t *out, size_t out_cap) {
  switch (d->type) {
  case WR_DGRAM_V3_REGISTER: return v3_encode_register(d, out, out_cap);
  case WR_DGRAM_V3_PAYLOAD: return v3_encode_payload(d, out, out_cap);
  case WR_DGRAM_V3_ICMP: return v3_encode_icmp(d, out, out_cap);
  case WR_DGRAM_V3_RESPONSE: return v3_encode_response(d, out, out_cap);
  }
  return WR_ERR_INVAL;
}
