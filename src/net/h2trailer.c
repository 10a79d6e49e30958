/* See h2trailer.h. */
#include "net/h2trailer.h"

#include <stdlib.h>

#include "lib/mem.h"

int wr_h2_submit_trailer(nghttp2_session *s, int32_t id, const wr_fields *t) {
  wr_http_header *hs = wr_xcalloc(t->n + 1, sizeof(*hs));
  nghttp2_nv *nv = wr_xcalloc(t->n + 1, sizeof(*nv));
  wr_fields_list(t, hs);
  for (size_t i = 0; i < t->n; i++)
    nv[i] = (nghttp2_nv){(uint8_t *)(uintptr_t)hs[i].name, (uint8_t *)(uintptr_t)hs[i].value,
                         hs[i].name_len, hs[i].value_len, NGHTTP2_NV_FLAG_NONE};
  int rv = nghttp2_submit_trailer(s, id, nv, t->n);
  free(nv);
  free(hs);
  return rv;
}
