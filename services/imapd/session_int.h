/* Inside an IMAP session: the API every handler uses (replies, yielding long output, the
 * selected folder) and the session's own fields, shared by session.c (transport,
 * lifecycle, TLS), input.c (reading commands and literals), reply.c (what handlers say),
 * command_table.c (dispatch), cmd_auth.c (the Not Authenticated commands), idle.c and the
 * handler files of command_table.h.
 *
 * A handler gets the parsed command (args.h) and either ends it with imap_tagged (or
 * imap_bad), at once or later from a callback, or hands over to imap_yield to go on once
 * the client has read enough output. Commands run one at a time: the next one (pipelined
 * input is buffered, bounded) starts only after imap_tagged. cmd and its arguments stay
 * valid until imap_tagged; do not touch them after it. */
#ifndef IMAP_SESSION_INT_H
#define IMAP_SESSION_INT_H
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "args.h"
#include "command_table.h"
#include "session.h"

struct imap_view;    /* the selected folder: view.h (store) */
struct pm_passdb_req;

#define IMAP_MAX_ERRORS 20          /* bad commands before the session is closed */
#define IMAP_MAX_AUTH_FAILURES 3    /* failed logins per session before it is closed */
#define IMAP_OUT_HIGH (256 * 1024)  /* above this, a yielding command waits ... */
#define IMAP_OUT_LOW (64 * 1024)    /* ... until the client has read down to this */
#define IMAP_MAX_USER 256           /* a user name or password at most (as pop3d) */

/* ENABLE (RFC 5161): the extensions a client turned on, one bit each (s->enabled). None is
 * offered yet; a bit is defined when CAPABILITY starts listing its extension. */
enum imap_enable_bit {
    IMAP_ENABLE_CONDSTORE = 1u << 0,
};

enum imap_phase {
    PH_COMMAND,     /* reading or running commands */
    PH_LITERAL,     /* reading a literal's bytes into the command */
    PH_APPEND,      /* streaming APPEND's message literal into a file */
    PH_SKIP,        /* discarding a refused non-synchronizing literal's bytes */
    PH_RUNNING,     /* a handler has not said imap_tagged yet */
    PH_CONTINUE,    /* AUTHENTICATE sent "+ ": the next line is the client's response */
    PH_IDLE,        /* IDLE: waiting for DONE */
    PH_DELAY,       /* a failed login's answer is held back by a timer */
    PH_STARTTLS,    /* the OK to STARTTLS is being flushed; then the handshake */
    PH_CLOSING,     /* the last output leaves, then the session is freed */
};

struct imap_session {
    /* ---- what handlers read ---- */
    struct imap_server *srv;   /* ->cfg: the configuration */
    char *login;               /* the authenticated user's address; NULL before login */
    char *maildir;             /* INBOX: the user's Maildir as this process sees it; NULL before login */
    struct imap_view *sel;     /* the selected folder, NULL if none (set through imap_selected) */
    int readonly;              /* it was opened by EXAMINE */
    int tls;                   /* the connection is TLS (imaps or after STARTTLS) */
    unsigned enabled;          /* IMAP_ENABLE_* */
    unsigned long long id;     /* for log lines: session=<id> */
    char client[80];           /* ip:port for the log */

    /* ---- session.c's ---- */
    struct imap_session *prev, *next;
    struct bufferevent *bev;
    evutil_socket_t fd;
    int bev_owns_fd;
    char ip[64];
    struct pm_client *peer;    /* this address's accounting (clients.h) */
    enum imap_phase phase;
    long long deadline;        /* monotonic s: the command being read must be whole by then */
    int errors, auth_failures;
    struct event *free_ev, *limit_ev, *resume_ev, *delay_ev;
    /* The command being read: its bytes as they came (lines and literals), bounded. */
    struct evbuffer *cmdbuf;
    int in_command;            /* its first line was read */
    int first_line;            /* the line being looked at is its first */
    size_t literal_left;       /* PH_LITERAL, PH_APPEND, PH_SKIP: bytes still to come */
    size_t args_at;            /* where the arguments start in the first line */
    char cur_tag[IMAP_TAG_MAX + 1]; /* "" when the line had no valid tag */
    char cur_verb[IMAP_VERB_MAX + 1];
    int cur_uid;
    /* Refused before it is whole (answered at its end, or at once before a literal). */
    const char *refuse_status, *refuse_text;
    /* APPEND: the message literal's file in Maildir/tmp, its size and where in cmdbuf it was. */
    int append_fd;
    char *append_path;
    size_t append_size, append_at;
    int append_seen;
    /* The command running (PH_RUNNING, PH_CONTINUE, PH_IDLE, PH_DELAY) and its row. */
    int running;
    struct imap_command *cmd;
    const struct imap_command_row *row;
    /* imap_yield */
    void (*yield_fn)(struct imap_session *, void *);
    void *yield_arg;
    void (*yield_cleanup)(void *);
    /* cmd_auth.c */
    struct pm_passdb_req *authreq; /* outstanding password check */
    int auth_running;              /* it counts in the address's checks in flight */
    char *checking_user;
    int auth_mech;                 /* AUTHENTICATE in progress: 1 PLAIN, 2 LOGIN */
    char *auth_user;               /* AUTHENTICATE LOGIN: the user name, until the password */
    char delay_status[160];        /* the held-back answer after a failed login */
    int close_after_delay;
    /* idle.c */
    char *sel_dir;             /* the selected folder's directory (cur/ new/ below it) */
    struct imap_idle_watch *idle_watch; /* while IDLE with a folder selected: its watch */
    struct imap_session *idle_next;     /* the other sessions sharing that watch */
    int idle_pending;                   /* a change was seen: announce it */
};

/* ---- replies ---- */
/* "* " fmt CRLF. */
void imap_untagged(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "tag status text" CRLF (status "OK", "NO" or "BAD"; text may start with a [CODE]), after
 * the selected folder's updates (imap_announce, with expunges unless the row says
 * IMAP_F_NO_EXPUNGE and it is not the UID form). Ends the command: the next one may run. */
void imap_tagged(struct imap_session *s, const struct imap_command *cmd, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A tagged BAD that counts as an error: too many close the session. cmd NULL: "* BAD". */
void imap_bad(struct imap_session *s, const struct imap_command *cmd, const char *text);
/* Raw output (FETCH builds its responses here, literals included). */
struct evbuffer *imap_out(struct imap_session *s);
/* The output is above the high watermark: a long command should imap_yield now. */
int imap_out_full(struct imap_session *s);
/* A long command yields: fn(s, arg) is called again once the output fell below the low
 * watermark (at once on the next loop turn if it already is); it ends with imap_tagged, or
 * yields again. cleanup(arg) (may be NULL) runs instead if the session ends first. */
void imap_yield(struct imap_session *s, void (*fn)(struct imap_session *, void *), void *arg,
                void (*cleanup)(void *));

/* ---- the selected folder ---- */
/* Records the selection (cmd_select.c calls it on SELECT, EXAMINE, CLOSE, UNSELECT; v NULL:
 * none). dir is the folder's directory (the one holding cur/ and new/) as this process sees
 * it, copied; IDLE watches it. The previous view is the caller's to close first. */
void imap_selected(struct imap_session *s, struct imap_view *v, int readonly, const char *dir);
/* cmd_select.c (boxcmds): syncs s->sel with the disk and writes the untagged EXPUNGE,
 * EXISTS, RECENT and FETCH (FLAGS) lines; may_expunge 0 holds expunges back (RFC 9051
 * §7.5.1). Called by imap_tagged, NOOP and IDLE wake-ups, only while s->sel is set. */
void imap_announce(struct imap_session *s, int may_expunge);
/* cmd_select.c (boxcmds): closes s->sel without expunging and calls imap_selected(s, NULL,
 * 0, NULL). session.c calls it when a session ends with a folder selected. */
void imap_unselect(struct imap_session *s);

/* ---- session.c, for cmd_auth.c and idle.c ---- */
/* May this session send a password now (TLS, or loopback if allowed)? */
int imap_auth_allowed(const struct imap_session *s);
/* "+ text" CRLF: a continuation request (AUTHENTICATE, IDLE); the next line goes to the
 * phase's reader (PH_CONTINUE: cmd_auth.c imap_auth_continue, PH_IDLE: idle.c imap_idle_line). */
void imap_continue(struct imap_session *s, enum imap_phase phase, const char *text);
/* Holds back the tagged reply for imapd.auth_delay seconds (reading paused), then sends it
 * and, if close_after, closes. */
void imap_delay_tagged(struct imap_session *s, const char *status_text, int close_after);
/* STARTTLS accepted: flush the tagged OK, drop pipelined input, start the handshake. */
void imap_start_tls(struct imap_session *s, const struct imap_command *cmd);
/* Sends what is queued, then closes. Nothing more is read. */
void imap_close_after_reply(struct imap_session *s);
/* The command is over (imap_tagged did it): read on and run what is buffered. */
void imap_resume(struct imap_session *s);
/* The password check is over (answered or abandoned): the address's turn is free again. */
void imap_auth_over(struct imap_session *s);
/* The line after an AUTHENTICATE "+" (PH_CONTINUE). */
void imap_auth_continue(struct imap_session *s, const char *line, size_t len);
/* The login succeeded: s->login and s->maildir set, the Maildir made, folders ready. */
int imap_login_done(struct imap_session *s, const char *user);

/* The read timeout now: imapd.timeout before login, imapd.idle_timeout after. */
long long imap_timeout(const struct imap_session *s);
/* Applies it to the connection (at the start and after login). */
void imap_set_timeouts(struct imap_session *s);
/* "tag status text" without folder updates; ends the command. */
void imap_reply_tag(struct imap_session *s, const char *tag, const char *status, const char *text);
/* One more bad command: too many close the session. */
void imap_count_error(struct imap_session *s);
/* reply.c: a yield's turn has come (imap_run_yield), or the session ends first. */
void imap_run_yield(struct imap_session *s);
void imap_drop_yield(struct imap_session *s);

/* command_table.c: the session's CAPABILITY list (IMAP_CAPABILITY_MAX bytes), and why
 * row may not run in it now (NULL: it may; *status "BAD" or "NO"). */
void imap_session_capabilities(const struct imap_session *s, char *dst, size_t size);
const char *imap_session_refusal(const struct imap_session *s, const struct imap_command_row *row, int uid,
                                 const char **status);

/* input.c: reads and runs what is buffered, one command at a time, while it can. */
void imap_process_input(struct imap_session *s);
/* input.c: the command that ran is over: its arguments and APPEND file go. */
void imap_end_command(struct imap_session *s);
/* input.c: forget the command being read (STARTTLS, teardown). */
void imap_reset_reader(struct imap_session *s);

/* idle.c */
void imap_idle_line(struct imap_session *s, const char *line, size_t len);
/* The session ends or leaves IDLE: its watches go. */
void imap_idle_stop(struct imap_session *s);

#endif
