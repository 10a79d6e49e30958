/* QUIC DATAGRAM payloads (protocol.md 6.2, 6.6). Sans-I/O: decoders point
 * into the caller's bytes, encoders write into the caller's buffer.
 *
 * Version 2 (what cloudflared 2023.7.3 speaks) puts everything in a suffix;
 * the last byte is the type:
 *   0 UDP       payload ‖ session id (16) ‖ 0x00
 *   1 IP        IPv4/IPv6 packet ‖ 0x01
 *   2 IP+trace  IP packet ‖ tracing identity (25) ‖ 0x02
 *   3 spans     OTLP protobuf ‖ tracing identity (25) ‖ 0x03
 * Version 3 (cloudflared HEAD, feature support_datagram_v3_2) uses a type
 * prefix instead; see the wr_dgram_v3_* functions. All integers big-endian. */
#ifndef WR_DATAGRAM_H
#define WR_DATAGRAM_H
#include <stddef.h>
#include <stdint.h>

#include "lib/encoding.h"

/* Size limits of protocol.md 6.2 (non-Windows values). The caller picks the
 * ones that apply to its direction and passes them to the encoder. */
#define WR_DGRAM_MAX_FRAME 1350         /* advertised max_datagram_frame_size */
#define WR_DGRAM_MAX_FRAME_WINDOWS 1220
#define WR_DGRAM_MAX_UDP_PAYLOAD 1280   /* UDP payload the connector sends to the edge */
#define WR_DGRAM_MAX_UDP_PAYLOAD_WINDOWS 1200
#define WR_DGRAM_SESSION_ID_LEN 16
#define WR_DGRAM_TRACE_LEN 25           /* binary tracing identity */
/* Longest Jaeger string wr_dgram_trace_format() writes, without the NUL:
 * 32 hex ":" 16 hex ":0:" 2 hex. */
#define WR_DGRAM_TRACE_STR_MAX 54

/* ---- tracing identity ---------------------------------------------------- */

/* cloudflared's tracing.Identity: a Jaeger span context without the parent
 * span (always 0 on the wire). */
typedef struct wr_dgram_trace {
  uint64_t trace_hi; /* upper 64 bits of the 128-bit trace id */
  uint64_t trace_lo;
  uint64_t span_id;
  uint8_t flags;
} wr_dgram_trace;

/* Parses the Jaeger / uber-trace-id form "trace:span:parent:flags" exactly
 * as cloudflared's tracing.NewIdentity does: exactly 4 ':'-separated parts;
 * the trace id (1..32 hex digits) is left-padded with '0' to 32 digits and
 * split into two 64-bit halves; span is a hex u64 (any number of digits while
 * the value fits); the parent part is ignored (even if empty or not hex);
 * flags is a hex u8. Hex digits may be upper or lower case; no "0x", no sign.
 * Returns 0, or WR_ERR_PROTO for anything else (including a trace id longer
 * than 32 digits, which makes Go panic). */
int wr_dgram_trace_parse(const char *s, size_t len, wr_dgram_trace *out);

/* Formats as Go's Identity.String(): "%016x%016x:%x:0:%x" (lower case).
 * Returns the string length, or WR_ERR_LIMIT if |cap| (which must include
 * the NUL) is too small; WR_DGRAM_TRACE_STR_MAX + 1 always suffices. */
int wr_dgram_trace_format(const wr_dgram_trace *t, char *out, size_t cap);

/* 25-byte binary form: trace_hi ‖ trace_lo ‖ span_id (big-endian u64s) ‖ flags. */
void wr_dgram_trace_pack(const wr_dgram_trace *t, uint8_t out[WR_DGRAM_TRACE_LEN]);
/* Reads the first 25 bytes of |p| (more are allowed, as in Go's
 * UnmarshalBinary). Returns 0 or WR_ERR_TRUNC if |len| < 25. */
int wr_dgram_trace_unpack(const uint8_t *p, size_t len, wr_dgram_trace *out);

/* ---- version 2 ------------------------------------------------------------ */

enum wr_dgram_type {
  WR_DGRAM_UDP = 0,       /* UDP session payload */
  WR_DGRAM_IP = 1,        /* full IPv4/IPv6 packet (ICMP) */
  WR_DGRAM_IP_TRACED = 2, /* IP packet + tracing identity, edge -> connector */
  WR_DGRAM_SPANS = 3      /* tracing spans, connector -> edge */
};

/* A decoded (or to-be-encoded) v2 datagram. |payload| is the UDP payload,
 * the IP packet or the OTLP protobuf; |session_id| is set for WR_DGRAM_UDP,
 * |trace| for WR_DGRAM_IP_TRACED and WR_DGRAM_SPANS. */
typedef struct wr_dgram {
  enum wr_dgram_type type;
  const uint8_t *payload;
  size_t payload_len;
  wr_uuid session_id;
  wr_dgram_trace trace;
} wr_dgram;

/* Decodes one DATAGRAM frame payload. |out->payload| points into |p|.
 * The frame size itself is not checked here: QUIC already refused frames
 * above the advertised max_datagram_frame_size.
 * Returns 0; WR_ERR_TRUNC for an empty datagram, a UDP datagram shorter than
 * session id + type (17 bytes; an empty UDP payload is valid), or a traced /
 * spans datagram shorter than identity + type (26 bytes); WR_ERR_PROTO for an
 * unknown type byte. cloudflared drops the datagram (and logs) in all cases. */
int wr_dgram_v2_decode(const uint8_t *p, size_t len, wr_dgram *out);

/* Bytes wr_dgram_v2_encode() writes for |d| (payload + suffix). */
size_t wr_dgram_v2_encoded_len(const wr_dgram *d);

/* Encodes |d| into |out|. |max_frame| caps the whole frame (cloudflared:
 * WR_DGRAM_MAX_FRAME, or the peer's max_datagram_frame_size minus QUIC frame
 * overhead if smaller); |max_payload| caps |d->payload_len| (the connector
 * uses WR_DGRAM_MAX_UDP_PAYLOAD for UDP replies; SIZE_MAX for none).
 * Returns the number of bytes written, WR_ERR_LIMIT if a cap is exceeded or
 * |out_cap| is too small (cloudflared drops such datagrams), or WR_ERR_INVAL
 * for an unknown |d->type| or a NULL payload with a non-zero length. */
int wr_dgram_v2_encode(const wr_dgram *d, size_t max_frame, size_t max_payload,
                       uint8_t *out, size_t out_cap);

/* ---- version 3 (cloudflared HEAD only) ----------------------------------- */

#define WR_DGRAM_V3_MAX_PAYLOAD 1280   /* UDP payload / ICMP packet / bundled payload */
#define WR_DGRAM_V3_REG_V4_LEN 26      /* registration header, IPv4 destination */
#define WR_DGRAM_V3_REG_V6_LEN 38      /* registration header, IPv6 destination */
#define WR_DGRAM_V3_PAYLOAD_HDR_LEN 17 /* type + request id */
#define WR_DGRAM_V3_RESP_HDR_LEN 20    /* type + code + request id + msg length */
#define WR_DGRAM_V3_MAX_ERR_MSG (WR_DGRAM_V3_MAX_PAYLOAD - WR_DGRAM_V3_RESP_HDR_LEN)

enum wr_dgram_v3_type {
  WR_DGRAM_V3_REGISTER = 0, /* UDP session registration, edge -> connector */
  WR_DGRAM_V3_PAYLOAD = 1,  /* UDP session payload, both ways */
  WR_DGRAM_V3_ICMP = 2,     /* raw ICMP IP packet, both ways */
  WR_DGRAM_V3_RESPONSE = 3  /* registration response, connector -> edge */
};

#define WR_DGRAM_V3_FLAG_IPV6 0x01
#define WR_DGRAM_V3_FLAG_TRACED 0x02
#define WR_DGRAM_V3_FLAG_BUNDLED 0x04

/* Registration response codes. */
enum wr_dgram_v3_resp {
  WR_DGRAM_V3_RESP_OK = 0x00,
  WR_DGRAM_V3_RESP_DEST_UNREACHABLE = 0x01,
  WR_DGRAM_V3_RESP_UNABLE_TO_BIND = 0x02,
  WR_DGRAM_V3_RESP_TOO_MANY_FLOWS = 0x03,
  WR_DGRAM_V3_RESP_ERROR_WITH_MSG = 0xff
};

typedef struct wr_dgram_v3 {
  enum wr_dgram_v3_type type;
  uint8_t request_id[16];    /* REGISTER, PAYLOAD, RESPONSE: u128 hi ‖ lo */
  /* REGISTER */
  int ipv6;                  /* destination family (flag 0x01) */
  int traced;                /* flag 0x02 (parsed, otherwise unused at HEAD) */
  uint8_t dst_addr[16];      /* 4 bytes used for IPv4 */
  uint16_t dst_port;
  uint16_t idle_seconds;
  /* RESPONSE */
  uint8_t resp_code;         /* enum wr_dgram_v3_resp; other values pass through */
  const uint8_t *err_msg;
  size_t err_msg_len;
  /* REGISTER (bundled payload, flag 0x04), PAYLOAD, ICMP: points into input */
  const uint8_t *payload;
  size_t payload_len;
} wr_dgram_v3;

/* Decodes a v3 datagram. Pointers point into |p|.
 * Returns 0; WR_ERR_TRUNC for an empty datagram or one shorter than its
 * header (a registration shorter than 26/38 bytes, a payload shorter than
 * 17, a response shorter than 20 or than its declared message); WR_ERR_LIMIT
 * if a payload / ICMP packet exceeds 1280 bytes or a response message length
 * exceeds WR_DGRAM_V3_MAX_ERR_MSG; WR_ERR_PROTO for an empty ICMP datagram or
 * an unknown type. A registration's payload is only reported if the bundled
 * flag is set and bytes follow the header (HEAD's rule). */
int wr_dgram_v3_decode(const uint8_t *p, size_t len, wr_dgram_v3 *out);

/* Encodes |d|. The registration flags are derived from |ipv6|, |traced| and
 * whether |payload_len| > 0; a response writes its message length field.
 * Returns bytes written, WR_ERR_LIMIT if a size limit above is exceeded or
 * |out_cap| is too small, WR_ERR_INVAL for an unknown type or an ICMP
 * datagram without payload. */
int wr_dgram_v3_encode(const wr_dgram_v3 *d, uint8_t *out, size_t out_cap);

#endif
