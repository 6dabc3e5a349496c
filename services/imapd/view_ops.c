/* Changing messages of the selected folder and putting messages into folders: STORE,
 * EXPUNGE, COPY, MOVE, APPEND (view.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mailstore.h"
#include "mflags.h"
#include "store_int.h"
#include "view_int.h"

#define VALID(v, seq) ((seq) >= 1 && (seq) <= (v)->n)

int imap_view_store_flags(struct imap_view *v, uint32_t seq, int op, unsigned flags)
{
    if (v->readonly)
        return IMAP_VIEW_READONLY;
    if (!VALID(v, seq) || v->m[seq - 1].gone)
        return IMAP_VIEW_GONE;
    struct vmsg *m = &v->m[seq - 1];
    flags &= IMAP_F_PERMANENT;
    for (int attempt = 0; attempt < 2; attempt++) {
        /* Apply the change to the flags the file has now, not to what this session saw. */
        unsigned disk = imap_mflags_from_name(m->name) & IMAP_F_PERMANENT;
        unsigned want = op == '+' ? disk | flags : op == '-' ? disk & ~flags : flags;
        char name[IMAP_NAME_MAX + 1], from[4096], to[4096];
        if (want == disk && !m->in_new) {
            m->flags = (uint8_t)(want | (m->flags & IMAP_F_RECENT));
            return IMAP_VIEW_OK;
        }
        if (imap_mflags_name(m->name, want, name, sizeof name) < 0)
            return IMAP_VIEW_TOOBIG;
        if (imap_view_msg_path(v, seq - 1, from, sizeof from) < 0 ||
            imap_path(to, sizeof to, "%s/cur/%s", v->dir, name) < 0)
            return IMAP_VIEW_ERR;
        if (rename(from, to) == 0) {
            char *n = strdup(name);
            if (!n)
                return IMAP_VIEW_ERR; /* the file is renamed; the next scan learns its name */
            free(m->name);
            m->name = n;
            m->in_new = 0;
            m->flags = (uint8_t)(want | (m->flags & IMAP_F_RECENT));
            return IMAP_VIEW_OK;
        }
        if (errno != ENOENT || attempt)
            return errno == ENOENT ? IMAP_VIEW_GONE : IMAP_VIEW_ERR;
        /* Another session renamed it (its flags) or removed it. */
        int found = imap_view_relocate(v, seq - 1);
        if (found < 0)
            return IMAP_VIEW_ERR;
        if (!found)
            return IMAP_VIEW_GONE;
    }
    return IMAP_VIEW_GONE;
}

int imap_view_set_flags(struct imap_view *v, uint32_t seq, unsigned flags)
{
    return imap_view_store_flags(v, seq, '=', flags);
}

/* Unlinks message i's file (following a rename). 0 (gone now, also if it already was), 1
 * (kept: need_deleted and the renamed file has no \Deleted any more) or -1. */
static int unlink_msg(struct imap_view *v, size_t i, int need_deleted)
{
    char path[4096];
    for (int attempt = 0; attempt < 2; attempt++) {
        if (imap_view_msg_path(v, i, path, sizeof path) < 0)
            return -1;
        if (unlink(path) == 0)
            return 0;
        if (errno != ENOENT)
            return -1;
        if (attempt || imap_view_relocate(v, i) != 1)
            return 0; /* already gone: removed by someone else, which is what we wanted */
        /* Another session renamed it: its flags now decide. One that took \Deleted away
         * meanwhile keeps the message (EXPUNGE removes only messages with \Deleted). */
        if (need_deleted && !(imap_mflags_from_name(v->m[i].name) & IMAP_F_DELETED))
            return 1;
    }
    return 0;
}

/* Commit point of EXPUNGE and MOVE: once cur/ (and new/) are synced the removals survive a
 * crash, so a client told EXPUNGE does not see the message come back. */
static void sync_dirs(const char *dir)
{
    char path[4096];
    if (imap_path(path, sizeof path, "%s/cur", dir) == 0)
        pm_mailstore_fsync_dir(path);
    if (imap_path(path, sizeof path, "%s/new", dir) == 0)
        pm_mailstore_fsync_dir(path);
}

/* Removes the messages seqs[0..n) (NULL: all), only those with \Deleted if need_deleted;
 * ch->expunged gets the numbers (with any other pending removals). */
static int remove_msgs(struct imap_view *v, const uint32_t *seqs, size_t n, int need_deleted,
                       struct imap_view_changes *ch)
{
    *ch = (struct imap_view_changes){.exists = (uint32_t)v->n, .recent = v->nrecent};
    if (v->readonly)
        return IMAP_VIEW_READONLY;
    if (imap_view_bufs(v) < 0)
        return IMAP_VIEW_ERR;
    int rc = IMAP_VIEW_OK;
    size_t count = seqs ? n : v->n;
    for (size_t k = 0; k < count; k++) {
        uint32_t seq = seqs ? seqs[k] : (uint32_t)(k + 1);
        if (!VALID(v, seq))
            continue;
        struct vmsg *m = &v->m[seq - 1];
        if (m->gone || (need_deleted && !(m->flags & IMAP_F_DELETED)))
            continue;
        int kept = unlink_msg(v, seq - 1, need_deleted);
        if (kept < 0) {
            rc = IMAP_VIEW_ERR;
            break;
        }
        m->gone = !kept;
    }
    sync_dirs(v->dir);
    ch->expunged = v->expbuf;
    ch->nexpunged = imap_view_drop_gone(v);
    ch->exists = (uint32_t)v->n;
    ch->recent = v->nrecent;
    return rc;
}

int imap_view_expunge(struct imap_view *v, const uint32_t *seqs, size_t n, struct imap_view_changes *ch)
{
    return remove_msgs(v, seqs, n, 1, ch);
}

void imap_copy_result_free(struct imap_copy_result *r)
{
    free(r->src_uids);
    free(r->dst_uids);
    *r = (struct imap_copy_result){0};
}

/* The target's lock and list, for adding messages: a list that is missing or unreadable is
 * rebuilt from the folder first, so the messages already there keep the lower UIDs. */
static int open_target(const char *dir, int *lock, struct imap_uidlist *ul)
{
    int kind = imap_folder_dir_check(dir);
    if (kind <= 0)
        return kind == 0 ? IMAP_VIEW_NONEXISTENT : IMAP_VIEW_ERR;
    if ((*lock = imap_uidlist_lock(dir)) < 0)
        return IMAP_VIEW_ERR;
    int rc = imap_uidlist_load(dir, ul);
    if (rc == IMAP_UIDLIST_OK)
        return IMAP_VIEW_OK;
    imap_uidlist_free(ul);
    struct imap_fsnap snap = {0};
    int listrc;
    rc = rc == IMAP_UIDLIST_ERR ? -1 : imap_refresh(dir, ul, &listrc, NULL, NULL, NULL, &snap);
    imap_fsnap_free(&snap);
    if (rc == 0)
        return IMAP_VIEW_OK;
    imap_uidlist_free(ul);
    imap_uidlist_unlock(*lock);
    *lock = -1;
    return rc == 1 ? IMAP_VIEW_NONEXISTENT : IMAP_VIEW_ERR;
}

/* dst = key + the info part of src_name (":2,<letters>", or ":2," if it has none). */
static int copy_name(const char *key, const char *src_name, char *dst, size_t size)
{
    const char *info = strchr(src_name, ':');
    if (imap_path(dst, size, "%s%s", key, info && info[1] == '2' && info[2] == ',' ? info : ":2,") < 0 ||
        strlen(dst) > IMAP_NAME_MAX)
        return -1;
    return 0;
}

/* Undoes placed copies (a failed COPY makes nothing). */
static void unlink_made(char **made, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unlink(made[i]);
        free(made[i]);
    }
}

int imap_view_copy(struct imap_view *v, const uint32_t *seqs, size_t n, const char *target_dir,
                   struct imap_copy_result *r)
{
    *r = (struct imap_copy_result){0};
    for (size_t k = 0; k < n; k++)
        if (!VALID(v, seqs[k]) || v->m[seqs[k] - 1].gone)
            return IMAP_VIEW_EXPUNGEISSUED;
    int lock;
    struct imap_uidlist ul;
    int rc = open_target(target_dir, &lock, &ul);
    if (rc != IMAP_VIEW_OK)
        return rc;
    char **made = calloc(n ? n : 1, sizeof *made);
    r->src_uids = malloc((n ? n : 1) * sizeof *r->src_uids);
    r->dst_uids = malloc((n ? n : 1) * sizeof *r->dst_uids);
    size_t nmade = 0;
    if (!made || !r->src_uids || !r->dst_uids) {
        rc = IMAP_VIEW_ERR;
        goto out;
    }
    if (ul.n + n > IMAP_UIDLIST_MAX) {
        rc = IMAP_VIEW_LIMIT;
        goto out;
    }
    for (size_t k = 0; k < n && rc == IMAP_VIEW_OK; k++) {
        size_t i = seqs[k] - 1;
        char key[IMAP_NAME_MAX + 1], name[IMAP_NAME_MAX + 1], src[4096], dst[4096];
        int placed = 0;
        for (int attempt = 0; attempt < 4 && !placed; attempt++) {
            int64_t size = v->m[i].size >= 0 ? v->m[i].size : imap_name_size(v->m[i].name);
            if (imap_unique_key(&ul, size, key, sizeof key) < 0 ||
                copy_name(key, v->m[i].name, name, sizeof name) < 0 ||
                imap_view_msg_path(v, i, src, sizeof src) < 0 ||
                imap_path(dst, sizeof dst, "%s/cur/%s", target_dir, name) < 0) {
                rc = IMAP_VIEW_TOOBIG;
                break;
            }
            if (imap_link_or_copy(src, dst) == 0) {
                placed = 1;
            } else if (errno == ENOENT && !attempt) {
                int found = imap_view_relocate(v, i); /* renamed by another session? */
                if (found != 1)
                    rc = found < 0 ? IMAP_VIEW_ERR : IMAP_VIEW_EXPUNGEISSUED;
            } else if (errno != EEXIST) {
                rc = errno == ENOENT ? IMAP_VIEW_EXPUNGEISSUED : IMAP_VIEW_ERR;
            }
        }
        if (rc == IMAP_VIEW_OK && !placed)
            rc = IMAP_VIEW_ERR;
        if (rc != IMAP_VIEW_OK)
            break;
        if (!(made[nmade] = strdup(dst))) {
            unlink(dst);
            rc = IMAP_VIEW_ERR;
            break;
        }
        nmade++;
        uint32_t uid = imap_uidlist_add(&ul, key, strlen(key));
        if (!uid) {
            rc = IMAP_VIEW_LIMIT;
            break;
        }
        r->src_uids[r->n] = v->m[i].uid;
        r->dst_uids[r->n++] = uid;
    }
    if (rc == IMAP_VIEW_OK) {
        /* Commit point: the copies' directory entries, then the list naming their UIDs. */
        char cur[4096];
        if (imap_path(cur, sizeof cur, "%s/cur", target_dir) < 0 || pm_mailstore_fsync_dir(cur) < 0 ||
            imap_uidlist_write(target_dir, &ul) < 0)
            rc = IMAP_VIEW_ERR;
    }
out:
    if (rc != IMAP_VIEW_OK) {
        unlink_made(made, nmade);
        imap_copy_result_free(r);
    } else {
        for (size_t k = 0; k < nmade; k++)
            free(made[k]);
        r->uidvalidity = ul.uidvalidity;
    }
    free(made);
    imap_uidlist_free(&ul);
    imap_uidlist_unlock(lock);
    return rc;
}

int imap_view_move(struct imap_view *v, const uint32_t *seqs, size_t n, const char *target_dir,
                   struct imap_copy_result *r, struct imap_view_changes *ch)
{
    *ch = (struct imap_view_changes){.exists = (uint32_t)v->n, .recent = v->nrecent};
    *r = (struct imap_copy_result){0};
    if (v->readonly)
        return IMAP_VIEW_READONLY;
    int rc = imap_view_copy(v, seqs, n, target_dir, r);
    if (rc != IMAP_VIEW_OK)
        return rc;
    /* The copies are durable: now the originals go (a crash in between leaves both, never
     * neither). */
    rc = remove_msgs(v, seqs, n, 0, ch);
    return rc;
}

int imap_store_append(const char *target_dir, const char *tmp_path, unsigned flags, time_t internaldate,
                      uint32_t *uidvalidity, uint32_t *uid)
{
    *uidvalidity = 0;
    *uid = 0;
    int fd = open(tmp_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        return IMAP_VIEW_ERR;
    }
    struct timespec times[2] = {{internaldate, 0}, {internaldate, 0}};
    if ((internaldate && futimens(fd, times) < 0) || fsync(fd) < 0) {
        close(fd);
        return IMAP_VIEW_ERR;
    }
    close(fd);
    int lock;
    struct imap_uidlist ul;
    int rc = open_target(target_dir, &lock, &ul);
    if (rc != IMAP_VIEW_OK)
        return rc;
    char key[IMAP_NAME_MAX + 1], name[IMAP_NAME_MAX + 1], dst[4096];
    rc = IMAP_VIEW_ERR;
    for (int attempt = 0; attempt < 4; attempt++) {
        if (ul.n >= IMAP_UIDLIST_MAX) {
            rc = IMAP_VIEW_LIMIT;
            break;
        }
        if (imap_unique_key(&ul, (int64_t)st.st_size, key, sizeof key) < 0 ||
            imap_mflags_name(key, flags & IMAP_F_PERMANENT, name, sizeof name) < 0 ||
            imap_path(dst, sizeof dst, "%s/cur/%s", target_dir, name) < 0)
            break;
        if (imap_link_or_copy(tmp_path, dst) == 0) {
            rc = IMAP_VIEW_OK;
            break;
        }
        if (errno != EEXIST)
            break;
    }
    char cur[4096];
    if (rc == IMAP_VIEW_OK) {
        /* Commit point: the message's entry in cur/ is durable, then its UID. Only then is
         * the tagged OK (with APPENDUID) true. */
        *uid = imap_uidlist_add(&ul, key, strlen(key));
        if (!*uid)
            rc = IMAP_VIEW_LIMIT;
        else if (imap_path(cur, sizeof cur, "%s/cur", target_dir) < 0 || pm_mailstore_fsync_dir(cur) < 0 ||
                 imap_uidlist_write(target_dir, &ul) < 0)
            rc = IMAP_VIEW_ERR;
        if (rc != IMAP_VIEW_OK) {
            unlink(dst);
            *uid = 0;
        } else {
            *uidvalidity = ul.uidvalidity;
        }
    }
    imap_uidlist_free(&ul);
    imap_uidlist_unlock(lock);
    if (rc == IMAP_VIEW_OK)
        unlink(tmp_path);
    return rc;
}
