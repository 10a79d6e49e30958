/* WireGuard messages and primitives; see wireguard.h. */
#include "proto/wireguard.h"

#include <string.h>

#include <blake2.h>
#include <sodium.h>

#include "lib/bytes.h"
#include "lib/err.h"

int wr_wg_msg_type(const uint8_t *msg, size_t len) {
  if (len < 4) return 0;
  if (msg[0] < WR_WG_MSG_INITIATION || msg[0] > WR_WG_MSG_DATA) return 0;
  return msg[0];
}

/* The type byte and three zero bytes. */
static int header_ok(const uint8_t *msg, size_t len, int type, size_t want, int exact) {
  if (exact ? len != want : len < want) return 0;
  return msg[0] == type && msg[1] == 0 && msg[2] == 0 && msg[3] == 0;
}

int wr_wg_handshake_sender(const uint8_t *msg, size_t len, uint32_t *sender) {
  if (!header_ok(msg, len, WR_WG_MSG_INITIATION, WR_WG_INITIATION_LEN, 1) &&
      !header_ok(msg, len, WR_WG_MSG_RESPONSE, WR_WG_RESPONSE_LEN, 1))
    return WR_ERR_PROTO;
  *sender = wr_get_le32(msg + 4); /* both carry it first */
  return WR_OK;
}

int wr_wg_parse_initiation(const uint8_t *msg, size_t len, wr_wg_initiation *out) {
  if (!header_ok(msg, len, WR_WG_MSG_INITIATION, WR_WG_INITIATION_LEN, 1)) return WR_ERR_PROTO;
  out->sender = wr_get_le32(msg + 4);
  memcpy(out->ephemeral, msg + 8, 32);
  memcpy(out->enc_static, msg + 40, sizeof(out->enc_static));
  memcpy(out->enc_timestamp, msg + 88, sizeof(out->enc_timestamp));
  memcpy(out->mac1, msg + 116, WR_WG_MAC_LEN);
  memcpy(out->mac2, msg + 132, WR_WG_MAC_LEN);
  return WR_OK;
}

int wr_wg_parse_response(const uint8_t *msg, size_t len, wr_wg_response *out) {
  if (!header_ok(msg, len, WR_WG_MSG_RESPONSE, WR_WG_RESPONSE_LEN, 1)) return WR_ERR_PROTO;
  out->sender = wr_get_le32(msg + 4);
  out->receiver = wr_get_le32(msg + 8);
  memcpy(out->ephemeral, msg + 12, 32);
  memcpy(out->enc_empty, msg + 44, WR_WG_TAG_LEN);
  memcpy(out->mac1, msg + 60, WR_WG_MAC_LEN);
  memcpy(out->mac2, msg + 76, WR_WG_MAC_LEN);
  return WR_OK;
}

int wr_wg_parse_cookie_reply(const uint8_t *msg, size_t len, wr_wg_cookie_reply *out) {
  if (!header_ok(msg, len, WR_WG_MSG_COOKIE, WR_WG_COOKIE_REPLY_LEN, 1)) return WR_ERR_PROTO;
  out->receiver = wr_get_le32(msg + 4);
  memcpy(out->nonce, msg + 8, WR_WG_COOKIE_NONCE_LEN);
  memcpy(out->enc_cookie, msg + 32, sizeof(out->enc_cookie));
  return WR_OK;
}

int wr_wg_parse_data(const uint8_t *msg, size_t len, wr_wg_data *out) {
  if (!header_ok(msg, len, WR_WG_MSG_DATA, WR_WG_DATA_MIN_LEN, 0)) return WR_ERR_PROTO;
  out->receiver = wr_get_le32(msg + 4);
  out->counter = wr_get_le64(msg + 8);
  out->payload = msg + WR_WG_DATA_HEADER_LEN;
  out->payload_len = len - WR_WG_DATA_HEADER_LEN;
  return WR_OK;
}

static void put_header(uint8_t *out, int type) {
  out[0] = (uint8_t)type;
  out[1] = out[2] = out[3] = 0;
}

void wr_wg_build_initiation(const wr_wg_initiation *m, uint8_t out[WR_WG_INITIATION_LEN]) {
  put_header(out, WR_WG_MSG_INITIATION);
  wr_put_le32(out + 4, m->sender);
  memcpy(out + 8, m->ephemeral, 32);
  memcpy(out + 40, m->enc_static, sizeof(m->enc_static));
  memcpy(out + 88, m->enc_timestamp, sizeof(m->enc_timestamp));
  memcpy(out + 116, m->mac1, WR_WG_MAC_LEN);
  memcpy(out + 132, m->mac2, WR_WG_MAC_LEN);
}

void wr_wg_build_response(const wr_wg_response *m, uint8_t out[WR_WG_RESPONSE_LEN]) {
  put_header(out, WR_WG_MSG_RESPONSE);
  wr_put_le32(out + 4, m->sender);
  wr_put_le32(out + 8, m->receiver);
  memcpy(out + 12, m->ephemeral, 32);
  memcpy(out + 44, m->enc_empty, WR_WG_TAG_LEN);
  memcpy(out + 60, m->mac1, WR_WG_MAC_LEN);
  memcpy(out + 76, m->mac2, WR_WG_MAC_LEN);
}

void wr_wg_build_cookie_reply(const wr_wg_cookie_reply *m, uint8_t out[WR_WG_COOKIE_REPLY_LEN]) {
  put_header(out, WR_WG_MSG_COOKIE);
  wr_put_le32(out + 4, m->receiver);
  memcpy(out + 8, m->nonce, WR_WG_COOKIE_NONCE_LEN);
  memcpy(out + 32, m->enc_cookie, sizeof(m->enc_cookie));
}

void wr_wg_build_data_header(uint32_t receiver, uint64_t counter,
                             uint8_t out[WR_WG_DATA_HEADER_LEN]) {
  put_header(out, WR_WG_MSG_DATA);
  wr_put_le32(out + 4, receiver);
  wr_put_le64(out + 8, counter);
}

/* ---- primitives ------------------------------------------------------------- */

void wr_wg_hash(uint8_t out[WR_WG_HASH_LEN], const uint8_t *a, size_t alen, const uint8_t *b,
                size_t blen) {
  blake2s_state s;
  blake2s_init(&s, WR_WG_HASH_LEN);
  blake2s_update(&s, a, alen);
  if (blen) blake2s_update(&s, b, blen);
  blake2s_final(&s, out, WR_WG_HASH_LEN);
  sodium_memzero(&s, sizeof(s));
}

void wr_wg_mac(uint8_t out[WR_WG_MAC_LEN], const uint8_t *key, size_t keylen, const uint8_t *in,
               size_t inlen) {
  blake2s_state s;
  blake2s_init_key(&s, WR_WG_MAC_LEN, key, keylen);
  blake2s_update(&s, in, inlen);
  blake2s_final(&s, out, WR_WG_MAC_LEN);
  sodium_memzero(&s, sizeof(s));
}

/* RFC 2104 over BLAKE2s (block 64 bytes); the key is one hash long, so it
 * never needs hashing down. */
void wr_wg_hmac(uint8_t out[WR_WG_HASH_LEN], const uint8_t key[WR_WG_HASH_LEN], const uint8_t *in,
                size_t inlen) {
  uint8_t pad[BLAKE2S_BLOCKBYTES], inner[WR_WG_HASH_LEN];
  blake2s_state s;
  memset(pad, 0x36, sizeof(pad));
  for (int i = 0; i < WR_WG_HASH_LEN; i++) pad[i] ^= key[i];
  blake2s_init(&s, WR_WG_HASH_LEN);
  blake2s_update(&s, pad, sizeof(pad));
  blake2s_update(&s, in, inlen);
  blake2s_final(&s, inner, sizeof(inner));
  memset(pad, 0x5c, sizeof(pad));
  for (int i = 0; i < WR_WG_HASH_LEN; i++) pad[i] ^= key[i];
  blake2s_init(&s, WR_WG_HASH_LEN);
  blake2s_update(&s, pad, sizeof(pad));
  blake2s_update(&s, inner, sizeof(inner));
  blake2s_final(&s, out, WR_WG_HASH_LEN);
  sodium_memzero(pad, sizeof(pad));
  sodium_memzero(inner, sizeof(inner));
  sodium_memzero(&s, sizeof(s));
}

void wr_wg_kdf(int n, uint8_t *t1, uint8_t *t2, uint8_t *t3, const uint8_t key[WR_WG_HASH_LEN],
               const uint8_t *in, size_t inlen) {
  uint8_t t0[WR_WG_HASH_LEN], prev[WR_WG_HASH_LEN + 1];
  uint8_t *outs[3] = {t1, t2, t3};
  wr_wg_hmac(t0, key, in, inlen);
  size_t plen = 0;
  for (int i = 0; i < n && i < 3; i++) {
    prev[plen] = (uint8_t)(i + 1);
    uint8_t ti[WR_WG_HASH_LEN];
    wr_wg_hmac(ti, t0, prev, plen + 1);
    memcpy(prev, ti, WR_WG_HASH_LEN);
    plen = WR_WG_HASH_LEN;
    if (outs[i]) memcpy(outs[i], ti, WR_WG_HASH_LEN);
    sodium_memzero(ti, sizeof(ti));
  }
  sodium_memzero(t0, sizeof(t0));
  sodium_memzero(prev, sizeof(prev));
}

void wr_wg_mac1_key(uint8_t out[WR_WG_HASH_LEN], const uint8_t pub[WR_WG_KEY_LEN]) {
  wr_wg_hash(out, (const uint8_t *)"mac1----", 8, pub, WR_WG_KEY_LEN);
}

void wr_wg_cookie_key(uint8_t out[WR_WG_HASH_LEN], const uint8_t pub[WR_WG_KEY_LEN]) {
  wr_wg_hash(out, (const uint8_t *)"cookie--", 8, pub, WR_WG_KEY_LEN);
}

/* Where mac1 sits: the message's last 32 bytes hold mac1 and mac2. */
static size_t mac1_off(size_t len) { return len - 2 * WR_WG_MAC_LEN; }

void wr_wg_set_mac1(uint8_t *msg, size_t len, const uint8_t mac1_key[WR_WG_HASH_LEN]) {
  size_t off = mac1_off(len);
  wr_wg_mac(msg + off, mac1_key, WR_WG_HASH_LEN, msg, off);
}

void wr_wg_set_mac2(uint8_t *msg, size_t len, const uint8_t *cookie) {
  size_t off = len - WR_WG_MAC_LEN;
  if (!cookie)
    memset(msg + off, 0, WR_WG_MAC_LEN);
  else
    wr_wg_mac(msg + off, cookie, WR_WG_COOKIE_LEN, msg, off);
}

int wr_wg_check_mac1(const uint8_t *msg, size_t len, const uint8_t mac1_key[WR_WG_HASH_LEN]) {
  uint8_t want[WR_WG_MAC_LEN];
  size_t off = mac1_off(len);
  wr_wg_mac(want, mac1_key, WR_WG_HASH_LEN, msg, off);
  return sodium_memcmp(want, msg + off, WR_WG_MAC_LEN) == 0;
}

int wr_wg_check_mac2(const uint8_t *msg, size_t len, const uint8_t cookie[WR_WG_COOKIE_LEN]) {
  uint8_t want[WR_WG_MAC_LEN];
  size_t off = len - WR_WG_MAC_LEN;
  wr_wg_mac(want, cookie, WR_WG_COOKIE_LEN, msg, off);
  return sodium_memcmp(want, msg + off, WR_WG_MAC_LEN) == 0;
}

void wr_wg_tai64n(uint8_t out[WR_WG_TAI64N_LEN], uint64_t unix_ns) {
  uint64_t secs = unix_ns / 1000000000u + 0x4000000000000000ull;
  uint32_t nanos = (uint32_t)(unix_ns % 1000000000u) & ~((1u << 24) - 1);
  for (int i = 0; i < 8; i++) out[i] = (uint8_t)(secs >> (56 - 8 * i));
  for (int i = 0; i < 4; i++) out[8 + i] = (uint8_t)(nanos >> (24 - 8 * i));
}

/* ---- replay filter ------------------------------------------------------------ */

void wr_wg_replay_init(wr_wg_replay *r) { memset(r, 0, sizeof(*r)); }

int wr_wg_replay_check(wr_wg_replay *r, uint64_t counter, uint64_t limit) {
  if (counter >= limit) return 0;
  uint64_t block = counter >> 6;
  if (counter > r->last) {
    uint64_t cur = r->last >> 6, diff = block - cur;
    if (diff > WR_WG_REPLAY_BLOCKS) diff = WR_WG_REPLAY_BLOCKS;
    for (uint64_t i = cur + 1; i <= cur + diff; i++) r->ring[i & (WR_WG_REPLAY_BLOCKS - 1)] = 0;
    r->last = counter;
  } else if (r->last - counter > WR_WG_REPLAY_WINDOW) {
    return 0;
  }
  uint64_t *w = &r->ring[block & (WR_WG_REPLAY_BLOCKS - 1)];
  uint64_t bit = 1ull << (counter & 63);
  if (*w & bit) return 0;
  *w |= bit;
  return 1;
}
