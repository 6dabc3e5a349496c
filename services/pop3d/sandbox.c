/* The unprivileged pop3d sandbox: forked by the parent (parent.h), already chrooted into
 * the mail store as postmesh-pop3d (group vmail) and under seccomp when this runs. It
 * serves every POP3 session on the sockets the parent opened and asks the parent to check
 * passwords. */
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clients.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "parent.h"
#include "proxywait.h"
#include "session.h"
#include "tls.h"
#include "tlspem.h"

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    (void)salen;
    struct pop3_listener *li = arg;
    struct pop3_server *srv = li->srv;
    evutil_make_socket_nonblocking(fd);
    evutil_make_socket_closeonexec(fd);
    if (!li->proxy_protocol) {
        pop3_session_start(srv, fd, sa, li->implicit_tls, NULL);
        return;
    }
    /* Waiting connections count against max_connections: silent ones cannot pile up. */
    if (srv->nsessions + pm_proxy_waits_count(srv->proxy) >= srv->cfg->pop3d.max_connections) {
        char ip[64];
        pm_sockaddr_ip(sa, ip, sizeof ip);
        pm_log(PM_WARN, "event=connection_refused proxy=%s:%d reason=max_connections", ip, pm_sockaddr_port(sa));
        close(fd);
        return;
    }
    pm_proxy_waits_add(srv->proxy, fd, sa, li);
}

/* The header is in: the session starts with the client's address, so per-address caps,
 * lockouts, the loopback rule for plaintext logins and the logs see the client's. */
static void on_proxied(int fd, const struct sockaddr *client, const struct sockaddr *proxy, void *listener, void *arg)
{
    (void)arg;
    struct pop3_listener *li = listener;
    pop3_session_start(li->srv, fd, client, li->implicit_tls, proxy);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    /* EMFILE and friends: log and keep going; libevent retries on the next readiness. */
    pm_log(PM_WARN, "event=accept_error error=\"%s\"", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* A new pair from the parent (SIGHUP): sessions hold their own reference to the old one. */
static void on_push(const struct pm_priv_msg *m, void *arg)
{
    struct pop3_server *srv = arg;
    char err[512], ev[PM_LOGV_SIZE];
    if (m->op != PM_PRIV_TLS_PEM || !m->a || !m->b) {
        pm_log(PM_WARN, "event=parent_push_ignored op=%u", (unsigned)m->op);
        return;
    }
    SSL_CTX *ctx = pop3_tls_context(m->a, m->b, err, sizeof err);
    if (!ctx) {
        pm_log(PM_ERR, "event=tls_error error=%s", PM_LV(ev, err));
        return;
    }
    if (srv->tls)
        SSL_CTX_free(srv->tls);
    srv->tls = ctx;
    pm_log(PM_INFO, "event=tls_reloaded certificate=%s", srv->cfg->tls.certificate);
}

/* Forgets addresses with nothing left to remember (failures and lockouts that are over). */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pop3_server *srv = arg;
    pm_clients_sweep(srv->clients, time(NULL));
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    pop3_drain_start(arg, (int)sig);
}

/* The sessions gauge is read off the server at scrape time, not kept up on every connect. */
static void collect_sessions(void *arg)
{
    pm_metric_set(PM_M_POP3D_SESSIONS, (double)((struct pop3_server *)arg)->nsessions, NULL, NULL);
}

int pop3_sandbox_main(int parent_fd, void *arg)
{
    struct pop3_parent *p = arg; /* this process's copy of the parent's state */
    const struct pm_config *cfg = p->cfg;
    char err[512], ev[PM_LOGV_SIZE];
    signal(SIGHUP, SIG_IGN); /* reloads are the parent's (it pushes the new pair) */
    pm_priv_helper_forget(p->helper);

    struct pop3_server srv = {.cfg = cfg};
    snprintf(srv.mail_root, sizeof srv.mail_root, "%s", p->mail_root);
    if (p->cert_pem) {
        srv.tls = pop3_tls_context(p->cert_pem, p->key_pem, err, sizeof err);
        pm_tls_pem_free(p->key_pem); /* the context has the key; no second copy lying around */
        p->key_pem = NULL;
        if (!srv.tls) {
            pm_log(PM_ERR, "event=tls_error error=%s", PM_LV(ev, err));
            return 1;
        }
    }
    srv.base = event_base_new();
    struct pm_client_limits lim = {
        .max_per_ip = (int)cfg->pop3d.max_connections_per_ip,
        .auth_failures = (long)cfg->pop3d.auth_failures,
        .auth_lockout = (long)cfg->pop3d.auth_lockout,
        .auth_in_flight = POP3_AUTH_PER_CLIENT,
    };
    srv.clients = pm_clients_new(&lim);
    srv.priv = srv.base ? pm_priv_client_new(srv.base, parent_fd, on_push, &srv) : NULL;
    struct pop3_listener *ls = calloc((size_t)p->nfds + 1, sizeof *ls);
    if (!srv.base || !srv.clients || !srv.priv || !ls)
        return 1;
    srv.listeners = ls;
    int any_proxy = 0;
    for (int i = 0; i < p->nfds; i++) {
        ls[i].srv = &srv;
        ls[i].implicit_tls = p->fds[i].implicit_tls;
        ls[i].proxy_protocol = p->fds[i].proxy_protocol;
        any_proxy |= ls[i].proxy_protocol;
        /* No LEV_OPT_CLOSE_ON_FREE: the socket is the parent's; it outlives this sandbox.
         * Backlog 0: it already listens (a listen() here would be outside the sandbox). */
        ls[i].l = evconnlistener_new(srv.base, on_accept, &ls[i], 0, 0, p->fds[i].fd);
        if (!ls[i].l)
            return 1;
        srv.nlisteners++;
        evconnlistener_set_error_cb(ls[i].l, on_accept_error);
    }
    if (any_proxy) {
        long timeout = PM_PROXY_HEADER_TIMEOUT_MS;
        if (cfg->pop3d.timeout * 1000 < timeout)
            timeout = (long)cfg->pop3d.timeout * 1000;
        if (cfg->proxy_networks.n == 0)
            pm_log(PM_WARN, "event=proxy_networks_empty reason=\"every connection to a proxy_protocol listener is refused\"");
        srv.proxy = pm_proxy_waits_new(srv.base, &cfg->proxy_networks, timeout, on_proxied, &srv);
        if (!srv.proxy)
            return 1;
    }
    struct event *sigs[2] = {
        evsignal_new(srv.base, SIGTERM, on_stop, &srv),
        evsignal_new(srv.base, SIGINT, on_stop, &srv),
    };
    for (int i = 0; i < 2; i++)
        event_add(sigs[i], NULL);
    struct event *sweep = event_new(srv.base, -1, EV_PERSIST, on_sweep, &srv);
    struct timeval every = {30, 0};
    event_add(sweep, &every);
    pm_metrics_on_collect(collect_sessions, &srv);
    pm_metrics_serve(srv.base, NULL, NULL);
    pm_log(PM_INFO, "event=started listeners=%d tls=%d", p->nfds, srv.tls != NULL);

    event_base_dispatch(srv.base);

    for (int i = 0; i < srv.nlisteners; i++)
        evconnlistener_free(ls[i].l);
    free(ls);
    pm_proxy_waits_free(srv.proxy);
    pop3_session_close_all(&srv);
    pop3_drain_free(&srv);
    for (int i = 0; i < 2; i++)
        event_free(sigs[i]);
    event_free(sweep);
    pm_priv_client_free(srv.priv);
    event_base_free(srv.base);
    pm_clients_free(srv.clients);
    if (srv.tls)
        SSL_CTX_free(srv.tls);
    pm_log(PM_INFO, "event=stopped");
    return 0;
}
