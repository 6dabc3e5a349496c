/* smtpd's side of proxy_protocol listeners: a connection waits for its PROXY header
 * (common/proxywait.h) and then becomes a session with the client's address from it. */
#ifndef SMTPD_PROXYIN_H
#define SMTPD_PROXYIN_H
#include <sys/socket.h>

struct smtpd_server;
struct smtpd_listener;

/* Called once the listeners are known: sets srv->proxy if any listener has
 * proxy_protocol. 0, or -1 (no memory). */
int smtpd_proxyin_init(struct smtpd_server *srv);
/* A connection accepted on a proxy_protocol listener (fd is taken). */
void smtpd_proxyin_accept(struct smtpd_listener *l, int fd, const struct sockaddr *sa);

#endif
