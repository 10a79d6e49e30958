/* Cap'n Proto RPC messages (rpc.capnp as implemented by capnproto2 v2.18.0,
 * protocol.md 2.3/2.4). Sans-I/O: one framed message in, a tagged value out;
 * builders write messages laid out exactly as the Go library does.
 *
 * This module is only the message codec. Question/answer/export tables and
 * dispatch belong to the RPC session layer; the method layer (tunnelrpc.h)
 * fills and reads the params/results content structs.
 *
 * Decoding is zero-copy: a wr_rpc_msg holds the wr_capnp_msg it was read
 * from, and every decoded string and every wr_capnp_struct/list inside it
 * points into that and into the caller's buffer. So the buffer must outlive
 * the message, and a wr_rpc_msg must not be copied or moved after decoding
 * (its structs point at its own |cm| member).
 *
 * Building: initialise a wr_capnp_builder, call one wr_rpc_build_* (or a
 * wr_rpc_begin_* / fill content / wr_rpc_end_payload sequence), then
 * wr_capnp_builder_finish() gives the framed bytes to send in one write. */
#ifndef WR_RPC_H
#define WR_RPC_H
#include <stddef.h>
#include <stdint.h>

#include "proto/capnp.h"

/* Message.which */
enum wr_rpc_which {
  WR_RPC_UNIMPLEMENTED = 0,
  WR_RPC_ABORT = 1,
  WR_RPC_CALL = 2,
  WR_RPC_RETURN = 3,
  WR_RPC_FINISH = 4,
  WR_RPC_RESOLVE = 5,
  WR_RPC_RELEASE = 6,
  WR_RPC_OBSOLETE_SAVE = 7,
  WR_RPC_BOOTSTRAP = 8,
  WR_RPC_OBSOLETE_DELETE = 9,
  WR_RPC_PROVIDE = 10,
  WR_RPC_ACCEPT = 11,
  WR_RPC_JOIN = 12,
  WR_RPC_DISEMBARGO = 13
};
#define WR_RPC_WHICH_COUNT 14

/* Exception.type */
enum wr_rpc_exc_type {
  WR_RPC_EXC_FAILED = 0,
  WR_RPC_EXC_OVERLOADED = 1,
  WR_RPC_EXC_DISCONNECTED = 2,
  WR_RPC_EXC_UNIMPLEMENTED = 3
};

/* MessageTarget.which */
enum wr_rpc_target_which {
  WR_RPC_TARGET_IMPORTED_CAP = 0,
  WR_RPC_TARGET_PROMISED_ANSWER = 1
};

/* Return.which */
enum wr_rpc_return_which {
  WR_RPC_RET_RESULTS = 0,
  WR_RPC_RET_EXCEPTION = 1,
  WR_RPC_RET_CANCELED = 2,
  WR_RPC_RET_RESULTS_SENT_ELSEWHERE = 3,
  WR_RPC_RET_TAKE_FROM_OTHER_QUESTION = 4,
  WR_RPC_RET_ACCEPT_FROM_THIRD_PARTY = 5
};

/* CapDescriptor.which */
enum wr_rpc_cap_which {
  WR_RPC_CAP_NONE = 0,
  WR_RPC_CAP_SENDER_HOSTED = 1,
  WR_RPC_CAP_SENDER_PROMISE = 2,
  WR_RPC_CAP_RECEIVER_HOSTED = 3,
  WR_RPC_CAP_RECEIVER_ANSWER = 4,
  WR_RPC_CAP_THIRD_PARTY_HOSTED = 5
};

/* PromisedAnswer.Op.which */
enum wr_rpc_op_which { WR_RPC_OP_NOOP = 0, WR_RPC_OP_GET_POINTER_FIELD = 1 };

/* Decoder bounds: larger lists are refused with WR_ERR_LIMIT (cloudflared's
 * flows use at most one cap and no transform ops). */
#define WR_RPC_MAX_CAPS 64
#define WR_RPC_MAX_TRANSFORM 64

/* Interface IDs of rpc.capnp's own structs are not needed; ours live in
 * tunnelrpc.h. */

typedef struct wr_rpc_exception {
  const char *reason; /* NUL-terminated; "" when absent */
  size_t reason_len;
  uint16_t type;      /* enum wr_rpc_exc_type (other values kept as-is) */
} wr_rpc_exception;

typedef struct wr_rpc_capdesc {
  uint16_t which;     /* enum wr_rpc_cap_which */
  /* senderHosted / senderPromise / receiverHosted: the import/export id;
   * receiverAnswer: the promised answer's question id; else 0. */
  uint32_t id;
} wr_rpc_capdesc;

typedef struct wr_rpc_payload {
  /* What Payload.content holds (enum wr_capnp_ptr_kind). A null content
   * (is_null struct) reads as an empty params/results struct. */
  int content_kind;
  wr_capnp_struct content;  /* valid for STRUCT and NULL */
  uint32_t content_cap;     /* valid for CAP: the index in the cap table */
  wr_capnp_list cap_table;  /* read entries with wr_rpc_payload_cap() */
  uint32_t ncaps;
} wr_rpc_payload;

typedef struct wr_rpc_target {
  uint16_t which;           /* enum wr_rpc_target_which */
  uint32_t id;              /* importedCap id, or promisedAnswer.questionId */
  uint32_t ntransform;      /* promisedAnswer: number of ops */
  wr_capnp_list transform;  /* read ops with wr_rpc_target_op() */
} wr_rpc_target;

typedef struct wr_rpc_call {
  uint32_t question_id;
  uint64_t interface_id;
  uint16_t method_id;
  uint16_t send_results_to; /* 0 caller, 1 yourself, 2 thirdParty */
  int allow_third_party_tail_call;
  wr_rpc_target target;
  wr_rpc_payload params;
} wr_rpc_call;

typedef struct wr_rpc_return {
  uint32_t answer_id;
  int release_param_caps;   /* decoded value (wire bit is inverted) */
  uint16_t which;           /* enum wr_rpc_return_which */
  wr_rpc_payload results;   /* RESULTS */
  wr_rpc_exception exception; /* EXCEPTION */
  uint32_t take_from_other_question; /* TAKE_FROM_OTHER_QUESTION */
} wr_rpc_return;

typedef struct wr_rpc_msg {
  uint16_t which;           /* enum wr_rpc_which, or an unknown value */
  /* The variant's struct (Message ptr0) for every known which whose variant
   * is a struct; is_null for unknown kinds and obsoleteSave/obsoleteDelete
   * (AnyPointer). Lets a caller look into kinds decoded no further. */
  wr_capnp_struct body;
  union {
    struct { uint32_t question_id; } bootstrap;
    wr_rpc_call call;
    wr_rpc_return ret;
    struct { uint32_t question_id; int release_result_caps; } finish;
    struct { uint32_t id; uint32_t reference_count; } release;
    wr_rpc_exception abort;
    struct { uint16_t which; } unimplemented; /* which of the echoed message */
    struct { uint32_t promise_id; uint16_t which; } resolve; /* 0 cap, 1 exception */
  };
  wr_capnp_msg cm;          /* the underlying message; do not copy */
} wr_rpc_msg;

/* Decodes one framed RPC message from the start of |buf| (an RPC byte
 * stream carries nothing but consecutive framed messages). On success
 * *consumed (optional) is the framed length. |limits| may be NULL.
 *
 * Decoded fully: bootstrap, call, return, finish, release, abort,
 * unimplemented (the echoed message's which only) and resolve (ids only).
 * provide/accept/join/disembargo/obsolete* and unknown which values decode
 * successfully with only |which| (and |body|) set: the session answers them
 * with Unimplemented, as the Go library does.
 *
 * Returns 0, WR_AGAIN (need more bytes), WR_ERR_LIMIT (capnp limits, or more
 * than WR_RPC_MAX_CAPS / WR_RPC_MAX_TRANSFORM entries), WR_ERR_PROTO (wrong
 * pointer kinds, Text without NUL, unknown union tags inside Call/Return/
 * MessageTarget/CapDescriptor/PromisedAnswer.Op, or a variant pointer that is
 * null where a struct is required) or WR_ERR_BOUNDS (pointers outside the
 * message). */
int wr_rpc_decode(wr_rpc_msg *m, const uint8_t *buf, size_t len, const wr_capnp_limits *limits,
                  size_t *consumed);

/* Entry |i| of a decoded payload's cap table. Returns 0, WR_ERR_BOUNDS (i out
 * of range; checked before reading, so the message stays usable) or a capnp
 * read error. Every entry was validated by wr_rpc_decode, so for i < ncaps
 * this cannot fail on a freshly decoded message. */
int wr_rpc_payload_cap(const wr_rpc_payload *p, uint32_t i, wr_rpc_capdesc *out);

/* Op |i| of a promisedAnswer target's transform: *which is enum
 * wr_rpc_op_which, *field the pointer index for GET_POINTER_FIELD. Returns 0,
 * WR_ERR_BOUNDS or a capnp read error. */
int wr_rpc_target_op(const wr_rpc_target *t, uint32_t i, uint16_t *which, uint16_t *field);

/* Short name of a Message.which value ("call", "return", ...; "unknown"). */
const char *wr_rpc_which_name(uint16_t which);

/* ---- Builders -----------------------------------------------------------
 * Each takes a freshly initialised builder (nothing allocated in it yet) and
 * writes the root Message. All return 0 or the builder's sticky error:
 * WR_ERR_NOMEM, WR_ERR_LIMIT (over the builder's maximum size), or
 * WR_ERR_INVAL (builder already used, bad arguments). */

/* Bootstrap{questionId} (48 bytes framed). */
int wr_rpc_build_bootstrap(wr_capnp_builder *b, uint32_t question_id);
/* Finish{questionId, releaseResultCaps} (40 bytes). cloudflared sends
 * releaseResultCaps = 0 after results and 1 after an exception. */
int wr_rpc_build_finish(wr_capnp_builder *b, uint32_t question_id, int release_result_caps);
/* Release{id, referenceCount} (40 bytes). */
int wr_rpc_build_release(wr_capnp_builder *b, uint32_t id, uint32_t reference_count);
/* Abort(Exception{reason, type}); e.g. "rpc: shutdown"/failed (64 bytes). */
int wr_rpc_build_abort(wr_capnp_builder *b, const char *reason, size_t reason_len,
                       uint16_t type);

/* Starts a Call{questionId, interfaceId, methodId, sendResultsTo caller}
 * with target importedCap(|target_id|) or promisedAnswer(|target_id|, []).
 * *payload receives the params Payload {0,2}: put the params struct in its
 * pointer 0 (e.g. wr_capnp_new_struct(payload, 0, ...), or the
 * wr_tunnelrpc_*_encode functions), then call wr_rpc_end_payload(). */
int wr_rpc_begin_call(wr_capnp_builder *b, uint32_t question_id, uint64_t interface_id,
                      uint16_t method_id, uint16_t target_which, uint32_t target_id,
                      wr_capnp_bstruct *payload);

/* Starts a Return{answerId, releaseParamCaps, results}. *payload receives
 * the results Payload: fill pointer 0 (a struct, or a capability with
 * wr_capnp_set_cap), then call wr_rpc_end_payload(). Go servers send
 * releaseParamCaps = 0. */
int wr_rpc_begin_return(wr_capnp_builder *b, uint32_t answer_id, int release_param_caps,
                        wr_capnp_bstruct *payload);

/* Writes the payload's cap table (an inline-composite list, empty but
 * non-null when ncaps is 0, as Go writes it). Supports NONE, SENDER_HOSTED,
 * SENDER_PROMISE, RECEIVER_HOSTED and RECEIVER_ANSWER (as promisedAnswer(id,
 * [])); THIRD_PARTY_HOSTED or an unknown which is WR_ERR_UNSUPPORTED. */
int wr_rpc_end_payload(wr_capnp_bstruct *payload, const wr_rpc_capdesc *caps, uint32_t ncaps);

/* The whole bootstrap answer: Return{answerId, releaseParamCaps = false,
 * results{content = capability #0, capTable = [senderHosted(export_id)]}}
 * (96 bytes). */
int wr_rpc_build_return_bootstrap(wr_capnp_builder *b, uint32_t answer_id, uint32_t export_id);

/* Return{answerId, releaseParamCaps, exception{reason, type}}. A method
 * error in a Go server is type failed with reason err.Error(). */
int wr_rpc_build_return_exception(wr_capnp_builder *b, uint32_t answer_id,
                                  int release_param_caps, const char *reason,
                                  size_t reason_len, uint16_t type);

/* Return{answerId, releaseParamCaps} of kind canceled,
 * resultsSentElsewhere or takeFromOtherQuestion(|other|). Other kinds are
 * WR_ERR_INVAL. */
int wr_rpc_build_return_other(wr_capnp_builder *b, uint32_t answer_id, int release_param_caps,
                              uint16_t which, uint32_t other);

/* Unimplemented(<copy of |orig|>). The copy is best-effort: data sections,
 * struct pointers, composite lists, byte lists and capability pointers are
 * copied; other list kinds become null. (Go peers ignore the echoed content
 * anyway.) |orig| must be a successfully decoded message. */
int wr_rpc_build_unimplemented(wr_capnp_builder *b, const wr_rpc_msg *orig);

/* Deep-copies |src| into pointer |idx| of |parent| with the same
 * best-effort rules, e.g. to forward a params struct unchanged. Reader
 * errors (traversal/depth limits, bad pointers) are returned as-is. */
int wr_rpc_copy_struct(wr_capnp_bstruct *parent, uint16_t idx, const wr_capnp_struct *src);

/* Writes the reason a Go server gives for a call it has no method for:
 * "@0x<iface hex>.@<method>: capnp: method not implemented". Returns the
 * string length (truncated to fit |size|, always NUL-terminated when
 * size > 0). */
size_t wr_rpc_format_unimplemented(char *buf, size_t size, uint64_t interface_id,
                                   uint16_t method_id);

#endif
