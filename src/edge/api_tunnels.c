/* REST API: /accounts/{a}/cfd_tunnel... (tunnel create, list, info, delete,
 * cleanup, token). Shapes: ../shared/cloudflare-api.md §2.5 and §2.6.1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge/api_int.h"
#include "lib/credentials.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"

#define TUNNEL_PER_PAGE_DEFAULT 20

/* ---- shapes ----------------------------------------------------------------------- */

/* A Connection: {colo_name, id, is_pending_reconnect, origin_ip, opened_at,
 * client_id, client_version}. origin_ip is left out when unknown (Go parses
 * it as an IP). */
static json_t *conn_json(wr_api *a, const wr_conn_rec *r) {
  json_t *j = json_pack("{s:s,s:s,s:s,s:b,s:o,s:s,s:s}", "colo_name",
                        r->edge_location[0] ? r->edge_location : (a->location ? a->location : "LOCAL"),
                        "id", r->id, "uuid", r->id, "is_pending_reconnect", 0, "opened_at",
                        wr__api_time(r->opened_at), "client_id", r->client_id, "client_version",
                        r->client_version);
  if (j && r->origin_ip[0]) json_object_set_new(j, "origin_ip", json_string(r->origin_ip));
  return j;
}

/* The open connections of a tunnel, oldest first (NULL on a store error,
 * which is logged: a listing still answers). */
static wr_conn_rec *open_conns(wr__api_ctx *c, const char *tunnel_id, size_t *n) {
  wr_conn_rec *rows = NULL;
  if (wr_store_conn_list(c->store, tunnel_id, 1, &rows, n) != WR_OK) {
    wr_warn("api: connections of tunnel %s: %s", tunnel_id, wr_store_errmsg(c->store));
    *n = 0;
    return NULL;
  }
  return rows;
}

/* A Tunnel as cloudflared decodes it (id, name, created_at, deleted_at,
 * connections) plus the fields Cloudflare also sends. */
static json_t *tunnel_json(wr__api_ctx *c, const wr_tunnel *t) {
  wr_api *a = c->api;
  size_t n = 0;
  int64_t active_at = 0, inactive_at = 0;
  wr_conn_rec *conns = t->deleted_at ? NULL : open_conns(c, t->id, &n);
  json_t *list = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(list, conn_json(a, &conns[i]));
  free(conns);
  if (wr_store_tunnel_conn_times(c->store, t->id, &active_at, &inactive_at) != WR_OK)
    wr_warn("api: connection times of tunnel %s: %s", t->id, wr_store_errmsg(c->store));
  const char *status = n ? "healthy" : (inactive_at ? "down" : "inactive");
  return json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:s,s:s,s:b,s:{}}", "id", t->id, "account_tag",
                   t->account_id, "name", t->name, "created_at", wr__api_time(t->created_at),
                   "deleted_at", wr__api_time(t->deleted_at), "connections", list, "conns_active_at",
                   wr__api_time(active_at), "conns_inactive_at", wr__api_time(inactive_at), "tun_type",
                   "cfd_tunnel", "status", status, "remote_config", t->remote_managed, "metadata");
}

/* The tunnel token (base64 of {"a","s","t"}), as `tunnel token` prints it. */
static char *tunnel_token(const wr_tunnel *t) {
  wr_credentials cr;
  memset(&cr, 0, sizeof(cr));
  snprintf(cr.account_tag, sizeof(cr.account_tag), "%s", t->account_id);
  memcpy(cr.secret, t->secret, t->secret_len);
  cr.secret_len = t->secret_len;
  if (wr_uuid_parse(t->id, strlen(t->id), &cr.tunnel_id) != WR_OK) return NULL;
  cr.has_tunnel_id = 1;
  char *tok = wr_token_encode(&cr);
  explicit_bzero(&cr, sizeof(cr));
  return tok;
}

/* Loads tunnel segs[3] of the path's account. Returns 0, or -1 after
 * answering 404/400. */
static int load_tunnel(wr__api_ctx *c, wr_tunnel *t) {
  int rv = wr_store_tunnel_get(c->store, c->segs[3], t);
  if (wr__api_owned(c, rv, t->account_id, "no tunnel with ID %s in this account", t->id) != 0) {
    explicit_bzero(t, sizeof(*t));
    return -1;
  }
  return 0;
}

/* ---- create ----------------------------------------------------------------------- */

static void create(wr__api_ctx *c) {
  wr_api *a = c->api;
  json_t *body = wr__api_body(c);
  uint8_t secret[WR_STORE_SECRET_MAX];
  int n = 0, bad = 0, remote = 0, rv;
  wr_tunnel t;
  if (!body) return;
  const char *name = wr__api_json_str(c, body, "name", &bad);
  const char *sec = wr__api_json_str(c, body, "tunnel_secret", &bad);
  const char *src = wr__api_json_str(c, body, "config_src", &bad);
  if (bad) return;
  if (!name) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "field name is required");
    return;
  }
  if (src && strcmp(src, "cloudflare") == 0) {
    remote = 1;
  } else if (src && strcmp(src, "local") != 0) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "config_src must be \"local\" or \"cloudflare\"");
    return;
  }
  if (sec) {
    n = wr_base64_decode(sec, strlen(sec), secret, sizeof(secret), 0);
    if (n < WR_STORE_SECRET_MIN) {
      wr__api_err(c, 400, WR_API_CODE_INVALID,
                  n == WR_ERR_LIMIT ? "tunnel_secret must decode to at most %d bytes"
                                    : "tunnel_secret must be standard base64 of at least %d bytes",
                  n == WR_ERR_LIMIT ? WR_STORE_SECRET_MAX : WR_STORE_SECRET_MIN);
      explicit_bzero(secret, sizeof(secret));
      return;
    }
  }
  /* The limit is checked with the insert, in one transaction per account
   * (edge/store.h), so that it holds across edges sharing a store. */
  rv = wr_store_tunnel_create_ex(c->store, c->actor, c->token.account_id, name, sec ? secret : NULL,
                                 sec ? (size_t)n : 0, remote, a->max_tunnels, &t);
  explicit_bzero(secret, sizeof(secret));
  if (rv == WR_ERR_LIMIT) {
    wr__api_err(c, 400, WR_API_CODE_LIMIT,
                "%s; delete unused ones (cloudflared tunnel list, cloudflared tunnel delete NAME)",
                wr_store_errmsg(c->store));
    return;
  }
  if (rv == WR_ERR_EXISTS) {
    /* cloudflared maps 409 to "tunnel with name already exists". */
    wr__api_err(c, 409, WR_API_CODE_CONFLICT, "tunnel with name already exists: %s",
                wr_store_errmsg(c->store));
    return;
  }
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  json_t *j = tunnel_json(c, &t);
  char *tok = tunnel_token(&t);
  char b64[WR_BASE64_ENCODED_SIZE(WR_STORE_SECRET_MAX)];
  wr_base64_encode(t.secret, t.secret_len, b64, sizeof(b64), 1);
  if (tok) json_object_set_new(j, "token", json_string(tok));
  /* Cloudflare's create also returns the credentials file's content. */
  json_object_set_new(j, "credentials_file",
                      json_pack("{s:s,s:s,s:s,s:s}", "AccountTag", t.account_id, "TunnelID", t.id,
                                "TunnelName", t.name, "TunnelSecret", b64));
  if (tok) explicit_bzero(tok, strlen(tok));
  free(tok);
  explicit_bzero(b64, sizeof(b64));
  wr_info("api: %s created tunnel %s (%s)", c->actor, t.name, t.id);
  explicit_bzero(&t, sizeof(t));
  wr__api_ok(c, j, NULL);
}

/* ---- list --------------------------------------------------------------------------- */

static void list(wr__api_ctx *c) {
  wr_tunnel_filter f = {.account_id = c->token.account_id};
  wr_tunnel *rows = NULL;
  size_t n = 0, total = 0, page, per_page;
  int paged, rv, del = wr__api_param_bool(c, "is_deleted");
  if (del == -2) return;
  if (del == 1) f.only_deleted = 1;
  else if (del == -1) f.include_deleted = 1; /* Cloudflare: no filter means every tunnel */
  const char *v;
  if ((v = wr__api_param(c, "name")) && *v) f.name = v;
  if ((v = wr__api_param(c, "name_prefix")) && *v) f.name_prefix = v;
  if ((v = wr__api_param(c, "include_prefix")) && *v) f.name_prefix = v;
  if ((v = wr__api_param(c, "exclude_prefix")) && *v) f.exclude_prefix = v;
  if ((v = wr__api_param(c, "uuid")) && *v) f.id = v;
  if (f.id) {
    wr_uuid u;
    if (wr_uuid_parse(f.id, strlen(f.id), &u) != WR_OK) {
      wr__api_err(c, 400, WR_API_CODE_INVALID, "query parameter uuid must be a tunnel UUID");
      return;
    }
  }
  if (wr__api_param_time(c, "existed_at", &f.existed_at) != 0) return;
  if (wr__api_paging(c, TUNNEL_PER_PAGE_DEFAULT, &page, &per_page, &paged) != 0) return;
  if ((rv = wr_store_tunnel_count(c->store, &f, &total)) != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  if (paged) {
    f.limit = per_page;
    f.offset = (page - 1) * per_page;
  }
  if ((rv = wr_store_tunnel_list(c->store, &f, &rows, &n)) != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(arr, tunnel_json(c, &rows[i]));
  if (rows) explicit_bzero(rows, n * sizeof(*rows));
  free(rows);
  /* Unpaged: one page of everything, so paging clients stop at once. */
  wr__api_ok(c, arr, wr__api_result_info(page, paged ? per_page : total, n, total));
}

/* ---- delete ------------------------------------------------------------------------- */

/* The tunnel server's part of a request: it lives on the loop. */
typedef struct ts_call {
  wr_tunnel_server *ts;
  const char *tunnel_id, *client, *why; /* why NULL: count only */
  size_t n;
} ts_call;

static void ts_call_run(void *arg) {
  ts_call *q = arg;
  q->n = q->why ? wr_tunnel_server_close_tunnel(q->ts, q->tunnel_id, q->client, q->why)
                : wr_tunnel_server_count(q->ts, q->tunnel_id);
}

/* Counts (|why| NULL) or closes the tunnel's live connections here, into
 * *n. Returns 0, or -1 after answering 503 (the edge is stopping). */
static int ts_live(wr__api_ctx *c, const char *tunnel_id, const char *client, const char *why,
                   size_t *n) {
  ts_call q = {c->api->ts, tunnel_id, client, why, 0};
  if (wr__api_on_loop(c, ts_call_run, &q) != 0) {
    wr__api_err(c, 503, WR_API_CODE_INTERNAL, "the edge is stopping; try again");
    return -1;
  }
  *n = q.n;
  return 0;
}

/* Closes the tunnel's connections (only those of |client| if not NULL):
 * the live ones through the tunnel server, and rows no edge serves any
 * more in the store. Returns the number closed, or -1 after answering. */
static long close_conns(wr__api_ctx *c, const char *tunnel_id, const char *client,
                        const char *why) {
  wr_api *a = c->api;
  size_t live = 0, stale = 0;
  if (a->ts && ts_live(c, tunnel_id, client, why, &live) != 0) return -1;
  int rv = wr_store_conn_close_tunnel(c->store, tunnel_id, client, &stale);
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, "closing connections");
    return -1;
  }
  return (long)(live + stale);
}

static void delete_tunnel(wr__api_ctx *c) {
  wr_api *a = c->api;
  wr_tunnel t;
  size_t routes = 0, live;
  int rv, cascade = wr__api_param_bool(c, "cascade");
  if (cascade == -2 || load_tunnel(c, &t) != 0) return;
  if (t.deleted_at) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "tunnel %s (%s) is already deleted", t.name, t.id);
    goto out;
  }
  live = t.active_conns;
  if (a->ts && ts_live(c, t.id, NULL, NULL, &live) != 0) goto out;
  if (live && cascade != 1) {
    wr__api_err(c, 400, WR_API_CODE_INVALID,
                "tunnel %s has %zu active connection%s; stop its connectors first, or delete it with "
                "--force (cloudflared tunnel delete -f %s), which disconnects them",
                t.name, live, live == 1 ? "" : "s", t.name);
    goto out;
  }
  /* The hostnames go with the tunnel: remember them for the route hook. */
  wr_route *gone = NULL;
  size_t ngone = 0;
  if (a->on_route && wr_store_route_list(c->store, t.account_id, t.id, &gone, &ngone) != WR_OK) {
    gone = NULL;
    ngone = 0;
  }
  /* Delete first: a connector that reconnects after its connection is
   * closed below is then refused. */
  if ((rv = wr_store_tunnel_delete(c->store, c->actor, t.id, &routes)) != WR_OK) {
    free(gone);
    wr__api_store_err(c, rv, NULL);
    goto out;
  }
  for (size_t i = 0; i < ngone; i++)
    wr__api_route_event(c, WR_API_ROUTE_REMOVED, gone[i].hostname, t.id);
  free(gone);
  wr__api_route_event(c, WR_API_TUNNEL_DELETED, NULL, t.id);
  if (close_conns(c, t.id, NULL, "tunnel deleted") < 0) goto out;
  wr_info("api: %s deleted tunnel %s (%s), %zu hostname route%s removed", c->actor, t.name, t.id,
          routes, routes == 1 ? "" : "s");
  if ((rv = wr_store_tunnel_get(c->store, t.id, &t)) != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    goto out;
  }
  wr__api_ok(c, tunnel_json(c, &t), NULL);
out:
  explicit_bzero(&t, sizeof(t));
}

/* ---- connections --------------------------------------------------------------------- */

/* GET .../connections: the active connectors, each with its connections. */
static void list_connectors(wr__api_ctx *c, const wr_tunnel *t) {
  size_t n = 0;
  wr_conn_rec *rows = t->deleted_at ? NULL : open_conns(c, t->id, &n);
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) {
    size_t k = 0;
    while (k < i && strcmp(rows[k].client_id, rows[i].client_id) != 0) k++;
    if (k < i) continue; /* this connector was listed at its first connection */
    json_error_t jerr;
    json_t *features = json_loads(rows[i].features, 0, &jerr);
    if (!json_is_array(features)) {
      json_decref(features);
      features = json_array();
    }
    json_t *conns = json_array();
    for (size_t j = i; j < n; j++)
      if (strcmp(rows[j].client_id, rows[i].client_id) == 0)
        json_array_append_new(conns, conn_json(c->api, &rows[j]));
    json_array_append_new(arr, json_pack("{s:s,s:o,s:s,s:s,s:o,s:o}", "id", rows[i].client_id,
                                          "features", features, "version", rows[i].client_version,
                                          "arch", rows[i].arch, "run_at", wr__api_time(rows[i].opened_at),
                                          "conns", conns));
  }
  free(rows);
  wr__api_ok(c, arr, NULL);
}

/* DELETE .../connections[?client_id=]: `tunnel cleanup` and 2023.7.3's
 * `delete -f`. Connectors of a live tunnel reconnect (as on Cloudflare). */
static void cleanup(wr__api_ctx *c, const wr_tunnel *t) {
  const char *client = wr__api_param(c, "client_id");
  char detail[160];
  wr_uuid u;
  if (client && !*client) client = NULL;
  if (client && wr_uuid_parse(client, strlen(client), &u) != WR_OK) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "client_id must be a connector UUID");
    return;
  }
  long n = close_conns(c, t->id, client, client ? "connector cleaned up" : "connections cleaned up");
  if (n < 0) return;
  snprintf(detail, sizeof(detail), "{\"client_id\":%s%s%s,\"closed\":%ld}", client ? "\"" : "",
           client ? client : "null", client ? "\"" : "", n);
  int rv = wr_store_audit_append(c->store, c->actor, t->account_id, "tunnel.cleanup", "tunnel",
                                 t->id, detail);
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, "writing the audit row");
    return;
  }
  wr__api_ok(c, NULL, NULL);
}

/* GET .../cfd_tunnel/{id}/token: the token `tunnel run --token` takes. */
static void get_token(wr__api_ctx *c, const wr_tunnel *t) {
  if (strcmp(c->method, "GET") != 0) {
    wr__api_method(c, "GET");
    return;
  }
  if (t->deleted_at) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "tunnel %s (%s) is deleted", t->name, t->id);
    return;
  }
  char *tok = tunnel_token(t);
  if (!tok) {
    wr__api_err(c, 500, WR_API_CODE_INTERNAL, "cannot encode the tunnel token");
    return;
  }
  wr__api_ok(c, json_string(tok), NULL);
  explicit_bzero(tok, strlen(tok));
  free(tok);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

void wr__api_tunnels(wr__api_ctx *c) {
  const char *m = c->method;
  wr_tunnel t;
  if (c->nsegs == 3) {
    wr__api_collection(c, list, create);
    return;
  }
  if (c->nsegs == 4 && strcmp(m, "DELETE") == 0) {
    delete_tunnel(c);
    return;
  }
  if (c->nsegs == 4 && strcmp(m, "GET") != 0) {
    wr__api_method(c, "GET, DELETE");
    return;
  }
  const char *sub = c->nsegs > 4 ? c->segs[4] : "";
  int known = (c->nsegs == 4) || (c->nsegs == 5 && (strcmp(sub, "connections") == 0 ||
                                                    strcmp(sub, "token") == 0)) ||
              ((c->nsegs == 5 || c->nsegs == 6) && strcmp(sub, "management") == 0);
  if (!known) {
    wr__api_no_route(c);
    return;
  }
  if (load_tunnel(c, &t) != 0) return;
  if (c->nsegs == 4) {
    wr__api_ok(c, tunnel_json(c, &t), NULL);
  } else if (strcmp(sub, "connections") == 0) {
    if (strcmp(m, "GET") == 0) list_connectors(c, &t);
    else if (strcmp(m, "DELETE") == 0) cleanup(c, &t);
    else wr__api_method(c, "GET, DELETE");
  } else if (strcmp(sub, "token") == 0) {
    get_token(c, &t);
  } else if (strcmp(m, "POST") != 0) {
    wr__api_method(c, "POST");
  } else {
    wr__api_mgmt_token(c, &t);
  }
  explicit_bzero(&t, sizeof(t));
}
