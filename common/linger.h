/* A lingering close for a server's end of a TCP connection. Closing a socket with unread
 * input makes the kernel answer with a RST, and a RST can destroy the last reply (a BYE, an
 * error about an oversized literal) before the client has read it. So the socket is
 * half-closed (our FIN follows the reply) and what the client still sends is read and
 * forgotten until its own FIN, an error, or a deadline; only then is it closed. */
#ifndef PM_LINGER_H
#define PM_LINGER_H
#include <event2/util.h>

struct bufferevent;
struct event_base;

#define PM_LINGER_MS 2000   /* how long a client may go on sending after our FIN */
#define PM_LINGER_MAX 4096  /* sockets lingering at once in a process; beyond, closed at once */

/* Takes fd over whatever happens: it is closed now or once the client is done. Call it only
 * when everything the session wrote has left its buffers. */
void pm_linger_close(struct event_base *base, evutil_socket_t fd);

/* A session's end: frees bev (after the session's last bytes and any close_notify have
 * left it) and lingers on fd, which bev owns or not. */
void pm_linger_free_bev(struct event_base *base, struct bufferevent *bev, evutil_socket_t fd, int bev_owns_fd);

/* Sockets lingering now (for tests and the drain's patience). */
long pm_linger_count(void);

#endif
