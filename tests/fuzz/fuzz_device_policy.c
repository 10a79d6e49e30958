/* Fuzzes the text a device's owner controls (src/edge/device_policy.c,
 * store_devices.c policy canonicalisation, device_config.c endpoints,
 * wg_key.c key text).
 *
 * Input: NUL-free text (cut at the first NUL). Checked:
 *   - wr_device_policy_parse never allows when invalid, and allows
 *     everything exactly when empty;
 *   - wr_store_device_policy_canon: on success the canonical text (what
 *     the store keeps) parses as a valid policy, canonicalises to itself,
 *     and allows the same networks (each of its entries) as the input did
 *     when the input itself parsed (raw input may repeat entries beyond
 *     WR_DEVICE_POLICY_MAX);
 *   - wr_device_check_endpoint and wr_wg_key_from_b64 answer WR_OK or
 *     their one error code; an accepted key round-trips through base64. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/device_config.h"
#include "edge/device_policy.h"
#include "edge/store.h"
#include "edge/wg_key.h"
#include "lib/err.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *in = malloc(size + 1), canon[WR_STORE_DEVICE_ALLOWED_MAX], again[WR_STORE_DEVICE_ALLOWED_MAX];
  char err[256], b64[WR_WG_KEY_B64_LEN + 1];
  uint8_t key[WR_WG_KEY_LEN];
  static wr_device_policy p, q;
  CHECK(in);
  memcpy(in, data, size);
  in[size] = '\0';

  wr_device_policy_parse(in, &p);
  CHECK(!(p.invalid && p.all));
  if (p.invalid) CHECK(p.n == 0);
  int rv = wr_store_device_policy_canon(in, canon, sizeof(canon), err, sizeof(err));
  CHECK(rv == WR_OK || rv == WR_ERR_INVAL || rv == WR_ERR_LIMIT);
  if (rv == WR_OK) {
    wr_device_policy_parse(canon, &q);
    CHECK(!q.invalid);
    if (!p.invalid) CHECK(q.all == p.all);
    CHECK(wr_store_device_policy_canon(canon, again, sizeof(again), err, sizeof(err)) == WR_OK);
    CHECK(strcmp(canon, again) == 0);
    for (size_t i = 0; i < q.n && !p.invalid; i++) CHECK(wr_device_policy_allows(&p, &q.nets[i]));
    for (size_t i = 0; i < p.n; i++) CHECK(wr_device_policy_allows(&q, &p.nets[i]));
  }

  rv = wr_device_check_endpoint(in, err, sizeof(err));
  CHECK(rv == WR_OK || rv == WR_ERR_INVAL);
  rv = wr_wg_key_from_b64(in, key);
  CHECK(rv == WR_OK || rv == WR_ERR_PROTO);
  if (rv == WR_OK) {
    wr_wg_key_to_b64(key, b64);
    CHECK(strcmp(b64, in) == 0);
  }
  free(in);
  return 0;
}
