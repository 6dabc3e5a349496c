/* The selected folder's accessors: counts, per-message UID, flags, size, INTERNALDATE and
 * the file itself, following renames by other sessions (view.h). */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_int.h"
#include "view_int.h"

/* ---- accessors ---- */
const char *imap_view_dir(const struct imap_view *v) { return v->dir; }
int imap_view_readonly(const struct imap_view *v) { return v->readonly; }
uint32_t imap_view_count(const struct imap_view *v) { return (uint32_t)v->n; }
uint32_t imap_view_recent(const struct imap_view *v) { return v->nrecent; }
uint32_t imap_view_uidvalidity(const struct imap_view *v) { return v->uidvalidity; }
uint32_t imap_view_uidnext(const struct imap_view *v) { return v->uidnext; }

uint32_t imap_view_first_unseen(const struct imap_view *v)
{
    for (size_t i = 0; i < v->n; i++)
        if (!(v->m[i].flags & IMAP_F_SEEN))
            return (uint32_t)(i + 1);
    return 0;
}

#define VALID(v, seq) ((seq) >= 1 && (seq) <= (v)->n)

uint32_t imap_view_uid(const struct imap_view *v, uint32_t seq) { return VALID(v, seq) ? v->m[seq - 1].uid : 0; }
unsigned imap_view_flags(const struct imap_view *v, uint32_t seq) { return VALID(v, seq) ? v->m[seq - 1].flags : 0; }
int imap_view_gone(const struct imap_view *v, uint32_t seq) { return VALID(v, seq) ? v->m[seq - 1].gone : 1; }

uint32_t imap_view_uid_at(const void *view, size_t index)
{
    const struct imap_view *v = view;
    return index < v->n ? v->m[index].uid : 0;
}

uint32_t imap_view_seq_of_uid(const struct imap_view *v, uint32_t uid)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->m[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < v->n && v->m[lo].uid == uid ? (uint32_t)(lo + 1) : 0;
}

/* stat of message i, following a rename by another session. 0, or -1 (gone or error). */
static int stat_msg(struct imap_view *v, size_t i, struct stat *st)
{
    char path[4096];
    for (int attempt = 0; attempt < 2; attempt++) {
        if (imap_view_msg_path(v, i, path, sizeof path) < 0)
            return -1;
        if (stat(path, st) == 0)
            return 0;
        if (errno != ENOENT || attempt || imap_view_relocate(v, i) != 1)
            return -1;
    }
    return -1;
}

off_t imap_view_size(struct imap_view *v, uint32_t seq)
{
    if (!VALID(v, seq))
        return -1;
    struct vmsg *m = &v->m[seq - 1];
    if (m->size < 0 && (m->size = imap_name_size(m->name)) < 0) {
        struct stat st;
        if (stat_msg(v, seq - 1, &st) < 0)
            return -1;
        m->size = (int64_t)st.st_size;
        m->mtime = (int64_t)st.st_mtime;
    }
    return (off_t)m->size;
}

int imap_view_internaldate(struct imap_view *v, uint32_t seq, time_t *t)
{
    if (!VALID(v, seq))
        return IMAP_VIEW_GONE;
    struct vmsg *m = &v->m[seq - 1];
    if (m->mtime == INT64_MIN) {
        struct stat st;
        if (stat_msg(v, seq - 1, &st) < 0)
            return IMAP_VIEW_GONE;
        m->mtime = (int64_t)st.st_mtime;
        if (m->size < 0)
            m->size = (int64_t)st.st_size;
    }
    *t = (time_t)m->mtime;
    return IMAP_VIEW_OK;
}

int imap_view_open_msg(struct imap_view *v, uint32_t seq)
{
    if (!VALID(v, seq)) {
        errno = ENOENT;
        return -1;
    }
    char path[4096];
    for (int attempt = 0; attempt < 2; attempt++) {
        if (imap_view_msg_path(v, seq - 1, path, sizeof path) < 0)
            return -1;
        /* O_NONBLOCK: a FIFO put in place of a message must not stall every session of
         * the process; only a regular file is a message. */
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd >= 0) {
            struct stat st;
            if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
                fcntl(fd, F_SETFL, 0); /* back to blocking reads: a regular file never waits */
                return fd;
            }
            close(fd);
            errno = ENOENT;
            return -1;
        }
        if (errno != ENOENT || attempt)
            return -1;
        int found = imap_view_relocate(v, seq - 1);
        if (found != 1) {
            errno = found < 0 ? EIO : ENOENT;
            return -1;
        }
    }
    return -1;
}

int imap_view_path(const struct imap_view *v, uint32_t seq, char *dst, size_t size)
{
    return VALID(v, seq) ? imap_view_msg_path(v, seq - 1, dst, size) : -1;
}
