/* Sending kept trailers (proto/fields.h) on an nghttp2 session: the
 * connector's HTTP/2 transport and the edge's HTTP/2 visitor front both end
 * a response this way. */
#ifndef WR_NET_H2TRAILER_H
#define WR_NET_H2TRAILER_H
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "proto/fields.h"

/* nghttp2_submit_trailer of |t| on stream |id|: a HEADERS frame with
 * END_STREAM after the stream's DATA. Callable from a data source's read
 * callback (which then sets NGHTTP2_DATA_FLAG_NO_END_STREAM). Returns 0 or
 * the nghttp2 error. */
int wr_h2_submit_trailer(nghttp2_session *s, int32_t id, const wr_fields *t);

#endif
