#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aliases.h"
#include "net.h"
#include "session.h"
#include "users.h"

int smtpd_policy_may_relay(const struct smtpd_session *s)
{
    const struct pm_config *cfg = s->srv->cfg;
    return s->auth_user != NULL || pm_ip_in_networks(s->ip, cfg->trusted_networks.v, cfg->trusted_networks.n);
}

static int local_exists(struct smtpd_server *srv, const char *address)
{
    smtpd_server_refresh_lists(srv);
    if (srv->users && pm_users_exists(srv->users, address))
        return 1;
    return srv->aliases && pm_aliases_is_alias(srv->aliases, srv->cfg, address);
}

int smtpd_policy_rcpt(struct smtpd_session *s, const struct pm_addr *addr, char **final, char *reply, size_t size)
{
    const struct pm_config *cfg = s->srv->cfg;
    char buf[PM_ADDR_MAX_PATH + 64];
    const char *rcpt = addr->address;
    const char *domain = addr->domain;
    *final = NULL;
    if (!*domain) { /* the bare <Postmaster> of RFC 5321 4.5.1 */
        if (cfg->domains.n == 0) {
            snprintf(reply, size, "550 5.1.1 <%s>: Recipient address rejected: no local domain", rcpt);
            return -1;
        }
        snprintf(buf, sizeof buf, "postmaster@%s", cfg->domains.v[0]);
        rcpt = buf;
        domain = strchr(buf, '@') + 1;
    }
    if (pm_config_is_local_domain(cfg, domain)) {
        if (!local_exists(s->srv, rcpt)) {
            snprintf(reply, size, "550 5.1.1 <%s>: Recipient address rejected: User unknown in local recipient table",
                     rcpt);
            return -1;
        }
    } else if (!smtpd_policy_may_relay(s)) {
        snprintf(reply, size, "554 5.7.1 <%s>: Relay access denied", rcpt);
        return -1;
    }
    *final = strdup(rcpt);
    return 0;
}

/* Does address belong to user: the same address, or an alias that expands to it? */
static int owns(struct smtpd_server *srv, const char *user, const char *address)
{
    if (strcasecmp(user, address) == 0)
        return 1;
    smtpd_server_refresh_lists(srv);
    if (!srv->aliases || !pm_aliases_is_alias(srv->aliases, srv->cfg, address))
        return 0;
    struct pm_strlist out = {0};
    char err[256];
    int found = 0;
    if (pm_aliases_expand(srv->aliases, srv->cfg, address, &out, err, sizeof err) == 0)
        for (int i = 0; i < out.n && !found; i++)
            found = strcasecmp(out.v[i], user) == 0;
    for (int i = 0; i < out.n; i++)
        free(out.v[i]);
    free(out.v);
    return found;
}

int smtpd_policy_sender(struct smtpd_session *s, const struct pm_addr *addr, char *reply, size_t size)
{
    if (!s->auth_user)
        return 0;
    if (addr->is_null || !owns(s->srv, s->auth_user, addr->address)) {
        snprintf(reply, size, "553 5.7.1 <%s>: Sender address rejected: not owned by user %s", addr->address,
                 s->auth_user);
        return -1;
    }
    return 0;
}
