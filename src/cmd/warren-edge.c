/* warren-edge: the self-hosted edge that connectors dial and visitors reach. */
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "cmd/edge_int.h"

static const wr_flag data_dir_flag[] = {
    {"data-dir", NULL, "WARREN_EDGE_DATA_DIR", WR_FLAG_STRING, NULL, "Directory holding the store, CA and certificates", NULL},
    {"store", NULL, "WARREN_STORE", WR_FLAG_STRING, NULL,
     "Keep the store in PostgreSQL instead of DIR/warren.db: a libpq connection string, "
     "postgres://USER@HOST/DB or 'host=HOST dbname=DB'", NULL},
    {NULL},
};

static const wr_flag init_flags[] = {
    {"zone", NULL, "WARREN_EDGE_ZONE", WR_FLAG_STRING, NULL, "DNS zone the edge serves, e.g. example.test", NULL},
    {"email", NULL, NULL, WR_FLAG_STRING, NULL, "Admin user's e-mail (default admin@ZONE)", NULL},
    {NULL},
};

static const wr_flag run_flags[] = {
    {"config", NULL, NULL, WR_FLAG_STRING, NULL,
     "YAML file (edge.yml) whose keys are these flags' names, e.g. http-listen: 127.0.0.1:8080; "
     "the command line and environment win", NULL},
    {"tunnel-listen", NULL, NULL, WR_FLAG_STRING, "127.0.0.1:7844", "address for connectors: QUIC on UDP and HTTP/2 on TCP, same port", NULL},
    {"http-listen", NULL, NULL, WR_FLAG_STRING, "127.0.0.1:8080", "TCP address for visitors (HTTP)", NULL},
    {"https-listen", NULL, NULL, WR_FLAG_STRING, NULL,
     "TCP address for visitors over HTTPS (certificates by SNI: uploaded, else from --acme-directory, "
     "else issued by DATA_DIR/ca.pem); HTTP/3 is served on the same UDP port and advertised with Alt-Svc", NULL},
    {"no-http3", NULL, NULL, WR_FLAG_BOOL, NULL,
     "Serve --https-listen over TCP only (HTTP/1.1 and HTTP/2): no UDP listener, no Alt-Svc", NULL},
    {"acme-directory", NULL, "WARREN_EDGE_ACME_DIRECTORY", WR_FLAG_STRING, NULL,
     "ACME directory URL (e.g. https://acme-v02.api.letsencrypt.org/directory): every routed "
     "hostname gets a certificate from that CA for --https-listen, renewed before it expires", NULL},
    {"acme-email", NULL, "WARREN_EDGE_ACME_EMAIL", WR_FLAG_STRING, NULL,
     "Contact address of the ACME account", NULL},
    {"acme-ca-file", NULL, NULL, WR_FLAG_STRING, NULL,
     "PEM file of CAs that the ACME server's HTTPS certificate is checked against (default: the system's)", NULL},
    {"acme-challenge", NULL, NULL, WR_FLAG_STRING, "http-01",
     "http-01 (answered on --http-listen, which the CA must reach on port 80) or dns-01 "
     "(answered by --dns-listen, which must be the zone's authoritative server)", NULL},
    {"api-listen", NULL, NULL, WR_FLAG_STRING, "127.0.0.1:8081",
     "TCP address for the management API (/client/v4) and the login pages (/argotunnel); empty: none", NULL},
    {"dns-listen", NULL, NULL, WR_FLAG_STRING, NULL, "UDP/TCP address for the authoritative DNS server", NULL},
    {"peer-listen", NULL, NULL, WR_FLAG_STRING, NULL,
     "With a PostgreSQL --store shared by several edges: TCP address where the other edges forward "
     "visitors of tunnels connected here (TLS; both sides show a certificate of DATA_DIR/ca.pem)", NULL},
    {"peer-advertise", NULL, NULL, WR_FLAG_STRING, NULL,
     "HOST:PORT the other edges dial for --peer-listen (default: its bound address)", NULL},
    {"dns-update-server", NULL, "WARREN_EDGE_DNS_UPDATE_SERVER", WR_FLAG_STRING, NULL,
     "Primary DNS server (IP[:PORT]) to push route CNAMEs to with RFC 2136, for zones whose DNS lives elsewhere", NULL},
    {"dns-update-zone", NULL, "WARREN_EDGE_DNS_UPDATE_ZONE", WR_FLAG_STRING, NULL, "Zone to update at that server", NULL},
    {"dns-update-key", NULL, "WARREN_EDGE_DNS_UPDATE_KEY", WR_FLAG_STRING, NULL,
     "TSIG key as nsupdate -y takes it: [ALGORITHM:]NAME:BASE64SECRET (prefer the environment variable)", NULL},
    {"metrics", NULL, NULL, WR_FLAG_STRING, NULL,
     "TCP address (HOST:PORT) serving Prometheus /metrics, /ready and /healthcheck", NULL},
    {"tun", NULL, NULL, WR_FLAG_STRING, NULL,
     "Create TUN device NAME (needs CAP_NET_ADMIN) and route its packets through the tunnels by "
     "their IP routes (ICMP echo, UDP); add routes to it, e.g. ip route add 10.99.0.0/24 dev NAME", NULL},
    {"tun-account", NULL, NULL, WR_FLAG_STRING, NULL,
     "Account (ID or name) whose IP routes the TUN device's clients reach (default: the only account)", NULL},
    {"tun-vnet", NULL, NULL, WR_FLAG_STRING, NULL,
     "Virtual network (ID or name) of that account (default: the account's default network)", NULL},
    {"tun-mtu", NULL, NULL, WR_FLAG_INT, "1280", "MTU of the TUN device (1280-9000)", NULL},
    {"management-hostname", NULL, "TUNNEL_MANAGEMENT_HOSTNAME", WR_FLAG_STRING, WR_CLI_MANAGEMENT_HOSTNAME,
     "Visitors for this host reach a tunnel's connector management service (`tail`'s log stream), "
     "the tunnel named by their management token; empty: routed like any host", NULL},
    {"quick-tunnels-account", NULL, NULL, WR_FLAG_STRING, NULL,
     "Serve quick tunnels (POST /tunnel on --api-listen, what `warren tunnel --url` and "
     "`cloudflared tunnel --url` ask --quick-service for) in this account (ID or name); off unless set", NULL},
    {"quick-tunnels-zone", NULL, NULL, WR_FLAG_STRING, NULL,
     "Zone (name or ID) of the quick tunnels' random hostnames (default: the account's first zone)", NULL},
    {"quick-tunnels-per-source", NULL, NULL, WR_FLAG_INT, "5",
     "Quick tunnels one source address (an IPv6 /64) may create before it must wait (1 minute, doubling)", NULL},
    {"quick-tunnels-max", NULL, NULL, WR_FLAG_INT, "100", "Live quick tunnels at most", NULL},
    {"quick-tunnels-idle", NULL, NULL, WR_FLAG_DURATION, "5m",
     "Delete a quick tunnel and its hostname after this long without a connector", NULL},
    {"access-team-domain", NULL, "WARREN_EDGE_ACCESS_TEAM_DOMAIN", WR_FLAG_STRING, NULL,
     "URL of the Access team domain (scheme://host[:port]) that serves the sign-in pages "
     "(the API listener) and is the tokens' issuer (default: http://<--api-listen address>)", NULL},
    {"wireguard-listen", NULL, NULL, WR_FLAG_STRING, NULL,
     "UDP address (e.g. 0.0.0.0:51820) for WireGuard clients: the devices of `device add` reach "
     "their account's IP routes through the tunnels", NULL},
    {"inspect-requests", NULL, NULL, WR_FLAG_INT, "50",
     "Visitor requests per tunnel the dashboard's traffic inspector keeps (headers redacted of "
     "credentials); 0 turns the inspector off", NULL},
    {"inspect-bodies", NULL, NULL, WR_FLAG_BOOL, NULL,
     "Also keep the first 16 KiB of each request and response body in the inspector", NULL},
    {"loglevel", NULL, NULL, WR_FLAG_STRING, "info", WR_CLI_LOGLEVEL_HELP, NULL},
    {"max-half-open", NULL, NULL, WR_FLAG_INT, "1000",
     "Most QUIC handshakes in progress at once; more are dropped (Retry starts at a tenth)", NULL},
    {"max-half-open-per-source", NULL, NULL, WR_FLAG_INT, "50",
     "Most QUIC handshakes in progress from one IPv4 address or IPv6 /64 (Retry starts at a fifth)", NULL},
    {"max-visitor-conns", NULL, NULL, WR_FLAG_INT, "10000",
     "Visitor connections in all; the last 10 % only for sources holding fewer than 8", NULL},
    {"max-conns-per-source", NULL, NULL, WR_FLAG_INT, "256",
     "Visitor connections per source address (IPv6: per /64); 0 for no limit", NULL},
    {"requests-per-second-per-source", NULL, NULL, WR_FLAG_INT, "100",
     "Visitor requests per second per source, answered 429 above it; 0 for no limit", NULL},
    {"request-burst-per-source", NULL, NULL, WR_FLAG_INT, NULL,
     "Requests a source may send at once before its rate applies (default: twice the rate)", NULL},
    {NULL},
};

/* Flags several commands share. */
#define ACCOUNT_FLAG {"account", NULL, NULL, WR_FLAG_STRING, NULL, WR__EDGE_ACCOUNT_HELP, NULL}
#define ACCOUNT_FILTER_FLAG {"account", NULL, NULL, WR_FLAG_STRING, NULL, WR__EDGE_ACCOUNT_FILTER_HELP, NULL}
#define JSON_OUTPUT_FLAG {"output", "o", NULL, WR_FLAG_STRING, NULL, "json for machine-readable output", NULL}
#define PASSWORD_FILE_FLAG \
  {"password-file", NULL, NULL, WR_FLAG_STRING, NULL, "File whose first line is the password (- for stdin)", NULL}

static const wr_flag account_flags[] = {ACCOUNT_FLAG, {NULL}};
static const wr_flag json_output_flags[] = {JSON_OUTPUT_FLAG, {NULL}};

static const wr_cmd tunnel_cmds[] = {
    {"create", "NAME", "Create a tunnel and write its credentials JSON", NULL,
     (const wr_flag[]){{"out", NULL, NULL, WR_FLAG_STRING, NULL, "Credentials file to write (default DATA_DIR/<id>.json)", NULL},
                       ACCOUNT_FLAG,
                       {NULL}},
     NULL, wr_cmd_edge_tunnel_create},
    {"list", NULL, "List tunnels", NULL,
     (const wr_flag[]){JSON_OUTPUT_FLAG,
                       ACCOUNT_FLAG,
                       {NULL}},
     NULL, wr_cmd_edge_tunnel_list},
    {"delete", "NAME|ID", "Delete a tunnel (its routes go with it)", NULL,
     account_flags,
     NULL, wr_cmd_edge_tunnel_delete},
    {NULL},
};

static const wr_cmd route_cmds[] = {
    {"dns", "TUNNEL HOSTNAME", "Route a hostname of the zone to a tunnel", NULL,
     (const wr_flag[]){{"overwrite-dns", "f", NULL, WR_FLAG_BOOL, NULL, "Replace an existing route", NULL},
                       ACCOUNT_FLAG,
                       {NULL}},
     NULL, wr_cmd_edge_route_dns},
    {NULL},
};

static const wr_cmd user_cmds[] = {
    {"add", "EMAIL", "Add a user who can log in (or, with --service, a machine user with an API token)",
     "The password comes from --password-file, WARREN_EDGE_PASSWORD, or a prompt on the terminal. "
     "Service users have no password and cannot use the login page; they get an API token, "
     "printed once or written into a cert.pem with --out.",
     (const wr_flag[]){PASSWORD_FILE_FLAG,
                       {"service", NULL, NULL, WR_FLAG_BOOL, NULL, "A service user for automation (API token, no login)", NULL},
                       {"zone", NULL, NULL, WR_FLAG_STRING, NULL, "Service users: limit the token to this zone", NULL},
                       {"out", NULL, NULL, WR_FLAG_STRING, NULL, "Service users: write cert.pem with the token here", NULL},
                       ACCOUNT_FLAG,
                       {NULL}},
     NULL, wr_cmd_edge_user_add},
    {"passwd", "EMAIL", "Set a user's password", NULL,
     (const wr_flag[]){PASSWORD_FILE_FLAG,
                       {NULL}},
     NULL, wr_cmd_edge_user_passwd},
    {"roll-token", "EMAIL", "Revoke a user's API tokens and issue a new one",
     "cert.pem files holding the old tokens stop working; their users must log in again.",
     (const wr_flag[]){{"zone", NULL, NULL, WR_FLAG_STRING, NULL, "Limit the new token to this zone", NULL},
                       {"out", NULL, NULL, WR_FLAG_STRING, NULL, "Write cert.pem with the new token here (else print it)", NULL},
                       {NULL}},
     NULL, wr_cmd_edge_user_roll_token},
    {"list", NULL, "List users", NULL,
     (const wr_flag[]){JSON_OUTPUT_FLAG,
                       ACCOUNT_FILTER_FLAG,
                       {NULL}},
     NULL, wr_cmd_edge_user_list},
    {NULL},
};

#define DEVICE_ENDPOINT_HELP                                                                       \
  "HOST:PORT devices dial: the public address of the edge's WireGuard port (default: the first "  \
  "line of DATA_DIR/wireguard-endpoint)"
static const wr_cmd device_cmds[] = {
    {"add", "NAME", "Add a WireGuard device and print its wg-quick configuration",
     "Assigns the device an IPv4 address from 100.96.0.0/12 and an IPv6 address from the account's "
     "fd00::/8 /64, and prints a configuration for wg-quick or the WireGuard apps: the device's "
     "PrivateKey (generated here and stored nowhere; with --public-key the device keeps its own), "
     "its Address, the edge's PublicKey (DATA_DIR/wireguard.key, created if missing), the Endpoint, "
     "AllowedIPs = the IP routes of its virtual network that its policy allows, and "
     "PersistentKeepalive = 25. AllowedIPs is a snapshot: after adding routes, print it again with "
     "`device config`. The configuration goes to stdout, a summary to stderr.",
     (const wr_flag[]){{"public-key", NULL, NULL, WR_FLAG_STRING, NULL,
                        "The device's own public key (base64, `wg pubkey`); default: generate a key pair", NULL},
                       {"vnet", NULL, NULL, WR_FLAG_STRING, NULL,
                        "Virtual network (ID or name) whose routes it reaches (default: the account's default)", NULL},
                       {"allow", NULL, NULL, WR_FLAG_STRING, NULL,
                        "Policy: the CIDRs it may reach, comma-separated; a route is reachable when its "
                        "network lies inside one (default: every route of its virtual network)", NULL},
                       {"endpoint", NULL, NULL, WR_FLAG_STRING, NULL, DEVICE_ENDPOINT_HELP, NULL},
                       {"qr", NULL, NULL, WR_FLAG_BOOL, NULL,
                        "Print the configuration as a QR code (UTF-8 blocks, for a dark terminal) to scan "
                        "with the WireGuard mobile app", NULL},
                       ACCOUNT_FLAG,
                       {NULL}},
     NULL, wr_cmd_edge_device_add},
    {"config", "NAME|ID", "Print an active device's wg-quick configuration again (without its private key)",
     "AllowedIPs reflects the routes and policy as they are now.",
     (const wr_flag[]){{"endpoint", NULL, NULL, WR_FLAG_STRING, NULL, DEVICE_ENDPOINT_HELP, NULL},
                       {"qr", NULL, NULL, WR_FLAG_BOOL, NULL, "Print it as a QR code", NULL},
                       ACCOUNT_FLAG,
                       {NULL}},
     NULL, wr_cmd_edge_device_config},
    {"list", NULL, "List devices: addresses, created, revoked, last handshake, bytes received and sent",
     "Handshake and byte counts are what a running edge last recorded; revoked devices are listed too.",
     (const wr_flag[]){JSON_OUTPUT_FLAG,
                       {"active", NULL, NULL, WR_FLAG_BOOL, NULL, "Leave revoked devices out", NULL},
                       ACCOUNT_FILTER_FLAG,
                       {NULL}},
     NULL, wr_cmd_edge_device_list},
    {"revoke", "NAME|ID", "Revoke a device: its key is no longer accepted",
     "The device stays listed as revoked; its name and key may be used again.",
     account_flags,
     NULL, wr_cmd_edge_device_revoke},
    {"allow", "NAME|ID CIDR[,CIDR...]|all", "Set a device's policy: the networks it may reach",
     "A route is reachable when its network lies inside one of the CIDRs; \"all\" allows every IP "
     "route of the device's virtual network.",
     account_flags,
     NULL, wr_cmd_edge_device_allow},
    {NULL},
};

static const wr_cmd cert_cmds[] = {
    {"add", NULL, "Add a certificate the HTTPS front serves for its names (instead of one from the edge CA)",
     "The key must belong to the certificate; it is stored with mode 0600 under DATA_DIR/certs.",
     (const wr_flag[]){{"cert", NULL, NULL, WR_FLAG_STRING, NULL, "PEM certificate chain, leaf first", NULL},
                       {"key", NULL, NULL, WR_FLAG_STRING, NULL, "PEM private key of the leaf", NULL},
                       {NULL}},
     NULL, wr_cmd_edge_cert_add},
    {"list", NULL, "List uploaded certificates, then those obtained by ACME (ID \"acme\")", NULL,
     json_output_flags,
     NULL, wr_cmd_edge_cert_list},
    {"delete", "ID", "Delete an uploaded certificate", NULL, NULL, NULL, wr_cmd_edge_cert_delete},
    {NULL},
};

static const wr_cmd zone_cmds[] = {
    {"get", "ZONE", "Show a zone's HTTPS options", NULL,
     json_output_flags,
     NULL, wr_cmd_edge_zone_get},
    {"set", "ZONE", "Change a zone's HTTPS options (the ones given)", NULL,
     (const wr_flag[]){{"always-use-https", NULL, NULL, WR_FLAG_STRING, NULL, "on|off: redirect HTTP visitors to HTTPS (301)", NULL},
                       {"hsts", NULL, NULL, WR_FLAG_STRING, NULL, "on|off: send Strict-Transport-Security over HTTPS", NULL},
                       {"hsts-max-age", NULL, NULL, WR_FLAG_STRING, NULL, "HSTS max-age in seconds", NULL},
                       {"hsts-include-subdomains", NULL, NULL, WR_FLAG_STRING, NULL, "on|off: HSTS includeSubDomains", NULL},
                       {"hsts-preload", NULL, NULL, WR_FLAG_STRING, NULL, "on|off: HSTS preload", NULL},
                       {"hsts-nosniff", NULL, NULL, WR_FLAG_STRING, NULL, "on|off: X-Content-Type-Options: nosniff", NULL},
                       {"min-tls-version", NULL, NULL, WR_FLAG_STRING, NULL, "1.2 or 1.3", NULL},
                       JSON_OUTPUT_FLAG,
                       {NULL}},
     NULL, wr_cmd_edge_zone_set},
    {NULL},
};

static const wr_cmd top_cmds[] = {
    {"init", NULL, "Create a data directory: store, CAs, certificates and the admin's cert.pem",
     "Refuses to touch an existing data directory.", init_flags, NULL, wr_cmd_edge_init},
    {"run", NULL, "Serve connectors (QUIC), visitors (HTTP) and, as configured, the API, DNS and metrics",
     NULL, run_flags, NULL, wr_cmd_edge_run},
    {"tunnel", NULL, "Manage tunnels", NULL, NULL, tunnel_cmds, NULL},
    {"route", NULL, "Manage routes", NULL, NULL, route_cmds, NULL},
    {"user", NULL, "Manage users", NULL, NULL, user_cmds, NULL},
    {"device", NULL, "Manage WireGuard devices (laptops, phones) and their policies", NULL, NULL, device_cmds, NULL},
    {"cert", NULL, "Manage the certificates the HTTPS front serves", NULL, NULL, cert_cmds, NULL},
    {"zone", NULL, "Show and change per-zone HTTPS options", NULL, NULL, zone_cmds, NULL},
    {"audit", NULL, "Print the audit log", NULL,
     (const wr_flag[]){JSON_OUTPUT_FLAG,
                       {"limit", NULL, NULL, WR_FLAG_INT, "100", "Newest N entries", NULL},
                       ACCOUNT_FILTER_FLAG,
                       {NULL}},
     NULL, wr_cmd_edge_audit},
    {"store", NULL, "Move the store between backends", NULL, NULL,
     (const wr_cmd[]){{"migrate", NULL, "Copy a data directory's SQLite store into an empty PostgreSQL database",
                       "The SQLite file is only read; the edge then runs with --store DSN.",
                       (const wr_flag[]){{"from", NULL, NULL, WR_FLAG_STRING, NULL, "Data directory holding warren.db", NULL},
                                         {"to", NULL, NULL, WR_FLAG_STRING, NULL, "PostgreSQL connection string", NULL},
                                         {NULL}},
                       NULL, wr_cmd_edge_store_migrate},
                      {NULL}},
     NULL},
    {NULL},
};

static const wr_cmd root = {
    "warren-edge", NULL, "the Warren edge: connectors dial it, visitors reach it",
    NULL, data_dir_flag, top_cmds, NULL,
};

int main(int argc, char **argv) { return wr_cli_program_main(&root, "warren-edge", argc, argv); }
