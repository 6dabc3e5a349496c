#include "targets.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "bus_valid.h"
#include "log.h"
#include "self.h"

/* Every name and address of a ResolveReply fits (its bounds are checked at the edge). */
_Static_assert(PM_BUS_MAX_DOMAIN < sizeof ((struct mta_target *)0)->host, "an MX name fits a target");
_Static_assert(PM_BUS_MAX_IP < sizeof ((struct mta_target *)0)->ip, "an MX address fits a target");

const char *mta_domain_literal(const char *domain, char *ip, size_t size)
{
    size_t len = strlen(domain);
    if (len < 3 || domain[0] != '[' || domain[len - 1] != ']' || len - 2 >= size)
        return NULL;
    const char *inner = domain + 1;
    size_t n = len - 2;
    int v6 = 0;
    if (n > 5 && strncasecmp(inner, "IPv6:", 5) == 0)
        inner += 5, n -= 5, v6 = 1;
    memcpy(ip, inner, n);
    ip[n] = '\0';
    unsigned char bin[16];
    return inet_pton(v6 ? AF_INET6 : AF_INET, ip, bin) == 1 ? ip : NULL;
}

enum mta_targets_result mta_targets_literal(struct mta_targets *t, const char *domain, const char *ip,
                                            struct mta_self *self, int port, const char *log_id)
{
    memset(t, 0, sizeof *t);
    if (mta_self_is_listener(self, ip, port)) {
        char dom[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=mail_loop id=%s domain=%s relay=%s:%d reason=our_listener", log_id,
               PM_LOGV(dom, domain), ip, port);
        return MTA_TARGETS_LOOP;
    }
    snprintf(t->v[0].host, sizeof t->v[0].host, "%s", domain);
    snprintf(t->v[0].ip, sizeof t->v[0].ip, "%s", ip);
    t->v[0].best = 1;
    t->n = 1;
    return MTA_TARGETS_OK;
}

/* Postfix smtp_find_self + smtp_truncate_self: the first of our own listeners in the list
 * ends it at its preference; only more preferred hosts may take the mail. Returns how many
 * hosts are left. */
static size_t usable_hosts(const Postmesh__ResolveReply *reply, struct mta_self *self, int port, const char *log_id,
                           const char *domain)
{
    size_t usable = reply->n_hosts;
    for (size_t h = 0; h < usable; h++) {
        const Postmesh__MxHost *m = reply->hosts[h];
        for (size_t a = 0; a < m->n_addresses; a++) {
            if (!mta_self_is_listener(self, m->addresses[a], port))
                continue;
            char dom[PM_LOGV_SIZE], rel[PM_LOGV_SIZE], relv[PM_LOGV_SIZE];
            snprintf(rel, sizeof rel, "%s[%s]:%d", m->name, m->addresses[a], port);
            pm_log(PM_WARN, "event=mail_loop id=%s domain=%s relay=%s preference=%u reason=our_listener", log_id,
                   PM_LOGV(dom, domain), PM_LOGV(relv, rel), m->preference);
            while (usable > 0 && reply->hosts[usable - 1]->preference >= m->preference)
                usable--;
            break;
        }
    }
    return usable;
}

enum mta_targets_result mta_targets_mx(struct mta_targets *t, const Postmesh__ResolveReply *reply,
                                       struct mta_self *self, int port, const char *log_id, const char *domain)
{
    memset(t, 0, sizeof *t);
    size_t usable = usable_hosts(reply, self, port, log_id, domain);
    if (usable < reply->n_hosts && usable == 0)
        return MTA_TARGETS_LOOP;
    uint32_t best = usable ? reply->hosts[0]->preference : 0;
    int mx_secure = reply->dnssec == POSTMESH__DNSSEC__DNSSEC_SECURE;
    for (size_t h = 0; h < usable && t->n < MTA_MAX_TARGETS; h++) {
        const Postmesh__MxHost *m = reply->hosts[h];
        for (size_t a = 0; a < m->n_addresses && t->n < MTA_MAX_TARGETS; a++) {
            struct mta_target *x = &t->v[t->n];
            snprintf(x->host, sizeof x->host, "%s", m->name);
            snprintf(x->ip, sizeof x->ip, "%s", m->addresses[a]);
            x->best = m->preference == best;
            x->secure = mx_secure && m->secure;
            for (char *p = x->host; *p; p++) /* MTA-STS patterns and TLSA names are lower case */
                *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
            t->n++;
        }
    }
    if (t->n == 0)
        return usable < reply->n_hosts ? MTA_TARGETS_NO_PRIMARY : MTA_TARGETS_EMPTY;
    return MTA_TARGETS_OK;
}
