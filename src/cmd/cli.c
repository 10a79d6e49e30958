#include "cmd/cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/err.h"
#include "lib/mem.h"

#define MAX_DEPTH 8

static wr_opt *opts_find(const wr_opts *o, const char *name) {
  for (size_t i = 0; i < o->n; i++) {
    const wr_flag *f = o->items[i].flag;
    if (strcmp(f->name, name) == 0 || (f->alias && strcmp(f->alias, name) == 0))
      return &o->items[i];
  }
  return NULL;
}

static void opts_add_flags(wr_opts *o, const wr_flag *flags) {
  for (const wr_flag *f = flags; f && f->name; f++) {
    if (opts_find(o, f->name)) continue; /* an ancestor already declares it */
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
  wr_opt *e = opts_find(o, name);
  if (!e) return NULL;
  if (e->n) return e->vals[e->n - 1];
  return e->flag->def;
}

int wr_opts_isset(const wr_opts *o, const char *name) {
  wr_opt *e = opts_find(o, name);
  return e && e->n > 0;
}

wr_opt_source wr_opts_source(const wr_opts *o, const char *name) {
  wr_opt *e = opts_find(o, name);
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
  wr_opt *e = opts_find(o, name);
  if (!e || !e->n) {
    *vals = NULL;
    return 0;
  }
  *vals = e->vals;
  return e->n;
}

int wr_opts_known(const wr_opts *o, const char *name) { return opts_find(o, name) != NULL; }

int wr_opts_set(wr_opts *o, const char *name, const char *val, wr_opt_source src) {
  wr_opt *e = opts_find(o, name);
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

static void print_cmd_path(FILE *out, const char *prog, const wr_cmd *const *path, size_t depth) {
  fputs(prog, out);
  for (size_t i = 1; i < depth; i++) fprintf(out, " %s", path[i]->name);
}

void wr_cli_print_help(const char *prog, const wr_cmd *const *path, size_t depth) {
  const wr_cmd *cmd = path[depth - 1];
  FILE *out = stdout;
  fprintf(out, "NAME:\n   ");
  print_cmd_path(out, prog, path, depth);
  fprintf(out, " - %s\n\nUSAGE:\n   ", cmd->summary ? cmd->summary : "");
  print_cmd_path(out, prog, path, depth);
  if (cmd->flags && cmd->flags->name) fputs(" [options]", out);
  if (cmd->subs) fputs(" command [command options]", out);
  if (cmd->args) fprintf(out, " %s", cmd->args);
  fputc('\n', out);
  if (cmd->details) fprintf(out, "\nDESCRIPTION:\n   %s\n", cmd->details);
  if (cmd->subs) {
    fprintf(out, "\nCOMMANDS:\n");
    for (const wr_cmd *s = cmd->subs; s->name; s++)
      fprintf(out, "   %-14s %s\n", s->name, s->summary ? s->summary : "");
    fprintf(out, "\n   Run '");
    print_cmd_path(out, prog, path, depth);
    fprintf(out, " COMMAND --help' for more about a command.\n");
  }
  int any = 0;
  for (size_t d = 0; d < depth; d++) {
    for (const wr_flag *f = path[d]->flags; f && f->name; f++) {
      if (!any) fprintf(out, "\nOPTIONS:\n");
      any = 1;
      char names[96];
      const char *arg = f->kind == WR_FLAG_BOOL ? "" : " value";
      if (f->alias)
        snprintf(names, sizeof(names), "--%s%s, --%s%s", f->name, arg, f->alias, arg);
      else
        snprintf(names, sizeof(names), "--%s%s", f->name, arg);
      fprintf(out, "   %-36s %s", names, f->help ? f->help : "");
      if (f->def) fprintf(out, " (default: %s)", f->def);
      if (f->env) fprintf(out, " [$%s]", f->env);
      fputc('\n', out);
    }
  }
  fprintf(out, "   %-36s %s\n", "--help, -h", "show help");
}

/* --- parsing ----------------------------------------------------------- */

static int is_help(const char *a) {
  return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "-help") == 0;
}

static int opts_apply_env(wr_opts *o) {
  for (size_t i = 0; i < o->n; i++) {
    const wr_flag *f = o->items[i].flag;
    const char *v;
    if (!f->env || o->items[i].n || !(v = getenv(f->env)) || !*v) continue;
    if (f->kind == WR_FLAG_LIST) {
      /* urfave/cli splits list env vars on commas. */
      char *copy = wr_xstrdup(v), *save = NULL;
      for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        wr_opts_set(o, f->name, t, WR_SRC_ENV);
      free(copy);
    } else {
      wr_opts_set(o, f->name, v, WR_SRC_ENV);
    }
  }
  return 0;
}

static int check_value(const char *prog, const wr_flag *f, const char *v) {
  long long ns;
  int b;
  char *end;
  switch (f->kind) {
  case WR_FLAG_BOOL:
    if (wr_parse_bool(v, &b) != 0) goto bad;
    break;
  case WR_FLAG_INT:
    errno = 0;
    (void)strtoll(v, &end, 10);
    if (errno || end == v || *end) goto bad;
    break;
  case WR_FLAG_DURATION:
    if (wr_parse_duration(v, &ns) != 0) goto bad;
    break;
  default:
    break;
  }
  return 0;
bad:
  fprintf(stderr, "%s: invalid value \"%s\" for flag --%s\n", prog, v, f->name);
  return -1;
}

/* Parses one flag at argv[*i]; returns 0, or -1 after printing an error. */
static int parse_flag(wr_opts *o, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  const char *name = a + (a[1] == '-' ? 2 : 1);
  const char *eq = strchr(name, '=');
  char buf[128];
  size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
  if (nlen >= sizeof(buf)) nlen = sizeof(buf) - 1;
  memcpy(buf, name, nlen);
  buf[nlen] = '\0';
  wr_opt *e = opts_find(o, buf);
  if (!e) {
    fprintf(stderr, "%s: flag provided but not defined: -%s\n", o->prog, buf);
    return -1;
  }
  const char *val;
  if (eq) {
    val = eq + 1;
  } else if (e->flag->kind == WR_FLAG_BOOL) {
    val = "true";
  } else {
    if (*i + 1 >= argc) {
      fprintf(stderr, "%s: flag needs an argument: --%s\n", o->prog, buf);
      return -1;
    }
    val = argv[++*i];
  }
  if (check_value(o->prog, e->flag, val) != 0) return -1;
  wr_opts_set(o, e->flag->name, val, WR_SRC_CLI);
  return 0;
}

void wr_opts_init(wr_opts *o, const char *prog, const wr_flag *flags) {
  memset(o, 0, sizeof(*o));
  o->prog = prog;
  opts_add_flags(o, flags);
}

void wr_opts_free(wr_opts *o) {
  for (size_t i = 0; i < o->n; i++) opt_clear(&o->items[i]);
  free(o->items);
  o->items = NULL;
  o->n = o->cap = 0;
}

int wr_cli_main(const wr_cmd *root, const char *prog, int argc, char **argv) {
  const wr_cmd *path[MAX_DEPTH];
  size_t depth = 1;
  wr_opts o = {.prog = prog};
  char **pos = wr_xcalloc((size_t)argc + 1, sizeof(char *));
  int npos = 0, rv = WR_EXIT_OK, want_help = 0, only_args = 0;

  path[0] = root;
  opts_add_flags(&o, root->flags);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const wr_cmd *cmd = path[depth - 1];
    if (!only_args && strcmp(a, "--") == 0) {
      only_args = 1;
    } else if (!only_args && is_help(a)) {
      want_help = 1;
    } else if (!only_args && depth == 1 && (strcmp(a, "--version") == 0 || strcmp(a, "-v") == 0 ||
                                            strcmp(a, "-V") == 0)) {
      printf("%s version %s (revision %s)\n", prog, WR_VERSION, WR_GIT_REV);
      goto out;
    } else if (!only_args && a[0] == '-' && a[1] != '\0') {
      if (parse_flag(&o, argc, argv, &i) != 0) {
        rv = WR_EXIT_USAGE;
        goto out;
      }
    } else if (npos == 0 && cmd->subs) {
      const wr_cmd *s = cmd->subs;
      while (s->name && strcmp(s->name, a) != 0) s++;
      if (s->name && depth < MAX_DEPTH) {
        path[depth++] = s;
        opts_add_flags(&o, s->flags);
      } else if (strcmp(a, "help") == 0) {
        want_help = 1;
      } else if (depth == 1 && strcmp(a, "version") == 0) {
        printf("%s version %s (revision %s)\n", prog, WR_VERSION, WR_GIT_REV);
        goto out;
      } else if (!cmd->fn) {
        fprintf(stderr, "%s: unknown command \"%s\". See '", prog, a);
        for (size_t d = 0; d < depth; d++) fprintf(stderr, "%s%s", d ? " " : "", d ? path[d]->name : prog);
        fprintf(stderr, " --help'.\n");
        rv = WR_EXIT_USAGE;
        goto out;
      } else {
        pos[npos++] = argv[i];
      }
    } else {
      pos[npos++] = argv[i];
    }
  }
  if (want_help || !path[depth - 1]->fn) {
    wr_cli_print_help(prog, path, depth);
    rv = want_help ? WR_EXIT_OK : WR_EXIT_USAGE;
    goto out;
  }
  opts_apply_env(&o);
  rv = path[depth - 1]->fn(path[depth - 1], &o, npos, pos);
out:
  wr_opts_free(&o);
  free(pos);
  return rv;
}
