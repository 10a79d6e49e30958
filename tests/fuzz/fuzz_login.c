/* Fuzzes the parsers of the login pages (src/edge/login.c, via
 * edge/login_int.h): percent-decoding, application/x-www-form-urlencoded
 * bodies and query strings, the Cookie field, callback URL and key
 * validation, the root-level poll path, and the CLI's URL builders.
 *
 * Input: one control byte (bit 0: '+' is a space; bits 1-7: the size of the
 * decode buffer), then the bytes parsed as a form body, a Cookie value, a
 * callback URL, a path and a base URL. Checked against simple reference
 * implementations written here:
 *   - pct_decode gives the reference decoding, or -1 exactly when that is
 *     malformed or does not fit;
 *   - form_get finds the first pair with the name, as the reference does,
 *     for the names login.c asks for and for the first name in the input;
 *   - the cookie scanner returns the reference's "warren_login=" ids in
 *     order, each of exactly 43 bytes, always moving forward;
 *   - an accepted callback's key and a root poll's key are valid keys;
 *   - a browser URL built from a base and a valid key carries the key back
 *     through form_get("callback") and callback_key;
 *   - an accepted ?next= path is local: one leading '/', printable ASCII,
 *     no backslash, bounded. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/login.h"
#include "edge/login_int.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "fuzz.h"

#define CALLBACK_MAX 1024 /* as login.c */

static int ref_hex(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Reference decoding into |out| (room for |len| + 1). Returns the length,
 * or -1 for a bad escape or %00 (lib/encoding's one policy). */
static long ref_decode(const char *in, size_t len, int plus, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (in[i] == '%') {
      if (len - i < 3) return -1;
      int hi = ref_hex((unsigned char)in[i + 1]), lo = ref_hex((unsigned char)in[i + 2]);
      if (hi < 0 || lo < 0 || hi + lo == 0) return -1;
      out[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[o++] = plus && in[i] == '+' ? ' ' : in[i];
    }
  }
  out[o] = '\0';
  return (long)o;
}

static void fuzz_decode(const char *d, size_t n, int plus, size_t outsz) {
  char *out = malloc(outsz), *ref = malloc(n + 1);
  CHECK(out && ref);
  long r = ref_decode(d, n, plus, ref);
  int rv = wr_pct_decode(d, n, plus ? WR_PCT_PLUS : 0, out, outsz);
  if (r < 0 || (size_t)r + 1 > outsz) {
    CHECK(rv < 0);
  } else {
    CHECK(rv == r && out[rv] == '\0' && memcmp(out, ref, (size_t)r) == 0);
  }
  free(out);
  free(ref);
}

/* Reference form lookup: the first '&'-separated pair whose raw name is
 * |name|; -1 absent, -2 bad or too long, else the decoded length. */
static long ref_form_get(const char *d, size_t n, const char *name, char *out, size_t outsz) {
  size_t nlen = strlen(name);
  size_t i = 0;
  if (!d) d = "", n = 0;
  for (;;) {
    const char *amp = memchr(d + i, '&', n - i);
    size_t end = amp ? (size_t)(amp - d) : n;
    const char *eq = memchr(d + i, '=', end - i);
    size_t klen = eq ? (size_t)(eq - (d + i)) : end - i;
    if (klen == nlen && memcmp(d + i, name, nlen) == 0) {
      size_t voff = eq ? (size_t)(eq + 1 - d) : end;
      char *tmp = malloc(end - voff + 1);
      CHECK(tmp);
      long r = ref_decode(d + voff, end - voff, 1, tmp);
      if (r >= 0 && (size_t)r + 1 <= outsz) memcpy(out, tmp, (size_t)r + 1);
      else r = -2;
      free(tmp);
      return r;
    }
    if (!amp) return -1;
    i = end + 1;
  }
}

static void fuzz_form(const char *d, size_t n, const char *name, size_t outsz) {
  char *out = malloc(outsz), *ref = malloc(outsz);
  CHECK(out && ref);
  long r = ref_form_get(d, n, name, ref, outsz);
  int rv = wr__login_form_get(d, n, name, 0, out, outsz);
  CHECK(rv == r);
  if (rv >= 0) CHECK(memcmp(out, ref, (size_t)rv + 1) == 0);
  free(out);
  free(ref);
}

static void fuzz_cookie(const char *d, size_t n) {
  static const char name[] = WR__LOGIN_COOKIE_NAME "=";
  const size_t want = sizeof(name) - 1 + WR__LOGIN_SID_LEN;
  const char *p = d, *end = d + n, *r = d;
  char id[WR__LOGIN_SID_LEN + 1];
  for (;;) {
    /* The reference: the next ';'-separated item, leading ' ' and ';'
     * skipped, of exactly the right length and prefix. */
    const char *hit = NULL;
    while (r < end && !hit) {
      while (r < end && (*r == ' ' || *r == ';')) r++;
      const char *e = memchr(r, ';', (size_t)(end - r));
      if (!e) e = end;
      if ((size_t)(e - r) == want && memcmp(r, name, sizeof(name) - 1) == 0) hit = r;
      r = e;
    }
    const char *before = p;
    int got = wr__login_cookie_next(&p, end, id);
    CHECK(p >= before && p <= end);
    CHECK(got == (hit != NULL));
    if (!got) break;
    CHECK(p == r && p > before);
    CHECK(id[WR__LOGIN_SID_LEN] == '\0' && memcmp(id, hit + sizeof(name) - 1, WR__LOGIN_SID_LEN) == 0);
  }
}

static void fuzz_callback(const char *s) {
  char key[WR_LOGIN_KEY_MAX + 1];
  memset(key, 0x55, sizeof(key));
  int rv = wr__login_callback_key(s, key);
  CHECK(rv == WR_OK || rv == WR_ERR_INVAL);
  if (rv != WR_OK) return;
  CHECK(memchr(key, '\0', sizeof(key)) != NULL);
  CHECK(wr_login_key_valid(key, strlen(key)));
  CHECK(strchr(s, '/') != NULL);
}

static void fuzz_root_key(const char *s) {
  char key[WR_LOGIN_KEY_MAX + 1];
  if (!wr__login_root_key(s)) return;
  CHECK(s[0] == '/');
  int n = wr_pct_decode(s + 1, strlen(s + 1), 0, key, sizeof(key));
  CHECK(n == 44 && key[43] == '=' && wr_login_key_valid(key, (size_t)n));
}

/* The sign-in's return path (?next=) never leaves the listener. */
static void fuzz_next(const char *s) {
  if (!wr__login_next_ok(s)) return;
  size_t n = strlen(s);
  CHECK(n >= 1 && n <= WR__LOGIN_NEXT_MAX && s[0] == '/' && s[1] != '/');
  for (size_t i = 0; i < n; i++) CHECK(s[i] > 0x20 && s[i] < 0x7f && s[i] != '\\');
}

/* A browser URL for |base| and |key| gives |key| back, the page's way. */
static void fuzz_urls(const char *base, const char *key) {
  char *poll = wr_login_poll_url(base, key), *br = wr_login_browser_url(base, key);
  int valid = wr_login_key_valid(key, strlen(key));
  CHECK(!poll == !valid && !br == !valid);
  if (!valid) return;
  CHECK(strstr(poll, key) != NULL);
  int plain = strlen(poll) <= CALLBACK_MAX;
  for (const char *c = base; *c; c++)
    if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == '?' || *c == '#') plain = 0;
  if (plain) {
    static char cb[CALLBACK_MAX + 1];
    char back[WR_LOGIN_KEY_MAX + 1];
    const char *q = strchr(br, '?');
    CHECK(q);
    q++;
    int n = wr__login_form_get(q, strlen(q), "callback", 0, cb, sizeof(cb));
    CHECK(n >= 0 && strcmp(cb, poll) == 0);
    CHECK(wr__login_callback_key(cb, back) == WR_OK && strcmp(back, key) == 0);
  }
  free(poll);
  free(br);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const names[] = {"callback", "csrf", "email", "password", "zone", "aud", ""};
  if (size < 1 || size > 65536) return 0;
  uint8_t ctl = data[0];
  size_t n = size - 1;
  /* Exact-size copy, so reads past |n| are caught; and a string copy. */
  char *d = malloc(n ? n : 1), *s = malloc(n + 1);
  CHECK(d && s);
  memcpy(d, data + 1, n);
  memcpy(s, data + 1, n);
  s[n] = '\0';
  size_t outsz = (ctl >> 1) ? (size_t)(ctl >> 1) : n + 1;

  fuzz_decode(d, n, ctl & 1, outsz);
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) fuzz_form(d, n, names[i], outsz);
  /* The first name in the input, so repeated and odd names are tried. */
  size_t kl = strcspn(s, "=&");
  char *first = malloc(kl + 1);
  CHECK(first);
  memcpy(first, s, kl);
  first[kl] = '\0';
  fuzz_form(d, n, first, outsz);
  fuzz_form(NULL, 0, first, outsz);
  free(first);
  fuzz_cookie(d, n);
  fuzz_callback(s);
  fuzz_root_key(s);
  fuzz_next(s);
  /* base '|' key */
  char *bar = strchr(s, '|');
  if (bar) {
    *bar = '\0';
    fuzz_urls(s, bar + 1);
  }
  free(d);
  free(s);
  return 0;
}
