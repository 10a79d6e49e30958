/* The client side of cloudflared's browser login (cloudflare-api.md §1):
 * the session key, the browser URL and the long poll that fetches
 * cert.pem from the login service's store. Where the files go and what
 * is printed is the command's business (cmd/tunnel_login.c). */
#ifndef WR_CFAPI_LOGIN_H
#define WR_CFAPI_LOGIN_H
#include <stddef.h>
#include <stdint.h>

#include "cfapi/client.h"

#define WR_CFAPI_LOGIN_URL "https://dash.cloudflare.com/argotunnel"
#define WR_CFAPI_LOGIN_CALLBACK_URL "https://login.cloudflareaccess.org/"

/* The public half of a fresh X25519 key pair, base64url with padding (44
 * characters): the only name of a login session. Returns WR_OK or
 * WR_ERR_CRYPTO ("cannot generate a Curve25519 key pair"). */
int wr_cfapi_login_key(char out[64], wr_cfapi_error *e);

/* buildRequestURL: |login| with aud= and callback=|callback| added to its
 * query, re-encoded sorted by key as url.Values.Encode does (the existing
 * query is decoded leniently first). Caller frees. */
char *wr_cfapi_login_url(const char *login, const char *callback);

typedef struct wr_cfapi_login_poll {
  const char *url;               /* <callback><key> */
  const char *user_agent;        /* NULL: "warren/<version>" */
  /* Called before polling again after a non-200 answer (the command logs
   * "Waiting for login..."). May be NULL. */
  void (*waiting)(void *ud);
  void *waiting_ud;
  wr_cfapi_transport transport;  /* as client.h */
} wr_cfapi_login_poll;

/* transferRequest: up to 10 GETs of up to 60 s each. >= 500 aborts
 * ("error on request N"), other non-200 answers and empty 200s poll again
 * at once, a transport error aborts (Go's text). *body (caller frees and
 * should wipe) gets the first non-empty 200 body. Returns WR_OK, WR_ERR_IO,
 * or WR_ERR_NOTFOUND ("Failed to fetch resource") after 10 tries. */
int wr_cfapi_login_fetch(const wr_cfapi_login_poll *p, uint8_t **body, size_t *len, wr_cfapi_error *e);

#endif
