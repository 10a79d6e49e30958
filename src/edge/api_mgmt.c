/* POST /accounts/{a}/cfd_tunnel/{t}/management (cloudflared 2023.7.3's
 * `tail`, body {"resources":["logs"]}) and .../management/{resource}
 * (later cloudflared versions, no body): a management token (a JSON
 * string) for the tunnel, signed with the edge's key (edge/mgmt_key.h),
 * valid WR_MGMT_TOKEN_TTL_S seconds for opening a session. Its actor is the
 * API caller, so two callers' tail sessions are told apart by the
 * connector (one streaming actor at a time). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "edge/api_int.h"
#include "edge/mgmt_key.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "proto/mgmt_token.h"

void wr__api_mgmt_token(wr__api_ctx *c, const wr_tunnel *t) {
  uint8_t key[WR_MGMT_KEY_LEN];
  char err[256];
  wr_mgmt_claims cl;
  wr_buf tok;
  if (t->deleted_at) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "tunnel %s (%s) is deleted", t->name, t->id);
    return;
  }
  if (!c->api->data_dir ||
      wr_mgmt_key_load_or_create(c->api->data_dir, key, err, sizeof(err)) != WR_OK) {
    if (c->api->data_dir) wr_error("management token: %s", err);
    wr__api_err(c, 500, WR_API_CODE_INTERNAL, "the edge has no management token key");
    return;
  }
  memset(&cl, 0, sizeof(cl));
  snprintf(cl.tunnel_id, sizeof(cl.tunnel_id), "%s", t->id);
  snprintf(cl.account_tag, sizeof(cl.account_tag), "%s", t->account_id);
  snprintf(cl.actor_id, sizeof(cl.actor_id), "%s", c->actor[0] ? c->actor : "api");
  cl.iat = (int64_t)time(NULL);
  cl.exp = cl.iat + WR_MGMT_TOKEN_TTL_S;
  wr_buf_init(&tok, WR_MGMT_TOKEN_MAX, NULL);
  if (wr_mgmt_token_sign(key, sizeof(key), &cl, &tok) != WR_OK) {
    wr__api_err(c, 500, WR_API_CODE_INTERNAL, "cannot sign the management token");
  } else {
    wr__api_ok(c, json_string(wr_buf_cstr(&tok)), NULL);
  }
  explicit_bzero(key, sizeof(key));
  if (tok.data) explicit_bzero(tok.data, tok.len);
  wr_buf_free(&tok);
}
