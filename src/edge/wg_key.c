/* The edge's WireGuard key pair (DATA_DIR/wireguard.key) and key helpers. */
#include "edge/wg_key.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/log.h"
#include "lib/mem.h"

/* sodium_init is idempotent and thread-safe; it returns 1 when already done. */
static int sodium_ready(void) { return sodium_init() >= 0; }

void wr_wg_key_clamp(uint8_t k[WR_WG_KEY_LEN]) {
  k[0] &= 248;
  k[31] = (uint8_t)((k[31] & 127) | 64);
}

int wr_wg_key_public(const uint8_t priv[WR_WG_KEY_LEN], uint8_t pub[WR_WG_KEY_LEN]) {
  uint8_t k[WR_WG_KEY_LEN];
  int rc;
  if (!sodium_ready()) return WR_ERR_CRYPTO;
  memcpy(k, priv, sizeof(k));
  wr_wg_key_clamp(k); /* libsodium clamps too; doing it here makes the rule visible */
  rc = crypto_scalarmult_base(pub, k);
  sodium_memzero(k, sizeof(k));
  return rc == 0 ? WR_OK : WR_ERR_CRYPTO;
}

int wr_wg_key_generate(uint8_t priv[WR_WG_KEY_LEN], uint8_t pub[WR_WG_KEY_LEN]) {
  if (!sodium_ready()) return WR_ERR_CRYPTO;
  randombytes_buf(priv, WR_WG_KEY_LEN);
  wr_wg_key_clamp(priv);
  return wr_wg_key_public(priv, pub);
}

void wr_wg_key_to_b64(const uint8_t k[WR_WG_KEY_LEN], char out[WR_WG_KEY_B64_LEN + 1]) {
  wr_base64_encode(k, WR_WG_KEY_LEN, out, WR_WG_KEY_B64_LEN + 1, WR_BASE64_PAD);
}

int wr_wg_key_from_b64(const char *b64, uint8_t k[WR_WG_KEY_LEN]) {
  uint8_t tmp[WR_WG_KEY_LEN + 3];
  if (!b64 || strlen(b64) != WR_WG_KEY_B64_LEN || b64[WR_WG_KEY_B64_LEN - 1] != '=') return WR_ERR_PROTO;
  if (wr_base64_decode(b64, WR_WG_KEY_B64_LEN, tmp, sizeof(tmp), WR_BASE64_PAD) != WR_WG_KEY_LEN)
    return WR_ERR_PROTO;
  memcpy(k, tmp, WR_WG_KEY_LEN);
  sodium_memzero(tmp, sizeof(tmp));
  return WR_OK;
}

/* Reads the key file; WR_ERR_NOTFOUND when it does not exist. */
static int read_key(const char *path, uint8_t priv[WR_WG_KEY_LEN], char *err, size_t errlen) {
  char *text = NULL;
  size_t len = 0;
  struct stat st;
  int rv = wr_file_read(path, 256, &text, &len);
  if (rv == WR_ERR_IO && errno == ENOENT) return WR_ERR_NOTFOUND;
  if (rv != WR_OK) {
    snprintf(err, errlen, "cannot read %s: %s", path,
             rv == WR_ERR_LIMIT ? "too large for a key file" : strerror(errno));
    return WR_ERR_IO;
  }
  /* `wg genkey > file` ends the key with a newline; accept trailing space. */
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
    text[--len] = '\0';
  rv = wr_wg_key_from_b64(text, priv);
  sodium_memzero(text, len);
  free(text);
  if (rv != WR_OK) {
    snprintf(err, errlen, "%s does not hold a WireGuard private key (44 characters of base64, as "
                          "`wg genkey` writes); fix or remove it",
             path);
    return WR_ERR_PROTO;
  }
  if (stat(path, &st) == 0 && (st.st_mode & 077))
    wr_warn("%s is readable by group or others; chmod 600 it", path);
  return WR_OK;
}

int wr_wg_key_load_or_create(const char *data_dir, uint8_t priv[WR_WG_KEY_LEN],
                             uint8_t pub[WR_WG_KEY_LEN], char *err, size_t errlen) {
  size_t plen = strlen(data_dir) + sizeof(WR_WG_KEY_FILE) + 2;
  char *path = wr_xmalloc(plen);
  char text[WR_WG_KEY_B64_LEN + 2];
  int rv;
  snprintf(path, plen, "%s/%s", data_dir, WR_WG_KEY_FILE);
  rv = read_key(path, priv, err, errlen);
  if (rv == WR_ERR_NOTFOUND) {
    if ((rv = wr_wg_key_generate(priv, pub)) != WR_OK) {
      snprintf(err, errlen, "cannot generate a WireGuard key pair (libsodium failed)");
      goto out;
    }
    wr_wg_key_to_b64(priv, text);
    text[WR_WG_KEY_B64_LEN] = '\n';
    /* Exclusive: if another process created the file meanwhile, use its key. */
    rv = wr_file_write(path, text, WR_WG_KEY_B64_LEN + 1, 0600, 1);
    sodium_memzero(text, sizeof(text));
    if (rv == WR_ERR_EXISTS) rv = read_key(path, priv, err, errlen);
    else if (rv != WR_OK) {
      snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
      rv = WR_ERR_IO;
    } else {
      wr_info("created the edge's WireGuard key %s", path);
    }
  }
  if (rv == WR_OK && (rv = wr_wg_key_public(priv, pub)) != WR_OK)
    snprintf(err, errlen, "cannot derive the public key of %s", path);
out:
  if (rv != WR_OK) sodium_memzero(priv, WR_WG_KEY_LEN);
  free(path);
  return rv;
}
