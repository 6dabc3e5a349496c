/* The selected state (RFC 9051 §6.3.2-6.3.3, §6.4.1-6.4.2; RFC 3691 UNSELECT): SELECT and
 * EXAMINE open a folder as a view (view.h) and tell the client its size, flags and UIDs;
 * CLOSE (expunging \Deleted messages silently) and UNSELECT end it; CHECK is a sync point.
 * imap_announce turns what other processes changed in the selected folder into untagged
 * EXPUNGE / EXISTS / RECENT / FETCH lines; imap_tagged calls it at every command's end.
 *
 * Which state each command may run in is command_table.c's; opening, syncing and expunging
 * the files is view.c's. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "folder.h"
#include "log.h"
#include "mflags.h"
#include "session_int.h"
#include "view.h"

/* The folder name argument of SELECT / EXAMINE / STATUS ...: the one astring. */
static int one_name(const struct imap_command *cmd)
{
    return cmd->nargs == 1 && imap_arg_is_string(&cmd->args[0]);
}

static void log_recovered(const struct imap_session *s, const char *dir)
{
    char dv[PM_LOGV_SIZE];
    pm_log(PM_WARN, "event=uidlist_recovered session=%llu dir=%s detail=\"new UIDVALIDITY\"", s->id, PM_LV(dv, dir));
}

static void select_folder(struct imap_session *s, const struct imap_command *cmd, int readonly)
{
    if (!one_name(cmd)) {
        imap_bad(s, cmd, readonly ? "EXAMINE needs one mailbox name" : "SELECT needs one mailbox name");
        return;
    }
    /* A SELECT while selected ends the old selection first, whether or not the new one
     * opens (RFC 9051 §6.3.2: a failed SELECT leaves none), without expunging. [CLOSED]
     * marks where the old folder's responses end (RFC 7162 §3.2.11, kept by RFC 9051). */
    if (s->sel) {
        imap_unselect(s);
        imap_untagged(s, "OK [CLOSED] Previous mailbox closed.");
    }
    const struct imap_arg *name = &cmd->args[0];
    char dir[IMAP_FOLDER_PATH_MAX];
    if (imap_folder_path(s->maildir, name->s, name->len, dir, sizeof dir) < 0) {
        imap_tagged(s, cmd, "NO", "[NONEXISTENT] Mailbox doesn't exist");
        return;
    }
    struct imap_view *v = NULL;
    int recovered = 0;
    int rc = imap_view_open(dir, readonly, &v, &recovered);
    if (recovered)
        log_recovered(s, dir);
    if (rc == IMAP_VIEW_NONEXISTENT) {
        imap_tagged(s, cmd, "NO", "[NONEXISTENT] Mailbox doesn't exist");
        return;
    }
    if (rc != IMAP_VIEW_OK) {
        int err = errno;
        char dv[PM_LOGV_SIZE];
        pm_log(PM_ERR, "event=select_failed session=%llu dir=%s error=\"%s\"", s->id, PM_LV(dv, dir), strerror(err));
        imap_tagged(s, cmd, "NO", "[SERVERBUG] Mailbox cannot be opened now");
        return;
    }
    char flags[IMAP_MFLAGS_TEXT_MAX];
    imap_mflags_text(IMAP_F_ALL, flags, sizeof flags);
    imap_untagged(s, "FLAGS %s", flags);
    if (readonly)
        imap_untagged(s, "OK [PERMANENTFLAGS ()] Read-only mailbox.");
    else
        imap_untagged(s, "OK [PERMANENTFLAGS %s] Flags permitted.", flags);
    imap_untagged(s, "%u EXISTS", (unsigned)imap_view_count(v));
    imap_untagged(s, "%u RECENT", (unsigned)imap_view_recent(v));
    uint32_t unseen = imap_view_first_unseen(v);
    if (unseen)
        imap_untagged(s, "OK [UNSEEN %u] First unseen.", (unsigned)unseen);
    imap_untagged(s, "OK [UIDVALIDITY %u] UIDs valid", (unsigned)imap_view_uidvalidity(v));
    imap_untagged(s, "OK [UIDNEXT %u] Predicted next UID", (unsigned)imap_view_uidnext(v));
    imap_selected(s, v, readonly, dir);
    if (readonly)
        imap_tagged(s, cmd, "OK", "[READ-ONLY] Examine completed");
    else
        imap_tagged(s, cmd, "OK", "[READ-WRITE] Select completed");
}

void imap_cmd_select(struct imap_session *s, const struct imap_command *cmd) { select_folder(s, cmd, 0); }
void imap_cmd_examine(struct imap_session *s, const struct imap_command *cmd) { select_folder(s, cmd, 1); }

static int no_args(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs) {
        imap_bad(s, cmd, "Unexpected arguments");
        return 0;
    }
    if (!s->sel) { /* the table allows these only when selected: a second guard */
        imap_bad(s, cmd, "No mailbox selected");
        return 0;
    }
    return 1;
}

/* CLOSE: \Deleted messages go without an EXPUNGE line each (the client leaves the selected
 * state and would not know the numbers any more); an EXAMINE'd folder loses nothing. */
void imap_cmd_close(struct imap_session *s, const struct imap_command *cmd)
{
    if (!no_args(s, cmd))
        return;
    if (!s->readonly) {
        struct imap_view_changes ch;
        if (imap_view_expunge(s->sel, NULL, 0, &ch) != IMAP_VIEW_OK) {
            int err = errno;
            char dv[PM_LOGV_SIZE];
            pm_log(PM_WARN, "event=close_expunge_failed session=%llu dir=%s expunged=%zu error=\"%s\"", s->id,
                   PM_LV(dv, imap_view_dir(s->sel)), ch.nexpunged, strerror(err));
        }
    }
    imap_unselect(s);
    imap_tagged(s, cmd, "OK", "Close completed");
}

void imap_cmd_unselect(struct imap_session *s, const struct imap_command *cmd)
{
    if (!no_args(s, cmd))
        return;
    imap_unselect(s);
    imap_tagged(s, cmd, "OK", "Unselect completed");
}

/* CHECK: nothing is buffered (every change is on disk when its command ends); the sync at
 * the tagged reply is all it does, as NOOP. */
void imap_cmd_check(struct imap_session *s, const struct imap_command *cmd)
{
    if (!no_args(s, cmd))
        return;
    imap_tagged(s, cmd, "OK", "Check completed");
}

void imap_unselect(struct imap_session *s)
{
    if (!s->sel)
        return;
    struct imap_view *v = s->sel;
    imap_selected(s, NULL, 0, NULL);
    imap_view_close(v);
}

/* The selected folder is not the one the client knows any more: its UIDs and numbers mean
 * nothing now. RFC 9051 has no way to say so but to end the session (as Dovecot does). */
static void folder_lost(struct imap_session *s, const char *why)
{
    char dv[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=selected_folder_lost session=%llu dir=%s reason=%s", s->id,
           PM_LV(dv, imap_view_dir(s->sel)), why);
    imap_untagged(s, "BYE %s", strcmp(why, "deleted") == 0 ? "Selected mailbox was deleted, have to disconnect."
                                                           : "Selected mailbox was recreated, have to disconnect.");
    imap_unselect(s);
    imap_close_after_reply(s);
}

void imap_announce(struct imap_session *s, int may_expunge)
{
    if (!s->sel)
        return;
    /* Deleted by another session or process: the scan would see an empty folder and the
     * session would go on in a folder that is not there (one stat per sync). */
    if (access(imap_view_dir(s->sel), F_OK) < 0 && errno == ENOENT) {
        folder_lost(s, "deleted");
        return;
    }
    struct imap_view_changes ch;
    if (imap_view_sync(s->sel, may_expunge, &ch) != IMAP_VIEW_OK) {
        int err = errno;
        /* The view is as it was: the client hears of the changes at the next sync. */
        char dv[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=sync_failed session=%llu dir=%s error=\"%s\"", s->id,
               PM_LV(dv, imap_view_dir(s->sel)), strerror(err));
        return;
    }
    if (ch.reselect) {
        folder_lost(s, "recreated");
        return;
    }
    for (size_t i = 0; i < ch.nexpunged; i++)
        imap_untagged(s, "%u EXPUNGE", (unsigned)ch.expunged[i]);
    if (ch.exists_changed) {
        imap_untagged(s, "%u EXISTS", (unsigned)ch.exists);
        imap_untagged(s, "%u RECENT", (unsigned)ch.recent);
    }
    for (size_t i = 0; i < ch.nflags; i++) {
        uint32_t seq = ch.flags_seq[i];
        char flags[IMAP_MFLAGS_TEXT_MAX];
        imap_mflags_text(imap_view_flags(s->sel, seq), flags, sizeof flags);
        /* The UID too: a client that works by UIDs (mbsync, most) need not map the number. */
        imap_untagged(s, "%u FETCH (UID %u FLAGS %s)", (unsigned)seq, (unsigned)imap_view_uid(s->sel, seq), flags);
    }
}
