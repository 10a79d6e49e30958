/* REST API: GET /accounts/{a}/audit_logs, the account's audit log (our own
 * shape, documented in api.h):
 *   {"id":N,"when":"2024-01-01T00:00:00Z","actor":"api:admin@example.test",
 *    "action":"tunnel.create","resource":{"type":"tunnel","id":"<uuid>"},
 *    "metadata":{...}}
 * newest first, paged (per_page default 100, at most 1000), with
 * result_info. Filters: action (exact, or a prefix ending in '.'), since and
 * before (RFC 3339). */
#include <stdlib.h>
#include <string.h>

#include "edge/api_int.h"
#include "lib/err.h"

#define AUDIT_PER_PAGE_DEFAULT 100

void wr__api_audit(wr__api_ctx *c) {
  wr_audit_filter f = {.account_id = c->token.account_id};
  wr_audit *rows = NULL;
  size_t n = 0, total = 0, page, per_page;
  int paged, rv;
  if (c->nsegs != 3) {
    wr__api_no_route(c);
    return;
  }
  if (strcmp(c->method, "GET") != 0) {
    wr__api_method(c, "GET");
    return;
  }
  if (wr__api_paging(c, AUDIT_PER_PAGE_DEFAULT, &page, &per_page, &paged) != 0) return;
  if (wr__api_param_time(c, "since", &f.since) != 0 || wr__api_param_time(c, "before", &f.until) != 0)
    return;
  const char *action = wr__api_param(c, "action");
  if (action && *action) f.action = action;
  f.limit = per_page;
  f.offset = (page - 1) * per_page;
  if ((rv = wr_store_audit_query(c->store, &f, &rows, &n, &total)) != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) {
    json_error_t jerr;
    json_t *meta = json_loads(rows[i].detail ? rows[i].detail : "{}", 0, &jerr);
    if (!meta) meta = json_object();
    json_array_append_new(
        arr, json_pack("{s:I,s:o,s:s,s:s,s:{s:s,s:s},s:o}", "id", (json_int_t)rows[i].id, "when",
                       wr__api_time(rows[i].at), "actor", rows[i].actor, "action", rows[i].action,
                       "resource", "type", rows[i].target_type, "id", rows[i].target_id, "metadata",
                       meta));
  }
  wr_store_audit_free(rows, n);
  wr__api_ok(c, arr, wr__api_result_info(page, per_page, n, total));
}
