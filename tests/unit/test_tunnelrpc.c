/* tunnelrpc params/results codec (src/proto/tunnelrpc.c): the captured
 * registration and UDP-session streams, the golden transcripts, messages
 * rebuilt from scratch byte for byte, round trips of synthetic values,
 * malformed content and allocation failures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "proto/rpc.h"
#include "proto/tunnelrpc.h"
#include "rpc_reencode.h"
#include "unit.h"

/* ---- helpers ------------------------------------------------------------ */

static int str_is(const char *s, size_t len, const char *want) {
  return s && len == strlen(want) && memcmp(s, want, len) == 0 && s[len] == '\0';
}

#define assert_str(s, len, want)                                                             \
  do {                                                                                       \
    if (!str_is((s), (len), (want)))                                                         \
      fail_msg("got '%.*s', want '%s'", (int)(len), (s) ? (const char *)(s) : "", (want)); \
  } while (0)

static void assert_bytes(const uint8_t *p, size_t len, const char *hex) {
  size_t n;
  uint8_t *want = unit_hex(hex, &n);
  assert_int_equal(len, n);
  if (n) assert_memory_equal(p, want, n);
  free(want);
}

static void assert_uuid(const uint8_t *p, size_t len, const char *s) {
  wr_uuid u;
  assert_int_equal(wr_uuid_parse(s, strlen(s), &u), 0);
  assert_int_equal(len, 16);
  assert_memory_equal(p, u.b, 16);
}

/* Decodes the |index|-th message of an RPC stream into |m|; the message's
 * bytes are returned through |at|/|len|. */
static void stream_msg(const uint8_t *buf, size_t buflen, size_t index, wr_rpc_msg *m,
                       const uint8_t **at, size_t *len) {
  size_t off = 0, used = 0;
  for (size_t i = 0;; i++) {
    int rv = wr_rpc_decode(m, buf + off, buflen - off, NULL, &used);
    if (rv != 0) fail_msg("message %zu: %s", i, wr_strerror(rv));
    if (i == index) break;
    off += used;
  }
  *at = buf + off;
  *len = used;
}

typedef int (*content_fn)(wr_capnp_bstruct *payload, const void *arg);

/* Builds a whole Call from scratch, with |fill| writing the params. */
static void build_call(wr_capnp_builder *b, uint32_t q, uint64_t iface, uint16_t method,
                       uint16_t tw, uint32_t tid, content_fn fill, const void *arg) {
  wr_capnp_bstruct p;
  wr_capnp_builder_init(b, NULL, 0);
  assert_int_equal(wr_rpc_begin_call(b, q, iface, method, tw, tid, &p), 0);
  assert_int_equal(fill(&p, arg), 0);
  assert_int_equal(wr_rpc_end_payload(&p, NULL, 0), 0);
}

/* Builds a results Return from scratch (Go servers: releaseParamCaps 0). */
static void build_return(wr_capnp_builder *b, uint32_t a, content_fn fill, const void *arg) {
  wr_capnp_bstruct p;
  wr_capnp_builder_init(b, NULL, 0);
  assert_int_equal(wr_rpc_begin_return(b, a, 0, &p), 0);
  assert_int_equal(fill(&p, arg), 0);
  assert_int_equal(wr_rpc_end_payload(&p, NULL, 0), 0);
}

static void assert_builder_bytes(wr_capnp_builder *b, const uint8_t *want, size_t len) {
  const uint8_t *out;
  size_t n;
  assert_int_equal(wr_capnp_builder_finish(b, &out, &n), 0);
  assert_int_equal(n, len);
  assert_memory_equal(out, want, len);
  wr_capnp_builder_free(b);
}

/* Builds the Call of question 1 (on |tw|, id 0) with |fill| and checks it
 * is |want| byte for byte. */
static void assert_call_bytes(uint64_t iface, uint16_t method, uint16_t tw, content_fn fill,
                              const void *arg, const uint8_t *want, size_t len) {
  wr_capnp_builder b;
  build_call(&b, 1, iface, method, tw, 0, fill, arg);
  assert_builder_bytes(&b, want, len);
}

/* The same for the Return to question |a|. */
static void assert_return_bytes(uint32_t a, content_fn fill, const void *arg, const uint8_t *want,
                                size_t len) {
  wr_capnp_builder b;
  build_return(&b, a, fill, arg);
  assert_builder_bytes(&b, want, len);
}

static int fill_register(wr_capnp_bstruct *p, const void *a) {
  return wr_tunnelrpc_register_params_encode(p, a);
}
static int fill_register_results(wr_capnp_bstruct *p, const void *a) {
  return wr_tunnelrpc_register_results_encode(p, a);
}
static int fill_empty(wr_capnp_bstruct *p, const void *a) {
  (void)a;
  return wr_tunnelrpc_empty_encode(p);
}
typedef struct blob {
  const uint8_t *p;
  size_t n;
} blob;
static int fill_local_config(wr_capnp_bstruct *p, const void *a) {
  const blob *c = a;
  return wr_tunnelrpc_local_config_encode(p, c->p, c->n);
}
static int fill_udp(wr_capnp_bstruct *p, const void *a) {
  return wr_tunnelrpc_udp_register_params_encode(p, a);
}
static int fill_udp_results(wr_capnp_bstruct *p, const void *a) {
  return wr_tunnelrpc_udp_register_results_encode(p, a);
}
static int fill_udp_unreg(wr_capnp_bstruct *p, const void *a) {
  return wr_tunnelrpc_udp_unregister_params_encode(p, a);
}
static int fill_config(wr_capnp_bstruct *p, const void *a) {
  return wr_tunnelrpc_config_params_encode(p, a);
}
static int fill_config_results(wr_capnp_bstruct *p, const void *a) {
  return wr_tunnelrpc_config_results_encode(p, a);
}

static int has_feature(const wr_tunnelrpc_client_info *c, const char *f) {
  for (size_t i = 0; i < c->nfeatures; i++)
    if (str_is(c->features[i].ptr, c->features[i].len, f)) return 1;
  return 0;
}

/* ---- captured control stream ---------------------------------------------- */

static const char local_config_json[] =
    "{\"__configuration_flags\":{\"metrics\":\"127.0.0.1:20241\",\"no-autoupdate\":\"true\","
    "\"protocol\":\"quic\"},\"ingress\":[{\"hostname\":\"ws.example.test\",\"service\":"
    "\"http://127.0.0.1:9001\",\"originRequest\":{}},{\"hostname\":\"app.example.test\","
    "\"service\":\"http://127.0.0.1:9000\",\"originRequest\":{}},{\"service\":"
    "\"http_status:404\",\"originRequest\":{}}],\"warp-routing\":{\"enabled\":true}}";

static void test_register_connection_vector(void **state) {
  (void)state;
  static wr_rpc_msg m;
  static wr_tunnelrpc_register_params p;
  size_t len, mlen, clen;
  const uint8_t *at;
  uint8_t *buf = unit_read_vector("quic/control.register.from-connector.bin", &len);
  char *cred = (char *)unit_read_vector("quic/credentials.json", &clen);

  /* The credentials: TunnelSecret is standard base64. */
  cred = realloc(cred, clen + 1);
  cred[clen] = '\0';
  const char *s = strstr(cred, "\"TunnelSecret\":\"");
  assert_non_null(s);
  s += strlen("\"TunnelSecret\":\"");
  const char *e = strchr(s, '"');
  uint8_t secret[64];
  int secret_len = wr_base64_decode(s, (size_t)(e - s), secret, sizeof(secret), 0);
  assert_int_equal(secret_len, 32);

  stream_msg(buf, len, 1, &m, &at, &mlen);
  assert_int_equal(m.which, WR_RPC_CALL);
  assert_int_equal(wr_tunnelrpc_method_lookup(m.call.interface_id, m.call.method_id),
                   WR_TUNNELRPC_M_REGISTER_CONNECTION);
  assert_int_equal(wr_tunnelrpc_register_params_decode(&m.call.params, &p), 0);
  assert_str(p.account_tag, p.account_tag_len, "acct123");
  assert_int_equal(p.tunnel_secret_len, (size_t)secret_len);
  assert_memory_equal(p.tunnel_secret, secret, (size_t)secret_len);
  assert_uuid(p.tunnel_id, p.tunnel_id_len, "0c9cd40e-166a-439f-8bd1-fcef1cfb28f1");
  assert_int_equal(p.conn_index, 0);
  assert_int_equal(p.client.client_id_len, 16); /* the per-process connector ID */
  /* A set (Go map order): check membership, not order. */
  assert_int_equal(p.client.nfeatures, 5);
  assert_true(has_feature(&p.client, "support_datagram_v2"));
  assert_true(has_feature(&p.client, "support_quic_eof"));
  assert_true(has_feature(&p.client, "management_logs"));
  assert_true(has_feature(&p.client, "allow_remote_config"));
  assert_true(has_feature(&p.client, "serialized_headers"));
  assert_str(p.client.version, p.client.version_len, "DEV");
  assert_str(p.client.arch, p.client.arch_len, "linux_amd64");
  /* net.ParseIP form: 16 bytes even for IPv4 (the edge's address here). */
  assert_bytes(p.origin_local_ip, p.origin_local_ip_len, "00000000000000000000ffff7f000001");
  assert_int_equal(p.replace_existing, 0);
  assert_int_equal(p.compression_quality, 0);
  assert_int_equal(p.num_previous_attempts, 0);

  /* Rebuilt from the decoded values: cloudflared's exact bytes. */
  assert_call_bytes(WR_TUNNELRPC_REGISTRATION_SERVER, WR_TUNNELRPC_REGISTER_CONNECTION,
                    WR_RPC_TARGET_PROMISED_ANSWER, fill_register, &p, at, mlen);

  /* updateLocalConfiguration with the config JSON, on importedCap 0. */
  stream_msg(buf, len, 4, &m, &at, &mlen);
  assert_int_equal(wr_tunnelrpc_method_lookup(m.call.interface_id, m.call.method_id),
                   WR_TUNNELRPC_M_UPDATE_LOCAL_CONFIGURATION);
  blob cfg;
  assert_int_equal(wr_tunnelrpc_local_config_decode(&m.call.params, &cfg.p, &cfg.n), 0);
  assert_int_equal(cfg.n, strlen(local_config_json));
  assert_memory_equal(cfg.p, local_config_json, cfg.n);
  assert_call_bytes(WR_TUNNELRPC_REGISTRATION_SERVER, WR_TUNNELRPC_UPDATE_LOCAL_CONFIGURATION,
                    WR_RPC_TARGET_IMPORTED_CAP, fill_local_config, &cfg, at, mlen);
  free(cred);
  free(buf);
}

static void test_register_results_vector(void **state) {
  (void)state;
  static wr_rpc_msg m;
  wr_tunnelrpc_conn_response r;
  wr_capnp_builder b;
  size_t len, mlen;
  const uint8_t *at;
  uint8_t *buf = unit_read_vector("quic/control.register.from-edge.bin", &len);

  /* The bootstrap answer: capability #0 = senderHosted export 0. */
  stream_msg(buf, len, 0, &m, &at, &mlen);
  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_rpc_build_return_bootstrap(&b, 0, 0), 0);
  assert_builder_bytes(&b, at, mlen);
  /* Its content is a capability, not a results struct. */
  assert_int_equal(wr_tunnelrpc_register_results_decode(&m.ret.results, &r), WR_ERR_PROTO);
  assert_int_equal(wr_tunnelrpc_empty_decode(&m.ret.results), WR_ERR_PROTO);

  stream_msg(buf, len, 1, &m, &at, &mlen);
  assert_int_equal(m.ret.answer_id, 1);
  assert_int_equal(wr_tunnelrpc_register_results_decode(&m.ret.results, &r), 0);
  assert_int_equal(r.which, WR_TUNNELRPC_CONN_DETAILS);
  assert_uuid(r.details.uuid, r.details.uuid_len, "bbba2c1a-a212-4326-81ec-f1a69e9e2fa4");
  assert_str(r.details.location, r.details.location_len, "REF");
  assert_int_equal(r.details.remotely_managed, 0);
  assert_return_bytes(1, fill_register_results, &r, at, mlen);

  /* updateLocalConfiguration's empty results. */
  stream_msg(buf, len, 2, &m, &at, &mlen);
  assert_int_equal(wr_tunnelrpc_empty_decode(&m.ret.results), 0);
  assert_return_bytes(1, fill_empty, NULL, at, mlen);
  free(buf);
}

static void test_udp_session_vectors(void **state) {
  (void)state;
  static wr_rpc_msg m;
  wr_tunnelrpc_udp_register_params p;
  wr_tunnelrpc_udp_register_results r;
  size_t len, mlen;
  const uint8_t *at;
  uint8_t *buf = unit_read_vector("quic/rpc.register-udp-session.from-edge.bin", &len);
  stream_msg(buf + 6, len - 6, 1, &m, &at, &mlen); /* after the RPC signature */
  assert_int_equal(wr_tunnelrpc_method_lookup(m.call.interface_id, m.call.method_id),
                   WR_TUNNELRPC_M_REGISTER_UDP_SESSION);
  assert_int_equal(wr_tunnelrpc_udp_register_params_decode(&m.call.params, &p), 0);
  assert_uuid(p.session_id, p.session_id_len, "85c49de3-a11c-460c-8d13-64ccceba673b");
  /* 127.0.0.1 in the 16-byte IPv4-mapped form. */
  assert_bytes(p.dst_ip, p.dst_ip_len, "00000000000000000000ffff7f000001");
  assert_int_equal(p.dst_port, 9053);
  assert_true(p.close_after_idle_ns == 30000000000ll); /* 30 s */
  assert_int_equal(p.trace_context_len, 0);
  assert_string_equal(p.trace_context, "");
  assert_call_bytes(WR_TUNNELRPC_SESSION_MANAGER, WR_TUNNELRPC_REGISTER_UDP_SESSION,
                    WR_RPC_TARGET_PROMISED_ANSWER, fill_udp, &p, at, mlen);
  free(buf);

  buf = unit_read_vector("quic/rpc.register-udp-session.from-connector.bin", &len);
  stream_msg(buf, len, 1, &m, &at, &mlen);
  assert_int_equal(wr_tunnelrpc_udp_register_results_decode(&m.ret.results, &r), 0);
  assert_int_equal(r.err_len, 0); /* success */
  assert_string_equal(r.err, "");
  assert_null(r.spans);
  assert_int_equal(r.spans_len, 0);
  assert_return_bytes(1, fill_udp_results, &r, at, mlen);
  free(buf);
}

/* ---- golden-encodings.md ------------------------------------------------------- */

static const golden_entry *golden_msg(const golden_set *g, const char *title, wr_rpc_msg *m) {
  const golden_entry *e = golden_get(g, title);
  size_t used;
  assert_int_equal(wr_rpc_decode(m, e->bytes, e->len, NULL, &used), 0);
  assert_int_equal(used, e->len);
  return e;
}

static void test_golden_registration(void **state) {
  (void)state;
  static wr_rpc_msg m;
  static wr_tunnelrpc_register_params p;
  wr_tunnelrpc_conn_response r;
  golden_set g = golden_load();
  const char *const transcripts[] = {"CONTROL-OK", "CONTROL-EXC", "CONTROL-ERR"};

  for (int t = 0; t < 3; t++) {
    char title[64];
    snprintf(title, sizeof(title), "%s msg#1 ", transcripts[t]);
    const golden_entry *e = golden_msg(&g, title, &m);
    assert_int_equal(wr_tunnelrpc_register_params_decode(&m.call.params, &p), 0);
    assert_str(p.account_tag, p.account_tag_len, "0123456789abcdef0123456789abcdef");
    assert_bytes(p.tunnel_secret, p.tunnel_secret_len,
                 "abababababababababababababababababababababababababababababababab");
    assert_uuid(p.tunnel_id, p.tunnel_id_len, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
    assert_int_equal(p.conn_index, 0);
    assert_bytes(p.client.client_id, p.client.client_id_len, "0102030405060708090a0b0c0d0e0f10");
    assert_int_equal(p.client.nfeatures, 2);
    assert_str(p.client.features[0].ptr, p.client.features[0].len, "serialized_headers");
    assert_str(p.client.features[1].ptr, p.client.features[1].len, "support_datagram_v2");
    assert_str(p.client.version, p.client.version_len, "2023.7.3");
    assert_str(p.client.arch, p.client.arch_len, "linux_amd64");
    assert_bytes(p.origin_local_ip, p.origin_local_ip_len, "00000000000000000000ffffc0a8010a");
    assert_call_bytes(WR_TUNNELRPC_REGISTRATION_SERVER, WR_TUNNELRPC_REGISTER_CONNECTION,
                      WR_RPC_TARGET_PROMISED_ANSWER, fill_register, &p, e->bytes, e->len);
  }

  /* Success: ConnectionDetails. */
  const golden_entry *e = golden_msg(&g, "CONTROL-OK msg#3 ", &m);
  assert_int_equal(wr_tunnelrpc_register_results_decode(&m.ret.results, &r), 0);
  assert_int_equal(r.which, WR_TUNNELRPC_CONN_DETAILS);
  assert_uuid(r.details.uuid, r.details.uuid_len, "11111111-2222-3333-4444-555555555555");
  assert_str(r.details.location, r.details.location_len, "SFO");
  assert_int_equal(r.details.remotely_managed, 0);
  assert_return_bytes(1, fill_register_results, &r, e->bytes, e->len);

  /* Error: EDUPCONN, retry after 5 s, retryable. */
  e = golden_msg(&g, "CONTROL-ERR msg#3 ", &m);
  assert_int_equal(wr_tunnelrpc_register_results_decode(&m.ret.results, &r), 0);
  assert_int_equal(r.which, WR_TUNNELRPC_CONN_ERROR);
  assert_str(r.error.cause, r.error.cause_len, "EDUPCONN");
  assert_true(r.error.retry_after_ns == 5000000000ll);
  assert_int_equal(r.error.should_retry, 1);
  assert_return_bytes(1, fill_register_results, &r, e->bytes, e->len);

  /* updateLocalConfiguration {"ingress":[]} on importedCap 0. */
  e = golden_msg(&g, "CONTROL-OK msg#6 ", &m);
  blob cfg;
  assert_int_equal(wr_tunnelrpc_local_config_decode(&m.call.params, &cfg.p, &cfg.n), 0);
  assert_int_equal(cfg.n, 14);
  assert_memory_equal(cfg.p, "{\"ingress\":[]}", 14);
  assert_call_bytes(WR_TUNNELRPC_REGISTRATION_SERVER, WR_TUNNELRPC_UPDATE_LOCAL_CONFIGURATION,
                    WR_RPC_TARGET_IMPORTED_CAP, fill_local_config, &cfg, e->bytes, e->len);

  /* unregisterConnection: empty params and results. */
  e = golden_msg(&g, "CONTROL-OK msg#9 ", &m);
  assert_int_equal(wr_tunnelrpc_empty_decode(&m.call.params), 0);
  e = golden_msg(&g, "CONTROL-OK msg#10 ", &m);
  assert_int_equal(wr_tunnelrpc_empty_decode(&m.ret.results), 0);
  assert_return_bytes(1, fill_empty, NULL, e->bytes, e->len);
  golden_free(&g);
}

static void test_golden_sessions(void **state) {
  (void)state;
  static wr_rpc_msg m;
  wr_tunnelrpc_udp_register_params p;
  wr_tunnelrpc_udp_register_results r;
  wr_tunnelrpc_udp_unregister_params u;
  wr_tunnelrpc_config_params c;
  wr_tunnelrpc_config_results cr;
  golden_set g = golden_load();

  const golden_entry *e = golden_msg(&g, "RPC-REGUDP msg#1 ", &m);
  assert_int_equal(wr_tunnelrpc_udp_register_params_decode(&m.call.params, &p), 0);
  assert_uuid(p.session_id, p.session_id_len, "5e551011-0000-4000-8000-000000000001");
  assert_bytes(p.dst_ip, p.dst_ip_len, "0a000001");
  assert_int_equal(p.dst_port, 53);
  assert_true(p.close_after_idle_ns == 210000000000ll);
  assert_int_equal(p.trace_context_len, 0);
  assert_call_bytes(WR_TUNNELRPC_SESSION_MANAGER, WR_TUNNELRPC_REGISTER_UDP_SESSION,
                    WR_RPC_TARGET_PROMISED_ANSWER, fill_udp, &p, e->bytes, e->len);

  e = golden_msg(&g, "RPC-REGUDP msg#3 ", &m);
  assert_int_equal(wr_tunnelrpc_udp_register_results_decode(&m.ret.results, &r), 0);
  assert_int_equal(r.err_len, 0);
  assert_null(r.spans);
  assert_return_bytes(1, fill_udp_results, &r, e->bytes, e->len);

  /* Registration errors travel in err, not as an RPC exception. */
  e = golden_msg(&g, "RPC-REGUDP-ERR msg#3 ", &m);
  assert_int_equal(m.ret.which, WR_RPC_RET_RESULTS);
  assert_int_equal(wr_tunnelrpc_udp_register_results_decode(&m.ret.results, &r), 0);
  assert_str(r.err, r.err_len, "dial failed");
  assert_return_bytes(1, fill_udp_results, &r, e->bytes, e->len);

  e = golden_msg(&g, "RPC-UNREGUDP msg#1 ", &m);
  assert_int_equal(wr_tunnelrpc_udp_unregister_params_decode(&m.call.params, &u), 0);
  assert_uuid(u.session_id, u.session_id_len, "5e551011-0000-4000-8000-000000000001");
  assert_str(u.message, u.message_len, "terminated without error");
  assert_call_bytes(WR_TUNNELRPC_SESSION_MANAGER, WR_TUNNELRPC_UNREGISTER_UDP_SESSION,
                    WR_RPC_TARGET_PROMISED_ANSWER, fill_udp_unreg, &u, e->bytes, e->len);
  e = golden_msg(&g, "RPC-UNREGUDP msg#4 ", &m);
  assert_int_equal(wr_tunnelrpc_empty_decode(&m.ret.results), 0);
  assert_return_bytes(m.ret.answer_id, fill_empty, NULL, e->bytes, e->len);

  static const char json[] =
      "{\"ingress\":[{\"service\":\"http_status:404\"}],\"warp-routing\":{\"enabled\":false}}";
  e = golden_msg(&g, "RPC-UPDCFG msg#1 ", &m);
  assert_int_equal(wr_tunnelrpc_config_params_decode(&m.call.params, &c), 0);
  assert_int_equal(c.version, 7);
  assert_int_equal(c.config_len, strlen(json));
  assert_memory_equal(c.config, json, c.config_len);
  assert_call_bytes(WR_TUNNELRPC_CONFIGURATION_MANAGER, WR_TUNNELRPC_UPDATE_CONFIGURATION,
                    WR_RPC_TARGET_PROMISED_ANSWER, fill_config, &c, e->bytes, e->len);

  e = golden_msg(&g, "RPC-UPDCFG msg#3 ", &m);
  assert_int_equal(wr_tunnelrpc_config_results_decode(&m.ret.results, &cr), 0);
  assert_int_equal(cr.latest_applied_version, 7);
  assert_int_equal(cr.err_len, 0);
  assert_return_bytes(1, fill_config_results, &cr, e->bytes, e->len);
  golden_free(&g);
}

/* ---- synthetic round trips ----------------------------------------------------- */

/* Finishes |b|, decodes the message into |m| and returns its Call params or
 * Return results. */
static const wr_rpc_payload *reread(wr_capnp_builder *b, wr_rpc_msg *m) {
  const uint8_t *out;
  size_t n, used;
  assert_int_equal(wr_capnp_builder_finish(b, &out, &n), 0);
  assert_int_equal(wr_rpc_decode(m, out, n, NULL, &used), 0);
  return m->which == WR_RPC_CALL ? &m->call.params : &m->ret.results;
}

static void test_roundtrip_register(void **state) {
  (void)state;
  static wr_rpc_msg m;
  static wr_tunnelrpc_register_params p, q;
  wr_capnp_builder b;
  uint8_t id[16], secret[40], ip[4] = {10, 1, 2, 3};
  char names[WR_TUNNELRPC_MAX_FEATURES][24];
  memset(&p, 0, sizeof(p));
  for (int i = 0; i < 16; i++) id[i] = (uint8_t)(i * 7);
  for (int i = 0; i < 40; i++) secret[i] = (uint8_t)(255 - i);
  p.account_tag = "0123456789abcdef0123456789abcdef";
  p.account_tag_len = 32;
  p.tunnel_secret = secret;
  p.tunnel_secret_len = 40;
  p.tunnel_id = id;
  p.tunnel_id_len = 16;
  p.conn_index = 3;
  p.client.client_id = id;
  p.client.client_id_len = 16;
  for (int i = 0; i < WR_TUNNELRPC_MAX_FEATURES; i++) {
    snprintf(names[i], sizeof(names[i]), "feature_%d", i);
    p.client.features[i].ptr = names[i];
    p.client.features[i].len = strlen(names[i]);
  }
  p.client.nfeatures = WR_TUNNELRPC_MAX_FEATURES;
  p.client.version = "2023.7.3";
  p.client.version_len = 8;
  p.client.arch = "linux_arm64";
  p.client.arch_len = 11;
  p.origin_local_ip = ip;
  p.origin_local_ip_len = 4;
  p.replace_existing = 1;
  p.compression_quality = 7;
  p.num_previous_attempts = 200;
  build_call(&b, 9, WR_TUNNELRPC_REGISTRATION_SERVER, 0, WR_RPC_TARGET_IMPORTED_CAP, 4,
             fill_register, &p);
  const wr_rpc_payload *pl = reread(&b, &m);
  assert_int_equal(m.call.question_id, 9);
  assert_int_equal(m.call.target.id, 4);
  assert_int_equal(wr_tunnelrpc_register_params_decode(pl, &q), 0);
  assert_str(q.account_tag, q.account_tag_len, p.account_tag);
  assert_int_equal(q.tunnel_secret_len, 40);
  assert_memory_equal(q.tunnel_secret, secret, 40);
  assert_memory_equal(q.tunnel_id, id, 16);
  assert_int_equal(q.conn_index, 3);
  assert_int_equal(q.client.nfeatures, WR_TUNNELRPC_MAX_FEATURES);
  for (int i = 0; i < WR_TUNNELRPC_MAX_FEATURES; i++)
    assert_str(q.client.features[i].ptr, q.client.features[i].len, names[i]);
  assert_str(q.client.version, q.client.version_len, "2023.7.3");
  assert_str(q.client.arch, q.client.arch_len, "linux_arm64");
  assert_int_equal(q.origin_local_ip_len, 4);
  assert_memory_equal(q.origin_local_ip, ip, 4);
  assert_int_equal(q.replace_existing, 1);
  assert_int_equal(q.compression_quality, 7);
  assert_int_equal(q.num_previous_attempts, 200);
  wr_capnp_builder_free(&b);

  /* Minimal values: empty strings and NULL data come back empty. */
  memset(&p, 0, sizeof(p));
  build_call(&b, 0, WR_TUNNELRPC_REGISTRATION_SERVER, 0, WR_RPC_TARGET_IMPORTED_CAP, 0,
             fill_register, &p);
  pl = reread(&b, &m);
  assert_int_equal(wr_tunnelrpc_register_params_decode(pl, &q), 0);
  assert_int_equal(q.account_tag_len, 0);
  assert_string_equal(q.account_tag, "");
  assert_null(q.tunnel_secret);
  assert_null(q.tunnel_id);
  assert_int_equal(q.client.nfeatures, 0);
  assert_null(q.origin_local_ip);
  wr_capnp_builder_free(&b);

  /* Too many features is the caller's error. */
  p.client.nfeatures = WR_TUNNELRPC_MAX_FEATURES + 1;
  wr_capnp_builder_init(&b, NULL, 0);
  wr_capnp_bstruct pp;
  assert_int_equal(wr_rpc_begin_call(&b, 0, 1, 0, 0, 0, &pp), 0);
  assert_int_equal(wr_tunnelrpc_register_params_encode(&pp, &p), WR_ERR_INVAL);
  wr_capnp_builder_free(&b);
}

static void test_roundtrip_results(void **state) {
  (void)state;
  static wr_rpc_msg m;
  wr_capnp_builder b;
  uint8_t uuid[16];
  for (int i = 0; i < 16; i++) uuid[i] = (uint8_t)(0xf0 + i);

  wr_tunnelrpc_conn_response r = {
      .which = WR_TUNNELRPC_CONN_DETAILS,
      .details = {.uuid = uuid, .uuid_len = 16, .location = "LHR", .location_len = 3}};
  wr_tunnelrpc_conn_response q;
  r.details.remotely_managed = 1;
  build_return(&b, 4, fill_register_results, &r);
  assert_int_equal(wr_tunnelrpc_register_results_decode(reread(&b, &m), &q), 0);
  assert_int_equal(q.which, WR_TUNNELRPC_CONN_DETAILS);
  assert_memory_equal(q.details.uuid, uuid, 16);
  assert_str(q.details.location, q.details.location_len, "LHR");
  assert_int_equal(q.details.remotely_managed, 1);
  wr_capnp_builder_free(&b);

  memset(&r, 0, sizeof(r));
  r.which = WR_TUNNELRPC_CONN_ERROR;
  r.error.cause = "tunnel not found";
  r.error.cause_len = 16;
  r.error.retry_after_ns = -1;
  r.error.should_retry = 0;
  build_return(&b, 4, fill_register_results, &r);
  assert_int_equal(wr_tunnelrpc_register_results_decode(reread(&b, &m), &q), 0);
  assert_int_equal(q.which, WR_TUNNELRPC_CONN_ERROR);
  assert_str(q.error.cause, q.error.cause_len, "tunnel not found");
  assert_true(q.error.retry_after_ns == -1);
  assert_int_equal(q.error.should_retry, 0);
  wr_capnp_builder_free(&b);

  r.which = 2;
  wr_capnp_builder_init(&b, NULL, 0);
  wr_capnp_bstruct pp;
  assert_int_equal(wr_rpc_begin_return(&b, 0, 0, &pp), 0);
  assert_int_equal(wr_tunnelrpc_register_results_encode(&pp, &r), WR_ERR_INVAL);
  wr_capnp_builder_free(&b);

  /* UDP session params with a trace context and IPv6 destination. */
  uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
  wr_tunnelrpc_udp_register_params up = {uuid, 16, v6, 16, 65535, 7, "abc:def:0:1", 11}, uq;
  build_call(&b, 2, WR_TUNNELRPC_SESSION_MANAGER, 0, WR_RPC_TARGET_PROMISED_ANSWER, 1, fill_udp,
             &up);
  assert_int_equal(wr_tunnelrpc_udp_register_params_decode(reread(&b, &m), &uq), 0);
  assert_memory_equal(uq.session_id, uuid, 16);
  assert_memory_equal(uq.dst_ip, v6, 16);
  assert_int_equal(uq.dst_port, 65535);
  assert_true(uq.close_after_idle_ns == 7);
  assert_str(uq.trace_context, uq.trace_context_len, "abc:def:0:1");
  wr_capnp_builder_free(&b);

  /* Results with spans; empty non-NULL spans stay non-NULL. */
  const uint8_t spans[3] = {1, 2, 3};
  wr_tunnelrpc_udp_register_results ur = {"x", 1, spans, 3}, uq2;
  build_return(&b, 2, fill_udp_results, &ur);
  assert_int_equal(wr_tunnelrpc_udp_register_results_decode(reread(&b, &m), &uq2), 0);
  assert_str(uq2.err, uq2.err_len, "x");
  assert_int_equal(uq2.spans_len, 3);
  assert_memory_equal(uq2.spans, spans, 3);
  wr_capnp_builder_free(&b);
  ur.spans_len = 0;
  build_return(&b, 2, fill_udp_results, &ur);
  assert_int_equal(wr_tunnelrpc_udp_register_results_decode(reread(&b, &m), &uq2), 0);
  assert_non_null(uq2.spans);
  assert_int_equal(uq2.spans_len, 0);
  wr_capnp_builder_free(&b);

  wr_tunnelrpc_udp_unregister_params un = {uuid, 16, "session idle for 3m30s", 22}, un2;
  build_call(&b, 2, WR_TUNNELRPC_SESSION_MANAGER, 1, WR_RPC_TARGET_IMPORTED_CAP, 0,
             fill_udp_unreg, &un);
  assert_int_equal(wr_tunnelrpc_udp_unregister_params_decode(reread(&b, &m), &un2), 0);
  assert_str(un2.message, un2.message_len, "session idle for 3m30s");
  wr_capnp_builder_free(&b);

  wr_tunnelrpc_config_params cp = {-5, (const uint8_t *)"{}", 2}, cq;
  build_call(&b, 0, WR_TUNNELRPC_CONFIGURATION_MANAGER, 0, WR_RPC_TARGET_IMPORTED_CAP, 0,
             fill_config, &cp);
  assert_int_equal(wr_tunnelrpc_config_params_decode(reread(&b, &m), &cq), 0);
  assert_int_equal(cq.version, -5);
  assert_int_equal(cq.config_len, 2);
  wr_capnp_builder_free(&b);

  wr_tunnelrpc_config_results cr = {-1, "bad ingress", 11}, cr2;
  build_return(&b, 0, fill_config_results, &cr);
  assert_int_equal(wr_tunnelrpc_config_results_decode(reread(&b, &m), &cr2), 0);
  assert_int_equal(cr2.latest_applied_version, -1);
  assert_str(cr2.err, cr2.err_len, "bad ingress");
  wr_capnp_builder_free(&b);
}

/* Null content reads as an all-default struct (as in Go). */
static void test_null_content(void **state) {
  (void)state;
  static wr_rpc_msg m;
  wr_capnp_builder b;
  wr_capnp_bstruct p;
  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_rpc_begin_return(&b, 0, 0, &p), 0);
  assert_int_equal(wr_rpc_end_payload(&p, NULL, 0), 0);
  const wr_rpc_payload *pl = reread(&b, &m);
  assert_int_equal(pl->content_kind, WR_CAPNP_PTR_NULL);
  wr_tunnelrpc_conn_response r;
  wr_tunnelrpc_config_results c;
  wr_tunnelrpc_udp_register_results u;
  assert_int_equal(wr_tunnelrpc_register_results_decode(pl, &r), 0);
  assert_int_equal(r.which, WR_TUNNELRPC_CONN_ERROR);
  assert_int_equal(r.error.cause_len, 0);
  assert_int_equal(wr_tunnelrpc_config_results_decode(pl, &c), 0);
  assert_int_equal(c.latest_applied_version, 0);
  assert_int_equal(wr_tunnelrpc_udp_register_results_decode(pl, &u), 0);
  assert_int_equal(wr_tunnelrpc_empty_decode(pl), 0);
  wr_capnp_builder_free(&b);
}

static void test_method_lookup(void **state) {
  static const struct {
    uint64_t iface;
    uint16_t method;
    int want;
  } cases[] = {
      {WR_TUNNELRPC_REGISTRATION_SERVER, 0, WR_TUNNELRPC_M_REGISTER_CONNECTION},
      {WR_TUNNELRPC_REGISTRATION_SERVER, 1, WR_TUNNELRPC_M_UNREGISTER_CONNECTION},
      {WR_TUNNELRPC_REGISTRATION_SERVER, 2, WR_TUNNELRPC_M_UPDATE_LOCAL_CONFIGURATION},
      {WR_TUNNELRPC_SESSION_MANAGER, 0, WR_TUNNELRPC_M_REGISTER_UDP_SESSION},
      {WR_TUNNELRPC_SESSION_MANAGER, 1, WR_TUNNELRPC_M_UNREGISTER_UDP_SESSION},
      {WR_TUNNELRPC_CONFIGURATION_MANAGER, 0, WR_TUNNELRPC_M_UPDATE_CONFIGURATION},
      /* No "extends" aliasing: the derived interfaces' IDs do not dispatch. */
      {WR_TUNNELRPC_TUNNEL_SERVER, 0, WR_ERR_NOTFOUND},
      {WR_TUNNELRPC_CLOUDFLARED_SERVER, 0, WR_ERR_NOTFOUND},
      {WR_TUNNELRPC_REGISTRATION_SERVER, 3, WR_ERR_NOTFOUND},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    assert_int_equal(wr_tunnelrpc_method_lookup(cases[i].iface, cases[i].method), cases[i].want);
  assert_string_equal(wr_tunnelrpc_method_name(WR_TUNNELRPC_M_REGISTER_CONNECTION),
                      "registerConnection");
  assert_string_equal(wr_tunnelrpc_method_name(WR_TUNNELRPC_M_UPDATE_CONFIGURATION),
                      "updateConfiguration");
  assert_string_equal(wr_tunnelrpc_method_name(0), "unknown");
}

/* ---- malformed content ------------------------------------------------------ */

/* Decodes golden |title| with byte |at| set to |val|, then applies the
 * results (|results| 1) or params decoder for |method|. */
static int patched(const golden_set *g, const char *title, size_t at, uint8_t val, int method,
                   int results) {
  static wr_rpc_msg m;
  const golden_entry *e = golden_get(g, title);
  uint8_t *copy = malloc(e->len);
  size_t used;
  int rv;
  memcpy(copy, e->bytes, e->len);
  copy[at] = val;
  if ((rv = wr_rpc_decode(&m, copy, e->len, NULL, &used)) == 0) {
    wr_capnp_builder b;
    wr_capnp_builder_init(&b, NULL, 0);
    wr_capnp_bstruct root;
    wr_capnp_init_root(&b, 0, 1, &root);
    rv = rr_content(&root, m.which == WR_RPC_CALL ? &m.call.params : &m.ret.results, method,
                    results);
    wr_capnp_builder_free(&b);
  }
  free(copy);
  return rv;
}

static void test_malformed(void **state) {
  (void)state;
  golden_set g = golden_load();
  /* ConnectionResponse.which 2 (its data word is word 9). */
  assert_int_equal(patched(&g, "CONTROL-OK msg#3 ", 8 + 72, 2, WR_TUNNELRPC_M_REGISTER_CONNECTION, 1),
                   WR_ERR_PROTO);
  assert_int_equal(patched(&g, "CONTROL-OK msg#3 ", 8 + 72, 1, WR_TUNNELRPC_M_REGISTER_CONNECTION, 1),
                   0);
  /* locationName without its NUL ("SFO" at word 16). */
  assert_int_equal(patched(&g, "CONTROL-OK msg#3 ", 8 + 128 + 3, 'X',
                           WR_TUNNELRPC_M_REGISTER_CONNECTION, 1), WR_ERR_PROTO);
  /* uuid Data turned into a 16-bit list. */
  assert_int_equal(patched(&g, "CONTROL-OK msg#3 ", 8 + 96 + 4, 0x83,
                           WR_TUNNELRPC_M_REGISTER_CONNECTION, 1), WR_ERR_PROTO);
  /* EDUPCONN cause pointer out of bounds (pointer at word 13). */
  assert_int_equal(patched(&g, "CONTROL-ERR msg#3 ", 8 + 104 + 1, 0x40,
                           WR_TUNNELRPC_M_REGISTER_CONNECTION, 1), WR_ERR_BOUNDS);
  /* features pointer list turned into a byte list: List(Text) needs pointers
   * (features pointer is ClientInfo ptr1 at word 37). */
  assert_int_equal(patched(&g, "CONTROL-OK msg#1 ", 8 + 37 * 8 + 4, 0x12,
                           WR_TUNNELRPC_M_REGISTER_CONNECTION, 0), WR_ERR_PROTO);
  /* A feature text without NUL ("serialized_headers" ends at word 46). */
  assert_int_equal(patched(&g, "CONTROL-OK msg#1 ", 8 + 44 * 8 + 18, 'X',
                           WR_TUNNELRPC_M_REGISTER_CONNECTION, 0), WR_ERR_PROTO);
  /* auth pointing at a list. */
  assert_int_equal(patched(&g, "CONTROL-OK msg#1 ", 8 + 17 * 8, 0x0d,
                           WR_TUNNELRPC_M_REGISTER_CONNECTION, 0), WR_ERR_PROTO);
  /* registerUdpSession sessionId pointer into the void (ptr at word 18). */
  assert_int_equal(patched(&g, "RPC-REGUDP msg#1 ", 8 + 18 * 8 + 2, 0x7f,
                           WR_TUNNELRPC_M_REGISTER_UDP_SESSION, 0), WR_ERR_BOUNDS);
  /* updateConfiguration config as a struct (ptr at word 17). */
  assert_int_equal(patched(&g, "RPC-UPDCFG msg#1 ", 8 + 17 * 8, 0x00,
                           WR_TUNNELRPC_M_UPDATE_CONFIGURATION, 0), WR_ERR_PROTO);

  /* More features than WR_TUNNELRPC_MAX_FEATURES on the wire. */
  {
    static wr_rpc_msg m;
    static wr_tunnelrpc_register_params q;
    wr_capnp_builder b;
    wr_capnp_bstruct p, c, opts, client;
    wr_capnp_blist f;
    wr_capnp_builder_init(&b, NULL, 0);
    wr_rpc_begin_call(&b, 0, WR_TUNNELRPC_REGISTRATION_SERVER, 0, 0, 0, &p);
    wr_capnp_new_struct(&p, 0, 1, 3, &c);
    wr_capnp_new_struct(&c, 2, 1, 2, &opts);
    wr_capnp_new_struct(&opts, 0, 0, 4, &client);
    wr_capnp_new_pointer_list(&client, 1, WR_TUNNELRPC_MAX_FEATURES + 1, &f);
    for (uint32_t i = 0; i <= WR_TUNNELRPC_MAX_FEATURES; i++) wr_capnp_blist_set_text(&f, i, "f", 1);
    wr_rpc_end_payload(&p, NULL, 0);
    assert_int_equal(wr_tunnelrpc_register_params_decode(reread(&b, &m), &q), WR_ERR_LIMIT);
    wr_capnp_builder_free(&b);
  }
  golden_free(&g);
}

/* Every byte of every golden tunnelrpc message flipped: decoders never
 * crash, and what decodes re-encodes to a fixpoint. */
static void test_corrupt_every_byte(void **state) {
  (void)state;
  static const struct {
    const char *title;
    int method;
    int results;
  } cases[] = {
      {"CONTROL-OK msg#1 ", WR_TUNNELRPC_M_REGISTER_CONNECTION, 0},
      {"CONTROL-OK msg#3 ", WR_TUNNELRPC_M_REGISTER_CONNECTION, 1},
      {"CONTROL-ERR msg#3 ", WR_TUNNELRPC_M_REGISTER_CONNECTION, 1},
      {"CONTROL-OK msg#6 ", WR_TUNNELRPC_M_UPDATE_LOCAL_CONFIGURATION, 0},
      {"CONTROL-OK msg#10 ", WR_TUNNELRPC_M_UNREGISTER_CONNECTION, 1},
      {"RPC-REGUDP msg#1 ", WR_TUNNELRPC_M_REGISTER_UDP_SESSION, 0},
      {"RPC-REGUDP-ERR msg#3 ", WR_TUNNELRPC_M_REGISTER_UDP_SESSION, 1},
      {"RPC-UNREGUDP msg#1 ", WR_TUNNELRPC_M_UNREGISTER_UDP_SESSION, 0},
      {"RPC-UPDCFG msg#1 ", WR_TUNNELRPC_M_UPDATE_CONFIGURATION, 0},
      {"RPC-UPDCFG msg#3 ", WR_TUNNELRPC_M_UPDATE_CONFIGURATION, 1},
  };
  static const uint8_t xors[] = {0x01, 0x04, 0x10, 0x40, 0x80, 0xff};
  static wr_rpc_msg m1, m2;
  golden_set g = golden_load();
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    const golden_entry *e = golden_get(&g, cases[c].title);
    uint8_t *copy = malloc(e->len);
    for (size_t at = 8; at < e->len; at++) {
      for (size_t x = 0; x < sizeof(xors); x++) {
        wr_capnp_builder b1, b2;
        const uint8_t *o1, *o2;
        size_t n1, n2, used;
        memcpy(copy, e->bytes, e->len);
        copy[at] ^= xors[x];
        if (wr_rpc_decode(&m1, copy, e->len, NULL, &used) != 0) continue;
        if (m1.which != WR_RPC_CALL && m1.which != WR_RPC_RETURN) continue;
        wr_capnp_builder_init(&b1, NULL, 0);
        if (rr_reencode(&b1, &m1, cases[c].method) == 0 &&
            wr_capnp_builder_finish(&b1, &o1, &n1) == 0) {
          assert_int_equal(wr_rpc_decode(&m2, o1, n1, NULL, &used), 0);
          wr_capnp_builder_init(&b2, NULL, 0);
          assert_int_equal(rr_reencode(&b2, &m2, cases[c].method), 0);
          assert_int_equal(wr_capnp_builder_finish(&b2, &o2, &n2), 0);
          assert_int_equal(n1, n2);
          assert_memory_equal(o1, o2, n1);
          wr_capnp_builder_free(&b2);
        }
        wr_capnp_builder_free(&b1);
      }
    }
    free(copy);
  }
  golden_free(&g);
}

/* ---- allocation failures --------------------------------------------------- */

typedef struct reencode_case {
  const wr_rpc_msg *m;
  int method;
} reencode_case;

static int reencode(wr_capnp_builder *b, void *arg) {
  const reencode_case *rc = arg;
  return rr_reencode(b, rc->m, rc->method);
}

static void test_encoders_failmem(void **state) {
  (void)state;
  static wr_rpc_msg m;
  golden_set g = golden_load();
  static const struct {
    const char *title;
    int method;
  } cases[] = {
      {"CONTROL-OK msg#1 ", RR_AUTO},
      {"CONTROL-OK msg#3 ", WR_TUNNELRPC_M_REGISTER_CONNECTION},
      {"CONTROL-ERR msg#3 ", WR_TUNNELRPC_M_REGISTER_CONNECTION},
      {"CONTROL-OK msg#6 ", RR_AUTO},
      {"CONTROL-OK msg#9 ", RR_AUTO},
      {"CONTROL-OK msg#10 ", WR_TUNNELRPC_M_UNREGISTER_CONNECTION},
      {"RPC-REGUDP msg#1 ", RR_AUTO},
      {"RPC-REGUDP-ERR msg#3 ", WR_TUNNELRPC_M_REGISTER_UDP_SESSION},
      {"RPC-UNREGUDP msg#1 ", RR_AUTO},
      {"RPC-UPDCFG msg#1 ", RR_AUTO},
      {"RPC-UPDCFG msg#3 ", WR_TUNNELRPC_M_UPDATE_CONFIGURATION},
  };
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    const golden_entry *e = golden_msg(&g, cases[c].title, &m);
    reencode_case rc = {&m, cases[c].method};
    unit_capnp_failmem(reencode, &rc, e->bytes, e->len, 64);
  }
  golden_free(&g);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_TESTS(test_register_connection_vector, test_register_results_vector,
                             test_udp_session_vectors, test_golden_registration,
                             test_golden_sessions, test_roundtrip_register, test_roundtrip_results,
                             test_null_content, test_method_lookup, test_malformed,
                             test_corrupt_every_byte, test_encoders_failmem));
}
