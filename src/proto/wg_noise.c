/* The Noise IKpsk2 handshake of WireGuard; see wg_noise.h. */
#include "proto/wg_noise.h"

#include <string.h>

#include <sodium.h>

#include "lib/err.h"

static const char CONSTRUCTION[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
static const char IDENTIFIER[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";

/* HASH(CONSTRUCTION) and HASH(that || IDENTIFIER): the same for everyone. */
static void initial(uint8_t ck[WR_WG_HASH_LEN], uint8_t h[WR_WG_HASH_LEN]) {
  wr_wg_hash(ck, (const uint8_t *)CONSTRUCTION, sizeof(CONSTRUCTION) - 1, NULL, 0);
  wr_wg_hash(h, ck, WR_WG_HASH_LEN, (const uint8_t *)IDENTIFIER, sizeof(IDENTIFIER) - 1);
}

/* h = HASH(h || data) */
static void mix_hash(uint8_t h[WR_WG_HASH_LEN], const uint8_t *data, size_t len) {
  uint8_t t[WR_WG_HASH_LEN];
  wr_wg_hash(t, h, WR_WG_HASH_LEN, data, len);
  memcpy(h, t, WR_WG_HASH_LEN);
}

/* ck = KDF1(ck, data) */
static void mix_key(uint8_t ck[WR_WG_HASH_LEN], const uint8_t *data, size_t len) {
  wr_wg_kdf(1, ck, NULL, NULL, ck, data, len);
}

/* AEAD with nonce 0 and |h| as associated data: the handshake's only use. */
static void seal0(uint8_t *out, const uint8_t key[32], const uint8_t *in, size_t inlen,
                  const uint8_t h[WR_WG_HASH_LEN]) {
  uint8_t nonce[12] = {0};
  crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, in, inlen, h, WR_WG_HASH_LEN, NULL, nonce,
                                            key);
}

static int open0(uint8_t *out, const uint8_t key[32], const uint8_t *in, size_t inlen,
                 const uint8_t h[WR_WG_HASH_LEN]) {
  uint8_t nonce[12] = {0};
  return crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, in, inlen, h, WR_WG_HASH_LEN,
                                                   nonce, key) == 0
             ? WR_OK
             : WR_ERR_CRYPTO;
}

int wr_wg_noise_public(uint8_t pub[WR_WG_KEY_LEN], const uint8_t priv[WR_WG_KEY_LEN]) {
  return crypto_scalarmult_base(pub, priv) == 0 ? WR_OK : WR_ERR_CRYPTO;
}

void wr_wg_noise_generate(uint8_t priv[WR_WG_KEY_LEN]) {
  randombytes_buf(priv, WR_WG_KEY_LEN);
  priv[0] &= 248;
  priv[31] = (priv[31] & 127) | 64;
}

int wr_wg_noise_dh(uint8_t out[WR_WG_KEY_LEN], const uint8_t priv[WR_WG_KEY_LEN],
                   const uint8_t pub[WR_WG_KEY_LEN]) {
  /* libsodium refuses (-1) a result of all zeros: a low-order point. */
  return crypto_scalarmult(out, priv, pub) == 0 ? WR_OK : WR_ERR_CRYPTO;
}

void wr_wg_noise_wipe(wr_wg_handshake *hs) { sodium_memzero(hs, sizeof(*hs)); }

/* The common end of the initiation steps: a failed step leaves no half
 * handshake behind; the step's key material is wiped either way. */
static int step_end(wr_wg_handshake *hs, int rv, uint8_t k[WR_WG_KEY_LEN],
                    uint8_t dh[WR_WG_KEY_LEN]) {
  if (rv != WR_OK) wr_wg_noise_wipe(hs);
  sodium_memzero(k, WR_WG_KEY_LEN);
  sodium_memzero(dh, WR_WG_KEY_LEN);
  return rv;
}

int wr_wg_noise_create_initiation(wr_wg_handshake *hs, const uint8_t s_pub[WR_WG_KEY_LEN],
                                  const uint8_t r_pub[WR_WG_KEY_LEN],
                                  const uint8_t ss[WR_WG_KEY_LEN], uint32_t local_index,
                                  const uint8_t timestamp[WR_WG_TAI64N_LEN],
                                  wr_wg_initiation *msg) {
  uint8_t k[WR_WG_KEY_LEN], dh[WR_WG_KEY_LEN];
  int rv = WR_ERR_CRYPTO;
  wr_wg_noise_wipe(hs);
  initial(hs->ck, hs->hash);
  mix_hash(hs->hash, r_pub, WR_WG_KEY_LEN);
  wr_wg_noise_generate(hs->e_priv);
  if (wr_wg_noise_public(hs->e_pub, hs->e_priv) != WR_OK) goto out;
  memset(msg, 0, sizeof(*msg));
  msg->sender = local_index;
  memcpy(msg->ephemeral, hs->e_pub, WR_WG_KEY_LEN);
  mix_hash(hs->hash, msg->ephemeral, WR_WG_KEY_LEN);
  mix_key(hs->ck, msg->ephemeral, WR_WG_KEY_LEN);
  if (wr_wg_noise_dh(dh, hs->e_priv, r_pub) != WR_OK) goto out;
  wr_wg_kdf(2, hs->ck, k, NULL, hs->ck, dh, WR_WG_KEY_LEN);
  seal0(msg->enc_static, k, s_pub, WR_WG_KEY_LEN, hs->hash);
  mix_hash(hs->hash, msg->enc_static, sizeof(msg->enc_static));
  wr_wg_kdf(2, hs->ck, k, NULL, hs->ck, ss, WR_WG_KEY_LEN);
  seal0(msg->enc_timestamp, k, timestamp, WR_WG_TAI64N_LEN, hs->hash);
  mix_hash(hs->hash, msg->enc_timestamp, sizeof(msg->enc_timestamp));
  memcpy(hs->remote_static, r_pub, WR_WG_KEY_LEN);
  hs->local_index = local_index;
  hs->state = WR_WG_HS_INITIATION_SENT;
  rv = WR_OK;
out:
  return step_end(hs, rv, k, dh);
}

int wr_wg_noise_consume_initiation_static(wr_wg_handshake *hs, const uint8_t s_priv[WR_WG_KEY_LEN],
                                          const uint8_t s_pub[WR_WG_KEY_LEN],
                                          const wr_wg_initiation *msg) {
  uint8_t k[WR_WG_KEY_LEN], dh[WR_WG_KEY_LEN];
  int rv = WR_ERR_CRYPTO;
  wr_wg_noise_wipe(hs);
  initial(hs->ck, hs->hash);
  mix_hash(hs->hash, s_pub, WR_WG_KEY_LEN);
  mix_hash(hs->hash, msg->ephemeral, WR_WG_KEY_LEN);
  mix_key(hs->ck, msg->ephemeral, WR_WG_KEY_LEN);
  if (wr_wg_noise_dh(dh, s_priv, msg->ephemeral) != WR_OK) goto out;
  wr_wg_kdf(2, hs->ck, k, NULL, hs->ck, dh, WR_WG_KEY_LEN);
  if (open0(hs->remote_static, k, msg->enc_static, sizeof(msg->enc_static), hs->hash) != WR_OK)
    goto out;
  mix_hash(hs->hash, msg->enc_static, sizeof(msg->enc_static));
  memcpy(hs->remote_e, msg->ephemeral, WR_WG_KEY_LEN);
  hs->remote_index = msg->sender;
  rv = WR_OK;
out:
  return step_end(hs, rv, k, dh);
}

int wr_wg_noise_consume_initiation_finish(wr_wg_handshake *hs, const uint8_t ss[WR_WG_KEY_LEN],
                                          const wr_wg_initiation *msg) {
  uint8_t k[WR_WG_KEY_LEN];
  int rv = WR_ERR_CRYPTO;
  wr_wg_kdf(2, hs->ck, k, NULL, hs->ck, ss, WR_WG_KEY_LEN);
  if (open0(hs->timestamp, k, msg->enc_timestamp, sizeof(msg->enc_timestamp), hs->hash) == WR_OK) {
    mix_hash(hs->hash, msg->enc_timestamp, sizeof(msg->enc_timestamp));
    hs->state = WR_WG_HS_INITIATION_READ;
    rv = WR_OK;
  } else {
    wr_wg_noise_wipe(hs);
  }
  sodium_memzero(k, sizeof(k));
  return rv;
}

/* The end both sides share: the psk step and the transport keys. */
static void finish_keys(wr_wg_handshake *hs, const uint8_t *psk, uint8_t k[WR_WG_KEY_LEN]) {
  static const uint8_t zero[WR_WG_KEY_LEN];
  uint8_t t[WR_WG_HASH_LEN];
  wr_wg_kdf(3, hs->ck, t, k, hs->ck, psk ? psk : zero, WR_WG_KEY_LEN);
  mix_hash(hs->hash, t, sizeof(t));
  sodium_memzero(t, sizeof(t));
}

static void derive(const wr_wg_handshake *hs, wr_wg_session_keys *keys, int initiator) {
  uint8_t t1[WR_WG_KEY_LEN], t2[WR_WG_KEY_LEN];
  wr_wg_kdf(2, t1, t2, NULL, hs->ck, NULL, 0);
  memcpy(initiator ? keys->send : keys->recv, t1, WR_WG_KEY_LEN);
  memcpy(initiator ? keys->recv : keys->send, t2, WR_WG_KEY_LEN);
  keys->initiator = initiator;
  sodium_memzero(t1, sizeof(t1));
  sodium_memzero(t2, sizeof(t2));
}

int wr_wg_noise_create_response(wr_wg_handshake *hs, const uint8_t *psk, uint32_t local_index,
                                wr_wg_response *msg, wr_wg_session_keys *keys) {
  uint8_t e[WR_WG_KEY_LEN];
  wr_wg_noise_generate(e);
  int rv = wr_wg_noise_create_response_with(hs, psk, local_index, e, msg, keys);
  sodium_memzero(e, sizeof(e));
  return rv;
}

int wr_wg_noise_create_response_with(wr_wg_handshake *hs, const uint8_t *psk,
                                     uint32_t local_index, const uint8_t e_priv[WR_WG_KEY_LEN],
                                     wr_wg_response *msg, wr_wg_session_keys *keys) {
  uint8_t k[WR_WG_KEY_LEN], dh[WR_WG_KEY_LEN];
  int rv = WR_ERR_CRYPTO;
  if (hs->state != WR_WG_HS_INITIATION_READ) goto out;
  memset(msg, 0, sizeof(*msg));
  msg->sender = local_index;
  msg->receiver = hs->remote_index;
  memcpy(hs->e_priv, e_priv, WR_WG_KEY_LEN);
  if (wr_wg_noise_public(hs->e_pub, hs->e_priv) != WR_OK) goto out;
  memcpy(msg->ephemeral, hs->e_pub, WR_WG_KEY_LEN);
  mix_hash(hs->hash, msg->ephemeral, WR_WG_KEY_LEN);
  mix_key(hs->ck, msg->ephemeral, WR_WG_KEY_LEN);
  if (wr_wg_noise_dh(dh, hs->e_priv, hs->remote_e) != WR_OK) goto out;
  mix_key(hs->ck, dh, WR_WG_KEY_LEN);
  if (wr_wg_noise_dh(dh, hs->e_priv, hs->remote_static) != WR_OK) goto out;
  mix_key(hs->ck, dh, WR_WG_KEY_LEN);
  finish_keys(hs, psk, k);
  seal0(msg->enc_empty, k, NULL, 0, hs->hash);
  mix_hash(hs->hash, msg->enc_empty, sizeof(msg->enc_empty));
  derive(hs, keys, 0);
  keys->local_index = local_index;
  keys->remote_index = hs->remote_index;
  rv = WR_OK;
out:
  wr_wg_noise_wipe(hs);
  sodium_memzero(k, sizeof(k));
  sodium_memzero(dh, sizeof(dh));
  return rv;
}

int wr_wg_noise_consume_response(wr_wg_handshake *hs, const uint8_t s_priv[WR_WG_KEY_LEN],
                                 const uint8_t *psk, const wr_wg_response *msg,
                                 wr_wg_session_keys *keys) {
  uint8_t k[WR_WG_KEY_LEN], dh[WR_WG_KEY_LEN], empty[1];
  wr_wg_handshake t = *hs; /* the state survives a forged response */
  int rv = WR_ERR_CRYPTO;
  if (t.state != WR_WG_HS_INITIATION_SENT || msg->receiver != t.local_index) goto out;
  mix_hash(t.hash, msg->ephemeral, WR_WG_KEY_LEN);
  mix_key(t.ck, msg->ephemeral, WR_WG_KEY_LEN);
  if (wr_wg_noise_dh(dh, t.e_priv, msg->ephemeral) != WR_OK) goto out;
  mix_key(t.ck, dh, WR_WG_KEY_LEN);
  if (wr_wg_noise_dh(dh, s_priv, msg->ephemeral) != WR_OK) goto out;
  mix_key(t.ck, dh, WR_WG_KEY_LEN);
  finish_keys(&t, psk, k);
  if (open0(empty, k, msg->enc_empty, sizeof(msg->enc_empty), t.hash) != WR_OK) goto out;
  mix_hash(t.hash, msg->enc_empty, sizeof(msg->enc_empty));
  derive(&t, keys, 1);
  keys->local_index = t.local_index;
  keys->remote_index = msg->sender;
  wr_wg_noise_wipe(hs);
  rv = WR_OK;
out:
  wr_wg_noise_wipe(&t);
  sodium_memzero(k, sizeof(k));
  sodium_memzero(dh, sizeof(dh));
  return rv;
}

static void nonce_of(uint8_t nonce[12], uint64_t counter) {
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(counter >> (8 * i));
}

void wr_wg_noise_seal(uint8_t *out, const uint8_t key[WR_WG_KEY_LEN], uint64_t counter,
                      const uint8_t *in, size_t inlen) {
  uint8_t nonce[12];
  nonce_of(nonce, counter);
  crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, in, inlen, NULL, 0, NULL, nonce, key);
}

int wr_wg_noise_open(uint8_t *out, const uint8_t key[WR_WG_KEY_LEN], uint64_t counter,
                     const uint8_t *in, size_t inlen) {
  uint8_t nonce[12];
  if (inlen < WR_WG_TAG_LEN) return WR_ERR_CRYPTO;
  nonce_of(nonce, counter);
  return crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, in, inlen, NULL, 0, nonce,
                                                   key) == 0
             ? WR_OK
             : WR_ERR_CRYPTO;
}
