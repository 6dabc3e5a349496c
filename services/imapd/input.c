/* Reading commands (session_int.h imap_process_input): bounded lines, literals ({n} with
 * "+ Ready for literal data" only when n fits, {n+} of RFC 7888, ~{n}), APPEND's message
 * literal streamed into a file in the user's Maildir/tmp, and one command at a time handed
 * to the parser (parse.h) and the dispatcher; pipelined input waits in the bufferevent
 * (bounded by its read watermark) until the running command is over.
 *
 * Bounds: a line (without literals) imapd.max_line, else BYE; a whole command with its
 * literals imapd.max_command and APPEND's message imapd.max_message_size. A synchronizing
 * literal over its bound is answered NO [TOOBIG] before the client sends it; a
 * non-synchronizing one is already on its way, so BAD [TOOBIG] and the connection closes
 * (RFC 7888 §4). A command refused before its literal (wrong state, LOGIN in the clear) is
 * answered at once when the literal waits for "+", so a password never has to be sent. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "boxcmds.h"
#include "clock.h"
#include "log.h"
#include "parse.h"
#include "session_int.h"

#define READY "+ Ready for literal data\r\n"

static void append_discard(struct imap_session *s)
{
    if (s->append_fd >= 0)
        close(s->append_fd);
    if (s->append_path && unlink(s->append_path) < 0 && errno != ENOENT)
        pm_log(PM_WARN, "event=append_unlink_failed session=%llu error=\"%s\"", s->id, strerror(errno));
    free(s->append_path);
    s->append_fd = -1;
    s->append_path = NULL;
    s->append_size = 0;
    s->append_seen = 0;
}

void imap_reset_reader(struct imap_session *s)
{
    size_t n = evbuffer_get_length(s->cmdbuf);
    if (n) {
        explicit_bzero(evbuffer_pullup(s->cmdbuf, -1), n); /* LOGIN's password may be in it */
        evbuffer_drain(s->cmdbuf, n);
    }
    s->in_command = 0;
    s->literal_left = 0;
    s->refuse_status = NULL;
    s->refuse_text = NULL;
    if (!s->cmd)
        append_discard(s);
    if (s->phase == PH_LITERAL || s->phase == PH_APPEND || s->phase == PH_SKIP)
        s->phase = PH_COMMAND;
}

void imap_end_command(struct imap_session *s)
{
    if (!s->cmd)
        return;
    imap_command_free(s->cmd);
    free(s->cmd);
    s->cmd = NULL;
    s->row = NULL;
    append_discard(s); /* the handler renamed the file into its folder, or it goes now */
}

/* A Maildir unique name in the user's tmp/ (time, microseconds, pid, a counter, host). */
static int append_open(struct imap_session *s)
{
    static unsigned long long counter;
    char host[128], path[4096];
    size_t h = 0;
    for (const char *c = s->srv->cfg->hostname; *c && h + 1 < sizeof host; c++)
        host[h++] = *c == '/' || *c == ':' ? '_' : *c;
    host[h] = '\0';
    struct timeval tv;
    gettimeofday(&tv, NULL);
    int n = snprintf(path, sizeof path, "%s/tmp/%lld.M%06ldP%dQ%llu.%s", s->maildir, (long long)tv.tv_sec,
                     (long)tv.tv_usec, (int)getpid(), ++counter, host);
    if (n < 0 || (size_t)n >= sizeof path || !(s->append_path = strdup(path)))
        return -1;
    /* tmp/ itself must not be a symlink either: the literal would be written outside. */
    char *base = strrchr(path, '/');
    *base = '\0';
    int tmpdir = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    *base = '/';
    s->append_fd = tmpdir < 0 ? -1 : openat(tmpdir, base + 1, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0660);
    if (tmpdir >= 0) {
        int e = errno;
        close(tmpdir);
        errno = e;
    }
    if (s->append_fd < 0) {
        pm_log(PM_ERR, "event=append_error session=%llu error=\"%s\"", s->id, strerror(errno));
        free(s->append_path);
        s->append_path = NULL;
        return -1;
    }
    return 0;
}

static void refuse(struct imap_session *s, const char *status, const char *text)
{
    if (!s->refuse_status) {
        s->refuse_status = status;
        s->refuse_text = text;
    }
}

/* The command is over without running: its refusal goes out now. */
static void answer_refused(struct imap_session *s)
{
    const char *status = s->refuse_status, *text = s->refuse_text;
    imap_reset_reader(s);
    if (!s->cur_tag[0]) {
        imap_bad(s, NULL, text);
        return;
    }
    imap_reply_tag(s, s->cur_tag, status, text);
    if (strcmp(status, "BAD") == 0)
        imap_count_error(s);
}

static void close_with(struct imap_session *s, const char *tagged_bad, const char *bye)
{
    pm_log(PM_WARN, "event=input_refused session=%llu client=%s reason=\"%s\"", s->id, s->client, bye);
    if (tagged_bad && s->cur_tag[0])
        imap_reply_tag(s, s->cur_tag, "BAD", tagged_bad);
    imap_untagged(s, "BYE %s", bye);
    imap_close_after_reply(s);
}

static void run_command(struct imap_session *s)
{
    size_t len = evbuffer_get_length(s->cmdbuf);
    const char *buf = (const char *)evbuffer_pullup(s->cmdbuf, -1);
    struct imap_command *cmd = calloc(1, sizeof *cmd);
    const char *err = "out of memory";
    if (!cmd || imap_parse_command(buf, len, s->append_seen ? s->append_at : SIZE_MAX, s->append_size, cmd, &err) < 0) {
        free(cmd);
        refuse(s, "BAD", err);
        answer_refused(s);
        return;
    }
    /* The file stays the session's (unlinked at the end unless the handler took it). */
    cmd->append_fd = s->append_fd;
    cmd->append_size = s->append_size;
    cmd->append_path = s->append_path;
    s->cmd = cmd;
    s->running = 1;
    s->phase = PH_RUNNING;
    imap_reset_reader(s); /* keeps the APPEND file: s->cmd holds it */
    s->phase = PH_RUNNING;
    imap_dispatch(s, cmd);
}

/* APPEND's arguments before its message literal (mailbox, flags, date), checked before "+"
 * so nothing is uploaded for a command that would fail (as Dovecot): NULL, or the refusal
 * with *status (cmd_append.c imap_append_check). */
static const char *append_precheck(struct imap_session *s, const char *line, size_t len,
                                   const struct imap_literal_head *lit, const char **status)
{
    size_t have = evbuffer_get_length(s->cmdbuf);
    char *buf = s->maildir ? malloc(have + len + 2) : NULL;
    if (!buf)
        return NULL; /* the handler checks again */
    if (have)
        evbuffer_copyout(s->cmdbuf, buf, have);
    memcpy(buf + have, line, len);
    memcpy(buf + have + len, "\r\n", 2); /* the parser wants the literal's CRLF */
    struct imap_command cmd = {0};
    const char *err = NULL, *why = NULL;
    if (imap_parse_command(buf, have + len + 2, have + lit->at, (size_t)lit->size, &cmd, &err) == 0) {
        if (cmd.nargs >= 1)
            why = imap_append_check(s, cmd.args, cmd.nargs - 1, status);
        imap_command_free(&cmd);
    }
    free(buf);
    return why;
}

/* A literal announced at the end of line: where its bytes go, or why they are refused. */
static void literal_line(struct imap_session *s, const char *line, size_t len, const struct imap_literal_head *lit)
{
    const struct pm_config *cfg = s->srv->cfg;
    size_t have = evbuffer_get_length(s->cmdbuf);
    const struct imap_command_row *row = imap_command_find(s->cur_verb, strlen(s->cur_verb));
    if (!s->refuse_status) {
        const char *status = "BAD", *why = row ? imap_session_refusal(s, row, s->cur_uid, &status) : "Unknown command";
        if (why)
            refuse(s, status, why);
    }
    /* APPEND's message is its literal after the mailbox, the only other literal it has (the
     * flags are atoms, the date a quoted string). */
    int msg = !s->refuse_status && (row->flags & IMAP_F_APPEND) && !(s->first_line && lit->at == s->args_at);
    if (msg && s->append_seen) {
        refuse(s, "BAD", "MULTIAPPEND is not supported");
        msg = 0;
    }
    uint64_t max = msg ? (uint64_t)cfg->imapd.max_message_size : (uint64_t)cfg->imapd.max_command;
    uint64_t used = msg ? 0 : (uint64_t)(have + len + 2);
    if (!s->refuse_status && lit->size + used > max) {
        pm_log(PM_INFO, "event=literal_too_big session=%llu client=%s size=%llu", s->id, s->client,
               (unsigned long long)lit->size);
        if (lit->nonsync) {
            close_with(s, msg ? "[TOOBIG] Message too big" : "[TOOBIG] Command too long", "Literal too big");
            return;
        }
        refuse(s, "NO", msg ? "[TOOBIG] Message too big" : "[TOOBIG] Command too long");
        answer_refused(s);
        return;
    }
    if (msg && !s->refuse_status) {
        const char *status = "BAD", *why = append_precheck(s, line, len, lit, &status);
        if (why) {
            refuse(s, status, why);
            msg = 0;
        }
    }
    if (s->refuse_status) {
        if (!lit->nonsync) {
            answer_refused(s); /* the client waits for "+": it never sends the bytes */
            return;
        }
        long long bound = cfg->imapd.max_message_size > cfg->imapd.max_command ? cfg->imapd.max_message_size
                                                                                : cfg->imapd.max_command;
        uint64_t skip_max = (uint64_t)bound;
        if (lit->size > skip_max) {
            close_with(s, "[TOOBIG] Literal too big", "Literal too big");
            return;
        }
        s->phase = PH_SKIP; /* read and forgotten; the refusal goes out at the command's end */
        s->literal_left = (size_t)lit->size;
        return;
    }
    if (msg) {
        s->append_at = have + lit->at;
        if (append_open(s) < 0) {
            refuse(s, "NO", "[SERVERBUG] Cannot store the message");
            if (!lit->nonsync) {
                answer_refused(s);
                return;
            }
            s->phase = PH_SKIP;
            s->literal_left = (size_t)lit->size;
            return;
        }
        s->append_seen = 1;
        s->append_size = (size_t)lit->size;
    }
    evbuffer_add(s->cmdbuf, line, len);
    evbuffer_add(s->cmdbuf, "\r\n", 2);
    s->phase = msg ? PH_APPEND : PH_LITERAL;
    s->literal_left = (size_t)lit->size;
    if (!lit->nonsync)
        evbuffer_add(imap_out(s), READY, sizeof READY - 1);
}

/* One line of a command (the first, or one after a literal). */
static void command_line(struct imap_session *s, const char *line, size_t len)
{
    if (!s->in_command) {
        if (len == 0)
            return; /* an empty line between commands: nothing to answer */
        int head = imap_parse_head(line, len, s->cur_tag, s->cur_verb, &s->cur_uid, &s->args_at);
        s->in_command = 1;
        s->first_line = 1;
        if (head == IMAP_HEAD_NO_TAG) {
            s->cur_tag[0] = '\0';
            refuse(s, "BAD", "Invalid tag");
        } else if (head == IMAP_HEAD_NO_VERB) {
            refuse(s, "BAD", "Invalid command");
        }
    }
    struct imap_literal_head lit;
    int rc = imap_parse_literal_head(line, len, &lit);
    if (rc < 0)
        refuse(s, "BAD", "Invalid literal");
    if (rc == 1) {
        literal_line(s, line, len, &lit);
        s->first_line = 0;
        return;
    }
    if (!s->refuse_status && evbuffer_get_length(s->cmdbuf) + len > (size_t)s->srv->cfg->imapd.max_command)
        refuse(s, "NO", "[TOOBIG] Command too long");
    if (s->refuse_status) {
        answer_refused(s);
        return;
    }
    evbuffer_add(s->cmdbuf, line, len);
    run_command(s);
}

/* Literal bytes: 1 when the literal is complete. */
static int literal_bytes(struct imap_session *s, struct evbuffer *in)
{
    size_t n = evbuffer_get_length(in);
    if (n > s->literal_left)
        n = s->literal_left;
    if (n == 0) {
        if (s->literal_left)
            return 0;
        s->phase = PH_COMMAND; /* {0}: empty, and over (else the caller loops on it) */
        return 1;
    }
    if (s->phase == PH_LITERAL) {
        evbuffer_remove_buffer(in, s->cmdbuf, n);
    } else if (s->phase == PH_APPEND) {
        errno = EIO; /* what a write of nothing means */
        int w = evbuffer_write_atmost(in, s->append_fd, (ev_ssize_t)n);
        if (w <= 0) {
            int full = errno == ENOSPC || errno == EDQUOT;
            pm_log(PM_ERR, "event=append_error session=%llu error=\"%s\"", s->id, strerror(errno));
            append_discard(s);
            refuse(s, "NO", full ? "[OVERQUOTA] Not enough disk space" : "[SERVERBUG] Cannot store the message");
            s->phase = PH_SKIP;
            return 0;
        }
        n = (size_t)w;
    } else {
        evbuffer_drain(in, n);
    }
    s->literal_left -= n;
    if (s->literal_left)
        return 0;
    s->phase = PH_COMMAND;
    return 1;
}

/* The next line, copied out of the input (NUL-terminated, freed by the caller) and drained;
 * NULL if none is whole yet. An overlong one closes the session (*closed). */
static char *next_line(struct imap_session *s, struct evbuffer *in, size_t *len, int *closed)
{
    size_t max = (size_t)s->srv->cfg->imapd.max_line, eol_len = 0;
    struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
    *closed = 0;
    if (eol.pos < 0 ? evbuffer_get_length(in) > max : (size_t)eol.pos > max) {
        /* Never truncate and run a line: there is no telling where the next one starts. */
        *closed = 1;
        close_with(s, NULL, "Line too long");
        return NULL;
    }
    if (eol.pos < 0)
        return NULL;
    *len = (size_t)eol.pos;
    char *line = malloc(*len + 1);
    if (!line) {
        *closed = 1;
        close_with(s, NULL, "Out of memory");
        return NULL;
    }
    evbuffer_remove(in, line, *len);
    evbuffer_drain(in, eol_len);
    line[*len] = '\0';
    return line;
}

void imap_process_input(struct imap_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    for (;;) {
        if (s->phase == PH_CLOSING || s->phase == PH_DELAY || s->phase == PH_STARTTLS || s->yield_fn)
            return;
        if (s->running && s->phase != PH_CONTINUE && s->phase != PH_IDLE)
            return; /* one command at a time: the rest waits in the input */
        if (!s->running && s->cmd)
            imap_end_command(s);
        if (s->phase == PH_LITERAL || s->phase == PH_APPEND || s->phase == PH_SKIP) {
            if (!literal_bytes(s, in))
                return;
            continue;
        }
        if (!s->running && !s->in_command) {
            if (evbuffer_get_length(imap_out(s)) > IMAP_OUT_HIGH)
                return; /* the client is not reading: on_write goes on */
            if (imap_drain_session(s))
                return;
        }
        size_t len;
        int closed;
        char *line = next_line(s, in, &len, &closed);
        if (!line)
            return;
        if (s->phase == PH_CONTINUE)
            imap_auth_continue(s, line, len);
        else if (s->phase == PH_IDLE)
            imap_idle_line(s, line, len);
        else
            command_line(s, line, len);
        explicit_bzero(line, len); /* may have held a password */
        free(line);
    }
}
