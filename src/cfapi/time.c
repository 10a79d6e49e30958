/* RFC 3339 timestamps as Go parses and prints them. See time.h. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfapi/time.h"
#include "lib/err.h"

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in(int y, int m) {
  static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : d[m - 1];
}

/* Matches |layout| at *pp: each run of 'D' is a fixed-width decimal field
 * stored in the next |f| slot, any other byte must appear as is. Advances
 * *pp on success; returns 0 or -1. */
static int scan(const char **pp, const char *layout, int *f) {
  const char *p = *pp;
  int n = 0;
  for (const char *l = layout; *l; l++, p++) {
    if (*l != 'D') {
      if (*p != *l) return -1;
      continue;
    }
    if (!isdigit((unsigned char)*p)) return -1;
    if (l == layout || l[-1] != 'D') f[n] = 0;
    f[n] = f[n] * 10 + (*p - '0');
    if (l[1] != 'D') n++;
  }
  *pp = p;
  return 0;
}

/* ".123" or ",123": nanoseconds, digits past the ninth dropped. */
static int scan_frac(const char **pp, uint32_t *nsec) {
  const char *p = *pp + 1;
  int n = 0;
  if (!isdigit((unsigned char)*p)) return -1;
  for (; isdigit((unsigned char)*p); p++, n++)
    if (n < 9) *nsec = *nsec * 10 + (uint32_t)(*p - '0');
  for (; n < 9; n++) *nsec *= 10;
  *pp = p;
  return 0;
}

/* "Z" or "±hh:mm" (hh <= 23, mm <= 59). */
static int scan_zone(const char **pp, int *off_min) {
  int hm[2];
  char sign = **pp;
  if (sign == 'Z') {
    (*pp)++;
    return 0;
  }
  if (sign != '+' && sign != '-') return -1;
  (*pp)++;
  if (scan(pp, "DD:DD", hm) || hm[0] > 23 || hm[1] > 59) return -1;
  *off_min = (sign == '-' ? -1 : 1) * (hm[0] * 60 + hm[1]);
  return 0;
}

static int civil_ok(const wr_cfapi_time *t) {
  return t->mon >= 1 && t->mon <= 12 && t->day >= 1 && t->day <= days_in(t->year, t->mon) && t->hour <= 23 &&
         t->min <= 59 && t->sec <= 59;
}

int wr_cfapi_time_parse(const char *s, wr_cfapi_time *t) {
  const char *p = s;
  int f[6];
  memset(t, 0, sizeof(*t));
  if (scan(&p, "DDDD-DD-DDTDD:DD:DD", f)) goto bad;
  t->year = f[0], t->mon = f[1], t->day = f[2], t->hour = f[3], t->min = f[4], t->sec = f[5];
  if ((*p == '.' || *p == ',') && scan_frac(&p, &t->nsec)) goto bad;
  if (scan_zone(&p, &t->off_min) || *p || !civil_ok(t)) goto bad;
  t->set = 1;
  return WR_OK;
bad:
  memset(t, 0, sizeof(*t));
  return WR_ERR_PROTO;
}

static void zone_colon(const wr_cfapi_time *t, char *out, size_t cap) {
  int o = t->off_min;
  if (o == 0) snprintf(out, cap, "Z");
  else snprintf(out, cap, "%c%02d:%02d", o < 0 ? '-' : '+', abs(o) / 60, abs(o) % 60);
}

/* ".5", ".123456789": the fraction without trailing zeros ("" for none). */
static void frac(uint32_t nsec, char *out, size_t cap) {
  char d[16];
  if (!nsec) {
    out[0] = '\0';
    return;
  }
  snprintf(d, sizeof(d), "%09u", nsec % 1000000000u);
  for (int i = 8; i > 0 && d[i] == '0'; i--) d[i] = '\0';
  snprintf(out, cap, ".%.9s", d);
}

static const wr_cfapi_time zero_time = {0, 1, 1, 1, 0, 0, 0, 0, 0};

/* Formats into a roomy buffer, then copies at most 63 bytes to |out|
 * (the compiler cannot see that the fields are in range). */
#define FMT64(out, ...)                                   \
  do {                                                    \
    char tmp_[192];                                       \
    snprintf(tmp_, sizeof(tmp_), __VA_ARGS__);            \
    snprintf((out), WR_CFAPI_TIME_STRLEN, "%.63s", tmp_); \
  } while (0)

void wr_cfapi_time_rfc3339(const wr_cfapi_time *t, char out[WR_CFAPI_TIME_STRLEN]) {
  char z[16];
  if (!t->set) t = &zero_time;
  zone_colon(t, z, sizeof(z));
  FMT64(out, "%04d-%02d-%02dT%02d:%02d:%02d%s", t->year, t->mon, t->day, t->hour, t->min, t->sec, z);
}

void wr_cfapi_time_nano(const wr_cfapi_time *t, char out[WR_CFAPI_TIME_STRLEN]) {
  char z[16], f[16];
  if (!t->set) t = &zero_time;
  zone_colon(t, z, sizeof(z));
  frac(t->nsec, f, sizeof(f));
  FMT64(out, "%04d-%02d-%02dT%02d:%02d:%02d%s%s", t->year, t->mon, t->day, t->hour, t->min, t->sec, f, z);
}

void wr_cfapi_time_string(const wr_cfapi_time *t, char out[WR_CFAPI_TIME_STRLEN]) {
  char f[16], off[16];
  if (!t->set) t = &zero_time;
  frac(t->nsec, f, sizeof(f));
  int o = t->off_min;
  snprintf(off, sizeof(off), "%c%02d%02d", o < 0 ? '-' : '+', abs(o) / 60, abs(o) % 60);
  /* A zero offset reads as UTC (Go's UTC or a Local that is UTC); other
   * offsets come from a FixedZone without a name, printed as the offset. */
  FMT64(out, "%04d-%02d-%02d %02d:%02d:%02d%s %s %s", t->year, t->mon, t->day, t->hour, t->min, t->sec, f, off,
        o == 0 ? "UTC" : off);
}

int64_t wr_cfapi_time_unix(const wr_cfapi_time *t) {
  if (!t->set) t = &zero_time;
  /* days from civil (Howard Hinnant's algorithm), then the offset. */
  int64_t y = t->year - (t->mon <= 2);
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (t->mon + (t->mon > 2 ? -3 : 9)) + 2) / 5 + t->day - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = era * 146097 + doe - 719468;
  return days * 86400 + t->hour * 3600 + t->min * 60 + t->sec - (int64_t)t->off_min * 60;
}

int wr_cfapi_time_is_zero(const wr_cfapi_time *t) {
  return !t->set || (wr_cfapi_time_unix(t) == wr_cfapi_time_unix(&zero_time) && t->nsec == 0);
}
