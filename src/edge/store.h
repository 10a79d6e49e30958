/* The edge store: accounts, users and API tokens, zones, tunnels, live
 * connections, hostname and IP routes, and the audit log, kept in SQLite.
 *
 * The schema is versioned with PRAGMA user_version; opening a store applies
 * the missing migrations (an ordered list of SQL steps) in one transaction,
 * so a store is either at the old version or at the new one. The database
 * runs in WAL mode with foreign keys on and a busy timeout, so the CLI can
 * administer a store while `warren-edge run` has it open.
 *
 * The objects mirror the Cloudflare v4 resources that cloudflared and the
 * dashboard use (../shared/cloudflare-api.md), so the REST API is a thin
 * layer over these calls:
 *   account  = /accounts/{id}            (id: 32 lower-case hex, the AccountTag)
 *   zone     = /zones/{id}               (id: 32 hex; name unique across the edge)
 *   tunnel   = /accounts/{a}/cfd_tunnel/{uuid}  (soft-deleted: deleted_at)
 *   route    = /zones/{z}/tunnels/{uuid}/routes (type dns; hostname unique)
 *   ip_route = /accounts/{a}/teamnet/routes     (in a virtual network)
 *   user, api_token: who may call the API; tokens are kept as SHA-256 only.
 *
 * Every call that changes the store writes an audit_log row in the same
 * transaction, naming the |actor| the caller passes ("cli:alice",
 * "api:admin@example.test", ...). Connection open/close is the exception:
 * the connections table is itself the history of those events (opened_at,
 * closed_at) and a reconnecting connector would drown the audit log.
 *
 * Errors: functions return WR_OK or a negative code from lib/err.h and leave
 * a sentence in wr_store_errmsg() that names what was wrong, e.g.
 *   "app.example.test is already routed to tunnel 1234...; pass overwrite".
 * Common codes: WR_ERR_INVAL (a bad name, hostname, email...), WR_ERR_NOTFOUND,
 * WR_ERR_EXISTS (a unique name or hostname is taken), WR_ERR_STORE (SQLite
 * failed, including "busy" after the timeout), WR_ERR_CRYPTO (no randomness).
 *
 * A wr_store is used by one thread at a time. The running edge holds two:
 *  - the store thread's (edge/store_async.h, its own thread and
 *    connection): the visitor front's route lookups on a cache miss,
 *    registrations and connection bookkeeping (tunnel_server.c), the
 *    Access gate's reads, service tokens and audit rows (access*.c), DNS
 *    zone reads (dns.c), router and WireGuard reloads, cluster heartbeats,
 *    certificate sweeps, and the REST API under /client/v4 (api_async.c:
 *    token check and handler, the answer sent from the loop). The caller's
 *    request waits while other visitors are served.
 *  - the loop thread's: what is left blocks the event loop for the length
 *    of the call (WAL, typically well under a millisecond; up to the busy
 *    timeout, BUSY_TIMEOUT_MS in store.c, when another process holds the
 *    write lock): quick tunnels (POST /tunnel and their sweep), the API's
 *    token lockout audit rows, the dashboard (dash*.c, through
 *    wr_api_call), the `tunnel login` pages (login*.c), metrics, edge
 *    start-up and shutdown.
 * Lists are returned in arrays allocated with malloc: free them with free()
 * (wr_store_audit_free for audit rows).
 * Allocation failure aborts (lib/mem.h wr_x*), as everywhere outside codecs.
 * Timestamps are Unix seconds (UTC); 0 means "not set" (e.g. not deleted). */
#ifndef WR_EDGE_STORE_H
#define WR_EDGE_STORE_H
#include <stddef.h>
#include <stdint.h>

/* The schema version this build writes (PRAGMA user_version). */
#define WR_STORE_SCHEMA_VERSION 9

#define WR_STORE_ID_LEN 32      /* hex ids: accounts, zones, users, tokens */
#define WR_STORE_UUID_LEN 36    /* tunnels, connections, routes */
#define WR_STORE_NAME_MAX 64    /* tunnel and account names, in bytes */
#define WR_STORE_HOST_MAX 253   /* DNS names without the trailing dot */
#define WR_STORE_EMAIL_MAX 254
#define WR_STORE_SECRET_MIN 32  /* cloudflared refuses shorter tunnel secrets */
#define WR_STORE_SECRET_MAX 256 /* = WR_CRED_MAX_SECRET */
#define WR_STORE_TOKEN_LEN 40   /* API tokens, [A-Za-z0-9_-], as Cloudflare's */
#define WR_STORE_ERRMSG_MAX 512

typedef struct wr_store wr_store;

/* --- opening ------------------------------------------------------------ */

/* Flags for wr_store_open. */
#define WR_STORE_CREATE 1u /* create the database file if it does not exist */

/* Opens (and with WR_STORE_CREATE creates) the store at |path| and brings
 * its schema up to WR_STORE_SCHEMA_VERSION. On failure *out is NULL and |err|
 * says why. Returns WR_OK, WR_ERR_NOTFOUND (no file and no WR_STORE_CREATE),
 * WR_ERR_STORE (not a database, I/O error, a migration failed) or
 * WR_ERR_UNSUPPORTED (the file has a newer schema than this build). */
int wr_store_open(const char *path, unsigned flags, wr_store **out, char *err, size_t errlen);
void wr_store_close(wr_store *s);
/* The message of the last failed call on |s| ("" if none). */
const char *wr_store_errmsg(const wr_store *s);
/* 1 if the last error (a WR_ERR_STORE) was the database being unreachable
 * (PostgreSQL down or the connection lost): worth a retry, not a bug. The
 * next call reconnects. */
int wr_store_unavailable(const wr_store *s);
/* Copies every row of |from| into |to| (e.g. a SQLite store into a new
 * PostgreSQL one), in one transaction on |to|, and counts them in *rows.
 * |to| must have no accounts (WR_ERR_EXISTS). Errors: the message is
 * |to|'s (wr_store_errmsg(to)). */
int wr_store_copy(wr_store *from, wr_store *to, size_t *rows);
/* The schema version found in the file (after migration). */
int wr_store_schema_version(wr_store *s);
/* Replaces the clock (Unix seconds) for tests; NULL restores time(). */
void wr_store_set_clock(wr_store *s, int64_t (*now)(void *user), void *user);

/* --- names --------------------------------------------------------------- */

/* Checks a DNS name and writes its canonical form (lower case, no trailing
 * dot) to |out|: labels of 1..63 of [a-z0-9_-] not starting or ending with
 * '-', at most 253 bytes, not an IP address; with |allow_wildcard| the first
 * label may be "*". A port, a URL or non-ASCII text gets its own explanation.
 * Returns WR_OK or WR_ERR_INVAL with the reason in |err|. */
int wr_store_check_dns_name(const char *name, int allow_wildcard, char out[WR_STORE_HOST_MAX + 1],
                            char *err, size_t errlen);
/* Tunnel names: 1..64 bytes, no '/', no control characters, and not a UUID
 * (cloudflared resolves UUID-shaped arguments as IDs). WR_OK or WR_ERR_INVAL. */
int wr_store_check_tunnel_name(const char *name, char *err, size_t errlen);

/* --- accounts, zones, users, API tokens ------------------------------------ */

typedef struct wr_account {
  char id[WR_STORE_ID_LEN + 1];
  char name[WR_STORE_NAME_MAX + 1];
  int64_t created_at;
} wr_account;

typedef struct wr_zone {
  char id[WR_STORE_ID_LEN + 1];
  char account_id[WR_STORE_ID_LEN + 1];
  char name[WR_STORE_HOST_MAX + 1];
  int64_t created_at;
} wr_zone;

typedef struct wr_user {
  char id[WR_STORE_ID_LEN + 1];
  char account_id[WR_STORE_ID_LEN + 1];
  char email[WR_STORE_EMAIL_MAX + 1];
  int has_password;
  int is_service; /* a machine user (API only, no dashboard login) */
  int64_t created_at;
} wr_user;

typedef struct wr_api_token {
  char id[WR_STORE_ID_LEN + 1];
  char user_id[WR_STORE_ID_LEN + 1];
  char account_id[WR_STORE_ID_LEN + 1]; /* the user's account */
  char zone_id[WR_STORE_ID_LEN + 1];    /* "" when not limited to one zone */
  int64_t created_at;
  int64_t revoked_at;
} wr_api_token;

/* Creates an account with a random id. Errors: WR_ERR_INVAL (empty or
 * too-long name), WR_ERR_STORE, WR_ERR_CRYPTO. */
int wr_store_account_create(wr_store *s, const char *actor, const char *name, wr_account *out);
/* WR_ERR_NOTFOUND if there is no such account. */
int wr_store_account_get(wr_store *s, const char *id, wr_account *out);
/* The only account, for single-tenant commands. WR_ERR_NOTFOUND when there
 * is none, WR_ERR_INVAL when there are several (the message lists them). */
int wr_store_account_default(wr_store *s, wr_account *out);
/* Every account, oldest first (free *out with free()). */
int wr_store_account_list(wr_store *s, wr_account **out, size_t *n);
/* Reads the accounts table once: WR_OK when the database answers, else
 * WR_ERR_STORE with the reason in wr_store_errmsg (for readiness checks). */
int wr_store_ping(wr_store *s);

/* Adds zone |name| (checked with wr_store_check_dns_name, no wildcard) to an
 * account. WR_ERR_EXISTS if any account already has the zone. */
int wr_store_zone_create(wr_store *s, const char *actor, const char *account_id, const char *name,
                         wr_zone *out);
int wr_store_zone_get(wr_store *s, const char *id, wr_zone *out);
/* The zones of |account_id| (all zones when NULL), by name. */
int wr_store_zone_list(wr_store *s, const char *account_id, wr_zone **out, size_t *n);

/* Adds a user. |password_hash| is an already-hashed string or NULL (no
 * password login). WR_ERR_INVAL for a malformed email, WR_ERR_EXISTS if the
 * email (compared case-insensitively) is taken. */
int wr_store_user_create(wr_store *s, const char *actor, const char *account_id, const char *email,
                         const char *password_hash, int is_service, wr_user *out);
int wr_store_user_get_by_email(wr_store *s, const char *email, wr_user *out);

/* Issues an API token for |user_id|, optionally limited to |zone_id| (NULL:
 * any zone of the account). The token text is written to |token| and exists
 * nowhere else: the store keeps only its SHA-256. */
int wr_store_token_create(wr_store *s, const char *actor, const char *user_id, const char *zone_id,
                          char token[WR_STORE_TOKEN_LEN + 1], wr_api_token *out);
/* Looks a presented token up by its hash. WR_ERR_DENIED for an unknown or
 * revoked token (the message does not say which). */
int wr_store_token_verify(wr_store *s, const char *token, wr_api_token *out);
/* Marks a token revoked. WR_ERR_NOTFOUND, or WR_ERR_INVAL if already revoked. */
int wr_store_token_revoke(wr_store *s, const char *actor, const char *token_id);

/* --- tunnels ---------------------------------------------------------------- */

typedef struct wr_tunnel {
  char id[WR_STORE_UUID_LEN + 1];
  char account_id[WR_STORE_ID_LEN + 1];
  char name[WR_STORE_NAME_MAX + 1];
  uint8_t secret[WR_STORE_SECRET_MAX];
  size_t secret_len;
  int64_t created_at;
  int64_t deleted_at;   /* 0: live */
  int remote_managed;   /* config_src = 'cloudflare' */
  unsigned active_conns; /* connections with no closed_at */
} wr_tunnel;

/* Creates a tunnel named |name| (wr_store_check_tunnel_name) in an account.
 * |secret| of WR_STORE_SECRET_MIN..MAX bytes is stored as given (the API's
 * create carries the client's secret); NULL draws 32 bytes from
 * wr_random_bytes. WR_ERR_EXISTS if a live tunnel of the account has the
 * name; WR_ERR_NOTFOUND for an unknown account. */
int wr_store_tunnel_create(wr_store *s, const char *actor, const char *account_id, const char *name,
                           const uint8_t *secret, size_t secret_len, wr_tunnel *out);
/* By UUID (any case), deleted or not. WR_ERR_NOTFOUND, WR_ERR_INVAL (not a UUID). */
int wr_store_tunnel_get(wr_store *s, const char *id, wr_tunnel *out);
/* The live tunnel named |name| in |account_id|. WR_ERR_NOTFOUND. */
int wr_store_tunnel_find(wr_store *s, const char *account_id, const char *name, wr_tunnel *out);
/* What a CLI argument NAME|ID means: a UUID is looked up as an ID (it must be
 * live and in |account_id|), anything else as a name. WR_ERR_NOTFOUND. */
int wr_store_tunnel_resolve(wr_store *s, const char *account_id, const char *ref, wr_tunnel *out);

typedef struct wr_tunnel_filter {
  const char *account_id; /* required */
  int include_deleted;
  const char *name;       /* exact name, or NULL */
  size_t limit;           /* 0: no limit */
  size_t offset;
  /* Schema 2 (the REST API's filters); zero means "not filtered". */
  int only_deleted;           /* only soft-deleted tunnels (implies include_deleted) */
  const char *id;             /* exact tunnel UUID (any case); not a UUID: WR_ERR_INVAL */
  const char *name_prefix;    /* names starting with it */
  const char *exclude_prefix; /* names not starting with it */
  int64_t existed_at;         /* created at or before it and not deleted by then */
} wr_tunnel_filter;
/* Tunnels matching |f|, oldest first. */
int wr_store_tunnel_list(wr_store *s, const wr_tunnel_filter *f, wr_tunnel **out, size_t *n);
/* Soft-deletes a live tunnel: sets deleted_at, deletes its DNS routes and
 * soft-deletes its IP routes, all in one transaction with one audit row.
 * |routes_removed| (may be NULL) gets the number of DNS routes removed.
 * WR_ERR_NOTFOUND for an unknown tunnel, WR_ERR_INVAL if already deleted. */
int wr_store_tunnel_delete(wr_store *s, const char *actor, const char *id, size_t *routes_removed);

/* --- connections --------------------------------------------------------- */

typedef struct wr_conn_rec {
  char id[WR_STORE_UUID_LEN + 1];        /* this connection */
  char tunnel_id[WR_STORE_UUID_LEN + 1];
  unsigned conn_index;                   /* 0..255, cloudflared's connIndex */
  char client_id[WR_STORE_UUID_LEN + 1]; /* the connector process (ConnectionOptions.client) */
  char client_version[64];
  char arch[64];
  char features[512];                    /* JSON array of strings */
  char origin_ip[64];
  char edge_location[64];                /* colo_name in the API */
  char edge_id[WR_STORE_UUID_LEN + 1];   /* the edge serving it ("": none
                                          * recorded, a store of one edge) */
  int64_t opened_at;                     /* 0: now */
  int64_t closed_at;                     /* 0: open */
} wr_conn_rec;

/* Records a registered connection. WR_ERR_NOTFOUND if the tunnel is unknown,
 * WR_ERR_INVAL for a deleted tunnel or bad fields, WR_ERR_EXISTS for a reused id. */
int wr_store_conn_open(wr_store *s, const wr_conn_rec *c);
/* A tunnel's limits on connections, held across the edges sharing the
 * store (edge/tunnel_server.h has the defaults). */
typedef struct wr_conn_limits {
  unsigned max_connectors;    /* distinct client ids per tunnel; 0: none */
  unsigned max_per_connector; /* connections of one client id; 0: none */
  int64_t fresh_since;        /* other edges count if beating since then */
  /* out (WR_OK and WR_ERR_LIMIT): what counted, bar the new connection */
  unsigned connectors;        /* distinct connectors of the tunnel */
  unsigned mine;              /* connections of the new one's client id */
} wr_conn_limits;
/* wr_store_conn_open, with the tunnel's open connections counted in the
 * same transaction first: those of c->edge_id and of every edge whose
 * heartbeat is at or after lim->fresh_since, bar the one |c| replaces (same
 * client id and index). On PostgreSQL a per-tunnel lock makes edges
 * registering at once count each other's rows. WR_ERR_LIMIT (nothing
 * recorded) when c->client_id is not among the connectors and
 * max_connectors are there, or has max_per_connector connections already;
 * otherwise as wr_store_conn_open. |lim| NULL: no limits. */
int wr_store_conn_open_limited(wr_store *s, const wr_conn_rec *c, wr_conn_limits *lim);
/* Sets closed_at. WR_ERR_NOTFOUND if there is no open connection |id|. */
int wr_store_conn_close(wr_store *s, const char *id);
/* Closes every open connection (an edge starting after a crash). */
int wr_store_conn_close_all(wr_store *s, size_t *closed);
/* The connections of a tunnel, oldest first; only open ones if |open_only|. */
int wr_store_conn_list(wr_store *s, const char *tunnel_id, int open_only, wr_conn_rec **out,
                       size_t *n);

/* --- hostname routes ------------------------------------------------------ */

typedef struct wr_route {
  char id[WR_STORE_UUID_LEN + 1];
  char account_id[WR_STORE_ID_LEN + 1];
  char zone_id[WR_STORE_ID_LEN + 1];
  char zone_name[WR_STORE_HOST_MAX + 1];
  char hostname[WR_STORE_HOST_MAX + 1];
  char tunnel_id[WR_STORE_UUID_LEN + 1];
  char tunnel_name[WR_STORE_NAME_MAX + 1];
  int64_t created_at;
} wr_route;

/* What route_dns_add did; the API reports these as cname new|updated|unchanged. */
typedef enum wr_route_change {
  WR_ROUTE_NEW = 0,
  WR_ROUTE_UPDATED = 1,
  WR_ROUTE_UNCHANGED = 2
} wr_route_change;
const char *wr_route_change_name(wr_route_change c);

/* Routes |hostname| to a live tunnel. The hostname is checked and
 * canonicalised (wildcards allowed, no port) and must lie strictly inside
 * the zone: the apex itself is refused (it is the zone, not a name in it).
 * |zone_id| NULL picks the tunnel's account zone that contains the hostname.
 * A hostname routed to another tunnel is WR_ERR_EXISTS unless |overwrite|;
 * one already routed to this tunnel is WR_ROUTE_UNCHANGED (no audit row).
 * Errors: WR_ERR_INVAL (bad hostname, apex, outside the zone, deleted
 * tunnel), WR_ERR_NOTFOUND (tunnel or zone), WR_ERR_EXISTS. */
int wr_store_route_dns_add(wr_store *s, const char *actor, const char *zone_id, const char *tunnel_id,
                           const char *hostname, int overwrite, wr_route *out,
                           wr_route_change *change);
/* wr_store_route_dns_add, plus: a new route (not one re-pointed) is
 * WR_ERR_LIMIT when the tunnel's account already has |max_routes| DNS
 * routes (0: no limit), checked in the same transaction as the insert
 * and serialised per account, so it holds across edges sharing a store. */
int wr_store_route_dns_add_max(wr_store *s, const char *actor, const char *zone_id,
                               const char *tunnel_id, const char *hostname, int overwrite,
                               size_t max_routes, wr_route *out, wr_route_change *change);
/* Exact lookup of a canonical hostname. WR_ERR_NOTFOUND. */
int wr_store_route_get(wr_store *s, const char *hostname, wr_route *out);
/* Removes a route. WR_ERR_NOTFOUND. */
int wr_store_route_delete(wr_store *s, const char *actor, const char *hostname);
/* Routes of an account (NULL: all), optionally of one tunnel, by hostname. */
int wr_store_route_list(wr_store *s, const char *account_id, const char *tunnel_id, wr_route **out,
                        size_t *n);

/* --- audit log ----------------------------------------------------------- */

typedef struct wr_audit {
  int64_t id; /* increasing: the order things happened in */
  int64_t at;
  char account_id[WR_STORE_ID_LEN + 1]; /* "" for edge-wide events */
  char actor[128];
  char action[64];       /* e.g. tunnel.create, route.update */
  char target_type[32];  /* account, zone, user, token, tunnel, route, edge */
  char target_id[WR_STORE_HOST_MAX + 1];
  char *detail;          /* JSON object text, owned by the row */
} wr_audit;

/* Appends an audit row for an event outside the store (e.g. edge.init).
 * |detail_json| must be a JSON object or NULL ("{}"); |account_id| may be NULL.
 * WR_ERR_INVAL for over-long fields or invalid JSON. */
int wr_store_audit_append(wr_store *s, const char *actor, const char *account_id,
                          const char *action, const char *target_type, const char *target_id,
                          const char *detail_json);
/* The newest |limit| rows (0: all) of an account (NULL: every account), newest first. */
int wr_store_audit_list(wr_store *s, const char *account_id, size_t limit, wr_audit **out,
                        size_t *n);
void wr_store_audit_free(wr_audit *rows, size_t n);

/* --- users: passwords, listing, token rolling (edge/login.h) ---------------- */

/* Copies the stored password hash of user |user_id| to |out|. WR_ERR_NOTFOUND
 * for an unknown user or one without a password (service users, the admin
 * `warren-edge init` makes), WR_ERR_LIMIT if |size| is too small. */
int wr_store_user_password_hash(wr_store *s, const char *user_id, char *out, size_t size);
/* Sets (or with NULL clears) a user's password hash; audited as user.password
 * (the hash itself is never written to the audit log). WR_ERR_NOTFOUND. */
int wr_store_user_set_password(wr_store *s, const char *actor, const char *user_id,
                               const char *password_hash);
/* By id. WR_ERR_NOTFOUND. */
int wr_store_user_get(wr_store *s, const char *user_id, wr_user *out);
/* The users of |account_id| (NULL: every account), by email. */
int wr_store_user_list(wr_store *s, const char *account_id, wr_user **out, size_t *n);
/* The API tokens of a user, oldest first; revoked ones too if |include_revoked|. */
int wr_store_token_list(wr_store *s, const char *user_id, int include_revoked, wr_api_token **out,
                        size_t *n);
/* Rolls a user's API token: revokes every live token of |user_id| (one
 * transaction, audited as token.roll with the count), then issues a new one
 * as wr_store_token_create does (|zone_id| NULL: any zone of the account).
 * cert.pem files holding the old tokens stop working. |revoked| (may be NULL)
 * gets the number revoked. Fails closed: if the new token cannot be made, the
 * old ones stay revoked and the error says so; run it again. WR_ERR_NOTFOUND
 * for an unknown user or zone. */
int wr_store_token_roll(wr_store *s, const char *actor, const char *user_id, const char *zone_id,
                        char token[WR_STORE_TOKEN_LEN + 1], wr_api_token *out, size_t *revoked);

/* --- schema 2: tunnel queries, connections, virtual networks, IP routes ------
 * What the REST API (edge/api.h) needs beyond the calls above. */

/* Counts the tunnels matching |f| (limit and offset are ignored), for
 * pagination totals and the per-account limit. */
int wr_store_tunnel_count(wr_store *s, const wr_tunnel_filter *f, size_t *n);
/* wr_store_tunnel_create, plus: |remote_managed| records config_src
 * "cloudflare" (configuration pushed by the edge) instead of "local";
 * |max_live| (0: no limit): WR_ERR_LIMIT when the account already has
 * that many live tunnels, checked in the insert's transaction and
 * serialised per account, so it holds across edges sharing a store. */
int wr_store_tunnel_create_ex(wr_store *s, const char *actor, const char *account_id,
                              const char *name, const uint8_t *secret, size_t secret_len,
                              int remote_managed, size_t max_live, wr_tunnel *out);
/* When the tunnel's connections were last seen: |active_at| the oldest
 * opened_at of its open connections (0 if none is open), |inactive_at| the
 * newest closed_at when none is open (0 if it never had one). */
int wr_store_tunnel_conn_times(wr_store *s, const char *tunnel_id, int64_t *active_at,
                               int64_t *inactive_at);
/* Closes (sets closed_at on) the open connection rows of a tunnel, only
 * those of connector |client_id| when it is not NULL. For rows a running
 * edge no longer serves (after a crash) and for `cleanup`; a live edge
 * closes its QUIC connections with wr_tunnel_server_close_tunnel, which
 * closes their rows itself. |closed| (may be NULL) gets the count. */
int wr_store_conn_close_tunnel(wr_store *s, const char *tunnel_id, const char *client_id,
                               size_t *closed);
/* The number of hostname routes of an account. */
int wr_store_route_count(wr_store *s, const char *account_id, size_t *n);
/* The ids of the tunnels (of every account) deleted at or after |since|
 * (Unix seconds), oldest deletion first, for the tunnel server's sweeper.
 * Free *ids with free(). */
int wr_store_tunnel_deleted_since(wr_store *s, int64_t since, char (**ids)[WR_STORE_UUID_LEN + 1],
                                  size_t *n);

/* CIDR networks of IP routes. A bare address means a host route (/32 or
 * /128). Host bits are cleared ("10.1.2.3/8" is 10.0.0.0/8), as Go's
 * net.ParseCIDR, which cloudflared uses, does. */
#define WR_STORE_CIDR_MAX 49 /* "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128" */
typedef struct wr_store_cidr {
  int v6;           /* 0: IPv4 (addr[0..3]), 1: IPv6 */
  uint8_t addr[16];
  unsigned bits;    /* prefix length */
} wr_store_cidr;
/* WR_OK, or WR_ERR_INVAL with the reason in |err|. */
int wr_store_cidr_parse(const char *in, wr_store_cidr *out, char *err, size_t errlen);
/* Canonical text: "10.0.0.0/8", "2001:db8::/32". */
void wr_store_cidr_format(const wr_store_cidr *c, char out[WR_STORE_CIDR_MAX + 1]);
/* 1 if |inner| lies inside |outer| (same family, outer's prefix no longer,
 * and the leading bits equal). A network contains itself. */
int wr_store_cidr_contains(const wr_store_cidr *outer, const wr_store_cidr *inner);

#define WR_STORE_COMMENT_MAX 256 /* route and virtual network comments, bytes */

/* Virtual networks (teamnet): IP routes live in one, so the same network can
 * be routed twice in different virtual networks. Each account has one
 * default network; routes added without naming one go there. Soft-deleted. */
typedef struct wr_vnet {
  char id[WR_STORE_UUID_LEN + 1];
  char account_id[WR_STORE_ID_LEN + 1];
  char name[WR_STORE_NAME_MAX + 1];
  char comment[WR_STORE_COMMENT_MAX + 1];
  int is_default;
  int64_t created_at;
  int64_t deleted_at;
} wr_vnet;

typedef struct wr_vnet_filter {
  const char *account_id; /* required */
  int include_deleted;
  int only_deleted;
  const char *id;         /* exact UUID, or NULL */
  const char *name;       /* exact name, or NULL */
  int is_default;         /* -1: any; 0 or 1 */
} wr_vnet_filter;

/* Creates a virtual network (name as tunnel names, 1..64 bytes; comment
 * 0..256). With |is_default| (or when the account has no default yet) it
 * becomes the default. WR_ERR_EXISTS for a live name clash, WR_ERR_INVAL,
 * WR_ERR_NOTFOUND for an unknown account. */
int wr_store_vnet_create(wr_store *s, const char *actor, const char *account_id, const char *name,
                         const char *comment, int is_default, wr_vnet *out);
/* The account's default virtual network, creating one named "default"
 * (audited as vnet.create) when it has none. */
int wr_store_vnet_default(wr_store *s, const char *actor, const char *account_id, wr_vnet *out);
/* By UUID, deleted or not. WR_ERR_NOTFOUND, WR_ERR_INVAL (not a UUID). */
int wr_store_vnet_get(wr_store *s, const char *id, wr_vnet *out);
/* Oldest first. */
int wr_store_vnet_list(wr_store *s, const wr_vnet_filter *f, wr_vnet **out, size_t *n);
/* Changes the name and/or comment (NULL: keep); |make_default| 1 makes it
 * the default (the old default stops being one), 0 keeps it as it is. A
 * deleted network is WR_ERR_INVAL. */
int wr_store_vnet_update(wr_store *s, const char *actor, const char *id, const char *name,
                         const char *comment, int make_default, wr_vnet *out);
/* Soft-deletes a virtual network. The default one cannot be deleted (make
 * another default first); one with live IP routes only with |force|, which
 * deletes those routes too (|routes_removed| gets how many). WR_ERR_INVAL,
 * WR_ERR_NOTFOUND. */
int wr_store_vnet_delete(wr_store *s, const char *actor, const char *id, int force,
                         size_t *routes_removed);

/* IP routes (`cloudflared tunnel route ip`): a CIDR network of a virtual
 * network reaches a tunnel. Soft-deleted. */
typedef struct wr_ip_route {
  char id[WR_STORE_UUID_LEN + 1];
  char account_id[WR_STORE_ID_LEN + 1];
  char network[WR_STORE_CIDR_MAX + 1];       /* canonical */
  char tunnel_id[WR_STORE_UUID_LEN + 1];
  char tunnel_name[WR_STORE_NAME_MAX + 1];
  char vnet_id[WR_STORE_UUID_LEN + 1];       /* "" only for rows from before schema 2 */
  char vnet_name[WR_STORE_NAME_MAX + 1];
  char comment[WR_STORE_COMMENT_MAX + 1];
  int64_t created_at;
  int64_t deleted_at;
} wr_ip_route;

typedef struct wr_ip_route_filter {
  const char *account_id; /* required */
  int include_deleted;
  int only_deleted;
  const char *tunnel_id;  /* or NULL */
  const char *vnet_id;    /* or NULL */
  const char *comment;    /* exact, or NULL */
  const char *id;         /* exact route UUID, or NULL */
} wr_ip_route_filter;

/* Routes |network| (wr_store_cidr_parse) of virtual network |vnet_id| (NULL:
 * the account's default, created if needed) to a live tunnel of the same
 * account. WR_ERR_EXISTS if that network of that virtual network is already
 * routed (overlapping networks are fine: the longest prefix wins);
 * WR_ERR_INVAL (bad network or comment, deleted tunnel or virtual network,
 * another account's tunnel); WR_ERR_NOTFOUND. */
int wr_store_ip_route_add(wr_store *s, const char *actor, const char *account_id,
                          const char *network, const char *tunnel_id, const char *vnet_id,
                          const char *comment, wr_ip_route *out);
/* wr_store_ip_route_add, plus: WR_ERR_LIMIT when the account already has
 * |max_routes| live IP routes (0: no limit), as wr_store_route_dns_add_max. */
int wr_store_ip_route_add_max(wr_store *s, const char *actor, const char *account_id,
                              const char *network, const char *tunnel_id, const char *vnet_id,
                              const char *comment, size_t max_routes, wr_ip_route *out);
/* By UUID, deleted or not. */
int wr_store_ip_route_get(wr_store *s, const char *id, wr_ip_route *out);
/* Oldest first. Network containment filters are the caller's
 * (wr_store_cidr_contains). */
int wr_store_ip_route_list(wr_store *s, const wr_ip_route_filter *f, wr_ip_route **out, size_t *n);
/* Soft-deletes a live route; |out| (may be NULL) gets it as it was.
 * WR_ERR_NOTFOUND (also for another account's route), WR_ERR_INVAL if
 * already deleted. */
int wr_store_ip_route_delete(wr_store *s, const char *actor, const char *account_id,
                             const char *id, wr_ip_route *out);
/* The number of live IP routes of an account. */
int wr_store_ip_route_count(wr_store *s, const char *account_id, size_t *n);

/* The audit log with paging and filters, newest first. */
typedef struct wr_audit_filter {
  const char *account_id; /* NULL: every account */
  const char *action;     /* exact action, or a prefix ending in '.' ("tunnel."), or NULL */
  int64_t since;          /* at >= since, when not 0 */
  int64_t until;          /* at < until, when not 0 */
  size_t limit;           /* 0: no limit */
  size_t offset;
} wr_audit_filter;
/* |total| (may be NULL) gets the number of matching rows without paging.
 * Free the rows with wr_store_audit_free. */
int wr_store_audit_query(wr_store *s, const wr_audit_filter *f, wr_audit **out, size_t *n,
                         size_t *total);

/* --- DNS record expiry (edge/dns.h wr_dns_cleanup) ---------------------------- */

/* Removes the DNS routes of tunnels that are deleted, or that have been
 * unregistered for at least |unregistered_s| seconds: no open connection,
 * the last one closed that long ago, and the route itself at least that old.
 * A tunnel that never connected keeps its routes. At most |limit| routes
 * (0: all) go per call, hostname order, in one transaction with one
 * "route.expire" audit row each (detail: tunnel_id, reason "tunnel deleted"
 * or "tunnel unregistered", since). |removed| gets the routes as they were
 * (free() it; NULL when none). Errors: WR_ERR_INVAL, WR_ERR_STORE. */
int wr_store_route_expire(wr_store *s, const char *actor, int64_t unregistered_s, size_t limit,
                          wr_route **removed, size_t *n);

/* --- schema 3: WireGuard devices (store_devices.c) -------------------------------
 * A device is a WireGuard peer of the edge (a laptop, a phone) that reaches
 * the IP routes of one virtual network of its account. The store keeps its
 * public key (never a private key), the addresses it was given and its
 * policy; revoked devices stay listed (revoked_at) so the audit trail and
 * `device list` still name them, but no longer count as peers. */

#define WR_STORE_WG_KEY_B64 44 /* base64 of a 32-byte key */
#define WR_STORE_DEVICE_ALLOWED_MAX 1024

/* Device address pools. IPv4: 100.96.0.0/12, the range Cloudflare's WARP
 * clients get, shared by every account (accounts never see each other's
 * devices, so the same address may be given out in two accounts). IPv6: a
 * ULA /64 per account, fd00::/8 + the first 40 bits of the account id +
 * subnet 0 (RFC 4193's Global ID, here derived instead of random so it is
 * stable), e.g. fd12:3456:789a::/64 for account 123456789a... The first
 * host of each pool (.0.1, ::1) is kept for the edge; devices get .0.2 up.
 * A device's two addresses share one host number. */
#define WR_STORE_DEVICE_POOL4 "100.96.0.0/12"

typedef struct wr_device {
  char id[WR_STORE_UUID_LEN + 1];
  char account_id[WR_STORE_ID_LEN + 1];
  char vnet_id[WR_STORE_UUID_LEN + 1];       /* "" = the account's default virtual network */
  char name[WR_STORE_NAME_MAX + 1];
  char public_key[WR_STORE_WG_KEY_B64 + 1];  /* base64, as `wg` prints keys */
  char ipv4[16];                             /* assigned, e.g. "100.96.0.2" */
  char ipv6[46];                             /* assigned, e.g. "fd12:3456:789a::2" */
  char allowed[WR_STORE_DEVICE_ALLOWED_MAX]; /* policy: comma-separated canonical CIDRs the
                                              * device may reach; "" = every route of its
                                              * virtual network (edge/device_policy.h) */
  int64_t created_at, revoked_at;            /* revoked_at 0: active */
  /* Statistics the running edge reports with wr_store_device_seen; 0 = never. */
  int64_t last_handshake;
  uint64_t rx_bytes, tx_bytes;
} wr_device;

/* Creates a device |name| (as tunnel names: 1..64 bytes, no '/', not a UUID;
 * unique among the account's active devices) with WireGuard public key
 * |public_key_b64| (44 characters of standard base64 of 32 bytes; unique
 * among active devices of every account, since the edge finds a peer by its
 * key). |vnet_id_or_null| NULL or "": the account's default virtual network
 * (stored as ""; it follows a change of default); else a live virtual
 * network of the account. |allowed_or_null|: the policy, as for
 * wr_store_device_set_allowed; NULL or "" allows every route. Assigns the
 * lowest free host number of the account's pools (revoked devices' addresses
 * are not reused, so an old config never reaches a new device's address).
 * Audited as device.create. Errors: WR_ERR_INVAL (name, key, policy, deleted
 * or foreign virtual network), WR_ERR_EXISTS (name or key taken),
 * WR_ERR_NOTFOUND (account, virtual network), WR_ERR_LIMIT (pool full). */
int wr_store_device_create(wr_store *s, const char *actor, const char *account_id,
                           const char *name, const char *public_key_b64,
                           const char *vnet_id_or_null, const char *allowed_or_null,
                           wr_device *out);
/* The devices of |account_id| (NULL: all accounts), oldest first; revoked
 * ones too if |include_revoked|. Free *out with free(). */
int wr_store_device_list(wr_store *s, const char *account_id, int include_revoked,
                         wr_device **out, size_t *n);
/* A device of an account by id (UUID, any case; revoked or not) or by name
 * (active devices only). WR_ERR_NOTFOUND. */
int wr_store_device_get(wr_store *s, const char *account_id, const char *id_or_name,
                        wr_device *out);
/* An active device by its public key (base64), in any account: how the
 * WireGuard ingress maps a handshake to a device. WR_ERR_NOTFOUND. */
int wr_store_device_by_key(wr_store *s, const char *public_key_b64, wr_device *out);
/* Sets revoked_at; audited as device.revoke. WR_ERR_NOTFOUND, WR_ERR_INVAL if
 * already revoked. */
int wr_store_device_revoke(wr_store *s, const char *actor, const char *account_id,
                           const char *id_or_name);
/* Replaces an active device's policy: |allowed| is comma-separated CIDRs
 * (wr_store_cidr_parse; spaces around entries ignored; stored canonical,
 * duplicates dropped), "" or NULL = every route of its virtual network.
 * Audited as device.policy. WR_ERR_INVAL (a bad CIDR, too long, revoked),
 * WR_ERR_NOTFOUND. */
int wr_store_device_set_allowed(wr_store *s, const char *actor, const char *account_id,
                                const char *id_or_name, const char *allowed);
/* Canonicalises a policy as set_allowed stores it, into |out| (|size| bytes).
 * WR_OK, WR_ERR_INVAL or WR_ERR_LIMIT with the reason in |err|. */
int wr_store_device_policy_canon(const char *allowed, char *out, size_t size, char *err,
                                 size_t errlen);
/* Records what the running edge saw of device |id| (UUID): the time of its
 * last completed handshake (0: keep) and its byte counters (totals since
 * the edge started, stored as given). Not audited. WR_ERR_NOTFOUND. */
int wr_store_device_seen(wr_store *s, const char *id, int64_t last_handshake, uint64_t rx,
                         uint64_t tx);


/* --- schema 6: edges sharing one store (edge/cluster.h) ----------------------
 * Each running edge keeps a row (its id, a fresh UUID per run, and the
 * addresses it serves on) and refreshes its heartbeat; the connections it
 * serves carry its id (wr_conn_rec.edge_id). Times are the edges' clocks:
 * edges sharing a store keep them in step (NTP). */

#define WR_STORE_ADDR_MAX 63
typedef struct wr_edge_rec {
  char id[WR_STORE_UUID_LEN + 1];
  char tunnel_addr[WR_STORE_ADDR_MAX + 1];  /* HOST:PORT connectors dial */
  char visitor_addr[WR_STORE_ADDR_MAX + 1]; /* HOST:PORT of the HTTP front */
  char peer_addr[WR_STORE_ADDR_MAX + 1];    /* HOST:PORT other edges forward to; "" none */
  int64_t started_at;
  int64_t heartbeat_at;
} wr_edge_rec;

/* The heartbeat of edge |e| (id and addresses; the times are set here):
 * inserts its row if it is missing (the first beat, or other edges expired
 * it while it could not reach the store) and then marks the connections
 * |live| (its registered connection ids, |nlive| of them) open and its
 * own again, since expiry closed them. *|closed| (malloc'd, may be NULL
 * when *nclosed is 0) gets those of |live| the store has closed anyway:
 * closed by another edge or the CLI (`tunnel cleanup`), which this edge
 * must now close too. One transaction. WR_OK or a store error. */
int wr_store_edge_beat(wr_store *s, const wr_edge_rec *e, const char (*live)[WR_STORE_UUID_LEN + 1],
                       size_t nlive, char (**closed)[WR_STORE_UUID_LEN + 1], size_t *nclosed);
/* Removes the rows of edges whose heartbeat is older than |before| and
 * closes their open connections: an edge that died. *expired (may be
 * NULL) gets how many edges went. */
int wr_store_edge_expire(wr_store *s, int64_t before, size_t *expired);
/* A clean stop: closes the connections of edge |id| and removes its row. */
int wr_store_edge_remove(wr_store *s, const char *id);
/* Every edge row, oldest first. */
int wr_store_edge_list(wr_store *s, wr_edge_rec **out, size_t *n);

/* A tunnel with an open connection on another edge, and where to forward. */
typedef struct wr_edge_route {
  char tunnel_id[WR_STORE_UUID_LEN + 1];
  char edge_id[WR_STORE_UUID_LEN + 1];
  char peer_addr[WR_STORE_ADDR_MAX + 1];
} wr_edge_route;
/* Every (tunnel, edge) pair with an open connection on an edge other than
 * |self| whose heartbeat is at or after |fresh_since| and which takes
 * forwarded requests (a peer address), ordered by tunnel. */
int wr_store_edge_routes(wr_store *s, const char *self, int64_t fresh_since, wr_edge_route **out,
                         size_t *n);

#endif
