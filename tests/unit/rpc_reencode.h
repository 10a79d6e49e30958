/* Re-encodes a decoded RPC message with the public builders, going through
 * the typed tunnelrpc codecs for the params/results content. Shared by the
 * unit suites (which compare the result with the Go bytes) and the fuzz
 * targets (which check decode -> encode -> decode -> encode is a fixpoint).
 * Plain C, header-only, no cmocka. */
#ifndef WR_TEST_RPC_REENCODE_H
#define WR_TEST_RPC_REENCODE_H
#include <string.h>

#include "lib/err.h"
#include "proto/rpc.h"
#include "proto/tunnelrpc.h"

/* Content hints: an enum wr_tunnelrpc_method, RR_GENERIC (deep copy) or
 * RR_AUTO (Calls: look the method up from interface/method IDs). */
#define RR_GENERIC 0
#define RR_AUTO (-1)

/* Decodes |p| as the tunnelrpc struct type |T| with |dec| and returns what
 * encoding it into |dst| with |enc| returns (the decoder's error if it
 * fails). */
#define RR_TYPED(T, dec, enc)                  \
  do {                                         \
    T rr_v_;                                   \
    int rr_rv_ = dec(p, &rr_v_);               \
    return rr_rv_ != 0 ? rr_rv_ : enc(dst, &rr_v_); \
  } while (0)

/* An empty struct decoded from |p| and encoded into |dst|. */
static inline int rr_empty(wr_capnp_bstruct *dst, const wr_rpc_payload *p) {
  int rv = wr_tunnelrpc_empty_decode(p);
  return rv != 0 ? rv : wr_tunnelrpc_empty_encode(dst);
}

/* Re-encodes the content of payload |p| into |dst|: typed when |method| is a
 * tunnelrpc method (|results| selects params or results), else copied. */
static inline int rr_content(wr_capnp_bstruct *dst, const wr_rpc_payload *p, int method,
                             int results) {
  if (p->content_kind == WR_CAPNP_PTR_CAP) return wr_capnp_set_cap(dst, 0, p->content_cap);
  switch (method) {
  case WR_TUNNELRPC_M_REGISTER_CONNECTION:
    if (results)
      RR_TYPED(wr_tunnelrpc_conn_response, wr_tunnelrpc_register_results_decode,
               wr_tunnelrpc_register_results_encode);
    RR_TYPED(wr_tunnelrpc_register_params, wr_tunnelrpc_register_params_decode,
             wr_tunnelrpc_register_params_encode);
  case WR_TUNNELRPC_M_UNREGISTER_CONNECTION:
    return rr_empty(dst, p);
  case WR_TUNNELRPC_M_UPDATE_LOCAL_CONFIGURATION:
    if (results) return rr_empty(dst, p);
    {
      const uint8_t *c;
      size_t n;
      int rv = wr_tunnelrpc_local_config_decode(p, &c, &n);
      return rv != 0 ? rv : wr_tunnelrpc_local_config_encode(dst, c, n);
    }
  case WR_TUNNELRPC_M_REGISTER_UDP_SESSION:
    if (results)
      RR_TYPED(wr_tunnelrpc_udp_register_results, wr_tunnelrpc_udp_register_results_decode,
               wr_tunnelrpc_udp_register_results_encode);
    RR_TYPED(wr_tunnelrpc_udp_register_params, wr_tunnelrpc_udp_register_params_decode,
             wr_tunnelrpc_udp_register_params_encode);
  case WR_TUNNELRPC_M_UNREGISTER_UDP_SESSION:
    if (results) return rr_empty(dst, p);
    RR_TYPED(wr_tunnelrpc_udp_unregister_params, wr_tunnelrpc_udp_unregister_params_decode,
             wr_tunnelrpc_udp_unregister_params_encode);
  case WR_TUNNELRPC_M_UPDATE_CONFIGURATION:
    if (results)
      RR_TYPED(wr_tunnelrpc_config_results, wr_tunnelrpc_config_results_decode,
               wr_tunnelrpc_config_results_encode);
    RR_TYPED(wr_tunnelrpc_config_params, wr_tunnelrpc_config_params_decode,
             wr_tunnelrpc_config_params_encode);
  default:
    return wr_rpc_copy_struct(dst, 0, &p->content);
  }
}

static inline int rr_end_payload(wr_capnp_bstruct *dst, const wr_rpc_payload *p) {
  wr_rpc_capdesc caps[WR_RPC_MAX_CAPS];
  int rv;
  for (uint32_t i = 0; i < p->ncaps; i++)
    if ((rv = wr_rpc_payload_cap(p, i, &caps[i])) != 0) return rv;
  return wr_rpc_end_payload(dst, caps, p->ncaps);
}

/* Re-encodes |m| into the fresh builder |b|. |method| describes the Call
 * params or Return results content (see above). */
static inline int rr_reencode(wr_capnp_builder *b, const wr_rpc_msg *m, int method) {
  wr_capnp_bstruct pl;
  int rv;
  switch (m->which) {
  case WR_RPC_BOOTSTRAP:
    return wr_rpc_build_bootstrap(b, m->bootstrap.question_id);
  case WR_RPC_FINISH:
    return wr_rpc_build_finish(b, m->finish.question_id, m->finish.release_result_caps);
  case WR_RPC_RELEASE:
    return wr_rpc_build_release(b, m->release.id, m->release.reference_count);
  case WR_RPC_ABORT:
    return wr_rpc_build_abort(b, m->abort.reason, m->abort.reason_len, m->abort.type);
  case WR_RPC_CALL: {
    const wr_rpc_call *c = &m->call;
    if (method == RR_AUTO) {
      method = wr_tunnelrpc_method_lookup(c->interface_id, c->method_id);
      if (method < 0) method = RR_GENERIC;
    }
    if (c->target.ntransform != 0 || c->send_results_to != 0 || c->allow_third_party_tail_call)
      return WR_ERR_UNSUPPORTED; /* not expressible with the builders */
    if ((rv = wr_rpc_begin_call(b, c->question_id, c->interface_id, c->method_id,
                                c->target.which, c->target.id, &pl)) != 0)
      return rv;
    if ((rv = rr_content(&pl, &c->params, method, 0)) != 0) return rv;
    return rr_end_payload(&pl, &c->params);
  }
  case WR_RPC_RETURN: {
    const wr_rpc_return *r = &m->ret;
    if (method == RR_AUTO) method = RR_GENERIC;
    switch (r->which) {
    case WR_RPC_RET_RESULTS:
      if ((rv = wr_rpc_begin_return(b, r->answer_id, r->release_param_caps, &pl)) != 0)
        return rv;
      if ((rv = rr_content(&pl, &r->results, method, 1)) != 0) return rv;
      return rr_end_payload(&pl, &r->results);
    case WR_RPC_RET_EXCEPTION:
      return wr_rpc_build_return_exception(b, r->answer_id, r->release_param_caps,
                                           r->exception.reason, r->exception.reason_len,
                                           r->exception.type);
    case WR_RPC_RET_ACCEPT_FROM_THIRD_PARTY:
      return WR_ERR_UNSUPPORTED;
    default:
      return wr_rpc_build_return_other(b, r->answer_id, r->release_param_caps, r->which,
                                       r->take_from_other_question);
    }
  }
  default: {
    /* unimplemented, resolve, provide, ... and unknown kinds: copy the
     * Message generically (the variant struct, when there is one). */
    wr_capnp_bstruct root;
    if ((rv = wr_capnp_init_root(b, 1, 1, &root)) != 0) return rv;
    wr_capnp_set_u16(&root, 0, m->which);
    return wr_rpc_copy_struct(&root, 0, &m->body);
  }
  }
}

#endif
