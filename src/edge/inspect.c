/* The traffic inspector's rings; see inspect.h. */
#include "edge/inspect.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/err.h"
#include "lib/lru_index.h"
#include "lib/mem.h"

typedef struct ring {
  char tunnel_id[40];  /* "" when unused */
  wr_inspect_rec *recs; /* per_tunnel slots */
  size_t next;         /* the slot the next record takes */
} ring;

/* A request finds its tunnel's ring, and a new tunnel takes the least
 * recently used ring, in O(1) (lib/lru_index.h), however many tunnels the
 * visitors spread over (bench-scale spreads its requests over 1,000). */
struct wr_inspect {
  size_t per_tunnel, max_tunnels, header_cap, body_cap;
  ring *rings;
  wr_lru_index index;  /* over rings[].tunnel_id */
  uint64_t next_id;
};

int wr_inspect_redacted(const char *name, size_t len) {
  static const char *const names[] = {"authorization", "proxy-authorization", "cookie",
                                      "set-cookie"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strlen(names[i]) == len && strncasecmp(name, names[i], len) == 0) return 1;
  return 0;
}

/* Frees what |r| holds and empties it. The text arrays (host and target
 * are 2.3 KB of the 2.7 KB record) are only cut to "": this runs once per
 * request, and the begin that follows writes them as strings. */
static void rec_clear(wr_inspect_rec *r) {
  free(r->req_headers.data);
  free(r->resp_headers.data);
  free(r->req_body.data);
  free(r->resp_body.data);
  memset(r, 0, offsetof(wr_inspect_rec, host));
  r->host[0] = r->target[0] = '\0';
  memset(&r->started_ms, 0, sizeof(*r) - offsetof(wr_inspect_rec, started_ms));
}
_Static_assert(offsetof(wr_inspect_rec, target) == offsetof(wr_inspect_rec, host) + sizeof(((wr_inspect_rec *)0)->host) &&
                   offsetof(wr_inspect_rec, started_ms) - offsetof(wr_inspect_rec, target) <
                       sizeof(((wr_inspect_rec *)0)->target) + sizeof(int64_t),
               "rec_clear leaves out exactly host and target");

/* Empties |g|'s records: only the slots ever used (a ring that another
 * tunnel takes over usually held few). */
static void ring_clear(wr_inspect *in, ring *g) {
  for (size_t i = 0; g->recs && i < in->per_tunnel; i++)
    if (g->recs[i].id) rec_clear(&g->recs[i]);
  g->tunnel_id[0] = '\0';
  g->next = 0;
}

int wr_inspect_new(const wr_inspect_config *cfg, wr_inspect **out) {
  if (!cfg || !out) return WR_ERR_INVAL;
  *out = NULL;
  if (cfg->per_tunnel == 0) return WR_OK;
  wr_inspect *in = wr_xcalloc(1, sizeof(*in));
  in->per_tunnel = cfg->per_tunnel;
  in->max_tunnels = cfg->max_tunnels ? cfg->max_tunnels : WR_INSPECT_DEFAULT_TUNNELS;
  in->header_cap = cfg->header_cap ? cfg->header_cap : WR_INSPECT_DEFAULT_HEADER_CAP;
  in->body_cap = cfg->body_cap;
  in->rings = wr_xcalloc(in->max_tunnels, sizeof(ring));
  wr_lru_index_init(&in->index, in->rings[0].tunnel_id, sizeof(ring), (uint32_t)in->max_tunnels);
  /* The slots of a ring are allocated when it is first used. */
  *out = in;
  return WR_OK;
}

void wr_inspect_free(wr_inspect *in) {
  if (!in) return;
  for (size_t i = 0; i < in->max_tunnels; i++) {
    if (!in->rings[i].recs) continue;
    ring_clear(in, &in->rings[i]);
    free(in->rings[i].recs);
  }
  free(in->rings);
  wr_lru_index_free(&in->index);
  free(in);
}

int wr_inspect_bodies(const wr_inspect *in) { return in && in->body_cap > 0; }

/* The ring of |tunnel_id|: its own, or the least recently used one
 * (unused ones first), emptied; either way now the most recently used. */
static ring *ring_for(wr_inspect *in, const char *tunnel_id, uint32_t *index) {
  int fresh;
  *index = wr_lru_index_get(&in->index, tunnel_id, &fresh);
  ring *g = &in->rings[*index];
  if (fresh) {
    if (!g->recs) g->recs = wr_xcalloc(in->per_tunnel, sizeof(wr_inspect_rec));
    ring_clear(in, g);
    snprintf(g->tunnel_id, sizeof(g->tunnel_id), "%s", tunnel_id);
  }
  return g;
}

static wr_inspect_rec *rec_of(wr_inspect *in, wr_inspect_ref ref) {
  if (!in || !ref.id || ref.ring >= in->max_tunnels || ref.slot >= in->per_tunnel) return NULL;
  ring *g = &in->rings[ref.ring];
  if (!g->recs || g->recs[ref.slot].id != ref.id) return NULL;
  return &g->recs[ref.slot];
}

/* Appends "Name: value\n" fields while they fit in |cap|, values of the
 * redacted names replaced. */
static void text_fill(wr_inspect_text *t, size_t cap, const wr_http_header *h, size_t n) {
  size_t need = 0, keep = 0;
  for (size_t i = 0; i < n; i++) {
    size_t vl = wr_inspect_redacted(h[i].name, h[i].name_len) ? strlen(WR_INSPECT_REDACTED) : h[i].value_len;
    size_t one = h[i].name_len + 2 + vl + 1;
    if (need + one > cap) break;
    need += one;
    keep++;
  }
  t->cut = keep < n;
  if (!keep) return;
  char *p = t->data = wr_xmalloc(need + 1);
  for (size_t i = 0; i < keep; i++) {
    int red = wr_inspect_redacted(h[i].name, h[i].name_len);
    const char *v = red ? WR_INSPECT_REDACTED : h[i].value;
    size_t vl = red ? strlen(WR_INSPECT_REDACTED) : h[i].value_len;
    memcpy(p, h[i].name, h[i].name_len);
    p += h[i].name_len;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, v, vl);
    p += vl;
    *p++ = '\n';
  }
  *p = '\0';
  t->len = need;
}

static void copy_field(char *out, size_t size, const char *s, size_t len) {
  if (len >= size) len = size - 1;
  memcpy(out, s, len);
  out[len] = '\0';
}

wr_inspect_ref wr_inspect_begin(wr_inspect *in, const char *tunnel_id, const char *method,
                                const char *host, const char *target, size_t target_len,
                                const wr_http_header *h, size_t n, int64_t wall_ms,
                                uint64_t mono_ms) {
  wr_inspect_ref ref = {0};
  if (!in || !tunnel_id || !*tunnel_id) return ref;
  ring *g = ring_for(in, tunnel_id, &ref.ring);
  ref.slot = (uint32_t)g->next;
  g->next = (g->next + 1) % in->per_tunnel;
  wr_inspect_rec *r = &g->recs[ref.slot];
  rec_clear(r);
  r->id = ref.id = ++in->next_id;
  copy_field(r->tunnel_id, sizeof(r->tunnel_id), tunnel_id, strlen(tunnel_id));
  copy_field(r->method, sizeof(r->method), method ? method : "", method ? strlen(method) : 0);
  copy_field(r->host, sizeof(r->host), host ? host : "", host ? strlen(host) : 0);
  copy_field(r->target, sizeof(r->target), target ? target : "", target ? target_len : 0);
  r->started_ms = wall_ms;
  r->duration_ms = mono_ms; /* the start, until end turns it into a duration */
  text_fill(&r->req_headers, in->header_cap, h, n);
  return ref;
}

static void body_add(wr_inspect *in, wr_inspect_body *b, const void *p, size_t n) {
  b->total += n;
  if (!in->body_cap || b->len >= in->body_cap || !n) return;
  size_t take = in->body_cap - b->len < n ? in->body_cap - b->len : n;
  /* The whole cap at once: a body arrives in many small pieces. */
  if (!b->data) b->data = wr_xmalloc(in->body_cap);
  memcpy(b->data + b->len, p, take);
  b->len += take;
}

void wr_inspect_req_body(wr_inspect *in, wr_inspect_ref ref, const void *p, size_t n) {
  wr_inspect_rec *r = rec_of(in, ref);
  if (r) body_add(in, &r->req_body, p, n);
}

void wr_inspect_resp_body(wr_inspect *in, wr_inspect_ref ref, const void *p, size_t n) {
  wr_inspect_rec *r = rec_of(in, ref);
  if (r) body_add(in, &r->resp_body, p, n);
}

void wr_inspect_response(wr_inspect *in, wr_inspect_ref ref, int status, const wr_http_header *h,
                         size_t n) {
  wr_inspect_rec *r = rec_of(in, ref);
  if (!r) return;
  r->status = status;
  free(r->resp_headers.data);
  memset(&r->resp_headers, 0, sizeof(r->resp_headers));
  text_fill(&r->resp_headers, in->header_cap, h, n);
}

void wr_inspect_end(wr_inspect *in, wr_inspect_ref ref, int status, uint64_t up, uint64_t down,
                    uint64_t mono_ms) {
  wr_inspect_rec *r = rec_of(in, ref);
  if (!r || r->done) return;
  r->done = 1;
  if (status) r->status = status;
  r->up = up;
  r->down = down;
  r->duration_ms = mono_ms >= r->duration_ms ? mono_ms - r->duration_ms : 0;
}

const wr_inspect_rec *wr_inspect_get(const wr_inspect *in, uint64_t id) {
  if (!in || !id) return NULL;
  for (size_t i = 0; i < in->max_tunnels; i++) {
    const ring *g = &in->rings[i];
    if (!g->recs || !g->tunnel_id[0]) continue;
    for (size_t j = 0; j < in->per_tunnel; j++)
      if (g->recs[j].id == id) return &g->recs[j];
  }
  return NULL;
}

size_t wr_inspect_list(const wr_inspect *in, const char *tunnel_id, const wr_inspect_rec **out,
                       size_t max) {
  size_t n = 0;
  if (!in || !tunnel_id) return 0;
  uint32_t i = wr_lru_index_find(&in->index, tunnel_id);
  const ring *g = i == WR_LRU_NONE ? NULL : &in->rings[i];
  /* Newest first: backwards from the slot before |next|. */
  for (size_t k = 1; g && k <= in->per_tunnel && n < max; k++) {
    const wr_inspect_rec *r = &g->recs[(g->next + in->per_tunnel - k) % in->per_tunnel];
    if (r->id) out[n++] = r;
  }
  return n;
}

void wr_inspect_replay_result(wr_inspect *in, uint64_t id, int status, uint64_t ms,
                              const char *error) {
  wr_inspect_rec *r = (wr_inspect_rec *)wr_inspect_get(in, id);
  if (!r) return;
  if (status < 0) {
    r->replayed = 1;
    r->replay_status = 0;
    r->replay_error[0] = '\0';
    return;
  }
  r->replayed = 2;
  r->replay_status = status;
  r->replay_ms = ms;
  snprintf(r->replay_error, sizeof(r->replay_error), "%s", error ? error : "");
}
