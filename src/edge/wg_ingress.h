/* The WireGuard ingress of the router (`warren-edge run --wireguard-listen
 * ADDR`): standard WireGuard clients (wg-quick, the apps, wireguard-go)
 * connect to one UDP port of the edge and reach the IP routes of their
 * device's account and virtual network. The protocol is proto/wg_device.h
 * (user space; no kernel WireGuard anywhere); this module gives it a
 * socket on the edge's loop, a clock, and the devices of the store.
 *
 * Peers are the store's active devices (edge/store.h, wr_device): the
 * device list is read every |reload_ms| (500 ms), so `warren-edge device
 * add` in another process takes effect within that, and `device revoke`
 * cuts the device off as fast: its keys are wiped, its router ingress (and
 * with it its UDP/ICMP flows and TCP connections) removed, so its next
 * packet finds no session. Each device is one router ingress (name
 * "wg:NAME") of its account and virtual network whose send function
 * encrypts to the device's current endpoint (roaming: the address of its
 * last authenticated packet). The edge's ICMP errors come from the
 * packet's destination (the router's default), since a client drops
 * packets from sources outside its AllowedIPs.
 *
 * Cryptokey routing: a decrypted packet whose source is not the device's
 * assigned IPv4 or IPv6 address is dropped (counted as "spoofed"). Policy:
 * the router's policy hook refuses routes outside the device's allowed
 * networks (edge/device_policy.h): the client gets ICMP administratively
 * prohibited and the edge logs the refusal (at most once a second per
 * device).
 *
 * Bad input: junk on the port is dropped before any allocation (the
 * receive buffer is the ingress's own); under a handshake flood the
 * protocol answers with cookies instead of DH, and limits each source's
 * handshakes a second (proto/wg_device.h). What the edge saw of each
 * device (last handshake, bytes) goes to the store every few seconds
 * (wr_store_device_seen), for `device list`.
 *
 * Everything runs on the loop thread. */
#ifndef WR_EDGE_WG_INGRESS_H
#define WR_EDGE_WG_INGRESS_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "edge/router.h"
#include "edge/store.h"
#include "proto/wg_device.h"

#define WR_WG_INGRESS_RELOAD_MS 500
#define WR_WG_INGRESS_SEEN_MS 5000

typedef struct wr_wg_ingress wr_wg_ingress;

typedef struct wr_wg_ingress_config {
  uv_loop_t *loop;               /* required */
  wr_store *store;               /* required: the devices */
  struct wr_store_async *async;  /* optional: the periodic reloads and the writes of what
                                  * devices did run on this store thread (the first
                                  * read, at start, on the caller's) */
  wr_router *router;             /* required; the ingress installs its policy hook */
  const struct sockaddr *listen; /* required: the UDP address */
  const uint8_t *private_key;    /* required: the edge's 32-byte static key */
  uint64_t reload_ms;            /* 0: WR_WG_INGRESS_RELOAD_MS */
  unsigned cookie_threshold;     /* as wr_wg_config; 0: the default */
  uint64_t rekey_responder_ms;   /* as wr_wg_config's (in ms); 0: the default */
} wr_wg_ingress_config;

/* Ingress drops beyond the protocol's own (wr_wg_drop). */
enum wr_wg_ingress_drop {
  WR_WG_INGRESS_DROP_SPOOFED = 0, /* inner source not the device's address */
  WR_WG_INGRESS_DROP_POLICY,      /* route outside the device's policy */
  WR_WG_INGRESS_DROP_SEND,        /* the socket refused a datagram */
  WR_WG_INGRESS_DROP_NO_ENDPOINT, /* a reply for a device never heard from */
  WR_WG_INGRESS_NDROPS
};
const char *wr_wg_ingress_drop_name(enum wr_wg_ingress_drop d);

typedef struct wr_wg_ingress_stats {
  uint64_t devices;              /* active devices (peers) */
  uint64_t devices_online;       /* with a session made in the last 180 s */
  uint64_t reloads;
  uint64_t drops[WR_WG_INGRESS_NDROPS];
} wr_wg_ingress_stats;

/* Binds the socket, loads the devices and starts. Returns WR_OK,
 * WR_ERR_INVAL, WR_ERR_IO (cannot bind; |err| says why) or WR_ERR_STORE. */
int wr_wg_ingress_new(const wr_wg_ingress_config *cfg, wr_wg_ingress **out, char *err,
                      size_t errlen);
/* The bound address as "IP:PORT" (port 0 resolved). */
const char *wr_wg_ingress_addr(const wr_wg_ingress *g);
/* Reads the devices now (also done every reload_ms). */
void wr_wg_ingress_reload(wr_wg_ingress *g);
/* Saves what it saw of the devices, removes every ingress, wipes the keys,
 * closes the socket and timer; the memory goes when libuv released them
 * (run the loop). NULL: no-op. */
void wr_wg_ingress_free(wr_wg_ingress *g);

const wr_wg_ingress_stats *wr_wg_ingress_get_stats(wr_wg_ingress *g);
/* The protocol's counters (handshakes, cookies, bytes, drops by reason). */
const wr_wg_stats *wr_wg_ingress_wg_stats(const wr_wg_ingress *g);

#endif
