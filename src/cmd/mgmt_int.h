/* Internals shared by the management commands of `warren tunnel`
 * (tunnel_mgmt.c, tunnel_route_ip.c, tunnel_login.c): a client for the
 * Cloudflare API v4 subset cloudflared calls (mgmt_api.c), the objects it
 * returns decoded with Go's encoding/json rules, and output that matches
 * cloudflared 2023.7.3 byte for byte: Go's text/tabwriter tables, Go's time
 * formats, `-o json` as Go's json.Encoder with two-space indent and `-o
 * yaml` as gopkg.in/yaml.v3 (mgmt_out.c).
 *
 * Messages follow cloudflared's error wrapping ("failed to create tunnel:
 * Create Tunnel API call failed: REST request failed: Post \"…\": …"):
 * functions that fail fill an wr__mg_err with the innermost text and callers
 * prefix their context with wr__mg_wrap().
 *
 * Out-of-memory aborts (wr_x*), as everywhere outside the codecs. */
#ifndef WR_CMD_MGMT_INT_H
#define WR_CMD_MGMT_INT_H
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cmd/cli.h"
#include "lib/config.h"
#include "lib/credentials.h"
#include "lib/encoding.h"

#define WR__MG_DEFAULT_API_URL "https://api.cloudflare.com/client/v4"
#define WR__MG_ERRLEN 2048

typedef struct wr__mg_err {
  char msg[WR__MG_ERRLEN];
} wr__mg_err;

/* Sets the message. */
void wr__mg_errf(wr__mg_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes "<context>: " as errors.Wrap does. */
void wr__mg_wrap(wr__mg_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- command context --------------------------------------------------------- */

typedef struct wr__mg_ctx {
  wr_opts *opts;
  const char *path;   /* "tunnel create", for usage messages */
  wr_config *cfg;     /* config.yml, or NULL */
  /* the API client, set up on first use (wr__mg_client) */
  int have_client;
  char *cert_path;    /* the cert.pem used, expanded */
  wr_origin_cert cert;
  char base[1024];    /* api-url without a trailing '/' */
  /* create, delete and token declare --credentials-file themselves in
   * cloudflared, without the config-file source: config.yml's
   * `credentials-file:` (meant for `run`) does not reach them. */
  int cred_file_cli_only;
} wr__mg_ctx;

/* The start of every management command, as cloudflared's ConfiguredAction:
 * loads --config or the default config.yml under the command line (its
 * `api-url:`, `origincert:`, `credentials-file:` ... count), applies
 * --loglevel. Returns WR_OK or prints the error and returns WR_EXIT_FAIL. */
int wr__mg_begin(wr__mg_ctx *c, wr_opts *o, const char *path);
void wr__mg_end(wr__mg_ctx *c);
/* Prints "<msg>\nSee 'warren <path> --help'." to stderr and returns
 * WR_EXIT_USAGE (cloudflared's usage error). */
int wr__mg_usage(const wr__mg_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints |e| to stderr and returns WR_EXIT_FAIL. */
int wr__mg_fail(const wr__mg_err *e);

/* Reads cert.pem (--origincert, TUNNEL_ORIGIN_CERT, `origincert:`, else the
 * first cert.pem in the default directories) and fixes the API base
 * (--api-url, TUNNEL_API_URL, `api-url:`, else api.cloudflare.com). The
 * same checks and messages as cloudflared's credentials.Read. Returns WR_OK
 * or an error in |e|. Idempotent. */
int wr__mg_client(wr__mg_ctx *c, wr__mg_err *e);

/* ---- API calls (mgmt_api.c) --------------------------------------------------- */

/* One call to {base}{path}[?query] with the Bearer token and cloudflared's
 * headers; |body| (may be NULL) is sent as compact JSON. |op| names the
 * operation in messages ("list tunnels", "create tunnel", ...).
 *
 * On HTTP 200 the envelope is checked as cloudflared does (errors[] first,
 * then success) and, with |want_result|, *result gets a new reference to
 * `result` (JSON null if it was null; its absence is an error). Any other
 * status becomes cloudflared's statusCodeToError text: "Failed to <op>:
 * code: N, reason: …" when the answer is exactly application/json with
 * errors[], else "incorrect request parameters" (400), "unauthorized"
 * (401/403), "not found" (404) or "API call to <op> failed with status N:
 * <text>". Transport errors read "REST request failed: <Go's error>".
 * *status (may be NULL) gets the HTTP status (0 on transport errors).
 * Returns WR_OK, WR_ERR_IO (transport), WR_ERR_PROTO (undecodable answer)
 * or WR_ERR_DENIED (an API error; |e| has the text). */
int wr__mg_call(wr__mg_ctx *c, const char *method, const char *path, const char *query, json_t *body,
            const char *op, int want_result, json_t **result, int *status, wr__mg_err *e);

/* A query string in Go's url.Values.Encode() form: keys sorted, values
 * QueryEscape'd. Add pairs, then wr__mg_query_str(). Values are copied. */
typedef struct wr__mg_query {
  char *keys[16];
  char *vals[16];
  size_t n;
  char *str;
} wr__mg_query;
void wr__mg_query_set(wr__mg_query *q, const char *key, const char *val); /* replaces */
const char *wr__mg_query_str(wr__mg_query *q); /* "" when empty; valid until wr__mg_query_free */
void wr__mg_query_free(wr__mg_query *q);

/* ---- objects, decoded with Go's rules ------------------------------------------ */

/* time.Time as cloudflared holds it: the instant and the zone offset it was
 * written with (RFC 3339). The zero value is Go's zero time. */
typedef struct wr__mg_time {
  int set;             /* 0: Go's zero time (0001-01-01T00:00:00Z) */
  int year, mon, day, hour, min, sec;
  uint32_t nsec;
  int off_min;         /* zone offset in minutes east of UTC */
} wr__mg_time;

/* net.IP as 16 bytes; |len| 0 = nil, 4 or 16 as Go keeps it. */
typedef struct wr__mg_ip {
  uint8_t b[16];
  int len;
} wr__mg_ip;

typedef struct wr__mg_conn {
  char *colo_name;
  wr_uuid id;
  int pending;         /* is_pending_reconnect */
  wr__mg_ip origin_ip;
  wr__mg_time opened_at;
} wr__mg_conn;

typedef struct wr__mg_tunnel {
  wr_uuid id;
  char *name;
  wr__mg_time created_at, deleted_at;
  wr__mg_conn *conns;
  size_t nconns;
  int conns_null;      /* JSON null or absent (Go: nil slice) */
  char *token;         /* create only: "" if absent */
} wr__mg_tunnel;

typedef struct wr__mg_client_info {  /* cloudflared's ActiveClient */
  wr_uuid id;
  char **features;
  size_t nfeatures;
  int features_null;
  char *version, *arch;
  wr__mg_time run_at;
  wr__mg_conn *conns;
  size_t nconns;
  int conns_null;
} wr__mg_client_info;

typedef struct wr__mg_cidr {         /* net.IPNet; len 0 = the zero IPNet */
  wr__mg_ip ip;
  int bits;            /* prefix length */
} wr__mg_cidr;

typedef struct wr__mg_route {        /* Route / DetailedRoute */
  wr__mg_cidr network;
  wr_uuid tunnel_id;
  int has_vnet;
  wr_uuid vnet_id;
  char *comment;
  wr__mg_time created_at, deleted_at;
  char *tunnel_name;   /* DetailedRoute */
} wr__mg_route;

typedef struct wr__mg_vnet {
  wr_uuid id;
  char *comment, *name;
  int is_default;
  wr__mg_time created_at, deleted_at;
} wr__mg_vnet;

/* Decoders: WR_OK or WR_ERR_PROTO with |e| set to "the Cloudflare API
 * response was an unexpected type: <why>". Arrays: *n elements; *is_null
 * set when the JSON was null. Free with the matching *_free. */
int wr__mg_decode_tunnel(const json_t *j, wr__mg_tunnel *t, wr__mg_err *e);
int wr__mg_decode_tunnels(const json_t *j, wr__mg_tunnel **out, size_t *n, int *is_null, wr__mg_err *e);
int wr__mg_decode_clients(const json_t *j, wr__mg_client_info **out, size_t *n, int *is_null, wr__mg_err *e);
int wr__mg_decode_route(const json_t *j, wr__mg_route *r, wr__mg_err *e);
int wr__mg_decode_routes(const json_t *j, wr__mg_route **out, size_t *n, int *is_null, wr__mg_err *e);
int wr__mg_decode_vnet(const json_t *j, wr__mg_vnet *v, wr__mg_err *e);
int wr__mg_decode_vnets(const json_t *j, wr__mg_vnet **out, size_t *n, int *is_null, wr__mg_err *e);
void wr__mg_tunnel_free(wr__mg_tunnel *t);
void wr__mg_tunnels_free(wr__mg_tunnel *t, size_t n);
void wr__mg_clients_free(wr__mg_client_info *c, size_t n);
void wr__mg_route_free(wr__mg_route *r);
void wr__mg_routes_free(wr__mg_route *r, size_t n);
void wr__mg_vnet_free(wr__mg_vnet *v);
void wr__mg_vnets_free(wr__mg_vnet *v, size_t n);

/* Go's parsers, for command-line arguments too. */
/* google/uuid Parse (canonical, {…}, urn:uuid:…, 32 hex); |why| gets Go's
 * "invalid UUID length: N" / "invalid UUID format". */
int wr__mg_uuid_parse(const char *s, wr_uuid *u, char *why, size_t whylen);
int wr__mg_time_parse(const char *s, wr__mg_time *t);       /* RFC 3339 */
int wr__mg_ip_parse(const char *s, wr__mg_ip *ip);          /* net.ParseIP */
int wr__mg_cidr_parse(const char *s, wr__mg_cidr *c);       /* net.ParseCIDR: masked network */
/* Go's String() forms; |out| needs 64 bytes. */
void wr__mg_ip_str(const wr__mg_ip *ip, char *out);         /* "<nil>" for nil */
void wr__mg_cidr_str(const wr__mg_cidr *c, char *out);      /* "<nil>" for the zero IPNet */
void wr__mg_time_rfc3339(const wr__mg_time *t, char *out);  /* time.RFC3339 */
void wr__mg_time_nano(const wr__mg_time *t, char *out);     /* time.RFC3339Nano (JSON, YAML) */
void wr__mg_time_string(const wr__mg_time *t, char *out);   /* time.Time.String() */
int64_t wr__mg_time_unix(const wr__mg_time *t);
/* Go's IsZero: the instant 0001-01-01T00:00:00Z (in any zone). */
int wr__mg_time_is_zero(const wr__mg_time *t);

/* --credentials-file as the command sees it (see cred_file_cli_only), or
 * NULL. */
const char *wr__mg_cred_file(const wr__mg_ctx *c);

/* Go's sort.Slice (pdqsort, not stable), so that equal keys end up in
 * cloudflared's order. |less| gets pointers to two elements. */
typedef int (*wr__mg_less_fn)(void *ctx, const void *a, const void *b);
void wr__mg_sort_slice(void *base, size_t n, size_t size, wr__mg_less_fn less, void *ctx);

/* ---- shared steps ------------------------------------------------------------------- */

/* cloudflared's findID: a UUID as is; else the TunnelID of a readable
 * --credentials-file; else the one non-deleted tunnel with that name
 * (GET …/cfd_tunnel?is_deleted=false&name=NAME, first element). */
int wr__mg_find_id(wr__mg_ctx *c, const char *ref, wr_uuid *out, wr__mg_err *e);
/* cloudflared's findIDs (delete, cleanup): UUIDs as given first, then each
 * name, which must match exactly one non-deleted tunnel. *out is
 * malloc'ed with *n entries. */
int wr__mg_find_ids(wr__mg_ctx *c, char **refs, int nrefs, wr_uuid **out, size_t *n, wr__mg_err *e);
/* GET …/cfd_tunnel?<filter> decoded. */
int wr__mg_list_tunnels(wr__mg_ctx *c, wr__mg_query *filter, wr__mg_tunnel **out, size_t *n, int *is_null,
                    wr__mg_err *e);
/* For `tunnel run NAME` (cloudflared's runNamedTunnel): wr__mg_find_id
 * with a context of its own, for a caller that has already applied
 * config.yml to |o|. |err| gets "error parsing tunnel ID: <why>". */
int wr__mg_resolve_tunnel(wr_opts *o, const char *ref, wr_uuid *out, char *err, size_t errlen);
/* Writes tunnel credentials as cloudflared's writeTunnelCredentials: refuses
 * an existing file ("<path> already exists"), mode 0400, compact JSON. */
int wr__mg_write_credentials(const char *path, const wr_credentials *cred, wr__mg_err *e);

/* ---- output (mgmt_out.c) -------------------------------------------------------------- */

/* A tree of Go values to print with -o json or -o yaml. Nodes live in an
 * arena and die with it. */
typedef struct wr__gv wr__gv;
wr__gv *wr__gv_obj(wr_arena *a);
wr__gv *wr__gv_arr(wr_arena *a);
wr__gv *wr__gv_str(wr_arena *a, const char *s);
wr__gv *wr__gv_time(wr_arena *a, const wr__mg_time *t); /* RFC3339Nano; plain in YAML */
wr__gv *wr__gv_bool(wr_arena *a, int b);
wr__gv *wr__gv_int(wr_arena *a, long long v);
wr__gv *wr__gv_null(wr_arena *a);
wr__gv *wr__gv_uuid(wr_arena *a, const wr_uuid *u);
/* Appends to an object (keys kept in order) or an array; returns |v|. */
wr__gv *wr__gv_put(wr__gv *obj, const char *key, wr__gv *v);
wr__gv *wr__gv_push(wr__gv *arr, wr__gv *v);

/* Prints |v| to stdout as Go's json.Encoder with SetIndent("", "  ") or as
 * yaml.v3's Encoder. */
void wr__mg_print_json(const wr__gv *v);
void wr__mg_print_yaml(const wr__gv *v);
/* Validates -o: "" (text), "json" or "yaml"; else fills |e| with
 * "Unknown output format 'x'". */
int wr__mg_output_format(const wr__mg_ctx *c, const char **fmt, wr__mg_err *e);
/* Renders |v| in |fmt| ("json" or "yaml"). */
void wr__mg_render(const char *fmt, const wr__gv *json_tree, const wr__gv *yaml_tree);

/* Go's text/tabwriter with cloudflared's settings (minwidth 0, padding 1,
 * space padding): every row is a list of tab-terminated cells; a column is
 * as wide as its widest cell (counted in runes) plus one. */
typedef struct wr__mg_table {
  char ***rows;
  size_t *ncells;
  size_t n, cap;
} wr__mg_table;
void wr__mg_table_row(wr__mg_table *t, size_t ncells, ...); /* const char * cells, copied */
void wr__mg_table_print(wr__mg_table *t);                   /* and frees */

/* Builders shared by the commands. */
wr__gv *wr__mg_tunnel_gv(wr_arena *a, const wr__mg_tunnel *t, int yaml);
wr__gv *wr__mg_conns_gv(wr_arena *a, const wr__mg_conn *c, size_t n, int is_null, int yaml);

/* cloudflared's fmtConnections: "2xdfw01, 1xlax01" (colos sorted, pending
 * connections only with |show_recent|). Caller frees. */
char *wr__mg_fmt_connections(const wr__mg_conn *c, size_t n, int show_recent);

#endif
