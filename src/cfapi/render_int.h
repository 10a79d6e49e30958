/* The node layout and the output string shared by the JSON (render.c)
 * and YAML (yaml.c) encoders. See render.h. */
#ifndef WR_CFAPI_RENDER_INT_H
#define WR_CFAPI_RENDER_INT_H
#include <stddef.h>
#include <stdint.h>

#include "cfapi/render.h"

typedef enum wr__cfapi_kind {
  WR__CFAPI_NULL,
  WR__CFAPI_BOOL,
  WR__CFAPI_INT,
  WR__CFAPI_STR,
  WR__CFAPI_TIME, /* a string that yaml.v3 writes plain (a time.Time) */
  WR__CFAPI_ARR,
  WR__CFAPI_OBJ
} wr__cfapi_kind;

struct wr_cfapi_node {
  wr__cfapi_kind k;
  const char *s;              /* STR, TIME */
  long long i;                /* BOOL, INT */
  wr_cfapi_node **items;      /* ARR, OBJ values */
  const char **keys;          /* OBJ */
  size_t n, cap;
  wr_arena *a;
};

/* A growing string; aborts on out-of-memory. */
typedef struct wr__cfapi_out {
  char *s;
  size_t len, cap;
} wr__cfapi_out;
void wr__cfapi_put(wr__cfapi_out *o, const void *p, size_t n);
void wr__cfapi_puts(wr__cfapi_out *o, const char *s);
void wr__cfapi_putc(wr__cfapi_out *o, char c);
void wr__cfapi_printf(wr__cfapi_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wr__cfapi_indent(wr__cfapi_out *o, size_t n);
/* The NUL-terminated string, handed to the caller. */
char *wr__cfapi_out_take(wr__cfapi_out *o);

/* Length (1..4) of the valid UTF-8 sequence at |s|, with its code point
 * in *cp; 0 if invalid (overlong, surrogate, > U+10FFFF, truncated). */
int wr__cfapi_utf8(const unsigned char *s, uint32_t *cp);

#endif
