/* The dashboard's actions (dash_int.h): each reads its form, calls the
 * REST API's handler in-process with the signed-in user's authority
 * (wr_api_call: the API's checks, limits and audit rows), and answers 303
 * to its page with the outcome. The CSRF token was checked before. Ids
 * that go into an API path are checked to be ids first, so a form cannot
 * steer the call to another endpoint. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "edge/dash_int.h"

#define FIELD_MAX 1024

/* The form field |name| into |out|; 0, or -1 after answering 400. */
static int field(dash_req *q, const char *name, char *out, size_t size, int required) {
  int n = wr__dash_form_get((const char *)q->req->body, q->req->body_len, name, out, size);
  if (n == -1 && !required) {
    out[0] = '\0';
    return 0;
  }
  if (n <= 0) {
    char msg[128];
    snprintf(msg, sizeof(msg), "The form's field \"%s\" is missing, empty or malformed.", name);
    wr__dash_error(q, 400, msg);
    return -1;
  }
  return 0;
}

static int id_field(dash_req *q, const char *name, char *out, size_t size) {
  if (field(q, name, out, size, 1) != 0) return -1;
  if (!wr__dash_id_ok(out)) {
    wr__dash_error(q, 400, "The form names no valid id.");
    return -1;
  }
  return 0;
}

/* Calls the API and redirects to |page| with |ok| or the API's message. */
static void act(dash_req *q, const char *method, const char *path, const char *query, json_t *body,
                const char *page, const char *ok) {
  char err[600];
  json_t *env = NULL;
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  json_t *res = wr__dash_api(q, method, path, query, text, &env, err, sizeof(err));
  free(text);
  if (res) wr__dash_redirect(q, page, "msg", ok);
  else wr__dash_redirect(q, page, "error", err);
  json_decref(env);
}

void wr__dash_tunnel_create(dash_req *q) {
  char name[FIELD_MAX], path[128], ok[FIELD_MAX + 32];
  if (field(q, "name", name, sizeof(name), 1) != 0) return;
  snprintf(path, sizeof(path), "/accounts/%s/cfd_tunnel", q->user.account_id);
  snprintf(ok, sizeof(ok), "Created tunnel %s.", name);
  act(q, "POST", path, NULL, json_pack("{s:s,s:s}", "name", name, "config_src", "local"),
      WR_DASH_PATH "/tunnels", ok);
}

void wr__dash_tunnel_delete(dash_req *q) {
  char id[80], path[256];
  if (id_field(q, "id", id, sizeof(id)) != 0) return;
  snprintf(path, sizeof(path), "/accounts/%s/cfd_tunnel/%s", q->user.account_id, id);
  /* The page asked to confirm: live connections are closed with it. */
  act(q, "DELETE", path, "cascade=true", NULL, WR_DASH_PATH "/tunnels", "Deleted the tunnel.");
}

void wr__dash_dns_create(dash_req *q) {
  char zone[80], tunnel[80], host[FIELD_MAX], over[8], path[256], ok[FIELD_MAX + 32];
  if (id_field(q, "zone", zone, sizeof(zone)) != 0 || id_field(q, "tunnel", tunnel, sizeof(tunnel)) != 0 ||
      field(q, "hostname", host, sizeof(host), 1) != 0 || field(q, "overwrite", over, sizeof(over), 0) != 0)
    return;
  snprintf(path, sizeof(path), "/zones/%s/tunnels/%s/routes", zone, tunnel);
  snprintf(ok, sizeof(ok), "Routed %s.", host);
  act(q, "PUT", path, NULL,
      json_pack("{s:s,s:s,s:b}", "type", "dns", "user_hostname", host, "overwrite_existing", over[0] == '1'),
      WR_DASH_PATH "/routes", ok);
}

void wr__dash_dns_delete(dash_req *q) {
  char zone[80], id[80], path[256];
  if (id_field(q, "zone", zone, sizeof(zone)) != 0 || id_field(q, "id", id, sizeof(id)) != 0) return;
  snprintf(path, sizeof(path), "/zones/%s/dns_records/%s", zone, id);
  act(q, "DELETE", path, NULL, NULL, WR_DASH_PATH "/routes", "Deleted the DNS route.");
}

void wr__dash_ip_create(dash_req *q) {
  char net[128], tunnel[80], comment[FIELD_MAX], path[128], ok[200];
  if (field(q, "network", net, sizeof(net), 1) != 0 || id_field(q, "tunnel", tunnel, sizeof(tunnel)) != 0 ||
      field(q, "comment", comment, sizeof(comment), 0) != 0)
    return;
  snprintf(path, sizeof(path), "/accounts/%s/teamnet/routes", q->user.account_id);
  snprintf(ok, sizeof(ok), "Routed %s.", net);
  act(q, "POST", path, NULL, json_pack("{s:s,s:s,s:s}", "network", net, "tunnel_id", tunnel, "comment", comment),
      WR_DASH_PATH "/routes", ok);
}

void wr__dash_ip_delete(dash_req *q) {
  char id[80], path[256];
  if (id_field(q, "id", id, sizeof(id)) != 0) return;
  snprintf(path, sizeof(path), "/accounts/%s/teamnet/routes/%s", q->user.account_id, id);
  act(q, "DELETE", path, NULL, NULL, WR_DASH_PATH "/routes", "Deleted the IP route.");
}
