/* The edge's visitor front under limits (world: visitor_world.h): per
 * source connection limits, another source still served during a flood,
 * idle connections evicted at the total limit, the reserve for small
 * sources, the per-source request rate (429 with Retry-After), and a full
 * source table. Plain requests are in test_visitor.c. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "visitor_world.h"

/* ---- limits: a second and a third visitor front with small limits ------------------ *
 * |lv|: 20 connections in all, 10 per source, the last 4 reserved for sources
 * holding fewer than 8; no rate limit. |rv|: 1 request/s per source with a
 * burst of 3, and a source table of 2 entries. Distinct sources are distinct
 * loopback addresses (127.0.0.0/8 is all local on Linux). */

/* A raw visitor socket from |src| to |port|, connected. */
static int lim_connect(const char *src, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sockaddr_in a, b;
  uv_ip4_addr(src, 0, &b);
  assert_int_equal(bind(fd, (struct sockaddr *)&b, sizeof(b)), 0);
  uv_ip4_addr("127.0.0.1", port, &a);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  return fd;
}

static void lim_connect_n(int *fds, int n, const char *src, int port) {
  for (int i = 0; i < n; i++) fds[i] = lim_connect(src, port);
}

/* Closes with a reset: a visitor that only half-closes after a request
 * still gets its answer, and /hang never answers. */
static void lim_reset(int fd) {
  struct linger l = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close(fd);
}

static void lim_close_n(int *fds, int n) {
  for (int i = 0; i < n; i++) lim_reset(fds[i]);
}

/* A client around an open socket, with a small buffer. */
static void client_wrap(client *cl, int fd) {
  memset(cl, 0, sizeof(*cl));
  cl->cap = 256u * 1024u;
  cl->buf = malloc(cl->cap);
  cl->fd = fd;
}

/* Sends |req| on |fd| and returns the response status, or -1 if the edge
 * closed the connection instead of answering. */
static int lim_request(int fd, const char *req, resp *out) {
  client cl;
  resp r;
  client_wrap(&cl, fd);
  if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
    free(cl.buf);
    return -1;
  }
  int status = read_resp(&cl, &r, 0, 0) == 0 ? r.status : -1;
  if (status > 0 && out)
    *out = r;
  else if (status > 0)
    vis_resp_free(&r);
  free(cl.buf);
  return status;
}

static const char lim_404[] = "GET /x HTTP/1.1\r\nHost: nothere.example.test\r\n\r\n";
static const char lim_hello[] = "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n";
static const char lim_hang[] = "GET /hang HTTP/1.1\r\nHost: app.example.test\r\n\r\n";

/* 1 if the edge closed |fd| (EOF or reset waiting), without blocking. */
static int lim_closed_now(int fd) {
  char b;
  ssize_t k = recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK);
  return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Waits (up to 5 s) until at least |want| of |fds| are closed by the edge;
 * returns how many are. */
static int lim_count_closed(const int *fds, int n, int want) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    int closed = 0;
    for (int i = 0; i < n; i++) closed += lim_closed_now(fds[i]);
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (closed >= want || t.tv_sec - t0.tv_sec >= 5) return closed;
    usleep(10000);
  }
}

static wr_visitor_stats lim_st;
static wr_visitor *lim_which;
static void lim_read_stats(void) { lim_st = *wr_visitor_get_stats(lim_which); }

static wr_visitor_stats lim_stats(wr_visitor *v) {
  lim_which = v;
  on_loop(lim_read_stats);
  return lim_st;
}

/* Waits (up to 5 s) until |v| has |conns| connections open and |refused|
 * refused in all; returns 1 if it got there. */
static int lim_wait(wr_visitor *v, uint64_t conns, uint64_t refused) {
  for (int i = 0; i < 500; i++) {
    wr_visitor_stats s = lim_stats(v);
    uint64_t r = s.refused_per_source + s.refused_reserve + s.refused_full;
    if (s.active_conns == conns && r == refused) return 1;
    usleep(10000);
  }
  return 0;
}

static int seen_count(void) {
  pthread_mutex_lock(&mu);
  int n = obs.count;
  pthread_mutex_unlock(&mu);
  return n;
}

/* Sends /hang on each of |fds| (never answered) and waits until the fake
 * connector has them all: those connections are busy, not idle. */
static void lim_hang_n(const int *fds, int n) {
  int before = seen_count();
  for (int i = 0; i < n; i++)
    assert_int_equal(send(fds[i], lim_hang, strlen(lim_hang), MSG_NOSIGNAL),
                     (ssize_t)strlen(lim_hang));
  for (int i = 0; i < 500 && seen_count() < before + n; i++) usleep(10000);
  assert_true(seen_count() >= before + n);
}

/* After a test: every connection of |v| gone (and the hung streams with them). */
static void lim_drain(wr_visitor *v) {
  assert_true(lim_wait(v, 0, lim_stats(v).refused_per_source + lim_stats(v).refused_reserve +
                                 lim_stats(v).refused_full));
  pthread_mutex_lock(&mu);
  w.hang_fc = NULL;
  pthread_mutex_unlock(&mu);
}

/* (a) One source opening many idle connections holds its limit, no more:
 * the rest are refused at once, and the ones it holds are served. */
static void test_limit_per_source(void **state) {
  (void)state;
  enum { N = 25, CAP = 10 };
  int fds[N];
  lim_connect_n(fds, N, "127.0.0.2", w.lport);
  assert_int_equal(lim_count_closed(fds, N, N - CAP), N - CAP);
  assert_true(lim_wait(w.lv, CAP, N - CAP));
  assert_int_equal(lim_count_closed(fds, N, N), N - CAP); /* the others stay */
  wr_visitor_stats s = lim_stats(w.lv);
  assert_int_equal(s.refused_per_source, N - CAP);
  assert_int_equal(s.evicted_idle, 0);
  int answered = 0;
  for (int i = 0; i < N; i++)
    if (!lim_closed_now(fds[i])) answered += lim_request(fds[i], lim_404, NULL) == 404;
  assert_int_equal(answered, CAP);
  lim_close_n(fds, N);
  lim_drain(w.lv);
}

/* (b) While one source floods and holds everything it may, another source
 * is served, through the tunnel and by the edge's own pages. */
static void test_limit_other_source_served(void **state) {
  (void)state;
  enum { N = 30, CAP = 10 };
  int fds[N];
  resp r;
  uint64_t refused0 = lim_stats(w.lv).refused_per_source;
  lim_connect_n(fds, N, "127.0.0.3", w.lport);
  assert_true(lim_wait(w.lv, CAP, refused0 + N - CAP));
  int fd = lim_connect("127.0.0.4", w.lport);
  assert_int_equal(lim_request(fd, lim_hello, &r), 200);
  assert_true(body_is(&r, "hello from origin\n"));
  vis_resp_free(&r);
  assert_int_equal(lim_request(fd, lim_404, NULL), 404);
  close(fd);
  lim_close_n(fds, N);
  lim_drain(w.lv);
}

/* (c) At the total limit a newcomer is served by closing an idle
 * connection: the oldest of the source holding the most, never a busy one. */
static void test_limit_evicts_idle(void **state) {
  (void)state;
  int busy[5], s2[4], s3[7], s4[4];
  uint64_t ev0 = lim_stats(w.lv).evicted_idle;
  lim_connect_n(busy, 5, "127.0.0.5", w.lport); /* the oldest, but busy */
  lim_hang_n(busy, 5);
  lim_connect_n(s2, 4, "127.0.0.6", w.lport);   /* the oldest idle ones */
  lim_connect_n(s3, 7, "127.0.0.7", w.lport);   /* the largest source */
  lim_connect_n(s4, 4, "127.0.0.8", w.lport);
  assert_true(lim_wait(w.lv, 20, lim_stats(w.lv).refused_per_source));
  int fd = lim_connect("127.0.0.9", w.lport);
  assert_int_equal(lim_request(fd, lim_404, NULL), 404);
  assert_int_equal(lim_count_closed(s3, 1, 1), 1);    /* 127.0.0.7's oldest */
  assert_int_equal(lim_stats(w.lv).evicted_idle, ev0 + 1);
  assert_int_equal(lim_count_closed(s3, 7, 7), 1);
  assert_int_equal(lim_count_closed(s2, 4, 4), 0);
  assert_int_equal(lim_count_closed(s4, 4, 4), 0);
  assert_int_equal(lim_count_closed(busy, 5, 5), 0);
  close(fd);
  lim_close_n(busy, 5);
  lim_close_n(s2, 4);
  lim_close_n(s3, 7);
  lim_close_n(s4, 4);
  lim_drain(w.lv);
}

/* The reserve: two sources hold 16 busy connections (all a large source may
 * reach) and want more; they are refused while a new, small source is
 * still served from the last 4 slots. */
static void test_limit_reserve(void **state) {
  (void)state;
  int a[8], c[8], more[4], small[3];
  wr_visitor_stats s0 = lim_stats(w.lv);
  lim_connect_n(a, 8, "127.0.0.10", w.lport);
  lim_hang_n(a, 8);
  lim_connect_n(c, 8, "127.0.0.11", w.lport);
  lim_hang_n(c, 8);
  lim_connect_n(more, 2, "127.0.0.10", w.lport);
  lim_connect_n(more + 2, 2, "127.0.0.11", w.lport);
  assert_int_equal(lim_count_closed(more, 4, 4), 4);
  for (int i = 0; i < 3; i++) {
    small[i] = lim_connect("127.0.0.12", w.lport);
    assert_int_equal(lim_request(small[i], lim_404, NULL), 404);
  }
  wr_visitor_stats s = lim_stats(w.lv);
  assert_int_equal(s.refused_reserve, s0.refused_reserve + 4);
  assert_int_equal(s.evicted_idle, s0.evicted_idle);
  assert_int_equal(lim_count_closed(a, 8, 8), 0);
  assert_int_equal(lim_count_closed(c, 8, 8), 0);
  lim_close_n(a, 8);
  lim_close_n(c, 8);
  lim_close_n(more, 4);
  lim_close_n(small, 3);
  lim_drain(w.lv);
}

/* (d) Over its request rate a source gets 429 with Retry-After; the
 * connection stays for the first one and is closed when the visitor pushes
 * on before that time. Other sources are not affected. */
static void test_limit_rate(void **state) {
  (void)state;
  client cl;
  resp r;
  char v[64], pipeline[sizeof(lim_404) * 10];
  pipeline[0] = '\0';
  for (int i = 0; i < 10; i++) strcat(pipeline, lim_404);
  client_wrap(&cl, lim_connect("127.0.0.20", w.rport));
  client_sends(&cl, pipeline);
  int n404 = 0;
  for (;;) {
    assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
    if (r.status != 404) break;
    assert_false(r.conn_close);
    n404++;
    vis_resp_free(&r);
  }
  /* The burst of 3 (and a refill, on a very slow machine) went through. */
  assert_true(n404 >= 3 && n404 < 10);
  assert_int_equal(r.status, 429);
  assert_non_null(find_header(r.head, "Retry-After", v, sizeof(v)));
  assert_true(atoi(v) >= 1);
  assert_false(r.conn_close); /* a first 429 keeps the connection */
  vis_resp_free(&r);
  read_expect(&cl, &r, 429); /* pushing on */
  assert_true(r.conn_close);
  vis_resp_free(&r);
  assert_true(server_closed(&cl));
  client_close(&cl);
  /* Another connection of the same source: 429 (once a token that came
   * back meanwhile is spent), but it is kept. */
  int fd = lim_connect("127.0.0.20", w.rport), status = 0;
  for (int i = 0; i < 10 && (status = lim_request(fd, lim_404, &r)) == 404; i++) vis_resp_free(&r);
  assert_int_equal(status, 429);
  assert_false(r.conn_close);
  vis_resp_free(&r);
  assert_false(lim_closed_now(fd));
  close(fd);
  /* Another source meanwhile: served. */
  fd = lim_connect("127.0.0.21", w.rport);
  assert_int_equal(lim_request(fd, lim_404, NULL), 404);
  close(fd);
  wr_visitor_stats s = lim_stats(w.rv);
  assert_true(s.rate_limited >= 2);
  assert_int_equal(s.rate_limited_closed, 1);
}

/* A full source table (|rv| tracks 2) does not lock newcomers out: quiet
 * entries are reused, and without any the newcomer is served untracked. */
static void test_limit_table_full(void **state) {
  (void)state;
  int x = lim_connect("127.0.0.22", w.rport), y = lim_connect("127.0.0.23", w.rport);
  assert_int_equal(lim_request(x, lim_404, NULL), 404);
  assert_int_equal(lim_request(y, lim_404, NULL), 404);
  uint64_t u0 = lim_stats(w.rv).untracked_conns;
  int z = lim_connect("127.0.0.24", w.rport);
  assert_int_equal(lim_request(z, lim_404, NULL), 404);
  wr_visitor_stats s = lim_stats(w.rv);
  assert_int_equal(s.untracked_conns, u0 + 1);
  assert_true(s.sources <= 2);
  close(x);
  close(y);
  close(z);
  lim_drain(w.rv);
}

int main(void) {
  return UNIT_RUN(
      vis_group_setup, vis_group_teardown,
      UNIT_TESTS(test_limit_per_source, test_limit_other_source_served, test_limit_evicts_idle,
                 test_limit_reserve, test_limit_rate, test_limit_table_full));
}
