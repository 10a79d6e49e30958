/* The response envelope and cfapi's checks of an answer. See envelope.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfapi/decode_int.h"
#include "cfapi/envelope.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "proto/http1.h"

#define GO_FIELD "json: cannot unmarshal into Go struct field response."

static int bool_or_null(const json_t *j) { return json_is_boolean(j) || json_is_null(j); }
static int array_or_null(const json_t *j) { return json_is_array(j) || json_is_null(j); }
static int string_or_null(const json_t *j) { return json_is_string(j) || json_is_null(j); }

/* cfapi.apiErr: {code: json.Number-ish, message: string}. */
static int api_err_ok(const json_t *e) {
  const json_t *code = wr__cfapi_jfield(e, "code"), *msg = wr__cfapi_jfield(e, "message");
  if (!json_is_object(e) && !json_is_null(e)) return 0;
  if (msg && !string_or_null(msg)) return 0;
  return !code || json_is_number(code) || string_or_null(code);
}

/* The envelope's typed fields, checked in this order. */
static const struct field_rule {
  const char *key;
  int (*ok)(const json_t *);
  const char *why;
  int (*elem_ok)(const json_t *); /* arrays: each element */
  const char *elem_why;
} rules[] = {
    {"success", bool_or_null, GO_FIELD "success of type bool", NULL, NULL},
    {"errors", array_or_null, GO_FIELD "errors of type []cfapi.apiErr", api_err_ok, GO_FIELD "errors of type cfapi.apiErr"},
    /* Go names the element's JSON type; every non-string that reaches this
     * in practice is one of Cloudflare's message objects. */
    {"messages", array_or_null, GO_FIELD "messages of type []string", string_or_null,
     "json: cannot unmarshal object into Go struct field response.messages of type string"},
};

static const char *check_fields(const json_t *j) {
  for (size_t r = 0; r < sizeof(rules) / sizeof(rules[0]); r++) {
    const json_t *v = wr__cfapi_jfield(j, rules[r].key);
    if (!v) continue;
    if (!rules[r].ok(v)) return rules[r].why;
    for (size_t i = 0; rules[r].elem_ok && i < json_array_size(v); i++)
      if (!rules[r].elem_ok(json_array_get(v, i))) return rules[r].elem_why;
  }
  return NULL;
}

static long long info_int(const json_t *info, const char *key) {
  const json_t *v = wr__cfapi_jfield(info, key);
  return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

int wr_cfapi_envelope_decode(const uint8_t *body, size_t len, wr_cfapi_envelope *env, char *why, size_t whylen) {
  json_error_t je;
  memset(env, 0, sizeof(*env));
  if (len == 0) {
    snprintf(why, whylen, "EOF");
    return WR_ERR_PROTO;
  }
  json_t *j = json_loadb((const char *)body, len, JSON_DISABLE_EOF_CHECK, &je);
  if (!j) {
    snprintf(why, whylen, "%s", je.text);
    return WR_ERR_PROTO;
  }
  const char *bad = NULL;
  if (!json_is_object(j) && !json_is_null(j)) {
    snprintf(why, whylen, "json: cannot unmarshal %s into Go value of type cfapi.response", wr__cfapi_jkind(j));
    json_decref(j);
    return WR_ERR_PROTO;
  }
  if ((bad = check_fields(j))) {
    snprintf(why, whylen, "%s", bad);
    json_decref(j);
    return WR_ERR_PROTO;
  }
  const json_t *errs = wr__cfapi_jfield(j, "errors"), *info = wr__cfapi_jfield(j, "result_info");
  env->root = j;
  env->success = json_is_true(wr__cfapi_jfield(j, "success"));
  env->errors = json_is_array(errs) ? errs : NULL;
  env->result = wr__cfapi_jfield(j, "result");
  env->info.page = info_int(info, "page");
  env->info.per_page = info_int(info, "per_page");
  env->info.count = info_int(info, "count");
  env->info.total_count = info_int(info, "total_count");
  return WR_OK;
}

void wr_cfapi_envelope_free(wr_cfapi_envelope *env) {
  json_decref(env->root);
  memset(env, 0, sizeof(*env));
}

/* An error code as Go prints the json.Number ("" when absent). */
static long long code_text(const json_t *code, char *out, size_t cap) {
  out[0] = '\0';
  if (json_is_integer(code)) {
    snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(code));
    return (long long)json_integer_value(code);
  }
  if (json_is_real(code)) snprintf(out, cap, "%g", json_real_value(code));
  else if (json_is_string(code)) snprintf(out, cap, "%s", json_string_value(code));
  char *end;
  long long v = strtoll(out, &end, 10);
  return *out && !*end ? v : 0;
}

int wr_cfapi_envelope_errors(const wr_cfapi_envelope *env, wr_cfapi_error *e) {
  size_t n = json_array_size(env->errors);
  long long first = 0;
  if (n == 0) return 0;
  wr_buf b;
  wr_buf_init(&b, WR_CFAPI_ERRLEN, NULL);
  if (n > 1) wr_buf_append_str(&b, "API errors: ");
  for (size_t i = 0; i < n; i++) {
    const json_t *it = json_array_get(env->errors, i), *msg = wr__cfapi_jfield(it, "message");
    char cs[64];
    long long code = code_text(wr__cfapi_jfield(it, "code"), cs, sizeof(cs));
    if (i == 0) first = code;
    wr_buf_printf(&b, "code: %s, reason: %s%s", cs, json_is_string(msg) ? json_string_value(msg) : "",
                  n > 1 ? "; " : "");
  }
  snprintf(e->msg, sizeof(e->msg), "%s", wr_buf_cstr(&b));
  e->code = first;
  wr_buf_free(&b);
  return 1;
}

/* statusCodeToError. Returns WR_OK for a 200 without errors[]. */
static int status_error(const wr_cfapi_response *r, const char *op, wr_cfapi_error *e) {
  if (r->content_type && strcmp(r->content_type, "application/json") == 0) {
    wr_cfapi_envelope env;
    char why[256];
    if (wr_cfapi_envelope_decode(r->body, r->body_len, &env, why, sizeof(why)) == WR_OK) {
      int bad = wr_cfapi_envelope_errors(&env, e);
      wr_cfapi_envelope_free(&env);
      if (bad) {
        wr_cfapi_wrap(e, "Failed to %s", op);
        return WR_ERR_DENIED;
      }
    }
  }
  const char *reason = wr_http1_reason(r->status);
  switch (r->status) {
  case 200: return WR_OK;
  case 400: wr_cfapi_errorf(e, "incorrect request parameters"); break;
  case 401:
  case 403: wr_cfapi_errorf(e, "unauthorized"); break;
  case 404: wr_cfapi_errorf(e, "not found"); break;
  default:
    wr_cfapi_errorf(e, "API call to %s failed with status %d: %s", op, r->status,
                    strcmp(reason, "Unknown") == 0 ? "" : reason);
  }
  return WR_ERR_DENIED;
}

/* The 200 answer to a call that wants its result. */
static int take_result(const wr_cfapi_response *r, json_t **result, wr_cfapi_error *e) {
  wr_cfapi_envelope env;
  char why[512];
  int rv = WR_OK;
  if (wr_cfapi_envelope_decode(r->body, r->body_len, &env, why, sizeof(why)) != WR_OK) {
    wr_cfapi_errorf(e, "failed to decode response: %s", why);
    return WR_ERR_PROTO;
  }
  if (wr_cfapi_envelope_errors(&env, e)) {
    rv = WR_ERR_DENIED;
  } else if (!env.success) {
    wr_cfapi_errorf(e, "API call failed");
    rv = WR_ERR_DENIED;
  } else if (!env.result) {
    wr_cfapi_errorf(e, WR__CFAPI_UNEXPECTED "unexpected end of JSON input");
    rv = WR_ERR_PROTO;
  } else if (result) {
    *result = json_incref((json_t *)env.result);
  }
  wr_cfapi_envelope_free(&env);
  return rv;
}

int wr_cfapi_response_result(const wr_cfapi_response *r, const char *op, int want_result, json_t **result,
                             wr_cfapi_error *e) {
  int rv = r->status != 200 || !want_result ? status_error(r, op, e) : take_result(r, result, e);
  e->status = r->status;
  return rv;
}
