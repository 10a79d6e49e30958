/* The files cloudflared reads and writes to identify a tunnel and an account:
 *  - tunnel credentials JSON (<TunnelID>.json): AccountTag, TunnelSecret
 *    (standard base64 with padding), TunnelID, optional Endpoint;
 *  - the tunnel token: base64(StdEncoding) of JSON {"a","s","t"[,"e"]};
 *  - cert.pem from `tunnel login`: PEM blocks, of which only
 *    "ARGO TUNNEL TOKEN" (base64 JSON zoneID, accountID, apiToken) matters;
 *    PRIVATE KEY and CERTIFICATE blocks are carried but ignored;
 *  - the default places cloudflared looks for them.
 * Parsers take bounded input and report errors as text in |err|. */
#ifndef WR_CREDENTIALS_H
#define WR_CREDENTIALS_H
#include <stddef.h>
#include <stdint.h>

#include "lib/encoding.h"

#define WR_CRED_MAX_FILE (64u * 1024)
#define WR_CRED_MAX_SECRET 256
#define WR_CRED_MAX_FIELD 256

typedef struct wr_credentials {
  char account_tag[WR_CRED_MAX_FIELD];
  uint8_t secret[WR_CRED_MAX_SECRET];
  size_t secret_len;
  wr_uuid tunnel_id;
  int has_tunnel_id;                 /* old files may lack TunnelID */
  char endpoint[WR_CRED_MAX_FIELD];  /* HEAD's optional Endpoint, "" if absent */
} wr_credentials;

typedef struct wr_origin_cert {
  char zone_id[WR_CRED_MAX_FIELD];
  char account_id[WR_CRED_MAX_FIELD];
  char api_token[WR_CRED_MAX_FIELD];
  char endpoint[WR_CRED_MAX_FIELD];  /* optional */
} wr_origin_cert;

/* Parses credentials JSON (keys matched case-insensitively, as Go does).
 * Returns 0, or WR_ERR_PROTO with a human-readable reason in |err|. */
int wr_credentials_parse(const char *json, size_t len, wr_credentials *out, char *err,
                         size_t errlen);
/* Compact JSON in cloudflared's key order (AccountTag, TunnelSecret,
 * TunnelID[, Endpoint]). Caller frees. */
char *wr_credentials_to_json(const wr_credentials *c);
/* Reads and parses a credentials file. A ".pem" path that is not JSON gets
 * cloudflared's "you gave cert.pem" explanation. Returns 0, WR_ERR_IO or
 * WR_ERR_PROTO; |err| names the file. */
int wr_credentials_load(const char *path, wr_credentials *out, char *err, size_t errlen);

/* Tunnel token <-> credentials. Returns 0 or WR_ERR_PROTO (reason in |err|). */
int wr_token_parse(const char *token, size_t len, wr_credentials *out, char *err, size_t errlen);
/* Caller frees. */
char *wr_token_encode(const wr_credentials *c);

/* Parses cert.pem text. zoneID and apiToken are mandatory; an empty accountID
 * is refused with "Origin certificate needs to be refreshed". Unknown PEM
 * block types and more than one token block are errors.
 * Returns 0 or WR_ERR_PROTO (reason in |err|). */
int wr_origin_cert_parse(const char *pem, size_t len, wr_origin_cert *out, char *err,
                         size_t errlen);
int wr_origin_cert_load(const char *path, wr_origin_cert *out, char *err, size_t errlen);
/* Builds cert.pem text: |cert_pem| and |key_pem| (already PEM, may be NULL)
 * followed by the ARGO TUNNEL TOKEN block. Caller frees. */
char *wr_origin_cert_encode(const wr_origin_cert *c, const char *cert_pem, const char *key_pem);

/* cloudflared's default config directories, in search order:
 * ~/.cloudflared, ~/.cloudflare-warp, ~/cloudflare-warp, /etc/cloudflared,
 * /usr/local/etc/cloudflared. NULL-terminated; entries start with "~/" where
 * cloudflared's do (expand with wr_path_expand). */
extern const char *const wr_default_config_dirs[];
/* Finds the first existing |name| (e.g. "cert.pem", "config.yml") in the
 * default directories. Returns a new expanded path, or NULL. */
char *wr_find_default_file(const char *name);

#endif
