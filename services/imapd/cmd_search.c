/* SEARCH and UID SEARCH (RFC 9051 §6.4.4): the criteria parsed once by search.c, matched
 * against each message of the selected folder in order, answered "* SEARCH 1 4 7" (UIDs
 * for UID SEARCH) or, when RETURN is given and offered, "* ESEARCH" (RFC 4731).
 *
 * A message's file is opened only when the program reaches a header or body key for it
 * (search.c tries the listing's keys first), and parsed by mime.c (GMime) at most once.
 * Searching a large folder's bodies takes time: the command yields every few opened files
 * so the other sessions of the process keep being served. A message whose file vanished
 * matches nothing and the reply says EXPUNGEISSUED (as Dovecot). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "cmd_msgset.h"
#include "log.h"
#include "mime.h"
#include "search.h"
#include "session_int.h"
#include "view.h"

/* Opened files between two turns of the event loop. */
#define SEARCH_FILES_PER_TURN 64
/* ... or after about this many bytes read: each BODY / TEXT key reads the whole file. */
#define SEARCH_BYTES_PER_TURN (16u << 20)

struct search_job {
    const struct imap_command *cmd;
    struct imap_search *prog;
    uint32_t next;        /* the next sequence number to try */
    uint32_t *hits;       /* matching sequence numbers or UIDs, ascending */
    size_t nhits, cap;
    size_t gone, opened;
    uint64_t bytes; /* read so far, about (a turn ends after SEARCH_BYTES_PER_TURN) */
};

/* The message being matched, handed to the callbacks. */
struct search_msg {
    struct imap_session *s;
    struct search_job *job;
    uint32_t seq;
    struct imap_msg *m; /* opened on first need */
    int failed;         /* -1: the file vanished or could not be read */
    /* header(): the value asked for (one at a time, read before the next call) */
    char *value;
    size_t want, seen;
};

static struct imap_msg *msg_of(struct search_msg *sm)
{
    if (sm->m || sm->failed)
        return sm->m;
    int fd = imap_view_open_msg(sm->s->sel, sm->seq);
    if (fd >= 0)
        sm->m = imap_msg_open(fd);
    if (!sm->m)
        sm->failed = -1;
    else
        sm->job->opened++;
    return sm->m;
}

static int header_value(const char *name, const char *value, void *arg)
{
    (void)name;
    struct search_msg *sm = arg;
    if (sm->seen++ < sm->want)
        return 0;
    sm->value = strdup(value);
    return sm->value ? 1 : -1;
}

static const char *cb_header(void *ctx, const char *name, size_t i, size_t *len)
{
    struct search_msg *sm = ctx;
    struct imap_msg *m = msg_of(sm);
    free(sm->value);
    sm->value = NULL;
    if (!m)
        return NULL;
    sm->want = i;
    sm->seen = 0;
    if (imap_msg_headers_each(m, name, header_value, sm) < 0)
        sm->failed = -1;
    if (!sm->value)
        return NULL;
    *len = strlen(sm->value);
    return sm->value;
}

static int cb_sent_date(void *ctx, int *year, int *month, int *day)
{
    struct imap_msg *m = msg_of(ctx);
    if (!m)
        return -1;
    return imap_msg_sent_date(m, year, month, day) == 0 ? 1 : 0;
}

static int cb_body_has(void *ctx, const char *needle, size_t len, int text)
{
    struct imap_msg *m = msg_of(ctx);
    if (!m)
        return -1;
    char *n = strndup(needle, len); /* mime.c wants it NUL-terminated */
    if (!n)
        return -1;
    int rc = text ? imap_msg_text_contains(m, n) : imap_msg_body_contains(m, n);
    free(n);
    return rc;
}

static unsigned search_flags(unsigned f)
{
    return (f & IMAP_F_SEEN ? IMAP_SEARCH_F_SEEN : 0) | (f & IMAP_F_ANSWERED ? IMAP_SEARCH_F_ANSWERED : 0) |
           (f & IMAP_F_FLAGGED ? IMAP_SEARCH_F_FLAGGED : 0) | (f & IMAP_F_DELETED ? IMAP_SEARCH_F_DELETED : 0) |
           (f & IMAP_F_DRAFT ? IMAP_SEARCH_F_DRAFT : 0);
}

static void job_free(void *arg)
{
    struct search_job *j = arg;
    imap_search_free(j->prog);
    free(j->hits);
    free(j);
}

/* 1 match, 0 not (or vanished: counted), -1 error. */
static int match_one(struct imap_session *s, struct search_job *j, const struct imap_search_env *env, uint32_t seq)
{
    struct imap_view *v = s->sel;
    if (imap_view_gone(v, seq)) {
        j->gone++;
        return 0;
    }
    unsigned flags = imap_view_flags(v, seq);
    off_t size = imap_view_size(v, seq);
    time_t date = 0;
    if (size < 0 || imap_view_internaldate(v, seq, &date) != 0) {
        j->gone++;
        return 0;
    }
    struct search_msg sm = {.s = s, .job = j, .seq = seq};
    struct imap_search_msg msg = {.seq = seq, .uid = imap_view_uid(v, seq), .flags = search_flags(flags),
                                  .recent = !!(flags & IMAP_F_RECENT), .size = (uint64_t)size,
                                  .internaldate = date, .ctx = &sm};
    int rc = imap_search_match(j->prog, env, &msg);
    if (sm.m) {
        size_t reads = imap_search_text_keys(j->prog);
        j->bytes += (uint64_t)size * (reads ? reads : 1);
    }
    imap_msg_free(sm.m);
    free(sm.value);
    if (rc < 0 && imap_view_gone(v, seq)) { /* the file went while we read it */
        j->gone++;
        return 0;
    }
    return rc;
}

static int add_hit(struct search_job *j, uint32_t n)
{
    if (j->nhits == j->cap) {
        size_t ncap = j->cap ? j->cap * 2 : 64;
        uint32_t *nv = realloc(j->hits, ncap * sizeof *nv);
        if (!nv)
            return -1;
        j->hits = nv;
        j->cap = ncap;
    }
    j->hits[j->nhits++] = n;
    return 0;
}

/* The untagged reply: "* SEARCH ..." or "* ESEARCH (TAG "t") [UID] MIN .. MAX .. COUNT .. ALL ..". */
static int write_result(struct imap_session *s, struct search_job *j)
{
    struct evbuffer *out = imap_out(s);
    if (!imap_search_is_esearch(j->prog)) {
        evbuffer_add(out, "* SEARCH", 8);
        for (size_t i = 0; i < j->nhits; i++)
            evbuffer_add_printf(out, " %u", j->hits[i]);
        evbuffer_add(out, "\r\n", 2);
        return 0;
    }
    unsigned ret = imap_search_returns(j->prog);
    evbuffer_add_printf(out, "* ESEARCH (TAG \"%s\")%s", j->cmd->tag, j->cmd->uid ? " UID" : "");
    if (j->nhits && (ret & IMAP_SEARCH_RET_MIN))
        evbuffer_add_printf(out, " MIN %u", j->hits[0]);
    if (j->nhits && (ret & IMAP_SEARCH_RET_MAX))
        evbuffer_add_printf(out, " MAX %u", j->hits[j->nhits - 1]);
    if (ret & IMAP_SEARCH_RET_COUNT)
        evbuffer_add_printf(out, " COUNT %zu", j->nhits);
    if (j->nhits && (ret & IMAP_SEARCH_RET_ALL)) {
        char *all = imap_seqset_format(j->hits, j->nhits);
        if (!all)
            return -1;
        evbuffer_add_printf(out, " ALL %s", all);
        free(all);
    }
    evbuffer_add(out, "\r\n", 2);
    return 0;
}

static void search_run(struct imap_session *s, void *arg)
{
    struct search_job *j = arg;
    struct imap_view *v = s->sel;
    uint32_t count = imap_view_count(v);
    struct imap_search_env env = {.count = count, .max_uid = count ? imap_view_uid(v, count) : 0,
                                  .header = cb_header, .sent_date = cb_sent_date, .body_has = cb_body_has};
    size_t opened_before = j->opened;
    uint64_t bytes_before = j->bytes;
    int failed = 0;
    while (j->next <= count) {
        if (j->opened - opened_before >= SEARCH_FILES_PER_TURN || j->bytes - bytes_before >= SEARCH_BYTES_PER_TURN) {
            imap_yield(s, search_run, j, job_free);
            return;
        }
        uint32_t seq = j->next++;
        int rc = match_one(s, j, &env, seq);
        if (rc < 0 || (rc == 1 && add_hit(j, j->cmd->uid ? imap_view_uid(v, seq) : seq) < 0)) {
            failed = 1;
            break;
        }
    }
    const struct imap_command *cmd = j->cmd;
    if (failed || write_result(s, j) < 0) {
        char lv[PM_LOGV_SIZE];
        pm_log(PM_ERR, "event=search_failed session=%llu folder=%s error=\"%s\"", s->id,
               PM_LV(lv, imap_view_dir(v)), strerror(errno));
        job_free(j);
        imap_tagged(s, cmd, "NO", "%s", imap_msgset_rc_text(IMAP_VIEW_ERR));
        return;
    }
    size_t gone = j->gone;
    job_free(j);
    if (gone)
        imap_tagged(s, cmd, "OK", "[EXPUNGEISSUED] Search completed, some messages were already expunged.");
    else
        imap_tagged(s, cmd, "OK", "Search completed.");
}

void imap_cmd_search(struct imap_session *s, const struct imap_command *cmd)
{
    struct imap_search *prog = NULL;
    const char *err = "Invalid search criteria";
    /* RETURN (ESEARCH, RFC 4731) only when CAPABILITY says so (command_table.c). */
    unsigned opts = imap_msgset_offered(s, "ESEARCH") ? IMAP_SEARCH_OPT_ESEARCH : 0;
    switch (imap_search_parse(cmd->args, cmd->nargs, opts, &prog, &err)) {
    case IMAP_SEARCH_OK:
        break;
    case IMAP_SEARCH_BADCHARSET:
        imap_tagged(s, cmd, "NO", "[BADCHARSET (UTF-8 US-ASCII)] %s", err);
        return;
    case IMAP_SEARCH_NOMEM:
        imap_tagged(s, cmd, "NO", "[SERVERBUG] Out of memory");
        return;
    default:
        imap_bad(s, cmd, err);
        return;
    }
    struct search_job *j = calloc(1, sizeof *j);
    if (!j) {
        imap_search_free(prog);
        imap_tagged(s, cmd, "NO", "[SERVERBUG] Out of memory");
        return;
    }
    j->cmd = cmd;
    j->prog = prog;
    j->next = 1;
    search_run(s, j);
}
