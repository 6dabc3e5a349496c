/* A milter's address as smtpd.milters writes it (Postfix's and Sendmail's spellings):
 *   inet:127.0.0.1:11332     inet:11332@127.0.0.1     inet6:[::1]:11332    inet6:11332@::1
 * The host is an IP address: smtpd's sandbox resolves nothing itself. unix: sockets are
 * refused: the sandbox runs in an empty chroot, no socket path can be reached from it. */
#ifndef PM_MILTER_ADDR_H
#define PM_MILTER_ADDR_H
#include <stddef.h>
#include <sys/socket.h>

/* 0 and the address (ss, len), or -1 with why ("is not ..."). */
int pm_milter_addr_parse(const char *v, struct sockaddr_storage *ss, socklen_t *len, char *why, size_t size);

#endif
