/* The option bag: a command's settings keyed by flag name, each value
 * tagged with where it came from (default < config.yml < environment <
 * command line), as cloudflared's urfave/cli altsrc merges them.
 *
 * It lives in lib, not cmd, because config.yml is part of it: a
 * config.yml top-level key *is* a flag name, so the config loader
 * (lib/config.h) and the ingress rules (connector/ingress.h) read and merge
 * values through this bag. The argv parser, the command tree and the help
 * pages stay in cmd/cli.h, which fills the bag.
 *
 * A wr_opts holds a table of the flags known to the current command path
 * (pointers to the callers' static wr_flag tables, not copied) and the
 * values given (copied strings, owned by the bag).
 *
 * Memory: out-of-memory aborts (the policy outside the codecs, mem.h).
 * Single-threaded: a bag is built and read by one thread. */
#ifndef WR_OPTS_H
#define WR_OPTS_H
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
  /* Why the program accepts the flag but does nothing with it, or NULL
   * (the help page says it has no effect; the command may warn with this
   * reason when it is set). */
  const char *no_effect;
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

/* An option bag for |flags| (wr_cli_main builds its own; tests,
 * fuzzers and embedders use this).
 * wr_opts_free releases the values and the table. */
void wr_opts_init(wr_opts *o, const char *prog, const wr_flag *flags);
void wr_opts_free(wr_opts *o);

/* A new bag |dst| with the flags of |src| and those of its values whose
 * source is at least |min_src| (e.g. WR_SRC_ENV: the command line and the
 * environment, without config.yml, so a reload can apply a new file). */
void wr_opts_copy_from(wr_opts *dst, const wr_opts *src, wr_opt_source min_src);

/* Adds the flags of |flags| (NULL-terminated by name); |flags| must
 * outlive the bag. A flag whose name the bag already knows (declared by an
 * ancestor command) takes over that entry's definition (kind, alias, env,
 * default), as urfave/cli lets a subcommand's own flag shadow its parent's;
 * values given so far stay. Aliases resolve to the most recently added
 * flag that has them, so `tunnel delete -f` is delete's --force even
 * though `tunnel` has -f for --overwrite-dns. */
void wr_opts_add_flags(wr_opts *o, const wr_flag *flags);
/* The entry of flag |name| (long name or alias), or NULL if unknown. */
wr_opt *wr_opts_find(const wr_opts *o, const char *name);

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

#endif
