/* Edge side of connector connections; see tunnel_server.h. */
#include "edge/tunnel_server.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/hash.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/addr.h"
#include "proto/rpc_session.h"
#include "proto/tunnelrpc.h"
#include "edge/cluster.h"
#include "edge/store_async.h"
#include "edge/tunnel_transport.h"

#define CONTROL_SID 0
/* Streams the edge opens are server-initiated bidi streams: id & 3 == 1. */
#define IS_EDGE_STREAM(sid) (((sid)&3) == 1)

enum { EC_NEW = 0, EC_REGISTERED, EC_UNREGISTERED };
#define CONN_ID_BUCKETS 1024

/* The server's record of one connector connection, whatever its transport. */
typedef struct wr_tunnel_conn edge_conn;
typedef struct reg_job reg_job;

/* A data stream the edge opened. Owned by the tunnel server: it lives from
 * wr_tunnel_server_open_stream until QUIC closes the stream (or the
 * connection dies); |user| is the owner, NULL once abandoned. */
struct wr_tunnel_stream {
  wr_tunnel_stream *prev, *next; /* in ec->streams */
  edge_conn *ec;
  int64_t sid;
  void *sh; /* the transport's handle */
  wr_tunnel_stream_callbacks cbs;
  void *user;
  int write_done; /* FIN queued or RESET_STREAM sent */
  int read_done;  /* FIN or RESET_STREAM received, or STOP_SENDING sent */
};

struct wr_tunnel_conn {
  edge_conn *next;
  wr_tunnel_server *ts;
  const wr_tunnel_transport *tr;
  void *t;             /* the transport's connection */
  wr_quic_conn *quic;  /* QUIC only (datagrams); NULL on HTTP/2 */
  wr_rpc_session *rpc;   /* control stream session */
  int state;
  int control_fin_sent;
  char conn_id[WR_STORE_UUID_LEN + 1];
  struct wr_tunnel_conn *id_next; /* chain in ts->by_id while registered */
  struct wr_tunnel_conn *tunnel_next; /* chain in ts->by_tunnel while registered */
  uint64_t seq;        /* creation order: chains keep ts->conns's order */
  int indexed;
  char tunnel_id[WR_STORE_UUID_LEN + 1];
  char account_id[WR_STORE_ID_LEN + 1];
  char client_id[WR_STORE_UUID_LEN + 1];
  unsigned conn_index;
  int datagram_v3; /* announced support_datagram_v3_2 */
  wr_tunnel_stream *streams; /* open data streams, newest first */
  size_t nstreams;
  reg_job *reg;              /* a registration on the store thread, or NULL */
};

struct wr_tunnel_server {
  wr_store *store;
  wr_store_async *async; /* registration's store calls; NULL: on the loop */
  char *location;
  char *actor;
  edge_conn *conns; /* every served connection (any transport), newest first */
  /* Registered connections by conn_id: the router looks its flows' connection
   * up for every packet it sends, so this must not walk every connection.
   * The ids are random UUIDs made by the store, so a plain hash spreads them. */
  edge_conn *by_id[CONN_ID_BUCKETS];
  /* The same connections by tunnel id: every visitor request picks one of
   * its tunnel's connections, and with a thousand tunnels on the edge a walk
   * over every connection per request was most of the request's cost. Each
   * chain is newest first, as ts->conns. */
  edge_conn *by_tunnel[CONN_ID_BUCKETS];
  size_t nregistered;
  uint64_t next_seq;
  unsigned rr;      /* round robin among equally loaded connections */
  unsigned max_connectors;
  unsigned max_conns_per_connector;
  uint64_t register_timeout_ms;
  unsigned max_unregistered, max_unregistered_per_source;
  uv_timer_t *sweep; /* the deleted-tunnel sweeper, or NULL */
  int64_t swept_at;  /* Unix seconds of the last sweep (start: creation) */
  wr_tunnel_server_stats stats; /* for --metrics */
  wr_tunnel_datagram_fn on_datagram; /* the router's, or NULL */
  void *datagram_user;
  char edge_id[WR_STORE_UUID_LEN + 1]; /* "" alone on its store */
  const wr_tunnel_forwarder *fw;
  void *fw_user;
};

/* ---- helpers ------------------------------------------------------------- */

static size_t id_bucket(const char *id) { return wr_hash_str(id) % CONN_ID_BUCKETS; }

/* Tunnel ids compare case-insensitively (matches()), so they hash so. */
static size_t tunnel_bucket(const char *id) { return wr_hash_str_nocase(id) % CONN_ID_BUCKETS; }

/* Indexes a connection that just registered: by conn id, and by tunnel id
 * after the older connections of its chain (creation order, newest first). */
static void index_add(edge_conn *ec) {
  wr_tunnel_server *ts = ec->ts;
  edge_conn **head = &ts->by_id[id_bucket(ec->conn_id)];
  ec->id_next = *head;
  *head = ec;
  edge_conn **pp = &ts->by_tunnel[tunnel_bucket(ec->tunnel_id)];
  while (*pp && (*pp)->seq > ec->seq) pp = &(*pp)->tunnel_next;
  ec->tunnel_next = *pp;
  *pp = ec;
  ts->nregistered++;
  ec->indexed = 1;
}

static void index_remove(edge_conn *ec) {
  if (!ec->indexed) return;
  wr_tunnel_server *ts = ec->ts;
  for (edge_conn **pp = &ts->by_id[id_bucket(ec->conn_id)]; *pp; pp = &(*pp)->id_next) {
    if (*pp == ec) {
      *pp = ec->id_next;
      break;
    }
  }
  for (edge_conn **pp = &ts->by_tunnel[tunnel_bucket(ec->tunnel_id)]; *pp;
       pp = &(*pp)->tunnel_next) {
    if (*pp == ec) {
      *pp = ec->tunnel_next;
      break;
    }
  }
  ts->nregistered--;
  ec->indexed = 0;
}

/* The first registered connection that may be of |tunnel_id|: walk on with
 * tunnel_next and check matches(). */
static edge_conn *tunnel_chain(const wr_tunnel_server *ts, const char *tunnel_id) {
  return ts->by_tunnel[tunnel_bucket(tunnel_id)];
}

static int ct_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  /* Length is not secret (cloudflared secrets are 32 bytes); the bytes are. */
  if (alen != blen) return 0;
  uint8_t d = 0;
  for (size_t i = 0; i < alen; i++) d |= a[i] ^ b[i];
  return d == 0;
}

/* Appends |s| to a JSON string body in |out| (bounded), dropping what JSON
 * would need escaped (features are plain tokens). */
static void json_features(const wr_tunnelrpc_client_info *ci, char *out, size_t outlen) {
  size_t o = 0;
  if (outlen < 3) return;
  out[o++] = '[';
  for (size_t i = 0; i < ci->nfeatures; i++) {
    const wr_tunnelrpc_text *f = &ci->features[i];
    if (o + f->len + 4 >= outlen) break;
    if (i) out[o++] = ',';
    out[o++] = '"';
    for (size_t j = 0; j < f->len; j++) {
      unsigned char ch = (unsigned char)f->ptr[j];
      if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') out[o++] = (char)ch;
    }
    out[o++] = '"';
  }
  out[o++] = ']';
  out[o] = '\0';
}

/* cloudflared HEAD speaks datagram v3 exactly when it sends this feature
 * (it sends support_datagram_v2 as well). */
static int has_feature(const wr_tunnelrpc_client_info *ci, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < ci->nfeatures; i++)
    if (ci->features[i].len == n && memcmp(ci->features[i].ptr, name, n) == 0) return 1;
  return 0;
}

static void copy_text(char *dst, size_t dstlen, const char *s, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < len && o + 1 < dstlen; i++) {
    unsigned char ch = (unsigned char)s[i];
    dst[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
  }
  dst[o] = '\0';
}

/* What the store records of a connection's registration or its end: its
 * audit row, and (at the end) its row closed. Filled on the loop, written
 * by store_write, on the store thread or (without one) on the loop. */
typedef struct store_note {
  char actor[64];
  char account_id[WR_STORE_ID_LEN + 1];
  char tunnel_id[WR_STORE_UUID_LEN + 1];
  char conn_id[WR_STORE_UUID_LEN + 1];
  const char *action;
  int close_row;
  char detail[512];
  char errmsg[WR_STORE_ERRMSG_MAX]; /* the first failure, for the loop's log */
  wr_store *loop_store; /* written there if the store thread stops first */
} store_note;

static void note_fill(store_note *n, const wr_tunnel_server *ts, const char *conn_id,
                      unsigned conn_index, const char *client_id, const char *account_id,
                      const char *tunnel_id, const char *action, const char *why) {
  memset(n, 0, sizeof(*n));
  snprintf(n->actor, sizeof(n->actor), "%s", ts->actor);
  snprintf(n->account_id, sizeof(n->account_id), "%s", account_id);
  snprintf(n->tunnel_id, sizeof(n->tunnel_id), "%s", tunnel_id);
  snprintf(n->conn_id, sizeof(n->conn_id), "%s", conn_id);
  n->action = action;
  snprintf(n->detail, sizeof(n->detail),
           "{\"connection\":\"%s\",\"conn_index\":%u,\"client_id\":\"%s\",\"location\":\"%s\","
           "\"reason\":\"%s\"}",
           conn_id, conn_index, client_id, ts->location, why);
}

static void store_write(wr_store *s, store_note *n) {
  int rv = n->close_row ? wr_store_conn_close(s, n->conn_id) : WR_OK;
  /* NOTFOUND: the row is closed already (cleanup, another edge). */
  if (rv && rv != WR_ERR_NOTFOUND)
    snprintf(n->errmsg, sizeof(n->errmsg), "closing connection %s in the store: %s", n->conn_id,
             wr_store_errmsg(s));
  rv = wr_store_audit_append(s, n->actor, n->account_id, n->action, "tunnel", n->tunnel_id,
                             n->detail);
  if (rv && !n->errmsg[0])
    snprintf(n->errmsg, sizeof(n->errmsg), "audit %s for tunnel %s failed: %s", n->action,
             n->tunnel_id, wr_store_errmsg(s));
}

static void note_run(wr_store *s, void *arg) { store_write(s, arg); }

static void note_done(void *arg, int status) {
  store_note *n = arg;
  /* The store thread stopped before it: the loop writes it (shutdown). */
  if (status != WR_OK) store_write(n->loop_store, n);
  if (n->errmsg[0]) wr_warn("%s", n->errmsg);
  free(n);
}

/* Writes |n| (taking it) on the store thread, or now on the loop. */
static void store_note_submit(wr_tunnel_server *ts, store_note *n) {
  n->loop_store = ts->store;
  if (ts->async && wr_store_async_submit(ts->async, note_run, note_done, n) == WR_OK) return;
  store_write(ts->store, n);
  note_done(n, WR_OK);
}

static void audit(wr_tunnel_server *ts, edge_conn *ec, const char *action, const char *why,
                  int close_row) {
  store_note *n = wr_xcalloc(1, sizeof(*n));
  note_fill(n, ts, ec->conn_id, ec->conn_index, ec->client_id, ec->account_id, ec->tunnel_id,
            action, why);
  n->close_row = close_row;
  store_note_submit(ts, n);
}

/* Takes a registered connection out of service. */
static void unregister(edge_conn *ec, const char *why) {
  wr_tunnel_server *ts = ec->ts;
  if (ec->state != EC_REGISTERED) return;
  ec->state = EC_UNREGISTERED;
  index_remove(ec);
  ts->stats.unregistrations++;
  audit(ts, ec, WR_TUNNEL_SERVER_AUDIT_UNREGISTERED, why, 1);
  wr_info("Unregistered tunnel connection connIndex=%u connection=%s tunnel=%s reason=\"%s\"",
          ec->conn_index, ec->conn_id, ec->tunnel_id, why);
}

/* A connector that lost its network reconnects before the edge noticed the
 * old connection died: the same connector (client id) registers the same
 * connIndex again. The new registration wins (cloudflared would otherwise
 * retry on EDUPCONN until the old connection times out); the old one is
 * unregistered and its QUIC connection closed. */
static void replace_duplicate(edge_conn *ec, const char *tunnel_id, const char *client_id,
                              unsigned conn_index) {
  if (!client_id[0]) return;
  edge_conn *next;
  for (edge_conn *o = tunnel_chain(ec->ts, tunnel_id); o; o = next) {
    next = o->tunnel_next; /* unregister() unlinks o */
    if (o == ec || o->state != EC_REGISTERED || o->conn_index != conn_index ||
        strcasecmp(o->client_id, client_id) != 0 || strcasecmp(o->tunnel_id, tunnel_id) != 0)
      continue;
    wr_info("connIndex=%u of connector %s registered again: replacing connection %s", conn_index,
            client_id, o->conn_id);
    unregister(o, "replaced by a new registration");
    o->tr->close(o->t, "replaced");
  }
}

/* Whether |o| would be replaced by a registration of (client, index): see
 * replace_duplicate. */
static int would_replace(const edge_conn *o, const char *client_id, unsigned conn_index) {
  return client_id[0] && o->conn_index == conn_index && strcasecmp(o->client_id, client_id) == 0;
}

/* Whether a registration of (client, index) to |tunnel_id|, which has
 * |connectors| connectors and |mine| connections of this client (not
 * counting one it replaces), is over a limit: then writes the cause and
 * sets *retry. The same words whether the count is this edge's or the
 * store's (several edges): cloudflared prints them. Any thread. */
static int over_limits(unsigned max_connectors, unsigned max_per_connector, const char *tunnel_id,
                       const char *client_id, unsigned conn_index, unsigned connectors,
                       unsigned mine, char *cause, size_t len, int *retry) {
  if (!mine && connectors >= max_connectors) {
    snprintf(cause, len,
             "tunnel %s already has %u connectors, the limit of this edge; stop one of them "
             "(each `cloudflared tunnel run` is one connector) before starting another",
             tunnel_id, connectors);
    *retry = 1;
    return 1;
  }
  if (mine >= max_per_connector) {
    snprintf(cause, len,
             "connector %s already has %u connections to tunnel %s, the limit of this edge per "
             "connector; connection index %u is refused (lower --ha-connections)",
             client_id, mine, tunnel_id, conn_index);
    *retry = 0;
    return 1;
  }
  return 0;
}

/* Checks the per-tunnel limits for a registration of (client, index) to
 * |tunnel_id|, not counting a connection it would replace. On a refusal,
 * writes the cause and sets *retry. Returns 1 if allowed. */
static int within_limits(wr_tunnel_server *ts, const edge_conn *self, const char *tunnel_id,
                         const char *client_id, unsigned conn_index, char *cause, size_t len,
                         int *retry) {
  const edge_conn **peers = NULL;
  size_t npeers = 0, cap = 0;
  unsigned connectors = 0, mine = 0;
  /* One walk over every connection collects this tunnel's (a few dozen at
   * most); the distinct-connector count is then quadratic in those only. */
  for (const edge_conn *o = tunnel_chain(ts, tunnel_id); o; o = o->tunnel_next) {
    if (o == self || o->state != EC_REGISTERED || strcasecmp(o->tunnel_id, tunnel_id) != 0 ||
        would_replace(o, client_id, conn_index))
      continue;
    if (npeers == cap) {
      cap = cap ? cap * 2 : 16;
      peers = wr_xrealloc(peers, cap * sizeof(*peers));
    }
    peers[npeers++] = o;
  }
  for (size_t i = 0; i < npeers; i++) {
    const char *cid = peers[i]->client_id;
    if (client_id[0] && strcasecmp(cid, client_id) == 0) mine++;
    /* Connections without a client id count as a connector each. */
    size_t k = 0;
    if (cid[0])
      while (k < i && strcasecmp(peers[k]->client_id, cid) != 0) k++;
    connectors += !cid[0] || k == i;
  }
  free(peers);
  return !over_limits(ts->max_connectors, ts->max_conns_per_connector, tunnel_id, client_id,
                      conn_index, connectors, mine, cause, len, retry);
}

/* ---- RegistrationServer -------------------------------------------------- */

/* Causes deliberately avoid the word "Unauthorized": cloudflared retries a
 * first connection forever when the cause contains it, whereas a permanent
 * (shouldRetry=false) error makes it exit and print our reason, which is what
 * a user with a wrong or revoked secret needs to see. */
static int refuse(wr_rpc_reply *r, const char *cause, int retry) {
  wr_tunnelrpc_conn_response resp;
  memset(&resp, 0, sizeof(resp));
  resp.which = WR_TUNNELRPC_CONN_ERROR;
  resp.error.cause = cause;
  resp.error.cause_len = strlen(cause);
  resp.error.should_retry = retry;
  return wr_tunnelrpc_register_results_encode(&r->results, &resp);
}

/* The tunnel's record says whether a registration with |acct| and
 * |secret| may go on: 1 (|t| read), or 0 with the refusal's |cause| and
 * |retry| (1: the store failed; wr_store_errmsg(s) says how). Callable on
 * any thread (logs nothing). */
static int check_tunnel(wr_store *s, const char *tid, const char *acct, size_t acct_len,
                        const uint8_t *secret, size_t secret_len, wr_tunnel *t, char *cause,
                        size_t len, int *retry) {
  int rv = wr_store_tunnel_get(s, tid, t);
  *retry = 0;
  if (rv == WR_ERR_NOTFOUND) {
    snprintf(cause, len, "unknown tunnel %s: no such tunnel on this edge", tid);
    return 0;
  }
  if (rv) {
    snprintf(cause, len, "internal error: tunnel lookup failed");
    *retry = 1;
    return 0;
  }
  /* Same answer for wrong account and wrong secret: do not tell which. */
  int auth_ok = acct_len == strlen(t->account_id) && strncasecmp(acct, t->account_id, acct_len) == 0;
  auth_ok &= ct_equal(secret, secret_len, t->secret, t->secret_len);
  if (!auth_ok) {
    snprintf(cause, len, "failed to authenticate tunnel %s: invalid account tag or tunnel secret",
             tid);
    return 0;
  }
  if (t->deleted_at) {
    snprintf(cause, len, "tunnel %s has been deleted", tid);
    return 0;
  }
  return 1;
}

/* Records the connection's row. On a store shared by several edges
 * (rec->edge_id set) the tunnel's limits are counted over every edge's live
 * connections in the same transaction, since this edge's own count
 * (within_limits) does not see theirs. Returns 1; 0 refused over a limit,
 * or -1 the store failed (wr_store_errmsg(s)), with the |cause| and
 * |retry|. Callable on any thread (logs nothing). */
static int record_conn(wr_store *s, const wr_conn_rec *rec, unsigned max_connectors,
                       unsigned max_per_connector, char *cause, size_t len, int *retry) {
  int rv;
  if (!rec->edge_id[0]) {
    rv = wr_store_conn_open(s, rec);
  } else {
    wr_conn_limits lim = {.max_connectors = max_connectors,
                          .max_per_connector = max_per_connector,
                          .fresh_since = (int64_t)time(NULL) - WR_CLUSTER_TTL_S};
    rv = wr_store_conn_open_limited(s, rec, &lim);
    if (rv == WR_ERR_LIMIT) {
      over_limits(max_connectors, max_per_connector, rec->tunnel_id, rec->client_id,
                  rec->conn_index, lim.connectors, lim.mine, cause, len, retry);
      return 0;
    }
  }
  if (rv == WR_OK) return 1;
  snprintf(cause, len, "internal error: cannot record the connection");
  *retry = 1;
  return -1;
}

static int details(wr_rpc_reply *r, const wr_tunnel_server *ts, const uint8_t uuid[16],
                   int remote_managed) {
  wr_tunnelrpc_conn_response resp;
  memset(&resp, 0, sizeof(resp));
  resp.which = WR_TUNNELRPC_CONN_DETAILS;
  resp.details.uuid = uuid;
  resp.details.uuid_len = 16;
  resp.details.location = ts->location;
  resp.details.location_len = strlen(ts->location);
  resp.details.remotely_managed = remote_managed;
  return wr_tunnelrpc_register_results_encode(&r->results, &resp);
}

/* The connection is in service from now on (its row is recorded). */
static void now_registered(edge_conn *ec, const wr_conn_rec *rec, const wr_tunnel *t) {
  wr_tunnel_server *ts = ec->ts;
  replace_duplicate(ec, t->id, rec->client_id, rec->conn_index);
  ec->state = EC_REGISTERED;
  memcpy(ec->conn_id, rec->id, sizeof(ec->conn_id));
  memcpy(ec->tunnel_id, t->id, sizeof(ec->tunnel_id));
  memcpy(ec->account_id, t->account_id, sizeof(ec->account_id));
  memcpy(ec->client_id, rec->client_id, sizeof(ec->client_id));
  index_add(ec);
  ec->conn_index = rec->conn_index;
  wr_info("Registered tunnel connection connIndex=%u connection=%s tunnel=%s client=%s "
          "version=%s location=%s protocol=%s datagrams=%s",
          ec->conn_index, ec->conn_id, ec->tunnel_id, rec->client_id, rec->client_version,
          ts->location, ec->tr->name,
          !ec->tr->datagrams ? "none" : ec->datagram_v3 ? "v3" : "v2");
}

/* ---- registration on the store thread -------------------------------------------- */

/* The tunnel's record is read, the credentials checked and the
 * connection's row and audit row written on the store thread; the loop
 * answers the RPC when that is done (WR_RPC_ANSWER_LATER), with the same
 * answers as on the loop. */
struct reg_job {
  edge_conn *ec; /* NULL: the connection went away meanwhile */
  wr_store_async *async;
  wr_store *loop_store;
  uint32_t qid;
  wr_uuid cid;
  char tid[WR_STORE_UUID_LEN + 1];
  char acct[WR_STORE_ID_LEN + 2]; /* one longer than any valid tag: too long fails */
  size_t acct_len;
  uint8_t secret[WR_STORE_SECRET_MAX + 1];
  size_t secret_len;
  wr_conn_rec rec;
  unsigned max_connectors, max_per_connector; /* the server's, for the store thread */
  store_note note; /* the registration's audit row */
  /* results */
  int ok;          /* the row is recorded */
  int retry;
  char cause[256];
  char errmsg[WR_STORE_ERRMSG_MAX]; /* the store's, when it failed */
  wr_tunnel t;     /* its secret wiped on the store thread */
};

static void reg_run(wr_store *s, void *arg) {
  reg_job *j = arg;
  int failed = 0; /* the store did */
  if (check_tunnel(s, j->tid, j->acct, j->acct_len, j->secret, j->secret_len, &j->t, j->cause,
                   sizeof(j->cause), &j->retry)) {
    memcpy(j->rec.tunnel_id, j->t.id, sizeof(j->rec.tunnel_id));
    int rec = record_conn(s, &j->rec, j->max_connectors, j->max_per_connector, j->cause,
                          sizeof(j->cause), &j->retry);
    failed = rec < 0;
    if (rec > 0) {
      j->ok = 1;
      snprintf(j->note.account_id, sizeof(j->note.account_id), "%s", j->t.account_id);
      snprintf(j->note.tunnel_id, sizeof(j->note.tunnel_id), "%s", j->t.id);
      store_write(s, &j->note);
    }
  } else
    failed = j->retry;
  if (failed) snprintf(j->errmsg, sizeof(j->errmsg), "%s", wr_store_errmsg(s));
  explicit_bzero(j->secret, sizeof(j->secret));
  explicit_bzero(j->t.secret, sizeof(j->t.secret));
}

static int reg_fill(void *arg, wr_rpc_reply *r) {
  reg_job *j = arg;
  if (!j->ok) return refuse(r, j->cause, j->retry);
  return details(r, j->ec->ts, j->cid.b, j->t.remote_managed);
}

/* A recorded row whose connection cannot be used after all: closed again. */
static void reg_undo(reg_job *j, wr_tunnel_server *ts, const char *why) {
  store_note *n = wr_xcalloc(1, sizeof(*n));
  *n = j->note;
  n->action = WR_TUNNEL_SERVER_AUDIT_UNREGISTERED;
  n->close_row = 1;
  n->errmsg[0] = '\0';
  snprintf(n->detail, sizeof(n->detail), "{\"connection\":\"%s\",\"reason\":\"%s\"}", j->rec.id, why);
  n->loop_store = j->loop_store;
  if (ts) store_note_submit(ts, n);
  else if (wr_store_async_submit(j->async, note_run, note_done, n) != WR_OK) note_done(n, WR_ERR_INVAL);
}

static void reg_done(void *arg, int status) {
  reg_job *j = arg;
  edge_conn *ec = j->ec;
  if (!ec) {
    if (status == WR_OK && j->ok) reg_undo(j, NULL, "connection closed while registering");
    free(j);
    return;
  }
  wr_tunnel_server *ts = ec->ts;
  ec->reg = NULL;
  if (status != WR_OK) {
    j->ok = 0;
    j->retry = 1;
    snprintf(j->cause, sizeof(j->cause), "internal error: the store is not available");
  }
  if (j->ok && wr_rpc_session_closed(ec->rpc)) {
    /* The control stream ended meanwhile: nobody waits for the answer. */
    reg_undo(j, ts, "control stream closed while registering");
    free(j);
    return;
  }
  if (j->ok && !within_limits(ts, ec, j->t.id, j->rec.client_id, j->rec.conn_index, j->cause,
                              sizeof(j->cause), &j->retry)) {
    j->ok = 0;
    reg_undo(j, ts, "refused: over a limit of this edge");
  }
  if (j->ok) {
    now_registered(ec, &j->rec, &j->t);
    ts->stats.registrations++;
  } else {
    if (j->errmsg[0]) wr_error("registerConnection: %s: %s", j->cause, j->errmsg);
    else wr_warn("registerConnection refused: %s", j->cause);
    ts->stats.refusals++;
  }
  if (j->ok && j->note.errmsg[0]) wr_warn("%s", j->note.errmsg);
  int rv = wr_rpc_session_answer(ec->rpc, j->qid, reg_fill, j);
  if (rv != WR_OK && rv != WR_ERR_NOTFOUND)
    wr_warn("control stream of connection %s: %s", ec->conn_id[0] ? ec->conn_id : "-",
            wr_strerror(rv));
  if (j->ok) ec->tr->registered(ec->t); /* it may stay as long as it likes */
  free(j);
}

/* Hands the rest of a registration to the store thread. Returns
 * WR_RPC_ANSWER_LATER, or refuses (the queue is full). */
static int register_later(edge_conn *ec, const wr_rpc_call *call,
                          const wr_tunnelrpc_register_params *p, const char *tid,
                          const wr_conn_rec *rec, const wr_uuid *cid, wr_rpc_reply *r) {
  wr_tunnel_server *ts = ec->ts;
  reg_job *j = wr_xcalloc(1, sizeof(*j));
  j->ec = ec;
  j->async = ts->async;
  j->loop_store = ts->store;
  j->qid = call->question_id;
  j->cid = *cid;
  j->rec = *rec;
  j->max_connectors = ts->max_connectors;
  j->max_per_connector = ts->max_conns_per_connector;
  snprintf(j->tid, sizeof(j->tid), "%s", tid);
  j->acct_len = p->account_tag_len < sizeof(j->acct) - 1 ? p->account_tag_len : sizeof(j->acct) - 1;
  memcpy(j->acct, p->account_tag, j->acct_len);
  j->secret_len = p->tunnel_secret_len < sizeof(j->secret) ? p->tunnel_secret_len : sizeof(j->secret);
  memcpy(j->secret, p->tunnel_secret, j->secret_len);
  note_fill(&j->note, ts, rec->id, rec->conn_index, rec->client_id, "", "",
            WR_TUNNEL_SERVER_AUDIT_REGISTERED, "registerConnection");
  if (wr_store_async_submit(ts->async, reg_run, reg_done, j) != WR_OK) {
    explicit_bzero(j->secret, sizeof(j->secret));
    free(j);
    wr_warn("registerConnection refused: the store is busy");
    return refuse(r, "internal error: the edge's store is busy", 1);
  }
  ec->reg = j;
  wr_debug("registerConnection connIndex=%u tunnel=%s: checking on the store thread",
           rec->conn_index, tid);
  return WR_RPC_ANSWER_LATER;
}

/* ---- RegistrationServer: registerConnection --------------------------------------- */

/* The connection's row, from the parameters. */
static int new_rec(const wr_tunnel_server *ts, const wr_tunnelrpc_register_params *p,
                   const char *tid, wr_conn_rec *rec, wr_uuid *cid) {
  memset(rec, 0, sizeof(*rec));
  if (wr_uuid_random(cid) != 0) return -1;
  wr_uuid_format(cid, rec->id);
  snprintf(rec->tunnel_id, sizeof(rec->tunnel_id), "%s", tid);
  rec->conn_index = p->conn_index;
  if (p->client.client_id_len == 16) {
    wr_uuid cl;
    memcpy(cl.b, p->client.client_id, 16);
    wr_uuid_format(&cl, rec->client_id);
  }
  copy_text(rec->client_version, sizeof(rec->client_version), p->client.version,
            p->client.version_len);
  copy_text(rec->arch, sizeof(rec->arch), p->client.arch, p->client.arch_len);
  json_features(&p->client, rec->features, sizeof(rec->features));
  wr_addr_ip_text(p->origin_local_ip, p->origin_local_ip_len, rec->origin_ip, sizeof(rec->origin_ip));
  snprintf(rec->edge_location, sizeof(rec->edge_location), "%s", ts->location);
  memcpy(rec->edge_id, ts->edge_id, sizeof(rec->edge_id));
  return 0;
}

static int m_register(wr_rpc_session *s, void *user, const wr_rpc_call *call, wr_rpc_reply *r) {
  edge_conn *ec = user;
  wr_tunnel_server *ts = ec->ts;
  wr_tunnelrpc_register_params p;
  char cause[256], tid[WR_UUID_STR_LEN + 1];
  int rv = wr_tunnelrpc_register_params_decode(&call->params, &p);
  if (rv) return rv; /* an RPC exception, as a Go server's decode error */
  if (ec->state == EC_REGISTERED) return refuse(r, "connection is already registered", 0);
  if (ec->reg) return refuse(r, "connection is being registered", 0);
  if (p.tunnel_id_len != 16) return refuse(r, "tunnel ID must be 16 bytes", 0);
  wr_uuid u;
  memcpy(u.b, p.tunnel_id, 16);
  wr_uuid_format(&u, tid);

  wr_conn_rec rec;
  wr_uuid cid;
  if (new_rec(ts, &p, tid, &rec, &cid) != 0) return refuse(r, "internal error: no randomness", 1);
  ec->datagram_v3 = has_feature(&p.client, "support_datagram_v3_2");
  int retry = 0;
  if (!within_limits(ts, ec, tid, rec.client_id, p.conn_index, cause, sizeof(cause), &retry)) {
    wr_warn("registerConnection refused: %s", cause);
    return refuse(r, cause, retry);
  }
  if (ts->async) return register_later(ec, call, &p, tid, &rec, &cid, r);

  wr_tunnel t;
  if (!check_tunnel(ts->store, tid, p.account_tag, p.account_tag_len, p.tunnel_secret,
                    p.tunnel_secret_len, &t, cause, sizeof(cause), &retry)) {
    if (retry) wr_error("registerConnection: %s: %s", cause, wr_store_errmsg(ts->store));
    else wr_warn("registerConnection refused: %s", cause);
    return refuse(r, cause, retry);
  }
  memcpy(rec.tunnel_id, t.id, sizeof(rec.tunnel_id));
  rv = record_conn(ts->store, &rec, ts->max_connectors, ts->max_conns_per_connector, cause,
                   sizeof(cause), &retry);
  if (rv <= 0) {
    if (rv < 0) wr_error("registerConnection: %s: %s", cause, wr_store_errmsg(ts->store));
    else wr_warn("registerConnection refused: %s", cause);
    return refuse(r, cause, retry);
  }
  now_registered(ec, &rec, &t);
  audit(ts, ec, WR_TUNNEL_SERVER_AUDIT_REGISTERED, "registerConnection", 0);
  return details(r, ts, cid.b, t.remote_managed);
}

static int m_unregister(wr_rpc_session *s, void *user, const wr_rpc_call *call, wr_rpc_reply *r) {
  edge_conn *ec = user;
  unregister(ec, "unregisterConnection");
  return wr_tunnelrpc_empty_encode(&r->results);
}

static int m_update_local(wr_rpc_session *s, void *user, const wr_rpc_call *call,
                          wr_rpc_reply *r) {
  edge_conn *ec = user;
  const uint8_t *cfg;
  size_t len;
  int rv = wr_tunnelrpc_local_config_decode(&call->params, &cfg, &len);
  if (rv) return rv;
  /* The store has no place for local configurations yet: log it. */
  wr_info("updateLocalConfiguration tunnel=%s connection=%s bytes=%zu", ec->tunnel_id,
          ec->conn_id, len);
  wr_debug("local configuration of tunnel %s: %.*s", ec->tunnel_id, (int)(len > 4096 ? 4096 : len),
           (const char *)cfg);
  return wr_tunnelrpc_empty_encode(&r->results);
}

/* m_register with its outcome counted: it answers in many places, and
 * whether the connection ended up registered is what tells them apart. */
static int m_register_counted(wr_rpc_session *s, void *user, const wr_rpc_call *call,
                              wr_rpc_reply *r) {
  edge_conn *ec = user;
  int was = ec->state;
  int rv = m_register(s, user, call, r);
  if (rv == WR_RPC_ANSWER_LATER) return rv; /* counted when answered (reg_done) */
  if (was != EC_REGISTERED && ec->state == EC_REGISTERED) {
    ec->ts->stats.registrations++;
    ec->tr->registered(ec->t); /* it may stay as long as it likes */
  } else
    ec->ts->stats.refusals++;
  return rv;
}

static const wr_rpc_method reg_methods[] = {
    {WR_TUNNELRPC_REGISTRATION_SERVER, WR_TUNNELRPC_REGISTER_CONNECTION, m_register_counted},
    {WR_TUNNELRPC_REGISTRATION_SERVER, WR_TUNNELRPC_UNREGISTER_CONNECTION, m_unregister},
    {WR_TUNNELRPC_REGISTRATION_SERVER, WR_TUNNELRPC_UPDATE_LOCAL_CONFIGURATION, m_update_local},
};

/* ---- transport events (edge/tunnel_transport.h) ------------------------------ */

static int rpc_write(void *user, const uint8_t *data, size_t len) {
  edge_conn *ec = user;
  return ec->tr->control_write(ec->t, data, len);
}

static void end_control(edge_conn *ec) {
  if (ec->control_fin_sent) return;
  ec->control_fin_sent = 1;
  ec->tr->control_end(ec->t);
}

static void stream_unlink(wr_tunnel_stream *s) {
  edge_conn *ec = s->ec;
  if (!ec) return;
  if (s->prev)
    s->prev->next = s->next;
  else
    ec->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
  s->ec = NULL;
  ec->nstreams--;
}

/* The stream is over: the owner (if any) hears on_close, then the handle is
 * freed. */
static void stream_end(wr_tunnel_stream *s) {
  void *user = s->user;
  stream_unlink(s);
  s->user = NULL;
  if (user && s->cbs.on_close) s->cbs.on_close(user);
  free(s);
}

/* The connection is gone: the transport frees its streams without events,
 * so the owners hear it from here. |alive|: the transport's connection may
 * still be touched (it forgets the streams). */
static void close_streams(edge_conn *ec, int alive) {
  while (ec->streams) {
    wr_tunnel_stream *s = ec->streams;
    if (alive) ec->tr->stream_forget(ec->t, s->sid, s->sh);
    stream_end(s);
  }
}

static void detach(edge_conn *ec) {
  wr_tunnel_server *ts = ec->ts;
  index_remove(ec);
  for (edge_conn **pp = &ts->conns; *pp; pp = &(*pp)->next) {
    if (*pp == ec) {
      *pp = ec->next;
      break;
    }
  }
  if (ec->reg) ec->reg->ec = NULL; /* its answer has nobody to go to */
  wr_rpc_session_free(ec->rpc);
  free(ec);
}

int wr_tunnel_conn_control_open(wr_tunnel_conn *ec) {
  if (ec->rpc) return WR_OK;
  wr_rpc_session_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.max_message = 1u << 20; /* the local config JSON is the largest message */
  cfg.write = rpc_write;
  cfg.serve_bootstrap = 1;
  cfg.methods = reg_methods;
  cfg.nmethods = sizeof(reg_methods) / sizeof(reg_methods[0]);
  cfg.user = ec;
  return wr_rpc_session_new(&cfg, &ec->rpc);
}

void wr_tunnel_conn_control_data(wr_tunnel_conn *ec, const uint8_t *data, size_t len, int fin) {
  if (!ec->rpc) return;
  int rv = wr_rpc_session_closed(ec->rpc) ? 0 : wr_rpc_session_feed(ec->rpc, data, len);
  if (rv) {
    wr_warn("control stream of connection %s: %s (%s)", ec->conn_id[0] ? ec->conn_id : "-",
            wr_strerror(rv), wr_rpc_session_reason(ec->rpc));
    unregister(ec, "control stream error");
    end_control(ec);
    return;
  }
  if (fin) wr_rpc_session_eof(ec->rpc);
  if (wr_rpc_session_closed(ec->rpc)) {
    /* Abort("rpc: shutdown") or FIN: the connector is going away. */
    unregister(ec, wr_rpc_session_reason(ec->rpc));
    end_control(ec);
  }
}

void wr_tunnel_conn_control_reset(wr_tunnel_conn *ec) { unregister(ec, "control stream reset"); }

void wr_tunnel_stream_on_data(wr_tunnel_stream *s, const uint8_t *data, size_t len, int fin) {
  if (fin) s->read_done = 1;
  if (!s->user || !s->cbs.on_data) {
    /* Abandoned: nobody reads, give the credit back. */
    if (s->ec && len) s->ec->tr->stream_consume(s->ec->t, s->sid, s->sh, len);
    return;
  }
  /* The owner's failure concerns one request, never the connection. */
  int rv = s->cbs.on_data(s->user, data, len, fin);
  if (rv < 0)
    wr_debug("data stream %" PRId64 " of connection %s: owner failed: %s", s->sid,
             s->ec ? s->ec->conn_id : "-", wr_strerror(rv));
}

void wr_tunnel_stream_on_trailers(wr_tunnel_stream *s, const wr_http_header *hs, size_t n) {
  if (s->user && s->cbs.on_trailers && !s->read_done) s->cbs.on_trailers(s->user, hs, n);
}

void wr_tunnel_stream_on_reset(wr_tunnel_stream *s, uint64_t code) {
  s->read_done = 1;
  if (s->user && s->cbs.on_reset) s->cbs.on_reset(s->user, code);
}

void wr_tunnel_stream_on_writable(wr_tunnel_stream *s) {
  if (s->user && s->cbs.on_writable) s->cbs.on_writable(s->user);
}

void wr_tunnel_stream_on_close(wr_tunnel_stream *s) { stream_end(s); }

void wr_tunnel_conn_gone(wr_tunnel_conn *ec, const char *why, int alive) {
  if (ec->state == EC_NEW) ec->ts->stats.unregistered_closed++;
  unregister(ec, why);
  close_streams(ec, alive);
  detach(ec);
}

/* Connections that completed a handshake but have not registered (yet):
 * in all, and from the source of |src|. A walk, but only on accept, which
 * the transports already rate-limit per source. */
static void count_unregistered(const wr_tunnel_server *ts, const struct sockaddr *src,
                               unsigned *total, unsigned *from_source) {
  *total = *from_source = 0;
  for (const edge_conn *e = ts->conns; e; e = e->next) {
    if (e->state != EC_NEW) continue;
    ++*total;
    if (wr_addr_same_source(src, e->tr->remote(e->t))) ++*from_source;
  }
}

int wr_tunnel_conn_new(wr_tunnel_server *ts, const wr_tunnel_transport *tr, void *t,
                       wr_tunnel_conn **out) {
  unsigned total, from_source;
  *out = NULL;
  count_unregistered(ts, tr->remote(t), &total, &from_source);
  if (total >= ts->max_unregistered || from_source >= ts->max_unregistered_per_source) {
    ts->stats.unregistered_refused++;
    return WR_ERR_LIMIT;
  }
  edge_conn *ec = wr_xcalloc(1, sizeof(*ec));
  ec->ts = ts;
  ec->tr = tr;
  ec->t = t;
  ec->seq = ts->next_seq++;
  ec->next = ts->conns;
  ts->conns = ec;
  *out = ec;
  return WR_OK;
}

uint64_t wr_tunnel_server_register_timeout(const wr_tunnel_server *ts) {
  return ts->register_timeout_ms;
}

/* ---- QUIC glue -------------------------------------------------------------- */

static int q_control_write(void *t, const uint8_t *data, size_t len) {
  size_t acc = 0;
  int rv = wr_quic_stream_write(t, CONTROL_SID, data, len, 0, &acc);
  if (rv == WR_AGAIN) return WR_ERR_LIMIT; /* control messages are tiny: 1 MiB queued is abuse */
  return rv;
}

static void q_control_end(void *t) {
  size_t acc;
  wr_quic_stream_write(t, CONTROL_SID, NULL, 0, 1, &acc);
}

static void q_close(void *t, const char *reason) { wr_quic_conn_close(t, 0, reason); }
static void q_registered(void *t) { wr_quic_conn_set_deadline(t, 0, 0, NULL); }
static const struct sockaddr *q_remote(void *t) { return wr_quic_conn_remote(t, NULL); }
static int q_stream_open(void *t, wr_tunnel_stream *s, int64_t *sid, void **sh) {
  *sh = NULL;
  return wr_quic_stream_open(t, s, sid);
}
static int q_stream_write(void *t, int64_t sid, void *sh, const uint8_t *data, size_t len,
                          int fin, size_t *accepted) {
  return wr_quic_stream_write(t, sid, data, len, fin, accepted);
}
static void q_stream_consume(void *t, int64_t sid, void *sh, size_t n) {
  wr_quic_stream_consume(t, sid, n);
}
static size_t q_stream_queued(void *t, int64_t sid, void *sh) {
  return wr_quic_stream_queued(t, sid);
}
static void q_stream_reset(void *t, int64_t sid, void *sh, uint64_t code) {
  wr_quic_stream_reset(t, sid, code);
}
static void q_stream_stop(void *t, int64_t sid, void *sh, uint64_t code) {
  wr_quic_stream_stop_sending(t, sid, code);
}
static void q_stream_forget(void *t, int64_t sid, void *sh) {
  wr_quic_stream_set_user(t, sid, NULL);
}

static const wr_tunnel_transport quic_transport = {
    .name = "quic",
    .datagrams = 1,
    .control_write = q_control_write,
    .control_end = q_control_end,
    .close = q_close,
    .registered = q_registered,
    .remote = q_remote,
    .stream_open = q_stream_open,
    .stream_write = q_stream_write,
    .stream_consume = q_stream_consume,
    .stream_queued = q_stream_queued,
    .stream_reset = q_stream_reset,
    .stream_stop = q_stream_stop,
    .stream_forget = q_stream_forget,
};

static int qc_stream_open(wr_quic_conn *c, int64_t sid, void *user) {
  edge_conn *ec = user;
  if (!ec || sid != CONTROL_SID || ec->rpc) return 0; /* other streams: not served yet */
  return wr_tunnel_conn_control_open(ec);
}

static int qc_stream_data(wr_quic_conn *c, int64_t sid, const uint8_t *data, size_t len, int fin,
                          void *user, void *suser) {
  edge_conn *ec = user;
  if (IS_EDGE_STREAM(sid)) {
    wr_tunnel_stream *s = suser;
    if (s)
      wr_tunnel_stream_on_data(s, data, len, fin);
    else
      wr_quic_stream_consume(c, sid, len); /* unknown: give the credit back */
    return 0;
  }
  wr_quic_stream_consume(c, sid, len);
  if (ec && sid == CONTROL_SID) wr_tunnel_conn_control_data(ec, data, len, fin);
  return 0;
}

static int qc_stream_reset(wr_quic_conn *c, int64_t sid, uint64_t code, void *user, void *suser) {
  edge_conn *ec = user;
  if (IS_EDGE_STREAM(sid)) {
    if (suser) wr_tunnel_stream_on_reset(suser, code);
    return 0;
  }
  if (ec && sid == CONTROL_SID) wr_tunnel_conn_control_reset(ec);
  return 0;
}

static void qc_stream_writable(wr_quic_conn *c, int64_t sid, void *user, void *suser) {
  if (IS_EDGE_STREAM(sid) && suser) wr_tunnel_stream_on_writable(suser);
}

static void qc_stream_close(wr_quic_conn *c, int64_t sid, int has_code, uint64_t app_code,
                            void *user, void *suser) {
  if (IS_EDGE_STREAM(sid) && suser) wr_tunnel_stream_on_close(suser);
}

static void qc_close(wr_quic_conn *c, const wr_quic_close_info *info, void *user) {
  edge_conn *ec = user;
  if (!ec) return;
  wr_quic_conn_set_user(c, NULL);
  wr_tunnel_conn_gone(ec, info->idle ? "connection idle timeout" : "connection closed", 1);
}

/* Datagrams carry private traffic (ICMP, UDP sessions): only registered
 * connections may send it, and the router decides what it means. */
static int qc_datagram(wr_quic_conn *c, const uint8_t *data, size_t len, void *user) {
  edge_conn *ec = user;
  if (!ec || ec->state != EC_REGISTERED || !ec->ts->on_datagram) return 0;
  ec->ts->on_datagram(ec->ts->datagram_user, ec->conn_id, ec->datagram_v3 ? 3 : 2, data, len);
  return 0;
}

static const wr_quic_callbacks ts_cbs = {
    .on_datagram = qc_datagram,
    .on_stream_open = qc_stream_open,
    .on_stream_data = qc_stream_data,
    .on_stream_reset = qc_stream_reset,
    .on_stream_writable = qc_stream_writable,
    .on_stream_close = qc_stream_close,
    .on_close = qc_close,
};

const wr_quic_callbacks *wr_tunnel_server_quic_callbacks(void) { return &ts_cbs; }

void wr_tunnel_server_on_accept(wr_quic_endpoint *ep, wr_quic_conn *c, void *user) {
  wr_tunnel_server *ts = user;
  edge_conn *ec;
  if (wr_tunnel_conn_new(ts, &quic_transport, c, &ec) != WR_OK) {
    /* No owner (the endpoint's default user would be |ts|, which the
     * callbacks would take for an edge_conn): the endpoint frees it once
     * the close is sent. */
    wr_quic_conn_set_user(c, NULL);
    wr_quic_conn_close(c, 0, "too many connections waiting to register");
    return;
  }
  ec->quic = c;
  wr_quic_conn_set_user(c, ec);
  wr_quic_conn_set_deadline(c, ts->register_timeout_ms, 0, "no registration after the handshake");
}

int wr_tunnel_server_listen(wr_tunnel_server *ts, uv_loop_t *loop, wr_quic_tls *tls,
                            const wr_quic_config *cfg, const struct sockaddr *addr,
                            wr_quic_endpoint **out) {
  wr_quic_config c = *cfg;
  /* A connector opens one stream, the control stream; requests flow on
   * streams the edge opens. QUIC has no client authentication, so anyone
   * who completes a handshake could otherwise hold stream state without
   * limit (the library default is 2^60) before registering. */
  if (!c.max_streams_bidi) c.max_streams_bidi = WR_TUNNEL_SERVER_MAX_PEER_STREAMS;
  return wr_quic_endpoint_server(loop, tls, &c, addr, &ts_cbs, wr_tunnel_server_on_accept, ts,
                                 out);
}

int wr_tunnel_server_new(const wr_tunnel_server_config *cfg, wr_tunnel_server **out) {
  *out = NULL;
  if (!cfg || !cfg->store) return WR_ERR_INVAL;
  wr_tunnel_server *ts = wr_xcalloc(1, sizeof(*ts));
  ts->store = cfg->store;
  ts->async = cfg->store_async;
  ts->location = wr_xstrdup(cfg->location && *cfg->location ? cfg->location
                                                            : WR_TUNNEL_SERVER_LOCATION_DEFAULT);
  ts->actor = wr_xstrdup(cfg->actor && *cfg->actor ? cfg->actor : WR_TUNNEL_SERVER_ACTOR_DEFAULT);
  ts->swept_at = (int64_t)time(NULL);
  if (cfg->edge_id) snprintf(ts->edge_id, sizeof(ts->edge_id), "%s", cfg->edge_id);
  ts->max_connectors = cfg->max_connectors ? cfg->max_connectors : WR_TUNNEL_SERVER_MAX_CONNECTORS;
  ts->max_conns_per_connector = cfg->max_conns_per_connector ? cfg->max_conns_per_connector
                                                             : WR_TUNNEL_SERVER_MAX_CONNS_PER_CONNECTOR;
  ts->register_timeout_ms =
      cfg->register_timeout_ms ? cfg->register_timeout_ms : WR_TUNNEL_SERVER_REGISTER_TIMEOUT_MS;
  ts->max_unregistered =
      cfg->max_unregistered ? cfg->max_unregistered : WR_TUNNEL_SERVER_MAX_UNREGISTERED;
  ts->max_unregistered_per_source = cfg->max_unregistered_per_source
                                        ? cfg->max_unregistered_per_source
                                        : WR_TUNNEL_SERVER_MAX_UNREGISTERED_PER_SOURCE;
  *out = ts;
  return WR_OK;
}

void wr_tunnel_server_free(wr_tunnel_server *ts) {
  if (!ts) return;
  wr_tunnel_server_unwatch(ts);
  while (ts->conns) {
    edge_conn *ec = ts->conns;
    unregister(ec, "edge shutting down");
    /* The endpoint already freed the QUIC connection. */
    close_streams(ec, 0);
    detach(ec);
  }
  free(ts->location);
  free(ts->actor);
  free(ts);
}

/* ---- registry ------------------------------------------------------------------ */

static int matches(const edge_conn *ec, const char *tunnel_id) {
  return ec->state == EC_REGISTERED && (!tunnel_id || strcasecmp(ec->tunnel_id, tunnel_id) == 0);
}

size_t wr_tunnel_server_count(const wr_tunnel_server *ts, const char *tunnel_id) {
  if (!tunnel_id) return ts->nregistered;
  size_t n = 0;
  for (const edge_conn *ec = tunnel_chain(ts, tunnel_id); ec; ec = ec->tunnel_next)
    n += matches(ec, tunnel_id);
  return n;
}

static void conn_info(const edge_conn *ec, wr_tunnel_conn_info *out) {
  memset(out, 0, sizeof(*out));
  memcpy(out->conn_id, ec->conn_id, sizeof(out->conn_id));
  memcpy(out->tunnel_id, ec->tunnel_id, sizeof(out->tunnel_id));
  memcpy(out->client_id, ec->client_id, sizeof(out->client_id));
  out->conn_index = ec->conn_index;
  out->quic = ec->quic;
  out->protocol = ec->tr->name;
  out->datagram_v3 = ec->datagram_v3;
}

int wr_tunnel_server_get(const wr_tunnel_server *ts, const char *tunnel_id, size_t i,
                         wr_tunnel_conn_info *out) {
  size_t n = wr_tunnel_server_count(ts, tunnel_id), k = 0;
  if (i >= n) return WR_ERR_NOTFOUND;
  /* The list is newest first; index from the oldest. */
  size_t want = n - 1 - i;
  for (const edge_conn *ec = tunnel_chain(ts, tunnel_id); ec; ec = ec->tunnel_next) {
    if (!matches(ec, tunnel_id)) continue;
    if (k++ != want) continue;
    conn_info(ec, out);
    return WR_OK;
  }
  return WR_ERR_NOTFOUND;
}


/* ---- closing tunnels: delete, cleanup, the sweeper ------------------------- */

size_t wr_tunnel_server_close_tunnel(wr_tunnel_server *ts, const char *tunnel_id,
                                     const char *client_id, const char *reason) {
  size_t n = 0;
  if (!tunnel_id) return 0;
  if (!reason) reason = "closed by the edge";
  /* unregister() and a transport's close never unlink a connection (that
   * happens in wr_tunnel_conn_gone, on a later loop iteration): the walk is
   * safe. */
  edge_conn *next;
  for (edge_conn *ec = tunnel_chain(ts, tunnel_id); ec; ec = next) {
    next = ec->tunnel_next; /* unregister() unlinks ec */
    if (!matches(ec, tunnel_id) || (client_id && strcasecmp(ec->client_id, client_id) != 0)) continue;
    unregister(ec, reason);
    ec->tr->close(ec->t, reason);
    n++;
  }
  return n;
}

void wr_tunnel_server_store_on_loop(wr_tunnel_server *ts) { ts->async = NULL; }

size_t wr_tunnel_server_close_all(wr_tunnel_server *ts, const char *reason) {
  size_t n = 0;
  /* As in close_tunnel: closing never unlinks. */
  for (edge_conn *ec = ts->conns; ec; ec = ec->next) {
    if (!matches(ec, NULL)) continue;
    ec->tr->close(ec->t, reason);
    n++;
  }
  return n;
}

size_t wr_tunnel_server_sweep(wr_tunnel_server *ts) {
  char (*ids)[WR_STORE_UUID_LEN + 1] = NULL;
  size_t n = 0, closed = 0;
  /* Only tunnels deleted since the last sweep (with some overlap for
   * clocks and slow transactions) can still have live connections:
   * registration refuses deleted tunnels. */
  int64_t now = (int64_t)time(NULL);
  if (wr_store_tunnel_deleted_since(ts->store, ts->swept_at - 60, &ids, &n) != WR_OK) {
    wr_warn("sweeper: listing deleted tunnels: %s", wr_store_errmsg(ts->store));
    return 0;
  }
  ts->swept_at = now;
  for (size_t i = 0; i < n; i++) {
    if (!wr_tunnel_server_count(ts, ids[i])) continue;
    size_t k = wr_tunnel_server_close_tunnel(ts, ids[i], NULL, "tunnel deleted");
    wr_info("tunnel %s was deleted: closed %zu connection%s", ids[i], k, k == 1 ? "" : "s");
    closed += k;
  }
  free(ids);
  return closed;
}

static void sweep_cb(uv_timer_t *t) {
  wr_tunnel_server *ts = t->data;
  if (ts) wr_tunnel_server_sweep(ts);
}

int wr_tunnel_server_watch(wr_tunnel_server *ts, uv_loop_t *loop, uint64_t interval_ms) {
  if (ts->sweep || !loop) return WR_ERR_INVAL;
  if (!interval_ms) interval_ms = WR_TUNNEL_SERVER_SWEEP_MS;
  ts->sweep = wr_xcalloc(1, sizeof(*ts->sweep));
  uv_timer_init(loop, ts->sweep);
  ts->sweep->data = ts;
  uv_timer_start(ts->sweep, sweep_cb, interval_ms, interval_ms);
  uv_unref((uv_handle_t *)ts->sweep);
  return WR_OK;
}

static void free_handle(uv_handle_t *h) { free(h); }

void wr_tunnel_server_unwatch(wr_tunnel_server *ts) {
  if (!ts->sweep) return;
  uv_timer_stop(ts->sweep);
  ts->sweep->data = NULL;
  uv_close((uv_handle_t *)ts->sweep, free_handle);
  ts->sweep = NULL;
}

/* ---- data streams towards a connector -------------------------------------- */

static int attach_stream(edge_conn *ec, const wr_tunnel_stream_callbacks *cbs, void *user,
                         wr_tunnel_stream **out) {
  wr_tunnel_stream *s = wr_xcalloc(1, sizeof(*s));
  int64_t sid = -1;
  int rv = ec->tr->stream_open(ec->t, s, &sid, &s->sh);
  if (rv != WR_OK) {
    free(s);
    return rv;
  }
  s->ec = ec;
  s->sid = sid;
  s->cbs = *cbs;
  s->user = user;
  s->next = ec->streams;
  if (ec->streams) ec->streams->prev = s;
  ec->streams = s;
  ec->nstreams++;
  *out = s;
  return WR_OK;
}

static edge_conn *find_conn(const wr_tunnel_server *ts, const char *conn_id) {
  if (!conn_id || !*conn_id) return NULL;
  for (edge_conn *ec = ts->by_id[id_bucket(conn_id)]; ec; ec = ec->id_next)
    if (ec->state == EC_REGISTERED && strcmp(ec->conn_id, conn_id) == 0) return ec;
  return NULL;
}

void wr_tunnel_server_set_datagram_handler(wr_tunnel_server *ts, wr_tunnel_datagram_fn fn,
                                           void *user) {
  ts->on_datagram = fn;
  ts->datagram_user = user;
}

int wr_tunnel_server_find(const wr_tunnel_server *ts, const char *conn_id,
                          wr_tunnel_conn_info *out) {
  edge_conn *ec = find_conn(ts, conn_id);
  if (!ec) return WR_ERR_NOTFOUND;
  conn_info(ec, out);
  return WR_OK;
}

int wr_tunnel_server_open_stream_on(wr_tunnel_server *ts, const char *conn_id,
                                    const wr_tunnel_stream_callbacks *cbs, void *user,
                                    wr_tunnel_stream **out) {
  *out = NULL;
  if (!cbs) return WR_ERR_INVAL;
  edge_conn *ec = find_conn(ts, conn_id);
  /* Only the router opens streams on a given connection: RPC streams of UDP
   * sessions, which exist on transports with datagrams only. */
  if (!ec || !ec->tr->datagrams) return WR_ERR_NOTFOUND;
  int rv = attach_stream(ec, cbs, user, out);
  return rv == WR_ERR_INVAL ? WR_ERR_NOTFOUND : rv;
}

int wr_tunnel_server_open_stream(wr_tunnel_server *ts, const char *tunnel_id,
                                 const wr_tunnel_stream_callbacks *cbs, void *user,
                                 wr_tunnel_stream **out) {
  *out = NULL;
  if (!tunnel_id || !cbs) return WR_ERR_INVAL;
  /* The edge's own connections first; another edge's only without. */
  if (ts->fw && wr_tunnel_server_count(ts, tunnel_id) == 0)
    return ts->fw->open_stream(ts->fw_user, tunnel_id, cbs, user, out);
  return wr_tunnel_server_open_stream_local(ts, tunnel_id, cbs, user, out);
}

int wr_tunnel_server_open_stream_local(wr_tunnel_server *ts, const char *tunnel_id,
                                       const wr_tunnel_stream_callbacks *cbs, void *user,
                                       wr_tunnel_stream **out) {
  *out = NULL;
  if (!tunnel_id || !cbs) return WR_ERR_INVAL;
  /* Candidates in order of preference: fewest open streams, then round
   * robin among the equally loaded. A connection at its stream limit
   * (WR_AGAIN) or already closing is skipped. */
  size_t n = wr_tunnel_server_count(ts, tunnel_id);
  if (n == 0) return WR_ERR_NOTFOUND;
  edge_conn *tried[64];
  size_t ntried = 0;
  int saw_again = 0;
  unsigned rr = ts->rr++;
  for (;;) {
    edge_conn *best = NULL;
    size_t min = SIZE_MAX, k = 0;
    for (int pass = 0; pass < 2 && !best; pass++) {
      size_t idx = 0;
      for (edge_conn *ec = tunnel_chain(ts, tunnel_id); ec; ec = ec->tunnel_next) {
        int skip = !matches(ec, tunnel_id);
        for (size_t i = 0; i < ntried && !skip; i++) skip = tried[i] == ec;
        if (skip) continue;
        if (pass == 0) {
          if (ec->nstreams < min) {
            min = ec->nstreams;
            k = 0;
          }
          if (ec->nstreams == min) k++;
        } else if (ec->nstreams == min && idx++ == rr % k) {
          best = ec;
          break;
        }
      }
      if (k == 0) break;
    }
    if (!best) return saw_again ? WR_AGAIN : WR_ERR_NOTFOUND;
    int rv = attach_stream(best, cbs, user, out);
    if (rv == WR_OK || rv == WR_ERR_NOMEM) return rv;
    if (rv == WR_AGAIN) saw_again = 1;
    if (ntried == sizeof(tried) / sizeof(tried[0])) return saw_again ? WR_AGAIN : WR_ERR_NOTFOUND;
    tried[ntried++] = best;
  }
}

int wr_tunnel_stream_write(wr_tunnel_stream *s, const uint8_t *data, size_t len, int fin,
                           size_t *accepted) {
  *accepted = 0;
  if (!s->ec || s->write_done) return WR_ERR_INVAL;
  int rv = s->ec->tr->stream_write(s->ec->t, s->sid, s->sh, data, len, fin, accepted);
  if (rv == WR_OK && fin) s->write_done = 1;
  return rv;
}

void wr_tunnel_stream_consume(wr_tunnel_stream *s, size_t n) {
  if (s->ec && n) s->ec->tr->stream_consume(s->ec->t, s->sid, s->sh, n);
}

size_t wr_tunnel_stream_queued(const wr_tunnel_stream *s) {
  return s->ec ? s->ec->tr->stream_queued(s->ec->t, s->sid, s->sh) : 0;
}

void wr_tunnel_stream_abandon(wr_tunnel_stream *s, int64_t code) {
  if (!s) return;
  s->user = NULL;
  if (!s->ec) return;
  const wr_tunnel_transport *tr = s->ec->tr;
  void *t = s->ec->t;
  if (!s->write_done) {
    size_t acc;
    /* code < 0: end our side normally if the owner did not. A write side
     * the peer stopped (STOP_SENDING) refuses the FIN: reset it then. */
    if (code >= 0 || tr->stream_write(t, s->sid, s->sh, NULL, 0, 1, &acc) != WR_OK)
      tr->stream_reset(t, s->sid, s->sh, code >= 0 ? (uint64_t)code : 0);
    s->write_done = 1;
  }
  if (!s->read_done) {
    tr->stream_stop(t, s->sid, s->sh, code >= 0 ? (uint64_t)code : 0);
    s->read_done = 1;
  }
}

const char *wr_tunnel_stream_conn_id(const wr_tunnel_stream *s) {
  return s->ec ? s->ec->conn_id : "-";
}

int64_t wr_tunnel_stream_id(const wr_tunnel_stream *s) { return s->sid; }

/* ---- counters ------------------------------------------------------------------ */

const wr_tunnel_server_stats *wr_tunnel_server_get_stats(const wr_tunnel_server *ts) {
  return &ts->stats;
}

void wr_tunnel_server_each(const wr_tunnel_server *ts,
                           void (*fn)(void *user, const wr_tunnel_conn_info *info), void *user) {
  for (const edge_conn *ec = ts->conns; ec; ec = ec->next) {
    if (!matches(ec, NULL)) continue;
    wr_tunnel_conn_info info;
    memset(&info, 0, sizeof(info));
    memcpy(info.conn_id, ec->conn_id, sizeof(info.conn_id));
    memcpy(info.tunnel_id, ec->tunnel_id, sizeof(info.tunnel_id));
    memcpy(info.client_id, ec->client_id, sizeof(info.client_id));
    info.conn_index = ec->conn_index;
    info.quic = ec->quic;
    info.protocol = ec->tr->name;
    info.datagram_v3 = ec->datagram_v3;
    fn(user, &info);
  }
}

/* ---- forwarding ------------------------------------------------------------------ */

void wr_tunnel_server_set_forwarder(wr_tunnel_server *ts, const wr_tunnel_forwarder *fw,
                                    void *user) {
  ts->fw = fw;
  ts->fw_user = user;
}

size_t wr_tunnel_server_reachable(const wr_tunnel_server *ts, const char *tunnel_id) {
  size_t n = wr_tunnel_server_count(ts, tunnel_id);
  if (n || !ts->fw || !tunnel_id) return n;
  return ts->fw->reachable(ts->fw_user, tunnel_id) ? 1 : 0;
}

int wr_tunnel_server_close_conn(wr_tunnel_server *ts, const char *conn_id, const char *reason) {
  edge_conn *ec = find_conn(ts, conn_id);
  if (!ec) return 0;
  unregister(ec, reason);
  ec->tr->close(ec->t, reason);
  return 1;
}

/* A via connection is an edge_conn outside ts->conns and the id index, in
 * state EC_NEW forever: nothing counts, routes to or registers it. */
wr_tunnel_conn *wr_tunnel_server_via_new(wr_tunnel_server *ts, const wr_tunnel_transport *tr,
                                         void *t, const char *label) {
  edge_conn *ec = wr_xcalloc(1, sizeof(*ec));
  ec->ts = ts;
  ec->tr = tr;
  ec->t = t;
  snprintf(ec->conn_id, sizeof(ec->conn_id), "%s", label ? label : "via");
  return ec;
}

int wr_tunnel_server_via_open(wr_tunnel_conn *via, const wr_tunnel_stream_callbacks *cbs,
                              void *user, wr_tunnel_stream **out) {
  *out = NULL;
  if (!cbs) return WR_ERR_INVAL;
  return attach_stream(via, cbs, user, out);
}

void wr_tunnel_server_via_free(wr_tunnel_conn *via) {
  if (!via) return;
  close_streams(via, 1);
  free(via);
}
