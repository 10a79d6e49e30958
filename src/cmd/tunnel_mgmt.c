/* `warren tunnel create|list|info|delete|cleanup|token|route dns|route lb`:
 * cloudflared 2023.7.3's management commands against the Cloudflare API v4
 * (or warren-edge's copy of it), with its flags, its API calls in the same
 * order, and its output and messages, "cloudflared" read as "warren".
 * Differences, on purpose:
 *  - `-o` is checked before any API call (cloudflared creates the tunnel
 *    first and then complains about the format);
 *  - `delete -f` adds ?cascade=true to the DELETE (cloudflared >= 2023.10
 *    does; 2023.7.3 only cleans up connections first, which we also do);
 *  - `list --when` is sent as existed_at (2023.7.3 reads it under the
 *    wrong name and never sends it);
 *  - usage errors exit with 2 (cloudflared: 255), as every warren command.
 * See mgmt_int.h for the shared client and output code. */
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "cmd/mgmt_int.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/http_client.h"

#define SORT_OPTIONS_LIST "name, id, createdAt, deletedAt, numConnections"
#define SORT_OPTIONS_INFO "id, startedAt, numConnections, version"

/* Paths under the account and zone, escaped as Go's url.URL.String() does. */
static void acct_path(const wr__mg_ctx *c, char *out, size_t cap, const char *fmt_tail, const char *id) {
  char acct[WR_CRED_MAX_FIELD * 3];
  wr_url_escape(c->cert.account_id, WR_URL_PATH, acct, sizeof(acct));
  int n = snprintf(out, cap, "/accounts/%s/cfd_tunnel%s%s%s", acct, id ? "/" : "", id ? id : "", fmt_tail);
  if (n < 0 || (size_t)n >= cap) out[0] = '\0'; /* cannot happen: account tags are bounded */
}

/* ---- create ---------------------------------------------------------------------- */

/* base64.StdEncoding.DecodeString with Go's error text. */
static int decode_secret(const char *s, uint8_t *out, size_t cap, size_t *n, wr__mg_err *e) {
  size_t len = strlen(s), i;
  for (i = 0; i < len; i++) {
    char ch = s[i];
    int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' ||
             ch == '/' || ch == '=';
    if (!ok) break;
  }
  if (i < len || len % 4 != 0) {
    wr__mg_errf(e, "Couldn't decode tunnel secret from base64: illegal base64 data at input byte %zu",
            i < len ? i : len - len % 4);
    return WR_ERR_PROTO;
  }
  int r = wr_base64_decode(s, len, out, cap);
  if (r < 0) {
    wr__mg_errf(e, r == WR_ERR_LIMIT ? "Couldn't decode tunnel secret from base64: the secret is longer than %d bytes"
                                 : "Couldn't decode tunnel secret from base64: illegal base64 data at input byte %d",
            r == WR_ERR_LIMIT ? WR_CRED_MAX_SECRET : (int)(strchr(s, '=') ? strchr(s, '=') - s : 0));
    return WR_ERR_PROTO;
  }
  *n = (size_t)r;
  return WR_OK;
}

static wr__gv *tunnel_with_token_gv(wr_arena *a, const wr__mg_tunnel *t, int yaml) {
  if (yaml) { /* yaml.v3 nests the embedded struct under its lower-cased name */
    wr__gv *o = wr__gv_obj(a);
    wr__gv_put(o, "tunnel", wr__mg_tunnel_gv(a, t, 1));
    wr__gv_put(o, "token", wr__gv_str(a, t->token));
    return o;
  }
  wr__gv *o = wr__mg_tunnel_gv(a, t, 0);
  wr__gv_put(o, "token", wr__gv_str(a, t->token));
  return o;
}

int wr_cmd_tunnel_create(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr__mg_err e;
  const char *fmt;
  wr_credentials cred;
  wr__mg_tunnel t;
  json_t *res = NULL;
  char path[1024], id[WR_UUID_STR_LEN + 1], *cred_path = NULL;
  int rv = WR_EXIT_FAIL, used_cert_path = 0, status = 0;
  (void)cmd;

  memset(&cred, 0, sizeof(cred));
  memset(&t, 0, sizeof(t));
  if (wr__mg_begin(&c, o, "tunnel create") != WR_OK) return WR_EXIT_FAIL;
  c.cred_file_cli_only = 1;
  if (argc != 1) {
    rv = wr__mg_usage(&c, "\"%s tunnel create\" requires exactly 1 argument, the name of tunnel to create.", o->prog);
    goto out;
  }
  const char *name = argv[0];
  if (wr__mg_output_format(&c, &fmt, &e) != WR_OK) goto fail;
  if (wr__mg_client(&c, &e) != WR_OK) {
    wr__mg_wrap(&e, "couldn't create client to talk to Cloudflare Tunnel backend");
    goto fail;
  }
  const char *secret = wr_opts_get(o, "secret");
  if (secret && *secret) {
    if (decode_secret(secret, cred.secret, sizeof(cred.secret), &cred.secret_len, &e) != WR_OK) goto fail;
    if (cred.secret_len < 32) {
      wr__mg_errf(&e, "Decoded tunnel secret must be at least 32 bytes long");
      goto fail;
    }
  } else {
    cred.secret_len = 32;
    if (wr_random_bytes(cred.secret, 32) != WR_OK) {
      wr__mg_errf(&e, "couldn't generate the secret for your new tunnel");
      goto fail;
    }
  }
  /* CreateTunnel */
  {
    wr_uuid u;
    char why[128];
    if (!*name) {
      wr__mg_errf(&e, "tunnel name required");
      goto create_failed;
    }
    if (wr__mg_uuid_parse(name, &u, why, sizeof(why)) == WR_OK) {
      wr__mg_errf(&e, "you cannot use UUIDs as tunnel names");
      goto create_failed;
    }
    char b64[WR_BASE64_ENCODED_SIZE(WR_CRED_MAX_SECRET)];
    wr_base64_encode(cred.secret, cred.secret_len, b64, sizeof(b64), 1);
    json_t *body = json_pack("{s:s,s:s}", "name", name, "tunnel_secret", b64);
    explicit_bzero(b64, sizeof(b64));
    acct_path(&c, path, sizeof(path), "", NULL);
    int r = wr__mg_call(&c, "POST", path, NULL, body, "create tunnel", 1, &res, &status, &e);
    json_decref(body);
    if (r != WR_OK && status == 409) wr__mg_errf(&e, "tunnel with name already exists");
    if (r == WR_OK) r = wr__mg_decode_tunnel(res, &t, &e);
    if (r != WR_OK) goto create_failed;
  }
  snprintf(cred.account_tag, sizeof(cred.account_tag), "%s", c.cert.account_id);
  cred.tunnel_id = t.id;
  cred.has_tunnel_id = 1;
  wr_uuid_format(&t.id, id);
  const char *cf = wr__mg_cred_file(&c);
  if (cf && *cf) {
    cred_path = wr_path_expand(cf);
  } else {
    char *dir = wr_xstrdup(c.cert_path);
    const char *d = dirname(dir);
    size_t n = strlen(d) + WR_UUID_STR_LEN + 8;
    cred_path = wr_xmalloc(n);
    snprintf(cred_path, n, "%s/%s.json", d, id);
    free(dir);
    used_cert_path = 1;
  }
  if (wr__mg_write_credentials(cred_path, &cred, &e) != WR_OK) {
    wr__mg_err werr = e, derr;
    wr_buf b;
    wr_buf_init(&b, WR__MG_ERRLEN, NULL);
    wr_buf_printf(&b,
                  "Your tunnel '%s' was created with ID %s. However, %s couldn't write tunnel credentials to %s.\n"
                  "The file-writing error is: %s\n",
                  t.name, id, o->prog, cred_path, werr.msg);
    acct_path(&c, path, sizeof(path), "", id);
    if (wr__mg_call(&c, "DELETE", path, NULL, NULL, "delete tunnel", 0, NULL, NULL, &derr) != WR_OK)
      wr_buf_printf(&b,
                    "%s tried to delete the tunnel for you, but encountered an error. You should use "
                    "`%s tunnel delete %s` to delete the tunnel yourself, because the tunnel can't be run "
                    "without the tunnelfile.\nThe delete tunnel error is: %s",
                    o->prog, o->prog, id, derr.msg);
    else
      wr_buf_printf(&b, "The tunnel was deleted, because the tunnel can't be run without the credentials file");
    wr__mg_errf(&e, "%s", wr_buf_cstr(&b));
    wr_buf_free(&b);
    goto fail;
  }
  if (*fmt) {
    wr_arena a = {0};
    wr__mg_render(fmt, tunnel_with_token_gv(&a, &t, 0), tunnel_with_token_gv(&a, &t, 1));
    wr_arena_free(&a);
  } else {
    printf("Tunnel credentials written to %s.", cred_path);
    if (used_cert_path) printf(" %s chose this file based on where your origin certificate was found.", o->prog);
    printf(" Keep this file secret. To revoke these credentials, delete the tunnel.\n");
    printf("\nCreated tunnel %s with id %s\n", t.name, id);
  }
  rv = WR_EXIT_OK;
  goto out;
create_failed:
  wr__mg_wrap(&e, "Create Tunnel API call failed");
fail:
  wr__mg_wrap(&e, "failed to create tunnel");
  rv = wr__mg_fail(&e);
out:
  explicit_bzero(&cred, sizeof(cred));
  json_decref(res);
  wr__mg_tunnel_free(&t);
  free(cred_path);
  wr__mg_end(&c);
  return rv;
}

/* ---- list --------------------------------------------------------------------------- */

/* The comparator cloudflared passes to sort.Slice: Less(i, j) is "i < j"
 * by the chosen field, negated with --invert-sort; an unknown field sorts
 * by the default one and is reported once sorting compared anything. */
typedef struct sort_ctx {
  const char *key;
  int invert;
  int invalid;
} sort_ctx;

static int cmp_i64(int64_t a, int64_t b) { return a < b ? -1 : a > b; }

static int less_tunnel(void *ctx, const void *pa, const void *pb) {
  sort_ctx *s = ctx;
  const wr__mg_tunnel *a = pa, *b = pb;
  char ia[WR_UUID_STR_LEN + 1], ib[WR_UUID_STR_LEN + 1];
  int lt;
  if (strcmp(s->key, "id") == 0) {
    wr_uuid_format(&a->id, ia);
    wr_uuid_format(&b->id, ib);
    lt = strcmp(ia, ib) < 0;
  } else if (strcmp(s->key, "createdAt") == 0) {
    lt = cmp_i64(wr__mg_time_unix(&a->created_at), wr__mg_time_unix(&b->created_at)) < 0;
  } else if (strcmp(s->key, "deletedAt") == 0) {
    lt = cmp_i64(wr__mg_time_unix(&a->deleted_at), wr__mg_time_unix(&b->deleted_at)) < 0;
  } else if (strcmp(s->key, "numConnections") == 0) {
    lt = a->nconns < b->nconns;
  } else {
    s->invalid |= strcmp(s->key, "name") != 0;
    lt = strcmp(a->name, b->name) < 0;
  }
  return s->invert ? !lt : lt;
}

int wr_cmd_tunnel_list(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr__mg_err e;
  wr__mg_query q = {0};
  const char *fmt, *v;
  wr__mg_tunnel *list = NULL;
  size_t n = 0;
  int is_null = 0, rv = WR_EXIT_FAIL;
  (void)cmd;
  (void)argc;
  (void)argv;

  if (wr__mg_begin(&c, o, "tunnel list") != WR_OK) return WR_EXIT_FAIL;
  if (wr__mg_output_format(&c, &fmt, &e) != WR_OK) goto fail;
  if (!wr_opts_bool(o, "show-deleted")) wr__mg_query_set(&q, "is_deleted", "false");
  if ((v = wr_opts_get(o, "name")) && *v) wr__mg_query_set(&q, "name", v);
  if ((v = wr_opts_get(o, "name-prefix")) && *v) wr__mg_query_set(&q, "name_prefix", v);
  if ((v = wr_opts_get(o, "exclude-name-prefix")) && *v) wr__mg_query_set(&q, "exclude_prefix", v);
  if ((v = wr_opts_get(o, "when")) && *v) {
    wr__mg_time when;
    char s[64];
    if (wr__mg_time_parse(v, &when) != WR_OK) {
      wr__mg_errf(&e, "invalid value \"%s\" for flag -when: parsing time \"%s\" as \"2006-01-02T15:04:05Z07:00\"", v, v);
      goto fail;
    }
    wr__mg_time_rfc3339(&when, s);
    wr__mg_query_set(&q, "existed_at", s);
  }
  if ((v = wr_opts_get(o, "id")) && *v) {
    wr_uuid u;
    char why[128], s[WR_UUID_STR_LEN + 1];
    if (wr__mg_uuid_parse(v, &u, why, sizeof(why)) != WR_OK) {
      wr__mg_errf(&e, "%s is not a valid tunnel ID: %s", v, why);
      goto fail;
    }
    wr_uuid_format(&u, s);
    wr__mg_query_set(&q, "uuid", s);
  }
  if ((v = wr_opts_get(o, "max-fetch-size")) && atoi(v) > 0) {
    char s[24];
    snprintf(s, sizeof(s), "%d", atoi(v));
    wr__mg_query_set(&q, "per_page", s);
  }
  if (wr__mg_list_tunnels(&c, &q, &list, &n, &is_null, &e) != WR_OK) goto fail;

  sort_ctx sc = {wr_opts_get(o, "sort-by"), wr_opts_bool(o, "invert-sort"), 0};
  if (!sc.key) sc.key = "name";
  wr__mg_sort_slice(list, n, sizeof(*list), less_tunnel, &sc);
  if (sc.invalid)
    wr_error("%s is not a valid sort field. Valid sort fields are %s. Defaulting to 'name'.", sc.key,
             SORT_OPTIONS_LIST);

  if (*fmt) {
    wr_arena a = {0};
    wr__gv *jt = is_null ? wr__gv_null(&a) : wr__gv_arr(&a), *yt = is_null ? wr__gv_null(&a) : wr__gv_arr(&a);
    for (size_t i = 0; i < n; i++) {
      wr__gv_push(jt, wr__mg_tunnel_gv(&a, &list[i], 0));
      wr__gv_push(yt, wr__mg_tunnel_gv(&a, &list[i], 1));
    }
    wr__mg_render(fmt, jt, yt);
    wr_arena_free(&a);
  } else if (n > 0) {
    int rd = wr_opts_bool(o, "show-recently-disconnected");
    printf("You can obtain more detailed information for each tunnel with `%s tunnel info <name/uuid>`\n", o->prog);
    wr__mg_table tb = {0};
    wr__mg_table_row(&tb, 4, "ID", "NAME", "CREATED", "CONNECTIONS");
    for (size_t i = 0; i < n; i++) {
      char id[WR_UUID_STR_LEN + 1], created[64];
      char *conns = wr__mg_fmt_connections(list[i].conns, list[i].nconns, rd);
      wr_uuid_format(&list[i].id, id);
      wr__mg_time_rfc3339(&list[i].created_at, created);
      wr__mg_table_row(&tb, 4, id, list[i].name, created, conns);
      free(conns);
    }
    wr__mg_table_print(&tb);
  } else {
    printf("No tunnels were found for the given filter flags. You can use '%s tunnel create' to create a tunnel.\n",
           o->prog);
  }
  rv = WR_EXIT_OK;
  goto out;
fail:
  rv = wr__mg_fail(&e);
out:
  wr__mg_tunnels_free(list, n);
  wr__mg_query_free(&q);
  wr__mg_end(&c);
  return rv;
}

/* ---- info ------------------------------------------------------------------------------ */

static int less_client(void *ctx, const void *pa, const void *pb) {
  sort_ctx *s = ctx;
  const wr__mg_client_info *a = pa, *b = pb;
  char ia[WR_UUID_STR_LEN + 1], ib[WR_UUID_STR_LEN + 1];
  int lt;
  if (strcmp(s->key, "id") == 0) {
    wr_uuid_format(&a->id, ia);
    wr_uuid_format(&b->id, ib);
    lt = strcmp(ia, ib) < 0;
  } else if (strcmp(s->key, "numConnections") == 0) {
    lt = a->nconns < b->nconns;
  } else if (strcmp(s->key, "version") == 0) {
    lt = strcmp(a->version, b->version) < 0;
  } else {
    s->invalid |= strcmp(s->key, "createdAt") != 0;
    lt = cmp_i64(wr__mg_time_unix(&a->run_at), wr__mg_time_unix(&b->run_at)) < 0;
  }
  return s->invert ? !lt : lt;
}

static wr__gv *info_gv(wr_arena *a, const wr__mg_tunnel *t, const wr__mg_client_info *cl, size_t n, int is_null,
                   int yaml) {
  wr__gv *o = wr__gv_obj(a);
  wr__gv_put(o, "id", wr__gv_uuid(a, &t->id));
  wr__gv_put(o, "name", wr__gv_str(a, t->name));
  wr__gv_put(o, yaml ? "createdat" : "createdAt", wr__gv_time(a, &t->created_at));
  wr__gv *arr = is_null && !yaml ? wr__gv_null(a) : wr__gv_arr(a);
  wr__gv_put(o, yaml ? "connectors" : "conns", arr);
  for (size_t i = 0; i < n; i++) {
    wr__gv *ac = wr__gv_push(arr, wr__gv_obj(a));
    wr__gv_put(ac, "id", wr__gv_uuid(a, &cl[i].id));
    wr__gv *f = cl[i].features_null && !yaml ? wr__gv_null(a) : wr__gv_arr(a);
    for (size_t k = 0; k < cl[i].nfeatures; k++) wr__gv_push(f, wr__gv_str(a, cl[i].features[k]));
    wr__gv_put(ac, "features", f);
    wr__gv_put(ac, "version", wr__gv_str(a, cl[i].version));
    wr__gv_put(ac, "arch", wr__gv_str(a, cl[i].arch));
    wr__gv_put(ac, yaml ? "runat" : "run_at", wr__gv_time(a, &cl[i].run_at));
    wr__gv_put(ac, yaml ? "connections" : "conns", wr__mg_conns_gv(a, cl[i].conns, cl[i].nconns, cl[i].conns_null, yaml));
  }
  return o;
}

int wr_cmd_tunnel_info(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr__mg_err e;
  const char *fmt;
  wr_uuid tid;
  char id[WR_UUID_STR_LEN + 1], path[1024];
  json_t *res = NULL;
  wr__mg_client_info *cl = NULL;
  wr__mg_tunnel *tl = NULL;
  size_t ncl = 0, ntl = 0;
  int cl_null = 0, rv = WR_EXIT_FAIL;
  (void)cmd;

  if (wr__mg_begin(&c, o, "tunnel info") != WR_OK) return WR_EXIT_FAIL;
  if (argc != 1) {
    rv = wr__mg_usage(&c, "\"%s tunnel info\" accepts exactly one argument, the ID or name of the tunnel to get info about.",
                  o->prog);
    goto out;
  }
  if (wr__mg_output_format(&c, &fmt, &e) != WR_OK) goto fail;
  if (wr__mg_find_id(&c, argv[0], &tid, &e) != WR_OK) {
    wr__mg_wrap(&e, "error parsing tunnel ID");
    goto fail;
  }
  wr_uuid_format(&tid, id);
  if (wr__mg_client(&c, &e) != WR_OK) goto fail;
  acct_path(&c, path, sizeof(path), "/connections", id);
  if (wr__mg_call(&c, "GET", path, NULL, NULL, "list connection details", 1, &res, NULL, &e) != WR_OK ||
      wr__mg_decode_clients(res, &cl, &ncl, &cl_null, &e) != WR_OK)
    goto fail;
  sort_ctx sc = {wr_opts_get(o, "sort-by"), wr_opts_bool(o, "invert-sort"), 0};
  if (!sc.key) sc.key = "createdAt";
  wr__mg_sort_slice(cl, ncl, sizeof(*cl), less_client, &sc);
  if (sc.invalid)
    wr_error("%s is not a valid sort field. Valid sort fields are %s. Defaulting to 'name'.", sc.key,
             SORT_OPTIONS_INFO);

  wr__mg_query q = {0};
  wr__mg_query_set(&q, "uuid", id);
  int r = wr__mg_list_tunnels(&c, &q, &tl, &ntl, NULL, &e);
  wr__mg_query_free(&q);
  if (r != WR_OK) goto fail;
  if (ntl != 1) {
    wr__mg_errf(&e, "Expected to find a single tunnel with uuid %s but found %zu tunnels.", id, ntl);
    goto fail;
  }
  if (*fmt) {
    wr_arena a = {0};
    wr__mg_render(fmt, info_gv(&a, &tl[0], cl, ncl, cl_null, 0), info_gv(&a, &tl[0], cl, ncl, cl_null, 1));
    wr_arena_free(&a);
  } else if (ncl > 0) {
    int rd = wr_opts_bool(o, "show-recently-disconnected"), any = 0;
    char created[64], tidstr[WR_UUID_STR_LEN + 1];
    wr_uuid_format(&tl[0].id, tidstr);
    wr__mg_time_string(&tl[0].created_at, created);
    printf("NAME:     %s\nID:       %s\nCREATED:  %s\n\n", tl[0].name, tidstr, created);
    char **conns = wr_xcalloc(ncl + 1, sizeof(char *));
    for (size_t i = 0; i < ncl; i++) {
      conns[i] = wr__mg_fmt_connections(cl[i].conns, cl[i].nconns, rd);
      any |= *conns[i] != '\0';
    }
    if (!any) printf("This tunnel has no active connectors.\n");
    wr__mg_table tb = {0};
    if (any) wr__mg_table_row(&tb, 6, "CONNECTOR ID", "CREATED", "ARCHITECTURE", "VERSION", "ORIGIN IP", "EDGE");
    for (size_t i = 0; i < ncl; i++) {
      if (*conns[i]) {
        char cid[WR_UUID_STR_LEN + 1], run[64], ip[64];
        wr_uuid_format(&cl[i].id, cid);
        wr__mg_time_rfc3339(&cl[i].run_at, run);
        wr__mg_ip_str(&cl[i].conns[0].origin_ip, ip);
        wr__mg_table_row(&tb, 6, cid, run, cl[i].arch, cl[i].version, ip, conns[i]);
      }
      free(conns[i]);
    }
    free(conns);
    wr__mg_table_print(&tb);
  } else {
    printf("Your tunnel %s does not have any active connection.\n", id);
  }
  rv = WR_EXIT_OK;
  goto out;
fail:
  rv = wr__mg_fail(&e);
out:
  json_decref(res);
  wr__mg_clients_free(cl, ncl);
  wr__mg_tunnels_free(tl, ntl);
  wr__mg_end(&c);
  return rv;
}

/* ---- delete ------------------------------------------------------------------------------- */

/* cloudflared's credentialFinder: --credentials-file if it names a file,
 * else <id>.json next to cert.pem, else in the default directories. */
static char *find_credentials(wr__mg_ctx *c, const char *id) {
  const char *cf = wr__mg_cred_file(c);
  if (cf && *cf) {
    char *p = wr_path_expand(cf);
    struct stat st;
    if (p && stat(p, &st) == 0 && !S_ISDIR(st.st_mode)) return p;
    free(p);
    return NULL;
  }
  char name[WR_UUID_STR_LEN + 8];
  snprintf(name, sizeof(name), "%s.json", id);
  if (c->cert_path) {
    char *dir = wr_xstrdup(c->cert_path);
    const char *d = dirname(dir);
    size_t n = strlen(d) + sizeof(name) + 2;
    char *p = wr_xmalloc(n);
    snprintf(p, n, "%s/%s", d, name);
    free(dir);
    struct stat st;
    if (stat(p, &st) == 0 && !S_ISDIR(st.st_mode)) return p;
    free(p);
  }
  return wr_find_default_file(name);
}

int wr_cmd_tunnel_delete(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr__mg_err e;
  wr_uuid *ids = NULL;
  size_t n = 0;
  int rv = WR_EXIT_FAIL, force;
  (void)cmd;

  if (wr__mg_begin(&c, o, "tunnel delete") != WR_OK) return WR_EXIT_FAIL;
  c.cred_file_cli_only = 1;
  if (argc < 1) {
    rv = wr__mg_usage(&c, "\"%s tunnel delete\" requires at least 1 argument, the ID or name of the tunnel to delete.",
                  o->prog);
    goto out;
  }
  force = wr_opts_bool(o, "force");
  if (wr__mg_find_ids(&c, argv, argc, &ids, &n, &e) != WR_OK) goto fail;
  if (wr__mg_client(&c, &e) != WR_OK) goto fail;
  for (size_t i = 0; i < n; i++) {
    char id[WR_UUID_STR_LEN + 1], path[1024];
    json_t *res = NULL;
    wr__mg_tunnel t;
    wr_uuid_format(&ids[i], id);
    acct_path(&c, path, sizeof(path), "", id);
    if (wr__mg_call(&c, "GET", path, NULL, NULL, "get tunnel", 1, &res, NULL, &e) != WR_OK ||
        wr__mg_decode_tunnel(res, &t, &e) != WR_OK) {
      json_decref(res);
      wr__mg_wrap(&e, "Can't get tunnel information. Please check tunnel id: %s", id);
      goto fail;
    }
    json_decref(res);
    int deleted = !wr__mg_time_is_zero(&t.deleted_at);
    char tid[WR_UUID_STR_LEN + 1];
    wr_uuid_format(&t.id, tid);
    wr__mg_tunnel_free(&t);
    if (deleted) {
      wr__mg_errf(&e, "Tunnel %s has already been deleted", tid);
      goto fail;
    }
    if (force) {
      char cpath[1024];
      acct_path(&c, cpath, sizeof(cpath), "/connections", tid);
      if (wr__mg_call(&c, "DELETE", cpath, NULL, NULL, "cleanup connections", 0, NULL, NULL, &e) != WR_OK) {
        wr__mg_wrap(&e, "Error cleaning up connections for tunnel %s", tid);
        goto fail;
      }
    }
    acct_path(&c, path, sizeof(path), "", tid);
    if (wr__mg_call(&c, "DELETE", path, force ? "cascade=true" : NULL, NULL, "delete tunnel", 0, NULL, NULL, &e) !=
        WR_OK) {
      wr__mg_wrap(&e, "Error deleting tunnel %s", tid);
      goto fail;
    }
    char *cred = find_credentials(&c, id);
    if (cred && unlink(cred) != 0) {
      char why[128];
      snprintf(why, sizeof(why), "%s", strerror(errno));
      if (why[0] >= 'A' && why[0] <= 'Z') why[0] = (char)(why[0] - 'A' + 'a');
      wr_info("Tunnel %s was deleted, but we could not remove its credentials file  %s: remove %s: %s. "
              "Consider deleting this file manually.", id, cred, cred, why);
    }
    free(cred);
  }
  rv = WR_EXIT_OK;
  goto out;
fail:
  rv = wr__mg_fail(&e);
out:
  free(ids);
  wr__mg_end(&c);
  return rv;
}

/* ---- cleanup --------------------------------------------------------------------------------- */

int wr_cmd_tunnel_cleanup(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr__mg_err e;
  wr__mg_query q = {0};
  wr_uuid *ids = NULL;
  size_t n = 0;
  char extra[80] = "";
  int rv = WR_EXIT_FAIL;
  (void)cmd;

  if (wr__mg_begin(&c, o, "tunnel cleanup") != WR_OK) return WR_EXIT_FAIL;
  if (argc < 1) {
    rv = wr__mg_usage(&c, "\"%s tunnel cleanup\" requires at least 1 argument, the IDs of the tunnels to cleanup "
                      "connections.", o->prog);
    goto out;
  }
  if (wr__mg_find_ids(&c, argv, argc, &ids, &n, &e) != WR_OK) goto fail;
  const char *connector = wr_opts_get(o, "connector-id");
  if (connector && *connector) {
    wr_uuid u;
    char why[128], s[WR_UUID_STR_LEN + 1];
    if (wr__mg_uuid_parse(connector, &u, why, sizeof(why)) != WR_OK) {
      wr__mg_errf(&e, "%s is not a valid client ID (must be a UUID): %s", connector, why);
      goto fail;
    }
    wr_uuid_format(&u, s);
    wr__mg_query_set(&q, "client_id", s);
    snprintf(extra, sizeof(extra), " for connector-id %s", s);
  }
  if (wr__mg_client(&c, &e) != WR_OK) goto fail;
  for (size_t i = 0; i < n; i++) {
    char id[WR_UUID_STR_LEN + 1], path[1024];
    wr_uuid_format(&ids[i], id);
    wr_info("Cleanup connection for tunnel %s%s", id, extra);
    acct_path(&c, path, sizeof(path), "/connections", id);
    if (wr__mg_call(&c, "DELETE", path, wr__mg_query_str(&q), NULL, "cleanup connections", 0, NULL, NULL, &e) != WR_OK)
      wr_error("Error cleaning up connections for tunnel %s, error :%s", id, e.msg);
  }
  rv = WR_EXIT_OK;
  goto out;
fail:
  rv = wr__mg_fail(&e);
out:
  free(ids);
  wr__mg_query_free(&q);
  wr__mg_end(&c);
  return rv;
}

/* ---- token ------------------------------------------------------------------------------------ */

int wr_cmd_tunnel_token(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr__mg_err e;
  wr_uuid tid;
  wr_credentials cred;
  json_t *res = NULL;
  char id[WR_UUID_STR_LEN + 1], path[1024], why[512];
  int rv = WR_EXIT_FAIL;
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
    wr__mg_wrap(&e, "error parsing tunnel ID");
    goto fail;
  }
  wr_uuid_format(&tid, id);
  if (wr__mg_client(&c, &e) != WR_OK) goto fail;
  acct_path(&c, path, sizeof(path), "/token", id);
  if (wr__mg_call(&c, "GET", path, NULL, NULL, "get tunnel token", 1, &res, NULL, &e) == WR_OK && !json_is_string(res)) {
    wr__mg_errf(&e, "the Cloudflare API response was an unexpected type: json: cannot unmarshal %s into Go value of type string",
            json_is_null(res) ? "null" : json_is_object(res) ? "object" : json_is_array(res) ? "array" : "number");
    if (json_is_null(res)) wr__mg_errf(&e, "illegal base64 data at input byte 0"); /* null leaves "" */
    json_decref(res);
    res = NULL;
  }
  if (!res) {
    wr_error("Could not get the Token for the given Tunnel %s error=\"%s\"", id, e.msg);
    goto fail;
  }
  const char *tok = json_string_value(res);
  if (wr_token_parse(tok, strlen(tok), &cred, why, sizeof(why)) != WR_OK) {
    wr__mg_errf(&e, "%s", why);
    goto fail;
  }
  const char *cf = wr__mg_cred_file(&c);
  if (cf && *cf) {
    char *p = wr_path_expand(cf);
    int r = wr__mg_write_credentials(p, &cred, &e);
    if (r != WR_OK) wr__mg_wrap(&e, "error writing token credentials to JSON file in path %s", p);
    free(p);
    if (r != WR_OK) goto fail;
  } else {
    char *enc = wr_token_encode(&cred);
    printf("%s\n", enc);
    explicit_bzero(enc, strlen(enc));
    free(enc);
  }
  rv = WR_EXIT_OK;
  goto out;
fail:
  rv = wr__mg_fail(&e);
out:
  explicit_bzero(&cred, sizeof(cred));
  json_decref(res);
  wr__mg_end(&c);
  return rv;
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

static int route_hostname(const wr_cmd *cmd, wr_opts *o, int argc, char **argv, int lb) {
  wr__mg_ctx c;
  wr__mg_err e;
  wr_uuid tid;
  json_t *res = NULL, *body = NULL;
  char id[WR_UUID_STR_LEN + 1], path[WR_CRED_MAX_FIELD * 3 + 128], zone[WR_CRED_MAX_FIELD * 3];
  int rv = WR_EXIT_FAIL;
  (void)cmd;

  if (wr__mg_begin(&c, o, lb ? "tunnel route lb" : "tunnel route dns") != WR_OK) return WR_EXIT_FAIL;
  if (argc != (lb ? 3 : 2)) {
    rv = lb ? wr__mg_usage(&c, "This command expects the format \"%s tunnel route lb <tunnel name/id> <hostname> "
                           "<load balancer pool>\"", o->prog)
            : wr__mg_usage(&c, "This command expects the format \"%s tunnel route dns <tunnel name/id> <hostname>\"",
                       o->prog);
    goto out;
  }
  if (wr__mg_find_id(&c, argv[0], &tid, &e) != WR_OK) goto fail;
  wr_uuid_format(&tid, id);
  if (!*argv[1]) {
    rv = wr__mg_usage(&c, lb ? "The third argument should be the load balancer name" : "The third argument should be the hostname");
    goto out;
  }
  if (!valid_hostname(argv[1], 1)) {
    wr__mg_errf(&e, lb ? "%s is not a valid load balancer name" : "%s is not a valid hostname", argv[1]);
    goto fail;
  }
  if (lb) {
    if (!*argv[2]) {
      rv = wr__mg_usage(&c, "The fourth argument should be the pool name");
      goto out;
    }
    if (!valid_name(argv[2], 0)) {
      wr__mg_errf(&e, "%s is not a valid pool name", argv[2]);
      goto fail;
    }
    body = json_pack("{s:s,s:s,s:s}", "type", "lb", "lb_name", argv[1], "lb_pool", argv[2]);
  } else {
    body = json_pack("{s:s,s:s,s:b}", "type", "dns", "user_hostname", argv[1], "overwrite_existing",
                     wr_opts_bool(o, "overwrite-dns"));
  }
  if (wr__mg_client(&c, &e) != WR_OK) goto fail;
  wr_url_escape(c.cert.zone_id, WR_URL_PATH, zone, sizeof(zone));
  snprintf(path, sizeof(path), "/zones/%s/tunnels/%s/routes", zone, id);
  if (wr__mg_call(&c, "PUT", path, NULL, body, "add route", 1, &res, NULL, &e) != WR_OK) goto fail;
  if (!json_is_object(res) && !json_is_null(res)) {
    wr__mg_errf(&e, "the Cloudflare API response was an unexpected type: json: cannot unmarshal %s into Go value of "
                "type cfapi.%s", json_is_array(res) ? "array" : "value", lb ? "LBRouteResult" : "DNSRouteResult");
    goto fail;
  }
  if (lb) {
    const json_t *lbv = json_object_get(res, "load_balancer"), *pv = json_object_get(res, "pool");
    const char *l = json_is_string(lbv) ? json_string_value(lbv) : "";
    const char *p = json_is_string(pv) ? json_string_value(pv) : "";
    char combo[64];
    snprintf(combo, sizeof(combo), "%.20s,%.20s", l, p);
    static const struct { const char *k, *fmt; int swap; } msgs[] = {
        {"new,new", "Created load balancer %s and added a new pool %s with this tunnel as an origin", 0},
        {"new,updated", "Created load balancer %s with an existing pool %s which was updated to use this tunnel as an origin", 0},
        {"new,unchanged", "Created load balancer %s with an existing pool %s which already has this tunnel as an origin", 0},
        {"updated,new", "Added new pool %s with this tunnel as an origin to load balancer %s", 1},
        {"updated,updated", "Updated pool %s to use this tunnel as an origin and added it to load balancer %s", 1},
        {"updated,unchanged", "Added pool %s, which already has this tunnel as an origin, to load balancer %s", 1},
        {"unchanged,updated", "Added this tunnel as an origin in pool %s which is already used by load balancer %s", 1},
        {"unchanged,unchanged", "Load balancer %s already uses pool %s which has this tunnel as an origin", 0},
    };
    const char *fmt = "Something went wrong: failed to modify load balancer %s with pool %s; please check traffic "
                      "manager configuration in the dashboard";
    int swap = 0;
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++)
      if (strcmp(combo, msgs[i].k) == 0) fmt = msgs[i].fmt, swap = msgs[i].swap;
    char msg[1024];
    snprintf(msg, sizeof(msg), fmt, swap ? argv[2] : argv[1], swap ? argv[1] : argv[2]);
    wr_info("%s tunnelID=%s", msg, id);
  } else {
    const json_t *cv = json_object_get(res, "cname"), *nv = json_object_get(res, "name");
    const char *cname = json_is_string(cv) ? json_string_value(cv) : "";
    const char *name = json_is_string(nv) && *json_string_value(nv) ? json_string_value(nv) : argv[1];
    if (strcmp(cname, "new") == 0) wr_info("Added CNAME %s which will route to this tunnel tunnelID=%s", name, id);
    else if (strcmp(cname, "updated") == 0) wr_info("%s updated to route to your tunnel tunnelID=%s", name, id);
    else if (strcmp(cname, "unchanged") == 0)
      wr_info("%s is already configured to route to your tunnel tunnelID=%s", name, id);
    else /* Go's Sprintf with an empty format */
      wr_info("%%!(EXTRA string=%s) tunnelID=%s", name, id);
  }
  rv = WR_EXIT_OK;
  goto out;
fail:
  rv = wr__mg_fail(&e);
out:
  json_decref(body);
  json_decref(res);
  wr__mg_end(&c);
  return rv;
}

int wr_cmd_tunnel_route_dns(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  return route_hostname(cmd, o, argc, argv, 0);
}

int wr_cmd_tunnel_route_lb(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  return route_hostname(cmd, o, argc, argv, 1);
}
