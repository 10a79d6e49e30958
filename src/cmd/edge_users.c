/* warren-edge user add | passwd | roll-token | list: the people (and
 * machines) who may use the edge's API and log in on its login page.
 *
 * Like the other local administration commands (edge_admin.c) these work on
 * the data directory directly, next to a running edge, and write audit rows
 * with the actor "cli:<local user>".
 *
 * Passwords come from --password-file FILE ("-" for standard input; the
 * first line), the WARREN_EDGE_PASSWORD environment variable, or a prompt on
 * the terminal (twice, without echo), and are stored as PBKDF2 hashes
 * (edge/password.h). Service users (--service) are for automation: they have
 * no password and cannot sign in on the login page; they get an API token,
 * printed once or written into a cert.pem with --out. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "cmd/edge_int.h"
#include "edge/password.h"
#include "edge/pki.h"
#include "edge/store.h"
#include "lib/credentials.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/mem.h"

#define PROG "warren-edge"
#define PASSWORD_ENV "WARREN_EDGE_PASSWORD"
#define PASSWORD_FILE_MAX 4096

/* The account for a new user: --account, or the only one. */
static int pick_account(wr_opts *o, wr__edge_ctx *c, wr_account *a) {
  return wr__edge_pick_account(c->s, wr_opts_get(o, "account"), a);
}

/* What `user passwd` and `user roll-token` do to the user |u| in the store
 * |c| has open. Returns WR_EXIT_OK, or WR_EXIT_FAIL after saying why. */
typedef int (*user_act)(wr_opts *o, wr__edge_ctx *c, const wr_user *u);

/* `user passwd` and `user roll-token`: the one argument is an existing
 * user's EMAIL. Opens the store, finds the user, runs |act| on it and closes
 * the store. Returns |act|'s result, or WR_EXIT_FAIL after saying why there
 * was no user to act on. */
static int on_user(wr_opts *o, const char *cmd, int argc, char **argv, user_act act) {
  wr__edge_ctx c;
  wr_user u;
  int rv = WR_EXIT_FAIL;
  if (argc != 1) return wr__edge_fail("%s takes exactly one argument, the user's EMAIL (got %d)", cmd, argc);
  if (wr__edge_ctx_open(o, cmd, WR__EDGE_ACCOUNT_NONE, &c) != WR_EXIT_OK) return WR_EXIT_FAIL;
  if (wr_store_user_get_by_email(c.s, argv[0], &u) != WR_OK)
    wr__edge_fail("%s (see `warren-edge user list`)", wr_store_errmsg(c.s));
  else
    rv = act(o, &c, &u);
  wr__edge_ctx_close(&c);
  return rv;
}

/* The zone for a token or cert.pem: --zone NAME (or id) of the user's
 * account; else, when |required|, the account's only zone. *found is 0 when
 * there is none to use. */
static int pick_zone(wr_opts *o, wr__edge_ctx *c, const char *account_id, int required, wr_zone *z,
                     int *found) {
  const char *want = wr_opts_get(o, "zone");
  wr_zone *zones = NULL;
  size_t n = 0;
  int rv = WR_EXIT_FAIL;
  *found = 0;
  if ((!want || !*want) && !required) return WR_EXIT_OK;
  if (wr_store_zone_list(c->s, account_id, &zones, &n) != WR_OK) return wr__edge_fail("%s", wr_store_errmsg(c->s));
  if (want && *want) {
    for (size_t i = 0; i < n; i++)
      if (strcasecmp(zones[i].name, want) == 0 || strcasecmp(zones[i].id, want) == 0) {
        *z = zones[i];
        *found = 1;
      }
    if (!*found) wr__edge_fail("the user's account has no zone %s", want);
    else rv = WR_EXIT_OK;
  } else if (n == 1) {
    *z = zones[0];
    *found = 1;
    rv = WR_EXIT_OK;
  } else {
    if (n) wr__edge_fail("the account has %zu zones: choose one with --zone NAME", n);
    else wr__edge_fail("the account has no zone to make a certificate for");
  }
  free(zones);
  return rv;
}

/* --- passwords ------------------------------------------------------------------- */

/* Strips one trailing "\n" or "\r\n". */
static void chomp(char *s, size_t *len) {
  if (*len && s[*len - 1] == '\n') s[--*len] = '\0';
  if (*len && s[*len - 1] == '\r') s[--*len] = '\0';
}

/* The first line of |path| ("-": standard input). */
static int read_password_file(const char *path, char **out, size_t *len) {
  char *buf = wr_xmalloc(PASSWORD_FILE_MAX + 1);
  size_t n = 0;
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
  if (!f) {
    free(buf);
    return wr__edge_fail("cannot read --password-file %s: %s", path, strerror(errno));
  }
  /* Only the first line counts; a file bigger than that is not a password. */
  if (!fgets(buf, PASSWORD_FILE_MAX + 1, f)) buf[0] = '\0';
  if (f != stdin) fclose(f);
  n = strlen(buf);
  if (n == PASSWORD_FILE_MAX && buf[n - 1] != '\n') {
    explicit_bzero(buf, PASSWORD_FILE_MAX + 1);
    free(buf);
    return wr__edge_fail("--password-file %s: the first line is longer than %d bytes", path, PASSWORD_FILE_MAX);
  }
  chomp(buf, &n);
  *out = buf;
  *len = n;
  return WR_EXIT_OK;
}

/* One line from the terminal without echo. */
static int prompt_line(FILE *tty, const char *prompt, char *buf, size_t size) {
  struct termios old, quiet;
  int fd = fileno(tty), ok;
  if (tcgetattr(fd, &old) != 0) return -1;
  quiet = old;
  quiet.c_lflag &= ~(tcflag_t)ECHO;
  quiet.c_lflag |= ECHONL;
  /* Echo off before the prompt: TCSAFLUSH drops what was typed earlier,
   * never what answers the prompt. */
  if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0) return -1;
  fputs(prompt, tty);
  fflush(tty);
  ok = fgets(buf, (int)size, tty) != NULL;
  tcsetattr(fd, TCSAFLUSH, &old);
  return ok ? 0 : -1;
}

static int prompt_password(const char *email, char **out, size_t *len) {
  char prompt[WR_STORE_EMAIL_MAX + 32];
  char *a = wr_xmalloc(PASSWORD_FILE_MAX + 1), *b = wr_xmalloc(PASSWORD_FILE_MAX + 1);
  size_t na, nb;
  int rv = WR_EXIT_FAIL;
  FILE *tty = fopen("/dev/tty", "r+");
  if (!tty) {
    wr__edge_fail("no password given: pass --password-file FILE (\"-\" for standard input), set "
         PASSWORD_ENV ", or run on a terminal to be asked");
    goto out;
  }
  snprintf(prompt, sizeof(prompt), "Password for %s: ", email);
  if (prompt_line(tty, prompt, a, PASSWORD_FILE_MAX + 1) != 0 ||
      prompt_line(tty, "Repeat the password: ", b, PASSWORD_FILE_MAX + 1) != 0) {
    wr__edge_fail("cannot read the password from the terminal");
    goto out;
  }
  na = strlen(a);
  nb = strlen(b);
  chomp(a, &na);
  chomp(b, &nb);
  if (na != nb || memcmp(a, b, na) != 0) {
    wr__edge_fail("the two passwords differ; nothing was changed");
    goto out;
  }
  *out = a;
  *len = na;
  a = NULL;
  rv = WR_EXIT_OK;
out:
  if (tty) fclose(tty);
  if (a) explicit_bzero(a, PASSWORD_FILE_MAX + 1);
  explicit_bzero(b, PASSWORD_FILE_MAX + 1);
  free(a);
  free(b);
  return rv;
}

/* Reads, checks and hashes a new password for |email|. */
static int new_password_hash(wr_opts *o, const char *email, char hash[WR_PASSWORD_ENCODED_MAX]) {
  const char *file = wr_opts_get(o, "password-file"), *env = getenv(PASSWORD_ENV);
  char *pw = NULL, err[160];
  size_t len = 0;
  int rv;
  if (file && *file) rv = read_password_file(file, &pw, &len);
  else if (env && *env) {
    pw = wr_xstrdup(env);
    len = strlen(pw);
    rv = WR_EXIT_OK;
  } else {
    rv = prompt_password(email, &pw, &len);
  }
  if (rv != WR_EXIT_OK) return rv;
  if (wr_password_check_policy(pw, len, err, sizeof(err)) != WR_OK) rv = wr__edge_fail("%s", err);
  else if (wr_password_hash(pw, len, 0, hash) != WR_OK) rv = wr__edge_fail("cannot hash the password (GnuTLS failed)");
  explicit_bzero(pw, len);
  free(pw);
  return rv;
}

/* --- cert.pem for service users ------------------------------------------------------ */

/* Writes cert.pem for |token| and |z| to |path| (0600), as `tunnel login`
 * would have made it. */
static int write_cert_pem(wr__edge_ctx *c, const wr_zone *z, const char *token, const char *path,
                          int exclusive) {
  wr_pem_pair pair = {0};
  wr_origin_cert oc;
  char err[256], *pem = NULL;
  int rv = WR_EXIT_FAIL, r;
  memset(&oc, 0, sizeof(oc));
  if (wr_pki_issue_origin_cert(c->dir, z->name, &pair, err, sizeof(err)) != WR_OK) {
    wr__edge_fail("%s", err);
    goto out;
  }
  snprintf(oc.zone_id, sizeof(oc.zone_id), "%s", z->id);
  snprintf(oc.account_id, sizeof(oc.account_id), "%s", z->account_id);
  snprintf(oc.api_token, sizeof(oc.api_token), "%s", token);
  if (!(pem = wr_origin_cert_encode(&oc, pair.cert, pair.key))) {
    wr__edge_fail("cannot encode cert.pem");
    goto out;
  }
  if ((r = wr_file_write(path, pem, strlen(pem), 0600, exclusive)) != WR_OK) {
    wr__edge_fail("cannot write %s: %s", path, r == WR_ERR_EXISTS ? "it already exists" : strerror(errno));
    goto out;
  }
  rv = WR_EXIT_OK;
out:
  explicit_bzero(&oc, sizeof(oc));
  if (pem) explicit_bzero(pem, strlen(pem));
  free(pem);
  wr_pem_pair_free(&pair);
  return rv;
}

/* Hands a new token over: into cert.pem with --out, else on stdout. */
static int hand_over_token(wr_opts *o, wr__edge_ctx *c, const wr_user *u, int have_zone, const wr_zone *z,
                           const char *token, int exclusive) {
  const char *out = wr_opts_get(o, "out");
  if (out && *out) {
    if (!have_zone) return wr__edge_fail("--out needs a zone for the certificate: pass --zone NAME");
    if (write_cert_pem(c, z, token, out, exclusive) != WR_EXIT_OK) return WR_EXIT_FAIL;
    printf("Wrote cert.pem for %s (zone %s) to %s. Keep it secret; use it with "
           "`cloudflared tunnel --origincert %s ...` or TUNNEL_ORIGIN_CERT.\n",
           u->email, z->name, out, out);
    return WR_EXIT_OK;
  }
  printf("API token for %s%s%s (shown once; keep it secret):\n%s\n", u->email,
         have_zone ? ", zone " : "", have_zone ? z->name : "", token);
  return WR_EXIT_OK;
}

/* --- commands ---------------------------------------------------------------------------- */

int wr_cmd_edge_user_add(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__edge_ctx c;
  wr_account a;
  wr_user u;
  wr_zone z;
  char hash[WR_PASSWORD_ENCODED_MAX] = "", token[WR_STORE_TOKEN_LEN + 1] = "";
  int service = wr_opts_bool(o, "service"), have_zone = 0, rv = WR_EXIT_FAIL;
  const char *out = wr_opts_get(o, "out");
  (void)cmd;

  if (argc != 1) return wr__edge_fail("user add takes exactly one argument, the user's EMAIL (got %d)", argc);
  if (service && wr_opts_isset(o, "password-file"))
    return wr__edge_fail("service users have no password (they use API tokens); drop --password-file or --service");
  if (!service && out && *out)
    return wr__edge_fail("--out is for service users (--service); people get cert.pem by logging in");
  if (!service && wr_opts_isset(o, "zone"))
    return wr__edge_fail("--zone is for service users (--service); people pick a zone when they log in");
  if (out && *out && wr_file_exists(out)) return wr__edge_fail("%s already exists; choose another --out", out);
  if (wr__edge_ctx_open(o, "user add", WR__EDGE_ACCOUNT_NONE, &c) != WR_EXIT_OK) return WR_EXIT_FAIL;
  if (pick_account(o, &c, &a) != WR_EXIT_OK) goto out;
  if (wr_store_user_get_by_email(c.s, argv[0], &u) == WR_OK) {
    wr__edge_fail("a user with email %s already exists (`warren-edge user passwd` changes a password)", u.email);
    goto out;
  }
  if (service && pick_zone(o, &c, a.id, out && *out, &z, &have_zone) != WR_EXIT_OK) goto out;
  if (!service && new_password_hash(o, argv[0], hash) != WR_EXIT_OK) goto out;
  if (wr_store_user_create(c.s, c.actor, a.id, argv[0], service ? NULL : hash, service, &u) != WR_OK) {
    wr__edge_fail("cannot add user: %s", wr_store_errmsg(c.s));
    goto out;
  }
  if (!service) {
    printf("Added user %s (id %s) to account %s (%s).\n"
           "They can now log in on the edge's login page (/argotunnel on --api-listen), e.g. with "
           "`warren tunnel login`.\n",
           u.email, u.id, a.name, a.id);
    rv = WR_EXIT_OK;
    goto out;
  }
  if (wr_store_token_create(c.s, c.actor, u.id, have_zone ? z.id : NULL, token, NULL) != WR_OK) {
    wr__edge_fail("added service user %s but could not issue its API token: %s; run `warren-edge user "
         "roll-token %s`",
         u.email, wr_store_errmsg(c.s), u.email);
    goto out;
  }
  printf("Added service user %s (id %s) to account %s (%s). It cannot log in on the login page.\n",
         u.email, u.id, a.name, a.id);
  rv = hand_over_token(o, &c, &u, have_zone, &z, token, 1);
out:
  explicit_bzero(hash, sizeof(hash));
  explicit_bzero(token, sizeof(token));
  wr__edge_ctx_close(&c);
  return rv;
}

static int set_password(wr_opts *o, wr__edge_ctx *c, const wr_user *u) {
  char hash[WR_PASSWORD_ENCODED_MAX] = "";
  int rv = WR_EXIT_FAIL;
  if (u->is_service)
    return wr__edge_fail("%s is a service user: it has no password (use `warren-edge user roll-token`)", u->email);
  if (new_password_hash(o, u->email, hash) != WR_EXIT_OK) goto out;
  if (wr_store_user_set_password(c->s, c->actor, u->id, hash) != WR_OK) {
    wr__edge_fail("%s", wr_store_errmsg(c->s));
    goto out;
  }
  printf("Set the password of %s.\n", u->email);
  rv = WR_EXIT_OK;
out:
  explicit_bzero(hash, sizeof(hash));
  return rv;
}

int wr_cmd_edge_user_passwd(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return on_user(o, "user passwd", argc, argv, set_password);
}

static int roll_token(wr_opts *o, wr__edge_ctx *c, const wr_user *u) {
  wr_zone z;
  size_t revoked = 0;
  char token[WR_STORE_TOKEN_LEN + 1] = "";
  const char *out = wr_opts_get(o, "out");
  int have_zone = 0, rv = WR_EXIT_FAIL;
  if (pick_zone(o, c, u->account_id, out && *out, &z, &have_zone) != WR_EXIT_OK) goto out;
  if (wr_store_token_roll(c->s, c->actor, u->id, have_zone ? z.id : NULL, token, NULL, &revoked) != WR_OK) {
    wr__edge_fail("%s", wr_store_errmsg(c->s));
    goto out;
  }
  printf("Revoked %zu API token%s of %s: cert.pem files holding %s no longer work, and their "
         "users must log in again.\n",
         revoked, revoked == 1 ? "" : "s", u->email, revoked == 1 ? "it" : "them");
  /* The old file's token is dead: overwriting it is the point. */
  rv = hand_over_token(o, c, u, have_zone, &z, token, 0);
out:
  explicit_bzero(token, sizeof(token));
  return rv;
}

int wr_cmd_edge_user_roll_token(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return on_user(o, "user roll-token", argc, argv, roll_token);
}

int wr_cmd_edge_user_list(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__edge_ctx c;
  wr_user *users = NULL;
  size_t n = 0, email_w = 5;
  const char *acct = wr_opts_get(o, "account");
  int json, rv = WR_EXIT_FAIL;
  json_t *arr = NULL;
  (void)cmd;
  if (argc > 0) return wr__edge_fail("user list takes no arguments (got \"%s\")", argv[0]);
  if (wr__edge_want_json(o, &json) != 0) return WR_EXIT_FAIL;
  if (wr__edge_ctx_open(o, "user list", WR__EDGE_ACCOUNT_NONE, &c) != WR_EXIT_OK) return WR_EXIT_FAIL;
  /* --account by ID or name, checked: an unknown one is an error, not an
   * empty list. */
  wr_account a;
  if (acct && *acct && pick_account(o, &c, &a) != WR_EXIT_OK) goto out;
  if (wr_store_user_list(c.s, acct && *acct ? a.id : NULL, &users, &n) != WR_OK) {
    wr__edge_fail("%s", wr_store_errmsg(c.s));
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    if (strlen(users[i].email) > email_w) email_w = strlen(users[i].email);
  if (json) arr = json_array();
  else printf("%-*s  %-7s  %-8s  %-6s  %-20s  %-32s  %s\n", (int)email_w, "EMAIL", "KIND", "PASSWORD",
              "TOKENS", "CREATED", "ID", "ACCOUNT");
  for (size_t i = 0; i < n; i++) {
    const wr_user *u = &users[i];
    wr_api_token *toks = NULL;
    size_t nt = 0;
    char created[32];
    if (wr_store_token_list(c.s, u->id, 0, &toks, &nt) != WR_OK) {
      wr__edge_fail("%s", wr_store_errmsg(c.s));
      goto out;
    }
    free(toks);
    wr__edge_fmt_time(u->created_at, created);
    if (json)
      json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:b,s:I,s:s}", "id", u->id, "email", u->email,
                                           "account_id", u->account_id, "kind",
                                           u->is_service ? "service" : "user", "has_password",
                                           u->has_password, "live_tokens", (json_int_t)nt,
                                           "created_at", created));
    else
      printf("%-*s  %-7s  %-8s  %-6zu  %-20s  %-32s  %s\n", (int)email_w, u->email,
             u->is_service ? "service" : "user", u->has_password ? "yes" : "no", nt, created, u->id,
             u->account_id);
  }
  rv = json ? wr__edge_print_json(json_incref(arr)) : WR_EXIT_OK;
out:
  json_decref(arr);
  free(users);
  wr__edge_ctx_close(&c);
  return rv;
}
