/* Fuzzes the Cap'n Proto RPC session (src/proto/rpc_session.c): the state
 * machine behind every control stream (edge side: the connector's
 * registerConnection / unregisterConnection / updateLocalConfiguration;
 * connector side: the edge's registerUdpSession / unregisterUdpSession /
 * updateConfiguration, and the answers to its own calls). fuzz_rpc covers the
 * message codec; this target covers what a peer can do to the bookkeeping
 * with a sequence of messages: questions, answers, exports, Finish, Release,
 * Abort, pipelined calls, unknown kinds, truncation, limits.
 *
 * Input: two control bytes, then the byte stream the peer sends (a leading
 * RPC-stream signature 52 BB 82 5C DB 65 is skipped, as the stream layer
 * does).
 *   byte 0 bit 0: also a client: Bootstrap + registerConnection before any
 *                 input (as the connector), another call after each piece
 *          bit 1: end with EOF (else with a graceful shutdown)
 *          bits 2-3: what the server methods do: answer, fail with an
 *                 exception, shut the session down, free it (deferred)
 *          bits 4-6: piece size 1 << (2 * bits): 1, 4, 16, ... bytes
 *          bit 7: the write callback fails after byte 1's low nibble writes
 *   byte 1 bits 4-7: fail the Nth allocation (0: none; N = value * 3)
 * Checked, beyond ASan/UBSan/LeakSanitizer:
 *   - feed, eof, shutdown and call return only their documented codes
 *     (WR_ERR_NOMEM only when the allocator failed);
 *   - every message written decodes completely as one RPC message;
 *   - each of our calls gets exactly one return callback by the time the
 *     session is closed (a synthesized exception if the peer never answered),
 *     and the session then has no open questions;
 *   - once closed, the session stays closed and writes nothing more. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/mem.h"
#include "proto/rpc.h"
#include "proto/rpc_session.h"
#include "proto/tunnelrpc.h"
#include "fuzz.h"

static const uint8_t rpc_sig[6] = {0x52, 0xbb, 0x82, 0x5c, 0xdb, 0x65};

/* ---- a failing allocator ---- */

static unsigned long nallocs, fail_at;
static int alloc_failed;

static int should_fail(void) {
  if (fail_at && ++nallocs == fail_at) {
    alloc_failed = 1;
    return 1;
  }
  return 0;
}
static void *f_malloc(size_t n, void *u) {
  (void)u;
  return should_fail() ? NULL : malloc(n);
}
static void f_free(void *p, void *u) {
  (void)u;
  free(p);
}
static void *f_calloc(size_t n, size_t sz, void *u) {
  (void)u;
  return should_fail() ? NULL : calloc(n, sz);
}
static void *f_realloc(void *p, size_t n, void *u) {
  (void)u;
  return should_fail() ? NULL : realloc(p, n);
}
static const wr_mem failing = {f_malloc, f_free, f_calloc, f_realloc, NULL};

/* ---- state of one input ---- */

static int trace; /* WR_FUZZ_TRACE set: print what happens */
static int method_mode; /* 0 answer, 1 exception, 2 shutdown, 3 free */
static int closed_seen, freed;
static unsigned writes, fail_writes_after;
static unsigned calls_made, returns_seen;
static wr_rpc_msg wmsg;

static int on_write(void *user, const uint8_t *data, size_t len) {
  (void)user;
  size_t used = 0;
  CHECK(!freed);
  CHECK(!closed_seen); /* nothing is written once the session is closed */
  if (fail_writes_after && writes >= fail_writes_after) return WR_ERR_IO;
  writes++;
  /* One complete message per write. */
  CHECK(wr_rpc_decode(&wmsg, data, len, NULL, &used) == 0 && used == len);
  return 0;
}

static void on_return(wr_rpc_session *s, void *user, uint32_t qid, const wr_rpc_return *ret) {
  (void)s;
  (void)user;
  (void)qid;
  (void)ret;
  returns_seen++;
  if (trace) fprintf(stderr, "return for question %u: which=%d\n", qid, (int)ret->which);
  CHECK(returns_seen <= calls_made);
}

static int fill_register(void *arg, wr_capnp_bstruct *params) {
  static const uint8_t secret[32] = {1, 2, 3};
  static const uint8_t tid[16] = {4, 5, 6};
  wr_tunnelrpc_register_params p;
  (void)arg;
  memset(&p, 0, sizeof(p));
  p.account_tag = "0123456789abcdef0123456789abcdef";
  p.account_tag_len = 32;
  p.tunnel_secret = secret;
  p.tunnel_secret_len = sizeof(secret);
  p.tunnel_id = tid;
  p.tunnel_id_len = sizeof(tid);
  p.client.version = "fuzz";
  p.client.version_len = 4;
  p.client.arch = "linux_amd64";
  p.client.arch_len = 11;
  return wr_tunnelrpc_register_params_encode(params, &p);
}

static int method_end(wr_rpc_session *s, wr_rpc_reply *r, int rv) {
  switch (method_mode) {
  case 1:
    snprintf(r->reason, sizeof(r->reason), "refused by the fuzzer");
    return WR_ERR_INVAL;
  case 2:
    wr_rpc_session_shutdown(s);
    closed_seen = 1; /* Abort is out: nothing may follow it, not even this Return */
    break;
  case 3:
    wr_rpc_session_free(s); /* deferred until the outermost call returns */
    freed = 1;
    break;
  default: break;
  }
  return rv;
}

static int m_register(wr_rpc_session *s, void *user, const wr_rpc_call *call, wr_rpc_reply *r) {
  static const uint8_t uuid[16] = {9};
  wr_tunnelrpc_register_params p;
  (void)user;
  int rv = wr_tunnelrpc_register_params_decode(&call->params, &p);
  if (rv) return rv;
  wr_tunnelrpc_conn_response resp = {
      .which = WR_TUNNELRPC_CONN_DETAILS,
      .details = {.uuid = uuid, .uuid_len = 16, .location = "FUZZ", .location_len = 4}};
  return method_end(s, r, wr_tunnelrpc_register_results_encode(&r->results, &resp));
}

static int m_empty(wr_rpc_session *s, void *user, const wr_rpc_call *call, wr_rpc_reply *r) {
  (void)user;
  (void)call;
  return method_end(s, r, wr_tunnelrpc_empty_encode(&r->results));
}

static int m_local(wr_rpc_session *s, void *user, const wr_rpc_call *call, wr_rpc_reply *r) {
  const uint8_t *cfg;
  size_t len;
  (void)user;
  int rv = wr_tunnelrpc_local_config_decode(&call->params, &cfg, &len);
  if (rv) return rv;
  return method_end(s, r, wr_tunnelrpc_empty_encode(&r->results));
}

static int m_udp(wr_rpc_session *s, void *user, const wr_rpc_call *call, wr_rpc_reply *r) {
  wr_tunnelrpc_udp_register_params p;
  wr_tunnelrpc_udp_register_results res;
  (void)user;
  int rv = wr_tunnelrpc_udp_register_params_decode(&call->params, &p);
  if (rv) return rv;
  memset(&res, 0, sizeof(res));
  return method_end(s, r, wr_tunnelrpc_udp_register_results_encode(&r->results, &res));
}

static int m_unudp(wr_rpc_session *s, void *user, const wr_rpc_call *call, wr_rpc_reply *r) {
  wr_tunnelrpc_udp_unregister_params p;
  (void)user;
  int rv = wr_tunnelrpc_udp_unregister_params_decode(&call->params, &p);
  if (rv) return rv;
  return method_end(s, r, wr_tunnelrpc_empty_encode(&r->results));
}

static int m_config(wr_rpc_session *s, void *user, const wr_rpc_call *call, wr_rpc_reply *r) {
  wr_tunnelrpc_config_params p;
  wr_tunnelrpc_config_results res;
  (void)user;
  int rv = wr_tunnelrpc_config_params_decode(&call->params, &p);
  if (rv) return rv;
  memset(&res, 0, sizeof(res));
  res.latest_applied_version = p.version;
  return method_end(s, r, wr_tunnelrpc_config_results_encode(&r->results, &res));
}

static const wr_rpc_method methods[] = {
    {WR_TUNNELRPC_REGISTRATION_SERVER, WR_TUNNELRPC_REGISTER_CONNECTION, m_register},
    {WR_TUNNELRPC_REGISTRATION_SERVER, WR_TUNNELRPC_UNREGISTER_CONNECTION, m_empty},
    {WR_TUNNELRPC_REGISTRATION_SERVER, WR_TUNNELRPC_UPDATE_LOCAL_CONFIGURATION, m_local},
    {WR_TUNNELRPC_SESSION_MANAGER, WR_TUNNELRPC_REGISTER_UDP_SESSION, m_udp},
    {WR_TUNNELRPC_SESSION_MANAGER, WR_TUNNELRPC_UNREGISTER_UDP_SESSION, m_unudp},
    {WR_TUNNELRPC_CONFIGURATION_MANAGER, WR_TUNNELRPC_UPDATE_CONFIGURATION, m_config},
};

static int rv_ok(int rv) {
  if (rv == WR_ERR_NOMEM) return alloc_failed;
  if (rv == WR_ERR_IO) return fail_writes_after != 0; /* the write callback's error */
  return rv == WR_OK || rv == WR_ERR_PROTO || rv == WR_ERR_BOUNDS || rv == WR_ERR_LIMIT ||
         rv == WR_ERR_TRUNC || rv == WR_ERR_INVAL;
}

static void call_once(wr_rpc_session *s) {
  int rv = wr_rpc_session_call(s, WR_TUNNELRPC_REGISTRATION_SERVER,
                               WR_TUNNELRPC_REGISTER_CONNECTION, fill_register, NULL, on_return,
                               NULL, NULL);
  CHECK(rv_ok(rv));
  if (rv == WR_OK) calls_made++;
  if (trace) fprintf(stderr, "call -> %d (calls %u, returns %u)\n", rv, calls_made, returns_seen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  trace = getenv("WR_FUZZ_TRACE") != NULL;
  uint8_t c0 = data[0], c1 = data[1];
  data += 2;
  size -= 2;
  if (size >= 6 && memcmp(data, rpc_sig, 6) == 0) {
    data += 6;
    size -= 6;
  }
  int client = c0 & 1, use_eof = (c0 >> 1) & 1;
  method_mode = (c0 >> 2) & 3;
  size_t piece = (size_t)1 << (2 * ((c0 >> 4) & 7));
  fail_writes_after = (c0 & 0x80) ? (c1 & 0x0f) + 1u : 0;
  fail_at = (unsigned long)(c1 >> 4) * 3;
  nallocs = 0;
  alloc_failed = closed_seen = freed = 0;
  writes = calls_made = returns_seen = 0;

  wr_rpc_session_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.mem = &failing;
  cfg.max_message = 1u << 16;
  cfg.write = on_write;
  cfg.serve_bootstrap = 1;
  cfg.methods = methods;
  cfg.nmethods = sizeof(methods) / sizeof(methods[0]);
  wr_rpc_session *s = NULL;
  int rv = wr_rpc_session_new(&cfg, &s);
  if (rv != WR_OK) {
    CHECK(rv == WR_ERR_NOMEM && alloc_failed && s == NULL);
    return 0;
  }
  if (client) call_once(s);
  for (size_t off = 0; off < size && !freed;) {
    size_t n = size - off < piece ? size - off : piece;
    int was_closed = wr_rpc_session_closed(s);
    closed_seen = was_closed;
    rv = wr_rpc_session_feed(s, data + off, n);
    if (trace)
      fprintf(stderr, "feed %zu+%zu -> %d closed=%d reason=%s questions=%zu returns=%u\n", off, n,
              rv, freed ? -1 : wr_rpc_session_closed(s), freed ? "-" : wr_rpc_session_reason(s),
              freed ? 0 : wr_rpc_session_questions(s), returns_seen);
    CHECK(rv_ok(rv) && rv != WR_ERR_TRUNC);
    if (freed) break;
    if (was_closed) CHECK(wr_rpc_session_closed(s));
    if (rv != WR_OK) CHECK(wr_rpc_session_closed(s));
    off += n;
    if (client && !wr_rpc_session_closed(s) && calls_made < 8) call_once(s);
  }
  if (freed) return 0; /* freed by a method; its callbacks are not called */
  closed_seen = wr_rpc_session_closed(s);
  if (use_eof) {
    rv = wr_rpc_session_eof(s);
    CHECK(rv_ok(rv));
  } else {
    rv = wr_rpc_session_shutdown(s);
    CHECK(rv_ok(rv));
  }
  if (trace)
    fprintf(stderr, "%s -> %d closed=%d reason=%s questions=%zu calls=%u returns=%u\n",
            use_eof ? "eof" : "shutdown", rv, wr_rpc_session_closed(s), wr_rpc_session_reason(s),
            wr_rpc_session_questions(s), calls_made, returns_seen);
  if (!freed) {
    CHECK(wr_rpc_session_closed(s));
    CHECK(strlen(wr_rpc_session_reason(s)) > 0);
    CHECK(wr_rpc_session_questions(s) == 0);
    CHECK(returns_seen == calls_made);
    closed_seen = 1;
    /* Closed for good: more input changes nothing and writes nothing. */
    CHECK(rv_ok(wr_rpc_session_feed(s, (const uint8_t *)"\0\0\0\0\1\0\0\0", 8)));
    CHECK(wr_rpc_session_closed(s));
    wr_rpc_session_free(s);
  }
  return 0;
}
