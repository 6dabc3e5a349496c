/* FETCH and UID FETCH (RFC 9051 §6.4.5, §7.5.2): for each message of the set, one
 * "* n FETCH (UID .. FLAGS .. INTERNALDATE .. RFC822.SIZE .. ENVELOPE .. BODY[..] ..)".
 *
 * What the folder listing knows (UID, FLAGS, INTERNALDATE, RFC822.SIZE) comes from view.c;
 * the rest from the message file through mime.c (GMime), opened only when an item needs
 * it. A message's response is built whole in its own buffer and then moved to the output
 * (file ranges stay file segments, never copied), so a file that cannot be read leaves no
 * half response. The output is produced one message at a time and the command yields when
 * it is full: a FETCH 1:* of a large folder never holds more than the watermark.
 *
 * \Seen: BODY[...] / RFC822 / RFC822.TEXT without .PEEK set it in a folder selected read-
 * write, and the response then carries FLAGS (RFC 9051 §6.4.5). A message whose file
 * vanished (pop3d or another session removed it) is left out and the tagged reply says
 * EXPUNGEISSUED, as Dovecot does. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "cmd_msgset.h"
#include "fetch_atts.h"
#include "folder.h"
#include "log.h"
#include "mflags.h"
#include "mime.h"
#include "session_int.h"
#include "view.h"

struct fetch_job {
    const struct imap_command *cmd;
    struct imap_fetch_atts fa;
    struct imap_seqset *set;
    struct imap_seqset_iter it;
    int need_msg;   /* some item reads the file */
    int mark_seen;  /* some item sets \Seen and the folder is read-write */
    size_t gone, failed, unknown_cte;
};

/* The last message parsed, kept across items and commands: clients fetch BODYSTRUCTURE
 * and then the parts of the same message in the next command. A message file never
 * changes (Maildir), so the key is the folder and the Maildir unique name (not the UID: a
 * folder deleted and made again within a second has the same UIDVALIDITY and UIDs). One
 * process serves every session, so this is one entry for all of them. */
static struct {
    char *id; /* "<folder dir>/<unique name>" */
    struct imap_msg *m;
} last;

static void last_drop(void)
{
    imap_msg_free(last.m);
    free(last.id);
    memset(&last, 0, sizeof last);
}

/* The parsed message seq, or NULL (errno ENOENT: its file vanished). */
static struct imap_msg *message(struct imap_view *v, uint32_t seq)
{
    char path[IMAP_FOLDER_PATH_MAX], *id = NULL;
    if (imap_view_path(v, seq, path, sizeof path) == 0) {
        const char *name = strrchr(path, '/');
        name = name ? name + 1 : path;
        if (asprintf(&id, "%s/%.*s", imap_view_dir(v), (int)imap_mflags_keylen(name), name) < 0)
            id = NULL;
    }
    if (id && last.id && strcmp(last.id, id) == 0) {
        free(id);
        return last.m;
    }
    last_drop();
    int fd = imap_view_open_msg(v, seq);
    struct imap_msg *m = fd >= 0 ? imap_msg_open(fd) : NULL; /* it closes fd when it fails */
    if (!m) {
        free(id);
        return NULL;
    }
    last.id = id; /* NULL (out of memory): kept for this message only */
    last.m = m;
    return m;
}

/* INTERNALDATE as RFC 9051 date-time, in UTC: "02-Dec-2026 03:04:05 +0000". */
static void write_date(struct evbuffer *out, time_t t)
{
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
        t = 0; /* a file dated out of IMAP's range */
        gmtime_r(&t, &tm);
    }
    evbuffer_add_printf(out, "INTERNALDATE \"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday, months[tm.tm_mon],
                        tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The items that read the file, each preceded by a space, into out. 0, -1 read error,
 * -2 BINARY of an unknown transfer encoding. */
static int write_message_items(const struct imap_fetch_atts *fa, struct imap_msg *m, struct evbuffer *out)
{
    if (fa->items & IMAP_FETCH_ENVELOPE) {
        evbuffer_add(out, " ENVELOPE ", 10);
        if (imap_msg_envelope(m, out) < 0)
            return -1;
    }
    if (fa->items & IMAP_FETCH_BODY) {
        evbuffer_add(out, " BODY ", 6);
        if (imap_msg_bodystructure(m, 0, out) < 0)
            return -1;
    }
    if (fa->items & IMAP_FETCH_BODYSTRUCTURE) {
        evbuffer_add(out, " BODYSTRUCTURE ", 15);
        if (imap_msg_bodystructure(m, 1, out) < 0)
            return -1;
    }
    for (size_t i = 0; i < fa->nbodies; i++) {
        const struct imap_fetch_body *b = &fa->bodies[i];
        evbuffer_add_printf(out, " %s ", b->name);
        int rc;
        if (b->kind == IMAP_FETCH_SECTION) {
            rc = imap_msg_section_write(m, &b->section, b->partial, b->offset, b->count, out);
        } else if (b->kind == IMAP_FETCH_BINARY) {
            rc = imap_msg_binary_write(m, &b->section, b->partial, b->offset, b->count, out);
        } else {
            int64_t size = imap_msg_binary_size(m, &b->section);
            rc = size < 0 ? (int)size : 0;
            if (size >= 0)
                evbuffer_add_printf(out, "%lld", (long long)size);
        }
        if (rc < 0)
            return rc < -1 ? -2 : -1;
    }
    return 0;
}

/* One message's response into the output. 0, IMAP_VIEW_GONE, -1 read error, -2 unknown CTE. */
static int fetch_one(struct imap_session *s, struct fetch_job *j, uint32_t seq)
{
    struct imap_view *v = s->sel;
    const struct imap_fetch_atts *fa = &j->fa;
    if (imap_view_gone(v, seq))
        return IMAP_VIEW_GONE;
    struct evbuffer *items = evbuffer_new();
    if (!items)
        return -1;
    int rc = 0;
    if (j->need_msg) {
        struct imap_msg *m = message(v, seq);
        if (!m)
            rc = errno == ENOENT ? IMAP_VIEW_GONE : -1;
        else
            rc = write_message_items(fa, m, items);
    }
    time_t date = 0;
    off_t size = 0;
    if (rc == 0 && (fa->items & IMAP_FETCH_INTERNALDATE) && imap_view_internaldate(v, seq, &date) != 0)
        rc = IMAP_VIEW_GONE;
    if (rc == 0 && (fa->items & IMAP_FETCH_RFC822_SIZE) && (size = imap_view_size(v, seq)) < 0)
        rc = IMAP_VIEW_GONE;
    /* \Seen only once the message could be read: its content is on its way. */
    unsigned flags = imap_view_flags(v, seq);
    int seen_set = 0;
    if (rc == 0 && j->mark_seen && !(flags & IMAP_F_SEEN)) {
        int set = imap_view_store_flags(v, seq, '+', IMAP_F_SEEN);
        if (set == IMAP_VIEW_GONE)
            rc = IMAP_VIEW_GONE;
        else if (set != IMAP_VIEW_OK)
            imap_msgset_log_error(s, "fetch_seen", set);
        else
            seen_set = 1, flags = imap_view_flags(v, seq);
    }
    if (rc != 0) {
        evbuffer_free(items);
        return rc;
    }
    struct evbuffer *out = imap_out(s);
    evbuffer_add_printf(out, "* %u FETCH (", seq);
    const char *sep = "";
    if (fa->items & IMAP_FETCH_UID) {
        evbuffer_add_printf(out, "UID %u", imap_view_uid(v, seq));
        sep = " ";
    }
    if ((fa->items & IMAP_FETCH_FLAGS) || seen_set) {
        char text[IMAP_MFLAGS_TEXT_MAX];
        imap_mflags_text(flags, text, sizeof text);
        evbuffer_add_printf(out, "%sFLAGS %s", sep, text);
        sep = " ";
    }
    if (fa->items & IMAP_FETCH_INTERNALDATE) {
        evbuffer_add_printf(out, "%s", sep);
        write_date(out, date);
        sep = " ";
    }
    if (fa->items & IMAP_FETCH_RFC822_SIZE) {
        evbuffer_add_printf(out, "%sRFC822.SIZE %lld", sep, (long long)size);
        sep = " ";
    }
    /* The file's items each start with a space: drop it when they come first. */
    if (!*sep && evbuffer_get_length(items))
        evbuffer_drain(items, 1);
    evbuffer_add_buffer(out, items);
    evbuffer_add(out, ")\r\n", 3);
    evbuffer_free(items);
    return 0;
}

static void job_free(void *arg)
{
    struct fetch_job *j = arg;
    imap_fetch_atts_free(&j->fa);
    imap_seqset_free(j->set);
    free(j);
}

static void fetch_done(struct imap_session *s, struct fetch_job *j)
{
    const struct imap_command *cmd = j->cmd;
    size_t gone = j->gone, failed = j->failed, unknown_cte = j->unknown_cte;
    job_free(j);
    if (unknown_cte)
        imap_tagged(s, cmd, "NO", "[UNKNOWN-CTE] Unknown Content-Transfer-Encoding");
    else if (failed)
        imap_tagged(s, cmd, "NO", "%s", imap_msgset_rc_text(IMAP_VIEW_ERR));
    else if (gone)
        imap_tagged(s, cmd, "OK", "[EXPUNGEISSUED] Some messages were already expunged.");
    else
        imap_tagged(s, cmd, "OK", "Fetch completed.");
}

static void fetch_run(struct imap_session *s, void *arg)
{
    struct fetch_job *j = arg;
    uint32_t seq;
    while (!imap_out_full(s)) {
        if (!imap_msgset_next(&j->it, s, j->cmd->uid, &seq)) {
            fetch_done(s, j);
            return;
        }
        int rc = fetch_one(s, j, seq);
        if (rc == IMAP_VIEW_GONE) {
            j->gone++;
        } else if (rc == -2) {
            j->unknown_cte++;
        } else if (rc < 0) {
            if (!j->failed++) {
                char lv[PM_LOGV_SIZE];
                pm_log(PM_ERR, "event=fetch_failed session=%llu folder=%s uid=%u error=\"%s\"", s->id,
                       PM_LV(lv, imap_view_dir(s->sel)), imap_view_uid(s->sel, seq), strerror(errno));
            }
        }
    }
    imap_yield(s, fetch_run, j, job_free);
}

void imap_cmd_fetch(struct imap_session *s, const struct imap_command *cmd)
{
    /* set items; a third argument (modifiers) would be CONDSTORE's CHANGEDSINCE */
    if (cmd->nargs != 2) {
        imap_bad(s, cmd, "Invalid arguments");
        return;
    }
    struct fetch_job *j = calloc(1, sizeof *j);
    if (!j) {
        imap_tagged(s, cmd, "NO", "[SERVERBUG] Out of memory");
        return;
    }
    j->cmd = cmd;
    const char *err = "Invalid fetch items";
    /* BINARY (RFC 3516) only when CAPABILITY says so (command_table.c). */
    unsigned opts = imap_msgset_offered(s, "BINARY") ? IMAP_FETCH_OPT_BINARY : 0;
    if (imap_fetch_atts_parse(&cmd->args[1], cmd->uid, opts, &j->fa, &err) < 0) {
        job_free(j);
        if (strcmp(err, "Out of memory") == 0)
            imap_tagged(s, cmd, "NO", "[SERVERBUG] Out of memory");
        else
            imap_bad(s, cmd, err);
        return;
    }
    j->set = imap_msgset_parse(s, cmd, &cmd->args[0]);
    if (!j->set) {
        job_free(j);
        return;
    }
    j->need_msg = imap_fetch_atts_need_message(&j->fa);
    j->mark_seen = j->fa.sets_seen && !s->readonly && !imap_view_readonly(s->sel);
    imap_msgset_start(&j->it, s, j->set, cmd->uid);
    fetch_run(s, j);
}
