/* The YAML encoding of Go value trees, as gopkg.in/yaml.v3's Encoder
 * writes cloudflared's results (render.h).
 *
 * Whether a string goes out plain, 'single-' or "double-quoted" is
 * decided in two steps, as in yaml.v3:
 *  1. the encoder (encode.go stringv): a string that would read back as
 *     something else (null, a bool, a number, a timestamp, YAML 1.1's
 *     yes/no/on/off and base-60 floats) is double-quoted; so is a
 *     multi-line one (yaml.v3 would write a literal block);
 *  2. the emitter (emitterc.go yaml_emitter_analyze_scalar and
 *     select_scalar_style, block context, not a simple key): a scan of the
 *     characters for indicators, leading/trailing spaces, breaks, tabs and
 *     unprintable characters rules out plain and then single-quoted style.
 * The resolver tables below are the ones yaml.v3 resolves plain scalars
 * with (resolve.go). */
#include <stdint.h>
#include <string.h>

#include "cfapi/render_int.h"

/* ---- step 1: would the plain string resolve to another type? ------------------- */

static int is_dec(int c) { return c >= '0' && c <= '9'; }
static int is_hex(int c) { return is_dec(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int is_oct(int c) { return c >= '0' && c <= '7'; }
static int is_bin(int c) { return c == '0' || c == '1'; }

static int all_digits(const char *s, size_t n, int (*ok)(int)) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (!ok((unsigned char)s[i])) return 0;
  return 1;
}

/* strconv.ParseInt(s, 0, 64) syntax (without the range check). */
static int go_int_syntax(const char *s) {
  static const struct {
    char lower, upper;
    int (*ok)(int);
  } radix[] = {{'x', 'X', is_hex}, {'o', 'O', is_oct}, {'b', 'B', is_bin}};
  if (*s == '+' || *s == '-') s++;
  size_t n = strlen(s);
  for (size_t i = 0; n >= 2 && s[0] == '0' && i < sizeof(radix) / sizeof(radix[0]); i++)
    if (s[1] == radix[i].lower || s[1] == radix[i].upper) return all_digits(s + 2, n - 2, radix[i].ok);
  return all_digits(s, n, s[0] == '0' ? is_oct : is_dec);
}

/* Skips decimal digits; returns how many. */
static size_t skip_digits(const char **p) {
  const char *s = *p;
  while (is_dec((unsigned char)**p)) (*p)++;
  return (size_t)(*p - s);
}

/* ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
static int yaml_float_syntax(const char *s) {
  if (*s == '+' || *s == '-') s++;
  if (*s == '.') {
    s++;
    if (!skip_digits(&s)) return 0;
  } else {
    if (!skip_digits(&s)) return 0;
    if (*s == '.') s++, skip_digits(&s);
  }
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '+' || *s == '-') s++;
    if (!skip_digits(&s)) return 0;
  }
  return *s == '\0';
}

static int days_in_month(int y, int m) {
  static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0) ? 29 : d[m - 1];
}

/* 1..max digits; advances. */
static int take_num(const char **p, int max, int *v) {
  int n = 0;
  *v = 0;
  while (n < max && is_dec((unsigned char)**p)) *v = *v * 10 + (*(*p)++ - '0'), n++;
  return n > 0;
}

/* |sep| then 1..max digits. */
static int sep_num(const char **p, char sep, int max, int *v) { return *(*p)++ == sep && take_num(p, max, v); }

/* "15:4:5[.999999999]", fields range-checked. */
static int ts_clock(const char **p) {
  int h, mi, se;
  if (!(take_num(p, 2, &h) && sep_num(p, ':', 2, &mi) && sep_num(p, ':', 2, &se))) return 0;
  if (h > 23 || mi > 59 || se > 59) return 0;
  if (**p == '.') {
    (*p)++;
    if (!skip_digits(p)) return 0;
  }
  return 1;
}

/* "Z" or "±7:00" to the end. */
static int ts_zone(const char *p) {
  int oh, om;
  if (*p == 'Z') return p[1] == '\0';
  if (*p != '+' && *p != '-') return 0;
  p++;
  return take_num(&p, 2, &oh) && sep_num(&p, ':', 2, &om) && *p == '\0' && oh < 24 && om < 60;
}

/* yaml.v3's timestamp formats: 2006-1-2, 2006-1-2T15:4:5.999999999Z07:00
 * (T or t), 2006-1-2 15:4:5.999999999. */
static int yaml_timestamp(const char *s) {
  const char *p = s;
  int y, m, d;
  if (!(take_num(&p, 4, &y) && p - s == 4 && sep_num(&p, '-', 2, &m) && sep_num(&p, '-', 2, &d))) return 0;
  if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) return 0;
  if (!*p) return 1;
  int tz = *p == 'T' || *p == 't';
  if (!tz && *p != ' ') return 0;
  p++;
  if (!ts_clock(&p)) return 0;
  return tz ? ts_zone(p) : *p == '\0';
}

/* ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$ */
static int base60_float(const char *p) {
  int groups = 0;
  if (*p == '+' || *p == '-') p++;
  if (!is_dec((unsigned char)*p)) return 0;
  while (is_dec((unsigned char)*p) || *p == '_') p++;
  for (; *p == ':'; groups++) {
    p++;
    if (!is_dec((unsigned char)*p)) return 0;
    if (is_dec((unsigned char)p[1])) {
      if (*p > '5') return 0;
      p++;
    }
    p++;
  }
  if (*p == '.')
    for (p++; is_dec((unsigned char)*p) || *p == '_';) p++;
  return groups && *p == '\0';
}

/* Does |s|, starting with a sign or a digit, read back as a number or a
 * timestamp? */
static int numeric_like(const char *s) {
  char plain[256];
  size_t n = 0;
  if (yaml_timestamp(s)) return 1;
  for (const char *p = s; *p && n + 1 < sizeof(plain); p++)
    if (*p != '_') plain[n++] = *p;
  plain[n] = '\0';
  if (strlen(s) < sizeof(plain) && (go_int_syntax(plain) || yaml_float_syntax(plain))) return 1;
  return base60_float(s);
}

/* yaml.v3 encoder's stringv: may the string go out unquoted, i.e. does it
 * resolve to !!str and not look like a YAML 1.1 bool or base-60 float? */
static int yaml_can_plain(const char *s) {
  static const char *const special[] = {"", "~", "null", "Null", "NULL", "true", "True", "TRUE",
                                        "false", "False", "FALSE", ".nan", ".NaN", ".NAN", ".inf",
                                        ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf",
                                        "-.INF", "<<",
                                        /* isOldBool */
                                        "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N",
                                        "no", "No", "NO", "off", "Off", "OFF"};
  for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
    if (strcmp(s, special[i]) == 0) return 0;
  if (s[0] == '.') return !yaml_float_syntax(s);
  if (s[0] == '+' || s[0] == '-' || is_dec((unsigned char)s[0])) return !numeric_like(s);
  return 1;
}

/* ---- step 2: the emitter's analysis of the characters --------------------------- */

/* yaml's is_printable (the emitter runs with unicode on). */
static int yaml_printable(uint32_t c) {
  return c == 0x0a || (c >= 0x20 && c <= 0x7e) || c == 0x85 || (c >= 0xa0 && c <= 0xd7ff) ||
         (c >= 0xe000 && c <= 0xfffd && c != 0xfeff) || (c >= 0x10000 && c <= 0x10ffff);
}

/* What yaml_emitter_analyze_scalar finds, as bits. */
enum {
  A_BLOCK_IND = 1 << 0,   /* an indicator that plain style cannot carry */
  A_BREAKS = 1 << 1,      /* a line break anywhere */
  A_SPECIAL = 1 << 2,     /* an unprintable character */
  A_TABS = 1 << 3,
  A_LEAD_SPACE = 1 << 4,
  A_LEAD_BREAK = 1 << 5,
  A_TRAIL_SPACE = 1 << 6,
  A_TRAIL_BREAK = 1 << 7,
  A_BREAK_SPACE = 1 << 8, /* a space right after a break */
  A_SPACE_BREAK = 1 << 9, /* a break right after a space */
  A_BREAK_TEXT = 1 << 10, /* not ours to mirror: other text after a break */
};
#define PLAIN_BLOCKERS                                                                                     \
  (A_BLOCK_IND | A_BREAKS | A_SPECIAL | A_TABS | A_LEAD_SPACE | A_LEAD_BREAK | A_TRAIL_SPACE | A_TRAIL_BREAK | \
   A_BREAK_SPACE | A_SPACE_BREAK)
/* A_BREAK_TEXT too: yaml.v3 writes a break raw and re-indents the text
 * after it, which we do not (render.h). */
#define SINGLE_BLOCKERS (A_SPECIAL | A_TABS | A_BREAK_SPACE | A_SPACE_BREAK | A_BREAK_TEXT)

typedef struct scan {
  unsigned flags;
  int prev_space, prev_break, preceded_ws;
} scan;

static int is_ws_byte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int is_break(char c, uint32_t cp) { return c == '\n' || c == '\r' || cp == 0x85 || cp == 0x2028 || cp == 0x2029; }

/* Flow and block indicators: the first character, or ": " / " #" later. */
static int indicator(char c, int first, int followed_ws, int preceded_ws) {
  if (first) return strchr("#,[]{}&*!|>'\"%@`", c) || ((c == '?' || c == ':' || c == '-') && followed_ws);
  return (c == ':' && followed_ws) || (c == '#' && preceded_ws);
}

/* Spaces and breaks at the ends and next to each other. */
static void spaces_and_breaks(scan *a, char c, uint32_t cp, int first, int last) {
  if (c == ' ') {
    a->flags |= (first ? A_LEAD_SPACE : 0) | (last ? A_TRAIL_SPACE : 0) | (a->prev_break ? A_BREAK_SPACE : 0);
    a->prev_space = 1, a->prev_break = 0;
  } else if (is_break(c, cp)) {
    a->flags |= A_BREAKS | (first ? A_LEAD_BREAK : 0) | (last ? A_TRAIL_BREAK : 0) | (a->prev_space ? A_SPACE_BREAK : 0);
    a->prev_space = 0, a->prev_break = 1;
  } else {
    if (a->prev_break) a->flags |= A_BREAK_TEXT;
    a->prev_space = a->prev_break = 0;
  }
}

/* Scans |s| (n > 0). Returns 0 for invalid UTF-8. */
static int analyze(const char *s, size_t n, scan *a) {
  memset(a, 0, sizeof(*a));
  a->preceded_ws = 1;
  if (n >= 3 && (strncmp(s, "---", 3) == 0 || strncmp(s, "...", 3) == 0)) a->flags |= A_BLOCK_IND;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    size_t w = (size_t)wr__cfapi_utf8((const unsigned char *)s + i, &cp);
    if (w == 0) return 0;
    int last = i + w == n, followed_ws = last || is_ws_byte(s[i + w]);
    if (indicator(s[i], i == 0, followed_ws, a->preceded_ws)) a->flags |= A_BLOCK_IND;
    if (s[i] == '\t') a->flags |= A_TABS;
    else if (!yaml_printable(cp)) a->flags |= A_SPECIAL;
    spaces_and_breaks(a, s[i], cp, i == 0, last);
    a->preceded_ws = s[i] == ' ' || s[i] == '\t' || is_break(s[i], cp);
    i += w;
  }
  return 1;
}

typedef enum ystyle { Y_PLAIN, Y_SINGLE, Y_DOUBLE } ystyle;

/* select_scalar_style for a block-context value that is not a simple key,
 * after the encoder's choice (step 1). */
static ystyle yaml_style(const char *s) {
  int want_plain = yaml_can_plain(s) && !strchr(s, '\n');
  scan a;
  if (!*s) return want_plain ? Y_PLAIN : Y_DOUBLE;
  /* Invalid UTF-8: yaml.v3 would write !!binary. */
  if (!analyze(s, strlen(s), &a) || !want_plain) return Y_DOUBLE;
  if (!(a.flags & PLAIN_BLOCKERS)) return Y_PLAIN;
  return a.flags & SINGLE_BLOCKERS ? Y_DOUBLE : Y_SINGLE;
}

/* ---- writing scalars ------------------------------------------------------------------- */

static int needs_escape(uint32_t cp) {
  return !yaml_printable(cp) || cp == 0xfeff || cp == '"' || cp == '\\' || cp == '\n' || cp == '\r' ||
         is_break(0, cp);
}

static void yaml_escape(wr__cfapi_out *o, uint32_t cp) {
  static const struct {
    uint32_t cp;
    const char *esc;
  } named[] = {{0x00, "\\0"},  {0x07, "\\a"},  {0x08, "\\b"},  {0x09, "\\t"},    {0x0a, "\\n"},
               {0x0b, "\\v"},  {0x0c, "\\f"},  {0x0d, "\\r"},  {0x1b, "\\e"},    {0x22, "\\\""},
               {0x5c, "\\\\"}, {0x85, "\\N"},  {0xa0, "\\_"},  {0x2028, "\\L"},  {0x2029, "\\P"}};
  for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
    if (named[i].cp == cp) return wr__cfapi_puts(o, named[i].esc);
  if (cp <= 0xff) wr__cfapi_printf(o, "\\x%02X", cp);
  else if (cp <= 0xffff) wr__cfapi_printf(o, "\\u%04X", cp);
  else wr__cfapi_printf(o, "\\U%08X", cp);
}

static void yaml_double(wr__cfapi_out *o, const char *s) {
  wr__cfapi_putc(o, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    uint32_t cp;
    int w = wr__cfapi_utf8(p, &cp);
    if (w == 0) cp = 0xfffd, w = 1; /* the byte goes out as is */
    if (needs_escape(cp)) yaml_escape(o, cp);
    else wr__cfapi_put(o, p, (size_t)w);
    p += w;
  }
  wr__cfapi_putc(o, '"');
}

static void yaml_single(wr__cfapi_out *o, const char *s) {
  wr__cfapi_putc(o, '\'');
  for (const char *p = s; *p; p++) {
    if (*p == '\'') wr__cfapi_putc(o, '\'');
    wr__cfapi_putc(o, *p);
  }
  wr__cfapi_putc(o, '\'');
}

static int is_coll(const wr_cfapi_node *v) {
  return (v->k == WR__CFAPI_ARR || v->k == WR__CFAPI_OBJ) && v->n > 0;
}

/* A scalar, or an empty collection in flow style. */
static void yaml_scalar(wr__cfapi_out *o, const wr_cfapi_node *v) {
  static void (*const quote[])(wr__cfapi_out *, const char *) = {wr__cfapi_puts, yaml_single, yaml_double};
  switch (v->k) {
  case WR__CFAPI_NULL: wr__cfapi_puts(o, "null"); return;
  case WR__CFAPI_BOOL: wr__cfapi_puts(o, v->i ? "true" : "false"); return;
  case WR__CFAPI_INT: wr__cfapi_printf(o, "%lld", v->i); return;
  case WR__CFAPI_TIME: wr__cfapi_puts(o, v->s); return;
  case WR__CFAPI_ARR: wr__cfapi_puts(o, "[]"); return;
  case WR__CFAPI_OBJ: wr__cfapi_puts(o, "{}"); return;
  case WR__CFAPI_STR: quote[yaml_style(v->s)](o, v->s); return;
  }
}

/* ---- block collections ------------------------------------------------------------------ */

/* A collection at indentation |ind|; with |inline_first| its first line
 * continues the current one (right after "- "). */
static void yaml_node(wr__cfapi_out *o, const wr_cfapi_node *v, size_t ind, int inline_first) {
  for (size_t i = 0; i < v->n; i++) {
    const wr_cfapi_node *it = v->items[i];
    if (!(inline_first && i == 0)) {
      wr__cfapi_putc(o, '\n');
      wr__cfapi_indent(o, ind);
    }
    if (v->k == WR__CFAPI_ARR) {
      wr__cfapi_puts(o, "- ");
      /* A collection inside a sequence item is indented past the "- ". */
      if (is_coll(it)) yaml_node(o, it, ind + 2, 1);
      else yaml_scalar(o, it);
      continue;
    }
    wr__cfapi_puts(o, v->keys[i]); /* keys are plain identifiers */
    wr__cfapi_putc(o, ':');
    if (!is_coll(it)) {
      wr__cfapi_putc(o, ' ');
      yaml_scalar(o, it);
    } else {
      /* yaml_emitter_increase_indent: the next multiple of best_indent (4). */
      yaml_node(o, it, 4 * ((ind + 4) / 4), 0);
    }
  }
}

char *wr_cfapi_render_yaml(const wr_cfapi_node *v) {
  wr__cfapi_out o = {0};
  if (is_coll(v)) yaml_node(&o, v, 0, 1);
  else yaml_scalar(&o, v);
  wr__cfapi_putc(&o, '\n');
  return wr__cfapi_out_take(&o);
}
