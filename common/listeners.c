#include "listeners.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
