/* postmesh-uidlist: reading (bounded, strict), assigning, atomic writing (uidlist.h). */
#include "uidlist.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mailstore.h"
#include "store_int.h"
#include "mflags.h"

/* Version 2 added the first recent UID; version 1 lists (no such field) are still read. */
#define MAGIC "postmesh-uidlist "

static const char *key_at(const void *ctx, uint32_t pos, size_t *len)
{
    const struct imap_uidlist *ul = ctx;
    *len = strlen(ul->v[pos].key);
    return ul->v[pos].key;
}

int imap_uidlist_key_ok(const char *key, size_t keylen)
{
    if (keylen == 0 || keylen > IMAP_NAME_MAX || key[0] == '.')
        return 0;
    for (size_t i = 0; i < keylen; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == ':')
            return 0;
    }
    return 1;
}

int imap_uidlist_lock(const char *dir)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/" IMAP_UIDLIST_LOCK, dir) >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0660);
    if (fd < 0)
        return -1;
    /* flock is per open file: two views in this process exclude each other as two
     * processes do, and the kernel drops it if we die holding it. */
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    return fd;
}

void imap_uidlist_unlock(int lock_fd)
{
    if (lock_fd >= 0)
        close(lock_fd); /* closing the last fd of the open file releases the flock */
}

int imap_uidlist_init(struct imap_uidlist *ul, uint32_t uidvalidity)
{
    uint32_t now = (uint32_t)time(NULL);
    *ul = (struct imap_uidlist){.uidvalidity = uidvalidity ? uidvalidity : now ? now : 1, .uidnext = 1,
                                .first_recent = 1};
    return 0;
}

void imap_uidlist_free(struct imap_uidlist *ul)
{
    for (size_t i = 0; i < ul->n; i++)
        free(ul->v[i].key);
    free(ul->v);
    imap_keyhash_free(&ul->hash);
    *ul = (struct imap_uidlist){0};
}

static void clear_entries(struct imap_uidlist *ul)
{
    for (size_t i = 0; i < ul->n; i++)
        free(ul->v[i].key);
    ul->n = 0;
    imap_keyhash_free(&ul->hash);
}

uint32_t imap_uidlist_find(const struct imap_uidlist *ul, const char *key, size_t keylen)
{
    long i = imap_keyhash_find(&ul->hash, key_at, ul, key, keylen);
    return i < 0 ? 0 : ul->v[i].uid;
}

static int reserve(struct imap_uidlist *ul)
{
    if (ul->n < ul->cap)
        return 0;
    size_t ncap = ul->cap ? ul->cap * 2 : 64;
    struct imap_uident *nv = realloc(ul->v, ncap * sizeof *nv);
    if (!nv)
        return -1;
    ul->v = nv;
    ul->cap = ncap;
    return 0;
}

/* Appends (uid, key) at the end (uid above all others). 0 or -1. */
static int append(struct imap_uidlist *ul, uint32_t uid, const char *key, size_t keylen)
{
    if (ul->n >= IMAP_UIDLIST_MAX || reserve(ul) < 0)
        return -1;
    char *k = strndup(key, keylen);
    if (!k)
        return -1;
    ul->v[ul->n] = (struct imap_uident){.uid = uid, .key = k};
    if (imap_keyhash_add(&ul->hash, key_at, ul, (uint32_t)ul->n) < 0) {
        free(k);
        return -1;
    }
    ul->n++;
    return 0;
}

uint32_t imap_uidlist_add(struct imap_uidlist *ul, const char *key, size_t keylen)
{
    if (!imap_uidlist_key_ok(key, keylen) || ul->uidnext == 0 || ul->uidnext == UINT32_MAX)
        return 0;
    uint32_t uid = ul->uidnext;
    if (append(ul, uid, key, keylen) < 0)
        return 0;
    ul->uidnext++;
    return uid;
}

int imap_uidlist_put(struct imap_uidlist *ul, uint32_t uid, const char *key, size_t keylen)
{
    if (uid == 0 || uid == UINT32_MAX || !imap_uidlist_key_ok(key, keylen))
        return -1;
    if (ul->n == 0 || ul->v[ul->n - 1].uid < uid) {
        if (append(ul, uid, key, keylen) < 0)
            return -1;
    } else {
        size_t lo = 0, hi = ul->n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (ul->v[mid].uid < uid)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (ul->v[lo].uid == uid || ul->n >= IMAP_UIDLIST_MAX || reserve(ul) < 0)
            return -1; /* that UID is another key's: keep the file's */
        char *k = strndup(key, keylen);
        if (!k)
            return -1;
        memmove(&ul->v[lo + 1], &ul->v[lo], (ul->n - lo) * sizeof *ul->v);
        ul->v[lo] = (struct imap_uident){.uid = uid, .key = k};
        ul->n++;
        if (imap_keyhash_build(&ul->hash, key_at, ul, (uint32_t)ul->n) < 0)
            return -1;
    }
    if (ul->uidnext <= uid)
        ul->uidnext = uid + 1;
    return 0;
}

void imap_uidlist_prune(struct imap_uidlist *ul, int (*keep)(void *arg, const char *key), void *arg)
{
    size_t o = 0;
    for (size_t i = 0; i < ul->n; i++) {
        if (keep(arg, ul->v[i].key))
            ul->v[o++] = ul->v[i];
        else
            free(ul->v[i].key);
    }
    if (o == ul->n)
        return;
    ul->n = o;
    if (imap_keyhash_build(&ul->hash, key_at, ul, (uint32_t)ul->n) < 0)
        clear_entries(ul); /* out of memory: an empty list is only a cache miss for views */
}

/* A decimal uint32 at *p, advancing it; 0 at a syntax error (0 is no valid value here). */
static uint32_t parse_u32(const char **p, const char *end)
{
    uint64_t v = 0;
    const char *s = *p;
    if (s == end || *s < '1' || *s > '9')
        return 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX)
            return 0;
    }
    *p = s;
    return (uint32_t)v;
}

/* Parses buf[0..len) into ul (empty, initialised). 0, or -1 if corrupt; *oldvalidity is the
 * header's UIDVALIDITY if that much was readable. */
static int parse(struct imap_uidlist *ul, const char *buf, size_t len, uint32_t *oldvalidity)
{
    const char *p = buf, *end = buf + len;
    if (len < sizeof MAGIC + 1 || memcmp(p, MAGIC, sizeof MAGIC - 1) != 0)
        return -1;
    p += sizeof MAGIC - 1;
    char version = *p++;
    if ((version != '1' && version != '2') || *p++ != ' ')
        return -1;
    uint32_t validity = parse_u32(&p, end);
    if (!validity || p == end || *p++ != ' ')
        return -1;
    *oldvalidity = validity;
    uint32_t next = parse_u32(&p, end);
    /* Version 1 knew no recent UIDs (only new/ was \Recent): none are, beyond new/. */
    uint32_t first_recent = next;
    if (!next || p == end || (version == '2' && (*p++ != ' ' || !(first_recent = parse_u32(&p, end)) ||
                                                 first_recent > next || p == end)))
        return -1;
    if (*p++ != '\n')
        return -1;
    ul->uidvalidity = validity;
    ul->uidnext = next;
    ul->first_recent = first_recent;
    uint32_t last = 0;
    while (p < end) {
        uint32_t uid = parse_u32(&p, end);
        if (!uid || uid <= last || uid >= next || p == end || *p++ != ' ')
            return -1;
        const char *key = p;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *kend = nl ? nl : end;
        size_t klen = (size_t)(kend - key);
        if (!imap_uidlist_key_ok(key, klen) || imap_uidlist_find(ul, key, klen) || append(ul, uid, key, klen) < 0)
            return -1;
        last = uid;
        p = nl ? nl + 1 : end;
    }
    return 0;
}

/* The whole file into a malloc'd buffer. 0, 1 if missing, -1 on error (errno); a file
 * larger than IMAP_UIDLIST_FILE_MAX reads as corrupt (*buf NULL, return 0). */
static int read_file(const char *path, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK); /* a FIFO must not block us */
    if (fd < 0)
        return errno == ENOENT ? 1 : -1;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)IMAP_UIDLIST_FILE_MAX) {
        close(fd);
        return 0; /* no list we wrote: corrupt */
    }
    size_t want = (size_t)st.st_size, got = 0;
    char *b = malloc(want + 1);
    if (!b) {
        close(fd);
        return -1;
    }
    while (got < want) {
        ssize_t r = read(fd, b + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* shorter than fstat said: parse what there is (a writer never truncates) */
        got += (size_t)r;
    }
    close(fd);
    b[got] = '\0';
    *buf = b;
    *len = got;
    return 0;
}

int imap_uidlist_load(const char *dir, struct imap_uidlist *ul)
{
    *ul = (struct imap_uidlist){0};
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/" IMAP_UIDLIST_FILE, dir) >= sizeof path) {
        errno = ENAMETOOLONG;
        return IMAP_UIDLIST_ERR;
    }
    char *buf;
    size_t len;
    int rc = read_file(path, &buf, &len);
    if (rc < 0)
        return IMAP_UIDLIST_ERR;
    if (rc == 1) {
        /* A folder never selected, or one made again under an old name, or a lost list:
         * the user's counter gives a UIDVALIDITY no earlier list of that name had. */
        uint32_t validity = imap_uidvalidity_next(dir, 0);
        if (!validity)
            return IMAP_UIDLIST_ERR;
        imap_uidlist_init(ul, validity);
        return IMAP_UIDLIST_NEW;
    }
    errno = 0;
    uint32_t oldvalidity = 0;
    int ok = buf && parse(ul, buf, len, &oldvalidity) == 0;
    free(buf);
    if (ok && ul->uidnext <= IMAP_UIDNEXT_LIMIT)
        return IMAP_UIDLIST_OK;
    if (ok)
        errno = 0; /* UIDs (nearly) used up: renumber from 1 under a new UIDVALIDITY */
    /* No value is above 2^32 - 1 (a hostile header): one the counter gives differs from it,
     * which is what clients check. */
    if (oldvalidity == UINT32_MAX)
        oldvalidity = 0;
    if (errno == ENOMEM) {
        imap_uidlist_free(ul);
        return IMAP_UIDLIST_ERR;
    }
    imap_uidlist_free(ul);
    uint32_t validity = imap_uidvalidity_next(dir, oldvalidity);
    if (!validity)
        return IMAP_UIDLIST_ERR;
    imap_uidlist_init(ul, validity);
    return IMAP_UIDLIST_RESET;
}

int imap_uidlist_write(const char *dir, const struct imap_uidlist *ul)
{
    char tmp[4096], path[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/" IMAP_UIDLIST_TMP, dir) >= sizeof tmp ||
        (size_t)snprintf(path, sizeof path, "%s/" IMAP_UIDLIST_FILE, dir) >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    size_t cap = 80 + ul->n * 13, o = 0;
    for (size_t i = 0; i < ul->n; i++)
        cap += strlen(ul->v[i].key);
    char *buf = malloc(cap);
    if (!buf)
        return -1;
    uint32_t first_recent = ul->first_recent && ul->first_recent <= ul->uidnext ? ul->first_recent : ul->uidnext;
    o += (size_t)snprintf(buf, cap, MAGIC "2 %u %u %u\n", ul->uidvalidity, ul->uidnext, first_recent);
    for (size_t i = 0; i < ul->n; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%u %s\n", ul->v[i].uid, ul->v[i].key);
    /* The tmp name is fixed: only the lock holder writes it. Once the directory is synced
     * the new list survives a crash, so no UID handed out from it is handed out again for
     * another key. */
    int rc = imap_write_whole(dir, tmp, path, buf, o);
    int e = errno;
    free(buf);
    errno = e;
    return rc;
}
