/* Cap'n Proto RPC message codec (src/proto/rpc.c): the captured control and
 * RPC streams, every RPC dump in golden-encodings.md (decoded and rebuilt
 * byte for byte), the builders against protocol.md's golden bytes, malformed
 * input and allocation failures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capnp_support.h"
#include "golden.h"
#include "lib/err.h"
#include "proto/rpc.h"
#include "proto/tunnelrpc.h"
#include "rpc_reencode.h"
#include "unit.h"

static const uint8_t rpc_sig[6] = {0x52, 0xbb, 0x82, 0x5c, 0xdb, 0x65};

/* ---- helpers ------------------------------------------------------------ */

static int str_is(const char *s, size_t len, const char *want) {
  return len == strlen(want) && memcmp(s, want, len) == 0 && s[len] == '\0';
}

/* Re-encodes |m| (content handled per |hint|) and compares with |want|. */
static void check_reencode(const wr_rpc_msg *m, int hint, const uint8_t *want, size_t len) {
  wr_capnp_builder b;
  const uint8_t *out;
  size_t n;
  wr_capnp_builder_init(&b, NULL, 0);
  int rv = rr_reencode(&b, m, hint);
  if (rv != 0) fail_msg("re-encode of %s failed: %s", wr_rpc_which_name(m->which), wr_strerror(rv));
  assert_int_equal(wr_capnp_builder_finish(&b, &out, &n), 0);
  if (n != len || memcmp(out, want, len) != 0) {
    for (size_t i = 0; i < n || i < len; i++)
      if (i >= n || i >= len || out[i] != want[i]) {
        fail_msg("%s re-encoded differs at byte %zu (len %zu vs %zu)", wr_rpc_which_name(m->which),
                 i, n, len);
      }
  }
  wr_capnp_builder_free(&b);
}

/* Decodes a whole RPC byte stream: |kinds| lists the expected Message kinds
 * and |hints| the content hint for re-encoding each (compared with the
 * captured bytes). Returns the number of messages. */
static size_t walk_stream(const uint8_t *buf, size_t len, const uint16_t *kinds,
                          const int *hints, size_t nkinds) {
  static wr_rpc_msg m;
  size_t off = 0, i = 0;
  while (off < len) {
    size_t used = 0;
    int rv = wr_rpc_decode(&m, buf + off, len - off, NULL, &used);
    if (rv != 0) fail_msg("message %zu at offset %zu: %s", i, off, wr_strerror(rv));
    assert_true(i < nkinds);
    if (m.which != kinds[i])
      fail_msg("message %zu: got %s, want %s", i, wr_rpc_which_name(m.which),
               wr_rpc_which_name(kinds[i]));
    check_reencode(&m, hints[i], buf + off, used);
    off += used;
    i++;
  }
  assert_int_equal(off, len);
  assert_int_equal(i, nkinds);
  return i;
}

/* Decodes the message starting at |off| into |m| (static storage); returns
 * the next offset. */
static size_t decode_at(wr_rpc_msg *m, const uint8_t *buf, size_t len, size_t off) {
  size_t used = 0;
  int rv = wr_rpc_decode(m, buf + off, len - off, NULL, &used);
  if (rv != 0) fail_msg("decode at %zu: %s", off, wr_strerror(rv));
  return off + used;
}

/* ---- captured streams ----------------------------------------------------- */

static void test_control_from_connector(void **state) {
  (void)state;
  static wr_rpc_msg m;
  size_t len, off = 0;
  uint8_t *buf = unit_read_vector("quic/control.register.from-connector.bin", &len);
  static const uint16_t kinds[] = {WR_RPC_BOOTSTRAP, WR_RPC_CALL,   WR_RPC_FINISH,
                                   WR_RPC_FINISH,    WR_RPC_CALL,   WR_RPC_FINISH};
  static const int hints[] = {RR_AUTO, RR_AUTO, RR_AUTO, RR_AUTO, RR_AUTO, RR_AUTO};
  walk_stream(buf, len, kinds, hints, 6);

  off = decode_at(&m, buf, len, off);
  assert_int_equal(m.bootstrap.question_id, 0);
  assert_int_equal(off, 48);

  /* registerConnection, pipelined on the unanswered bootstrap. */
  off = decode_at(&m, buf, len, off);
  assert_int_equal(m.call.question_id, 1);
  assert_true(m.call.interface_id == 0xf71695ec7fe85497ull);
  assert_int_equal(m.call.method_id, 0);
  assert_int_equal(m.call.send_results_to, 0);
  assert_int_equal(m.call.allow_third_party_tail_call, 0);
  assert_int_equal(m.call.target.which, WR_RPC_TARGET_PROMISED_ANSWER);
  assert_int_equal(m.call.target.id, 0);
  assert_int_equal(m.call.target.ntransform, 0);
  assert_int_equal(m.call.target.transform.is_null, 0); /* empty, not null */
  assert_int_equal(m.call.params.content_kind, WR_CAPNP_PTR_STRUCT);
  assert_int_equal(m.call.params.content.data_size, 8);
  assert_int_equal(m.call.params.content.nptrs, 3);
  assert_int_equal(m.call.params.ncaps, 0);
  assert_int_equal(m.call.params.cap_table.is_null, 0);

  off = decode_at(&m, buf, len, off);
  assert_int_equal(m.finish.question_id, 0);
  assert_int_equal(m.finish.release_result_caps, 0);
  off = decode_at(&m, buf, len, off);
  assert_int_equal(m.finish.question_id, 1);
  assert_int_equal(m.finish.release_result_caps, 0);

  /* updateLocalConfiguration on the now-resolved import, question 1 reused. */
  off = decode_at(&m, buf, len, off);
  assert_int_equal(m.call.question_id, 1);
  assert_int_equal(m.call.method_id, 2);
  assert_int_equal(m.call.target.which, WR_RPC_TARGET_IMPORTED_CAP);
  assert_int_equal(m.call.target.id, 0);

  off = decode_at(&m, buf, len, off);
  assert_int_equal(m.finish.question_id, 1);
  assert_int_equal(off, len);
  free(buf);
}

static void test_control_from_edge(void **state) {
  (void)state;
  static wr_rpc_msg m;
  wr_rpc_capdesc cap;
  size_t len, off = 0;
  uint8_t *buf = unit_read_vector("quic/control.register.from-edge.bin", &len);
  static const uint16_t kinds[] = {WR_RPC_RETURN, WR_RPC_RETURN, WR_RPC_RETURN};
  static const int hints[] = {RR_GENERIC, WR_TUNNELRPC_M_REGISTER_CONNECTION,
                              WR_TUNNELRPC_M_UPDATE_LOCAL_CONFIGURATION};
  walk_stream(buf, len, kinds, hints, 3);

  off = decode_at(&m, buf, len, off);
  assert_int_equal(off, 96);
  assert_int_equal(m.ret.answer_id, 0);
  assert_int_equal(m.ret.release_param_caps, 0);
  assert_int_equal(m.ret.which, WR_RPC_RET_RESULTS);
  assert_int_equal(m.ret.results.content_kind, WR_CAPNP_PTR_CAP);
  assert_int_equal(m.ret.results.content_cap, 0);
  assert_int_equal(m.ret.results.ncaps, 1);
  assert_int_equal(wr_rpc_payload_cap(&m.ret.results, 0, &cap), 0);
  assert_int_equal(cap.which, WR_RPC_CAP_SENDER_HOSTED);
  assert_int_equal(cap.id, 0);
  assert_int_equal(wr_rpc_payload_cap(&m.ret.results, 1, &cap), WR_ERR_BOUNDS);
  /* ...and that did not poison the message. */
  assert_int_equal(m.cm.err, 0);
  assert_int_equal(wr_rpc_payload_cap(&m.ret.results, 0, &cap), 0);

  off = decode_at(&m, buf, len, off);
  assert_int_equal(m.ret.answer_id, 1);
  assert_int_equal(m.ret.which, WR_RPC_RET_RESULTS);
  assert_int_equal(m.ret.results.content_kind, WR_CAPNP_PTR_STRUCT);
  assert_int_equal(m.ret.results.ncaps, 0);

  off = decode_at(&m, buf, len, off);
  assert_int_equal(m.ret.answer_id, 1);
  assert_int_equal(m.ret.results.content_kind, WR_CAPNP_PTR_STRUCT);
  assert_int_equal(m.ret.results.content.data_size, 0);
  assert_int_equal(m.ret.results.content.nptrs, 0);
  assert_int_equal(off, len);
  free(buf);
}

static void test_udp_session_streams(void **state) {
  (void)state;
  static wr_rpc_msg m;
  size_t len, off;
  uint8_t *buf = unit_read_vector("quic/rpc.register-udp-session.from-edge.bin", &len);
  /* RPC streams start with the 6-byte signature and no version. */
  assert_memory_equal(buf, rpc_sig, 6);
  static const uint16_t kinds[] = {WR_RPC_BOOTSTRAP, WR_RPC_CALL,    WR_RPC_FINISH,
                                   WR_RPC_FINISH,    WR_RPC_RELEASE, WR_RPC_ABORT};
  static const int hints[] = {RR_AUTO, RR_AUTO, RR_AUTO, RR_AUTO, RR_AUTO, RR_AUTO};
  walk_stream(buf + 6, len - 6, kinds, hints, 6);
  off = decode_at(&m, buf, len, 6);
  assert_int_equal(m.bootstrap.question_id, 0);
  off = decode_at(&m, buf, len, off);
  assert_int_equal(m.call.question_id, 1);
  assert_true(m.call.interface_id == WR_TUNNELRPC_SESSION_MANAGER);
  assert_int_equal(m.call.method_id, WR_TUNNELRPC_REGISTER_UDP_SESSION);
  assert_int_equal(m.call.target.which, WR_RPC_TARGET_PROMISED_ANSWER);
  assert_int_equal(m.call.target.id, 0);
  off = decode_at(&m, buf, len, off);
  assert_int_equal(m.finish.question_id, 0);
  off = decode_at(&m, buf, len, off);
  assert_int_equal(m.finish.question_id, 1);
  off = decode_at(&m, buf, len, off);
  assert_int_equal(m.release.id, 0);
  assert_int_equal(m.release.reference_count, 1);
  off = decode_at(&m, buf, len, off);
  assert_true(str_is(m.abort.reason, m.abort.reason_len, "rpc: shutdown"));
  assert_int_equal(m.abort.type, WR_RPC_EXC_FAILED);
  assert_int_equal(off, len);
  free(buf);

  /* cloudflared (the server here) answers without any signature. */
  buf = unit_read_vector("quic/rpc.register-udp-session.from-connector.bin", &len);
  static const uint16_t rkinds[] = {WR_RPC_RETURN, WR_RPC_RETURN};
  static const int rhints[] = {RR_GENERIC, WR_TUNNELRPC_M_REGISTER_UDP_SESSION};
  walk_stream(buf, len, rkinds, rhints, 2);
  off = decode_at(&m, buf, len, 0);
  assert_int_equal(m.ret.results.content_kind, WR_CAPNP_PTR_CAP);
  off = decode_at(&m, buf, len, off);
  assert_int_equal(m.ret.answer_id, 1);
  assert_int_equal(m.ret.which, WR_RPC_RET_RESULTS);
  assert_int_equal(off, len);
  free(buf);
}

/* ---- golden-encodings.md ---------------------------------------------------- */

/* question id -> content hint, per transcript */
typedef struct hints {
  char transcript[64];
  int q[64];
} hints;

static int hint_for(hints *h, const golden_entry *e, const wr_rpc_msg *m) {
  const char *sp = strstr(e->title, " msg#");
  size_t tl = sp ? (size_t)(sp - e->title) : strlen(e->title);
  if (tl >= sizeof(h->transcript)) tl = sizeof(h->transcript) - 1;
  if (strncmp(h->transcript, e->title, tl) != 0 || h->transcript[tl] != '\0') {
    memcpy(h->transcript, e->title, tl);
    h->transcript[tl] = '\0';
    for (int i = 0; i < 64; i++) h->q[i] = RR_GENERIC;
  }
  switch (m->which) {
  case WR_RPC_BOOTSTRAP:
    if (m->bootstrap.question_id < 64) h->q[m->bootstrap.question_id] = RR_GENERIC;
    return RR_GENERIC;
  case WR_RPC_CALL: {
    int meth = wr_tunnelrpc_method_lookup(m->call.interface_id, m->call.method_id);
    if (m->call.question_id < 64) h->q[m->call.question_id] = meth < 0 ? RR_GENERIC : meth;
    return RR_AUTO;
  }
  case WR_RPC_RETURN:
    return m->ret.answer_id < 64 ? h->q[m->ret.answer_id] : RR_GENERIC;
  default:
    return RR_GENERIC;
  }
}

static int is_rpc_entry(const golden_entry *e) {
  return strncmp(e->title, "CONTROL-", 8) == 0 || strncmp(e->title, "RPC-", 4) == 0;
}

static void test_golden_all(void **state) {
  (void)state;
  static wr_rpc_msg m;
  golden_set g = golden_load();
  hints h;
  size_t seen = 0;
  memset(&h, 0, sizeof(h));
  for (size_t i = 0; i < g.n; i++) {
    const golden_entry *e = &g.e[i];
    if (!is_rpc_entry(e)) continue;
    size_t used = 0;
    assert_int_equal(e->len, golden_title_len(e));
    int rv = wr_rpc_decode(&m, e->bytes, e->len, NULL, &used);
    if (rv != 0) fail_msg("%s: %s", e->title, wr_strerror(rv));
    assert_int_equal(used, e->len);
    /* Typed re-encode: byte-identical to the Go library's output. */
    check_reencode(&m, hint_for(&h, e, &m), e->bytes, e->len);
    /* Generic deep copy too, except where the content holds a List(Text)
     * (registerConnection's features), which the copier leaves null. */
    int has_text_list = m.which == WR_RPC_CALL &&
                        wr_tunnelrpc_method_lookup(m.call.interface_id, m.call.method_id) ==
                            WR_TUNNELRPC_M_REGISTER_CONNECTION;
    if (!has_text_list) check_reencode(&m, RR_GENERIC, e->bytes, e->len);
    seen++;
  }
  assert_int_equal(seen, 68);

  /* Spot checks of the decoded values against the annotations. */
  size_t used;
  const golden_entry *e = golden_get(&g, "CONTROL-EXC msg#7 ");
  assert_int_equal(wr_rpc_decode(&m, e->bytes, e->len, NULL, &used), 0);
  assert_int_equal(m.which, WR_RPC_RETURN);
  assert_int_equal(m.ret.answer_id, 1);
  assert_int_equal(m.ret.which, WR_RPC_RET_EXCEPTION);
  assert_int_equal(m.ret.release_param_caps, 0);
  assert_true(str_is(m.ret.exception.reason, m.ret.exception.reason_len, "config rejected"));
  assert_int_equal(m.ret.exception.type, WR_RPC_EXC_FAILED);

  e = golden_get(&g, "CONTROL-OK msg#12 ");
  assert_int_equal(wr_rpc_decode(&m, e->bytes, e->len, NULL, &used), 0);
  assert_int_equal(m.which, WR_RPC_RELEASE);
  assert_int_equal(m.release.id, 0);
  assert_int_equal(m.release.reference_count, 1);

  e = golden_get(&g, "CONTROL-OK msg#13 ");
  assert_int_equal(wr_rpc_decode(&m, e->bytes, e->len, NULL, &used), 0);
  assert_int_equal(m.which, WR_RPC_ABORT);
  assert_true(str_is(m.abort.reason, m.abort.reason_len, "rpc: shutdown"));

  e = golden_get(&g, "CONTROL-OK msg#9 ");
  assert_int_equal(wr_rpc_decode(&m, e->bytes, e->len, NULL, &used), 0);
  assert_int_equal(m.call.method_id, WR_TUNNELRPC_UNREGISTER_CONNECTION);
  assert_int_equal(m.call.target.which, WR_RPC_TARGET_IMPORTED_CAP);
  assert_int_equal(m.call.params.content_kind, WR_CAPNP_PTR_STRUCT);
  assert_int_equal(m.call.params.content.is_null, 0);
  assert_int_equal(m.call.params.content.nptrs, 0);

  e = golden_get(&g, "RPC-UPDCFG msg#1 ");
  assert_int_equal(wr_rpc_decode(&m, e->bytes, e->len, NULL, &used), 0);
  assert_true(m.call.interface_id == WR_TUNNELRPC_CONFIGURATION_MANAGER);
  assert_int_equal(m.call.method_id, WR_TUNNELRPC_UPDATE_CONFIGURATION);

  e = golden_get(&g, "RPC-UNREGUDP msg#1 ");
  assert_int_equal(wr_rpc_decode(&m, e->bytes, e->len, NULL, &used), 0);
  assert_true(m.call.interface_id == WR_TUNNELRPC_SESSION_MANAGER);
  assert_int_equal(m.call.method_id, WR_TUNNELRPC_UNREGISTER_UDP_SESSION);
  golden_free(&g);
}

/* ---- builders vs protocol.md 3.5 -------------------------------------------- */

static void test_builders_golden(void **state) {
  (void)state;
  wr_capnp_builder b;

  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_rpc_build_bootstrap(&b, 0), 0);
  unit_capnp_assert_built(&b, "0000000005000000 0000000001000100 0800000000000000"
                   "0000000001000100 0000000000000000 0000000000000000");

  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_rpc_build_return_bootstrap(&b, 0, 0), 0);
  unit_capnp_assert_built(&b, "000000000b000000 0000000001000100 0300000000000000 0000000002000100"
                   "0000000001000000 0000000000000000 0000000000000200 0300000000000000"
                   "0100000017000000 0400000001000100 0100000000000000 0000000000000000");

  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_rpc_build_finish(&b, 0, 0), 0);
  unit_capnp_assert_built(&b, "0000000004000000 0000000001000100 0400000000000000"
                   "0000000001000000 0000000001000000");

  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_rpc_build_release(&b, 0, 1), 0);
  unit_capnp_assert_built(&b, "0000000004000000 0000000001000100 0600000000000000"
                   "0000000001000000 0000000001000000");

  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_rpc_build_abort(&b, "rpc: shutdown", 13, WR_RPC_EXC_FAILED), 0);
  unit_capnp_assert_built(&b, "0000000007000000 0000000001000100 0100000000000000"
                   "0000000001000100 0000000000000000 0100000072000000 7270633a20736875"
                   "74646f776e000000");

  /* Empty results (unregisterConnection / updateLocalConfiguration). */
  wr_capnp_builder_init(&b, NULL, 0);
  wr_capnp_bstruct p, c;
  assert_int_equal(wr_rpc_begin_return(&b, 1, 0, &p), 0);
  assert_int_equal(wr_capnp_new_struct(&p, 0, 0, 0, &c), 0);
  assert_int_equal(wr_rpc_end_payload(&p, NULL, 0), 0);
  unit_capnp_assert_built(&b, "0000000009000000 0000000001000100 0300000000000000 0000000002000100"
                   "0100000001000000 0000000000000000 0000000000000200 fcffffff00000000"
                   "0100000007000000 0000000001000100");

  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_rpc_build_return_exception(&b, 1, 0, "config rejected", 15,
                                                 WR_RPC_EXC_FAILED), 0);
  unit_capnp_assert_built(&b, "000000000a000000 0000000001000100 0300000000000000 0000000002000100"
                   "0100000001000100 0000000000000000 0000000001000100 0000000000000000"
                   "0100000082000000 636f6e6669672072 656a656374656400");

  /* unregisterConnection Call on importedCap 0 (CONTROL-OK msg#9, 120 bytes). */
  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_rpc_begin_call(&b, 1, WR_TUNNELRPC_REGISTRATION_SERVER,
                                     WR_TUNNELRPC_UNREGISTER_CONNECTION,
                                     WR_RPC_TARGET_IMPORTED_CAP, 0, &p), 0);
  assert_int_equal(wr_tunnelrpc_empty_encode(&p), 0);
  assert_int_equal(wr_rpc_end_payload(&p, NULL, 0), 0);
  unit_capnp_assert_built(&b, "000000000e000000 0000000001000100 0200000000000000 0000000003000300"
                   "0100000001000000 9754e87fec9516f7 0000000000000000 0800000001000100"
                   "0c00000000000200 0000000000000000 0000000000000000 0000000000000000"
                   "fcffffff00000000 0100000007000000 0000000001000100");
}

static void test_return_other(void **state) {
  (void)state;
  static wr_rpc_msg m;
  wr_capnp_builder b;
  const uint8_t *out;
  size_t n, used;
  static const uint16_t kinds[] = {WR_RPC_RET_CANCELED, WR_RPC_RET_RESULTS_SENT_ELSEWHERE,
                                   WR_RPC_RET_TAKE_FROM_OTHER_QUESTION};
  for (size_t i = 0; i < 3; i++) {
    wr_capnp_builder_init(&b, NULL, 0);
    assert_int_equal(wr_rpc_build_return_other(&b, 5, 1, kinds[i], 7), 0);
    assert_int_equal(wr_capnp_builder_finish(&b, &out, &n), 0);
    assert_int_equal(wr_rpc_decode(&m, out, n, NULL, &used), 0);
    assert_int_equal(m.ret.answer_id, 5);
    assert_int_equal(m.ret.release_param_caps, 1);
    assert_int_equal(m.ret.which, kinds[i]);
    assert_int_equal(m.ret.take_from_other_question, kinds[i] == 4 ? 7 : 0);
    check_reencode(&m, RR_GENERIC, out, n);
    wr_capnp_builder_free(&b);
  }
  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_rpc_build_return_other(&b, 5, 1, WR_RPC_RET_RESULTS, 0), WR_ERR_INVAL);
  wr_capnp_builder_free(&b);
  wr_capnp_builder_init(&b, NULL, 0);
  wr_capnp_bstruct p;
  assert_int_equal(wr_rpc_begin_call(&b, 0, 1, 2, 7, 0, &p), WR_ERR_INVAL);
  wr_capnp_builder_free(&b);
  /* Builders need a fresh builder. */
  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_rpc_build_bootstrap(&b, 0), 0);
  assert_int_equal(wr_rpc_build_bootstrap(&b, 1), WR_ERR_INVAL);
  wr_capnp_builder_free(&b);
}

/* Every CapDescriptor kind the builder supports round-trips. */
static void test_cap_table(void **state) {
  (void)state;
  static wr_rpc_msg m;
  wr_capnp_builder b;
  wr_capnp_bstruct p, c;
  const uint8_t *out;
  size_t n, used;
  const wr_rpc_capdesc caps[] = {{WR_RPC_CAP_NONE, 0},
                                 {WR_RPC_CAP_SENDER_HOSTED, 3},
                                 {WR_RPC_CAP_SENDER_PROMISE, 4},
                                 {WR_RPC_CAP_RECEIVER_HOSTED, 5},
                                 {WR_RPC_CAP_RECEIVER_ANSWER, 6}};
  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_rpc_begin_return(&b, 2, 1, &p), 0);
  assert_int_equal(wr_capnp_new_struct(&p, 0, 1, 0, &c), 0);
  wr_capnp_set_u64(&c, 0, 0x1122334455667788ull);
  assert_int_equal(wr_rpc_end_payload(&p, caps, 5), 0);
  assert_int_equal(wr_capnp_builder_finish(&b, &out, &n), 0);
  assert_int_equal(wr_rpc_decode(&m, out, n, NULL, &used), 0);
  assert_int_equal(m.ret.results.ncaps, 5);
  for (uint32_t i = 0; i < 5; i++) {
    wr_rpc_capdesc d;
    assert_int_equal(wr_rpc_payload_cap(&m.ret.results, i, &d), 0);
    assert_int_equal(d.which, caps[i].which);
    assert_int_equal(d.id, caps[i].id);
  }
  assert_true(wr_capnp_u64(&m.ret.results.content, 0) == 0x1122334455667788ull);
  check_reencode(&m, RR_GENERIC, out, n);
  wr_capnp_builder_free(&b);

  wr_capnp_builder_init(&b, NULL, 0);
  const wr_rpc_capdesc third = {WR_RPC_CAP_THIRD_PARTY_HOSTED, 0};
  assert_int_equal(wr_rpc_begin_return(&b, 2, 1, &p), 0);
  assert_int_equal(wr_rpc_end_payload(&p, &third, 1), WR_ERR_UNSUPPORTED);
  wr_capnp_builder_free(&b);
}

/* ---- Unimplemented, copying, names --------------------------------------- */

static void test_unimplemented(void **state) {
  (void)state;
  static wr_rpc_msg m, u;
  golden_set g = golden_load();
  const golden_entry *e = golden_get(&g, "CONTROL-OK msg#1 ");
  wr_capnp_builder b;
  const uint8_t *out;
  size_t n, used;
  assert_int_equal(wr_rpc_decode(&m, e->bytes, e->len, NULL, &used), 0);
  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_rpc_build_unimplemented(&b, &m), 0);
  assert_int_equal(wr_capnp_builder_finish(&b, &out, &n), 0);
  assert_int_equal(wr_rpc_decode(&u, out, n, NULL, &used), 0);
  assert_int_equal(u.which, WR_RPC_UNIMPLEMENTED);
  assert_int_equal(u.unimplemented.which, WR_RPC_CALL);
  /* The echoed Call: u.body is the inner Message; its ptr0 the Call. */
  wr_capnp_struct call, params, content;
  assert_int_equal(wr_capnp_get_struct(&u.body, 0, &call), 0);
  assert_int_equal(wr_capnp_u32(&call, 0), 1);
  assert_true(wr_capnp_u64(&call, 8) == WR_TUNNELRPC_REGISTRATION_SERVER);
  assert_int_equal(wr_capnp_get_struct(&call, 1, &params), 0);
  assert_int_equal(wr_capnp_get_struct(&params, 0, &content), 0);
  assert_int_equal(content.nptrs, 3);
  const char *acct;
  size_t acct_len;
  wr_capnp_struct auth;
  assert_int_equal(wr_capnp_get_struct(&content, 0, &auth), 0);
  assert_int_equal(wr_capnp_get_text(&auth, 0, &acct, &acct_len), 0);
  assert_true(str_is(acct, acct_len, "0123456789abcdef0123456789abcdef"));
  /* Re-encoding the Unimplemented copies it generically: same bytes. */
  check_reencode(&u, RR_GENERIC, out, n);
  wr_capnp_builder_free(&b);

  /* An unknown message kind: decoded, echoed with its which. */
  uint8_t *unk = unit_hex("0000000003000000 0000000001000100 1400000000000000 0000000000000000",
                          &n);
  assert_int_equal(wr_rpc_decode(&m, unk, n, NULL, &used), 0);
  assert_int_equal(m.which, 20);
  assert_int_equal(m.body.is_null, 1);
  assert_string_equal(wr_rpc_which_name(m.which), "unknown");
  wr_capnp_builder_init(&b, NULL, 0);
  assert_int_equal(wr_rpc_build_unimplemented(&b, &m), 0);
  assert_int_equal(wr_capnp_builder_finish(&b, &out, &n), 0);
  assert_int_equal(wr_rpc_decode(&u, out, n, NULL, &used), 0);
  assert_int_equal(u.unimplemented.which, 20);
  wr_capnp_builder_free(&b);
  free(unk);

  /* provide (10) with a struct: recognised, not decoded, body available. */
  unk = unit_hex("0000000005000000 0000000001000100 0a00000000000000 0000000001000000"
                 "2a00000000000000 0000000000000000", &n);
  assert_int_equal(wr_rpc_decode(&m, unk, n, NULL, &used), 0);
  assert_int_equal(m.which, WR_RPC_PROVIDE);
  assert_int_equal(m.body.is_null, 0);
  assert_int_equal(wr_capnp_u32(&m.body, 0), 42);
  assert_string_equal(wr_rpc_which_name(m.which), "provide");
  free(unk);
  golden_free(&g);
}

static void test_format_unimplemented(void **state) {
  (void)state;
  char buf[128];
  size_t n = wr_rpc_format_unimplemented(buf, sizeof(buf), WR_TUNNELRPC_REGISTRATION_SERVER, 7);
  assert_string_equal(buf, "@0xf71695ec7fe85497.@7: capnp: method not implemented");
  assert_int_equal(n, strlen(buf));
  n = wr_rpc_format_unimplemented(buf, 8, 0x1, 0);
  assert_string_equal(buf, "@0x1.@0");
  assert_int_equal(n, 7);
  assert_int_equal(wr_rpc_format_unimplemented(buf, 0, 1, 0), 0);
  assert_string_equal(wr_rpc_which_name(WR_RPC_BOOTSTRAP), "bootstrap");
  assert_string_equal(wr_rpc_which_name(WR_RPC_DISEMBARGO), "disembargo");
}

/* ---- malformed input -------------------------------------------------------- */

static int decode_hex(const char *hex, wr_rpc_msg *m) {
  size_t n, used;
  uint8_t *buf = unit_hex(hex, &n);
  int rv = wr_rpc_decode(m, buf, n, NULL, &used);
  free(buf);
  return rv;
}

/* Decodes a golden entry with byte |at| replaced by |val|. */
static int decode_patched(const golden_set *g, const char *title, size_t at, uint8_t val) {
  static wr_rpc_msg m;
  const golden_entry *e = golden_get(g, title);
  size_t used;
  uint8_t *copy = malloc(e->len);
  memcpy(copy, e->bytes, e->len);
  assert_true(at < e->len);
  copy[at] = val;
  int rv = wr_rpc_decode(&m, copy, e->len, NULL, &used);
  free(copy);
  return rv;
}

/* Starts, in |b|, a Call whose target is a promisedAnswer left null. */
static void begin_promised_call(wr_capnp_builder *b, wr_capnp_bstruct *call,
                                wr_capnp_bstruct *target) {
  wr_capnp_bstruct root;
  wr_capnp_builder_init(b, NULL, 0);
  wr_capnp_init_root(b, 1, 1, &root);
  wr_capnp_set_u16(&root, 0, WR_RPC_CALL);
  wr_capnp_new_struct(&root, 0, 3, 3, call);
  wr_capnp_new_struct(call, 0, 1, 1, target);
  wr_capnp_set_u16(target, 4, WR_RPC_TARGET_PROMISED_ANSWER);
}

/* Builds a Call targeting promisedAnswer(0, ops) by hand. */
static int call_with_ops(uint32_t nops, uint16_t op_which, uint8_t *buf, size_t cap, size_t *len) {
  static wr_rpc_msg m;
  wr_capnp_builder b;
  wr_capnp_bstruct call, target, pa, payload;
  wr_capnp_blist ops;
  const uint8_t *out;
  size_t used;
  begin_promised_call(&b, &call, &target);
  wr_capnp_new_struct(&target, 0, 1, 1, &pa);
  wr_capnp_new_struct_list(&pa, 0, nops, 1, 0, &ops);
  for (uint32_t i = 0; i < nops; i++) {
    wr_capnp_bstruct op;
    wr_capnp_blist_struct(&ops, i, &op);
    wr_capnp_set_u16(&op, 0, op_which);
    wr_capnp_set_u16(&op, 2, (uint16_t)i);
  }
  wr_capnp_new_struct(&call, 1, 0, 2, &payload);
  assert_int_equal(wr_capnp_builder_finish(&b, &out, len), 0);
  assert_true(*len <= cap);
  memcpy(buf, out, *len);
  wr_capnp_builder_free(&b);
  int rv = wr_rpc_decode(&m, buf, *len, NULL, &used);
  if (rv == 0 && nops > 0) {
    uint16_t w, f;
    assert_int_equal(m.call.target.ntransform, nops);
    assert_int_equal(wr_rpc_target_op(&m.call.target, nops - 1, &w, &f), 0);
    assert_int_equal(w, op_which);
    assert_int_equal(f, op_which == WR_RPC_OP_GET_POINTER_FIELD ? nops - 1 : 0);
    assert_int_equal(wr_rpc_target_op(&m.call.target, nops, &w, &f), WR_ERR_BOUNDS);
    /* Transforms are not expressible by the builders: the re-encoder says so. */
    wr_capnp_builder_init(&b, NULL, 0);
    assert_int_equal(rr_reencode(&b, &m, RR_AUTO), WR_ERR_UNSUPPORTED);
    wr_capnp_builder_free(&b);
  }
  return rv;
}

static void test_malformed(void **state) {
  (void)state;
  static wr_rpc_msg m;
  golden_set g = golden_load();
  static uint8_t buf[4096];
  size_t len;

  /* Return.which 6 (unknown). Return data word is at byte 8+3*8. */
  assert_int_equal(decode_patched(&g, "CONTROL-OK msg#2 ", 8 + 24 + 6, 6), WR_ERR_PROTO);
  /* Return.which = exception with a payload-shaped pointer: Exception{0,2}
   * reads ptr0 (the cap pointer) as reason: wrong kind. */
  assert_int_equal(decode_patched(&g, "CONTROL-OK msg#2 ", 8 + 24 + 6, 1), WR_ERR_PROTO);
  /* CapDescriptor.which 6 (element data at word 9). */
  assert_int_equal(decode_patched(&g, "CONTROL-OK msg#2 ", 8 + 72, 6), WR_ERR_PROTO);
  /* MessageTarget.which 2 (target data at word 9, which at byte 4). */
  assert_int_equal(decode_patched(&g, "CONTROL-OK msg#1 ", 8 + 72 + 4, 2), WR_ERR_PROTO);
  /* Call.sendResultsTo 3. */
  assert_int_equal(decode_patched(&g, "CONTROL-OK msg#1 ", 8 + 24 + 6, 3), WR_ERR_PROTO);
  /* Abort reason without its NUL ("rpc: shutdown" NUL at word 5 + 13). */
  assert_int_equal(decode_patched(&g, "CONTROL-OK msg#13 ", 8 + 40 + 13, 'x'), WR_ERR_PROTO);
  /* Abort reason pointer with a huge offset. */
  assert_int_equal(decode_patched(&g, "CONTROL-OK msg#13 ", 8 + 32 + 2, 0x10), WR_ERR_BOUNDS);
  /* Finish pointer turned into a list pointer. */
  assert_int_equal(decode_patched(&g, "CONTROL-OK msg#4 ", 8 + 16, 1), WR_ERR_PROTO);

  /* A known variant with a null pointer. */
  for (uint8_t which = 0; which <= 8; which++) {
    char hex[128];
    snprintf(hex, sizeof(hex), "0000000003000000 0000000001000100 %02x00000000000000 0000000000000000",
             which);
    int rv = decode_hex(hex, &m);
    if (which == WR_RPC_RESOLVE || which == WR_RPC_OBSOLETE_SAVE) assert_int_equal(rv, 0);
    else assert_int_equal(rv, WR_ERR_PROTO);
  }
  /* Call target promisedAnswer with a null PromisedAnswer. */
  {
    wr_capnp_builder b;
    wr_capnp_bstruct call, target;
    const uint8_t *out;
    size_t n, used;
    begin_promised_call(&b, &call, &target);
    assert_int_equal(wr_capnp_builder_finish(&b, &out, &n), 0);
    assert_int_equal(wr_rpc_decode(&m, out, n, NULL, &used), WR_ERR_PROTO);
    wr_capnp_builder_free(&b);
  }

  /* Transform ops: valid ones decode, an unknown op kind does not, and the
   * count is bounded. */
  assert_int_equal(call_with_ops(0, 0, buf, sizeof(buf), &len), 0);
  assert_int_equal(call_with_ops(3, WR_RPC_OP_NOOP, buf, sizeof(buf), &len), 0);
  assert_int_equal(call_with_ops(WR_RPC_MAX_TRANSFORM, WR_RPC_OP_GET_POINTER_FIELD, buf,
                                 sizeof(buf), &len), 0);
  assert_int_equal(call_with_ops(2, 2, buf, sizeof(buf), &len), WR_ERR_PROTO);
  assert_int_equal(call_with_ops(WR_RPC_MAX_TRANSFORM + 1, WR_RPC_OP_NOOP, buf, sizeof(buf), &len),
                   WR_ERR_LIMIT);

  /* Oversize cap table. */
  {
    wr_rpc_capdesc caps[WR_RPC_MAX_CAPS + 1];
    wr_capnp_builder b;
    wr_capnp_bstruct p;
    const uint8_t *out;
    size_t n, used;
    for (int i = 0; i <= WR_RPC_MAX_CAPS; i++) caps[i] = (wr_rpc_capdesc){1, (uint32_t)i};
    for (int extra = 0; extra < 2; extra++) {
      wr_capnp_builder_init(&b, NULL, 0);
      assert_int_equal(wr_rpc_begin_return(&b, 0, 0, &p), 0);
      assert_int_equal(wr_capnp_set_cap(&p, 0, 0), 0);
      assert_int_equal(wr_rpc_end_payload(&p, caps, WR_RPC_MAX_CAPS + extra), 0);
      assert_int_equal(wr_capnp_builder_finish(&b, &out, &n), 0);
      assert_int_equal(wr_rpc_decode(&m, out, n, NULL, &used), extra ? WR_ERR_LIMIT : 0);
      wr_capnp_builder_free(&b);
    }
  }

  /* The root is a capability, or a far pointer to a missing segment. */
  assert_int_equal(decode_hex("0000000001000000 0300000000000000", &m), WR_ERR_PROTO);
  assert_int_equal(decode_hex("0000000001000000 0200000005000000", &m), WR_ERR_BOUNDS);
  /* Empty segment. */
  assert_int_equal(decode_hex("0000000000000000", &m), WR_ERR_BOUNDS);
  /* Far pointer to a landing pad in segment 1 that is itself far: refused. */
  assert_int_equal(decode_hex("0100000001000000 0100000000000000"
                              "0200000001000000 0200000001000000", &m), WR_ERR_PROTO);
  /* A valid two-segment Finish through a far pointer decodes. */
  assert_int_equal(decode_hex("0100000001000000 0400000000000000"
                              "0200000001000000 0000000001000100 0400000000000000"
                              "0000000001000000 0700000001000000", &m), 0);
  assert_int_equal(m.which, WR_RPC_FINISH);
  assert_int_equal(m.finish.question_id, 7);
  assert_int_equal(m.finish.release_result_caps, 0);
  golden_free(&g);
}

static void test_truncated(void **state) {
  (void)state;
  static wr_rpc_msg m;
  golden_set g = golden_load();
  for (size_t i = 0; i < g.n; i++) {
    const golden_entry *e = &g.e[i];
    if (!is_rpc_entry(e)) continue;
    for (size_t cut = 0; cut < e->len; cut++) {
      uint8_t *copy = malloc(cut ? cut : 1);
      size_t used;
      memcpy(copy, e->bytes, cut);
      assert_int_equal(wr_rpc_decode(&m, copy, cut, NULL, &used), WR_AGAIN);
      free(copy);
    }
  }
  golden_free(&g);
}

/* Decodes, and for anything that decodes, checks re-encoding reaches a
 * fixpoint: encode(decode(encode(decode(x)))) == encode(decode(x)). */
static void fixpoint(const uint8_t *buf, size_t len) {
  static wr_rpc_msg m1, m2;
  wr_capnp_builder b1, b2;
  const uint8_t *o1, *o2;
  size_t n1, n2, used;
  int rv = wr_rpc_decode(&m1, buf, len, NULL, &used);
  assert_true(rv == 0 || (rv < 0 && rv >= WR_ERR_INTERNAL));
  if (rv != 0) return;
  assert_true(used <= len);
  wr_capnp_builder_init(&b1, NULL, 0);
  if (rr_reencode(&b1, &m1, RR_AUTO) == 0 && wr_capnp_builder_finish(&b1, &o1, &n1) == 0) {
    assert_int_equal(wr_rpc_decode(&m2, o1, n1, NULL, &used), 0);
    assert_int_equal(m2.which, m1.which);
    wr_capnp_builder_init(&b2, NULL, 0);
    assert_int_equal(rr_reencode(&b2, &m2, RR_AUTO), 0);
    assert_int_equal(wr_capnp_builder_finish(&b2, &o2, &n2), 0);
    assert_int_equal(n1, n2);
    assert_memory_equal(o1, o2, n1);
    wr_capnp_builder_free(&b2);
  }
  wr_capnp_builder_free(&b1);
}

static void test_corrupt_every_byte(void **state) {
  (void)state;
  static const uint8_t xors[] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff};
  golden_set g = golden_load();
  for (size_t i = 0; i < g.n; i++) {
    const golden_entry *e = &g.e[i];
    if (!is_rpc_entry(e) || strstr(e->title, "msg#0 ")) continue; /* bootstraps: all alike */
    uint8_t *copy = malloc(e->len);
    for (size_t at = 8; at < e->len; at++) {
      for (size_t x = 0; x < sizeof(xors); x++) {
        memcpy(copy, e->bytes, e->len);
        copy[at] ^= xors[x];
        fixpoint(copy, e->len);
      }
    }
    free(copy);
  }
  golden_free(&g);
}

/* ---- allocation failures ---------------------------------------------------- */

typedef int (*build_fn)(wr_capnp_builder *b);

static int b_bootstrap(wr_capnp_builder *b) { return wr_rpc_build_bootstrap(b, 3); }
static int b_finish(wr_capnp_builder *b) { return wr_rpc_build_finish(b, 3, 1); }
static int b_release(wr_capnp_builder *b) { return wr_rpc_build_release(b, 3, 2); }
static int b_abort(wr_capnp_builder *b) { return wr_rpc_build_abort(b, "rpc: shutdown", 13, 0); }
static int b_ret_boot(wr_capnp_builder *b) { return wr_rpc_build_return_bootstrap(b, 0, 9); }
static int b_ret_exc(wr_capnp_builder *b) {
  return wr_rpc_build_return_exception(b, 1, 0, "config rejected", 15, 0);
}
static int b_ret_other(wr_capnp_builder *b) { return wr_rpc_build_return_other(b, 1, 0, 4, 2); }
static int b_call(wr_capnp_builder *b) {
  wr_capnp_bstruct p, c;
  const wr_rpc_capdesc cap = {WR_RPC_CAP_RECEIVER_ANSWER, 1};
  wr_rpc_begin_call(b, 1, 2, 3, WR_RPC_TARGET_PROMISED_ANSWER, 0, &p);
  wr_capnp_new_struct(&p, 0, 1, 1, &c);
  wr_capnp_set_text(&c, 0, "hello", 5);
  return wr_rpc_end_payload(&p, &cap, 1);
}
static int b_unimpl(wr_capnp_builder *b) {
  static wr_rpc_msg m;
  size_t n, used;
  uint8_t *buf = unit_hex("0000000009000000 0000000001000100 0300000000000000 0000000002000100"
                          "0100000001000000 0000000000000000 0000000000000200 fcffffff00000000"
                          "0100000007000000 0000000001000100", &n);
  assert_int_equal(wr_rpc_decode(&m, buf, n, NULL, &used), 0);
  int rv = wr_rpc_build_unimplemented(b, &m);
  free(buf);
  return rv;
}

static int build_with(wr_capnp_builder *b, void *fn) { return (*(const build_fn *)fn)(b); }

static void test_builders_failmem(void **state) {
  (void)state;
  static const build_fn fns[] = {b_bootstrap, b_finish,    b_release, b_abort, b_ret_boot,
                                 b_ret_exc,   b_ret_other, b_call,    b_unimpl};
  for (size_t f = 0; f < sizeof(fns) / sizeof(fns[0]); f++) {
    const uint8_t *ref = NULL;
    size_t ref_len = 0;
    wr_capnp_builder refb;
    wr_capnp_builder_init(&refb, NULL, 0);
    assert_int_equal(fns[f](&refb), 0);
    assert_int_equal(wr_capnp_builder_finish(&refb, &ref, &ref_len), 0);
    unit_capnp_failmem(build_with, (void *)&fns[f], ref, ref_len, 50);
    wr_capnp_builder_free(&refb);
  }
  /* A size cap on the builder gives WR_ERR_LIMIT. */
  wr_capnp_builder b;
  wr_capnp_builder_init(&b, NULL, 40);
  assert_int_equal(b_abort(&b), WR_ERR_LIMIT);
  wr_capnp_builder_free(&b);
}

int main(void) {
  return UNIT_RUN(
      NULL, NULL,
      UNIT_TESTS(test_control_from_connector, test_control_from_edge, test_udp_session_streams,
                 test_golden_all, test_builders_golden, test_return_other, test_cap_table,
                 test_unimplemented, test_format_unimplemented, test_malformed, test_truncated,
                 test_corrupt_every_byte, test_builders_failmem));
}
