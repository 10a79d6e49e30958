/* The loopback QUIC pair of quic_pair.h. */
#include "quic_pair.h"

#include <string.h>

#include "connector/proxy.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "proto/preamble.h"

void unit_edge_request(wr_buf *b, int type, const char *dest, wr_meta *meta, size_t nmeta,
                       const void *body, size_t body_len) {
  wr_connect_request r;
  uint8_t pre[WR_PREAMBLE_DATA_LEN];
  memset(&r, 0, sizeof(r));
  r.dest = dest;
  r.dest_len = strlen(dest);
  r.type = (uint16_t)type;
  r.has_meta = 1;
  r.meta = meta;
  r.nmeta = nmeta;
  assert_int_equal(wr_preamble_write(WR_PREAMBLE_DATA, pre, sizeof(pre)), WR_PREAMBLE_DATA_LEN);
  wr_buf_append(b, pre, sizeof(pre));
  assert_int_equal(wr_connect_request_encode(&r, NULL, b), WR_OK);
  if (body_len) wr_buf_append(b, body, body_len);
}

size_t unit_edge_response(const uint8_t *data, size_t len, wr_connect_response *r) {
  size_t used;
  assert_true(len >= WR_PREAMBLE_DATA_LEN);
  assert_memory_equal(data, wr_preamble_data_sig, 6);
  assert_int_equal(wr_connect_response_decode_alloc(data + WR_PREAMBLE_DATA_LEN,
                                                    len - WR_PREAMBLE_DATA_LEN, NULL, NULL, 0, r,
                                                    &used),
                   WR_OK);
  return WR_PREAMBLE_DATA_LEN + used;
}

wr_proxy *unit_qpair_proxy_start(unit_qpair *q, const unit_pki *pki, wr_ingress *ing,
                                 const wr_uuid *connector_id, void *edge_user) {
  wr_proxy_config pc;
  wr_proxy *p = NULL;
  memset(&pc, 0, sizeof(pc));
  pc.loop = &q->loop;
  pc.ingress = ing;
  if (connector_id) pc.connector_id = *connector_id;
  pc.version = "9.9.9-test";
  assert_int_equal(wr_proxy_new(&pc, &p), WR_OK);
  unit_qpair_proxy_callbacks(&q->kcbs);
  unit_qpair_connect(q, pki, unit_qpair_accept, edge_user, p);
  return p;
}

int unit_qpair_pki(unit_pki *pki, const char *prefix) {
  static const char *const dns[] = {"quic.cftunnel.com"};
  wr_log_set_level(WR_LOG_OFF);
  return unit_pki_make(pki, prefix, "quic.cftunnel.com", dns, 1);
}

void unit_qpair_init(unit_qpair *q) {
  memset(q, 0, sizeof(*q));
  assert_int_equal(uv_loop_init(&q->loop), 0);
  uv_timer_init(&q->loop, &q->guard);
  uv_timer_init(&q->loop, &q->poll);
  q->guard.data = q->poll.data = q;
}

void unit_qpair_connect(unit_qpair *q, const unit_pki *pki, wr_quic_accept_cb on_accept,
                        void *edge_user, void *conn_user) {
  wr_quic_config ccfg = {0}, scfg = {0};
  struct sockaddr_in bind;
  struct sockaddr_storage sa;
  ccfg.ca_file = pki->ca;
  scfg.cert_file = pki->cert;
  scfg.key_file = pki->key;
  assert_int_equal(wr_quic_tls_new(WR_QUIC_CLIENT, &ccfg, &q->ctls, NULL, 0), WR_OK);
  assert_int_equal(wr_quic_tls_new(WR_QUIC_SERVER, &scfg, &q->stls, NULL, 0), WR_OK);
  uv_ip4_addr("127.0.0.1", 0, &bind);
  assert_int_equal(wr_quic_endpoint_server(&q->loop, q->stls, &scfg, (struct sockaddr *)&bind,
                                           &q->ecbs, on_accept, edge_user, &q->sep),
                   WR_OK);
  assert_int_equal(wr_quic_endpoint_addr(q->sep, &sa), WR_OK);
  assert_int_equal(wr_quic_endpoint_client(&q->loop, q->ctls, &ccfg, (struct sockaddr *)&sa,
                                           &q->kcbs, conn_user, &q->cep, &q->cconn),
                   WR_OK);
}

void unit_qpair_dial(unit_qpair *q, const unit_pki *pki, const wr_quic_callbacks *cbs, void *user,
                     wr_quic_endpoint **ep, wr_quic_conn **conn) {
  wr_quic_config ccfg = {0};
  struct sockaddr_storage sa;
  ccfg.ca_file = pki->ca;
  assert_int_equal(wr_quic_endpoint_addr(q->sep, &sa), WR_OK);
  assert_int_equal(
      wr_quic_endpoint_client(&q->loop, q->ctls, &ccfg, (struct sockaddr *)&sa, cbs, user, ep, conn),
      WR_OK);
}

static void guard_cb(uv_timer_t *t) {
  unit_qpair *q = t->data;
  q->timed_out = 1;
  uv_stop(&q->loop);
}

static void poll_cb(uv_timer_t *t) {
  unit_qpair *q = t->data;
  if (q->done && q->done(q->arg)) uv_stop(&q->loop);
}

void unit_qpair_run_at(unit_qpair *q, int (*done)(void *arg), void *arg, uint64_t ms, int line) {
  q->done = done;
  q->arg = arg;
  q->timed_out = 0;
  if (done(arg)) return;
  uv_timer_start(&q->guard, guard_cb, ms, 0);
  uv_timer_start(&q->poll, poll_cb, 2, 2);
  uv_run(&q->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&q->guard);
  uv_timer_stop(&q->poll);
  if (q->timed_out) fail_msg("timed out waiting (called from line %d)", line);
}

void unit_qpair_run_for(unit_qpair *q, uint64_t ms) {
  uv_timer_start(&q->guard, guard_cb, ms, 0);
  uv_run(&q->loop, UV_RUN_DEFAULT);
  q->timed_out = 0;
}

void unit_qpair_free_endpoints(unit_qpair *q) {
  if (q->cep) wr_quic_endpoint_free(q->cep);
  if (q->sep) wr_quic_endpoint_free(q->sep);
  q->cep = q->sep = NULL;
}

void unit_qpair_finish(unit_qpair *q) {
  uv_close((uv_handle_t *)&q->guard, NULL);
  uv_close((uv_handle_t *)&q->poll, NULL);
  uv_run(&q->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&q->loop), 0);
  wr_quic_tls_free(q->ctls);
  wr_quic_tls_free(q->stls);
}

void unit_qpair_accept(wr_quic_endpoint *ep, wr_quic_conn *qc, void *user) {
  (void)ep;
  wr_quic_conn_set_user(qc, user);
}

static int k_open(wr_quic_conn *qc, int64_t sid, void *user) {
  return wr_proxy_on_stream_open(user, qc, sid);
}

static int k_data(wr_quic_conn *qc, int64_t sid, const uint8_t *d, size_t n, int fin, void *user,
                  void *suser) {
  return wr_proxy_on_stream_data(user, qc, sid, d, n, fin, suser);
}

static int k_reset(wr_quic_conn *qc, int64_t sid, uint64_t code, void *user, void *suser) {
  return wr_proxy_on_stream_reset(user, qc, sid, code, suser);
}

static void k_writable(wr_quic_conn *qc, int64_t sid, void *user, void *suser) {
  wr_proxy_on_stream_writable(user, qc, sid, suser);
}

static void k_sclose(wr_quic_conn *qc, int64_t sid, int has_code, uint64_t code, void *user,
                     void *suser) {
  (void)has_code;
  (void)code;
  wr_proxy_on_stream_close(user, qc, sid, suser);
}

static void k_close(wr_quic_conn *qc, const wr_quic_close_info *info, void *user) {
  (void)info;
  wr_proxy_on_conn_close(user, qc);
}

void unit_qpair_proxy_callbacks(wr_quic_callbacks *cbs) {
  cbs->on_stream_open = k_open;
  cbs->on_stream_data = k_data;
  cbs->on_stream_reset = k_reset;
  cbs->on_stream_writable = k_writable;
  cbs->on_stream_close = k_sclose;
  cbs->on_close = k_close;
}

wr_ingress *unit_ingress_of(const char *yaml) {
  char err[512] = "";
  wr_config *cfg = unit_config_of(yaml);
  wr_ingress *ing = NULL;
  int rv = wr_ingress_parse(cfg, &ing, err, sizeof(err));
  if (rv != 0) fail_msg("ingress parse failed (%d): %s", rv, err);
  wr_config_free(cfg);
  return ing;
}
