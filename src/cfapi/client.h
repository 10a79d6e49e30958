/* The client side of the Cloudflare API v4 subset that cloudflared
 * 2023.7.3 calls (its cfapi package; ../shared/cloudflare-api.md §2): a
 * client handle (base URL, bearer token, account and zone tags), request
 * building, one call = one HTTP exchange checked and unwrapped as cfapi's
 * parseResponse does, and errors as values.
 *
 * Where the base URL and token come from (cert.pem, --api-url,
 * TUNNEL_API_URL, config.yml) is the caller's business: this module takes
 * them as given. It never prints; a caller that wants to see requests
 * installs a trace callback.
 *
 * Messages follow cloudflared's error wrapping ("Failed to create tunnel:
 * code: 1003, reason: …", "REST request failed: Post \"…\": …"): functions
 * fill a wr_cfapi_error with the innermost text and callers prefix their
 * context with wr_cfapi_wrap(), as errors.Wrap does.
 *
 * Typed calls live next to their result types: tunnels.h, routes.h,
 * vnets.h. The response decoding itself (sans-I/O) is envelope.h.
 *
 * Memory: out-of-memory aborts (wr_x*), the policy outside the codecs.
 * Blocking: a call runs wr_http_do(), which runs its own event loop; never
 * call from a thread that runs another loop. */
#ifndef WR_CFAPI_CLIENT_H
#define WR_CFAPI_CLIENT_H
#include <stddef.h>

#include <jansson.h>

#include "net/http_client.h"

#define WR_CFAPI_DEFAULT_BASE_URL "https://api.cloudflare.com/client/v4"
#define WR_CFAPI_ERRLEN 2048

/* ---- errors ----------------------------------------------------------------- */

/* An error as a value. |msg| is the whole text a command prints (after its
 * callers' wrapping); |status| and |code| let callers branch without
 * parsing it. */
typedef struct wr_cfapi_error {
  int status;      /* HTTP status of the answer; 0: none (transport error, local check) */
  long long code;  /* the first Cloudflare error code of errors[]; 0: none or not a number */
  char msg[WR_CFAPI_ERRLEN];
} wr_cfapi_error;

/* Sets the message and clears |status| and |code|. */
void wr_cfapi_errorf(wr_cfapi_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes "<context>: " as errors.Wrap does; |status| and |code| stay. */
void wr_cfapi_wrap(wr_cfapi_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- queries ---------------------------------------------------------------- */

/* A query string in Go's url.Values.Encode() form: keys sorted, values
 * QueryEscape'd. Keys and values are copied; a zeroed struct is empty.
 * At most WR_CFAPI_QUERY_MAX keys: more are ignored (no call needs 16). */
#define WR_CFAPI_QUERY_MAX 16
typedef struct wr_cfapi_query {
  char *keys[WR_CFAPI_QUERY_MAX];
  char *vals[WR_CFAPI_QUERY_MAX];
  size_t n;
} wr_cfapi_query;
void wr_cfapi_query_set(wr_cfapi_query *q, const char *key, const char *val); /* replaces */
/* "k=v&…" ("" when empty). Caller frees. */
char *wr_cfapi_query_encode(const wr_cfapi_query *q);
void wr_cfapi_query_free(wr_cfapi_query *q);

/* ---- the client --------------------------------------------------------------- */

/* How requests leave: wr_http_do() unless |exchange| is set (tests and
 * fuzzers answer from memory). Same contract as wr_http_do. */
typedef struct wr_cfapi_transport {
  int (*exchange)(void *ud, const wr_http_request *req, wr_http_response *resp, char *err, size_t errlen);
  void *ud;
} wr_cfapi_transport;

typedef struct wr_cfapi_config {
  const char *base_url;    /* required; one trailing '/' is dropped, as cfapi does */
  const char *account_tag; /* /accounts/{account}/…; may be "" for zone-only use */
  const char *zone_tag;    /* /zones/{zone}/… */
  const char *api_token;   /* sent as "Authorization: Bearer <token>" */
  const char *user_agent;  /* NULL: "warren/<version>" */
  /* Called with each request's method and URL just before it is sent
   * (the commands log it at debug level). May be NULL. */
  void (*trace)(void *ud, const char *method, const char *url);
  void *trace_ud;
  wr_cfapi_transport transport;
} wr_cfapi_config;

typedef struct wr_cfapi_client wr_cfapi_client;

/* A client for |cfg| (the strings are copied). Returns WR_OK, or
 * WR_ERR_CONFIG with "An api-url was not provided for the Cloudflare API
 * client" when base_url is empty. */
int wr_cfapi_client_new(const wr_cfapi_config *cfg, wr_cfapi_client **out, wr_cfapi_error *e);
/* Wipes the token and frees; NULL is fine. */
void wr_cfapi_client_free(wr_cfapi_client *c);

/* "/accounts/<account>/<tail>" and "/zones/<zone>/<tail>", the tag escaped
 * as Go's url.URL.String() escapes a path; |tail| is appended as is.
 * Caller frees. */
char *wr_cfapi_account_path(const wr_cfapi_client *c, const char *tail);
char *wr_cfapi_zone_path(const wr_cfapi_client *c, const char *tail);

/* One API call. */
typedef struct wr_cfapi_request {
  const char *method;    /* "GET", "POST", ... */
  const char *path;      /* under the base URL, already escaped */
  const char *query;     /* encoded query or NULL/"" */
  const json_t *body;    /* sent as compact JSON with Content-Type; NULL: none */
  const char *op;        /* names the operation in messages: "list tunnels" */
  int want_result;       /* decode the envelope and hand out `result` */
} wr_cfapi_request;

/* Sends |req| with the Bearer token, "Accept: application/json;version=1"
 * and the User-Agent, and checks the answer (envelope.h,
 * wr_cfapi_response_result). With |want_result|, *result (may be NULL to
 * discard) gets a new reference to `result` (JSON null if it was null).
 * e->status is the HTTP status (0 on transport errors).
 * Returns:
 *   WR_OK
 *   WR_ERR_IO      transport: "REST request failed: <Go's error>"
 *   WR_ERR_PROTO   an undecodable answer
 *   WR_ERR_DENIED  an API error (status or errors[]; see envelope.h) */
int wr_cfapi_call(wr_cfapi_client *c, const wr_cfapi_request *req, json_t **result, wr_cfapi_error *e);

#endif
