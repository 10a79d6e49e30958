/* Ingress rules (protocol.md 8.4), validated and matched as cloudflared
 * 2023.7.3 does (ingress/ingress.go, rule.go, config.go), plus warp-routing
 * and the local-configuration JSON sent with updateLocalConfiguration
 * (protocol.md 3.6).
 *
 * A wr_ingress is immutable once built, so the proxy can share it between
 * streams and a reload can build a new one and swap it in only on success.
 * Its structs are public for reading; only this module writes them. */
#ifndef WR_INGRESS_H
#define WR_INGRESS_H
#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/opts.h"
#include "lib/config.h"

/* cloudflared's defaults (ingress/config.go). */
#define WR_INGRESS_DEFAULT_CONNECT_TIMEOUT_NS (30LL * 1000000000LL)
#define WR_INGRESS_DEFAULT_TLS_TIMEOUT_NS (10LL * 1000000000LL)
#define WR_INGRESS_DEFAULT_TCP_KEEPALIVE_NS (30LL * 1000000000LL)
#define WR_INGRESS_DEFAULT_KEEPALIVE_TIMEOUT_NS (90LL * 1000000000LL)
#define WR_INGRESS_DEFAULT_KEEPALIVE_CONNECTIONS 100
#define WR_INGRESS_DEFAULT_PROXY_ADDRESS "127.0.0.1"
#define WR_WARP_DEFAULT_CONNECT_TIMEOUT_NS (5LL * 1000000000LL)
#define WR_WARP_DEFAULT_TCP_KEEPALIVE_NS (30LL * 1000000000LL)

#define WR_INGRESS_MAX_RULES 10000
#define WR_INGRESS_MAX_REGEX 4096 /* bytes of one path pattern */

/* One `ipRules` entry: prefix (normalised to its network), ports (sorted,
 * empty = all), allow. */
typedef struct wr_ip_rule {
  int family;         /* AF_INET or AF_INET6 */
  uint8_t addr[16];   /* network address, 4 or 16 bytes used */
  unsigned prefix_len;
  const char *cidr;   /* canonical "10.0.0.0/8" */
  const uint16_t *ports;
  size_t n_ports;
  int allow;
} wr_ip_rule;

typedef struct wr_access_config {
  int required;
  const char *team_name; /* "" if absent */
  const char *const *aud_tags;
  size_t n_aud_tags;
} wr_access_config;

/* Bits of wr_origin_request.set: which keys a YAML/JSON map (or a flag) gave. */
enum {
  WR_OR_CONNECT_TIMEOUT = 1u << 0,
  WR_OR_TLS_TIMEOUT = 1u << 1,
  WR_OR_TCP_KEEPALIVE = 1u << 2,
  WR_OR_NO_HAPPY_EYEBALLS = 1u << 3,
  WR_OR_KEEPALIVE_CONNECTIONS = 1u << 4,
  WR_OR_KEEPALIVE_TIMEOUT = 1u << 5,
  WR_OR_HTTP_HOST_HEADER = 1u << 6,
  WR_OR_ORIGIN_SERVER_NAME = 1u << 7,
  WR_OR_CA_POOL = 1u << 8,
  WR_OR_NO_TLS_VERIFY = 1u << 9,
  WR_OR_DISABLE_CHUNKED = 1u << 10,
  WR_OR_BASTION_MODE = 1u << 11,
  WR_OR_PROXY_ADDRESS = 1u << 12,
  WR_OR_PROXY_PORT = 1u << 13,
  WR_OR_PROXY_TYPE = 1u << 14,
  WR_OR_IP_RULES = 1u << 15,
  WR_OR_HTTP2_ORIGIN = 1u << 16,
  WR_OR_ACCESS = 1u << 17,
  WR_OR_PROXY_PROTOCOL = 1u << 18
};

/* originRequest: how the connector talks to an origin. In a rule, the
 * values are already merged (rule over global over cloudflared defaults);
 * strings are never NULL ("" when unset). */
typedef struct wr_origin_request {
  long long connect_timeout_ns;
  long long tls_timeout_ns;
  long long tcp_keepalive_ns;
  int no_happy_eyeballs;
  int keepalive_connections;
  long long keepalive_timeout_ns;
  const char *http_host_header;
  const char *origin_server_name;
  const char *ca_pool;
  int no_tls_verify;
  int disable_chunked_encoding;
  int bastion_mode;
  const char *proxy_address;
  uint16_t proxy_port;
  const char *proxy_type;
  const wr_ip_rule *ip_rules;
  size_t n_ip_rules;
  int http2_origin;
  wr_access_config access;
  int proxy_protocol; /* PROXY header to stream origins: 0 none, 1 v1, 2 v2 (not in cloudflared) */
  uint32_t set; /* WR_OR_* keys given explicitly (in the rule or the global block) */
} wr_origin_request;

typedef enum wr_service_kind {
  WR_SVC_HTTP = 0,    /* http://, https://, ws:// (as http), wss:// (as https) */
  WR_SVC_UNIX,        /* unix:/path (http) or unix+tls:/path (https) */
  WR_SVC_HTTP_STATUS, /* http_status:NNN */
  WR_SVC_HELLO_WORLD, /* built-in hello world server */
  WR_SVC_STREAM,      /* tcp/ssh/rdp/smb/... : TCP over WebSocket to host:port */
  WR_SVC_BASTION,     /* TCP over WebSocket to Cf-Access-Jump-Destination */
  WR_SVC_SOCKS_PROXY  /* SOCKS5 over WebSocket, policy from ipRules */
} wr_service_kind;

typedef struct wr_service {
  wr_service_kind kind;
  const char *display; /* cloudflared's String(): what `ingress rule` and JSON show */
  const char *scheme;  /* HTTP/UNIX: "http" or "https"; STREAM: as written */
  const char *host;    /* HTTP/STREAM: host without IPv6 brackets */
  const char *authority; /* HTTP/STREAM: host[:port] as it goes on the wire */
  uint16_t port;       /* HTTP: explicit or 80/443; STREAM: explicit or default */
  const char *path;    /* UNIX: socket path */
  int tls;             /* https, wss, unix+tls */
  int status;          /* HTTP_STATUS */
} wr_service;

typedef struct wr_ingress_rule {
  const char *hostname;  /* NULL when the rule has none */
  const char *punycode;  /* ASCII form of an IDN hostname, else NULL */
  const char *path;      /* regex source, NULL when none */
  regex_t *path_re;      /* compiled path, NULL when none */
  wr_service service;
  wr_origin_request origin; /* merged */
  unsigned line;            /* where the rule starts in the config (0: none) */
} wr_ingress_rule;

typedef struct wr_warp_routing {
  int enabled;
  long long connect_timeout_ns;
  long long tcp_keepalive_ns;
  uint32_t set; /* bit 0: connectTimeout given, bit 1: tcpKeepAlive given */
  int proxy_protocol; /* proxyProtocol: 0 none, 1 v1, 2 v2 (not in cloudflared) */
} wr_warp_routing;

typedef struct wr_ingress {
  wr_ingress_rule *rules;
  size_t n_rules;
  wr_origin_request defaults; /* global originRequest with defaults filled */
  wr_warp_routing warp;
  int from_cli; /* the rules came from --hello-world/--url/--unix-socket or the 503 default */
  wr_arena arena;
} wr_ingress;

/* The cloudflared messages callers may want to compare against. */
#define WR_INGRESS_ERR_NO_RULES "The config file doesn't contain any ingress rules"
#define WR_INGRESS_ERR_URL_WITH_INGRESS \
  "You can't set the --url flag (or $TUNNEL_URL) when using multiple-origin ingress rules"
#define WR_INGRESS_WARN_NO_RULES_CLI                                                          \
  "No ingress rules were defined in provided config (if any) nor from the cli, warren " \
  "will return 503 for all incoming HTTP requests"

/* Validates cfg->ingress with cfg->origin_request as global defaults, and
 * reads cfg->warp_routing, like ParseIngress. Errors come as
 * "file:line: keypath: reason", e.g.
 *   config.yml:7: ingress[1].service: unknown scheme "htp"
 *   config.yml:9: ingress[2]: The last ingress rule must match all URLs (...)
 * Unknown keys become warnings in cfg->warnings. Returns 0, WR_ERR_NOTFOUND
 * when the config has no (or an empty) ingress list (message
 * WR_INGRESS_ERR_NO_RULES), or WR_ERR_CONFIG. */
int wr_ingress_parse(wr_config *cfg, wr_ingress **out, char *err, size_t errlen);

/* The single catch-all rule cloudflared builds without config ingress:
 * --hello-world, then --bastion, --url, --unix-socket (the first one set),
 * else http_status:503. originRequest comes from the --http-host-header,
 * --origin-server-name, --origin-ca-pool, --no-tls-verify, ... flags that
 * |opts| knows. Returns 0 or WR_ERR_CONFIG (a bad --url). */
int wr_ingress_from_cli(const wr_opts *opts, wr_ingress **out, char *err, size_t errlen);

/* What `tunnel run` uses (ParseIngressFromConfigAndCLI): the config's rules
 * when it has any (then --url is an error), else wr_ingress_from_cli. |cfg|
 * may be NULL. Logs the "no ingress rules" warning unless --token is set,
 * and logs warnings this call adds to cfg->warnings. */
int wr_ingress_load(wr_config *cfg, const wr_opts *opts, wr_ingress **out, char *err,
                    size_t errlen);

void wr_ingress_free(wr_ingress *ing);

/* The index of the first rule matching |host| and |path|: hostnames compare
 * case-insensitively (a rule "*.example.com" matches any name ending in
 * ".example.com"), the request host's ":port" is ignored, and the path
 * regex matches anywhere in |path|. Falls back to the last rule, as
 * cloudflared does. |path| may be NULL (""). Returns WR_ERR_NOTFOUND only
 * for an ingress without rules. */
int wr_ingress_match(const wr_ingress *ing, const char *host, const char *path);

/* cloudflared's Rule.MultiLineString(): "\thostname: ...\n\tpath: ...\n
 * \tservice: ..." (no trailing newline). Returns a new string. */
char *wr_ingress_rule_describe(const wr_ingress_rule *rule);

/* The local configuration JSON for updateLocalConfiguration: compact, keys
 * in Go's order, `__configuration_flags` from |opts| (may be NULL), the
 * rules with only non-default originRequest values, durations in seconds,
 * and warp-routing. Returns a malloc'd string (free()), never NULL. */
char *wr_ingress_local_config_json(const wr_ingress *ing, const wr_opts *opts);

/* Parses a YAML `warp-routing` map (NULL = defaults). */
int wr_warp_routing_parse(wr_config *cfg, const wr_ynode *node, wr_warp_routing *out, char *err,
                          size_t errlen);

/* Evaluates ipRules in order for a connection to |addr| (4 or 16 bytes per
 * |family|) and |port|; returns 1 to allow, 0 to deny. No matching rule
 * returns |default_allow| (socks-proxy uses 0, as cloudflared). */
int wr_ip_rules_allowed(const wr_ip_rule *rules, size_t n, int family, const uint8_t *addr,
                        uint16_t port, int default_allow);

#endif
