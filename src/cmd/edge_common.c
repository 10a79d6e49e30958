/* Shared pieces of the warren-edge administration commands; see edge_int.h. */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "cmd/edge_int.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/mem.h"
#include "lib/opts.h"

#define PROG "warren-edge"
#define DB_NAME "warren.db"

int wr__edge_fail(const char *fmt, ...) {
  va_list ap;
  fputs(PROG ": ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return WR_EXIT_FAIL;
}

void wr__edge_cli_actor(char *buf, size_t size) {
  struct passwd pw, *res = NULL;
  char tmp[1024];
  uid_t uid = geteuid();
  if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res && res->pw_name[0])
    snprintf(buf, size, "cli:%s", res->pw_name);
  else
    snprintf(buf, size, "cli:uid %u", (unsigned)uid);
}

void wr__edge_fmt_time(int64_t t, char out[32]) {
  time_t tt = (time_t)t;
  struct tm tm;
  if (!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
    snprintf(out, 32, "%lld", (long long)t);
}

int wr__edge_print_json(json_t *j) {
  char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_ENSURE_ASCII) : NULL;
  json_decref(j);
  if (!text) return wr__edge_fail("cannot encode the output as JSON");
  puts(text);
  free(text);
  return WR_EXIT_OK;
}

int wr__edge_want_json(wr_opts *o, int *json) {
  const char *v = wr_opts_get(o, "output");
  *json = 0;
  if (!v || !*v) return 0;
  if (strcmp(v, "json") == 0) return *json = 1, 0;
  wr__edge_fail("unsupported --output \"%s\": use --output json, or leave it out for a table", v);
  return -1;
}

void wr__edge_ctx_close(wr__edge_ctx *c) {
  wr_store_close(c->s);
  free(c->dir);
  memset(c, 0, sizeof(*c));
}

int wr__edge_ctx_open(wr_opts *o, const char *cmd, int accounts, wr__edge_ctx *c) {
  const char *acct = wr_opts_get(o, "account");
  memset(c, 0, sizeof(*c));
  wr__edge_cli_actor(c->actor, sizeof(c->actor));
  if (wr__edge_store_open(o, cmd, &c->dir, &c->s) != WR_EXIT_OK) goto fail;
  if (accounts == WR__EDGE_ACCOUNT_ONE || (accounts == WR__EDGE_ACCOUNT_FILTER && acct && *acct)) {
    if (wr__edge_pick_account(c->s, acct, &c->acct) != WR_EXIT_OK) goto fail;
    c->have_acct = 1;
  }
  return WR_EXIT_OK;
fail:
  wr__edge_ctx_close(c);
  return WR_EXIT_FAIL;
}

/* Prints every account as "  ID  NAME" lines, the choices an operator has. */
static void list_accounts(const wr_account *a, size_t n) {
  for (size_t i = 0; i < n; i++) fprintf(stderr, "  %s  %s\n", a[i].id, a[i].name);
}

int wr__edge_pick_account(wr_store *s, const char *ref, wr_account *out) {
  wr_account *all = NULL;
  size_t n = 0, named = 0, pick = 0;
  int rv = WR_EXIT_FAIL;
  if (wr_store_account_list(s, &all, &n) != WR_OK) {
    fprintf(stderr, PROG ": cannot read the accounts: %s\n", wr_store_errmsg(s));
    return WR_EXIT_FAIL;
  }
  if (n == 0) {
    fprintf(stderr, PROG ": the store has no account; `warren-edge init` makes one\n");
    goto out;
  }
  if (!ref || !*ref) {
    if (n == 1) {
      *out = all[0];
      rv = WR_EXIT_OK;
    } else {
      fprintf(stderr, PROG ": the store has %zu accounts; choose one with --account ID (or NAME):\n", n);
      list_accounts(all, n);
    }
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    if (strcasecmp(all[i].id, ref) == 0) {
      *out = all[i];
      rv = WR_EXIT_OK;
      goto out;
    }
  for (size_t i = 0; i < n; i++)
    if (strcmp(all[i].name, ref) == 0) {
      if (!named++) pick = i;
    }
  if (named == 1) {
    *out = all[pick];
    rv = WR_EXIT_OK;
  } else if (named > 1) {
    fprintf(stderr, PROG ": --account %s: %zu accounts have that name; give the ID instead:\n", ref, named);
    list_accounts(all, n);
  } else {
    fprintf(stderr, PROG ": --account %s: no account has that ID or name; the accounts are:\n", ref);
    list_accounts(all, n);
  }
out:
  free(all);
  return rv;
}

const char *wr__edge_store_target(wr_opts *o) {
  const char *v = wr_opts_get(o, "store");
  return v && *v ? v : NULL;
}

char *wr__edge_data_dir(wr_opts *o, const char *cmd) {
  const char *v = wr_opts_get(o, "data-dir");
  if (!v || !*v) {
    wr__edge_fail("%s needs a data directory: pass --data-dir DIR (or set WARREN_EDGE_DATA_DIR)", cmd);
    return NULL;
  }
  char *d = wr_xstrdup(v);
  for (size_t n = strlen(d); n > 1 && d[n - 1] == '/'; n--) d[n - 1] = '\0';
  return d;
}

int wr__edge_store_open(wr_opts *o, const char *cmd, char **dir, wr_store **s) {
  char err[WR_STORE_ERRMSG_MAX], *db, *d;
  struct stat st;
  size_t n;
  int rv = WR_EXIT_FAIL;
  *s = NULL;
  if (!(d = *dir = wr__edge_data_dir(o, cmd))) return WR_EXIT_FAIL;
  if (stat(d, &st) != 0 && errno == ENOENT)
    return wr__edge_fail("no data directory at %s: run `warren-edge init --data-dir %s --zone ZONE` first", d, d);
  if (stat(d, &st) != 0)
    return wr__edge_fail("cannot use data directory %s: %s", d, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return wr__edge_fail("%s is not a directory; --data-dir names the directory `warren-edge init` created", d);
  if (wr__edge_store_target(o)) {
    if (wr_store_open(wr__edge_store_target(o), 0, s, err, sizeof(err)) != WR_OK)
      return wr__edge_fail("%s", err);
    return WR_EXIT_OK;
  }
  n = strlen(d) + sizeof(DB_NAME) + 1;
  db = wr_xmalloc(n);
  snprintf(db, n, "%s/%s", d, DB_NAME);
  if (!wr_file_exists(db))
    wr__edge_fail("%s is not a warren-edge data directory (it has no %s): run `warren-edge init --data-dir %s "
                  "--zone ZONE` to create one",
                  d, DB_NAME, d);
  else if (wr_store_open(db, 0, s, err, sizeof(err)) != WR_OK)
    wr__edge_fail("%s", err);
  else
    rv = WR_EXIT_OK;
  free(db);
  return rv;
}
