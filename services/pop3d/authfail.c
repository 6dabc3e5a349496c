#include "authfail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fail_entry {
    char ip[64];
    unsigned count;
    time_t first;        /* start of the counting window */
    time_t locked_until; /* 0: not locked */
    time_t last;
};

struct pop3_authfail {
    long long limit, window;
    struct fail_entry *v;
    size_t n;
};

struct pop3_authfail *pop3_authfail_new(long long limit, long long window)
{
    struct pop3_authfail *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->v = calloc(POP3_AUTHFAIL_MAX, sizeof *t->v);
    if (!t->v) {
        free(t);
        return NULL;
    }
    t->limit = limit;
    t->window = window;
    return t;
}

void pop3_authfail_free(struct pop3_authfail *t)
{
    if (!t)
        return;
    free(t->v);
    free(t);
}

static struct fail_entry *find(struct pop3_authfail *t, const char *ip)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].ip, ip) == 0)
            return &t->v[i];
    return NULL;
}

/* Forgets windows and lockouts that are over. */
static void expire(struct pop3_authfail *t, struct fail_entry *e, time_t now)
{
    if (e->locked_until && now >= e->locked_until) {
        e->locked_until = 0;
        e->count = 0;
    }
    if (!e->locked_until && now - e->first >= t->window)
        e->count = 0;
}

int pop3_authfail_locked(struct pop3_authfail *t, const char *ip, time_t now)
{
    struct fail_entry *e = find(t, ip);
    if (!e)
        return 0;
    expire(t, e, now);
    return e->locked_until != 0;
}

int pop3_authfail_record(struct pop3_authfail *t, const char *ip, time_t now)
{
    if (t->window <= 0)
        return 0; /* lockout disabled */
    struct fail_entry *e = find(t, ip);
    if (!e) {
        if (t->n < POP3_AUTHFAIL_MAX) {
            e = &t->v[t->n++];
        } else {
            /* Full: reuse the entry seen longest ago (prefer one not locked). */
            e = &t->v[0];
            for (size_t i = 1; i < t->n; i++) {
                struct fail_entry *c = &t->v[i];
                if ((c->locked_until != 0) < (e->locked_until != 0) ||
                    ((c->locked_until != 0) == (e->locked_until != 0) && c->last < e->last))
                    e = c;
            }
        }
        memset(e, 0, sizeof *e);
        snprintf(e->ip, sizeof e->ip, "%s", ip);
    }
    expire(t, e, now);
    if (e->count == 0)
        e->first = now;
    e->count++;
    e->last = now;
    if (!e->locked_until && e->count >= (unsigned long long)t->limit)
        e->locked_until = now + t->window;
    return e->locked_until != 0;
}
