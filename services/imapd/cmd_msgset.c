/* The message commands' shared pieces (cmd_msgset.h). */
#include "cmd_msgset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mflags.h"
#include "session_int.h"
#include "view.h"

struct imap_seqset *imap_msgset_parse(struct imap_session *s, const struct imap_command *cmd,
                                      const struct imap_arg *arg)
{
    const char *err = "Invalid messageset";
    struct imap_seqset *set = arg ? imap_seqset_from_arg(arg, &err) : NULL;
    if (!set) {
        if (arg && strcmp(err, "Out of memory") == 0)
            imap_tagged(s, cmd, "NO", "[SERVERBUG] Out of memory");
        else
            imap_bad(s, cmd, err);
        return NULL;
    }
    /* UIDs that do not exist simply match nothing; sequence numbers must exist. */
    if (!cmd->uid && !imap_seqset_seq_valid(set, imap_view_count(s->sel))) {
        imap_seqset_free(set);
        imap_bad(s, cmd, "Invalid messageset");
        return NULL;
    }
    return set;
}

void imap_msgset_start(struct imap_seqset_iter *it, struct imap_session *s, struct imap_seqset *set, int uid)
{
    if (uid)
        imap_seqset_iter_uid(it, set, imap_view_uid_at, s->sel, imap_view_count(s->sel));
    else
        imap_seqset_iter_seq(it, set, imap_view_count(s->sel));
}

int imap_msgset_next(struct imap_seqset_iter *it, struct imap_session *s, int uid, uint32_t *seq)
{
    if (uid)
        return imap_seqset_next_uid(it, imap_view_uid_at, s->sel, imap_view_count(s->sel), seq);
    return imap_seqset_next_seq(it, seq);
}

int imap_msgset_collect(struct imap_session *s, struct imap_seqset *set, int uid, uint32_t **seqs, size_t *n)
{
    struct imap_seqset_iter it;
    uint32_t seq, *v = NULL;
    size_t len = 0, cap = 0;
    imap_msgset_start(&it, s, set, uid);
    while (imap_msgset_next(&it, s, uid, &seq)) {
        if (len == cap) {
            /* Never more than the folder holds: the walk gives each message once. */
            size_t ncap = cap ? cap * 2 : 64;
            uint32_t *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
            cap = ncap;
        }
        v[len++] = seq;
    }
    *seqs = v;
    *n = len;
    return 0;
}

const char *imap_msgset_rc_text(int rc)
{
    switch (rc) {
    case IMAP_VIEW_NONEXISTENT:
        return "[TRYCREATE] Mailbox doesn't exist";
    case IMAP_VIEW_READONLY:
        return "[READ-ONLY] Mailbox is read-only";
    case IMAP_VIEW_GONE:
    case IMAP_VIEW_EXPUNGEISSUED:
        return "[EXPUNGEISSUED] Some of the requested messages no longer exist";
    case IMAP_VIEW_LIMIT:
        return "[LIMIT] Too many messages in the mailbox";
    default:
        return "[SERVERBUG] Internal error occurred. Refer to server log for more information.";
    }
}

void imap_msgset_write_flags(struct imap_session *s, uint32_t seq, int with_uid)
{
    char flags[IMAP_MFLAGS_TEXT_MAX];
    imap_mflags_text(imap_view_flags(s->sel, seq), flags, sizeof flags);
    if (with_uid)
        imap_untagged(s, "%u FETCH (UID %u FLAGS %s)", seq, imap_view_uid(s->sel, seq), flags);
    else
        imap_untagged(s, "%u FETCH (FLAGS %s)", seq, flags);
}

int imap_msgset_offered(const struct imap_session *s, const char *word)
{
    char caps[IMAP_CAPABILITY_MAX];
    imap_session_capabilities(s, caps, sizeof caps);
    size_t n = strlen(word);
    for (const char *p = caps; (p = strstr(p, word)) != NULL; p += n)
        if ((p == caps || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 1;
    return 0;
}

void imap_msgset_log_error(struct imap_session *s, const char *what, int rc)
{
    char lv[PM_LOGV_SIZE];
    pm_log(PM_ERR, "event=folder_error session=%llu op=%s folder=%s rc=%d error=\"%s\"", s->id, what,
           PM_LV(lv, imap_view_dir(s->sel)), rc, strerror(errno));
}
