/* The ZeroMQ bus: DEALER/ROUTER sockets carrying one protobuf BusMessage per frame, joined
 * to a libevent loop through ZMQ_FD. ZMQ_FD is edge-triggered, so the watcher drains until
 * ZMQ_EVENTS says no more, and every send re-arms a check (a send can swallow the edge). */
#ifndef PM_BUS_H
#define PM_BUS_H
#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "postmesh.pb-c.h"

#define PM_PROTOCOL_VERSION 1

struct event_base;
struct pm_bus;

/* peer/peerlen: the ROUTER identity of the sender (NULL/0 on a DEALER). The message is
 * freed after the handler returns: copy what you keep. Do not close the bus in a handler. */
typedef void (*pm_bus_handler)(struct pm_bus *bus, const uint8_t *peer, size_t peerlen,
                               Postmesh__BusMessage *msg, void *arg);

void *pm_bus_context(void);
void pm_bus_context_term(void);

/* type is ZMQ_DEALER or ZMQ_ROUTER. Returns NULL (and logs) on failure. */
struct pm_bus *pm_bus_connect(struct event_base *base, int type, const char *endpoint,
                              pm_bus_handler handler, void *arg);

/* What a binding socket accepts. Every admitted key has a role (keys.h); a message is handed
 * to the handler only if a rule lists its body and the sender's role, and it is no bigger
 * than the rule allows. Anything else is dropped with one log line naming the key. */
struct pm_bus_rule {
    Postmesh__BusMessage__BodyCase body; /* 0 (BODY__NOT_SET) ends the list */
    unsigned roles;                      /* PM_ROLE_BIT()s that may send it */
    size_t max_bytes;                    /* 0: only the socket's limit */
};
struct pm_bus_policy {
    int64_t max_message;             /* ZMQ_MAXMSGSIZE, set before the bind: a bigger frame,
                                      * even in a handshake, closes the connection */
    const struct pm_bus_rule *rules;
};
struct pm_bus *pm_bus_bind(struct event_base *base, int type, const char *endpoint,
                           const struct pm_bus_policy *policy, pm_bus_handler handler, void *arg);

/* Every message is checked against the rules of its body (bus_valid.h) before a handler sees
 * it; one that breaks them is refused with an `event=bus_refused ... reason=invalid field=F
 * problem=P` line naming its sender, and a refused request that has an answer (Submit,
 * Control, Resolve, Etrn) is answered with a permanent error on a binding socket. */

/* How many messages of this body were refused as invalid on bus (e.g. a worker counts the
 * Jobs it was sent, good or not). */
uint64_t pm_bus_refused(const struct pm_bus *bus, Postmesh__BusMessage__BodyCase body);

/* In a handler of a binding socket: who sent the current message. checked is 0 when the
 * bus runs without CurveZMQ (bus.curve = false): then nobody's role is known. On a client
 * socket: the server it connects to ("queue", "resolver"; "-" if neither), unchecked. */
struct pm_bus_sender {
    enum pm_role role;
    char name[PM_KEY_NAME]; /* the key's name, e.g. "smtpd.eu-1"; "-" without CurveZMQ */
    int checked;
};
const struct pm_bus_sender *pm_bus_sender(const struct pm_bus *bus);

/* "submit", "credit", ... for logs. */
const char *pm_bus_body_name(Postmesh__BusMessage__BodyCase body);
void pm_bus_close(struct pm_bus *bus);
/* ZMQ_EVENTS (ZMQ_POLLIN / ZMQ_POLLOUT: on a DEALER with ZMQ_IMMEDIATE, POLLOUT means a peer
 * is connected). Use this, never zmq_getsockopt(ZMQ_EVENTS) on a bus socket: reading it
 * consumes the edge of ZMQ_FD, and this re-arms the watcher so nothing is left unread. */
int pm_bus_events(struct pm_bus *bus);
void *pm_bus_socket(struct pm_bus *bus);

/* Called inside a handler: the handler keeps the message and frees it later with
 * postmesh__bus_message__free_unpacked(msg, NULL). Avoids copying large bodies. */
void pm_bus_steal(struct pm_bus *bus);

/* A WorkerKind as the logs name it: "delivery", "mta", "bouncer", "none". */
const char *pm_worker_kind_name(Postmesh__WorkerKind k);

/* Sets version and sends without blocking. 0 on success, -1 (errno) if it cannot be queued
 * now, e.g. EAGAIN when the peer is not connected (DEALERs use ZMQ_IMMEDIATE). */
int pm_bus_send(struct pm_bus *bus, Postmesh__BusMessage *msg);
int pm_bus_send_to(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *msg);

/* A Ping (answered by a server after everything it sent us before) with request_id. */
int pm_bus_send_ping(struct pm_bus *bus, uint64_t request_id);

/* For a raw ZeroMQ socket the CLI polls itself: one BusMessage per frame, version set on
 * send and checked on receipt (NULL: nothing, or not one of ours). */
int pm_bus_send_frame(void *sock, Postmesh__BusMessage *msg, int flags);
Postmesh__BusMessage *pm_bus_recv_frame(void *sock, int flags);

/* Blocking request/reply for the CLI and tools: DEALER to endpoint, one reply or NULL after
 * timeout_ms. Free the reply with postmesh__bus_message__free_unpacked(r, NULL). */
Postmesh__BusMessage *pm_bus_call(const char *endpoint, Postmesh__BusMessage *req, int timeout_ms);

struct pm_config;
/* Must be called once after loading the config, before any socket: sets this service's
 * CurveZMQ identity (keys_dir/<bus.key_name or service>.key, created if missing) and, for a
 * server, registers the keys directory with the reader outside the chroot. */
void pm_bus_security_init(const struct pm_config *cfg, const char *service);
/* Reads a server's public key ("queue", "resolver") now and keeps it, for a process that
 * creates its client sockets only after it chrooted away from state_dir/keys. 0 or -1. */
int pm_bus_security_preload(const char *server);
/* CurveZMQ server/client settings for tcp:// and ipc:// endpoints (bus_security.c). -1: do
 * not use the socket. */
int pm_bus_apply_security(void *sock, const char *endpoint, int is_server);
/* Binds; an ipc:// socket file is created 0660 (no window at a looser mode) and given the
 * group of its directory. */
int pm_bus_secure_bind(void *sock, const char *endpoint);
/* Is CurveZMQ on, so that senders have roles? */
int pm_bus_roles_known(void);
/* The server a client endpoint leads to, whose public key a connect pins: "queue" (every
 * shard's endpoint and control), "resolver", or NULL. */
const char *pm_bus_server_of(const char *endpoint);


#endif
