/* `warren tunnel --url URL` without credentials: a quick tunnel, as
 * cloudflared's quick_tunnel.go. POST {--quick-service}/tunnel (no body,
 * Content-Type: application/json, a User-Agent), read QuickTunnelResponse
 * {"success","result":{"id","name","hostname","account_tag","secret"},
 * "errors"}, and run the tunnel with those credentials and one connection.
 *
 * The URL printed is the answer's "url" when the service gives one (a
 * warren-edge does: its visitor front is plain HTTP, so it says
 * http://HOST[:PORT]), else https://HOSTNAME as cloudflared prints it
 * (trycloudflare). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cmd/commands.h"
#include "lib/credentials.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/http_client.h"

#define QUICK_TIMEOUT_MS 15000 /* cloudflared's httpTimeout */

static const char disclaimer[] =
    "Thank you for trying Warren quick tunnels. Doing so, without an account, is a quick way to "
    "experiment and try it out. However, be aware that these account-less tunnels have no uptime "
    "guarantee and are deleted when idle. For production use a named tunnel "
    "(warren tunnel create, route dns, run).";

/* The service's reason, from errors[0].message, else the HTTP status. */
static void service_error(json_t *root, int status, char *err, size_t errlen) {
  json_t *e0 = json_array_get(json_object_get(root, "errors"), 0);
  const char *msg = json_string_value(json_object_get(e0, "message"));
  if (msg)
    snprintf(err, errlen, "failed to request quick Tunnel: %s (HTTP %d)", msg, status);
  else
    snprintf(err, errlen, "failed to request quick Tunnel: the service answered HTTP %d", status);
}

/* Fills |cred| and |url| from the answer's result. 0 or -1 with |err|. */
static int parse_result(json_t *res, wr_credentials *cred, char *url, size_t urllen, char *err,
                        size_t errlen) {
  const char *id = json_string_value(json_object_get(res, "id"));
  const char *host = json_string_value(json_object_get(res, "hostname"));
  const char *acct = json_string_value(json_object_get(res, "account_tag"));
  const char *sec = json_string_value(json_object_get(res, "secret"));
  const char *u = json_string_value(json_object_get(res, "url"));
  memset(cred, 0, sizeof(*cred));
  if (!id || wr_uuid_parse(id, strlen(id), &cred->tunnel_id) != WR_OK) {
    snprintf(err, errlen, "failed to parse quick Tunnel ID");
    return -1;
  }
  cred->has_tunnel_id = 1;
  int n = sec ? wr_base64_decode(sec, strlen(sec), cred->secret, sizeof(cred->secret), 0) : -1;
  if (!host || !*host || !acct || strlen(acct) >= sizeof(cred->account_tag) || n <= 0) {
    snprintf(err, errlen, "failed to unmarshal quick Tunnel: missing or invalid hostname, "
                          "account_tag or secret");
    return -1;
  }
  cred->secret_len = (size_t)n;
  snprintf(cred->account_tag, sizeof(cred->account_tag), "%s", acct);
  if (u && (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0))
    snprintf(url, urllen, "%s", u);
  else if (strncmp(host, "https://", 8) == 0)
    snprintf(url, urllen, "%s", host);
  else
    snprintf(url, urllen, "https://%s", host);
  return 0;
}

int wr__quick_tunnel_request(const char *service, const char *ca_file, wr_credentials *cred,
                             char *url, size_t urllen, char *err, size_t errlen) {
  char target[2048], ua[64];
  size_t sl = strlen(service);
  while (sl && service[sl - 1] == '/') sl--;
  snprintf(target, sizeof(target), "%.*s/tunnel", (int)sl, service);
  snprintf(ua, sizeof(ua), "warren/%s", WR_VERSION);
  wr_http_header hdrs[] = {{"Content-Type", 12, "application/json", 16},
                           {"User-Agent", 10, ua, strlen(ua)}};
  wr_http_request req = {.method = "POST", .url = target, .headers = hdrs, .nheaders = 2,
                         .timeout_ms = QUICK_TIMEOUT_MS, .max_body = 64 * 1024, .ca_file = ca_file};
  wr_http_response resp;
  char why[1024];
  wr_info("%s", disclaimer);
  wr_info("Requesting new quick Tunnel on %.*s...", (int)sl, service);
  int rv = wr_http_do(&req, &resp, why, sizeof(why));
  if (rv != WR_OK) {
    snprintf(err, errlen, "failed to request quick Tunnel: %s", why);
    wr_http_response_free(&resp);
    return -1;
  }
  json_error_t je;
  json_t *root = json_loadb((const char *)resp.body, resp.body_len, 0, &je);
  int status = resp.status;
  wr_http_response_free(&resp);
  rv = -1;
  if (!json_is_object(root)) {
    snprintf(err, errlen, "failed to unmarshal quick Tunnel: the answer (HTTP %d) is not JSON", status);
  } else if (status != 200 || !json_is_true(json_object_get(root, "success"))) {
    service_error(root, status, err, errlen);
  } else {
    rv = parse_result(json_object_get(root, "result"), cred, url, urllen, err, errlen);
  }
  json_decref(root);
  return rv;
}

void wr__quick_tunnel_banner(const char *url) {
  static const char head[] =
      "Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):";
  size_t w = strlen(head) > strlen(url) ? strlen(head) : strlen(url);
  char line[512];
  size_t n = w + 4 < sizeof(line) - 3 ? w + 4 : sizeof(line) - 3;
  line[0] = '+';
  memset(line + 1, '-', n);
  line[n + 1] = '+';
  line[n + 2] = '\0';
  wr_info("%s", line);
  wr_info("|  %-*s  |", (int)w, head);
  wr_info("|  %-*s  |", (int)w, url);
  wr_info("%s", line);
}
