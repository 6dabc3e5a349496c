/* A user's Maildir as a POP3 maildrop for one session: the messages in new/ and cur/ at
 * login, numbered 1..n in arrival order, held under an exclusive lock (flock on
 * Maildir/pop3d.lock: a second session gets POP3_DROP_LOCKED; the kernel releases the
 * lock if the process dies). Files stay where they are; DELE only marks, and the marked
 * files are unlinked at QUIT (pop3_maildrop_update). */
#ifndef POP3_MAILDROP_H
#define POP3_MAILDROP_H
#include <stddef.h>
#include <sys/types.h>

#define POP3_UIDL_MAX 70 /* RFC 1939 §7 */
#define POP3_MAX_MESSAGES 100000

struct pop3_msg {
    char *path;  /* full path of the file */
    off_t size;
    char uidl[POP3_UIDL_MAX + 1];
    int deleted;
};

struct pop3_maildrop {
    char *dir;
    int lock_fd;
    struct pop3_msg *msgs;
    size_t n;
};

enum { POP3_DROP_OK = 0, POP3_DROP_LOCKED = 1, POP3_DROP_ERROR = -1 };

/* Locks and scans maildir (which must exist). On POP3_DROP_OK *out is the maildrop. */
int pop3_maildrop_open(const char *maildir, struct pop3_maildrop **out);

/* Releases the lock and frees; deletes nothing. NULL is fine. */
void pop3_maildrop_close(struct pop3_maildrop *d);

/* Messages and octets not marked deleted. */
void pop3_maildrop_stat(const struct pop3_maildrop *d, size_t *count, unsigned long long *octets);

/* 1-based number -> message, NULL if out of range. */
struct pop3_msg *pop3_maildrop_get(struct pop3_maildrop *d, unsigned long number);

void pop3_maildrop_undelete_all(struct pop3_maildrop *d);

/* The file of m was renamed by another reader (imapd moves new/ -> cur/ and keeps flags in
 * the name after ':'): finds the name with the same part before ':' in cur/ or new/ and
 * updates m->path. 0, or -1 if there is none (the message is gone). */
int pop3_maildrop_relocate(struct pop3_maildrop *d, struct pop3_msg *m);

/* The UPDATE state: unlinks the marked files and syncs the directories. Returns the number
 * of marked files that could not be removed (0 on success); *removed counts the others. */
size_t pop3_maildrop_update(struct pop3_maildrop *d, size_t *removed);

/* The UIDL of a file name: the name up to the Maildir info (":2,..."), which stays the same
 * when a reader moves the file to cur/ and sets flags; a name that is not printable ASCII
 * or longer than 70 is replaced by a SHA-256 digest of it. dst has POP3_UIDL_MAX+1 bytes. */
void pop3_uidl_from_name(const char *name, char *dst);

#endif
