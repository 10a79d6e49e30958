/* The connector's data-stream proxy (connector/proxy.h) over real QUIC on
 * 127.0.0.1, in one libuv loop: a QUIC server plays the edge and opens data
 * streams; the QUIC client forwards its stream events to wr_proxy; origins
 * are small in-test HTTP/1.1 servers on TCP, a unix socket and TLS (a
 * private origin CA from edge/pki.h). Covered: GET with headers and body,
 * Content-Length and chunked request bodies, chunked and EOF-delimited
 * responses, http_status, hello_world, dial errors, an origin dying mid-body,
 * bad preambles, ingress by host and path, httpHostHeader, keep-alive reuse,
 * WebSocket upgrade + echo, unix and https origins (caPool, noTLSVerify,
 * untrusted), an edge reset aborting the origin request, large transfers
 * both ways, and the captured cloudflared request vector. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "connector/ingress.h"
#include "connector/proxy.h"
#include "edge/pki.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/conn.h"
#include "net/quic.h"
#include "net/tls.h"
#include "proto/connect.h"
#include "proto/http1.h"
#include "proto/httpmeta.h"
#include "proto/preamble.h"
#include "quic_pair.h"
#include "unit.h"

static unit_pki pki;
static char oca_path[128], ocert_path[128], okey_path[128], sock_path[128];

/* The edge's PKI (unit_pki) and, in its directory, an origin CA and a leaf
 * for "localhost" only: https://127.0.0.1 fails verification (noTLSVerify
 * test). */
static int group_setup(void **state) {
  char err[256];
  wr_pem_pair oca = {0}, osrv = {0};
  static const char *const odns[] = {"localhost"};
  (void)state;
  if (unit_qpair_pki(&pki, "wr-proxy") != 0) return -1;
  snprintf(oca_path, sizeof(oca_path), "%s/origin-ca.pem", pki.dir);
  snprintf(ocert_path, sizeof(ocert_path), "%s/origin.pem", pki.dir);
  snprintf(okey_path, sizeof(okey_path), "%s/origin.key", pki.dir);
  snprintf(sock_path, sizeof(sock_path), "%s/origin.sock", pki.dir);
  wr_pki_req ocreq = {.common_name = "Warren test origin CA", .is_ca = 1, .days = 1};
  if (wr_pki_issue(NULL, &ocreq, &oca, err, sizeof(err)) != 0) return -1;
  wr_pki_req oreq = {.common_name = "localhost", .dns = odns, .n_dns = 1, .days = 1};
  if (wr_pki_issue(&oca, &oreq, &osrv, err, sizeof(err)) != 0) return -1;
  unit_write_file(oca_path, oca.cert);
  unit_write_file(ocert_path, osrv.cert);
  unit_write_file(okey_path, osrv.key);
  wr_pem_pair_free(&oca);
  wr_pem_pair_free(&osrv);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  return unit_rm_rf(pki.dir);
}

/* ---- test origins ------------------------------------------------------------ */

enum origin_mode {
  M_INFO = 0,  /* 200, a few headers (one repeated), "hello from <name>" */
  M_CHUNKED,   /* chunked response with a trailer */
  M_DIE,       /* Content-Length 100, 10 bytes, then EOF */
  M_WS,        /* 101 for websocket requests, then echo */
  M_BIG,       /* Content-Length big_len of a pattern, written with backpressure */
  M_SINK,      /* counts and checks the request body; answers "<count> <ok>" */
  M_HANG,      /* never answers */
  M_EOF_BODY,  /* Connection: close, body until EOF */
  M_STALL,     /* stops reading after the request head (a slow origin) */
  M_ONCE       /* like M_INFO, but drops the connection at its 2nd request */
};

typedef struct ctx ctx;
typedef struct torigin torigin;

typedef struct tconn {
  torigin *o;
  wr_conn *conn;
  wr_buf in;
  int state; /* 0 head, 1 body, 2 websocket */
  wr_http_header hdrs[64];
  wr_http1_head head;
  int body_mode;
  uint64_t body_left;
  wr_http1_chunked ch;
  int head_req;
  uint64_t big_sent;
  int pumping;
  int served;
  struct tconn *next;
} tconn;

struct torigin {
  ctx *c;
  const char *name;
  int mode;
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;
  int is_unix;
  wr_tls_creds *tls;
  uint16_t port;
  int accepts, closes, requests;
  wr_buf last_head; /* the last request head as received */
  wr_buf last_body; /* its body (first MiB) */
  wr_buf raw;       /* every byte received (first MiB) */
  uint64_t body_count;
  int body_ok;
  uint64_t big_len;
  tconn *conns;
};

#define NORIGINS 6
enum { O_APP = 0, O_SECOND, O_UNIX, O_TLS, O_ALT, O_ALT2 };

typedef struct estream {
  ctx *c;
  int64_t sid;
  wr_buf resp;
  int got_fin, got_reset, closed;
  /* generated body: |gen_total| bytes of the pattern, then FIN if gen_fin */
  uint64_t gen_total, gen_sent;
  int gen_fin, generating;
} estream;

struct ctx {
  unit_qpair q;
  int (*done)(ctx *c);
  estream *watch;
  wr_quic_conn *sconn;
  int s_ready;
  int edge_hold; /* the edge does not return stream credit (a slow visitor) */
  wr_proxy *proxy;
  wr_ingress *ing;
  torigin origins[NORIGINS];
};

static uint8_t pattern(uint64_t i) { return (uint8_t)((i * 131u + (i >> 11) + 7u) & 0xff); }

static void tc_write(tconn *t, const char *s) {
  wr_conn_write(t->conn, (const uint8_t *)s, strlen(s));
}

static void big_pump(tconn *t) {
  uint8_t buf[65536];
  torigin *o = t->o;
  while (t->big_sent < o->big_len && wr_conn_write_queued(t->conn) < 256 * 1024) {
    size_t n = sizeof(buf);
    if (o->big_len - t->big_sent < n) n = (size_t)(o->big_len - t->big_sent);
    for (size_t i = 0; i < n; i++) buf[i] = pattern(t->big_sent + i);
    if (wr_conn_write(t->conn, buf, n) != WR_OK) return;
    t->big_sent += n;
  }
}

static void tc_respond(tconn *t) {
  torigin *o = t->o;
  char buf[512];
  o->requests++;
  if (o->mode == M_ONCE && t->served++ > 0) {
    wr_conn_close(t->conn);
    return;
  }
  switch (o->mode) {
  case M_ONCE:
  case M_INFO:
    snprintf(buf, sizeof(buf),
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Origin: %s\r\nx-multi: a\r\n"
             "X-Multi: b\r\nContent-Length: %zu\r\n\r\n%s%s",
             o->name, strlen("hello from ") + strlen(o->name), t->head_req ? "" : "hello from ",
             t->head_req ? "" : o->name);
    tc_write(t, buf);
    break;
  case M_CHUNKED:
    tc_write(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
                "3\r\nabc\r\n5;ext=1\r\ndefgh\r\n0\r\nX-Trailer: t\r\n\r\n");
    break;
  case M_DIE:
    tc_write(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    wr_conn_shutdown(t->conn);
    break;
  case M_WS:
    if (t->head.websocket) {
      tc_write(t, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
      t->state = 2;
    } else {
      tc_write(t, "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 4\r\n\r\nnope");
    }
    break;
  case M_BIG:
    snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n\r\n",
             (unsigned long long)o->big_len);
    tc_write(t, buf);
    t->big_sent = 0;
    t->pumping = 1;
    big_pump(t);
    break;
  case M_SINK:
    snprintf(buf, sizeof(buf), "%llu %d", (unsigned long long)o->body_count, o->body_ok);
    {
      char head[128];
      snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", strlen(buf));
      tc_write(t, head);
      tc_write(t, buf);
    }
    break;
  case M_EOF_BODY:
    tc_write(t, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
    wr_conn_shutdown(t->conn);
    break;
  default:
    break; /* M_HANG */
  }
}

static void body_bytes(tconn *t, const uint8_t *d, size_t n) {
  torigin *o = t->o;
  size_t room = 1u << 20;
  for (size_t i = 0; i < n; i++)
    if (d[i] != pattern(o->body_count + i)) o->body_ok = 0;
  o->body_count += n;
  if (o->last_body.len < room)
    wr_buf_append(&o->last_body, d, n < room - o->last_body.len ? n : room - o->last_body.len);
}

static void tc_process(tconn *t) {
  torigin *o = t->o;
  for (;;) {
    if (t->state == 2) {
      if (t->in.len) wr_conn_write(t->conn, t->in.data, t->in.len);
      wr_buf_reset(&t->in);
      return;
    }
    if (t->state == 0) {
      size_t used;
      int rv = wr_http1_parse_request(t->in.data, t->in.len, NULL, t->hdrs, 64, &t->head, &used);
      if (rv == WR_AGAIN) return;
      if (rv != WR_OK) {
        wr_conn_close(t->conn);
        return;
      }
      wr_buf_reset(&o->last_head);
      wr_buf_append(&o->last_head, t->in.data, used);
      wr_buf_reset(&o->last_body);
      o->body_count = 0;
      o->body_ok = 1;
      t->head_req = t->head.method_len == 4 && !memcmp(t->head.method, "HEAD", 4);
      t->body_mode = t->head.body;
      t->body_left = t->head.content_length;
      wr_http1_chunked_init(&t->ch);
      wr_buf_consume(&t->in, used);
      t->state = 1;
      if (o->mode == M_STALL) {
        wr_conn_read_stop(t->conn);
        return;
      }
    }
    if (t->state == 1) {
      int complete = 0;
      if (t->body_mode == WR_HTTP1_BODY_LENGTH) {
        size_t n = t->in.len < t->body_left ? t->in.len : (size_t)t->body_left;
        body_bytes(t, t->in.data, n);
        wr_buf_consume(&t->in, n);
        t->body_left -= n;
        complete = t->body_left == 0;
      } else if (t->body_mode == WR_HTTP1_BODY_CHUNKED) {
        for (;;) {
          size_t used = 0, off = 0, dl = 0;
          if (wr_http1_chunked_decode(&t->ch, t->in.data, t->in.len, &used, &off, &dl) != WR_OK) {
            wr_conn_close(t->conn);
            return;
          }
          if (dl) body_bytes(t, t->in.data + off, dl);
          wr_buf_consume(&t->in, used);
          if (t->ch.done) {
            complete = 1;
            break;
          }
          if (used == 0 || t->in.len == 0) break;
        }
      } else {
        complete = 1;
      }
      if (!complete) return;
      t->state = 0;
      tc_respond(t);
      if (o->mode == M_DIE || o->mode == M_EOF_BODY || o->mode == M_HANG ||
          (o->mode == M_ONCE && t->served > 1))
        return;
    }
  }
}

static void tc_on_connect(wr_conn *c, int status, const char *msg, void *user) {
  tconn *t = user;
  if (status != WR_OK) wr_conn_close(c);
  (void)t;
}

static void tc_on_read(wr_conn *c, const uint8_t *d, size_t n, void *user) {
  tconn *t = user;
  torigin *o = t->o;
  size_t room = 1u << 20;
  if (o->raw.len < room) wr_buf_append(&o->raw, d, n < room - o->raw.len ? n : room - o->raw.len);
  wr_buf_append(&t->in, d, n);
  tc_process(t);
}

static void tc_on_eof(wr_conn *c, int status, const char *msg, void *user) { wr_conn_close(c); }

static void tc_on_drain(wr_conn *c, void *user) {
  tconn *t = user;
  if (t->pumping) big_pump(t);
}

static void tc_on_close(wr_conn *c, void *user) {
  tconn *t = user;
  torigin *o = t->o;
  tconn **pp = &o->conns;
  while (*pp && *pp != t) pp = &(*pp)->next;
  if (*pp) *pp = t->next;
  o->closes++;
  wr_buf_free(&t->in);
  free(t);
}

static const wr_conn_callbacks tc_cbs = {tc_on_connect, tc_on_read, tc_on_eof, tc_on_drain,
                                         tc_on_close};

static void origin_on_conn(uv_stream_t *server, int status) {
  torigin *o = server->data;
  tconn *t;
  if (status < 0) return;
  t = calloc(1, sizeof(*t));
  t->o = o;
  wr_buf_init(&t->in, (size_t)1 << 30, NULL);
  if (wr_conn_accept(server, o->tls, &tc_cbs, t, &t->conn) != WR_OK) {
    free(t);
    return;
  }
  t->next = o->conns;
  o->conns = t;
  o->accepts++;
}

static void origin_start(ctx *c, int idx, const char *name, int mode, int is_unix, int tls) {
  torigin *o = &c->origins[idx];
  memset(o, 0, sizeof(*o));
  o->c = c;
  o->name = name;
  o->mode = mode;
  o->is_unix = is_unix;
  wr_buf_init(&o->last_head, (size_t)1 << 30, NULL);
  wr_buf_init(&o->last_body, (size_t)1 << 30, NULL);
  wr_buf_init(&o->raw, (size_t)1 << 30, NULL);
  if (tls) {
    char err[256];
    wr_tls_server_config sc = {.cert_file = ocert_path, .key_file = okey_path};
    assert_int_equal(wr_tls_creds_server(&sc, &o->tls, err, sizeof(err)), WR_OK);
  }
  if (is_unix) {
    unlink(sock_path);
    assert_int_equal(uv_pipe_init(&c->q.loop, &o->h.pipe, 0), 0);
    assert_int_equal(uv_pipe_bind(&o->h.pipe, sock_path), 0);
    o->h.pipe.data = o;
    assert_int_equal(uv_listen((uv_stream_t *)&o->h.pipe, 64, origin_on_conn), 0);
  } else {
    o->port = unit_tcp_listen(&c->q.loop, &o->h.tcp, o, origin_on_conn);
  }
}

/* ---- the edge (QUIC server) and the connector (QUIC client + proxy) --------- */

UNIT_QPAIR_RUN_UNTIL(ctx)

static void gen_more(estream *e) {
  uint8_t buf[32768];
  ctx *c = e->c;
  while (e->gen_sent < e->gen_total) {
    size_t n = sizeof(buf), acc = 0;
    int last;
    if (e->gen_total - e->gen_sent < n) n = (size_t)(e->gen_total - e->gen_sent);
    for (size_t i = 0; i < n; i++) buf[i] = pattern(e->gen_sent + i);
    last = e->gen_sent + n == e->gen_total;
    int rv = wr_quic_stream_write(c->sconn, e->sid, buf, n, last && e->gen_fin, &acc);
    e->gen_sent += acc;
    if (rv == WR_AGAIN) return;
    assert_int_equal(rv, WR_OK);
  }
  e->generating = 0;
}

static void e_hs(wr_quic_conn *qc, void *user) {
  ctx *c = user;
  c->sconn = qc;
  c->s_ready = 1;
}

static int e_data(wr_quic_conn *qc, int64_t sid, const uint8_t *d, size_t n, int fin, void *user,
                  void *suser) {
  estream *e = suser;
  ctx *c = user;
  if (!c->edge_hold) wr_quic_stream_consume(qc, sid, n);
  if (!e) return 0;
  wr_buf_append(&e->resp, d, n);
  if (fin) e->got_fin = 1;
  return 0;
}

static int e_reset(wr_quic_conn *qc, int64_t sid, uint64_t code, void *user, void *suser) {
  estream *e = suser;
  if (e) e->got_reset = 1;
  return 0;
}

static void e_writable(wr_quic_conn *qc, int64_t sid, void *user, void *suser) {
  estream *e = suser;
  if (e && e->generating) gen_more(e);
}

static void e_close(wr_quic_conn *qc, int64_t sid, int has_code, uint64_t code, void *user,
                    void *suser) {
  estream *e = suser;
  if (e) e->closed = 1;
}



static int ready_done(ctx *c) { return c->s_ready; }

static const char tag_uuid[] = "5e2c1f0a-3b4d-4c6e-8f70-123456789abc";

/* Starts origins (by mode), the QUIC pair and the proxy with ingress rules
 * pointing at them. */
static void ctx_start(ctx *c, int app_mode) {
  char yaml[4096];
  wr_uuid connector_id;

  memset(c, 0, sizeof(*c));
  unit_qpair_init(&c->q);

  origin_start(c, O_APP, "app", app_mode, 0, 0);
  origin_start(c, O_SECOND, "api", M_INFO, 0, 0);
  origin_start(c, O_UNIX, "unix", M_INFO, 1, 0);
  origin_start(c, O_TLS, "tls", M_INFO, 0, 1);
  origin_start(c, O_ALT, "alt", M_INFO, 0, 0);
  origin_start(c, O_ALT2, "alt2", M_INFO, 0, 0);

  snprintf(yaml, sizeof(yaml),
           "ingress:\n"
           "  - hostname: app.example.test\n"
           "    service: http://127.0.0.1:%u\n"
           "  - hostname: ws.example.test\n"
           "    service: http://127.0.0.1:%u\n"
           "  - hostname: path.test\n"
           "    path: ^/api/\n"
           "    service: http://127.0.0.1:%u\n"
           "  - hostname: status.test\n"
           "    service: http_status:418\n"
           "  - hostname: hello.test\n"
           "    service: hello_world\n"
           "  - hostname: dead.test\n"
           "    service: http://127.0.0.1:1\n"
           "  - hostname: unix.test\n"
           "    service: unix:%s\n"
           "  - hostname: tls.test\n"
           "    service: https://localhost:%u\n"
           "    originRequest:\n"
           "      caPool: %s\n"
           "  - hostname: tlsnv.test\n"
           "    service: https://127.0.0.1:%u\n"
           "    originRequest:\n"
           "      noTLSVerify: true\n"
           "  - hostname: sni.test\n"
           "    service: https://127.0.0.1:%u\n"
           "    originRequest:\n"
           "      caPool: %s\n"
           "      originServerName: localhost\n"
           "  - hostname: untrusted.test\n"
           "    service: https://localhost:%u\n"
           "  - hostname: hh.test\n"
           "    service: http://127.0.0.1:%u\n"
           "    originRequest:\n"
           "      httpHostHeader: internal.example\n"
           "  - hostname: \"*.wild.test\"\n"
           "    service: http://127.0.0.1:%u\n"
           "  - hostname: ka.test\n"
           "    service: http://127.0.0.1:%u\n"
           "    originRequest:\n"
           "      keepAliveTimeout: 300ms\n"
           "  - hostname: ssh.test\n"
           "    service: ssh://127.0.0.1:1\n"
           "  - service: http_status:404\n",
           c->origins[O_APP].port, c->origins[O_APP].port, c->origins[O_SECOND].port, sock_path, c->origins[O_TLS].port,
           oca_path, c->origins[O_TLS].port, c->origins[O_TLS].port, oca_path,
           c->origins[O_TLS].port, c->origins[O_ALT].port,
           c->origins[O_ALT2].port, c->origins[O_SECOND].port);
  c->ing = unit_ingress_of(yaml);
  assert_int_equal(wr_uuid_parse(tag_uuid, strlen(tag_uuid), &connector_id), 0);

  c->q.ecbs.on_handshake_done = e_hs;
  c->q.ecbs.on_stream_data = e_data;
  c->q.ecbs.on_stream_reset = e_reset;
  c->q.ecbs.on_stream_writable = e_writable;
  c->q.ecbs.on_stream_close = e_close;
  c->proxy = unit_qpair_proxy_start(&c->q, &pki, c->ing, &connector_id, c);
  run_until(c, ready_done, 5000);
}

static void close_origin(torigin *o) {
  tconn *t;
  for (t = o->conns; t; t = t->next) wr_conn_close(t->conn);
  uv_close((uv_handle_t *)&o->h.tcp, NULL);
}

static void ctx_stop(ctx *c) {
  wr_proxy_free(c->proxy);
  unit_qpair_free_endpoints(&c->q);
  for (int i = 0; i < NORIGINS; i++) close_origin(&c->origins[i]);
  unit_qpair_finish(&c->q);
  for (int i = 0; i < NORIGINS; i++) {
    torigin *o = &c->origins[i];
    assert_null(o->conns);
    wr_buf_free(&o->last_head);
    wr_buf_free(&o->last_body);
    wr_buf_free(&o->raw);
    wr_tls_creds_free(o->tls);
  }
  wr_ingress_free(c->ing);
}

/* ---- requests from the edge -------------------------------------------------- */

/* Opens a data stream and writes preamble + ConnectRequest (+ |body|).
 * |kv| is NULL-terminated "Name", "value" pairs of request headers. */
static estream *edge_send(ctx *c, int type, const char *dest, const char *method,
                          const char *host, const char *const *kv, const void *body,
                          size_t body_len, int fin) {
  estream *e = calloc(1, sizeof(*e));
  wr_meta meta[32];
  char keys[32][128];
  size_t n = 0, acc;
  wr_buf b;
  e->c = c;
  wr_buf_init(&e->resp, (size_t)1 << 30, NULL);
  if (method) meta[n++] = (wr_meta){"HttpMethod", 10, method, strlen(method)};
  if (host) meta[n++] = (wr_meta){"HttpHost", 8, host, strlen(host)};
  for (size_t i = 0; kv && kv[i]; i += 2) {
    snprintf(keys[n], sizeof(keys[n]), "HttpHeader:%s", kv[i]);
    meta[n] = (wr_meta){keys[n], strlen(keys[n]), kv[i + 1], strlen(kv[i + 1])};
    n++;
  }
  wr_buf_init(&b, (size_t)1 << 30, NULL);
  unit_edge_request(&b, type, dest, meta, n, body, body_len);
  assert_int_equal(wr_quic_stream_open(c->sconn, e, &e->sid), WR_OK);
  assert_int_equal(wr_quic_stream_write(c->sconn, e->sid, b.data, b.len, fin, &acc), WR_OK);
  wr_buf_free(&b);
  return e;
}

static void edge_write(estream *e, const void *d, size_t n, int fin) {
  size_t acc;
  assert_int_equal(wr_quic_stream_write(e->c->sconn, e->sid, d, n, fin, &acc), WR_OK);
}

static void es_free(estream *e) {
  wr_buf_free(&e->resp);
  free(e);
}

static int proxy_idle(ctx *c) { return wr_proxy_active(c->proxy) == 0; }
static int watch_closed(ctx *c) { return c->watch->closed && proxy_idle(c); }
static int watch_reset(ctx *c) { return c->watch->got_reset; }

static void wait_closed(ctx *c, estream *e) {
  c->watch = e;
  run_until(c, watch_closed, 30000);
}

/* A decoded ConnectResponse and the body after it. */
typedef struct resp {
  wr_connect_response r;
  const uint8_t *body;
  size_t body_len;
} resp;

static void decode_resp(const estream *e, resp *out) {
  size_t used = unit_edge_response(e->resp.data, e->resp.len, &out->r);
  out->body = e->resp.data + used;
  out->body_len = e->resp.len - used;
}

static const char *meta_get(const resp *r, const char *key) {
  return wr_meta_find_last(r->r.meta, r->r.nmeta, key, NULL);
}

static int meta_count(const resp *r, const char *key) {
  int n = 0;
  for (size_t i = 0; i < r->r.nmeta; i++)
    if (strcmp(r->r.meta[i].key, key) == 0) n++;
  return n;
}

static void resp_free(resp *r) { wr_connect_response_free(NULL, &r->r); }

static int head_has(const torigin *o, const char *line) {
  wr_buf tmp = o->last_head;
  char *s = strndup((const char *)tmp.data, tmp.len);
  int found = strstr(s, line) != NULL;
  free(s);
  return found;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_get(void **state) {
  ctx c;
  resp r;
  static const char *const kv[] = {"User-Agent", "test/1", "Accept", "*/*", "X-Two", "1",
                                   "X-Two", "2", "Cf-Trace-Id", "abc",
                                   "Cf-Cloudflared-Proxy-Connection-Upgrade", "x", NULL};
  (void)state;
  ctx_start(&c, M_INFO);
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "https://app.example.test/some/path?q=1&r=%20",
                         "GET", "app.example.test", kv, NULL, 0, 1);
  wait_closed(&c, e);
  assert_true(e->got_fin);
  assert_false(e->got_reset);
  decode_resp(e, &r);
  assert_string_equal(r.r.error, "");
  assert_true(r.r.has_meta);
  assert_true(r.r.nmeta >= 4);
  assert_string_equal(r.r.meta[0].key, "HttpStatus");
  assert_string_equal(r.r.meta[0].val, "200");
  assert_string_equal(meta_get(&r, "HttpHeader:Content-Type"), "text/plain");
  assert_string_equal(meta_get(&r, "HttpHeader:X-Origin"), "app");
  assert_string_equal(meta_get(&r, "HttpHeader:Content-Length"), "14");
  assert_int_equal(meta_count(&r, "HttpHeader:X-Multi"), 2);
  assert_int_equal(r.body_len, 14);
  assert_memory_equal(r.body, "hello from app", 14);
  resp_free(&r);

  torigin *o = &c.origins[O_APP];
  assert_true(head_has(o, "GET /some/path?q=1&r=%20 HTTP/1.1\r\n"));
  assert_true(head_has(o, "Host: app.example.test\r\n"));
  assert_true(head_has(o, "User-Agent: test/1\r\n"));
  assert_true(head_has(o, "X-Two: 1\r\n"));
  assert_true(head_has(o, "X-Two: 2\r\n"));
  assert_true(head_has(o, "Connection: keep-alive\r\n"));
  assert_true(head_has(o, "Cf-Warp-Tag-Id: 5e2c1f0a-3b4d-4c6e-8f70-123456789abc\r\n"));
  assert_false(head_has(o, "Cf-Trace-Id"));
  assert_false(head_has(o, "Cf-Cloudflared-Proxy-Connection-Upgrade"));
  assert_false(head_has(o, "Content-Length"));
  assert_false(head_has(o, "Transfer-Encoding"));

  const wr_proxy_stats *st = wr_proxy_get_stats(c.proxy);
  assert_int_equal(st->total_requests, 1);
  assert_int_equal(st->concurrent_requests, 0);
  assert_int_equal(st->responses_by_code[2], 1);
  assert_int_equal(st->request_errors, 0);
  es_free(e);
  ctx_stop(&c);
}

static void test_post_content_length(void **state) {
  ctx c;
  resp r;
  uint8_t body[3000];
  static const char *const kv[] = {"Content-Length", "3000", "Content-Type",
                                   "application/octet-stream", NULL};
  (void)state;
  for (size_t i = 0; i < sizeof(body); i++) body[i] = pattern(i);
  ctx_start(&c, M_SINK);
  /* Part of the body with the request, the rest (plus bytes past the
   * length, which must be ignored) in a second write. */
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "/upload", "POST", "app.example.test", kv, body,
                         1000, 0);
  edge_write(e, body + 1000, 2000, 0);
  edge_write(e, "EXTRA", 5, 1);
  wait_closed(&c, e);
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].val, "200");
  assert_int_equal(r.body_len, 6);
  assert_memory_equal(r.body, "3000 1", 6);
  resp_free(&r);
  torigin *o = &c.origins[O_APP];
  assert_true(head_has(o, "POST /upload HTTP/1.1\r\n"));
  assert_true(head_has(o, "Content-Length: 3000\r\n"));
  assert_true(head_has(o, "Content-Type: application/octet-stream\r\n"));
  assert_false(head_has(o, "Transfer-Encoding"));
  assert_int_equal(o->last_body.len, 3000);
  assert_memory_equal(o->last_body.data, body, 3000);
  es_free(e);
  ctx_stop(&c);
}

static void test_chunked_request(void **state) {
  ctx c;
  resp r;
  uint8_t body[5000];
  static const char *const kv[] = {"Transfer-Encoding", "chunked", NULL};
  (void)state;
  for (size_t i = 0; i < sizeof(body); i++) body[i] = pattern(i);
  ctx_start(&c, M_SINK);
  estream *e =
      edge_send(&c, WR_CONNECT_HTTP, "/chunks", "PUT", "app.example.test", kv, body, 100, 0);
  edge_write(e, body + 100, 4900, 1);
  wait_closed(&c, e);
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].val, "200");
  assert_int_equal(r.body_len, 6);
  assert_memory_equal(r.body, "5000 1", 6);
  resp_free(&r);
  torigin *o = &c.origins[O_APP];
  assert_true(head_has(o, "PUT /chunks HTTP/1.1\r\n"));
  assert_true(head_has(o, "Transfer-Encoding: chunked\r\n"));
  assert_false(head_has(o, "Content-Length"));
  /* The wire carries chunk framing ending in the last chunk. */
  assert_true(o->raw.len > 5000 + o->last_head.len);
  assert_memory_equal(o->raw.data + o->raw.len - 5, "0\r\n\r\n", 5);
  assert_int_equal(o->last_body.len, 5000);
  assert_memory_equal(o->last_body.data, body, 5000);
  es_free(e);
  ctx_stop(&c);
}

static void test_chunked_response(void **state) {
  ctx c;
  resp r;
  (void)state;
  ctx_start(&c, M_CHUNKED);
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "/", "GET", "app.example.test", NULL, NULL, 0, 1);
  wait_closed(&c, e);
  assert_true(e->got_fin);
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].key, "HttpStatus");
  assert_string_equal(r.r.meta[0].val, "200");
  assert_null(meta_get(&r, "HttpHeader:Transfer-Encoding"));
  assert_null(meta_get(&r, "HttpHeader:Content-Length"));
  assert_string_equal(meta_get(&r, "HttpHeader:Content-Type"), "text/plain");
  assert_int_equal(r.body_len, 8);
  assert_memory_equal(r.body, "abcdefgh", 8);
  resp_free(&r);
  es_free(e);
  ctx_stop(&c);
}

static void test_eof_delimited_response(void **state) {
  ctx c;
  resp r;
  (void)state;
  ctx_start(&c, M_EOF_BODY);
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "/", "GET", "app.example.test", NULL, NULL, 0, 1);
  wait_closed(&c, e);
  assert_true(e->got_fin);
  assert_false(e->got_reset);
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].val, "200");
  assert_string_equal(meta_get(&r, "HttpHeader:Connection"), "close");
  assert_int_equal(r.body_len, 13);
  assert_memory_equal(r.body, "until the end", 13);
  resp_free(&r);
  es_free(e);
  ctx_stop(&c);
}

static void test_http_status(void **state) {
  ctx c;
  resp r;
  (void)state;
  ctx_start(&c, M_INFO);
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "https://status.test/x", "GET", "status.test", NULL,
                         NULL, 0, 1);
  wait_closed(&c, e);
  assert_true(e->got_fin);
  decode_resp(e, &r);
  assert_string_equal(r.r.error, "");
  assert_int_equal(r.r.nmeta, 1);
  assert_string_equal(r.r.meta[0].key, "HttpStatus");
  assert_string_equal(r.r.meta[0].val, "418");
  assert_int_equal(r.body_len, 0);
  resp_free(&r);
  /* Host with a port, and an unknown host: the catch-all 404. */
  estream *e2 = edge_send(&c, WR_CONNECT_HTTP, "https://status.test:8443/x", "GET",
                          "status.test:8443", NULL, NULL, 0, 1);
  estream *e3 = edge_send(&c, WR_CONNECT_HTTP, "https://nobody.test/", "GET", "nobody.test", NULL,
                          NULL, 0, 1);
  wait_closed(&c, e2);
  wait_closed(&c, e3);
  decode_resp(e2, &r);
  assert_string_equal(r.r.meta[0].val, "418");
  resp_free(&r);
  decode_resp(e3, &r);
  assert_string_equal(r.r.meta[0].val, "404");
  resp_free(&r);
  const wr_proxy_stats *st = wr_proxy_get_stats(c.proxy);
  assert_int_equal(st->responses_by_code[4], 3);
  es_free(e);
  es_free(e2);
  es_free(e3);
  ctx_stop(&c);
}

static void test_hello_world(void **state) {
  ctx c;
  resp r;
  static const char *const kv[] = {"X-Evil", "<script>", NULL};
  (void)state;
  ctx_start(&c, M_INFO);
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "https://hello.test/greet?x=1", "GET", "hello.test",
                         kv, NULL, 0, 1);
  wait_closed(&c, e);
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].val, "200");
  assert_string_equal(meta_get(&r, "HttpHeader:Content-Type"), "text/html; charset=utf-8");
  char *page = strndup((const char *)r.body, r.body_len);
  char clen[32];
  snprintf(clen, sizeof(clen), "%zu", r.body_len);
  assert_string_equal(meta_get(&r, "HttpHeader:Content-Length"), clen);
  assert_non_null(strstr(page, "Congrats"));
  assert_non_null(strstr(page, "hello.test"));
  assert_non_null(strstr(page, "/greet?x=1"));
  assert_non_null(strstr(page, "X-Evil"));
  assert_non_null(strstr(page, "&lt;script&gt;"));
  assert_null(strstr(page, "<script>"));
  assert_non_null(strstr(page, "9.9.9-test"));
  free(page);
  resp_free(&r);
  es_free(e);
  ctx_stop(&c);
}

static void test_dial_error(void **state) {
  ctx c;
  resp r;
  (void)state;
  ctx_start(&c, M_INFO);
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "https://dead.test/", "GET", "dead.test", NULL,
                         NULL, 0, 1);
  wait_closed(&c, e);
  assert_true(e->got_fin);
  assert_false(e->got_reset);
  decode_resp(e, &r);
  assert_false(r.r.has_meta);
  assert_int_equal(r.r.nmeta, 0);
  assert_non_null(strstr(r.r.error, "Unable to reach the origin service. The service may be down "
                                    "or it may not be responding to traffic from warren: "));
  assert_non_null(strstr(r.r.error, "connection refused"));
  assert_int_equal(r.body_len, 0);
  resp_free(&r);
  assert_int_equal(wr_proxy_get_stats(c.proxy)->request_errors, 1);
  /* A stream origin's dial error is Go's, without the prefix (cloudflared
   * returns EstablishConnection's error as it is); a tcp stream without
   * warp-routing is refused. */
  estream *e2 =
      edge_send(&c, WR_CONNECT_HTTP, "https://ssh.test/", "GET", "ssh.test", NULL, NULL, 0, 1);
  estream *e3 = edge_send(&c, WR_CONNECT_TCP, "127.0.0.1:9", NULL, NULL, NULL, NULL, 0, 1);
  wait_closed(&c, e2);
  wait_closed(&c, e3);
  decode_resp(e2, &r);
  assert_string_equal(r.r.error, "dial tcp 127.0.0.1:1: connect: connection refused");
  resp_free(&r);
  decode_resp(e3, &r);
  assert_non_null(strstr(r.r.error, "warp-routing"));
  resp_free(&r);
  es_free(e);
  es_free(e2);
  es_free(e3);
  ctx_stop(&c);
}

static void test_origin_dies_mid_body(void **state) {
  ctx c;
  (void)state;
  ctx_start(&c, M_DIE);
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "/", "GET", "app.example.test", NULL, NULL, 0, 1);
  c.watch = e;
  run_until(&c, watch_reset, 20000);
  assert_true(e->got_reset);
  assert_false(e->got_fin);
  wait_closed(&c, e);
  assert_int_equal(wr_proxy_get_stats(c.proxy)->request_errors, 1);
  es_free(e);
  ctx_stop(&c);
}

static void test_bad_preamble(void **state) {
  ctx c;
  estream *e = calloc(1, sizeof(*e));
  static const uint8_t junk[] = "GET / HTTP/1.1\r\n\r\n";
  (void)state;
  ctx_start(&c, M_INFO);
  e->c = &c;
  wr_buf_init(&e->resp, (size_t)1 << 30, NULL);
  assert_int_equal(wr_quic_stream_open(c.sconn, e, &e->sid), WR_OK);
  edge_write(e, junk, sizeof(junk) - 1, 0);
  c.watch = e;
  run_until(&c, watch_reset, 20000);
  assert_int_equal(e->resp.len, 0);
  wait_closed(&c, e);
  es_free(e);

  /* A valid preamble but garbage where the ConnectRequest should be. */
  e = calloc(1, sizeof(*e));
  e->c = &c;
  wr_buf_init(&e->resp, (size_t)1 << 30, NULL);
  assert_int_equal(wr_quic_stream_open(c.sconn, e, &e->sid), WR_OK);
  uint8_t bad[40];
  memcpy(bad, wr_preamble_data_sig, 6);
  memcpy(bad + 6, "01", 2);
  memset(bad + 8, 0xff, sizeof(bad) - 8);
  edge_write(e, bad, sizeof(bad), 1);
  c.watch = e;
  run_until(&c, watch_reset, 20000);
  assert_int_equal(e->resp.len, 0);
  wait_closed(&c, e);
  es_free(e);
  ctx_stop(&c);
}

static void test_split_preamble(void **state) {
  ctx c;
  resp r;
  wr_buf b;
  uint8_t pre[8];
  wr_meta meta[2] = {{"HttpMethod", 10, "GET", 3}, {"HttpHost", 8, "status.test", 11}};
  wr_connect_request req = {"/", 1, WR_CONNECT_HTTP, 1, meta, 2};
  (void)state;
  ctx_start(&c, M_INFO);
  wr_buf_init(&b, (size_t)1 << 30, NULL);
  wr_preamble_write(WR_PREAMBLE_DATA, pre, 8);
  wr_buf_append(&b, pre, 8);
  assert_int_equal(wr_connect_request_encode(&req, NULL, &b), WR_OK);
  estream *e = calloc(1, sizeof(*e));
  e->c = &c;
  wr_buf_init(&e->resp, (size_t)1 << 30, NULL);
  assert_int_equal(wr_quic_stream_open(c.sconn, e, &e->sid), WR_OK);
  /* One byte per loop turn: every split of the read-exactly loop. */
  for (size_t i = 0; i < b.len; i++) {
    edge_write(e, b.data + i, 1, i + 1 == b.len);
    uv_run(&c.q.loop, UV_RUN_NOWAIT);
  }
  wait_closed(&c, e);
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].val, "418");
  resp_free(&r);
  wr_buf_free(&b);
  es_free(e);
  ctx_stop(&c);
}

static void test_ingress_host_and_path(void **state) {
  ctx c;
  resp r;
  (void)state;
  ctx_start(&c, M_INFO);
  estream *a = edge_send(&c, WR_CONNECT_HTTP, "https://path.test/api/v1", "GET", "path.test",
                         NULL, NULL, 0, 1);
  estream *b = edge_send(&c, WR_CONNECT_HTTP, "https://path.test/other", "GET", "path.test", NULL,
                         NULL, 0, 1);
  estream *w = edge_send(&c, WR_CONNECT_HTTP, "https://deep.sub.wild.test/", "GET",
                         "deep.sub.wild.test", NULL, NULL, 0, 1);
  estream *h = edge_send(&c, WR_CONNECT_HTTP, "https://hh.test/x", "GET", "hh.test", NULL, NULL,
                         0, 1);
  wait_closed(&c, a);
  wait_closed(&c, b);
  wait_closed(&c, w);
  wait_closed(&c, h);
  decode_resp(a, &r);
  assert_string_equal(meta_get(&r, "HttpHeader:X-Origin"), "api");
  resp_free(&r);
  decode_resp(b, &r);
  assert_string_equal(r.r.meta[0].val, "404");
  resp_free(&r);
  decode_resp(w, &r);
  assert_string_equal(meta_get(&r, "HttpHeader:X-Origin"), "alt2");
  resp_free(&r);
  decode_resp(h, &r);
  assert_string_equal(meta_get(&r, "HttpHeader:X-Origin"), "alt");
  resp_free(&r);
  assert_true(head_has(&c.origins[O_SECOND], "GET /api/v1 HTTP/1.1\r\n"));
  /* Matching uses the decoded path; the request line keeps the escapes and
   * escapes what may not appear raw. */
  estream *x = edge_send(&c, WR_CONNECT_HTTP, "https://path.test/%61pi/a b?q=1 2#frag", "GET",
                         "path.test", NULL, NULL, 0, 1);
  wait_closed(&c, x);
  decode_resp(x, &r);
  assert_string_equal(meta_get(&r, "HttpHeader:X-Origin"), "api");
  resp_free(&r);
  assert_true(head_has(&c.origins[O_SECOND], "GET /%61pi/a%20b?q=1%202 HTTP/1.1\r\n"));
  es_free(x);
  /* A bad %-escape fails url.Parse: the stream is reset. */
  x = edge_send(&c, WR_CONNECT_HTTP, "https://path.test/%zz", "GET", "path.test", NULL, NULL, 0,
                1);
  c.watch = x;
  run_until(&c, watch_reset, 20000);
  wait_closed(&c, x);
  es_free(x);
  /* So does %00 (lib/encoding's policy): it would cut the matched path short. */
  x = edge_send(&c, WR_CONNECT_HTTP, "https://path.test/api%00/x", "GET", "path.test", NULL, NULL,
                0, 1);
  c.watch = x;
  run_until(&c, watch_reset, 20000);
  wait_closed(&c, x);
  es_free(x);
  assert_true(head_has(&c.origins[O_ALT], "Host: internal.example\r\n"));
  assert_true(head_has(&c.origins[O_ALT], "X-Forwarded-Host: hh.test\r\n"));
  es_free(a);
  es_free(b);
  es_free(w);
  es_free(h);
  ctx_stop(&c);
}

static void test_keepalive_reuse(void **state) {
  ctx c;
  resp r;
  (void)state;
  ctx_start(&c, M_INFO);
  for (int i = 0; i < 3; i++) {
    estream *e = edge_send(&c, WR_CONNECT_HTTP, "/again", "GET", "app.example.test", NULL, NULL,
                           0, 1);
    wait_closed(&c, e);
    decode_resp(e, &r);
    assert_string_equal(r.r.meta[0].val, "200");
    assert_int_equal(r.body_len, 14);
    resp_free(&r);
    es_free(e);
  }
  assert_int_equal(c.origins[O_APP].requests, 3);
  assert_int_equal(c.origins[O_APP].accepts, 1);
  /* A HEAD answer (Content-Length, no body) keeps the connection too. */
  estream *e =
      edge_send(&c, WR_CONNECT_HTTP, "/head", "HEAD", "app.example.test", NULL, NULL, 0, 1);
  wait_closed(&c, e);
  decode_resp(e, &r);
  assert_string_equal(meta_get(&r, "HttpHeader:Content-Length"), "14");
  assert_int_equal(r.body_len, 0);
  resp_free(&r);
  es_free(e);
  assert_int_equal(c.origins[O_APP].accepts, 1);
  ctx_stop(&c);
}

/* The origin closes an idle pooled connection: the next request gets a
 * fresh one (retried) instead of an error. */
static void test_keepalive_origin_closed(void **state) {
  ctx c;
  resp r;
  (void)state;
  ctx_start(&c, M_INFO);
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "/", "GET", "app.example.test", NULL, NULL, 0, 1);
  wait_closed(&c, e);
  es_free(e);
  assert_non_null(c.origins[O_APP].conns);
  wr_conn_close(c.origins[O_APP].conns->conn);
  for (int i = 0; i < 5; i++) uv_run(&c.q.loop, UV_RUN_NOWAIT);
  e = edge_send(&c, WR_CONNECT_HTTP, "/", "GET", "app.example.test", NULL, NULL, 0, 1);
  wait_closed(&c, e);
  decode_resp(e, &r);
  assert_string_equal(r.r.error, "");
  assert_string_equal(r.r.meta[0].val, "200");
  resp_free(&r);
  es_free(e);
  assert_int_equal(c.origins[O_APP].accepts, 2);
  ctx_stop(&c);
}

static int second_closed(ctx *c) { return c->origins[O_SECOND].closes == 1; }

/* keepAliveTimeout closes an idle pooled connection. */
static void test_keepalive_timeout(void **state) {
  ctx c;
  resp r;
  (void)state;
  ctx_start(&c, M_INFO);
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "/", "GET", "ka.test", NULL, NULL, 0, 1);
  wait_closed(&c, e);
  decode_resp(e, &r);
  assert_string_equal(meta_get(&r, "HttpHeader:X-Origin"), "api");
  resp_free(&r);
  es_free(e);
  assert_int_equal(c.origins[O_SECOND].closes, 0);
  uint64_t t0 = uv_now(&c.q.loop);
  run_until(&c, second_closed, 5000);
  uv_update_time(&c.q.loop);
  assert_true(uv_now(&c.q.loop) - t0 >= 200);
  ctx_stop(&c);
}

/* A pooled connection the origin drops when the next request arrives:
 * the request (GET, no body) is retried on a fresh connection. */
static void test_keepalive_retry(void **state) {
  ctx c;
  resp r;
  (void)state;
  ctx_start(&c, M_ONCE);
  for (int i = 0; i < 2; i++) {
    estream *e = edge_send(&c, WR_CONNECT_HTTP, "/", "GET", "app.example.test", NULL, NULL, 0, 1);
    wait_closed(&c, e);
    decode_resp(e, &r);
    assert_string_equal(r.r.error, "");
    assert_string_equal(r.r.meta[0].val, "200");
    resp_free(&r);
    es_free(e);
  }
  assert_int_equal(c.origins[O_APP].accepts, 2);
  assert_int_equal(wr_proxy_get_stats(c.proxy)->request_errors, 0);
  ctx_stop(&c);
}

static int echo_seen(ctx *c) {
  estream *e = c->watch;
  return e->resp.len >= 16 && memmem(e->resp.data, e->resp.len, "ping over tunnel", 16) != NULL &&
         memmem(e->resp.data, e->resp.len, "second", 6) != NULL;
}

static int first_echo(ctx *c) {
  estream *e = c->watch;
  return e->resp.len && memmem(e->resp.data, e->resp.len, "ping over tunnel", 16) != NULL;
}

static void test_websocket_echo(void **state) {
  ctx c;
  resp r;
  static const char *const kv[] = {"Connection", "Upgrade", "Upgrade", "websocket",
                                   "Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==",
                                   "Sec-Websocket-Version", "13", NULL};
  (void)state;
  ctx_start(&c, M_WS);
  estream *e = edge_send(&c, WR_CONNECT_WEBSOCKET, "https://app.example.test/ws", "GET",
                         "app.example.test", kv, "ping over tunnel", 16, 0);
  c.watch = e;
  run_until(&c, first_echo, 20000);
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].key, "HttpStatus");
  assert_string_equal(r.r.meta[0].val, "101");
  assert_string_equal(meta_get(&r, "HttpHeader:Upgrade"), "websocket");
  assert_string_equal(meta_get(&r, "HttpHeader:Sec-Websocket-Accept"),
                      "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  resp_free(&r);
  edge_write(e, "second", 6, 0);
  run_until(&c, echo_seen, 20000);
  assert_int_equal(wr_proxy_get_stats(c.proxy)->tcp_active, 1);
  /* The edge ends: the connector ends too. */
  edge_write(e, NULL, 0, 1);
  wait_closed(&c, e);
  assert_true(e->got_fin);
  assert_false(e->got_reset);
  torigin *o = &c.origins[O_APP];
  assert_true(head_has(o, "GET /ws HTTP/1.1\r\n"));
  assert_true(head_has(o, "Connection: Upgrade\r\n"));
  assert_true(head_has(o, "Upgrade: websocket\r\n"));
  assert_true(head_has(o, "Sec-Websocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
  assert_true(head_has(o, "Sec-Websocket-Version: 13\r\n"));
  assert_false(head_has(o, "keep-alive"));
  const wr_proxy_stats *st = wr_proxy_get_stats(c.proxy);
  assert_int_equal(st->tcp_active, 0);
  assert_int_equal(st->tcp_total, 1);
  assert_int_equal(st->responses_by_code[1], 1);
  es_free(e);
  ctx_stop(&c);
}

static int origin_closed_one(ctx *c) { return c->origins[O_APP].closes >= 1; }

/* The origin ends the websocket: the stream gets FIN. */
static void test_websocket_origin_ends(void **state) {
  ctx c;
  static const char *const kv[] = {"Connection", "Upgrade", "Upgrade", "websocket",
                                   "Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", NULL};
  (void)state;
  ctx_start(&c, M_WS);
  estream *e = edge_send(&c, WR_CONNECT_WEBSOCKET, "/ws", "GET", "app.example.test", kv,
                         "ping over tunnel", 16, 0);
  c.watch = e;
  run_until(&c, first_echo, 20000);
  assert_non_null(c.origins[O_APP].conns);
  wr_conn_close(c.origins[O_APP].conns->conn);
  run_until(&c, origin_closed_one, 20000);
  wait_closed(&c, e);
  assert_true(e->got_fin);
  es_free(e);
  ctx_stop(&c);
}

/* A websocket request the origin answers without 101 passes on like http. */
static void test_websocket_refused(void **state) {
  ctx c;
  resp r;
  static const char *const kv[] = {"Connection", "Upgrade", "Upgrade", "websocket",
                                   "Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", NULL};
  (void)state;
  ctx_start(&c, M_INFO);
  estream *e = edge_send(&c, WR_CONNECT_WEBSOCKET, "/ws", "GET", "app.example.test", kv,
                         "ignored", 7, 1);
  wait_closed(&c, e);
  assert_true(e->got_fin);
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].val, "200");
  assert_int_equal(r.body_len, 14);
  assert_memory_equal(r.body, "hello from app", 14);
  resp_free(&r);
  assert_int_equal(wr_proxy_get_stats(c.proxy)->tcp_total, 0);
  es_free(e);
  ctx_stop(&c);
}

static void test_unix_origin(void **state) {
  ctx c;
  resp r;
  (void)state;
  ctx_start(&c, M_INFO);
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "https://unix.test/sock", "GET", "unix.test", NULL,
                         NULL, 0, 1);
  wait_closed(&c, e);
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].val, "200");
  assert_string_equal(meta_get(&r, "HttpHeader:X-Origin"), "unix");
  assert_int_equal(r.body_len, 15);
  assert_memory_equal(r.body, "hello from unix", 15);
  resp_free(&r);
  assert_true(head_has(&c.origins[O_UNIX], "Host: unix.test\r\n"));
  es_free(e);
  ctx_stop(&c);
}

static void test_https_origins(void **state) {
  ctx c;
  resp r;
  (void)state;
  ctx_start(&c, M_INFO);
  estream *a =
      edge_send(&c, WR_CONNECT_HTTP, "https://tls.test/", "GET", "tls.test", NULL, NULL, 0, 1);
  estream *b = edge_send(&c, WR_CONNECT_HTTP, "https://tlsnv.test/", "GET", "tlsnv.test", NULL,
                         NULL, 0, 1);
  estream *u = edge_send(&c, WR_CONNECT_HTTP, "https://untrusted.test/", "GET", "untrusted.test",
                         NULL, NULL, 0, 1);
  wait_closed(&c, a);
  wait_closed(&c, b);
  wait_closed(&c, u);
  decode_resp(a, &r);
  assert_string_equal(r.r.error, "");
  assert_string_equal(r.r.meta[0].val, "200");
  assert_string_equal(meta_get(&r, "HttpHeader:X-Origin"), "tls");
  assert_int_equal(r.body_len, 14);
  resp_free(&r);
  decode_resp(b, &r);
  assert_string_equal(r.r.error, "");
  assert_string_equal(r.r.meta[0].val, "200");
  resp_free(&r);
  decode_resp(u, &r);
  assert_false(r.r.has_meta);
  assert_non_null(strstr(r.r.error, "Unable to reach the origin service"));
  resp_free(&r);
  /* An IP origin verified under originServerName. */
  estream *n =
      edge_send(&c, WR_CONNECT_HTTP, "https://sni.test/", "GET", "sni.test", NULL, NULL, 0, 1);
  wait_closed(&c, n);
  decode_resp(n, &r);
  assert_string_equal(r.r.error, "");
  assert_string_equal(r.r.meta[0].val, "200");
  resp_free(&r);
  es_free(n);
  /* Second request on tls.test reuses the TLS connection. */
  int before = c.origins[O_TLS].accepts;
  estream *a2 =
      edge_send(&c, WR_CONNECT_HTTP, "https://tls.test/", "GET", "tls.test", NULL, NULL, 0, 1);
  wait_closed(&c, a2);
  decode_resp(a2, &r);
  assert_string_equal(r.r.meta[0].val, "200");
  resp_free(&r);
  assert_int_equal(c.origins[O_TLS].accepts, before);
  es_free(a);
  es_free(b);
  es_free(u);
  es_free(a2);
  ctx_stop(&c);
}

static int origin_gone(ctx *c) {
  return c->origins[O_APP].accepts == 1 && c->origins[O_APP].closes == 1;
}
static int origin_has_request(ctx *c) { return c->origins[O_APP].last_head.len > 0; }

static void test_edge_reset_aborts_origin(void **state) {
  ctx c;
  (void)state;
  ctx_start(&c, M_HANG);
  estream *e =
      edge_send(&c, WR_CONNECT_HTTP, "/slow", "GET", "app.example.test", NULL, NULL, 0, 0);
  run_until(&c, origin_has_request, 20000);
  wr_quic_stream_reset(c.sconn, e->sid, 0);
  wr_quic_stream_stop_sending(c.sconn, e->sid, 0);
  run_until(&c, origin_gone, 20000);
  run_until(&c, proxy_idle, 20000);
  assert_int_equal(wr_proxy_get_stats(c.proxy)->concurrent_requests, 0);
  es_free(e);
  ctx_stop(&c);
}

#define BIG (24u * 1024u * 1024u)

static void test_big_download(void **state) {
  ctx c;
  resp r;
  (void)state;
  ctx_start(&c, M_BIG);
  c.origins[O_APP].big_len = BIG;
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "/big", "GET", "app.example.test", NULL, NULL, 0, 1);
  wait_closed(&c, e);
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].val, "200");
  assert_int_equal(r.body_len, BIG);
  for (size_t i = 0; i < r.body_len; i++)
    if (r.body[i] != pattern(i)) fail_msg("byte %zu differs", i);
  resp_free(&r);
  es_free(e);
  ctx_stop(&c);
}

static void test_big_upload(void **state) {
  ctx c;
  resp r;
  char clen[32];
  (void)state;
  ctx_start(&c, M_SINK);
  snprintf(clen, sizeof(clen), "%u", BIG);
  const char *kv[] = {"Content-Length", clen, NULL};
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "/up", "POST", "app.example.test", kv, NULL, 0, 0);
  e->gen_total = BIG;
  e->gen_fin = 1;
  e->generating = 1;
  gen_more(e);
  wait_closed(&c, e);
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].val, "200");
  char want[64];
  snprintf(want, sizeof(want), "%u 1", BIG);
  assert_int_equal(r.body_len, strlen(want));
  assert_memory_equal(r.body, want, strlen(want));
  resp_free(&r);
  es_free(e);
  ctx_stop(&c);
}

static int big_stalled(ctx *c) {
  tconn *t = c->origins[O_APP].conns;
  return t && t->big_sent > 0 && wr_conn_write_queued(t->conn) >= 256 * 1024;
}

static void settle(ctx *c, uint64_t ms) { unit_qpair_run_for(&c->q, ms); }

/* Runs the loop until |*counter| stopped moving for 150 ms (at most 15 s
 * under load); returns its value. Kernel socket buffers on loopback absorb
 * a few MB before a stalled reader stops the flow. */
static uint64_t settle_stable(ctx *c, const uint64_t *counter) {
  uint64_t last = *counter;
  for (int i = 0; i < 100; i++) {
    settle(c, 150);
    if (*counter == last) break;
    last = *counter;
  }
  return last;
}

/* A visitor that does not read: the connector stops reading the origin, so
 * the origin can only get about one window (+ socket buffers) ahead. Then
 * the edge gives up with STOP_SENDING: the origin request is aborted. */
static void test_backpressure_download(void **state) {
  ctx c;
  (void)state;
  ctx_start(&c, M_BIG);
  c.origins[O_APP].big_len = 256u * 1024u * 1024u;
  c.edge_hold = 1;
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "/big", "GET", "app.example.test", NULL, NULL, 0, 1);
  run_until(&c, big_stalled, 20000);
  tconn *t = c.origins[O_APP].conns;
  assert_non_null(t);
  uint64_t sent = settle_stable(&c, &t->big_sent);
  assert_true(sent < 24u * 1024u * 1024u);
  assert_true(e->resp.len < 4u * 1024u * 1024u);
  settle(&c, 300);
  assert_true(t->big_sent < 24u * 1024u * 1024u);
  /* The visitor goes away. */
  wr_quic_stream_stop_sending(c.sconn, e->sid, 0);
  run_until(&c, origin_closed_one, 20000);
  run_until(&c, proxy_idle, 20000);
  assert_int_equal(wr_proxy_get_stats(c.proxy)->concurrent_requests, 0);
  es_free(e);
  ctx_stop(&c);
}

static int gen_stalled(ctx *c) { return c->watch->gen_sent > 0 && c->watch->generating; }

/* An origin that does not read: QUIC credit is not returned, so the edge
 * cannot push much more than the stream window (+ socket buffers). */
static void test_backpressure_upload(void **state) {
  ctx c;
  char clen[32];
  (void)state;
  ctx_start(&c, M_STALL);
  snprintf(clen, sizeof(clen), "%u", 256u * 1024u * 1024u);
  const char *kv[] = {"Content-Length", clen, NULL};
  estream *e = edge_send(&c, WR_CONNECT_HTTP, "/up", "POST", "app.example.test", kv, NULL, 0, 0);
  e->gen_total = 256u * 1024u * 1024u;
  e->gen_fin = 1;
  e->generating = 1;
  gen_more(e);
  c.watch = e;
  run_until(&c, gen_stalled, 20000);
  uint64_t sent = settle_stable(&c, &e->gen_sent);
  assert_true(sent < 24u * 1024u * 1024u);
  settle(&c, 300);
  if (e->gen_sent >= 24u * 1024u * 1024u)
    fail_msg("upload went on: %llu then %llu", (unsigned long long)sent,
             (unsigned long long)e->gen_sent);
  /* The visitor gives up: RESET_STREAM aborts the origin request. */
  e->generating = 0;
  wr_quic_stream_reset(c.sconn, e->sid, 0);
  run_until(&c, proxy_idle, 20000);
  /* The stalled origin sees the connector's close once it reads again. */
  assert_non_null(c.origins[O_APP].conns);
  wr_conn_read_start(c.origins[O_APP].conns->conn);
  run_until(&c, origin_closed_one, 20000);
  assert_int_equal(wr_proxy_get_stats(c.proxy)->concurrent_requests, 0);
  es_free(e);
  ctx_stop(&c);
}

/* The bytes the real edge sent to cloudflared, fed to the proxy; the
 * ConnectResponse decodes like cloudflared's. */
static void test_vector_http_get(void **state) {
  ctx c;
  resp r, want;
  size_t n, wn;
  (void)state;
  ctx_start(&c, M_INFO);
  uint8_t *req = unit_read_vector("quic/http-get.from-edge.bin", &n);
  uint8_t *ref = unit_read_vector("quic/http-get.from-connector.bin", &wn);
  estream *e = calloc(1, sizeof(*e));
  e->c = &c;
  wr_buf_init(&e->resp, (size_t)1 << 30, NULL);
  assert_int_equal(wr_quic_stream_open(c.sconn, e, &e->sid), WR_OK);
  edge_write(e, req, n, 1);
  wait_closed(&c, e);
  decode_resp(e, &r);

  estream fake;
  memset(&fake, 0, sizeof(fake));
  fake.resp.data = ref;
  fake.resp.len = wn;
  decode_resp(&fake, &want);
  /* Same shape: HttpStatus first, then HttpHeader:* only, no error. */
  assert_string_equal(want.r.meta[0].key, "HttpStatus");
  assert_string_equal(r.r.meta[0].key, "HttpStatus");
  assert_string_equal(r.r.meta[0].val, want.r.meta[0].val);
  assert_string_equal(r.r.error, want.r.error);
  assert_int_equal(r.r.has_meta, want.r.has_meta);
  for (size_t i = 1; i < want.r.nmeta; i++)
    assert_int_equal(strncmp(want.r.meta[i].key, "HttpHeader:", 11), 0);
  for (size_t i = 1; i < r.r.nmeta; i++)
    assert_int_equal(strncmp(r.r.meta[i].key, "HttpHeader:", 11), 0);
  assert_non_null(meta_get(&want, "HttpHeader:Content-Length"));
  assert_non_null(meta_get(&r, "HttpHeader:Content-Length"));
  resp_free(&r);
  resp_free(&want);

  torigin *o = &c.origins[O_APP];
  assert_true(head_has(o, "GET /index.html HTTP/1.1\r\n"));
  assert_true(head_has(o, "Host: app.example.test\r\n"));
  assert_true(head_has(o, "User-Agent: curl/7.88.1\r\n"));
  assert_true(head_has(o, "Accept: */*\r\n"));
  free(req);
  free(ref);
  es_free(e);
  ctx_stop(&c);
}

static estream *edge_raw(ctx *c, const uint8_t *d, size_t n, int fin) {
  estream *e = calloc(1, sizeof(*e));
  e->c = c;
  wr_buf_init(&e->resp, (size_t)1 << 30, NULL);
  assert_int_equal(wr_quic_stream_open(c->sconn, e, &e->sid), WR_OK);
  edge_write(e, d, n, fin);
  return e;
}

/* cloudflared's edge POST (Content-Length given twice, body after the
 * ConnectRequest): the origin gets the body once, framed by its length. */
static void test_vector_http_post(void **state) {
  ctx c;
  resp r;
  size_t n;
  (void)state;
  ctx_start(&c, M_INFO);
  uint8_t *req = unit_read_vector("quic/http-post.from-edge.bin", &n);
  estream *e = edge_raw(&c, req, n, 1);
  wait_closed(&c, e);
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].val, "200");
  resp_free(&r);
  torigin *o = &c.origins[O_APP];
  assert_true(head_has(o, "POST /x HTTP/1.1\r\n"));
  assert_true(head_has(o, "Content-Length: 10\r\n"));
  wr_buf h = o->last_head;
  char *hs = strndup((const char *)h.data, h.len);
  assert_null(strstr(strstr(hs, "Content-Length") + 1, "Content-Length"));
  free(hs);
  assert_int_equal(o->last_body.len, 10);
  assert_memory_equal(o->last_body.data, "hello body", 10);
  free(req);
  es_free(e);
  ctx_stop(&c);
}

static size_t ws_frame_len;
static const uint8_t *ws_frame;
static int frame_echoed(ctx *c) {
  estream *e = c->watch;
  return e->resp.len >= ws_frame_len &&
         memmem(e->resp.data, e->resp.len, ws_frame, ws_frame_len) != NULL;
}

/* cloudflared's edge websocket stream: upgrade, 101 first in the metadata,
 * then the client's frame passes through untouched. */
static void test_vector_websocket(void **state) {
  ctx c;
  resp r, want;
  size_t n, wn, used;
  wr_connect_request cr;
  (void)state;
  ctx_start(&c, M_WS);
  uint8_t *req = unit_read_vector("quic/websocket.from-edge.bin", &n);
  uint8_t *ref = unit_read_vector("quic/websocket.from-connector.bin", &wn);
  assert_int_equal(wr_connect_request_decode_alloc(req + 8, n - 8, NULL, NULL, 0, &cr, &used),
                   WR_OK);
  assert_int_equal(cr.type, WR_CONNECT_WEBSOCKET);
  wr_connect_request_free(NULL, &cr);
  ws_frame = req + 8 + used;
  ws_frame_len = n - 8 - used;
  assert_true(ws_frame_len > 0);
  estream *e = edge_raw(&c, req, n, 0);
  c.watch = e;
  run_until(&c, frame_echoed, 20000);
  decode_resp(e, &r);
  estream fake;
  memset(&fake, 0, sizeof(fake));
  fake.resp.data = ref;
  fake.resp.len = wn;
  decode_resp(&fake, &want);
  assert_string_equal(want.r.meta[0].key, "HttpStatus");
  assert_string_equal(want.r.meta[0].val, "101");
  assert_string_equal(r.r.meta[0].key, "HttpStatus");
  assert_string_equal(r.r.meta[0].val, "101");
  assert_non_null(meta_get(&want, "HttpHeader:Sec-Websocket-Accept"));
  assert_non_null(meta_get(&r, "HttpHeader:Sec-Websocket-Accept"));
  resp_free(&r);
  resp_free(&want);
  assert_true(head_has(&c.origins[O_APP], "GET /chat HTTP/1.1\r\n"));
  assert_true(head_has(&c.origins[O_APP], "Host: ws.example.test\r\n"));
  assert_true(head_has(&c.origins[O_APP], "Sec-Websocket-Key: WTSl10wFwrcxLjHkjO+sNA==\r\n"));
  edge_write(e, NULL, 0, 1);
  wait_closed(&c, e);
  free(req);
  free(ref);
  es_free(e);
  ctx_stop(&c);
}

/* Freeing the proxy with requests in flight closes their origins. */
static void test_free_in_flight(void **state) {
  ctx c;
  (void)state;
  ctx_start(&c, M_HANG);
  estream *e =
      edge_send(&c, WR_CONNECT_HTTP, "/slow", "GET", "app.example.test", NULL, NULL, 0, 1);
  run_until(&c, origin_has_request, 20000);
  assert_int_equal(wr_proxy_active(c.proxy), 1);
  es_free(e);
  ctx_stop(&c); /* asserts every origin connection got closed */
}

int main(void) {
  return UNIT_RUN(
      group_setup, group_teardown,
      UNIT_TESTS(test_get, test_post_content_length, test_chunked_request, test_chunked_response,
                 test_eof_delimited_response, test_http_status, test_hello_world, test_dial_error,
                 test_origin_dies_mid_body, test_bad_preamble, test_split_preamble,
                 test_ingress_host_and_path, test_keepalive_reuse, test_keepalive_origin_closed,
                 test_keepalive_timeout, test_keepalive_retry, test_websocket_echo,
                 test_websocket_origin_ends, test_websocket_refused, test_unix_origin,
                 test_https_origins, test_edge_reset_aborts_origin, test_big_download,
                 test_big_upload, test_backpressure_download, test_backpressure_upload,
                 test_vector_http_get, test_vector_http_post, test_vector_websocket,
                 test_free_in_flight));
}
