/* What milter.c (the steps) and milter_send.c (the packets of each step) share: one
 * session's milters and the step being asked. Private to those two files. */
#ifndef SMTPD_MILTER_INT_H
#define SMTPD_MILTER_INT_H
#include <stddef.h>

#include "milter_edit.h"

struct milter_conn;
struct pm_milter;
struct smtpd_session;

#define MILTER_BODY_OUT_HIGH (256 * 1024) /* body octets queued to a milter that does not answer them */

enum step { STEP_NONE, STEP_CONNECT, STEP_HELO, STEP_MAIL, STEP_RCPT, STEP_EOM };

/* What a slot is told, in order, within a step. */
enum part { P_ABORT, P_CONNECT, P_HELO, P_MAIL, P_RCPT, P_DATA, P_HEADERS, P_EOH, P_BODY, P_EOM, P_DONE };
extern const char *const milter_part_names[]; /* for the logs */

enum slot_state { SL_NEW, SL_OPENING, SL_READY, SL_DEAD, SL_ACCEPTED };

struct slot {
    const struct pm_milter *cfg;
    struct smtpd_milters *ms;
    struct milter_conn *mc;
    enum slot_state state;
    int tempfail;         /* SL_DEAD with default action tempfail: every MAIL gets 451 */
    int connect_sent;
    int in_txn;           /* told MAIL, not yet the end of that message (or ABORT) */
    int txn_accepted;     /* accepted this transaction: nothing more until the next MAIL */
    int skip_body;
    const char *failed_at;  /* SL_DEAD: the stage it failed in, for the logs */
};

struct smtpd_milters {
    struct smtpd_session *s;
    int n;
    char id[32];              /* macro i: a session-unique id (the queue id is not known yet) */
    char *mail_args, *rcpt_args;
    char *conn_reply;         /* a milter refused the connection or HELO */
    int conn_reply_helo;      /* ... at HELO: later HELOs get it too (at connect: they do not) */
    int connect_done;         /* the connect step has its verdict: the greeting may go */
    enum step step;
    int cur;                  /* the slot being asked */
    enum part part;
    int hidx;                 /* P_HEADERS: the next header */
    size_t body_off;          /* P_BODY: octets sent */
    int async;                /* the step waits for the network: its end resumes the session */
    char *rcpt;
    void (*rcpt_finish)(struct smtpd_session *s, char *final);
    int passing;              /* inside rcpt_finish: smtpd_milter_rcpt says 0 */
    int discard;              /* a milter discarded the transaction (at MAIL or in the message) */
    struct milter_msg msg;    /* STEP_EOM */
    int have_msg;
    struct slot slot[];
};

/* Sends part p of the step to the slot. 1: a reply is due; 0: nothing to wait for (sent
 * unanswered, or not wanted); 2: the body is being written, wait for the output to drain. */
int milter_send_part(struct smtpd_milters *ms, struct slot *sl, enum part p);

#endif
