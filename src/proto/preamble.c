#include "proto/preamble.h"

#include <string.h>

#include "lib/err.h"

const uint8_t wr_preamble_data_sig[WR_PREAMBLE_SIG_LEN] = {0x0A, 0x36, 0xCD, 0x12, 0xA1, 0x3E};
const uint8_t wr_preamble_rpc_sig[WR_PREAMBLE_SIG_LEN] = {0x52, 0xBB, 0x82, 0x5C, 0xDB, 0x65};
const uint8_t wr_preamble_version[2] = {'0', '1'};

/* True if the first min(len, 6) bytes agree with |sig|: the stream may still
 * turn out to carry that signature. */
static int prefix_matches(const uint8_t *p, size_t len, const uint8_t *sig) {
  size_t n = len < WR_PREAMBLE_SIG_LEN ? len : WR_PREAMBLE_SIG_LEN;
  return n == 0 || memcmp(p, sig, n) == 0;
}

int wr_preamble_classify(const uint8_t *p, size_t len, size_t *consumed,
                         uint8_t version[2]) {
  *consumed = 0;
  /* The two signatures differ in their first byte, so at most one matches. */
  if (prefix_matches(p, len, wr_preamble_data_sig)) {
    if (len < WR_PREAMBLE_DATA_LEN) return WR_AGAIN;
    if (version) memcpy(version, p + WR_PREAMBLE_SIG_LEN, 2);
    *consumed = WR_PREAMBLE_DATA_LEN;
    return WR_PREAMBLE_DATA;
  }
  if (prefix_matches(p, len, wr_preamble_rpc_sig)) {
    if (len < WR_PREAMBLE_RPC_LEN) return WR_AGAIN;
    *consumed = WR_PREAMBLE_RPC_LEN;
    return WR_PREAMBLE_RPC;
  }
  return WR_ERR_PROTO;
}

int wr_preamble_write(enum wr_preamble_kind kind, uint8_t *out, size_t cap) {
  switch (kind) {
  case WR_PREAMBLE_DATA:
    if (cap < WR_PREAMBLE_DATA_LEN) return WR_ERR_LIMIT;
    memcpy(out, wr_preamble_data_sig, WR_PREAMBLE_SIG_LEN);
    memcpy(out + WR_PREAMBLE_SIG_LEN, wr_preamble_version, 2);
    return WR_PREAMBLE_DATA_LEN;
  case WR_PREAMBLE_RPC:
    if (cap < WR_PREAMBLE_RPC_LEN) return WR_ERR_LIMIT;
    memcpy(out, wr_preamble_rpc_sig, WR_PREAMBLE_SIG_LEN);
    return WR_PREAMBLE_RPC_LEN;
  }
  return WR_ERR_INVAL;
}
