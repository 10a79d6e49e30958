/* The traffic inspector: per tunnel, the last N visitor requests the edge
 * proxied (method, host, target, status, timing, bytes, request and
 * response headers; with bodies on, the first bytes of each body), for the
 * dashboard (edge/dash.h) to show and replay.
 *
 * Redaction: the values of Authorization, Proxy-Authorization, Cookie and
 * Set-Cookie are never stored (the record keeps the name with the value
 * "[redacted]"), so neither the page nor a replay can leak them.
 *
 * Memory is bounded by the configuration, whatever visitors send:
 *   max_tunnels rings (the least recently used ring is dropped for a new
 *   tunnel) x per_tunnel records x (one record: fixed fields + at most
 *   WR_INSPECT_TARGET_MAX of target + 2 x header_cap of header text +
 *   2 x body_cap of bodies). Header text and bodies are allocated to the
 *   size they reach, not the cap.
 *
 * A record is written in steps as the visitor front proxies the request
 * (begin, request body, response head, response body, end); the steps name
 * the record by the wr_inspect_ref that begin returned, and a step for a
 * record that was pushed out of its ring meanwhile is ignored (O(1) check).
 *
 * Loop thread only; no I/O; the clock is the caller's. */
#ifndef WR_EDGE_INSPECT_H
#define WR_EDGE_INSPECT_H
#include <stddef.h>
#include <stdint.h>

#include "proto/httpmeta.h" /* wr_http_header */

#define WR_INSPECT_DEFAULT_REQUESTS 50
#define WR_INSPECT_DEFAULT_TUNNELS 64
#define WR_INSPECT_DEFAULT_HEADER_CAP 8192
#define WR_INSPECT_DEFAULT_BODY_CAP 16384
#define WR_INSPECT_TARGET_MAX 2048 /* bytes of the request-target kept */
#define WR_INSPECT_REDACTED "[redacted]"

typedef struct wr_inspect wr_inspect;

typedef struct wr_inspect_config {
  size_t per_tunnel;  /* records per tunnel; 0: the inspector is off (wr_inspect_new
                       * gives NULL, and every call here takes NULL) */
  size_t max_tunnels; /* rings; 0: WR_INSPECT_DEFAULT_TUNNELS */
  size_t header_cap;  /* header text kept per direction; 0: WR_INSPECT_DEFAULT_HEADER_CAP */
  size_t body_cap;    /* body bytes kept per direction; 0: bodies are not recorded */
} wr_inspect_config;

/* Header text: "Name: value\n" per field, in the order received, cut at a
 * field boundary when the next one would pass header_cap (|cut| set). */
typedef struct wr_inspect_text {
  char *data; /* NUL-terminated; NULL when empty */
  size_t len;
  int cut;    /* some fields or bytes were left out */
} wr_inspect_text;

typedef struct wr_inspect_body {
  uint8_t *data; /* the first bytes (at most body_cap); NULL when none kept */
  size_t len;
  uint64_t total; /* bytes that passed (len < total: cut) */
} wr_inspect_body;

/* One request. Valid until the next call that changes the inspector. */
typedef struct wr_inspect_rec {
  uint64_t id;          /* unique since wr_inspect_new, from 1; 0: an empty slot */
  char tunnel_id[40];
  char method[24];
  char host[256];
  char target[WR_INSPECT_TARGET_MAX + 1];
  int64_t started_ms;   /* wall clock (Unix ms) as the caller gave it */
  uint64_t duration_ms; /* from begin to end */
  int done;             /* end was called */
  int status;           /* 0 until the response head (or the edge's own answer) */
  uint64_t up, down;    /* body bytes each way */
  wr_inspect_text req_headers, resp_headers;
  wr_inspect_body req_body, resp_body; /* empty unless body_cap > 0 */
  /* The last replay of this record, if any. */
  int replayed;         /* 0 none, 1 running, 2 done */
  int replay_status;    /* the status the replay got; 0 with replay_error */
  uint64_t replay_ms;
  char replay_error[160];
} wr_inspect_rec;

/* Names a record for the later steps. */
typedef struct wr_inspect_ref {
  uint64_t id; /* 0: no record (inspector off, or nothing was begun) */
  uint32_t ring, slot;
} wr_inspect_ref;

/* Returns WR_OK with *out NULL when per_tunnel is 0, or WR_ERR_INVAL for
 * NULL arguments. Aborts on out-of-memory, as the edge does elsewhere. */
int wr_inspect_new(const wr_inspect_config *cfg, wr_inspect **out);
void wr_inspect_free(wr_inspect *in);
/* Whether bodies are recorded (body_cap > 0); 0 for NULL. */
int wr_inspect_bodies(const wr_inspect *in);

/* Starts a record in |tunnel_id|'s ring, pushing out its oldest. */
wr_inspect_ref wr_inspect_begin(wr_inspect *in, const char *tunnel_id, const char *method,
                                const char *host, const char *target, size_t target_len,
                                const wr_http_header *h, size_t n, int64_t wall_ms,
                                uint64_t mono_ms);
/* Body bytes that went up (request) or came down (response). */
void wr_inspect_req_body(wr_inspect *in, wr_inspect_ref ref, const void *p, size_t n);
void wr_inspect_resp_body(wr_inspect *in, wr_inspect_ref ref, const void *p, size_t n);
/* The response head as the connector sent it. */
void wr_inspect_response(wr_inspect *in, wr_inspect_ref ref, int status, const wr_http_header *h,
                         size_t n);
/* The request is over: |status| the visitor got (the edge's own answer
 * too), byte counts, and the time now. */
void wr_inspect_end(wr_inspect *in, wr_inspect_ref ref, int status, uint64_t up, uint64_t down,
                    uint64_t mono_ms);

/* The record |id|, or NULL if it is gone. */
const wr_inspect_rec *wr_inspect_get(const wr_inspect *in, uint64_t id);
/* Up to |max| records of |tunnel_id| into |out|, newest first. Returns
 * how many. */
size_t wr_inspect_list(const wr_inspect *in, const char *tunnel_id, const wr_inspect_rec **out,
                       size_t max);
/* A replay of |id| started (|status| < 0) or ended: status, or 0 and an
 * error message. Ignored when the record is gone. */
void wr_inspect_replay_result(wr_inspect *in, uint64_t id, int status, uint64_t ms,
                              const char *error);

/* Whether a field named |name| (|len| bytes, any case) is stored redacted. */
int wr_inspect_redacted(const char *name, size_t len);

#endif
