/* RS256 JSON Web Tokens (RFC 7519 / RFC 7515 compact form) and JSON Web Key
 * sets (RFC 7517), as Cloudflare Access uses them: the edge signs an
 * application token per request ("Cf-Access-Jwt-Assertion" and the
 * CF_Authorization cookie) and publishes its public keys at
 * /cdn-cgi/access/certs; a connector with originRequest.access verifies the
 * token against that set.
 *
 * Only RS256 (RSASSA-PKCS1-v1_5 with SHA-256, GnuTLS) is produced and
 * accepted: a header with any other "alg" ("none", HS256 with the public key
 * as a secret, ...) is refused before any key is looked at. Parsing is
 * strict: three base64url segments without padding, header and payload JSON
 * objects without duplicate keys, a bounded size (WR_JWT_MAX_LEN).
 *
 * Sans-I/O: no sockets, no clock (callers pass |now|), no logging. Memory:
 * jansson's allocator and malloc; failure is WR_ERR_NOMEM. Every function is
 * safe to call from any thread on distinct objects. */
#ifndef WR_PROTO_JWT_H
#define WR_PROTO_JWT_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define WR_JWT_MAX_LEN (16u * 1024u) /* longest token accepted */
#define WR_JWT_KID_LEN 64            /* hex SHA-256 of the public key */
#define WR_JWKS_MAX_KEYS 16          /* keys read from one set */
#define WR_JWT_LEEWAY_S 60           /* clock skew allowed on exp / nbf / iat */

/* An RSA key pair (signing side). */
typedef struct wr_jwt_key wr_jwt_key;

/* Generates a |bits|-bit RSA key (2048..4096). Returns WR_OK, WR_ERR_INVAL
 * or WR_ERR_CRYPTO. */
int wr_jwt_key_generate(unsigned bits, wr_jwt_key **out);
/* Imports a PEM private key (PKCS#1 or PKCS#8, unencrypted). WR_OK,
 * WR_ERR_PROTO (not such a key), WR_ERR_INVAL (not RSA, under 2048 bits). */
int wr_jwt_key_import_pem(const char *pem, size_t len, wr_jwt_key **out);
/* The private key as PKCS#8 PEM, malloc'd (free with free). WR_OK or
 * WR_ERR_CRYPTO. */
int wr_jwt_key_export_pem(const wr_jwt_key *k, char **pem);
/* Any GnuTLS private key (a gnutls_privkey_t) as unencrypted PKCS#8 PEM,
 * malloc'd (free with free; wipe it first). WR_OK, WR_ERR_CRYPTO or
 * WR_ERR_NOMEM. */
int wr_privkey_export_pem(void *gnutls_priv, char **pem);
/* The key id: hex SHA-256 over the modulus and exponent. */
const char *wr_jwt_key_kid(const wr_jwt_key *k);
/* The public key as a JWK object {kid, kty:"RSA", alg:"RS256", use:"sig",
 * e, n}; NULL on failure. */
json_t *wr_jwt_key_jwk(const wr_jwt_key *k);
/* The underlying GnuTLS private key (gnutls_privkey_t), for callers that
 * make a certificate for it; owned by |k|. */
void *wr_jwt_key_gnutls(const wr_jwt_key *k);
void wr_jwt_key_free(wr_jwt_key *k);

/* Signs |claims| (a JSON object, not stolen) with header {"alg":"RS256",
 * "kid":<kid>,"typ":"JWT"}. *out is the malloc'd compact token. Returns
 * WR_OK, WR_ERR_INVAL (claims not an object) or WR_ERR_CRYPTO. */
int wr_jwt_sign(const wr_jwt_key *k, const json_t *claims, char **out);

/* A set of public keys (verifying side). */
typedef struct wr_jwks wr_jwks;

/* Parses a JWK set {"keys":[{kty:"RSA", kid, n, e, ...}, ...]}. Keys of
 * other types or algorithms (kty other than RSA, alg set and not RS256, use
 * set and not "sig") are skipped; other members (Cloudflare's public_cert,
 * public_certs) are ignored. Returns WR_OK, WR_ERR_PROTO (not JSON, no keys
 * array, a malformed RSA key) or WR_ERR_LIMIT (more than WR_JWKS_MAX_KEYS
 * usable keys). An empty set is valid (every token is then unknown). */
int wr_jwks_parse(const char *json, size_t len, wr_jwks **out);
/* A set of the public halves of |keys|; NULL only on allocation failure. */
wr_jwks *wr_jwks_from_keys(wr_jwt_key *const *keys, size_t n);
/* Number of usable keys in |s|. */
size_t wr_jwks_count(const wr_jwks *s);
/* 1 if a key with this id is in the set. */
int wr_jwks_has_kid(const wr_jwks *s, const char *kid);
void wr_jwks_free(wr_jwks *s);

/* What a verification checks beyond the signature. */
typedef struct wr_jwt_expect {
  int64_t now;                 /* Unix seconds */
  const char *const *auds;     /* the token's aud must contain one of these; */
  size_t naud;                 /* naud 0: audience not checked */
  const char *iss;             /* NULL: issuer not checked */
} wr_jwt_expect;

/* Verifies |token| (|len| bytes): RS256 header, kid in |set| (a header
 * without kid is tried against every key), signature, exp (required) and
 * nbf/iat (when present) against |now| with WR_JWT_LEEWAY_S, audience and
 * issuer. On WR_OK *claims (if not NULL) gets the payload object (json_decref
 * it). Errors, with a sentence in |err|:
 *   WR_ERR_PROTO     malformed: not three segments, bad base64url, not JSON,
 *                    alg not RS256, a claim of the wrong type, too long
 *   WR_ERR_NOTFOUND  no key with the header's kid (a caller may refresh)
 *   WR_ERR_DENIED    bad signature, expired, not yet valid, wrong
 *                    audience or issuer
 *   WR_ERR_NOMEM */
int wr_jwt_verify(const wr_jwks *set, const char *token, size_t len, const wr_jwt_expect *want,
                  json_t **claims, char *err, size_t errlen);

/* Decodes |len| bytes of base64url without padding into |out|. Returns the
 * decoded length, WR_ERR_PROTO (another alphabet, padding, stray bits) or
 * WR_ERR_LIMIT. */
int wr_b64url_decode(const char *in, size_t len, uint8_t *out, size_t out_size);
/* Encodes base64url without padding; returns the length or WR_ERR_LIMIT. */
int wr_b64url_encode(const uint8_t *in, size_t len, char *out, size_t out_size);

#endif
