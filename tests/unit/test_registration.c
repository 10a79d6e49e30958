/* Connector registration against the edge's tunnel server over real QUIC on
 * 127.0.0.1 (libuv endpoints from src/net/quic.h): a temp store with an
 * account and a tunnel, a CA + tunnel-server certificate from wr_pki_issue,
 * then registerConnection (+ updateLocalConfiguration) succeeds and is
 * recorded; a wrong secret and an unknown tunnel are refused permanently;
 * unregisterConnection and connection loss close the connection record.
 * Hostile datagrams (forged or broken QUIC Initials, alone and in bursts,
 * from several source addresses) neither crash the edge nor keep it from
 * registering a real connector afterwards; a connector also registers
 * through a Retry. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "connector/registration.h"
#include "edge/pki.h"
#include "edge/store.h"
#include "edge/tunnel_server.h"
#include "lib/credentials.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/quic.h"
#include "unit.h"

static unit_pki pki;
static char db_path[128];
static wr_store *store;
static wr_account account;
static wr_tunnel tunnel;

static int group_setup(void **state) {
  if (unit_edge_store(&pki, "wr-reg", db_path, sizeof(db_path), &store, &account) != 0) return -1;
  if (wr_store_tunnel_create(store, "test", account.id, "t1", NULL, 0, &tunnel) != 0) return -1;
  wr_log_set_level(WR_LOG_WARN);
  return 0;
}

static int group_teardown(void **state) {
  wr_store_close(store);
  return unit_rm_rf(pki.dir);
}

/* ---- one connector against one edge ------------------------------------------- */

typedef struct ctx {
  uv_loop_t loop;
  uv_timer_t guard;
  int timed_out;
  wr_tunnel_server *ts;
  wr_quic_endpoint *sep, *cep;
  wr_quic_conn *cconn;
  wr_quic_tls *stls, *ctls;
  wr_credentials cred;
  wr_registration *reg;
  int start_rv;
  int got_result, got_config, config_ok, got_unreg, unreg_ok;
  wr_registration_result res;
} ctx;

static void on_registered(wr_registration *r, void *user, const wr_registration_result *res) {
  ctx *c = user;
  c->res = *res;
  c->got_result = 1;
  if (!res->ok) uv_stop(&c->loop);
}

static void on_config(wr_registration *r, void *user, int ok) {
  ctx *c = user;
  c->got_config = 1;
  c->config_ok = ok;
  uv_stop(&c->loop);
}

static void on_unreg(wr_registration *r, void *user, int ok) {
  ctx *c = user;
  c->got_unreg = 1;
  c->unreg_ok = ok;
  uv_stop(&c->loop);
}

static const char local_config[] =
    "{\"ingress\":[{\"service\":\"http_status:404\",\"originRequest\":{}}],"
    "\"warp-routing\":{\"enabled\":false}}";

/* --features for the next registrations (NULL: none). */
static const char *const *extra_features;
static size_t nextra_features;

static void cl_hs(wr_quic_conn *qc, void *user) {
  ctx *c = user;
  wr_registration_config rc;
  memset(&rc, 0, sizeof(rc));
  rc.cred = &c->cred;
  rc.extra_features = extra_features;
  rc.nextra_features = nextra_features;
  wr_uuid_random(&rc.connector_id);
  rc.conn_index = 0;
  rc.local_config = local_config;
  rc.local_config_len = strlen(local_config);
  rc.on_registered = on_registered;
  rc.on_config_pushed = on_config;
  rc.on_unregistered = on_unreg;
  rc.user = c;
  c->start_rv = wr_registration_start(qc, &rc, &c->reg);
  if (c->start_rv) uv_stop(&c->loop);
}

static int cl_data(wr_quic_conn *qc, int64_t sid, const uint8_t *d, size_t len, int fin,
                   void *user, void *suser) {
  ctx *c = user;
  if (!c->reg) return 0;
  return wr_registration_stream_data(c->reg, sid, d, len, fin) < 0 ? 0 : 0;
}

static void guard_cb(uv_timer_t *t) {
  ctx *c = t->data;
  c->timed_out = 1;
  uv_stop(&c->loop);
}

static void run(ctx *c) {
  uv_timer_start(&c->guard, guard_cb, 5000, 0);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&c->guard);
  assert_false(c->timed_out);
}

/* Set: the edge demands a Retry token from every new connection. */
static int listen_retry_always;
/* Non-zero: the tunnel server's registration deadline and cap per source. */
static uint64_t listen_register_timeout_ms;
static unsigned listen_max_unregistered_per_source;

/* The edge half: a tunnel server listening on 127.0.0.1 (a free port). */
static void ctx_listen(ctx *c, const wr_credentials *cred) {
  wr_quic_config scfg = {0};
  scfg.retry_always = listen_retry_always;
  struct sockaddr_in bind;
  memset(c, 0, sizeof(*c));
  c->cred = *cred;
  assert_int_equal(uv_loop_init(&c->loop), 0);
  scfg.cert_file = pki.cert;
  scfg.key_file = pki.key;
  assert_int_equal(wr_quic_tls_new(WR_QUIC_SERVER, &scfg, &c->stls, NULL, 0), WR_OK);
  wr_tunnel_server_config tc = {.store = store, .location = "LOCAL",
                                .register_timeout_ms = listen_register_timeout_ms,
                                .max_unregistered_per_source = listen_max_unregistered_per_source};
  assert_int_equal(wr_tunnel_server_new(&tc, &c->ts), 0);
  uv_ip4_addr("127.0.0.1", 0, &bind);
  assert_int_equal(
      wr_tunnel_server_listen(c->ts, &c->loop, c->stls, &scfg, (struct sockaddr *)&bind, &c->sep),
      WR_OK);
  uv_timer_init(&c->loop, &c->guard);
  c->guard.data = c;
}

/* The connector half: dials the edge and registers once connected. */
static void ctx_dial(ctx *c) {
  wr_quic_config ccfg = {0};
  static wr_quic_callbacks ccbs;
  struct sockaddr_storage sa;
  ccfg.ca_file = pki.ca;
  assert_int_equal(wr_quic_tls_new(WR_QUIC_CLIENT, &ccfg, &c->ctls, NULL, 0), WR_OK);
  assert_int_equal(wr_quic_endpoint_addr(c->sep, &sa), WR_OK);
  memset(&ccbs, 0, sizeof(ccbs));
  ccbs.on_handshake_done = cl_hs;
  ccbs.on_stream_data = cl_data;
  assert_int_equal(wr_quic_endpoint_client(&c->loop, c->ctls, &ccfg, (struct sockaddr *)&sa,
                                           &ccbs, c, &c->cep, &c->cconn),
                   WR_OK);
}

static void ctx_start(ctx *c, const wr_credentials *cred) {
  ctx_listen(c, cred);
  ctx_dial(c);
}

static void ctx_stop(ctx *c) {
  wr_quic_endpoint_free(c->cep);
  wr_quic_endpoint_free(c->sep);
  uv_close((uv_handle_t *)&c->guard, NULL);
  unit_loop_finish(&c->loop);
  wr_tunnel_server_free(c->ts);
  wr_registration_free(c->reg);
  wr_quic_tls_free(c->ctls);
  wr_quic_tls_free(c->stls);
}

static void good_cred(wr_credentials *cr) { unit_tunnel_cred(&tunnel, cr); }

static size_t open_conns(void) {
  wr_conn_rec *recs;
  size_t n;
  assert_int_equal(wr_store_conn_list(store, tunnel.id, 1, &recs, &n), 0);
  free(recs);
  return n;
}

/* Newest audit action concerning |conn_id| (in the detail). */
static int audit_has(const char *action, const char *conn_id) {
  wr_audit *rows;
  size_t n;
  int found = 0;
  assert_int_equal(wr_store_audit_list(store, account.id, 0, &rows, &n), 0);
  for (size_t i = 0; i < n; i++)
    if (!strcmp(rows[i].action, action) && !strcmp(rows[i].target_id, tunnel.id) &&
        (!conn_id || strstr(rows[i].detail, conn_id)))
      found = 1;
  wr_store_audit_free(rows, n);
  return found;
}

/* Registers with good credentials and runs until the result; returns how
 * many connection records were open before. */
static size_t register_good(ctx *c) {
  wr_credentials cr;
  good_cred(&cr);
  size_t before = open_conns();
  ctx_start(c, &cr);
  run(c);
  return before;
}

static void test_register_and_unregister(void **state) {
  (void)state;
  ctx c;
  size_t before = register_good(&c);
  assert_int_equal(c.start_rv, 0);
  assert_true(c.got_result);
  assert_true(c.res.ok);
  assert_string_equal(c.res.location, "LOCAL");
  assert_false(c.res.remotely_managed);
  assert_true(c.got_config);
  assert_true(c.config_ok);
  assert_true(wr_registration_is_registered(c.reg));

  /* The store and the registry know the connection. */
  assert_int_equal(open_conns(), before + 1);
  wr_conn_rec *recs;
  size_t n;
  assert_int_equal(wr_store_conn_list(store, tunnel.id, 1, &recs, &n), 0);
  assert_string_equal(recs[n - 1].id, c.res.conn_id);
  assert_int_equal(recs[n - 1].conn_index, 0);
  assert_string_equal(recs[n - 1].client_version, WR_VERSION);
  assert_string_equal(recs[n - 1].origin_ip, "127.0.0.1");
  assert_string_equal(recs[n - 1].edge_location, "LOCAL");
  assert_non_null(strstr(recs[n - 1].features, "\"serialized_headers\""));
  /* What is implemented is announced (UDP sessions + datagrams, remote
   * configuration: test_udp.c), nothing else. */
  assert_non_null(strstr(recs[n - 1].features, "\"support_datagram_v2\""));
  assert_non_null(strstr(recs[n - 1].features, "\"allow_remote_config\""));
  assert_non_null(strstr(recs[n - 1].features, "\"support_quic_eof\""));
  assert_null(strstr(recs[n - 1].features, "management_logs"));
  assert_null(strstr(recs[n - 1].features, "datagram_v3"));
  free(recs);
  assert_true(audit_has(WR_TUNNEL_SERVER_AUDIT_REGISTERED, c.res.conn_id));
  assert_int_equal(wr_tunnel_server_count(c.ts, tunnel.id), 1);
  wr_tunnel_conn_info info;
  assert_int_equal(wr_tunnel_server_get(c.ts, tunnel.id, 0, &info), 0);
  assert_string_equal(info.conn_id, c.res.conn_id);
  assert_non_null(info.quic);
  assert_false(info.datagram_v3);

  /* Graceful shutdown. */
  assert_int_equal(wr_registration_unregister(c.reg), 0);
  run(&c);
  assert_true(c.got_unreg);
  assert_true(c.unreg_ok);
  assert_false(wr_registration_is_registered(c.reg));
  assert_int_equal(open_conns(), before);
  assert_true(audit_has(WR_TUNNEL_SERVER_AUDIT_UNREGISTERED, c.res.conn_id));
  assert_int_equal(wr_tunnel_server_count(c.ts, tunnel.id), 0);
  ctx_stop(&c);
}

/* --features support_datagram_v3_2 as cloudflared HEAD sends it: the
 * defaults (support_datagram_v2 included) plus support_datagram_v3_2; the
 * deprecated support_datagram_v3 / support_datagram_v3_1 and duplicates
 * left out. The edge records the choice for the connection. */
static void test_datagram_v3_features(void **state) {
  static const char *const feats[] = {"support_datagram_v3", "support_datagram_v3_2",
                                      "support_datagram_v3_1", "serialized_headers"};
  (void)state;
  assert_true(wr_registration_datagram_v3(feats, 4));
  assert_false(wr_registration_datagram_v3(feats, 1));
  assert_false(wr_registration_datagram_v3(NULL, 0));
  ctx c;
  wr_credentials cr;
  good_cred(&cr);
  extra_features = feats;
  nextra_features = 4;
  ctx_start(&c, &cr);
  run(&c);
  extra_features = NULL;
  nextra_features = 0;
  assert_true(c.got_result);
  assert_true(c.res.ok);
  wr_conn_rec *recs;
  size_t n;
  assert_int_equal(wr_store_conn_list(store, tunnel.id, 1, &recs, &n), 0);
  const char *f = recs[n - 1].features;
  assert_non_null(strstr(f, "\"support_datagram_v3_2\""));
  assert_non_null(strstr(f, "\"support_datagram_v2\""));
  assert_null(strstr(f, "\"support_datagram_v3\""));
  assert_null(strstr(f, "\"support_datagram_v3_1\""));
  const char *sh = strstr(f, "\"serialized_headers\"");
  assert_non_null(sh);
  assert_null(strstr(sh + 1, "\"serialized_headers\""));
  free(recs);
  wr_tunnel_conn_info info;
  assert_int_equal(wr_tunnel_server_get(c.ts, tunnel.id, 0, &info), 0);
  assert_true(info.datagram_v3);
  ctx_stop(&c);
}

/* Registers with |cr|: refused for good (no retry), for a cause that
 * contains |cause|. */
static void expect_refusal(const wr_credentials *cr, const char *cause) {
  ctx c;
  ctx_start(&c, cr);
  run(&c);
  assert_true(c.got_result);
  assert_false(c.res.ok);
  assert_false(c.res.should_retry);
  assert_non_null(strstr(c.res.cause, cause));
  ctx_stop(&c);
}

static void test_wrong_secret(void **state) {
  (void)state;
  ctx c;
  wr_credentials cr;
  good_cred(&cr);
  cr.secret[0] ^= 0x55;
  size_t before = open_conns();
  ctx_start(&c, &cr);
  run(&c);
  assert_true(c.got_result);
  assert_false(c.res.ok);
  assert_false(c.res.rpc_error);
  assert_false(c.res.should_retry);
  assert_non_null(strstr(c.res.cause, "secret"));
  assert_non_null(strstr(c.res.cause, "authenticate"));
  assert_false(wr_registration_is_registered(c.reg));
  assert_int_equal(open_conns(), before);
  assert_int_equal(wr_tunnel_server_count(c.ts, NULL), 0);
  ctx_stop(&c);

  /* Right secret, wrong account. */
  good_cred(&cr);
  cr.account_tag[0] = cr.account_tag[0] == '0' ? '1' : '0';
  expect_refusal(&cr, "failed to authenticate");
}

static void test_unknown_tunnel(void **state) {
  (void)state;
  wr_credentials cr;
  good_cred(&cr);
  assert_int_equal(wr_uuid_random(&cr.tunnel_id), 0);
  expect_refusal(&cr, "unknown tunnel");
}

static void test_deleted_tunnel(void **state) {
  (void)state;
  wr_tunnel t2;
  assert_int_equal(wr_store_tunnel_create(store, "test", account.id, "t2", NULL, 0, &t2), 0);
  assert_int_equal(wr_store_tunnel_delete(store, "test", t2.id, NULL), 0);
  wr_credentials cr;
  unit_tunnel_cred(&t2, &cr);
  expect_refusal(&cr, "deleted");
}

/* Losing the connection (edge shutting down / connector gone) closes the
 * record and writes the Unregistered audit row. */
static void test_connection_loss(void **state) {
  (void)state;
  ctx c;
  size_t before = register_good(&c);
  assert_true(c.res.ok);
  assert_int_equal(open_conns(), before + 1);
  char conn_id[WR_UUID_STR_LEN + 1];
  memcpy(conn_id, c.res.conn_id, sizeof(conn_id));
  /* The edge goes away without unregisterConnection. */
  ctx_stop(&c);
  assert_int_equal(open_conns(), before);
  assert_true(audit_has(WR_TUNNEL_SERVER_AUDIT_UNREGISTERED, conn_id));
}

/* ---- hostile datagrams ----------------------------------------------------------- */

/* A client Initial header: version, 8-byte DCID and SCID, no token, and a
 * 2-byte Length field saying |length|; the caller fills the rest. Returns the
 * header size. */
static size_t initial_header(uint8_t *p, uint32_t version, uint8_t tag, uint16_t length) {
  size_t o = 0;
  p[o++] = 0xc3; /* long header, fixed bit, Initial, 4-byte packet number */
  p[o++] = (uint8_t)(version >> 24);
  p[o++] = (uint8_t)(version >> 16);
  p[o++] = (uint8_t)(version >> 8);
  p[o++] = (uint8_t)version;
  p[o++] = 8;
  for (int i = 0; i < 8; i++) p[o++] = (uint8_t)(0xd0 + i) ^ tag;
  p[o++] = 8;
  for (int i = 0; i < 8; i++) p[o++] = (uint8_t)(0x50 + i) ^ tag;
  p[o++] = 0; /* token length */
  p[o++] = (uint8_t)(0x40 | (length >> 8));
  p[o++] = (uint8_t)length;
  return o;
}

/* Sends |len| bytes to the edge from source port |port_index| (a few UDP
 * sockets on 127.0.0.1 and 127.0.0.2..4: different source addresses). */
static int hostile_fd[8];

static void hostile_open(void) {
  for (int i = 0; i < 8; i++) {
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % 4));
    hostile_fd[i] = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(hostile_fd[i] >= 0);
    assert_int_equal(bind(hostile_fd[i], (struct sockaddr *)&a, sizeof(a)), 0);
  }
}

static void hostile_close(void) {
  for (int i = 0; i < 8; i++) close(hostile_fd[i]);
}

static void hostile_send(ctx *c, int from, const uint8_t *d, size_t len) {
  struct sockaddr_storage sa;
  assert_int_equal(wr_quic_endpoint_addr(c->sep, &sa), WR_OK);
  assert_int_equal(sendto(hostile_fd[from % 8], d, len, 0, (struct sockaddr *)&sa,
                          sizeof(struct sockaddr_in)),
                   (ssize_t)len);
}

/* Lets the edge read what was sent so far: one loop pass per batch of 32
 * datagrams (libuv's read budget), with some to spare. */
static void drain(ctx *c, int batches) {
  for (int i = 0; i < batches + 4; i++) uv_run(&c->loop, UV_RUN_NOWAIT);
}

/* The attack report's datagram: 1,200 bytes, an Initial header (version 1,
 * 8-byte DCID and SCID, no token, a Length field) and zero padding without
 * valid protection. It used to make the edge treat the tunnel server as a
 * connection owner and crash. Variants: truncated, unknown version, bad
 * Length fields, a valid header over random bytes, and a burst from several
 * addresses. Afterwards a real connector still registers. */
static void test_hostile_initials(void **state) {
  (void)state;
  ctx c;
  wr_credentials cr;
  uint8_t d[1500];
  size_t h;
  good_cred(&cr);
  ctx_listen(&c, &cr);
  hostile_open();

  /* Exactly the reported datagram. */
  memset(d, 0, sizeof(d));
  h = initial_header(d, 1, 0, (uint16_t)(1200 - 26));
  assert_int_equal(h, 26);
  hostile_send(&c, 0, d, 1200);
  drain(&c, 1);
  assert_int_equal(wr_quic_endpoint_nconns(c.sep), 0);

  /* Truncated: too short for an Initial, and cut inside the header. */
  hostile_send(&c, 1, d, 1199);
  hostile_send(&c, 1, d, 20);
  hostile_send(&c, 1, d, 1);
  /* Unknown version and a Version Negotiation lookalike. */
  memset(d, 0, sizeof(d));
  initial_header(d, 0xdeadbeef, 1, 1200 - 26);
  hostile_send(&c, 2, d, 1200);
  initial_header(d, 0, 2, 1200 - 26);
  hostile_send(&c, 2, d, 1200);
  /* Length fields: past the datagram end, zero, and too small for a packet
   * number plus the header protection sample. */
  uint16_t lengths[] = {0x3fff, 0, 1, 4, 19, 20, 1200 - 25};
  for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
    memset(d, 0, sizeof(d));
    initial_header(d, 1, (uint8_t)(3 + i), lengths[i]);
    hostile_send(&c, (int)i, d, 1200);
  }
  /* A valid header over random bytes (a forged but well-formed Initial). */
  srand(7);
  for (int i = 0; i < 16; i++) {
    h = initial_header(d, 1, (uint8_t)(16 + i), (uint16_t)(1300 - 26));
    for (size_t k = h; k < 1300; k++) d[k] = (uint8_t)rand();
    hostile_send(&c, i, d, 1300);
  }
  drain(&c, 2);
  assert_int_equal(wr_quic_endpoint_nconns(c.sep), 0);

  /* A burst from several addresses, each with its own connection IDs. */
  for (int i = 0; i < 400; i++) {
    h = initial_header(d, 1, (uint8_t)i, (uint16_t)(1200 - 26));
    d[6] = (uint8_t)(i >> 8); /* DCID differs beyond the 8-bit tag */
    for (size_t k = h; k < 1200; k++) d[k] = (uint8_t)(i & 1 ? rand() : 0);
    hostile_send(&c, i, d, 1200);
    if (i % 64 == 63) drain(&c, 2); /* stay below the socket buffer */
  }
  drain(&c, 13);
  assert_int_equal(wr_quic_endpoint_nconns(c.sep), 0);

  /* The edge is alive and serves a real connector. */
  ctx_dial(&c);
  run(&c);
  assert_int_equal(c.start_rv, 0);
  assert_true(c.got_result);
  assert_true(c.res.ok);
  assert_int_equal(wr_tunnel_server_count(c.ts, tunnel.id), 1);
  assert_int_equal(wr_quic_endpoint_nconns(c.sep), 1);
  assert_int_equal(wr_registration_unregister(c.reg), 0);
  run(&c);
  assert_true(c.unreg_ok);
  hostile_close();
  ctx_stop(&c);
}

/* A connector registers through a Retry (the edge asks every new client to
 * prove its address when it is under a handshake flood). */
static void test_register_through_retry(void **state) {
  (void)state;
  ctx c;
  wr_credentials cr;
  wr_quic_endpoint_stats st;
  good_cred(&cr);
  listen_retry_always = 1;
  ctx_start(&c, &cr);
  listen_retry_always = 0;
  run(&c);
  assert_int_equal(c.start_rv, 0);
  assert_true(c.got_result);
  assert_true(c.res.ok);
  wr_quic_endpoint_get_stats(c.sep, &st);
  assert_int_equal(st.retries, 1);
  assert_int_equal(st.half_open, 0);
  assert_int_equal(wr_tunnel_server_count(c.ts, tunnel.id), 1);
  assert_int_equal(wr_registration_unregister(c.reg), 0);
  run(&c);
  assert_true(c.unreg_ok);
  ctx_stop(&c);
}

/* ---- connections that never register ------------------------------------------ */

/* A QUIC client that completes the handshake and then stays silent (its
 * PINGs keep the connection alive), as anyone without credentials can. */
typedef struct silent {
  ctx *c;
  wr_quic_endpoint *ep;
  wr_quic_conn *conn;
  int handshake_done, closed, closed_by_peer;
  char msg[160];
} silent;

static void silent_hs(wr_quic_conn *qc, void *user) { ((silent *)user)->handshake_done = 1; }

static void silent_close(wr_quic_conn *qc, const wr_quic_close_info *info, void *user) {
  silent *s = user;
  s->closed = 1;
  s->closed_by_peer = !info->local;
  snprintf(s->msg, sizeof(s->msg), "%s", info->msg ? info->msg : "");
}

static void silent_dial(ctx *c, silent *s) {
  static wr_quic_callbacks cbs;
  struct sockaddr_storage sa;
  wr_quic_config ccfg = {0};
  memset(s, 0, sizeof(*s));
  s->c = c;
  cbs.on_handshake_done = silent_hs;
  cbs.on_close = silent_close;
  assert_int_equal(wr_quic_endpoint_addr(c->sep, &sa), WR_OK);
  assert_int_equal(wr_quic_endpoint_client(&c->loop, c->ctls, &ccfg, (struct sockaddr *)&sa, &cbs,
                                           s, &s->ep, &s->conn),
                   WR_OK);
}

/* Runs the loop until |done(arg)| or the guard (5 s) fires. */
static void run_until(ctx *c, int (*done)(void *), void *arg) {
  uv_timer_start(&c->guard, guard_cb, 5000, 0);
  while (!done(arg) && !c->timed_out) uv_run(&c->loop, UV_RUN_ONCE);
  uv_timer_stop(&c->guard);
  assert_false(c->timed_out);
}

/* Settled: all three handshakes done, and the edge closed one of them. */
static int three_settled(void *arg) {
  silent *s = arg;
  int done = 0, closed = 0;
  for (int i = 0; i < 3; i++) done += s[i].handshake_done, closed += s[i].closed;
  return done == 3 && closed >= 1;
}
static int all_closed(void *arg) {
  silent *s = arg;
  return s[0].closed && s[1].closed && s[2].closed;
}
static int registered(void *arg) { return ((ctx *)arg)->got_config; }

/* Without credentials a peer may complete handshakes, but it cannot hold
 * more than the cap of unregistered connections from its address, nor
 * hold any beyond the registration deadline; a connector that registers
 * stays. */
static void test_unregistered_connections_are_bounded(void **state) {
  (void)state;
  ctx c;
  wr_credentials cr;
  silent s[3];
  good_cred(&cr);
  listen_register_timeout_ms = 300;
  listen_max_unregistered_per_source = 2;
  ctx_listen(&c, &cr);

  /* A real connector registers first (and makes the client TLS context the
   * silent ones share): it is not waiting, so not counted. */
  ctx_dial(&c);
  run_until(&c, registered, &c);
  assert_true(c.res.ok);

  /* Two silent connections are let in; whichever completes its handshake
   * third (same address) is closed at once by the edge. */
  for (int i = 0; i < 3; i++) silent_dial(&c, &s[i]);
  run_until(&c, three_settled, s);
  int refused = -1;
  for (int i = 0; i < 3; i++) {
    if (!s[i].closed) continue;
    assert_int_equal(refused, -1); /* only one */
    refused = i;
    assert_true(s[i].closed_by_peer);
    assert_non_null(strstr(s[i].msg, "too many connections waiting to register"));
  }

  /* The deadline closes the other two, although their PINGs keep them
   * alive. */
  run_until(&c, all_closed, s);
  for (int i = 0; i < 3; i++) {
    if (i == refused) continue;
    assert_true(s[i].closed_by_peer);
    assert_non_null(strstr(s[i].msg, "no registration after the handshake"));
  }
  const wr_tunnel_server_stats *st = wr_tunnel_server_get_stats(c.ts);
  assert_int_equal(st->unregistered_refused, 1);
  assert_int_equal(st->unregistered_closed, 2);

  /* The registered connector outlived the deadline many times over. */
  assert_true(wr_registration_is_registered(c.reg));
  assert_int_equal(wr_tunnel_server_count(c.ts, tunnel.id), 1);

  for (int i = 0; i < 3; i++) wr_quic_endpoint_free(s[i].ep);
  listen_register_timeout_ms = 0;
  listen_max_unregistered_per_source = 0;
  ctx_stop(&c);
}

int main(void) {
  return UNIT_RUN(
      group_setup, group_teardown,
      UNIT_TESTS(test_register_and_unregister, test_datagram_v3_features, test_wrong_secret,
                 test_unknown_tunnel, test_deleted_tunnel, test_connection_loss,
                 test_hostile_initials, test_register_through_retry,
                 test_unregistered_connections_are_bounded));
}
