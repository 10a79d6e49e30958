/* Fuzzes the dashboard's parsers of request input (src/edge/dash_codec.c):
 * form fields of a POST body or query, RFC 3339 times from API answers,
 * ids that go into API paths, and the inspector's header text turned back
 * into fields for a replay. Checks:
 *   - form_get returns -1, -2 or a length that fits and matches strlen;
 *   - an accepted id has only [0-9A-Fa-f-], 1..64 of them (no '/', '.');
 *   - parse_time accepts only the fixed shape ending in 'Z';
 *   - replay fields never carry CR or LF, never a redacted or hop-by-hop
 *     name, and point inside the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge/dash_int.h"
#include "edge/inspect.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const names[] = {"csrf", "id", "name", "zone", "tunnel", "hostname", "network", ""};
  if (size > 65536) return 0;
  char *s = malloc(size + 1), *d = malloc(size ? size : 1);
  CHECK(s && d);
  memcpy(s, data, size);
  memcpy(d, data, size);
  s[size] = '\0';
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    char out[256];
    int n = wr__dash_form_get(d, size, names[i], out, sizeof(out));
    CHECK(n >= -2);
    if (n >= 0) CHECK((size_t)n < sizeof(out) && strlen(out) == (size_t)n);
    if (n > 0 && wr__dash_id_ok(out))
      for (int k = 0; k < n; k++) CHECK(strchr("0123456789abcdefABCDEF-", out[k]) != NULL);
  }
  int64_t t;
  if (wr__dash_parse_time(s, &t) == 0) CHECK(strlen(s) >= 20 && s[strlen(s) - 1] == 'Z' && s[10] == 'T');
  wr_http_header hs[WR__DASH_REPLAY_MAX_HEADERS];
  size_t n = wr__dash_replay_headers(s, hs, WR__DASH_REPLAY_MAX_HEADERS);
  CHECK(n <= WR__DASH_REPLAY_MAX_HEADERS);
  for (size_t i = 0; i < n; i++) {
    CHECK(hs[i].name >= s && hs[i].name + hs[i].name_len <= s + size);
    CHECK(!memchr(hs[i].value, '\r', hs[i].value_len) && !memchr(hs[i].value, '\n', hs[i].value_len));
    CHECK(!wr_inspect_redacted(hs[i].name, hs[i].name_len));
    CHECK(!(hs[i].name_len == 4 && strncasecmp(hs[i].name, "host", 4) == 0));
  }
  free(s);
  free(d);
  return 0;
}
