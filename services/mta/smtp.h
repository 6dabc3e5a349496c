/* The SMTP client dialogue as a state machine on buffers: it is given each complete reply
 * and appends the commands to send to an evbuffer; it never touches a socket (session.c
 * does), so every path is testable with plain strings.
 *
 * greeting -> EHLO (HELO if EHLO is refused) -> STARTTLS when offered -> EHLO again ->
 * MAIL, RCPT..., DATA (all in one go with PIPELINING) -> body -> "." -> QUIT.
 * A server that greets or answers EHLO/HELO with our own hostname is us (Postfix's check for
 * a misrouted loop): QUIT at once with loop set; the caller decides what that means. */
#ifndef MTA_SMTP_H
#define MTA_SMTP_H
#include <stddef.h>

#include "reply.h"

struct evbuffer;

enum mta_rcpt_state {
    MTA_RCPT_PENDING,   /* no verdict from this server (yet) */
    MTA_RCPT_ACCEPTED,  /* RCPT got 2xx; the message's fate comes with the final reply */
    MTA_RCPT_DELIVERED, /* final reply 2xx */
    MTA_RCPT_TEMPFAIL,  /* 4xx (or nonsense) for this recipient from this server */
    MTA_RCPT_PERMFAIL,  /* 5xx */
};

#define MTA_TEXT_MAX 512

struct mta_smtp_rcpt {
    const char *address;
    enum mta_rcpt_state state;
    char dsn[16];               /* "2.0.0", "5.1.1" */
    char text[MTA_TEXT_MAX];    /* the server's reply on one line */
    const char *stage;          /* "RCPT TO", "DATA", "end of DATA", "MAIL FROM" */
};

enum mta_smtp_step {
    MTA_STEP_GREETING, MTA_STEP_EHLO, MTA_STEP_HELO, MTA_STEP_STARTTLS, MTA_STEP_TLS, MTA_STEP_MAIL,
    MTA_STEP_RCPT, MTA_STEP_DATA, MTA_STEP_BODY, MTA_STEP_DOT, MTA_STEP_QUIT,
};

enum mta_smtp_action {
    MTA_SMTP_WAIT,     /* wait for the next reply (commands may have been queued) */
    MTA_SMTP_STARTTLS, /* 220 to STARTTLS: drop buffered input, handshake, mta_smtp_tls_ready() */
    MTA_SMTP_BODY,     /* 354: send the body (dotstuff.h), then mta_smtp_body_sent() */
    MTA_SMTP_QUIT,     /* QUIT is queued: flush and close; the recipients' states are final */
    MTA_SMTP_ABORT,    /* this server will not do (see error): close, try the next one */
};

struct mta_smtp {
    /* Set by the caller before mta_smtp_init(). */
    const char *helo_name;
    const char *sender; /* "" for the null sender */
    struct mta_smtp_rcpt *rcpts;
    int nrcpts;
    size_t body_size;
    int body_8bit;
    int need_smtputf8;  /* an address is not ASCII */
    int tls_allowed;    /* use STARTTLS if offered */
    const char *self_name; /* our own hostname: a server greeting with it is us (NULL: no check) */

    /* State. */
    enum mta_smtp_step step;
    int tls_active;
    struct {
        int pipelining, starttls, size, eightbitmime, smtputf8;
        unsigned long long size_max;
    } ext;
    int mail_failed;      /* MAIL refused: the RCPT replies that follow are only consumed */
    int cur;              /* recipient whose RCPT reply comes next */
    int accepted;         /* RCPTs answered 2xx */
    int dot_sent;         /* the whole body went out: a lost connection now is ambiguous */
    int data_discard;     /* 354 with no accepted recipient: end the empty message */

    /* Why the server was given up (MTA_SMTP_ABORT), for every undecided recipient. */
    char error[MTA_TEXT_MAX];
    char error_dsn[16];
    int error_perm;     /* the server refused us for good (5xx to HELO) */
    int replied;        /* at least one reply came: the host was reached */
    int loop;           /* the greeting or EHLO/HELO reply named self_name: a mail loop (QUIT) */
};

void mta_smtp_init(struct mta_smtp *s);

/* A complete reply arrived. */
enum mta_smtp_action mta_smtp_on_reply(struct mta_smtp *s, const struct mta_reply *r, struct evbuffer *out);

/* The TLS handshake succeeded: EHLO again (everything learnt before TLS is forgotten). */
void mta_smtp_tls_ready(struct mta_smtp *s, struct evbuffer *out);

/* The body and its "." are queued. */
void mta_smtp_body_sent(struct mta_smtp *s);

/* The connection failed (timeout, reset, TLS, bad reply): records why in s->error. */
void mta_smtp_fail(struct mta_smtp *s, const char *dsn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Human name of the step, for "(in reply to ...)" and logs. */
const char *mta_smtp_step_name(enum mta_smtp_step step);

#endif
