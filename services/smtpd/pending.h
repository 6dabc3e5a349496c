/* smtpd's requests to the queue shards that wait for an answer, in one table keyed by
 * request id: a session's Submit waits there for its SubmitReply, an ETRN for one EtrnReply
 * per shard, and so will whatever request comes next. Each kind of request says what it
 * does with its answer, with a lost connection and with an answer nobody waits for any
 * more (pending.c has one row per kind). The connection to the shards (queueset.h) hands
 * every reply and every lost connection to this table.
 *
 * A request id names its shard in its low SMTPD_SHARD_BITS, so that a lost connection
 * finds the requests waiting on it without a second table, and only the shard a request
 * went to may answer it. The entries live in their owners (in the session, in an ETRN's
 * state): the table links them and allocates nothing. What it does not do: send, or
 * decide when to stop waiting (the owners' timers). */
#ifndef SMTPD_PENDING_H
#define SMTPD_PENDING_H
#include <stdint.h>

#include "postmesh.pb-c.h"

#define SMTPD_SHARD_BITS 8
#define SMTPD_SHARD_OF(rid) ((int)((rid) & ((1u << SMTPD_SHARD_BITS) - 1)))

struct smtpd_server;
struct smtpd_session;
struct smtpd_pending;
struct pm_queueset;

struct smtpd_pending_kind {
    Postmesh__BusMessage__BodyCase reply; /* the body of its answer */
    /* p's answer came from its shard; p is unlinked already. */
    void (*answered)(struct smtpd_pending *p, const Postmesh__BusMessage *m);
    /* p's shard lost its connection, so no answer will come; p is still linked. */
    void (*lost)(struct smtpd_pending *p);
    /* An answer nobody waits for any more (the session left, timed out, or the request went
     * to another shard): only logged. */
    void (*late)(struct smtpd_server *srv, int shard, const Postmesh__BusMessage *m);
};

struct smtpd_pending {
    uint64_t id; /* 0: not waiting */
    struct smtpd_session *s;
    const struct smtpd_pending_kind *kind;
    struct smtpd_pending *next; /* bucket chain */
};

/* A fresh request id for shard 0 (| shard for another one). */
uint64_t smtpd_pending_base(struct smtpd_server *srv);
/* p waits for the answer to request id, for session s. */
void smtpd_pending_link(struct smtpd_server *srv, struct smtpd_pending *p, uint64_t id, struct smtpd_session *s,
                        const struct smtpd_pending_kind *kind);
/* p waits no more (no-op if it does not wait). */
void smtpd_pending_unlink(struct smtpd_server *srv, struct smtpd_pending *p);

/* One DEALER per queue shard (queue.endpoint), its answers and losses handled here. NULL
 * (logged) on failure. */
struct pm_queueset *smtpd_pending_connect(struct smtpd_server *srv);
void smtpd_pending_disconnect(struct smtpd_server *srv);

#endif
