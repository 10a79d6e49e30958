/* Internals shared by the result decoders (tunnels.c, routes.c, vnets.c,
 * envelope.c): Go's encoding/json rules for filling a struct from a JSON
 * object. Keys match exactly first, else case-insensitively; unknown keys
 * are ignored; null leaves the zero value; a wrong JSON type is an error
 * naming the Go field ("json: cannot unmarshal number into Go struct field
 * Tunnel.name of type string").
 *
 * Every error message starts with WR__CFAPI_UNEXPECTED, as cfapi's
 * parseResponse wraps them. */
#ifndef WR_CFAPI_DECODE_INT_H
#define WR_CFAPI_DECODE_INT_H
#include <stddef.h>

#include <jansson.h>

#include "cfapi/client.h"
#include "cfapi/time.h"
#include "cfapi/values.h"
#include "lib/encoding.h"

#define WR__CFAPI_UNEXPECTED "the Cloudflare API response was an unexpected type: "

/* Go's field lookup: |key| exactly, else the first key equal to it in any
 * case. NULL if |o| is not an object or has no such key. */
const json_t *wr__cfapi_jfield(const json_t *o, const char *key);
/* Go's name of the JSON type: "object", "array", "string", "number",
 * "bool", "null". */
const char *wr__cfapi_jkind(const json_t *j);

/* A decoder over one object (already checked to be an object or null).
 * The d_* steps do nothing once |rv| is set, so a decoder is a flat list
 * of steps with one check at the end. */
typedef struct wr__cfapi_dec {
  const json_t *obj;
  const char *gotype; /* "Tunnel", ... for messages */
  wr_cfapi_error *e;
  int rv;
} wr__cfapi_dec;

/* |key|'s value unless absent or null. */
const json_t *wr__cfapi_dget(wr__cfapi_dec *d, const char *key);
/* A string (absent or null: "", always allocated unless an error). */
void wr__cfapi_d_str(wr__cfapi_dec *d, const char *key, char **out);
void wr__cfapi_d_bool(wr__cfapi_dec *d, const char *key, int *out);
void wr__cfapi_d_uuid(wr__cfapi_dec *d, const char *key, wr_uuid *out);
void wr__cfapi_d_time(wr__cfapi_dec *d, const char *key, wr_cfapi_time *out);
void wr__cfapi_d_ip(wr__cfapi_dec *d, const char *key, wr_cfapi_ip *out);
/* The error for a wrong field type. Returns WR_ERR_PROTO. */
int wr__cfapi_type_err(wr_cfapi_error *e, const json_t *j, const char *gotype, const char *key, const char *want);

/* A cfapi struct as the decoders see it: its Go name ("Tunnel"; messages
 * say "cfapi.Tunnel", "[]*cfapi.Tunnel" and "Tunnel.<field>"), its C size,
 * the d_* steps that fill its fields (flat, d->rv keeps the first error;
 * they may change d->gotype) and what frees one (safe on a zeroed or
 * part-filled value, leaves it zeroed). */
typedef struct wr__cfapi_type {
  const char *name;
  size_t size;
  void (*fields)(wr__cfapi_dec *d, void *out);
  void (*free)(void *v);
} wr__cfapi_type;

/* Go's Unmarshal into one |t| at |out|: zeroes it, refuses a value that is
 * neither an object nor null ("…cannot unmarshal array into Go value of
 * type cfapi.Tunnel"), then runs t->fields; when that fails, what was
 * filled is freed. Returns WR_OK or WR_ERR_PROTO. */
int wr__cfapi_decode_one(const json_t *j, const wr__cfapi_type *t, void *out, wr_cfapi_error *e);
/* A JSON array of |t| (or null: *is_null, Go's nil slice) into a new
 * array *out of *n elements; anything else is "…into Go value of type
 * []*cfapi.<name>". On failure *out is NULL and *n 0. */
int wr__cfapi_decode_array(const json_t *j, const wr__cfapi_type *t, void **out, size_t *n, int *is_null,
                           wr_cfapi_error *e);
/* Frees the first |n| elements of |v| with t->free, then |v| (NULL-safe).
 * The array's owner zeroes its own n/v afterwards. */
void wr__cfapi_free_array(const wr__cfapi_type *t, void *v, size_t n);

/* The decoders' callback shape (wr__cfapi_call_decode, wr__cfapi_list). */
typedef int (*wr__cfapi_one_fn)(const json_t *j, void *out, wr_cfapi_error *e);

/* One call (client.h, wr_cfapi_call) whose result decodes with |decode|
 * into |out|; the result JSON is dropped either way. Returns what the call
 * or the decoder returns. Not for use from a callback (it blocks). */
int wr__cfapi_call_decode(wr_cfapi_client *c, const wr_cfapi_request *rq, wr__cfapi_one_fn decode, void *out,
                          wr_cfapi_error *e);
/* One call answered with one |t| (wr__cfapi_decode_one) into |out|, zeroed
 * first; |out| NULL: the answer is decoded (so checked) and dropped.
 * Returns what the call or the decoder returns. Not for use from a
 * callback (it blocks). */
int wr__cfapi_call_one(wr_cfapi_client *c, const wr_cfapi_request *rq, const wr__cfapi_type *t, void *out,
                       wr_cfapi_error *e);
/* GET |path| with |filter| as its query (a list call named |op|),
 * decoded with |decode| into |out| as wr__cfapi_call_decode. |path| stays
 * the caller's. */
int wr__cfapi_list(wr_cfapi_client *c, const char *path, const wr_cfapi_query *filter, const char *op,
                   wr__cfapi_one_fn decode, void *out, wr_cfapi_error *e);

#endif
