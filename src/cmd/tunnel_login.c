/* `warren tunnel login`: cloudflared's login flow (cloudflare-api.md §1).
 *
 *  1. ~/.cloudflared (created 0700 if missing); an existing non-empty
 *     cert.pem there ends the command with exit 0, as cloudflared does.
 *  2. A fresh Curve25519 key pair; its public key, base64url with padding
 *     (44 characters), is the only name of this login session.
 *  3. The browser URL: <loginURL>?aud=&callback=<callbackURL><pubkey>;
 *     xdg-open is tried, the URL is always printed to stderr.
 *  4. The store is polled at <callbackURL><pubkey>: up to 10 GETs of up to
 *     60 s each; >= 500 aborts, any other non-200 (or an empty 200) polls
 *     again at once, so the server is expected to hold each poll (long
 *     poll); transport errors abort.
 *  5. The body must be a cert.pem cloudflared accepts (>= 2025.2.1 checks
 *     this too; 2023.7.3 writes anything); it is written as received, with
 *     mode 0600, never over an existing file.
 *
 * URLs: cloudflared 2023.7.3 hard-codes dash.cloudflare.com/argotunnel and
 * login.cloudflareaccess.org/; >= 2025.1.1 has --loginURL and
 * --callbackURL (the latter does not move the poll there; here it does, so
 * one flag points the whole flow at a self-hosted edge). Without the flags,
 * an --api-url / TUNNEL_API_URL / `api-url:` other than Cloudflare's picks
 * the warren-edge that serves that API (edge/login.h):
 * <scheme>://<host:port>/argotunnel for the page and
 * <scheme>://<host:port>/argotunnel/transfer/ for the store. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cfapi/login.h"
#include "cmd/commands.h"
#include "cmd/mgmt_int.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/http_client.h"

extern char **environ;

/* OpenBrowser (commands.h). */
int wr_cmd_open_browser(const char *url) {
  posix_spawn_file_actions_t fa;
  pid_t pid;
  char *const argv[] = {"xdg-open", (char *)url, NULL};
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  int rv = posix_spawnp(&pid, "xdg-open", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  return rv == 0 ? pid : -1;
}

static char *concat(const char *a, const char *b) {
  size_t n = strlen(a) + strlen(b) + 1;
  char *s = wr_xmalloc(n);
  snprintf(s, n, "%s%s", a, b);
  return s;
}

/* The edge's origin (scheme://host:port) when --api-url names one, else NULL. */
static char *edge_origin(const wr_opts *o) {
  const char *api = wr_opts_get(o, "api-url");
  wr_url u;
  if (!api || !*api || strncmp(api, WR_CFAPI_DEFAULT_BASE_URL, strlen(WR_CFAPI_DEFAULT_BASE_URL)) == 0) return NULL;
  if (wr_url_parse(api, &u) != WR_OK) return NULL;
  size_t n = strlen(u.authority) + 16;
  char *s = wr_xmalloc(n);
  snprintf(s, n, "%s://%s", u.https ? "https" : "http", u.authority);
  return s;
}

/* One of the login URLs: the flag, else the edge's |path|, else Cloudflare's. */
static char *login_url(const wr_opts *o, const char *flag, const char *origin, const char *path, const char *dflt) {
  const char *v = wr_opts_get(o, flag);
  if (v && *v) return wr_xstrdup(v);
  return origin ? concat(origin, path) : wr_xstrdup(dflt);
}

/* What a login needs and what it leaves behind. */
typedef struct login {
  char *dir, *path;        /* ~/.cloudflared and the cert.pem in it */
  char *login, *callback;  /* the page and the store's prefix */
  char *store, *url;       /* the store's URL for this session, the browser URL */
  uint8_t *body;           /* the fetched cert.pem */
  size_t len;
  pid_t child;
} login;

static void login_free(login *l) {
  if (l->child > 0) waitpid(l->child, NULL, WNOHANG); /* reap it if done; else init adopts it */
  if (l->body) explicit_bzero(l->body, l->len);
  free(l->body);
  free(l->url);
  free(l->store);
  free(l->login);
  free(l->callback);
  free(l->path);
  free(l->dir);
}

/* checkForExistingCert: ~/.cloudflared (made 0700 if missing) and its
 * cert.pem. Returns 1 when a non-empty cert.pem is already there, 0 to go
 * on, -1 on error. */
static int existing_cert(login *l, wr_cfapi_error *e) {
  struct stat st;
  l->dir = wr_path_expand("~/.cloudflared");
  if (!l->dir || l->dir[0] == '~') {
    wr_cfapi_errorf(e, "cannot determine the home directory ($HOME is not set)");
    return -1;
  }
  if (stat(l->dir, &st) != 0 && (errno != ENOENT || mkdir(l->dir, 0700) != 0)) {
    wr_cfapi_errorf(e, "mkdir %s: %s", l->dir, strerror(errno));
    return -1;
  }
  l->path = concat(l->dir, "/cert.pem");
  if (stat(l->path, &st) == 0 && st.st_size > 0) return 1;
  if (stat(l->path, &st) != 0 && errno != ENOENT) {
    wr_cfapi_errorf(e, "stat %s: %s", l->path, strerror(errno));
    return -1;
  }
  return 0;
}

static void waiting(void *ud) {
  (void)ud;
  wr_info("Waiting for login...");
}

/* The session: key, browser, long poll, and a check that the answer is a
 * cert.pem. */
static int transfer(login *l, const wr_opts *o, wr_cfapi_error *e) {
  char pub[64], why[512];
  wr_origin_cert oc;
  if (wr_cfapi_login_key(pub, e) != WR_OK) return WR_ERR_CRYPTO;
  l->store = concat(l->callback, pub);
  l->url = wr_cfapi_login_url(l->login, l->store);
  /* See cloudflared's AUTH-1423: the URL goes to stderr, as git does for ssh. */
  l->child = wr_cmd_open_browser(l->url);
  if (l->child < 0)
    fprintf(stderr,
            "Please open the following URL and log in with your account:\n\n%s\n\n"
            "Leave %s running to download the cert automatically.\n",
            l->url, o->prog);
  else
    fprintf(stderr,
            "A browser window should have opened at the following URL:\n\n%s\n\n"
            "If the browser failed to open, please visit the URL above directly in your browser.\n",
            l->url);
  wr_cfapi_login_poll poll = {.url = l->store, .waiting = waiting};
  int rv = wr_cfapi_login_fetch(&poll, &l->body, &l->len, e);
  if (rv != WR_OK) return rv;
  rv = wr_origin_cert_parse((const char *)l->body, l->len, &oc, why, sizeof(why));
  explicit_bzero(&oc, sizeof(oc));
  if (rv != WR_OK) wr_cfapi_errorf(e, "the login service did not return a usable cert.pem: %s", why);
  return rv;
}

int wr_cmd_tunnel_login(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr_cfapi_error e;
  login l = {.child = -1};
  struct stat st;
  int rv = WR__MG_FAILED;
  (void)cmd;
  (void)argc;
  (void)argv;

  if (wr__mg_begin(&c, o, "tunnel login") != WR_OK) return WR_EXIT_FAIL;
  int have = existing_cert(&l, &e);
  if (have < 0) goto out;
  if (have > 0) {
    printf("You have an existing certificate at %s which login would overwrite.\n"
           "If this is intentional, please move or delete that file then run this command again.\n",
           l.path);
    rv = WR_EXIT_OK;
    goto out;
  }
  char *origin = edge_origin(o);
  l.login = login_url(o, "loginURL", origin, "/argotunnel", WR_CFAPI_LOGIN_URL);
  l.callback = login_url(o, "callbackURL", origin, "/argotunnel/transfer/", WR_CFAPI_LOGIN_CALLBACK_URL);
  free(origin);
  if (transfer(&l, o, &e) != WR_OK) {
    fprintf(stderr,
            "Failed to write the certificate due to the following error:\n%s\n\n"
            "Your browser will download the certificate instead. You will have to manually\n"
            "copy it to the following path:\n\n%s\n",
            e.msg, l.path);
    goto out;
  }
  /* Exclusive, unless an empty cert.pem was there (cloudflared writes over
   * an empty one). */
  int w = wr_file_write(l.path, l.body, l.len, 0600, !(stat(l.path, &st) == 0 && st.st_size == 0 && S_ISREG(st.st_mode)));
  if (w != WR_OK) {
    wr_cfapi_errorf(&e, "error writing cert to %s: %s", l.path, w == WR_ERR_EXISTS ? "file exists" : strerror(errno));
    goto out;
  }
  printf("You have successfully logged in.\n"
         "If you wish to copy your credentials to a server, they have been saved to:\n%s\n",
         l.path);
  rv = WR_OK;
out:
  login_free(&l);
  return wr__mg_finish(&c, rv, &e);
}
