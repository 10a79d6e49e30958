/* Management tokens: the JWT that cloudflared's `tail` gets from the API
 * (POST .../cfd_tunnel/{id}/management) and passes as ?access_token= on the
 * management hostname. Claims as cloudflared 2023.7.3 reads them
 * (management/token.go):
 *   {"tun":{"id":TUNNEL,"account_tag":ACCOUNT},"actor":{"id":ACTOR,"support":false},
 *    "iat":SECONDS,"exp":SECONDS}
 * The edge signs with HS256 (its own secret key) and verifies the
 * signature and expiry before it forwards a request; the connector, like
 * cloudflared, only reads the claims (the edge vouched for them) and
 * requires tun.id, tun.account_tag and actor.id.
 *
 * Pure code: the clock comes from the caller; HMAC-SHA256 is gnutls'. */
#ifndef WR_PROTO_MGMT_TOKEN_H
#define WR_PROTO_MGMT_TOKEN_H
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* Longest token accepted (bytes of the compact serialization). */
#define WR_MGMT_TOKEN_MAX 4096

typedef struct wr_mgmt_claims {
  char tunnel_id[64];
  char account_tag[64];
  char actor_id[320];
  int support;
  int64_t iat, exp; /* Unix seconds; 0: absent */
} wr_mgmt_claims;

/* Appends the signed token for |c| to |out|. Returns WR_OK, WR_ERR_INVAL
 * (an empty required claim), WR_ERR_CRYPTO or WR_ERR_NOMEM/WR_ERR_LIMIT. */
int wr_mgmt_token_sign(const uint8_t *key, size_t keylen, const wr_mgmt_claims *c, wr_buf *out);

/* Reads the claims without checking the signature (the connector's view).
 * Returns WR_OK, or WR_ERR_PROTO for a token that is not a JWS compact
 * serialization with a JSON header naming an alg, or whose claims lack
 * tun.id, tun.account_tag or actor.id. */
int wr_mgmt_token_parse(const char *tok, size_t len, wr_mgmt_claims *c);

/* wr_mgmt_token_parse, plus: alg HS256, the signature made with |key|, and
 * not expired at |now| (Unix seconds; a token without exp is refused).
 * Returns WR_OK, WR_ERR_PROTO (malformed) or WR_ERR_DENIED (bad signature,
 * another alg, expired). */
int wr_mgmt_token_verify(const char *tok, size_t len, const uint8_t *key, size_t keylen,
                         int64_t now, wr_mgmt_claims *c);

#endif
