/* Our own smtpd listeners as the mta sees them (self.h). */
#include "self.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "net.h"

#define REFRESH_SECONDS 30 /* how stale the interface list may be */

struct ip {
    int family; /* AF_INET or AF_INET6 */
    unsigned char a[16];
};

struct listener {
    struct ip ip;
    int wildcard; /* the unspecified address: every local address of ip.family */
    int port;
};

struct mta_self {
    struct listener *listeners;
    int n, wildcards;
    struct ip *local; /* interface addresses, for wildcard listeners only */
    int nlocal;
    time_t loaded; /* CLOCK_MONOTONIC seconds, 0: never */
};

static size_t ip_len(int family) { return family == AF_INET ? 4 : 16; }

/* IPv4-mapped IPv6 is the IPv4 address: a socket bound to 0.0.0.0 answers it. */
static void from_sockaddr(const struct sockaddr *sa, struct ip *out)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET) {
        out->family = AF_INET;
        memcpy(out->a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return;
    }
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
        out->family = AF_INET;
        memcpy(out->a, &a6->s6_addr[12], 4);
    } else {
        out->family = AF_INET6;
        memcpy(out->a, a6, 16);
    }
}

static int parse_ip(const char *text, struct ip *out)
{
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    if (inet_pton(AF_INET, text, &s4.sin_addr) == 1)
        from_sockaddr((struct sockaddr *)&s4, out);
    else if (inet_pton(AF_INET6, text, &s6.sin6_addr) == 1)
        from_sockaddr((struct sockaddr *)&s6, out);
    else
        return -1;
    return 0;
}

static int ip_equal(const struct ip *a, const struct ip *b)
{
    return a->family == b->family && memcmp(a->a, b->a, ip_len(a->family)) == 0;
}

static int is_unspecified(const struct ip *ip)
{
    static const unsigned char zero[16];
    return memcmp(ip->a, zero, ip_len(ip->family)) == 0;
}

static int is_loopback(const struct ip *ip)
{
    static const unsigned char one[16] = {[15] = 1};
    return ip->family == AF_INET ? ip->a[0] == 127 : memcmp(ip->a, one, 16) == 0;
}

/* The address smtpd binds for a listen entry, resolved the way pm_listen_tcp does it
 * ("" and "*" are the passive wildcard). */
static int listener_address(const char *address, struct listener *out)
{
    char host[256], portstr[16];
    int port;
    if (pm_split_hostport(address, host, sizeof host, &port) < 0)
        return -1;
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM}, *ai;
    snprintf(portstr, sizeof portstr, "%d", port);
    if (getaddrinfo(*host && strcmp(host, "*") ? host : NULL, portstr, &hints, &ai) != 0)
        return -1;
    from_sockaddr(ai->ai_addr, &out->ip);
    freeaddrinfo(ai);
    out->port = port;
    out->wildcard = is_unspecified(&out->ip);
    return 0;
}

static void load_local(struct mta_self *s, time_t now)
{
    struct ifaddrs *ifa = NULL;
    s->loaded = now;
    if (getifaddrs(&ifa) < 0) {
        pm_log(PM_WARN, "event=interfaces_unknown reason=getifaddrs_failed");
        return; /* keep the previous list; loopback is known without it */
    }
    int n = 0;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
        n += i->ifa_addr && (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6);
    struct ip *v = calloc((size_t)n + 1, sizeof *v);
    if (v) {
        int k = 0;
        for (struct ifaddrs *i = ifa; i && k < n; i = i->ifa_next)
            if (i->ifa_addr && (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6))
                from_sockaddr(i->ifa_addr, &v[k++]);
        free(s->local);
        s->local = v;
        s->nlocal = k;
    }
    freeifaddrs(ifa);
}

static int is_local(struct mta_self *s, const struct ip *ip)
{
    if (is_loopback(ip))
        return 1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (!s->loaded || ts.tv_sec - s->loaded >= REFRESH_SECONDS)
        load_local(s, ts.tv_sec ? ts.tv_sec : 1);
    for (int i = 0; i < s->nlocal; i++)
        if (ip_equal(&s->local[i], ip))
            return 1;
    return 0;
}

struct mta_self *mta_self_new(const struct pm_config *cfg)
{
    struct mta_self *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    const struct pm_listenlist *l = &cfg->smtpd.listen;
    s->listeners = calloc((size_t)l->n + 1, sizeof *s->listeners);
    if (!s->listeners) {
        free(s);
        return NULL;
    }
    for (int i = 0; i < l->n; i++) {
        struct listener *li = &s->listeners[s->n];
        if (listener_address(l->v[i].address, li) < 0)
            continue; /* smtpd cannot bind it either */
        s->wildcards += li->wildcard;
        s->n++;
    }
    return s;
}

void mta_self_free(struct mta_self *s)
{
    if (!s)
        return;
    free(s->listeners);
    free(s->local);
    free(s);
}

int mta_self_is_listener(struct mta_self *s, const char *ip_text, int port)
{
    struct ip ip;
    if (!s || parse_ip(ip_text, &ip) < 0)
        return 0;
    for (int i = 0; i < s->n; i++) {
        const struct listener *li = &s->listeners[i];
        if (li->port != port || li->ip.family != ip.family)
            continue;
        if (li->wildcard ? is_local(s, &ip) : ip_equal(&li->ip, &ip))
            return 1;
    }
    return 0;
}
