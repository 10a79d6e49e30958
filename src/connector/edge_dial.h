/* Where a client command's WebSocket goes (`warren access tcp`,
 * `warren tail`): a request naming |hostname| (its Host), sent over
 * HTTP(S) either to that hostname itself or to another address (a
 * warren-edge's visitor port), with the TLS settings and User-Agent used
 * for it. One struct, embedded as |dial| in wr_access_tcp_config and
 * wr_mgmt_tail_config; src/cmd fills it from the flags both commands share
 * (cmd/edge_dial_opts.h).
 *
 * Plain data: no functions. The strings are borrowed; the *_start function
 * of the config it is in copies what it keeps. */
#ifndef WR_CONNECTOR_EDGE_DIAL_H
#define WR_CONNECTOR_EDGE_DIAL_H

#include <uv.h>

typedef struct wr_edge_dial {
  uv_loop_t *loop;
  /* The request's Host: "host", "host:port" or a URL "https://host[:port]/path"
   * (what each config accepts is said there). */
  const char *hostname;
  /* Where to connect instead: "http(s)://HOST:PORT" (also "ws(s)://...").
   * NULL or "": the hostname's own scheme, host and port. */
  const char *edge_url;
  const char *ca_file;    /* TLS trust anchors (NULL: system store) */
  int no_verify;          /* TLS: accept any certificate */
  const char *user_agent; /* NULL: "warren" */
} wr_edge_dial;

#endif
