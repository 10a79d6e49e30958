/* The dashboard's read-only pages (dash_int.h): tunnels, routes, devices,
 * Access applications, users and the audit log. Every read goes through the REST API in-process
 * (wr_api_call) with the signed-in user's authority, except users (the API
 * has no endpoint for them: read from the store, the account's only). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge/dash_int.h"
#include "lib/err.h"
#include "lib/html.h"

/* "/accounts/<account>" + |rest| */
static void acct_path(dash_req *q, char *out, size_t size, const char *rest) {
  snprintf(out, size, "/accounts/%s%s", q->user.account_id, rest);
}

static void api_failed(wr_buf *b, const char *what, const char *err) {
  wr_buf_append_str(b, "<p class=\"error\">");
  wr_html_escape(b, what);
  wr_buf_append_str(b, ": ");
  wr_html_escape(b, err);
  wr_buf_append_str(b, "</p>\n");
}

/* GET of the account's |rest| (|query| may be NULL) through the API: the
 * result list, or NULL after writing "|failed|: why" into |b|. *env gets
 * the whole answer (the caller releases it; NULL-initialised by it). */
static json_t *acct_list(dash_req *q, wr_buf *b, const char *rest, const char *query,
                         const char *failed, json_t **env) {
  char path[128], err[512];
  acct_path(q, path, sizeof(path), rest);
  json_t *list = wr__dash_api(q, "GET", path, query, NULL, env, err, sizeof(err));
  if (!list) api_failed(b, failed, err);
  return list;
}

/* A page listing the account's |rest| (the API's list) in one table. */
typedef struct list_page {
  const char *title, *nav;           /* wr__dash_begin's */
  const char *rest, *query, *failed; /* acct_list's */
  const char *head, *foot;           /* the HTML before and after the rows */
  void (*row)(dash_req *q, wr_buf *b, json_t *item);
} list_page;

static void list_page_send(dash_req *q, const list_page *p) {
  wr_buf b;
  json_t *env = NULL, *item;
  size_t i;
  wr__dash_begin(q, &b, p->title, p->nav);
  json_t *list = acct_list(q, &b, p->rest, p->query, p->failed, &env);
  wr_buf_append_str(&b, p->head);
  json_array_foreach(list, i, item) p->row(q, &b, item);
  json_decref(env);
  wr_buf_append_str(&b, p->foot);
  wr__dash_send(q, &b);
}

/* A failed store read |rv| (what: "Listing ... failed") on the page: 1
 * when it failed. */
static int store_failed(dash_req *q, wr_buf *b, int rv, const char *what) {
  if (rv == WR_OK) return 0;
  api_failed(b, what, wr_store_errmsg(q->store));
  return 1;
}

/* The account's live tunnels (the API's list), or NULL with |err|. */
static json_t *tunnels(dash_req *q, json_t **env, char *err, size_t errlen) {
  char path[128];
  acct_path(q, path, sizeof(path), "/cfd_tunnel");
  return wr__dash_api(q, "GET", path, "is_deleted=false", NULL, env, err, errlen);
}

/* The tunnel server's record of a live connection (on the loop). */
typedef struct find_call {
  wr_tunnel_server *ts;
  const char *id;
  wr_tunnel_conn_info info;
  int rv;
} find_call;

static void find_run(void *arg) {
  find_call *f = arg;
  f->rv = wr_tunnel_server_find(f->ts, f->id, &f->info);
}

/* One connection: edge, origin IP, connector version, protocol, uptime. */
static void conn_line(dash_req *q, wr_buf *b, json_t *c, int64_t now) {
  find_call f = {.ts = q->ts, .id = json_string_value(json_object_get(c, "id")), .rv = WR_ERR_NOTFOUND};
  if (f.id && f.ts && wr__dash_on_loop(q, find_run, &f) != 0) f.rv = WR_ERR_NOTFOUND;
  const char *proto = f.rv == WR_OK ? f.info.protocol : "?";
  int64_t opened = 0;
  wr__dash_jfill(q, b, c,
                 "<div class=\"conn\" data-conn=\"{id}\">edge <b class=\"edge\">{colo_name}</b>"
                 " · origin <span class=\"origin-ip\">{origin_ip}</span>"
                 " · <span class=\"version\">{client_version}</span> · <span class=\"protocol\">");
  wr_html_escape(b, proto);
  wr_buf_append_str(b, "</span> · up <span class=\"uptime\">");
  if (wr__dash_parse_time(json_string_value(json_object_get(c, "opened_at")), &opened) == 0)
    wr__dash_duration(b, now - opened);
  else
    wr_buf_append_str(b, "?");
  wr_buf_append_str(b, "</span></div>");
}

static void tunnel_row(dash_req *q, wr_buf *b, json_t *t, int64_t now) {
  json_t *conns = json_object_get(t, "connections");
  size_t i;
  json_t *c;
  wr__dash_jfill(q, b, t,
                 "<tr class=\"tunnel\" data-name=\"{name}\"><td class=\"name\">{name}"
                 "<br><code class=\"id\">{id}</code></td><td class=\"status {status}\">{status}"
                 "</td><td class=\"connections\">");
  json_array_foreach(conns, i, c) conn_line(q, b, c, now);
  if (!json_array_size(conns)) wr_buf_append_str(b, "none");
  wr__dash_jfill(q, b, t,
                 "</td><td>{created_at}</td><td><a class=\"traffic\" href=\"" WR_DASH_PATH
                 "/traffic?tunnel={id}\">Traffic</a> <form class=\"inline\" method=\"post\" action=\"" WR_DASH_PATH
                 "/tunnels/delete\" data-confirm=\"Delete this tunnel and its routes?\">{@csrf}"
                 "<input type=\"hidden\" name=\"id\" value=\"{id}\"><button class=\"danger delete-tunnel\""
                 " type=\"submit\">Delete</button></form></td></tr>\n");
}

void wr__dash_tunnels(dash_req *q) {
  wr_buf b;
  json_t *env = NULL, *t;
  char err[512];
  size_t i;
  wr__dash_begin(q, &b, "Tunnels", "tunnels");
  json_t *list = tunnels(q, &env, err, sizeof(err));
  if (!list) {
    api_failed(&b, "Listing tunnels failed", err);
  } else {
    int64_t now = (int64_t)time(NULL);
    wr_buf_append_str(&b, "<table id=\"tunnels\"><thead><tr><th>Tunnel</th><th>Status</th>"
                          "<th>Connections</th><th>Created</th><th></th></tr></thead><tbody>\n");
    json_array_foreach(list, i, t) tunnel_row(q, &b, t, now);
    wr_buf_append_str(&b, "</tbody></table>\n");
    if (!json_array_size(list)) wr_buf_append_str(&b, "<p id=\"no-tunnels\">No tunnels yet.</p>\n");
  }
  json_decref(env);
  wr_buf_append_str(&b, "<h2>Create a tunnel</h2><form id=\"create-tunnel\" class=\"create\" method=\"post\" action=\"" WR_DASH_PATH "/tunnels/create\">");
  wr__dash_csrf(q, &b);
  wr_buf_append_str(&b, "<label>Name<input name=\"name\" id=\"tunnel-name\" required maxlength=\"64\"></label>"
                        "<button type=\"submit\" id=\"create-tunnel-button\">Create</button></form>\n"
                        "<p class=\"note\">Run it with <code>warren tunnel run NAME</code> once its "
                        "credentials are on the connector's host (<code>warren tunnel token NAME</code>).</p>\n");
  wr__dash_send(q, &b);
}

/* <option>s of the account's tunnels (value: id). */
static void tunnel_options(dash_req *q, wr_buf *b) {
  json_t *env = NULL, *t;
  char err[256];
  size_t i;
  json_t *list = tunnels(q, &env, err, sizeof(err));
  json_array_foreach(list, i, t) {
    wr__dash_jfill(q, b, t, "<option value=\"{id}\">{name}</option>");
  }
  json_decref(env);
}

static void dns_section(dash_req *q, wr_buf *b, const wr_zone *zones, size_t nz) {
  char path[256], err[512];
  wr_buf_append_str(b, "<h2>DNS routes</h2><table id=\"dns-routes\"><thead><tr><th>Hostname</th><th>Tunnel</th>"
                       "<th>Target</th><th>Created</th><th></th></tr></thead><tbody>\n");
  for (size_t z = 0; z < nz; z++) {
    json_t *env = NULL, *r;
    size_t i;
    snprintf(path, sizeof(path), "/zones/%s/dns_records", zones[z].id);
    json_t *list = wr__dash_api(q, "GET", path, "per_page=1000", NULL, &env, err, sizeof(err));
    if (!list) api_failed(b, zones[z].name, err);
    json_array_foreach(list, i, r) {
      wr__dash_jfill(q, b, r,
                     "<tr class=\"dns-route\" data-host=\"{name}\"><td class=\"host\">{name}</td>"
                     "<td>{meta.tunnel_name}</td><td><code>{content}</code></td><td>{created_on}</td>"
                     "<td><form class=\"inline\" method=\"post\" action=\"" WR_DASH_PATH
                     "/routes/dns/delete\" data-confirm=\"Delete this route?\">{@csrf}"
                     "<input type=\"hidden\" name=\"zone\" value=\"");
      wr_html_escape(b, zones[z].id);
      wr__dash_jfill(q, b, r,
                     "\"><input type=\"hidden\" name=\"id\" value=\"{id}\"><button class=\"danger delete-route\""
                     " type=\"submit\">Delete</button></form></td></tr>\n");
    }
    json_decref(env);
  }
  wr_buf_append_str(b, "</tbody></table>\n<form id=\"create-dns\" class=\"create\" method=\"post\" action=\"" WR_DASH_PATH
                       "/routes/dns/create\">");
  wr__dash_csrf(q, b);
  wr_buf_append_str(b, "<label>Hostname<input name=\"hostname\" id=\"dns-hostname\" required></label><label>Zone<select name=\"zone\" id=\"dns-zone\">");
  for (size_t z = 0; z < nz; z++) {
    wr_buf_append_str(b, "<option value=\"");
    wr_html_escape(b, zones[z].id);
    wr_buf_append_str(b, "\">");
    wr_html_escape(b, zones[z].name);
    wr_buf_append_str(b, "</option>");
  }
  wr_buf_append_str(b, "</select></label><label>Tunnel<select name=\"tunnel\" id=\"dns-tunnel\">");
  tunnel_options(q, b);
  wr_buf_append_str(b, "</select></label><label><span>Replace an existing route</span><input type=\"checkbox\" name=\"overwrite\" value=\"1\"></label>"
                       "<button type=\"submit\" id=\"create-dns-button\">Add DNS route</button></form>\n");
}

static void ip_section(dash_req *q, wr_buf *b) {
  json_t *env = NULL, *r;
  size_t i;
  wr_buf_append_str(b, "<h2>IP routes</h2>");
  json_t *list = acct_list(q, b, "/teamnet/routes", "is_deleted=false", "Listing IP routes failed", &env);
  wr_buf_append_str(b, "<table id=\"ip-routes\"><thead><tr><th>Network</th><th>Tunnel</th><th>Virtual network</th>"
                       "<th>Comment</th><th></th></tr></thead><tbody>\n");
  json_array_foreach(list, i, r) {
    wr__dash_jfill(q, b, r,
                   "<tr class=\"ip-route\"><td class=\"network\">{network}</td><td><code>{tunnel_id}</code>"
                   "</td><td>{virtual_network_id}</td><td>{comment}</td><td><form class=\"inline\""
                   " method=\"post\" action=\"" WR_DASH_PATH "/routes/ip/delete\""
                   " data-confirm=\"Delete this route?\">{@csrf}<input type=\"hidden\" name=\"id\""
                   " value=\"{id}\"><button class=\"danger\" type=\"submit\">Delete</button></form></td></tr>\n");
  }
  json_decref(env);
  wr_buf_append_str(b, "</tbody></table>\n<form id=\"create-ip\" class=\"create\" method=\"post\" action=\"" WR_DASH_PATH
                       "/routes/ip/create\">");
  wr__dash_csrf(q, b);
  wr_buf_append_str(b, "<label>Network (CIDR)<input name=\"network\" id=\"ip-network\" required></label>"
                       "<label>Tunnel<select name=\"tunnel\" id=\"ip-tunnel\">");
  tunnel_options(q, b);
  wr_buf_append_str(b, "</select></label><label>Comment<input name=\"comment\" maxlength=\"200\"></label>"
                       "<button type=\"submit\" id=\"create-ip-button\">Add IP route</button></form>\n");
}

void wr__dash_routes(dash_req *q) {
  wr_buf b;
  wr_zone *zones = NULL;
  size_t nz = 0;
  wr__dash_begin(q, &b, "Routes", "routes");
  if (store_failed(q, &b, wr_store_zone_list(q->store, q->user.account_id, &zones, &nz), "Listing zones failed"))
    zones = NULL, nz = 0;
  dns_section(q, &b, zones, nz);
  free(zones);
  ip_section(q, &b);
  wr__dash_send(q, &b);
}

static void device_row(dash_req *q, wr_buf *b, json_t *dv) {
  wr__dash_jfill(q, b, dv,
                 "<tr><td>{name}</td><td>{ipv4} {ipv6}</td><td><code>{public_key}</code></td>"
                 "<td>{last_handshake_at}");
  wr_buf_printf(b, "</td><td class=\"num\">%" JSON_INTEGER_FORMAT "</td><td class=\"num\">%" JSON_INTEGER_FORMAT "</td><td>",
                json_integer_value(json_object_get(dv, "rx_bytes")),
                json_integer_value(json_object_get(dv, "tx_bytes")));
  wr__dash_jfill(q, b, dv, "{revoked_at}</td></tr>\n");
}

void wr__dash_devices(dash_req *q) {
  static const list_page page = {
      "Devices", "devices", "/devices", NULL, "Listing devices failed",
      "<table id=\"devices\"><thead><tr><th>Name</th><th>Addresses</th><th>Public key</th>"
      "<th>Last handshake</th><th class=\"num\">Received</th><th class=\"num\">Sent</th>"
      "<th>Revoked</th></tr></thead><tbody>\n",
      "</tbody></table>\n<p class=\"note\">Add devices with <code>warren-edge device add</code>.</p>\n",
      device_row};
  list_page_send(q, &page);
}

/* One Access application's policies, "decision: name" in evaluation order. */
static void app_policies(dash_req *q, wr_buf *b, json_t *app) {
  char path[192], err[512];
  json_t *env = NULL, *p;
  size_t i;
  const char *id = json_string_value(json_object_get(app, "id"));
  if (!id) return;
  snprintf(path, sizeof(path), "/accounts/%s/access/apps/%s/policies", q->user.account_id, id);
  json_t *list = wr__dash_api(q, "GET", path, NULL, NULL, &env, err, sizeof(err));
  if (!list) wr_html_escape(b, err);
  json_array_foreach(list, i, p) {
    if (i) wr_buf_append_str(b, "<br>");
    wr__dash_jfill(q, b, p, "{decision}: {name}");
  }
  json_decref(env);
}

/* Access applications with their audience tags and policies (read-only:
 * they are managed through the API, docs/access.md). */
static void app_row(dash_req *q, wr_buf *b, json_t *app) {
  wr__dash_jfill(q, b, app,
                 "<tr class=\"access-app\"><td>{name}</td><td class=\"domain\">{domain}</td>"
                 "<td>{session_duration}</td><td><code>{aud}</code></td><td class=\"policies\">");
  app_policies(q, b, app);
  wr_buf_append_str(b, "</td></tr>\n");
}

void wr__dash_access(dash_req *q) {
  static const list_page page = {
      "Access applications", "access", "/access/apps", NULL, "Listing Access applications failed",
      "<table id=\"access-apps\"><thead><tr><th>Name</th><th>Domain</th><th>Session</th>"
      "<th>Audience tag</th><th>Policies</th></tr></thead><tbody>\n",
      "</tbody></table>\n<p class=\"note\">Applications and policies are managed through the "
      "API (<code>/accounts/{id}/access/apps</code>).</p>\n",
      app_row};
  list_page_send(q, &page);
}

void wr__dash_users(dash_req *q) {
  wr_buf b;
  wr_user *users = NULL;
  size_t n = 0;
  wr__dash_begin(q, &b, "Users", "users");
  if (store_failed(q, &b, wr_store_user_list(q->store, q->user.account_id, &users, &n), "Listing users failed"))
    users = NULL, n = 0;
  wr_buf_append_str(&b, "<table id=\"users\"><thead><tr><th>Email</th><th>Kind</th><th>Created</th></tr></thead><tbody>\n");
  for (size_t i = 0; i < n; i++) {
    char when[32] = "";
    time_t t = (time_t)users[i].created_at;
    struct tm tm;
    if (gmtime_r(&t, &tm)) strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    wr_buf_append_str(&b, "<tr><td>");
    wr_html_escape(&b, users[i].email);
    wr_buf_printf(&b, "</td><td>%s</td><td>%s</td></tr>\n", users[i].is_service ? "service (API token)" : "person",
                  when);
  }
  free(users);
  wr_buf_append_str(&b, "</tbody></table>\n<p class=\"note\">Add users with <code>warren-edge user add</code>.</p>\n");
  wr__dash_send(q, &b);
}

static void audit_row(dash_req *q, wr_buf *b, json_t *row) {
  char *meta = json_dumps(json_object_get(row, "metadata"), JSON_COMPACT);
  wr__dash_jfill(q, b, row,
                 "<tr><td>{when}</td><td class=\"actor\">{actor}</td><td class=\"action\">{action}</td>"
                 "<td>{resource.type} <code>{resource.id}</code></td><td><code>");
  wr_html_escape(b, meta ? meta : "");
  wr_buf_append_str(b, "</code></td></tr>\n");
  free(meta);
}

void wr__dash_audit(dash_req *q) {
  static const list_page page = {
      "Audit log", "audit", "/audit_logs", "per_page=200", "Reading the audit log failed",
      "<table id=\"audit\"><thead><tr><th>When</th><th>Actor</th><th>Action</th><th>Resource</th>"
      "<th>Details</th></tr></thead><tbody>\n",
      "</tbody></table>\n", audit_row};
  list_page_send(q, &page);
}
