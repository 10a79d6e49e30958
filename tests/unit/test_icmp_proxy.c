/* The connector's ICMP proxy (connector/icmp_proxy.h): the pure parts (flow
 * key, reply rewrite, time exceeded) against the captured datagrams, then
 * the proxy itself pinging 127.0.0.1 and ::1 through real sockets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/icmp_proxy.h"
#include "lib/err.h"
#include "lib/log.h"
#include "proto/ippacket.h"
#include "unit.h"

/* ---- the ICMP lines of quic/datagrams-v2.txt --------------------------- */

typedef struct vec {
  int from_edge;
  uint8_t *b; /* without the datagram type byte */
  size_t len;
} vec;

/* The lines ending in datagram type 01 (IP packet), in file order:
 * request, reply, request, reply, TTL-1 request, time exceeded. */
static size_t load_icmp_vectors(vec *out, size_t cap) {
  size_t n, count = 0;
  char *text = (char *)unit_read_vector("quic/datagrams-v2.txt", &n);
  for (char *line = strtok(text, "\n"); line && count < cap; line = strtok(NULL, "\n")) {
    char dir[32], hex[4096];
    if (sscanf(line, "%31s %4095s", dir, hex) != 2 || dir[0] == '#') continue;
    size_t hl = strlen(hex);
    if (hl < 2 || strcmp(hex + hl - 2, "01") != 0) continue;
    hex[hl - 2] = 0;
    out[count].from_edge = strcmp(dir, "from-edge") == 0;
    out[count].b = unit_hex(hex, &out[count].len);
    count++;
  }
  free(text);
  return count;
}

static void free_vectors(vec *v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i].b);
}

static wr_ipaddr addr(const char *s) {
  wr_ipaddr a;
  assert_int_equal(wr_ipaddr_parse(s, &a), 0);
  return a;
}

/* Frees |p| and runs the default loop until its handles are closed. */
static void proxy_free(wr_icmp_proxy *p) {
  wr_icmp_proxy_free(p);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}

/* Forgets the flows answering to |reply_user|: |active| flows are left. */
static void assert_forget(wr_icmp_proxy *p, void *reply_user, uint64_t active) {
  wr_icmp_proxy_stats st;
  wr_icmp_proxy_forget(p, reply_user);
  wr_icmp_proxy_stats_get(p, &st);
  assert_int_equal(st.flows_active, active);
}

/* Each request of the capture gives the reply the connector sent: echo
 * requests are forwarded on the flow (192.0.2.10, 127.0.0.1, 0x4242) and
 * the kernel's reply (with whatever id it assigned) is rewritten to the
 * captured bytes; the TTL-1 request is answered from 192.0.2.2. */
static void test_vectors_replies(void **state) {
  (void)state;
  vec v[8];
  size_t n = load_icmp_vectors(v, 8);
  assert_int_equal(n, 6);
  wr_ipaddr src4 = addr("192.0.2.2"), src6 = addr("2001:db8::2");
  wr_ipaddr host = addr("127.0.0.1");
  uint8_t out[2048], msg[2048];
  size_t forwarded = 0, answered = 0;
  for (size_t i = 0; i + 1 < n; i += 2) {
    assert_true(v[i].from_edge);
    assert_false(v[i + 1].from_edge);
    wr_icmp_action act;
    assert_int_equal(
        wr_icmp_proxy_classify(v[i].b, v[i].len, &src4, &src6, &act, out, sizeof(out)), WR_OK);
    if (act.kind == WR_ICMP_ACT_TIME_EXCEEDED) {
      assert_int_equal(act.reply_len, v[i + 1].len);
      assert_memory_equal(out, v[i + 1].b, act.reply_len);
      answered++;
      continue;
    }
    assert_int_equal(act.kind, WR_ICMP_ACT_FORWARD);
    assert_true(wr_ipaddr_equal(&act.key.src, &(wr_ipaddr){4, {192, 0, 2, 10}}));
    assert_true(wr_ipaddr_equal(&act.key.dst, &host));
    assert_int_equal(act.key.echo_id, 0x4242);
    assert_int_equal(act.seq, forwarded + 1);
    /* What the ping socket reads: a bare echo reply with the kernel's id. */
    int ml = wr_icmp_msg_build_echo(4, WR_ICMPV4_ECHO_REPLY, 0x9abc, act.seq, act.data,
                                    act.data_len, msg, sizeof(msg));
    assert_true(ml > 0);
    int rl = wr_icmp_proxy_build_reply(&act.key, &host, msg, (size_t)ml, out, sizeof(out));
    assert_int_equal(rl, v[i + 1].len);
    assert_memory_equal(out, v[i + 1].b, (size_t)rl);
    forwarded++;
  }
  assert_int_equal(forwarded, 2);
  assert_int_equal(answered, 1);
  free_vectors(v, n);
}

/* cloudflared's flow3Tuple: (src IP, dst IP, original echo id). */
static void test_flow_key(void **state) {
  (void)state;
  vec v[8];
  size_t n = load_icmp_vectors(v, 8);
  wr_ipaddr src4 = addr("192.0.2.2"), src6 = addr("::");
  uint8_t out[2048];
  wr_icmp_action a1, a2;
  assert_int_equal(wr_icmp_proxy_classify(v[0].b, v[0].len, &src4, &src6, &a1, out, sizeof(out)),
                   0);
  assert_int_equal(wr_icmp_proxy_classify(v[2].b, v[2].len, &src4, &src6, &a2, out, sizeof(out)),
                   0);
  assert_true(wr_icmp_flow_key_equal(&a1.key, &a2.key)); /* seq 1 and 2: one flow */
  wr_icmp_flow_key k = a1.key;
  k.echo_id++;
  assert_false(wr_icmp_flow_key_equal(&a1.key, &k));
  k = a1.key;
  k.src.b[3]++;
  assert_false(wr_icmp_flow_key_equal(&a1.key, &k));
  k = a1.key;
  k.dst = addr("127.0.0.2");
  assert_false(wr_icmp_flow_key_equal(&a1.key, &k));
  k = a1.key;
  k.dst = addr("::ffff:127.0.0.1"); /* another family is another flow */
  assert_false(wr_icmp_flow_key_equal(&a1.key, &k));
  free_vectors(v, n);
}

static void test_build_reply_rejects(void **state) {
  (void)state;
  wr_icmp_flow_key k = {addr("10.0.0.2"), addr("10.99.0.1"), 7};
  wr_ipaddr from = addr("10.99.0.1"), from6 = addr("fd99::1");
  uint8_t msg[64], out[128];
  int ml = wr_icmp_msg_build_echo(4, WR_ICMPV4_ECHO_REQUEST, 1, 1, (const uint8_t *)"x", 1, msg,
                                  sizeof(msg));
  assert_int_equal(wr_icmp_proxy_build_reply(&k, &from, msg, (size_t)ml, out, sizeof(out)),
                   WR_ERR_PROTO); /* not a reply */
  ml = wr_icmp_msg_build_echo(4, WR_ICMPV4_ECHO_REPLY, 1, 9, (const uint8_t *)"x", 1, msg,
                              sizeof(msg));
  assert_int_equal(wr_icmp_proxy_build_reply(&k, &from, msg, 7, out, sizeof(out)), WR_ERR_TRUNC);
  assert_int_equal(wr_icmp_proxy_build_reply(&k, &from6, msg, (size_t)ml, out, sizeof(out)),
                   WR_ERR_PROTO); /* family mismatch */
  assert_int_equal(wr_icmp_proxy_build_reply(&k, &from, msg, (size_t)ml, out, 20), WR_ERR_LIMIT);
  int rl = wr_icmp_proxy_build_reply(&k, &from, msg, (size_t)ml, out, sizeof(out));
  assert_int_equal(rl, 20 + 8 + 1);
  wr_ip_packet ip;
  wr_icmp icmp;
  assert_int_equal(wr_ip_icmp_decode(out, (size_t)rl, &ip, &icmp), 0);
  assert_int_equal(ip.ttl, 255);
  assert_true(wr_ipaddr_equal(&ip.src, &from));
  assert_true(wr_ipaddr_equal(&ip.dst, &k.src));
  assert_int_equal(icmp.type, WR_ICMPV4_ECHO_REPLY);
  assert_int_equal(icmp.echo_id, 7);
  assert_int_equal(icmp.echo_seq, 9);
  assert_true(wr_icmp_checksum_ok(&ip, &icmp));

  /* IPv6: the ICMPv6 checksum covers the rewritten pseudo-header. */
  wr_icmp_flow_key k6 = {addr("fd00::2"), addr("fd99::1"), 0x1234};
  ml = wr_icmp_msg_build_echo(6, WR_ICMPV6_ECHO_REPLY, 0x55, 3, (const uint8_t *)"abc", 3, msg,
                              sizeof(msg));
  rl = wr_icmp_proxy_build_reply(&k6, &from6, msg, (size_t)ml, out, sizeof(out));
  assert_int_equal(rl, 40 + 8 + 3);
  assert_int_equal(wr_ip_icmp_decode(out, (size_t)rl, &ip, &icmp), 0);
  assert_int_equal(ip.ttl, 255);
  assert_int_equal(icmp.type, WR_ICMPV6_ECHO_REPLY);
  assert_int_equal(icmp.echo_id, 0x1234);
  assert_true(wr_icmp_checksum_ok(&ip, &icmp));
}

/* Not ICMP echo requests: dropped with a reason; TTL / hop limit <= 1 is
 * answered for any ICMP (cloudflared checks the TTL first). */
static void test_classify(void **state) {
  (void)state;
  wr_ipaddr src4 = addr("192.0.2.2"), src6 = addr("2001:db8::2");
  wr_ipaddr c4 = addr("10.0.0.2"), h4 = addr("10.99.0.1");
  wr_ipaddr c6 = addr("fd00::2"), h6 = addr("fd99::1");
  uint8_t pkt[256], out[2048];
  wr_icmp_action act;
  int n = wr_icmp_build_echo(&c4, &h4, 64, WR_ICMPV4_ECHO_REPLY, 1, 1, NULL, 0, pkt, sizeof(pkt));
  assert_int_equal(wr_icmp_proxy_classify(pkt, (size_t)n, &src4, &src6, &act, out, sizeof(out)),
                   WR_ERR_UNSUPPORTED);
  pkt[9] = 17; /* UDP */
  assert_int_equal(wr_icmp_proxy_classify(pkt, (size_t)n, &src4, &src6, &act, out, sizeof(out)),
                   WR_ERR_UNSUPPORTED);
  assert_int_equal(wr_icmp_proxy_classify(pkt, 10, &src4, &src6, &act, out, sizeof(out)),
                   WR_ERR_TRUNC);
  assert_int_equal(wr_icmp_proxy_classify(pkt, 0, &src4, &src6, &act, out, sizeof(out)),
                   WR_ERR_TRUNC);
  pkt[0] = 0x55; /* version 5 */
  assert_int_equal(wr_icmp_proxy_classify(pkt, (size_t)n, &src4, &src6, &act, out, sizeof(out)),
                   WR_ERR_PROTO);

  /* IPv6 echo request, hop limit 64: forwarded. */
  n = wr_icmp_build_echo(&c6, &h6, 64, WR_ICMPV6_ECHO_REQUEST, 0x77, 5, (const uint8_t *)"hi", 2,
                         pkt, sizeof(pkt));
  assert_int_equal(wr_icmp_proxy_classify(pkt, (size_t)n, &src4, &src6, &act, out, sizeof(out)),
                   0);
  assert_int_equal(act.kind, WR_ICMP_ACT_FORWARD);
  assert_int_equal(act.key.echo_id, 0x77);
  assert_int_equal(act.seq, 5);
  assert_int_equal(act.data_len, 2);
  assert_true(wr_ipaddr_equal(&act.key.src, &c6));

  /* Hop limit 1: time exceeded from the IPv6 source, quoting the packet. */
  pkt[7] = 1;
  assert_int_equal(wr_icmp_proxy_classify(pkt, (size_t)n, &src4, &src6, &act, out, sizeof(out)),
                   0);
  assert_int_equal(act.kind, WR_ICMP_ACT_TIME_EXCEEDED);
  assert_int_equal(act.reply_len, 40 + 8 + (size_t)n);
  wr_ip_packet ip;
  wr_icmp icmp;
  assert_int_equal(wr_ip_icmp_decode(out, act.reply_len, &ip, &icmp), 0);
  assert_true(wr_ipaddr_equal(&ip.src, &src6));
  assert_true(wr_ipaddr_equal(&ip.dst, &c6));
  assert_int_equal(ip.ttl, 255);
  assert_int_equal(icmp.type, WR_ICMPV6_TIME_EXCEEDED);
  assert_true(wr_icmp_checksum_ok(&ip, &icmp));
  assert_memory_equal(out + 48, pkt, (size_t)n);

  /* TTL 0 and a non-echo ICMP message with TTL 1 are answered too. */
  n = wr_icmp_build_echo(&c4, &h4, 0, WR_ICMPV4_ECHO_REPLY, 1, 1, NULL, 0, pkt, sizeof(pkt));
  assert_int_equal(wr_icmp_proxy_classify(pkt, (size_t)n, &src4, &src6, &act, out, sizeof(out)),
                   0);
  assert_int_equal(act.kind, WR_ICMP_ACT_TIME_EXCEEDED);
  assert_memory_equal(out + 12, src4.b, 4);
  assert_int_equal(wr_icmp_proxy_classify(pkt, (size_t)n, &src4, &src6, &act, out, 30),
                   WR_ERR_LIMIT);
}

static void test_new_rejects(void **state) {
  (void)state;
  wr_icmp_proxy *p = (wr_icmp_proxy *)1;
  wr_icmp_proxy_config c = {0};
  assert_int_equal(wr_icmp_proxy_new(&c, &p), WR_ERR_INVAL); /* no loop */
  assert_null(p);
  c.loop = uv_default_loop();
  c.src4 = "::1";
  assert_int_equal(wr_icmp_proxy_new(&c, &p), WR_ERR_INVAL);
  c.src4 = "not-an-address";
  assert_int_equal(wr_icmp_proxy_new(&c, &p), WR_ERR_INVAL);
  c.src4 = NULL;
  c.src6 = "10.0.0.1";
  assert_int_equal(wr_icmp_proxy_new(&c, &p), WR_ERR_INVAL);
  c.src6 = "fe80::1%";
  c.src4 = "127.0.0.1";
  c.sock_mode = WR_ICMP_SOCK_RAW;
  assert_int_equal(wr_icmp_proxy_new(&c, &p), WR_OK); /* "%" with an empty zone is allowed */
  wr_ipaddr s4, s6;
  wr_icmp_proxy_sources(p, &s4, &s6);
  assert_true(wr_ipaddr_equal(&s4, &(wr_ipaddr){4, {127, 0, 0, 1}}));
  assert_int_equal(s6.version, 6);
  proxy_free(p);
}

static void test_detect_sources(void **state) {
  (void)state;
  wr_ipaddr a4, a6;
  char zone[32];
  assert_int_equal(wr_icmp_proxy_detect_src4(&a4), 0);
  assert_int_equal(a4.version, 4);
  assert_int_equal(wr_icmp_proxy_detect_src6(&a4, &a6, zone, sizeof(zone)), 0);
  assert_int_equal(a6.version, 6);
  /* The interface holding 127.0.0.1 is lo; if lo has ::1, that is picked. */
  wr_ipaddr lo = addr("127.0.0.1");
  assert_int_equal(wr_icmp_proxy_detect_src6(&lo, &a6, zone, sizeof(zone)), 0);
  if (wr_ipaddr_equal(&a6, &(wr_ipaddr){6, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}}))
    assert_string_equal(zone, "lo");
}

/* ---- the proxy over real sockets on loopback ----------------------------- */

typedef struct got {
  uint8_t pkt[8][256];
  size_t len[8];
  size_t n;
  void *user;
} got;

static void on_reply(void *user, const uint8_t *pkt, size_t len) {
  got *g = user;
  if (g->n < 8 && len <= sizeof(g->pkt[0])) {
    memcpy(g->pkt[g->n], pkt, len);
    g->len[g->n] = len;
  }
  g->n++;
}

typedef struct waiter {
  uv_timer_t t;
  got *g;
  size_t want;
  wr_icmp_proxy *p;
  int want_no_flows;
  int ticks;
} waiter;

static void on_tick(uv_timer_t *t) {
  waiter *w = t->data;
  wr_icmp_proxy_stats st;
  wr_icmp_proxy_stats_get(w->p, &st);
  int done = w->want_no_flows ? st.flows_active == 0 : w->g->n >= w->want;
  if (done || ++w->ticks > 1500) { /* a bound, not a timing */
    uv_timer_stop(t);
    uv_stop(t->loop);
  }
}

/* Runs the loop until |g| has |want| replies (or no flows are left). */
static void wait_for(wr_icmp_proxy *p, got *g, size_t want, int no_flows) {
  waiter w = {.g = g, .want = want, .p = p, .want_no_flows = no_flows};
  uv_timer_init(uv_default_loop(), &w.t);
  w.t.data = &w;
  uv_timer_start(&w.t, on_tick, 10, 10);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&w.t, NULL);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}

/* A proxy with |c|, or the test skipped when this host cannot send ICMP
 * for IP version |ip| (no ping socket: see ping_group_range). */
static wr_icmp_proxy *loopback_proxy(const wr_icmp_proxy_config *c, int ip) {
  wr_icmp_proxy *p;
  assert_int_equal(wr_icmp_proxy_new(c, &p), 0);
  if (!wr_icmp_proxy_enabled(p, ip)) {
    proxy_free(p);
    skip();
  }
  return p;
}

/* The capture replayed against 127.0.0.1 through real sockets: the
 * connector's replies are byte for byte the captured ones. */
static void test_loopback_v4_vectors(void **state) {
  (void)state;
  wr_icmp_proxy_config c = {.loop = uv_default_loop(), .src4 = "127.0.0.1", .src6 = "::1"};
  wr_icmp_proxy *p = loopback_proxy(&c, 4);
  vec v[8];
  size_t n = load_icmp_vectors(v, 8);
  got g = {0};
  assert_int_equal(wr_icmp_proxy_request(p, v[0].b, v[0].len, on_reply, &g), 0);
  wait_for(p, &g, 1, 0);
  assert_int_equal(wr_icmp_proxy_request(p, v[2].b, v[2].len, on_reply, &g), 0);
  wait_for(p, &g, 2, 0);
  assert_int_equal(g.n, 2);
  assert_int_equal(g.len[0], v[1].len);
  assert_memory_equal(g.pkt[0], v[1].b, v[1].len);
  assert_int_equal(g.len[1], v[3].len);
  assert_memory_equal(g.pkt[1], v[3].b, v[3].len);
  /* TTL 1: answered at once, from this proxy's IPv4 source. */
  assert_int_equal(wr_icmp_proxy_request(p, v[4].b, v[4].len, on_reply, &g), 0);
  assert_int_equal(g.n, 3);
  assert_int_equal(g.len[2], v[5].len);
  assert_memory_equal(g.pkt[2] + 12, "\x7f\x00\x00\x01", 4);
  assert_memory_equal(g.pkt[2] + 20, v[5].b + 20, v[5].len - 20);
  wr_icmp_proxy_stats st;
  wr_icmp_proxy_stats_get(p, &st);
  assert_int_equal(st.requests, 3);
  assert_int_equal(st.echo_sent, 2);
  assert_int_equal(st.replies, 2);
  assert_int_equal(st.time_exceeded, 1);
  assert_int_equal(st.flows_opened, 1); /* seq 1 and 2 share a flow */
  assert_int_equal(st.flows_active, 1);
  assert_forget(p, &g, 0);
  proxy_free(p);
  free_vectors(v, n);
}

/* Two clients with the same echo id are two flows; replies go to each with
 * its own address; a flow moves to the newest reply_user; the flow cap and
 * the idle timeout hold. */
static void test_loopback_flows(void **state) {
  (void)state;
  wr_icmp_proxy_config c = {.loop = uv_default_loop(), .src4 = "127.0.0.1", .src6 = "::1",
                            .max_flows = 2, .idle_timeout_ms = 3000};
  wr_icmp_proxy *p = loopback_proxy(&c, 4);
  wr_ipaddr a = addr("10.0.0.2"), b = addr("10.0.0.3"), h = addr("127.0.0.1");
  uint8_t pkt[128];
  got ga = {0}, gb = {0}, gb2 = {0};
  int n = wr_icmp_build_echo(&a, &h, 64, WR_ICMPV4_ECHO_REQUEST, 5, 1, (const uint8_t *)"A", 1,
                             pkt, sizeof(pkt));
  assert_int_equal(wr_icmp_proxy_request(p, pkt, (size_t)n, on_reply, &ga), 0);
  n = wr_icmp_build_echo(&b, &h, 64, WR_ICMPV4_ECHO_REQUEST, 5, 1, (const uint8_t *)"B", 1, pkt,
                         sizeof(pkt));
  assert_int_equal(wr_icmp_proxy_request(p, pkt, (size_t)n, on_reply, &gb), 0);
  wait_for(p, &ga, 1, 0);
  wait_for(p, &gb, 1, 0);
  assert_int_equal(ga.n, 1);
  assert_int_equal(gb.n, 1);
  wr_ip_packet ip;
  wr_icmp icmp;
  assert_int_equal(wr_ip_icmp_decode(gb.pkt[0], gb.len[0], &ip, &icmp), 0);
  assert_true(wr_ipaddr_equal(&ip.dst, &b));
  assert_int_equal(icmp.echo_id, 5);
  assert_int_equal(icmp.data[0], 'B');
  /* A third flow is over the cap. */
  wr_ipaddr c3 = addr("10.0.0.4");
  n = wr_icmp_build_echo(&c3, &h, 64, WR_ICMPV4_ECHO_REQUEST, 5, 1, NULL, 0, pkt, sizeof(pkt));
  assert_int_equal(wr_icmp_proxy_request(p, pkt, (size_t)n, on_reply, &ga), WR_ERR_LIMIT);
  /* b's flow, now from another connection: the reply goes there. */
  n = wr_icmp_build_echo(&b, &h, 64, WR_ICMPV4_ECHO_REQUEST, 5, 2, (const uint8_t *)"B", 1, pkt,
                         sizeof(pkt));
  assert_int_equal(wr_icmp_proxy_request(p, pkt, (size_t)n, on_reply, &gb2), 0);
  wait_for(p, &gb2, 1, 0);
  assert_int_equal(gb2.n, 1);
  assert_int_equal(gb.n, 1);
  wr_icmp_proxy_stats st;
  wr_icmp_proxy_stats_get(p, &st);
  assert_int_equal(st.flow_limit, 1);
  assert_int_equal(st.flows_opened, 2);
  /* Idle flows close. */
  wait_for(p, &ga, 0, 1);
  wr_icmp_proxy_stats_get(p, &st);
  assert_int_equal(st.flows_active, 0);
  assert_int_equal(st.flows_closed, 2);
  proxy_free(p);
}

static void test_loopback_v6(void **state) {
  (void)state;
  wr_icmp_proxy_config c = {.loop = uv_default_loop(), .src4 = "127.0.0.1", .src6 = "::1"};
  wr_icmp_proxy *p = loopback_proxy(&c, 6);
  wr_ipaddr a = addr("fd00::2"), h = addr("::1");
  uint8_t pkt[128];
  got g = {0};
  int n = wr_icmp_build_echo(&a, &h, 64, WR_ICMPV6_ECHO_REQUEST, 0xbeef, 7,
                             (const uint8_t *)"six", 3, pkt, sizeof(pkt));
  assert_int_equal(wr_icmp_proxy_request(p, pkt, (size_t)n, on_reply, &g), 0);
  wait_for(p, &g, 1, 0);
  assert_int_equal(g.n, 1);
  wr_ip_packet ip;
  wr_icmp icmp;
  assert_int_equal(wr_ip_icmp_decode(g.pkt[0], g.len[0], &ip, &icmp), 0);
  assert_true(wr_ipaddr_equal(&ip.src, &h));
  assert_true(wr_ipaddr_equal(&ip.dst, &a));
  assert_int_equal(ip.ttl, 255);
  assert_int_equal(icmp.type, WR_ICMPV6_ECHO_REPLY);
  assert_int_equal(icmp.echo_id, 0xbeef);
  assert_int_equal(icmp.echo_seq, 7);
  assert_memory_equal(icmp.data, "six", 3);
  assert_true(wr_icmp_checksum_ok(&ip, &icmp));
  /* Hop limit 1: time exceeded from ::1. */
  pkt[7] = 1;
  assert_int_equal(wr_icmp_proxy_request(p, pkt, (size_t)n, on_reply, &g), 0);
  assert_int_equal(g.n, 2);
  assert_int_equal(wr_ip_icmp_decode(g.pkt[1], g.len[1], &ip, &icmp), 0);
  assert_true(wr_ipaddr_equal(&ip.src, &h));
  assert_int_equal(icmp.type, WR_ICMPV6_TIME_EXCEEDED);
  /* Garbage is counted, never fatal. */
  assert_int_equal(wr_icmp_proxy_request(p, pkt, 3, on_reply, &g), WR_ERR_TRUNC);
  wr_icmp_proxy_stats st;
  wr_icmp_proxy_stats_get(p, &st);
  assert_int_equal(st.malformed, 1);
  proxy_free(p);
}

/* ---- inside a network namespace (tests/e2e/test_icmp_proxy.py) ----------
 * WR_ICMP_NETNS=dgram|auto|off: the namespace's lo holds 10.99.0.1/32 and
 * fd99::1/128. "dgram": ping_group_range admits us and the proxy must use
 * ping sockets only; "auto": it does not, root falls back to raw sockets;
 * "off": neither works (no group, no CAP_NET_RAW), everything is dropped.
 * Without the variable the test is skipped. */

static void ping_and_check(wr_icmp_proxy *p, const char *client, const char *host, uint16_t id,
                           got *g, size_t nseq) {
  wr_ipaddr c = addr(client), h = addr(host);
  uint8_t pkt[128];
  uint8_t type = c.version == 4 ? WR_ICMPV4_ECHO_REQUEST : WR_ICMPV6_ECHO_REQUEST;
  for (size_t seq = 1; seq <= nseq; seq++) {
    int n = wr_icmp_build_echo(&c, &h, 64, type, id, (uint16_t)seq, (const uint8_t *)client,
                               strlen(client), pkt, sizeof(pkt));
    assert_int_equal(wr_icmp_proxy_request(p, pkt, (size_t)n, on_reply, g), 0);
    wait_for(p, g, seq, 0);
  }
  assert_int_equal(g->n, nseq);
  for (size_t i = 0; i < nseq; i++) {
    wr_ip_packet ip;
    wr_icmp icmp;
    assert_int_equal(wr_ip_icmp_decode(g->pkt[i], g->len[i], &ip, &icmp), 0);
    assert_true(wr_ipaddr_equal(&ip.src, &h));
    assert_true(wr_ipaddr_equal(&ip.dst, &c));
    assert_int_equal(ip.ttl, 255);
    assert_int_equal(icmp.type, c.version == 4 ? WR_ICMPV4_ECHO_REPLY : WR_ICMPV6_ECHO_REPLY);
    assert_int_equal(icmp.echo_id, id); /* the client's id, not the socket's */
    assert_int_equal(icmp.echo_seq, i + 1);
    assert_int_equal(icmp.data_len, strlen(client));
    assert_memory_equal(icmp.data, client, icmp.data_len);
    assert_true(wr_icmp_checksum_ok(&ip, &icmp));
  }
}

static void test_netns(void **state) {
  (void)state;
  const char *mode = getenv("WR_ICMP_NETNS");
  if (!mode) skip();
  wr_log_set_level(WR_LOG_DEBUG);
  wr_icmp_proxy_config c = {.loop = uv_default_loop()};
  c.sock_mode = strcmp(mode, "dgram") == 0 ? WR_ICMP_SOCK_DGRAM : WR_ICMP_SOCK_AUTO;
  wr_icmp_proxy *p;
  assert_int_equal(wr_icmp_proxy_new(&c, &p), 0);
  wr_ipaddr s4, s6;
  wr_icmp_proxy_sources(p, &s4, &s6);
  /* No route to 192.168.0.1 in the namespace: cloudflared falls back to
   * 0.0.0.0; lo's first IPv6 address is the IPv6 source. */
  assert_true(wr_ipaddr_equal(&s4, &(wr_ipaddr){4, {0}}));
  assert_int_equal(s6.version, 6);
  wr_ipaddr v4c = addr("100.64.0.9"), v4h = addr("10.99.0.1");
  uint8_t pkt[128];
  got ttl = {0};
  int n = wr_icmp_build_echo(&v4c, &v4h, 1, WR_ICMPV4_ECHO_REQUEST, 1, 1, NULL, 0, pkt,
                             sizeof(pkt));
  if (strcmp(mode, "off") == 0) {
    assert_false(wr_icmp_proxy_enabled(p, 4));
    assert_false(wr_icmp_proxy_enabled(p, 6));
    assert_int_equal(wr_icmp_proxy_request(p, pkt, (size_t)n, on_reply, &ttl), WR_ERR_UNSUPPORTED);
    assert_int_equal(ttl.n, 0);
    proxy_free(p);
    return;
  }
  assert_true(wr_icmp_proxy_enabled(p, 4));
  assert_true(wr_icmp_proxy_enabled(p, 6));
  /* Two clients using the same echo id, and an IPv6 client. */
  got a = {0}, b = {0}, six = {0};
  ping_and_check(p, "100.64.0.9", "10.99.0.1", 0x1111, &a, 3);
  ping_and_check(p, "100.64.0.10", "10.99.0.1", 0x1111, &b, 2);
  ping_and_check(p, "fd00::9", "fd99::1", 0x2222, &six, 2);
  assert_int_equal(a.n, 3); /* b's replies did not go to a */
  /* TTL 1: time exceeded from the connector's IPv4 source. */
  assert_int_equal(wr_icmp_proxy_request(p, pkt, (size_t)n, on_reply, &ttl), 0);
  assert_int_equal(ttl.n, 1);
  wr_ip_packet ip;
  wr_icmp icmp;
  assert_int_equal(wr_ip_icmp_decode(ttl.pkt[0], ttl.len[0], &ip, &icmp), 0);
  assert_int_equal(icmp.type, WR_ICMPV4_TIME_EXCEEDED);
  assert_true(wr_ipaddr_equal(&ip.src, &s4));
  assert_true(wr_ipaddr_equal(&ip.dst, &v4c));
  wr_icmp_proxy_stats st;
  wr_icmp_proxy_stats_get(p, &st);
  assert_int_equal(st.flows_opened, 3);
  assert_int_equal(st.replies, 7);
  assert_int_equal(st.send_errors, 0);
  assert_forget(p, &a, 2);
  proxy_free(p);
}

int main(void) {
  /* In the namespace only the namespace test runs (maybe as another user). */
  if (getenv("WR_ICMP_NETNS")) cmocka_set_test_filter("test_netns");
  return UNIT_RUN(
      NULL, NULL,
      UNIT_TESTS(test_vectors_replies, test_flow_key, test_build_reply_rejects, test_classify,
                 test_new_rejects, test_detect_sources, test_loopback_v4_vectors,
                 test_loopback_flows, test_loopback_v6, test_netns));
}
