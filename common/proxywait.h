/* Connections accepted on a proxy_protocol listener (smtpd, pop3d) until their PROXY header
 * has arrived: only from proxy_networks, nothing is written to them, and the header must
 * come within a short timeout; otherwise the connection is closed with one log line
 * (event=proxy_refused). Then the service gets the connection with the client's address
 * from the header, as if it had accepted it from the client itself. Octets after the
 * header stay in the socket (read with MSG_PEEK, then exactly the header is consumed), so
 * an implicit-TLS session starts its handshake on a clean stream. */
#ifndef PM_PROXYWAIT_H
#define PM_PROXYWAIT_H
#include <sys/socket.h>

#include "config.h"

struct event_base;
struct pm_proxy_waits;

/* A header takes one segment behind the connect; a proxy that sends none within this is
 * not speaking the protocol (or is a client that found the port). */
#define PM_PROXY_HEADER_TIMEOUT_MS 3000

/* fd (non-blocking, now the callee's) with the client's address (from the header, or the
 * connection's own for LOCAL/UNKNOWN) and the proxy's; listener as given to _add. */
typedef void (*pm_proxy_ready_cb)(int fd, const struct sockaddr *client, const struct sockaddr *proxy,
                                  void *listener, void *arg);

struct pm_proxy_waits *pm_proxy_waits_new(struct event_base *base, const struct pm_strlist *networks,
                                          long timeout_ms, pm_proxy_ready_cb ready, void *arg);
/* Takes fd, accepted from peer. Refused at once (closed, logged) unless peer is in
 * networks, or when out of memory. */
void pm_proxy_waits_add(struct pm_proxy_waits *w, int fd, const struct sockaddr *peer, void *listener);
/* Connections waiting for their header now. */
long pm_proxy_waits_count(const struct pm_proxy_waits *w);
/* Closes every waiting connection (reason is logged): shutdown. */
void pm_proxy_waits_close_all(struct pm_proxy_waits *w, const char *reason);
void pm_proxy_waits_free(struct pm_proxy_waits *w);

#endif
