/* EXPUNGE (RFC 9051 §6.4.3) and UID EXPUNGE (RFC 4315 §2.1, UIDPLUS): the files of the
 * messages with \Deleted go (UID EXPUNGE: only those of them in the set) and the client is
 * told "* n EXPUNGE" for each, every number as it is when that line is sent (view.c gives
 * them so). The removal itself is view.c's. */
#include <stdlib.h>

#include "cmd_msgset.h"
#include "session_int.h"
#include "view.h"

void imap_cmd_expunge(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->uid ? cmd->nargs != 1 : cmd->nargs != 0) {
        imap_bad(s, cmd, "Invalid arguments");
        return;
    }
    if (s->readonly || imap_view_readonly(s->sel)) {
        imap_tagged(s, cmd, "NO", "%s", imap_msgset_rc_text(IMAP_VIEW_READONLY));
        return;
    }
    uint32_t *seqs = NULL;
    size_t n = 0;
    if (cmd->uid) {
        struct imap_seqset *set = imap_msgset_parse(s, cmd, &cmd->args[0]);
        if (!set)
            return;
        int rc = imap_msgset_collect(s, set, 1, &seqs, &n);
        imap_seqset_free(set);
        if (rc < 0) {
            imap_tagged(s, cmd, "NO", "[SERVERBUG] Out of memory");
            return;
        }
        if (n == 0) { /* no message of the set exists: nothing to do, but never "all" */
            imap_tagged(s, cmd, "OK", "Expunge completed.");
            return;
        }
    }
    struct imap_view_changes ch = {0};
    int rc = imap_view_expunge(s->sel, cmd->uid ? seqs : NULL, n, &ch);
    free(seqs);
    /* Whatever was removed is gone for good: the client hears of it even if the rest failed. */
    for (size_t i = 0; i < ch.nexpunged; i++)
        imap_untagged(s, "%u EXPUNGE", ch.expunged[i]);
    if (rc != IMAP_VIEW_OK) {
        if (rc == IMAP_VIEW_ERR)
            imap_msgset_log_error(s, "expunge", rc);
        imap_tagged(s, cmd, "NO", "%s", imap_msgset_rc_text(rc));
        return;
    }
    imap_tagged(s, cmd, "OK", "Expunge completed.");
}
