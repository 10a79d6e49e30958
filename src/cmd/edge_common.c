/* Shared pieces of the warren-edge administration commands; see edge_int.h. */
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "cmd/edge_int.h"
#include "lib/err.h"

#define PROG "warren-edge"

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
