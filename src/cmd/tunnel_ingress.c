/* `warren tunnel ingress validate` and `warren tunnel ingress rule URL`,
 * with cloudflared's output (cmd/cloudflared/tunnel/ingress_subcommands.go)
 * so scripts written for it keep working. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/commands.h"
#include "connector/ingress.h"
#include "lib/config.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/mem.h"

#define ERRLEN 1024

static const char no_config_msg[] =
    "No configuration file was found. Please create one, or use the --config flag to specify "
    "its filepath. You can use the help command to learn more about configuration files";

/* Loads --config (or the first default file) after printing "<verb> rules
 * from PATH", and merges its flags under |opts|. Returns 0 or prints why not
 * and returns -1. */
static int load_config(wr_opts *opts, const char *verb, wr_config **cfg) {
  char err[ERRLEN];
  char *path;
  *cfg = NULL;
  if (wr_opts_isset(opts, "config"))
    path = wr_xstrdup(wr_opts_get(opts, "config"));
  else
    path = wr_config_find_default();
  if (!path) {
    fprintf(stderr, "%s\n", no_config_msg);
    return -1;
  }
  printf("%s rules from %s\n", verb, path);
  fflush(stdout);
  int rv = wr_config_load(path, cfg, err, sizeof(err));
  free(path);
  if (rv == WR_OK) rv = wr_config_apply_opts(*cfg, opts, err, sizeof(err));
  if (rv != WR_OK) {
    fprintf(stderr, "%s\n", err);
    wr_config_free(*cfg);
    *cfg = NULL;
    return -1;
  }
  return 0;
}

int wr_cmd_ingress_validate(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv) {
  char err[ERRLEN];
  wr_config *cfg = NULL;
  wr_ingress *ing = NULL;
  int rv, code = WR_EXIT_FAIL;
  (void)cmd;
  (void)argc;
  (void)argv;
  if (wr_opts_isset(opts, "json")) {
    const char *json = wr_opts_get(opts, "json");
    printf("Validating rules from cmdline flag --json\n");
    fflush(stdout);
    if (wr_config_parse_json(json, strlen(json), "--json", &cfg, err, sizeof(err)) != WR_OK) {
      fprintf(stderr, "%s\n", err);
      return WR_EXIT_FAIL;
    }
  } else if (load_config(opts, "Validating", &cfg) != 0) {
    return WR_EXIT_FAIL;
  }
  rv = wr_ingress_parse(cfg, &ing, err, sizeof(err));
  if (rv != WR_OK) {
    fprintf(stderr, "Validation failed: %s\n", err);
    goto out;
  }
  /* Only a config without ingress rules may use --url. */
  if (wr_opts_isset(opts, "url")) {
    fprintf(stderr, "%s\n", WR_INGRESS_ERR_URL_WITH_INGRESS);
    goto out;
  }
  if (cfg->n_warnings) {
    printf("Warning: unused keys detected in your config file. Here is a list of unused keys:\n");
    for (size_t i = 0; i < cfg->n_warnings; i++) printf("%s\n", cfg->warnings[i]);
  }
  printf("OK\n");
  code = WR_EXIT_OK;
out:
  wr_ingress_free(ing);
  wr_config_free(cfg);
  return code;
}

/* Splits an absolute URL into host (port kept: matching ignores it) and
 * the percent-decoded path, as url.Parse's Host and Path. Returns -1 when
 * there is no scheme://, which is when Go finds no hostname either. */
static int split_url(const char *u, char **host, char **path) {
  const char *sep = strstr(u, "://");
  if (!sep || sep == u) return -1;
  const char *auth = sep + 3;
  size_t alen = strcspn(auth, "/?#");
  const char *at = memchr(auth, '@', alen);
  if (at) alen -= (size_t)(at + 1 - auth), auth = at + 1;
  *host = wr_xstrndup(auth, alen);
  const char *p = auth + alen;
  size_t plen = *p == '/' ? strcspn(p, "?#") : 0;
  char *out = wr_xmalloc(plen + 1);
  wr_pct_decode(p, plen, WR_PCT_LENIENT, out, plen + 1); /* cannot fail: |out| holds |plen| + 1 */
  *path = out;
  return 0;
}

int wr_cmd_ingress_rule(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv) {
  char err[ERRLEN];
  wr_config *cfg = NULL;
  wr_ingress *ing = NULL;
  char *host = NULL, *path = NULL;
  int code = WR_EXIT_FAIL;
  (void)cmd;
  if (argc < 1 || !argv[0][0]) {
    fprintf(stderr, "%s tunnel ingress rule expects a single argument, the URL to test\n",
            opts->prog);
    return WR_EXIT_FAIL;
  }
  if (split_url(argv[0], &host, &path) != 0) {
    fprintf(stderr, "%s doesn't have a hostname, consider adding a scheme\n", argv[0]);
    return WR_EXIT_FAIL;
  }
  if (load_config(opts, "Using", &cfg) != 0) goto out;
  if (wr_ingress_parse(cfg, &ing, err, sizeof(err)) != WR_OK) {
    fprintf(stderr, "Validation failed: %s\n", err);
    goto out;
  }
  int i = wr_ingress_match(ing, host, path);
  char *desc = wr_ingress_rule_describe(&ing->rules[i]);
  printf("Matched rule #%d\n%s\n", i + 1, desc);
  free(desc);
  code = WR_EXIT_OK;
out:
  free(host);
  free(path);
  wr_ingress_free(ing);
  wr_config_free(cfg);
  return code;
}
