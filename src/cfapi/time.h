/* Go's time.Time as cloudflared holds the API's timestamps: the civil
 * time and the zone offset it was written with, parsed from RFC 3339 and
 * printed in Go's layouts (RFC3339 for tables, RFC3339Nano for JSON and
 * YAML, Time.String() for `tunnel info`). Pure functions, no clock, no
 * allocation. */
#ifndef WR_CFAPI_TIME_H
#define WR_CFAPI_TIME_H
#include <stdint.h>

/* The zero value (all fields 0) is Go's zero time, 0001-01-01T00:00:00Z. */
typedef struct wr_cfapi_time {
  int set;             /* 0: Go's zero time; the fields below are unused */
  int year, mon, day, hour, min, sec;
  uint32_t nsec;
  int off_min;         /* zone offset in minutes east of UTC */
} wr_cfapi_time;

/* Output buffers of the formatters need this many bytes. */
#define WR_CFAPI_TIME_STRLEN 64

/* time.Parse(time.RFC3339, s): "2006-01-02T15:04:05[.frac](Z|±hh:mm)", a
 * ',' also starts the fraction (digits past the ninth are dropped), fields
 * range-checked (day against the month). Returns WR_OK or WR_ERR_PROTO
 * (then *t is Go's zero time). */
int wr_cfapi_time_parse(const char *s, wr_cfapi_time *t);

void wr_cfapi_time_rfc3339(const wr_cfapi_time *t, char out[WR_CFAPI_TIME_STRLEN]); /* time.RFC3339 */
void wr_cfapi_time_nano(const wr_cfapi_time *t, char out[WR_CFAPI_TIME_STRLEN]);    /* time.RFC3339Nano */
/* Time.String(): "2006-01-02 15:04:05.999999999 -0700 MST", the zone
 * name "UTC" for a zero offset, else the offset again. */
void wr_cfapi_time_string(const wr_cfapi_time *t, char out[WR_CFAPI_TIME_STRLEN]);
/* Seconds since 1970-01-01T00:00:00Z (Go's Unix()). */
int64_t wr_cfapi_time_unix(const wr_cfapi_time *t);
/* Go's IsZero: the instant 0001-01-01T00:00:00Z, in any zone. */
int wr_cfapi_time_is_zero(const wr_cfapi_time *t);

#endif
