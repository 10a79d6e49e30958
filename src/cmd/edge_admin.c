/* warren-edge local administration: init, tunnel create|list|delete,
 * route dns and audit. These work on the data directory directly (the store
 * is SQLite in WAL mode, so they are safe next to a running edge) and have
 * the same effect as the matching REST API calls: the same store functions,
 * the same validation, the same audit rows (actor "cli:<user>"). */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "cmd/edge_int.h"
#include "edge/db.h"
#include "edge/pki.h"
#include "edge/store.h"
#include "lib/credentials.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/mem.h"

#define PROG "warren-edge"
#define DB_NAME "warren.db"
#define CERT_PEM "cert.pem"
#define DEFAULT_API "http://127.0.0.1:8081/client/v4"

/* Everything a command that works on an existing data directory needs. */


static char *join(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = wr_xmalloc(n);
  snprintf(p, n, "%s/%s", dir, name);
  return p;
}

static json_t *json_time(int64_t t) {
  char buf[32];
  if (!t) return json_null();
  wr__edge_fmt_time(t, buf);
  return json_string(buf);
}


/* --- init --------------------------------------------------------------------- */

/* 0: missing, 1: an empty directory, 2: a non-empty directory, 3: not a
 * directory, -1: cannot tell (errno set). */
static int dir_state(const char *dir) {
  struct stat st;
  DIR *d;
  struct dirent *e;
  int state = 1;
  if (stat(dir, &st) != 0) return errno == ENOENT ? 0 : -1;
  if (!S_ISDIR(st.st_mode)) return 3;
  if (!(d = opendir(dir))) return -1;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
      state = 2;
      break;
    }
  closedir(d);
  return state;
}

/* Removes every entry of |dir| (flat: init creates no subdirectories), and
 * |dir| itself if |remove_self|. Only used on directories init made or found
 * empty. */
static void empty_dir(const char *dir, int remove_self) {
  DIR *d = opendir(dir);
  struct dirent *e;
  if (d) {
    while ((e = readdir(d)))
      if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
  }
  if (remove_self) rmdir(dir);
}

/* What init made, for the summary. */
typedef struct init_result {
  wr_account acct;
  wr_zone zone;
  wr_user user;
} init_result;

/* 1 if |s| has an account, 0 if not, -1 on a store error. */
static int store_has_accounts(wr_store *s) {
  wr_account *rows;
  size_t n;
  if (wr_store_account_list(s, &rows, &n) != WR_OK) return -1;
  free(rows);
  return n > 0;
}

/* Fills the (empty, private) directory |dir|: store, account, zone, admin
 * user and token, CAs and certificates, cert.pem. */
static int init_fill(const char *dir, const char *store, const char *zone, const char *email,
                     const char *actor, init_result *res) {
  char err[WR_STORE_ERRMSG_MAX], token[WR_STORE_TOKEN_LEN + 1] = "";
  char *db = store ? wr_xstrdup(store) : join(dir, DB_NAME), *cert_path = join(dir, CERT_PEM), *pem = NULL, *detail = NULL;
  wr_store *s = NULL;
  wr_pem_pair origin = {0};
  wr_origin_cert oc;
  int rv = WR_EXIT_FAIL, r;
  memset(&oc, 0, sizeof(oc));

  if (wr_store_open(db, WR_STORE_CREATE, &s, err, sizeof(err)) != WR_OK) {
    wr__edge_fail("%s", err);
    goto out;
  }
  /* A shared store (--store) may already be another edge's. */
  if (store && (r = store_has_accounts(s)) != 0) {
    if (r > 0)
      wr__edge_fail("the store given with --store already holds an edge's accounts; refusing to "
                    "add another (start this edge with `run --store` on it instead)");
    else
      wr__edge_fail("%s", wr_store_errmsg(s));
    goto out;
  }
  if (wr_store_account_create(s, actor, zone, &res->acct) != WR_OK ||
      wr_store_zone_create(s, actor, res->acct.id, zone, &res->zone) != WR_OK ||
      wr_store_user_create(s, actor, res->acct.id, email, NULL, 0, &res->user) != WR_OK ||
      wr_store_token_create(s, actor, res->user.id, NULL, token, NULL) != WR_OK) {
    wr__edge_fail("%s", wr_store_errmsg(s));
    goto out;
  }
  if (wr_pki_init_dir(dir, zone, err, sizeof(err)) != WR_OK ||
      wr_pki_issue_origin_cert(dir, zone, &origin, err, sizeof(err)) != WR_OK) {
    wr__edge_fail("%s", err);
    goto out;
  }
  /* cert.pem is what `cloudflared tunnel login` would have saved: the origin
   * certificate and key (ignored by cloudflared, useful for origins) and the
   * token block the management commands read. */
  snprintf(oc.zone_id, sizeof(oc.zone_id), "%s", res->zone.id);
  snprintf(oc.account_id, sizeof(oc.account_id), "%s", res->acct.id);
  snprintf(oc.api_token, sizeof(oc.api_token), "%s", token);
  if (!(pem = wr_origin_cert_encode(&oc, origin.cert, origin.key))) {
    wr__edge_fail("cannot encode %s", cert_path);
    goto out;
  }
  if ((r = wr_file_write(cert_path, pem, strlen(pem), 0600, 1)) != WR_OK) {
    wr__edge_fail("cannot write %s: %s", cert_path, r == WR_ERR_EXISTS ? "it already exists" : strerror(errno));
    goto out;
  }
  json_t *j = json_pack("{s:s,s:s,s:s}", "zone", zone, "admin", email, "cert_pem", CERT_PEM);
  detail = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (wr_store_audit_append(s, actor, res->acct.id, "edge.init", "edge", zone, detail) != WR_OK) {
    wr__edge_fail("%s", wr_store_errmsg(s));
    goto out;
  }
  rv = WR_EXIT_OK;
out:
  explicit_bzero(token, sizeof(token));
  explicit_bzero(&oc, sizeof(oc));
  if (pem) explicit_bzero(pem, strlen(pem));
  free(pem);
  free(detail);
  wr_pem_pair_free(&origin);
  wr_store_close(s); /* checkpoints the WAL, so the directory can move */
  free(cert_path);
  free(db);
  return rv;
}

static void print_init(const char *dir, const char *store, const init_result *r) {
  char shown[256];
  char names[512];
  size_t used = 0;
  for (size_t i = 0; wr_pki_tunnel_server_dns[i]; i++)
    used += (size_t)snprintf(names + used, sizeof(names) - used, "%s, ", wr_pki_tunnel_server_dns[i]);
  for (size_t i = 0; wr_pki_tunnel_server_ips[i] && used < sizeof(names); i++)
    used += (size_t)snprintf(names + used, sizeof(names) - used, "%s, ", wr_pki_tunnel_server_ips[i]);
  if (used < sizeof(names)) snprintf(names + used, sizeof(names) - used, "%s, *.%s", r->zone.name, r->zone.name);

  printf("Initialized the Warren edge data directory %s\n", dir);
  if (store) printf("  store                %s\n", wr_db_target_redact(store, shown, sizeof(shown)));
  else printf("  store                %s/%s\n", dir, DB_NAME);
  printf("  account              %s (%s)\n", r->acct.id, r->acct.name);
  printf("  zone                 %s (%s)\n", r->zone.name, r->zone.id);
  printf("  admin user           %s, with an API token in cert.pem\n", r->user.email);
  printf("  edge CA              %s/%s (key %s, mode 0600)\n", dir, WR_PKI_CA_CERT, WR_PKI_CA_KEY);
  printf("  tunnel-server cert   %s/%s for %s\n", dir, WR_PKI_SERVER_CERT, names);
  printf("  origin CA            %s/%s\n", dir, WR_PKI_ORIGIN_CA_CERT);
  printf("  admin cert.pem       %s/%s (origin certificate, key and API token; keep it secret)\n", dir,
         CERT_PEM);
  printf("\nNext steps:\n");
  printf("  1. Start the edge:\n       warren-edge run --data-dir %s\n", dir);
  printf("  2. Create a tunnel and route a hostname to it:\n");
  printf("       warren-edge tunnel create --data-dir %s my-tunnel\n", dir);
  printf("       warren-edge route dns --data-dir %s my-tunnel app.%s\n", dir, r->zone.name);
  printf("     or manage tunnels with cloudflared (or warren) through the edge's API:\n");
  printf("       TUNNEL_API_URL=%s cloudflared tunnel --origincert %s/%s create my-tunnel\n",
         DEFAULT_API, dir, CERT_PEM);
  printf("  3. Run the connector against this edge:\n");
  printf("       cloudflared tunnel --edge 127.0.0.1:7844 --cacert %s/%s --protocol quic \\\n"
         "         --credentials-file %s/TUNNEL-ID.json run TUNNEL-ID\n",
         dir, WR_PKI_CA_CERT, dir);
}

int wr_cmd_edge_init(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  char zone[WR_STORE_HOST_MAX + 1], err[WR_STORE_ERRMSG_MAX], actor[160], *email = NULL;
  char *dir = NULL, *staging = NULL, *parent = NULL;
  const char *zone_arg = wr_opts_get(o, "zone"), *email_arg = wr_opts_get(o, "email");
  init_result res;
  int rv = WR_EXIT_FAIL, state;
  memset(&res, 0, sizeof(res));

  if (argc > 0) return wr__edge_fail("init takes no arguments (got \"%s\"); use --data-dir DIR --zone ZONE", argv[0]);
  if (!(dir = wr__edge_data_dir(o, "init"))) goto out;
  if (!zone_arg || !*zone_arg) {
    wr__edge_fail("init needs the DNS zone the edge serves: pass --zone ZONE, e.g. --zone example.test");
    goto out;
  }
  if (wr_store_check_dns_name(zone_arg, 0, zone, err, sizeof(err)) != WR_OK) {
    wr__edge_fail("invalid --zone: %s", err);
    goto out;
  }
  if (email_arg && *email_arg) {
    email = wr_xstrdup(email_arg);
  } else {
    size_t n = strlen(zone) + 7;
    email = wr_xmalloc(n);
    snprintf(email, n, "admin@%s", zone);
  }
  wr__edge_cli_actor(actor, sizeof(actor));

  /* Never touch a directory with anything in it: it may be another edge's. */
  state = dir_state(dir);
  if (state == 2) {
    wr__edge_fail("data directory %s already exists and is not empty; refusing to touch it "
         "(choose a new --data-dir, or remove %s to start over)",
         dir, dir);
    goto out;
  }
  if (state == 3) {
    wr__edge_fail("%s exists and is not a directory; refusing to touch it", dir);
    goto out;
  }
  if (state < 0) {
    wr__edge_fail("cannot use %s as the data directory: %s", dir, strerror(errno));
    goto out;
  }
  if (state == 1) {
    /* An existing empty directory may be a mount point (a container
     * volume), which rename() cannot replace: fill it in place and empty it
     * again if anything fails. Owner-only, as a new one would be; a volume
     * we may not chmod keeps its mode (the secrets inside are 0600). */
    (void)chmod(dir, 0700);
    if (init_fill(dir, wr__edge_store_target(o), zone, email, actor, &res) != WR_EXIT_OK) {
      empty_dir(dir, 0);
      goto out;
    }
  } else {
    parent = wr_xstrdup(dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
      *slash = '\0';
      if (wr_mkdirs(parent, 0755) != WR_OK) {
        wr__edge_fail("cannot create %s: %s", parent, strerror(errno));
        goto out;
      }
    }
    /* Build everything in a private sibling directory and rename it into
     * place: a failed or interrupted init leaves no DIR behind, and a second
     * init racing this one cannot mix files with it. */
    size_t n = strlen(dir) + 16;
    staging = wr_xmalloc(n);
    snprintf(staging, n, "%s.init-XXXXXX", dir);
    if (!mkdtemp(staging)) {
      wr__edge_fail("cannot create a directory next to %s: %s", dir, strerror(errno));
      free(staging);
      staging = NULL;
      goto out;
    }
    if (init_fill(staging, wr__edge_store_target(o), zone, email, actor, &res) != WR_EXIT_OK) goto out;
    /* rename() does not replace a directory that appeared meanwhile with
     * files in it. */
    if (rename(staging, dir) != 0) {
      wr__edge_fail("cannot move the new data directory into place at %s: %s", dir,
           errno == ENOTEMPTY || errno == EEXIST ? "something else created it meanwhile"
                                                 : strerror(errno));
      goto out;
    }
    free(staging);
    staging = NULL;
  }
  print_init(dir, wr__edge_store_target(o), &res);
  rv = WR_EXIT_OK;
out:
  if (staging) empty_dir(staging, 1);
  free(staging);
  free(parent);
  free(email);
  free(dir);
  return rv;
}

/* --- tunnel create | list | delete ------------------------------------------------ */

int wr_cmd_edge_tunnel_create(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__edge_ctx a;
  wr_tunnel t;
  wr_credentials cred;
  char err[WR_STORE_ERRMSG_MAX], *path = NULL, *json = NULL;
  const char *out = wr_opts_get(o, "out");
  int rv = WR_EXIT_FAIL, r;
  memset(&t, 0, sizeof(t));
  memset(&cred, 0, sizeof(cred));

  if (argc != 1)
    return wr__edge_fail("tunnel create takes exactly one argument, the tunnel NAME (got %d)", argc);
  if (wr_store_check_tunnel_name(argv[0], err, sizeof(err)) != WR_OK) return wr__edge_fail("%s", err);
  /* Like cloudflared, never overwrite a credentials file: it may be the only
   * copy of another tunnel's secret. Checked first so nothing is created. */
  if (out && *out && wr_file_exists(out))
    return wr__edge_fail("%s already exists; refusing to overwrite a credentials file (choose another --out)", out);
  if (wr__edge_ctx_open(o, "tunnel create", WR__EDGE_ACCOUNT_ONE, &a) != WR_EXIT_OK) return WR_EXIT_FAIL;
  if (wr_store_tunnel_create(a.s, a.actor, a.acct.id, argv[0], NULL, 0, &t) != WR_OK) {
    wr__edge_fail("cannot create tunnel: %s", wr_store_errmsg(a.s));
    goto out;
  }
  if (out && *out) {
    path = wr_xstrdup(out);
  } else {
    char name[WR_STORE_UUID_LEN + 6];
    snprintf(name, sizeof(name), "%s.json", t.id);
    path = join(a.dir, name);
  }
  snprintf(cred.account_tag, sizeof(cred.account_tag), "%s", a.acct.id);
  memcpy(cred.secret, t.secret, t.secret_len);
  cred.secret_len = t.secret_len;
  cred.has_tunnel_id = wr_uuid_parse(t.id, strlen(t.id), &cred.tunnel_id) == WR_OK;
  json = wr_credentials_to_json(&cred);
  /* 0400 as cloudflared writes it: the secret is the tunnel's only key. */
  r = json ? wr_file_write(path, json, strlen(json), 0400, 1) : WR_ERR_INTERNAL;
  if (r != WR_OK) {
    int e = errno;
    /* A tunnel nobody holds the secret of is useless: take it back, as
     * cloudflared does when it cannot write the file. */
    wr_store_tunnel_delete(a.s, a.actor, t.id, NULL);
    wr__edge_fail("cannot write tunnel credentials to %s: %s; tunnel %s was deleted again", path,
         r == WR_ERR_EXISTS ? "the file already exists"
         : r == WR_ERR_INTERNAL ? "cannot encode them"
                                : strerror(e),
         t.name);
    goto out;
  }
  printf("Tunnel credentials written to %s. Keep this file secret. To revoke these credentials, "
         "delete the tunnel.\n\nCreated tunnel %s with id %s\n",
         path, t.name, t.id);
  rv = WR_EXIT_OK;
out:
  if (json) explicit_bzero(json, strlen(json));
  free(json);
  free(path);
  explicit_bzero(&cred, sizeof(cred));
  explicit_bzero(&t, sizeof(t));
  wr__edge_ctx_close(&a);
  return rv;
}

/* cloudflared's CONNECTIONS column: "2xams01, 1xlhr01" per edge location. */
static void conn_summary(const wr_conn_rec *c, size_t n, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n && used < size; i++) {
    int seen = 0;
    unsigned count = 0;
    for (size_t k = 0; k < i; k++) seen |= strcmp(c[k].edge_location, c[i].edge_location) == 0;
    if (seen) continue;
    for (size_t k = i; k < n; k++) count += strcmp(c[k].edge_location, c[i].edge_location) == 0;
    used += (size_t)snprintf(buf + used, size - used, "%s%ux%s", used ? ", " : "", count,
                             c[i].edge_location[0] ? c[i].edge_location : "edge");
  }
}

/* The Cloudflare API's Tunnel object (cloudflare-api.md 2.5), so scripts
 * can treat this output and the API's `result` alike. */
static json_t *tunnel_json(const wr_tunnel *t, const wr_conn_rec *c, size_t n) {
  json_t *conns = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(conns, json_pack("{s:s,s:s,s:b,s:s,s:o,s:s,s:s}", "colo_name", c[i].edge_location,
                                           "id", c[i].id, "is_pending_reconnect", 0, "origin_ip",
                                           c[i].origin_ip, "opened_at", json_time(c[i].opened_at),
                                           "client_id", c[i].client_id, "client_version",
                                           c[i].client_version));
  return json_pack("{s:s,s:s,s:o,s:o,s:o}", "id", t->id, "name", t->name, "created_at",
                   json_time(t->created_at), "deleted_at", json_time(t->deleted_at), "connections",
                   conns);
}

int wr_cmd_edge_tunnel_list(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__edge_ctx a;
  wr_tunnel *list = NULL;
  size_t n = 0, name_w = 4;
  int json = 0, rv = WR_EXIT_FAIL;
  json_t *arr = NULL;

  if (argc > 0) return wr__edge_fail("tunnel list takes no arguments (got \"%s\")", argv[0]);
  if (wr__edge_want_json(o, &json) != 0) return WR_EXIT_FAIL;
  if (wr__edge_ctx_open(o, "tunnel list", WR__EDGE_ACCOUNT_ONE, &a) != WR_EXIT_OK) return WR_EXIT_FAIL;
  wr_tunnel_filter f = {.account_id = a.acct.id};
  if (wr_store_tunnel_list(a.s, &f, &list, &n) != WR_OK) {
    wr__edge_fail("%s", wr_store_errmsg(a.s));
    goto out;
  }
  if (json) arr = json_array();
  else if (n == 0) {
    printf("No tunnels were found. You can use `warren-edge tunnel create NAME` to create a tunnel.\n");
    rv = WR_EXIT_OK;
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    if (strlen(list[i].name) > name_w) name_w = strlen(list[i].name);
  if (!json) printf("%-36s  %-*s  %-20s  %s\n", "ID", (int)name_w, "NAME", "CREATED", "CONNECTIONS");
  for (size_t i = 0; i < n; i++) {
    wr_conn_rec *conns = NULL;
    size_t nc = 0;
    if (wr_store_conn_list(a.s, list[i].id, 1, &conns, &nc) != WR_OK) {
      wr__edge_fail("%s", wr_store_errmsg(a.s));
      goto out;
    }
    if (json) {
      json_array_append_new(arr, tunnel_json(&list[i], conns, nc));
    } else {
      char created[32], summary[256];
      wr__edge_fmt_time(list[i].created_at, created);
      conn_summary(conns, nc, summary, sizeof(summary));
      printf("%-36s  %-*s  %-20s  %s\n", list[i].id, (int)name_w, list[i].name, created, summary);
    }
    free(conns);
  }
  rv = json ? wr__edge_print_json(arr) : WR_EXIT_OK;
  arr = NULL;
out:
  json_decref(arr);
  if (list) explicit_bzero(list, n * sizeof(*list));
  free(list);
  wr__edge_ctx_close(&a);
  return rv;
}

int wr_cmd_edge_tunnel_delete(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__edge_ctx a;
  wr_tunnel t;
  size_t routes = 0;
  char name[WR_STORE_UUID_LEN + 6], *cred = NULL;
  int rv = WR_EXIT_FAIL;

  if (argc != 1) return wr__edge_fail("tunnel delete takes exactly one argument, the tunnel NAME or ID (got %d)", argc);
  if (wr__edge_ctx_open(o, "tunnel delete", WR__EDGE_ACCOUNT_ONE, &a) != WR_EXIT_OK) return WR_EXIT_FAIL;
  if (wr_store_tunnel_resolve(a.s, a.acct.id, argv[0], &t) != WR_OK) {
    wr__edge_fail("cannot delete tunnel: %s", wr_store_errmsg(a.s));
    goto out;
  }
  if (wr_store_tunnel_delete(a.s, a.actor, t.id, &routes) != WR_OK) {
    wr__edge_fail("cannot delete tunnel %s: %s", t.name, wr_store_errmsg(a.s));
    goto out;
  }
  printf("Deleted tunnel %s with id %s", t.name, t.id);
  if (routes) printf(" and its %zu route%s", routes, routes == 1 ? "" : "s");
  printf("\n");
  if (t.active_conns)
    printf("Note: %u connector connection%s still open; the edge refuses the tunnel from now on.\n",
           t.active_conns, t.active_conns == 1 ? " was" : "s were");
  /* The secret in the default credentials file is dead now; cloudflared
   * removes it too. A file written elsewhere with --out is left alone. */
  snprintf(name, sizeof(name), "%s.json", t.id);
  cred = join(a.dir, name);
  if (unlink(cred) == 0) printf("Removed the credentials file %s\n", cred);
  rv = WR_EXIT_OK;
out:
  free(cred);
  explicit_bzero(&t, sizeof(t));
  wr__edge_ctx_close(&a);
  return rv;
}

/* --- route dns ------------------------------------------------------------------------ */

int wr_cmd_edge_route_dns(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__edge_ctx a;
  wr_tunnel t;
  wr_route r;
  wr_route_change ch;
  int rv = WR_EXIT_FAIL, added;

  if (argc != 2) return wr__edge_fail("route dns takes two arguments, TUNNEL (name or ID) and HOSTNAME (got %d)", argc);
  if (wr__edge_ctx_open(o, "route dns", WR__EDGE_ACCOUNT_ONE, &a) != WR_EXIT_OK) return WR_EXIT_FAIL;
  if (wr_store_tunnel_resolve(a.s, a.acct.id, argv[0], &t) != WR_OK) {
    wr__edge_fail("cannot route %s: %s", argv[1], wr_store_errmsg(a.s));
    goto out;
  }
  added = wr_store_route_dns_add(a.s, a.actor, NULL, t.id, argv[1], wr_opts_bool(o, "overwrite-dns"), &r, &ch);
  if (added == WR_ERR_EXISTS) {
    wr__edge_fail("%s; pass --overwrite-dns to route it to tunnel %s instead", wr_store_errmsg(a.s), t.name);
    goto out;
  }
  if (added != WR_OK) {
    wr__edge_fail("%s", wr_store_errmsg(a.s));
    goto out;
  }
  /* cloudflared's wording for the API's cname new|updated|unchanged. */
  switch (ch) {
  case WR_ROUTE_NEW:
    printf("Added CNAME %s which will route to this tunnel tunnelID=%s\n", r.hostname, t.id);
    break;
  case WR_ROUTE_UPDATED:
    printf("%s updated to route to your tunnel tunnelID=%s\n", r.hostname, t.id);
    break;
  case WR_ROUTE_UNCHANGED:
    printf("%s is already configured to route to your tunnel tunnelID=%s\n", r.hostname, t.id);
    break;
  }
  rv = WR_EXIT_OK;
out:
  explicit_bzero(&t, sizeof(t));
  wr__edge_ctx_close(&a);
  return rv;
}

/* --- audit --------------------------------------------------------------------------- */

int wr_cmd_edge_audit(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__edge_ctx a;
  wr_audit *rows = NULL;
  size_t n = 0;
  const char *lim = wr_opts_get(o, "limit");
  char *end = NULL;
  long long limit = lim ? strtoll(lim, &end, 10) : 100;
  int json = 0, rv = WR_EXIT_FAIL;
  json_t *arr = NULL;

  if (argc > 0) return wr__edge_fail("audit takes no arguments (got \"%s\")", argv[0]);
  if (lim && (!*lim || *end || limit <= 0))
    return wr__edge_fail("invalid --limit \"%s\": give a positive number of entries", lim);
  if (wr__edge_want_json(o, &json) != 0) return WR_EXIT_FAIL;
  if (wr__edge_ctx_open(o, "audit", WR__EDGE_ACCOUNT_FILTER, &a) != WR_EXIT_OK) return WR_EXIT_FAIL;
  /* The local administrator sees every account's rows and edge-wide ones,
   * or with --account that account's only. */
  if (wr_store_audit_list(a.s, a.have_acct ? a.acct.id : NULL, (size_t)limit, &rows, &n) != WR_OK) {
    wr__edge_fail("%s", wr_store_errmsg(a.s));
    goto out;
  }
  /* The store returns newest first; print in the order things happened,
   * like a log, ending with the newest. */
  if (json) arr = json_array();
  else printf("%-20s  %-20s  %-16s  %-44s  %s\n", "AT", "ACTOR", "ACTION", "TARGET", "DETAIL");
  for (size_t i = n; i-- > 0;) {
    const wr_audit *e = &rows[i];
    if (json) {
      json_t *detail = json_loads(e->detail, 0, NULL);
      json_array_append_new(arr, json_pack("{s:I,s:o,s:s,s:s,s:s?,s:s,s:s,s:o}", "id", (json_int_t)e->id,
                                           "at", json_time(e->at), "actor", e->actor, "action", e->action,
                                           "account_id", e->account_id[0] ? e->account_id : NULL,
                                           "target_type", e->target_type, "target_id", e->target_id,
                                           "detail", detail ? detail : json_object()));
    } else {
      char at[32], target[WR_STORE_HOST_MAX + 40];
      wr__edge_fmt_time(e->at, at);
      snprintf(target, sizeof(target), "%s:%s", e->target_type, e->target_id);
      printf("%-20s  %-20s  %-16s  %-44s  %s\n", at, e->actor, e->action, target, e->detail);
    }
  }
  rv = json ? wr__edge_print_json(arr) : WR_EXIT_OK;
  arr = NULL;
out:
  json_decref(arr);
  wr_store_audit_free(rows, n);
  wr__edge_ctx_close(&a);
  return rv;
}
