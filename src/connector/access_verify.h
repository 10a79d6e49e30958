/* originRequest.access at the connector: every request to a rule with
 * `access.required: true` must carry a Cf-Access-Jwt-Assertion that
 * verifies against the team's keys (RS256, proto/jwt.h), with one of the
 * rule's audTag values (any audience when none is given, as cloudflared),
 * the team's issuer and an unexpired exp; anything else is answered 403
 * before the origin is contacted, as cloudflared does.
 *
 * Keys: fetched from https://<teamName>.cloudflareaccess.com/cdn-cgi/access/certs
 * (WARREN_ACCESS_CERTS_URL overrides the URL, WARREN_ACCESS_ISSUER the
 * expected issuer, default https://<teamName>.cloudflareaccess.com: set
 * both to use a self-hosted warren-edge, whose team domain is its
 * --access-team-domain or API listener). The set is fetched on libuv's
 * worker pool when first needed, cached, and fetched again (at most every
 * WR_ACCESS_VERIFY_REFETCH_MS) when a token names a key it does not hold.
 * While no set is held, requests are refused (fail closed) and the fetch
 * runs. Loop thread only. */
#ifndef WR_CONNECTOR_ACCESS_VERIFY_H
#define WR_CONNECTOR_ACCESS_VERIFY_H
#include <stddef.h>

#include <uv.h>

#include "connector/ingress.h"

#define WR_ACCESS_VERIFY_REFETCH_MS 5000

typedef struct wr_access_verifier wr_access_verifier;

wr_access_verifier *wr_access_verifier_new(uv_loop_t *loop);
/* Frees it once a fetch in flight is back. NULL is a no-op. */
void wr_access_verifier_free(wr_access_verifier *v);

/* Checks |token| (|len| bytes; NULL: none sent) for a rule's |acc|.
 * Returns WR_OK, or WR_ERR_DENIED with the reason in |err|. */
int wr_access_verifier_check(wr_access_verifier *v, const wr_access_config *acc, const char *token, size_t len,
                             char *err, size_t errlen);

#endif
