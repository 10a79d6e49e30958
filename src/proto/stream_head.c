/* Preamble + ConnectResponse at the start of a data stream (stream_head.h). */
#include "proto/stream_head.h"

#include <string.h>

#include "lib/err.h"
#include "proto/httpmeta.h"
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

static int idempotent_method(const char *m, size_t len) {
  static const char *const ok[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
    if (len == strlen(ok[i]) && memcmp(m, ok[i], len) == 0) return 1;
  return 0;
}

int wr_stream_request_idempotent(const uint8_t *buf, size_t len) {
  size_t pc = 0, n = 0;
  wr_connect_request q;
  if (len < WR_PREAMBLE_DATA_LEN ||
      wr_preamble_classify(buf, WR_PREAMBLE_DATA_LEN, &pc, NULL) != WR_PREAMBLE_DATA)
    return 0;
  if (wr_connect_request_decode_alloc(buf + WR_PREAMBLE_DATA_LEN, len - WR_PREAMBLE_DATA_LEN, NULL,
                                      NULL, 0, &q, &n) != WR_OK)
    return 0;
  /* The last HttpMethod wins, as the connector reads it; none is GET. */
  size_t mlen = 0;
  const char *m = wr_meta_find_last(q.meta, q.nmeta, WR_HTTPMETA_KEY_METHOD, &mlen);
  if (!m || !mlen) {
    m = "GET";
    mlen = 3;
  }
  int ok = (q.type == WR_CONNECT_HTTP || q.type == WR_CONNECT_WEBSOCKET) && idempotent_method(m, mlen);
  wr_connect_request_free(NULL, &q);
  return ok;
}
