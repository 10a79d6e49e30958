/* Fuzzes the small HTTP/1.1 server (src/net/httpd.c: the API, login pages
 * and the connector's metrics server) through its public interface, on a
 * real libuv loop and a real loopback TCP connection: what fuzz_http1 does
 * not reach is the server's own handling around the parser (dropping empty
 * lines, deciding when a head is complete, Content-Length and chunked bodies
 * against max_body, 100-continue, pipelining, answering later, keep-alive,
 * HTTP/1.0, errors and the lingering close).
 *
 * Input: one control byte, then the bytes a client sends.
 *   bits 0-2: the input is sent in pieces of 1 << (bits 0-2) * 2 bytes
 *             (1, 4, 16, ... 16 KiB), each one read by the server before the
 *             next is sent (the loop runs in between);
 *   bit 3:    the handler answers on the next loop iteration instead of at once;
 *   bit 4:    the client half-closes after sending (else it closes after the
 *             server has gone quiet);
 *   bits 5-7: the answer: 200, 204, 304, 200 with "Connection: close", 404
 *             with a body, or 200 with an empty body.
 * Checked, beyond ASan/UBSan:
 *   - the handler sees NUL-terminated strings, path and query that split the
 *     target at its first '?', a NUL-terminated body within max_body;
 *   - everything the server sends parses as a sequence of responses: any
 *     number of "100 Continue", the handler's answers one per request in
 *     order (each carries its sequence number), at most one error answer
 *     (400/413/431) which ends the stream, and nothing after the last one;
 *   - the connection is closed and freed once the client has gone (no
 *     connection outlives its client: a hang traps after 5 s).
 * The client is a plain non-blocking socket driven from this thread. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/httpd.h"
#include "proto/http1.h"
#include "fuzz.h"

#define MAX_BODY 4096
#define MAX_REQS 4096

static uv_loop_t loop;
static wr_httpd *server;
static int port;
static uv_timer_t later_timer;

/* ---- the handler ---- */

static int defer_answers, answer_kind;
static struct {
  wr_httpd_req *req;
  unsigned n;
} pending[MAX_REQS];
static size_t npending;
static unsigned seq;               /* requests seen in this input */
static char methods[MAX_REQS][16]; /* method of request i ("" if too long) */

static void answer(wr_httpd_req *req, unsigned n) {
  char body[64];
  int len = snprintf(body, sizeof(body), "seq=%u\n", n);
  static const wr_http_header close_hdr[] = {{"Connection", 10, "close", 5}};
  switch (answer_kind) {
  case 1: wr_httpd_respond(req, 204, NULL, 0, NULL, 0); break;
  case 2: wr_httpd_respond(req, 304, NULL, 0, NULL, 0); break;
  case 3: wr_httpd_respond(req, 200, close_hdr, 1, body, (size_t)len); break;
  case 4: wr_httpd_respond_simple(req, 404, "text/plain", body, (size_t)len); break;
  case 5: wr_httpd_respond(req, 200, NULL, 0, "", 0); break;
  default: wr_httpd_respond_simple(req, 200, "text/plain", body, (size_t)len); break;
  }
}

static void later_cb(uv_timer_t *t) {
  (void)t;
  /* One connection holds one request at a time, so there is at most one;
   * answering it may hand the next pipelined request to the handler, which
   * queues it again. */
  while (npending) {
    wr_httpd_req *req = pending[0].req;
    unsigned n = pending[0].n;
    memmove(pending, pending + 1, --npending * sizeof(pending[0]));
    answer(req, n);
  }
}

static void handler(wr_httpd *h, wr_httpd_req *req, void *user) {
  (void)h;
  (void)user;
  CHECK(req->method && req->target && req->path && req->query && req->body);
  size_t tl = strlen(req->target), pl = strlen(req->path), ql = strlen(req->query);
  const char *q = memchr(req->target, '?', tl);
  CHECK(pl == (q ? (size_t)(q - req->target) : tl));
  CHECK(memcmp(req->path, req->target, pl) == 0);
  CHECK(ql == (q ? tl - pl - 1 : 0));
  CHECK(ql == 0 || memcmp(req->query, q + 1, ql) == 0);
  CHECK(req->body_len <= MAX_BODY && req->body[req->body_len] == '\0');
  for (size_t i = 0; i < req->nheaders; i++)
    CHECK(strlen(req->headers[i].name) == req->headers[i].name_len &&
          req->headers[i].value[req->headers[i].value_len] == '\0');
  CHECK(seq < MAX_REQS);
  size_t ml = strlen(req->method);
  if (ml < sizeof(methods[0])) memcpy(methods[seq], req->method, ml + 1);
  else methods[seq][0] = '\0';
  unsigned n = seq++;
  if (defer_answers) {
    CHECK(npending < MAX_REQS);
    pending[npending].req = req;
    pending[npending++].n = n;
    uv_timer_start(&later_timer, later_cb, 0, 0);
  } else {
    answer(req, n);
  }
}

/* ---- setup ---- */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  wr_log_set_level(WR_LOG_OFF);
  CHECK(uv_loop_init(&loop) == 0);
  uv_timer_init(&loop, &later_timer);
  uv_ip4_addr("127.0.0.1", 0, &a);
  wr_httpd_config cfg = {.max_body = MAX_BODY, .read_timeout_ms = 60000, .idle_timeout_ms = 60000,
                         .max_conns = 16};
  CHECK(wr_httpd_listen(&loop, (const struct sockaddr *)&a, &cfg, handler, NULL, &server) == WR_OK);
  CHECK(wr_httpd_addr(server, &ss) == WR_OK);
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return 0;
}

/* ---- the client ---- */

static uint8_t *rx;
static size_t rx_len, rx_cap;
static int rx_eof, rx_reset;

/* Runs the loop and reads what the server sent until nothing moves for a
 * few rounds (loopback delivers within the send call, so a round that
 * neither received bytes nor reached the handler means the server waits). */
static void pump(int fd) {
  for (int quiet = 0; quiet < 3;) {
    unsigned seen = seq;
    size_t had = rx_len, queued = npending;
    int was_eof = rx_eof;
    uv_run(&loop, UV_RUN_NOWAIT);
    while (fd >= 0 && !rx_eof) {
      if (rx_cap - rx_len < 65536) {
        rx_cap = rx_cap ? rx_cap * 2 : 1 << 17;
        rx = realloc(rx, rx_cap);
        CHECK(rx);
      }
      ssize_t n = recv(fd, rx + rx_len, rx_cap - rx_len, MSG_DONTWAIT);
      if (n > 0) {
        rx_len += (size_t)n;
      } else {
        if (n == 0) rx_eof = 1;
        else if (errno != EAGAIN && errno != EWOULDBLOCK) rx_eof = rx_reset = 1; /* reset: unread bytes lost */
        break;
      }
    }
    int moved = seq != seen || rx_len != had || npending != queued || rx_eof != was_eof;
    quiet = moved ? 0 : quiet + 1;
  }
}

static void count(uv_handle_t *h, void *arg) {
  (void)h;
  ++*(int *)arg;
}

static int count_handles(void) {
  int n = 0;
  uv_walk(&loop, count, &n);
  return n;
}

/* ---- the response stream ---- */

static void check_stream(void) {
  static wr_http_header hdrs[128];
  size_t off = 0;
  unsigned answered = 0;
  int ended = 0;
  while (off < rx_len) {
    wr_http1_head h;
    size_t used;
    CHECK(!ended); /* nothing after an error answer or "Connection: close" */
    const char *m = answered < seq && methods[answered][0] ? methods[answered] : "GET";
    int rv = wr_http1_parse_response(rx + off, rx_len - off, m, NULL, hdrs, 128, &h, &used);
    if (rv == WR_AGAIN && rx_reset) return; /* cut by a reset */
    CHECK(rv == WR_OK);
    off += used;
    if (h.status == 100) continue;
    size_t blen = h.body == WR_HTTP1_BODY_LENGTH ? (size_t)h.content_length : 0;
    CHECK(h.body == WR_HTTP1_BODY_LENGTH || h.body == WR_HTTP1_BODY_NONE);
    if (rx_len - off < blen) {
      CHECK(rx_reset);
      return;
    }
    const uint8_t *body = rx + off;
    off += blen;
    if (h.status == 400 || h.status == 413 || h.status == 431) {
      CHECK(!h.keep_alive);
      ended = 1;
      continue;
    }
    /* One of the handler's answers, in order. */
    CHECK(answered < seq);
    if (blen) {
      char want[32];
      int wl = snprintf(want, sizeof(want), "seq=%u\n", answered);
      CHECK(blen == (size_t)wl && memcmp(body, want, blen) == 0);
    }
    answered++;
    if (!h.keep_alive) ended = 1;
  }
  /* Every request the handler saw was answered, unless the client cut the
   * connection short (the server then drops the rest). */
  CHECK(answered == seq || rx_reset);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 65536) return 0;
  uint8_t ctl = data[0];
  data++;
  size--;
  size_t piece = (size_t)1 << ((ctl & 7) * 2);
  defer_answers = (ctl >> 3) & 1;
  int half_close = (ctl >> 4) & 1;
  answer_kind = ctl >> 5;
  seq = 0;
  npending = 0;
  rx_len = 0;
  rx_eof = rx_reset = 0;
  int base_handles = count_handles();

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
  pump(fd);
  for (size_t off = 0; off < size && !rx_eof;) {
    size_t n = size - off < piece ? size - off : piece;
    ssize_t w = send(fd, data + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w <= 0) break; /* the server closed, or stopped reading: stop sending */
    off += (size_t)w;
    pump(fd);
  }
  if (half_close) {
    shutdown(fd, SHUT_WR);
    pump(fd);
  }
  /* The client is done: it half-closes (if it has not) and reads to EOF. */
  shutdown(fd, SHUT_WR);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (!rx_eof) {
    pump(fd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(t1.tv_sec - t0.tv_sec < 5); /* the server must close after the client's EOF */
    if (!rx_eof) usleep(100);
  }
  close(fd);
  check_stream();
  /* The server's connection is gone (its handles closed and freed). */
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (count_handles() > base_handles) {
    pump(-1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(t1.tv_sec - t0.tv_sec < 5);
    usleep(100);
  }
  CHECK(npending == 0);
  return 0;
}
