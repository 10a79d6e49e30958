/* The connector's management log stream registry (connector/mgmt_logs.c)
 * with in-test sessions: log lines reach a streaming session as "logs"
 * events through the lib/log sink, filters (level, event type) apply per
 * session, nothing is formatted for the sink while nobody streams, one
 * actor streams at a time (another is closed with 4002, the same actor
 * replaces its old session), stop_streaming stops, bad messages close
 * with 1003, and a peer that is behind loses events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "connector/mgmt_logs.h"
#include "lib/log.h"
#include "proto/mgmt_event.h"
#include "unit.h"

typedef struct peer {
  int nmsgs;
  char last[1024];
  unsigned close_code;
  int closes;
  int full; /* the peer is behind: refuse messages */
} peer;

static int p_send(void *user, const char *json, size_t len) {
  peer *p = user;
  if (p->full) return 1;
  p->nmsgs++;
  snprintf(p->last, sizeof(p->last), "%.*s", (int)len, json);
  return 0;
}

static void p_close(void *user, unsigned code, const char *reason) {
  peer *p = user;
  (void)reason;
  p->closes++;
  p->close_code = code;
}

static const wr_mgmt_session_ops ops = {p_send, p_close};

static void msg(wr_mgmt_session *s, const char *json) {
  wr_mgmt_session_message(s, json, strlen(json));
}

/* Each test's registry on a loop of its own, with the log at info level
 * into /dev/null, and alice's session |s| (not streaming yet) to peer |a|.
 * Teardown frees |s| (a test may free it first and set it NULL), the
 * registry and the loop. */
typedef struct fx {
  uv_loop_t loop;
  wr_mgmt_logs *m;
  peer a;
  wr_mgmt_session *s;
} fx;

static int fx_setup(void **state) {
  fx *f = calloc(1, sizeof(*f));
  if (!f || uv_loop_init(&f->loop) != 0) return -1;
  wr_log_set_file("/dev/null");
  wr_log_set_level(WR_LOG_INFO);
  f->m = wr_mgmt_logs_new(&f->loop);
  f->s = wr_mgmt_session_new(f->m, "alice", &ops, &f->a);
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  fx *f = *state;
  wr_mgmt_session_free(f->s);
  wr_mgmt_logs_free(f->m);
  unit_loop_finish(&f->loop);
  free(f);
  return 0;
}

static void test_stream_and_filter(void **st) {
  fx *f = *st;
  wr_mgmt_logs *m = f->m;
  wr_mgmt_session *s = f->s;
  peer *a = &f->a;
  /* Not streaming yet: debug lines stay below the gate. */
  assert_int_equal(wr_log_min_level, WR_LOG_INFO);
  wr_info("before start");
  wr_mgmt_logs_flush(m);
  assert_int_equal(a->nmsgs, 0);

  msg(s, "{\"type\":\"start_streaming\"}");
  assert_true(wr_mgmt_session_streaming(s));
  assert_int_equal(wr_log_min_level, WR_LOG_DEBUG); /* the console keeps its level */
  wr_debug("hello %d", 42);
  wr_mgmt_logs_flush(m);
  assert_int_equal(a->nmsgs, 1);
  assert_non_null(strstr(a->last, "\"type\":\"logs\""));
  assert_non_null(strstr(a->last, "\"message\":\"hello 42\""));
  assert_non_null(strstr(a->last, "\"level\":\"debug\""));
  assert_non_null(strstr(a->last, "\"event\":\"cloudflared\""));

  /* Level and event filters. */
  msg(s, "{\"type\":\"start_streaming\",\"filters\":{\"level\":\"warn\",\"events\":[\"http\"]}}");
  wr_warn("not http");
  WR_LOG_EV(WR_LOG_INFO, WR_LOG_EV_HTTP, "http but info");
  WR_LOG_EV(WR_LOG_ERROR, WR_LOG_EV_HTTP, "http error");
  wr_mgmt_logs_flush(m);
  assert_int_equal(a->nmsgs, 2);
  assert_non_null(strstr(a->last, "http error"));
  assert_non_null(strstr(a->last, "\"event\":\"http\""));

  /* A peer that is behind loses the event; later ones still come. */
  a->full = 1;
  WR_LOG_EV(WR_LOG_ERROR, WR_LOG_EV_HTTP, "dropped");
  wr_mgmt_logs_flush(m);
  a->full = 0;
  WR_LOG_EV(WR_LOG_ERROR, WR_LOG_EV_HTTP, "after");
  wr_mgmt_logs_flush(m);
  assert_int_equal(a->nmsgs, 3);
  assert_non_null(strstr(a->last, "after"));

  msg(s, "{\"type\":\"stop_streaming\"}");
  assert_false(wr_mgmt_session_streaming(s));
  assert_int_equal(wr_log_min_level, WR_LOG_INFO);
  wr_error("after stop");
  wr_mgmt_logs_flush(m);
  assert_int_equal(a->nmsgs, 3);
  assert_int_equal(a->closes, 0);

  msg(s, "{\"type\":\"dance\"}");
  assert_int_equal(a->closes, 1);
  assert_int_equal(a->close_code, WR_MGMT_CLOSE_UNSUPPORTED);
}

static void test_one_actor(void **st) {
  fx *f = *st;
  wr_mgmt_logs *m = f->m;
  wr_mgmt_session *sa = f->s;
  peer *a = &f->a;
  peer b = {0}, a2 = {0};
  wr_mgmt_session *sb = wr_mgmt_session_new(m, "bob", &ops, &b);
  msg(sa, "{\"type\":\"start_streaming\"}");
  msg(sb, "{\"type\":\"start_streaming\"}");
  assert_int_equal(b.closes, 1);
  assert_int_equal(b.close_code, WR_MGMT_CLOSE_LIMIT);
  assert_true(wr_mgmt_session_streaming(sa));
  /* alice again: her old session gives way. */
  wr_mgmt_session *sa2 = wr_mgmt_session_new(m, "alice", &ops, &a2);
  msg(sa2, "{\"type\":\"start_streaming\"}");
  assert_int_equal(a->closes, 1);
  assert_int_equal(a->close_code, WR_MGMT_CLOSE_NORMAL);
  assert_true(wr_mgmt_session_streaming(sa2));
  wr_error("to the new one");
  wr_mgmt_logs_flush(m);
  /* (the registry's own notes about the takeover come first) */
  assert_non_null(strstr(a2.last, "to the new one"));
  assert_int_equal(a->nmsgs, 0);
  assert_int_equal(b.nmsgs, 0);
  wr_mgmt_session_free(sa);
  f->s = NULL;
  wr_mgmt_session_free(sb);
  wr_mgmt_session_free(sa2);
  assert_int_equal(wr_log_min_level, WR_LOG_INFO);
}

/* Lines come through the loop by themselves (uv_async), not only by
 * wr_mgmt_logs_flush. */
static void test_async_delivery(void **st) {
  fx *f = *st;
  wr_mgmt_logs *m = f->m;
  wr_mgmt_session *s = f->s;
  peer *a = &f->a;
  msg(s, "{\"type\":\"start_streaming\"}");
  wr_info("via the loop");
  uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(a->nmsgs, 1);
  assert_non_null(strstr(a->last, "via the loop"));
  /* A full queue drops lines instead of growing. */
  for (int i = 0; i < WR_MGMT_QUEUE_MAX + 50; i++) wr_info("line %d", i);
  wr_mgmt_logs_flush(m);
  assert_int_equal(a->nmsgs, 1 + WR_MGMT_QUEUE_MAX);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_FIXTURE(fx_setup, fx_teardown, test_stream_and_filter, test_one_actor,
                               test_async_delivery));
}
