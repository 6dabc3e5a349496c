/* One SMTP session: I/O, the command/DATA state machine and the current transaction. */
#ifndef SMTPD_SESSION_H
#define SMTPD_SESSION_H
#include <stdint.h>
#include <stddef.h>
#include <sys/socket.h>

#include "bdat.h"
#include "data.h"
#include "dsn_params.h"
#include "lines.h"
#include "pending.h"
#include "server.h"

struct bufferevent;
struct evbuffer;
struct smtpd_authdb_req;
struct smtpd_etrn;
struct smtpd_authres;
struct smtpd_dnsbl;
struct pm_client;

enum smtpd_state {
    SMTPD_ST_GREETING,   /* greet pause: talking now is an error */
    SMTPD_ST_COMMAND,
    SMTPD_ST_DATA,
    SMTPD_ST_CHUNK,      /* reading a BDAT chunk's octets (bdat.h) */
    SMTPD_ST_QUEUE,      /* waiting for the queue shards' answer (a Submit, an ETRN) */
    SMTPD_ST_CHECKS,     /* the end-of-message stages are running (eom.h) */
    SMTPD_ST_AUTH_PLAIN, /* waiting for a SASL response line */
    SMTPD_ST_AUTH_USER,
    SMTPD_ST_AUTH_PASS,
    SMTPD_ST_AUTH_CHECK, /* password check or failure delay running */
    SMTPD_ST_LOOKUP,     /* MAIL/RCPT waiting for the privileged parent's answer */
    SMTPD_ST_DNSBL,      /* the greeting waits for the DNS lists (dnsbl.h); input waits */
    SMTPD_ST_MILTER,     /* the greeting waits for the milters' connect answers (milter.h) */
    SMTPD_ST_CLOSING,
};

enum smtpd_timer_kind {
    SMTPD_TIMER_NONE,
    SMTPD_TIMER_GREET,
    SMTPD_TIMER_SUBMIT,
    SMTPD_TIMER_SUBMIT_RETRY,
    SMTPD_TIMER_ETRN,
    SMTPD_TIMER_AUTH,
    SMTPD_TIMER_CLOSE,
};

/* A recipient's NOTIFY (SMTPD_NOTIFY_* bits, 0: none) and ORCPT (NULL: none). */
struct smtpd_rcpt_dsn {
    unsigned notify;
    char *orcpt;
};

struct smtpd_txn {
    int active;      /* MAIL accepted */
    char *sender;    /* "" for <> */
    int smtputf8, body_8bit;
    int requiretls;  /* MAIL ... REQUIRETLS (RFC 8689), taken only over TLS */
    char **rcpt;
    int nrcpt, cap;
    int rcpt_tries;  /* RCPT commands, accepted or not */
    int chunked;     /* BDAT chunks came: the message so far is s->body (bdat.h) */
    int hold;           /* a milter quarantined it: the queue holds it */
    char *hold_reason;
    /* DSN values live on the heap only when a client gave them: an idle session would
     * otherwise carry their 600 octets of buffers. */
    int dsn_ret;                        /* MAIL's RET (SMTPD_DSN_RET_*) */
    char *dsn_envid;                    /* MAIL's ENVID, decoded; NULL: none */
    struct smtpd_dsn_rcpt *dsn_pending; /* the RCPT being checked: its NOTIFY and ORCPT; NULL: none */
    struct smtpd_rcpt_dsn *rcpt_dsn;    /* one per rcpt[] (same cap) */
    int any_rcpt_dsn;                   /* some RCPT had NOTIFY or ORCPT */
};

struct smtpd_session {
    struct smtpd_server *srv;
    struct bufferevent *bev;
    struct smtpd_session *prev, *next;
    struct pm_client *client; /* per-IP accounting */
    enum smtpd_mode mode;
    enum smtpd_state state;
    char ip[64];
    int port;
    char peer[80]; /* "ip:port" for logs and Submit.client_address */
    char *helo;
    int esmtp;
    int tls;        /* TLS active (handshake may still be running) */
    int tls_up;     /* the handshake completed */
    char *auth_user;
    struct smtpd_txn txn;

    /* Input */
    struct smtpd_linescan scan;
    size_t scan_off;   /* octets of the current line already scanned in the input buffer */
    int out_blocked;   /* too much unread output: stop reading commands */
    int in_eof;        /* the client shut down its side: answer what it sent, then close */
    struct evbuffer *body;
    struct smtpd_data data;
    struct smtpd_bdat bdat;         /* the BDAT chunk being read */
    unsigned long long data_size;
    int too_big;
    int over_budget;                /* the sandbox's body budget ran out during this message */
    unsigned long long body_held;   /* bytes of body (or outgoing) counted in srv->body_used */

    long long deadline;    /* monotonic s: the current command (or DATA) must be done by then */
    unsigned long data_credit; /* DATA octets not yet turned into deadline extension */

    /* Counters */
    int errors;
    unsigned long commands, messages;

    /* Timers, submission, authentication */
    struct event *timer;
    enum smtpd_timer_kind timer_kind;
    int close_polls;
    int fin_sent;                      /* closing: our FIN is out, lingering */
    const char *close_reason;
    struct smtpd_pending submit;       /* the Submit waiting for its answer (id 0: none) */
    struct smtpd_etrn *etrn;           /* the ETRN waiting for the shards' answers (etrn.c) */
    unsigned long long submit_size;
    long long submit_start;            /* monotonic ms of the first send attempt */
    struct evbuffer *outgoing;         /* the message until the bus took it */
    struct smtpd_authdb_req *authreq;
    int auth_running;                  /* authreq counts in the client's checks in flight */
    char *login_user;                  /* AUTH LOGIN: the user name, until the password */
    char *auth_pending_user;           /* the user being checked */
    struct smtpd_authdb_req *lookup;   /* MAIL/RCPT check outstanding (envelope.c) */
    char *lookup_addr;                 /* the address being checked */
    int lookup_smtputf8, lookup_8bit;  /* MAIL parameters kept for the answer */

    /* End of message (eom.h) */
    struct evbuffer *eom_msg;          /* the message while the stages run */
    size_t eom_next;                   /* the stage after the running one */
    const struct smtpd_eom_stage *eom_running;
    int eom_inline;                    /* inside smtpd_eom_start: the caller goes on reading */
    struct smtpd_authres *authres;     /* SPF/DKIM/DMARC of the message running (authres.c), or NULL */

    /* DNS lists at connect (dnsbl.h) */
    struct smtpd_dnsbl *dnsbl;         /* the check, until the greeting */
    int dnsbl_refused;                 /* greeted 554: every command but QUIT gets 503 */

    struct smtpd_milters *milters;     /* the milters' connections and step (milter.c), or NULL */
};

/* Takes ownership of fd (accepted, non-blocking). sa is the client's address; proxy the
 * PROXY-protocol peer it came through (logged), or NULL for a direct connection. */
void smtpd_session_new(struct smtpd_server *srv, int fd, const struct sockaddr *sa, enum smtpd_mode mode,
                       const struct sockaddr *proxy);
void smtpd_session_free(struct smtpd_session *s);

/* Appends one reply line (CRLF added). */
void smtpd_reply(struct smtpd_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for a 4xx/5xx reply: counts the error, and past smtpd.max_errors adds 421 and
 * closes the session. */
void smtpd_reply_error(struct smtpd_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Counts an error for a reply already sent (smtpd_reply_error without the reply). */
void smtpd_session_error(struct smtpd_session *s);
/* 500 for a line over its length limit (counted as an error). */
void smtpd_session_line_too_long(struct smtpd_session *s);

/* Stops taking commands; once the replies are written the connection is half-closed and
 * the session freed (reason goes to the disconnect log line). */
void smtpd_session_close(struct smtpd_session *s, const char *reason);

/* Processes buffered input as far as the state allows (called after a wait ends). */
void smtpd_session_resume(struct smtpd_session *s);

/* Moves a closed session towards its end once its output is flushed; call at the end of
 * every callback that may have closed it. Never frees (only callbacks do). */
void smtpd_session_settle(struct smtpd_session *s);

void smtpd_session_set_timer(struct smtpd_session *s, enum smtpd_timer_kind kind, long ms);
void smtpd_session_cancel_timer(struct smtpd_session *s);

/* Sets the read timeout for the state (command or data) and enables/disables reading;
 * enabling also starts a fresh deadline for the next command or the DATA phase. */
void smtpd_session_reading(struct smtpd_session *s, int on);
/* In a state that consumes client input (a command, DATA octets, an AUTH answer)? */
int smtpd_session_wants_input(const struct smtpd_session *s);

void smtpd_txn_reset(struct smtpd_txn *t);

/* DATA or BDAT octets arrived: the DATA deadline moves by octets / SMTPD_MIN_DATA_RATE seconds. */
#define SMTPD_MIN_DATA_RATE 500
void smtpd_session_data_progress(struct smtpd_session *s, size_t octets);

/* commands.c: one command line (line end removed; total octets with it) in state COMMAND. */
void smtpd_command(struct smtpd_session *s, const char *line, size_t len, size_t total);
/* commands.c: the reply a session must see first, once the DNS lists passed it: the
 * milters' connect verdict decides it (it may wait for them: state MILTER). */
void smtpd_greet(struct smtpd_session *s);
/* commands.c: HELO's or EHLO's 250 (s->esmtp says which), once the milters let it pass. */
void smtpd_helo_answer(struct smtpd_session *s);

/* message.c: feeds buffered input to the DATA decoder. 1 if it made progress. */
int smtpd_data_input(struct smtpd_session *s);
void smtpd_data_begin(struct smtpd_session *s);
/* message.c: the sandbox's budget for buffered bodies. Is it (nearly) used up: refuse DATA? */
int smtpd_body_budget_exhausted(const struct smtpd_server *srv);
/* The session's body (and outgoing copy) is gone: its bytes leave the budget. */
void smtpd_body_release(struct smtpd_session *s);
/* message.c: the message being received, for DATA and BDAT alike. begin: an empty s->body,
 * the limits' counters reset. append: counted against max_message_size and the budget.
 * failed: over either, refused (1). finish: the end-of-data checks, Received:, then the
 * end-of-message stages. discard: a partial BDAT message goes (RSET, HELO/EHLO, STARTTLS). */
void smtpd_message_begin(struct smtpd_session *s);
void smtpd_message_append(struct smtpd_session *s, const char *p, size_t n);
int smtpd_message_failed(struct smtpd_session *s);
void smtpd_message_refuse(struct smtpd_session *s, const char *reason, const char *reply);
void smtpd_message_finish(struct smtpd_session *s);
void smtpd_message_discard(struct smtpd_session *s);

/* envelope.c: drops an outstanding MAIL/RCPT check (the handlers: command_table.h). */
void smtpd_envelope_cancel(struct smtpd_session *s);

/* auth.c (AUTH itself: command_table.h) */
void smtpd_auth_response(struct smtpd_session *s, const char *line, size_t len);
void smtpd_auth_cancel(struct smtpd_session *s);
void smtpd_auth_delay_done(struct smtpd_session *s);

/* tls.c glue: STARTTLS on a live session. 0, or -1 (reply already sent). */
int smtpd_session_starttls(struct smtpd_session *s);
/* Protocol and cipher of the session ("" if none). */
void smtpd_session_tls_info(struct smtpd_session *s, char *ver, size_t vsize, char *cipher, size_t csize);

#endif
