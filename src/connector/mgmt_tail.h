/* The client end of the management log stream (`warren tail`, as
 * cloudflared 2023.7.3's tail command): a WebSocket to
 * wss://<management hostname>/logs?access_token=<token> (or to another
 * address with that Host, e.g. a warren-edge's visitor port), then
 * {"type":"start_streaming","filters":...} and "logs" events until either
 * side closes. A refusal before the upgrade is reported with the reasons
 * of its JSON body ({"errors":[{"code","message"}]}), as cloudflared's
 * tail prints them; 530 means no connector is reachable.
 *
 * Single-threaded on the caller's libuv loop. Out-of-memory aborts. */
#ifndef WR_CONNECTOR_MGMT_TAIL_H
#define WR_CONNECTOR_MGMT_TAIL_H
#include <stddef.h>

#include <uv.h>

#include "connector/edge_dial.h"
#include "proto/mgmt_event.h"

typedef struct wr_mgmt_tail wr_mgmt_tail;

typedef struct wr_mgmt_tail_config {
  /* |dial.hostname| is the management hostname (Host of the request; no
   * path). |dial.edge_url| NULL: wss to the hostname on port 443. */
  wr_edge_dial dial;
  const char *token;      /* the management token */
  const wr_mgmt_filters *filters; /* NULL: no filters sent */
  /* Each log event received. */
  void (*on_log)(void *user, const wr_mgmt_log *log);
  /* The stream is over (called once): |ok| 1 for a normal closure (ours
   * after wr_mgmt_tail_stop, or the peer's 1000), else 0 with |why|. The
   * object may be freed from here. */
  void (*on_end)(void *user, int ok, const char *why);
  void *user;
} wr_mgmt_tail_config;

/* Starts connecting. Returns WR_OK or WR_ERR_INVAL / WR_ERR_CRYPTO with
 * |err| (bad URL, TLS trust anchors). Strings are copied. */
int wr_mgmt_tail_start(const wr_mgmt_tail_config *cfg, wr_mgmt_tail **out, char *err,
                       size_t errlen);
/* Ends the stream as cloudflared's tail does on a signal: a Close frame
 * (1000), then the end after the peer's Close or a second. */
void wr_mgmt_tail_stop(wr_mgmt_tail *t);
/* Closes at once; the memory goes when libuv has closed the socket (run
 * the loop). on_end is not called from here. NULL: no-op. */
void wr_mgmt_tail_free(wr_mgmt_tail *t);

#endif
