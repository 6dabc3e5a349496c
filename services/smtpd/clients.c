#include "clients.h"

#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096
/* Entries kept for rate/lockout memory are capped so a flood of source addresses (IPv6
 * makes that cheap) cannot grow the table without bound; past the cap, idle entries are
 * simply not remembered. */
#define MAX_IDLE_ENTRIES 100000

struct smtpd_client {
    struct smtpd_client *next;
    char ip[64];
    long conns;
    time_t rate_start;
    long rate_count;
    time_t fail_start;
    long failures;
    time_t locked_until;
};

struct smtpd_clients {
    struct smtpd_client_limits lim;
    struct smtpd_client *b[BUCKETS];
    long entries;
};

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % BUCKETS;
}

struct smtpd_clients *smtpd_clients_new(const struct smtpd_client_limits *lim)
{
    struct smtpd_clients *c = calloc(1, sizeof *c);
    if (c)
        c->lim = *lim;
    return c;
}

void smtpd_clients_free(struct smtpd_clients *c)
{
    if (!c)
        return;
    for (int i = 0; i < BUCKETS; i++)
        for (struct smtpd_client *e = c->b[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    free(c);
}

static struct smtpd_client *find(struct smtpd_clients *c, const char *ip, int create)
{
    unsigned h = hash(ip);
    for (struct smtpd_client *e = c->b[h]; e; e = e->next)
        if (strcmp(e->ip, ip) == 0)
            return e;
    if (!create)
        return NULL;
    struct smtpd_client *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    strncpy(e->ip, ip, sizeof e->ip - 1);
    e->next = c->b[h];
    c->b[h] = e;
    c->entries++;
    return e;
}

static int idle(const struct smtpd_clients *c, const struct smtpd_client *e, time_t now)
{
    return e->conns == 0 && e->locked_until <= now && (e->failures == 0 || now - e->fail_start >= c->lim.auth_lockout) &&
           (c->lim.rate_per_min == 0 || now - e->rate_start >= 60);
}

struct smtpd_client *smtpd_clients_connect(struct smtpd_clients *c, const char *ip, time_t now,
                                           enum smtpd_client_verdict *verdict)
{
    *verdict = SMTPD_CLIENT_OK;
    struct smtpd_client *e = find(c, ip, 1);
    if (!e)
        return NULL; /* out of memory: the caller refuses the connection */
    if (e->conns >= c->lim.max_per_ip) {
        *verdict = SMTPD_CLIENT_TOO_MANY;
        return NULL;
    }
    if (c->lim.rate_per_min > 0) {
        if (now - e->rate_start >= 60) {
            e->rate_start = now;
            e->rate_count = 0;
        }
        if (e->rate_count >= c->lim.rate_per_min) {
            *verdict = SMTPD_CLIENT_TOO_FAST;
            return NULL;
        }
        e->rate_count++;
    }
    e->conns++;
    return e;
}

void smtpd_clients_disconnect(struct smtpd_clients *c, struct smtpd_client *cl, time_t now)
{
    if (!cl)
        return;
    cl->conns--;
    /* Forget a client at once when there is nothing to remember, or the table is full. */
    if (cl->conns == 0 && (idle(c, cl, now) || c->entries > MAX_IDLE_ENTRIES)) {
        unsigned h = hash(cl->ip);
        for (struct smtpd_client **p = &c->b[h]; *p; p = &(*p)->next)
            if (*p == cl) {
                *p = cl->next;
                free(cl);
                c->entries--;
                return;
            }
    }
}

int smtpd_clients_auth_locked(const struct smtpd_clients *c, const struct smtpd_client *cl, time_t now)
{
    (void)c;
    return cl && cl->locked_until > now;
}

int smtpd_clients_auth_failed(struct smtpd_clients *c, struct smtpd_client *cl, time_t now)
{
    if (!cl)
        return 0;
    if (cl->failures == 0 || now - cl->fail_start >= c->lim.auth_lockout) {
        cl->fail_start = now;
        cl->failures = 0;
    }
    if (++cl->failures >= c->lim.auth_failures && c->lim.auth_lockout > 0) {
        cl->locked_until = now + c->lim.auth_lockout;
        cl->failures = 0;
        return 1;
    }
    return 0;
}

long smtpd_clients_sweep(struct smtpd_clients *c, time_t now)
{
    for (int i = 0; i < BUCKETS; i++)
        for (struct smtpd_client **p = &c->b[i]; *p;) {
            struct smtpd_client *e = *p;
            if (idle(c, e, now)) {
                *p = e->next;
                free(e);
                c->entries--;
            } else {
                p = &e->next;
            }
        }
    return c->entries;
}
