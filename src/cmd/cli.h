/* Table-driven command line (STYLE.md 1.12, after wireguard-tools' wg.c).
 *
 * A program is a tree of wr_cmd rows. Each row names the flags it accepts;
 * flags of every ancestor are accepted too, so cloudflared's
 * `warren tunnel --config F run ID` and `warren tunnel run --config F ID`
 * both work. Values land in a wr_opts bag keyed by the flag's long name, with
 * the source that set them, so config.yml values can be merged underneath
 * the command line (cloudflared's altsrc rule: flag > env > config file).
 * Every --help text is generated from these tables; a flag with a
 * no_effect reason shows "(accepted; no effect in PROG)" after its help. */
#ifndef WR_CLI_H
#define WR_CLI_H
#include <stddef.h>

#include "lib/opts.h"

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

/* A command whose |flags| is this table takes every word after its name as
 * a positional argument, flags included (cloudflared's SkipFlagParsing). */
extern const wr_flag wr_cli_raw_args[];

/* Flag texts both programs' tables use: the levels --loglevel takes, and
 * cloudflared's management hostname (the connector's management service
 * answers it, the edge routes it to one). */
#define WR_CLI_LOGLEVEL_HELP "Log level: debug, info, warn, error, fatal"
#define WR_CLI_MANAGEMENT_HOSTNAME "management.argotunnel.com"

/* --loglevel |lvl| (not NULL) as the log level. An unknown level prints
 * `[WHO: ]unknown --loglevel "LVL" (debug, info, warn, error, fatal)` to
 * stderr (|who| NULL: no prefix) and returns -1; else 0. For command
 * functions, not callbacks. */
int wr_cli_set_loglevel(const char *lvl, const char *who);

/* Exit codes. */
#define WR_EXIT_OK 0
#define WR_EXIT_FAIL 1
#define WR_EXIT_USAGE 2
/* Returned by a command that has nothing to do with these arguments: the
 * CLI prints its help and exits WR_EXIT_USAGE, as for a command without a
 * function. */
#define WR_CLI_SHOW_HELP (-2)

/* Parses argv against |root| and runs the selected command. Prints help for
 * -h/--help/help, the version for --version/-v/version. Returns the exit code. */
int wr_cli_main(const wr_cmd *root, const char *prog, int argc, char **argv);

/* A program's whole main() (warren, warren-edge): sets up the process
 * (malloc tuning, jansson allocating with wr_xmalloc so it aborts on
 * out-of-memory, SIGPIPE ignored), then wr_cli_main. Call once, from main,
 * never from a callback. Returns the exit code. */
int wr_cli_program_main(const wr_cmd *root, const char *prog, int argc, char **argv);

/* Prints the help page of |cmd| reached through |path| (NULL-terminated). */
void wr_cli_print_help(const char *prog, const wr_cmd *const *path, size_t depth);

#endif
