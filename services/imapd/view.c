/* The selected folder: open, close and sync with what other processes did (view.h). The
 * locked refresh is view_refresh.c, accessors view_msg.c, changing messages view_ops.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mflags.h"
#include "store_int.h"
#include "view_int.h"

const char *imap_view_msg_key(const void *ctx, uint32_t pos, size_t *len)
{
    const struct imap_view *v = ctx;
    *len = imap_mflags_keylen(v->m[pos].name);
    return v->m[pos].name;
}

const char *imap_view_hidden_key(const void *ctx, uint32_t pos, size_t *len)
{
    const struct imap_view *v = ctx;
    *len = strlen(v->hidden[pos]);
    return v->hidden[pos];
}

int imap_view_rehash(struct imap_view *v)
{
    return imap_keyhash_build(&v->hash, imap_view_msg_key, v, (uint32_t)v->n);
}

int imap_view_bufs(struct imap_view *v)
{
    if (v->bufcap >= v->n && v->expbuf)
        return 0;
    size_t cap = v->n + v->n / 2 + 16;
    uint32_t *e = realloc(v->expbuf, cap * sizeof *e);
    if (!e)
        return -1;
    v->expbuf = e;
    uint32_t *f = realloc(v->flagbuf, cap * sizeof *f);
    if (!f)
        return -1;
    v->flagbuf = f;
    v->bufcap = cap;
    return 0;
}

int imap_view_msg_path(const struct imap_view *v, size_t i, char *dst, size_t size)
{
    return imap_path(dst, size, "%s/%s/%s", v->dir, v->m[i].in_new ? "new" : "cur", v->m[i].name);
}

int imap_view_open(const char *dir, int readonly, struct imap_view **out, int *recovered)
{
    *out = NULL;
    if (recovered)
        *recovered = 0;
    int kind = imap_folder_dir_check(dir);
    if (kind <= 0)
        return kind == 0 ? IMAP_VIEW_NONEXISTENT : IMAP_VIEW_ERR;
    struct imap_view *v = calloc(1, sizeof *v);
    if (!v || !(v->dir = strdup(dir))) {
        free(v);
        return IMAP_VIEW_ERR;
    }
    v->readonly = readonly;
    int rc = imap_view_locked_sync(v, 1);
    if (rc < 0 || imap_view_rehash(v) < 0 || imap_view_bufs(v) < 0) {
        imap_view_close(v);
        return IMAP_VIEW_ERR;
    }
    if (recovered)
        *recovered = rc == 2;
    *out = v;
    return IMAP_VIEW_OK;
}

void imap_view_close(struct imap_view *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++)
        free(v->m[i].name);
    for (size_t i = 0; i < v->nhidden; i++)
        free(v->hidden[i]);
    free(v->m);
    free(v->hidden);
    imap_keyhash_free(&v->hash);
    imap_keyhash_free(&v->hidden_hash);
    free(v->expbuf);
    free(v->flagbuf);
    free(v->dir);
    free(v);
}

/* Scan callback: marks known keys (taking the current name), counts unknown ones. */
static int mark_known(void *arg, const char *name, size_t keylen, int in_new)
{
    struct imap_view *v = arg;
    long i = imap_keyhash_find(&v->hash, imap_view_msg_key, v, name, keylen);
    if (i < 0) {
        if (imap_keyhash_find(&v->hidden_hash, imap_view_hidden_key, v, name, keylen) < 0)
            v->unknown++;
        return 0;
    }
    struct vmsg *m = &v->m[i];
    if (m->mark && (in_new || !m->in_new))
        return 0; /* seen already; a cur/ name wins over a new/ one */
    m->mark = 1;
    m->gone = 0; /* a lookup that missed it raced with a rename: it is here */
    if (m->in_new != in_new || strcmp(m->name, name) != 0) {
        char *n = strdup(name);
        if (!n)
            return -1;
        free(m->name);
        m->name = n;
        m->in_new = (uint8_t)in_new;
    }
    return 0;
}

int imap_view_relocate(struct imap_view *v, size_t i)
{
    /* One lookup serves every message: all names are brought up to date, and whatever is
     * not found twice is gone (as in imap_view_sync), so a FETCH over many vanished files
     * costs two directory reads, not two per file. */
    for (size_t j = 0; j < v->n; j++)
        v->m[j].mark = 0;
    v->unknown = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (imap_scan_folder(v->dir, mark_known, v) < 0)
            return -1;
        size_t missing = 0;
        for (size_t j = 0; j < v->n; j++)
            missing += !v->m[j].mark;
        if (!missing)
            break;
    }
    for (size_t j = 0; j < v->n; j++)
        if (!v->m[j].mark)
            v->m[j].gone = 1;
    return v->m[i].mark;
}

size_t imap_view_drop_gone(struct imap_view *v)
{
    size_t o = 0, dropped = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (!v->m[i].gone) {
            v->m[o++] = v->m[i];
            continue;
        }
        /* Each EXPUNGE number is the message's number once the ones before it went. */
        v->expbuf[dropped] = (uint32_t)(i + 1 - dropped);
        dropped++;
        v->nrecent -= (v->m[i].flags & IMAP_F_RECENT) != 0;
        free(v->m[i].name);
    }
    v->n = o;
    if (dropped)
        imap_view_rehash(v); /* out of memory here leaves lookups failing: the next scan retries */
    return dropped;
}

static int finish_sync(struct imap_view *v, int may_expunge, size_t before, struct imap_view_changes *ch);

/* The mtimes of new/ and cur/ now (before any readdir: a change during the scan then shows
 * as a different mtime next time). 0, or -1 if a directory cannot be stat'ed. */
static int dir_times(const struct imap_view *v, struct timespec t[2])
{
    char path[4096];
    struct stat st;
    static const char *const subs[2] = {"new", "cur"};
    for (int i = 0; i < 2; i++) {
        if (imap_path(path, sizeof path, "%s/%s", v->dir, subs[i]) < 0 || stat(path, &st) < 0)
            return -1;
        t[i] = st.st_mtim;
    }
    return 0;
}

/* Nothing changed since the last scan if neither directory's mtime moved, and the last scan
 * ran more than a second after those mtimes: directory mtimes come from a coarse clock, so
 * a change right after a scan may leave the mtime as it was; such a scan is not trusted. */
static int unchanged(const struct imap_view *v, const struct timespec now[2])
{
    if (!v->times_valid)
        return 0;
    for (int i = 0; i < 2; i++)
        if (now[i].tv_sec != v->dir_mtime[i].tv_sec || now[i].tv_nsec != v->dir_mtime[i].tv_nsec ||
            v->scanned_at <= v->dir_mtime[i].tv_sec + 1)
            return 0;
    return 1;
}

int imap_view_sync(struct imap_view *v, int may_expunge, struct imap_view_changes *ch)
{
    *ch = (struct imap_view_changes){.exists = (uint32_t)v->n, .recent = v->nrecent};
    struct timespec times[2];
    time_t started = time(NULL);
    int have_times = dir_times(v, times) == 0;
    if (have_times && unchanged(v, times)) {
        /* An idle session's NOOP costs two stats, not two readdirs. */
        for (size_t i = 0; i < v->n; i++)
            v->m[i].mark = !v->m[i].gone;
        v->unknown = 0;
        return finish_sync(v, may_expunge, v->n, ch);
    }
    v->times_valid = 0;
    for (size_t i = 0; i < v->n; i++)
        v->m[i].mark = 0;
    v->unknown = 0;
    if (imap_scan_folder(v->dir, mark_known, v) < 0)
        return IMAP_VIEW_ERR;
    size_t missing = 0;
    for (size_t i = 0; i < v->n; i++)
        missing += !v->m[i].mark;
    if (missing) {
        /* Look again before calling them gone: a rename elsewhere can hide a name from one
         * readdir. Marks stay, so only the missing ones can still be found. */
        v->unknown = 0;
        if (imap_scan_folder(v->dir, mark_known, v) < 0)
            return IMAP_VIEW_ERR;
    }
    size_t before = v->n;
    if (v->unknown) {
        int rc = imap_view_locked_sync(v, 0);
        if (rc < 0)
            return IMAP_VIEW_ERR;
        if (rc == 1) {
            ch->reselect = 1;
            return IMAP_VIEW_OK;
        }
    }
    int rc = finish_sync(v, may_expunge, before, ch);
    if (rc == IMAP_VIEW_OK && have_times) {
        v->dir_mtime[0] = times[0];
        v->dir_mtime[1] = times[1];
        v->scanned_at = started;
        v->times_valid = 1;
    }
    return rc;
}

/* The common end of a sync: unmarked messages among the first `before` are gone; expunges
 * (if allowed), flag changes and EXISTS into ch. */
static int finish_sync(struct imap_view *v, int may_expunge, size_t before, struct imap_view_changes *ch)
{
    if (imap_view_bufs(v) < 0)
        return IMAP_VIEW_ERR;
    for (size_t i = 0; i < before; i++)
        if (!v->m[i].mark)
            v->m[i].gone = 1;
    if (may_expunge) {
        ch->expunged = v->expbuf;
        ch->nexpunged = imap_view_drop_gone(v);
        before -= ch->nexpunged;
    }
    ch->flags_seq = v->flagbuf;
    for (size_t i = 0; i < before; i++) {
        struct vmsg *m = &v->m[i];
        unsigned disk = imap_mflags_from_name(m->name) & IMAP_F_PERMANENT;
        if (m->gone || disk == (m->flags & IMAP_F_PERMANENT))
            continue;
        m->flags = (uint8_t)(disk | (m->flags & IMAP_F_RECENT));
        v->flagbuf[ch->nflags++] = (uint32_t)(i + 1);
    }
    ch->exists_changed = v->n != before;
    ch->exists = (uint32_t)v->n;
    ch->recent = v->nrecent;
    return IMAP_VIEW_OK;
}
