/* Management log stream codecs (src/proto/mgmt_event.c, mgmt_token.c):
 * cloudflared's event JSON both ways, filters as its session applies them,
 * the tail's output lines, and management tokens signed, read and
 * verified (wrong key, expiry, tampering, other algs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "proto/mgmt_event.h"
#include "proto/mgmt_token.h"
#include "unit.h"

static void test_names(void **st) {
  (void)st;
  assert_int_equal(wr_mgmt_level_parse("warn"), WR_MGMT_WARN);
  assert_int_equal(wr_mgmt_level_parse("fatal"), -1);
  assert_int_equal(wr_mgmt_event_parse("udp"), WR_MGMT_EV_UDP);
  assert_int_equal(wr_mgmt_event_parse("HTTP"), -1);
  assert_string_equal(wr_mgmt_level_name(WR_MGMT_ERROR), "error");
  assert_string_equal(wr_mgmt_event_name(WR_MGMT_EV_CLOUDFLARED), "cloudflared");
  assert_string_equal(wr_mgmt_event_name(9), "");
}

static void test_client_decode(void **st) {
  int type = 0;
  wr_mgmt_filters f;
  const char *full = "{\"type\":\"start_streaming\",\"filters\":{\"events\":[\"http\",\"tcp\"],"
                     "\"level\":\"warn\",\"sampling\":0.25}}";
  (void)st;
  assert_int_equal(wr_mgmt_client_event_decode(full, strlen(full), &type, &f), WR_OK);
  assert_int_equal(type, WR_MGMT_START_STREAMING);
  assert_int_equal(f.level, WR_MGMT_WARN);
  assert_int_equal(f.events, (1u << WR_MGMT_EV_HTTP) | (1u << WR_MGMT_EV_TCP));
  assert_true(f.sampling > 0.24 && f.sampling < 0.26);

  const char *bare = "{\"type\":\"start_streaming\"}";
  assert_int_equal(wr_mgmt_client_event_decode(bare, strlen(bare), &type, &f), WR_OK);
  assert_int_equal(f.level, -1);
  assert_int_equal(f.events, 0);

  const char *clamp = "{\"type\":\"start_streaming\",\"filters\":{\"sampling\":7}}";
  assert_int_equal(wr_mgmt_client_event_decode(clamp, strlen(clamp), &type, &f), WR_OK);
  assert_true(f.sampling == 1.0);

  const char *stop = "{\"type\":\"stop_streaming\"}";
  assert_int_equal(wr_mgmt_client_event_decode(stop, strlen(stop), &type, &f), WR_OK);
  assert_int_equal(type, WR_MGMT_STOP_STREAMING);

  static const char *const bad[] = {
      "", "[]", "{}", "{\"type\":\"logs\"}", "{\"type\":1}",
      "{\"type\":\"start_streaming\",\"filters\":{\"level\":\"loud\"}}",
      "{\"type\":\"start_streaming\",\"filters\":{\"events\":[\"smtp\"]}}",
      "{\"type\":\"start_streaming\",\"filters\":{\"events\":\"http\"}}",
      "{\"type\":\"start_streaming\",\"filters\":{\"sampling\":\"half\"}}",
      "{\"type\":\"start_streaming\",\"type\":\"stop_streaming\"}",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(wr_mgmt_client_event_decode(bad[i], strlen(bad[i]), &type, &f),
                     WR_ERR_PROTO);
}

static void test_client_roundtrip(void **st) {
  wr_buf b;
  wr_mgmt_filters f = {WR_MGMT_INFO, 1u << WR_MGMT_EV_UDP, 0.5}, g;
  int type;
  (void)st;
  wr_buf_init(&b, 4096, NULL);
  assert_int_equal(wr_mgmt_client_event_encode(WR_MGMT_START_STREAMING, &f, &b), WR_OK);
  assert_int_equal(wr_mgmt_client_event_decode((char *)b.data, b.len, &type, &g), WR_OK);
  assert_int_equal(type, WR_MGMT_START_STREAMING);
  assert_int_equal(g.level, WR_MGMT_INFO);
  assert_int_equal(g.events, 1u << WR_MGMT_EV_UDP);
  assert_true(g.sampling == 0.5);
  wr_buf_reset(&b);
  wr_mgmt_filters_none(&f);
  assert_int_equal(wr_mgmt_client_event_encode(WR_MGMT_START_STREAMING, &f, &b), WR_OK);
  assert_string_equal(wr_buf_cstr(&b), "{\"type\":\"start_streaming\"}");
  wr_buf_reset(&b);
  assert_int_equal(wr_mgmt_client_event_encode(WR_MGMT_STOP_STREAMING, NULL, &b), WR_OK);
  assert_string_equal(wr_buf_cstr(&b), "{\"type\":\"stop_streaming\"}");
  assert_int_equal(wr_mgmt_client_event_encode(7, NULL, &b), WR_ERR_INVAL);
  wr_buf_free(&b);
}

static void test_filters_match(void **st) {
  wr_mgmt_filters f;
  (void)st;
  wr_mgmt_filters_none(&f);
  assert_true(wr_mgmt_filters_match(&f, WR_MGMT_DEBUG, WR_MGMT_EV_TCP, 99));
  f.level = WR_MGMT_WARN;
  assert_false(wr_mgmt_filters_match(&f, WR_MGMT_INFO, WR_MGMT_EV_CLOUDFLARED, 0));
  assert_true(wr_mgmt_filters_match(&f, WR_MGMT_WARN, WR_MGMT_EV_CLOUDFLARED, 0));
  assert_true(wr_mgmt_filters_match(&f, WR_MGMT_ERROR, WR_MGMT_EV_CLOUDFLARED, 0));
  f.events = 1u << WR_MGMT_EV_HTTP;
  assert_false(wr_mgmt_filters_match(&f, WR_MGMT_ERROR, WR_MGMT_EV_CLOUDFLARED, 0));
  assert_true(wr_mgmt_filters_match(&f, WR_MGMT_ERROR, WR_MGMT_EV_HTTP, 0));
  wr_mgmt_filters_none(&f);
  f.sampling = 0.3;
  unsigned kept = 0;
  for (unsigned r = 0; r < 100; r++) kept += (unsigned)wr_mgmt_filters_match(&f, 1, 0, r);
  assert_int_equal(kept, 31); /* rnd <= 30, as cloudflared's rand.Intn(100) <= p */
}

typedef struct got {
  int n;
  char text[8][256];
} got;

static int collect(void *user, const wr_mgmt_log *l) {
  got *g = user;
  wr_buf b;
  wr_buf_init(&b, 256, NULL);
  assert_int_equal(wr_mgmt_log_format(l, 0, &b), WR_OK);
  snprintf(g->text[g->n++], 256, "%s", wr_buf_cstr(&b));
  wr_buf_free(&b);
  return g->n >= 8 ? 1 : WR_OK;
}

static void test_logs_roundtrip(void **st) {
  wr_buf b;
  got g = {0};
  wr_mgmt_log logs[2] = {
      {"2026-12-06T18:00:00Z", WR_MGMT_INFO, "Registered \"tunnel\"\n", WR_MGMT_EV_CLOUDFLARED,
       "{\"connIndex\":0,\"b\":\"x\"}"},
      {"2026-12-06T18:00:01Z", WR_MGMT_DEBUG, "GET /", WR_MGMT_EV_HTTP, NULL},
  };
  (void)st;
  wr_buf_init(&b, 4096, NULL);
  assert_int_equal(wr_mgmt_logs_encode(logs, 2, &b), WR_OK);
  assert_non_null(strstr(wr_buf_cstr(&b), "\"type\":\"logs\""));
  assert_int_equal(wr_mgmt_logs_decode((char *)b.data, b.len, collect, &g), WR_OK);
  assert_int_equal(g.n, 2);
  assert_string_equal(g.text[0], "2026-12-06T18:00:00Z info cloudflared Registered \"tunnel\"\n "
                                 "{\"b\":\"x\",\"connIndex\":0}\n");
  assert_string_equal(g.text[1], "2026-12-06T18:00:01Z debug http GET / null\n");

  /* Go's omitempty: no level = debug, no event = cloudflared. */
  const char *go = "{\"type\":\"logs\",\"logs\":[{\"time\":\"t\",\"message\":\"m\"}]}";
  g.n = 0;
  assert_int_equal(wr_mgmt_logs_decode(go, strlen(go), collect, &g), WR_OK);
  assert_string_equal(g.text[0], "t debug cloudflared m null\n");

  /* A message that is not UTF-8 still encodes. */
  wr_mgmt_log bin = {"t", WR_MGMT_WARN, "caf\xe9", WR_MGMT_EV_TCP, NULL};
  wr_buf_reset(&b);
  assert_int_equal(wr_mgmt_logs_encode(&bin, 1, &b), WR_OK);
  assert_non_null(strstr(wr_buf_cstr(&b), "caf?"));
  wr_mgmt_log badf = {"t", 1, "m", 0, "[1]"};
  assert_int_equal(wr_mgmt_logs_encode(&badf, 1, &b), WR_ERR_INVAL);

  static const char *const bad[] = {
      "x", "{\"type\":\"start_streaming\"}", "{\"type\":\"logs\",\"logs\":{}}",
      "{\"type\":\"logs\",\"logs\":[{\"level\":\"loud\"}]}",
      "{\"type\":\"logs\",\"logs\":[{\"event\":3}]}",
      "{\"type\":\"logs\",\"logs\":[{\"fields\":[]}]}", "{\"type\":\"logs\",\"logs\":[7]}",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(wr_mgmt_logs_decode(bad[i], strlen(bad[i]), collect, &g), WR_ERR_PROTO);
  wr_buf_free(&b);
}

static void test_log_format_json(void **st) {
  wr_buf b;
  wr_mgmt_log d = {"t", WR_MGMT_DEBUG, "m", WR_MGMT_EV_CLOUDFLARED, NULL};
  wr_mgmt_log e = {"t", WR_MGMT_ERROR, "m", WR_MGMT_EV_UDP, "{\"k\":1}"};
  (void)st;
  wr_buf_init(&b, 4096, NULL);
  assert_int_equal(wr_mgmt_log_format(&d, 1, &b), WR_OK);
  assert_string_equal(wr_buf_cstr(&b), "{\"time\":\"t\",\"message\":\"m\"}\n");
  wr_buf_reset(&b);
  assert_int_equal(wr_mgmt_log_format(&e, 1, &b), WR_OK);
  assert_string_equal(wr_buf_cstr(&b), "{\"time\":\"t\",\"level\":\"error\",\"message\":\"m\","
                                       "\"event\":\"udp\",\"fields\":{\"k\":1}}\n");
  wr_buf_free(&b);
}

static const uint8_t key[] = "0123456789abcdef0123456789abcdef";

static wr_mgmt_claims claims(void) {
  wr_mgmt_claims c;
  memset(&c, 0, sizeof(c));
  snprintf(c.tunnel_id, sizeof(c.tunnel_id), "%s", "5c1a7a8e-0000-4000-8000-000000000001");
  snprintf(c.account_tag, sizeof(c.account_tag), "%s", "acct");
  snprintf(c.actor_id, sizeof(c.actor_id), "%s", "admin@example.com");
  c.iat = 1000;
  c.exp = 2000;
  return c;
}

static void test_token_roundtrip(void **st) {
  wr_buf b;
  wr_mgmt_claims c = claims(), r;
  (void)st;
  wr_buf_init(&b, WR_MGMT_TOKEN_MAX, NULL);
  assert_int_equal(wr_mgmt_token_sign(key, 32, &c, &b), WR_OK);
  const char *tok = wr_buf_cstr(&b);
  assert_int_equal(wr_mgmt_token_verify(tok, b.len, key, 32, 1500, &r), WR_OK);
  assert_string_equal(r.tunnel_id, c.tunnel_id);
  assert_string_equal(r.account_tag, "acct");
  assert_string_equal(r.actor_id, "admin@example.com");
  assert_int_equal(r.exp, 2000);
  memset(&r, 0, sizeof(r));
  assert_int_equal(wr_mgmt_token_parse(tok, b.len, &r), WR_OK);
  assert_string_equal(r.tunnel_id, c.tunnel_id);
  /* expired, not yet issued does not matter, wrong key */
  assert_int_equal(wr_mgmt_token_verify(tok, b.len, key, 32, 2000, &r), WR_ERR_DENIED);
  assert_int_equal(wr_mgmt_token_verify(tok, b.len, key, 31, 1500, &r), WR_ERR_DENIED);
  /* a flipped signature character */
  char *t2 = strdup(tok);
  t2[b.len - 2] = t2[b.len - 2] == 'A' ? 'B' : 'A';
  assert_int_equal(wr_mgmt_token_verify(t2, b.len, key, 32, 1500, &r), WR_ERR_DENIED);
  free(t2);
  /* missing claims refuse to sign */
  c.actor_id[0] = '\0';
  assert_int_equal(wr_mgmt_token_sign(key, 32, &c, &b), WR_ERR_INVAL);
  wr_buf_free(&b);
}

/* A token signed with another alg (or none) and one with a changed
 * payload do not verify; parse still reads well-formed claims. */
static void test_token_forged(void **st) {
  const char *h_none = "eyJhbGciOiJub25lIn0"; /* {"alg":"none"} */
  char payload[512], tok[1024];
  const char *claims_json = "{\"tun\":{\"id\":\"t\",\"account_tag\":\"a\"},\"actor\":{\"id\":\"x\"},"
                            "\"exp\":99999999999}";
  wr_mgmt_claims r;
  (void)st;
  assert_true(wr_base64_encode((const uint8_t *)claims_json, strlen(claims_json), payload,
                               sizeof(payload), WR_BASE64_URL) > 0);
  snprintf(tok, sizeof(tok), "%s.%s.", h_none, payload);
  assert_int_equal(wr_mgmt_token_parse(tok, strlen(tok), &r), WR_OK);
  assert_string_equal(r.actor_id, "x");
  assert_int_equal(wr_mgmt_token_verify(tok, strlen(tok), key, 32, 0, &r), WR_ERR_DENIED);

  wr_buf b;
  wr_mgmt_claims c = claims();
  wr_buf_init(&b, WR_MGMT_TOKEN_MAX, NULL);
  assert_int_equal(wr_mgmt_token_sign(key, 32, &c, &b), WR_OK);
  const char *s = wr_buf_cstr(&b), *d1 = strchr(s, '.'), *d2 = strchr(d1 + 1, '.');
  snprintf(tok, sizeof(tok), "%.*s.%s%s", (int)(d1 - s), s, payload, d2);
  assert_int_equal(wr_mgmt_token_verify(tok, strlen(tok), key, 32, 1500, &r), WR_ERR_DENIED);
  wr_buf_free(&b);

  static const char *const bad[] = {
      "", "abc", "a.b", "a.b.c.d", "e30.e30.", /* {} claims lack tun */
      "eyJ0eXAiOiJKV1QifQ.e30.",                 /* no alg */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(wr_mgmt_token_parse(bad[i], strlen(bad[i]), &r), WR_ERR_PROTO);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_TESTS(test_names, test_client_decode, test_client_roundtrip,
                             test_filters_match, test_logs_roundtrip, test_log_format_json,
                             test_token_roundtrip, test_token_forged));
}
