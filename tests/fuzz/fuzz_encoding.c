/* Fuzzes lib/encoding: base64 (every flag), hex and percent-decoding. The
 * first input byte picks flags, the rest is the data. Beyond "no crash"
 * (ASan/UBSan, with every input and output buffer allocated to its exact
 * size so one byte of overrun is caught) it checks that encode then decode
 * gives the bytes back, that a decoder's measured length is what it writes,
 * that one byte less of output is refused rather than overrun, and the one
 * %00 policy: %00 never decodes to a NUL but with WR_PCT_BINARY. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "fuzz.h"

static void *dup_exact(const void *p, size_t n) {
  void *q = malloc(n ? n : 1);
  CHECK(q);
  if (n) memcpy(q, p, n);
  return q;
}

/* Decodes |in| with |flags| into a buffer of exactly the measured size. */
static void b64_decode_checks(const char *in, size_t len, int flags) {
  int need = wr_base64_decode(in, len, NULL, 0, flags);
  if (need < 0) {
    CHECK(need == WR_ERR_PROTO);
    return;
  }
  CHECK((size_t)need <= len);
  uint8_t *out = malloc((size_t)need + 1);
  CHECK(out);
  CHECK(wr_base64_decode(in, len, out, (size_t)need, flags) == need);
  if (need > 0) CHECK(wr_base64_decode(in, len, out, (size_t)need - 1, flags) == WR_ERR_LIMIT);
  free(out);
}

static void b64_round_trip(const uint8_t *data, size_t size, int flags) {
  size_t full = WR_BASE64_ENCODED_SIZE(size);
  char *enc = malloc(full);
  CHECK(enc);
  int n = wr_base64_encode(data, size, enc, full, flags);
  CHECK(n >= 0 && (size_t)n < full && enc[n] == '\0');
  /* Exactly n + 1 bytes suffice; n do not. */
  char *exact = malloc((size_t)n + 1);
  CHECK(exact);
  CHECK(wr_base64_encode(data, size, exact, (size_t)n + 1, flags) == n);
  CHECK(memcmp(exact, enc, (size_t)n + 1) == 0);
  CHECK(wr_base64_encode(data, size, exact, (size_t)n, flags) == WR_ERR_LIMIT);
  free(exact);
  if (!(flags & WR_BASE64_URL)) {
    int dflags = (flags & WR_BASE64_PAD) ? WR_BASE64_PAD : WR_BASE64_NOPAD;
    char *in = dup_exact(enc, (size_t)n);
    uint8_t *dec = malloc(size ? size : 1);
    CHECK(dec);
    CHECK(wr_base64_decode(in, (size_t)n, dec, size, dflags) == (int)size);
    CHECK(size == 0 || memcmp(dec, data, size) == 0);
    CHECK(wr_base64_decode(in, (size_t)n, dec, size, 0) == (int)size);
    free(dec);
    free(in);
  }
  free(enc);
}

static void hex_round_trip(const uint8_t *data, size_t size) {
  char *enc = malloc(2 * size + 1);
  CHECK(enc);
  wr_hex_encode(data, size, enc);
  CHECK(enc[2 * size] == '\0');
  for (size_t i = 0; i < size; i++) {
    char up[2];
    wr_hex_byte(data[i], 1, up);
    CHECK(wr_hex_digit((unsigned char)up[0]) == data[i] >> 4);
    CHECK(wr_hex_digit((unsigned char)enc[2 * i + 1]) == (data[i] & 15));
  }
  char *in = dup_exact(enc, 2 * size);
  uint8_t *dec = malloc(size ? size : 1);
  CHECK(dec);
  CHECK(wr_hex_decode(in, 2 * size, dec, size) == (int)size);
  CHECK(size == 0 || memcmp(dec, data, size) == 0);
  if (size) CHECK(wr_hex_decode(in, 2 * size, dec, size - 1) == WR_ERR_LIMIT);
  free(dec);
  free(in);
  free(enc);
}

static size_t count_nul(const char *s, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += s[i] == '\0';
  return k;
}

static void pct_checks(const char *in, size_t len, int flags, int upper) {
  char *out = malloc(len + 1);
  CHECK(out);
  int n = wr_pct_decode(in, len, flags, out, len + 1);
  if (n < 0) {
    CHECK(n == WR_ERR_PROTO && !(flags & WR_PCT_LENIENT)); /* len + 1 always fits */
  } else {
    CHECK((size_t)n <= len && out[n] == '\0');
    if (!(flags & WR_PCT_BINARY))
      CHECK(count_nul(out, (size_t)n) == count_nul(in, len)); /* %00 never decodes */
    CHECK(wr_pct_decode(in, len, flags, out, (size_t)n) == WR_ERR_LIMIT);
    if (!(flags & WR_PCT_PLUS)) {
      /* Escaping every byte but NUL gives the decoded bytes back. */
      char *esc = malloc(3 * (size_t)n + 1), *back = malloc((size_t)n + 1);
      CHECK(esc && back);
      size_t e = 0;
      for (int i = 0; i < n; i++) {
        if (out[i] == '\0' && !(flags & WR_PCT_BINARY)) {
          esc[e++] = '\0';
          continue;
        }
        esc[e++] = '%';
        wr_hex_byte((uint8_t)out[i], upper, esc + e);
        e += 2;
      }
      CHECK(wr_pct_decode(esc, e, flags & WR_PCT_BINARY, back, (size_t)n + 1) == n);
      CHECK(memcmp(back, out, (size_t)n) == 0);
      free(back);
      free(esc);
    }
  }
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  unsigned sel = data[0];
  const uint8_t *d = data + 1;
  size_t n = size - 1;
  char *text = dup_exact(d, n); /* exact size: a read past |n| is caught */
  static const int dflags[] = {0,
                               WR_BASE64_PAD,
                               WR_BASE64_NOPAD,
                               WR_BASE64_PAD | WR_BASE64_GO,
                               WR_BASE64_NOPAD | WR_BASE64_GO,
                               WR_BASE64_PAD | WR_BASE64_GO | WR_BASE64_GO_PEM,
                               WR_BASE64_GO,
                               WR_BASE64_GO | WR_BASE64_GO_PEM};
  b64_decode_checks(text, n, dflags[sel & 7]);
  b64_round_trip(d, n, (int)(sel >> 3) & (WR_BASE64_PAD | WR_BASE64_URL));
  hex_round_trip(d, n);
  uint8_t hx[64];
  int h = wr_hex_decode(text, n, hx, sizeof(hx));
  CHECK(h == WR_ERR_PROTO || h == WR_ERR_LIMIT || (h >= 0 && (size_t)h * 2 == n));
  pct_checks(text, n, (int)(sel >> 5) & (WR_PCT_PLUS | WR_PCT_LENIENT | WR_PCT_BINARY), sel & 1);
  free(text);
  return 0;
}
