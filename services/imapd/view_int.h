/* The view's insides, shared by view.c (open, scan, sync, accessors) and view_ops.c
 * (flags, expunge, copy, move). Nobody else includes this. */
#ifndef IMAP_VIEW_INT_H
#define IMAP_VIEW_INT_H
#include <stdint.h>
#include <time.h>

#include "keyhash.h"
#include "view.h"

/* One message: ~40 bytes plus its name. */
struct vmsg {
    char *name;     /* file name in new/ or cur/ as last seen (malloc'd) */
    int64_t size;   /* -1: not known yet */
    int64_t mtime;  /* INT64_MIN: not known yet */
    uint32_t uid;
    uint8_t flags;  /* IMAP_F_*: what the session was told or set, RECENT included */
    uint8_t in_new;
    uint8_t gone;   /* vanished, its EXPUNGE not sent yet */
    uint8_t mark;   /* found by the current scan */
};

struct imap_view {
    char *dir;
    int readonly;
    uint32_t uidvalidity, uidnext, nrecent;
    struct vmsg *m; /* ascending uid; m[i] is sequence number i + 1 */
    size_t n, cap;
    struct imap_keyhash hash; /* key -> index in m */
    /* Keys the list has with a UID below ours that this session never saw (a file that
     * came back, or a race lost): not shown until the next SELECT, never asked about again. */
    char **hidden;
    size_t nhidden, hiddencap;
    struct imap_keyhash hidden_hash;
    size_t unknown; /* scan: files with a key neither in m nor hidden */
    uint32_t *expbuf, *flagbuf; /* imap_view_changes arrays, n entries each */
    size_t bufcap;
    /* new/ and cur/ mtimes before the last full scan, and when it ran (imap_view_sync skips
     * the readdirs while they stay the same). */
    struct timespec dir_mtime[2];
    time_t scanned_at;
    int times_valid;
};

/* keyhash accessors: the key of m[pos] / of hidden[pos]. */
const char *imap_view_msg_key(const void *ctx, uint32_t pos, size_t *len);
const char *imap_view_hidden_key(const void *ctx, uint32_t pos, size_t *len);
/* view_refresh.c: the locked refresh (first: at open, the view is empty). 0, 1 (the folder
 * is another one now: reselect), 2 (first only: the list was unreadable and made anew), -1. */
int imap_view_locked_sync(struct imap_view *v, int first);
/* Rebuilds v->hash after m changed shape. 0 or -1. */
int imap_view_rehash(struct imap_view *v);
/* Looks for every known key again (names renamed by others are updated). 1 if message i
 * was found, 0 if not, -1 on error. */
int imap_view_relocate(struct imap_view *v, size_t i);
/* Removes the messages with m[i].gone set, writing their numbers (adjusted) to expbuf.
 * Returns how many. */
size_t imap_view_drop_gone(struct imap_view *v);
/* The changes arrays can hold n entries. 0 or -1. */
int imap_view_bufs(struct imap_view *v);
/* dst = the full path of message i. 0 or -1. */
int imap_view_msg_path(const struct imap_view *v, size_t i, char *dst, size_t size);

#endif
