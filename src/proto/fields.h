/* A list of header fields kept for later, in one bounded buffer: the
 * trailers of a response between the frame that carried them and the one
 * that sends them on (connector/h2_transport.c, edge/tunnel_h2.c,
 * edge/visitor_h2.c). Names and values are stored as "name\0value\0"
 * pairs, so neither may contain NUL (HTTP/2 and HTTP/1.1 refuse NUL in
 * both anyway). Sans-I/O; the buffer aborts on out-of-memory as wr_buf
 * does with the default allocator. */
#ifndef WR_PROTO_FIELDS_H
#define WR_PROTO_FIELDS_H
#include <stddef.h>

#include "lib/buf.h"
#include "proto/httpmeta.h"

typedef struct wr_fields {
  wr_buf b;
  size_t n; /* fields held */
} wr_fields;

/* Empty, for at most |max| bytes of names and values (two bytes a field
 * more). Allocates nothing. */
void wr_fields_init(wr_fields *f, size_t max);
void wr_fields_free(wr_fields *f);
void wr_fields_reset(wr_fields *f);
/* Appends one field, the name lower-cased when |lower| (HTTP/2 carries
 * lower-case names). Returns WR_OK, WR_ERR_INVAL (a NUL in the name or the
 * value: nothing added) or WR_ERR_LIMIT (over |max|: nothing added). */
int wr_fields_add(wr_fields *f, const char *name, size_t nlen, const char *value, size_t vlen,
                  int lower);
/* Writes the f->n fields to |out| (f->n entries), pointing into |f|:
 * valid until |f| changes. */
void wr_fields_list(const wr_fields *f, wr_http_header *out);

#endif
