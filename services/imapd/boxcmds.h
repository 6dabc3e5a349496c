/* What the mailbox command files share (cmd_mailbox.c, cmd_list.c, cmd_append.c): STATUS
 * item lists and the "* STATUS" line (STATUS and LIST-STATUS, RFC 5819), and mailbox name
 * arguments; and APPEND's check before its literal (session.c). The handlers are
 * command_table.h's. */
#ifndef IMAP_BOXCMDS_H
#define IMAP_BOXCMDS_H
#include <stddef.h>

#include "args.h"

struct imap_session;

/* A STATUS item list: the IMAP_ST_* bits (folder.h) in the order the client gave them
 * (each once), answered in that order. */
#define IMAP_STATUS_ITEMS_MAX 8
struct imap_status_req {
    unsigned item[IMAP_STATUS_ITEMS_MAX];
    size_t n;
    unsigned want; /* every bit of item[] */
};

/* list must be an IMAP_ARG_LIST of known item atoms (MESSAGES RECENT UIDNEXT UIDVALIDITY
 * UNSEEN SIZE), at least one. 0, or -1 (the caller answers BAD). */
int imap_status_parse(const struct imap_arg *list, struct imap_status_req *req);

/* "* STATUS <name> (ITEM n ...)" for the folder name[0..len) (valid, existing: the caller
 * checked or accepts NONEXISTENT). Returns a folder.h rc: IMAP_FOLDER_OK (written), else
 * nothing was written (IMAP_FOLDER_ERR is logged here). */
int imap_status_write(struct imap_session *s, const char *name, size_t len, const struct imap_status_req *req);

/* The name as a reply shows it: "INBOX" for any spelling of inbox, else name itself, as an
 * astring on imap_out(s). */
void imap_write_mailbox(struct imap_session *s, const char *name, size_t len);

/* cmd_append.c, for session.c to call before it sends "+" for APPEND's message literal (so a
 * client uploads nothing for a command that would fail, as Dovecot does): args[0..nargs)
 * are the arguments before that literal (mailbox [(flags)] ["date-time"]). NULL if APPEND
 * may go on, else the tagged reply's text with *status "BAD" or "NO" ("[TRYCREATE] ..."
 * for a folder that does not exist). The handler checks the same again. */
const char *imap_append_check(struct imap_session *s, const struct imap_arg *args, size_t nargs, const char **status);

#endif
