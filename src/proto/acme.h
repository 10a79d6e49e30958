/* ACME (RFC 8555) messages, free of I/O: the account key and its JWK
 * thumbprint (RFC 7638), JWS requests in the flattened JSON serialisation
 * (ES256 over a P-256 key, GnuTLS), key authorizations for HTTP-01 and
 * DNS-01 (RFC 8555 §8.1, §8.3, §8.4), the CSR of a new certificate, and
 * strict parsers of the server's answers: directory, order, authorization
 * (with the one challenge of the type asked for) and problem documents
 * (RFC 7807).
 *
 * The parsers take outside input: they accept only JSON objects of bounded
 * size, copy URLs and tokens into fixed buffers (longer ones are refused,
 * not cut), check that tokens are base64url and that statuses are the
 * RFC's words. The driver (edge/acme.c) does the HTTP.
 *
 * Sans-I/O: no sockets, no clock, no logging. Memory: malloc and jansson's
 * allocator; failure is WR_ERR_NOMEM. Any thread, distinct objects. Keys
 * never appear in an error text. */
#ifndef WR_PROTO_ACME_H
#define WR_PROTO_ACME_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define WR_ACME_MAX_BODY (64u * 1024u) /* longest JSON answer parsed */
#define WR_ACME_URL_MAX 1024           /* longest URL kept */
#define WR_ACME_TOKEN_MAX 128          /* longest challenge token */
#define WR_ACME_NAME_MAX 253           /* a DNS identifier */
#define WR_ACME_MAX_AUTHZ 16           /* authorizations of one order */
#define WR_ACME_THUMB_LEN 43           /* base64url of a SHA-256 */
#define WR_ACME_KEYAUTH_MAX (WR_ACME_TOKEN_MAX + 1 + WR_ACME_THUMB_LEN)

/* ---- account key --------------------------------------------------------------- */

typedef struct wr_acme_key wr_acme_key;

/* A new P-256 key. WR_OK or WR_ERR_CRYPTO. */
int wr_acme_key_generate(wr_acme_key **out);
/* Imports a PEM private key (PKCS#8 or SEC1). WR_OK, WR_ERR_PROTO (not a
 * key), WR_ERR_UNSUPPORTED (not a P-256 EC key). */
int wr_acme_key_import_pem(const char *pem, size_t len, wr_acme_key **out);
/* The private key as PKCS#8 PEM, malloc'd (free with free). */
int wr_acme_key_export_pem(const wr_acme_key *k, char **pem);
/* The JWK thumbprint (RFC 7638): 43 base64url characters. */
const char *wr_acme_key_thumbprint(const wr_acme_key *k);
void wr_acme_key_free(wr_acme_key *k);

/* ---- requests ---------------------------------------------------------------------- */

/* A JWS for a POST to |url|: protected header {alg ES256, nonce, url, and
 * kid (the account URL) or, when |kid| is NULL, the jwk (newAccount)};
 * payload |payload| (not stolen) or, when NULL, the empty string of a
 * POST-as-GET. *out is the malloc'd JSON text. WR_OK, WR_ERR_INVAL (a NULL
 * nonce or url), WR_ERR_CRYPTO. */
int wr_acme_jws(const wr_acme_key *k, const char *kid, const char *nonce, const char *url,
                const json_t *payload, char **out);

/* "token.thumbprint" into |out| (WR_ACME_KEYAUTH_MAX + 1 bytes). WR_OK or
 * WR_ERR_INVAL (not a valid token). */
int wr_acme_key_authorization(const wr_acme_key *k, const char *token, char *out, size_t cap);
/* The DNS-01 TXT value: base64url(SHA-256(key authorization)), 43
 * characters plus NUL in |out|. */
int wr_acme_dns01_value(const char *key_authz, char out[WR_ACME_THUMB_LEN + 1]);

/* A new P-256 certificate key (*key_pem, PKCS#8, malloc'd) and a CSR for
 * |names| (the first is also the CN) as base64url DER (*csr, malloc'd), as
 * finalize wants it. WR_OK, WR_ERR_INVAL (no names), WR_ERR_CRYPTO. */
int wr_acme_csr(const char *const *names, size_t n, char **key_pem, char **csr);

/* 1 if |s| is a plausible ACME token or nonce: 1..WR_ACME_TOKEN_MAX
 * base64url characters. */
int wr_acme_token_valid(const char *s);

/* ---- answers ------------------------------------------------------------------------ */

typedef enum wr_acme_status {
  WR_ACME_PENDING,
  WR_ACME_READY,
  WR_ACME_PROCESSING,
  WR_ACME_VALID,
  WR_ACME_INVALID,
  WR_ACME_EXPIRED,
  WR_ACME_DEACTIVATED,
  WR_ACME_REVOKED,
} wr_acme_status;

const char *wr_acme_status_name(wr_acme_status s);

typedef struct wr_acme_directory {
  char new_nonce[WR_ACME_URL_MAX + 1];
  char new_account[WR_ACME_URL_MAX + 1];
  char new_order[WR_ACME_URL_MAX + 1];
  int tos;  /* the server has terms of service (meta.termsOfService) */
} wr_acme_directory;

typedef struct wr_acme_order {
  wr_acme_status status;
  char authz[WR_ACME_MAX_AUTHZ][WR_ACME_URL_MAX + 1];
  size_t n_authz;
  char finalize[WR_ACME_URL_MAX + 1];
  char certificate[WR_ACME_URL_MAX + 1]; /* "" until the order is valid */
} wr_acme_order;

typedef struct wr_acme_authz {
  wr_acme_status status;
  char identifier[WR_ACME_NAME_MAX + 1]; /* a DNS name */
  int wildcard;
  /* The challenge of the type asked for: */
  wr_acme_status chall_status;
  char chall_url[WR_ACME_URL_MAX + 1];
  char token[WR_ACME_TOKEN_MAX + 1];
  char chall_error[256];                 /* its error's detail, if any */
} wr_acme_authz;

typedef struct wr_acme_problem {
  char type[128];
  char detail[512];
} wr_acme_problem;

/* Each parser reads |len| bytes of JSON (at most WR_ACME_MAX_BODY). WR_OK,
 * WR_ERR_PROTO (not JSON, a member missing or of the wrong type, an
 * unknown status, an invalid token), WR_ERR_LIMIT (too long, a URL over
 * WR_ACME_URL_MAX, more than WR_ACME_MAX_AUTHZ authorizations). */
int wr_acme_parse_directory(const char *body, size_t len, wr_acme_directory *out);
int wr_acme_parse_order(const char *body, size_t len, wr_acme_order *out);
/* The authorization and its challenge of |type| ("http-01", "dns-01");
 * WR_ERR_NOTFOUND if the server offers no such challenge. */
int wr_acme_parse_authz(const char *body, size_t len, const char *type, wr_acme_authz *out);
/* A problem document; members that are missing are left "". */
int wr_acme_parse_problem(const char *body, size_t len, wr_acme_problem *out);

#endif
