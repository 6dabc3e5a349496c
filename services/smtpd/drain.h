/* The graceful stop of the smtpd sandbox on SIGTERM (rolling updates): accepting stops at
 * once, idle sessions are told 421 at once, a session in the middle of a transaction goes
 * on normally until smtpd.drain_timeout, and after that every session is told
 * `421 4.3.2 <hostname> shutting down` at its next command (or at once if it is waiting for
 * one); then the sandbox exits. */
#ifndef SMTPD_DRAIN_H
#define SMTPD_DRAIN_H

struct smtpd_server;
struct smtpd_session;

/* SIGTERM/SIGINT: starts draining (a repeated signal changes nothing: a process group's
 * signal reaches the sandbox both directly and through the parent). */
void smtpd_drain_start(struct smtpd_server *srv, int sig);

/* A session is about to take its next command or DATA octets (before is 1: nothing was
 * processed yet in this turn) or found nothing more to take (before is 0). While draining,
 * tells it 421 and closes it if it must go now. 1 if it did. */
int smtpd_drain_session(struct smtpd_session *s, int before);

/* A session was freed or now only lingers after its FIN: when none is left, the loop ends. */
void smtpd_drain_settled(struct smtpd_server *srv);

void smtpd_drain_free(struct smtpd_server *srv);

#endif
