/* Cookie header parsing; see cookie.h. */
#include "proto/cookie.h"

#include <string.h>

static int ows(char c) { return c == ' ' || c == '\t'; }

int wr_cookie_find(const char *hdr, size_t len, const char *name, const char **val, size_t *vlen) {
  size_t nl = strlen(name), i = 0;
  while (i < len) {
    while (i < len && (ows(hdr[i]) || hdr[i] == ';')) i++;
    size_t start = i;
    while (i < len && hdr[i] != ';') i++;
    size_t end = i; /* one pair: hdr[start, end) */
    const char *eq = memchr(hdr + start, '=', end - start);
    if (!eq) continue;
    size_t klen = (size_t)(eq - (hdr + start));
    while (klen && ows(hdr[start + klen - 1])) klen--;
    if (klen != nl || memcmp(hdr + start, name, nl) != 0) continue;
    const char *v = eq + 1, *ve = hdr + end;
    while (v < ve && ows(*v)) v++;
    while (ve > v && ows(ve[-1])) ve--;
    if (ve - v >= 2 && *v == '"' && ve[-1] == '"') {
      v++;
      ve--;
    }
    *val = v;
    *vlen = (size_t)(ve - v);
    return 1;
  }
  return 0;
}
