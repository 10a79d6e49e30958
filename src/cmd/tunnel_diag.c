/* `warren tunnel diag`: one .tar.gz for a bug report, as cloudflared's
 * `tunnel diag` collects one archive. warren-diag/ inside holds
 *   version.txt      warren's version and revision
 *   options.txt      every flag that is set (command line, environment,
 *                    config file) and where from; secrets redacted
 *   config.yml       the config file, secret keys' values redacted
 *   credentials.json the credentials file with TunnelSecret redacted
 *   log.txt          the last LOG_TAIL bytes of --logfile (or
 *                    --log-directory/cloudflared.log), if one is configured
 *   metrics.txt      GET /metrics of --metrics, if set and reachable
 *   ready.json       GET /ready of --metrics
 *   system.txt       kernel (uname), /etc/os-release, CPU count, memory
 *   errors.txt       what could not be collected, and why
 * Redaction is twofold: keys and flags whose names say secret (secret,
 * token, password, credentials-contents, *-key) lose their values, and every
 * secret value known to this run (the token, the tunnel secret in each of
 * its encodings, the token file's contents) is replaced wherever it appears,
 * the log included. The archive is made by tar(1) (essential on Debian)
 * from a private staging directory that is removed afterwards. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "lib/config.h"
#include "lib/credentials.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/mem.h"
#include "net/http_client.h"

#define MAX_FILE (1u << 20)
#define LOG_TAIL (256u * 1024u)
#define MAX_SECRETS 16
#define REDACTED "REDACTED"

typedef struct diag {
  char *dir;                  /* staging: <tmp>/warren-diag */
  char *secrets[MAX_SECRETS]; /* values to scrub everywhere */
  size_t nsecrets;
  FILE *errors;
} diag;

static void note_error(diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_error(diag *d, const char *fmt, ...) {
  FILE *f = d->errors ? d->errors : stderr;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fputc('\n', f);
}

static void add_secret(diag *d, const char *s) {
  /* Short values would scrub ordinary words; secrets are long. */
  if (!s || strlen(s) < 8 || d->nsecrets == MAX_SECRETS) return;
  d->secrets[d->nsecrets++] = wr_xstrdup(s);
}

/* The tunnel secret in the encodings it may be written in. */
static void add_secret_bytes(diag *d, const wr_credentials *c) {
  static const int flags[] = {WR_BASE64_PAD, 0, WR_BASE64_PAD | WR_BASE64_URL, WR_BASE64_URL};
  char b64[WR_BASE64_ENCODED_SIZE(WR_CRED_MAX_SECRET)];
  for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
    if (wr_base64_encode(c->secret, c->secret_len, b64, sizeof(b64), flags[i]) > 0)
      add_secret(d, b64);
}

/* Replaces every known secret in |s| (in place: REDACTED is no longer than
 * any secret, which add_secret ensures). */
static void scrub(const diag *d, char *s) {
  for (size_t i = 0; i < d->nsecrets; i++) {
    size_t n = strlen(d->secrets[i]);
    for (char *p = strstr(s, d->secrets[i]); p; p = strstr(p, d->secrets[i])) {
      memcpy(p, REDACTED, sizeof(REDACTED) - 1);
      memmove(p + sizeof(REDACTED) - 1, p + n, strlen(p + n) + 1);
      p += sizeof(REDACTED) - 1;
    }
  }
}

static int secret_name(const char *name) {
  static const char *const words[] = {"secret", "token", "password", "credentials-contents",
                                      "-key", "_key", "apikey", NULL};
  for (size_t i = 0; words[i]; i++)
    if (strcasestr(name, words[i])) return 1;
  return 0;
}

/* Writes |text| (scrubbed) to DIR/|name|. */
static void put(diag *d, const char *name, const char *text) {
  char path[4096];
  char *copy = wr_xstrdup(text);
  scrub(d, copy);
  snprintf(path, sizeof(path), "%s/%s", d->dir, name);
  if (wr_file_write(path, copy, strlen(copy), 0600, 0) != WR_OK)
    note_error(d, "%s: cannot write: %s", name, strerror(errno));
  free(copy);
}

/* Secrets from the token, the token file and the credentials. */
static void gather_secrets(diag *d, wr_opts *o) {
  char err[512], *text = NULL;
  size_t len;
  wr_credentials c;
  const char *tok = wr_opts_get(o, "token"), *tf = wr_opts_get(o, "token-file");
  const char *cc = wr_opts_get(o, "credentials-contents"), *cf = wr_opts_get(o, "credentials-file");
  add_secret(d, tok);
  if (tok && wr_token_parse(tok, strlen(tok), &c, err, sizeof(err)) == WR_OK) add_secret_bytes(d, &c);
  if (tf && *tf && wr_file_read(tf, MAX_FILE, &text, &len) == WR_OK) {
    char *s = text + strspn(text, " \t\r\n");
    s[strcspn(s, " \t\r\n")] = '\0';
    add_secret(d, s);
    if (wr_token_parse(s, strlen(s), &c, err, sizeof(err)) == WR_OK) add_secret_bytes(d, &c);
    free(text);
  }
  if (cc && wr_credentials_parse(cc, strlen(cc), &c, err, sizeof(err)) == WR_OK) add_secret_bytes(d, &c);
  if (cf && *cf && wr_credentials_load(cf, &c, err, sizeof(err)) == WR_OK) add_secret_bytes(d, &c);
}

static void collect_version(diag *d) {
  char buf[256];
  snprintf(buf, sizeof(buf), "warren version %s (revision %s)\n", WR_VERSION, WR_GIT_REV);
  put(d, "version.txt", buf);
}

static void collect_options(diag *d, const wr_opts *o) {
  static const char *const src_name[] = {"default", "config file", "environment", "command line"};
  size_t cap = 4096, len = 0;
  char *out = wr_xmalloc(cap);
  out[0] = '\0';
  for (size_t i = 0; i < o->n; i++) {
    const wr_opt *it = &o->items[i];
    if (it->source == WR_SRC_DEFAULT || it->n == 0) continue;
    for (size_t v = 0; v < it->n; v++) {
      const char *val = secret_name(it->flag->name) ? REDACTED : it->vals[v];
      size_t need = strlen(it->flag->name) + strlen(val) + 32;
      if (len + need >= cap) out = wr_xrealloc(out, cap = (cap + need) * 2);
      len += (size_t)snprintf(out + len, cap - len, "%s=%s (%s)\n", it->flag->name, val,
                              src_name[it->source]);
    }
  }
  put(d, "options.txt", out);
  free(out);
}

/* The config text with the value of every secret-named key replaced,
 * line by line (a `key: value` line, at any indentation). */
static void collect_config(diag *d, const char *path) {
  char *text = NULL;
  size_t len;
  if (wr_file_read(path, MAX_FILE, &text, &len) != WR_OK) {
    note_error(d, "config %s: %s", path, strerror(errno));
    return;
  }
  /* A line grows at most threefold ("_key:" -> "_key: REDACTED\n"). */
  char *out = wr_xmalloc(len * 3 + 64), *w = out;
  for (char *line = text; *line;) {
    char *end = strchr(line, '\n');
    size_t n = end ? (size_t)(end - line + 1) : strlen(line);
    char *colon = memchr(line, ':', n);
    char key[256];
    size_t klen = colon ? (size_t)(colon - line) : 0;
    snprintf(key, sizeof(key), "%.*s", (int)(klen < 255 ? klen : 255), line);
    if (colon && secret_name(key)) {
      w += sprintf(w, "%.*s: " REDACTED "\n", (int)klen, line);
    } else {
      memcpy(w, line, n);
      w += n;
    }
    line += n;
  }
  *w = '\0';
  put(d, "config.yml", out);
  free(out);
  free(text);
}

static void collect_credentials(diag *d, const char *path) {
  json_error_t jerr;
  json_t *j = json_load_file(path, 0, &jerr);
  if (!json_is_object(j)) {
    note_error(d, "credentials %s: %s", path, jerr.text);
    json_decref(j);
    return;
  }
  const char *k;
  json_t *v;
  json_object_foreach(j, k, v) {
    if (secret_name(k)) json_object_set_new(j, k, json_string(REDACTED));
  }
  char *s = json_dumps(j, JSON_INDENT(2));
  put(d, "credentials.json", s);
  free(s);
  json_decref(j);
}

static void collect_log(diag *d, const wr_opts *o) {
  char path[4096];
  const char *lf = wr_opts_get(o, "logfile"), *ld = wr_opts_get(o, "log-directory");
  if (lf && *lf)
    snprintf(path, sizeof(path), "%s", lf);
  else if (ld && *ld)
    snprintf(path, sizeof(path), "%s/cloudflared.log", ld);
  else {
    note_error(d, "log: no --logfile or --log-directory is configured");
    return;
  }
  FILE *f = fopen(path, "rb");
  if (!f) {
    note_error(d, "log %s: %s", path, strerror(errno));
    return;
  }
  char *buf = wr_xmalloc(LOG_TAIL + 1);
  if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > (long)LOG_TAIL) fseek(f, -(long)LOG_TAIL, SEEK_END);
  else fseek(f, 0, SEEK_SET);
  size_t n = fread(buf, 1, LOG_TAIL, f);
  fclose(f);
  buf[n] = '\0';
  put(d, "log.txt", buf);
  free(buf);
}

static void fetch(diag *d, const char *metrics, const char *route, const char *name) {
  char url[512], err[512];
  snprintf(url, sizeof(url), "http://%s%s", metrics, route);
  wr_http_request req = {.method = "GET", .url = url, .timeout_ms = 5000, .max_body = 8u << 20};
  wr_http_response resp;
  memset(&resp, 0, sizeof(resp));
  if (wr_http_do(&req, &resp, err, sizeof(err)) != WR_OK)
    note_error(d, "%s: %s", url, err);
  else
    put(d, name, (const char *)resp.body);
  wr_http_response_free(&resp);
}

static void collect_metrics(diag *d, const wr_opts *o) {
  const char *m = wr_opts_get(o, "metrics");
  if (!wr_opts_isset(o, "metrics") || !m || !*m) {
    note_error(d, "metrics: --metrics is not set (its default port is random)");
    return;
  }
  fetch(d, m, "/metrics", "metrics.txt");
  fetch(d, m, "/ready", "ready.json");
}

static void append_file(char **out, size_t *len, size_t *cap, const char *title, const char *path) {
  char *text = NULL;
  size_t n;
  if (wr_file_read(path, 65536, &text, &n) != WR_OK) return;
  size_t need = strlen(title) + n + 8;
  if (*len + need >= *cap) *out = wr_xrealloc(*out, *cap = (*cap + need) * 2);
  *len += (size_t)snprintf(*out + *len, *cap - *len, "\n[%s]\n%s", title, text);
  free(text);
}

static void collect_system(diag *d) {
  struct utsname u;
  size_t cap = 8192, len = 0;
  char *out = wr_xmalloc(cap);
  out[0] = '\0';
  if (uname(&u) == 0)
    len += (size_t)snprintf(out, cap, "kernel: %s %s %s %s\n", u.sysname, u.release, u.version,
                            u.machine);
  len += (size_t)snprintf(out + len, cap - len, "cpus: %ld online, %ld configured\n",
                          sysconf(_SC_NPROCESSORS_ONLN), sysconf(_SC_NPROCESSORS_CONF));
  long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
  len += (size_t)snprintf(out + len, cap - len, "memory: %lld MiB total, %lld MiB available\n",
                          (long long)pages * psz >> 20, (long long)avail * psz >> 20);
  append_file(&out, &len, &cap, "/etc/os-release", "/etc/os-release");
  append_file(&out, &len, &cap, "/proc/loadavg", "/proc/loadavg");
  put(d, "system.txt", out);
  free(out);
}

/* tar -czf OUT -C PARENT warren-diag */
static int make_archive(const char *parent, const char *out) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execlp("tar", "tar", "-czf", out, "-C", parent, "warren-diag", (char *)NULL);
    fprintf(stderr, "cannot run tar: %s\n", strerror(errno));
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* rm -r of the staging tree (flat: one directory of files). */
static void remove_staging(const char *parent, const char *dir) {
  static const char *const files[] = {"version.txt", "options.txt", "config.yml", "credentials.json",
                                      "log.txt", "metrics.txt", "ready.json", "system.txt",
                                      "errors.txt", NULL};
  char path[4096];
  for (size_t i = 0; files[i]; i++) {
    snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
  rmdir(parent);
}

static void collect_all(diag *d, wr_opts *o, const wr_config *cfg) {
  gather_secrets(d, o);
  collect_version(d);
  collect_options(d, o);
  if (cfg) collect_config(d, cfg->source);
  else note_error(d, "config: no config file (--config or the default places)");
  const char *cf = wr_opts_get(o, "credentials-file");
  if (cf && *cf) collect_credentials(d, cf);
  if (!wr_opts_bool(o, "no-diag-logs")) collect_log(d, o);
  if (!wr_opts_bool(o, "no-diag-metrics")) collect_metrics(d, o);
  if (!wr_opts_bool(o, "no-diag-system")) collect_system(d);
}

static char *default_out(void) {
  char name[128];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(name, sizeof(name), "warren-diag-%Y-%m-%dT%H-%M-%SZ.tar.gz", &tm);
  return wr_xstrdup(name);
}

int wr_cmd_tunnel_diag(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  char err[1024], parent[] = "/tmp/warren-diag-XXXXXX", dir[64], *errs = NULL;
  wr_config *cfg = NULL;
  diag d;
  size_t errs_len = 0;
  int code = WR_EXIT_FAIL;
  (void)cmd;
  (void)argv;
  memset(&d, 0, sizeof(d));
  if (argc > 0) {
    fprintf(stderr, "tunnel diag takes no arguments\n");
    return WR_EXIT_USAGE;
  }
  int rv = wr_config_load_opts(o, &cfg, err, sizeof(err));
  if (rv != WR_OK && rv != WR_ERR_NOTFOUND) {
    fprintf(stderr, "%s\n", err);
    return WR_EXIT_FAIL;
  }
  if (!mkdtemp(parent)) {
    fprintf(stderr, "cannot create a staging directory: %s\n", strerror(errno));
    goto out;
  }
  snprintf(dir, sizeof(dir), "%s/warren-diag", parent);
  d.dir = dir;
  if (mkdir(dir, 0700) != 0 || !(d.errors = open_memstream(&errs, &errs_len))) {
    fprintf(stderr, "cannot create %s: %s\n", dir, strerror(errno));
    goto cleanup;
  }
  collect_all(&d, o, cfg);
  fclose(d.errors);
  d.errors = NULL;
  put(&d, "errors.txt", errs);
  char *out = wr_opts_isset(o, "diag-file") ? wr_xstrdup(wr_opts_get(o, "diag-file")) : default_out();
  if (make_archive(parent, out) == 0) {
    printf("Diagnostic archive written to %s\n", out);
    code = WR_EXIT_OK;
  } else {
    fprintf(stderr, "could not write %s\n", out);
  }
  free(out);
cleanup:
  if (d.errors) fclose(d.errors);
  remove_staging(parent, dir);
out:
  free(errs);
  for (size_t i = 0; i < d.nsecrets; i++) free(d.secrets[i]);
  wr_config_free(cfg);
  return code;
}
