/* Prometheus text format writer; see prom.h. */
#include "lib/prom.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Appends |s| with '\\', newline and, when |quote|, '"' escaped: the
 * exposition format's rules for help text (no quote escaping there) and
 * label values. Runs of plain bytes go out in one append. */
static void put_escaped(wr_buf *b, const char *s, int quote) {
  const char *run = s;
  for (; *s; s++) {
    const char *rep = NULL;
    if (*s == '\\') rep = "\\\\";
    else if (*s == '\n') rep = "\\n";
    else if (quote && *s == '"') rep = "\\\"";
    if (!rep) continue;
    wr_buf_append(b, run, (size_t)(s - run));
    wr_buf_append_str(b, rep);
    run = s + 1;
  }
  wr_buf_append(b, run, (size_t)(s - run));
}

void wr_prom_family(wr_buf *b, const char *name, const char *type, const char *help) {
  wr_buf_printf(b, "# HELP %s ", name);
  put_escaped(b, help, 0);
  wr_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

static void put_name(wr_buf *b, const char *name, const char *const *labels) {
  wr_buf_append_str(b, name);
  if (!labels || !labels[0]) return;
  wr_buf_append_str(b, "{");
  for (size_t i = 0; labels[i] && labels[i + 1]; i += 2) {
    wr_buf_printf(b, "%s%s=\"", i ? "," : "", labels[i]);
    put_escaped(b, labels[i + 1], 1);
    wr_buf_append_str(b, "\"");
  }
  wr_buf_append_str(b, "}");
}

void wr_prom_u64(wr_buf *b, const char *name, const char *const *labels, uint64_t v) {
  put_name(b, name, labels);
  wr_buf_printf(b, " %" PRIu64 "\n", v);
}

void wr_prom_f64(wr_buf *b, const char *name, const char *const *labels, double v) {
  put_name(b, name, labels);
  if (isnan(v)) wr_buf_append_str(b, " NaN\n");
  else if (isinf(v)) wr_buf_append_str(b, v > 0 ? " +Inf\n" : " -Inf\n");
  else wr_buf_printf(b, " %.15g\n", v);
}

/* ---- the process collector ---------------------------------------------- */

typedef struct proc_stats {
  double cpu_seconds;
  double rss_bytes;
  double vsize_bytes;
  double open_fds;
} proc_stats;

static void read_proc(proc_stats *ps) {
  memset(ps, 0, sizeof(*ps));
  FILE *f = fopen("/proc/self/stat", "r");
  if (f) {
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    /* Fields after the ")" that ends the command name: state is field 3;
     * utime 14, stime 15, vsize 23, rss 24 (pages). */
    char *p = strrchr(buf, ')');
    if (p) {
      unsigned long utime = 0, stime = 0, vsize = 0;
      long rss = 0;
      if (sscanf(p + 2,
                 "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
                 "%*u %lu %ld",
                 &utime, &stime, &vsize, &rss) == 4) {
        long hz = sysconf(_SC_CLK_TCK);
        ps->cpu_seconds = (double)(utime + stime) / (double)(hz > 0 ? hz : 100);
        ps->vsize_bytes = (double)vsize;
        ps->rss_bytes = (double)rss * (double)sysconf(_SC_PAGESIZE);
      }
    }
  }
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
      if (e->d_name[0] != '.') ps->open_fds++;
    closedir(d);
    ps->open_fds--; /* the directory stream itself */
  }
}

void wr_prom_counter(wr_buf *b, const char *name, const char *help, uint64_t v) {
  wr_prom_family(b, name, "counter", help);
  wr_prom_u64(b, name, NULL, v);
}

void wr_prom_gauge(wr_buf *b, const char *name, const char *help, uint64_t v) {
  wr_prom_family(b, name, "gauge", help);
  wr_prom_u64(b, name, NULL, v);
}

void wr_prom_by_label(wr_buf *b, const char *name, const char *type, const char *help,
                      const char *label, const wr_prom_series *s, size_t n) {
  wr_prom_family(b, name, type, help);
  for (size_t i = 0; i < n; i++)
    wr_prom_u64(b, name, (const char *const[]){label, s[i].value, NULL}, s[i].v);
}

void wr_prom_process(wr_buf *b, double start_time) {
  proc_stats ps;
  read_proc(&ps);
  const struct {
    const char *name, *type, *help;
    double v;
  } fams[] = {
      {"process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
       ps.cpu_seconds},
      {"process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", ps.rss_bytes},
      {"process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", ps.vsize_bytes},
      {"process_open_fds", "gauge", "Number of open file descriptors.", ps.open_fds},
      {"process_start_time_seconds", "gauge",
       "Start time of the process since unix epoch in seconds.", start_time},
  };
  for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
    wr_prom_family(b, fams[i].name, fams[i].type, fams[i].help);
    wr_prom_f64(b, fams[i].name, NULL, fams[i].v);
  }
}
