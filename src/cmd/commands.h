/* Handlers behind the command tables in warren.c and warren-edge.c.
 * Each has the wr_cmd_fn signature and returns a WR_EXIT_* code. */
#ifndef WR_COMMANDS_H
#define WR_COMMANDS_H
#include "cmd/cli.h"

/* A command whose implementation has not landed yet: says so, exits 1. */

/* warren tunnel ingress validate | rule URL (tunnel_ingress.c) */
int wr_cmd_ingress_validate(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_ingress_rule(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);

/* warren tunnel run (tunnel_run.c) */
int wr_cmd_tunnel_run(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
/* warren tunnel --url|--hello-world without credentials: a quick tunnel
 * from --quick-service, then run (tunnel_run.c); other uses of bare
 * `warren tunnel` print its help. */
int wr_cmd_tunnel(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
/* The quick tunnel service's answer (tunnel_quick.c): POST SERVICE/tunnel,
 * credentials and the URL to print into |cred| and |url|. 0, or -1 with
 * |err|. */
struct wr_credentials;
int wr__quick_tunnel_request(const char *service, const char *ca_file, struct wr_credentials *cred,
                             char *url, size_t urllen, char *err, size_t errlen);
/* cloudflared's banner around |url|, as info lines. */
void wr__quick_tunnel_banner(const char *url);
/* warren tunnel ready (tunnel_ready.c) */
int wr_cmd_tunnel_ready(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);

/* warren tail (tail.c) */
int wr_cmd_tail(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);

/* warren tunnel diag (tunnel_diag.c) */
int wr_cmd_tunnel_diag(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);

/* warren tunnel management against the API (tunnel_mgmt.c, tunnel_login.c,
 * tunnel_route_ip.c; shared code in mgmt_int.h) */
int wr_cmd_tunnel_login(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_tunnel_create(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_tunnel_list(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_tunnel_info(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_tunnel_delete(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_tunnel_cleanup(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_tunnel_token(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_tunnel_route_dns(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_tunnel_route_lb(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_route_ip_add(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_route_ip_show(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_route_ip_delete(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_route_ip_get(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_vnet_add(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_vnet_list(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_vnet_delete(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_vnet_update(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);

/* warren service install | uninstall (service.c) */
int wr_cmd_service_install(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_service_uninstall(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);

/* warren access tcp | rdp | ssh | smb (access_tcp.c) */
int wr_cmd_access_tcp(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);

/* warren access login | token | curl (access_cli.c) */
int wr_cmd_access_login(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_access_token(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_access_curl(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
/* The stored, unexpired token of the Access application at |hostname|
 * (a name or URL; reached through |edge_url| when not NULL), malloc'd, or
 * NULL when there is none or no application. */
char *wr_cmd_access_stored_token(const char *hostname, const char *edge_url);

/* Opens |url| with xdg-open, detached, output discarded. Returns the
 * child's pid, or -1 if it could not be started (tunnel_login.c). */
int wr_cmd_open_browser(const char *url);

/* warren-edge cert add|list|delete, zone get|set (edge_tls.c) */
int wr_cmd_edge_cert_add(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_cert_list(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_cert_delete(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_zone_get(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_zone_set(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);

/* warren-edge local administration (edge_admin.c) */
int wr_cmd_edge_init(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_tunnel_create(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_tunnel_list(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_tunnel_delete(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_route_dns(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_audit(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
/* warren-edge store migrate (edge_store.c) */
int wr_cmd_edge_store_migrate(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
/* warren-edge user add | passwd | roll-token | list (edge_users.c) */
int wr_cmd_edge_user_add(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_user_passwd(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_user_roll_token(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_user_list(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
/* warren-edge device add | config | list | revoke | allow (edge_devices.c) */
int wr_cmd_edge_device_add(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_device_config(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_device_list(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_device_revoke(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
int wr_cmd_edge_device_allow(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);
/* warren-edge run (edge_run.c) */
int wr_cmd_edge_run(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv);

#endif
