/* The edge's user-space TCP stack (edge/tcpstack.h) fed hand-built IPv4 and
 * IPv6 segments: handshake to any address and port, data both ways,
 * receive-window backpressure, send-buffer backpressure, FIN, RST, refusal,
 * caps and malformed packets. Every packet the stack emits has its IP and
 * TCP checksums verified. */
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "edge/tcpstack.h"
#include "lib/err.h"
#include "proto/ippacket.h"
#include "tcpseg.h"
#include "unit.h"

typedef struct tflow {
  wr_tcpflow *f;
  uint8_t got[200000];
  size_t got_len;
  int fin, closed, reason, writable;
  size_t take_max; /* on_data takes at most this per call (SIZE_MAX: all) */
} tflow;

static struct {
  uv_loop_t loop;
  wr_tcpstack *s;
  pkt out[256];
  size_t nout;
  tflow flows[8];
  size_t nflows;
  int refuse;
  void *last_ingress;
} T;

/* ---- stack callbacks ---------------------------------------------------------- */

static void cb_output(void *user, const uint8_t *p, size_t len, void *ingress) {
  assert_true(len <= sizeof(T.out[0].b));
  assert_true(T.nout < 256);
  memcpy(T.out[T.nout].b, p, len);
  T.out[T.nout].len = len;
  T.nout++;
  T.last_ingress = ingress;
}

static int cb_flow(void *user, wr_tcpflow *f, void *ingress, const wr_ipaddr *src,
                   uint16_t sport, const wr_ipaddr *dst, uint16_t dport, void **fu) {
  if (T.refuse) return -1;
  tflow *t = &T.flows[T.nflows++];
  memset(t, 0, sizeof(*t));
  t->f = f;
  t->take_max = SIZE_MAX;
  *fu = t;
  return 0;
}

static size_t cb_data(void *fu, const uint8_t *d, size_t n) {
  tflow *t = fu;
  if (!n) {
    t->fin = 1;
    return 0;
  }
  if (n > t->take_max) n = t->take_max;
  assert_true(t->got_len + n <= sizeof(t->got));
  memcpy(t->got + t->got_len, d, n);
  t->got_len += n;
  return n;
}

static void cb_writable(void *fu) { ((tflow *)fu)->writable++; }

static void cb_close(void *fu, int reason) {
  tflow *t = fu;
  t->closed = 1;
  t->reason = reason;
}

static int setup(void **state) {
  memset(&T, 0, sizeof(T));
  uv_loop_init(&T.loop);
  wr_tcpstack_config c = {
      .loop = &T.loop,
      .cbs = {cb_output, cb_flow, cb_data, cb_writable, cb_close},
      .max_flows_per_client = 3,
  };
  assert_int_equal(wr_tcpstack_new(&c, &T.s), WR_OK);
  return 0;
}

static int teardown(void **state) {
  wr_tcpstack_free(T.s);
  unit_loop_finish(&T.loop);
  return 0;
}

static void tick(uv_timer_t *t) { (void)t; }

/* Lets lwIP's timers run for |ms| (delayed ACKs, retransmissions). */
static void run_ms(uint64_t ms) {
  uv_timer_t t;
  uv_timer_init(&T.loop, &t);
  uv_timer_start(&t, tick, ms, 0);
  uv_run(&T.loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&T.loop, UV_RUN_NOWAIT);
}

#define ING ((void *)&T)

static void in(const char *src, uint16_t sport, const char *dst, uint16_t dport, uint32_t seq,
               uint32_t ack, uint8_t flags, uint16_t win, const void *d, size_t n, int want) {
  pkt p;
  build(&p, src, sport, dst, dport, seq, ack, flags, win, d, n);
  assert_int_equal(wr_tcpstack_input(T.s, p.b, p.len, ING), want);
}

/* Handshake from |cli|:|cp| to |dst|:|dp|; returns the server's ISN + 1. */
static uint32_t connect_to(const char *cli, uint16_t cp, const char *dst, uint16_t dp) {
  T.nout = 0;
  in(cli, cp, dst, dp, 1000, 0, F_SYN, 65535, NULL, 0, WR_OK);
  assert_int_equal(T.nout, 1);
  seg g = parse(&T.out[0]);
  assert_int_equal(g.flags, F_SYN | F_ACK);
  assert_int_equal(g.ack, 1001);
  assert_int_equal(g.sport, dp);
  assert_int_equal(g.dport, cp);
  wr_ipaddr d;
  wr_ipaddr_parse(dst, &d);
  assert_true(wr_ipaddr_equal(&g.ip.src, &d));
  assert_ptr_equal(T.last_ingress, ING);
  T.nout = 0;
  in(cli, cp, dst, dp, 1001, g.seq + 1, F_ACK, 65535, NULL, 0, WR_OK);
  return g.seq + 1;
}

static void exchange(const char *cli, const char *dst) {
  uint32_t iss = connect_to(cli, 40000, dst, 80);
  tflow *t = &T.flows[0];
  assert_int_equal(T.nflows, 1);
  /* Client -> stack. */
  in(cli, 40000, dst, 80, 1001, iss, F_ACK | F_PSH, 65535, "ping", 4, WR_OK);
  assert_int_equal(t->got_len, 4);
  assert_memory_equal(t->got, "ping", 4);
  wr_tcpflow_consume(t->f, 4);
  /* Stack -> client. */
  T.nout = 0;
  assert_int_equal(wr_tcpflow_write(t->f, (const uint8_t *)"hello", 5), 5);
  assert_true(T.nout >= 1);
  seg g = parse(&T.out[T.nout - 1]);
  assert_int_equal(g.n, 5);
  assert_memory_equal(g.data, "hello", 5);
  assert_int_equal(g.seq, iss);
  assert_int_equal(g.ack, 1005);
  /* Client FIN, then ours; the client's ACK of it ends the flow. */
  in(cli, 40000, dst, 80, 1005, iss + 5, F_ACK | F_FIN, 65535, NULL, 0, WR_OK);
  assert_int_equal(t->fin, 1);
  assert_int_equal(t->closed, 0);
  T.nout = 0;
  wr_tcpflow_shutdown_write(t->f);
  assert_int_equal(t->closed, 1);
  assert_int_equal(t->reason, WR_TCPFLOW_CLOSED);
  assert_true(T.nout >= 1);
  g = parse(&T.out[T.nout - 1]);
  assert_true(g.flags & F_FIN);
  assert_int_equal(g.seq, iss + 5);
  assert_int_equal(g.ack, 1006);
  /* lwIP finishes the close; its last ACK still reaches our ingress. */
  T.nout = 0;
  in(cli, 40000, dst, 80, 1006, iss + 6, F_ACK, 65535, NULL, 0, WR_OK);
  assert_int_equal(wr_tcpstack_get_stats(T.s)->flows_active, 0);
  assert_int_equal(wr_tcpstack_get_stats(T.s)->out_dropped, 0);
}

static void test_v4_exchange(void **state) { exchange("10.0.0.1", "10.99.0.5"); }
static void test_v6_exchange(void **state) { exchange("fd00::1", "fd99::5"); }

/* Two flows to different destinations and ports at once. */
static void test_any_destination(void **state) {
  connect_to("10.0.0.1", 40001, "10.99.0.5", 22);
  connect_to("10.0.0.1", 40002, "192.168.7.9", 8443);
  connect_to("fd00::1", 40003, "fd99::1234", 5432);
  assert_int_equal(T.nflows, 3);
  assert_int_equal(wr_tcpstack_get_stats(T.s)->flows_active, 3);
}

/* The receive window closes while bytes are taken but not consumed, and
 * delivery pauses while on_data takes nothing. */
static void test_receive_window(void **state) {
  uint32_t iss = connect_to("10.0.0.1", 40010, "10.99.0.5", 80);
  tflow *t = &T.flows[0];
  static uint8_t chunk[1400];
  memset(chunk, 'x', sizeof(chunk));
  uint32_t seq = 1001;
  size_t sent = 0;
  T.nout = 0;
  while (sent + sizeof(chunk) <= 65535) {
    in("10.0.0.1", 40010, "10.99.0.5", 80, seq, iss, F_ACK, 65535, chunk, sizeof(chunk), WR_OK);
    seq += sizeof(chunk);
    sent += sizeof(chunk);
  }
  assert_int_equal(t->got_len, sent);
  run_ms(600); /* a delayed ACK, if any */
  assert_true(T.nout >= 1);
  seg g = parse(&T.out[T.nout - 1]);
  assert_int_equal(g.ack, seq);
  assert_true(g.win < 1400); /* nothing consumed: the window is (almost) shut */
  /* Pause delivery: on_data takes nothing, bytes stay in the stack. */
  t->take_max = 0;
  wr_tcpflow_consume(t->f, sent);
  in("10.0.0.1", 40010, "10.99.0.5", 80, seq, iss, F_ACK, 65535, "abc", 3, WR_OK);
  assert_int_equal(t->got_len, sent);
  t->take_max = SIZE_MAX;
  wr_tcpflow_resume(t->f);
  assert_int_equal(t->got_len, sent + 3);
  T.nout = 0;
  wr_tcpflow_consume(t->f, 3);
  run_ms(600);
  assert_true(T.nout >= 1);
  g = parse(&T.out[T.nout - 1]);
  assert_true(g.win > 60000); /* reopened */
}

/* The send buffer takes at most 64 KiB; client ACKs make room and
 * on_writable fires. */
static void test_send_backpressure(void **state) {
  uint32_t iss = connect_to("10.0.0.1", 40020, "10.99.0.5", 80);
  tflow *t = &T.flows[0];
  static uint8_t big[100000];
  memset(big, 'y', sizeof(big));
  T.nout = 0;
  size_t n = wr_tcpflow_write(t->f, big, sizeof(big));
  assert_true(n > 0 && n < sizeof(big));
  assert_int_equal(wr_tcpflow_write(t->f, big, 10), 0);
  assert_int_equal(t->writable, 0);
  assert_true(T.nout >= 1);
  uint32_t acked = iss;
  for (size_t i = 0; i < T.nout; i++) {
    seg g = parse(&T.out[i]);
    if (g.seq + g.n > acked) acked = g.seq + (uint32_t)g.n;
  }
  in("10.0.0.1", 40020, "10.99.0.5", 80, 1001, acked, F_ACK, 65535, NULL, 0, WR_OK);
  assert_int_equal(t->writable, 1);
  assert_true(wr_tcpflow_write(t->f, big, 10) == 10);
}

static void test_client_reset(void **state) {
  uint32_t iss = connect_to("fd00::1", 40030, "fd99::5", 80);
  tflow *t = &T.flows[0];
  in("fd00::1", 40030, "fd99::5", 80, 1001, iss, F_RST, 0, NULL, 0, WR_OK);
  assert_int_equal(t->closed, 1);
  assert_int_equal(t->reason, WR_TCPFLOW_RESET);
  assert_int_equal(wr_tcpstack_get_stats(T.s)->flows_active, 0);
}

static void test_abort_sends_rst(void **state) {
  uint32_t iss = connect_to("10.0.0.1", 40040, "10.99.0.5", 80);
  tflow *t = &T.flows[0];
  T.nout = 0;
  wr_tcpflow_abort(t->f);
  assert_int_equal(t->closed, 0); /* no callback after abort */
  assert_int_equal(T.nout, 1);
  seg g = parse(&T.out[0]);
  assert_true(g.flags & F_RST);
  assert_int_equal(g.seq, iss);
}

/* An ingress going away: its flows end with on_close(ERROR), nothing is
 * sent to it, and its tuple is free for another ingress at once. */
static void test_forget_ingress(void **state) {
  uint32_t iss = connect_to("10.0.0.1", 40045, "10.99.0.5", 80);
  (void)iss;
  tflow *t = &T.flows[0];
  T.nout = 0;
  wr_tcpstack_forget_ingress(T.s, (void *)&T.nflows); /* another ingress: no effect */
  assert_int_equal(t->closed, 0);
  wr_tcpstack_forget_ingress(T.s, ING);
  assert_int_equal(t->closed, 1);
  assert_int_equal(t->reason, WR_TCPFLOW_ERROR);
  assert_int_equal(T.nout, 0);
  assert_int_equal(wr_tcpstack_get_stats(T.s)->flows_active, 0);
  /* The same tuple from another ingress is a new connection, not "foreign". */
  pkt p;
  build(&p, "10.0.0.1", 40045, "10.99.0.5", 80, 5000, 0, F_SYN, 65535, NULL, 0);
  assert_int_equal(wr_tcpstack_input(T.s, p.b, p.len, (void *)&T.nflows), WR_OK);
  assert_int_equal(wr_tcpstack_get_stats(T.s)->foreign, 0);
  run_ms(10);
}

static void test_refused(void **state) {
  T.refuse = 1;
  T.nout = 0;
  in("10.0.0.1", 40050, "10.99.0.5", 81, 5000, 0, F_SYN, 65535, NULL, 0, WR_ERR_DENIED);
  assert_int_equal(T.nout, 1);
  seg g = parse(&T.out[0]);
  assert_int_equal(g.flags, F_RST | F_ACK);
  assert_int_equal(g.ack, 5001);
  assert_int_equal(wr_tcpstack_get_stats(T.s)->refused, 1);
}

static void test_per_client_cap(void **state) {
  for (uint16_t i = 0; i < 3; i++) connect_to("10.0.0.1", (uint16_t)(41000 + i), "10.99.0.5", 80);
  T.nout = 0;
  in("10.0.0.1", 41003, "10.99.0.5", 80, 1000, 0, F_SYN, 65535, NULL, 0, WR_ERR_LIMIT);
  assert_int_equal(T.nout, 1);
  assert_true(parse(&T.out[0]).flags & F_RST);
  /* Another client is not affected. */
  connect_to("10.0.0.2", 41003, "10.99.0.5", 80);
  assert_int_equal(wr_tcpstack_get_stats(T.s)->limited, 1);
}

static void test_malformed(void **state) {
  pkt p;
  build(&p, "10.0.0.1", 40060, "10.99.0.5", 80, 1000, 0, F_SYN, 65535, NULL, 0);
  p.b[p.len - 1] ^= 0x40; /* TCP checksum broken */
  T.nout = 0;
  assert_int_equal(wr_tcpstack_input(T.s, p.b, p.len, ING), WR_ERR_PROTO);
  assert_int_equal(wr_tcpstack_input(T.s, p.b, 10, ING), WR_ERR_PROTO);
  build(&p, "10.0.0.1", 40060, "10.99.0.5", 80, 1000, 0, F_SYN, 65535, NULL, 0);
  p.b[32] = 0x10; /* data offset 4 words */
  assert_int_equal(wr_tcpstack_input(T.s, p.b, p.len, ING), WR_ERR_PROTO);
  assert_int_equal(T.nout, 0);
  assert_int_equal(T.nflows, 0);
  assert_int_equal(wr_tcpstack_get_stats(T.s)->malformed, 3);
}

/* A stray segment (no connection) is answered with RST to its ingress. */
static void test_stray(void **state) {
  T.nout = 0;
  in("10.0.0.1", 40070, "10.99.0.5", 80, 1000, 77, F_ACK, 65535, "z", 1, WR_OK);
  assert_int_equal(T.nout, 1);
  assert_true(parse(&T.out[0]).flags & F_RST);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_FIXTURE(setup, teardown, test_v4_exchange, test_v6_exchange,
                               test_any_destination, test_receive_window, test_send_backpressure,
                               test_client_reset, test_abort_sends_rst, test_forget_ingress,
                               test_refused, test_per_client_cap, test_malformed, test_stray));
}
