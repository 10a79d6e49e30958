/* Fuzzes the API client's answer decoding (src/cfapi/): the envelope and
 * cfapi's checks of an answer, every result decoder, the JSON and YAML
 * renderers over what decoded, and Go's value parsers.
 *
 * Input: one control byte, then the body of an HTTP answer. Control bits
 * 0-1 pick the status and Content-Type (200 JSON, 200 text, 404 JSON, 503
 * JSON), bit 2 whether the call wants its result, bits 3-5 the result type
 * the body's `result` is decoded as (Tunnel, []Tunnel, []ActiveClient,
 * DetailedRoute, []DetailedRoute, VirtualNetwork, []VirtualNetwork, DNS or
 * LB route result).
 *
 * Checks, besides ASan/UBSan:
 *  - an answer is WR_OK, WR_ERR_PROTO or WR_ERR_DENIED, with a message on
 *    error and e.status = the status;
 *  - a decoded result renders to JSON that jansson reads back, and to YAML
 *    that libyaml reads back when it is valid UTF-8 (strings that are not
 *    are written byte for byte, as warren always has);
 *  - the body as one Go value: an RFC 3339 time, a UUID, an IP or a CIDR
 *    that parses prints to text that parses to the same value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <yaml.h>

#include "cfapi/envelope.h"
#include "cfapi/login.h"
#include "cfapi/render.h"
#include "cfapi/render_int.h" /* wr__cfapi_utf8 */
#include "cfapi/routes.h"
#include "cfapi/time.h"
#include "cfapi/tunnels.h"
#include "cfapi/values.h"
#include "cfapi/vnets.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  json_set_alloc_funcs(wr_xmalloc, free); /* as the programs do */
  return 0;
}

/* Strictly valid UTF-8 (no overlong forms, surrogates or > U+10FFFF), as
 * libyaml wants its input. */
static int utf8_ok(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    uint32_t cp;
    int n = wr__cfapi_utf8(p, &cp);
    if (!n) return 0;
    p += n;
  }
  return 1;
}

/* libyaml reads the whole stream without an error. */
static int yaml_reads(const char *s) {
  yaml_parser_t p;
  yaml_event_t ev;
  int ok = 1, done = 0;
  yaml_parser_initialize(&p);
  yaml_parser_set_input_string(&p, (const unsigned char *)s, strlen(s));
  while (!done) {
    if (!yaml_parser_parse(&p, &ev)) {
      ok = 0;
      break;
    }
    done = ev.type == YAML_STREAM_END_EVENT;
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  return ok;
}

static void check_rendered(const wr_cfapi_node *json_tree, const wr_cfapi_node *yaml_tree) {
  char *js = wr_cfapi_render_json(json_tree);
  json_error_t je;
  json_t *back = json_loads(js, JSON_DECODE_ANY, &je);
  CHECK(back != NULL);
  json_decref(back);
  free(js);
  char *ys = wr_cfapi_render_yaml(yaml_tree);
  CHECK(ys[0] && ys[strlen(ys) - 1] == '\n');
  if (utf8_ok(ys)) CHECK(yaml_reads(ys));
  free(ys);
}

/* dr_<name>: decodes |res| as a wr_cfapi_<name> (wr_cfapi_decode_<name>);
 * if that works, renders it as JSON and YAML with |node| (in |a|) and frees
 * it (wr_cfapi_<name>_free). */
#define DECODE_RENDER(name, node)                                                   \
  static void dr_##name(const json_t *res, wr_arena *a) {                          \
    wr_cfapi_##name v;                                                             \
    wr_cfapi_error e;                                                              \
    if (wr_cfapi_decode_##name(res, &v, &e) == WR_OK) {                            \
      check_rendered(node(a, &v, WR_CFAPI_JSON), node(a, &v, WR_CFAPI_YAML));      \
      wr_cfapi_##name##_free(&v);                                                  \
    }                                                                              \
  }
DECODE_RENDER(tunnel, wr_cfapi_tunnel_with_token_node)
DECODE_RENDER(tunnels, wr_cfapi_tunnels_node)
DECODE_RENDER(active_clients, wr_cfapi_active_clients_node)
DECODE_RENDER(route, wr_cfapi_route_node)
DECODE_RENDER(routes, wr_cfapi_routes_node)
DECODE_RENDER(vnet, wr_cfapi_vnet_node)
DECODE_RENDER(vnets, wr_cfapi_vnets_node)

/* The result types 0-6 of the control byte, in its order. */
static void (*const decode_render[])(const json_t *res, wr_arena *a) = {
    dr_tunnel, dr_tunnels, dr_active_clients, dr_route, dr_routes, dr_vnet, dr_vnets,
};

/* Decodes |res| as result type |kind| and renders it; 7 and up: a DNS or
 * LB route result, summarised. */
static void decode_as(int kind, const json_t *res) {
  wr_arena a = {0};
  if ((size_t)kind < sizeof(decode_render) / sizeof(decode_render[0])) {
    decode_render[kind](res, &a);
    wr_arena_free(&a);
    return;
  }
  wr_cfapi_error e;
  wr_cfapi_dns_route d;
  wr_cfapi_lb_route lb;
  char *s = NULL;
  if (wr_cfapi_decode_dns_route(res, &d, &e) == WR_OK) {
    s = wr_cfapi_dns_route_summary(&d, "h.example");
    wr_cfapi_dns_route_free(&d);
    free(s);
  }
  if (wr_cfapi_decode_lb_route(res, &lb, &e) == WR_OK) {
    s = wr_cfapi_lb_route_summary(&lb, "lb", "pool");
    wr_cfapi_lb_route_free(&lb);
    free(s);
  }
}

/* The text as one Go value: what parses prints to what parses the same. */
static void values_round_trip(const char *s) {
  char out[WR_CFAPI_TIME_STRLEN], why[128];
  wr_cfapi_time t, t2;
  if (wr_cfapi_time_parse(s, &t) == WR_OK) {
    wr_cfapi_time_nano(&t, out);
    CHECK(wr_cfapi_time_parse(out, &t2) == WR_OK);
    CHECK(wr_cfapi_time_unix(&t) == wr_cfapi_time_unix(&t2) && t.nsec == t2.nsec && t.off_min == t2.off_min);
  }
  wr_uuid u, u2;
  if (wr_cfapi_uuid_parse(s, &u, why, sizeof(why)) == WR_OK) {
    char us[WR_UUID_STR_LEN + 1];
    wr_uuid_format(&u, us);
    CHECK(wr_cfapi_uuid_parse(us, &u2, why, sizeof(why)) == WR_OK && memcmp(&u, &u2, sizeof(u)) == 0);
  }
  wr_cfapi_ip ip, ip2;
  if (wr_cfapi_ip_parse(s, &ip) == WR_OK) {
    wr_cfapi_ip_str(&ip, out);
    CHECK(wr_cfapi_ip_parse(out, &ip2) == WR_OK && memcmp(ip.b, ip2.b, 16) == 0);
  }
  static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  wr_cfapi_cidr c, c2;
  if (wr_cfapi_cidr_parse(s, &c) == WR_OK) {
    wr_cfapi_cidr_str(&c, out);
    /* A v4-mapped IPv6 network prints as IPv4 with its IPv6 prefix length
     * ("1.2.3.0/120"), which does not parse back: a known difference from
     * Go's IPNet.String, kept for byte-identical output. */
    if (c.ip.len == 16 && memcmp(c.ip.b, v4_mapped, 12) == 0) return;
    CHECK(wr_cfapi_cidr_parse(out, &c2) == WR_OK && c.bits == c2.bits && c.ip.len == c2.ip.len &&
          memcmp(c.ip.b, c2.ip.b, 16) == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const struct {
    int status;
    const char *ctype;
  } answers[] = {{200, "application/json"}, {200, "text/plain"}, {404, "application/json"}, {503, "application/json"}};
  if (size < 1) return 0;
  uint8_t ctl = data[0];
  const uint8_t *body = data + 1;
  size_t len = size - 1;

  wr_cfapi_error e;
  json_t *res = NULL;
  wr_cfapi_response r = {answers[ctl & 3].status, answers[ctl & 3].ctype, body, len};
  int want = (ctl >> 2) & 1;
  memset(&e, 0, sizeof(e));
  int rv = wr_cfapi_response_result(&r, "fuzz", want, &res, &e);
  CHECK(rv == WR_OK || rv == WR_ERR_PROTO || rv == WR_ERR_DENIED);
  CHECK(e.status == r.status);
  CHECK(rv == WR_OK || e.msg[0] != '\0');
  CHECK(rv != WR_OK || !want || r.status != 200 || res != NULL);
  if (res) decode_as((ctl >> 3) & 7, res);
  json_decref(res);

  /* The body as a plain string. */
  char *s = wr_xstrndup((const char *)body, len);
  values_round_trip(s);
  /* (No check that aud= and callback= made it: a login URL with 15 or more
   * query pairs fills wr_cfapi_query, which then drops them; kept as is.) */
  char *url = wr_cfapi_login_url(s, "https://login.example/key=");
  CHECK(strncmp(url, s, strcspn(s, "?")) == 0);
  free(url);
  wr_arena a = {0};
  wr_cfapi_node *o = wr_cfapi_node_obj(&a);
  wr_cfapi_node_put(o, "name", wr_cfapi_node_str(&a, s));
  wr_cfapi_node_push(wr_cfapi_node_put(o, "list", wr_cfapi_node_arr(&a)), wr_cfapi_node_str(&a, s));
  check_rendered(o, o);
  wr_arena_free(&a);
  free(s);
  return 0;
}
