/* The JSON events of cloudflared's management log stream (cloudflared
 * 2023.7.3 management/events.go), spoken over the /logs WebSocket of the
 * management hostname:
 *   client -> connector  {"type":"start_streaming","filters":{"events":["http"],
 *                          "level":"info","sampling":0.5}}   (filters optional)
 *                        {"type":"stop_streaming"}
 *   connector -> client  {"type":"logs","logs":[{"time":"...","level":"info",
 *                          "message":"...","event":"cloudflared","fields":{...}}]}
 * Levels are debug < info < warn < error; event types cloudflared, http,
 * tcp, udp. A missing level reads as debug and a missing event as
 * cloudflared (Go's omitempty drops the zero values); an unknown name is an
 * error, as in Go's UnmarshalJSON.
 *
 * Pure code over jansson: no I/O, no clock, no randomness (sampling takes
 * the random number from the caller). */
#ifndef WR_PROTO_MGMT_EVENT_H
#define WR_PROTO_MGMT_EVENT_H
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

enum { WR_MGMT_DEBUG = 0, WR_MGMT_INFO = 1, WR_MGMT_WARN = 2, WR_MGMT_ERROR = 3 };
enum { WR_MGMT_EV_CLOUDFLARED = 0, WR_MGMT_EV_HTTP = 1, WR_MGMT_EV_TCP = 2, WR_MGMT_EV_UDP = 3 };
#define WR_MGMT_NEVENTS 4

/* Client event types. */
enum { WR_MGMT_START_STREAMING = 1, WR_MGMT_STOP_STREAMING = 2 };

typedef struct wr_mgmt_filters {
  int level;       /* the lowest level sent; -1: no level filter */
  unsigned events; /* bit (1 << type) per event type asked for; 0: all */
  double sampling; /* fraction of events kept, clamped to [0, 1]; 0 or 1: all */
} wr_mgmt_filters;

/* One log event. Strings are NUL-terminated; |fields| is a JSON object as
 * text, or NULL for none. */
typedef struct wr_mgmt_log {
  const char *time;
  int level;
  const char *message;
  int event;
  const char *fields;
} wr_mgmt_log;

/* Level and event-type names, as cloudflared spells them. The parsers
 * return the value or -1; the namers "" for an unknown value. */
int wr_mgmt_level_parse(const char *s);
const char *wr_mgmt_level_name(int level);
int wr_mgmt_event_parse(const char *s);
const char *wr_mgmt_event_name(int event);

/* No filtering: every level, every event, no sampling. */
void wr_mgmt_filters_none(wr_mgmt_filters *f);

/* Decodes a client event. *type is WR_MGMT_START_STREAMING (|f| filled
 * from its filters, or wr_mgmt_filters_none without) or
 * WR_MGMT_STOP_STREAMING. Returns WR_OK, WR_ERR_PROTO (not JSON, no or an
 * unknown type, a bad filter) or WR_ERR_NOMEM. */
int wr_mgmt_client_event_decode(const char *json, size_t len, int *type, wr_mgmt_filters *f);
/* Encodes a client event; |f| NULL (or no filter set) sends no filters,
 * as cloudflared's tail does without --level/--event/--sample. Returns
 * WR_OK, WR_ERR_INVAL or WR_ERR_NOMEM/WR_ERR_LIMIT (from |out|). */
int wr_mgmt_client_event_encode(int type, const wr_mgmt_filters *f, wr_buf *out);

/* 1 when a log of |level| and |event| passes |f|. |rnd| is a uniform
 * random number in [0, 100): with sampling p the event passes when
 * rnd <= p * 100, as cloudflared's sampler. */
int wr_mgmt_filters_match(const wr_mgmt_filters *f, int level, int event, unsigned rnd);

/* Encodes a "logs" server event with |n| logs. Returns WR_OK, WR_ERR_INVAL
 * (a |fields| that is not a JSON object, a bad level/event) or
 * WR_ERR_NOMEM/WR_ERR_LIMIT. */
int wr_mgmt_logs_encode(const wr_mgmt_log *logs, size_t n, wr_buf *out);

/* Decodes a server event and calls |cb| for each log of a "logs" event
 * (pointers valid during the call; |fields| compact with sorted keys, as
 * Go marshals a map). A non-zero return from |cb| stops and is returned.
 * Returns WR_OK, WR_ERR_PROTO (not JSON, unknown type, a malformed log)
 * or WR_ERR_NOMEM. */
int wr_mgmt_logs_decode(const char *json, size_t len,
                        int (*cb)(void *user, const wr_mgmt_log *log), void *user);

/* One log as cloudflared's tail prints it (a newline ends it):
 *   default: "TIME LEVEL EVENT MESSAGE FIELDS" with FIELDS the JSON object
 *            or null;
 *   json:    the log object, level and event omitted when debug and
 *            cloudflared (Go's omitempty).
 * Returns WR_OK or WR_ERR_NOMEM/WR_ERR_LIMIT. */
int wr_mgmt_log_format(const wr_mgmt_log *log, int json, wr_buf *out);

#endif
