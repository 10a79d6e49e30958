/* QUIC datagrams v2 and v3, tracing identities (protocol.md 6.2, 6.6). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "proto/datagram.h"
#include "unit.h"

#define SESSION "85c49de3-a11c-460c-8d13-64ccceba673b"

/* One line of tests/vectors/quic/datagrams-v2.txt. */
typedef struct vec_line {
  int from_edge;
  uint8_t *bytes;
  size_t len;
} vec_line;

/* Reads every datagram line of the capture; returns the count. */
static size_t read_capture(vec_line *out, size_t cap) {
  size_t n, count = 0;
  char *text = (char *)unit_read_vector("quic/datagrams-v2.txt", &n);
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == '#' || line[0] == '\0') continue;
    char *sp = strchr(line, ' ');
    assert_non_null(sp);
    *sp = '\0';
    assert_true(count < cap);
    out[count].from_edge = strcmp(line, "from-edge") == 0;
    if (!out[count].from_edge) assert_string_equal(line, "from-connector");
    out[count].bytes = unit_hex(sp + 1, &out[count].len);
    count++;
  }
  free(text);
  return count;
}

static void test_capture_decodes(void **state) {
  (void)state;
  vec_line v[32];
  size_t n = read_capture(v, 32);
  assert_int_equal(n, 10);
  wr_uuid want;
  assert_int_equal(wr_uuid_parse(SESSION, strlen(SESSION), &want), 0);
  static const char *const udp_payloads[] = {"hello-udp", "echo:hello-udp", "second",
                                             "echo:second"};
  size_t udp = 0, ip = 0;
  for (size_t i = 0; i < n; i++) {
    wr_dgram d;
    assert_int_equal(wr_dgram_v2_decode(v[i].bytes, v[i].len, &d), 0);
    if (d.type == WR_DGRAM_UDP) {
      assert_true(udp < 4);
      assert_int_equal(v[i].from_edge, udp % 2 == 0); /* request, then echo */
      assert_memory_equal(d.session_id.b, want.b, 16);
      assert_int_equal(d.payload_len, strlen(udp_payloads[udp]));
      assert_memory_equal(d.payload, udp_payloads[udp], d.payload_len);
      assert_ptr_equal(d.payload, v[i].bytes);
      udp++;
    } else {
      assert_int_equal(d.type, WR_DGRAM_IP);
      assert_int_equal(d.payload_len, v[i].len - 1);
      assert_int_equal(d.payload[0] >> 4, 4); /* IPv4 */
      ip++;
    }
    /* Encoding the decoded value gives the captured bytes back. */
    uint8_t out[WR_DGRAM_MAX_FRAME];
    assert_int_equal(wr_dgram_v2_encoded_len(&d), v[i].len);
    assert_int_equal(wr_dgram_v2_encode(&d, WR_DGRAM_MAX_FRAME, WR_DGRAM_MAX_UDP_PAYLOAD, out,
                                        sizeof(out)),
                     (int)v[i].len);
    assert_memory_equal(out, v[i].bytes, v[i].len);
    free(v[i].bytes);
  }
  assert_int_equal(udp, 4);
  assert_int_equal(ip, 6);
}

static void test_spec_examples(void **state) {
  (void)state;
  size_t n;
  uint8_t out[64];
  /* UDP "hi" for session 5e551011-0000-4000-8000-000000000001. */
  uint8_t *want = unit_hex("68 69 5e 55 10 11 00 00 40 00 80 00 00 00 00 00 00 01 00", &n);
  wr_dgram d = {.type = WR_DGRAM_UDP, .payload = (const uint8_t *)"hi", .payload_len = 2};
  assert_int_equal(wr_uuid_parse("5e551011-0000-4000-8000-000000000001", 36, &d.session_id), 0);
  assert_int_equal(wr_dgram_v2_encode(&d, WR_DGRAM_MAX_FRAME, SIZE_MAX, out, sizeof(out)), (int)n);
  assert_memory_equal(out, want, n);
  free(want);

  /* ICMPv4 echo 10.0.0.2 -> 1.1.1.1 "ping", plain and traced. */
  static const char icmp_hex[] =
      "45 00 00 20 00 00 00 00 40 01 6e da 0a 00 00 02 01 01 01 01 08 00 06 fa 12 34 00 01 70 69 6e 67";
  static const char ident_hex[] =
      "ec 31 ad 8a 01 fd e1 1f dc ab e2 ef dc e3 68 73 52 72 6f 6c ab c1 44 f5 01";
  size_t plen, ilen;
  uint8_t *pkt = unit_hex(icmp_hex, &plen);
  uint8_t *ident = unit_hex(ident_hex, &ilen);
  assert_int_equal(plen, 32);
  assert_int_equal(ilen, 25);
  d = (wr_dgram){.type = WR_DGRAM_IP, .payload = pkt, .payload_len = plen};
  assert_int_equal(wr_dgram_v2_encode(&d, WR_DGRAM_MAX_FRAME, SIZE_MAX, out, sizeof(out)), 33);
  assert_memory_equal(out, pkt, plen);
  assert_int_equal(out[32], 0x01);

  d.type = WR_DGRAM_IP_TRACED;
  assert_int_equal(wr_dgram_trace_parse("ec31ad8a01fde11fdcabe2efdce36873:52726f6cabc144f5:0:1", 53,
                                        &d.trace),
                   0);
  assert_int_equal(wr_dgram_v2_encode(&d, WR_DGRAM_MAX_FRAME, SIZE_MAX, out, sizeof(out)), 58);
  assert_memory_equal(out, pkt, 32);
  assert_memory_equal(out + 32, ident, 25);
  assert_int_equal(out[57], 0x02);

  wr_dgram back;
  assert_int_equal(wr_dgram_v2_decode(out, 58, &back), 0);
  assert_int_equal(back.type, WR_DGRAM_IP_TRACED);
  assert_int_equal(back.payload_len, 32);
  assert_memory_equal(back.payload, pkt, 32);
  assert_true(back.trace.trace_hi == 0xec31ad8a01fde11fULL);
  assert_true(back.trace.trace_lo == 0xdcabe2efdce36873ULL);
  assert_true(back.trace.span_id == 0x52726f6cabc144f5ULL);
  assert_int_equal(back.trace.flags, 1);

  /* Spans: protobuf ‖ identity ‖ 0x03. */
  d = (wr_dgram){.type = WR_DGRAM_SPANS, .payload = (const uint8_t *)"\x0a\x02xy",
                 .payload_len = 4, .trace = back.trace};
  assert_int_equal(wr_dgram_v2_encode(&d, WR_DGRAM_MAX_FRAME, SIZE_MAX, out, sizeof(out)), 30);
  assert_memory_equal(out + 4, ident, 25);
  assert_int_equal(out[29], 0x03);
  assert_int_equal(wr_dgram_v2_decode(out, 30, &back), 0);
  assert_int_equal(back.type, WR_DGRAM_SPANS);
  assert_int_equal(back.payload_len, 4);
  assert_memory_equal(back.payload, "\x0a\x02xy", 4);
  free(pkt);
  free(ident);
}

static void test_decode_malformed(void **state) {
  (void)state;
  uint8_t b[64];
  wr_dgram d;
  memset(b, 0, sizeof(b));
  assert_int_equal(wr_dgram_v2_decode(b, 0, &d), WR_ERR_TRUNC);
  assert_int_equal(wr_dgram_v2_decode(NULL, 0, &d), WR_ERR_TRUNC);
  /* UDP: 16 bytes of id + type is the minimum (an empty payload is valid). */
  assert_int_equal(wr_dgram_v2_decode(b, 1, &d), WR_ERR_TRUNC);
  assert_int_equal(wr_dgram_v2_decode(b, 16, &d), WR_ERR_TRUNC);
  assert_int_equal(wr_dgram_v2_decode(b, 17, &d), 0);
  assert_int_equal(d.type, WR_DGRAM_UDP);
  assert_int_equal(d.payload_len, 0);
  /* IP with nothing before the type byte decodes to an empty packet (the
   * IP decoder rejects it later, as cloudflared's does). */
  b[0] = 0x01;
  assert_int_equal(wr_dgram_v2_decode(b, 1, &d), 0);
  assert_int_equal(d.type, WR_DGRAM_IP);
  assert_int_equal(d.payload_len, 0);
  /* Traced / spans need 25 bytes of identity. */
  b[25] = 0x02;
  assert_int_equal(wr_dgram_v2_decode(b, 26, &d), 0);
  assert_int_equal(d.payload_len, 0);
  b[24] = 0x02;
  assert_int_equal(wr_dgram_v2_decode(b, 25, &d), WR_ERR_TRUNC);
  b[24] = 0x03;
  assert_int_equal(wr_dgram_v2_decode(b, 25, &d), WR_ERR_TRUNC);
  /* Unknown types. */
  for (int t = 4; t < 256; t++) {
    b[20] = (uint8_t)t;
    assert_int_equal(wr_dgram_v2_decode(b, 21, &d), WR_ERR_PROTO);
  }
}

static void test_encode_limits(void **state) {
  (void)state;
  static uint8_t payload[2000], out[2000];
  memset(payload, 'a', sizeof(payload));
  wr_dgram d = {.type = WR_DGRAM_UDP, .payload = payload};
  /* Each payload at its limit and one past it. */
  static const struct {
    enum wr_dgram_type type;
    size_t max_payload, payload_len;
    int want;
  } cases[] = {
      /* 1350-byte frames: payload + 16 + 1. */
      {WR_DGRAM_UDP, SIZE_MAX, 1333, 1350},
      {WR_DGRAM_UDP, SIZE_MAX, 1334, WR_ERR_LIMIT},
      /* The connector's 1280-byte origin payload limit. */
      {WR_DGRAM_UDP, WR_DGRAM_MAX_UDP_PAYLOAD, 1280, 1297},
      {WR_DGRAM_UDP, WR_DGRAM_MAX_UDP_PAYLOAD, 1281, WR_ERR_LIMIT},
      /* IP packets: payload + 1. */
      {WR_DGRAM_IP, SIZE_MAX, 1349, 1350},
      {WR_DGRAM_IP, SIZE_MAX, 1350, WR_ERR_LIMIT},
      /* Traced: payload + 25 + 1. */
      {WR_DGRAM_IP_TRACED, SIZE_MAX, 1324, 1350},
      {WR_DGRAM_IP_TRACED, SIZE_MAX, 1325, WR_ERR_LIMIT},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    d.type = cases[i].type;
    d.payload_len = cases[i].payload_len;
    assert_int_equal(
        wr_dgram_v2_encode(&d, WR_DGRAM_MAX_FRAME, cases[i].max_payload, out, sizeof(out)),
        cases[i].want);
  }
  /* A frame cap smaller than the suffix itself. */
  d.payload_len = 0;
  assert_int_equal(wr_dgram_v2_encode(&d, 10, SIZE_MAX, out, sizeof(out)), WR_ERR_LIMIT);
  assert_int_equal(wr_dgram_v2_encode(&d, 26, SIZE_MAX, out, sizeof(out)), 26);
  /* Output buffer too small. */
  d.type = WR_DGRAM_UDP;
  d.payload_len = 10;
  assert_int_equal(wr_dgram_v2_encode(&d, WR_DGRAM_MAX_FRAME, SIZE_MAX, out, 26), WR_ERR_LIMIT);
  assert_int_equal(wr_dgram_v2_encode(&d, WR_DGRAM_MAX_FRAME, SIZE_MAX, out, 27), 27);
  /* Bad arguments. */
  d.type = (enum wr_dgram_type)9;
  assert_int_equal(wr_dgram_v2_encode(&d, WR_DGRAM_MAX_FRAME, SIZE_MAX, out, sizeof(out)),
                   WR_ERR_INVAL);
  d.type = WR_DGRAM_UDP;
  d.payload = NULL;
  assert_int_equal(wr_dgram_v2_encode(&d, WR_DGRAM_MAX_FRAME, SIZE_MAX, out, sizeof(out)),
                   WR_ERR_INVAL);
  /* In place: payload already at the start of the output buffer. */
  memcpy(out, "inplace", 7);
  d = (wr_dgram){.type = WR_DGRAM_UDP, .payload = out, .payload_len = 7};
  memset(d.session_id.b, 0x11, 16);
  assert_int_equal(wr_dgram_v2_encode(&d, WR_DGRAM_MAX_FRAME, SIZE_MAX, out, sizeof(out)), 24);
  assert_memory_equal(out, "inplace", 7);
  assert_int_equal(out[7], 0x11);
  assert_int_equal(out[23], 0);
}

static void test_trace_parse(void **state) {
  (void)state;
  /* cloudflared tracing/identity_test.go cases. */
  static const struct {
    const char *in, *want;
  } ok[] = {
      {"ec31ad8a01fde11fdcabe2efdce36873:52726f6cabc144f5:0:1",
       "ec31ad8a01fde11fdcabe2efdce36873:52726f6cabc144f5:0:1"},
      {"ad8a01fde11fdcabe2efdce36873:52726f6cabc144f5:0:1",
       "0000ad8a01fde11fdcabe2efdce36873:52726f6cabc144f5:0:1"},
      {"ad8a01fde11f000002efdce36873:52726f6cabc144f5:0:1",
       "0000ad8a01fde11f000002efdce36873:52726f6cabc144f5:0:1"},
      {"001ad8a01fde11fdcabe2efdce36873:52726f6cabc144f5:0:1",
       "0001ad8a01fde11fdcabe2efdce36873:52726f6cabc144f5:0:1"},
      /* quic_protocol_test.go's trace context */
      {"1241ce3ecdefc68854e8514e69ba42ca:b38f1bf5eae406f3:0:1",
       "1241ce3ecdefc68854e8514e69ba42ca:b38f1bf5eae406f3:0:1"},
      /* Upper case, leading zeros, a non-numeric parent, flags ff. */
      {"1:00000000000000000000ABC:whatever:0ff", "00000000000000000000000000000001:abc:0:ff"},
      {"ffffffffffffffffffffffffffffffff:ffffffffffffffff::0",
       "ffffffffffffffffffffffffffffffff:ffffffffffffffff:0:0"},
  };
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    wr_dgram_trace t, u;
    char s[WR_DGRAM_TRACE_STR_MAX + 1];
    uint8_t bin[WR_DGRAM_TRACE_LEN];
    assert_int_equal(wr_dgram_trace_parse(ok[i].in, strlen(ok[i].in), &t), 0);
    assert_int_equal(wr_dgram_trace_format(&t, s, sizeof(s)), (int)strlen(ok[i].want));
    assert_string_equal(s, ok[i].want);
    wr_dgram_trace_pack(&t, bin);
    assert_int_equal(wr_dgram_trace_unpack(bin, sizeof(bin), &u), 0);
    assert_true(t.trace_hi == u.trace_hi && t.trace_lo == u.trace_lo && t.span_id == u.span_id);
    assert_int_equal(t.flags, u.flags);
  }
  /* The longest form fits WR_DGRAM_TRACE_STR_MAX exactly. */
  wr_dgram_trace t = {UINT64_MAX, UINT64_MAX, UINT64_MAX, 0xff};
  char s[WR_DGRAM_TRACE_STR_MAX + 1];
  assert_int_equal(wr_dgram_trace_format(&t, s, sizeof(s)), WR_DGRAM_TRACE_STR_MAX);
  assert_int_equal(wr_dgram_trace_format(&t, s, sizeof(s) - 1), WR_ERR_LIMIT);

  static const char *const bad[] = {
      "",
      "ec31ad8a01fde11fdcabe2efdce36873:52726f6cabc144f5:0",       /* missing flags */
      "ec31ad8a01fde11fdcabe2efdce3687352726f6cabc144f501",        /* no separator */
      "ec31ad8a01fde11fdcabe2efdce36873:52726f6cabc144f5:0:1:2",   /* five parts */
      ":52726f6cabc144f5:0:1",                                     /* empty trace id */
      "0ec31ad8a01fde11fdcabe2efdce36873:52726f6cabc144f5:0:1",    /* 33 digits */
      "ec31ad8a01fde11fdcabe2efdce3687g:52726f6cabc144f5:0:1",     /* not hex */
      "0x1:52726f6cabc144f5:0:1",                                  /* prefix */
      "1:152726f6cabc144f5:0:1",                                   /* span overflow */
      "1::0:1",                                                    /* empty span */
      "1:-5:0:1",                                                  /* sign */
      "1:5:0:100",                                                 /* flags overflow */
      "1:5:0:",                                                    /* empty flags */
      "1:5:0:+1",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    wr_dgram_trace x;
    assert_int_equal(wr_dgram_trace_parse(bad[i], strlen(bad[i]), &x), WR_ERR_PROTO);
  }
  wr_dgram_trace x;
  assert_int_equal(wr_dgram_trace_parse(NULL, 0, &x), WR_ERR_PROTO);
  uint8_t bin[24] = {0};
  assert_int_equal(wr_dgram_trace_unpack(bin, 24, &x), WR_ERR_TRUNC);
}

/* ---- v3 ---- */

static const char v3_reg_hex[] =
    "00 00 00 35 00 d2 5e 55 10 11 00 00 40 00 80 00 00 00 00 00 00 01 0a 00 00 01";
static const char v3_ok_hex[] =
    "03 00 5e 55 10 11 00 00 40 00 80 00 00 00 00 00 00 01 00 00";
static const char v3_payload_hex[] =
    "01 5e 55 10 11 00 00 40 00 80 00 00 00 00 00 00 01 68 69";
static const uint8_t v3_id[16] = {0x5e, 0x55, 0x10, 0x11, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 1};

/* Decodes the golden datagram |hex| into |d| and returns its |n| bytes, which
 * |d| may point into: the caller checks |d|, then v3_assert_reencodes. */
static uint8_t *v3_decode_hex(const char *hex, size_t *n, wr_dgram_v3 *d) {
  uint8_t *b = unit_hex(hex, n);
  assert_int_equal(wr_dgram_v3_decode(b, *n, d), 0);
  return b;
}

/* |d| encodes back to exactly the |n| bytes of |b|; frees |b|. */
static void v3_assert_reencodes(const wr_dgram_v3 *d, uint8_t *b, size_t n) {
  uint8_t out[64];
  assert_int_equal(wr_dgram_v3_encode(d, out, sizeof(out)), (int)n);
  assert_memory_equal(out, b, n);
  free(b);
}

static void test_v3_examples(void **state) {
  (void)state;
  size_t n;
  wr_dgram_v3 d;

  uint8_t *b = v3_decode_hex(v3_reg_hex, &n, &d);
  assert_int_equal(d.type, WR_DGRAM_V3_REGISTER);
  assert_false(d.ipv6);
  assert_false(d.traced);
  assert_int_equal(d.dst_port, 53);
  assert_int_equal(d.idle_seconds, 210);
  assert_memory_equal(d.request_id, v3_id, 16);
  assert_memory_equal(d.dst_addr, "\x0a\x00\x00\x01", 4);
  assert_null(d.payload);
  v3_assert_reencodes(&d, b, n);

  b = v3_decode_hex(v3_ok_hex, &n, &d);
  assert_int_equal(d.type, WR_DGRAM_V3_RESPONSE);
  assert_int_equal(d.resp_code, WR_DGRAM_V3_RESP_OK);
  assert_memory_equal(d.request_id, v3_id, 16);
  assert_int_equal(d.err_msg_len, 0);
  v3_assert_reencodes(&d, b, n);

  b = v3_decode_hex(v3_payload_hex, &n, &d);
  assert_int_equal(d.type, WR_DGRAM_V3_PAYLOAD);
  assert_memory_equal(d.request_id, v3_id, 16);
  assert_int_equal(d.payload_len, 2);
  assert_memory_equal(d.payload, "hi", 2);
  v3_assert_reencodes(&d, b, n);
}

static void test_v3_round_trips(void **state) {
  (void)state;
  uint8_t out[1400];
  wr_dgram_v3 d, e;
  /* IPv6 registration, traced, with HEAD's bundled payload ff aa cc 44. */
  memset(&d, 0, sizeof(d));
  d.type = WR_DGRAM_V3_REGISTER;
  d.ipv6 = 1;
  d.traced = 1;
  memcpy(d.request_id, v3_id, 16);
  memcpy(d.dst_addr, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
  d.dst_port = 8080;
  d.idle_seconds = 5;
  d.payload = (const uint8_t *)"\xff\xaa\xcc\x44";
  d.payload_len = 4;
  assert_int_equal(wr_dgram_v3_encode(&d, out, sizeof(out)), 42);
  assert_int_equal(out[1], 0x07);
  assert_int_equal(wr_dgram_v3_decode(out, 42, &e), 0);
  assert_true(e.ipv6 && e.traced);
  assert_int_equal(e.dst_port, 8080);
  assert_int_equal(e.idle_seconds, 5);
  assert_memory_equal(e.dst_addr, d.dst_addr, 16);
  assert_int_equal(e.payload_len, 4);
  assert_memory_equal(e.payload, "\xff\xaa\xcc\x44", 4);
  /* Bytes after the header without the bundled flag are ignored. */
  out[1] = 0x01;
  assert_int_equal(wr_dgram_v3_decode(out, 42, &e), 0);
  assert_null(e.payload);
  assert_int_equal(e.payload_len, 0);

  /* Error response with a message. */
  memset(&d, 0, sizeof(d));
  d.type = WR_DGRAM_V3_RESPONSE;
  d.resp_code = WR_DGRAM_V3_RESP_ERROR_WITH_MSG;
  memcpy(d.request_id, v3_id, 16);
  d.err_msg = (const uint8_t *)"boom";
  d.err_msg_len = 4;
  assert_int_equal(wr_dgram_v3_encode(&d, out, sizeof(out)), 24);
  assert_int_equal(out[18], 0);
  assert_int_equal(out[19], 4);
  assert_int_equal(wr_dgram_v3_decode(out, 24, &e), 0);
  assert_int_equal(e.resp_code, 0xff);
  assert_int_equal(e.err_msg_len, 4);
  assert_memory_equal(e.err_msg, "boom", 4);

  /* ICMP. */
  memset(&d, 0, sizeof(d));
  d.type = WR_DGRAM_V3_ICMP;
  d.payload = (const uint8_t *)"\x45\x00";
  d.payload_len = 2;
  assert_int_equal(wr_dgram_v3_encode(&d, out, sizeof(out)), 3);
  assert_memory_equal(out, "\x02\x45\x00", 3);
  assert_int_equal(wr_dgram_v3_decode(out, 3, &e), 0);
  assert_int_equal(e.type, WR_DGRAM_V3_ICMP);
  assert_int_equal(e.payload_len, 2);
}

static void test_v3_malformed(void **state) {
  (void)state;
  static uint8_t b[1400];
  wr_dgram_v3 d;
  memset(b, 0, sizeof(b));
  assert_int_equal(wr_dgram_v3_decode(b, 0, &d), WR_ERR_TRUNC);
  /* Registration: 26 bytes for IPv4, 38 for IPv6. */
  assert_int_equal(wr_dgram_v3_decode(b, 25, &d), WR_ERR_TRUNC);
  assert_int_equal(wr_dgram_v3_decode(b, 26, &d), 0);
  b[1] = WR_DGRAM_V3_FLAG_IPV6;
  assert_int_equal(wr_dgram_v3_decode(b, 37, &d), WR_ERR_TRUNC);
  assert_int_equal(wr_dgram_v3_decode(b, 38, &d), 0);
  b[1] = WR_DGRAM_V3_FLAG_BUNDLED;
  assert_int_equal(wr_dgram_v3_decode(b, 26 + 1280, &d), 0);
  assert_int_equal(d.payload_len, 1280);
  assert_int_equal(wr_dgram_v3_decode(b, 26 + 1281, &d), WR_ERR_LIMIT);
  /* Payload: 17..1297 bytes. */
  b[0] = WR_DGRAM_V3_PAYLOAD;
  assert_int_equal(wr_dgram_v3_decode(b, 16, &d), WR_ERR_TRUNC);
  assert_int_equal(wr_dgram_v3_decode(b, 17, &d), 0);
  assert_int_equal(d.payload_len, 0);
  assert_int_equal(wr_dgram_v3_decode(b, 1297, &d), 0);
  assert_int_equal(wr_dgram_v3_decode(b, 1298, &d), WR_ERR_LIMIT);
  /* ICMP: 1..1280 bytes of packet. */
  b[0] = WR_DGRAM_V3_ICMP;
  assert_int_equal(wr_dgram_v3_decode(b, 1, &d), WR_ERR_PROTO);
  assert_int_equal(wr_dgram_v3_decode(b, 1281, &d), 0);
  assert_int_equal(wr_dgram_v3_decode(b, 1282, &d), WR_ERR_LIMIT);
  /* Response: 20-byte header, declared message must be present and small. */
  b[0] = WR_DGRAM_V3_RESPONSE;
  assert_int_equal(wr_dgram_v3_decode(b, 19, &d), WR_ERR_TRUNC);
  b[18] = 0;
  b[19] = 5;
  assert_int_equal(wr_dgram_v3_decode(b, 24, &d), WR_ERR_TRUNC);
  assert_int_equal(wr_dgram_v3_decode(b, 25, &d), 0);
  assert_int_equal(d.err_msg_len, 5);
  b[18] = 0x05; /* 1285 > 1260 */
  assert_int_equal(wr_dgram_v3_decode(b, 1300, &d), WR_ERR_LIMIT);
  /* Unknown type. */
  b[0] = 4;
  assert_int_equal(wr_dgram_v3_decode(b, 30, &d), WR_ERR_PROTO);

  /* Encoder limits. */
  uint8_t out[1400];
  memset(&d, 0, sizeof(d));
  d.type = WR_DGRAM_V3_PAYLOAD;
  d.payload = b;
  d.payload_len = 1281;
  assert_int_equal(wr_dgram_v3_encode(&d, out, sizeof(out)), WR_ERR_LIMIT);
  d.payload_len = 1280;
  assert_int_equal(wr_dgram_v3_encode(&d, out, sizeof(out)), 1297);
  assert_int_equal(wr_dgram_v3_encode(&d, out, 1296), WR_ERR_LIMIT);
  d.type = WR_DGRAM_V3_ICMP;
  d.payload_len = 0;
  assert_int_equal(wr_dgram_v3_encode(&d, out, sizeof(out)), WR_ERR_INVAL);
  d.type = WR_DGRAM_V3_RESPONSE;
  d.err_msg = b;
  d.err_msg_len = WR_DGRAM_V3_MAX_ERR_MSG + 1;
  assert_int_equal(wr_dgram_v3_encode(&d, out, sizeof(out)), WR_ERR_LIMIT);
  d.type = (enum wr_dgram_v3_type)7;
  assert_int_equal(wr_dgram_v3_encode(&d, out, sizeof(out)), WR_ERR_INVAL);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_TESTS(test_capture_decodes, test_spec_examples, test_decode_malformed,
                             test_encode_limits, test_trace_parse, test_v3_examples,
                             test_v3_round_trips, test_v3_malformed));
}
