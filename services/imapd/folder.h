/* A user's folders in the Maildir++ layout (Dovecot's default): INBOX is the Maildir itself,
 * folder "a/b" is the directory Maildir/.a.b/ (cur/ new/ tmp/ and an empty `maildirfolder`
 * file). IMAP hierarchy separator '/'; names are kept as the client sends them (modified
 * UTF-7). Subscriptions: Maildir/subscriptions, one name a line (Dovecot's "V\t2" format is
 * read too), rewritten whole (tmp + rename).
 *
 * Owns names <-> directories, the folder list with its LIST attributes, CREATE / DELETE /
 * RENAME / SUBSCRIBE on disk, the special-use folders made at first login, and STATUS
 * counts without selecting. Not LIST pattern matching (list_match.h) nor any reply text
 * beyond imap_folder_rc_text. Paths are as this process sees the store. */
#ifndef IMAP_FOLDER_H
#define IMAP_FOLDER_H
#include <stddef.h>
#include <stdint.h>

#define IMAP_FOLDER_NAME_MAX 200   /* bytes of an IMAP name (the ".a.b" dir name must fit 255) */
#define IMAP_FOLDER_DEPTH_MAX 16   /* components */
#define IMAP_FOLDER_MAX 1000       /* folders per user (CREATE beyond: NO [LIMIT]) */
#define IMAP_SUBSCRIPTIONS_MAX 1000
#define IMAP_FOLDER_PATH_MAX 4096

/* Results of the operations below; the caller answers NO with imap_folder_rc_text(rc). */
enum imap_folder_rc {
    IMAP_FOLDER_OK = 0,
    IMAP_FOLDER_ERR = -1,          /* I/O error (errno): "[SERVERBUG] ..." (caller logs) */
    IMAP_FOLDER_INVALID = -2,      /* "[CANNOT] Invalid mailbox name" */
    IMAP_FOLDER_EXISTS = -3,       /* "[ALREADYEXISTS] Mailbox already exists" */
    IMAP_FOLDER_NONEXISTENT = -4,  /* "[NONEXISTENT] Mailbox doesn't exist" */
    IMAP_FOLDER_INBOX = -5,        /* DELETE INBOX: "[CANNOT] INBOX can't be deleted" */
    IMAP_FOLDER_HASCHILDREN = -6,  /* DELETE of the hole "a" above "a/b": "[HASCHILDREN] ..." */
    IMAP_FOLDER_LIMIT = -7,        /* "[LIMIT] Too many mailboxes" / subscriptions */
};
/* The text after "NO " for rc (a response code and words), static. */
const char *imap_folder_rc_text(int rc);

/* 1 if name (len bytes, not NUL-terminated necessarily) spells INBOX in any case. */
int imap_folder_is_inbox(const char *name, size_t len);

/* The plan's name rules: 1..IMAP_FOLDER_NAME_MAX bytes, components split at '/', none empty
 * (no leading, trailing or double '/'), none "." or "..", starting with '~', or holding '.',
 * '%', '*', a control byte (< 0x20, 0x7f) or NUL; at most IMAP_FOLDER_DEPTH_MAX components.
 * "INBOX" (any case) is valid; "INBOX/x" is a folder like any other ("INBOX" as first
 * component is kept upper-case, as Dovecot). 1 if valid. */
int imap_folder_name_ok(const char *name, size_t len);

/* dst = the folder's directory: maildir for INBOX, maildir/.a.b for "a/b". 0, or -1 for an
 * invalid name or a path that does not fit. */
int imap_folder_path(const char *maildir, const char *name, size_t len, char *dst, size_t size);

/* 1 if the folder exists (INBOX always does: the Maildir exists after login). */
int imap_folder_exists(const char *maildir, const char *name, size_t len);

/* ---- LIST ---- */
/* Attribute bits of a listed name (RFC 9051 §7.3.1, RFC 5258, RFC 6154). */
#define IMAP_FA_NOSELECT 0x001u     /* a hole: "a" when only "a/b" exists */
#define IMAP_FA_NONEXISTENT 0x002u  /* with NOSELECT: no such folder (a hole, or subscribed only) */
#define IMAP_FA_HASCHILDREN 0x004u
#define IMAP_FA_HASNOCHILDREN 0x008u
#define IMAP_FA_SUBSCRIBED 0x010u
#define IMAP_FA_NOINFERIORS 0x020u  /* never set: every folder may have children */
#define IMAP_FA_SENT 0x040u         /* special-use: the top-level folders of that exact name */
#define IMAP_FA_DRAFTS 0x080u
#define IMAP_FA_TRASH 0x100u
#define IMAP_FA_JUNK 0x200u
#define IMAP_FA_ARCHIVE 0x400u
#define IMAP_FA_SPECIAL_USE (IMAP_FA_SENT | IMAP_FA_DRAFTS | IMAP_FA_TRASH | IMAP_FA_JUNK | IMAP_FA_ARCHIVE)
/* Why a name without a folder is in the list (never written by imap_folder_attrs_text):
 * a plain LIST shows holes (as \Noselect, RFC 9051 §6.3.9, where '%' needs them) and never
 * subscribed-only names; LIST (SUBSCRIBED) and LSUB show those (\NonExistent). */
#define IMAP_FA_HOLE 0x1000u
#define IMAP_FA_SUBSCRIBED_ONLY 0x2000u

struct imap_folder {
    char *name;     /* IMAP name: "INBOX", "Sent", "a/b" */
    unsigned attrs; /* IMAP_FA_* */
};

struct imap_folder_list {
    struct imap_folder *v; /* sorted: INBOX first, then byte order of names */
    size_t n;
};

/* Every name LIST may show: INBOX, each folder directory with a cur/ (at most
 * IMAP_FOLDER_MAX; entries whose directory name is no valid folder are skipped), each hole
 * (a missing parent of a folder: HOLE|NOSELECT|NONEXISTENT|HASCHILDREN) and each subscribed
 * name that is neither (SUBSCRIBED_ONLY|NONEXISTENT|NOSELECT|SUBSCRIBED). HASCHILDREN /
 * HASNOCHILDREN count existing folders only; SUBSCRIBED from the subscriptions file;
 * special-use from the name. 0 or -1 (errno); free with imap_folder_list_free (also after
 * -1). */
int imap_folder_list(const char *maildir, struct imap_folder_list *out);
void imap_folder_list_free(struct imap_folder_list *list);

/* dst = the attributes as LIST writes them: "\HasNoChildren \Subscribed \Sent" (no
 * parentheses; "" for none). want limits which bits are written (e.g. leave out
 * IMAP_FA_SUBSCRIBED unless LIST-EXTENDED asked, IMAP_FA_SPECIAL_USE for LIST without
 * RETURN (SPECIAL-USE) is fine to keep: RFC 6154 lets a server send them always).
 * NONEXISTENT is written "\NonExistent" and NOSELECT "\Noselect" (a hole gets both unless
 * want leaves one out). Returns the length; 160 bytes always suffice. */
#define IMAP_FA_TEXT_MAX 160
size_t imap_folder_attrs_text(unsigned attrs, unsigned want, char *dst, size_t size);

/* ---- changes ---- */
/* CREATE: name may end with one '/' (RFC 9051 §6.3.4: it is dropped). Missing superiors are
 * made too ("a/b/c" makes "a" and "a/b" if missing). The new folder has cur/ new/ tmp/, the
 * maildirfolder file, and its directory entry is synced. INBOX (any case): EXISTS. */
int imap_folder_create(const char *maildir, const char *name, size_t len);
/* DELETE: the folder and its messages (renamed away first, so the name is gone at once,
 * then emptied); its children stay, and it is listed as a hole (\Noselect \HasChildren)
 * above them (RFC 3501 §6.3.4, as Dovecot). INBOX: IMAP_FOLDER_INBOX; a hole with
 * children: IMAP_FOLDER_HASCHILDREN; no folder: NONEXISTENT. The subscription stays (RFC
 * 9051 §6.3.7: the server does not drop a subscription on its own). */
int imap_folder_delete(const char *maildir, const char *name, size_t len);
/* RENAME old -> new, children included ("a" -> "b" also moves "a/x" to "b/x"), keeping
 * UIDVALIDITY and UIDs (the uidlist moves with the directory); subscriptions of the moved
 * names follow. Renaming INBOX (RFC 9051 §6.3.6) makes the new folder and moves every INBOX
 * message into it with new UIDs; INBOX stays, empty, and its children stay. new existing:
 * EXISTS; new inside old ("a" -> "a/b"): INVALID. */
int imap_folder_rename(const char *maildir, const char *oldname, size_t oldlen, const char *newname,
                       size_t newlen);

/* SUBSCRIBE (on = 1) / UNSUBSCRIBE (on = 0) name: no existence check (RFC 9051 §6.3.7 lets a
 * client subscribe first); INBOX is stored as "INBOX". Unsubscribing a name that is not
 * subscribed is OK (as Dovecot). LIMIT past IMAP_SUBSCRIPTIONS_MAX. */
int imap_folder_subscribe(const char *maildir, const char *name, size_t len, int on);
/* 1 if name is subscribed, 0 if not, -1 on error. */
int imap_folder_subscribed(const char *maildir, const char *name, size_t len);

/* At each login (session_int.h): removes files in INBOX's tmp/ untouched for 36 hours
 * (aborted APPENDs, dead deliveries; at most 10,000 entries looked at). INBOX's Maildir
 * must exist (the caller made it). Makes the special-use folders Sent Drafts Trash Junk
 * Archive and subscribes them and INBOX, the first time only (marked by
 * Maildir/postmesh-folders: a user who deletes Junk keeps it deleted). Idempotent; 0, or -1
 * (errno; the login goes on). */
int imap_folders_init(const char *maildir);

/* ---- STATUS ---- */
#define IMAP_ST_MESSAGES 0x01u
#define IMAP_ST_UIDNEXT 0x02u
#define IMAP_ST_UIDVALIDITY 0x04u
#define IMAP_ST_UNSEEN 0x08u
#define IMAP_ST_RECENT 0x10u
#define IMAP_ST_SIZE 0x20u

struct imap_status {
    uint32_t messages, uidnext, uidvalidity, unseen, recent;
    uint64_t size;
};

/* The STATUS values of the folder at dir (imap_folder_path) without selecting it: files in
 * new/ and cur/ (RECENT: those no read-write session took yet, uidlist.h), UIDs given under
 * the folder's lock to messages without one so UIDNEXT is exact (as Dovecot). SIZE stats only
 * files without ",S=" in their name, and only if want has IMAP_ST_SIZE. *recovered = 1 if
 * the uidlist was unreadable and was made anew (the caller logs). Returns
 * IMAP_FOLDER_OK, IMAP_FOLDER_NONEXISTENT (no such dir) or IMAP_FOLDER_ERR. */
int imap_folder_status(const char *dir, unsigned want, struct imap_status *st, int *recovered);

#endif
