/* DNS lists at connect (dnsbl.h). */
#include "dnsbl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_dnsbl.h"
#include "dns.h"
#include "log.h"
#include "net.h"
#include "session.h"

#define TXT_WAIT_MS 1000 /* for the reason of a listed client, at most (or dnsbl_timeout) */
#define REASON_MAX 200   /* of a TXT reason in the reply line */

struct zone_ask {
    struct smtpd_dnsbl *d;
    const struct pm_dnsbl *z;
    struct smtpd_dns_query *q; /* while asked */
    int answered, listed;
};

struct smtpd_dnsbl {
    struct smtpd_session *s;
    int n, waiting;
    int score;
    int blocked;                   /* score >= threshold */
    const struct pm_dnsbl *reason_zone;
    struct smtpd_dns_query *txt_q; /* the reason's TXT, while asked */
    char reason[REASON_MAX + 1];
    int done;
    struct zone_ask zones[PM_DNSBL_MAX];
};

int smtpd_dnsbl_name(const char *ip, const char *zone, char *out, size_t size)
{
    unsigned char b[16];
    int n;
    if (inet_pton(AF_INET, ip, b) == 1) {
        n = snprintf(out, size, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0], zone);
    } else if (inet_pton(AF_INET6, ip, b) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(b, mapped, 12) == 0) {
            n = snprintf(out, size, "%u.%u.%u.%u.%s", b[15], b[14], b[13], b[12], zone);
        } else {
            char nib[65];
            for (int i = 0; i < 16; i++) {
                static const char hex[] = "0123456789abcdef";
                nib[4 * i] = hex[b[15 - i] & 0xf];
                nib[4 * i + 1] = '.';
                nib[4 * i + 2] = hex[b[15 - i] >> 4];
                nib[4 * i + 3] = '.';
            }
            nib[64] = '\0';
            n = snprintf(out, size, "%s%s", nib, zone);
        }
    } else {
        return -1;
    }
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int smtpd_dnsbl_listed(const struct pm_dnsbl *z, const char *const *addrs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct in_addr a;
        if (inet_pton(AF_INET, addrs[i], &a) != 1)
            continue; /* an AAAA of the name is no listing */
        uint32_t v = ntohl(a.s_addr);
        if (z->match ? strcmp(addrs[i], z->match) == 0 : (v >> 24) == 127 && (v >> 8) != 0x7fffff)
            return 1;
    }
    return 0;
}

void smtpd_dnsbl_reason(const char *txt, char *out, size_t max)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)txt; *p && o < max; p++)
        out[o++] = *p >= 0x20 && *p < 0x7f ? (char)*p : ' ';
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

static const struct pm_config *cfg_of(const struct smtpd_dnsbl *d) { return d->s->srv->cfg; }

static void log_verdict(struct smtpd_dnsbl *d)
{
    char zones[512] = "", weights[256] = "", late[512] = "";
    size_t zl = 0, wl = 0, ll = 0;
    for (int i = 0; i < d->n; i++) {
        const struct zone_ask *a = &d->zones[i];
        if (a->listed) {
            zl += (size_t)snprintf(zones + zl, zl < sizeof zones ? sizeof zones - zl : 0, "%s%s", zl ? "," : "",
                                   a->z->zone);
            wl += (size_t)snprintf(weights + wl, wl < sizeof weights ? sizeof weights - wl : 0, "%s%lld",
                                   wl ? "," : "", a->z->weight);
        } else if (!a->answered) {
            ll += (size_t)snprintf(late + ll, ll < sizeof late ? sizeof late - ll : 0, "%s%s", ll ? "," : "",
                                   a->z->zone);
        }
    }
    char r[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=dnsbl client=%s zone=%s weight=%s score=%d threshold=%lld listed=%s unanswered=%s reason=%s",
           d->s->ip, zl ? zones : "-", wl ? weights : "-", d->score, cfg_of(d)->smtpd.dnsbl_threshold,
           d->blocked ? "yes" : "no", ll ? late : "-", PM_LOGV(r, d->reason));
}

static void finish(struct smtpd_dnsbl *d)
{
    d->done = 1;
    log_verdict(d);
    smtpd_session_dnsbl_done(d->s); /* may greet, which frees d */
}

static void on_txt(void *arg, const struct smtpd_dns_answer *a)
{
    struct smtpd_dnsbl *d = arg;
    d->txt_q = NULL;
    if (a->status == SMTPD_DNS_OK && a->n > 0)
        smtpd_dnsbl_reason(a->records[0], d->reason, REASON_MAX);
    finish(d);
}

/* Every list answered or gave up: the score, and for a listed client the reason of the list
 * weighing most. */
static void decide(struct smtpd_dnsbl *d)
{
    d->score = 0;
    for (int i = 0; i < d->n; i++)
        if (d->zones[i].listed) {
            d->score += (int)d->zones[i].z->weight;
            if (d->zones[i].z->weight > 0 && (!d->reason_zone || d->zones[i].z->weight > d->reason_zone->weight))
                d->reason_zone = d->zones[i].z;
        }
    d->blocked = d->score >= cfg_of(d)->smtpd.dnsbl_threshold;
    char name[300];
    if (d->blocked && d->reason_zone && smtpd_dnsbl_name(d->s->ip, d->reason_zone->zone, name, sizeof name) == 0) {
        long wait = cfg_of(d)->smtpd.dnsbl_timeout < TXT_WAIT_MS ? (long)cfg_of(d)->smtpd.dnsbl_timeout : TXT_WAIT_MS;
        d->txt_q = smtpd_dns_lookup(d->s->srv, SMTPD_DNS_TXT, name, wait, on_txt, d);
        if (d->txt_q)
            return;
    }
    finish(d);
}

static void on_a(void *arg, const struct smtpd_dns_answer *a)
{
    struct zone_ask *z = arg;
    struct smtpd_dnsbl *d = z->d;
    z->q = NULL;
    /* A timeout (TEMPFAIL) does not count: the score is what answered. */
    z->answered = a->status != SMTPD_DNS_TEMPFAIL;
    z->listed = a->status == SMTPD_DNS_OK && smtpd_dnsbl_listed(z->z, a->records, a->n);
    if (--d->waiting == 0)
        decide(d);
}

int smtpd_dnsbl_start(struct smtpd_session *s)
{
    const struct pm_config *cfg = s->srv->cfg;
    if (cfg->smtpd.dnsbl.n == 0 || s->mode != SMTPD_MODE_SMTP ||
        pm_ip_in_networks(s->ip, cfg->trusted_networks.v, cfg->trusted_networks.n))
        return 0;
    struct smtpd_dnsbl *d = calloc(1, sizeof *d);
    if (!d)
        return 0; /* no memory for the check: the client is greeted as if none were configured */
    d->s = s;
    s->dnsbl = d;
    d->waiting = 1; /* held while starting, so an answer cannot decide before all are asked */
    for (int i = 0; i < cfg->smtpd.dnsbl.n && i < PM_DNSBL_MAX; i++) {
        struct zone_ask *z = &d->zones[d->n++];
        z->d = d;
        z->z = &cfg->smtpd.dnsbl.v[i];
        char name[300];
        if (smtpd_dnsbl_name(s->ip, z->z->zone, name, sizeof name) < 0)
            continue; /* not an address (cannot be on a socket) or a name too long: no listing */
        z->q = smtpd_dns_lookup(s->srv, SMTPD_DNS_A, name, (long)cfg->smtpd.dnsbl_timeout, on_a, z);
        if (z->q)
            d->waiting++;
    }
    if (--d->waiting == 0)
        decide(d); /* nothing could be asked; decide() never greets from in here (no answers) */
    return 1;
}

int smtpd_dnsbl_pending(const struct smtpd_session *s) { return s->dnsbl && !s->dnsbl->done; }

void smtpd_dnsbl_cancel(struct smtpd_session *s)
{
    struct smtpd_dnsbl *d = s->dnsbl;
    if (!d)
        return;
    for (int i = 0; i < d->n; i++)
        smtpd_dns_cancel(d->zones[i].q);
    smtpd_dns_cancel(d->txt_q);
    free(d);
    s->dnsbl = NULL;
}

void smtpd_dnsbl_greet(struct smtpd_session *s)
{
    struct smtpd_dnsbl *d = s->dnsbl;
    if (d && d->done && d->blocked) {
        s->dnsbl_refused = 1;
        const char *zone = d->reason_zone ? d->reason_zone->zone : "DNS lists";
        smtpd_reply(s, "554 5.7.1 Service unavailable; client [%s] blocked using %s%s%s", s->ip, zone,
                    d->reason[0] ? ": " : "", d->reason);
    } else {
        smtpd_greet(s);
    }
    smtpd_dnsbl_cancel(s);
}

int smtpd_dnsbl_command(struct smtpd_session *s, const char *line, size_t len)
{
    while (len > 0 && line[len - 1] == ' ')
        len--;
    if (len == 4 && strncasecmp(line, "QUIT", 4) == 0)
        return 1;
    smtpd_reply_error(s, "503 5.5.0 Error: client [%s] blocked, only QUIT is accepted", s->ip);
    return 0;
}
