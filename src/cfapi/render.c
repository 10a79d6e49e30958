/* Go value trees and their JSON encoding (encoding/json's Encoder with
 * two-space indent). See render.h; YAML is yaml.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfapi/render_int.h"
#include "lib/encoding.h"
#include "lib/mem.h"

/* ---- the tree ------------------------------------------------------------------ */

static wr_cfapi_node *node_new(wr_arena *a, wr__cfapi_kind k) {
  wr_cfapi_node *v = wr_arena_alloc(a, sizeof(*v));
  v->k = k;
  v->a = a;
  return v;
}

wr_cfapi_node *wr_cfapi_node_obj(wr_arena *a) { return node_new(a, WR__CFAPI_OBJ); }
wr_cfapi_node *wr_cfapi_node_arr(wr_arena *a) { return node_new(a, WR__CFAPI_ARR); }
wr_cfapi_node *wr_cfapi_node_null(wr_arena *a) { return node_new(a, WR__CFAPI_NULL); }

wr_cfapi_node *wr_cfapi_node_slice(wr_arena *a, int is_null, wr_cfapi_enc enc) {
  return is_null && enc == WR_CFAPI_JSON ? wr_cfapi_node_null(a) : wr_cfapi_node_arr(a);
}

wr_cfapi_node *wr_cfapi_node_str(wr_arena *a, const char *s) {
  wr_cfapi_node *v = node_new(a, WR__CFAPI_STR);
  v->s = wr_arena_strdup(a, s ? s : "");
  return v;
}

wr_cfapi_node *wr_cfapi_node_time(wr_arena *a, const wr_cfapi_time *t) {
  char buf[WR_CFAPI_TIME_STRLEN];
  wr_cfapi_node *v = node_new(a, WR__CFAPI_TIME);
  wr_cfapi_time_nano(t, buf);
  v->s = wr_arena_strdup(a, buf);
  return v;
}

wr_cfapi_node *wr_cfapi_node_bool(wr_arena *a, int b) {
  wr_cfapi_node *v = node_new(a, WR__CFAPI_BOOL);
  v->i = b != 0;
  return v;
}

wr_cfapi_node *wr_cfapi_node_int(wr_arena *a, long long i) {
  wr_cfapi_node *v = node_new(a, WR__CFAPI_INT);
  v->i = i;
  return v;
}

wr_cfapi_node *wr_cfapi_node_uuid(wr_arena *a, const wr_uuid *u) {
  char s[WR_UUID_STR_LEN + 1];
  wr_uuid_format(u, s);
  return wr_cfapi_node_str(a, s);
}

static void grow(wr_cfapi_node *c) {
  if (c->n < c->cap) return;
  size_t cap = c->cap ? c->cap * 2 : 8;
  wr_cfapi_node **items = wr_arena_alloc(c->a, cap * sizeof(*items));
  const char **keys = wr_arena_alloc(c->a, cap * sizeof(*keys));
  if (c->n) {
    memcpy(items, c->items, c->n * sizeof(*items));
    memcpy(keys, c->keys, c->n * sizeof(*keys));
  }
  c->items = items;
  c->keys = keys;
  c->cap = cap;
}

wr_cfapi_node *wr_cfapi_node_put(wr_cfapi_node *obj, const char *key, wr_cfapi_node *v) {
  grow(obj);
  obj->keys[obj->n] = wr_arena_strdup(obj->a, key);
  obj->items[obj->n++] = v;
  return v;
}

wr_cfapi_node *wr_cfapi_node_push(wr_cfapi_node *arr, wr_cfapi_node *v) {
  grow(arr);
  arr->keys[arr->n] = NULL;
  arr->items[arr->n++] = v;
  return v;
}

/* ---- output strings ---------------------------------------------------------------- */

void wr__cfapi_put(wr__cfapi_out *o, const void *p, size_t n) {
  if (o->len + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 256;
    while (cap < o->len + n + 1) cap *= 2;
    o->s = wr_xrealloc(o->s, cap);
    o->cap = cap;
  }
  memcpy(o->s + o->len, p, n);
  o->len += n;
  o->s[o->len] = '\0';
}

void wr__cfapi_puts(wr__cfapi_out *o, const char *s) { wr__cfapi_put(o, s, strlen(s)); }
void wr__cfapi_putc(wr__cfapi_out *o, char c) { wr__cfapi_put(o, &c, 1); }

void wr__cfapi_printf(wr__cfapi_out *o, const char *fmt, ...) {
  char buf[64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n > 0) wr__cfapi_put(o, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void wr__cfapi_indent(wr__cfapi_out *o, size_t n) {
  for (size_t i = 0; i < n; i++) wr__cfapi_putc(o, ' ');
}

char *wr__cfapi_out_take(wr__cfapi_out *o) {
  char *s = o->s ? o->s : wr_xstrdup("");
  memset(o, 0, sizeof(*o));
  return s;
}

int wr__cfapi_utf8(const unsigned char *s, uint32_t *cp) {
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

/* ---- JSON (encoding/json) ------------------------------------------------------------ */

/* encoding/json's escape of one code point, or NULL to copy it as is. */
static const char *json_escape(uint32_t cp, char buf[8]) {
  switch (cp) {
  case '"': return "\\\"";
  case '\\': return "\\\\";
  case '\n': return "\\n";
  case '\r': return "\\r";
  case '\t': return "\\t";
  case 0x2028: return "\\u2028";
  case 0x2029: return "\\u2029";
  default: break;
  }
  if (cp >= 0x20 && cp != '<' && cp != '>' && cp != '&') return NULL;
  memcpy(buf, "\\u00", 4);
  wr_hex_byte((uint8_t)cp, 0, buf + 4);
  buf[6] = '\0';
  return buf;
}

static void json_string(wr__cfapi_out *o, const char *s) {
  wr__cfapi_putc(o, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    uint32_t cp;
    char buf[8];
    int n = wr__cfapi_utf8(p, &cp);
    const char *esc = n == 0 ? "\\ufffd" : json_escape(cp, buf);
    if (esc) wr__cfapi_puts(o, esc);
    else wr__cfapi_put(o, p, (size_t)n);
    p += n ? n : 1;
  }
  wr__cfapi_putc(o, '"');
}

static void json_node(wr__cfapi_out *o, const wr_cfapi_node *v, size_t depth);

static void json_coll(wr__cfapi_out *o, const wr_cfapi_node *v, size_t depth) {
  int arr = v->k == WR__CFAPI_ARR;
  if (v->n == 0) {
    wr__cfapi_puts(o, arr ? "[]" : "{}");
    return;
  }
  wr__cfapi_putc(o, arr ? '[' : '{');
  for (size_t i = 0; i < v->n; i++) {
    wr__cfapi_putc(o, '\n');
    wr__cfapi_indent(o, 2 * (depth + 1));
    if (!arr) {
      json_string(o, v->keys[i]);
      wr__cfapi_puts(o, ": ");
    }
    json_node(o, v->items[i], depth + 1);
    if (i + 1 < v->n) wr__cfapi_putc(o, ',');
  }
  wr__cfapi_putc(o, '\n');
  wr__cfapi_indent(o, 2 * depth);
  wr__cfapi_putc(o, arr ? ']' : '}');
}

static void json_node(wr__cfapi_out *o, const wr_cfapi_node *v, size_t depth) {
  switch (v->k) {
  case WR__CFAPI_NULL: wr__cfapi_puts(o, "null"); break;
  case WR__CFAPI_BOOL: wr__cfapi_puts(o, v->i ? "true" : "false"); break;
  case WR__CFAPI_INT: wr__cfapi_printf(o, "%lld", v->i); break;
  case WR__CFAPI_STR:
  case WR__CFAPI_TIME: json_string(o, v->s); break;
  case WR__CFAPI_ARR:
  case WR__CFAPI_OBJ: json_coll(o, v, depth); break;
  }
}

char *wr_cfapi_render_json(const wr_cfapi_node *v) {
  wr__cfapi_out o = {0};
  json_node(&o, v, 0);
  wr__cfapi_putc(&o, '\n');
  return wr__cfapi_out_take(&o);
}

char *wr_cfapi_render(const wr_cfapi_node *v, wr_cfapi_enc enc) {
  return enc == WR_CFAPI_JSON ? wr_cfapi_render_json(v) : wr_cfapi_render_yaml(v);
}
