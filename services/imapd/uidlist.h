/* The UID list of one folder: `postmesh-uidlist` in the folder's directory (INBOX: the
 * Maildir itself), mapping each message's key (its file name up to ':', imap_mflags_keylen)
 * to the UID it got once, with the folder's UIDVALIDITY and UIDNEXT.
 *
 * File format (text, one record a line, LF):
 *     postmesh-uidlist 2 <uidvalidity> <uidnext> <first_recent>
 *     <uid> <key>
 *     ...                      (uids ascending, each < uidnext, keys printable ASCII
 *                               without space, 1..IMAP_NAME_MAX bytes)
 * Version 1 lists ("postmesh-uidlist 1 <uidvalidity> <uidnext>") are read as first_recent =
 * uidnext; lists are always written as version 2.
 *
 * \Recent (RFC 3501 §2.3.2, as Dovecot's first recent UID): every message with a UID >=
 * first_recent, or still in new/, is recent to the next read-write session that selects
 * or syncs the folder; that session advances first_recent to uidnext under the lock, so no
 * other session sees them recent. APPEND, COPY and MOVE need nothing more: their UIDs are
 * >= uidnext >= first_recent. EXAMINE and STATUS count them without taking them. A list
 * made for a folder that already has messages (never selected, or the list was lost)
 * starts with first_recent above them: only those in new/ are recent.
 *
 * It is written whole to `postmesh-uidlist.tmp`, fsynced and renamed over the old one (a
 * reader sees the old list or the new one, never half of one); UIDs are assigned only under
 * an exclusive flock on `postmesh-uidlist.lock` (imap_uidlist_lock), so two imapd processes
 * (two replicas on one store) never give one UID twice or one key two UIDs.
 *
 * A missing list is made anew; a list that cannot be read (bad header, bad line, uids not
 * ascending, too many entries) is replaced the same way, with a UIDVALIDITY above the old
 * one if that much was readable (a list too near the end of the UIDs, IMAP_UIDNEXT_LIMIT,
 * too): clients then drop their cache, which RFC 9051 §2.3.1.1
 * requires when UIDs did not persist. The caller logs it. Every new list's UIDVALIDITY
 * comes from the user's counter (imap_uidvalidity_next), so a folder deleted and made again,
 * or a list lost and rebuilt, never repeats one, even within the same second.
 * Reading is bounded: at most IMAP_UIDLIST_MAX entries and IMAP_UIDLIST_FILE_MAX bytes.
 *
 * Owns the file and the in-memory map; not the directory scan (view.c, folder.c). */
#ifndef IMAP_UIDLIST_H
#define IMAP_UIDLIST_H
#include <stddef.h>
#include <stdint.h>

#include "keyhash.h"

#define IMAP_UIDLIST_FILE "postmesh-uidlist"
#define IMAP_UIDLIST_TMP "postmesh-uidlist.tmp"
#define IMAP_UIDLIST_LOCK "postmesh-uidlist.lock"
/* The user's UIDVALIDITY counter, in the Maildir (as Dovecot's dovecot-uidvalidity). */
#define IMAP_UIDVALIDITY_FILE "postmesh-uidvalidity"
#define IMAP_UIDVALIDITY_TMP "postmesh-uidvalidity.tmp"
#define IMAP_UIDVALIDITY_LOCK "postmesh-uidvalidity.lock"
#define IMAP_UIDLIST_MAX 262144                /* messages per folder we keep UIDs for */
/* Bytes: the longest list we can write (every key IMAP_NAME_MAX long, 10-digit UIDs). */
#define IMAP_UIDLIST_FILE_MAX ((size_t)IMAP_UIDLIST_MAX * (255 + 13) + 64)
/* A list whose UIDNEXT is above this is read as unreadable (_RESET: a new UIDVALIDITY and
 * UIDs from 1, RFC 9051 §2.3.1.1) instead of running out of UIDs: one refresh or COPY adds
 * at most IMAP_UIDLIST_MAX UIDs to a list loaded at or below it, so adding never fails for
 * want of UIDs (a hostile or torn "uidnext 4294967295" would hide every new message). */
#define IMAP_UIDNEXT_LIMIT (UINT32_MAX - (uint32_t)IMAP_UIDLIST_MAX - 1u)

struct imap_uident {
    uint32_t uid;
    char *key; /* NUL-terminated, malloc'd */
};

struct imap_uidlist {
    uint32_t uidvalidity;
    uint32_t uidnext;        /* the next UID to give (> every uid in v) */
    uint32_t first_recent;   /* 1..uidnext: UIDs from it on are \Recent to the next taker */
    struct imap_uident *v;   /* ascending uid */
    size_t n, cap;
    struct imap_keyhash hash; /* key -> index in v */
};

enum {
    IMAP_UIDLIST_OK = 0,     /* read as it was */
    IMAP_UIDLIST_NEW = 1,    /* there was none: a fresh one (UIDVALIDITY now), not yet written */
    IMAP_UIDLIST_RESET = 2,  /* it was unreadable: a fresh one with a higher UIDVALIDITY */
    IMAP_UIDLIST_ERR = -1,   /* I/O error or out of memory (errno) */
};

/* Takes the exclusive lock of the folder at dir (blocking: holders keep it for one scan and
 * one write, milliseconds). Returns the lock's fd (close it, or imap_uidlist_unlock) or -1. */
int imap_uidlist_lock(const char *dir);
void imap_uidlist_unlock(int lock_fd);

/* Reads dir's list into *ul (which it initialises; free with imap_uidlist_free, also after
 * an error). Returns IMAP_UIDLIST_OK, _NEW, _RESET or _ERR. Without the lock the result is
 * a snapshot good for reading; to add UIDs, load under the lock. */
int imap_uidlist_load(const char *dir, struct imap_uidlist *ul);
/* An empty list with the given uidvalidity (0: now), uidnext 1 and first_recent 1. 0 or -1. */
int imap_uidlist_init(struct imap_uidlist *ul, uint32_t uidvalidity);
void imap_uidlist_free(struct imap_uidlist *ul);

/* The UID of key[0..keylen), or 0 if it has none. */
uint32_t imap_uidlist_find(const struct imap_uidlist *ul, const char *key, size_t keylen);
/* Gives key a new UID (uidnext, then uidnext + 1) and returns it; 0 if the list is full
 * (IMAP_UIDLIST_MAX, or UIDs exhausted at 2^32 - 1), out of memory, or the key is not a
 * valid key (imap_uidlist_key_ok). The key must not be in the list yet. */
uint32_t imap_uidlist_add(struct imap_uidlist *ul, const char *key, size_t keylen);
/* Adds key with a given uid (a view re-adding a key it knows that the file lost); keeps
 * uids ascending by inserting in place and raises uidnext past it. Returns 0 or -1. */
int imap_uidlist_put(struct imap_uidlist *ul, uint32_t uid, const char *key, size_t keylen);
/* Drops the entries for which keep(arg, key) returns 0 (messages whose file is gone). */
void imap_uidlist_prune(struct imap_uidlist *ul, int (*keep)(void *arg, const char *key), void *arg);

/* Writes the list to dir atomically (tmp, fsync, rename, fsync of dir): after 0 the new list
 * survives a crash. Call it with the lock held. 0 or -1 (errno; the old list is intact). */
int imap_uidlist_write(const char *dir, const struct imap_uidlist *ul);

/* A UIDVALIDITY for a new list of the folder at dir: above `above` and above every value
 * given before for any folder of the user, by any process; at least "now" when a new block
 * is reserved. The counter is IMAP_UIDVALIDITY_FILE in the Maildir that holds dir (dir's
 * parent if dir's last component starts with '.', a Maildir++ folder; else dir itself,
 * INBOX): the end of the last block of values reserved (uidvalidity.c). It is read, and
 * rewritten for a new block, under flock on IMAP_UIDVALIDITY_LOCK (taken inside a folder's
 * lock, never the other way round), durably (tmp, fsync, rename, fsync of the directory)
 * before a value of the block is returned, so no crash lets one be given twice. A missing
 * or unreadable counter counts as 0. Returns the value, or 0 on error (errno; the caller
 * makes no list). */
uint32_t imap_uidvalidity_next(const char *dir, uint32_t above);

/* 1 if key[0..keylen) can be a key: 1..IMAP_NAME_MAX bytes, printable ASCII, no space, no
 * '/' and not starting with '.'. Files whose key is not are no messages to imapd. */
int imap_uidlist_key_ok(const char *key, size_t keylen);

#endif
