/* Which DSNs a recipient's NOTIFY asks for (dsn.h). */
#include "dsn.h"

#include <stdlib.h>
#include <string.h>

#define NOTIFY(x) POSTMESH__DSN_NOTIFY__DSN_NOTIFY_##x

int queue_dsn_wants(uint32_t notify, enum queue_dsn_event ev)
{
    /* Bits nobody defined say nothing (a peer's bug must not silence the default). */
    notify &= NOTIFY(SUCCESS) | NOTIFY(FAILURE) | NOTIFY(DELAY) | NOTIFY(NEVER);
    if (notify & NOTIFY(NEVER))
        return 0;
    switch (ev) {
    case QUEUE_DSN_FAILED: return !notify || (notify & NOTIFY(FAILURE));
    case QUEUE_DSN_DELAYED: return !notify || (notify & NOTIFY(DELAY));
    case QUEUE_DSN_DELIVERED_LOCAL:
    case QUEUE_DSN_RELAYED: return (notify & NOTIFY(SUCCESS)) != 0;
    case QUEUE_DSN_PASSED_ON: return 0; /* RFC 3461 5.2.2.1: the next hop reports */
    }
    return 0;
}

const char *queue_dsn_action(enum queue_dsn_event ev)
{
    switch (ev) {
    case QUEUE_DSN_FAILED: return "failed";
    case QUEUE_DSN_DELAYED: return "delayed";
    case QUEUE_DSN_DELIVERED_LOCAL: return "delivered";
    case QUEUE_DSN_RELAYED: return "relayed";
    case QUEUE_DSN_PASSED_ON: return NULL;
    }
    return NULL;
}

Postmesh__RecipientDsn *queue_dsn_copy(const Postmesh__RecipientDsn *d)
{
    if (!d || (!d->notify && (!d->orcpt || !d->orcpt[0])))
        return NULL;
    Postmesh__RecipientDsn *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    postmesh__recipient_dsn__init(c);
    c->notify = d->notify;
    c->orcpt = strdup(d->orcpt ? d->orcpt : "");
    if (!c->orcpt) {
        free(c);
        return NULL;
    }
    return c;
}
