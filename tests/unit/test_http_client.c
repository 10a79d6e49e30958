/* The one-shot HTTP/1.1 client: requests as written on the wire, response
 * framing (length, chunked, to EOF, 1xx skipped, HEAD), limits, timeouts,
 * Go-style errors, https against a test CA, URL parsing and escaping.
 *
 * wr_http_do() blocks on its own loop, so every server here runs in a
 * thread: a plain socket server that plays a script (reads the request,
 * optionally waits, writes canned bytes), or a libuv loop with a TLS
 * listener. Only loopback traffic. */
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "lib/err.h"
#include "net/conn.h"
#include "net/http_client.h"

static unit_pki pki;

static int group_setup(void **state) {
  static const char *const dns[] = {"localhost"};
  *state = &pki;
  signal(SIGPIPE, SIG_IGN);
  return unit_pki_make(&pki, "wr-httpc", "localhost", dns, sizeof(dns) / sizeof(dns[0]));
}

/* --- a scripted plain-TCP server in a thread ------------------------------ */

typedef struct script {
  const char *response;   /* written after the request arrived (NULL: close at once) */
  size_t response_len;    /* 0: strlen(response) */
  int delay_ms;           /* wait before answering */
  int stall_ms;           /* after answering, keep the socket open this long */
  int bytewise;           /* write one byte at a time */
  /* filled in */
  int lfd;
  uint16_t port;
  pthread_t thread;
  char request[16384];
  size_t request_len;
} script;

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static void *serve(void *arg) {
  script *s = arg;
  int fd = accept(s->lfd, NULL, NULL);
  if (fd < 0) return NULL;
  /* Read the head, then Content-Length bytes of body. */
  size_t want = 0;
  for (;;) {
    ssize_t n = read(fd, s->request + s->request_len, sizeof(s->request) - 1 - s->request_len);
    if (n <= 0) break;
    s->request_len += (size_t)n;
    s->request[s->request_len] = '\0';
    char *end = strstr(s->request, "\r\n\r\n");
    if (!end) continue;
    if (!want) {
      const char *cl = strcasestr(s->request, "\r\nContent-Length: ");
      want = (size_t)(end + 4 - s->request) + (cl && cl < end ? (size_t)atol(cl + 18) : 0);
    }
    if (s->request_len >= want) break;
  }
  if (s->delay_ms) sleep_ms(s->delay_ms);
  if (s->response) {
    size_t len = s->response_len ? s->response_len : strlen(s->response);
    if (s->bytewise) {
      for (size_t i = 0; i < len; i++)
        if (write(fd, s->response + i, 1) != 1) break;
    } else if (write(fd, s->response, len) < 0) {
      /* the client may have given up */
    }
  }
  if (s->stall_ms) sleep_ms(s->stall_ms);
  close(fd);
  return NULL;
}

static void script_start(script *s) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  s->lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s->lfd >= 0);
  assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(listen(s->lfd, 4), 0);
  assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &len), 0);
  s->port = ntohs(a.sin_port);
  assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void script_join(script *s) {
  pthread_join(s->thread, NULL);
  close(s->lfd);
}

static int do_get(script *s, const char *method, const char *path, wr_http_request *tmpl,
                  wr_http_response *resp, char *err, size_t errlen) {
  char url[256];
  wr_http_request req = tmpl ? *tmpl : (wr_http_request){0};
  snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", s->port, path);
  req.method = method;
  req.url = url;
  return wr_http_do(&req, resp, err, errlen);
}

/* Starts |s|'s server, makes the request (do_get), which must return
 * |want|, and waits for the server's end. */
static void scripted(script *s, const char *method, const char *path, wr_http_request *tmpl,
                     wr_http_response *resp, char *err, size_t errlen, int want) {
  script_start(s);
  assert_int_equal(do_get(s, method, path, tmpl, resp, err, errlen), want);
  script_join(s);
}

/* scripted(), which must succeed: the answer in |resp| (the caller frees it). */
static void scripted_ok(script *s, const char *method, const char *path, wr_http_request *tmpl,
                        wr_http_response *resp) {
  char err[512];
  scripted(s, method, path, tmpl, resp, err, sizeof(err), WR_OK);
}

/* --- plain HTTP --------------------------------------------------------------- */

static void test_get_with_length(void **state) {
  script s = {.response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          "Content-Length: 11\r\nX-Two: a\r\nx-two: b\r\n\r\n{\"ok\":true}"};
  wr_http_header h[] = {{"User-Agent", 10, "warren/1.0", 10},
                        {"Accept", 6, "application/json;version=1", 26}};
  wr_http_request tmpl = {.headers = h, .nheaders = 2};
  wr_http_response r;
  (void)state;
  scripted_ok(&s, "GET", "/client/v4/a?x=1&y=%2F", &tmpl, &r);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, 11);
  assert_string_equal((char *)r.body, "{\"ok\":true}");
  assert_string_equal(wr_http_response_header(&r, "content-type"), "application/json");
  assert_string_equal(wr_http_response_header(&r, "X-TWO"), "b"); /* the last one */
  assert_null(wr_http_response_header(&r, "X-Three"));
  char host[64];
  snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%u\r\n", s.port);
  /* No Content-Length: a GET without a body. */
  unit_assert_contains(s.request,
                       (const char *const[]){"GET /client/v4/a?x=1&y=%2F HTTP/1.1\r\n", host,
                                             "\r\nUser-Agent: warren/1.0\r\n",
                                             "\r\nAccept: application/json;version=1\r\n",
                                             "\r\nConnection: close\r\n", NULL},
                       (const char *const[]){"Content-Length", "Accept-Encoding", NULL});
  wr_http_response_free(&r);
}

static void test_post_body_chunked_response(void **state) {
  script s = {.response = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
              .bytewise = 1};
  const char *body = "{\"name\":\"t\"}";
  wr_http_request tmpl = {.body = (const uint8_t *)body, .body_len = strlen(body)};
  wr_http_response r;
  (void)state;
  scripted_ok(&s, "POST", "/p", &tmpl, &r);
  assert_int_equal(r.status, 201);
  assert_string_equal((char *)r.body, "hello world");
  unit_assert_contains(s.request,
                       (const char *const[]){"POST /p HTTP/1.1\r\n", "\r\nContent-Length: 12\r\n",
                                             "\r\nUser-Agent: Go-http-client/1.1\r\n",
                                             "\r\n\r\n{\"name\":\"t\"}", NULL},
                       NULL);
  wr_http_response_free(&r);
}

static void test_bodyless_post_sends_zero_length(void **state) {
  script s = {.response = "HTTP/1.1 204 No Content\r\n\r\n"};
  wr_http_response r;
  (void)state;
  scripted_ok(&s, "PUT", "/", NULL, &r);
  assert_int_equal(r.status, 204);
  assert_int_equal(r.body_len, 0);
  assert_non_null(r.body);
  assert_non_null(strstr(s.request, "\r\nContent-Length: 0\r\n"));
  wr_http_response_free(&r);
}

static void test_body_to_eof_and_1xx_skipped(void **state) {
  script s = {.response = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 404 Not Found\r\n"
                          "Content-Type: text/plain\r\n\r\nno such thing"};
  wr_http_response r;
  (void)state;
  scripted_ok(&s, "GET", "/missing", NULL, &r);
  assert_int_equal(r.status, 404);
  assert_string_equal((char *)r.body, "no such thing");
  assert_string_equal(wr_http_response_header(&r, "Content-Type"), "text/plain");
  wr_http_response_free(&r);
}

static void test_head_has_no_body(void **state) {
  script s = {.response = "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n", .stall_ms = 300};
  wr_http_request tmpl = {.timeout_ms = 5000};
  wr_http_response r;
  (void)state;
  scripted_ok(&s, "HEAD", "/", &tmpl, &r);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, 0);
  wr_http_response_free(&r);
}

/* --- errors ------------------------------------------------------------------- */

static void test_connection_refused(void **state) {
  script s = {0};
  wr_http_response r;
  char err[512], want[256];
  (void)state;
  /* A port that was just free: bind, read it, close. */
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
  close(fd);
  uint16_t port = ntohs(a.sin_port);
  s.port = port;
  assert_int_equal(do_get(&s, "GET", "/client/v4/x?a=b", NULL, &r, err, sizeof(err)), WR_ERR_IO);
  snprintf(want, sizeof(want),
           "Get \"http://127.0.0.1:%u/client/v4/x?a=b\": dial tcp 127.0.0.1:%u: connect: connection refused",
           port, port);
  assert_string_equal(err, want);
  wr_http_response_free(&r);
}

static void test_timeout_awaiting_headers(void **state) {
  script s = {.response = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", .delay_ms = 1500};
  wr_http_request tmpl = {.timeout_ms = 200};
  wr_http_response r;
  char err[512];
  (void)state;
  script_start(&s);
  uint64_t t0 = uv_hrtime();
  assert_int_equal(do_get(&s, "DELETE", "/t", &tmpl, &r, err, sizeof(err)), WR_ERR_IO);
  assert_true(uv_hrtime() - t0 < 1000000000ULL); /* did not wait for the server */
  script_join(&s);
  assert_non_null(strstr(err, "Delete \"http://127.0.0.1:"));
  assert_non_null(strstr(err, "/t\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"));
  wr_http_response_free(&r);
}

/* A GET / with |tmpl| (NULL: defaults) against the server |s| fails with
 * |want| and an error message containing |msg| (NULL: not checked). */
static void expect_fails(script *s, wr_http_request *tmpl, int want, const char *msg) {
  wr_http_response r;
  char err[512];
  scripted(s, "GET", "/", tmpl, &r, err, sizeof(err), want);
  if (msg) assert_non_null(strstr(err, msg));
  wr_http_response_free(&r);
}

/* The same against a server that answers |response| (NULL: closes without
 * a byte). */
static void expect_get_fails(const char *response, int want, const char *msg) {
  script s = {.response = response};
  expect_fails(&s, NULL, want, msg);
}

static void test_timeout_reading_body(void **state) {
  script s = {.response = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", .stall_ms = 1500};
  wr_http_request tmpl = {.timeout_ms = 300};
  (void)state;
  expect_fails(&s, &tmpl, WR_ERR_IO, "(Client.Timeout or context cancellation while reading body)");
}

static void test_eof_cases(void **state) {
  (void)state;
  expect_get_fails(NULL, WR_ERR_IO, "\": EOF"); /* closes without a byte */
  /* head cut short */
  expect_get_fails("HTTP/1.1 200 OK\r\nContent-Len", WR_ERR_IO, "\": unexpected EOF");
  /* body cut short */
  expect_get_fails("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", WR_ERR_IO,
                   "\": unexpected EOF");
  expect_get_fails("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", WR_ERR_IO,
                   "\": unexpected EOF");
}

static void test_malformed_response(void **state) {
  (void)state;
  expect_get_fails("SSH-2.0-OpenSSH_9.2\r\n\r\n", WR_ERR_PROTO,
                   "malformed HTTP response \"SSH-2.0-OpenSSH_9.2\"");
  expect_get_fails("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", WR_ERR_PROTO,
                   "malformed chunked encoding");
}

static void test_limits(void **state) {
  wr_http_request tmpl = {.max_body = 10};
  wr_http_response r;
  (void)state;
  script s = {.response = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789A"};
  expect_fails(&s, &tmpl, WR_ERR_LIMIT, "response body larger than 10 bytes");
  script s2 = {.response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "6\r\n012345\r\n6\r\n012345\r\n0\r\n\r\n"};
  expect_fails(&s2, &tmpl, WR_ERR_LIMIT, NULL);
  script s3 = {.response = "HTTP/1.1 200 OK\r\n\r\n0123456789ABCDEF"}; /* to EOF */
  expect_fails(&s3, &tmpl, WR_ERR_LIMIT, NULL);

  /* Exactly at the limit is fine. */
  script s4 = {.response = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"};
  scripted_ok(&s4, "GET", "/", &tmpl, &r);
  assert_string_equal((char *)r.body, "0123456789");
  wr_http_response_free(&r);

  /* A head that never ends. */
  static char big[40000];
  memcpy(big, "HTTP/1.1 200 OK\r\n", 17);
  for (size_t i = 17; i + 11 <= sizeof(big) - 1; i += 11) memcpy(big + i, "X-A: 1234\r\n", 11);
  big[sizeof(big) - 1] = '\0';
  script s5 = {.response = big, .response_len = 39990};
  expect_fails(&s5, NULL, WR_ERR_LIMIT, NULL);
}

static void test_bad_requests(void **state) {
  wr_http_response r;
  char err[512];
  wr_http_header host[] = {{"Host", 4, "evil", 4}};
  wr_http_header crlf[] = {{"X-A", 3, "a\r\nX-B: b", 9}};
  (void)state;
  wr_http_request req = {.method = "GET", .url = "ftp://127.0.0.1/"};
  assert_int_equal(wr_http_do(&req, &r, err, sizeof(err)), WR_ERR_INVAL);
  assert_non_null(strstr(err, "Get \"ftp://127.0.0.1/\": "));
  wr_http_response_free(&r);
  req.url = "http://127.0.0.1:1/";
  req.headers = host;
  req.nheaders = 1;
  assert_int_equal(wr_http_do(&req, &r, err, sizeof(err)), WR_ERR_INVAL);
  wr_http_response_free(&r);
  req.headers = crlf;
  assert_int_equal(wr_http_do(&req, &r, err, sizeof(err)), WR_ERR_INVAL);
  wr_http_response_free(&r);
  req.headers = NULL;
  req.nheaders = 0;
  req.method = "GE T";
  assert_int_equal(wr_http_do(&req, &r, err, sizeof(err)), WR_ERR_INVAL);
  wr_http_response_free(&r);
  req.method = "GET";
  req.url = "http://127.0.0.1:1/a b";
  assert_int_equal(wr_http_do(&req, &r, err, sizeof(err)), WR_ERR_INVAL);
  wr_http_response_free(&r);
}

/* --- https ----------------------------------------------------------------------- */

typedef struct tls_server {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_async_t stop;
  wr_tls_creds *creds;
  uint16_t port;
  pthread_t thread;
  char rx[4096];
  size_t rxlen;
  int answered;
} tls_server;

static void ts_read(wr_conn *c, const uint8_t *data, size_t len, void *user) {
  tls_server *ts = user;
  if (ts->rxlen + len < sizeof(ts->rx)) {
    memcpy(ts->rx + ts->rxlen, data, len);
    ts->rxlen += len;
    ts->rx[ts->rxlen] = '\0';
  }
  if (!ts->answered && strstr(ts->rx, "\r\n\r\n")) {
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure";
    ts->answered = 1;
    wr_conn_write(c, (const uint8_t *)resp, sizeof(resp) - 1);
    wr_conn_shutdown(c);
  }
}
static void ts_connect(wr_conn *c, int status, const char *msg, void *user) {
  (void)msg;
  (void)user;
  if (status != WR_OK) wr_conn_close(c);
}
static void ts_eof(wr_conn *c, int status, const char *msg, void *user) {
  (void)status;
  (void)msg;
  (void)user;
  wr_conn_close(c);
}
static void ts_close(wr_conn *c, void *user) {
  (void)c;
  (void)user;
}
static const wr_conn_callbacks ts_cbs = {.on_connect = ts_connect, .on_read = ts_read,
                                         .on_eof = ts_eof, .on_close = ts_close};

static void ts_accept(uv_stream_t *server, int status) {
  tls_server *ts = server->data;
  wr_conn *c;
  if (status == 0) wr_conn_accept(server, ts->creds, &ts_cbs, ts, &c);
}
static void ts_stop(uv_async_t *a) {
  tls_server *ts = a->data;
  uv_close((uv_handle_t *)&ts->listener, NULL);
  uv_close((uv_handle_t *)&ts->stop, NULL);
}
static void *ts_run(void *arg) {
  tls_server *ts = arg;
  uv_run(&ts->loop, UV_RUN_DEFAULT);
  return NULL;
}

static void tls_server_start(tls_server *ts) {
  char err[256];
  memset(ts, 0, sizeof(*ts));
  wr_tls_server_config sc = {.cert_file = pki.cert, .key_file = pki.key};
  assert_int_equal(wr_tls_creds_server(&sc, &ts->creds, err, sizeof(err)), WR_OK);
  uv_loop_init(&ts->loop);
  ts->port = unit_tcp_listen(&ts->loop, &ts->listener, ts, ts_accept);
  uv_async_init(&ts->loop, &ts->stop, ts_stop);
  ts->stop.data = ts;
  assert_int_equal(pthread_create(&ts->thread, NULL, ts_run, ts), 0);
}

static void tls_server_stop(tls_server *ts) {
  uv_async_send(&ts->stop);
  pthread_join(ts->thread, NULL);
  uv_run(&ts->loop, UV_RUN_DEFAULT);
  uv_loop_close(&ts->loop);
  wr_tls_creds_free(ts->creds);
}

static void test_https(void **state) {
  tls_server ts;
  wr_http_response r;
  char url[128], err[512];
  (void)state;
  tls_server_start(&ts);
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/secret", ts.port);

  /* Trusted through ca_file; the IP literal matches the certificate's IP SAN. */
  wr_http_request req = {.method = "GET", .url = url, .ca_file = pki.ca, .timeout_ms = 5000};
  assert_int_equal(wr_http_do(&req, &r, err, sizeof(err)), WR_OK);
  assert_int_equal(r.status, 200);
  assert_string_equal((char *)r.body, "secure");
  assert_non_null(strstr(ts.rx, "GET /secret HTTP/1.1\r\n"));
  wr_http_response_free(&r);

  /* The wrong CA, and the system store (which does not know the test CA). */
  ts.answered = 0;
  ts.rxlen = 0;
  req.ca_file = pki.other_ca;
  assert_int_equal(wr_http_do(&req, &r, err, sizeof(err)), WR_ERR_CRYPTO);
  assert_non_null(strstr(err, "unknown authority"));
  wr_http_response_free(&r);
  req.ca_file = NULL;
  unsetenv("SSL_CERT_FILE");
  assert_int_equal(wr_http_do(&req, &r, err, sizeof(err)), WR_ERR_CRYPTO);
  wr_http_response_free(&r);

  /* SSL_CERT_FILE replaces the system store, as in Go. */
  setenv("SSL_CERT_FILE", pki.ca, 1);
  assert_int_equal(wr_http_do(&req, &r, err, sizeof(err)), WR_OK);
  assert_string_equal((char *)r.body, "secure");
  wr_http_response_free(&r);
  unsetenv("SSL_CERT_FILE");

  /* A name the certificate does not carry. */
  snprintf(url, sizeof(url), "https://127.0.0.2:%u/secret", ts.port);
  req.ca_file = pki.ca;
  int rv = wr_http_do(&req, &r, err, sizeof(err));
  assert_true(rv == WR_ERR_CRYPTO || rv == WR_ERR_IO); /* 127.0.0.2 may not reach the listener */
  wr_http_response_free(&r);

  /* An unreadable trust file. */
  req.ca_file = "/nonexistent/ca.pem";
  assert_int_equal(wr_http_do(&req, &r, err, sizeof(err)), WR_ERR_CRYPTO);
  wr_http_response_free(&r);
  tls_server_stop(&ts);
}

/* --- URLs --------------------------------------------------------------------------- */

static void test_url_parse(void **state) {
  wr_url u;
  (void)state;
  assert_int_equal(wr_url_parse("http://127.0.0.1:8081/client/v4?x=1", &u), WR_OK);
  assert_int_equal(u.https, 0);
  assert_string_equal(u.host, "127.0.0.1");
  assert_int_equal(u.port, 8081);
  assert_string_equal(u.authority, "127.0.0.1:8081");
  assert_string_equal(u.path, "/client/v4?x=1");
  assert_int_equal(wr_url_parse("HTTPS://api.example.com", &u), WR_OK);
  assert_int_equal(u.https, 1);
  assert_int_equal(u.port, 443);
  assert_string_equal(u.path, "");
  assert_string_equal(u.authority, "api.example.com");
  assert_int_equal(wr_url_parse("http://[::1]:99/p", &u), WR_OK);
  assert_string_equal(u.host, "::1");
  assert_int_equal(u.port, 99);
  assert_string_equal(u.authority, "[::1]:99");
  assert_int_equal(wr_url_parse("http://[::1]/", &u), WR_OK);
  assert_int_equal(u.port, 80);
  assert_int_equal(wr_url_parse("http://h?q", &u), WR_OK);
  assert_string_equal(u.path, "?q");
  static const char *const bad[] = {"",           "ftp://h/",         "http://",      "http:///p",
                                    "http://h:0/", "http://h:65536/", "http://h:x/", "http://u@h/",
                                    "http://[::1/", "http://[::1]x/", "http://h/#f", "h:80"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(wr_url_parse(bad[i], &u), WR_ERR_INVAL);
}

static void test_url_escape(void **state) {
  char out[64];
  (void)state;
  /* Go: url.QueryEscape, url.PathEscape and URL.String() of a Path. */
  assert_int_equal(wr_url_escape("a b/c?d&e=f+g~h", WR_URL_QUERY, out, sizeof(out)), 25);
  assert_string_equal(out, "a+b%2Fc%3Fd%26e%3Df%2Bg~h");
  wr_url_escape("10.0.0.0/8", WR_URL_SEGMENT, out, sizeof(out));
  assert_string_equal(out, "10.0.0.0%2F8");
  wr_url_escape("10.0.0.0%2F8", WR_URL_PATH, out, sizeof(out));
  assert_string_equal(out, "10.0.0.0%252F8"); /* cloudflared's double escape */
  wr_url_escape("a b;c,d$&+:=@", WR_URL_SEGMENT, out, sizeof(out));
  assert_string_equal(out, "a%20b%3Bc%2Cd$&+:=@");
  wr_url_escape("/a b;c,d", WR_URL_PATH, out, sizeof(out));
  assert_string_equal(out, "/a%20b;c,d");
  wr_url_escape("\xc3\xa9", WR_URL_QUERY, out, sizeof(out));
  assert_string_equal(out, "%C3%A9");
  assert_int_equal(wr_url_escape("abc", WR_URL_QUERY, out, 3), WR_ERR_LIMIT);
  assert_int_equal(wr_url_escape("/", WR_URL_QUERY, out, 3), WR_ERR_LIMIT);
  assert_int_equal(wr_url_escape("", WR_URL_QUERY, out, 1), 0);
}

int main(void) {
  return UNIT_RUN(
      group_setup, unit_pki_teardown,
      UNIT_TESTS(test_get_with_length, test_post_body_chunked_response,
                 test_bodyless_post_sends_zero_length, test_body_to_eof_and_1xx_skipped,
                 test_head_has_no_body, test_connection_refused, test_timeout_awaiting_headers,
                 test_timeout_reading_body, test_eof_cases, test_malformed_response, test_limits,
                 test_bad_requests, test_https, test_url_parse, test_url_escape));
}
