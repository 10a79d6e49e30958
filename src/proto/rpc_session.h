/* A sans-I/O Cap'n Proto RPC session over one byte stream, behaving on the
 * wire like zombiezen.com/go/capnproto2 v2.18.0 (protocol.md 2.4): the same
 * question/answer/export bookkeeping, LIFO question-id reuse, pipelined
 * calls on promisedAnswer(bootstrapQ, []), Finish with releaseResultCaps =
 * false after results (true after an exception), Release + Abort("rpc:
 * shutdown") on shutdown and Unimplemented echoes for message kinds it does
 * not handle.
 *
 * One session can be a client (it asks the peer's bootstrap capability and
 * calls methods on it), a server (it answers Bootstrap with a senderHosted
 * export 0 and dispatches Calls by (interfaceId, methodId) to a table), or
 * both at once.
 *
 * Bytes in: wr_rpc_session_feed() with whatever the stream delivered; the
 * session reassembles framed messages, buffering at most one incomplete
 * message of at most |max_message| bytes. Bytes out: each message is handed
 * to the |write| callback in one piece (as Go writes it with one Write), or,
 * without a callback, appended to the session's output buffer
 * (wr_rpc_session_out), bounded by |max_out|.
 *
 * Callbacks (method handlers, return callbacks, on_abort, write) run from
 * inside feed/eof/shutdown/call. Inside them the owner may call
 * wr_rpc_session_call/shutdown and even wr_rpc_session_free (the free is
 * then deferred until the outermost session call returns), but must not call
 * wr_rpc_session_feed or wr_rpc_session_eof re-entrantly.
 *
 * Server methods answer synchronously: the handler fills the results (or an
 * error) before it returns; or it returns WR_RPC_ANSWER_LATER (the work
 * needs a worker thread) and answers later, from outside the session's
 * callbacks, with wr_rpc_session_answer. */
#ifndef WR_RPC_SESSION_H
#define WR_RPC_SESSION_H
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/mem.h"
#include "proto/capnp.h"
#include "proto/rpc.h"

#define WR_RPC_SESSION_MAX_QUESTIONS 64   /* our outstanding questions */
#define WR_RPC_SESSION_MAX_ANSWERS 64     /* peer questions not yet finished */
#define WR_RPC_SESSION_MAX_MESSAGE (8u << 20) /* default incoming message limit */
#define WR_RPC_SESSION_MAX_OUT (16u << 20)    /* default output buffer limit */
#define WR_RPC_SESSION_REASON_MAX 256

typedef struct wr_rpc_session wr_rpc_session;

/* What a method handler fills. |results| is the results Payload of the
 * Return being built: put the content struct in its pointer 0 (e.g. with a
 * wr_tunnelrpc_*_results_encode function). On failure return a negative
 * code and write the exception reason (Go's err.Error()) into |reason|; an
 * empty reason is replaced by wr_strerror(code). */
typedef struct wr_rpc_reply {
  wr_capnp_bstruct results;
  char reason[WR_RPC_SESSION_REASON_MAX];
} wr_rpc_reply;

typedef int (*wr_rpc_method_fn)(wr_rpc_session *s, void *user, const wr_rpc_call *call,
                                wr_rpc_reply *reply);
/* A method handler's return: no Return now; the question (call->question_id)
 * stays open until wr_rpc_session_answer. */
#define WR_RPC_ANSWER_LATER 1

/* One entry of a server's method table. Lookup is exact on both IDs (no
 * "extends" aliasing, as in Go). */
typedef struct wr_rpc_method {
  uint64_t interface_id;
  uint16_t method_id;
  wr_rpc_method_fn fn;
} wr_rpc_method;

/* Client: the answer to question |question_id|. |ret| and everything it
 * points to is valid only during the callback. When the session ends
 * (Abort from the peer, EOF, shutdown, protocol error) with the question
 * still open, the callback gets a synthesized exception Return (type
 * disconnected, reason e.g. "rpc: shutdown" or the peer's abort reason). */
typedef void (*wr_rpc_return_fn)(wr_rpc_session *s, void *user, uint32_t question_id,
                                 const wr_rpc_return *ret);

/* Client: fills a Call's params Payload: put the params struct in pointer 0
 * of |params| (wr_tunnelrpc_*_params_encode). Returns 0 or a negative code
 * (the call is then not sent). */
typedef int (*wr_rpc_fill_fn)(void *arg, wr_capnp_bstruct *params);

typedef struct wr_rpc_session_config {
  const wr_mem *mem;          /* NULL: libc */
  size_t max_message;         /* 0: WR_RPC_SESSION_MAX_MESSAGE (in and out) */
  size_t max_out;             /* 0: WR_RPC_SESSION_MAX_OUT (buffered output) */
  /* Output. NULL: messages are appended to wr_rpc_session_out(). A negative
   * return makes the session fail with that code. */
  int (*write)(void *user, const uint8_t *data, size_t len);
  /* Server: answer Bootstrap with export 0 and dispatch calls on it to
   * |methods| (which must outlive the session). Without |serve_bootstrap|
   * a Bootstrap is answered with exception "rpc: bootstrap unavailable". */
  int serve_bootstrap;
  const wr_rpc_method *methods;
  size_t nmethods;
  /* The peer sent Abort (after pending questions were failed). */
  void (*on_abort)(wr_rpc_session *s, void *user, const wr_rpc_exception *e);
  void *user;                 /* passed to write, methods and on_abort */
} wr_rpc_session_config;

/* Returns WR_OK or WR_ERR_NOMEM. |cfg| is copied. */
int wr_rpc_session_new(const wr_rpc_session_config *cfg, wr_rpc_session **out);
/* Frees the session without sending anything or calling callbacks (from
 * inside a callback the free is deferred, see above). NULL is a no-op. */
void wr_rpc_session_free(wr_rpc_session *s);

/* Feeds stream bytes. Returns WR_OK (also after the peer aborted: see
 * wr_rpc_session_closed), or a fatal error after which the session is
 * closed: WR_ERR_PROTO/WR_ERR_BOUNDS (undecodable message; an Abort was
 * sent), WR_ERR_LIMIT (a message over max_message, too many answers),
 * WR_ERR_NOMEM, or a write callback's error. Bytes after a close are
 * ignored. */
int wr_rpc_session_feed(wr_rpc_session *s, const uint8_t *data, size_t len);
/* The stream ended. Fails open questions ("rpc: connection closed") and
 * closes. Returns WR_OK, or WR_ERR_TRUNC if it ended inside a message. */
int wr_rpc_session_eof(wr_rpc_session *s);

/* Client: sends Bootstrap now (wr_rpc_session_call does it implicitly).
 * Returns WR_OK (also if already sent), WR_ERR_INVAL (closed), WR_ERR_LIMIT
 * (no free question id), WR_ERR_NOMEM or a write error. */
int wr_rpc_session_bootstrap(wr_rpc_session *s);
/* Client: calls (interface_id, method_id) on the peer's bootstrap
 * capability. The target is promisedAnswer(bootstrapQ, []) while the
 * bootstrap Return has not been processed, importedCap(id) afterwards.
 * |*question_id| (may be NULL) gets the question id. Returns WR_OK,
 * WR_ERR_INVAL (closed), WR_ERR_PROTO (the bootstrap failed), WR_ERR_LIMIT,
 * WR_ERR_NOMEM, the fill callback's error or a write error. */
int wr_rpc_session_call(wr_rpc_session *s, uint64_t interface_id, uint16_t method_id,
                        wr_rpc_fill_fn fill, void *fill_arg, wr_rpc_return_fn on_return,
                        void *ret_user, uint32_t *question_id);
/* Server: answers question |question_id| that a handler left open
 * (WR_RPC_ANSWER_LATER): |fill| fills |reply| as a method handler would
 * (results, or a negative code and a reason: an exception). Not from
 * inside a session callback. Returns WR_OK (also when the session closed
 * meanwhile: nothing is sent), WR_ERR_NOTFOUND (no such question left
 * open: never, or the peer finished it meanwhile) or a write error. */
int wr_rpc_session_answer(wr_rpc_session *s, uint32_t question_id,
                          int (*fill)(void *arg, wr_rpc_reply *reply), void *arg);
/* Graceful close as Go does it: Release(bootstrap import, 1) if one is held,
 * then Abort("rpc: shutdown"); open questions are failed with "rpc:
 * shutdown". The caller then closes the byte stream (QUIC: FIN). Returns
 * WR_OK (also when already closed) or a write error. */
int wr_rpc_session_shutdown(wr_rpc_session *s);

/* The output buffer (only used without a write callback): consume what was
 * sent with wr_buf_consume(). */
wr_buf *wr_rpc_session_out(wr_rpc_session *s);
/* 1 once the session is closed (shutdown, abort, EOF, fatal error). */
int wr_rpc_session_closed(const wr_rpc_session *s);
/* Why it closed ("" while open): "rpc: shutdown", the peer's abort reason,
 * "rpc: connection closed", or a description of the protocol error. */
const char *wr_rpc_session_reason(const wr_rpc_session *s);
/* Client: outstanding questions (including the bootstrap). */
size_t wr_rpc_session_questions(const wr_rpc_session *s);
/* Server: peer questions not yet finished. */
size_t wr_rpc_session_answers(const wr_rpc_session *s);
/* Server: references the peer holds on export 0 (0 once released). */
uint32_t wr_rpc_session_export_refs(const wr_rpc_session *s);

#endif
