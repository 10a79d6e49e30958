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
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include "cmd/commands.h"
#include "cmd/mgmt_int.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/http_client.h"

#define DEFAULT_LOGIN_URL "https://dash.cloudflare.com/argotunnel"
#define DEFAULT_CALLBACK_URL "https://login.cloudflareaccess.org/"
#define POLL_ATTEMPTS 10
#define POLL_TIMEOUT_MS 60000u

extern char **environ;

/* The public half of a fresh X25519 key pair, base64url with padding. */
static int login_pubkey(char out[64], wr__mg_err *e) {
  gnutls_privkey_t key = NULL;
  gnutls_datum_t x = {NULL, 0};
  gnutls_ecc_curve_t curve;
  int rv = WR_ERR_CRYPTO;
  if (gnutls_privkey_init(&key) < 0 || gnutls_privkey_generate2(key, GNUTLS_PK_ECDH_X25519, 0, 0, NULL, 0) < 0 ||
      gnutls_privkey_export_ecc_raw2(key, &curve, &x, NULL, NULL, 0) < 0 || x.size != 32) {
    wr__mg_errf(e, "cannot generate a Curve25519 key pair");
    goto out;
  }
  wr_base64_encode(x.data, x.size, out, 64, 1);
  for (char *p = out; *p; p++) {
    if (*p == '+') *p = '-';
    else if (*p == '/') *p = '_';
  }
  rv = WR_OK;
out:
  gnutls_free(x.data);
  if (key) gnutls_privkey_deinit(key);
  return rv;
}

static int hexval(int c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* url.QueryUnescape, leniently: bad escapes stay as they are. */
static char *query_unescape(const char *s, size_t n) {
  char *out = wr_xmalloc(n + 1);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '+') out[o++] = ' ';
    else if (s[i] == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
             hexval((unsigned char)s[i + 2]) >= 0) {
      out[o++] = (char)(hexval((unsigned char)s[i + 1]) << 4 | hexval((unsigned char)s[i + 2]));
      i += 2;
    } else out[o++] = s[i];
  }
  out[o] = '\0';
  return out;
}

/* buildRequestURL: the login URL with aud and callback added to its query,
 * re-encoded sorted by key as url.Values.Encode does. Caller frees. */
static char *build_login_url(const char *login, const char *callback) {
  const char *qm = strchr(login, '?');
  size_t base_len = qm ? (size_t)(qm - login) : strlen(login);
  wr__mg_query q = {0};
  if (qm) {
    const char *p = qm + 1;
    while (*p) {
      size_t n = strcspn(p, "&;");
      if (n) {
        const char *eq = memchr(p, '=', n);
        char *k = query_unescape(p, eq ? (size_t)(eq - p) : n);
        char *v = eq ? query_unescape(eq + 1, n - (size_t)(eq + 1 - p)) : wr_xstrdup("");
        wr__mg_query_set(&q, k, v);
        free(k);
        free(v);
      }
      p += n;
      if (*p) p++;
    }
  }
  wr__mg_query_set(&q, "callback", callback);
  wr__mg_query_set(&q, "aud", "");
  const char *qs = wr__mg_query_str(&q);
  size_t len = base_len + strlen(qs) + 2;
  char *url = wr_xmalloc(len);
  snprintf(url, len, "%.*s?%s", (int)base_len, login, qs);
  wr__mg_query_free(&q);
  return url;
}

/* OpenBrowser: xdg-open URL, detached, output discarded. Returns the child
 * pid, or -1 if it could not be started. */
static pid_t open_browser(const char *url) {
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

/* transferRequest: long-polls |url|; *body gets the resource. */
static int poll_store(const char *url, uint8_t **body, size_t *len, wr__mg_err *e) {
  char ua[64], err[1024];
  snprintf(ua, sizeof(ua), "warren/%s", WR_VERSION);
  wr_http_header hdrs[] = {{"User-Agent", 10, ua, strlen(ua)}};
  for (int i = 0; i < POLL_ATTEMPTS; i++) {
    wr_http_response r;
    wr_http_request req = {.method = "GET", .url = url, .headers = hdrs, .nheaders = 1,
                           .timeout_ms = POLL_TIMEOUT_MS, .max_body = WR_CRED_MAX_FILE};
    if (wr_http_do(&req, &r, err, sizeof(err)) != WR_OK) {
      wr__mg_errf(e, "%s", err);
      wr_http_response_free(&r);
      return WR_ERR_IO;
    }
    if (r.status >= 500) {
      wr__mg_errf(e, "error on request %d", r.status);
      wr_http_response_free(&r);
      return WR_ERR_IO;
    }
    if (r.status != 200) {
      wr_info("Waiting for login...");
      wr_http_response_free(&r);
      continue;
    }
    if (r.body_len > 0) {
      *body = r.body;
      *len = r.body_len;
      r.body = NULL;
      wr_http_response_free(&r);
      return WR_OK;
    }
    wr_http_response_free(&r);
  }
  wr__mg_errf(e, "Failed to fetch resource");
  return WR_ERR_NOTFOUND;
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
  if (!api || !*api || strncmp(api, WR__MG_DEFAULT_API_URL, strlen(WR__MG_DEFAULT_API_URL)) == 0) return NULL;
  if (wr_url_parse(api, &u) != WR_OK) return NULL;
  size_t n = strlen(u.authority) + 16;
  char *s = wr_xmalloc(n);
  snprintf(s, n, "%s://%s", u.https ? "https" : "http", u.authority);
  return s;
}

int wr_cmd_tunnel_login(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr__mg_err e;
  char *dir = NULL, *path = NULL, *origin = NULL, *url = NULL, *login = NULL, *callback = NULL, *store = NULL;
  uint8_t *body = NULL;
  size_t len = 0;
  char pub[64];
  pid_t child = -1;
  struct stat st;
  int rv = WR_EXIT_FAIL;
  (void)cmd;
  (void)argc;
  (void)argv;

  if (wr__mg_begin(&c, o, "tunnel login") != WR_OK) return WR_EXIT_FAIL;
  /* checkForExistingCert */
  dir = wr_path_expand("~/.cloudflared");
  if (!dir || dir[0] == '~') {
    wr__mg_errf(&e, "cannot determine the home directory ($HOME is not set)");
    goto fail;
  }
  if (stat(dir, &st) != 0) {
    if (errno != ENOENT || mkdir(dir, 0700) != 0) {
      wr__mg_errf(&e, "mkdir %s: %s", dir, strerror(errno));
      goto fail;
    }
  }
  size_t plen = strlen(dir) + 16;
  path = wr_xmalloc(plen);
  snprintf(path, plen, "%s/cert.pem", dir);
  if (stat(path, &st) == 0 && st.st_size > 0) {
    printf("You have an existing certificate at %s which login would overwrite.\n"
           "If this is intentional, please move or delete that file then run this command again.\n",
           path);
    rv = WR_EXIT_OK;
    goto out;
  }
  if (stat(path, &st) != 0 && errno != ENOENT) {
    wr__mg_errf(&e, "stat %s: %s", path, strerror(errno));
    goto fail;
  }

  origin = edge_origin(o);
  const char *lf = wr_opts_get(o, "loginURL"), *cf = wr_opts_get(o, "callbackURL");
  if (lf && *lf) login = wr_xstrdup(lf);
  else if (origin) login = concat(origin, "/argotunnel");
  else login = wr_xstrdup(DEFAULT_LOGIN_URL);
  if (cf && *cf) callback = wr_xstrdup(cf);
  else if (origin) callback = concat(origin, "/argotunnel/transfer/");
  else callback = wr_xstrdup(DEFAULT_CALLBACK_URL);

  if (login_pubkey(pub, &e) != WR_OK) goto transfer_failed;
  store = concat(callback, pub);
  url = build_login_url(login, store);

  /* See cloudflared's AUTH-1423: the URL goes to stderr, as git does for ssh. */
  child = open_browser(url);
  if (child < 0)
    fprintf(stderr,
            "Please open the following URL and log in with your account:\n\n%s\n\n"
            "Leave %s running to download the cert automatically.\n",
            url, o->prog);
  else
    fprintf(stderr,
            "A browser window should have opened at the following URL:\n\n%s\n\n"
            "If the browser failed to open, please visit the URL above directly in your browser.\n",
            url);

  if (poll_store(store, &body, &len, &e) != WR_OK) goto transfer_failed;
  {
    wr_origin_cert oc;
    char why[512];
    int r = wr_origin_cert_parse((const char *)body, len, &oc, why, sizeof(why));
    explicit_bzero(&oc, sizeof(oc));
    if (r != WR_OK) {
      wr__mg_errf(&e, "the login service did not return a usable cert.pem: %s", why);
      goto transfer_failed;
    }
  }
  /* Exclusive, unless an empty cert.pem was there (cloudflared writes over
   * an empty one). */
  int w = wr_file_write(path, body, len, 0600, !(stat(path, &st) == 0 && st.st_size == 0 && S_ISREG(st.st_mode)));
  if (w != WR_OK) {
    wr__mg_errf(&e, "error writing cert to %s: %s", path, w == WR_ERR_EXISTS ? "file exists" : strerror(errno));
    goto fail;
  }
  printf("You have successfully logged in.\n"
         "If you wish to copy your credentials to a server, they have been saved to:\n%s\n",
         path);
  rv = WR_EXIT_OK;
  goto out;
transfer_failed:
  fprintf(stderr,
          "Failed to write the certificate due to the following error:\n%s\n\n"
          "Your browser will download the certificate instead. You will have to manually\n"
          "copy it to the following path:\n\n%s\n",
          e.msg, path);
fail:
  rv = wr__mg_fail(&e);
out:
  if (child > 0) waitpid(child, NULL, WNOHANG); /* reap it if done; else init adopts it */
  if (body) explicit_bzero(body, len);
  free(body);
  free(url);
  free(store);
  free(login);
  free(callback);
  free(origin);
  free(path);
  free(dir);
  wr__mg_end(&c);
  return rv;
}
