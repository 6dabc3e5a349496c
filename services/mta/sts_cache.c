/* The file of one domain:
 *   postmesh-mta-sts 1\n
 *   domain <domain>\n id <id>\n fetched <unix>\n expires <unix>\n
 *   \n
 *   <the policy body as served>
 * Temporary files are ".tmp-<domain>" (a name no domain has); the store's directory is held
 * open and every name is relative to it (openat, renameat), so nothing outside it is touched. */
#include "sts_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "logvalue.h"
#include "sts_policy.h"

#define FILE_MAGIC "postmesh-mta-sts 1\n"
#define HEADER_MAX 512 /* the header lines above, whatever the domain */

struct entry {
    char domain[254];
    struct mta_sts_policy p;
    uint64_t fetched;
    uint64_t used; /* a counter, for least recently used */
};

struct mta_sts_cache {
    int dirfd;
    struct entry *e[MTA_STS_CACHE_MEMORY];
    size_t n;
    uint64_t clock;
};

int mta_sts_cache_name_ok(const char *d)
{
    size_t n = d ? strlen(d) : 0;
    if (n == 0 || n > 253 || d[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static void entry_free(struct entry *e)
{
    if (e) {
        free(e->p.text);
        free(e);
    }
}

static size_t find(const struct mta_sts_cache *c, const char *domain)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i]->domain, domain) == 0)
            return i;
    return (size_t)-1;
}

static void forget(struct mta_sts_cache *c, size_t i)
{
    entry_free(c->e[i]);
    c->e[i] = c->e[--c->n];
}

/* Memory full: the least recently used goes (its file stays). */
static void insert(struct mta_sts_cache *c, struct entry *e)
{
    size_t old = find(c, e->domain);
    if (old != (size_t)-1)
        forget(c, old);
    if (c->n == MTA_STS_CACHE_MEMORY) {
        size_t lru = 0;
        for (size_t i = 1; i < c->n; i++)
            if (c->e[i]->used < c->e[lru]->used)
                lru = i;
        forget(c, lru);
    }
    e->used = ++c->clock;
    c->e[c->n++] = e;
}

/* ------------------------------------------------------------------ files */
static int header_u64(const char **s, const char *key, uint64_t *v)
{
    size_t k = strlen(key);
    if (strncmp(*s, key, k) != 0 || (*s)[k] != ' ')
        return -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(*s + k + 1, &end, 10);
    if (errno || end == *s + k + 1 || *end != '\n')
        return -1;
    *v = x;
    *s = end + 1;
    return 0;
}

static int header_word(const char **s, const char *key, char *out, size_t size)
{
    size_t k = strlen(key);
    if (strncmp(*s, key, k) != 0 || (*s)[k] != ' ')
        return -1;
    const char *v = *s + k + 1, *nl = strchr(v, '\n');
    if (!nl || (size_t)(nl - v) >= size || nl == v)
        return -1;
    memcpy(out, v, (size_t)(nl - v));
    out[nl - v] = '\0';
    *s = nl + 1;
    return 0;
}

/* Reads and checks one file: NULL when it is not a policy of that domain any more (why). */
static struct entry *read_file(int dirfd, const char *domain, uint64_t now, const char **why)
{
    *why = "unreadable";
    int fd = openat(dirfd, domain, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = HEADER_MAX + MTA_STS_MAX_POLICY + 1, len = 0;
    char *buf = malloc(cap + 1);
    struct entry *e = calloc(1, sizeof *e);
    struct stat st;
    if (!buf || !e || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        goto bad;
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto bad;
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == cap) {
            *why = "too large";
            goto bad;
        }
    }
    buf[len] = '\0';
    *why = "malformed";
    const char *s = buf;
    char name[254];
    uint64_t expires;
    if (strncmp(s, FILE_MAGIC, strlen(FILE_MAGIC)) != 0)
        goto bad;
    s += strlen(FILE_MAGIC);
    if (header_word(&s, "domain", name, sizeof name) < 0 || strcmp(name, domain) != 0 ||
        header_word(&s, "id", e->p.id, sizeof e->p.id) < 0 || header_u64(&s, "fetched", &e->fetched) < 0 ||
        header_u64(&s, "expires", &expires) < 0 || *s != '\n')
        goto bad;
    s++;
    size_t body_len = len - (size_t)(s - buf);
    char perr[160];
    if (memchr(s, '\0', body_len) || mta_sts_policy_parse(s, body_len, &e->p, perr, sizeof perr) < 0)
        goto bad;
    if (expires != e->fetched + e->p.max_age) {
        *why = "expiry does not match max_age";
        goto bad;
    }
    if (expires <= now) {
        *why = "expired";
        goto bad;
    }
    e->p.expires = expires;
    e->p.text = malloc(body_len + 1);
    if (!e->p.text)
        goto bad;
    memcpy(e->p.text, s, body_len);
    e->p.text[body_len] = '\0';
    snprintf(e->domain, sizeof e->domain, "%s", domain);
    free(buf);
    close(fd);
    return e;
bad:
    free(buf);
    entry_free(e);
    close(fd);
    return NULL;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_file(int dirfd, const struct entry *e, const char *text, size_t len)
{
    char tmp[300], head[HEADER_MAX];
    snprintf(tmp, sizeof tmp, ".tmp-%s", e->domain);
    int hl = snprintf(head, sizeof head, FILE_MAGIC "domain %s\nid %s\nfetched %" PRIu64 "\nexpires %" PRIu64 "\n\n",
                      e->domain, e->p.id, e->fetched, e->p.expires);
    if (hl < 0 || (size_t)hl >= sizeof head)
        return -1;
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = write_all(fd, head, (size_t)hl) == 0 && write_all(fd, text, len) == 0 && fsync(fd) == 0 ? 0 : -1;
    if (close(fd) < 0)
        rc = -1;
    if (rc == 0 && renameat(dirfd, tmp, dirfd, e->domain) == 0 && fsync(dirfd) == 0)
        return 0;
    int saved = errno;
    unlinkat(dirfd, tmp, 0);
    errno = saved;
    return -1;
}

/* ------------------------------------------------------------------ the store */
static void load_all(struct mta_sts_cache *c, uint64_t now)
{
    int fd = dup(c->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    size_t kept = 0, dropped = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (strncmp(name, ".tmp-", 5) == 0) { /* a write a crash interrupted */
            unlinkat(c->dirfd, name, 0);
            continue;
        }
        const char *why = "not a domain name";
        struct entry *e = mta_sts_cache_name_ok(name) ? read_file(c->dirfd, name, now, &why) : NULL;
        if (!e) {
            char v[PM_LOGV_SIZE];
            pm_log(PM_INFO, "event=mta_sts_cache_drop file=%s reason=\"%s\"", PM_LOGV(v, name), why);
            unlinkat(c->dirfd, name, 0);
            dropped++;
            continue;
        }
        /* The newest fetches win a place in memory; the rest are read when asked for. */
        e->used = e->fetched;
        if (c->n < MTA_STS_CACHE_MEMORY) {
            c->e[c->n++] = e;
        } else {
            size_t old = 0;
            for (size_t i = 1; i < c->n; i++)
                if (c->e[i]->used < c->e[old]->used)
                    old = i;
            if (c->e[old]->used < e->used) {
                entry_free(c->e[old]);
                c->e[old] = e;
            } else {
                entry_free(e);
            }
        }
        kept++;
    }
    closedir(d);
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i]->used > c->clock)
            c->clock = c->e[i]->used;
    pm_log(PM_INFO, "event=mta_sts_cache_loaded policies=%zu in_memory=%zu dropped=%zu", kept, c->n, dropped);
}

struct mta_sts_cache *mta_sts_cache_open(const char *dir, uint64_t now)
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        pm_log(PM_ERR, "event=mta_sts_cache_error step=mkdir dir=%s error=\"%s\"", dir, strerror(errno));
        return NULL;
    }
    struct mta_sts_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (c->dirfd < 0) {
        pm_log(PM_ERR, "event=mta_sts_cache_error step=open dir=%s error=\"%s\"", dir, strerror(errno));
        free(c);
        return NULL;
    }
    load_all(c, now);
    return c;
}

void mta_sts_cache_free(struct mta_sts_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        entry_free(c->e[i]);
    close(c->dirfd);
    free(c);
}

size_t mta_sts_cache_count(const struct mta_sts_cache *c) { return c ? c->n : 0; }

const struct mta_sts_policy *mta_sts_cache_get(struct mta_sts_cache *c, const char *domain, uint64_t now)
{
    if (!c || !mta_sts_cache_name_ok(domain))
        return NULL;
    size_t i = find(c, domain);
    if (i == (size_t)-1) {
        const char *why;
        struct entry *e = read_file(c->dirfd, domain, now, &why);
        if (!e) {
            if (strcmp(why, "unreadable") != 0)
                unlinkat(c->dirfd, domain, 0);
            return NULL;
        }
        insert(c, e);
        i = find(c, domain);
    }
    struct entry *e = c->e[i];
    if (e->p.expires <= now) {
        forget(c, i);
        unlinkat(c->dirfd, domain, 0);
        return NULL;
    }
    e->used = ++c->clock;
    return &e->p;
}

int mta_sts_cache_put(struct mta_sts_cache *c, const char *domain, const struct mta_sts_policy *p,
                      const char *text, size_t len, uint64_t fetched)
{
    if (!c || !mta_sts_cache_name_ok(domain) || len > MTA_STS_MAX_POLICY)
        return -1;
    if (p->max_age == 0) { /* expired as it came: nothing to keep, and what was kept is old */
        size_t old = find(c, domain);
        if (old != (size_t)-1)
            forget(c, old);
        if (unlinkat(c->dirfd, domain, 0) == 0)
            fsync(c->dirfd);
        return 0;
    }
    struct entry *e = calloc(1, sizeof *e);
    char *copy = malloc(len + 1);
    if (!e || !copy) {
        free(e);
        free(copy);
        return -1;
    }
    e->p = *p;
    e->p.text = copy;
    memcpy(copy, text, len);
    copy[len] = '\0';
    e->fetched = fetched;
    e->p.expires = fetched + p->max_age;
    snprintf(e->domain, sizeof e->domain, "%s", domain);
    int rc = write_file(c->dirfd, e, text, len);
    if (rc < 0)
        pm_log(PM_WARN, "event=mta_sts_cache_error step=write domain=%s error=\"%s\"", domain, strerror(errno));
    insert(c, e);
    return rc;
}
