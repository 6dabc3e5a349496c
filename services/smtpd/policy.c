/* Relay permission, local recipients and the senders an authenticated user may use
 * (policy.h). */
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net.h"
#include "postmaster.h"
#include "session.h"

int smtpd_policy_may_relay(const struct smtpd_session *s)
{
    const struct pm_config *cfg = s->srv->cfg;
    return s->auth_user != NULL || pm_ip_in_networks(s->ip, cfg->trusted_networks.v, cfg->trusted_networks.n);
}

void smtpd_policy_rcpt_unknown(const char *rcpt, char *reply, size_t size)
{
    snprintf(reply, size, "550 5.1.1 <%s>: Recipient address rejected: User unknown in local recipient table", rcpt);
}

enum smtpd_verdict smtpd_policy_rcpt(struct smtpd_session *s, const struct pm_addr *addr, char **final, char *reply,
                                     size_t size)
{
    const struct pm_config *cfg = s->srv->cfg;
    char buf[PM_ADDR_MAX_PATH + 64];
    const char *rcpt = addr->address;
    const char *domain = addr->domain;
    *final = NULL;
    if (!*domain) { /* the bare <Postmaster> of RFC 5321 4.5.1 */
        if (cfg->domains.n == 0) {
            snprintf(reply, size, "550 5.1.1 <%s>: Recipient address rejected: no local domain", rcpt);
            return SMTPD_REJECT;
        }
        snprintf(buf, sizeof buf, "postmaster@%s", cfg->domains.v[0]);
        rcpt = buf;
        domain = pm_addr_domain(buf);
    }
    int local = pm_config_is_local_domain(cfg, domain);
    if (!local && !smtpd_policy_may_relay(s)) {
        snprintf(reply, size, "554 5.7.1 <%s>: Relay access denied", rcpt);
        return SMTPD_REJECT;
    }
    if (!(*final = strdup(rcpt))) {
        snprintf(reply, size, "452 4.3.0 Error: insufficient resources");
        return SMTPD_REJECT;
    }
    /* RFC 5321 4.5.1: postmaster@ a local domain is accepted whoever the users file lists
     * (and even while it is unreadable). Only after the relay check: postmaster@ elsewhere
     * is somebody else's. */
    return local && !pm_postmaster_is(cfg, rcpt) ? SMTPD_ASK : SMTPD_ACCEPT;
}

void smtpd_policy_sender_refused(const struct smtpd_session *s, const char *sender, char *reply, size_t size)
{
    snprintf(reply, size, "553 5.7.1 <%s>: Sender address rejected: not owned by user %s", sender, s->auth_user);
}

enum smtpd_verdict smtpd_policy_sender(struct smtpd_session *s, const struct pm_addr *addr, char *reply, size_t size)
{
    if (!s->auth_user)
        return SMTPD_ACCEPT;
    if (addr->is_null) {
        smtpd_policy_sender_refused(s, addr->address, reply, size);
        return SMTPD_REJECT;
    }
    /* Their own address needs nobody's answer; an alias of theirs does. */
    return strcasecmp(s->auth_user, addr->address) == 0 ? SMTPD_ACCEPT : SMTPD_ASK;
}
