#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int pm_split_hostport(const char *s, char *host, size_t hostsize, int *port)
{
    const char *colon;
    size_t hlen;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -1;
        hlen = (size_t)(end - s - 1);
        s++;
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hlen = (size_t)(colon - s);
    }
    if (hlen >= hostsize)
        return -1;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535 || end == colon + 1)
        return -1;
    *port = (int)p;
    return 0;
}

int pm_listen_tcp(const char *address, int backlog) { return pm_listen_tcp_shared(address, NULL, backlog, 0); }

int pm_listen_tcp_shared(const char *address, int *port_inout, int backlog, int reuseport)
{
    char host[256];
    int port;
    if (pm_split_hostport(address, host, sizeof host, &port) < 0) {
        pm_log(PM_ERR, "event=listen_error address=%s error=\"not host:port\"", address);
        return -1;
    }
    if (port_inout && *port_inout)
        port = *port_inout;
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM}, *ai;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(*host && strcmp(host, "*") ? host : NULL, portstr, &hints, &ai);
    if (rc) {
        pm_log(PM_ERR, "event=listen_error address=%s error=\"%s\"", address, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (fd < 0 || (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
        pm_log(PM_ERR, "event=listen_error address=%s error=\"%s\"", address, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (fd >= 0 && port_inout && !*port_inout && getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        *port_inout = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

void pm_sockaddr_ip(const struct sockaddr *sa, char *dst, size_t size)
{
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, dst, (socklen_t)size);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, &a->s6_addr[12], dst, (socklen_t)size);
        else
            inet_ntop(AF_INET6, a, dst, (socklen_t)size);
    } else {
        snprintf(dst, size, "unknown");
    }
}

int pm_sockaddr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

static int prefix_match(const unsigned char *a, const unsigned char *b, int bits)
{
    int bytes = bits / 8, rem = bits % 8;
    if (memcmp(a, b, (size_t)bytes))
        return 0;
    if (rem == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rem));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

int pm_ip_in_networks(const char *ip, char *const *networks, int n)
{
    unsigned char addr[16], net[16];
    int fam = strchr(ip, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(fam, ip, addr) != 1)
        return 0;
    for (int i = 0; i < n; i++) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", networks[i]);
        char *slash = strchr(buf, '/');
        int maxbits = fam == AF_INET6 ? 128 : 32, bits = maxbits;
        if (slash) {
            *slash = '\0';
            bits = atoi(slash + 1);
            if (bits < 0 || bits > maxbits)
                continue;
        }
        int nfam = strchr(buf, ':') ? AF_INET6 : AF_INET;
        if (nfam != fam || inet_pton(fam, buf, net) != 1)
            continue;
        if (prefix_match(addr, net, bits))
            return 1;
    }
    return 0;
}

void pm_socket_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* ENOTSUP on a unix socket: fine */
}
