/* The listening sockets of the front ends (listeners.h): one set shared by every worker,
 * or one SO_REUSEPORT set per worker steered by client address. */
#include "listeners.h"

#include <errno.h>
#include <linux/filter.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

#include "log.h"
#include "net.h"

int pm_listeners_open(const struct pm_listenlist *list, const char *implicit_tls_mode, int have_tls, int backlog,
                      struct pm_listener **out, int *n)
{
    *n = 0;
    *out = calloc((size_t)list->n + 1, sizeof **out);
    if (!*out)
        return -1;
    for (int i = 0; i < list->n; i++) {
        const struct pm_listen *li = &list->v[i];
        int implicit = strcmp(li->mode, implicit_tls_mode) == 0;
        if (implicit && !have_tls) {
            pm_log(PM_WARN, "event=listen_skipped address=%s mode=%s reason=\"no TLS certificate configured\"",
                   li->address, li->mode);
            continue;
        }
        int fd = pm_listen_tcp(li->address, backlog);
        if (fd < 0) {
            pm_listeners_close(*out, *n);
            *out = NULL;
            *n = 0;
            return -1;
        }
        struct pm_listener *l = &(*out)[(*n)++];
        l->fd = fd;
        l->implicit_tls = implicit;
        snprintf(l->mode, sizeof l->mode, "%s", li->mode);
        l->proxy_protocol = li->proxy_protocol;
        l->backlog = backlog;
        snprintf(l->address, sizeof l->address, "%s", li->address);
        pm_log(PM_INFO, "event=listening address=%s mode=%s proxy_protocol=%s", li->address, li->mode,
               li->proxy_protocol ? "yes" : "no");
    }
    return 0;
}

void pm_listeners_close(struct pm_listener *v, int n)
{
    for (int i = 0; i < n; i++)
        close(v[i].fd);
    free(v);
}

void pm_listeners_rearm(const struct pm_listener *v, int n)
{
    for (int i = 0; i < n; i++)
        if (listen(v[i].fd, v[i].backlog) < 0)
            pm_log(PM_WARN, "event=listen_error address=%s error=\"%s\"", v[i].address, strerror(errno));
}

/* The reuseport group's selector: returns hash(source address) % nsets, the index of a
 * socket in the group. The program sees the packet from the transport payload on, so the
 * addresses are read relative to the network header (SKF_NET_OFF); an IPv6 source is
 * folded to 32 bits by xor. The multiply spreads neighbouring addresses (127.0.0.1 and
 * 127.0.0.2, a /24 of clients) over the sets instead of their last bits alone. */
static int attach_selector(int fd, int nsets)
{
    struct sock_filter code[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, SKF_AD_OFF + SKF_AD_PROTOCOL),
        /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x86dd, 0, 11), /* not IPv6: to 13 */
        /* 2 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_NET_OFF + 8),
        /* 3 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 4 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_NET_OFF + 12),
        /* 5 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 6 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 7 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_NET_OFF + 16),
        /* 8 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 9 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 10 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_NET_OFF + 20),
        /* 11 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 12 */ BPF_JUMP(BPF_JMP | BPF_JA, 1, 0, 0), /* to 14 */
        /* 13 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_NET_OFF + 12), /* IPv4 source */
        /* 14 */ BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 0x9e3779b1u),
        /* 15 */ BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
        /* 16 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, (unsigned)nsets),
        /* 17 */ BPF_STMT(BPF_RET | BPF_A, 0),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog);
}

int pm_listeners_open_sets(const struct pm_listenlist *list, const char *implicit_tls_mode, int have_tls,
                           int backlog, int nsets, struct pm_listener **out, int *n)
{
    if (nsets <= 1)
        return pm_listeners_open(list, implicit_tls_mode, have_tls, backlog, out, n);
    /* Set 0 as usual (the skips, the logs), then its copies. */
    struct pm_listener *one;
    int per;
    if (pm_listeners_open(list, implicit_tls_mode, have_tls, backlog, &one, &per) < 0)
        return -1;
    /* Set 0 was bound without SO_REUSEPORT; bound again below with it, so every socket of
     * the group is alike (the kernel wants the option on each before its bind). */
    for (int i = 0; i < per; i++)
        close(one[i].fd);
    *n = 0;
    *out = calloc((size_t)per * (size_t)nsets + 1, sizeof **out);
    if (!*out) {
        free(one);
        return -1;
    }
    int ok = 1;
    for (int i = 0; i < per && ok; i++) {
        int port = 0;
        for (int s = 0; s < nsets && ok; s++) {
            struct pm_listener *l = &(*out)[(size_t)s * (size_t)per + (size_t)i];
            *l = one[i];
            l->fd = pm_listen_tcp_shared(one[i].address, &port, backlog, 1);
            ok = l->fd >= 0;
        }
        if (ok && attach_selector((*out)[i].fd, nsets) < 0) {
            pm_log(PM_ERR, "event=listen_error address=%s error=\"reuseport selector: %s\"", one[i].address,
                   strerror(errno));
            ok = 0;
        }
    }
    free(one);
    if (!ok) {
        for (size_t k = 0; k < (size_t)per * (size_t)nsets; k++)
            if ((*out)[k].fd > 0)
                close((*out)[k].fd);
        free(*out);
        *out = NULL;
        return -1;
    }
    *n = per;
    return 0;
}
