/* A small HTTP/3 client for the tests: libwarren's QUIC client
 * (net/quic.h) and nghttp3. One request, then exit.
 *
 *   h3client [--connect HOST:PORT] [--ca FILE] [--sni NAME] [-X METHOD] [-H "name: value"]...
 *            [--data TEXT | --data-hex HEX | --upload-size N] [-o FILE] [--head-only] URL
 *
 * URL is https://NAME[:PORT]/PATH; NAME is the :authority, the SNI
 * (unless --sni gives another) and the address to dial (unless --connect
 * gives another). --upload-size sends
 * N bytes ("0123456789" repeated) as the body, produced as flow control
 * lets it go. Prints the response's status line (":status NNN"), its
 * header fields ("name: value"), a blank line, then the body (to stdout,
 * or to FILE with -o), and trailers after it ("trailer name: value", on
 * stderr). Exit status: 0 a complete response, 2 the connection failed
 * (the reason on stderr, e.g. the TLS alert), 3 the stream was reset,
 * 4 timeout, 1 usage.
 *
 * --rapid-reset N (abuse test): opens N request streams, each reset at
 * once after its HEADERS, as fast as stream credit allows, then waits
 * for the server to close the connection; prints "closed 0xCODE" and
 * exits 5 if it did, 0 if all N went through with the connection open.
 *
 * --raw HEX (malformed-input test): sends the bytes HEX on a new request
 * stream instead of a request, then prints how the server ended things:
 * "closed 0xCODE" (the connection, exit 5) or "reset 0xCODE" (the stream,
 * exit 3).
 *
 * --repeat N [--parallel M] (measurements): N GET requests on the one
 * connection, M at a time (default 1), bodies dropped; prints
 * "N requests, K 2xx in S s: R req/s". */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp3/nghttp3.h>
#include <uv.h>

#include "lib/err.h"
#include "net/h3quic.h"
#include "net/quic.h"

#define MAX_HDRS 64

typedef struct client {
  uv_loop_t *loop;
  uv_timer_t timer;
  wr_quic_endpoint *ep;
  wr_quic_conn *q;
  nghttp3_conn *h3;
  int64_t sid;
  const char *method, *authority, *path, *data;
  const char *hdrs[MAX_HDRS];
  int nhdrs;
  uint64_t upload_left;
  size_t data_off;
  FILE *out;
  int head_only, got_status, done, reset, failed, printed_head;
  uint64_t rapid, rapid_sent;
  const char *raw;
  uint8_t *bin;     /* --data-hex: the body */
  size_t binlen;
  uint64_t repeat, parallel, started, completed, ok2xx, t0;
  uv_timer_t rapid_timer;
} client;

static const char PATTERN[] = "0123456789012345678901234567890123456789012345678901234567890123";

static void finish(client *c, int code) {
  if (c->done) return;
  c->done = code;
  wr_quic_conn_close(c->q, NGHTTP3_H3_NO_ERROR, "done");
}

/* ---- nghttp3 ----------------------------------------------------------------------- */

static int on_header(nghttp3_conn *conn, int64_t id, int32_t token, nghttp3_rcbuf *name,
                     nghttp3_rcbuf *value, uint8_t flags, void *ud, void *sud) {
  client *c = ud;
  nghttp3_vec n = nghttp3_rcbuf_get_buf(name), v = nghttp3_rcbuf_get_buf(value);
  (void)conn, (void)id, (void)token, (void)flags, (void)sud;
  if (c->repeat) {
    if (n.len == 7 && memcmp(n.base, ":status", 7) == 0 && v.len == 3 && v.base[0] == '2') c->ok2xx++;
    return 0;
  }
  if (n.len == 7 && memcmp(n.base, ":status", 7) == 0) {
    c->got_status = 1;
    printf(":status %.*s\n", (int)v.len, v.base);
  } else {
    printf("%.*s: %.*s\n", (int)n.len, n.base, (int)v.len, v.base);
  }
  return 0;
}

static int on_end_headers(nghttp3_conn *conn, int64_t id, int fin, void *ud, void *sud) {
  client *c = ud;
  (void)conn, (void)id, (void)fin, (void)sud;
  if (c->repeat) return 0;
  if (!c->printed_head) printf("\n");
  c->printed_head = 1;
  fflush(stdout);
  return 0;
}

static int on_trailer(nghttp3_conn *conn, int64_t id, int32_t token, nghttp3_rcbuf *name,
                      nghttp3_rcbuf *value, uint8_t flags, void *ud, void *sud) {
  nghttp3_vec n = nghttp3_rcbuf_get_buf(name), v = nghttp3_rcbuf_get_buf(value);
  (void)conn, (void)id, (void)token, (void)flags, (void)ud, (void)sud;
  fprintf(stderr, "trailer %.*s: %.*s\n", (int)n.len, n.base, (int)v.len, v.base);
  return 0;
}

static int on_data(nghttp3_conn *conn, int64_t id, const uint8_t *data, size_t len, void *ud,
                   void *sud) {
  client *c = ud;
  (void)conn, (void)sud;
  /* Flushed at once: a test reads server-sent events as they come. */
  if (!c->head_only && !c->repeat && (fwrite(data, 1, len, c->out) != len || fflush(c->out) != 0)) finish(c, 2);
  wr_quic_stream_consume(c->q, id, len);
  return 0;
}

static int on_deferred(nghttp3_conn *conn, int64_t id, size_t n, void *ud, void *sud) {
  client *c = ud;
  (void)conn, (void)sud;
  wr_quic_stream_consume(c->q, id, n);
  return 0;
}

static void start_request(client *c);

static int on_end_stream(nghttp3_conn *conn, int64_t id, void *ud, void *sud) {
  client *c = ud;
  (void)conn, (void)sud;
  if (c->repeat) {
    if (++c->completed < c->repeat) {
      if (c->started < c->repeat) start_request(c);
      return 0;
    }
    double secs = (double)(uv_hrtime() - c->t0) / 1e9;
    printf("%llu requests, %llu 2xx in %.3f s: %.0f req/s\n", (unsigned long long)c->completed,
           (unsigned long long)c->ok2xx, secs, secs > 0 ? (double)c->completed / secs : 0.0);
    finish(c, 1);
    return 0;
  }
  if (id == c->sid) finish(c, c->got_status ? 1 : 3);
  return 0;
}

static int on_stop_sending(nghttp3_conn *conn, int64_t id, uint64_t code, void *ud, void *sud) {
  client *c = ud;
  (void)conn, (void)sud;
  wr_quic_stream_stop_sending(c->q, id, code);
  return 0;
}

static int on_reset_stream(nghttp3_conn *conn, int64_t id, uint64_t code, void *ud, void *sud) {
  client *c = ud;
  (void)conn, (void)sud;
  wr_quic_stream_reset(c->q, id, code);
  return 0;
}

static nghttp3_ssize read_body(nghttp3_conn *conn, int64_t id, nghttp3_vec *vec, size_t veccnt,
                               uint32_t *flags, void *ud, void *sud) {
  client *c = ud;
  (void)conn, (void)id, (void)sud, (void)veccnt;
  if (c->data) {
    size_t n = (c->bin ? c->binlen : strlen(c->data)) - c->data_off;
    vec[0] = (nghttp3_vec){(c->bin ? c->bin : (uint8_t *)c->data) + c->data_off, n};
    c->data_off += n;
    *flags |= NGHTTP3_DATA_FLAG_EOF;
    return 1;
  }
  /* PATTERN is static: nghttp3 may keep pointing into it until acked. */
  size_t n = c->upload_left < sizeof(PATTERN) - 1 ? (size_t)c->upload_left : sizeof(PATTERN) - 1;
  vec[0] = (nghttp3_vec){(uint8_t *)PATTERN, n};
  c->upload_left -= n;
  if (c->upload_left == 0) *flags |= NGHTTP3_DATA_FLAG_EOF;
  return n ? 1 : 0;
}

/* What nghttp3 has to send, into the QUIC streams (which copy it). */
static void flush(client *c) {
  for (int guard = 0; guard < 100000 && !c->done; guard++)
    if (wr_h3_quic_write_batch(c->h3, c->q) <= 0) return;
}

/* ---- QUIC ------------------------------------------------------------------------------ */

static void submit_headers(client *c, int64_t sid, int body);

/* --rapid-reset: HEADERS then RESET_STREAM, as many as stream credit allows. */
static void rapid_cb(uv_timer_t *t) {
  client *c = t->data;
  static int64_t opened[128];
  static size_t nopened;
  int64_t sid;
  /* The HEADERS of the last round went out meanwhile: cancel them now. */
  for (size_t i = 0; i < nopened; i++) {
    nghttp3_conn_shutdown_stream_write(c->h3, opened[i]);
    wr_quic_stream_reset(c->q, opened[i], NGHTTP3_H3_REQUEST_CANCELLED);
    wr_quic_stream_stop_sending(c->q, opened[i], NGHTTP3_H3_REQUEST_CANCELLED);
    c->rapid_sent++;
  }
  nopened = 0;
  while (!c->done && c->rapid_sent + nopened < c->rapid && nopened < 128 &&
         wr_quic_stream_open(c->q, NULL, &sid) == WR_OK) {
    submit_headers(c, sid, 0);
    opened[nopened++] = sid;
  }
  flush(c);
  if (c->rapid_sent >= c->rapid && !c->done) {
    printf("sent %llu resets, connection open\n", (unsigned long long)c->rapid_sent);
    finish(c, 1);
  }
}

static void start_request(client *c) {
  int64_t sid;
  if (wr_quic_stream_open(c->q, NULL, &sid) != WR_OK) {
    fprintf(stderr, "h3client: no stream credit\n");
    finish(c, 2);
    return;
  }
  c->started++;
  submit_headers(c, sid, 0);
}

/* Decodes |hex| into |buf| (at most |cap| bytes); returns the count. */
static size_t unhex(const char *hex, uint8_t *buf, size_t cap) {
  size_t n = 0;
  for (const char *p = hex; p[0] && p[1] && n < cap; p += 2) {
    unsigned v = 0;
    if (sscanf(p, "%2x", &v) != 1) break;
    buf[n++] = (uint8_t)v;
  }
  return n;
}

/* --raw: the hex bytes as a request stream's whole content. */
static void send_raw(client *c) {
  static uint8_t buf[4096];
  size_t n = unhex(c->raw, buf, sizeof(buf)), acc = 0;
  if (wr_quic_stream_open(c->q, NULL, &c->sid) != WR_OK ||
      wr_quic_stream_write(c->q, c->sid, buf, n, 1, &acc) != WR_OK) {
    finish(c, 2);
    return;
  }
}

/* The control and QPACK streams every HTTP/3 endpoint opens. */
static int open_control_streams(client *c) {
  int64_t ctrl, enc, dec;
  return wr_quic_stream_open_uni(c->q, NULL, &ctrl) != WR_OK ||
                 wr_quic_stream_open_uni(c->q, NULL, &enc) != WR_OK ||
                 wr_quic_stream_open_uni(c->q, NULL, &dec) != WR_OK ||
                 nghttp3_conn_bind_control_stream(c->h3, ctrl) ||
                 nghttp3_conn_bind_qpack_streams(c->h3, enc, dec)
             ? -1
             : 0;
}

static void q_handshake_done(wr_quic_conn *q, void *user) {
  client *c = user;
  if (open_control_streams(c) != 0) {
    fprintf(stderr, "h3client: cannot open the control streams\n");
    finish(c, 2);
    return;
  }
  if (c->repeat) {
    c->t0 = uv_hrtime();
    for (uint64_t i = 0; i < (c->parallel ? c->parallel : 1) && c->started < c->repeat; i++) start_request(c);
    flush(c);
    return;
  }
  if (c->raw) {
    send_raw(c);
    return;
  }
  if (c->rapid) {
    uv_timer_init(c->loop, &c->rapid_timer);
    c->rapid_timer.data = c;
    uv_timer_start(&c->rapid_timer, rapid_cb, 0, 5);
    return;
  }
  if (wr_quic_stream_open(q, NULL, &c->sid) != WR_OK) {
    fprintf(stderr, "h3client: cannot open streams\n");
    finish(c, 2);
    return;
  }
  submit_headers(c, c->sid, c->data || c->upload_left);
  flush(c);
}

static void submit_headers(client *c, int64_t sid, int body) {
  nghttp3_nv nv[4 + MAX_HDRS];
  size_t n = 0;
#define NV(a, b, bl) nv[n++] = (nghttp3_nv){(uint8_t *)(a), (uint8_t *)(b), strlen(a), (bl), 0}
  NV(":method", c->method, strlen(c->method));
  NV(":scheme", "https", 5);
  NV(":authority", c->authority, strlen(c->authority));
  NV(":path", c->path, strlen(c->path));
  for (int i = 0; i < c->nhdrs; i++) {
    const char *colon = strchr(c->hdrs[i], ':');
    if (!colon) continue;
    const char *v = colon + 1;
    while (*v == ' ') v++;
    nv[n++] = (nghttp3_nv){(uint8_t *)c->hdrs[i], (uint8_t *)v, (size_t)(colon - c->hdrs[i]), strlen(v), 0};
  }
  nghttp3_data_reader dr = {read_body};
  if (nghttp3_conn_submit_request(c->h3, sid, nv, n, body ? &dr : NULL, NULL) != 0) {
    fprintf(stderr, "h3client: cannot submit the request\n");
    finish(c, 2);
    return;
  }
}

static int q_data(wr_quic_conn *q, int64_t sid, const uint8_t *d, size_t len, int fin, void *user,
                  void *suser) {
  client *c = user;
  (void)suser;
  nghttp3_ssize n = nghttp3_conn_read_stream(c->h3, sid, d, len, fin);
  if (n < 0) {
    fprintf(stderr, "h3client: HTTP/3 error: %s\n", nghttp3_strerror((int)n));
    finish(c, 2);
    return 0;
  }
  if (n) wr_quic_stream_consume(q, sid, (size_t)n);
  flush(c);
  return 0;
}

static int q_reset(wr_quic_conn *q, int64_t sid, uint64_t code, void *user, void *suser) {
  client *c = user;
  (void)q, (void)suser;
  if (sid == c->sid) {
    fprintf(stderr, "h3client: stream reset (0x%llx)\n", (unsigned long long)code);
    if (c->raw) printf("reset 0x%llx\n", (unsigned long long)code);
    finish(c, 3);
  }
  return 0;
}

static void q_writable(wr_quic_conn *q, int64_t sid, void *user, void *suser) {
  client *c = user;
  (void)q, (void)suser;
  nghttp3_conn_unblock_stream(c->h3, sid);
  flush(c);
}

static void q_stream_close(wr_quic_conn *q, int64_t sid, int has, uint64_t code, void *user, void *suser) {
  client *c = user;
  (void)q, (void)suser;
  nghttp3_conn_close_stream(c->h3, sid, has ? code : NGHTTP3_H3_NO_ERROR);
}

static void q_close(wr_quic_conn *q, const wr_quic_close_info *ci, void *user) {
  client *c = user;
  (void)q;
  if ((c->rapid || c->raw) && !c->done) {
    printf("closed 0x%llx\n", (unsigned long long)ci->code);
    c->done = 5;
  }
  if (!c->done) {
    fprintf(stderr, "h3client: connection closed: %s\n", ci->msg ? ci->msg : "?");
    c->done = 2;
  }
  uv_stop(c->loop);
}

static void on_timeout(uv_timer_t *t) {
  client *c = t->data;
  fprintf(stderr, "h3client: timeout (%llu resets sent)\n", (unsigned long long)c->rapid_sent);
  c->done = 4;
  uv_stop(c->loop);
}

static int usage(void) {
  fprintf(stderr, "usage: h3client [--connect HOST:PORT] [--ca FILE] [--sni NAME] [-X METHOD] [-H 'n: v']... "
                  "[--data TEXT | --upload-size N] [-o FILE] [--head-only] https://NAME[:PORT]/PATH\n");
  return 1;
}

static const char *sni_opt;

static int parse_args(client *c, int argc, char **argv, const char **connect, const char **ca,
                      const char **url, const char **outf) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--head-only") == 0) c->head_only = 1;
    else if (!next && a[0] == '-') return -1;
    else if (strcmp(a, "--connect") == 0) *connect = argv[++i];
    else if (strcmp(a, "--ca") == 0) *ca = argv[++i];
    else if (strcmp(a, "--sni") == 0) sni_opt = argv[++i];
    else if (strcmp(a, "-X") == 0) c->method = argv[++i];
    else if (strcmp(a, "-H") == 0 && c->nhdrs < MAX_HDRS) c->hdrs[c->nhdrs++] = argv[++i];
    else if (strcmp(a, "--data") == 0) c->data = argv[++i];
    else if (strcmp(a, "--upload-size") == 0) c->upload_left = strtoull(argv[++i], NULL, 10);
    else if (strcmp(a, "-o") == 0) *outf = argv[++i];
    else if (strcmp(a, "--rapid-reset") == 0) c->rapid = strtoull(argv[++i], NULL, 10);
    else if (strcmp(a, "--raw") == 0) c->raw = argv[++i];
    else if (strcmp(a, "--data-hex") == 0) {
      static uint8_t bin[65536];
      c->data = argv[++i];
      c->bin = bin;
      c->binlen = unhex(c->data, bin, sizeof(bin));
    }
    else if (strcmp(a, "--repeat") == 0) c->repeat = strtoull(argv[++i], NULL, 10);
    else if (strcmp(a, "--parallel") == 0) c->parallel = strtoull(argv[++i], NULL, 10);
    else if (a[0] == '-') return -1;
    else *url = a;
  }
  return *url ? 0 : -1;
}

/* https://NAME[:PORT]/PATH -> :authority, :path, the SNI name (|host|)
 * and where to dial (|addr|, |port|: --connect's, else NAME's). */
static int split_url(client *c, const char *url, const char *connect, char host[300],
                     char addr[300], char port[16]) {
  static char auth[300], path[4096];
  if (strncmp(url, "https://", 8) != 0) return -1;
  const char *p = url + 8, *slash = strchr(p, '/');
  snprintf(auth, sizeof(auth), "%.*s", (int)(slash ? slash - p : (long)strlen(p)), p);
  snprintf(path, sizeof(path), "%s", slash ? slash : "/");
  snprintf(host, 300, "%s", auth);
  char *colon = strrchr(host, ':');
  snprintf(port, 16, "%s", colon ? colon + 1 : "443");
  if (colon) *colon = 0;
  c->authority = auth;
  c->path = path;
  if (c->data || c->upload_left) c->method = strcmp(c->method, "GET") == 0 ? "POST" : c->method;
  snprintf(addr, 300, "%s", connect ? connect : host);
  if (connect && (colon = strrchr(addr, ':'))) {
    snprintf(port, 16, "%s", colon + 1);
    *colon = 0;
  }
  return 0;
}

int main(int argc, char **argv) {
  client c = {.method = "GET", .out = stdout, .sid = -1};
  const char *connect = NULL, *ca = NULL, *url = NULL, *outf = NULL;
  if (parse_args(&c, argc, argv, &connect, &ca, &url, &outf) != 0) return usage();
  static char host[300], addr[300], port[16];
  if (split_url(&c, url, connect, host, addr, port) != 0) return usage();
  if (outf && !(c.out = fopen(outf, "wb"))) {
    perror(outf);
    return 1;
  }
  struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai = NULL;
  if (getaddrinfo(addr, port, &hints, &ai) != 0 || !ai) {
    fprintf(stderr, "h3client: cannot resolve %s\n", addr);
    return 1;
  }
  c.loop = uv_default_loop();
  wr_quic_config cfg = {.sni = sni_opt ? sni_opt : host, .alpn = "h3", .ca_file = ca, .max_streams_uni = 16,
                        .idle_timeout_ms = 30000};
  wr_quic_tls *tls = NULL;
  char err[256];
  if (wr_quic_tls_new(WR_QUIC_CLIENT, &cfg, &tls, err, sizeof(err)) != WR_OK) {
    fprintf(stderr, "h3client: %s\n", err);
    return 1;
  }
  nghttp3_callbacks cbs = {.recv_header = on_header, .end_headers = on_end_headers,
                           .recv_trailer = on_trailer, .recv_data = on_data,
                           .deferred_consume = on_deferred, .end_stream = on_end_stream,
                           .stop_sending = on_stop_sending, .reset_stream = on_reset_stream};
  nghttp3_settings st;
  nghttp3_settings_default(&st);
  st.qpack_max_dtable_capacity = 4096;
  st.qpack_blocked_streams = 16;
  if (nghttp3_conn_client_new(&c.h3, &cbs, &st, NULL, &c) != 0) return 1;
  wr_quic_callbacks qcbs = {.on_handshake_done = q_handshake_done, .on_stream_data = q_data,
                            .on_stream_reset = q_reset, .on_stream_writable = q_writable,
                            .on_stream_close = q_stream_close, .on_close = q_close};
  if (wr_quic_endpoint_client(c.loop, tls, &cfg, ai->ai_addr, &qcbs, &c, &c.ep, &c.q) != WR_OK) {
    fprintf(stderr, "h3client: cannot dial %s:%s\n", addr, port);
    return 2;
  }
  freeaddrinfo(ai);
  uv_timer_init(c.loop, &c.timer);
  c.timer.data = &c;
  uv_timer_start(&c.timer, on_timeout, c.rapid ? 20000 : c.repeat ? 600000 : 60000, 0);
  uv_run(c.loop, UV_RUN_DEFAULT);
  if (c.out != stdout) fclose(c.out);
  fflush(stdout);
  int code = c.done == 1 ? 0 : c.done ? c.done : 2;
  wr_quic_endpoint_free(c.ep); /* frees the connection, without callbacks */
  uv_close((uv_handle_t *)&c.timer, NULL);
  if (c.rapid) uv_close((uv_handle_t *)&c.rapid_timer, NULL);
  uv_run(c.loop, UV_RUN_DEFAULT);
  nghttp3_conn_del(c.h3);
  wr_quic_tls_free(tls);
  return code;
}
