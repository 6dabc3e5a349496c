/* The view's locked refresh: under the folder's lock, the UID list's truth (with what this
 * session knows put back into a list that lost it) is merged into the view, new messages
 * appended in UID order and, for a read-write view, taken from new/ as \Recent (view.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mflags.h"
#include "store_int.h"
#include "view_int.h"

static int reserve(struct imap_view *v, size_t more)
{
    if (v->n + more <= v->cap)
        return 0;
    size_t ncap = v->cap ? v->cap : 64;
    while (ncap < v->n + more)
        ncap *= 2;
    struct vmsg *nm = realloc(v->m, ncap * sizeof *nm);
    if (!nm)
        return -1;
    v->m = nm;
    v->cap = ncap;
    return 0;
}

/* A read-write view moves a file from new/ to cur/<name>:2, (no flags yet), with the
 * folder's lock held, so no other session finds it in new/ meanwhile. 1 if this call moved
 * it, 0 if another reader was first or it failed. */
static int take_from_new(struct imap_view *v, struct vmsg *m)
{
    char from[4096], to[4096], name[IMAP_NAME_MAX + 1];
    if (imap_mflags_name(m->name, 0, name, sizeof name) < 0 ||
        imap_path(from, sizeof from, "%s/new/%s", v->dir, m->name) < 0 ||
        imap_path(to, sizeof to, "%s/cur/%s", v->dir, name) < 0)
        return 0;
    if (rename(from, to) < 0)
        return 0; /* ENOENT: another reader (not under our lock) took it; the next scan finds it */
    char *n = strdup(name);
    if (n) {
        free(m->name);
        m->name = n;
        m->in_new = 0;
    }
    return 1;
}

/* Appends a message found by a locked refresh (e: its name is taken over), \Recent to this
 * session if recent; indexed unless bulk (the caller rehashes once). 0 or -1. */
static int append_msg(struct imap_view *v, struct imap_fentry *e, int recent, int bulk)
{
    if (reserve(v, 1) < 0)
        return -1;
    struct vmsg *m = &v->m[v->n];
    *m = (struct vmsg){.name = e->name, .size = e->size, .mtime = e->mtime, .uid = e->uid, .in_new = e->in_new,
                       .mark = 1};
    e->name = NULL;
    m->flags = (uint8_t)imap_mflags_from_name(m->name);
    /* A new/ file below the recent UIDs is one no taker moved (a version 1 list, a failed
     * move): it is ours if we move it. EXAMINE leaves new/ as it is. */
    if (m->in_new && !v->readonly && take_from_new(v, m))
        recent = 1;
    if (recent)
        m->flags |= IMAP_F_RECENT;
    v->nrecent += recent != 0;
    if (!bulk && imap_keyhash_add(&v->hash, imap_view_msg_key, v, (uint32_t)v->n) < 0)
        return -1;
    v->n++;
    if (v->uidnext <= m->uid)
        v->uidnext = m->uid + 1;
    return 0;
}

static int hide_key(struct imap_view *v, const char *name)
{
    size_t keylen = imap_mflags_keylen(name);
    if (imap_keyhash_find(&v->hidden_hash, imap_view_hidden_key, v, name, keylen) >= 0 ||
        v->nhidden >= IMAP_UIDLIST_MAX)
        return 0;
    if (v->nhidden == v->hiddencap) {
        size_t ncap = v->hiddencap ? v->hiddencap * 2 : 8;
        char **nh = realloc(v->hidden, ncap * sizeof *nh);
        if (!nh)
            return -1;
        v->hidden = nh;
        v->hiddencap = ncap;
    }
    char *k = strndup(name, keylen);
    if (!k)
        return -1;
    v->hidden[v->nhidden] = k;
    if (imap_keyhash_add(&v->hidden_hash, imap_view_hidden_key, v, (uint32_t)v->nhidden) < 0) {
        free(k);
        return -1;
    }
    v->nhidden++;
    return 0;
}

/* seed for imap_refresh: what this session knows goes back into a list that lost it (the
 * file was lost or unreadable, or put back from an older copy): its keys with their UIDs
 * (the refresh then drops those whose file is gone) and a UIDNEXT above every UID its
 * client saw, so no UID is given twice. 1 if the list changed, 0 if not, -1 if it is
 * another folder's list (the caller reselects: nothing is put back or taken). */
static int seed_from_view(void *arg, struct imap_uidlist *ul, int listrc)
{
    struct imap_view *v = arg;
    if (listrc == IMAP_UIDLIST_OK && ul->uidvalidity != v->uidvalidity)
        return -1; /* another folder's list now: the caller reselects, taking nothing */
    if (v->uidnext > IMAP_UIDNEXT_LIMIT)
        return -1; /* the list was renumbered for want of UIDs: putting ours back would undo it */
    int changed = listrc != IMAP_UIDLIST_OK;
    ul->uidvalidity = v->uidvalidity;
    for (size_t i = 0; i < v->n; i++) {
        size_t keylen = imap_mflags_keylen(v->m[i].name);
        if (!imap_uidlist_find(ul, v->m[i].name, keylen))
            changed |= imap_uidlist_put(ul, v->m[i].uid, v->m[i].name, keylen) == 0;
    }
    if (ul->uidnext < v->uidnext) {
        ul->uidnext = v->uidnext;
        changed = 1;
    }
    return changed;
}

/* Locked refresh: the list's truth into the view. Known messages found are marked, new
 * ones appended in UID order; a read-write view takes the folder's recent messages (and
 * new/ files) while it holds the lock. 0, 1 (the folder is another one now: reselect), -1. */
int imap_view_locked_sync(struct imap_view *v, int first)
{
    int lock = imap_uidlist_lock(v->dir);
    if (lock < 0)
        return -1;
    struct imap_uidlist ul;
    struct imap_fsnap snap;
    int listrc;
    uint32_t took = UINT32_MAX; /* read-write: the first UID recent to this session */
    int rc = imap_refresh(v->dir, &ul, &listrc, first ? NULL : seed_from_view, v, v->readonly ? NULL : &took,
                          &snap);
    if (rc < 0 || (rc == 1 && first)) {
        rc = -1;
        goto out;
    }
    if (rc == 1) {
        /* The folder went (deleted under us): an empty snapshot, every message is gone. */
        for (size_t i = 0; i < v->n; i++)
            v->m[i].mark = 0;
        rc = 0;
        goto out;
    }
    if (first) {
        v->uidvalidity = ul.uidvalidity;
        v->uidnext = ul.uidnext;
        rc = listrc == IMAP_UIDLIST_RESET ? 2 : 0;
    } else if (ul.uidvalidity != v->uidvalidity) {
        rc = 1;
        goto out;
    }
    for (size_t i = 0; i < v->n; i++)
        v->m[i].mark = 0;
    for (size_t j = 0; j < snap.n; j++) {
        struct imap_fentry *e = &snap.v[j];
        long i = imap_keyhash_find(&v->hash, imap_view_msg_key, v, e->name, imap_mflags_keylen(e->name));
        if (i >= 0) {
            struct vmsg *m = &v->m[i];
            m->mark = 1;
            m->gone = 0;
            if (strcmp(m->name, e->name) != 0) {
                free(m->name);
                m->name = e->name;
                m->in_new = e->in_new;
                e->name = NULL;
            }
        } else if (first || e->uid >= v->uidnext) {
            int recent = v->readonly ? imap_is_recent(&ul, e->uid, e->in_new) : e->uid >= took;
            if (append_msg(v, e, recent, first) < 0) {
                rc = -1;
                goto out;
            }
        } else if (hide_key(v, e->name) < 0) {
            rc = -1;
            goto out;
        }
    }
    if (!first && v->uidnext < ul.uidnext)
        v->uidnext = ul.uidnext; /* another process gave UIDs: ours must stay above them */
out:
    imap_uidlist_unlock(lock);
    imap_fsnap_free(&snap);
    imap_uidlist_free(&ul);
    return rc;
}
