/* The visitor suites' world: see visitor_world.h. */
#include "visitor_world.h"

static unit_pki pki; /* ca.pem, and the tunnel server's cert.pem and key.pem */
static char db_path[128];
wr_store *store;
static wr_account account;
static wr_zone zone;
wr_tunnel t1, t2;

pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
seen obs;

world w;

/* cmocka cannot fail a test from the loop thread: remember instead. */
int conn_failures;

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
int fconn_start(int i, uint8_t conn_index) {
  static const wr_quic_callbacks ccbs = {
      .on_handshake_done = cl_hs, .on_stream_open = cl_stream_open, .on_stream_data = cl_data,
      .on_stream_writable = cl_writable, .on_stream_close = cl_stream_close, .on_close = cl_close};
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
void on_loop(void (*fn)(void)) {
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
int wait_flag(const int *flag) {
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

int vis_group_setup(void **state) {
  if (unit_edge_store(&pki, "wr-vis", db_path, sizeof(db_path), &store, &account) != 0) return -1;
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

  unit_tunnel_cred(&t1, &w.cred);
  wr_uuid_random(&w.connector_id);
  if (fconn_start(0, 0) != 0) return -1;
  uv_async_init(&w.loop, &w.stop, stop_cb);
  uv_async_init(&w.loop, &w.call, call_cb);
  uv_timer_init(&w.loop, &w.reset_timer);
  if (pthread_create(&w.thread, NULL, loop_main, NULL) != 0) return -1;
  return wait_flag(&w.fc[0].registered) == 1 ? 0 : -1;
}

int vis_group_teardown(void **state) {
  usleep(200000); /* let the last visitor's close reach the edge */
  uv_async_send(&w.stop);
  pthread_join(w.thread, NULL);
  int ok = uv_loop_close(&w.loop) == 0;
  /* Every request was answered and no stream is left behind. */
  ok &= w.final_stats.active_streams == 0 && conn_failures == 0;
  if (!ok)
    fprintf(stderr, "teardown: streams=%llu connector check failures=%d\n",
            (unsigned long long)w.final_stats.active_streams, conn_failures);
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

void client_open(client *cl) {
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

void client_close(client *cl) {
  close(cl->fd);
  free(cl->buf);
}

void client_send(client *cl, const void *d, size_t n) {
  const char *p = d;
  while (n) {
    ssize_t k = send(cl->fd, p, n, MSG_NOSIGNAL);
    assert_true(k > 0);
    p += k;
    n -= (size_t)k;
  }
}

void client_sends(client *cl, const char *s) { client_send(cl, s, strlen(s)); }

/* Reads more; returns bytes read, 0 at EOF (or reset), -1 on timeout. */
ssize_t client_fill(client *cl) {
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

const char *find_header(const char *head, const char *name, char *val, size_t vlen) {
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
int read_resp(client *cl, resp *r, int head_req, int want_interim) {
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

void vis_resp_free(resp *r) { free(r->body); }

/* 1 once the server closed the connection (EOF within the timeout). */
int server_closed(client *cl) {
  while (client_fill(cl) > 0) {
  }
  return cl->eof;
}

int body_is(const resp *r, const char *s) {
  return r->body_len == strlen(s) && memcmp(r->body, s, r->body_len) == 0;
}

const char *seen_meta(const char *key) {
  for (size_t i = obs.nmeta; i-- > 0;)
    if (!strcmp(obs.keys[i], key)) return obs.vals[i];
  return NULL;
}

int seen_meta_count(const char *key) {
  int n = 0;
  for (size_t i = 0; i < obs.nmeta; i++) n += !strcmp(obs.keys[i], key);
  return n;
}

/* One request on a fresh connection. */
void exchange(const char *req, resp *r, int head_req) {
  client cl;
  client_open(&cl);
  client_sends(&cl, req);
  assert_int_equal(read_resp(&cl, r, head_req, 0), 0);
  client_close(&cl);
}

/* Reads the next response on |cl| into |r|, which must have status
 * |status|. */
void read_expect(client *cl, resp *r, int status) {
  assert_int_equal(read_resp(cl, r, 0, 0), 0);
  assert_int_equal(r->status, status);
}

/* Sends |req| on |cl|, then read_expect. */
void send_expect(client *cl, resp *r, const char *req, int status) {
  client_sends(cl, req);
  read_expect(cl, r, status);
}
