/* The traffic inspector's rings (src/edge/inspect.c): records in order,
 * newest first, the ring pushing out its oldest, steps for a pushed-out
 * record ignored, redaction of credentials in both directions, the header
 * and body caps, bodies off by default, the least recently used tunnel
 * ring making room (also when visitors spread over many more tunnels than
 * there are rings), and replay results. */
#include <stdio.h>
#include <string.h>

#include "edge/inspect.h"
#include "edge/tunnel_stats.h"
#include "lib/err.h"
#include "unit.h"

#define T1 "11111111-1111-1111-1111-111111111111"
#define T2 "22222222-2222-2222-2222-222222222222"
#define T3 "33333333-3333-3333-3333-333333333333"

#define H(n, v) {(n), sizeof(n) - 1, (v), sizeof(v) - 1}

static wr_inspect_ref begin(wr_inspect *in, const char *tunnel, const char *path) {
  static const wr_http_header hs[] = {H("Host", "app.example.test"), H("Accept", "*/*")};
  return wr_inspect_begin(in, tunnel, "GET", "app.example.test", path, strlen(path), hs, 2,
                          1700000000000, 1000);
}

static void test_off(void **state) {
  (void)state;
  wr_inspect *in = (wr_inspect *)1;
  wr_inspect_config cfg = {0};
  assert_int_equal(wr_inspect_new(&cfg, &in), WR_OK);
  assert_null(in);
  /* Every call takes the NULL inspector. */
  wr_inspect_ref r = begin(NULL, T1, "/");
  assert_int_equal(r.id, 0);
  wr_inspect_end(NULL, r, 200, 0, 0, 5);
  assert_null(wr_inspect_get(NULL, 1));
  assert_int_equal(wr_inspect_bodies(NULL), 0);
  assert_int_equal(wr_inspect_new(NULL, &in), WR_ERR_INVAL);
}

static void test_ring_order(void **state) {
  (void)state;
  wr_inspect *in;
  wr_inspect_config cfg = {.per_tunnel = 3};
  const wr_inspect_rec *list[8];
  char path[32];
  wr_inspect_ref refs[5];
  assert_int_equal(wr_inspect_new(&cfg, &in), WR_OK);
  for (int i = 0; i < 5; i++) {
    snprintf(path, sizeof(path), "/r%d", i);
    refs[i] = begin(in, T1, path);
    assert_int_equal(refs[i].id, (uint64_t)i + 1);
  }
  /* Three slots: /r2, /r3, /r4 remain, newest first. */
  assert_int_equal(wr_inspect_list(in, T1, list, 8), 3);
  assert_string_equal(list[0]->target, "/r4");
  assert_string_equal(list[1]->target, "/r3");
  assert_string_equal(list[2]->target, "/r2");
  assert_int_equal(wr_inspect_list(in, T1, list, 2), 2);
  assert_int_equal(wr_inspect_list(in, T2, list, 8), 0);
  /* A step for a pushed-out record changes nothing (its slot now holds
   * another record). */
  wr_inspect_end(in, refs[0], 500, 1, 2, 1500);
  const wr_inspect_rec *r3 = wr_inspect_get(in, refs[3].id);
  assert_non_null(r3);
  assert_int_equal(r3->done, 0);
  assert_null(wr_inspect_get(in, refs[0].id));
  wr_inspect_response(in, refs[3], 201, NULL, 0);
  wr_inspect_end(in, refs[3], 0, 10, 20, 1250);
  assert_int_equal(r3->status, 201);
  assert_int_equal(r3->done, 1);
  assert_int_equal(r3->duration_ms, 250);
  assert_int_equal(r3->up, 10);
  assert_int_equal(r3->down, 20);
  assert_int_equal(r3->started_ms, 1700000000000);
  /* The edge's own answer's status wins. */
  wr_inspect_end(in, refs[4], 502, 0, 0, 1001);
  assert_int_equal(wr_inspect_get(in, refs[4].id)->status, 502);
  wr_inspect_free(in);
}

static void test_redaction(void **state) {
  (void)state;
  wr_inspect *in;
  wr_inspect_config cfg = {.per_tunnel = 4};
  static const wr_http_header req[] = {
      H("Host", "a.test"), H("authorization", "Bearer s3cret-token"),
      H("Cookie", "session=s3cret-cookie"), H("Proxy-Authorization", "Basic s3cret"),
      H("X-Other", "visible"),
  };
  static const wr_http_header resp[] = {H("Set-Cookie", "sid=s3cret-set; HttpOnly"),
                                        H("Content-Type", "text/plain")};
  assert_int_equal(wr_inspect_new(&cfg, &in), WR_OK);
  wr_inspect_ref r = wr_inspect_begin(in, T1, "POST", "a.test", "/login?x=1", 10, req, 5, 0, 0);
  wr_inspect_response(in, r, 200, resp, 2);
  const wr_inspect_rec *rec = wr_inspect_get(in, r.id);
  assert_non_null(rec);
  assert_null(strstr(rec->req_headers.data, "s3cret"));
  assert_null(strstr(rec->resp_headers.data, "s3cret"));
  assert_string_equal(rec->req_headers.data,
                      "Host: a.test\nauthorization: [redacted]\nCookie: [redacted]\n"
                      "Proxy-Authorization: [redacted]\nX-Other: visible\n");
  assert_string_equal(rec->resp_headers.data, "Set-Cookie: [redacted]\nContent-Type: text/plain\n");
  assert_int_equal(rec->req_headers.cut, 0);
  assert_string_equal(rec->target, "/login?x=1");
  assert_string_equal(rec->method, "POST");
  assert_int_equal(wr_inspect_redacted("COOKIE", 6), 1);
  assert_int_equal(wr_inspect_redacted("Cookies", 7), 0);
  wr_inspect_free(in);
}

static void test_caps(void **state) {
  (void)state;
  wr_inspect *in;
  static const wr_http_header hs[] = {H("A", "1234567"), H("B", "1234567"), H("C", "x")};
  /* Each field is 11 bytes ("A: 1234567\n"): a 25-byte cap keeps two. */
  wr_inspect_config cfg = {.per_tunnel = 2, .header_cap = 25};
  assert_int_equal(wr_inspect_new(&cfg, &in), WR_OK);
  assert_int_equal(wr_inspect_bodies(in), 0);
  wr_inspect_ref r = wr_inspect_begin(in, T1, "GET", "h", "/", 1, hs, 3, 0, 0);
  const wr_inspect_rec *rec = wr_inspect_get(in, r.id);
  assert_string_equal(rec->req_headers.data, "A: 1234567\nB: 1234567\n");
  assert_int_equal(rec->req_headers.cut, 1);
  /* Bodies off: counted, not kept. */
  wr_inspect_req_body(in, r, "hello", 5);
  assert_null(rec->req_body.data);
  assert_int_equal(rec->req_body.total, 5);
  wr_inspect_free(in);

  /* Bodies on with a cap of 8, arriving in pieces. A long target is cut. */
  wr_inspect_config bcfg = {.per_tunnel = 2, .body_cap = 8};
  char target[WR_INSPECT_TARGET_MAX + 100];
  memset(target, 'a', sizeof(target));
  target[0] = '/';
  assert_int_equal(wr_inspect_new(&bcfg, &in), WR_OK);
  assert_int_equal(wr_inspect_bodies(in), 1);
  r = wr_inspect_begin(in, T1, "PUT", "h", target, sizeof(target), NULL, 0, 0, 0);
  rec = wr_inspect_get(in, r.id);
  assert_int_equal(strlen(rec->target), WR_INSPECT_TARGET_MAX);
  wr_inspect_req_body(in, r, "12345", 5);
  wr_inspect_req_body(in, r, "67890", 5);
  wr_inspect_req_body(in, r, "abc", 3);
  assert_int_equal(rec->req_body.len, 8);
  assert_int_equal(rec->req_body.total, 13);
  assert_memory_equal(rec->req_body.data, "12345678", 8);
  wr_inspect_resp_body(in, r, "ok", 2);
  assert_int_equal(rec->resp_body.len, 2);
  assert_memory_equal(rec->resp_body.data, "ok", 2);
  assert_null(rec->req_headers.data);
  wr_inspect_free(in);
}

static void test_tunnel_lru(void **state) {
  (void)state;
  wr_inspect *in;
  const wr_inspect_rec *list[4];
  wr_inspect_config cfg = {.per_tunnel = 2, .max_tunnels = 2};
  assert_int_equal(wr_inspect_new(&cfg, &in), WR_OK);
  wr_inspect_ref a = begin(in, T1, "/one");
  begin(in, T2, "/two");
  begin(in, T1, "/one-again"); /* T1 is now the most recent */
  begin(in, T3, "/three");     /* takes T2's ring */
  assert_int_equal(wr_inspect_list(in, T2, list, 4), 0);
  assert_int_equal(wr_inspect_list(in, T1, list, 4), 2);
  assert_int_equal(wr_inspect_list(in, T3, list, 4), 1);
  assert_string_equal(list[0]->target, "/three");
  assert_string_equal(list[0]->tunnel_id, T3);
  /* Replay results land on a live record only. */
  wr_inspect_replay_result(in, a.id, -1, 0, NULL);
  assert_int_equal(wr_inspect_get(in, a.id)->replayed, 1);
  wr_inspect_replay_result(in, a.id, 0, 12, "connection refused");
  const wr_inspect_rec *ra = wr_inspect_get(in, a.id);
  assert_int_equal(ra->replayed, 2);
  assert_int_equal(ra->replay_status, 0);
  assert_string_equal(ra->replay_error, "connection refused");
  wr_inspect_replay_result(in, 999, 200, 1, NULL);
  wr_inspect_free(in);
}

/* A thousand tunnels through 64 rings, in rounds: each round pushes out
 * the rings of the round before, and a slot taken again holds only the new
 * request (a shorter target than the last one there, no replay). */
static void test_many_tunnels(void **state) {
  (void)state;
  wr_inspect *in;
  const wr_inspect_rec *list[4];
  char id[40], path[64];
  wr_inspect_config cfg = {.per_tunnel = 2, .max_tunnels = 64};
  assert_int_equal(wr_inspect_new(&cfg, &in), WR_OK);
  for (int round = 0; round < 3; round++) {
    for (int t = 0; t < 1000; t++) {
      snprintf(id, sizeof(id), "%08d-0000-4000-8000-%012d", t, round);
      snprintf(path, sizeof(path), round ? "/%d" : "/a-longer-target-%d", t);
      wr_inspect_ref r = begin(in, id, path);
      if (round == 0) wr_inspect_replay_result(in, r.id, 200, 3, NULL);
    }
  }
  for (int t = 0; t < 1000; t++) {
    snprintf(id, sizeof(id), "%08d-0000-4000-8000-%012d", t, 2);
    snprintf(path, sizeof(path), "/%d", t);
    size_t n = wr_inspect_list(in, id, list, 4);
    assert_int_equal(n, t >= 1000 - 64 ? 1 : 0);
    if (!n) continue;
    assert_string_equal(list[0]->target, path);
    assert_string_equal(list[0]->tunnel_id, id);
    assert_int_equal(list[0]->replayed, 0);
    assert_int_equal(list[0]->req_headers.len, strlen("Host: app.example.test\nAccept: */*\n"));
  }
  snprintf(id, sizeof(id), "%08d-0000-4000-8000-%012d", 999, 1);
  assert_int_equal(wr_inspect_list(in, id, list, 4), 0);
  wr_inspect_free(in);
}

/* The per-tunnel counters beside the rings: sums, errors (5xx and broken
 * requests), and the least recently counted tunnel making room. */
static void test_tunnel_stats(void **state) {
  (void)state;
  size_t n;
  wr_tunnel_stats *s = wr_tunnel_stats_new(2);
  wr_tunnel_stats_add(s, T1, 200, 10, 100, 5);
  wr_tunnel_stats_add(s, T1, 502, 0, 20, 7);
  wr_tunnel_stats_add(s, T1, 0, 3, 0, 1);
  wr_tunnel_stats_add(s, T2, 404, 0, 9, 2);
  const wr_tunnel_counters *c = wr_tunnel_stats_get(s, T1);
  assert_non_null(c);
  assert_int_equal(c->requests, 3);
  assert_int_equal(c->errors, 2);
  assert_int_equal(c->bytes_in, 13);
  assert_int_equal(c->bytes_out, 120);
  assert_int_equal(c->latency_ms_sum, 13);
  assert_int_equal(wr_tunnel_stats_get(s, T2)->errors, 0);
  wr_tunnel_stats_add(s, T2, 200, 0, 0, 0); /* T1 is now the least recent */
  wr_tunnel_stats_add(s, T3, 200, 0, 0, 0);
  assert_null(wr_tunnel_stats_get(s, T1));
  assert_int_equal(wr_tunnel_stats_get(s, T2)->requests, 2);
  wr_tunnel_stats_all(s, &n);
  assert_int_equal(n, 2);
  wr_tunnel_stats_add(NULL, T1, 200, 0, 0, 0);
  wr_tunnel_stats_free(s);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_TESTS(test_off, test_ring_order, test_redaction, test_caps, test_tunnel_lru, test_many_tunnels,
                             test_tunnel_stats));
}
