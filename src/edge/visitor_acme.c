/* ACME HTTP-01 on the plain visitor front (visitor_int.h): the CA fetches
 * http://<host>/.well-known/acme-challenge/<token> and must get the key
 * authorization, before any routing, Access or HTTPS redirect could get in
 * its way. Only tokens of an order in flight are answered; anything else
 * under that path goes on as a normal request. */
#include <string.h>

#include "edge/acme.h"
#include "edge/visitor_int.h"
#include "lib/err.h"

int wr__visitor_acme_answer(vconn *c, const wr__visitor_target *t, size_t used) {
  static const size_t plen = sizeof(WR_ACME_CHALLENGE_PATH) - 1;
  char token[WR_ACME_TOKEN_MAX + 1], ka[WR_ACME_KEYAUTH_MAX + 1];
  if (!t->path || t->path_len <= plen || t->path_len - plen > WR_ACME_TOKEN_MAX ||
      memcmp(t->path, WR_ACME_CHALLENGE_PATH, plen) != 0)
    return 0;
  if (strcmp(c->r->method, "GET") != 0 && strcmp(c->r->method, "HEAD") != 0) return 0;
  memcpy(token, t->path + plen, t->path_len - plen);
  token[t->path_len - plen] = '\0';
  if (wr_acme_http01(c->v->acme, token, ka, sizeof(ka)) != WR_OK) return 0;
  wr_buf_consume(&c->in, used);
  wr__vconn_respond(c, 200, "application/octet-stream", NULL, 0, ka, strlen(ka));
  return 1;
}
