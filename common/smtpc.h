/* The shared SMTP client (SMTP, LMTP, submission): the dialogue of one session as a state
 * machine on buffers. It is given each complete reply (smtpc_reply.h) and appends the
 * commands to send to an evbuffer; it never touches a socket (smtpc_conn.h does), so every
 * path is testable with plain strings.
 *
 * greeting -> EHLO (HELO if EHLO is refused; LHLO in LMTP) -> STARTTLS when offered and
 * allowed -> EHLO again -> AUTH PLAIN when credentials are given -> MAIL, RCPT..., DATA (all
 * in one go with PIPELINING) -> body -> "." -> one reply for every accepted recipient (SMTP)
 * or one reply each (LMTP) -> QUIT. A server that offers CHUNKING (RFC 3030) gets, once the
 * RCPT replies are in, "BDAT <size> LAST" and the body as it is instead of DATA, 354 and the
 * dot-stuffed body; its reply to BDAT stands for the reply to the dot.
 * A server that greets or answers EHLO/HELO with our own hostname is us (Postfix's check for
 * a misrouted loop): QUIT at once with loop set; the caller decides what that means.
 * What it does not know: where the server is (MX choice), TLS policy, and what a verdict
 * means for the message (the caller folds the recipients' states into its job). */
#ifndef PM_SMTPC_H
#define PM_SMTPC_H
#include <stddef.h>

#include "smtpc_ehlo.h"
#include "smtpc_reply.h"

struct evbuffer;

/* What tells the protocols apart; the rest of the dialogue is the same. */
struct pm_smtpc_dialect {
    const char *hello;  /* "EHLO", "LHLO" */
    int helo_fallback;  /* a 5xx to hello is answered with HELO (RFC 5321 3.2) */
    int reply_per_rcpt; /* after the final dot one reply per accepted recipient, in RCPT
                         * order (RFC 2033 4.2), instead of one for all */
};
extern const struct pm_smtpc_dialect pm_smtpc_smtp; /* RFC 5321; submission is SMTP + AUTH */
extern const struct pm_smtpc_dialect pm_smtpc_lmtp; /* RFC 2033 */

enum { PM_SMTPC_REQUIRETLS_NO, PM_SMTPC_REQUIRETLS_MUST, PM_SMTPC_REQUIRETLS_IF_OFFERED };

enum pm_smtpc_rcpt_state {
    PM_SMTPC_RCPT_PENDING,   /* no verdict from this server (yet) */
    PM_SMTPC_RCPT_ACCEPTED,  /* RCPT got 2xx; the message's fate comes with the final reply */
    PM_SMTPC_RCPT_DELIVERED, /* final reply 2xx */
    PM_SMTPC_RCPT_TEMPFAIL,  /* 4xx (or nonsense) for this recipient from this server */
    PM_SMTPC_RCPT_PERMFAIL,  /* 5xx */
};

#define PM_SMTPC_TEXT_MAX 512

struct pm_smtpc_rcpt {
    const char *address;
    enum pm_smtpc_rcpt_state state;
    char dsn[16];                /* "2.0.0", "5.1.1" */
    char text[PM_SMTPC_TEXT_MAX]; /* the server's reply on one line */
    const char *stage;           /* "RCPT TO", "DATA", "end of DATA", "MAIL FROM" */
    unsigned dsn_notify;         /* set by the caller: NOTIFY bits (smtpc_dsn.h), 0 none */
    const char *dsn_orcpt;       /* set by the caller: ORCPT "type;address", NULL none */
    int peer_dsn;                /* the server that gave the verdict offered DSN */
};

enum pm_smtpc_step {
    PM_SMTPC_STEP_GREETING, PM_SMTPC_STEP_EHLO, PM_SMTPC_STEP_HELO, PM_SMTPC_STEP_STARTTLS,
    PM_SMTPC_STEP_TLS, PM_SMTPC_STEP_AUTH, PM_SMTPC_STEP_MAIL, PM_SMTPC_STEP_RCPT,
    PM_SMTPC_STEP_DATA, PM_SMTPC_STEP_BODY, PM_SMTPC_STEP_DOT, PM_SMTPC_STEP_QUIT,
};

enum pm_smtpc_action {
    PM_SMTPC_WAIT,     /* wait for the next reply (commands may have been queued) */
    PM_SMTPC_STARTTLS, /* 220 to STARTTLS: drop buffered input, handshake, pm_smtpc_tls_ready() */
    PM_SMTPC_BODY,     /* 354: send the body (smtpc_dotstuff.h), then pm_smtpc_body_sent();
                        * with bdat set, the body's octets as they are */
    PM_SMTPC_QUIT,     /* QUIT is queued: flush and close; the recipients' states are final */
    PM_SMTPC_ABORT,    /* this server will not do (see error): close, try the next one */
};

struct pm_smtpc {
    /* Set by the caller before pm_smtpc_init(). */
    const struct pm_smtpc_dialect *dialect; /* NULL: SMTP */
    const char *helo_name;
    const char *sender; /* "" for the null sender */
    struct pm_smtpc_rcpt *rcpts;
    int nrcpts;
    size_t body_size;
    int body_8bit;
    int need_smtputf8;     /* an address is not ASCII */
    int tls_allowed;       /* use STARTTLS if offered */
    /* Never go on in the clear (the caller's TLS policy requires TLS): a server that does not
     * offer STARTTLS is given up with 4.7.4, one that refuses it with 4.7.5 (both temporary:
     * the next MX, or later). Implies tls_allowed. */
    int tls_required;
    const char *server_name; /* the server's name for those texts (pm_smtpc_conn_start sets it) */
    /* RFC 8689 REQUIRETLS (PM_SMTPC_REQUIRETLS_*, 0: none). MUST: MAIL FROM carries
     * REQUIRETLS, and a server that does not offer it over TLS is given up before MAIL with
     * error_dsn 5.7.30 (5.7.10 with no TLS at all). error_perm stays 0: the next MX may offer
     * it; the caller decides when such a 5.x.x reason is final. IF_OFFERED (a notice from
     * the null sender, RFC 8689 5): the parameter goes only where it is offered over TLS.
     * Whether the TLS is authenticated enough is the caller's policy (tls_required and its
     * certificate checks). */
    int requiretls;
    int dsn_ret;           /* RFC 3461 RET (1 FULL, 2 HDRS, 0 none), sent when the server offers DSN */
    const char *dsn_envid; /* ENVID, NULL or "" for none */
    /* The body's line ends are all CRLF, so it may go out as it is (BDAT); else it goes
     * through DATA, whose dot-stuffing makes every line end CRLF. Set by
     * pm_smtpc_conn_start() from the body it sends. */
    int body_crlf;
    const char *self_name; /* our own hostname: a server greeting with it is us (NULL: no check) */
    /* AUTH PLAIN (RFC 4954) before MAIL, as a submission client (NULL: never). A server that
     * does not offer it, or refuses it, is given up with a temporary error: the credentials
     * are the sender's configuration, not the message's fault. */
    const char *auth_user, *auth_pass;
    int auth_needs_tls; /* never send the password in the clear: give up instead */

    /* State. */
    enum pm_smtpc_step step;
    int tls_active;
    struct pm_smtpc_ext ext;
    int mail_failed;  /* MAIL refused: the RCPT replies that follow are only consumed */
    int cur;          /* recipient whose RCPT reply comes next */
    int accepted;     /* RCPTs answered 2xx */
    int dot_sent;     /* the whole body went out: a lost connection now is ambiguous */
    int data_discard; /* 354 with no accepted recipient: end the empty message */
    int bdat;         /* the body goes as one "BDAT <body_size> LAST" (PM_SMTPC_BODY: the raw
                       * body, body_size octets, no dot) */

    /* Why the server was given up (PM_SMTPC_ABORT), for every undecided recipient. */
    char error[PM_SMTPC_TEXT_MAX];
    char error_dsn[16];
    int error_perm; /* the server refused us for good (5xx to HELO) */
    int replied;    /* at least one reply came: the host was reached */
    int loop;       /* the greeting or EHLO/HELO reply named self_name: a mail loop (QUIT) */
    /* The name the server gave for itself in its last EHLO/HELO reply (its first word), when
     * it is made of host-name characters; "" otherwise (TLS reports: receiving-mx-helo). */
    char peer_helo[256];
};

void pm_smtpc_init(struct pm_smtpc *s);

/* A complete reply arrived. */
enum pm_smtpc_action pm_smtpc_on_reply(struct pm_smtpc *s, const struct pm_smtpc_reply *r, struct evbuffer *out);

/* The TLS handshake succeeded: EHLO again (everything learnt before TLS is forgotten). */
void pm_smtpc_tls_ready(struct pm_smtpc *s, struct evbuffer *out);

/* The body and its "." are queued. */
void pm_smtpc_body_sent(struct pm_smtpc *s);

/* The connection failed (timeout, reset, TLS, bad reply): records why in s->error. */
void pm_smtpc_fail(struct pm_smtpc *s, const char *dsn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Human name of the current step ("EHLO", "LHLO", "end of DATA"), for "(in reply to ...)"
 * and logs. */
const char *pm_smtpc_stage(const struct pm_smtpc *s);

#endif
