/* warren: the connector. Verbs, flags and environment variables follow
 * cloudflared 2023.7.3 so existing scripts and config files keep working. */
#include "cmd/cli.h"
#include "cmd/commands.h"

/* Flags of `warren`, `warren tunnel` and everything under them: cloudflared
 * accepts its tunnel flags on the program itself (the packaged systemd unit
 * writes `cloudflared --no-autoupdate --config F tunnel run`), on `tunnel`
 * and, for the proxy flags, on `run`. Every flag of cloudflared 2023.7.3's
 * and current cloudflared's `tunnel` and `tunnel run` is here, hidden ones
 * too. Those with a no_effect reason (the last field) are accepted, their
 * help says "(accepted; no effect in warren)", and `tunnel run` logs one
 * warning for each one set (command line, environment or config file),
 * with the reason. */
#define NOOP_NOMGMT "warren's management service has no diagnostics endpoints"
#define NOOP_SSH "warren has no built-in SSH server"
#define NOOP_DNS "the DNS proxy was removed from cloudflared and is not in warren"
#define NOOP_LEGACY "a legacy (classic tunnel) setting, not used by named tunnels"
static const wr_flag tunnel_flags[] = {
    {"config", NULL, NULL, WR_FLAG_STRING, NULL,
     "Path to config.yml (default: first of ~/.cloudflared, ~/.cloudflare-warp, ~/cloudflare-warp, /etc/cloudflared, /usr/local/etc/cloudflared)", NULL},
    {"origincert", NULL, "TUNNEL_ORIGIN_CERT", WR_FLAG_STRING, NULL,
     "Path to the cert.pem from `tunnel login` (management commands only)", NULL},
    {"api-url", NULL, "TUNNEL_API_URL", WR_FLAG_STRING, NULL,
     "Base URL of the management API, e.g. http://127.0.0.1:8081/client/v4", NULL},
    {"credentials-file", "cred-file", "TUNNEL_CRED_FILE", WR_FLAG_STRING, NULL,
     "Tunnel credentials JSON (AccountTag, TunnelSecret, TunnelID)", NULL},
    {"credentials-contents", NULL, "TUNNEL_CRED_CONTENTS", WR_FLAG_STRING, NULL,
     "Tunnel credentials JSON given inline", NULL},
    {"token", NULL, "TUNNEL_TOKEN", WR_FLAG_STRING, NULL, "Tunnel token (base64 JSON with a, t, s)", NULL},
    {"token-file", NULL, "TUNNEL_TOKEN_FILE", WR_FLAG_STRING, NULL,
     "File holding the tunnel token (surrounding white space is ignored); --token wins", NULL},
    {"edge", NULL, "TUNNEL_EDGE", WR_FLAG_LIST, NULL, "Edge address HOST:PORT (repeatable)", NULL},
    {"cacert", NULL, "TUNNEL_CACERT", WR_FLAG_STRING, NULL, "CA bundle that signed the edge's certificate", NULL},
    {"protocol", "p", "TUNNEL_TRANSPORT_PROTOCOL", WR_FLAG_STRING, "auto", "Transport: auto, quic or http2", NULL},
    {"url", NULL, "TUNNEL_URL", WR_FLAG_STRING, NULL, "Origin URL when no ingress rules are configured", NULL},
    {"hello-world", NULL, "TUNNEL_HELLO_WORLD", WR_FLAG_BOOL, NULL, "Serve the built-in hello-world page", NULL},
    {"unix-socket", NULL, "TUNNEL_UNIX_SOCKET", WR_FLAG_STRING, NULL, "Origin HTTP server on a unix socket", NULL},
    {"metrics", NULL, "TUNNEL_METRICS", WR_FLAG_STRING, "localhost:0", "Listen address for /metrics, /ready and /healthcheck", NULL},
    {"loglevel", NULL, "TUNNEL_LOGLEVEL", WR_FLAG_STRING, "info", WR_CLI_LOGLEVEL_HELP, NULL},
    {"logfile", NULL, "TUNNEL_LOGFILE", WR_FLAG_STRING, NULL, "Also append the log to this file", NULL},
    {"log-directory", NULL, "TUNNEL_LOGDIRECTORY", WR_FLAG_STRING, NULL,
     "Also append the log to cloudflared.log in this directory (--logfile wins)", NULL},
    {"output", "o", "TUNNEL_LOG_OUTPUT,TUNNEL_MANAGEMENT_OUTPUT", WR_FLAG_STRING, NULL,
     "Log format of `tunnel run`: default or json (list and info: json or yaml)", NULL},
    {"log-format", NULL, NULL, WR_FLAG_STRING, NULL, "Same as --output for the log: default or json", NULL},
    {"trace-output", NULL, "TUNNEL_TRACE_OUTPUT", WR_FLAG_STRING, NULL, "Go runtime trace file (cloudflared)", "warren is not a Go program and writes no runtime trace"},
    {"grace-period", NULL, "TUNNEL_GRACE_PERIOD", WR_FLAG_DURATION, "30s", "Time to let in-flight requests finish on shutdown", NULL},
    {"ha-connections", NULL, NULL, WR_FLAG_INT, "4", "Number of connections to the edge", NULL},
    {"retries", NULL, "TUNNEL_RETRIES", WR_FLAG_INT, "5", "Failed quic dials before --protocol auto falls back to http2", NULL},
    {"max-edge-addr-retries", NULL, NULL, WR_FLAG_INT, "8", "Retries on edge addresses before falling back to another protocol", "warren falls back to http2 after --retries failed quic dials"},
    {"dial-edge-timeout", NULL, "DIAL_EDGE_TIMEOUT", WR_FLAG_DURATION, "15s", "Longest wait for the QUIC handshake with the edge", NULL},
    {"rpc-timeout", NULL, NULL, WR_FLAG_DURATION, "5s", "Longest wait for the edge to answer the registration RPC", NULL},
    {"write-stream-timeout", NULL, "TUNNEL_STREAM_WRITE_TIMEOUT", WR_FLAG_DURATION, "0s", "Write timeout towards origin and edge", "stream writes are bounded by flow control, not by a timer"},
    {"quic-disable-pmtu-discovery", NULL, "TUNNEL_DISABLE_QUIC_PMTU", WR_FLAG_BOOL, NULL, "Disable QUIC path MTU discovery", "path MTU discovery is not configurable in warren"},
    {"quic-connection-level-flow-control-limit", NULL, "TUNNEL_QUIC_CONN_LEVEL_FLOW_CONTROL_LIMIT", WR_FLAG_INT, NULL,
     "Largest QUIC connection receive window, bytes (warren's default 15 MiB)", NULL},
    {"quic-stream-level-flow-control-limit", NULL, "TUNNEL_QUIC_STREAM_LEVEL_FLOW_CONTROL_LIMIT", WR_FLAG_INT, NULL,
     "Largest QUIC stream receive window, bytes (warren's default 6 MiB)", NULL},
    {"no-autoupdate", NULL, "NO_AUTOUPDATE", WR_FLAG_BOOL, NULL, "Accepted for compatibility; Warren never updates itself", NULL},
    {"autoupdate-freq", NULL, NULL, WR_FLAG_DURATION, "24h", "Update check frequency (cloudflared)", "warren never updates itself"},
    {"is-autoupdated", NULL, NULL, WR_FLAG_BOOL, NULL, "Accepted for compatibility (set by cloudflared's updater)", NULL},
    {"no-prechecks", NULL, "TUNNEL_NO_PRECHECKS", WR_FLAG_BOOL, NULL, "Accepted for compatibility; warren runs no start-up pre-checks", NULL},
    {"tag", NULL, "TUNNEL_TAG", WR_FLAG_LIST, NULL, "NAME=VALUE tag sent to the origin as Cf-Warp-Tag-NAME (repeatable)", NULL},
    {"http-host-header", NULL, "TUNNEL_HTTP_HOST_HEADER", WR_FLAG_STRING, NULL, "Host header to send to the origin", NULL},
    {"origin-server-name", NULL, "TUNNEL_ORIGIN_SERVER_NAME", WR_FLAG_STRING, NULL, "TLS server name for the origin", NULL},
    {"origin-ca-pool", NULL, "TUNNEL_ORIGIN_CA_POOL", WR_FLAG_STRING, NULL, "CA pool for origin TLS", NULL},
    {"no-tls-verify", NULL, "NO_TLS_VERIFY", WR_FLAG_BOOL, NULL, "Do not verify the origin's TLS certificate", NULL},
    {"edge-ip-version", NULL, "TUNNEL_EDGE_IP_VERSION", WR_FLAG_STRING, "auto", "Edge address family for edge discovery (no --edge): 4, 6 or auto", NULL},
    {"edge-bind-address", NULL, "TUNNEL_EDGE_BIND_ADDRESS", WR_FLAG_STRING, NULL, "Local IP address the connections to the edge are made from", NULL},
    {"region", NULL, "TUNNEL_REGION", WR_FLAG_STRING, NULL, "Edge region for edge discovery (no --edge), e.g. us", NULL},
    {"features", "F", "TUNNEL_FEATURES", WR_FLAG_LIST, NULL, "Extra feature names to announce; support_datagram_v3_2 selects datagram v3 (only this flag selects it)", NULL},
    {"label", NULL, NULL, WR_FLAG_STRING, NULL, "Connector label the management service's /host_details reports (custom:LABEL)", NULL},
    {"pidfile", NULL, "TUNNEL_PIDFILE", WR_FLAG_STRING, NULL, "Write the process ID here", NULL},
    {"max-fetch-size", NULL, "TUNNEL_MAX_FETCH_SIZE", WR_FLAG_INT, NULL, "Most results to fetch per list call (per_page)", NULL},
    {"bastion", NULL, "TUNNEL_BASTION", WR_FLAG_BOOL, NULL, "Run as a jump host (bastion) origin", NULL},
    {"socks5", NULL, "TUNNEL_SOCKS", WR_FLAG_BOOL, NULL, "Serve a SOCKS5 proxy origin", NULL},
    {"no-chunked-encoding", NULL, "TUNNEL_NO_CHUNKED_ENCODING", WR_FLAG_BOOL, NULL, "Send Content-Length instead of chunked bodies to the origin", "warren's origin client always streams bodies of unknown length chunked"},
    {"http2-origin", NULL, "TUNNEL_ORIGIN_ENABLE_HTTP2", WR_FLAG_BOOL, NULL, "Speak HTTP/2 to TLS origins that offer it (ALPN h2; originRequest.http2Origin)", NULL},
    {"proxy-connect-timeout", NULL, NULL, WR_FLAG_DURATION, "30s", "Origin dial timeout", NULL},
    {"proxy-tls-timeout", NULL, NULL, WR_FLAG_DURATION, "10s", "Origin TLS handshake timeout", NULL},
    {"proxy-tcp-keepalive", NULL, NULL, WR_FLAG_DURATION, "30s", "Origin TCP keep-alive period", NULL},
    {"proxy-no-happy-eyeballs", NULL, NULL, WR_FLAG_BOOL, NULL, "Disable happy eyeballs for origin dials", NULL},
    {"proxy-keepalive-connections", NULL, NULL, WR_FLAG_INT, "100", "Idle origin connections kept per origin", NULL},
    {"proxy-keepalive-timeout", NULL, NULL, WR_FLAG_DURATION, "1m30s", "How long idle origin connections are kept", NULL},
    {"proxy-connection-timeout", NULL, NULL, WR_FLAG_DURATION, "1m30s", "Deprecated in cloudflared; no effect there either", NULL},
    {"proxy-expect-continue-timeout", NULL, NULL, WR_FLAG_DURATION, "1m30s", "Deprecated in cloudflared; no effect there either", NULL},
    {"proxy-address", NULL, "TUNNEL_PROXY_ADDRESS", WR_FLAG_STRING, "127.0.0.1", "Listen address of the local bastion/SOCKS proxy", NULL},
    {"proxy-port", NULL, "TUNNEL_PROXY_PORT", WR_FLAG_INT, "0", "Listen port of the local bastion/SOCKS proxy", NULL},
    {"transport-loglevel", "proto-loglevel", "TUNNEL_PROTO_LOGLEVEL,TUNNEL_TRANSPORT_LOGLEVEL", WR_FLAG_STRING, "info", "Log level of the transport layer", "warren has one log level, --loglevel"},
    {"metrics-update-freq", NULL, "TUNNEL_METRICS_UPDATE_FREQ", WR_FLAG_DURATION, "5s", "How often metrics are refreshed", "warren computes metrics when they are scraped"},
    {"post-quantum", "pq", "TUNNEL_POST_QUANTUM", WR_FLAG_BOOL, NULL, "Post-quantum key agreement with the edge (cloudflared)", "warren's TLS has no post-quantum key agreement; connections use classical key agreement"},
    {"management-diagnostics", NULL, "TUNNEL_MANAGEMENT_DIAGNOSTICS", WR_FLAG_BOOL, NULL, "Diagnostics over the management service (cloudflared)", NOOP_NOMGMT},
    {"management-hostname", NULL, "TUNNEL_MANAGEMENT_HOSTNAME", WR_FLAG_STRING, WR_CLI_MANAGEMENT_HOSTNAME, "Hostname whose requests the management service answers (the log stream of `tail`); empty: no management service", NULL},
    {"service-op-ip", NULL, "TUNNEL_SERVICE_OP_IP", WR_FLAG_STRING, NULL, "Service operation address (cloudflared)", "warren's management service reports no IP address in /host_details"},
    {"max-active-flows", NULL, "TUNNEL_MAX_ACTIVE_FLOWS", WR_FLAG_INT, NULL, "Most private-network flows at once (cloudflared)", "no limit on private-network flows is configurable yet"},
    {"dns-resolver-addrs", NULL, "TUNNEL_DNS_RESOLVER_ADDRS", WR_FLAG_LIST, NULL, "DNS resolvers for private-network DNS (cloudflared)", "warren has no virtual DNS resolver service"},
    {"udp-unregister-session-timeout", NULL, NULL, WR_FLAG_DURATION, "5s", "UDP session unregister timeout (cloudflared 2023)", "not configurable in warren"},
    {"overwrite-dns", "f", "TUNNEL_FORCE_PROVISIONING_DNS", WR_FLAG_BOOL, NULL, "Replace an existing DNS record (tunnel route dns)", "only `tunnel route dns` uses it"},
    {"hostname", NULL, "TUNNEL_HOSTNAME", WR_FLAG_STRING, NULL, "Hostname of a classic tunnel", "ignored for named tunnels, as by cloudflared; route with `tunnel route dns`"},
    {"name", "n", "TUNNEL_NAME", WR_FLAG_STRING, NULL, "Create, route and run a tunnel in one go (cloudflared)", "warren has no one-step create+route+run; use tunnel create, route and run"},
    {"id", NULL, "TUNNEL_ID", WR_FLAG_STRING, NULL, "Legacy tunnel ID", NOOP_LEGACY},
    {"lb-pool", NULL, "TUNNEL_LB_POOL", WR_FLAG_STRING, NULL, "Legacy load balancer pool", NOOP_LEGACY},
    {"api-key", NULL, "TUNNEL_API_KEY", WR_FLAG_STRING, NULL, "Legacy API key", NOOP_LEGACY},
    {"api-email", NULL, "TUNNEL_API_EMAIL", WR_FLAG_STRING, NULL, "Legacy API e-mail", NOOP_LEGACY},
    {"api-ca-key", NULL, "TUNNEL_API_CA_KEY", WR_FLAG_STRING, NULL, "Legacy CA key", NOOP_LEGACY},
    {"heartbeat-interval", NULL, NULL, WR_FLAG_DURATION, "5s", "Heartbeat interval (h2mux)", NOOP_LEGACY},
    {"heartbeat-count", NULL, NULL, WR_FLAG_INT, "5", "Unacked heartbeats before closing (h2mux)", NOOP_LEGACY},
    {"compression-quality", NULL, "TUNNEL_COMPRESSION_LEVEL", WR_FLAG_INT, "0", "Cross-stream compression (h2mux)", NOOP_LEGACY},
    {"use-reconnect-token", NULL, "TUNNEL_USE_RECONNECT_TOKEN", WR_FLAG_BOOL, "true", "Reconnect tokens (h2mux)", NOOP_LEGACY},
    {"stdin-control", NULL, "STDIN_CONTROL", WR_FLAG_BOOL, NULL, "Reconnect commands on stdin (cloudflared testing)", "warren reads no commands from stdin"},
    {"ui", NULL, NULL, WR_FLAG_BOOL, NULL, "Terminal UI (removed from cloudflared)", "warren has no terminal UI"},
    {"quick-service", NULL, NULL, WR_FLAG_STRING, "https://api.trycloudflare.com", "Quick tunnel service: `warren tunnel --url URL` without credentials asks SERVICE/tunnel for a throwaway tunnel (a warren-edge API listener run with --quick-tunnels-account)", NULL},
    {"local-ssh-port", NULL, "LOCAL_SSH_PORT", WR_FLAG_STRING, "2222", "Built-in SSH server port", NOOP_SSH},
    {"ssh-idle-timeout", NULL, "SSH_IDLE_TIMEOUT", WR_FLAG_DURATION, NULL, "SSH idle timeout", NOOP_SSH},
    {"ssh-max-timeout", NULL, "SSH_MAX_TIMEOUT", WR_FLAG_DURATION, NULL, "SSH session timeout", NOOP_SSH},
    {"bucket-name", NULL, "BUCKET_ID", WR_FLAG_STRING, NULL, "SSH log bucket", NOOP_SSH},
    {"region-name", NULL, "REGION_ID", WR_FLAG_STRING, NULL, "SSH log bucket region", NOOP_SSH},
    {"secret-id", NULL, "SECRET_ID", WR_FLAG_STRING, NULL, "SSH log uploader secret ID", NOOP_SSH},
    {"access-key-id", NULL, "ACCESS_CLIENT_ID", WR_FLAG_STRING, NULL, "SSH log uploader access key ID", NOOP_SSH},
    {"session-token", NULL, "SESSION_TOKEN_ID", WR_FLAG_STRING, NULL, "SSH log uploader session token", NOOP_SSH},
    {"s3-url-host", NULL, "S3_URL", WR_FLAG_STRING, NULL, "SSH log S3 host", NOOP_SSH},
    {"host-key-path", NULL, "HOST_KEY_PATH", WR_FLAG_STRING, NULL, "SSH host key directory", NOOP_SSH},
    {"ssh-server", NULL, "TUNNEL_SSH_SERVER", WR_FLAG_BOOL, NULL, "Run the built-in SSH server", NOOP_SSH},
    {"proxy-dns", NULL, "TUNNEL_DNS", WR_FLAG_BOOL, NULL, "DNS-over-HTTPS proxy (removed)", NOOP_DNS},
    {"proxy-dns-port", NULL, "TUNNEL_DNS_PORT", WR_FLAG_INT, "53", "DNS proxy port (removed)", NOOP_DNS},
    {"proxy-dns-address", NULL, "TUNNEL_DNS_ADDRESS", WR_FLAG_STRING, "localhost", "DNS proxy address (removed)", NOOP_DNS},
    {"proxy-dns-upstream", NULL, "TUNNEL_DNS_UPSTREAM", WR_FLAG_LIST, NULL, "DNS proxy upstreams (removed)", NOOP_DNS},
    {"proxy-dns-max-upstream-conns", NULL, "TUNNEL_DNS_MAX_UPSTREAM_CONNS", WR_FLAG_INT, "5", "DNS proxy connections (removed)", NOOP_DNS},
    {"proxy-dns-bootstrap", NULL, "TUNNEL_DNS_BOOTSTRAP", WR_FLAG_LIST, NULL, "DNS proxy bootstrap (removed)", NOOP_DNS},
    {"icmpv4-src", NULL, "TUNNEL_ICMPV4_SRC", WR_FLAG_STRING, NULL, "Source address to send/receive ICMPv4 messages. If not provided, the local address picked for a route to 192.168.0.1, or 0.0.0.0", NULL},
    {"icmpv6-src", NULL, "TUNNEL_ICMPV6_SRC", WR_FLAG_STRING, NULL, "Source address (ADDR or ADDR%INTERFACE) to send/receive ICMPv6 messages. If not provided, an IPv6 address of the interface holding the ICMPv4 source, else of any interface, else ::", NULL},
    {NULL},
};

/* `tunnel list` and `tunnel info` print as --output says; their own flag
 * shadows the tunnel-level --output (the log format), as in cloudflared. */
#define OUTPUT_FLAG {"output", "o", NULL, WR_FLAG_STRING, NULL, "Output format: json or yaml", NULL}
#define RECENTLY_DISCONNECTED_FLAG \
  {"show-recently-disconnected", "rd", NULL, WR_FLAG_BOOL, NULL, "Include connections that have recently disconnected in the list", NULL}

/* How `access tcp` and `tail` trust the edge they reach over HTTPS. */
#define EDGE_TLS_FLAGS \
  {"cacert", NULL, NULL, WR_FLAG_STRING, NULL, "CA bundle that signed the edge's HTTPS certificate", NULL}, \
  {"no-tls-verify", NULL, NULL, WR_FLAG_BOOL, NULL, "Do not verify the edge's HTTPS certificate", NULL}

static const wr_cmd ingress_cmds[] = {
    {"validate", NULL, "Validate the ingress configuration",
     "Checks the ingress rules of the config file (or --json) the way `tunnel run` would.",
     (const wr_flag[]){{"json", "j", "TUNNEL_INGRESS_VALIDATE_JSON", WR_FLAG_STRING, NULL, "Ingress rules as JSON instead of the config file", NULL}, {NULL}},
     NULL, wr_cmd_ingress_validate},
    {"rule", "URL", "Check which ingress rule matches a URL",
     "Prints the number and content of the first rule that matches URL.", NULL, NULL, wr_cmd_ingress_rule},
    {NULL},
};

static const wr_flag vnet_flag[] = {
    {"vnet", "vn", NULL, WR_FLAG_STRING, NULL, "The ID or name of the virtual network the route belongs to", NULL},
    {NULL},
};

static const wr_flag route_ip_show_flags[] = {
    {"filter-is-deleted", NULL, NULL, WR_FLAG_BOOL, NULL, "If false (default), only show non-deleted routes. If true, only show deleted routes.", NULL},
    {"filter-tunnel-id", NULL, NULL, WR_FLAG_STRING, NULL, "Show only routes with the given tunnel ID.", NULL},
    {"filter-network-is-subset-of", "nsub", NULL, WR_FLAG_STRING, NULL, "Show only routes whose network is a subset of the given network.", NULL},
    {"filter-network-is-superset-of", "nsup", NULL, WR_FLAG_STRING, NULL, "Show only routes whose network is a superset of the given network.", NULL},
    {"filter-comment-is", NULL, NULL, WR_FLAG_STRING, NULL, "Show only routes with this comment.", NULL},
    {"filter-vnet-id", NULL, NULL, WR_FLAG_STRING, NULL, "Show only routes that are attached to the given virtual network ID.", NULL},
    {NULL},
};

static const wr_cmd route_ip_cmds[] = {
    {"add", "CIDR TUNNEL [COMMENT]", "Add a new network to the routing table reachable via a Tunnel", NULL,
     vnet_flag, NULL, wr_cmd_route_ip_add},
    {"show", NULL, "Show the routing table (also: list)", NULL, route_ip_show_flags, NULL, wr_cmd_route_ip_show},
    {"list", NULL, "Show the routing table (same as show)", NULL, route_ip_show_flags, NULL, wr_cmd_route_ip_show},
    {"delete", "CIDR", "Delete a row from the private routing table", NULL, vnet_flag, NULL, wr_cmd_route_ip_delete},
    {"get", "IP", "Check which row of the routing table matches an IP", NULL, vnet_flag, NULL, wr_cmd_route_ip_get},
    {NULL},
};

static const wr_cmd vnet_cmds[] = {
    {"add", "NAME [COMMENT]", "Add a new virtual network to which IP routes can be attached", NULL,
     (const wr_flag[]){{"default", "d", NULL, WR_FLAG_BOOL, NULL, "Make it the account's default virtual network", NULL}, {NULL}},
     NULL, wr_cmd_vnet_add},
    {"list", NULL, "List the virtual networks", NULL,
     (const wr_flag[]){{"id", NULL, NULL, WR_FLAG_STRING, NULL, "List virtual networks with the given ID", NULL},
                       {"name", NULL, NULL, WR_FLAG_STRING, NULL, "List virtual networks with the given NAME", NULL},
                       {"is-default", NULL, NULL, WR_FLAG_BOOL, NULL, "Only the default (true) or only the others (false)", NULL},
                       {"show-deleted", NULL, NULL, WR_FLAG_BOOL, NULL, "Show deleted virtual networks instead", NULL},
                       {NULL}},
     NULL, wr_cmd_vnet_list},
    {"delete", "VIRTUAL_NETWORK", "Delete a virtual network (by ID or name)", NULL,
     (const wr_flag[]){{"force", "f", NULL, WR_FLAG_BOOL, NULL, "Delete even if IP routes use it (they go too)", NULL}, {NULL}},
     NULL, wr_cmd_vnet_delete},
    {"update", "VIRTUAL_NETWORK", "Update a virtual network (by ID or name)", NULL,
     (const wr_flag[]){{"name", "n", NULL, WR_FLAG_STRING, NULL, "The new name", NULL},
                       {"comment", "c", NULL, WR_FLAG_STRING, NULL, "The new comment", NULL},
                       {"default", "d", NULL, WR_FLAG_BOOL, NULL, "Make it the account's default virtual network", NULL},
                       {NULL}},
     NULL, wr_cmd_vnet_update},
    {NULL},
};

static const wr_cmd route_cmds[] = {
    {"dns", "TUNNEL HOSTNAME", "Route a hostname to a tunnel with a CNAME record",
     NULL, (const wr_flag[]){{"overwrite-dns", "f", "TUNNEL_FORCE_PROVISIONING_DNS", WR_FLAG_BOOL, NULL, "Replace an existing record", NULL}, {NULL}},
     NULL, wr_cmd_tunnel_route_dns},
    {"lb", "TUNNEL HOSTNAME LB-POOL", "Use the tunnel as a load balancer origin", NULL, NULL, NULL, wr_cmd_tunnel_route_lb},
    {"ip", NULL, "Private network routes", NULL, NULL, route_ip_cmds, NULL},
    {NULL},
};

static const wr_cmd tunnel_cmds[] = {
    {"run", "[TUNNEL]", "Proxy local services through the tunnel",
     "Connects to the edge and serves the ingress rules of config.yml, --url or --hello-world. "
     "SIGHUP, or a change to the config file, reloads the ingress rules and their "
     "originRequest settings without dropping connections or requests in flight; a config "
     "that does not validate is refused (file, line and key in the log) and the old rules "
     "keep serving.",
     NULL, NULL, wr_cmd_tunnel_run},
    {"ready", NULL, "Call /ready endpoint and return proper exit code",
     "Exits 0 when the /ready endpoint of the connector's --metrics server answers 200, "
     "else prints why and exits 1. --metrics must be given (flag, environment or config file).",
     NULL, NULL, wr_cmd_tunnel_ready},
    {"diag", NULL, "Collect diagnostics for a bug report into one .tar.gz",
     "Writes version, the options in effect, the config file and credentials (secrets "
     "redacted), the tail of the log file (--logfile or --log-directory), /metrics and /ready "
     "of the connector's --metrics server, and system facts (kernel, OS release, CPUs, memory) "
     "to warren-diag-TIME.tar.gz in the current directory (or --diag-file).",
     (const wr_flag[]){{"diag-file", NULL, NULL, WR_FLAG_STRING, NULL, "Archive to write (default: warren-diag-TIME.tar.gz)", NULL},
                       {"no-diag-logs", NULL, NULL, WR_FLAG_BOOL, NULL, "Leave out the log file", NULL},
                       {"no-diag-metrics", NULL, NULL, WR_FLAG_BOOL, NULL, "Leave out /metrics and /ready", NULL},
                       {"no-diag-system", NULL, NULL, WR_FLAG_BOOL, NULL, "Leave out the system facts", NULL},
                       {NULL}},
     NULL, wr_cmd_tunnel_diag},
    {"login", NULL, "Log in to the edge and save cert.pem",
     "Prints (and tries to open) the login page, then waits for the edge to hand over cert.pem, "
     "which goes to ~/.cloudflared/cert.pem. With --api-url pointing at a warren-edge, its login "
     "page is used.",
     (const wr_flag[]){{"loginURL", NULL, NULL, WR_FLAG_STRING, NULL, "Login page (default: the --api-url edge's /argotunnel, else https://dash.cloudflare.com/argotunnel)", NULL},
                       {"callbackURL", NULL, NULL, WR_FLAG_STRING, NULL, "Where the certificate is fetched (default: the edge's /argotunnel/transfer/, else https://login.cloudflareaccess.org/)", NULL},
                       {NULL}},
     NULL, wr_cmd_tunnel_login},
    {"create", "NAME", "Create a tunnel and write its credentials file",
     NULL, (const wr_flag[]){{"credentials-file", "cred-file", NULL, WR_FLAG_STRING, NULL, "Where to write the credentials", NULL},
                             {"secret", "s", "TUNNEL_CREATE_SECRET", WR_FLAG_STRING, NULL, "Base64 secret (at least 32 bytes)", NULL},
                             {NULL}},
     NULL, wr_cmd_tunnel_create},
    {"list", NULL, "List tunnels", NULL,
     (const wr_flag[]){OUTPUT_FLAG,
                       {"show-deleted", "d", NULL, WR_FLAG_BOOL, NULL, "Include deleted tunnels in the list", NULL},
                       {"name", "n", NULL, WR_FLAG_STRING, NULL, "List tunnels with the given NAME", NULL},
                       {"name-prefix", "np", NULL, WR_FLAG_STRING, NULL, "List tunnels that start with the given NAME prefix", NULL},
                       {"exclude-name-prefix", "enp", NULL, WR_FLAG_STRING, NULL, "List tunnels whose NAME does not start with the given prefix", NULL},
                       {"when", "w", NULL, WR_FLAG_STRING, NULL, "List tunnels that are active at the given TIME in RFC3339 format", NULL},
                       {"id", "i", NULL, WR_FLAG_STRING, NULL, "List tunnel by ID", NULL},
                       RECENTLY_DISCONNECTED_FLAG,
                       {"sort-by", NULL, "TUNNEL_LIST_SORT_BY", WR_FLAG_STRING, "name", "Sort by name, id, createdAt, deletedAt or numConnections", NULL},
                       {"invert-sort", NULL, "TUNNEL_LIST_INVERT_SORT", WR_FLAG_BOOL, NULL, "Inverts the sort order of the tunnel list", NULL},
                       {NULL}},
     NULL, wr_cmd_tunnel_list},
    {"info", "TUNNEL", "List details about the active connectors for a tunnel", NULL,
     (const wr_flag[]){OUTPUT_FLAG,
                       RECENTLY_DISCONNECTED_FLAG,
                       {"sort-by", NULL, "TUNNEL_INFO_SORT_BY", WR_FLAG_STRING, "createdAt", "Sort connectors by id, createdAt, numConnections or version", NULL},
                       {"invert-sort", NULL, "TUNNEL_INFO_INVERT_SORT", WR_FLAG_BOOL, NULL, "Inverts the sort order of the tunnel info", NULL},
                       {NULL}},
     NULL, wr_cmd_tunnel_info},
    {"delete", "TUNNEL...", "Delete tunnels by ID or name",
     "A tunnel with active connections is not deleted unless -f is given.",
     (const wr_flag[]){{"force", "f", "TUNNEL_RUN_FORCE_OVERWRITE", WR_FLAG_BOOL, NULL, "Clean up stale connections first and delete with them (and the tunnel's routes)", NULL},
                       {NULL}},
     NULL, wr_cmd_tunnel_delete},
    {"cleanup", "TUNNEL...", "Cleanup tunnel connections", NULL,
     (const wr_flag[]){{"connector-id", "c", "TUNNEL_CLEANUP_CONNECTOR", WR_FLAG_STRING, NULL, "Only the connections of this connector (see `warren tunnel info`)", NULL},
                       {NULL}},
     NULL, wr_cmd_tunnel_cleanup},
    {"token", "TUNNEL", "Fetch the token that runs a tunnel (by name or ID)",
     "With --cred-file PATH the credentials JSON is written there instead.", NULL, NULL, wr_cmd_tunnel_token},
    {"route", NULL, "Route traffic to a tunnel", NULL, NULL, route_cmds, NULL},
    {"vnet", NULL, "Virtual networks for private IP routes", NULL, NULL, vnet_cmds, NULL},
    {"ingress", NULL, "Check the ingress rules of a config file", NULL, NULL, ingress_cmds, NULL},
    {NULL},
};

/* cloudflared's `access tcp` flags (aliases as far as one per flag goes),
 * plus where to reach the edge and how to trust it. */
static const wr_flag access_tcp_flags[] = {
    {"hostname", "tunnel-host", "TUNNEL_SERVICE_HOSTNAME", WR_FLAG_STRING, NULL, "Hostname (or URL) of the application", NULL},
    {"url", "listener", "TUNNEL_SERVICE_URL", WR_FLAG_STRING, NULL, "Local address to listen on, e.g. 127.0.0.1:2222", NULL},
    {"destination", NULL, NULL, WR_FLAG_STRING, NULL, "Destination for a bastion origin (Cf-Access-Jump-Destination)", NULL},
    {"header", "H", NULL, WR_FLAG_LIST, NULL, "Extra request header \"Name: value\" (repeatable)", NULL},
    {"service-token-id", "id", "TUNNEL_SERVICE_TOKEN_ID", WR_FLAG_STRING, NULL, "Access service token ID (Cf-Access-Client-Id)", NULL},
    {"service-token-secret", "secret", "TUNNEL_SERVICE_TOKEN_SECRET", WR_FLAG_STRING, NULL, "Access service token secret (Cf-Access-Client-Secret)", NULL},
    {"edge-url", NULL, "WARREN_ACCESS_EDGE_URL", WR_FLAG_STRING, NULL, "Connect here instead of the hostname, e.g. http://127.0.0.1:8080 for a warren-edge", NULL},
    EDGE_TLS_FLAGS,
    {"loglevel", "log-level", NULL, WR_FLAG_STRING, "info", WR_CLI_LOGLEVEL_HELP, NULL},
    {NULL},
};

#define ACCESS_TCP(name, summary) \
  {name, NULL, summary, \
   "Without --service-token-id, the token `warren access login` stored for the hostname's Access " \
   "application (if any) is sent as Cf-Access-Token.", \
   access_tcp_flags, NULL, wr_cmd_access_tcp}
static const wr_flag access_login_flags[] = {
    {"edge-url", NULL, "WARREN_ACCESS_EDGE_URL", WR_FLAG_STRING, NULL, "Connect to this warren-edge visitor URL instead of the application's host (the Host stays the application's)", NULL},
    {NULL},
};

static const wr_flag access_token_flags[] = {
    {"app", NULL, NULL, WR_FLAG_STRING, NULL, "URL of the Access application", NULL},
    {"edge-url", NULL, "WARREN_ACCESS_EDGE_URL", WR_FLAG_STRING, NULL, "Connect to this warren-edge visitor URL instead of the application's host", NULL},
    {NULL},
};

static const wr_cmd access_cmds[] = {
    {"login", "URL", "Sign in to an Access application and store its token",
     "Finds the application (CF-Access-Aud, CF-Access-Domain), opens the browser at the application's "
     "/cdn-cgi/access/cli, and fetches the token from a warren-edge's hand-off "
     "(/cdn-cgi/access/transfer/). The token is stored as cloudflared stores it: "
     "~/.cloudflared/<app domain>-<aud>-token. A stored token the edge still accepts is reused.",
     access_login_flags, NULL, wr_cmd_access_login},
    {"token", NULL, "Print the stored token of an Access application (--app URL)",
     "Prints nothing and fails when there is no unexpired token; run access login first.",
     access_token_flags, NULL, wr_cmd_access_token},
    {"curl", "URL [CURL ARGS]", "Run curl with the application's token (Cf-Access-Token)",
     "The arguments go to curl as they are; the first must be the URL. --allow-request (or -ar) "
     "first runs curl without a token when there is none instead of signing in. "
     "WARREN_ACCESS_EDGE_URL reaches a warren-edge (curl gets --connect-to).",
     wr_cli_raw_args, NULL, wr_cmd_access_curl},
    ACCESS_TCP("tcp", "Forward a local TCP port to a hostname (TCP over WebSocket)"),
    ACCESS_TCP("rdp", "Same as access tcp"),
    ACCESS_TCP("ssh", "Same as access tcp"),
    ACCESS_TCP("smb", "Same as access tcp"),
    {NULL},
};

static const wr_cmd service_cmds[] = {
    {"install", "[TOKEN]", "Install warren as a system service (systemd)",
     "With TOKEN: writes it to /etc/warren/token and a unit running `warren --no-autoupdate "
     "tunnel run --token-file /etc/warren/token`. Without: copies the config file (--config or "
     "the default places; it must set tunnel: and credentials-file:) and the credentials into "
     "/etc/warren and writes a unit running `warren --no-autoupdate --config "
     "/etc/warren/config.yml tunnel run`. The unit goes to /etc/systemd/system/warren.service "
     "and is enabled and started when systemd runs; otherwise the command to run is printed.",
     NULL, NULL, wr_cmd_service_install},
    {"uninstall", NULL, "Uninstall the warren service",
     "Disables and stops warren.service, removes its unit and /etc/warren/token; the config and "
     "credentials in /etc/warren stay.",
     NULL, NULL, wr_cmd_service_uninstall},
    {NULL},
};

/* cloudflared's `tail` flags, plus where to reach the edge and how to trust it. */
static const wr_flag tail_flags[] = {
    {"event", NULL, "TUNNEL_MANAGEMENT_FILTER_EVENTS", WR_FLAG_LIST, NULL, "Only these event types: cloudflared, http, tcp, udp (repeatable; default: all)", NULL},
    {"level", NULL, "TUNNEL_MANAGEMENT_FILTER_LEVEL", WR_FLAG_STRING, "debug", "Lowest log level shown: debug, info, warn, error", NULL},
    {"sample", NULL, "TUNNEL_MANAGEMENT_FILTER_SAMPLE", WR_FLAG_STRING, "1", "Fraction of events shown (0.0 .. 1.0]", NULL},
    {"token", NULL, "TUNNEL_MANAGEMENT_TOKEN", WR_FLAG_STRING, NULL, "Management token for the tunnel (default: one from the API, --origincert and --api-url)", NULL},
    {"output", NULL, "TUNNEL_MANAGEMENT_OUTPUT", WR_FLAG_STRING, "default", "Output format of the events: default or json", NULL},
    {"management-hostname", NULL, "TUNNEL_MANAGEMENT_HOSTNAME", WR_FLAG_STRING, WR_CLI_MANAGEMENT_HOSTNAME, "The management hostname (Host of the request)", NULL},
    {"edge-url", NULL, "WARREN_TAIL_EDGE_URL", WR_FLAG_STRING, NULL, "Connect here instead of wss://MANAGEMENT-HOSTNAME, e.g. http://127.0.0.1:8080 for a warren-edge's visitor port", NULL},
    EDGE_TLS_FLAGS,
    {NULL},
};

static const wr_cmd top_cmds[] = {
    {"tunnel", NULL, "Create, route and run tunnels",
     "Use `warren tunnel run` to connect to the edge; see `warren tunnel COMMAND --help`. "
     "`warren tunnel --url URL` (or --hello-world) without credentials asks --quick-service for "
     "a quick tunnel, prints its public URL and serves URL through it.",
     tunnel_flags, tunnel_cmds, wr_cmd_tunnel},
    {"access", NULL, "Access applications: sign in, tokens, curl, and TCP services through the edge", NULL, NULL, access_cmds, NULL},
    {"tail", "[TUNNEL]", "Stream logs from a remote connector",
     "Asks the API (--origincert, --api-url) for a management token of TUNNEL (a name or ID), "
     "opens the log stream of one of its connectors through the edge and prints its log events "
     "as they come, filtered by --level, --event and --sample, until interrupted.",
     tail_flags, NULL, wr_cmd_tail},
    {"service", NULL, "Manages the warren system service", NULL, NULL, service_cmds, NULL},
    {NULL},
};

static const wr_cmd root = {
    "warren", NULL, "the Warren tunnel connector (a cloudflared drop-in)",
    "Warren connects a private network to a warren-edge (or any edge speaking "
    "Cloudflare Tunnel's protocol) with outbound-only connections. The tunnel "
    "flags are accepted here too, as cloudflared's packaged systemd unit writes "
    "them: `warren --no-autoupdate --config /etc/cloudflared/config.yml tunnel run`.",
    tunnel_flags, top_cmds, NULL,
};

int main(int argc, char **argv) { return wr_cli_program_main(&root, "warren", argc, argv); }
