/* Leveled logging (STYLE.md 1.13). The level is checked before formatting.
 * Libraries (src/proto) never log; everything else logs through here.
 * Output format follows cloudflared's console format:
 *   2026-11-22T10:00:00Z INF Registered tunnel connection connIndex=0 ...
 * or, after wr_log_set_json(1), cloudflared's JSON format (`--output json`),
 * one object per line:
 *   {"level":"info","time":"2026-11-22T10:00:00Z","message":"Registered ..."} */
#ifndef WR_LOG_H
#define WR_LOG_H
#include <stdarg.h>
#include <stddef.h>

typedef enum wr_log_level {
  WR_LOG_DEBUG = 0,
  WR_LOG_INFO = 1,
  WR_LOG_WARN = 2,
  WR_LOG_ERROR = 3,
  WR_LOG_FATAL = 4,
  WR_LOG_OFF = 5
} wr_log_level;

extern wr_log_level wr_log_min_level;

/* Parses cloudflared's level names (debug, info, warn, error, fatal).
 * Returns 0 on success, WR_ERR_INVAL for an unknown name. */
int wr_log_parse_level(const char *name, wr_log_level *out);
void wr_log_set_level(wr_log_level level);
/* Sends logs to |path| (appending) instead of stderr. Returns 0 or WR_ERR_IO. */
int wr_log_set_file(const char *path);
/* Also appends every line to |path| (cloudflared's --logfile: the terminal
 * keeps its log too); NULL stops. Returns 0 or WR_ERR_IO. */
int wr_log_tee_file(const char *path);
/* 1: JSON lines as above; 0: the console format. */
void wr_log_set_json(int on);

void wr_log_write(wr_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* What a line is about, as cloudflared's management logs classify events
 * (`tail --event`): the connector itself, or a visitor's HTTP request,
 * TCP stream or UDP session. */
typedef enum wr_log_event {
  WR_LOG_EV_CONNECTOR = 0,
  WR_LOG_EV_HTTP = 1,
  WR_LOG_EV_TCP = 2,
  WR_LOG_EV_UDP = 3
} wr_log_event;

void wr_log_event_write(wr_log_level level, wr_log_event event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A second destination for log lines (the connector's management log
 * stream): |fn| gets every line at |min| or above, whatever the console's
 * level, with its event type, time (RFC 3339, UTC) and text. It runs on the
 * thread that logged, so it must be thread-safe and must not log. |min|
 * WR_LOG_OFF or |fn| NULL: no sink. wr_log_min_level becomes the lower of
 * the console's level and |min|, so lines below both are still never
 * formatted. */
typedef void (*wr_log_sink_fn)(void *user, wr_log_level level, wr_log_event event,
                               const char *time, const char *msg);
void wr_log_set_sink(wr_log_sink_fn fn, void *user, wr_log_level min);
void wr_log_vwrite(wr_log_level level, const char *fmt, va_list ap);

/* Copies |in| into |buf| (|size| >= 4 bytes) for one log line or error
 * message: control bytes and DEL become '?', so a hostile name cannot forge
 * lines or terminal output, and a string that does not fit is cut with
 * "...". Returns |buf|. Pure; callable from anywhere. */
const char *wr_log_safe(const char *in, char *buf, size_t size);

#define WR_LOG(level, ...)                                                     \
  do {                                                                         \
    if ((level) >= wr_log_min_level) wr_log_write((level), __VA_ARGS__);       \
  } while (0)
#define WR_LOG_EV(level, ev, ...)                                              \
  do {                                                                         \
    if ((level) >= wr_log_min_level) wr_log_event_write((level), (ev), __VA_ARGS__); \
  } while (0)
#define wr_debug(...) WR_LOG(WR_LOG_DEBUG, __VA_ARGS__)
#define wr_info(...) WR_LOG(WR_LOG_INFO, __VA_ARGS__)
#define wr_warn(...) WR_LOG(WR_LOG_WARN, __VA_ARGS__)
#define wr_error(...) WR_LOG(WR_LOG_ERROR, __VA_ARGS__)

#endif
