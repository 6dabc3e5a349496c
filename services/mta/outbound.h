/* One outbound job (WORKER_MTA): the recipients of one message for one domain. Asks the
 * resolver for the MX hosts (with them, the MTA-STS policy (sts.h) and the TLSRPT record
 * "_smtp._tls.<domain>", then the TLSA records of each DNSSEC-secure MX host, when the TLS
 * policy wants them: policy.h, docs/outbound-tls.md), then tries their addresses in order,
 * one connection of the shared SMTP client (smtpc_conn.h) at a time, each with the TLS the
 * policy decided for that MX, until every recipient has a verdict from some server or the
 * addresses run out:
 *  - an MX the policy rules out (no usable DANE under dane-only, a failed TLSA lookup, not
 *    in an enforced MTA-STS policy, REQUIRETLS that cannot be met) is not connected to; its
 *    reason stays for the recipients;
 *  - TLS the policy requires never continues in the clear: STARTTLS missing (4.7.4),
 *    refused or broken (4.7.5) moves on to the next address;
 *  - connection errors, 4xx/5xx greetings, 4xx to EHLO/HELO and temporary recipient
 *    verdicts move on to the next address (recipients that got a 2xx or 5xx are done);
 *  - a TLS handshake that breaks is retried once on the same address without STARTTLS
 *    (opportunistic TLS only: the levels may and dane without DANE or MTA-STS);
 *  - whatever is still undecided at the end is TEMPFAIL with the last reason seen;
 *  - loops (as Postfix): an MX address and port that is one of our own smtpd listeners is
 *    never tried, nor any MX host less preferred than it (targets.h); when that leaves
 *    nothing, or the best MX greets or answers EHLO with our own hostname, the recipients
 *    fail with 5.4.6 "mail for <domain> loops back to myself";
 *  - the job has an absolute deadline (the queue's lease less a margin): when it comes, the
 *    connection is closed and every undecided recipient is TEMPFAIL 4.4.7, whatever the
 *    per-command timeouts would still allow, so no job outlives its lease and is sent again
 *    in parallel by a second dispatch. */
#ifndef MTA_OUTBOUND_H
#define MTA_OUTBOUND_H
#include <openssl/ssl.h>
#include <stdint.h>

#include "bus.h"
#include "resolve.h"

struct event_base;
struct pm_config;
struct mta_outbound;
struct mta_self;
struct mta_tls;

struct mta_env {
    struct event_base *base;
    const struct pm_config *cfg;
    struct mta_tls *tls; /* tls.h; NULL: never STARTTLS (levels that require TLS defer) */
    struct mta_resolver *resolver;
    struct mta_self *self; /* our smtpd listeners (self.h); NULL: no address loop check */
    struct mta_sts *sts;   /* MTA-STS policies (sts.h); NULL: mta.mta_sts off */
};

/* result is valid during the call; the owner frees o afterwards (not inside). */
typedef void (*mta_outbound_done)(struct mta_outbound *o, Postmesh__JobResult *result, void *arg);

/* Takes ownership of msg (a BusMessage holding a Job). done is never called from inside.
 * deadline_ms (pm_mono_ms(), clock.h): the job is over by then, decided or not; one already
 * past ends the job at once without a connection. */
struct mta_outbound *mta_outbound_start(const struct mta_env *env, Postmesh__BusMessage *msg, uint64_t deadline_ms,
                                        mta_outbound_done done, void *arg);

/* Shutdown: stops at once; what the server decided stands, undecided recipients are
 * RETURNED (re-dispatched at once, no attempt counted); done is called before return. */
void mta_outbound_abort(struct mta_outbound *o);
/* The whole body went out and the server's verdict on it is all that is missing: aborting
 * now would leave the outcome unknown (a deferral, and maybe a second copy later). */
int mta_outbound_awaiting_verdict(const struct mta_outbound *o);
void mta_outbound_free(struct mta_outbound *o);

const char *mta_outbound_domain(const struct mta_outbound *o); /* lower-cased */

#endif
