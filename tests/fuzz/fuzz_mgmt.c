/* Fuzzes the management log stream codecs (src/proto/mgmt_event.c,
 * mgmt_token.c), all fed by the network: client events reach the
 * connector from whoever holds a token, server events reach `warren tail`
 * from the connector, tokens reach the edge and the connector from
 * visitors. The first byte picks the decoder. Decoded logs must format,
 * decoded filters must re-encode to the same filters, and a token must
 * never verify without the key. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/err.h"
#include "proto/mgmt_event.h"
#include "proto/mgmt_token.h"
#include "fuzz.h"

static int on_log(void *user, const wr_mgmt_log *l) {
  wr_buf b;
  (void)user;
  wr_buf_init(&b, 1u << 20, NULL);
  CHECK(wr_mgmt_log_format(l, 0, &b) == WR_OK);
  CHECK(wr_mgmt_log_format(l, 1, &b) == WR_OK);
  CHECK(wr_mgmt_logs_encode(l, 1, &b) == WR_OK);
  wr_buf_free(&b);
  return 0;
}

/* A client event must re-encode to the same type and filters. */
static void client_event(const char *in, size_t n) {
  int type;
  wr_mgmt_filters f, g;
  if (wr_mgmt_client_event_decode(in, n, &type, &f) == WR_OK) {
    wr_buf b;
    int t2;
    wr_buf_init(&b, 4096, NULL);
    CHECK(wr_mgmt_client_event_encode(type, &f, &b) == WR_OK);
    CHECK(wr_mgmt_client_event_decode((char *)b.data, b.len, &t2, &g) == WR_OK);
    CHECK(t2 == type);
    if (type == WR_MGMT_START_STREAMING) CHECK(g.level == f.level && g.events == f.events);
    wr_buf_free(&b);
  }
}

static void server_logs(const char *in, size_t n) { wr_mgmt_logs_decode(in, n, on_log, NULL); }

static void token(const char *in, size_t n) {
  static const uint8_t key[32] = {1, 2, 3};
  wr_mgmt_claims c;
  if (wr_mgmt_token_parse(in, n, &c) == WR_OK) CHECK(c.tunnel_id[0] && c.actor_id[0]);
  CHECK(wr_mgmt_token_verify(in, n, key, sizeof(key), 0, &c) != WR_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const fuzz_case cases[] = {client_event, server_logs, token};
  return FUZZ_PICK(cases, data, size);
}
