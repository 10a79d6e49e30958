/* src/lib/credentials.c: tunnel credentials JSON, tunnel tokens, cert.pem
 * and the default search directories, checked against cloudflared's golden
 * values (protocol.md 8.1-8.3), its cert.pem fixtures and error texts, Go's
 * encoding/pem and encoding/json quirks, and jansson allocation failures. */
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/credentials.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/file.h"
#include "unit.h"

/* ---- jansson allocation accounting ---------------------------------------
 * Every jansson allocation goes through these, so each test can assert that
 * a call left nothing behind (on success and on every error path) and the
 * OOM test can fail the Nth allocation. */
static long j_live, j_calls, j_fail_at = -1;

static void *j_malloc(size_t n) {
  if (j_calls++ == j_fail_at) return NULL;
  void *p = malloc(n);
  if (p) j_live++;
  return p;
}
static void j_free(void *p) {
  if (p) j_live--;
  free(p);
}

#define assert_contains(hay, needle)                                                  \
  do {                                                                                \
    if (!strstr((hay), (needle)))                                                     \
      fail_msg("expected \"%s\" to contain \"%s\"", (hay), (needle));                 \
  } while (0)

static void assert_no_jansson_leak(void) { assert_int_equal(j_live, 0); }

/* ---- golden values -------------------------------------------------------- */

#define GOLDEN_JSON                                                                      \
  "{\"AccountTag\":\"0123456789abcdef0123456789abcdef\",\"TunnelSecret\":"               \
  "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"TunnelID\":\"aaaaaaaa-bbbb-cccc-" \
  "dddd-eeeeeeeeeeee\"}"
#define GOLDEN_TOKEN                                                                     \
  "eyJhIjoiMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYiLCJzIjoiQUFFQ0F3UUZCZ2NJQ1FvTERB" \
  "ME9EeEFSRWhNVUZSWVhHQmthR3h3ZEhoOD0iLCJ0IjoiYWFhYWFhYWEtYmJiYi1jY2NjLWRkZGQtZWVlZWVl" \
  "ZWVlZWVlIn0="

static void golden_credentials(wr_credentials *c) {
  memset(c, 0, sizeof(*c));
  strcpy(c->account_tag, "0123456789abcdef0123456789abcdef");
  for (int i = 0; i < 32; i++) c->secret[i] = (uint8_t)i;
  c->secret_len = 32;
  assert_int_equal(wr_uuid_parse("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", 36, &c->tunnel_id), 0);
  c->has_tunnel_id = 1;
}

static void assert_cred_equal(const wr_credentials *a, const wr_credentials *b) {
  assert_string_equal(a->account_tag, b->account_tag);
  assert_int_equal(a->secret_len, b->secret_len);
  assert_memory_equal(a->secret, b->secret, a->secret_len);
  assert_int_equal(a->has_tunnel_id, b->has_tunnel_id);
  if (a->has_tunnel_id) assert_memory_equal(a->tunnel_id.b, b->tunnel_id.b, 16);
  assert_string_equal(a->endpoint, b->endpoint);
}

static void assert_cred_wiped(const wr_credentials *c) {
  static const wr_credentials zero;
  assert_memory_equal(c, &zero, sizeof(zero));
}

static int cred_parse(const char *json, wr_credentials *c, char *err, size_t errlen) {
  return wr_credentials_parse(json, strlen(json), c, err, errlen);
}

/* wr_credentials_parse or wr_token_parse. */
typedef int (*cred_parser)(const char *in, size_t len, wr_credentials *out, char *err,
                           size_t errlen);

/* |parse| of |in| succeeds and gives the golden credentials, left in *c. */
static void assert_parses_golden(cred_parser parse, const char *in, wr_credentials *c) {
  wr_credentials want;
  char err[256] = "";
  golden_credentials(&want);
  assert_int_equal(parse(in, strlen(in), c, err, sizeof(err)), 0);
  assert_cred_equal(c, &want);
}

/* A throwaway P-256 key (PKCS#8) and self-signed certificate, generated for
 * these tests only, standing in for the legacy blocks of a real cert.pem. */
#define TEST_KEY                                                       \
  "-----BEGIN PRIVATE KEY-----\n"                                      \
  "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgzUfC7AF7IqZkgjM/\n" \
  "Gnd6sdlfdcHY/+txY6NXR4X+28+hRANCAASaf2qE8exsQ0tMB+ycHJqpjylzkOoA\n" \
  "X/go3XIhM5fHfwnKJsXm8gsFG3n5TQOcTf5sD9wrgs2OkM6Psu73gR73\n"         \
  "-----END PRIVATE KEY-----\n"
#define TEST_CERT                                                      \
  "-----BEGIN CERTIFICATE-----\n"                                      \
  "MIIBgjCCASmgAwIBAgIUa+0n6xafRBsli0mNEspn/Vo2x+wwCgYIKoZIzj0EAwIw\n" \
  "FjEUMBIGA1UEAwwLd2FycmVuLXRlc3QwIBcNMjYxMTIyMDIyOTI1WhgPMjEyNjEw\n" \
  "MjkwMjI5MjVaMBYxFDASBgNVBAMMC3dhcnJlbi10ZXN0MFkwEwYHKoZIzj0CAQYI\n" \
  "KoZIzj0DAQcDQgAEmn9qhPHsbENLTAfsnByaqY8pc5DqAF/4KN1yITOXx38JyibF\n" \
  "5vILBRt5+U0DnE3+bA/cK4LNjpDOj7Lu94Ee96NTMFEwHQYDVR0OBBYEFFafGrjD\n" \
  "9CtVPrc0DQBA3yhnaIdqMB8GA1UdIwQYMBaAFFafGrjD9CtVPrc0DQBA3yhnaIdq\n" \
  "MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgPiuCUoar34t0b4Fh\n" \
  "ryNZd3XEXmp2Iwt6QlHfSEed3XACICCmBCskz3O6/GHRuzR2ofkrGeXIec2AD5FO\n" \
  "w1nT/nIP\n"                                                         \
  "-----END CERTIFICATE-----\n"
#define TEST_EC_KEY                                                    \
  "-----BEGIN EC PRIVATE KEY-----\n"                                   \
  "MHcCAQEEIM1HwuwBeyKmZIIzPxp3erHZX3XB2P/rcWOjV0eF/tvPoAoGCCqGSM49\n" \
  "AwEHoUQDQgAEmn9qhPHsbENLTAfsnByaqY8pc5DqAF/4KN1yITOXx38JyibF5vIL\n" \
  "BRt5+U0DnE3+bA/cK4LNjpDOj7Lu94Ee9w==\n"                             \
  "-----END EC PRIVATE KEY-----\n"
/* cloudflared's test-cloudflare-tunnel-cert-json.pem token: base64 of
 * {"zoneID": "7b0a4d77dfb881c1a3b7d61ea9443e19", "apiToken": "test-service-key",
 *  "accountID": "abcdabcdabcdabcd1234567890abcdef"}, wrapped at 76. */
#define FIXTURE_TOKEN                                                                \
  "-----BEGIN ARGO TUNNEL TOKEN-----\n"                                              \
  "eyJ6b25lSUQiOiAiN2IwYTRkNzdkZmI4ODFjMWEzYjdkNjFlYTk0NDNlMTkiLCAiYXBpVG9rZW4i\n"   \
  "OiAidGVzdC1zZXJ2aWNlLWtleSIsICJhY2NvdW50SUQiOiAiYWJjZGFiY2RhYmNkYWJjZDEyMzQ1\n"   \
  "Njc4OTBhYmNkZWYifQ==\n"                                                           \
  "-----END ARGO TUNNEL TOKEN-----\n"
#define FIXTURE_PEM TEST_KEY TEST_CERT FIXTURE_TOKEN
/* The same token as wr_origin_cert_encode writes it: compact, HEAD's key
 * order, 64-character lines. */
#define ENCODED_TOKEN                                                  \
  "-----BEGIN ARGO TUNNEL TOKEN-----\n"                                \
  "eyJ6b25lSUQiOiI3YjBhNGQ3N2RmYjg4MWMxYTNiN2Q2MWVhOTQ0M2UxOSIsImFj\n" \
  "Y291bnRJRCI6ImFiY2RhYmNkYWJjZGFiY2QxMjM0NTY3ODkwYWJjZGVmIiwiYXBp\n" \
  "VG9rZW4iOiJ0ZXN0LXNlcnZpY2Uta2V5In0=\n"                             \
  "-----END ARGO TUNNEL TOKEN-----\n"

/* Wraps |json| as one ARGO TUNNEL TOKEN block; caller frees. */
static char *token_block(const char *type, const char *json) {
  size_t n = strlen(json);
  char *b64 = malloc(WR_BASE64_ENCODED_SIZE(n));
  wr_base64_encode((const uint8_t *)json, n, b64, WR_BASE64_ENCODED_SIZE(n), 1);
  size_t size = strlen(b64) + 2 * strlen(type) + 64;
  char *out = malloc(size);
  snprintf(out, size, "-----BEGIN %s-----\n%s\n-----END %s-----\n", type, b64, type);
  free(b64);
  return out;
}

static char *b64_of(const char *s) {
  size_t n = strlen(s);
  char *out = malloc(WR_BASE64_ENCODED_SIZE(n));
  wr_base64_encode((const uint8_t *)s, n, out, WR_BASE64_ENCODED_SIZE(n), 1);
  return out;
}

static char *concat3(const char *a, const char *b, const char *c) {
  size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
  char *out = malloc(n);
  snprintf(out, n, "%s%s%s", a, b, c);
  return out;
}

/* ---- credentials JSON ----------------------------------------------------- */

static void test_cred_golden(void **state) {
  (void)state;
  wr_credentials c;
  assert_parses_golden(wr_credentials_parse, GOLDEN_JSON, &c);
  char *json = wr_credentials_to_json(&c);
  assert_non_null(json);
  assert_string_equal(json, GOLDEN_JSON);
  free(json);
  assert_no_jansson_leak();
}

static void test_cred_vector(void **state) {
  (void)state;
  size_t len;
  char *vec = (char *)unit_read_vector("quic/credentials.json", &len);
  wr_credentials c;
  char err[256] = "";
  assert_int_equal(wr_credentials_parse(vec, len, &c, err, sizeof(err)), 0);
  assert_string_equal(c.account_tag, "acct123");
  assert_int_equal(c.secret_len, 32);
  assert_true(c.has_tunnel_id);
  char id[37];
  wr_uuid_format(&c.tunnel_id, id);
  assert_string_equal(id, "0c9cd40e-166a-439f-8bd1-fcef1cfb28f1");
  /* cloudflared writes it compact; the file only adds a final newline. */
  char *json = wr_credentials_to_json(&c);
  while (len && vec[len - 1] == '\n') vec[--len] = '\0';
  assert_string_equal(json, vec);
  free(json);
  free(vec);
  assert_no_jansson_leak();
}

static void test_cred_go_key_matching(void **state) {
  (void)state;
  wr_credentials c;
  char err[256] = "";
  /* encoding/json matches keys case-insensitively, ignores unknown keys
   * (Cloudflare's own files carry TunnelName), and the last duplicate wins. */
  assert_parses_golden(wr_credentials_parse,
                       "{\"accounttag\":\"x\",\"TUNNELSECRET\":\"AAECAwQFBgcICQoLDA0ODxAREh"
                       "MUFRYXGBkaGxwdHh8=\",\"tunnelID\":\"AAAAAAAA-BBBB-CCCC-DDDD-EEEEEE"
                       "EEEEEE\",\"TunnelName\":\"t\",\"More\":{\"a\":[1,2.5,null,true]},"
                       "\"AccountTag\":\"0123456789abcdef0123456789abcdef\"}",
                       &c);
  /* U+017F LATIN SMALL LETTER LONG S folds to 's' in Go; raw and escaped. */
  assert_int_equal(cred_parse("{\"AccountTag\":\"a\",\"Tunnel\xc5\xbf" "ecret\":\"AAAA\"}", &c,
                              err, sizeof(err)),
                   0);
  assert_int_equal(c.secret_len, 3);
  assert_int_equal(cred_parse("{\"AccountTag\":\"a\",\"Tunnel\\u017Fecret\":\"AAAA\"}", &c, err,
                              sizeof(err)),
                   0);
  /* But not other look-alikes, and not a prefix or an extension of a key. */
  assert_int_equal(cred_parse("{\"AccountTag\":\"a\",\"Tunnel\xc3\x9f" "ecret\":\"AAAA\"}", &c,
                              err, sizeof(err)),
                   WR_ERR_PROTO);
  assert_contains(err, "TunnelSecret is missing");
  assert_int_equal(cred_parse("{\"AccountTag\":\"a\",\"TunnelSecre\":\"AAAA\"}", &c, err,
                              sizeof(err)),
                   WR_ERR_PROTO);
  assert_int_equal(cred_parse("{\"AccountTag\":\"a\",\"TunnelSecrets\":\"AAAA\"}", &c, err,
                              sizeof(err)),
                   WR_ERR_PROTO);
  /* null leaves a string alone (Go), so the earlier value stays. */
  assert_int_equal(cred_parse("{\"AccountTag\":\"a\",\"accountTag\":null,\"TunnelSecret\":"
                              "\"AAAA\",\"TunnelID\":null}",
                              &c, err, sizeof(err)),
                   0);
  assert_string_equal(c.account_tag, "a");
  assert_false(c.has_tunnel_id);
  /* ...but empties a []byte. */
  assert_int_equal(cred_parse("{\"AccountTag\":\"a\",\"TunnelSecret\":\"AAAA\",\"tunnelsecret\":"
                              "null}",
                              &c, err, sizeof(err)),
                   WR_ERR_PROTO);
  assert_contains(err, "TunnelSecret is missing or empty");
  /* Go's base64 decoder skips CR/LF inside the string and tolerates
   * non-zero unused bits in the last quantum. */
  assert_int_equal(cred_parse("{\"AccountTag\":\"a\",\"TunnelSecret\":\"AA\\r\\nAA\"}", &c, err,
                              sizeof(err)),
                   0);
  assert_int_equal(c.secret_len, 3);
  assert_int_equal(cred_parse("{\"AccountTag\":\"a\",\"TunnelSecret\":\"AB==\"}", &c, err,
                              sizeof(err)),
                   0);
  assert_int_equal(c.secret_len, 1);
  assert_int_equal(c.secret[0], 0);
  assert_int_equal(cred_parse("{\"AccountTag\":\"a\",\"TunnelSecret\":\"AAB=\"}", &c, err,
                              sizeof(err)),
                   0);
  assert_int_equal(c.secret_len, 2);
  assert_no_jansson_leak();
}

static void test_cred_optional_fields(void **state) {
  (void)state;
  wr_credentials c;
  char err[256] = "", id[37];
  /* Old files have no TunnelID; cloudflared fills it from the command line
   * and, writing such a struct, emits the zero UUID. */
  assert_int_equal(cred_parse("{\"AccountTag\":\"acct\",\"TunnelSecret\":\"AAAA\"}", &c, err,
                              sizeof(err)),
                   0);
  assert_false(c.has_tunnel_id);
  assert_string_equal(c.endpoint, "");
  char *json = wr_credentials_to_json(&c);
  assert_string_equal(json, "{\"AccountTag\":\"acct\",\"TunnelSecret\":\"AAAA\",\"TunnelID\":"
                            "\"00000000-0000-0000-0000-000000000000\"}");
  free(json);
  /* HEAD's Endpoint is read and written last, only when set. */
  assert_int_equal(cred_parse("{\"Endpoint\":\"fed\",\"AccountTag\":\"acct\",\"TunnelSecret\":"
                              "\"AAAA\",\"TunnelID\":\"0c9cd40e-166a-439f-8bd1-fcef1cfb28f1\"}",
                              &c, err, sizeof(err)),
                   0);
  assert_string_equal(c.endpoint, "fed");
  json = wr_credentials_to_json(&c);
  assert_string_equal(json, "{\"AccountTag\":\"acct\",\"TunnelSecret\":\"AAAA\",\"TunnelID\":"
                            "\"0c9cd40e-166a-439f-8bd1-fcef1cfb28f1\",\"Endpoint\":\"fed\"}");
  free(json);
  /* Every form Go's uuid.Parse accepts; we always write the canonical one. */
  static const char *const forms[] = {
      "0C9CD40E-166A-439F-8BD1-FCEF1CFB28F1",
      "urn:uuid:0c9cd40e-166a-439f-8bd1-fcef1cfb28f1",
      "URN:UUID:0c9cd40e-166a-439f-8bd1-fcef1cfb28f1",
      "{0c9cd40e-166a-439f-8bd1-fcef1cfb28f1}",
      "0c9cd40e166a439f8bd1fcef1cfb28f1",
  };
  for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
    char in[256];
    snprintf(in, sizeof(in), "{\"AccountTag\":\"a\",\"TunnelSecret\":\"AAAA\",\"TunnelID\":\"%s\"}",
             forms[i]);
    assert_int_equal(cred_parse(in, &c, err, sizeof(err)), 0);
    wr_uuid_format(&c.tunnel_id, id);
    assert_string_equal(id, "0c9cd40e-166a-439f-8bd1-fcef1cfb28f1");
  }
  /* The largest values we hold round-trip. */
  memset(&c, 0, sizeof(c));
  memset(c.account_tag, 'x', WR_CRED_MAX_FIELD - 1);
  memset(c.secret, 0xa5, WR_CRED_MAX_SECRET);
  c.secret_len = WR_CRED_MAX_SECRET;
  json = wr_credentials_to_json(&c);
  assert_non_null(json);
  wr_credentials back;
  assert_int_equal(cred_parse(json, &back, err, sizeof(err)), 0);
  assert_string_equal(back.account_tag, c.account_tag);
  assert_int_equal(back.secret_len, WR_CRED_MAX_SECRET);
  assert_memory_equal(back.secret, c.secret, WR_CRED_MAX_SECRET);
  free(json);
  /* Unrepresentable structs give NULL rather than a truncated file. */
  c.secret_len = WR_CRED_MAX_SECRET + 1;
  assert_null(wr_credentials_to_json(&c));
  c.secret_len = 1;
  memset(c.account_tag, 'x', sizeof(c.account_tag)); /* no NUL */
  assert_null(wr_credentials_to_json(&c));
  strcpy(c.account_tag, "\xff\xfe"); /* not UTF-8 */
  assert_null(wr_credentials_to_json(&c));
  assert_null(wr_credentials_to_json(NULL));
  assert_no_jansson_leak();
}

typedef struct bad_case {
  const char *json;
  const char *msg;
} bad_case;

static void test_cred_errors(void **state) {
  (void)state;
  static const bad_case cases[] = {
      {"", "invalid JSON"},
      {"   ", "invalid JSON"},
      {"{", "invalid JSON"},
      {"[]", "expected a JSON object"},
      {"\"AccountTag\"", "invalid JSON"},
      {"null", "invalid JSON"},
      {GOLDEN_JSON " x", "invalid JSON"},
      {GOLDEN_JSON GOLDEN_JSON, "invalid JSON"},
      {"{\"AccountTag\":\"\xff\",\"TunnelSecret\":\"AAAA\"}", "invalid JSON"},
      {"{\"AccountTag\":5,\"TunnelSecret\":\"AAAA\"}", "AccountTag must be a string"},
      {"{\"AccountTag\":true,\"TunnelSecret\":\"AAAA\"}", "AccountTag must be a string"},
      {"{\"AccountTag\":\"a\",\"TunnelSecret\":[0,1]}", "TunnelSecret must be a string"},
      {"{\"AccountTag\":\"a\",\"TunnelSecret\":\"AAAA\",\"TunnelID\":true}",
       "TunnelID must be a string"},
      {"{\"AccountTag\":\"a\",\"TunnelSecret\":\"AAAA\",\"Endpoint\":{}}",
       "Endpoint must be a string"},
      {"{\"AccountTag\":\"a\",\"TunnelSecret\":\"AAA\"}", "TunnelSecret is not valid base64"},
      {"{\"AccountTag\":\"a\",\"TunnelSecret\":\"AA$A\"}", "TunnelSecret is not valid base64"},
      {"{\"AccountTag\":\"a\",\"TunnelSecret\":\"A===\"}", "TunnelSecret is not valid base64"},
      {"{\"AccountTag\":\"a\",\"TunnelSecret\":\"AA==AA==\"}", "TunnelSecret is not valid base64"},
      {"{\"AccountTag\":\"a\",\"TunnelSecret\":\"AA AA\"}", "TunnelSecret is not valid base64"},
      {"{\"AccountTag\":\"a\",\"TunnelSecret\":\"AAAA\",\"TunnelID\":\"aaaaaaaa-bbbb-cccc-dddd-"
       "eeeeeeeeeee\"}",
       "is not a valid UUID"},
      {"{\"AccountTag\":\"a\",\"TunnelSecret\":\"AAAA\",\"TunnelID\":\"aaaaaaaa-bbbb-cccc-dddd-"
       "eeeeeeeeeeeg\"}",
       "is not a valid UUID"},
      {"{\"AccountTag\":\"a\",\"TunnelSecret\":\"AAAA\",\"TunnelID\":\"aaaaaaaa_bbbb-cccc-dddd-"
       "eeeeeeeeeeee\"}",
       "is not a valid UUID"},
      {"{\"AccountTag\":\"a\",\"TunnelSecret\":\"AAAA\",\"TunnelID\":\"(aaaaaaaa-bbbb-cccc-dddd-"
       "eeeeeeeeeeee)\"}",
       "is not a valid UUID"},
      {"{\"AccountTag\":\"a\",\"TunnelSecret\":\"AAAA\",\"TunnelID\":\"urn:uuix:aaaaaaaa-bbbb-"
       "cccc-dddd-eeeeeeeeeeee\"}",
       "is not a valid UUID"},
      {"{\"AccountTag\":\"a\",\"TunnelSecret\":\"AAAA\",\"TunnelID\":\"\"}", "is not a valid UUID"},
      {"{\"AccountTag\":\"a\\u0000b\",\"TunnelSecret\":\"AAAA\"}", "AccountTag contains a NUL"},
      {"{\"TunnelSecret\":\"AAAA\"}", "AccountTag is missing or empty"},
      {"{\"AccountTag\":\"\",\"TunnelSecret\":\"AAAA\"}", "AccountTag is missing or empty"},
      {"{\"AccountTag\":null,\"TunnelSecret\":\"AAAA\"}", "AccountTag is missing or empty"},
      {"{\"AccountTag\":\"a\"}", "TunnelSecret is missing or empty"},
      {"{\"AccountTag\":\"a\",\"TunnelSecret\":\"\"}", "TunnelSecret is missing or empty"},
      {"{}", "AccountTag is missing or empty"},
  };
  char err[256];
  wr_credentials c;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    memset(&c, 0x55, sizeof(c));
    err[0] = '\0';
    int rv = cred_parse(cases[i].json, &c, err, sizeof(err));
    if (rv != WR_ERR_PROTO) fail_msg("case %zu (%s): rv %d", i, cases[i].json, rv);
    assert_contains(err, cases[i].msg);
    assert_cred_wiped(&c);
    assert_no_jansson_leak();
  }

  /* Every truncation of a valid file fails cleanly. */
  const char *g = GOLDEN_JSON;
  for (size_t n = 0; n < strlen(g); n++) {
    assert_int_equal(wr_credentials_parse(g, n, &c, err, sizeof(err)), WR_ERR_PROTO);
    assert_no_jansson_leak();
  }

  /* Values too large to hold. */
  char *big = malloc(WR_CRED_MAX_FILE + 64);
  snprintf(big, 64, "{\"AccountTag\":\"");
  size_t o = strlen(big);
  memset(big + o, 'a', WR_CRED_MAX_FIELD);
  o += WR_CRED_MAX_FIELD;
  strcpy(big + o, "\",\"TunnelSecret\":\"AAAA\"}");
  assert_int_equal(cred_parse(big, &c, err, sizeof(err)), WR_ERR_PROTO);
  assert_contains(err, "AccountTag is longer than 255 bytes");
  /* 255 bytes is still fine. */
  memmove(big + o - 1, big + o, strlen(big + o) + 1);
  assert_int_equal(cred_parse(big, &c, err, sizeof(err)), 0);
  assert_int_equal(strlen(c.account_tag), WR_CRED_MAX_FIELD - 1);

  uint8_t raw[WR_CRED_MAX_SECRET + 3];
  char b64[WR_BASE64_ENCODED_SIZE(sizeof(raw))];
  memset(raw, 7, sizeof(raw));
  wr_base64_encode(raw, WR_CRED_MAX_SECRET + 1, b64, sizeof(b64), 1);
  snprintf(big, WR_CRED_MAX_FILE, "{\"AccountTag\":\"a\",\"TunnelSecret\":\"%s\"}", b64);
  assert_int_equal(cred_parse(big, &c, err, sizeof(err)), WR_ERR_PROTO);
  assert_contains(err, "decodes to more than 256 bytes");
  wr_base64_encode(raw, WR_CRED_MAX_SECRET, b64, sizeof(b64), 1);
  snprintf(big, WR_CRED_MAX_FILE, "{\"AccountTag\":\"a\",\"TunnelSecret\":\"%s\"}", b64);
  assert_int_equal(cred_parse(big, &c, err, sizeof(err)), 0);
  assert_int_equal(c.secret_len, WR_CRED_MAX_SECRET);

  /* Oversize input is refused before parsing, even if it is valid JSON. */
  memset(big, ' ', WR_CRED_MAX_FILE + 1);
  memcpy(big, GOLDEN_JSON, strlen(GOLDEN_JSON));
  assert_int_equal(wr_credentials_parse(big, WR_CRED_MAX_FILE, &c, err, sizeof(err)), 0);
  assert_int_equal(wr_credentials_parse(big, WR_CRED_MAX_FILE + 1, &c, err, sizeof(err)),
                   WR_ERR_PROTO);
  assert_contains(err, "larger than 65536 bytes");
  free(big);

  /* No error buffer, or a tiny one, is fine. */
  assert_int_equal(cred_parse("{}", &c, NULL, 0), WR_ERR_PROTO);
  assert_int_equal(cred_parse("{}", &c, err, 0), WR_ERR_PROTO);
  char tiny[8];
  assert_int_equal(cred_parse("{}", &c, tiny, sizeof(tiny)), WR_ERR_PROTO);
  assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
  assert_no_jansson_leak();
}

/* ---- token ---------------------------------------------------------------- */

static void test_token_golden(void **state) {
  (void)state;
  wr_credentials c, want;
  char err[256] = "";
  assert_parses_golden(wr_token_parse, GOLDEN_TOKEN, &c);
  golden_credentials(&want);
  char *tok = wr_token_encode(&want);
  assert_string_equal(tok, GOLDEN_TOKEN);
  free(tok);
  /* A token pasted with a line ending still decodes (Go skips CR/LF). */
  assert_parses_golden(wr_token_parse, GOLDEN_TOKEN "\r\n", &c);

  /* HEAD's "e" follows "t" and survives a round trip. */
  strcpy(want.endpoint, "fed");
  tok = wr_token_encode(&want);
  assert_non_null(tok);
  uint8_t json[512];
  int n = wr_base64_decode(tok, strlen(tok), json, sizeof(json), 0);
  assert_true(n > 0);
  json[n] = '\0';
  assert_string_equal((char *)json,
                      "{\"a\":\"0123456789abcdef0123456789abcdef\",\"s\":\"AAECAwQFBgcICQoLDA0ODx"
                      "AREhMUFRYXGBkaGxwdHh8=\",\"t\":\"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\","
                      "\"e\":\"fed\"}");
  assert_int_equal(wr_token_parse(tok, strlen(tok), &c, err, sizeof(err)), 0);
  assert_cred_equal(&c, &want);
  free(tok);

  /* Keys are matched case-insensitively here too. */
  char *t2 =
      b64_of("{\"A\":\"acct\",\"S\":\"AAAA\",\"T\":\"0c9cd40e-166a-439f-8bd1-fcef1cfb28f1\"}");
  assert_int_equal(wr_token_parse(t2, strlen(t2), &c, err, sizeof(err)), 0);
  assert_string_equal(c.account_tag, "acct");
  assert_true(c.has_tunnel_id);
  free(t2);
  assert_no_jansson_leak();
}

static void test_token_errors(void **state) {
  (void)state;
  wr_credentials c;
  char err[256];
  static const bad_case cases[] = {
      {"{\"a\":\"acct\",\"t\":\"0c9cd40e-166a-439f-8bd1-fcef1cfb28f1\"}",
       "token: \"s\" (TunnelSecret) is missing or empty"},
      {"{\"s\":\"AAAA\"}", "token: \"a\" (AccountTag) is missing or empty"},
      {"{\"a\":1,\"s\":\"AAAA\"}", "token: \"a\" (AccountTag) must be a string"},
      {"{\"a\":\"x\",\"s\":\"AA\"}", "token: \"s\" (TunnelSecret) is not valid base64"},
      {"{\"a\":\"x\",\"s\":\"AAAA\",\"t\":\"nope\"}", "token: \"t\" (TunnelID) \"nope\" is not a"},
      {"not json", "token: invalid JSON"},
      {"", "token: invalid JSON"},
      {"[1]", "token: expected a JSON object"},
      /* The credentials-file spelling is not the token's. */
      {GOLDEN_JSON, "token: \"a\" (AccountTag) is missing"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *t = b64_of(cases[i].json);
    memset(&c, 0x55, sizeof(c));
    err[0] = '\0';
    int rv = wr_token_parse(t, strlen(t), &c, err, sizeof(err));
    if (rv != WR_ERR_PROTO) fail_msg("case %zu (%s): rv %d", i, cases[i].json, rv);
    assert_contains(err, cases[i].msg);
    assert_cred_wiped(&c);
    free(t);
    assert_no_jansson_leak();
  }
  static const char *const bad_b64[] = {
      "!!!!",
      /* padding is mandatory (StdEncoding) */
      "eyJhIjoiMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYiLCJzIjoiQUFFQ0F3UUZCZ2NJQ1FvTERBME9E"
      "eEFSRWhNVUZSWVhHQmthR3h3ZEhoOD0iLCJ0IjoiYWFhYWFhYWEtYmJiYi1jY2NjLWRkZGQtZWVlZWVlZWVlZWVl"
      "In0",
      GOLDEN_TOKEN " ",
      " " GOLDEN_TOKEN,
      GOLDEN_TOKEN "=",
      "eyJ=eyJ=",
      "a",
  };
  for (size_t i = 0; i < sizeof(bad_b64) / sizeof(bad_b64[0]); i++) {
    assert_int_equal(wr_token_parse(bad_b64[i], strlen(bad_b64[i]), &c, err, sizeof(err)),
                     WR_ERR_PROTO);
    assert_contains(err, "token is not valid base64");
    assert_cred_wiped(&c);
  }
  /* Every truncation of the golden token fails. */
  for (size_t n = 0; n < strlen(GOLDEN_TOKEN); n++)
    assert_int_equal(wr_token_parse(GOLDEN_TOKEN, n, &c, err, sizeof(err)), WR_ERR_PROTO);
  char *big = malloc(WR_CRED_MAX_FILE + 1);
  memset(big, 'A', WR_CRED_MAX_FILE + 1);
  assert_int_equal(wr_token_parse(big, WR_CRED_MAX_FILE + 1, &c, err, sizeof(err)), WR_ERR_PROTO);
  assert_contains(err, "token is larger than");
  free(big);
  assert_null(wr_token_encode(NULL));
  assert_no_jansson_leak();
}

/* ---- cert.pem ------------------------------------------------------------- */

static void assert_fixture_cert(const wr_origin_cert *c) {
  assert_string_equal(c->zone_id, "7b0a4d77dfb881c1a3b7d61ea9443e19");
  assert_string_equal(c->account_id, "abcdabcdabcdabcd1234567890abcdef");
  assert_string_equal(c->api_token, "test-service-key");
  assert_string_equal(c->endpoint, "");
}

static int cert_parse(const char *pem, wr_origin_cert *c, char *err, size_t errlen) {
  return wr_origin_cert_parse(pem, strlen(pem), c, err, errlen);
}

static void expect_cert_ok(const char *pem) {
  wr_origin_cert c;
  char err[512] = "";
  int rv = cert_parse(pem, &c, err, sizeof(err));
  if (rv != 0) fail_msg("rv %d: %s\n--- input:\n%s", rv, err, pem);
  assert_fixture_cert(&c);
  assert_no_jansson_leak();
}

static void expect_cert_err(const char *pem, const char *msg) {
  wr_origin_cert c;
  char err[512] = "";
  memset(&c, 0x55, sizeof(c));
  int rv = cert_parse(pem, &c, err, sizeof(err));
  if (rv != WR_ERR_PROTO) fail_msg("rv %d, want error \"%s\"\n--- input:\n%s", rv, msg, pem);
  assert_contains(err, msg);
  static const wr_origin_cert zero;
  assert_memory_equal(&c, &zero, sizeof(zero));
  assert_no_jansson_leak();
}

static void test_cert_fixture(void **state) {
  (void)state;
  expect_cert_ok(FIXTURE_PEM);
  expect_cert_ok(FIXTURE_TOKEN);
  expect_cert_ok(ENCODED_TOKEN);
  expect_cert_ok(TEST_CERT FIXTURE_TOKEN TEST_KEY);
}

/* Replaces every "\n" in |s| with "\r\n"; caller frees. */
static char *crlf(const char *s) {
  char *out = malloc(2 * strlen(s) + 1), *o = out;
  for (; *s; s++) {
    if (*s == '\n') *o++ = '\r';
    *o++ = *s;
  }
  *o = '\0';
  return out;
}

static void test_cert_go_pem_semantics(void **state) {
  (void)state;
  char *s = crlf(FIXTURE_PEM);
  expect_cert_ok(s);
  free(s);
  /* Text around blocks, trailing blanks on BEGIN/END lines, no final newline. */
  expect_cert_ok("Bag Attributes\n  friendlyName: x\n" TEST_KEY "between\n" FIXTURE_TOKEN
                 "after\n");
  expect_cert_ok("-----BEGIN ARGO TUNNEL TOKEN-----  \t\n"
                 "eyJ6b25lSUQiOiAiN2IwYTRkNzdkZmI4ODFjMWEzYjdkNjFlYTk0NDNlMTkiLCAiYXBpVG9rZW4i\n"
                 "OiAidGVzdC1zZXJ2aWNlLWtleSIsICJhY2NvdW50SUQiOiAiYWJjZGFiY2RhYmNkYWJjZDEyMzQ1\n"
                 "Njc4OTBhYmNkZWYifQ==\n"
                 "-----END ARGO TUNNEL TOKEN----- ");
  /* Base64 with spaces and tabs inside, and RFC 1421 headers. */
  expect_cert_ok("-----BEGIN ARGO TUNNEL TOKEN-----\n"
                 "Proc-Type: 4,X\n"
                 "Comment: y\n"
                 "\n"
                 "eyJ6b25lSUQiOiAiN2IwYTRkNzdkZmI4ODFjMWEzYjdkNjFlYTk0NDNlMTkiLCAi YXBpVG9rZW4i\n"
                 "\tOiAidGVzdC1zZXJ2aWNlLWtleSIsICJhY2NvdW50SUQiOiAiYWJjZGFiY2RhYmNkYWJjZDEyMzQ1\n"
                 "Njc4OTBhYmNkZWYifQ==\n"
                 "-----END ARGO TUNNEL TOKEN-----\n");
  /* A malformed block is skipped, not reported, whatever its type: no END
   * line, END of another type, bad base64, junk after END, BEGIN mid-line. */
  expect_cert_ok("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n" FIXTURE_TOKEN);
  expect_cert_ok("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
                 FIXTURE_TOKEN);
  expect_cert_ok("-----BEGIN RSA PRIVATE KEY-----\nA$AA\n-----END RSA PRIVATE KEY-----\n"
                 FIXTURE_TOKEN);
  expect_cert_ok("-----BEGIN RSA PRIVATE KEY-----\nAAA\n-----END RSA PRIVATE KEY-----\n"
                 FIXTURE_TOKEN);
  expect_cert_ok("-----BEGIN X-----\nAAAA\n-----END X----- junk\n" FIXTURE_TOKEN);
  expect_cert_ok("junk-----BEGIN X-----\nAAAA\n-----END X-----\n" FIXTURE_TOKEN);
  expect_cert_ok("-----BEGIN X----\nAAAA\n-----END X----\n" FIXTURE_TOKEN);
  /* An empty legacy block is still a block. */
  expect_cert_ok("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n" FIXTURE_TOKEN);
  /* Go's decoder is not Strict: unused bits in the last quantum may be set. */
  expect_cert_ok("-----BEGIN CERTIFICATE-----\nAB==\n-----END CERTIFICATE-----\n" FIXTURE_TOKEN);

  /* cloudflared counts a token by its fields: a first token whose JSON does
   * not decode does not make a second one a duplicate. */
  char *bad = token_block("ARGO TUNNEL TOKEN", "{\"zoneID\":5,\"apiToken\":\"t\"}");
  s = concat3(bad, FIXTURE_TOKEN, "");
  expect_cert_ok(s);
  free(s);
  free(bad);
  /* Key matching is case-insensitive with Go's folds: U+212A KELVIN SIGN. */
  char *kelvin = token_block("ARGO TUNNEL TOKEN",
                             "{\"ZONEID\":\"7b0a4d77dfb881c1a3b7d61ea9443e19\",\"accountid\":"
                             "\"abcdabcdabcdabcd1234567890abcdef\",\"apiTo\xe2\x84\xaa" "en\":"
                             "\"test-service-key\",\"extra\":[1]}");
  expect_cert_ok(kelvin);
  free(kelvin);
  /* HEAD's endpoint, lower-cased on read. */
  char *ep = token_block("ARGO TUNNEL TOKEN", "{\"zoneID\":\"z\",\"accountID\":\"a\",\"apiToken\":"
                                              "\"t\",\"endpoint\":\"FED\"}");
  wr_origin_cert c;
  char err[512];
  assert_int_equal(cert_parse(ep, &c, err, sizeof(err)), 0);
  assert_string_equal(c.endpoint, "fed");
  free(ep);
  assert_no_jansson_leak();
}

static void test_cert_errors(void **state) {
  (void)state;
  wr_origin_cert c;
  char err[512];
  assert_int_equal(wr_origin_cert_parse("", 0, &c, err, sizeof(err)), WR_ERR_PROTO);
  assert_string_equal(err, "Cannot decode empty certificate");
  expect_cert_err("garbage", "Missing token in the certificate");
  expect_cert_err("\n\n", "Missing token in the certificate");
  expect_cert_err(TEST_KEY TEST_CERT, "Missing token in the certificate");
  /* cloudflared's test-cert-unknown-block.pem: RSA PRIVATE KEY is unknown. */
  expect_cert_err(TEST_KEY "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"
                  FIXTURE_TOKEN,
                  "Unknown block RSA PRIVATE KEY in the certificate");
  expect_cert_err(FIXTURE_TOKEN TEST_EC_KEY, "Unknown block EC PRIVATE KEY in the certificate");
  expect_cert_err("-----BEGIN \x1b[31m-----\n-----END \x1b[31m-----\n",
                  "Unknown block ?[31m in the certificate");
  expect_cert_err(FIXTURE_TOKEN FIXTURE_TOKEN, "Found multiple tokens in the certificate");
  expect_cert_err(FIXTURE_TOKEN TEST_CERT ENCODED_TOKEN,
                  "Found multiple tokens in the certificate");
  /* cloudflared's test-cert-no-token.pem: the token has no apiToken. */
  char *t = token_block("ARGO TUNNEL TOKEN",
                        "{\"zoneID\": \"7b0a4d77dfb881c1a3b7d61ea9443e19\", "
                        "\"accountID\": \"abcdabcdabcdabcd1234567890abcdef\"}");
  char *s = concat3(TEST_KEY, TEST_CERT, t);
  expect_cert_err(s, "Missing token in the certificate");
  free(s);
  free(t);
  static const char *const bad_tokens[] = {
      "{\"accountID\":\"a\",\"apiToken\":\"t\"}",
      "{\"zoneID\":\"\",\"accountID\":\"a\",\"apiToken\":\"t\"}",
      "{\"zoneID\":\"z\",\"accountID\":\"a\",\"apiToken\":5}",
      "{\"zoneID\":\"z\",\"accountID\":\"a\",\"apiToken\":\"t\"",
      "[\"z\"]",
      "zoneID\nservicekey",
      "",
  };
  for (size_t i = 0; i < sizeof(bad_tokens) / sizeof(bad_tokens[0]); i++) {
    t = token_block("ARGO TUNNEL TOKEN", bad_tokens[i]);
    expect_cert_err(t, "Missing token in the certificate");
    free(t);
  }
  t = token_block("ARGO TUNNEL TOKEN", "{\"zoneID\":\"z\",\"accountID\":\"\",\"apiToken\":\"t\"}");
  expect_cert_err(t, "Origin certificate needs to be refreshed before creating new tunnels.");
  free(t);
  t = token_block("ARGO TUNNEL TOKEN", "{\"zoneID\":\"z\",\"apiToken\":\"t\"}");
  expect_cert_err(t, "Origin certificate needs to be refreshed");
  free(t);
  /* Values we cannot hold are reported, not silently dropped. */
  char json[600];
  snprintf(json, sizeof(json), "{\"zoneID\":\"z\",\"accountID\":\"a\",\"apiToken\":\"%0300d\"}", 0);
  t = token_block("ARGO TUNNEL TOKEN", json);
  expect_cert_err(t, "apiToken is longer than 255 bytes");
  free(t);
  t = token_block("ARGO TUNNEL TOKEN",
                  "{\"zoneID\":\"z\\u0000\",\"accountID\":\"a\",\"apiToken\":\"t\"}");
  expect_cert_err(t, "zoneID contains a NUL byte");
  free(t);
  char *big = malloc(WR_CRED_MAX_FILE + 1);
  memset(big, '\n', WR_CRED_MAX_FILE + 1);
  assert_int_equal(wr_origin_cert_parse(big, WR_CRED_MAX_FILE + 1, &c, err, sizeof(err)),
                   WR_ERR_PROTO);
  assert_contains(err, "larger than");
  free(big);
  /* Every truncation of the fixture either fails or (once the token block
   * is complete) parses: never a crash or leak. */
  const char *pem = FIXTURE_PEM;
  size_t full = strlen(pem);
  for (size_t n = 0; n <= full; n++) {
    int rv = wr_origin_cert_parse(pem, n, &c, err, sizeof(err));
    assert_int_equal(rv, n + 1 >= full ? 0 : WR_ERR_PROTO);
    assert_no_jansson_leak();
  }
}

static void test_cert_encode(void **state) {
  (void)state;
  wr_origin_cert c, back;
  char err[512];
  memset(&c, 0, sizeof(c));
  strcpy(c.zone_id, "7b0a4d77dfb881c1a3b7d61ea9443e19");
  strcpy(c.account_id, "abcdabcdabcdabcd1234567890abcdef");
  strcpy(c.api_token, "test-service-key");
  /* Token only: exactly what Go's pem.Encode makes of HEAD's marshalled
   * OriginCert. */
  char *pem = wr_origin_cert_encode(&c, NULL, NULL);
  assert_string_equal(pem, ENCODED_TOKEN);
  free(pem);
  /* With the legacy blocks first; a missing final newline is supplied. */
  pem = wr_origin_cert_encode(&c, TEST_CERT, TEST_KEY);
  assert_string_equal(pem, TEST_CERT TEST_KEY ENCODED_TOKEN);
  assert_int_equal(cert_parse(pem, &back, err, sizeof(err)), 0);
  assert_fixture_cert(&back);
  free(pem);
  char cert_nonl[sizeof(TEST_CERT)];
  strcpy(cert_nonl, TEST_CERT);
  cert_nonl[strlen(cert_nonl) - 1] = '\0';
  pem = wr_origin_cert_encode(&c, cert_nonl, "");
  assert_string_equal(pem, TEST_CERT ENCODED_TOKEN);
  free(pem);
  /* Long values wrap at 64 and the endpoint comes last. */
  memset(c.api_token, 'k', WR_CRED_MAX_FIELD - 1);
  strcpy(c.endpoint, "fed");
  pem = wr_origin_cert_encode(&c, NULL, TEST_KEY);
  assert_non_null(pem);
  for (const char *line = pem; *line;) {
    const char *nl = strchr(line, '\n');
    assert_non_null(nl);
    assert_true(nl - line <= 64);
    line = nl + 1;
  }
  assert_int_equal(cert_parse(pem, &back, err, sizeof(err)), 0);
  assert_string_equal(back.api_token, c.api_token);
  assert_string_equal(back.endpoint, "fed");
  free(pem);
  /* Files cloudflared would refuse are not written. */
  strcpy(c.api_token, "t");
  assert_null(wr_origin_cert_encode(&c, NULL, TEST_EC_KEY));
  assert_null(wr_origin_cert_encode(&c, TEST_CERT FIXTURE_TOKEN, NULL));
  assert_null(wr_origin_cert_encode(&c, "not pem", NULL));
  assert_null(wr_origin_cert_encode(NULL, NULL, NULL));
  back = c;
  back.zone_id[0] = '\0';
  assert_null(wr_origin_cert_encode(&back, NULL, NULL));
  back = c;
  back.api_token[0] = '\0';
  assert_null(wr_origin_cert_encode(&back, NULL, NULL));
  back = c;
  memset(back.zone_id, 'z', sizeof(back.zone_id));
  assert_null(wr_origin_cert_encode(&back, NULL, NULL));
  /* An empty accountID is legal to write (old certs); reading refuses it. */
  back = c;
  back.account_id[0] = '\0';
  pem = wr_origin_cert_encode(&back, NULL, NULL);
  assert_non_null(pem);
  assert_int_equal(cert_parse(pem, &back, err, sizeof(err)), WR_ERR_PROTO);
  assert_contains(err, "needs to be refreshed");
  free(pem);
  assert_no_jansson_leak();
}

/* ---- files and default paths ------------------------------------------- */

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int setup_tmpdir(void **state) {
  (void)state;
  strcpy(tmpdir, "/tmp/wr-cred-XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmpdir(void **state) {
  (void)state;
  return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tmp_path(const char *name) {
  char *p = malloc(strlen(tmpdir) + strlen(name) + 2);
  sprintf(p, "%s/%s", tmpdir, name);
  return p;
}

static char *write_tmp(const char *name, const char *data, size_t len) {
  char *p = tmp_path(name);
  assert_int_equal(wr_file_write(p, data, len, 0600, 0), 0);
  return p;
}

static void test_credentials_load(void **state) {
  (void)state;
  wr_credentials c, want;
  char err[1024];
  golden_credentials(&want);
  char *p = write_tmp("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee.json", GOLDEN_JSON "\n",
                      strlen(GOLDEN_JSON) + 1);
  assert_int_equal(wr_credentials_load(p, &c, err, sizeof(err)), 0);
  assert_cred_equal(&c, &want);
  free(p);

  p = tmp_path("missing.json");
  assert_int_equal(wr_credentials_load(p, &c, err, sizeof(err)), WR_ERR_IO);
  assert_contains(err, "couldn't read tunnel credentials from ");
  assert_contains(err, p);
  assert_contains(err, "No such file or directory");
  assert_cred_wiped(&c);
  free(p);
  assert_int_equal(wr_credentials_load(tmpdir, &c, err, sizeof(err)), WR_ERR_IO);
  assert_contains(err, tmpdir);

  /* cloudflared's "you gave cert.pem" explanation for a .pem path... */
  p = write_tmp("cert.pem", FIXTURE_PEM, strlen(FIXTURE_PEM));
  assert_int_equal(wr_credentials_load(p, &c, err, sizeof(err)), WR_ERR_PROTO);
  assert_contains(err, p);
  assert_contains(err, "The tunnel credentials file should be .json but you gave a .pem. The "
                       "tunnel credentials file was originally created by `cloudflared tunnel "
                       "create`. You may have accidentally used the filepath to cert.pem, which "
                       "is generated by `cloudflared tunnel login`.");
  free(p);
  /* ...but not for other names, nor for a .pem that is JSON with a bad value. */
  p = write_tmp("creds.json", FIXTURE_PEM, strlen(FIXTURE_PEM));
  assert_int_equal(wr_credentials_load(p, &c, err, sizeof(err)), WR_ERR_PROTO);
  assert_contains(err, "Invalid JSON when parsing tunnel credentials file ");
  assert_contains(err, p);
  free(p);
  p = write_tmp("odd.pem", "{\"AccountTag\":\"a\"}", 18);
  assert_int_equal(wr_credentials_load(p, &c, err, sizeof(err)), WR_ERR_PROTO);
  assert_contains(err, "invalid tunnel credentials file ");
  assert_contains(err, "TunnelSecret is missing or empty");
  assert_contains(err, p);
  free(p);

  /* Reads are bounded. */
  char *big = malloc(WR_CRED_MAX_FILE + 1);
  memset(big, ' ', WR_CRED_MAX_FILE + 1);
  memcpy(big, GOLDEN_JSON, strlen(GOLDEN_JSON));
  p = write_tmp("big.json", big, WR_CRED_MAX_FILE);
  assert_int_equal(wr_credentials_load(p, &c, err, sizeof(err)), 0);
  free(p);
  p = write_tmp("big.json", big, WR_CRED_MAX_FILE + 1);
  assert_int_equal(wr_credentials_load(p, &c, err, sizeof(err)), WR_ERR_PROTO);
  assert_contains(err, p);
  assert_contains(err, "larger than 65536 bytes");
  assert_cred_wiped(&c);
  free(p);
  free(big);
  assert_no_jansson_leak();
}

static void test_origin_cert_load(void **state) {
  (void)state;
  wr_origin_cert c;
  char err[1024];
  char *p = write_tmp("cert.pem", FIXTURE_PEM, strlen(FIXTURE_PEM));
  assert_int_equal(wr_origin_cert_load(p, &c, err, sizeof(err)), 0);
  assert_fixture_cert(&c);
  free(p);

  p = tmp_path("nope.pem");
  assert_int_equal(wr_origin_cert_load(p, &c, err, sizeof(err)), WR_ERR_IO);
  assert_contains(err, "Can't read origin cert from ");
  assert_contains(err, p);
  free(p);

  char *t = token_block("ARGO TUNNEL TOKEN", "{\"zoneID\":\"z\",\"apiToken\":\"t\"}");
  p = write_tmp("old.pem", t, strlen(t));
  assert_int_equal(wr_origin_cert_load(p, &c, err, sizeof(err)), WR_ERR_PROTO);
  char want[600];
  snprintf(want, sizeof(want),
           "Origin certificate needs to be refreshed before creating new tunnels.\nDelete %s "
           "and run \"cloudflared login\" to obtain a new cert.",
           p);
  assert_string_equal(err, want);
  free(p);
  free(t);

  p = write_tmp("unknown.pem", TEST_EC_KEY, strlen(TEST_EC_KEY));
  assert_int_equal(wr_origin_cert_load(p, &c, err, sizeof(err)), WR_ERR_PROTO);
  snprintf(want, sizeof(want),
           "Error decoding origin cert %s: Unknown block EC PRIVATE KEY in the certificate", p);
  assert_string_equal(err, want);
  free(p);

  p = write_tmp("empty.pem", "", 0);
  assert_int_equal(wr_origin_cert_load(p, &c, err, sizeof(err)), WR_ERR_PROTO);
  assert_contains(err, "Cannot decode empty certificate");
  free(p);

  char *big = malloc(WR_CRED_MAX_FILE + 1);
  memset(big, '\n', WR_CRED_MAX_FILE + 1);
  p = write_tmp("big.pem", big, WR_CRED_MAX_FILE + 1);
  assert_int_equal(wr_origin_cert_load(p, &c, err, sizeof(err)), WR_ERR_PROTO);
  assert_contains(err, p);
  assert_contains(err, "larger than");
  free(p);
  free(big);
  assert_no_jansson_leak();
}

/* With HOME at the temporary directory: a file |name| written into |dir|
 * (below HOME) is the one wr_find_default_file(|name|) finds. */
static void assert_found_in(const char *dir, const char *name) {
  char rel[128];
  snprintf(rel, sizeof(rel), "%s/%s", dir, name);
  char *p = write_tmp(rel, "x", 1);
  char *found = wr_find_default_file(name);
  assert_string_equal(found, p);
  free(found);
  free(p);
}

static void test_default_dirs(void **state) {
  (void)state;
  static const char *const want[] = {"~/.cloudflared", "~/.cloudflare-warp", "~/cloudflare-warp",
                                     "/etc/cloudflared", "/usr/local/etc/cloudflared"};
  size_t n = 0;
  while (wr_default_config_dirs[n]) n++;
  assert_int_equal(n, 5);
  for (size_t i = 0; i < n; i++) assert_string_equal(wr_default_config_dirs[i], want[i]);

  char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
  assert_int_equal(setenv("HOME", tmpdir, 1), 0);
  char name[64];
  snprintf(name, sizeof(name), "warren-test-%ld.yml", (long)getpid());
  assert_null(wr_find_default_file(name));
  assert_null(wr_find_default_file(""));
  assert_null(wr_find_default_file(NULL));

  static const char *const dirs[] = {".cloudflared", ".cloudflare-warp", "cloudflare-warp"};
  for (size_t i = 0; i < 3; i++) {
    char *d = tmp_path(dirs[i]);
    assert_int_equal(mkdir(d, 0700), 0);
    free(d);
  }
  /* Later directories are found, earlier ones win. */
  assert_found_in("cloudflare-warp", name);
  assert_found_in(".cloudflare-warp", name);
  /* A directory of that name does not count. */
  char rel[128], *p, *found;
  snprintf(rel, sizeof(rel), ".cloudflared/%s", name);
  p = tmp_path(rel);
  assert_int_equal(mkdir(p, 0700), 0);
  found = wr_find_default_file(name);
  assert_non_null(found);
  assert_string_not_equal(found, p);
  free(found);
  assert_int_equal(rmdir(p), 0);
  free(p);
  assert_found_in(".cloudflared", name);

  if (old_home) setenv("HOME", old_home, 1);
  else unsetenv("HOME");
  free(old_home);
}

/* ---- allocation failures --------------------------------------------------
 * Fail each jansson allocation in turn: every call must fail cleanly (an
 * error code or NULL) or succeed, and leave no jansson memory behind.
 * Encoders must also produce the right bytes. Parsers cannot promise that:
 * jansson 2.14's lexer ignores a failed append (lex_save), so a string can
 * silently lose a byte under OOM; processes should install an aborting
 * allocator with json_set_alloc_funcs, as Warren does elsewhere on OOM. */
static void test_jansson_oom(void **state) {
  (void)state;
  wr_credentials want;
  golden_credentials(&want);
  wr_origin_cert oc;
  memset(&oc, 0, sizeof(oc));
  strcpy(oc.zone_id, "7b0a4d77dfb881c1a3b7d61ea9443e19");
  strcpy(oc.account_id, "abcdabcdabcdabcd1234567890abcdef");
  strcpy(oc.api_token, "test-service-key");
  for (int op = 0; op < 6; op++) {
    int finished = 0;
    for (long fail_at = 0; !finished; fail_at++) {
      assert_true(fail_at < 10000);
      j_calls = 0;
      j_fail_at = fail_at;
      wr_credentials c;
      wr_origin_cert o;
      char err[512], *s = NULL;
      int rv = 0;
      switch (op) {
      case 0:
        rv = cred_parse(GOLDEN_JSON, &c, err, sizeof(err));
        break;
      case 1:
        rv = wr_token_parse(GOLDEN_TOKEN, strlen(GOLDEN_TOKEN), &c, err, sizeof(err));
        break;
      case 2:
        rv = cert_parse(FIXTURE_PEM, &o, err, sizeof(err));
        break;
      case 3:
        s = wr_credentials_to_json(&want);
        if (s) assert_string_equal(s, GOLDEN_JSON);
        break;
      case 4:
        s = wr_token_encode(&want);
        if (s) assert_string_equal(s, GOLDEN_TOKEN);
        break;
      case 5:
        s = wr_origin_cert_encode(&oc, NULL, NULL);
        if (s) assert_string_equal(s, ENCODED_TOKEN);
        break;
      }
      /* jansson reports some allocation failures in its lexer as syntax
       * errors, so WR_ERR_PROTO is a clean failure here too. */
      if (rv != 0 && rv != WR_ERR_NOMEM && rv != WR_ERR_PROTO)
        fail_msg("op %d, failing allocation %ld: rv %d (%s)", op, fail_at, rv, err);
      if (rv == WR_ERR_NOMEM) assert_contains(err, "out of memory");
      int ok = op < 3 ? rv == 0 : s != NULL;
      free(s);
      assert_no_jansson_leak();
      /* Done once a run got through without reaching the failure. */
      finished = ok && j_calls <= fail_at;
    }
  }
  j_fail_at = -1;
}

int main(void) {
  json_set_alloc_funcs(j_malloc, j_free);
  return UNIT_RUN(
      NULL, NULL,
      UNIT_TESTS(test_cred_golden, test_cred_vector, test_cred_go_key_matching,
                 test_cred_optional_fields, test_cred_errors, test_token_golden, test_token_errors,
                 test_cert_fixture, test_cert_go_pem_semantics, test_cert_errors, test_cert_encode),
      UNIT_FIXTURE(setup_tmpdir, teardown_tmpdir, test_credentials_load, test_origin_cert_load,
                   test_default_dirs),
      UNIT_TESTS(test_jansson_oom));
}
