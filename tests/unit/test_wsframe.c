/* WebSocket framing (src/proto/wsframe.c) against RFC 6455's examples
 * (section 5.7, and 1.3 for Sec-WebSocket-Accept), fed whole and byte by
 * byte, and the protocol errors the decoder must refuse. */
#include <stdlib.h>
#include <string.h>

#include "proto/wsframe.h"
#include "unit.h"

typedef struct collected {
  uint8_t data[70000];
  size_t len;
  int kinds[16];
  size_t nkinds;
  uint8_t ctl[125];
  size_t ctl_len;
  int ends;       /* DATA events that ended a message */
  int first_op;   /* the opcode of the first DATA event */
} collected;

/* Feeds |in| in pieces of |step| bytes; returns 0 or -1 (protocol error). */
static int feed(wr_ws_decoder *d, const uint8_t *in, size_t len, size_t step, collected *c) {
  uint8_t out[70000];
  size_t off = 0;
  while (off < len) {
    size_t n = len - off < step ? len - off : step, pos = 0;
    while (pos < n) {
      size_t used;
      wr_ws_event ev;
      if (wr_ws_decode(d, in + off + pos, n - pos, out, &used, &ev) != 0) return -1;
      pos += used;
      if (ev.kind == WR_WS_EV_DATA) {
        if (!c->first_op) c->first_op = ev.opcode;
        c->ends += ev.end;
        memcpy(c->data + c->len, ev.data, ev.len);
        c->len += ev.len;
      } else if (ev.kind != WR_WS_EV_NONE) {
        c->kinds[c->nkinds++] = ev.kind;
        memcpy(c->ctl, ev.data, ev.len);
        c->ctl_len = ev.len;
      }
      if (used == 0 && ev.kind == WR_WS_EV_NONE) fail_msg("no progress");
    }
    off += n;
  }
  return 0;
}

static const uint8_t hello_unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                       0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t hel_lo[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
static const uint8_t ping_unmasked[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t pong_masked[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                      0x7f, 0x9f, 0x4d, 0x51, 0x58};

static void test_rfc_examples(void **state) {
  (void)state;
  for (size_t step = 1; step <= 16; step += 15) {
    wr_ws_decoder d;
    collected *c = calloc(1, sizeof(*c));
    wr_ws_decoder_init(&d, 0); /* from a server: unmasked */
    assert_int_equal(feed(&d, hello_unmasked, sizeof(hello_unmasked), step, c), 0);
    assert_int_equal(feed(&d, hel_lo, sizeof(hel_lo), step, c), 0);
    assert_int_equal(feed(&d, ping_unmasked, sizeof(ping_unmasked), step, c), 0);
    assert_int_equal(c->len, 10);
    assert_memory_equal(c->data, "HelloHello", 10);
    assert_int_equal(c->nkinds, 1);
    assert_int_equal(c->kinds[0], WR_WS_EV_PING);
    assert_memory_equal(c->ctl, "Hello", 5);
    memset(c, 0, sizeof(*c));
    wr_ws_decoder_init(&d, 1); /* from a client: masked */
    assert_int_equal(feed(&d, hello_masked, sizeof(hello_masked), step, c), 0);
    assert_int_equal(feed(&d, pong_masked, sizeof(pong_masked), step, c), 0);
    assert_int_equal(c->len, 5);
    assert_memory_equal(c->data, "Hello", 5);
    assert_int_equal(c->kinds[0], WR_WS_EV_PONG);
    assert_memory_equal(c->ctl, "Hello", 5);
    free(c);
  }
}

/* The end of a message is reported once, on the last piece of the frame
 * with FIN, even for an empty final frame; the opcode comes with the data. */
static void test_message_end(void **state) {
  static const uint8_t empty_text[] = {0x81, 0x00};
  (void)state;
  for (size_t step = 1; step <= 16; step += 15) {
    wr_ws_decoder d;
    collected *c = calloc(1, sizeof(*c));
    wr_ws_decoder_init(&d, 0);
    assert_int_equal(feed(&d, hel_lo, sizeof(hel_lo), step, c), 0);
    assert_int_equal(c->ends, 1);
    assert_int_equal(c->first_op, WR_WS_OP_TEXT);
    assert_int_equal(feed(&d, ping_unmasked, sizeof(ping_unmasked), step, c), 0);
    assert_int_equal(c->ends, 1);
    assert_int_equal(feed(&d, empty_text, sizeof(empty_text), step, c), 0);
    assert_int_equal(c->ends, 2);
    assert_int_equal(c->len, 5);
    free(c);
  }
}

static void test_encode_matches_rfc(void **state) {
  uint8_t h[WR_WS_HEAD_MAX], buf[16];
  static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  (void)state;
  size_t n = wr_ws_frame_head(h, WR_WS_OP_TEXT, 5, NULL);
  assert_int_equal(n, 2);
  assert_memory_equal(h, hello_unmasked, 2);
  n = wr_ws_frame_head(h, WR_WS_OP_TEXT, 5, key);
  assert_int_equal(n, 6);
  memcpy(buf, h, n);
  memcpy(buf + n, "Hello", 5);
  wr_ws_mask(buf + n, 5, key, 0);
  assert_memory_equal(buf, hello_masked, sizeof(hello_masked));
  /* 256 bytes: 0x7E + 16-bit length; 65536: 0x7F + 64-bit length. */
  n = wr_ws_frame_head(h, WR_WS_OP_BINARY, 256, NULL);
  static const uint8_t h256[] = {0x82, 0x7e, 0x01, 0x00};
  assert_int_equal(n, 4);
  assert_memory_equal(h, h256, 4);
  n = wr_ws_frame_head(h, WR_WS_OP_BINARY, 65536, NULL);
  static const uint8_t h64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
  assert_int_equal(n, 10);
  assert_memory_equal(h, h64k, 10);
}

/* Large masked frames round-trip through encoder and decoder in pieces. */
static void test_roundtrip_large(void **state) {
  static const uint8_t key[4] = {1, 2, 3, 4};
  size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 66000};
  (void)state;
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    size_t len = sizes[i];
    uint8_t *frame = malloc(len + WR_WS_HEAD_MAX);
    size_t hl = wr_ws_frame_head(frame, WR_WS_OP_BINARY, len, key);
    for (size_t j = 0; j < len; j++) frame[hl + j] = (uint8_t)(j * 7);
    wr_ws_mask(frame + hl, len, key, 0);
    wr_ws_decoder d;
    collected *c = calloc(1, sizeof(*c));
    wr_ws_decoder_init(&d, 1);
    assert_int_equal(feed(&d, frame, hl + len, 1000, c), 0);
    assert_int_equal(c->len, len);
    for (size_t j = 0; j < len; j++)
      if (c->data[j] != (uint8_t)(j * 7)) fail_msg("byte %zu of %zu", j, len);
    free(c);
    free(frame);
  }
}

static void expect_error(int from_client, const uint8_t *in, size_t len) {
  wr_ws_decoder d;
  collected *c = calloc(1, sizeof(*c));
  wr_ws_decoder_init(&d, from_client);
  assert_int_equal(feed(&d, in, len, len, c), -1);
  free(c);
}

static void test_protocol_errors(void **state) {
  (void)state;
  expect_error(1, hello_unmasked, sizeof(hello_unmasked)); /* a client must mask */
  expect_error(0, hello_masked, sizeof(hello_masked));     /* a server must not */
  static const uint8_t rsv[] = {0xc1, 0x00};
  expect_error(0, rsv, sizeof(rsv));
  static const uint8_t op3[] = {0x83, 0x00};
  expect_error(0, op3, sizeof(op3));
  static const uint8_t opb[] = {0x8b, 0x00};
  expect_error(0, opb, sizeof(opb));
  static const uint8_t frag_ping[] = {0x09, 0x00};
  expect_error(0, frag_ping, sizeof(frag_ping));
  static const uint8_t big_ping[] = {0x89, 0x7e, 0x00, 0x80};
  expect_error(0, big_ping, sizeof(big_ping));
  static const uint8_t top_bit[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1};
  expect_error(0, top_bit, sizeof(top_bit));
}

static void test_close_frame(void **state) {
  static const uint8_t close[] = {0x88, 0x02, 0x03, 0xe8};
  wr_ws_decoder d;
  collected *c = calloc(1, sizeof(*c));
  (void)state;
  wr_ws_decoder_init(&d, 0);
  assert_int_equal(feed(&d, close, sizeof(close), 1, c), 0);
  assert_int_equal(c->kinds[0], WR_WS_EV_CLOSE);
  assert_int_equal(c->ctl_len, 2);
  assert_int_equal(c->ctl[0] << 8 | c->ctl[1], 1000);
  free(c);
}

static void test_accept(void **state) {
  char out[WR_WS_ACCEPT_LEN];
  (void)state;
  assert_int_equal(wr_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

int main(void) {
  return UNIT_RUN(
      NULL, NULL,
      UNIT_TESTS(test_rfc_examples, test_encode_matches_rfc, test_roundtrip_large,
                 test_protocol_errors, test_close_frame, test_accept, test_message_end));
}
