/* Text encodings used across the protocol and file formats, each written
 * once: base64 (standard or URL-safe alphabet, with and without padding,
 * strict or as Go's non-strict decoder reads it), hex, percent-encoding and
 * percent-decoding with one %00 policy, and UUIDs in RFC 4122 byte order.
 * All functions are pure (wr_pct_encode only appends to the caller's
 * buffer). */
#ifndef WR_ENCODING_H
#define WR_ENCODING_H
#include <stddef.h>
#include <stdint.h>

/* Bytes needed to base64-encode |n| bytes with padding, plus a NUL. */
#define WR_BASE64_ENCODED_SIZE(n) ((((n) + 2) / 3) * 4 + 1)

/* Flags of wr_base64_encode(). */
#define WR_BASE64_PAD 1 /* '=' padding: StdEncoding / URLEncoding (else Raw*) */
#define WR_BASE64_URL 2 /* the URL-safe alphabet ('-', '_' for '+', '/') */

/* Encodes |len| bytes; writes a NUL-terminated string to |out| (|out_size|
 * bytes). |flags|: 0 is RawStdEncoding, WR_BASE64_PAD StdEncoding, with
 * WR_BASE64_URL the URL-safe alphabet. Returns the string length, or
 * WR_ERR_LIMIT if |out| is too small. */
int wr_base64_encode(const uint8_t *in, size_t len, char *out, size_t out_size, int flags);
/* Flags of wr_base64_decode() (WR_BASE64_PAD too: padding is required). */
#define WR_BASE64_NOPAD 4 /* '=' is refused (RawStdEncoding) */
#define WR_BASE64_GO 8    /* Go's non-strict decoder: CR and LF are skipped anywhere
                           * and unused bits of the last group may be non-zero */
#define WR_BASE64_GO_PEM 16 /* with WR_BASE64_GO, space and tab are skipped too */

/* Decodes standard-alphabet base64. With |flags| 0 it is strict: padding is
 * optional but, if present, must be correct; whitespace and non-zero unused
 * bits are rejected. With |out| NULL it only checks |in| and returns the
 * decoded length. Returns the number of bytes written, WR_ERR_PROTO on bad
 * input or WR_ERR_LIMIT if |out| is too small. */
int wr_base64_decode(const char *in, size_t len, uint8_t *out, size_t out_size, int flags);

/* The value of hex digit |c| (either case), or -1. */
int wr_hex_digit(int c);
/* Writes |b| as two hex digits (upper-case if |upper|) to |out|; no NUL. */
void wr_hex_byte(uint8_t b, int upper, char out[2]);
/* Lower-case hex. |out| needs 2*len+1 bytes. */
void wr_hex_encode(const uint8_t *in, size_t len, char *out);
/* Returns bytes written or WR_ERR_PROTO / WR_ERR_LIMIT. */
int wr_hex_decode(const char *in, size_t len, uint8_t *out, size_t out_size);

struct wr_buf;
/* Appends |s| to |b| percent-encoded for a URL query component: RFC 3986's
 * unreserved characters (ALPHA, DIGIT, '-', '.', '_', '~') as they are,
 * every other byte as %XX (upper-case hex). As wr_buf_append: the bytes
 * that do not fit under |b|'s maximum are dropped. */
void wr_pct_encode(struct wr_buf *b, const char *s);

/* Flags of wr_pct_decode(). */
#define WR_PCT_PLUS 1    /* '+' is a space (query and form encoding) */
#define WR_PCT_LENIENT 2 /* a bad escape is copied as is instead of refused */
#define WR_PCT_BINARY 4  /* %00 decodes: only for a value used with its length and
                          * never as a C string (a password) */

/* Percent-decodes |len| bytes of |in| into |out| (|out_size| bytes; |len| + 1
 * always suffices) and NUL-terminates it. One policy for %00: a decoded
 * value that becomes a C string (a path, header or name) must not be cut
 * short, so %00 never decodes: it is refused, or with WR_PCT_LENIENT copied
 * as is like any other bad escape; only WR_PCT_BINARY lets it through. Returns the decoded length, WR_ERR_PROTO for a bad
 * escape or %00, or WR_ERR_LIMIT if |out| is too small. */
int wr_pct_decode(const char *in, size_t len, int flags, char *out, size_t out_size);

#define WR_UUID_STR_LEN 36
typedef struct wr_uuid { uint8_t b[16]; } wr_uuid;
/* Parses canonical 8-4-4-4-12 hex (any case). Returns 0 or WR_ERR_PROTO. */
int wr_uuid_parse(const char *s, size_t len, wr_uuid *out);
/* Writes the lower-case canonical form; |out| needs 37 bytes. */
void wr_uuid_format(const wr_uuid *u, char out[WR_UUID_STR_LEN + 1]);
/* A random version-4 UUID from GnuTLS's CSPRNG. Returns 0 or WR_ERR_CRYPTO. */
int wr_uuid_random(wr_uuid *out);
/* |n| random bytes from the nonce/key CSPRNG. Returns 0 or WR_ERR_CRYPTO. */
int wr_random_bytes(void *out, size_t n);

/* The ASCII letters and digits as a strspn(3) set, to which a caller adds
 * its punctuation: strspn(s, WR_ASCII_ALNUM "-_") == strlen(s) says every
 * byte of |s| is a letter, a digit, '-' or '_'. */
#define WR_ASCII_ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

#endif
