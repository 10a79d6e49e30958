/* WireGuard's handshake: Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s with the
 * prologue "WireGuard v1 zx2c4 Jason@zx2c4.com" (the paper, section 5.4.2
 * to 5.4.5). Pure functions over a handshake state; the device
 * (proto/wg_device.h) owns peers, indices, macs and timers. X25519 and
 * ChaCha20-Poly1305 come from libsodium, BLAKE2s from libb2.
 *
 *   initiator                                      responder
 *   create_initiation(hs) ---- initiation ----> consume_initiation_static(hs)
 *                                               (look the peer up by the
 *                                                static key it returns)
 *                                               consume_initiation_finish(hs)
 *   consume_response(hs) <---- response ------ create_response(hs) -> keys
 *   -> keys
 *
 * The responder's first step costs one X25519 (ephemeral x static), so an
 * initiation for an unknown key costs no more; the second step uses the
 * peer's precomputed static-static secret. Every function returns WR_OK or
 * WR_ERR_CRYPTO (authentication failed, or a low-order point made a shared
 * secret of zeros) and leaves no secret behind on failure. */
#ifndef WR_PROTO_WG_NOISE_H
#define WR_PROTO_WG_NOISE_H
#include <stdint.h>

#include "proto/wireguard.h"

enum wr_wg_hs_state {
  WR_WG_HS_NONE = 0,          /* nothing in progress */
  WR_WG_HS_INITIATION_SENT,   /* initiator: waiting for the response */
  WR_WG_HS_INITIATION_READ    /* responder: consumed, response not yet made */
};

typedef struct wr_wg_handshake {
  enum wr_wg_hs_state state;
  uint8_t hash[WR_WG_HASH_LEN];
  uint8_t ck[WR_WG_HASH_LEN];
  uint8_t e_priv[WR_WG_KEY_LEN], e_pub[WR_WG_KEY_LEN]; /* our ephemeral */
  uint8_t remote_e[WR_WG_KEY_LEN];
  uint8_t remote_static[WR_WG_KEY_LEN];
  uint8_t timestamp[WR_WG_TAI64N_LEN];               /* responder: the initiation's */
  uint32_t local_index, remote_index;
} wr_wg_handshake;

/* Transport keys of one session. */
typedef struct wr_wg_session_keys {
  uint8_t send[WR_WG_KEY_LEN], recv[WR_WG_KEY_LEN];
  uint32_t local_index, remote_index;
  int initiator;
} wr_wg_session_keys;

/* X25519 public key of |priv|; WR_OK or WR_ERR_CRYPTO. */
int wr_wg_noise_public(uint8_t pub[WR_WG_KEY_LEN], const uint8_t priv[WR_WG_KEY_LEN]);
/* A new clamped private key (libsodium's randomness). */
void wr_wg_noise_generate(uint8_t priv[WR_WG_KEY_LEN]);
/* DH(priv, pub); WR_ERR_CRYPTO when the result is all zeros. */
int wr_wg_noise_dh(uint8_t out[WR_WG_KEY_LEN], const uint8_t priv[WR_WG_KEY_LEN],
                   const uint8_t pub[WR_WG_KEY_LEN]);

/* Initiator. |ss| = DH(s_priv, r_pub). Fills |msg| except mac1/mac2. */
int wr_wg_noise_create_initiation(wr_wg_handshake *hs, const uint8_t s_pub[WR_WG_KEY_LEN],
                                  const uint8_t r_pub[WR_WG_KEY_LEN],
                                  const uint8_t ss[WR_WG_KEY_LEN], uint32_t local_index,
                                  const uint8_t timestamp[WR_WG_TAI64N_LEN],
                                  wr_wg_initiation *msg);
/* Responder, step 1: decrypts the initiator's static key into
 * hs->remote_static. */
int wr_wg_noise_consume_initiation_static(wr_wg_handshake *hs, const uint8_t s_priv[WR_WG_KEY_LEN],
                                          const uint8_t s_pub[WR_WG_KEY_LEN],
                                          const wr_wg_initiation *msg);
/* Responder, step 2, with |ss| = DH(s_priv, remote_static): decrypts the
 * timestamp into hs->timestamp; state becomes INITIATION_READ. */
int wr_wg_noise_consume_initiation_finish(wr_wg_handshake *hs, const uint8_t ss[WR_WG_KEY_LEN],
                                          const wr_wg_initiation *msg);
/* Responder: the response (except macs) and the session's keys; |psk|
 * NULL: zeros. The handshake state is wiped. */
int wr_wg_noise_create_response(wr_wg_handshake *hs, const uint8_t *psk, uint32_t local_index,
                                wr_wg_response *msg, wr_wg_session_keys *keys);
/* The same with a given ephemeral private key: deterministic, for test
 * vectors (recorded exchanges replay byte for byte). */
int wr_wg_noise_create_response_with(wr_wg_handshake *hs, const uint8_t *psk,
                                     uint32_t local_index, const uint8_t e_priv[WR_WG_KEY_LEN],
                                     wr_wg_response *msg, wr_wg_session_keys *keys);
/* Initiator: checks the response (its receiver must be hs->local_index,
 * which the caller looked it up by) and derives the keys; wipes |hs|. */
int wr_wg_noise_consume_response(wr_wg_handshake *hs, const uint8_t s_priv[WR_WG_KEY_LEN],
                                 const uint8_t *psk, const wr_wg_response *msg,
                                 wr_wg_session_keys *keys);

void wr_wg_noise_wipe(wr_wg_handshake *hs);

/* Transport AEAD (ChaCha20-Poly1305, nonce = 4 zero bytes || counter LE). */
void wr_wg_noise_seal(uint8_t *out, const uint8_t key[WR_WG_KEY_LEN], uint64_t counter,
                      const uint8_t *in, size_t inlen);
/* WR_OK (|out| holds inlen - 16 bytes) or WR_ERR_CRYPTO. */
int wr_wg_noise_open(uint8_t *out, const uint8_t key[WR_WG_KEY_LEN], uint64_t counter,
                     const uint8_t *in, size_t inlen);

#endif
