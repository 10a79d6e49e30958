/* WireGuard devices: creation with address assignment from the account's
 * pools, lookup, revocation, policies and the running edge's statistics. */
#include "edge/store.h"
#include "edge/store_int.h"

#include "lib/err.h"

int wr_store_device_create(wr_store *s, const char *actor, const char *account_id,
                           const char *name, const char *public_key_b64,
                           const char *vnet_id_or_null, const char *allowed_or_null,
                           wr_device *out) {
  (void)actor, (void)account_id, (void)name, (void)public_key_b64, (void)vnet_id_or_null,
      (void)allowed_or_null, (void)out;
  return wr__store_serr(s, WR_ERR_UNSUPPORTED, "devices: not yet");
}
int wr_store_device_list(wr_store *s, const char *account_id, int include_revoked,
                         wr_device **out, size_t *n) {
  (void)account_id, (void)include_revoked;
  *out = NULL;
  *n = 0;
  return wr__store_serr(s, WR_ERR_UNSUPPORTED, "devices: not yet");
}
int wr_store_device_get(wr_store *s, const char *account_id, const char *id_or_name,
                        wr_device *out) {
  (void)account_id, (void)id_or_name, (void)out;
  return wr__store_serr(s, WR_ERR_UNSUPPORTED, "devices: not yet");
}
int wr_store_device_by_key(wr_store *s, const char *public_key_b64, wr_device *out) {
  (void)public_key_b64, (void)out;
  return wr__store_serr(s, WR_ERR_UNSUPPORTED, "devices: not yet");
}
int wr_store_device_revoke(wr_store *s, const char *actor, const char *account_id,
                           const char *id_or_name) {
  (void)actor, (void)account_id, (void)id_or_name;
  return wr__store_serr(s, WR_ERR_UNSUPPORTED, "devices: not yet");
}
int wr_store_device_set_allowed(wr_store *s, const char *actor, const char *account_id,
                                const char *id_or_name, const char *allowed) {
  (void)actor, (void)account_id, (void)id_or_name, (void)allowed;
  return wr__store_serr(s, WR_ERR_UNSUPPORTED, "devices: not yet");
}
int wr_store_device_policy_canon(const char *allowed, char *out, size_t size, char *err,
                                 size_t errlen) {
  (void)allowed, (void)out, (void)size, (void)err, (void)errlen;
  return WR_ERR_UNSUPPORTED;
}
int wr_store_device_seen(wr_store *s, const char *id, int64_t last_handshake, uint64_t rx,
                         uint64_t tx) {
  (void)id, (void)last_handshake, (void)rx, (void)tx;
  return wr__store_serr(s, WR_ERR_UNSUPPORTED, "devices: not yet");
}
