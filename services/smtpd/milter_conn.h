/* One connection to one milter, on the session's event loop: connect, the OPTNEG exchange,
 * then packets out and replies in, each wait bounded by the milter's timeout (a PROGRESS
 * reply starts it again). Everything that goes wrong (refused, closed, too slow, a packet
 * that breaks the protocol) ends the connection with one MILTER_EV_FAIL; the glue
 * (milter.c) then applies the default action. */
#ifndef SMTPD_MILTER_CONN_H
#define SMTPD_MILTER_CONN_H
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct evbuffer;
struct milter_reply;

enum milter_event {
    MILTER_EV_READY,   /* OPTNEG answered and acceptable: actions/protocol are known */
    MILTER_EV_REPLY,   /* a reply to what we waited for; a final one ends the wait */
    MILTER_EV_DRAINED, /* the output went below the low mark (milter_conn_want_drained) */
    MILTER_EV_FAIL,    /* the connection is dead: reason says why; nothing more will come */
};

/* reply: MILTER_EV_REPLY's; reason: MILTER_EV_FAIL's. The callback may close the conn. */
typedef void milter_conn_cb(void *arg, enum milter_event ev, const struct milter_reply *reply, const char *reason);

struct milter_conn;

/* Starts the connect and the negotiation. NULL if no socket could be made (reason set). */
struct milter_conn *milter_conn_open(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
                                     long timeout_ms, milter_conn_cb *cb, void *arg, char *reason, size_t rsize);
/* Packets go here (milter_proto.h's encoders), and leave on their own. */
struct evbuffer *milter_conn_output(struct milter_conn *mc);
/* A reply is due now: the wait (and its timer) starts. */
void milter_conn_expect(struct milter_conn *mc);
/* MILTER_EV_DRAINED once the output is under low octets. */
void milter_conn_want_drained(struct milter_conn *mc, size_t low);
size_t milter_conn_pending_output(struct milter_conn *mc);
uint32_t milter_conn_actions(const struct milter_conn *mc);
uint32_t milter_conn_protocol(const struct milter_conn *mc);
/* SMFIC_QUIT and close; no callback after this. NULL is fine. */
void milter_conn_close(struct milter_conn *mc);

/* Is code a final reply (one that ends a wait)? */
int milter_reply_is_final(char code);

#endif
