/* Table-driven command line (STYLE.md 1.12, after wireguard-tools' wg.c).
 *
 * A program is a tree of wr_cmd rows. Each row names the flags it accepts;
 * flags of every ancestor are accepted too, so cloudflared's
 * `warren tunnel --config F run ID` and `warren tunnel run --config F ID`
 * both work. Values land in a wr_opts bag keyed by the flag's long name, with
 * the source that set them, so config.yml values can be merged underneath
 * the command line (cloudflared's altsrc rule: flag > env > config file).
 * Every --help text is generated from these tables. */
#ifndef WR_CLI_H
#define WR_CLI_H
#include <stddef.h>

typedef enum wr_flag_kind {
  WR_FLAG_STRING,   /* --name VALUE */
  WR_FLAG_BOOL,     /* --name, --name=true|false */
  WR_FLAG_INT,      /* --name N (checked to be an integer) */
  WR_FLAG_DURATION, /* --name 30s (Go duration syntax, see wr_parse_duration) */
  WR_FLAG_LIST      /* repeatable: --name A --name B */
} wr_flag_kind;

typedef struct wr_flag {
  const char *name;  /* long name without dashes; NULL ends a table */
  const char *alias; /* second accepted name, or NULL */
  const char *env;   /* environment variable, or NULL */
  wr_flag_kind kind;
  const char *def;   /* default shown in help and returned by wr_opts_get */
  const char *help;
} wr_flag;

typedef enum wr_opt_source {
  WR_SRC_DEFAULT = 0,
  WR_SRC_CONFIG = 1, /* config.yml */
  WR_SRC_ENV = 2,
  WR_SRC_CLI = 3
} wr_opt_source;

typedef struct wr_opt {
  const wr_flag *flag;
  char **vals; /* for non-list flags, only the last value counts */
  size_t n;
  wr_opt_source source;
} wr_opt;

typedef struct wr_opts {
  wr_opt *items;
  size_t n, cap;
  const char *prog; /* "warren" or "warren-edge" */
} wr_opts;

struct wr_cmd;
typedef int (*wr_cmd_fn)(const struct wr_cmd *cmd, wr_opts *opts, int argc, char **argv);

typedef struct wr_cmd {
  const char *name;    /* NULL ends a table */
  const char *args;    /* positional arguments for usage, e.g. "[TUNNEL]" */
  const char *summary; /* one line */
  const char *details; /* optional paragraph */
  const wr_flag *flags;
  const struct wr_cmd *subs;
  wr_cmd_fn fn; /* NULL: the command only groups subcommands */
} wr_cmd;

/* An option bag for |flags| outside wr_cli_main (tests, fuzzers, embedding).
 * wr_opts_free releases the values and the table. */
void wr_opts_init(wr_opts *o, const char *prog, const wr_flag *flags);
void wr_opts_free(wr_opts *o);

/* Exit codes. */
#define WR_EXIT_OK 0
#define WR_EXIT_FAIL 1
#define WR_EXIT_USAGE 2

/* Parses argv against |root| and runs the selected command. Prints help for
 * -h/--help/help, the version for --version/-v/version. Returns the exit code. */
int wr_cli_main(const wr_cmd *root, const char *prog, int argc, char **argv);

/* The value of flag |name|: the last one given, else the default, else NULL. */
const char *wr_opts_get(const wr_opts *o, const char *name);
/* 1 if the flag was given on the command line, env or config file. */
int wr_opts_isset(const wr_opts *o, const char *name);
/* Where the value came from (WR_SRC_DEFAULT if never set). */
wr_opt_source wr_opts_source(const wr_opts *o, const char *name);
/* Boolean value ("true", "1", "yes" are true). */
int wr_opts_bool(const wr_opts *o, const char *name);
/* All values of a list flag. Returns the count; *vals stays owned by |o|. */
size_t wr_opts_list(const wr_opts *o, const char *name, char *const **vals);
/* Sets |name| from a lower-priority source: a no-op when a higher-or-equal
 * source already set it. List flags append when the source matches. Returns
 * 0, or WR_ERR_NOTFOUND if |name| is not a known flag of the command path. */
int wr_opts_set(wr_opts *o, const char *name, const char *val, wr_opt_source src);
/* 1 if |name| is a flag known to the current command path. */
int wr_opts_known(const wr_opts *o, const char *name);

/* Parses a Go duration ("300ms", "1.5h", "2m30s", "0"); a bare integer is
 * taken as seconds. Returns 0 or WR_ERR_INVAL. */
int wr_parse_duration(const char *s, long long *out_ns);
/* Parses a strict boolean as Go's strconv.ParseBool. Returns 0 or WR_ERR_INVAL. */
int wr_parse_bool(const char *s, int *out);

/* Prints the help page of |cmd| reached through |path| (NULL-terminated). */
void wr_cli_print_help(const char *prog, const wr_cmd *const *path, size_t depth);

#endif
