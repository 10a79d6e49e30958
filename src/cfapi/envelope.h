/* The API's response envelope, decoded as cloudflared 2023.7.3's cfapi
 * does (cloudflare-api.md §2.3), sans I/O: the caller hands over the
 * status, Content-Type and body of an HTTP answer.
 *
 *   {"success":true,"errors":[],"messages":[],"result":…,"result_info":{…}}
 *
 * Go's encoding/json rules: keys match case-insensitively, unknown keys
 * are ignored, null leaves a field unset; `errors` must be an array of
 * {code: number|string, message: string}, `messages` an array of strings
 * (Cloudflare's newer objects break cloudflared, and here too).
 * `result_info` is decoded leniently (2023.7.3 ignores it and never
 * pages; it is kept for callers that want the counts). */
#ifndef WR_CFAPI_ENVELOPE_H
#define WR_CFAPI_ENVELOPE_H
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cfapi/client.h"

typedef struct wr_cfapi_result_info {
  long long page, per_page, count, total_count; /* -1: absent or not an integer */
} wr_cfapi_result_info;

typedef struct wr_cfapi_envelope {
  json_t *root;             /* owns the document; the pointers below borrow from it */
  int success;              /* `success` is true */
  const json_t *errors;     /* the array, or NULL (absent or null) */
  const json_t *result;     /* NULL when the key is absent; JSON null stays null */
  wr_cfapi_result_info info;
} wr_cfapi_envelope;

/* Decodes cloudflared's `response` struct from |body|. Returns WR_OK (free
 * with wr_cfapi_envelope_free) or WR_ERR_PROTO with Go's decode error in
 * |why| ("EOF" for an empty body, jansson's text for bad JSON,
 * "json: cannot unmarshal …" for a wrong type). */
int wr_cfapi_envelope_decode(const uint8_t *body, size_t len, wr_cfapi_envelope *env, char *why, size_t whylen);
void wr_cfapi_envelope_free(wr_cfapi_envelope *env);

/* cfapi's checkErrors: with a non-empty errors[], fills |e| with "code: N,
 * reason: msg" for one, "API errors: code: N, reason: a; code: M, reason:
 * b; " for several (e->code = the first code), and returns 1; else 0. */
int wr_cfapi_envelope_errors(const wr_cfapi_envelope *env, wr_cfapi_error *e);

/* An HTTP answer as the decoder needs it. */
typedef struct wr_cfapi_response {
  int status;
  const char *content_type; /* NULL if absent */
  const uint8_t *body;
  size_t body_len;
} wr_cfapi_response;

/* Everything cfapi does with an answer to |op| ("list tunnels"):
 *  - a non-200 status, or any status without |want_result|, goes through
 *    statusCodeToError: errors[] of a body whose Content-Type is exactly
 *    application/json ("Failed to <op>: code: …"), else "incorrect request
 *    parameters" (400), "unauthorized" (401/403), "not found" (404), "API
 *    call to <op> failed with status N: <reason phrase>"; a 200 without
 *    errors[] is WR_OK (result untouched);
 *  - a 200 with |want_result|: "failed to decode response: <why>" for a
 *    bad envelope, then errors[] (checkErrors), then "API call failed"
 *    unless success is true, then `result` must be present ("the
 *    Cloudflare API response was an unexpected type: unexpected end of
 *    JSON input").
 * On success *result (if |result| is not NULL and a result was wanted) gets
 * a new reference. e->status is set to |r->status| whatever the outcome.
 * Returns WR_OK, WR_ERR_PROTO (undecodable) or WR_ERR_DENIED (API error). */
int wr_cfapi_response_result(const wr_cfapi_response *r, const char *op, int want_result, json_t **result,
                             wr_cfapi_error *e);

#endif
