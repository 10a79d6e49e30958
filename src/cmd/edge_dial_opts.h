/* The flags of the client commands that reach a hostname through the edge
 * over HTTP(S) (`access tcp|rdp|ssh|smb`, `tail`) turned into the
 * connector's wr_edge_dial (connector/edge_dial.h). Command layer only. */
#ifndef WR_CMD_EDGE_DIAL_OPTS_H
#define WR_CMD_EDGE_DIAL_OPTS_H

#include "connector/edge_dial.h"
#include "lib/opts.h"

/* The dial settings from |o|: the hostname from the flag named |host_flag|
 * ("hostname", "management-hostname"), --edge-url, --cacert and
 * --no-tls-verify, on the command's |loop|, with User-Agent
 * "warren/<version>". The strings are borrowed from |o| (or static): valid
 * while |o| is. Cannot fail (an unset flag gives NULL / 0). */
wr_edge_dial wr__edge_dial_from_opts(uv_loop_t *loop, const wr_opts *o, const char *host_flag);

#endif
