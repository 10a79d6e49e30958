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
  wr_opt *e = wr_opts_find(o, buf);
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


int wr_cli_main(const wr_cmd *root, const char *prog, int argc, char **argv) {
  const wr_cmd *path[MAX_DEPTH];
  size_t depth = 1;
  wr_opts o = {.prog = prog};
  char **pos = wr_xcalloc((size_t)argc + 1, sizeof(char *));
  int npos = 0, rv = WR_EXIT_OK, want_help = 0, only_args = 0;

  path[0] = root;
  wr_opts_add_flags(&o, root->flags);
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
        wr_opts_add_flags(&o, s->flags);
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
