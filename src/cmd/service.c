/* `warren service install [TOKEN]` and `warren service uninstall`, after
 * cloudflared's linux_service.go (systemd only; cloudflared's SysV and
 * OpenRC fallbacks are not here: without systemd, install writes the files
 * and prints the command to run).
 *
 * install TOKEN: checks the token, writes it to /etc/warren/token (0600)
 * and a unit running `warren --no-autoupdate tunnel run --token-file
 * /etc/warren/token`. cloudflared 2023.7.3 put the token itself on the
 * ExecStart line; current cloudflared moved it to a file because unit files
 * are world-readable, and so does warren.
 *
 * install (no token): reads the config file (--config or the default
 * places), which must name the tunnel (`tunnel:`) and its credentials
 * (`credentials-file:`), copies the credentials JSON and the config into
 * /etc/warren (0600, the config's credentials-file pointed at the copy) and
 * writes a unit running `warren --no-autoupdate --config
 * /etc/warren/config.yml tunnel run` (the packaged unit's command line).
 * As in cloudflared, an existing /etc/warren/config.yml that is not the
 * config given is a conflict, not overwritten.
 *
 * Then, when systemd runs (/run/systemd/system exists): systemctl enable,
 * daemon-reload, start. uninstall: systemctl disable and stop, removes the
 * unit and the token file, daemon-reload; /etc/warren's config and
 * credentials stay.
 *
 * For tests only: WARREN_SERVICE_ROOT prefixes every path read or written
 * here (/etc/warren, /etc/systemd/system, /run/systemd/system), and
 * WARREN_SYSTEMCTL names the program run in place of systemctl. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "lib/config.h"
#include "lib/credentials.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/mem.h"

#define SVC_DIR "/etc/warren"
#define SVC_CONFIG SVC_DIR "/config.yml"
#define SVC_TOKEN SVC_DIR "/token"
#define SVC_UNIT "/etc/systemd/system/warren.service"
#define SVC_NAME "warren.service"
#define MAX_FILE (1u << 20)

/* |path| under WARREN_SERVICE_ROOT. Caller frees. */
static char *rooted(const char *path) {
  const char *root = getenv("WARREN_SERVICE_ROOT");
  if (!root) root = "";
  size_t n = strlen(root) + strlen(path) + 1;
  char *p = wr_xmalloc(n);
  snprintf(p, n, "%s%s", root, path);
  return p;
}

static int systemd_running(void) {
  char *p = rooted("/run/systemd/system");
  struct stat st;
  int yes = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
  free(p);
  return yes;
}

/* Runs `systemctl VERB warren.service` (or just VERB when |unit| is NULL).
 * Returns its exit status, or -1 if it could not run. */
static int systemctl(const char *verb, const char *unit) {
  const char *prog = getenv("WARREN_SYSTEMCTL");
  if (!prog || !*prog) prog = "systemctl";
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execlp(prog, prog, verb, unit, (char *)NULL);
    fprintf(stderr, "cannot run %s: %s\n", prog, strerror(errno));
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (rc != 0) fprintf(stderr, "systemctl %s %s failed (exit %d)\n", verb, unit ? unit : "", rc);
  return rc;
}

/* Writes |data| to the rooted |path| with |mode|, creating its directory. */
static int write_rooted(const char *path, const char *data, mode_t mode) {
  char *p = rooted(path);
  char *dir = wr_xstrdup(p);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
  int rv = (*dir && wr_mkdirs(dir, 0700) != WR_OK) ? WR_ERR_IO : WR_OK;
  if (rv == WR_OK) rv = wr_file_write(p, data, strlen(data), mode, 0);
  if (rv != WR_OK) fprintf(stderr, "cannot write %s: %s\n", p, strerror(errno));
  free(dir);
  free(p);
  return rv;
}

/* The unit, cloudflared's template with warren's start command and the
 * hardening of the packaged unit that cannot break a copied config (home
 * directories read-only, not hidden: the binary may live there). */
static char *unit_text(const char *exe, const char *args) {
  static const char fmt[] =
      "# Written by `warren service install`; `warren service uninstall` removes it.\n"
      "[Unit]\n"
      "Description=Warren tunnel connector\n"
      "After=network-online.target\n"
      "Wants=network-online.target\n"
      "\n"
      "[Service]\n"
      "TimeoutStartSec=0\n"
      "# warren does not speak sd_notify: started once the process runs.\n"
      "Type=simple\n"
      "ExecStart=%s --no-autoupdate %s\n"
      "Restart=on-failure\n"
      "RestartSec=5s\n"
      "NoNewPrivileges=yes\n"
      "ProtectSystem=strict\n"
      "ProtectHome=read-only\n"
      "PrivateTmp=yes\n"
      "\n"
      "[Install]\n"
      "WantedBy=multi-user.target\n";
  size_t n = sizeof(fmt) + strlen(exe) + strlen(args);
  char *s = wr_xmalloc(n);
  snprintf(s, n, fmt, exe, args);
  return s;
}

/* cloudflared's os.Executable(): the running binary's absolute path. */
static char *self_exe(void) {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return wr_xstrdup("/usr/bin/warren");
  buf[n] = '\0';
  return wr_xstrdup(buf);
}

/* The token argument: checked (a token that does not decode would make a
 * service that fails forever), then written 0600. */
static int install_token(const char *token, char **args) {
  char err[512];
  wr_credentials creds;
  memset(&creds, 0, sizeof(creds));
  if (wr_token_parse(token, strlen(token), &creds, err, sizeof(err)) != WR_OK) {
    fprintf(stderr, "Provided tunnel token is not valid (%s).\n", err);
    return -1;
  }
  size_t n = strlen(token) + 2;
  char *line = wr_xmalloc(n);
  snprintf(line, n, "%s\n", token);
  int rv = write_rooted(SVC_TOKEN, line, 0600);
  free(line);
  if (rv != WR_OK) return -1;
  *args = wr_xstrdup("tunnel run --token-file " SVC_TOKEN);
  return 0;
}

/* The config text with its top-level `credentials-file:` (or `cred-file:`)
 * lines pointed at |path|. Returns NULL if there was no such line (a config
 * written in flow style): then the copy could not be made to use |path|. */
static char *repoint_credentials(const char *text, const char *path) {
  size_t cap = strlen(text) + strlen(path) * 4 + 64, len = 0;
  char *out = wr_xmalloc(cap);
  int found = 0;
  for (const char *line = text; *line;) {
    const char *end = strchr(line, '\n');
    size_t n = end ? (size_t)(end - line + 1) : strlen(line);
    if (!strncmp(line, "credentials-file:", 17) || !strncmp(line, "cred-file:", 10)) {
      if (!found) len += (size_t)snprintf(out + len, cap - len, "credentials-file: %s\n", path);
      found = 1;
    } else {
      memcpy(out + len, line, n);
      len += n;
    }
    line += n;
  }
  out[len] = '\0';
  if (!found) {
    free(out);
    return NULL;
  }
  return out;
}

/* Copies the credentials JSON named by the config into /etc/warren, keeping
 * its file name, and returns the path it has there. */
static char *copy_credentials(const char *cred_path) {
  char err[512], *data = NULL, *dst = NULL;
  size_t len;
  wr_credentials creds;
  char *src = wr_path_expand(cred_path);
  if (wr_credentials_load(src, &creds, err, sizeof(err)) != WR_OK) {
    fprintf(stderr, "%s\n", err);
    goto out;
  }
  if (wr_file_read(src, MAX_FILE, &data, &len) != WR_OK) {
    fprintf(stderr, "cannot read %s: %s\n", src, strerror(errno));
    goto out;
  }
  const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
  size_t n = strlen(SVC_DIR) + strlen(base) + 2;
  dst = wr_xmalloc(n);
  snprintf(dst, n, "%s/%s", SVC_DIR, base);
  if (write_rooted(dst, data, 0600) != WR_OK) {
    free(dst);
    dst = NULL;
  }
out:
  free(data);
  free(src);
  return dst;
}

/* The config file route (cloudflared's buildArgsForConfig). */
static int install_config(wr_opts *o, char **args) {
  char err[1024], *text = NULL, *copy = NULL, *cred_dst = NULL, *svc_cfg = rooted(SVC_CONFIG);
  size_t len;
  wr_config *cfg = NULL;
  int rv = -1;
  int lrv = wr_config_load_opts(o, &cfg, err, sizeof(err));
  if (lrv == WR_ERR_NOTFOUND) {
    fprintf(stderr, "No configuration file was found. Pass --config FILE or a TOKEN.\n");
    goto out;
  }
  if (lrv != WR_OK) {
    fprintf(stderr, "%s\n", err);
    goto out;
  }
  const char *cred = wr_opts_get(o, "credentials-file");
  if (!cfg->tunnel || !*cfg->tunnel || wr_opts_source(o, "credentials-file") != WR_SRC_CONFIG ||
      !cred || !*cred) {
    fprintf(stderr,
            "Configuration file %s must contain entries for the tunnel to run and its associated "
            "credentials:\ntunnel: TUNNEL-UUID\ncredentials-file: CREDENTIALS-FILE\n",
            cfg->source);
    goto out;
  }
  char *real_src = realpath(cfg->source, NULL), *real_dst = realpath(svc_cfg, NULL);
  int same = real_src && real_dst && !strcmp(real_src, real_dst);
  free(real_src);
  free(real_dst);
  if (!same && wr_file_exists(svc_cfg)) {
    fprintf(stderr,
            "Possible conflicting configuration in %s and %s. Either remove %s or run `warren "
            "--config %s service install`\n",
            cfg->source, SVC_CONFIG, SVC_CONFIG, SVC_CONFIG);
    goto out;
  }
  if (wr_file_read(cfg->source, MAX_FILE, &text, &len) != WR_OK) {
    fprintf(stderr, "cannot read %s: %s\n", cfg->source, strerror(errno));
    goto out;
  }
  if (!(cred_dst = copy_credentials(cred))) goto out;
  if (!(copy = repoint_credentials(text, cred_dst))) {
    fprintf(stderr, "%s: no top-level `credentials-file:` line to point at %s\n", cfg->source,
            cred_dst);
    goto out;
  }
  if (write_rooted(SVC_CONFIG, copy, 0600) != WR_OK) goto out;
  *args = wr_xstrdup("--config " SVC_CONFIG " tunnel run");
  rv = 0;
out:
  wr_config_free(cfg);
  free(text);
  free(copy);
  free(cred_dst);
  free(svc_cfg);
  return rv;
}

static int enable_and_start(const char *exe, const char *args) {
  if (!systemd_running()) {
    printf("systemd is not running here, so the service was not enabled or started.\n"
           "Run the connector with:\n  %s --no-autoupdate %s\n"
           "or, once systemd runs: systemctl enable --now %s\n",
           exe, args, SVC_NAME);
    return WR_EXIT_OK;
  }
  if (systemctl("enable", SVC_NAME) != 0 || systemctl("daemon-reload", NULL) != 0 ||
      systemctl("start", SVC_NAME) != 0)
    return WR_EXIT_FAIL;
  printf("Linux service for warren installed successfully\n");
  return WR_EXIT_OK;
}

int wr_cmd_service_install(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  char *args = NULL, *exe = self_exe(), *unit = NULL;
  int code = WR_EXIT_FAIL;
  (void)cmd;
  if (argc > 1) {
    fprintf(stderr, "service install takes at most one argument, the tunnel token\n");
    code = WR_EXIT_USAGE;
    goto out;
  }
  int rv = argc == 1 ? install_token(argv[0], &args) : install_config(o, &args);
  if (rv != 0) goto out;
  unit = unit_text(exe, args);
  if (write_rooted(SVC_UNIT, unit, 0644) != WR_OK) goto out;
  printf("Wrote %s\n", SVC_UNIT);
  code = enable_and_start(exe, args);
out:
  free(args);
  free(exe);
  free(unit);
  return code;
}

/* Removes a rooted file; a missing one is not an error. */
static int remove_rooted(const char *path) {
  char *p = rooted(path);
  int rv = 0;
  if (unlink(p) != 0 && errno != ENOENT) {
    fprintf(stderr, "cannot remove %s: %s\n", p, strerror(errno));
    rv = -1;
  }
  free(p);
  return rv;
}

int wr_cmd_service_uninstall(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  (void)o;
  (void)argv;
  if (argc > 0) {
    fprintf(stderr, "service uninstall takes no arguments\n");
    return WR_EXIT_USAGE;
  }
  int sd = systemd_running();
  char *unit = rooted(SVC_UNIT);
  int present = wr_file_exists(unit);
  free(unit);
  if (!present) printf("Service %s not installed, skipping its uninstall\n", SVC_NAME);
  if (sd && present && (systemctl("disable", SVC_NAME) != 0 || systemctl("stop", SVC_NAME) != 0))
    return WR_EXIT_FAIL;
  if (remove_rooted(SVC_UNIT) != 0 || remove_rooted(SVC_TOKEN) != 0) return WR_EXIT_FAIL;
  if (sd && systemctl("daemon-reload", NULL) != 0) return WR_EXIT_FAIL;
  printf("Linux service for warren uninstalled successfully%s\n",
         present ? "" : " (nothing was installed)");
  if (present) printf("%s/config.yml and credentials, if any, were left in place\n", SVC_DIR);
  return WR_EXIT_OK;
}
