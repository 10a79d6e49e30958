/* The private-network TCP glue (edge/private_tcp.h) between the edge's TCP
 * stack and data streams, driven with hand-built client segments and a fake
 * stream API (wr_private_tcp_ops) standing in for the router and the
 * connectors: the ConnectRequest a SYN opens, data both ways, half-close
 * crossing over, and the error paths (error ConnectResponse, stream reset,
 * a lost stream, client RST, no stream to open, a malformed head). */
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "edge/private_tcp.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "proto/connect.h"
#include "proto/preamble.h"
#include "tcpseg.h"
#include "unit.h"

#define CLI "10.98.0.1"
#define DST "10.99.0.5"
#define CPORT 40000
#define DPORT 8080

/* One stream the glue opened. */
typedef struct fstream {
  const wr_tunnel_stream_callbacks *cbs;
  void *user;
  wr_buf sent;           /* everything the glue wrote */
  int fin;               /* the glue's FIN */
  int64_t abandoned;     /* the abandon code; INT64_MIN: not abandoned */
  size_t consumed;
} fstream;

static struct {
  uv_loop_t loop;
  wr_private_tcp *p;
  pkt out[512];
  size_t nout;
  fstream streams[4];
  size_t nstreams;
  int open_fails;
  size_t room;           /* the stream takes at most this much more; SIZE_MAX: all */
  void *last_ingress;
} T;

#define ING ((void *)&T)

/* ---- the fake stream API ---------------------------------------------------------- */

static int f_open(void *user, void *ingress, const wr_ipaddr *src, const wr_ipaddr *dst,
                  const wr_tunnel_stream_callbacks *cbs, void *cb_user, void **stream) {
  assert_ptr_equal(ingress, ING);
  if (T.open_fails) return WR_ERR_NOTFOUND;
  assert_true(T.nstreams < 4);
  fstream *s = &T.streams[T.nstreams++];
  s->cbs = cbs;
  s->user = cb_user;
  wr_buf_init(&s->sent, 1u << 24, NULL);
  s->abandoned = INT64_MIN;
  *stream = s;
  return WR_OK;
}

static int f_write(void *stream, const uint8_t *data, size_t len, int fin, size_t *accepted) {
  fstream *s = stream;
  assert_int_equal(s->abandoned, INT64_MIN);
  assert_false(s->fin);
  size_t n = len < T.room ? len : T.room;
  if (T.room != SIZE_MAX) T.room -= n;
  if (n) wr_buf_append(&s->sent, data, n);
  *accepted = n;
  if (n < len) return WR_AGAIN;
  if (fin) s->fin = 1;
  return WR_OK;
}

static void f_consume(void *stream, size_t n) { ((fstream *)stream)->consumed += n; }

static void f_abandon(void *stream, int64_t code) {
  fstream *s = stream;
  assert_int_equal(s->abandoned, INT64_MIN);
  s->abandoned = code;
}

static void f_output(void *user, void *ingress, const uint8_t *p, size_t len) {
  pkt_record(T.out, sizeof(T.out) / sizeof(T.out[0]), &T.nout, p, len);
  T.last_ingress = ingress;
}

static const wr_private_tcp_ops fake_ops = {f_open, f_write, f_consume, f_abandon, f_output};

static int setup(void **state) {
  memset(&T, 0, sizeof(T));
  T.room = SIZE_MAX;
  uv_loop_init(&T.loop);
  wr_private_tcp_config c = {.loop = &T.loop, .ops = &fake_ops, .ops_user = &T};
  assert_int_equal(wr_private_tcp_new(&c, &T.p), WR_OK);
  return 0;
}

static int teardown(void **state) {
  wr_private_tcp_free(T.p);
  unit_loop_finish(&T.loop);
  for (size_t i = 0; i < T.nstreams; i++) wr_buf_free(&T.streams[i].sent);
  return 0;
}

/* ---- the client ------------------------------------------------------------------ */

static uint32_t cseq, sseq; /* the client's next sequence number, the server's */

static void in(uint8_t flags, const void *d, size_t n) {
  pkt p;
  build(&p, CLI, CPORT, DST, DPORT, cseq, sseq, flags, 65535, d, n);
  wr_private_tcp_input(T.p, p.b, p.len, ING);
  cseq += (uint32_t)n + ((flags & (F_SYN | F_FIN)) ? 1 : 0);
}

/* SYN, SYN-ACK, ACK. Returns the stream the SYN opened. */
static fstream *handshake(void) {
  cseq = 1000;
  sseq = 0;
  T.nout = 0;
  in(F_SYN, NULL, 0);
  assert_int_equal(T.nout, 1);
  seg g = parse(&T.out[0]);
  assert_int_equal(g.flags, F_SYN | F_ACK);
  assert_ptr_equal(T.last_ingress, ING);
  sseq = g.seq + 1;
  T.nout = 0;
  in(F_ACK, NULL, 0);
  assert_int_equal(T.nstreams, 1);
  return &T.streams[0];
}

/* Client payload and flags of what the stack sent since the last call. */
static size_t took(uint8_t *buf, size_t cap, uint8_t *flags) {
  size_t n = 0;
  *flags = 0;
  for (size_t i = 0; i < T.nout; i++) {
    seg g = parse(&T.out[i]);
    *flags |= g.flags;
    assert_true(n + g.n <= cap);
    memcpy(buf + n, g.data, g.n);
    n += g.n;
    sseq = g.seq + (uint32_t)g.n + ((g.flags & (F_SYN | F_FIN)) ? 1 : 0);
  }
  T.nout = 0;
  return n;
}

/* The connector's answer head: preamble + ConnectResponse (|error| "" ok). */
static void answer(fstream *s, const char *error, const char *data, int fin) {
  wr_buf b;
  wr_buf_init(&b, 1 << 20, NULL);
  uint8_t pre[WR_PREAMBLE_DATA_LEN];
  assert_int_equal(wr_preamble_write(WR_PREAMBLE_DATA, pre, sizeof(pre)), WR_PREAMBLE_DATA_LEN);
  wr_buf_append(&b, pre, sizeof(pre));
  wr_connect_response cr = {.error = error, .error_len = strlen(error), .has_meta = 1};
  assert_int_equal(wr_connect_response_encode(&cr, NULL, &b), WR_OK);
  if (data) assert_int_equal(wr_buf_append(&b, data, strlen(data)), WR_OK);
  s->cbs->on_data(s->user, b.data, b.len, fin);
  wr_buf_free(&b);
}

static int was_reset(void) {
  uint8_t buf[4096], fl;
  took(buf, sizeof(buf), &fl);
  return (fl & F_RST) != 0;
}

/* The client got a RST, and the stream's abandon code is |abandoned|
 * (INT64_MIN: the stream was not abandoned). */
static void assert_client_reset(const fstream *s, int64_t abandoned) {
  assert_true(was_reset());
  assert_int_equal(s->abandoned, abandoned);
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_request_and_data(void **state) {
  fstream *s = handshake();
  /* Preamble + ConnectRequest type tcp to the SYN's destination. */
  size_t pc = 0;
  assert_true(s->sent.len > WR_PREAMBLE_DATA_LEN);
  assert_int_equal(wr_preamble_classify(s->sent.data, s->sent.len, &pc, NULL), WR_PREAMBLE_DATA);
  wr_connect_request req;
  size_t used = 0;
  assert_int_equal(wr_connect_request_decode_alloc(s->sent.data + pc, s->sent.len - pc, NULL,
                                                   NULL, 0, &req, &used),
                   WR_OK);
  assert_int_equal(req.type, WR_CONNECT_TCP);
  assert_string_equal(req.dest, DST ":8080");
  wr_connect_request_free(NULL, &req);
  size_t head = pc + used;

  /* Up: bytes go to the stream before the connector answered. */
  in(F_ACK | F_PSH, "ping", 4);
  assert_int_equal(s->sent.len, head + 4);
  assert_memory_equal(s->sent.data + head, "ping", 4);

  /* Down: the head and the first bytes in one piece. */
  answer(s, "", "pong", 0);
  uint8_t buf[4096], fl;
  assert_int_equal(took(buf, sizeof(buf), &fl), 4);
  assert_memory_equal(buf, "pong", 4);
  assert_true(s->consumed > 4); /* head + data credit returned */

  /* Half-close: the client's FIN ends the stream's write side, the
   * connector still answers, then its FIN reaches the client. */
  in(F_ACK | F_FIN, NULL, 0);
  assert_true(s->fin);
  s->cbs->on_data(s->user, (const uint8_t *)"late", 4, 1);
  assert_int_equal(took(buf, sizeof(buf), &fl), 4);
  assert_memory_equal(buf, "late", 4);
  assert_true(fl & F_FIN);
  assert_false(fl & F_RST);
  in(F_ACK, NULL, 0); /* the client acks the FIN: both directions done */
  uv_run(&T.loop, UV_RUN_NOWAIT);
  assert_int_equal(s->abandoned, -1); /* ended normally, no reset */
  const wr_private_tcp_stats *st = wr_private_tcp_get_stats(T.p);
  assert_int_equal(st->streams_opened, 1);
  assert_int_equal(st->client_resets + st->connector_resets + st->connector_refused, 0);
}

/* The stream closes (both FINs) while connector bytes still wait for the
 * client's window: they are delivered, then the client's FIN, no reset. */
static void test_stream_closes_before_bytes_written(void **state) {
  fstream *s = handshake();
  in(F_ACK | F_FIN, NULL, 0);
  assert_true(s->fin);
  static char big[100001];
  memset(big, 'x', sizeof(big) - 1);
  answer(s, "", big, 1);
  s->cbs->on_close(s->user); /* QUIC closed it: both sides sent FIN */
  static uint8_t buf[200000];
  size_t got = 0;
  uint8_t fl = 0, all = 0;
  for (int i = 0; i < 50 && !(all & F_FIN); i++) {
    got += took(buf + got, sizeof(buf) - got, &fl);
    all |= fl;
    in(F_ACK, NULL, 0);
  }
  assert_int_equal(got, sizeof(big) - 1);
  assert_true(all & F_FIN);
  assert_false(all & F_RST);
  assert_int_equal(s->abandoned, INT64_MIN); /* it was gone: never touched again */
}

static void test_error_response_resets_client(void **state) {
  fstream *s = handshake();
  in(F_ACK | F_PSH, "GET /", 5);
  answer(s, "dial tcp 10.99.0.5:8080: connect: connection refused", NULL, 1);
  assert_client_reset(s, 0);
  assert_int_equal(wr_private_tcp_get_stats(T.p)->connector_refused, 1);
}

static void test_stream_reset_resets_client(void **state) {
  fstream *s = handshake();
  answer(s, "", NULL, 0);
  s->cbs->on_reset(s->user, 0);
  assert_client_reset(s, 0);
  assert_int_equal(wr_private_tcp_get_stats(T.p)->connector_resets, 1);
}

static void test_lost_stream_resets_client(void **state) {
  fstream *s = handshake();
  answer(s, "", NULL, 0);
  s->cbs->on_close(s->user); /* the connection died: no FIN came */
  assert_client_reset(s, INT64_MIN); /* nothing to abandon: it is gone */
}

static void test_client_reset_resets_stream(void **state) {
  fstream *s = handshake();
  answer(s, "", NULL, 0);
  in(F_RST | F_ACK, NULL, 0);
  uv_run(&T.loop, UV_RUN_NOWAIT);
  assert_int_equal(s->abandoned, 0);
  assert_int_equal(wr_private_tcp_get_stats(T.p)->client_resets, 1);
}

static void test_no_stream_refuses_syn(void **state) {
  T.open_fails = 1;
  cseq = 1000;
  sseq = 0;
  in(F_SYN, NULL, 0);
  assert_true(was_reset());
  assert_int_equal(T.nstreams, 0);
  assert_int_equal(wr_private_tcp_stack_stats(T.p)->refused, 1);
}

static void test_bad_preamble_resets_both(void **state) {
  fstream *s = handshake();
  s->cbs->on_data(s->user, (const uint8_t *)"HTTP/1.1 200 OK\r\n", 17, 0);
  assert_client_reset(s, 0);
  assert_int_equal(wr_private_tcp_get_stats(T.p)->bad_responses, 1);
}

static void test_fin_without_response(void **state) {
  fstream *s = handshake();
  s->cbs->on_data(s->user, NULL, 0, 1);
  assert_client_reset(s, 0);
}

/* Twice a receive window (64 KiB) up: first with the stream blocked, so
 * the client's bytes pile up in the stack and then go in one delivery once
 * the stream is writable again; then with the stream taking everything. The
 * window must reopen by exactly what the stream took each time, or the
 * second half falls outside it and is dropped. */
static void test_upload_beyond_window(void **state) {
  fstream *s = handshake();
  answer(s, "", NULL, 0);
  size_t head = s->sent.len;
  static uint8_t want[200000];
  uint8_t chunk[1000];
  size_t total = 0;
  T.room = 0; /* the QUIC stream is full */
  for (int i = 0; i < 120; i++) {
    for (size_t k = 0; k < sizeof(chunk); k++) chunk[k] = (uint8_t)(total + k + k / 251);
    memcpy(want + total, chunk, sizeof(chunk));
    in(F_ACK | F_PSH, chunk, sizeof(chunk));
    total += sizeof(chunk);
    if (i == 59) {
      assert_int_equal(s->sent.len, head);
      T.room = SIZE_MAX;
      T.nout = 0;
      s->cbs->on_writable(s->user);
      assert_int_equal(s->sent.len, head + total);
      /* The stack says so: a window update opening the whole window. */
      assert_true(T.nout >= 1);
      seg g = parse(&T.out[T.nout - 1]);
      assert_true(g.win >= 60000);
      T.nout = 0;
    }
  }
  assert_int_equal(s->sent.len, head + total);
  assert_memory_equal(s->sent.data + head, want, total);
}

int main(void) {
  return UNIT_RUN(
      NULL, NULL,
      UNIT_FIXTURE(setup, teardown, test_request_and_data, test_stream_closes_before_bytes_written,
                   test_error_response_resets_client, test_stream_reset_resets_client,
                   test_lost_stream_resets_client, test_client_reset_resets_stream,
                   test_no_stream_refuses_syn, test_bad_preamble_resets_both,
                   test_fin_without_response, test_upload_beyond_window));
}
