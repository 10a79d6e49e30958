/* The edge's WireGuard key pair and WireGuard key helpers.
 *
 * The edge has one static X25519 key pair for every WireGuard device; the
 * private key lives in DATA_DIR/wireguard.key as `wg genkey` writes it (44
 * characters of standard base64 and a newline, mode 0600), so an operator
 * can inspect it with `wg pubkey < wireguard.key`. It is created the first
 * time something needs it (`warren-edge run` with a WireGuard listener or
 * `warren-edge device add`), atomically: a second process racing to create
 * it reads the first one's key instead of writing its own.
 *
 * Keys follow WireGuard: a private key is 32 random bytes clamped as
 * Curve25519 requires (wr_wg_key_clamp, what `wg genkey` does), the public
 * key is the X25519 base-point multiple of it (libsodium
 * crypto_scalarmult_base). Base64 is the standard alphabet with padding, 44
 * characters for 32 bytes (lib/encoding.h). */
#ifndef WR_EDGE_WG_KEY_H
#define WR_EDGE_WG_KEY_H

#include <stddef.h>
#include <stdint.h>

#define WR_WG_KEY_LEN 32
#define WR_WG_KEY_B64_LEN 44 /* = WR_STORE_WG_KEY_B64 */
#define WR_WG_KEY_FILE "wireguard.key"

/* Loads DATA_DIR/wireguard.key, creating it (a fresh key pair) if missing.
 * Returns WR_OK, or WR_ERR_IO (cannot read/write the directory or file),
 * WR_ERR_PROTO (the file holds no valid key; it is left untouched),
 * WR_ERR_CRYPTO (no randomness, or libsodium failed) with the reason in
 * |err|. A file readable by others is used but logged as a warning. */
int wr_wg_key_load_or_create(const char *data_dir, uint8_t priv[WR_WG_KEY_LEN],
                             uint8_t pub[WR_WG_KEY_LEN], char *err, size_t errlen);

/* Clamps a Curve25519 private key in place (clear bits 0-2 and 255, set 254). */
void wr_wg_key_clamp(uint8_t k[WR_WG_KEY_LEN]);
/* A new clamped private key from libsodium's randombytes and its public key.
 * WR_OK or WR_ERR_CRYPTO. */
int wr_wg_key_generate(uint8_t priv[WR_WG_KEY_LEN], uint8_t pub[WR_WG_KEY_LEN]);
/* The public key of |priv| (clamped first, as WireGuard does). WR_OK, or
 * WR_ERR_CRYPTO for a key whose public key would be the all-zero point. */
int wr_wg_key_public(const uint8_t priv[WR_WG_KEY_LEN], uint8_t pub[WR_WG_KEY_LEN]);

/* Writes the 44-character base64 form and a NUL to |out|. */
void wr_wg_key_to_b64(const uint8_t k[WR_WG_KEY_LEN], char out[WR_WG_KEY_B64_LEN + 1]);
/* Decodes exactly 44 characters of padded standard base64 of 32 bytes, as
 * `wg` accepts keys (no whitespace). WR_OK or WR_ERR_PROTO. */
int wr_wg_key_from_b64(const char *b64, uint8_t k[WR_WG_KEY_LEN]);

#endif
