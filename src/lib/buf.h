/* A growable byte buffer with a hard maximum (curl's dynbuf "toobig"):
 * appending past |max| fails with WR_ERR_LIMIT instead of growing. */
#ifndef WR_BUF_H
#define WR_BUF_H
#include <stddef.h>
#include <stdint.h>

#include "lib/mem.h"

typedef struct wr_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
  size_t max;
  const wr_mem *mem;
} wr_buf;

void wr_buf_init(wr_buf *b, size_t max, const wr_mem *mem);
void wr_buf_free(wr_buf *b);
void wr_buf_reset(wr_buf *b);
/* Make room for |extra| more bytes. Returns 0, WR_ERR_LIMIT or WR_ERR_NOMEM. */
int wr_buf_reserve(wr_buf *b, size_t extra);
/* Append bytes. Returns 0, WR_ERR_LIMIT or WR_ERR_NOMEM. */
int wr_buf_append(wr_buf *b, const void *data, size_t len);
int wr_buf_append_str(wr_buf *b, const char *s);
int wr_buf_printf(wr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop |n| bytes from the front. */
void wr_buf_consume(wr_buf *b, size_t n);
/* Ensure data[len] == '\0' (not counted in len) and return data as a string. */
const char *wr_buf_cstr(wr_buf *b);

#endif
