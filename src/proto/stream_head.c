/* Preamble + ConnectResponse at the start of a data stream (stream_head.h). */
#include "proto/stream_head.h"

#include "lib/err.h"
#include "proto/preamble.h"

int wr_stream_head_decode(const uint8_t *buf, size_t len, wr_connect_response *cr, size_t *used,
                          int *bad_preamble) {
  size_t pc = 0, n = 0;
  *used = 0;
  *bad_preamble = 0;
  /* The preamble is judged whole (8 bytes), never on a prefix: a connector
   * that sends its first bytes in pieces is not wrong yet. */
  if (len < WR_PREAMBLE_DATA_LEN) return WR_AGAIN;
  if (wr_preamble_classify(buf, WR_PREAMBLE_DATA_LEN, &pc, NULL) != WR_PREAMBLE_DATA) {
    *bad_preamble = 1;
    return WR_ERR_PROTO;
  }
  int rv = wr_connect_response_decode_alloc(buf + WR_PREAMBLE_DATA_LEN, len - WR_PREAMBLE_DATA_LEN,
                                            NULL, NULL, 0, cr, &n);
  if (rv != WR_OK) return rv;
  *used = WR_PREAMBLE_DATA_LEN + n;
  return WR_OK;
}
