/* The option bag: see lib/opts.h. */
#include "lib/opts.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/err.h"
#include "lib/mem.h"

static wr_opt *find_by_name(const wr_opts *o, const char *name) {
  for (size_t i = 0; i < o->n; i++)
    if (strcmp(o->items[i].flag->name, name) == 0) return &o->items[i];
  return NULL;
}

wr_opt *wr_opts_find(const wr_opts *o, const char *name) {
  /* Newest first, names and aliases alike: a subcommand's flag wins over an
   * ancestor's, also when the ancestor's name is the subcommand's alias
   * (`access tcp --id` is --service-token-id, not the tunnel's legacy --id). */
  for (size_t i = o->n; i-- > 0;) {
    const wr_flag *f = o->items[i].flag;
    if (strcmp(f->name, name) == 0 || (f->alias && strcmp(f->alias, name) == 0)) return &o->items[i];
  }
  return NULL;
}

void wr_opts_add_flags(wr_opts *o, const wr_flag *flags) {
  for (const wr_flag *f = flags; f && f->name; f++) {
    wr_opt *e = find_by_name(o, f->name);
    if (e) { /* an ancestor declares it too: the subcommand's definition counts */
      e->flag = f;
      continue;
    }
    if (o->n == o->cap) {
      o->cap = o->cap ? o->cap * 2 : 32;
      o->items = wr_xrealloc(o->items, o->cap * sizeof(*o->items));
    }
    o->items[o->n++] = (wr_opt){.flag = f};
  }
}

static void opt_clear(wr_opt *e) {
  for (size_t i = 0; i < e->n; i++) free(e->vals[i]);
  free(e->vals);
  e->vals = NULL;
  e->n = 0;
}

static void opt_push(wr_opt *e, const char *val) {
  e->vals = wr_xrealloc(e->vals, (e->n + 1) * sizeof(char *));
  e->vals[e->n++] = wr_xstrdup(val);
}

const char *wr_opts_get(const wr_opts *o, const char *name) {
  wr_opt *e = wr_opts_find(o, name);
  if (!e) return NULL;
  if (e->n) return e->vals[e->n - 1];
  return e->flag->def;
}

int wr_opts_isset(const wr_opts *o, const char *name) {
  wr_opt *e = wr_opts_find(o, name);
  return e && e->n > 0;
}

wr_opt_source wr_opts_source(const wr_opts *o, const char *name) {
  wr_opt *e = wr_opts_find(o, name);
  return e && e->n ? e->source : WR_SRC_DEFAULT;
}

int wr_parse_bool(const char *s, int *out) {
  static const char *const t[] = {"1", "t", "T", "true", "TRUE", "True"};
  static const char *const f[] = {"0", "f", "F", "false", "FALSE", "False"};
  for (size_t i = 0; i < 6; i++) {
    if (strcmp(s, t[i]) == 0) return *out = 1, WR_OK;
    if (strcmp(s, f[i]) == 0) return *out = 0, WR_OK;
  }
  return WR_ERR_INVAL;
}

int wr_opts_bool(const wr_opts *o, const char *name) {
  const char *v = wr_opts_get(o, name);
  int b = 0;
  if (!v || wr_parse_bool(v, &b) != 0) return 0;
  return b;
}

size_t wr_opts_list(const wr_opts *o, const char *name, char *const **vals) {
  wr_opt *e = wr_opts_find(o, name);
  if (!e || !e->n) {
    *vals = NULL;
    return 0;
  }
  *vals = e->vals;
  return e->n;
}

int wr_opts_known(const wr_opts *o, const char *name) { return wr_opts_find(o, name) != NULL; }

int wr_opts_set(wr_opts *o, const char *name, const char *val, wr_opt_source src) {
  wr_opt *e = wr_opts_find(o, name);
  if (!e) return WR_ERR_NOTFOUND;
  if (e->n && e->source > src) return WR_OK;
  if (e->n && e->source < src) opt_clear(e);
  if (e->flag->kind != WR_FLAG_LIST && e->n) opt_clear(e);
  opt_push(e, val);
  e->source = src;
  return WR_OK;
}

int wr_parse_duration(const char *s, long long *out_ns) {
  static const struct { const char *unit; double ns; } units[] = {
      {"ns", 1}, {"us", 1e3}, {"µs", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
  const char *p = s;
  int neg = 0;
  double total = 0;
  if (*p == '-' || *p == '+') neg = *p++ == '-';
  if (!*p) return WR_ERR_INVAL;
  if (strcmp(p, "0") == 0) return *out_ns = 0, WR_OK;
  /* cloudflared accepts bare integers as seconds in a few places (JSON). */
  int all_digits = 1;
  for (const char *q = p; *q; q++) all_digits &= isdigit((unsigned char)*q) != 0;
  if (all_digits) {
    errno = 0;
    long long v = strtoll(p, NULL, 10);
    if (errno || v > 9223372036LL) return WR_ERR_INVAL;
    *out_ns = (neg ? -v : v) * 1000000000LL;
    return WR_OK;
  }
  while (*p) {
    if (!isdigit((unsigned char)*p) && *p != '.') return WR_ERR_INVAL;
    char *end;
    errno = 0;
    double v = strtod(p, &end);
    if (end == p || errno) return WR_ERR_INVAL;
    p = end;
    size_t best = 0;
    double mult = 0;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
      size_t n = strlen(units[i].unit);
      if (strncmp(p, units[i].unit, n) == 0 && n > best) best = n, mult = units[i].ns;
    }
    if (!best) return WR_ERR_INVAL;
    p += best;
    total += v * mult;
    if (total > 9.2e18) return WR_ERR_INVAL;
  }
  *out_ns = (long long)(neg ? -total : total);
  return WR_OK;
}

/* --- help -------------------------------------------------------------- */

void wr_opts_init(wr_opts *o, const char *prog, const wr_flag *flags) {
  memset(o, 0, sizeof(*o));
  o->prog = prog;
  wr_opts_add_flags(o, flags);
}

void wr_opts_free(wr_opts *o) {
  for (size_t i = 0; i < o->n; i++) opt_clear(&o->items[i]);
  free(o->items);
  o->items = NULL;
  o->n = o->cap = 0;
}

void wr_opts_copy_from(wr_opts *dst, const wr_opts *src, wr_opt_source min_src) {
  memset(dst, 0, sizeof(*dst));
  dst->prog = src->prog;
  dst->cap = src->n ? src->n : 1;
  dst->items = wr_xcalloc(dst->cap, sizeof(*dst->items));
  for (size_t i = 0; i < src->n; i++) {
    const wr_opt *e = &src->items[i];
    wr_opt *d = &dst->items[dst->n++];
    d->flag = e->flag;
    if (!e->n || e->source < min_src) continue;
    for (size_t k = 0; k < e->n; k++) opt_push(d, e->vals[k]);
    d->source = e->source;
  }
}
