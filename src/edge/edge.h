/* The edge process's one owner (`warren-edge run`): it opens the store and
 * starts every configured subsystem, drains them on shutdown and frees them,
 * all in one place, as h2o's and nginx's cycle objects do. The command line
 * (src/cmd/edge_run.c) only turns flags into wr_edge_options, handles
 * signals and runs the loop:
 *
 *   wr_edge_new(loop, &opts, &edge, err, errlen)   every listener is up
 *   uv_run(loop, UV_RUN_DEFAULT)                   serve
 *   wr_edge_begin_shutdown(edge)                   (from the signal handler,
 *                                                   before uv_stop)
 *   wr_edge_drain(edge)                            say goodbye
 *   wr_edge_free(edge)                             release, in reverse order
 *
 * Subsystems, in start order (each one a row of a table in edge.c, so a new
 * ingress such as TUN, WireGuard, HTTPS or HTTP/3 is one more row):
 *   store        DIR/warren.db (SQLite), or the database of |store| (PostgreSQL)
 *   tunnels      the QUIC endpoint on |tunnel| with DIR/tunnel-server.pem and
 *                the stateless-reset key DIR/quic-reset.key (created on the
 *                first run, mode 0600), and the tunnel server that registers
 *                connectors on it; its sweeper closes the connections of
 *                tunnels deleted by other processes
 *   cluster      with a PostgreSQL store only: this edge's row and heartbeat
 *                among the edges sharing it, forwarding of streams to the
 *                edge that holds a tunnel's connection, and the listener
 *                for streams other edges forward here (|peer|)
 *   router       the router for private traffic (edge/router.h): `route ip`
 *                lookups, ICMP and UDP flows over connector datagrams
 *   tun          the TUN device |tun.name| (optional) feeding the router as
 *                the clients of |tun.account| (ID or name; default: the
 *                only account) and |tun.vnet| (ID or name; default: the
 *                account's default virtual network)
 *   wireguard    the WireGuard ingress on |wireguard.listen| (optional):
 *                the store's devices as router ingresses
 *   acme         ACME certificates for the HTTPS front (optional, edge/acme.h):
 *                scans the routes and orders on a worker thread
 *   visitors     the HTTP/1.1 visitor front on |http|, and on |https| (optional)
 *                the same front over TLS with certificates by SNI and the
 *                per-zone options (edge/zone_settings.h)
 *   dns          the authoritative DNS server on |dns| (optional)
 *   api          the REST API and the login pages on one HTTP server on
 *                |api| (optional)
 *   dns-update   RFC 2136 pushes to |dns_update.server| (optional)
 *   dns-janitor  the periodic cleanup of stale routes
 *   metrics      /metrics, /ready, /healthcheck on |metrics| (optional);
 *                /ready says "ready" once every row above started
 * Each logs what it serves as it starts ("Listening for connectors on …",
 * "Serving visitors on http://…", "Serving DNS on …", "Serving the API on
 * …", "Pushing route records to …", "Starting metrics server on …").
 *
 * Shutdown order, and why:
 *   drain  metrics first (it reads every other subsystem, so it goes before
 *          any of them), then visitors (their data streams are reset while
 *          the QUIC connections still exist), then every registered
 *          connector is told the edge is going away (CONNECTION_CLOSE, code
 *          0: it reconnects at once instead of after its idle timeout), then
 *          the loop runs for 100 ms so those packets leave.
 *   free   the reverse of the start order in two passes. First every row
 *          closes its handles (metrics, janitor, updater, the login pages
 *          before the API's HTTP server since they answer their held polls
 *          through it, DNS, visitors, the tunnel sweeper and the QUIC
 *          endpoint), then the loop runs until libuv has called every close
 *          callback, then the memory goes (the API, the tunnel server, which
 *          must outlive the endpoint's connections, the TLS credentials, and
 *          the store last, since everything above reads it).
 *
 * Threading: everything runs on |loop|'s thread. Only wr_edge_begin_shutdown
 * may be called from a callback on the loop; wr_edge_new, wr_edge_drain and
 * wr_edge_free run the loop themselves and must be called with no uv_run on
 * the stack. */
#ifndef WR_EDGE_EDGE_H
#define WR_EDGE_EDGE_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

typedef struct wr_edge wr_edge;

/* One listening address: |text| as the operator wrote it (for logs and
 * errors) and |addr| already parsed from it (numeric HOST:PORT, port 0
 * picks one). An optional listener with |text| NULL or "" is off. */
typedef struct wr_edge_listen {
  const char *text;
  struct sockaddr_storage addr;
} wr_edge_listen;

/* What the edge runs. Plain values, read only during wr_edge_new (every
 * string is copied or used before it returns). Zero numbers take the
 * subsystem's default. */
typedef struct wr_edge_options {
  const char *data_dir;  /* required: warren.db, tunnel-server.pem/.key,
                          * quic-reset.key, the origin CA for logins */
  const char *store;      /* optional: where the store lives instead of
                          * DATA_DIR/warren.db, a PostgreSQL connection
                          * string (edge/db.h); NULL or "": the file */
  wr_edge_listen tunnel; /* required: QUIC (UDP) and HTTP/2 (TCP, same port) for connectors */
  wr_edge_listen http;   /* required: visitors (TCP). Its host is the edge's
                          * public address in DNS answers and pushed records */
  wr_edge_listen https;  /* optional: visitors over TLS, certificates by SNI
                          * (edge/certs.h: uploaded, else ACME, else issued by DIR/ca.pem) */
  int no_http3;          /* with |https|: no HTTP/3 on its UDP port (and no Alt-Svc) */
  wr_edge_listen dns;    /* optional: authoritative DNS, UDP and TCP */
  wr_edge_listen api;    /* optional: /client/v4 and /argotunnel */
  /* Edges sharing a PostgreSQL store (edge/cluster.h, edge/peer.h): where
   * other edges forward streams of tunnels connected here (optional; TLS
   * with DIR/ca.pem's certificates both ways), and the HOST:PORT they are
   * told to dial (NULL or "": the bound address of |peer|). Ignored with a
   * SQLite store. */
  wr_edge_listen peer;
  const char *peer_advertise;
  const char *metrics;   /* optional HOST:PORT; the host may be a name,
                          * resolved when the server starts */
  /* QUIC handshakes in progress, in all and per source; Retry starts at a
   * tenth of the first and a fifth of the second (net/quic.h). 0: quic.h's
   * defaults for both the cap and its Retry threshold. */
  unsigned max_half_open;
  unsigned max_half_open_per_source;
  /* Visitor limits as in wr_visitor_config (edge/visitor.h): 0 takes the
   * default, WR_VISITOR_OFF turns a limit off. max_visitor_conns is lowered
   * (with a warning) when RLIMIT_NOFILE cannot be raised to fit it. */
  size_t max_visitor_conns;
  size_t max_conns_per_source;
  size_t requests_per_second_per_source;
  size_t request_burst_per_source;
  /* The TUN ingress; off when |name| is NULL or "". mtu 0: 1280. */
  struct {
    const char *name;
    const char *account;
    const char *vnet;
    unsigned mtu;
  } tun;
  /* The WireGuard ingress (edge/wg_ingress.h); off when |listen.text| is
   * NULL or "". The edge's key is DATA_DIR/wireguard.key (created if
   * missing). The two numbers are for tests: 0 takes the protocol's
   * defaults (cookies above 200 handshakes a second; the edge renews a
   * session the client made once it is 165 s old). */
  struct {
    wr_edge_listen listen;
    unsigned cookie_threshold;
    uint64_t rekey_responder_ms;
  } wireguard;
  /* RFC 2136 pushes of the API's route changes (edge/dns_update.h); off
   * when |server| is NULL or "". |zone| is then required; without
   * |key_name| and |key_secret| updates go unsigned; |key_algorithm| NULL:
   * hmac-sha256. */
  struct {
    const char *server;
    const char *zone;
    const char *key_algorithm;
    const char *key_name;
    const char *key_secret;
  } dns_update;
  /* Quick tunnels on the API listener (POST /tunnel, edge/api.h); off when
   * |account| is NULL or "". Zeros take wr_api_config's defaults. */
  struct {
    const char *account;
    const char *zone;
    unsigned per_source;
    size_t max;
    int64_t idle_s;
  } quick;
  /* The management hostname (edge/visitor_mgmt.c): its requests go to the
   * tunnel their token names, checked with DATA_DIR/management.key
   * (edge/mgmt_key.h, created if missing). NULL or "": none. */
  const char *management_hostname;
  /* The traffic inspector (edge/inspect.h), shown on the dashboard:
   * |requests| per tunnel (0: off), bodies kept (up to
   * WR_INSPECT_DEFAULT_BODY_CAP bytes each way) only with |bodies|. */
  struct {
    size_t requests;
    int bodies;
  } inspect;
  /* Access (edge/access.h): the team domain (sign-in pages, the tokens'
   * "iss"); NULL: http://<the API listener's address>. Access runs always:
   * hosts without an Access application are not affected. */
  const char *access_team_domain;
  /* ACME (edge/acme.h): certificates for every routed hostname from the CA
   * at |directory| (NULL or "": off; needs |https|). |dns01| answers
   * DNS-01 on |dns| (required then), else HTTP-01 on |http|. */
  struct {
    const char *directory;
    const char *email;
    const char *ca_file;
    int dns01;
  } acme;
} wr_edge_options;

/* Opens the store and starts every configured subsystem in the order
 * above. On success *out owns them all and /ready answers 200.
 * On failure everything started so far is stopped and freed again (the
 * loop runs for that), *out is NULL and |err| says why, or is "" when the
 * failing subsystem gave no reason. Returns:
 *   WR_OK
 *   WR_ERR_STORE   the store could not be opened (missing, not a database,
 *                  a newer schema); only this step returns it
 *   WR_ERR_INVAL   a required option is missing
 *   otherwise what the failing subsystem returned: WR_ERR_IO (cannot
 *   listen; cannot create quic-reset.key), WR_ERR_CRYPTO or WR_ERR_CONFIG
 *   (the tunnel-server certificate, the DNS update key), WR_ERR_NOMEM.
 * Not callable from a callback on |loop|. */
int wr_edge_new(uv_loop_t *loop, const wr_edge_options *opts, wr_edge **out, char *err,
                size_t errlen);

/* The edge is about to stop: /ready answers 503 "shutting down" from now
 * on. Stops nothing else; the caller ends its uv_run and calls
 * wr_edge_drain. Idempotent; callable from any callback on the loop (a
 * signal handler). */
void wr_edge_begin_shutdown(wr_edge *e);

/* The graceful part of shutdown (see above): the metrics server and the
 * visitor front close, connectors are told, and the loop runs for 100 ms
 * to send that. Call once, after the serving uv_run returned; not from a
 * callback. */
void wr_edge_drain(wr_edge *e);

/* Stops what is left and frees everything in reverse start order (see
 * above), running the loop until every handle the edge owned is closed.
 * Other active handles on the loop keep that run going: close them first.
 * The loop itself stays the caller's to close. NULL is a no-op; not
 * callable from a callback. */
void wr_edge_free(wr_edge *e);

#endif
