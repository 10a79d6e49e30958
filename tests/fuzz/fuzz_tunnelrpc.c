/* Fuzzes the tunnelrpc params/results codec (src/proto/tunnelrpc.c). The
 * input is one framed RPC message; its Call params or Return results payload
 * is read with every typed decoder in turn (each on a fresh decode, since a
 * failed read is sticky in the message). Whatever decodes is encoded into a
 * new payload, decoded again, and must encode to the same bytes; the decoded
 * strings must be NUL-terminated. Seeds: the golden RPC messages. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/err.h"
#include "proto/rpc.h"
#include "proto/tunnelrpc.h"
#include "fuzz.h"

static const wr_capnp_limits lim = {.traversal_words = 1u << 16};
static wr_rpc_msg msg, back;

static int valid_rv(int rv) { return rv == 0 || (rv < 0 && rv >= WR_ERR_INTERNAL); }

static int nul_ok(const char *s, size_t len) { return s != NULL && s[len] == '\0'; }

/* One decoder/encoder pair over a payload, with |check| on decoded values. */
typedef struct codec {
  int (*decode)(const wr_rpc_payload *p, void *out);
  int (*encode)(wr_capnp_bstruct *payload, const void *v);
  int (*check)(const void *v);
} codec;

/* d_<name> and e_<name>: wr_tunnelrpc_<c>_decode and _encode behind the
 * untyped signatures of a codec. */
#define CODEC_PAIR(name, c)                                                                     \
  static int d_##name(const wr_rpc_payload *p, void *o) { return wr_tunnelrpc_##c##_decode(p, o); } \
  static int e_##name(wr_capnp_bstruct *p, const void *v) { return wr_tunnelrpc_##c##_encode(p, v); }

/* CODEC_PAIR plus c_<name>: the one string |field| of the decoded
 * wr_tunnelrpc_<c> must be NUL-terminated. */
#define CODEC_STRING(name, c, field)                                                            \
  CODEC_PAIR(name, c)                                                                           \
  static int c_##name(const void *v) {                                                          \
    const wr_tunnelrpc_##c *r = v;                                                              \
    return nul_ok(r->field, r->field##_len);                                                    \
  }

CODEC_PAIR(reg, register_params)
static int c_reg(const void *v) {
  const wr_tunnelrpc_register_params *r = v;
  int ok = nul_ok(r->account_tag, r->account_tag_len) && nul_ok(r->client.version, r->client.version_len) &&
           nul_ok(r->client.arch, r->client.arch_len) && r->client.nfeatures <= WR_TUNNELRPC_MAX_FEATURES;
  for (size_t i = 0; ok && i < r->client.nfeatures; i++)
    ok = nul_ok(r->client.features[i].ptr, r->client.features[i].len);
  return ok;
}
CODEC_PAIR(res, register_results)
static int c_res(const void *v) {
  const wr_tunnelrpc_conn_response *r = v;
  if (r->which == WR_TUNNELRPC_CONN_ERROR) return nul_ok(r->error.cause, r->error.cause_len);
  return r->which == WR_TUNNELRPC_CONN_DETAILS && nul_ok(r->details.location, r->details.location_len);
}
CODEC_STRING(udp, udp_register_params, trace_context)
CODEC_STRING(udpr, udp_register_results, err)
CODEC_STRING(unreg, udp_unregister_params, message)
CODEC_PAIR(cfg, config_params)
static int c_none(const void *v) {
  (void)v;
  return 1;
}
CODEC_STRING(cfgr, config_results, err)
typedef struct blob {
  const uint8_t *p;
  size_t n;
} blob;
static int d_local(const wr_rpc_payload *p, void *o) {
  blob *b = o;
  return wr_tunnelrpc_local_config_decode(p, &b->p, &b->n);
}
static int e_local(wr_capnp_bstruct *p, const void *v) {
  const blob *b = v;
  return wr_tunnelrpc_local_config_encode(p, b->p, b->n);
}
static int d_empty(const wr_rpc_payload *p, void *o) {
  (void)o;
  return wr_tunnelrpc_empty_decode(p);
}
static int e_empty(wr_capnp_bstruct *p, const void *v) {
  (void)v;
  return wr_tunnelrpc_empty_encode(p);
}

static const codec codecs[] = {
    {d_reg, e_reg, c_reg},
    {d_res, e_res, c_res},
    {d_udp, e_udp, c_udp},
    {d_udpr, e_udpr, c_udpr},
    {d_unreg, e_unreg, c_unreg},
    {d_cfg, e_cfg, c_none},
    {d_cfgr, e_cfgr, c_cfgr},
    {d_local, e_local, c_none},
    {d_empty, e_empty, c_none},
};

static const wr_rpc_payload *payload_of(const wr_rpc_msg *m) {
  if (m->which == WR_RPC_CALL) return &m->call.params;
  if (m->which == WR_RPC_RETURN && m->ret.which == WR_RPC_RET_RESULTS) return &m->ret.results;
  return NULL;
}

/* Encodes |v| as the results of a Return; returns the framed bytes. */
static int encode_value(const codec *c, const void *v, wr_capnp_builder *b, const uint8_t **out,
                        size_t *len) {
  wr_capnp_bstruct p;
  wr_capnp_builder_init(b, NULL, 0);
  if (wr_rpc_begin_return(b, 0, 0, &p) != 0 || c->encode(&p, v) != 0 ||
      wr_rpc_end_payload(&p, NULL, 0) != 0)
    return b->err;
  return wr_capnp_builder_finish(b, out, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static union {
    wr_tunnelrpc_register_params reg;
    wr_tunnelrpc_conn_response res;
    wr_tunnelrpc_udp_register_params udp;
    wr_tunnelrpc_udp_register_results udpr;
    wr_tunnelrpc_udp_unregister_params unreg;
    wr_tunnelrpc_config_params cfg;
    wr_tunnelrpc_config_results cfgr;
    blob local;
  } v1, v2;
  size_t used;
  for (size_t i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++) {
    const codec *c = &codecs[i];
    if (wr_rpc_decode(&msg, data, size, &lim, &used) != 0) return 0;
    const wr_rpc_payload *p = payload_of(&msg);
    if (!p) return 0;
    int rv = c->decode(p, &v1);
    CHECK(valid_rv(rv));
    if (rv != 0) continue;
    CHECK(c->check(&v1));
    wr_capnp_builder b1, b2;
    const uint8_t *o1, *o2;
    size_t n1, n2;
    CHECK(encode_value(c, &v1, &b1, &o1, &n1) == 0);
    CHECK(wr_rpc_decode(&back, o1, n1, NULL, &used) == 0);
    CHECK(c->decode(payload_of(&back), &v2) == 0);
    CHECK(c->check(&v2));
    CHECK(encode_value(c, &v2, &b2, &o2, &n2) == 0);
    CHECK(n1 == n2 && memcmp(o1, o2, n1) == 0);
    wr_capnp_builder_free(&b1);
    wr_capnp_builder_free(&b2);
  }
  return 0;
}
