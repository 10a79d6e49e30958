/* `warren tunnel create|list|info|delete|cleanup|token|route dns|route lb`:
 * cloudflared 2023.7.3's management commands against the Cloudflare API v4
 * (or warren-edge's copy of it), with its flags, its API calls in the same
 * order, and its output and messages, "cloudflared" read as "warren".
 * Each command parses its flags, calls the API client (src/cfapi/) and
 * prints; the calls, results and their JSON/YAML shapes live there.
 * Differences, on purpose:
 *  - `-o` is checked before any API call (cloudflared creates the tunnel
 *    first and then complains about the format);
 *  - `delete -f` adds ?cascade=true to the DELETE (cloudflared >= 2023.10
 *    does; 2023.7.3 only cleans up connections first, which we also do);
 *  - `list --when` is sent as existed_at (2023.7.3 reads it under the
 *    wrong name and never sends it);
 *  - usage errors exit with 2 (cloudflared: 255), as every warren command.
 * See mgmt_int.h for the shared context and output code. */
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfapi/routes.h"
#include "cfapi/tunnels.h"
#include "cfapi/values.h"
#include "cmd/commands.h"
#include "cmd/mgmt_int.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/log.h"
#include "lib/mem.h"

#define SORT_OPTIONS_LIST "name, id, createdAt, deletedAt, numConnections"
#define SORT_OPTIONS_INFO "id, startedAt, numConnections, version"

/* "<dir of |file|>/<name>". Caller frees. */
static char *next_to(const char *file, const char *name) {
  char *dir = wr_xstrdup(file);
  const char *d = dirname(dir);
  size_t n = strlen(d) + strlen(name) + 2;
  char *p = wr_xmalloc(n);
  snprintf(p, n, "%s/%s", d, name);
  free(dir);
  return p;
}

/* ---- create ---------------------------------------------------------------------- */

/* base64.StdEncoding.DecodeString with Go's error text. */
static int decode_secret(const char *s, uint8_t *out, size_t cap, size_t *n, wr_cfapi_error *e) {
  size_t len = strlen(s), i;
  for (i = 0; i < len; i++) {
    char ch = s[i];
    int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' ||
             ch == '/' || ch == '=';
    if (!ok) break;
  }
  if (i < len || len % 4 != 0) {
    wr_cfapi_errorf(e, "Couldn't decode tunnel secret from base64: illegal base64 data at input byte %zu",
                    i < len ? i : len - len % 4);
    return WR_ERR_PROTO;
  }
  int r = wr_base64_decode(s, len, out, cap, 0);
  if (r == WR_ERR_LIMIT) {
    wr_cfapi_errorf(e, "Couldn't decode tunnel secret from base64: the secret is longer than %d bytes",
                    WR_CRED_MAX_SECRET);
    return WR_ERR_PROTO;
  }
  if (r < 0) {
    wr_cfapi_errorf(e, "Couldn't decode tunnel secret from base64: illegal base64 data at input byte %d",
                    (int)(strchr(s, '=') ? strchr(s, '=') - s : 0));
    return WR_ERR_PROTO;
  }
  *n = (size_t)r;
  return WR_OK;
}

/* --secret, or 32 random bytes. */
static int tunnel_secret(const wr_opts *o, wr_credentials *cred, wr_cfapi_error *e) {
  const char *secret = wr_opts_get(o, "secret");
  if (!secret || !*secret) {
    cred->secret_len = 32;
    if (wr_random_bytes(cred->secret, 32) == WR_OK) return WR_OK;
    wr_cfapi_errorf(e, "couldn't generate the secret for your new tunnel");
    return WR_ERR_CRYPTO;
  }
  if (decode_secret(secret, cred->secret, sizeof(cred->secret), &cred->secret_len, e) != WR_OK) return WR_ERR_PROTO;
  if (cred->secret_len >= 32) return WR_OK;
  wr_cfapi_errorf(e, "Decoded tunnel secret must be at least 32 bytes long");
  return WR_ERR_INVAL;
}

/* The credentials file: --credentials-file, else <id>.json next to cert.pem
 * (*next_to_cert set). Caller frees. */
static char *credentials_path(const wr__mg_ctx *c, const char *id, int *next_to_cert) {
  char name[WR_UUID_STR_LEN + 8];
  const char *cf = wr__mg_cred_file(c);
  *next_to_cert = !(cf && *cf);
  if (!*next_to_cert) return wr_path_expand(cf);
  snprintf(name, sizeof(name), "%s.json", id);
  return next_to(c->cert_path, name);
}

/* cloudflared's message when the credentials cannot be written, after it
 * tried to delete the tunnel again. */
static void credentials_not_written(wr__mg_ctx *c, const wr_cfapi_tunnel *t, const char *id, const char *path,
                                    wr_cfapi_error *e) {
  const char *prog = c->opts->prog;
  wr_cfapi_error derr;
  wr_buf b;
  wr_buf_init(&b, WR_CFAPI_ERRLEN, NULL);
  wr_buf_printf(&b,
                "Your tunnel '%s' was created with ID %s. However, %s couldn't write tunnel credentials to %s.\n"
                "The file-writing error is: %s\n",
                t->name, id, prog, path, e->msg);
  if (wr_cfapi_delete_tunnel(c->api, &t->id, 0, &derr) != WR_OK)
    wr_buf_printf(&b,
                  "%s tried to delete the tunnel for you, but encountered an error. You should use "
                  "`%s tunnel delete %s` to delete the tunnel yourself, because the tunnel can't be run "
                  "without the tunnelfile.\nThe delete tunnel error is: %s",
                  prog, prog, id, derr.msg);
  else
    wr_buf_printf(&b, "The tunnel was deleted, because the tunnel can't be run without the credentials file");
  wr_cfapi_errorf(e, "%s", wr_buf_cstr(&b));
  wr_buf_free(&b);
}

static void print_created(const wr_opts *o, wr__mg_format fmt, const wr_cfapi_tunnel *t, const char *id,
                          const char *path, int next_to_cert) {
  if (fmt != WR__MG_TEXT) {
    wr_arena a = {0};
    wr__mg_print(fmt, wr_cfapi_tunnel_with_token_node(&a, t, wr__mg_enc(fmt)));
    wr_arena_free(&a);
    return;
  }
  printf("Tunnel credentials written to %s.", path);
  if (next_to_cert) printf(" %s chose this file based on where your origin certificate was found.", o->prog);
  printf(" Keep this file secret. To revoke these credentials, delete the tunnel.\n");
  printf("\nCreated tunnel %s with id %s\n", t->name, id);
}

int wr_cmd_tunnel_create(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr_cfapi_error e;
  wr__mg_format fmt;
  wr_credentials cred;
  wr_cfapi_tunnel t;
  char id[WR_UUID_STR_LEN + 1], *cred_path = NULL;
  int rv = WR__MG_FAILED, next_to_cert = 0;
  (void)cmd;

  memset(&cred, 0, sizeof(cred));
  memset(&t, 0, sizeof(t));
  if (wr__mg_begin(&c, o, "tunnel create") != WR_OK) return WR_EXIT_FAIL;
  c.cred_file_cli_only = 1;
  if (argc != 1) {
    rv = wr__mg_usage(&c, "\"%s tunnel create\" requires exactly 1 argument, the name of tunnel to create.", o->prog);
    goto out;
  }
  if (wr__mg_output_format(&c, &fmt, &e) != WR_OK) goto fail;
  if (wr__mg_client(&c, &e) != WR_OK) {
    wr_cfapi_wrap(&e, "couldn't create client to talk to Cloudflare Tunnel backend");
    goto fail;
  }
  if (tunnel_secret(o, &cred, &e) != WR_OK) goto fail;
  if (wr_cfapi_create_tunnel(c.api, argv[0], cred.secret, cred.secret_len, &t, &e) != WR_OK) {
    wr_cfapi_wrap(&e, "Create Tunnel API call failed");
    goto fail;
  }
  snprintf(cred.account_tag, sizeof(cred.account_tag), "%s", c.cert.account_id);
  cred.tunnel_id = t.id;
  cred.has_tunnel_id = 1;
  wr_uuid_format(&t.id, id);
  cred_path = credentials_path(&c, id, &next_to_cert);
  if (wr__mg_write_credentials(cred_path, &cred, &e) != WR_OK) {
    credentials_not_written(&c, &t, id, cred_path, &e);
    goto fail;
  }
  print_created(o, fmt, &t, id, cred_path, next_to_cert);
  rv = WR_OK;
  goto out;
fail:
  wr_cfapi_wrap(&e, "failed to create tunnel");
out:
  explicit_bzero(&cred, sizeof(cred));
  wr_cfapi_tunnel_free(&t);
  free(cred_path);
  return wr__mg_finish(&c, rv, &e);
}

/* ---- list --------------------------------------------------------------------------- */

static int cmp_i64(int64_t a, int64_t b) { return a < b ? -1 : a > b; }

static int uuid_less(const wr_uuid *a, const wr_uuid *b) {
  char ia[WR_UUID_STR_LEN + 1], ib[WR_UUID_STR_LEN + 1];
  wr_uuid_format(a, ia);
  wr_uuid_format(b, ib);
  return strcmp(ia, ib) < 0;
}

static int time_less(const wr_cfapi_time *a, const wr_cfapi_time *b) {
  return cmp_i64(wr_cfapi_time_unix(a), wr_cfapi_time_unix(b)) < 0;
}

static int t_name(const void *a, const void *b) {
  return strcmp(((const wr_cfapi_tunnel *)a)->name, ((const wr_cfapi_tunnel *)b)->name) < 0;
}
static int t_id(const void *a, const void *b) {
  return uuid_less(&((const wr_cfapi_tunnel *)a)->id, &((const wr_cfapi_tunnel *)b)->id);
}
static int t_created(const void *a, const void *b) {
  return time_less(&((const wr_cfapi_tunnel *)a)->created_at, &((const wr_cfapi_tunnel *)b)->created_at);
}
static int t_deleted(const void *a, const void *b) {
  return time_less(&((const wr_cfapi_tunnel *)a)->deleted_at, &((const wr_cfapi_tunnel *)b)->deleted_at);
}
static int t_nconns(const void *a, const void *b) {
  return ((const wr_cfapi_tunnel *)a)->nconns < ((const wr_cfapi_tunnel *)b)->nconns;
}

static const wr__mg_sort_key tunnel_keys[] = {
    {"name", t_name}, {"id", t_id}, {"createdAt", t_created}, {"deletedAt", t_deleted}, {"numConnections", t_nconns},
    {NULL, NULL},
};

/* --flag -> ListTunnels filter. */
static const wr__mg_qflag list_filters[] = {
    {"show-deleted", "is_deleted", WR__MG_Q_FALSE_UNLESS, NULL, 0},
    {"name", "name", WR__MG_Q_STR, NULL, 0},
    {"name-prefix", "name_prefix", WR__MG_Q_STR, NULL, 0},
    {"exclude-name-prefix", "exclude_prefix", WR__MG_Q_STR, NULL, 0},
    {"when", "existed_at", WR__MG_Q_TIME,
     "invalid value \"%s\" for flag -when: parsing time \"%s\" as \"2006-01-02T15:04:05Z07:00\"", 0},
    {"id", "uuid", WR__MG_Q_UUID, "%s is not a valid tunnel ID: %s", 0},
    {"max-fetch-size", "per_page", WR__MG_Q_POSINT, NULL, 0},
    {NULL, NULL, 0, NULL, 0},
};

static void print_tunnels(const wr_opts *o, const wr_cfapi_tunnels *l) {
  int rd = wr_opts_bool(o, "show-recently-disconnected");
  wr__mg_table tb = {0};
  if (l->n == 0) {
    printf("No tunnels were found for the given filter flags. You can use '%s tunnel create' to create a tunnel.\n",
           o->prog);
    return;
  }
  printf("You can obtain more detailed information for each tunnel with `%s tunnel info <name/uuid>`\n", o->prog);
  wr__mg_table_row(&tb, 4, "ID", "NAME", "CREATED", "CONNECTIONS");
  for (size_t i = 0; i < l->n; i++) {
    char id[WR_UUID_STR_LEN + 1], created[WR_CFAPI_TIME_STRLEN];
    char *conns = wr__mg_fmt_connections(l->v[i].conns, l->v[i].nconns, rd);
    wr_uuid_format(&l->v[i].id, id);
    wr_cfapi_time_rfc3339(&l->v[i].created_at, created);
    wr__mg_table_row(&tb, 4, id, l->v[i].name, created, conns);
    free(conns);
  }
  wr__mg_table_print(&tb);
}

int wr_cmd_tunnel_list(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr_cfapi_error e;
  wr_cfapi_query q = {0};
  wr__mg_format fmt;
  wr_cfapi_tunnels l = {0};
  int rv = WR__MG_FAILED;
  (void)cmd;
  (void)argc;
  (void)argv;

  if (wr__mg_begin(&c, o, "tunnel list") != WR_OK) return WR_EXIT_FAIL;
  if (wr__mg_output_format(&c, &fmt, &e) != WR_OK || wr__mg_query_flags(o, list_filters, &q, &e) != WR_OK ||
      wr__mg_client(&c, &e) != WR_OK || wr_cfapi_list_tunnels(c.api, &q, &l, &e) != WR_OK)
    goto out;
  const char *key = wr_opts_get(o, "sort-by");
  if (wr__mg_sort_by(l.v, l.n, sizeof(*l.v), tunnel_keys, key, wr_opts_bool(o, "invert-sort")))
    wr_error("%s is not a valid sort field. Valid sort fields are %s. Defaulting to 'name'.", key, SORT_OPTIONS_LIST);
  if (fmt != WR__MG_TEXT) {
    wr_arena a = {0};
    wr__mg_print(fmt, wr_cfapi_tunnels_node(&a, &l, wr__mg_enc(fmt)));
    wr_arena_free(&a);
  } else {
    print_tunnels(o, &l);
  }
  rv = WR_OK;
out:
  wr_cfapi_tunnels_free(&l);
  wr_cfapi_query_free(&q);
  return wr__mg_finish(&c, rv, &e);
}

/* ---- info ------------------------------------------------------------------------------ */

#define AC(p) ((const wr_cfapi_active_client *)(p))
static int c_created(const void *a, const void *b) { return time_less(&AC(a)->run_at, &AC(b)->run_at); }
static int c_id(const void *a, const void *b) { return uuid_less(&AC(a)->id, &AC(b)->id); }
static int c_nconns(const void *a, const void *b) { return AC(a)->nconns < AC(b)->nconns; }
static int c_version(const void *a, const void *b) { return strcmp(AC(a)->version, AC(b)->version) < 0; }

static const wr__mg_sort_key client_keys[] = {
    {"createdAt", c_created}, {"id", c_id}, {"numConnections", c_nconns}, {"version", c_version}, {NULL, NULL},
};

/* cloudflared's Info: the tunnel and its connectors. */
static wr_cfapi_node *info_node(wr_arena *a, const wr_cfapi_tunnel *t, const wr_cfapi_active_clients *cl,
                                wr_cfapi_enc enc) {
  int json = enc == WR_CFAPI_JSON;
  wr_cfapi_node *o = wr_cfapi_node_obj(a);
  wr_cfapi_node_put(o, "id", wr_cfapi_node_uuid(a, &t->id));
  wr_cfapi_node_put(o, "name", wr_cfapi_node_str(a, t->name));
  wr_cfapi_node_put(o, json ? "createdAt" : "createdat", wr_cfapi_node_time(a, &t->created_at));
  wr_cfapi_node_put(o, json ? "conns" : "connectors", wr_cfapi_active_clients_node(a, cl, enc));
  return o;
}

/* |id| is the tunnel as asked for. */
static void print_info(const wr_opts *o, const char *id, const wr_cfapi_tunnel *t, const wr_cfapi_active_clients *cl) {
  int rd = wr_opts_bool(o, "show-recently-disconnected"), any = 0;
  char created[WR_CFAPI_TIME_STRLEN], tid[WR_UUID_STR_LEN + 1];
  wr__mg_table tb = {0};
  if (cl->n == 0) {
    printf("Your tunnel %s does not have any active connection.\n", id);
    return;
  }
  wr_uuid_format(&t->id, tid);
  wr_cfapi_time_string(&t->created_at, created);
  printf("NAME:     %s\nID:       %s\nCREATED:  %s\n\n", t->name, tid, created);
  char **conns = wr_xcalloc(cl->n + 1, sizeof(char *));
  for (size_t i = 0; i < cl->n; i++) {
    conns[i] = wr__mg_fmt_connections(cl->v[i].conns, cl->v[i].nconns, rd);
    any |= *conns[i] != '\0';
  }
  if (any) wr__mg_table_row(&tb, 6, "CONNECTOR ID", "CREATED", "ARCHITECTURE", "VERSION", "ORIGIN IP", "EDGE");
  else printf("This tunnel has no active connectors.\n");
  for (size_t i = 0; i < cl->n; i++) {
    const wr_cfapi_active_client *ac = &cl->v[i];
    char cid[WR_UUID_STR_LEN + 1], run[WR_CFAPI_TIME_STRLEN], ip[WR_CFAPI_ADDR_STRLEN];
    if (*conns[i]) {
      wr_uuid_format(&ac->id, cid);
      wr_cfapi_time_rfc3339(&ac->run_at, run);
      wr_cfapi_ip_str(&ac->conns[0].origin_ip, ip);
      wr__mg_table_row(&tb, 6, cid, run, ac->arch, ac->version, ip, conns[i]);
    }
    free(conns[i]);
  }
  free(conns);
  wr__mg_table_print(&tb);
}

/* The tunnel itself: GET …/cfd_tunnel?uuid=ID must find exactly one. */
static int info_tunnel(wr__mg_ctx *c, const char *id, wr_cfapi_tunnels *l, wr_cfapi_error *e) {
  wr_cfapi_query q = {0};
  wr_cfapi_query_set(&q, "uuid", id);
  int rv = wr_cfapi_list_tunnels(c->api, &q, l, e);
  wr_cfapi_query_free(&q);
  if (rv == WR_OK && l->n != 1) {
    wr_cfapi_errorf(e, "Expected to find a single tunnel with uuid %s but found %zu tunnels.", id, l->n);
    rv = WR_ERR_NOTFOUND;
  }
  return rv;
}

int wr_cmd_tunnel_info(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr_cfapi_error e;
  wr__mg_format fmt;
  wr_uuid tid;
  char id[WR_UUID_STR_LEN + 1];
  wr_cfapi_active_clients cl = {0};
  wr_cfapi_tunnels tl = {0};
  int rv = WR__MG_FAILED;
  (void)cmd;

  if (wr__mg_begin(&c, o, "tunnel info") != WR_OK) return WR_EXIT_FAIL;
  if (argc != 1) {
    rv = wr__mg_usage(&c, "\"%s tunnel info\" accepts exactly one argument, the ID or name of the tunnel to get info about.",
                      o->prog);
    goto out;
  }
  if (wr__mg_output_format(&c, &fmt, &e) != WR_OK) goto out;
  if (wr__mg_find_id(&c, argv[0], &tid, &e) != WR_OK) {
    wr_cfapi_wrap(&e, "error parsing tunnel ID");
    goto out;
  }
  wr_uuid_format(&tid, id);
  if (wr__mg_client(&c, &e) != WR_OK || wr_cfapi_list_active_clients(c.api, &tid, &cl, &e) != WR_OK) goto out;
  const char *key = wr_opts_get(o, "sort-by");
  if (wr__mg_sort_by(cl.v, cl.n, sizeof(*cl.v), client_keys, key, wr_opts_bool(o, "invert-sort")))
    wr_error("%s is not a valid sort field. Valid sort fields are %s. Defaulting to 'name'.", key, SORT_OPTIONS_INFO);
  if (info_tunnel(&c, id, &tl, &e) != WR_OK) goto out;
  if (fmt != WR__MG_TEXT) {
    wr_arena a = {0};
    wr__mg_print(fmt, info_node(&a, &tl.v[0], &cl, wr__mg_enc(fmt)));
    wr_arena_free(&a);
  } else {
    print_info(o, id, &tl.v[0], &cl);
  }
  rv = WR_OK;
out:
  wr_cfapi_active_clients_free(&cl);
  wr_cfapi_tunnels_free(&tl);
  return wr__mg_finish(&c, rv, &e);
}

/* ---- delete ------------------------------------------------------------------------------- */

/* cloudflared's credentialFinder: --credentials-file if it names a file,
 * else <id>.json next to cert.pem, else in the default directories. */
static char *find_credentials(wr__mg_ctx *c, const char *id) {
  struct stat st;
  char name[WR_UUID_STR_LEN + 8];
  const char *cf = wr__mg_cred_file(c);
  if (cf && *cf) {
    char *p = wr_path_expand(cf);
    if (p && stat(p, &st) == 0 && !S_ISDIR(st.st_mode)) return p;
    free(p);
    return NULL;
  }
  snprintf(name, sizeof(name), "%s.json", id);
  if (c->cert_path) {
    char *p = next_to(c->cert_path, name);
    if (stat(p, &st) == 0 && !S_ISDIR(st.st_mode)) return p;
    free(p);
  }
  return wr_find_default_file(name);
}

/* Removes the tunnel's credentials file if there is one. */
static void remove_credentials(wr__mg_ctx *c, const char *id) {
  char *cred = find_credentials(c, id);
  if (cred && unlink(cred) != 0) {
    char why[128];
    snprintf(why, sizeof(why), "%s", strerror(errno));
    if (why[0] >= 'A' && why[0] <= 'Z') why[0] = (char)(why[0] - 'A' + 'a');
    wr_info("Tunnel %s was deleted, but we could not remove its credentials file  %s: remove %s: %s. "
            "Consider deleting this file manually.", id, cred, cred, why);
  }
  free(cred);
}

/* One tunnel: checked, its connections cleaned up with |force|, deleted. */
static int delete_one(wr__mg_ctx *c, const wr_uuid *ref, int force, wr_cfapi_error *e) {
  char id[WR_UUID_STR_LEN + 1], tid[WR_UUID_STR_LEN + 1];
  wr_cfapi_tunnel t;
  wr_uuid_format(ref, id);
  if (wr_cfapi_get_tunnel(c->api, ref, &t, e) != WR_OK) {
    wr_cfapi_wrap(e, "Can't get tunnel information. Please check tunnel id: %s", id);
    return WR_ERR_NOTFOUND;
  }
  wr_uuid id_of = t.id;
  int deleted = !wr_cfapi_time_is_zero(&t.deleted_at);
  wr_cfapi_tunnel_free(&t);
  wr_uuid_format(&id_of, tid);
  if (deleted) {
    wr_cfapi_errorf(e, "Tunnel %s has already been deleted", tid);
    return WR_ERR_INVAL;
  }
  if (force && wr_cfapi_cleanup_connections(c->api, &id_of, NULL, e) != WR_OK) {
    wr_cfapi_wrap(e, "Error cleaning up connections for tunnel %s", tid);
    return WR_ERR_DENIED;
  }
  if (wr_cfapi_delete_tunnel(c->api, &id_of, force, e) != WR_OK) {
    wr_cfapi_wrap(e, "Error deleting tunnel %s", tid);
    return WR_ERR_DENIED;
  }
  remove_credentials(c, id);
  return WR_OK;
}

int wr_cmd_tunnel_delete(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr_cfapi_error e;
  wr_uuid *ids = NULL;
  size_t n = 0;
  int rv = WR__MG_FAILED;
  (void)cmd;

  if (wr__mg_begin(&c, o, "tunnel delete") != WR_OK) return WR_EXIT_FAIL;
  c.cred_file_cli_only = 1;
  if (argc < 1) {
    rv = wr__mg_usage(&c, "\"%s tunnel delete\" requires at least 1 argument, the ID or name of the tunnel to delete.",
                      o->prog);
    goto out;
  }
  int force = wr_opts_bool(o, "force");
  if (wr__mg_find_ids(&c, argv, argc, &ids, &n, &e) != WR_OK || wr__mg_client(&c, &e) != WR_OK) goto out;
  for (size_t i = 0; i < n; i++)
    if (delete_one(&c, &ids[i], force, &e) != WR_OK) goto out;
  rv = WR_OK;
out:
  free(ids);
  return wr__mg_finish(&c, rv, &e);
}

/* ---- cleanup --------------------------------------------------------------------------------- */

int wr_cmd_tunnel_cleanup(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr_cfapi_error e;
  wr_uuid *ids = NULL, connector;
  size_t n = 0;
  char extra[80] = "", why[128];
  int rv = WR__MG_FAILED, by_connector = 0;
  (void)cmd;

  if (wr__mg_begin(&c, o, "tunnel cleanup") != WR_OK) return WR_EXIT_FAIL;
  if (argc < 1) {
    rv = wr__mg_usage(&c, "\"%s tunnel cleanup\" requires at least 1 argument, the IDs of the tunnels to cleanup "
                          "connections.", o->prog);
    goto out;
  }
  if (wr__mg_find_ids(&c, argv, argc, &ids, &n, &e) != WR_OK) goto out;
  const char *cid = wr_opts_get(o, "connector-id");
  if (cid && *cid) {
    char s[WR_UUID_STR_LEN + 1];
    if (wr_cfapi_uuid_parse(cid, &connector, why, sizeof(why)) != WR_OK) {
      wr_cfapi_errorf(&e, "%s is not a valid client ID (must be a UUID): %s", cid, why);
      goto out;
    }
    wr_uuid_format(&connector, s);
    snprintf(extra, sizeof(extra), " for connector-id %s", s);
    by_connector = 1;
  }
  if (wr__mg_client(&c, &e) != WR_OK) goto out;
  for (size_t i = 0; i < n; i++) {
    char id[WR_UUID_STR_LEN + 1];
    wr_uuid_format(&ids[i], id);
    wr_info("Cleanup connection for tunnel %s%s", id, extra);
    if (wr_cfapi_cleanup_connections(c.api, &ids[i], by_connector ? &connector : NULL, &e) != WR_OK)
      wr_error("Error cleaning up connections for tunnel %s, error :%s", id, e.msg);
  }
  rv = WR_OK;
out:
  free(ids);
  return wr__mg_finish(&c, rv, &e);
}

/* ---- token ------------------------------------------------------------------------------------ */

/* The credentials to the --cred-file, or the token to stdout. */
static int emit_token(wr__mg_ctx *c, const wr_credentials *cred, wr_cfapi_error *e) {
  const char *cf = wr__mg_cred_file(c);
  if (cf && *cf) {
    char *p = wr_path_expand(cf);
    int r = wr__mg_write_credentials(p, cred, e);
    if (r != WR_OK) wr_cfapi_wrap(e, "error writing token credentials to JSON file in path %s", p);
    free(p);
    return r;
  }
  char *enc = wr_token_encode(cred);
  printf("%s\n", enc);
  explicit_bzero(enc, strlen(enc));
  free(enc);
  return WR_OK;
}

int wr_cmd_tunnel_token(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr_cfapi_error e;
  wr_uuid tid;
  wr_credentials cred;
  char id[WR_UUID_STR_LEN + 1], why[512], *tok = NULL;
  int rv = WR__MG_FAILED;
  (void)cmd;

  memset(&cred, 0, sizeof(cred));
  if (wr__mg_begin(&c, o, "tunnel token") != WR_OK) return WR_EXIT_FAIL;
  c.cred_file_cli_only = 1;
  if (argc != 1) {
    rv = wr__mg_usage(&c, "\"%s tunnel token\" requires exactly 1 argument, the name or UUID of tunnel to fetch the "
                          "credentials token for.", o->prog);
    goto out;
  }
  if (wr__mg_find_id(&c, argv[0], &tid, &e) != WR_OK) {
    wr_cfapi_wrap(&e, "error parsing tunnel ID");
    goto out;
  }
  wr_uuid_format(&tid, id);
  if (wr__mg_client(&c, &e) != WR_OK) goto out;
  if (wr_cfapi_get_tunnel_token(c.api, &tid, &tok, &e) != WR_OK) {
    wr_error("Could not get the Token for the given Tunnel %s error=\"%s\"", id, e.msg);
    goto out;
  }
  if (wr_token_parse(tok, strlen(tok), &cred, why, sizeof(why)) != WR_OK) {
    wr_cfapi_errorf(&e, "%s", why);
    goto out;
  }
  if (emit_token(&c, &cred, &e) != WR_OK) goto out;
  rv = WR_OK;
out:
  explicit_bzero(&cred, sizeof(cred));
  if (tok) explicit_bzero(tok, strlen(tok));
  free(tok);
  return wr__mg_finish(&c, rv, &e);
}

/* ---- route dns / lb -------------------------------------------------------------------------------- */

/* validateName: ^[_a-zA-Z0-9][-_.a-zA-Z0-9]*$ (with |wildcard|, '*' may
 * start it). validateHostname first maps the name through IDNA with DNS
 * length checks; we check the lengths and let non-ASCII labels through to
 * the API (which sees the name as typed, as cloudflared sends it). */
static int valid_name(const char *s, int wildcard) {
  const unsigned char *p = (const unsigned char *)s;
  if (!*p) return 0;
  if (!(isalnum(*p) || *p == '_' || *p >= 0x80 || (wildcard && *p == '*'))) return 0;
  for (p++; *p; p++)
    if (!(isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p >= 0x80)) return 0;
  return 1;
}

static int valid_hostname(const char *s, int wildcard) {
  size_t n = strlen(s);
  if (n && s[n - 1] == '.') n--;
  if (n == 0 || n > 253) return 0;
  for (size_t i = 0, start = 0; i <= n; i++) {
    if (i == n || s[i] == '.') {
      if (i - start == 0 || i - start > 63) return 0;
      start = i + 1;
    }
  }
  char *copy = wr_xstrndup(s, n);
  int ok = valid_name(copy, wildcard);
  free(copy);
  return ok;
}

/* The routes' own argument checks and calls: WR_OK with *summary set, an
 * error in |e|, or WR_EXIT_USAGE after printing the usage error. */
static int route_dns(wr__mg_ctx *c, const wr_uuid *tid, char **argv, char **summary, wr_cfapi_error *e) {
  wr_cfapi_dns_route r;
  int rv = wr__mg_client(c, e);
  if (rv == WR_OK) rv = wr_cfapi_route_dns(c->api, tid, argv[1], wr_opts_bool(c->opts, "overwrite-dns"), &r, e);
  if (rv == WR_OK) *summary = wr_cfapi_dns_route_summary(&r, argv[1]);
  if (rv == WR_OK) wr_cfapi_dns_route_free(&r);
  return rv;
}

static int route_lb(wr__mg_ctx *c, const wr_uuid *tid, char **argv, char **summary, wr_cfapi_error *e) {
  wr_cfapi_lb_route r;
  if (!*argv[2]) return wr__mg_usage(c, "The fourth argument should be the pool name");
  if (!valid_name(argv[2], 0)) {
    wr_cfapi_errorf(e, "%s is not a valid pool name", argv[2]);
    return WR_ERR_INVAL;
  }
  int rv = wr__mg_client(c, e);
  if (rv == WR_OK) rv = wr_cfapi_route_lb(c->api, tid, argv[1], argv[2], &r, e);
  if (rv == WR_OK) *summary = wr_cfapi_lb_route_summary(&r, argv[1], argv[2]);
  if (rv == WR_OK) wr_cfapi_lb_route_free(&r);
  return rv;
}

typedef struct route_kind {
  const char *path;
  int nargs;
  const char *format;     /* usage error for a wrong argument count (%s: the program) */
  const char *no_host;    /* usage error for an empty hostname */
  const char *bad_host;   /* error for an invalid one (%s: it) */
  int (*route)(wr__mg_ctx *c, const wr_uuid *tid, char **argv, char **summary, wr_cfapi_error *e);
} route_kind;

static const route_kind dns_kind = {
    "tunnel route dns", 2, "This command expects the format \"%s tunnel route dns <tunnel name/id> <hostname>\"",
    "The third argument should be the hostname", "%s is not a valid hostname", route_dns};
static const route_kind lb_kind = {
    "tunnel route lb", 3,
    "This command expects the format \"%s tunnel route lb <tunnel name/id> <hostname> <load balancer pool>\"",
    "The third argument should be the load balancer name", "%s is not a valid load balancer name", route_lb};

static int route_hostname(const route_kind *k, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr_cfapi_error e;
  wr_uuid tid;
  char id[WR_UUID_STR_LEN + 1], *summary = NULL;
  int rv;

  if (wr__mg_begin(&c, o, k->path) != WR_OK) return WR_EXIT_FAIL;
  if (argc != k->nargs) {
    rv = wr__mg_usage(&c, k->format, o->prog);
    goto out;
  }
  if ((rv = wr__mg_find_id(&c, argv[0], &tid, &e)) != WR_OK) goto out;
  wr_uuid_format(&tid, id);
  if (!*argv[1]) {
    rv = wr__mg_usage(&c, "%s", k->no_host);
    goto out;
  }
  if (!valid_hostname(argv[1], 1)) {
    wr_cfapi_errorf(&e, k->bad_host, argv[1]);
    rv = WR_ERR_INVAL;
    goto out;
  }
  if ((rv = k->route(&c, &tid, argv, &summary, &e)) == WR_OK) wr_info("%s tunnelID=%s", summary, id);
out:
  free(summary);
  return wr__mg_finish(&c, rv, &e);
}

int wr_cmd_tunnel_route_dns(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return route_hostname(&dns_kind, o, argc, argv);
}

int wr_cmd_tunnel_route_lb(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return route_hostname(&lb_kind, o, argc, argv);
}
