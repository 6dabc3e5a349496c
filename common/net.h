/* Socket helpers shared by the network-facing services. */
#ifndef PM_NET_H
#define PM_NET_H
#include <stddef.h>
#include <sys/socket.h>

/* Splits "host:port" or "[v6]:port". Returns 0 or -1. */
int pm_split_hostport(const char *s, char *host, size_t hostsize, int *port);

/* A non-blocking, close-on-exec listening socket bound to "host:port". -1 (logged) on error. */
int pm_listen_tcp(const char *address, int backlog);
/* The same with SO_REUSEPORT when reuseport (the sockets of one group must all set it before
 * bind); *port_inout, when not 0, replaces the address's port, and when 0 receives the port
 * the kernel chose ("host:0"), so the rest of a group binds the same one. */
int pm_listen_tcp_shared(const char *address, int *port_inout, int backlog, int reuseport);

/* Numeric text of an address, without port ("192.0.2.1", "2001:db8::1"). */
void pm_sockaddr_ip(const struct sockaddr *sa, char *dst, size_t size);
int pm_sockaddr_port(const struct sockaddr *sa);

/* Is ip (text) inside any of the CIDR entries ("127.0.0.0/8", "::1/128", or a bare IP)? */
int pm_ip_in_networks(const char *ip, char *const *networks, int n);

/* TCP_NODELAY on a session socket: each reply is handed over whole, so there is nothing to
 * coalesce, and Nagle would hold a reply written while the one before is unacknowledged
 * (pipelined commands) until the client's delayed ACK, ~40 ms. Best effort. */
void pm_socket_nodelay(int fd);

#endif
