/* OpenID Connect, the relying party's side of the authorization code flow
 * with PKCE (RFC 6749 §4.1, RFC 7636 S256, OpenID Connect Core 1.0 §3.1),
 * as the edge's Access sign-in uses it with an identity provider:
 *
 *   1. wr_oidc_states_begin: a pending flow with a fresh state, nonce, PKCE
 *      verifier and a browser binding (a cookie value: the state alone
 *      does not prove the callback comes back to the browser that started);
 *      wr_oidc_authorize_url sends the browser to the provider.
 *   2. The provider calls back with code and state: wr_oidc_states_take
 *      finds the flow once (a state is single-use), checks the binding and
 *      the expiry.
 *   3. The code is exchanged (wr_oidc_token_body, wr_oidc_token_parse), the
 *      id_token verified with proto/jwt.h against the provider's JWKS, and
 *      wr_oidc_claims_check compares its nonce and reads the email.
 *
 * Parsers of outside input (discovery documents, token responses) are
 * strict about types and bounded (WR_OIDC_DOC_MAX); they are fuzzed.
 *
 * Sans-I/O: no sockets, no clock (callers pass |now_ms|), no logging; the
 * secrets come from lib/encoding.h's wr_random_bytes. A wr_oidc_states is
 * not locked: one thread uses it. */
#ifndef WR_PROTO_OIDC_H
#define WR_PROTO_OIDC_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define WR_OIDC_SECRET_LEN 43           /* base64url of 32 random bytes */
#define WR_OIDC_DOC_MAX (256u * 1024u)  /* longest discovery / token response read */
#define WR_OIDC_URL_MAX 2048
#define WR_OIDC_FLOW_TTL_MS (10u * 60u * 1000u) /* a sign-in at the provider may take this long */

/* ---- provider documents --------------------------------------------------------- */

/* The endpoints of a provider (malloc'd strings; NULL when absent). */
typedef struct wr_oidc_endpoints {
  char *issuer;
  char *authorization_endpoint;
  char *token_endpoint;
  char *jwks_uri;
} wr_oidc_endpoints;

/* Parses a discovery document (/.well-known/openid-configuration). All four
 * members are required, strings, the URLs http(s):// without spaces or
 * control characters, at most WR_OIDC_URL_MAX bytes. Returns WR_OK,
 * WR_ERR_PROTO (with a sentence in |err|) or WR_ERR_LIMIT (too long). On
 * error |out| is left empty. */
int wr_oidc_discovery_parse(const char *json, size_t len, wr_oidc_endpoints *out, char *err, size_t errlen);
void wr_oidc_endpoints_free(wr_oidc_endpoints *e);

/* Parses a token endpoint's JSON answer. A success carries "id_token" (a
 * string, at most 16 KiB): WR_OK with *id_token malloc'd. An error answer
 * {"error": ..., "error_description"?: ...} or anything else: WR_ERR_DENIED
 * (the provider refused: |err| says why) or WR_ERR_PROTO / WR_ERR_LIMIT. */
int wr_oidc_token_parse(const char *json, size_t len, char **id_token, char *err, size_t errlen);

/* ---- requests ---------------------------------------------------------------------- */

/* The S256 code challenge of |verifier|: base64url(SHA-256(verifier)).
 * Returns WR_OK or WR_ERR_CRYPTO. */
int wr_oidc_pkce_challenge(const char *verifier, char out[WR_OIDC_SECRET_LEN + 1]);

/* The URL the browser goes to at the provider (malloc'd): |auth_url| with
 * response_type=code, client_id, redirect_uri, scope (|scopes|, space
 * separated; "openid" is added when missing), state, nonce, code_challenge
 * and code_challenge_method=S256 appended (with '&' when |auth_url| already
 * has a query). */
char *wr_oidc_authorize_url(const char *auth_url, const char *client_id, const char *redirect_uri,
                            const char *scopes, const char *state, const char *nonce, const char *challenge);

/* The form body of the code exchange (malloc'd): grant_type=authorization_code,
 * code, redirect_uri, client_id, client_secret (client_secret_post), and
 * code_verifier. */
char *wr_oidc_token_body(const char *code, const char *redirect_uri, const char *client_id,
                         const char *client_secret, const char *verifier);

/* Checks the claims of a verified id_token (signature, iss, aud and exp are
 * proto/jwt.h's): "nonce" must equal |nonce| (constant time), the claim
 * |email_claim| ("email" when NULL) must be a string holding one '@', at
 * most |cap|-1 bytes, copied to |email|; "email_verified": false is
 * refused. Returns WR_OK or WR_ERR_DENIED with |err|. */
int wr_oidc_claims_check(const json_t *claims, const char *nonce, const char *email_claim, char *email, size_t cap,
                         char *err, size_t errlen);

/* ---- pending flows ------------------------------------------------------------------ */

typedef struct wr_oidc_states wr_oidc_states;

/* What a flow carries from its start to its callback. */
typedef struct wr_oidc_flow {
  char state[WR_OIDC_SECRET_LEN + 1];
  char nonce[WR_OIDC_SECRET_LEN + 1];
  char verifier[WR_OIDC_SECRET_LEN + 1];
  char binding[WR_OIDC_SECRET_LEN + 1]; /* the browser's cookie value */
  char challenge[WR_OIDC_SECRET_LEN + 1];
  char *ctx; /* the caller's context (copied at begin, malloc'd at take) */
} wr_oidc_flow;

/* A table of at most |max| pending flows living |ttl_ms| each. */
wr_oidc_states *wr_oidc_states_new(size_t max, uint64_t ttl_ms);
void wr_oidc_states_free(wr_oidc_states *st);
/* Starts a flow with context |ctx| (copied): fills |out| (its ctx NULL).
 * A full table drops its expired flows, then its oldest one, so a flood of
 * starts cannot grow memory. Returns WR_OK or WR_ERR_CRYPTO (no
 * randomness). */
int wr_oidc_states_begin(wr_oidc_states *st, uint64_t now_ms, const char *ctx, wr_oidc_flow *out);
/* Ends the flow of |state| (it cannot be taken twice) and fills |out| (its
 * ctx malloc'd: free it, also after an error other than NOTFOUND). Returns
 * WR_OK, WR_ERR_NOTFOUND (unknown or already used state), or WR_ERR_DENIED
 * (|binding| is not the browser's that started it, or it expired). */
int wr_oidc_states_take(wr_oidc_states *st, const char *state, const char *binding, uint64_t now_ms,
                        wr_oidc_flow *out);
/* The ctx of the pending flow of |state| (borrowed, valid until the next
 * call on |st|), or NULL; the flow stays pending and nothing is checked:
 * for looking ahead at what a callback will need. */
const char *wr_oidc_states_ctx(const wr_oidc_states *st, const char *state);
size_t wr_oidc_states_count(const wr_oidc_states *st);

#endif
