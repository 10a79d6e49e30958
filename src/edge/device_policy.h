/* Device policies: which IP routes a WireGuard device may reach.
 *
 * A device's policy (wr_device.allowed, set with wr_store_device_set_allowed)
 * is a comma-separated list of CIDR networks; "" allows every route of the
 * device's virtual network. A route is allowed when its whole network lies
 * inside (or equals) one of the listed networks: allowing 10.0.0.0/8 allows
 * the routes 10.1.0.0/16 and 10.0.0.0/8, but not 0.0.0.0/0, even though that
 * route also covers 10.x addresses (the device would reach the rest of it).
 *
 * Fails closed: a malformed entry never allows anything (the store only
 * writes canonical lists, so one would come from a damaged database), and a
 * malformed route network is refused by every non-empty policy.
 *
 * Two forms: wr_device_allows parses the text on each call (the CLI, the
 * API, building AllowedIPs); the WireGuard ingress parses a device's policy
 * once into a wr_device_policy and checks routes against that per flow.
 * Pure functions, no allocation. */
#ifndef WR_EDGE_DEVICE_POLICY_H
#define WR_EDGE_DEVICE_POLICY_H

#include "edge/store.h"

/* 1 if |route_network_cidr| is inside (or equal to) one of d->allowed, or
 * d->allowed is empty; 0 otherwise. */
int wr_device_allows(const wr_device *d, const char *route_network_cidr);

/* The same on the policy text alone. */
int wr_device_policy_text_allows(const char *allowed, const char *route_network_cidr);

/* A parsed policy. Every policy the store keeps fits: its text is at most
 * 1023 bytes of distinct entries of at least 4 bytes ("::/0") and a comma. */
#define WR_DEVICE_POLICY_MAX 256
typedef struct wr_device_policy {
  int all;     /* the policy was empty: every route */
  int invalid; /* some entry did not parse: allow nothing (fails closed) */
  size_t n;
  wr_store_cidr nets[WR_DEVICE_POLICY_MAX];
} wr_device_policy;

/* Parses |allowed| (NULL as ""). Never fails: bad text yields invalid = 1. */
void wr_device_policy_parse(const char *allowed, wr_device_policy *out);
/* 1 if |p| allows a route to |network|. */
int wr_device_policy_allows(const wr_device_policy *p, const wr_store_cidr *network);

#endif
