/* The edge's REST API: the Cloudflare v4 subset that cloudflared's `tunnel`
 * subcommands (and warren's) call, under /client/v4, so
 * TUNNEL_API_URL=http://HOST:PORT/client/v4 is the whole client setting
 * (../shared/cloudflare-api.md §2 and §7 give the shapes and call
 * sequences). It is a thin layer over the store (edge/store.h) and, when
 * given one, the tunnel server (edge/tunnel_server.h), served by the small
 * HTTP server (net/httpd.h): the owner's httpd handler calls
 * wr_api_handle() and tries its other handlers when it returns 0.
 *
 * Envelope. Every answer is JSON with Content-Type exactly
 * "application/json" (cloudflared reads errors[] only then):
 *   {"success":true,"errors":[],"messages":[],"result":...[,"result_info":{...}]}
 * Success is always HTTP 200 (cloudflared treats 201 and 204 as failures);
 * `result` is always present (null when there is nothing). Errors carry
 * success:false, errors:[{"code":N,"message":"..."}] and the status:
 *   400 code 1001  invalid request (bad JSON, field, name, CIDR, hostname,
 *                  the zone apex, a deleted tunnel, live connections on
 *                  delete without cascade, the management service)
 *   400 code 1015  a limit reached (tunnels, hostname or IP routes per account)
 *   403 code 10000 authentication: no/invalid/revoked token, wrong account
 *                  or zone (the message says to log in again for a token
 *                  that is no longer valid)
 *   404 code 1003  no such tunnel / route / virtual network
 *   404 code 7003  no such endpoint
 *   405 code 10405 method not allowed
 *   409 code 1013  a name, hostname or network is taken (create tunnel:
 *                  cloudflared prints "tunnel with name already exists")
 *   429 code 971   too many invalid tokens from this source (below), with
 *                  Retry-After (971 is the code of Cloudflare's own API
 *                  rate limit)
 *   500 code 1000  store failure
 *   503 code 1000  the database is unreachable; or, with Retry-After: 1,
 *                  the store thread's queue is full or the edge is stopping
 * cloudflared prints them as "code: N, reason: <message>".
 *
 * Authentication: "Authorization: Bearer <apiToken>" (the apiToken of the
 * cert.pem's ARGO TUNNEL TOKEN block), checked with wr_store_token_verify.
 * The token works for its user's account only, and for zone routes only in
 * its zone (or any zone of the account when it is not zone-limited).
 *
 * Token guessing: bearer tokens that are not valid (unknown, revoked) are
 * counted per source (IPv4 address, IPv6 /64; edge/throttle.h). From the
 * |token_throttle.free_failures|-th on (default 10) each one doubles a
 * delay from 1 s up to 15 min; while a source is in its delay, every
 * request from it under /client/v4 is answered 429 (code 971, Retry-After)
 * before its token is looked at, even a valid one. Below that, a revoked
 * token keeps its 403 telling the user to log in again. A valid token does
 * not clear its source's count (a guesser would hold one of their own);
 * counts are forgotten an hour after the last failure and its delay. The
 * start of a source's lockout writes an "api.lock" audit row (actor
 * "edge", target "source:<prefix>", detail: source, failures,
 * retry_after_s), its end by time an "api.unlock" row, written when the API
 * next serves a request; lockout rows are rate-limited as the login's are.
 *
 * Endpoints ({a} = account id, {z} = zone id, {t} = tunnel UUID) and the
 * command each serves:
 *   POST   /accounts/{a}/cfd_tunnel                      tunnel create
 *          body {name, tunnel_secret (base64, >= 32 bytes; generated when
 *          absent), config_src "local"|"cloudflare"}; result Tunnel + token
 *   GET    /accounts/{a}/cfd_tunnel                      tunnel list, and the
 *          name -> id lookup of every command; filters is_deleted, name,
 *          name_prefix (alias include_prefix), exclude_prefix, uuid,
 *          existed_at (RFC 3339); page/per_page (no page: every row)
 *   GET    /accounts/{a}/cfd_tunnel/{t}                  tunnel delete (check)
 *   DELETE /accounts/{a}/cfd_tunnel/{t}[?cascade=true]   tunnel delete
 *          removes its DNS and IP routes; with live connections it needs
 *          cascade (then they are closed)
 *   GET    /accounts/{a}/cfd_tunnel/{t}/connections      tunnel info
 *   DELETE /accounts/{a}/cfd_tunnel/{t}/connections[?client_id=]
 *                                                        tunnel cleanup, delete -f
 *   GET    /accounts/{a}/cfd_tunnel/{t}/token            tunnel token
 *   POST   /accounts/{a}/cfd_tunnel/{t}/management[/...] a management token (api_mgmt.c)
 *   PUT    /zones/{z}/tunnels/{t}/routes                 tunnel route dns
 *          {type:"dns", user_hostname, overwrite_existing} ->
 *          {cname:"new"|"updated"|"unchanged", name, content}: a CNAME from
 *          the hostname to <t>.cfargotunnel.<zone> (cfg->cname_domain); a
 *          single label gets the zone appended; the apex and names outside
 *          the zone are refused. type "lb" is refused.
 *   GET    /zones/{z}/dns_records[?name=&type=CNAME]     the zone's tunnel
 *          CNAMEs in Cloudflare's DNS record shape (for partial setups)
 *   DELETE /zones/{z}/dns_records/{route id}             remove one
 *   POST   /accounts/{a}/teamnet/routes                  route ip add (>= 2023.10)
 *   POST   /accounts/{a}/teamnet/routes/network/{cidr}   route ip add (2023.7.3;
 *          the CIDR arrives URL-escaped twice)
 *   GET    /accounts/{a}/teamnet/routes                  route ip show/list and
 *          the delete-by-CIDR lookup; filters is_deleted, tunnel_id, comment,
 *          virtual_network_id, network_subset, network_superset, existed_at,
 *          route_id, tun_types; page/per_page
 *   GET    /accounts/{a}/teamnet/routes/ip/{ip}          route ip get
 *   DELETE /accounts/{a}/teamnet/routes/{route id}       route ip delete (>= 2023.10)
 *   DELETE /accounts/{a}/teamnet/routes/network/{cidr}[?virtual_network_id=]
 *                                                        route ip delete (2023.7.3)
 *   GET|POST /accounts/{a}/teamnet/virtual_networks      vnet list / add (and
 *          route ip --vnet NAME); is_default and is_default_network accepted
 *   PATCH|DELETE /accounts/{a}/teamnet/virtual_networks/{id}[?force=true]
 *                                                        vnet update / delete
 *   GET    /accounts/{a}/devices[?active=true]           WireGuard devices (ours), oldest
 *          first, revoked ones too unless active=true
 *   POST   /accounts/{a}/devices                         device add: body {name,
 *          public_key? (base64; absent: the edge generates the key pair),
 *          vnet_id? (UUID or name), allowed? (CIDRs: array or comma-separated
 *          string), endpoint? (HOST:PORT for the config)}; result the device
 *          (edge/device_config.h wr_device_json) + "config" (the wg-quick
 *          text, or null when no endpoint is known) + "private_key" (only
 *          when generated: it is stored nowhere)
 *   GET    /accounts/{a}/devices/{id|name}[?config=true&endpoint=]
 *                                                        one device (+ config)
 *   PATCH  /accounts/{a}/devices/{id|name}               {allowed: [...]|"..."|null}
 *          sets the policy (null or "" or []: every route); {revoked: true}
 *          revokes
 *   DELETE /accounts/{a}/devices/{id|name}               revoke (the row stays)
 *   GET|POST /accounts/{a}/access/apps, GET|PUT|DELETE .../apps/{id}
 *   GET|POST /accounts/{a}/access/apps/{id}/policies, GET|PUT|DELETE .../{pid}
 *   GET|POST /accounts/{a}/access/groups, GET|PUT|DELETE .../groups/{id}
 *   GET|POST /accounts/{a}/access/service_tokens, GET|DELETE .../{id}
 *   POST   /accounts/{a}/access/keys/rotate           a new signing key (edge-wide)
 *          Access (shapes and semantics in docs/access.md); a new service
 *          token's client_secret is in the POST answer only
 *   GET    /accounts/{a}/audit_logs                      the audit log (ours):
 *          query per_page (default 100, max 1000), page, action (exact, or a
 *          prefix ending in '.'), since/before (RFC 3339); result rows
 *          {"id":N,"when":"RFC 3339","actor":"api:admin@example.test",
 *           "action":"tunnel.create","resource":{"type":"tunnel","id":"..."},
 *           "metadata":{...}} newest first, with result_info.
 *
 * Every change writes an audit row whose actor is "api:<user email>" (or
 * "api:token:<token id>" for a token whose user cannot be read).
 *
 * Limits: tunnels per account (live ones), hostname routes per account and
 * IP routes per account; a create over a limit is 400 code 1013 with a
 * message naming the limit. Connector limits live in the tunnel server.
 *
 * Threading: wr_api_handle is called on the loop thread of the httpd. With
 * a store thread (cfg->async), a /client/v4 request's token check and
 * handler, and a quick tunnel's POST /tunnel (its source's throttle is
 * read and counted on the loop meanwhile), run there, on the thread's own store connection, and the answer
 * is sent from the loop when the job is done: the loop keeps serving
 * visitors and connectors meanwhile. Live connections (the tunnel server)
 * are read and closed on the loop in the middle of such a job
 * (wr_store_async_on_loop); the route and Access hooks are called on the
 * loop before the answer is sent. When the store thread's queue is full
 * the request is answered at once with 503 (code 1000, Retry-After: 1).
 * The quick tunnel sweep runs there too. Without a store thread, and for
 * wr_api_call (the dashboard), the store is called on the loop. */
#ifndef WR_EDGE_API_H
#define WR_EDGE_API_H
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "edge/store.h"
#include "edge/store_async.h"
#include "edge/throttle.h"
#include "edge/tunnel_server.h"
#include "net/httpd.h"

#define WR_API_PREFIX "/client/v4"
#define WR_API_MAX_TUNNELS_DEFAULT 1000 /* live tunnels per account */
#define WR_API_MAX_ROUTES_DEFAULT 1000  /* hostname routes, and IP routes, per account */
/* Requests waiting on or running on the store thread at once; more are
 * answered 503 at once, so API clients cannot fill the queue that
 * registrations and route lookups share with them. */
#define WR_API_STORE_JOBS_MAX 256

typedef struct wr_api wr_api;

typedef struct wr_api_config {
  wr_store *store;          /* required */
  /* The store thread: /client/v4 requests are handled there (the loop
   * keeps serving meanwhile); NULL: on the loop. */
  wr_store_async *async;
  wr_tunnel_server *ts;     /* live connections to close on delete/cleanup; may be NULL */
  size_t max_tunnels;       /* 0: WR_API_MAX_TUNNELS_DEFAULT */
  size_t max_routes;        /* 0: WR_API_MAX_ROUTES_DEFAULT */
  /* CNAME targets are <tunnel-uuid>.<cname_domain>; NULL or "":
   * "cfargotunnel.<zone name>" of the route's zone. */
  const char *cname_domain;
  /* Location shown as colo_name for connections without one; NULL: as stored. */
  const char *location;
  /* Told after each DNS route change the API made (e.g. to push it to an
   * external DNS server with RFC 2136): a route added or re-pointed, a
   * route removed (also each route of a deleted tunnel), a tunnel deleted
   * (hostname NULL). May be NULL. */
  void (*on_route)(void *user, int op, const char *hostname, const char *tunnel_id);
  void *route_user;
  /* Told after each Access API call that may have changed applications,
   * policies or groups (e.g. to drop the gate's cache). May be NULL. */
  void (*on_access_change)(void *user);
  void *access_user;
  /* Invalid tokens per source; zero fields take throttle.h's defaults,
   * except free_failures, whose default here is 10. */
  wr_throttle_config token_throttle;
  /* Clock in milliseconds for tests; NULL: the monotonic clock. */
  uint64_t (*now_ms)(void *user);
  void *now_user;
  /* WireGuard devices (/accounts/{a}/devices): the data directory holding
   * the edge's WireGuard key (wireguard.key, created when first needed) and
   * wireguard-endpoint; and the HOST:PORT devices dial, overriding that
   * file. Without a data directory, or with no endpoint known and none in
   * the request, device answers carry config null. */
  const char *data_dir;
  const char *wg_endpoint;
  /* Quick tunnels (POST /tunnel, cloudflared's --quick-service): off when
   * quick_account (an account ID or name) is NULL or "", and then POST
   * /tunnel answers 404 saying so. quick_zone (name or ID) NULL: the
   * account's first zone. quick_per_source: creations a source may make
   * before it waits (0: 5); quick_max: live quick tunnels (0: 100);
   * quick_idle_s: how long a quick tunnel may go without a connector
   * before wr_api_quick_sweep deletes it (0: 300); quick_url_port: the
   * visitor front's port, for the "url" of the answer (0: 80). */
  const char *quick_account;
  const char *quick_zone;
  unsigned quick_per_source;
  size_t quick_max;
  int64_t quick_idle_s;
  unsigned quick_url_port;
} wr_api_config;

enum { WR_API_ROUTE_SET = 1, WR_API_ROUTE_REMOVED = 2, WR_API_TUNNEL_DELETED = 3 };

/* Returns WR_OK, WR_ERR_INVAL (no store, or a token_throttle that
 * throttle.h refuses), WR_ERR_NOMEM or WR_ERR_CRYPTO (no randomness for the
 * throttle table). Strings are copied. */
int wr_api_new(const wr_api_config *cfg, wr_api **out);

/* If |req|'s path is /client/v4 or under it, or /tunnel, answers it (always, with
 * wr_httpd_respond: |req| is freed) and returns 1; otherwise returns 0 and
 * leaves |req| to the caller. */
int wr_api_handle(wr_api *a, wr_httpd_req *req);

/* The API called in-process by the dashboard (edge/dash.h), with the
 * authority of the signed-in |user| instead of a bearer token: the same
 * router, handlers, checks (the account in the path must be the user's),
 * limits and audit rows, whose actor is "dash:<email>". |path| is what
 * follows /client/v4 ("/accounts/A/cfd_tunnel"), |query| "" or NULL or
 * "a=b&c=d" (escaped), |body| NULL or JSON text. Returns the HTTP status
 * the API would have sent and sets *env to its JSON envelope (the caller
 * json_decrefs it; NULL only with status 400 for a path too long or not
 * starting with '/'). Loop thread only. */
int wr_api_call(wr_api *a, const wr_user *user, const char *method, const char *path,
                const char *query, const char *body, json_t **env);
/* wr_api_call from a job on the API's store thread (cfg.async), with that
 * thread's store |s|: the handler runs there; live connections and the
 * hooks are reached on the loop (wr_store_async_on_loop) as for /client/v4
 * requests. With |s| the API's own store, the same as wr_api_call. Returns
 * 400 (and *env NULL) without a store thread. */
int wr_api_call_store(wr_api *a, wr_store *s, const wr_user *user, const char *method,
                      const char *path, const char *query, const char *body, json_t **env);

/* A wr_httpd_handler serving only the API (404 JSON for other paths), with
 * |user| the wr_api: for an --api-listen of its own. */
void wr_api_httpd_handler(wr_httpd *h, wr_httpd_req *req, void *user);

/* The edge is stopping: requests still on the store thread are answered
 * (when it stops) without calling on_route or on_access_change. */
void wr_api_stop(wr_api *a);

/* Stops |a| (as wr_api_stop) and frees it: now, or once the last request
 * or quick-tunnel sweep still on the store thread is back (its done
 * callback answers it without the hooks). NULL is fine. Loop thread, also
 * from a callback. */
void wr_api_free(wr_api *a);

/* Deletes quick tunnels (and their routes) without a connector for
 * quick_idle_s; returns how many. Call it every few seconds. With a store
 * thread the sweep runs there (one at a time; a call while one runs does
 * nothing), the route hook is told on the loop once it is back, and 0 is
 * returned (each deletion is logged). */
size_t wr_api_quick_sweep(wr_api *a);

/* ---- counters (for the edge's --metrics, edge/edge_metrics.h) ---- */

typedef struct wr_api_stats {
  uint64_t responses_by_class[6]; /* [2]..[5]: answers under /client/v4 by status class */
  uint64_t tokens_throttled;      /* 429 without a look at the token: the source guessed */
} wr_api_stats;

/* Counters since wr_api_new; valid while |a| lives. */
const wr_api_stats *wr_api_get_stats(const wr_api *a);

#endif
