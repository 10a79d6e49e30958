/* Fuzzes the edge-to-edge frame parser (src/proto/peer_frame.c): any bytes,
 * parsed frame after frame. A frame lies inside the input, has a known
 * type, and re-encoding its head (and code) gives back the bytes parsed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/peer_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;
  while (off < size) {
    wr_peer_frame f;
    size_t used = 0;
    int rv = wr_peer_frame_parse(data + off, size - off, &f, &used);
    if (rv == WR_ERR_TRUNC || rv == WR_ERR_PROTO) break;
    if (rv != WR_OK || used > size - off || used != WR_PEER_FRAME_HEAD + f.len) abort();
    if (f.payload != data + off + WR_PEER_FRAME_HEAD) abort();
    uint8_t head[WR_PEER_FRAME_HEAD + 8];
    if (f.type == WR_PEER_RESET || f.type == WR_PEER_STOP) {
      wr_peer_frame_code(head, f.type, f.code);
      if (memcmp(head, data + off, sizeof(head)) != 0) abort();
    } else {
      wr_peer_frame_head(head, f.type, f.len);
      if (memcmp(head, data + off, WR_PEER_FRAME_HEAD) != 0) abort();
    }
    off += used;
  }
  return 0;
}
