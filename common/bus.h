/* The ZeroMQ bus: DEALER/ROUTER sockets carrying one protobuf BusMessage per frame, joined
 * to a libevent loop through ZMQ_FD. ZMQ_FD is edge-triggered, so the watcher drains until
 * ZMQ_EVENTS says no more, and every send re-arms a check (a send can swallow the edge). */
#ifndef PM_BUS_H
#define PM_BUS_H
#include <stddef.h>
#include <stdint.h>

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
struct pm_bus *pm_bus_bind(struct event_base *base, int type, const char *endpoint,
                           pm_bus_handler handler, void *arg);
void pm_bus_close(struct pm_bus *bus);
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

/* Blocking request/reply for the CLI and tools: DEALER to endpoint, one reply or NULL after
 * timeout_ms. Free the reply with postmesh__bus_message__free_unpacked(r, NULL). */
Postmesh__BusMessage *pm_bus_call(const char *endpoint, Postmesh__BusMessage *req, int timeout_ms);

struct pm_config;
/* Must be called once after loading the config, before any socket: sets this service's
 * CurveZMQ identity (state_dir/keys/<service>.key, created if missing). */
void pm_bus_security_init(const struct pm_config *cfg, const char *service);
/* Reads a server's public key ("queue", "resolver") now and keeps it, for a process that
 * creates its client sockets only after it chrooted away from state_dir/keys. 0 or -1. */
int pm_bus_security_preload(const char *server);
/* Curve server/client settings for tcp:// endpoints (bus_security.c). -1: do not use. */
int pm_bus_apply_security(void *sock, const char *endpoint, int is_server);
void pm_bus_after_bind(const char *endpoint);


#endif
