/* ETRN (RFC 1985): a client whose mail waits here asks for it to be sent now. smtpd checks
 * the node, asks every queue shard (Etrn, each shard flushes its own deferred mail for the
 * domain) and waits for all their EtrnReply, at most smtpd.submit_timeout:
 *   250 2.0.0 Queuing for node <d> started       some shard started messages
 *   251 2.0.0 No messages waiting for node <d>   every shard said NOTHING
 *   458 4.3.0 Unable to queue messages for node <d>   none started, some shard failed,
 *                                                 timed out or was not reachable
 *   459 4.7.1 Node <d> not allowed: <reason>      one of our domains, or not in
 *                                                 smtpd.etrn_domains when that is set
 *   458 4.5.4 ... for node #q: ...                a queue name (#q): not supported
 *   501 5.5.4 Syntax: ETRN domain                 not a domain, "@domain" or "#queue"
 * Who may (trusted_networks or authenticated), and not inside a transaction: the command
 * table; others get 502 5.7.0 Error: ETRN not available (it is not offered to them). */
#ifndef SMTPD_ETRN_H
#define SMTPD_ETRN_H

#include "pending.h"

struct smtpd_session;

/* Its row in the table of requests waiting for answers (pending.c). */
extern const struct smtpd_pending_kind smtpd_etrn_kind;

/* The ETRN timer fired: the shards that have not answered count as failed. */
void smtpd_etrn_timeout(struct smtpd_session *s);
/* The session is going away: stop waiting (a late answer is logged). */
void smtpd_etrn_forget(struct smtpd_session *s);

#endif
