/* What the message commands (cmd_fetch.c, cmd_store.c, cmd_search.c, cmd_copy.c,
 * cmd_expunge.c) share: turning a command's sequence-set argument into the selected
 * folder's messages, the reply texts of the view's results, STORE's FETCH (FLAGS) line,
 * and whether CAPABILITY offers an extension. Not the grammar of a set (seqset.h) nor the
 * folder itself (view.h). */
#ifndef IMAP_CMD_MSGSET_H
#define IMAP_CMD_MSGSET_H
#include <stddef.h>
#include <stdint.h>

#include "args.h"
#include "seqset.h"

struct imap_session;
struct imap_command;

/* The set in arg (sequence numbers, or UIDs if cmd->uid), checked against s->sel: a
 * syntax error or, without UID, a number past the last message is answered BAD (counted,
 * RFC 9051 §9 seq-number) and gives NULL, as does out of memory (answered NO). */
struct imap_seqset *imap_msgset_parse(struct imap_session *s, const struct imap_command *cmd,
                                      const struct imap_arg *arg);

/* Walks set over s->sel in ascending sequence numbers (UIDs if uid): start once, then
 * imap_msgset_next until it gives 0. The walk survives imap_yield as a plain value. */
void imap_msgset_start(struct imap_seqset_iter *it, struct imap_session *s, struct imap_seqset *set, int uid);
int imap_msgset_next(struct imap_seqset_iter *it, struct imap_session *s, int uid, uint32_t *seq);

/* Every member as ascending sequence numbers in a malloc'd array (*seqs NULL when *n is 0).
 * 0, or -1 on out of memory. */
int imap_msgset_collect(struct imap_session *s, struct imap_seqset *set, int uid, uint32_t **seqs, size_t *n);

/* The text after "NO " for a view result (view.h IMAP_VIEW_*), static. */
const char *imap_msgset_rc_text(int rc);

/* "* <seq> FETCH (UID <uid> FLAGS (...))" (UID only if with_uid), the view's flags of seq:
 * what STORE answers for each message. */
void imap_msgset_write_flags(struct imap_session *s, uint32_t seq, int with_uid);

/* 1 if the session's CAPABILITY lists word (e.g. "BINARY", "ESEARCH"): what FETCH and
 * SEARCH accept beyond the base grammar follows what the server says it offers. */
int imap_msgset_offered(const struct imap_session *s, const char *word);

/* Logs a failed operation on the selected folder (errno as it is). */
void imap_msgset_log_error(struct imap_session *s, const char *what, int rc);

#endif
