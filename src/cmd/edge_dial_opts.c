/* See edge_dial_opts.h. */
#include "cmd/edge_dial_opts.h"

wr_edge_dial wr__edge_dial_from_opts(uv_loop_t *loop, const wr_opts *o, const char *host_flag) {
  wr_edge_dial d = {
      .loop = loop,
      .hostname = wr_opts_get(o, host_flag),
      .edge_url = wr_opts_get(o, "edge-url"),
      .ca_file = wr_opts_get(o, "cacert"),
      .no_verify = wr_opts_bool(o, "no-tls-verify"),
      .user_agent = "warren/" WR_VERSION,
  };
  return d;
}
