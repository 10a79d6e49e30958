/* `warren access login | token | curl`, after cloudflared's access commands
 * (cmd/cloudflared/access and token/ of cloudflared 2023.7.3):
 *
 *   - The application is found as cloudflared finds it (token.GetAppInfo):
 *     a HEAD of the URL, not following redirects; a 302 to
 *     .../cdn-cgi/access/login gives the aud in its "kid" parameter, a 401
 *     or 403 of the edge gives it in CF-Access-Aud; CF-Access-Domain is the
 *     app's domain.
 *   - Tokens are stored where cloudflared stores them:
 *     ~/.cloudflared/<app domain>-<aud>-token (mode 0600; '/' and '*' of the
 *     name become '-'); one whose "exp" passed is removed and not used.
 *   - A stored token is checked at the edge (a GET of the URL with
 *     ?cloudflared_token_check=true and Cf-Access-Token); refused, a new one
 *     is fetched.
 *   - Fetching: the browser opens <app origin>/cdn-cgi/access/cli with
 *     token=<a random key>, aud and redirect_url (cloudflared's URL), signs
 *     in, and the edge leaves the app token for the key; the command polls
 *     <app origin>/cdn-cgi/access/transfer/<key> (a warren-edge's hand-off;
 *     cloudflared polls login.cloudflareaccess.org with an encrypted
 *     answer instead) every second for up to ten minutes.
 *   - WARREN_ACCESS_EDGE_URL (or --edge-url where the command has flags)
 *     connects to a warren-edge's visitor listener instead of the URL's
 *     host, with the URL's Host kept (curl gets --connect-to). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/mem.h"
#include "net/http_client.h"
#include "proto/jwt.h"

#define LOGIN_PATH "/cdn-cgi/access/login"
#define POLL_EVERY_MS 1000
#define POLL_FOR_S 600
#define URL_MAX 4096

typedef struct app_info {
  char aud[128];
  char domain[512];
} app_info;

/* Where to connect instead of the URL's host: "host:port" from
 * |edge_url| (NULL or "" when none); 0, or -1 when malformed. */
static int connect_to(const char *edge_url, char *out, size_t cap) {
  wr_url u;
  out[0] = '\0';
  if (!edge_url || !*edge_url) return 0;
  if (wr_url_parse(edge_url, &u) != WR_OK) return -1;
  snprintf(out, cap, strchr(u.host, ':') ? "[%s]:%u" : "%s:%u", u.host, (unsigned)u.port);
  return 0;
}

static int http(const char *method, const char *url, const char *via, const char *token, wr_http_response *rs,
                char *err, size_t errlen) {
  wr_http_header h[2] = {{"User-Agent", 10, "warren/" WR_VERSION, sizeof("warren/" WR_VERSION) - 1}};
  size_t n = 1;
  if (token) h[n++] = (wr_http_header){"Cf-Access-Token", 15, token, strlen(token)};
  wr_http_request rq = {.method = method, .url = url, .headers = h, .nheaders = n, .timeout_ms = 7000,
                        .max_body = 1u << 20, .connect_to = via && *via ? via : NULL};
  memset(rs, 0, sizeof(*rs));
  return wr_http_do(&rq, rs, err, errlen);
}

/* The query parameter |name| of |url| (raw, not decoded), or "". */
static void query_value(const char *url, const char *name, char *out, size_t cap) {
  const char *q = strchr(url, '?');
  size_t nl = strlen(name);
  out[0] = '\0';
  while (q && *q) {
    q++;
    if (!strncmp(q, name, nl) && q[nl] == '=') {
      size_t l = strcspn(q + nl + 1, "&#");
      snprintf(out, cap, "%.*s", (int)l, q + nl + 1);
      return;
    }
    q = strchr(q, '&');
  }
}

/* token.GetAppInfo. Returns 0, or -1 after printing why (unless |prog| is
 * NULL). */
static int get_app_info(const char *prog, const char *url, const char *via, app_info *info) {
  wr_http_response rs;
  char err[512];
  memset(info, 0, sizeof(*info));
  if (http("HEAD", url, via, NULL, &rs, err, sizeof(err)) != WR_OK) {
    if (prog) fprintf(stderr, "%s: failed to get app info: %s\n", prog, err);
    wr_http_response_free(&rs);
    return -1;
  }
  const char *loc = wr_http_response_header(&rs, "Location"), *aud = wr_http_response_header(&rs, "CF-Access-Aud");
  const char *dom = wr_http_response_header(&rs, "CF-Access-Domain");
  if (rs.status / 100 == 3 && loc && strstr(loc, LOGIN_PATH)) query_value(loc, "kid", info->aud, sizeof(info->aud));
  else if (aud) snprintf(info->aud, sizeof(info->aud), "%s", aud);
  if (dom) snprintf(info->domain, sizeof(info->domain), "%s", dom);
  wr_http_response_free(&rs);
  if (!info->aud[0]) {
    if (prog) fprintf(stderr, "%s: failed to find Access application at %s\n", prog, url);
    return -1;
  }
  if (!info->domain[0]) {
    if (prog) fprintf(stderr, "%s: Empty app domain\n", prog);
    return -1;
  }
  return 0;
}

/* GenerateAppTokenFilePathFromURL (malloc'd; ~/.cloudflared made 0700). */
static char *token_path(const app_info *info) {
  char *dir = wr_path_expand("~/.cloudflared");
  if (!dir) return NULL;
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    free(dir);
    return NULL;
  }
  size_t cap = strlen(dir) + strlen(info->domain) + strlen(info->aud) + 16;
  char *p = wr_xmalloc(cap);
  int n = snprintf(p, cap, "%s/", dir);
  snprintf(p + n, cap - (size_t)n, "%s-%s-token", info->domain, info->aud);
  for (char *c = p + n; *c; c++)
    if (*c == '/' || *c == '*') *c = '-';
  free(dir);
  return p;
}

/* The "exp" of a compact JWT, unverified (as cloudflared reads it); -1 if
 * the token is not one. */
static int64_t token_exp(const char *tok) {
  const char *a = strchr(tok, '.'), *b = a ? strchr(a + 1, '.') : NULL;
  uint8_t buf[8192];
  if (!b || (size_t)(b - a - 1) > sizeof(buf) * 4 / 3) return -1;
  int n = wr_b64url_decode(a + 1, (size_t)(b - a - 1), buf, sizeof(buf));
  json_t *p = n > 0 ? json_loadb((const char *)buf, (size_t)n, 0, NULL) : NULL;
  int64_t exp = json_is_integer(json_object_get(p, "exp")) ? json_integer_value(json_object_get(p, "exp")) : -1;
  json_decref(p);
  return exp;
}

/* GetAppTokenIfExists: the stored, unexpired token (malloc'd) or NULL. */
static char *stored_token(const app_info *info) {
  char *path = token_path(info), *tok = NULL;
  size_t len = 0;
  if (path && wr_file_read(path, WR_JWT_MAX_LEN, &tok, &len) == WR_OK) {
    while (len && (tok[len - 1] == '\n' || tok[len - 1] == '\r')) tok[--len] = '\0';
    int64_t exp = token_exp(tok);
    if (exp < 0 || exp < (int64_t)time(NULL)) {
      if (exp >= 0) unlink(path); /* expired: cloudflared removes it */
      free(tok);
      tok = NULL;
    }
  }
  free(path);
  return tok;
}

static void remove_token(const app_info *info) {
  char *path = token_path(info);
  if (path) unlink(path);
  free(path);
}

/* isTokenValid: the edge does not send |tok| to the sign-in. */
static int valid_at_edge(const char *url, const char *via, const char *tok) {
  char check[URL_MAX + 64], err[256];
  wr_http_response rs;
  snprintf(check, sizeof(check), "%s%scloudflared_token_check=true", url, strchr(url, '?') ? "&" : "?");
  if (http("GET", check, via, tok, &rs, err, sizeof(err)) != WR_OK) {
    wr_http_response_free(&rs);
    return 0;
  }
  const char *loc = wr_http_response_header(&rs, "Location");
  int refused = (rs.status / 100 == 3 && loc && strstr(loc, LOGIN_PATH)) ||
                ((rs.status == 401 || rs.status == 403) && wr_http_response_header(&rs, "CF-Access-Aud"));
  wr_http_response_free(&rs);
  return !refused;
}

/* "scheme://authority" of |url| into |out|. */
static int url_origin(const char *url, char *out, size_t cap) {
  wr_url u;
  if (wr_url_parse(url, &u) != WR_OK) return -1;
  snprintf(out, cap, "%s://%s", u.https ? "https" : "http", u.authority);
  return 0;
}

static int write_token(const app_info *info, const char *tok) {
  char *path = token_path(info);
  int rv = path ? wr_file_write(path, tok, strlen(tok), 0600, 0) : WR_ERR_IO;
  free(path);
  return rv == WR_OK ? 0 : -1;
}

/* The hand-off's answer: {"app_token": ...}. */
static char *poll_token(const char *prog, const char *poll_url, const char *via) {
  char err[512];
  for (int waited = 0; waited < POLL_FOR_S * 1000; waited += POLL_EVERY_MS) {
    wr_http_response rs;
    int rv = http("GET", poll_url, via, NULL, &rs, err, sizeof(err));
    if (rv == WR_OK && rs.status == 200) {
      json_t *doc = json_loadb((const char *)rs.body, rs.body_len, 0, NULL);
      const char *t = json_string_value(json_object_get(doc, "app_token"));
      char *tok = t && *t ? wr_xstrdup(t) : NULL;
      json_decref(doc);
      wr_http_response_free(&rs);
      if (!tok) fprintf(stderr, "%s: failed to marshal transfer service response\n", prog);
      return tok;
    }
    if (rv != WR_OK || rs.status >= 500) {
      fprintf(stderr, "%s: failed to run transfer service: %s\n", prog, rv != WR_OK ? err : "error on request");
      wr_http_response_free(&rs);
      return NULL;
    }
    wr_http_response_free(&rs);
    usleep(POLL_EVERY_MS * 1000);
  }
  fprintf(stderr, "%s: failed to run transfer service: Failed to fetch resource\n", prog);
  return NULL;
}

/* token.FetchToken: the browser step and the poll; the token is stored. */
static char *fetch_token(const char *prog, const char *url, const char *via, const app_info *info) {
  char origin[600], key[64], back[URL_MAX], eback[URL_MAX * 3], cli[URL_MAX * 4], poll_url[800];
  uint8_t raw[32];
  if (url_origin(url, origin, sizeof(origin)) != 0 || wr_random_bytes(raw, sizeof(raw)) != 0) return NULL;
  wr_b64url_encode(raw, sizeof(raw), key, sizeof(key));
  /* cloudflared's buildRequestURL: the token and aud go on redirect_url too. */
  snprintf(back, sizeof(back), "%s%saud=%s&token=%s", url, strchr(url, '?') ? "&" : "?", info->aud, key);
  wr_url_escape(back, WR_URL_QUERY, eback, sizeof(eback));
  snprintf(cli, sizeof(cli),
           "%s/cdn-cgi/access/cli?aud=%s&edge_token_transfer=true&redirect_url=%s&send_org_token=true&token=%s", origin,
           info->aud, eback, key);
  if (wr_cmd_open_browser(cli) < 0)
    fprintf(stderr, "Please open the following URL and log in with your Cloudflare account:\n\n%s\n\n"
                    "Leave warren running to download the token automatically.\n", cli);
  else
    fprintf(stderr, "A browser window should have opened at the following URL:\n\n%s\n\n"
                    "If the browser failed to open, please visit the URL above directly in your browser.\n", cli);
  snprintf(poll_url, sizeof(poll_url), "%s/cdn-cgi/access/transfer/%s", origin, key);
  char *tok = poll_token(prog, poll_url, via);
  if (tok && write_token(info, tok) != 0) {
    fprintf(stderr, "%s: failed to write app token to disk\n", prog);
    free(tok);
    return NULL;
  }
  return tok;
}

/* The token to use: the stored one when the edge takes it, else a new one
 * (unless |no_fetch|). */
static char *app_token(const char *prog, const char *url, const char *via, const app_info *info, int no_fetch) {
  char *tok = stored_token(info);
  if (tok && !valid_at_edge(url, via, tok)) {
    remove_token(info);
    free(tok);
    tok = NULL;
  }
  if (!tok && !no_fetch) tok = fetch_token(prog, url, via, info);
  return tok;
}

static const char *edge_url(wr_opts *opts) {
  const char *e = opts ? wr_opts_get(opts, "edge-url") : NULL;
  return e ? e : getenv("WARREN_ACCESS_EDGE_URL");
}

static int need_url(const char *prog, const char *url, const char *via_src, char *via, size_t vcap) {
  wr_url u;
  if (!url || wr_url_parse(url, &u) != WR_OK) {
    fprintf(stderr, "%s: Please provide the url of the Access application\n", prog);
    return -1;
  }
  if (connect_to(via_src, via, vcap) != 0) {
    fprintf(stderr, "%s: the edge URL %s is not an http(s) URL\n", prog, via_src);
    return -1;
  }
  return 0;
}

int wr_cmd_access_login(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv) {
  char via[300];
  app_info info;
  (void)cmd;
  if (need_url(opts->prog, argc ? argv[0] : NULL, edge_url(opts), via, sizeof(via)) != 0) return WR_EXIT_USAGE;
  if (get_app_info(opts->prog, argv[0], via, &info) != 0) return WR_EXIT_FAIL;
  char *tok = app_token(opts->prog, argv[0], via, &info, 0);
  if (!tok) return WR_EXIT_FAIL;
  printf("Successfully fetched your token:\n\n%s\n\n", tok);
  free(tok);
  return WR_EXIT_OK;
}

int wr_cmd_access_token(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv) {
  char via[300];
  app_info info;
  const char *app = wr_opts_get(opts, "app");
  (void)cmd;
  (void)argc;
  (void)argv;
  if (!app) {
    fprintf(stderr, "Please provide a url.\n");
    return WR_EXIT_USAGE;
  }
  if (need_url(opts->prog, app, edge_url(opts), via, sizeof(via)) != 0) return WR_EXIT_USAGE;
  if (get_app_info(opts->prog, app, via, &info) != 0) return WR_EXIT_FAIL;
  char *tok = stored_token(&info);
  if (!tok) {
    fprintf(stderr, "Unable to find token for provided application. Please run login command to generate token.\n");
    return WR_EXIT_FAIL;
  }
  fputs(tok, stdout);
  free(tok);
  return WR_EXIT_OK;
}

/* curl's arguments are passed through as they are: this command takes no
 * flags of its own (cloudflared: SkipFlagParsing). */
int wr_cmd_access_curl(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv) {
  char via[300], hdr[WR_JWT_MAX_LEN + 32], cto[600];
  app_info info;
  int allow = argc > 1 && (!strcmp(argv[0], "--allow-request") || !strcmp(argv[0], "-ar"));
  (void)cmd;
  if (allow) {
    argv++;
    argc--;
  }
  if (argc < 1) {
    fprintf(stderr, "%s: Please provide the access app and command you wish to run.\n", opts->prog);
    return WR_EXIT_USAGE;
  }
  if (need_url(opts->prog, argv[0], getenv("WARREN_ACCESS_EDGE_URL"), via, sizeof(via)) != 0) return WR_EXIT_USAGE;
  if (get_app_info(opts->prog, argv[0], via, &info) != 0) return WR_EXIT_FAIL;
  char *tok = app_token(opts->prog, argv[0], via, &info, allow);
  if (!tok && !allow) return WR_EXIT_FAIL;
  if (!tok)
    fprintf(stderr, "You don't have an Access token set. Please run access token <access application> to fetch one.\n");
  char **args = wr_xcalloc((size_t)argc + 8, sizeof(char *));
  int n = 0;
  args[n++] = "curl";
  wr_url u;
  if (via[0] && wr_url_parse(argv[0], &u) == WR_OK) {
    snprintf(cto, sizeof(cto), "%s:%u:%s", u.host, (unsigned)u.port, via);
    args[n++] = "--connect-to";
    args[n++] = cto;
  }
  for (int i = 0; i < argc; i++) args[n++] = argv[i];
  if (tok) {
    snprintf(hdr, sizeof(hdr), "Cf-Access-Token: %s", tok);
    args[n++] = "-H";
    args[n++] = hdr;
  }
  fflush(NULL);
  execvp("curl", args);
  fprintf(stderr, "%s: cannot run curl: %s\n", opts->prog, strerror(errno));
  free(args);
  free(tok);
  return WR_EXIT_FAIL;
}

char *wr_cmd_access_stored_token(const char *hostname, const char *edge) {
  char via[300], url[URL_MAX];
  app_info info;
  wr_url e;
  if (connect_to(edge, via, sizeof(via)) != 0) return NULL;
  if (strstr(hostname, "://")) snprintf(url, sizeof(url), "%s", hostname);
  else snprintf(url, sizeof(url), "%s://%s/", edge && wr_url_parse(edge, &e) == WR_OK && !e.https ? "http" : "https",
                hostname);
  /* Quietly (no |prog|): a hostname without an application needs no token. */
  return get_app_info(NULL, url, via, &info) == 0 ? stored_token(&info) : NULL;
}
