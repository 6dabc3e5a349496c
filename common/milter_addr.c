/* Milter addresses (milter_addr.h). */
#include "milter_addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int why_not(char *why, size_t size, const char *text)
{
    snprintf(why, size, "%s", text);
    return -1;
}

static int port_of(const char *p, size_t n)
{
    if (n == 0 || n > 5)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i]))
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v >= 1 && v <= 65535 ? v : -1;
}

int pm_milter_addr_parse(const char *v, struct sockaddr_storage *ss, socklen_t *len, char *why, size_t size)
{
    const char *form = "is not a milter address (inet:IP:PORT, inet:PORT@IP or inet6:[IPv6]:PORT)";
    int v6;
    const char *rest;
    if (strncmp(v, "unix:", 5) == 0 || strncmp(v, "local:", 6) == 0 || v[0] == '/')
        return why_not(why, size, "is a unix socket: smtpd's sandbox runs in an empty chroot and cannot reach "
                                  "one; let the milter listen on loopback (inet:127.0.0.1:PORT)");
    if (strncmp(v, "inet:", 5) == 0)
        v6 = 0, rest = v + 5;
    else if (strncmp(v, "inet6:", 6) == 0)
        v6 = 1, rest = v + 6;
    else
        return why_not(why, size, form);
    char host[64];
    int port;
    const char *at = strchr(rest, '@');
    if (at) { /* Sendmail: PORT@HOST */
        port = port_of(rest, (size_t)(at - rest));
        if (snprintf(host, sizeof host, "%s", at + 1) >= (int)sizeof host)
            return why_not(why, size, form);
    } else { /* Postfix: HOST:PORT, [v6]:PORT */
        const char *colon = strrchr(rest, ':');
        if (!colon)
            return why_not(why, size, form);
        size_t hn = (size_t)(colon - rest);
        port = port_of(colon + 1, strlen(colon + 1));
        if (hn >= 2 && rest[0] == '[' && rest[hn - 1] == ']')
            rest++, hn -= 2;
        if (hn == 0 || hn >= sizeof host)
            return why_not(why, size, form);
        memcpy(host, rest, hn);
        host[hn] = '\0';
    }
    if (port < 0)
        return why_not(why, size, "is not a milter address: the port must be 1-65535");
    memset(ss, 0, sizeof *ss);
    if (!v6) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
            return why_not(why, size, "is not a milter address: inet: needs an IPv4 address (no names: the "
                                      "sandbox resolves nothing)");
        in->sin_family = AF_INET;
        in->sin_port = htons((unsigned short)port);
        *len = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
            return why_not(why, size, "is not a milter address: inet6: needs an IPv6 address");
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((unsigned short)port);
        *len = sizeof *in6;
    }
    return 0;
}
