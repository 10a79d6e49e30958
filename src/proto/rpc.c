/* Cap'n Proto RPC message codec: see rpc.h.
 *
 * Struct layouts (capnproto2 v2.18.0 std/capnp/rpc, protocol.md 2.3):
 *   Message {8,1}        which u16@0; every variant in ptr0
 *   Bootstrap {8,1}      questionId u32@0; deprecatedObjectId ptr0
 *   Call {24,3}          questionId u32@0, methodId u16@4, sendResultsTo u16@6,
 *                        interfaceId u64@8, allowThirdPartyTailCall bit128;
 *                        target ptr0, params ptr1, sendResultsTo.thirdParty ptr2
 *   Return {16,1}        answerId u32@0, releaseParamCaps bit32 (inverted),
 *                        which u16@6, takeFromOtherQuestion u32@8; ptr0
 *   Finish {8,0}         questionId u32@0, releaseResultCaps bit32 (inverted)
 *   Release {8,0}        id u32@0, referenceCount u32@4
 *   Resolve {8,1}        promiseId u32@0, which u16@4
 *   MessageTarget {8,1}  importedCap u32@0, which u16@4; promisedAnswer ptr0
 *   PromisedAnswer {8,1} questionId u32@0; transform List(Op) ptr0
 *   Op {8,0}             which u16@0, getPointerField u16@2
 *   Payload {0,2}        content ptr0, capTable List(CapDescriptor) ptr1
 *   CapDescriptor {8,1}  which u16@0, id u32@4; receiverAnswer/thirdParty ptr0
 *   Exception {8,1}      reason ptr0, type u16@4 */
#include "proto/rpc.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"

/* ---- Decoding ---------------------------------------------------------- */

static int decode_exception(const wr_capnp_struct *s, wr_rpc_exception *e) {
  e->type = wr_capnp_u16(s, 4);
  return wr_capnp_get_text(s, 0, &e->reason, &e->reason_len);
}

int wr_rpc_payload_cap(const wr_rpc_payload *p, uint32_t i, wr_rpc_capdesc *out) {
  wr_capnp_struct e, pa;
  int rv;
  memset(out, 0, sizeof(*out));
  /* Checked here so a bad index does not poison the message's sticky error. */
  if (i >= p->ncaps) return WR_ERR_BOUNDS;
  if ((rv = wr_capnp_list_struct(&p->cap_table, i, &e)) != 0) return rv;
  out->which = wr_capnp_u16(&e, 0);
  switch (out->which) {
  case WR_RPC_CAP_NONE:
  case WR_RPC_CAP_THIRD_PARTY_HOSTED:
    return WR_OK;
  case WR_RPC_CAP_SENDER_HOSTED:
  case WR_RPC_CAP_SENDER_PROMISE:
  case WR_RPC_CAP_RECEIVER_HOSTED:
    out->id = wr_capnp_u32(&e, 4);
    return WR_OK;
  case WR_RPC_CAP_RECEIVER_ANSWER:
    if ((rv = wr_capnp_get_struct(&e, 0, &pa)) != 0) return rv;
    out->id = wr_capnp_u32(&pa, 0);
    return WR_OK;
  default:
    return WR_ERR_PROTO;
  }
}

int wr_rpc_target_op(const wr_rpc_target *t, uint32_t i, uint16_t *which, uint16_t *field) {
  wr_capnp_struct op;
  int rv;
  *which = 0;
  *field = 0;
  if (i >= t->ntransform) return WR_ERR_BOUNDS;
  if ((rv = wr_capnp_list_struct(&t->transform, i, &op)) != 0) return rv;
  *which = wr_capnp_u16(&op, 0);
  if (*which > WR_RPC_OP_GET_POINTER_FIELD) return WR_ERR_PROTO;
  if (*which == WR_RPC_OP_GET_POINTER_FIELD) *field = wr_capnp_u16(&op, 2);
  return WR_OK;
}

static int decode_payload(const wr_capnp_struct *s, wr_rpc_payload *p) {
  int rv, kind = wr_capnp_ptr_kind(s, 0);
  memset(p, 0, sizeof(*p));
  if (kind < 0) return kind;
  p->content_kind = kind;
  p->content.is_null = 1;
  if (kind == WR_CAPNP_PTR_STRUCT || kind == WR_CAPNP_PTR_NULL) {
    if ((rv = wr_capnp_get_struct(s, 0, &p->content)) != 0) return rv;
  } else if (kind == WR_CAPNP_PTR_CAP) {
    if ((rv = wr_capnp_get_cap(s, 0, &p->content_cap)) != 0) return rv;
  } /* a list as content is valid Cap'n Proto; no method here uses one */
  if ((rv = wr_capnp_get_list(s, 1, &p->cap_table)) != 0) return rv;
  if (p->cap_table.count > WR_RPC_MAX_CAPS) return WR_ERR_LIMIT;
  p->ncaps = p->cap_table.count;
  for (uint32_t i = 0; i < p->ncaps; i++) {
    wr_rpc_capdesc d;
    if ((rv = wr_rpc_payload_cap(p, i, &d)) != 0) return rv;
  }
  return WR_OK;
}

static int decode_target(const wr_capnp_struct *s, wr_rpc_target *t) {
  wr_capnp_struct pa;
  int rv;
  memset(t, 0, sizeof(*t));
  t->which = wr_capnp_u16(s, 4);
  switch (t->which) {
  case WR_RPC_TARGET_IMPORTED_CAP:
    t->id = wr_capnp_u32(s, 0);
    return WR_OK;
  case WR_RPC_TARGET_PROMISED_ANSWER:
    if ((rv = wr_capnp_get_struct(s, 0, &pa)) != 0) return rv;
    if (pa.is_null) return WR_ERR_PROTO;
    t->id = wr_capnp_u32(&pa, 0);
    if ((rv = wr_capnp_get_list(&pa, 0, &t->transform)) != 0) return rv;
    if (t->transform.count > WR_RPC_MAX_TRANSFORM) return WR_ERR_LIMIT;
    t->ntransform = t->transform.count;
    for (uint32_t i = 0; i < t->ntransform; i++) {
      uint16_t w, f;
      if ((rv = wr_rpc_target_op(t, i, &w, &f)) != 0) return rv;
    }
    return WR_OK;
  default:
    return WR_ERR_PROTO;
  }
}

static int decode_call(const wr_capnp_struct *s, wr_rpc_call *c) {
  wr_capnp_struct t, p;
  int rv;
  c->question_id = wr_capnp_u32(s, 0);
  c->method_id = wr_capnp_u16(s, 4);
  c->send_results_to = wr_capnp_u16(s, 6);
  c->interface_id = wr_capnp_u64(s, 8);
  c->allow_third_party_tail_call = wr_capnp_bool(s, 128);
  if (c->send_results_to > 2) return WR_ERR_PROTO;
  if ((rv = wr_capnp_get_struct(s, 0, &t)) != 0) return rv;
  if (t.is_null) return WR_ERR_PROTO;
  if ((rv = decode_target(&t, &c->target)) != 0) return rv;
  if ((rv = wr_capnp_get_struct(s, 1, &p)) != 0) return rv;
  return decode_payload(&p, &c->params);
}

static int decode_return(const wr_capnp_struct *s, wr_rpc_return *r) {
  wr_capnp_struct v;
  int rv;
  r->answer_id = wr_capnp_u32(s, 0);
  r->release_param_caps = !wr_capnp_bool(s, 32);
  r->which = wr_capnp_u16(s, 6);
  switch (r->which) {
  case WR_RPC_RET_RESULTS:
    if ((rv = wr_capnp_get_struct(s, 0, &v)) != 0) return rv;
    return decode_payload(&v, &r->results);
  case WR_RPC_RET_EXCEPTION:
    if ((rv = wr_capnp_get_struct(s, 0, &v)) != 0) return rv;
    return decode_exception(&v, &r->exception);
  case WR_RPC_RET_TAKE_FROM_OTHER_QUESTION:
    r->take_from_other_question = wr_capnp_u32(s, 8);
    return WR_OK;
  case WR_RPC_RET_CANCELED:
  case WR_RPC_RET_RESULTS_SENT_ELSEWHERE:
  case WR_RPC_RET_ACCEPT_FROM_THIRD_PARTY:
    return WR_OK;
  default:
    return WR_ERR_PROTO;
  }
}

/* Variants whose payload in Message.ptr0 is a struct. */
static int variant_is_struct(uint16_t which) {
  return which < WR_RPC_WHICH_COUNT && which != WR_RPC_OBSOLETE_SAVE &&
         which != WR_RPC_OBSOLETE_DELETE;
}

/* The variants decoded here that must carry a body (Resolve may not). */
#define BODY_REQUIRED                                                                               \
  (1u << WR_RPC_UNIMPLEMENTED | 1u << WR_RPC_ABORT | 1u << WR_RPC_CALL | 1u << WR_RPC_RETURN |      \
   1u << WR_RPC_FINISH | 1u << WR_RPC_RELEASE | 1u << WR_RPC_BOOTSTRAP)

int wr_rpc_decode(wr_rpc_msg *m, const uint8_t *buf, size_t len, const wr_capnp_limits *limits,
                  size_t *consumed) {
  wr_capnp_struct root;
  size_t used = 0;
  int rv;
  /* Everything but the (large) capnp message, which msg_init fills. */
  memset(m, 0, offsetof(wr_rpc_msg, cm));
  m->body.is_null = 1;
  if ((rv = wr_capnp_msg_init(&m->cm, buf, len, limits, &used)) != 0) return rv;
  if ((rv = wr_capnp_root(&m->cm, &root)) != 0) return rv;
  m->which = wr_capnp_u16(&root, 0);
  if (variant_is_struct(m->which)) {
    if ((rv = wr_capnp_get_struct(&root, 0, &m->body)) != 0) return rv;
  }
  const wr_capnp_struct *b = &m->body;
  if (b->is_null && m->which < 32 && (BODY_REQUIRED >> m->which & 1)) return WR_ERR_PROTO;
  switch (m->which) {
  case WR_RPC_UNIMPLEMENTED:
    m->unimplemented.which = wr_capnp_u16(b, 0);
    break;
  case WR_RPC_ABORT:
    rv = decode_exception(b, &m->abort);
    break;
  case WR_RPC_CALL:
    rv = decode_call(b, &m->call);
    break;
  case WR_RPC_RETURN:
    rv = decode_return(b, &m->ret);
    break;
  case WR_RPC_FINISH:
    m->finish.question_id = wr_capnp_u32(b, 0);
    m->finish.release_result_caps = !wr_capnp_bool(b, 32);
    break;
  case WR_RPC_RESOLVE:
    m->resolve.promise_id = wr_capnp_u32(b, 0);
    m->resolve.which = wr_capnp_u16(b, 4);
    break;
  case WR_RPC_RELEASE:
    m->release.id = wr_capnp_u32(b, 0);
    m->release.reference_count = wr_capnp_u32(b, 4);
    break;
  case WR_RPC_BOOTSTRAP:
    m->bootstrap.question_id = wr_capnp_u32(b, 0);
    break;
  default:
    break; /* recognised but not decoded, or unknown: answered Unimplemented */
  }
  if (rv != 0) return rv;
  if (consumed) *consumed = used;
  return WR_OK;
}

const char *wr_rpc_which_name(uint16_t which) {
  static const char *const names[WR_RPC_WHICH_COUNT] = {
      "unimplemented", "abort", "call", "return", "finish", "resolve", "release",
      "obsoleteSave", "bootstrap", "obsoleteDelete", "provide", "accept", "join", "disembargo"};
  return which < WR_RPC_WHICH_COUNT ? names[which] : "unknown";
}

/* ---- Building ---------------------------------------------------------- */

/* Root Message {8,1} with |which| and a new variant struct in ptr0. */
static int begin_msg(wr_capnp_builder *b, uint16_t which, uint16_t dw, uint16_t np,
                     wr_capnp_bstruct *body) {
  wr_capnp_bstruct root;
  int rv;
  if ((rv = wr_capnp_init_root(b, 1, 1, &root)) != 0) return rv;
  wr_capnp_set_u16(&root, 0, which);
  return wr_capnp_new_struct(&root, 0, dw, np, body);
}

int wr_rpc_build_bootstrap(wr_capnp_builder *b, uint32_t question_id) {
  wr_capnp_bstruct s;
  if (begin_msg(b, WR_RPC_BOOTSTRAP, 1, 1, &s) == 0) wr_capnp_set_u32(&s, 0, question_id);
  return b->err;
}

int wr_rpc_build_finish(wr_capnp_builder *b, uint32_t question_id, int release_result_caps) {
  wr_capnp_bstruct s;
  if (begin_msg(b, WR_RPC_FINISH, 1, 0, &s) == 0) {
    wr_capnp_set_u32(&s, 0, question_id);
    wr_capnp_set_bool(&s, 32, !release_result_caps);
  }
  return b->err;
}

int wr_rpc_build_release(wr_capnp_builder *b, uint32_t id, uint32_t reference_count) {
  wr_capnp_bstruct s;
  if (begin_msg(b, WR_RPC_RELEASE, 1, 0, &s) == 0) {
    wr_capnp_set_u32(&s, 0, id);
    wr_capnp_set_u32(&s, 4, reference_count);
  }
  return b->err;
}

static void fill_exception(wr_capnp_bstruct *e, const char *reason, size_t reason_len,
                           uint16_t type) {
  if (wr_capnp_set_text(e, 0, reason, reason_len) == 0) wr_capnp_set_u16(e, 4, type);
}

int wr_rpc_build_abort(wr_capnp_builder *b, const char *reason, size_t reason_len,
                       uint16_t type) {
  wr_capnp_bstruct s;
  if (begin_msg(b, WR_RPC_ABORT, 1, 1, &s) == 0) fill_exception(&s, reason, reason_len, type);
  return b->err;
}

/* PromisedAnswer{questionId, transform = []} in pointer |idx| of |parent|. */
static int put_promised_answer(wr_capnp_bstruct *parent, uint16_t idx, uint32_t question_id) {
  wr_capnp_bstruct pa;
  wr_capnp_blist ops;
  int rv;
  if ((rv = wr_capnp_new_struct(parent, idx, 1, 1, &pa)) != 0) return rv;
  wr_capnp_set_u32(&pa, 0, question_id);
  return wr_capnp_new_struct_list(&pa, 0, 0, 1, 0, &ops);
}

int wr_rpc_begin_call(wr_capnp_builder *b, uint32_t question_id, uint64_t interface_id,
                      uint16_t method_id, uint16_t target_which, uint32_t target_id,
                      wr_capnp_bstruct *payload) {
  wr_capnp_bstruct c, t;
  memset(payload, 0, sizeof(*payload));
  payload->b = b;
  if (target_which > WR_RPC_TARGET_PROMISED_ANSWER) {
    if (!b->err) b->err = WR_ERR_INVAL;
    return b->err;
  }
  if (begin_msg(b, WR_RPC_CALL, 3, 3, &c) != 0) return b->err;
  wr_capnp_set_u32(&c, 0, question_id);
  wr_capnp_set_u16(&c, 4, method_id);
  wr_capnp_set_u64(&c, 8, interface_id);
  /* Allocation order as in Go: target (and its promised answer), then the
   * params payload; the caller's content follows, the cap table comes last. */
  if (wr_capnp_new_struct(&c, 0, 1, 1, &t) != 0) return b->err;
  wr_capnp_set_u16(&t, 4, target_which);
  if (target_which == WR_RPC_TARGET_IMPORTED_CAP) wr_capnp_set_u32(&t, 0, target_id);
  else if (put_promised_answer(&t, 0, target_id) != 0) return b->err;
  return wr_capnp_new_struct(&c, 1, 0, 2, payload);
}

static int begin_return(wr_capnp_builder *b, uint32_t answer_id, int release_param_caps,
                        uint16_t which, wr_capnp_bstruct *ret) {
  if (begin_msg(b, WR_RPC_RETURN, 2, 1, ret) != 0) return b->err;
  wr_capnp_set_u32(ret, 0, answer_id);
  wr_capnp_set_bool(ret, 32, !release_param_caps);
  wr_capnp_set_u16(ret, 6, which);
  return b->err;
}

int wr_rpc_begin_return(wr_capnp_builder *b, uint32_t answer_id, int release_param_caps,
                        wr_capnp_bstruct *payload) {
  wr_capnp_bstruct r;
  memset(payload, 0, sizeof(*payload));
  payload->b = b;
  if (begin_return(b, answer_id, release_param_caps, WR_RPC_RET_RESULTS, &r) != 0)
    return b->err;
  return wr_capnp_new_struct(&r, 0, 0, 2, payload);
}

int wr_rpc_end_payload(wr_capnp_bstruct *payload, const wr_rpc_capdesc *caps, uint32_t ncaps) {
  wr_capnp_builder *b = payload->b;
  wr_capnp_blist l;
  if (b->err) return b->err;
  for (uint32_t i = 0; i < ncaps; i++) {
    if (caps[i].which > WR_RPC_CAP_RECEIVER_ANSWER) {
      b->err = WR_ERR_UNSUPPORTED;
      return b->err;
    }
  }
  if (wr_capnp_new_struct_list(payload, 1, ncaps, 1, 1, &l) != 0) return b->err;
  for (uint32_t i = 0; i < ncaps; i++) {
    wr_capnp_bstruct e;
    if (wr_capnp_blist_struct(&l, i, &e) != 0) return b->err;
    wr_capnp_set_u16(&e, 0, caps[i].which);
    if (caps[i].which == WR_RPC_CAP_RECEIVER_ANSWER) {
      if (put_promised_answer(&e, 0, caps[i].id) != 0) return b->err;
    } else if (caps[i].which != WR_RPC_CAP_NONE) {
      wr_capnp_set_u32(&e, 4, caps[i].id);
    }
  }
  return b->err;
}

int wr_rpc_build_return_bootstrap(wr_capnp_builder *b, uint32_t answer_id, uint32_t export_id) {
  wr_capnp_bstruct p;
  const wr_rpc_capdesc cap = {WR_RPC_CAP_SENDER_HOSTED, export_id};
  if (wr_rpc_begin_return(b, answer_id, 0, &p) != 0) return b->err;
  if (wr_capnp_set_cap(&p, 0, 0) != 0) return b->err;
  return wr_rpc_end_payload(&p, &cap, 1);
}

int wr_rpc_build_return_exception(wr_capnp_builder *b, uint32_t answer_id,
                                  int release_param_caps, const char *reason,
                                  size_t reason_len, uint16_t type) {
  wr_capnp_bstruct r, e;
  if (begin_return(b, answer_id, release_param_caps, WR_RPC_RET_EXCEPTION, &r) != 0)
    return b->err;
  if (wr_capnp_new_struct(&r, 0, 1, 1, &e) == 0) fill_exception(&e, reason, reason_len, type);
  return b->err;
}

int wr_rpc_build_return_other(wr_capnp_builder *b, uint32_t answer_id, int release_param_caps,
                              uint16_t which, uint32_t other) {
  wr_capnp_bstruct r;
  if (which != WR_RPC_RET_CANCELED && which != WR_RPC_RET_RESULTS_SENT_ELSEWHERE &&
      which != WR_RPC_RET_TAKE_FROM_OTHER_QUESTION) {
    if (!b->err) b->err = WR_ERR_INVAL;
    return b->err;
  }
  if (begin_return(b, answer_id, release_param_caps, which, &r) != 0) return b->err;
  if (which == WR_RPC_RET_TAKE_FROM_OTHER_QUESTION) wr_capnp_set_u32(&r, 8, other);
  return b->err;
}

/* ---- Best-effort deep copy (Unimplemented echo, forwarding) ----------- */

static int copy_into(wr_capnp_bstruct *dst, const wr_capnp_struct *src);

static void copy_data(wr_capnp_bstruct *dst, const wr_capnp_struct *src) {
  for (uint32_t off = 0; off + 8 <= src->data_size; off += 8)
    wr_capnp_set_u64(dst, off, wr_capnp_u64(src, off));
}

static int copy_list(wr_capnp_bstruct *dst, uint16_t idx, const wr_capnp_list *l) {
  wr_capnp_blist bl;
  int rv;
  switch (l->elem) {
  case WR_CAPNP_ELEM_BYTE:
    return wr_capnp_set_data(dst, idx, l->base, l->count);
  case WR_CAPNP_ELEM_COMPOSITE:
    if ((rv = wr_capnp_new_struct_list(dst, idx, l->count, (uint16_t)(l->elem_data_size / 8),
                                       l->elem_nptrs, &bl)) != 0)
      return rv;
    for (uint32_t i = 0; i < l->count; i++) {
      wr_capnp_struct se;
      wr_capnp_bstruct de;
      if ((rv = wr_capnp_list_struct(l, i, &se)) != 0) return rv;
      if ((rv = wr_capnp_blist_struct(&bl, i, &de)) != 0) return rv;
      if ((rv = copy_into(&de, &se)) != 0) return rv;
    }
    return WR_OK;
  default:
    return WR_OK; /* not expressible with the builder: left null */
  }
}

/* Copies |src|'s data and pointers into the already allocated |dst|. */
static int copy_into(wr_capnp_bstruct *dst, const wr_capnp_struct *src) {
  int rv;
  copy_data(dst, src);
  for (uint16_t i = 0; i < src->nptrs; i++) {
    int kind = wr_capnp_ptr_kind(src, i);
    wr_capnp_struct s;
    wr_capnp_list l;
    uint32_t cap;
    switch (kind) {
    case WR_CAPNP_PTR_NULL:
      break;
    case WR_CAPNP_PTR_STRUCT:
      if ((rv = wr_capnp_get_struct(src, i, &s)) != 0) return rv;
      if ((rv = wr_rpc_copy_struct(dst, i, &s)) != 0) return rv;
      break;
    case WR_CAPNP_PTR_LIST:
      if ((rv = wr_capnp_get_list(src, i, &l)) != 0) return rv;
      if ((rv = copy_list(dst, i, &l)) != 0) return rv;
      break;
    case WR_CAPNP_PTR_CAP:
      if ((rv = wr_capnp_get_cap(src, i, &cap)) != 0) return rv;
      if ((rv = wr_capnp_set_cap(dst, i, cap)) != 0) return rv;
      break;
    default:
      return kind < 0 ? kind : WR_ERR_PROTO;
    }
  }
  return dst->b->err;
}

int wr_rpc_copy_struct(wr_capnp_bstruct *parent, uint16_t idx, const wr_capnp_struct *src) {
  wr_capnp_bstruct dst;
  int rv;
  if (parent->b->err) return parent->b->err;
  if (src->is_null) return WR_OK; /* the slot is already null */
  if ((rv = wr_capnp_new_struct(parent, idx, (uint16_t)(src->data_size / 8), src->nptrs,
                                &dst)) != 0)
    return rv;
  return copy_into(&dst, src);
}

int wr_rpc_build_unimplemented(wr_capnp_builder *b, const wr_rpc_msg *orig) {
  wr_capnp_bstruct inner;
  int rv;
  if (begin_msg(b, WR_RPC_UNIMPLEMENTED, 1, 1, &inner) != 0) return b->err;
  wr_capnp_set_u16(&inner, 0, orig->which);
  if ((rv = wr_rpc_copy_struct(&inner, 0, &orig->body)) != 0 && !b->err) b->err = rv;
  return b->err;
}

size_t wr_rpc_format_unimplemented(char *buf, size_t size, uint64_t interface_id,
                                   uint16_t method_id) {
  int n = snprintf(buf, size, "@0x%" PRIx64 ".@%u: capnp: method not implemented",
                   interface_id, (unsigned)method_id);
  if (n < 0) {
    if (size) buf[0] = '\0';
    return 0;
  }
  if (size == 0) return 0;
  return (size_t)n < size ? (size_t)n : size - 1;
}
