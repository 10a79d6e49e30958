#include "lib/log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/err.h"

wr_log_level wr_log_min_level = WR_LOG_INFO;
static FILE *log_out;

static const char *const level_tag[] = {"DBG", "INF", "WRN", "ERR", "FTL"};

int wr_log_parse_level(const char *name, wr_log_level *out) {
  static const struct { const char *name; wr_log_level level; } names[] = {
      {"debug", WR_LOG_DEBUG}, {"info", WR_LOG_INFO},   {"warn", WR_LOG_WARN},
      {"warning", WR_LOG_WARN}, {"error", WR_LOG_ERROR}, {"fatal", WR_LOG_FATAL},
      {"panic", WR_LOG_FATAL}, {"trace", WR_LOG_DEBUG},
  };
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strcasecmp(name, names[i].name) == 0) {
      *out = names[i].level;
      return WR_OK;
    }
  }
  return WR_ERR_INVAL;
}

void wr_log_set_level(wr_log_level level) { wr_log_min_level = level; }

int wr_log_set_file(const char *path) {
  FILE *f = fopen(path, "a");
  if (!f) return WR_ERR_IO;
  setvbuf(f, NULL, _IOLBF, 0);
  if (log_out && log_out != stderr) fclose(log_out);
  log_out = f;
  return WR_OK;
}

void wr_log_vwrite(wr_log_level level, const char *fmt, va_list ap) {
  char ts[32];
  struct timespec now;
  struct tm tm;
  FILE *out = log_out ? log_out : stderr;

  if (level < wr_log_min_level || level > WR_LOG_FATAL) return;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
  /* One fprintf per line keeps lines whole when several threads log. */
  char line[2048];
  int n = vsnprintf(line, sizeof(line), fmt, ap);
  if (n < 0) return;
  fprintf(out, "%s %s %s\n", ts, level_tag[level], line);
}

void wr_log_write(wr_log_level level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wr_log_vwrite(level, fmt, ap);
  va_end(ap);
}

const char *wr_log_safe(const char *in, char *buf, size_t size) {
  size_t i = 0;
  for (; in[i] && i + 4 < size; i++)
    buf[i] = ((unsigned char)in[i] < 0x20 || in[i] == 0x7f) ? '?' : in[i];
  if (in[i]) {
    memcpy(buf + i, "...", 3);
    i += 3;
  }
  buf[i] = '\0';
  return buf;
}
