/* warren-edge cert add|list|delete (certificates the HTTPS front serves,
 * edge/certs.h) and zone get|set (per-zone HTTPS options,
 * edge/zone_settings.h). Both work on the data directory; a running edge
 * sees new certificates within a second and zone changes within a few. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cmd/commands.h"
#include "cmd/edge_int.h"
#include "edge/certs.h"
#include "edge/zone_settings.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/mem.h"

#define MAX_PEM (256u * 1024u)

/* The data directory, checked as the other commands check it. */
static int data_dir(wr_opts *o, const char *cmd, char **dir) {
  wr_store *s = NULL;
  int rv = wr__edge_store_open(o, cmd, dir, &s);
  wr_store_close(s);
  return rv;
}

static json_t *cert_json(const wr_cert_info *c) {
  char a[32], b[32], u[32];
  json_t *hosts = json_array();
  for (size_t i = 0; i < c->n_names; i++) json_array_append_new(hosts, json_string(c->names[i]));
  wr__edge_fmt_time(c->not_before, a);
  wr__edge_fmt_time(c->not_after, b);
  wr__edge_fmt_time(c->uploaded_at, u);
  return json_pack("{s:s,s:o,s:s,s:s,s:s,s:s,s:s}", "id", c->id, "hosts", hosts, "issuer",
                   c->issuer, "signature", c->signature, "not_before", a, "expires_on", b,
                   "uploaded_on", u);
}

int wr_cmd_edge_cert_add(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  const char *cf = wr_opts_get(o, "cert"), *kf = wr_opts_get(o, "key");
  char *dir = NULL, *cert = NULL, *key = NULL, err[512];
  wr_cert_info info;
  int rv = WR_EXIT_FAIL;
  (void)cmd;
  if (argc > 0) return wr__edge_fail("cert add takes no arguments (got \"%s\")", argv[0]);
  if (!cf || !*cf || !kf || !*kf) return wr__edge_fail("cert add needs --cert FILE and --key FILE");
  if (data_dir(o, "cert add", &dir) != WR_EXIT_OK) goto out;
  if (wr_file_read(cf, MAX_PEM, &cert, NULL) != WR_OK) {
    wr__edge_fail("cannot read %s", cf);
    goto out;
  }
  if (wr_file_read(kf, MAX_PEM, &key, NULL) != WR_OK) {
    wr__edge_fail("cannot read %s", kf);
    goto out;
  }
  if (wr_certs_add(dir, cert, key, &info, err, sizeof(err)) != WR_OK) {
    wr__edge_fail("%s", err);
    goto out;
  }
  printf("Added certificate %s for", info.id);
  for (size_t i = 0; i < info.n_names; i++) printf("%s %s", i ? "," : "", info.names[i]);
  printf("\n");
  rv = WR_EXIT_OK;
out:
  free(dir);
  free(cert);
  if (key) {
    explicit_bzero(key, strlen(key));
    free(key);
  }
  return rv;
}

/* Uploaded certificates, then those obtained by ACME (id "acme"). */
int wr_cmd_edge_cert_list(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  char *dir = NULL;
  wr_cert_info *lists[2] = {NULL, NULL};
  size_t ns[2] = {0, 0};
  int json;
  (void)cmd;
  if (argc > 0) return wr__edge_fail("cert list takes no arguments (got \"%s\")", argv[0]);
  if (wr__edge_want_json(o, &json) != 0) return WR_EXIT_FAIL;
  if (data_dir(o, "cert list", &dir) != WR_EXIT_OK) {
    free(dir);
    return WR_EXIT_FAIL;
  }
  wr_certs_list(dir, &lists[0], &ns[0]);
  wr_certs_list_acme(dir, &lists[1], &ns[1]);
  free(dir);
  json_t *arr = json ? json_array() : NULL;
  if (!json) printf("%-36s  %-20s  %s\n", "ID", "EXPIRES", "HOSTS");
  for (int l = 0; l < 2; l++) {
    for (size_t i = 0; i < ns[l]; i++) {
      const wr_cert_info *c = &lists[l][i];
      if (json) {
        json_t *j = cert_json(c);
        json_object_set_new(j, "type", json_string(l ? "acme" : "uploaded"));
        json_array_append_new(arr, j);
        continue;
      }
      char b[32];
      wr__edge_fmt_time(c->not_after, b);
      printf("%-36s  %-20s  ", l ? "acme" : c->id, b);
      for (size_t j = 0; j < c->n_names; j++) printf("%s%s", j ? "," : "", c->names[j]);
      printf("\n");
    }
    free(lists[l]);
  }
  return json ? wr__edge_print_json(arr) : WR_EXIT_OK;
}

int wr_cmd_edge_cert_delete(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  char *dir = NULL;
  (void)cmd;
  if (argc != 1) return wr__edge_fail("cert delete takes one certificate ID");
  if (data_dir(o, "cert delete", &dir) != WR_EXIT_OK) {
    free(dir);
    return WR_EXIT_FAIL;
  }
  int rv = wr_certs_delete(dir, argv[0]);
  free(dir);
  if (rv == WR_ERR_NOTFOUND || rv == WR_ERR_INVAL)
    return wr__edge_fail("no certificate with ID %s", argv[0]);
  if (rv != WR_OK) return wr__edge_fail("cannot delete certificate %s", argv[0]);
  printf("Deleted certificate %s\n", argv[0]);
  return WR_EXIT_OK;
}

/* ---- zone get|set --------------------------------------------------------------- */

/* The zone named (or with the ID) |ref|. */
static int find_zone(wr_store *s, const char *ref, wr_zone *out) {
  wr_zone *zs = NULL;
  size_t n = 0;
  int found = 0;
  if (wr_store_zone_list(s, NULL, &zs, &n) != WR_OK) return wr__edge_fail("%s", wr_store_errmsg(s));
  for (size_t i = 0; i < n && !found; i++)
    if (strcasecmp(zs[i].name, ref) == 0 || strcasecmp(zs[i].id, ref) == 0) {
      *out = zs[i];
      found = 1;
    }
  free(zs);
  return found ? WR_EXIT_OK : wr__edge_fail("no zone %s on this edge", ref);
}

static void print_settings(const wr_zone_settings *z) {
  printf("zone                     %s (%s)\n", z->zone_name, z->zone_id);
  printf("always_use_https         %s\n", z->always_use_https ? "on" : "off");
  printf("hsts                     %s\n", z->hsts_enabled ? "on" : "off");
  printf("hsts_max_age             %lld\n", (long long)z->hsts_max_age);
  printf("hsts_include_subdomains  %s\n", z->hsts_include_subdomains ? "on" : "off");
  printf("hsts_preload             %s\n", z->hsts_preload ? "on" : "off");
  printf("hsts_nosniff             %s\n", z->hsts_nosniff ? "on" : "off");
  printf("min_tls_version          %s\n", z->min_tls_13 ? "1.3" : "1.2");
}

static json_t *settings_json(const wr_zone_settings *z) {
  return json_pack("{s:s,s:s,s:b,s:{s:b,s:I,s:b,s:b,s:b},s:s}", "zone_id", z->zone_id, "zone",
                   z->zone_name, "always_use_https", z->always_use_https,
                   "strict_transport_security", "enabled", z->hsts_enabled, "max_age",
                   (json_int_t)z->hsts_max_age, "include_subdomains", z->hsts_include_subdomains,
                   "preload", z->hsts_preload, "nosniff", z->hsts_nosniff, "min_tls_version",
                   z->min_tls_13 ? "1.3" : "1.2");
}

/* An on|off flag into |v| (left alone when not given). */
static int onoff(wr_opts *o, const char *name, int *v) {
  const char *s = wr_opts_get(o, name);
  if (!s) return 0;
  if (strcmp(s, "on") == 0 || strcmp(s, "true") == 0) *v = 1;
  else if (strcmp(s, "off") == 0 || strcmp(s, "false") == 0) *v = 0;
  else return wr__edge_fail("--%s takes on or off, not \"%s\"", name, s), -1;
  return 0;
}

/* The flags of zone set over |z|. 0, or -1 after printing why. */
static int apply_flags(wr_opts *o, wr_zone_settings *z) {
  const char *age = wr_opts_get(o, "hsts-max-age"), *tls = wr_opts_get(o, "min-tls-version");
  if (onoff(o, "always-use-https", &z->always_use_https) || onoff(o, "hsts", &z->hsts_enabled) ||
      onoff(o, "hsts-include-subdomains", &z->hsts_include_subdomains) ||
      onoff(o, "hsts-preload", &z->hsts_preload) || onoff(o, "hsts-nosniff", &z->hsts_nosniff))
    return -1;
  if (age) {
    char *end = NULL;
    long long v = strtoll(age, &end, 10);
    if (!*age || *end || v < 0 || v > 31536000LL * 2)
      return wr__edge_fail("--hsts-max-age takes seconds from 0 to 63072000"), -1;
    z->hsts_max_age = v;
  }
  if (tls) {
    if (strcmp(tls, "1.2") != 0 && strcmp(tls, "1.3") != 0)
      return wr__edge_fail("--min-tls-version takes 1.2 or 1.3, not \"%s\"", tls), -1;
    z->min_tls_13 = strcmp(tls, "1.3") == 0;
  }
  return 0;
}

static int zone_cmd(wr_opts *o, int argc, char **argv, int set) {
  char *dir = NULL, actor[160];
  wr_store *s = NULL;
  wr_zone z;
  wr_zone_settings zs;
  int json, rv = WR_EXIT_FAIL;
  if (argc != 1) return wr__edge_fail("zone %s takes one zone name or ID", set ? "set" : "get");
  if (wr__edge_want_json(o, &json) != 0) return WR_EXIT_FAIL;
  if (wr__edge_store_open(o, set ? "zone set" : "zone get", &dir, &s) != WR_EXIT_OK) goto out;
  if (find_zone(s, argv[0], &z) != WR_EXIT_OK) goto out;
  if (wr_store_zone_settings_get(s, z.id, &zs) != WR_OK) {
    wr__edge_fail("%s", wr_store_errmsg(s));
    goto out;
  }
  if (set) {
    if (apply_flags(o, &zs) != 0) goto out;
    wr__edge_cli_actor(actor, sizeof(actor));
    if (wr_store_zone_settings_set(s, actor, &zs) != WR_OK ||
        wr_store_zone_settings_get(s, z.id, &zs) != WR_OK) {
      wr__edge_fail("%s", wr_store_errmsg(s));
      goto out;
    }
  }
  if (json) rv = wr__edge_print_json(settings_json(&zs));
  else {
    print_settings(&zs);
    rv = WR_EXIT_OK;
  }
out:
  wr_store_close(s);
  free(dir);
  return rv;
}

int wr_cmd_edge_zone_get(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return zone_cmd(o, argc, argv, 0);
}

int wr_cmd_edge_zone_set(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return zone_cmd(o, argc, argv, 1);
}
