/* What the store's files (view*.c, folder*.c) share and nobody else uses: walking a
 * folder's new/ and cur/, the locked refresh that gives UIDs and prunes the UID list, and
 * making unique message names. */
#ifndef IMAP_STORE_INT_H
#define IMAP_STORE_INT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "keyhash.h"
#include "uidlist.h"

/* Entries looked at per directory and scan: beyond, the rest is not seen (bounds time
 * against a directory of millions of files; memory is bounded by IMAP_UIDLIST_MAX). */
#define IMAP_SCAN_DIR_MAX (4u * IMAP_UIDLIST_MAX)

/* fn(arg, name, keylen, in_new) for each file of dir/new then dir/cur that can be a message
 * (regular file, name not starting with '.', a valid key). fn returns 0 to go on, -1 to stop
 * with an error. Returns 0, 1 if dir/cur does not exist (no such folder), or -1 (errno). */
typedef int imap_scan_fn(void *arg, const char *name, size_t keylen, int in_new);
int imap_scan_folder(const char *dir, imap_scan_fn *fn, void *arg);

/* Whether dir is a folder: 1 if dir/cur is a directory, 0 if not (nonexistent), -1 on an
 * error (errno). A folder directory (Maildir/.X) or a cur/, new/ or tmp/ that is a symlink
 * counts as nonexistent (and is logged): followed, it would give read and write access to
 * its target, another user's Maildir say. Every place that resolves a folder asks this. */
int imap_folder_dir_check(const char *dir);

/* One message file as a locked refresh found it. */
struct imap_fentry {
    char *name;    /* file name (malloc'd) */
    uint32_t uid;
    uint8_t in_new;
    int64_t size;  /* -1: unknown (no ",S=" and not stat'ed) */
    int64_t mtime; /* INT64_MIN: unknown */
};

struct imap_fsnap {
    struct imap_fentry *v; /* ascending uid after imap_refresh */
    size_t n, cap;
    struct imap_keyhash hash; /* during the scan only (empty after imap_refresh) */
};
void imap_fsnap_free(struct imap_fsnap *s);

/* With the folder's lock held: loads dir's UID list into *ul (recovering a missing or
 * unreadable one: *listrc = imap_uidlist_load's result), lets seed(arg, ul, listrc) adjust
 * it if given (a view puts back the UIDs it knows when the list was lost, and keeps UIDNEXT
 * above what its client saw; it returns 1 if it changed the list, 0 if not, -1 if the list
 * is not the one it knows: then nothing is taken), scans the folder into *snap, looks
 * again for listed keys the scan missed (a rename can hide a name from one readdir), drops
 * listed keys whose file is gone, gives new keys UIDs in arrival order (mtime, then name)
 * and writes the list if anything changed. snap then holds every message
 * with its UID, ascending. With take_recent (a read-write view), the caller takes the
 * folder's recent messages: *take_recent = the list's first_recent before (those with a
 * UID >= it are \Recent to the caller) and the list's first_recent becomes uidnext. The
 * caller frees *ul and *snap. Returns 0, 1 (no such folder), or -1 (errno; nothing is
 * written). */
int imap_refresh(const char *dir, struct imap_uidlist *ul, int *listrc,
                 int (*seed)(void *arg, struct imap_uidlist *ul, int listrc), void *seed_arg, uint32_t *take_recent,
                 struct imap_fsnap *snap);
/* 1 if a message with uid (in new/ if in_new) is \Recent to whoever takes the folder's
 * recent messages next (uidlist.h): uid >= first_recent, or still in new/. */
int imap_is_recent(const struct imap_uidlist *ul, uint32_t uid, int in_new);

/* The ",S=<n>" size in a file name's key, or -1. */
int64_t imap_name_size(const char *name);

/* dst = a new unique key: "<sec>.M<usec>P<pid>Q<n>R<random>.<host>", plus ",S=<size>" if
 * size >= 0. Not in ul (checked). 0 or -1. */
int imap_unique_key(const struct imap_uidlist *ul, int64_t size, char *dst, size_t dstsize);

/* Hard-links src to dst; where the file system refuses links (EXDEV, EPERM, ENOTSUP),
 * copies the bytes, fsyncs and sets dst's mtime to src's. EEXIST is returned as -1 with
 * errno EEXIST and nothing made. 0 or -1 (errno; nothing left behind). */
int imap_link_or_copy(const char *src, const char *dst);

/* Replaces path with buf[0..len) all at once: written to tmp (a fixed name in the same
 * directory dir, only the caller's lock holder writes it), fsynced, renamed over path,
 * then dir fsynced, so a reader sees the old file or the new one and a crash keeps one of
 * them. 0, or -1 with errno (tmp removed). For the UID list, the UIDVALIDITY counter and
 * the subscriptions. */
int imap_write_whole(const char *dir, const char *tmp, const char *path, const char *buf, size_t len);

/* Appends a copy of name to the growing array *names (*n used, *cap allocated). 0, or -1
 * out of memory (the array stays as it was: the caller frees it). */
int imap_names_push(char ***names, size_t *n, size_t *cap, const char *name);

/* snprintf into dst that reports truncation: 0 or -1 (errno ENAMETOOLONG). */
int imap_path(char *dst, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
