#include "mailfront_loop.h"

#include <event2/event.h>
#include <event2/listener.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "privchan.h"
#include "proxywait.h"
#include "tls_server.h"
#include "tlspem.h"

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    (void)salen;
    struct pm_mailfront_listener *li = arg;
    struct pm_mailfront_loop *loop = li->loop;
    evutil_make_socket_nonblocking(fd);
    evutil_make_socket_closeonexec(fd);
    if (!li->proxy_protocol) {
        loop->spec.ops->start(loop->spec.arg, fd, sa, li->implicit_tls, NULL);
        return;
    }
    /* Waiting connections count against max_connections: silent ones cannot pile up. */
    if (loop->spec.ops->sessions(loop->spec.arg) + pm_proxy_waits_count(loop->proxy) >= loop->spec.max_connections) {
        char ip[64];
        pm_sockaddr_ip(sa, ip, sizeof ip);
        pm_log(PM_WARN, "event=connection_refused proxy=%s:%d reason=max_connections", ip, pm_sockaddr_port(sa));
        close(fd);
        return;
    }
    pm_proxy_waits_add(loop->proxy, fd, sa, li);
}

/* The header is in: the session starts with the client's address, so per-address caps,
 * lockouts, the loopback rule for plaintext logins and the logs see the client's. */
static void on_proxied(int fd, const struct sockaddr *client, const struct sockaddr *proxy, void *listener, void *arg)
{
    (void)arg;
    struct pm_mailfront_listener *li = listener;
    li->loop->spec.ops->start(li->loop->spec.arg, fd, client, li->implicit_tls, proxy);
}

/* Out of descriptors (EMFILE, ENFILE) or memory: the pending connection stays readable, so
 * a listener left on would fail again at once, spinning and flooding the log. It pauses
 * for PM_MAILFRONT_ACCEPT_RETRY_MS instead (as smtpd's do); the waiting clients are served
 * once descriptors are free. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct pm_mailfront_listener *li = arg;
    pm_log(PM_WARN, "event=accept_error error=\"%s\" retry_ms=%d",
           evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), PM_MAILFRONT_ACCEPT_RETRY_MS);
    evconnlistener_disable(l);
    struct timeval tv = {0, PM_MAILFRONT_ACCEPT_RETRY_MS * 1000};
    evtimer_add(li->retry, &tv);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pm_mailfront_listener *li = arg;
    if (!li->loop->stopped) /* draining: the listener stays off */
        evconnlistener_enable(li->l);
}

/* A new pair from the parent (SIGHUP): sessions hold their own reference to the old one. */
static void on_push(const struct pm_priv_msg *m, void *arg)
{
    struct pm_mailfront_loop *loop = arg;
    char err[512], ev[PM_LOGV_SIZE];
    if (m->op != PM_PRIV_TLS_PEM || !m->a || !m->b) {
        pm_log(PM_WARN, "event=parent_push_ignored op=%u", (unsigned)m->op);
        return;
    }
    SSL_CTX *ctx = pm_tls_server_context(m->a, m->b, err, sizeof err);
    if (!ctx) {
        pm_log(PM_ERR, "event=tls_error error=%s", PM_LV(ev, err));
        return;
    }
    if (loop->tls)
        SSL_CTX_free(loop->tls);
    loop->tls = ctx;
    pm_log(PM_INFO, "event=tls_reloaded certificate=%s", loop->cfg->tls.certificate);
}

/* Forgets addresses with nothing left to remember (failures and lockouts that are over). */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pm_mailfront_loop *loop = arg;
    pm_clients_sweep(loop->clients, time(NULL));
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct pm_mailfront_loop *loop = arg;
    loop->spec.ops->stop(loop->spec.arg, (int)sig);
}

/* The sessions gauge is read off the service at scrape time, not kept up on every connect. */
static void collect_sessions(void *arg)
{
    struct pm_mailfront_loop *loop = arg;
    pm_metric_set(loop->spec.sessions_metric, (double)loop->spec.ops->sessions(loop->spec.arg), NULL, NULL);
}

static int open_listeners(struct pm_mailfront_loop *loop, const struct pm_mailfront *p)
{
    loop->listeners = calloc((size_t)p->nfds + 1, sizeof *loop->listeners);
    if (!loop->listeners)
        return -1;
    int any_proxy = 0;
    for (int i = 0; i < p->nfds; i++) {
        struct pm_mailfront_listener *li = &loop->listeners[i];
        li->loop = loop;
        li->implicit_tls = p->fds[i].implicit_tls;
        li->proxy_protocol = p->fds[i].proxy_protocol;
        any_proxy |= li->proxy_protocol;
        /* No LEV_OPT_CLOSE_ON_FREE: the socket is the parent's; it outlives this sandbox.
         * Backlog 0: it already listens (a listen() here would be outside the sandbox). */
        li->l = evconnlistener_new(loop->base, on_accept, li, 0, 0, p->fds[i].fd);
        li->retry = evtimer_new(loop->base, on_accept_retry, li);
        if (!li->l || !li->retry)
            return -1;
        loop->nlisteners++;
        evconnlistener_set_error_cb(li->l, on_accept_error);
    }
    if (!any_proxy)
        return 0;
    long timeout = PM_PROXY_HEADER_TIMEOUT_MS;
    if (loop->spec.timeout * 1000 < timeout)
        timeout = (long)loop->spec.timeout * 1000;
    if (loop->cfg->proxy_networks.n == 0)
        pm_log(PM_WARN,
               "event=proxy_networks_empty reason=\"every connection to a proxy_protocol listener is refused\"");
    loop->proxy = pm_proxy_waits_new(loop->base, &loop->cfg->proxy_networks, timeout, on_proxied, loop);
    return loop->proxy ? 0 : -1;
}

int pm_mailfront_loop_init(struct pm_mailfront_loop *loop, struct pm_mailfront *p, int parent_fd,
                           const struct pm_mailfront_loop_spec *spec)
{
    char err[512], ev[PM_LOGV_SIZE];
    memset(loop, 0, sizeof *loop);
    loop->spec = *spec;
    loop->cfg = p->cfg;
    signal(SIGHUP, SIG_IGN); /* reloads are the parent's (it pushes the new pair) */
    pm_priv_helper_forget(p->helper);
    if (p->cert_pem) {
        loop->tls = pm_tls_server_context(p->cert_pem, p->key_pem, err, sizeof err);
        pm_tls_pem_free(p->key_pem); /* the context has the key; no second copy lying around */
        p->key_pem = NULL;
        if (!loop->tls) {
            pm_log(PM_ERR, "event=tls_error error=%s", PM_LV(ev, err));
            return -1;
        }
    }
    loop->base = event_base_new();
    loop->clients = pm_clients_new(&spec->limits);
    loop->priv = loop->base ? pm_priv_client_new(loop->base, parent_fd, on_push, loop) : NULL;
    if (!loop->base || !loop->clients || !loop->priv || open_listeners(loop, p) < 0)
        return -1;
    loop->sigs[0] = evsignal_new(loop->base, SIGTERM, on_stop, loop);
    loop->sigs[1] = evsignal_new(loop->base, SIGINT, on_stop, loop);
    loop->sweep = event_new(loop->base, -1, EV_PERSIST, on_sweep, loop);
    if (!loop->sigs[0] || !loop->sigs[1] || !loop->sweep)
        return -1;
    for (int i = 0; i < 2; i++)
        event_add(loop->sigs[i], NULL);
    struct timeval every = {30, 0};
    event_add(loop->sweep, &every);
    pm_metrics_on_collect(collect_sessions, loop);
    pm_metrics_serve(loop->base, NULL, NULL);
    pm_log(PM_INFO, "event=started listeners=%d tls=%d", p->nfds, loop->tls != NULL);
    return 0;
}

void pm_mailfront_loop_stop_accepting(struct pm_mailfront_loop *loop)
{
    loop->stopped = 1;
    for (int i = 0; i < loop->nlisteners; i++) {
        evtimer_del(loop->listeners[i].retry);
        evconnlistener_disable(loop->listeners[i].l);
        shutdown(evconnlistener_get_fd(loop->listeners[i].l), SHUT_RD);
    }
    pm_proxy_waits_close_all(loop->proxy, "shutdown");
}

void pm_mailfront_refuse(int fd, const char *ip, int implicit_tls, const char *line, const char *reason)
{
    if (!implicit_tls && send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        (void)0; /* best effort */
    close(fd);
    pm_log(PM_WARN, "event=connection_refused client=%s reason=%s", ip, reason);
}

void pm_mailfront_loop_free(struct pm_mailfront_loop *loop)
{
    for (int i = 0; loop->listeners && i <= loop->nlisteners; i++) {
        if (loop->listeners[i].l)
            evconnlistener_free(loop->listeners[i].l);
        if (loop->listeners[i].retry)
            event_free(loop->listeners[i].retry);
    }
    free(loop->listeners);
    pm_proxy_waits_free(loop->proxy);
    for (int i = 0; i < 2; i++)
        if (loop->sigs[i])
            event_free(loop->sigs[i]);
    if (loop->sweep)
        event_free(loop->sweep);
    pm_priv_client_free(loop->priv);
    if (loop->base)
        event_base_free(loop->base);
    pm_clients_free(loop->clients);
    if (loop->tls)
        SSL_CTX_free(loop->tls);
    memset(loop, 0, sizeof *loop);
}
