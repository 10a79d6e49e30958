/* What a WireGuard device is told: its wg-quick configuration, and the
 * device as JSON (the API's shape, also `warren-edge device list -o json`).
 *
 * The configuration, as `wg-quick` and the WireGuard apps read it:
 *   [Interface]
 *   PrivateKey = <the device's key, when the edge generated it>
 *   Address = 100.96.0.2/32, fdxx:xxxx:xxxx::2/128
 *   [Peer]
 *   PublicKey = <the edge's, DATA_DIR/wireguard.key>
 *   Endpoint = HOST:PORT
 *   AllowedIPs = <the networks of the live IP routes of the device's virtual
 *                 network that its policy allows (edge/device_policy.h)>
 *   PersistentKeepalive = 25
 * A device that brought its own key gets a comment where PrivateKey goes
 * (its private key never reaches the edge). No DNS line: the edge does not
 * resolve private names for devices. With no route to reach, AllowedIPs is
 * left out and a comment says why. Keepalive 25 s keeps NAT mappings open
 * (wg(8)'s recommendation) so the edge can reach a device behind NAT.
 *
 * AllowedIPs is a snapshot: routes added later need the configuration again
 * (`warren-edge device config`, GET .../devices/{id}?config=true).
 *
 * The endpoint devices dial: an explicit HOST:PORT, else the first line of
 * DATA_DIR/wireguard-endpoint (the operator writes it once). */
#ifndef WR_EDGE_DEVICE_CONFIG_H
#define WR_EDGE_DEVICE_CONFIG_H

#include <jansson.h>
#include <stddef.h>

#include "edge/store.h"

#define WR_DEVICE_KEEPALIVE_S 25
#define WR_DEVICE_ENDPOINT_FILE "wireguard-endpoint"
#define WR_DEVICE_ENDPOINT_MAX 262 /* "[" 253-byte name or IPv6 "]:65535" */

/* Checks HOST:PORT ("vpn.example.test:51820", "192.0.2.1:51820",
 * "[2001:db8::1]:51820"): a host of [A-Za-z0-9.-] or an IP address, a port
 * 1..65535. WR_OK or WR_ERR_INVAL with the reason in |err|. */
int wr_device_check_endpoint(const char *ep, char *err, size_t errlen);

/* The first line of DATA_DIR/wireguard-endpoint into |out|. WR_OK,
 * WR_ERR_NOTFOUND (no file, or it is empty), or WR_ERR_INVAL (not
 * HOST:PORT; |err| says so). */
int wr_device_endpoint_default(const char *data_dir, char out[WR_DEVICE_ENDPOINT_MAX + 1],
                               char *err, size_t errlen);

/* The comma-separated networks the device may reach ("" for none), for
 * AllowedIPs; malloc'd into *out. WR_OK or a store error (message in
 * wr_store_errmsg). */
int wr_device_allowed_ips(wr_store *s, const wr_device *d, char **out);

/* The wg-quick configuration of |d| (malloc'd into *out). |private_key_b64|
 * NULL: the device has its own key. |edge_public_key_b64| and |endpoint|
 * are required. WR_OK, WR_ERR_INVAL (bad endpoint or key; |err|), or a
 * store error (|err| has the store's message). */
int wr_device_config(wr_store *s, const wr_device *d, const char *private_key_b64,
                     const char *edge_public_key_b64, const char *endpoint, char **out,
                     char *err, size_t errlen);

/* The device as a JSON object: id, name, public_key, ipv4, ipv6,
 * virtual_network_id (null: the default), allowed (array of CIDRs; empty:
 * every route), created_at, revoked_at, last_handshake_at (RFC 3339 or
 * null), rx_bytes, tx_bytes. */
json_t *wr_device_json(const wr_device *d);

#endif
