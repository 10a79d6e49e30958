/* Small HTTP/1.1 server (src/net/httpd.c): an httpd on 127.0.0.1:0 in the
 * test's uv loop, driven by a client on a helper thread with blocking
 * sockets. The client records its first failed check (cmocka's asserts
 * must stay on the main thread), then wakes the loop, which frees the
 * server; the main thread asserts after joining.
 *
 * Each test is a server_case: the server's config, its client and what the
 * server side must have seen (run_case runs it). Most clients are data: a
 * conversation of steps, each a request and the answer it must get, checked
 * by one procedure (converse); timing, refusals built at run time and
 * several connections at once stay code. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "lib/err.h"
#include "net/httpd.h"
#include "unit.h"

#define BIG 60000

typedef struct fx {
  uv_loop_t loop;
  wr_httpd *h;
  int port;
  uv_async_t done;
  uv_timer_t defer_timer;
  uint64_t defer_ms;
  wr_httpd_req *deferred;
  int defer_rv, bad_rv;
  int requests;
  const struct server_case *sc; /* the test's case */
  int late_fd; /* closed by the client thread only after the loop was woken */
  char fail[512];
} fx;

/* ---- server side (loop thread) ----------------------------------------- */

static void on_defer(uv_timer_t *t) {
  fx *f = t->data;
  if (!f->deferred) return;
  f->defer_rv = wr_httpd_respond_simple(f->deferred, 200, "text/plain", "later", 5);
  f->deferred = NULL;
}

static void handler(wr_httpd *h, wr_httpd_req *req, void *user) {
  fx *f = user;
  (void)h;
  f->requests++;
  if (strcmp(req->path, "/hello") == 0) {
    wr_httpd_respond_simple(req, 200, "text/plain", "hello world", 11);
  } else if (strcmp(req->path, "/echo") == 0) {
    char n[16];
    snprintf(n, sizeof(n), "%zu", req->nheaders);
    const wr_http_header hs[] = {
        {"X-Method", 8, req->method, strlen(req->method)},
        {"X-Target", 8, req->target, strlen(req->target)},
        {"X-Query", 7, req->query, strlen(req->query)},
        {"X-Fields", 8, n, strlen(n)},
        /* Framing fields from the handler are replaced by the server's. */
        {"Content-Length", 14, "999", 3},
        {"Transfer-Encoding", 17, "chunked", 7},
    };
    wr_httpd_respond(req, 200, hs, 6, req->body, req->body_len);
  } else if (strcmp(req->path, "/defer") == 0) {
    f->deferred = req;
    uv_timer_start(&f->defer_timer, on_defer, f->defer_ms, 0);
  } else if (strcmp(req->path, "/close") == 0) {
    const wr_http_header hs[] = {{"Connection", 10, "Close", 5}};
    wr_httpd_respond(req, 200, hs, 1, "bye", 3);
  } else if (strcmp(req->path, "/bad") == 0) {
    const wr_http_header hs[] = {{"X-Bad", 5, "a\r\nInjected: 1", 15}};
    f->bad_rv = wr_httpd_respond(req, 200, hs, 1, "x", 1);
  } else if (strcmp(req->path, "/big") == 0) {
    static char big[BIG];
    memset(big, 'z', sizeof(big));
    wr_httpd_respond_simple(req, 200, NULL, big, sizeof(big));
  } else if (strcmp(req->path, "/nocontent") == 0) {
    wr_httpd_respond(req, 204, NULL, 0, "ignored", 7);
  } else {
    wr_httpd_respond_simple(req, 404, "text/plain", "not found\n", 10);
  }
}

static void on_done(uv_async_t *a) {
  fx *f = a->data;
  wr_httpd_free(f->h);
  on_defer(&f->defer_timer); /* a request still held: answering frees it */
  uv_close((uv_handle_t *)&f->done, NULL);
  uv_close((uv_handle_t *)&f->defer_timer, NULL);
}

static fx *fx_new(void) {
  fx *f = calloc(1, sizeof(*f));
  f->defer_ms = 50;
  f->defer_rv = f->bad_rv = 12345;
  f->late_fd = -1;
  return f;
}

/* The fixture of the server tests: a new fx in *state, freed after. */
UNIT_STATE_FIXTURE(fx, fx_new(), free)

/* ---- client side (helper thread) ----------------------------------------- */

#define CHK(f, cond) UNIT_CHK((f)->fail, cond)

typedef struct cconn {
  int fd;
  char *buf; /* received, not yet parsed */
  size_t len;
} cconn;

typedef struct cresp {
  int status;
  char head[16384];
  char body[65536];
  size_t body_len;
} cresp;

#define CBUF (1u << 20)

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) { poll(NULL, 0, ms); }

static int cl_open(fx *f, cconn *c) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
  struct timeval tv = {.tv_sec = 5};
  int one = 1;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  c->buf = malloc(CBUF);
  c->len = 0;
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return connect(c->fd, (struct sockaddr *)&a, sizeof(a));
}

static void cl_close(cconn *c) {
  close(c->fd);
  free(c->buf);
}

/* 0 if all was sent. */
static int cl_send(cconn *c, const void *p, size_t n) {
  const char *s = p;
  while (n) {
    ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);
    if (k <= 0) return -1;
    s += k;
    n -= (size_t)k;
  }
  return 0;
}
static int cl_sends(cconn *c, const char *s) { return cl_send(c, s, strlen(s)); }

static int cl_fill(cconn *c) {
  if (c->len == CBUF) return -1;
  ssize_t k = recv(c->fd, c->buf + c->len, CBUF - c->len, 0);
  if (k <= 0) return -1;
  c->len += (size_t)k;
  return 0;
}

/* Reads one response to a |method| request. Returns 0 or -1. */
static int cl_read(cconn *c, const char *method, cresp *r) {
  wr_http_header hdrs[64];
  wr_http1_head h;
  size_t used;
  int rv;
  while ((rv = wr_http1_parse_response((uint8_t *)c->buf, c->len, method, NULL, hdrs, 64, &h,
                                       &used)) == WR_AGAIN)
    if (cl_fill(c) != 0) return -1;
  if (rv != WR_OK || used >= sizeof(r->head)) return -1;
  r->status = h.status;
  memcpy(r->head, c->buf, used);
  r->head[used] = '\0';
  size_t blen = 0;
  if (h.body == WR_HTTP1_BODY_LENGTH) {
    if (h.content_length > sizeof(r->body)) return -1;
    blen = (size_t)h.content_length;
  } else if (h.body != WR_HTTP1_BODY_NONE) {
    return -1; /* the server never sends chunked or close-delimited bodies */
  }
  while (c->len < used + blen)
    if (cl_fill(c) != 0) return -1;
  memcpy(r->body, c->buf + used, blen);
  r->body[blen] = '\0';
  r->body_len = blen;
  memmove(c->buf, c->buf + used + blen, c->len - used - blen);
  c->len -= used + blen;
  return 0;
}

/* cl_sends |req|, then cl_read the answer into |r|: 0 when both worked. */
static int cl_ask(cconn *c, const char *req, const char *method, cresp *r) {
  return cl_sends(c, req) == 0 ? cl_read(c, method, r) : -1;
}

/* 1 if the server closed the connection with nothing more to read. */
static int cl_eof(cconn *c) {
  if (c->len) return 0;
  char b;
  ssize_t k = recv(c->fd, &b, 1, 0);
  return k == 0 || (k < 0 && errno == ECONNRESET);
}

/* 1 if nothing arrives and the connection stays open for |ms|. */
static int cl_quiet(cconn *c, int ms) {
  struct pollfd p = {.fd = c->fd, .events = POLLIN};
  return c->len == 0 && poll(&p, 1, ms) == 0;
}

static int has(const cresp *r, const char *s) { return strstr(r->head, s) != NULL; }

/* ---- conversations: requests and their answers as data ------------------- */

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define HELLO "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"

typedef enum { WHOLE, TRICKLE, HALF_CLOSE } send_how;
typedef enum { NOTHING, QUIET, CLOSED, PAUSE } then_what;

/* One step of a client's conversation: on its connection (a new one for the
 * first step and where |fresh|), send |req| (if any), read one answer (if
 * |status|) and check it, then check the connection (|then|). A field left
 * 0/NULL is not checked. */
typedef struct step {
  int fresh;          /* close the connection and open a new one first */
  const char *req;    /* sent as is (NULL: nothing) */
  size_t req_len;     /* its length (0: strlen) */
  send_how send;      /* at once, a byte at a time, or at once then SHUT_WR */
  const char *method; /* the answer is to this method (NULL: "GET") */
  int status;         /* the answer's status (0: no answer is read) */
  const char *line;   /* the head starts with this */
  const char *has[5], *lacks[2]; /* the head has these, and not those */
  const char *body;   /* the whole body ("": empty) */
  size_t body_len;    /* (non-zero) the body is this long */
  then_what then;     /* after: nothing, quiet or paused for |ms|, or closed */
  int ms;
} step;

/* Records, unless a failure is already there, which step of the
 * conversation failed which check (and on which header, |what|), with the
 * status it got. Up to 80 bytes of the request name the step: enough to
 * tell apart rows that share a request line. */
static void step_fail(fx *f, size_t i, const step *s, int got, const char *check,
                      const char *what) {
  size_t n = s->req ? (s->req_len ? s->req_len : strlen(s->req)) : 0;
  if (f->fail[0]) return;
  snprintf(f->fail, sizeof(f->fail), "step %zu \"%.*s\": %s%s%s (status %d)", i,
           (int)(n > 80 ? 80 : n), s->req ? s->req : "", check, what ? " " : "", what ? what : "",
           got);
}

/* In a step: unless |cond|, step_fail and return. */
#define STEP_CHK(f, i, s, r, cond)                       \
  do {                                                   \
    if (!(cond)) {                                       \
      step_fail((f), (i), (s), (r)->status, #cond, NULL); \
      return;                                            \
    }                                                    \
  } while (0)

/* Sends |s|'s request as |s->send| says: 0 if all of it went. */
static int step_send(cconn *c, const step *s) {
  size_t n = s->req_len ? s->req_len : strlen(s->req);
  if (s->send != TRICKLE) {
    if (cl_send(c, s->req, n) != 0) return -1;
    return s->send == HALF_CLOSE ? shutdown(c->fd, SHUT_WR) : 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (cl_send(c, s->req + i, 1) != 0) return -1;
    if (i % 8 == 0) sleep_ms(1);
  }
  return 0;
}

/* Step |i| of a conversation, on |c|: a failed check is recorded in f->fail. */
static void step_run(fx *f, cconn *c, size_t i, const step *s) {
  static cresp r;
  r.status = 0;
  /* A quiet or paused step without a duration would check nothing. */
  STEP_CHK(f, i, s, &r, (s->then != QUIET && s->then != PAUSE) || s->ms > 0);
  if (s->req) STEP_CHK(f, i, s, &r, step_send(c, s) == 0);
  if (s->status) {
    STEP_CHK(f, i, s, &r, cl_read(c, s->method ? s->method : "GET", &r) == 0);
    STEP_CHK(f, i, s, &r, r.status == s->status);
    STEP_CHK(f, i, s, &r, !s->line || strncmp(r.head, s->line, strlen(s->line)) == 0);
    for (size_t k = 0; k < NELEMS(s->has) && s->has[k]; k++)
      if (!has(&r, s->has[k])) {
        step_fail(f, i, s, r.status, "head lacks", s->has[k]);
        return;
      }
    for (size_t k = 0; k < NELEMS(s->lacks) && s->lacks[k]; k++)
      if (has(&r, s->lacks[k])) {
        step_fail(f, i, s, r.status, "head has", s->lacks[k]);
        return;
      }
    STEP_CHK(f, i, s, &r, !s->body || (r.body_len == strlen(s->body) &&
                                        memcmp(r.body, s->body, r.body_len) == 0));
    STEP_CHK(f, i, s, &r, !s->body_len || r.body_len == s->body_len);
  }
  if (s->then == QUIET) STEP_CHK(f, i, s, &r, cl_quiet(c, s->ms));
  if (s->then == CLOSED) STEP_CHK(f, i, s, &r, cl_eof(c));
  if (s->then == PAUSE) sleep_ms(s->ms);
}

/* Runs |steps| in order, stopping at the first failed check (recorded in
 * f->fail; nothing is done when one is already there); closes the last
 * connection. */
static void converse(fx *f, const step *steps, size_t n) {
  cconn c;
  int opened = 0;
  for (size_t i = 0; i < n && !f->fail[0]; i++) {
    if (!opened || steps[i].fresh) {
      if (opened) cl_close(&c);
      opened = 1;
      if (cl_open(f, &c) != 0) step_fail(f, i, &steps[i], 0, "cl_open", NULL);
    }
    if (!f->fail[0]) step_run(f, &c, i, &steps[i]);
  }
  if (opened) cl_close(&c);
}

/* One request on a fresh connection; the answer must end the connection. */
static void expect_refusal(fx *f, const void *req, size_t len, int status) {
  const step s = {.req = req, .req_len = len, .status = status,
                  .has = {"Connection: close\r\n"}, .then = CLOSED};
  converse(f, &s, 1);
}

/* ---- server cases ------------------------------------------------------------ */

/* An expected value, checked only where |checked|. */
typedef struct want {
  int checked, value;
} want;
#define WANT(v) {1, (v)}

/* A server test: the server's config, the client (a conversation, or code)
 * and what the server side must have seen when the client is done. */
typedef struct server_case {
  const step *steps;      /* the client's conversation (converse), */
  size_t nsteps;
  void (*client)(fx *);   /* or, where steps is NULL, this */
  wr_httpd_config cfg;    /* 0s: the defaults */
  uint64_t defer_ms;      /* /defer answers after this long (0: 50 ms) */
  want requests;          /* the handler's calls */
  want defer_rv, bad_rv;  /* what /defer's late answer and /bad's answer returned */
} server_case;
#define STEPS(a) .steps = (a), .nsteps = NELEMS(a)

static void *client_main(void *arg) {
  fx *f = arg;
  if (f->sc->steps)
    converse(f, f->sc->steps, f->sc->nsteps);
  else
    f->sc->client(f);
  uv_async_send(&f->done);
  if (f->late_fd >= 0) {
    poll(NULL, 0, 100);
    close(f->late_fd);
  }
  return NULL;
}

/* Runs |sc|: the server on the test's loop, its client on a helper thread
 * until that is done; then checks what the server side saw. */
static void run_case(fx *f, const server_case *sc) {
  f->sc = sc;
  if (sc->defer_ms) f->defer_ms = sc->defer_ms;
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->port = unit_httpd_listen(&f->loop, &sc->cfg, handler, f, &f->h);
  assert_int_equal(uv_async_init(&f->loop, &f->done, on_done), 0);
  f->done.data = f;
  uv_timer_init(&f->loop, &f->defer_timer);
  f->defer_timer.data = f;
  unit_loop_with_client(&f->loop, client_main, f, f->fail);
  if (sc->requests.checked) assert_int_equal(f->requests, sc->requests.value);
  if (sc->defer_rv.checked) assert_int_equal(f->defer_rv, sc->defer_rv.value);
  if (sc->bad_rv.checked) assert_int_equal(f->bad_rv, sc->bad_rv.value);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_get(void **state) {
  static const step steps[] = {
      {.req = HELLO, .status = 200, .line = "HTTP/1.1 200 OK\r\n",
       .has = {"\r\nContent-Type: text/plain\r\n", "\r\nContent-Length: 11\r\n"},
       .lacks = {"Connection"}, .body = "hello world"},
      /* Target, path, query and the handler's framing fields replaced. */
      {.req = "GET /echo?a=1&b HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n", .status = 200, .body = "",
       .has = {"\r\nX-Method: GET\r\n", "\r\nX-Target: /echo?a=1&b\r\n", "\r\nX-Query: a=1&b\r\n",
               "\r\nX-Fields: 2\r\n", "\r\nContent-Length: 0\r\n"},
       .lacks = {"999", "Transfer-Encoding"}},
      /* 404 from the handler; 204 without Content-Length or body. */
      {.req = "GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n",
       .status = 404, .line = "HTTP/1.1 404 Not Found\r\n", .body = "not found\n"},
      {.status = 204, .lacks = {"Content-Length"}, .body = "", .then = QUIET, .ms = 50},
  };
  run_case(*state, &(const server_case){STEPS(steps), .requests = WANT(4)});
}

static void test_keep_alive(void **state) {
  static const step steps[] = {
      /* HTTP/1.1: two requests in turn on one connection, then close. */
      {.req = HELLO, .status = 200, .body_len = 11, .then = QUIET, .ms = 20},
      {.req = HELLO, .status = 200, .body_len = 11, .then = QUIET, .ms = 20},
      {.req = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", .status = 200,
       .has = {"\r\nConnection: close\r\n"}, .then = CLOSED},
      /* HTTP/1.0 closes unless asked to keep alive. */
      {.fresh = 1, .req = "GET /hello HTTP/1.0\r\n\r\n", .status = 200,
       .has = {"\r\nConnection: close\r\n"}, .then = CLOSED},
      {.fresh = 1, .req = "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", .status = 200,
       .has = {"\r\nConnection: keep-alive\r\n"}, .then = QUIET, .ms = 20},
      {.req = "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", .status = 200,
       .has = {"\r\nConnection: keep-alive\r\n"}, .then = QUIET, .ms = 20},
      /* Requests followed by a half-close are all answered, then the server
       * closes. */
      {.fresh = 1, .req = HELLO "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", .send = HALF_CLOSE,
       .status = 200, .body_len = 11},
      {.status = 200, .has = {"X-Method: GET"}, .then = CLOSED},
      /* A partial request and a half-close: closed without an answer. */
      {.fresh = 1, .req = "GET /hello HTTP/1.1\r\nHost: x\r\n", .send = HALF_CLOSE, .then = CLOSED},
      /* The handler's "Connection: close" closes too. */
      {.fresh = 1, .req = "GET /close HTTP/1.1\r\nHost: x\r\n\r\n", .status = 200,
       .has = {"\r\nConnection: close\r\n"}, .body = "bye", .then = CLOSED},
  };
  run_case(*state, &(const server_case){STEPS(steps), .requests = WANT(9)});
}

static void test_pipelined(void **state) {
  static const step steps[] = {
      /* The deferred first answer holds back the others: order is kept. */
      {.req = "GET /defer HTTP/1.1\r\nHost: x\r\n\r\n"
              "\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
              "POST /echo?2 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
              "GET /echo?3 HTTP/1.1\r\nHost: x\r\n\r\n",
       .status = 200, .body = "later"},
      {.status = 200, .body = "hello world"},
      {.method = "POST", .status = 200, .has = {"X-Query: 2\r\n"}, .body = "body"},
      {.status = 200, .has = {"X-Query: 3\r\n"}, .body = ""},
      /* HEAD: the head only, with the length a GET would get. */
      {.req = "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n" HELLO, .method = "HEAD", .status = 200,
       .has = {"\r\nContent-Length: 11\r\n"}, .body = ""},
      {.status = 200, .body = "hello world", .then = QUIET, .ms = 20},
      /* A good request, then a bad one: the first is still answered. */
      {.req = HELLO "GET / HTTP/1.1\r\nHost : x\r\n\r\n", .status = 200},
      {.status = 400, .has = {"Connection: close"}, .then = CLOSED},
  };
  run_case(*state, &(const server_case){STEPS(steps), .requests = WANT(7),
                                        .defer_rv = WANT(WR_OK)});
}

static void test_bodies(void **state) {
  static const step steps[] = {
      /* Chunked, with extensions and trailers. */
      {.req = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              "3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nT: 1\r\n\r\n",
       .method = "POST", .status = 200, .body = "abcdefg"},
      /* Head and chunked body trickled byte by byte. */
      {.req = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              "5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n",
       .send = TRICKLE, .method = "POST", .status = 200, .body = "hello!"},
      /* Content-Length body in two parts. */
      {.req = "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234", .then = PAUSE,
       .ms = 20},
      {.req = "56789", .method = "PUT", .status = 200, .body = "0123456789",
       .has = {"X-Method: PUT\r\n"}},
      /* Expect: 100-continue gets an interim answer before the body is sent. */
      {.req = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
       .method = "POST", .status = 100},
      {.req = "ok", .method = "POST", .status = 200, .body = "ok"},
      /* A body of exactly max_body (16) is fine. */
      {.req = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n0123456789abcdef",
       .method = "POST", .status = 200, .body_len = 16},
  };
  run_case(*state, &(const server_case){STEPS(steps), .cfg.max_body = 16});
}

static void client_413(fx *f) {
  const char *s = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n";
  expect_refusal(f, s, strlen(s), 413);
  s = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "10\r\n0123456789abcdef\r\n1\r\nX\r\n0\r\n\r\n";
  expect_refusal(f, s, strlen(s), 413);
  /* The whole too-large body sent anyway: the answer still arrives (the
   * server drains instead of resetting). */
  size_t n = 300 * 1024;
  char *big = malloc(n + 128);
  int k = snprintf(big, 128, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
  memset(big + k, 'b', n);
  expect_refusal(f, big, (size_t)k + n, 413);
  free(big);
}

static void test_413(void **state) {
  run_case(*state, &(const server_case){.client = client_413, .cfg.max_body = 16,
                                        .requests = WANT(0)});
}

static void client_431(fx *f) {
  size_t n = 40 * 1024;
  char *s = malloc(n + 256);
  int k = sprintf(s, "GET / HTTP/1.1\r\nHost: x\r\nBig: ");
  memset(s + k, 'v', n);
  memcpy(s + k + n, "\r\n\r\n", 4);
  expect_refusal(f, s, (size_t)k + n + 4, 431);
  free(s);
  /* 101 fields. */
  s = malloc(8192);
  k = sprintf(s, "GET / HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < 100; i++) k += sprintf(s + k, "X-%d: y\r\n", i);
  k += sprintf(s + k, "\r\n");
  expect_refusal(f, s, (size_t)k, 431);
  free(s);
}

static void test_431(void **state) {
  run_case(*state, &(const server_case){.client = client_431, .requests = WANT(0)});
}

static void client_400(fx *f) {
  static const char *const bad[] = {
      "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET / HTTP/1.1\nHost: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\n\n",
      "GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
      "G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
  };
  for (size_t i = 0; i < NELEMS(bad); i++) expect_refusal(f, bad[i], strlen(bad[i]), 400);
}

static void test_400(void **state) {
  run_case(*state, &(const server_case){.client = client_400, .requests = WANT(0)});
}

static void test_bad_response(void **state) {
  static const step steps[] = {{.req = "GET /bad HTTP/1.1\r\nHost: x\r\n\r\n", .status = 500,
                                .has = {"Connection: close\r\n"}, .then = CLOSED}};
  run_case(*state, &(const server_case){STEPS(steps), .bad_rv = WANT(WR_ERR_INVAL)});
}

static void client_deferred_gone(fx *f) {
  cconn c;
  CHK(f, cl_open(f, &c) == 0);
  CHK(f, cl_sends(&c, "GET /defer HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
  sleep_ms(50);
  cl_close(&c); /* before the answer (due at 200 ms) */
  sleep_ms(400);
}

static void test_deferred_gone(void **state) {
  run_case(*state, &(const server_case){.client = client_deferred_gone, .defer_ms = 200,
                                        .requests = WANT(1), .defer_rv = WANT(WR_ERR_INVAL)});
}

static void client_free_deferred(fx *f) {
  cconn c;
  CHK(f, cl_open(f, &c) == 0);
  CHK(f, cl_sends(&c, "GET /defer HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
  sleep_ms(50);
  /* Returning wakes the loop, which frees the server with the request
   * still held and the connection open (closed only afterwards). */
  f->late_fd = c.fd;
  free(c.buf);
}

static void test_free_deferred(void **state) {
  run_case(*state, &(const server_case){.client = client_free_deferred, .defer_ms = 10000,
                                        .requests = WANT(1), .defer_rv = WANT(WR_ERR_INVAL)});
}

static void client_timeouts(fx *f) {
  cconn c;
  static cresp r;
  uint64_t t0;
  /* Nothing sent: closed after read_timeout (200 ms). */
  t0 = now_ms();
  CHK(f, cl_open(f, &c) == 0);
  CHK(f, cl_eof(&c));
  CHK(f, now_ms() - t0 >= 150 && now_ms() - t0 < 2000);
  cl_close(&c);
  /* A partial head: same. */
  t0 = now_ms();
  CHK(f, cl_open(f, &c) == 0);
  CHK(f, cl_sends(&c, "GET / HTTP/1.1\r\nHost: x\r\n") == 0);
  CHK(f, cl_eof(&c));
  CHK(f, now_ms() - t0 >= 150 && now_ms() - t0 < 2000);
  cl_close(&c);
  /* Keep-alive idle: closed after idle_timeout (400 ms) from the answer. */
  CHK(f, cl_open(f, &c) == 0);
  CHK(f, cl_ask(&c, HELLO, "GET", &r) == 0);
  t0 = now_ms();
  CHK(f, cl_quiet(&c, 250));
  CHK(f, cl_eof(&c));
  CHK(f, now_ms() - t0 >= 350 && now_ms() - t0 < 2000);
  cl_close(&c);
  /* A slow client (a byte every 30 ms) is cut off 200 ms after its first
   * byte, though each byte comes well within the timeouts. */
  CHK(f, cl_open(f, &c) == 0);
  CHK(f, cl_ask(&c, HELLO, "GET", &r) == 0);
  sleep_ms(100); /* idle, within the idle timeout */
  const char *slow = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
  int closed = 0;
  t0 = now_ms();
  for (size_t i = 0; slow[i] && !closed; i++) {
    if (cl_send(&c, slow + i, 1) != 0) break;
    struct pollfd p = {.fd = c.fd, .events = POLLIN};
    if (poll(&p, 1, 30) == 1) closed = cl_eof(&c);
  }
  CHK(f, closed);
  CHK(f, now_ms() - t0 >= 150 && now_ms() - t0 < 1500);
  cl_close(&c);
}

static void test_timeouts(void **state) {
  run_case(*state, &(const server_case){.client = client_timeouts,
                                        .cfg = {.read_timeout_ms = 200, .idle_timeout_ms = 400},
                                        .requests = WANT(2)});
}

static void client_max_conns(fx *f) {
  cconn a, b;
  static cresp r;
  CHK(f, cl_open(f, &a) == 0);
  CHK(f, cl_ask(&a, HELLO, "GET", &r) == 0 && r.status == 200);
  /* A second connection is accepted and closed at once. */
  CHK(f, cl_open(f, &b) == 0);
  cl_sends(&b, HELLO);
  CHK(f, cl_eof(&b));
  cl_close(&b);
  /* The first still works; once it is gone a new one is served. */
  CHK(f, cl_ask(&a, HELLO, "GET", &r) == 0 && r.status == 200);
  cl_close(&a);
  sleep_ms(100);
  static const step hello_ok = {.req = HELLO, .status = 200};
  converse(f, &hello_ok, 1);
}

static void test_max_conns(void **state) {
  run_case(*state, &(const server_case){.client = client_max_conns, .cfg.max_conns = 1,
                                        .requests = WANT(3)});
}

/* Many pipelined requests whose answers the client does not read at first:
 * the server stops serving above its output watermark, then catches up. */
static void client_backpressure(fx *f) {
  cconn c;
  static cresp r;
  const char *one = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
  size_t n = 300, l = strlen(one);
  char *s = malloc(n * l);
  for (size_t i = 0; i < n; i++) memcpy(s + i * l, one, l);
  CHK(f, cl_open(f, &c) == 0);
  CHK(f, cl_send(&c, s, n * l) == 0);
  free(s);
  sleep_ms(100);
  for (size_t i = 0; i < n; i++) {
    CHK(f, cl_read(&c, "GET", &r) == 0);
    CHK(f, r.status == 200 && r.body_len == BIG && r.body[BIG - 1] == 'z');
  }
  CHK(f, cl_quiet(&c, 20));
  cl_close(&c);
}

static void test_backpressure(void **state) {
  run_case(*state, &(const server_case){.client = client_backpressure, .requests = WANT(300)});
}

static void test_listen_error(void **state) {
  (void)state;
  uv_loop_t loop;
  wr_httpd *h = NULL, *h2 = NULL;
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  assert_int_equal(uv_loop_init(&loop), 0);
  uv_ip4_addr("127.0.0.1", 0, &a);
  assert_int_equal(wr_httpd_listen(&loop, (struct sockaddr *)&a, NULL, handler, NULL, &h), WR_OK);
  assert_int_equal(wr_httpd_addr(h, &ss), WR_OK);
  /* The same port again: WR_ERR_IO, nothing returned, nothing leaked. */
  assert_int_equal(wr_httpd_listen(&loop, (struct sockaddr *)&ss, NULL, handler, NULL, &h2),
                   WR_ERR_IO);
  assert_null(h2);
  wr_httpd_free(h);
  unit_loop_finish(&loop);
}

int main(void) {
  return UNIT_RUN(
      NULL, NULL,
      UNIT_FIXTURE(fx_setup, fx_teardown, test_get, test_keep_alive, test_pipelined, test_bodies,
                   test_413, test_431, test_400, test_bad_response, test_deferred_gone,
                   test_free_deferred, test_timeouts, test_max_conns, test_backpressure),
      UNIT_TESTS(test_listen_error));
}
