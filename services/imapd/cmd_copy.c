/* COPY / UID COPY (RFC 9051 §6.4.7) and MOVE / UID MOVE (RFC 6851), with UIDPLUS's
 * COPYUID (RFC 4315 §3): "OK [COPYUID <uidvalidity> <source uids> <target uids>]" in the
 * tagged reply of COPY, and for MOVE in an untagged OK before the EXPUNGE lines (RFC 6851
 * §4.3), the tagged OK after them. The target must exist: else NO [TRYCREATE] (RFC 9051
 * §6.4.7). The copying itself, all or nothing, is view.c's. */
#include <stdlib.h>

#include "cmd_msgset.h"
#include "folder.h"
#include "session_int.h"
#include "view.h"

/* The COPYUID code (no brackets) for r, malloc'd; NULL on out of memory. */
static char *copyuid(const struct imap_copy_result *r)
{
    char *src = imap_seqset_format(r->src_uids, r->n), *dst = imap_seqset_format(r->dst_uids, r->n), *out = NULL;
    if (src && dst && asprintf(&out, "COPYUID %u %s %s", r->uidvalidity, src, dst) < 0)
        out = NULL;
    free(src);
    free(dst);
    return out;
}

static void copy_or_move(struct imap_session *s, const struct imap_command *cmd, int move)
{
    if (cmd->nargs != 2 || !imap_arg_is_string(&cmd->args[1])) {
        imap_bad(s, cmd, "Invalid arguments");
        return;
    }
    const struct imap_arg *name = &cmd->args[1];
    char dir[IMAP_FOLDER_PATH_MAX];
    if (!imap_folder_name_ok(name->s, name->len) ||
        imap_folder_path(s->maildir, name->s, name->len, dir, sizeof dir) < 0) {
        imap_tagged(s, cmd, "NO", "%s", imap_folder_rc_text(IMAP_FOLDER_INVALID));
        return;
    }
    struct imap_seqset *set = imap_msgset_parse(s, cmd, &cmd->args[0]);
    if (!set)
        return;
    if (move && (s->readonly || imap_view_readonly(s->sel))) {
        imap_seqset_free(set);
        imap_tagged(s, cmd, "NO", "%s", imap_msgset_rc_text(IMAP_VIEW_READONLY));
        return;
    }
    uint32_t *seqs;
    size_t n;
    int rc = imap_msgset_collect(s, set, cmd->uid, &seqs, &n);
    imap_seqset_free(set);
    if (rc < 0) {
        imap_tagged(s, cmd, "NO", "[SERVERBUG] Out of memory");
        return;
    }
    if (!imap_folder_exists(s->maildir, name->s, name->len)) {
        free(seqs);
        imap_tagged(s, cmd, "NO", "%s", imap_msgset_rc_text(IMAP_VIEW_NONEXISTENT));
        return;
    }
    if (n == 0) { /* UID COPY of UIDs that no longer exist (RFC 9051 §6.4.9: not an error) */
        imap_tagged(s, cmd, "OK", "No messages found.");
        return;
    }
    struct imap_copy_result r = {0};
    struct imap_view_changes ch = {0};
    rc = move ? imap_view_move(s->sel, seqs, n, dir, &r, &ch) : imap_view_copy(s->sel, seqs, n, dir, &r);
    free(seqs);
    if (rc != IMAP_VIEW_OK) {
        if (rc == IMAP_VIEW_ERR)
            imap_msgset_log_error(s, move ? "move" : "copy", rc);
        /* A move that failed half way still removed what it says: tell the client. */
        for (size_t i = 0; i < ch.nexpunged; i++)
            imap_untagged(s, "%u EXPUNGE", ch.expunged[i]);
        imap_copy_result_free(&r);
        imap_tagged(s, cmd, "NO", "%s", imap_msgset_rc_text(rc));
        return;
    }
    char *code = copyuid(&r);
    imap_copy_result_free(&r);
    if (!move) {
        if (code)
            imap_tagged(s, cmd, "OK", "[%s] Copy completed.", code);
        else
            imap_tagged(s, cmd, "OK", "Copy completed.");
        free(code);
        return;
    }
    if (code)
        imap_untagged(s, "OK [%s] Moved UIDs.", code);
    free(code);
    for (size_t i = 0; i < ch.nexpunged; i++)
        imap_untagged(s, "%u EXPUNGE", ch.expunged[i]);
    imap_tagged(s, cmd, "OK", "Move completed.");
}

void imap_cmd_copy(struct imap_session *s, const struct imap_command *cmd) { copy_or_move(s, cmd, 0); }
void imap_cmd_move(struct imap_session *s, const struct imap_command *cmd) { copy_or_move(s, cmd, 1); }
