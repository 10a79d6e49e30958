/* Fuzzes the WebSocket frame decoder (src/proto/wsframe.c) and the Go
 * host:port split (src/proto/hostport.c), both fed by visitors: frames
 * from a WebSocket the connector terminates, dests of warp-routing tcp
 * streams. The first byte picks the decoder's side and how the input is
 * cut into pieces; decoding in pieces must give the same events and bytes
 * as decoding at once, and never read or write out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/hostport.h"
#include "proto/wsframe.h"
#include "fuzz.h"

typedef struct result {
  uint8_t *data;
  size_t len;
  unsigned events; /* a checksum of the control events */
  int error;
} result;

static void run(int from_client, const uint8_t *in, size_t len, size_t step, result *r) {
  wr_ws_decoder d;
  uint8_t *out = malloc(len + 1);
  size_t off = 0;
  wr_ws_decoder_init(&d, from_client);
  r->data = malloc(len + 1);
  r->len = 0;
  r->events = 0;
  r->error = 0;
  while (off < len) {
    size_t n = len - off < step ? len - off : step, used = 0;
    wr_ws_event ev;
    if (wr_ws_decode(&d, in + off, n, out, &used, &ev) != 0) {
      r->error = 1;
      break;
    }
    CHECK(used <= n);
    CHECK(used > 0 || ev.kind != WR_WS_EV_NONE);
    off += used;
    if (ev.kind == WR_WS_EV_DATA) {
      CHECK(ev.len <= used);
      memcpy(r->data + r->len, ev.data, ev.len);
      r->len += ev.len;
    } else if (ev.kind != WR_WS_EV_NONE) {
      CHECK(ev.len <= 125);
      r->events = r->events * 31u + (unsigned)ev.kind * 257u + (unsigned)ev.len;
      for (size_t i = 0; i < ev.len; i++) r->events = r->events * 7u + ev.data[i];
    }
  }
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  result a, b;
  char host[64], err[256];
  uint16_t port;
  if (size < 1) return 0;
  int from_client = data[0] & 1;
  size_t step = (size_t)(data[0] >> 1) + 1;
  run(from_client, data + 1, size - 1, size, &a);
  run(from_client, data + 1, size - 1, step, &b);
  if (!a.error && !b.error) {
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0 && a.events == b.events);
  }
  free(a.data);
  free(b.data);
  if (wr_go_split_host_port((const char *)data + 1, size - 1, host, sizeof(host), &port, err,
                            sizeof(err)) == 0)
    CHECK(strlen(host) < sizeof(host));
  return 0;
}
