/* Cookie request headers (RFC 6265 section 4.2): finding one cookie's value
 * in "name1=value1; name2=value2". Pure and bounded; the Access gate reads
 * CF_Authorization with it. */
#ifndef WR_PROTO_COOKIE_H
#define WR_PROTO_COOKIE_H
#include <stddef.h>

/* Finds cookie |name| (case-sensitive, as browsers send it) in the |len|
 * bytes of a Cookie header value. On 1, *val / *vlen point into |hdr| at
 * the value without surrounding double quotes; 0 when absent. Pairs without
 * '=' are skipped; the first pair of that name wins. */
int wr_cookie_find(const char *hdr, size_t len, const char *name, const char **val, size_t *vlen);

#endif
