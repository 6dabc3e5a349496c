/* A submitter's view of the queue shards (smtpd and the bouncer): one DEALER per entry of
 * queue.endpoint (one DEALER on several endpoints would round-robin blindly, also onto a
 * dead shard), each shard's health, and which shard the next request goes to.
 *
 * Health: every PM_QUEUESET_PING_MS each shard gets a Ping (the queue answers it in order,
 * after everything it sent us before). A shard is down when it is not connected (a send
 * fails: ZMQ_IMMEDIATE) or its Ping went unanswered for PM_QUEUESET_PING_TIMEOUT_MS, or when
 * the caller says a request there went unanswered (pm_queueset_suspect); it is up again with
 * its next answer of any kind. Requests go round robin over the shards that are up, then,
 * as a last resort, to the others.
 *
 * What it does not do: correlate replies with requests (the caller's request ids) or decide
 * when to give up; it reports each reply with the shard it came from. */
#ifndef PM_QUEUESET_H
#define PM_QUEUESET_H
#include "postmesh.pb-c.h"

#define PM_QUEUESET_MAX 64
#define PM_QUEUESET_PING_MS 500
#define PM_QUEUESET_PING_TIMEOUT_MS 1500

struct event_base;
struct pm_queueset;

/* A reply (anything but a Ping answer) from shard; freed after the callback returns. */
typedef void (*pm_queueset_reply_fn)(int shard, Postmesh__BusMessage *m, void *arg);
/* shard lost its connection: whatever was sent there and not answered will never be
 * answered (the queue answers a connection, and a new one has a new identity). */
typedef void (*pm_queueset_lost_fn)(int shard, void *arg);

/* NULL (logged) if a socket cannot be made or there are no or too many endpoints. */
struct pm_queueset *pm_queueset_new(struct event_base *base, const char *const *endpoints, int n,
                                    pm_queueset_reply_fn on_reply, pm_queueset_lost_fn on_lost, void *arg);
void pm_queueset_free(struct pm_queueset *qs);

int pm_queueset_size(const struct pm_queueset *qs);
const char *pm_queueset_endpoint(const struct pm_queueset *qs, int shard);
int pm_queueset_is_up(const struct pm_queueset *qs, int shard);

/* The shards to try for the next request, in order: those up (round robin), then those
 * down; never avoid (-1: none). Fills order[] (room for pm_queueset_size) and returns how
 * many. */
int pm_queueset_order(struct pm_queueset *qs, int avoid, int *order);
/* Sends without blocking; 0, or -1 with errno (EAGAIN: not connected, now marked down). */
int pm_queueset_send_to(struct pm_queueset *qs, int shard, Postmesh__BusMessage *msg);
/* Is a shard other than this one up (worth sending a request that got no answer to)? */
int pm_queueset_other_up(const struct pm_queueset *qs, int shard);
/* A request to shard went unanswered too long: down until it answers again. */
void pm_queueset_suspect(struct pm_queueset *qs, int shard, const char *why);

#endif
