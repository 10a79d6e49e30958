/* WireGuard's wire format and the primitives its handshake is built from
 * (Donenfeld, "WireGuard: Next Generation Kernel Network Tunnel", sections
 * 5.4 and 5.3; wireguard-go's noise-protocol.go and cookie.go). Sans-I/O:
 * bytes in, values out; no sockets, no clock (callers pass |now|).
 *
 * Messages (all little-endian integers, 3 reserved zero bytes after the
 * type byte):
 *   1 handshake initiation  148 B  sender, ephemeral, static(48), timestamp(28), mac1, mac2
 *   2 handshake response     92 B  sender, receiver, ephemeral, empty(16), mac1, mac2
 *   3 cookie reply           64 B  receiver, nonce(24), cookie(32)
 *   4 transport data       >=32 B  receiver, counter(8), ciphertext (>= 16: the tag)
 * Parsing is strict: a handshake or cookie message of any other size, a
 * non-zero reserved byte or an unknown type is malformed (WR_ERR_PROTO).
 *
 * Primitives: HASH = BLAKE2s-256, MAC = keyed BLAKE2s-128, HMAC =
 * HMAC-BLAKE2s-256 (RFC 2104 over a 64-byte block), KDFn = the HKDF of the
 * paper (tau0 = HMAC(key, input), tau_i = HMAC(tau0, tau_{i-1} || i)).
 * mac1 = MAC(HASH("mac1----" || receiver's public key), msg up to mac1);
 * mac2 = MAC(cookie, msg up to mac2). The replay filter is RFC 6479's
 * ring of 64-bit blocks (as wireguard-go's replay.go), 2048 bits in all. */
#ifndef WR_PROTO_WIREGUARD_H
#define WR_PROTO_WIREGUARD_H
#include <stddef.h>
#include <stdint.h>

#define WR_WG_KEY_LEN 32
#define WR_WG_HASH_LEN 32
#define WR_WG_MAC_LEN 16
#define WR_WG_TAG_LEN 16
#define WR_WG_COOKIE_LEN 16
#define WR_WG_COOKIE_NONCE_LEN 24
#define WR_WG_TAI64N_LEN 12

enum wr_wg_msg_type {
  WR_WG_MSG_INITIATION = 1,
  WR_WG_MSG_RESPONSE = 2,
  WR_WG_MSG_COOKIE = 3,
  WR_WG_MSG_DATA = 4
};

#define WR_WG_INITIATION_LEN 148
#define WR_WG_RESPONSE_LEN 92
#define WR_WG_COOKIE_REPLY_LEN 64
#define WR_WG_DATA_HEADER_LEN 16
#define WR_WG_DATA_MIN_LEN (WR_WG_DATA_HEADER_LEN + WR_WG_TAG_LEN)
/* Offsets of mac1 and mac2 in the two handshake messages. */
#define WR_WG_INITIATION_MAC1 116
#define WR_WG_RESPONSE_MAC1 60

typedef struct wr_wg_initiation {
  uint32_t sender;
  uint8_t ephemeral[32];
  uint8_t enc_static[32 + WR_WG_TAG_LEN];
  uint8_t enc_timestamp[WR_WG_TAI64N_LEN + WR_WG_TAG_LEN];
  uint8_t mac1[WR_WG_MAC_LEN], mac2[WR_WG_MAC_LEN];
} wr_wg_initiation;

typedef struct wr_wg_response {
  uint32_t sender, receiver;
  uint8_t ephemeral[32];
  uint8_t enc_empty[WR_WG_TAG_LEN];
  uint8_t mac1[WR_WG_MAC_LEN], mac2[WR_WG_MAC_LEN];
} wr_wg_response;

typedef struct wr_wg_cookie_reply {
  uint32_t receiver;
  uint8_t nonce[WR_WG_COOKIE_NONCE_LEN];
  uint8_t enc_cookie[WR_WG_COOKIE_LEN + WR_WG_TAG_LEN];
} wr_wg_cookie_reply;

/* A transport data header; |payload| points into the parsed buffer (the
 * ciphertext with its tag, |payload_len| >= 16). */
typedef struct wr_wg_data {
  uint32_t receiver;
  uint64_t counter;
  const uint8_t *payload;
  size_t payload_len;
} wr_wg_data;

/* The message type of |msg|, or 0 when it is too short or not one of the
 * four (then it is junk). Checks nothing else. */
int wr_wg_msg_type(const uint8_t *msg, size_t len);

/* The sender index of a well-formed initiation or response (its type's
 * size, reserved bytes zero): WR_OK, or WR_ERR_PROTO for anything else,
 * exactly when its parser below would refuse it. Pure; callable anywhere. */
int wr_wg_handshake_sender(const uint8_t *msg, size_t len, uint32_t *sender);

/* Each returns WR_OK or WR_ERR_PROTO (wrong type, size or reserved bytes). */
int wr_wg_parse_initiation(const uint8_t *msg, size_t len, wr_wg_initiation *out);
int wr_wg_parse_response(const uint8_t *msg, size_t len, wr_wg_response *out);
int wr_wg_parse_cookie_reply(const uint8_t *msg, size_t len, wr_wg_cookie_reply *out);
int wr_wg_parse_data(const uint8_t *msg, size_t len, wr_wg_data *out);

/* Each writes exactly its message's size into |out| (macs as given). */
void wr_wg_build_initiation(const wr_wg_initiation *m, uint8_t out[WR_WG_INITIATION_LEN]);
void wr_wg_build_response(const wr_wg_response *m, uint8_t out[WR_WG_RESPONSE_LEN]);
void wr_wg_build_cookie_reply(const wr_wg_cookie_reply *m, uint8_t out[WR_WG_COOKIE_REPLY_LEN]);
/* The 16-byte transport header (type 4, receiver, counter). */
void wr_wg_build_data_header(uint32_t receiver, uint64_t counter,
                             uint8_t out[WR_WG_DATA_HEADER_LEN]);

/* ---- primitives ------------------------------------------------------------- */

/* HASH(a || b) (b may be NULL with blen 0). */
void wr_wg_hash(uint8_t out[WR_WG_HASH_LEN], const uint8_t *a, size_t alen, const uint8_t *b,
                size_t blen);
/* MAC(key, in): keyed BLAKE2s with a 16-byte output; |keylen| 16 or 32. */
void wr_wg_mac(uint8_t out[WR_WG_MAC_LEN], const uint8_t *key, size_t keylen, const uint8_t *in,
               size_t inlen);
/* HMAC-BLAKE2s(key, in), 32 bytes. */
void wr_wg_hmac(uint8_t out[WR_WG_HASH_LEN], const uint8_t key[WR_WG_HASH_LEN], const uint8_t *in,
                size_t inlen);
/* KDF1/2/3(key, in): writes |n| (1..3) 32-byte outputs; unused ones may be NULL. */
void wr_wg_kdf(int n, uint8_t *t1, uint8_t *t2, uint8_t *t3, const uint8_t key[WR_WG_HASH_LEN],
               const uint8_t *in, size_t inlen);

/* The 32-byte keys mac1 and the cookie reply use for a peer's |pub|:
 * HASH("mac1----" || pub) and HASH("cookie--" || pub). */
void wr_wg_mac1_key(uint8_t out[WR_WG_HASH_LEN], const uint8_t pub[WR_WG_KEY_LEN]);
void wr_wg_cookie_key(uint8_t out[WR_WG_HASH_LEN], const uint8_t pub[WR_WG_KEY_LEN]);

/* mac1 of the handshake message |msg| (148 or 92 bytes) under |mac1_key|,
 * written into place; mac2 likewise from |cookie| (NULL: zeros). */
void wr_wg_set_mac1(uint8_t *msg, size_t len, const uint8_t mac1_key[WR_WG_HASH_LEN]);
void wr_wg_set_mac2(uint8_t *msg, size_t len, const uint8_t *cookie);
/* 1 when the message's mac1 / mac2 is right (constant time). */
int wr_wg_check_mac1(const uint8_t *msg, size_t len, const uint8_t mac1_key[WR_WG_HASH_LEN]);
int wr_wg_check_mac2(const uint8_t *msg, size_t len, const uint8_t cookie[WR_WG_COOKIE_LEN]);

/* TAI64N of |unix_ns|: 8 bytes big-endian seconds + 2^62, 4 bytes
 * big-endian nanoseconds, rounded down to 2^24 ns as wireguard-go does (so
 * the value leaks no fine timing). */
void wr_wg_tai64n(uint8_t out[WR_WG_TAI64N_LEN], uint64_t unix_ns);

/* ---- replay filter ------------------------------------------------------------ */

#define WR_WG_REPLAY_BLOCKS 32 /* 32 x 64 bits = 2048 */
#define WR_WG_REPLAY_WINDOW ((WR_WG_REPLAY_BLOCKS - 1) * 64)

typedef struct wr_wg_replay {
  uint64_t last;
  uint64_t ring[WR_WG_REPLAY_BLOCKS];
} wr_wg_replay;

void wr_wg_replay_init(wr_wg_replay *r);
/* 1 when |counter| is new, is below |limit| and not older than the
 * window, and marks it seen; 0 otherwise. Call only after the packet
 * authenticated. */
int wr_wg_replay_check(wr_wg_replay *r, uint64_t counter, uint64_t limit);

#endif
