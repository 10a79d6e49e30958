/* A small, strict Cap'n Proto codec for the messages cloudflared's protocol
 * uses. Sans-I/O: bytes in, values out.
 *
 * Reading is zero-copy over the caller's buffer (which must outlive the
 * reader values). It accepts the standard unpacked stream framing with up to
 * WR_CAPNP_MAX_SEGMENTS segments, struct / list (all element sizes, including
 * inline composite) / far pointers and capability pointers. Every pointer is
 * bounds-checked; a traversal budget (words read, as in the reference
 * implementation) stops pointer loops and amplification, and a nesting limit
 * stops deep recursion. Errors are sticky in the message: once a read fails
 * the message reports the first error and later reads return defaults.
 *
 * Writing produces a single-segment message, as cloudflared does, with the
 * 8-byte segment table in front, ready to send. */
#ifndef WR_CAPNP_H
#define WR_CAPNP_H
#include <stddef.h>
#include <stdint.h>

#include "lib/mem.h"

#define WR_CAPNP_MAX_SEGMENTS 512
#define WR_CAPNP_MAX_MESSAGE (64u << 20)   /* bytes, as capnproto2's decode limit */
#define WR_CAPNP_TRAVERSAL_WORDS (8u << 20) /* 64 MiB of words */
#define WR_CAPNP_MAX_DEPTH 64

/* List element sizes (the 3-bit code in a list pointer). */
enum wr_capnp_elem {
  WR_CAPNP_ELEM_VOID = 0,
  WR_CAPNP_ELEM_BIT = 1,
  WR_CAPNP_ELEM_BYTE = 2,
  WR_CAPNP_ELEM_TWO = 3,
  WR_CAPNP_ELEM_FOUR = 4,
  WR_CAPNP_ELEM_EIGHT = 5,
  WR_CAPNP_ELEM_POINTER = 6,
  WR_CAPNP_ELEM_COMPOSITE = 7
};

/* What a pointer slot holds. */
enum wr_capnp_ptr_kind {
  WR_CAPNP_PTR_NULL = 0,
  WR_CAPNP_PTR_STRUCT = 1,
  WR_CAPNP_PTR_LIST = 2,
  WR_CAPNP_PTR_CAP = 3
};

typedef struct wr_capnp_limits {
  uint32_t max_segments;   /* default WR_CAPNP_MAX_SEGMENTS */
  size_t max_bytes;        /* default WR_CAPNP_MAX_MESSAGE */
  uint64_t traversal_words; /* default WR_CAPNP_TRAVERSAL_WORDS */
  int max_depth;           /* default WR_CAPNP_MAX_DEPTH */
} wr_capnp_limits;

/* A decoded message. Holds pointers into the caller's buffer. */
typedef struct wr_capnp_msg {
  uint32_t nsegs;
  const uint8_t *seg[WR_CAPNP_MAX_SEGMENTS];
  uint32_t seg_words[WR_CAPNP_MAX_SEGMENTS];
  uint64_t traversal_left;
  int max_depth;
  int err; /* first error seen while reading, 0 if none */
} wr_capnp_msg;

/* A struct inside a message. A null pointer reads as an empty struct whose
 * fields all read as their defaults (is_null = 1). */
typedef struct wr_capnp_struct {
  wr_capnp_msg *msg;
  uint32_t seg;
  const uint8_t *data;
  uint32_t data_size; /* bytes */
  const uint8_t *ptrs;
  uint16_t nptrs;
  uint8_t depth;
  uint8_t is_null;
} wr_capnp_struct;

/* A list inside a message. For composite lists, elements are structs of
 * (elem_data_size, elem_nptrs); for pointer lists, each element is a pointer. */
typedef struct wr_capnp_list {
  wr_capnp_msg *msg;
  uint32_t seg;
  const uint8_t *base;
  uint32_t count;
  uint8_t elem;       /* enum wr_capnp_elem */
  uint8_t depth;
  uint8_t is_null;
  uint32_t step;      /* bytes per element (0 for void/bit) */
  uint32_t elem_data_size; /* composite: data bytes per element */
  uint16_t elem_nptrs;     /* composite: pointers per element */
} wr_capnp_list;

/* Framing. Looks at the start of |buf| and tells how long the whole framed
 * message is. Returns 0 and sets *total, WR_AGAIN if more bytes are needed to
 * know (or to hold the message), WR_ERR_LIMIT if the message exceeds the
 * limits, WR_ERR_PROTO for a malformed segment table. |limits| may be NULL. */
int wr_capnp_frame_size(const uint8_t *buf, size_t len, const wr_capnp_limits *limits,
                        size_t *total);

/* Parses one framed message from |buf|. On success *consumed is the framed
 * length (bytes after it are untouched: a data stream's body follows).
 * Returns 0, WR_AGAIN (incomplete), WR_ERR_LIMIT or WR_ERR_PROTO. */
int wr_capnp_msg_init(wr_capnp_msg *m, const uint8_t *buf, size_t len,
                      const wr_capnp_limits *limits, size_t *consumed);

/* The root struct. Returns 0 or an error (also recorded in m->err). */
int wr_capnp_root(wr_capnp_msg *m, wr_capnp_struct *out);

/* Data-section getters: offsets are in bytes (bits for bool) from the start
 * of the data section; reads beyond the section return 0 (the default). */
uint8_t wr_capnp_u8(const wr_capnp_struct *s, uint32_t off);
uint16_t wr_capnp_u16(const wr_capnp_struct *s, uint32_t off);
uint32_t wr_capnp_u32(const wr_capnp_struct *s, uint32_t off);
uint64_t wr_capnp_u64(const wr_capnp_struct *s, uint32_t off);
int wr_capnp_bool(const wr_capnp_struct *s, uint32_t bit);

/* Kind of pointer |idx| (WR_CAPNP_PTR_NULL when idx >= nptrs). Far pointers
 * are followed. Returns a kind, or a negative error. */
int wr_capnp_ptr_kind(const wr_capnp_struct *s, uint16_t idx);

/* Pointer getters. Each returns 0 or a negative error, and records the error
 * in the message. A null pointer is not an error: structs come back with
 * is_null = 1, lists with count 0 and is_null = 1, text as "" and data as
 * (NULL, 0). A pointer of the wrong kind is WR_ERR_PROTO. */
int wr_capnp_get_struct(const wr_capnp_struct *s, uint16_t idx, wr_capnp_struct *out);
int wr_capnp_get_list(const wr_capnp_struct *s, uint16_t idx, wr_capnp_list *out);
/* Text: a byte list whose last byte is NUL (not counted in *len). A missing
 * NUL or an embedded NUL is WR_ERR_PROTO. *str points into the message. */
int wr_capnp_get_text(const wr_capnp_struct *s, uint16_t idx, const char **str, size_t *len);
int wr_capnp_get_data(const wr_capnp_struct *s, uint16_t idx, const uint8_t **data, size_t *len);
/* A capability pointer: *index is its index in the payload's cap table. */
int wr_capnp_get_cap(const wr_capnp_struct *s, uint16_t idx, uint32_t *index);

/* List element access. Struct elements work on composite lists (and, as the
 * spec allows, on data lists read as structs); text elements on pointer
 * lists. */
int wr_capnp_list_struct(const wr_capnp_list *l, uint32_t i, wr_capnp_struct *out);
int wr_capnp_list_text(const wr_capnp_list *l, uint32_t i, const char **str, size_t *len);

/* ---- Builder ---------------------------------------------------------- */

typedef struct wr_capnp_builder {
  uint8_t *buf;      /* 8-byte segment table, then the segment */
  size_t words;      /* words used in the segment */
  size_t cap_words;  /* words allocated for the segment */
  size_t max_words;
  const wr_mem *mem;
  int err;           /* first error; later calls are no-ops */
} wr_capnp_builder;

/* A struct being built. Offsets, not pointers, because the buffer grows. */
typedef struct wr_capnp_bstruct {
  wr_capnp_builder *b;
  size_t off;        /* word offset of the data section in the segment */
  uint16_t data_words;
  uint16_t nptrs;
} wr_capnp_bstruct;

typedef struct wr_capnp_blist {
  wr_capnp_builder *b;
  size_t off;        /* word offset of the first element (after the tag) */
  uint32_t count;
  uint8_t elem;
  uint16_t data_words, nptrs; /* composite element size */
} wr_capnp_blist;

/* |max_bytes| 0 means WR_CAPNP_MAX_MESSAGE. |mem| NULL means libc. */
void wr_capnp_builder_init(wr_capnp_builder *b, const wr_mem *mem, size_t max_bytes);
void wr_capnp_builder_free(wr_capnp_builder *b);
/* Allocates the root struct. Returns 0 or an error (sticky in b->err). */
int wr_capnp_init_root(wr_capnp_builder *b, uint16_t data_words, uint16_t nptrs,
                       wr_capnp_bstruct *out);

void wr_capnp_set_u8(wr_capnp_bstruct *s, uint32_t off, uint8_t v);
void wr_capnp_set_u16(wr_capnp_bstruct *s, uint32_t off, uint16_t v);
void wr_capnp_set_u32(wr_capnp_bstruct *s, uint32_t off, uint32_t v);
void wr_capnp_set_u64(wr_capnp_bstruct *s, uint32_t off, uint64_t v);
void wr_capnp_set_bool(wr_capnp_bstruct *s, uint32_t bit, int v);

/* New struct in pointer slot |idx| of |parent|. A {0,0} struct is written as
 * the canonical zero-sized pointer (offset -1), as capnproto2 does. */
int wr_capnp_new_struct(wr_capnp_bstruct *parent, uint16_t idx, uint16_t data_words,
                        uint16_t nptrs, wr_capnp_bstruct *out);
/* Text with NUL terminator. len 0 writes a null pointer, as cloudflared's
 * SetText("") does. */
int wr_capnp_set_text(wr_capnp_bstruct *parent, uint16_t idx, const char *s, size_t len);
/* Data. data == NULL writes a null pointer; len 0 with data != NULL writes an
 * empty (non-null) list. */
int wr_capnp_set_data(wr_capnp_bstruct *parent, uint16_t idx, const uint8_t *data, size_t len);
/* Capability pointer to cap-table entry |index|. */
int wr_capnp_set_cap(wr_capnp_bstruct *parent, uint16_t idx, uint32_t index);
/* Composite list of |count| structs (count 0 gives an empty non-null list:
 * tag word only, as Go writes an empty slice). */
int wr_capnp_new_struct_list(wr_capnp_bstruct *parent, uint16_t idx, uint32_t count,
                             uint16_t data_words, uint16_t nptrs, wr_capnp_blist *out);
int wr_capnp_blist_struct(wr_capnp_blist *l, uint32_t i, wr_capnp_bstruct *out);
/* Pointer list (e.g. List(Text)). */
int wr_capnp_new_pointer_list(wr_capnp_bstruct *parent, uint16_t idx, uint32_t count,
                              wr_capnp_blist *out);
int wr_capnp_blist_set_text(wr_capnp_blist *l, uint32_t i, const char *s, size_t len);

/* Fills in the segment table. On success *out points at the framed message
 * (owned by the builder) and *len is its size. Returns b->err or 0. */
int wr_capnp_builder_finish(wr_capnp_builder *b, const uint8_t **out, size_t *len);

#endif
