/* IPv4/IPv6 + ICMP decode, checksums and the replies the connector builds
 * (protocol.md 6.3), checked against the captured datagrams. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/datagram.h"
#include "proto/ippacket.h"
#include "unit.h"

#define PING_DATA "refedge-ping-payload"

/* The ICMP lines of tests/vectors/quic/datagrams-v2.txt, without the
 * trailing datagram type byte 01: request, reply, request, reply, TTL-1
 * request, time exceeded. */
static const char *const capture_hex[] = {
    "4500003000010000400139c1c000020a7f0000010800d7ce42420001726566656467652d70696e672d7061796c6f6164",
    "4500003000000000ff017ac17f000001c000020a0000dfce42420001726566656467652d70696e672d7061796c6f6164",
    "4500003000020000400139c0c000020a7f0000010800d7cd42420002726566656467652d70696e672d7061796c6f6164",
    "4500003000000000ff017ac17f000001c000020a0000dfcd42420002726566656467652d70696e672d7061796c6f6164",
    "4500003000030000010178bfc000020a7f0000010800d7cc42420003726566656467652d70696e672d7061796c6f6164",
    ("4500004c00000000ff0137a4c0000202c000020a0b00f4ff000000004500003000030000010178bfc000020a7f0000"
     "010800d7cc42420003726566656467652d70696e672d7061796c6f6164"),
};

/* protocol.md 10.1 (cloudflared packet/packet_test.go): ICMPv6 echo with
 * checksum 0xff96. */
static const char v6_echo_hex[] =
    "60 00 00 00 00 10 3a 03 26 06 47 00 01 10 89 c1 c6 3a 08 61 e0 8c b0 49 fd e8 b6 93 d4 20 10 9b"
    "00 00 00 00 00 00 00 02 80 00 ff 96 20 a7 00 08 63 2c 49 d6 00 0d c1 da";

static wr_ipaddr addr(const char *s) {
  wr_ipaddr a;
  assert_int_equal(wr_ipaddr_parse(s, &a), 0);
  return a;
}

static void assert_addr(const wr_ipaddr *a, const char *want) {
  char s[64];
  assert_true(wr_ipaddr_format(a, s, sizeof(s)) > 0);
  assert_string_equal(s, want);
}

/* The capture lines, checked against the datagram file itself so the two
 * cannot drift apart. */
static void test_capture_matches_vector_file(void **state) {
  (void)state;
  size_t n;
  char *text = (char *)unit_read_vector("quic/datagrams-v2.txt", &n);
  for (size_t i = 0; i < sizeof(capture_hex) / sizeof(capture_hex[0]); i++) {
    char line[512];
    snprintf(line, sizeof(line), " %s01\n", capture_hex[i]);
    assert_non_null(strstr(text, line));
  }
  free(text);
}

static void test_capture_requests_and_replies(void **state) {
  (void)state;
  wr_ipaddr client = addr("192.0.2.10"), origin = addr("127.0.0.1");
  for (int i = 0; i < 6; i += 2) {
    size_t rn, pn;
    uint8_t *req = unit_hex(capture_hex[i], &rn);
    uint8_t *rep = unit_hex(capture_hex[i + 1], &pn);
    wr_ip_packet ip;
    wr_icmp icmp;

    /* Request: 192.0.2.10 -> 127.0.0.1, echo request, id 0x4242, seq i/2+1. */
    assert_int_equal(wr_ip_icmp_decode(req, rn, &ip, &icmp), 0);
    assert_int_equal(ip.version, 4);
    assert_int_equal(ip.header_len, 20);
    assert_int_equal(ip.protocol, WR_IPPROTO_ICMP);
    assert_int_equal(ip.ttl, i == 4 ? 1 : 64);
    assert_false(ip.truncated);
    assert_false(ip.is_fragment);
    assert_true(wr_ipaddr_equal(&ip.src, &client));
    assert_true(wr_ipaddr_equal(&ip.dst, &origin));
    assert_addr(&ip.src, "192.0.2.10");
    assert_int_equal(ip.payload_len, 28);
    assert_int_equal(icmp.type, WR_ICMPV4_ECHO_REQUEST);
    assert_int_equal(icmp.code, 0);
    assert_true(wr_icmp_is_echo(4, icmp.type));
    assert_int_equal(icmp.echo_id, 0x4242);
    assert_int_equal(icmp.echo_seq, i / 2 + 1);
    assert_int_equal(icmp.data_len, strlen(PING_DATA));
    assert_memory_equal(icmp.data, PING_DATA, icmp.data_len);
    assert_true(wr_icmp_checksum_ok(&ip, &icmp));
    assert_int_equal(icmp.checksum, wr_icmpv4_checksum(icmp.msg, icmp.msg_len));
    assert_int_equal(wr_ipv4_header_checksum(req, 20), req[10] << 8 | req[11]);

    if (i < 4) {
      /* Echo reply from the origin, rewritten to the client, TTL 255. */
      wr_ip_packet rip;
      wr_icmp ricmp;
      assert_int_equal(wr_ip_icmp_decode(rep, pn, &rip, &ricmp), 0);
      assert_int_equal(ricmp.type, WR_ICMPV4_ECHO_REPLY);
      assert_int_equal(rip.ttl, 255);
      assert_true(wr_ipaddr_equal(&rip.src, &origin));
      assert_true(wr_ipaddr_equal(&rip.dst, &client));
      assert_int_equal(ricmp.echo_id, 0x4242);
      assert_int_equal(ricmp.echo_seq, icmp.echo_seq);
      assert_memory_equal(ricmp.data, PING_DATA, ricmp.data_len);
      assert_true(wr_icmp_checksum_ok(&rip, &ricmp));

      /* Our builder writes exactly the connector's bytes. */
      uint8_t out[128];
      assert_int_equal(wr_icmp_build_echo_reply(&ip.dst, &ip.src, icmp.echo_id, icmp.echo_seq,
                                                icmp.data, icmp.data_len, out, sizeof(out)),
                       (int)pn);
      assert_memory_equal(out, rep, pn);
    }
    free(req);
    free(rep);
  }
}

static void test_capture_time_exceeded(void **state) {
  (void)state;
  size_t rn, tn;
  uint8_t *req = unit_hex(capture_hex[4], &rn);
  uint8_t *te = unit_hex(capture_hex[5], &tn);
  wr_ip_packet ip, tip;
  wr_icmp icmp, ticmp;
  assert_int_equal(wr_ip_icmp_decode(req, rn, &ip, &icmp), 0);
  assert_true(ip.ttl <= 1);

  /* The captured reply: 192.0.2.2 -> 192.0.2.10, TTL 255, type 11 code 0,
   * 4 unused bytes, then the whole original packet. */
  assert_int_equal(wr_ip_icmp_decode(te, tn, &tip, &ticmp), 0);
  assert_addr(&tip.src, "192.0.2.2");
  assert_addr(&tip.dst, "192.0.2.10");
  assert_int_equal(tip.ttl, 255);
  assert_int_equal(ticmp.type, WR_ICMPV4_TIME_EXCEEDED);
  assert_int_equal(ticmp.code, 0);
  assert_false(wr_icmp_is_echo(4, ticmp.type));
  assert_int_equal(ticmp.body_len, 4 + rn);
  assert_memory_equal(ticmp.body, "\0\0\0\0", 4);
  assert_memory_equal(ticmp.body + 4, req, rn);
  assert_true(wr_icmp_checksum_ok(&tip, &ticmp));

  /* Our builder, given the router address, matches byte for byte. */
  wr_ipaddr router = addr("192.0.2.2");
  uint8_t out[1500];
  assert_int_equal(wr_icmp_build_time_exceeded(&ip, &router, out, sizeof(out)), (int)tn);
  assert_memory_equal(out, te, tn);
  /* Too small a buffer, or a router of the other family. */
  assert_int_equal(wr_icmp_build_time_exceeded(&ip, &router, out, tn - 1), WR_ERR_LIMIT);
  wr_ipaddr r6 = addr("fd00::1");
  assert_int_equal(wr_icmp_build_time_exceeded(&ip, &r6, out, sizeof(out)), WR_ERR_INVAL);

  /* And it round-trips through a v2 datagram. */
  wr_dgram d = {.type = WR_DGRAM_IP, .payload = out, .payload_len = tn};
  uint8_t frame[WR_DGRAM_MAX_FRAME];
  assert_int_equal(wr_dgram_v2_encode(&d, WR_DGRAM_MAX_FRAME, SIZE_MAX, frame, sizeof(frame)),
                   (int)tn + 1);
  assert_int_equal(frame[tn], 0x01);
  free(req);
  free(te);
}

static void test_icmpv6_checksum_vector(void **state) {
  (void)state;
  size_t n;
  uint8_t *p = unit_hex(v6_echo_hex, &n);
  wr_ip_packet ip;
  wr_icmp icmp;
  assert_int_equal(n, 56);
  assert_int_equal(wr_ip_icmp_decode(p, n, &ip, &icmp), 0);
  assert_int_equal(ip.version, 6);
  assert_int_equal(ip.ttl, 3);
  assert_int_equal(ip.protocol, WR_IPPROTO_ICMPV6);
  assert_addr(&ip.src, "2606:4700:110:89c1:c63a:861:e08c:b049");
  assert_addr(&ip.dst, "fde8:b693:d420:109b::2");
  assert_int_equal(icmp.type, WR_ICMPV6_ECHO_REQUEST);
  assert_int_equal(icmp.echo_id, 0x20a7);
  assert_int_equal(icmp.echo_seq, 8);
  assert_int_equal(icmp.data_len, 8);
  assert_int_equal(icmp.checksum, 0xff96);
  assert_int_equal(wr_icmpv6_checksum(ip.src.b, ip.dst.b, icmp.msg, icmp.msg_len), 0xff96);
  assert_true(wr_icmp_checksum_ok(&ip, &icmp));

  /* Building the same echo gives the same bytes. */
  uint8_t out[128];
  assert_int_equal(wr_icmp_build_echo(&ip.src, &ip.dst, 3, WR_ICMPV6_ECHO_REQUEST, 0x20a7, 8,
                                      icmp.data, icmp.data_len, out, sizeof(out)),
                   (int)n);
  assert_memory_equal(out, p, n);

  /* A corrupted byte is noticed. */
  p[50] ^= 1;
  assert_int_equal(wr_ip_icmp_decode(p, n, &ip, &icmp), 0);
  assert_false(wr_icmp_checksum_ok(&ip, &icmp));

  /* Echo reply over IPv6: type 129, hop limit 255, valid checksum. */
  assert_int_equal(wr_icmp_build_echo_reply(&ip.dst, &ip.src, 0x20a7, 8, icmp.data, 8, out,
                                            sizeof(out)),
                   56);
  wr_ip_packet rip;
  wr_icmp ricmp;
  assert_int_equal(wr_ip_icmp_decode(out, 56, &rip, &ricmp), 0);
  assert_int_equal(ricmp.type, WR_ICMPV6_ECHO_REPLY);
  assert_int_equal(rip.ttl, 255);
  assert_true(wr_icmp_checksum_ok(&rip, &ricmp));
  free(p);
}

static void test_icmpv6_time_exceeded(void **state) {
  (void)state;
  size_t n;
  uint8_t *p = unit_hex(v6_echo_hex, &n);
  wr_ip_packet ip;
  assert_int_equal(wr_ip_decode(p, n, &ip), 0);
  wr_ipaddr router = addr("fd00::1");
  uint8_t out[1500];
  int len = wr_icmp_build_time_exceeded(&ip, &router, out, sizeof(out));
  assert_int_equal(len, 40 + 8 + 56);
  assert_memory_equal(out, "\x60\x00\x00\x00\x00\x40\x3a\xff", 8); /* plen 64, ICMPv6, hop 255 */
  wr_ip_packet tip;
  wr_icmp ticmp;
  assert_int_equal(wr_ip_icmp_decode(out, (size_t)len, &tip, &ticmp), 0);
  assert_int_equal(ticmp.type, WR_ICMPV6_TIME_EXCEEDED);
  assert_int_equal(ticmp.code, 0);
  assert_true(wr_ipaddr_equal(&tip.src, &router));
  assert_true(wr_ipaddr_equal(&tip.dst, &ip.src));
  assert_memory_equal(ticmp.body, "\0\0\0\0", 4);
  assert_memory_equal(ticmp.body + 4, p, n);
  assert_true(wr_icmp_checksum_ok(&tip, &ticmp));
  free(p);
}

static void test_time_exceeded_quote_limits(void **state) {
  (void)state;
  static uint8_t big[1500], out[1600];
  static uint8_t data[1400];
  memset(data, 'x', sizeof(data));
  wr_ipaddr a = addr("10.0.0.2"), b = addr("1.1.1.1"), r = addr("10.0.0.1");
  int n = wr_icmp_build_echo(&a, &b, 1, WR_ICMPV4_ECHO_REQUEST, 1, 1, data, 1000, big, sizeof(big));
  assert_int_equal(n, 1028);
  wr_ip_packet ip;
  assert_int_equal(wr_ip_decode(big, (size_t)n, &ip), 0);
  /* 576-byte IPv4 minimum MTU: 20 + 8 + 548 quoted bytes. */
  assert_int_equal(wr_icmp_build_time_exceeded(&ip, &r, out, sizeof(out)), 576);
  assert_memory_equal(out + 28, big, WR_ICMPV4_QUOTE_MAX);

  wr_ipaddr a6 = addr("2001:db8::2"), b6 = addr("2001:db8::1"), r6 = addr("2001:db8::ff");
  n = wr_icmp_build_echo(&a6, &b6, 1, WR_ICMPV6_ECHO_REQUEST, 1, 1, data, 1300, big, sizeof(big));
  assert_int_equal(n, 1348);
  assert_int_equal(wr_ip_decode(big, (size_t)n, &ip), 0);
  /* 1280-byte IPv6 minimum MTU: 40 + 8 + 1232 quoted bytes. */
  assert_int_equal(wr_icmp_build_time_exceeded(&ip, &r6, out, sizeof(out)), 1280);
  assert_memory_equal(out + 48, big, WR_ICMPV6_QUOTE_MAX);
  wr_icmp icmp;
  assert_int_equal(wr_ip_icmp_decode(out, 1280, &ip, &icmp), 0);
  assert_true(wr_icmp_checksum_ok(&ip, &icmp));
}

static void test_spec_example_v4(void **state) {
  (void)state;
  /* protocol.md 6.2: echo request 10.0.0.2 -> 1.1.1.1, id 0x1234, seq 1,
   * "ping", TTL 64. */
  size_t n;
  uint8_t *want = unit_hex(
      "45 00 00 20 00 00 00 00 40 01 6e da 0a 00 00 02 01 01 01 01 08 00 06 fa 12 34 00 01 70 69 6e 67",
      &n);
  wr_ipaddr a = addr("10.0.0.2"), b = addr("1.1.1.1");
  uint8_t out[64];
  assert_int_equal(wr_icmp_build_echo(&a, &b, 64, WR_ICMPV4_ECHO_REQUEST, 0x1234, 1,
                                      (const uint8_t *)"ping", 4, out, sizeof(out)),
                   (int)n);
  assert_memory_equal(out, want, n);
  free(want);
}

static void test_decode_edge_cases(void **state) {
  (void)state;
  size_t n;
  uint8_t *req = unit_hex(capture_hex[0], &n);
  uint8_t b[128];
  wr_ip_packet ip;
  wr_icmp icmp;

  /* Trailing bytes after the IPv4 total length: payload cut, raw kept. */
  memcpy(b, req, n);
  memcpy(b + n, "junk", 4);
  assert_int_equal(wr_ip_icmp_decode(b, n + 4, &ip, &icmp), 0);
  assert_int_equal(ip.payload_len, 28);
  assert_int_equal(ip.raw_len, n + 4);
  assert_int_equal(icmp.data_len, strlen(PING_DATA));

  /* Total length 0 (TSO): the whole buffer. */
  memcpy(b, req, n);
  b[2] = b[3] = 0;
  assert_int_equal(wr_ip_decode(b, n, &ip), 0);
  assert_int_equal(ip.payload_len, 28);

  /* Total length beyond the buffer: tolerated, marked truncated. */
  memcpy(b, req, n);
  assert_int_equal(wr_ip_icmp_decode(b, n - 4, &ip, &icmp), 0);
  assert_true(ip.truncated);
  assert_int_equal(icmp.data_len, strlen(PING_DATA) - 4);

  /* IPv4 options: IHL 6 puts the ICMP message at offset 24. */
  memcpy(b, req, 20);
  b[0] = 0x46;
  b[3] = 0x34; /* total 52 */
  memset(b + 20, 0x01, 4); /* NOP options */
  memcpy(b + 24, req + 20, n - 20);
  assert_int_equal(wr_ip_icmp_decode(b, n + 4, &ip, &icmp), 0);
  assert_int_equal(ip.header_len, 24);
  assert_int_equal(icmp.echo_id, 0x4242);

  /* Fragments and other protocols carry no ICMP layer. */
  memcpy(b, req, n);
  b[6] = 0x20; /* MF */
  assert_int_equal(wr_ip_icmp_decode(b, n, &ip, &icmp), WR_ERR_UNSUPPORTED);
  assert_true(ip.is_fragment);
  memcpy(b, req, n);
  b[7] = 0x10; /* offset */
  assert_int_equal(wr_ip_icmp_decode(b, n, &ip, &icmp), WR_ERR_UNSUPPORTED);
  memcpy(b, req, n);
  b[9] = 17; /* UDP */
  assert_int_equal(wr_ip_icmp_decode(b, n, &ip, &icmp), WR_ERR_UNSUPPORTED);
  assert_int_equal(ip.protocol, 17);
  memcpy(b, req, n);
  b[9] = 58; /* ICMPv6 inside IPv4 */
  assert_int_equal(wr_ip_icmp_decode(b, n, &ip, &icmp), WR_ERR_UNSUPPORTED);

  /* Malformed IPv4. */
  assert_int_equal(wr_ip_decode(b, 0, &ip), WR_ERR_TRUNC);
  assert_int_equal(wr_ip_decode(NULL, 0, &ip), WR_ERR_TRUNC);
  memcpy(b, req, n);
  assert_int_equal(wr_ip_decode(b, 19, &ip), WR_ERR_TRUNC);
  b[0] = 0x44; /* IHL 4 */
  assert_int_equal(wr_ip_decode(b, n, &ip), WR_ERR_PROTO);
  b[0] = 0x4f; /* IHL 15 = 60 > total 48 */
  assert_int_equal(wr_ip_decode(b, n, &ip), WR_ERR_PROTO);
  b[0] = 0x45;
  b[3] = 19; /* total < 20 */
  assert_int_equal(wr_ip_decode(b, n, &ip), WR_ERR_PROTO);
  b[0] = 0x4f;
  b[2] = 0x01; /* total 0x113 > len, IHL 60 > len 40 */
  assert_int_equal(wr_ip_decode(b, 40, &ip), WR_ERR_TRUNC);
  memcpy(b, req, n);
  b[0] = 0x55;
  assert_int_equal(wr_ip_decode(b, n, &ip), WR_ERR_PROTO);
  b[0] = 0x00;
  assert_int_equal(wr_ip_decode(b, n, &ip), WR_ERR_PROTO);

  /* Short ICMPv4: gopacket wants 8 bytes. */
  memcpy(b, req, n);
  b[3] = 27;
  assert_int_equal(wr_ip_icmp_decode(b, 27, &ip, &icmp), WR_ERR_TRUNC);
  b[3] = 28;
  assert_int_equal(wr_ip_icmp_decode(b, 28, &ip, &icmp), 0);
  assert_int_equal(icmp.data_len, 0);
  free(req);

  /* IPv6: header, payload length, short messages. */
  uint8_t *v6 = unit_hex(v6_echo_hex, &n);
  assert_int_equal(wr_ip_decode(v6, 39, &ip), WR_ERR_TRUNC);
  memcpy(b, v6, n);
  assert_int_equal(wr_ip_icmp_decode(b, 50, &ip, &icmp), 0);
  assert_true(ip.truncated);
  assert_int_equal(icmp.data_len, 2);
  b[5] = 4; /* payload length 4: a bare echo header is too short */
  assert_int_equal(wr_ip_icmp_decode(b, n, &ip, &icmp), WR_ERR_TRUNC);
  b[40] = 135; /* neighbour solicitation: 4 bytes are enough for the layer */
  assert_int_equal(wr_ip_icmp_decode(b, n, &ip, &icmp), 0);
  assert_int_equal(icmp.type, 135);
  assert_int_equal(icmp.body_len, 0);
  b[5] = 3;
  assert_int_equal(wr_ip_icmp_decode(b, n, &ip, &icmp), WR_ERR_TRUNC);
  memcpy(b, v6, n);
  b[6] = 0; /* hop-by-hop extension header: not followed */
  assert_int_equal(wr_ip_icmp_decode(b, n, &ip, &icmp), WR_ERR_UNSUPPORTED);
  free(v6);

  /* Bare messages. */
  wr_icmp m;
  assert_int_equal(wr_icmp_decode_msg(5, (const uint8_t *)"\x08\0\0\0\0\0\0\0", 8, &m), WR_ERR_INVAL);
  assert_int_equal(wr_icmp_decode_msg(4, (const uint8_t *)"\x08\0\0\0\0\x07\0\x09", 8, &m), 0);
  assert_int_equal(m.echo_id, 7);
  assert_int_equal(m.echo_seq, 9);
}

static void test_builders_and_checksums(void **state) {
  (void)state;
  uint8_t out[128];
  wr_ipaddr a4 = addr("192.0.2.1"), b4 = addr("192.0.2.2"), a6 = addr("::1");
  /* Mixed families, small buffers, oversized data. */
  assert_int_equal(wr_icmp_build_echo(&a4, &a6, 64, 8, 1, 1, NULL, 0, out, sizeof(out)),
                   WR_ERR_INVAL);
  assert_int_equal(wr_icmp_build_echo(&a4, &b4, 64, 8, 1, 1, NULL, 0, out, 27), WR_ERR_LIMIT);
  assert_int_equal(wr_icmp_build_echo(&a4, &b4, 64, 8, 1, 1, NULL, 0, out, 28), 28);
  assert_int_equal(wr_icmp_build_echo(&a4, &b4, 64, 8, 1, 1, NULL, 5, out, sizeof(out)),
                   WR_ERR_INVAL);
  static uint8_t huge[70000], hout[70100];
  assert_int_equal(wr_icmp_build_echo(&a4, &b4, 64, 8, 1, 1, huge, 65508, hout, sizeof(hout)),
                   WR_ERR_LIMIT);
  assert_int_equal(wr_icmp_build_echo(&a4, &b4, 64, 8, 1, 1, huge, 65507, hout, sizeof(hout)),
                   65535);
  wr_ipaddr b6 = addr("::2");
  assert_int_equal(wr_icmp_build_echo(&a6, &b6, 64, 128, 1, 1, huge, 65528, hout, sizeof(hout)),
                   WR_ERR_LIMIT);
  assert_int_equal(wr_icmp_build_echo(&a6, &b6, 64, 128, 1, 1, huge, 65527, hout, sizeof(hout)),
                   65575);

  /* Bare ping-socket messages: ICMPv4 with checksum, ICMPv6 with zero. */
  assert_int_equal(wr_icmp_msg_build_echo(4, 8, 0x4242, 1, (const uint8_t *)PING_DATA,
                                          strlen(PING_DATA), out, sizeof(out)),
                   28);
  size_t n;
  uint8_t *req = unit_hex(capture_hex[0], &n);
  assert_memory_equal(out, req + 20, 28);
  free(req);
  assert_int_equal(wr_inet_checksum(out, 28), 0);
  assert_int_equal(wr_icmp_msg_build_echo(6, 128, 1, 2, (const uint8_t *)"ab", 2, out, sizeof(out)),
                   10);
  assert_memory_equal(out, "\x80\x00\x00\x00\x00\x01\x00\x02" "ab", 10);
  assert_int_equal(wr_icmp_msg_build_echo(6, 128, 1, 2, (const uint8_t *)"ab", 2, out, 9),
                   WR_ERR_LIMIT);
  assert_int_equal(wr_icmp_msg_build_echo(7, 128, 1, 2, NULL, 0, out, sizeof(out)), WR_ERR_INVAL);

  /* RFC 1071 example words and odd lengths. */
  const uint8_t rfc[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  assert_int_equal(wr_inet_checksum(rfc, sizeof(rfc)), (uint16_t)~0xddf2);
  const uint8_t odd[] = {0x01, 0x02, 0x03};
  assert_int_equal(wr_inet_checksum(odd, 3), (uint16_t)~(0x0102 + 0x0300));
  assert_int_equal(wr_inet_checksum(NULL, 0), 0xffff);
}

static void test_addresses(void **state) {
  (void)state;
  wr_ipaddr a, b;
  char s[64];
  assert_int_equal(wr_ipaddr_parse("192.0.2.10", &a), 0);
  assert_int_equal(a.version, 4);
  assert_memory_equal(a.b, "\xc0\x00\x02\x0a", 4);
  assert_int_equal(wr_ipaddr_parse("2001:DB8::1", &b), 0);
  assert_int_equal(b.version, 6);
  assert_int_equal(wr_ipaddr_format(&b, s, sizeof(s)), 11);
  assert_string_equal(s, "2001:db8::1");
  assert_int_equal(wr_ipaddr_format(&b, s, 11), WR_ERR_LIMIT);
  assert_false(wr_ipaddr_equal(&a, &b));
  assert_true(wr_ipaddr_equal(&a, &a));
  assert_int_equal(wr_ipaddr_parse("300.1.1.1", &a), WR_ERR_PROTO);
  assert_int_equal(wr_ipaddr_parse("fe80::1%eth0", &a), WR_ERR_PROTO);
  assert_int_equal(wr_ipaddr_parse("", &a), WR_ERR_PROTO);
  a.version = 5;
  assert_int_equal(wr_ipaddr_format(&a, s, sizeof(s)), WR_ERR_INVAL);
}

int main(void) {
  return UNIT_RUN(
      NULL, NULL,
      UNIT_TESTS(test_capture_matches_vector_file, test_capture_requests_and_replies,
                 test_capture_time_exceeded, test_icmpv6_checksum_vector, test_icmpv6_time_exceeded,
                 test_time_exceeded_quote_limits, test_spec_example_v4, test_decode_edge_cases,
                 test_builders_and_checksums, test_addresses));
}
