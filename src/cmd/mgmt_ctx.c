/* The management commands' context: config.yml and --loglevel, the cfapi
 * client made from cert.pem and --api-url, and the steps cloudflared's
 * subcommands share (name -> ID, credentials files, flags -> filters).
 * See mgmt_int.h and ../shared/cloudflare-api.md §1.4, §2.1. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cfapi/time.h"
#include "cfapi/values.h"
#include "cfapi/vnets.h"
#include "cmd/mgmt_int.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/log.h"
#include "lib/mem.h"

/* ---- messages ------------------------------------------------------------------------ */

int wr__mg_fail(const wr_cfapi_error *e) {
  fflush(stdout);
  fprintf(stderr, "%s\n", e->msg);
  return WR_EXIT_FAIL;
}

int wr__mg_finish(wr__mg_ctx *c, int rv, const wr_cfapi_error *e) {
  if (rv < 0) rv = wr__mg_fail(e);
  wr__mg_end(c);
  return rv;
}

int wr__mg_usage(const wr__mg_ctx *c, const char *fmt, ...) {
  va_list ap;
  fflush(stdout);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nSee '%s %s --help'.\n", c->opts->prog, c->path);
  return WR_EXIT_USAGE;
}

/* ---- context ------------------------------------------------------------------------ */

int wr__mg_begin(wr__mg_ctx *c, wr_opts *o, const char *path) {
  char err[1024];
  memset(c, 0, sizeof(*c));
  c->opts = o;
  c->path = path;
  int rv = wr_config_load_opts(o, &c->cfg, err, sizeof(err));
  if (rv != WR_OK && rv != WR_ERR_NOTFOUND) {
    fprintf(stderr, "%s\n", err);
    return WR_EXIT_FAIL;
  }
  const char *lvl = wr_opts_get(o, "loglevel");
  if (lvl && *lvl && wr_cli_set_loglevel(lvl, NULL) != 0) {
    wr_config_free(c->cfg);
    c->cfg = NULL;
    return WR_EXIT_FAIL;
  }
  return WR_OK;
}

void wr__mg_end(wr__mg_ctx *c) {
  wr_config_free(c->cfg);
  wr_cfapi_client_free(c->api);
  free(c->cert_path);
  explicit_bzero(&c->cert, sizeof(c->cert));
  memset(c, 0, sizeof(*c));
}

/* cloudflared's fileExists: stat succeeds and it is not a directory. */
static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

/* cloudflared's FindOriginCert: *path gets the expanded cert.pem. */
static int find_cert(wr__mg_ctx *c, char **path, wr_cfapi_error *e) {
  const char *oc = wr_opts_get(c->opts, "origincert");
  *path = oc && *oc ? wr_path_expand(oc) : wr_find_default_file("cert.pem");
  if (!*path) {
    wr_error("Cannot determine default origin certificate path. No file cert.pem in [~/.cloudflared "
             "~/.cloudflare-warp ~/cloudflare-warp /etc/cloudflared /usr/local/etc/cloudflared]. You "
             "need to specify the origin certificate path by specifying the origincert option in the "
             "configuration file, or set TUNNEL_ORIGIN_CERT environment variable originCertPath=");
    wr_cfapi_errorf(e, "Error locating origin cert: client didn't specify origincert path");
    return WR_ERR_NOTFOUND;
  }
  if (!file_exists(*path)) {
    wr_error("Cannot find a valid certificate for your origin at the path:\n\n    %s\n\n"
             "If the path above is wrong, specify the path with the -origincert option.\n"
             "If you don't have a certificate, run the command:\n\n\t%s tunnel login\n originCertPath=%s",
             *path, c->opts->prog, *path);
    wr_cfapi_errorf(e, "Error locating origin cert: cannot find a valid certificate at the path %s", *path);
    return WR_ERR_NOTFOUND;
  }
  return WR_OK;
}

/* Reads and decodes cert.pem into c->cert. */
static int read_cert(wr__mg_ctx *c, const char *path, wr_cfapi_error *e) {
  char reason[1024];
  char *data = NULL;
  size_t len = 0;
  if (wr_file_read(path, WR_CRED_MAX_FILE, &data, &len) != WR_OK) {
    wr_cfapi_errorf(e, "Can't read origin cert from %s: cannot read %s to load origin certificate", path, path);
    return WR_ERR_IO;
  }
  int rv = wr_origin_cert_parse(data, len, &c->cert, reason, sizeof(reason));
  explicit_bzero(data, len);
  free(data);
  if (rv == WR_OK) return WR_OK;
  if (strncmp(reason, "Origin certificate needs to be refreshed", 40) == 0)
    wr_cfapi_errorf(e, "Origin certificate needs to be refreshed before creating new tunnels.\n"
                       "Delete %s and run \"%s tunnel login\" to obtain a new cert.", path, c->opts->prog);
  else
    wr_cfapi_errorf(e, "Error decoding origin cert: %s", reason);
  return WR_ERR_PROTO;
}

static void trace_request(void *ud, const char *method, const char *url) {
  (void)ud;
  wr_debug("%s %s", method, url);
}

int wr__mg_client(wr__mg_ctx *c, wr_cfapi_error *e) {
  char *path = NULL;
  if (c->api) return WR_OK;
  int rv = find_cert(c, &path, e);
  if (rv == WR_OK) rv = read_cert(c, path, e);
  if (rv == WR_OK) {
    const char *api = wr_opts_get(c->opts, "api-url");
    wr_cfapi_config cfg = {.base_url = api ? api : WR_CFAPI_DEFAULT_BASE_URL, .account_tag = c->cert.account_id,
                           .zone_tag = c->cert.zone_id, .api_token = c->cert.api_token, .trace = trace_request};
    rv = wr_cfapi_client_new(&cfg, &c->api, e);
  }
  if (rv != WR_OK) {
    free(path);
    return rv;
  }
  c->cert_path = path;
  return WR_OK;
}

const char *wr__mg_cred_file(const wr__mg_ctx *c) {
  if (c->cred_file_cli_only && wr_opts_source(c->opts, "credentials-file") < WR_SRC_ENV) return NULL;
  return wr_opts_get(c->opts, "credentials-file");
}

/* ---- names to IDs ------------------------------------------------------------------------ */

/* GET …/cfd_tunnel?is_deleted=false&name=NAME. */
static int tunnels_named(wr__mg_ctx *c, const char *name, wr_cfapi_tunnels *out, wr_cfapi_error *e) {
  wr_cfapi_query q = {0};
  memset(out, 0, sizeof(*out));
  int rv = wr__mg_client(c, e);
  if (rv != WR_OK) return rv;
  wr_cfapi_query_set(&q, "is_deleted", "false");
  wr_cfapi_query_set(&q, "name", name);
  rv = wr_cfapi_list_tunnels(c->api, &q, out, e);
  wr_cfapi_query_free(&q);
  return rv;
}

/* The TunnelID of the --credentials-file, if it names a readable file
 * with one. */
static int id_from_credentials(const wr__mg_ctx *c, wr_uuid *out) {
  static const wr_uuid nil;
  const char *cf = wr__mg_cred_file(c);
  wr_credentials cred;
  char err[512];
  int found = 0;
  if (!cf || !*cf) return 0;
  char *p = wr_path_expand(cf);
  if (p && file_exists(p) && wr_credentials_load(p, &cred, err, sizeof(err)) == WR_OK && cred.has_tunnel_id &&
      memcmp(&cred.tunnel_id, &nil, sizeof(nil)) != 0) {
    *out = cred.tunnel_id;
    found = 1;
  }
  explicit_bzero(&cred, sizeof(cred));
  free(p);
  return found;
}

int wr__mg_find_id(wr__mg_ctx *c, const char *ref, wr_uuid *out, wr_cfapi_error *e) {
  char why[128];
  wr_cfapi_tunnels l;
  if (wr_cfapi_uuid_parse(ref, out, why, sizeof(why)) == WR_OK) return WR_OK;
  /* A credentials file given with --credentials-file (or in config.yml)
   * names the tunnel, whatever the argument says: cloudflared's rule. */
  if (id_from_credentials(c, out)) return WR_OK;
  int rv = tunnels_named(c, ref, &l, e);
  if (rv != WR_OK) return rv;
  if (l.n > 0) *out = l.v[0].id;
  else wr_cfapi_errorf(e, "%s is neither the ID nor the name of any of your tunnels", ref);
  rv = l.n > 0 ? WR_OK : WR_ERR_NOTFOUND;
  wr_cfapi_tunnels_free(&l);
  return rv;
}

int wr__mg_find_ids(wr__mg_ctx *c, char **refs, int nrefs, wr_uuid **out, size_t *n, wr_cfapi_error *e) {
  char why[128];
  wr_uuid u;
  *out = wr_xcalloc((size_t)nrefs + 1, sizeof(wr_uuid));
  *n = 0;
  for (int i = 0; i < nrefs; i++)
    if (wr_cfapi_uuid_parse(refs[i], &(*out)[*n], why, sizeof(why)) == WR_OK) (*n)++;
  for (int i = 0; i < nrefs; i++) {
    wr_cfapi_tunnels l;
    if (wr_cfapi_uuid_parse(refs[i], &u, why, sizeof(why)) == WR_OK) continue;
    int rv = tunnels_named(c, refs[i], &l, e);
    if (rv == WR_OK && l.n != 1) {
      wr_cfapi_errorf(e, "there should only be 1 non-deleted Tunnel named %s", refs[i]);
      rv = WR_ERR_NOTFOUND;
    }
    if (rv == WR_OK) (*out)[(*n)++] = l.v[0].id;
    wr_cfapi_tunnels_free(&l);
    if (rv != WR_OK) {
      free(*out);
      *out = NULL;
      *n = 0;
      return rv;
    }
  }
  return WR_OK;
}

int wr__mg_vnet_id(wr__mg_ctx *c, const char *ref, wr_uuid *out, wr_cfapi_error *e) {
  char why[128];
  wr_cfapi_query q = {0};
  wr_cfapi_vnets l;
  if (wr_cfapi_uuid_parse(ref, out, why, sizeof(why)) == WR_OK) return WR_OK;
  int rv = wr__mg_client(c, e);
  if (rv != WR_OK) return rv;
  wr_cfapi_query_set(&q, "is_deleted", "false");
  wr_cfapi_query_set(&q, "name", ref);
  rv = wr_cfapi_list_vnets(c->api, &q, &l, e);
  wr_cfapi_query_free(&q);
  if (rv == WR_OK && l.n != 1) {
    wr_cfapi_errorf(e, "there should only be 1 non-deleted virtual network named %s", ref);
    rv = WR_ERR_NOTFOUND;
  }
  if (rv == WR_OK) *out = l.v[0].id;
  wr_cfapi_vnets_free(&l);
  return rv;
}

int wr__mg_resolve_tunnel(wr_opts *o, const char *ref, wr_uuid *out, char *err, size_t errlen) {
  wr__mg_ctx c;
  wr_cfapi_error e;
  memset(&c, 0, sizeof(c));
  c.opts = o;
  c.path = "tunnel run";
  int rv = wr__mg_find_id(&c, ref, out, &e);
  if (rv != WR_OK) snprintf(err, errlen, "error parsing tunnel ID: %s", e.msg);
  wr__mg_end(&c);
  return rv;
}

/* ---- credentials files ---------------------------------------------------------------------- */

/* Go's syscall messages are lower-case ("no such file or directory"). */
static void lower_last_reason(wr_cfapi_error *e) {
  char *last = NULL;
  for (char *p = strstr(e->msg, ": "); p; p = strstr(p + 1, ": ")) last = p;
  if (last && last[2] >= 'A' && last[2] <= 'Z') last[2] = (char)(last[2] - 'A' + 'a');
}

int wr__mg_write_credentials(const char *path, const wr_credentials *cred, wr_cfapi_error *e) {
  struct stat st;
  if (stat(path, &st) == 0) {
    wr_cfapi_errorf(e, "%s already exists", path);
    return WR_ERR_EXISTS;
  }
  if (errno != ENOENT) {
    wr_cfapi_errorf(e, "stat %s: %s", path, strerror(errno));
    lower_last_reason(e);
    return WR_ERR_IO;
  }
  char *json = wr_credentials_to_json(cred);
  int rv = wr_file_write(path, json, strlen(json), 0400, 1);
  int saved = errno;
  explicit_bzero(json, strlen(json));
  free(json);
  if (rv == WR_OK) return WR_OK;
  if (rv == WR_ERR_EXISTS) {
    wr_cfapi_errorf(e, "%s already exists", path);
    return rv;
  }
  wr_cfapi_errorf(e, "open %s: %s", path, strerror(saved));
  lower_last_reason(e);
  return WR_ERR_IO;
}

/* ---- flags to API filters -------------------------------------------------------------------- */

/* A value-parsing kind: the canonical text of |v| in |s|, or -1 with the
 * parser's reason in |why|. */
static int canonical(wr__mg_qkind kind, const char *v, char *s, char *why, size_t whylen) {
  wr_uuid u;
  wr_cfapi_time t;
  wr_cfapi_cidr n;
  switch (kind) {
  case WR__MG_Q_UUID:
    if (wr_cfapi_uuid_parse(v, &u, why, whylen) != WR_OK) return -1;
    wr_uuid_format(&u, s);
    return 0;
  case WR__MG_Q_TIME:
    if (wr_cfapi_time_parse(v, &t) != WR_OK) return -1;
    wr_cfapi_time_rfc3339(&t, s);
    return 0;
  default:
    if (wr_cfapi_cidr_parse(v, &n) != WR_OK) return -1;
    wr_cfapi_cidr_str(&n, s);
    return 0;
  }
}

/* The parameter's value for |f|, in |s| (64 bytes); NULL to leave it out. */
static const char *flag_value(const wr_opts *o, const wr__mg_qflag *f, char *s) {
  const char *v = wr_opts_get(o, f->flag);
  switch (f->kind) {
  case WR__MG_Q_POSINT:
    if (!v || atoi(v) <= 0) return NULL;
    snprintf(s, 64, "%d", atoi(v));
    return s;
  case WR__MG_Q_BOOL: return wr_opts_bool(o, f->flag) ? "true" : "false";
  case WR__MG_Q_BOOL_IFSET: return !wr_opts_isset(o, f->flag) ? NULL : wr_opts_bool(o, f->flag) ? "true" : "false";
  case WR__MG_Q_FALSE_UNLESS: return wr_opts_bool(o, f->flag) ? NULL : "false";
  case WR__MG_Q_CIDR: return wr_opts_isset(o, f->flag) ? v : NULL;
  default: return v && *v ? v : NULL;
  }
}

int wr__mg_query_flags(const wr_opts *o, const wr__mg_qflag *t, wr_cfapi_query *q, wr_cfapi_error *e) {
  for (; t->flag; t++) {
    char s[64], canon[WR_CFAPI_TIME_STRLEN], why[128] = "";
    const char *v = flag_value(o, t, s);
    int parsed = t->kind == WR__MG_Q_UUID || t->kind == WR__MG_Q_TIME || t->kind == WR__MG_Q_CIDR;
    if (!v) continue;
    if (parsed && canonical(t->kind, v, canon, why, sizeof(why)) != 0) {
      /* TIME names the value twice, CIDR once, UUID the value or flag and the reason. */
      const char *subject = t->err_names_flag ? t->flag : v;
      wr_cfapi_errorf(e, t->err, subject, t->kind == WR__MG_Q_TIME ? v : why);
      return WR_ERR_INVAL;
    }
    wr_cfapi_query_set(q, t->param, parsed ? canon : v);
  }
  return WR_OK;
}
