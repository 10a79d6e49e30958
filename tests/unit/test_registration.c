/* Connector registration against the edge's tunnel server over real QUIC on
 * 127.0.0.1 (libuv endpoints from src/net/quic.h): a temp store with an
 * account and a tunnel, a CA + tunnel-server certificate from wr_pki_issue,
 * then registerConnection (+ updateLocalConfiguration) succeeds and is
 * recorded; a wrong secret and an unknown tunnel are refused permanently;
 * unregisterConnection and connection loss close the connection record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static char tmpdir[64], ca_path[128], cert_path[128], key_path[128], db_path[128];
static wr_store *store;
static wr_account account;
static wr_tunnel tunnel;

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int group_setup(void **state) {
  char err[256];
  wr_pem_pair ca = {0}, srv = {0};
  static const char *const dns[] = {"quic.cftunnel.com", "localhost"};
  static const char *const ips[] = {"127.0.0.1"};
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/wr-reg-XXXXXX");
  if (!mkdtemp(tmpdir)) return -1;
  snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", tmpdir);
  snprintf(cert_path, sizeof(cert_path), "%s/tunnel-server.pem", tmpdir);
  snprintf(key_path, sizeof(key_path), "%s/tunnel-server.key", tmpdir);
  snprintf(db_path, sizeof(db_path), "%s/edge.db", tmpdir);
  wr_pki_req creq = {.common_name = "Warren test CA", .is_ca = 1, .days = 1};
  if (wr_pki_issue(NULL, &creq, &ca, err, sizeof(err)) != 0) return -1;
  wr_pki_req sreq = {.common_name = "quic.cftunnel.com", .dns = dns, .n_dns = 2, .ips = ips,
                     .n_ips = 1, .days = 1};
  if (wr_pki_issue(&ca, &sreq, &srv, err, sizeof(err)) != 0) return -1;
  write_file(ca_path, ca.cert);
  write_file(cert_path, srv.cert);
  write_file(key_path, srv.key);
  wr_pem_pair_free(&ca);
  wr_pem_pair_free(&srv);
  if (wr_store_open(db_path, WR_STORE_CREATE, &store, err, sizeof(err)) != 0) return -1;
  if (wr_store_account_create(store, "test", "acme", &account) != 0) return -1;
  if (wr_store_tunnel_create(store, "test", account.id, "t1", NULL, 0, &tunnel) != 0) return -1;
  wr_log_set_level(WR_LOG_WARN);
  return 0;
}

static int group_teardown(void **state) {
  char cmd[128];
  wr_store_close(store);
  snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
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

static void cl_hs(wr_quic_conn *qc, void *user) {
  ctx *c = user;
  wr_registration_config rc;
  memset(&rc, 0, sizeof(rc));
  rc.cred = &c->cred;
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

static void ctx_start(ctx *c, const wr_credentials *cred) {
  wr_quic_config ccfg = {0}, scfg = {0};
  static wr_quic_callbacks ccbs;
  struct sockaddr_in bind;
  struct sockaddr_storage sa;
  memset(c, 0, sizeof(*c));
  c->cred = *cred;
  assert_int_equal(uv_loop_init(&c->loop), 0);
  ccfg.ca_file = ca_path;
  scfg.cert_file = cert_path;
  scfg.key_file = key_path;
  assert_int_equal(wr_quic_tls_new(WR_QUIC_CLIENT, &ccfg, &c->ctls, NULL, 0), WR_OK);
  assert_int_equal(wr_quic_tls_new(WR_QUIC_SERVER, &scfg, &c->stls, NULL, 0), WR_OK);
  wr_tunnel_server_config tc = {.store = store, .location = "LOCAL"};
  assert_int_equal(wr_tunnel_server_new(&tc, &c->ts), 0);
  uv_ip4_addr("127.0.0.1", 0, &bind);
  assert_int_equal(
      wr_tunnel_server_listen(c->ts, &c->loop, c->stls, &scfg, (struct sockaddr *)&bind, &c->sep),
      WR_OK);
  assert_int_equal(wr_quic_endpoint_addr(c->sep, &sa), WR_OK);
  memset(&ccbs, 0, sizeof(ccbs));
  ccbs.on_handshake_done = cl_hs;
  ccbs.on_stream_data = cl_data;
  assert_int_equal(wr_quic_endpoint_client(&c->loop, c->ctls, &ccfg, (struct sockaddr *)&sa,
                                           &ccbs, c, &c->cep, &c->cconn),
                   WR_OK);
  uv_timer_init(&c->loop, &c->guard);
  c->guard.data = c;
}

static void ctx_stop(ctx *c) {
  wr_quic_endpoint_free(c->cep);
  wr_quic_endpoint_free(c->sep);
  uv_close((uv_handle_t *)&c->guard, NULL);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&c->loop), 0);
  wr_tunnel_server_free(c->ts);
  wr_registration_free(c->reg);
  wr_quic_tls_free(c->ctls);
  wr_quic_tls_free(c->stls);
}

static void good_cred(wr_credentials *cr) {
  memset(cr, 0, sizeof(*cr));
  snprintf(cr->account_tag, sizeof(cr->account_tag), "%s", account.id);
  memcpy(cr->secret, tunnel.secret, tunnel.secret_len);
  cr->secret_len = tunnel.secret_len;
  assert_int_equal(wr_uuid_parse(tunnel.id, strlen(tunnel.id), &cr->tunnel_id), 0);
  cr->has_tunnel_id = 1;
}

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

static void test_register_and_unregister(void **state) {
  (void)state;
  ctx c;
  wr_credentials cr;
  good_cred(&cr);
  size_t before = open_conns();
  ctx_start(&c, &cr);
  run(&c);
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
  free(recs);
  assert_true(audit_has(WR_TUNNEL_SERVER_AUDIT_REGISTERED, c.res.conn_id));
  assert_int_equal(wr_tunnel_server_count(c.ts, tunnel.id), 1);
  wr_tunnel_conn_info info;
  assert_int_equal(wr_tunnel_server_get(c.ts, tunnel.id, 0, &info), 0);
  assert_string_equal(info.conn_id, c.res.conn_id);
  assert_non_null(info.quic);

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
  ctx_start(&c, &cr);
  run(&c);
  assert_true(c.got_result);
  assert_false(c.res.ok);
  assert_false(c.res.should_retry);
  assert_non_null(strstr(c.res.cause, "failed to authenticate"));
  ctx_stop(&c);
}

static void test_unknown_tunnel(void **state) {
  (void)state;
  ctx c;
  wr_credentials cr;
  good_cred(&cr);
  assert_int_equal(wr_uuid_random(&cr.tunnel_id), 0);
  ctx_start(&c, &cr);
  run(&c);
  assert_true(c.got_result);
  assert_false(c.res.ok);
  assert_false(c.res.should_retry);
  assert_non_null(strstr(c.res.cause, "unknown tunnel"));
  ctx_stop(&c);
}

static void test_deleted_tunnel(void **state) {
  (void)state;
  ctx c;
  wr_tunnel t2;
  assert_int_equal(wr_store_tunnel_create(store, "test", account.id, "t2", NULL, 0, &t2), 0);
  assert_int_equal(wr_store_tunnel_delete(store, "test", t2.id, NULL), 0);
  wr_credentials cr;
  memset(&cr, 0, sizeof(cr));
  snprintf(cr.account_tag, sizeof(cr.account_tag), "%s", account.id);
  memcpy(cr.secret, t2.secret, t2.secret_len);
  cr.secret_len = t2.secret_len;
  assert_int_equal(wr_uuid_parse(t2.id, strlen(t2.id), &cr.tunnel_id), 0);
  cr.has_tunnel_id = 1;
  ctx_start(&c, &cr);
  run(&c);
  assert_true(c.got_result);
  assert_false(c.res.ok);
  assert_false(c.res.should_retry);
  assert_non_null(strstr(c.res.cause, "deleted"));
  ctx_stop(&c);
}

/* Losing the connection (edge shutting down / connector gone) closes the
 * record and writes the Unregistered audit row. */
static void test_connection_loss(void **state) {
  (void)state;
  ctx c;
  wr_credentials cr;
  good_cred(&cr);
  size_t before = open_conns();
  ctx_start(&c, &cr);
  run(&c);
  assert_true(c.res.ok);
  assert_int_equal(open_conns(), before + 1);
  char conn_id[WR_UUID_STR_LEN + 1];
  memcpy(conn_id, c.res.conn_id, sizeof(conn_id));
  /* The edge goes away without unregisterConnection. */
  ctx_stop(&c);
  assert_int_equal(open_conns(), before);
  assert_true(audit_has(WR_TUNNEL_SERVER_AUDIT_UNREGISTERED, conn_id));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_register_and_unregister),
      cmocka_unit_test(test_wrong_secret),
      cmocka_unit_test(test_unknown_tunnel),
      cmocka_unit_test(test_deleted_tunnel),
      cmocka_unit_test(test_connection_loss),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
