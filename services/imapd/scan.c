/* Walking a folder's new/ and cur/, and the locked refresh of its UID list (store_int.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mflags.h"
#include "store_int.h"

/* lstat of path: 1 a directory, 0 missing or no directory, 2 a symlink, -1 error. */
static int dir_kind(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
    return S_ISLNK(st.st_mode) ? 2 : S_ISDIR(st.st_mode);
}

int imap_folder_dir_check(const char *dir)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    const char *slash = memrchr(dir, '/', len);
    const char *last = slash ? slash + 1 : dir;
    /* A Maildir++ folder's own directory; INBOX's (the Maildir) is the administrator's. */
    int k = last[0] == '.' && last + 1 < dir + len ? dir_kind(dir) : 1;
    static const char *const subs[] = {"cur", "new", "tmp"};
    for (size_t i = 0; k == 1 && i < 3; i++) {
        char path[4096];
        if (imap_path(path, sizeof path, "%s/%s", dir, subs[i]) < 0)
            return -1;
        k = dir_kind(path);
        if (k == 0 && i > 0)
            k = 1; /* new/ and tmp/ may be missing (made when needed) */
    }
    if (k == 2) {
        char dv[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=folder_symlink_refused dir=%s", PM_LV(dv, dir));
        return 0;
    }
    return k;
}

static int scan_sub(const char *dir, const char *sub, int in_new, imap_scan_fn *fn, void *arg)
{
    char path[4096];
    if (imap_path(path, sizeof path, "%s/%s", dir, sub) < 0)
        return -1;
    /* O_NOFOLLOW: a cur/ or new/ made a symlink after imap_folder_dir_check is not read. */
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        errno = e;
        return e == ENOENT ? 1 : -1;
    }
    struct dirent *e;
    int rc = 0;
    size_t seen = 0;
    while (rc == 0 && seen++ < IMAP_SCAN_DIR_MAX && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (e->d_type != DT_REG) {
            struct stat st;
            /* Only file systems without d_type pay a stat per entry. */
            if (e->d_type != DT_UNKNOWN || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                !S_ISREG(st.st_mode))
                continue;
        }
        size_t keylen = imap_mflags_keylen(e->d_name);
        if (!imap_uidlist_key_ok(e->d_name, keylen) || strlen(e->d_name) > IMAP_NAME_MAX)
            continue;
        rc = fn(arg, e->d_name, keylen, in_new);
    }
    closedir(d);
    return rc;
}

int imap_scan_folder(const char *dir, imap_scan_fn *fn, void *arg)
{
    /* new/ first: a file another reader moves new/ -> cur/ while we read is then seen in
     * one or the other (the move is done before we open cur/ if we missed it in new/). */
    int rc = scan_sub(dir, "new", 1, fn, arg);
    if (rc < 0)
        return -1;
    return scan_sub(dir, "cur", 0, fn, arg);
}

int64_t imap_name_size(const char *name)
{
    size_t keylen = imap_mflags_keylen(name);
    for (size_t i = 0; i + 3 < keylen; i++) {
        if (name[i] != ',' || name[i + 1] != 'S' || name[i + 2] != '=')
            continue;
        int64_t v = 0;
        size_t j = i + 3;
        if (j >= keylen || name[j] < '0' || name[j] > '9')
            return -1;
        for (; j < keylen && name[j] >= '0' && name[j] <= '9'; j++) {
            v = v * 10 + (name[j] - '0');
            if (v > ((int64_t)1 << 50))
                return -1;
        }
        return j == keylen || name[j] == ',' ? v : -1;
    }
    return -1;
}

int imap_is_recent(const struct imap_uidlist *ul, uint32_t uid, int in_new)
{
    return in_new || uid >= ul->first_recent;
}

static const char *snap_key(const void *ctx, uint32_t pos, size_t *len)
{
    const struct imap_fsnap *s = ctx;
    *len = imap_mflags_keylen(s->v[pos].name);
    return s->v[pos].name;
}

void imap_fsnap_free(struct imap_fsnap *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].name);
    free(s->v);
    imap_keyhash_free(&s->hash);
    *s = (struct imap_fsnap){0};
}

/* Adds a scanned name to the snapshot; a key seen twice keeps its cur/ name (a file both
 * in new/ and cur/ is one another reader is moving, or a duplicate delivery). */
static int snap_add(void *arg, const char *name, size_t keylen, int in_new)
{
    struct imap_fsnap *s = arg;
    long i = imap_keyhash_find(&s->hash, snap_key, s, name, keylen);
    if (i >= 0) {
        if (!in_new && s->v[i].in_new) {
            char *n = strdup(name);
            if (!n)
                return -1;
            free(s->v[i].name);
            s->v[i].name = n;
            s->v[i].in_new = 0;
        }
        return 0;
    }
    if (s->n >= IMAP_UIDLIST_MAX)
        return 0; /* beyond the bound the rest is not seen */
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        struct imap_fentry *nv = realloc(s->v, ncap * sizeof *nv);
        if (!nv)
            return -1;
        s->v = nv;
        s->cap = ncap;
    }
    char *n = strdup(name);
    if (!n)
        return -1;
    s->v[s->n] = (struct imap_fentry){.name = n, .in_new = (uint8_t)in_new, .size = imap_name_size(name),
                                      .mtime = INT64_MIN};
    if (imap_keyhash_add(&s->hash, snap_key, s, (uint32_t)s->n) < 0) {
        free(n);
        return -1;
    }
    s->n++;
    return 0;
}

static int keep_if_scanned(void *arg, const char *key)
{
    const struct imap_fsnap *s = arg;
    return imap_keyhash_find(&s->hash, snap_key, s, key, strlen(key)) >= 0;
}

/* For sorting new keys by arrival. */
struct newent {
    size_t idx;
    int64_t mtime;
    const char *name;
};

static int cmp_new(const void *a, const void *b)
{
    const struct newent *x = a, *y = b;
    if (x->mtime != y->mtime)
        return x->mtime < y->mtime ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_uid(const void *a, const void *b)
{
    const struct imap_fentry *x = a, *y = b;
    return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* Gives UIDs to the snapshot's keys the list lacks, oldest file first; entries whose file
 * vanished or that the full list cannot take are dropped. Returns how many were added. */
static size_t assign_new(const char *dir, struct imap_uidlist *ul, struct imap_fsnap *snap)
{
    struct newent *nv = NULL;
    size_t nn = 0;
    for (size_t i = 0; i < snap->n; i++) {
        struct imap_fentry *e = &snap->v[i];
        e->uid = imap_uidlist_find(ul, e->name, imap_mflags_keylen(e->name));
        if (e->uid)
            continue;
        if (!nv && !(nv = malloc(snap->n * sizeof *nv)))
            continue; /* out of memory: no UID now (dropped below), the next refresh tries again */
        char path[4096];
        struct stat st;
        if (imap_path(path, sizeof path, "%s/%s/%s", dir, e->in_new ? "new" : "cur", e->name) < 0 ||
            stat(path, &st) < 0)
            continue; /* vanished since the scan */
        e->mtime = (int64_t)st.st_mtim.tv_sec;
        if (e->size < 0)
            e->size = (int64_t)st.st_size;
        nv[nn++] = (struct newent){.idx = i, .mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
                                   .name = e->name};
    }
    if (nn > 1)
        qsort(nv, nn, sizeof *nv, cmp_new);
    size_t added = 0;
    for (size_t j = 0; j < nn; j++) {
        struct imap_fentry *e = &snap->v[nv[j].idx];
        e->uid = imap_uidlist_add(ul, e->name, imap_mflags_keylen(e->name));
        added += e->uid != 0;
    }
    free(nv);
    size_t o = 0;
    for (size_t i = 0; i < snap->n; i++) {
        if (snap->v[i].uid)
            snap->v[o++] = snap->v[i];
        else
            free(snap->v[i].name);
    }
    snap->n = o;
    return added;
}

int imap_refresh(const char *dir, struct imap_uidlist *ul, int *listrc,
                 int (*seed)(void *arg, struct imap_uidlist *ul, int listrc), void *seed_arg, uint32_t *take_recent,
                 struct imap_fsnap *snap)
{
    *snap = (struct imap_fsnap){0};
    *listrc = imap_uidlist_load(dir, ul);
    if (*listrc == IMAP_UIDLIST_ERR)
        return -1;
    int seeded = seed ? seed(seed_arg, ul, *listrc) : 0;
    int rc = imap_scan_folder(dir, snap_add, snap);
    if (rc != 0)
        goto fail;
    /* A listed key not found: look once more before it counts as gone, so a flag rename by
     * another session during our readdir does not cost the message its UID. */
    size_t missing = 0;
    for (size_t i = 0; i < ul->n && !missing; i++)
        missing += !keep_if_scanned(snap, ul->v[i].key);
    if (missing && (rc = imap_scan_folder(dir, snap_add, snap)) != 0)
        goto fail;
    size_t before = ul->n;
    imap_uidlist_prune(ul, keep_if_scanned, snap);
    int changed = ul->n != before || *listrc != IMAP_UIDLIST_OK || seeded > 0;
    changed |= assign_new(dir, ul, snap) > 0;
    /* A list made now finds messages that were there before it: those in cur/ were seen by
     * some reader (Maildir's meaning of cur/), those in new/ stay recent; whatever comes
     * later (delivery, APPEND, COPY) is. */
    if (*listrc != IMAP_UIDLIST_OK)
        ul->first_recent = ul->uidnext;
    if (take_recent && seeded >= 0) {
        /* Written with the list, under the lock: the next taker starts where we end. */
        *take_recent = ul->first_recent;
        changed |= ul->first_recent != ul->uidnext;
        ul->first_recent = ul->uidnext;
    }
    if (changed && imap_uidlist_write(dir, ul) < 0) {
        rc = -1;
        goto fail;
    }
    if (snap->n > 1)
        qsort(snap->v, snap->n, sizeof *snap->v, cmp_uid);
    imap_keyhash_free(&snap->hash); /* positions changed; callers walk the array */
    return 0;
fail:
    imap_fsnap_free(snap);
    return rc;
}
