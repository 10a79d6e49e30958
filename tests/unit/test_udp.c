/* The connector's datagram side over real QUIC on 127.0.0.1, in one libuv
 * loop: a QUIC server plays the edge (opens RPC streams, sends and
 * receives datagrams, answers the connector's unregisterUdpSession); the
 * QUIC client forwards its events to wr_proxy and wr_dgram_mux as the
 * supervisor does; the origin is a UDP echo server that prefixes "echo:"
 * (as the one the vectors were captured with). Covered: the captured
 * registerUdpSession stream answered byte for byte, the captured UDP
 * datagrams both ways, unknown-session / malformed / unexpected / ICMP
 * without a proxy drops, unregister by the edge, idle timeout and origin
 * read errors reported to the edge with cloudflared's reason texts, refusals
 * (warp-routing off, session cap, bad session id), updateConfiguration, and
 * Go duration formatting. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "connector/datagram_mux.h"
#include "connector/ingress.h"
#include "connector/proxy.h"
#include "connector/remote_config.h"
#include "connector/udp_session.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/quic.h"
#include "proto/preamble.h"
#include "proto/rpc_session.h"
#include "proto/tunnelrpc.h"
#include "quic_pair.h"
#include "unit.h"

static unit_pki pki;

static int group_setup(void **state) {
  *state = &pki;
  return unit_qpair_pki(&pki, "wr-udp");
}

/* ---- Go durations ------------------------------------------------------------ */

static void check_dur(int64_t ns, const char *want) {
  char buf[40];
  wr_go_duration(ns, buf, sizeof(buf));
  assert_string_equal(buf, want);
}

static void test_go_duration(void **state) {
  (void)state;
  check_dur(0, "0s");
  check_dur(210000000000LL, "3m30s");
  check_dur(40000000LL, "40ms");
  check_dur(1500000000LL, "1.5s");
  check_dur(3600000000000LL, "1h0m0s");
  check_dur(60000000000LL, "1m0s");
  check_dur(1500, "1.5\xc2\xb5s");
  check_dur(999, "999ns");
  check_dur(5000000001LL, "5.000000001s");
  check_dur(-2000000000LL, "-2s");
}

/* ---- the fixture ------------------------------------------------------------- */

#define MAXDG 32

typedef struct ctx ctx;

/* An RPC stream as the edge sees it: raw (vector replay) or with an RPC
 * session (client: the edge calls; server: the connector called). */
typedef struct erpc {
  ctx *c;
  int64_t sid;
  wr_rpc_session *s;
  int server;
  size_t sig; /* signature bytes still to skip (server) */
  wr_buf raw;
  int got_fin;
  /* answers */
  int returned;
  int exception;
  char err[600];
  int32_t latest;
  /* the connector's unregisterUdpSession */
  int unreg_calls;
  uint8_t unreg_id[16];
  char unreg_msg[400];
} erpc;

struct ctx {
  unit_qpair q;
  int (*done)(ctx *c);
  wr_quic_conn *sconn;
  int s_ready;
  /* a second connection (v3 migration): client and edge sides */
  wr_quic_endpoint *cep2;
  wr_quic_conn *sconn2, *cconn2;
  wr_proxy *proxy;
  wr_dgram_mux *mux;
  wr_remote_config *rc;
  wr_ingress *ing;
  wr_ingress *applied[8]; /* sets of rules the remote config handed over */
  size_t napplied;
  uv_udp_t echo;
  uint16_t echo_port;
  uint8_t dg[MAXDG][1400];
  size_t dglen[MAXDG];
  wr_quic_conn *dgconn[MAXDG]; /* the edge side it came on */
  size_t ndg;
  erpc *incoming[8]; /* streams the connector opened */
  size_t nincoming;
};

UNIT_QPAIR_RUN_UNTIL(ctx)

/* ---- the UDP echo origin --------------------------------------------------------- */

static void echo_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  static char buf[2048];
  (void)h;
  (void)sz;
  *b = uv_buf_init(buf, sizeof(buf));
}

static void echo_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
                      unsigned flags) {
  char out[2100];
  (void)flags;
  if (n < 0 || !from) return;
  memcpy(out, "echo:", 5);
  memcpy(out + 5, b->base, (size_t)n);
  uv_buf_t ob = uv_buf_init(out, (unsigned)n + 5);
  uv_udp_try_send(h, &ob, 1, from);
}

/* ---- the edge ------------------------------------------------------------------- */

static int e_write(void *user, const uint8_t *d, size_t n) {
  erpc *r = user;
  size_t acc = 0;
  return wr_quic_stream_write(r->c->sconn, r->sid, d, n, 0, &acc) == WR_OK ? 0 : WR_ERR_IO;
}

/* The edge's SessionManager for connector-opened streams. */
static int m_unreg(wr_rpc_session *s, void *user, const wr_rpc_call *call, wr_rpc_reply *r) {
  erpc *e = user;
  wr_tunnelrpc_udp_unregister_params p;
  (void)s;
  assert_int_equal(wr_tunnelrpc_udp_unregister_params_decode(&call->params, &p), 0);
  assert_int_equal(p.session_id_len, 16);
  memcpy(e->unreg_id, p.session_id, 16);
  snprintf(e->unreg_msg, sizeof(e->unreg_msg), "%.*s", (int)p.message_len, p.message);
  e->unreg_calls++;
  return wr_tunnelrpc_empty_encode(&r->results);
}

static const wr_rpc_method edge_methods[] = {
    {WR_TUNNELRPC_SESSION_MANAGER, WR_TUNNELRPC_UNREGISTER_UDP_SESSION, m_unreg},
};

static erpc *erpc_new(ctx *c, int server) {
  erpc *r = calloc(1, sizeof(*r));
  wr_rpc_session_config cfg;
  r->c = c;
  r->server = server;
  wr_buf_init(&r->raw, 1u << 20, NULL);
  memset(&cfg, 0, sizeof(cfg));
  cfg.write = e_write;
  cfg.user = r;
  if (server) {
    r->sig = WR_PREAMBLE_RPC_LEN;
    cfg.serve_bootstrap = 1;
    cfg.methods = edge_methods;
    cfg.nmethods = 1;
  }
  assert_int_equal(wr_rpc_session_new(&cfg, &r->s), 0);
  return r;
}

static void erpc_free(erpc *r) {
  if (!r->server && r->c->sconn) wr_quic_stream_set_user(r->c->sconn, r->sid, NULL);
  wr_rpc_session_free(r->s);
  wr_buf_free(&r->raw);
  free(r);
}

static void erpc_input(erpc *r, const uint8_t *d, size_t n, int fin) {
  wr_buf_append(&r->raw, d, n);
  if (r->server && r->sig) {
    size_t k = n < r->sig ? n : r->sig;
    r->sig -= k;
    d += k;
    n -= k;
  }
  if (r->s && n) wr_rpc_session_feed(r->s, d, n);
  if (fin) {
    r->got_fin = 1;
    if (r->s) wr_rpc_session_eof(r->s);
  }
}

static void e_hs(wr_quic_conn *qc, void *user) {
  ctx *c = user;
  if (c->sconn && c->sconn != qc) {
    c->sconn2 = qc;
    return;
  }
  c->sconn = qc;
  c->s_ready = 1;
}

static int e_data(wr_quic_conn *qc, int64_t sid, const uint8_t *d, size_t n, int fin, void *user,
                  void *suser) {
  ctx *c = user;
  erpc *r = suser;
  wr_quic_stream_consume(qc, sid, n);
  if (!r && !(sid & 1)) { /* opened by the connector */
    r = erpc_new(c, 1);
    r->sid = sid;
    wr_quic_stream_set_user(qc, sid, r);
    assert_true(c->nincoming < 8);
    c->incoming[c->nincoming++] = r;
  }
  if (r) erpc_input(r, d, n, fin);
  return 0;
}

static int e_datagram(wr_quic_conn *qc, const uint8_t *d, size_t n, void *user) {
  ctx *c = user;
  if (c->ndg < MAXDG && n <= sizeof(c->dg[0])) {
    memcpy(c->dg[c->ndg], d, n);
    c->dgconn[c->ndg] = qc;
    c->dglen[c->ndg++] = n;
  }
  return 0;
}


/* ---- the connector: proxy + mux, as the supervisor wires them ----------------- */

static int is_proxy(int64_t sid, void *suser) { return (sid & 1) || suser; }

static int k_open(wr_quic_conn *qc, int64_t sid, void *user) {
  ctx *c = user;
  return wr_proxy_on_stream_open(c->proxy, qc, sid);
}
static int k_data(wr_quic_conn *qc, int64_t sid, const uint8_t *d, size_t n, int fin, void *user,
                  void *suser) {
  ctx *c = user;
  if (!is_proxy(sid, suser)) return 0;
  return wr_proxy_on_stream_data(c->proxy, qc, sid, d, n, fin, suser);
}
static int k_reset(wr_quic_conn *qc, int64_t sid, uint64_t code, void *user, void *suser) {
  ctx *c = user;
  if (!is_proxy(sid, suser)) return 0;
  return wr_proxy_on_stream_reset(c->proxy, qc, sid, code, suser);
}
static void k_writable(wr_quic_conn *qc, int64_t sid, void *user, void *suser) {
  ctx *c = user;
  if (is_proxy(sid, suser)) wr_proxy_on_stream_writable(c->proxy, qc, sid, suser);
}
static void k_sclose(wr_quic_conn *qc, int64_t sid, int has_code, uint64_t code, void *user,
                     void *suser) {
  ctx *c = user;
  (void)has_code;
  (void)code;
  if (is_proxy(sid, suser)) wr_proxy_on_stream_close(c->proxy, qc, sid, suser);
}
static int k_datagram(wr_quic_conn *qc, const uint8_t *d, size_t n, void *user) {
  ctx *c = user;
  return wr_dgram_mux_input(c->mux, qc, d, n);
}
static void k_close(wr_quic_conn *qc, const wr_quic_close_info *info, void *user) {
  ctx *c = user;
  (void)info;
  wr_proxy_on_conn_close(c->proxy, qc);
  wr_dgram_mux_conn_gone(c->mux, qc);
}

static int ready_done(ctx *c) { return c->s_ready; }

/* The connector's role: take the new rules and serve new streams with them
 * (kept until the end here, as no stream outlives the test). */
static void remote_apply(void *user, wr_ingress *ing) {
  ctx *c = user;
  assert_true(c->napplied < sizeof(c->applied) / sizeof(c->applied[0]));
  c->applied[c->napplied++] = ing;
  wr_proxy_set_ingress(c->proxy, ing);
}

static void ctx_start_v(ctx *c, int warp, size_t cap, int v3) {
  struct sockaddr_in bind;
  struct sockaddr_storage sa;
  int namelen = sizeof(sa);
  wr_proxy_config pc;
  wr_dgram_mux_config mc;
  wr_rpc_services svc;

  memset(c, 0, sizeof(*c));
  unit_qpair_init(&c->q);

  uv_udp_init(&c->q.loop, &c->echo);
  uv_ip4_addr("127.0.0.1", 0, &bind);
  assert_int_equal(uv_udp_bind(&c->echo, (struct sockaddr *)&bind, 0), 0);
  assert_int_equal(uv_udp_getsockname(&c->echo, (struct sockaddr *)&sa, &namelen), 0);
  c->echo_port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
  uv_udp_recv_start(&c->echo, echo_alloc, echo_recv);

  c->ing = unit_ingress_of(warp ? "warp-routing:\n  enabled: true\ningress:\n  - service: "
                             "http_status:404\n"
                           : "ingress:\n  - service: http_status:404\n");
  memset(&pc, 0, sizeof(pc));
  pc.loop = &c->q.loop;
  pc.ingress = c->ing;
  assert_int_equal(wr_proxy_new(&pc, &c->proxy), WR_OK);
  memset(&mc, 0, sizeof(mc));
  mc.loop = &c->q.loop;
  mc.proxy = c->proxy;
  mc.max_sessions_per_conn = cap;
  mc.v3 = v3;
  assert_int_equal(wr_dgram_mux_new(&mc, &c->mux), WR_OK);
  c->rc = wr_remote_config_new(remote_apply, c);
  memset(&svc, 0, sizeof(svc));
  wr_dgram_mux_services(c->mux, &svc);
  wr_remote_config_services(c->rc, &svc);
  wr_proxy_set_services(c->proxy, &svc);

  c->q.ecbs.on_handshake_done = e_hs;
  c->q.ecbs.on_stream_data = e_data;
  c->q.ecbs.on_datagram = e_datagram;
  c->q.kcbs.on_stream_open = k_open;
  c->q.kcbs.on_stream_data = k_data;
  c->q.kcbs.on_stream_reset = k_reset;
  c->q.kcbs.on_stream_writable = k_writable;
  c->q.kcbs.on_stream_close = k_sclose;
  c->q.kcbs.on_datagram = k_datagram;
  c->q.kcbs.on_close = k_close;
  unit_qpair_connect(&c->q, &pki, unit_qpair_accept, c, c);
  run_until(c, ready_done, 5000);
}

static void ctx_start(ctx *c, int warp, size_t cap) { ctx_start_v(c, warp, cap, 0); }

static int second_ready(ctx *c) { return c->sconn2 != NULL; }

/* A second QUIC connection from the connector to the same edge. */
static void ctx_second_conn(ctx *c) {
  unit_qpair_dial(&c->q, &pki, &c->q.kcbs, c, &c->cep2, &c->cconn2);
  run_until(c, second_ready, 5000);
}

static void ctx_stop(ctx *c) {
  wr_dgram_mux_free(c->mux);
  wr_proxy_free(c->proxy);
  if (c->cep2) wr_quic_endpoint_free(c->cep2);
  unit_qpair_free_endpoints(&c->q);
  uv_close((uv_handle_t *)&c->echo, NULL);
  unit_qpair_finish(&c->q);
  for (size_t i = 0; i < c->nincoming; i++) erpc_free(c->incoming[i]);
  wr_remote_config_free(c->rc);
  wr_ingress_free(c->ing);
  for (size_t i = 0; i < c->napplied; i++) wr_ingress_free(c->applied[i]);
}

/* Per-test fixtures: *state is a ctx started with warp-routing on and no
 * session cap, speaking datagram v2 (warp_setup) or v3 (warp_v3_setup);
 * ctx_teardown stops and frees it. */
static int ctx_setup(void **state, int v3) {
  ctx *c = calloc(1, sizeof(*c));
  assert_non_null(c);
  ctx_start_v(c, 1, 0, v3);
  *state = c;
  return 0;
}

static int warp_setup(void **state) { return ctx_setup(state, 0); }
static int warp_v3_setup(void **state) { return ctx_setup(state, 1); }

static int ctx_teardown(void **state) {
  ctx *c = *state;
  ctx_stop(c);
  free(c);
  return 0;
}

/* ---- edge actions ------------------------------------------------------------------ */

/* Opens an RPC stream (signature written); |session|: with a client
 * session, else raw. */
static erpc *edge_open(ctx *c, int session) {
  erpc *r = erpc_new(c, 0);
  size_t acc;
  if (!session) {
    wr_rpc_session_free(r->s);
    r->s = NULL;
  }
  assert_int_equal(wr_quic_stream_open(c->sconn, r, &r->sid), WR_OK);
  assert_int_equal(
      wr_quic_stream_write(c->sconn, r->sid, wr_preamble_rpc_sig, WR_PREAMBLE_RPC_LEN, 0, &acc),
      WR_OK);
  return r;
}

/* The answers of the edge's calls, each with its erpc as |user|. */

/* Counts a return on |r|; an exception (or any answer without results)
 * goes to r->exception with its reason in r->err. Returns whether results
 * came. */
static int erpc_returned(erpc *r, const wr_rpc_return *ret) {
  r->returned++;
  if (ret->which == WR_RPC_RET_RESULTS) return 1;
  r->exception = 1;
  snprintf(r->err, sizeof(r->err), "%.*s", (int)ret->exception.reason_len, ret->exception.reason);
  return 0;
}

/* Keeps the error text of a call's results ("" for none) in r->err. */
static void erpc_results_err(erpc *r, const char *err, size_t len) {
  snprintf(r->err, sizeof(r->err), "%.*s", (int)len, err ? err : "");
}

static void on_register_ret(wr_rpc_session *s, void *user, uint32_t q, const wr_rpc_return *ret) {
  wr_tunnelrpc_udp_register_results res;
  (void)s;
  (void)q;
  if (!erpc_returned(user, ret)) return;
  assert_int_equal(wr_tunnelrpc_udp_register_results_decode(&ret->results, &res), 0);
  assert_null(res.spans);
  erpc_results_err(user, res.err, res.err_len);
}

static void on_empty_ret(wr_rpc_session *s, void *user, uint32_t q, const wr_rpc_return *ret) {
  (void)s;
  (void)q;
  assert_true(erpc_returned(user, ret));
}

static void on_config_ret(wr_rpc_session *s, void *user, uint32_t q, const wr_rpc_return *ret) {
  erpc *r = user;
  wr_tunnelrpc_config_results res;
  (void)s;
  (void)q;
  assert_true(erpc_returned(r, ret));
  assert_int_equal(wr_tunnelrpc_config_results_decode(&ret->results, &res), 0);
  r->latest = res.latest_applied_version;
  erpc_results_err(r, res.err, res.err_len);
}

static int fill_register(void *arg, wr_capnp_bstruct *params) {
  return wr_tunnelrpc_udp_register_params_encode(params, arg);
}
static int fill_unregister(void *arg, wr_capnp_bstruct *params) {
  return wr_tunnelrpc_udp_unregister_params_encode(params, arg);
}
static int fill_config(void *arg, wr_capnp_bstruct *params) {
  return wr_tunnelrpc_config_params_encode(params, arg);
}

static erpc *watched;
static int watched_returned(ctx *c) {
  (void)c;
  return watched->returned > 0;
}

/* Calls |method| of |iface| on a new stream and waits for the answer; the
 * stream is then shut down as the edge does. Returns the stream (freed by
 * the caller). */
static erpc *edge_call(ctx *c, uint64_t iface, uint16_t method, wr_rpc_fill_fn fill, void *params,
                       wr_rpc_return_fn on_return) {
  erpc *r = edge_open(c, 1);
  assert_int_equal(wr_rpc_session_call(r->s, iface, method, fill, params, on_return, r, NULL), 0);
  watched = r;
  run_until(c, watched_returned, 5000);
  wr_rpc_session_shutdown(r->s);
  return r;
}

/* Calls registerUdpSession on a new stream and waits for the answer; the
 * stream is then shut down as the edge does. Returns the stream (freed by
 * the caller). */
static erpc *edge_register(ctx *c, const uint8_t id[16], const char *ip, uint16_t port,
                           int64_t idle_ns, size_t idlen) {
  uint8_t addr[16];
  wr_tunnelrpc_udp_register_params p;
  memset(&p, 0, sizeof(p));
  p.session_id = id;
  p.session_id_len = idlen;
  if (strchr(ip, ':')) {
    inet_pton(AF_INET6, ip, addr);
    p.dst_ip_len = 16;
  } else {
    inet_pton(AF_INET, ip, addr);
    p.dst_ip_len = 4;
  }
  p.dst_ip = addr;
  p.dst_port = port;
  p.close_after_idle_ns = idle_ns;
  return edge_call(c, WR_TUNNELRPC_SESSION_MANAGER, WR_TUNNELRPC_REGISTER_UDP_SESSION, fill_register, &p, on_register_ret);
}

static erpc *edge_unregister(ctx *c, const uint8_t id[16], const char *msg) {
  wr_tunnelrpc_udp_unregister_params p = {id, 16, msg, strlen(msg)};
  return edge_call(c, WR_TUNNELRPC_SESSION_MANAGER, WR_TUNNELRPC_UNREGISTER_UDP_SESSION, fill_unregister, &p, on_empty_ret);
}

static erpc *edge_update(ctx *c, int32_t version, const char *json) {
  wr_tunnelrpc_config_params p = {version, (const uint8_t *)json, strlen(json)};
  return edge_call(c, WR_TUNNELRPC_CONFIGURATION_MANAGER, WR_TUNNELRPC_UPDATE_CONFIGURATION, fill_config, &p, on_config_ret);
}

static size_t want_dg;
static int got_dg(ctx *c) { return c->ndg >= want_dg; }

static void edge_datagram_on(wr_quic_conn *qc, const char *hex) {
  size_t n;
  uint8_t *d = unit_hex(hex, &n);
  assert_int_equal(wr_quic_datagram_send(qc, d, n), WR_OK);
  free(d);
}

static void edge_datagram(ctx *c, const char *hex) { edge_datagram_on(c->sconn, hex); }

static void check_datagram(ctx *c, size_t i, const char *hex) {
  size_t n;
  uint8_t *d = unit_hex(hex, &n);
  assert_int_equal(c->dglen[i], n);
  assert_memory_equal(c->dg[i], d, n);
  free(d);
}

static void expect_datagram(ctx *c, const char *hex) {
  size_t n;
  uint8_t *d = unit_hex(hex, &n);
  want_dg = c->ndg + 1;
  run_until(c, got_dg, 5000);
  assert_int_equal(c->dglen[c->ndg - 1], n);
  assert_memory_equal(c->dg[c->ndg - 1], d, n);
  free(d);
}

static const wr_dgram_mux_stats *mst;
static uint64_t want_received;
static int mux_received(ctx *c) {
  (void)c;
  return mst->received >= want_received;
}

/* Sends the datagrams |hex| (NULL-terminated) from the edge and waits until
 * the mux (its stats in mst) has received them all. */
static void edge_datagrams(ctx *c, const char *const *hex) {
  uint64_t base = mst->received, n = 0;
  for (; hex[n]; n++) edge_datagram(c, hex[n]);
  want_received = base + n;
  run_until(c, mux_received, 5000);
}

/* The datagrams dropped so far, by reason: the mux's counters (mst) and
 * the sessions' payloads for no session. */
static void assert_drops(ctx *c, uint64_t malformed, uint64_t unknown_session, uint64_t unexpected,
                         uint64_t icmp_dropped) {
  assert_int_equal(mst->malformed, malformed);
  assert_int_equal(wr_udp_sessions_get_stats(wr_dgram_mux_sessions(c->mux))->unknown_session,
                   unknown_session);
  assert_int_equal(mst->unexpected, unexpected);
  assert_int_equal(mst->icmp_dropped, icmp_dropped);
}

/* ---- tests ---------------------------------------------------------------------------- */

static const uint8_t vec_id[16] = {0x85, 0xc4, 0x9d, 0xe3, 0xa1, 0x1c, 0x46, 0x0c,
                                   0x8d, 0x13, 0x64, 0xcc, 0xce, 0xba, 0x67, 0x3b};

static int raw_fin(ctx *c) {
  (void)c;
  return watched->got_fin;
}

/* The captured registerUdpSession stream (port patched to our echo origin),
 * answered byte for byte as cloudflared answered it; then the captured
 * datagrams both ways. */
static void test_vector_register_and_echo(void **state) {
  ctx *c = *state;
  size_t inlen, wantlen, acc;
  uint8_t *in = unit_read_vector("quic/rpc.register-udp-session.from-edge.bin", &inlen);
  uint8_t *want = unit_read_vector("quic/rpc.register-udp-session.from-connector.bin", &wantlen);
  /* dstPort 9053 (0x235d) sits once in the Call's data section. */
  uint8_t *port = NULL;
  for (size_t i = 6; i + 1 < inlen; i++)
    if (in[i] == 0x5d && in[i + 1] == 0x23) {
      assert_null(port);
      port = in + i;
    }
  assert_non_null(port);
  port[0] = (uint8_t)(c->echo_port & 0xff);
  port[1] = (uint8_t)(c->echo_port >> 8);

  erpc *r = edge_open(c, 0);
  /* The vector starts with the signature edge_open already wrote. */
  assert_int_equal(wr_quic_stream_write(c->sconn, r->sid, in + 6, inlen - 6, 1, &acc), WR_OK);
  watched = r;
  run_until(c, raw_fin, 5000);
  assert_int_equal(r->raw.len, wantlen);
  assert_memory_equal(r->raw.data, want, wantlen);
  assert_int_equal(wr_udp_sessions_count(wr_dgram_mux_sessions(c->mux), NULL), 1);

  /* datagrams-v2.txt */
  edge_datagram(c, "68656c6c6f2d75647085c49de3a11c460c8d1364ccceba673b00");
  expect_datagram(c, "6563686f3a68656c6c6f2d75647085c49de3a11c460c8d1364ccceba673b00");
  edge_datagram(c, "7365636f6e6485c49de3a11c460c8d1364ccceba673b00");
  expect_datagram(c, "6563686f3a7365636f6e6485c49de3a11c460c8d1364ccceba673b00");
  /* An empty payload is an empty UDP datagram: "echo:" comes back. */
  edge_datagram(c, "85c49de3a11c460c8d1364ccceba673b00");
  expect_datagram(c, "6563686f3a85c49de3a11c460c8d1364ccceba673b00");

  /* Drops, never fatal: unknown session, truncated UDP, spans from the
   * edge, ICMP without an ICMP proxy. */
  mst = wr_dgram_mux_get_stats(c->mux);
  edge_datagrams(c, (const char *const[]){
                         "6869000000000000000000000000000000000100",
                         "01020300",
                         "00000000000000000000000000000000000000000000000000000003",
                         "4500003000010000400139c1c000020a7f0000010800d7ce42420001726566656467652d70696e672d7061796c6f616401",
                         NULL});
  assert_drops(c, 1, 1, 1, 1);
  const wr_udp_sessions_stats *us = wr_udp_sessions_get_stats(wr_dgram_mux_sessions(c->mux));
  assert_int_equal(us->from_origin, 3);
  assert_int_equal(us->to_origin, 3);

  /* The edge unregisters: the session is gone, nothing is sent back. */
  erpc *u = edge_unregister(c, vec_id, "eyeball went away");
  assert_int_equal(wr_udp_sessions_count(wr_dgram_mux_sessions(c->mux), NULL), 0);
  assert_int_equal(us->ended_remote, 1);
  assert_int_equal(c->nincoming, 0);

  erpc_free(u);
  erpc_free(r);
  free(in);
  free(want);
}

static int incoming_done(ctx *c) {
  return c->nincoming == 1 && c->incoming[0]->unreg_calls == 1 && c->incoming[0]->got_fin;
}

/* A session idle for longer than its hint ends, and the connector tells the
 * edge with unregisterUdpSession("session idle for 40ms") on a stream it
 * opens, then closes that stream. */
static void test_idle_unregisters(void **state) {
  ctx *c = *state;
  static const uint8_t id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  erpc *r = edge_register(c, id, "127.0.0.1", c->echo_port, 40000000LL, 16);
  assert_string_equal(r->err, "");
  assert_int_equal(wr_udp_sessions_count(wr_dgram_mux_sessions(c->mux), c->q.cconn), 1);
  run_until(c, incoming_done, 5000);
  erpc *in = c->incoming[0];
  assert_string_equal(in->unreg_msg, "session idle for 40ms");
  assert_memory_equal(in->unreg_id, id, 16);
  /* The stream starts with the RPC signature. */
  assert_memory_equal(in->raw.data, wr_preamble_rpc_sig, WR_PREAMBLE_RPC_LEN);
  /* ... and ends with the client's Abort("rpc: shutdown"). */
  assert_true(wr_rpc_session_closed(in->s));
  assert_string_equal(wr_rpc_session_reason(in->s), "rpc: shutdown");
  assert_int_equal(wr_udp_sessions_count(wr_dgram_mux_sessions(c->mux), NULL), 0);
  assert_int_equal(wr_udp_sessions_get_stats(wr_dgram_mux_sessions(c->mux))->ended_idle, 1);
  assert_int_equal(wr_dgram_mux_get_stats(c->mux)->unregister_sent, 1);
  erpc_free(r);
}

/* The origin port is closed: the kernel's port unreachable makes the
 * connected socket's read fail, which ends the session with Go's error
 * text, reported to the edge. */
static void test_origin_refused(void **state) {
  ctx *c = *state;
  static const uint8_t id[16] = {0xaa, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  uv_udp_t tmp;
  struct sockaddr_in bind;
  struct sockaddr_storage sa;
  int namelen = sizeof(sa);
  uv_udp_init(&c->q.loop, &tmp);
  uv_ip4_addr("127.0.0.1", 0, &bind);
  assert_int_equal(uv_udp_bind(&tmp, (struct sockaddr *)&bind, 0), 0);
  assert_int_equal(uv_udp_getsockname(&tmp, (struct sockaddr *)&sa, &namelen), 0);
  uint16_t closed = ntohs(((struct sockaddr_in *)&sa)->sin_port);
  uv_close((uv_handle_t *)&tmp, NULL);
  erpc *r = edge_register(c, id, "127.0.0.1", closed, 0, 16);
  assert_string_equal(r->err, "");
  edge_datagram(c, "6869aa02030405060708090a0b0c0d0e0f1000"); /* "hi" */
  run_until(c, incoming_done, 5000);
  char want[128];
  snprintf(want, sizeof(want), "->127.0.0.1:%u: read: connection refused", closed);
  const char *m = c->incoming[0]->unreg_msg;
  assert_true(strncmp(m, "read udp 127.0.0.1:", 19) == 0);
  assert_true(strlen(m) > strlen(want) && strcmp(m + strlen(m) - strlen(want), want) == 0);
  assert_int_equal(wr_udp_sessions_get_stats(wr_dgram_mux_sessions(c->mux))->ended_error, 1);
  erpc_free(r);
}

/* Refusals: warp-routing off (err text), the session cap, a session id that
 * is not 16 bytes (an RPC exception, as Go's uuid.FromBytes). */
static void test_refusals(void **state) {
  ctx c;
  uint8_t id[16] = {7};
  (void)state;
  ctx_start(&c, 0, 2);
  erpc *r = edge_register(&c, id, "127.0.0.1", c.echo_port, 0, 16);
  assert_string_equal(r->err, WR_DGRAM_MUX_WARP_DISABLED);
  assert_int_equal(r->exception, 0);
  erpc_free(r);
  assert_int_equal(wr_udp_sessions_count(wr_dgram_mux_sessions(c.mux), NULL), 0);

  /* Turn warp-routing on remotely, then fill the cap of 2. */
  r = edge_update(&c, 0, "{\"warp-routing\":{\"enabled\":true}}");
  assert_int_equal(r->latest, 0);
  assert_string_equal(r->err, "");
  erpc_free(r);
  for (int i = 0; i < 3; i++) {
    id[0] = (uint8_t)(10 + i);
    r = edge_register(&c, id, i == 1 ? "::1" : "127.0.0.1", c.echo_port, 0, 16);
    if (i < 2)
      assert_string_equal(r->err, "");
    else
      assert_string_equal(r->err, "too many active UDP sessions on this connection (limit 2)");
    erpc_free(r);
  }
  /* Re-registering a live id replaces it (no new slot needed). */
  id[0] = 10;
  r = edge_register(&c, id, "127.0.0.1", c.echo_port, 0, 16);
  assert_string_equal(r->err, "");
  erpc_free(r);
  assert_int_equal(wr_udp_sessions_count(wr_dgram_mux_sessions(c.mux), NULL), 2);

  r = edge_register(&c, id, "127.0.0.1", c.echo_port, 0, 15);
  assert_int_equal(r->exception, 1);
  assert_string_equal(r->err, "invalid UUID (got 15 bytes)");
  erpc_free(r);
  ctx_stop(&c);
}

/* updateConfiguration: version ordering, refusals keep the current
 * version, the new rules and warp-routing take effect, an empty ingress is
 * the 503 rule. */
static void test_update_configuration(void **state) {
  ctx c;
  (void)state;
  ctx_start(&c, 0, 0);
  const wr_ingress *before = wr_proxy_ingress(c.proxy);
  erpc *r = edge_update(&c, 3,
                        "{\"ingress\":[{\"hostname\":\"app.example.test\",\"service\":"
                        "\"http://127.0.0.1:9000\",\"originRequest\":{\"connectTimeout\":10}},"
                        "{\"service\":\"http_status:404\"}],\"warp-routing\":{\"enabled\":true},"
                        "\"originRequest\":{}}");
  assert_int_equal(r->latest, 3);
  assert_string_equal(r->err, "");
  erpc_free(r);
  const wr_ingress *ing = wr_proxy_ingress(c.proxy);
  assert_ptr_not_equal(ing, before);
  assert_int_equal(ing->n_rules, 2);
  assert_string_equal(ing->rules[0].hostname, "app.example.test");
  assert_int_equal(ing->rules[0].origin.connect_timeout_ns, 10LL * 1000000000LL);
  assert_true(ing->warp.enabled);

  r = edge_update(&c, 3, "{\"ingress\":[]}"); /* not newer: nothing happens */
  assert_int_equal(r->latest, 3);
  assert_string_equal(r->err, "");
  erpc_free(r);
  assert_ptr_equal(wr_proxy_ingress(c.proxy), ing);

  r = edge_update(&c, 4, "{\"ingress\":[{\"service\":\"htp://x\"}]}");
  assert_int_equal(r->latest, 3);
  assert_true(strlen(r->err) > 0);
  erpc_free(r);
  r = edge_update(&c, 5, "not json");
  assert_int_equal(r->latest, 3);
  assert_true(strlen(r->err) > 0);
  erpc_free(r);
  assert_ptr_equal(wr_proxy_ingress(c.proxy), ing);

  r = edge_update(&c, 6, "{}");
  assert_int_equal(r->latest, 6);
  assert_string_equal(r->err, "");
  erpc_free(r);
  ing = wr_proxy_ingress(c.proxy);
  assert_int_equal(ing->n_rules, 1);
  assert_int_equal(ing->rules[0].service.kind, WR_SVC_HTTP_STATUS);
  assert_int_equal(ing->rules[0].service.status, 503);
  assert_false(ing->warp.enabled);
  assert_int_equal(wr_remote_config_version(c.rc), 6);
  ctx_stop(&c);
}

/* ---- datagram v3 ------------------------------------------------------------------------- */

/* protocol.md 6.6's registration example (10.0.0.1:53, idle 210 s, id
 * 5e551011-...-0001) with |ip| (4 bytes, dotted) and |port| patched in;
 * |flags| 0 or 0x04 (bundled, |bundle_hex| follows the header). */
static void v3_reg_hex(char *out, size_t cap, uint8_t flags, uint16_t port, unsigned idle_s,
                       const char *id_hex, const char *bundle_hex) {
  snprintf(out, cap, "00%02x%04x%04x%s7f000001%s", flags, port, idle_s, id_hex,
           bundle_hex ? bundle_hex : "");
}

#define V3_ID "5e551011000040008000000000000001"
#define V3_ID2 "5e551011000040008000000000000002"
/* "echo:" + "hi", "echo:" + "first" */
#define ECHO_HI "6563686f3a6869"
#define ECHO_FIRST "6563686f3a6669727374"

/* Registration (the 6.6 example, answered with the 6.6 OK response byte
 * for byte), the "hi" payload example echoed as a type 1 datagram, a
 * re-registration answered OK again, a bundled first payload, drops of
 * malformed / response / ICMP-without-proxy datagrams, and the RPC calls
 * refused with cloudflared HEAD's texts. */
static void test_v3_register_and_echo(void **state) {
  ctx *c = *state;
  char hex[256];
  mst = wr_dgram_mux_get_stats(c->mux);
  const wr_udp_sessions_stats *us = wr_udp_sessions_get_stats(wr_dgram_mux_sessions(c->mux));

  v3_reg_hex(hex, sizeof(hex), 0, c->echo_port, 210, V3_ID, NULL);
  edge_datagram(c, hex);
  expect_datagram(c, "0300" V3_ID "0000");
  assert_int_equal(wr_udp_sessions_count(wr_dgram_mux_sessions(c->mux), c->q.cconn), 1);

  edge_datagram(c, "01" V3_ID "6869"); /* 6.6's payload "hi" */
  expect_datagram(c, "01" V3_ID ECHO_HI);

  /* The edge missed the answer and registers again: OK again, one flow. */
  edge_datagram(c, hex);
  expect_datagram(c, "0300" V3_ID "0000");
  assert_int_equal(wr_udp_sessions_count(wr_dgram_mux_sessions(c->mux), NULL), 1);
  assert_int_equal(us->reregistered, 1);

  /* A bundled first payload reaches the origin. */
  v3_reg_hex(hex, sizeof(hex), 0x04, c->echo_port, 0, V3_ID2, "6669727374");
  edge_datagram(c, hex);
  want_dg = c->ndg + 2;
  run_until(c, got_dg, 5000);
  /* The response first: it leaves before the echo can come back. */
  check_datagram(c, c->ndg - 2, "0300" V3_ID2 "0000");
  check_datagram(c, c->ndg - 1, "01" V3_ID2 ECHO_FIRST);
  assert_int_equal(wr_udp_sessions_count(wr_dgram_mux_sessions(c->mux), NULL), 2);

  /* Drops: a truncated registration, a payload for no flow, a response
   * from the edge, ICMP without an ICMP proxy, an unknown type. */
  edge_datagrams(c, (const char *const[]){"0000003500d2",
                                            "01" "0000000000000000000000000000dead" "6869",
                                            "0300" V3_ID "0000",
                                            "024500001c0000000040016ee00a0000020a0000010800f7ff00000000",
                                            "07", NULL});
  assert_drops(c, 2, 1, 1, 1);
  assert_int_equal(mst->v3_register, 3);
  assert_int_equal(mst->v3_responses, 3);

  /* The session RPCs are not for v3. */
  static const uint8_t id[16] = {9};
  erpc *r = edge_register(c, id, "127.0.0.1", c->echo_port, 0, 16);
  assert_int_equal(r->exception, 0);
  assert_string_equal(r->err, "datagram v3 does not support RegisterUdpSession RPC");
  erpc_free(r);
  {
    wr_tunnelrpc_udp_unregister_params p = {id, 16, "bye", 3};
    erpc *u = edge_open(c, 1);
    assert_int_equal(wr_rpc_session_call(u->s, WR_TUNNELRPC_SESSION_MANAGER,
                                         WR_TUNNELRPC_UNREGISTER_UDP_SESSION, fill_unregister, &p,
                                         on_register_ret, u, NULL),
                     0);
    watched = u;
    run_until(c, watched_returned, 5000);
    assert_int_equal(u->exception, 1);
    assert_string_equal(u->err, "datagram v3 does not support UnregisterUdpSession RPC");
    wr_rpc_session_shutdown(u->s);
    erpc_free(u);
  }
  assert_int_equal(mst->v3_rpc_refused, 2);
  assert_int_equal(wr_udp_sessions_count(wr_dgram_mux_sessions(c->mux), NULL), 2);
}

/* Refusals as type 3 responses: warp-routing off (error with message, the
 * text in the datagram), too many flows (cap 1), unable to bind (a UDP
 * connect to the broadcast address without SO_BROADCAST fails). */
static void test_v3_refusals(void **state) {
  ctx c;
  char hex[256], want[700];
  (void)state;
  ctx_start_v(&c, 0, 1, 1);
  v3_reg_hex(hex, sizeof(hex), 0, c.echo_port, 0, V3_ID, NULL);
  edge_datagram(&c, hex);
  size_t ml = strlen(WR_DGRAM_MUX_WARP_DISABLED);
  int o = snprintf(want, sizeof(want), "03ff" V3_ID "%04zx", ml);
  for (size_t i = 0; i < ml; i++)
    o += snprintf(want + o, sizeof(want) - (size_t)o, "%02x",
                  (unsigned char)WR_DGRAM_MUX_WARP_DISABLED[i]);
  expect_datagram(&c, want);
  assert_int_equal(wr_udp_sessions_count(wr_dgram_mux_sessions(c.mux), NULL), 0);

  erpc *r = edge_update(&c, 0, "{\"warp-routing\":{\"enabled\":true}}");
  assert_string_equal(r->err, "");
  erpc_free(r);
  edge_datagram(&c, hex);
  expect_datagram(&c, "0300" V3_ID "0000");
  v3_reg_hex(hex, sizeof(hex), 0, c.echo_port, 0, V3_ID2, NULL);
  edge_datagram(&c, hex);
  expect_datagram(&c, "0303" V3_ID2 "0000");
  assert_int_equal(wr_udp_sessions_count(wr_dgram_mux_sessions(c.mux), NULL), 1);
  ctx_stop(&c);

  ctx_start_v(&c, 1, 0, 1);
  edge_datagram(&c, "00000035000a" V3_ID "ffffffff");
  expect_datagram(&c, "0302" V3_ID "0000");
  assert_int_equal(wr_udp_sessions_count(wr_dgram_mux_sessions(c.mux), NULL), 0);
  ctx_stop(&c);
}

static int flow_gone(ctx *c) { return wr_udp_sessions_count(wr_dgram_mux_sessions(c->mux), NULL) == 0; }

/* A flow registered on one connection and registered again from another
 * migrates: OK on the new connection, and the origin's replies go there,
 * whichever connection the payload came on. It ends after its idle hint
 * (1 s) without any message to the edge. */
static void test_v3_migration_and_idle(void **state) {
  ctx *c = *state;
  char hex[256];
  ctx_second_conn(c);
  v3_reg_hex(hex, sizeof(hex), 0, c->echo_port, 1, V3_ID, NULL);
  edge_datagram(c, hex);
  expect_datagram(c, "0300" V3_ID "0000");
  assert_ptr_equal(c->dgconn[c->ndg - 1], c->sconn);
  edge_datagram_on(c->sconn2, hex);
  expect_datagram(c, "0300" V3_ID "0000");
  assert_ptr_equal(c->dgconn[c->ndg - 1], c->sconn2);
  assert_int_equal(wr_udp_sessions_get_stats(wr_dgram_mux_sessions(c->mux))->migrated, 1);
  edge_datagram(c, "01" V3_ID "6869");
  expect_datagram(c, "01" V3_ID ECHO_HI);
  assert_ptr_equal(c->dgconn[c->ndg - 1], c->sconn2);
  assert_int_equal(wr_udp_sessions_count(wr_dgram_mux_sessions(c->mux), c->cconn2), 1);

  run_until(c, flow_gone, 5000);
  assert_int_equal(wr_udp_sessions_get_stats(wr_dgram_mux_sessions(c->mux))->ended_idle, 1);
  assert_int_equal(c->nincoming, 0);
  assert_int_equal(wr_dgram_mux_get_stats(c->mux)->unregister_sent, 0);
}

int main(void) {
  return UNIT_RUN(
      group_setup, unit_pki_teardown,
      UNIT_TESTS(test_go_duration, test_refusals, test_update_configuration, test_v3_refusals),
      UNIT_FIXTURE(warp_setup, ctx_teardown, test_vector_register_and_echo, test_idle_unregisters,
                   test_origin_refused),
      UNIT_FIXTURE(warp_v3_setup, ctx_teardown, test_v3_register_and_echo,
                   test_v3_migration_and_idle));
}
