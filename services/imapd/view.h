/* The selected folder of one session: its messages in UID order, numbered 1..count, with
 * the flags, \Recent and UIDs this session has been told, kept in step with the disk.
 *
 * Other processes change the folder at any time: delivery adds files to new/, pop3d unlinks
 * files (it holds Maildir/pop3d.lock, which does not concern us), another imapd session or
 * replica renames files in cur/ (flags), moves new/ -> cur/, adds and removes files.
 * imap_view_sync finds all of that and says what to tell the client, in order. A message
 * keeps its UID as long as a file with its key exists (postmesh-uidlist, uidlist.h), in
 * every session and replica; UIDs are never reused: a file that comes back after its
 * EXPUNGE was announced gets a new UID (or, within a session that still knows the old
 * one, stays out of sight until the next SELECT).
 *
 * Sequence numbers change only in imap_view_sync(v, 1, ...), imap_view_expunge and
 * imap_view_move, which report the removals; between them a vanished file stays in the
 * view (imap_view_gone) so the numbers the client knows stay right (RFC 9051 §7.5.1: no
 * EXPUNGE during FETCH, STORE, SEARCH). New messages are appended at the end at any sync.
 *
 * Owns reading and changing the files of one folder for a session; not the untagged
 * replies (cmd_select.c imap_announce writes them from imap_view_changes), not parsing
 * sequence sets (seqset.h: the caller turns a set into ascending sequence numbers).
 * Single-threaded; a view belongs to one session. No libevent. */
#ifndef IMAP_VIEW_H
#define IMAP_VIEW_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "mflags.h"

struct imap_view;

enum {
    IMAP_VIEW_OK = 0,
    IMAP_VIEW_ERR = -1,             /* I/O error or out of memory (errno): NO [SERVERBUG] */
    IMAP_VIEW_NONEXISTENT = -2,     /* no such folder: NO [NONEXISTENT] (COPY/MOVE/APPEND: [TRYCREATE]) */
    IMAP_VIEW_READONLY = -3,        /* EXAMINE'd: STORE/EXPUNGE/MOVE get NO [READ-ONLY]... */
    IMAP_VIEW_GONE = -4,            /* the message's file vanished (expunged by another
                                       process): send nothing for it */
    IMAP_VIEW_EXPUNGEISSUED = -5,   /* COPY/MOVE of a vanished message: NO [EXPUNGEISSUED],
                                       nothing copied */
    IMAP_VIEW_LIMIT = -6,           /* the target folder is full (IMAP_UIDLIST_MAX): NO [LIMIT] */
    IMAP_VIEW_TOOBIG = -7,          /* a file name would pass IMAP_NAME_MAX */
};

/* Opens the folder at dir (imap_folder_path: the directory holding cur/ new/ tmp/). Scans
 * new/ then cur/, gives UIDs to files without one (under the folder's lock), and when
 * read-write takes the folder's recent messages (uidlist.h: new/ files and UIDs from the
 * list's first recent UID on, which APPEND, COPY and MOVE gave) as \Recent for this session
 * and moves new/ files to cur/ (":2," appended, as Dovecot); read-only (EXAMINE) leaves
 * them as they are and shows them \Recent without taking them. *recovered = 1 if the
 * uidlist was unreadable and made anew (a new UIDVALIDITY: the caller logs; a missing list
 * is just a folder never selected before).
 * Returns IMAP_VIEW_OK with *out, IMAP_VIEW_NONEXISTENT or IMAP_VIEW_ERR. */
int imap_view_open(const char *dir, int readonly, struct imap_view **out, int *recovered);
void imap_view_close(struct imap_view *v); /* NULL is fine; expunges nothing */

/* ---- the folder ---- */
const char *imap_view_dir(const struct imap_view *v);
int imap_view_readonly(const struct imap_view *v);
uint32_t imap_view_count(const struct imap_view *v);       /* EXISTS */
uint32_t imap_view_recent(const struct imap_view *v);      /* RECENT: messages with \Recent */
uint32_t imap_view_uidvalidity(const struct imap_view *v);
uint32_t imap_view_uidnext(const struct imap_view *v);     /* > every UID in the view */
uint32_t imap_view_first_unseen(const struct imap_view *v); /* seq of the first without \Seen, 0 if none */

/* ---- one message, 1 <= seq <= count (other seqs: 0 / -1 / IMAP_VIEW_GONE) ---- */
uint32_t imap_view_uid(const struct imap_view *v, uint32_t seq);
/* IMAP_F_* bits including IMAP_F_RECENT: what this session last saw or set. */
unsigned imap_view_flags(const struct imap_view *v, uint32_t seq);
/* 1 if the file vanished and its EXPUNGE is pending (FETCH answers nothing for it, or
 * NO [EXPUNGEISSUED] if nothing else matched, as the caller prefers). */
int imap_view_gone(const struct imap_view *v, uint32_t seq);
/* The sequence number of uid, or 0 if the view has no such message (binary search). */
uint32_t imap_view_seq_of_uid(const struct imap_view *v, uint32_t uid);
/* The uid at index i (seq i + 1): for imap_seqset_iter_uid (seqset.h), ctx = the view. */
uint32_t imap_view_uid_at(const void *view, size_t index);

/* RFC822.SIZE: ",S=<size>" in the file name, or a stat (once, or known from the scan that
 * numbered it; then cached). -1 if it had to be stat'ed and the file vanished (the view then
 * marks it gone); a cached value is given even for a file gone since. */
off_t imap_view_size(struct imap_view *v, uint32_t seq);
/* INTERNALDATE: the file's mtime (a stat once, cached). 0 and *t, or IMAP_VIEW_GONE. */
int imap_view_internaldate(struct imap_view *v, uint32_t seq, time_t *t);
/* Opens the message file read-only (O_CLOEXEC); follows a rename by another session (looks
 * the key up again in cur/). Returns the fd (the caller closes it) or -1 (errno ENOENT:
 * vanished, the view marks it gone). */
int imap_view_open_msg(struct imap_view *v, uint32_t seq);
/* dst = the message file's path as last seen (it may have been renamed since; prefer
 * imap_view_open_msg). 0, or -1 if it does not fit. */
int imap_view_path(const struct imap_view *v, uint32_t seq, char *dst, size_t size);

/* ---- keeping in step ---- */
/* What changed since the last sync, in the order the untagged lines go out:
 *   1. for i in 0..nexpunged: "* <expunged[i]> EXPUNGE" (each number as it is at that
 *      moment: they are already adjusted for the removals before them);
 *   2. if exists_changed: "* <exists> EXISTS" and "* <recent> RECENT";
 *   3. for i in 0..nflags: "* <flags_seq[i]> FETCH (FLAGS (...))" with the view's flags
 *      (imap_view_flags; numbers as they are after step 1; UID too if the caller likes).
 * The arrays belong to the view and stay valid until the next call that changes it. */
struct imap_view_changes {
    const uint32_t *expunged;
    size_t nexpunged;
    int exists_changed;
    uint32_t exists;
    uint32_t recent;
    const uint32_t *flags_seq; /* ascending */
    size_t nflags;
    /* The folder was replaced under the session (deleted and made again, or its uidlist
     * reset by another process): UIDs no longer mean what the client was told. The caller
     * ends the session ("* BYE ..." as Dovecot does); the view is left as it was. */
    int reselect;
};

/* Rescans new/ and cur/: files gone -> expunges (reported only if may_expunge, else kept
 * as gone), new files -> UIDs (under the lock) and appended (\Recent if this read-write view
 * took them: recent in the list's sense, uidlist.h), names whose flags differ from what
 * the session was told -> flag changes. A file missing in one scan is looked for again
 * before it counts as gone (a rename by another process can hide a name from one readdir).
 * IMAP_VIEW_OK or IMAP_VIEW_ERR (the view is unchanged; try again later). Cheap when nothing changed:
 * two stats of new/ and cur/ (their mtimes; two readdirs if one changed or changed less
 * than two seconds before the last scan), no lock; the lock only when new files came. */
int imap_view_sync(struct imap_view *v, int may_expunge, struct imap_view_changes *ch);

/* ---- changing messages ---- */
/* Sets the permanent flags of message seq to flags (IMAP_F_PERMANENT bits; RECENT is kept
 * as it is): renames the file in cur/. The caller computes flags from imap_view_flags for
 * +FLAGS / -FLAGS. A rename by another process is followed. IMAP_VIEW_OK (also when
 * nothing changed), IMAP_VIEW_GONE (vanished: send nothing for it), IMAP_VIEW_READONLY,
 * IMAP_VIEW_TOOBIG or IMAP_VIEW_ERR. */
int imap_view_set_flags(struct imap_view *v, uint32_t seq, unsigned flags);
/* STORE as it should be done: op '+' adds flags, '-' removes them, '=' replaces, applied to
 * the flags the file has NOW (so another session's \Flagged survives our +FLAGS \Seen);
 * the view's flags become the result, which imap_view_flags then gives for the FETCH
 * reply. Same results as imap_view_set_flags. */
int imap_view_store_flags(struct imap_view *v, uint32_t seq, int op, unsigned flags);

/* EXPUNGE (seqs NULL: every message with \Deleted) or UID EXPUNGE (seqs[0..n) ascending: of
 * those, the ones with \Deleted): unlinks the files, syncs cur/, removes them from the view.
 * ch->expunged gets the numbers to send (only expunged is filled). A file already gone
 * counts as expunged. IMAP_VIEW_OK, IMAP_VIEW_READONLY or IMAP_VIEW_ERR (the ones done so
 * far are in ch all the same: send them). */
int imap_view_expunge(struct imap_view *v, const uint32_t *seqs, size_t n, struct imap_view_changes *ch);

/* COPYUID / APPENDUID data (RFC 4315). */
struct imap_copy_result {
    uint32_t uidvalidity; /* of the target */
    uint32_t *src_uids;   /* ascending, paired with dst_uids */
    uint32_t *dst_uids;
    size_t n;
};
void imap_copy_result_free(struct imap_copy_result *r);

/* COPY seqs[0..n) (ascending) to the folder at target_dir: each file gets a new unique name
 * there, in cur/, with its flags (\Recent to the target's next taker, RFC 3501 §6.4.7) and
 * its INTERNALDATE (a hard link; a copy with the mtime set where links fail), and UIDs in
 * the target's list, under its lock, in the order of seqs. All or nothing: on failure the
 * copies made are removed. target_dir may be the view's own folder (the copies appear at
 * the next sync). Returns IMAP_VIEW_OK with *r, IMAP_VIEW_NONEXISTENT (target missing:
 * [TRYCREATE]), IMAP_VIEW_EXPUNGEISSUED, IMAP_VIEW_LIMIT or IMAP_VIEW_ERR. */
int imap_view_copy(struct imap_view *v, const uint32_t *seqs, size_t n, const char *target_dir,
                   struct imap_copy_result *r);
/* MOVE (RFC 6851): imap_view_copy, then the sources are removed from this folder whatever
 * their flags; ch->expunged gets the numbers to send after the "OK [COPYUID ...]". The same
 * results; READONLY in an EXAMINE'd view. */
int imap_view_move(struct imap_view *v, const uint32_t *seqs, size_t n, const char *target_dir,
                   struct imap_copy_result *r, struct imap_view_changes *ch);

/* APPEND: tmp_path is a complete message file (session.c wrote it into INBOX's tmp/, same
 * file system). It is fsynced, its mtime set to internaldate (0: left as it is = now), and
 * linked into target_dir/cur/ as "<unique>,S=<size>:2,<flags>" (flags: IMAP_F_PERMANENT
 * bits) with a UID given under the target's lock; then tmp_path is unlinked. After
 * IMAP_VIEW_OK the message is durable (file and directory synced) and *uidvalidity / *uid
 * are APPENDUID's. On failure tmp_path is left for the caller to unlink. Returns
 * IMAP_VIEW_OK, IMAP_VIEW_NONEXISTENT ([TRYCREATE]), IMAP_VIEW_LIMIT or IMAP_VIEW_ERR. Works
 * whether or not a view has the target selected (it sees the message at its next sync). */
int imap_store_append(const char *target_dir, const char *tmp_path, unsigned flags, time_t internaldate,
                      uint32_t *uidvalidity, uint32_t *uid);

#endif
