/* Internals of the login pages (edge/login.h): the parsers of request
 * input, visible to login.c's fuzz target (tests/fuzz/fuzz_login.c). Not an
 * interface for other modules. */
#ifndef WR_EDGE_LOGIN_INT_H
#define WR_EDGE_LOGIN_INT_H
#include <stddef.h>

#include "edge/login.h"

#define WR__LOGIN_COOKIE_NAME "warren_login"
#define WR__LOGIN_SID_LEN 43 /* base64url of 32 bytes, unpadded */

/* Percent-decodes |len| bytes into |out| (NUL-terminated); with |plus|, '+'
 * is a space (form encoding). Returns the decoded length, or -1 for a bad
 * escape or when it does not fit in |outsz| - 1 bytes. */
int wr__login_pct_decode(const char *in, size_t len, int plus, char *out, size_t outsz);
/* Finds |name| in application/x-www-form-urlencoded |data| (also a query
 * string; NULL is empty) and decodes the first value. Returns its length,
 * -1 if absent, -2 if malformed or too long for |out|. */
int wr__login_form_get(const char *data, size_t len, const char *name, char *out, size_t outsz);
/* The key at the end of a callback URL: after the last '/', without any
 * query or fragment, percent-decoded. Returns WR_OK or WR_ERR_INVAL. */
int wr__login_callback_key(const char *cb, char key[WR_LOGIN_KEY_MAX + 1]);
/* Whether |path| is a root-level poll "/KEY" with a key of cloudflared's
 * shape exactly (44 characters, the last one '='). */
int wr__login_root_key(const char *path);
/* Scans a Cookie field value from *pp to |end| for the next
 * "warren_login=<session id>" pair: copies the id into |id| (NUL-terminated),
 * moves *pp past the pair and returns 1; returns 0 when there is none. */
int wr__login_cookie_next(const char **pp, const char *end, char id[WR__LOGIN_SID_LEN + 1]);

#endif
