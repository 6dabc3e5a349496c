/* APPEND (RFC 9051 §6.3.12, RFC 4315 APPENDUID): mailbox [(flags)] ["date-time"] literal.
 * session.c has already streamed the message literal into a file in INBOX's tmp/ (bounded
 * by imapd.max_message_size: a larger one is answered [TOOBIG] there and never gets here);
 * this file checks the other arguments, and view.c's imap_store_append makes the file a
 * message of the target folder with its UID. The file that remains after a failure is
 * removed by the session when the command ends (imap_end_command).
 *
 * A selected target hears of the message at the sync of the tagged reply (EXISTS). */
#include <errno.h>
#include <string.h>

#include "boxcmds.h"
#include "datetime.h"
#include "folder.h"
#include "log.h"
#include "mflags.h"
#include "session_int.h"
#include "view.h"

/* What APPEND's arguments before the message literal say. */
struct append_args {
    unsigned flags;
    time_t date; /* 0: now */
    char dir[IMAP_FOLDER_PATH_MAX];
};

/* args[0..n): mailbox [(flags)] ["date-time"]. NULL and *a filled, or the refusal's text
 * with *status. exists: the target's existence is checked too ([TRYCREATE]). */
static const char *check_args(struct imap_session *s, const struct imap_arg *args, size_t n, int exists,
                              struct append_args *a, const char **status)
{
    *status = "BAD";
    a->flags = 0;
    a->date = 0;
    if (n < 1 || n > 3 || !imap_arg_is_string(&args[0]))
        return "APPEND needs a mailbox name, optional flags and date, and the message literal";
    size_t i = 1;
    if (i < n && args[i].type == IMAP_ARG_LIST) {
        if (imap_mflags_parse(&args[i], 1, &a->flags) < 0)
            return "Invalid flags";
        i++;
    }
    if (i < n) {
        const struct imap_arg *d = &args[i++];
        if (d->type != IMAP_ARG_QUOTED || imap_parse_datetime(d->s, d->len, &a->date) < 0)
            return "Invalid date-time";
    }
    if (i != n)
        return "Unexpected arguments";
    *status = "NO";
    if (imap_folder_path(s->maildir, args[0].s, args[0].len, a->dir, sizeof a->dir) < 0)
        return imap_folder_rc_text(IMAP_FOLDER_INVALID);
    if (exists && !imap_folder_exists(s->maildir, args[0].s, args[0].len))
        return "[TRYCREATE] Mailbox doesn't exist";
    return NULL;
}

const char *imap_append_check(struct imap_session *s, const struct imap_arg *args, size_t nargs, const char **status)
{
    struct append_args a;
    return check_args(s, args, nargs, 1, &a, status);
}

void imap_cmd_append(struct imap_session *s, const struct imap_command *cmd)
{
    /* mailbox, then optional (flags) and "date-time", then the literal's place. */
    size_t n = cmd->nargs;
    if (n < 2 || cmd->args[n - 1].type != IMAP_ARG_LITERAL || cmd->append_fd < 0 || !cmd->append_path) {
        imap_bad(s, cmd, "APPEND needs a mailbox name, optional flags and date, and the message literal");
        return;
    }
    struct append_args a;
    const char *status;
    /* Existence is imap_store_append's to find (it is checked under the folder's lock). */
    const char *why = check_args(s, cmd->args, n - 1, 0, &a, &status);
    if (why) {
        if (strcmp(status, "BAD") == 0)
            imap_bad(s, cmd, why);
        else
            imap_tagged(s, cmd, status, "%s", why);
        return;
    }
    if (cmd->append_size == 0) {
        imap_tagged(s, cmd, "NO", "Can't save a zero byte message");
        return;
    }
    const char *dir = a.dir;
    uint32_t uidvalidity = 0, uid = 0;
    int rc = imap_store_append(dir, cmd->append_path, a.flags & IMAP_F_PERMANENT, a.date, &uidvalidity, &uid);
    switch (rc) {
    case IMAP_VIEW_OK:
        imap_tagged(s, cmd, "OK", "[APPENDUID %u %u] Append completed", (unsigned)uidvalidity, (unsigned)uid);
        return;
    case IMAP_VIEW_NONEXISTENT:
        imap_tagged(s, cmd, "NO", "[TRYCREATE] Mailbox doesn't exist");
        return;
    case IMAP_VIEW_LIMIT:
        imap_tagged(s, cmd, "NO", "[LIMIT] Mailbox is full");
        return;
    default: {
        int err = errno;
        char dv[PM_LOGV_SIZE];
        pm_log(PM_ERR, "event=append_failed session=%llu dir=%s size=%zu error=\"%s\"", s->id, PM_LV(dv, dir),
               cmd->append_size, strerror(err));
        imap_tagged(s, cmd, "NO", "[SERVERBUG] Message cannot be saved now");
    }
    }
}
