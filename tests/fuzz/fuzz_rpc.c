/* Fuzzes the Cap'n Proto RPC codec (src/proto/rpc.c) over a whole RPC byte
 * stream (an optional RPC-stream signature is skipped), together with the
 * tunnelrpc params/results inside Calls and Returns. Every message that
 * decodes is re-encoded with the public builders (typed for known methods,
 * copied otherwise); decoding and re-encoding that must give the same bytes
 * again, and the Unimplemented echo of it must decode. Seeds: the captured
 * control / RPC streams and the golden RPC transcripts. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../unit/rpc_reencode.h"
#include "lib/err.h"
#include "proto/rpc.h"
#include "proto/tunnelrpc.h"
#include "fuzz.h"

static const uint8_t rpc_sig[6] = {0x52, 0xbb, 0x82, 0x5c, 0xdb, 0x65};
static const wr_capnp_limits lim = {.traversal_words = 1u << 16};

static wr_rpc_msg m1, m2, m3;

static int valid_rv(int rv) { return rv == 0 || (rv < 0 && rv >= WR_ERR_INTERNAL); }

/* encode(decode(encode(m))) == encode(m) for the content hint |hint|. */
static void fixpoint(const wr_rpc_msg *m, int hint) {
  wr_capnp_builder b1, b2;
  const uint8_t *o1, *o2;
  size_t n1, n2, used;
  wr_capnp_builder_init(&b1, NULL, 0);
  int rv = rr_reencode(&b1, m, hint);
  CHECK(valid_rv(rv));
  if (rv == 0 && wr_capnp_builder_finish(&b1, &o1, &n1) == 0) {
    CHECK(wr_rpc_decode(&m2, o1, n1, NULL, &used) == 0 && used == n1);
    CHECK(m2.which == m->which);
    wr_capnp_builder_init(&b2, NULL, 0);
    CHECK(rr_reencode(&b2, &m2, hint) == 0);
    CHECK(wr_capnp_builder_finish(&b2, &o2, &n2) == 0);
    CHECK(n1 == n2 && memcmp(o1, o2, n1) == 0);
    wr_capnp_builder_free(&b2);
  }
  wr_capnp_builder_free(&b1);
}

static void unimplemented_echo(const wr_rpc_msg *m) {
  wr_capnp_builder b;
  const uint8_t *o;
  size_t n, used;
  wr_capnp_builder_init(&b, NULL, 0);
  int rv = wr_rpc_build_unimplemented(&b, m);
  CHECK(valid_rv(rv));
  if (rv == 0 && wr_capnp_builder_finish(&b, &o, &n) == 0) {
    CHECK(wr_rpc_decode(&m2, o, n, NULL, &used) == 0);
    CHECK(m2.which == WR_RPC_UNIMPLEMENTED && m2.unimplemented.which == m->which);
  }
  wr_capnp_builder_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size >= 6 && memcmp(data, rpc_sig, 6) == 0) {
    data += 6;
    size -= 6;
  }
  for (int n = 0; size > 0 && n < 64; n++) {
    size_t used = 0;
    int rv = wr_rpc_decode(&m1, data, size, &lim, &used);
    CHECK(valid_rv(rv));
    if (rv != 0) break;
    CHECK(used > 0 && used <= size);
    CHECK(m1.cm.err == 0);
    /* Validated while decoding, so the accessors cannot fail now. */
    for (uint32_t i = 0; m1.which == WR_RPC_CALL && i < m1.call.params.ncaps; i++) {
      wr_rpc_capdesc d;
      CHECK(wr_rpc_payload_cap(&m1.call.params, i, &d) == 0);
    }
    for (uint32_t i = 0; m1.which == WR_RPC_CALL && i < m1.call.target.ntransform; i++) {
      uint16_t w, f;
      CHECK(wr_rpc_target_op(&m1.call.target, i, &w, &f) == 0);
    }
    if (m1.which == WR_RPC_RETURN && m1.ret.which == WR_RPC_RET_RESULTS) {
      /* The answer's method is known only to the session: try them all,
       * each on a fresh decode (a failed typed read poisons the message). */
      for (int hint = RR_GENERIC; hint <= WR_TUNNELRPC_M_UPDATE_CONFIGURATION; hint++) {
        CHECK(wr_rpc_decode(&m3, data, size, &lim, &used) == 0);
        fixpoint(&m3, hint);
      }
    } else {
      fixpoint(&m1, RR_AUTO);
    }
    CHECK(wr_rpc_decode(&m3, data, size, &lim, &used) == 0);
    unimplemented_echo(&m3);
    data += used;
    size -= used;
  }
  return 0;
}
