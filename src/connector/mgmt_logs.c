/* The management log stream's registry and queue; see mgmt_logs.h. */
#include "connector/mgmt_logs.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "proto/mgmt_event.h"

/* One logged line waiting for the loop. */
typedef struct qline {
  int level; /* WR_MGMT_* */
  int event;
  char time[32];
  char *msg;
} qline;

struct wr_mgmt_session {
  wr_mgmt_logs *m;
  char *actor;
  const wr_mgmt_session_ops *ops;
  void *user;
  int streaming, closed;
  wr_mgmt_filters filters;
  wr_mgmt_session *next;
};

struct wr_mgmt_logs {
  uv_loop_t *loop;
  uv_async_t wake;
  pthread_mutex_t mu; /* guards q, qhead, qlen */
  qline q[WR_MGMT_QUEUE_MAX];
  size_t qhead, qlen;
  wr_mgmt_session *sessions;
  unsigned seed; /* sampling */
};

/* --- the sink (any thread) ------------------------------------------------------------ */

static int to_mgmt_level(wr_log_level l) {
  switch (l) {
  case WR_LOG_DEBUG: return WR_MGMT_DEBUG;
  case WR_LOG_INFO: return WR_MGMT_INFO;
  case WR_LOG_WARN: return WR_MGMT_WARN;
  default: return WR_MGMT_ERROR; /* error, fatal */
  }
}

static void sink(void *user, wr_log_level level, wr_log_event event, const char *time,
                 const char *msg) {
  wr_mgmt_logs *m = user;
  char *copy = strdup(msg);
  int queued = 0;
  if (!copy) return; /* out of memory: the line is dropped, logging goes on */
  pthread_mutex_lock(&m->mu);
  if (m->qlen < WR_MGMT_QUEUE_MAX) {
    qline *l = &m->q[(m->qhead + m->qlen++) % WR_MGMT_QUEUE_MAX];
    l->level = to_mgmt_level(level);
    l->event = (int)event;
    snprintf(l->time, sizeof(l->time), "%s", time);
    l->msg = copy;
    queued = 1;
  }
  pthread_mutex_unlock(&m->mu);
  if (queued)
    uv_async_send(&m->wake);
  else
    free(copy);
}

/* The sink listens (at debug: sessions filter) only while a session
 * streams, so an idle connector formats nothing it would not print. */
static void update_sink(wr_mgmt_logs *m) {
  int any = 0;
  for (wr_mgmt_session *s = m->sessions; s && !any; s = s->next) any = s->streaming;
  wr_log_set_sink(sink, m, any ? WR_LOG_DEBUG : WR_LOG_OFF);
}

/* --- delivery (loop) -------------------------------------------------------------------- */

static void deliver(wr_mgmt_logs *m, const qline *l) {
  wr_buf b;
  wr_mgmt_log lg = {l->time, l->level, l->msg, l->event, NULL};
  int encoded = 0;
  wr_buf_init(&b, 64u * 1024u, NULL);
  for (wr_mgmt_session *s = m->sessions; s; s = s->next) {
    if (!s->streaming || s->closed) continue;
    if (!wr_mgmt_filters_match(&s->filters, l->level, l->event, (unsigned)rand_r(&m->seed) % 100))
      continue;
    if (!encoded && wr_mgmt_logs_encode(&lg, 1, &b) != WR_OK) break;
    encoded = 1;
    s->ops->send(s->user, (const char *)b.data, b.len);
  }
  wr_buf_free(&b);
}

void wr_mgmt_logs_flush(wr_mgmt_logs *m) {
  qline batch[WR_MGMT_QUEUE_MAX];
  size_t n = 0;
  /* Take the lines out first: delivering may log (and so queue) more,
   * which the next wake-up delivers. */
  pthread_mutex_lock(&m->mu);
  while (m->qlen) {
    batch[n++] = m->q[m->qhead];
    m->qhead = (m->qhead + 1) % WR_MGMT_QUEUE_MAX;
    m->qlen--;
  }
  pthread_mutex_unlock(&m->mu);
  for (size_t i = 0; i < n; i++) {
    deliver(m, &batch[i]);
    free(batch[i].msg);
  }
}

static void on_wake(uv_async_t *h) { wr_mgmt_logs_flush(h->data); }

wr_mgmt_logs *wr_mgmt_logs_new(uv_loop_t *loop) {
  wr_mgmt_logs *m = wr_xcalloc(1, sizeof(*m));
  m->loop = loop;
  pthread_mutex_init(&m->mu, NULL);
  uv_async_init(loop, &m->wake, on_wake);
  m->wake.data = m;
  m->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)m;
  update_sink(m);
  return m;
}

static void on_closed(uv_handle_t *h) {
  wr_mgmt_logs *m = h->data;
  for (size_t i = 0; i < m->qlen; i++) free(m->q[(m->qhead + i) % WR_MGMT_QUEUE_MAX].msg);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

void wr_mgmt_logs_free(wr_mgmt_logs *m) {
  if (!m) return;
  wr_log_set_sink(NULL, NULL, WR_LOG_OFF);
  uv_close((uv_handle_t *)&m->wake, on_closed);
}

/* --- sessions ----------------------------------------------------------------------------- */

wr_mgmt_session *wr_mgmt_session_new(wr_mgmt_logs *m, const char *actor,
                                     const wr_mgmt_session_ops *ops, void *user) {
  wr_mgmt_session *s = wr_xcalloc(1, sizeof(*s));
  s->m = m;
  s->actor = wr_xstrdup(actor ? actor : "");
  s->ops = ops;
  s->user = user;
  wr_mgmt_filters_none(&s->filters);
  s->next = m->sessions;
  m->sessions = s;
  return s;
}

static void end(wr_mgmt_session *s, unsigned code, const char *reason) {
  if (s->closed) return;
  s->closed = 1;
  s->streaming = 0;
  update_sink(s->m);
  s->ops->close(s->user, code, reason);
}

/* cloudflared's canStartStream: one streaming actor; the same actor's
 * older session gives way. Returns 1 when |s| may stream. */
static int can_start(wr_mgmt_session *s) {
  for (wr_mgmt_session *o = s->m->sessions; o; o = o->next) {
    if (o == s || !o->streaming) continue;
    if (strcmp(o->actor, s->actor) != 0) return 0;
    wr_info("Another management session request for the same actor was requested; the other "
            "session will be disconnected to handle the new request.");
    end(o, WR_MGMT_CLOSE_NORMAL, "context closed");
  }
  return 1;
}

void wr_mgmt_session_message(wr_mgmt_session *s, const char *json, size_t len) {
  int type = 0;
  wr_mgmt_filters f;
  if (s->closed) return;
  if (wr_mgmt_client_event_decode(json, len, &type, &f) != WR_OK) {
    end(s, WR_MGMT_CLOSE_UNSUPPORTED, "invalid management message");
    return;
  }
  if (type == WR_MGMT_STOP_STREAMING) {
    s->streaming = 0;
    update_sink(s->m);
    return;
  }
  if (!can_start(s)) {
    wr_warn("Another management session request was attempted but one session already being "
            "served; there is a limit of streaming log sessions to reduce overall performance "
            "impact.");
    end(s, WR_MGMT_CLOSE_LIMIT, "limit exceeded for streaming sessions");
    return;
  }
  s->filters = f;
  s->streaming = 1;
  update_sink(s->m);
}

int wr_mgmt_session_streaming(const wr_mgmt_session *s) { return s->streaming; }

void wr_mgmt_session_free(wr_mgmt_session *s) {
  wr_mgmt_session **pp;
  if (!s) return;
  for (pp = &s->m->sessions; *pp && *pp != s; pp = &(*pp)->next) {
  }
  if (*pp) *pp = s->next;
  update_sink(s->m);
  free(s->actor);
  free(s);
}
