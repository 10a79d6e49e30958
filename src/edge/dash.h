/* The operator's dashboard on the API listener (--api-listen), behind the
 * login's sign-in (edge/login.h):
 *
 *   GET  /dashboard                    the tunnels page
 *   GET  /dashboard/tunnels            tunnels: status, connections (edge,
 *                                      origin IP, connector version,
 *                                      protocol, uptime); create and delete
 *   GET  /dashboard/routes             DNS and IP routes; create and delete
 *   GET  /dashboard/devices            WireGuard devices
 *   GET  /dashboard/users              the account's users
 *   GET  /dashboard/audit              the audit log (newest 200 rows)
 *   GET  /dashboard/traffic?tunnel=ID  live charts and the traffic inspector
 *   GET  /dashboard/inspect?id=N       one inspected request
 *   GET  /dashboard/stats.json         per-tunnel counters the charts poll
 *   GET  /dashboard/assets/dash.js|dash.css   the static front end (compiled in)
 *   POST /dashboard/tunnels/create|delete, /dashboard/routes/dns/create|delete,
 *        /dashboard/routes/ip/create|delete, /dashboard/inspect/replay
 *
 * Without a signed-in session, pages answer 303 to
 * /argotunnel?next=<the page>, and the sign-in comes back to it; POSTs and
 * stats.json answer 403. Every POST carries the session's CSRF token
 * (hidden field "csrf"; a form without it, or with another session's,
 * gets 403 and changes nothing) and acts through the REST API's own
 * handlers in-process (wr_api_call): the same checks, limits and audit
 * rows (actor "dash:<email>"). Results come back as a 303 to the page with
 * a message.
 *
 * Pages are server-rendered HTML; every text from the store, the API or a
 * visitor is HTML-escaped (lib/html.h). The one script and stylesheet
 * come from the binary; the CSP allows only them (no inline script or
 * style), and pages cannot be framed.
 *
 * Replay (POST /dashboard/inspect/replay, field id) sends the recorded
 * request again through the tunnel, by the edge's visitor listener (so it
 * is routed, limited and inspected as any request), from libuv's worker
 * pool; the result (status and time, or the error) is recorded on the
 * original record. A request whose body was not kept whole cannot be
 * replayed; redacted fields are left out.
 *
 * Threads: wr_dash_handle is called on the loop thread. With a store
 * thread (cfg->async, which must be the API's), the session and CSRF are
 * checked on the loop, then the pages and actions that read the store
 * (every page and POST action) are built on the store thread
 * (wr_api_call_store) and sent from the loop, reading the tunnel server,
 * the counters and the inspector's records on the loop mid-page (a
 * replay is started there too); a full queue answers 503. */
#ifndef WR_EDGE_DASH_H
#define WR_EDGE_DASH_H
#include <uv.h>

#include "edge/api.h"
#include "edge/inspect.h"
#include "edge/login.h"
#include "edge/store.h"
#include "edge/store_async.h"
#include "edge/tunnel_server.h"
#include "edge/tunnel_stats.h"
#include "net/httpd.h"

#define WR_DASH_PATH "/dashboard"

typedef struct wr_dash wr_dash;

typedef struct wr_dash_config {
  uv_loop_t *loop;            /* required: the replay's worker jobs */
  wr_store *store;            /* required: users, zones */
  wr_store_async *async;      /* the API's store thread; NULL: pages on the loop */
  wr_api *api;                /* required: every read and change goes through it */
  wr_login *login;            /* required: sessions */
  wr_tunnel_server *ts;       /* protocol of live connections; may be NULL */
  wr_inspect *inspect;        /* NULL: the inspector is off */
  wr_tunnel_stats *tunnel_stats; /* NULL: no charts */
  /* The visitor listener's address, for replays (an unspecified address
   * is dialed as loopback); NULL: no replay. */
  const struct sockaddr_storage *visitor_addr;
} wr_dash_config;

/* Returns WR_OK or WR_ERR_INVAL (a required field missing). */
int wr_dash_new(const wr_dash_config *cfg, wr_dash **out);
/* Answers |req| and returns 1 if its path is /dashboard or under it;
 * returns 0 otherwise without touching it. */
int wr_dash_handle(wr_dash *d, wr_httpd_req *req);
/* Frees once the replays running on the worker pool came back (keep
 * running the loop). The borrowed objects are not used after this call. */
void wr_dash_free(wr_dash *d);

#endif
