/* Byte streams on libuv: echo servers made with wr_conn_accept and clients
 * made with wr_conn_connect in one loop, over TCP, a unix socket and TLS;
 * dial errors in Go's words; the connect timeout; backpressure; closing from
 * inside callbacks. Only loopback traffic. */
#include "unit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "lib/err.h"
#include "net/conn.h"
#include "net/tls.h"

static unit_pki pki;
static char sock_path[128];

static int group_setup(void **state) {
  static const char *const dns[] = {"localhost"};
  (void)state;
  /* libuv writes with write(2): a peer gone away must be an error, not a
   * signal. The programs do the same. */
  signal(SIGPIPE, SIG_IGN);
  if (unit_pki_make(&pki, "wr-conn", "localhost", dns, sizeof(dns) / sizeof(dns[0])) != 0) return -1;
  snprintf(sock_path, sizeof(sock_path), "%s/echo.sock", pki.dir);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  unlink(sock_path);
  unit_pki_remove(&pki);
  return 0;
}

/* --- one side of a connection: records events, optional behaviour ------- */

typedef struct side {
  wr_conn *c;
  int connected, status;
  char msg[320];
  uint8_t *rx;
  size_t rxlen, rxcap;
  int reads, eofs, eof_status;
  char eof_msg[320];
  int drains, closed, close_called;
  size_t queued_at_drain;
  /* behaviour */
  int echo;             /* write back what arrives; shut down on EOF */
  int greet;            /* on connect, write three 1000-byte messages */
  int pause_on_connect; /* read_stop in on_connect */
  int pause_on_read;    /* read_stop after the first on_read */
  int close_on_read;    /* wr_conn_close inside the first on_read */
  int close_on_connect;
} side;

static void do_close(side *s) {
  wr_conn_close(s->c);
  s->close_called = 1;
  /* Never synchronous: on_close comes from a later close callback. */
  assert_int_equal(s->closed, 0);
}

static void s_connect(wr_conn *c, int status, const char *msg, void *user) {
  side *s = user;
  assert_false(s->close_called);
  assert_ptr_equal(s->c, c);
  s->connected++;
  s->status = status;
  snprintf(s->msg, sizeof(s->msg), "%s", msg ? msg : "");
  if (status != WR_OK || s->close_on_connect) {
    do_close(s);
    return;
  }
  if (s->pause_on_connect) wr_conn_read_stop(c);
  if (s->greet) {
    uint8_t m[1000];
    for (int i = 0; i < 3; i++) {
      memset(m, 'a' + i, sizeof(m));
      assert_int_equal(wr_conn_write(c, m, sizeof(m)), WR_OK);
    }
  }
}

static void s_read(wr_conn *c, const uint8_t *data, size_t len, void *user) {
  side *s = user;
  assert_false(s->close_called);
  assert_int_equal(s->eofs, 0);
  assert_true(len > 0);
  s->reads++;
  if (s->rxlen + len > s->rxcap) {
    s->rxcap = (s->rxlen + len) * 2;
    s->rx = realloc(s->rx, s->rxcap);
  }
  memcpy(s->rx + s->rxlen, data, len);
  s->rxlen += len;
  if (s->echo) assert_int_equal(wr_conn_write(c, data, len), WR_OK);
  if (s->pause_on_read && s->reads == 1) wr_conn_read_stop(c);
  if (s->close_on_read) do_close(s);
}

static void s_eof(wr_conn *c, int status, const char *msg, void *user) {
  side *s = user;
  assert_false(s->close_called);
  s->eofs++;
  s->eof_status = status;
  snprintf(s->eof_msg, sizeof(s->eof_msg), "%s", msg ? msg : "");
  if (s->echo) wr_conn_shutdown(c);
}

static void s_drain(wr_conn *c, void *user) {
  side *s = user;
  assert_false(s->close_called);
  s->drains++;
  s->queued_at_drain = wr_conn_write_queued(c);
}

static void s_close(wr_conn *c, void *user) {
  side *s = user;
  assert_true(s->close_called);
  s->closed++;
}

static const wr_conn_callbacks side_cbs = {s_connect, s_read, s_eof, s_drain, s_close};

/* --- servers --------------------------------------------------------------- */

typedef struct server {
  union {
    uv_handle_t h;
    uv_stream_t s;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } l;
  wr_tls_creds *tls;
  side tmpl;    /* behaviour of accepted sides */
  side *acc[8];
  int nacc;
  int silent;   /* never accept: connections sit in the backlog */
  uint16_t port;
} server;

static void on_connection(uv_stream_t *l, int status) {
  server *srv = l->data;
  assert_int_equal(status, 0);
  if (srv->silent) return;
  assert_true(srv->nacc < 8);
  side *s = calloc(1, sizeof(*s));
  *s = srv->tmpl;
  srv->acc[srv->nacc++] = s;
  assert_int_equal(wr_conn_accept(l, srv->tls, &side_cbs, s, &s->c), WR_OK);
}

static void tcp_listen(uv_loop_t *loop, server *srv) {
  srv->port = unit_tcp_listen(loop, &srv->l.tcp, srv, on_connection);
}

static void unix_listen(uv_loop_t *loop, server *srv) {
  unlink(sock_path);
  assert_int_equal(uv_pipe_init(loop, &srv->l.pipe, 0), 0);
  srv->l.h.data = srv;
  assert_int_equal(uv_pipe_bind(&srv->l.pipe, sock_path), 0);
  assert_int_equal(uv_listen(&srv->l.s, 16, on_connection), 0);
}

static wr_tls_creds *server_creds(void) {
  wr_tls_server_config cfg = {.cert_file = pki.cert, .key_file = pki.key};
  wr_tls_creds *c;
  char err[256];
  assert_int_equal(wr_tls_creds_server(&cfg, &c, err, sizeof(err)), WR_OK);
  return c;
}

static wr_tls_creds *client_creds(const char *ca) {
  wr_tls_client_config cfg = {.ca_file = ca};
  wr_tls_creds *c;
  char err[256];
  assert_int_equal(wr_tls_creds_client(&cfg, &c, err, sizeof(err)), WR_OK);
  return c;
}

/* --- loop helpers ------------------------------------------------------------- */

static uv_timer_t guard;
static int guard_fired;
static void on_guard(uv_timer_t *t) { guard_fired = 1; }

/* Runs |loop| until |cond| holds; fails after 10 s. */
#define RUN_UNTIL(loop, cond)                                                   \
  do {                                                                          \
    guard_fired = 0;                                                            \
    uv_timer_init((loop), &guard);                                              \
    uv_timer_start(&guard, on_guard, 10000, 0);                                 \
    while (!(cond) && !guard_fired) uv_run((loop), UV_RUN_ONCE);                \
    uv_close((uv_handle_t *)&guard, NULL);                                      \
    uv_run((loop), UV_RUN_NOWAIT);                                              \
    if (!(cond)) fail_msg("timed out waiting for %s", #cond);                   \
  } while (0)

static void on_sleep(uv_timer_t *t) { *(int *)t->data = 1; }

/* Runs |loop| for |ms| milliseconds. */
static void run_for(uv_loop_t *loop, uint64_t ms) {
  uv_timer_t t;
  int done = 0;
  uv_timer_init(loop, &t);
  t.data = &done;
  uv_timer_start(&t, on_sleep, ms, 0);
  RUN_UNTIL(loop, done);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

/* Closes the listener and every accepted side, and checks that nothing is
 * left in the loop. */
static void server_done(uv_loop_t *loop, server *srv) {
  uv_close(&srv->l.h, NULL);
  for (int i = 0; i < srv->nacc; i++)
    if (!srv->acc[i]->close_called) do_close(srv->acc[i]);
  uv_run(loop, UV_RUN_DEFAULT);
  for (int i = 0; i < srv->nacc; i++) {
    assert_int_equal(srv->acc[i]->closed, 1);
    free(srv->acc[i]->rx);
    free(srv->acc[i]);
  }
  wr_tls_creds_free(srv->tls);
}

static void loop_done(uv_loop_t *loop) {
  unit_loop_finish(loop);
}

/* --- echo round trips ------------------------------------------------------------ */

/* Writes before the conn is open (buffered) and shuts down early (deferred);
 * the echo comes back, then EOF. */
static void echo_roundtrip(uv_loop_t *loop, server *srv, wr_conn_target *t) {
  side cl = {0};
  assert_int_equal(wr_conn_connect(loop, t, &side_cbs, &cl, &cl.c), WR_OK);
  assert_int_equal(wr_conn_write(cl.c, (const uint8_t *)"hello ", 6), WR_OK);
  assert_int_equal(wr_conn_write(cl.c, (const uint8_t *)"world", 5), WR_OK);
  assert_int_equal(wr_conn_write_queued(cl.c), 11);
  assert_int_equal(wr_conn_shutdown(cl.c), WR_OK);
  assert_int_equal(wr_conn_write(cl.c, (const uint8_t *)"!", 1), WR_ERR_INVAL);
  assert_int_equal(wr_conn_shutdown(cl.c), WR_ERR_INVAL);
  RUN_UNTIL(loop, cl.eofs == 1);
  assert_int_equal(cl.connected, 1);
  assert_int_equal(cl.status, WR_OK);
  assert_int_equal(cl.eof_status, WR_OK);
  assert_int_equal(cl.rxlen, 11);
  assert_memory_equal(cl.rx, "hello world", 11);
  assert_int_equal(wr_conn_write_queued(cl.c), 0);
  assert_int_equal(srv->nacc, 1);
  assert_int_equal(srv->acc[0]->connected, 1);
  assert_int_equal(srv->acc[0]->eofs, 1);

  /* The accepted TCP side knows its peer. */
  struct sockaddr_storage ss;
  assert_int_equal(wr_conn_peer(srv->acc[0]->c, &ss), WR_OK);
  if (t->unix_path) {
    assert_int_equal(ss.ss_family, AF_UNSPEC);
  } else {
    char ip[64];
    assert_int_equal(ss.ss_family, AF_INET);
    uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
    assert_string_equal(ip, "127.0.0.1");
  }
  do_close(&cl);
  wr_conn_close(cl.c); /* idempotent */
  RUN_UNTIL(loop, cl.closed);
  free(cl.rx);
}

/* An echo server (TLS when |tls|) on the unix socket when t->unix_path is
 * set, else on TCP (its port goes into t->port); one echo_roundtrip to it
 * through |t|, then the server closed. */
static void echo_server_roundtrip(uv_loop_t *loop, int tls, wr_conn_target *t) {
  server srv = {0};
  srv.tmpl.echo = 1;
  if (tls) srv.tls = server_creds();
  if (t->unix_path) {
    unix_listen(loop, &srv);
  } else {
    tcp_listen(loop, &srv);
    t->port = srv.port;
  }
  echo_roundtrip(loop, &srv, t);
  server_done(loop, &srv);
}

static void test_tcp_echo(void **state) {
  uv_loop_t loop;
  (void)state;
  uv_loop_init(&loop);
  echo_server_roundtrip(&loop, 0, &(wr_conn_target){.host = "127.0.0.1", .tcp_keepalive_s = 15});
  loop_done(&loop);
}

static void test_unix_echo(void **state) {
  uv_loop_t loop;
  (void)state;
  uv_loop_init(&loop);
  echo_server_roundtrip(&loop, 0, &(wr_conn_target){.unix_path = sock_path});
  loop_done(&loop);
}

static void test_tls_echo(void **state) {
  uv_loop_t loop;
  wr_tls_creds *cc = client_creds(pki.ca);
  (void)state;
  uv_loop_init(&loop);
  /* By IP (no SNI; IP SAN checked), then by name (resolved from
   * /etc/hosts, no DNS traffic). */
  echo_server_roundtrip(&loop, 1, &(wr_conn_target){.host = "127.0.0.1", .tls = cc});
  echo_server_roundtrip(&loop, 1, &(wr_conn_target){.host = "localhost", .tls = cc});
  /* TLS over a unix socket, name from server_name. */
  echo_server_roundtrip(
      &loop, 1, &(wr_conn_target){.unix_path = sock_path, .tls = cc, .server_name = "localhost"});
  loop_done(&loop);
  wr_tls_creds_free(cc);
}

static void test_tls_unknown_authority(void **state) {
  uv_loop_t loop;
  server srv = {0};
  side cl = {0};
  wr_tls_creds *cc = client_creds(pki.other_ca);
  (void)state;
  uv_loop_init(&loop);
  srv.tls = server_creds();
  tcp_listen(&loop, &srv);
  wr_conn_target t = {.host = "127.0.0.1", .port = srv.port, .tls = cc};
  assert_int_equal(wr_conn_connect(&loop, &t, &side_cbs, &cl, &cl.c), WR_OK);
  RUN_UNTIL(&loop, cl.closed && srv.nacc == 1 && srv.acc[0]->closed);
  assert_int_equal(cl.status, WR_ERR_CRYPTO);
  assert_string_equal(cl.msg, "tls: failed to verify certificate: x509: certificate signed by "
                              "unknown authority");
  /* The server learns it from the client's alert. */
  assert_int_equal(srv.acc[0]->status, WR_ERR_CRYPTO);
  assert_string_equal(srv.acc[0]->msg, "remote error: tls: bad certificate");
  server_done(&loop, &srv);
  loop_done(&loop);
  wr_tls_creds_free(cc);
}

/* --- dial errors ------------------------------------------------------------------- */

static void dial_fail(uv_loop_t *loop, wr_conn_target *t, side *cl) {
  memset(cl, 0, sizeof(*cl));
  assert_int_equal(wr_conn_connect(loop, t, &side_cbs, cl, &cl->c), WR_OK);
  RUN_UNTIL(loop, cl->closed);
  assert_int_equal(cl->connected, 1);
}

static void test_dial_errors(void **state) {
  uv_loop_t loop;
  side cl;
  char want[512], name[128];
  (void)state;
  uv_loop_init(&loop);

  /* A port nobody listens on: bind one, note it, close it. */
  uv_tcp_t tmp;
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_init(&loop, &tmp);
  assert_int_equal(uv_tcp_bind(&tmp, (struct sockaddr *)&a, 0), 0);
  assert_int_equal(uv_tcp_getsockname(&tmp, (struct sockaddr *)&ss, &len), 0);
  uint16_t port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  uv_close((uv_handle_t *)&tmp, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);

  wr_conn_target t = {.host = "127.0.0.1", .port = port};
  dial_fail(&loop, &t, &cl);
  assert_int_equal(cl.status, WR_ERR_IO);
  snprintf(want, sizeof(want), "dial tcp 127.0.0.1:%u: connect: connection refused", port);
  assert_string_equal(cl.msg, want);

  /* Each resolved address is tried; the first error is reported. */
  wr_conn_target tl = {.host = "localhost", .port = port};
  dial_fail(&loop, &tl, &cl);
  assert_non_null(strstr(cl.msg, ": connect: connection refused"));

  char path[200];
  snprintf(path, sizeof(path), "%s/nope.sock", pki.dir);
  wr_conn_target tu = {.unix_path = path};
  dial_fail(&loop, &tu, &cl);
  snprintf(want, sizeof(want), "dial unix %s: connect: no such file or directory", path);
  assert_string_equal(cl.msg, want);

  /* A 64-byte label cannot be encoded in a DNS query, so the resolver
   * fails before sending anything: no traffic leaves the machine. */
  memset(name, 'a', 64);
  snprintf(name + 64, sizeof(name) - 64, ".invalid");
  wr_conn_target tn = {.host = name, .port = 80};
  dial_fail(&loop, &tn, &cl);
  assert_int_equal(cl.status, WR_ERR_IO);
  snprintf(want, sizeof(want), "dial tcp: lookup %s: no such host", name);
  assert_string_equal(cl.msg, want);

  /* Bad targets are refused at once. */
  wr_conn *c = NULL;
  wr_conn_target bad = {.host = "", .port = 80};
  assert_int_equal(wr_conn_connect(&loop, &bad, &side_cbs, &cl, &c), WR_ERR_INVAL);
  bad.host = "x";
  bad.port = 0;
  assert_int_equal(wr_conn_connect(&loop, &bad, &side_cbs, &cl, &c), WR_ERR_INVAL);
  char longpath[300];
  memset(longpath, 'p', sizeof(longpath) - 1);
  longpath[sizeof(longpath) - 1] = '\0';
  wr_conn_target badu = {.unix_path = longpath};
  assert_int_equal(wr_conn_connect(&loop, &badu, &side_cbs, &cl, &c), WR_ERR_INVAL);
  assert_null(c);
  loop_done(&loop);
}

/* A TLS client against a server that never answers the handshake: the
 * connect timeout covers the handshake too. */
static void test_connect_timeout(void **state) {
  uv_loop_t loop;
  server srv = {0};
  side cl = {0};
  wr_tls_creds *cc = client_creds(pki.ca);
  char want[128];
  (void)state;
  uv_loop_init(&loop);
  srv.silent = 1;
  tcp_listen(&loop, &srv);
  wr_conn_target t = {.host = "127.0.0.1", .port = srv.port, .tls = cc,
                      .connect_timeout_ms = 200};
  uint64_t start = uv_now(&loop);
  assert_int_equal(wr_conn_connect(&loop, &t, &side_cbs, &cl, &cl.c), WR_OK);
  RUN_UNTIL(&loop, cl.closed);
  assert_true(uv_now(&loop) - start >= 190);
  assert_int_equal(cl.status, WR_ERR_IO);
  snprintf(want, sizeof(want), "tls: handshake with 127.0.0.1:%u: i/o timeout", srv.port);
  assert_string_equal(cl.msg, want);
  server_done(&loop, &srv);
  loop_done(&loop);
  wr_tls_creds_free(cc);
}

/* Defines test_<body>_tcp and test_<body>_tls, which run the case
 * |body|(use_tls) over plain TCP and over TLS. */
#define TEST_TCP_AND_TLS(body)                  \
  static void test_##body##_tcp(void **state) { \
    (void)state;                                \
    body(0);                                    \
  }                                             \
  static void test_##body##_tls(void **state) { \
    (void)state;                                \
    body(1);                                    \
  }

/* --- backpressure ------------------------------------------------------------------- */

#define BIG (8u << 20)

static void backpressure(int use_tls) {
  uv_loop_t loop;
  server srv = {0};
  side cl = {0};
  wr_tls_creds *cc = use_tls ? client_creds(pki.ca) : NULL;
  uint8_t *chunk = malloc(65536);
  uv_loop_init(&loop);
  /* The peer takes one read (TLS: leaving ciphertext buffered in its
   * session), then stops reading. */
  srv.tmpl.pause_on_read = 1;
  srv.tls = use_tls ? server_creds() : NULL;
  tcp_listen(&loop, &srv);
  /* Accepted sockets inherit a small receive buffer (no autotuning), so the
   * kernel cannot swallow all 8 MiB (Linux loopback: up to 4 MiB send plus
   * 6 MiB receive buffer). */
  int rcvbuf = 65536;
  assert_int_equal(uv_recv_buffer_size(&srv.l.h, &rcvbuf), 0);
  wr_conn_target t = {.host = "127.0.0.1", .port = srv.port, .tls = cc};
  assert_int_equal(wr_conn_connect(&loop, &t, &side_cbs, &cl, &cl.c), WR_OK);
  RUN_UNTIL(&loop, cl.connected);
  assert_int_equal(cl.status, WR_OK);
  for (size_t off = 0; off < BIG; off += 65536) {
    for (size_t i = 0; i < 65536; i++) chunk[i] = (uint8_t)((off + i) % 251);
    assert_int_equal(wr_conn_write(cl.c, chunk, 65536), WR_OK);
  }
  /* With TLS, records the kernel took at once (written before the queue
   * grew past the low-water mark) are not queued; the rest is. */
  size_t q0 = wr_conn_write_queued(cl.c);
  if (use_tls) assert_true(q0 > WR_CONN_LOW_WATER && q0 <= BIG);
  else assert_int_equal(q0, BIG);
  run_for(&loop, 300);
  /* The kernel took what fits in the socket buffers; the rest waits. */
  size_t q = wr_conn_write_queued(cl.c);
  assert_true(q > WR_CONN_LOW_WATER);
  assert_true(q < BIG);
  assert_int_equal(cl.drains, 0);
  assert_int_equal(srv.nacc, 1);
  side *peer = srv.acc[0];
  assert_int_equal(peer->reads, 1);
  size_t first = peer->rxlen;
  run_for(&loop, 50);
  assert_int_equal(peer->rxlen, first); /* paused means paused */
  wr_conn_read_start(peer->c);
  RUN_UNTIL(&loop, cl.drains == 1 && peer->rxlen == BIG);
  assert_true(cl.queued_at_drain <= WR_CONN_LOW_WATER);
  assert_int_equal(wr_conn_write_queued(cl.c), 0);
  for (size_t i = 0; i < BIG; i++)
    if (peer->rx[i] != (uint8_t)(i % 251)) fail_msg("byte %zu differs", i);
  do_close(&cl);
  RUN_UNTIL(&loop, cl.closed);
  server_done(&loop, &srv);
  loop_done(&loop);
  wr_tls_creds_free(cc);
  free(chunk);
}

TEST_TCP_AND_TLS(backpressure)

/* --- closing from callbacks ------------------------------------------------------------- */

static void close_in_read(int use_tls) {
  uv_loop_t loop;
  server srv = {0};
  side cl = {0};
  wr_tls_creds *cc = use_tls ? client_creds(pki.ca) : NULL;
  uv_loop_init(&loop);
  srv.tmpl.greet = 1; /* three messages; TLS: three records in one flight */
  srv.tls = use_tls ? server_creds() : NULL;
  tcp_listen(&loop, &srv);
  wr_conn_target t = {.host = "127.0.0.1", .port = srv.port, .tls = cc};
  cl.close_on_read = 1;
  assert_int_equal(wr_conn_connect(&loop, &t, &side_cbs, &cl, &cl.c), WR_OK);
  RUN_UNTIL(&loop, cl.closed);
  /* s_read asserts nothing arrives after the close. */
  assert_int_equal(cl.reads, 1);
  assert_int_equal(cl.eofs, 0);
  if (use_tls) assert_int_equal(cl.rxlen, 1000);
  /* The server sees the client go away. */
  RUN_UNTIL(&loop, srv.nacc == 1 && srv.acc[0]->eofs == 1);
  server_done(&loop, &srv);
  loop_done(&loop);
  wr_tls_creds_free(cc);
  free(cl.rx);
}

TEST_TCP_AND_TLS(close_in_read)

static void test_close_early(void **state) {
  uv_loop_t loop;
  server srv = {0};
  side a = {0}, b = {0}, d = {0};
  (void)state;
  uv_loop_init(&loop);
  tcp_listen(&loop, &srv);
  wr_conn_target t = {.host = "127.0.0.1", .port = srv.port};
  /* Right after connect: no on_connect, one on_close. */
  assert_int_equal(wr_conn_connect(&loop, &t, &side_cbs, &a, &a.c), WR_OK);
  do_close(&a);
  assert_int_equal(wr_conn_write(a.c, (const uint8_t *)"x", 1), WR_ERR_INVAL);
  assert_int_equal(wr_conn_shutdown(a.c), WR_ERR_INVAL);
  wr_conn_read_stop(a.c);
  wr_conn_read_start(a.c);
  wr_conn_close(a.c);
  /* From inside on_connect. */
  b.close_on_connect = 1;
  assert_int_equal(wr_conn_connect(&loop, &t, &side_cbs, &b, &b.c), WR_OK);
  /* While the name is being resolved. */
  wr_conn_target tn = {.host = "localhost", .port = srv.port};
  assert_int_equal(wr_conn_connect(&loop, &tn, &side_cbs, &d, &d.c), WR_OK);
  uv_run(&loop, UV_RUN_NOWAIT);
  do_close(&d);
  RUN_UNTIL(&loop, a.closed && b.closed && d.closed);
  assert_int_equal(a.connected, 0);
  assert_int_equal(b.connected, 1);
  assert_int_equal(d.connected, 0);
  run_for(&loop, 20);
  assert_int_equal(a.closed + b.closed + d.closed, 3);
  server_done(&loop, &srv);
  loop_done(&loop);
}

int main(void) {
  return UNIT_RUN(group_setup, group_teardown,
                  UNIT_TESTS(test_tcp_echo, test_unix_echo, test_tls_echo,
                             test_tls_unknown_authority, test_dial_errors, test_connect_timeout,
                             test_backpressure_tcp, test_backpressure_tls, test_close_in_read_tcp,
                             test_close_in_read_tls, test_close_early));
}
