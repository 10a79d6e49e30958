/* Go's encoding/json rules for the result decoders. See decode_int.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfapi/decode_int.h"
#include "lib/err.h"
#include "lib/mem.h"

const json_t *wr__cfapi_jfield(const json_t *o, const char *key) {
  const char *k;
  json_t *v;
  if (!json_is_object(o)) return NULL;
  if ((v = json_object_get(o, key))) return v;
  json_object_foreach((json_t *)o, k, v) {
    if (strcasecmp(k, key) == 0) return v;
  }
  return NULL;
}

const char *wr__cfapi_jkind(const json_t *j) {
  switch (json_typeof(j)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER:
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "bool";
  default: return "null";
  }
}

int wr__cfapi_type_err(wr_cfapi_error *e, const json_t *j, const char *gotype, const char *key, const char *want) {
  wr_cfapi_errorf(e, WR__CFAPI_UNEXPECTED "json: cannot unmarshal %s into Go struct field %s.%s of type %s",
                  wr__cfapi_jkind(j), gotype, key, want);
  return WR_ERR_PROTO;
}

/* "…cannot unmarshal array into Go value of type <prefix><name>". */
static int not_type(const json_t *j, const char *prefix, const char *name, wr_cfapi_error *e) {
  wr_cfapi_errorf(e, WR__CFAPI_UNEXPECTED "json: cannot unmarshal %s into Go value of type %s%s",
                  wr__cfapi_jkind(j), prefix, name);
  return WR_ERR_PROTO;
}

const json_t *wr__cfapi_dget(wr__cfapi_dec *d, const char *key) {
  const json_t *v = wr__cfapi_jfield(d->obj, key);
  return v && !json_is_null(v) ? v : NULL;
}

/* |key|'s value if it is present, not null, of the JSON type |is| accepts
 * and no earlier step failed; else NULL (and d->rv set on a wrong type). */
static const json_t *typed(wr__cfapi_dec *d, const char *key, int (*is)(const json_t *), const char *want) {
  const json_t *v = wr__cfapi_dget(d, key);
  if (d->rv || !v) return NULL;
  if (!is(v)) {
    d->rv = wr__cfapi_type_err(d->e, v, d->gotype, key, want);
    return NULL;
  }
  return v;
}

static int is_string(const json_t *j) { return json_is_string(j); }
static int is_bool(const json_t *j) { return json_is_boolean(j); }

void wr__cfapi_d_str(wr__cfapi_dec *d, const char *key, char **out) {
  const json_t *v = typed(d, key, is_string, "string");
  if (d->rv) return;
  free(*out);
  *out = wr_xstrdup(v ? json_string_value(v) : "");
}

void wr__cfapi_d_bool(wr__cfapi_dec *d, const char *key, int *out) {
  const json_t *v = typed(d, key, is_bool, "bool");
  if (v) *out = json_is_true(v);
}

void wr__cfapi_d_uuid(wr__cfapi_dec *d, const char *key, wr_uuid *out) {
  const json_t *v = typed(d, key, is_string, "uuid.UUID");
  char why[128];
  if (v && wr_cfapi_uuid_parse(json_string_value(v), out, why, sizeof(why)) != WR_OK) {
    wr_cfapi_errorf(d->e, WR__CFAPI_UNEXPECTED "%s", why);
    d->rv = WR_ERR_PROTO;
  }
}

void wr__cfapi_d_time(wr__cfapi_dec *d, const char *key, wr_cfapi_time *out) {
  const json_t *v = typed(d, key, is_string, "time.Time");
  if (v && wr_cfapi_time_parse(json_string_value(v), out) != WR_OK) {
    wr_cfapi_errorf(d->e,
                    WR__CFAPI_UNEXPECTED "parsing time \"\\\"%s\\\"\" as \"\\\"2006-01-02T15:04:05Z07:00\\\"\": "
                                         "cannot parse as RFC 3339",
                    json_string_value(v));
    d->rv = WR_ERR_PROTO;
  }
}

void wr__cfapi_d_ip(wr__cfapi_dec *d, const char *key, wr_cfapi_ip *out) {
  const json_t *v = typed(d, key, is_string, "net.IP");
  if (!v) return;
  if (!*json_string_value(v)) {
    memset(out, 0, sizeof(*out));
  } else if (wr_cfapi_ip_parse(json_string_value(v), out) != WR_OK) {
    wr_cfapi_errorf(d->e, WR__CFAPI_UNEXPECTED "invalid IP address: %s", json_string_value(v));
    d->rv = WR_ERR_PROTO;
  }
}

int wr__cfapi_decode_one(const json_t *j, const wr__cfapi_type *t, void *out, wr_cfapi_error *e) {
  wr__cfapi_dec d = {j, t->name, e, 0};
  memset(out, 0, t->size);
  if (!json_is_object(j) && !json_is_null(j)) return not_type(j, "cfapi.", t->name, e);
  t->fields(&d, out);
  if (d.rv) t->free(out);
  return d.rv;
}

int wr__cfapi_decode_array(const json_t *j, const wr__cfapi_type *t, void **out, size_t *n, int *is_null,
                           wr_cfapi_error *e) {
  *out = NULL;
  *n = 0;
  *is_null = json_is_null(j);
  if (*is_null) return WR_OK;
  if (!json_is_array(j)) return not_type(j, "[]*cfapi.", t->name, e);
  uint8_t *arr = wr_xcalloc(json_array_size(j) + 1, t->size);
  for (size_t i = 0; i < json_array_size(j); i++) {
    if (wr__cfapi_decode_one(json_array_get(j, i), t, arr + i * t->size, e) != WR_OK) {
      wr__cfapi_free_array(t, arr, i);
      return WR_ERR_PROTO;
    }
  }
  *out = arr;
  *n = json_array_size(j);
  return WR_OK;
}

void wr__cfapi_free_array(const wr__cfapi_type *t, void *v, size_t n) {
  uint8_t *arr = v;
  for (size_t i = 0; i < n; i++) t->free(arr + i * t->size);
  free(v);
}

int wr__cfapi_call_decode(wr_cfapi_client *c, const wr_cfapi_request *rq, wr__cfapi_one_fn decode, void *out,
                          wr_cfapi_error *e) {
  json_t *res = NULL;
  int rv = wr_cfapi_call(c, rq, &res, e);
  if (rv == WR_OK) rv = decode(res, out, e);
  json_decref(res);
  return rv;
}

int wr__cfapi_call_one(wr_cfapi_client *c, const wr_cfapi_request *rq, const wr__cfapi_type *t, void *out,
                       wr_cfapi_error *e) {
  json_t *res = NULL;
  void *v = out ? out : wr_xcalloc(1, t->size);
  memset(v, 0, t->size);
  int rv = wr_cfapi_call(c, rq, &res, e);
  if (rv == WR_OK) rv = wr__cfapi_decode_one(res, t, v, e);
  json_decref(res);
  if (!out) {
    t->free(v);
    free(v);
  }
  return rv;
}

int wr__cfapi_list(wr_cfapi_client *c, const char *path, const wr_cfapi_query *filter, const char *op,
                   wr__cfapi_one_fn decode, void *out, wr_cfapi_error *e) {
  char *q = wr_cfapi_query_encode(filter);
  wr_cfapi_request rq = {"GET", path, q, NULL, op, 1};
  int rv = wr__cfapi_call_decode(c, &rq, decode, out, e);
  free(q);
  return rv;
}
