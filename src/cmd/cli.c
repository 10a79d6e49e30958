#include "cmd/cli.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

#define MAX_DEPTH 8

static void print_cmd_path(FILE *out, const char *prog, const wr_cmd *const *path, size_t depth) {
  fputs(prog, out);
  for (size_t i = 1; i < depth; i++) fprintf(out, " %s", path[i]->name);
}

static int same_flags_above(const wr_cmd *const *path, size_t d) {
  for (size_t e = 0; e < d; e++)
    if (path[e]->flags == path[d]->flags) return 1;
  return 0;
}

/* A deeper command declares |name| again (its definition is the one used). */
static int shadowed(const wr_cmd *const *path, size_t depth, size_t d, const char *name) {
  for (size_t e = d + 1; e < depth; e++)
    for (const wr_flag *f = path[e]->flags; f && f->name; f++)
      if (path[e]->flags != path[d]->flags && strcmp(f->name, name) == 0) return 1;
  return 0;
}

/* One line of OPTIONS: names, help, whether it has no effect, default and
 * environment variables. */
static void print_flag(FILE *out, const char *prog, const wr_flag *f) {
  char names[96];
  const char *arg = f->kind == WR_FLAG_BOOL ? "" : " value";
  if (f->alias)
    snprintf(names, sizeof(names), "--%s%s, --%s%s", f->name, arg, f->alias, arg);
  else
    snprintf(names, sizeof(names), "--%s%s", f->name, arg);
  fprintf(out, "   %-36s %s", names, f->help ? f->help : "");
  if (f->no_effect) fprintf(out, " (accepted; no effect in %s)", prog);
  if (f->def) fprintf(out, " (default: %s)", f->def);
  if (f->env) {
    /* "A,B": several variables, as urfave/cli's EnvVars. */
    fputs(" [$", out);
    for (const char *c = f->env; *c; c++) {
      if (*c == ',')
        fputs(", $", out);
      else
        fputc(*c, out);
    }
    fputc(']', out);
  }
  fputc('\n', out);
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
    if (same_flags_above(path, d)) continue; /* `warren` and `tunnel` share theirs */
    for (const wr_flag *f = path[d]->flags; f && f->name; f++) {
      if (shadowed(path, depth, d, f->name)) continue;
      if (!any) fprintf(out, "\nOPTIONS:\n");
      any = 1;
      print_flag(out, prog, f);
    }
  }
  fprintf(out, "   %-36s %s\n", "--help, -h", "show help");
}

/* --- parsing ----------------------------------------------------------- */

static int is_help(const char *a) {
  return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "-help") == 0;
}

/* The first set variable of a flag's comma-separated env list. */
static const char *flag_env(const wr_flag *f) {
  char name[128];
  for (const char *p = f->env; p && *p;) {
    size_t n = strcspn(p, ",");
    if (n < sizeof(name)) {
      memcpy(name, p, n);
      name[n] = '\0';
      const char *v = getenv(name);
      if (v && *v) return v;
    }
    p += n + (p[n] == ',');
  }
  return NULL;
}

static int opts_apply_env(wr_opts *o) {
  for (size_t i = 0; i < o->n; i++) {
    const wr_flag *f = o->items[i].flag;
    const char *v;
    if (o->items[i].n || !(v = flag_env(f))) continue;
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


/* The state of one command line being read. */
typedef struct cli_parse {
  const char *prog;
  const wr_cmd *path[MAX_DEPTH]; /* root, then each subcommand named */
  size_t depth;
  wr_opts o;
  char **pos; /* positional arguments, in order */
  int npos;
  int want_help, only_args;
  int raw; /* a wr_cli_raw_args command: only a first -h/--help is ours */
} cli_parse;

const wr_flag wr_cli_raw_args[] = {{NULL}};

#define CLI_GO_ON (-1) /* a step's "keep reading" (exit codes are >= 0) */

static int print_version(const char *prog) {
  printf("%s version %s (revision %s)\n", prog, WR_VERSION, WR_GIT_REV);
  return WR_EXIT_OK;
}

/* A word that is not a flag while no positional argument came yet: a
 * subcommand of the current command, help/version, or the first
 * positional argument. Returns CLI_GO_ON or an exit code. */
static int cli_word(cli_parse *p, char *a) {
  const wr_cmd *cmd = p->path[p->depth - 1];
  const wr_cmd *s = cmd->subs;
  while (s->name && strcmp(s->name, a) != 0) s++;
  if (s->name && p->depth < MAX_DEPTH) {
    p->path[p->depth++] = s;
    wr_opts_add_flags(&p->o, s->flags);
    if (s->flags == wr_cli_raw_args) p->only_args = p->raw = 1;
  } else if (strcmp(a, "help") == 0) {
    p->want_help = 1;
  } else if (p->depth == 1 && strcmp(a, "version") == 0) {
    return print_version(p->prog);
  } else if (!cmd->fn) {
    fprintf(stderr, "%s: unknown command \"%s\". See '", p->prog, a);
    for (size_t d = 0; d < p->depth; d++)
      fprintf(stderr, "%s%s", d ? " " : "", d ? p->path[d]->name : p->prog);
    fprintf(stderr, " --help'.\n");
    return WR_EXIT_USAGE;
  } else {
    p->pos[p->npos++] = a;
  }
  return CLI_GO_ON;
}

/* One argument at argv[*i] (a flag may take the next one too). Returns
 * CLI_GO_ON or an exit code. */
static int cli_step(cli_parse *p, int argc, char **argv, int *i) {
  char *a = argv[*i];
  if (p->raw && p->npos == 0 && is_help(a)) {
    p->want_help = 1;
    return CLI_GO_ON;
  }
  if (!p->only_args) {
    if (strcmp(a, "--") == 0) {
      p->only_args = 1;
      return CLI_GO_ON;
    }
    if (is_help(a)) {
      p->want_help = 1;
      return CLI_GO_ON;
    }
    if (p->depth == 1 &&
        (strcmp(a, "--version") == 0 || strcmp(a, "-v") == 0 || strcmp(a, "-V") == 0))
      return print_version(p->prog);
    if (a[0] == '-' && a[1] != '\0')
      return parse_flag(&p->o, argc, argv, i) != 0 ? WR_EXIT_USAGE : CLI_GO_ON;
  }
  /* After "--" too, as before: a first word may still name a subcommand. */
  if (p->npos == 0 && p->path[p->depth - 1]->subs) return cli_word(p, a);
  p->pos[p->npos++] = a;
  return CLI_GO_ON;
}

int wr_cli_main(const wr_cmd *root, const char *prog, int argc, char **argv) {
  cli_parse p = {.prog = prog, .depth = 1, .o = {.prog = prog}};
  int rv = CLI_GO_ON;
  p.pos = wr_xcalloc((size_t)argc + 1, sizeof(char *));
  p.path[0] = root;
  wr_opts_add_flags(&p.o, root->flags);
  for (int i = 1; i < argc && rv == CLI_GO_ON; i++) rv = cli_step(&p, argc, argv, &i);
  if (rv == CLI_GO_ON) {
    const wr_cmd *cmd = p.path[p.depth - 1];
    if (p.want_help || !cmd->fn) {
      wr_cli_print_help(prog, p.path, p.depth);
      rv = p.want_help ? WR_EXIT_OK : WR_EXIT_USAGE;
    } else {
      opts_apply_env(&p.o);
      rv = cmd->fn(cmd, &p.o, p.npos, p.pos);
      if (rv == WR_CLI_SHOW_HELP) {
        wr_cli_print_help(prog, p.path, p.depth);
        rv = WR_EXIT_USAGE;
      }
    }
  }
  wr_opts_free(&p.o);
  free(p.pos);
  return rv;
}

int wr_cli_program_main(const wr_cmd *root, const char *prog, int argc, char **argv) {
  wr_malloc_tune();
  /* jansson 2.14 can silently drop bytes when an allocation fails mid-string;
   * aborting on out-of-memory (the project's rule outside codecs) avoids it. */
  json_set_alloc_funcs(wr_xmalloc, free);
  /* A peer that goes away mid-write must be an error on that socket, not
   * the end of the process. */
  signal(SIGPIPE, SIG_IGN);
  return wr_cli_main(root, prog, argc, argv);
}

int wr_cli_set_loglevel(const char *lvl, const char *who) {
  wr_log_level level;
  if (wr_log_parse_level(lvl, &level) != WR_OK) {
    fprintf(stderr, "%s%sunknown --loglevel \"%s\" (debug, info, warn, error, fatal)\n", who ? who : "",
            who ? ": " : "", lvl);
    return -1;
  }
  wr_log_set_level(level);
  return 0;
}
