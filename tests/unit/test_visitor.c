/* The edge's visitor front end to end, in one process over loopback: a temp
 * store (account, zone example.test, tunnels t1 and t2, routes), the tunnel
 * server on a QUIC endpoint, the visitor front on TCP, and a fake connector:
 * a QUIC client that registers for t1 (connector/registration.h) and
 * answers the edge's data streams itself, choosing its behaviour by the
 * request path. The libuv loop runs on a second thread; the tests are
 * visitors with blocking sockets on the main thread. */
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

#include "connector/registration.h"
#include "edge/pki.h"
#include "edge/store.h"
#include "edge/tunnel_server.h"
#include "edge/visitor.h"
#include "edge/visitor_int.h"
#include "lib/buf.h"
#include "lib/credentials.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/quic.h"
#include "proto/connect.h"
#include "proto/httpmeta.h"
#include "proto/preamble.h"
#include "unit.h"

#define BIG_SIZE (8u * 1024u * 1024u)
#define EARLY_BODY (300u * 1024u)

static unit_pki pki; /* ca.pem, and the tunnel server's cert.pem and key.pem */
static char db_path[128];
static wr_store *store;
static wr_account account;
static wr_zone zone;
static wr_tunnel t1, t2;

/* ---- what the fake connector saw (shared with the test thread) ----------------- */

#define SEEN_MAX_META 64
typedef struct seen {
  int count;             /* requests decoded */
  char dest[512];
  int type;
  size_t nmeta;
  char keys[SEEN_MAX_META][128];
  char vals[SEEN_MAX_META][512];
  uint8_t *raw;          /* preamble + ConnectRequest as received */
  size_t raw_len;
  uint8_t *body;         /* /echo: the body, once FIN arrived */
  size_t body_len;
  int body_done;
  uint64_t sunk;         /* /sink */
} seen;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static seen obs;

/* One QUIC connection of the fake connector. Fields after |ep| are shared
 * with the test thread (under |mu|). */
#define MAX_FCONNS 3
typedef struct fconn {
  wr_quic_endpoint *ep;
  wr_quic_conn *conn;
  wr_registration *reg;
  uint8_t conn_index;
  int registered; /* 1 ok, -1 refused */
  int closed;     /* the edge closed the connection */
  int served;     /* data streams answered */
} fconn;

/* ---- the world ------------------------------------------------------------------ */

typedef struct fstream {
  struct fstream *next;
  int64_t sid;
  wr_buf in;
  int decoded;
  size_t body_off;
  char path[64];
  int got_fin;
  int responded;
  fconn *fc;
  uint64_t big_left;
  uint64_t big_off;
} fstream;

typedef struct world {
  uv_loop_t loop;
  pthread_t thread;
  uv_async_t stop, call;
  void (*call_fn)(void); /* run on the loop thread by |call| */
  int call_done;
  uv_timer_t reset_timer;
  wr_quic_conn *reset_conn;
  int64_t reset_sid;
  wr_tunnel_server *ts;
  wr_quic_endpoint *sep;
  struct sockaddr_storage edge_addr;
  wr_quic_tls *stls, *ctls;
  wr_credentials cred;
  wr_uuid connector_id;
  fconn fc[MAX_FCONNS];
  fconn *hang_fc; /* got a /hang request (under mu) */
  wr_visitor *v;
  int port;
  wr_visitor *lv, *rv; /* small limits: connections; request rate */
  int lport, rport;
  fstream *streams;
  wr_visitor_stats final_stats;
} world;

static world w;

/* cmocka cannot fail a test from the loop thread: remember instead. */
static int conn_failures;
#define CHECK(x)                                                            \
  do {                                                                      \
    if (!(x)) {                                                             \
      fprintf(stderr, "%s:%d: fake connector check failed: %s\n", __FILE__, \
              __LINE__, #x);                                                \
      pthread_mutex_lock(&mu);                                              \
      conn_failures++;                                                      \
      pthread_mutex_unlock(&mu);                                            \
    }                                                                       \
  } while (0)
#define CHECK_EQ(a, b) CHECK((a) == (b))

/* ---- fake connector ---------------------------------------------------------------- */

static void on_registered(wr_registration *r, void *user, const wr_registration_result *res) {
  fconn *fc = user;
  pthread_mutex_lock(&mu);
  fc->registered = res->ok ? 1 : -1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

static void cl_hs(wr_quic_conn *qc, void *user) {
  fconn *fc = user;
  wr_registration_config rc;
  memset(&rc, 0, sizeof(rc));
  rc.cred = &w.cred;
  rc.connector_id = w.connector_id; /* one connector process, several connections */
  rc.conn_index = fc->conn_index;
  rc.on_registered = on_registered;
  rc.user = fc;
  if (wr_registration_start(qc, &rc, &fc->reg) != WR_OK) {
    pthread_mutex_lock(&mu);
    fc->registered = -1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
  }
}

static void cl_close(wr_quic_conn *qc, const wr_quic_close_info *info, void *user) {
  fconn *fc = user;
  pthread_mutex_lock(&mu);
  fc->closed = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

static int cl_stream_open(wr_quic_conn *c, int64_t sid, void *user) {
  if ((sid & 3) != 1) return 0;
  fstream *fs = calloc(1, sizeof(*fs));
  if (!fs) return -1;
  fs->sid = sid;
  fs->fc = user;
  wr_buf_init(&fs->in, 4u << 20, NULL);
  fs->next = w.streams;
  w.streams = fs;
  wr_quic_stream_set_user(c, sid, fs);
  return 0;
}

static void fstream_free(fstream *fs) {
  wr_buf_free(&fs->in);
  free(fs);
}

/* Writes preamble + ConnectResponse{error | HttpStatus + headers}. */
static void respond(wr_quic_conn *c, fstream *fs, const char *error, int status,
                    const wr_http_header *h, size_t n, const char *body, size_t blen, int fin) {
  wr_buf out, arena;
  wr_meta meta[16];
  wr_connect_response r;
  memset(&r, 0, sizeof(r));
  wr_buf_init(&out, 1u << 20, NULL);
  wr_buf_init(&arena, 1u << 16, NULL);
  uint8_t pre[8];
  CHECK_EQ(wr_preamble_write(WR_PREAMBLE_DATA, pre, sizeof(pre)), 8);
  CHECK_EQ(wr_buf_append(&out, pre, 8), 0);
  if (error) {
    r.error = error;
    r.error_len = strlen(error);
  } else {
    int nm = wr_httpmeta_resp_encode(status, h, n, &arena, meta, 16);
    CHECK(nm > 0);
    r.has_meta = 1;
    r.meta = meta;
    r.nmeta = (size_t)nm;
  }
  CHECK_EQ(wr_connect_response_encode(&r, NULL, &out), 0);
  if (blen) CHECK_EQ(wr_buf_append(&out, body, blen), 0);
  size_t acc = 0;
  CHECK_EQ(wr_quic_stream_write(c, fs->sid, out.data, out.len, fin, &acc), WR_OK);
  wr_buf_free(&out);
  wr_buf_free(&arena);
  fs->responded = 1;
}

static void big_pump(wr_quic_conn *c, fstream *fs) {
  static uint8_t chunk[65536];
  while (fs->big_left) {
    size_t n = fs->big_left < sizeof(chunk) ? (size_t)fs->big_left : sizeof(chunk);
    for (size_t i = 0; i < n; i++) chunk[i] = (uint8_t)((fs->big_off + i) * 7);
    size_t acc = 0;
    int rv = wr_quic_stream_write(c, fs->sid, chunk, n, fs->big_left == n, &acc);
    fs->big_left -= acc;
    fs->big_off += acc;
    if (rv == WR_AGAIN) return;
    CHECK_EQ(rv, WR_OK);
  }
}

static void cl_writable(wr_quic_conn *c, int64_t sid, void *user, void *suser) {
  fstream *fs = suser;
  if (fs && fs->big_left) big_pump(c, fs);
}

static void reset_cb(uv_timer_t *t) {
  wr_quic_stream_reset(w.reset_conn, w.reset_sid, 0);
  wr_quic_stream_stop_sending(w.reset_conn, w.reset_sid, 0);
}

static const wr_http_header ct_text = {"Content-Type", 12, "text/plain", 10};

/* The request is decoded: act by path. */
static void serve(wr_quic_conn *c, fstream *fs) {
  const char *p = fs->path;
  pthread_mutex_lock(&mu);
  fs->fc->served++;
  pthread_mutex_unlock(&mu);
  if (!strcmp(p, "/index.html") || !strcmp(p, "/hello")) {
    wr_http_header h[2] = {ct_text, {"Content-Length", 14, "18", 2}};
    respond(c, fs, NULL, 200, h, 2, "hello from origin\n", 18, 1);
    /* cloudflared: CancelRead(0) then Close(). */
    if (!fs->got_fin) wr_quic_stream_stop_sending(c, fs->sid, 0);
  } else if (!strcmp(p, "/nocl")) {
    respond(c, fs, NULL, 200, &ct_text, 1, "part one, ", 10, 0);
    size_t acc;
    CHECK_EQ(wr_quic_stream_write(c, fs->sid, (const uint8_t *)"part two", 8, 1, &acc), 0);
  } else if (!strcmp(p, "/err")) {
    respond(c, fs, "Unable to reach the origin service: origin exploded", 0, NULL, 0, NULL, 0, 1);
  } else if (!strcmp(p, "/reset")) {
    respond(c, fs, NULL, 200, &ct_text, 1, "partial", 7, 0);
    w.reset_conn = c;
    w.reset_sid = fs->sid;
    uv_timer_start(&w.reset_timer, reset_cb, 150, 0);
  } else if (!strcmp(p, "/short")) {
    wr_http_header h[2] = {ct_text, {"Content-Length", 14, "100", 3}};
    respond(c, fs, NULL, 200, h, 2, "only ten..", 10, 1);
  } else if (!strcmp(p, "/early")) {
    wr_http_header h[2] = {ct_text, {"Content-Length", 14, "5", 1}};
    respond(c, fs, NULL, 200, h, 2, "early", 5, 1);
    if (!fs->got_fin) wr_quic_stream_stop_sending(c, fs->sid, 0);
  } else if (!strcmp(p, "/big")) {
    char cl[24];
    snprintf(cl, sizeof(cl), "%u", BIG_SIZE);
    wr_http_header h[2] = {{"Content-Type", 12, "application/octet-stream", 24},
                           {"Content-Length", 14, cl, strlen(cl)}};
    respond(c, fs, NULL, 200, h, 2, NULL, 0, 0);
    fs->big_left = BIG_SIZE;
    big_pump(c, fs);
  } else if (!strcmp(p, "/hang")) {
    pthread_mutex_lock(&mu);
    w.hang_fc = fs->fc; /* never answered */
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
  } else if (!strcmp(p, "/ws")) {
    wr_http_header h[2] = {{"Upgrade", 7, "websocket", 9}, {"Connection", 10, "Upgrade", 7}};
    respond(c, fs, NULL, 101, h, 2, NULL, 0, 0);
  }
  /* /echo and /sink answer at the request's FIN. */
}

static void record(fstream *fs, const wr_connect_request *req, size_t used) {
  pthread_mutex_lock(&mu);
  obs.count++;
  snprintf(obs.dest, sizeof(obs.dest), "%.*s", (int)req->dest_len, req->dest);
  obs.type = req->type;
  obs.nmeta = req->nmeta < SEEN_MAX_META ? req->nmeta : SEEN_MAX_META;
  for (size_t i = 0; i < obs.nmeta; i++) {
    snprintf(obs.keys[i], sizeof(obs.keys[i]), "%.*s", (int)req->meta[i].key_len, req->meta[i].key);
    snprintf(obs.vals[i], sizeof(obs.vals[i]), "%.*s", (int)req->meta[i].val_len, req->meta[i].val);
  }
  free(obs.raw);
  obs.raw_len = 8 + used;
  obs.raw = malloc(obs.raw_len);
  memcpy(obs.raw, fs->in.data, obs.raw_len);
  free(obs.body);
  obs.body = NULL;
  obs.body_len = 0;
  obs.body_done = 0;
  obs.sunk = 0;
  pthread_mutex_unlock(&mu);
}

static int cl_data(wr_quic_conn *c, int64_t sid, const uint8_t *d, size_t len, int fin,
                   void *user, void *suser) {
  fconn *fc = user;
  if (fc->reg && sid == wr_registration_stream_id(fc->reg)) {
    wr_registration_stream_data(fc->reg, sid, d, len, fin);
    return 0;
  }
  fstream *fs = suser;
  wr_quic_stream_consume(c, sid, len);
  if (!fs) return 0;
  if (fin) fs->got_fin = 1;
  if (!strcmp(fs->path, "/sink") && fs->decoded) {
    pthread_mutex_lock(&mu);
    obs.sunk += len;
    pthread_mutex_unlock(&mu);
  } else if (!strcmp(fs->path, "/ws") && fs->decoded) {
    size_t acc;
    if (len || fin) wr_quic_stream_write(c, sid, d, len, fin, &acc); /* echo */
    return 0;
  } else {
    CHECK_EQ(wr_buf_append(&fs->in, d, len), 0);
  }
  if (!fs->decoded) {
    if (fs->in.len < 8) return 0;
    wr_connect_request req;
    size_t used = 0;
    int rv = wr_connect_request_decode_alloc(fs->in.data + 8, fs->in.len - 8, NULL, NULL, 0, &req,
                                             &used);
    if (rv == WR_AGAIN) return 0;
    CHECK_EQ(rv, 0);
    CHECK_EQ(wr_preamble_classify(fs->in.data, 8, &(size_t){0}, NULL), WR_PREAMBLE_DATA);
    record(fs, &req, used);
    /* dest "http://host/path?q": the path picks the behaviour. */
    const char *s = strstr(obs.dest, "://");
    s = s ? strchr(s + 3, '/') : NULL;
    snprintf(fs->path, sizeof(fs->path), "%s", s ? s : "/");
    char *q = strchr(fs->path, '?');
    if (q) *q = '\0';
    wr_connect_request_free(NULL, &req);
    fs->decoded = 1;
    fs->body_off = 8 + used;
    if (!strcmp(fs->path, "/sink")) {
      pthread_mutex_lock(&mu);
      obs.sunk = fs->in.len - fs->body_off;
      pthread_mutex_unlock(&mu);
    }
    if (!strcmp(fs->path, "/ws") && fs->in.len > fs->body_off) {
      size_t acc;
      wr_quic_stream_write(c, sid, fs->in.data + fs->body_off, fs->in.len - fs->body_off, 0, &acc);
    }
    serve(c, fs);
  }
  if (fs->got_fin && !fs->responded) {
    if (!strcmp(fs->path, "/echo")) {
      size_t blen = fs->in.len - fs->body_off;
      pthread_mutex_lock(&mu);
      free(obs.body);
      obs.body = malloc(blen + 1);
      memcpy(obs.body, fs->in.data + fs->body_off, blen);
      obs.body_len = blen;
      obs.body_done = 1;
      pthread_mutex_unlock(&mu);
      char cl[24];
      snprintf(cl, sizeof(cl), "%zu", blen);
      wr_http_header h[2] = {{"Content-Type", 12, "application/octet-stream", 24},
                             {"Content-Length", 14, cl, strlen(cl)}};
      respond(c, fs, NULL, 200, h, 2, (const char *)fs->in.data + fs->body_off, blen, 1);
    } else if (!strcmp(fs->path, "/sink")) {
      char txt[32];
      pthread_mutex_lock(&mu);
      int n = snprintf(txt, sizeof(txt), "%llu", (unsigned long long)obs.sunk);
      pthread_mutex_unlock(&mu);
      respond(c, fs, NULL, 200, &ct_text, 1, txt, (size_t)n, 1);
    }
  }
  return 0;
}

static void cl_stream_close(wr_quic_conn *c, int64_t sid, int has_code, uint64_t code, void *user,
                            void *suser) {
  fstream *fs = suser;
  if (!fs) return;
  for (fstream **pp = &w.streams; *pp; pp = &(*pp)->next) {
    if (*pp == fs) {
      *pp = fs->next;
      break;
    }
  }
  fstream_free(fs);
}

/* ---- loop thread ------------------------------------------------------------------ */

static wr_quic_config client_cfg(void) {
  wr_quic_config c = {0};
  c.ca_file = pki.ca;
  return c;
}

/* Dials the edge as fake connector connection |i| (loop thread). */
static int fconn_start(int i, uint8_t conn_index) {
  static wr_quic_callbacks ccbs;
  memset(&ccbs, 0, sizeof(ccbs));
  ccbs.on_handshake_done = cl_hs;
  ccbs.on_stream_open = cl_stream_open;
  ccbs.on_stream_data = cl_data;
  ccbs.on_stream_writable = cl_writable;
  ccbs.on_stream_close = cl_stream_close;
  ccbs.on_close = cl_close;
  wr_quic_config ccfg = client_cfg();
  w.fc[i].conn_index = conn_index;
  return wr_quic_endpoint_client(&w.loop, w.ctls, &ccfg, (struct sockaddr *)&w.edge_addr, &ccbs,
                                 &w.fc[i], &w.fc[i].ep, &w.fc[i].conn);
}

static void stop_cb(uv_async_t *a) {
  w.final_stats = *wr_visitor_get_stats(w.v);
  wr_visitor_free(w.v);
  wr_visitor_free(w.lv);
  wr_visitor_free(w.rv);
  for (int i = 0; i < MAX_FCONNS; i++)
    if (w.fc[i].ep) wr_quic_endpoint_free(w.fc[i].ep);
  wr_quic_endpoint_free(w.sep);
  uv_close((uv_handle_t *)&w.stop, NULL);
  uv_close((uv_handle_t *)&w.call, NULL);
  uv_close((uv_handle_t *)&w.reset_timer, NULL);
}

static void call_cb(uv_async_t *a) {
  w.call_fn();
  pthread_mutex_lock(&mu);
  w.call_done = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

/* Runs |fn| on the loop thread and waits for it. */
static void on_loop(void (*fn)(void)) {
  pthread_mutex_lock(&mu);
  w.call_fn = fn;
  w.call_done = 0;
  pthread_mutex_unlock(&mu);
  uv_async_send(&w.call);
  pthread_mutex_lock(&mu);
  while (!w.call_done) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
}

/* Waits (up to 5 s) until *flag (under mu) is non-zero; returns it. */
static int wait_flag(const int *flag) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 5;
  pthread_mutex_lock(&mu);
  while (!*flag && pthread_cond_timedwait(&cv, &mu, &dl) == 0) {
  }
  int v = *flag;
  pthread_mutex_unlock(&mu);
  return v;
}

static void *loop_main(void *arg) {
  (void)arg;
  uv_run(&w.loop, UV_RUN_DEFAULT);
  return NULL;
}

static int group_setup(void **state) {
  char err[256];
  static const char *const dns[] = {"quic.cftunnel.com", "localhost"};
  if (unit_pki_make(&pki, "wr-vis", "quic.cftunnel.com", dns, 2) != 0) return -1;
  snprintf(db_path, sizeof(db_path), "%s/edge.db", pki.dir);
  if (wr_store_open(db_path, WR_STORE_CREATE, &store, err, sizeof(err)) != 0) return -1;
  if (wr_store_account_create(store, "test", "acme", &account) != 0) return -1;
  if (wr_store_zone_create(store, "test", account.id, "example.test", &zone) != 0) return -1;
  if (wr_store_tunnel_create(store, "test", account.id, "t1", NULL, 0, &t1) != 0) return -1;
  if (wr_store_tunnel_create(store, "test", account.id, "t2", NULL, 0, &t2) != 0) return -1;
  static const char *const r1[] = {"app.example.test", "*.w.example.test"};
  for (size_t i = 0; i < 2; i++)
    if (wr_store_route_dns_add(store, "test", NULL, t1.id, r1[i], 0, NULL, NULL) != 0) return -1;
  if (wr_store_route_dns_add(store, "test", NULL, t2.id, "dead.example.test", 0, NULL, NULL) != 0)
    return -1;
  wr_log_set_level(getenv("WR_TEST_DEBUG") ? WR_LOG_DEBUG : WR_LOG_ERROR);

  /* The world: edge (tunnel server + visitor) and the fake connector. */
  memset(&w, 0, sizeof(w));
  if (uv_loop_init(&w.loop) != 0) return -1;
  wr_quic_config ccfg = client_cfg(), scfg = {0};
  scfg.cert_file = pki.cert;
  scfg.key_file = pki.key;
  if (wr_quic_tls_new(WR_QUIC_CLIENT, &ccfg, &w.ctls, NULL, 0) != 0) return -1;
  if (wr_quic_tls_new(WR_QUIC_SERVER, &scfg, &w.stls, NULL, 0) != 0) return -1;
  wr_tunnel_server_config tc = {.store = store};
  if (wr_tunnel_server_new(&tc, &w.ts) != 0) return -1;
  struct sockaddr_in bind;
  uv_ip4_addr("127.0.0.1", 0, &bind);
  if (wr_tunnel_server_listen(w.ts, &w.loop, w.stls, &scfg, (struct sockaddr *)&bind, &w.sep) != 0)
    return -1;
  if (wr_quic_endpoint_addr(w.sep, &w.edge_addr) != 0) return -1;
  wr_visitor_config vc = {.store = store, .ts = w.ts, .header_timeout_ms = 1000};
  if (wr_visitor_listen(&w.loop, &vc, (struct sockaddr *)&bind, &w.v) != 0) return -1;
  struct sockaddr_storage va;
  if (wr_visitor_addr(w.v, &va) != 0) return -1;
  w.port = ntohs(((struct sockaddr_in *)&va)->sin_port);
  wr_visitor_config lc = {.store = store, .ts = w.ts, .header_timeout_ms = 1000,
                          .max_conns = 20, .max_conns_per_source = 10, .reserve_conns = 4,
                          .requests_per_second_per_source = WR_VISITOR_OFF};
  if (wr_visitor_listen(&w.loop, &lc, (struct sockaddr *)&bind, &w.lv) != 0) return -1;
  if (wr_visitor_addr(w.lv, &va) != 0) return -1;
  w.lport = ntohs(((struct sockaddr_in *)&va)->sin_port);
  wr_visitor_config rc = {.store = store, .ts = w.ts, .header_timeout_ms = 1000,
                          .requests_per_second_per_source = 1, .request_burst_per_source = 3,
                          .max_sources = 2};
  if (wr_visitor_listen(&w.loop, &rc, (struct sockaddr *)&bind, &w.rv) != 0) return -1;
  if (wr_visitor_addr(w.rv, &va) != 0) return -1;
  w.rport = ntohs(((struct sockaddr_in *)&va)->sin_port);

  memset(&w.cred, 0, sizeof(w.cred));
  snprintf(w.cred.account_tag, sizeof(w.cred.account_tag), "%s", account.id);
  memcpy(w.cred.secret, t1.secret, t1.secret_len);
  w.cred.secret_len = t1.secret_len;
  if (wr_uuid_parse(t1.id, strlen(t1.id), &w.cred.tunnel_id) != 0) return -1;
  w.cred.has_tunnel_id = 1;
  wr_uuid_random(&w.connector_id);
  if (fconn_start(0, 0) != 0) return -1;
  uv_async_init(&w.loop, &w.stop, stop_cb);
  uv_async_init(&w.loop, &w.call, call_cb);
  uv_timer_init(&w.loop, &w.reset_timer);
  if (pthread_create(&w.thread, NULL, loop_main, NULL) != 0) return -1;
  return wait_flag(&w.fc[0].registered) == 1 ? 0 : -1;
}

static int group_teardown(void **state) {
  usleep(200000); /* let the last visitor's close reach the edge */
  uv_async_send(&w.stop);
  pthread_join(w.thread, NULL);
  int ok = uv_loop_close(&w.loop) == 0;
  /* Every request was answered and no stream is left behind. */
  ok &= w.final_stats.active_streams == 0 && conn_failures == 0;
  ok &= w.final_stats.no_route >= 1 && w.final_stats.no_connector >= 1;
  ok &= w.final_stats.responses_by_class[2] >= 10 && w.final_stats.responses_by_class[4] >= 3;
  if (!ok)
    fprintf(stderr, "teardown: streams=%llu no_route=%llu no_connector=%llu 2xx=%llu 4xx=%llu\n",
            (unsigned long long)w.final_stats.active_streams,
            (unsigned long long)w.final_stats.no_route,
            (unsigned long long)w.final_stats.no_connector,
            (unsigned long long)w.final_stats.responses_by_class[2],
            (unsigned long long)w.final_stats.responses_by_class[4]);
  wr_tunnel_server_free(w.ts);
  for (int i = 0; i < MAX_FCONNS; i++) wr_registration_free(w.fc[i].reg);
  while (w.streams) {
    fstream *fs = w.streams;
    w.streams = fs->next;
    fstream_free(fs);
  }
  wr_quic_tls_free(w.ctls);
  wr_quic_tls_free(w.stls);
  free(obs.raw);
  free(obs.body);
  wr_store_close(store);
  return unit_rm_rf(pki.dir) == 0 && ok ? 0 : -1;
}

/* ---- the visitor: blocking sockets --------------------------------------------- */

typedef struct client {
  int fd;
  uint8_t *buf;
  size_t len, cap;
  int eof;
} client;

typedef struct resp {
  int status;
  char head[8192];
  uint8_t *body;
  size_t body_len;
  int chunked, has_cl, conn_close;
  int complete; /* body framing ended properly (close-delimited: at EOF) */
} resp;

static void client_open(client *cl) {
  memset(cl, 0, sizeof(*cl));
  cl->cap = BIG_SIZE + 65536;
  cl->buf = malloc(cl->cap);
  cl->fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(cl->fd >= 0);
  struct timeval tv = {5, 0};
  setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", w.port, &a);
  assert_int_equal(connect(cl->fd, (struct sockaddr *)&a, sizeof(a)), 0);
}

static void client_close(client *cl) {
  close(cl->fd);
  free(cl->buf);
}

static void client_send(client *cl, const void *d, size_t n) {
  const char *p = d;
  while (n) {
    ssize_t k = send(cl->fd, p, n, MSG_NOSIGNAL);
    assert_true(k > 0);
    p += k;
    n -= (size_t)k;
  }
}

static void client_sends(client *cl, const char *s) { client_send(cl, s, strlen(s)); }

/* Reads more; returns bytes read, 0 at EOF (or reset), -1 on timeout. */
static ssize_t client_fill(client *cl) {
  if (cl->eof) return 0;
  assert_true(cl->len < cl->cap);
  ssize_t k = recv(cl->fd, cl->buf + cl->len, cl->cap - cl->len, 0);
  if (k > 0) {
    cl->len += (size_t)k;
    return k;
  }
  if (k == 0 || errno == ECONNRESET) {
    cl->eof = 1;
    return 0;
  }
  return -1;
}

static void client_drop(client *cl, size_t n) {
  memmove(cl->buf, cl->buf + n, cl->len - n);
  cl->len -= n;
}

static const char *find_header(const char *head, const char *name, char *val, size_t vlen) {
  size_t nl = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
    const char *line = p + 2;
    if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *v = line + nl + 1;
      while (*v == ' ') v++;
      const char *e = strstr(v, "\r\n");
      snprintf(val, vlen, "%.*s", (int)(e - v), v);
      return val;
    }
  }
  return NULL;
}

/* Reads one response (skipping 100 Continue unless |want_interim|). */
static int read_resp(client *cl, resp *r, int head_req, int want_interim) {
  memset(r, 0, sizeof(*r));
  char *e;
  for (;;) {
    while (!(cl->len >= 4 && (e = memmem(cl->buf, cl->len, "\r\n\r\n", 4)))) {
      if (client_fill(cl) <= 0) return -1;
    }
    size_t hl = (size_t)(e - (char *)cl->buf) + 4;
    assert_true(hl < sizeof(r->head));
    memcpy(r->head, cl->buf, hl);
    r->head[hl] = '\0';
    client_drop(cl, hl);
    assert_int_equal(sscanf(r->head, "HTTP/1.%*d %d", &r->status), 1);
    if (r->status == 100 && !want_interim) continue;
    break;
  }
  char v[256];
  r->chunked = find_header(r->head, "Transfer-Encoding", v, sizeof(v)) && !strcasecmp(v, "chunked");
  r->conn_close = find_header(r->head, "Connection", v, sizeof(v)) && !strcasecmp(v, "close");
  size_t cl_val = 0;
  if (find_header(r->head, "Content-Length", v, sizeof(v))) {
    r->has_cl = 1;
    cl_val = (size_t)strtoull(v, NULL, 10);
  }
  r->body = malloc(BIG_SIZE + 1);
  if (head_req || r->status == 204 || r->status == 304 || r->status < 200) {
    r->complete = 1;
    return 0;
  }
  if (r->chunked) {
    for (;;) {
      char *le;
      while (!(le = memmem(cl->buf, cl->len, "\r\n", 2)))
        if (client_fill(cl) <= 0) return 0; /* broken */
      size_t sz = strtoul((char *)cl->buf, NULL, 16);
      size_t ll = (size_t)(le - (char *)cl->buf) + 2;
      while (cl->len < ll + sz + 2)
        if (client_fill(cl) <= 0) return 0;
      if (sz == 0) {
        client_drop(cl, ll + 2);
        r->complete = 1;
        return 0;
      }
      memcpy(r->body + r->body_len, cl->buf + ll, sz);
      r->body_len += sz;
      client_drop(cl, ll + sz + 2);
    }
  }
  if (r->has_cl) {
    while (cl->len < cl_val)
      if (client_fill(cl) <= 0) break;
    size_t n = cl->len < cl_val ? cl->len : cl_val;
    memcpy(r->body, cl->buf, n);
    r->body_len = n;
    client_drop(cl, n);
    r->complete = n == cl_val;
    return 0;
  }
  while (client_fill(cl) > 0) {
  }
  memcpy(r->body, cl->buf, cl->len);
  r->body_len = cl->len;
  client_drop(cl, cl->len);
  r->complete = cl->eof;
  return 0;
}

static void resp_free(resp *r) { free(r->body); }

/* 1 once the server closed the connection (EOF within the timeout). */
static int server_closed(client *cl) {
  while (client_fill(cl) > 0) {
  }
  return cl->eof;
}

static int body_is(const resp *r, const char *s) {
  return r->body_len == strlen(s) && memcmp(r->body, s, r->body_len) == 0;
}

static const char *seen_meta(const char *key) {
  for (size_t i = obs.nmeta; i-- > 0;)
    if (!strcmp(obs.keys[i], key)) return obs.vals[i];
  return NULL;
}

static int seen_meta_count(const char *key) {
  int n = 0;
  for (size_t i = 0; i < obs.nmeta; i++) n += !strcmp(obs.keys[i], key);
  return n;
}

/* One request on a fresh connection. */
static void exchange(const char *req, resp *r, int head_req) {
  client cl;
  client_open(&cl);
  client_sends(&cl, req);
  assert_int_equal(read_resp(&cl, r, head_req, 0), 0);
  client_close(&cl);
}

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
    resp_free(&r);
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
  resp_free(&r);
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
    resp_free(&r);
  }
  /* The burst of 3 (and a refill, on a very slow machine) went through. */
  assert_true(n404 >= 3 && n404 < 10);
  assert_int_equal(r.status, 429);
  assert_non_null(find_header(r.head, "Retry-After", v, sizeof(v)));
  assert_true(atoi(v) >= 1);
  assert_false(r.conn_close); /* a first 429 keeps the connection */
  resp_free(&r);
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 429); /* pushing on */
  assert_true(r.conn_close);
  resp_free(&r);
  assert_true(server_closed(&cl));
  client_close(&cl);
  /* Another connection of the same source: 429 (once a token that came
   * back meanwhile is spent), but it is kept. */
  int fd = lim_connect("127.0.0.20", w.rport), status = 0;
  for (int i = 0; i < 10 && (status = lim_request(fd, lim_404, &r)) == 404; i++) resp_free(&r);
  assert_int_equal(status, 429);
  assert_false(r.conn_close);
  resp_free(&r);
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

/* ---- tests -------------------------------------------------------------------------- */

static void test_get(void **state) {
  (void)state;
  resp r;
  exchange("GET /index.html HTTP/1.1\r\nHost: app.example.test\r\nUser-Agent: curl/7.88.1\r\n"
           "Accept: */*\r\nX-Forwarded-For: 6.6.6.6\r\nCf-Connecting-IP: 6.6.6.6\r\n"
           "X-Forwarded-Proto: gopher\r\n\r\n",
           &r, 0);
  assert_int_equal(r.status, 200);
  assert_true(r.complete);
  assert_true(body_is(&r, "hello from origin\n"));
  char v[64];
  assert_non_null(find_header(r.head, "Content-Type", v, sizeof(v)));
  assert_string_equal(v, "text/plain");
  assert_non_null(find_header(r.head, "Content-Length", v, sizeof(v)));
  assert_string_equal(v, "18");
  resp_free(&r);

  pthread_mutex_lock(&mu);
  assert_string_equal(obs.dest, "http://app.example.test/index.html");
  assert_int_equal(obs.type, WR_CONNECT_HTTP);
  assert_string_equal(seen_meta("HttpMethod"), "GET");
  assert_string_equal(seen_meta("HttpHost"), "app.example.test");
  assert_int_equal(seen_meta_count("HttpHeader:X-Forwarded-For"), 1);
  assert_string_equal(seen_meta("HttpHeader:X-Forwarded-For"), "127.0.0.1");
  assert_int_equal(seen_meta_count("HttpHeader:Cf-Connecting-Ip"), 1);
  assert_string_equal(seen_meta("HttpHeader:Cf-Connecting-Ip"), "127.0.0.1");
  assert_int_equal(seen_meta_count("HttpHeader:X-Forwarded-Proto"), 1);
  assert_string_equal(seen_meta("HttpHeader:X-Forwarded-Proto"), "http");

  /* The stream bytes decode like the captured cloudflared-edge GET: same
   * preamble, dest form, type, and the same leading metadata. */
  size_t vlen, used;
  uint8_t *vec = unit_read_vector("quic/http-get.from-edge.bin", &vlen);
  assert_memory_equal(obs.raw, vec, 8);
  wr_connect_request a, b;
  assert_int_equal(wr_connect_request_decode_alloc(vec + 8, vlen - 8, NULL, NULL, 0, &a, &used), 0);
  assert_int_equal(
      wr_connect_request_decode_alloc(obs.raw + 8, obs.raw_len - 8, NULL, NULL, 0, &b, &used), 0);
  assert_int_equal(used, obs.raw_len - 8);
  assert_int_equal(a.type, b.type);
  assert_int_equal(a.dest_len, b.dest_len);
  assert_memory_equal(a.dest, b.dest, a.dest_len);
  assert_true(b.nmeta >= a.nmeta);
  for (size_t i = 0; i < a.nmeta; i++) {
    assert_int_equal(a.meta[i].key_len, b.meta[i].key_len);
    assert_memory_equal(a.meta[i].key, b.meta[i].key, a.meta[i].key_len);
    assert_int_equal(a.meta[i].val_len, b.meta[i].val_len);
    assert_memory_equal(a.meta[i].val, b.meta[i].val, a.meta[i].val_len);
  }
  wr_connect_request_free(NULL, &a);
  wr_connect_request_free(NULL, &b);
  free(vec);
  pthread_mutex_unlock(&mu);
}

static void test_head_and_port(void **state) {
  (void)state;
  resp r;
  /* Host with a port and upper case routes; HEAD gets the head only. */
  exchange("HEAD /hello HTTP/1.1\r\nHost: APP.example.test:8080\r\n\r\n", &r, 1);
  assert_int_equal(r.status, 200);
  char v[64];
  assert_non_null(find_header(r.head, "Content-Length", v, sizeof(v)));
  assert_string_equal(v, "18");
  resp_free(&r);
  pthread_mutex_lock(&mu);
  assert_string_equal(obs.dest, "http://app.example.test/hello");
  assert_string_equal(seen_meta("HttpMethod"), "HEAD");
  assert_string_equal(seen_meta("HttpHost"), "app.example.test:8080");
  pthread_mutex_unlock(&mu);
}

static void test_wildcard_route(void **state) {
  (void)state;
  resp r;
  exchange("GET /hello?x=1 HTTP/1.1\r\nHost: deep.sub.w.example.test\r\n\r\n", &r, 0);
  assert_int_equal(r.status, 200);
  assert_true(body_is(&r, "hello from origin\n"));
  resp_free(&r);
  pthread_mutex_lock(&mu);
  assert_string_equal(obs.dest, "http://deep.sub.w.example.test/hello?x=1");
  pthread_mutex_unlock(&mu);
}

static void test_post_length(void **state) {
  (void)state;
  resp r;
  exchange("POST /echo HTTP/1.1\r\nHost: app.example.test\r\nContent-Type: text/plain\r\n"
           "Content-Length: 10, 10\r\n\r\nhello body",
           &r, 0);
  assert_int_equal(r.status, 200);
  assert_true(body_is(&r, "hello body"));
  resp_free(&r);
  pthread_mutex_lock(&mu);
  assert_string_equal(seen_meta("HttpMethod"), "POST");
  assert_int_equal(seen_meta_count("HttpHeader:Content-Length"), 1);
  assert_string_equal(seen_meta("HttpHeader:Content-Length"), "10"); /* normalised */
  assert_null(seen_meta("HttpHeader:Transfer-Encoding"));
  assert_true(obs.body_done);
  assert_int_equal(obs.body_len, 10);
  assert_memory_equal(obs.body, "hello body", 10);
  pthread_mutex_unlock(&mu);
}

static void test_post_chunked(void **state) {
  (void)state;
  resp r;
  exchange("POST /echo HTTP/1.1\r\nHost: app.example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
           &r, 0);
  assert_int_equal(r.status, 200);
  assert_true(body_is(&r, "hello world"));
  resp_free(&r);
  pthread_mutex_lock(&mu);
  assert_string_equal(seen_meta("HttpHeader:Transfer-Encoding"), "chunked");
  assert_null(seen_meta("HttpHeader:Content-Length"));
  assert_int_equal(obs.body_len, 11);
  assert_memory_equal(obs.body, "hello world", 11);
  pthread_mutex_unlock(&mu);
}

static void test_expect_continue(void **state) {
  (void)state;
  client cl;
  resp r;
  client_open(&cl);
  client_sends(&cl, "PUT /echo HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 4\r\n"
                    "Expect: 100-continue\r\n\r\n");
  assert_int_equal(read_resp(&cl, &r, 0, 1), 0);
  assert_int_equal(r.status, 100);
  resp_free(&r);
  client_sends(&cl, "data");
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 200);
  assert_true(body_is(&r, "data"));
  resp_free(&r);
  client_close(&cl);
  pthread_mutex_lock(&mu);
  assert_null(seen_meta("HttpHeader:Expect"));
  pthread_mutex_unlock(&mu);
}

static void test_response_chunked(void **state) {
  (void)state;
  resp r;
  exchange("GET /nocl HTTP/1.1\r\nHost: app.example.test\r\n\r\n", &r, 0);
  assert_int_equal(r.status, 200);
  assert_true(r.chunked);
  assert_false(r.has_cl);
  assert_true(r.complete);
  assert_true(body_is(&r, "part one, part two"));
  resp_free(&r);

  /* HTTP/1.0: close-delimited. */
  client cl;
  client_open(&cl);
  client_sends(&cl, "GET /nocl HTTP/1.0\r\nHost: app.example.test\r\n\r\n");
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 200);
  assert_false(r.chunked);
  assert_true(r.complete);
  assert_true(body_is(&r, "part one, part two"));
  resp_free(&r);
  client_close(&cl);
}

static void test_no_route(void **state) {
  (void)state;
  client cl;
  resp r;
  client_open(&cl);
  client_sends(&cl, "GET / HTTP/1.1\r\nHost: nope.example.test\r\n\r\n");
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 404);
  r.body[r.body_len] = '\0';
  assert_non_null(strstr((char *)r.body, "no route for host nope.example.test"));
  resp_free(&r);
  /* The connection stays usable. */
  client_sends(&cl, "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n");
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 200);
  resp_free(&r);
  client_close(&cl);
}

static void test_no_connector(void **state) {
  (void)state;
  resp r;
  struct timespec ts0, ts1;
  clock_gettime(CLOCK_MONOTONIC, &ts0);
  exchange("GET / HTTP/1.1\r\nHost: dead.example.test\r\n\r\n", &r, 0);
  clock_gettime(CLOCK_MONOTONIC, &ts1);
  assert_int_equal(r.status, 502);
  r.body[r.body_len] = '\0';
  assert_non_null(strstr((char *)r.body, "No connector is connected for tunnel"));
  assert_non_null(strstr((char *)r.body, t2.id));
  assert_true(ts1.tv_sec - ts0.tv_sec < 2); /* immediately */
  resp_free(&r);
}

static void test_connector_error(void **state) {
  (void)state;
  resp r;
  exchange("GET /err HTTP/1.1\r\nHost: app.example.test\r\n\r\n", &r, 0);
  assert_int_equal(r.status, 502);
  r.body[r.body_len] = '\0';
  assert_non_null(strstr((char *)r.body, "origin exploded"));
  resp_free(&r);
}

static void test_reset_mid_body(void **state) {
  (void)state;
  client cl;
  resp r;
  client_open(&cl);
  client_sends(&cl, "GET /reset HTTP/1.1\r\nHost: app.example.test\r\n\r\n");
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 200);
  assert_true(r.chunked);
  assert_false(r.complete); /* no terminating chunk */
  assert_true(body_is(&r, "partial"));
  assert_true(cl.eof);
  resp_free(&r);
  client_close(&cl);

  /* Content-Length body that ends short: the connection closes early. */
  client_open(&cl);
  client_sends(&cl, "GET /short HTTP/1.1\r\nHost: app.example.test\r\n\r\n");
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 200);
  assert_false(r.complete);
  assert_int_equal(r.body_len, 10);
  resp_free(&r);
  client_close(&cl);
}

static void test_keepalive(void **state) {
  (void)state;
  client cl;
  resp r;
  client_open(&cl);
  for (int i = 0; i < 3; i++) {
    client_sends(&cl, i == 1 ? "GET /nocl HTTP/1.1\r\nHost: app.example.test\r\n\r\n"
                             : "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n");
    assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
    assert_int_equal(r.status, 200);
    assert_true(r.complete);
    assert_false(r.conn_close);
    assert_true(body_is(&r, i == 1 ? "part one, part two" : "hello from origin\n"));
    resp_free(&r);
  }
  /* Connection: close is honoured. */
  client_sends(&cl, "GET /hello HTTP/1.1\r\nHost: app.example.test\r\nConnection: close\r\n\r\n");
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 200);
  assert_true(r.conn_close);
  resp_free(&r);
  assert_true(server_closed(&cl));
  client_close(&cl);
}

static void test_pipelined(void **state) {
  (void)state;
  client cl;
  resp r;
  client_open(&cl);
  client_sends(&cl,
               "GET /nocl HTTP/1.1\r\nHost: app.example.test\r\n\r\n"
               "POST /echo HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 3\r\n\r\nabc"
               "GET /hello HTTP/1.1\r\nHost: nope.example.test\r\n\r\n"
               "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n");
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 200);
  assert_true(body_is(&r, "part one, part two"));
  resp_free(&r);
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 200);
  assert_true(body_is(&r, "abc"));
  resp_free(&r);
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 404);
  resp_free(&r);
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 200);
  assert_true(body_is(&r, "hello from origin\n"));
  resp_free(&r);
  client_close(&cl);
}

static void test_bad_requests(void **state) {
  (void)state;
  client cl;
  resp r;
  client_open(&cl);
  client_sends(&cl, "POST /echo HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 5\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 400);
  assert_true(r.conn_close);
  resp_free(&r);
  assert_true(server_closed(&cl));
  client_close(&cl);

  /* 40 KiB of header. */
  size_t big = 40 * 1024;
  char *req = malloc(big + 128);
  int n = snprintf(req, 128, "GET / HTTP/1.1\r\nHost: app.example.test\r\nX-Big: ");
  memset(req + n, 'a', big);
  memcpy(req + n + big, "\r\n\r\n", 5);
  client_open(&cl);
  client_sends(&cl, req);
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 431);
  resp_free(&r);
  client_close(&cl);
  free(req);

  /* No Host on 1.1, a bad Host, a CONNECT. */
  static const char *const bad[] = {
      "GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: app.example.test:80x\r\n\r\n",
      "CONNECT app.example.test:443 HTTP/1.1\r\nHost: app.example.test:443\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    exchange(bad[i], &r, 0);
    assert_int_equal(r.status, 400);
    resp_free(&r);
  }
}

static void test_header_timeout(void **state) {
  (void)state;
  client cl;
  resp r;
  client_open(&cl);
  client_sends(&cl, "GET / HTTP/1.1\r\nHost: app.exa"); /* and nothing more */
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 408);
  resp_free(&r);
  assert_true(server_closed(&cl));
  client_close(&cl);
}

static void test_early_response(void **state) {
  (void)state;
  client cl;
  resp r;
  client_open(&cl);
  char head[256];
  snprintf(head, sizeof(head),
           "POST /early HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: %u\r\n\r\n",
           EARLY_BODY);
  client_sends(&cl, head);
  uint8_t *body = calloc(1, EARLY_BODY);
  client_send(&cl, body, EARLY_BODY);
  free(body);
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 200);
  assert_true(body_is(&r, "early"));
  resp_free(&r);
  /* The rest of the body was dropped; the connection goes on. */
  client_sends(&cl, "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n");
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 200);
  assert_true(body_is(&r, "hello from origin\n"));
  resp_free(&r);
  client_close(&cl);
}

/* Bodies are streamed both ways with flow control: 8 MiB down, 8 MiB up. */
static void test_big_bodies(void **state) {
  (void)state;
  client cl;
  resp r;
  client_open(&cl);
  client_sends(&cl, "GET /big HTTP/1.1\r\nHost: app.example.test\r\n\r\n");
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 200);
  assert_true(r.complete);
  assert_int_equal(r.body_len, BIG_SIZE);
  for (size_t i = 0; i < BIG_SIZE; i += 4093) assert_int_equal(r.body[i], (uint8_t)(i * 7));
  resp_free(&r);

  char head[256];
  snprintf(head, sizeof(head),
           "POST /sink HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: %u\r\n\r\n", BIG_SIZE);
  client_sends(&cl, head);
  uint8_t *body = calloc(1, 1u << 20);
  for (int i = 0; i < 8; i++) client_send(&cl, body, 1u << 20);
  free(body);
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 200);
  char want[32];
  snprintf(want, sizeof(want), "%u", BIG_SIZE);
  assert_true(body_is(&r, want));
  resp_free(&r);
  client_close(&cl);
}

static void test_websocket(void **state) {
  (void)state;
  client cl;
  resp r;
  client_open(&cl);
  client_sends(&cl, "GET /ws HTTP/1.1\r\nHost: app.example.test\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n");
  assert_int_equal(read_resp(&cl, &r, 0, 1), 0);
  assert_int_equal(r.status, 101);
  char v[64];
  assert_non_null(find_header(r.head, "Upgrade", v, sizeof(v)));
  assert_string_equal(v, "websocket");
  resp_free(&r);
  pthread_mutex_lock(&mu);
  assert_int_equal(obs.type, WR_CONNECT_WEBSOCKET);
  assert_string_equal(seen_meta("HttpHeader:Upgrade"), "websocket");
  assert_non_null(seen_meta("HttpHeader:Sec-Websocket-Key"));
  pthread_mutex_unlock(&mu);
  client_sends(&cl, "raw bytes both ways");
  while (cl.len < 19) assert_true(client_fill(&cl) > 0);
  assert_memory_equal(cl.buf, "raw bytes both ways", 19);
  client_close(&cl);
}

static size_t probe_live, probe_open;
static void probe(void) {
  wr_conn_rec *recs = NULL;
  size_t n = 0;
  probe_live = wr_tunnel_server_count(w.ts, t1.id);
  probe_open = wr_store_conn_list(store, t1.id, 1, &recs, &n) == 0 ? n : 999;
  free(recs);
}
static void start_fc1(void) { CHECK_EQ(fconn_start(1, 0), 0); }
static void start_fc2(void) { CHECK_EQ(fconn_start(2, 1), 0); }

static int served(int i) {
  pthread_mutex_lock(&mu);
  int n = w.fc[i].served;
  pthread_mutex_unlock(&mu);
  return n;
}

/* The connector reconnects (same connector id, same connIndex) before the
 * edge noticed the old connection died: the new registration replaces the
 * old one instead of being refused. */
static void test_replace_registration(void **state) {
  (void)state;
  resp r;
  on_loop(start_fc1);
  assert_int_equal(wait_flag(&w.fc[1].registered), 1);
  assert_int_equal(wait_flag(&w.fc[0].closed), 1);
  on_loop(probe);
  assert_int_equal(probe_live, 1);
  assert_int_equal(probe_open, 1);
  int before = served(1);
  exchange("GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n", &r, 0);
  assert_int_equal(r.status, 200);
  resp_free(&r);
  assert_int_equal(served(1), before + 1);
}

/* Two live connections of the tunnel share the requests. */
static void test_spread(void **state) {
  (void)state;
  resp r;
  on_loop(start_fc2);
  assert_int_equal(wait_flag(&w.fc[2].registered), 1);
  on_loop(probe);
  assert_int_equal(probe_live, 2);
  int a = served(1), b = served(2);
  for (int i = 0; i < 6; i++) {
    exchange("GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n", &r, 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
  }
  assert_true(served(1) - a >= 2);
  assert_true(served(2) - b >= 2);
  assert_int_equal(served(1) - a + served(2) - b, 6);
}

static void close_hang(void) { CHECK_EQ(wr_quic_conn_close(w.hang_fc->conn, 0, "bye"), 0); }

/* A connector connection dies with a request in flight: the visitor gets
 * a 502 at once, and the tunnel's other connection serves the next one. */
static void test_connector_lost(void **state) {
  (void)state;
  client cl;
  resp r;
  client_open(&cl);
  client_sends(&cl, "GET /hang HTTP/1.1\r\nHost: app.example.test\r\n\r\n");
  pthread_mutex_lock(&mu);
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 5;
  while (!w.hang_fc && pthread_cond_timedwait(&cv, &mu, &dl) == 0) {
  }
  int got = w.hang_fc != NULL;
  pthread_mutex_unlock(&mu);
  assert_true(got);
  on_loop(close_hang);
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 502);
  r.body[r.body_len] = '\0';
  assert_non_null(strstr((char *)r.body, "connection to the connector was lost"));
  resp_free(&r);
  /* Same visitor connection, next request: the other connector connection. */
  client_sends(&cl, "GET /hello HTTP/1.1\r\nHost: app.example.test\r\n\r\n");
  assert_int_equal(read_resp(&cl, &r, 0, 0), 0);
  assert_int_equal(r.status, 200);
  resp_free(&r);
  client_close(&cl);
  on_loop(probe);
  assert_int_equal(probe_live, 1);
  assert_int_equal(probe_open, 1);
}

int main(void) {
  return UNIT_RUN(
      group_setup, group_teardown,
      UNIT_TESTS(test_get, test_head_and_port, test_wildcard_route, test_post_length,
                 test_post_chunked, test_expect_continue, test_response_chunked, test_no_route,
                 test_no_connector, test_connector_error, test_reset_mid_body, test_keepalive,
                 test_pipelined, test_bad_requests, test_header_timeout, test_early_response,
                 test_big_bodies, test_websocket, test_replace_registration, test_spread,
                 test_connector_lost, test_limit_per_source, test_limit_other_source_served,
                 test_limit_evicts_idle, test_limit_reserve, test_limit_rate,
                 test_limit_table_full));
}
