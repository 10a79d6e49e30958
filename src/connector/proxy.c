/* The connector's data streams; see proxy.h for the behaviour and
 * proxy_int.h for the objects, their owners and how the files divide the
 * work. This file: the wr_proxy object, its public API (the QUIC events the
 * supervisor forwards) and the lifetime of a stream. */
#include "connector/proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/proxy_int.h"
#include "connector/access_verify.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strpack.h"

/* --- who uses which ingress rules -------------------------------------------- */

static void ing_use(wr_proxy *p, const wr_ingress *ing) {
  for (size_t i = 0; i < p->nrefs; i++)
    if (p->refs[i].ing == ing) {
      p->refs[i].users++;
      return;
    }
}

/* Drops entry |i| of p->refs (never the current one) and tells the owner. */
static void ing_retire(wr_proxy *p, size_t i) {
  const wr_ingress *ing = p->refs[i].ing;
  p->refs[i] = p->refs[--p->nrefs];
  if (p->ingress_unused) p->ingress_unused(p->ingress_user, ing);
}

static void ing_unuse(wr_proxy *p, const wr_ingress *ing) {
  for (size_t i = 0; i < p->nrefs; i++) {
    if (p->refs[i].ing != ing) continue;
    if (--p->refs[i].users == 0 && i > 0) ing_retire(p, i);
    return;
  }
}

void wr_proxy_set_ingress(wr_proxy *p, const wr_ingress *ing) {
  if (ing == p->ing) return;
  p->refs = wr_xrealloc(p->refs, (p->nrefs + 1) * sizeof(*p->refs));
  p->refs[p->nrefs++] = p->refs[0]; /* the old current rules join the replaced ones */
  p->refs[0] = (ing_ref){ing, 0};
  p->ing = ing;
  if (p->refs[p->nrefs - 1].users == 0) ing_retire(p, p->nrefs - 1);
}

/* --- stream lifetime --------------------------------------------------------- */

static void stream_free(pstream *s) {
  ing_unuse(s->p, s->ing);
  if (s->have_req) wr_connect_request_free(NULL, &s->req);
  wr_buf_free(&s->hbuf);
  wr_buf_free(&s->arena);
  wr_buf_free(&s->held);
  wr_buf_free(&s->req_head);
  wr_buf_free(&s->rbuf);
  wr_buf_free(&s->out);
  free(s->hdrs);
  free(s->rh);
  free(s->target);
  free(s->rpc_message);
  wr_rpc_session_free(s->rpc);
  wr__proxy_tcp_free(s);
  free(s);
}

void wr__proxy_hold(pstream *s) { s->busy++; }

void wr__proxy_unhold(pstream *s) {
  if (--s->busy == 0 && s->zombie) stream_free(s);
}

static void request_end(pstream *s) {
  if (s->counted) {
    s->counted = 0;
    s->p->stats.concurrent_requests--;
  }
  if (s->piping) {
    s->piping = 0;
    s->p->stats.tcp_active--;
  }
}

/* QUIC is done with the stream (or the proxy goes): drop the origin, unlink,
 * free now or when the last holder returns. No QUIC call after this. */
static void stream_release(pstream *s) {
  wr_proxy *p = s->p;
  const wr_edge_stream_ops *ops = s->ops;
  s->qc = NULL;
  s->ops = NULL;
  if (ops && p->dying) ops->forget(s->ot);
  wr__proxy_mgmt_free(s); /* no log event is sent to a stream QUIC forgot */
  wr__proxy_detach(s, 0);
  request_end(s);
  s->state = ST_DONE;
  WR_LIST_REMOVE(p->streams, s);
  s->next = s->prev = NULL;
  p->nstreams--;
  if (s->busy)
    s->zombie = 1;
  else
    stream_free(s);
}

pstream *wr__proxy_stream_new(wr_proxy *p, wr_quic_conn *c, int64_t sid) {
  pstream *s = wr_xcalloc(1, sizeof(*s));
  s->p = p;
  s->qc = c;
  s->sid = sid;
  s->ing = p->ing;
  ing_use(p, s->ing);
  wr_buf_init(&s->hbuf, WR__PROXY_HEAD_MAX, NULL);
  wr_buf_init(&s->arena, WR__PROXY_ARENA_MAX, NULL);
  wr_buf_init(&s->held, WR__PROXY_HELD_MAX, NULL);
  wr_buf_init(&s->req_head, WR__PROXY_ARENA_MAX, NULL);
  wr_buf_init(&s->rbuf, WR__PROXY_RBUF_MAX, NULL);
  wr_buf_init(&s->out, WR__PROXY_OUT_MAX, NULL);
  WR_LIST_INSERT_HEAD(p->streams, s);
  p->nstreams++;
  return s;
}

void wr__proxy_stream_drop(pstream *s) {
  s->qc = NULL;
  stream_release(s);
}

void wr__proxy_set_state(pstream *s, int st) {
  if (s->state == st) return;
  if (st == ST_PIPE && !s->piping) {
    s->piping = 1;
    s->p->stats.tcp_active++;
    s->p->stats.tcp_total++;
  }
  if (st == ST_DONE) request_end(s);
  s->state = st;
}

/* --- the proxy object ------------------------------------------------------------ */

static void copy_tags(wr_proxy *p, const wr_proxy_config *cfg) {
  if (!cfg->ntags) return;
  char **names = wr_xcalloc(cfg->ntags, sizeof(char *));
  char **values = wr_xcalloc(cfg->ntags, sizeof(char *));
  for (size_t i = 0; i < cfg->ntags; i++) {
    size_t n = strlen(cfg->tag_names[i]) + sizeof("Cf-Warp-Tag-");
    names[i] = wr_xmalloc(n);
    snprintf(names[i], n, "Cf-Warp-Tag-%s", cfg->tag_names[i]);
    values[i] = wr_xstrdup(cfg->tag_values[i]);
  }
  p->tag_names = (const char *const *)names;
  p->tag_values = (const char *const *)values;
  p->ntags = cfg->ntags;
}

static void free_tags(wr_proxy *p) {
  for (size_t i = 0; i < p->ntags; i++) {
    free((char *)p->tag_names[i]);
    free((char *)p->tag_values[i]);
  }
  free((void *)p->tag_names);
  free((void *)p->tag_values);
}

int wr_proxy_new(const wr_proxy_config *cfg, wr_proxy **out) {
  wr_proxy *p;
  if (!cfg || !cfg->loop || !out) return WR_ERR_INVAL;
  p = wr_xcalloc(1, sizeof(*p));
  p->loop = cfg->loop;
  p->ing = cfg->ingress;
  p->refs = wr_xcalloc(1, sizeof(*p->refs));
  p->refs[0].ing = p->ing;
  p->nrefs = 1;
  p->ingress_unused = cfg->ingress_unused;
  p->ingress_user = cfg->ingress_user;
  copy_tags(p, cfg);
  wr_uuid_format(&cfg->connector_id, p->tag);
  int mgmt = cfg->management_hostname && cfg->management_hostname[0];
  const wr_strcopy strs[] = {{cfg->version ? cfg->version : WR_VERSION, &p->version},
                             {mgmt ? cfg->management_hostname : NULL, &p->mgmt_host},
                             {mgmt ? cfg->label : NULL, &p->mgmt_label}};
  p->strs = wr_strpack(strs, sizeof(strs) / sizeof(strs[0]));
  if (cfg->services) p->svc = *cfg->services;
  if (mgmt) p->mgmt = wr_mgmt_logs_new(p->loop);
  uv_timer_init(p->loop, &p->timer);
  p->timer.data = p;
  p->handles = 1;
  *out = p;
  return WR_OK;
}

static void proxy_final_free(wr_proxy *p) {
  wr__proxy_creds_free(p);
  free_tags(p);
  free(p->refs);
  free(p->strs);
  free(p);
}

void wr__proxy_handle_done(wr_proxy *p) {
  if (--p->handles == 0 && p->dying) proxy_final_free(p);
}

static void timer_close_cb(uv_handle_t *h) { wr__proxy_handle_done(h->data); }

void wr_proxy_free(wr_proxy *p) {
  origin *o, *n;
  if (!p) return;
  p->dying = 1;
  wr_access_verifier_free(p->access);
  p->access = NULL;
  while (p->streams) stream_release(p->streams);
  for (o = p->origins; o; o = n) {
    n = o->next;
    wr__proxy_origin_close(o);
  }
  wr_mgmt_logs_free(p->mgmt); /* after the streams: their sessions are gone */
  p->mgmt = NULL;
  uv_timer_stop(&p->timer);
  uv_close((uv_handle_t *)&p->timer, timer_close_cb);
}


const wr_ingress *wr_proxy_ingress(const wr_proxy *p) { return p->ing; }

void wr_proxy_set_services(wr_proxy *p, const wr_rpc_services *svc) { p->svc = *svc; }

const wr_rpc_services *wr_proxy_services(const wr_proxy *p) { return &p->svc; }

/* --- QUIC events ------------------------------------------------------------------ */

int wr_proxy_on_stream_open(wr_proxy *p, wr_quic_conn *c, int64_t sid) {
  pstream *s;
  if (p->dying) return 0;
  s = wr__proxy_stream_new(p, c, sid);
  wr_quic_stream_set_user(c, sid, s);
  return 0;
}

int wr_proxy_on_stream_data(wr_proxy *p, wr_quic_conn *c, int64_t sid, const uint8_t *data,
                            size_t len, int fin, void *suser) {
  pstream *s = suser;
  if (p->dying) return 0;
  if (!s) {
    s = wr__proxy_stream_new(p, c, sid);
    wr_quic_stream_set_user(c, sid, s);
  }
  wr__proxy_hold(s);
  if (s->rpc)
    wr__proxy_rpc_input(s, data, len, fin);
  else if (s->state == ST_HEAD)
    wr__proxy_head_input(s, data, len, fin);
  else
    wr__proxy_body_input(s, data, len, fin);
  wr__proxy_unhold(s);
  return 0;
}

int wr_proxy_on_stream_reset(wr_proxy *p, wr_quic_conn *c, int64_t sid, uint64_t code,
                             void *suser) {
  pstream *s = suser;
  if (!s || p->dying) return 0;
  wr__proxy_hold(s);
  wr__proxy_drop_held(s);
  if (s->state == ST_DONE) {
    /* Our response is complete or failed already (a RESET after our
     * STOP_SENDING is the normal end): nothing to undo. */
    s->edge_fin = 1;
  } else {
    s->edge_fin = 1; /* no STOP_SENDING for a side the edge reset */
    wr_debug("data stream %lld: the edge reset it (code %llu); aborting the origin request",
             (long long)sid, (unsigned long long)code);
    wr__proxy_reset(s);
  }
  wr__proxy_unhold(s);
  return 0;
}

void wr_proxy_on_stream_writable(wr_proxy *p, wr_quic_conn *c, int64_t sid, void *suser) {
  pstream *s = suser;
  if (!s || p->dying) return;
  wr__proxy_hold(s);
  wr__proxy_flush(s);
  wr__proxy_unhold(s);
}

void wr_proxy_on_stream_close(wr_proxy *p, wr_quic_conn *c, int64_t sid, void *suser) {
  pstream *s = suser;
  if (!s || p->dying) return;
  stream_release(s);
}

void wr_proxy_on_conn_close(wr_proxy *p, wr_quic_conn *c) {
  pstream *s, *n;
  for (s = p->streams; s; s = n) {
    n = s->next;
    if (s->qc == c) stream_release(s);
  }
}

/* --- streams of other transports ----------------------------------------------- */

/* Copies |req| into the stream: strings into s->hbuf (reserved at once, so
 * the pointers stay put), the metadata array allocated as the QUIC decoder
 * does (wr_connect_request_free). Returns WR_OK or WR_ERR_LIMIT. */
static int copy_request(pstream *s, const wr_connect_request *req) {
  size_t need = req->dest_len + 1;
  for (size_t i = 0; i < req->nmeta; i++) need += req->meta[i].key_len + req->meta[i].val_len + 2;
  if (need > WR__PROXY_HEAD_MAX || wr_buf_reserve(&s->hbuf, need) != WR_OK) return WR_ERR_LIMIT;
  s->req = *req;
  s->req.dest = (const char *)s->hbuf.data + s->hbuf.len;
  wr_buf_append(&s->hbuf, req->dest, req->dest_len);
  wr_buf_append(&s->hbuf, "", 1);
  s->req.meta = wr_xcalloc(req->nmeta + 1, sizeof(wr_meta));
  for (size_t i = 0; i < req->nmeta; i++) {
    wr_meta *m = &s->req.meta[i];
    *m = req->meta[i];
    m->key = (const char *)s->hbuf.data + s->hbuf.len;
    wr_buf_append(&s->hbuf, req->meta[i].key, req->meta[i].key_len);
    wr_buf_append(&s->hbuf, "", 1);
    m->val = (const char *)s->hbuf.data + s->hbuf.len;
    wr_buf_append(&s->hbuf, req->meta[i].val, req->meta[i].val_len);
    wr_buf_append(&s->hbuf, "", 1);
  }
  s->have_req = 1;
  return WR_OK;
}

wr_proxy_stream *wr_proxy_stream_start(wr_proxy *p, const wr_edge_stream_ops *ops, void *t,
                                       int64_t id, const wr_connect_request *req) {
  pstream *s;
  if (p->dying) return NULL;
  s = wr__proxy_stream_new(p, NULL, id);
  s->ops = ops;
  s->ot = t;
  wr__proxy_hold(s);
  if (copy_request(s, req) != WR_OK)
    wr__proxy_reject(s, "request too large");
  else
    wr__proxy_dispatch(s);
  wr__proxy_unhold(s);
  return s;
}

void wr_proxy_stream_input(wr_proxy_stream *s, const uint8_t *data, size_t len, int fin) {
  if (s->p->dying || s->zombie) return;
  wr__proxy_hold(s);
  wr__proxy_body_input(s, data, len, fin);
  wr__proxy_unhold(s);
}

void wr_proxy_stream_reset(wr_proxy_stream *s) {
  if (s->p->dying || s->zombie) return;
  wr__proxy_hold(s);
  wr__proxy_drop_held(s);
  s->edge_fin = 1;
  if (s->state != ST_DONE) {
    wr_debug("data stream %lld: the edge reset it; aborting the origin request",
             (long long)s->sid);
    wr__proxy_reset(s);
  }
  wr__proxy_unhold(s);
}

void wr_proxy_stream_writable(wr_proxy_stream *s) {
  if (s->p->dying || s->zombie) return;
  wr__proxy_hold(s);
  wr__proxy_flush(s);
  wr__proxy_unhold(s);
}

void wr_proxy_stream_gone(wr_proxy_stream *s) {
  if (s->zombie) return;
  s->ops = NULL;
  stream_release(s);
}

size_t wr_proxy_active(const wr_proxy *p) { return p->nstreams; }

const wr_proxy_stats *wr_proxy_get_stats(const wr_proxy *p) { return &p->stats; }
