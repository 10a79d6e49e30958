/* See h3quic.h. */
#include "net/h3quic.h"

#include "lib/err.h"

int wr_h3_quic_write_batch(nghttp3_conn *h3, wr_quic_conn *q) {
  nghttp3_vec vec[16];
  int64_t sid = -1;
  int fin = 0;
  nghttp3_ssize nv = nghttp3_conn_writev_stream(h3, &sid, &fin, vec, 16);
  if (nv < 0) return (int)nv;
  if (sid < 0) return 0;
  size_t taken = 0;
  int rv = WR_OK;
  for (nghttp3_ssize i = 0; i < nv && rv == WR_OK; i++) {
    size_t acc = 0;
    rv = wr_quic_stream_write(q, sid, vec[i].base, vec[i].len, fin && i == nv - 1, &acc);
    taken += acc;
  }
  if (nv == 0 && fin) {
    size_t acc = 0;
    rv = wr_quic_stream_write(q, sid, NULL, 0, 1, &acc);
  }
  /* The QUIC layer keeps its own copy until acked: nghttp3 may let go. */
  nghttp3_conn_add_write_offset(h3, sid, taken);
  if (taken) nghttp3_conn_add_ack_offset(h3, sid, taken);
  if (rv == WR_AGAIN) {
    nghttp3_conn_block_stream(h3, sid); /* until on_stream_writable */
  } else if (rv != WR_OK) {
    nghttp3_conn_shutdown_stream_write(h3, sid); /* reset meanwhile */
  }
  return 1;
}
