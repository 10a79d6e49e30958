/* The Cloudflare API client (src/cfapi/): envelope and error decoding, each
 * result type with Go's encoding/json rules, Go's value parsers and
 * formatters, the JSON/YAML renderers, and every call's request (method,
 * URL, headers, body) through an in-memory transport that answers from a
 * script. Shapes follow ../shared/cloudflare-api.md §2 and
 * tests/e2e/fake_cfapi.py; expected texts are cloudflared 2023.7.3's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cfapi/client.h"
#include "cfapi/envelope.h"
#include "cfapi/login.h"
#include "cfapi/render.h"
#include "cfapi/routes.h"
#include "cfapi/time.h"
#include "cfapi/tunnels.h"
#include "cfapi/values.h"
#include "cfapi/vnets.h"
#include "lib/err.h"
#include "unit.h"

#define TID "02e5e788-bca7-4ff6-9978-fa2c7fea13f8"
#define TID2 "11111111-2222-4333-8444-555555555555"
#define VID "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
#define UNEXPECTED "the Cloudflare API response was an unexpected type: "

static json_t *J(const char *text) {
  json_error_t je;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
  if (!j) fail_msg("bad JSON in test: %s: %s", text, je.text);
  return j;
}

static wr_uuid U(const char *s) {
  wr_uuid u;
  assert_int_equal(wr_uuid_parse(s, strlen(s), &u), WR_OK);
  return u;
}

/* ---- refusals ------------------------------------------------------------------------
 * Tables of inputs that the code under test must refuse with WR_ERR_PROTO,
 * each with the exact message it must give. */

typedef struct refusal {
  const char *in;
  const char *msg; /* NULL: not checked */
} refusal;

/* Runs the code under test on |in|: returns what it returned, its message in
 * |msg| (WR_CFAPI_ERRLEN bytes). A cmocka assert may fail inside. */
typedef int (*refuse_fn)(const char *in, char *msg);

static void assert_refusals(refuse_fn run, const refusal *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char msg[WR_CFAPI_ERRLEN] = "";
    assert_int_equal(run(cases[i].in, msg), WR_ERR_PROTO);
    if (cases[i].msg) assert_string_equal(msg, cases[i].msg);
  }
}
#define ASSERT_REFUSALS(run, cases) assert_refusals(run, cases, sizeof(cases) / sizeof((cases)[0]))

/* One JSON decoder under test, typed for its result: decodes |j|, checks
 * what a refusal leaves, frees the result. */
typedef int (*json_decode_fn)(const json_t *j, wr_cfapi_error *e);

/* A refuse_fn's body for a JSON decoder: |decode| on the JSON text |in|. */
static int decode_text(json_decode_fn decode, const char *in, char *msg) {
  json_t *j = J(in);
  wr_cfapi_error e = {0};
  int rv = decode(j, &e);
  json_decref(j);
  snprintf(msg, WR_CFAPI_ERRLEN, "%s", e.msg);
  return rv;
}

/* Decodes the JSON text |text| with |decode| (a wr_cfapi_decode_* function)
 * into *|out|, which the caller then owns; fails the test unless it
 * succeeds. */
#define DECODE_OK(decode, text, out)               \
  do {                                             \
    json_t *j_ = J(text);                          \
    wr_cfapi_error e_;                             \
    assert_int_equal(decode(j_, out, &e_), WR_OK); \
    json_decref(j_);                               \
  } while (0)

/* ---- envelope ------------------------------------------------------------------------ */

static int envelope(const char *body, char *why) {
  wr_cfapi_envelope env;
  int rv = wr_cfapi_envelope_decode((const uint8_t *)body, strlen(body), &env, why, 256);
  if (rv == WR_OK) wr_cfapi_envelope_free(&env);
  return rv;
}

static void test_envelope_decode(void **state) {
  (void)state;
  char why[256];
  wr_cfapi_envelope env;
  const char *ok = "{\"success\":true,\"errors\":[],\"messages\":[\"hi\",null],\"result\":[1],"
                   "\"result_info\":{\"page\":1,\"per_page\":20,\"count\":1,\"total_count\":1}}";
  assert_int_equal(wr_cfapi_envelope_decode((const uint8_t *)ok, strlen(ok), &env, why, sizeof(why)), WR_OK);
  assert_true(env.success);
  assert_int_equal(json_array_size(env.errors), 0);
  assert_true(json_is_array(env.result));
  assert_int_equal(env.info.page, 1);
  assert_int_equal(env.info.per_page, 20);
  assert_int_equal(env.info.total_count, 1);
  wr_cfapi_envelope_free(&env);

  /* Keys in any case; result_info is optional and lenient. */
  const char *ci = "{\"SUCCESS\":true,\"Result\":null,\"result_info\":{\"page\":\"x\"}}";
  assert_int_equal(wr_cfapi_envelope_decode((const uint8_t *)ci, strlen(ci), &env, why, sizeof(why)), WR_OK);
  assert_true(env.success);
  assert_true(json_is_null(env.result));
  assert_int_equal(env.info.page, -1);
  assert_int_equal(env.info.count, -1);
  wr_cfapi_envelope_free(&env);

  /* jansson (without JSON_DECODE_ANY, as cloudflared's messages were
   * captured) wants an object or array at the top. */
  assert_int_equal(envelope("null", why), WR_ERR_PROTO);
  assert_string_equal(why, "'[' or '{' expected near 'null'");
  assert_int_equal(envelope("5", why), WR_ERR_PROTO);
  assert_string_equal(why, "'[' or '{' expected near '5'");

  static const refusal bad[] = {
      {"", "EOF"},
      {"[1]", "json: cannot unmarshal array into Go value of type cfapi.response"},
      {"{\"success\":\"yes\"}", "json: cannot unmarshal into Go struct field response.success of type bool"},
      {"{\"errors\":{}}", "json: cannot unmarshal into Go struct field response.errors of type []cfapi.apiErr"},
      {"{\"errors\":[5]}", "json: cannot unmarshal into Go struct field response.errors of type cfapi.apiErr"},
      {"{\"errors\":[{\"code\":true}]}", "json: cannot unmarshal into Go struct field response.errors of type cfapi.apiErr"},
      {"{\"errors\":[{\"message\":1}]}", "json: cannot unmarshal into Go struct field response.errors of type cfapi.apiErr"},
      {"{\"messages\":\"x\"}", "json: cannot unmarshal into Go struct field response.messages of type []string"},
      {"{\"messages\":[{\"code\":1}]}",
       "json: cannot unmarshal object into Go struct field response.messages of type string"},
  };
  ASSERT_REFUSALS(envelope, bad);
  /* jansson's own text for broken JSON; trailing data is fine, as Go's
   * Decoder reads one value. */
  assert_int_equal(envelope("{bad", why), WR_ERR_PROTO);
  assert_string_equal(why, "string or '}' expected near 'bad'");
  assert_int_equal(envelope("{\"success\":true} trailing", why), WR_OK);
}

static void test_envelope_errors(void **state) {
  (void)state;
  static const struct {
    const char *body, *msg;
    long long code;
  } cases[] = {
      {"{\"errors\":[{\"code\":1003,\"message\":\"nope\"}]}", "code: 1003, reason: nope", 1003},
      {"{\"errors\":[{\"code\":7,\"message\":\"a\"},{\"code\":\"8\",\"message\":\"b\"}]}",
       "API errors: code: 7, reason: a; code: 8, reason: b; ", 7},
      {"{\"errors\":[{\"code\":\"12\"}]}", "code: 12, reason: ", 12},
      {"{\"errors\":[{\"code\":7.5,\"message\":\"r\"}]}", "code: 7.5, reason: r", 0},
      {"{\"errors\":[{\"Message\":\"m\"}]}", "code: , reason: m", 0},
      {"{\"errors\":[null]}", "code: , reason: ", 0},
  };
  char why[256];
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    wr_cfapi_envelope env;
    wr_cfapi_error e = {0};
    assert_int_equal(wr_cfapi_envelope_decode((const uint8_t *)cases[i].body, strlen(cases[i].body), &env, why,
                                              sizeof(why)),
                     WR_OK);
    assert_int_equal(wr_cfapi_envelope_errors(&env, &e), 1);
    assert_string_equal(e.msg, cases[i].msg);
    assert_int_equal(e.code, cases[i].code);
    wr_cfapi_envelope_free(&env);
  }
  wr_cfapi_envelope env;
  wr_cfapi_error e = {0};
  assert_int_equal(wr_cfapi_envelope_decode((const uint8_t *)"{\"errors\":[]}", 13, &env, why, sizeof(why)), WR_OK);
  assert_int_equal(wr_cfapi_envelope_errors(&env, &e), 0);
  wr_cfapi_envelope_free(&env);
}

/* wr_cfapi_response_result for one answer. */
static int answer(int status, const char *ctype, const char *body, int want, json_t **res, wr_cfapi_error *e) {
  wr_cfapi_response r = {status, ctype, (const uint8_t *)body, strlen(body)};
  return wr_cfapi_response_result(&r, "list tunnels", want, res, e);
}

static void test_response_result(void **state) {
  (void)state;
  wr_cfapi_error e;
  json_t *res = NULL;
  const char *errs = "{\"success\":false,\"errors\":[{\"code\":10001,\"message\":\"injected\"}],\"result\":null}";

  assert_int_equal(answer(200, "application/json", "{\"success\":true,\"result\":[1,2]}", 1, &res, &e), WR_OK);
  assert_int_equal(json_array_size(res), 2);
  assert_int_equal(e.status, 200);
  json_decref(res);

  /* statusCodeToError: errors[] only from exactly application/json. */
  static const struct {
    int status;
    const char *ctype, *msg;
  } st[] = {
      {503, "application/json", "Failed to list tunnels: code: 10001, reason: injected"},
      {502, "text/html", "API call to list tunnels failed with status 502: Bad Gateway"},
      {404, "text/plain", "not found"},
      {403, NULL, "unauthorized"},
      {401, "text/html", "unauthorized"},
      {400, "application/json; charset=utf-8", "incorrect request parameters"},
      {201, "text/plain", "API call to list tunnels failed with status 201: Created"},
      {599, NULL, "API call to list tunnels failed with status 599: "},
  };
  for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
    res = NULL;
    assert_int_equal(answer(st[i].status, st[i].ctype, errs, 1, &res, &e), WR_ERR_DENIED);
    assert_string_equal(e.msg, st[i].msg);
    assert_int_equal(e.status, st[i].status);
    assert_null(res);
  }
  assert_int_equal(answer(503, "application/json", errs, 1, &res, &e), WR_ERR_DENIED);
  assert_int_equal(e.code, 10001);

  /* Without a wanted result, any 200 without errors[] will do. */
  assert_int_equal(answer(200, "text/plain", "whatever", 0, NULL, &e), WR_OK);
  assert_int_equal(answer(200, NULL, "", 0, NULL, &e), WR_OK);
  assert_int_equal(answer(200, "application/json", errs, 0, NULL, &e), WR_ERR_DENIED);
  assert_string_equal(e.msg, "Failed to list tunnels: code: 10001, reason: injected");

  /* A 200 with a wanted result. */
  assert_int_equal(answer(200, "application/json", "{\"success\":true}", 1, &res, &e), WR_ERR_PROTO);
  assert_string_equal(e.msg, UNEXPECTED "unexpected end of JSON input");
  assert_int_equal(answer(200, "application/json", "{\"success\":false,\"result\":1}", 1, &res, &e), WR_ERR_DENIED);
  assert_string_equal(e.msg, "API call failed");
  assert_int_equal(answer(200, "text/plain", "{\"success\":true,\"errors\":[{\"code\":1,\"message\":\"m\"}],\"result\":1}", 1,
                          &res, &e),
                   WR_ERR_DENIED);
  assert_string_equal(e.msg, "code: 1, reason: m");
  assert_int_equal(answer(200, "application/json", "", 1, &res, &e), WR_ERR_PROTO);
  assert_string_equal(e.msg, "failed to decode response: EOF");
  assert_int_equal(answer(200, "application/json", "{\"success\":true,\"result\":null}", 1, &res, &e), WR_OK);
  assert_true(json_is_null(res));
  json_decref(res);
}

static void test_error_wrap(void **state) {
  (void)state;
  wr_cfapi_error e;
  wr_cfapi_errorf(&e, "inner %d", 1);
  e.status = 409;
  wr_cfapi_wrap(&e, "middle");
  wr_cfapi_wrap(&e, "outer %s", "x");
  assert_string_equal(e.msg, "outer x: middle: inner 1");
  assert_int_equal(e.status, 409);
  wr_cfapi_errorf(&e, "fresh");
  assert_int_equal(e.status, 0);
  /* Long chains are cut, never overflowed. */
  for (int i = 0; i < 200; i++) wr_cfapi_wrap(&e, "context number %d", i);
  assert_int_equal(strlen(e.msg), WR_CFAPI_ERRLEN - 1);
}

/* ---- result types ------------------------------------------------------------------------------- */

/* A refused tunnel is left empty. */
static int decode_tunnel(const json_t *j, wr_cfapi_error *e) {
  wr_cfapi_tunnel t;
  int rv = wr_cfapi_decode_tunnel(j, &t, e);
  if (rv != WR_OK) assert_true(t.name == NULL && t.conns == NULL);
  wr_cfapi_tunnel_free(&t);
  return rv;
}
static int tunnel_of(const char *in, char *msg) { return decode_text(decode_tunnel, in, msg); }

static void test_decode_tunnel(void **state) {
  (void)state;
  wr_cfapi_tunnel t;
  DECODE_OK(wr_cfapi_decode_tunnel,
            "{\"ID\":\"" TID "\",\"Name\":\"mytun\",\"extra\":{\"a\":1},\"created_at\":\"2024-01-02T03:04:05.100+01:00\","
            "\"deleted_at\":null,\"connections\":[{\"colo_name\":\"dfw01\",\"id\":\"" TID2 "\","
            "\"is_pending_reconnect\":true,\"origin_ip\":\"203.0.113.7\",\"opened_at\":\"2024-03-01T10:00:01.12Z\"},"
            "{\"origin_ip\":\"\"}],\"token\":\"tok\"}", &t);
  char s[WR_UUID_STR_LEN + 1], ts[WR_CFAPI_TIME_STRLEN];
  wr_uuid_format(&t.id, s);
  assert_string_equal(s, TID);
  assert_string_equal(t.name, "mytun");
  assert_string_equal(t.token, "tok");
  wr_cfapi_time_nano(&t.created_at, ts);
  assert_string_equal(ts, "2024-01-02T03:04:05.1+01:00");
  assert_false(t.deleted_at.set);
  assert_int_equal(t.nconns, 2);
  assert_false(t.conns_null);
  assert_string_equal(t.conns[0].colo_name, "dfw01");
  assert_true(t.conns[0].pending);
  assert_int_equal(t.conns[0].origin_ip.len, 16);
  assert_string_equal(t.conns[1].colo_name, "");
  assert_int_equal(t.conns[1].origin_ip.len, 0);
  wr_cfapi_tunnel_free(&t);

  /* Absent and null fields leave Go's zero values. */
  DECODE_OK(wr_cfapi_decode_tunnel, "{\"connections\":null}", &t);
  assert_string_equal(t.name, "");
  assert_string_equal(t.token, "");
  assert_true(t.conns_null);
  wr_cfapi_tunnel_free(&t);

  static const refusal bad[] = {
      {"[1]", UNEXPECTED "json: cannot unmarshal array into Go value of type cfapi.Tunnel"},
      {"{\"id\":\"x\"}", UNEXPECTED "invalid UUID length: 1"},
      {"{\"id\":5}", UNEXPECTED "json: cannot unmarshal number into Go struct field Tunnel.id of type uuid.UUID"},
      {"{\"name\":5}", UNEXPECTED "json: cannot unmarshal number into Go struct field Tunnel.name of type string"},
      {"{\"token\":[]}",
       UNEXPECTED "json: cannot unmarshal array into Go struct field TunnelWithToken.token of type string"},
      {"{\"created_at\":\"2024-13-01T00:00:00Z\"}",
       UNEXPECTED "parsing time \"\\\"2024-13-01T00:00:00Z\\\"\" as \"\\\"2006-01-02T15:04:05Z07:00\\\"\": cannot "
                  "parse as RFC 3339"},
      {"{\"connections\":{}}",
       UNEXPECTED "json: cannot unmarshal object into Go struct field Tunnel.connections of type []cfapi.Connection"},
      {"{\"connections\":[5]}", UNEXPECTED "json: cannot unmarshal number into Go value of type cfapi.Connection"},
      {"{\"connections\":[{\"origin_ip\":\"1.2.3\"}]}", UNEXPECTED "invalid IP address: 1.2.3"},
      {"{\"connections\":[{\"is_pending_reconnect\":\"no\"}]}",
       UNEXPECTED "json: cannot unmarshal string into Go struct field Connection.is_pending_reconnect of type bool"},
      /* The second element failing after the first decoded (a crash once). */
      {"{\"connections\":[{\"colo_name\":\"a\"},{\"id\":\"x\"}]}", UNEXPECTED "invalid UUID length: 1"},
  };
  ASSERT_REFUSALS(tunnel_of, bad);
}

/* A refused list is left empty. */
static int decode_tunnels(const json_t *j, wr_cfapi_error *e) {
  wr_cfapi_tunnels l;
  int rv = wr_cfapi_decode_tunnels(j, &l, e);
  if (rv != WR_OK) assert_null(l.v);
  wr_cfapi_tunnels_free(&l);
  return rv;
}
static int tunnels_of(const char *in, char *msg) { return decode_text(decode_tunnels, in, msg); }

static void test_decode_tunnels(void **state) {
  (void)state;
  wr_cfapi_tunnels l;
  DECODE_OK(wr_cfapi_decode_tunnels, "null", &l);
  assert_true(l.is_null);
  assert_int_equal(l.n, 0);
  DECODE_OK(wr_cfapi_decode_tunnels, "[{\"name\":\"a\"},{\"name\":\"b\"},null]", &l);
  assert_int_equal(l.n, 3);
  assert_string_equal(l.v[1].name, "b");
  assert_string_equal(l.v[2].name, "");
  wr_cfapi_tunnels_free(&l);
  static const refusal bad[] = {
      {"{}", UNEXPECTED "json: cannot unmarshal object into Go value of type []*cfapi.Tunnel"},
      {"[{\"name\":\"a\"},{\"name\":1}]", NULL},
  };
  ASSERT_REFUSALS(tunnels_of, bad);
}

static int decode_active_clients(const json_t *j, wr_cfapi_error *e) {
  wr_cfapi_active_clients l;
  int rv = wr_cfapi_decode_active_clients(j, &l, e);
  if (rv == WR_OK) wr_cfapi_active_clients_free(&l);
  return rv;
}
static int active_clients_of(const char *in, char *msg) {
  return decode_text(decode_active_clients, in, msg);
}

static void test_decode_active_clients(void **state) {
  (void)state;
  wr_cfapi_active_clients l;
  DECODE_OK(wr_cfapi_decode_active_clients,
            "[{\"id\":\"" TID2 "\",\"features\":[\"a\",null],\"version\":\"2023.7.3\",\"arch\":\"linux_amd64\","
            "\"run_at\":\"2024-03-01T10:00:00Z\",\"conns\":[{\"colo_name\":\"dfw01\"}],\"connections\":5},"
            "{\"features\":null}]", &l);
  assert_int_equal(l.n, 2);
  assert_int_equal(l.v[0].nfeatures, 2);
  assert_string_equal(l.v[0].features[1], "");
  assert_false(l.v[0].features_null);
  assert_string_equal(l.v[0].version, "2023.7.3");
  assert_int_equal(l.v[0].nconns, 1); /* the key is "conns" */
  assert_true(l.v[1].features_null);
  assert_true(l.v[1].conns_null);
  wr_cfapi_active_clients_free(&l);

  static const refusal bad[] = {
      {"[{\"features\":\"x\"}]",
       UNEXPECTED "json: cannot unmarshal string into Go struct field ActiveClient.features of type []string"},
      {"[{\"features\":[1]}]",
       UNEXPECTED "json: cannot unmarshal number into Go struct field ActiveClient.features of type string"},
      {"[5]", UNEXPECTED "json: cannot unmarshal number into Go value of type cfapi.ActiveClient"},
  };
  ASSERT_REFUSALS(active_clients_of, bad);
}

static int decode_route(const json_t *j, wr_cfapi_error *e) {
  wr_cfapi_route r;
  int rv = wr_cfapi_decode_route(j, &r, e);
  wr_cfapi_route_free(&r);
  return rv;
}
static int route_of(const char *in, char *msg) { return decode_text(decode_route, in, msg); }

static void test_decode_routes(void **state) {
  (void)state;
  wr_cfapi_route r;
  char s[WR_CFAPI_ADDR_STRLEN];
  DECODE_OK(wr_cfapi_decode_route,
            "{\"network\":\"10.1.2.3/8\",\"tunnel_id\":\"" TID "\",\"virtual_network_id\":\"" VID "\","
            "\"comment\":\"c\",\"created_at\":\"2024-01-01T00:00:00Z\",\"deleted_at\":null,\"tunnel_name\":\"t\"}", &r);
  wr_cfapi_cidr_str(&r.network, s);
  assert_string_equal(s, "10.0.0.0/8");
  assert_true(r.has_vnet);
  assert_string_equal(r.tunnel_name, "t");
  wr_cfapi_route_free(&r);

  /* {} is get-by-IP's "no match": the nil tunnel, the zero network. */
  DECODE_OK(wr_cfapi_decode_route, "{\"virtual_network_id\":null}", &r);
  assert_false(r.has_vnet);
  assert_int_equal(r.network.ip.len, 0);
  wr_cfapi_cidr_str(&r.network, s);
  assert_string_equal(s, "<nil>");
  wr_cfapi_route_free(&r);

  static const refusal bad[] = {
      {"{\"network\":null}", UNEXPECTED "error parsing invalid network from backend: invalid CIDR address: "},
      {"{\"network\":\"\"}", UNEXPECTED "error parsing invalid network from backend: invalid CIDR address: "},
      {"{\"network\":\"1.2.3.4\"}", UNEXPECTED "error parsing invalid network from backend: invalid CIDR address: 1.2.3.4"},
      {"{\"network\":5}",
       UNEXPECTED "error parsing cidr string: json: cannot unmarshal number into Go value of type string"},
      {"{\"virtual_network_id\":\"x\"}", UNEXPECTED "invalid UUID length: 1"},
      {"{\"comment\":true}", UNEXPECTED "json: cannot unmarshal bool into Go struct field DetailedRoute.comment of type string"},
      {"[]", UNEXPECTED "json: cannot unmarshal array into Go value of type cfapi.DetailedRoute"},
  };
  ASSERT_REFUSALS(route_of, bad);
  wr_cfapi_routes l;
  DECODE_OK(wr_cfapi_decode_routes, "[{\"network\":\"2001:DB8::1/32\"}]", &l);
  wr_cfapi_cidr_str(&l.v[0].network, s);
  assert_string_equal(s, "2001:db8::/32");
  wr_cfapi_routes_free(&l);
}

static void test_decode_vnets(void **state) {
  (void)state;
  wr_cfapi_error e;
  wr_cfapi_vnets l;
  DECODE_OK(wr_cfapi_decode_vnets,
            "[{\"id\":\"" VID "\",\"name\":\"vn\",\"comment\":\"c\",\"is_default_network\":true,"
            "\"created_at\":\"2024-01-01T00:00:00Z\",\"deleted_at\":\"2024-01-02T00:00:00Z\"},{}]", &l);
  assert_int_equal(l.n, 2);
  assert_true(l.v[0].is_default);
  assert_string_equal(l.v[0].name, "vn");
  assert_false(wr_cfapi_time_is_zero(&l.v[0].deleted_at));
  assert_true(wr_cfapi_time_is_zero(&l.v[1].deleted_at));
  wr_cfapi_vnets_free(&l);
  wr_cfapi_vnet v;
  json_t *j = J("{\"is_default_network\":1}");
  assert_int_equal(wr_cfapi_decode_vnet(j, &v, &e), WR_ERR_PROTO);
  assert_string_equal(e.msg, UNEXPECTED
                      "json: cannot unmarshal number into Go struct field VirtualNetwork.is_default_network of type bool");
  json_decref(j);
}

static void test_hostname_routes(void **state) {
  (void)state;
  wr_cfapi_error e;
  wr_cfapi_dns_route d;
  static const struct {
    const char *json, *summary;
  } dns[] = {
      {"{\"cname\":\"new\",\"name\":\"a.example.test\"}", "Added CNAME a.example.test which will route to this tunnel"},
      {"{\"cname\":\"updated\"}", "h.example updated to route to your tunnel"},
      {"{\"cname\":\"unchanged\",\"name\":\"\"}", "h.example is already configured to route to your tunnel"},
      {"{\"cname\":\"odd\",\"name\":\"w\"}", "%!(EXTRA string=w)"},
      {"{\"CNAME\":\"new\",\"name\":5}", "%!(EXTRA string=h.example)"},
      {"null", "%!(EXTRA string=h.example)"},
  };
  for (size_t i = 0; i < sizeof(dns) / sizeof(dns[0]); i++) {
    DECODE_OK(wr_cfapi_decode_dns_route, dns[i].json, &d);
    char *s = wr_cfapi_dns_route_summary(&d, "h.example");
    assert_string_equal(s, dns[i].summary);
    free(s);
    wr_cfapi_dns_route_free(&d);
  }
  json_t *j = J("[1]");
  assert_int_equal(wr_cfapi_decode_dns_route(j, &d, &e), WR_ERR_PROTO);
  assert_string_equal(e.msg, UNEXPECTED "json: cannot unmarshal array into Go value of type cfapi.DNSRouteResult");
  json_decref(j);
  j = J("\"s\"");
  wr_cfapi_lb_route lb;
  assert_int_equal(wr_cfapi_decode_lb_route(j, &lb, &e), WR_ERR_PROTO);
  assert_string_equal(e.msg, UNEXPECTED "json: cannot unmarshal value into Go value of type cfapi.LBRouteResult");
  json_decref(j);

  static const struct {
    const char *lb, *pool, *summary;
  } lbs[] = {
      {"new", "new", "Created load balancer L and added a new pool P with this tunnel as an origin"},
      {"new", "updated", "Created load balancer L with an existing pool P which was updated to use this tunnel as an origin"},
      {"new", "unchanged", "Created load balancer L with an existing pool P which already has this tunnel as an origin"},
      {"updated", "new", "Added new pool P with this tunnel as an origin to load balancer L"},
      {"updated", "updated", "Updated pool P to use this tunnel as an origin and added it to load balancer L"},
      {"updated", "unchanged", "Added pool P, which already has this tunnel as an origin, to load balancer L"},
      {"unchanged", "updated", "Added this tunnel as an origin in pool P which is already used by load balancer L"},
      {"unchanged", "unchanged", "Load balancer L already uses pool P which has this tunnel as an origin"},
      {"unchanged", "new", "Something went wrong: failed to modify load balancer L with pool P; please check traffic "
                           "manager configuration in the dashboard"},
  };
  for (size_t i = 0; i < sizeof(lbs) / sizeof(lbs[0]); i++) {
    char text[128];
    snprintf(text, sizeof(text), "{\"load_balancer\":\"%s\",\"pool\":\"%s\"}", lbs[i].lb, lbs[i].pool);
    DECODE_OK(wr_cfapi_decode_lb_route, text, &lb);
    char *s = wr_cfapi_lb_route_summary(&lb, "L", "P");
    assert_string_equal(s, lbs[i].summary);
    free(s);
    wr_cfapi_lb_route_free(&lb);
  }
}

/* ---- Go values ----------------------------------------------------------------------------------- */

static void test_time(void **state) {
  (void)state;
  static const struct {
    const char *in, *rfc3339, *nano, *string;
  } ok[] = {
      {"2026-11-22T03:42:53.843027Z", "2026-11-22T03:42:53Z", "2026-11-22T03:42:53.843027Z",
       "2026-11-22 03:42:53.843027 +0000 UTC"},
      {"2024-03-01T10:00:02+02:00", "2024-03-01T10:00:02+02:00", "2024-03-01T10:00:02+02:00",
       "2024-03-01 10:00:02 +0200 +0200"},
      {"2024-01-02T03:04:05,1234567891-00:30", "2024-01-02T03:04:05-00:30", "2024-01-02T03:04:05.123456789-00:30",
       "2024-01-02 03:04:05.123456789 -0030 -0030"},
      {"2024-02-29T23:59:59.000Z", "2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z", "2024-02-29 23:59:59 +0000 UTC"},
  };
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    wr_cfapi_time t;
    char s[WR_CFAPI_TIME_STRLEN];
    assert_int_equal(wr_cfapi_time_parse(ok[i].in, &t), WR_OK);
    wr_cfapi_time_rfc3339(&t, s);
    assert_string_equal(s, ok[i].rfc3339);
    wr_cfapi_time_nano(&t, s);
    assert_string_equal(s, ok[i].nano);
    wr_cfapi_time_string(&t, s);
    assert_string_equal(s, ok[i].string);
  }
  static const char *const bad[] = {"",
                                    "2024-01-02",
                                    "2024-01-02T03:04:05",
                                    "2024-01-02t03:04:05Z",
                                    "2024-01-02T03:04:05z",
                                    "2024-1-02T03:04:05Z",
                                    "2024-13-02T03:04:05Z",
                                    "2023-02-29T03:04:05Z",
                                    "2024-01-02T24:04:05Z",
                                    "2024-01-02T03:60:05Z",
                                    "2024-01-02T03:04:60Z",
                                    "2024-01-02T03:04:05.Z",
                                    "2024-01-02T03:04:05+24:00",
                                    "2024-01-02T03:04:05+01:60",
                                    "2024-01-02T03:04:05+0100",
                                    "2024-01-02T03:04:05Z ",
                                    "yesterday"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    wr_cfapi_time t;
    assert_int_equal(wr_cfapi_time_parse(bad[i], &t), WR_ERR_PROTO);
    assert_false(t.set);
  }
  wr_cfapi_time zero = {0}, t;
  char s[WR_CFAPI_TIME_STRLEN];
  wr_cfapi_time_nano(&zero, s);
  assert_string_equal(s, "0001-01-01T00:00:00Z");
  assert_true(wr_cfapi_time_is_zero(&zero));
  /* The zero instant written in another zone is still zero. */
  assert_int_equal(wr_cfapi_time_parse("0001-01-01T01:00:00+01:00", &t), WR_OK);
  assert_true(wr_cfapi_time_is_zero(&t));
  assert_int_equal(wr_cfapi_time_parse("1970-01-01T01:00:00+01:00", &t), WR_OK);
  assert_int_equal(wr_cfapi_time_unix(&t), 0);
  assert_int_equal(wr_cfapi_time_parse("2024-01-01T00:00:00Z", &t), WR_OK);
  assert_int_equal(wr_cfapi_time_unix(&t), 1704067200);
  assert_int_equal(wr_cfapi_time_unix(&zero), -62135596800LL);
}

/* wr_cfapi_uuid_parse of |in| (with a 128-byte message buffer). */
static int uuid_of(const char *in, char *msg) {
  wr_uuid u;
  char why[128] = "";
  int rv = wr_cfapi_uuid_parse(in, &u, why, sizeof(why));
  snprintf(msg, WR_CFAPI_ERRLEN, "%s", why);
  return rv;
}

static void test_values(void **state) {
  (void)state;
  wr_uuid u;
  char why[128], s[WR_CFAPI_ADDR_STRLEN];
  static const char *const uuids[] = {TID, "02E5E788-BCA7-4FF6-9978-FA2C7FEA13F8", "{" TID "}", "urn:uuid:" TID,
                                      "URN:UUID:" TID, "02e5e788bca74ff69978fa2c7fea13f8"};
  for (size_t i = 0; i < sizeof(uuids) / sizeof(uuids[0]); i++) {
    assert_int_equal(wr_cfapi_uuid_parse(uuids[i], &u, why, sizeof(why)), WR_OK);
    wr_uuid_format(&u, s);
    assert_string_equal(s, TID);
  }
  static const refusal bad[] = {{"x", "invalid UUID length: 1"},
             {"", "invalid UUID length: 0"},
             {"(" TID ")", "invalid UUID format"},
             {"urn:uuix:" TID, "invalid urn prefix: urn:uuix:"},
             {"02e5e788-bca7-4ff6-9978-fa2c7fea13fg", "invalid UUID format"},
             {"02e5e788xbca7-4ff6-9978-fa2c7fea13f8", "invalid UUID format"}};
  ASSERT_REFUSALS(uuid_of, bad);

  static const struct {
    const char *in, *out;
  } ips[] = {{"1.2.3.4", "1.2.3.4"},         {"::ffff:10.1.2.3", "10.1.2.3"}, {"2001:0db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
             {"::", "::"},                   {"::1", "::1"},                  {"1::", "1::"},
             {"1:0:2:0:0:3:0:0", "1:0:2::3:0:0"}, {"fe80::1:2", "fe80::1:2"}};
  for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
    wr_cfapi_ip ip;
    assert_int_equal(wr_cfapi_ip_parse(ips[i].in, &ip), WR_OK);
    wr_cfapi_ip_str(&ip, s);
    assert_string_equal(s, ips[i].out);
  }
  wr_cfapi_ip ip;
  assert_int_equal(wr_cfapi_ip_parse("1.2.3", &ip), WR_ERR_PROTO);
  assert_int_equal(wr_cfapi_ip_parse("fe80::1%eth0", &ip), WR_ERR_PROTO);
  memset(&ip, 0, sizeof(ip));
  wr_cfapi_ip_str(&ip, s);
  assert_string_equal(s, "<nil>");

  static const struct {
    const char *in, *out;
    uint8_t mask1;
  } cidrs[] = {{"10.1.2.3/8", "10.0.0.0/8", 0}, {"10.255.2.3/12", "10.240.0.0/12", 0xf0},
               {"0.0.0.0/0", "0.0.0.0/0", 0}, {"2001:DB8::1/32", "2001:db8::/32", 0xff}, {"::1/128", "::1/128", 0xff}};
  for (size_t i = 0; i < sizeof(cidrs) / sizeof(cidrs[0]); i++) {
    wr_cfapi_cidr c;
    assert_int_equal(wr_cfapi_cidr_parse(cidrs[i].in, &c), WR_OK);
    wr_cfapi_cidr_str(&c, s);
    assert_string_equal(s, cidrs[i].out);
    assert_int_equal(wr_cfapi_cidr_mask_byte(&c, 1), cidrs[i].mask1);
  }
  static const char *const badc[] = {"10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "::/129", "x/8", "10.0.0.0/8x", ""};
  for (size_t i = 0; i < sizeof(badc) / sizeof(badc[0]); i++) {
    wr_cfapi_cidr c;
    assert_int_equal(wr_cfapi_cidr_parse(badc[i], &c), WR_ERR_PROTO);
  }
}

static void test_query(void **state) {
  (void)state;
  wr_cfapi_query q = {0};
  char *s = wr_cfapi_query_encode(&q);
  assert_string_equal(s, "");
  free(s);
  wr_cfapi_query_set(&q, "name", "a b&c=d/é");
  wr_cfapi_query_set(&q, "is_deleted", "true");
  wr_cfapi_query_set(&q, "is_deleted", "false"); /* replaces */
  wr_cfapi_query_set(&q, "aud", "");
  s = wr_cfapi_query_encode(&q);
  assert_string_equal(s, "aud=&is_deleted=false&name=a+b%26c%3Dd%2F%C3%A9");
  free(s);
  for (int i = 0; i < 40; i++) {
    char k[16];
    snprintf(k, sizeof(k), "k%02d", i);
    wr_cfapi_query_set(&q, k, "v");
  }
  assert_int_equal(q.n, WR_CFAPI_QUERY_MAX);
  wr_cfapi_query_free(&q);
}

/* ---- rendering -------------------------------------------------------------------------------------- */

static char *render1(const char *str, wr_cfapi_enc enc) {
  wr_arena a = {0};
  wr_cfapi_node *o = wr_cfapi_node_obj(&a);
  wr_cfapi_node_put(o, "name", wr_cfapi_node_str(&a, str));
  char *s = wr_cfapi_render(o, enc);
  wr_arena_free(&a);
  return s;
}

static void test_render_json(void **state) {
  (void)state;
  wr_arena a = {0};
  wr_cfapi_node *o = wr_cfapi_node_obj(&a);
  wr_cfapi_node_put(o, "s", wr_cfapi_node_str(&a, "<a&b>\"\\\n\t\r\x01\xe2\x80\xa8\xff é"));
  wr_cfapi_node_put(o, "n", wr_cfapi_node_int(&a, -5));
  wr_cfapi_node_put(o, "b", wr_cfapi_node_bool(&a, 1));
  wr_cfapi_node_put(o, "z", wr_cfapi_node_null(&a));
  wr_cfapi_node_put(o, "e", wr_cfapi_node_arr(&a));
  wr_cfapi_node_put(o, "eo", wr_cfapi_node_obj(&a));
  wr_cfapi_node_put(o, "nil", wr_cfapi_node_slice(&a, 1, WR_CFAPI_JSON));
  wr_cfapi_node *arr = wr_cfapi_node_put(o, "a", wr_cfapi_node_arr(&a));
  wr_cfapi_node_push(arr, wr_cfapi_node_str(&a, NULL));
  wr_cfapi_node_push(arr, wr_cfapi_node_obj(&a));
  char *s = wr_cfapi_render_json(o);
  assert_string_equal(s, "{\n"
                         "  \"s\": \"\\u003ca\\u0026b\\u003e\\\"\\\\\\n\\t\\r\\u0001\\u2028\\ufffd é\",\n"
                         "  \"n\": -5,\n"
                         "  \"b\": true,\n"
                         "  \"z\": null,\n"
                         "  \"e\": [],\n"
                         "  \"eo\": {},\n"
                         "  \"nil\": null,\n"
                         "  \"a\": [\n"
                         "    \"\",\n"
                         "    {}\n"
                         "  ]\n"
                         "}\n");
  free(s);
  wr_arena_free(&a);
}

static void test_render_yaml_quoting(void **state) {
  (void)state;
  /* From tests/e2e/test_tunnel_mgmt.py (yaml.v3's choices) and more. */
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"yes", "\"yes\""},       {"1.0", "\"1.0\""},         {"2024-01-01", "\"2024-01-01\""},
      {"null", "\"null\""},     {"0x1F", "\"0x1F\""},       {"- x", "'- x'"},
      {"a: b", "'a: b'"},       {"#c", "'#c'"},             {" lead", "' lead'"},
      {"x'y", "x'y"},           {"plain-name", "plain-name"}, {"12:30", "\"12:30\""},
      {"", "\"\""},             {"~", "\"~\""},             {"1_000", "\"1_000\""},
      {".5", "\".5\""},    {".inf", "\".inf\""},       {"0o17", "\"0o17\""},
      {"a #b", "'a #b'"},       {"a#b", "a#b"},             {"trail ", "'trail '"},
      {"a\tb", "\"a\\tb\""},    {"a\nb", "\"a\\nb\""},      {"---x", "'---x'"},
      {"é", "é"},               {"\xff", "\"\xff\""},       {"a\x01", "\"a\\x01\""},
      {"'q", "'''q'"},          {"2024-1-2t3:4:5Z", "\"2024-1-2t3:4:5Z\""}, {"1:20:30.5", "\"1:20:30.5\""},
      {"\xc2\x85", "'\xc2\x85'"},  {"\xef\xbb\xbf", "\"\\uFEFF\""}, {"-", "'-'"}, {"-a", "-a"}, {"+1", "\"+1\""},
      /* Text after a raw line break would need yaml.v3's re-indentation:
       * escaped instead (a fuzzer found "--- " starting the next line). */
      {"- x*\"\xe2\x80\xa8--- .INF", "\"- x*\\\"\\L--- .INF\""}, {"a\rb", "\"a\\rb\""},
      {"a\xe2\x80\xa9", "'a\xe2\x80\xa9'"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char want[128], *s = render1(cases[i].in, WR_CFAPI_YAML);
    snprintf(want, sizeof(want), "name: %s\n", cases[i].out);
    if (strcmp(s, want) != 0) fail_msg("%zu [%s]: got [%s], want [%s]", i, cases[i].in, s, want);
    free(s);
  }
}

static void test_render_yaml_layout(void **state) {
  (void)state;
  wr_arena a = {0};
  wr_cfapi_node *o = wr_cfapi_node_obj(&a);
  wr_cfapi_time t;
  assert_int_equal(wr_cfapi_time_parse("2024-02-01T10:00:00Z", &t), WR_OK);
  wr_cfapi_node_put(o, "at", wr_cfapi_node_time(&a, &t));
  wr_cfapi_node_put(o, "empty", wr_cfapi_node_arr(&a));
  wr_cfapi_node_put(o, "nil", wr_cfapi_node_slice(&a, 1, WR_CFAPI_YAML));
  wr_cfapi_node *seq = wr_cfapi_node_put(o, "items", wr_cfapi_node_arr(&a));
  wr_cfapi_node *it = wr_cfapi_node_push(seq, wr_cfapi_node_obj(&a));
  wr_cfapi_node_put(it, "id", wr_cfapi_node_int(&a, 1));
  wr_cfapi_node *sub = wr_cfapi_node_put(it, "list", wr_cfapi_node_arr(&a));
  wr_cfapi_node_push(sub, wr_cfapi_node_str(&a, "x"));
  wr_cfapi_node_push(sub, wr_cfapi_node_obj(&a));
  wr_cfapi_node_put(it, "map", wr_cfapi_node_obj(&a));
  wr_cfapi_node *m = wr_cfapi_node_put(o, "m", wr_cfapi_node_obj(&a));
  wr_cfapi_node_put(wr_cfapi_node_put(m, "deep", wr_cfapi_node_obj(&a)), "k", wr_cfapi_node_bool(&a, 0));
  char *s = wr_cfapi_render_yaml(o);
  assert_string_equal(s, "at: 2024-02-01T10:00:00Z\n"
                         "empty: []\n"
                         "nil: []\n"
                         "items:\n"
                         "    - id: 1\n"
                         "      list:\n"
                         "        - x\n"
                         "        - {}\n"
                         "      map: {}\n"
                         "m:\n"
                         "    deep:\n"
                         "        k: false\n");
  free(s);
  s = wr_cfapi_render_yaml(wr_cfapi_node_null(&a));
  assert_string_equal(s, "null\n");
  free(s);
  s = wr_cfapi_render_yaml(wr_cfapi_node_arr(&a));
  assert_string_equal(s, "[]\n");
  free(s);
  wr_arena_free(&a);
}

static void test_result_shapes(void **state) {
  (void)state;
  wr_cfapi_tunnel t;
  DECODE_OK(wr_cfapi_decode_tunnel,
            "{\"id\":\"" TID "\",\"name\":\"mytun\",\"created_at\":\"2026-11-22T03:42:53.843027Z\","
            "\"connections\":[{\"colo_name\":\"dfw01\",\"id\":\"" TID2 "\",\"origin_ip\":\"1.2.3.4\","
            "\"opened_at\":\"2024-03-01T10:00:01.12Z\"}],\"token\":\"t<k>\"}", &t);
  wr_arena a = {0};
  char *s = wr_cfapi_render_json(wr_cfapi_tunnel_with_token_node(&a, &t, WR_CFAPI_JSON));
  assert_string_equal(s, "{\n"
                         "  \"id\": \"" TID "\",\n"
                         "  \"name\": \"mytun\",\n"
                         "  \"created_at\": \"2026-11-22T03:42:53.843027Z\",\n"
                         "  \"deleted_at\": \"0001-01-01T00:00:00Z\",\n"
                         "  \"connections\": [\n"
                         "    {\n"
                         "      \"colo_name\": \"dfw01\",\n"
                         "      \"id\": \"" TID2 "\",\n"
                         "      \"is_pending_reconnect\": false,\n"
                         "      \"origin_ip\": \"1.2.3.4\",\n"
                         "      \"opened_at\": \"2024-03-01T10:00:01.12Z\"\n"
                         "    }\n"
                         "  ],\n"
                         "  \"token\": \"t\\u003ck\\u003e\"\n"
                         "}\n");
  free(s);
  s = wr_cfapi_render_yaml(wr_cfapi_tunnel_with_token_node(&a, &t, WR_CFAPI_YAML));
  assert_string_equal(s, "tunnel:\n"
                         "    id: " TID "\n"
                         "    name: mytun\n"
                         "    createdat: 2026-11-22T03:42:53.843027Z\n"
                         "    deletedat: 0001-01-01T00:00:00Z\n"
                         "    connections:\n"
                         "        - coloname: dfw01\n"
                         "          id: " TID2 "\n"
                         "          ispendingreconnect: false\n"
                         "          originip: 1.2.3.4\n"
                         "          openedat: 2024-03-01T10:00:01.12Z\n"
                         "token: t<k>\n");
  free(s);
  wr_cfapi_tunnel_free(&t);

  /* A nil list is null at the top in both encodings. */
  wr_cfapi_tunnels nil = {NULL, 0, 1};
  s = wr_cfapi_render_yaml(wr_cfapi_tunnels_node(&a, &nil, WR_CFAPI_YAML));
  assert_string_equal(s, "null\n");
  free(s);

  wr_cfapi_routes rl;
  DECODE_OK(wr_cfapi_decode_routes,
            "[{\"network\":\"10.0.0.0/8\",\"tunnel_id\":\"" TID "\",\"comment\":\"c\",\"tunnel_name\":\"t\"}]", &rl);
  s = wr_cfapi_render_yaml(wr_cfapi_routes_node(&a, &rl, WR_CFAPI_YAML));
  assert_string_equal(s, "- network:\n"
                         "    ip: 10.0.0.0\n"
                         "    mask:\n"
                         "        - 255\n"
                         "        - 0\n"
                         "        - 0\n"
                         "        - 0\n"
                         "  tunnelid: " TID "\n"
                         "  vnetid: null\n"
                         "  comment: c\n"
                         "  createdat: 0001-01-01T00:00:00Z\n"
                         "  deletedat: 0001-01-01T00:00:00Z\n"
                         "  tunnelname: t\n");
  free(s);
  s = wr_cfapi_render_json(wr_cfapi_routes_node(&a, &rl, WR_CFAPI_JSON));
  assert_non_null(strstr(s, "    \"network\": \"10.0.0.0/8\",\n    \"tunnel_id\": \"" TID "\",\n    \"comment\""));
  free(s);
  wr_cfapi_routes_free(&rl);

  wr_cfapi_vnets vl;
  DECODE_OK(wr_cfapi_decode_vnets, "[{\"id\":\"" VID "\",\"name\":\"vn\",\"is_default_network\":true}]", &vl);
  s = wr_cfapi_render_yaml(wr_cfapi_vnets_node(&a, &vl, WR_CFAPI_YAML));
  assert_string_equal(s, "- id: " VID "\n  comment: \"\"\n  name: vn\n  isdefault: true\n"
                         "  createdat: 0001-01-01T00:00:00Z\n  deletedat: 0001-01-01T00:00:00Z\n");
  free(s);
  wr_cfapi_vnets_free(&vl);

  wr_cfapi_active_clients cl;
  DECODE_OK(wr_cfapi_decode_active_clients, "[{\"id\":\"" TID2 "\",\"features\":null,\"conns\":null}]", &cl);
  s = wr_cfapi_render_json(wr_cfapi_active_clients_node(&a, &cl, WR_CFAPI_JSON));
  assert_non_null(strstr(s, "\"features\": null,"));
  assert_non_null(strstr(s, "\"conns\": null\n"));
  free(s);
  s = wr_cfapi_render_yaml(wr_cfapi_active_clients_node(&a, &cl, WR_CFAPI_YAML));
  assert_non_null(strstr(s, "  features: []\n"));
  assert_non_null(strstr(s, "  connections: []\n"));
  free(s);
  wr_cfapi_active_clients_free(&cl);
  wr_arena_free(&a);
}

/* ---- calls through a scripted transport --------------------------------------------------------------- */

typedef struct canned {
  int status;
  const char *ctype, *body;
} canned;

typedef struct script {
  const canned *answers;
  size_t n, next;
  const char *fail;       /* a transport error for every request */
  /* the last request */
  char method[16], url[1024], body[1024], auth[128], accept[64], ua[64], ctype[64];
  int have_body, calls, traced;
} script;

static void copy_header(const wr_http_request *req, const char *name, char *out, size_t cap) {
  out[0] = '\0';
  for (size_t i = 0; i < req->nheaders; i++)
    if (strcmp(req->headers[i].name, name) == 0) snprintf(out, cap, "%.*s", (int)req->headers[i].value_len,
                                                           req->headers[i].value);
}

static int exchange(void *ud, const wr_http_request *req, wr_http_response *resp, char *err, size_t errlen) {
  script *s = ud;
  s->calls++;
  snprintf(s->method, sizeof(s->method), "%s", req->method);
  snprintf(s->url, sizeof(s->url), "%s", req->url);
  snprintf(s->body, sizeof(s->body), "%.*s", (int)req->body_len, req->body ? (const char *)req->body : "");
  s->have_body = req->body != NULL;
  copy_header(req, "Authorization", s->auth, sizeof(s->auth));
  copy_header(req, "Accept", s->accept, sizeof(s->accept));
  copy_header(req, "User-Agent", s->ua, sizeof(s->ua));
  copy_header(req, "Content-Type", s->ctype, sizeof(s->ctype));
  if (s->fail) {
    snprintf(err, errlen, "%s", s->fail);
    return WR_ERR_IO;
  }
  const canned *c = s->next < s->n ? &s->answers[s->next++] : &(canned){404, NULL, ""};
  resp->status = c->status;
  resp->body_len = strlen(c->body);
  resp->body = (uint8_t *)strdup(c->body);
  if (c->ctype) {
    size_t ct = strlen(c->ctype);
    resp->head = malloc(13 + ct + 1);
    memcpy(resp->head, "Content-Type", 13);
    memcpy(resp->head + 13, c->ctype, ct + 1);
    resp->headers = calloc(1, sizeof(wr_http_header));
    resp->headers[0] = (wr_http_header){resp->head, 12, resp->head + 13, ct};
    resp->nheaders = 1;
  }
  return WR_OK;
}

static void trace(void *ud, const char *method, const char *url) {
  (void)method;
  (void)url;
  ((script *)ud)->traced++;
}

static wr_cfapi_client *client_for(script *s, const char *base) {
  wr_cfapi_client *c;
  wr_cfapi_error e;
  wr_cfapi_config cfg = {.base_url = base, .account_tag = "acct 1", .zone_tag = "zone1", .api_token = "tok",
                         .trace = trace, .trace_ud = s, .transport = {exchange, s}};
  assert_int_equal(wr_cfapi_client_new(&cfg, &c, &e), WR_OK);
  return c;
}

#define OKJ(result) {200, "application/json", "{\"success\":true,\"errors\":[],\"messages\":[],\"result\":" result "}"}
#define BASE "http://api.test/client/v4"

static void test_client_basics(void **state) {
  (void)state;
  wr_cfapi_error e;
  wr_cfapi_client *c = NULL;
  wr_cfapi_config none = {.base_url = ""};
  assert_int_equal(wr_cfapi_client_new(&none, &c, &e), WR_ERR_CONFIG);
  assert_string_equal(e.msg, "An api-url was not provided for the Cloudflare API client");
  assert_null(c);

  static const canned list[] = {OKJ("[]")};
  script s = {.answers = list, .n = 1};
  c = client_for(&s, BASE "/");
  wr_cfapi_tunnels l;
  wr_cfapi_query q = {0};
  wr_cfapi_query_set(&q, "name", "a b");
  wr_cfapi_query_set(&q, "is_deleted", "false");
  assert_int_equal(wr_cfapi_list_tunnels(c, &q, &l, &e), WR_OK);
  wr_cfapi_query_free(&q);
  /* One trailing slash dropped; the account escaped as a path. */
  assert_string_equal(s.url, BASE "/accounts/acct%201/cfd_tunnel?is_deleted=false&name=a+b");
  assert_string_equal(s.method, "GET");
  assert_string_equal(s.auth, "Bearer tok");
  assert_string_equal(s.accept, "application/json;version=1");
  assert_string_equal(s.ua, "warren/" WR_VERSION);
  assert_string_equal(s.ctype, ""); /* no body, no Content-Type */
  assert_false(s.have_body);
  assert_int_equal(s.traced, 1);
  assert_false(l.is_null);
  wr_cfapi_tunnels_free(&l);

  s.fail = "Get \"" BASE "/x\": dial tcp 127.0.0.1:1: connect: connection refused";
  assert_int_equal(wr_cfapi_list_tunnels(c, &q, &l, &e), WR_ERR_IO);
  assert_string_equal(e.msg, "REST request failed: Get \"" BASE "/x\": dial tcp 127.0.0.1:1: connect: connection refused");
  assert_int_equal(e.status, 0);
  wr_cfapi_client_free(c);
}

static void test_tunnel_calls(void **state) {
  (void)state;
  wr_cfapi_error e;
  wr_cfapi_tunnel t;
  wr_uuid id = U(TID), cid = U(TID2);
  static const canned answers[] = {
      OKJ("{\"id\":\"" TID "\",\"name\":\"n\",\"token\":\"tk\"}"),
      {409, "application/json", "{\"success\":false,\"errors\":[{\"code\":1013,\"message\":\"dup\"}],\"result\":null}"},
      OKJ("{\"id\":\"" TID "\",\"name\":\"n\"}"),
      OKJ("null"),
      OKJ("null"),
      OKJ("null"),
      OKJ("\"tokentext\""),
      OKJ("null"),
      OKJ("true"),
      OKJ("[{\"id\":\"" TID2 "\"}]"),
  };
  script s = {.answers = answers, .n = sizeof(answers) / sizeof(answers[0])};
  wr_cfapi_client *c = client_for(&s, BASE);
  uint8_t secret[32];
  for (int i = 0; i < 32; i++) secret[i] = (uint8_t)i;

  assert_int_equal(wr_cfapi_create_tunnel(c, "n", secret, 32, &t, &e), WR_OK);
  assert_string_equal(s.method, "POST");
  assert_string_equal(s.url, BASE "/accounts/acct%201/cfd_tunnel");
  assert_string_equal(s.body, "{\"name\":\"n\",\"tunnel_secret\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}");
  assert_string_equal(s.ctype, "application/json");
  assert_string_equal(t.token, "tk");
  wr_cfapi_tunnel_free(&t);
  assert_int_equal(wr_cfapi_create_tunnel(c, "n", secret, 32, &t, &e), WR_ERR_DENIED);
  assert_string_equal(e.msg, "tunnel with name already exists");
  assert_int_equal(e.status, 409);
  int calls = s.calls;
  assert_int_equal(wr_cfapi_create_tunnel(c, "", secret, 32, &t, &e), WR_ERR_INVAL);
  assert_string_equal(e.msg, "tunnel name required");
  assert_int_equal(wr_cfapi_create_tunnel(c, TID, secret, 32, &t, &e), WR_ERR_INVAL);
  assert_string_equal(e.msg, "you cannot use UUIDs as tunnel names");
  assert_int_equal(s.calls, calls); /* refused before any request */

  assert_int_equal(wr_cfapi_get_tunnel(c, &id, &t, &e), WR_OK);
  assert_string_equal(s.url, BASE "/accounts/acct%201/cfd_tunnel/" TID);
  wr_cfapi_tunnel_free(&t);
  assert_int_equal(wr_cfapi_delete_tunnel(c, &id, 1, &e), WR_OK);
  assert_string_equal(s.method, "DELETE");
  assert_string_equal(s.url, BASE "/accounts/acct%201/cfd_tunnel/" TID "?cascade=true");
  assert_int_equal(wr_cfapi_cleanup_connections(c, &id, NULL, &e), WR_OK);
  assert_string_equal(s.url, BASE "/accounts/acct%201/cfd_tunnel/" TID "/connections");
  assert_int_equal(wr_cfapi_cleanup_connections(c, &id, &cid, &e), WR_OK);
  assert_string_equal(s.url, BASE "/accounts/acct%201/cfd_tunnel/" TID "/connections?client_id=" TID2);

  char *tok = NULL;
  assert_int_equal(wr_cfapi_get_tunnel_token(c, &id, &tok, &e), WR_OK);
  assert_string_equal(s.url, BASE "/accounts/acct%201/cfd_tunnel/" TID "/token");
  assert_string_equal(tok, "tokentext");
  free(tok);
  assert_int_equal(wr_cfapi_get_tunnel_token(c, &id, &tok, &e), WR_ERR_PROTO);
  assert_string_equal(e.msg, "illegal base64 data at input byte 0");
  assert_int_equal(wr_cfapi_get_tunnel_token(c, &id, &tok, &e), WR_ERR_PROTO);
  assert_string_equal(e.msg, UNEXPECTED "json: cannot unmarshal number into Go value of type string");
  assert_null(tok);

  wr_cfapi_active_clients cl;
  assert_int_equal(wr_cfapi_list_active_clients(c, &id, &cl, &e), WR_OK);
  assert_string_equal(s.url, BASE "/accounts/acct%201/cfd_tunnel/" TID "/connections");
  assert_string_equal(s.method, "GET");
  assert_int_equal(cl.n, 1);
  wr_cfapi_active_clients_free(&cl);
  /* The script is exhausted: a 404 without a body type. */
  assert_int_equal(wr_cfapi_get_tunnel(c, &id, &t, &e), WR_ERR_DENIED);
  assert_string_equal(e.msg, "not found");
  wr_cfapi_client_free(c);
}

static void test_route_calls(void **state) {
  (void)state;
  wr_cfapi_error e;
  wr_uuid id = U(TID), vid = U(VID);
  static const canned answers[] = {
      OKJ("{\"cname\":\"new\",\"name\":\"h.example.test\"}"),
      OKJ("{\"load_balancer\":\"new\",\"pool\":\"new\"}"),
      OKJ("{\"network\":\"10.0.0.0/8\",\"tunnel_id\":\"" TID "\"}"),
      OKJ("[]"),
      OKJ("null"),
      OKJ("{}"),
  };
  script s = {.answers = answers, .n = sizeof(answers) / sizeof(answers[0])};
  wr_cfapi_client *c = client_for(&s, BASE);

  wr_cfapi_dns_route d;
  assert_int_equal(wr_cfapi_route_dns(c, &id, "h", 1, &d, &e), WR_OK);
  assert_string_equal(s.method, "PUT");
  assert_string_equal(s.url, BASE "/zones/zone1/tunnels/" TID "/routes");
  assert_string_equal(s.body, "{\"type\":\"dns\",\"user_hostname\":\"h\",\"overwrite_existing\":true}");
  assert_string_equal(d.name, "h.example.test");
  wr_cfapi_dns_route_free(&d);
  wr_cfapi_lb_route lb;
  assert_int_equal(wr_cfapi_route_lb(c, &id, "lb.x", "p1", &lb, &e), WR_OK);
  assert_string_equal(s.body, "{\"type\":\"lb\",\"lb_name\":\"lb.x\",\"lb_pool\":\"p1\"}");
  wr_cfapi_lb_route_free(&lb);

  wr_cfapi_cidr net;
  assert_int_equal(wr_cfapi_cidr_parse("10.1.0.0/8", &net), WR_OK);
  assert_int_equal(wr_cfapi_add_route(c, &net, &id, "c", &vid, NULL, &e), WR_OK);
  assert_string_equal(s.method, "POST");
  assert_string_equal(s.url, BASE "/accounts/acct%201/teamnet/routes/network/10.0.0.0%252F8");
  assert_string_equal(s.body, "{\"tunnel_id\":\"" TID "\",\"comment\":\"c\",\"virtual_network_id\":\"" VID "\"}");

  wr_cfapi_routes rl;
  wr_cfapi_query q = {0};
  wr_cfapi_query_set(&q, "is_deleted", "false");
  assert_int_equal(wr_cfapi_list_routes(c, &q, &rl, &e), WR_OK);
  assert_string_equal(s.url, BASE "/accounts/acct%201/teamnet/routes?is_deleted=false");
  wr_cfapi_query_free(&q);
  wr_cfapi_routes_free(&rl);

  wr_cfapi_cidr net6;
  assert_int_equal(wr_cfapi_cidr_parse("fe80::/10", &net6), WR_OK);
  assert_int_equal(wr_cfapi_delete_route(c, &net6, &vid, NULL, &e), WR_OK);
  assert_string_equal(s.method, "DELETE");
  assert_string_equal(s.url, BASE "/accounts/acct%201/teamnet/routes/network/fe80::%252F10?virtual_network_id=" VID);

  wr_cfapi_ip ip;
  wr_cfapi_route r;
  assert_int_equal(wr_cfapi_ip_parse("::ffff:10.1.2.3", &ip), WR_OK);
  assert_int_equal(wr_cfapi_get_route_by_ip(c, &ip, NULL, &r, &e), WR_OK);
  assert_string_equal(s.method, "GET");
  assert_string_equal(s.url, BASE "/accounts/acct%201/teamnet/routes/ip/10.1.2.3");
  wr_cfapi_route_free(&r);
  wr_cfapi_client_free(c);
}

static void test_vnet_calls(void **state) {
  (void)state;
  wr_cfapi_error e;
  wr_uuid vid = U(VID);
  static const canned answers[] = {
      OKJ("{\"id\":\"" VID "\",\"name\":\"vn\",\"is_default_network\":true}"), OKJ("[]"), OKJ("null"), OKJ("null"),
      OKJ("null"), OKJ("[]"),
  };
  script s = {.answers = answers, .n = sizeof(answers) / sizeof(answers[0])};
  wr_cfapi_client *c = client_for(&s, BASE);
  wr_cfapi_vnet v;
  assert_int_equal(wr_cfapi_create_vnet(c, "vn", "hi", 1, &v, &e), WR_OK);
  assert_string_equal(s.method, "POST");
  assert_string_equal(s.url, BASE "/accounts/acct%201/teamnet/virtual_networks");
  assert_string_equal(s.body, "{\"name\":\"vn\",\"comment\":\"hi\",\"is_default\":true}");
  assert_true(v.is_default);
  wr_cfapi_vnet_free(&v);
  wr_cfapi_vnets l;
  wr_cfapi_query q = {0};
  wr_cfapi_query_set(&q, "is_deleted", "true");
  assert_int_equal(wr_cfapi_list_vnets(c, &q, &l, &e), WR_OK);
  assert_string_equal(s.url, BASE "/accounts/acct%201/teamnet/virtual_networks?is_deleted=true");
  wr_cfapi_query_free(&q);
  wr_cfapi_vnets_free(&l);
  assert_int_equal(wr_cfapi_delete_vnet(c, &vid, 1, NULL, &e), WR_OK);
  assert_string_equal(s.method, "DELETE");
  assert_string_equal(s.url, BASE "/accounts/acct%201/teamnet/virtual_networks/" VID "?force=true");
  assert_false(s.have_body);
  wr_cfapi_vnet_update u = {NULL, NULL, -1};
  assert_int_equal(wr_cfapi_update_vnet(c, &vid, &u, NULL, &e), WR_OK);
  assert_string_equal(s.method, "PATCH");
  assert_string_equal(s.url, BASE "/accounts/acct%201/teamnet/virtual_networks/" VID);
  assert_string_equal(s.body, "{}");
  wr_cfapi_vnet_update u2 = {"new", "c", 0};
  assert_int_equal(wr_cfapi_update_vnet(c, &vid, &u2, NULL, &e), WR_OK);
  assert_string_equal(s.body, "{\"name\":\"new\",\"comment\":\"c\",\"is_default_network\":false}");
  /* A list where a vnet is expected. */
  assert_int_equal(wr_cfapi_update_vnet(c, &vid, &u, &v, &e), WR_ERR_PROTO);
  assert_string_equal(e.msg, UNEXPECTED "json: cannot unmarshal array into Go value of type cfapi.VirtualNetwork");
  wr_cfapi_client_free(c);
}

/* ---- login -------------------------------------------------------------------------------------------- */

static int waits;
static void count_wait(void *ud) {
  (void)ud;
  waits++;
}

static void test_login(void **state) {
  (void)state;
  char *u = wr_cfapi_login_url(WR_CFAPI_LOGIN_URL, WR_CFAPI_LOGIN_CALLBACK_URL "uIizRArAF9cJdwUkxdq6MYLYxm55MomCjjDa6sYA_1s=");
  assert_string_equal(u, "https://dash.cloudflare.com/argotunnel?aud=&callback=https%3A%2F%2Flogin.cloudflareaccess.org%2F"
                         "uIizRArAF9cJdwUkxdq6MYLYxm55MomCjjDa6sYA_1s%3D");
  free(u);
  u = wr_cfapi_login_url("http://e/argotunnel?z=1&aud=x&b=%41+c;bad=%zz", "cb");
  assert_string_equal(u, "http://e/argotunnel?aud=&b=A+c&bad=%25zz&callback=cb&z=1");
  free(u);

  char key[64];
  wr_cfapi_error e;
  assert_int_equal(wr_cfapi_login_key(key, &e), WR_OK);
  assert_int_equal(strlen(key), 44);
  assert_int_equal(key[43], '=');
  assert_null(strpbrk(key, "+/"));

  static const canned answers[] = {{404, NULL, ""}, {200, NULL, ""}, {204, NULL, ""}, {200, NULL, "CERT"}};
  script s = {.answers = answers, .n = 4};
  wr_cfapi_login_poll p = {.url = "http://e/transfer/k", .waiting = count_wait, .transport = {exchange, &s}};
  uint8_t *body;
  size_t len;
  waits = 0;
  assert_int_equal(wr_cfapi_login_fetch(&p, &body, &len, &e), WR_OK);
  assert_int_equal(len, 4);
  assert_memory_equal(body, "CERT", 4);
  assert_int_equal(waits, 2); /* after the 404 and the 204, not after the empty 200 */
  assert_int_equal(s.calls, 4);
  assert_string_equal(s.url, "http://e/transfer/k");
  free(body);

  static const canned broken[] = {{502, NULL, "x"}};
  script s2 = {.answers = broken, .n = 1};
  p.transport.ud = &s2;
  assert_int_equal(wr_cfapi_login_fetch(&p, &body, &len, &e), WR_ERR_IO);
  assert_string_equal(e.msg, "error on request 502");
  script s3 = {.fail = "Get \"http://e/transfer/k\": EOF"};
  p.transport.ud = &s3;
  assert_int_equal(wr_cfapi_login_fetch(&p, &body, &len, &e), WR_ERR_IO);
  assert_string_equal(e.msg, "Get \"http://e/transfer/k\": EOF");
  script s4 = {.n = 0}; /* 404 for ever */
  p.transport.ud = &s4;
  assert_int_equal(wr_cfapi_login_fetch(&p, &body, &len, &e), WR_ERR_NOTFOUND);
  assert_string_equal(e.msg, "Failed to fetch resource");
  assert_int_equal(s4.calls, 10);
}

int main(void) {
  json_set_alloc_funcs(wr_xmalloc, free);
  return UNIT_RUN(
      NULL, NULL,
      UNIT_TESTS(test_envelope_decode, test_envelope_errors, test_response_result, test_error_wrap,
                 test_decode_tunnel, test_decode_tunnels, test_decode_active_clients,
                 test_decode_routes, test_decode_vnets, test_hostname_routes, test_time,
                 test_values, test_query, test_render_json, test_render_yaml_quoting,
                 test_render_yaml_layout, test_result_shapes, test_client_basics, test_tunnel_calls,
                 test_route_calls, test_vnet_calls, test_login));
}
