/* Internals shared by the warren-edge administration commands
 * (edge_admin.c, edge_users.c, edge_devices.c). Not an interface for other modules. */
#ifndef WR_CMD_EDGE_INT_H
#define WR_CMD_EDGE_INT_H
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "edge/store.h"

/* Prints "warren-edge: " and the message on stderr, with a newline; returns
 * WR_EXIT_FAIL so a command can `return wr__edge_fail(...)`. */
__attribute__((format(printf, 1, 2))) int wr__edge_fail(const char *fmt, ...);

/* The audit actor of a command run on this machine: "cli:<user name>", or
 * "cli:uid N" when the effective user has no name. Truncated to |size|. */
void wr__edge_cli_actor(char *buf, size_t size);

/* A Unix time as "YYYY-MM-DDTHH:MM:SSZ" (UTC), or its number when it does
 * not fit a calendar date. */
void wr__edge_fmt_time(int64_t t, char out[32]);
/* Prints |j| (consumed; NULL is a failure) as indented ASCII JSON on
 * stdout. Returns WR_EXIT_OK, or WR_EXIT_FAIL after saying why. */
int wr__edge_print_json(json_t *j);

struct wr_opts;
/* --output: unset or "" (*json 0: a table) or "json" (*json 1). Returns 0,
 * or -1 after saying why for any other value. */
int wr__edge_want_json(struct wr_opts *o, int *json);

/* Opens the store of the --data-dir directory for command |cmd|: *dir gets
 * the directory without trailing slashes (owned by the caller, also on
 * failure, when it may be NULL) and *s the store. On failure prints why on
 * stderr (no --data-dir, no such directory or not one, no warren.db in it, or the
 * store's own error) and returns WR_EXIT_FAIL; WR_EXIT_OK otherwise. */
/* --store (WARREN_STORE): a PostgreSQL connection string (or a SQLite
 * file) holding the store instead of DIR/warren.db; NULL when not given. */
const char *wr__edge_store_target(struct wr_opts *o);
/* The --data-dir value without trailing slashes (owned by the caller), or
 * NULL after saying that command |cmd| needs one. */
char *wr__edge_data_dir(struct wr_opts *o, const char *cmd);
int wr__edge_store_open(struct wr_opts *o, const char *cmd, char **dir, wr_store **s);

/* The help text of --account on commands that act on one account. */
#define WR__EDGE_ACCOUNT_HELP "Account ID or name (default: the only account)"
/* ... and on commands that list rows of every account unless told. */
#define WR__EDGE_ACCOUNT_FILTER_HELP "Only this account (ID or name; default: every account)"

/* Picks the account a command acts on. With |ref| (the --account value,
 * NULL or "" when not given): the account with that ID (any case), else the
 * one account with that exact name. Without: the store's only account.
 * On failure prints why on stderr ("warren-edge: ...") and returns
 * WR_EXIT_FAIL: no account, several accounts and no --account (the message
 * lists each account's ID and name and says to pass --account), an unknown
 * --account, or a name several accounts share (use the ID). A store error
 * is reported as such. Returns WR_EXIT_OK with *out filled otherwise. */
int wr__edge_pick_account(wr_store *s, const char *ref, wr_account *out);

/* What a command opens: the store of --data-dir, the actor for the audit
 * log and, as the command needs it, the account it acts on. */
typedef struct wr__edge_ctx {
  char *dir;
  wr_store *s;
  wr_account acct; /* the account picked, or the --account filter */
  int have_acct;   /* acct is set */
  char actor[160];
} wr__edge_ctx;

/* What a command does with accounts (wr__edge_ctx_open). */
enum {
  WR__EDGE_ACCOUNT_ONE = 0, /* acts on one account: --account, else the only one */
  WR__EDGE_ACCOUNT_FILTER,  /* lists every account's rows, or only --account's */
  WR__EDGE_ACCOUNT_NONE     /* picks none itself */
};

/* Opens the store (wr__edge_store_open) and picks the account as
 * |accounts| says (wr__edge_pick_account). Returns WR_EXIT_OK, or
 * WR_EXIT_FAIL after saying why, with |c| closed. */
int wr__edge_ctx_open(struct wr_opts *o, const char *cmd, int accounts, wr__edge_ctx *c);
void wr__edge_ctx_close(wr__edge_ctx *c);

#endif
