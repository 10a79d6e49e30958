/* The TUN ingress; see tun.h. */
#include "edge/tun.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

struct wr_tun {
  int fd;
  uv_poll_t poll;
  wr_router *router;
  wr_router_ingress *in;
  char name[IFNAMSIZ];
  unsigned mtu;
  uint8_t *buf; /* one packet, mtu bytes (and some slack to see oversize ones) */
  size_t cap;
};

static int tun_send(void *user, const uint8_t *pkt, size_t len) {
  wr_tun *t = user;
  ssize_t n = write(t->fd, pkt, len);
  return n == (ssize_t)len ? WR_OK : WR_ERR_IO;
}

static void on_readable(uv_poll_t *p, int status, int events) {
  wr_tun *t = p->data;
  if (status < 0) {
    wr_warn("tun %s: poll: %s", t->name, uv_strerror(status));
    return;
  }
  for (int i = 0; i < WR_TUN_BATCH; i++) {
    ssize_t n = read(t->fd, t->buf, t->cap);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        wr_warn("tun %s: read: %s", t->name, strerror(errno));
      return;
    }
    if (n == 0) return;
    wr_router_input(t->router, t->in, t->buf, (size_t)n);
  }
}

/* Creates (or attaches to) the device. Returns the descriptor or -1. */
static int tun_create(const char *name, char *actual, char *err, size_t errlen) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open /dev/net/tun: %s", strerror(errno));
    return -1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    snprintf(err, errlen, "cannot create TUN device %s: %s%s", name, strerror(errno),
             errno == EPERM ? " (it needs CAP_NET_ADMIN)" : "");
    close(fd);
    return -1;
  }
  snprintf(actual, IFNAMSIZ, "%s", ifr.ifr_name);
  return fd;
}

/* MTU and IFF_UP, through an ordinary socket's interface ioctls. */
static int tun_up(const char *name, unsigned mtu, char *err, size_t errlen) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    snprintf(err, errlen, "socket: %s", strerror(errno));
    return -1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  ifr.ifr_mtu = (int)mtu;
  int rv = -1;
  if (ioctl(s, SIOCSIFMTU, &ifr) < 0)
    snprintf(err, errlen, "setting the MTU of %s to %u: %s", name, mtu, strerror(errno));
  else if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
    snprintf(err, errlen, "reading the flags of %s: %s", name, strerror(errno));
  else {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
      snprintf(err, errlen, "bringing %s up: %s", name, strerror(errno));
    else
      rv = 0;
  }
  close(s);
  return rv;
}

int wr_tun_open(uv_loop_t *loop, const wr_tun_config *cfg, wr_tun **out, char *err,
                size_t errlen) {
  *out = NULL;
  if (errlen) err[0] = '\0';
  unsigned mtu = cfg && cfg->mtu ? cfg->mtu : WR_TUN_MTU_DEFAULT;
  if (!cfg || !cfg->name || !*cfg->name || strlen(cfg->name) >= IFNAMSIZ || strchr(cfg->name, '/') ||
      !cfg->router || mtu < 1280 || mtu > 9000) {
    snprintf(err, errlen, "a TUN device needs a name of 1-15 characters and an MTU of 1280-9000");
    return WR_ERR_INVAL;
  }
  wr_tun *t = wr_xcalloc(1, sizeof(*t));
  t->router = cfg->router;
  t->mtu = mtu;
  t->fd = tun_create(cfg->name, t->name, err, errlen);
  if (t->fd < 0) {
    free(t);
    return WR_ERR_IO;
  }
  if (tun_up(t->name, mtu, err, errlen) != 0) {
    close(t->fd);
    free(t);
    return WR_ERR_IO;
  }
  char iname[IFNAMSIZ + 8];
  snprintf(iname, sizeof(iname), "tun:%s", t->name);
  wr_router_ingress_config icfg = {.name = iname, .account_id = cfg->account_id,
                                   .vnet_id = cfg->vnet_id, .send = tun_send, .user = t};
  int rv = wr_router_ingress_add(cfg->router, &icfg, &t->in);
  if (rv != WR_OK) {
    snprintf(err, errlen, "TUN %s: account %s: %s", t->name, cfg->account_id ? cfg->account_id : "-",
             rv == WR_ERR_NOTFOUND ? "no such virtual network" : wr_strerror(rv));
    close(t->fd);
    free(t);
    return rv;
  }
  t->cap = mtu + 64;
  t->buf = wr_xmalloc(t->cap);
  uv_poll_init(loop, &t->poll, t->fd);
  t->poll.data = t;
  uv_poll_start(&t->poll, UV_READABLE, on_readable);
  *out = t;
  return WR_OK;
}

const char *wr_tun_name(const wr_tun *t) { return t->name; }

static void closed(uv_handle_t *h) {
  wr_tun *t = h->data;
  close(t->fd);
  free(t->buf);
  free(t);
}

void wr_tun_free(wr_tun *t) {
  if (!t) return;
  uv_poll_stop(&t->poll);
  wr_router_ingress_remove(t->router, t->in);
  t->in = NULL;
  uv_close((uv_handle_t *)&t->poll, closed);
}
