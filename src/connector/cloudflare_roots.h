/* Cloudflare's root certificates (src/connector/cloudflare_roots.pem, as
 * cloudflared embeds them): the trust anchors for Cloudflare's edge that
 * the supervisor adds to the system store when no --cacert is given. */
#ifndef WR_CONNECTOR_CLOUDFLARE_ROOTS_H
#define WR_CONNECTOR_CLOUDFLARE_ROOTS_H
#include <stddef.h>

/* The PEM text (three certificates, '#' comment lines between them) and
 * its length in *len. Static; never NULL. */
const char *wr_cloudflare_roots_pem(size_t *len);

#endif
