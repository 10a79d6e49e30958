/* `warren tunnel ready`: cloudflared's readiness probe (its readyCommand).
 * GETs http://<--metrics>/ready and exits 0 on a 200; otherwise prints
 * cloudflared's message and exits 1:
 *   --metrics has to be provided
 *   Get "http://127.0.0.1:2000/ready": dial tcp 127.0.0.1:2000: connect: connection refused
 *   http://127.0.0.1:2000/ready endpoint returned status code 503
 *   {"status":503,"readyConnections":0,...}
 * --metrics counts when set on the command line, in the environment or in
 * the config file (cloudflared's IsSet after the config file is applied);
 * its default (localhost:0) does not. */
#include <stdio.h>
#include <string.h>

#include "cmd/commands.h"
#include "lib/config.h"
#include "lib/err.h"
#include "net/http_client.h"

#define READY_TIMEOUT_MS 5000u
#define READY_MAX_BODY 65536u

int wr_cmd_tunnel_ready(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  char err[1024], url[512];
  wr_config *cfg = NULL;
  (void)cmd;
  (void)argc;
  (void)argv;
  int rv = wr_config_load_opts(o, &cfg, err, sizeof(err));
  wr_config_free(cfg);
  if (rv != WR_OK && rv != WR_ERR_NOTFOUND) {
    fprintf(stderr, "%s\n", err);
    return WR_EXIT_FAIL;
  }
  const char *metrics = wr_opts_get(o, "metrics");
  if (!wr_opts_isset(o, "metrics") || !metrics) {
    fprintf(stderr, "--metrics has to be provided\n");
    return WR_EXIT_FAIL;
  }
  snprintf(url, sizeof(url), "http://%s/ready", metrics);
  wr_http_request req = {.method = "GET", .url = url, .timeout_ms = READY_TIMEOUT_MS,
                         .max_body = READY_MAX_BODY};
  wr_http_response resp;
  memset(&resp, 0, sizeof(resp));
  rv = wr_http_do(&req, &resp, err, sizeof(err));
  int code = WR_EXIT_OK;
  if (rv != WR_OK) {
    fprintf(stderr, "%s\n", err);
    code = WR_EXIT_FAIL;
  } else if (resp.status != 200) {
    fprintf(stderr, "%s endpoint returned status code %d\n%s\n", url, resp.status,
            (const char *)resp.body);
    code = WR_EXIT_FAIL;
  }
  wr_http_response_free(&resp);
  return code;
}
