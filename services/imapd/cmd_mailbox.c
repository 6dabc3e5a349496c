/* The folder commands of the Authenticated state (RFC 9051 §6.3.4-6.3.8, §6.3.11): CREATE,
 * DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE and STATUS, and the "* STATUS" line LIST-STATUS
 * shares (boxcmds.h). What a name means on disk and every change to the folders is
 * folder.c's; this file checks the arguments, keeps the selection right when the selected
 * folder is deleted or renamed away, and words the replies. LIST and LSUB: cmd_list.c. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "boxcmds.h"
#include "folder.h"
#include "istring.h"
#include "log.h"
#include "session_int.h"
#include "view.h"

static const struct {
    const char *word;
    unsigned bit;
} status_items[] = {
    {"MESSAGES", IMAP_ST_MESSAGES}, {"RECENT", IMAP_ST_RECENT}, {"UIDNEXT", IMAP_ST_UIDNEXT},
    {"UIDVALIDITY", IMAP_ST_UIDVALIDITY}, {"UNSEEN", IMAP_ST_UNSEEN}, {"SIZE", IMAP_ST_SIZE},
};

int imap_status_parse(const struct imap_arg *list, struct imap_status_req *req)
{
    memset(req, 0, sizeof *req);
    if (list->type != IMAP_ARG_LIST || list->n == 0)
        return -1;
    for (size_t i = 0; i < list->n; i++) {
        unsigned bit = 0;
        for (size_t k = 0; k < sizeof status_items / sizeof status_items[0]; k++)
            if (imap_arg_is_atom(&list->list[i], status_items[k].word))
                bit = status_items[k].bit;
        if (!bit)
            return -1;
        if (req->want & bit) /* named twice: answered once */
            continue;
        req->want |= bit;
        req->item[req->n++] = bit;
    }
    return 0;
}

void imap_write_mailbox(struct imap_session *s, const char *name, size_t len)
{
    if (imap_folder_is_inbox(name, len))
        imap_write_astring(imap_out(s), "INBOX", 5);
    else
        imap_write_astring(imap_out(s), name, len);
}

static void log_folder_error(const struct imap_session *s, const char *what, const char *name, size_t len)
{
    int err = errno;
    char nv[PM_LOGV_SIZE], nb[IMAP_FOLDER_NAME_MAX + 1];
    snprintf(nb, sizeof nb, "%.*s", (int)(len < IMAP_FOLDER_NAME_MAX ? len : IMAP_FOLDER_NAME_MAX), name);
    pm_log(PM_ERR, "event=%s_failed session=%llu folder=%s error=\"%s\"", what, s->id, PM_LV(nv, nb), strerror(err));
}

int imap_status_write(struct imap_session *s, const char *name, size_t len, const struct imap_status_req *req)
{
    char dir[IMAP_FOLDER_PATH_MAX];
    if (imap_folder_path(s->maildir, name, len, dir, sizeof dir) < 0)
        return IMAP_FOLDER_NONEXISTENT;
    struct imap_status st;
    int recovered = 0;
    int rc = imap_folder_status(dir, req->want, &st, &recovered);
    if (recovered) {
        char dv[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=uidlist_recovered session=%llu dir=%s detail=\"new UIDVALIDITY\"", s->id,
               PM_LV(dv, dir));
    }
    if (rc != IMAP_FOLDER_OK) {
        if (rc == IMAP_FOLDER_ERR)
            log_folder_error(s, "status", name, len);
        return rc;
    }
    /* The selected read-write folder's new mail is already in cur/, \Recent to this
     * session: the view knows it, the directory does not. */
    if (s->sel && strcmp(imap_view_dir(s->sel), dir) == 0)
        st.recent = imap_view_recent(s->sel);
    struct evbuffer *out = imap_out(s);
    evbuffer_add(out, "* STATUS ", 9);
    imap_write_mailbox(s, name, len);
    evbuffer_add(out, " (", 2);
    for (size_t i = 0; i < req->n; i++) {
        const char *sp = i ? " " : "";
        switch (req->item[i]) {
        case IMAP_ST_MESSAGES: evbuffer_add_printf(out, "%sMESSAGES %u", sp, (unsigned)st.messages); break;
        case IMAP_ST_RECENT: evbuffer_add_printf(out, "%sRECENT %u", sp, (unsigned)st.recent); break;
        case IMAP_ST_UIDNEXT: evbuffer_add_printf(out, "%sUIDNEXT %u", sp, (unsigned)st.uidnext); break;
        case IMAP_ST_UIDVALIDITY: evbuffer_add_printf(out, "%sUIDVALIDITY %u", sp, (unsigned)st.uidvalidity); break;
        case IMAP_ST_UNSEEN: evbuffer_add_printf(out, "%sUNSEEN %u", sp, (unsigned)st.unseen); break;
        case IMAP_ST_SIZE: evbuffer_add_printf(out, "%sSIZE %llu", sp, (unsigned long long)st.size); break;
        }
    }
    evbuffer_add(out, ")\r\n", 3);
    return IMAP_FOLDER_OK;
}

/* One folder name argument (CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE), else BAD. */
static const struct imap_arg *name_arg(struct imap_session *s, const struct imap_command *cmd, size_t nargs)
{
    if (cmd->nargs != nargs || !imap_arg_is_string(&cmd->args[0]) ||
        (nargs == 2 && !imap_arg_is_string(&cmd->args[1]))) {
        imap_bad(s, cmd, nargs == 2 ? "Two mailbox names expected" : "One mailbox name expected");
        return NULL;
    }
    return &cmd->args[0];
}

/* Answers a folder.c result; what is left to say on success is the caller's. */
static int folder_refused(struct imap_session *s, const struct imap_command *cmd, int rc, const char *what,
                          const struct imap_arg *name)
{
    if (rc == IMAP_FOLDER_OK)
        return 0;
    if (rc == IMAP_FOLDER_ERR)
        log_folder_error(s, what, name->s, name->len);
    imap_tagged(s, cmd, "NO", "%s", imap_folder_rc_text(rc));
    return 1;
}

/* A name a client may create: modified UTF-7 (RFC 9051 §5.1; UTF8=ACCEPT is not offered),
 * one trailing '/' aside (CREATE drops it). */
static int creatable(const struct imap_arg *name)
{
    size_t len = name->len;
    if (len && name->s[len - 1] == '/')
        len--;
    return imap_mutf7_valid(name->s, len);
}

void imap_cmd_create(struct imap_session *s, const struct imap_command *cmd)
{
    const struct imap_arg *name = name_arg(s, cmd, 1);
    if (!name)
        return;
    if (!creatable(name)) {
        imap_tagged(s, cmd, "NO", "%s", imap_folder_rc_text(IMAP_FOLDER_INVALID));
        return;
    }
    if (folder_refused(s, cmd, imap_folder_create(s->maildir, name->s, name->len), "create", name))
        return;
    imap_tagged(s, cmd, "OK", "Create completed");
}

/* 1 if the selected folder is the folder at dir or one below it (Maildir++ ".a" and
 * ".a.b"): deleting or renaming dir takes the selection's files away. */
static int selection_under(const struct imap_session *s, const char *dir)
{
    if (!s->sel)
        return 0;
    const char *sel = imap_view_dir(s->sel);
    size_t n = strlen(dir);
    return strncmp(sel, dir, n) == 0 && (sel[n] == '\0' || sel[n] == '.');
}

/* The folder under the selection is gone: the session leaves the selected state (RFC 9051
 * §6.3.5 lets the server do that), saying so with [CLOSED] as SELECT does. */
static void drop_selection(struct imap_session *s)
{
    imap_unselect(s);
    imap_untagged(s, "OK [CLOSED] Mailbox was deleted or renamed.");
}

void imap_cmd_delete(struct imap_session *s, const struct imap_command *cmd)
{
    const struct imap_arg *name = name_arg(s, cmd, 1);
    if (!name)
        return;
    char dir[IMAP_FOLDER_PATH_MAX];
    /* Only the folder itself goes: its children stay (imap_folder_delete), so may the selection. */
    int selected = !imap_folder_is_inbox(name->s, name->len) &&
                   imap_folder_path(s->maildir, name->s, name->len, dir, sizeof dir) == 0 && selection_under(s, dir) &&
                   strcmp(imap_view_dir(s->sel), dir) == 0;
    if (folder_refused(s, cmd, imap_folder_delete(s->maildir, name->s, name->len), "delete", name))
        return;
    if (selected)
        drop_selection(s);
    imap_tagged(s, cmd, "OK", "Delete completed");
}

void imap_cmd_rename(struct imap_session *s, const struct imap_command *cmd)
{
    const struct imap_arg *from = name_arg(s, cmd, 2);
    if (!from)
        return;
    const struct imap_arg *to = &cmd->args[1];
    if (!creatable(to)) {
        imap_tagged(s, cmd, "NO", "%s", imap_folder_rc_text(IMAP_FOLDER_INVALID));
        return;
    }
    /* Renaming INBOX leaves INBOX where it is (its messages move): the selection stays and
     * hears of them as EXPUNGEs. Any other folder's directory goes, children included. */
    char dir[IMAP_FOLDER_PATH_MAX];
    int selected = !imap_folder_is_inbox(from->s, from->len) &&
                   imap_folder_path(s->maildir, from->s, from->len, dir, sizeof dir) == 0 && selection_under(s, dir);
    int rc = imap_folder_rename(s->maildir, from->s, from->len, to->s, to->len);
    if (folder_refused(s, cmd, rc, "rename", from))
        return;
    if (selected)
        drop_selection(s);
    imap_tagged(s, cmd, "OK", "Rename completed");
}

static void subscribe(struct imap_session *s, const struct imap_command *cmd, int on)
{
    const struct imap_arg *name = name_arg(s, cmd, 1);
    if (!name)
        return;
    if (folder_refused(s, cmd, imap_folder_subscribe(s->maildir, name->s, name->len, on),
                       on ? "subscribe" : "unsubscribe", name))
        return;
    imap_tagged(s, cmd, "OK", on ? "Subscribe completed" : "Unsubscribe completed");
}

void imap_cmd_subscribe(struct imap_session *s, const struct imap_command *cmd) { subscribe(s, cmd, 1); }
void imap_cmd_unsubscribe(struct imap_session *s, const struct imap_command *cmd) { subscribe(s, cmd, 0); }

void imap_cmd_status(struct imap_session *s, const struct imap_command *cmd)
{
    struct imap_status_req req;
    if (cmd->nargs != 2 || !imap_arg_is_string(&cmd->args[0]) || imap_status_parse(&cmd->args[1], &req) < 0) {
        imap_bad(s, cmd, "STATUS needs a mailbox name and a list of MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE");
        return;
    }
    const struct imap_arg *name = &cmd->args[0];
    if (!imap_folder_name_ok(name->s, name->len)) {
        imap_tagged(s, cmd, "NO", "%s", imap_folder_rc_text(IMAP_FOLDER_NONEXISTENT));
        return;
    }
    int rc = imap_status_write(s, name->s, name->len, &req);
    if (rc != IMAP_FOLDER_OK) {
        imap_tagged(s, cmd, "NO", "%s", imap_folder_rc_text(rc));
        return;
    }
    imap_tagged(s, cmd, "OK", "Status completed");
}
