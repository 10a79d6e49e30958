/* Output of the management commands, as cloudflared 2023.7.3 prints it:
 * the -o flag, -o json|yaml through cfapi's renderers (cfapi/render.h),
 * tables as Go's text/tabwriter (minwidth 0, tabwidth 8, padding 1, ' ')
 * and cloudflared's connection summaries. See mgmt_int.h. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/mgmt_int.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

/* ---- -o json | yaml ------------------------------------------------------------------------ */

int wr__mg_output_format(const wr__mg_ctx *c, wr__mg_format *fmt, wr_cfapi_error *e) {
  static const struct {
    const char *name;
    wr__mg_format fmt;
  } formats[] = {{"", WR__MG_TEXT}, {"json", WR__MG_JSON}, {"yaml", WR__MG_YAML}};
  const char *o = wr_opts_get(c->opts, "output");
  for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
    if (strcmp(o ? o : "", formats[i].name) == 0) {
      *fmt = formats[i].fmt;
      return WR_OK;
    }
  }
  wr_cfapi_errorf(e, "Unknown output format '%s'", o);
  return WR_ERR_INVAL;
}

wr_cfapi_enc wr__mg_enc(wr__mg_format fmt) { return fmt == WR__MG_JSON ? WR_CFAPI_JSON : WR_CFAPI_YAML; }

void wr__mg_print(wr__mg_format fmt, const wr_cfapi_node *v) {
  char *s = wr_cfapi_render(v, wr__mg_enc(fmt));
  fputs(s, stdout);
  free(s);
  fflush(stdout);
}

static void indent(int n) {
  for (int i = 0; i < n; i++) putchar(' ');
}

/* ---- tables (text/tabwriter) ------------------------------------------------------------- */

void wr__mg_table_row(wr__mg_table *t, size_t ncells, ...) {
  va_list ap;
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 16;
    t->rows = wr_xrealloc(t->rows, t->cap * sizeof(*t->rows));
    t->ncells = wr_xrealloc(t->ncells, t->cap * sizeof(*t->ncells));
  }
  char **row = wr_xcalloc(ncells + 1, sizeof(char *));
  va_start(ap, ncells);
  for (size_t i = 0; i < ncells; i++) {
    const char *s = va_arg(ap, const char *);
    row[i] = wr_xstrdup(s ? s : "");
  }
  va_end(ap);
  t->rows[t->n] = row;
  t->ncells[t->n++] = ncells;
}

static size_t runes(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
  return n;
}

/* Go's tabwriter.format(): a column block is a run of consecutive lines
 * that have a tab-terminated cell in that column; its width is the widest
 * such cell plus the padding. Cells are the row's values joined and split
 * again on '\t', so a tab inside a value shifts its row as it does in
 * cloudflared. The last cell of a line (after its final tab) is not part
 * of any column. */
typedef struct tw_line {
  char **cells;
  size_t n; /* cells including the trailing, unterminated one */
} tw_line;

static void tw_write_lines(const tw_line *lines, size_t l0, size_t l1, const size_t *widths, size_t nw) {
  for (size_t i = l0; i < l1; i++) {
    for (size_t j = 0; j < lines[i].n; j++) {
      fputs(lines[i].cells[j], stdout);
      if (j < nw) indent((int)(widths[j] - runes(lines[i].cells[j])));
    }
    putchar('\n');
  }
}

static void tw_format(const tw_line *lines, size_t l0, size_t l1, size_t *widths, size_t nw) {
  size_t column = nw;
  for (size_t this = l0; this < l1; this++) {
    if (column + 1 >= lines[this].n) continue;
    tw_write_lines(lines, l0, this, widths, nw);
    l0 = this;
    size_t width = 0;
    for (; this < l1; this++) {
      if (column + 1 >= lines[this].n) break;
      size_t w = runes(lines[this].cells[column]) + 1;
      if (w > width) width = w;
    }
    widths[nw] = width;
    tw_format(lines, l0, this, widths, nw + 1);
    l0 = this;
    /* As in Go, the loop's increment then skips the line that ended the
     * block: it has no cell in this column anyway. */
  }
  tw_write_lines(lines, l0, l1, widths, nw);
}

void wr__mg_table_print(wr__mg_table *t) {
  tw_line *lines = wr_xcalloc(t->n + 1, sizeof(*lines));
  size_t maxc = 1;
  for (size_t r = 0; r < t->n; r++) {
    wr_buf b;
    wr_buf_init(&b, SIZE_MAX / 2, NULL);
    for (size_t c = 0; c < t->ncells[r]; c++) {
      wr_buf_append_str(&b, t->rows[r][c]);
      wr_buf_append(&b, "\t", 1);
      free(t->rows[r][c]);
    }
    free(t->rows[r]);
    const char *text = wr_buf_cstr(&b);
    size_t ntabs = 0;
    for (const char *p = text; *p; p++) ntabs += *p == '\t';
    lines[r].cells = wr_xcalloc(ntabs + 2, sizeof(char *));
    for (const char *p = text;;) {
      size_t len = strcspn(p, "\t");
      lines[r].cells[lines[r].n++] = wr_xstrndup(p, len);
      if (!p[len]) break;
      p += len + 1;
    }
    if (lines[r].n > maxc) maxc = lines[r].n;
    wr_buf_free(&b);
  }
  size_t *widths = wr_xcalloc(maxc + 1, sizeof(size_t));
  tw_format(lines, 0, t->n, widths, 0);
  for (size_t r = 0; r < t->n; r++) {
    for (size_t c = 0; c < lines[r].n; c++) free(lines[r].cells[c]);
    free(lines[r].cells);
  }
  free(lines);
  free(widths);
  free(t->rows);
  free(t->ncells);
  memset(t, 0, sizeof(*t));
  fflush(stdout);
}

/* ---- connections ---------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *wr__mg_fmt_connections(const wr_cfapi_conn *c, size_t n, int show_recent) {
  const char **colos = wr_xcalloc(n + 1, sizeof(char *));
  size_t nc = 0;
  for (size_t i = 0; i < n; i++)
    if (!c[i].pending || show_recent) colos[nc++] = c[i].colo_name;
  qsort(colos, nc, sizeof(char *), cmp_str);
  size_t cap = 16;
  for (size_t i = 0; i < nc; i++) cap += strlen(colos[i]) + 24;
  char *out = wr_xcalloc(cap, 1);
  size_t o = 0;
  for (size_t i = 0; i < nc;) {
    size_t j = i;
    while (j < nc && strcmp(colos[j], colos[i]) == 0) j++;
    o += (size_t)snprintf(out + o, cap - o, "%s%zux%s", o ? ", " : "", j - i, colos[i]);
    i = j;
  }
  free(colos);
  return out;
}
