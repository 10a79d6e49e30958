/* The edge's management token key: the HS256 secret that signs the tokens
 * POST .../cfd_tunnel/{id}/management hands out (proto/mgmt_token.h) and
 * that the visitor front checks before it lets a request for the
 * management hostname into a tunnel. It lives in DATA_DIR/management.key
 * (64 hex digits, mode 0600), created the first time it is needed, so
 * tokens survive a restart and every edge sharing the data directory
 * accepts them. Deleting the file revokes every token once the edges
 * restart. */
#ifndef WR_EDGE_MGMT_KEY_H
#define WR_EDGE_MGMT_KEY_H
#include <stddef.h>
#include <stdint.h>

#define WR_MGMT_KEY_FILE "management.key"
#define WR_MGMT_KEY_LEN 32
/* How long a management token is valid for opening a session. */
#define WR_MGMT_TOKEN_TTL_S 300

/* Loads DATA_DIR/management.key, creating it if missing. Returns WR_OK,
 * WR_ERR_IO (|err| says why), WR_ERR_PROTO (not 64 hex digits) or
 * WR_ERR_CRYPTO (no randomness). Blocking file I/O: call at start-up or
 * once, not per request. */
int wr_mgmt_key_load_or_create(const char *data_dir, uint8_t key[WR_MGMT_KEY_LEN], char *err,
                               size_t errlen);

#endif
