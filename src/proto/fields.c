/* See fields.h. */
#include "proto/fields.h"

#include <string.h>

#include "lib/err.h"

void wr_fields_init(wr_fields *f, size_t max) {
  wr_buf_init(&f->b, max, NULL);
  f->n = 0;
}

void wr_fields_free(wr_fields *f) {
  wr_buf_free(&f->b);
  f->n = 0;
}

void wr_fields_reset(wr_fields *f) {
  wr_buf_reset(&f->b);
  f->n = 0;
}

int wr_fields_add(wr_fields *f, const char *name, size_t nlen, const char *value, size_t vlen,
                  int lower) {
  if (memchr(name, 0, nlen) || memchr(value, 0, vlen)) return WR_ERR_INVAL;
  int rv = wr_buf_reserve(&f->b, nlen + vlen + 2);
  if (rv != WR_OK) return rv;
  size_t at = f->b.len;
  wr_buf_append(&f->b, name, nlen);
  if (lower)
    for (size_t i = 0; i < nlen; i++) {
      uint8_t *c = f->b.data + at + i;
      if (*c >= 'A' && *c <= 'Z') *c = (uint8_t)(*c + 32);
    }
  wr_buf_append(&f->b, "", 1);
  wr_buf_append(&f->b, value, vlen);
  wr_buf_append(&f->b, "", 1);
  f->n++;
  return WR_OK;
}

void wr_fields_list(const wr_fields *f, wr_http_header *out) {
  const char *p = (const char *)f->b.data;
  for (size_t i = 0; i < f->n; i++) {
    size_t nl = strlen(p), vl = strlen(p + nl + 1);
    out[i] = (wr_http_header){p, nl, p + nl + 1, vl};
    p += nl + vl + 2;
  }
}
