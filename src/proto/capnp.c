/* Cap'n Proto wire format: see capnp.h for the contract.
 *
 * Pointer words (little-endian u64), by the two low bits:
 *   0 struct: bits 2..31 signed word offset from the end of the pointer,
 *             32..47 data words, 48..63 pointer words
 *   1 list:   bits 2..31 offset, 32..34 element size, 35..63 element count
 *             (for inline composite: the word count, with a tag word first)
 *   2 far:    bit 2 double-far flag, 3..31 word offset of the landing pad,
 *             32..63 segment id
 *   3 other:  bits 2..31 zero means capability, 32..63 its cap-table index */
#include "proto/capnp.h"

#include <string.h>

#include "lib/bytes.h"
#include "lib/err.h"

/* Signed 30-bit offset in bits 2..31. */
static inline int64_t ptr_offset(uint64_t p) { return (int64_t)(int32_t)(uint32_t)p >> 2; }

static void limits_or_default(const wr_capnp_limits *in, wr_capnp_limits *out) {
  out->max_segments = in && in->max_segments ? in->max_segments : WR_CAPNP_MAX_SEGMENTS;
  if (out->max_segments > WR_CAPNP_MAX_SEGMENTS) out->max_segments = WR_CAPNP_MAX_SEGMENTS;
  out->max_bytes = in && in->max_bytes ? in->max_bytes : WR_CAPNP_MAX_MESSAGE;
  out->traversal_words = in && in->traversal_words ? in->traversal_words : WR_CAPNP_TRAVERSAL_WORDS;
  out->max_depth = in && in->max_depth ? in->max_depth : WR_CAPNP_MAX_DEPTH;
}

int wr_capnp_frame_size(const uint8_t *buf, size_t len, const wr_capnp_limits *limits,
                        size_t *total) {
  wr_capnp_limits lim;
  limits_or_default(limits, &lim);
  if (len < 4) return WR_AGAIN;
  uint64_t nsegs = (uint64_t)wr_get_le32(buf) + 1;
  if (nsegs > lim.max_segments) return WR_ERR_LIMIT;
  size_t header = 4 + 4 * (size_t)nsegs;
  header = (header + 7) & ~(size_t)7;
  if (len < header) return WR_AGAIN;
  uint64_t words = 0;
  for (uint64_t i = 0; i < nsegs; i++) words += wr_get_le32(buf + 4 + 4 * i);
  uint64_t t = header + words * 8;
  if (t > lim.max_bytes) return WR_ERR_LIMIT;
  *total = (size_t)t;
  return len < t ? WR_AGAIN : WR_OK;
}

int wr_capnp_msg_init(wr_capnp_msg *m, const uint8_t *buf, size_t len,
                      const wr_capnp_limits *limits, size_t *consumed) {
  wr_capnp_limits lim;
  size_t total = 0;
  int rv = wr_capnp_frame_size(buf, len, limits, &total);
  if (rv != WR_OK) return rv;
  limits_or_default(limits, &lim);
  m->nsegs = wr_get_le32(buf) + 1;
  size_t off = (4 + 4 * (size_t)m->nsegs + 7) & ~(size_t)7;
  for (uint32_t i = 0; i < m->nsegs; i++) {
    m->seg_words[i] = wr_get_le32(buf + 4 + 4 * i);
    m->seg[i] = buf + off;
    off += (size_t)m->seg_words[i] * 8;
  }
  m->traversal_left = lim.traversal_words;
  m->max_depth = lim.max_depth;
  m->err = 0;
  if (consumed) *consumed = total;
  return WR_OK;
}

static int fail(wr_capnp_msg *m, int rv) {
  if (!m->err) m->err = rv;
  return rv;
}

/* Charges |words| against the traversal budget. */
static int charge(wr_capnp_msg *m, uint64_t words) {
  if (words > m->traversal_left) {
    m->traversal_left = 0;
    return fail(m, WR_ERR_LIMIT);
  }
  m->traversal_left -= words;
  return WR_OK;
}

/* A pointer after following far pointers: the pointer word that describes
 * the object, and where the object's content starts. */
typedef struct resolved {
  uint64_t ptr;
  uint32_t seg;
  uint64_t target; /* word index in seg */
} resolved;

/* Resolves the pointer stored at word |idx| of segment |seg|. */
static int resolve(wr_capnp_msg *m, uint32_t seg, uint64_t idx, resolved *r) {
  if (m->err) return m->err;
  uint64_t p = wr_get_le64(m->seg[seg] + idx * 8);
  if ((p & 3) != 2) {
    r->ptr = p;
    r->seg = seg;
    r->target = (uint64_t)((int64_t)idx + 1 + ptr_offset(p));
    if (p != 0 && ((p & 3) == 0 || (p & 3) == 1) && (int64_t)r->target < 0)
      return fail(m, WR_ERR_BOUNDS);
    return WR_OK;
  }
  /* Far pointer: the landing pad lives in another segment. */
  uint32_t pad_seg = (uint32_t)(p >> 32);
  uint64_t pad = (uint32_t)p >> 3;
  int dbl = (p >> 2) & 1;
  if (pad_seg >= m->nsegs || pad + 1 + (uint64_t)dbl > m->seg_words[pad_seg])
    return fail(m, WR_ERR_BOUNDS);
  if (charge(m, 1) != 0) return m->err;
  uint64_t land = wr_get_le64(m->seg[pad_seg] + pad * 8);
  if (!dbl) {
    if ((land & 3) == 2) return fail(m, WR_ERR_PROTO); /* far to far */
    r->ptr = land;
    r->seg = pad_seg;
    r->target = (uint64_t)((int64_t)pad + 1 + ptr_offset(land));
    if ((int64_t)r->target < 0) return fail(m, WR_ERR_BOUNDS);
    return WR_OK;
  }
  /* Double far: pad[0] is a single far pointer to the content, pad[1] the
   * tag describing it. */
  if ((land & 7) != 2) return fail(m, WR_ERR_PROTO);
  uint64_t tag = wr_get_le64(m->seg[pad_seg] + (pad + 1) * 8);
  if ((tag & 3) != 0 && (tag & 3) != 1) return fail(m, WR_ERR_PROTO);
  r->ptr = tag;
  r->seg = (uint32_t)(land >> 32);
  r->target = (uint32_t)land >> 3;
  if (r->seg >= m->nsegs) return fail(m, WR_ERR_BOUNDS);
  return WR_OK;
}

static int depth_check(wr_capnp_msg *m, unsigned depth) {
  if ((int)depth > m->max_depth) return fail(m, WR_ERR_LIMIT);
  return WR_OK;
}

/* What read_struct and read_list do first: fill the result's message,
 * depth and null flag, and check that a non-null pointer is of |kind| (0
 * struct, 1 list) and within the depth limit. With *is_null set there is
 * nothing more to read. */
static int ptr_begin(wr_capnp_msg *m, const resolved *r, unsigned depth, unsigned kind,
                     wr_capnp_msg **msg, uint8_t *out_depth, uint8_t *is_null) {
  *msg = m;
  *out_depth = (uint8_t)depth;
  *is_null = r->ptr == 0;
  if (*is_null) return WR_OK;
  if ((r->ptr & 3) != kind) return fail(m, WR_ERR_PROTO);
  if (depth_check(m, depth) != 0) return m->err;
  return WR_OK;
}

/* Reads a struct from a resolved pointer. */
static int read_struct(wr_capnp_msg *m, const resolved *r, unsigned depth, wr_capnp_struct *out) {
  memset(out, 0, sizeof(*out));
  int rv = ptr_begin(m, r, depth, 0, &out->msg, &out->depth, &out->is_null);
  if (rv != WR_OK || out->is_null) return rv;
  uint64_t dw = (r->ptr >> 32) & 0xffff, pw = r->ptr >> 48;
  if (r->target + dw + pw > m->seg_words[r->seg]) return fail(m, WR_ERR_BOUNDS);
  /* Zero-sized structs still cost a word so empty structs cannot be used to
   * walk the message for free. */
  if (charge(m, dw + pw ? dw + pw : 1) != 0) return m->err;
  out->seg = r->seg;
  out->data = m->seg[r->seg] + r->target * 8;
  out->data_size = (uint32_t)(dw * 8);
  out->ptrs = out->data + dw * 8;
  out->nptrs = (uint16_t)pw;
  return WR_OK;
}

static const uint8_t elem_bits[8] = {0, 1, 8, 16, 32, 64, 64, 0};

static int read_list(wr_capnp_msg *m, const resolved *r, unsigned depth, wr_capnp_list *out) {
  memset(out, 0, sizeof(*out));
  int rv = ptr_begin(m, r, depth, 1, &out->msg, &out->depth, &out->is_null);
  if (rv != WR_OK || out->is_null) return rv;
  uint8_t elem = (r->ptr >> 32) & 7;
  uint64_t count = r->ptr >> 35;
  uint64_t segw = m->seg_words[r->seg];
  out->seg = r->seg;
  out->elem = elem;
  if (elem == WR_CAPNP_ELEM_COMPOSITE) {
    uint64_t words = count;
    if (r->target + 1 + words > segw) return fail(m, WR_ERR_BOUNDS);
    uint64_t tag = wr_get_le64(m->seg[r->seg] + r->target * 8);
    if ((tag & 3) != 0) return fail(m, WR_ERR_PROTO);
    uint64_t n = (uint64_t)ptr_offset(tag);
    uint64_t dw = (tag >> 32) & 0xffff, pw = tag >> 48;
    if ((int64_t)n < 0 || n * (dw + pw) > words) return fail(m, WR_ERR_BOUNDS);
    /* Lists of zero-sized structs are charged per element. */
    if (charge(m, 1 + (dw + pw ? words : n)) != 0) return m->err;
    out->base = m->seg[r->seg] + (r->target + 1) * 8;
    out->count = (uint32_t)n;
    out->step = (uint32_t)((dw + pw) * 8);
    out->elem_data_size = (uint32_t)(dw * 8);
    out->elem_nptrs = (uint16_t)pw;
    return WR_OK;
  }
  uint64_t bits = count * elem_bits[elem];
  uint64_t words = (bits + 63) / 64;
  if (r->target + words > segw) return fail(m, WR_ERR_BOUNDS);
  if (charge(m, elem == WR_CAPNP_ELEM_VOID ? count : words) != 0) return m->err;
  out->base = m->seg[r->seg] + r->target * 8;
  out->count = (uint32_t)count;
  out->step = elem_bits[elem] / 8;
  if (elem == WR_CAPNP_ELEM_POINTER) out->elem_nptrs = 1;
  else out->elem_data_size = out->step;
  return WR_OK;
}

int wr_capnp_root(wr_capnp_msg *m, wr_capnp_struct *out) {
  resolved r;
  if (m->nsegs == 0 || m->seg_words[0] < 1) return fail(m, WR_ERR_BOUNDS);
  if (resolve(m, 0, 0, &r) != 0) return m->err;
  return read_struct(m, &r, 0, out);
}

uint8_t wr_capnp_u8(const wr_capnp_struct *s, uint32_t off) {
  return off < s->data_size ? s->data[off] : 0;
}
uint16_t wr_capnp_u16(const wr_capnp_struct *s, uint32_t off) {
  if (off + 2 > s->data_size) return 0;
  return (uint16_t)(s->data[off] | s->data[off + 1] << 8);
}
uint32_t wr_capnp_u32(const wr_capnp_struct *s, uint32_t off) {
  return off + 4 <= s->data_size ? wr_get_le32(s->data + off) : 0;
}
uint64_t wr_capnp_u64(const wr_capnp_struct *s, uint32_t off) {
  return off + 8 <= s->data_size ? wr_get_le64(s->data + off) : 0;
}
int wr_capnp_bool(const wr_capnp_struct *s, uint32_t bit) {
  return bit / 8 < s->data_size ? (s->data[bit / 8] >> (bit % 8)) & 1 : 0;
}

/* Resolves the pointer at |loc| (inside segment |seg|). */
static int resolve_at(wr_capnp_msg *m, uint32_t seg, const uint8_t *loc, resolved *r) {
  return resolve(m, seg, (uint64_t)(loc - m->seg[seg]) / 8, r);
}

static int slot(const wr_capnp_struct *s, uint16_t idx, resolved *r) {
  if (s->msg && s->msg->err) return s->msg->err;
  if (s->is_null || idx >= s->nptrs) {
    memset(r, 0, sizeof(*r));
    return WR_OK;
  }
  return resolve_at(s->msg, s->seg, s->ptrs + (size_t)idx * 8, r);
}

int wr_capnp_ptr_kind(const wr_capnp_struct *s, uint16_t idx) {
  resolved r;
  int rv = slot(s, idx, &r);
  if (rv != 0) return rv;
  if (r.ptr == 0) return WR_CAPNP_PTR_NULL;
  switch (r.ptr & 3) {
  case 0: return WR_CAPNP_PTR_STRUCT;
  case 1: return WR_CAPNP_PTR_LIST;
  default: return (r.ptr & 0xffffffffu) == 3 ? WR_CAPNP_PTR_CAP : fail(s->msg, WR_ERR_PROTO);
  }
}

int wr_capnp_get_struct(const wr_capnp_struct *s, uint16_t idx, wr_capnp_struct *out) {
  resolved r;
  int rv = slot(s, idx, &r);
  if (rv != 0) {
    memset(out, 0, sizeof(*out));
    out->is_null = 1;
    return rv;
  }
  if (!s->msg) { /* reading from a null default struct */
    memset(out, 0, sizeof(*out));
    out->is_null = 1;
    return WR_OK;
  }
  return read_struct(s->msg, &r, s->depth + 1u, out);
}

int wr_capnp_get_list(const wr_capnp_struct *s, uint16_t idx, wr_capnp_list *out) {
  resolved r;
  int rv = slot(s, idx, &r);
  if (rv != 0 || !s->msg) {
    memset(out, 0, sizeof(*out));
    out->is_null = 1;
    return rv;
  }
  return read_list(s->msg, &r, s->depth + 1u, out);
}

static int list_as_text(wr_capnp_msg *m, const wr_capnp_list *l, const char **str, size_t *len) {
  *str = "";
  *len = 0;
  if (l->is_null) return WR_OK;
  if (l->elem != WR_CAPNP_ELEM_BYTE || l->count == 0) return fail(m, WR_ERR_PROTO);
  const char *p = (const char *)l->base;
  if (p[l->count - 1] != '\0' || memchr(p, '\0', l->count - 1) != NULL)
    return fail(m, WR_ERR_PROTO);
  *str = p;
  *len = l->count - 1;
  return WR_OK;
}

int wr_capnp_get_text(const wr_capnp_struct *s, uint16_t idx, const char **str, size_t *len) {
  wr_capnp_list l;
  *str = "";
  *len = 0;
  int rv = wr_capnp_get_list(s, idx, &l);
  if (rv != 0) return rv;
  return list_as_text(s->msg, &l, str, len);
}

int wr_capnp_get_data(const wr_capnp_struct *s, uint16_t idx, const uint8_t **data, size_t *len) {
  wr_capnp_list l;
  *data = NULL;
  *len = 0;
  int rv = wr_capnp_get_list(s, idx, &l);
  if (rv != 0 || l.is_null) return rv;
  if (l.elem != WR_CAPNP_ELEM_BYTE) return fail(s->msg, WR_ERR_PROTO);
  *data = l.base;
  *len = l.count;
  return WR_OK;
}

int wr_capnp_get_cap(const wr_capnp_struct *s, uint16_t idx, uint32_t *index) {
  resolved r;
  int rv = slot(s, idx, &r);
  if (rv != 0) return rv;
  if ((r.ptr & 0xffffffffu) != 3) return s->msg ? fail(s->msg, WR_ERR_PROTO) : WR_ERR_PROTO;
  *index = (uint32_t)(r.ptr >> 32);
  return WR_OK;
}

int wr_capnp_list_struct(const wr_capnp_list *l, uint32_t i, wr_capnp_struct *out) {
  memset(out, 0, sizeof(*out));
  out->msg = l->msg;
  if (l->msg && l->msg->err) return l->msg->err;
  if (i >= l->count) return l->msg ? fail(l->msg, WR_ERR_BOUNDS) : WR_ERR_BOUNDS;
  if (l->elem == WR_CAPNP_ELEM_BIT) return fail(l->msg, WR_ERR_PROTO);
  out->seg = l->seg;
  out->depth = l->depth;
  out->data = l->base + (size_t)i * l->step;
  out->data_size = l->elem_data_size;
  out->ptrs = out->data + l->elem_data_size;
  out->nptrs = l->elem_nptrs;
  return WR_OK;
}

int wr_capnp_list_text(const wr_capnp_list *l, uint32_t i, const char **str, size_t *len) {
  resolved r;
  wr_capnp_list tl;
  *str = "";
  *len = 0;
  if (l->msg && l->msg->err) return l->msg->err;
  if (i >= l->count) return l->msg ? fail(l->msg, WR_ERR_BOUNDS) : WR_ERR_BOUNDS;
  if (l->elem != WR_CAPNP_ELEM_POINTER) return fail(l->msg, WR_ERR_PROTO);
  if (resolve_at(l->msg, l->seg, l->base + (size_t)i * 8, &r) != 0) return l->msg->err;
  if (read_list(l->msg, &r, l->depth + 1u, &tl) != 0) return l->msg->err;
  return list_as_text(l->msg, &tl, str, len);
}

/* ---- Builder ---------------------------------------------------------- */

#define SEG_TABLE 8 /* one segment: u32 count-1, u32 size, no padding */

static uint8_t *word_at(wr_capnp_builder *b, size_t w) { return b->buf + SEG_TABLE + w * 8; }

static int bfail(wr_capnp_builder *b, int rv) {
  if (!b->err) b->err = rv;
  return rv;
}

/* Allocates |n| zeroed words; returns their offset via *off. */
static int balloc(wr_capnp_builder *b, size_t n, size_t *off) {
  if (b->err) return b->err;
  if (n > b->max_words || b->words > b->max_words - n) return bfail(b, WR_ERR_LIMIT);
  if (b->words + n > b->cap_words) {
    size_t ncap = b->cap_words ? b->cap_words : 16;
    while (ncap < b->words + n) ncap *= 2;
    if (ncap > b->max_words) ncap = b->max_words;
    uint8_t *p = wr_realloc(b->mem, b->buf, SEG_TABLE + ncap * 8);
    if (!p) return bfail(b, WR_ERR_NOMEM);
    b->buf = p;
    b->cap_words = ncap;
  }
  *off = b->words;
  memset(word_at(b, b->words), 0, n * 8);
  b->words += n;
  return WR_OK;
}

void wr_capnp_builder_init(wr_capnp_builder *b, const wr_mem *mem, size_t max_bytes) {
  memset(b, 0, sizeof(*b));
  b->mem = mem;
  if (!max_bytes || max_bytes > WR_CAPNP_MAX_MESSAGE) max_bytes = WR_CAPNP_MAX_MESSAGE;
  /* The segment table takes one word; a limit below two words leaves no
   * room for a message at all (and must not underflow). */
  b->max_words = max_bytes >= 16 ? max_bytes / 8 - 1 : 0;
}

void wr_capnp_builder_free(wr_capnp_builder *b) {
  wr_free(b->mem, b->buf);
  b->buf = NULL;
  b->words = b->cap_words = 0;
}

static uint64_t struct_ptr(int64_t offset, uint16_t dw, uint16_t pw) {
  return (uint64_t)(uint32_t)((uint32_t)offset << 2) | (uint64_t)dw << 32 | (uint64_t)pw << 48;
}

static uint64_t list_ptr(int64_t offset, uint8_t elem, uint32_t count) {
  return 1 | (uint64_t)(uint32_t)((uint32_t)offset << 2) | (uint64_t)elem << 32 |
         (uint64_t)count << 35;
}

int wr_capnp_init_root(wr_capnp_builder *b, uint16_t data_words, uint16_t nptrs,
                       wr_capnp_bstruct *out) {
  size_t root, body;
  memset(out, 0, sizeof(*out));
  out->b = b;
  if (b->words != 0) return bfail(b, WR_ERR_INVAL);
  if (balloc(b, 1, &root) != 0 || balloc(b, (size_t)data_words + nptrs, &body) != 0)
    return b->err;
  wr_put_le64(word_at(b, root), struct_ptr((int64_t)body - 1, data_words, nptrs));
  out->off = body;
  out->data_words = data_words;
  out->nptrs = nptrs;
  return WR_OK;
}

static uint8_t *data_at(wr_capnp_bstruct *s, uint32_t off, uint32_t size) {
  wr_capnp_builder *b = s->b;
  if (b->err) return NULL;
  if ((uint64_t)off + size > (uint64_t)s->data_words * 8) {
    bfail(b, WR_ERR_INVAL);
    return NULL;
  }
  return word_at(b, s->off) + off;
}

void wr_capnp_set_u8(wr_capnp_bstruct *s, uint32_t off, uint8_t v) {
  uint8_t *p = data_at(s, off, 1);
  if (p) *p = v;
}
void wr_capnp_set_u16(wr_capnp_bstruct *s, uint32_t off, uint16_t v) {
  uint8_t *p = data_at(s, off, 2);
  if (p) p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}
void wr_capnp_set_u32(wr_capnp_bstruct *s, uint32_t off, uint32_t v) {
  uint8_t *p = data_at(s, off, 4);
  if (p) wr_put_le32(p, v);
}
void wr_capnp_set_u64(wr_capnp_bstruct *s, uint32_t off, uint64_t v) {
  uint8_t *p = data_at(s, off, 8);
  if (p) wr_put_le64(p, v);
}
void wr_capnp_set_bool(wr_capnp_bstruct *s, uint32_t bit, int v) {
  uint8_t *p = data_at(s, bit / 8, 1);
  if (!p) return;
  if (v) *p |= (uint8_t)(1u << (bit % 8));
  else *p &= (uint8_t) ~(1u << (bit % 8));
}

/* Word index of pointer slot |idx| in |s|, or an error. */
static int ptr_slot(wr_capnp_bstruct *s, uint16_t idx, size_t *w) {
  if (s->b->err) return s->b->err;
  if (idx >= s->nptrs) return bfail(s->b, WR_ERR_INVAL);
  *w = s->off + s->data_words + idx;
  return WR_OK;
}

int wr_capnp_new_struct(wr_capnp_bstruct *parent, uint16_t idx, uint16_t data_words,
                        uint16_t nptrs, wr_capnp_bstruct *out) {
  wr_capnp_builder *b = parent->b;
  size_t w, body;
  memset(out, 0, sizeof(*out));
  out->b = b;
  if (ptr_slot(parent, idx, &w) != 0) return b->err;
  if (data_words + nptrs == 0) {
    /* capnproto2 writes empty structs as offset -1 pointing at the pointer
     * itself; no allocation. */
    wr_put_le64(word_at(b, w), struct_ptr(-1, 0, 0));
    out->off = w + 1;
    return WR_OK;
  }
  if (balloc(b, (size_t)data_words + nptrs, &body) != 0) return b->err;
  wr_put_le64(word_at(b, w), struct_ptr((int64_t)body - (int64_t)w - 1, data_words, nptrs));
  out->off = body;
  out->data_words = data_words;
  out->nptrs = nptrs;
  return WR_OK;
}

/* Writes a byte list of |len| bytes (+1 NUL when |nul|) at slot |w|. */
static int put_bytes(wr_capnp_builder *b, size_t w, const void *src, size_t len, int nul) {
  size_t n = len + (nul ? 1 : 0), body;
  if (n > 0x1fffffff) return bfail(b, WR_ERR_LIMIT);
  if (n == 0) {
    wr_put_le64(word_at(b, w), list_ptr(0, WR_CAPNP_ELEM_BYTE, 0));
    return WR_OK;
  }
  if (balloc(b, (n + 7) / 8, &body) != 0) return b->err;
  if (len) memcpy(word_at(b, body), src, len);
  wr_put_le64(word_at(b, w), list_ptr((int64_t)body - (int64_t)w - 1, WR_CAPNP_ELEM_BYTE, (uint32_t)n));
  return WR_OK;
}

int wr_capnp_set_text(wr_capnp_bstruct *parent, uint16_t idx, const char *s, size_t len) {
  size_t w;
  if (ptr_slot(parent, idx, &w) != 0) return parent->b->err;
  if (len == 0) {
    wr_put_le64(word_at(parent->b, w), 0);
    return WR_OK;
  }
  return put_bytes(parent->b, w, s, len, 1);
}

int wr_capnp_set_data(wr_capnp_bstruct *parent, uint16_t idx, const uint8_t *data, size_t len) {
  size_t w;
  if (ptr_slot(parent, idx, &w) != 0) return parent->b->err;
  if (!data) {
    wr_put_le64(word_at(parent->b, w), 0);
    return WR_OK;
  }
  return put_bytes(parent->b, w, data, len, 0);
}

int wr_capnp_set_cap(wr_capnp_bstruct *parent, uint16_t idx, uint32_t index) {
  size_t w;
  if (ptr_slot(parent, idx, &w) != 0) return parent->b->err;
  wr_put_le64(word_at(parent->b, w), 3 | (uint64_t)index << 32);
  return WR_OK;
}

int wr_capnp_new_struct_list(wr_capnp_bstruct *parent, uint16_t idx, uint32_t count,
                             uint16_t data_words, uint16_t nptrs, wr_capnp_blist *out) {
  wr_capnp_builder *b = parent->b;
  size_t w, body;
  memset(out, 0, sizeof(*out));
  out->b = b;
  if (ptr_slot(parent, idx, &w) != 0) return b->err;
  uint64_t words = (uint64_t)count * (data_words + nptrs);
  if (count > 0x1fffffff || words > 0x1fffffff) return bfail(b, WR_ERR_LIMIT);
  if (balloc(b, 1 + (size_t)words, &body) != 0) return b->err;
  wr_put_le64(word_at(b, body), struct_ptr(count, data_words, nptrs)); /* tag */
  wr_put_le64(word_at(b, w), list_ptr((int64_t)body - (int64_t)w - 1, WR_CAPNP_ELEM_COMPOSITE, (uint32_t)words));
  out->off = body + 1;
  out->count = count;
  out->elem = WR_CAPNP_ELEM_COMPOSITE;
  out->data_words = data_words;
  out->nptrs = nptrs;
  return WR_OK;
}

int wr_capnp_blist_struct(wr_capnp_blist *l, uint32_t i, wr_capnp_bstruct *out) {
  memset(out, 0, sizeof(*out));
  out->b = l->b;
  if (l->b->err) return l->b->err;
  if (l->elem != WR_CAPNP_ELEM_COMPOSITE || i >= l->count) return bfail(l->b, WR_ERR_INVAL);
  out->off = l->off + (size_t)i * (l->data_words + l->nptrs);
  out->data_words = l->data_words;
  out->nptrs = l->nptrs;
  return WR_OK;
}

int wr_capnp_new_pointer_list(wr_capnp_bstruct *parent, uint16_t idx, uint32_t count,
                              wr_capnp_blist *out) {
  wr_capnp_builder *b = parent->b;
  size_t w, body = 0;
  memset(out, 0, sizeof(*out));
  out->b = b;
  if (ptr_slot(parent, idx, &w) != 0) return b->err;
  if (count > 0x1fffffff) return bfail(b, WR_ERR_LIMIT);
  if (count && balloc(b, count, &body) != 0) return b->err;
  wr_put_le64(word_at(b, w), list_ptr(count ? (int64_t)body - (int64_t)w - 1 : 0, WR_CAPNP_ELEM_POINTER, count));
  out->off = body;
  out->count = count;
  out->elem = WR_CAPNP_ELEM_POINTER;
  out->nptrs = 1;
  return WR_OK;
}

int wr_capnp_blist_set_text(wr_capnp_blist *l, uint32_t i, const char *s, size_t len) {
  if (l->b->err) return l->b->err;
  if (l->elem != WR_CAPNP_ELEM_POINTER || i >= l->count) return bfail(l->b, WR_ERR_INVAL);
  size_t w = l->off + i;
  if (len == 0) {
    wr_put_le64(word_at(l->b, w), 0);
    return WR_OK;
  }
  return put_bytes(l->b, w, s, len, 1);
}

int wr_capnp_builder_finish(wr_capnp_builder *b, const uint8_t **out, size_t *len) {
  if (b->err) return b->err;
  if (b->words == 0) return bfail(b, WR_ERR_INVAL);
  wr_put_le32(b->buf, 0);
  wr_put_le32(b->buf + 4, (uint32_t)b->words);
  *out = b->buf;
  *len = SEG_TABLE + b->words * 8;
  return WR_OK;
}
