/* STORE and UID STORE (RFC 9051 §6.4.6): FLAGS, +FLAGS, -FLAGS, each with .SILENT. Each
 * message's new flags go into its file name (view.c renames it) and, unless .SILENT, the
 * client is told "* n FETCH (FLAGS (...))" for every message of the set (UID n too for UID
 * STORE, RFC 9051 §6.4.9). Keywords are accepted and not kept (PERMANENTFLAGS has no \*).
 * A long set yields when the output is full. CONDSTORE's UNCHANGEDSINCE is not offered. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd_msgset.h"
#include "mflags.h"
#include "session_int.h"
#include "view.h"

/* imap_view_store_flags's op: applied to the flags the file has now, so another
 * session's change survives ours. */
enum store_mode { STORE_REPLACE = '=', STORE_ADD = '+', STORE_REMOVE = '-' };

struct store_job {
    const struct imap_command *cmd;
    struct imap_seqset *set;
    struct imap_seqset_iter it;
    enum store_mode mode;
    int silent;
    unsigned flags;          /* IMAP_F_PERMANENT bits named by the command */
    size_t skipped, failed;  /* messages that vanished / could not be renamed */
};

/* "FLAGS", "+FLAGS.SILENT", ... (any case): 0 with *mode and *silent, or -1. */
static int parse_item(const struct imap_arg *arg, enum store_mode *mode, int *silent)
{
    if (arg->type != IMAP_ARG_ATOM)
        return -1;
    const char *p = arg->s;
    size_t len = arg->len;
    *mode = STORE_REPLACE;
    if (len && (*p == '+' || *p == '-')) {
        *mode = *p == '+' ? STORE_ADD : STORE_REMOVE;
        p++;
        len--;
    }
    if (len == 5 && strncasecmp(p, "FLAGS", 5) == 0)
        *silent = 0;
    else if (len == 12 && strncasecmp(p, "FLAGS.SILENT", 12) == 0)
        *silent = 1;
    else
        return -1;
    return 0;
}

static void job_free(void *arg)
{
    struct store_job *j = arg;
    imap_seqset_free(j->set);
    free(j);
}

/* Messages per loop turn: a .SILENT STORE writes nothing, so the output bound alone would
 * let one on 100,000 messages hold every other session for the whole run. */
#define STORE_PER_TURN 1000

static void store_run(struct imap_session *s, void *arg)
{
    struct store_job *j = arg;
    uint32_t seq;
    for (unsigned turn = 0; turn < STORE_PER_TURN && !imap_out_full(s); turn++) {
        if (!imap_msgset_next(&j->it, s, j->cmd->uid, &seq)) {
            const struct imap_command *cmd = j->cmd;
            size_t skipped = j->skipped, failed = j->failed;
            job_free(j);
            if (failed)
                imap_tagged(s, cmd, "NO", "%s", imap_msgset_rc_text(IMAP_VIEW_ERR));
            else if (skipped)
                imap_tagged(s, cmd, "OK", "[EXPUNGEISSUED] Some messages were already expunged.");
            else
                imap_tagged(s, cmd, "OK", "Store completed.");
            return;
        }
        if (imap_view_gone(s->sel, seq)) {
            j->skipped++;
            continue;
        }
        int rc = imap_view_store_flags(s->sel, seq, (int)j->mode, j->flags);
        if (rc == IMAP_VIEW_GONE) {
            j->skipped++;
            continue;
        }
        if (rc != IMAP_VIEW_OK) {
            if (!j->failed++)
                imap_msgset_log_error(s, "store", rc);
            continue;
        }
        if (!j->silent)
            imap_msgset_write_flags(s, seq, j->cmd->uid);
    }
    imap_yield(s, store_run, j, job_free);
}

void imap_cmd_store(struct imap_session *s, const struct imap_command *cmd)
{
    enum store_mode mode;
    int silent;
    unsigned flags;
    /* set item flags...; a modifier list after the set would be CONDSTORE's */
    if (cmd->nargs < 3 || parse_item(&cmd->args[1], &mode, &silent) < 0) {
        imap_bad(s, cmd, "Invalid arguments");
        return;
    }
    if (imap_mflags_parse(&cmd->args[2], cmd->nargs - 2, &flags) < 0) {
        imap_bad(s, cmd, "Invalid flags");
        return;
    }
    struct imap_seqset *set = imap_msgset_parse(s, cmd, &cmd->args[0]);
    if (!set)
        return;
    if (s->readonly || imap_view_readonly(s->sel)) {
        imap_seqset_free(set);
        imap_tagged(s, cmd, "NO", "%s", imap_msgset_rc_text(IMAP_VIEW_READONLY));
        return;
    }
    struct store_job *j = calloc(1, sizeof *j);
    if (!j) {
        imap_seqset_free(set);
        imap_tagged(s, cmd, "NO", "[SERVERBUG] Out of memory");
        return;
    }
    *j = (struct store_job){.cmd = cmd, .set = set, .mode = mode, .silent = silent,
                            .flags = flags & IMAP_F_PERMANENT};
    imap_msgset_start(&j->it, s, set, cmd->uid);
    store_run(s, j);
}
