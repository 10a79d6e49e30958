#include "lib/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <yaml.h>

#include "lib/credentials.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/log.h"
#include "lib/mem.h"

/* --- arena --------------------------------------------------------------- */

struct wr_arena_chunk {
  wr_arena_chunk *next;
  size_t used, cap;
  alignas(max_align_t) unsigned char data[];
};

#define ARENA_CHUNK 16384u

void *wr_arena_alloc(wr_arena *a, size_t n) {
  const size_t align = alignof(max_align_t);
  n = (n + align - 1) & ~(align - 1);
  if (n == 0) n = align;
  wr_arena_chunk *c = a->head;
  if (!c || c->cap - c->used < n) {
    /* Big requests get a chunk of their own so small ones keep filling the
     * current chunk. */
    size_t cap = n > ARENA_CHUNK / 4 ? n : ARENA_CHUNK;
    wr_arena_chunk *nc = wr_xmalloc(sizeof(*nc) + cap);
    nc->used = 0;
    nc->cap = cap;
    if (c && cap != ARENA_CHUNK) {
      nc->next = c->next;
      c->next = nc;
      c = nc;
    } else {
      nc->next = c;
      a->head = c = nc;
    }
  }
  void *p = c->data + c->used;
  c->used += n;
  memset(p, 0, n);
  return p;
}

char *wr_arena_strndup(wr_arena *a, const char *s, size_t len) {
  char *p = wr_arena_alloc(a, len + 1);
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}

char *wr_arena_strdup(wr_arena *a, const char *s) { return wr_arena_strndup(a, s, strlen(s)); }

void wr_arena_free(wr_arena *a) {
  wr_arena_chunk *c = a->head;
  while (c) {
    wr_arena_chunk *next = c->next;
    free(c);
    c = next;
  }
  a->head = NULL;
}

/* --- messages ------------------------------------------------------------ */

static void vformat_at(char *out, size_t outlen, const char *source, unsigned line,
                       const char *keypath, const char *fmt, va_list ap) {
  int n;
  if (!outlen) return;
  if (line)
    n = snprintf(out, outlen, "%s:%u: ", source ? source : "config", line);
  else
    n = snprintf(out, outlen, "%s: ", source ? source : "config");
  if (n < 0 || (size_t)n >= outlen) return;
  if (keypath && *keypath) {
    int m = snprintf(out + n, outlen - (size_t)n, "%s: ", keypath);
    if (m < 0 || (size_t)(n + m) >= outlen) return;
    n += m;
  }
  vsnprintf(out + n, outlen - (size_t)n, fmt, ap);
}

void wr_config_errorf(char *err, size_t errlen, const char *source, unsigned line,
                      const char *keypath, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vformat_at(err, errlen, source, line, keypath, fmt, ap);
  va_end(ap);
}

void wr_config_warn(wr_config *cfg, unsigned line, const char *keypath, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vformat_at(msg, sizeof(msg), cfg->source, line, keypath, fmt, ap);
  va_end(ap);
  /* Bounded so a file of ten thousand unknown keys cannot grow the list
   * without limit; the count of dropped warnings is not worth tracking. */
  if (cfg->n_warnings >= 1000) return;
  cfg->warnings = wr_xrealloc(cfg->warnings, (cfg->n_warnings + 1) * sizeof(char *));
  cfg->warnings[cfg->n_warnings++] = wr_xstrdup(msg);
}

/* --- tree helpers -------------------------------------------------------- */

static int key_eq(const wr_ynode *k, const char *key, int icase) {
  if (!k || k->kind != WR_YNODE_SCALAR) return 0;
  return icase ? strcasecmp(k->str, key) == 0 : strcmp(k->str, key) == 0;
}

const wr_ynode *wr_ynode_get(const wr_ynode *map, const char *key, int icase) {
  if (!map || map->kind != WR_YNODE_MAP) return NULL;
  for (size_t i = 0; i < map->n; i++)
    if (key_eq(map->pairs[i].key, key, icase)) return map->pairs[i].val;
  return NULL;
}

const char *wr_ynode_kind_name(const wr_ynode *n) {
  if (!n) return "nothing";
  switch (n->kind) {
  case WR_YNODE_NULL: return "an empty value";
  case WR_YNODE_SCALAR: return "a scalar";
  case WR_YNODE_SEQ: return "a list";
  case WR_YNODE_MAP: return "a map";
  }
  return "?";
}

int wr_ynode_bool(const wr_ynode *n, int *out) {
  /* yaml.v3 resolves true/false (YAML 1.2) and, when the target is a bool,
   * also the YAML 1.1 words, each in lower, Title and UPPER case only. */
  static const char *const yes[] = {"true", "True", "TRUE", "y",  "Y",  "yes", "Yes",
                                    "YES",  "on",   "On",   "ON", NULL};
  static const char *const no[] = {"false", "False", "FALSE", "n",  "N",  "no", "No",
                                   "NO",    "off",   "Off",   "OFF", NULL};
  if (!n || n->kind != WR_YNODE_SCALAR) return WR_ERR_INVAL;
  for (size_t i = 0; yes[i]; i++)
    if (strcmp(n->str, yes[i]) == 0) return *out = 1, WR_OK;
  for (size_t i = 0; no[i]; i++)
    if (strcmp(n->str, no[i]) == 0) return *out = 0, WR_OK;
  return WR_ERR_INVAL;
}

/* --- YAML -> tree -------------------------------------------------------- */

/* Items in one list (ingress rules are the longest) and keys in one map.
 * Duplicate keys and merges are checked by linear scans, which these bounds
 * keep cheap; no real config comes near either. */
#define MAX_COLLECTION 10000
#define MAX_MAP_KEYS 1000

typedef struct frame {
  wr_ynode *node;
  const wr_ynode **items; /* sequence items */
  wr_ypair *pairs;        /* map pairs; a pending key has val == NULL */
  size_t n, cap;
  int key_pending;
  size_t anchor; /* 1 + index in builder.anchors completed on close, or 0 */
} frame;

typedef struct anchor {
  char *name;
  const wr_ynode *node; /* NULL while the node is still being built */
} anchor;

typedef struct builder {
  wr_config *cfg;
  const char *data;
  size_t len;
  frame stack[WR_CONFIG_MAX_DEPTH];
  size_t depth;
  anchor *anchors;
  size_t n_anchors, cap_anchors;
  size_t total; /* nodes created plus nodes reached through aliases */
  const wr_ynode *root;
  int have_root;
  char *err;
  size_t errlen;
} builder;

static int b_fail(builder *b, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int b_fail(builder *b, unsigned line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vformat_at(b->err, b->errlen, b->cfg->source, line, NULL, fmt, ap);
  va_end(ap);
  return WR_ERR_CONFIG;
}

static int b_count(builder *b, size_t n, unsigned line) {
  b->total += n;
  if (b->total > WR_CONFIG_MAX_NODES)
    return b_fail(b, line, "document too large (more than %u nodes, counting aliases)",
                  WR_CONFIG_MAX_NODES);
  return WR_OK;
}

static void anchor_set(builder *b, const char *name, const wr_ynode *node) {
  /* Later definitions shadow earlier ones (YAML allows redefining). */
  if (b->n_anchors == b->cap_anchors) {
    b->cap_anchors = b->cap_anchors ? b->cap_anchors * 2 : 8;
    b->anchors = wr_xrealloc(b->anchors, b->cap_anchors * sizeof(*b->anchors));
  }
  b->anchors[b->n_anchors++] = (anchor){wr_xstrdup(name), node};
}

static anchor *anchor_find(builder *b, const char *name) {
  for (size_t i = b->n_anchors; i-- > 0;)
    if (strcmp(b->anchors[i].name, name) == 0) return &b->anchors[i];
  return NULL;
}

/* Adds a finished node to the open collection (or makes it the root). */
static int b_add(builder *b, const wr_ynode *node) {
  if (b->depth == 0) {
    if (!b->have_root) b->root = node, b->have_root = 1;
    return WR_OK;
  }
  frame *f = &b->stack[b->depth - 1];
  if (f->node->kind == WR_YNODE_SEQ) {
    if (f->n == MAX_COLLECTION)
      return b_fail(b, node->line, "more than %u items in one list", MAX_COLLECTION);
    if (f->n == f->cap) {
      f->cap = f->cap ? f->cap * 2 : 8;
      f->items = wr_xrealloc(f->items, f->cap * sizeof(*f->items));
    }
    f->items[f->n++] = node;
    return WR_OK;
  }
  if (f->key_pending) {
    f->pairs[f->n - 1].val = node;
    f->key_pending = 0;
    return WR_OK;
  }
  if (node->kind != WR_YNODE_SCALAR)
    return b_fail(b, node->line, "mapping keys must be plain strings, found %s",
                  wr_ynode_kind_name(node));
  /* Quadratic, but bounded by MAX_MAP_KEYS. */
  for (size_t i = 0; i < f->n; i++) {
    const wr_ynode *k = f->pairs[i].key;
    if (k->len == node->len && memcmp(k->str, node->str, k->len) == 0)
      return b_fail(b, node->line, "mapping key \"%s\" already defined at line %u", node->str,
                    k->line);
  }
  if (f->n == MAX_MAP_KEYS)
    return b_fail(b, node->line, "more than %u keys in one map", MAX_MAP_KEYS);
  if (f->n == f->cap) {
    f->cap = f->cap ? f->cap * 2 : 8;
    f->pairs = wr_xrealloc(f->pairs, f->cap * sizeof(*f->pairs));
  }
  f->pairs[f->n++] = (wr_ypair){node, NULL};
  f->key_pending = 1;
  return WR_OK;
}

static int is_merge_key(const wr_ynode *k) {
  return k->kind == WR_YNODE_SCALAR && k->plain && strcmp(k->str, "<<") == 0;
}

static int has_key(const wr_ypair *pairs, size_t n, const wr_ynode *key) {
  for (size_t i = 0; i < n; i++)
    if (pairs[i].key->len == key->len && memcmp(pairs[i].key->str, key->str, key->len) == 0)
      return 1;
  return 0;
}

/* Applies YAML merge keys (`<<: *base` or `<<: [*a, *b]`) as yaml.v3 does:
 * keys written in the map win, then earlier merged maps win over later ones. */
static int b_merge(builder *b, frame *f, wr_ypair **out, size_t *out_n) {
  size_t n = 0, cap = f->n;
  const wr_ynode *merge = NULL;
  wr_ypair *pairs = wr_xmalloc((cap ? cap : 1) * sizeof(*pairs));
  for (size_t i = 0; i < f->n; i++) {
    if (is_merge_key(f->pairs[i].key))
      merge = f->pairs[i].val;
    else
      pairs[n++] = f->pairs[i];
  }
  if (merge) {
    const wr_ynode *const *srcs = &merge;
    size_t nsrc = 1;
    if (merge->kind == WR_YNODE_SEQ) srcs = merge->items, nsrc = merge->n;
    for (size_t s = 0; s < nsrc; s++) {
      const wr_ynode *m = srcs[s];
      if (m->kind != WR_YNODE_MAP) {
        free(pairs);
        return b_fail(b, m->line, "map merge (<<) needs a map or a list of maps, found %s",
                      wr_ynode_kind_name(m));
      }
      for (size_t i = 0; i < m->n; i++) {
        if (has_key(pairs, n, m->pairs[i].key)) continue;
        if (n == MAX_MAP_KEYS) {
          free(pairs);
          return b_fail(b, f->node->line, "more than %u keys in one map", MAX_MAP_KEYS);
        }
        if (n == cap) {
          cap = cap ? cap * 2 : 8;
          pairs = wr_xrealloc(pairs, cap * sizeof(*pairs));
        }
        pairs[n++] = m->pairs[i];
      }
    }
  }
  *out = pairs;
  *out_n = n;
  return WR_OK;
}

static int b_open(builder *b, wr_ynode_kind kind, unsigned line, const char *anchor_name) {
  if (b->depth == WR_CONFIG_MAX_DEPTH)
    return b_fail(b, line, "nesting deeper than %u levels", WR_CONFIG_MAX_DEPTH);
  int rv = b_count(b, 1, line);
  if (rv) return rv;
  wr_ynode *node = wr_arena_alloc(&b->cfg->arena, sizeof(*node));
  node->kind = kind;
  node->line = line;
  frame *f = &b->stack[b->depth++];
  *f = (frame){.node = node};
  if (anchor_name) {
    /* Registered now as "in progress" so an alias to an enclosing node (a
     * cycle) is refused instead of looping. */
    anchor_set(b, anchor_name, NULL);
    f->anchor = b->n_anchors;
  }
  return WR_OK;
}

static int b_close(builder *b) {
  frame *f = &b->stack[b->depth - 1];
  wr_ynode *node = f->node;
  int rv = WR_OK;
  size_t weight = 1;
  if (node->kind == WR_YNODE_SEQ) {
    const wr_ynode **items = wr_arena_alloc(&b->cfg->arena, (f->n ? f->n : 1) * sizeof(*items));
    for (size_t i = 0; i < f->n; i++) items[i] = f->items[i], weight += f->items[i]->weight;
    node->items = items;
    node->n = f->n;
  } else if (f->key_pending) {
    rv = b_fail(b, node->line, "YAML error: map key without a value");
  } else {
    wr_ypair *merged = NULL;
    size_t n = 0;
    rv = b_merge(b, f, &merged, &n);
    if (rv == WR_OK) {
      wr_ypair *pairs = wr_arena_alloc(&b->cfg->arena, (n ? n : 1) * sizeof(*pairs));
      for (size_t i = 0; i < n; i++)
        pairs[i] = merged[i], weight += merged[i].key->weight + merged[i].val->weight;
      node->pairs = pairs;
      node->n = n;
    }
    free(merged);
  }
  node->weight = weight;
  if (f->anchor) b->anchors[f->anchor - 1].node = node;
  free(f->items);
  free(f->pairs);
  b->depth--;
  if (rv) return rv;
  return b_add(b, node);
}

static int scalar_is_null(const yaml_event_t *ev) {
  const char *v = (const char *)ev->data.scalar.value;
  if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
  if (ev->data.scalar.tag)
    return strcmp((const char *)ev->data.scalar.tag, YAML_NULL_TAG) == 0;
  return ev->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
         strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static int b_scalar(builder *b, const yaml_event_t *ev) {
  unsigned line = (unsigned)ev->start_mark.line + 1;
  const char *v = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  if (memchr(v, '\0', len))
    return b_fail(b, line, "NUL character in a value is not allowed");
  int rv = b_count(b, 1, line);
  if (rv) return rv;
  wr_ynode *node = wr_arena_alloc(&b->cfg->arena, sizeof(*node));
  node->kind = scalar_is_null(ev) ? WR_YNODE_NULL : WR_YNODE_SCALAR;
  node->line = line;
  node->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  node->str = wr_arena_strndup(&b->cfg->arena, v, len);
  node->len = len;
  node->weight = 1;
  if (ev->data.scalar.anchor) anchor_set(b, (const char *)ev->data.scalar.anchor, node);
  return b_add(b, node);
}

static int b_alias(builder *b, const yaml_event_t *ev) {
  unsigned line = (unsigned)ev->start_mark.line + 1;
  const char *name = (const char *)ev->data.alias.anchor;
  anchor *a = anchor_find(b, name);
  if (!a) return b_fail(b, line, "unknown anchor \"%s\" referenced", name);
  if (!a->node) return b_fail(b, line, "anchor \"%s\" refers to a node that contains it", name);
  int rv = b_count(b, a->node->weight, line);
  if (rv) return rv;
  return b_add(b, a->node);
}

static unsigned line_of_offset(const char *data, size_t len, size_t off) {
  unsigned line = 1;
  for (size_t i = 0; i < off && i < len; i++) line += data[i] == '\n';
  return line;
}

static int b_yaml_error(builder *b, const yaml_parser_t *p) {
  const char *problem = p->problem ? p->problem : "unknown error";
  unsigned line;
  size_t idx;
  if (p->error == YAML_READER_ERROR) {
    line = line_of_offset(b->data, b->len, p->problem_offset);
    return b_fail(b, line, "YAML error: %s", problem);
  }
  if (p->error == YAML_MEMORY_ERROR) return b_fail(b, 0, "YAML error: out of memory");
  line = (unsigned)p->problem_mark.line + 1;
  idx = p->problem_mark.index;
  /* libyaml's words for a tab are obscure; this is the usual mistake. */
  if (idx < b->len && b->data[idx] == '\t')
    return b_fail(b, line, "YAML error: found a tab character where indentation is expected "
                           "(YAML indents with spaces only)");
  if (p->context && p->context_mark.line != p->problem_mark.line)
    return b_fail(b, line, "YAML error: %s (%s that starts at line %u)", problem, p->context,
                  (unsigned)p->context_mark.line + 1);
  if (p->context) return b_fail(b, line, "YAML error: %s (%s)", problem, p->context);
  return b_fail(b, line, "YAML error: %s", problem);
}

static int build_yaml(builder *b) {
  yaml_parser_t p;
  int rv = WR_OK, done = 0;
  if (!yaml_parser_initialize(&p)) return b_fail(b, 0, "YAML error: out of memory");
  yaml_parser_set_input_string(&p, (const unsigned char *)b->data, b->len);
  while (!done && rv == WR_OK) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p, &ev)) {
      rv = b_yaml_error(b, &p);
      break;
    }
    unsigned line = (unsigned)ev.start_mark.line + 1;
    switch (ev.type) {
    case YAML_SCALAR_EVENT:
      rv = b_scalar(b, &ev);
      break;
    case YAML_SEQUENCE_START_EVENT:
      rv = b_open(b, WR_YNODE_SEQ, line, (const char *)ev.data.sequence_start.anchor);
      break;
    case YAML_MAPPING_START_EVENT:
      rv = b_open(b, WR_YNODE_MAP, line, (const char *)ev.data.mapping_start.anchor);
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      if (b->depth == 0) rv = b_fail(b, line, "YAML error: unbalanced collection end");
      else rv = b_close(b);
      break;
    case YAML_ALIAS_EVENT:
      rv = b_alias(b, &ev);
      break;
    case YAML_DOCUMENT_END_EVENT: /* only the first document counts, as with yaml.v3 */
    case YAML_STREAM_END_EVENT:
      done = 1;
      break;
    default:
      break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  return rv;
}

static void builder_cleanup(builder *b) {
  while (b->depth) {
    frame *f = &b->stack[--b->depth];
    free(f->items);
    free(f->pairs);
  }
  for (size_t i = 0; i < b->n_anchors; i++) free(b->anchors[i].name);
  free(b->anchors);
}

/* --- JSON -> tree -------------------------------------------------------- */

static int json_to_node(builder *b, json_t *j, unsigned depth, const wr_ynode **out) {
  wr_arena *a = &b->cfg->arena;
  int rv = b_count(b, 1, 0);
  if (rv) return rv;
  if (depth >= WR_CONFIG_MAX_DEPTH)
    return b_fail(b, 0, "nesting deeper than %u levels", WR_CONFIG_MAX_DEPTH);
  wr_ynode *node = wr_arena_alloc(a, sizeof(*node));
  char num[64];
  node->weight = 1;
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    size_t n = json_object_size(j), i = 0;
    const char *k;
    json_t *v;
    if (n > MAX_MAP_KEYS) return b_fail(b, 0, "more than %u keys in one map", MAX_MAP_KEYS);
    wr_ypair *pairs = wr_arena_alloc(a, (n ? n : 1) * sizeof(*pairs));
    node->kind = WR_YNODE_MAP;
    json_object_foreach(j, k, v) {
      wr_ynode *key = wr_arena_alloc(a, sizeof(*key));
      key->kind = WR_YNODE_SCALAR;
      key->str = wr_arena_strdup(a, k);
      key->len = strlen(k);
      key->weight = 1;
      pairs[i].key = key;
      if ((rv = json_to_node(b, v, depth + 1, &pairs[i].val))) return rv;
      node->weight += 1 + pairs[i].val->weight;
      i++;
    }
    node->pairs = pairs;
    node->n = i;
    break;
  }
  case JSON_ARRAY: {
    size_t n = json_array_size(j);
    if (n > MAX_COLLECTION) return b_fail(b, 0, "more than %u items in one list", MAX_COLLECTION);
    const wr_ynode **items = wr_arena_alloc(a, (n ? n : 1) * sizeof(*items));
    node->kind = WR_YNODE_SEQ;
    for (size_t i = 0; i < n; i++) {
      if ((rv = json_to_node(b, json_array_get(j, i), depth + 1, &items[i]))) return rv;
      node->weight += items[i]->weight;
    }
    node->items = items;
    node->n = n;
    break;
  }
  case JSON_STRING:
    node->kind = WR_YNODE_SCALAR;
    node->len = json_string_length(j);
    if (memchr(json_string_value(j), '\0', node->len))
      return b_fail(b, 0, "NUL character in a value is not allowed");
    node->str = wr_arena_strndup(a, json_string_value(j), node->len);
    break;
  case JSON_INTEGER:
    snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
    goto number;
  case JSON_REAL:
    snprintf(num, sizeof(num), "%.17g", json_real_value(j));
    goto number;
  case JSON_TRUE:
  case JSON_FALSE:
    snprintf(num, sizeof(num), "%s", json_is_true(j) ? "true" : "false");
  number:
    node->kind = WR_YNODE_SCALAR;
    node->plain = 1;
    node->str = wr_arena_strdup(a, num);
    node->len = strlen(num);
    break;
  case JSON_NULL:
    node->kind = WR_YNODE_NULL;
    node->plain = 1;
    node->str = "";
    break;
  }
  *out = node;
  return WR_OK;
}

/* --- configuration ------------------------------------------------------- */

static wr_config *config_new(const char *source, int is_json) {
  wr_config *cfg = wr_xcalloc(1, sizeof(*cfg));
  cfg->source = wr_arena_strdup(&cfg->arena, source ? source : "config");
  cfg->is_json = is_json;
  return cfg;
}

void wr_config_free(wr_config *cfg) {
  if (!cfg) return;
  for (size_t i = 0; i < cfg->n_warnings; i++) free(cfg->warnings[i]);
  free(cfg->warnings);
  wr_arena_free(&cfg->arena);
  free(cfg);
}

/* Picks out the structured top-level keys. */
static int config_split(wr_config *cfg, char *err, size_t errlen) {
  const wr_ynode *root = cfg->root;
  int ic = cfg->is_json;
  if (!root || root->kind == WR_YNODE_NULL) {
    cfg->root = NULL;
    return WR_OK;
  }
  if (root->kind != WR_YNODE_MAP) {
    wr_config_errorf(err, errlen, cfg->source, root->line, NULL,
                     "the configuration must be a map of keys, found %s",
                     wr_ynode_kind_name(root));
    return WR_ERR_CONFIG;
  }
  for (size_t i = 0; i < root->n; i++) {
    const wr_ynode *k = root->pairs[i].key, *v = root->pairs[i].val;
    if (key_eq(k, "tunnel", ic) || (ic && key_eq(k, "tunnelid", 1))) {
      if (v->kind == WR_YNODE_NULL) continue;
      if (v->kind != WR_YNODE_SCALAR) {
        wr_config_errorf(err, errlen, cfg->source, v->line, "tunnel",
                         "expected a tunnel ID or name, found %s", wr_ynode_kind_name(v));
        return WR_ERR_CONFIG;
      }
      cfg->tunnel = v->str;
    } else if (key_eq(k, "ingress", ic)) {
      cfg->ingress = v;
    } else if (key_eq(k, "warp-routing", ic) || (ic && key_eq(k, "warpRouting", 1))) {
      cfg->warp_routing = v;
    } else if (key_eq(k, "originRequest", ic)) {
      cfg->origin_request = v;
    }
  }
  return WR_OK;
}

int wr_config_parse(const char *data, size_t len, const char *source, wr_config **out,
                    char *err, size_t errlen) {
  *out = NULL;
  wr_config *cfg = config_new(source, 0);
  if (len > WR_CONFIG_MAX_FILE) {
    wr_config_errorf(err, errlen, cfg->source, 0, NULL, "file larger than %u bytes",
                     WR_CONFIG_MAX_FILE);
    wr_config_free(cfg);
    return WR_ERR_CONFIG;
  }
  builder b = {.cfg = cfg, .data = data, .len = len, .err = err, .errlen = errlen};
  int rv = build_yaml(&b);
  builder_cleanup(&b);
  if (rv == WR_OK) {
    cfg->root = b.root;
    rv = config_split(cfg, err, errlen);
  }
  if (rv) {
    wr_config_free(cfg);
    return rv;
  }
  *out = cfg;
  return WR_OK;
}

int wr_config_parse_json(const char *data, size_t len, const char *source, wr_config **out,
                         char *err, size_t errlen) {
  *out = NULL;
  wr_config *cfg = config_new(source, 1);
  json_error_t jerr;
  json_t *j = NULL;
  int rv;
  if (len > WR_CONFIG_MAX_FILE) {
    wr_config_errorf(err, errlen, cfg->source, 0, NULL, "JSON larger than %u bytes",
                     WR_CONFIG_MAX_FILE);
    rv = WR_ERR_CONFIG;
    goto out;
  }
  j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!j) {
    wr_config_errorf(err, errlen, cfg->source, 0, NULL, "invalid JSON at line %d column %d: %s",
                     jerr.line, jerr.column, jerr.text);
    rv = WR_ERR_CONFIG;
    goto out;
  }
  builder b = {.cfg = cfg, .data = data, .len = len, .err = err, .errlen = errlen};
  rv = json_to_node(&b, j, 0, &cfg->root);
  if (rv == WR_OK) rv = config_split(cfg, err, errlen);
out:
  json_decref(j);
  if (rv) {
    wr_config_free(cfg);
    return rv;
  }
  *out = cfg;
  return WR_OK;
}

int wr_config_load(const char *path, wr_config **out, char *err, size_t errlen) {
  char *data = NULL;
  size_t len = 0;
  *out = NULL;
  int rv = wr_file_read(path, WR_CONFIG_MAX_FILE, &data, &len);
  if (rv == WR_ERR_LIMIT) {
    wr_config_errorf(err, errlen, path, 0, NULL, "file larger than %u bytes", WR_CONFIG_MAX_FILE);
    return rv;
  }
  if (rv) {
    wr_config_errorf(err, errlen, path, 0, NULL, "%s", strerror(errno));
    return WR_ERR_IO;
  }
  rv = wr_config_parse(data, len, path, out, err, errlen);
  free(data);
  if (rv == WR_OK && !(*out)->root)
    wr_config_warn(*out, 0, NULL, "configuration file is empty");
  return rv;
}

/* wr_default_config_dirs is the one list of cloudflared's directories; the
 * order is directory-major (~/.cloudflared/config.yaml before
 * /etc/cloudflared/config.yml), as config.FindDefaultConfigPath. */
char *wr_config_find_default(void) {
  static const char *const names[] = {"config.yml", "config.yaml"};
  for (const char *const *d = wr_default_config_dirs; *d; d++) {
    char *dir = wr_path_expand(*d);
    for (size_t i = 0; i < 2; i++) {
      size_t n = strlen(dir) + strlen(names[i]) + 2;
      char *path = wr_xmalloc(n);
      snprintf(path, n, "%s/%s", dir, names[i]);
      if (wr_file_exists(path)) {
        free(dir);
        return path;
      }
      free(path);
    }
    free(dir);
  }
  return NULL;
}

/* cloudflared 2023.7.3 flags Warren does not implement: a config that sets
 * them is still valid, so they get a specific warning rather than "unknown". */
static const char *const cloudflared_flags[] = {
    "autoupdate-freq", "bastion", "compression-quality", "dial-edge-timeout",
    "edge-bind-address", "heartbeat-count", "heartbeat-interval", "http2-origin",
    "icmpv4-src", "icmpv6-src", "is-autoupdated", "lb-pool", "local-ssh-port",
    "log-directory", "management-diagnostics", "management-hostname",
    "max-edge-addr-retries", "max-fetch-size", "metrics-update-freq", "name",
    "no-chunked-encoding", "post-quantum", "proto-loglevel", "proxy-address",
    "proxy-connect-timeout", "proxy-connection-timeout", "proxy-dns", "proxy-dns-address",
    "proxy-dns-bootstrap", "proxy-dns-max-upstream-conns", "proxy-dns-port",
    "proxy-dns-upstream", "proxy-expect-continue-timeout", "proxy-keepalive-connections",
    "proxy-keepalive-timeout", "proxy-no-happy-eyeballs", "proxy-port", "proxy-tcp-keepalive",
    "proxy-tls-timeout", "quic-disable-pmtu-discovery", "region", "service-op-ip", "socks5",
    "ssh-idle-timeout", "ssh-max-timeout", "ssh-server", "stdin-control", "transport-loglevel",
    "udp-unregister-session-timeout", "use-reconnect-token", "logDirectory", "logLevel", NULL};

static const wr_flag *opts_flag(const wr_opts *o, const char *name) {
  for (size_t i = 0; i < o->n; i++) {
    const wr_flag *f = o->items[i].flag;
    if (strcmp(f->name, name) == 0 || (f->alias && strcmp(f->alias, name) == 0)) return f;
  }
  return NULL;
}

/* Checks one scalar for flag |f| and returns the text to store (booleans
 * normalised to "true"/"false"), or NULL after formatting an error. */
static const char *flag_value(const wr_config *cfg, const wr_flag *f, const char *key,
                              const wr_ynode *v, char *err, size_t errlen) {
  int b;
  long long ns;
  char *end;
  if (v->kind != WR_YNODE_SCALAR) {
    wr_config_errorf(err, errlen, cfg->source, v->line, key, "expected a single value, found %s",
                     wr_ynode_kind_name(v));
    return NULL;
  }
  switch (f->kind) {
  case WR_FLAG_BOOL:
    if (wr_ynode_bool(v, &b) == 0) return b ? "true" : "false";
    wr_config_errorf(err, errlen, cfg->source, v->line, key, "expected true or false, found \"%s\"",
                     v->str);
    return NULL;
  case WR_FLAG_INT:
    errno = 0;
    (void)strtoll(v->str, &end, 10);
    if (errno || end == v->str || *end) {
      wr_config_errorf(err, errlen, cfg->source, v->line, key,
                       "expected an integer, found \"%s\"", v->str);
      return NULL;
    }
    return v->str;
  case WR_FLAG_DURATION:
    if (wr_parse_duration(v->str, &ns) != 0) {
      wr_config_errorf(err, errlen, cfg->source, v->line, key,
                       "expected a duration such as 30s or 1m30s, found \"%s\"", v->str);
      return NULL;
    }
    return v->str;
  default:
    return v->str;
  }
}

int wr_config_apply_opts(wr_config *cfg, wr_opts *opts, char *err, size_t errlen) {
  const wr_ynode *root = cfg->root;
  if (!root) return WR_OK;
  for (size_t i = 0; i < root->n; i++) {
    const wr_ynode *k = root->pairs[i].key, *v = root->pairs[i].val;
    const char *key = k->str;
    int ic = cfg->is_json;
    if (key_eq(k, "tunnel", ic) || key_eq(k, "ingress", ic) || key_eq(k, "warp-routing", ic) ||
        key_eq(k, "originRequest", ic) ||
        (ic && (key_eq(k, "tunnelid", 1) || key_eq(k, "warpRouting", 1))))
      continue;
    const wr_flag *f = opts ? opts_flag(opts, key) : NULL;
    if (!f) {
      int cf = 0;
      for (const char *const *c = cloudflared_flags; *c && !cf; c++) cf = strcmp(*c, key) == 0;
      if (cf)
        wr_config_warn(cfg, k->line, NULL, "\"%s\" is not supported by warren; ignored", key);
      else
        wr_config_warn(cfg, k->line, NULL, "unknown key \"%s\"; ignored", key);
      continue;
    }
    if (strcmp(f->name, "config") == 0) {
      wr_config_warn(cfg, k->line, NULL, "\"config\" cannot be set inside a config file; ignored");
      continue;
    }
    if (v->kind == WR_YNODE_NULL) continue; /* `key:` with no value sets nothing */
    if (v->kind == WR_YNODE_SEQ && f->kind == WR_FLAG_LIST) {
      for (size_t j = 0; j < v->n; j++) {
        char kp[160];
        if (snprintf(kp, sizeof(kp), "%s[%zu]", key, j) >= (int)sizeof(kp)) kp[sizeof(kp) - 1] = 0;
        const char *s = flag_value(cfg, f, kp, v->items[j], err, errlen);
        if (!s) return WR_ERR_CONFIG;
        wr_opts_set(opts, f->name, s, WR_SRC_CONFIG);
      }
      continue;
    }
    const char *s = flag_value(cfg, f, key, v, err, errlen);
    if (!s) return WR_ERR_CONFIG;
    wr_opts_set(opts, f->name, s, WR_SRC_CONFIG);
  }
  return WR_OK;
}

int wr_config_load_opts(wr_opts *opts, wr_config **out, char *err, size_t errlen) {
  char *path = NULL;
  int rv;
  *out = NULL;
  /* Only the command line names the config file: a config file cannot. */
  if (wr_opts_isset(opts, "config"))
    path = wr_xstrdup(wr_opts_get(opts, "config"));
  else
    path = wr_config_find_default();
  if (!path) {
    wr_config_errorf(err, errlen, "config", 0, NULL,
                     "no configuration file found in the default directories");
    return WR_ERR_NOTFOUND;
  }
  wr_debug("Loading configuration from %s", path);
  rv = wr_config_load(path, out, err, errlen);
  free(path);
  if (rv) return rv;
  rv = wr_config_apply_opts(*out, opts, err, errlen);
  if (rv) {
    wr_config_free(*out);
    *out = NULL;
    return rv;
  }
  for (size_t i = 0; i < (*out)->n_warnings; i++) wr_warn("%s", (*out)->warnings[i]);
  return WR_OK;
}
