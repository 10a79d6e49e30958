/* warren: the connector. Verbs, flags and environment variables follow
 * cloudflared 2023.7.3 so existing scripts and config files keep working. */
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>

#include "cmd/cli.h"
#include "lib/mem.h"
#include "cmd/commands.h"

/* Flags of `warren tunnel` and everything under it (cloudflared accepts them
 * on the tunnel level and on `run`). */
static const wr_flag tunnel_flags[] = {
    {"config", NULL, NULL, WR_FLAG_STRING, NULL,
     "Path to config.yml (default: first of ~/.cloudflared, ~/.cloudflare-warp, ~/cloudflare-warp, /etc/cloudflared, /usr/local/etc/cloudflared)"},
    {"origincert", NULL, "TUNNEL_ORIGIN_CERT", WR_FLAG_STRING, NULL,
     "Path to the cert.pem from `tunnel login` (management commands only)"},
    {"api-url", NULL, "TUNNEL_API_URL", WR_FLAG_STRING, NULL,
     "Base URL of the management API, e.g. http://127.0.0.1:8081/client/v4"},
    {"credentials-file", "cred-file", "TUNNEL_CRED_FILE", WR_FLAG_STRING, NULL,
     "Tunnel credentials JSON (AccountTag, TunnelSecret, TunnelID)"},
    {"credentials-contents", NULL, "TUNNEL_CRED_CONTENTS", WR_FLAG_STRING, NULL,
     "Tunnel credentials JSON given inline"},
    {"token", NULL, "TUNNEL_TOKEN", WR_FLAG_STRING, NULL, "Tunnel token (base64 JSON with a, t, s)"},
    {"edge", NULL, "TUNNEL_EDGE", WR_FLAG_LIST, NULL, "Edge address HOST:PORT (repeatable)"},
    {"cacert", NULL, "TUNNEL_CACERT", WR_FLAG_STRING, NULL, "CA bundle that signed the edge's certificate"},
    {"protocol", "p", "TUNNEL_TRANSPORT_PROTOCOL", WR_FLAG_STRING, "auto", "Transport: auto, quic or http2"},
    {"url", NULL, "TUNNEL_URL", WR_FLAG_STRING, NULL, "Origin URL when no ingress rules are configured"},
    {"hello-world", NULL, "TUNNEL_HELLO_WORLD", WR_FLAG_BOOL, NULL, "Serve the built-in hello-world page"},
    {"unix-socket", NULL, "TUNNEL_UNIX_SOCKET", WR_FLAG_STRING, NULL, "Origin HTTP server on a unix socket"},
    {"metrics", NULL, "TUNNEL_METRICS", WR_FLAG_STRING, "localhost:0", "Listen address for /metrics, /ready and /healthcheck"},
    {"loglevel", NULL, "TUNNEL_LOGLEVEL", WR_FLAG_STRING, "info", "Log level: debug, info, warn, error, fatal"},
    {"logfile", NULL, "TUNNEL_LOGFILE", WR_FLAG_STRING, NULL, "Write logs to this file"},
    {"grace-period", NULL, "TUNNEL_GRACE_PERIOD", WR_FLAG_DURATION, "30s", "Time to let in-flight requests finish on shutdown"},
    {"ha-connections", NULL, NULL, WR_FLAG_INT, "4", "Number of connections to the edge"},
    {"retries", NULL, "TUNNEL_RETRIES", WR_FLAG_INT, "5", "Retries before falling back to another protocol"},
    {"no-autoupdate", NULL, "NO_AUTOUPDATE", WR_FLAG_BOOL, NULL, "Accepted for compatibility; Warren never updates itself"},
    {"tag", NULL, "TUNNEL_TAG", WR_FLAG_LIST, NULL, "NAME=VALUE tag sent to the origin as Cf-Warp-Tag-NAME"},
    {"http-host-header", NULL, "TUNNEL_HTTP_HOST_HEADER", WR_FLAG_STRING, NULL, "Host header to send to the origin"},
    {"origin-server-name", NULL, "TUNNEL_ORIGIN_SERVER_NAME", WR_FLAG_STRING, NULL, "TLS server name for the origin"},
    {"origin-ca-pool", NULL, "TUNNEL_ORIGIN_CA_POOL", WR_FLAG_STRING, NULL, "CA pool for origin TLS"},
    {"no-tls-verify", NULL, "NO_TLS_VERIFY", WR_FLAG_BOOL, NULL, "Do not verify the origin's TLS certificate"},
    {"edge-ip-version", NULL, "TUNNEL_EDGE_IP_VERSION", WR_FLAG_STRING, "4", "Edge address family: 4, 6 or auto"},
    {"features", "F", "TUNNEL_FEATURES", WR_FLAG_LIST, NULL, "Extra feature names to announce"},
    {"label", NULL, NULL, WR_FLAG_STRING, NULL, "Connector label"},
    {"pidfile", NULL, "TUNNEL_PIDFILE", WR_FLAG_STRING, NULL, "Write the process ID here"},
    {"output", "o", NULL, WR_FLAG_STRING, NULL, "Output format for list/info: json or yaml"},
    {"bastion", NULL, "TUNNEL_BASTION", WR_FLAG_BOOL, NULL, "Run as a jump host (bastion) origin"},
    {"socks5", NULL, "TUNNEL_SOCKS", WR_FLAG_BOOL, NULL, "Serve a SOCKS5 proxy origin"},
    {"no-chunked-encoding", NULL, "TUNNEL_NO_CHUNKED_ENCODING", WR_FLAG_BOOL, NULL, "Send Content-Length instead of chunked bodies to the origin"},
    {"http2-origin", NULL, "TUNNEL_ORIGIN_ENABLE_HTTP2", WR_FLAG_BOOL, NULL, "Speak HTTP/2 to the origin"},
    {"proxy-connect-timeout", NULL, NULL, WR_FLAG_DURATION, "30s", "Origin dial timeout"},
    {"proxy-tls-timeout", NULL, NULL, WR_FLAG_DURATION, "10s", "Origin TLS handshake timeout"},
    {"proxy-tcp-keepalive", NULL, NULL, WR_FLAG_DURATION, "30s", "Origin TCP keep-alive period"},
    {"proxy-no-happy-eyeballs", NULL, NULL, WR_FLAG_BOOL, NULL, "Disable happy eyeballs for origin dials"},
    {"proxy-keepalive-connections", NULL, NULL, WR_FLAG_INT, "100", "Idle origin connections kept per origin"},
    {"proxy-keepalive-timeout", NULL, NULL, WR_FLAG_DURATION, "1m30s", "How long idle origin connections are kept"},
    {"proxy-address", NULL, NULL, WR_FLAG_STRING, "127.0.0.1", "Listen address of the local bastion/SOCKS proxy"},
    {"proxy-port", NULL, NULL, WR_FLAG_INT, "0", "Listen port of the local bastion/SOCKS proxy"},
    {"autoupdate-freq", NULL, NULL, WR_FLAG_DURATION, "24h", "Accepted for compatibility; Warren never updates itself"},
    {"edge-bind-address", NULL, "TUNNEL_EDGE_BIND_ADDRESS", WR_FLAG_STRING, NULL, "Local address to dial the edge from"},
    {"transport-loglevel", "proto-loglevel", "TUNNEL_PROTO_LOGLEVEL", WR_FLAG_STRING, "info", "Log level of the transport layer"},
    {"metrics-update-freq", NULL, "TUNNEL_METRICS_UPDATE_FREQ", WR_FLAG_DURATION, "5s", "How often metrics are refreshed"},
    {NULL},
};

static const wr_cmd ingress_cmds[] = {
    {"validate", NULL, "Validate the ingress configuration",
     "Checks the ingress rules of the config file (or --json) the way `tunnel run` would.",
     (const wr_flag[]){{"json", "j", "TUNNEL_INGRESS_VALIDATE_JSON", WR_FLAG_STRING, NULL, "Ingress rules as JSON instead of the config file"}, {NULL}},
     NULL, wr_cmd_ingress_validate},
    {"rule", "URL", "Check which ingress rule matches a URL",
     "Prints the number and content of the first rule that matches URL.", NULL, NULL, wr_cmd_ingress_rule},
    {NULL},
};

static const wr_cmd route_ip_cmds[] = {
    {"add", "CIDR TUNNEL", "Route a private network through a tunnel", NULL, NULL, NULL, wr_cmd_not_yet},
    {"show", NULL, "List private network routes", NULL, NULL, NULL, wr_cmd_not_yet},
    {"delete", "CIDR", "Delete a private network route", NULL, NULL, NULL, wr_cmd_not_yet},
    {NULL},
};

static const wr_cmd route_cmds[] = {
    {"dns", "TUNNEL HOSTNAME", "Route a hostname to a tunnel with a CNAME record",
     NULL, (const wr_flag[]){{"overwrite-dns", "f", "TUNNEL_FORCE_PROVISIONING_DNS", WR_FLAG_BOOL, NULL, "Replace an existing record"}, {NULL}},
     NULL, wr_cmd_not_yet},
    {"ip", NULL, "Private network routes", NULL, NULL, route_ip_cmds, NULL},
    {NULL},
};

static const wr_cmd tunnel_cmds[] = {
    {"run", "[TUNNEL]", "Proxy local services through the tunnel",
     "Connects to the edge and serves the ingress rules of config.yml, --url or --hello-world.",
     NULL, NULL, wr_cmd_tunnel_run},
    {"login", NULL, "Log in to the edge and save cert.pem", NULL, NULL, NULL, wr_cmd_not_yet},
    {"create", "NAME", "Create a tunnel and write its credentials file",
     NULL, (const wr_flag[]){{"credentials-file", "cred-file", NULL, WR_FLAG_STRING, NULL, "Where to write the credentials"},
                             {"secret", "s", "TUNNEL_CREATE_SECRET", WR_FLAG_STRING, NULL, "Base64 secret (at least 32 bytes)"},
                             {NULL}},
     NULL, wr_cmd_not_yet},
    {"list", NULL, "List tunnels", NULL, NULL, NULL, wr_cmd_not_yet},
    {"info", "TUNNEL", "Show a tunnel's connections", NULL, NULL, NULL, wr_cmd_not_yet},
    {"delete", "TUNNEL", "Delete a tunnel", NULL, NULL, NULL, wr_cmd_not_yet},
    {"cleanup", "TUNNEL", "Remove stale connections of a tunnel", NULL, NULL, NULL, wr_cmd_not_yet},
    {"token", "TUNNEL", "Print the token of a tunnel", NULL, NULL, NULL, wr_cmd_not_yet},
    {"route", NULL, "Route traffic to a tunnel", NULL, NULL, route_cmds, NULL},
    {"ingress", NULL, "Check the ingress rules of a config file", NULL, NULL, ingress_cmds, NULL},
    {NULL},
};

static const wr_cmd top_cmds[] = {
    {"tunnel", NULL, "Create, route and run tunnels",
     "Use `warren tunnel run` to connect to the edge; see `warren tunnel COMMAND --help`.",
     tunnel_flags, tunnel_cmds, NULL},
    {"access", NULL, "Reach private TCP services through the edge", NULL, NULL,
     (const wr_cmd[]){{"tcp", NULL, "Forward a local TCP port to a hostname", NULL,
                       (const wr_flag[]){{"hostname", NULL, "TUNNEL_SERVICE_HOSTNAME", WR_FLAG_STRING, NULL, "Hostname to reach"},
                                         {"url", NULL, "TUNNEL_SERVICE_URL", WR_FLAG_STRING, NULL, "Local address to listen on"},
                                         {NULL}},
                       NULL, wr_cmd_not_yet},
                      {NULL}},
     NULL},
    {NULL},
};

static const wr_cmd root = {
    "warren", NULL, "the Warren tunnel connector (a cloudflared drop-in)",
    "Warren connects a private network to a warren-edge (or any edge speaking "
    "Cloudflare Tunnel's protocol) with outbound-only connections.",
    NULL, top_cmds, NULL,
};

int main(int argc, char **argv) {
  /* jansson 2.14 can silently drop bytes when an allocation fails mid-string;
   * aborting on out-of-memory (the project's rule outside codecs) avoids it. */
  json_set_alloc_funcs(wr_xmalloc, free);
  /* A peer that goes away mid-write must be an error on that socket, not
   * the end of the process. */
  signal(SIGPIPE, SIG_IGN);
  return wr_cli_main(&root, "warren", argc, argv);
}
