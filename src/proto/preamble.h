/* Stream preambles of the QUIC transport (protocol.md 4.1, 5.1). Sans-I/O.
 *
 * Every stream the edge opens starts with a 6-byte signature that says what
 * the rest of the stream is:
 *   data stream: 0A 36 CD 12 A1 3E, then 2 version bytes ("01"), then a framed
 *                ConnectRequest (and the connector answers with the same 8
 *                bytes before its ConnectResponse);
 *   RPC stream:  52 BB 82 5C DB 65, no version, then Cap'n Proto RPC frames.
 * cloudflared resets a stream whose first 6 bytes are anything else. */
#ifndef WR_PREAMBLE_H
#define WR_PREAMBLE_H
#include <stddef.h>
#include <stdint.h>

#define WR_PREAMBLE_SIG_LEN 6
#define WR_PREAMBLE_DATA_LEN 8 /* signature + 2 version bytes */
#define WR_PREAMBLE_RPC_LEN 6  /* signature only */

/* Positive results of wr_preamble_classify(); they never collide with the
 * error space of lib/err.h (which is <= 0). */
enum wr_preamble_kind {
  WR_PREAMBLE_DATA = 1,
  WR_PREAMBLE_RPC = 2
};

extern const uint8_t wr_preamble_data_sig[WR_PREAMBLE_SIG_LEN];
extern const uint8_t wr_preamble_rpc_sig[WR_PREAMBLE_SIG_LEN];
/* The version cloudflared 2023.7.3 writes: ASCII "01". */
extern const uint8_t wr_preamble_version[2];

/* Classifies the first |len| bytes of a stream.
 * Returns WR_PREAMBLE_DATA (and *consumed = 8; |version|, if not NULL,
 * receives the two version bytes, which are not checked because cloudflared
 * accepts any), WR_PREAMBLE_RPC (*consumed = 6), WR_AGAIN if the bytes seen so
 * far are a prefix of a valid preamble and more are needed (*consumed = 0), or
 * WR_ERR_PROTO as soon as the bytes cannot start either signature (the caller
 * resets the stream with error code 0, as cloudflared does). |p| may be NULL
 * only if |len| is 0. */
int wr_preamble_classify(const uint8_t *p, size_t len, size_t *consumed,
                         uint8_t version[2]);

/* Writes the preamble of |kind| (data: signature + "01"; RPC: signature).
 * Returns the number of bytes written (8 or 6), WR_ERR_LIMIT if |cap| is too
 * small, or WR_ERR_INVAL for an unknown |kind|. */
int wr_preamble_write(enum wr_preamble_kind kind, uint8_t *out, size_t cap);

#endif
