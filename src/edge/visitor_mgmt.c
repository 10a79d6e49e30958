/* Requests for the management hostname (visitor_int.h): cloudflared's
 * `tail` (and `warren tail`) open wss://<management hostname>/logs
 * ?access_token=<token>. The token, not the Host, says which tunnel: it
 * must be one this edge signed (edge/mgmt_key.h), unexpired, and the
 * request then goes to one of that tunnel's connectors with the
 * management hostname as its host, which the connector serves itself
 * (its management service). Refusals are JSON, as cloudflared's
 * management middleware answers, so its tail prints the reason:
 *   400 {"success":false,"errors":[{"code":1001,"message":...}]}  no or a bad token
 *   530 the same shape                                            no connector */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "edge/visitor_int.h"
#include "lib/buf.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "proto/mgmt_token.h"

int wr__visitor_mgmt_host(const wr_visitor *v, const char *host) {
  return v->mgmt_keylen && v->mgmt_host[0] && strcmp(host, v->mgmt_host) == 0;
}

/* A JSON answer from the edge; the connection stays usable. */
static void answer_json(vconn *c, int status, int code, const char *msg) {
  char body[512];
  int blen = snprintf(body, sizeof(body),
                      "{\"success\":false,\"errors\":[{\"code\":%d,\"message\":\"%s\"}]}\n", code,
                      msg);
  if (blen < 0 || (size_t)blen >= sizeof(body)) blen = 0;
  wr__vconn_respond(c, status, "application/json", NULL, 0, body, (size_t)blen);
}

/* The access_token query parameter of |path| (path + query), decoded. */
static int access_token(const char *path, size_t len, char *out, size_t cap) {
  const char *q = memchr(path, '?', len), *end = path + len;
  while (q && q < end) {
    const char *k = q + 1, *amp = memchr(k, '&', (size_t)(end - k));
    size_t kl = amp ? (size_t)(amp - k) : (size_t)(end - k);
    if (kl > 13 && memcmp(k, "access_token=", 13) == 0)
      return wr_pct_decode(k + 13, kl - 13, WR_PCT_PLUS, out, cap) > 0;
    q = amp;
  }
  return 0;
}

int wr__visitor_mgmt_route(vconn *c, const wr__visitor_target *t, size_t used) {
  wr_visitor *v = c->v;
  char tok[WR_MGMT_TOKEN_MAX + 1];
  wr_mgmt_claims cl;
  int have = access_token(t->path, t->path_len, tok, sizeof(tok)), rv;
  if (!have) {
    wr_buf_consume(&c->in, used);
    answer_json(c, 400, 1001, "missing access_token query parameter");
    return -1;
  }
  rv = wr_mgmt_token_verify(tok, strlen(tok), v->mgmt_key, v->mgmt_keylen, (int64_t)time(NULL),
                            &cl);
  explicit_bzero(tok, sizeof(tok));
  if (rv != WR_OK) {
    wr_buf_consume(&c->in, used);
    wr_info("visitor %llu (%s): management request refused: %s token",
            (unsigned long long)c->id, c->ip, rv == WR_ERR_DENIED ? "an invalid or expired" : "a malformed");
    answer_json(c, 400, 1001, "invalid or expired access_token");
    return -1;
  }
  snprintf(c->r->tunnel_id, sizeof(c->r->tunnel_id), "%.36s", cl.tunnel_id);
  if (wr_tunnel_server_count(v->ts, c->r->tunnel_id) == 0) {
    wr_buf_consume(&c->in, used);
    answer_json(c, 530, 1002, "no connector of this tunnel is connected to the edge");
    return -1;
  }
  return 0;
}
