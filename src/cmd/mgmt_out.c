/* Output of the management commands, as cloudflared 2023.7.3 prints it:
 *  - `-o json`: Go's json.Encoder with SetIndent("", "  "): HTML-safe
 *    escaping (<, >, & as \u003c ...), "[]"/"{}" for empty collections,
 *    a final newline;
 *  - `-o yaml`: gopkg.in/yaml.v3's Encoder: four-space indentation except
 *    that a collection inside a sequence item is indented by two (past the
 *    "- "), strings quoted only when yaml.v3 would (when they would read
 *    back as another type, or hold indicators, leading/trailing spaces or
 *    special characters). Not reproduced: yaml.v3 folds quoted strings
 *    longer than 80 columns and writes multi-line strings as literal
 *    blocks; we write both as one double-quoted line, which reads back the
 *    same;
 *  - tables: Go's text/tabwriter (minwidth 0, tabwidth 8, padding 1, ' ').
 * See mgmt_int.h. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/mgmt_int.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

typedef enum gv_kind { GV_NULL, GV_BOOL, GV_INT, GV_STR, GV_TIME, GV_ARR, GV_OBJ } gv_kind;

struct wr__gv {
  gv_kind k;
  const char *s;   /* GV_STR, GV_TIME */
  long long i;     /* GV_BOOL, GV_INT */
  wr__gv **items;      /* GV_ARR, GV_OBJ values */
  const char **keys; /* GV_OBJ */
  size_t n, cap;
  wr_arena *a;
};

static wr__gv *gv_new(wr_arena *a, gv_kind k) {
  wr__gv *v = wr_arena_alloc(a, sizeof(*v));
  v->k = k;
  v->a = a;
  return v;
}

wr__gv *wr__gv_obj(wr_arena *a) { return gv_new(a, GV_OBJ); }
wr__gv *wr__gv_arr(wr_arena *a) { return gv_new(a, GV_ARR); }
wr__gv *wr__gv_null(wr_arena *a) { return gv_new(a, GV_NULL); }

wr__gv *wr__gv_str(wr_arena *a, const char *s) {
  wr__gv *v = gv_new(a, GV_STR);
  v->s = wr_arena_strdup(a, s ? s : "");
  return v;
}

wr__gv *wr__gv_time(wr_arena *a, const wr__mg_time *t) {
  char buf[64];
  wr__gv *v = gv_new(a, GV_TIME);
  wr__mg_time_nano(t, buf);
  v->s = wr_arena_strdup(a, buf);
  return v;
}

wr__gv *wr__gv_bool(wr_arena *a, int b) {
  wr__gv *v = gv_new(a, GV_BOOL);
  v->i = b != 0;
  return v;
}

wr__gv *wr__gv_int(wr_arena *a, long long i) {
  wr__gv *v = gv_new(a, GV_INT);
  v->i = i;
  return v;
}

wr__gv *wr__gv_uuid(wr_arena *a, const wr_uuid *u) {
  char s[WR_UUID_STR_LEN + 1];
  wr_uuid_format(u, s);
  return wr__gv_str(a, s);
}

static void gv_grow(wr__gv *c) {
  if (c->n < c->cap) return;
  size_t cap = c->cap ? c->cap * 2 : 8;
  wr__gv **items = wr_arena_alloc(c->a, cap * sizeof(*items));
  const char **keys = wr_arena_alloc(c->a, cap * sizeof(*keys));
  if (c->n) {
    memcpy(items, c->items, c->n * sizeof(*items));
    memcpy(keys, c->keys, c->n * sizeof(*keys));
  }
  c->items = items;
  c->keys = keys;
  c->cap = cap;
}

wr__gv *wr__gv_put(wr__gv *obj, const char *key, wr__gv *v) {
  gv_grow(obj);
  obj->keys[obj->n] = wr_arena_strdup(obj->a, key);
  obj->items[obj->n++] = v;
  return v;
}

wr__gv *wr__gv_push(wr__gv *arr, wr__gv *v) {
  gv_grow(arr);
  arr->keys[arr->n] = NULL;
  arr->items[arr->n++] = v;
  return v;
}

/* ---- JSON (encoding/json) --------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at |s| (1..4), or 0 if invalid. */
static int utf8_len(const unsigned char *s, uint32_t *cp) {
  if (s[0] < 0x80) return *cp = s[0], 1;
  int n = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
  if (!n) return 0;
  uint32_t v = s[0] & (0x3f >> (n - 1));
  for (int i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    v = v << 6 | (s[i] & 0x3f);
  }
  static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < min[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return n;
}

static void json_string_out(const char *s) {
  static const char hex[] = "0123456789abcdef";
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    uint32_t cp;
    int n = utf8_len(p, &cp);
    if (n == 0) {
      fputs("\\ufffd", stdout);
      p++;
      continue;
    }
    if (cp == '"' || cp == '\\') {
      putchar('\\');
      putchar((int)cp);
    } else if (cp == '\n') {
      fputs("\\n", stdout);
    } else if (cp == '\r') {
      fputs("\\r", stdout);
    } else if (cp == '\t') {
      fputs("\\t", stdout);
    } else if (cp < 0x20 || cp == '<' || cp == '>' || cp == '&') {
      printf("\\u00%c%c", hex[cp >> 4], hex[cp & 15]);
    } else if (cp == 0x2028 || cp == 0x2029) {
      printf("\\u202%c", hex[cp & 15]);
    } else {
      fwrite(p, 1, (size_t)n, stdout);
    }
    p += n;
  }
  putchar('"');
}

static void indent(int n) {
  for (int i = 0; i < n; i++) putchar(' ');
}

static void json_out(const wr__gv *v, int depth) {
  switch (v->k) {
  case GV_NULL: fputs("null", stdout); break;
  case GV_BOOL: fputs(v->i ? "true" : "false", stdout); break;
  case GV_INT: printf("%lld", v->i); break;
  case GV_STR:
  case GV_TIME: json_string_out(v->s); break;
  case GV_ARR:
  case GV_OBJ:
    if (v->n == 0) {
      fputs(v->k == GV_ARR ? "[]" : "{}", stdout);
      break;
    }
    putchar(v->k == GV_ARR ? '[' : '{');
    for (size_t i = 0; i < v->n; i++) {
      putchar('\n');
      indent(2 * (depth + 1));
      if (v->k == GV_OBJ) {
        json_string_out(v->keys[i]);
        fputs(": ", stdout);
      }
      json_out(v->items[i], depth + 1);
      if (i + 1 < v->n) putchar(',');
    }
    putchar('\n');
    indent(2 * depth);
    putchar(v->k == GV_ARR ? ']' : '}');
    break;
  }
}

void wr__mg_print_json(const wr__gv *v) {
  json_out(v, 0);
  putchar('\n');
}

/* ---- YAML (gopkg.in/yaml.v3) ----------------------------------------------------------- */

static int all_digits(const char *s, size_t n, int (*ok)(int)) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (!ok((unsigned char)s[i])) return 0;
  return 1;
}
static int is_dec(int c) { return c >= '0' && c <= '9'; }
static int is_hex(int c) { return is_dec(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int is_oct(int c) { return c >= '0' && c <= '7'; }
static int is_bin(int c) { return c == '0' || c == '1'; }

/* strconv.ParseInt(s, 0, 64) syntax (without the range check). */
static int go_int_syntax(const char *s) {
  size_t n = strlen(s);
  if (*s == '+' || *s == '-') s++, n--;
  if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) return all_digits(s + 2, n - 2, is_hex);
  if (n >= 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'O')) return all_digits(s + 2, n - 2, is_oct);
  if (n >= 2 && s[0] == '0' && (s[1] == 'b' || s[1] == 'B')) return all_digits(s + 2, n - 2, is_bin);
  if (n >= 1 && s[0] == '0') return all_digits(s, n, is_oct);
  return all_digits(s, n, is_dec);
}

/* ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
static int yaml_float_syntax(const char *s) {
  if (*s == '+' || *s == '-') s++;
  if (*s == '.') {
    s++;
    if (!is_dec((unsigned char)*s)) return 0;
    while (is_dec((unsigned char)*s)) s++;
  } else {
    if (!is_dec((unsigned char)*s)) return 0;
    while (is_dec((unsigned char)*s)) s++;
    if (*s == '.') {
      s++;
      while (is_dec((unsigned char)*s)) s++;
    }
  }
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '+' || *s == '-') s++;
    if (!is_dec((unsigned char)*s)) return 0;
    while (is_dec((unsigned char)*s)) s++;
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

/* yaml.v3's timestamp formats: 2006-1-2, 2006-1-2T15:4:5.999999999Z07:00
 * (T or t), 2006-1-2 15:4:5.999999999. */
static int yaml_timestamp(const char *s) {
  const char *p = s;
  int y, m, d, h, mi, se;
  if (!take_num(&p, 4, &y) || p - s != 4 || *p++ != '-' || !take_num(&p, 2, &m) || *p++ != '-' ||
      !take_num(&p, 2, &d))
    return 0;
  if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) return 0;
  if (!*p) return 1;
  int tz = *p == 'T' || *p == 't';
  if (!tz && *p != ' ') return 0;
  p++;
  if (!take_num(&p, 2, &h) || *p++ != ':' || !take_num(&p, 2, &mi) || *p++ != ':' || !take_num(&p, 2, &se))
    return 0;
  if (h > 23 || mi > 59 || se > 59) return 0;
  if (*p == '.') {
    p++;
    if (!is_dec((unsigned char)*p)) return 0;
    while (is_dec((unsigned char)*p)) p++;
  }
  if (!tz) return *p == '\0';
  if (*p == 'Z') return p[1] == '\0';
  if (*p != '+' && *p != '-') return 0;
  p++;
  int oh, om;
  if (!take_num(&p, 2, &oh) || *p++ != ':' || !take_num(&p, 2, &om)) return 0;
  return *p == '\0' && oh < 24 && om < 60;
}

/* ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$ */
static int base60_float(const char *s) {
  const char *p = s;
  if (*p == '+' || *p == '-') p++;
  if (!is_dec((unsigned char)*p)) return 0;
  while (is_dec((unsigned char)*p) || *p == '_') p++;
  int groups = 0;
  while (*p == ':') {
    p++;
    if (!is_dec((unsigned char)*p)) return 0;
    if (is_dec((unsigned char)p[1])) {
      if (*p > '5') return 0;
      p++;
    }
    p++;
    groups++;
  }
  if (!groups) return 0;
  if (*p == '.') {
    p++;
    while (is_dec((unsigned char)*p) || *p == '_') p++;
  }
  return *p == '\0';
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
  char c = s[0];
  if (c == '.') return !yaml_float_syntax(s);
  if (c == '+' || c == '-' || is_dec((unsigned char)c)) {
    if (yaml_timestamp(s)) return 0;
    char plain[256];
    size_t n = 0;
    for (const char *p = s; *p && n + 1 < sizeof(plain); p++)
      if (*p != '_') plain[n++] = *p;
    plain[n] = '\0';
    if (strlen(s) < sizeof(plain) && (go_int_syntax(plain) || yaml_float_syntax(plain))) return 0;
    if (base60_float(s)) return 0;
  }
  return 1;
}

/* yaml's is_printable (the emitter runs with unicode on). */
static int yaml_printable(uint32_t c) {
  return c == 0x0a || (c >= 0x20 && c <= 0x7e) || c == 0x85 || (c >= 0xa0 && c <= 0xd7ff) ||
         (c >= 0xe000 && c <= 0xfffd && c != 0xfeff) || (c >= 0x10000 && c <= 0x10ffff);
}

typedef enum ystyle { Y_PLAIN, Y_SINGLE, Y_DOUBLE } ystyle;

/* yaml_emitter_analyze_scalar + select_scalar_style for a block-context
 * value that is not a simple key. */
static ystyle yaml_style(const char *s) {
  size_t n = strlen(s);
  int block_ind = 0, breaks = 0, special = 0, tabs = 0, lead_sp = 0, trail_sp = 0, lead_br = 0,
      trail_br = 0, break_space = 0, space_break = 0, prev_sp = 0, prev_br = 0, preceded_ws = 1;
  int want_plain = yaml_can_plain(s) && !strchr(s, '\n');
  if (n == 0) return want_plain ? Y_PLAIN : Y_DOUBLE;
  if (n >= 3 && (strncmp(s, "---", 3) == 0 || strncmp(s, "...", 3) == 0)) block_ind = 1;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    int w = utf8_len((const unsigned char *)s + i, &cp);
    if (w == 0) return Y_DOUBLE; /* invalid UTF-8: yaml.v3 would write !!binary */
    int followed_ws = i + (size_t)w >= n || s[i + (size_t)w] == ' ' || s[i + (size_t)w] == '\t' ||
                      s[i + (size_t)w] == '\n' || s[i + (size_t)w] == '\r';
    char c = s[i];
    if (i == 0) {
      if (strchr("#,[]{}&*!|>'\"%@`", c)) block_ind = 1;
      if ((c == '?' || c == ':' || c == '-') && followed_ws) block_ind = 1;
    } else {
      if (c == ':' && followed_ws) block_ind = 1;
      if (c == '#' && preceded_ws) block_ind = 1;
    }
    if (c == '\t') tabs = 1;
    else if (!yaml_printable(cp)) special = 1;
    int is_space = c == ' ', is_break = c == '\n' || c == '\r' || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
    if (is_space) {
      if (i == 0) lead_sp = 1;
      if (i + (size_t)w == n) trail_sp = 1;
      if (prev_br) break_space = 1;
      prev_sp = 1, prev_br = 0;
    } else if (is_break) {
      breaks = 1;
      if (i == 0) lead_br = 1;
      if (i + (size_t)w == n) trail_br = 1;
      if (prev_sp) space_break = 1;
      prev_sp = 0, prev_br = 1;
    } else {
      prev_sp = prev_br = 0;
    }
    preceded_ws = is_space || c == '\t' || is_break;
    i += (size_t)w;
  }
  int plain_ok = 1, single_ok = 1;
  if (lead_sp || lead_br || trail_sp || trail_br) plain_ok = 0;
  if (break_space) plain_ok = single_ok = 0;
  if (space_break || tabs || special) plain_ok = single_ok = 0;
  if (breaks) plain_ok = 0;
  if (block_ind) plain_ok = 0;
  if (!want_plain) return Y_DOUBLE; /* multi-line (literal, see above) or a non-string look-alike */
  if (plain_ok) return Y_PLAIN;
  return single_ok ? Y_SINGLE : Y_DOUBLE;
}

static void yaml_double(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    uint32_t cp;
    int w = utf8_len(p, &cp);
    if (w == 0) cp = 0xfffd, w = 1;
    if (!yaml_printable(cp) || cp == 0xfeff || cp == '\n' || cp == '\r' || cp == 0x85 || cp == 0x2028 ||
        cp == 0x2029 || cp == '"' || cp == '\\') {
      switch (cp) {
      case 0x00: fputs("\\0", stdout); break;
      case 0x07: fputs("\\a", stdout); break;
      case 0x08: fputs("\\b", stdout); break;
      case 0x09: fputs("\\t", stdout); break;
      case 0x0a: fputs("\\n", stdout); break;
      case 0x0b: fputs("\\v", stdout); break;
      case 0x0c: fputs("\\f", stdout); break;
      case 0x0d: fputs("\\r", stdout); break;
      case 0x1b: fputs("\\e", stdout); break;
      case 0x22: fputs("\\\"", stdout); break;
      case 0x5c: fputs("\\\\", stdout); break;
      case 0x85: fputs("\\N", stdout); break;
      case 0xa0: fputs("\\_", stdout); break;
      case 0x2028: fputs("\\L", stdout); break;
      case 0x2029: fputs("\\P", stdout); break;
      default:
        if (cp <= 0xff) printf("\\x%02X", cp);
        else if (cp <= 0xffff) printf("\\u%04X", cp);
        else printf("\\U%08X", cp);
      }
    } else {
      fwrite(p, 1, (size_t)w, stdout);
    }
    p += w;
  }
  putchar('"');
}

static void yaml_scalar(const wr__gv *v) {
  switch (v->k) {
  case GV_NULL: fputs("null", stdout); return;
  case GV_BOOL: fputs(v->i ? "true" : "false", stdout); return;
  case GV_INT: printf("%lld", v->i); return;
  case GV_TIME: fputs(v->s, stdout); return;
  default: break;
  }
  switch (yaml_style(v->s)) {
  case Y_PLAIN: fputs(v->s, stdout); break;
  case Y_SINGLE:
    putchar('\'');
    for (const char *p = v->s; *p; p++) {
      if (*p == '\'') putchar('\'');
      putchar(*p);
    }
    putchar('\'');
    break;
  case Y_DOUBLE: yaml_double(v->s); break;
  }
}

static int is_coll(const wr__gv *v) { return (v->k == GV_ARR || v->k == GV_OBJ) && v->n > 0; }

static void yaml_node(const wr__gv *v, int ind, int inline_first);

/* A value after "key:" in a mapping at indentation |map_ind|. */
static void yaml_value(const wr__gv *v, int map_ind) {
  if (!is_coll(v)) {
    putchar(' ');
    if (v->k == GV_ARR) fputs("[]", stdout);
    else if (v->k == GV_OBJ) fputs("{}", stdout);
    else yaml_scalar(v);
    return;
  }
  /* yaml_emitter_increase_indent: the next multiple of best_indent (4). */
  yaml_node(v, 4 * ((map_ind + 4) / 4), 0);
}

/* A collection at indentation |ind|; with |inline_first| its first line
 * continues the current one (right after "- "). */
static void yaml_node(const wr__gv *v, int ind, int inline_first) {
  for (size_t i = 0; i < v->n; i++) {
    if (!(inline_first && i == 0)) {
      putchar('\n');
      indent(ind);
    }
    if (v->k == GV_OBJ) {
      fputs(v->keys[i], stdout); /* keys are plain identifiers */
      putchar(':');
      yaml_value(v->items[i], ind);
    } else {
      const wr__gv *it = v->items[i];
      fputs("- ", stdout);
      /* A collection inside a sequence item is indented past the "- ". */
      if (is_coll(it)) yaml_node(it, ind + 2, 1);
      else if (it->k == GV_ARR) fputs("[]", stdout);
      else if (it->k == GV_OBJ) fputs("{}", stdout);
      else yaml_scalar(it);
    }
  }
}

void wr__mg_print_yaml(const wr__gv *v) {
  if (is_coll(v)) {
    yaml_node(v, 0, 1);
  } else if (v->k == GV_ARR) {
    fputs("[]", stdout);
  } else if (v->k == GV_OBJ) {
    fputs("{}", stdout);
  } else {
    yaml_scalar(v);
  }
  putchar('\n');
}

int wr__mg_output_format(const wr__mg_ctx *c, const char **fmt, wr__mg_err *e) {
  const char *o = wr_opts_get(c->opts, "output");
  *fmt = o ? o : "";
  if (!**fmt || strcmp(*fmt, "json") == 0 || strcmp(*fmt, "yaml") == 0) return WR_OK;
  wr__mg_errf(e, "Unknown output format '%s'", *fmt);
  return WR_ERR_INVAL;
}

void wr__mg_render(const char *fmt, const wr__gv *json_tree, const wr__gv *yaml_tree) {
  if (strcmp(fmt, "json") == 0) wr__mg_print_json(json_tree);
  else wr__mg_print_yaml(yaml_tree);
  fflush(stdout);
}

/* ---- tables (text/tabwriter) ------------------------------------------------------------- */

void wr__mg_table_row(wr__mg_table *t, size_t ncells, ...) {
  va_list ap;
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 16;
    t->rows = wr_xrealloc(t->rows, t->cap * sizeof(*t->rows));
    t->ncells = wr_xrealloc(t->ncells, t->cap * sizeof(*t->ncells));
  }
  char **row = wr_xcalloc(ncells + 1, sizeof(char *));
  va_start(ap, ncells);
  for (size_t i = 0; i < ncells; i++) {
    const char *s = va_arg(ap, const char *);
    row[i] = wr_xstrdup(s ? s : "");
  }
  va_end(ap);
  t->rows[t->n] = row;
  t->ncells[t->n++] = ncells;
}

static size_t runes(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
  return n;
}

/* Go's tabwriter.format(): a column block is a run of consecutive lines
 * that have a tab-terminated cell in that column; its width is the widest
 * such cell plus the padding. Cells are the row's values joined and split
 * again on '\t', so a tab inside a value shifts its row as it does in
 * cloudflared. The last cell of a line (after its final tab) is not part
 * of any column. */
typedef struct tw_line {
  char **cells;
  size_t n; /* cells including the trailing, unterminated one */
} tw_line;

static void tw_write_lines(const tw_line *lines, size_t l0, size_t l1, const size_t *widths, size_t nw) {
  for (size_t i = l0; i < l1; i++) {
    for (size_t j = 0; j < lines[i].n; j++) {
      fputs(lines[i].cells[j], stdout);
      if (j < nw) indent((int)(widths[j] - runes(lines[i].cells[j])));
    }
    putchar('\n');
  }
}

static void tw_format(const tw_line *lines, size_t l0, size_t l1, size_t *widths, size_t nw) {
  size_t column = nw;
  for (size_t this = l0; this < l1; this++) {
    if (column + 1 >= lines[this].n) continue;
    tw_write_lines(lines, l0, this, widths, nw);
    l0 = this;
    size_t width = 0;
    for (; this < l1; this++) {
      if (column + 1 >= lines[this].n) break;
      size_t w = runes(lines[this].cells[column]) + 1;
      if (w > width) width = w;
    }
    widths[nw] = width;
    tw_format(lines, l0, this, widths, nw + 1);
    l0 = this;
    /* As in Go, the loop's increment then skips the line that ended the
     * block: it has no cell in this column anyway. */
  }
  tw_write_lines(lines, l0, l1, widths, nw);
}

void wr__mg_table_print(wr__mg_table *t) {
  tw_line *lines = wr_xcalloc(t->n + 1, sizeof(*lines));
  size_t maxc = 1;
  for (size_t r = 0; r < t->n; r++) {
    wr_buf b;
    wr_buf_init(&b, SIZE_MAX / 2, NULL);
    for (size_t c = 0; c < t->ncells[r]; c++) {
      wr_buf_append_str(&b, t->rows[r][c]);
      wr_buf_append(&b, "\t", 1);
      free(t->rows[r][c]);
    }
    free(t->rows[r]);
    const char *text = wr_buf_cstr(&b);
    size_t ntabs = 0;
    for (const char *p = text; *p; p++) ntabs += *p == '\t';
    lines[r].cells = wr_xcalloc(ntabs + 2, sizeof(char *));
    for (const char *p = text;;) {
      size_t len = strcspn(p, "\t");
      lines[r].cells[lines[r].n++] = wr_xstrndup(p, len);
      if (!p[len]) break;
      p += len + 1;
    }
    if (lines[r].n > maxc) maxc = lines[r].n;
    wr_buf_free(&b);
  }
  size_t *widths = wr_xcalloc(maxc + 1, sizeof(size_t));
  tw_format(lines, 0, t->n, widths, 0);
  for (size_t r = 0; r < t->n; r++) {
    for (size_t c = 0; c < lines[r].n; c++) free(lines[r].cells[c]);
    free(lines[r].cells);
  }
  free(lines);
  free(widths);
  free(t->rows);
  free(t->ncells);
  memset(t, 0, sizeof(*t));
  fflush(stdout);
}

/* ---- shared builders ------------------------------------------------------------------------ */

wr__gv *wr__mg_conns_gv(wr_arena *a, const wr__mg_conn *c, size_t n, int is_null, int yaml) {
  char ip[64];
  /* yaml.v3 writes a nil slice as [] too; encoding/json writes null. */
  if (is_null && !yaml) return wr__gv_null(a);
  wr__gv *arr = wr__gv_arr(a);
  for (size_t i = 0; i < n; i++) {
    wr__gv *o = wr__gv_push(arr, wr__gv_obj(a));
    wr__gv_put(o, yaml ? "coloname" : "colo_name", wr__gv_str(a, c[i].colo_name));
    wr__gv_put(o, "id", wr__gv_uuid(a, &c[i].id));
    wr__gv_put(o, yaml ? "ispendingreconnect" : "is_pending_reconnect", wr__gv_bool(a, c[i].pending));
    if (c[i].origin_ip.len) wr__mg_ip_str(&c[i].origin_ip, ip);
    else ip[0] = '\0'; /* nil net.IP marshals as "" */
    wr__gv_put(o, yaml ? "originip" : "origin_ip", wr__gv_str(a, ip));
    wr__gv_put(o, yaml ? "openedat" : "opened_at", wr__gv_time(a, &c[i].opened_at));
  }
  return arr;
}

wr__gv *wr__mg_tunnel_gv(wr_arena *a, const wr__mg_tunnel *t, int yaml) {
  wr__gv *o = wr__gv_obj(a);
  wr__gv_put(o, "id", wr__gv_uuid(a, &t->id));
  wr__gv_put(o, "name", wr__gv_str(a, t->name));
  wr__gv_put(o, yaml ? "createdat" : "created_at", wr__gv_time(a, &t->created_at));
  wr__gv_put(o, yaml ? "deletedat" : "deleted_at", wr__gv_time(a, &t->deleted_at));
  wr__gv_put(o, "connections", wr__mg_conns_gv(a, t->conns, t->nconns, t->conns_null, yaml));
  return o;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *wr__mg_fmt_connections(const wr__mg_conn *c, size_t n, int show_recent) {
  const char **colos = wr_xcalloc(n + 1, sizeof(char *));
  size_t nc = 0;
  for (size_t i = 0; i < n; i++)
    if (!c[i].pending || show_recent) colos[nc++] = c[i].colo_name;
  qsort(colos, nc, sizeof(char *), cmp_str);
  size_t cap = 16;
  for (size_t i = 0; i < nc; i++) cap += strlen(colos[i]) + 24;
  char *out = wr_xcalloc(cap, 1);
  size_t o = 0;
  for (size_t i = 0; i < nc;) {
    size_t j = i;
    while (j < nc && strcmp(colos[j], colos[i]) == 0) j++;
    o += (size_t)snprintf(out + o, cap - o, "%s%zux%s", o ? ", " : "", j - i, colos[i]);
    i = j;
  }
  free(colos);
  return out;
}
