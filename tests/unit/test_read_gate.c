/* Reading a stream exactly while wanted (src/net/read_gate.c): on a pipe
 * of a socketpair, bytes arrive only while the gate is open; a stream
 * that cannot read (a TCP handle never connected) gives 0 while wanted. */
#include <sys/socket.h>
#include <unistd.h>

#include "net/read_gate.h"
#include "unit.h"

static char rbuf[64];
static size_t got;

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)s;
  (void)buf;
  if (n > 0) got += (size_t)n;
}

static void test_reads_only_while_wanted(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_pipe_t p;
  int fds[2];
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  assert_int_equal(uv_pipe_init(&loop, &p, 0), 0);
  assert_int_equal(uv_pipe_open(&p, fds[0]), 0);
  uv_stream_t *s = (uv_stream_t *)&p;
  got = 0;
  assert_int_equal(wr_read_gate(s, 0, 0, on_alloc, on_read), 0); /* not wanted, not reading */
  assert_int_equal(write(fds[1], "abc", 3), 3);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(got, 0);
  int reading = wr_read_gate(s, 0, 1, on_alloc, on_read); /* wanted: starts */
  assert_int_equal(reading, 1);
  assert_int_equal(wr_read_gate(s, reading, 1, on_alloc, on_read), 1); /* already */
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(got, 3);
  reading = wr_read_gate(s, reading, 0, on_alloc, on_read); /* not wanted: stops */
  assert_int_equal(reading, 0);
  assert_int_equal(write(fds[1], "de", 2), 2);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(got, 3);
  assert_int_equal(wr_read_gate(s, reading, 1, on_alloc, on_read), 1); /* again */
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(got, 5);
  uv_close((uv_handle_t *)&p, NULL);
  close(fds[1]);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_failed_start_is_not_reading(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_tcp_t t;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(uv_tcp_init(&loop, &t), 0);
  assert_int_equal(wr_read_gate((uv_stream_t *)&t, 0, 1, on_alloc, on_read), 0);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  return UNIT_RUN(NULL, NULL, UNIT_TESTS(test_reads_only_while_wanted, test_failed_start_is_not_reading));
}
