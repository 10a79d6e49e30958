/* Placeholder until the edge store lands: replaced by the real handlers. */
#include "cmd/commands.h"
int wr_cmd_edge_init(const wr_cmd *c, wr_opts *o, int n, char **v) { return wr_cmd_not_yet(c, o, n, v); }
int wr_cmd_edge_tunnel_create(const wr_cmd *c, wr_opts *o, int n, char **v) { return wr_cmd_not_yet(c, o, n, v); }
int wr_cmd_edge_tunnel_list(const wr_cmd *c, wr_opts *o, int n, char **v) { return wr_cmd_not_yet(c, o, n, v); }
int wr_cmd_edge_tunnel_delete(const wr_cmd *c, wr_opts *o, int n, char **v) { return wr_cmd_not_yet(c, o, n, v); }
int wr_cmd_edge_route_dns(const wr_cmd *c, wr_opts *o, int n, char **v) { return wr_cmd_not_yet(c, o, n, v); }
int wr_cmd_edge_audit(const wr_cmd *c, wr_opts *o, int n, char **v) { return wr_cmd_not_yet(c, o, n, v); }
