/* Cloudflare's root certificates; see cloudflare_roots.h. The Makefile
 * turns cloudflare_roots.pem into the string literal included here, so
 * the certificates live in one reviewable PEM file. */
#include "connector/cloudflare_roots.h"

static const char roots[] =
#include "cloudflare_roots.inc"
    ;

const char *wr_cloudflare_roots_pem(size_t *len) {
  *len = sizeof(roots) - 1;
  return roots;
}
