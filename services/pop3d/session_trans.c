/* The TRANSACTION handlers (STAT, LIST, UIDL, RETR, TOP, DELE, RSET) and QUIT, with the
 * UPDATE it makes after login. Which of them may run when is command_table.c's. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "session_int.h"

/* The message a command argument names, or NULL after answering -ERR. */
static struct pop3_msg *message_arg(struct pop3_session *s, const char *arg)
{
    unsigned long n = pop3_parse_msgnum(arg, s->drop->n);
    struct pop3_msg *m = n ? pop3_maildrop_get(s->drop, n) : NULL;
    if (!m) {
        pop3_bad_command(s, "-ERR no such message");
        return NULL;
    }
    if (m->deleted) {
        pop3_bad_command(s, "-ERR message is deleted");
        return NULL;
    }
    return m;
}

static void list(struct pop3_session *s, const struct pop3_command *cmd, int uidl)
{
    if (cmd->argc == 1) {
        struct pop3_msg *m = message_arg(s, cmd->argv[0]);
        if (!m)
            return;
        unsigned long n = (unsigned long)(m - s->drop->msgs) + 1;
        if (uidl)
            pop3_reply(s, "+OK %lu %s", n, m->uidl);
        else
            pop3_reply(s, "+OK %lu %lld", n, (long long)m->size);
        return;
    }
    size_t count;
    unsigned long long octets;
    pop3_maildrop_stat(s->drop, &count, &octets);
    if (uidl)
        pop3_reply(s, "+OK unique-id listing follows");
    else
        pop3_reply(s, "+OK %zu messages (%llu octets)", count, octets);
    for (size_t i = 0; i < s->drop->n; i++) {
        const struct pop3_msg *m = &s->drop->msgs[i];
        if (m->deleted)
            continue;
        if (uidl)
            pop3_reply(s, "%zu %s", i + 1, m->uidl);
        else
            pop3_reply(s, "%zu %lld", i + 1, (long long)m->size);
    }
    pop3_reply(s, ".");
}

static void retr(struct pop3_session *s, const struct pop3_command *cmd, int top)
{
    struct pop3_msg *m = message_arg(s, cmd->argv[0]);
    if (!m)
        return;
    unsigned long lines = 0;
    if (top && pop3_parse_count(cmd->argv[1], &lines) < 0) {
        pop3_bad_command(s, "-ERR invalid line count");
        return;
    }
    /* Open before the +OK, so a vanished file can still get an -ERR. */
    int fd = open(m->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT && pop3_maildrop_relocate(s->drop, m) == 0)
        fd = open(m->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW); /* renamed by an IMAP session */
    if (fd < 0) {
        char pv[PM_LOGV_SIZE];
        pm_log(PM_ERR, "event=message_unreadable session=%llu path=%s error=\"%s\"", s->id, PM_LV(pv, m->path),
               strerror(errno));
        pop3_reply(s, "-ERR [SYS/TEMP] message cannot be read now");
        return;
    }
    if (top)
        pop3_reply(s, "+OK top of message follows");
    else
        pop3_reply(s, "+OK %lld octets", (long long)m->size);
    pop3_stream_start(s, fd, top ? (long)lines : -1);
    if (!top)
        s->retrieved++;
}

void pop3_cmd_stat(struct pop3_session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    size_t count;
    unsigned long long octets;
    pop3_maildrop_stat(s->drop, &count, &octets);
    pop3_reply(s, "+OK %zu %llu", count, octets);
}

void pop3_cmd_list(struct pop3_session *s, const struct pop3_command *cmd) { list(s, cmd, 0); }
void pop3_cmd_uidl(struct pop3_session *s, const struct pop3_command *cmd) { list(s, cmd, 1); }
void pop3_cmd_retr(struct pop3_session *s, const struct pop3_command *cmd) { retr(s, cmd, 0); }
void pop3_cmd_top(struct pop3_session *s, const struct pop3_command *cmd) { retr(s, cmd, 1); }

void pop3_cmd_dele(struct pop3_session *s, const struct pop3_command *cmd)
{
    struct pop3_msg *m = message_arg(s, cmd->argv[0]);
    if (m) {
        m->deleted = 1;
        pop3_reply(s, "+OK message deleted");
    }
}

void pop3_cmd_rset(struct pop3_session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    size_t count;
    unsigned long long octets;
    pop3_maildrop_undelete_all(s->drop);
    pop3_maildrop_stat(s->drop, &count, &octets);
    pop3_reply(s, "+OK %zu messages (%llu octets)", count, octets);
}

/* In AUTHORIZATION QUIT just ends the session; after login it enters UPDATE (RFC 1939):
 * the messages marked deleted go, then the session ends. */
void pop3_cmd_quit(struct pop3_session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    if (s->state != ST_TRANSACTION) {
        pop3_reply(s, "+OK bye");
        pop3_close_after_reply(s);
        return;
    }
    size_t removed = 0, failed = pop3_maildrop_update(s->drop, &removed);
    size_t count;
    unsigned long long octets;
    pop3_maildrop_stat(s->drop, &count, &octets);
    char uv[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=logout session=%llu user=%s retrieved=%u deleted=%zu kept=%zu failed=%zu", s->id,
           PM_LV(uv, s->login), s->retrieved, removed, count, failed);
    if (failed)
        pop3_reply(s, "-ERR [SYS/TEMP] %zu deleted messages could not be removed", failed);
    else
        pop3_reply(s, "+OK bye (%zu messages left)", count);
    pop3_close_after_reply(s);
}
