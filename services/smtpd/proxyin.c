/* PROXY listeners in smtpd (proxyin.h). The session is made only once the header is in, so
 * everything that keys on the client address (relay policy and trusted_networks, per-IP
 * limits and lockouts in common/clients.c, Received:, Submit.client_address, every log
 * line) sees the client's, never the proxy's. Connections still waiting count against
 * smtpd.max_connections, so a flood of silent connections cannot queue up unbounded. */
#include "proxyin.h"

#include <unistd.h>

#include "log.h"
#include "net.h"
#include "proxywait.h"
#include "server.h"
#include "session.h"

static void ready(int fd, const struct sockaddr *client, const struct sockaddr *proxy, void *listener, void *arg)
{
    (void)arg;
    struct smtpd_listener *l = listener;
    smtpd_session_new(l->srv, fd, client, l->mode, proxy);
}

int smtpd_proxyin_init(struct smtpd_server *srv)
{
    int any = 0;
    for (int i = 0; i < srv->nlisteners; i++)
        any |= srv->listeners[i].proxy_protocol;
    if (!any)
        return 0;
    /* A header follows the connect at once; never wait longer than for a command. */
    long timeout = PM_PROXY_HEADER_TIMEOUT_MS;
    if (srv->cfg->smtpd.timeout_command * 1000 < timeout)
        timeout = (long)srv->cfg->smtpd.timeout_command * 1000;
    if (srv->cfg->proxy_networks.n == 0) /* a configuration mistake, but a safe one */
        pm_log(PM_WARN, "event=proxy_networks_empty reason=\"every connection to a proxy_protocol listener is refused\"");
    srv->proxy = pm_proxy_waits_new(srv->base, &srv->cfg->proxy_networks, timeout, ready, srv);
    return srv->proxy ? 0 : -1;
}

void smtpd_proxyin_accept(struct smtpd_listener *l, int fd, const struct sockaddr *sa)
{
    struct smtpd_server *srv = l->srv;
    if (srv->nsessions + pm_proxy_waits_count(srv->proxy) >= srv->max_sessions) {
        char ip[64];
        pm_sockaddr_ip(sa, ip, sizeof ip);
        pm_log(PM_WARN, "event=reject proxy=%s:%d reason=max_connections limit=%lld", ip, pm_sockaddr_port(sa),
               srv->max_sessions);
        close(fd); /* who the client is, the header would say: nothing is written before it */
        return;
    }
    pm_proxy_waits_add(srv->proxy, fd, sa, l);
}
