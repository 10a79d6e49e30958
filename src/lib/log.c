#include "lib/log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/err.h"

wr_log_level wr_log_min_level = WR_LOG_INFO;
static FILE *log_out;
static FILE *log_tee;
static int log_json;
/* The console's (and files') level; wr_log_min_level is the lower of it
 * and the sink's. */
static wr_log_level console_level = WR_LOG_INFO;
static wr_log_sink_fn sink_fn;
static void *sink_user;
static wr_log_level sink_level = WR_LOG_OFF;

static const char *const level_tag[] = {"DBG", "INF", "WRN", "ERR", "FTL"};
static const char *const level_name[] = {"debug", "info", "warn", "error", "fatal"};

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

static void update_gate(void) {
  wr_log_min_level = sink_fn && sink_level < console_level ? sink_level : console_level;
}

void wr_log_set_level(wr_log_level level) {
  console_level = level;
  update_gate();
}

void wr_log_set_sink(wr_log_sink_fn fn, void *user, wr_log_level min) {
  sink_fn = min < WR_LOG_OFF ? fn : NULL;
  sink_user = user;
  sink_level = min;
  update_gate();
}

int wr_log_set_file(const char *path) {
  FILE *f = fopen(path, "a");
  if (!f) return WR_ERR_IO;
  setvbuf(f, NULL, _IOLBF, 0);
  if (log_out && log_out != stderr) fclose(log_out);
  log_out = f;
  return WR_OK;
}

int wr_log_tee_file(const char *path) {
  FILE *f = NULL;
  if (path && !(f = fopen(path, "a"))) return WR_ERR_IO;
  if (f) setvbuf(f, NULL, _IOLBF, 0);
  if (log_tee) fclose(log_tee);
  log_tee = f;
  return WR_OK;
}

void wr_log_set_json(int on) { log_json = on; }

/* |msg| as a JSON string body: quotes, backslashes and control bytes
 * escaped; other bytes as they are. */
static void json_escape(const char *msg, char *out, size_t outlen) {
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)msg; *p && o + 7 < outlen; p++) {
    if (*p == '"' || *p == '\\') {
      out[o++] = '\\';
      out[o++] = (char)*p;
    } else if (*p == '\n') {
      out[o++] = '\\', out[o++] = 'n';
    } else if (*p < 0x20) {
      o += (size_t)snprintf(out + o, outlen - o, "\\u%04x", *p);
    } else {
      out[o++] = (char)*p;
    }
  }
  out[o] = '\0';
}

static void emit(FILE *out, const char *ts, wr_log_level level, const char *line,
                 const char *jline) {
  if (log_json)
    fprintf(out, "{\"level\":\"%s\",\"time\":\"%s\",\"message\":\"%s\"}\n", level_name[level],
            ts, jline);
  else
    fprintf(out, "%s %s %s\n", ts, level_tag[level], line);
}

static void log_vwrite(wr_log_level level, wr_log_event event, const char *fmt, va_list ap) {
  char ts[32];
  struct timespec now;
  struct tm tm;
  FILE *out = log_out ? log_out : stderr;

  if (level < wr_log_min_level || level > WR_LOG_FATAL) return;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
  /* One fprintf per line keeps lines whole when several threads log. */
  char line[2048], jline[6 * sizeof(line)]; /* every byte may become \u00XX */
  int n = vsnprintf(line, sizeof(line), fmt, ap);
  if (n < 0) return;
  if (sink_fn && level >= sink_level) sink_fn(sink_user, level, event, ts, line);
  if (level < console_level) return;
  jline[0] = '\0';
  if (log_json) json_escape(line, jline, sizeof(jline));
  emit(out, ts, level, line, jline);
  if (log_tee) emit(log_tee, ts, level, line, jline);
}

void wr_log_vwrite(wr_log_level level, const char *fmt, va_list ap) {
  log_vwrite(level, WR_LOG_EV_CONNECTOR, fmt, ap);
}

void wr_log_event_write(wr_log_level level, wr_log_event event, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_vwrite(level, event, fmt, ap);
  va_end(ap);
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
