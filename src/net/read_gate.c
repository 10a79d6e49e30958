/* Reading a libuv stream exactly while wanted. See read_gate.h. */
#include "net/read_gate.h"

int wr_read_gate(uv_stream_t *s, int reading, int want, uv_alloc_cb alloc_cb, uv_read_cb read_cb) {
  if (want && !reading) return uv_read_start(s, alloc_cb, read_cb) == 0;
  if (!want && reading) uv_read_stop(s);
  return want && reading;
}
