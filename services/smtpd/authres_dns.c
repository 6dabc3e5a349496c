/* The per-message DNS answer table of the verification checks (authres_dns.h). */
#include "authres_dns.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

void ar_dns_init(struct ar_dns *d, struct smtpd_server *srv, uint64_t deadline_ms)
{
    memset(d, 0, sizeof *d);
    d->srv = srv;
    d->deadline_ms = deadline_ms;
}

/* name folded to the table's form: lower case, without a trailing dot. -1 if unusable. */
static int normalize(const char *name, char out[AR_DNS_MAX_NAME + 1])
{
    size_t n = name ? strlen(name) : 0;
    if (n && name[n - 1] == '.')
        n--;
    if (n == 0 || n > AR_DNS_MAX_NAME)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= ' ' || c >= 0x7f)
            return -1; /* nothing a resolver would ask for */
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    return 0;
}

static struct ar_dns_entry *lookup(const struct ar_dns *d, enum smtpd_dns_type type, const char *norm)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->v[i]->type == type && strcmp(d->v[i]->name, norm) == 0)
            return d->v[i];
    return NULL;
}

const struct ar_dns_entry *ar_dns_find(const struct ar_dns *d, enum smtpd_dns_type type, const char *name)
{
    char norm[AR_DNS_MAX_NAME + 1];
    if (normalize(name, norm) < 0)
        return NULL;
    return lookup(d, type, norm);
}

int ar_dns_want(struct ar_dns *d, enum smtpd_dns_type type, const char *name)
{
    char norm[AR_DNS_MAX_NAME + 1];
    if (normalize(name, norm) < 0)
        return -1;
    if (lookup(d, type, norm))
        return 0;
    if (d->n >= AR_DNS_MAX_NAMES)
        return -1;
    struct ar_dns_entry *e = calloc(1, sizeof *e);
    if (!e)
        return -1;
    e->type = type;
    memcpy(e->name, norm, strlen(norm) + 1);
    e->state = AR_DNS_WANTED;
    e->owner = d;
    d->v[d->n++] = e;
    return 0;
}

/* Keeps a bounded copy of the answer (its strings live only during the callback). */
static void store(struct ar_dns_entry *e, enum smtpd_dns_status status, const char *const *records, size_t n)
{
    e->state = AR_DNS_DONE;
    e->status = status;
    e->query = NULL;
    if (status != SMTPD_DNS_OK || !records)
        return;
    if (n > AR_DNS_MAX_RECORDS)
        n = AR_DNS_MAX_RECORDS;
    e->records = calloc(n ? n : 1, sizeof *e->records);
    if (!e->records) {
        e->status = SMTPD_DNS_TEMPFAIL;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *r = records[i] ? records[i] : "";
        size_t len = strnlen(r, AR_DNS_MAX_RECORD);
        char *copy = malloc(len + 1);
        if (!copy)
            break;
        memcpy(copy, r, len);
        copy[len] = '\0';
        e->records[e->n++] = copy;
    }
    if (e->n == 0)
        e->status = n ? SMTPD_DNS_TEMPFAIL : SMTPD_DNS_NODATA;
}

static void answered(void *arg, const struct smtpd_dns_answer *a)
{
    struct ar_dns_entry *e = arg;
    struct ar_dns *d = e->owner;
    store(e, a->status, a->records, a->n);
    if (--d->in_flight == 0 && d->done) {
        void (*done)(void *) = d->done;
        d->done = NULL;
        done(d->arg); /* last: it may free the table */
    }
}

size_t ar_dns_fetch(struct ar_dns *d, void (*done)(void *arg), void *arg)
{
    uint64_t now = pm_mono_ms();
    long left = now < d->deadline_ms ? (long)(d->deadline_ms - now) : 0;
    size_t started = 0;
    d->done = done;
    d->arg = arg;
    for (size_t i = 0; i < d->n; i++) {
        struct ar_dns_entry *e = d->v[i];
        if (e->state != AR_DNS_WANTED)
            continue;
        if (left <= 0) {
            store(e, SMTPD_DNS_TEMPFAIL, NULL, 0);
            continue;
        }
        e->state = AR_DNS_ASKED;
        d->in_flight++; /* before the call: the contract never answers from inside it */
        e->query = smtpd_dns_lookup(d->srv, e->type, e->name, left, answered, e);
        if (!e->query) {
            d->in_flight--;
            store(e, SMTPD_DNS_TEMPFAIL, NULL, 0);
            continue;
        }
        d->asked++;
        started++;
    }
    if (!started)
        d->done = NULL;
    return started;
}

void ar_dns_free(struct ar_dns *d)
{
    for (size_t i = 0; i < d->n; i++) {
        struct ar_dns_entry *e = d->v[i];
        if (e->state == AR_DNS_ASKED && e->query)
            smtpd_dns_cancel(e->query);
        for (size_t j = 0; j < e->n; j++)
            free(e->records[j]);
        free(e->records);
        free(e);
    }
    d->n = 0;
    d->in_flight = 0;
    d->done = NULL;
}
