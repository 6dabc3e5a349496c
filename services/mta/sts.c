/* The MTA-STS lookup (RFC 8461 3 and 5.1): the "_mta-sts" TXT through the resolver, then the
 * policy from the store (sts_cache.c) or, when there is none or the TXT id changed, from the
 * policy host (its address through the resolver, the body through sts_fetch.c), parsed by
 * sts_policy.c. The rules of 5.1 and 3.3:
 *  - a stored policy that has not expired applies while the TXT record says the same id, and
 *    also when the TXT lookup fails or finds no record (an attacker who can block DNS must not
 *    be able to switch a known policy off; only its max_age or a fetched "mode: none" ends it);
 *  - a new id is fetched; when that fails the stored policy goes on applying;
 *  - no stored policy and the fetch fails: FAILED, delivery goes on as without MTA-STS;
 *  - a fetch that failed for a (domain, id) is not tried again for FAILED_RETRY seconds
 *    (3.3: at most every five minutes per id);
 *  - a policy past half its max_age is fetched again in the background while it still
 *    applies, so a domain mailed regularly never sees its policy lapse (10.2).
 * One fetch per domain at a time: lookups of a domain being fetched wait for that fetch. */
#include "sts.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "logvalue.h"
#include "resolve.h"
#include "sts_cache.h"
#include "sts_fetch.h"
#include "sts_policy.h"

#define FAILED_RETRY 300      /* seconds before a failed (domain, id) is fetched again */
#define FAILED_MEMORY 256     /* failures remembered */
#define CA_MAX (16u << 20)    /* octets of CA bundle at most */
#define SYSTEM_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

/* Read before the sandbox (mta_sts_preload): what libcurl needs from the file system. */
static struct {
    int ready;
    char *ca;
    size_t ca_len;
    char dir[4096];
} pre;

struct pending;

struct lookup {
    struct mta_sts *s;
    struct lookup *prev, *next; /* every lookup of s */
    struct lookup *wnext;       /* the waiters of pending */
    uint64_t handle;
    uint64_t txt;               /* resolver handle while the TXT is asked */
    struct pending *pending;    /* while waiting for a fetch */
    struct event *later;        /* an answer known at once, given from the loop */
    char domain[254];
    mta_sts_cb cb;
    void *arg;
};

struct pending {
    struct mta_sts *s;
    struct pending *prev, *next;
    char domain[254];
    char id[33];
    uint64_t addr;  /* resolver handle of mta-sts.<domain> A/AAAA */
    uint64_t fetch; /* fetcher handle */
    struct lookup *waiters;
};

struct failure {
    char domain[254];
    char id[33];
    uint64_t until;
    char result_type[48];
    char why[256];
};

struct mta_sts {
    struct event_base *base;
    struct mta_resolver *resolver;
    struct mta_sts_cache *cache;
    struct mta_sts_fetcher *fetcher;
    struct lookup *lookups;
    struct pending *pendings;
    struct failure failures[FAILED_MEMORY];
    size_t next_failure;
    uint64_t next_handle;
};

static uint64_t now_s(void) { return (uint64_t)time(NULL); }

/* ------------------------------------------------------------------ before the sandbox */
static int read_whole(const char *path, char **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > CA_MAX - *len) {
        close(fd);
        errno = EFBIG;
        return -1;
    }
    char *grown = realloc(*buf, *len + (size_t)st.st_size + 2);
    if (!grown) {
        close(fd);
        return -1;
    }
    *buf = grown;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, *buf + *len + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    *len += got;
    (*buf)[(*len)++] = '\n'; /* a file without a last newline must not glue two PEM blocks */
    (*buf)[*len] = '\0';
    return 0;
}

/* A hashed directory (c_rehash: "<hash>.<n>" links to PEM files). */
static int read_dir(const char *dir, char **buf, size_t *len)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        const char *dot = strchr(de->d_name, '.');
        if (!dot || dot - de->d_name != 8 || strspn(de->d_name, "0123456789abcdef") != 8)
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (read_whole(path, buf, len) == 0)
            n++;
    }
    closedir(d);
    return n > 0 ? 0 : -1;
}

int mta_sts_preload(const struct pm_config *cfg, int chrooted)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        pm_log(PM_ERR, "event=startup_failed reason=\"curl_global_init failed\"");
        return -1;
    }
    const char *file = cfg->mta.ca_file && cfg->mta.ca_file[0] ? cfg->mta.ca_file : NULL;
    const char *from = file ? file : SYSTEM_BUNDLE;
    int rc = read_whole(from, &pre.ca, &pre.ca_len);
    if (rc < 0 && !file && cfg->mta.ca_path && cfg->mta.ca_path[0]) {
        from = cfg->mta.ca_path;
        rc = read_dir(from, &pre.ca, &pre.ca_len);
    }
    if (rc < 0) {
        pm_log(PM_ERR, "event=startup_failed reason=\"MTA-STS: cannot read the CA bundle\" path=%s error=\"%s\"", from,
               strerror(errno));
        return -1;
    }
    /* Chrooted, the working directory is the mta's own; otherwise (a development run without
     * root) the same directory by its full name. */
    if (chrooted) {
        snprintf(pre.dir, sizeof pre.dir, "sts");
    } else {
        char parent[4000];
        snprintf(parent, sizeof parent, "%s/mta", cfg->state_dir);
        mkdir(parent, 0700); /* the chroot privsep would have made; sts/ itself comes later */
        snprintf(pre.dir, sizeof pre.dir, "%s/sts", parent);
    }
    pre.ready = 1;
    pm_log(PM_INFO, "event=mta_sts_ready ca=%s ca_octets=%zu", from, pre.ca_len);
    return 0;
}

/* ------------------------------------------------------------------ answering */
static void lookup_unlink(struct lookup *l)
{
    struct mta_sts *s = l->s;
    if (l->prev)
        l->prev->next = l->next;
    else
        s->lookups = l->next;
    if (l->next)
        l->next->prev = l->prev;
    if (l->pending) {
        struct lookup **pp = &l->pending->waiters;
        while (*pp && *pp != l)
            pp = &(*pp)->wnext;
        if (*pp)
            *pp = l->wnext;
        l->pending = NULL;
    }
    if (l->txt)
        mta_resolve_cancel(s->resolver, l->txt);
    if (l->later)
        event_free(l->later);
    l->txt = 0;
    l->later = NULL;
}

static void answer(struct lookup *l, const struct mta_sts_result *r, const char *source)
{
    char d[PM_LOGV_SIZE], why[PM_LOGV_SIZE];
    const struct mta_sts_policy *p = r->policy;
    pm_log(PM_DEBUG, "event=mta_sts_lookup domain=%s status=%s mode=%s id=%s source=%s%s%s%s%s", PM_LOGV(d, l->domain),
           r->status == MTA_STS_POLICY ? "policy" : r->status == MTA_STS_FAILED ? "failed" : "none",
           p ? mta_sts_mode_name(p->mode) : "-", p ? p->id : "-", source, r->result_type[0] ? " result_type=" : "",
           r->result_type, r->why[0] ? " reason=" : "", r->why[0] ? PM_LOGV(why, r->why) : "");
    lookup_unlink(l);
    l->cb(r, l->arg);
    free(l);
}

static void answer_policy(struct lookup *l, const struct mta_sts_policy *p, const char *source)
{
    struct mta_sts_result r = {.status = MTA_STS_NONE};
    if (p->mode != MTA_STS_MODE_NONE) {
        r.status = MTA_STS_POLICY;
        r.policy = p;
    } else {
        snprintf(r.why, sizeof r.why, "policy mode none");
    }
    answer(l, &r, source);
}

static void answer_none(struct lookup *l, const char *why)
{
    struct mta_sts_result r = {.status = MTA_STS_NONE};
    snprintf(r.why, sizeof r.why, "%s", why);
    answer(l, &r, "none");
}

static void answer_failed(struct lookup *l, const char *result_type, const char *why)
{
    struct mta_sts_result r = {.status = MTA_STS_FAILED};
    snprintf(r.result_type, sizeof r.result_type, "%s", result_type);
    snprintf(r.why, sizeof r.why, "%s", why);
    answer(l, &r, "none");
}

static void on_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lookup *l = arg;
    answer_none(l, "not a domain MTA-STS applies to");
}

/* ------------------------------------------------------------------ failures */
static const struct failure *failure_find(const struct mta_sts *s, const char *domain, const char *id, uint64_t now)
{
    for (size_t i = 0; i < FAILED_MEMORY; i++) {
        const struct failure *f = &s->failures[i];
        if (f->until > now && strcmp(f->domain, domain) == 0 && strcmp(f->id, id) == 0)
            return f;
    }
    return NULL;
}

static void failure_note(struct mta_sts *s, const char *domain, const char *id, const char *type, const char *why)
{
    struct failure *f = &s->failures[s->next_failure++ % FAILED_MEMORY];
    snprintf(f->domain, sizeof f->domain, "%s", domain);
    snprintf(f->id, sizeof f->id, "%s", id);
    snprintf(f->result_type, sizeof f->result_type, "%s", type);
    snprintf(f->why, sizeof f->why, "%s", why);
    f->until = now_s() + FAILED_RETRY;
}

/* ------------------------------------------------------------------ fetching */
static void pending_free(struct pending *p)
{
    struct mta_sts *s = p->s;
    if (p->prev)
        p->prev->next = p->next;
    else
        s->pendings = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (p->addr)
        mta_resolve_cancel(s->resolver, p->addr);
    if (p->fetch)
        mta_sts_fetch_cancel(s->fetcher, p->fetch);
    free(p);
}

/* Every waiter gets the policy just fetched (fresh: also one of max_age 0, which applies to
 * the deliveries that asked although it is not kept), or after a failure what the store
 * still has, or the failure. */
static void pending_done(struct pending *p, const struct mta_sts_policy *fresh, const char *type, const char *why)
{
    struct mta_sts *s = p->s;
    char d[PM_LOGV_SIZE], w[PM_LOGV_SIZE];
    const struct mta_sts_policy *cached = NULL;
    if (type) {
        failure_note(s, p->domain, p->id, type, why);
        cached = mta_sts_cache_get(s->cache, p->domain, now_s());
        pm_log(PM_WARN, "event=mta_sts_fetch_failed domain=%s id=%s result_type=%s reason=%s cached=%s",
               PM_LOGV(d, p->domain), p->id, type, PM_LOGV(w, why), cached ? cached->id : "none");
    }
    p->addr = p->fetch = 0;
    while (p->waiters) {
        struct lookup *l = p->waiters;
        if (fresh) {
            answer_policy(l, fresh, "fetch"); /* unlinks l from the waiters */
            continue;
        }
        cached = mta_sts_cache_get(s->cache, p->domain, now_s()); /* again: a callback may have run */
        if (cached)
            answer_policy(l, cached, "cache");
        else
            answer_failed(l, type, why);
    }
    pending_free(p);
}

static void on_fetched(const struct mta_sts_fetch_result *r, void *arg)
{
    struct pending *p = arg;
    p->fetch = 0;
    if (!r->ok) {
        pending_done(p, NULL, r->result_type, r->why);
        return;
    }
    struct mta_sts_policy pol;
    memset(&pol, 0, sizeof pol);
    char why[200];
    if (mta_sts_policy_parse(r->body, r->len, &pol, why, sizeof why) < 0) {
        pending_done(p, NULL, "sts-policy-invalid", why);
        return;
    }
    snprintf(pol.id, sizeof pol.id, "%s", p->id);
    uint64_t now = now_s();
    mta_sts_cache_put(p->s->cache, p->domain, &pol, r->body, r->len, now);
    pol.expires = now + pol.max_age;
    pol.text = (char *)r->body; /* valid during the callbacks below */
    char d[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=mta_sts_fetched domain=%s id=%s mode=%s max_age=%u mx=%d", PM_LOGV(d, p->domain), p->id,
           mta_sts_mode_name(pol.mode), pol.max_age, pol.nmx);
    pending_done(p, &pol, NULL, NULL);
}

static void on_address(const Postmesh__ResolveReply *reply, const char *error, void *arg)
{
    struct pending *p = arg;
    p->addr = 0;
    char why[600];
    if (!reply || reply->status != POSTMESH__RESOLVE_REPLY__STATUS__OK || reply->n_hosts < 1 ||
        reply->hosts[0]->n_addresses < 1) {
        snprintf(why, sizeof why, "mta-sts.%s: %s", p->domain,
                 error ? error : reply && reply->text && reply->text[0] ? reply->text : "no address");
        pending_done(p, NULL, "sts-policy-fetch-error", why);
        return;
    }
    const Postmesh__MxHost *h = reply->hosts[0];
    p->fetch = mta_sts_fetch(p->s->fetcher, p->domain, (const char *const *)h->addresses, h->n_addresses, on_fetched, p);
}

static struct pending *pending_for(struct mta_sts *s, const char *domain, const char *id)
{
    for (struct pending *p = s->pendings; p; p = p->next)
        if (strcmp(p->domain, domain) == 0)
            return p; /* one fetch per domain: whatever it brings is the newest policy */
    struct pending *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->s = s;
    snprintf(p->domain, sizeof p->domain, "%s", domain);
    snprintf(p->id, sizeof p->id, "%s", id);
    p->next = s->pendings;
    if (s->pendings)
        s->pendings->prev = p;
    s->pendings = p;
    char host[300];
    snprintf(host, sizeof host, "mta-sts.%s", domain);
    p->addr = mta_resolve(s->resolver, POSTMESH__RESOLVE_REQUEST__KIND__A, host, on_address, p);
    return p;
}

/* ------------------------------------------------------------------ the TXT answer */
static void on_txt(const Postmesh__ResolveReply *reply, const char *error, void *arg)
{
    struct lookup *l = arg;
    struct mta_sts *s = l->s;
    l->txt = 0;
    uint64_t now = now_s();
    const struct mta_sts_policy *cached = mta_sts_cache_get(s->cache, l->domain, now);
    char id[33] = "", why[256];
    int rc;
    if (!reply) {
        rc = -1;
        snprintf(why, sizeof why, "_mta-sts TXT lookup: %s", error ? error : "no answer");
    } else if (reply->status != POSTMESH__RESOLVE_REPLY__STATUS__OK) {
        rc = reply->status == POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL ? 0 : -1;
        snprintf(why, sizeof why, "_mta-sts TXT lookup: %s", reply->text && reply->text[0] ? reply->text : "failed");
    } else {
        rc = mta_sts_txt_parse((const char *const *)reply->texts, reply->n_texts, id, why, sizeof why);
    }
    if (rc != 1) {
        if (cached)
            answer_policy(l, cached, "cache");
        else
            answer_none(l, why);
        return;
    }
    if (cached && strcmp(cached->id, id) == 0) {
        /* The same policy: it applies now; past half its life it is fetched again behind. */
        uint64_t fetched = cached->expires - cached->max_age;
        if (now - fetched > cached->max_age / 2 && !failure_find(s, l->domain, id, now))
            pending_for(s, l->domain, id);
        answer_policy(l, cached, "cache");
        return;
    }
    const struct failure *f = failure_find(s, l->domain, id, now);
    if (f) {
        if (cached)
            answer_policy(l, cached, "cache");
        else
            answer_failed(l, f->result_type, f->why);
        return;
    }
    struct pending *p = pending_for(s, l->domain, id);
    l->pending = p;
    l->wnext = p->waiters;
    p->waiters = l;
}

/* ------------------------------------------------------------------ the API */
struct mta_sts *mta_sts_new(struct event_base *base, struct mta_resolver *resolver, const struct pm_config *cfg)
{
    if (!pre.ready) {
        pm_log(PM_ERR, "event=mta_sts_error reason=\"mta_sts_preload was not called before the sandbox\"");
        return NULL;
    }
    struct mta_sts *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->base = base;
    s->resolver = resolver;
    s->cache = mta_sts_cache_open(pre.dir, now_s());
    long connect_ms = (long)cfg->mta.connect_timeout * 1000;
    long total_ms = connect_ms * 2 > 60000 ? 60000 : connect_ms * 2;
    s->fetcher = mta_sts_fetcher_new(base, pre.ca, pre.ca_len, (long)cfg->mta.mta_sts_port, connect_ms, total_ms);
    if (!s->cache || !s->fetcher) {
        mta_sts_free(s);
        return NULL;
    }
    return s;
}

void mta_sts_free(struct mta_sts *s)
{
    if (!s)
        return;
    while (s->lookups) {
        struct lookup *l = s->lookups;
        lookup_unlink(l);
        free(l);
    }
    while (s->pendings)
        pending_free(s->pendings);
    mta_sts_fetcher_free(s->fetcher);
    mta_sts_cache_free(s->cache);
    free(s);
}

uint64_t mta_sts_lookup(struct mta_sts *s, const char *domain, mta_sts_cb cb, void *arg)
{
    struct lookup *l = calloc(1, sizeof *l);
    if (!l)
        abort();
    l->s = s;
    l->handle = ++s->next_handle;
    l->cb = cb;
    l->arg = arg;
    snprintf(l->domain, sizeof l->domain, "%s", domain ? domain : "");
    size_t len = strlen(l->domain);
    if (len && l->domain[len - 1] == '.')
        l->domain[len - 1] = '\0'; /* "example.com." is example.com */
    l->next = s->lookups;
    if (s->lookups)
        s->lookups->prev = l;
    s->lookups = l;
    /* A name that cannot be a policy domain (a literal, a path) has no policy. */
    size_t n = strlen(l->domain);
    if (n == 0 || n > 245 || !mta_sts_cache_name_ok(l->domain) || strstr(l->domain, "..")) {
        l->later = evtimer_new(s->base, on_later, l);
        if (!l->later)
            abort();
        struct timeval zero = {0, 0};
        evtimer_add(l->later, &zero);
        return l->handle;
    }
    char name[300];
    snprintf(name, sizeof name, "_mta-sts.%s", l->domain);
    l->txt = mta_resolve(s->resolver, POSTMESH__RESOLVE_REQUEST__KIND__TXT, name, on_txt, l);
    return l->handle;
}

void mta_sts_cancel(struct mta_sts *s, uint64_t handle)
{
    for (struct lookup *l = s->lookups; l; l = l->next)
        if (l->handle == handle) {
            lookup_unlink(l);
            free(l);
            return;
        }
}
