#include "server.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bus.h"
#include "clients.h"
#include "dns.h"
#include "drain.h"
#include "log.h"
#include "privchan.h"
#include "proxyin.h"
#include "proxywait.h"
#include "session.h"
#include "pending.h"
#include "tls.h"

#define SWEEP_SECONDS 30
#define ACCEPT_RETRY_MS 500

const char *smtpd_mode_name(enum smtpd_mode m)
{
    return m == SMTPD_MODE_SMTP ? "smtp" : m == SMTPD_MODE_SUBMISSION ? "submission" : "smtps";
}

enum smtpd_mode smtpd_mode_parse(const char *m)
{
    return strcmp(m, "submission") == 0 ? SMTPD_MODE_SUBMISSION : strcmp(m, "smtps") == 0 ? SMTPD_MODE_SMTPS : SMTPD_MODE_SMTP;
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int socklen, void *arg)
{
    (void)lev;
    (void)socklen;
    struct smtpd_listener *l = arg;
    struct smtpd_server *srv = l->srv;
    if (srv->before_accept)
        srv->before_accept(srv);
    if (l->proxy_protocol)
        smtpd_proxyin_accept(l, fd, sa);
    else
        smtpd_session_new(srv, fd, sa, l->mode, NULL);
    if (srv->after_accept)
        srv->after_accept(srv);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtpd_listener *l = arg;
    evconnlistener_enable(l->lev);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    struct smtpd_listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    /* Out of descriptors or memory: pause this listener instead of spinning on it. */
    pm_log(PM_ERR, "event=accept_error address=%s error=\"%s\"", l->address, evutil_socket_error_to_string(err));
    evconnlistener_disable(lev);
    struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};
    evtimer_add(l->retry, &tv);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    smtpd_drain_start(arg, (int)sig);
}

/* The parent pushes a new certificate and key after SIGHUP: new sessions use them, running
 * ones keep the context they started with. */
static void on_push(const struct pm_priv_msg *m, void *arg)
{
    struct smtpd_server *srv = arg;
    char err[512], v[PM_LOGV_SIZE];
    if (m->op != PM_PRIV_TLS_PEM || !m->a || !m->b) {
        pm_log(PM_WARN, "event=parent_push_ignored op=%u", (unsigned)m->op);
        return;
    }
    int rc;
    if (srv->tls) {
        rc = smtpd_tls_replace(srv->tls, m->a, m->b, err, sizeof err);
    } else {
        srv->tls = smtpd_tls_new(m->a, m->b, err, sizeof err);
        rc = srv->tls ? 0 : -1;
    }
    if (rc < 0)
        pm_log(PM_ERR, "event=tls_reload result=fail error=%s", PM_LV(v, err));
    else
        pm_log(PM_INFO, "event=tls_reload result=ok certificate=%s", srv->cfg->tls.certificate);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtpd_server *srv = arg;
    pm_clients_sweep(srv->clients, time(NULL));
}

static int serve_listeners(struct smtpd_server *srv, const struct pm_listener *fds, int nfds)
{
    srv->listeners = calloc((size_t)nfds + 1, sizeof *srv->listeners);
    if (!srv->listeners)
        return -1;
    for (int i = 0; i < nfds; i++) {
        struct smtpd_listener *l = &srv->listeners[srv->nlisteners];
        l->srv = srv;
        l->mode = smtpd_mode_parse(fds[i].mode);
        l->proxy_protocol = fds[i].proxy_protocol;
        snprintf(l->address, sizeof l->address, "%s", fds[i].address);
        /* No LEV_OPT_CLOSE_ON_FREE: the socket is the parent's; it outlives this sandbox.
         * Backlog 0: it already listens (a listen() here would be outside the sandbox). */
        l->lev = evconnlistener_new(srv->base, on_accept, l, LEV_OPT_CLOSE_ON_EXEC, 0, fds[i].fd);
        if (!l->lev) {
            pm_log(PM_ERR, "event=listen_error address=%s error=evconnlistener", fds[i].address);
            return -1;
        }
        srv->nlisteners++;
        evconnlistener_set_error_cb(l->lev, on_accept_error);
        l->retry = evtimer_new(srv->base, on_accept_retry, l);
    }
    return 0;
}

int smtpd_server_init(struct smtpd_server *srv, struct pm_config *cfg, struct event_base *base,
                      const struct pm_listener *fds, int nfds, struct smtpd_tls *tls, int priv_fd)
{
    memset(srv, 0, sizeof *srv);
    srv->cfg = cfg;
    srv->base = base;
    srv->tls = tls;
    srv->max_sessions = cfg->smtpd.max_connections;
    srv->priv = pm_priv_client_new(base, priv_fd, on_push, srv);
    struct pm_client_limits lim = {
        .max_per_ip = (long)cfg->smtpd.max_connections_per_ip,
        .rate_per_min = (long)cfg->smtpd.max_connection_rate,
        .auth_failures = (long)cfg->smtpd.auth_failures,
        .auth_lockout = (long)cfg->smtpd.auth_lockout,
        .auth_in_flight = SMTPD_AUTH_PER_CLIENT,
    };
    srv->clients = pm_clients_new(&lim);
    /* Every session may hold a body of max_message_size, but not all at once: 10 sessions of
     * 30 MiB took the sandbox from 12 to 312 MB. A few full-size messages at a time, or many
     * ordinary ones, fit; beyond, 452 4.3.1 (the client tries again later). */
    long long budget_messages = cfg->smtpd.max_connections < SMTPD_BODY_BUDGET_MESSAGES ? cfg->smtpd.max_connections
                                                                                        : SMTPD_BODY_BUDGET_MESSAGES;
    srv->body_budget = cfg->smtpd.body_memory_mb
                           ? (unsigned long long)cfg->smtpd.body_memory_mb << 20
                           : (unsigned long long)cfg->smtpd.max_message_size * (unsigned long long)budget_messages;
    srv->queues = smtpd_pending_connect(srv); /* one DEALER per queue shard */
    srv->dns = smtpd_dns_new(srv);            /* connects to the resolver when first asked */
    if (!srv->priv || !srv->clients || !srv->queues || !srv->dns)
        return -1;
    if (cfg->smtpd.dnsbl.n > 0)
        smtpd_dns_connect(srv); /* every connection asks at once: be connected before the first */
    if (serve_listeners(srv, fds, nfds) < 0 || smtpd_proxyin_init(srv) < 0)
        return -1;
    srv->ev_term = evsignal_new(base, SIGTERM, on_stop, srv);
    srv->ev_int = evsignal_new(base, SIGINT, on_stop, srv);
    srv->ev_sweep = event_new(base, -1, EV_PERSIST, on_sweep, srv);
    struct timeval sweep = {SWEEP_SECONDS, 0};
    event_add(srv->ev_term, NULL);
    event_add(srv->ev_int, NULL);
    event_add(srv->ev_sweep, &sweep);
    return 0;
}

void smtpd_server_free(struct smtpd_server *srv)
{
    while (srv->sessions) {
        if (!srv->sessions->close_reason)
            srv->sessions->close_reason = "shutdown";
        smtpd_session_free(srv->sessions);
    }
    pm_proxy_waits_free(srv->proxy);
    smtpd_drain_free(srv);
    for (int i = 0; i < srv->nlisteners; i++) {
        evconnlistener_free(srv->listeners[i].lev);
        event_free(srv->listeners[i].retry);
    }
    free(srv->listeners);
    struct event *evs[] = {srv->ev_term, srv->ev_int, srv->ev_sweep};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    smtpd_pending_disconnect(srv);
    smtpd_dns_free(srv->dns);
    smtpd_tls_free(srv->tls);
    pm_priv_client_free(srv->priv);
    pm_clients_free(srv->clients);
    memset(srv, 0, sizeof *srv);
}
