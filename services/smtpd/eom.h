/* End of message: the checks a finished message goes through between its final "." (or
 * last BDAT) and the queue, one stage after another, in a fixed order (eom.c):
 *   authres  SPF, DKIM and DMARC of mail from the internet, the Authentication-Results:
 *            header (authres.c)
 *   milters  each configured milter's end-of-message callbacks (milter.c)
 * then the Submit (submit.c). A stage may take its time (DNS through the resolver, a milter
 * on the network): the session waits in SMTPD_ST_CHECKS with reading off, as it waits for
 * the queue. Every stage bounds its own wait.
 *
 * A stage works on s->eom_msg (the whole message, headers and body, CRLF, unstuffed, with
 * our Received: on top): it may prepend or change headers, or replace it. It ends with
 * exactly one of smtpd_eom_continue (next stage), smtpd_eom_refuse (the client hears the
 * reply, nothing is queued) or smtpd_eom_discard (250, nothing is queued); it may do so
 * from inside its start(). */
#ifndef SMTPD_EOM_H
#define SMTPD_EOM_H

struct evbuffer;
struct smtpd_session;

struct smtpd_eom_stage {
    const char *name;                              /* for the logs: check=<name> */
    int (*wanted)(const struct smtpd_session *s);  /* NULL: always */
    void (*start)(struct smtpd_session *s);
    void (*cancel)(struct smtpd_session *s);       /* the session goes while the stage runs */
};

/* The message is complete (msg consumed): runs the stages, then submits. */
void smtpd_eom_start(struct smtpd_session *s, struct evbuffer *msg);

void smtpd_eom_continue(struct smtpd_session *s);
/* reply: the whole SMTP reply line, "550 5.7.1 ..."; reason: a log word. */
void smtpd_eom_refuse(struct smtpd_session *s, const char *reason, const char *reply);
void smtpd_eom_discard(struct smtpd_session *s, const char *reason);

/* The session is closing or being freed: stops the running stage, drops the message. */
void smtpd_eom_cancel(struct smtpd_session *s);

#endif
