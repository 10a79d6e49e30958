/* The proxy suites' fixture: see proxy_fixture.h. */
#include "proxy_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unit_pki pki;
static char oca_path[128], ocert_path[128], okey_path[128], sock_path[128];

/* The edge's PKI (unit_pki) and, in its directory, an origin CA and a leaf
 * for "localhost" only: https://127.0.0.1 fails verification (noTLSVerify
 * test). */
int proxy_group_setup(void **state) {
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

int proxy_group_teardown(void **state) {
  (void)state;
  return unit_rm_rf(pki.dir);
}

uint8_t pattern(uint64_t i) { return (uint8_t)((i * 131u + (i >> 11) + 7u) & 0xff); }

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
  if (status != WR_OK) {
    wr_conn_close(c);
    return;
  }
  if (t->o->mode == M_BANNER) {
    wr_conn_write(c, (const uint8_t *)"banner", 6);
    wr_conn_shutdown(c);
  }
}

static void tc_on_read(wr_conn *c, const uint8_t *d, size_t n, void *user) {
  tconn *t = user;
  torigin *o = t->o;
  size_t room = 1u << 20;
  if (o->raw.len < room) wr_buf_append(&o->raw, d, n < room - o->raw.len ? n : room - o->raw.len);
  if (o->mode >= M_ECHO) { /* a raw TCP origin */
    if (o->mode == M_ECHO) wr_conn_write(c, d, n);
    return;
  }
  wr_buf_append(&t->in, d, n);
  tc_process(t);
}

static void tc_on_eof(wr_conn *c, int status, const char *msg, void *user) {
  tconn *t = user;
  t->o->eofs++;
  if (t->o->mode == M_ECHO)
    wr_conn_shutdown(c);
  else
    wr_conn_close(c);
}

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
  assert_int_equal(idx, c->norigins);
  c->norigins++;
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

void gen_more(estream *e) {
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
void ctx_begin(ctx *c, const origin_spec *origins, size_t n) {
  memset(c, 0, sizeof(*c));
  unit_qpair_init(&c->q);
  for (size_t i = 0; i < n; i++)
    origin_start(c, (int)i, origins[i].name, origins[i].mode, origins[i].is_unix, origins[i].tls);
}

void ctx_proxy_start(ctx *c, const char *yaml, const wr_uuid *connector_id) {
  c->ing = unit_ingress_of(yaml);
  c->q.ecbs.on_handshake_done = e_hs;
  c->q.ecbs.on_stream_data = e_data;
  c->q.ecbs.on_stream_reset = e_reset;
  c->q.ecbs.on_stream_writable = e_writable;
  c->q.ecbs.on_stream_close = e_close;
  c->proxy = unit_qpair_proxy_start(&c->q, &pki, c->ing, connector_id, c);
  run_until(c, ready_done, 5000);
}

void ctx_start(ctx *c, int app_mode) {
  char yaml[4096];
  wr_uuid connector_id;

  const origin_spec origins[NORIGINS] = {
      [O_APP] = {"app", app_mode, 0, 0}, [O_SECOND] = {"api", M_INFO, 0, 0},
      [O_UNIX] = {"unix", M_INFO, 1, 0}, [O_TLS] = {"tls", M_INFO, 0, 1},
      [O_ALT] = {"alt", M_INFO, 0, 0},   [O_ALT2] = {"alt2", M_INFO, 0, 0},
  };

  ctx_begin(c, origins, NORIGINS);

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
  assert_int_equal(wr_uuid_parse(tag_uuid, strlen(tag_uuid), &connector_id), 0);
  ctx_proxy_start(c, yaml, &connector_id);
}

static void close_origin(torigin *o) {
  tconn *t;
  for (t = o->conns; t; t = t->next) wr_conn_close(t->conn);
  uv_close((uv_handle_t *)&o->h.tcp, NULL);
}

void ctx_stop(ctx *c) {
  wr_proxy_free(c->proxy);
  unit_qpair_free_endpoints(&c->q);
  for (int i = 0; i < c->norigins; i++) close_origin(&c->origins[i]);
  unit_qpair_finish(&c->q);
  for (int i = 0; i < c->norigins; i++) {
    torigin *o = &c->origins[i];
    assert_null(o->conns);
    wr_buf_free(&o->last_head);
    wr_buf_free(&o->last_body);
    wr_buf_free(&o->raw);
    wr_tls_creds_free(o->tls);
  }
  wr_ingress_free(c->ing);
}

static int ctx_setup(void **state, int app_mode) {
  ctx *c = calloc(1, sizeof(*c));
  assert_non_null(c);
  ctx_start(c, app_mode);
  *state = c;
  return 0;
}

int ctx_setup_info(void **state) { return ctx_setup(state, M_INFO); }
int ctx_setup_sink(void **state) { return ctx_setup(state, M_SINK); }
int ctx_setup_chunked(void **state) { return ctx_setup(state, M_CHUNKED); }
int ctx_setup_eof_body(void **state) { return ctx_setup(state, M_EOF_BODY); }
int ctx_setup_die(void **state) { return ctx_setup(state, M_DIE); }
int ctx_setup_once(void **state) { return ctx_setup(state, M_ONCE); }

int ctx_teardown(void **state) {
  ctx *c = *state;
  ctx_stop(c);
  free(c);
  return 0;
}

/* ---- requests from the edge -------------------------------------------------- */

/* Opens a data stream and writes preamble + ConnectRequest (+ |body|).
 * |kv| is NULL-terminated "Name", "value" pairs of request headers. */
estream *edge_send(ctx *c, int type, const char *dest, const char *method,
                          const char *host, const char *const *kv, const void *body,
                          size_t body_len, int fin) {
  estream *e = edge_open(c);
  wr_meta meta[32];
  char keys[32][128];
  size_t n = 0, acc;
  wr_buf b;
  if (method) meta[n++] = (wr_meta){"HttpMethod", 10, method, strlen(method)};
  if (host) meta[n++] = (wr_meta){"HttpHost", 8, host, strlen(host)};
  for (size_t i = 0; kv && kv[i]; i += 2) {
    snprintf(keys[n], sizeof(keys[n]), "HttpHeader:%s", kv[i]);
    meta[n] = (wr_meta){keys[n], strlen(keys[n]), kv[i + 1], strlen(kv[i + 1])};
    n++;
  }
  wr_buf_init(&b, (size_t)1 << 30, NULL);
  unit_edge_request(&b, type, dest, meta, n, body, body_len);
  assert_int_equal(wr_quic_stream_write(c->sconn, e->sid, b.data, b.len, fin, &acc), WR_OK);
  wr_buf_free(&b);
  return e;
}

void edge_write(estream *e, const void *d, size_t n, int fin) {
  size_t acc;
  assert_int_equal(wr_quic_stream_write(e->c->sconn, e->sid, d, n, fin, &acc), WR_OK);
  assert_int_equal(acc, n);
}

void es_free(estream *e) {
  wr_buf_free(&e->resp);
  free(e);
}

int proxy_idle(ctx *c) { return wr_proxy_active(c->proxy) == 0; }
static int watch_closed(ctx *c) { return c->watch->closed && proxy_idle(c); }
int watch_reset(ctx *c) { return c->watch->got_reset; }

void wait_closed(ctx *c, estream *e) {
  c->watch = e;
  run_until(c, watch_closed, 30000);
}

void wait_reset(ctx *c, estream *e) {
  c->watch = e;
  run_until(c, watch_reset, 20000);
  wait_closed(c, e);
}

void decode_bytes(const uint8_t *d, size_t n, resp *out) {
  size_t used = unit_edge_response(d, n, &out->r);
  out->body = d + used;
  out->body_len = n - used;
}

void decode_resp(const estream *e, resp *out) { decode_bytes(e->resp.data, e->resp.len, out); }

estream *get_resp(ctx *c, const char *dest, const char *host, resp *r) {
  estream *e = edge_send(c, WR_CONNECT_HTTP, dest, "GET", host, NULL, NULL, 0, 1);
  wait_closed(c, e);
  decode_resp(e, r);
  return e;
}

void assert_resp(const resp *r, const char *status, const char *body) {
  assert_string_equal(r->r.meta[0].val, status);
  assert_int_equal(r->body_len, strlen(body));
  assert_memory_equal(r->body, body, r->body_len);
}

const char *meta_get(const resp *r, const char *key) {
  return wr_meta_find_last(r->r.meta, r->r.nmeta, key, NULL);
}

int meta_count(const resp *r, const char *key) {
  int n = 0;
  for (size_t i = 0; i < r->r.nmeta; i++)
    if (strcmp(r->r.meta[i].key, key) == 0) n++;
  return n;
}

void resp_free(resp *r) { wr_connect_response_free(NULL, &r->r); }

void assert_stream_status(const estream *e, const char *status) {
  resp r;
  decode_resp(e, &r);
  assert_string_equal(r.r.meta[0].val, status);
  resp_free(&r);
}

void assert_stream_resp(const estream *e, const char *status, const char *body) {
  resp r;
  decode_resp(e, &r);
  assert_resp(&r, status, body);
  resp_free(&r);
}

int head_has(const torigin *o, const char *line) {
  wr_buf tmp = o->last_head;
  char *s = strndup((const char *)tmp.data, tmp.len);
  int found = strstr(s, line) != NULL;
  free(s);
  return found;
}

void assert_head(const torigin *o, int want, const char *const *lines) {
  for (size_t i = 0; lines[i]; i++)
    if (head_has(o, lines[i]) != want)
      fail_msg("request head %s \"%s\"", want ? "lacks" : "has", lines[i]);
}

estream *edge_open(ctx *c) {
  estream *e = calloc(1, sizeof(*e));
  e->c = c;
  wr_buf_init(&e->resp, (size_t)1 << 30, NULL);
  assert_int_equal(wr_quic_stream_open(c->sconn, e, &e->sid), WR_OK);
  return e;
}

estream *edge_raw(ctx *c, const uint8_t *d, size_t n, int fin) {
  estream *e = edge_open(c);
  edge_write(e, d, n, fin);
  return e;
}

estream *edge_vector(ctx *c, const char *name) {
  size_t n;
  uint8_t *d = unit_read_vector(name, &n);
  estream *e = edge_raw(c, d, n, 1);
  wait_closed(c, e);
  free(d);
  return e;
}
