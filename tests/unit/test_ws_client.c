/* The WebSocket client half (src/net/ws_client.c) without a connection:
 * URL parsing, the upgrade request, the check of the server's answer
 * (fed whole and byte by byte), a refusal with its body, and frames after
 * the upgrade. */
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "net/ws_client.h"
#include "unit.h"

static void test_url(void **state) {
  static const struct {
    const char *in;
    int rv;
    const char *scheme, *authority, *host;
    unsigned port;
    int tls;
    const char *path;
  } cases[] = {
      {"app.example.test", WR_OK, "https", "app.example.test", "app.example.test", 443, 1, "/"},
      {"HTTP://127.0.0.1:8080/a/b?c", WR_OK, "http", "127.0.0.1:8080", "127.0.0.1", 8080, 0, "/a/b?c"},
      {"wss://[::1]", WR_OK, "wss", "[::1]", "::1", 443, 1, "/"},
      {"ws://[::1]:81/x", WR_OK, "ws", "[::1]:81", "::1", 81, 0, "/x"},
      {"ftp://host", WR_ERR_INVAL, NULL, NULL, NULL, 0, 0, NULL},
      {"https:///path", WR_ERR_INVAL, NULL, NULL, NULL, 0, 0, NULL},
      {"host:99999", WR_ERR_INVAL, NULL, NULL, NULL, 0, 0, NULL},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    wr_ws_url u;
    assert_int_equal(wr_ws_url_parse(cases[i].in, &u), cases[i].rv);
    if (cases[i].rv == WR_OK) {
      assert_string_equal(u.scheme, cases[i].scheme);
      assert_string_equal(u.authority, cases[i].authority);
      assert_string_equal(u.host, cases[i].host);
      assert_int_equal(u.port, cases[i].port);
      assert_int_equal(u.tls, cases[i].tls);
      assert_string_equal(u.path, cases[i].path);
    }
    wr_ws_url_free(&u);
  }
}

typedef struct seen {
  int status, complete, opened, failed;
  char body[64];
  uint8_t data[64];
  size_t data_len;
  int stop; /* the return of every callback */
} seen;

static int on_refused(void *user, int status, const uint8_t *body, size_t len, int complete) {
  seen *s = user;
  s->status = status;
  s->complete = complete;
  memcpy(s->body, body, len < sizeof(s->body) - 1 ? len : sizeof(s->body) - 1);
  return s->stop;
}

static int on_open(void *user) {
  seen *s = user;
  s->opened++;
  return s->stop;
}

static int on_event(void *user, const wr_ws_event *ev) {
  seen *s = user;
  if (ev->kind == WR_WS_EV_DATA) {
    memcpy(s->data + s->data_len, ev->data, ev->len);
    s->data_len += ev->len;
  }
  return s->stop;
}

static void on_fail(void *user, int why) { ((seen *)user)->failed = why; }

static const wr_ws_client_cbs cbs = {on_refused, on_open, on_event, on_fail};

/* A client with its request made; |accept| gets the answer it expects. */
static void start(wr_ws_client *w, seen *s, char accept[WR_WS_ACCEPT_LEN]) {
  wr_buf req;
  memset(s, 0, sizeof(*s));
  wr_ws_client_init(w, &cbs, s);
  wr_buf_init(&req, 4096, NULL);
  assert_int_equal(wr_ws_client_request(w, "/logs?x=1", "h.test", "ua/1", "X-A: b\r\n", &req), WR_OK);
  const char *r = wr_buf_cstr(&req), *k = strstr(r, "Sec-WebSocket-Key: ");
  assert_non_null(k);
  static const char first[] = "GET /logs?x=1 HTTP/1.1\r\nHost: h.test\r\nUser-Agent: ua/1\r\n";
  assert_memory_equal(r, first, sizeof(first) - 1);
  assert_non_null(strstr(r, "Sec-WebSocket-Version: 13\r\nX-A: b\r\n\r\n"));
  k += strlen("Sec-WebSocket-Key: ");
  assert_int_equal(wr_ws_accept(k, strcspn(k, "\r"), accept), 0);
  wr_buf_free(&req);
}

static void test_upgrade_then_frames(void **state) {
  wr_ws_client w;
  seen s;
  char accept[WR_WS_ACCEPT_LEN], answer[256];
  (void)state;
  start(&w, &s, accept);
  /* The answer and a first text frame "hi" in the same bytes, fed one by one. */
  int n = snprintf(answer, sizeof(answer),
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n\r\n\x81\x02hi",
                   accept);
  for (int i = 0; i < n; i++) wr_ws_client_read(&w, (const uint8_t *)answer + i, 1, 0);
  assert_int_equal(s.opened, 1);
  assert_int_equal(s.failed, 0);
  assert_int_equal(s.data_len, 2);
  assert_memory_equal(s.data, "hi", 2);
  /* A masked frame from the server breaks RFC 6455. */
  wr_ws_client_read(&w, (const uint8_t *)"\x81\x81\x00\x00\x00\x00x", 7, 0);
  assert_int_equal(s.failed, WR_WSC_BAD_FRAME);
  /* No connection: sends are refused, not crashed on. */
  assert_int_equal(wr_ws_client_send(&w, WR_WS_OP_TEXT, (const uint8_t *)"x", 1), WR_ERR_INVAL);
  wr_ws_client_free(&w);
}

static void test_bad_answers(void **state) {
  wr_ws_client w;
  seen s;
  char accept[WR_WS_ACCEPT_LEN];
  static const char wrong[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n";
  (void)state;
  start(&w, &s, accept);
  wr_ws_client_read(&w, (const uint8_t *)wrong, sizeof(wrong) - 1, 0);
  assert_int_equal(s.failed, WR_WSC_BAD_HANDSHAKE);
  assert_int_equal(s.opened, 0);
  wr_ws_client_free(&w);

  start(&w, &s, accept);
  wr_ws_client_read(&w, (const uint8_t *)"SSH-2.0-x\r\n\r\n", 13, 0);
  assert_int_equal(s.failed, WR_WSC_BAD_HTTP);
  wr_ws_client_free(&w);

  /* A refusal: reported at every read, complete once its body is there. */
  start(&w, &s, accept);
  static const char head[] = "HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nno";
  wr_ws_client_read(&w, (const uint8_t *)head, sizeof(head) - 1, 0);
  assert_int_equal(s.status, 403);
  assert_int_equal(s.complete, 0);
  wr_ws_client_read(&w, (const uint8_t *)" way", 4, 0);
  assert_int_equal(s.complete, 1);
  assert_string_equal(s.body, "no way");
  wr_ws_client_free(&w);

  /* EOF ends a body without a length. */
  start(&w, &s, accept);
  static const char close[] = "HTTP/1.1 530 x\r\nConnection: close\r\n\r\n{}";
  wr_ws_client_read(&w, (const uint8_t *)close, sizeof(close) - 1, 0);
  assert_int_equal(s.complete, 0);
  wr_ws_client_read(&w, NULL, 0, 1);
  assert_int_equal(s.status, 530);
  assert_int_equal(s.complete, 1);
  wr_ws_client_free(&w);
}

int main(void) {
  return UNIT_RUN(NULL, NULL, UNIT_TESTS(test_url, test_upgrade_then_frames, test_bad_answers));
}
