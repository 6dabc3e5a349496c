/* Inside a POP3 session: shared by session.c (I/O, lifecycle, TLS, streaming),
 * command_table.c (which verb may run, CAPA, dispatch), session_auth.c (the AUTHORIZATION
 * handlers) and session_trans.c (the TRANSACTION handlers, QUIT and UPDATE). */
#ifndef POP3_SESSION_INT_H
#define POP3_SESSION_INT_H
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "command.h"
#include "command_table.h"
#include "passdb.h"
#include "maildrop.h"
#include "session.h"
#include "stuff.h"

#define POP3_MAX_ERRORS 10        /* bad commands before the session is closed */
#define POP3_MAX_AUTH_FAILURES 3  /* failed logins per session before it is closed */
#define POP3_OUT_HIGH (64 * 1024) /* stop producing output above this ... */
#define POP3_OUT_LOW (16 * 1024)  /* ... and resume below this */
#define POP3_IN_MAX (8 * 1024)    /* pipelined input buffered at most */

enum pop3_state { ST_AUTHORIZATION, ST_TRANSACTION, ST_CLOSING };
enum pop3_wait {
    WAIT_NONE,
    WAIT_AUTH_RESPONSE, /* AUTH PLAIN sent "+ ": the next line is the response */
    WAIT_DELAY,         /* a failed login's answer is held back by a timer */
    WAIT_STREAM,        /* RETR/TOP output in progress */
    WAIT_STLS,          /* "+OK" to STLS is being flushed; then the handshake */
    WAIT_AUTH_CHECK,    /* the password is being checked by the privileged parent */
};

struct pop3_session {
    struct pop3_server *srv;
    struct pop3_session *prev, *next;
    unsigned long long id;
    struct bufferevent *bev;
    evutil_socket_t fd;
    int bev_owns_fd;
    int tls;
    char ip[64];
    char client[80]; /* ip:port for the log */
    struct pm_client *peer;  /* this address's accounting (clients.h) */
    long long deadline;      /* monotonic s: the command being read must be complete by then */
    enum pop3_state state;
    enum pop3_wait wait;
    char user[POP3_MAX_PASS + 1]; /* from USER, until PASS */
    int have_user;
    char login[POP3_MAX_PASS + 1]; /* the authenticated user */
    int auth_failures, errors;
    struct event *delay_ev, *free_ev;
    struct event *limit_ev;  /* the session's absolute deadline */
    char delay_reply[160];
    int close_after_delay;
    struct pm_passdb_req *authreq; /* outstanding password check */
    int auth_running;                /* it counts in the address's checks in flight */
    char *checking_user;             /* the user it is for */
    struct pop3_maildrop *drop;
    int stream_fd;
    struct pop3_stuffer stuffer;
    unsigned retrieved;
};

/* Queues "text\r\n". */
void pop3_reply(struct pop3_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends what is queued, then closes (no UPDATE). Nothing more is read. */
void pop3_close_after_reply(struct pop3_session *s);
/* An -ERR for a bad command; too many close the session. */
void pop3_bad_command(struct pop3_session *s, const char *reply);
/* Holds back reply for pop3d.auth_delay seconds (reading paused), then sends it. */
void pop3_delay_reply(struct pop3_session *s, const char *reply, int close_after);
/* Streams the message in fd (taken over) for RETR (body_lines -1) or TOP; the +OK line is
 * already queued. */
void pop3_stream_start(struct pop3_session *s, int fd, long body_lines);
/* STLS accepted: flush "+OK", drop pipelined input, start the TLS handshake. */
void pop3_start_tls(struct pop3_session *s);

/* Reading on again, and whatever complete commands are buffered run now. */
void pop3_resume_input(struct pop3_session *s);
/* The password check is over (answered or abandoned): the address's turn is free again. */
void pop3_auth_over(struct pop3_session *s);

/* May this session send a password now (TLS, or loopback if allowed)? */
int pop3_auth_allowed(const struct pop3_session *s);

/* The line after AUTH's "+ " (WAIT_AUTH_RESPONSE). */
void pop3_auth_response(struct pop3_session *s, const char *line, size_t len);

/* The handlers of command_table.c's rows: each runs only where its row allows it. */
pop3_handler pop3_cmd_user, pop3_cmd_pass, pop3_cmd_apop, pop3_cmd_auth, pop3_cmd_stls; /* session_auth.c */
pop3_handler pop3_cmd_stat, pop3_cmd_list, pop3_cmd_uidl, pop3_cmd_retr, pop3_cmd_top, pop3_cmd_dele,
    pop3_cmd_rset, pop3_cmd_quit; /* session_trans.c */

#endif
