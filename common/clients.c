#include "clients.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Where an entry is: connected clients are on no list; the others are remembered on one of
 * two lists, most recently seen first, so the oldest of each is at hand in O(1). */
enum where { CONNECTED, IDLE, LOCKED };

struct pm_client {
    struct pm_client *hnext;       /* hash chain */
    struct pm_client *prev, *next; /* list neighbours (IDLE or LOCKED) */
    enum where where;
    char ip[64];
    long conns;
    long auth_running;
    time_t rate_start;
    long rate_count;
    time_t fail_start;
    long failures;
    time_t locked_until;
};

struct list {
    struct pm_client *head, *tail;
};

struct pm_clients {
    struct pm_client_limits lim;
    struct pm_client **b;
    size_t nb; /* power of two */
    long entries;
    struct list idle, locked;
};

static size_t hash(const struct pm_clients *c, const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h & (c->nb - 1);
}

static void list_push(struct list *l, struct pm_client *e)
{
    e->prev = NULL;
    e->next = l->head;
    if (l->head)
        l->head->prev = e;
    else
        l->tail = e;
    l->head = e;
}

static void list_unlink(struct list *l, struct pm_client *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
}

static struct list *list_of(struct pm_clients *c, const struct pm_client *e)
{
    return e->where == IDLE ? &c->idle : e->where == LOCKED ? &c->locked : NULL;
}

struct pm_clients *pm_clients_new(const struct pm_client_limits *lim)
{
    struct pm_clients *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->lim = *lim;
    if (c->lim.max_entries <= 0)
        c->lim.max_entries = PM_CLIENTS_MAX_ENTRIES;
    c->nb = 64;
    while (c->nb < (size_t)c->lim.max_entries / 4 && c->nb < (1u << 20))
        c->nb <<= 1;
    c->b = calloc(c->nb, sizeof *c->b);
    if (!c->b) {
        free(c);
        return NULL;
    }
    return c;
}

void pm_clients_free(struct pm_clients *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nb; i++)
        for (struct pm_client *e = c->b[i], *n; e; e = n) {
            n = e->hnext;
            free(e);
        }
    free(c->b);
    free(c);
}

static struct pm_client *find(const struct pm_clients *c, const char *ip)
{
    for (struct pm_client *e = c->b[hash(c, ip)]; e; e = e->hnext)
        if (strcmp(e->ip, ip) == 0)
            return e;
    return NULL;
}

static void forget(struct pm_clients *c, struct pm_client *e)
{
    struct list *l = list_of(c, e);
    if (l)
        list_unlink(l, e);
    for (struct pm_client **p = &c->b[hash(c, e->ip)]; *p; p = &(*p)->hnext)
        if (*p == e) {
            *p = e->hnext;
            break;
        }
    free(e);
    c->entries--;
}

/* Nothing worth remembering: not connected, not locked, no failures or rate window open. */
static int idle(const struct pm_clients *c, const struct pm_client *e, time_t now)
{
    return e->conns == 0 && e->locked_until <= now && (e->failures == 0 || now - e->fail_start >= c->lim.auth_lockout) &&
           (c->lim.rate_per_min == 0 || now - e->rate_start >= 60);
}

/* Room for one more address: expired lockouts go first, then the address seen longest ago
 * that is not locked out. 0, or -1 if every entry is connected or locked out. */
static int make_room(struct pm_clients *c, time_t now)
{
    /* The locked list is in the order the clients left; lockouts last equally long, so the
     * oldest end holds the ones that ended first. */
    while (c->locked.tail && c->locked.tail->locked_until <= now && c->entries >= c->lim.max_entries)
        forget(c, c->locked.tail);
    if (c->entries >= c->lim.max_entries && c->idle.tail)
        forget(c, c->idle.tail);
    return c->entries < c->lim.max_entries ? 0 : -1;
}

static void place(struct pm_clients *c, struct pm_client *e, time_t now)
{
    struct list *l = list_of(c, e);
    if (l)
        list_unlink(l, e);
    if (e->conns > 0) {
        e->where = CONNECTED;
        return;
    }
    e->where = e->locked_until > now ? LOCKED : IDLE;
    list_push(list_of(c, e), e);
}

struct pm_client *pm_clients_connect(struct pm_clients *c, const char *ip, time_t now,
                                     enum pm_client_verdict *verdict)
{
    *verdict = PM_CLIENT_OK;
    struct pm_client *e = find(c, ip);
    if (!e) {
        if (make_room(c, now) < 0) {
            *verdict = PM_CLIENT_TABLE_FULL;
            return NULL;
        }
        if (!(e = calloc(1, sizeof *e)))
            return NULL; /* out of memory: the caller refuses the connection */
        strncpy(e->ip, ip, sizeof e->ip - 1);
        size_t h = hash(c, e->ip);
        e->hnext = c->b[h];
        c->b[h] = e;
        c->entries++;
        e->where = CONNECTED;
    }
    if (e->conns >= c->lim.max_per_ip) {
        *verdict = PM_CLIENT_TOO_MANY;
        return NULL;
    }
    if (c->lim.rate_per_min > 0) {
        if (now - e->rate_start >= 60) {
            e->rate_start = now;
            e->rate_count = 0;
        }
        if (e->rate_count >= c->lim.rate_per_min) {
            *verdict = PM_CLIENT_TOO_FAST;
            if (e->where != CONNECTED)
                place(c, e, now); /* seen now: the most recent of its list */
            return NULL;
        }
        e->rate_count++;
    }
    e->conns++;
    place(c, e, now);
    return e;
}

void pm_clients_disconnect(struct pm_clients *c, struct pm_client *cl, time_t now)
{
    if (!cl)
        return;
    cl->conns--;
    if (cl->conns > 0)
        return;
    if (idle(c, cl, now))
        forget(c, cl);
    else
        place(c, cl, now);
}

int pm_clients_auth_locked(const struct pm_clients *c, const struct pm_client *cl, time_t now)
{
    (void)c;
    return cl && cl->locked_until > now;
}

int pm_clients_auth_failed(struct pm_clients *c, struct pm_client *cl, time_t now)
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
        if (cl->where != CONNECTED)
            place(c, cl, now);
        return 1;
    }
    return 0;
}

int pm_clients_auth_begin(struct pm_clients *c, struct pm_client *cl)
{
    if (!cl)
        return 1;
    if (c->lim.auth_in_flight > 0 && cl->auth_running >= c->lim.auth_in_flight)
        return 0;
    cl->auth_running++;
    return 1;
}

void pm_clients_auth_end(struct pm_clients *c, struct pm_client *cl)
{
    (void)c;
    if (cl && cl->auth_running > 0)
        cl->auth_running--;
}

long pm_clients_sweep(struct pm_clients *c, time_t now)
{
    struct list *lists[] = {&c->idle, &c->locked};
    for (int i = 0; i < 2; i++)
        for (struct pm_client *e = lists[i]->head, *n; e; e = n) {
            n = e->next;
            if (idle(c, e, now))
                forget(c, e);
            else if (e->where == LOCKED && e->locked_until <= now)
                place(c, e, now); /* the lockout is over; other counters still count */
        }
    return c->entries;
}
