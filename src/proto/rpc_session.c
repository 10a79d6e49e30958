/* Cap'n Proto RPC session; see rpc_session.h. */
#include "proto/rpc_session.h"

#include <stdio.h>
#include <string.h>

#include "lib/bytes.h"
#include "lib/err.h"

enum { BOOT_NONE = 0, BOOT_PENDING, BOOT_RESOLVED, BOOT_FAILED };

typedef struct question {
  int in_use;
  int is_bootstrap;
  wr_rpc_return_fn cb;
  void *user;
} question;

typedef struct answer {
  int in_use;
  int is_bootstrap;
  int boot_ok; /* bootstrap answer carried export 0 */
  int later;   /* the handler answers later (WR_RPC_ANSWER_LATER) */
  uint32_t id;
} answer;

struct wr_rpc_session {
  wr_rpc_session_config cfg;
  const wr_mem *mem;
  wr_capnp_limits lim;
  wr_buf in;
  wr_buf out;
  /* The message being handled, only while handle() runs: 6 KB that a
   * registered connection, idle between its rare RPCs, does not hold. */
  wr_rpc_msg *msg;
  /* client */
  question q[WR_RPC_SESSION_MAX_QUESTIONS];
  uint32_t free_ids[WR_RPC_SESSION_MAX_QUESTIONS];
  uint32_t nfree, next_id, nquestions;
  int boot_state;
  uint32_t boot_q;
  uint32_t import_id;
  /* server */
  answer a[WR_RPC_SESSION_MAX_ANSWERS];
  uint32_t nanswers;
  uint32_t export_refs;
  /* state */
  int closed;
  int err;
  char reason[WR_RPC_SESSION_REASON_MAX];
  int depth;        /* nesting of public calls (for deferred free) */
  int free_pending;
  int in_feed;
};

/* ---- entry/exit bookkeeping ---------------------------------------------- */

static void enter(wr_rpc_session *s) { s->depth++; }

/* Returns 1 if the session was freed. */
static int leave(wr_rpc_session *s) {
  if (--s->depth == 0 && s->free_pending) {
    s->free_pending = 0;
    wr_rpc_session_free(s);
    return 1;
  }
  return 0;
}

/* ---- output --------------------------------------------------------------- */

static int emit(wr_rpc_session *s, wr_capnp_builder *b) {
  const uint8_t *data;
  size_t len;
  int rv = wr_capnp_builder_finish(b, &data, &len);
  if (rv == 0) {
    if (s->cfg.write)
      rv = s->cfg.write(s->cfg.user, data, len);
    else
      rv = wr_buf_append(&s->out, data, len);
  }
  wr_capnp_builder_free(b);
  if (rv < 0 && !s->err) s->err = rv;
  return rv < 0 ? rv : 0;
}

static void builder(wr_rpc_session *s, wr_capnp_builder *b) {
  wr_capnp_builder_init(b, s->mem, s->lim.max_bytes);
}

static int send_finish(wr_rpc_session *s, uint32_t qid, int release) {
  wr_capnp_builder b;
  builder(s, &b);
  wr_rpc_build_finish(&b, qid, release);
  return emit(s, &b);
}

static int send_abort(wr_rpc_session *s, const char *reason) {
  wr_capnp_builder b;
  builder(s, &b);
  wr_rpc_build_abort(&b, reason, strlen(reason), WR_RPC_EXC_FAILED);
  return emit(s, &b);
}

static int send_exception(wr_rpc_session *s, uint32_t aid, const char *reason) {
  wr_capnp_builder b;
  builder(s, &b);
  wr_rpc_build_return_exception(&b, aid, 0, reason, strlen(reason), WR_RPC_EXC_FAILED);
  return emit(s, &b);
}

static int fail(wr_rpc_session *s, int rv, const char *reason);

static int send_unimplemented(wr_rpc_session *s, const wr_rpc_msg *m) {
  wr_capnp_builder b;
  builder(s, &b);
  if (wr_rpc_build_unimplemented(&b, m) != 0) {
    /* Not copyable within the limits (traversal budget, message size): a
     * message no honest peer sends. Abort with the reason rather than
     * calling it a write failure. */
    char why[96];
    int rv = b.err;
    wr_capnp_builder_free(&b);
    snprintf(why, sizeof(why), "rpc: cannot echo an unimplemented message: %s", wr_strerror(rv));
    return fail(s, rv, why);
  }
  return emit(s, &b);
}

/* ---- closing ---------------------------------------------------------------- */

static void set_reason(wr_rpc_session *s, const char *reason, size_t len) {
  if (len >= sizeof(s->reason)) len = sizeof(s->reason) - 1;
  memcpy(s->reason, reason, len);
  s->reason[len] = '\0';
}

/* Marks the session closed and fails every open question with |reason|. */
static void close_session(wr_rpc_session *s, const char *reason) {
  if (s->closed) return;
  s->closed = 1;
  if (!s->reason[0]) set_reason(s, reason, strlen(reason));
  for (uint32_t i = 0; i < WR_RPC_SESSION_MAX_QUESTIONS; i++) {
    question *q = &s->q[i];
    if (!q->in_use) continue;
    wr_rpc_return_fn cb = q->cb;
    void *user = q->user;
    q->in_use = 0;
    s->nquestions--;
    if (cb) {
      wr_rpc_return r;
      memset(&r, 0, sizeof(r));
      r.answer_id = i;
      r.which = WR_RPC_RET_EXCEPTION;
      r.exception.reason = s->reason;
      r.exception.reason_len = strlen(s->reason);
      r.exception.type = WR_RPC_EXC_DISCONNECTED;
      cb(s, user, i, &r);
    }
  }
}

/* A fatal local error: Abort the peer (best effort) and close. */
static int fail(wr_rpc_session *s, int rv, const char *reason) {
  if (!s->closed) {
    if (!s->err) send_abort(s, reason);
    close_session(s, reason);
  }
  if (!s->err) s->err = rv;
  return rv;
}

/* ---- questions (client) ------------------------------------------------------ */

static int question_alloc(wr_rpc_session *s, uint32_t *id) {
  if (s->nfree)
    *id = s->free_ids[--s->nfree];
  else if (s->next_id < WR_RPC_SESSION_MAX_QUESTIONS)
    *id = s->next_id++;
  else
    return WR_ERR_LIMIT;
  memset(&s->q[*id], 0, sizeof(s->q[*id]));
  s->q[*id].in_use = 1;
  s->nquestions++;
  return 0;
}

/* LIFO: the id freed last is handed out first, as the Go library does. */
static void question_free(wr_rpc_session *s, uint32_t id) {
  s->q[id].in_use = 0;
  s->nquestions--;
  s->free_ids[s->nfree++] = id;
}

/* ---- answers (server) ------------------------------------------------------- */

static answer *answer_find(wr_rpc_session *s, uint32_t id) {
  for (uint32_t i = 0; i < WR_RPC_SESSION_MAX_ANSWERS; i++)
    if (s->a[i].in_use && s->a[i].id == id) return &s->a[i];
  return NULL;
}

static answer *answer_new(wr_rpc_session *s, uint32_t id) {
  for (uint32_t i = 0; i < WR_RPC_SESSION_MAX_ANSWERS; i++) {
    if (!s->a[i].in_use) {
      memset(&s->a[i], 0, sizeof(s->a[i]));
      s->a[i].in_use = 1;
      s->a[i].id = id;
      s->nanswers++;
      return &s->a[i];
    }
  }
  return NULL;
}

static void export_release(wr_rpc_session *s, uint32_t n) {
  s->export_refs = n >= s->export_refs ? 0 : s->export_refs - n;
}

/* ---- incoming messages ---------------------------------------------------- */

static int claim_answer(wr_rpc_session *s, uint32_t qid, answer **out) {
  char why[96];
  if (answer_find(s, qid)) {
    snprintf(why, sizeof(why), "rpc: question ID %u reused while still in use", qid);
    return fail(s, WR_ERR_PROTO, why);
  }
  if (!(*out = answer_new(s, qid))) return fail(s, WR_ERR_LIMIT, "rpc: too many open questions");
  return 0;
}

static int on_bootstrap(wr_rpc_session *s, uint32_t qid) {
  answer *a;
  int rv = claim_answer(s, qid, &a);
  if (rv) return rv;
  a->is_bootstrap = 1;
  if (!s->cfg.serve_bootstrap) return send_exception(s, qid, "rpc: bootstrap unavailable");
  a->boot_ok = 1;
  s->export_refs++;
  wr_capnp_builder b;
  builder(s, &b);
  wr_rpc_build_return_bootstrap(&b, qid, 0);
  return emit(s, &b);
}

/* Checks the call target names export 0. Returns 1 if it does. */
static int target_ok(wr_rpc_session *s, const wr_rpc_target *t) {
  if (t->which == WR_RPC_TARGET_IMPORTED_CAP) return t->id == 0 && s->export_refs > 0;
  if (t->which != WR_RPC_TARGET_PROMISED_ANSWER) return 0;
  answer *a = answer_find(s, t->id);
  if (!a || !a->is_bootstrap || !a->boot_ok) return 0;
  for (uint32_t i = 0; i < t->ntransform; i++) {
    uint16_t which = 0, field = 0;
    if (wr_rpc_target_op(t, i, &which, &field) != 0 || which != WR_RPC_OP_NOOP) return 0;
  }
  return 1;
}

/* What fills a Return: a method handler for |call|, or a late answer's
 * |fill|. */
typedef struct filler {
  const wr_rpc_method *m;
  const wr_rpc_call *call;
  int (*fill)(void *arg, wr_rpc_reply *reply);
  void *arg;
} filler;

/* Builds and sends the Return of answer |a|, filled by |f|; a handler that
 * answers WR_RPC_ANSWER_LATER leaves it open. */
static int send_return(wr_rpc_session *s, answer *a, const filler *f) {
  uint32_t qid = a->id;
  wr_capnp_builder b;
  wr_rpc_reply reply;
  int rv;
  memset(&reply, 0, sizeof(reply));
  builder(s, &b);
  rv = wr_rpc_begin_return(&b, qid, 0, &reply.results);
  if (rv == 0) {
    rv = f->m ? f->m->fn(s, s->cfg.user, f->call, &reply) : f->fill(f->arg, &reply);
    if (rv == WR_RPC_ANSWER_LATER) {
      a->later = 1;
      wr_capnp_builder_free(&b);
      return 0;
    }
    if (rv == 0) rv = wr_rpc_end_payload(&reply.results, NULL, 0);
    if (rv == 0 && b.err) rv = b.err;
  }
  /* A handler that shut the session down (Abort is out) or freed it (free
   * is deferred until we return) gets no Return on the wire: nothing may
   * follow an Abort, and a freed session sends nothing. */
  if (s->closed || s->free_pending) {
    wr_capnp_builder_free(&b);
    return 0;
  }
  if (rv == 0) return emit(s, &b);
  wr_capnp_builder_free(&b);
  reply.reason[sizeof(reply.reason) - 1] = '\0';
  return send_exception(s, qid, reply.reason[0] ? reply.reason : wr_strerror(rv));
}

static int on_call(wr_rpc_session *s, const wr_rpc_call *call) {
  answer *a;
  int rv;
  if (call->send_results_to != 0) return send_unimplemented(s, s->msg);
  if ((rv = claim_answer(s, call->question_id, &a)) != 0) return rv;
  if (!target_ok(s, &call->target))
    return send_exception(s, call->question_id, "rpc: target not found");
  const wr_rpc_method *m = NULL;
  for (size_t i = 0; i < s->cfg.nmethods; i++) {
    if (s->cfg.methods[i].interface_id == call->interface_id &&
        s->cfg.methods[i].method_id == call->method_id) {
      m = &s->cfg.methods[i];
      break;
    }
  }
  if (!m || !m->fn) {
    char why[96];
    wr_rpc_format_unimplemented(why, sizeof(why), call->interface_id, call->method_id);
    return send_exception(s, call->question_id, why);
  }
  filler f = {.m = m, .call = call};
  return send_return(s, a, &f);
}

int wr_rpc_session_answer(wr_rpc_session *s, uint32_t question_id,
                          int (*fill)(void *arg, wr_rpc_reply *reply), void *arg) {
  answer *a = answer_find(s, question_id);
  if (!a || !a->later) return WR_ERR_NOTFOUND;
  a->later = 0;
  if (s->closed) return WR_OK;
  filler f = {.fill = fill, .arg = arg};
  return send_return(s, a, &f);
}

static int handle_return(wr_rpc_session *s, const wr_rpc_return *ret) {
  uint32_t id = ret->answer_id;
  if (id >= WR_RPC_SESSION_MAX_QUESTIONS || !s->q[id].in_use) return send_unimplemented(s, s->msg);
  question q = s->q[id];
  if (q.is_bootstrap) {
    wr_rpc_capdesc cd;
    if (ret->which == WR_RPC_RET_RESULTS && ret->results.content_kind == WR_CAPNP_PTR_CAP &&
        wr_rpc_payload_cap(&ret->results, ret->results.content_cap, &cd) == 0 &&
        (cd.which == WR_RPC_CAP_SENDER_HOSTED || cd.which == WR_RPC_CAP_SENDER_PROMISE)) {
      s->boot_state = BOOT_RESOLVED;
      s->import_id = cd.id;
    } else {
      s->boot_state = BOOT_FAILED;
    }
  }
  int rv = send_finish(s, id, ret->which != WR_RPC_RET_RESULTS);
  question_free(s, id);
  /* The answer is delivered even when the Finish could not be written (the
   * session then fails): the question is gone, so closing the session would
   * not synthesize an exception for it, and its owner would wait forever
   * (found by fuzz_rpc_session). */
  if (q.cb) q.cb(s, q.user, id, ret);
  return rv;
}

static int on_finish(wr_rpc_session *s, uint32_t qid, int release) {
  answer *a = answer_find(s, qid);
  if (!a) return 0; /* unknown or already finished: nothing to drop */
  if (a->is_bootstrap && a->boot_ok && release) export_release(s, 1);
  a->in_use = 0;
  s->nanswers--;
  return 0;
}

/* Reading one message may cost a small multiple of its size and no more.
 * Pointers may share their targets (a DAG), and without this a message of
 * a few hundred bytes is read, and copied into an Unimplemented echo, up to
 * the reader's global budget of WR_CAPNP_TRAVERSAL_WORDS (64 MiB): ~80 ms of
 * the loop thread per 450-byte message in a release build (found by
 * fuzz_rpc_session). Legitimate messages are read about twice (decode, then
 * a typed decoder), a copy once more. */
#define TRAVERSAL_PER_WORD 8
#define TRAVERSAL_MIN_WORDS (64u << 10)

static int dispatch(wr_rpc_session *s, wr_rpc_msg *m, const uint8_t *data, size_t len) {
  wr_capnp_limits lim = s->lim;
  uint64_t budget = (uint64_t)(len / 8) * TRAVERSAL_PER_WORD;
  if (budget < TRAVERSAL_MIN_WORDS) budget = TRAVERSAL_MIN_WORDS;
  if (budget < lim.traversal_words) lim.traversal_words = budget;
  int rv = wr_rpc_decode(m, data, len, &lim, NULL);
  if (rv) {
    char why[96];
    snprintf(why, sizeof(why), "rpc: cannot decode message: %s", wr_strerror(rv));
    return fail(s, rv == WR_AGAIN ? WR_ERR_PROTO : rv, why);
  }
  switch (m->which) {
  case WR_RPC_BOOTSTRAP:
    return on_bootstrap(s, m->bootstrap.question_id);
  case WR_RPC_CALL:
    return on_call(s, &m->call);
  case WR_RPC_RETURN:
    return handle_return(s, &m->ret);
  case WR_RPC_FINISH:
    return on_finish(s, m->finish.question_id, m->finish.release_result_caps);
  case WR_RPC_RELEASE:
    if (m->release.id == 0) export_release(s, m->release.reference_count);
    return 0;
  case WR_RPC_ABORT:
    set_reason(s, m->abort.reason, m->abort.reason_len);
    if (!s->reason[0]) set_reason(s, "rpc: aborted by peer", 20);
    close_session(s, s->reason);
    if (s->cfg.on_abort) s->cfg.on_abort(s, s->cfg.user, &m->abort);
    return 0;
  case WR_RPC_UNIMPLEMENTED:
    return 0; /* ignored, as the Go library does */
  default:
    return send_unimplemented(s, m);
  }
}

static int handle(wr_rpc_session *s, const uint8_t *data, size_t len) {
  wr_rpc_msg *m = wr_malloc(s->mem, sizeof(*m));
  if (!m) return fail(s, WR_ERR_NOMEM, "rpc: out of memory");
  s->msg = m;
  int rv = dispatch(s, m, data, len);
  s->msg = NULL;
  wr_free(s->mem, m);
  return rv;
}

/* ---- public API --------------------------------------------------------------- */

int wr_rpc_session_new(const wr_rpc_session_config *cfg, wr_rpc_session **out) {
  const wr_mem *mem = cfg->mem ? cfg->mem : wr_mem_default();
  wr_rpc_session *s = wr_calloc(mem, 1, sizeof(*s));
  *out = NULL;
  if (!s) return WR_ERR_NOMEM;
  s->cfg = *cfg;
  s->mem = mem;
  if (!s->cfg.max_message) s->cfg.max_message = WR_RPC_SESSION_MAX_MESSAGE;
  if (s->cfg.max_message > WR_CAPNP_MAX_MESSAGE) s->cfg.max_message = WR_CAPNP_MAX_MESSAGE;
  if (!s->cfg.max_out) s->cfg.max_out = WR_RPC_SESSION_MAX_OUT;
  s->lim.max_segments = WR_CAPNP_MAX_SEGMENTS;
  s->lim.max_bytes = s->cfg.max_message;
  s->lim.traversal_words = WR_CAPNP_TRAVERSAL_WORDS;
  s->lim.max_depth = WR_CAPNP_MAX_DEPTH;
  wr_buf_init(&s->in, s->cfg.max_message, mem);
  wr_buf_init(&s->out, s->cfg.max_out, mem);
  *out = s;
  return WR_OK;
}

void wr_rpc_session_free(wr_rpc_session *s) {
  if (!s) return;
  if (s->depth > 0) {
    s->free_pending = 1;
    return;
  }
  wr_buf_free(&s->in);
  wr_buf_free(&s->out);
  wr_free(s->mem, s);
}

/* Bytes of the segment table still missing from s->in (whose length is
 * below the header size). */
static size_t header_missing(const wr_rpc_session *s) {
  if (s->in.len < 4) return 4 - s->in.len;
  uint32_t nsegs = wr_get_le32(s->in.data);
  size_t header = (4 + 4 * ((size_t)nsegs + 1) + 7) & ~(size_t)7;
  return header > s->in.len ? header - s->in.len : 0;
}

static int feed(wr_rpc_session *s, const uint8_t *data, size_t len) {
  int rv;
  size_t total;
  while (len > 0 && !s->closed && !s->free_pending) {
    if (s->in.len == 0) {
      total = 0;
      rv = wr_capnp_frame_size(data, len, &s->lim, &total);
      if (rv == WR_OK) {
        if ((rv = handle(s, data, total)) != 0) return rv;
        data += total;
        len -= total;
        continue;
      }
      if (rv != WR_AGAIN) return fail(s, rv, "rpc: bad message framing");
      /* Incomplete: len < total <= max_message, or len < header size. */
      if ((rv = wr_buf_append(&s->in, data, len)) != 0) return fail(s, rv, "rpc: out of memory");
      return 0;
    }
    total = 0;
    rv = wr_capnp_frame_size(s->in.data, s->in.len, &s->lim, &total);
    if (rv != WR_OK && rv != WR_AGAIN) return fail(s, rv, "rpc: bad message framing");
    size_t want = total ? total - s->in.len : header_missing(s);
    if (want == 0) want = 1; /* cannot happen; keeps the loop moving */
    size_t take = want < len ? want : len;
    if ((rv = wr_buf_append(&s->in, data, take)) != 0) return fail(s, rv, "rpc: out of memory");
    data += take;
    len -= take;
    total = 0;
    rv = wr_capnp_frame_size(s->in.data, s->in.len, &s->lim, &total);
    if (rv == WR_OK) {
      rv = handle(s, s->in.data, total);
      wr_buf_reset(&s->in);
      if (rv) return rv;
    } else if (rv != WR_AGAIN) {
      return fail(s, rv, "rpc: bad message framing");
    }
  }
  return 0;
}

int wr_rpc_session_feed(wr_rpc_session *s, const uint8_t *data, size_t len) {
  if (s->in_feed) return WR_ERR_INVAL;
  if (s->closed) return s->err;
  enter(s);
  s->in_feed = 1;
  int rv = feed(s, data, len);
  if (rv < 0 && !s->closed) fail(s, rv, "rpc: write failed");
  s->in_feed = 0;
  if (!rv && s->err) rv = s->err;
  leave(s);
  return rv;
}

int wr_rpc_session_eof(wr_rpc_session *s) {
  if (s->in_feed) return WR_ERR_INVAL;
  int rv = s->in.len ? WR_ERR_TRUNC : 0;
  enter(s);
  close_session(s, "rpc: connection closed");
  leave(s);
  return rv;
}

static int do_bootstrap(wr_rpc_session *s) {
  if (s->closed) return WR_ERR_INVAL;
  if (s->boot_state != BOOT_NONE) return 0;
  uint32_t id;
  int rv = question_alloc(s, &id);
  if (rv) return rv;
  s->q[id].is_bootstrap = 1;
  s->boot_q = id;
  s->boot_state = BOOT_PENDING;
  wr_capnp_builder b;
  builder(s, &b);
  wr_rpc_build_bootstrap(&b, id);
  if ((rv = emit(s, &b)) != 0) fail(s, rv, "rpc: write failed");
  return rv;
}

int wr_rpc_session_bootstrap(wr_rpc_session *s) {
  enter(s);
  int rv = do_bootstrap(s);
  leave(s);
  return rv;
}

static int do_call(wr_rpc_session *s, uint64_t interface_id, uint16_t method_id,
                   wr_rpc_fill_fn fill, void *fill_arg, wr_rpc_return_fn on_return,
                   void *ret_user, uint32_t *question_id) {
  int rv;
  if (s->closed) return WR_ERR_INVAL;
  if ((rv = do_bootstrap(s)) != 0) return rv;
  if (s->boot_state == BOOT_FAILED) return WR_ERR_PROTO;
  uint32_t id;
  if ((rv = question_alloc(s, &id)) != 0) return rv;
  uint16_t tw = WR_RPC_TARGET_PROMISED_ANSWER;
  uint32_t tid = s->boot_q;
  if (s->boot_state == BOOT_RESOLVED) {
    tw = WR_RPC_TARGET_IMPORTED_CAP;
    tid = s->import_id;
  }
  wr_capnp_builder b;
  wr_capnp_bstruct params, empty;
  builder(s, &b);
  rv = wr_rpc_begin_call(&b, id, interface_id, method_id, tw, tid, &params);
  if (rv == 0 && fill) rv = fill(fill_arg, &params);
  if (rv == 0 && !fill) rv = wr_capnp_new_struct(&params, 0, 0, 0, &empty);
  if (rv == 0) rv = wr_rpc_end_payload(&params, NULL, 0);
  if (rv == 0 && b.err) rv = b.err;
  if (rv) {
    wr_capnp_builder_free(&b);
    question_free(s, id);
    return rv;
  }
  s->q[id].cb = on_return;
  s->q[id].user = ret_user;
  if (question_id) *question_id = id;
  if ((rv = emit(s, &b)) != 0) {
    s->q[id].cb = NULL; /* the caller learns it from rv, not from a callback */
    fail(s, rv, "rpc: write failed");
  }
  return rv;
}

int wr_rpc_session_call(wr_rpc_session *s, uint64_t interface_id, uint16_t method_id,
                        wr_rpc_fill_fn fill, void *fill_arg, wr_rpc_return_fn on_return,
                        void *ret_user, uint32_t *question_id) {
  enter(s);
  int rv = do_call(s, interface_id, method_id, fill, fill_arg, on_return, ret_user, question_id);
  leave(s);
  return rv;
}

int wr_rpc_session_shutdown(wr_rpc_session *s) {
  int rv = 0;
  if (s->closed) return 0;
  enter(s);
  if (s->boot_state == BOOT_RESOLVED) {
    wr_capnp_builder b;
    builder(s, &b);
    wr_rpc_build_release(&b, s->import_id, 1);
    rv = emit(s, &b);
    s->boot_state = BOOT_FAILED; /* the import is gone */
  }
  if (rv == 0) rv = send_abort(s, "rpc: shutdown");
  set_reason(s, "rpc: shutdown", 13);
  close_session(s, "rpc: shutdown");
  leave(s);
  return rv;
}

wr_buf *wr_rpc_session_out(wr_rpc_session *s) { return &s->out; }
int wr_rpc_session_closed(const wr_rpc_session *s) { return s->closed; }
const char *wr_rpc_session_reason(const wr_rpc_session *s) { return s->reason; }
size_t wr_rpc_session_questions(const wr_rpc_session *s) { return s->nquestions; }
size_t wr_rpc_session_answers(const wr_rpc_session *s) { return s->nanswers; }
uint32_t wr_rpc_session_export_refs(const wr_rpc_session *s) { return s->export_refs; }
