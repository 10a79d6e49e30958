/* Writing the Prometheus text exposition format, version 0.0.4, the format
 * the connector's and the edge's --metrics servers answer /metrics with:
 *
 *   # HELP name help text
 *   # TYPE name counter|gauge
 *   name{label="value",...} 123
 *
 * Help text escapes '\' and newline; label values escape '\', '"' and
 * newline, so any byte string (a tunnel name, a location) yields a valid
 * line. Names and label names are the caller's constants and are not
 * checked. Counters end in _total by convention (the caller's names do).
 *
 * Output goes to a wr_buf; a full buffer (its maximum reached) silently
 * drops the rest, so the caller bounds what it renders (e.g. the number of
 * labelled series) rather than checking every call. No call allocates
 * beyond the buffer's own growth. */
#ifndef WR_LIB_PROM_H
#define WR_LIB_PROM_H
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* The Content-Type of a /metrics answer. */
#define WR_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Starts a metric family: its # HELP and # TYPE lines. |type| is "counter"
 * or "gauge". */
void wr_prom_family(wr_buf *b, const char *name, const char *type, const char *help);

/* One sample line. |labels| is NULL or a NULL-terminated list of
 * name, value, name, value, ... (values are escaped here). */
void wr_prom_u64(wr_buf *b, const char *name, const char *const *labels, uint64_t v);
/* The same for a floating-point value: shortest round-trip-ish decimal
 * ("%.15g"), NaN as "NaN" and infinities as "+Inf"/"-Inf". */
void wr_prom_f64(wr_buf *b, const char *name, const char *const *labels, double v);

/* A whole family of one unlabelled sample: its # HELP and # TYPE lines,
 * then the sample. */
void wr_prom_counter(wr_buf *b, const char *name, const char *help, uint64_t v);
void wr_prom_gauge(wr_buf *b, const char *name, const char *help, uint64_t v);

/* One series of a family split by a single label: the label's value (the
 * caller's string, escaped when written) and the sample. */
typedef struct wr_prom_series {
  const char *value;
  uint64_t v;
} wr_prom_series;

/* A whole family split by the one label |label|: # HELP and # TYPE, then
 * the |n| series of |s| in order, zeros too (so that rate() over a series
 * works from the first scrape). */
void wr_prom_by_label(wr_buf *b, const char *name, const char *type, const char *help,
                      const char *label, const wr_prom_series *s, size_t n);
#define WR_PROM_NSERIES(a) (sizeof(a) / sizeof((a)[0]))

/* The standard process collector's families (the names Prometheus' client
 * libraries use), read from /proc/self: process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds and process_start_time_seconds (|start_time|, Unix
 * seconds). Figures that cannot be read are written as 0. */
void wr_prom_process(wr_buf *b, double start_time);

#endif
