/* The management token key; see mgmt_key.h. */
#include "edge/mgmt_key.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/log.h"
#include "lib/mem.h"

static int read_key(const char *path, uint8_t key[WR_MGMT_KEY_LEN], char *err, size_t errlen) {
  char *text = NULL;
  size_t len = 0;
  int rv = wr_file_read(path, 256, &text, &len);
  if (rv != WR_OK) {
    if (rv == WR_ERR_IO && errno == ENOENT) return WR_ERR_NOTFOUND;
    snprintf(err, errlen, "cannot read %s", path);
    return rv;
  }
  while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
  rv = len == 2 * WR_MGMT_KEY_LEN && wr_hex_decode(text, len, key, WR_MGMT_KEY_LEN) ==
                                         WR_MGMT_KEY_LEN
           ? WR_OK
           : WR_ERR_PROTO;
  if (rv != WR_OK) snprintf(err, errlen, "%s does not hold 64 hex digits", path);
  explicit_bzero(text, len);
  free(text);
  return rv;
}

int wr_mgmt_key_load_or_create(const char *data_dir, uint8_t key[WR_MGMT_KEY_LEN], char *err,
                               size_t errlen) {
  size_t plen = strlen(data_dir) + sizeof(WR_MGMT_KEY_FILE) + 2;
  char *path = wr_xmalloc(plen);
  char text[2 * WR_MGMT_KEY_LEN + 2];
  int rv;
  snprintf(path, plen, "%s/%s", data_dir, WR_MGMT_KEY_FILE);
  rv = read_key(path, key, err, errlen);
  if (rv == WR_ERR_NOTFOUND) {
    if (gnutls_rnd(GNUTLS_RND_KEY, key, WR_MGMT_KEY_LEN) != 0) {
      snprintf(err, errlen, "no randomness for the management key");
      rv = WR_ERR_CRYPTO;
      goto out;
    }
    wr_hex_encode(key, WR_MGMT_KEY_LEN, text);
    text[2 * WR_MGMT_KEY_LEN] = '\n';
    /* Exclusive: if another edge created it meanwhile, use that key. */
    rv = wr_file_write(path, text, 2 * WR_MGMT_KEY_LEN + 1, 0600, 1);
    explicit_bzero(text, sizeof(text));
    if (rv == WR_ERR_EXISTS) {
      rv = read_key(path, key, err, errlen);
    } else if (rv != WR_OK) {
      snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
      rv = WR_ERR_IO;
    } else {
      wr_info("created the edge's management token key %s", path);
    }
  }
out:
  if (rv != WR_OK) explicit_bzero(key, WR_MGMT_KEY_LEN);
  free(path);
  return rv;
}
