/* A device's wg-quick configuration and its JSON form; see device_config.h. */
#include "edge/device_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge/device_policy.h"
#include "edge/wg_key.h"
#include "lib/buf.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/mem.h"
#include "lib/xasprintf.h"

/* The |len| bytes at |h| (followed by more of the string) are a host name's
 * characters: letters, digits, '.' and '-'. */
static int host_ok(const char *h, size_t len) {
  return len > 0 && len <= WR_STORE_HOST_MAX && strspn(h, WR_ASCII_ALNUM ".-") >= len;
}

int wr_device_check_endpoint(const char *ep, char *err, size_t errlen) {
  const char *colon, *port;
  char host[WR_DEVICE_ENDPOINT_MAX + 1];
  uint8_t a6[16];
  size_t hlen;
  long p = 0;
  if (!ep || !*ep || strlen(ep) > WR_DEVICE_ENDPOINT_MAX) goto bad;
  colon = strrchr(ep, ':');
  if (!colon) goto bad;
  port = colon + 1;
  if (!*port || strlen(port) > 5) goto bad;
  for (const char *q = port; *q; q++) {
    if (*q < '0' || *q > '9') goto bad;
    p = p * 10 + (*q - '0');
  }
  if (p < 1 || p > 65535) goto bad;
  hlen = (size_t)(colon - ep);
  if (ep[0] == '[') {
    if (hlen < 3 || ep[hlen - 1] != ']') goto bad;
    memcpy(host, ep + 1, hlen - 2);
    host[hlen - 2] = '\0';
    if (inet_pton(AF_INET6, host, a6) != 1) goto bad;
    return WR_OK;
  }
  if (!host_ok(ep, hlen)) goto bad;
  return WR_OK;
bad:
  snprintf(err, errlen,
           "endpoint \"%.80s\" is not HOST:PORT (e.g. vpn.example.test:51820, 192.0.2.1:51820 or "
           "[2001:db8::1]:51820)",
           ep ? ep : "");
  return WR_ERR_INVAL;
}

int wr_device_endpoint_default(const char *data_dir, char out[WR_DEVICE_ENDPOINT_MAX + 1],
                               char *err, size_t errlen) {
  size_t len = 0;
  char *path = wr_xasprintf("%s/%s", data_dir, WR_DEVICE_ENDPOINT_FILE), *text = NULL, *nl;
  int rv;
  rv = wr_file_read(path, 4096, &text, &len);
  if (rv != WR_OK) {
    free(path);
    return WR_ERR_NOTFOUND;
  }
  if ((nl = strpbrk(text, "\r\n"))) *nl = '\0';
  if (!text[0]) rv = WR_ERR_NOTFOUND;
  else if (wr_device_check_endpoint(text, err, errlen) != WR_OK) {
    size_t l = strlen(err);
    snprintf(err + l, errlen > l ? errlen - l : 0, " (in %s)", path);
    rv = WR_ERR_INVAL;
  } else {
    snprintf(out, WR_DEVICE_ENDPOINT_MAX + 1, "%s", text);
  }
  free(text);
  free(path);
  return rv;
}

/* Appends |net| to the list |*out| (|*len| bytes used, |*cap| allocated). */
static void list_append(char **out, size_t *len, size_t *cap, const char *net) {
  size_t n = strlen(net);
  if (*len + n + 3 > *cap) {
    *cap = (*len + n + 3) * 2;
    *out = wr_xrealloc(*out, *cap);
  }
  if (*len) {
    memcpy(*out + *len, ", ", 2);
    *len += 2;
  }
  memcpy(*out + *len, net, n + 1);
  *len += n;
}

int wr_device_allowed_ips(wr_store *s, const wr_device *d, char **out) {
  wr_ip_route_filter f = {.account_id = d->account_id};
  wr_vnet_filter vf = {.account_id = d->account_id, .is_default = 1};
  wr_ip_route *rows = NULL;
  wr_vnet *v = NULL;
  size_t n = 0, nv = 0, len = 0, cap = 64;
  char vnet[WR_STORE_UUID_LEN + 1] = "";
  int is_default = !d->vnet_id[0], rv;
  *out = NULL;
  /* As the router picks a device's routes: its virtual network's, and for
   * the default network also rows from before virtual networks (""). */
  if (is_default) {
    if ((rv = wr_store_vnet_list(s, &vf, &v, &nv)) != WR_OK) return rv;
    if (nv) snprintf(vnet, sizeof(vnet), "%s", v[0].id);
    free(v);
  } else {
    snprintf(vnet, sizeof(vnet), "%s", d->vnet_id);
  }
  if ((rv = wr_store_ip_route_list(s, &f, &rows, &n)) != WR_OK) return rv;
  *out = wr_xmalloc(cap);
  (*out)[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    int mine = vnet[0] && strcmp(rows[i].vnet_id, vnet) == 0;
    if (!mine && !(is_default && !rows[i].vnet_id[0])) continue;
    if (!wr_device_allows(d, rows[i].network)) continue;
    list_append(out, &len, &cap, rows[i].network);
  }
  free(rows);
  return WR_OK;
}

int wr_device_config(wr_store *s, const wr_device *d, const char *private_key_b64,
                     const char *edge_public_key_b64, const char *endpoint, char **out,
                     char *err, size_t errlen) {
  uint8_t k[WR_WG_KEY_LEN];
  char *allowed = NULL, *text = NULL;
  int rv;
  *out = NULL;
  if ((rv = wr_device_check_endpoint(endpoint, err, errlen)) != WR_OK) return rv;
  if (wr_wg_key_from_b64(edge_public_key_b64, k) != WR_OK ||
      (private_key_b64 && wr_wg_key_from_b64(private_key_b64, k) != WR_OK)) {
    snprintf(err, errlen, "not a WireGuard key");
    return WR_ERR_INVAL;
  }
  if ((rv = wr_device_allowed_ips(s, d, &allowed)) != WR_OK) {
    snprintf(err, errlen, "%s", wr_store_errmsg(s));
    return rv;
  }
  text = wr_xasprintf(
           "# warren-edge device \"%s\" (ID %s)\n"
           "[Interface]\n"
           "%s%s%s"
           "Address = %s/32, %s/128\n"
           /* Packets leave the edge in QUIC datagrams of at most 1280-byte
            * IP packets: wg-quick's default 1420 would lose large UDP and
            * ICMP packets (TCP adapts either way). */
           "MTU = 1280\n"
           "\n"
           "[Peer]\n"
           "PublicKey = %s\n"
           "Endpoint = %s\n"
           "%s%s%s"
           "PersistentKeepalive = %d\n",
           d->name, d->id, private_key_b64 ? "PrivateKey = " : "# PrivateKey: the private key of ",
           private_key_b64 ? private_key_b64 : d->public_key,
           private_key_b64 ? "\n" : ", which stays on the device\n", d->ipv4, d->ipv6,
           edge_public_key_b64, endpoint, allowed[0] ? "AllowedIPs = " : "",
           allowed[0] ? allowed : "# AllowedIPs: none yet (no IP route of its virtual network that its policy allows)",
           "\n", WR_DEVICE_KEEPALIVE_S);
  free(allowed);
  *out = text;
  return WR_OK;
}

static json_t *json_time(int64_t t) {
  char buf[32];
  time_t tt = (time_t)t;
  struct tm tm;
  if (!t || !gmtime_r(&tt, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
    return json_null();
  return json_string(buf);
}

json_t *wr_device_json(const wr_device *d) {
  json_t *allowed = json_array();
  const char *p = d->allowed;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    json_array_append_new(allowed, json_stringn(p, l));
    p += l + (e != NULL);
  }
  return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s?,s:o,s:o,s:o,s:o,s:I,s:I}", "id", d->id, "name",
                   d->name, "public_key", d->public_key, "ipv4", d->ipv4, "ipv6", d->ipv6,
                   "virtual_network_id", d->vnet_id[0] ? d->vnet_id : NULL, "allowed", allowed,
                   "created_at", json_time(d->created_at), "revoked_at", json_time(d->revoked_at),
                   "last_handshake_at", json_time(d->last_handshake), "rx_bytes",
                   (json_int_t)d->rx_bytes, "tx_bytes", (json_int_t)d->tx_bytes);
}
