/* Internals shared by the management commands of `warren tunnel`
 * (tunnel_mgmt.c, tunnel_route_ip.c, tunnel_login.c), thin commands over
 * the API client in src/cfapi/:
 *  - the command context: config.yml, --loglevel, and the cfapi client
 *    made from cert.pem and --api-url as cloudflared's credentials.Read
 *    and NewRESTClient do (mgmt_ctx.c);
 *  - the steps cloudflared's subcommands share: a tunnel or virtual
 *    network named by ID or name, credentials files (mgmt_ctx.c);
 *  - flags to API filters, as tables (mgmt_ctx.c);
 *  - output that matches cloudflared 2023.7.3 byte for byte: Go's
 *    text/tabwriter tables, -o json|yaml rendered by cfapi/render.h
 *    (mgmt_out.c), and Go's sort.Slice for --sort-by (mgmt_sort.c).
 *
 * Errors are wr_cfapi_error values (cfapi/client.h) wrapped with
 * cloudflared's context ("failed to create tunnel: Create Tunnel API call
 * failed: …") and printed once, by wr__mg_fail.
 *
 * Out-of-memory aborts (wr_x*), as everywhere outside the codecs. */
#ifndef WR_CMD_MGMT_INT_H
#define WR_CMD_MGMT_INT_H
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cfapi/client.h"
#include "cfapi/render.h"
#include "cfapi/tunnels.h"
#include "cmd/cli.h"
#include "lib/config.h"
#include "lib/credentials.h"
#include "lib/encoding.h"
#include "lib/err.h"

/* ---- command context --------------------------------------------------------- */

typedef struct wr__mg_ctx {
  wr_opts *opts;
  const char *path;    /* "tunnel create", for usage messages */
  wr_config *cfg;      /* config.yml, or NULL */
  wr_cfapi_client *api; /* set up on first use (wr__mg_client) */
  char *cert_path;     /* the cert.pem used, expanded */
  wr_origin_cert cert;
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
int wr__mg_fail(const wr_cfapi_error *e);
/* A command's status while it has failed with the reason in its
 * wr_cfapi_error (any WR_ERR_* value means that to wr__mg_finish). Commands
 * start with it and set WR_OK, or an exit status, when they get that far. */
#define WR__MG_FAILED WR_ERR_INVAL
/* The end of every management command: |rv| below zero (a WR_ERR_* value)
 * prints |e| and becomes WR_EXIT_FAIL; WR_OK and the WR_EXIT_* statuses
 * (whose messages are printed already) stay. Ends |c| (wr__mg_end) either
 * way and returns the exit status. */
int wr__mg_finish(wr__mg_ctx *c, int rv, const wr_cfapi_error *e);

/* Reads cert.pem (--origincert, TUNNEL_ORIGIN_CERT, `origincert:`, else the
 * first cert.pem in the default directories) and makes c->api for the API
 * base (--api-url, TUNNEL_API_URL, `api-url:`, else api.cloudflare.com).
 * The same checks and messages as cloudflared's credentials.Read. Returns
 * WR_OK or an error in |e|. Idempotent. */
int wr__mg_client(wr__mg_ctx *c, wr_cfapi_error *e);

/* --credentials-file as the command sees it (see cred_file_cli_only), or
 * NULL. */
const char *wr__mg_cred_file(const wr__mg_ctx *c);

/* ---- shared steps ------------------------------------------------------------------- */

/* cloudflared's findID: a UUID as is; else the TunnelID of a readable
 * --credentials-file; else the one non-deleted tunnel with that name
 * (GET …/cfd_tunnel?is_deleted=false&name=NAME, first element). */
int wr__mg_find_id(wr__mg_ctx *c, const char *ref, wr_uuid *out, wr_cfapi_error *e);
/* cloudflared's findIDs (delete, cleanup): UUIDs as given first, then each
 * name, which must match exactly one non-deleted tunnel. *out is
 * malloc'ed with *n entries. */
int wr__mg_find_ids(wr__mg_ctx *c, char **refs, int nrefs, wr_uuid **out, size_t *n, wr_cfapi_error *e);
/* getVnetId: a UUID as is, else the one non-deleted virtual network of
 * that name. */
int wr__mg_vnet_id(wr__mg_ctx *c, const char *ref, wr_uuid *out, wr_cfapi_error *e);
/* For `tunnel run NAME` (cloudflared's runNamedTunnel): wr__mg_find_id
 * with a context of its own, for a caller that has already applied
 * config.yml to |o|. |err| gets "error parsing tunnel ID: <why>". */
int wr__mg_resolve_tunnel(wr_opts *o, const char *ref, wr_uuid *out, char *err, size_t errlen);
/* Writes tunnel credentials as cloudflared's writeTunnelCredentials: refuses
 * an existing file ("<path> already exists"), mode 0400, compact JSON. */
int wr__mg_write_credentials(const char *path, const wr_credentials *cred, wr_cfapi_error *e);

/* ---- flags to API filters ------------------------------------------------------------ */

typedef enum wr__mg_qkind {
  WR__MG_Q_STR,          /* a non-empty value as is */
  WR__MG_Q_UUID,         /* a non-empty value, parsed as a UUID, canonical */
  WR__MG_Q_TIME,         /* a non-empty value, parsed as RFC 3339, re-formatted */
  WR__MG_Q_CIDR,         /* a given value (even empty), parsed as a CIDR, canonical */
  WR__MG_Q_POSINT,       /* a value whose atoi() is > 0, as that number */
  WR__MG_Q_BOOL,         /* always: "true" or "false" */
  WR__MG_Q_BOOL_IFSET,   /* "true" or "false" when the flag was given */
  WR__MG_Q_FALSE_UNLESS, /* "false" unless the flag is true */
} wr__mg_qkind;

/* One flag that becomes a query parameter. |err| is the message for a
 * value that does not parse: a format with two %s, the value (or with
 * |err_names_flag| the flag's name) and the parser's reason (for TIME:
 * the value twice; CIDR: the value once). */
typedef struct wr__mg_qflag {
  const char *flag, *param;
  wr__mg_qkind kind;
  const char *err;
  int err_names_flag;
} wr__mg_qflag;

/* Adds the parameters of the flags in |t| (ended by a NULL flag), in
 * order; stops at the first bad value. Returns WR_OK or WR_ERR_INVAL. */
int wr__mg_query_flags(const wr_opts *o, const wr__mg_qflag *t, wr_cfapi_query *q, wr_cfapi_error *e);

/* ---- output (mgmt_out.c) -------------------------------------------------------------- */

typedef enum wr__mg_format { WR__MG_TEXT, WR__MG_JSON, WR__MG_YAML } wr__mg_format;

/* Validates -o: "" (text), "json" or "yaml"; else fills |e| with
 * "Unknown output format 'x'". */
int wr__mg_output_format(const wr__mg_ctx *c, wr__mg_format *fmt, wr_cfapi_error *e);
/* The cfapi encoding for a structured format. */
wr_cfapi_enc wr__mg_enc(wr__mg_format fmt);
/* Prints |v| rendered as |fmt| to stdout (and flushes). */
void wr__mg_print(wr__mg_format fmt, const wr_cfapi_node *v);

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

/* cloudflared's fmtConnections: "2xdfw01, 1xlax01" (colos sorted, pending
 * connections only with |show_recent|). Caller frees. */
char *wr__mg_fmt_connections(const wr_cfapi_conn *c, size_t n, int show_recent);

/* Go's sort.Slice (pdqsort, not stable), so that equal keys end up in
 * cloudflared's order. |less| gets pointers to two elements. */
typedef int (*wr__mg_less_fn)(void *ctx, const void *a, const void *b);
void wr__mg_sort_slice(void *base, size_t n, size_t size, wr__mg_less_fn less, void *ctx);

/* --sort-by and --invert-sort over a table of fields: Less(i, j) is "i <
 * j" by the chosen field, negated with --invert-sort; an unknown field
 * sorts by the first (default) row and is reported (*invalid) once sorting
 * compared anything, as cloudflared's comparator does. */
typedef struct wr__mg_sort_key {
  const char *name;
  int (*less)(const void *a, const void *b);
} wr__mg_sort_key;
/* Sorts |n| elements of |size| bytes by |key| (NULL: the default). Returns
 * 1 if the key was unknown and used. */
int wr__mg_sort_by(void *base, size_t n, size_t size, const wr__mg_sort_key *keys, const char *key, int invert);

#endif
