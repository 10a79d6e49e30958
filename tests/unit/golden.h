/* Reads every hex dump of tests/vectors/golden-encodings.md so the suites can
 * decode all of them without copying hex by hand. A dump is a "## <title>"
 * heading followed by a fenced block of "  0000: 0a 36 cd ..." lines; the
 * first fenced block after a heading is the dump, the next one its decode.
 * Header-only (static inline) so each test binary can include it. */
#ifndef WR_TEST_GOLDEN_H
#define WR_TEST_GOLDEN_H
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

typedef struct golden_entry {
  char title[200];
  uint8_t *bytes;
  size_t len;
} golden_entry;

typedef struct golden_set {
  golden_entry *e;
  size_t n;
} golden_set;

static inline int golden_hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Parses the dump lines between |p| and |end| ("  0000: xx xx ..."). */
static inline void golden_parse_block(const char *p, const char *end, golden_entry *e) {
  e->bytes = malloc((size_t)(end - p) / 2 + 1);
  e->len = 0;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon) {
      for (const char *q = colon + 1; q + 1 < eol; q++) {
        int hi = golden_hexval((unsigned char)q[0]), lo = golden_hexval((unsigned char)q[1]);
        if (hi >= 0 && lo >= 0) {
          e->bytes[e->len++] = (uint8_t)(hi << 4 | lo);
          q++;
        }
      }
    }
    p = eol + 1;
  }
}

static inline golden_set golden_load(void) {
  size_t len;
  char *doc = (char *)unit_read_vector("golden-encodings.md", &len);
  golden_set s = {NULL, 0};
  size_t cap = 0;
  const char *p = doc, *end = doc + len;
  while (p < end) {
    const char *h = strstr(p, "\n## ");
    if (!h) break;
    h += 4;
    const char *eol = strchr(h, '\n');
    const char *fence = strstr(eol, "```");
    if (!eol || !fence) break;
    const char *body = strchr(fence, '\n') + 1;
    const char *close = strstr(body, "```");
    if (!close) break;
    if (s.n == cap) {
      cap = cap ? cap * 2 : 64;
      s.e = realloc(s.e, cap * sizeof(*s.e));
    }
    golden_entry *e = &s.e[s.n++];
    size_t tl = (size_t)(eol - h);
    if (tl >= sizeof(e->title)) tl = sizeof(e->title) - 1;
    memcpy(e->title, h, tl);
    e->title[tl] = '\0';
    golden_parse_block(body, close, e);
    p = close + 3;
  }
  free(doc);
  return s;
}

/* The entry whose title starts with |prefix|; fails the test if none. */
static inline const golden_entry *golden_get(const golden_set *s, const char *prefix) {
  for (size_t i = 0; i < s->n; i++)
    if (strncmp(s->e[i].title, prefix, strlen(prefix)) == 0) return &s->e[i];
  fail_msg("golden entry '%s' not found", prefix);
  return NULL;
}

static inline void golden_free(golden_set *s) {
  for (size_t i = 0; i < s->n; i++) free(s->e[i].bytes);
  free(s->e);
  s->e = NULL;
  s->n = 0;
}

/* "(48 bytes)" at the end of a title: the documented length. */
static inline size_t golden_title_len(const golden_entry *e) {
  const char *p = strrchr(e->title, '(');
  return p ? (size_t)strtoul(p + 1, NULL, 10) : 0;
}

#endif
