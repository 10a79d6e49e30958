/* Tunnel credentials, tunnel tokens and cert.pem, read the way cloudflared
 * 2023.7.3 reads them (Go's encoding/json, encoding/base64 and encoding/pem)
 * so that any file cloudflared accepts works here and the files we write
 * work with cloudflared.
 *
 * Known, deliberate differences from Go (all on inputs no tool writes):
 *  - jansson rejects invalid UTF-8 and out-of-range numbers anywhere in the
 *    document, where Go replaces the former and skips unknown keys' values;
 *  - jansson keeps one value per repeated key (the last, at the first one's
 *    position), so an invalid earlier duplicate that Go would reject is
 *    never seen, and "AccountTag", "accounttag", "AccountTag" ends with the
 *    second value where Go ends with the third;
 *  - string fields are limited to WR_CRED_MAX_FIELD - 1 bytes, secrets to
 *    WR_CRED_MAX_SECRET bytes, and NUL bytes inside them are refused;
 *  - the JSON we write is jansson's, which equals Go's output for every
 *    value without control characters or '<', '>', '&' (Go escapes those
 *    differently); account tags, base64, UUIDs and API tokens never have them. */
#include "lib/credentials.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "lib/err.h"
#include "lib/file.h"
#include "lib/mem.h"

const char *const wr_default_config_dirs[] = {
    "~/.cloudflared", "~/.cloudflare-warp", "~/cloudflare-warp", "/etc/cloudflared",
    "/usr/local/etc/cloudflared", NULL,
};

/* ---- small helpers ----------------------------------------------------- */

/* Secrets pass through these buffers; clear them before they go back to the
 * allocator (or the stack) so a later bug cannot leak them. */
static void wipe(void *p, size_t n) {
  if (p && n) explicit_bzero(p, n);
}

static void wipe_free(char *p, size_t n) {
  wipe(p, n);
  free(p);
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Copies |s| for an error message: at most 64 bytes, non-printable bytes as
 * '?', because block types and the like come from untrusted files and end up
 * on a terminal. */
static void printable(const char *s, size_t n, char out[68]) {
  size_t o = 0;
  for (size_t i = 0; i < n && o < 64; i++) {
    unsigned char c = (unsigned char)s[i];
    out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
  }
  if (n > 64) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
}

/* Go's base64.StdEncoding: padding required, CR and LF skipped (encoding/pem
 * also skips space and tab), non-zero unused bits accepted. */
#define GO_STD (WR_BASE64_PAD | WR_BASE64_GO)

/* Go's google/uuid Parse: canonical 8-4-4-4-12, "urn:uuid:" + canonical,
 * "{" canonical "}", or 32 bare hex digits (Go ignores what the braces are;
 * we want real braces). */
static int go_uuid_parse(const char *s, size_t n, wr_uuid *out) {
  switch (n) {
  case WR_UUID_STR_LEN:
    return wr_uuid_parse(s, n, out);
  case WR_UUID_STR_LEN + 9:
    if (strncasecmp(s, "urn:uuid:", 9) != 0) return WR_ERR_PROTO;
    return wr_uuid_parse(s + 9, WR_UUID_STR_LEN, out);
  case WR_UUID_STR_LEN + 2:
    if (s[0] != '{' || s[n - 1] != '}') return WR_ERR_PROTO;
    return wr_uuid_parse(s + 1, WR_UUID_STR_LEN, out);
  case 32:
    return wr_hex_decode(s, 32, out->b, 16) == 16 ? WR_OK : WR_ERR_PROTO;
  default:
    return WR_ERR_PROTO;
  }
}

/* encoding/json matches object keys to field names case-insensitively with
 * Unicode simple folding. Our field names are ASCII, and the only non-ASCII
 * characters that fold onto ASCII letters are U+017F (long s -> s) and
 * U+212A (Kelvin sign -> k), so handle exactly those. */
static int go_key_equal(const char *key, const char *name) {
  const unsigned char *k = (const unsigned char *)key;
  for (; *name; name++) {
    char want = (char)(*name | 0x20);
    if (k[0] == 0xc5 && k[1] == 0xbf) {
      if (want != 's') return 0;
      k += 2;
    } else if (k[0] == 0xe2 && k[1] == 0x84 && k[2] == 0xaa) {
      if (want != 'k') return 0;
      k += 3;
    } else if (*k < 0x80 && (char)(*k | 0x20) == want &&
               ((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z'))) {
      k++;
    } else if (*k == (unsigned char)*name) {
      k++; /* digits and punctuation match exactly */
    } else {
      return 0;
    }
  }
  return *k == '\0';
}

/* ---- JSON objects <-> structs (table-driven, STYLE.md 1.12) ------------- */

enum field_kind {
  F_STRING, /* char[WR_CRED_MAX_FIELD] at |off| */
  F_SECRET, /* wr_credentials.secret / secret_len (Go []byte) */
  F_UUID,   /* wr_credentials.tunnel_id / has_tunnel_id */
};

typedef struct field_spec {
  const char *key;   /* the JSON key cloudflared writes */
  const char *label; /* how errors name it */
  enum field_kind kind;
  size_t off;
} field_spec;

/* The credentials and token tables share one layout: account, secret, ID,
 * endpoint, in cloudflared's output order. */
static const field_spec cred_fields[4] = {
    {"AccountTag", "AccountTag", F_STRING, offsetof(wr_credentials, account_tag)},
    {"TunnelSecret", "TunnelSecret", F_SECRET, 0},
    {"TunnelID", "TunnelID", F_UUID, 0},
    {"Endpoint", "Endpoint", F_STRING, offsetof(wr_credentials, endpoint)},
};
static const field_spec token_fields[4] = {
    {"a", "\"a\" (AccountTag)", F_STRING, offsetof(wr_credentials, account_tag)},
    {"s", "\"s\" (TunnelSecret)", F_SECRET, 0},
    {"t", "\"t\" (TunnelID)", F_UUID, 0},
    {"e", "\"e\" (Endpoint)", F_STRING, offsetof(wr_credentials, endpoint)},
};
static const field_spec cert_fields[] = {
    {"zoneID", "zoneID", F_STRING, offsetof(wr_origin_cert, zone_id)},
    {"accountID", "accountID", F_STRING, offsetof(wr_origin_cert, account_id)},
    {"apiToken", "apiToken", F_STRING, offsetof(wr_origin_cert, api_token)},
    {"endpoint", "endpoint", F_STRING, offsetof(wr_origin_cert, endpoint)},
};
#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/* Stores one value. JSON null leaves strings and UUIDs alone and empties
 * the secret, as encoding/json does for strings, TextUnmarshalers and
 * slices. Returns 0, WR_ERR_PROTO (wrong type or encoding) or WR_ERR_LIMIT
 * (a value we cannot hold: too long or with a NUL byte). */
static int store_field(const field_spec *f, json_t *v, void *target, const char *what, char *err,
                       size_t errlen) {
  if (json_is_null(v)) {
    if (f->kind == F_SECRET) {
      wr_credentials *c = target;
      wipe(c->secret, sizeof(c->secret));
      c->secret_len = 0;
    }
    return WR_OK;
  }
  if (!json_is_string(v)) {
    wr_set_err(err, errlen, "%s%s must be a string", what, f->label);
    return WR_ERR_PROTO;
  }
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  switch (f->kind) {
  case F_STRING: {
    char *dst = (char *)target + f->off;
    if (memchr(s, '\0', n)) {
      wr_set_err(err, errlen, "%s%s contains a NUL byte", what, f->label);
      return WR_ERR_LIMIT;
    }
    if (n >= WR_CRED_MAX_FIELD) {
      wr_set_err(err, errlen, "%s%s is longer than %d bytes", what, f->label, WR_CRED_MAX_FIELD - 1);
      return WR_ERR_LIMIT;
    }
    memset(dst, 0, WR_CRED_MAX_FIELD);
    memcpy(dst, s, n);
    return WR_OK;
  }
  case F_SECRET: {
    wr_credentials *c = target;
    int rv = wr_base64_decode(s, n, c->secret, sizeof(c->secret), GO_STD);
    if (rv == WR_ERR_LIMIT) {
      wr_set_err(err, errlen, "%s%s decodes to more than %d bytes", what, f->label,
              WR_CRED_MAX_SECRET);
      return WR_ERR_LIMIT;
    }
    if (rv < 0) {
      wr_set_err(err, errlen, "%s%s is not valid base64 (standard alphabet, padded)", what, f->label);
      return WR_ERR_PROTO;
    }
    c->secret_len = (size_t)rv;
    return WR_OK;
  }
  case F_UUID: {
    wr_credentials *c = target;
    if (go_uuid_parse(s, n, &c->tunnel_id) != WR_OK) {
      char shown[68];
      printable(s, n, shown);
      wr_set_err(err, errlen, "%s%s \"%s\" is not a valid UUID", what, f->label, shown);
      return WR_ERR_PROTO;
    }
    c->has_tunnel_id = 1;
    return WR_OK;
  }
  }
  return WR_ERR_INTERNAL;
}

/* Parses |len| bytes of JSON into |target| through |fields|. Unknown keys
 * are ignored, as Go does. *syntax is set when the input is not a JSON
 * object at all (as opposed to an object with bad values). Returns 0,
 * WR_ERR_PROTO, WR_ERR_LIMIT or WR_ERR_NOMEM. */
static int decode_object(const char *json, size_t len, const field_spec *fields, size_t nfields,
                         void *target, const char *what, int *syntax, char *err, size_t errlen) {
  json_error_t je;
  if (syntax) *syntax = 0;
  /* JSON_ALLOW_NUL: Go accepts \u0000 in values, so an unknown key holding
   * one must not fail the file; store_field refuses it in known fields. */
  json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, &je);
  if (!root) {
    /* jansson leaves the error text empty when its very first allocation
     * fails; every real syntax error has a text. */
    if (json_error_code(&je) == json_error_out_of_memory || je.text[0] == '\0') {
      wr_set_err(err, errlen, "%sout of memory", what);
      return WR_ERR_NOMEM;
    }
    if (syntax) *syntax = 1;
    wr_set_err(err, errlen, "%sinvalid JSON at line %d column %d: %s", what, je.line, je.column,
            je.text);
    return WR_ERR_PROTO;
  }
  int rv = WR_OK;
  if (!json_is_object(root)) {
    if (syntax) *syntax = 1;
    wr_set_err(err, errlen, "%sexpected a JSON object", what);
    rv = WR_ERR_PROTO;
    goto out;
  }
  const char *key;
  json_t *value;
  json_object_foreach(root, key, value) {
    for (size_t i = 0; i < nfields; i++) {
      if (!go_key_equal(key, fields[i].key)) continue;
      rv = store_field(&fields[i], value, target, what, err, errlen);
      if (rv != WR_OK) goto out;
      break;
    }
  }
out:
  json_decref(root);
  return rv;
}

/* Shared by the credentials file and the token: parse, then insist on the
 * two values the edge authenticates with (Go would send empty ones and let
 * the edge refuse; a clear local error is kinder). */
static int parse_credentials(const char *json, size_t len, const field_spec *fields,
                             const char *what, wr_credentials *out, int *syntax, char *err,
                             size_t errlen) {
  wr_credentials tmp;
  memset(&tmp, 0, sizeof(tmp));
  int rv = decode_object(json, len, fields, 4, &tmp, what, syntax, err, errlen);
  if (rv == WR_OK && tmp.account_tag[0] == '\0') {
    wr_set_err(err, errlen, "%s%s is missing or empty", what, fields[0].label);
    rv = WR_ERR_PROTO;
  }
  if (rv == WR_OK && tmp.secret_len == 0) {
    wr_set_err(err, errlen, "%s%s is missing or empty", what, fields[1].label);
    rv = WR_ERR_PROTO;
  }
  if (rv == WR_OK) memcpy(out, &tmp, sizeof(tmp));
  else wipe(out, sizeof(*out));
  wipe(&tmp, sizeof(tmp));
  /* The header promises WR_ERR_PROTO for bad input; LIMIT is internal. */
  return rv == WR_ERR_LIMIT ? WR_ERR_PROTO : rv;
}

/* Dumps compact JSON into a new NUL-terminated string, or NULL. */
static char *dump_compact(json_t *root, size_t *out_len) {
  const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
  size_t n = json_dumpb(root, NULL, 0, flags);
  if (n == 0) return NULL;
  char *out = wr_xmalloc(n + 1);
  if (json_dumpb(root, out, n, flags) != n) {
    wipe_free(out, n + 1);
    return NULL;
  }
  out[n] = '\0';
  if (out_len) *out_len = n;
  return out;
}

/* Adds key -> string; returns 0 or -1. json_object_set_new takes ownership
 * of the value even on failure, and fails on a NULL value (bad UTF-8 or OOM). */
static int add_string(json_t *obj, const char *key, const char *s, size_t n) {
  return json_object_set_new(obj, key, json_stringn(s, n));
}

static int field_len(const char *s, size_t *n) {
  *n = strnlen(s, WR_CRED_MAX_FIELD);
  return *n < WR_CRED_MAX_FIELD ? 0 : -1;
}

/* Builds {AccountTag, TunnelSecret, TunnelID[, Endpoint]} under |fields|'
 * key names, in that order. Returns NULL on unrepresentable input or OOM. */
static char *credentials_json(const wr_credentials *c, const field_spec *fields, size_t *out_len) {
  if (!c || c->secret_len > WR_CRED_MAX_SECRET) return NULL;
  size_t acct_len, ep_len;
  if (field_len(c->account_tag, &acct_len) != 0 || field_len(c->endpoint, &ep_len) != 0)
    return NULL;
  char secret[WR_BASE64_ENCODED_SIZE(WR_CRED_MAX_SECRET)];
  int slen = wr_base64_encode(c->secret, c->secret_len, secret, sizeof(secret), 1);
  /* Go writes the zero UUID when TunnelID was never set; so do we. */
  wr_uuid zero = {{0}};
  char id[WR_UUID_STR_LEN + 1];
  wr_uuid_format(c->has_tunnel_id ? &c->tunnel_id : &zero, id);
  char *out = NULL;
  json_t *obj = json_object();
  if (!obj || slen < 0) goto out;
  if (add_string(obj, fields[0].key, c->account_tag, acct_len) != 0 ||
      add_string(obj, fields[1].key, secret, (size_t)slen) != 0 ||
      add_string(obj, fields[2].key, id, WR_UUID_STR_LEN) != 0)
    goto out;
  /* Endpoint is HEAD's and omitted when empty, so 2023.7.3 output stays exact. */
  if (ep_len && add_string(obj, fields[3].key, c->endpoint, ep_len) != 0) goto out;
  out = dump_compact(obj, out_len);
out:
  json_decref(obj);
  wipe(secret, sizeof(secret));
  return out;
}

/* ---- credentials file --------------------------------------------------- */

int wr_credentials_parse(const char *json, size_t len, wr_credentials *out, char *err,
                         size_t errlen) {
  if (len > WR_CRED_MAX_FILE) {
    wipe(out, sizeof(*out));
    wr_set_err(err, errlen, "credentials JSON is larger than %u bytes", WR_CRED_MAX_FILE);
    return WR_ERR_PROTO;
  }
  return parse_credentials(json, len, cred_fields, "", out, NULL, err, errlen);
}

char *wr_credentials_to_json(const wr_credentials *c) {
  return credentials_json(c, cred_fields, NULL);
}

/* Reads |path| (at most WR_CRED_MAX_FILE bytes) into *data, which the
 * caller wipes and frees. On failure writes |too_big| (with the path and
 * the limit) or |unreadable| (with the path and errno's text) to |err| and
 * returns WR_ERR_PROTO (too large) or WR_ERR_IO. */
static int read_file(const char *path, const char *too_big, const char *unreadable, char **data,
                     size_t *len, char *err, size_t errlen) {
  char eb[128];
  int rv = wr_file_read(path, WR_CRED_MAX_FILE, data, len);
  if (rv == WR_ERR_LIMIT) {
    wr_set_err(err, errlen, too_big, path, WR_CRED_MAX_FILE);
    return WR_ERR_PROTO;
  }
  if (rv != WR_OK) {
    int e = errno;
    wr_set_err(err, errlen, unreadable, path, strerror_r(e, eb, sizeof(eb)));
    return WR_ERR_IO;
  }
  return WR_OK;
}

int wr_credentials_load(const char *path, wr_credentials *out, char *err, size_t errlen) {
  char *data = NULL, reason[256];
  size_t len = 0;
  wipe(out, sizeof(*out)); /* a failure leaves it empty; the parser fills it whole */
  int rv = read_file(path, "tunnel credentials file %s is larger than %u bytes",
                     "couldn't read tunnel credentials from %s: %s", &data, &len, err, errlen);
  if (rv != WR_OK) return rv;
  int syntax = 0;
  rv = parse_credentials(data, len, cred_fields, "", out, &syntax, reason, sizeof(reason));
  wipe_free(data, len);
  if (rv == WR_OK || rv == WR_ERR_NOMEM) {
    if (rv) wr_set_err(err, errlen, "%s: %s", path, reason);
    return rv;
  }
  if (syntax && ends_with(path, ".pem"))
    wr_set_err(err, errlen,
            "%s: The tunnel credentials file should be .json but you gave a .pem. The tunnel "
            "credentials file was originally created by `cloudflared tunnel create`. You may "
            "have accidentally used the filepath to cert.pem, which is generated by "
            "`cloudflared tunnel login`.",
            path);
  else if (syntax)
    wr_set_err(err, errlen, "Invalid JSON when parsing tunnel credentials file %s: %s", path, reason);
  else
    wr_set_err(err, errlen, "invalid tunnel credentials file %s: %s", path, reason);
  return rv;
}

/* ---- token -------------------------------------------------------------- */

int wr_token_parse(const char *token, size_t len, wr_credentials *out, char *err, size_t errlen) {
  if (len > WR_CRED_MAX_FILE) {
    wipe(out, sizeof(*out));
    wr_set_err(err, errlen, "token is larger than %u bytes", WR_CRED_MAX_FILE);
    return WR_ERR_PROTO;
  }
  uint8_t *json = wr_xmalloc(len + 1);
  /* Go's StdEncoding skips CR and LF anywhere, so a token pasted with a
   * trailing newline still works. */
  int n = wr_base64_decode(token, len, json, len + 1, GO_STD);
  int rv;
  if (n < 0) {
    wipe(out, sizeof(*out));
    wr_set_err(err, errlen, "token is not valid base64 (standard alphabet, padded)");
    rv = WR_ERR_PROTO;
  } else {
    rv = parse_credentials((const char *)json, (size_t)n, token_fields, "token: ", out, NULL, err,
                           errlen);
  }
  wipe_free((char *)json, len + 1);
  return rv;
}

char *wr_token_encode(const wr_credentials *c) {
  size_t n = 0;
  char *json = credentials_json(c, token_fields, &n);
  if (!json) return NULL;
  size_t size = WR_BASE64_ENCODED_SIZE(n);
  char *out = wr_xmalloc(size);
  if (wr_base64_encode((const uint8_t *)json, n, out, size, 1) < 0) {
    free(out);
    out = NULL;
  }
  wipe_free(json, n);
  return out;
}

/* ---- cert.pem ----------------------------------------------------------- */

typedef struct pem_block {
  const char *type;
  size_t type_len;
  const uint8_t *bytes; /* decoded body, in the caller's scratch */
  size_t len;
} pem_block;

/* Go's encoding/pem getLine: the line without its LF (or CRLF) and without
 * trailing spaces and tabs; *next is the offset after the LF. */
static void pem_get_line(const char *d, size_t n, size_t *line_len, size_t *next) {
  const char *nl = memchr(d, '\n', n);
  size_t i = nl ? (size_t)(nl - d) : n;
  *next = nl ? i + 1 : n;
  if (nl && i > 0 && d[i - 1] == '\r') i--;
  while (i > 0 && (d[i - 1] == ' ' || d[i - 1] == '\t')) i--;
  *line_len = i;
}

static int has_prefix(const char *p, size_t n, const char *pre) {
  size_t m = strlen(pre);
  return n >= m && memcmp(p, pre, m) == 0;
}

/* Finds the next PEM block at or after *pos exactly as Go's pem.Decode does,
 * so cert.pem files are accepted and refused as cloudflared would: text
 * between blocks is skipped, a block that is malformed in any way (bad END
 * line, bad base64) is skipped rather than reported, and only a complete
 * block counts. |out| needs (len - *pos) bytes.
 * Returns 1 and advances *pos, or 0 when no block remains. */
static int pem_next(const char *data, size_t len, size_t *pos, pem_block *blk, uint8_t *out) {
  static const char begin[] = "\n-----BEGIN ", end[] = "\n-----END ", dashes[] = "-----";
  size_t r = *pos, ll, nx;
  for (;;) {
    /* BEGIN must start a line; at the very start no newline is needed. */
    if (has_prefix(data + r, len - r, begin + 1)) {
      r += sizeof(begin) - 2;
    } else {
      const char *f = memmem(data + r, len - r, begin, sizeof(begin) - 1);
      if (!f) return 0;
      r = (size_t)(f - data) + sizeof(begin) - 1;
    }
    const char *type = data + r;
    pem_get_line(data + r, len - r, &ll, &nx);
    r += nx;
    if (ll < 5 || memcmp(type + ll - 5, dashes, 5) != 0) continue;
    size_t type_len = ll - 5, headers = 0;
    /* RFC 1421 headers ("Proc-Type: ...") are lines with a colon. */
    for (;;) {
      if (r == len) return 0;
      pem_get_line(data + r, len - r, &ll, &nx);
      if (!memchr(data + r, ':', ll)) break;
      headers++;
      r += nx;
    }
    const char *rest = data + r;
    size_t rn = len - r, end_idx, trailer_idx;
    if (headers == 0 && has_prefix(rest, rn, end + 1)) {
      end_idx = 0;
      trailer_idx = sizeof(end) - 2;
    } else {
      const char *f = memmem(rest, rn, end, sizeof(end) - 1);
      if (!f) continue;
      end_idx = (size_t)(f - rest);
      trailer_idx = end_idx + sizeof(end) - 1;
    }
    /* The END line must name the same type and end in dashes and blanks. */
    size_t trailer_len = type_len + 5;
    if (rn - trailer_idx < trailer_len) continue;
    const char *trailer = rest + trailer_idx;
    if (memcmp(trailer, type, type_len) != 0 || memcmp(trailer + type_len, dashes, 5) != 0)
      continue;
    pem_get_line(trailer + trailer_len, rn - trailer_idx - trailer_len, &ll, &nx);
    if (ll != 0) continue;
    int n = wr_base64_decode(rest, end_idx, out, len - *pos, GO_STD | WR_BASE64_GO_PEM);
    if (n < 0) continue;
    size_t after = end_idx + sizeof(end) - 2;
    pem_get_line(rest + after, rn - after, &ll, &nx);
    *pos = r + after + nx;
    blk->type = type;
    blk->type_len = type_len;
    blk->bytes = out;
    blk->len = (size_t)n;
    return 1;
  }
}

static int type_is(const pem_block *b, const char *t) {
  return b->type_len == strlen(t) && memcmp(b->type, t, b->type_len) == 0;
}

/* The legacy blocks cloudflared skips. Anything else but the token is an
 * error in 2023.7.3 and HEAD alike; its own test expects "Unknown block RSA
 * PRIVATE KEY in the certificate". */
static int is_legacy_block(const pem_block *b) {
  return type_is(b, "PRIVATE KEY") || type_is(b, "CERTIFICATE");
}

#define TOKEN_BLOCK "ARGO TUNNEL TOKEN"
#define REFRESH_MSG "Origin certificate needs to be refreshed before creating new tunnels.\n"

/* Walks the PEM blocks of |pem| into |cert| the way cloudflared's
 * decodeOriginCert does. Returns 0, WR_ERR_PROTO or WR_ERR_NOMEM. */
static int scan_blocks(const char *pem, size_t len, wr_origin_cert *cert, char *err,
                       size_t errlen) {
  uint8_t *body = wr_xmalloc(len);
  size_t pos = 0;
  pem_block blk;
  int rv = WR_OK;
  while (rv == WR_OK && pem_next(pem, len, &pos, &blk, body)) {
    if (is_legacy_block(&blk)) continue;
    if (!type_is(&blk, TOKEN_BLOCK)) {
      char shown[68];
      printable(blk.type, blk.type_len, shown);
      wr_set_err(err, errlen, "Unknown block %s in the certificate", shown);
      rv = WR_ERR_PROTO;
      break;
    }
    /* cloudflared counts a token as present by its fields, so a first
     * token block that failed to decode does not block a second one. */
    if (cert->zone_id[0] || cert->api_token[0]) {
      wr_set_err(err, errlen, "Found multiple tokens in the certificate");
      rv = WR_ERR_PROTO;
      break;
    }
    /* 2023.7.3 drops a token whose JSON does not decode and goes on, which
     * ends in "Missing token"; only values we cannot hold and OOM are ours. */
    wr_origin_cert tok;
    char reason[256];
    memset(&tok, 0, sizeof(tok));
    int trv = decode_object((const char *)blk.bytes, blk.len, cert_fields, NFIELDS(cert_fields),
                            &tok, "certificate token: ", NULL, reason, sizeof(reason));
    if (trv == WR_OK) {
      memcpy(cert, &tok, sizeof(tok));
    } else if (trv == WR_ERR_NOMEM || trv == WR_ERR_LIMIT) {
      wr_set_err(err, errlen, "%s", reason);
      rv = trv == WR_ERR_NOMEM ? WR_ERR_NOMEM : WR_ERR_PROTO;
    }
    wipe(&tok, sizeof(tok));
  }
  wipe_free((char *)body, len);
  return rv;
}

/* |path| only shapes the "refresh" message, as cloudflared's names the file. */
static int origin_cert_parse(const char *pem, size_t len, wr_origin_cert *out, const char *path,
                             char *err, size_t errlen) {
  wr_origin_cert cert;
  memset(&cert, 0, sizeof(cert));
  int rv = WR_ERR_PROTO;
  if (len == 0) {
    wr_set_err(err, errlen, "Cannot decode empty certificate");
    goto out;
  }
  if (len > WR_CRED_MAX_FILE) {
    wr_set_err(err, errlen, "certificate is larger than %u bytes", WR_CRED_MAX_FILE);
    goto out;
  }
  rv = scan_blocks(pem, len, &cert, err, errlen);
  if (rv != WR_OK) goto out;
  rv = WR_ERR_PROTO;
  if (!cert.zone_id[0] || !cert.api_token[0]) {
    wr_set_err(err, errlen, "Missing token in the certificate");
    goto out;
  }
  if (!cert.account_id[0]) {
    if (path)
      wr_set_err(err, errlen,
              REFRESH_MSG "Delete %s and run \"cloudflared login\" to obtain a new cert.", path);
    else
      wr_set_err(err, errlen, REFRESH_MSG "Run \"cloudflared login\" to obtain a new cert.");
    goto out;
  }
  /* HEAD lower-cases endpoint on read ("FED" means "fed"). */
  for (char *p = cert.endpoint; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + ('a' - 'A'));
  rv = WR_OK;
out:
  if (rv == WR_OK) memcpy(out, &cert, sizeof(cert));
  else wipe(out, sizeof(*out));
  wipe(&cert, sizeof(cert));
  return rv;
}

int wr_origin_cert_parse(const char *pem, size_t len, wr_origin_cert *out, char *err,
                         size_t errlen) {
  return origin_cert_parse(pem, len, out, NULL, err, errlen);
}

int wr_origin_cert_load(const char *path, wr_origin_cert *out, char *err, size_t errlen) {
  char *data = NULL, reason[512];
  size_t len = 0;
  wipe(out, sizeof(*out)); /* a failure leaves it empty; the parser fills it whole */
  int rv = read_file(path, "Can't read origin cert from %s: file is larger than %u bytes",
                     "Can't read origin cert from %s: %s", &data, &len, err, errlen);
  if (rv != WR_OK) return rv;
  reason[0] = '\0';
  rv = origin_cert_parse(data, len, out, path, reason, sizeof(reason));
  wipe_free(data, len);
  if (rv == WR_OK) return rv;
  /* The refresh message already names the file, as cloudflared's does. */
  if (strncmp(reason, REFRESH_MSG, sizeof(REFRESH_MSG) - 1) == 0)
    wr_set_err(err, errlen, "%s", reason);
  else
    wr_set_err(err, errlen, "Error decoding origin cert %s: %s", path, reason);
  return rv;
}

/* Checks that |pem| holds only blocks cloudflared skips, so the cert.pem we
 * write is one it accepts (GnuTLS's default "RSA/EC PRIVATE KEY" export is
 * not: write keys as PKCS#8 "PRIVATE KEY"). */
static int legacy_pem_ok(const char *pem) {
  size_t len = strlen(pem), pos = 0, blocks = 0;
  if (len == 0) return 1;
  if (len > WR_CRED_MAX_FILE) return 0;
  uint8_t *body = wr_xmalloc(len);
  pem_block blk;
  int ok = 1;
  while (ok && pem_next(pem, len, &pos, &blk, body)) {
    blocks++;
    ok = is_legacy_block(&blk);
  }
  wipe_free((char *)body, len);
  return ok && blocks > 0;
}

static size_t append(char *dst, size_t o, const char *s, size_t n) {
  memcpy(dst + o, s, n);
  return o + n;
}

/* Lengths of an origin cert's fields (each below WR_CRED_MAX_FIELD). */
typedef struct cert_lens {
  size_t zone, account, token, endpoint;
} cert_lens;

/* The token block's body: base64 of HEAD's OriginCert as compact JSON, with
 * the fields in the order its struct marshals them: zoneID, accountID,
 * apiToken, endpoint (omitempty). Returns a buffer of *bsize bytes holding
 * *blen characters (the caller wipes it), or NULL (bad UTF-8, OOM). */
static char *origin_token_b64(const wr_origin_cert *c, const cert_lens *l, size_t *bsize,
                              size_t *blen) {
  json_t *obj = json_object();
  char *json = NULL, *b64;
  size_t jn = 0;
  int bn;
  if (obj && add_string(obj, "zoneID", c->zone_id, l->zone) == 0 &&
      add_string(obj, "accountID", c->account_id, l->account) == 0 &&
      add_string(obj, "apiToken", c->api_token, l->token) == 0 &&
      (l->endpoint == 0 || add_string(obj, "endpoint", c->endpoint, l->endpoint) == 0))
    json = dump_compact(obj, &jn);
  json_decref(obj);
  if (!json) return NULL;
  *bsize = WR_BASE64_ENCODED_SIZE(jn);
  b64 = wr_xmalloc(*bsize);
  bn = wr_base64_encode((const uint8_t *)json, jn, b64, *bsize, 1);
  wipe_free(json, jn);
  if (bn < 0) {
    free(b64);
    return NULL;
  }
  *blen = (size_t)bn;
  return b64;
}

/* Appends the |n| bytes of PEM text |s| and a newline if it does not end
 * with one, so the next block starts on its own line. */
static size_t append_pem_text(char *dst, size_t o, const char *s, size_t n) {
  o = append(dst, o, s, n);
  if (n && s[n - 1] != '\n') dst[o++] = '\n';
  return o;
}

char *wr_origin_cert_encode(const wr_origin_cert *c, const char *cert_pem, const char *key_pem) {
  static const char begin[] = "-----BEGIN " TOKEN_BLOCK "-----\n";
  static const char end[] = "-----END " TOKEN_BLOCK "-----\n";
  cert_lens l;
  size_t bsize = 0, b = 0;
  if (!c) return NULL;
  if (field_len(c->zone_id, &l.zone) || field_len(c->account_id, &l.account) ||
      field_len(c->api_token, &l.token) || field_len(c->endpoint, &l.endpoint))
    return NULL;
  /* cloudflared refuses a token without these; do not write one. */
  if (l.zone == 0 || l.token == 0) return NULL;
  if (!cert_pem) cert_pem = "";
  if (!key_pem) key_pem = "";
  if (!legacy_pem_ok(cert_pem) || !legacy_pem_ok(key_pem)) return NULL;
  char *b64 = origin_token_b64(c, &l, &bsize, &b);
  if (!b64) return NULL;

  size_t cl = strlen(cert_pem), kl = strlen(key_pem);
  size_t total = cl + 1 + kl + 1 + sizeof(begin) + b + b / 64 + 1 + sizeof(end) + 1;
  char *out = wr_xmalloc(total);
  size_t o = append_pem_text(out, 0, cert_pem, cl);
  o = append_pem_text(out, o, key_pem, kl);
  o = append(out, o, begin, sizeof(begin) - 1);
  /* 64-character lines, as Go's pem.Encode writes them. */
  for (size_t i = 0; i < b; i += 64) {
    size_t n = b - i < 64 ? b - i : 64;
    o = append(out, o, b64 + i, n);
    out[o++] = '\n';
  }
  o = append(out, o, end, sizeof(end) - 1);
  out[o] = '\0';
  wipe_free(b64, bsize);
  return out;
}

/* ---- default locations -------------------------------------------------- */

char *wr_find_default_file(const char *name) {
  if (!name || !*name) return NULL;
  for (size_t i = 0; wr_default_config_dirs[i]; i++) {
    size_t n = strlen(wr_default_config_dirs[i]) + 1 + strlen(name) + 1;
    char *joined = wr_xmalloc(n);
    snprintf(joined, n, "%s/%s", wr_default_config_dirs[i], name);
    char *path = wr_path_expand(joined);
    free(joined);
    /* cloudflared's fileExists: anything that stats and is not a directory. */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) return path;
    free(path);
  }
  return NULL;
}
