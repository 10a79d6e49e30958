/* The TUN ingress of the router (`warren-edge run --tun NAME`): a Linux TUN
 * device (IFF_TUN | IFF_NO_PI: every read and write is one bare IPv4 or
 * IPv6 packet) whose packets go to the router as the clients of one
 * account's virtual network, and whose replies the router writes back.
 *
 * The device is created (or attached to, if it exists and is a TUN device
 * nobody holds), given its MTU (default 1280: a packet plus the datagram
 * suffix always fits one QUIC DATAGRAM frame) and brought up. Addresses
 * and routes are the operator's: e.g.
 *     ip route add 10.99.0.0/24 dev wr0
 *     ip -6 route add fd99::/64 dev wr0
 * send those networks through the edge. Creating a device needs
 * CAP_NET_ADMIN.
 *
 * Reads run on the loop (uv_poll on the non-blocking descriptor), at most
 * a batch per wake-up so one busy device cannot starve the loop. Writes
 * are immediate; a full device queue drops the packet (counted by the
 * router as "send"). Everything runs on the loop thread. */
#ifndef WR_EDGE_TUN_H
#define WR_EDGE_TUN_H
#include <stddef.h>

#include <uv.h>

#include "edge/router.h"

#define WR_TUN_MTU_DEFAULT 1280
#define WR_TUN_BATCH 64

typedef struct wr_tun wr_tun;

struct wr_tun_config {
  const char *name;       /* required: device name, at most 15 bytes */
  unsigned mtu;           /* 0: WR_TUN_MTU_DEFAULT; 1280..9000 */
  wr_router *router;      /* required */
  const char *account_id; /* required: whose routes the clients reach */
  const char *vnet_id;    /* NULL: the account's default virtual network */
};
typedef struct wr_tun_config wr_tun_config;

/* Creates/attaches the device, brings it up and starts reading. Returns
 * WR_OK, WR_ERR_INVAL (bad name or MTU), WR_ERR_IO (no /dev/net/tun, no
 * permission, ioctl failed; |err| says which) or what
 * wr_router_ingress_add returns. */
int wr_tun_open(uv_loop_t *loop, const wr_tun_config *cfg, wr_tun **out, char *err,
                size_t errlen);
/* The device's name as the kernel gave it. */
const char *wr_tun_name(const wr_tun *t);
/* Stops reading, removes the ingress from the router, closes the device
 * (which disappears unless it was persistent); the memory goes when libuv
 * released the poll handle. NULL: no-op. */
void wr_tun_free(wr_tun *t);

#endif
