/* ConnectRequest / ConnectResponse codec: see connect.h. */
#include "proto/connect.h"

#include <string.h>

#include "lib/err.h"

/* Field locations (quic_metadata_protocol.capnp). */
#define REQ_DATA_WORDS 1
#define REQ_PTRS 2
#define REQ_DEST 0
#define REQ_META 1
#define REQ_TYPE_OFF 0
#define RESP_DATA_WORDS 0
#define RESP_PTRS 2
#define RESP_ERROR 0
#define RESP_META 1
#define META_PTRS 2
#define META_KEY 0
#define META_VAL 1
_Static_assert(REQ_DEST == RESP_ERROR && REQ_META == RESP_META,
               "decode_msg reads both messages' text and metadata at the same pointers");

/* Where decoded metadata goes: the caller's array, or one we allocate. */
typedef struct meta_dst {
  wr_meta *arr;
  size_t max;
  const wr_mem *mem; /* allocate when |alloc| */
  int alloc;
} meta_dst;

/* The two policies every decoder offers: the caller's array of |max|
 * entries (none without an array), or one allocated with |mem| (|max| 0:
 * WR_CONNECT_DEFAULT_MAX_META). */
static meta_dst caller_meta(wr_meta *meta, size_t max) {
  meta_dst d = {meta, meta ? max : 0, NULL, 0};
  return d;
}

static meta_dst alloc_meta(const wr_mem *mem, size_t max) {
  meta_dst d = {NULL, max ? max : WR_CONNECT_DEFAULT_MAX_META, mem, 1};
  return d;
}

/* Releases what an alloc_meta decoder allocated, leaving no metadata. */
static void free_meta(const wr_mem *mem, wr_meta **meta, size_t *n) {
  wr_free(mem, *meta);
  *meta = NULL;
  *n = 0;
}

static int open_root(const uint8_t *buf, size_t len, const wr_capnp_limits *limits,
                     wr_capnp_msg *m, wr_capnp_struct *root, size_t *consumed) {
  int rv = wr_capnp_msg_init(m, buf, len, limits, consumed);
  if (rv != 0) return rv;
  return wr_capnp_root(m, root);
}

/* Reads List(Metadata) from pointer |idx| of |s|. On success *has, *arr and
 * *n describe the list; with d->alloc, *arr is owned by the caller. */
static int decode_meta(const wr_capnp_struct *s, uint16_t idx, const meta_dst *d, int *has,
                       wr_meta **arr, size_t *n) {
  wr_capnp_list l;
  wr_meta *out = d->arr;
  int rv;
  *has = 0;
  *arr = d->alloc ? NULL : d->arr;
  *n = 0;
  if ((rv = wr_capnp_get_list(s, idx, &l)) != 0) return rv;
  if (l.is_null) return WR_OK;
  *has = 1;
  if (l.count > d->max) return WR_ERR_LIMIT;
  if (l.count == 0) return WR_OK;
  if (d->alloc) {
    out = wr_calloc(d->mem, l.count, sizeof(*out));
    if (!out) return WR_ERR_NOMEM;
  }
  for (uint32_t i = 0; i < l.count; i++) {
    wr_capnp_struct e;
    if ((rv = wr_capnp_list_struct(&l, i, &e)) != 0 ||
        (rv = wr_capnp_get_text(&e, META_KEY, &out[i].key, &out[i].key_len)) != 0 ||
        (rv = wr_capnp_get_text(&e, META_VAL, &out[i].val, &out[i].val_len)) != 0)
      goto fail;
  }
  *arr = out;
  *n = l.count;
  return WR_OK;
fail:
  if (d->alloc) wr_free(d->mem, out);
  return rv;
}

/* Both messages hold a text at pointer 0 (a request's dest, a response's
 * error) and List(Metadata) at pointer 1; a request also has its type in
 * the data section (|type| non-NULL). The out-parameters are written even
 * on failure; the callers copy them out only on success. */
static int decode_msg(const uint8_t *buf, size_t len, const wr_capnp_limits *limits,
                      const meta_dst *d, uint16_t *type, const char **text, size_t *text_len,
                      int *has_meta, wr_meta **meta, size_t *nmeta, size_t *consumed) {
  wr_capnp_msg m;
  wr_capnp_struct root;
  size_t used = 0;
  int rv;
  if ((rv = open_root(buf, len, limits, &m, &root, &used)) != 0) return rv;
  if (type) *type = wr_capnp_u16(&root, REQ_TYPE_OFF);
  if ((rv = wr_capnp_get_text(&root, REQ_DEST, text, text_len)) != 0) return rv;
  if ((rv = decode_meta(&root, REQ_META, d, has_meta, meta, nmeta)) != 0) return rv;
  if (consumed) *consumed = used;
  return WR_OK;
}

static int request_decode(const uint8_t *buf, size_t len, const wr_capnp_limits *limits,
                          const meta_dst *d, wr_connect_request *out, size_t *consumed) {
  wr_connect_request r;
  memset(&r, 0, sizeof(r));
  int rv = decode_msg(buf, len, limits, d, &r.type, &r.dest, &r.dest_len, &r.has_meta, &r.meta,
                      &r.nmeta, consumed);
  if (rv == WR_OK) *out = r;
  return rv;
}

static int response_decode(const uint8_t *buf, size_t len, const wr_capnp_limits *limits,
                           const meta_dst *d, wr_connect_response *out, size_t *consumed) {
  wr_connect_response r;
  memset(&r, 0, sizeof(r));
  int rv = decode_msg(buf, len, limits, d, NULL, &r.error, &r.error_len, &r.has_meta, &r.meta,
                      &r.nmeta, consumed);
  if (rv == WR_OK) *out = r;
  return rv;
}

int wr_connect_request_decode(const uint8_t *buf, size_t len, const wr_capnp_limits *limits,
                              wr_connect_request *out, wr_meta *meta, size_t max_meta,
                              size_t *consumed) {
  meta_dst d = caller_meta(meta, max_meta);
  return request_decode(buf, len, limits, &d, out, consumed);
}

int wr_connect_request_decode_alloc(const uint8_t *buf, size_t len,
                                    const wr_capnp_limits *limits, const wr_mem *mem,
                                    size_t max_meta, wr_connect_request *out, size_t *consumed) {
  meta_dst d = alloc_meta(mem, max_meta);
  return request_decode(buf, len, limits, &d, out, consumed);
}

void wr_connect_request_free(const wr_mem *mem, wr_connect_request *r) {
  free_meta(mem, &r->meta, &r->nmeta);
}

int wr_connect_response_decode(const uint8_t *buf, size_t len, const wr_capnp_limits *limits,
                               wr_connect_response *out, wr_meta *meta, size_t max_meta,
                               size_t *consumed) {
  meta_dst d = caller_meta(meta, max_meta);
  return response_decode(buf, len, limits, &d, out, consumed);
}

int wr_connect_response_decode_alloc(const uint8_t *buf, size_t len,
                                     const wr_capnp_limits *limits, const wr_mem *mem,
                                     size_t max_meta, wr_connect_response *out,
                                     size_t *consumed) {
  meta_dst d = alloc_meta(mem, max_meta);
  return response_decode(buf, len, limits, &d, out, consumed);
}

void wr_connect_response_free(const wr_mem *mem, wr_connect_response *r) {
  free_meta(mem, &r->meta, &r->nmeta);
}

/* ---- Encoding ---------------------------------------------------------- */

static int check_meta_args(int has_meta, const wr_meta *meta, size_t n) {
  if (!has_meta && n != 0) return WR_ERR_INVAL;
  if (n != 0 && !meta) return WR_ERR_INVAL;
  if (n > 0x1fffffffu / META_PTRS) return WR_ERR_LIMIT;
  return WR_OK;
}

/* Go's generated code allocates the list (tag + elements) first, then each
 * element's key and value in order, which is what this reproduces. */
static int encode_meta(wr_capnp_bstruct *s, uint16_t idx, int has_meta, const wr_meta *meta,
                       size_t n) {
  wr_capnp_blist l;
  int rv;
  if (!has_meta) return WR_OK; /* the slot is already a null pointer */
  if ((rv = wr_capnp_new_struct_list(s, idx, (uint32_t)n, 0, META_PTRS, &l)) != 0) return rv;
  for (size_t i = 0; i < n; i++) {
    wr_capnp_bstruct e;
    if ((rv = wr_capnp_blist_struct(&l, (uint32_t)i, &e)) != 0 ||
        (rv = wr_capnp_set_text(&e, META_KEY, meta[i].key, meta[i].key_len)) != 0 ||
        (rv = wr_capnp_set_text(&e, META_VAL, meta[i].val, meta[i].val_len)) != 0)
      return rv;
  }
  return WR_OK;
}

/* Finishes |b| and appends the framed bytes to |out|; frees |b|. */
static int flush(wr_capnp_builder *b, wr_buf *out) {
  const uint8_t *bytes;
  size_t n;
  int rv = wr_capnp_builder_finish(b, &bytes, &n);
  if (rv == 0) rv = wr_buf_append(out, bytes, n);
  wr_capnp_builder_free(b);
  return rv;
}

int wr_connect_request_encode(const wr_connect_request *r, const wr_mem *mem, wr_buf *out) {
  wr_capnp_builder b;
  wr_capnp_bstruct root;
  int rv = check_meta_args(r->has_meta, r->meta, r->nmeta);
  if (rv != 0) return rv;
  wr_capnp_builder_init(&b, mem, 0);
  if (wr_capnp_init_root(&b, REQ_DATA_WORDS, REQ_PTRS, &root) == 0 &&
      wr_capnp_set_text(&root, REQ_DEST, r->dest, r->dest_len) == 0) {
    wr_capnp_set_u16(&root, REQ_TYPE_OFF, r->type);
    encode_meta(&root, REQ_META, r->has_meta, r->meta, r->nmeta);
  }
  return flush(&b, out); /* errors are sticky in the builder */
}

int wr_connect_response_encode(const wr_connect_response *r, const wr_mem *mem, wr_buf *out) {
  wr_capnp_builder b;
  wr_capnp_bstruct root;
  int rv = check_meta_args(r->has_meta, r->meta, r->nmeta);
  if (rv != 0) return rv;
  wr_capnp_builder_init(&b, mem, 0);
  if (wr_capnp_init_root(&b, RESP_DATA_WORDS, RESP_PTRS, &root) == 0 &&
      wr_capnp_set_text(&root, RESP_ERROR, r->error, r->error_len) == 0)
    encode_meta(&root, RESP_META, r->has_meta, r->meta, r->nmeta);
  return flush(&b, out);
}

