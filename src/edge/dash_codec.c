/* The dashboard's parsers of request input (dash_int.h); fuzzed by
 * tests/fuzz/fuzz_dash.c. */
#include <string.h>
#include <strings.h>
#include <time.h>

#include "edge/dash_int.h"
#include "edge/inspect.h"
#include "edge/login_int.h"
#include "lib/encoding.h"

/* The sign-in pages' form decoder, which the dashboard's forms share; a
 * value with a raw NUL byte is refused like %00 (the dashboard uses values
 * as C strings). */
int wr__dash_form_get(const char *data, size_t len, const char *name, char *out, size_t outsz) {
  int n = wr__login_form_get(data, len, name, 0, out, outsz);
  if (n > 0 && memchr(out, '\0', (size_t)n)) return -2;
  return n;
}

static int digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

/* The separators of "YYYY-MM-DDTHH:MM:SS". */
static int time_shape(const char *s) {
  return s && strlen(s) >= 20 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' &&
         s[16] == ':';
}

/* After the seconds: an optional fraction, then "Z". */
static int time_tail(const char *p) {
  if (*p == '.') {
    p++;
    if (*p < '0' || *p > '9') return -1;
    while (*p >= '0' && *p <= '9') p++;
  }
  return strcmp(p, "Z") == 0 ? 0 : -1;
}

int wr__dash_parse_time(const char *s, int64_t *out) {
  struct tm tm;
  int f[6];
  static const int at[6] = {0, 5, 8, 11, 14, 17}, len[6] = {4, 2, 2, 2, 2, 2};
  static const int lo[6] = {0, 1, 1, 0, 0, 0}, hi[6] = {9999, 12, 31, 23, 59, 60};
  if (!time_shape(s) || time_tail(s + 19) != 0) return -1;
  for (int i = 0; i < 6; i++)
    if (digits(s + at[i], len[i], &f[i]) != 0 || f[i] < lo[i] || f[i] > hi[i]) return -1;
  memset(&tm, 0, sizeof(tm));
  tm.tm_year = f[0] - 1900;
  tm.tm_mon = f[1] - 1;
  tm.tm_mday = f[2];
  tm.tm_hour = f[3];
  tm.tm_min = f[4];
  tm.tm_sec = f[5];
  *out = (int64_t)timegm(&tm);
  return 0;
}

static int skip_field(const char *name) {
  static const char *const names[] = {"host", "content-length", "connection", "transfer-encoding",
                                      "keep-alive", "te", "trailer", "upgrade", "proxy-connection",
                                      "expect"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strcasecmp(name, names[i]) == 0) return 1;
  return 0;
}

size_t wr__dash_replay_headers(char *text, wr_http_header *out, size_t max) {
  size_t n = 0;
  char *p = text;
  while (p && *p && n < max) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = '\0';
    char *colon = strstr(p, ": ");
    if (colon && colon > p) {
      *colon = '\0';
      const char *v = colon + 2;
      if (!skip_field(p) && !wr_inspect_redacted(p, strlen(p)) && !strchr(v, '\r'))
        out[n++] = (wr_http_header){p, strlen(p), v, strlen(v)};
    }
    p = nl ? nl + 1 : NULL;
  }
  return n;
}

int wr__dash_id_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '-'))
      return 0;
  }
  return 1;
}
