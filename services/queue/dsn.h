/* Which DSNs (RFC 3461 4.1, 5.2.2) a recipient's NOTIFY asks for, and the stored DSN
 * parameters of a recipient. Pure functions: the dispatch walk applies them (dispatch.c). */
#ifndef QUEUE_DSN_H
#define QUEUE_DSN_H

#include <stdint.h>

#include "postmesh.pb-c.h"

/* What happened to a recipient that a notice could report. */
enum queue_dsn_event {
    QUEUE_DSN_FAILED,          /* failed for good (or expired) */
    QUEUE_DSN_DELAYED,         /* still deferred at queue.delay_warning */
    QUEUE_DSN_DELIVERED_LOCAL, /* into its mailbox here */
    QUEUE_DSN_RELAYED,         /* to a next hop that did not offer DSN */
    QUEUE_DSN_PASSED_ON,       /* to a next hop that offered DSN: it got NOTIFY, it reports */
};

/* Does a recipient with NOTIFY bits `notify` (DSN_NOTIFY_*, 0 = not given: FAILURE and
 * DELAY, the RFC's default) get a notice for ev? NEVER: none at all. */
int queue_dsn_wants(uint32_t notify, enum queue_dsn_event ev);

/* The notice an event is reported as: "failed", "delayed", "delivered", "relayed" (RFC 3464
 * Action), NULL for none. */
const char *queue_dsn_action(enum queue_dsn_event ev);

/* A copy of d (malloc'd, freed with the record), or NULL when d says nothing (no NOTIFY, no
 * ORCPT) or memory ran out. */
Postmesh__RecipientDsn *queue_dsn_copy(const Postmesh__RecipientDsn *d);

#endif
